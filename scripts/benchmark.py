"""Side-by-side benchmarks, same env, budget and seeds, in one run.

``--family ppo`` (default): sb3-contrib RecurrentPPO, SB3 PPO (with and without frame stacking) and
RecurrentPPORND (RND off and on), all with rl-zoo's tuned ppo_lstm hyperparameters
(``--recurrent-ppo-config zoo_configs/recurrent_ppo.yml``: RecurrentPPORND with this package's entry for the env).
``--family rnd``: RecurrentPPORND with and without RND on a sparse-reward MiniGrid task (success rate column).
``--family dqn``: SB3 DQN (with and without frame stacking, rl-zoo's tuned CartPole DQN hyperparameters)
and RecurrentDQN (GRU and LSTM; ``--burn-in-ablation`` adds burn_in=0 with stored state).

    python scripts/benchmark.py --env CartPoleNoVel-v1 --timesteps 100000 --seeds 0 1 2 3 4
    python scripts/benchmark.py --family dqn --env popgym-RepeatFirstEasy-v0 --timesteps 100000 --seeds 0 1 2
    python scripts/benchmark.py --suite popgym --timesteps 500000 --seeds 0 1 2   # the memory suite (popgym_suite.py)
    python scripts/benchmark.py --suite cells   # one recurrent training call per cell (cell_speed.py)
    python scripts/benchmark.py --suite ppo-parts   # collection and training time per PPO (ppo_speed_parts.py)
    python scripts/benchmark.py --family dqn --actors 1 2   # DistributedRecurrentDQN's throughput (distributed_scaling.py)

Runs are interleaved (seed by seed, every contender in turn), torch threads are fixed, evaluation is
deterministic (stochastic for ``--family rnd``) over ``--eval-episodes`` episodes of a separate env with
its own seed, carrying the hidden state through each episode (``evaluate_policy``). Writes
``benchmarks/<family>_<env>.md`` (table, command line, date, machine) and
``benchmarks/<family>_<env>_curves.png`` (training episode returns).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
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
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize, sync_envs_normalization
from torch import nn

from sb3_recurrent_ext import RecurrentDQN, RecurrentPPORND, make_memory_vec_env
from sb3_recurrent_ext.zoo.config import entry_arguments, read_entry

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
# rl-zoo's ppo_lstm entry for PendulumNoVel-v1 (4 envs; batch_size is RecurrentPPO's default, the entry sets none)
ZOO_PPO_LSTM_PENDULUM = dict(
    n_steps=1024,
    batch_size=128,
    gae_lambda=0.95,
    gamma=0.9,
    n_epochs=10,
    ent_coef=0.0,
    learning_rate=1e-3,
    clip_range=0.2,
    use_sde=True,
    sde_sample_freq=4,
)
# env id -> (PPO hyperparameters, policy kwargs, number of envs); any other env uses CartPoleNoVel-v1's
PPO_HYPERPARAMETERS: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "CartPoleNoVel-v1": (ZOO_PPO_LSTM, ZOO_LSTM_POLICY, 8),
    "PendulumNoVel-v1": (ZOO_PPO_LSTM_PENDULUM, ZOO_LSTM_POLICY, 4),
}
N_ENVS = 8
FRAME_STACK = 4
# rl-zoo's tuned DQN hyperparameters for CartPole-v1 (one env), for SB3's DQN
ZOO_DQN = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)
# RecurrentDQN: its defaults (16-step sequences, 8-step burn-in, 3-step double Q, prioritized) on 8 envs,
# one learning step of 32 sequences per vectorised step, learning rate decaying linearly to 0 (rl-zoo's lin_1e-3)
RECURRENT_DQN: dict[str, Any] = dict(
    learning_starts=2000, train_freq=1, gradient_steps=1, learning_rate=lambda progress: 1e-3 * progress
)


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


Factory = Callable[[VecEnv, int], BaseAlgorithm]
HYPERPARAMETER_NOTE = {
    "ppo": "rl-zoo's ppo_lstm hyperparameters and n_envs for the env (CartPoleNoVel-v1's for envs it has none for) "
    "for every contender",
    "rnd": f"{N_ENVS} envs; RecurrentPPORND GRU with MINIGRID_PPO (scripts/benchmark.py), RND off vs on; "
    "stochastic evaluation (MiniGrid's deterministic greedy policy loops)",
    "dqn": f"SB3 DQN: 1 env, rl-zoo's CartPole-v1 DQN hyperparameters; RecurrentDQN: {N_ENVS} envs, learning_starts 2000, "
    "train_freq 1, gradient_steps 1, learning_rate lin_1e-3, other arguments at their defaults",
}


def dqn_contenders(burn_in_ablation: bool) -> dict[str, tuple[Factory, bool, int]]:
    """name -> (model factory, frame-stacked env?, number of envs)."""
    chosen: dict[str, tuple[Factory, bool, int]] = {
        "SB3 DQN (no memory)": (lambda env, seed: DQN("MlpPolicy", env, seed=seed, **ZOO_DQN), False, 1),
        f"SB3 DQN + VecFrameStack({FRAME_STACK})": (lambda env, seed: DQN("MlpPolicy", env, seed=seed, **ZOO_DQN), True, 1),
        "RecurrentDQN GRU": (lambda env, seed: RecurrentDQN("MlpGruPolicy", env, seed=seed, **RECURRENT_DQN), False, N_ENVS),
        "RecurrentDQN LSTM": (lambda env, seed: RecurrentDQN("MlpLstmPolicy", env, seed=seed, **RECURRENT_DQN), False, N_ENVS),
    }
    if burn_in_ablation:
        chosen["RecurrentDQN GRU, burn_in=0"] = (
            lambda env, seed: RecurrentDQN("MlpGruPolicy", env, seed=seed, **{**RECURRENT_DQN, "burn_in": 0}),
            False,
            N_ENVS,
        )
    return chosen


# RecurrentPPORND on sparse-reward MiniGrid: RND off vs on, everything else equal
MINIGRID_PPO: dict[str, Any] = dict(
    n_steps=128,
    batch_size=256,
    n_epochs=4,
    gamma=0.99,
    gae_lambda=0.95,
    ent_coef=0.01,
    learning_rate=5e-4,
    seq_len=16,
    policy_kwargs=dict(fc_hid_layers=[128], rnn_hidden_size=128, net_arch=dict(pi=[64], vf=[64])),
)


def rnd_contenders() -> dict[str, tuple[Factory, bool, int]]:
    """RecurrentPPORND (GRU) with and without RND (name -> factory, frame-stacked?, n_envs)."""
    return {
        f"RecurrentPPORND GRU, use_rnd={use_rnd}": (
            lambda env, seed, use_rnd=use_rnd: RecurrentPPORND(
                "MlpGruPolicy", env, use_rnd=use_rnd, seed=seed, **MINIGRID_PPO
            ),
            False,
            N_ENVS,
        )
        for use_rnd in (False, True)
    }


def zoo_entry(config: Path, env_id: str) -> tuple[dict[str, Any], dict[str, Any], int]:
    """``env_id``'s entry of a ``zoo_configs`` file as (RecurrentPPORND arguments, policy kwargs, n_envs), with
    ``lin_<x>`` strings as linear schedules; ``use_rnd`` is left out (the contender decides it)."""
    try:
        entry = read_entry(config, env_id)
    except ValueError as error:
        raise ValueError(f"--recurrent-ppo-config: {error}") from None
    entry.pop("use_rnd", None)
    return entry_arguments(entry)


def ppo_contenders(
    env_id: str, recurrent_ppo_kwargs: dict[str, Any], recurrent_ppo_config: Path | None = None
) -> dict[str, tuple[Factory, bool, int]]:
    """name -> (model factory, frame-stacked env?, number of envs), with rl-zoo's ppo_lstm values for ``env_id``.

    ``recurrent_ppo_config`` (``--recurrent-ppo-config``): the RecurrentPPORND contenders take their arguments,
    policy kwargs and n_envs from that ``zoo_configs`` file's entry instead; the others keep rl-zoo's values.
    ``recurrent_ppo_kwargs`` (``--recurrent-ppo-kwargs``) is merged into every RecurrentPPORND's arguments.
    """
    hyperparameters, lstm_policy, n_envs = PPO_HYPERPARAMETERS.get(env_id, PPO_HYPERPARAMETERS["CartPoleNoVel-v1"])
    # RecurrentPPORND at its default seq_len (None: whole sequences, as sb3-contrib's)
    ours_hyperparameters, ours_policy, ours_n_envs = dict(hyperparameters), lstm_policy, n_envs
    if recurrent_ppo_config is not None:
        ours_hyperparameters, ours_policy, ours_n_envs = zoo_entry(recurrent_ppo_config, env_id)

    def ours(policy: str, use_rnd: bool, **policy_kwargs: Any) -> Factory:
        kwargs = {**ours_hyperparameters, **recurrent_ppo_kwargs}
        return lambda env, seed: RecurrentPPORND(
            policy, env, use_rnd=use_rnd, policy_kwargs={**ours_policy, **policy_kwargs}, seed=seed, **kwargs
        )

    def sb3_ppo(env: VecEnv, seed: int) -> BaseAlgorithm:
        return PPO("MlpPolicy", env, policy_kwargs=dict(net_arch=[64]), seed=seed, **hyperparameters)

    return {
        "sb3-contrib RecurrentPPO (LSTM)": (
            lambda env, seed: RecurrentPPO("MlpLstmPolicy", env, policy_kwargs=lstm_policy, seed=seed, **hyperparameters),
            False,
            n_envs,
        ),
        "SB3 PPO (no memory)": (sb3_ppo, False, n_envs),
        f"SB3 PPO + VecFrameStack({FRAME_STACK})": (sb3_ppo, True, n_envs),
        "RecurrentPPORND LSTM, use_rnd=False": (ours("MlpLstmPolicy", False), False, ours_n_envs),
        "RecurrentPPORND GRU, use_rnd=False": (ours("MlpGruPolicy", False), False, ours_n_envs),
        # torch initialises GRU weights uniformly; this one has orthogonal weights (SLM's init_fn)
        "RecurrentPPORND GRU init_fn=orthogonal_, use_rnd=False": (
            ours("MlpGruPolicy", False, init_fn="orthogonal_"),
            False,
            ours_n_envs,
        ),
        "RecurrentPPORND FFM, use_rnd=False": (ours("MlpFfmPolicy", False), False, ours_n_envs),
        "RecurrentPPORND MinGRU, use_rnd=False": (ours("MlpMinGruPolicy", False), False, ours_n_envs),
        "RecurrentPPORND LSTM, use_rnd=True": (ours("MlpLstmPolicy", True), False, ours_n_envs),
    }


def run_one(factory: Factory, stacked: bool, n_envs: int, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    # flat_box: every contender sees the same Box observations (one-hot for popgym's discrete ones)
    env: VecEnv = make_memory_vec_env(args.env, n_envs=n_envs, seed=seed, flat_box=True, **args.env_kwargs)
    eval_env: VecEnv = make_memory_vec_env(args.env, n_envs=1, seed=seed + 10_000, flat_box=True, **args.env_kwargs)
    if args.normalize:
        # rl-zoo's `normalize: True` (as in its ppo_lstm entries): running obs/reward normalisation; the eval env
        # uses the training statistics and raw rewards
        env = VecNormalize(env)
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
    if stacked:
        env, eval_env = VecFrameStack(env, FRAME_STACK), VecFrameStack(eval_env, FRAME_STACK)
    model = factory(env, seed)
    curve = EpisodeReturns()
    start = time.perf_counter()
    model.learn(args.timesteps, callback=curve)
    fps = args.timesteps / (time.perf_counter() - start)
    if args.normalize:
        sync_envs_normalization(model.get_env(), eval_env)
    returns, _ = evaluate_policy(
        model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=args.family != "rnd", return_episode_rewards=True
    )
    # success: an episode with a positive return (MiniGrid pays only for reaching the goal)
    return {
        "fps": fps,
        "eval": float(np.mean(returns)),
        "success": float(np.mean(np.array(returns) > 0)),
        "curve": curve.curve,
    }


def main() -> None:
    if "--suite" in sys.argv:
        suite = sys.argv[sys.argv.index("--suite") + 1] if sys.argv[-1] != "--suite" else ""
        module = {"cells": "cell_speed", "ppo-parts": "ppo_speed_parts"}.get(suite, "popgym_suite")
        importlib.import_module(module).main(sys.argv[1:])
        return
    if "--actors" in sys.argv:  # --family dqn --actors 1 2: DistributedRecurrentDQN's throughput
        from distributed_scaling import main as scaling_main

        scaling_main([arg for arg in sys.argv[1:] if arg not in ("--family", "dqn")])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=["ppo", "dqn", "rnd"], default="ppo")
    parser.add_argument("--burn-in-ablation", action="store_true", help="dqn: add RecurrentDQN GRU with burn_in=0")
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument(
        "--recurrent-dqn-kwargs",
        type=json.loads,
        default={},
        help='JSON merged into RecurrentDQN\'s arguments, e.g. \'{"seq_len": 32, "burn_in": 16, "n_step": 1}\'',
    )
    parser.add_argument(
        "--recurrent-ppo-kwargs",
        type=json.loads,
        default={},
        help="ppo: JSON merged into every RecurrentPPORND's arguments (default seq_len None), e.g. '{\"seq_len\": 16}'",
    )
    parser.add_argument(
        "--recurrent-ppo-config",
        type=Path,
        default=None,
        help="ppo: RecurrentPPORND contenders use this zoo_configs file's entry for --env (arguments, policy_kwargs, "
        "n_envs) instead of rl-zoo's ppo_lstm values, e.g. zoo_configs/recurrent_ppo.yml",
    )
    parser.add_argument(
        "--env-kwargs",
        type=json.loads,
        default={},
        help="JSON passed to gym.make, e.g. '{\"k\": 8}' for popgym RepeatPrevious",
    )
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="VecNormalize every contender's env (default: on for ppo, as rl-zoo's ppo_lstm entries; off for dqn)",
    )
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="substrings of contender names to run")
    parser.add_argument("--out", default="benchmarks")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    RECURRENT_DQN.update(args.recurrent_dqn_kwargs)
    if args.normalize is None:
        args.normalize = args.family == "ppo"
    if args.recurrent_ppo_config is not None and args.family != "ppo":
        parser.error(f"--recurrent-ppo-config applies to --family ppo, not --family {args.family}")

    if args.family == "ppo":
        family = ppo_contenders(args.env, args.recurrent_ppo_kwargs, args.recurrent_ppo_config)
    elif args.family == "dqn":
        family = dqn_contenders(args.burn_in_ablation)
    else:
        family = rnd_contenders()
    chosen = {name: spec for name, spec in family.items() if not args.only or any(part in name for part in args.only)}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    for seed in args.seeds:  # interleaved: A B C ... for each seed
        for name, (factory, stacked, n_envs) in chosen.items():
            result = run_one(factory, stacked, n_envs, args, seed)
            results[name].append(result)
            print(f"seed {seed} | {name}: eval {result['eval']:.1f}, {result['fps']:.0f} fps", flush=True)

    contrib = results.get("sb3-contrib RecurrentPPO (LSTM)")
    contrib_fps = float(np.median([r["fps"] for r in contrib])) if contrib else None
    mlp = results.get("SB3 PPO (no memory)")
    mlp_fps = float(np.median([r["fps"] for r in mlp])) if mlp else None
    lines = [
        f"# Benchmark: {args.env} {args.env_kwargs or ''}, {args.timesteps} steps, seeds {args.seeds}",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {datetime.date.today()}; machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
        f"torch {th.__version__}, torch threads {args.threads}; "
        + HYPERPARAMETER_NOTE[args.family]
        + (" except RecurrentPPORND (below)" if args.recurrent_ppo_config else ""),
        f"- VecNormalize: {args.normalize}; RecurrentDQN overrides: {args.recurrent_dqn_kwargs or 'none'}; "
        f"RecurrentPPORND overrides: {args.recurrent_ppo_kwargs or 'none'}"
        + (f"; RecurrentPPORND arguments: {args.recurrent_ppo_config}, {args.env}" if args.recurrent_ppo_config else "")
        + "\n"
        f"- evaluation: {'stochastic' if args.family == 'rnd' else 'deterministic'}, {args.eval_episodes} episodes "
        "on a separately seeded env, hidden state carried",
        "",
        "| contender | eval mean ± std over seeds | per-seed eval | success (return > 0) | median fps | fps / sb3-contrib "
        "| fps / SB3 PPO (MLP) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        evals = [r["eval"] for r in runs]
        fps = float(np.median([r["fps"] for r in runs]))
        ratio = f"{fps / contrib_fps:.2f}x" if contrib_fps else "n/a"
        mlp_ratio = f"{fps / mlp_fps:.2f}x" if mlp_fps else "n/a"
        digits = 2 if max(abs(e) for e in evals) < 10 else 0
        per_seed = ", ".join(f"{e:.{digits}f}" for e in evals)
        success = np.mean([r["success"] for r in runs])
        shown = max(digits, 1)
        lines.append(
            f"| {name} | {np.mean(evals):.{shown}f} ± {np.std(evals):.{shown}f} | {per_seed} "
            f"| {success:.2f} | {fps:.0f} | {ratio} | {mlp_ratio} |"
        )
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.family}_{args.env}" + "".join(f"_{key}{value}" for key, value in args.env_kwargs.items())
    if args.recurrent_ppo_config:
        stem += f"_{args.recurrent_ppo_config.stem}"  # e.g. ppo_CartPoleNoVel-v1_recurrent_ppo.md
    (out / f"{stem}.md").write_text(table + "\n")

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
    fig.savefig(out / f"{stem}_curves.png", dpi=100)
    print(f"wrote {out / f'{stem}.md'} and {out / f'{stem}_curves.png'}")


if __name__ == "__main__":
    main()
