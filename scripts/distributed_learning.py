"""Learning with Ray actors against the single-process run, from the same ``zoo_configs`` entry and budget.

DistributedRecurrentDQN with ``--actors`` actors sharing the entry's ``n_envs`` (so a round brings as many env
steps, and the learner as many updates, as one ``train_freq`` of the single-process run), evaluated as the zoo
does (deterministic, 20 episodes, hidden state carried). Appends one JSON line per seed to ``--out``.

    python scripts/distributed_learning.py --actors 2 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_recurrent_ext import DistributedRecurrentDQN
from sb3_recurrent_ext.zoo.config import default_config, entry_arguments, read_entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--actor-epsilon-alpha", type=float, default=0.0, help="Ape-X's alpha (0: all actors at eps)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/distributed_learning.jsonl"))
    args = parser.parse_args()
    th.set_num_threads(1)
    entry = read_entry(default_config("recurrent_dqn"), args.env)
    n_timesteps = int(float(entry.pop("n_timesteps")))
    policy = entry.pop("policy")
    arguments, policy_kwargs, n_envs = entry_arguments(entry)
    if n_envs % args.actors:
        raise ValueError(f"--actors {args.actors} must divide the entry's n_envs={n_envs}")
    for seed in args.seeds:
        model = DistributedRecurrentDQN(
            policy,
            args.env,
            n_actors=args.actors,
            envs_per_actor=n_envs // args.actors,
            policy_kwargs=policy_kwargs,
            seed=seed,
            actor_epsilon_alpha=args.actor_epsilon_alpha,
            **arguments,
        )
        start = time.perf_counter()
        model.learn(n_timesteps)
        wall = time.perf_counter() - start
        returns, _ = evaluate_policy(
            model, make_vec_env(args.env, seed=seed + 10_000), n_eval_episodes=20, return_episode_rewards=True
        )
        result = {
            "env": args.env,
            "actors": args.actors,
            "actor_epsilon_alpha": args.actor_epsilon_alpha,
            "seed": seed,
            "timesteps": model.num_timesteps,
            "eval": sum(returns) / len(returns),
            "wall_s": wall,
            "updates": model._n_updates,
        }
        with args.out.open("a") as out:
            out.write(json.dumps(result) + "\n")
        print(result, flush=True)


if __name__ == "__main__":
    main()
