"""FFM and minGRU: the parallel scan against a step loop, resets inside sequences, save/load and bad arguments."""

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO

from sb3_recurrent_ext import RecurrentDQN, RecurrentNet, RecurrentNetExtractor, RecurrentPPORND, RecurrentState
from sb3_recurrent_ext.common.recurrent.cells import linear_scan

PARALLEL = ["FFM", "MinGRU"]


def _loop(a: th.Tensor, b: th.Tensor, initial: th.Tensor) -> th.Tensor:
    state, states = initial, []
    for t in range(b.shape[1]):
        state = (a if a.dim() < b.dim() else a[:, t]) * state + b[:, t]
        states.append(state)
    return th.stack(states, dim=1)


@pytest.mark.parametrize("dtype", [th.float64, th.complex128])
@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("time", [1, 2, 7, 16, 33])
def test_linear_scan_equals_the_recurrence(dtype, constant, time):
    generator = th.Generator().manual_seed(time)
    shape = (3, time, 5)
    a = th.rand(shape[2:] if constant else shape, generator=generator, dtype=th.float64).to(dtype)
    if not constant:
        a[:, time // 2] = 0  # a reset: nothing of the past carries over
    b = th.randn(shape, generator=generator, dtype=th.float64).to(dtype)
    initial = th.randn((3, 5), generator=generator, dtype=th.float64).to(dtype)
    th.testing.assert_close(linear_scan(a, b, initial), _loop(a, b, initial))


@pytest.mark.parametrize("dtype", [th.float64, th.complex128])
@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("time", [1, 2, 7, 33])
def test_linear_scan_gradients_equal_the_recurrence(dtype, constant, time):
    """The hand-written backward pass against autograd through the step loop (complex: PyTorch's conjugates)."""
    generator = th.Generator().manual_seed(time)
    a = th.rand((5,) if constant else (3, time, 5), generator=generator, dtype=th.float64).to(dtype)
    if not constant:
        a[:, time // 2] = 0
    b = th.randn((3, time, 5), generator=generator, dtype=th.float64).to(dtype)
    initial = th.randn((3, 5), generator=generator, dtype=th.float64).to(dtype)
    inputs = [t.requires_grad_() for t in (a, b, initial)]
    weights = th.randn((3, time, 5), generator=generator, dtype=th.float64).to(dtype)
    grads = th.autograd.grad((linear_scan(*inputs) * weights).abs().sum(), inputs)
    reference = th.autograd.grad((_loop(*inputs) * weights).abs().sum(), inputs)
    for grad, reference_grad in zip(grads, reference, strict=True):
        th.testing.assert_close(grad, reference_grad)
    assert th.autograd.gradcheck(linear_scan, inputs)


def _random_state(net: RecurrentNet, batch: int) -> RecurrentState:
    return RecurrentState(tuple(th.randn_like(t) for t in net.initial_state(batch).tensors))


@pytest.mark.parametrize("cell_type", PARALLEL)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_sequence_call_equals_step_by_step_with_episode_starts(cell_type, num_layers):
    """Outputs, final state and gradients of one call equal a step loop that resets the state at episode starts."""
    th.manual_seed(0)
    net = RecurrentNet(5, cell_type=cell_type, fc_hid_layers=[8], rnn_hidden_size=16, rnn_num_layers=num_layers).double()
    x = th.randn(3, 37, 5, dtype=th.float64)
    starts = th.rand(3, 37) < 0.1
    starts[0, 20] = True  # at least one start inside a sequence
    initial = RecurrentState(tuple(t.double() for t in _random_state(net, 3).tensors))
    output, final = net(x, initial, episode_starts=starts)
    state, outputs = initial, []
    for t in range(37):
        step_output, state = net.step(x[:, t], state.reset(starts[:, t]))
        outputs.append(step_output)
    reference = th.stack(outputs, dim=1)
    th.testing.assert_close(output, reference)
    th.testing.assert_close(final.h, state.h)
    params = list(net.parameters())
    grads = th.autograd.grad(output.square().sum() + final.h.sum(), params)
    reference_grads = th.autograd.grad(reference.square().sum() + state.h.sum(), params)
    for grad, reference_grad in zip(grads, reference_grads, strict=True):
        th.testing.assert_close(grad, reference_grad)


@pytest.mark.parametrize("cell_type", PARALLEL)
def test_lengths_give_the_state_after_the_last_real_step(cell_type):
    th.manual_seed(0)
    net = RecurrentNet(4, cell_type=cell_type, rnn_hidden_size=8)
    x, initial = th.randn(3, 10, 4), _random_state(net, 3)
    output, final = net(x, initial, lengths=th.tensor([10, 4, 0]))
    state = initial.index(slice(1, 2))
    for t in range(4):
        _, state = net.step(x[1:2, t], state)
    th.testing.assert_close(final.h[:, 1:2], state.h)
    th.testing.assert_close(final.h[:, 2], initial.h[:, 2])  # nothing to run: the given state
    assert output[1, 4:].abs().sum() == 0 and output[2].abs().sum() == 0
    assert net.state_size == final.h.shape[2]


def test_ffm_state_is_its_complex_trace():
    net = RecurrentNet(4, cell_type="ffm", rnn_hidden_size=8, rnn_kwargs=dict(memory_size=6, context_size=3))
    assert net.cell_type == "FFM" and net.output_dim == 8
    assert net.initial_state(2).h.shape == (1, 2, 2 * 6 * 3)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(cell_type="FFN"), r"cell_type='FFN'.*did you mean 'ffm'"),
        (dict(cell_type="FFM", bidirectional=True), r"bidirectional=True is not possible with cell_type='FFM'"),
        (dict(cell_type="FFM", rnn_kwargs=dict(memory_size=0)), r"memory_size=0 must be a positive integer"),
        (dict(cell_type="FFM", rnn_kwargs=dict(max_period=0)), r"max_period=0 must be an integer >= min_period=1"),
        (dict(cell_type="MinGRU", rnn_kwargs=dict(dropout=0.1)), r"rnn_kwargs=\{'dropout': 0.1\} do not fit"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        RecurrentNet(4, **kwargs)


def test_torch_cells_refuse_episode_starts_inside_a_sequence():
    net = RecurrentNet(4, cell_type="GRU", rnn_hidden_size=8)
    with pytest.raises(ValueError, match=r"episode_starts inside a sequence need a cell .*not cell_type='GRU'"):
        net(th.randn(2, 5, 4), episode_starts=th.zeros(2, 5, dtype=th.bool))


@pytest.mark.parametrize("cell", ["Ffm", "MinGru"])
@pytest.mark.parametrize("algo", [RecurrentPPORND, RecurrentDQN])
def test_save_load_predicts_the_same(tmp_path, algo, cell):
    kwargs = dict(n_steps=16, batch_size=32, n_epochs=1) if algo is RecurrentPPORND else dict(learning_starts=50)
    model = algo(f"Mlp{cell}Policy", "CartPoleNoVel-v1", policy_kwargs=dict(rnn_hidden_size=8), seed=0, **kwargs)
    model.learn(100)
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model")
    observations = np.random.default_rng(0).normal(size=(6, 3, 4)).astype(np.float32)
    state_a = state_b = None
    for t, obs in enumerate(observations):
        starts = np.array([t == 0, t == 3, False])
        actions_a, state_a = model.predict(obs, state_a, starts, deterministic=True)
        actions_b, state_b = loaded.predict(obs, state_b, starts, deterministic=True)
        np.testing.assert_array_equal(actions_a, actions_b)
        for a, b in zip(state_a, state_b, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_windowed_extractor_takes_the_new_cells():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    env = VecFrameStack(make_vec_env("CartPoleNoVel-v1", n_envs=2, seed=0), 4)
    kwargs = dict(features_extractor_class=RecurrentNetExtractor, features_extractor_kwargs=dict(seq_len=4, cell_type="FFM"))
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=kwargs)
    model.learn(32)
    assert model.policy.features_extractor.net.cell_type == "FFM"


def test_whole_sequences_make_as_many_minibatches_as_ppo():
    """seq_len=None: each rollout's sequences are shared over n_steps * n_envs // batch_size minibatches."""
    model = RecurrentPPORND("MlpGruPolicy", "CartPoleNoVel-v1", n_steps=64, batch_size=16, n_epochs=1, use_rnd=False)
    assert model.seq_len is None
    model.learn(64)
    rollout = model.rollout_buffer.to_sequences(model.n_steps, None, 1)
    batches = list(rollout.minibatches(model._sequences_per_minibatch(rollout.n_seq)))
    assert len(batches) == min(64 // 16, rollout.n_seq)
    assert sum(batch.n_seq for batch in batches) == rollout.n_seq
    # each minibatch is cut to its longest sequence, every sequence kept whole
    for batch in batches:
        assert batch.mask.shape[1] == int(batch.mask.sum(dim=1).max())
