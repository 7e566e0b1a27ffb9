"""A small memory task with many invalid actions, for masking checks (tests/test_masking.py,
scripts/masking_check.py)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class MaskedCueRecall(gym.Env):
    """A cue at the first step, then ``delay`` steps where only "wait" (action 0) is allowed; at the last step the
    answer is one of ``n_cues`` actions (1..n_cues) of ``n_actions``. Right answer +1, wrong 0; a masked action
    ends the episode with -1. ``action_masks()`` gives the allowed actions."""

    def __init__(self, n_cues: int = 3, delay: int = 3, n_actions: int = 12) -> None:
        self.n_cues, self.delay, self.n_actions = n_cues, delay, n_actions
        self.action_space = spaces.Discrete(n_actions)
        self.observation_space = spaces.Box(0.0, 1.0, (n_cues + delay + 1,), np.float32)

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.n_cues + self.delay + 1, np.float32)  # cue one-hot, then the step one-hot
        if self.t == 0:
            obs[self.cue] = 1.0
        obs[self.n_cues + self.t] = 1.0
        return obs

    def action_masks(self) -> np.ndarray:
        mask = np.zeros(self.n_actions, bool)
        if self.t < self.delay:
            mask[0] = True
        else:
            mask[1 : self.n_cues + 1] = True
        return mask

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(self.n_cues)), 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.action_masks()[int(action)]:
            return self._obs(), -1.0, True, False, {}
        if self.t == self.delay:
            return self._obs(), float(int(action) == self.cue + 1), True, False, {}
        self.t += 1
        return self._obs(), 0.0, False, False, {}
