"""``sb3-recurrent-train`` / ``sb3-recurrent-enjoy``: the RL Zoo's own commands with our algorithms registered.

Two defaults are added to the command line, nothing else changes:

* ``--conf-file zoo_configs/<algo>.yml`` for our algorithms when no ``-conf`` is given;
* with ``-optimize`` and no ``--storage``: an embedded SQLite study at ``<log folder>/<algo>/<env>_optuna.db``
  named ``<algo>_<env>`` (unless ``--study-name`` is given), so an interrupted study resumes where it stopped.
  A PostgreSQL URL in ``--storage`` shares one study between workers on many machines.

And one option of our own, read and removed before rl_zoo3 parses the rest:

* ``--enqueue-config`` (with ``-optimize``, for our algorithms): the config entry's own hyperparameters become the
  study's first trial (Optuna's ``enqueue_trial``), so the sampler starts from known values; see
  :mod:`sb3_recurrent_ext.zoo.enqueue`. Enqueued once per study: other workers given the flag skip it.
* ``--heartbeat-interval S`` (default 60) and ``--grace-period S`` (default 120): database studies record a
  heartbeat per running trial; a trial silent for the grace period (its worker died) is marked FAIL and tried
  again once (:mod:`sb3_recurrent_ext.zoo.storage`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from sb3_recurrent_ext.zoo.config import default_config
from sb3_recurrent_ext.zoo.registry import OUR_ALGOS, register


def _value(argv: list[str], names: tuple[str, ...], default: str) -> str:
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return default


def _given(argv: list[str], names: tuple[str, ...]) -> bool:
    return any(arg in names or arg.split("=", 1)[0] in names for arg in argv)


def with_defaults(argv: list[str]) -> list[str]:
    """The training command line with our defaults added (see the module docstring)."""
    argv = list(argv)
    algo = _value(argv, ("--algo",), "ppo")
    env = _value(argv, ("--env",), "CartPole-v1")
    if algo in OUR_ALGOS and not _given(argv, ("-conf", "--conf-file")):
        argv += ["--conf-file", str(default_config(algo))]
    if _given(argv, ("-optimize", "--optimize-hyperparameters")):
        if not _given(argv, ("--storage",)):
            log_folder = Path(_value(argv, ("-f", "--log-folder"), "logs"))
            database = (log_folder / algo / f"{env}_optuna.db").resolve()
            database.parent.mkdir(parents=True, exist_ok=True)
            argv += ["--storage", f"sqlite:///{database}"]
        if not _given(argv, ("--study-name",)):
            argv += ["--study-name", f"{algo}_{env}"]
    return argv


ENQUEUE_FLAG = "--enqueue-config"


def enqueue_from_command_line(argv: list[str]) -> None:
    """For ``--enqueue-config``: enqueue the config entry of ``--env`` in the study of a ``with_defaults`` command line."""
    from sb3_recurrent_ext.zoo.enqueue import enqueue_config_trial

    algo = _value(argv, ("--algo",), "ppo")
    if algo not in OUR_ALGOS:
        raise SystemExit(f"{ENQUEUE_FLAG}: --algo {algo!r} is not one of ours ({', '.join(OUR_ALGOS)})")
    if not _given(argv, ("-optimize", "--optimize-hyperparameters")):
        raise SystemExit(f"{ENQUEUE_FLAG} starts a tuning study and needs -optimize")
    env = _value(argv, ("--env",), "CartPole-v1")
    config = _value(argv, ("-conf", "--conf-file"), str(default_config(algo)))
    study_name = _value(argv, ("--study-name",), "")
    params, notes = enqueue_config_trial(_value(argv, ("--storage",), ""), study_name, algo, config, env)
    print(f"{ENQUEUE_FLAG}: study {study_name!r} starts from {config}'s {env} entry: {params}")
    for note in notes:
        print(f"  {note}")


def _pop_int(argv: list[str], name: str, default: int) -> tuple[list[str], int]:
    """``argv`` without ``name VALUE`` (or ``name=VALUE``), and that value as an int."""
    value = _value(argv, (name,), str(default))
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} must be a whole number") from None
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(f"{name}="):
            kept.append(arg)
    return kept, number


def train() -> None:
    """``python -m rl_zoo3.train`` with our algorithms and defaults (``--enqueue-config``, heartbeats)."""
    from sb3_recurrent_ext.zoo import storage

    register()
    from rl_zoo3.train import train as zoo_train

    argv, heartbeat_interval = _pop_int(sys.argv[1:], "--heartbeat-interval", storage.HEARTBEAT_INTERVAL)
    argv, grace_period = _pop_int(argv, "--grace-period", storage.GRACE_PERIOD)
    try:
        storage.install(heartbeat_interval, grace_period)
    except ValueError as error:
        raise SystemExit(f"--heartbeat-interval/--grace-period: {error}") from None
    argv, n_actors = _pop_int(argv, "--n-actors", 0)
    enqueue = ENQUEUE_FLAG in argv
    argv = with_defaults([arg for arg in argv if arg != ENQUEUE_FLAG])
    if n_actors:  # R2D2's actors on Ray, from the same zoo_configs entry
        from sb3_recurrent_ext.zoo.actors import use_actors

        algo, env_id = _value(argv, ("--algo",), "ppo"), _value(argv, ("--env",), "CartPole-v1")
        use_actors(n_actors, algo, env_id, _value(argv, ("-conf", "--conf-file"), ""))
    if enqueue:
        enqueue_from_command_line(argv)
    sys.argv = [sys.argv[0], *argv]
    zoo_train()


def enjoy() -> None:
    """``python -m rl_zoo3.enjoy`` with our algorithms (the hidden state is carried by ``predict``)."""
    register()
    from rl_zoo3.enjoy import enjoy as zoo_enjoy

    zoo_enjoy()


def record_video() -> None:
    """``python -m rl_zoo3.record_video`` with our algorithms."""
    import runpy

    register()
    # rl_zoo3's record_video runs under ``if __name__ == "__main__"``
    runpy.run_module("rl_zoo3.record_video", run_name="__main__")
