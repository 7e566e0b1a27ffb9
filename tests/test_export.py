"""Exported acting steps (ONNX through onnxruntime, TorchScript) against model.predict over real episodes."""

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv

from sb3_recurrent_ext import RecurrentDQN, RecurrentPPORND
from sb3_recurrent_ext.export import initial_state, to_onnx, to_torchscript

ort = pytest.importorskip("onnxruntime", reason="the [export] extra (onnx, onnxruntime) is not installed")


def _model(algo: str, policy: str, env):
    if algo == "ppo":
        return RecurrentPPORND(
            policy, env, n_steps=16, batch_size=32, use_rnd=False, seed=0, policy_kwargs=dict(rnn_hidden_size=16)
        )
    return RecurrentDQN(
        policy, env, buffer_size=200, learning_starts=50, seq_len=4, seed=0, policy_kwargs=dict(rnn_hidden_size=16)
    )


def _episodes(model, env, steps: int, act):
    """Run ``steps`` steps of ``env`` with predict's actions; call ``act(obs, episode_start)`` alongside and
    return the largest state difference and the number of differing actions."""
    obs, state, starts = env.reset(), None, np.ones(env.num_envs, dtype=np.float32)
    max_state_diff, action_mismatches, resets = 0.0, 0, 0
    for _ in range(steps):
        actions, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
        exported_actions, exported_state = act(obs, starts)
        action_mismatches += int((np.asarray(exported_actions).reshape(actions.shape) != actions).sum())
        max_state_diff = max(max_state_diff, *(float(np.abs(a - b).max()) for a, b in zip(exported_state, state, strict=True)))
        obs, _, dones, _ = env.step(actions)
        starts = dones.astype(np.float32)
        resets += int(dones.sum())
    assert resets > 0  # the episodes ended and restarted along the way
    return max_state_diff, action_mismatches


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
@pytest.mark.parametrize("cell", ["Lstm", "Gru", "Ffm", "MinGru"])
def test_onnx_matches_predict_over_episodes(tmp_path, algo, cell):
    th.manual_seed(0)
    env = make_vec_env("CartPoleNoVel-v1", n_envs=2, seed=0)
    model = _model(algo, f"Mlp{cell}Policy", env)
    session = ort.InferenceSession(str(to_onnx(model, tmp_path / "policy.onnx")))
    state_names = [i.name for i in session.get_inputs()][2:]
    exported_state = initial_state(model, env.num_envs)

    def act(obs, starts):
        nonlocal exported_state
        feed = {"obs": obs.astype(np.float32), "episode_start": starts, **dict(zip(state_names, exported_state, strict=True))}
        action, *exported_state = session.run(None, feed)
        return action, exported_state

    max_state_diff, mismatches = _episodes(model, env, 1000, act)
    assert mismatches == 0 and max_state_diff < 1e-5, (mismatches, max_state_diff)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_cnn_policies_export(tmp_path, algo):
    env = make_vec_env(lambda: FakeImageEnv(screen_height=36, screen_width=36), n_envs=2, seed=0)
    model = _model(algo, "CnnGruPolicy", env)
    env = model.get_env()  # images channel-first (VecTransposeImage), as the graph takes them
    traced = th.jit.load(str(to_torchscript(model, tmp_path / "policy.pt")))
    session = ort.InferenceSession(str(to_onnx(model, tmp_path / "policy.onnx")))
    onnx_state = torch_state = initial_state(model, env.num_envs)

    def act(obs, starts):
        nonlocal onnx_state, torch_state
        action, *onnx_state = session.run(
            None,
            {
                "obs": obs,
                "episode_start": starts,
                "state_0": onnx_state[0],
                **({"state_1": onnx_state[1]} if len(onnx_state) > 1 else {}),
            },
        )
        with th.no_grad():
            torch_action, *torch_tensors = traced(th.as_tensor(obs), th.as_tensor(starts), *map(th.as_tensor, torch_state))
        torch_state = [t.numpy() for t in torch_tensors]
        assert np.array_equal(torch_action.numpy(), action)
        return action, onnx_state

    max_state_diff, mismatches = _episodes(model, env, 1000, act)
    assert mismatches == 0 and max_state_diff < 1e-5, (mismatches, max_state_diff)


def test_torchscript_takes_another_number_of_envs(tmp_path):
    env = make_vec_env("CartPoleNoVel-v1", n_envs=3, seed=1)
    model = _model("ppo", "MlpLstmPolicy", make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=0))
    model.learn(64)  # a trained policy holds tensors from its last update; exporting must not copy or change it
    traced = th.jit.load(str(to_torchscript(model, tmp_path / "policy.pt")))
    torch_state = initial_state(model, env.num_envs)

    def act(obs, starts):
        nonlocal torch_state
        with th.no_grad():
            action, *tensors = traced(th.as_tensor(obs), th.as_tensor(starts), *map(th.as_tensor, torch_state))
        torch_state = [t.numpy() for t in tensors]
        return action.numpy(), torch_state

    max_state_diff, mismatches = _episodes(model, env, 300, act)
    assert mismatches == 0 and max_state_diff < 1e-5, (mismatches, max_state_diff)


def test_models_that_are_not_ours_are_refused(tmp_path):
    with pytest.raises(TypeError, match="only this package's recurrent policies export"):
        to_onnx(PPO("MlpPolicy", "CartPole-v1", n_steps=16), tmp_path / "policy.onnx")
