"""A tuning study's trial as a ``zoo_configs`` entry (what the trial's model was built with, in rl-zoo's format).

rl_zoo3 prints the best trial's raw sampled values (``one_minus_gamma``, ``batch_size_pow``, ...); a YAML entry
needs the converted hyperparameters, merged into the entry the study ran with (its ``normalize``, ``n_envs``,
``policy`` and ``policy_kwargs`` that were not sampled), as the tuner merged them.

    python scripts/best_hyperparams.py --algo recurrent_dqn --env CartPoleNoVel-v1 -f logs/
"""

from __future__ import annotations

from typing import Any

import optuna
import yaml
from torch import nn

from sb3_recurrent_ext.zoo.config import parse_policy_kwargs
from sb3_recurrent_ext.zoo.registry import CONVERTERS, merge_sampled


def _python_literal(value: Any) -> str:
    if isinstance(value, type) and issubclass(value, nn.Module):
        return f"nn.{value.__name__}"
    if isinstance(value, dict):
        return "dict(" + ", ".join(f"{key}={_python_literal(item)}" for key, item in value.items()) + ")"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_python_literal(item) for item in value) + "]"
    return repr(value)


def format_policy_kwargs(policy_kwargs: dict[str, Any]) -> str:
    """``{"activation_fn": nn.ReLU, "net_arch": [64]}`` -> ``"dict(activation_fn=nn.ReLU, net_arch=[64])"``."""
    return _python_literal(dict(policy_kwargs))


def trial_entry(trial: optuna.trial.FrozenTrial, algo: str, yaml_entry: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters ``trial`` ran with, as a YAML entry: ``yaml_entry`` updated by the converted sample.

    :param trial: A trial of a study made by ``scripts/train.py -optimize`` for ``algo``.
    :param algo: ``recurrent_ppo_rnd``, ``recurrent_ppo`` or ``recurrent_dqn``.
    :param yaml_entry: The ``zoo_configs`` entry the study was run with (``policy_kwargs`` as in the file).
    """
    if algo not in CONVERTERS:
        raise ValueError(f"algo={algo!r} has no sampler here; allowed values: {sorted(CONVERTERS)}")
    entry = dict(yaml_entry)
    entry["policy_kwargs"] = parse_policy_kwargs(entry.get("policy_kwargs"))
    merged = merge_sampled(entry, CONVERTERS[algo](trial.params))
    entry.update(merged)
    entry["policy_kwargs"] = format_policy_kwargs(entry["policy_kwargs"])
    return entry


def best_trial(study: optuna.Study, trial_number: int | None = None) -> optuna.trial.FrozenTrial:
    """The study's best complete trial, or trial ``trial_number``; a clear error when there is none."""
    if trial_number is not None:
        numbers = [trial.number for trial in study.trials]
        if trial_number not in numbers:
            raise ValueError(f"trial_number={trial_number} is not in study {study.study_name!r} (trials: {numbers})")
        return study.trials[numbers.index(trial_number)]
    # optuna records a NaN objective (a trial that raised, see the objective wrapper) as FAIL, never COMPLETE
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"study {study.study_name!r} has no complete trial with a value")
    # a COMPLETE single-objective trial has a value
    return max(complete, key=lambda trial: float(trial.value or 0.0))


def entry_yaml(env_id: str, entry: dict[str, Any], source: str) -> str:
    """The entry as rl-zoo YAML text, under ``env_id``, after a ``# source:`` comment."""
    body = yaml.safe_dump({env_id: entry}, sort_keys=False, default_flow_style=False, width=1_000_000)
    return f"# source: {source}\n{body}"
