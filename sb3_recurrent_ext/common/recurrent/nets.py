"""SLM-Lab's RecurrentNet as a torch module: a per-step MLP feeding a GRU, LSTM or RNN stack.

Two ways to run it:

* :meth:`RecurrentNet.forward` over a padded batch of sequences ``(batch, time, features)``
  from given initial states, in ONE call to the recurrent layer (training);
* :meth:`RecurrentNet.step` one time step at a time (rollouts and ``predict``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch as th
from torch import nn

from sb3_recurrent_ext.common.checks import check_positive_int, closest_hint
from sb3_recurrent_ext.common.recurrent.cells import PARALLEL_CELLS
from sb3_recurrent_ext.common.recurrent.gru import gru_sequence, gru_weights
from sb3_recurrent_ext.common.recurrent.states import CELL_TYPES, RecurrentState, n_state_tensors

# SLM-Lab's activation names (lower case) -> torch modules.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leakyrelu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}

# Every in-place initialiser of torch.nn.init that can take a weight matrix as its only argument
# (constant_ and sparse_ need a second argument, dirac_ a 3-5D tensor).
INIT_FNS: tuple[str, ...] = tuple(
    sorted(
        name
        for name in dir(nn.init)
        if name.endswith("_") and not name.startswith("_") and name not in ("constant_", "dirac_", "sparse_")
    )
)


def resolve_cell_type(cell_type: str, argument: str = "cell_type") -> str:
    """Normalise a cell name (``"gru"`` -> ``"GRU"``, ``"mingru"`` -> ``"MinGRU"``) or raise a ``ValueError``
    naming the allowed values."""
    by_lower = {name.lower(): name for name in CELL_TYPES}
    if isinstance(cell_type, str) and cell_type.lower() in by_lower:
        return by_lower[cell_type.lower()]
    hint = closest_hint(str(cell_type).lower(), list(by_lower))
    raise ValueError(f"{argument}={cell_type!r} is not a recurrent cell; allowed values: {list(CELL_TYPES)}{hint}")


def resolve_activation(activation: str | type[nn.Module] | None, argument: str = "hid_layers_activation") -> type[nn.Module]:
    """Map an SLM activation name (``"relu"``) or an ``nn.Module`` class to the class; ``None`` is identity."""
    if activation is None:
        return nn.Identity
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation
    if isinstance(activation, str) and activation.lower() in ACTIVATIONS:
        return ACTIVATIONS[activation.lower()]
    hint = closest_hint(str(activation).lower(), list(ACTIVATIONS))
    raise ValueError(f"{argument}={activation!r} is not an activation; allowed values: {list(ACTIVATIONS)} or None{hint}")


def resolve_init_fn(init_fn: str | None, argument: str = "init_fn") -> Callable[[th.Tensor], th.Tensor] | None:
    """Map a ``torch.nn.init`` function name (``"xavier_uniform_"``) to the function; ``None`` keeps torch's init."""
    if init_fn is None:
        return None
    if isinstance(init_fn, str) and init_fn in INIT_FNS:
        return getattr(nn.init, init_fn)
    hint = closest_hint(str(init_fn), INIT_FNS)
    raise ValueError(f"{argument}={init_fn!r} is not a torch.nn.init function; allowed values: {list(INIT_FNS)}{hint}")


def build_mlp(input_dim: int, hid_layers: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    """``Linear -> activation`` for each hidden size; an empty list is the identity (raw input)."""
    layers: list[nn.Module] = []
    last = input_dim
    for i, size in enumerate(hid_layers):
        check_positive_int(size, f"fc_hid_layers[{i}]")
        layers += [nn.Linear(last, size), activation()]
        last = size
    return nn.Sequential(*layers)


class RecurrentNet(nn.Module):
    """Per-step MLP feeding a recurrent stack, configured with SLM-Lab's net spec keys.

    :param input_dim: Number of features of one time step.
    :param cell_type: ``"GRU"``, ``"LSTM"`` or ``"RNN"`` (torch's), or ``"FFM"`` or ``"MinGRU"``, which train in
        parallel over time (:mod:`~sb3_recurrent_ext.common.recurrent.cells`); case-insensitive.
    :param fc_hid_layers: Hidden sizes of the per-step MLP; ``[]`` feeds the raw input to the cell.
    :param hid_layers_activation: Activation of the MLP layers (SLM name such as ``"relu"``, or an ``nn.Module`` class).
    :param out_layer_activation: Activation applied to the recurrent output (``None``: none).
    :param rnn_hidden_size: Hidden size ``H`` of the recurrent cell.
    :param rnn_num_layers: Number of stacked recurrent layers.
    :param bidirectional: Run the stack in both directions (only meaningful over a whole window,
        see :class:`~sb3_recurrent_ext.RecurrentNetExtractor`; a carried state cannot run backwards).
    :param init_fn: Name of a ``torch.nn.init`` function for every weight matrix (biases are zeroed);
        ``None`` keeps torch's default initialisation.
    :param rnn_kwargs: extra arguments of ``nn.GRU``/``nn.LSTM``/``nn.RNN`` (e.g. ``dropout``), or of the
        parallel cells (FFM: ``memory_size``, ``context_size``, ``min_period``, ``max_period``).
    """

    def __init__(
        self,
        input_dim: int,
        cell_type: str = "GRU",
        fc_hid_layers: Sequence[int] = (),
        hid_layers_activation: str | type[nn.Module] | None = "relu",
        out_layer_activation: str | type[nn.Module] | None = None,
        rnn_hidden_size: int = 64,
        rnn_num_layers: int = 1,
        bidirectional: bool = False,
        init_fn: str | None = None,
        rnn_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.cell_type = resolve_cell_type(cell_type)
        self.fc_hid_layers = list(fc_hid_layers)
        self.rnn_hidden_size = check_positive_int(rnn_hidden_size, "rnn_hidden_size")
        self.rnn_num_layers = check_positive_int(rnn_num_layers, "rnn_num_layers")
        if not isinstance(bidirectional, bool):
            raise ValueError(f"bidirectional={bidirectional!r} must be True or False")
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1

        self.fc = build_mlp(self.input_dim, self.fc_hid_layers, resolve_activation(hid_layers_activation))
        rnn_input = self.fc_hid_layers[-1] if self.fc_hid_layers else self.input_dim
        self.rnn = self._build_cell(rnn_input, rnn_kwargs or {})
        # width of one layer's state tensor: the hidden size, or FFM's 2 * memory_size * context_size
        self.state_size: int = getattr(self.rnn, "state_size", self.rnn_hidden_size)
        self.out_activation = resolve_activation(out_layer_activation, "out_layer_activation")()

        init = resolve_init_fn(init_fn)
        if init is not None:
            for name, param in self.named_parameters():
                if "weight" in name and param.dim() >= 2:
                    init(param)
                elif "bias" in name:
                    nn.init.zeros_(param)

    @property
    def parallel(self) -> bool:
        """Whether the cell trains in parallel over time (FFM, minGRU) rather than step by step in torch."""
        return self.cell_type in PARALLEL_CELLS

    def _build_cell(self, input_size: int, rnn_kwargs: dict) -> nn.Module:
        if self.cell_type not in PARALLEL_CELLS:
            rnn_class = {"GRU": nn.GRU, "LSTM": nn.LSTM, "RNN": nn.RNN}[self.cell_type]
            return rnn_class(
                input_size=input_size,
                hidden_size=self.rnn_hidden_size,
                num_layers=self.rnn_num_layers,
                batch_first=True,
                bidirectional=self.bidirectional,
                **rnn_kwargs,
            )
        if self.bidirectional:
            raise ValueError(f"bidirectional=True is not possible with cell_type={self.cell_type!r}; use GRU, LSTM or RNN")
        try:
            return PARALLEL_CELLS[self.cell_type](input_size, self.rnn_hidden_size, self.rnn_num_layers, **rnn_kwargs)
        except TypeError as error:
            raise ValueError(f"rnn_kwargs={rnn_kwargs!r} do not fit cell_type={self.cell_type!r}: {error}") from None

    @property
    def output_dim(self) -> int:
        """Features per time step of the output: ``num_directions * rnn_hidden_size``."""
        return self.num_directions * self.rnn_hidden_size

    @property
    def n_state_tensors(self) -> int:
        return n_state_tensors(self.cell_type)

    def initial_state(self, batch_size: int, device: th.device | str | None = None) -> RecurrentState:
        """The zero state for ``batch_size`` envs or sequences."""
        device = device if device is not None else next(self.parameters()).device
        return RecurrentState.zeros(
            self.cell_type, self.rnn_num_layers * self.num_directions, batch_size, self.state_size, device
        )

    def forward(
        self,
        x: th.Tensor,
        state: RecurrentState | None = None,
        lengths: th.Tensor | None = None,
        episode_starts: th.Tensor | None = None,
    ) -> tuple[th.Tensor, RecurrentState]:
        """Run a padded batch of sequences in one recurrent call.

        :param x: ``(batch, time, input_dim)``.
        :param state: State before the first step of each sequence; zeros if ``None``.
        :param lengths: ``(batch,)`` real steps of each sequence (the rest is padding), or ``None`` when
            every step is real. With lengths the final state is each sequence's state after its last real
            step (a length of 0 returns the given state unchanged) and outputs past it are zero.
        :param episode_starts: ``(batch, time)`` True where an episode starts inside a sequence (the state is
            zeroed before that step). FFM and minGRU only: torch's cells cannot reset inside one call, so their
            sequences are cut at episode starts (:func:`~sb3_recurrent_ext.make_sequences`).
        :return: outputs ``(batch, time, num_directions * H)`` and the final state.
        """
        batch, time = x.shape[0], x.shape[1]
        if state is None:
            state = self.initial_state(batch, x.device)
        if episode_starts is not None and not self.parallel:
            raise ValueError(
                f"episode_starts inside a sequence need a cell that resets in parallel (FFM, MinGRU), not "
                f"cell_type={self.cell_type!r}; cut the sequences at episode starts instead"
            )
        if time == 1 and lengths is None and self._cells_match_rnn():
            # (batch, 1, F) -> (batch, F') -> cells -> (batch, 1, H)
            output, final_state = self._cell_step(self.fc(x[:, 0]), state)
            return self.out_activation(output.unsqueeze(1)), final_state
        # (batch, time, F) -> (batch * time, F) -> MLP -> (batch, time, F')
        features = self.fc(x.reshape(batch * time, -1)).reshape(batch, time, -1)
        own_gru = self.cell_type == "GRU" and self._cells_match_rnn()
        if not (self.parallel or own_gru):
            output, final_state = self._forward_torch(features, state, lengths)
            return self.out_activation(output), final_state
        # this package's cells (FFM, minGRU, and the GRU's gru_sequence): one state tensor, lengths on the device
        if lengths is not None:
            lengths = th.as_tensor(lengths, device=x.device).long()
        if self.parallel:
            output, final = self.rnn(features, state.h, episode_starts, lengths)
        else:
            output, final = gru_sequence(features, state.h, gru_weights(cast(nn.GRU, self.rnn)), lengths)
        return self.out_activation(_zero_past_lengths(output, lengths)), RecurrentState((final,))

    def _forward_torch(
        self, features: th.Tensor, state: RecurrentState, lengths: th.Tensor | None
    ) -> tuple[th.Tensor, RecurrentState]:
        """``nn.LSTM``/``nn.RNN`` (and ``nn.GRU`` where ours does not apply) over ``(batch, time, F')`` features."""
        if lengths is None:
            output, final = self.rnn(features, state.for_rnn())
            return output, RecurrentState.from_rnn(final)
        lengths = th.as_tensor(lengths).cpu().long()
        # a packed batch stops each sequence at its length (packing needs lengths >= 1)
        packed = nn.utils.rnn.pack_padded_sequence(features, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
        packed_output, final = self.rnn(packed, state.for_rnn())
        output, _ = nn.utils.rnn.pad_packed_sequence(packed_output, batch_first=True, total_length=features.shape[1])
        final_state = RecurrentState.from_rnn(final)
        empty = (lengths == 0).to(features.device)
        if empty.any():
            # (1, batch, 1): keep the given state where there was nothing to run
            keep = empty.view(1, -1, 1)
            final_state = RecurrentState(
                tuple(th.where(keep, old, new) for old, new in zip(state.tensors, final_state.tensors, strict=True))
            )
            output = output * (~empty).view(-1, 1, 1)
        return output, final_state

    def _cells_match_rnn(self) -> bool:
        """Whether torch's cell functions compute exactly what ``self.rnn`` does for one step.

        Not for a backward direction, LSTM projections (``proj_size``), or dropout between layers while training.
        """
        rnn = self.rnn
        if not isinstance(rnn, nn.RNNBase):  # FFM, MinGRU: no torch cell functions
            return False
        dropout_active = self.training and rnn.dropout > 0 and rnn.num_layers > 1
        return not self.bidirectional and getattr(rnn, "proj_size", 0) == 0 and not dropout_active

    def _cell_step(self, features: th.Tensor, state: RecurrentState) -> tuple[th.Tensor, RecurrentState]:
        """One time step through the stack with torch's cell functions (``th.lstm_cell``, ``th.gru_cell``, ...).

        Why: at one step (collection, ``predict``) a cell costs about a third of a call to ``nn.LSTM``/``nn.GRU``,
        whose sequence kernels carry a fixed setup cost per call.

        :param features: ``(batch, F)``.
        :return: the last layer's output ``(batch, H)`` and the new state, each tensor ``(num_layers, batch, H)``.
        """
        rnn = self.rnn
        layer_input = features
        new_tensors: list[list[th.Tensor]] = [[] for _ in state.tensors]
        for layer in range(self.rnn_num_layers):
            weights = [getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")]
            biases = [getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")] if rnn.bias else [None, None]
            if self.cell_type == "LSTM":
                h, c = th.lstm_cell(layer_input, (state.tensors[0][layer], state.tensors[1][layer]), *weights, *biases)
                new_tensors[0].append(h)
                new_tensors[1].append(c)
            else:
                if self.cell_type == "GRU":
                    cell = th.gru_cell
                else:
                    cell = th.rnn_tanh_cell if rnn.nonlinearity == "tanh" else th.rnn_relu_cell
                h = cell(layer_input, state.tensors[0][layer], *weights, *biases)
                new_tensors[0].append(h)
            layer_input = h
        return layer_input, RecurrentState(tuple(th.stack(layers) for layers in new_tensors))

    def step(self, x: th.Tensor, state: RecurrentState) -> tuple[th.Tensor, RecurrentState]:
        """One time step for every env: ``(batch, input_dim) -> (batch, num_directions * H)``."""
        output, new_state = self.forward(x.unsqueeze(1), state)
        return output.squeeze(1), new_state

    def last_step(self, x: th.Tensor) -> th.Tensor:
        """Run whole windows from a zero state and return each direction's final hidden state.

        This is SLM-Lab's semantics: the output of a window is the last layer's final state; with
        ``bidirectional=True`` the forward direction's state after the last frame and the backward
        direction's state after the first frame (both have then seen the whole window) are concatenated.

        :param x: ``(batch, seq_len, input_dim)``.
        :return: ``(batch, num_directions * H)``.
        """
        output, final = self.forward(x)
        if self.parallel:
            # a parallel cell's state is not its output (FFM's is a trace): the output after the last frame
            return output[:, -1]
        # h: (L * D, batch, H) -> the last layer's D directions -> (batch, D * H)
        last_layer = final.h[-self.num_directions :]
        return self.out_activation(last_layer.permute(1, 0, 2).reshape(x.shape[0], -1))


def _zero_past_lengths(output: th.Tensor, lengths: th.Tensor | None) -> th.Tensor:
    """``(batch, time, H)`` outputs past each sequence's last real step set to zero, as a packed torch RNN's are."""
    if lengths is None:
        return output
    # (batch, time, 1)
    real = th.arange(output.shape[1], device=output.device).view(1, -1) < lengths.view(-1, 1)
    return output * real.unsqueeze(-1)
