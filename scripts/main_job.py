"""The README's main job: train a recurrent agent on a memory task, save it, print its evaluation.

    python scripts/main_job.py [--env CartPoleNoVel-v1] [--timesteps 100000] [--seed 0]

The agent is SB3's PPO with the package's windowed RecurrentNet (a GRU over the last 4 frames,
``RecurrentNetExtractor``), on ``CartPoleNoVel-v1`` (CartPole without velocities: a single
observation does not say where the pole is going).
"""

from __future__ import annotations

import argparse
import time

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecFrameStack

from sb3_recurrent_ext import RecurrentNetExtractor, make_memory_vec_env

SEQ_LEN = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-path", default="logs/main_job/ppo_recurrent_net")
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()
    th.set_num_threads(1)

    env = VecFrameStack(make_memory_vec_env(args.env, n_envs=8, seed=args.seed, flat_box=True), n_stack=SEQ_LEN)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        ent_coef=0.0,
        learning_rate=1e-3,
        policy_kwargs=dict(
            features_extractor_class=RecurrentNetExtractor,
            features_extractor_kwargs=dict(seq_len=SEQ_LEN, cell_type="GRU", fc_hid_layers=[64], rnn_hidden_size=64),
            net_arch=[64],
        ),
        seed=args.seed,
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(args.timesteps, progress_bar=True)
    elapsed = time.perf_counter() - start
    model.save(args.save_path)

    eval_env = VecFrameStack(make_memory_vec_env(args.env, n_envs=1, seed=args.seed + 1000, flat_box=True), n_stack=SEQ_LEN)
    mean_reward, std_reward = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(
        f"Trained PPO + RecurrentNetExtractor(GRU, window {SEQ_LEN}) on {args.env}: {args.timesteps} steps in {elapsed:.0f} s"
    )
    print(f"Saved to {args.save_path}.zip")
    print(f"Evaluation over {args.eval_episodes} episodes (deterministic): {mean_reward:.1f} +/- {std_reward:.1f}")


if __name__ == "__main__":
    main()
