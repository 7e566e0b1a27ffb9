"""Argument checks shared by every module: each raises a ``ValueError`` naming the argument, the value and what
is allowed (SB3's guard rails, as errors a user can act on)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import numpy as np


class ConflictingArgumentsError(ValueError, AssertionError):
    """Two arguments that contradict each other. A ``ValueError`` like every bad argument here, and an
    ``AssertionError`` too, because sb3-contrib's ``RecurrentPPO`` asserts on the same combinations and code written
    for it (its own tests among them) catches that."""


def closest_hint(value: str, allowed: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the allowed value closest to ``value``, or ``""``."""
    match = difflib.get_close_matches(value, list(allowed), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def check_positive_int(value: object, argument: str) -> int:
    """``value`` as an ``int`` if it is an integer >= 1 (numpy integers too, bools not)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{argument}={value!r} must be a positive integer")
    return int(value)


def _check_real(value: object, argument: str, holds: Callable[[float], bool], allowed: str) -> float:
    """``value`` as a ``float`` if it is a real number (``"0.01"``, a string, is not; a bool is not) for which
    ``holds``; else a ``ValueError`` naming ``argument``, the value and ``allowed``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or not holds(float(value)):
        raise ValueError(f"{argument}={value!r} must be {allowed}")
    return float(value)


def check_positive_number(value: object, argument: str, allowed: str = "a positive number") -> float:
    """``value`` as a ``float`` if it is a real number > 0."""
    return _check_real(value, argument, lambda number: number > 0, allowed)


def check_non_negative_number(value: object, argument: str, allowed: str = "a number >= 0") -> float:
    """``value`` as a ``float`` if it is a real number >= 0."""
    return _check_real(value, argument, lambda number: number >= 0, allowed)


def check_unit_interval(value: object, argument: str) -> float:
    """``value`` as a ``float`` if it is a real number in [0, 1]."""
    return _check_real(value, argument, lambda number: 0.0 <= number <= 1.0, "a number in [0, 1]")


def check_range(value: object, argument: str) -> tuple[float, float]:
    """A ``(low, high)`` pair of numbers with ``low < high``, as floats."""
    if isinstance(value, list | tuple) and len(value) == 2:
        try:
            low, high = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            pass
        else:
            if low < high:
                return low, high
    raise ValueError(f"{argument}={value!r} must be a pair (low, high) of numbers with low < high")


def check_finite_step(observations: np.ndarray | dict[str, np.ndarray], rewards: np.ndarray, timestep: int) -> None:
    """Raise before anything is stored or trained on when an env returned NaN or inf.

    One vectorised ``isfinite`` per array (about a microsecond for a handful of envs); without it the first sign
    is an obscure torch error after the parameters have already turned NaN.

    :param observations: ``(n_envs, ...)`` (or a dict of them) returned by ``env.step``.
    :param rewards: ``(n_envs,)``.
    :param timestep: the model's ``num_timesteps`` after the step, for the message.
    """
    observation_arrays = observations.values() if isinstance(observations, dict) else (observations,)
    if np.isfinite(rewards).all() and all(np.isfinite(array).all() for array in observation_arrays):
        return
    arrays = {"reward": rewards}
    if isinstance(observations, dict):
        arrays.update({f"observation[{key!r}]": value for key, value in observations.items()})
    else:
        arrays["observation"] = observations
    for name, array in arrays.items():
        finite = np.isfinite(np.asarray(array).reshape(len(array), -1)).all(axis=1)
        if not finite.all():
            env_index = int(np.flatnonzero(~finite)[0])
            raise ValueError(
                f"env {env_index} returned a non-finite {name} at timestep {timestep}: "
                f"{np.asarray(array)[env_index]!r}; wrap the env in SB3's VecCheckNan to find the cause"
            )


def check_policy_class(algorithm: str, policy_class: type, expected: type) -> None:
    """A policy class the algorithm can train; else, at construction or ``load``, an error saying what to do.

    Why at ``load`` too: SB3 rebuilds the model from the saved policy class, so a file saved by another algorithm
    (a RecurrentPPORND zip given to ``RecurrentDQN.load``) would otherwise load and fail later, in ``learn``.
    """
    if not (isinstance(policy_class, type) and issubclass(policy_class, expected)):
        name = getattr(policy_class, "__qualname__", repr(policy_class))
        module = getattr(policy_class, "__module__", "?")
        raise ValueError(
            f"{algorithm} cannot use the policy {module}.{name}: it needs a {expected.__name__}. A file saved by "
            "another algorithm must be loaded with that algorithm's class"
        )
