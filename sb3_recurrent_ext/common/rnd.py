"""Random Network Distillation (Burda et al., 2018) as in AINE-DRL's Recurrent PPO RND (seed 003).

A fixed, randomly initialised target network and a trained predictor read the normalised, clipped
observation (and optionally the normalised recurrent hidden state). The prediction error is the
intrinsic reward; it is divided by the running standard deviation of the discounted intrinsic return.
The RND networks never share parameters with the policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch as th
from stable_baselines3.common.running_mean_std import RunningMeanStd
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
