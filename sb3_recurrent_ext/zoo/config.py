"""The ``zoo_configs`` files: where they are, reading an entry, and turning rl-zoo's strings into Python.

rl-zoo's YAML writes ``policy_kwargs`` as a ``"dict(...)"`` string and schedules as ``lin_<x>``; every place that
reads an entry (the tuner's ``--enqueue-config``, ``scripts/best_hyperparams.py``, the benchmarks, the main job)
goes through these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from rl_zoo3.utils import linear_schedule
from torch import nn

# package data, so the same path works in a wheel, an sdist and an editable install (the repository's
# zoo_configs/ is a link to it)
ZOO_CONFIGS = Path(__file__).resolve().parents[1] / "zoo_configs"
# what rl_zoo3's eval of a ``policy_kwargs`` string may name
_POLICY_KWARGS_NAMESPACE = {"dict": dict, "nn": nn}
# keys of an entry that are not arguments of the algorithm
_NOT_ARGUMENTS = ("policy", "n_timesteps", "normalize", "n_envs", "policy_kwargs")


def default_config(algo: str) -> Path:
    """``zoo_configs/<algo>.yml``."""
    return ZOO_CONFIGS / f"{algo}.yml"


def read_entry(config: str | Path, env_id: str) -> dict[str, Any]:
    """``env_id``'s entry of a zoo YAML file, as written (``policy_kwargs`` still rl-zoo's string)."""
    entries = yaml.safe_load(Path(config).read_text())
    if not isinstance(entries, dict) or env_id not in entries:
        known = sorted(entries) if isinstance(entries, dict) else []
        raise ValueError(f"{config} has no entry for {env_id!r}; it has {known}")
    return dict(entries[env_id])


def parse_policy_kwargs(value: str | dict[str, Any] | None) -> dict[str, Any]:
    """A YAML entry's ``policy_kwargs`` (rl-zoo's ``"dict(...)"`` string or a mapping) as a dict."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    return dict(eval(value, _POLICY_KWARGS_NAMESPACE))  # same eval as rl_zoo3's, on the user's own config


def schedule_start(value: Any) -> Any:
    """rl-zoo's ``lin_<x>`` schedule string -> ``x``; any other value unchanged."""
    if isinstance(value, str) and value.startswith("lin_"):
        return float(value.removeprefix("lin_"))
    return value


def parse_schedule(value: Any) -> Any:
    """rl-zoo's ``lin_<x>`` -> the linear schedule from ``x`` to 0, as rl_zoo3 reads it; any other value unchanged."""
    start = schedule_start(value)
    return linear_schedule(start) if start is not value else value


def entry_arguments(entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """An entry as (the algorithm's arguments with schedules parsed, ``policy_kwargs`` as a dict, ``n_envs``).

    ``policy``, ``n_timesteps`` and ``normalize`` are left out: the caller decides those.
    """
    arguments = {key: parse_schedule(value) for key, value in entry.items() if key not in _NOT_ARGUMENTS}
    return arguments, parse_policy_kwargs(entry.get("policy_kwargs")), int(entry.get("n_envs", 1))
