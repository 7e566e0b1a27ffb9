"""Argument checks shared by every module: each raises a ``ValueError`` naming the argument, the value and what
is allowed (SB3's guard rails, as errors a user can act on)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np


def closest_hint(value: str, allowed: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the allowed value closest to ``value``, or ``""``."""
    match = difflib.get_close_matches(value, list(allowed), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def check_positive_int(value: object, argument: str) -> int:
    """``value`` as an ``int`` if it is an integer >= 1 (numpy integers too, bools not)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{argument}={value!r} must be a positive integer")
    return int(value)


def check_unit_interval(value: object, argument: str) -> float:
    """``value`` as a ``float`` if it is a real number in [0, 1] (``"0.99"``, a string, is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{argument}={value!r} must be a number in [0, 1]")
    return float(value)
