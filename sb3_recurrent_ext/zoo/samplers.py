"""Optuna samplers and converters for the RL Zoo: the usual PPO/DQN ranges plus the recurrent ones.

Each ``sample_*`` suggests raw values on the trial and returns ``convert_*(trial.params)``, so the RL Zoo's
``--trial-id`` (which converts a stored trial's raw params with ``HYPERPARAMS_CONVERTER``) gives the same
hyperparameters as the trial had. The sampled ``policy_kwargs`` are merged into the YAML's (see
:mod:`sb3_recurrent_ext.zoo`), not substituted for them.
"""

from __future__ import annotations

from typing import Any

import optuna
from rl_zoo3.hyperparams_opt import convert_onpolicy_params

from sb3_recurrent_ext.common.policies import ALIAS_CELLS

# categorical choices must be plain values in Optuna: names -> layer lists
FC_HID_LAYERS = {"none": [], "64": [64], "128": [128], "64-64": [64, 64]}
RECURRENT_KEYS = ("cell_type", "rnn_hidden_size", "rnn_num_layers", "fc_hid_layers", "seq_len")
RND_KEYS = ("use_rnd", "one_minus_int_gamma", "int_adv_coef")
# None: whole sequences (full-length BPTT, RecurrentPPORND's default); DQN's sequences are always cut
PPO_SEQ_LENS: list[int | None] = [16, 32, 64, None]
DQN_SEQ_LENS: list[int | None] = [8, 16, 32, 64]


def _suggest_ppo(trial: optuna.Trial) -> None:
    """rl-zoo's PPO parameters (same names, so its converter applies) in ranges that suit recurrent training.

    rl-zoo's own ranges allow 4-step minibatches of 4096-step rollouts: with one recurrent call per minibatch
    such a trial runs for hours. Here minibatches are 64-1024 steps and rollouts 32-1024 steps per env (rl-zoo's
    PendulumNoVel entries use 1024), and gamma goes down to 0.9.
    """
    trial.suggest_int("batch_size_pow", 6, 10)
    trial.suggest_int("n_steps_pow", 5, 10)
    # gamma 0.9-0.9999 (rl-zoo samples 0.97-0.9999): short-horizon tasks need less, and rl-zoo's own Pendulum entries
    # use 0.9. On PendulumNoVel, 8 trials in rl-zoo's range learned nothing (best -1029.6); 10 in this one: -518.8
    trial.suggest_float("one_minus_gamma", 0.0001, 0.1, log=True)
    trial.suggest_float("one_minus_gae_lambda", 0.0001, 0.25, log=True)
    trial.suggest_float("learning_rate", 1e-5, 0.003, log=True)
    trial.suggest_float("ent_coef", 0.00000001, 0.1, log=True)
    trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4])
    trial.suggest_categorical("n_epochs", [4, 10, 20])
    trial.suggest_float("max_grad_norm", 0.3, 2)
    trial.suggest_categorical("net_arch", ["tiny", "small", "medium"])
    trial.suggest_categorical("activation_fn", ["tanh", "relu"])


def _suggest_recurrent(trial: optuna.Trial, seq_lens: list[int | None]) -> None:
    # the cells with policy aliases (a sampled cell switches the YAML's alias): not the vanilla RNN
    trial.suggest_categorical("cell_type", list(ALIAS_CELLS.values()))
    trial.suggest_categorical("rnn_hidden_size", [32, 64, 128])
    trial.suggest_int("rnn_num_layers", 1, 2)
    trial.suggest_categorical("fc_hid_layers", list(FC_HID_LAYERS))
    trial.suggest_categorical("seq_len", seq_lens)


def _recurrent_policy_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "cell_type": params["cell_type"],
        "rnn_hidden_size": params["rnn_hidden_size"],
        "rnn_num_layers": params["rnn_num_layers"],
        "fc_hid_layers": FC_HID_LAYERS[params["fc_hid_layers"]],
    }


def convert_recurrent_ppo_params(params: dict[str, Any], with_rnd: bool = True) -> dict[str, Any]:
    """Raw trial params -> RecurrentPPORND kwargs (rl-zoo's PPO conversion plus the recurrent and RND keys)."""
    ppo_params = {k: v for k, v in params.items() if k not in RECURRENT_KEYS + RND_KEYS}
    hyperparams = convert_onpolicy_params(ppo_params)
    hyperparams["policy_kwargs"].update(_recurrent_policy_kwargs(params))
    # a minibatch holds batch_size // seq_len whole sequences: keep seq_len <= batch_size (None: whole sequences)
    seq_len = params["seq_len"]
    hyperparams["seq_len"] = None if seq_len is None else min(seq_len, hyperparams.get("batch_size", seq_len))
    if with_rnd:
        hyperparams["use_rnd"] = params["use_rnd"]
        if params["use_rnd"]:
            hyperparams["int_gamma"] = 1 - params["one_minus_int_gamma"]
            hyperparams["int_adv_coef"] = params["int_adv_coef"]
    else:
        hyperparams["use_rnd"] = False
    return hyperparams


def convert_recurrent_ppo_no_rnd_params(params: dict[str, Any]) -> dict[str, Any]:
    return convert_recurrent_ppo_params(params, with_rnd=False)


def sample_recurrent_ppo_rnd_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """PPO's parameters, the recurrent ones, and RND's (``use_rnd``, ``int_gamma``, ``int_adv_coef``)."""
    _suggest_ppo(trial)
    _suggest_recurrent(trial, PPO_SEQ_LENS)
    if trial.suggest_categorical("use_rnd", [True, False]):
        trial.suggest_float("one_minus_int_gamma", 0.001, 0.1, log=True)
        trial.suggest_float("int_adv_coef", 0.1, 2.0, log=True)
    return convert_recurrent_ppo_params(trial.params)


def sample_recurrent_ppo_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """PPO's parameters and the recurrent ones (RND off)."""
    _suggest_ppo(trial)
    _suggest_recurrent(trial, PPO_SEQ_LENS)
    return convert_recurrent_ppo_no_rnd_params(trial.params)


def convert_recurrent_dqn_params(params: dict[str, Any]) -> dict[str, Any]:
    """Raw trial params -> RecurrentDQN kwargs."""
    hyperparams = {
        "gamma": 1 - params["one_minus_gamma"],
        "learning_rate": params["learning_rate"],
        "batch_size": params["batch_size"],
        "train_freq": params["train_freq"],
        "gradient_steps": params["gradient_steps"],
        "target_update_interval": params["target_update_interval"],
        "exploration_fraction": params["exploration_fraction"],
        "exploration_final_eps": params["exploration_final_eps"],
        "seq_len": params["seq_len"],
        # burn_in and sequence_stride as fractions of seq_len keep them meaningful for every seq_len
        "burn_in": int(params["seq_len"] * params["burn_in_fraction"]),
        "sequence_stride": max(1, int(params["seq_len"] * params["stride_fraction"])),
        "n_step": params["n_step"],
        "prioritized_replay": params["prioritized_replay"],
        "policy_kwargs": {**_recurrent_policy_kwargs(params), "dueling": params["dueling"]},
    }
    return hyperparams


def sample_recurrent_dqn_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """DQN ranges (batch_size in sequences) plus burn-in, n-step, stride, prioritized replay and the recurrent net."""
    trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True)
    trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True)
    trial.suggest_categorical("batch_size", [16, 32, 64])
    trial.suggest_int("train_freq", 1, 8)
    trial.suggest_int("gradient_steps", 1, 4)
    trial.suggest_int("target_update_interval", 100, 5000, log=True)
    trial.suggest_float("exploration_fraction", 0.05, 0.5)
    trial.suggest_float("exploration_final_eps", 0.0, 0.1)
    _suggest_recurrent(trial, DQN_SEQ_LENS)
    trial.suggest_categorical("burn_in_fraction", [0.0, 0.25, 0.5])
    trial.suggest_categorical("stride_fraction", [0.5, 1.0])
    trial.suggest_int("n_step", 1, 5)
    trial.suggest_categorical("prioritized_replay", [True, False])
    trial.suggest_categorical("dueling", [True, False])
    return convert_recurrent_dqn_params(trial.params)
