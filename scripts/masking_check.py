"""Masking against no masking on MaskedCueRecall (the figures of README's Masking section).

    python scripts/masking_check.py ppo 5000 0 1 2
    python scripts/masking_check.py dqn 10000 0 1 2

For each seed, one model with ``use_masking=True`` and one with ``False`` (the settings of the learning check in
tests/test_masking.py for PPO; RecurrentDQN GRU with learning_starts 500, seq_len 8, no burn-in), then the mean
deterministic episode reward over 100 episodes (1.0: the cue is always recalled; guessing among the allowed answers
scores about 0.33).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_recurrent_ext import RecurrentDQN, RecurrentPPORND
from sb3_recurrent_ext.common.envs.masked_cue import MaskedCueRecall
from sb3_recurrent_ext.common.masking import env_masks


def score(model: RecurrentPPORND | RecurrentDQN, use_masking: bool, n_episodes: int = 100) -> float:
    env = make_vec_env(MaskedCueRecall, n_envs=1, seed=123)
    obs, state, start = env.reset(), None, np.ones(1, bool)
    total, episodes = 0.0, 0
    while episodes < n_episodes:
        masks = env_masks(env, 1, env.action_space) if use_masking else None
        action, state = model.predict(obs, state, start, deterministic=True, action_masks=masks)
        obs, reward, start, _ = env.step(action)
        total, episodes = total + float(reward[0]), episodes + int(start[0])
    return total / n_episodes


def build(algorithm: str, seed: int, use_masking: bool) -> RecurrentPPORND | RecurrentDQN:
    env = make_vec_env(MaskedCueRecall, n_envs=4, seed=seed)
    small = dict(rnn_hidden_size=32)
    if algorithm == "ppo":
        return RecurrentPPORND(
            "MlpGruPolicy", env, seed=seed, use_rnd=False, use_masking=use_masking, n_steps=32, batch_size=64,
            n_epochs=4, learning_rate=1e-3, ent_coef=0.01, policy_kwargs=small,
        )  # fmt: skip
    return RecurrentDQN(
        "MlpGruPolicy", env, seed=seed, use_masking=use_masking, learning_starts=500, buffer_size=20_000, seq_len=8,
        burn_in=0, target_update_interval=500, exploration_fraction=0.3, policy_kwargs=small,
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algorithm", choices=["ppo", "dqn"])
    parser.add_argument("timesteps", type=int)
    parser.add_argument("seeds", type=int, nargs="+")
    args = parser.parse_args()
    th.set_num_threads(1)
    for seed in args.seeds:
        for use_masking in (True, False):
            start_time = time.perf_counter()
            model = build(args.algorithm, seed, use_masking).learn(args.timesteps)
            result = dict(algorithm=args.algorithm, seed=seed, use_masking=use_masking, timesteps=args.timesteps)
            result.update(score=score(model, use_masking), wall_s=round(time.perf_counter() - start_time, 1))
            print(json.dumps(result), flush=True)
