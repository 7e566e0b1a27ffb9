"""Generalized Advantage Estimation over several reward streams at once (extrinsic and intrinsic)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    last_dones: np.ndarray,
    gammas: Sequence[float],
    gae_lambda: float,
    episodic: Sequence[bool],
) -> tuple[np.ndarray, np.ndarray]:
    """GAE(gamma, lambda) for each stream; an episodic stream stops at episode ends, a non-episodic one
    (RND's intrinsic stream) runs through them.

    :param rewards: ``(n_steps, n_envs, n_streams)``.
    :param values: ``(n_steps, n_envs, n_streams)`` value estimates of each step's observation.
    :param episode_starts: ``(n_steps, n_envs)`` True where a step is the first of an episode.
    :param last_values: ``(n_envs, n_streams)`` values of the observation after the last step.
    :param last_dones: ``(n_envs,)`` True where the last step ended an episode.
    :param gammas: discount of each stream.
    :param gae_lambda: GAE's lambda, shared by the streams.
    :param episodic: per stream, whether episode ends cut the return.
    :return: advantages and returns (advantages + values), both ``(n_steps, n_envs, n_streams)``.
    """
    n_steps = rewards.shape[0]
    gamma = np.asarray(gammas, dtype=np.float32)
    episodic_mask = np.asarray(episodic, dtype=np.float32)
    # next_non_terminal[t] = 0 where step t + 1 begins a new episode (episodic streams only): (n_steps, n_envs, n_streams)
    next_starts = np.concatenate([episode_starts[1:], last_dones[None]], axis=0).astype(np.float32)
    next_non_terminal = 1.0 - next_starts[..., None] * episodic_mask
    next_values = np.concatenate([values[1:], last_values[None]], axis=0)
    deltas = rewards + gamma * next_values * next_non_terminal - values
    advantages = np.zeros_like(rewards, dtype=np.float32)
    last_gae = np.zeros_like(last_values, dtype=np.float32)
    # The recursion runs backwards over the rollout's steps, on (n_envs, n_streams) arrays.
    for step in reversed(range(n_steps)):
        last_gae = deltas[step] + gamma * gae_lambda * next_non_terminal[step] * last_gae
        advantages[step] = last_gae
    return advantages, advantages + values
