"""PPO's clipped losses over the real steps of a minibatch, for one or two value streams (extrinsic, intrinsic)."""

from __future__ import annotations

import torch as th


def ppo_losses(
    values: th.Tensor,
    log_prob: th.Tensor,
    entropy: th.Tensor | None,
    old_values: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
    returns: th.Tensor,
    clip_range: float,
    clip_range_vf: float | None,
    ent_coef: float,
    vf_coef: float,
    normalize_advantage: bool,
) -> dict[str, th.Tensor]:
    """SB3 PPO's loss terms, with one squared value error per stream.

    :param values: ``(N, n_streams)`` new values; ``old_values`` and ``returns`` alike.
    :param log_prob: ``(N,)`` new log-probabilities; ``old_log_prob``, ``advantages`` and ``entropy`` alike
        (``entropy=None``: the distribution has none in closed form, ``-log_prob`` estimates it).
    :return: ``loss`` (the total), ``pg``, ``ext_v`` (and ``int_v`` with two streams), ``ent``, and without
        gradient ``kl`` (SB3's approximate KL) and ``clip`` (the clipped fraction).
    """
    if normalize_advantage and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std(correction=0) + 1e-8)
    ratio = th.exp(log_prob - old_log_prob)
    policy_loss = -th.min(advantages * ratio, advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
    if clip_range_vf is not None:
        values = old_values + th.clamp(values - old_values, -clip_range_vf, clip_range_vf)
    # (N, n_streams) -> per-stream means
    value_losses = ((returns - values) ** 2).mean(dim=0)
    entropy_loss = -(entropy if entropy is not None else -log_prob).mean()
    with th.no_grad():
        log_ratio = log_prob - old_log_prob
        approx_kl = ((th.exp(log_ratio) - 1) - log_ratio).mean()
        clip_fraction = (th.abs(ratio - 1) > clip_range).float().mean()
    losses = {
        "loss": policy_loss + ent_coef * entropy_loss + vf_coef * value_losses.sum(),
        "pg": policy_loss,
        "ext_v": value_losses[0],
        "ent": entropy_loss,
        "kl": approx_kl,
        "clip": clip_fraction,
    }
    if len(value_losses) > 1:
        losses["int_v"] = value_losses[1]
    return losses
