"""Two GRU nets that read the same input, such as an actor's and a critic's, as one recurrent call of twice the width.

Why: a GRU's time loop costs about the same for ``H`` and ``2H`` units at the sizes RL uses (the cost is the number
of small ops per step, not their size), so one loop of width ``2H`` instead of two halves the time of the recurrent
part of a PPO minibatch. Only GRU: torch's CPU LSTM runs a oneDNN kernel for which twice the width costs more than
two calls (measured), and the parallel cells (FFM, minGRU) have no time loop.
"""

from __future__ import annotations

from typing import cast

import torch as th
from torch import nn

from sb3_recurrent_ext.common.recurrent.gru import LayerWeights, gru_sequence, gru_weights
from sb3_recurrent_ext.common.recurrent.nets import RecurrentNet
from sb3_recurrent_ext.common.recurrent.states import RecurrentState

GRU_GATES = 3  # torch's weight layout: rows [r; z; n], hidden_size rows each


def can_run_side_by_side(first: RecurrentNet, second: RecurrentNet) -> bool:
    """Whether :func:`run_side_by_side` computes exactly what the two nets compute one after the other:
    GRU stacks of the same shape, forward only, with no dropout active between layers."""
    return (
        first.cell_type == second.cell_type == "GRU"
        and first.rnn_hidden_size == second.rnn_hidden_size
        and first.rnn_num_layers == second.rnn_num_layers
        and first._cells_match_rnn()
        and second._cells_match_rnn()
    )


def _side_by_side_weight(first: th.Tensor, second: th.Tensor, hidden: int, shared_input: bool) -> th.Tensor:
    """Two nets' ``(3H, I)`` weights as one ``(3 * 2H, I')`` weight of the wide net.

    Each gate's rows become ``[first's H rows; second's H rows]``. With ``shared_input`` both read the same ``I``
    inputs (``I' = I``); otherwise the input is ``[first's input, second's input]`` (``I' = I1 + I2``) and each net's
    rows are zero on the other's columns, a block-diagonal weight, so neither net sees the other's input or state.
    """
    first, second = first.view(GRU_GATES, hidden, -1), second.view(GRU_GATES, hidden, -1)
    if not shared_input:
        # (3, H, I1) and (3, H, I2) -> (3, H, I1 + I2) each
        first_inputs, second_inputs = first.shape[2], second.shape[2]
        first = th.cat([first, first.new_zeros(GRU_GATES, hidden, second_inputs)], dim=2)
        second = th.cat([second.new_zeros(GRU_GATES, hidden, first_inputs), second], dim=2)
    return th.cat([first, second], dim=1).reshape(GRU_GATES * 2 * hidden, -1)


def _side_by_side_bias(first: th.Tensor, second: th.Tensor, hidden: int) -> th.Tensor:
    # (3H,) twice -> (3, 2H) -> (3 * 2H,)
    return th.cat([first.view(GRU_GATES, hidden), second.view(GRU_GATES, hidden)], dim=1).reshape(-1)


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
    wide_weights: list[LayerWeights] = []
    layer_pairs = zip(gru_weights(cast(nn.GRU, first.rnn)), gru_weights(cast(nn.GRU, second.rnn)), strict=True)
    for layer, (first_layer, second_layer) in enumerate(layer_pairs):
        wide_weights.append(
            (
                _side_by_side_weight(first_layer[0], second_layer[0], hidden, shared_input=layer == 0 and shared_input),
                _side_by_side_weight(first_layer[1], second_layer[1], hidden, shared_input=False),
                _side_by_side_bias(first_layer[2], second_layer[2], hidden),
                _side_by_side_bias(first_layer[3], second_layer[3], hidden),
            )
        )
    # (L, batch, H) twice -> (L, batch, 2H)
    output, final = gru_sequence(wide_input, th.cat([first_state.h, second_state.h], dim=2), wide_weights)
    return (
        (first.out_activation(output[..., :hidden]), RecurrentState((final[..., :hidden],))),
        (second.out_activation(output[..., hidden:]), RecurrentState((final[..., hidden:],))),
    )
