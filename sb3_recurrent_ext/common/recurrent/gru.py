"""A GRU whose backward pass is written out, for training over long sequences on CPU.

Why: torch runs ``nn.GRU`` on CPU one step at a time in ATen, and autograd then replays about a dozen small ops per
step backwards; at 8 sequences x 32 steps (H=64, one thread) a forward + backward costs 11.7 ms against the
LSTM's 3.4 ms (oneDNN). Here the input projections of all steps are one matmul, the time loop (TorchScript) does
only the hidden update, and the backward loop carries ``dh`` with three ops per step: every gate derivative that
does not depend on ``dh`` is computed for all steps at once before the loop, and the weight gradients are one
matmul each after it. Measured in ``benchmarks/cell_speed.md`` (``scripts/benchmark.py --suite cells``).

The result equals ``nn.GRU``'s up to float rounding (the same formula, torch's gate order ``r, z, n``):

* ``r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)``, ``z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)``,
* ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
"""

from __future__ import annotations

from typing import Any

import torch as th
from torch import nn

from sb3_recurrent_ext.common.recurrent.cells import _after_last_real_step

# one layer's (weight_ih (3H, I), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,)), as nn.GRU names them
LayerWeights = tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]


@th.jit.script
def _hidden_loop(gates_rz: th.Tensor, gates_n: th.Tensor, h: th.Tensor, w_hh_t: th.Tensor, b_hh: th.Tensor) -> th.Tensor:
    """The forward recurrence. ``gates_rz``: ``(T, B, 2H)`` and ``gates_n``: ``(T, B, H)``, the input's part of the
    gates (with ``b_ih``); ``h``: ``(B, H)``; ``w_hh_t``: ``(H, 3H)``. Returns every step's ``h``, ``(T, B, H)``."""
    hidden = h.shape[1]
    outputs: list[th.Tensor] = []
    for input_rz, input_n in zip(gates_rz.unbind(0), gates_n.unbind(0)):  # noqa: B905 (TorchScript has no strict=)
        from_hidden = th.addmm(b_hh, h, w_hh_t)  # (B, 3H)
        hidden_rz, hidden_n = from_hidden.split([2 * hidden, hidden], 1)
        r, z = th.sigmoid_(input_rz + hidden_rz).chunk(2, 1)
        n = th.tanh_(th.addcmul(input_n, r, hidden_n))
        h = th.lerp(n, h, z)  # n + z * (h - n)
        outputs.append(h)
    return th.stack(outputs)


@th.jit.script
def _grad_loop(grad_outputs: th.Tensor, grad_h: th.Tensor, coef_hidden: th.Tensor, z: th.Tensor, w_hh: th.Tensor):
    """The backward recurrence of ``dL/dh_t``.

    ``dh_{t-1} = dout_{t-1} + z_t * dh_t + (coef_t * dh_t) @ W_hh``, where ``coef_t`` ``(B, 3, H)`` holds the
    derivatives of the hidden side of the gates (computed for all steps before the loop).

    :param grad_outputs: ``(T, B, H)``; :param grad_h: ``(B, H)``, the gradient of the final state;
    :param coef_hidden: ``(T, B, 3, H)``; :param z: ``(T, B, H)``; :param w_hh: ``(3H, H)``.
    :return: ``dL/dh_t`` for every step ``(T, B, H)`` and ``dL/dh_{-1}`` ``(B, H)``.
    """
    steps, batch = grad_outputs.shape[0], grad_outputs.shape[1]
    grad_outputs_t, coefs, zs = grad_outputs.unbind(0), coef_hidden.unbind(0), z.unbind(0)
    grads: list[th.Tensor] = []
    grad_h = grad_h + grad_outputs_t[steps - 1]
    for back in range(steps):
        t = steps - 1 - back
        grads.append(grad_h)
        grad_hidden_gates = (coefs[t] * grad_h.unsqueeze(1)).view(batch, -1)  # (B, 3H)
        carried = th.addcmul(grad_outputs_t[t - 1], grad_h, zs[t]) if t > 0 else grad_h * zs[t]
        grad_h = th.addmm(carried, grad_hidden_gates, w_hh)
    grads.reverse()
    return th.stack(grads), grad_h


class _GRULayer(th.autograd.Function):
    """One GRU layer over ``(T, B, I)`` time-major inputs from ``h0`` ``(B, H)``; returns ``(T, B, H)``."""

    @staticmethod
    def forward(
        ctx: Any, x: th.Tensor, h0: th.Tensor, w_ih: th.Tensor, w_hh: th.Tensor, b_ih: th.Tensor, b_hh: th.Tensor
    ) -> th.Tensor:
        steps, batch, hidden = x.shape[0], x.shape[1], h0.shape[1]
        # (T * B, I) @ (I, 3H): the input's part of every gate for every step in one matmul
        input_gates = th.addmm(b_ih, x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, 3 * hidden)
        input_rz, input_n = input_gates.split([2 * hidden, hidden], 2)
        hs = _hidden_loop(input_rz.contiguous(), input_n.contiguous(), h0, w_hh.t(), b_hh)
        ctx.save_for_backward(x, h0, w_ih, w_hh, b_hh, input_gates, hs)
        return hs

    @staticmethod
    def backward(ctx: Any, grad_hs: th.Tensor) -> tuple[th.Tensor, ...]:
        x, h0, w_ih, w_hh, b_hh, input_gates, hs = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        # the gates again, for all steps at once: (T, B, H) each
        h_prev = th.cat([h0.unsqueeze(0), hs[:-1]])
        hidden_gates = th.addmm(b_hh, h_prev.reshape(steps * batch, hidden), w_hh.t()).view(steps, batch, 3 * hidden)
        r, z = th.sigmoid(input_gates[..., : 2 * hidden] + hidden_gates[..., : 2 * hidden]).chunk(2, -1)
        hidden_n = hidden_gates[..., 2 * hidden :]
        n = th.tanh(input_gates[..., 2 * hidden :] + r * hidden_n)
        # d(pre-activation)/dh_t of each gate
        coef_n = (1 - z) * (1 - n * n)
        coef_z = (h_prev - n) * z * (1 - z)
        coef_r = coef_n * hidden_n * r * (1 - r)
        coef_hidden = th.stack([coef_r, coef_z, coef_n * r], dim=2)  # (T, B, 3, H)
        grad_h, grad_h0 = _grad_loop(grad_hs.contiguous(), th.zeros_like(h0), coef_hidden, z.contiguous(), w_hh)
        # (T * B, 3H): gradients of the hidden and the input side of the gates' pre-activations
        grad_hidden_gates = (coef_hidden * grad_h.unsqueeze(2)).view(steps * batch, 3 * hidden)
        grad_input_gates = th.cat([grad_hidden_gates[:, : 2 * hidden], (coef_n * grad_h).view(steps * batch, hidden)], 1)
        grad_x = (grad_input_gates @ w_ih).view(steps, batch, -1)
        grad_w_ih = grad_input_gates.t() @ x.reshape(steps * batch, -1)
        grad_w_hh = grad_hidden_gates.t() @ h_prev.reshape(steps * batch, hidden)
        return grad_x, grad_h0, grad_w_ih, grad_w_hh, grad_input_gates.sum(0), grad_hidden_gates.sum(0)


def gru_weights(rnn: nn.GRU) -> list[LayerWeights]:
    """``rnn``'s parameters per layer; zero biases (no gradient) for ``bias=False``."""
    layers = []
    for layer in range(rnn.num_layers):
        w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        if rnn.bias:
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        else:
            b_ih = b_hh = w_ih.new_zeros(w_ih.shape[0])
        layers.append((w_ih, w_hh, b_ih, b_hh))
    return layers


def gru_sequence(
    x: th.Tensor, state: th.Tensor, weights: list[LayerWeights], lengths: th.Tensor | None = None
) -> tuple[th.Tensor, th.Tensor]:
    """A stack of GRU layers over a padded batch, as ``nn.GRU(batch_first=True)`` computes it.

    :param x: ``(batch, time, I)``; :param state: ``(num_layers, batch, H)``; :param weights: per layer, see
        :func:`gru_weights`; :param lengths: ``(batch,)`` real steps (padding follows them and does not reach
        the real steps): the final state is taken after each sequence's last real step (0: ``state`` unchanged).
    :return: the last layer's outputs ``(batch, time, H)`` (past a sequence's length: what padding computed; the
        caller zeroes them) and the final state ``(num_layers, batch, H)``.
    """
    layer_input = x.transpose(0, 1)  # time-major (T, B, I): each step is one contiguous block
    finals = []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        hs = _GRULayer.apply(layer_input, state[layer], w_ih, w_hh, b_ih, b_hh)
        finals.append(_after_last_real_step(hs.transpose(0, 1), state[layer], lengths))
        layer_input = hs
    return layer_input.transpose(0, 1), th.stack(finals)
