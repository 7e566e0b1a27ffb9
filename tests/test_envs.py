"""Memory tasks made usable by SB3."""

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import VecFrameStack

from sb3_recurrent_ext import make_memory_env, make_memory_vec_env


@pytest.mark.parametrize(
    ("env_id", "space"),
    [
        ("CartPoleNoVel-v1", spaces.Box),
        ("PendulumNoVel-v1", spaces.Box),
        ("popgym-RepeatPreviousEasy-v0", spaces.Discrete),
        ("popgym-RepeatFirstEasy-v0", spaces.Discrete),
        ("popgym-PositionOnlyCartPoleEasy-v0", spaces.Box),
        ("popgym-AutoencodeEasy-v0", spaces.Box),  # Tuple observation, flattened
        ("MiniGrid-MemoryS7-v0", spaces.Box),
        ("MiniGrid-DoorKey-5x5-v0", spaces.Box),
    ],
)
def test_memory_envs_pass_sb3_env_checker(env_id, space):
    env = make_memory_env(env_id)
    assert isinstance(env.observation_space, space)
    check_env(env, warn=False)


def test_no_velocity_cartpole_hides_velocities():
    env = make_memory_env("CartPoleNoVel-v1")
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(1)
    assert obs[1] == 0 and obs[3] == 0 and obs[0] != 0


def test_minigrid_observation_is_flat_float_view():
    env = make_memory_env("MiniGrid-MemoryS7-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (7 * 7 * 3,) and obs.dtype == np.float32


def test_flat_box_makes_discrete_tasks_frame_stackable():
    env = make_memory_vec_env("popgym-RepeatFirstEasy-v0", n_envs=2, seed=0, flat_box=True)
    assert env.observation_space == spaces.Box(0, 1, (4,), np.float32)
    stacked = VecFrameStack(env, n_stack=3)
    assert stacked.reset().shape == (2, 12)
    PPO("MlpPolicy", stacked, n_steps=8, batch_size=16).learn(16)


def test_importing_the_package_does_not_import_rl_zoo3_and_still_registers_novel_envs():
    """rl_zoo3 (and its hub dependencies) load only when a NoVel env is made or the zoo is used."""
    import subprocess
    import sys

    code = (
        "import sys, gymnasium as gym, sb3_recurrent_ext\n"
        "assert 'rl_zoo3' not in sys.modules, 'imported rl_zoo3'\n"
        "ours = gym.make('CartPoleNoVel-v1').reset(seed=3)[0]\n"
        "import rl_zoo3.import_envs\n"  # rl-zoo3's own registration of the same id
        "theirs = gym.make('CartPoleNoVel-v1').reset(seed=3)[0]\n"
        "assert (ours == theirs).all() and ours[1] == ours[3] == 0, (ours, theirs)\n"
    )
    subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], check=True, timeout=120)
