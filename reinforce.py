"""REINFORCE: the Monte-Carlo policy gradient with reward-to-go and an optional learned baseline.

Sample whole episodes with the current policy π_θ, weight the score ∇_θ log π_θ(a_t | s_t) of every
action by the discounted return that followed it, and step θ along the average (Williams 1992,
"Simple statistical gradient-following algorithms for connectionist reinforcement learning"; the
reward-to-go and baseline forms as in Sutton & Barto 2018, §13.3–13.4).

The update, in the lecture's notation, for a batch of N whole episodes i = 1..N of lengths T_i:

    G_t = Σ_{k=t+1}^{T} γ^{k−t−1} R_k                       (reward-to-go of the action A_t)
    Â_t = G_t − V_w(S_t)      with the baseline, else Â_t = G_t   (optionally normalised per batch)
    ∇_θ J ≈ 1/N Σ_i Σ_t ∇_θ log π_θ(A_t | S_t) Â_t          (no γᵗ factor: see below)
    θ ← θ + α ∇_θ J                                          (Adam, `learning_rate`)
    w ← w − β ∇_w 1/n Σ (V_w(S_t) − G_t)²                    (Adam, `value_learning_rate`, `value_steps` steps)

The textbook update (Sutton & Barto §13.3) weights step t by γᵗ as well, the discount of reaching it from
the start; this script drops that factor, as standard practice does. Every step then counts alike,
whenever it came: for γ < 1 the result is not the exact gradient of the discounted return from the start
state, but it has lower variance, and it is what the lecture's reward-to-go form computes.

Where each piece lives:
    π_θ        `CategoricalPolicy` (Discrete actions: softmax over logits) or `GaussianPolicy` (Box actions:
               a diagonal Gaussian whose mean is a network of s and whose log std is one learned vector)
    V_w        `ValueNetwork` (the baseline; `--no-baseline` turns it off)
    episodes   `collect_episodes`: whole episodes from `num_envs` environments stepped side by side
    G_t        `reward_to_go`
    Â_t        `advantages`
    ∇_θ J      `policy_gradient_loss` (its negative, so that a minimiser ascends J)

Box actions: a Gaussian sample is clipped into [low, high] before `env.step`, while its log-probability (and
so the gradient) is that of the unclipped sample the policy drew. The Gaussian works in units of the bounds.

Termination is not truncation. An episode that *terminated* has G_T = 0 after its last step. One that
was *truncated* by a time limit (CartPole-v1 at 500 steps, Pendulum-v1 always) did not end in the MDP:
with the baseline on, its reward-to-go bootstraps from the value V_w(S_T) of the real final observation;
without a baseline there is no value to bootstrap from, and the return is cut there (biased, as in the
textbook algorithm).

Whole episodes from several environments: the policy acts on all `num_envs` with one batched forward pass
per step. An update collects at least `steps_per_update` steps and then finishes the episodes in progress,
so every episode in a batch was sampled whole by one θ. The environments are a plain list, each reset by
hand (a `gymnasium.vector` env cannot pause one while the others finish): no transition crosses a reset.
Training stops at exactly `total_timesteps` steps, dropping unfinished episodes. Observations pass through
FlattenObservation.

Examples:
    python reinforce.py                                  # CartPole-v1, the defaults
    python reinforce.py --env-id Pendulum-v1 --seed 3
    python reinforce.py --no-baseline --no-normalize-advantages --total-timesteps 300000
"""

import contextlib
import importlib.util
import itertools
import json
import math
import numbers
import os
import random
import shutil
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
import tyro
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    env_id: str = "CartPole-v1"
    """id of a registered Gymnasium environment with a Discrete or Box action space"""
    total_timesteps: int = 200_000
    """environment steps to train for"""
    gamma: float | None = None
    """discount factor γ; None: 0.9 on Pendulum-v1 (where 0.99 learns far less), 0.99 on every other env"""
    learning_rate: float = 3e-3
    """Adam learning rate α of the policy"""
    num_envs: int = 8
    """environments stepped side by side, with one batched forward pass of the policy per step"""
    steps_per_update: int = 1_000
    """environment steps to collect before each update; the episodes in progress then run to their end"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the hidden layers of the policy and of the value network (none: linear)"""
    baseline: bool = True
    """subtract a learned state-value baseline V_w(s) from the reward-to-go"""
    normalize_advantages: bool = True
    """rescale each batch's advantages to mean 0 and standard deviation 1"""
    value_learning_rate: float = 1e-2
    """Adam learning rate β of the value network (the baseline)"""
    value_steps: int = 10
    """full-batch Adam steps of the value network per update"""
    init_log_std: float = -0.5
    """Box actions: initial log std of the Gaussian, in units of the bounds' half-width"""

    # the run: where it logs, how it is seeded, where it runs, what it keeps
    exp_name: str = os.path.basename(__file__).removesuffix(".py")
    """name of this experiment, used in the run directory's name"""
    seed: int = 1
    """seed of random, numpy, torch and the environments"""
    device: str = "auto"
    """torch device: auto (cuda if available, else cpu), cpu, cuda or cuda:N"""
    torch_deterministic: bool = True
    """torch.use_deterministic_algorithms during the run, so GPU runs repeat too (CPU runs repeat either way)"""
    log_dir: str = "runs"
    """directory under which each run writes its TensorBoard logs (and model)"""
    save_model: bool = False
    """save the policy (and value network), with the args, to <run_dir>/<exp_name>.pt at the end"""
    load_model: str | None = None
    """a file written by --save-model to start from (its networks and optimiser state); --total-timesteps 0 only evaluates it"""
    capture_video: bool = False
    """record the final evaluation episodes as MP4 files in <run_dir>/videos (needs: pip install moviepy pygame)"""
    eval_episodes: int = 10
    """deterministic evaluation episodes after training (0 turns the evaluation off)"""
    torch_threads: int = 1
    """torch CPU threads (small networks run fastest on one; 0 keeps torch's default)"""


# ----------------------------------------------------------------------------------------- networks
def mlp(in_dim: int, out_dim: int, hidden_sizes: tuple[int, ...], out_gain: float) -> nn.Sequential:
    """A tanh MLP; the last layer starts scaled by `out_gain` (small for a policy: near-uniform at first)."""
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.Tanh()]
        width = hidden
    last = nn.Linear(width, out_dim)
    with torch.no_grad():
        last.weight.mul_(out_gain)
        last.bias.zero_()
    return nn.Sequential(*layers, last)


class CategoricalPolicy(nn.Module):
    """π_θ(· | s) = softmax(logits_θ(s)): observation [B, obs_dim] → Categorical over action indices."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.logits = mlp(obs_dim, n_actions, hidden_sizes, out_gain=0.01)

    def forward(self, obs: Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.logits(obs), validate_args=False)

    def sample(self, obs: Tensor) -> Tensor:
        """An action index per row drawn from π_θ(· | s), [B], by the Gumbel-max trick: argmax_a (logits_a − log E_a),
        E_a ~ Exp(1), is distributed as softmax(logits), at a tenth of the cost of forward(obs).sample() on CPU."""
        logits = self.logits(obs)
        return (logits - torch.empty_like(logits).exponential_().log()).argmax(dim=-1)

    def deterministic_action(self, obs: Tensor) -> Tensor:
        """The most probable action index, [B]."""
        return self.logits(obs).argmax(dim=-1)


class GaussianPolicy(nn.Module):
    """π_θ(· | s) = N(μ_θ(s), diag σ²): observation [B, obs_dim] → Independent Normal over [B, act_dim]; μ_θ(s) =
    center + scale · net(s) and σ = scale · exp(log_std), with center and scale the middle and half-width of the
    bounds (0 and 1 where unbounded), so the network works in units of the bounds; log_std does not depend on s."""

    def __init__(self, obs_dim: int, box: gym.spaces.Box, hidden_sizes: tuple[int, ...], init_log_std: float) -> None:
        super().__init__()
        low, high = box.low, box.high  # the action bounds
        bounded = np.isfinite(low) & np.isfinite(high)
        center = np.where(bounded, (high + low) / 2, 0.0)
        scale = np.where(bounded, (high - low) / 2, 1.0)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.mean = mlp(obs_dim, len(low), hidden_sizes, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((len(low),), float(init_log_std)))

    def forward(self, obs: Tensor) -> torch.distributions.Independent:
        mean = self.center + self.scale * self.mean(obs)  # [B, act_dim]
        std = self.scale * self.log_std.exp()  # [act_dim], broadcast over the batch
        return torch.distributions.Independent(torch.distributions.Normal(mean, std, validate_args=False), 1)

    def sample(self, obs: Tensor) -> Tensor:
        """An action drawn from π_θ(· | s), [B, act_dim] (unclipped)."""
        return self(obs).sample()

    def deterministic_action(self, obs: Tensor) -> Tensor:
        """The mean action μ_θ(s), [B, act_dim] (unclipped)."""
        return self.center + self.scale * self.mean(obs)


class ValueNetwork(nn.Module):
    """V_w: observation [B, obs_dim] → state value [B]."""

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden_sizes, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)


Policy = CategoricalPolicy | GaussianPolicy


# ------------------------------------------------------------------------------ rollout storage
class Episode(NamedTuple):
    obs: np.ndarray  # [T, obs_dim]  S_0 .. S_{T-1}
    actions: np.ndarray  # [T] action indices, or [T, act_dim] unclipped Gaussian samples
    rewards: np.ndarray  # [T]  R_1 .. R_T (rewards[t] follows actions[t])
    terminated: bool  # False: truncated by a time limit, so S_T is not terminal
    final_obs: np.ndarray  # [obs_dim]  S_T, the real last observation


def collect_episodes(
    envs: list[gym.Env], policy: Policy, min_steps: int, max_steps: int, device: torch.device
) -> tuple[list[Episode], list[tuple[float, int]], int]:
    """Whole episodes from all environments under the current π_θ, at least `min_steps` steps in all.

    Each environment starts a fresh episode; once `min_steps` steps are collected no new episode starts,
    and the ones in progress run to their end. Collection stops early, dropping unfinished episodes,
    after `max_steps` steps (the end of training). Returns the episodes, (return, length) of each as
    recorded by RecordEpisodeStatistics, and the number of steps taken.
    """
    space = envs[0].action_space  # the same in every environment (looked up once: each wrapper forwards it)
    is_box = isinstance(space, gym.spaces.Box)
    obs = np.stack([env.reset()[0] for env in envs]).astype(np.float32)  # [num_envs, obs_dim]
    active = np.ones(len(envs), dtype=bool)
    current: list[list[tuple[np.ndarray, np.ndarray, float]]] = [[] for _ in envs]  # (S_t, A_t, R_{t+1}) so far
    episodes: list[Episode] = []
    statistics: list[tuple[float, int]] = []
    steps = 0
    while active.any() and steps < max_steps:
        indices = np.flatnonzero(active)[: max_steps - steps]  # the last step of training may take fewer
        with torch.no_grad():
            actions = policy.sample(torch.as_tensor(obs[indices], device=device)).cpu().numpy()
        for j, i in enumerate(indices):
            env = envs[i]
            env_action = np.clip(actions[j], space.low, space.high) if is_box else int(actions[j]) + int(space.start)
            next_obs, reward, terminated, truncated, info = env.step(env_action)
            current[i].append((obs[i].copy(), actions[j], np.float32(reward)))
            if terminated or truncated:
                states, taken, rewards = map(np.stack, zip(*current[i], strict=True))
                episodes.append(Episode(states, taken, rewards, bool(terminated), next_obs.astype(np.float32)))
                current[i] = []
                statistics.append((float(info["episode"]["r"]), int(info["episode"]["l"])))
                if steps + len(indices) >= min_steps:
                    active[i] = False  # the budget is spent: this environment starts no new episode
                else:
                    next_obs, _ = env.reset()
            obs[i] = next_obs
        steps += len(indices)
    return episodes, statistics, steps


# --------------------------------------------------------------------------------- the algorithm
def reward_to_go(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """G_t = R_{t+1} + γ G_{t+1} for t = T−1 .. 0, with G_T = `bootstrap` (0 after a termination); `rewards[t]` is
    R_{t+1}, the reward that followed action t. Returns [T] float32."""
    returns = np.empty(len(rewards), dtype=np.float32)
    running = bootstrap
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def batch_returns(episodes: list[Episode], value: ValueNetwork | None, gamma: float, device: torch.device) -> Tensor:
    """G_t of every step of every episode, concatenated [n_steps]; truncated episodes bootstrap from V_w(S_T)."""
    bootstraps = np.zeros(len(episodes), dtype=np.float32)
    truncated = [i for i, episode in enumerate(episodes) if not episode.terminated]
    if value is not None and truncated:
        final_obs = torch.as_tensor(np.stack([episodes[i].final_obs for i in truncated]), device=device)
        with torch.no_grad():
            bootstraps[truncated] = value(final_obs).cpu().numpy()
    returns = [reward_to_go(e.rewards, gamma, float(b)) for e, b in zip(episodes, bootstraps, strict=True)]
    return torch.as_tensor(np.concatenate(returns), device=device)


def advantages(returns: Tensor, values: Tensor | None, normalize: bool) -> Tensor:
    """Â_t = G_t − V_w(S_t) (or G_t without a baseline), optionally rescaled to mean 0 and std 1."""
    result = returns if values is None else returns - values
    if normalize and len(result) > 1:
        # A batch whose advantages are all equal carries no signal: it becomes zeros, not 0/0.
        result = (result - result.mean()) / (result.std() + 1e-8)
    return result


def policy_gradient_loss(
    policy: Policy, obs: Tensor, actions: Tensor, advantage: Tensor, n_episodes: int
) -> tuple[Tensor, Tensor]:
    """−1/N Σ_i Σ_t log π_θ(A_t | S_t) Â_t, whose gradient is −∇_θ J; also returns the mean entropy."""
    distribution = policy(obs)
    loss = -(distribution.log_prob(actions) * advantage).sum() / n_episodes
    return loss, distribution.entropy().mean()


# ------------------------------------------------------------------------------------- training loop
def default_gamma(env_id: str) -> float:
    """γ when --gamma is not given: 0.9 on Pendulum-v1, 0.99 on every other env (README.md has the measurements)."""
    return 0.9 if env_id == "Pendulum-v1" else 0.99


def train(args: Args) -> dict:
    check_args(args)
    device = resolve_device(args.device)
    envs = make_checked_envs(args, device)
    checkpoint = read_model(args, envs[0].observation_space, envs[0].action_space)  # None without --load-model
    run_dir = make_run_dir(args)
    # seeds, threads, determinism (the caller's come back after); the logs are flushed however the run ends
    with seeded_run(args, device), SummaryWriter(run_dir) as writer:
        log = RunLog(writer, args)
        for i, env in enumerate(envs):
            env.reset(seed=args.seed + i)  # seeds each environment's generator; every episode then resets unseeded
            env.action_space.seed(args.seed + i)
        space, obs_dim = envs[0].action_space, envs[0].observation_space.shape[0]
        gamma = default_gamma(args.env_id) if args.gamma is None else args.gamma
        if isinstance(space, gym.spaces.Box):
            policy: Policy = GaussianPolicy(obs_dim, space, args.hidden_sizes, args.init_log_std)
        else:
            policy = CategoricalPolicy(obs_dim, int(space.n), args.hidden_sizes)
        policy = policy.to(device)
        policy_optimizer = torch.optim.Adam(policy.parameters(), lr=args.learning_rate, fused=True)
        value = ValueNetwork(obs_dim, args.hidden_sizes).to(device) if args.baseline else None
        networks, optimizers = {"policy": policy}, {"policy_optimizer": policy_optimizer}
        if value is not None:
            value_optimizer = torch.optim.Adam(value.parameters(), lr=args.value_learning_rate, fused=True)
            networks["value"], optimizers["value_optimizer"] = value, value_optimizer
        restore(checkpoint, networks, optimizers)  # --load-model: θ, w and Adam's states from its file
        global_step, updates = 0, 0
        try:
            while global_step < args.total_timesteps:
                episodes, statistics, steps = collect_episodes(
                    envs, policy, args.steps_per_update, args.total_timesteps - global_step, device
                )
                global_step += steps
                for episode_return, episode_length in statistics:  # logged at the end of their batch
                    log.episode(episode_return, episode_length, global_step)
                if not episodes:
                    break  # training ended inside the first step of every episode: nothing whole to learn from

                obs = torch.as_tensor(np.concatenate([e.obs for e in episodes]), device=device)  # [n, obs_dim]
                actions = torch.as_tensor(np.concatenate([e.actions for e in episodes]), device=device)
                returns = batch_returns(episodes, value, gamma, device)  # G_t, [n]
                with torch.no_grad():
                    values = value(obs) if value is not None else None  # V_w(S_t) before this update's regression
                advantage = advantages(returns, values, args.normalize_advantages)  # Â_t, [n]

                policy_loss, entropy = policy_gradient_loss(policy, obs, actions, advantage, len(episodes))
                policy_optimizer.zero_grad(set_to_none=True)
                policy_loss.backward()
                policy_optimizer.step()  # θ ← θ + α ∇_θ J

                value_loss = torch.zeros(())
                for _ in range(args.value_steps if value is not None else 0):  # w ← w − β ∇_w (G_t − V_w(S_t))²
                    value_loss = (value(obs) - returns).pow(2).mean()
                    value_optimizer.zero_grad(set_to_none=True)
                    value_loss.backward()
                    value_optimizer.step()

                updates += 1  # one read of the losses per update (each read waits for the device)
                losses = {"losses/policy_loss": policy_loss.item(), "losses/entropy": entropy.item()}
                log.losses(
                    losses | ({"losses/value_loss": value_loss.item()} if value is not None else {}), global_step
                )
                log.scalars({"charts/episodes_per_update": len(episodes)}, global_step)
                log.progress(global_step)
            if updates == 0 and args.total_timesteps > 0:  # no episode ended inside the budget: refuse, not report
                raise nothing_learned(args, run_dir, writer)
            for env in envs:
                env.close()
            log.finish(networks, global_step)  # no non-finite weight goes on to the evaluation or a file
            videos = video_dir(args, run_dir)  # None without --capture-video
            eval_returns = evaluate(policy, args.env_id, args.seed, args.eval_episodes, device, videos)
        except KeyboardInterrupt:
            raise interrupted(args, run_dir, global_step, networks, optimizers) from None
        return report(args, log, run_dir, eval_returns, networks, optimizers)


# ----------------------------------------------------------------------------------- evaluation
def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """The env with flattened observations (Discrete observations become one-hot vectors); kwargs go to gym.make."""
    return gym.wrappers.FlattenObservation(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs)))


EVAL_STEP_LIMIT = 10_000  # an env registered without a time limit gets this one in evaluation


def evaluate(
    policy: Policy, env_id: str, seed: int, episodes: int, device: torch.device, video_dir: str | None = None
) -> list[float]:
    """Undiscounted returns of deterministic episodes on a fresh env, seeded once per run (reset(seed=seed + 10_000),
    then its own stream): a seed meets the same start states every run, two seeds independent ones. An env
    without a time limit is cut at EVAL_STEP_LIMIT steps, so a policy that never ends an episode cannot hang. With `video_dir`,
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
                obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)
                action = policy.deterministic_action(obs_tensor)[0].cpu().numpy()
            if isinstance(env.action_space, gym.spaces.Box):
                env_action = np.clip(action, env.action_space.low, env.action_space.high)
            else:
                env_action = int(action) + int(env.action_space.start)
            obs, reward, terminated, truncated, _ = env.step(env_action)
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
    positive = ["total_timesteps", "num_envs", "steps_per_update", "learning_rate", "value_learning_rate"]
    rules = [(name, getattr(args, name) > 0, "be positive") for name in positive]
    rules += [  # (field, whether its rule holds, what it must do)
        ("num_envs", args.num_envs <= args.total_timesteps, "leave a step of every environment in --total-timesteps"),
        ("gamma", args.gamma is None or 0 <= args.gamma <= 1, "lie in [0, 1]"),
        ("value_steps", args.value_steps >= 0, "be non-negative"),
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


def make_checked_envs(args: Args, device: torch.device) -> list[gym.Env]:
    """The envs, or one sentence on why the env cannot be made (any exception, not only Gymnasium's) or used here."""
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown if the env is made; otherwise the error says it
            envs = [make_env(args.env_id) for _ in range(args.num_envs)]
    except Exception as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split()).rstrip(".")
        raise UsageError(f"{SCRIPT} cannot make the environment {args.env_id!r}: {reason}.") from None
    for warning in caught:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    obs, actions = envs[0].observation_space, envs[0].action_space
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
        problem = (
            f"cannot flatten the observations of {args.env_id} ({envs[0].unwrapped.observation_space}) into a vector"
        )
    elif not (
        isinstance(actions, gym.spaces.Discrete) or (isinstance(actions, gym.spaces.Box) and len(actions.shape) == 1)
    ):
        problem = f"needs a Discrete or a one-dimensional Box action space, but {args.env_id} has {actions}; wrap the env to flatten its actions first"
    else:
        outputs = actions.shape[0] if actions.shape else int(actions.n)
        rows = min(args.steps_per_update, args.total_timesteps)  # one update's steps
        layers = [(obs.shape[0], *args.hidden_sizes, out) for out in (outputs, 1)]  # the policy's and V_w's
        weights = sum((a + 1) * b for widths in layers for a, b in itertools.pairwise(widths))
        row = sum(obs.shape) + outputs + 2 + 4 * (2 * sum(args.hidden_sizes) + outputs + 1)  # and its activations
        # bytes: the weights ×5 (θ, w, ∇, Adam's two); one update's steps and their activations
        problem = memory_problem({"--hidden-sizes": 4 * 5 * weights, "--steps-per-update": rows * 4 * row}, device)
    if problem is not None:
        for env in envs:
            env.close()
        raise UsageError(f"{SCRIPT} {problem}.")
    if args.capture_video:
        check_video(args)
    return envs


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


def nothing_learned(args: Args, run_dir: str, writer: SummaryWriter) -> UsageError:
    """No episode ended inside the budget, so there was no update: remove the run's logs (they hold no episode)."""
    writer.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    return UsageError(
        f"{SCRIPT}: no episode of {args.env_id} ended within --total-timesteps {args.total_timesteps} (about "
        f"{args.total_timesteps // args.num_envs} steps in each of --num-envs {args.num_envs}), so the policy was never "
        "updated; raise --total-timesteps or lower --num-envs."
    )


ARCHITECTURE = ("hidden_sizes", "baseline")  # the settings a saved network's shape depends on, beside its env's spaces


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
            "--learning-rate or --value-learning-rate."
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
