"""One hidden-state container for every recurrent cell.

GRU, vanilla RNN, minGRU and FFM carry one tensor ``h``; LSTM carries ``h`` and ``c``. Every tensor
has torch's layout ``(num_layers * num_directions, batch, state_size)``, so the whole
state goes straight into ``nn.GRU`` / ``nn.LSTM`` / ``nn.RNN``. ``state_size`` is the hidden size,
except for FFM, whose state is its complex trace (``2 * memory_size * context_size`` reals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch as th

# torch's cells, then the cells of `cells.py` that train in parallel over time
CELL_TYPES = ("GRU", "LSTM", "RNN", "FFM", "MinGRU")


def n_state_tensors(cell_type: str) -> int:
    """Number of tensors in the hidden state of ``cell_type`` (2 for LSTM: h and c, else 1)."""
    return 2 if cell_type == "LSTM" else 1


@dataclass(frozen=True)
class RecurrentState:
    """Hidden state of a recurrent stack, for any cell type.

    :param tensors: ``(h,)`` for GRU/RNN or ``(h, c)`` for LSTM, each of shape
        ``(num_layers * num_directions, batch, hidden_size)``.
    """

    tensors: tuple[th.Tensor, ...]

    @classmethod
    def zeros(
        cls,
        cell_type: str,
        n_layers_x_directions: int,
        batch_size: int,
        hidden_size: int,
        device: th.device | str = "cpu",
    ) -> RecurrentState:
        """A zero state, the state at the start of every episode."""
        shape = (n_layers_x_directions, batch_size, hidden_size)
        return cls(tuple(th.zeros(shape, device=device) for _ in range(n_state_tensors(cell_type))))

    @classmethod
    def from_numpy(cls, arrays: Sequence[np.ndarray] | np.ndarray, device: th.device | str = "cpu") -> RecurrentState:
        """Build a state from what :meth:`numpy` returned (what ``predict`` hands back to users)."""
        if isinstance(arrays, np.ndarray):
            arrays = (arrays,)
        return cls(tuple(th.as_tensor(np.asarray(a), dtype=th.float32, device=device) for a in arrays))

    @property
    def h(self) -> th.Tensor:
        """The output hidden state ``h``: ``(num_layers * num_directions, batch, hidden_size)``."""
        return self.tensors[0]

    @property
    def batch_size(self) -> int:
        return self.tensors[0].shape[1]

    def for_rnn(self) -> th.Tensor | tuple[th.Tensor, th.Tensor]:
        """The form ``nn.GRU``/``nn.RNN`` (one tensor) or ``nn.LSTM`` (a pair) expects."""
        if len(self.tensors) == 1:
            return self.tensors[0]
        return (self.tensors[0], self.tensors[1])

    @classmethod
    def from_rnn(cls, state: th.Tensor | tuple[th.Tensor, ...]) -> RecurrentState:
        """Wrap the final state returned by ``nn.GRU``/``nn.RNN``/``nn.LSTM``."""
        if isinstance(state, th.Tensor):
            return cls((state,))
        return cls(tuple(state))

    def reset(self, episode_starts: th.Tensor | np.ndarray) -> RecurrentState:
        """Zero the state of every env whose episode just started.

        :param episode_starts: ``(batch,)`` booleans (or 0/1 floats), True where the
            episode starts at this step.
        """
        starts = th.as_tensor(episode_starts, device=self.h.device).to(th.float32).reshape(1, -1, 1)
        keep = 1.0 - starts
        return RecurrentState(tuple(t * keep for t in self.tensors))

    def index(self, batch_index: th.Tensor | np.ndarray | slice) -> RecurrentState:
        """Select batch entries (envs or sequences): ``(L*D, B, H) -> (L*D, len(batch_index), H)``."""
        if isinstance(batch_index, np.ndarray):
            batch_index = th.as_tensor(batch_index, device=self.h.device)
        return RecurrentState(tuple(t[:, batch_index] for t in self.tensors))

    def flat(self) -> th.Tensor:
        """One row per batch entry, for storage in buffers and for RND.

        ``n_tensors x (L*D, B, H) -> (B, n_tensors * L*D * H)``
        """
        return th.cat([t.permute(1, 0, 2).reshape(t.shape[1], -1) for t in self.tensors], dim=1)

    @classmethod
    def from_flat(cls, flat: th.Tensor, n_tensors: int, n_layers_x_directions: int, hidden_size: int) -> RecurrentState:
        """Inverse of :meth:`flat`: ``(B, n_tensors * L*D * H) -> n_tensors x (L*D, B, H)``."""
        batch = flat.shape[0]
        # (B, n_tensors * L*D * H) -> (n_tensors, B, L*D, H) -> n_tensors x (L*D, B, H)
        parts = flat.reshape(batch, n_tensors, n_layers_x_directions, hidden_size).permute(1, 2, 0, 3)
        return cls(tuple(p.contiguous() for p in parts))

    def numpy(self) -> tuple[np.ndarray, ...]:
        """The state as numpy arrays, the form ``predict`` returns (as sb3-contrib does)."""
        return tuple(t.detach().cpu().numpy() for t in self.tensors)


@dataclass(frozen=True)
class StateLayout:
    """The shape of one env's hidden state, which the buffers store flat (:meth:`RecurrentState.flat`):
    ``n_tensors`` tensors of ``(layers, size)`` each, ``layers`` being ``num_layers * num_directions``.

    One value where the buffers and algorithms would otherwise pass three numbers around.
    """

    n_tensors: int = 1
    layers: int = 1
    size: int = 1

    @classmethod
    def of(cls, state: RecurrentState) -> StateLayout:
        """The layout of ``state`` (its batch size does not matter)."""
        return cls(len(state.tensors), state.h.shape[0], state.h.shape[2])

    @property
    def flat_dim(self) -> int:
        """Features of one env's flat state: ``n_tensors * layers * size``."""
        return self.n_tensors * self.layers * self.size

    def unflatten(self, flat: th.Tensor) -> RecurrentState:
        """``(B, flat_dim)`` rows back into a state (the inverse of :meth:`RecurrentState.flat`)."""
        return RecurrentState.from_flat(flat, self.n_tensors, self.layers, self.size)
