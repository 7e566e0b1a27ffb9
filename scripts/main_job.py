"""The README's main job: train RecurrentPPORND on a memory task, save it, print its evaluation.

    python scripts/main_job.py [--env CartPoleNoVel-v1] [--timesteps 100000] [--seed 0] [--policy MlpLstmPolicy]

``CartPoleNoVel-v1`` is CartPole without velocities: one observation does not say where the pole is going,
so the agent must remember. The hyperparameters are rl-zoo's tuned ppo_lstm ones for this task
(``zoo_configs/recurrent_ppo.yml`` has them too), with observation and reward normalisation; RND is off
(the reward is dense here).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization
from torch import nn

from sb3_recurrent_ext import RecurrentPPORND, make_memory_vec_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--policy", default="MlpLstmPolicy", help="MlpLstmPolicy or MlpGruPolicy")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-path", default="logs/main_job/recurrent_ppo")
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()
    th.set_num_threads(1)

    env = VecNormalize(make_memory_vec_env(args.env, n_envs=8, seed=args.seed))
    model = RecurrentPPORND(
        args.policy,
        env,
        use_rnd=False,
        seq_len=16,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        ent_coef=0.0,
        learning_rate=lambda progress: 1e-3 * progress,
        clip_range=lambda progress: 0.2 * progress,
        policy_kwargs=dict(ortho_init=False, activation_fn=nn.ReLU, rnn_hidden_size=64, net_arch=dict(pi=[64], vf=[64])),
        seed=args.seed,
    )
    start = time.perf_counter()
    model.learn(args.timesteps, progress_bar=True)
    elapsed = time.perf_counter() - start
    Path(args.save_path).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.save_path)
    env.save(f"{args.save_path}_vecnormalize.pkl")

    eval_env = VecNormalize(make_memory_vec_env(args.env, n_envs=1, seed=args.seed + 1000), training=False, norm_reward=False)
    sync_envs_normalization(env, eval_env)
    mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(f"Trained RecurrentPPORND ({args.policy}, use_rnd=False) on {args.env}: {args.timesteps} steps in {elapsed:.0f} s")
    print(f"Saved to {args.save_path}.zip (+ _vecnormalize.pkl)")
    print(f"Evaluation over {args.eval_episodes} episodes (deterministic): {mean_reward:.1f} +/- {std_reward:.1f}")


if __name__ == "__main__":
    main()
