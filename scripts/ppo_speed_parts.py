"""Where a PPO run's time goes: ``scripts/benchmark.py --suite ppo-parts``.

On rl-zoo's CartPoleNoVel ppo_lstm values (8 envs, VecNormalize, one torch thread), each contender learns
``--timesteps`` steps after a warm-up, and the time of ``collect_rollouts`` and of ``train`` is summed apart.
Contenders: SB3's MLP PPO, RecurrentPPORND with each cell, sb3-contrib's RecurrentPPO, and a floor:
RecurrentPPORND with the minGRU whose recurrence is removed (``linear_scan`` returns its inputs), i.e. what the
sequence machinery, the two recurrent nets' input layers and PPO cost with a cell that costs nothing. Rounds are
interleaved (every contender in turn) and medians reported, so background load hits every contender alike.
Writes ``<out>/ppo_speed_parts.md``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import sb3_recurrent_ext.common.recurrent.cells as cells
from sb3_recurrent_ext import RecurrentPPORND

FLOOR = "floor: MinGRU without its recurrence"


def _contenders() -> dict[str, Callable[[VecNormalize], BaseAlgorithm]]:
    from benchmark import ZOO_LSTM_POLICY, ZOO_PPO_LSTM

    mlp_kwargs = {key: value for key, value in ZOO_LSTM_POLICY.items() if key != "lstm_hidden_size"}

    def ours(policy: str) -> Callable[[VecNormalize], BaseAlgorithm]:
        return lambda env: RecurrentPPORND(policy, env, use_rnd=False, seed=0, **ZOO_PPO_LSTM, policy_kwargs=ZOO_LSTM_POLICY)

    return {
        "SB3 PPO (MLP)": lambda env: PPO("MlpPolicy", env, seed=0, **ZOO_PPO_LSTM, policy_kwargs=mlp_kwargs),
        "RecurrentPPORND LSTM": ours("MlpLstmPolicy"),
        "RecurrentPPORND GRU": ours("MlpGruPolicy"),
        "RecurrentPPORND MinGRU": ours("MlpMinGruPolicy"),
        "RecurrentPPORND FFM": ours("MlpFfmPolicy"),
        FLOOR: ours("MlpMinGruPolicy"),
        "sb3-contrib RecurrentPPO LSTM": lambda env: RecurrentPPO(
            "MlpLstmPolicy", env, seed=0, **ZOO_PPO_LSTM, policy_kwargs=ZOO_LSTM_POLICY
        ),
    }


@contextmanager
def _without_recurrence(active: bool) -> Iterator[None]:
    original = cells.linear_scan
    if active:
        cells.linear_scan = lambda a, b, initial: b  # type: ignore[assignment]  # the floor: no recurrence at all
    try:
        yield
    finally:
        cells.linear_scan = original  # type: ignore[assignment]


def time_parts(model: BaseAlgorithm, timesteps: int) -> dict[str, float]:
    """Seconds in ``collect_rollouts``, in ``train`` and in all, for ``timesteps`` more steps of ``model``."""
    spent = {"collect": 0.0, "train": 0.0}
    collect, train = model.collect_rollouts, model.train  # type: ignore[attr-defined]

    def timed(part: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = call(*args, **kwargs)
            spent[part] += time.perf_counter() - start
            return result

        return wrapper

    model.collect_rollouts, model.train = timed("collect", collect), timed("train", train)  # type: ignore[attr-defined]
    start = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    spent["total"] = time.perf_counter() - start
    return spent


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["ppo-parts"], required=True)
    parser.add_argument("--timesteps", type=int, default=8192)
    parser.add_argument("--warmup", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="substrings of contender names to run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    factories = {
        name: factory for name, factory in _contenders().items() if not args.only or any(part in name for part in args.only)
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in factories}
    for round_index in range(args.rounds):
        for name, factory in factories.items():
            with _without_recurrence(name == FLOOR):
                model = factory(VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=round_index)))
                model.learn(args.warmup)
                results[name].append(time_parts(model, args.timesteps))
            print(name, {key: round(value, 2) for key, value in results[name][-1].items()}, flush=True)
    _write(args, results)


def _write(args: argparse.Namespace, results: dict[str, list[dict[str, float]]]) -> None:
    def median(name: str, part: str) -> float:
        return statistics.median(run[part] for run in results[name])

    reference = "SB3 PPO (MLP)" if "SB3 PPO (MLP)" in results else None
    lines = [
        "# Where a PPO run's time goes (collection and training)",
        "",
        f"- command: `python scripts/benchmark.py --suite ppo-parts --timesteps {args.timesteps} --rounds {args.rounds}`",
        f"- date: {datetime.date.today()}; machine: {platform.machine()}, torch {th.__version__}, one torch thread; "
        "rl-zoo's CartPoleNoVel ppo_lstm values, 8 envs, VecNormalize; medians of the interleaved rounds",
        "",
        "| contender | fps | / SB3 PPO | collect (s) | train (s) | total (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name in results:
        fps = args.timesteps / median(name, "total")
        ratio = f"{fps * median(reference, 'total') / args.timesteps:.2f}x" if reference else "-"
        lines.append(
            f"| {name} | {fps:.0f} | {ratio} | {median(name, 'collect'):.2f} | {median(name, 'train'):.2f} "
            f"| {median(name, 'total'):.2f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ppo_speed_parts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
