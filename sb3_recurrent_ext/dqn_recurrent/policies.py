"""Recurrent Q-network policies (GRU or LSTM), optionally dueling, for RecurrentDQN."""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_recurrent_ext.common.masking import masked_argmax
from sb3_recurrent_ext.common.policies import RecurrentPredictMixin, make_optimizer, recurrent_net_kwargs, with_cell
from sb3_recurrent_ext.common.recurrent.nets import RecurrentNet
from sb3_recurrent_ext.common.recurrent.states import RecurrentState


def _flatten_time(obs: PyTorchObs) -> tuple[PyTorchObs, int, int]:
    """``(batch, time, *shape) -> (batch * time, *shape)``, with batch and time."""
    if isinstance(obs, dict):
        first = next(iter(obs.values()))
        batch, time = first.shape[:2]
        return {key: value.reshape(batch * time, *value.shape[2:]) for key, value in obs.items()}, batch, time
    return obs.reshape(obs.shape[0] * obs.shape[1], *obs.shape[2:]), obs.shape[0], obs.shape[1]


class RecurrentQNetwork(BasePolicy):
    """Features -> RecurrentNet -> MLP -> Q-values (or dueling value and advantage heads).

    :param dueling: ``Q = V + A - mean(A)`` from two heads on the MLP's output.
    :param rnn_kwargs: ``RecurrentNet`` arguments (SLM-style keys).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        dueling: bool,
        rnn_kwargs: dict[str, Any],
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        self.rnn = RecurrentNet(features_dim, **rnn_kwargs)
        self.mlp = nn.Sequential(*create_mlp(self.rnn.output_dim, -1, list(net_arch), activation_fn))
        latent_dim = net_arch[-1] if net_arch else self.rnn.output_dim
        n_actions = int(action_space.n)
        self.dueling = dueling
        self.q_head = nn.Linear(latent_dim, n_actions)  # the advantage head when dueling
        self.value_head = nn.Linear(latent_dim, 1) if dueling else None

    def _features(self, obs: PyTorchObs) -> tuple[th.Tensor, int, int]:
        flat, batch, time = _flatten_time(obs)
        # (batch * time, *obs_shape) -> (batch * time, F) -> (batch, time, F)
        features = self.extract_features(flat, self.features_extractor)
        assert isinstance(features, th.Tensor)
        return features.reshape(batch, time, -1), batch, time

    def forward(self, obs: PyTorchObs, state: RecurrentState) -> tuple[th.Tensor, RecurrentState]:
        """Q-values of a batch of sequences in one recurrent call.

        :param obs: ``(batch, time, *obs_shape)``.
        :param state: state before each sequence's first step.
        :return: ``(batch, time, n_actions)`` and the final state.
        """
        features, batch, time = self._features(obs)
        output, final = self.rnn(features, state)
        latent = self.mlp(output.reshape(batch * time, -1))
        q_values = self.q_head(latent)
        if self.value_head is not None:
            q_values = self.value_head(latent) + q_values - q_values.mean(dim=1, keepdim=True)
        return q_values.reshape(batch, time, -1), final

    def burn_in(self, obs: PyTorchObs, state: RecurrentState, lengths: th.Tensor) -> RecurrentState:
        """State after each sequence's first ``lengths`` steps of ``obs`` ``(batch, burn_in, *obs_shape)``."""
        features, _, _ = self._features(obs)
        _, final = self.rnn(features, state, lengths)
        return final

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        raise NotImplementedError("use RecurrentDQNPolicy, which carries the hidden state")


class RecurrentDQNPolicy(RecurrentPredictMixin, BasePolicy):
    """Recurrent Q-learning policy: an online and a target :class:`RecurrentQNetwork`.

    Takes SLM-Lab's net spec keys as keyword arguments (``cell_type``, ``fc_hid_layers``,
    ``hid_layers_activation``, ``out_layer_activation``, ``rnn_hidden_size``, ``rnn_num_layers``, ``init_fn``,
    ``rnn_kwargs``; ``bidirectional`` must stay False), plus:

    :param net_arch: MLP between the recurrent layer and the Q head (default ``[64]``).
    :param activation_fn: activation of that MLP.
    :param dueling: separate value and advantage heads.
    """

    alias_cell_type: str | None = None
    default_features_extractor: type[BaseFeaturesExtractor] = FlattenExtractor
    action_space: spaces.Discrete
    q_net: RecurrentQNetwork
    q_net_target: RecurrentQNetwork

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        dueling: bool = False,
        cell_type: str | None = None,
        fc_hid_layers: list[int] | tuple[int, ...] = (),
        hid_layers_activation: str | type[nn.Module] | None = "relu",
        out_layer_activation: str | type[nn.Module] | None = None,
        rnn_hidden_size: int | None = None,
        rnn_num_layers: int | None = None,
        bidirectional: bool = False,
        init_fn: str | None = None,
        rnn_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if optimizer_kwargs is None and optimizer_class is th.optim.Adam:
            optimizer_kwargs = dict(fused=True)  # one kernel for the whole update (CPU and CUDA)
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class or self.default_features_extractor,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
        )
        self.rnn_kwargs = recurrent_net_kwargs(
            policy_name=type(self).__name__,
            alias_cell_type=self.alias_cell_type,
            cell_type=cell_type,
            bidirectional=bidirectional,
            fc_hid_layers=fc_hid_layers,
            hid_layers_activation=hid_layers_activation,
            out_layer_activation=out_layer_activation,
            rnn_hidden_size=rnn_hidden_size,
            rnn_num_layers=rnn_num_layers,
            init_fn=init_fn,
            rnn_kwargs=rnn_kwargs,
        )
        self.net_arch = [64] if net_arch is None else list(net_arch)
        self.activation_fn = activation_fn
        self.dueling = dueling
        self._build(lr_schedule)

    def make_q_net(self) -> RecurrentQNetwork:
        features_extractor = self.make_features_extractor()
        return RecurrentQNetwork(
            self.observation_space,
            self.action_space,
            features_extractor,
            features_extractor.features_dim,
            self.net_arch,
            self.activation_fn,
            self.dueling,
            self.rnn_kwargs,
            self.normalize_images,
        ).to(self.device)

    def _build(self, lr_schedule: Schedule) -> None:
        self.q_net = self.make_q_net()
        self.q_net_target = self.make_q_net()
        self.q_net_target.load_state_dict(self.q_net.state_dict())
        self.q_net_target.set_training_mode(False)
        self.optimizer = make_optimizer(self, self.q_net.parameters(), lr_schedule(1))

    def initial_state(self, n_envs: int) -> RecurrentState:
        """The zero hidden state for ``n_envs`` envs."""
        return self.q_net.rnn.initial_state(n_envs, self.device)

    def q_step(self, obs: PyTorchObs, state: RecurrentState) -> tuple[th.Tensor, RecurrentState]:
        """Q-values ``(n_envs, n_actions)`` of one step for every env, and the next state."""
        if isinstance(obs, dict):
            sequence_obs: PyTorchObs = {key: value.unsqueeze(1) for key, value in obs.items()}
        else:
            sequence_obs = obs.unsqueeze(1)
        q_values, new_state = self.q_net(sequence_obs, state)
        return q_values[:, 0], new_state

    def forward(self, obs: PyTorchObs, state: RecurrentState, episode_starts: th.Tensor) -> tuple[th.Tensor, RecurrentState]:
        """Greedy actions and the next state (the state is zeroed where an episode starts)."""
        return self._predict(obs, state, episode_starts, deterministic=True)

    def _predict(  # type: ignore[override]
        self,
        observation: PyTorchObs,
        state: RecurrentState,
        episode_start: th.Tensor,
        deterministic: bool = True,
        action_masks: th.Tensor | None = None,
    ) -> tuple[th.Tensor, RecurrentState]:
        q_values, new_state = self.q_step(observation, state.reset(episode_start))
        return masked_argmax(q_values, action_masks), new_state

    def set_training_mode(self, mode: bool) -> None:
        self.q_net.set_training_mode(mode)
        self.training = mode

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
            dueling=self.dueling,
            **self.rnn_kwargs,
        )
        return data


class RecurrentDQNCnnPolicy(RecurrentDQNPolicy):
    """Recurrent Q-learning policy over images (``NatureCNN`` features)."""

    default_features_extractor = NatureCNN


class RecurrentDQNMultiInputPolicy(RecurrentDQNPolicy):
    """Recurrent Q-learning policy over ``Dict`` observations (``CombinedExtractor`` features)."""

    default_features_extractor = CombinedExtractor


MlpLstmPolicy = with_cell(RecurrentDQNPolicy, "LSTM", "MlpLstmPolicy", __name__)
MlpGruPolicy = with_cell(RecurrentDQNPolicy, "GRU", "MlpGruPolicy", __name__)
MlpFfmPolicy = with_cell(RecurrentDQNPolicy, "FFM", "MlpFfmPolicy", __name__)
MlpMinGruPolicy = with_cell(RecurrentDQNPolicy, "MinGRU", "MlpMinGruPolicy", __name__)
CnnLstmPolicy = with_cell(RecurrentDQNCnnPolicy, "LSTM", "CnnLstmPolicy", __name__)
CnnGruPolicy = with_cell(RecurrentDQNCnnPolicy, "GRU", "CnnGruPolicy", __name__)
CnnFfmPolicy = with_cell(RecurrentDQNCnnPolicy, "FFM", "CnnFfmPolicy", __name__)
CnnMinGruPolicy = with_cell(RecurrentDQNCnnPolicy, "MinGRU", "CnnMinGruPolicy", __name__)
MultiInputLstmPolicy = with_cell(RecurrentDQNMultiInputPolicy, "LSTM", "MultiInputLstmPolicy", __name__)
MultiInputGruPolicy = with_cell(RecurrentDQNMultiInputPolicy, "GRU", "MultiInputGruPolicy", __name__)
MultiInputFfmPolicy = with_cell(RecurrentDQNMultiInputPolicy, "FFM", "MultiInputFfmPolicy", __name__)
MultiInputMinGruPolicy = with_cell(RecurrentDQNMultiInputPolicy, "MinGRU", "MultiInputMinGruPolicy", __name__)
