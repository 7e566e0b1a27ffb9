"""Cost of one recurrent call, forward and backward, per cell: ``scripts/benchmark.py --suite cells``.

The training call of each cell over a padded batch of sequences, as a PPO or DQN minibatch makes it: torch's
``nn.LSTM`` (oneDNN on CPU) and ``nn.GRU`` (ATen, step by step), this package's GRU (``gru_sequence``, the one
``RecurrentNet`` uses), and the two cells that train in parallel over time (minGRU, FFM). Calls are interleaved
(every cell in turn, ``--repeats`` rounds) and the median is reported, so background load hits every cell alike.
Writes ``<out>/cell_speed.md``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch as th
from torch import nn

from sb3_recurrent_ext import RecurrentNet
from sb3_recurrent_ext.common.recurrent.gru import gru_sequence, gru_weights

SHAPES = ((8, 32), (8, 128), (32, 128))  # (sequences, steps)


def _contenders(features: int, hidden: int) -> dict[str, Callable[[th.Tensor], tuple[th.Tensor, object]]]:
    gru = nn.GRU(features, hidden, batch_first=True)
    min_gru = RecurrentNet(features, cell_type="MinGRU", rnn_hidden_size=hidden)
    ffm = RecurrentNet(features, cell_type="FFM", rnn_hidden_size=hidden)
    return {
        "nn.LSTM (oneDNN)": nn.LSTM(features, hidden, batch_first=True),
        "nn.GRU (ATen)": gru,
        "GRU, gru_sequence (ours)": lambda x: gru_sequence(x, x.new_zeros(1, x.shape[0], hidden), gru_weights(gru)),
        "MinGRU (scan)": min_gru,
        "FFM (scan)": ffm,
    }


def time_call(call: Callable[[th.Tensor], tuple[th.Tensor, object]], x: th.Tensor) -> float:
    """Seconds for one forward and backward pass."""
    start = time.perf_counter()
    output, _ = call(x)
    output.sum().backward()
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["cells"], required=True)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)
    th.manual_seed(0)
    contenders = _contenders(args.features, args.hidden)
    rows = []
    for batch, steps in SHAPES:
        x = th.randn(batch, steps, args.features, requires_grad=True)
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for round_ in range(args.repeats + 5):
            for name, call in contenders.items():
                elapsed = time_call(call, x)
                if round_ >= 5:  # the first rounds warm up TorchScript and the allocator
                    times[name].append(elapsed)
        lstm = statistics.median(times["nn.LSTM (oneDNN)"])
        for name, samples in times.items():
            median = statistics.median(samples)
            rows.append(f"| {batch} x {steps} | {name} | {median * 1e3:.2f} | {median / lstm:.2f}x |")
            print(rows[-1], flush=True)
    command = "python scripts/benchmark.py " + " ".join(argv)
    lines = [
        "# Cost of one recurrent training call per cell (forward + backward)",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.date.today()}; machine: {th.get_num_threads()} torch thread(s), {platform.machine()}, "
        f"torch {th.__version__}; features {args.features}, hidden {args.hidden}; median of {args.repeats} "
        "interleaved rounds",
        "",
        "| sequences x steps | cell | ms per call | / nn.LSTM |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cell_speed.md").write_text("\n".join(lines))
