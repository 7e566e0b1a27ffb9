"""Sequence replay for recurrent Q-learning (R2D2): stored hidden states, burn-in, prioritized sequences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize

from sb3_recurrent_ext.common.recurrent.sequences import SequenceIndex
from sb3_recurrent_ext.common.recurrent.states import RecurrentState, StateLayout
from sb3_recurrent_ext.common.sum_tree import SumTree


@dataclass
class SequenceReplaySamples:
    """A batch of replayed sequences.

    :param observations: ``(batch, T, *obs_shape)`` with ``T = seq_len + n_step``; at position ``length`` of a
        sequence whose episode was truncated sits that episode's terminal observation (for bootstrapping).
    :param actions: ``(batch, T)`` (long).
    :param rewards: ``(batch, T)``, zero past each sequence's real steps.
    :param mask: ``(batch, T)`` True for real steps (never past an episode's end).
    :param lengths: ``(batch,)`` real steps.
    :param terminated: ``(batch,)`` the last real step ended its episode by termination (no bootstrap).
    :param burn_in_observations: ``(batch, burn_in, *obs_shape)`` the steps before the sequence, right-padded,
        or ``None`` without burn-in.
    :param burn_in_lengths: ``(batch,)`` real burn-in steps (fewer near an episode start or the oldest data).
    :param initial_state: state before the burn-in (stored, or zeros with ``stored_state=False``).
    :param weights: ``(batch,)`` importance-sampling weights (ones without prioritized replay).
    :param indices: ``(batch,)`` sum-tree leaves, for :meth:`update_priorities`.
    :param action_masks: ``(batch, T, n_actions)`` the actions allowed at each step, with masking (else ``None``);
        all allowed at a truncated episode's terminal observation, whose masks the env never gave.
    """

    observations: th.Tensor | dict[str, th.Tensor]
    actions: th.Tensor
    rewards: th.Tensor
    mask: th.Tensor
    lengths: th.Tensor
    terminated: th.Tensor
    burn_in_observations: th.Tensor | dict[str, th.Tensor] | None
    burn_in_lengths: th.Tensor
    initial_state: RecurrentState
    weights: th.Tensor
    indices: np.ndarray
    action_masks: th.Tensor | None = None


class _Window(NamedTuple):
    """The learning part of sampled sequences (see :meth:`SequenceReplayBuffer._learning_window`)."""

    sequence_index: SequenceIndex  # pads buffer rows into (batch, T)
    mask: np.ndarray  # (batch, T) real steps
    lengths: np.ndarray  # (batch,)
    last_position: np.ndarray  # (batch,) buffer position of each last real step
    truncated: np.ndarray  # (batch,) the last real step ended its episode by a time limit
    terminated: np.ndarray  # (batch,) ... by termination


class SequenceReplayBuffer(ReplayBuffer):
    """SB3's ``ReplayBuffer`` sampling padded sequences with stored states.

    Transitions are stored per env as SB3 stores them, with the hidden state each env was in before the
    step and the step's index in its episode. A stored sequence starts at an episode's first step and every
    ``sequence_stride`` steps after it; it becomes sampleable once its ``seq_len + n_step`` steps are written
    or its episode has ended, and stops being sampleable when its first step is overwritten. Sampling is
    proportional to priority (a sum tree over sequence starts; uniform without prioritized replay).

    :param seq_len: learning steps per sequence.
    :param burn_in: steps before the sequence replayed only to warm up the state.
    :param n_step: steps of the n-step return (the sequence carries ``n_step`` more steps for the targets).
    :param sequence_stride: steps between the starts of consecutive sequences of an episode.
    :param stored_state: start the burn-in from the stored state (R2D2) or from zeros (DRQN).
    :param state_layout: the shape of one env's hidden state (stored flat, one row per step and env); ``None``:
        one tensor of one layer of size 1.
    :param prioritized: sample proportionally to priority; else uniformly.
    :param priority_alpha: priority exponent.
    :param seed: seed of the sampling generator.
    :param mask_width: booleans in one step's action mask (0: no masks are stored).
    """

    def __init__(
        self,
        *args: Any,
        seq_len: int = 16,
        burn_in: int = 0,
        n_step: int = 1,
        sequence_stride: int = 8,
        stored_state: bool = True,
        state_layout: StateLayout | None = None,
        prioritized: bool = True,
        priority_alpha: float = 0.9,
        seed: int | None = None,
        mask_width: int = 0,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("optimize_memory_usage"):
            raise ValueError("optimize_memory_usage=True is not supported: sequence replay keeps terminal observations")
        super().__init__(*args, **kwargs)
        self.seq_len, self.burn_in, self.n_step = seq_len, burn_in, n_step
        self.sequence_stride = sequence_stride
        self.stored_state = stored_state
        self.state_layout = state_layout or StateLayout()
        self.state_dim = self.state_layout.flat_dim
        if self.sequence_length >= self.buffer_size:
            raise ValueError(f"buffer_size per env ({self.buffer_size}) must exceed seq_len + n_step = {self.sequence_length}")
        self.prioritized = prioritized
        self.priority_alpha = priority_alpha
        self.hidden_states = np.zeros((self.buffer_size, self.n_envs, self.state_dim), dtype=np.float32)
        # index of each step in its episode (0 = first step)
        self.episode_steps = np.zeros((self.buffer_size, self.n_envs), dtype=np.int64)
        self.action_masks = np.ones((self.buffer_size, self.n_envs, mask_width), dtype=bool)
        self.tree = SumTree(self.buffer_size * self.n_envs)
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)
        self._pending: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    @property
    def sequence_length(self) -> int:
        """Steps of a stored sequence after its burn-in: ``seq_len + n_step``."""
        return self.seq_len + self.n_step

    def n_sequences(self) -> int:
        """Sequences that can be sampled now."""
        return self.tree.count_nonzero()

    def add_recurrent(
        self, hidden_state: RecurrentState | np.ndarray, episode_starts: np.ndarray, action_masks: np.ndarray | None = None
    ) -> None:
        """Give the state each env was in before the next step, whether that step starts an episode, and with
        masking the ``(n_envs, n_actions)`` actions allowed at it (call before ``add``)."""
        flat = hidden_state.flat().cpu().numpy() if isinstance(hidden_state, RecurrentState) else hidden_state
        starts = np.asarray(episode_starts, dtype=bool).reshape(self.n_envs)
        self._pending = (np.asarray(flat, dtype=np.float32), starts, action_masks)

    def add(
        self, obs: Any, next_obs: Any, action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]
    ) -> None:
        if self._pending is None:
            raise RuntimeError("call add_recurrent(hidden_state, episode_starts) before each add()")
        states, starts, masks = self._pending
        self._pending = None
        position = self.pos
        empty = position == 0 and not self.full
        previous = self.episode_steps[(position - 1) % self.buffer_size]
        self.hidden_states[position] = states
        if masks is not None:
            self.action_masks[position] = masks
        self.episode_steps[position] = np.where(starts | empty, 0, previous + 1)
        super().add(obs, next_obs, action, reward, done, infos)
        self._update_sequence_starts(position, np.asarray(done, dtype=bool).reshape(self.n_envs))

    def _update_sequence_starts(self, position: int, done: np.ndarray) -> None:
        """After writing step ``position``: retire the sequences starting there, admit those now complete."""
        n_envs, size, stride = self.n_envs, self.buffer_size, self.sequence_stride
        envs = np.arange(n_envs)
        self.tree.update(position * n_envs + envs, 0.0)
        steps = self.episode_steps[position]
        # (a) the sequence whose last step is this one
        first_step = steps - (self.sequence_length - 1)
        ready = (first_step >= 0) & (first_step % stride == 0)
        admitted = [((position - (self.sequence_length - 1)) % size) * n_envs + envs[ready]]
        # (b) an episode that ended here: its starts in the last sequence_length - 1 steps are complete too
        for env in np.flatnonzero(done):
            step = steps[env]
            starts = np.arange(max(0, step - (self.sequence_length - 2)), step + 1)
            starts = starts[starts % stride == 0]
            admitted.append(((position - (step - starts)) % size) * n_envs + env)
        leaves = np.concatenate(admitted)
        self.tree.update(leaves, self.max_priority**self.priority_alpha if self.prioritized else 1.0)

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """New priorities (e.g. R2D2's mix of max and mean |TD error|) of the sampled sequences."""
        if not self.prioritized:
            return
        priorities = np.maximum(np.asarray(priorities, dtype=np.float64), 1e-6)
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities**self.priority_alpha)

    def _flat(self, positions: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """Flat index ``t * n_envs + e`` into ``(buffer_size, n_envs, ...)`` arrays."""
        return positions * self.n_envs + envs

    def _gather_observations(self, index: SequenceIndex, env: VecNormalize | None) -> th.Tensor | dict[str, th.Tensor]:
        """Observations padded into ``index``'s sequences, normalised by ``env`` if given (as SB3 samples)."""
        if isinstance(self.observations, dict):
            padded = {key: index.pad(value) for key, value in self.observations.items()}
            normalized = self._normalize_obs(padded, env)
            assert isinstance(normalized, dict)  # a dict in, a dict out
            return {key: th.as_tensor(value, device=self.device) for key, value in normalized.items()}
        return th.as_tensor(self._normalize_obs(index.pad(self.observations), env), device=self.device)

    # returns sequences, not SB3's ReplayBufferSamples: only RecurrentDQN.train samples this buffer
    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None, beta: float = 0.6
    ) -> SequenceReplaySamples:
        """Sample ``batch_size`` sequences (proportionally to priority), with burn-in and importance weights.

        :param env: a ``VecNormalize`` whose statistics normalise the observations and rewards.
        :param beta: importance-sampling exponent.
        """
        if self.n_sequences() == 0:
            raise ValueError("no complete sequence stored yet: collect more steps before sampling")
        leaves = self.tree.sample(batch_size, self.rng)
        start, envs = leaves // self.n_envs, leaves % self.n_envs
        window = self._learning_window(start, envs)
        observations = self._gather_observations(window.sequence_index, env)
        self._insert_terminal_observations(observations, window, envs, env)
        burn_in_observations, burn_in_lengths, first = self._burn_in(start, envs, env)
        states = self.hidden_states[first, envs] if self.stored_state else np.zeros((batch_size, self.state_dim), np.float32)
        to_tensor = lambda x, dtype: th.as_tensor(x, dtype=dtype, device=self.device)  # noqa: E731
        index = window.sequence_index
        return SequenceReplaySamples(
            observations=observations,
            actions=to_tensor(index.pad(self.actions.reshape(self.buffer_size, self.n_envs, -1))[..., 0], th.long),
            rewards=to_tensor(self._normalize_reward(index.pad(self.rewards), env), th.float32),
            mask=to_tensor(window.mask, th.bool),
            lengths=to_tensor(window.lengths, th.long),
            terminated=to_tensor(window.terminated, th.bool),
            burn_in_observations=burn_in_observations,
            burn_in_lengths=to_tensor(burn_in_lengths, th.long),
            initial_state=self.state_layout.unflatten(to_tensor(states, th.float32)),
            weights=to_tensor(self._importance_weights(leaves, beta), th.float32),
            indices=leaves,
            action_masks=self._window_masks(window) if self.action_masks.shape[2] else None,
        )

    def _age(self, positions: np.ndarray) -> tuple[np.ndarray, int]:
        """Steps since the oldest stored step, for each of ``positions``, and how many steps are stored."""
        count, oldest = (self.buffer_size, self.pos) if self.full else (self.pos, 0)
        return (positions - oldest) % self.buffer_size, count

    def _learning_window(self, start: np.ndarray, envs: np.ndarray) -> _Window:
        """The ``seq_len + n_step`` steps from each start: which are real, and how each sequence ends.

        A step is real while it has been written, no earlier step ended the episode, and no later step
        starts a new one.
        """
        start_age, count = self._age(start)
        offsets = np.arange(self.sequence_length)
        positions = (start[:, None] + offsets) % self.buffer_size  # (batch, T)
        written = start_age[:, None] + offsets < count
        env_column = envs[:, None]
        dones = self.dones[positions, env_column].astype(bool) & written
        new_episode = (self.episode_steps[positions, env_column] == 0) & written
        new_episode[:, 0] = False
        ended_before = (np.cumsum(dones, axis=1) - dones) > 0
        mask = written & ~ended_before & (np.cumsum(new_episode, axis=1) == 0)
        lengths = mask.sum(axis=1)
        rows = np.arange(len(start))
        last_position = positions[rows, lengths - 1]
        ended = dones[rows, lengths - 1]
        truncated = ended & self.timeouts[last_position, envs].astype(bool)
        flat = self._flat(positions, env_column)
        starts_episode = self.episode_steps[start, envs] == 0
        index = SequenceIndex(flat, mask, flat[:, 0], starts_episode, lengths, self.buffer_size, self.n_envs)
        return _Window(index, mask, lengths, last_position, truncated, ended & ~truncated)

    def _insert_terminal_observations(
        self, observations: th.Tensor | dict[str, th.Tensor], window: _Window, envs: np.ndarray, env: VecNormalize | None
    ) -> None:
        """Put a truncated episode's terminal observation right after its last step (for the bootstrap value)."""
        room = window.truncated & (window.lengths < self.sequence_length)
        if not room.any():
            return
        rows, slot = np.flatnonzero(room), window.lengths[room]
        source = (window.last_position[room], envs[room])
        next_obs = self.next_observations
        terminal = {key: value[source] for key, value in next_obs.items()} if isinstance(next_obs, dict) else next_obs[source]
        terminal = self._normalize_obs(terminal, env)
        if isinstance(observations, dict):
            for key in observations:
                observations[key][rows, slot] = th.as_tensor(terminal[key], device=self.device)
        else:
            observations[rows, slot] = th.as_tensor(terminal, device=self.device)

    def _window_masks(self, window: _Window) -> th.Tensor:
        """``(batch, T, n_actions)`` stored masks; all True past the real steps (the terminal observation's slot)."""
        masks = self.action_masks.reshape(self.buffer_size * self.n_envs, -1)[window.sequence_index.index]
        masks[~window.mask] = True
        return th.as_tensor(masks, device=self.device)

    def _burn_in(
        self, start: np.ndarray, envs: np.ndarray, env: VecNormalize | None
    ) -> tuple[th.Tensor | dict[str, th.Tensor] | None, np.ndarray, np.ndarray]:
        """Up to ``burn_in`` steps before each start, within its episode and the stored data.

        :return: the burn-in observations (right-padded; ``None`` without burn-in), their lengths, and the
            position of each burn-in's first step, whose stored state starts the sequence.
        """
        start_age, _ = self._age(start)
        burn_in_lengths = np.minimum(self.burn_in, np.minimum(self.episode_steps[start, envs], start_age))
        first = (start - burn_in_lengths) % self.buffer_size
        if self.burn_in == 0:
            return None, burn_in_lengths, first
        burn_positions = (first[:, None] + np.arange(self.burn_in)) % self.buffer_size
        burn_flat = self._flat(burn_positions, envs[:, None])
        burn_mask = np.arange(self.burn_in)[None, :] < burn_in_lengths[:, None]
        burn_index = SequenceIndex(
            burn_flat, burn_mask, burn_flat[:, 0], burn_in_lengths == 0, burn_in_lengths, self.buffer_size, self.n_envs
        )
        return self._gather_observations(burn_index, env), burn_in_lengths, first

    def _importance_weights(self, leaves: np.ndarray, beta: float) -> np.ndarray:
        """``(N * P(i)) ** -beta``, normalised by the largest (ones without prioritized replay)."""
        if not self.prioritized:
            return np.ones(len(leaves))
        probabilities = self.tree.leaves[leaves] / self.tree.total
        weights = (self.n_sequences() * probabilities) ** (-beta)
        return weights / weights.max()


class DictSequenceReplayBuffer(SequenceReplayBuffer, DictReplayBuffer):  # type: ignore[misc]  # sample, as above
    """SB3's ``DictReplayBuffer`` sampling padded sequences with stored states (see ``SequenceReplayBuffer``)."""


def sequence_replay_buffer_class(observation_space: spaces.Space) -> type[SequenceReplayBuffer]:
    return DictSequenceReplayBuffer if isinstance(observation_space, spaces.Dict) else SequenceReplayBuffer
