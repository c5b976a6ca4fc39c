"""Deep Deterministic Policy Gradient (DDPG): Q-learning for continuous actions with a learned argmax.

The max over actions in the Q-learning target has no closed form when actions are continuous. DDPG
learns it: an actor μ_θ(s) ≈ argmax_a q̂_w(s, a) is trained by gradient ascent on q̂_w(s, μ_θ(s)),
while the critic q̂_w regresses onto TD targets computed with slowly moving copies q̂_w' and μ_θ'
(Lillicrap et al. 2016, "Continuous control with deep reinforcement learning"; Silver et al. 2014,
"Deterministic Policy Gradient Algorithms").

The update, in the lecture's notation, for a mini-batch i = 1..B drawn uniformly from the buffer:

    y_i = R_i + γ (1 − terminated_i) q̂_w'(S_{i+1}, μ_θ'(S_{i+1}))        (critic target)
    L(w) = 1/B Σ_i (y_i − q̂_w(S_i, A_i))²,   w ← w − α_q ∇_w L(w)          (critic regression)
    ∇_θ J ≈ 1/B Σ_i ∂q̂_w(S_i, a)/∂a |_{a = μ_θ(S_i)} · dμ_θ(S_i)/dθ,   θ ← θ + α_μ ∇_θ J
    w' ← τ w + (1 − τ) w',   θ' ← τ θ + (1 − τ) θ'                          (Polyak averaging)

The actor's update is every `policy_frequency` critic updates, and the targets move with it.

Where each piece lives:
    μ_θ, μ_θ'          `Actor` (tanh output mapped affinely onto the env's [low, high], any bounds)
    q̂_w, q̂_w'          `Critic`
    replay buffer D     `ReplayBuffer`: preallocated circular arrays of (S, A, R, S', terminated)
    exploration         `GaussianNoise` (default) or `OrnsteinUhlenbeckNoise`, then clipped into bounds
    y_i                 `critic_target`
    L(w)                `critic_loss`
    −J(θ)               `actor_loss` (its gradient by autograd is the chain rule above)
    Polyak update       `update_target_network`
    one update          `ddpg_update`: critic step, actor step, both targets

Termination is not truncation: the target is cut only where the episode *terminated*. Pendulum-v1
is only ever truncated (its 200-step time limit), so every one of its targets bootstraps from the real
final observation; treating the time limit as terminal is the classic bug this script avoids. The
script steps a single environment and resets it by hand, so a stored transition never crosses a
reset and no autoreset mode is involved. The first `learning_starts` actions are uniformly random.

Examples:
    python ddpg.py                                   # Pendulum-v1, the defaults
    python ddpg.py --env-id MountainCarContinuous-v0 --noise-type ou --exploration-noise 0.5 --total-timesteps 30000
                                                     # (with Gaussian noise the car learns to stand still)
    python ddpg.py --noise-type ou --policy-frequency 2 --save-model
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
    env_id: str = "Pendulum-v1"
    """id of a registered Gymnasium environment with a Box action space"""
    total_timesteps: int = 15_000
    """environment steps to train for"""
    gamma: float = 0.98
    """discount factor γ"""
    learning_rate: float = 1e-3
    """Adam learning rate α_μ of the actor"""
    critic_learning_rate: float = 1e-3
    """Adam learning rate α_q of the critic"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the hidden layers of the actor and of the critic (none: linear)"""
    buffer_size: int = 100_000
    """capacity of the replay buffer, in transitions"""
    batch_size: int = 64
    """transitions per gradient step"""
    learning_starts: int = 1_000
    """environment steps of uniformly random actions before the first update"""
    tau: float = 0.005
    """Polyak coefficient τ of the target networks, applied at each actor update (1 copies them)"""
    policy_frequency: int = 1
    """critic updates per actor (and target) update"""
    noise_type: Literal["gaussian", "ou"] = "gaussian"
    """exploration noise: independent Gaussian, or the Ornstein–Uhlenbeck process of the paper"""
    exploration_noise: float = 0.1
    """noise scale σ, relative to the half-width (high − low) / 2 of each action dimension"""
    ou_theta: float = 0.15
    """mean reversion θ of the Ornstein–Uhlenbeck process (with --noise-type ou)"""

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
    """save the actor, the critic and the args to <run_dir>/<exp_name>.pt at the end"""
    load_model: str | None = None
    """a file written by --save-model to start from (its networks and optimiser state); --total-timesteps 0 only evaluates it"""
    capture_video: bool = False
    """record the final evaluation episodes as MP4 files in <run_dir>/videos (needs: pip install moviepy pygame)"""
    eval_episodes: int = 10
    """deterministic evaluation episodes after training (0 turns the evaluation off)"""
    torch_threads: int = 1
    """torch CPU threads (small networks run fastest on one; 0 keeps torch's default)"""


# ----------------------------------------------------------------------------------------- networks
def mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for hidden in hidden_sizes:
        layers += [nn.Linear(in_dim, hidden), nn.ReLU()]
        in_dim = hidden
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """μ_θ: observation [B, obs_dim] → action [B, act_dim] inside [low, high]: tanh gives u ∈ (−1, 1)^act_dim, and
    a = low + (u + 1)(high − low)/2 maps it affinely onto the bounds, whatever they are (asymmetric ones too)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...], low: np.ndarray, high: np.ndarray):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, act_dim)
        self.register_buffer("action_scale", torch.as_tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("action_bias", torch.as_tensor((high + low) / 2.0, dtype=torch.float32))
        self.register_buffer("action_low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("action_high", torch.as_tensor(high, dtype=torch.float32))

    def forward(self, obs: Tensor) -> Tensor:
        action = self.action_bias + self.action_scale * torch.tanh(self.net(obs))
        # In float32, bias + scale can round one ulp past a bound; the clamp keeps the action inside.
        return torch.clamp(action, self.action_low, self.action_high)


class Critic(nn.Module):
    """q̂_w: (observation [B, obs_dim], action [B, act_dim]) → Q-value [B]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_sizes: tuple[int, ...]):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden_sizes, 1)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.net(torch.cat([obs, action], dim=1)).squeeze(1)


# ------------------------------------------------------------------------------------ replay buffer
class Batch(NamedTuple):
    obs: Tensor  # [B, obs_dim]  S_i
    actions: Tensor  # [B, act_dim]  A_i, as sent to the env (inside the bounds)
    rewards: Tensor  # [B]  R_i
    next_obs: Tensor  # [B, obs_dim]  S_{i+1}, the real next observation (never a reset one)
    terminated: Tensor  # [B]  1.0 where S_{i+1} is terminal, 0.0 otherwise (truncated included)


class ReplayBuffer:
    """Replay buffer D: preallocated circular arrays; the oldest transition is overwritten first."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, rng: np.random.Generator) -> None:
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, act_dim), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.rng = capacity, rng
        self.position = 0  # the slot the next transition goes to
        self.size = 0  # how many slots hold a transition

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
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


# ------------------------------------------------------------------------------------- exploration
class GaussianNoise:
    """Independent N(0, σ²) per step and dimension, σ = exploration_noise · (high − low) / 2."""

    def __init__(self, sigma: np.ndarray, rng: np.random.Generator) -> None:
        self.sigma, self.rng = sigma, rng

    def reset(self) -> None:
        pass

    def sample(self) -> np.ndarray:
        return self.sigma * self.rng.standard_normal(self.sigma.shape)


class OrnsteinUhlenbeckNoise:
    """x_{t+1} = x_t − θ x_t + σ ε_t, ε_t ~ N(0, I): temporally correlated noise, reset each episode."""

    def __init__(self, sigma: np.ndarray, theta: float, rng: np.random.Generator) -> None:
        self.sigma, self.theta, self.rng = sigma, theta, rng
        self.state = np.zeros_like(sigma)

    def reset(self) -> None:
        self.state = np.zeros_like(self.sigma)

    def sample(self) -> np.ndarray:
        self.state = self.state - self.theta * self.state + self.sigma * self.rng.standard_normal(self.sigma.shape)
        return self.state


# --------------------------------------------------------------------------------- the algorithm
def critic_target(rewards: Tensor, terminated: Tensor, next_q_target: Tensor, gamma: float) -> Tensor:
    """y_i = R_i + γ (1 − terminated_i) q̂_w'(S_{i+1}, μ_θ'(S_{i+1})), [B], with `next_q_target` the q̂_w' term, [B];
    only termination cuts the bootstrap."""
    return rewards + gamma * (1.0 - terminated) * next_q_target


def critic_loss(critic: Critic, target_actor: Actor, target_critic: Critic, batch: Batch, gamma: float) -> Tensor:
    """L(w) = 1/B Σ_i (y_i − q̂_w(S_i, A_i))²; no gradient flows into the targets."""
    with torch.no_grad():
        next_q_target = target_critic(batch.next_obs, target_actor(batch.next_obs))  # [B]
        y = critic_target(batch.rewards, batch.terminated, next_q_target, gamma)  # [B]
    return F.mse_loss(critic(batch.obs, batch.actions), y)


def actor_loss(actor: Actor, critic: Critic, obs: Tensor) -> Tensor:
    """−J(θ) = −1/B Σ_i q̂_w(S_i, μ_θ(S_i)); its θ-gradient is −∂q̂_w/∂a · dμ_θ/dθ, averaged."""
    return -critic(obs, actor(obs)).mean()


def ddpg_update(
    batch: Batch,
    models: tuple[Actor, Critic, Actor, Critic],
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    gamma: float,
    tau: float,
    update_actor: bool,
) -> tuple[Tensor, Tensor | None]:
    """One update on a mini-batch: the critic's step on L(w); then, if `update_actor`, the actor's step on −J(θ)
    (with the critic just updated) and the Polyak update of both targets. `models` are μ_θ, q̂_w, μ_θ', q̂_w';
    `optimizers` the actor's and the critic's. Returns L(w) and −J(θ) (None if the actor did not move)."""
    actor, critic, target_actor, target_critic = models
    actor_optimizer, critic_optimizer = optimizers
    q_loss = critic_loss(critic, target_actor, target_critic, batch, gamma)
    critic_optimizer.zero_grad(set_to_none=True)
    q_loss.backward()
    critic_optimizer.step()
    if not update_actor:
        return q_loss, None
    pi_loss = actor_loss(actor, critic, batch.obs)
    actor_optimizer.zero_grad(set_to_none=True)
    pi_loss.backward(inputs=list(actor.parameters()))  # ∇_θ only: no gradient for the critic's weights
    actor_optimizer.step()
    update_target_network(target_actor, actor, tau)  # θ' ← τ θ + (1 − τ) θ'
    update_target_network(target_critic, critic, tau)  # w' ← τ w + (1 − τ) w'
    return q_loss, pi_loss


def update_target_network(target_network: nn.Module, network: nn.Module, tau: float) -> None:
    """w' ← τ w + (1 − τ) w'; τ = 1 copies w exactly."""
    with torch.no_grad():
        for target_param, param in zip(target_network.parameters(), network.parameters(), strict=True):
            target_param.lerp_(param, tau)  # lerp(w', w, τ) = w' + τ (w − w'), exactly w when τ = 1


# ------------------------------------------------------------------------------------- training loop
LOG_INTERVAL = 100  # environment steps between reads of the losses (each read waits for the device)


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
        obs_dim = env.observation_space.shape[0]
        low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
        actor = Actor(obs_dim, len(low), args.hidden_sizes, low, high).to(device)
        target_actor = Actor(obs_dim, len(low), args.hidden_sizes, low, high).to(device)
        critic = Critic(obs_dim, len(low), args.hidden_sizes).to(device)
        target_critic = Critic(obs_dim, len(low), args.hidden_sizes).to(device)
        actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate, fused=True)
        critic_optimizer = torch.optim.Adam(critic.parameters(), lr=args.critic_learning_rate, fused=True)
        networks = {"actor": actor, "critic": critic}
        optimizers = {"actor_optimizer": actor_optimizer, "critic_optimizer": critic_optimizer}
        restore(checkpoint, networks, optimizers)  # --load-model: θ, w and Adam's states from its file
        target_actor.load_state_dict(actor.state_dict())  # θ' ← θ
        target_critic.load_state_dict(critic.state_dict())  # w' ← w
        replay_buffer = ReplayBuffer(min(args.buffer_size, args.total_timesteps), obs_dim, len(low), rng)  # no more
        sigma = args.exploration_noise * (high - low) / 2.0  # relative to each dimension's half-width
        noise = (
            OrnsteinUhlenbeckNoise(sigma, args.ou_theta, rng) if args.noise_type == "ou" else GaussianNoise(sigma, rng)
        )
        models, pair = (actor, critic, target_actor, target_critic), (actor_optimizer, critic_optimizer)
        global_step, logged_step, updates = 0, -LOG_INTERVAL, 0
        pi_loss = None  # −J(θ) of the latest actor step
        obs, _ = env.reset(seed=args.seed)
        try:
            for global_step in range(args.total_timesteps):
                if global_step < args.learning_starts:
                    action = env.action_space.sample()
                else:
                    with torch.no_grad():
                        mu = actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0]
                    action = np.clip(mu.cpu().numpy() + noise.sample(), low, high).astype(env.action_space.dtype)
                    if not np.isfinite(action).all():  # a free check (the action is on the CPU): no NaN reaches the env
                        check_finite({}, {"actor": actor}, log.checked_step, global_step)
                next_obs, reward, terminated, truncated, info = env.step(action)
                # next_obs is the real successor, also when the episode just ended: the reset comes after.
                replay_buffer.add(obs, action, float(reward), next_obs, terminated)
                obs = next_obs
                if terminated or truncated:
                    log.episode(info["episode"]["r"], info["episode"]["l"], global_step)
                    obs, _ = env.reset()
                    noise.reset()

                if global_step >= args.learning_starts:
                    batch = replay_buffer.sample(args.batch_size, device)
                    updates += 1
                    update_actor = updates % args.policy_frequency == 0
                    q_loss, actor_step_loss = ddpg_update(batch, models, pair, args.gamma, args.tau, update_actor)
                    pi_loss = actor_step_loss if update_actor else pi_loss
                    # .item() waits for the device: read the losses (and check them) only every LOG_INTERVAL steps.
                    if global_step - logged_step >= LOG_INTERVAL and pi_loss is not None:
                        log.losses(
                            {"losses/critic_loss": q_loss.item(), "losses/actor_loss": pi_loss.item()}, global_step
                        )
                        logged_step = global_step
                log.progress(global_step + 1)
            env.close()
            log.finish(networks)  # no non-finite weight goes on to the evaluation or a file
            videos = video_dir(args, run_dir)  # None without --capture-video
            eval_returns = evaluate(actor, args.env_id, args.seed, args.eval_episodes, device, videos)
        except KeyboardInterrupt:
            raise interrupted(args, run_dir, global_step, networks, optimizers) from None
        return report(args, log, run_dir, eval_returns, networks, optimizers) | {"replay_buffer": replay_buffer}


# ----------------------------------------------------------------------------------- evaluation
def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """The env with flattened observations (Discrete observations become one-hot vectors); kwargs go to gym.make."""
    return gym.wrappers.FlattenObservation(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs)))


EVAL_STEP_LIMIT = 10_000  # an env registered without a time limit gets this one in evaluation


def evaluate(
    actor: Actor, env_id: str, seed: int, episodes: int, device: torch.device, video_dir: str | None = None
) -> list[float]:
    """Undiscounted returns of deterministic episodes, a = μ_θ(s), on a fresh env seeded once per run
    (reset(seed=seed + 10_000), then its own stream): a seed meets the same start states every run, two seeds
    independent ones. An env without a time limit is cut at EVAL_STEP_LIMIT steps, so no episode can hang. With `video_dir`,
    every episode is also recorded there, one MP4 file each."""
    env = make_env(env_id, render_mode="rgb_array") if video_dir else make_env(env_id)
    if env.spec is None or env.spec.max_episode_steps is None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=EVAL_STEP_LIMIT)
    if video_dir is not None:
        env = gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 if i == 0 else None)
        episode_return, episode_over = 0.0, False
        while not episode_over:
            with torch.no_grad():
                action = actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0]
            obs, reward, terminated, truncated, _ = env.step(action.cpu().numpy())
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
    positive = ["total_timesteps", "buffer_size", "batch_size", "policy_frequency", "learning_rate"]
    rules = [(name, getattr(args, name) > 0, "be positive") for name in [*positive, "critic_learning_rate"]]
    last_start = args.total_timesteps - args.policy_frequency  # the last step an actor update can come at
    rules += [  # (field, whether its rule holds, what it must do)
        ("batch_size", args.batch_size <= args.buffer_size, "fit in the replay buffer (--buffer-size)"),
        ("learning_starts", 0 <= args.learning_starts <= last_start, "leave an actor update in --total-timesteps"),
        ("gamma", 0 <= args.gamma <= 1, "lie in [0, 1]"),
        ("tau", 0 < args.tau <= 1, "lie in (0, 1]"),
        ("exploration_noise", args.exploration_noise >= 0, "be non-negative"),
        ("ou_theta", 0 <= args.ou_theta <= 1, "lie in [0, 1]"),
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
    elif isinstance(actions, gym.spaces.Discrete):
        problem = f"needs a Box (continuous) action space, but {args.env_id} has {actions}; for Discrete actions use dqn.py, reinforce.py, trpo.py or natural_gradient.py"
    elif not isinstance(actions, gym.spaces.Box):
        problem = (
            f"needs a Box (continuous) action space, but {args.env_id} has {actions}, which no script here handles"
        )
    elif len(actions.shape) != 1 or not (np.isfinite(actions.low).all() and np.isfinite(actions.high).all()):
        problem = (
            f"needs a flat Box action space with finite bounds for its tanh actor, but {args.env_id} has {actions}"
        )
    else:
        actor = (obs.shape[0], *args.hidden_sizes, actions.shape[0])
        critic = (obs.shape[0] + actions.shape[0], *args.hidden_sizes, 1)
        weights = sum((a + 1) * b for widths in (actor, critic) for a, b in itertools.pairwise(widths))
        # bytes: the transitions; weights ×5 (θ, w, targets, ∇, Adam's two); activations
        transitions = min(args.buffer_size, args.total_timesteps) * 4 * (2 * sum(obs.shape + actions.shape) + 2)
        networks = 4 * (5 * weights + 3 * args.batch_size * (sum(actor) + sum(critic)))
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
            "--learning-rate or --critic-learning-rate."
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
