"""Learning checks on small memory tasks, small budgets and generous thresholds (no speed targets here)."""

import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecFrameStack

from sb3_recurrent_ext import RecurrentNetExtractor

SEQ_LEN = 4
BUDGET = 30_000


def _train_and_evaluate(frame_stack: bool, seed: int = 0) -> float:
    th.set_num_threads(1)
    env = make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=seed)
    eval_env = make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=seed + 1000)
    policy_kwargs: dict = dict(net_arch=[64])
    if frame_stack:
        env, eval_env = VecFrameStack(env, SEQ_LEN), VecFrameStack(eval_env, SEQ_LEN)
        policy_kwargs.update(
            features_extractor_class=RecurrentNetExtractor,
            features_extractor_kwargs=dict(seq_len=SEQ_LEN, cell_type="GRU", fc_hid_layers=[64], rnn_hidden_size=64),
            share_features_extractor=False,
        )
    # rl-zoo's CartPole PPO hyperparameters
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0,
                learning_rate=1e-3, policy_kwargs=policy_kwargs, seed=seed)  # fmt: skip
    model.learn(BUDGET)
    mean_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return float(mean_reward)


@pytest.mark.slow
def test_windowed_recurrent_net_beats_no_memory_on_cartpole_novel():
    with_window = _train_and_evaluate(frame_stack=True)
    without = _train_and_evaluate(frame_stack=False)
    print(f"CartPoleNoVel-v1, PPO, {BUDGET} steps: RecurrentNetExtractor window {with_window:.1f}, no stacking {without:.1f}")
    assert with_window > without + 50, (with_window, without)
