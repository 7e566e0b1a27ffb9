"""Where a RecurrentDQN learning cycle (train_freq=4 env steps + 1 gradient step) spends its time, with defaults.

    python scripts/dqn_learning_step.py    # GRU, LSTM, MinGRU, then SB3 DQN + 4 frames; CartPoleNoVel-v1, 1 env

Each model first learns 3000 steps (learning_starts=1000). Then, timed: the replay sample, one net's burn-in, the
target net's forward, the online net's forward + backward (the recurrent part of a gradient step is two burn-ins,
one target forward and one online forward + backward), a whole gradient step, ``train(1, 32)``, and 4000 more
steps of ``learn`` (the cycle: 1000 x (4 env steps + 1 gradient step)). Results: benchmarks/dqn_learning_step.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecFrameStack

from sb3_recurrent_ext import RecurrentDQN
from sb3_recurrent_ext.dqn_recurrent.targets import sequence_loss


def milliseconds(run: Callable[[], object], repeats: int = 50) -> float:
    """Mean wall time of ``run()`` after one warm-up call."""
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats * 1e3


def cycle_milliseconds(model: DQN | RecurrentDQN) -> float:
    """Wall time of 4 env steps and 1 gradient step, from 4000 steps of ``learn``."""
    start = time.perf_counter()
    model.learn(4000, reset_num_timesteps=False)
    return (time.perf_counter() - start) / 1000 * 1e3


def recurrent_dqn(cell: str) -> str:
    model = RecurrentDQN(f"Mlp{cell}Policy", make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=0), seed=0, learning_starts=1000)
    model.learn(3000)
    online = model.policy.q_net
    batch = model.replay_buffer.sample(32)

    def burn_in() -> None:
        with th.no_grad():
            online.burn_in(batch.burn_in_observations, batch.initial_state, batch.burn_in_lengths)

    def target_forward() -> None:
        with th.no_grad():
            online(batch.observations, batch.initial_state)

    def online_forward_backward() -> None:
        q_values, _ = online(batch.observations, batch.initial_state)
        q_values.sum().backward()

    def gradient_step() -> None:
        loss, _, _ = sequence_loss(model, batch)
        model.policy.optimizer.zero_grad()
        loss.backward()
        model.policy.optimizer.step()

    sample = milliseconds(lambda: model.replay_buffer.sample(32))
    recurrent = 2 * milliseconds(burn_in) + milliseconds(target_forward) + milliseconds(online_forward_backward)
    step, train = milliseconds(gradient_step), milliseconds(lambda: model.train(1, 32))
    cycle = cycle_milliseconds(model)
    return (
        f"| RecurrentDQN {cell} | {cycle:.2f} | {4 / cycle * 1e3:.0f} | {train:.2f} | {sample:.2f} | {step:.2f} | "
        f"{recurrent:.2f} | {cycle - train:.2f} |"
    )


def sb3_dqn() -> str:
    env = VecFrameStack(make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=0), 4)
    model = DQN("MlpPolicy", env, seed=0, learning_starts=1000, train_freq=4, batch_size=32)
    model.learn(3000)
    train = milliseconds(lambda: model.train(1, 32))
    cycle = cycle_milliseconds(model)
    return f"| SB3 DQN + 4 frames | {cycle:.2f} | {4 / cycle * 1e3:.0f} | {train:.2f} | | | | {cycle - train:.2f} |"


if __name__ == "__main__":
    th.set_num_threads(1)
    columns = ["cycle", "fps", "train()", "sample", "gradient step", "recurrent part", "4 env steps"]
    print("| model | " + " | ".join(columns) + " |  (times in ms)")
    print("|---" * (len(columns) + 1) + "|")
    for cell in ("Gru", "Lstm", "MinGru"):
        print(recurrent_dqn(cell), flush=True)
    print(sb3_dqn(), flush=True)
