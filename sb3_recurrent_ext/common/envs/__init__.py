"""Memory tasks usable by SB3: rl-zoo3's ``*NoVel`` envs, popgym and MiniGrid.

* ``CartPoleNoVel-v1``, ``PendulumNoVel-v1``, ``LunarLanderNoVel-v3``, ``MountainCarContinuousNoVel-v0``...
  are rl-zoo3's envs (velocities masked by its ``MaskVelocityWrapper``); importing this package registers them,
  and rl_zoo3 is imported only when one is made.
* popgym tasks (``popgym-RepeatPreviousEasy-v0``, ``popgym-RepeatFirstEasy-v0``,
  ``popgym-PositionOnlyCartPoleEasy-v0``...) and MiniGrid tasks (``MiniGrid-MemoryS7-v0``,
  ``MiniGrid-DoorKey-5x5-v0``...) are made SB3-ready by :func:`make_memory_env`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

# rl-zoo3's *NoVel sources (rl_zoo3.wrappers.MaskVelocityWrapper.velocity_indices). Registered here with a lazy
# entry point: importing rl_zoo3 takes seconds (its hub dependencies), and only making one of these envs needs it.
NO_VEL_SOURCES = (
    "CartPole-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Pendulum-v1",
    "LunarLander-v3",
    "LunarLanderContinuous-v3",
)


def make_no_vel_env(source_id: str, **make_kwargs: Any) -> gym.Env:
    """``source_id`` with its velocities masked, as rl-zoo3's ``*NoVel`` envs are."""
    from rl_zoo3.wrappers import MaskVelocityWrapper

    return MaskVelocityWrapper(gym.make(source_id, **make_kwargs))


# rl_zoo3, once imported (the zoo, the benchmarks), registers the same ids again with the same env: its
# "Overriding environment ...NoVel..." warning says nothing a user can act on
warnings.filterwarnings("ignore", message=r".*Overriding environment \w+NoVel-v\d+ already in registry")
for _source in NO_VEL_SOURCES:
    _name, _version = _source.split("-v")
    if f"{_name}NoVel-v{_version}" not in gym.registry:
        gym.register(f"{_name}NoVel-v{_version}", f"{__name__}:make_no_vel_env", kwargs={"source_id": _source})

# Observation spaces SB3's policies take directly.
SB3_OBS_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class _Float32Observation(gym.ObservationWrapper):
    """Cast a flat Box observation to float32 (MiniGrid's images are uint8 but not pixels)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, spaces.Box)
        self.observation_space = spaces.Box(
            low=space.low.astype(np.float32), high=space.high.astype(np.float32), dtype=np.float32
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation.astype(np.float32)


def _register_optional_suites(env_id: str) -> None:
    try:
        if env_id.startswith("popgym-"):
            import popgym  # noqa: F401
        elif env_id.startswith("MiniGrid-"):
            import minigrid  # noqa: F401
    except ImportError as error:
        raise ImportError(f"env_id={env_id!r} needs the memory-task extra: pip install 'sb3-recurrent-ext[envs]'") from error


def make_memory_env(env_id: str, flat_box: bool = False, **make_kwargs: Any) -> gym.Env:
    """Make a memory task with an observation space SB3 policies accept.

    * MiniGrid: the agent's 7x7x3 egocentric view only (the mission string is dropped,
      ``minigrid.wrappers.ImgObsWrapper``), flattened to a float32 ``Box(147,)``.
    * popgym: ``Discrete``/``MultiDiscrete``/``Box`` observations are kept; others
      (``Tuple`` in Autoencode) are flattened to a ``Box``.
    * anything else (``CartPoleNoVel-v1``...) is ``gym.make(env_id)``.

    :param env_id: a registered id, e.g. ``"popgym-RepeatFirstEasy-v0"`` or ``"MiniGrid-MemoryS7-v0"``.
    :param flat_box: also flatten ``Discrete``/``MultiDiscrete`` observations to a one-hot ``Box``,
        as ``VecFrameStack`` and :class:`~sb3_recurrent_ext.RecurrentNetExtractor` need.
    :param make_kwargs: passed to ``gym.make`` (``render_mode``, popgym/MiniGrid options).
    """
    _register_optional_suites(env_id)
    return memory_observation_wrapper(gym.make(env_id, **make_kwargs), flat_box=flat_box)


def memory_observation_wrapper(env: gym.Env, flat_box: bool = False) -> gym.Env:
    """The observation handling of :func:`make_memory_env` for an env made elsewhere.

    Usable as an RL Zoo ``env_wrapper`` (``sb3_recurrent_ext.common.envs.memory_observation_wrapper``).
    """
    if env.spec is not None and env.spec.id.startswith("MiniGrid-"):
        from minigrid.wrappers import ImgObsWrapper

        return _Float32Observation(FlattenObservation(ImgObsWrapper(env)))
    if not isinstance(env.observation_space, SB3_OBS_SPACES) or (
        flat_box and not isinstance(env.observation_space, spaces.Box)
    ):
        return _Float32Observation(FlattenObservation(env))
    return env


def register_memory_suites() -> None:
    """Register popgym's and MiniGrid's env ids when they are installed (for ``gym.make`` and the RL Zoo)."""
    for module in ("popgym", "minigrid"):
        try:
            __import__(module)
        except ImportError:
            pass


def make_memory_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    flat_box: bool = False,
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] | None = None,
    wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
    **make_kwargs: Any,
) -> VecEnv:
    """SB3's ``make_vec_env`` over :func:`make_memory_env` (each env wrapped in ``Monitor``)."""
    return make_vec_env(
        lambda **kwargs: make_memory_env(env_id, flat_box=flat_box, **{**make_kwargs, **kwargs}),
        n_envs=n_envs,
        seed=seed,
        vec_env_cls=vec_env_cls,
        wrapper_class=wrapper_class,
    )
