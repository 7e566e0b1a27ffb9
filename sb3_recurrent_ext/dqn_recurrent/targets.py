"""R2D2's learning targets and loss: value rescaling, n-step double-Q targets over padded sequences, and the
sequence loss with its priorities."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch as th
import torch.nn.functional as F

from sb3_recurrent_ext.common.masking import masked_argmax

if TYPE_CHECKING:
    from sb3_recurrent_ext.dqn_recurrent.buffers import SequenceReplaySamples
    from sb3_recurrent_ext.dqn_recurrent.dqn_recurrent import RecurrentDQN

LOSSES: dict[str, Callable[..., th.Tensor]] = {
    "SmoothL1Loss": F.smooth_l1_loss,
    "HuberLoss": F.huber_loss,
    "MSELoss": F.mse_loss,
}


def value_rescale(x: th.Tensor, eps: float = 1e-3) -> th.Tensor:
    """R2D2's ``h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x``: squashes large returns, keeps small ones."""
    return th.sign(x) * (th.sqrt(th.abs(x) + 1.0) - 1.0) + eps * x


def inverse_value_rescale(x: th.Tensor, eps: float = 1e-3) -> th.Tensor:
    """The inverse of :func:`value_rescale` (Pohlen et al., 2018, Proposition A.2)."""
    if eps == 0:
        return th.sign(x) * ((th.abs(x) + 1.0) ** 2 - 1.0)
    root = (th.sqrt(1.0 + 4.0 * eps * (th.abs(x) + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return th.sign(x) * (root**2 - 1.0)


def n_step_targets(
    rewards: th.Tensor,
    bootstrap_values: th.Tensor,
    lengths: th.Tensor,
    terminated: th.Tensor,
    gamma: float,
    n_step: int,
    seq_len: int,
    value_rescaling: bool = False,
    eps: float = 1e-3,
) -> th.Tensor:
    """n-step targets for the first ``seq_len`` steps of a batch of padded sequences.

    For step ``i`` with ``m = min(n_step, length - i)`` real steps ahead:
    ``y_i = sum_{k<m} gamma^k r_{i+k} + gamma^m * V_{i+m}``, where ``V_{i+m}`` is dropped when the window
    reaches the end of a terminated episode. A truncated episode (time limit) still bootstraps: its
    terminal observation sits at position ``length``, so ``bootstrap_values[length]`` is its value.
    With ``value_rescaling`` the bootstrap values are rescaled values: ``y = h(G + gamma^m h^-1(V))``.

    :param rewards: ``(batch, T)``, zero past each sequence's real steps; ``T >= seq_len + n_step``.
    :param bootstrap_values: ``(batch, T)`` value of the observation at each position
        (double Q: the target net's value of the online net's greedy action).
    :param lengths: ``(batch,)`` real steps per sequence.
    :param terminated: ``(batch,)`` True when the last real step ended its episode by termination.
    :return: ``(batch, seq_len)`` targets (meaningful where ``i < length``).
    """
    batch, total = rewards.shape
    if total < seq_len + n_step:
        raise ValueError(f"sequences of {total} steps are too short for seq_len={seq_len} and n_step={n_step}")
    device = rewards.device
    steps = th.arange(seq_len, device=device)
    # (batch, T) -> windows (batch, seq_len, n_step) of the rewards from each step on; padding rewards are 0
    windows = rewards.unfold(1, n_step, 1)[:, :seq_len]
    discounts = gamma ** th.arange(n_step, device=device, dtype=rewards.dtype)
    returns = (windows * discounts).sum(dim=2)
    lengths = lengths.to(device).long().view(batch, 1)
    # bootstrap position i + m, where m = min(n_step, length - i); (batch, seq_len)
    boot_index = th.minimum(steps + n_step, lengths).clamp(max=total - 1)
    boot_discount = gamma ** (boot_index - steps).to(rewards.dtype)
    boot = bootstrap_values.gather(1, boot_index)
    if value_rescaling:
        boot = inverse_value_rescale(boot, eps)
    reaches_terminal = terminated.to(device).view(batch, 1) & (boot_index >= lengths)
    targets = returns + th.where(reaches_terminal, th.zeros_like(boot), boot_discount * boot)
    return value_rescale(targets, eps) if value_rescaling else targets


def sequence_loss(algorithm: RecurrentDQN, batch: SequenceReplaySamples) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """Loss of a batch of sequences: burn-in without gradient, then one call per net over the rest.

    :return: the importance-weighted loss, new priorities ``(batch,)`` and the mean Q of the taken actions.
    """
    q_net, target_net = algorithm.policy.q_net, algorithm.policy.q_net_target
    with th.no_grad():
        online_state, target_state = batch.initial_state, batch.initial_state
        if batch.burn_in_observations is not None:
            online_state = q_net.burn_in(batch.burn_in_observations, batch.initial_state, batch.burn_in_lengths)
            target_state = target_net.burn_in(batch.burn_in_observations, batch.initial_state, batch.burn_in_lengths)
    online_q, _ = q_net(batch.observations, online_state)  # (batch, seq_len + n_step, n_actions)
    with th.no_grad():
        target_q, _ = target_net(batch.observations, target_state)
        chooser = online_q if algorithm.double_q else target_q
        # (batch, T): the next action each step's bootstrap values, among the actions allowed there
        next_actions = masked_argmax(chooser, batch.action_masks)
        bootstrap = target_q.gather(2, next_actions.unsqueeze(2)).squeeze(2)
        targets = n_step_targets(
            batch.rewards,
            bootstrap,
            batch.lengths,
            batch.terminated,
            algorithm.gamma,
            algorithm.n_step,
            algorithm.seq_len,
            algorithm.value_rescale,
            algorithm.value_rescale_eps,
        )
    # (batch, seq_len): the value of the action taken at each learning step
    taken = online_q[:, : algorithm.seq_len].gather(2, batch.actions[:, : algorithm.seq_len, None]).squeeze(2)
    learn_mask = batch.mask[:, : algorithm.seq_len].float()
    n_learn = learn_mask.sum(dim=1).clamp(min=1.0)
    per_step = LOSSES[algorithm.loss_fn](taken, targets, reduction="none")
    loss = (batch.weights * (per_step * learn_mask).sum(dim=1) / n_learn).mean()
    with th.no_grad():
        errors = (taken - targets).abs() * learn_mask
        priorities = (
            algorithm.priority_eta * errors.max(dim=1).values + (1 - algorithm.priority_eta) * errors.sum(dim=1) / n_learn
        )
        q_mean = (taken * learn_mask).sum() / learn_mask.sum().clamp(min=1.0)
    return loss, priorities, q_mean
