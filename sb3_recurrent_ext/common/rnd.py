"""Random Network Distillation (Burda et al., 2018) as in AINE-DRL's Recurrent PPO RND (github.com/DevSlem/AINE-DRL).

A fixed, randomly initialised target network and a trained predictor read the normalised, clipped
observation (and optionally the normalised recurrent hidden state). The prediction error is the
intrinsic reward; it is divided by the running standard deviation of the discounted intrinsic return.
The RND networks never share parameters with the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.utils import obs_as_tensor
from torch import nn


def _mlp(input_dim: int, hidden: Sequence[int], output_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = input_dim
    for size in hidden:
        layers += [nn.Linear(last, size), nn.LeakyReLU()]
        last = size
    layers.append(nn.Linear(last, output_dim))
    return nn.Sequential(*layers)


class RNDNetworks(nn.Module):
    """Target (frozen) and predictor networks.

    :param input_dim: features of one RND input (flattened observation, plus hidden state if used).
    :param hidden_sizes: hidden layers of both networks.
    :param output_dim: size of the feature vector to predict.
    """

    def __init__(self, input_dim: int, hidden_sizes: Sequence[int] = (256, 256), output_dim: int = 128) -> None:
        super().__init__()
        self.target = _mlp(input_dim, hidden_sizes, output_dim)
        # the predictor is deeper than the target, as in the RND paper, and starts from other weights
        self.predictor = _mlp(input_dim, [*hidden_sizes, output_dim], output_dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight, gain=np.sqrt(2))
                nn.init.zeros_(module.bias)
        self.target.requires_grad_(False)

    def target_features(self, x: th.Tensor) -> th.Tensor:
        """The fixed target's features ``(batch, input_dim) -> (batch, output_dim)``, without gradients."""
        with th.no_grad():
            return self.target(x)

    def prediction_error(self, x: th.Tensor, target_features: th.Tensor | None = None) -> th.Tensor:
        """Per-sample squared prediction error ``(batch, input_dim) -> (batch,)``; gradients reach the predictor only.

        :param target_features: ``self.target_features(x)`` if already computed (the target never changes, so a
            rollout's are computed once and reused by every predictor step).
        """
        if target_features is None:
            target_features = self.target_features(x)
        return 0.5 * (self.predictor(x) - target_features).pow(2).sum(dim=-1)


class ClippedNormalizer:
    """Running mean/variance normaliser with clipping (SB3's ``RunningMeanStd``), for RND inputs.

    :param shape: shape of one sample.
    :param clip_range: ``(low, high)`` applied after normalisation.
    """

    def __init__(self, shape: tuple[int, ...], clip_range: tuple[float, float] = (-5.0, 5.0)) -> None:
        self.rms = RunningMeanStd(shape=shape)
        self.clip_range = (float(clip_range[0]), float(clip_range[1]))

    def update(self, batch: np.ndarray) -> None:
        self.rms.update(batch.reshape(-1, *self.rms.mean.shape))

    def normalize(self, x: th.Tensor) -> th.Tensor:
        mean = th.as_tensor(self.rms.mean, dtype=x.dtype, device=x.device)
        std = th.as_tensor(np.sqrt(self.rms.var + 1e-8), dtype=x.dtype, device=x.device)
        return ((x - mean) / std).clamp(*self.clip_range)


class IntrinsicRewardNormalizer:
    """Divides intrinsic rewards by the running std of the discounted intrinsic return (non-episodic).

    :param n_envs: number of parallel envs (one discounted return each).
    :param int_gamma: discount of the intrinsic stream.
    """

    def __init__(self, n_envs: int, int_gamma: float) -> None:
        self.int_gamma = int_gamma
        self.discounted_return = np.zeros(n_envs)
        self.rms = RunningMeanStd(shape=())

    def __call__(self, int_rewards: np.ndarray) -> np.ndarray:
        """Normalise a rollout's intrinsic rewards ``(n_steps, n_envs)`` and update the statistics."""
        returns = np.empty_like(int_rewards, dtype=np.float64)
        # The discounted return is a recursion over the rollout's steps, on (n_envs,) arrays.
        for step, reward in enumerate(int_rewards):
            self.discounted_return = self.discounted_return * self.int_gamma + reward
            returns[step] = self.discounted_return
        self.rms.update(returns.reshape(-1))
        return (int_rewards / np.sqrt(self.rms.var + 1e-8)).astype(np.float32)


def _rms_state(rms: RunningMeanStd) -> dict[str, th.Tensor]:
    # tensors, not numpy arrays: SB3 loads parameters with torch.load(weights_only=True)
    return {"mean": th.as_tensor(rms.mean), "var": th.as_tensor(rms.var), "count": th.as_tensor(rms.count, dtype=th.float64)}


def _load_rms(rms: RunningMeanStd, state: dict[str, th.Tensor]) -> None:
    rms.mean, rms.var, rms.count = state["mean"].numpy().copy(), state["var"].numpy().copy(), float(state["count"])


@dataclass
class RolloutRND:
    """One rollout's RND inputs ``(n_steps * n_envs, D)``, the target's features of them, and whether the
    rollout only warmed up the normalisers (no intrinsic reward, no predictor step)."""

    inputs: th.Tensor
    targets: th.Tensor
    warm_up: bool


class RND(nn.Module):
    """Random Network Distillation as one object: the target and predictor networks, the predictor's optimizer,
    the observation, hidden-state and intrinsic-reward normalisers, and the warm-up counter.

    Its ``state_dict`` holds all of it (the non-parameter parts as extra state), so SB3's save/load restores RND
    whole. ``init_norm_steps`` has AINE-DRL's meaning: until that many steps per env have been seen, rollouts
    only update the normalisers.

    :param obs_dim: features of a flattened, preprocessed observation.
    :param state_dim: features of a flattened hidden state (:meth:`RecurrentState.flat`).
    :param n_envs: parallel envs (one discounted intrinsic return each).
    :param use_hidden_state: feed the normalised hidden state besides the observation.
    :param init_norm_steps: warm-up steps per env; ``None`` never normalises the inputs.
    """

    def __init__(
        self,
        obs_dim: int,
        state_dim: int,
        n_envs: int,
        *,
        use_hidden_state: bool = True,
        hidden_sizes: Sequence[int] = (256, 256),
        output_dim: int = 128,
        obs_clip_range: tuple[float, float] = (-5.0, 5.0),
        state_clip_range: tuple[float, float] = (-5.0, 5.0),
        init_norm_steps: int | None = 50,
        int_gamma: float = 0.99,
        learning_rate: float = 1e-4,
        device: th.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.use_hidden_state, self.init_norm_steps = use_hidden_state, init_norm_steps
        input_dim = obs_dim + (state_dim if use_hidden_state else 0)
        self.networks = RNDNetworks(input_dim, hidden_sizes, output_dim).to(device)
        self.optimizer = th.optim.Adam(self.networks.predictor.parameters(), lr=learning_rate, fused=True)
        self.obs_normalizer = ClippedNormalizer((obs_dim,), obs_clip_range)
        self.state_normalizer = ClippedNormalizer((state_dim,), state_clip_range)
        self.reward_normalizer = IntrinsicRewardNormalizer(n_envs, int_gamma)
        self.norm_steps = 0  # steps per env seen by the normalisers

    @property
    def warming_up(self) -> bool:
        return self.init_norm_steps is not None and self.norm_steps < self.init_norm_steps

    def observe_rollout(self, flat_obs: th.Tensor, flat_states: th.Tensor, n_steps: int) -> RolloutRND:
        """Inputs normalised with the statistics from before the rollout, which are then updated.

        :param flat_obs: ``(n_steps * n_envs, obs_dim)``; :param flat_states: ``(n_steps * n_envs, state_dim)``.
        """
        warm_up = self.warming_up
        normalize = self.init_norm_steps is not None
        parts = [self.obs_normalizer.normalize(flat_obs) if normalize else flat_obs]
        if self.use_hidden_state:
            parts.append(self.state_normalizer.normalize(flat_states) if normalize else flat_states)
        inputs = th.cat(parts, dim=1)
        if normalize:
            self.obs_normalizer.update(flat_obs.cpu().numpy())
            self.state_normalizer.update(flat_states.cpu().numpy())
            self.norm_steps += n_steps
        return RolloutRND(inputs, self.networks.target_features(inputs), warm_up)

    def observe_buffer(
        self,
        observations: np.ndarray | dict[str, np.ndarray],
        hidden_states: np.ndarray,
        observation_space: spaces.Space,
    ) -> RolloutRND:
        """:meth:`observe_rollout` of a rollout buffer's ``(n_steps, n_envs, ...)`` observations and stored states."""
        device = next(self.parameters()).device
        flat_obs = flat_observations(rollout_observations(observations, device), observation_space)
        flat_states = th.as_tensor(hidden_states.reshape(-1, hidden_states.shape[-1]), device=device)
        return self.observe_rollout(flat_obs, flat_states, n_steps=hidden_states.shape[0])

    def intrinsic_rewards(self, rollout: RolloutRND, n_steps: int, n_envs: int) -> np.ndarray:
        """``(n_steps, n_envs)`` prediction errors over the running std of the intrinsic return (0 in warm-up)."""
        if rollout.warm_up:
            return np.zeros((n_steps, n_envs), dtype=np.float32)
        with th.no_grad():
            errors = self.networks.prediction_error(rollout.inputs, rollout.targets)
        return self.reward_normalizer(errors.cpu().numpy().reshape(n_steps, n_envs))

    def train_step(self, inputs: th.Tensor, targets: th.Tensor, proportion: float, max_grad_norm: float) -> float:
        """One predictor step on a random ``proportion`` of the given steps; NaN when none was drawn."""
        keep = th.rand(inputs.shape[0], device=inputs.device) < proportion
        if not keep.any():
            # a small minibatch can draw no step at all: no update then (a zero loss has no graph)
            return float("nan")
        loss = self.networks.prediction_error(inputs[keep], targets[keep]).mean()
        self.optimizer.zero_grad()
        loss.backward()
        th.nn.utils.clip_grad_norm_(self.networks.predictor.parameters(), max_grad_norm, foreach=True)
        self.optimizer.step()
        return loss.item()

    def get_extra_state(self) -> dict[str, Any]:
        reward = self.reward_normalizer
        return {
            "optimizer": self.optimizer.state_dict(),
            "obs_rms": _rms_state(self.obs_normalizer.rms),
            "state_rms": _rms_state(self.state_normalizer.rms),
            "reward_rms": _rms_state(reward.rms),
            "discounted_return": th.as_tensor(reward.discounted_return),
            "norm_steps": self.norm_steps,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        _load_rms(self.obs_normalizer.rms, state["obs_rms"])
        _load_rms(self.state_normalizer.rms, state["state_rms"])
        _load_rms(self.reward_normalizer.rms, state["reward_rms"])
        self.reward_normalizer.discounted_return = state["discounted_return"].numpy().copy()
        self.norm_steps = int(state["norm_steps"])


def flat_observations(obs: th.Tensor | dict[str, th.Tensor], observation_space: spaces.Space) -> th.Tensor:
    """RND's view of a batch of observations: preprocessed as SB3 does (one-hot, scaled images) and flattened,
    ``(batch, obs_dim)``; a dict's entries side by side."""
    processed = preprocess_obs(obs, observation_space, normalize_images=True)
    if isinstance(processed, dict):
        return th.cat([value.reshape(value.shape[0], -1) for value in processed.values()], dim=1)
    return processed.reshape(processed.shape[0], -1)


def flat_observation_dim(observation_space: spaces.Space) -> int:
    """``obs_dim`` of :func:`flat_observations` for ``observation_space``."""
    raw = observation_space.sample()
    sample = obs_as_tensor(raw if isinstance(raw, dict) else np.asarray(raw), th.device("cpu"))
    batch = {key: value[None] for key, value in sample.items()} if isinstance(sample, dict) else sample[None]
    return flat_observations(batch, observation_space).shape[1]


def rollout_observations(
    observations: np.ndarray | dict[str, np.ndarray], device: th.device
) -> th.Tensor | dict[str, th.Tensor]:
    """A rollout buffer's ``(n_steps, n_envs, *shape)`` observations as time-major ``(n_steps * n_envs, *shape)``."""
    if isinstance(observations, dict):
        return {key: th.as_tensor(v.reshape(-1, *v.shape[2:]), device=device) for key, v in observations.items()}
    return th.as_tensor(observations.reshape(-1, *observations.shape[2:]), device=device)
