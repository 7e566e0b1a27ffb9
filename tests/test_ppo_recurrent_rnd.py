"""RecurrentPPORND: the sequence path, two-stream GAE, RND, SB3 behaviour and argument errors."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv, IdentityEnvBox, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from sb3_recurrent_ext import RecurrentPPORND, RecurrentState, make_sequences
from sb3_recurrent_ext.common.gae import compute_gae
from sb3_recurrent_ext.common.policies import ALIAS_CELLS, ALIAS_NAMES
from sb3_recurrent_ext.common.recurrent.states import StateLayout
from sb3_recurrent_ext.common.rnd import RND, ClippedNormalizer, IntrinsicRewardNormalizer, RNDNetworks

SMALL = dict(n_steps=16, batch_size=32, n_epochs=2, seq_len=8)
POLICY_KWARGS = dict(rnn_hidden_size=16, net_arch=[16])


def _model(policy="MlpLstmPolicy", env="CartPoleNoVel-v1", **kwargs):
    return RecurrentPPORND(policy, env, **{**SMALL, "policy_kwargs": POLICY_KWARGS, **kwargs})


@pytest.mark.parametrize(
    "policy, use_rnd, seq_len",
    [
        ("MlpLstmPolicy", False, 8),
        ("MlpLstmPolicy", True, 8),
        ("MlpGruPolicy", False, 8),
        ("MlpGruPolicy", True, 8),
        ("MlpLstmPolicy", False, None),
        ("MlpGruPolicy", True, None),
        ("MlpFfmPolicy", False, 8),
        ("MlpFfmPolicy", True, None),
        ("MlpMinGruPolicy", False, None),
        ("MlpMinGruPolicy", True, 8),
    ],
)
def test_sequence_path_matches_step_by_step_reference(policy, use_rnd, seq_len):
    """Values, log-probs and gradients from one recurrent call over padded sequences equal a step loop.

    ``seq_len=None``: whole sequences (episode or rollout start to end), so BPTT reaches back to the rollout start.
    """
    th.manual_seed(0)
    env = make_vec_env("CartPoleNoVel-v1", n_envs=3, seed=0)
    # learning_rate 0: the stored states and values stay those of the current parameters
    model = _model(policy, env, use_rnd=use_rnd, learning_rate=0.0, seq_len=seq_len)
    model.learn(48)  # one rollout: 16 steps x 3 envs, with episode starts inside sequences
    buffer = model.rollout_buffer
    assert buffer.episode_starts[1:].any(), "the test needs episode starts inside the rollout"
    train_len = model.seq_len or model.n_steps
    batch = buffer.to_sequences(train_len, None, 2 if use_rnd else 1)
    n_seq, seq_len = batch.mask.shape
    obs = batch.observations.reshape(n_seq * seq_len, -1)
    actions = batch.actions.reshape(-1).long()
    values, log_prob, _, _ = model.policy.evaluate_sequences(obs, actions, batch.initial_state, n_seq, seq_len)
    mask = batch.mask.reshape(-1)
    # train() asks for the real steps only: the same values and log-probs as the padded call's real rows
    real_steps = mask.nonzero().squeeze(1)
    real_values, real_log_prob, _, _ = model.policy.evaluate_sequences(
        obs, actions[real_steps], batch.initial_state, n_seq, seq_len, real_steps
    )
    th.testing.assert_close(real_values, values[mask])
    th.testing.assert_close(real_log_prob, log_prob[mask])
    loss = (values.sum(dim=1) + log_prob)[mask].sum()
    model.policy.zero_grad()
    loss.backward()
    sequence_grads = [p.grad.clone() for p in model.policy.parameters() if p.grad is not None]

    # reference: the rollout replayed one step at a time from the first state, resetting at episode starts
    model.policy.zero_grad()
    raw_obs = th.as_tensor(buffer.observations)  # (n_steps, n_envs, obs_dim)
    raw_actions = th.as_tensor(buffer.actions).long().squeeze(-1)
    starts = th.as_tensor(buffer.episode_starts, dtype=th.float32)
    state = buffer.state_layout.unflatten(th.as_tensor(buffer.hidden_states[0]))
    # truncated BPTT: the sequence path starts each sequence from a stored (detached) state
    sequences = make_sequences(buffer.episode_starts, train_len)
    begins = np.zeros(buffer.buffer_size * 3)
    begins[sequences.start_index] = 1.0
    begins = th.as_tensor(begins.reshape(buffer.buffer_size, 3, 1), dtype=th.float32)
    step_values, step_log_probs = [], []
    for t in range(buffer.buffer_size):
        state = RecurrentState(tuple(x.detach() * begins[t] + x * (1 - begins[t]) for x in state.tensors))
        state = state.reset(starts[t])
        latent_pi, latent_vf, state = model.policy._latents(raw_obs[t], state, 3, 1)
        step_values.append(model.policy.value_net(latent_vf))
        step_log_probs.append(model.policy._get_action_dist_from_latent(latent_pi).log_prob(raw_actions[t]))
    reference_loss = th.stack(step_values).sum() + th.stack(step_log_probs).sum()
    reference_loss.backward()
    reference_grads = [p.grad.clone() for p in model.policy.parameters() if p.grad is not None]

    # the same values as the reference and as the rollout computed while collecting
    sequence_values = values.reshape(n_seq, seq_len, -1)[batch.mask]
    th.testing.assert_close(sequence_values, sequences.pad(th.stack(step_values).detach())[batch.mask], atol=1e-5, rtol=1e-4)
    th.testing.assert_close(sequence_values, batch.old_values[batch.mask], atol=1e-5, rtol=1e-4)
    th.testing.assert_close(loss, reference_loss, atol=1e-3, rtol=1e-5)
    for a, b in zip(sequence_grads, reference_grads, strict=True):
        th.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_two_stream_gae_against_hand_computation():
    # one env, 3 steps, an episode starts at step 2; stream 0 episodic (gamma .9), stream 1 not (gamma .5); lambda 1
    rewards = np.array([[[1.0, 2.0]], [[0.0, 1.0]], [[3.0, 0.0]]])
    values = np.array([[[0.5, 1.0]], [[0.2, 0.4]], [[1.0, 2.0]]])
    starts = np.array([[1.0], [0.0], [1.0]])
    last_values = np.array([[2.0, 4.0]])
    advantages, returns = compute_gae(rewards, values, starts, last_values, np.array([0.0]), [0.9, 0.5], 1.0, [True, False])
    # episodic stream: returns are discounted sums inside each episode, bootstrapped at the end
    ext_returns = [1.0 + 0.9 * 0.0, 0.0, 3.0 + 0.9 * 2.0]
    # non-episodic stream: runs through the episode start
    int_returns = [2.0 + 0.5 * (1.0 + 0.5 * (0.0 + 0.5 * 4.0)), 1.0 + 0.5 * (0.0 + 0.5 * 4.0), 0.0 + 0.5 * 4.0]
    np.testing.assert_allclose(returns[:, 0, 0], ext_returns, atol=1e-6)
    np.testing.assert_allclose(returns[:, 0, 1], int_returns, atol=1e-6)
    np.testing.assert_allclose(advantages, returns - values, atol=1e-6)


def test_rnd_normalizers_and_reward_against_hand_computation():
    normalizer = ClippedNormalizer((2,), clip_range=(-1.0, 1.0))
    batch = np.array([[0.0, 10.0], [2.0, 30.0]])
    normalizer.update(batch)
    reference = RunningMeanStd(shape=(2,))
    reference.update(batch)
    x = th.tensor([[1.0, 20.0], [3.0, 100.0]])
    expected = np.clip((x.numpy() - reference.mean) / np.sqrt(reference.var + 1e-8), -1, 1)
    np.testing.assert_allclose(normalizer.normalize(x).numpy(), expected, atol=1e-4)
    assert normalizer.normalize(x)[1, 1] == 1.0  # clipped

    reward_normalizer = IntrinsicRewardNormalizer(n_envs=1, int_gamma=0.5)
    rewards = np.array([[1.0], [2.0], [4.0]])
    normalized = reward_normalizer(rewards)
    discounted_returns = np.array([1.0, 0.5 * 1.0 + 2.0, 0.5 * 2.5 + 4.0])
    returns_rms = RunningMeanStd(shape=())  # SB3's running statistics, as the normalizer uses
    returns_rms.update(discounted_returns)
    np.testing.assert_allclose(normalized[:, 0], rewards[:, 0] / np.sqrt(returns_rms.var + 1e-8), rtol=1e-5)
    assert returns_rms.var == pytest.approx(discounted_returns.var(), rel=1e-3)

    rnd = RNDNetworks(3, hidden_sizes=(8,), output_dim=4)
    inputs = th.randn(5, 3)
    error = rnd.prediction_error(inputs)
    np.testing.assert_allclose(
        error.detach().numpy(), 0.5 * ((rnd.predictor(inputs) - rnd.target(inputs)) ** 2).sum(1).detach().numpy(), rtol=1e-5
    )
    error.sum().backward()
    assert all(p.grad is None for p in rnd.target.parameters())
    assert all(p.grad is not None for p in rnd.predictor.parameters())


def test_rnd_trains_predictor_not_policy_and_logs(tmp_path):
    model = _model(use_rnd=True, init_norm_steps=16, tensorboard_log=None)
    assert not set(map(id, model.rnd.parameters())) & set(map(id, model.policy.parameters()))
    target_before = [p.clone() for p in model.rnd.networks.target.parameters()]
    predictor_before = [p.clone() for p in model.rnd.networks.predictor.parameters()]
    model.learn(16 * 4)
    assert all(th.equal(a, b) for a, b in zip(target_before, model.rnd.networks.target.parameters(), strict=False))
    assert any(not th.equal(a, b) for a, b in zip(predictor_before, model.rnd.networks.predictor.parameters(), strict=False))
    logged = model.logger.name_to_value
    for key in ("train/rnd_loss", "train/int_value_loss", "train/int_explained_variance", "train/value_loss"):
        assert key in logged, key
    assert model.rollout_buffer.int_rewards.std() > 0


def test_save_load_predicts_the_same_actions_from_the_same_state(tmp_path):
    model = _model("MlpGruPolicy", use_rnd=True, seed=1)
    model.learn(64)
    model.save(tmp_path / "model")
    loaded = RecurrentPPORND.load(tmp_path / "model")
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    state = tuple(
        np.random.default_rng(1).normal(size=s.shape).astype(np.float32) for s in model.policy.initial_state(5).numpy()
    )
    starts = np.array([1, 0, 0, 1, 0])
    a1, s1 = model.predict(obs, state=state, episode_start=starts, deterministic=True)
    a2, s2 = loaded.predict(obs, state=state, episode_start=starts, deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    for x, y in zip(s1, s2, strict=True):
        np.testing.assert_allclose(x, y)
    for a, b in zip(model.rnd.networks.predictor.parameters(), loaded.rnd.networks.predictor.parameters(), strict=False):
        assert th.equal(a, b)


@pytest.mark.parametrize("policy", ALIAS_NAMES)
def test_every_policy_alias(policy):
    if policy.startswith("Cnn"):
        from stable_baselines3.common.envs import FakeImageEnv

        env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=1)
    elif policy.startswith("MultiInput"):
        from stable_baselines3.common.envs import SimpleMultiObsEnv

        env = SimpleMultiObsEnv(random_start=True)
    else:
        env = "CartPoleNoVel-v1"
    model = RecurrentPPORND(
        policy, env, n_steps=8, batch_size=16, n_epochs=1, seq_len=4, policy_kwargs=dict(rnn_hidden_size=8)
    )
    cell = ALIAS_CELLS[policy.removeprefix("Mlp").removeprefix("Cnn").removeprefix("MultiInput").removesuffix("Policy")]
    assert model.policy.recurrent.actor_rnn.cell_type == cell
    model.learn(16)
    # module-level classes: the policy pickles (torch.save of a policy, SubprocVecEnv, Ray)
    assert type(pickle.loads(pickle.dumps(model.policy))) is type(model.policy)


@pytest.mark.parametrize(
    "env",
    [IdentityEnv(4), IdentityEnvBox(), IdentityEnvMultiDiscrete(3), IdentityEnvMultiBinary(3)],
    ids=lambda e: type(e).__name__,
)
def test_action_spaces(env):
    model = RecurrentPPORND("MlpGruPolicy", env, n_steps=8, batch_size=16, n_epochs=1, seq_len=4, policy_kwargs=POLICY_KWARGS)
    model.learn(16)
    action, _state = model.predict(env.observation_space.sample(), deterministic=True)
    assert env.action_space.contains(action if not isinstance(env.action_space, spaces.Discrete) else int(action))


def test_discrete_observations_and_vecnormalize():
    env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=2, seed=0))
    _model(env=env).learn(32)
    _model(env=make_vec_env(IdentityEnv, n_envs=2, env_kwargs=dict(dim=3)), use_rnd=True).learn(32)


def test_sb3_contrib_kwargs_are_aliases():
    model = _model(
        policy_kwargs=dict(
            lstm_hidden_size=24,
            n_lstm_layers=2,
            enable_critic_lstm=True,
            lstm_kwargs=dict(dropout=0.0),
            net_arch=dict(pi=[32], vf=[16]),
            activation_fn=th.nn.ReLU,
            ortho_init=False,
        )
    )
    recurrent = model.policy.recurrent
    assert recurrent.actor_rnn.rnn.hidden_size == 24 and recurrent.actor_rnn.rnn.num_layers == 2
    assert recurrent.critic_rnn is not None
    shared = _model(policy_kwargs=dict(shared_lstm=True, enable_critic_lstm=False))
    assert shared.policy.recurrent.critic_rnn is None and shared.policy.recurrent.shared
    no_critic_memory = _model(policy_kwargs=dict(enable_critic_lstm=False))
    assert no_critic_memory.policy.recurrent.critic_rnn is None and not no_critic_memory.policy.recurrent.shared
    no_critic_memory.learn(16)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(seq_len=0), r"seq_len=0 must be a positive integer"),
        (dict(seq_len=-3), r"seq_len=-3"),
        (dict(batch_size=4, seq_len=8), r"batch_size=4 is smaller than seq_len=8"),
        (dict(policy_kwargs=dict(bidirectional=True)), r"bidirectional=True is not possible"),
        (dict(policy_kwargs=dict(cell_type="Transformer")), r"cell_type='Transformer'.*allowed values"),
        (dict(policy_kwargs=dict(cell_type="GRU")), r"cell_type='GRU' contradicts the policy MlpLstmPolicy"),
        (
            dict(policy_kwargs=dict(shared_lstm=True, enable_critic_lstm=True)),
            r"shared=True.*enable_critic_rnn=True.*contradict",
        ),
        (
            dict(policy_kwargs=dict(lstm_hidden_size=32, rnn_hidden_size=64)),
            r"lstm_hidden_size=32 contradicts rnn_hidden_size=64",
        ),
        (dict(rnd_pred_exp_proportion=0.0), r"rnd_pred_exp_proportion=0.0"),
        (dict(obs_norm_clip_range=(5, -5)), r"obs_norm_clip_range=\(5, -5\)"),
        (dict(int_gamma=1.5), r"int_gamma=1.5 must be a number in \[0, 1\]"),
        (dict(gamma="0.99"), r"gamma='0.99' must be a number in \[0, 1\]"),
        (
            dict(policy_kwargs=dict(shared_lstm=True, enable_critic_lstm=False, share_features_extractor=False)),
            r"shared=True \(shared_lstm\) needs share_features_extractor=True",
        ),
        (dict(policy_kwargs=dict(rnn_hidden_size=0)), r"rnn_hidden_size=0 must be a positive integer"),
        (dict(policy_kwargs=dict(rnn_num_layers=0)), r"rnn_num_layers=0 must be a positive integer"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        _model(**kwargs)


@pytest.mark.slow
# LSTM learns more slowly at this budget (58 with seed 0 at 30k steps), so only GRU is checked here;
# the LSTM's full-budget score belongs to scripts/benchmark.py. One seed is not a check at this budget: float
# rounding alone moves a run a long way (seeds 0-2 scored 83, 39 and 238 with gru_sequence; 92.7 and 142.5 for
# seeds 1-2 with nn.GRU, whose gradients it matches to 1e-6), so the mean of three seeds is.
@pytest.mark.parametrize("policy", ["MlpGruPolicy"])
def test_learns_cartpole_without_velocities(policy):
    th.set_num_threads(1)
    scores = []
    for seed in (0, 1, 2):
        env = make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=seed)
        policy_kwargs = dict(ortho_init=False, activation_fn=th.nn.ReLU, rnn_hidden_size=64)
        model = RecurrentPPORND(policy, env, n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8,
                                learning_rate=1e-3, seq_len=16, use_rnd=False, seed=seed,
                                policy_kwargs=policy_kwargs)  # fmt: skip
        model.learn(30_000)
        eval_env = make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=1000)
        scores.append(evaluate_policy(model, eval_env, n_eval_episodes=20)[0])
    # a memoryless policy stays around 40-50 here (see test_learning.py)
    assert np.mean(scores) > 80, scores


def test_policy_kwargs_of_the_caller_are_not_modified():
    # the benchmark passes one dict to several algorithms: ours must not add its own keys to it
    policy_kwargs = dict(lstm_hidden_size=16, net_arch=dict(pi=[8], vf=[8]))
    _model(policy_kwargs=policy_kwargs)
    assert policy_kwargs == dict(lstm_hidden_size=16, net_arch=dict(pi=[8], vf=[8]))
    from sb3_contrib import RecurrentPPO

    RecurrentPPO("MlpLstmPolicy", "CartPoleNoVel-v1", policy_kwargs=policy_kwargs, n_steps=16, batch_size=16)


def test_predictor_step_with_no_sampled_step_is_skipped():
    # a tiny share of a tiny minibatch can draw no step: that must not raise
    model = _model(use_rnd=True, rnd_pred_exp_proportion=1e-9, init_norm_steps=None)
    model.learn(2 * model.n_steps * model.n_envs)
    assert model.num_timesteps >= 2 * model.n_steps * model.n_envs


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_predict_names_a_state_or_episode_start_of_the_wrong_structure(algo):
    from sb3_recurrent_ext import RecurrentDQN

    model = _model() if algo == "ppo" else RecurrentDQN("MlpLstmPolicy", "CartPoleNoVel-v1", learning_starts=10)
    obs = np.zeros((2, 4), dtype=np.float32)
    _, state = model.predict(obs)  # a state for 2 envs
    one_env = tuple(s[:, :1] for s in state)
    three_envs = tuple(np.concatenate([s, s[:, :1]], axis=1) for s in state)
    for bad in (one_env, three_envs, state[:1], (*state, state[0])):
        with pytest.raises(ValueError, match=r"state has \d array\(s\) of shapes .* expects \d of shapes"):
            model.predict(obs, state=bad)
    with pytest.raises(ValueError, match=r"episode_start has shape \(3,\); .* must be \(2,\)"):
        model.predict(obs, state=state, episode_start=np.zeros(3))
    model.predict(obs, state=state, episode_start=np.zeros(2))  # the right structure passes


@pytest.mark.parametrize(("n_steps", "warm_up_rollouts"), [(16, 4), (50, 1), (128, 1)])
def test_rnd_warm_up_lasts_init_norm_steps_per_env(n_steps, warm_up_rollouts):
    """AINE-DRL's init_norm_steps: the first 50 steps per env only update the normalisers (no intrinsic reward)."""
    rnd = RND(obs_dim=3, state_dim=2, n_envs=2, init_norm_steps=50)
    flags = []
    for _ in range(warm_up_rollouts + 2):
        rollout = rnd.observe_rollout(th.randn(n_steps * 2, 3), th.randn(n_steps * 2, 2), n_steps)
        rewards = rnd.intrinsic_rewards(rollout, n_steps, 2)
        assert (rewards == 0).all() == rollout.warm_up
        flags.append(rollout.warm_up)
    assert flags == [True] * warm_up_rollouts + [False, False]
    # the first rewarded rollout is normalised with statistics that were updated, not (mean 0, var 1)
    assert rnd.obs_normalizer.rms.count > 50


def test_rnd_state_survives_save_and_load(tmp_path):
    """Nets, optimizer moments, the three normalisers and the warm-up counter come back whole."""
    model = _model("MlpGruPolicy", use_rnd=True, seed=1, n_steps=32, init_norm_steps=40)
    model.learn(3 * 32)
    model.save(tmp_path / "model")
    loaded = RecurrentPPORND.load(tmp_path / "model")
    for rnd_a, rnd_b in ((model.rnd, loaded.rnd),):
        assert rnd_b.norm_steps == rnd_a.norm_steps == 96
        for a, b in (
            (rnd_a.obs_normalizer.rms, rnd_b.obs_normalizer.rms),
            (rnd_a.state_normalizer.rms, rnd_b.state_normalizer.rms),
            (rnd_a.reward_normalizer.rms, rnd_b.reward_normalizer.rms),
        ):
            np.testing.assert_array_equal(a.mean, b.mean)
            np.testing.assert_array_equal(a.var, b.var)
            assert a.count == b.count > 1
        np.testing.assert_array_equal(rnd_a.reward_normalizer.discounted_return, rnd_b.reward_normalizer.discounted_return)
    # the same new rollout gives the same intrinsic rewards, and one predictor step (Adam's moments) the same weights
    obs, states = th.randn(32, 4), th.randn(32, model.rollout_buffer.state_dim)
    rollouts = [rnd.observe_rollout(obs, states, 32) for rnd in (model.rnd, loaded.rnd)]
    rewards = [rnd.intrinsic_rewards(r, 32, 1) for rnd, r in zip((model.rnd, loaded.rnd), rollouts, strict=True)]
    np.testing.assert_allclose(rewards[0], rewards[1], rtol=1e-6)
    losses = []
    for rnd, rollout in zip((model.rnd, loaded.rnd), rollouts, strict=True):
        th.manual_seed(0)
        losses.append(rnd.train_step(rollout.inputs, rollout.targets, 1.0, 0.5))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for a, b in zip(model.rnd.parameters(), loaded.rnd.parameters(), strict=True):
        th.testing.assert_close(a, b)


class _NaNAt(gym.Wrapper):
    """Returns NaN in the observation (or the reward) at the given step of the episode."""

    def __init__(self, env, step, what):
        super().__init__(env)
        self.nan_step, self.what, self.t = step, what, 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == self.nan_step:
            if self.what == "observation":
                obs = obs.copy()
                obs[0] = np.nan
            else:
                reward = float("inf")
        return obs, reward, terminated, truncated, info


@pytest.mark.parametrize("what", ["observation", "reward"])
@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_non_finite_observation_or_reward_is_named_before_any_update(algo, what):
    from sb3_recurrent_ext import RecurrentDQN

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, wrapper_class=_NaNAt, wrapper_kwargs=dict(step=5, what=what))
    model = _model(env=env) if algo == "ppo" else RecurrentDQN("MlpGruPolicy", env, learning_starts=1)
    before = [p.detach().clone() for p in model.policy.parameters()]
    with pytest.raises(ValueError, match=rf"env 0 returned a non-finite {what} at timestep 10: .*VecCheckNan"):
        model.learn(200)
    assert all(th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))


@pytest.mark.parametrize("policy_kwargs", [dict(), dict(enable_critic_lstm=False)])
def test_unshared_features_extractor(policy_kwargs):
    """share_features_extractor=False: actor and critic read their own extractor's features, as in SB3."""
    model = _model(policy_kwargs={**POLICY_KWARGS, **policy_kwargs, "share_features_extractor": False}, use_rnd=False)
    policy = model.policy
    assert policy.pi_features_extractor is not policy.vf_features_extractor
    model.learn(64)  # collection and training (the first rollout step crashed before)
    obs = th.as_tensor(np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    actions = th.zeros(3, dtype=th.long)
    state, starts = policy.initial_state(3), th.zeros(3)
    values, log_prob, _, _ = policy.evaluate_sequences(obs, actions, state, 3, 1)
    # the critic reads its own extractor: zeroing that extractor's output changes the values, not the actor
    policy.vf_features_extractor.forward = lambda x: th.zeros(x.shape[0], 4)
    zeroed_values, zeroed_log_prob, _, _ = policy.evaluate_sequences(obs, actions, state, 3, 1)
    th.testing.assert_close(zeroed_log_prob, log_prob)
    assert not th.allclose(zeroed_values, values)
    predicted, next_state = model.predict(obs.numpy(), deterministic=True, episode_start=starts.numpy())
    assert predicted.shape == (3,) and all(s.shape[1] == 3 for s in next_state)


def test_learning_leaves_torch_distribution_checks_on_for_everyone_else():
    """Only our policy's distributions skip torch's argument checks; a callback's own model keeps them."""
    from stable_baselines3.common.callbacks import BaseCallback

    seen: list[bool] = []

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            seen.append(th.distributions.Distribution._validate_args)
            return True

    default = th.distributions.Distribution._validate_args
    model = _model(use_rnd=False)
    model.learn(32, callback=Record())
    assert seen and all(flag == default for flag in seen)
    latent = th.zeros(2, model.policy.mlp_extractor.latent_dim_pi)
    assert model.policy._get_action_dist_from_latent(latent).distribution._validate_args is False


def test_rollout_buffer_add_stores_state_and_both_values():
    from sb3_recurrent_ext.ppo_recurrent_rnd.buffers import RecurrentRNDRolloutBuffer

    buffer = RecurrentRNDRolloutBuffer(
        4, spaces.Box(-1, 1, (3,)), spaces.Discrete(2), n_envs=2, state_layout=StateLayout(1, 1, 5)
    )
    state = RecurrentState((th.arange(10.0).reshape(1, 2, 5),))
    values = th.tensor([[1.0, 10.0], [2.0, 20.0]])  # (n_envs, extrinsic + intrinsic)
    step = (np.zeros((2, 3)), np.zeros((2, 1)), np.zeros(2), np.array([False, True]), values, th.zeros(2))
    buffer.add(*step, hidden_state=state)
    np.testing.assert_array_equal(buffer.hidden_states[0, 0], np.arange(5.0))
    np.testing.assert_array_equal(buffer.hidden_states[0, 1], np.zeros(5))  # the second env starts an episode
    np.testing.assert_array_equal(buffer.values[0], [1.0, 2.0])
    np.testing.assert_array_equal(buffer.int_values[0], [10.0, 20.0])
    with pytest.raises(ValueError, match="hidden_state=None"):
        buffer.add(*step)


def test_time_limit_truncations_bootstrap_with_each_envs_state_in_one_call():
    from sb3_recurrent_ext.ppo_recurrent_rnd.rollout import bootstrap_truncations

    model = _model(env=make_vec_env("CartPoleNoVel-v1", n_envs=3, seed=0), use_rnd=False)
    policy = model.policy
    state = RecurrentState(tuple(th.randn_like(t) for t in policy.initial_state(3).tensors))
    terminal = np.random.default_rng(0).normal(size=(3, *model.observation_space.shape)).astype(np.float32)
    infos = [
        {"terminal_observation": terminal[0], "TimeLimit.truncated": True},
        {"terminal_observation": terminal[1], "TimeLimit.truncated": False},  # terminated: no bootstrap
        {"terminal_observation": terminal[2], "TimeLimit.truncated": True},
    ]
    rewards = np.ones(3, dtype=np.float32)
    bootstrap_truncations(policy, rewards, np.array([True, True, True]), infos, state, gamma=0.9)
    with th.no_grad():  # one env at a time, as SB3's collect_rollouts does
        expected = [
            1 + 0.9 * policy.predict_values(th.as_tensor(terminal[[i]]), state.index(np.array([i])), th.zeros(1))[0, 0].item()
            for i in (0, 2)
        ]
    assert rewards[1] == 1.0
    np.testing.assert_allclose(rewards[[0, 2]], expected, rtol=1e-5)
    assert rewards[0] != rewards[2]  # each env's own state and observation
