"""Learning curves from RL Zoo logs as PNG files, drawn by rl_zoo3's own ``plot_train``.

    python scripts/plot_zoo.py -a recurrent_ppo_rnd -e CartPoleNoVel-v1 -f logs/ --out benchmarks/zoo_curves.png

Every option of ``python -m rl_zoo3.plots.plot_train`` is accepted (``-x steps|episodes|time``,
``-y reward|success|length``, ``-w`` window...). rl_zoo3 shows its figures on screen; here each figure it
draws is saved instead (``--out``; several figures get ``_1``, ``_2``... suffixes).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sb3_recurrent_ext.zoo import register


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--out", default="zoo_curves.png")
    args, zoo_argv = parser.parse_known_args()
    register()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from rl_zoo3.plots.plot_train import plot_train

    sys.argv = [sys.argv[0], *zoo_argv]
    # with the Agg backend plt.show() shows nothing, so the figures plot_train drew are still open here
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")
        plot_train()
    written: list[Path] = []
    for i, number in enumerate(plt.get_fignums()):
        path = out if i == 0 else out.with_name(f"{out.stem}_{i}{out.suffix}")
        plt.figure(number).savefig(path, dpi=100, bbox_inches="tight")
        written.append(path)
    plt.close("all")
    print("wrote", ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
