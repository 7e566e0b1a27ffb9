"""Print a tuning study's best trial (or ``--trial N``) as a ``zoo_configs`` YAML entry.

    python scripts/best_hyperparams.py --algo recurrent_dqn --env CartPoleNoVel-v1 -f logs/
    python scripts/best_hyperparams.py --algo recurrent_ppo --env PendulumNoVel-v1 \\
        --storage postgresql://user:password@db-host:5432/optuna --study-name rppo_pendulum

The study and config are found as ``scripts/train.py -optimize`` made them: SQLite at
``<log folder>/<algo>/<env>_optuna.db``, study ``<algo>_<env>``, entry ``<env>`` of ``zoo_configs/<algo>.yml``.
The printed entry is that entry with the trial's converted hyperparameters merged in, as the tuner merged them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna

from sb3_recurrent_ext.zoo import OUR_ALGOS, default_config, read_entry
from sb3_recurrent_ext.zoo.best import best_trial, entry_yaml, trial_entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", required=True, choices=sorted(OUR_ALGOS))
    parser.add_argument("--env", required=True)
    parser.add_argument("-f", "--log-folder", default="logs")
    parser.add_argument("--storage", default=None, help="default: sqlite:///<log folder>/<algo>/<env>_optuna.db")
    parser.add_argument("--study-name", default=None, help="default: <algo>_<env>")
    parser.add_argument("-conf", "--conf-file", default=None, help="default: zoo_configs/<algo>.yml")
    parser.add_argument("--trial", type=int, default=None, help="this trial number instead of the best")
    args = parser.parse_args()

    storage = args.storage
    if storage is None:
        database = Path(args.log_folder) / args.algo / f"{args.env}_optuna.db"
        if not database.exists():
            parser.error(f"--log-folder {args.log_folder!r}: no study database at {database}")
        storage = f"sqlite:///{database.resolve()}"
    study_name = args.study_name or f"{args.algo}_{args.env}"
    study = optuna.load_study(study_name=study_name, storage=storage)
    try:
        yaml_entry = read_entry(args.conf_file or default_config(args.algo), args.env)
    except ValueError as error:
        parser.error(f"--env {args.env!r}: {error}")
    trial = best_trial(study, args.trial)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    source = (
        f"tuner, study {study_name!r}: trial {trial.number} (value {trial.value}) of {len(study.trials)} trials "
        f"({len(complete)} complete)"
    )
    print(entry_yaml(args.env, trial_entry(trial, args.algo, yaml_entry), source), end="")


if __name__ == "__main__":
    main()
