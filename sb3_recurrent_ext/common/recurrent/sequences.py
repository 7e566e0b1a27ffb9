"""The one sequence mechanism: cut time-major data into padded sequences with a mask.

Rollouts (and replay) hold data time-major, ``(n_steps, n_envs, ...)``. A sequence starts at
every episode start and at least every ``seq_len`` steps after the previous start; it never
crosses an env or an episode boundary. Sequences are padded at the end to ``seq_len``; the
mask says which entries are real. A sequence that begins at an episode start runs from a zero
state; any other runs from the hidden state stored when its first step was collected, found
with :attr:`SequenceIndex.start_index`.

Everything is computed with array operations, no loop over time steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch as th

ArrayT = TypeVar("ArrayT", np.ndarray, th.Tensor)


@dataclass(frozen=True)
class SequenceIndex:
    """Where each sequence's steps live in the time-major flattened data.

    Flat index of step ``t`` of env ``e`` is ``t * n_envs + e`` (what ``x.reshape(n_steps * n_envs, ...)``
    of time-major data gives).

    :param index: ``(n_seq, seq_len)`` flat index of every step; padding repeats the sequence's first index.
    :param mask: ``(n_seq, seq_len)`` True for real steps, False for padding.
    :param start_index: ``(n_seq,)`` flat index of each sequence's first step (to gather stored hidden states).
    :param starts_episode: ``(n_seq,)`` True where the first step is an episode start (zero initial state).
    :param lengths: ``(n_seq,)`` number of real steps in each sequence.
    :param n_steps: steps per env in the data the index was cut from.
    :param n_envs: envs in that data.
    """

    index: np.ndarray
    mask: np.ndarray
    start_index: np.ndarray
    starts_episode: np.ndarray
    lengths: np.ndarray
    n_steps: int
    n_envs: int

    @property
    def n_seq(self) -> int:
        return self.index.shape[0]

    @property
    def seq_len(self) -> int:
        return self.index.shape[1]

    def pad(self, data: ArrayT) -> ArrayT:
        """Gather ``data`` into padded sequences ``(n_seq, seq_len, ...)``; padding is zero.

        See :func:`pad_sequences` for the accepted layouts.
        """
        return pad_sequences(data, self)


def make_sequences(episode_starts: np.ndarray | th.Tensor, seq_len: int) -> SequenceIndex:
    """Cut time-major data with the given episode starts into sequences of at most ``seq_len`` steps.

    :param episode_starts: ``(n_steps, n_envs)``; True (or 1) where a step is the first of an episode.
        The first step of each env always begins a sequence (the chunk boundary).
    :param seq_len: maximum number of steps per sequence (>= 1).
    :return: the :class:`SequenceIndex`; sequences are ordered env by env, then in time.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int | np.integer) or seq_len < 1:
        raise ValueError(f"seq_len={seq_len!r} must be a positive integer")
    starts = np.asarray(episode_starts.cpu() if isinstance(episode_starts, th.Tensor) else episode_starts)
    if starts.ndim != 2:
        raise ValueError(f"episode_starts must have shape (n_steps, n_envs), got {starts.shape}")
    n_steps, n_envs = starts.shape

    # Env-major order, so that each env's steps are contiguous: (n_steps, n_envs) -> (n_envs * n_steps,)
    starts_env_major = starts.astype(bool).T.reshape(-1)
    step = np.tile(np.arange(n_steps), n_envs)
    time_major_index = step * n_envs + np.repeat(np.arange(n_envs), n_steps)

    # A segment is an episode piece inside this chunk; k is the position inside the segment.
    segment_begins = starts_env_major | (step == 0)
    segment_id = np.cumsum(segment_begins) - 1
    segment_first_step = step[segment_begins]
    k = step - segment_first_step[segment_id]

    offset = k % seq_len
    sequence_begins = offset == 0
    sequence_id = np.cumsum(sequence_begins) - 1
    n_seq = int(sequence_id[-1]) + 1

    start_index = time_major_index[sequence_begins]
    index = np.repeat(start_index[:, None], seq_len, axis=1)
    mask = np.zeros((n_seq, seq_len), dtype=bool)
    index[sequence_id, offset] = time_major_index
    mask[sequence_id, offset] = True
    return SequenceIndex(
        index=index,
        mask=mask,
        start_index=start_index,
        starts_episode=starts_env_major[sequence_begins],
        lengths=mask.sum(axis=1),
        n_steps=n_steps,
        n_envs=n_envs,
    )


def pad_sequences(data: ArrayT, sequences: SequenceIndex) -> ArrayT:
    """Gather time-major ``data`` into ``(n_seq, seq_len, ...)``, zero where the mask is False.

    ``data`` is time-major ``(n_steps, n_envs, ...)`` when its two leading sizes are those of the
    episode starts the index was cut from, else it must be the flattened ``(n_steps * n_envs, ...)``.
    """
    n_steps, n_envs = sequences.n_steps, sequences.n_envs
    if data.ndim >= 2 and tuple(data.shape[:2]) == (n_steps, n_envs):
        # time-major (n_steps, n_envs, ...) -> (n_steps * n_envs, ...)
        data = data.reshape(n_steps * n_envs, *data.shape[2:])
    elif data.shape[0] != n_steps * n_envs:
        raise ValueError(
            f"data of shape {tuple(data.shape)} matches neither ({n_steps}, {n_envs}, ...) nor ({n_steps * n_envs}, ...)"
        )
    if isinstance(data, th.Tensor):
        index = th.as_tensor(sequences.index, device=data.device)
        mask = th.as_tensor(sequences.mask, device=data.device)
        padded = data[index]
        mask = mask.reshape(*mask.shape, *([1] * (padded.dim() - 2)))
        return th.where(mask, padded, th.zeros((), dtype=padded.dtype, device=padded.device))
    padded_np = data[sequences.index]
    mask_np = sequences.mask.reshape(*sequences.mask.shape, *([1] * (padded_np.ndim - 2)))
    return np.where(mask_np, padded_np, np.zeros((), dtype=padded_np.dtype))


def cut_sequences(data: ArrayT, episode_starts: np.ndarray | th.Tensor, seq_len: int) -> tuple[ArrayT, np.ndarray, np.ndarray]:
    """Convenience form: padded ``(n_seq, seq_len, ...)`` data, its mask and each sequence's first index.

    :param data: time-major ``(n_steps, n_envs, ...)``.
    :param episode_starts: ``(n_steps, n_envs)``.
    :param seq_len: maximum sequence length.
    """
    sequences = make_sequences(episode_starts, seq_len)
    return pad_sequences(data, sequences), sequences.mask, sequences.start_index
