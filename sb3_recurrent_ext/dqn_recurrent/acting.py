"""One epsilon-greedy acting step of a recurrent Q-network, shared by RecurrentDQN and its Ray actors."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import obs_as_tensor

from sb3_recurrent_ext.common.masking import masked_argmax, random_allowed_actions
from sb3_recurrent_ext.common.recurrent.states import RecurrentState
from sb3_recurrent_ext.dqn_recurrent.policies import RecurrentDQNPolicy


def epsilon_greedy_step(
    policy: RecurrentDQNPolicy,
    obs: np.ndarray | dict[str, np.ndarray],
    state: RecurrentState,
    episode_starts: np.ndarray,
    masks: np.ndarray | None,
    epsilon: float,
    action_space: spaces.Space,
) -> tuple[np.ndarray, RecurrentState, RecurrentState]:
    """Actions ``(n_envs,)``, the state each env acted from (zeroed where an episode starts: what the replay
    stores) and the state after the step. The net runs at every step, also for random actions, to carry the state."""
    obs_tensor = obs_as_tensor(obs, policy.device)
    state_before = state.reset(th.as_tensor(episode_starts, dtype=th.float32, device=policy.device))
    with th.no_grad():
        q_values, state_after = policy.q_step(obs_tensor, state_before)
    greedy = masked_argmax(q_values, None if masks is None else th.as_tensor(masks, device=policy.device))
    return explore(greedy.cpu().numpy(), epsilon, masks, action_space), state_before, state_after


def explore(actions: np.ndarray, epsilon: float, masks: np.ndarray | None, action_space: spaces.Space) -> np.ndarray:
    """Replace each of ``actions`` ``(n_envs,)`` with probability ``epsilon`` by a random (allowed) action."""
    chosen = np.random.rand(len(actions)) < epsilon
    if not chosen.any():
        return actions
    if masks is None:
        actions[chosen] = [action_space.sample() for _ in range(int(chosen.sum()))]
    else:
        actions[chosen] = random_allowed_actions(masks[chosen])
    return actions


def next_observations(
    new_obs: np.ndarray | dict[str, np.ndarray], dones: np.ndarray, infos: list[dict[str, Any]]
) -> np.ndarray | dict[str, np.ndarray]:
    """The observations each step led to: ``new_obs``, with an ended episode's terminal observation in place of
    the reset one, as SB3's ``_store_transition`` stores them."""
    next_obs = deepcopy(new_obs)
    for index, done in enumerate(dones):
        terminal = infos[index].get("terminal_observation") if done else None
        if terminal is None:
            continue
        if isinstance(next_obs, dict):
            for key in next_obs:
                next_obs[key][index] = terminal[key]
        else:
            next_obs[index] = terminal
    return next_obs
