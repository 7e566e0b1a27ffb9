"""Features extractors that plug the RecurrentNet into any SB3 algorithm."""

from __future__ import annotations

from collections.abc import Sequence

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_recurrent_ext.common.checks import check_positive_int
from sb3_recurrent_ext.common.recurrent.nets import RecurrentNet


class RecurrentNetExtractor(BaseFeaturesExtractor):
    """SLM-Lab's windowed RecurrentNet as an SB3 features extractor (a learned TDNN-like window).

    The observation must come from ``VecFrameStack(env, n_stack=seq_len)`` over a flat ``Box``
    observation: its ``seq_len`` frames (oldest first) are read as a sequence, run through the
    RecurrentNet from a zero state, and the last layer's final hidden state is the feature vector
    (both directions concatenated when ``bidirectional=True``). No state is carried between steps,
    so it works unchanged with PPO, A2C, DQN and SAC.

    Usage::

        env = VecFrameStack(make_vec_env("CartPoleNoVel-v1", n_envs=8), n_stack=4)
        model = PPO("MlpPolicy", env, policy_kwargs=dict(
            features_extractor_class=RecurrentNetExtractor,
            features_extractor_kwargs=dict(seq_len=4, cell_type="GRU", rnn_hidden_size=64)))

    :param observation_space: the frame-stacked observation space, shape ``(seq_len * obs_dim,)``.
    :param seq_len: number of stacked frames (``n_stack`` of ``VecFrameStack``).
    :param cell_type: ``"GRU"``, ``"LSTM"``, ``"RNN"``, ``"FFM"`` or ``"MinGRU"``.
    :param fc_hid_layers: per-step MLP sizes; ``[]`` feeds raw frames to the cell.
    :param hid_layers_activation: activation of the per-step MLP.
    :param out_layer_activation: activation applied to the output features.
    :param rnn_hidden_size: hidden size of the cell.
    :param rnn_num_layers: number of stacked recurrent layers.
    :param bidirectional: also run the window backwards and concatenate both final states.
    :param init_fn: ``torch.nn.init`` function name for the weights, ``None`` for torch's default.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        seq_len: int = 4,
        cell_type: str = "GRU",
        fc_hid_layers: Sequence[int] = (),
        hid_layers_activation: str | type[nn.Module] | None = "relu",
        out_layer_activation: str | type[nn.Module] | None = None,
        rnn_hidden_size: int = 64,
        rnn_num_layers: int = 1,
        bidirectional: bool = False,
        init_fn: str | None = None,
    ) -> None:
        check_positive_int(seq_len, "seq_len")
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(
                "RecurrentNetExtractor needs a flat Box observation from VecFrameStack, "
                f"got observation_space={observation_space}"
            )
        if observation_space.shape[0] % seq_len != 0:
            raise ValueError(
                f"seq_len={seq_len} does not divide the stacked observation size {observation_space.shape[0]}; "
                f"wrap the env with VecFrameStack(env, n_stack={seq_len})"
            )
        frame_dim = observation_space.shape[0] // seq_len
        net = RecurrentNet(
            frame_dim,
            cell_type=cell_type,
            fc_hid_layers=fc_hid_layers,
            hid_layers_activation=hid_layers_activation,
            out_layer_activation=out_layer_activation,
            rnn_hidden_size=rnn_hidden_size,
            rnn_num_layers=rnn_num_layers,
            bidirectional=bidirectional,
            init_fn=init_fn,
        )
        super().__init__(observation_space, net.output_dim)
        self.seq_len = seq_len
        self.frame_dim = frame_dim
        self.net = net

    def forward(self, observations: th.Tensor) -> th.Tensor:
        # VecFrameStack concatenates frames on the last axis, oldest first:
        # (batch, seq_len * frame_dim) -> (batch, seq_len, frame_dim)
        frames = observations.float().reshape(observations.shape[0], self.seq_len, self.frame_dim)
        return self.net.last_step(frames)
