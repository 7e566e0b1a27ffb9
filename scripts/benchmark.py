"""Side-by-side benchmark: sb3-contrib RecurrentPPO, SB3 PPO (with and without frame stacking) and
RecurrentPPORND (RND off and on), same env, hyperparameters, budget and seeds, in one run.

    python scripts/benchmark.py --env CartPoleNoVel-v1 --timesteps 100000 --seeds 0 1 2 3 4

Runs are interleaved (seed by seed, every contender in turn), torch threads are fixed, evaluation is
deterministic over ``--eval-episodes`` episodes of a separate env with its own seed, carrying the hidden
state through each episode (``evaluate_policy``). Writes ``benchmarks/results.md`` (table, command line,
date, machine) and ``benchmarks/<env>_curves.png`` (training episode returns).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack
from torch import nn

from sb3_recurrent_ext import RecurrentPPORND

# rl-zoo's tuned ppo_lstm hyperparameters for CartPoleNoVel-v1 (the PPO contenders share them)
ZOO_PPO_LSTM = dict(
    n_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    n_epochs=20,
    ent_coef=0.0,
    learning_rate=lambda progress: 1e-3 * progress,
    clip_range=lambda progress: 0.2 * progress,
)
ZOO_LSTM_POLICY = dict(ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64, net_arch=dict(pi=[64], vf=[64]))
N_ENVS = 8
FRAME_STACK = 4


class EpisodeReturns(BaseCallback):
    """Records (timestep, mean of the last 20 training episode returns) after every rollout."""

    def __init__(self) -> None:
        super().__init__()
        self.curve: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.model.ep_info_buffer:
            returns = [info["r"] for info in list(self.model.ep_info_buffer)[-20:]]
            self.curve.append((self.num_timesteps, float(np.mean(returns))))


def contenders() -> dict[str, tuple[Callable[[VecEnv, int], BaseAlgorithm], bool]]:
    """name -> (model factory, frame-stacked env?)."""
    return {
        "sb3-contrib RecurrentPPO (LSTM)": (
            lambda env, seed: RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=ZOO_LSTM_POLICY, seed=seed, **ZOO_PPO_LSTM),
            False,
        ),
        "SB3 PPO (no memory)": (
            lambda env, seed: PPO("MlpPolicy", env, policy_kwargs=dict(net_arch=[64]), seed=seed, **ZOO_PPO_LSTM),
            False,
        ),
        f"SB3 PPO + VecFrameStack({FRAME_STACK})": (
            lambda env, seed: PPO("MlpPolicy", env, policy_kwargs=dict(net_arch=[64]), seed=seed, **ZOO_PPO_LSTM),
            True,
        ),
        "RecurrentPPORND LSTM, use_rnd=False": (
            lambda env, seed: RecurrentPPORND(
                "MlpLstmPolicy", env, use_rnd=False, seq_len=16, policy_kwargs=ZOO_LSTM_POLICY, seed=seed, **ZOO_PPO_LSTM
            ),
            False,
        ),
        "RecurrentPPORND GRU, use_rnd=False": (
            lambda env, seed: RecurrentPPORND(
                "MlpGruPolicy", env, use_rnd=False, seq_len=16, policy_kwargs=ZOO_LSTM_POLICY, seed=seed, **ZOO_PPO_LSTM
            ),
            False,
        ),
        "RecurrentPPORND LSTM, use_rnd=True": (
            lambda env, seed: RecurrentPPORND(
                "MlpLstmPolicy", env, use_rnd=True, seq_len=16, policy_kwargs=ZOO_LSTM_POLICY, seed=seed, **ZOO_PPO_LSTM
            ),
            False,
        ),
    }


def run_one(
    factory: Callable[[VecEnv, int], BaseAlgorithm], stacked: bool, args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    env: VecEnv = make_vec_env(args.env, n_envs=N_ENVS, seed=seed)
    eval_env: VecEnv = make_vec_env(args.env, n_envs=1, seed=seed + 10_000)
    if stacked:
        env, eval_env = VecFrameStack(env, FRAME_STACK), VecFrameStack(eval_env, FRAME_STACK)
    model = factory(env, seed)
    curve = EpisodeReturns()
    start = time.perf_counter()
    model.learn(args.timesteps, callback=curve)
    fps = args.timesteps / (time.perf_counter() - start)
    mean_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    return {"fps": fps, "eval": float(mean_reward), "curve": curve.curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="substrings of contender names to run")
    parser.add_argument("--out", default="benchmarks")
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    chosen = {name: spec for name, spec in contenders().items() if not args.only or any(part in name for part in args.only)}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    for seed in args.seeds:  # interleaved: A B C ... for each seed
        for name, (factory, stacked) in chosen.items():
            result = run_one(factory, stacked, args, seed)
            results[name].append(result)
            print(f"seed {seed} | {name}: eval {result['eval']:.1f}, {result['fps']:.0f} fps", flush=True)

    contrib = results.get("sb3-contrib RecurrentPPO (LSTM)")
    contrib_fps = float(np.median([r["fps"] for r in contrib])) if contrib else None
    lines = [
        f"# Benchmark: {args.env}, {args.timesteps} steps, seeds {args.seeds}",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {datetime.date.today()}; machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
        f"torch {th.__version__}, torch threads {args.threads}; {N_ENVS} envs; rl-zoo ppo_lstm hyperparameters",
        f"- evaluation: deterministic, {args.eval_episodes} episodes on a separately seeded env, hidden state carried",
        "",
        "| contender | eval mean ± std over seeds | per-seed eval | median fps | fps / sb3-contrib |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        evals = [r["eval"] for r in runs]
        fps = float(np.median([r["fps"] for r in runs]))
        ratio = f"{fps / contrib_fps:.2f}x" if contrib_fps else "n/a"
        per_seed = ", ".join(f"{e:.0f}" for e in evals)
        lines.append(f"| {name} | {np.mean(evals):.1f} ± {np.std(evals):.1f} | {per_seed} | {fps:.0f} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(table + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, runs in results.items():
        for i, run in enumerate(runs):
            if run["curve"]:
                steps, returns = zip(*run["curve"], strict=True)
                ax.plot(steps, returns, color=f"C{list(results).index(name)}", alpha=0.7, label=name if i == 0 else None)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("training episode return (last 20)")
    ax.set_title(f"{args.env}: every seed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{args.env}_curves.png", dpi=100)
    print(f"wrote {out / 'results.md'} and {out / f'{args.env}_curves.png'}")


if __name__ == "__main__":
    main()
