"""SLM-Lab ``net`` spec -> keyword arguments for this package's algorithm constructors.

Example, with the keys of SLM-Lab's net spec (https://slm-lab.gitbook.io/slm-lab, "Net" section)::

    kwargs = net_spec_to_kwargs({"type": "RecurrentNet", "cell_type": "GRU", "fc_hid_layers": [256, 128],
                                 "rnn_hidden_size": 64, "clip_grad_val": 1.0,
                                 "optim_spec": {"name": "Adam", "lr": 0.01}, "seq_len": 4})
    # {"policy_kwargs": {"cell_type": "GRU", "fc_hid_layers": [256, 128], ..., "optimizer_class": torch.optim.Adam},
    #  "max_grad_norm": 1.0, "learning_rate": 0.01, "seq_len": 4}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch as th
import yaml

from sb3_recurrent_ext.common.checks import check_positive_int, check_positive_number, check_unit_interval, closest_hint
from sb3_recurrent_ext.common.recurrent.nets import (
    resolve_activation,
    resolve_cell_type,
    resolve_init_fn,
)

# Every key of SLM-Lab's RecurrentNet spec.
SPEC_KEYS: tuple[str, ...] = (
    "type",
    "shared",
    "cell_type",
    "fc_hid_layers",
    "hid_layers_activation",
    "out_layer_activation",
    "rnn_hidden_size",
    "rnn_num_layers",
    "bidirectional",
    "seq_len",
    "init_fn",
    "clip_grad_val",
    "loss_spec",
    "optim_spec",
    "lr_scheduler_spec",
    "update_type",
    "update_frequency",
    "polyak_coef",
    "gpu",
)
# Spec keys copied into ``policy_kwargs`` unchanged (after validation).
POLICY_KEYS = (
    "cell_type",
    "fc_hid_layers",
    "hid_layers_activation",
    "out_layer_activation",
    "rnn_hidden_size",
    "rnn_num_layers",
    "bidirectional",
    "init_fn",
)
ALGOS = ("recurrent_ppo_rnd", "recurrent_ppo", "recurrent_dqn")
# Losses each algorithm can take from ``loss_spec`` (PPO's value loss is fixed to MSE).
ALGO_LOSSES: dict[str, tuple[str, ...]] = {
    "recurrent_ppo_rnd": ("MSELoss",),
    "recurrent_ppo": ("MSELoss",),
    "recurrent_dqn": ("SmoothL1Loss", "HuberLoss", "MSELoss"),
}
TARGET_NET_KEYS = ("update_type", "update_frequency", "polyak_coef")
LR_SCHEDULERS = ("LinearToZero",)
OPTIMIZERS: tuple[str, ...] = tuple(
    sorted(
        name
        for name in dir(th.optim)
        if isinstance(getattr(th.optim, name), type)
        and issubclass(getattr(th.optim, name), th.optim.Optimizer)
        and name != "Optimizer"
    )
)


def _load_spec(spec: Mapping[str, Any] | str | os.PathLike) -> dict[str, Any]:
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"spec={str(spec)!r} is neither a dict nor an existing JSON/YAML file")
        text = path.read_text()
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    else:
        loaded = spec
    if not isinstance(loaded, Mapping):
        raise ValueError(f"spec must be a mapping of SLM net keys, got {type(loaded).__name__}")
    # Accept a whole SLM spec ({"agent": [{"net": {...}}]}) or an agent ({"net": {...}}) too.
    if "agent" in loaded:
        agents = loaded["agent"]
        if not isinstance(agents, list) or not agents or not isinstance(agents[0], Mapping):
            raise ValueError(f"spec agent={agents!r} must be a non-empty list of agent specs ([{{'net': {{...}}}}])")
        loaded = agents[0]
    if "net" in loaded and isinstance(loaded["net"], Mapping):
        loaded = loaded["net"]
    return dict(loaded)


def _linear_to_zero(initial: float) -> Callable[[float], float]:
    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def _policy_kwargs(net: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the network keys and copy them into ``policy_kwargs``."""
    policy_kwargs = {key: net[key] for key in POLICY_KEYS if key in net}
    if "cell_type" in policy_kwargs:
        policy_kwargs["cell_type"] = resolve_cell_type(policy_kwargs["cell_type"])
    for key in ("hid_layers_activation", "out_layer_activation"):
        if key in policy_kwargs:
            resolve_activation(policy_kwargs[key], key)
    if "init_fn" in policy_kwargs:
        resolve_init_fn(policy_kwargs["init_fn"])
    for key in ("rnn_hidden_size", "rnn_num_layers"):
        if key in policy_kwargs:
            check_positive_int(policy_kwargs[key], key)
    if "fc_hid_layers" in policy_kwargs:
        layers = policy_kwargs["fc_hid_layers"]
        if not isinstance(layers, list | tuple):
            raise ValueError(f"fc_hid_layers={layers!r} must be a list of positive integers (empty: raw input)")
        policy_kwargs["fc_hid_layers"] = [check_positive_int(size, f"fc_hid_layers[{i}]") for i, size in enumerate(layers)]
    for key in ("bidirectional", "shared"):
        if key in net and not isinstance(net[key], bool):
            raise ValueError(f"{key}={net[key]!r} must be true or false")
    if "shared" in net:
        policy_kwargs["shared"] = net["shared"]
    return policy_kwargs


def _optimizer_kwargs(net: Mapping[str, Any], policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``optim_spec`` -> optimizer class/kwargs (into ``policy_kwargs``) and ``learning_rate``."""
    kwargs: dict[str, Any] = {}
    given = net.get("optim_spec") or {}
    if not isinstance(given, Mapping):
        raise ValueError(f"optim_spec={given!r} must be a mapping such as {{'name': 'Adam', 'lr': 0.001}}")
    optim_spec = dict(given)
    if optim_spec:
        name = optim_spec.pop("name", "Adam")
        if name not in OPTIMIZERS:
            raise ValueError(
                f"optim_spec name={name!r} is not a torch.optim optimizer; allowed values: {list(OPTIMIZERS)}"
                + closest_hint(str(name), OPTIMIZERS)
            )
        policy_kwargs["optimizer_class"] = getattr(th.optim, name)
        if "lr" in optim_spec:
            kwargs["learning_rate"] = check_positive_number(optim_spec.pop("lr"), "optim_spec lr")
        if optim_spec:
            _check_optimizer_kwargs(name, optim_spec)
            policy_kwargs["optimizer_kwargs"] = optim_spec
    scheduler = net.get("lr_scheduler_spec")
    if scheduler:
        scheduler_name = scheduler.get("name") if isinstance(scheduler, Mapping) else scheduler
        if scheduler_name not in LR_SCHEDULERS:
            raise ValueError(
                f"lr_scheduler_spec name={scheduler_name!r} is not supported; allowed values: {list(LR_SCHEDULERS)}"
            )
        kwargs["learning_rate"] = _linear_to_zero(kwargs.get("learning_rate", 3e-4))
    return kwargs


def _check_optimizer_kwargs(name: str, optimizer_kwargs: dict[str, Any]) -> None:
    """Build the optimizer once on a dummy parameter, so bad kwargs fail here, naming the SLM key, not at model build."""
    try:
        getattr(th.optim, name)([th.nn.Parameter(th.zeros(1))], **optimizer_kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"optim_spec {optimizer_kwargs!r} does not fit torch.optim.{name}: {error}") from None


def _loss_and_target_kwargs(net: Mapping[str, Any], algo: str) -> dict[str, Any]:
    """``loss_spec`` and the target-network keys, where ``algo`` has them."""
    kwargs: dict[str, Any] = {}
    loss_spec = net.get("loss_spec")
    if loss_spec:
        loss_name = loss_spec.get("name") if isinstance(loss_spec, Mapping) else loss_spec
        allowed = ALGO_LOSSES[algo]
        if loss_name not in allowed:
            raise ValueError(f"loss_spec name={loss_name!r} is not available for {algo}; allowed values: {list(allowed)}")
        if algo == "recurrent_dqn":
            kwargs["loss_fn"] = loss_name
    target_keys = [key for key in TARGET_NET_KEYS if key in net]
    if target_keys and algo != "recurrent_dqn":
        raise ValueError(f"net spec keys {target_keys} configure a target network; only recurrent_dqn has one, not {algo}")
    if "update_type" in net:
        update_type = net["update_type"]
        if update_type not in ("replace", "polyak"):
            raise ValueError(f"update_type={update_type!r} is not supported; allowed values: ['replace', 'polyak']")
        # SLM: target = polyak_coef * target + (1 - polyak_coef) * online; SB3: target = tau * online + (1 - tau) * target
        polyak_coef = check_unit_interval(net.get("polyak_coef", 0.0), "polyak_coef")
        kwargs["tau"] = 1.0 if update_type == "replace" else 1.0 - polyak_coef
    if "update_frequency" in net:
        kwargs["target_update_interval"] = check_positive_int(net["update_frequency"], "update_frequency")
    return kwargs


def net_spec_to_kwargs(spec: Mapping[str, Any] | str | os.PathLike, algo: str = "recurrent_ppo_rnd") -> dict[str, Any]:
    """Turn an SLM-Lab ``net`` spec into keyword arguments for one of this package's algorithms.

    :param spec: the ``net`` dict, a whole SLM spec or agent containing it, or the path of a JSON/YAML file.
    :param algo: the algorithm the kwargs are for: ``"recurrent_ppo_rnd"``, ``"recurrent_ppo"`` or
        ``"recurrent_dqn"`` (decides which ``loss_spec`` and target-network keys apply).
    :return: ``policy_kwargs`` (cell, sizes, activations, init, ``shared``, optimizer class/kwargs) and,
        where the spec gives them, ``max_grad_norm`` (``clip_grad_val``), ``learning_rate``
        (``optim_spec.lr``, scheduled by ``lr_scheduler_spec``), ``seq_len``, ``device`` (``gpu``);
        for ``recurrent_dqn`` also ``loss_fn``, ``tau`` and ``target_update_interval``.
    :raises ValueError: naming the key or value and what is allowed.
    """
    if algo not in ALGOS:
        raise ValueError(f"algo={algo!r} is not one of {list(ALGOS)}")
    net = _load_spec(spec)
    for key in net:
        if key not in SPEC_KEYS:
            hint = closest_hint(str(key), SPEC_KEYS)
            raise ValueError(f"Unknown net spec key {key!r}; allowed keys: {list(SPEC_KEYS)}{hint}")
    if net.get("type", "RecurrentNet") != "RecurrentNet":
        raise ValueError(f"net spec type={net['type']!r} is not supported; allowed values: ['RecurrentNet']")

    policy_kwargs = _policy_kwargs(net)
    if algo == "recurrent_dqn" and "shared" in policy_kwargs:
        # one Q-network: nothing to share; shared=True would promise an actor-critic body it does not have
        if policy_kwargs.pop("shared"):
            raise ValueError("net spec shared=True has no meaning for recurrent_dqn (a single Q-network); use shared=False")
    kwargs: dict[str, Any] = {}
    if "seq_len" in net:
        kwargs["seq_len"] = check_positive_int(net["seq_len"], "seq_len")
    if net.get("clip_grad_val") is not None:
        kwargs["max_grad_norm"] = check_positive_number(
            net["clip_grad_val"], "clip_grad_val", "a positive number (gradient norm) or null"
        )
    if "gpu" in net:
        if not isinstance(net["gpu"], bool):
            raise ValueError(f"gpu={net['gpu']!r} must be true or false (a YAML/JSON boolean, not a string)")
        kwargs["device"] = "auto" if net["gpu"] else "cpu"
    kwargs.update(_optimizer_kwargs(net, policy_kwargs))
    kwargs.update(_loss_and_target_kwargs(net, algo))
    kwargs["policy_kwargs"] = policy_kwargs
    return kwargs
