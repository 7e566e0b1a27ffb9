"""Start a tuning study from a ``zoo_configs`` entry: its own values become the study's first trial.

A sampler that starts from random draws may spend a whole study far from the one region known to work (three
PendulumNoVel-v1 studies never reached rl-zoo's own values). Optuna's ``enqueue_trial`` puts a trial with fixed
values at the head of the queue; the TPE sampler then models the study around it. ``--enqueue-config`` does that
with the YAML entry the study tunes, written in the sampler's raw parameters (``one_minus_gamma``,
``batch_size_pow``, ...), the inverse of the converters in :mod:`sb3_recurrent_ext.zoo.samplers`.

A value the sampler cannot take exactly is fitted to its range (clipped, or the nearest numeric choice), and a
value it has no choice for is left out (the trial samples it); :func:`entry_as_trial_params` says which.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileBackend
from torch import nn

from sb3_recurrent_ext.common.policies import ALIAS_CELLS, alias_infix
from sb3_recurrent_ext.common.recurrent.nets import resolve_cell_type
from sb3_recurrent_ext.zoo.config import parse_policy_kwargs, read_entry, schedule_start
from sb3_recurrent_ext.zoo.registry import OUR_ALGOS, SAMPLERS, expand_net_spec
from sb3_recurrent_ext.zoo.samplers import FC_HID_LAYERS

_NET_ARCHS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}  # rl-zoo's converter, pi and vf alike
_ACTIVATIONS = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.ELU: "elu", nn.LeakyReLU: "leaky_relu"}


def _cell_type(entry: dict[str, Any]) -> str:
    cell = entry["policy_kwargs"].get("cell_type")
    if cell is None:
        infix = alias_infix(str(entry.get("policy", "")))
        cell = "LSTM" if infix is None else ALIAS_CELLS[infix]
    return resolve_cell_type(str(cell))


def _recurrent_values(entry: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    policy_kwargs = entry["policy_kwargs"]
    fc_hid_layers = list(policy_kwargs.get("fc_hid_layers", []))
    return {
        "cell_type": _cell_type(entry),
        "rnn_hidden_size": policy_kwargs.get("rnn_hidden_size", policy_kwargs.get("lstm_hidden_size", 64)),
        "rnn_num_layers": policy_kwargs.get("rnn_num_layers", policy_kwargs.get("n_lstm_layers", 1)),
        "fc_hid_layers": next((name for name, layers in FC_HID_LAYERS.items() if layers == fc_hid_layers), None),
        "seq_len": arguments["seq_len"],
    }


def _ppo_values(entry: dict[str, Any], arguments: dict[str, Any], algo: str) -> dict[str, Any]:
    policy_kwargs = entry["policy_kwargs"]
    net_arch = policy_kwargs.get("net_arch", dict(pi=[64], vf=[64]))
    pi, vf = (net_arch.get("pi"), net_arch.get("vf")) if isinstance(net_arch, dict) else (net_arch, net_arch)
    raw = {
        "batch_size_pow": math.log2(arguments["batch_size"]),
        "n_steps_pow": math.log2(arguments["n_steps"]),
        "one_minus_gamma": 1 - arguments["gamma"],
        "one_minus_gae_lambda": 1 - arguments["gae_lambda"],
        "learning_rate": arguments["learning_rate"],
        "ent_coef": arguments["ent_coef"],
        "clip_range": arguments["clip_range"],
        "n_epochs": arguments["n_epochs"],
        "max_grad_norm": arguments["max_grad_norm"],
        "net_arch": next((name for name, layers in _NET_ARCHS.items() if layers == pi == vf), None),
        "activation_fn": _ACTIVATIONS.get(policy_kwargs.get("activation_fn", nn.Tanh)),
        **_recurrent_values(entry, arguments),
    }
    if algo == "recurrent_ppo_rnd":
        raw["use_rnd"] = arguments["use_rnd"]
        if arguments["use_rnd"]:
            raw["one_minus_int_gamma"] = 1 - arguments["int_gamma"]
            raw["int_adv_coef"] = arguments["int_adv_coef"]
    return raw


def _dqn_values(entry: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    train_freq = arguments["train_freq"]
    seq_len = arguments["seq_len"]
    return {
        "one_minus_gamma": 1 - arguments["gamma"],
        "learning_rate": arguments["learning_rate"],
        "batch_size": arguments["batch_size"],
        # rl-zoo writes train_freq as 4 or [4, "step"]
        "train_freq": train_freq[0] if isinstance(train_freq, list | tuple) else train_freq,
        "gradient_steps": arguments["gradient_steps"],
        "target_update_interval": arguments["target_update_interval"],
        "exploration_fraction": arguments["exploration_fraction"],
        "exploration_final_eps": arguments["exploration_final_eps"],
        **_recurrent_values(entry, arguments),
        "burn_in_fraction": arguments["burn_in"] / seq_len,
        "stride_fraction": (arguments["sequence_stride"] or seq_len) / seq_len,
        "n_step": arguments["n_step"],
        "prioritized_replay": arguments["prioritized_replay"],
        "dueling": entry["policy_kwargs"].get("dueling", False),
    }


def _same(value: Any, choice: Any) -> bool:
    """Equal, and both bools or both not (``1 == True`` in Python)."""
    return value == choice and isinstance(value, bool) == isinstance(choice, bool)


# what _fit returns when nothing fits (None can be a choice: seq_len=None, whole sequences)
NO_FIT = object()


def _fit(value: Any, distribution: BaseDistribution) -> tuple[Any, bool]:
    """``value`` inside ``distribution`` and whether it is exact; :data:`NO_FIT` when no choice fits."""
    if isinstance(distribution, CategoricalDistribution):
        exact = [choice for choice in distribution.choices if _same(value, choice)]
        if exact:
            return exact[0], True
        numeric = [c for c in distribution.choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if isinstance(value, int | float) and not isinstance(value, bool) and numeric:
            return min(numeric, key=lambda choice: abs(choice - value)), False
        return NO_FIT, False
    assert isinstance(distribution, FloatDistribution | IntDistribution)
    if value is None:
        return NO_FIT, False
    fitted = min(max(value, distribution.low), distribution.high)
    if isinstance(distribution, IntDistribution):
        fitted = round(fitted)
    return fitted, fitted == value


def _distributions(algo: str, use_rnd: bool) -> dict[str, BaseDistribution]:
    """The sampler's parameter ranges (the RND ones only when ``use_rnd``), from one dry trial."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line for the dry study
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    finally:
        optuna.logging.set_verbosity(verbosity)
    if algo == "recurrent_ppo_rnd":
        study.enqueue_trial({"use_rnd": use_rnd})
    trial = study.ask()
    SAMPLERS[algo](trial, 1, 1, {})
    return trial.distributions


def entry_as_trial_params(algo: str, entry: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A zoo YAML entry as the raw parameters of ``algo``'s sampler, and notes on what was not exact.

    Keys the entry does not set take the algorithm's defaults, so the trial runs what the entry runs. Notes name
    the values that were fitted to the sampler's range or left out (sampled instead).
    """
    if algo not in SAMPLERS:
        raise ValueError(f"--enqueue-config works for {sorted(SAMPLERS)}, not --algo {algo!r}")
    entry = {**entry, "policy_kwargs": parse_policy_kwargs(entry.get("policy_kwargs"))}
    entry = expand_net_spec(entry, "recurrent_dqn" if algo == "recurrent_dqn" else "recurrent_ppo_rnd")
    signature = inspect.signature(OUR_ALGOS[algo]).parameters
    defaults = {name: p.default for name, p in signature.items() if p.default is not inspect.Parameter.empty}
    # the algorithm's arguments as the entry sets them, else their defaults; lin_x schedules as x
    arguments = {key: schedule_start(entry.get(key, default)) for key, default in defaults.items()}
    wanted = _dqn_values(entry, arguments) if algo == "recurrent_dqn" else _ppo_values(entry, arguments, algo)
    distributions = _distributions(algo, bool(wanted.get("use_rnd", False)))
    params: dict[str, Any] = {}
    notes = [
        f"{key}: {value} becomes the constant {schedule_start(value)} (the sampler tunes constants)"
        for key, value in entry.items()
        if schedule_start(value) is not value
    ]
    for name, distribution in distributions.items():
        value = wanted.get(name, NO_FIT)
        fitted, exact = (NO_FIT, False) if value is NO_FIT else _fit(value, distribution)
        if fitted is NO_FIT:
            notes.append(f"{name}: the entry's value has no choice in {distribution}; sampled instead")
            continue
        # 1 - 0.9 is 0.09999999999999998 in floats: keep the entry's digits
        params[name] = float(f"{fitted:.12g}") if isinstance(fitted, float) else fitted
        if not exact:
            notes.append(f"{name}: the sampler cannot take the entry's {value!r}; {fitted!r} used")
    return params, notes


def enqueue_config_trial(
    storage: str, study_name: str, algo: str, config: str | Path, env_id: str
) -> tuple[dict[str, Any], list[str]]:
    """Enqueue ``env_id``'s entry of ``config`` as a trial of the study (once: workers that repeat it skip it).

    ``storage`` as rl_zoo3's ``--storage`` takes it: a database URL, or a ``.log`` file for Optuna's journal.
    """
    params, notes = entry_as_trial_params(algo, read_entry(config, env_id))
    study_storage: str | optuna.storages.BaseStorage = storage
    if storage.endswith(".log"):  # as rl_zoo3 opens it
        study_storage = optuna.storages.JournalStorage(JournalFileBackend(storage))
    # the direction rl_zoo3 creates its studies with, so that its load_if_exists finds this one
    study = optuna.create_study(storage=study_storage, study_name=study_name, load_if_exists=True, direction="maximize")
    study.enqueue_trial(params, skip_if_exists=True)
    return params, notes
