"""RecurrentDQN: R2D2-style recurrent Q-learning with stored hidden states, burn-in and sequence replay."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import LinearSchedule, get_parameters_by_name, polyak_update

from sb3_recurrent_ext.common.checks import (
    check_finite_step,
    check_non_negative_number,
    check_policy_class,
    check_positive_int,
    check_positive_number,
    check_unit_interval,
)
from sb3_recurrent_ext.common.masking import env_masks, mask_width, resolve_use_masking
from sb3_recurrent_ext.common.policies import build_recurrent_policy, policy_aliases
from sb3_recurrent_ext.dqn_recurrent import policies
from sb3_recurrent_ext.dqn_recurrent.acting import epsilon_greedy_step, explore
from sb3_recurrent_ext.dqn_recurrent.buffers import (
    SequenceReplayBuffer,
    sequence_replay_buffer_class,
)
from sb3_recurrent_ext.dqn_recurrent.policies import (
    RecurrentDQNPolicy,
)
from sb3_recurrent_ext.dqn_recurrent.targets import LOSSES, sequence_loss

SelfRecurrentDQN = TypeVar("SelfRecurrentDQN", bound="RecurrentDQN")

# loss_fn name (torch.nn class names, as in SLM-Lab's loss_spec) -> elementwise loss


class RecurrentDQN(OffPolicyAlgorithm):
    """Recurrent Q-learning as in R2D2 (Kapturowski et al., 2019), on SB3's off-policy machinery.

    The acting policy carries each env's hidden state; the replay buffer stores it at every step. A learning
    step samples ``batch_size`` sequences (proportionally to priority), replays ``burn_in`` earlier steps
    without gradient to warm the state (from the stored state, or zeros with ``stored_state=False``), then runs
    the online and the target net once each over the ``seq_len + n_step`` steps, and minimises a masked Huber
    loss to n-step double-Q targets with value rescaling, weighted by importance weights. Sequence priorities
    are ``eta * max|td| + (1 - eta) * mean|td|``.

    R2D2's values (Atari): ``seq_len=80``, ``burn_in=40``, ``sequence_stride=40`` (sequences overlap by half),
    ``n_step=5``, ``gamma=0.997``, ``priority_alpha=0.9``, ``priority_beta=0.6``, ``priority_eta=0.9``,
    ``value_rescale_eps=1e-3``, ``learning_rate=1e-4``, ``target_update_interval=2500``. The defaults here keep
    R2D2's proportions at a scale for small memory tasks (CartPole without velocities, popgym): 32-step sequences
    with a 16-step burn-in, overlapping by half, 3-step returns. They were chosen on the memory suite
    (``scripts/benchmark.py --suite popgym``, RepeatFirstEasy at 500k steps, seeds 0-2), where they learn the
    task and the former 16/8 did not (README, "Memory suite").

    :param policy: ``"MlpLstmPolicy"``, ``"MlpGruPolicy"``, ``"CnnLstmPolicy"``, ``"CnnGruPolicy"``,
        ``"MultiInputLstmPolicy"``, ``"MultiInputGruPolicy"`` or a policy class. Discrete actions only.
    :param env: the environment (or its registered id).
    :param learning_rate: learning rate (or schedule).
    :param buffer_size: replay capacity in transitions (all envs together).
    :param learning_starts: steps of random actions before learning starts.
    :param batch_size: sequences per learning step.
    :param tau: target update coefficient (1: hard copy every ``target_update_interval`` steps).
    :param gamma: discount.
    :param train_freq: steps between learning phases (int or ``(n, "step")``).
    :param gradient_steps: learning steps per phase (-1: as many as env steps collected).
    :param target_update_interval: env steps between target updates.
    :param exploration_fraction: share of training over which epsilon decays.
    :param exploration_initial_eps: epsilon at the start.
    :param exploration_final_eps: epsilon at the end (each env draws its own coin).
    :param max_grad_norm: gradient clipping by norm.
    :param seq_len: learning steps per sequence.
    :param burn_in: steps before the sequence replayed without gradient to warm the state (0: none).
    :param sequence_stride: steps between the starts of stored sequences (default ``seq_len // 2``: overlap by half).
    :param n_step: steps of the n-step return.
    :param double_q: the online net picks the bootstrap action, the target net values it.
    :param value_rescale: learn rescaled values ``h(x) = sign(x)(sqrt(|x|+1)-1) + eps*x``.
    :param value_rescale_eps: the ``eps`` of ``h``.
    :param stored_state: start sequences (their burn-in) from the stored state; False starts from zeros (DRQN).
    :param prioritized_replay: sample sequences proportionally to priority; False samples uniformly.
    :param priority_alpha: priority exponent.
    :param priority_beta: importance-sampling exponent.
    :param priority_eta: weight of the max |TD error| in a sequence's priority.
    :param loss_fn: ``"SmoothL1Loss"`` (Huber, default), ``"HuberLoss"`` or ``"MSELoss"`` (SLM's ``loss_spec`` names).
    :param use_masking: act only as the env's ``action_masks()`` allows (sb3-contrib's convention): the greedy
        and the random actions, and the double-Q target's choice of next action; ``None`` (default): on when the
        env offers masks.
    :param stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device: as in SB3.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = policy_aliases(policies)
    policy: RecurrentDQNPolicy
    replay_buffer: SequenceReplayBuffer
    exploration_schedule: Schedule

    def __init__(
        self,
        policy: str | type[RecurrentDQNPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 100_000,
        learning_starts: int = 1000,
        batch_size: int = 32,
        tau: float = 1.0,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 4,
        gradient_steps: int = 1,
        target_update_interval: int = 1000,
        exploration_fraction: float = 0.2,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.02,
        max_grad_norm: float = 10.0,
        seq_len: int = 32,
        burn_in: int = 16,
        sequence_stride: int | None = None,
        n_step: int = 3,
        double_q: bool = True,
        value_rescale: bool = True,
        value_rescale_eps: float = 1e-3,
        stored_state: bool = True,
        prioritized_replay: bool = True,
        priority_alpha: float = 0.9,
        priority_beta: float = 0.6,
        priority_eta: float = 0.9,
        loss_fn: str = "SmoothL1Loss",
        use_masking: bool | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        self.seq_len = check_positive_int(seq_len, "seq_len")
        if isinstance(burn_in, bool) or not isinstance(burn_in, int | np.integer) or burn_in < 0:
            raise ValueError(f"burn_in={burn_in!r} must be a non-negative integer (0: no burn-in)")
        self.burn_in = int(burn_in)
        self.n_step = check_positive_int(n_step, "n_step")
        check_positive_int(batch_size, "batch_size")
        check_positive_int(buffer_size, "buffer_size")
        check_positive_int(target_update_interval, "target_update_interval")
        self.sequence_stride = check_positive_int(
            max(1, seq_len // 2) if sequence_stride is None else sequence_stride, "sequence_stride"
        )
        check_unit_interval(gamma, "gamma")
        check_unit_interval(tau, "tau")
        self.priority_beta = check_unit_interval(priority_beta, "priority_beta")
        self.priority_eta = check_unit_interval(priority_eta, "priority_eta")
        priority_alpha = check_non_negative_number(priority_alpha, "priority_alpha")
        check_positive_number(value_rescale_eps, "value_rescale_eps", "> 0")
        if loss_fn not in LOSSES:
            raise ValueError(f"loss_fn={loss_fn!r} is not available; allowed values: {list(LOSSES)}")
        for name, eps in (
            ("exploration_initial_eps", exploration_initial_eps),
            ("exploration_final_eps", exploration_final_eps),
        ):
            check_unit_interval(eps, name)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=None,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            support_multi_env=True,
            supported_action_spaces=None,
        )
        # without an env (``load(path)`` with no env) the spaces come later, from the saved model
        action_space = getattr(self, "action_space", None)
        if action_space is not None and not isinstance(action_space, spaces.Discrete):
            raise ValueError(
                f"RecurrentDQN supports Discrete action spaces only, got {action_space}; "
                "use RecurrentPPORND for Box, MultiDiscrete or MultiBinary actions"
            )
        self.target_update_interval = target_update_interval
        self.exploration_fraction = exploration_fraction
        self.exploration_initial_eps = exploration_initial_eps
        self.exploration_final_eps = exploration_final_eps
        self.exploration_rate = 0.0
        self.max_grad_norm = max_grad_norm
        self.double_q = double_q
        self.value_rescale = value_rescale
        self.value_rescale_eps = value_rescale_eps
        self.stored_state = stored_state
        self.prioritized_replay = prioritized_replay
        self.priority_alpha = priority_alpha
        self.loss_fn = loss_fn
        self.use_masking = resolve_use_masking(use_masking, self.env, action_space)
        self._n_calls = 0
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        check_policy_class(type(self).__name__, self.policy_class, RecurrentDQNPolicy)
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        state_layout = build_recurrent_policy(self)
        if self.replay_buffer is None:
            buffer_class = sequence_replay_buffer_class(self.observation_space)
            self.replay_buffer = buffer_class(
                self.buffer_size,
                self.observation_space,
                self.action_space,
                device=self.device,
                n_envs=self._replay_columns(),
                seq_len=self.seq_len,
                burn_in=self.burn_in,
                n_step=self.n_step,
                sequence_stride=self.sequence_stride,
                stored_state=self.stored_state,
                state_layout=state_layout,
                prioritized=self.prioritized_replay,
                priority_alpha=self.priority_alpha,
                seed=self.seed,
                mask_width=mask_width(self.action_space) if self.use_masking else 0,
            )
        self._convert_train_freq()
        self.exploration_schedule = LinearSchedule(
            self.exploration_initial_eps, self.exploration_final_eps, self.exploration_fraction
        )
        self._last_state = self.policy.initial_state(self.n_envs)
        self._state_before_step = self._last_state
        self._masks_before_step: np.ndarray | None = None

    def _replay_columns(self) -> int:
        """Envs the replay buffer keeps apart (one column each): this model's envs."""
        return self.n_envs

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> Any:
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if self._last_state.batch_size != self.n_envs:
            self._last_state = self.policy.initial_state(self.n_envs)
        return result

    def _on_step(self) -> None:
        """After every env step: the target update (every ``target_update_interval`` steps) and epsilon."""
        self._n_calls += 1
        if self._n_calls % max(self.target_update_interval // self.replay_buffer.n_envs, 1) == 0:
            polyak_update(self.policy.q_net.parameters(), self.policy.q_net_target.parameters(), self.tau)
            # as SB3's DQN: batch-norm running statistics (of a custom features extractor) are copied, not averaged
            polyak_update(
                get_parameters_by_name(self.policy.q_net, ["running_"]),
                get_parameters_by_name(self.policy.q_net_target, ["running_"]),
                1.0,
            )
        self.exploration_rate = self.exploration_schedule(self._current_progress_remaining)
        self.logger.record("rollout/exploration_rate", self.exploration_rate)

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Epsilon-greedy actions, the state carried through every step (:func:`acting.epsilon_greedy_step`)."""
        assert self._last_obs is not None and self._last_episode_starts is not None and self.env is not None
        masks = env_masks(self.env, n_envs, self.action_space) if self.use_masking else None
        self._masks_before_step = masks
        epsilon = 1.0 if self.num_timesteps < learning_starts else self.exploration_rate
        actions, self._state_before_step, self._last_state = epsilon_greedy_step(
            self.policy, self._last_obs, self._last_state, self._last_episode_starts, masks, epsilon, self.action_space
        )
        return actions, actions

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """SB3's storage, with the state each env was in before the step and whether the step began an episode."""
        check_finite_step(new_obs, reward, self.num_timesteps)
        assert self._last_episode_starts is not None  # set by _setup_learn
        self.replay_buffer.add_recurrent(self._state_before_step, self._last_episode_starts, self._masks_before_step)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        self._last_episode_starts = dones

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Greedy actions (epsilon-greedy unless ``deterministic``) and the next hidden state; with
        ``action_masks`` (``(n_envs, n_actions)``, True where allowed, as sb3-contrib's), allowed actions only."""
        actions, next_state = self.policy.predict(observation, state, episode_start, deterministic, action_masks)
        if not deterministic and self.exploration_rate > 0:
            flat = np.atleast_1d(actions)
            masks = None if action_masks is None else np.asarray(action_masks, dtype=bool).reshape(len(flat), -1)
            actions = explore(flat, self.exploration_rate, masks, self.action_space).reshape(np.shape(actions))
        return actions, next_state

    def train(self, gradient_steps: int, batch_size: int = 32) -> None:
        if self.replay_buffer.n_sequences() == 0:
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses, q_means = [], []
        for _ in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env, beta=self.priority_beta)
            loss, priorities, q_mean = sequence_loss(self, batch)
            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.policy.q_net.parameters(), self.max_grad_norm, foreach=True)
            self.policy.optimizer.step()
            self.replay_buffer.update_priorities(batch.indices, priorities.cpu().numpy())
            losses.append(loss.item())
            q_means.append(q_mean.item())
        self.policy.set_training_mode(False)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))
        self.logger.record("train/q_mean", float(np.mean(q_means)))
        self.logger.record("train/n_sequences", self.replay_buffer.n_sequences())

    def learn(
        self: SelfRecurrentDQN,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "RecurrentDQN",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRecurrentDQN:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_last_state", "_state_before_step"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer"], []
