"""Two GRU or minGRU nets that read the same input, such as an actor's and a critic's, as one call of twice the width.

Why: a GRU's time loop, and a minGRU's ``log2(T)`` scan levels, cost about the same for ``H`` and ``2H`` units at
the sizes RL uses (the cost is the number of small ops, not their size), so one call of width ``2H`` instead of
two halves the time of the recurrent part of a PPO minibatch. Not the LSTM: torch's CPU LSTM runs a oneDNN kernel
for which twice the width costs more than two calls (measured); not FFM, whose trace grows with
``memory_size x context_size`` rather than ``H``.
"""

from __future__ import annotations

from typing import cast

import torch as th
from torch import nn

from sb3_recurrent_ext.common.recurrent.cells import MinGRU, min_gru_sequence
from sb3_recurrent_ext.common.recurrent.gru import LayerWeights, gru_sequence, gru_weights
from sb3_recurrent_ext.common.recurrent.nets import RecurrentNet
from sb3_recurrent_ext.common.recurrent.states import RecurrentState

# row blocks of hidden_size rows in one layer's weights: torch's GRU [r; z; n], the minGRU [gate; candidate]
GATES = {"GRU": 3, "MinGRU": 2}


def can_run_side_by_side(first: RecurrentNet, second: RecurrentNet) -> bool:
    """Whether :func:`run_side_by_side` computes exactly what the two nets compute one after the other:
    GRU (forward only, no dropout active between layers) or minGRU stacks of the same shape."""
    same_shape = (
        first.cell_type == second.cell_type
        and first.rnn_hidden_size == second.rnn_hidden_size
        and first.rnn_num_layers == second.rnn_num_layers
    )
    if first.cell_type == "GRU":
        return same_shape and first._cells_match_rnn() and second._cells_match_rnn()
    return same_shape and first.cell_type == "MinGRU"


def _side_by_side_weight(first: th.Tensor, second: th.Tensor, hidden: int, shared_input: bool, gates: int) -> th.Tensor:
    """Two nets' ``(gates * H, I)`` weights as one ``(gates * 2H, I')`` weight of the wide net.

    Each gate's rows become ``[first's H rows; second's H rows]``. With ``shared_input`` both read the same ``I``
    inputs (``I' = I``); otherwise the input is ``[first's input, second's input]`` (``I' = I1 + I2``) and each net's
    rows are zero on the other's columns, a block-diagonal weight, so neither net sees the other's input or state.
    """
    first, second = first.view(gates, hidden, -1), second.view(gates, hidden, -1)
    if not shared_input:
        # (gates, H, I1) and (gates, H, I2) -> (gates, H, I1 + I2) each
        first_inputs, second_inputs = first.shape[2], second.shape[2]
        first = th.cat([first, first.new_zeros(gates, hidden, second_inputs)], dim=2)
        second = th.cat([second.new_zeros(gates, hidden, first_inputs), second], dim=2)
    return th.cat([first, second], dim=1).reshape(gates * 2 * hidden, -1)


def _side_by_side_bias(first: th.Tensor, second: th.Tensor, hidden: int, gates: int) -> th.Tensor:
    # (gates * H,) twice -> (gates, 2H) -> (gates * 2H,)
    return th.cat([first.view(gates, hidden), second.view(gates, hidden)], dim=1).reshape(-1)


def run_side_by_side(
    first: RecurrentNet, second: RecurrentNet, x: th.Tensor, first_state: RecurrentState, second_state: RecurrentState
) -> tuple[tuple[th.Tensor, RecurrentState], tuple[th.Tensor, RecurrentState]]:
    """Run two nets over the same padded batch of sequences in ONE recurrent call of width ``2H``.

    Same outputs and gradients as ``first(x, first_state)`` and ``second(x, second_state)``, up to float rounding:
    the wide weights are built from both nets' parameters on every call (block-diagonal where a net must not see
    the other's state), so autograd trains each net's own parameters. Check :func:`can_run_side_by_side` first.

    :param x: ``(batch, time, input_dim)``.
    :return: ``(output, final state)`` of each net, as :meth:`RecurrentNet.forward` returns them.
    """
    batch, time = x.shape[0], x.shape[1]
    hidden = first.rnn_hidden_size
    # both per-step MLPs empty: the cell reads the raw input once; else the wide input is [first's, second's]
    shared_input = len(first.fc) == 0 and len(second.fc) == 0
    if shared_input:
        wide_input = x
    else:
        flat = x.reshape(batch * time, -1)
        wide_input = th.cat([first.fc(flat), second.fc(flat)], dim=1).reshape(batch, time, -1)
    wide_state = th.cat([first_state.h, second_state.h], dim=2)  # (L, batch, H) twice -> (L, batch, 2H)
    if first.cell_type == "MinGRU":
        output, final = min_gru_sequence(wide_input, wide_state, _wide_min_gru_weights(first, second, shared_input))
    else:
        output, final = gru_sequence(wide_input, wide_state, _wide_gru_weights(first, second, shared_input))
    return (
        (first.out_activation(output[..., :hidden]), RecurrentState((final[..., :hidden],))),
        (second.out_activation(output[..., hidden:]), RecurrentState((final[..., hidden:],))),
    )


def _wide_gru_weights(first: RecurrentNet, second: RecurrentNet, shared_input: bool) -> list[LayerWeights]:
    hidden, gates, wide = first.rnn_hidden_size, GATES["GRU"], []
    layer_pairs = zip(gru_weights(cast(nn.GRU, first.rnn)), gru_weights(cast(nn.GRU, second.rnn)), strict=True)
    for layer, (first_layer, second_layer) in enumerate(layer_pairs):
        wide.append(
            (
                _side_by_side_weight(first_layer[0], second_layer[0], hidden, layer == 0 and shared_input, gates),
                _side_by_side_weight(first_layer[1], second_layer[1], hidden, False, gates),
                _side_by_side_bias(first_layer[2], second_layer[2], hidden, gates),
                _side_by_side_bias(first_layer[3], second_layer[3], hidden, gates),
            )
        )
    return wide


def _wide_min_gru_weights(first: RecurrentNet, second: RecurrentNet, shared_input: bool) -> list[tuple[th.Tensor, th.Tensor]]:
    hidden, gates, wide = first.rnn_hidden_size, GATES["MinGRU"], []
    layer_pairs = zip(cast(MinGRU, first.rnn).layer_weights(), cast(MinGRU, second.rnn).layer_weights(), strict=True)
    for layer, ((first_weight, first_bias), (second_weight, second_bias)) in enumerate(layer_pairs):
        weight = _side_by_side_weight(first_weight, second_weight, hidden, layer == 0 and shared_input, gates)
        wide.append((weight, _side_by_side_bias(first_bias, second_bias, hidden, gates)))
    return wide
