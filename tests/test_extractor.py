"""The windowed RecurrentNet as a features extractor for plain SB3 algorithms."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecFrameStack

from sb3_recurrent_ext import RecurrentNetExtractor

SEQ_LEN = 4
# small budgets per algorithm, so each trains within the test
ALGO_KWARGS = {
    PPO: dict(n_steps=16, batch_size=32),
    A2C: dict(n_steps=16),
    DQN: dict(learning_starts=0, buffer_size=1000),
}


def _policy_kwargs(**extractor_kwargs):
    return dict(
        features_extractor_class=RecurrentNetExtractor,
        features_extractor_kwargs=dict(seq_len=SEQ_LEN, rnn_hidden_size=16, **extractor_kwargs),
        net_arch=[32],
    )


def test_reads_frames_oldest_first_as_a_sequence():
    frame_dim = 3
    extractor = RecurrentNetExtractor(spaces.Box(-1, 1, (SEQ_LEN * frame_dim,)), seq_len=SEQ_LEN, rnn_hidden_size=5)
    obs = th.randn(2, SEQ_LEN * frame_dim)
    frames = obs.reshape(2, SEQ_LEN, frame_dim)
    out, _ = extractor.net(frames)
    th.testing.assert_close(extractor(obs), out[:, -1])
    # the same frames in another order give other features: the window is read in time order
    shuffled = frames[:, [3, 2, 1, 0]].reshape(2, -1)
    assert not th.allclose(extractor(shuffled), extractor(obs))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("algo", [PPO, A2C, DQN])
def test_trains_with_discrete_action_algorithms(algo, bidirectional):
    env = VecFrameStack(make_vec_env("CartPoleNoVel-v1", n_envs=2, seed=0), n_stack=SEQ_LEN)
    model = algo(
        "MlpPolicy",
        env,
        policy_kwargs=_policy_kwargs(bidirectional=bidirectional, cell_type="LSTM"),
        seed=0,
        **ALGO_KWARGS[algo],
    )
    extractor = model.policy.q_net.features_extractor if algo is DQN else model.policy.features_extractor
    assert isinstance(extractor, RecurrentNetExtractor)
    assert extractor.features_dim == (32 if bidirectional else 16)
    before = [p.detach().clone() for p in extractor.net.rnn.parameters()]
    model.learn(256)
    assert any(not th.equal(a, b) for a, b in zip(before, extractor.net.rnn.parameters(), strict=False)), (
        "the recurrent layer did not train"
    )
    actions, _ = model.predict(env.reset(), deterministic=True)
    assert actions.shape == (2,)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_trains_with_sac(bidirectional):
    env = VecFrameStack(make_vec_env("PendulumNoVel-v1", n_envs=1, seed=0), n_stack=SEQ_LEN)
    model = SAC(
        "MlpPolicy", env, policy_kwargs=_policy_kwargs(bidirectional=bidirectional), learning_starts=32, buffer_size=500
    )
    model.learn(96)
    assert isinstance(model.actor.features_extractor, RecurrentNetExtractor)


def test_bad_observation_spaces():
    with pytest.raises(ValueError, match="seq_len=4 does not divide the stacked observation size 6"):
        RecurrentNetExtractor(spaces.Box(-1, 1, (6,)), seq_len=4)
    with pytest.raises(ValueError, match="flat Box observation"):
        RecurrentNetExtractor(spaces.Discrete(3), seq_len=1)
    with pytest.raises(ValueError, match="seq_len=0"):
        RecurrentNetExtractor(spaces.Box(-1, 1, (6,)), seq_len=0)


def test_frame_stacked_obs_layout_matches_vecframestack():
    """Guards the extractor's assumption about VecFrameStack's layout (frames on the last axis, oldest first)."""
    env = VecFrameStack(make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=3), n_stack=SEQ_LEN)
    first = env.reset()
    second, *_ = env.step(np.array([0]))
    frames_1 = first.reshape(SEQ_LEN, -1)
    frames_2 = second.reshape(SEQ_LEN, -1)
    np.testing.assert_array_equal(frames_2[:-1], frames_1[1:])  # the window slid by one frame
    assert (frames_1[:-1] == 0).all()  # before the first frame: zero padding
