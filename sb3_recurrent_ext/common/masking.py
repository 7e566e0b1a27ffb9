"""Invalid-action masking with sb3-contrib's conventions, for both algorithms.

An env offers masks through an ``action_masks()`` method (sb3-contrib's ``ActionMasker`` wrapper adds one); a mask
is one boolean per choice, True where the choice is allowed: ``n`` for ``Discrete(n)``, ``sum(nvec)`` for
``MultiDiscrete(nvec)``, and ``2 * n`` for ``MultiBinary(n)`` (each bit's "may be 0", "may be 1"), as in
sb3-contrib's ``MaskablePPO``. The maskable distributions are sb3-contrib's own.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable import callbacks
from sb3_contrib.common.maskable.distributions import MaskableDistribution, make_masked_proba_distribution
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import GymEnv

MASKABLE_SPACES = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


def mask_width(action_space: spaces.Space) -> int:
    """Booleans in one env's mask (0: the space cannot be masked)."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return 2 * int(np.prod(action_space.n))
    return 0


def resolve_use_masking(use_masking: bool | None, env: GymEnv | None, action_space: spaces.Space | None) -> bool:
    """``use_masking=None``: on when ``env`` offers ``action_masks()``. ``True`` needs such an env and a maskable space.

    Without an env (``load`` without one) there is nothing to check yet; the saved value replaces this one.
    """
    if use_masking not in (None, True, False):
        raise ValueError(f"use_masking={use_masking!r} must be None (on when the env offers masks), True or False")
    if use_masking is False:
        return False
    offered = env is not None and is_masking_supported(env)
    if use_masking and action_space is not None and not isinstance(action_space, MASKABLE_SPACES):
        raise ValueError(f"use_masking=True needs a Discrete, MultiDiscrete or MultiBinary action space, not {action_space}")
    if use_masking and env is not None and not offered:
        raise ValueError("use_masking=True, but the env has no action_masks() method: wrap it in sb3-contrib's ActionMasker")
    return bool(offered and isinstance(action_space, MASKABLE_SPACES)) if use_masking is None else True


def checked_masks(masks: Any, n_envs: int, action_space: spaces.Space) -> np.ndarray:
    """``masks`` as a boolean ``(n_envs, mask_width)`` array, or a clear error."""
    width = mask_width(action_space)
    if width == 0:
        raise ValueError(f"action_masks were given, but a {action_space} action space cannot be masked")
    array = np.asarray(masks)
    if array.size != n_envs * width:
        raise ValueError(
            f"action_masks has shape {array.shape}; {n_envs} env(s) with {action_space} need {n_envs} x {width} booleans"
        )
    array = array.reshape(n_envs, width).astype(bool)
    # a sub-action with no allowed choice would make its distribution undefined (all logits -1e8)
    for block in np.split(array, _block_ends(action_space), axis=1):
        if not block.any(axis=1).all():
            raise ValueError(f"action_masks allow no action for some env or sub-action: {array.tolist()}")
    return array


def env_masks(env: GymEnv, n_envs: int, action_space: spaces.Space) -> np.ndarray:
    """The env's current masks, ``(n_envs, mask_width)`` booleans (sb3-contrib's ``get_action_masks``)."""
    return checked_masks(get_action_masks(env), n_envs, action_space)


def _block_ends(action_space: spaces.Space) -> list[int]:
    """Column indices where one sub-action's choices end and the next one's begin."""
    if isinstance(action_space, spaces.MultiDiscrete):
        sizes = [int(n) for n in action_space.nvec.ravel()]
    elif isinstance(action_space, spaces.MultiBinary):
        sizes = [2] * int(np.prod(action_space.n))
    else:
        return []
    return list(np.cumsum(sizes)[:-1])


def masked_distribution(action_space: spaces.Space, action_logits: th.Tensor, masks: th.Tensor) -> MaskableDistribution:
    """sb3-contrib's maskable distribution over the policy's action-net output, under ``masks``.

    :param action_logits: ``(N, n)``, ``(N, sum(nvec))``, or for ``MultiBinary(n)`` SB3's Bernoulli logits ``(N, n)``.
    :param masks: ``(N, mask_width)`` booleans.
    """
    distribution = make_masked_proba_distribution(action_space)
    if isinstance(action_space, spaces.MultiBinary):
        # Bernoulli(logit l) is the categorical over {0, 1} with logits (0, l): (N, n) -> (N, n, 2) -> (N, 2n)
        action_logits = th.stack((th.zeros_like(action_logits), action_logits), dim=-1).flatten(1)
    distribution.proba_distribution(action_logits)
    distribution.apply_masking(masks)
    return distribution


def masked_argmax(q_values: th.Tensor, masks: th.Tensor | None) -> th.Tensor:
    """Argmax over the last axis among the allowed actions only (all of them when ``masks`` is None)."""
    if masks is None:
        return q_values.argmax(dim=-1)
    return q_values.masked_fill(~masks, -th.inf).argmax(dim=-1)


def random_allowed_actions(masks: np.ndarray) -> np.ndarray:
    """One uniformly random allowed action per row of ``(n_envs, n)`` masks (``np.random``, which SB3 seeds)."""
    scores = np.where(masks, np.random.rand(*masks.shape), -1.0)
    return scores.argmax(axis=1)


class MaskableEvalCallback(callbacks.MaskableEvalCallback):
    """sb3-contrib's ``MaskableEvalCallback`` (same arguments), evaluating a recurrent model with its hidden state
    carried through each episode.

    Why: with ``use_masking=True``, sb3-contrib's maskable ``evaluate_policy`` (2.9.2) keeps the state ``predict``
    returns under another name and passes ``state=None`` at every step, so the model would be scored without
    memory. Here the model's ``predict`` sees the state it returned at the previous step instead.
    """

    def _on_step(self) -> bool:
        model = self.model
        self.model = cast(BaseAlgorithm, _StateCarrier(model))
        try:
            return super()._on_step()
        finally:
            self.model = model


class _StateCarrier:
    """``model`` whose ``predict`` passes on the state of its previous call where the caller passes ``None``."""

    def __init__(self, model: BaseAlgorithm) -> None:
        self._model = model
        self._state: tuple[np.ndarray, ...] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, **kwargs: Any) -> tuple[Any, Any]:
        # the state is zeroed where episode_start is True, so a state left from an earlier evaluation never leaks
        state = self._state if state is None else state
        actions, self._state = self._model.predict(observation, state, episode_start, **kwargs)
        return actions, self._state
