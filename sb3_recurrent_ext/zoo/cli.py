"""``sb3-recurrent-train`` / ``sb3-recurrent-enjoy``: the RL Zoo's own commands with our algorithms registered.

Two defaults are added to the command line, nothing else changes:

* ``--conf-file zoo_configs/<algo>.yml`` for our algorithms when no ``-conf`` is given;
* with ``-optimize`` and no ``--storage``: an embedded SQLite study at ``<log folder>/<algo>/<env>_optuna.db``
  named ``<algo>_<env>`` (unless ``--study-name`` is given), so an interrupted study resumes where it stopped.
  A PostgreSQL URL in ``--storage`` shares one study between workers on many machines.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sb3_recurrent_ext.zoo import OUR_ALGOS, default_config, register


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


def train() -> None:
    """``python -m rl_zoo3.train`` with our algorithms and defaults."""
    register()
    from rl_zoo3.train import train as zoo_train

    sys.argv = [sys.argv[0], *with_defaults(sys.argv[1:])]
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
