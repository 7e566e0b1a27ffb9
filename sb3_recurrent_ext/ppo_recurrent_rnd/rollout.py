"""What RecurrentPPORND does to a rollout between stepping the envs and training on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th

from sb3_recurrent_ext.common.recurrent.states import RecurrentState
from sb3_recurrent_ext.common.rnd import RND, RolloutRND
from sb3_recurrent_ext.ppo_recurrent_rnd.buffers import RecurrentRNDRolloutBuffer
from sb3_recurrent_ext.ppo_recurrent_rnd.policies import RecurrentActorCriticPolicy


def bootstrap_truncations(
    policy: RecurrentActorCriticPolicy,
    rewards: np.ndarray,
    dones: np.ndarray,
    infos: list[dict[str, Any]],
    state: RecurrentState,
    gamma: float,
) -> None:
    """Add ``gamma * V(terminal observation)`` to the reward of every env whose episode hit a time limit (as SB3).

    All such envs go through the value head in one call, each with its own state after the step (``state``).
    """
    truncated = [
        index
        for index, done in enumerate(dones)
        if done and infos[index].get("terminal_observation") is not None and infos[index].get("TimeLimit.truncated")
    ]
    if not truncated:
        return
    terminal = [infos[index]["terminal_observation"] for index in truncated]
    stacked: np.ndarray | dict[str, np.ndarray] = (
        {key: np.stack([obs[key] for obs in terminal]) for key in terminal[0]}
        if isinstance(terminal[0], dict)
        else np.stack(terminal)
    )
    obs_tensor, _ = policy.obs_to_tensor(stacked)
    rows = np.array(truncated)
    with th.no_grad():
        # the state carried into the terminal step is not reset: no episode starts there
        values = policy.predict_values(obs_tensor, state.index(rows), th.zeros(len(rows), device=policy.device))[:, 0]
    rewards[rows] += gamma * values.cpu().numpy()


def add_intrinsic_rewards(rnd: RND, buffer: RecurrentRNDRolloutBuffer, observation_space: Any) -> RolloutRND:
    """Fill ``buffer.int_rewards`` from RND's view of the rollout; that view (the fixed target's features) serves
    every predictor step of the update that follows."""
    rollout = rnd.observe_buffer(buffer.observations, buffer.hidden_states, observation_space)
    buffer.int_rewards[:] = rnd.intrinsic_rewards(rollout, buffer.buffer_size, buffer.n_envs)
    return rollout
