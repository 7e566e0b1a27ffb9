"""sb3-contrib's own ``tests/test_lstm.py::test_ppo_lstm_performance``, run over seeds against RecurrentPPORND.

The test's settings, word for word, with only the class changed: CartPoleNoVel (rl-zoo3's, 500-step limit) over 8
envs with ``VecNormalize``; ``n_steps=128``, ``learning_rate=7e-4``, ``batch_size=256``, ``n_epochs=10``,
``max_grad_norm=1``, ``gae_lambda=0.98``; ``net_arch=dict(vf=[64], pi=[])``, ``lstm_hidden_size=64``,
``ortho_init=False``, ``enable_critic_lstm=True``; 50k steps; then ``evaluate_policy(model, env)`` on the training
env (10 episodes, deterministic) must reach 450. RecurrentPPORND runs with ``use_rnd=False`` and its default
``seq_len`` unless ``--seq-len`` says otherwise.

    python scripts/contrib_lstm_performance.py --seeds 0 1 2 3 4 [--seq-len 16] [--contrib]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_recurrent_ext import RecurrentPPORND, make_memory_vec_env

SETTINGS: dict[str, Any] = dict(n_steps=128, learning_rate=7e-4, batch_size=256, n_epochs=10, max_grad_norm=1, gae_lambda=0.98)
POLICY = dict(net_arch=dict(vf=[64], pi=[]), lstm_hidden_size=64, ortho_init=False, enable_critic_lstm=True)
THRESHOLD = 450


def run(seed: int, seq_len: int | None, contrib: bool, timesteps: int) -> dict[str, Any]:
    env = VecNormalize(make_memory_vec_env("CartPoleNoVel-v1", n_envs=8, seed=seed))
    if contrib:
        from sb3_contrib import RecurrentPPO

        model: Any = RecurrentPPO("MlpLstmPolicy", env, seed=seed, policy_kwargs=POLICY, **SETTINGS)
    else:
        extra = {} if seq_len is None else {"seq_len": seq_len}
        model = RecurrentPPORND("MlpLstmPolicy", env, use_rnd=False, seed=seed, policy_kwargs=POLICY, **SETTINGS, **extra)
    start = time.perf_counter()
    model.learn(timesteps)
    wall = time.perf_counter() - start
    mean, _ = evaluate_policy(model, env)
    return {"seed": seed, "eval": float(mean), "wall_s": wall, "passed": bool(mean >= THRESHOLD)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--seq-len", type=int, default=None, help="RecurrentPPORND's seq_len (default: its default)")
    parser.add_argument("--contrib", action="store_true", help="run sb3-contrib's RecurrentPPO instead")
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/contrib_lstm_performance.md"))
    args = parser.parse_args()
    th.set_num_threads(1)
    name = "sb3-contrib RecurrentPPO" if args.contrib else f"RecurrentPPORND(use_rnd=False, seq_len={args.seq_len})"
    results = []
    for seed in args.seeds:
        results.append(run(seed, args.seq_len, args.contrib, args.timesteps))
        print(json.dumps(results[-1]), flush=True)
    passed = sum(r["passed"] for r in results)
    per_seed = ", ".join(f"{r['eval']:.0f}" for r in results)
    row = (
        f"| {name} | {passed} of {len(results)} | {per_seed} "
        f"| {np.median([r['wall_s'] for r in results]):.0f} | {datetime.date.today()} | `python {' '.join(sys.argv)}` |"
    )
    if not args.out.exists():
        args.out.write_text(
            "# sb3-contrib's test_ppo_lstm_performance over seeds (threshold 450, one torch thread)\n\n"
            "| contender | passed | eval per seed | median wall time (s) | date | command |\n|---|---|---|---|---|---|\n"
        )
    with args.out.open("a") as out:
        out.write(row + "\n")
    print(row)


if __name__ == "__main__":
    main()
