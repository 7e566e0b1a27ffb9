"""DistributedRecurrentDQN: Ray actors feeding RecurrentDQN's learner, on a local Ray instance with 2 CPUs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from sb3_recurrent_ext import RecurrentDQN

ray = pytest.importorskip("ray", reason="the distributed extra: pip install 'sb3-recurrent-ext[distributed]'")
from sb3_recurrent_ext.dqn_recurrent.distributed import DistributedRecurrentDQN, actor_epsilons  # noqa: E402

ENV = "CartPoleNoVel-v1"
SMALL = dict(policy_kwargs=dict(rnn_hidden_size=16, net_arch=[16]), buffer_size=4000, batch_size=8, seq_len=4, burn_in=2)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    os.environ.setdefault("RAY_worker_niceness", "0")  # as DistributedRecurrentDQN does when it starts Ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_actor_epsilons_follow_ape_x():
    np.testing.assert_allclose(actor_epsilons(0.4, 1), [0.4])
    np.testing.assert_allclose(actor_epsilons(0.4, 3, alpha=7.0), [0.4, 0.4**4.5, 0.4**8])
    np.testing.assert_allclose(actor_epsilons(0.4, 3, alpha=0.0), [0.4, 0.4, 0.4])


@pytest.mark.parametrize(
    "argument, value, message",
    [
        ("n_actors", 0, "n_actors=0"),
        ("envs_per_actor", -1, "envs_per_actor=-1"),
        ("weight_sync_interval", 0, "weight_sync_interval=0"),
        ("actor_max_restarts", -1, "actor_max_restarts=-1"),
        ("actor_epsilon_alpha", -1.0, "actor_epsilon_alpha=-1.0"),
    ],
)
def test_bad_arguments_are_named_at_construction(argument, value, message):
    with pytest.raises(ValueError, match=message):
        DistributedRecurrentDQN("MlpGruPolicy", ENV, **{argument: value})


def test_an_env_object_without_make_actor_env_is_refused_at_learn():
    model = DistributedRecurrentDQN("MlpGruPolicy", make_vec_env(ENV), n_actors=1, **SMALL)
    with pytest.raises(ValueError, match="make_actor_env"):
        model.learn(16)


def test_actor_sequences_equal_the_single_process_buffer():
    """One actor with two envs, greedy acting, no learning: the replay holds what RecurrentDQN itself stores."""
    common = dict(
        learning_starts=0, gradient_steps=0, train_freq=4, exploration_initial_eps=0.0, exploration_final_eps=0.0,
        seed=3, **SMALL,
    )  # fmt: skip
    single = RecurrentDQN("MlpGruPolicy", make_vec_env(ENV, n_envs=2), **common)
    single.learn(160)
    distributed = DistributedRecurrentDQN("MlpGruPolicy", ENV, n_actors=1, envs_per_actor=2, **common)
    distributed.learn(160)
    ours, theirs = distributed.replay_buffer, single.replay_buffer
    assert ours.pos == theirs.pos == 80
    for field in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts", "hidden_states"):
        np.testing.assert_allclose(getattr(ours, field), getattr(theirs, field), err_msg=field, atol=1e-6)
    np.testing.assert_array_equal(ours.episode_steps, theirs.episode_steps)
    np.testing.assert_array_equal(ours.tree.leaves, theirs.tree.leaves)  # the same sequences admitted
    assert theirs.dones.sum() > 0 and theirs.hidden_states.any()  # episodes ended and states were stored


class _KillActorOnce(BaseCallback):
    def __init__(self, at_step: int) -> None:
        super().__init__()
        self.at_step, self.killed = at_step, False

    def _on_step(self) -> bool:
        if not self.killed and self.num_timesteps >= self.at_step:
            ray.kill(self.model._pool.actors[0], no_restart=False)  # Ray restarts it (max_restarts)
            self.killed = True
        return True


def test_a_killed_actor_is_restarted_and_the_run_finishes_with_its_learner_state(tmp_path: Path):
    model = DistributedRecurrentDQN("MlpGruPolicy", ENV, n_actors=2, learning_starts=100, train_freq=8, seed=0, **SMALL)
    evaluation = EvalCallback(make_vec_env(ENV), eval_freq=60, n_eval_episodes=2, log_path=str(tmp_path), verbose=0)
    model.learn(1200, callback=[_KillActorOnce(at_step=400), evaluation])
    assert model.actor_restarts == 1
    assert model.num_timesteps >= 1200
    # every round reached the replay: 8 steps per env per round, 2 columns
    assert model.replay_buffer.pos == model.num_timesteps // 2
    assert model._n_updates > 0 and model.replay_buffer.n_sequences() > 0
    assert len(evaluation.evaluations_results) >= 2  # SB3's EvalCallback ran during the distributed run
    assert model._pool is None  # the actors were stopped


class _CtrlC(BaseCallback):
    def _on_step(self) -> bool:
        if self.num_timesteps >= 300:
            raise KeyboardInterrupt
        return True


def test_ctrl_c_saves_the_model_and_the_replay_buffer(tmp_path: Path):
    path = tmp_path / "interrupted"
    model = DistributedRecurrentDQN(
        "MlpGruPolicy", ENV, n_actors=1, learning_starts=50, interrupt_save_path=str(path), seed=0, **SMALL
    )
    with pytest.raises(KeyboardInterrupt):
        model.learn(2000, callback=_CtrlC())
    assert model._pool is None
    loaded = DistributedRecurrentDQN.load(path.with_suffix(".zip"), env=make_vec_env(ENV))
    loaded.load_replay_buffer(tmp_path / "interrupted_replay_buffer.pkl")
    assert loaded.num_timesteps == model.num_timesteps
    assert loaded.replay_buffer.pos == model.replay_buffer.pos
    for saved, trained in zip(loaded.policy.parameters(), model.policy.parameters(), strict=True):
        assert th.equal(saved, trained)
