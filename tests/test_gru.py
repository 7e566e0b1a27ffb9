"""The GRU with a written-out backward pass against torch's nn.GRU: outputs, final states and every gradient."""

import pytest
import torch as th
from torch import nn

from sb3_recurrent_ext import RecurrentNet, RecurrentState
from sb3_recurrent_ext.common.recurrent.gru import gru_sequence, gru_weights


@pytest.mark.parametrize("num_layers, bias, time", [(1, True, 1), (1, True, 33), (2, True, 9), (2, False, 12)])
def test_gru_sequence_equals_nn_gru(num_layers, bias, time):
    th.manual_seed(0)
    rnn = nn.GRU(5, 7, num_layers=num_layers, bias=bias, batch_first=True).double()
    x = th.randn(4, time, 5, dtype=th.float64, requires_grad=True)
    state = th.randn(num_layers, 4, 7, dtype=th.float64, requires_grad=True)
    # a different weight per output and per final state, so every gradient path is checked
    out_weights, final_weights = th.randn(4, time, 7, dtype=th.float64), th.randn(num_layers, 4, 7, dtype=th.float64)

    def loss_and_grads(output, final):
        loss = (out_weights * output).sum() + (final_weights * final).sum()
        return output, final, th.autograd.grad(loss, [x, state, *rnn.parameters()])

    expected = loss_and_grads(*rnn(x, state))
    actual = loss_and_grads(*gru_sequence(x, state, gru_weights(rnn)))
    th.testing.assert_close(actual[0], expected[0])
    th.testing.assert_close(actual[1], expected[1])
    for grad, expected_grad in zip(actual[2], expected[2], strict=True):
        th.testing.assert_close(grad, expected_grad)


def test_gru_sequence_with_lengths_equals_packed_nn_gru():
    th.manual_seed(1)
    net = RecurrentNet(3, cell_type="GRU", rnn_hidden_size=6, rnn_num_layers=2, fc_hid_layers=[8])
    x = th.randn(5, 10, 3)
    state = RecurrentState((th.randn(2, 5, 6),))
    lengths = th.tensor([10, 3, 0, 7, 1])
    output, final = net(x, state, lengths)
    # the reference: torch's packed sequences (nn.GRU), which RecurrentNet used before
    features = net.fc(x.reshape(50, 3)).reshape(5, 10, -1)
    packed = nn.utils.rnn.pack_padded_sequence(features, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    packed_output, expected_final = net.rnn(packed, state.h)
    expected_output, _ = nn.utils.rnn.pad_packed_sequence(packed_output, batch_first=True, total_length=10)
    expected_output[2] = 0.0
    expected_final[:, 2] = state.h[:, 2]  # a length of 0 keeps the given state
    th.testing.assert_close(output, expected_output)
    th.testing.assert_close(final.h, expected_final)
