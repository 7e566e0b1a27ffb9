"""RL Zoo integration: registration, zoo_configs, samplers merged into the YAML, SQLite and PostgreSQL studies."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from sb3_recurrent_ext import RecurrentDQN, RecurrentPPORND
from sb3_recurrent_ext.common.policies import ALIAS_CELLS
from sb3_recurrent_ext.zoo import OUR_ALGOS, ZOO_CONFIGS, merge_sampled, register, switch_cell
from sb3_recurrent_ext.zoo.cli import with_defaults
from sb3_recurrent_ext.zoo.registry import _yaml_hyperparams

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(REPO / "scripts" / "train.py")]


def _entries() -> list[tuple[str, str]]:
    return [
        (path.stem, env_id)
        for path in sorted(ZOO_CONFIGS.glob("*.yml"))
        for env_id in yaml.safe_load(path.read_text())
        if env_id != "default"
    ]


def test_registration_keeps_the_zoo_algorithms() -> None:
    import rl_zoo3
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER

    builtin = dict(rl_zoo3.ALGOS)
    builtin_samplers = dict(HYPERPARAMS_SAMPLER)
    register()
    register()  # idempotent
    for name, algo in builtin.items():
        assert rl_zoo3.ALGOS[name] is algo
    for name, sampler in builtin_samplers.items():
        assert HYPERPARAMS_SAMPLER[name] is sampler
    for name in OUR_ALGOS:
        assert name in rl_zoo3.ALGOS and name in HYPERPARAMS_SAMPLER and name in HYPERPARAMS_CONVERTER
    assert rl_zoo3.ALGOS["recurrent_dqn"] is RecurrentDQN and rl_zoo3.ALGOS["recurrent_ppo_rnd"] is RecurrentPPORND


def _experiment(algo: str, env_id: str, tmp_path: Path, config: Path | None = None, **kwargs):
    from rl_zoo3.exp_manager import ExperimentManager

    register()
    return ExperimentManager(
        argparse.Namespace(),
        algo,
        env_id,
        str(tmp_path),
        config=str(config or ZOO_CONFIGS / f"{algo}.yml"),
        eval_freq=-1,
        verbose=0,
        **kwargs,
    )


@pytest.mark.parametrize(("algo", "env_id"), _entries())
def test_every_zoo_config_entry_builds_a_model(algo: str, env_id: str, tmp_path: Path) -> None:
    experiment = _experiment(algo, env_id, tmp_path)
    model, _ = experiment.setup_experiment()
    assert isinstance(model, OUR_ALGOS[algo])
    entry = yaml.safe_load((ZOO_CONFIGS / f"{algo}.yml").read_text())[env_id]
    if algo != "recurrent_dqn":
        assert model.use_rnd == entry.get("use_rnd", True)
    assert model.n_envs == entry.get("n_envs", 1)
    model.get_env().close()


def test_net_spec_in_a_config(tmp_path: Path) -> None:
    config = tmp_path / "spec.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "CartPoleNoVel-v1": {
                    "n_envs": 2,
                    "n_timesteps": 1000,
                    "policy": "MlpLstmPolicy",
                    "use_rnd": False,
                    "net_spec": {"cell_type": "GRU", "fc_hid_layers": [32], "rnn_hidden_size": 16, "clip_grad_val": 2.0},
                    "policy_kwargs": "dict(net_arch=[8])",
                }
            }
        )
    )
    model, _ = _experiment("recurrent_ppo", "CartPoleNoVel-v1", tmp_path, config).setup_experiment()
    rnn = model.policy.recurrent.actor_rnn
    assert (rnn.cell_type, rnn.rnn_hidden_size, rnn.fc_hid_layers) == ("GRU", 16, [32])
    assert model.max_grad_norm == 2.0 and model.policy.net_arch == [8]
    assert type(model.policy).__name__ == "MlpGruPolicy"  # the alias follows the spec's cell


@pytest.mark.parametrize(("algo", "use_rnd"), [("recurrent_ppo", False), ("recurrent_ppo_rnd", True)])
def test_an_entry_without_use_rnd_gets_the_algorithms_default(tmp_path: Path, algo: str, use_rnd: bool) -> None:
    """--algo recurrent_ppo is plain recurrent PPO even when the user's own -conf entry does not say use_rnd."""
    config = tmp_path / "mine.yml"
    entry = {"n_envs": 1, "n_timesteps": 64, "policy": "MlpGruPolicy", "n_steps": 16, "batch_size": 16}
    config.write_text(yaml.safe_dump({"CartPoleNoVel-v1": entry}))
    model, _ = _experiment(algo, "CartPoleNoVel-v1", tmp_path, config).setup_experiment()
    assert model.use_rnd is use_rnd


def test_sampled_policy_kwargs_are_merged_into_the_yaml() -> None:
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER

    register()
    params = {
        "batch_size_pow": 6,
        "n_steps_pow": 6,
        "one_minus_gamma": 0.01,
        "one_minus_gae_lambda": 0.05,
        "learning_rate": 1e-3,
        "ent_coef": 1e-4,
        "clip_range": 0.2,
        "n_epochs": 10,
        "max_grad_norm": 0.5,
        "net_arch": "tiny",
        "activation_fn": "relu",
        "cell_type": "GRU",
        "rnn_hidden_size": 32,
        "rnn_num_layers": 2,
        "fc_hid_layers": "64",
        "seq_len": 16,
        "use_rnd": True,
        "one_minus_int_gamma": 0.01,
        "int_adv_coef": 0.5,
    }
    # sb3-contrib's name in the YAML, as rl-zoo's ppo_lstm entries write it
    yaml_hyperparams = {"policy": "MlpLstmPolicy", "policy_kwargs": {"ortho_init": False, "lstm_hidden_size": 64}}
    token = _yaml_hyperparams.set(yaml_hyperparams)
    try:
        sampled = HYPERPARAMS_SAMPLER["recurrent_ppo_rnd"](optuna.trial.FixedTrial(params), 2, 8, {})
    finally:
        _yaml_hyperparams.reset(token)
    kwargs = sampled["policy_kwargs"]
    assert kwargs["ortho_init"] is False  # kept from the YAML
    assert "lstm_hidden_size" not in kwargs  # replaced by the sampled rnn_hidden_size, not contradicting it
    assert kwargs["rnn_hidden_size"] == 32 and kwargs["rnn_num_layers"] == 2 and kwargs["fc_hid_layers"] == [64]
    assert sampled["policy"] == "MlpGruPolicy"  # the sampled cell switches the alias
    assert sampled["seq_len"] == 16 and sampled["batch_size"] == 64 and sampled["int_gamma"] == pytest.approx(0.99)
    # --trial-id converts a stored trial's raw params the same way
    converted = HYPERPARAMS_CONVERTER["recurrent_ppo_rnd"](params)
    assert converted["policy_kwargs"]["cell_type"] == "GRU" and converted["use_rnd"] is True
    assert merge_sampled({}, {"policy_kwargs": {"a": 1}})["policy_kwargs"] == {"a": 1}


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    original_learn = RecurrentDQN.learn

    def learn_failing_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return original_learn(self, *args, **kwargs)

    monkeypatch.setattr(RecurrentDQN, "learn", learn_failing_once)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    experiment = _experiment(
        "recurrent_dqn",
        "CartPoleNoVel-v1",
        tmp_path,
        n_timesteps=300,
        optimize_hyperparameters=True,
        storage=storage,
        study_name="failing",
        n_trials=2,
        sampler="random",
        pruner="median",
        n_evaluations=1,
        n_eval_episodes=1,
        no_optim_plots=True,
    )
    experiment.setup_experiment()
    experiment.hyperparameters_optimization()
    trials = optuna.load_study(study_name="failing", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert "RuntimeError: boom" in trials[0].user_attrs["failure"]


def test_cli_defaults() -> None:
    argv = with_defaults(["--algo", "recurrent_dqn", "--env", "CartPoleNoVel-v1", "-optimize", "-f", "/tmp/zoo_logs_test"])
    assert argv[argv.index("--conf-file") + 1] == str(ZOO_CONFIGS / "recurrent_dqn.yml")
    assert argv[argv.index("--storage") + 1] == "sqlite:////tmp/zoo_logs_test/recurrent_dqn/CartPoleNoVel-v1_optuna.db"
    assert argv[argv.index("--study-name") + 1] == "recurrent_dqn_CartPoleNoVel-v1"
    untouched = ["--algo", "ppo", "--env", "CartPole-v1"]
    assert with_defaults(untouched) == untouched  # built-in algorithms keep rl_zoo3's config


def _tune_command(log_folder: Path, n_trials: int, *extra: str) -> list[str]:
    return [
        *TRAIN,
        "--algo",
        "recurrent_dqn",
        "--env",
        "CartPoleNoVel-v1",
        "-f",
        str(log_folder),
        "-optimize",
        "--n-trials",
        str(n_trials),
        "--n-jobs",
        "1",
        "--sampler",
        "random",
        "--pruner",
        "median",
        "-n",
        "300",
        "--n-evaluations",
        "1",
        "--eval-episodes",
        "1",
        "--no-optim-plots",
        "--verbose",
        "0",
        *extra,
    ]


def test_an_interrupted_study_resumes_from_its_sqlite_file(tmp_path: Path) -> None:
    from sb3_recurrent_ext.zoo import read_entry
    from sb3_recurrent_ext.zoo.enqueue import entry_as_trial_params

    for _ in range(2):  # the second run is the same command, as after an interruption
        command = _tune_command(tmp_path, 1, "--enqueue-config")
        subprocess.run(command, check=True, cwd=tmp_path, timeout=600, capture_output=True)
    storage = f"sqlite:///{tmp_path / 'recurrent_dqn' / 'CartPoleNoVel-v1_optuna.db'}"
    study = optuna.load_study(study_name="recurrent_dqn_CartPoleNoVel-v1", storage=storage)
    assert len(study.trials) == 2
    # --enqueue-config: the first trial ran the YAML entry's values; the resumed run did not enqueue them again
    entry_params, _ = entry_as_trial_params("recurrent_dqn", read_entry(ZOO_CONFIGS / "recurrent_dqn.yml", "CartPoleNoVel-v1"))
    assert study.trials[0].params == entry_params
    assert study.trials[1].params != entry_params
    assert all("cell_type" in t.params and "burn_in_fraction" in t.params for t in study.trials)
    # the YAML's policy_kwargs (net_arch=[64]) are kept where the sampler does not set them
    assert all("'net_arch': [64]" in t.user_attrs["policy_kwargs"] for t in study.trials)


def test_enqueue_config_needs_our_algorithm_and_a_study(tmp_path: Path) -> None:
    from sb3_recurrent_ext.zoo.cli import enqueue_from_command_line

    with pytest.raises(SystemExit, match="--enqueue-config starts a tuning study and needs -optimize"):
        enqueue_from_command_line(with_defaults(["--algo", "recurrent_ppo", "--env", "CartPoleNoVel-v1"]))
    with pytest.raises(SystemExit, match="--enqueue-config: --algo 'ppo' is not one of ours"):
        argv = ["--algo", "ppo", "--env", "CartPoleNoVel-v1", "-optimize", "-f", str(tmp_path)]
        enqueue_from_command_line(with_defaults(argv))


BEST_ARGS = ["--algo", "recurrent_dqn", "--env", "CartPoleNoVel-v1"]


@pytest.mark.parametrize(
    "policy, cell_type, expected",
    [
        ("MlpLstmPolicy", "MinGRU", "MlpMinGruPolicy"),
        ("MlpMinGruPolicy", "GRU", "MlpGruPolicy"),
        ("CnnGruPolicy", "ffm", "CnnFfmPolicy"),
        ("MultiInputFfmPolicy", "LSTM", "MultiInputLstmPolicy"),
    ],
)
def test_a_sampled_cell_switches_between_every_alias(policy: str, cell_type: str, expected: str) -> None:
    assert switch_cell(policy, cell_type) == expected


def test_best_trial_as_a_zoo_config_entry(tmp_path: Path) -> None:
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER

    register()
    storage = f"sqlite:///{tmp_path / 'recurrent_dqn' / 'CartPoleNoVel-v1_optuna.db'}"
    (tmp_path / "recurrent_dqn").mkdir()
    study = optuna.create_study(study_name="recurrent_dqn_CartPoleNoVel-v1", storage=storage, direction="maximize")
    yaml_entry = yaml.safe_load((ZOO_CONFIGS / "recurrent_dqn.yml").read_text())["CartPoleNoVel-v1"]
    token = _yaml_hyperparams.set({**yaml_entry, "policy_kwargs": {"rnn_hidden_size": 64, "net_arch": [64]}})
    try:
        for value in (10.0, 30.0, 20.0):
            trial = study.ask()
            HYPERPARAMS_SAMPLER["recurrent_dqn"](trial, 2, 8, {})
            study.tell(trial, value)
    finally:
        _yaml_hyperparams.reset(token)
    best = study.trials[1]
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "best_hyperparams.py"), *BEST_ARGS, "-f", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert out.startswith("# source: tuner, study 'recurrent_dqn_CartPoleNoVel-v1': trial 1 (value 30.0) of 3 trials")
    entry = yaml.safe_load(out)["CartPoleNoVel-v1"]
    # the YAML's keys that were not sampled are kept, the sampled ones converted (gamma, not one_minus_gamma)
    assert entry["n_envs"] == yaml_entry["n_envs"] and entry["learning_starts"] == yaml_entry["learning_starts"]
    assert entry["gamma"] == pytest.approx(1 - best.params["one_minus_gamma"])
    assert entry["burn_in"] == int(best.params["seq_len"] * best.params["burn_in_fraction"])
    # policy_kwargs: rl-zoo's string, equal to what the trial's model was given
    assert eval(entry["policy_kwargs"]) == eval(best.user_attrs["policy_kwargs"])
    infix = next(infix for infix, cell in ALIAS_CELLS.items() if cell == best.params["cell_type"])
    assert entry["policy"] == f"Mlp{infix}Policy"
    config = tmp_path / "tuned.yml"
    config.write_text(out)
    model, _ = _experiment("recurrent_dqn", "CartPoleNoVel-v1", tmp_path, config).setup_experiment()
    assert model.seq_len == best.params["seq_len"] and model.n_step == best.params["n_step"]
    model.get_env().close()


def test_best_trial_bad_input_names_the_problem() -> None:
    from sb3_recurrent_ext.zoo.best import best_trial, trial_entry

    study = optuna.create_study(study_name="empty", direction="maximize")
    with pytest.raises(ValueError, match="study 'empty' has no complete trial"):
        best_trial(study)
    # a trial that raised (recorded as failed, see the objective wrapper) is never the best
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, state=optuna.trial.TrialState.FAIL))
    with pytest.raises(ValueError, match="no complete trial with a value"):
        best_trial(study)
    with pytest.raises(ValueError, match=r"trial_number=7 is not in study 'empty' \(trials: \[0\]\)"):
        best_trial(study, 7)
    assert best_trial(study, 0).number == 0
    with pytest.raises(ValueError, match="algo='ppo' has no sampler here; allowed values"):
        trial_entry(study.trials[0], "ppo", {})


def _postgres_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server: a fresh data directory in a temporary folder, on a loopback port."""
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'sb3-recurrent-ext[postgres]'")
    # directly under the system temp folder: pytest's own temp folders are private to the current user
    folder = Path(tempfile.mkdtemp(prefix="sb3re-postgres-"))
    data = folder / "data"
    # PostgreSQL refuses to run as root: run it as the postgres user then
    prefix: list[str] = []
    user = os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        user = "postgres"
        shutil.chown(folder, user)
        prefix = ["runuser", "-u", user, "--"]
    port = _free_port()
    subprocess.run(
        [*prefix, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", user], check=True, capture_output=True
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(postgres_url: str, tmp_path: Path) -> None:
    study_name = "two_workers"
    optuna.create_study(study_name=study_name, storage=postgres_url, direction="maximize")
    workers = [
        subprocess.Popen(
            _tune_command(tmp_path / f"worker{i}", 2, "--storage", postgres_url, "--study-name", study_name),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    deadline = time.time() + 900
    for worker in workers:
        _, stderr = worker.communicate(timeout=max(1, deadline - time.time()))
        assert worker.returncode == 0, stderr.decode()[-2000:]
    trials = optuna.load_study(study_name=study_name, storage=postgres_url).trials
    assert len(trials) == 4
    assert len({t.number for t in trials}) == 4 and len({t._trial_id for t in trials}) == 4  # no duplicates
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert all(t.state in finished for t in trials)
    by_worker: dict[str, int] = {}
    for t in trials:
        by_worker[t.user_attrs["worker"]] = by_worker.get(t.user_attrs["worker"], 0) + 1
    assert sorted(by_worker.values()) == [2, 2]  # both workers' trials, two each


def test_train_enjoy_and_plot_from_the_command_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    common = ["--env", "CartPoleNoVel-v1", "-f", str(logs)]
    train = subprocess.run(
        [*TRAIN, "--algo", "recurrent_ppo", *common, "-n", "1024", "--eval-freq", "-1", "--verbose", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert (logs / "recurrent_ppo" / "CartPoleNoVel-v1_1" / "CartPoleNoVel-v1.zip").exists()
    enjoy = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "enjoy.py"), "--algo", "recurrent_ppo", *common, "-n", "200", "--no-render"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert enjoy.returncode == 0, enjoy.stderr[-2000:]
    assert "Mean reward" in enjoy.stdout
    png = tmp_path / "curves.png"
    plot_zoo = [sys.executable, str(REPO / "scripts" / "plot_zoo.py")]
    plot = subprocess.run(
        [*plot_zoo, "-a", "recurrent_ppo", "-e", "CartPoleNoVel-v1", "-f", str(logs), "-w", "5", "--out", str(png)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert plot.returncode == 0, plot.stderr[-2000:]
    assert png.stat().st_size > 10_000


def _benchmark_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_script", REPO / "scripts" / "benchmark.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_reads_a_zoo_configs_entry_for_recurrent_ppo(tmp_path: Path) -> None:
    from stable_baselines3.common.env_util import make_vec_env

    benchmark = _benchmark_module()
    contenders = benchmark.ppo_contenders("CartPoleNoVel-v1", {}, ZOO_CONFIGS / "recurrent_ppo.yml")
    entry = yaml.safe_load((ZOO_CONFIGS / "recurrent_ppo.yml").read_text())["CartPoleNoVel-v1"]
    factory, _, n_envs = contenders["RecurrentPPORND GRU, use_rnd=False"]
    model = factory(make_vec_env("CartPoleNoVel-v1", n_envs=n_envs), 0)
    assert n_envs == entry["n_envs"]
    assert (model.n_steps, model.seq_len, model.n_epochs) == (entry["n_steps"], entry["seq_len"], entry["n_epochs"])
    assert model.policy.rnn_kwargs["cell_type"] == "GRU"  # the contender's cell, not the entry's policy
    assert model.policy.rnn_kwargs["fc_hid_layers"] == [128]
    # sb3-contrib keeps rl-zoo's ppo_lstm values
    contrib_factory, _, contrib_envs = contenders["sb3-contrib RecurrentPPO (LSTM)"]
    assert contrib_factory(make_vec_env("CartPoleNoVel-v1", n_envs=contrib_envs), 0).n_steps == 32

    config = tmp_path / "config.yml"
    config.write_text("CartPoleNoVel-v1:\n  n_envs: 2\n  learning_rate: lin_0.001\n  policy: 'MlpLstmPolicy'\n")
    arguments, policy_kwargs, n_envs = benchmark.zoo_entry(config, "CartPoleNoVel-v1")
    assert (policy_kwargs, n_envs) == ({}, 2)
    assert arguments["learning_rate"](0.5) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="no entry for 'PendulumNoVel-v1'"):
        benchmark.zoo_entry(config, "PendulumNoVel-v1")


@pytest.mark.parametrize("algo", sorted(OUR_ALGOS))
def test_a_tuned_entry_enqueues_as_the_trial_it_came_from(algo: str) -> None:
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER

    from sb3_recurrent_ext.zoo import read_entry
    from sb3_recurrent_ext.zoo.best import parse_policy_kwargs, trial_entry
    from sb3_recurrent_ext.zoo.enqueue import entry_as_trial_params

    register()
    yaml_entry = read_entry(ZOO_CONFIGS / f"{algo}.yml", "CartPoleNoVel-v1")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    token = _yaml_hyperparams.set({**yaml_entry, "policy_kwargs": parse_policy_kwargs(yaml_entry.get("policy_kwargs"))})
    try:
        for _ in range(12):
            trial = study.ask()
            HYPERPARAMS_SAMPLER[algo](trial, 2, 8, {})
            study.tell(trial, 0.0)
    finally:
        _yaml_hyperparams.reset(token)
    for trial in study.trials:
        # the entry best_hyperparams.py writes for a trial, read back as that trial's raw sampled values
        params, notes = entry_as_trial_params(algo, trial_entry(trial, algo, yaml_entry))
        assert params.keys() == trial.params.keys()
        for name, value in trial.params.items():
            assert params[name] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), name
        assert notes == []


def test_enqueued_entry_names_what_the_sampler_cannot_take_exactly() -> None:
    from sb3_recurrent_ext.zoo.enqueue import entry_as_trial_params

    # rl-zoo's ppo_lstm PendulumNoVel-v1 entry (the study that tuned ours started from it)
    rl_zoo_pendulum = {
        "policy": "MlpLstmPolicy",
        "seq_len": 16,
        "n_steps": 1024,
        "batch_size": 128,
        "gae_lambda": 0.95,
        "gamma": 0.9,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "use_sde": True,
        "policy_kwargs": "dict(ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64, net_arch=dict(pi=[64], vf=[64]))",
    }
    params, notes = entry_as_trial_params("recurrent_ppo", rl_zoo_pendulum)
    assert params["n_steps_pow"] == 10 and params["batch_size_pow"] == 7 and params["one_minus_gamma"] == 0.1
    assert (params["net_arch"], params["activation_fn"], params["cell_type"], params["rnn_hidden_size"]) == (
        "tiny",
        "relu",
        "LSTM",
        64,
    )
    assert params["max_grad_norm"] == 0.5  # not in the entry: RecurrentPPORND's default
    assert notes == ["ent_coef: the sampler cannot take the entry's 0.0; 1e-08 used"]
    entry = {"policy": "MlpGruPolicy", "n_steps": 100, "learning_rate": "lin_0.001", "policy_kwargs": "dict(net_arch=[32])"}
    params, notes = entry_as_trial_params("recurrent_ppo", entry)
    assert (params["n_steps_pow"], params["learning_rate"], params["cell_type"]) == (7, 0.001, "GRU")
    assert "net_arch" not in params  # no choice of the sampler is [32]: the trial samples it
    assert any(note.startswith("learning_rate: lin_0.001 becomes the constant 0.001") for note in notes)
    assert any(note.startswith("n_steps_pow: the sampler cannot take the entry's 6.64") for note in notes)
    assert any(note.startswith("net_arch: the entry's value has no choice") for note in notes)
    with pytest.raises(ValueError, match=r"--enqueue-config works for .* not --algo 'ppo'"):
        entry_as_trial_params("ppo", entry)


def test_enqueue_config_into_a_journal_file_study_once(tmp_path: Path) -> None:
    from optuna.storages.journal import JournalFileBackend

    from sb3_recurrent_ext.zoo.enqueue import enqueue_config_trial

    journal = str(tmp_path / "study.log")  # rl_zoo3 opens a --storage ending in .log as Optuna's journal
    for _ in range(2):  # a second worker given the flag adds nothing
        params, _ = enqueue_config_trial(journal, "s", "recurrent_ppo", ZOO_CONFIGS / "recurrent_ppo.yml", "PendulumNoVel-v1")
    study = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(JournalFileBackend(journal)))
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.WAITING]
    # a waiting trial keeps its enqueued values as fixed params until a worker runs it
    assert study.trials[0].system_attrs["fixed_params"] == params and study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_zoo_configs_are_package_data() -> None:
    """A wheel carries the configs the console scripts read (.ci/run installs the wheel and trains with it)."""
    import tomllib

    import sb3_recurrent_ext

    package = Path(sb3_recurrent_ext.__file__).parent
    assert ZOO_CONFIGS.resolve().parent == package
    assert sorted(p.name for p in ZOO_CONFIGS.glob("*.yml")) == [
        "recurrent_dqn.yml",
        "recurrent_ppo.yml",
        "recurrent_ppo_rnd.yml",
    ]
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "zoo_configs/*.yml" in package_data["sb3_recurrent_ext"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_workers_trial_is_failed_and_retried(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """kill -9 a worker mid-trial: the next run marks its trial FAIL (heartbeat) and runs it again to the end."""
    storage = f"sqlite:///{tmp_path / 'study.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    beat = ["--storage", storage, "--study-name", "killed", "--heartbeat-interval", "1", "--grace-period", "3"]
    worker = subprocess.Popen(
        _tune_command(tmp_path / "w1", 1, *beat, "-n", "1000000"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        running: list[optuna.trial.FrozenTrial] = []
        while not running and time.time() < deadline:
            time.sleep(1)
            try:
                running = optuna.load_study(study_name="killed", storage=storage).get_trials(
                    states=(optuna.trial.TrialState.RUNNING,)
                )
            except KeyError:  # the study is not created yet
                pass
        assert running, "the first worker never started a trial"
        time.sleep(2)  # a few heartbeats
    finally:
        worker.kill()  # SIGKILL: no chance to mark anything
        worker.wait()
    assert optuna.load_study(study_name="killed", storage=storage).trials[0].state == optuna.trial.TrialState.RUNNING
    time.sleep(4)  # past the grace period
    subprocess.run(_tune_command(tmp_path / "w2", 1, *beat), check=True, cwd=tmp_path, timeout=600, capture_output=True)
    trials = optuna.load_study(study_name="killed", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert trials[1].system_attrs["failed_trial"] == trials[0].number and trials[1].params == trials[0].params


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """kill -9 a zoo run, resume with -i <checkpoint>: the step count, replay buffer and schedules go on."""
    common = ["--algo", "recurrent_dqn", "--env", "CartPoleNoVel-v1", "-f", "logs", "--save-freq", "1000"]
    common += ["--eval-freq", "-1", "--verbose", "0", "--num-threads", "1"]
    first = tmp_path / "logs" / "recurrent_dqn" / "CartPoleNoVel-v1_1"
    run = subprocess.Popen([*TRAIN, *common, "-n", "100000"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        # the buffer is written after the model: wait for both files of the 2000-step checkpoint
        while not (first / "rl_model_replay_buffer_2000_steps.pkl").exists() and time.time() < deadline:
            assert run.poll() is None, run.stderr.read().decode()[-2000:] if run.stderr else ""
            time.sleep(0.5)
        time.sleep(1)
    finally:
        run.kill()
        run.wait()
    assert (first / "rl_model_2000_steps.zip").exists() and not (first / "CartPoleNoVel-v1.zip").exists()
    checkpoint = str(first / "rl_model_2000_steps.zip")
    subprocess.run(
        [*TRAIN, *common, "-n", "4000", "-i", checkpoint], cwd=tmp_path, check=True, timeout=600, capture_output=True
    )
    second = tmp_path / "logs" / "recurrent_dqn" / "CartPoleNoVel-v1_2"
    final = RecurrentDQN.load(second / "CartPoleNoVel-v1.zip")
    # 2000 from the checkpoint + 2000 more (SB3 stops at the first rollout end past -n: train_freq 4 x 8 envs)
    assert 4000 <= final.num_timesteps < 4000 + 4 * 8
    assert sorted(p.name for p in second.glob("rl_model_*_steps.zip")) == [
        "rl_model_3000_steps.zip",
        "rl_model_4000_steps.zip",
    ]
    at_3000 = RecurrentDQN.load(second / "rl_model_3000_steps.zip")
    at_3000.load_replay_buffer(second / "rl_model_replay_buffer_3000_steps.pkl")
    # the buffer came along: 2000 steps before the crash and 1000 after, less the one vectorised step (8 envs) in
    # flight at each checkpoint (SB3 checkpoints between env.step and storing the transition); without it: 992
    assert at_3000.replay_buffer.size() * at_3000.n_envs == 3000 - 2 * 8
    # epsilon follows the original run's schedule: progress 3000 of 4000 steps
    assert at_3000.exploration_rate == pytest.approx(at_3000.exploration_schedule(1 - 3000 / 4000))


@pytest.mark.parametrize(("interval", "grace"), [(0, 5), (10, 10), (10, 5)])
def test_bad_heartbeat_settings_name_both(interval: int, grace: int) -> None:
    from sb3_recurrent_ext.zoo.storage import heartbeat_storage

    with pytest.raises(ValueError, match=rf"heartbeat_interval={interval} and grace_period={grace}"):
        heartbeat_storage("sqlite://", interval, grace)


def test_entry_arguments_parse_rl_zoo_strings():
    from torch import nn

    from sb3_recurrent_ext.zoo.config import entry_arguments, schedule_start

    entry = {
        "policy": "MlpGruPolicy",
        "n_envs": 4,
        "normalize": True,
        "n_timesteps": 1e5,
        "learning_rate": "lin_0.001",
        "gamma": 0.98,
        "policy_kwargs": "dict(rnn_hidden_size=32, activation_fn=nn.ReLU)",
    }
    arguments, policy_kwargs, n_envs = entry_arguments(entry)
    assert set(arguments) == {"learning_rate", "gamma"} and n_envs == 4 and entry["learning_rate"] == "lin_0.001"
    assert arguments["learning_rate"](1.0) == pytest.approx(1e-3) and arguments["learning_rate"](0.5) == pytest.approx(5e-4)
    assert policy_kwargs == {"rnn_hidden_size": 32, "activation_fn": nn.ReLU}
    assert schedule_start("lin_0.2") == 0.2 and schedule_start(0.3) == 0.3


def test_the_same_zoo_entry_runs_with_ray_actors(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the distributed extra")
    from sb3_recurrent_ext.dqn_recurrent.distributed import DistributedRecurrentDQN

    logs = tmp_path / "logs"
    command = [*TRAIN, "--algo", "recurrent_dqn", "--env", "CartPoleNoVel-v1", "-f", str(logs), "-n", "2400"]
    train = subprocess.run(
        [*command, "--n-actors", "2", "--eval-freq", "-1", "--verbose", "0"], capture_output=True, text=True, timeout=600
    )
    assert train.returncode == 0, train.stderr[-2000:]
    model = DistributedRecurrentDQN.load(logs / "recurrent_dqn" / "CartPoleNoVel-v1_1" / "CartPoleNoVel-v1.zip")
    # the entry's 8 envs shared by the 2 actors, and its hyperparameters (zoo_configs/recurrent_dqn.yml)
    assert (model.n_actors, model.envs_per_actor, model.batch_size) == (2, 4, 64)
    assert model.num_timesteps >= 2400 and model._n_updates > 0
    refused = subprocess.run(
        [*TRAIN, "--algo", "recurrent_ppo", "--env", "CartPoleNoVel-v1", "-f", str(logs), "--n-actors", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode != 0 and "--n-actors runs --algo recurrent_dqn" in refused.stderr
