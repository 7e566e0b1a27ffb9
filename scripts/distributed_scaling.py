"""Throughput of DistributedRecurrentDQN with 1, 2, ... Ray actors, in one run (``scripts/benchmark.py --family dqn
--actors 1 2`` calls this).

Every setting learns the same number of env steps on CartPoleNoVel-v1 with the same learner settings (GRU
defaults; ``envs_per_actor`` envs per actor; each round gives every actor env ``train_freq`` steps and the learner
``gradient_steps`` updates, so the learner's work per round does not grow with the actors, as in Ape-X). Reported
per setting: env steps/s, learner updates/s, the replay ratio (sequence steps replayed per env step collected:
updates x batch_size x (burn_in + seq_len + n_step) / env steps), and the wall time. The single-process
RecurrentDQN with one actor's envs and the same schedule runs first, as the reference.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pickle
import time
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_recurrent_ext import DistributedRecurrentDQN, RecurrentDQN

LEARNER: dict[str, Any] = dict(learning_starts=2000, train_freq=4, gradient_steps=4)


def measure(model: Any, timesteps: int) -> dict[str, float]:
    start = time.perf_counter()
    model.learn(timesteps)
    wall = time.perf_counter() - start
    sequence = model.burn_in + model.seq_len + model.n_step
    return {
        "env_steps_per_s": model.num_timesteps / wall,
        "updates_per_s": model._n_updates / wall,
        "replay_ratio": model._n_updates * model.batch_size * sequence / model.num_timesteps,
        "wall_s": wall,
        "updates": model._n_updates,
    }


def time_parts(env_id: str, envs_per_actor: int) -> dict[str, float]:
    """The parts of a round, timed in this process with the classes the Ray run uses (milliseconds): an actor's
    vectorised step; on the learner, unpickling one actor's chunk of 4 steps, joining one step of N actors, and
    writing one step of N actors' envs into the replay (N = 1, 8, 64)."""
    from sb3_recurrent_ext.dqn_recurrent.distributed import EnvById, SequenceActor, _across_actors

    model = DistributedRecurrentDQN("MlpGruPolicy", env_id, n_actors=1, envs_per_actor=envs_per_actor, seed=0)
    actor = SequenceActor(EnvById(env_id, envs_per_actor), model.policy, 0, use_masking=False)
    weights = model.policy.q_net.state_dict()
    actor.collect(10, 0.1, 0, weights)
    parts = {"actor step": _per_call(lambda: actor.collect(1, 0.1, 0, weights), 300)}
    chunk = actor.collect(4, 0.1, 0, weights)
    blob = pickle.dumps(chunk)
    parts["unpickle one chunk"] = _per_call(lambda: pickle.loads(blob), 200)
    for n_actors in (1, 8, 64):
        steps = [chunk["steps"][0]] * n_actors
        parts[f"join one step of {n_actors} actors"] = _per_call(lambda steps=steps: _across_actors(steps), 100)
        parts[f"replay write of one step of {n_actors} actors"] = _replay_write(env_id, n_actors, envs_per_actor, steps)
    return parts


def _per_call(call: Any, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return 1e3 * (time.perf_counter() - start) / repeats


def _replay_write(env_id: str, n_actors: int, envs_per_actor: int, steps: list[dict[str, Any]]) -> float:
    from sb3_recurrent_ext.dqn_recurrent.distributed import _across_actors

    columns = n_actors * envs_per_actor
    model = DistributedRecurrentDQN(
        "MlpGruPolicy", env_id, n_actors=n_actors, envs_per_actor=envs_per_actor, buffer_size=columns * 1000
    )
    step = _across_actors(steps)

    def write() -> None:
        model.replay_buffer.add_recurrent(step["states"], step["episode_starts"], step["masks"])
        model.replay_buffer.add(step["obs"], step["next_obs"], step["actions"], step["rewards"], step["dones"], step["infos"])

    return _per_call(write, 200)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--envs-per-actor", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--env", default="CartPoleNoVel-v1")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/distributed_scaling.md"))
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    import ray

    # started before the clock, as a cluster is (the actors' start-up, a few seconds each, stays in the timings)
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(include_dashboard=False, log_to_driver=False)
    rows = []
    single = RecurrentDQN("MlpGruPolicy", make_vec_env(args.env, n_envs=args.envs_per_actor), seed=0, **LEARNER)
    rows.append(("single process (RecurrentDQN)", measure(single, args.timesteps)))
    print(rows[-1], flush=True)
    for n_actors in args.actors:
        model = DistributedRecurrentDQN(
            "MlpGruPolicy", args.env, n_actors=n_actors, envs_per_actor=args.envs_per_actor, seed=0, **LEARNER
        )
        rows.append((f"{n_actors} actor{'s' if n_actors > 1 else ''} (Ray)", measure(model, args.timesteps)))
        print(rows[-1], flush=True)
    lines = [
        f"# DistributedRecurrentDQN throughput: {args.env}, {args.timesteps} env steps per setting",
        "",
        f"- command: `python scripts/distributed_scaling.py --actors {' '.join(map(str, args.actors))} "
        f"--envs-per-actor {args.envs_per_actor} --timesteps {args.timesteps}`",
        f"- date: {datetime.date.today()}; {os.cpu_count()} CPUs; torch {th.__version__}, one torch thread per process",
        f"- learner: MlpGruPolicy defaults, {LEARNER}; {args.envs_per_actor} envs per actor",
        "",
        "| setting | env steps/s | learner updates/s | replay ratio | updates | wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | {row['env_steps_per_s']:.0f} | {row['updates_per_s']:.1f} | {row['replay_ratio']:.1f} "
            f"| {row['updates']:.0f} | {row['wall_s']:.0f} |"
        )
    parts = time_parts(args.env, args.envs_per_actor)
    lines += ["", f"Parts of a round ({args.envs_per_actor} envs per actor), timed in this process after the runs (ms):"]
    lines += [f"- {name}: {value:.3f}" for name, value in parts.items()]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
