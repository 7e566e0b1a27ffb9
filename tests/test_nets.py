"""RecurrentNet, the hidden-state container, and the equivalence of its two ways of running."""

import numpy as np
import pytest
import torch as th

from sb3_recurrent_ext import RecurrentNet, RecurrentState, make_sequences
from sb3_recurrent_ext.common.recurrent.side_by_side import can_run_side_by_side, run_side_by_side
from sb3_recurrent_ext.common.recurrent.states import StateLayout


@pytest.mark.parametrize("cell_type", ["GRU", "LSTM", "RNN"])
def test_sequence_call_equals_step_by_step(cell_type):
    th.manual_seed(0)
    net = RecurrentNet(5, cell_type=cell_type, fc_hid_layers=[16, 8], rnn_hidden_size=12, rnn_num_layers=2)
    x = th.randn(3, 7, 5)
    state = RecurrentState(tuple(th.randn_like(t) for t in net.initial_state(3).tensors))
    out, final = net(x, state)
    assert out.shape == (3, 7, 12)
    step_state = state
    for t in range(7):
        step_out, step_state = net.step(x[:, t], step_state)
        th.testing.assert_close(step_out, out[:, t])
    for a, b in zip(final.tensors, step_state.tensors, strict=False):
        th.testing.assert_close(a, b)
    assert len(final.tensors) == (2 if cell_type == "LSTM" else 1)


@pytest.mark.parametrize(
    "cell_type, rnn_kwargs",
    [
        ("LSTM", {}),
        ("GRU", {}),
        ("RNN", {}),
        ("RNN", {"nonlinearity": "relu"}),
        ("LSTM", {"bias": False}),
        ("GRU", {"bias": False}),
    ],
)
def test_one_step_cells_equal_the_torch_module(cell_type, rnn_kwargs):
    """A one-step call runs torch's cell functions; outputs, states and gradients equal nn.LSTM/GRU/RNN's."""
    th.manual_seed(0)
    net = RecurrentNet(5, cell_type=cell_type, rnn_hidden_size=12, rnn_num_layers=2, rnn_kwargs=rnn_kwargs)
    assert net._cells_match_rnn()  # so the call below takes the cell path
    x = th.randn(4, 1, 5, requires_grad=True)
    state = RecurrentState(tuple(th.randn_like(t) for t in net.initial_state(4).tensors))
    out, final = net(x, state)
    module_out, module_final = net.rnn(net.fc(x), state.for_rnn())
    th.testing.assert_close(out, module_out)
    for a, b in zip(final.tensors, RecurrentState.from_rnn(module_final).tensors, strict=True):
        th.testing.assert_close(a, b)
    (cell_grad,) = th.autograd.grad(out.sum() + sum(t.sum() for t in final.tensors), x)
    (module_grad,) = th.autograd.grad(
        module_out.sum() + sum(t.sum() for t in RecurrentState.from_rnn(module_final).tensors), x
    )
    th.testing.assert_close(cell_grad, module_grad)


def test_one_step_falls_back_to_the_module_where_cells_differ():
    """LSTM projections and dropout between layers while training are not what the cell functions compute."""
    projected = RecurrentNet(5, cell_type="LSTM", rnn_hidden_size=12, rnn_kwargs={"proj_size": 6})
    dropout = RecurrentNet(5, cell_type="GRU", rnn_hidden_size=12, rnn_num_layers=2, rnn_kwargs={"dropout": 0.5})
    assert not projected._cells_match_rnn()
    assert not dropout._cells_match_rnn()
    dropout.eval()
    assert dropout._cells_match_rnn()


def test_padded_sequences_from_stored_states_match_a_rollout():
    """Cutting a rollout into sequences and running them from stored states gives the rollout's outputs."""
    th.manual_seed(1)
    n_steps, n_envs = 9, 2
    net = RecurrentNet(3, cell_type="LSTM", rnn_hidden_size=4)
    obs = th.randn(n_steps, n_envs, 3)
    episode_starts = np.zeros((n_steps, n_envs), dtype=bool)
    episode_starts[4, 0] = episode_starts[6, 1] = True
    # Rollout: step by step, storing the state *before* each step (after reset)
    state = net.initial_state(n_envs)
    stored, outputs = [], []
    for t in range(n_steps):
        state = state.reset(episode_starts[t])
        stored.append(state.flat())
        out, state = net.step(obs[t], state)
        outputs.append(out)
    stored_flat = th.stack(stored).reshape(n_steps * n_envs, -1)  # time-major flat
    rollout_out = th.stack(outputs)  # (n_steps, n_envs, H)

    seqs = make_sequences(episode_starts, seq_len=4)
    init = RecurrentState.from_flat(stored_flat[seqs.start_index], 2, 1, 4)
    seq_out, _ = net(seqs.pad(obs), init)
    mask = th.as_tensor(seqs.mask)
    th.testing.assert_close(seq_out[mask], seqs.pad(rollout_out)[mask])


def test_state_reset_zeroes_only_started_envs():
    state = RecurrentState((th.ones(2, 3, 4), th.full((2, 3, 4), 2.0)))
    reset = state.reset(np.array([False, True, False]))
    assert reset.h[:, 1].abs().sum() == 0 and reset.tensors[1][:, 1].abs().sum() == 0
    assert (reset.h[:, [0, 2]] == 1).all() and (reset.tensors[1][:, [0, 2]] == 2).all()


def test_state_flat_round_trip_and_numpy():
    state = RecurrentState((th.randn(2, 5, 3), th.randn(2, 5, 3)))
    back = RecurrentState.from_flat(state.flat(), 2, 2, 3)
    for a, b in zip(state.tensors, back.tensors, strict=False):
        th.testing.assert_close(a, b)
    assert state.flat().shape == (5, 12)
    again = RecurrentState.from_numpy(state.numpy())
    th.testing.assert_close(again.h, state.h)
    assert state.index(np.array([4, 0])).h.shape == (2, 2, 3)


def test_init_fn_and_empty_mlp():
    net = RecurrentNet(6, cell_type="gru", fc_hid_layers=[], rnn_hidden_size=8, init_fn="orthogonal_")
    assert net.cell_type == "GRU" and len(net.fc) == 0
    assert net.rnn.input_size == 6
    assert all(p.abs().sum() == 0 for n, p in net.named_parameters() if "bias" in n)
    w = net.rnn.weight_ih_l0.detach()  # (3 * 8, 6): orthogonal columns
    th.testing.assert_close(w.T @ w, th.eye(6), atol=1e-5, rtol=0)


def test_bidirectional_last_step_sees_whole_window():
    th.manual_seed(2)
    net = RecurrentNet(2, rnn_hidden_size=3, bidirectional=True)
    x = th.randn(4, 5, 2)
    features = net.last_step(x)
    assert features.shape == (4, 6)
    out, _ = net(x)
    # forward half: output after the last frame; backward half: output at the first frame
    th.testing.assert_close(features[:, :3], out[:, -1, :3])
    th.testing.assert_close(features[:, 3:], out[:, 0, 3:])


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"cell_type": "GRUU"}, r"cell_type='GRUU'.*allowed values: \['GRU', 'LSTM', 'RNN', 'FFM', 'MinGRU'\]"),
        ({"hid_layers_activation": "rel"}, r"hid_layers_activation='rel'.*allowed values.*did you mean 'relu'"),
        ({"init_fn": "xavier_uniform"}, r"init_fn='xavier_uniform'.*did you mean 'xavier_uniform_'"),
        ({"rnn_hidden_size": 0}, r"rnn_hidden_size=0 must be a positive integer"),
        ({"fc_hid_layers": [64, -1]}, r"fc_hid_layers\[1\]=-1"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        RecurrentNet(4, **kwargs)


@pytest.mark.parametrize(
    "cell_type, first_kwargs, second_kwargs",
    [
        ("GRU", {}, {}),  # both read the raw input: one shared input weight
        ("GRU", dict(fc_hid_layers=[8]), dict(fc_hid_layers=[6, 5])),  # different MLPs: block-diagonal input weight
        ("GRU", dict(rnn_num_layers=2), dict(rnn_num_layers=2, fc_hid_layers=[4])),
        ("GRU", dict(rnn_kwargs=dict(bias=False)), dict(rnn_kwargs=dict(bias=False))),
        ("MinGRU", {}, {}),
        ("MinGRU", dict(fc_hid_layers=[8]), dict(fc_hid_layers=[6, 5])),
        ("MinGRU", dict(rnn_num_layers=2), dict(rnn_num_layers=2, fc_hid_layers=[4])),
    ],
)
def test_side_by_side_equals_two_calls(cell_type, first_kwargs, second_kwargs):
    th.manual_seed(0)
    first = RecurrentNet(3, cell_type=cell_type, rnn_hidden_size=5, out_layer_activation="tanh", **first_kwargs)
    second = RecurrentNet(3, cell_type=cell_type, rnn_hidden_size=5, **second_kwargs)
    assert can_run_side_by_side(first, second)
    x = th.randn(4, 7, 3)
    first_state = RecurrentState((th.randn(first.rnn_num_layers, 4, 5),))
    second_state = RecurrentState((th.randn(first.rnn_num_layers, 4, 5),))
    weights = th.randn(2, 4, 7, 5)  # a different weight per output, so every gradient is checked

    def loss_and_grads(outputs):
        (first_out, first_final), (second_out, second_final) = outputs
        loss = (weights[0] * first_out).sum() + (weights[1] * second_out).sum() + first_final.h.sum() * 0.3
        loss = loss - second_final.h.sum() * 0.7
        parameters = list(first.parameters()) + list(second.parameters())
        return outputs, th.autograd.grad(loss, parameters)

    expected, expected_grads = loss_and_grads((first(x, first_state), second(x, second_state)))
    wide, wide_grads = loss_and_grads(run_side_by_side(first, second, x, first_state, second_state))
    for (out, final), (wide_out, wide_final) in zip(expected, wide, strict=True):
        th.testing.assert_close(wide_out, out)
        th.testing.assert_close(wide_final.h, final.h)
    for grad, wide_grad in zip(expected_grads, wide_grads, strict=True):
        th.testing.assert_close(wide_grad, grad)
    # the wide module is not part of either net
    assert len(list(first.parameters())) == len(list(RecurrentNet(3, cell_type=cell_type, **first_kwargs).parameters()))


def test_side_by_side_only_where_it_computes_the_same():
    gru = RecurrentNet(3, cell_type="GRU", rnn_hidden_size=5)
    assert not can_run_side_by_side(
        RecurrentNet(3, cell_type="LSTM", rnn_hidden_size=5), RecurrentNet(3, cell_type="LSTM", rnn_hidden_size=5)
    )
    assert not can_run_side_by_side(gru, RecurrentNet(3, cell_type="GRU", rnn_hidden_size=6))
    assert not can_run_side_by_side(gru, RecurrentNet(3, cell_type="RNN", rnn_hidden_size=5))
    assert not can_run_side_by_side(gru, RecurrentNet(3, cell_type="MinGRU", rnn_hidden_size=5))
    ffm = RecurrentNet(3, cell_type="FFM", rnn_hidden_size=5)
    assert not can_run_side_by_side(ffm, ffm)
    min_gru = RecurrentNet(3, cell_type="MinGRU", rnn_hidden_size=5)
    assert not can_run_side_by_side(min_gru, RecurrentNet(3, cell_type="MinGRU", rnn_hidden_size=5, rnn_num_layers=2))
    rnn = RecurrentNet(3, cell_type="RNN", rnn_hidden_size=5)
    assert not can_run_side_by_side(rnn, rnn)
    assert not can_run_side_by_side(gru, RecurrentNet(3, cell_type="GRU", rnn_hidden_size=5, rnn_num_layers=2))
    with_dropout = RecurrentNet(3, cell_type="GRU", rnn_hidden_size=5, rnn_num_layers=2, rnn_kwargs=dict(dropout=0.5))
    assert not can_run_side_by_side(with_dropout, with_dropout)  # dropout between layers while training
    assert can_run_side_by_side(with_dropout.eval(), with_dropout.eval())


def test_state_layout_round_trip():
    state = RecurrentState((th.randn(2, 3, 4), th.randn(2, 3, 4)))
    layout = StateLayout.of(state)
    assert layout == StateLayout(2, 2, 4) and layout.flat_dim == 16
    for tensor, restored in zip(state.tensors, layout.unflatten(state.flat()).tensors, strict=True):
        th.testing.assert_close(restored, tensor)
