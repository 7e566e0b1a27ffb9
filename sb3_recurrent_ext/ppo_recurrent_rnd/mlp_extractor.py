"""The recurrent body of the actor-critic policies: features -> recurrent net(s) -> actor and critic MLPs."""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from torch import nn

from sb3_recurrent_ext.common.recurrent.nets import RecurrentNet
from sb3_recurrent_ext.common.recurrent.side_by_side import can_run_side_by_side, run_side_by_side
from sb3_recurrent_ext.common.recurrent.states import RecurrentState


class RecurrentMlpExtractor(nn.Module):
    """Features -> recurrent body(ies) -> ``net_arch`` MLPs, for actor and critic.

    Three critic layouts: its own recurrent net (``shared=False, enable_critic_rnn=True``, the default, as in
    sb3-contrib), the actor's recurrent net (``shared=True``, SLM-Lab's shared body; both losses train it),
    or no memory (``enable_critic_rnn=False``: the critic MLP reads the features).
    """

    def __init__(
        self,
        features_dim: int,
        net_arch: list[int] | dict[str, list[int]],
        activation_fn: type[nn.Module],
        shared: bool,
        enable_critic_rnn: bool,
        rnn_kwargs: dict[str, Any],
    ) -> None:
        super().__init__()
        self.actor_rnn = RecurrentNet(features_dim, **rnn_kwargs)
        self.critic_rnn = RecurrentNet(features_dim, **rnn_kwargs) if enable_critic_rnn and not shared else None
        self.shared = shared
        pi_arch, vf_arch = (net_arch["pi"], net_arch["vf"]) if isinstance(net_arch, dict) else (net_arch, net_arch)
        rnn_out = self.actor_rnn.output_dim
        vf_in = rnn_out if (shared or self.critic_rnn is not None) else features_dim
        self.policy_net = nn.Sequential(*create_mlp(rnn_out, -1, list(pi_arch), activation_fn))
        self.value_net = nn.Sequential(*create_mlp(vf_in, -1, list(vf_arch), activation_fn))
        self.latent_dim_pi = pi_arch[-1] if pi_arch else rnn_out
        self.latent_dim_vf = vf_arch[-1] if vf_arch else vf_in
        self.n_actor_tensors = self.actor_rnn.n_state_tensors

    def initial_state(self, batch_size: int, device: th.device) -> RecurrentState:
        """Zero state: the actor's tensors followed by the critic's (if it has its own recurrent net)."""
        tensors = self.actor_rnn.initial_state(batch_size, device).tensors
        if self.critic_rnn is not None:
            tensors += self.critic_rnn.initial_state(batch_size, device).tensors
        return RecurrentState(tensors)

    def forward(
        self,
        features: th.Tensor,
        state: RecurrentState,
        real_steps: th.Tensor | None = None,
        critic_features: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, RecurrentState]:
        """One recurrent call per net over a padded batch of sequences.

        :param features: ``(n_seq, seq_len, features_dim)``, the actor's (and the critic's, when shared).
        :param critic_features: the critic's own ``(n_seq, seq_len, features_dim)`` (``share_features_extractor=False``).
        :param state: state before each sequence's first step.
        :param real_steps: ``(N,)`` indices of the real steps in ``n_seq * seq_len``; if given, the MLPs after
            the recurrent layer run on these rows only (padding can be a third of a minibatch).
        :return: ``latent_pi (N, latent_dim_pi)``, ``latent_vf (N, latent_dim_vf)`` and the final state, with
            ``N = n_seq * seq_len``, or the number of real steps when ``real_steps`` is given.
        """
        n_seq, seq_len = features.shape[:2]
        k = self.n_actor_tensors
        # the critic's part is empty when it has no recurrent net of its own
        actor_state, critic_state = RecurrentState(state.tensors[:k]), RecurrentState(state.tensors[k:])
        one_input = critic_features is None
        critic_features = features if critic_features is None else critic_features
        if self.critic_rnn is not None and one_input and seq_len > 1 and can_run_side_by_side(self.actor_rnn, self.critic_rnn):
            # GRU or minGRU training: actor and critic as one recurrent call of twice the width
            (rnn_pi, actor_state), (rnn_vf, critic_state) = run_side_by_side(
                self.actor_rnn, self.critic_rnn, features, actor_state, critic_state
            )
        else:
            rnn_pi, actor_state = self.actor_rnn(features, actor_state)
            if self.critic_rnn is not None:
                rnn_vf, critic_state = self.critic_rnn(critic_features, critic_state)
            else:
                rnn_vf = rnn_pi if self.shared else critic_features
        tensors = actor_state.tensors + critic_state.tensors
        # (n_seq, seq_len, H) -> (n_seq * seq_len, H) [-> (N real, H)]
        rnn_pi, rnn_vf = rnn_pi.reshape(n_seq * seq_len, -1), rnn_vf.reshape(n_seq * seq_len, -1)
        if real_steps is not None:
            rnn_pi, rnn_vf = rnn_pi.index_select(0, real_steps), rnn_vf.index_select(0, real_steps)
        return self.policy_net(rnn_pi), self.value_net(rnn_vf), RecurrentState(tensors)
