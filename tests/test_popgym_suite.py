"""The memory suite's resumable runs (scripts/popgym_suite.py): a run stopped after a checkpoint goes on from it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from sb3_recurrent_ext import RecurrentDQN, RecurrentPPORND

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import popgym_suite  # noqa: E402  (a script, importable from scripts/)

TASK = "popgym-RepeatPreviousEasy-v0"


class SessionStoppedError(Exception):
    """Stands for a session stopped between training and recording the run."""


def _interrupted(*args: Any, **kwargs: Any) -> Any:
    raise SessionStoppedError


SMALL = {
    "ppo": lambda env, seed: RecurrentPPORND("MlpGruPolicy", env, use_rnd=False, n_epochs=1, seed=seed),
    "dqn": lambda env, seed: RecurrentDQN(
        "MlpGruPolicy", env, learning_starts=500, buffer_size=4_000, train_freq=16, seed=seed
    ),
}


@pytest.mark.parametrize("kind", ["ppo", "dqn"])
def test_a_stopped_run_resumes_from_its_checkpoint(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(popgym_suite.CONTENDERS, kind, (SMALL[kind], False))
    real_evaluate = popgym_suite.evaluate_policy
    monkeypatch.setattr(popgym_suite, "evaluate_policy", _interrupted)
    # 8 envs x 128 steps a rollout: saved at 2048 (the first step count >= 2048 past the last save), not at 3072
    with pytest.raises(SessionStoppedError):
        popgym_suite.run(TASK, kind, 0, 3072, 2, tmp_path, checkpoint_every=2048)
    run_dir = tmp_path / popgym_suite._run_slug(TASK, kind, 0, 3072)
    saved = popgym_suite.json.loads((run_dir / "progress.json").read_text())
    assert saved["steps"] == 2048
    assert (run_dir / "replay_buffer.pkl").exists() == (kind == "dqn")

    monkeypatch.setattr(popgym_suite, "evaluate_policy", real_evaluate)
    result = popgym_suite.run(TASK, kind, 0, 3072, 2, tmp_path, checkpoint_every=2048)
    assert result["resumed_from"] == [2048]
    steps = [step for step, _ in result["curve"]]
    # the curve holds the first session's points, then the second's, up to the full budget
    assert steps == sorted(steps) and steps[-1] == 3072
    assert any(step <= 2048 for step in steps) and any(step > 2048 for step in steps)
    assert result["wall_s"] > saved["wall_s"]


def _runs(task: str, contender: str, scores: list[float]) -> list[dict[str, Any]]:
    return [
        {"task": task, "contender": contender, "timesteps": 500_000, "seed": seed, "eval": score}
        for seed, score in enumerate(scores)
    ]


def test_the_comparison_names_the_best_of_ours_and_what_is_missing() -> None:
    first, previous = popgym_suite.TASKS[:2]
    contrib, frames = popgym_suite.BASELINES
    runs = [
        *_runs(first, "RecurrentPPORND GRU", [0.9, 0.95, 1.0]),
        *_runs(first, "RecurrentPPORND LSTM", [0.5, 0.6, 0.7]),
        *_runs(first, contrib, [0.1, 0.2]),
        *_runs(first, frames, [-0.5, -0.4]),
        # the GRU is above on IQM but its interval overlaps sb3-contrib's; frame stacking has one seed of the two
        *_runs(previous, "RecurrentPPORND GRU", [0.2, 0.6, 0.9]),
        *_runs(previous, contrib, [0.3, 0.5]),
        *_runs(previous, frames, [0.9]),
        # the former defaults, kept for the record: never counted as ours
        *_runs(previous, "RecurrentDQN seq_len 16 burn_in 8 GRU", [1.0, 1.0, 1.0]),
    ]
    lines = popgym_suite.comparison(runs, 500_000)
    row_first = next(line for line in lines if line.startswith(f"| {first} "))
    row_previous = next(line for line in lines if line.startswith(f"| {previous} "))
    assert "RecurrentPPORND GRU: 0.950" in row_first
    assert row_first.endswith("| interval above | interval above |")
    assert "RecurrentPPORND GRU: 0.567" in row_previous
    assert row_previous.endswith("| IQM >= | missing |")
    assert f"Interval above both baselines on 1 of {len(popgym_suite.TASKS)} tasks (3 or more asked)." in lines
    assert sum(line.startswith("| ") and line.count("missing") >= 4 for line in lines) == len(popgym_suite.TASKS) - 2
