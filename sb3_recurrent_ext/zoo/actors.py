"""``scripts/train.py --algo recurrent_dqn --n-actors N``: the same ``zoo_configs`` entry with Ray actors.

rl_zoo3 builds the algorithm from the env it made (``n_envs`` of the entry) and the entry's hyperparameters; the
class registered here turns that into a DistributedRecurrentDQN whose ``N`` actors each make ``n_envs / N`` of the
env, so a round brings as many env steps, and the learner as many updates, as one ``train_freq`` of the
single-process run.
"""

from __future__ import annotations

from typing import Any

import rl_zoo3
import rl_zoo3.utils

from sb3_recurrent_ext.dqn_recurrent.distributed import DistributedRecurrentDQN, EnvById
from sb3_recurrent_ext.zoo.config import read_entry

# entry keys whose wrappers the actors would not apply (they make the env by id)
_WRAPPER_KEYS = ("env_wrapper", "frame_stack", "normalize", "env_kwargs", "vec_env_wrapper")


class ZooDistributedRecurrentDQN(DistributedRecurrentDQN):
    """DistributedRecurrentDQN as rl_zoo3 constructs it; :func:`use_actors` sets the two class attributes."""

    zoo_n_actors = 1
    zoo_env_id = ""

    def __init__(self, policy: Any, env: Any, **kwargs: Any) -> None:
        if env is not None and "n_actors" not in kwargs:  # not when SB3's load rebuilds it: the saved values win
            n_envs, n_actors = env.num_envs, self.zoo_n_actors
            if n_envs % n_actors:
                raise ValueError(f"--n-actors {n_actors} must divide the entry's n_envs={n_envs}")
            kwargs.update(
                n_actors=n_actors,
                envs_per_actor=n_envs // n_actors,
                make_actor_env=EnvById(self.zoo_env_id, n_envs // n_actors),
            )
        super().__init__(policy, env, **kwargs)


def use_actors(n_actors: int, algo: str, env_id: str, config: str) -> None:
    """Make rl_zoo3's ``recurrent_dqn`` run with ``n_actors`` Ray actors."""
    if n_actors < 1:
        raise SystemExit(f"--n-actors={n_actors}: give 1 or more actors")
    if algo != "recurrent_dqn":
        raise SystemExit(f"--n-actors runs --algo recurrent_dqn (R2D2's actors), not --algo {algo}")
    entry = read_entry(config, env_id)
    wrapped = [key for key in _WRAPPER_KEYS if entry.get(key)]
    if wrapped:
        raise SystemExit(
            f"--n-actors: the {env_id} entry of {config} sets {', '.join(wrapped)}; the actors make the env by id "
            "without the zoo's wrappers, so this entry runs in a single process only"
        )
    ZooDistributedRecurrentDQN.zoo_n_actors, ZooDistributedRecurrentDQN.zoo_env_id = n_actors, env_id
    for table in (rl_zoo3.utils.ALGOS, rl_zoo3.ALGOS):
        table[algo] = ZooDistributedRecurrentDQN
