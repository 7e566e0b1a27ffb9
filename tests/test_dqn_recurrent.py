"""RecurrentDQN: targets, sum tree, sequence replay, the learning path, save/load and argument checks."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from sb3_recurrent_ext import RecurrentDQN
from sb3_recurrent_ext.common.recurrent.states import StateLayout
from sb3_recurrent_ext.common.sum_tree import SumTree
from sb3_recurrent_ext.dqn_recurrent import SequenceReplayBuffer, inverse_value_rescale, n_step_targets, value_rescale
from sb3_recurrent_ext.dqn_recurrent.targets import sequence_loss

ENV_ID = "CartPoleNoVel-v1"


def test_value_rescale_round_trip() -> None:
    x = th.linspace(-1e4, 1e4, 20001, dtype=th.float64)
    for eps in (1e-3, 1e-2):
        assert th.allclose(inverse_value_rescale(value_rescale(x, eps), eps), x, rtol=1e-9, atol=1e-7)
        assert th.allclose(value_rescale(inverse_value_rescale(x, eps), eps), x, rtol=1e-9, atol=1e-7)
    # h squashes: h(99) = sqrt(100) - 1 + 0.099
    assert value_rescale(th.tensor(99.0, dtype=th.float64)).item() == pytest.approx(9.099)


def test_n_step_targets_hand_computed() -> None:
    gamma, n_step, seq_len = 0.5, 2, 3
    rewards = th.tensor(
        [
            [1.0, 2.0, 4.0, 8.0, 16.0],  # no end inside the window
            [1.0, 2.0, 4.0, 0.0, 0.0],  # terminated after 3 steps
            [1.0, 2.0, 0.0, 0.0, 0.0],  # truncated after 2 steps; terminal observation at position 2
        ]
    )
    values = th.tensor(
        [
            [10.0, 20.0, 30.0, 40.0, 50.0],
            [10.0, 20.0, 30.0, 99.0, 99.0],
            [10.0, 20.0, 70.0, 99.0, 99.0],
        ]
    )
    lengths = th.tensor([5, 3, 2])
    terminated = th.tensor([False, True, False])
    targets = n_step_targets(rewards, values, lengths, terminated, gamma, n_step, seq_len)
    expected = th.tensor(
        [
            [1 + 0.5 * 2 + 0.25 * 30, 2 + 0.5 * 4 + 0.25 * 40, 4 + 0.5 * 8 + 0.25 * 50],
            [1 + 0.5 * 2 + 0.25 * 30, 2 + 0.5 * 4, 4],  # the window reaches the terminal step: no bootstrap
            [1 + 0.5 * 2 + 0.25 * 70, 2 + 0.5 * 70, 0.0],  # truncation bootstraps from the terminal observation
        ]
    )
    assert th.allclose(targets[:2], expected[:2])
    assert th.allclose(targets[2, :2], expected[2, :2])
    rescaled = n_step_targets(rewards, value_rescale(values), lengths, terminated, gamma, n_step, seq_len, True)
    assert th.allclose(inverse_value_rescale(rescaled[:2]), expected[:2], atol=1e-4)


def test_sum_tree_samples_in_proportion_to_priority() -> None:
    tree = SumTree(7)
    priorities = np.array([0.0, 1.0, 2.0, 3.0, 0.0, 4.0, 10.0])
    tree.update(np.arange(7), priorities)
    assert tree.total == pytest.approx(20.0)
    rng = np.random.default_rng(0)
    samples = np.concatenate([tree.sample(32, rng) for _ in range(1000)])
    frequencies = np.bincount(samples, minlength=7) / samples.size
    expected = priorities / priorities.sum()
    # 32000 draws: the standard error of each frequency is below 0.003
    assert np.abs(frequencies - expected).max() < 0.01
    assert frequencies[0] == 0 and frequencies[4] == 0
    tree.update(np.array([6, 6]), np.array([10.0, 0.0]))  # the last value wins
    assert tree.total == pytest.approx(10.0)


def _filled_buffer(
    episode_lengths: list[list[int]],
    seq_len: int = 4,
    burn_in: int = 3,
    n_step: int = 2,
    stride: int = 2,
    size: int = 400,
    n_steps: int | None = None,
) -> SequenceReplayBuffer:
    """A buffer whose observation is (env, episode, step in episode, 0); episodes end in truncation when odd."""
    n_envs = len(episode_lengths)
    buffer = SequenceReplayBuffer(
        size,
        spaces.Box(-np.inf, np.inf, (4,), np.float32),
        spaces.Discrete(2),
        n_envs=n_envs,
        seq_len=seq_len,
        burn_in=burn_in,
        n_step=n_step,
        sequence_stride=stride,
        state_layout=StateLayout(1, 1, 4),
        seed=0,
    )
    # per env: a stream of (episode, step, is_last) triples, cut to the same length for all envs
    streams = [
        [(e, t, t == length - 1) for e, length in enumerate(lengths) for t in range(length)] for lengths in episode_lengths
    ]
    n_steps = n_steps or min(len(stream) for stream in streams)
    for i in range(n_steps):
        items = [stream[i] for stream in streams]
        obs = np.array([[env, e, t, 0] for env, (e, t, _) in enumerate(items)], dtype=np.float32)
        next_obs = obs + np.array([0, 0, 1, 100], dtype=np.float32)  # marks terminal observations
        dones = np.array([last for _, _, last in items])
        infos = [{"TimeLimit.truncated": bool(last and e % 2 == 1)} for e, _, last in items]
        # the stored state encodes (env, episode, step) so tests can check where sequences start
        states = obs.copy()
        buffer.add_recurrent(states, np.array([t == 0 for _, t, _ in items]))
        buffer.add(obs, next_obs, np.zeros((n_envs, 1)), np.ones(n_envs, dtype=np.float32), dones, infos)
    return buffer


def test_sequences_never_cross_an_episode_end() -> None:
    buffer = _filled_buffer([[5, 9, 3, 12, 7, 1, 10] * 3, [11, 2, 6, 8, 13, 4] * 3])
    assert buffer.n_sequences() > 0
    for _ in range(20):
        batch = buffer.sample(16)
        obs, mask = batch.observations.numpy(), batch.mask.numpy()
        for b in range(16):
            real = obs[b][mask[b]]
            # one env, one episode, consecutive steps
            assert np.all(real[:, 0] == real[0, 0]) and np.all(real[:, 1] == real[0, 1])
            assert np.all(np.diff(real[:, 2]) == 1)
            assert real[0, 2] % buffer.sequence_stride == 0  # starts on the stride grid of its episode
            length = int(batch.lengths[b])
            assert mask[b, :length].all() and not mask[b, length:].any()
            if length < buffer.sequence_length:
                # the sequence stops at its episode's last step, whose kind is kept apart
                episode = int(real[0, 1])
                truncated = episode % 2 == 1
                assert bool(batch.terminated[b]) == (not truncated)
                if truncated:
                    assert obs[b, length, 3] == 100  # the terminal observation follows the last step
            # burn-in: the steps just before the start, in the same episode, from the state stored at its first step
            n_burn = int(batch.burn_in_lengths[b])
            assert n_burn == min(buffer.burn_in, int(real[0, 2]))
            burn = batch.burn_in_observations.numpy()[b, :n_burn]  # type: ignore[union-attr]
            assert np.all(burn[:, 1] == real[0, 1]) and np.all(burn[:, 2] == real[0, 2] - n_burn + np.arange(n_burn))
            stored = batch.initial_state.flat().numpy()[b]
            assert stored[1] == real[0, 1] and stored[2] == real[0, 2] - n_burn


def test_sequences_are_admitted_when_complete_and_retired_when_overwritten() -> None:
    # episode 0: 10 steps (ended); episode 1: 20 steps written so far (running). Sequences need 4 + 2 steps.
    buffer = _filled_buffer([[10, 100]], seq_len=4, n_step=2, stride=2, burn_in=3, size=200, n_steps=30)
    expected = list(range(0, 10, 2)) + [10 + k for k in range(0, 20 - 6 + 1, 2)]
    assert list(np.flatnonzero(buffer.tree.leaves)) == expected
    # 50 steps into 40 slots: episode 0 (positions 0-9) is overwritten by steps 30-39 of episode 1
    buffer = _filled_buffer([[10, 100]], seq_len=4, n_step=2, stride=2, burn_in=3, size=40, n_steps=50)
    assert {int(p) for p in np.flatnonzero(buffer.tree.leaves)} == {(10 + k) % 40 for k in range(0, 40 - 6 + 1, 2)}
    for _ in range(10):
        batch = buffer.sample(8)
        real = batch.observations.numpy()[batch.mask.numpy()]
        assert np.all(real[:, 1] == 1)  # episode 0 is gone
        # burn-in never reaches before the oldest stored step (step 0 of episode 1 here)
        first_steps = batch.observations.numpy()[:, 0, 2]
        assert np.all(batch.burn_in_lengths.numpy() == np.minimum(3, first_steps))


def _model(cell: str = "Gru", dueling: bool = False, **kwargs) -> RecurrentDQN:
    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    defaults = dict(learning_starts=64, seq_len=4, burn_in=2, n_step=2, batch_size=8, buffer_size=2000, seed=0)
    defaults.update(kwargs)
    policy_kwargs = dict(rnn_hidden_size=8, net_arch=[8], dueling=dueling)
    return RecurrentDQN(f"Mlp{cell}Policy", env, policy_kwargs=policy_kwargs, **defaults)


@pytest.mark.parametrize("cell", ["Gru", "Lstm", "Ffm", "MinGru"])
def test_sequence_path_matches_step_by_step(cell: str) -> None:
    model = _model(cell)
    model.learn(300)
    batch = model.replay_buffer.sample(4)
    q_net = model.policy.q_net
    # burn-in with lengths == stepping each sequence through its real burn-in steps
    state = q_net.burn_in(batch.burn_in_observations, batch.initial_state, batch.burn_in_lengths)
    q_seq, _ = q_net(batch.observations, state)
    for b in range(4):
        step_state = batch.initial_state.index(slice(b, b + 1))
        for t in range(int(batch.burn_in_lengths[b])):
            _, step_state = model.policy.q_step(batch.burn_in_observations[b : b + 1, t], step_state)
        for name, a, r in zip("hc", state.tensors, step_state.tensors, strict=False):
            assert th.allclose(a[:, b : b + 1], r, atol=1e-6), name
        for t in range(batch.observations.shape[1]):
            q_step, step_state = model.policy.q_step(batch.observations[b : b + 1, t], step_state)
            assert th.allclose(q_seq[b, t], q_step[0], atol=1e-5)


def test_burn_in_gives_no_gradient_and_one_call_per_net() -> None:
    model = _model("Lstm")
    model.learn(300)
    batch = model.replay_buffer.sample(6)
    assert int(batch.burn_in_lengths.max()) > 0
    calls: dict[str, list[tuple[bool, int]]] = {"online": [], "target": []}
    hooks = [
        net.rnn.register_forward_pre_hook(
            lambda _m, args, name=name: calls[name].append((th.is_grad_enabled(), args[0].shape[1]))
        )
        for name, net in (("online", model.policy.q_net), ("target", model.policy.q_net_target))
    ]
    loss, priorities, _ = sequence_loss(model, batch)
    for hook in hooks:
        hook.remove()
    learn_steps = model.seq_len + model.n_step
    # burn-in (burn_in steps) without gradient, then ONE call over the learning part; only the online one has gradient
    assert calls["online"] == [(False, model.burn_in), (True, learn_steps)]
    assert calls["target"] == [(False, model.burn_in), (False, learn_steps)]
    grads = th.autograd.grad(loss, list(model.policy.q_net.parameters()))
    assert any(g.abs().sum() > 0 for g in grads)
    assert priorities.shape == (6,) and bool((priorities >= 0).all())


def test_save_load_with_and_without_replay_buffer(tmp_path) -> None:
    model = _model("Lstm", dueling=True)
    model.learn(400)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    env = make_vec_env(ENV_ID, n_envs=2, seed=5)
    obs = env.reset()
    loaded = RecurrentDQN.load(tmp_path / "model", env=env)
    # same actions and state from the same observations and state, over several steps
    state_a = state_b = None
    starts = np.ones(2, dtype=bool)
    for _ in range(5):
        actions_a, state_a = model.predict(obs, state_a, starts, deterministic=True)
        actions_b, state_b = loaded.predict(obs, state_b, starts, deterministic=True)
        assert np.array_equal(actions_a, actions_b)
        for a, b in zip(state_a, state_b, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)
        obs, _, dones, _ = env.step(actions_a)
        starts = dones
    # loading without an env (as rl-zoo's enjoy does) gives the same actions too
    loaded_without_env = RecurrentDQN.load(tmp_path / "model")
    assert np.array_equal(loaded_without_env.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    # without the buffer: an empty one; with it: the same sequences and the same loss on a batch
    assert loaded.replay_buffer.n_sequences() == 0
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.replay_buffer.n_sequences() == model.replay_buffer.n_sequences()
    batch = loaded.replay_buffer.sample(8)
    loss_before = sequence_loss(model, batch)[0].item()
    assert sequence_loss(loaded, batch)[0].item() == pytest.approx(loss_before, rel=1e-5)
    # resumed training continues from there (no reset of the learned values: the first loss is of the same size)
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps == model.num_timesteps + 200
    assert loaded.logger.name_to_value["train/loss"] < 10 * max(loss_before, 1e-3)


def test_evaluate_policy_carries_the_state() -> None:
    from stable_baselines3.common.evaluation import evaluate_policy

    model = _model("Gru")
    model.learn(200)
    mean, _ = evaluate_policy(model, make_vec_env(ENV_ID, n_envs=2, seed=1), n_eval_episodes=4, deterministic=True)
    assert mean > 0


@pytest.mark.parametrize("policy", ["CnnLstmPolicy", "CnnGruPolicy", "MultiInputLstmPolicy", "MultiInputGruPolicy"])
def test_image_and_dict_policy_aliases(policy: str) -> None:
    if policy.startswith("Cnn"):
        from stable_baselines3.common.envs import FakeImageEnv

        env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=1, discrete=True)
    else:
        from stable_baselines3.common.envs import SimpleMultiObsEnv

        env = SimpleMultiObsEnv(random_start=True)
    model = RecurrentDQN(policy, env, learning_starts=20, seq_len=4, burn_in=2, batch_size=4, buffer_size=500, seed=0)
    expected_cell = "LSTM" if "Lstm" in policy else "GRU"
    assert model.policy.q_net.rnn.cell_type == expected_cell
    model.learn(80)
    assert model.logger.name_to_value["train/loss"] >= 0


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(burn_in=-1), "burn_in=-1"),
        (dict(seq_len=0), "seq_len=0"),
        (dict(n_step=0), "n_step=0"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(sequence_stride=0), "sequence_stride=0"),
        (dict(priority_beta=1.5), "priority_beta=1.5"),
        (dict(priority_alpha=-0.5), r"priority_alpha=-0.5 must be a number >= 0"),
        (dict(priority_alpha="0.9"), r"priority_alpha='0.9' must be a number >= 0"),
        (dict(loss_fn="L1Loss"), "loss_fn='L1Loss'.*SmoothL1Loss"),
        (dict(policy_kwargs=dict(bidirectional=True)), "bidirectional=True"),
        (dict(policy_kwargs=dict(cell_type="LSTM")), "cell_type='LSTM' contradicts"),
        (dict(policy_kwargs=dict(cell_type="TCN")), "cell_type"),
        (dict(gamma="0.99"), r"gamma='0.99' must be a number in \[0, 1\]"),
        (dict(policy_kwargs=dict(rnn_hidden_size=0)), "rnn_hidden_size=0 must be a positive integer"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        RecurrentDQN("MlpGruPolicy", ENV_ID, **kwargs)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_only_discrete_actions(env_id: str) -> None:
    if env_id == "CartPole-v1":
        RecurrentDQN("MlpGruPolicy", env_id)  # Discrete: accepted
        return
    with pytest.raises(ValueError, match="Discrete action spaces only"):
        RecurrentDQN("MlpGruPolicy", env_id)


class CueRecall(gymnasium.Env):
    """A cue (one of two) is shown at the first step, then ``delay`` blank steps, then a query: the action taken
    at the query step earns +1 if it names the cue, else -1. Without memory the expected return is 0."""

    observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, delay: int = 5) -> None:
        self.delay = delay

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return self._obs(), {}

    def _obs(self) -> np.ndarray:
        obs = np.zeros(3, np.float32)
        if self.t == 0:
            obs[self.cue] = 1.0
        elif self.t == self.delay:
            obs[2] = 1.0
        return obs

    def step(self, action):
        query = self.t == self.delay
        self.t += 1
        reward = (1.0 if int(action) == self.cue else -1.0) if query else 0.0
        return self._obs(), reward, query, False, {}


@pytest.mark.parametrize("cell", ["Gru", "Lstm"])
def test_learns_to_recall_a_cue(cell: str) -> None:
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env(CueRecall, n_envs=4, seed=0)
    model = RecurrentDQN(
        f"Mlp{cell}Policy",
        env,
        learning_starts=300,
        train_freq=1,
        seq_len=8,
        burn_in=2,
        batch_size=16,
        exploration_fraction=0.3,
        target_update_interval=200,
        policy_kwargs=dict(rnn_hidden_size=32, net_arch=[32]),
        seed=0,
    )
    model.learn(3000)
    mean, _ = evaluate_policy(model, make_vec_env(CueRecall, n_envs=1, seed=1), n_eval_episodes=50, deterministic=True)
    assert mean > 0.8  # a memoryless agent averages 0


def test_loading_another_algorithms_file_is_refused_at_load(tmp_path) -> None:
    from sb3_recurrent_ext import RecurrentPPORND

    RecurrentPPORND("MlpGruPolicy", "CartPoleNoVel-v1", n_steps=8, batch_size=8).save(tmp_path / "ppo")
    with pytest.raises(ValueError, match=r"RecurrentDQN cannot use the policy .*MlpGruPolicy: it needs a RecurrentDQNPolicy"):
        RecurrentDQN.load(tmp_path / "ppo")
    RecurrentDQN("MlpGruPolicy", "CartPoleNoVel-v1", learning_starts=10).save(tmp_path / "dqn")
    with pytest.raises(ValueError, match=r"RecurrentPPORND cannot use the policy .*: it needs a RecurrentActorCriticPolicy"):
        RecurrentPPORND.load(tmp_path / "dqn")


def test_sum_tree_counts_its_nonzero_leaves_without_a_scan() -> None:
    from sb3_recurrent_ext.common.sum_tree import SumTree

    rng = np.random.default_rng(0)
    tree = SumTree(37)
    for _ in range(200):
        index = rng.integers(0, 37, size=rng.integers(1, 9))  # repeated indices: the last value wins
        priority = np.where(rng.random(len(index)) < 0.4, 0.0, rng.random(len(index)))
        tree.update(index, priority)
        assert tree.count_nonzero() == np.count_nonzero(tree.leaves)
    # every inner node is the sum of its children (changes are added, so up to rounding)
    inner = np.arange(1, tree.n_leaves)
    np.testing.assert_allclose(tree.nodes[inner], tree.nodes[2 * inner] + tree.nodes[2 * inner + 1], rtol=1e-12, atol=1e-12)
    assert tree.total == pytest.approx(tree.leaves.sum(), rel=1e-12)


def test_target_update_copies_batch_norm_statistics() -> None:
    """As SB3's DQN: the target net gets the online net's batch-norm running statistics at each target update."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class NormalizedFeatures(BaseFeaturesExtractor):
        def __init__(self, observation_space) -> None:
            super().__init__(observation_space, features_dim=4)
            self.norm = nn.BatchNorm1d(4)

        def forward(self, observations: th.Tensor) -> th.Tensor:
            return self.norm(observations)

    model = RecurrentDQN(
        "MlpGruPolicy",
        "CartPoleNoVel-v1",
        learning_starts=20,
        target_update_interval=8,
        policy_kwargs=dict(features_extractor_class=NormalizedFeatures, rnn_hidden_size=8),
    )
    model.learn(100)
    online, target = model.policy.q_net.features_extractor.norm, model.policy.q_net_target.features_extractor.norm
    assert online.running_mean.abs().sum() > 0
    model._n_calls = max(model.target_update_interval // model.n_envs, 1) - 1  # the next step updates the target
    model._on_step()
    th.testing.assert_close(target.running_mean, online.running_mean)
    th.testing.assert_close(target.running_var, online.running_var)
