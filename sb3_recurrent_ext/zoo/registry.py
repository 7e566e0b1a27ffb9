"""Our algorithms registered in the RL Zoo, without copying or forking rl_zoo3.

rl_zoo3 has no plugin hook, so :func:`register` adds our algorithms to its own ``ALGOS``,
``HYPERPARAMS_SAMPLER`` and ``HYPERPARAMS_CONVERTER`` (as rl_zoo3's docs show for SBX) and wraps two
``ExperimentManager`` methods, for our algorithms only:

* ``_preprocess_hyperparams``: a YAML entry's ``net_spec:`` (an SLM-style net spec, inline or a file path) is
  turned into kwargs with :func:`~sb3_recurrent_ext.net_spec_to_kwargs`; the entry's own keys win.
* ``objective``: the sampled ``policy_kwargs`` are merged into the YAML's instead of replacing them (a sampled
  ``cell_type`` also switches the policy alias, ``MlpLstmPolicy`` <-> ``MlpGruPolicy``), and a trial that
  raises is recorded as failed (its value NaN, the error in its ``failure`` user attribute) while the study
  goes on; each trial records the ``worker`` (host:pid) that ran it.

Call :func:`register` before rl_zoo3 builds its argument parser (``scripts/train.py`` does).
"""

from __future__ import annotations

import contextvars
import functools
import os
import socket
import traceback
import warnings
from typing import Any

import optuna
import rl_zoo3
import rl_zoo3.exp_manager
import rl_zoo3.hyperparams_opt
import rl_zoo3.utils

from sb3_recurrent_ext.common.envs import register_memory_suites
from sb3_recurrent_ext.common.policies import ALIAS_CELLS, alias_infix
from sb3_recurrent_ext.common.recurrent.spec import net_spec_to_kwargs
from sb3_recurrent_ext.dqn_recurrent import RecurrentDQN
from sb3_recurrent_ext.ppo_recurrent_rnd import RecurrentPPO, RecurrentPPORND
from sb3_recurrent_ext.ppo_recurrent_rnd.policies import SB3_CONTRIB_ALIASES
from sb3_recurrent_ext.zoo import resume, samplers

OUR_ALGOS: dict[str, type] = {
    "recurrent_ppo_rnd": RecurrentPPORND,
    "recurrent_ppo": RecurrentPPO,  # use_rnd=False unless the entry says otherwise
    "recurrent_dqn": RecurrentDQN,
}
SAMPLERS = {
    "recurrent_ppo_rnd": samplers.sample_recurrent_ppo_rnd_params,
    "recurrent_ppo": samplers.sample_recurrent_ppo_params,
    "recurrent_dqn": samplers.sample_recurrent_dqn_params,
}
CONVERTERS = {
    "recurrent_ppo_rnd": samplers.convert_recurrent_ppo_params,
    "recurrent_ppo": samplers.convert_recurrent_ppo_no_rnd_params,
    "recurrent_dqn": samplers.convert_recurrent_dqn_params,
}
# the experiment's YAML hyperparameters while its objective runs (read by the sampler wrappers)
_yaml_hyperparams: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("yaml_hyperparams")
_registered = False


def switch_cell(policy: Any, cell_type: str) -> Any:
    """The policy alias of the same family with the given cell (``MlpLstmPolicy``, "GRU" -> ``MlpGruPolicy``)."""
    if not isinstance(policy, str):
        return policy
    infix_of = {cell.lower(): infix for infix, cell in ALIAS_CELLS.items()}
    new_infix, old_infix = infix_of.get(str(cell_type).lower()), alias_infix(policy)
    if new_infix is None or old_infix is None:
        return policy
    return policy[: -len(f"{old_infix}Policy")] + f"{new_infix}Policy"


def merge_sampled(yaml_hyperparams: dict[str, Any], sampled: dict[str, Any]) -> dict[str, Any]:
    """Sampled hyperparameters whose ``policy_kwargs`` extend the YAML's instead of replacing them."""
    merged = dict(sampled)
    yaml_policy_kwargs = dict(yaml_hyperparams.get("policy_kwargs") or {})
    # a YAML in sb3-contrib's names (lstm_hidden_size=64) must not contradict a sampled rnn_hidden_size
    for alias, ours in SB3_CONTRIB_ALIASES.items():
        if ours in sampled.get("policy_kwargs", {}):
            yaml_policy_kwargs.pop(alias, None)
    merged["policy_kwargs"] = {**yaml_policy_kwargs, **sampled.get("policy_kwargs", {})}
    cell_type = merged["policy_kwargs"].get("cell_type")
    if cell_type is not None and "policy" in yaml_hyperparams:
        merged["policy"] = switch_cell(yaml_hyperparams["policy"], cell_type)
    return merged


def _merging_sampler(algo: str) -> Any:
    sampler = SAMPLERS[algo]

    @functools.wraps(sampler)
    def sample(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
        merged = merge_sampled(_yaml_hyperparams.get({}), sampler(trial, n_actions, n_envs, additional_args))
        # what the trial's model gets, YAML and sampled keys together (visible in the study and the dashboard)
        trial.set_user_attr("policy_kwargs", repr(merged["policy_kwargs"]))
        return merged

    return sample


def expand_net_spec(hyperparams: dict[str, Any], algo: str) -> dict[str, Any]:
    """Replace a ``net_spec`` entry by the kwargs it gives; keys the entry sets itself win."""
    if "net_spec" not in hyperparams:
        return hyperparams
    hyperparams = dict(hyperparams)
    spec_kwargs = net_spec_to_kwargs(hyperparams.pop("net_spec"), algo=algo)
    policy_kwargs = {**spec_kwargs.pop("policy_kwargs", {}), **(hyperparams.get("policy_kwargs") or {})}
    for key, value in spec_kwargs.items():
        hyperparams.setdefault(key, value)
    hyperparams["policy_kwargs"] = policy_kwargs
    if "cell_type" in policy_kwargs and "policy" in hyperparams:
        hyperparams["policy"] = switch_cell(hyperparams["policy"], policy_kwargs["cell_type"])
    return hyperparams


def _wrap_experiment_manager() -> None:
    # Any: two of its methods are replaced below, which mypy forbids on the typed class (as resume.install does)
    manager: Any = rl_zoo3.exp_manager.ExperimentManager
    preprocess, objective = manager._preprocess_hyperparams, manager.objective

    @functools.wraps(preprocess)
    def _preprocess_hyperparams(self: Any, hyperparams: dict[str, Any]) -> Any:
        hyperparams, *rest = preprocess(self, hyperparams)
        if self.algo in OUR_ALGOS:
            hyperparams = expand_net_spec(
                hyperparams, "recurrent_dqn" if self.algo == "recurrent_dqn" else "recurrent_ppo_rnd"
            )
        return (hyperparams, *rest)

    @functools.wraps(objective)
    def _objective(self: Any, trial: optuna.Trial) -> float:
        if self.algo not in OUR_ALGOS:
            return objective(self, trial)
        token = _yaml_hyperparams.set(self._hyperparams)
        # which worker ran the trial (several machines may share one study)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            return objective(self, trial)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # one bad trial must not end the study
            trial.set_user_attr("failure", f"{type(error).__name__}: {error}")
            warnings.warn(f"trial {trial.number} failed and is recorded as failed:\n{traceback.format_exc()}", stacklevel=1)
            return float("nan")
        finally:
            _yaml_hyperparams.reset(token)

    manager._preprocess_hyperparams = _preprocess_hyperparams
    manager.objective = _objective
    resume.install(manager, lambda self: self.algo in OUR_ALGOS)


def register() -> None:
    """Add our algorithms, samplers and converters to rl_zoo3's tables (idempotent)."""
    global _registered
    if _registered:
        return
    register_memory_suites()
    for table in (rl_zoo3.utils.ALGOS, rl_zoo3.ALGOS):
        table.update(OUR_ALGOS)
    rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER.update({algo: _merging_sampler(algo) for algo in SAMPLERS})
    rl_zoo3.hyperparams_opt.HYPERPARAMS_CONVERTER.update(CONVERTERS)
    # exp_manager imported the two tables by name; they are the same dict objects, updated in place
    assert rl_zoo3.exp_manager.HYPERPARAMS_SAMPLER is rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER
    _wrap_experiment_manager()
    _registered = True
