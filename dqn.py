"""Deep Q-Network (DQN): Q-learning with a replay buffer and a target network.

A network q̂_w(s, ·) gives one Q-value per discrete action. The agent acts ε-greedily, stores every
transition in a replay buffer, and regresses q̂_w onto one-step TD targets computed with a frozen copy
q̂_w' of itself (Mnih et al. 2013, "Playing Atari with Deep Reinforcement Learning"; Mnih et al. 2015,
"Human-level control through deep reinforcement learning"). `--double-q` uses the Double DQN target
(van Hasselt et al. 2016, "Deep Reinforcement Learning with Double Q-learning").

The update, in the lecture's notation, for a mini-batch i = 1..B drawn uniformly from the buffer:

    y_i = R_i + γ (1 − terminated_i) max_a' q̂_w'(S_{i+1}, a')                    (DQN target)
    y_i = R_i + γ (1 − terminated_i) q̂_w'(S_{i+1}, argmax_a' q̂_w(S_{i+1}, a'))  (Double DQN target)
    L(w) = 1/B Σ_i (y_i − q̂_w(S_i, A_i))²        (or the Huber loss of the same error, `--loss huber`)
    w ← w − α ∇_w L(w)                            (Adam, gradient norm clipped to `max_grad_norm`)
    w' ← τ w + (1 − τ) w'  every `target_network_frequency` steps (τ = 1: the hard copy of DQN)

Where each piece lives:
    q̂_w, q̂_w'           `QNetwork` (`q_network`, `target_q_network` in `train`)
    replay buffer D       `ReplayBuffer`: preallocated circular arrays of (S, A, R, S', terminated)
    ε-greedy, ε schedule  `linear_schedule`, `epsilon_greedy_action`
    y_i                   `td_target`
    L(w)                  `q_learning_loss`
    w ← w − α ∇L(w)       `gradient_step`
    w' update             `update_target_network`

The remedies the lecture lists for Q-learning's instabilities are each a flag: the replay buffer
(correlated samples), the target network (a moving target), `--clip-reward` (reward scale),
`--double-q` (maximisation bias), `--loss huber` and `--max-grad-norm` (large TD errors).

Termination is not truncation: the target is cut only where the episode *terminated*. Where it was
*truncated* by a time limit, S_{i+1} is the real final observation and the target bootstraps from it.
The script steps a single environment and resets it by hand, so a stored transition never crosses a
reset and no autoreset mode is involved. Observations pass through Gymnasium's FlattenObservation, so
Discrete and Tuple observation spaces (FrozenLake-v1, Blackjack-v1) arrive one-hot encoded.

Examples:
    python dqn.py                                   # CartPole-v1, the defaults
    python dqn.py --env-id Acrobot-v1 --total-timesteps 100000 --seed 3
    python dqn.py --double-q --save-model           # the Double DQN target; keep the trained network
"""

import contextlib
import importlib.util
import itertools
import json
import math
import numbers
import os
import random
import sys
import tempfile
import time
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import BinaryIO, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
import tyro
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    env_id: str = "CartPole-v1"
    """id of a registered Gymnasium environment with a Discrete action space"""
    total_timesteps: int = 50_000
    """environment steps to train for"""
    gamma: float = 0.99
    """discount factor γ"""
    learning_rate: float = 1e-3
    """Adam learning rate α of the Q-network"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the Q-network's hidden layers (none: linear)"""
    buffer_size: int = 50_000
    """capacity of the replay buffer, in transitions"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_starts: int = 1_000
    """environment steps before the first gradient step (the buffer fills with ε-greedy data)"""
    train_frequency: int = 4
    """environment steps between training steps"""
    gradient_steps: int = 1
    """gradient steps per training step"""
    tau: float = 1.0
    """target update coefficient τ, applied every target_network_frequency steps: 1 is a hard copy, < 1 Polyak"""
    target_network_frequency: int = 100
    """environment steps between target network updates (each hard copy is one Bellman backup)"""
    start_e: float = 1.0
    """ε at the start of the schedule"""
    end_e: float = 0.05
    """ε at the end of the schedule, kept from then on"""
    exploration_fraction: float = 0.25
    """fraction of total_timesteps over which ε decays linearly from start_e to end_e"""
    loss: Literal["mse", "huber"] = "mse"
    """regression loss on the TD error: mean squared (as on the slide) or Huber"""
    max_grad_norm: float = 10.0
    """clip the gradient's global norm to this (0 turns clipping off)"""
    clip_reward: bool = False
    """clip rewards to [-1, 1] before they enter the buffer"""
    double_q: bool = False
    """use the Double DQN target: argmax by the online network, value by the target network"""

    # the run: where it logs, how it is seeded, where it runs, what it keeps
    exp_name: str = os.path.basename(__file__).removesuffix(".py")
    """name of this experiment, used in the run directory's name"""
    seed: int = 1
    """seed of random, numpy, torch and the environment"""
    device: str = "auto"
    """torch device: auto (cuda if available, else cpu), cpu, cuda or cuda:N"""
    torch_deterministic: bool = True
    """torch.use_deterministic_algorithms during the run, so GPU runs repeat too (CPU runs repeat either way)"""
    log_dir: str = "runs"
    """directory under which each run writes its TensorBoard logs (and model)"""
    save_model: bool = False
    """save the Q-network and the args to <run_dir>/<exp_name>.pt at the end"""
    load_model: str | None = None
    """a file written by --save-model to start from (its networks and optimiser state); --total-timesteps 0 only evaluates it"""
    capture_video: bool = False
    """record the final evaluation episodes as MP4 files in <run_dir>/videos (needs: pip install moviepy pygame)"""
    eval_episodes: int = 10
    """greedy evaluation episodes after training (0 turns the evaluation off)"""
    torch_threads: int = 1
    """torch CPU threads (small networks run fastest on one; 0 keeps torch's default)"""


# ----------------------------------------------------------------------------------------- networks
class QNetwork(nn.Module):
    """q̂_w: observation [B, obs_dim] → one Q-value per action [B, n_actions]."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)


# ------------------------------------------------------------------------------------ replay buffer
class Batch(NamedTuple):
    obs: Tensor  # [B, obs_dim]  S_i
    actions: Tensor  # [B] int64 A_i (index into 0..n_actions-1)
    rewards: Tensor  # [B]  R_i
    next_obs: Tensor  # [B, obs_dim]  S_{i+1}, the real next observation (never a reset one)
    terminated: Tensor  # [B]  1.0 where S_{i+1} is terminal, 0.0 otherwise (truncated included)


class ReplayBuffer:
    """Replay buffer D: preallocated circular arrays; the oldest transition is overwritten first."""

    def __init__(self, capacity: int, obs_dim: int, rng: np.random.Generator) -> None:
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity = capacity
        self.rng = rng
        self.position = 0  # the slot the next transition goes to
        self.size = 0  # how many slots hold a transition

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        i = self.position
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, device: torch.device) -> Batch:
        """A uniform mini-batch (with replacement) from the slots written so far."""
        idx = self.rng.integers(0, self.size, size=batch_size)
        arrays = (self.obs, self.actions, self.rewards, self.next_obs, self.terminated)
        return Batch(*(torch.from_numpy(a[idx]).to(device) for a in arrays))


# --------------------------------------------------------------------------------- the algorithm
def linear_schedule(start: float, end: float, duration: float, t: int) -> float:
    """ε_t: linear from `start` at t = 0 to `end` at t = duration, then constant."""
    if duration <= 0:
        return end
    return start + (end - start) * min(t / duration, 1.0)


def epsilon_greedy_action(
    q_network: QNetwork, obs: np.ndarray, epsilon: float, env: gym.Env, rng: np.random.Generator, device: torch.device
) -> int:
    """With probability ε a uniformly random action, else argmax_a q̂_w(s, a); returns an action index."""
    if rng.random() < epsilon:
        return int(env.action_space.sample()) - int(env.action_space.start)
    with torch.no_grad():
        q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))  # [1, n_actions]
    return int(q_values.argmax())


def td_target(
    rewards: Tensor,
    terminated: Tensor,
    next_q_target: Tensor,
    gamma: float,
    next_q_online: Tensor | None = None,
) -> Tensor:
    """y_i = R_i + γ (1 − terminated_i) q̂_w'(S_{i+1}, a*_i), [B], from `next_q_target` = q̂_w'(S_{i+1}, ·) [B, n_actions].

    a*_i = argmax_a' q̂_w'(S_{i+1}, a') (DQN), or argmax_a' q̂_w(S_{i+1}, a') when `next_q_online` = q̂_w(S_{i+1}, ·)
    is given (Double DQN). Only termination cuts the bootstrap; truncation does not."""
    if next_q_online is None:
        next_value = next_q_target.max(dim=1).values
    else:
        best_action = next_q_online.argmax(dim=1, keepdim=True)  # [B, 1]
        next_value = next_q_target.gather(1, best_action).squeeze(1)
    return rewards + gamma * (1.0 - terminated) * next_value


def q_learning_loss(
    q_network: QNetwork, target_q_network: QNetwork, batch: Batch, gamma: float, double_q: bool, loss: str
) -> tuple[Tensor, Tensor]:
    """L(w) on one mini-batch; also returns q̂_w(S_i, A_i) [B] for logging."""
    with torch.no_grad():
        next_q_target = target_q_network(batch.next_obs)  # [B, n_actions]
        next_q_online = q_network(batch.next_obs) if double_q else None
        y = td_target(batch.rewards, batch.terminated, next_q_target, gamma, next_q_online)  # [B]
    q_taken = q_network(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)  # q̂_w(S_i, A_i), [B]
    regression = F.huber_loss if loss == "huber" else F.mse_loss
    return regression(q_taken, y), q_taken


def gradient_step(
    q_network: QNetwork, target_q_network: QNetwork, optimizer: torch.optim.Optimizer, batch: Batch, args: Args
) -> tuple[Tensor, Tensor]:
    """w ← w − α ∇_w L(w) on one mini-batch (the optimiser's step, the gradient's norm clipped to max_grad_norm);
    returns L(w) and q̂_w(S_i, A_i) before the step."""
    td_loss, q_taken = q_learning_loss(q_network, target_q_network, batch, args.gamma, args.double_q, args.loss)
    optimizer.zero_grad(set_to_none=True)
    td_loss.backward()
    if args.max_grad_norm > 0:
        clip_gradient_norm([p.grad for p in q_network.parameters()], args.max_grad_norm)
    optimizer.step()
    return td_loss, q_taken


def clip_gradient_norm(gradients: list[Tensor], max_norm: float) -> None:
    """∇_w L ← ∇_w L · min(1, max_norm / (‖∇_w L‖ + 1e-6)), ‖·‖ the 2-norm over all of w's gradients together: the
    arithmetic of torch.nn.utils.clip_grad_norm_, without its per-call bookkeeping (in a third of its time here)."""
    total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients]))
    torch._foreach_mul_(gradients, torch.clamp(max_norm / (total_norm + 1e-6), max=1.0))


def update_target_network(target_network: nn.Module, network: nn.Module, tau: float) -> None:
    """w' ← τ w + (1 − τ) w'; τ = 1 copies w exactly."""
    with torch.no_grad():
        for target_param, param in zip(target_network.parameters(), network.parameters(), strict=True):
            target_param.lerp_(param, tau)  # lerp(w', w, τ) = w' + τ (w − w'), exactly w when τ = 1


# ------------------------------------------------------------------------------------- training loop
LOG_INTERVAL = 100  # environment steps between reads of the loss (each read waits for the device)


def train(args: Args) -> dict:
    check_args(args)
    device = resolve_device(args.device)
    env = make_checked_env(args, device)
    checkpoint = read_model(args, env.observation_space, env.action_space)  # None without --load-model
    run_dir = make_run_dir(args)
    # seeds, threads, determinism (the caller's come back after); the logs are flushed however the run ends
    with seeded_run(args, device), SummaryWriter(run_dir) as writer:
        log, rng = RunLog(writer, args), np.random.default_rng(args.seed)
        env.action_space.seed(args.seed)
        obs_dim, n_actions, shift = env.observation_space.shape[0], int(env.action_space.n), int(env.action_space.start)
        q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
        target_q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
        optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
        networks, optimizers = {"q_network": q_network}, {"optimizer": optimizer}
        restore(checkpoint, networks, optimizers)  # --load-model: w and Adam's state from its file
        target_q_network.load_state_dict(q_network.state_dict())  # w' ← w
        replay_buffer = ReplayBuffer(min(args.buffer_size, args.total_timesteps), obs_dim, rng)  # never holds more
        global_step, logged_step, exploration_steps = 0, -LOG_INTERVAL, args.exploration_fraction * args.total_timesteps
        obs, _ = env.reset(seed=args.seed)
        try:
            for global_step in range(args.total_timesteps):
                epsilon = linear_schedule(args.start_e, args.end_e, exploration_steps, global_step)
                action = epsilon_greedy_action(q_network, obs, epsilon, env, rng, device)
                next_obs, reward, terminated, truncated, info = env.step(action + shift)
                if args.clip_reward:
                    reward = float(np.clip(reward, -1.0, 1.0))
                # next_obs is the real successor, also when the episode just ended: the reset comes after.
                replay_buffer.add(obs, action, float(reward), next_obs, terminated)
                obs = next_obs
                if terminated or truncated:
                    log.episode(info["episode"]["r"], info["episode"]["l"], global_step)
                    obs, _ = env.reset()

                if global_step >= args.learning_starts and global_step % args.train_frequency == 0:
                    for _ in range(args.gradient_steps):
                        batch = replay_buffer.sample(args.batch_size, device)
                        td_loss, q_taken = gradient_step(q_network, target_q_network, optimizer, batch, args)
                    if global_step - logged_step >= LOG_INTERVAL:  # .item() waits for the device: only now and then
                        log.losses(
                            {"losses/td_loss": td_loss.item(), "losses/q_values": q_taken.mean().item()}, global_step
                        )
                        logged_step = global_step
                if global_step >= args.learning_starts and global_step % args.target_network_frequency == 0:
                    update_target_network(target_q_network, q_network, args.tau)
                log.progress(global_step + 1, {"charts/epsilon": epsilon})
            env.close()
            log.finish(networks)  # no non-finite weight goes on to the evaluation or a file
            videos = video_dir(args, run_dir)  # None without --capture-video
            eval_returns = evaluate(q_network, args.env_id, args.seed, args.eval_episodes, device, videos)
        except KeyboardInterrupt:
            raise interrupted(args, run_dir, global_step, networks, optimizers) from None
        return report(args, log, run_dir, eval_returns, networks, optimizers) | {"replay_buffer": replay_buffer}


# ----------------------------------------------------------------------------------- evaluation
def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """The env with flattened observations (Discrete observations become one-hot vectors); kwargs go to gym.make."""
    return gym.wrappers.FlattenObservation(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs)))


EVAL_STEP_LIMIT = 10_000  # an env registered without a time limit gets this one in evaluation


def evaluate(
    q_network: QNetwork, env_id: str, seed: int, episodes: int, device: torch.device, video_dir: str | None = None
) -> list[float]:
    """Undiscounted returns of greedy episodes on a fresh env, seeded once per run (reset(seed=seed + 10_000), then
    its own stream): a seed meets the same start states every run, two seeds independent ones. An env without a
    time limit is cut at EVAL_STEP_LIMIT steps, where a greedy policy could loop forever (CliffWalking-v1). With `video_dir`,
    every episode is also recorded there, one MP4 file each."""
    env = make_env(env_id, render_mode="rgb_array") if video_dir else make_env(env_id)
    if env.spec is None or env.spec.max_episode_steps is None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=EVAL_STEP_LIMIT)
    if video_dir is not None:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True)
    start = int(env.action_space.start)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 if i == 0 else None)
        episode_return, episode_over = 0.0, False
        while not episode_over:
            with torch.no_grad():
                q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))
            obs, reward, terminated, truncated, _ = env.step(int(q_values.argmax()) + start)
            episode_return += float(reward)
            episode_over = terminated or truncated
        returns.append(episode_return)
    env.close()
    return returns


# ------------------------------------------------------------------ plumbing: the algorithm ends above
# Logging, input checks, device, seeds, run directory, saving, Ctrl-C and the command line, alike in all six scripts.
SCRIPT = os.path.basename(__file__)  # the name every message starts with


class RunLog:
    """TensorBoard scalars, every finished episode, a progress line each tenth of the budget, the NaN checks."""

    def __init__(self, writer: SummaryWriter, args: Args) -> None:
        self.writer, self.total, self.checked_step = writer, args.total_timesteps, 0
        self.start_time = time.perf_counter()
        self.episodic_returns: list[float] = []
        self.episode_end_steps: list[int] = []  # the global step each return is logged at
        self.every = self.next_progress = max(1, args.total_timesteps // 10)
        writer.add_text(
            "hyperparameters", "|param|value|\n|-|-|\n" + "".join(f"|{k}|{v}|\n" for k, v in asdict(args).items())
        )

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def losses(self, values: dict[str, float], step: int) -> None:
        """Log the losses and stop the run if one is not finite (all were at the last check)."""
        self.scalars(values, step)
        check_finite(values, {}, self.checked_step, step)
        self.checked_step = step

    def episode(self, episode_return: float, length: int, step: int) -> None:
        self.episodic_returns.append(float(episode_return))
        self.episode_end_steps.append(step)
        self.scalars({"charts/episodic_return": float(episode_return), "charts/episodic_length": int(length)}, step)

    def progress(self, step: int, values: dict[str, float] | None = None) -> None:
        if step >= self.next_progress or step >= self.total:
            self.next_progress = (step // self.every + 1) * self.every
            sps = step / (time.perf_counter() - self.start_time)
            self.scalars({"charts/SPS": sps, **(values or {})}, step)
            latest = f"{self.episodic_returns[-1]:.1f}" if self.episodic_returns else "-"
            print(f"step {step}/{self.total}  latest return {latest}  SPS {sps:.0f}", flush=True)

    def finish(self, networks: dict[str, nn.Module], steps: int | None = None) -> None:
        """The end of training: its time and speed, and one last check that every weight is finite."""
        self.steps = self.total if steps is None else steps
        self.train_time = time.perf_counter() - self.start_time
        check_finite({}, networks, self.checked_step, self.steps)


def report(
    args: Args,
    log: RunLog,
    run_dir: str,
    eval_returns: list[float],
    networks: dict[str, nn.Module],
    optimizers: dict[str, Optimizer],
) -> dict:
    """Log the evaluation, save the model (with --save-model), print the summary line; train()'s result."""
    for i, episode_return in enumerate(eval_returns):
        log.writer.add_scalar("eval/return", episode_return, i)
    if args.save_model:
        print(f"model saved to {save_model(args, run_dir, networks, optimizers)}")
    sps = log.steps / log.train_time
    summary = "no evaluation"
    if eval_returns:
        summary = (
            f"eval return {np.mean(eval_returns):.1f} ± {np.std(eval_returns):.1f} over {len(eval_returns)} episodes"
        )
    print(
        f"{args.env_id} seed {args.seed}: {summary}, {log.steps} steps, "
        f"{log.train_time:.1f} s training ({sps:.0f} SPS), logs in {run_dir}"
    )
    results = {"episodic_returns": log.episodic_returns, "episode_end_steps": log.episode_end_steps}
    return results | {"eval_returns": eval_returns, "sps": sps, "run_dir": run_dir, **networks}


class UsageError(ValueError):
    """Bad input, found before any work starts: the CLI prints the sentence and exits with status 2."""


def check_args(args: Args) -> None:
    """Refuse settings that cannot work, each in one sentence, before anything is written."""
    hints = typing.get_type_hints(Args)  # the types first: every rule below compares numbers
    enforce(args, [(name, has_type(getattr(args, name), kind), f"be {describe(kind)}") for name, kind in hints.items()])
    if args.load_model is not None and args.total_timesteps == 0:  # only evaluate the loaded networks: no training
        return enforce(
            args,
            [
                *run_rules(args),
                ("eval_episodes", args.eval_episodes > 0, "be positive when --total-timesteps 0 only evaluates"),
            ],
        )
    frequency = max(args.train_frequency, 1)  # (0 is refused below)
    first_update = -(-args.learning_starts // frequency) * frequency  # the first t % F == 0
    positive = ["total_timesteps", "buffer_size", "batch_size", "train_frequency", "gradient_steps", "learning_rate"]
    rules = [(name, getattr(args, name) > 0, "be positive") for name in [*positive, "target_network_frequency"]]
    rules += [  # (field, whether its rule holds, what it must do)
        ("batch_size", args.batch_size <= args.buffer_size, "fit in the replay buffer (--buffer-size)"),
        ("learning_starts", 0 <= first_update < args.total_timesteps, "leave a gradient step in --total-timesteps"),
        ("gamma", 0 <= args.gamma <= 1, "lie in [0, 1]"),
        ("tau", 0 < args.tau <= 1, "lie in (0, 1]"),
        ("start_e", 0 <= args.start_e <= 1, "lie in [0, 1]"),
        ("end_e", 0 <= args.end_e <= 1, "lie in [0, 1]"),
        ("exploration_fraction", 0 <= args.exploration_fraction <= 1, "lie in [0, 1]"),
        ("max_grad_norm", args.max_grad_norm >= 0, "be non-negative"),
        ("hidden_sizes", all(width > 0 for width in args.hidden_sizes), "be positive widths"),
    ]
    enforce(args, rules + run_rules(args))


def run_rules(args: Args) -> list[tuple[str, bool, str]]:
    """The rules of the run settings every script shares; --log-dir is probed by making a directory there."""
    cores, name = os.cpu_count() or 1, args.exp_name
    return [
        ("seed", 0 <= args.seed < 2**32, "lie in [0, 2**32 - 1] (numpy's seeds)"),
        ("torch_threads", 0 <= args.torch_threads <= cores, f"lie in [0, {cores}], the cores of this machine"),
        ("eval_episodes", args.eval_episodes >= 0, "be non-negative"),
        ("exp_name", name not in ("", ".", "..") and not set("/\\\0") & set(name), "be a file name (no '/')"),
        ("log_dir", writable(args.log_dir), "be a directory this process can create or write"),
        ("load_model", args.load_model is None or os.path.isfile(args.load_model), "name a file --save-model wrote"),
        ("capture_video", not args.capture_video or args.eval_episodes > 0, "go with --eval-episodes above 0"),
    ]


def enforce(args: Args, rules: list[tuple[str, bool, str]]) -> None:
    for name, holds, requirement in rules:
        if not holds:
            raise UsageError(f"{SCRIPT}: --{name.replace('_', '-')} must {requirement}, got {getattr(args, name)!r}.")


def has_type(value: object, kind: object) -> bool:
    """Whether a field's value matches its annotation (floats finite too: inf would pass every "> 0")."""
    if typing.get_origin(kind) is Literal:
        return value in typing.get_args(kind)
    if typing.get_origin(kind) is types.UnionType:
        return any(has_type(value, option) for option in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        return isinstance(value, tuple | list) and all(has_type(item, int) for item in value)
    if kind in (int, float):
        number = isinstance(value, numbers.Integral if kind is int else numbers.Real) and not isinstance(value, bool)
        return number and math.isfinite(value)  # type: ignore[arg-type]
    return isinstance(value, kind)  # type: ignore[arg-type]


def describe(kind: object) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(kind)))
    if typing.get_origin(kind) is types.UnionType:
        return " or ".join(describe(option) for option in typing.get_args(kind))
    names = {int: "an integer", float: "a finite number", bool: "True or False", str: "a string", type(None): "None"}
    return names.get(kind) or str(kind)  # type: ignore[call-overload]


def writable(path: str) -> bool:
    """Whether `path` is, or can become, a writable directory: a probe made in its nearest existing ancestor (and
    removed at once) tells where permission bits do not (root, read-only mounts, /proc)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing))
        return path != ""
    except OSError:
        return False


def resolve_device(name: str) -> torch.device:
    """auto: cuda when torch sees a GPU, else cpu; any other name must be a device this machine has."""
    with contextlib.suppress(RuntimeError):  # not a device name: refused below
        device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
        if device.type == "cpu" or (device.type == "cuda" and (device.index or 0) < torch.cuda.device_count()):
            return device
    count = torch.cuda.device_count()
    raise UsageError(
        f"{SCRIPT}: --device {name} is not a device of this machine ({count} CUDA GPUs); use auto, cpu, cuda or cuda:N."
    )


def make_checked_env(args: Args, device: torch.device) -> gym.Env:
    """The env, or one sentence on why it cannot be made (any exception, not only Gymnasium's) or used here."""
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown if the env is made; otherwise the error says it
            env = make_env(args.env_id)
    except Exception as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split()).rstrip(".")
        raise UsageError(f"{SCRIPT} cannot make the environment {args.env_id!r}: {reason}.") from None
    for warning in caught:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    obs, actions = env.observation_space, env.action_space
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
        problem = f"cannot flatten the observations of {args.env_id} ({env.unwrapped.observation_space}) into a vector"
    elif not isinstance(actions, gym.spaces.Discrete):
        problem = f"needs a Discrete action space, but {args.env_id} has {actions}; for Box actions use ddpg.py, reinforce.py, trpo.py or natural_gradient.py"
    else:
        widths = (obs.shape[0], *args.hidden_sizes, int(actions.n))
        weights = sum((a + 1) * b for a, b in itertools.pairwise(widths))
        # bytes: the transitions; the weights ×5 (w, w', ∇, Adam's two); a batch's activations
        transitions = min(args.buffer_size, args.total_timesteps) * 4 * (2 * obs.shape[0] + 4)
        networks = 4 * (5 * weights + 3 * args.batch_size * sum(widths))
        problem = memory_problem({"--buffer-size": transitions, "--hidden-sizes": networks}, device)
    if problem is not None:
        env.close()
        raise UsageError(f"{SCRIPT} {problem}.")
    if args.capture_video:
        check_video(args)
    return env


def memory_problem(needed: dict[str, int], device: torch.device) -> str | None:
    """Sizes that cannot fit, found before any is allocated: the bytes needed against those available now."""
    free = math.inf  # (not Linux: assume it fits)
    with contextlib.suppress(OSError, StopIteration), open("/proc/meminfo") as file:
        free = next(int(line.split()[1]) * 1024 for line in file if line.startswith("MemAvailable:"))
    free = min(free, torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else free
    largest = max(needed, key=needed.__getitem__)
    gib = f"{sum(needed.values()) / 2**30:.1f} GiB of memory, mostly for {largest}, but {free / 2**30:.1f} GiB are free"
    return None if sum(needed.values()) <= free else f"would need about {gib}; lower {largest}"


@contextlib.contextmanager
def seeded_run(args: Args, device: torch.device) -> Iterator[None]:
    """Seed random, numpy and torch and set torch's threads and determinism for the run; on the way out (return or
    raise) put back what the caller had, so that train() leaves its process as it found it."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only, cublas = torch.is_deterministic_algorithms_warn_only_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # torch's generators
        try:
            torch.set_num_threads(args.torch_threads or threads)
            if args.torch_deterministic and device.type == "cuda" and cublas is None:
                os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # cuBLAS's condition for deterministic matmuls
            torch.use_deterministic_algorithms(args.torch_deterministic)
            random.seed(args.seed)
            np.random.seed(args.seed)
            torch.manual_seed(args.seed)
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            if cublas is None:
                os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def make_run_dir(args: Args) -> str:
    """<log_dir>/<env_id>__<exp_name>__<seed>__<unix time>, with a suffix if another run took that name."""
    name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    os.makedirs(args.log_dir, exist_ok=True)
    for attempt in range(1000):
        with contextlib.suppress(FileExistsError):  # another run took this name: no run writes into another's
            os.mkdir(run_dir := os.path.join(args.log_dir, name if attempt == 0 else f"{name}-{attempt}"))
            return run_dir
    raise RuntimeError(f"{SCRIPT}: could not create a fresh run directory under {args.log_dir}.")


ARCHITECTURE = ("hidden_sizes",)  # the settings a saved network's shape depends on, beside its env's spaces


def save_model(args: Args, run_dir: str, networks: dict[str, nn.Module], optimizers: dict[str, Optimizer]) -> str:
    """<run_dir>/<exp_name>.pt: the state dicts of the networks and optimisers, the args as plain types and the
    script's name (what --load-model reads back); returns where it was written."""
    checkpoint: dict = {name: {k: v.cpu() for k, v in net.state_dict().items()} for name, net in networks.items()}
    checkpoint["optimizers"] = {name: optimizer.state_dict() for name, optimizer in optimizers.items()}
    checkpoint |= {"args": asdict(args), "script": SCRIPT}
    return save_atomically(os.path.join(run_dir, f"{args.exp_name}.pt"), lambda file: torch.save(checkpoint, file))


def read_model(args: Args, observation_space: gym.Space, action_space: gym.Space) -> dict | None:
    """The file of --load-model, checked before any work: written by this script's --save-model, for an env with the
    same observation and action spaces, with the same ARCHITECTURE settings. None without --load-model."""
    if args.load_model is None:
        return None
    try:
        checkpoint = torch.load(args.load_model, map_location="cpu", weights_only=True)
        script, saved = checkpoint["script"], checkpoint["args"]
        env = make_env(saved["env_id"])  # the env it was trained on, whose spaces must be this run's
        spaces = (env.observation_space, env.action_space)
        env.close()
    except Exception as error:  # not a file torch reads, not one --save-model wrote, or its env cannot be made here
        reason = " ".join(f"{type(error).__name__}: {error}".split()).rstrip(".")
        raise UsageError(
            f"{SCRIPT}: --load-model {args.load_model} is not a model this script can use ({reason})."
        ) from None
    differs = [name for name in ARCHITECTURE if json.dumps(saved[name]) != json.dumps(getattr(args, name))]
    if script != SCRIPT:
        problem = f"was written by {script}, not by {SCRIPT}"
    elif spaces != (observation_space, action_space):
        shapes = [f"observations {o.shape} and actions {a}" for o, a in (spaces, (observation_space, action_space))]
        problem = f"was trained on {saved['env_id']} ({shapes[0]}), whose spaces are not {args.env_id}'s ({shapes[1]})"
    elif differs:
        problem = f"holds networks built with --{differs[0].replace('_', '-')} {saved[differs[0]]}, not {getattr(args, differs[0])}"
    else:
        return checkpoint
    raise UsageError(f"{SCRIPT}: --load-model {args.load_model} {problem}.")


def restore(checkpoint: dict | None, networks: dict[str, nn.Module], optimizers: dict[str, Optimizer]) -> None:
    """With --load-model: the networks' weights from its file, and the optimisers' state where the file holds it."""
    if checkpoint is not None:
        for name, network in networks.items():
            network.load_state_dict(checkpoint[name])
        for name, optimizer in optimizers.items():
            if name in checkpoint["optimizers"]:
                optimizer.load_state_dict(checkpoint["optimizers"][name])


def check_video(args: Args) -> None:
    """--capture-video needs moviepy, and frames from the env on this machine (pygame for classic control, an OpenGL
    context for MuJoCo): render one before any work, so that a run cannot fail at its very end."""
    try:
        if importlib.util.find_spec("moviepy") is None:
            raise ModuleNotFoundError("No module named 'moviepy'")
        env = make_env(args.env_id, render_mode="rgb_array")
        env.reset(seed=0)
        env.render()
        env.close()
    except Exception as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split()).rstrip(".")
        raise UsageError(
            f"{SCRIPT}: --capture-video cannot record {args.env_id} here ({reason}); pip install moviepy pygame."
        ) from None


def video_dir(args: Args, run_dir: str) -> str | None:
    return os.path.join(run_dir, "videos") if args.capture_video else None


def save_atomically(path: str, write: Callable[[BinaryIO], object]) -> str:
    """Write to a temporary file beside `path` and rename it onto `path`, so no reader sees half a file. If that
    directory cannot be written, write to the system's temporary directory instead (and say so): never lose it."""
    fallback = os.path.join(tempfile.gettempdir(), f"{int(time.time())}-{os.getpid()}-{os.path.basename(path)}")
    failures: list[str] = []
    for target in (path, fallback):
        partial = None
        try:
            handle, partial = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(target)), suffix=".partial")
            with os.fdopen(handle, "wb") as file:
                write(file)
            os.replace(partial, target)
            partial = None
            if target != path:
                print(f"{SCRIPT}: could not write {path} ({failures[0]}); wrote {target} instead.", file=sys.stderr)
            return target
        except OSError as error:
            failures.append(error.strerror or str(error))
        finally:
            if partial is not None:
                with contextlib.suppress(OSError):
                    os.remove(partial)
    raise OSError(f"{SCRIPT}: could not save {path}, nor in {tempfile.gettempdir()}: {'; '.join(failures)}.")


def check_finite(values: dict[str, float], networks: dict[str, nn.Module], after: int, step: int) -> None:
    """Stop the run at a non-finite loss or weight, saying between which steps it appeared."""
    bad = [f"{name} = {value}" for name, value in values.items() if not math.isfinite(value)]
    weights = [name for name, net in networks.items() if not all(p.isfinite().all() for p in net.parameters())]
    bad += [f"the weights of {name}" for name in weights]
    if bad:
        raise FloatingPointError(
            f"{SCRIPT}: non-finite numbers appeared between step {after + 1} and step {step} ({', '.join(bad)}), so "
            "nothing was saved; a step too large for the rewards' scale is the usual cause: try a lower "
            "--learning-rate, --loss huber or --clip-reward."
        )


def interrupted(
    args: Args, run_dir: str, step: int, networks: dict[str, nn.Module], optimizers: dict[str, Optimizer]
) -> KeyboardInterrupt:
    """Ctrl-C: keep the model as it stands (with --save-model) and say in one line where the run stopped."""
    saved = ""
    if args.save_model:
        try:
            check_finite({}, networks, step, step)
            saved = f"; model saved to {save_model(args, run_dir, networks, optimizers)}"
        except FloatingPointError:
            saved = "; model not saved: its weights are not finite"
    return KeyboardInterrupt(
        f"{SCRIPT}: stopped by Ctrl-C at step {step} of {args.total_timesteps}{saved}; logs in {run_dir}."
    )


if __name__ == "__main__":
    try:
        summary, examples = __doc__.split("\n\n")[0], __doc__[__doc__.index("Examples:") :]
        train(tyro.cli(Args, description=f"{summary}\n\n{examples}"))
    except UsageError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
    except (FloatingPointError, OSError) as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as error:  # interrupted() says where; one before training began has nothing to say
        print(str(error) or f"{SCRIPT}: stopped by Ctrl-C before training began.", file=sys.stderr)
        sys.exit(130)
