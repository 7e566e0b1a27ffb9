"""R2D2's learning targets: value rescaling and n-step double-Q targets over padded sequences."""

from __future__ import annotations

import torch as th


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
