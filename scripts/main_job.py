"""The README's main job: train recurrent PPO on a memory task, save it, print its evaluation.

    python scripts/main_job.py [--env CartPoleNoVel-v1] [--timesteps 100000] [--seed 0] [--policy MlpGruPolicy]

``CartPoleNoVel-v1`` is CartPole without velocities: one observation does not say where the pole is going,
so the agent must remember. The hyperparameters, policy and number of envs are the env's entry in
``zoo_configs/recurrent_ppo.yml`` (what ``scripts/train.py --algo recurrent_ppo`` trains with), with observation
and reward normalisation as the entry says; RND is off (the reward is dense here).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

from sb3_recurrent_ext import RecurrentPPO, make_memory_vec_env
from sb3_recurrent_ext.zoo.config import default_config, entry_arguments, read_entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--policy", default=None, help="a policy alias (default: the entry's), e.g. MlpGruPolicy")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-path", default="logs/main_job/recurrent_ppo")
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()
    th.set_num_threads(1)

    entry = read_entry(default_config("recurrent_ppo"), args.env)
    arguments, policy_kwargs, n_envs = entry_arguments(entry)
    policy = args.policy or entry["policy"]
    env = make_memory_vec_env(args.env, n_envs=n_envs, seed=args.seed)
    if entry.get("normalize"):
        env = VecNormalize(env)
    model = RecurrentPPO(policy, env, policy_kwargs=policy_kwargs, seed=args.seed, **arguments)
    start = time.perf_counter()
    model.learn(args.timesteps, progress_bar=True)
    elapsed = time.perf_counter() - start
    Path(args.save_path).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.save_path)

    eval_env = make_memory_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
    if isinstance(env, VecNormalize):
        env.save(f"{args.save_path}_vecnormalize.pkl")
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        sync_envs_normalization(env, eval_env)
    mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(f"Trained RecurrentPPO ({policy}, zoo_configs/recurrent_ppo.yml) on {args.env}: {args.timesteps} steps")
    print(f"Training took {elapsed:.0f} s")
    print(f"Saved to {args.save_path}.zip (+ _vecnormalize.pkl)")
    print(f"Evaluation over {args.eval_episodes} episodes (deterministic): {mean_reward:.1f} +/- {std_reward:.1f}")


if __name__ == "__main__":
    main()
