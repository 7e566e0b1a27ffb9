"""Recurrent policies exported for deployment: ONNX (``pip install "sb3-recurrent-ext[export]"``) and TorchScript.

The exported graph is one acting step for a batch of envs, what ``model.predict(deterministic=True)`` computes:

* inputs ``obs`` ``(n_envs, *obs_shape)``, ``episode_start`` ``(n_envs,)`` (1.0 where an episode starts: the
  state is zeroed inside the graph), then the state tensors ``state_0 ...`` ``(n_layers, n_envs, size)``;
* outputs ``action`` (clipped to a Box space's bounds, as ``predict`` does) and ``new_state_0 ...``.

The state tensors are those ``predict`` returns (for RecurrentPPORND the actor's, then the critic's), zeros at the
start. Every cell exports, FFM included (its acting step runs in real arithmetic; ONNX has no complex numbers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from sb3_recurrent_ext.common.policies import RecurrentPredictMixin
from sb3_recurrent_ext.common.recurrent.states import RecurrentState


class ActingStep(nn.Module):
    """One deterministic acting step of a recurrent policy as a plain module: ``(obs, episode_start, *state)``
    -> ``(action, *new_state)``."""

    policy: Any  # a recurrent policy of this package (its ``_predict`` carries the state)
    low: th.Tensor  # (action_dim,) Box bounds
    high: th.Tensor

    def __init__(self, policy: nn.Module, action_space: spaces.Space) -> None:
        super().__init__()
        self.policy = policy
        self.squash = isinstance(action_space, spaces.Box) and bool(getattr(policy, "squash_output", False))
        self.box = isinstance(action_space, spaces.Box)
        if self.box:
            assert isinstance(action_space, spaces.Box)
            self.register_buffer("low", th.as_tensor(action_space.low, dtype=th.float32))
            self.register_buffer("high", th.as_tensor(action_space.high, dtype=th.float32))

    def forward(self, obs: th.Tensor, episode_start: th.Tensor, *state: th.Tensor) -> tuple[th.Tensor, ...]:
        actions, new_state = self.policy._predict(obs, RecurrentState(state), episode_start, deterministic=True)
        if self.squash:  # tanh-squashed actions in [-1, 1] -> [low, high]
            actions = self.low + 0.5 * (actions + 1.0) * (self.high - self.low)
        elif self.box:
            actions = th.clamp(actions, self.low, self.high)
        return (actions, *new_state.tensors)


def _acting_step(model: BaseAlgorithm) -> tuple[ActingStep, tuple[th.Tensor, ...], list[str], list[str]]:
    """The module, example inputs for one env, and the input and output names."""
    policy = model.policy
    if not isinstance(policy, RecurrentPredictMixin):
        raise TypeError(
            f"model={type(model).__name__} with policy {type(policy).__name__}: only this package's recurrent "
            "policies export (RecurrentPPORND, RecurrentPPO and RecurrentDQN)"
        )
    if isinstance(model.observation_space, spaces.Dict):
        raise TypeError("Dict observation spaces do not export yet: ONNX takes one tensor per input; use Mlp or Cnn")
    policy.set_training_mode(False)  # as predict does
    step = ActingStep(policy, model.action_space).to(policy.device).eval()
    state = policy.initial_state(1)
    # the dtype the env gives (uint8 images stay uint8; the graph scales them as predict does)
    obs = th.as_tensor(np.asarray(model.observation_space.sample())[None], device=policy.device)
    example = (obs, th.zeros(1, device=policy.device), *state.tensors)
    state_names = [f"state_{i}" for i in range(len(state.tensors))]
    return step, example, ["obs", "episode_start", *state_names], ["action", *[f"new_{name}" for name in state_names]]


def to_onnx(model: BaseAlgorithm, path: str | Path, opset_version: int = 17) -> Path:
    """Write ``model``'s acting step as an ONNX graph (inputs and outputs: see the module docstring).

    The number of envs is a dynamic axis. Needs the ``onnx`` package (the ``[export]`` extra).
    """
    step, example, input_names, output_names = _acting_step(model)
    dynamic_axes = {"obs": {0: "n_envs"}, "episode_start": {0: "n_envs"}, "action": {0: "n_envs"}}
    for name in input_names[2:] + output_names[1:]:
        dynamic_axes[name] = {1: "n_envs"}
    path = Path(path)
    th.onnx.export(
        step,
        example,
        str(path),
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
        opset_version=opset_version,
        dynamo=False,  # the TorchScript exporter: no onnxscript needed, and it takes the cells' Python branches
    )
    return path


def to_torchscript(model: BaseAlgorithm, path: str | Path) -> Path:
    """Write ``model``'s acting step as a traced TorchScript module (``torch.jit.load(path)(obs, start, *state)``)."""
    step, example, _, _ = _acting_step(model)
    with th.no_grad():
        traced = th.jit.trace(step, example, check_trace=False)
    path = Path(path)
    traced.save(str(path))
    return path


def initial_state(model: BaseAlgorithm, n_envs: int) -> list[np.ndarray]:
    """The zero state tensors an exported graph starts from, as numpy arrays."""
    policy = model.policy
    if not isinstance(policy, RecurrentPredictMixin):
        raise TypeError(f"model={type(model).__name__}: not one of this package's recurrent policies")
    return list(policy.initial_state(n_envs).numpy())
