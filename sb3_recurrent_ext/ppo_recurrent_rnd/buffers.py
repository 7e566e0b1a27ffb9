"""Rollout buffers that keep hidden states and two reward streams, and hand out padded sequences."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer

from sb3_recurrent_ext.common.gae import compute_gae
from sb3_recurrent_ext.common.recurrent.sequences import make_sequences
from sb3_recurrent_ext.common.recurrent.states import RecurrentState, StateLayout


@dataclass
class SequenceBatch:
    """A rollout cut into padded sequences; every tensor is ``(n_seq, seq_len, ...)``.

    ``initial_state`` holds the state stored at each sequence's first step (zeros at an episode start).
    """

    observations: th.Tensor | dict[str, th.Tensor]
    actions: th.Tensor
    old_values: th.Tensor  # (n_seq, seq_len, n_streams)
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor  # (n_seq, seq_len, n_streams)
    mask: th.Tensor  # bool
    rnd_inputs: th.Tensor | None
    rnd_targets: th.Tensor | None  # the RND target's features of rnd_inputs
    initial_state: RecurrentState
    action_masks: th.Tensor | None = None  # (n_seq, seq_len, mask_width) bool, with masking

    @property
    def n_seq(self) -> int:
        return self.mask.shape[0]

    def select(self, sequences: th.Tensor) -> SequenceBatch:
        """The minibatch of the given sequences, cut to its longest sequence.

        Why the cut: with whole sequences (``seq_len=None``) most are shorter than the rollout; padding past the
        longest in the minibatch would only cost recurrent steps.
        """
        longest = int(self.mask[sequences].sum(dim=1).max())
        picked: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, RecurrentState):
                picked[field.name] = value.index(sequences)
            elif isinstance(value, dict):
                picked[field.name] = {key: v[sequences, :longest] for key, v in value.items()}
            elif value is not None:
                picked[field.name] = value[sequences, :longest]
            else:
                picked[field.name] = None
        return SequenceBatch(**picked)

    def minibatches(self, n_seq_per_batch: int) -> Generator[SequenceBatch, None, None]:
        """Random minibatches of whole sequences, each of ``n_seq_per_batch`` sequences or a few more.

        The ``n_seq % n_seq_per_batch`` sequences left over are spread over the minibatches rather than
        forming a last, nearly empty one (as costly as a full one: the recurrent call is per minibatch).
        Every sequence is used once per epoch.
        """
        order = th.randperm(self.n_seq, device=self.mask.device)
        n_batches = max(1, self.n_seq // n_seq_per_batch)
        for sequences in th.tensor_split(order, n_batches):
            yield self.select(sequences)


class RecurrentRNDRolloutBuffer(RolloutBuffer):
    """SB3's ``RolloutBuffer`` with hidden states, intrinsic rewards/values, two-stream GAE, and padded sequences.

    :param state_layout: the shape of one env's hidden state (stored flat, one row per step and env); ``None``:
        one tensor of one layer of size 1.
    :param mask_width: booleans in one step's action mask (0: no masks are stored).
    """

    def __init__(self, *args: Any, state_layout: StateLayout | None = None, mask_width: int = 0, **kwargs: Any):
        self.state_layout = state_layout or StateLayout()
        self.state_dim = self.state_layout.flat_dim
        self.mask_width = mask_width
        # SB3's buffer __init__ (next in the MRO) calls reset(), which needs state_dim
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        super().reset()
        self.hidden_states = np.zeros((self.buffer_size, self.n_envs, self.state_dim), dtype=np.float32)
        self.int_rewards = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.int_values = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.int_returns = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self.action_masks = np.ones((self.buffer_size, self.n_envs, self.mask_width), dtype=bool)

    def add(
        self,
        obs: Any,
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor,
        log_prob: th.Tensor,
        hidden_state: RecurrentState | None = None,
        action_masks: np.ndarray | None = None,
    ) -> None:
        """SB3's ``add(obs, action, reward, episode_start, value, log_prob)``, plus the state each env was in before
        this step (as sb3-contrib's ``add(..., lstm_states=...)``).

        :param obs: an array, or a dict of arrays for the Dict buffer (whose ``add`` is next in the MRO).
        :param value: ``(n_envs, n_streams)``: the extrinsic value, then the intrinsic one when RND is on.
        :param hidden_state: the carried state, not yet zeroed at episode starts; the stored state is zero where
            an episode starts at this step.
        :param action_masks: ``(n_envs, mask_width)`` the masks the actions were chosen under (with masking).
        """
        if hidden_state is None:
            raise ValueError("hidden_state=None: a recurrent rollout buffer stores the state before each step")
        keep = 1.0 - np.asarray(episode_start, dtype=np.float32)
        self.hidden_states[self.pos] = hidden_state.flat().cpu().numpy() * keep[:, None]
        if action_masks is not None:
            self.action_masks[self.pos] = action_masks
        if value.dim() == 2 and value.shape[1] > 1:
            self.int_values[self.pos] = value[:, 1].cpu().numpy()
            value = value[:, :1]
        super().add(obs, action, reward, episode_start, value, log_prob)

    def compute_two_stream_returns(
        self,
        last_values: th.Tensor,
        dones: np.ndarray,
        int_gamma: float,
        ext_adv_coef: float,
        int_adv_coef: float,
        use_int_stream: bool,
    ) -> None:
        """GAE for the extrinsic stream (episodic, ``gamma``) and, with RND, the intrinsic one (non-episodic,
        ``int_gamma``); the advantage is ``ext_adv_coef * A_ext + int_adv_coef * A_int``.

        :param last_values: ``(n_envs, n_streams)`` values after the last step.
        :param dones: ``(n_envs,)`` whether the last step ended an episode.
        """
        n_streams = 2 if use_int_stream else 1
        rewards = np.stack([self.rewards, self.int_rewards], axis=-1)[..., :n_streams]
        values = np.stack([self.values, self.int_values], axis=-1)[..., :n_streams]
        advantages, returns = compute_gae(
            rewards,
            values,
            self.episode_starts,
            last_values.cpu().numpy()[:, :n_streams],
            dones,
            gammas=[self.gamma, int_gamma][:n_streams],
            gae_lambda=self.gae_lambda,
            episodic=[True, False][:n_streams],
        )
        self.returns = returns[..., 0]
        self.advantages = ext_adv_coef * advantages[..., 0]
        if use_int_stream:
            self.int_returns = returns[..., 1]
            self.advantages = self.advantages + int_adv_coef * advantages[..., 1]

    def to_sequences(
        self, seq_len: int, rnd_inputs: th.Tensor | None, n_streams: int, rnd_targets: th.Tensor | None = None
    ) -> SequenceBatch:
        """Cut the whole rollout into padded sequences once per ``train()`` call.

        :param rnd_inputs: ``(n_steps * n_envs, D)`` time-major RND inputs of the rollout, if RND is on.
        :param rnd_targets: ``(n_steps * n_envs, output_dim)`` the RND target's features of those inputs.
        """
        sequences = make_sequences(self.episode_starts, seq_len)

        def padded(array: np.ndarray) -> th.Tensor:
            return th.as_tensor(sequences.pad(array), device=self.device)

        if isinstance(self.observations, dict):
            observations: th.Tensor | dict[str, th.Tensor] = {key: padded(obs) for key, obs in self.observations.items()}
        else:
            observations = padded(self.observations)
        start_states = self.hidden_states.reshape(self.buffer_size * self.n_envs, -1)[sequences.start_index]
        return SequenceBatch(
            observations=observations,
            actions=padded(self.actions.astype(np.float32)),
            old_values=padded(np.stack([self.values, self.int_values], axis=-1)[..., :n_streams]),
            old_log_prob=padded(self.log_probs),
            advantages=padded(self.advantages),
            returns=padded(np.stack([self.returns, self.int_returns], axis=-1)[..., :n_streams]),
            mask=th.as_tensor(sequences.mask, device=self.device),
            rnd_inputs=None if rnd_inputs is None else sequences.pad(rnd_inputs),
            rnd_targets=None if rnd_targets is None else sequences.pad(rnd_targets),
            initial_state=self.state_layout.unflatten(th.as_tensor(start_states, device=self.device)),
            action_masks=padded(self.action_masks) if self.mask_width else None,
        )


class RecurrentRNDDictRolloutBuffer(RecurrentRNDRolloutBuffer, DictRolloutBuffer):
    """SB3's ``DictRolloutBuffer`` with hidden states, an intrinsic stream and padded sequences."""
