"""R2D2's actor/learner split on Ray (Kapturowski et al., 2019; Horgan et al., "Distributed Prioritized Experience
Replay" (Ape-X), 2018): :class:`DistributedRecurrentDQN`.

Each actor is a Ray actor that steps its own ``VecEnv`` with a CPU copy of the acting policy and keeps its envs'
hidden states; it returns chunks of steps with the state each env acted from. The learner is RecurrentDQN: it
writes the actors' steps into its sequence replay (one column per actor env), samples prioritized sequences,
trains, and publishes the online net's weights through Ray's object store every ``weight_sync_interval``
learner updates. Actors act one chunk ahead of the learner (the next chunk is requested before the learner
trains on the last), so acting and learning run at the same time, and the learner's work per chunk does not
grow with the number of actors (Ape-X's decoupling).

Differences from R2D2 that follow from SB3's replay: actors send steps, and the replay cuts the overlapping
sequences and gives new sequences the maximum priority, instead of actors cutting sequences and computing
their initial priorities (the replay would recompute the same windows; the learner's TD errors replace the
priorities at the first sampling).

Ray is an optional extra: ``pip install "sb3-recurrent-ext[distributed]"``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, RolloutReturn, TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.vec_env import VecEnv

from sb3_recurrent_ext.common.checks import check_finite_step, check_non_negative_number, check_positive_int
from sb3_recurrent_ext.common.masking import env_masks
from sb3_recurrent_ext.dqn_recurrent.acting import epsilon_greedy_step, next_observations
from sb3_recurrent_ext.dqn_recurrent.dqn_recurrent import RecurrentDQN
from sb3_recurrent_ext.dqn_recurrent.policies import RecurrentDQNPolicy

SelfDistributedRecurrentDQN = TypeVar("SelfDistributedRecurrentDQN", bound="DistributedRecurrentDQN")
EnvFactory = Callable[[], VecEnv]


def actor_epsilons(epsilon: float, n_actors: int, alpha: float = 7.0) -> np.ndarray:
    """Ape-X's exploration rates: actor ``i`` of ``N`` acts with ``epsilon ** (1 + alpha * i / (N - 1))``.

    One actor gets ``epsilon`` itself, so one actor explores as the single-process RecurrentDQN does.
    """
    if n_actors == 1:
        return np.array([epsilon])
    return epsilon ** (1.0 + alpha * np.arange(n_actors) / (n_actors - 1))


class SequenceActor:
    """One actor's envs, acting policy and hidden states (run as a Ray actor by :class:`ActorPool`)."""

    def __init__(self, make_env: EnvFactory, policy: RecurrentDQNPolicy, seed: int, use_masking: bool) -> None:
        th.set_num_threads(1)  # an actor is one process on one core
        np.random.seed(seed)
        self.env = make_env()
        self.env.seed(seed)
        self.env.action_space.seed(seed)
        self.policy = policy.to("cpu")
        self.policy.set_training_mode(False)
        self.use_masking = use_masking
        # VecEnvObs also allows tuples, which SB3's algorithms refuse at construction (no Tuple spaces)
        self.obs = cast(np.ndarray | dict[str, np.ndarray], self.env.reset())
        self.episode_starts = np.ones(self.env.num_envs, dtype=bool)
        self.state = self.policy.initial_state(self.env.num_envs)
        self.weights_version = -1
        self.process = uuid.uuid4().hex  # new after a restart

    def collect(self, n_steps: int, epsilon: float, weights_version: int, weights: dict[str, th.Tensor]) -> dict[str, Any]:
        """``n_steps`` steps of every env (per step: arrays over the envs, and their ``infos``), acting with
        ``weights`` (the online net's, loaded when ``weights_version`` is new)."""
        if weights_version != self.weights_version:
            self.policy.q_net.load_state_dict(weights)
            self.weights_version = weights_version
        steps: list[dict[str, Any]] = []
        n_envs = self.env.num_envs
        for _ in range(n_steps):
            masks = env_masks(self.env, n_envs, self.env.action_space) if self.use_masking else None
            actions, state_before, self.state = epsilon_greedy_step(
                self.policy, self.obs, self.state, self.episode_starts, masks, epsilon, self.env.action_space
            )
            step_obs, rewards, dones, infos = self.env.step(actions)
            new_obs = cast(np.ndarray | dict[str, np.ndarray], step_obs)
            steps.append(
                {
                    "obs": self.obs,
                    "next_obs": next_observations(new_obs, dones, infos),
                    "actions": actions,
                    "rewards": rewards,
                    "dones": dones,
                    "infos": infos,
                    "states": state_before.flat().numpy(),
                    "episode_starts": self.episode_starts,
                    "masks": masks,
                }
            )
            self.obs, self.episode_starts = new_obs, dones
        return {"steps": steps, "process": self.process}


class ActorPool:
    """The Ray actors of one learner and the chunk each is collecting.

    :param max_restarts: how often Ray restarts an actor whose process dies; a restarted actor starts new
        episodes (its envs reset), and the chunk it was collecting is requested again.
    """

    def __init__(
        self,
        make_env: EnvFactory,
        policy: RecurrentDQNPolicy,
        n_actors: int,
        seed: int,
        envs_per_actor: int,
        use_masking: bool,
        max_restarts: int,
        address: str | None,
    ) -> None:
        import ray

        if not ray.is_initialized():
            # Ray starts its workers at niceness 15: on a busy machine the actors then starve (measured with two
            # other processes on 2 cores: importing torch in a worker took 64 s at niceness 15, 3.7 s at 0)
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        remote_actor = ray.remote(num_cpus=1, max_restarts=max_restarts, max_task_retries=-1)(SequenceActor)
        # a restarted actor rebuilds from these same arguments: the initial policy, then the latest weights
        self._policy_ref = ray.put(copy.deepcopy(policy).to("cpu"))
        # ray's handles are typed as the class itself, whose methods have no .remote
        self.actors: list[Any] = [
            remote_actor.remote(make_env, self._policy_ref, seed + index * envs_per_actor, use_masking)
            for index in range(n_actors)
        ]
        self._processes: list[str | None] = [None] * n_actors  # each actor's process, as last seen
        self._pending: list[Any] | None = None

    def next_chunks(
        self, n_steps: int, epsilons: np.ndarray, weights_version: int, weights: Any
    ) -> tuple[list[dict[str, Any]], int]:
        """Every actor's chunk requested last time (or now, the first time), and how many of them came from a
        restarted process; then requests the next chunks.

        :param weights: the online net's ``state_dict`` as a Ray object reference (``ray.put``).
        """
        import ray

        if self._pending is None:
            self._dispatch(n_steps, epsilons, weights_version, weights)
        assert self._pending is not None
        # a dead actor is restarted by Ray, which runs the chunk's task again on the new process (max_task_retries)
        chunks: list[dict[str, Any]] = ray.get(self._pending)
        processes = [chunk["process"] for chunk in chunks]
        restarted = sum(seen not in (None, now) for seen, now in zip(self._processes, processes, strict=True))
        self._processes = processes
        self._dispatch(n_steps, epsilons, weights_version, weights)
        return chunks, restarted

    def _dispatch(self, n_steps: int, epsilons: np.ndarray, weights_version: int, weights: Any) -> None:
        self._pending = [
            actor.collect.remote(n_steps, float(epsilon), weights_version, weights)
            for actor, epsilon in zip(self.actors, epsilons, strict=True)
        ]

    def shutdown(self) -> None:
        """Stop every actor now; chunks in flight are dropped."""
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors, self._pending = [], None


class DistributedRecurrentDQN(RecurrentDQN):
    """RecurrentDQN fed by ``n_actors`` Ray actors (R2D2's and Ape-X's split); every other argument as RecurrentDQN's.

    ``learn(total_timesteps)`` counts the actors' env steps. A round gives every actor env ``train_freq`` steps
    (and the learner ``gradient_steps`` updates), so one actor with one env follows the single-process schedule;
    more actors bring more steps per round for the same learner work. Actor ``i`` explores with
    ``eps ** (1 + actor_epsilon_alpha * i / (n_actors - 1))``, ``eps`` the current ``exploration_rate`` (Ape-X's
    rule; all actors at ``eps`` by default);
    each is logged as ``rollout/actor_<i>_epsilon``. Callbacks, the logger, ``save``/``load`` and ``predict``
    work as in single-process mode. By default ``ray.init()`` starts a local instance; ``ray_address="auto"``
    joins a running cluster (``ray start --head`` on one machine, ``ray start --address=<head>:6379`` on the others).

    :param env: an env id (each actor then makes ``envs_per_actor`` of it with ``make_vec_env``), or any env
        with the actors' spaces together with ``make_actor_env``. The learner's own env only gives the spaces.
    :param n_actors: Ray actors, one CPU each.
    :param envs_per_actor: envs each actor steps (a ``VecEnv``).
    :param make_actor_env: ``() -> VecEnv`` run in each actor (it must be picklable); default: ``env``'s id.
    :param weight_sync_interval: learner updates between publications of the online net's weights.
    :param actor_epsilon_alpha: Ape-X's ``alpha`` spreading the actors' exploration rates. Default 0: every actor at
        ``eps``, the exploration schedule's rate. Ape-X's 7 (for hundreds of actors) makes one of two actors
        nearly greedy: on CartPoleNoVel with 2 actors, 100k steps, seeds 0-2, it scored 500.0, 183.1, 288.9
        against 500.0, 500.0, 484.8 with 0 (``benchmarks/distributed_learning.md``).
    :param actor_max_restarts: how often Ray restarts a dead actor process before the run fails.
    :param ray_address: ``None``: the running Ray instance, or a new local one; ``"auto"``: the cluster.
    :param interrupt_save_path: where Ctrl-C saves the model (``<path>.zip``) and the replay buffer
        (``<path>_replay_buffer.pkl``) before stopping; ``None``: not saved.
    """

    def __init__(
        self,
        policy: str | type[RecurrentDQNPolicy],
        env: GymEnv | str,
        n_actors: int = 2,
        envs_per_actor: int = 1,
        make_actor_env: EnvFactory | None = None,
        weight_sync_interval: int = 10,
        actor_epsilon_alpha: float = 0.0,
        actor_max_restarts: int = 3,
        ray_address: str | None = None,
        interrupt_save_path: str | None = "recurrent_dqn_interrupted",
        **kwargs: Any,
    ) -> None:
        # set before RecurrentDQN.__init__, whose _setup_model sizes the replay with them
        self.n_actors = check_positive_int(n_actors, "n_actors")
        self.envs_per_actor = check_positive_int(envs_per_actor, "envs_per_actor")
        self.weight_sync_interval = check_positive_int(weight_sync_interval, "weight_sync_interval")
        self.actor_epsilon_alpha = check_non_negative_number(
            actor_epsilon_alpha, "actor_epsilon_alpha", "a number >= 0 (0: every actor uses eps)"
        )
        if not isinstance(actor_max_restarts, int) or actor_max_restarts < 0:
            raise ValueError(f"actor_max_restarts={actor_max_restarts!r} must be a non-negative integer")
        self.actor_max_restarts = actor_max_restarts
        self.ray_address = ray_address
        self.interrupt_save_path = interrupt_save_path
        if make_actor_env is None and isinstance(env, str):
            make_actor_env = EnvById(env, self.envs_per_actor)
        self.make_actor_env = make_actor_env
        self._pool: ActorPool | None = None
        self.actor_restarts = 0  # actor processes Ray restarted during learn(), all calls together
        self._weights_version, self._weights_synced_at = -1, 0
        self._weights_ref: Any = None  # a ray.ObjectRef of the online net's state_dict
        super().__init__(policy, env, **kwargs)

    def _replay_columns(self) -> int:
        return self.n_actors * self.envs_per_actor

    def learn(
        self: SelfDistributedRecurrentDQN,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DistributedRecurrentDQN",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDistributedRecurrentDQN:
        with self._actors_running():
            try:
                return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
            except KeyboardInterrupt:
                self._save_interrupted()
                raise

    @contextlib.contextmanager
    def _actors_running(self) -> Iterator[None]:
        """Actors for the span of one ``learn`` call, always stopped after it (no process outlives the run).

        New actors start new episodes (their envs reset), so no stored sequence spans two ``learn`` calls: the
        replay counts steps within an episode from each episode start.
        """
        if self.make_actor_env is None:
            raise ValueError(
                "DistributedRecurrentDQN needs make_actor_env=<() -> VecEnv> (or env given as an env id) "
                "so that every actor can build its own envs"
            )
        if not isinstance(self.train_freq, TrainFreq) or self.train_freq.unit != TrainFrequencyUnit.STEP:
            raise ValueError(f"train_freq={self.train_freq!r}: the actors' rounds are counted in steps, use (n, 'step')")
        self._pool = ActorPool(
            self.make_actor_env,
            self.policy,
            self.n_actors,
            0 if self.seed is None else self.seed,
            self.envs_per_actor,
            self.use_masking,
            self.actor_max_restarts,
            self.ray_address,
        )
        self._weights_version = -1
        try:
            yield
        finally:
            self._pool.shutdown()
            self._pool = None

    def collect_rollouts(  # the env argument is unused: the actors step theirs
        self,
        env: VecEnv,
        callback: BaseCallback,
        train_freq: TrainFreq,
        replay_buffer: ReplayBuffer,
        action_noise: ActionNoise | None = None,
        learning_starts: int = 0,
        log_interval: int | None = None,
    ) -> RolloutReturn:
        """One round: every actor's chunk of ``train_freq`` steps per env, stored step by step as SB3 stores them."""
        assert self._pool is not None, "collect_rollouts runs inside learn()"
        epsilon = 1.0 if self.num_timesteps < learning_starts else self.exploration_rate
        epsilons = actor_epsilons(epsilon, self.n_actors, self.actor_epsilon_alpha)
        for index, actor_epsilon in enumerate(epsilons):
            self.logger.record(f"rollout/actor_{index}_epsilon", float(actor_epsilon))
        chunks, restarted = self._pool.next_chunks(train_freq.frequency, epsilons, *self._published_weights())
        self.actor_restarts += restarted
        self.logger.record("rollout/actor_restarts", self.actor_restarts)
        callback.on_rollout_start()
        n_steps = n_episodes = 0
        for row in range(len(chunks[0]["steps"])):
            step = _across_actors([chunk["steps"][row] for chunk in chunks])
            check_finite_step(step["next_obs"], step["rewards"], self.num_timesteps)
            self.replay_buffer.add_recurrent(step["states"], step["episode_starts"], step["masks"])
            self.replay_buffer.add(
                step["obs"], step["next_obs"], step["actions"], step["rewards"], step["dones"], step["infos"]
            )
            self.num_timesteps += len(step["dones"])
            n_steps += len(step["dones"])
            self._update_info_buffer(step["infos"], step["dones"])
            callback.update_locals(locals())
            if not callback.on_step():
                return RolloutReturn(n_steps, n_episodes, continue_training=False)
            self._update_current_progress_remaining(self.num_timesteps, self._total_timesteps)
            self._on_step()
            for done in step["dones"]:
                if done:
                    n_episodes += 1
                    self._episode_num += 1
                    if log_interval is not None and self._episode_num % log_interval == 0:
                        self.dump_logs()
        callback.on_rollout_end()
        return RolloutReturn(n_steps, n_episodes, continue_training=True)

    def _published_weights(self) -> tuple[int, Any]:
        """The version and object reference of the online net's weights, republished every
        ``weight_sync_interval`` learner updates."""
        import ray

        if self._weights_version < 0 or self._n_updates - self._weights_synced_at >= self.weight_sync_interval:
            weights = {name: tensor.detach().cpu().clone() for name, tensor in self.policy.q_net.state_dict().items()}
            self._weights_ref = ray.put(weights)
            self._weights_version += 1
            self._weights_synced_at = self._n_updates
        return self._weights_version, self._weights_ref

    def _save_interrupted(self) -> None:
        if self.interrupt_save_path is None:
            return
        self.save(f"{self.interrupt_save_path}.zip")
        self.save_replay_buffer(f"{self.interrupt_save_path}_replay_buffer.pkl")
        print(f"Interrupted: saved {self.interrupt_save_path}.zip and {self.interrupt_save_path}_replay_buffer.pkl")

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_pool", "_weights_ref"]


class EnvById:
    """``make_vec_env(env_id, n_envs)`` as a picklable callable for the actors."""

    def __init__(self, env_id: str, n_envs: int) -> None:
        self.env_id, self.n_envs = env_id, n_envs

    def __call__(self) -> VecEnv:
        return make_vec_env(self.env_id, n_envs=self.n_envs)


def _across_actors(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """One step of every actor joined along the env axis: the replay's columns, actor by actor."""
    joined: dict[str, Any] = {}
    for key in steps[0]:
        values = [step[key] for step in steps]
        if key == "infos":
            joined[key] = [info for infos in values for info in infos]
        elif values[0] is None:
            joined[key] = None
        elif isinstance(values[0], dict):
            joined[key] = {name: np.concatenate([value[name] for value in values]) for name in values[0]}
        else:
            joined[key] = np.concatenate(values)
    return joined
