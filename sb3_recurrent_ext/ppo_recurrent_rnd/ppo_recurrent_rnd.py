"""RecurrentPPORND: recurrent PPO (GRU, LSTM, FFM or MinGRU) with optional Random Network Distillation."""

from __future__ import annotations

import functools
from typing import Any, ClassVar, TypeVar, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_recurrent_ext.common.checks import (
    check_finite_step,
    check_policy_class,
    check_positive_int,
    check_range,
    check_unit_interval,
)
from sb3_recurrent_ext.common.masking import env_masks, mask_width, resolve_use_masking
from sb3_recurrent_ext.common.policies import build_recurrent_policy, policy_aliases
from sb3_recurrent_ext.common.rnd import RND, RolloutRND, flat_observation_dim
from sb3_recurrent_ext.ppo_recurrent_rnd import policies
from sb3_recurrent_ext.ppo_recurrent_rnd.buffers import (
    RecurrentRNDDictRolloutBuffer,
    RecurrentRNDRolloutBuffer,
    SequenceBatch,
)
from sb3_recurrent_ext.ppo_recurrent_rnd.losses import minibatch_losses, record_train_logs
from sb3_recurrent_ext.ppo_recurrent_rnd.policies import RecurrentActorCriticPolicy
from sb3_recurrent_ext.ppo_recurrent_rnd.rollout import add_intrinsic_rewards, bootstrap_truncations

SelfRecurrentPPORND = TypeVar("SelfRecurrentPPORND", bound="RecurrentPPORND")


class RecurrentPPORND(OnPolicyAlgorithm):
    """Recurrent PPO (GRU, LSTM, FFM or MinGRU) with optional Random Network Distillation (AINE-DRL's Recurrent
    PPO RND).

    Rollouts are cut into sequences at every episode start (and, with an int ``seq_len``, every ``seq_len``
    steps) that start from the hidden state stored when their first step was collected. With the default
    ``seq_len=None`` each sequence runs from its episode start, or the rollout start, to its end: full-length
    backpropagation through time, as sb3-contrib's RecurrentPPO. Each minibatch of whole sequences goes through
    the recurrent layer in one call; the heads and losses then see only the real steps.

    With ``use_rnd=True`` a fixed random target network and a trained predictor (separate from the policy) read
    the normalised observation and, optionally, the normalised hidden state; the prediction error, divided by
    the running std of the discounted intrinsic return, is an intrinsic reward with its own value head and
    non-episodic GAE under ``int_gamma``. The advantage is ``ext_adv_coef * A_ext + int_adv_coef * A_int``.

    :param policy: ``"MlpLstmPolicy"``, ``"MlpGruPolicy"``, ``"MlpFfmPolicy"``, ``"MlpMinGruPolicy"``, their ``Cnn``
        and ``MultiInput`` variants, or a policy class.
    :param env: the environment (or its registered id).
    :param learning_rate: learning rate (or schedule) of the policy and of the RND predictor.
    :param n_steps: steps per env per rollout.
    :param batch_size: minibatch size in time steps. With an int ``seq_len`` each minibatch holds
        ``batch_size // seq_len`` sequences; with ``seq_len=None`` the rollout's sequences are shared out over
        ``n_steps * n_envs // batch_size`` minibatches (as many as SB3's PPO makes), whole sequences each.
    :param n_epochs: passes over the rollout.
    :param gamma: discount of the extrinsic stream.
    :param gae_lambda: GAE's lambda (both streams).
    :param clip_range: PPO clipping (or schedule).
    :param clip_range_vf: value clipping (or schedule), ``None`` for none.
    :param normalize_advantage: normalise advantages in each minibatch.
    :param ent_coef: entropy coefficient.
    :param vf_coef: value loss coefficient (both heads).
    :param max_grad_norm: gradient clipping by norm (policy and predictor).
    :param use_sde: generalised state-dependent exploration (Box actions).
    :param sde_sample_freq: resample gSDE noise every n steps (-1: only at rollout start).
    :param target_kl: stop an update early when the approximate KL exceeds it.
    :param seq_len: ``None`` (default): train each sequence whole, from its episode start or the rollout start
        to its end. An int (>= 1) truncates backpropagation through time at that many steps (faster per update,
        blind to longer dependencies: with 16, 1 of 5 seeds passes sb3-contrib's CartPoleNoVel test; whole, 5 of 5;
        benchmarks/contrib_lstm_performance.md).
    :param use_rnd: add the RND intrinsic stream; ``False`` is plain recurrent PPO.
    :param int_gamma: discount of the intrinsic stream.
    :param ext_adv_coef: weight of the extrinsic advantage.
    :param int_adv_coef: weight of the intrinsic advantage.
    :param rnd_pred_exp_proportion: share of each minibatch's steps the predictor trains on.
    :param init_norm_steps: steps per env that only warm up the RND normalisers (no intrinsic reward, no predictor
        update); ``None`` never normalises RND inputs.
    :param obs_norm_clip_range: clip of the normalised observation fed to RND.
    :param hidden_state_norm_clip_range: clip of the normalised hidden state fed to RND.
    :param rnd_use_hidden_state: feed the hidden state to RND besides the observation.
    :param rnd_hidden_sizes: hidden layers of the RND target and predictor.
    :param rnd_output_dim: size of the RND feature vector.
    :param use_masking: choose only the actions the env's ``action_masks()`` allows (sb3-contrib's convention, e.g.
        its ``ActionMasker`` wrapper), during collection and in the loss; ``None`` (default): on when the env offers
        masks. Discrete, MultiDiscrete and MultiBinary actions.
    :param stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device: as in SB3.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = policy_aliases(policies)
    policy: RecurrentActorCriticPolicy
    rollout_buffer: RecurrentRNDRolloutBuffer

    def __init__(
        self,
        policy: str | type[RecurrentActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        batch_size: int = 128,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        target_kl: float | None = None,
        seq_len: int | None = None,
        use_rnd: bool = True,
        int_gamma: float = 0.99,
        ext_adv_coef: float = 1.0,
        int_adv_coef: float = 1.0,
        rnd_pred_exp_proportion: float = 0.25,
        init_norm_steps: int | None = 50,
        obs_norm_clip_range: tuple[float, float] = (-5.0, 5.0),
        hidden_state_norm_clip_range: tuple[float, float] = (-5.0, 5.0),
        rnd_use_hidden_state: bool = True,
        rnd_hidden_sizes: tuple[int, ...] = (256, 256),
        rnd_output_dim: int = 128,
        use_masking: bool | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        batch_size = check_positive_int(batch_size, "batch_size")
        seq_len = None if seq_len is None else check_positive_int(seq_len, "seq_len")
        n_steps, n_epochs = check_positive_int(n_steps, "n_steps"), check_positive_int(n_epochs, "n_epochs")
        if seq_len is not None and batch_size < seq_len:
            raise ValueError(
                f"batch_size={batch_size} is smaller than seq_len={seq_len}: a minibatch holds batch_size // seq_len "
                "whole sequences, so batch_size must be >= seq_len"
            )
        if not 0.0 < rnd_pred_exp_proportion <= 1.0:
            raise ValueError(f"rnd_pred_exp_proportion={rnd_pred_exp_proportion!r} must be in (0, 1]")
        if init_norm_steps is not None and (not isinstance(init_norm_steps, int) or init_norm_steps < 0):
            raise ValueError(f"init_norm_steps={init_norm_steps!r} must be a non-negative integer or None")
        for name, factor in (("gamma", gamma), ("int_gamma", int_gamma), ("gae_lambda", gae_lambda)):
            check_unit_interval(factor, name)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
        )
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self.seq_len = seq_len
        self.use_rnd = use_rnd
        self.int_gamma = int_gamma
        self.ext_adv_coef = ext_adv_coef
        self.int_adv_coef = int_adv_coef
        self.rnd_pred_exp_proportion = rnd_pred_exp_proportion
        self.init_norm_steps = init_norm_steps
        self.obs_norm_clip_range = check_range(obs_norm_clip_range, "obs_norm_clip_range")
        self.hidden_state_norm_clip_range = check_range(hidden_state_norm_clip_range, "hidden_state_norm_clip_range")
        self.rnd_use_hidden_state = rnd_use_hidden_state
        self.rnd_hidden_sizes = tuple(rnd_hidden_sizes)
        self.rnd_output_dim = rnd_output_dim
        self.use_masking = resolve_use_masking(use_masking, self.env, getattr(self, "action_space", None))
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        check_policy_class(type(self).__name__, self.policy_class, RecurrentActorCriticPolicy)
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        # a copy: the dict is the caller's (SB3 keeps a reference), and may be reused for another model
        self.policy_kwargs = {**self.policy_kwargs, "n_value_heads": 2 if self.use_rnd else 1}
        state_layout = build_recurrent_policy(self, use_sde=self.use_sde)
        buffer_class = (
            RecurrentRNDDictRolloutBuffer if isinstance(self.observation_space, spaces.Dict) else RecurrentRNDRolloutBuffer
        )
        self.rollout_buffer = buffer_class(
            self.n_steps,
            self.observation_space,
            self.action_space,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            state_layout=state_layout,
            mask_width=mask_width(self.action_space) if self.use_masking else 0,
        )
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            if isinstance(self.clip_range_vf, float | int):
                assert self.clip_range_vf > 0, "`clip_range_vf` must be positive, pass `None` to deactivate vf clipping"
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)
        self._last_state = self.policy.initial_state(self.n_envs)
        if self.use_rnd:
            self._setup_rnd(state_layout.flat_dim)

    def _setup_rnd(self, state_dim: int) -> None:
        self.rnd = RND(
            flat_observation_dim(self.observation_space),
            state_dim,
            self.n_envs,
            use_hidden_state=self.rnd_use_hidden_state,
            hidden_sizes=self.rnd_hidden_sizes,
            output_dim=self.rnd_output_dim,
            obs_clip_range=self.obs_norm_clip_range,
            state_clip_range=self.hidden_state_norm_clip_range,
            init_norm_steps=self.init_norm_steps,
            int_gamma=self.int_gamma,
            learning_rate=self.lr_schedule(1),
            device=self.device,
        )

    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """Collect a rollout as SB3 does, carrying each env's hidden state and storing it at every step."""
        assert self._last_obs is not None, "No previous observation was provided"
        assert self._last_episode_starts is not None
        assert isinstance(rollout_buffer, RecurrentRNDRolloutBuffer)
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        state = self._last_state
        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            masks = env_masks(env, env.num_envs, self.action_space) if self.use_masking else None
            # inference mode: no autograd bookkeeping at all; these tensors never enter a backward pass
            with th.inference_mode():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)
                episode_starts = th.as_tensor(self._last_episode_starts, dtype=th.float32, device=self.device)
                # the policy zeroes the state where an episode starts; the buffer stores it zeroed the same way
                state_before = state
                action_masks = None if masks is None else th.as_tensor(masks, device=self.device)
                actions, values, log_probs, state = self.policy(obs_tensor, state, episode_starts, action_masks=action_masks)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                if self.policy.squash_output:
                    clipped_actions = self.policy.unscale_action(clipped_actions)
                else:
                    clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)
            step_obs, rewards, dones, infos = env.step(clipped_actions)
            # VecEnvObs also allows tuples, which SB3's algorithms refuse at construction (no Tuple spaces)
            new_obs = cast(np.ndarray | dict[str, np.ndarray], step_obs)
            self.num_timesteps += env.num_envs
            check_finite_step(new_obs, rewards, self.num_timesteps)
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            bootstrap_truncations(self.policy, rewards, dones, infos, state, self.gamma)
            rollout_buffer.add(
                self._last_obs,
                actions,
                rewards,
                self._last_episode_starts,
                values,
                log_probs,
                hidden_state=state_before,
                action_masks=masks,
            )
            self._last_obs = new_obs
            self._last_episode_starts = dones
        self._last_state = state
        with th.no_grad():
            last_values = self.policy.predict_values(
                obs_as_tensor(new_obs, self.device),
                state,
                th.as_tensor(dones, dtype=th.float32, device=self.device),
            )
        self._rollout_rnd: RolloutRND | None = None
        if self.use_rnd:
            self._rollout_rnd = add_intrinsic_rewards(self.rnd, rollout_buffer, self.observation_space)
            self.logger.record("rollout/int_reward_mean", float(rollout_buffer.int_rewards.mean()))
        rollout_buffer.compute_two_stream_returns(
            last_values, dones, self.int_gamma, self.ext_adv_coef, self.int_adv_coef, self.use_rnd
        )
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def train(self) -> None:
        """PPO update over padded sequences: one recurrent call per minibatch, losses over the real steps."""
        self.policy.set_training_mode(True)
        optimizers = [self.policy.optimizer] + ([self.rnd.optimizer] if self.use_rnd else [])
        self._update_learning_rate(optimizers)
        progress = self._current_progress_remaining
        clip_range = _scheduled(self.clip_range, progress)
        clip_range_vf = None if self.clip_range_vf is None else _scheduled(self.clip_range_vf, progress)
        n_streams = 2 if self.use_rnd else 1
        rnd_rollout = self._rollout_rnd
        rollout = self.rollout_buffer.to_sequences(
            self.seq_len or self.n_steps,
            None if rnd_rollout is None else rnd_rollout.inputs,
            n_streams,
            None if rnd_rollout is None else rnd_rollout.targets,
        )
        train_rnd = rnd_rollout is not None and not rnd_rollout.warm_up

        # listed once: walking the module tree for every gradient step costs more than clipping
        policy_parameters = list(self.policy.parameters())
        logs: dict[str, list[float]] = {key: [] for key in ("pg", "ext_v", "int_v", "ent", "kl", "clip", "rnd")}
        continue_training = True
        for _epoch in range(self.n_epochs):
            for batch in rollout.minibatches(self._sequences_per_minibatch(rollout.n_seq)):
                losses = minibatch_losses(
                    self.policy, batch, clip_range, clip_range_vf, self.ent_coef, self.vf_coef, self.normalize_advantage
                )
                loss, approx_kl = losses["loss"], losses["kl"]
                for key in logs.keys() & losses.keys():
                    logs[key].append(losses[key].item())
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {_epoch} due to reaching max kl: {approx_kl:.2f}")
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(policy_parameters, self.max_grad_norm, foreach=True)
                self.policy.optimizer.step()
                if train_rnd:
                    logs["rnd"].append(self._train_rnd(batch))
            self._n_updates += 1
            if not continue_training:
                break
        record_train_logs(self, logs, rollout, clip_range, clip_range_vf)

    def _train_rnd(self, batch: SequenceBatch) -> float:
        """One predictor step on a share of the minibatch's real steps; its loss."""
        assert batch.rnd_inputs is not None and batch.rnd_targets is not None
        inputs, targets = batch.rnd_inputs[batch.mask], batch.rnd_targets[batch.mask]
        return self.rnd.train_step(inputs, targets, self.rnd_pred_exp_proportion, self.max_grad_norm)

    def _sequences_per_minibatch(self, n_seq: int) -> int:
        """``batch_size // seq_len``; for whole sequences, the share of ``n_seq`` that SB3's minibatch count gives."""
        if self.seq_len is not None:
            return max(1, self.batch_size // self.seq_len)
        n_minibatches = max(1, self.n_steps * self.n_envs // self.batch_size)
        return max(1, n_seq // n_minibatches)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """SB3's ``predict``, plus sb3-contrib's ``action_masks`` (``(n_envs, mask_width)``, True where allowed)."""
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)

    def learn(
        self: SelfRecurrentPPORND,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "RecurrentPPORND",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRecurrentPPORND:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "_last_state",
            "_rollout_rnd",
            "rnd",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer"]
        if self.use_rnd:
            state_dicts.append("rnd")  # nets, optimizer, normalisers and warm-up counter: RND.state_dict()
        return state_dicts, []


class RecurrentPPO(RecurrentPPORND):
    """:class:`RecurrentPPORND` with ``use_rnd=False`` by default: plain recurrent PPO, as sb3-contrib's
    ``RecurrentPPO`` (switch by changing the import). ``--algo recurrent_ppo`` runs it, so a zoo entry that does
    not mention ``use_rnd`` gets no RND."""

    # the parent's signature with another default, so inspect (and --enqueue-config) see every argument
    __init__ = functools.partialmethod(RecurrentPPORND.__init__, use_rnd=False)


def _scheduled(value: float | Schedule, progress_remaining: float) -> float:
    """A hyperparameter's value now (``_setup_model`` turns the given floats into schedules)."""
    return value(progress_remaining) if callable(value) else value
