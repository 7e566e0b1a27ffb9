"""What every recurrent policy of the package shares: SLM-style net keys, cell aliases and ``predict``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from sb3_recurrent_ext.common.masking import checked_masks
from sb3_recurrent_ext.common.recurrent.nets import resolve_cell_type
from sb3_recurrent_ext.common.recurrent.states import RecurrentState, StateLayout


def recurrent_net_kwargs(
    *,
    policy_name: str,
    alias_cell_type: str | None,
    cell_type: str | None,
    bidirectional: bool,
    fc_hid_layers: list[int] | tuple[int, ...],
    hid_layers_activation: str | type[nn.Module] | None,
    out_layer_activation: str | type[nn.Module] | None,
    rnn_hidden_size: int | None,
    rnn_num_layers: int | None,
    init_fn: str | None,
    rnn_kwargs: dict[str, Any] | None,
) -> dict[str, Any]:
    """``RecurrentNet`` keyword arguments of a policy that carries its state from step to step.

    :param policy_name: the policy class name, for error messages.
    :param alias_cell_type: the cell fixed by a ``...GruPolicy``/``...LstmPolicy`` alias, or ``None``.
    :param cell_type: the cell asked for (``None``: the alias's cell, else LSTM).
    :raises ValueError: ``bidirectional=True``, or a cell that contradicts the alias.
    """
    if bidirectional:
        raise ValueError(
            "bidirectional=True is not possible in a policy that carries its hidden state from step to step "
            "(the backward direction would need future observations); use RecurrentNetExtractor over a "
            "frame-stacked env for a bidirectional window"
        )
    resolved_cell = resolve_cell_type(cell_type if cell_type is not None else alias_cell_type or "LSTM")
    if alias_cell_type is not None and resolved_cell != alias_cell_type:
        raise ValueError(
            f"cell_type={resolved_cell!r} contradicts the policy {policy_name} (cell {alias_cell_type}); "
            "drop cell_type or choose the ...GruPolicy / ...LstmPolicy alias of that cell"
        )
    return dict(
        cell_type=resolved_cell,
        fc_hid_layers=list(fc_hid_layers),
        hid_layers_activation=hid_layers_activation,
        out_layer_activation=out_layer_activation,
        # `is None`, not `or`: a 0 must reach RecurrentNet's check, not become the default
        rnn_hidden_size=64 if rnn_hidden_size is None else rnn_hidden_size,
        rnn_num_layers=1 if rnn_num_layers is None else rnn_num_layers,
        init_fn=init_fn,
        rnn_kwargs=rnn_kwargs,
    )


def build_recurrent_policy(algorithm: BaseAlgorithm, **policy_arguments: Any) -> StateLayout:
    """Build ``algorithm.policy`` on its device, as SB3's ``_setup_model`` does, and return the layout of its hidden
    state, which sizes the algorithm's buffer.

    :param policy_arguments: the algorithm's own policy arguments besides ``policy_kwargs`` (PPO's ``use_sde``).
    """
    policy: Any = algorithm.policy_class(
        algorithm.observation_space,
        algorithm.action_space,
        algorithm.lr_schedule,
        **policy_arguments,
        **algorithm.policy_kwargs,
    )
    algorithm.policy = policy.to(algorithm.device)
    return StateLayout.of(policy.initial_state(1))


def make_optimizer(policy: BasePolicy, parameters: Iterable[nn.Parameter], learning_rate: float) -> th.optim.Optimizer:
    """``policy.optimizer_class`` with ``policy.optimizer_kwargs`` over ``parameters``, as SB3's ``_build`` makes it."""
    # SB3 types optimizer_class as type[Optimizer], whose __init__ declares no lr; the classes it holds take one
    optimizer_class: Callable[..., th.optim.Optimizer] = policy.optimizer_class
    return optimizer_class(parameters, lr=learning_rate, **policy.optimizer_kwargs)


def with_cell(base: type, cell: str, name: str, module: str) -> type:
    """A subclass of ``base`` whose recurrent cell is fixed to ``cell`` (``MlpLstmPolicy``, ``MlpGruPolicy``...).

    :param module: the ``__name__`` of the module that binds the class to ``name``, so pickle finds it there.
    """
    summary = (base.__doc__ or "").splitlines()[0]
    attributes = {"alias_cell_type": cell, "__doc__": f"{summary} Cell: {cell}.", "__module__": module, "__qualname__": name}
    return type(name, (base,), attributes)


# alias infix -> cell: MlpLstmPolicy, CnnGruPolicy, MultiInputFfmPolicy, MlpMinGruPolicy...
ALIAS_CELLS = {"Lstm": "LSTM", "Gru": "GRU", "Ffm": "FFM", "MinGru": "MinGRU"}
ALIAS_NAMES = tuple(f"{kind}{infix}Policy" for kind in ("Mlp", "Cnn", "MultiInput") for infix in ALIAS_CELLS)


def alias_infix(policy_name: str) -> str | None:
    """The cell infix a policy alias name ends with (``"MlpMinGruPolicy"`` -> ``"MinGru"``), or ``None``.

    The longest infix is tried first: ``"MlpMinGruPolicy"`` also ends in ``"GruPolicy"``.
    """
    for infix in sorted(ALIAS_CELLS, key=len, reverse=True):
        if policy_name.endswith(f"{infix}Policy"):
            return infix
    return None


def policy_aliases(policies_module: ModuleType) -> dict[str, type]:
    """An algorithm's ``policy_aliases`` table: every name of :data:`ALIAS_NAMES`, bound in ``policies_module``."""
    return {name: getattr(policies_module, name) for name in ALIAS_NAMES}


def _checked_state(state: tuple[np.ndarray, ...] | np.ndarray, template: RecurrentState, device: th.device) -> RecurrentState:
    """``predict``'s ``state`` argument as a :class:`RecurrentState`, if it has the template's structure.

    :raises ValueError: naming the expected and the received structure (a state for another number of envs,
        another cell, or sb3-contrib's ``(h, c)`` where this policy carries another layout).
    """
    arrays = (state,) if isinstance(state, np.ndarray) else tuple(state)
    expected = tuple(tuple(t.shape) for t in template.tensors)
    received = tuple(np.shape(a) for a in arrays)
    if received != expected:
        raise ValueError(
            f"state has {len(received)} array(s) of shapes {list(received)}; this policy, with observations for "
            f"{template.batch_size} env(s), expects {len(expected)} of shapes {list(expected)} "
            "(n_layers, n_envs, state size): pass the state predict returned, or None at the start"
        )
    return RecurrentState.from_numpy(arrays, device)


class RecurrentPredictMixin:
    """SB3's ``predict`` for a recurrent policy: ``(actions, state)`` from ``(obs, state, episode_start)``.

    The policy provides ``initial_state(n_envs)`` and ``_predict(obs, state, episode_start, deterministic)``,
    which resets the state where an episode starts and returns ``(actions, next_state)``.
    """

    # provided by SB3's BasePolicy, which every class using this mixin also derives from
    action_space: spaces.Space
    device: th.device
    squash_output: bool
    if TYPE_CHECKING:

        def set_training_mode(self, mode: bool) -> None: ...

        def obs_to_tensor(self, observation: np.ndarray | dict[str, np.ndarray]) -> tuple[PyTorchObs, bool]: ...

        def unscale_action(self, scaled_action: np.ndarray) -> np.ndarray: ...

    def initial_state(self, n_envs: int) -> RecurrentState:
        raise NotImplementedError

    def _predict(
        self,
        observation: PyTorchObs,
        state: RecurrentState,
        episode_start: th.Tensor,
        deterministic: bool = False,
        action_masks: th.Tensor | None = None,
    ) -> tuple[th.Tensor, RecurrentState]:
        raise NotImplementedError

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Actions and the next hidden state, as SB3's ``evaluate_policy`` and the RL Zoo expect.

        :param observation: one observation or a batch (one per env).
        :param state: the hidden state returned by the previous call (``None`` at the start: zeros).
        :param episode_start: ``(n_envs,)`` True where an episode starts (its state is zeroed).
        :param deterministic: take the most likely (greedy) action.
        :param action_masks: ``(n_envs, mask_width)`` True where an action is allowed (sb3-contrib's layout).
        """
        self.set_training_mode(False)
        obs_tensor, vectorized_env = self.obs_to_tensor(observation)
        n_envs = (next(iter(obs_tensor.values())) if isinstance(obs_tensor, dict) else obs_tensor).shape[0]
        template = self.initial_state(n_envs)
        hidden = template if state is None else _checked_state(state, template, self.device)
        starts = np.zeros(n_envs) if episode_start is None else np.asarray(episode_start, dtype=np.float32)
        if starts.shape not in ((n_envs,), (n_envs, 1)):
            raise ValueError(
                f"episode_start has shape {starts.shape}; with observations for {n_envs} env(s) it must be ({n_envs},)"
            )
        masks = None if action_masks is None else checked_masks(action_masks, n_envs, self.action_space)
        with th.no_grad():
            actions_tensor, new_state = self._predict(
                obs_tensor,
                hidden,
                th.as_tensor(starts.reshape(n_envs), device=self.device),
                deterministic=deterministic,
                action_masks=None if masks is None else th.as_tensor(masks, device=self.device),
            )
        actions = actions_tensor.cpu().numpy().reshape((-1, *(self.action_space.shape or ())))
        if isinstance(self.action_space, spaces.Box):
            if self.squash_output:
                actions = self.unscale_action(actions)
            else:
                actions = np.clip(actions, self.action_space.low, self.action_space.high)
        if not vectorized_env:
            actions = actions.squeeze(axis=0)
        return actions, new_state.numpy()
