"""Zoo runs of our algorithms that resume after a crash where they stopped.

rl_zoo3's ``--save-freq`` checkpoints hold the model only, and ``-i <checkpoint>`` restarts the step count at 0:
``learning_starts``, epsilon and the learning-rate schedule start over, and the replay buffer is gone. For our
algorithms (nothing changes for rl_zoo3's own):

* checkpoints also save the replay buffer and the ``VecNormalize`` statistics (SB3's ``CheckpointCallback``
  with ``save_replay_buffer`` and ``save_vecnormalize``);
* ``-i .../rl_model_<N>_steps.zip`` loads the buffer and statistics saved with that checkpoint, and training
  continues the step count up to ``-n``: ``learn(n - N, reset_num_timesteps=False)``, so every schedule goes on
  from where the checkpoint left it.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

# what CheckpointCallback writes beside rl_model_<N>_steps.zip
_CHECKPOINT = re.compile(r"^(?P<prefix>.+)_(?P<steps>\d+)_steps\.zip$")


def checkpoint_files(trained_agent: str) -> tuple[Path, Path] | None:
    """The replay buffer and VecNormalize files saved with a ``CheckpointCallback`` checkpoint, or ``None``."""
    path = Path(trained_agent)
    match = _CHECKPOINT.match(path.name)
    if match is None:
        return None
    prefix, steps = match["prefix"], match["steps"]
    return (
        path.with_name(f"{prefix}_replay_buffer_{steps}_steps.pkl"),
        path.with_name(f"{prefix}_vecnormalize_{steps}_steps.pkl"),
    )


def install(manager: Any, ours: Any) -> None:
    """Wrap ``manager``'s (rl_zoo3's ExperimentManager) methods; ``ours(self)`` says whether the algo is ours."""
    create_callbacks, learn = manager.create_callbacks, manager.learn
    load_pretrained, maybe_normalize = manager._load_pretrained_agent, manager._maybe_normalize

    @functools.wraps(create_callbacks)
    def _create_callbacks(self: Any) -> None:
        create_callbacks(self)
        if ours(self):
            self.callbacks = [_with_buffers(callback) for callback in self.callbacks]

    @functools.wraps(load_pretrained)
    def _load_pretrained_agent(self: Any, hyperparams: dict[str, Any], env: VecEnv) -> Any:
        model = load_pretrained(self, hyperparams, env)
        files = checkpoint_files(self.trained_agent) if ours(self) else None
        if files is not None and files[0].exists() and hasattr(model, "load_replay_buffer"):
            print(f"Loading the checkpoint's replay buffer {files[0]}")
            model.load_replay_buffer(files[0])
        return model

    @functools.wraps(maybe_normalize)
    def _maybe_normalize(self: Any, env: VecEnv, eval_env: bool) -> VecEnv:
        files = checkpoint_files(self.trained_agent) if ours(self) else None
        if files is None or not files[1].exists():
            return maybe_normalize(self, env, eval_env)
        # env is the raw VecEnv here: rl_zoo3 wraps it in VecNormalize in this method
        print(f"Loading the checkpoint's VecNormalize statistics {files[1]}")
        normalized = VecNormalize.load(str(files[1]), env)
        if eval_env:
            normalized.training, normalized.norm_reward = False, False
        return normalized

    @functools.wraps(learn)
    def _learn(self: Any, model: Any) -> None:
        if not (ours(self) and self.continue_training and model.num_timesteps > 0):
            return learn(self, model)
        # continue the step count (and with it learning_starts, epsilon and every schedule) up to -n
        with _learning_continued(model, remaining=max(self.n_timesteps - model.num_timesteps, 0)):
            learn(self, model)

    manager.create_callbacks = _create_callbacks
    manager._load_pretrained_agent = _load_pretrained_agent
    manager._maybe_normalize = _maybe_normalize
    manager.learn = _learn


def _with_buffers(callback: Any) -> Any:
    """rl_zoo3's ``CheckpointCallback`` made to save the replay buffer and VecNormalize statistics too."""
    if not isinstance(callback, CheckpointCallback):
        return callback
    return CheckpointCallback(
        save_freq=callback.save_freq,
        save_path=callback.save_path,
        name_prefix=callback.name_prefix,
        save_replay_buffer=True,
        save_vecnormalize=True,
        verbose=callback.verbose,
    )


@contextlib.contextmanager
def _learning_continued(model: Any, remaining: int) -> Iterator[None]:
    """Within the block, ``model.learn(n)`` learns ``remaining`` more steps without resetting the step count.

    rl_zoo3 calls ``model.learn(n_timesteps)``; the class's ``learn`` is swapped for that call only (not the
    instance's: the model's ``__dict__`` is saved with every checkpoint).
    """
    cls, class_learn = type(model), type(model).learn
    had_own = "learn" in cls.__dict__

    def resumed_learn(model_self: Any, total_timesteps: int, **kwargs: Any) -> Any:
        return class_learn(model_self, remaining, **{**kwargs, "reset_num_timesteps": False})

    cls.learn = resumed_learn
    try:
        yield
    finally:
        if had_own:
            cls.learn = class_learn
        else:
            del cls.learn
