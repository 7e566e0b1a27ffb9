"""Recurrent actor-critic policies (GRU or LSTM) with one value head per reward stream."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_recurrent_ext.common.checks import ConflictingArgumentsError
from sb3_recurrent_ext.common.masking import masked_distribution
from sb3_recurrent_ext.common.policies import RecurrentPredictMixin, make_optimizer, recurrent_net_kwargs, with_cell
from sb3_recurrent_ext.common.recurrent.states import RecurrentState
from sb3_recurrent_ext.ppo_recurrent_rnd.mlp_extractor import RecurrentMlpExtractor

# sb3-contrib's RecurrentPPO keyword -> ours
SB3_CONTRIB_ALIASES = {
    "lstm_hidden_size": "rnn_hidden_size",
    "n_lstm_layers": "rnn_num_layers",
    "shared_lstm": "shared",
    "enable_critic_lstm": "enable_critic_rnn",
    "lstm_kwargs": "rnn_kwargs",
}


class RecurrentActorCriticPolicy(RecurrentPredictMixin, ActorCriticPolicy):
    """Recurrent actor-critic policy: features -> GRU/LSTM (SLM-style RecurrentNet) -> MLPs -> action and values.

    Takes SLM-Lab's net spec keys and, so that a sb3-contrib ``RecurrentPPO`` user can switch by changing the
    import, sb3-contrib's names (``lstm_hidden_size``, ``n_lstm_layers``, ``shared_lstm``, ``enable_critic_lstm``,
    ``lstm_kwargs``) as aliases.

    :param cell_type: ``"GRU"``, ``"LSTM"`` or ``"RNN"``; fixed by the ``...GruPolicy``/``...LstmPolicy`` aliases.
    :param fc_hid_layers: per-step MLP before the recurrent layer (``[]``: the features go straight in).
    :param hid_layers_activation: activation of that MLP (SLM name or ``nn.Module`` class).
    :param out_layer_activation: activation applied to the recurrent output.
    :param rnn_hidden_size: hidden size of the recurrent layer (alias ``lstm_hidden_size``).
    :param rnn_num_layers: stacked recurrent layers (alias ``n_lstm_layers``).
    :param bidirectional: must be False: a state carried across steps cannot run backwards.
    :param init_fn: ``torch.nn.init`` function name for the recurrent body's weights.
    :param shared: one recurrent body for actor and critic (alias ``shared_lstm``).
    :param enable_critic_rnn: give the critic its own recurrent body when not shared (alias ``enable_critic_lstm``).
    :param rnn_kwargs: extra ``nn.GRU``/``nn.LSTM`` arguments such as ``dropout`` (alias ``lstm_kwargs``).
    :param n_value_heads: value outputs (2 with RND: extrinsic and intrinsic).
    :param net_arch: MLP after the recurrent layer, a list or ``dict(pi=[...], vf=[...])``; the other arguments are
        SB3's ``ActorCriticPolicy``'s.
    """

    alias_cell_type: str | None = None
    default_features_extractor: type[BaseFeaturesExtractor] = FlattenExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        cell_type: str | None = None,
        fc_hid_layers: list[int] | tuple[int, ...] = (),
        hid_layers_activation: str | type[nn.Module] | None = "relu",
        out_layer_activation: str | type[nn.Module] | None = None,
        rnn_hidden_size: int | None = None,
        rnn_num_layers: int | None = None,
        bidirectional: bool = False,
        init_fn: str | None = None,
        shared: bool | None = None,
        enable_critic_rnn: bool | None = None,
        rnn_kwargs: dict[str, Any] | None = None,
        n_value_heads: int = 1,
        **sb3_contrib_kwargs: Any,
    ) -> None:
        given = dict(
            rnn_hidden_size=rnn_hidden_size,
            rnn_num_layers=rnn_num_layers,
            shared=shared,
            enable_critic_rnn=enable_critic_rnn,
            rnn_kwargs=rnn_kwargs,
        )
        resolved = self._resolve_aliases(given, sb3_contrib_kwargs)
        if resolved["shared"] and resolved["enable_critic_rnn"] is True:
            raise ConflictingArgumentsError(
                "shared=True (shared_lstm) and enable_critic_rnn=True (enable_critic_lstm) contradict each other: "
                "choose a shared recurrent body, a separate one for the critic, or none for the critic"
            )
        if resolved["shared"] and not share_features_extractor:
            raise ConflictingArgumentsError(
                "shared=True (shared_lstm) needs share_features_extractor=True: one recurrent body cannot read two "
                "feature extractors' outputs (sb3-contrib rejects this combination too)"
            )
        if isinstance(n_value_heads, bool) or not isinstance(n_value_heads, int) or n_value_heads < 1:
            raise ValueError(f"n_value_heads={n_value_heads!r} must be a positive integer")
        # Read by _build_mlp_extractor, which ActorCriticPolicy.__init__ calls.
        self.shared = bool(resolved["shared"])
        self.enable_critic_rnn = resolved["enable_critic_rnn"] is not False
        self.n_value_heads = n_value_heads
        self.rnn_kwargs = recurrent_net_kwargs(
            policy_name=type(self).__name__,
            alias_cell_type=self.alias_cell_type,
            cell_type=cell_type,
            bidirectional=bidirectional,
            fc_hid_layers=fc_hid_layers,
            hid_layers_activation=hid_layers_activation,
            out_layer_activation=out_layer_activation,
            rnn_hidden_size=resolved["rnn_hidden_size"],
            rnn_num_layers=resolved["rnn_num_layers"],
            init_fn=init_fn,
            rnn_kwargs=resolved["rnn_kwargs"],
        )
        if net_arch is None:
            net_arch = dict(pi=[64], vf=[64])
        if optimizer_kwargs is None and optimizer_class is th.optim.Adam:
            # SB3's default eps; fused: one kernel for the whole update (CPU and CUDA), about 15% more
            # training fps than the per-parameter loop on CartPoleNoVel with 2 cores; same update rule
            optimizer_kwargs = dict(eps=1e-5, fused=True)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            use_sde=use_sde,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            squash_output=squash_output,
            features_extractor_class=features_extractor_class or self.default_features_extractor,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    @staticmethod
    def _resolve_aliases(given: dict[str, Any], sb3_contrib_kwargs: dict[str, Any]) -> dict[str, Any]:
        resolved = dict(given)
        for alias, value in sb3_contrib_kwargs.items():
            if alias not in SB3_CONTRIB_ALIASES:
                allowed = ", ".join(SB3_CONTRIB_ALIASES)
                raise TypeError(f"Unexpected policy keyword argument {alias!r} (sb3-contrib aliases accepted: {allowed})")
            ours = SB3_CONTRIB_ALIASES[alias]
            if resolved[ours] is not None and resolved[ours] != value:
                raise ValueError(f"{alias}={value!r} contradicts {ours}={resolved[ours]!r}; give only one of them")
            resolved[ours] = value
        return resolved

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = RecurrentMlpExtractor(  # type: ignore[assignment]
            self.features_dim,
            self.net_arch,
            self.activation_fn,
            shared=self.shared,
            enable_critic_rnn=self.enable_critic_rnn,
            rnn_kwargs=self.rnn_kwargs,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        if self.n_value_heads != 1:
            self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, self.n_value_heads)
            if self.ortho_init:
                self.value_net.apply(partial(self.init_weights, gain=1))
            self.optimizer = make_optimizer(self, self.parameters(), lr_schedule(1))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        rnn_kwargs = dict(self.rnn_kwargs)
        data.update(
            cell_type=rnn_kwargs["cell_type"],
            fc_hid_layers=rnn_kwargs["fc_hid_layers"],
            hid_layers_activation=rnn_kwargs["hid_layers_activation"],
            out_layer_activation=rnn_kwargs["out_layer_activation"],
            rnn_hidden_size=rnn_kwargs["rnn_hidden_size"],
            rnn_num_layers=rnn_kwargs["rnn_num_layers"],
            init_fn=rnn_kwargs["init_fn"],
            rnn_kwargs=rnn_kwargs["rnn_kwargs"],
            shared=self.shared,
            enable_critic_rnn=self.enable_critic_rnn and not self.shared,
            n_value_heads=self.n_value_heads,
        )
        return data

    @property
    def recurrent(self) -> RecurrentMlpExtractor:
        assert isinstance(self.mlp_extractor, RecurrentMlpExtractor)  # built by _build_mlp_extractor
        return self.mlp_extractor

    def initial_state(self, n_envs: int) -> RecurrentState:
        """The zero hidden state for ``n_envs`` envs."""
        return self.recurrent.initial_state(n_envs, self.device)

    def _latents(
        self, obs: PyTorchObs, state: RecurrentState, n_seq: int, seq_len: int, real_steps: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor, RecurrentState]:
        # (n_seq * seq_len, *obs_shape) -> (n_seq * seq_len, F) -> (n_seq, seq_len, F); a pair (actor's, critic's)
        # with share_features_extractor=False
        features = self.extract_features(obs)
        if isinstance(features, tuple):
            pi_features, vf_features = (f.reshape(n_seq, seq_len, -1) for f in features)
            return self.recurrent(pi_features, state, real_steps, critic_features=vf_features)
        return self.recurrent(features.reshape(n_seq, seq_len, -1), state, real_steps)

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor, action_masks: th.Tensor | None = None) -> Distribution:
        """SB3's action distribution, or sb3-contrib's maskable one under ``action_masks`` ``(N, mask_width)``, with
        ``torch.distributions``' argument checks off for this one only.

        Why: the actions it scores are its own samples (or stored ones of the same policy), in its support by
        construction, and the checks cost about a third of a Categorical's sample + log-prob at rollout sizes
        (measured: 251 us -> 176 us). The global default is left alone, so other models (in callbacks, say) keep it.
        """
        previous = th.distributions.Distribution._validate_args
        th.distributions.Distribution.set_default_validate_args(False)  # no check of the parameters at construction
        try:
            if action_masks is None:
                distribution = super()._get_action_dist_from_latent(latent_pi)
            else:
                distribution = masked_distribution(self.action_space, self.action_net(latent_pi), action_masks)
        finally:
            th.distributions.Distribution.set_default_validate_args(previous)
        # the maskable MultiDiscrete/MultiBinary distributions keep a list in .distributions
        inner = getattr(distribution, "distributions", None) or distribution.distribution
        for torch_distribution in inner if isinstance(inner, list) else [inner]:
            torch_distribution._validate_args = False  # nor of the samples later (log_prob reads the instance's)
        return distribution

    def forward(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        state: RecurrentState,
        episode_starts: th.Tensor,
        deterministic: bool = False,
        action_masks: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RecurrentState]:
        """One rollout step for every env: actions, values ``(n_envs, n_value_heads)``, log-probs, next state
        (actions among those ``action_masks`` ``(n_envs, mask_width)`` allow, if given)."""
        state = state.reset(episode_starts)
        latent_pi, latent_vf, new_state = self._latents(obs, state, episode_starts.shape[0], 1)
        distribution = self._get_action_dist_from_latent(latent_pi, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *(self.action_space.shape or ())))
        return actions, self.value_net(latent_vf), log_prob, new_state

    def predict_values(  # type: ignore[override]
        self, obs: PyTorchObs, state: RecurrentState, episode_starts: th.Tensor
    ) -> th.Tensor:
        """Values ``(n_envs, n_value_heads)`` of one step's observations."""
        _, latent_vf, _ = self._latents(obs, state.reset(episode_starts), episode_starts.shape[0], 1)
        return self.value_net(latent_vf)

    def evaluate_sequences(
        self,
        obs: PyTorchObs,
        actions: th.Tensor,
        state: RecurrentState,
        n_seq: int,
        seq_len: int,
        real_steps: th.Tensor | None = None,
        action_masks: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None, Distribution]:
        """Values, log-probs and entropies of a padded batch of sequences, in one recurrent call.

        :param obs: flattened padded sequences ``(n_seq * seq_len, *obs_shape)``.
        :param actions: ``(N, *action_shape)``: every padded step, or the real steps only when ``real_steps`` is given.
        :param state: state before each sequence's first step.
        :param real_steps: ``(N,)`` indices of the real steps in ``n_seq * seq_len``; if given, the outputs cover
            these steps only.
        :param action_masks: ``(N, mask_width)`` the masks the actions were chosen under, if any.
        :return: values ``(N, n_value_heads)``, log-probs and entropies ``(N,)`` and the distribution, where ``N`` is
            ``n_seq * seq_len`` or the number of real steps.
        """
        latent_pi, latent_vf, _ = self._latents(obs, state, n_seq, seq_len, real_steps)
        distribution = self._get_action_dist_from_latent(latent_pi, action_masks)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy(), distribution

    def _predict(  # type: ignore[override]
        self,
        observation: PyTorchObs,
        state: RecurrentState,
        episode_start: th.Tensor,
        deterministic: bool = False,
        action_masks: th.Tensor | None = None,
    ) -> tuple[th.Tensor, RecurrentState]:
        state = state.reset(episode_start)
        latent_pi, _, new_state = self._latents(observation, state, episode_start.shape[0], 1)
        distribution = self._get_action_dist_from_latent(latent_pi, action_masks)
        return distribution.get_actions(deterministic=deterministic), new_state


class RecurrentActorCriticCnnPolicy(RecurrentActorCriticPolicy):
    """Recurrent actor-critic policy over images (``NatureCNN`` features)."""

    default_features_extractor = NatureCNN


class RecurrentMultiInputActorCriticPolicy(RecurrentActorCriticPolicy):
    """Recurrent actor-critic policy over ``Dict`` observations (``CombinedExtractor`` features)."""

    default_features_extractor = CombinedExtractor


MlpLstmPolicy = with_cell(RecurrentActorCriticPolicy, "LSTM", "MlpLstmPolicy", __name__)
MlpGruPolicy = with_cell(RecurrentActorCriticPolicy, "GRU", "MlpGruPolicy", __name__)
MlpFfmPolicy = with_cell(RecurrentActorCriticPolicy, "FFM", "MlpFfmPolicy", __name__)
MlpMinGruPolicy = with_cell(RecurrentActorCriticPolicy, "MinGRU", "MlpMinGruPolicy", __name__)
CnnLstmPolicy = with_cell(RecurrentActorCriticCnnPolicy, "LSTM", "CnnLstmPolicy", __name__)
CnnGruPolicy = with_cell(RecurrentActorCriticCnnPolicy, "GRU", "CnnGruPolicy", __name__)
CnnFfmPolicy = with_cell(RecurrentActorCriticCnnPolicy, "FFM", "CnnFfmPolicy", __name__)
CnnMinGruPolicy = with_cell(RecurrentActorCriticCnnPolicy, "MinGRU", "CnnMinGruPolicy", __name__)
MultiInputLstmPolicy = with_cell(RecurrentMultiInputActorCriticPolicy, "LSTM", "MultiInputLstmPolicy", __name__)
MultiInputGruPolicy = with_cell(RecurrentMultiInputActorCriticPolicy, "GRU", "MultiInputGruPolicy", __name__)
MultiInputFfmPolicy = with_cell(RecurrentMultiInputActorCriticPolicy, "FFM", "MultiInputFfmPolicy", __name__)
MultiInputMinGruPolicy = with_cell(RecurrentMultiInputActorCriticPolicy, "MinGRU", "MultiInputMinGruPolicy", __name__)
