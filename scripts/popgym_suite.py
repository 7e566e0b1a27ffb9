"""The memory suite behind ``scripts/benchmark.py --suite popgym``: popgym Easy tasks and MiniGrid-MemoryS7.

Every (task, seed, contender) run appends one JSON line to ``<out>/popgym_runs.jsonl`` as soon as it finishes, so
a stopped run loses only the run in progress and several processes (one per core) can share the work
(``--tasks``, ``--only``). ``--report`` rebuilds ``<out>/popgym.md`` (headed by ``<out>/popgym_status.md`` if
present) and the learning-curve PNGs from that file:
per task, mean ± std, IQM with a 95% stratified bootstrap confidence interval over seeds (rliable, Agarwal et al.,
NeurIPS 2021), every seed, fps and wall time, and where random play lands. The report opens with the verdict at
the suite's budget: per task, the best of our default contenders (3 seeds) against sb3-contrib's RecurrentPPO and
SB3 PPO with 4 stacked frames (2 seeds each), by IQM and by interval.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

from sb3_recurrent_ext import RecurrentDQN, RecurrentPPORND, make_memory_vec_env

TASKS = (
    "popgym-RepeatFirstEasy-v0",
    "popgym-RepeatPreviousEasy-v0",
    "popgym-CountRecallEasy-v0",
    "popgym-AutoencodeEasy-v0",
    "popgym-PositionOnlyCartPoleEasy-v0",
    "MiniGrid-MemoryS7-v0",
)
N_ENVS = 8
FRAME_STACK = 4
# SB3 PPO's own n_steps (2048 x 8 envs) would leave 6 updates in 100k steps: it takes the rollout and minibatch
# sizes that RecurrentPPORND and sb3-contrib's RecurrentPPO both default to
SB3_PPO: dict[str, Any] = dict(n_steps=128, batch_size=128, n_epochs=10)
# RecurrentDQN on 8 envs: one learning step per vectorised step, as in benchmark.py --family dqn
RECURRENT_DQN: dict[str, Any] = dict(
    learning_starts=2000, train_freq=1, gradient_steps=1, learning_rate=lambda progress: 1e-3 * progress
)


def _ours(policy: str) -> Any:
    return lambda env, seed: RecurrentPPORND(policy, env, use_rnd=False, seed=seed)


# name -> (factory(env, seed), frame-stacked env?); every contender runs on N_ENVS envs
CONTENDERS: dict[str, tuple[Any, bool]] = {
    "RecurrentPPORND LSTM": (_ours("MlpLstmPolicy"), False),
    "RecurrentPPORND GRU": (_ours("MlpGruPolicy"), False),
    "RecurrentPPORND FFM": (_ours("MlpFfmPolicy"), False),
    "RecurrentPPORND MinGRU": (_ours("MlpMinGruPolicy"), False),
    "RecurrentDQN GRU": (lambda env, seed: RecurrentDQN("MlpGruPolicy", env, seed=seed, **RECURRENT_DQN), False),
    # the defaults before the suite chose seq_len 32, burn_in 16 (kept for the record; FORMER_DEFAULTS, not OURS)
    "RecurrentDQN seq_len 16 burn_in 8 GRU": (
        lambda env, seed: RecurrentDQN("MlpGruPolicy", env, seed=seed, seq_len=16, burn_in=8, **RECURRENT_DQN),
        False,
    ),
    "sb3-contrib RecurrentPPO LSTM": (lambda env, seed: RecurrentPPO("MlpLstmPolicy", env, seed=seed), False),
    f"SB3 PPO + VecFrameStack({FRAME_STACK})": (lambda env, seed: PPO("MlpPolicy", env, seed=seed, **SB3_PPO), True),
}
# the done-when of the suite: the best of ours (3 seeds) against both baselines (2 seeds each), by IQM and interval
FORMER_DEFAULTS = ("RecurrentDQN seq_len 16 burn_in 8 GRU",)
OURS = tuple(name for name in CONTENDERS if name.startswith("Recurrent") and name not in FORMER_DEFAULTS)
BASELINES = ("sb3-contrib RecurrentPPO LSTM", f"SB3 PPO + VecFrameStack({FRAME_STACK})")
SEEDS_NEEDED = {**dict.fromkeys(OURS, 3), **dict.fromkeys(BASELINES, 2)}
NOTE = (
    f"{N_ENVS} envs each; every contender with its package's defaults (RecurrentPPORND: use_rnd=False; SB3 PPO: "
    f"n_steps {SB3_PPO['n_steps']}, batch_size {SB3_PPO['batch_size']}, the values the recurrent PPOs default to); "
    "RecurrentDQN: learning_starts 2000, train_freq 1, gradient_steps 1, learning_rate lin_1e-3; observations as "
    "flat Box (one-hot for popgym's discrete ones), no previous action; no VecNormalize"
)


def run(
    task: str,
    name: str,
    seed: int,
    timesteps: int,
    eval_episodes: int,
    checkpoints: Path | None = None,
    checkpoint_every: int = 50_000,
) -> dict[str, Any]:
    """Train and evaluate one contender; with ``checkpoints``, resume from and save to ``checkpoints/<run>/``."""
    factory, stacked = CONTENDERS[name]
    env: VecEnv = make_memory_vec_env(task, n_envs=N_ENVS, seed=seed, flat_box=True)
    eval_env: VecEnv = make_memory_vec_env(task, n_envs=1, seed=seed + 10_000, flat_box=True)
    if stacked:
        env, eval_env = VecFrameStack(env, FRAME_STACK), VecFrameStack(eval_env, FRAME_STACK)
    model: BaseAlgorithm = factory(env, seed)
    from benchmark import EpisodeReturns  # the same training-curve callback as the other families

    curve = EpisodeReturns()
    saver = None
    if checkpoints is not None:
        saver = RunCheckpoint(checkpoints / _run_slug(task, name, seed, timesteps), curve, checkpoint_every)
        model = saver.restore(model, env)
    start = time.perf_counter()
    # a resumed run continues the step count, so every schedule goes on from the checkpoint (zoo/resume.py's rule)
    model.learn(
        timesteps - model.num_timesteps,
        callback=[curve] if saver is None else [curve, saver],
        reset_num_timesteps=model.num_timesteps == 0,
    )
    wall = time.perf_counter() - start + (0.0 if saver is None else saver.wall_before)
    returns, _ = evaluate_policy(
        model, eval_env, n_eval_episodes=eval_episodes, deterministic=True, return_episode_rewards=True
    )
    result = {
        "task": task,
        "contender": name,
        "seed": seed,
        "timesteps": timesteps,
        "eval": float(np.mean(returns)),
        "fps": timesteps / wall,
        "wall_s": wall,
        "curve": curve.curve,
    }
    if saver is not None and saver.resumes:
        result["resumed_from"] = saver.resumes  # the step counts training restarted at
    return result


def _run_slug(task: str, name: str, seed: int, timesteps: int) -> str:
    contender = "".join(char if char.isalnum() else "_" for char in name)
    return f"{task}__{contender}__seed{seed}__{timesteps}"


class RunCheckpoint(BaseCallback):
    """Saves a suite run every ``every`` steps (model, replay buffer, curve and wall time so far), so a run that
    outlasts a session continues in the next one instead of starting over.

    A resumed run restarts its envs (the episodes in progress are lost) and records the step counts it resumed at.
    """

    def __init__(self, directory: Path, curve: Any, every: int = 50_000) -> None:
        """:param curve: the run's ``EpisodeReturns``, whose points are saved and restored with the model."""
        super().__init__()
        self.directory, self.curve, self.every = directory, curve, every
        self.wall_before = 0.0
        self.resumes: list[int] = []
        self._started = time.perf_counter()
        self._saved_at = 0

    def restore(self, model: BaseAlgorithm, env: VecEnv) -> BaseAlgorithm:
        """``model`` as last saved, with the curve so far restored; ``model`` itself if nothing was saved."""
        progress_file = self.directory / "progress.json"
        if not progress_file.exists():
            return model
        progress = json.loads(progress_file.read_text())
        model = type(model).load(self.directory / "model.zip", env=env, device="cpu")
        if isinstance(model, OffPolicyAlgorithm):
            model.load_replay_buffer(self.directory / "replay_buffer.pkl")
        self.curve.curve = [tuple(point) for point in progress["curve"]]
        self.wall_before, self.resumes = progress["wall_s"], [*progress["resumes"], model.num_timesteps]
        self._saved_at = model.num_timesteps
        print(f"resuming {self.directory.name} at step {model.num_timesteps}", flush=True)
        return model

    def _on_training_start(self) -> None:
        self._started = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps - self._saved_at >= self.every:
            self._save()
        return True

    def _save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model.save(self.directory / "model.zip")
        if isinstance(self.model, OffPolicyAlgorithm):
            self.model.save_replay_buffer(self.directory / "replay_buffer.pkl")
        wall = self.wall_before + time.perf_counter() - self._started
        progress = {"steps": self.num_timesteps, "wall_s": wall, "curve": self.curve.curve, "resumes": self.resumes}
        # written last and atomically: a progress file always describes a complete model and buffer
        partial = self.directory / "progress.json.partial"
        partial.write_text(json.dumps(progress))
        partial.replace(self.directory / "progress.json")
        self._saved_at = self.num_timesteps


def random_return(task: str, episodes: int = 100, seed: int = 0) -> float:
    """Mean return of uniformly random actions, the floor each table states."""
    env = make_memory_vec_env(task, n_envs=1, seed=seed, flat_box=True)
    env.action_space.seed(seed)
    returns: list[float] = []
    env.reset()
    while len(returns) < episodes:
        _, _, dones, infos = env.step(np.array([env.action_space.sample()]))
        if dones[0]:
            returns.append(float(infos[0]["episode"]["r"]))
    return float(np.mean(returns))


def iqm_with_ci(scores: np.ndarray) -> tuple[float, float, float]:
    """IQM over seeds and its 95% stratified bootstrap interval (rliable)."""
    # once per set of scores: the bootstrap is random, and the verdict and the task's table must show one interval
    return _iqm_with_ci(tuple(sorted(float(score) for score in scores)))


@functools.cache
def _iqm_with_ci(scores: tuple[float, ...]) -> tuple[float, float, float]:
    from rliable import library, metrics

    estimates, intervals = library.get_interval_estimates(
        {"x": np.array(scores).reshape(-1, 1)}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=2000
    )
    return float(estimates["x"][0]), float(intervals["x"][0, 0]), float(intervals["x"][1, 0])


def report(out: Path) -> None:
    runs = [json.loads(line) for line in (out / "popgym_runs.jsonl").read_text().splitlines() if line.strip()]
    # a hand-written status of the figures (what ran, under which load), kept across regenerations
    status_file = out / "popgym_status.md"
    status = [status_file.read_text().strip(), ""] if status_file.exists() else []
    lines = [
        "# Memory suite: popgym Easy tasks and MiniGrid-MemoryS7",
        "",
        *status,
        f"- written by `python {' '.join(sys.argv)}` on {datetime.date.today()}; runs from `popgym_runs.jsonl`",
        f"- machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; torch {th.__version__}, one torch "
        "thread per run, two runs at a time",
        f"- {NOTE}",
        "- evaluation: deterministic, hidden state carried, on a separately seeded env; IQM and 95% CI over seeds "
        "with rliable (2000 stratified bootstrap resamples)",
        "",
    ]
    lines += comparison(runs, max(run["timesteps"] for run in runs))
    for task in dict.fromkeys(run["task"] for run in runs):
        task_runs = [run for run in runs if run["task"] == task]
        budgets = sorted({run["timesteps"] for run in task_runs})
        lines += [f"## {task}", "", f"budget {budgets} steps; random play: {random_return(task):.3f}", ""]
        lines += ["| steps | contender | seeds | mean ± std | IQM [95% CI] | per seed | median fps | median wall time (s) |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        # one row per budget and contender, the largest budget first: runs of different lengths never mix
        for budget in reversed(budgets):
            for name in CONTENDERS:
                mine = [run for run in task_runs if run["contender"] == name and run["timesteps"] == budget]
                if mine:
                    lines.append(f"| {budget // 1000}k | {name} | " + _row(sorted(mine, key=lambda run: run["seed"])))
        lines += ["", f"![{task}](popgym_{task}_curves.png)", ""]
        plot_curves(task_runs, out / f"popgym_{task}_curves.png", task)
    (out / "popgym.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def comparison(runs: list[dict[str, Any]], budget: int) -> list[str]:
    """The suite's verdict at ``budget`` steps: per task, the best of our default contenders (by IQM, among those
    with 3 seeds) against sb3-contrib and frame stacking (2 seeds each); "missing" where runs are not there yet."""
    lines = [f"## Ours against the baselines at {budget // 1000}k steps", ""]
    lines += ["| task | best of ours | sb3-contrib | SB3 PPO + 4 frames | ours vs sb3-contrib | ours vs 4 frames |"]
    lines += ["|---|---|---|---|---|---|"]
    above_both = 0
    for task in TASKS:
        estimates = {}
        for name, seeds_needed in SEEDS_NEEDED.items():
            key = (task, name, budget)
            scores = [run["eval"] for run in runs if (run["task"], run["contender"], run["timesteps"]) == key]
            if len(scores) >= seeds_needed:
                estimates[name] = iqm_with_ci(np.array(scores))
        ours = [name for name in OURS if name in estimates]
        best_name = max(ours, key=lambda name: estimates[name][0]) if ours else None
        best = estimates[best_name] if best_name else None
        verdicts = [_verdict(best, estimates.get(name)) for name in BASELINES]
        above_both += verdicts == ["interval above"] * len(BASELINES)
        cells = [f"{best_name}: {_interval(best)}" if best else "missing"]
        cells += [_interval(estimates[name]) if name in estimates else "missing" for name in BASELINES]
        lines.append(f"| {task} | " + " | ".join(cells + verdicts) + " |")
    return [*lines, "", f"Interval above both baselines on {above_both} of {len(TASKS)} tasks (3 or more asked).", ""]


def _verdict(ours: tuple[float, float, float] | None, baseline: tuple[float, float, float] | None) -> str:
    """``ours`` and ``baseline`` are (IQM, low, high)."""
    if ours is None or baseline is None:
        return "missing"
    if ours[1] > baseline[2]:
        return "interval above"
    return "IQM >=" if ours[0] >= baseline[0] else "IQM below"


def _interval(estimate: tuple[float, float, float]) -> str:
    return f"{estimate[0]:.3f} [{estimate[1]:.3f}, {estimate[2]:.3f}]"


def _row(runs: list[dict[str, Any]]) -> str:
    """The table cells of one contender's runs at one budget, from ``seeds`` on."""
    scores = np.array([run["eval"] for run in runs])
    iqm, low, high = iqm_with_ci(scores)
    per_seed = ", ".join(f"{run['seed']}: {run['eval']:.3f}" for run in runs)
    return (
        f"{len(runs)} | {scores.mean():.3f} ± {scores.std():.3f} | {iqm:.3f} [{low:.3f}, {high:.3f}] | {per_seed} "
        f"| {np.median([r['fps'] for r in runs]):.0f} | {np.median([r['wall_s'] for r in runs]):.0f} |"
    )


def plot_curves(task_runs: list[dict[str, Any]], path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    names = list(CONTENDERS)
    labelled: set[str] = set()
    for run in task_runs:
        if run["curve"]:
            steps, returns = zip(*run["curve"], strict=True)
            label = None if run["contender"] in labelled else run["contender"]
            labelled.add(run["contender"])
            ax.plot(steps, returns, color=f"C{names.index(run['contender'])}", alpha=0.7, label=label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("training episode return (last 20)")
    ax.set_title(f"{task}: every seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["popgym"], required=True)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--only", nargs="*", default=None, help="substrings of contender names to run")
    parser.add_argument("--timesteps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="save each run here every --checkpoint-every steps and resume it from there (runs longer than a session)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=50_000)
    parser.add_argument("--report", action="store_true", help="only rebuild popgym.md and the PNGs from the runs file")
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        names = [name for name in CONTENDERS if not args.only or any(part in name for part in args.only)]
        for seed in args.seeds:  # interleaved: every task and contender for a seed, then the next seed
            for task in args.tasks:
                for name in names:
                    result = run(task, name, seed, args.timesteps, args.eval_episodes, args.checkpoints, args.checkpoint_every)
                    with (args.out / "popgym_runs.jsonl").open("a") as runs_file:
                        runs_file.write(json.dumps(result) + "\n")
                    print(f"{task} seed {seed} | {name}: {result['eval']:.3f}, {result['fps']:.0f} fps", flush=True)
                    if args.checkpoints is not None:  # recorded: a rerun of the command starts this run afresh
                        shutil.rmtree(args.checkpoints / _run_slug(task, name, seed, args.timesteps), ignore_errors=True)
    report(args.out)
