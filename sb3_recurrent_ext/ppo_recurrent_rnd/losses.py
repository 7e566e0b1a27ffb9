"""PPO's clipped losses over the real steps of a minibatch, for one or two value streams (extrinsic, intrinsic), and
what ``train()`` logs of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import explained_variance

from sb3_recurrent_ext.ppo_recurrent_rnd.buffers import SequenceBatch
from sb3_recurrent_ext.ppo_recurrent_rnd.policies import RecurrentActorCriticPolicy

if TYPE_CHECKING:
    from sb3_recurrent_ext.ppo_recurrent_rnd.ppo_recurrent_rnd import RecurrentPPORND


def minibatch_losses(
    policy: RecurrentActorCriticPolicy,
    batch: SequenceBatch,
    clip_range: float,
    clip_range_vf: float | None,
    ent_coef: float,
    vf_coef: float,
    normalize_advantage: bool,
) -> dict[str, th.Tensor]:
    """The loss terms of a minibatch of padded sequences: one recurrent call over the padded batch, then heads and
    losses over its real steps only (see :func:`ppo_losses` for the terms)."""
    n_seq, seq_len = batch.mask.shape
    # (n_seq, seq_len, ...) -> (n_seq * seq_len, ...): the recurrent call runs over the padded batch
    flat = lambda x: x.reshape(n_seq * seq_len, *x.shape[2:])  # noqa: E731
    obs = batch.observations
    observations = {key: flat(value) for key, value in obs.items()} if isinstance(obs, dict) else flat(obs)
    # everything after it only on the real steps: (n_seq, seq_len, ...) -> (N real, ...); plain means then
    # (N,) indices: one nonzero() here, then index_select (boolean indexing would run nonzero() per tensor)
    real_steps = flat(batch.mask).nonzero().squeeze(1)
    real = lambda x: flat(x).index_select(0, real_steps)  # noqa: E731
    actions = real(batch.actions)
    if isinstance(policy.action_space, spaces.Discrete):
        actions = actions.long().flatten()
    action_masks = None if batch.action_masks is None else real(batch.action_masks)
    values, log_prob, entropy, _ = policy.evaluate_sequences(
        observations, actions, batch.initial_state, n_seq, seq_len, real_steps, action_masks
    )
    return ppo_losses(
        values,
        log_prob,
        entropy,
        real(batch.old_values),
        real(batch.old_log_prob),
        real(batch.advantages),
        real(batch.returns),
        clip_range,
        clip_range_vf,
        ent_coef,
        vf_coef,
        normalize_advantage,
    )


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


def record_train_logs(
    algorithm: RecurrentPPORND,
    logs: dict[str, list[float]],
    rollout: SequenceBatch,
    clip_range: float,
    clip_range_vf: float | None,
) -> None:
    """SB3 PPO's ``train/`` records (plus the intrinsic stream's and RND's) from one ``train()`` call's losses.

    :param logs: each loss term's value per minibatch (keys as :func:`ppo_losses` returns, plus ``rnd``).
    """
    record = algorithm.logger.record
    mask = rollout.mask.cpu().numpy()
    old_values = rollout.old_values.cpu().numpy()[mask]
    returns = rollout.returns.cpu().numpy()[mask]
    record("train/entropy_loss", np.mean(logs["ent"]))
    record("train/policy_gradient_loss", np.mean(logs["pg"]))
    record("train/value_loss", np.mean(logs["ext_v"]))
    record("train/approx_kl", np.mean(logs["kl"]))
    record("train/clip_fraction", np.mean(logs["clip"]))
    record("train/explained_variance", explained_variance(old_values[:, 0], returns[:, 0]))
    if algorithm.use_rnd:
        record("train/int_value_loss", np.mean(logs["int_v"]))
        record("train/int_explained_variance", explained_variance(old_values[:, 1], returns[:, 1]))
        if logs["rnd"] and not np.all(np.isnan(logs["rnd"])):
            record("train/rnd_loss", float(np.nanmean(logs["rnd"])))
    if hasattr(algorithm.policy, "log_std"):
        record("train/std", th.exp(algorithm.policy.log_std).mean().item())
    record("train/n_updates", algorithm._n_updates, exclude="tensorboard")
    record("train/clip_range", clip_range)
    record("train/n_sequences", rollout.n_seq)
    if clip_range_vf is not None:
        record("train/clip_range_vf", clip_range_vf)
