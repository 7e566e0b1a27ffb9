"""Tuning studies that notice dead workers: Optuna's heartbeat and ``RetryFailedTrialCallback``.

Without a heartbeat, a worker killed mid-trial (``kill -9``, a lost machine) leaves its trial RUNNING forever: a
rerun counts it as done, and ``--max-total-trials`` counts it too. With one, every running trial records a
heartbeat every ``heartbeat_interval`` seconds; a trial silent for ``grace_period`` seconds is marked FAIL (when a
study is opened here, and before each new trial, as Optuna does) and tried again once with the same parameters.

rl_zoo3 opens its study with ``optuna.create_study(storage=<the --storage string>)``; :func:`install` gives its
module an ``optuna`` whose ``create_study`` turns a database URL (SQLite, PostgreSQL) into such an ``RDBStorage``.
Journal files (``.log``) keep rl_zoo3's handling.
"""

from __future__ import annotations

from typing import Any

import optuna
import rl_zoo3.exp_manager
from optuna.storages import RDBStorage, RetryFailedTrialCallback, fail_stale_trials

# Optuna's documented example values (seconds); the flags --heartbeat-interval and --grace-period override them
HEARTBEAT_INTERVAL = 60
GRACE_PERIOD = 120


def heartbeat_storage(url: str, heartbeat_interval: int = HEARTBEAT_INTERVAL, grace_period: int = GRACE_PERIOD) -> RDBStorage:
    """An ``RDBStorage`` that records heartbeats and retries (once) a trial whose worker died."""
    if heartbeat_interval < 1 or grace_period <= heartbeat_interval:
        raise ValueError(
            f"heartbeat_interval={heartbeat_interval} and grace_period={grace_period}: the interval must be >= 1 s "
            "and the grace period longer than it"
        )
    return RDBStorage(
        url,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        failed_trial_callback=RetryFailedTrialCallback(max_retry=1),
    )


class _OptunaWithHeartbeat:
    """``optuna`` as rl_zoo3's exp_manager sees it: the same module, but studies on databases get a heartbeat."""

    def __init__(self, heartbeat_interval: int, grace_period: int) -> None:
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period

    def __getattr__(self, name: str) -> Any:
        return getattr(optuna, name)

    def create_study(self, *args: Any, storage: Any = None, **kwargs: Any) -> optuna.Study:
        if isinstance(storage, str) and not storage.endswith(".log"):
            storage = heartbeat_storage(storage, self.heartbeat_interval, self.grace_period)
        study = optuna.create_study(*args, storage=storage, **kwargs)
        # a dead worker's trial is FAIL (and queued again) before rl_zoo3 counts trials for --max-total-trials
        fail_stale_trials(study)
        return study


def install(heartbeat_interval: int = HEARTBEAT_INTERVAL, grace_period: int = GRACE_PERIOD) -> None:
    """Make rl_zoo3's ExperimentManager open database studies with a heartbeat (idempotent)."""
    heartbeat_storage("sqlite://", heartbeat_interval, grace_period)  # check the values before any run
    rl_zoo3.exp_manager.optuna = _OptunaWithHeartbeat(heartbeat_interval, grace_period)  # type: ignore[assignment]
