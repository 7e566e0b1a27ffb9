"""SLM-Lab net spec -> constructor kwargs."""

import json

import pytest
import torch as th
import yaml

from sb3_recurrent_ext import RecurrentNet, net_spec_to_kwargs

# Seed 000's example net spec, verbatim (comments removed).
SEED_000_SPEC = {
    "type": "RecurrentNet",
    "shared": False,
    "cell_type": "GRU",
    "fc_hid_layers": [256, 128],
    "hid_layers_activation": "relu",
    "out_layer_activation": None,
    "rnn_hidden_size": 64,
    "rnn_num_layers": 1,
    "bidirectional": False,
    "seq_len": 4,
    "init_fn": "xavier_uniform_",
    "clip_grad_val": 1.0,
    "loss_spec": {"name": "MSELoss"},
    "optim_spec": {"name": "Adam", "lr": 0.01},
}


def _net_from(policy_kwargs: dict, input_dim: int = 4) -> RecurrentNet:
    net_keys = {k: v for k, v in policy_kwargs.items() if k not in ("shared", "optimizer_class", "optimizer_kwargs")}
    return RecurrentNet(input_dim, **net_keys)


def test_seed_000_spec_builds_gru_64_after_256_128_relu_mlp():
    kwargs = net_spec_to_kwargs(SEED_000_SPEC)
    assert kwargs["max_grad_norm"] == 1.0
    assert kwargs["learning_rate"] == 0.01
    assert kwargs["seq_len"] == 4
    policy_kwargs = kwargs["policy_kwargs"]
    assert policy_kwargs["optimizer_class"] is th.optim.Adam
    assert policy_kwargs["shared"] is False
    net = _net_from(policy_kwargs)
    linears = [m for m in net.fc if isinstance(m, th.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 256), (256, 128)]
    assert all(isinstance(m, th.nn.ReLU) for m in net.fc[1::2])
    assert isinstance(net.rnn, th.nn.GRU)
    assert net.rnn.hidden_size == 64 and net.rnn.input_size == 128 and net.rnn.num_layers == 1


def test_spec_from_json_and_yaml_files_and_whole_slm_spec(tmp_path):
    json_path = tmp_path / "spec.json"
    json_path.write_text(json.dumps({"agent": [{"name": "PPO", "net": SEED_000_SPEC}]}))
    yaml_path = tmp_path / "spec.yml"
    yaml_path.write_text(yaml.safe_dump(SEED_000_SPEC))
    expected = net_spec_to_kwargs(SEED_000_SPEC)
    assert net_spec_to_kwargs(json_path) == expected
    assert net_spec_to_kwargs(str(yaml_path)) == expected


def test_dqn_gets_loss_and_target_network_keys():
    spec = {**SEED_000_SPEC, "loss_spec": {"name": "SmoothL1Loss"}, "update_type": "polyak", "polyak_coef": 0.995,
            "update_frequency": 4, "optim_spec": {"name": "RMSprop", "lr": 1e-3, "alpha": 0.9}}  # fmt: skip
    kwargs = net_spec_to_kwargs(spec, algo="recurrent_dqn")
    assert kwargs["loss_fn"] == "SmoothL1Loss"
    assert kwargs["tau"] == pytest.approx(0.005)
    assert kwargs["target_update_interval"] == 4
    assert kwargs["policy_kwargs"]["optimizer_class"] is th.optim.RMSprop
    assert kwargs["policy_kwargs"]["optimizer_kwargs"] == {"alpha": 0.9}


def test_linear_to_zero_schedule():
    kwargs = net_spec_to_kwargs({**SEED_000_SPEC, "lr_scheduler_spec": {"name": "LinearToZero"}})
    assert kwargs["learning_rate"](1.0) == pytest.approx(0.01)
    assert kwargs["learning_rate"](0.25) == pytest.approx(0.0025)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            {"cell_typ": "GRU"},
            r"Unknown net spec key 'cell_typ'; allowed keys: \[.*'cell_type'.*\]; did you mean 'cell_type'",
        ),
        ({"cell_type": "Transformer"}, r"cell_type='Transformer'.*allowed values: \['GRU', 'LSTM', 'RNN', 'FFM', 'MinGRU'\]"),
        ({"hid_layers_activation": "relu6"}, r"hid_layers_activation='relu6'.*allowed values: \[.*'relu'.*\]"),
        ({"out_layer_activation": "softmaxx"}, r"out_layer_activation='softmaxx'.*allowed values"),
        ({"init_fn": "glorot_uniform_"}, r"init_fn='glorot_uniform_'.*allowed values: \[.*'xavier_uniform_'.*\]"),
        ({"optim_spec": {"name": "Adamm", "lr": 0.01}}, r"optim_spec name='Adamm'.*allowed values: \[.*'Adam'.*\].*'Adam'"),
        ({"type": "MLPNet"}, r"type='MLPNet'.*allowed values: \['RecurrentNet'\]"),
        ({"rnn_hidden_size": -64}, r"rnn_hidden_size=-64 must be a positive integer"),
        ({"seq_len": 0}, r"seq_len=0 must be a positive integer"),
        ({"clip_grad_val": -1}, r"clip_grad_val=-1 must be a positive number"),
        ({"loss_spec": {"name": "SmoothL1Loss"}}, r"loss_spec name='SmoothL1Loss' is not available for recurrent_ppo_rnd"),
        ({"update_type": "replace"}, r"only recurrent_dqn has one"),
        ({"lr_scheduler_spec": {"name": "StepLR"}}, r"lr_scheduler_spec name='StepLR'.*allowed values: \['LinearToZero'\]"),
        ({"gpu": "false"}, r"gpu='false' must be true or false"),
        ({"optim_spec": "Adam"}, r"optim_spec='Adam' must be a mapping"),
        ({"optim_spec": {"name": "Adam", "lr": "fast"}}, r"optim_spec lr='fast' must be a positive number"),
        ({"optim_spec": {"name": "Adam", "betas": 0.9}}, r"optim_spec \{'betas': 0.9\} does not fit torch.optim.Adam"),
        ({"optim_spec": {"name": "Adam", "momentum": 0.9}}, r"optim_spec \{'momentum': 0.9\} does not fit torch.optim.Adam"),
    ],
)
def test_bad_spec_values_raise_named_errors(change, pattern):
    with pytest.raises(ValueError, match=pattern):
        net_spec_to_kwargs({**SEED_000_SPEC, **change})


def test_bad_whole_specs_and_dqn_keys_name_the_slm_key():
    with pytest.raises(ValueError, match=r"spec agent=\[\] must be a non-empty list"):
        net_spec_to_kwargs({"agent": []})
    dqn_spec = {**SEED_000_SPEC, "update_type": "polyak", "polyak_coef": 2}
    with pytest.raises(ValueError, match=r"polyak_coef=2 must be a number in \[0, 1\]"):
        net_spec_to_kwargs(dqn_spec, algo="recurrent_dqn")


def test_bad_algo_and_missing_file():
    with pytest.raises(ValueError, match=r"algo='ppo'"):
        net_spec_to_kwargs(SEED_000_SPEC, algo="ppo")
    with pytest.raises(ValueError, match=r"spec='/no/such/spec.json'"):
        net_spec_to_kwargs("/no/such/spec.json")


def test_dqn_spec_builds_a_recurrent_dqn():
    from sb3_recurrent_ext import RecurrentDQN

    spec = {
        "type": "RecurrentNet",
        "shared": False,
        "cell_type": "GRU",
        "fc_hid_layers": [16],
        "rnn_hidden_size": 8,
        "seq_len": 4,
        "clip_grad_val": 1.0,
        "loss_spec": {"name": "MSELoss"},
        "update_type": "polyak",
        "polyak_coef": 0.1,
        "update_frequency": 4,
    }
    model = RecurrentDQN("MlpGruPolicy", "CartPoleNoVel-v1", **net_spec_to_kwargs(spec, algo="recurrent_dqn"))
    assert (model.loss_fn, model.seq_len, model.max_grad_norm) == ("MSELoss", 4, 1.0)
    assert model.policy.q_net.rnn.fc_hid_layers == [16]
    with pytest.raises(ValueError, match="shared=True"):
        net_spec_to_kwargs({**spec, "shared": True}, algo="recurrent_dqn")
