"""Neural fitted Q-iteration: collect N transitions, freeze a target, regress K steps; DQN is close to N = C, K = C/F.

Q-learning with function approximation runs three processes (the lecture's "more general view"):
(1) collecting transitions into a buffer D, (2) saving target parameters w' ← w, and (3) regressing
q̂_w onto targets computed with w'. Online Q-learning runs all three at one rate; DQN runs (2) slowly;
fitted Q-iteration puts (3) in the inner loop of (2), inside (1) (Riedmiller 2005, "Neural Fitted Q
Iteration"; Ernst, Geurts & Wehenkel 2005, "Tree-Based Batch Mode Reinforcement Learning").

Each iteration of the outer loop:

    w' ← w                                                         (2) save the target, `target_q_network`
    collect N transitions with ε-greedy(q̂_w) into D                (1) N = `transitions_per_iteration`
    repeat K times:                                                 (3) K = `fit_steps`
        y_i = R_i + γ (1 − terminated_i) max_a' q̂_w'(S_{i+1}, a')      `td_target`
        w ← w − α ∇_w 1/B Σ_i (y_i − q̂_w(S_i, A_i))²                   `regression_loss`, `fit`

on mini-batches of D (Adam) or on all of D at once (Rprop, NFQ's full-batch optimiser). With N = 1 and
K = 1 the target is refreshed before every gradient step: online Q-learning, with no frozen target at all.
DQN, which copies its target every C steps and takes a gradient step every F steps, corresponds to N = C,
K = C/F (dqn.py's defaults, C = 100 and F = 4: N = 100, K = 25), except that DQN interleaves its K steps
with the collection instead of taking them after it. Large N and K are NFQ. `--refit-from-scratch`
re-initialises q̂_w before each regression, as NFQ does, so each iteration is one approximate
application of the Bellman optimality operator to q̂_w'.

Offline (batch) mode: `--save-dataset FILE.npz` writes every transition a run collected (obs, action,
reward, next_obs, terminated, truncated), oldest first; `--dataset FILE.npz` trains on such a file with
no environment interaction at all (the evaluation episodes excepted): the same iterations, with the
collecting step (1) skipped, total_timesteps / N of them. Offline, the flags of collection (buffer size,
learning_starts, the ε schedule) would do nothing and are refused; the reported SPS is 0 (no environment
steps) and losses are logged against iteration · N, where an online run would be.

Termination is not truncation: the target is cut only where the episode *terminated*; a truncated
transition bootstraps from its real final observation. The script steps a single environment and
resets it by hand, so a stored transition never crosses a reset and no autoreset mode is involved.

Examples:
    python fitted_q.py                                          # CartPole-v1, the defaults
    python fitted_q.py --save-dataset cartpole.npz              # ... and keep its transitions
    python fitted_q.py --dataset cartpole.npz --seed 2          # offline, from that file alone
    python fitted_q.py --optimizer rprop --refit-from-scratch --transitions-per-iteration 1000 --fit-steps 200
                                                                # NFQ's recipe: full-batch Rprop, refit each time
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
    total_timesteps: int = 30_000
    """environment steps to collect (offline: sets the number of iterations, total_timesteps / N)"""
    gamma: float = 0.99
    """discount factor γ"""
    learning_rate: float = 1e-3
    """learning rate α of the Q-network's optimiser (Adam; Rprop's initial step size)"""
    transitions_per_iteration: int = 50
    """N: transitions collected per iteration, with the target frozen"""
    fit_steps: int = 25
    """K: regression steps per iteration against the frozen target"""
    optimizer: Literal["adam", "rprop"] = "adam"
    """adam: mini-batches of batch_size; rprop: the whole buffer each step (NFQ)"""
    refit_from_scratch: bool = False
    """re-initialise q̂_w (and its optimiser) before each iteration's regression, as NFQ does"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the Q-network's hidden layers (none: linear)"""
    buffer_size: int = 50_000
    """capacity of the replay buffer D, in transitions (online only; offline, D is the dataset)"""
    batch_size: int = 256
    """transitions per Adam step"""
    learning_starts: int = 1_000
    """transitions collected (ε-greedy, so mostly random) before the first regression (online only)"""
    tau: float = 1.0
    """target update coefficient τ at each iteration: 1 saves w' ← w as on the slide, < 1 Polyak-averages"""
    start_e: float = 1.0
    """ε at the start of the schedule (online only)"""
    end_e: float = 0.05
    """ε at the end of the schedule, kept from then on (online only)"""
    exploration_fraction: float = 0.25
    """fraction of total_timesteps over which ε decays linearly from start_e to end_e (online only)"""
    max_grad_norm: float = 10.0
    """clip the gradient's global norm to this in Adam steps (0 turns clipping off)"""
    dataset: str | None = None
    """train offline from this .npz file (written by --save-dataset) instead of the environment"""
    save_dataset: str | None = None
    """write every collected transition to this .npz file at the end (needs buffer_size ≥ total_timesteps)"""

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
DATASET_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")


class Batch(NamedTuple):
    obs: Tensor  # [B, obs_dim]  S_i
    actions: Tensor  # [B] int64 A_i (index into 0..n_actions-1)
    rewards: Tensor  # [B]  R_i
    next_obs: Tensor  # [B, obs_dim]  S_{i+1}, the real next observation (never a reset one)
    terminated: Tensor  # [B]  1.0 where S_{i+1} is terminal, 0.0 otherwise (truncated included)


class ReplayBuffer:
    """The transition set D: preallocated circular arrays; the oldest transition is overwritten first.

    `truncated` is kept only so that a dataset written from D says where episodes ended; the targets
    never read it.
    """

    def __init__(self, capacity: int, obs_dim: int, rng: np.random.Generator) -> None:
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.truncated = np.zeros(capacity, dtype=np.float32)
        self.capacity = capacity
        self.rng = rng
        self.position = 0  # the slot the next transition goes to
        self.size = 0  # how many slots hold a transition

    def add(self, obs, action: int, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        i = self.position
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i], self.truncated[i] = next_obs, terminated, truncated
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, device: torch.device) -> Batch:
        """A uniform mini-batch (with replacement) from the slots written so far."""
        return self._batch(self.rng.integers(0, self.size, size=batch_size), device)

    def everything(self, device: torch.device) -> Batch:
        """All of D, for full-batch (Rprop) regression."""
        return self._batch(np.arange(self.size), device)

    def _batch(self, idx: np.ndarray, device: torch.device) -> Batch:
        arrays = (self.obs, self.actions, self.rewards, self.next_obs, self.terminated)
        return Batch(*(torch.from_numpy(a[idx]).to(device) for a in arrays))

    def as_dataset(self) -> dict[str, np.ndarray]:
        """D in the order the transitions were collected, as the dataset file stores it (--save-dataset makes sure
        the buffer never wrapped, so slot i holds the i-th transition)."""
        arrays = (self.obs, self.actions, self.rewards, self.next_obs, self.terminated, self.truncated)
        return {name: a[: self.size] for name, a in zip(DATASET_FIELDS, arrays, strict=True)}


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


def td_target(rewards: Tensor, terminated: Tensor, next_q_target: Tensor, gamma: float) -> Tensor:
    """y_i = R_i + γ (1 − terminated_i) max_a' q̂_w'(S_{i+1}, a'), shape [B].

    `next_q_target` is q̂_w'(S_{i+1}, ·), [B, n_actions]. Only termination cuts the bootstrap.
    """
    return rewards + gamma * (1.0 - terminated) * next_q_target.max(dim=1).values


def regression_loss(q_network: QNetwork, target_q_network: QNetwork, batch: Batch, gamma: float) -> Tensor:
    """1/B Σ_i (y_i − q̂_w(S_i, A_i))², the targets y_i computed with the frozen w'."""
    with torch.no_grad():
        y = td_target(batch.rewards, batch.terminated, target_q_network(batch.next_obs), gamma)  # [B]
    q_taken = q_network(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)  # q̂_w(S_i, A_i), [B]
    return F.mse_loss(q_taken, y)


def fit(
    q_network: QNetwork,
    target_q_network: QNetwork,
    optimizer: torch.optim.Optimizer,
    replay_buffer: ReplayBuffer,
    args: Args,
    device: torch.device,
) -> Tensor:
    """Process (3): K regression steps of q̂_w onto the frozen targets; returns the last loss."""
    full_batch = replay_buffer.everything(device) if args.optimizer == "rprop" else None
    for _ in range(args.fit_steps):
        batch = full_batch if full_batch is not None else replay_buffer.sample(args.batch_size, device)
        loss = regression_loss(q_network, target_q_network, batch, args.gamma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.max_grad_norm > 0 and args.optimizer == "adam":
            nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
        optimizer.step()
    return loss


def update_target_network(target_network: nn.Module, network: nn.Module, tau: float) -> None:
    """w' ← τ w + (1 − τ) w'; τ = 1 copies w exactly."""
    with torch.no_grad():
        for target_param, param in zip(target_network.parameters(), network.parameters(), strict=True):
            target_param.lerp_(param, tau)  # lerp(w', w, τ) = w' + τ (w − w'), exactly w when τ = 1


def make_optimizer(q_network: QNetwork, args: Args) -> torch.optim.Optimizer:
    if args.optimizer == "rprop":
        return torch.optim.Rprop(q_network.parameters(), lr=args.learning_rate)
    return torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)  # ~30 % faster on CPU


# ------------------------------------------------------------------------------------- training loop
def train(args: Args) -> dict:
    check_args(args)
    device = resolve_device(args.device)
    env = make_checked_env(args, device)
    obs_dim, n_actions, shift = env.observation_space.shape[0], int(env.action_space.n), int(env.action_space.start)
    dataset = load_dataset(args.dataset, obs_dim, n_actions) if args.dataset is not None else None
    checkpoint = read_model(args, env.observation_space, env.action_space)  # None without --load-model
    run_dir = make_run_dir(args)
    # seeds, threads, determinism (the caller's come back after); the logs are flushed however the run ends
    with seeded_run(args, device), SummaryWriter(run_dir) as writer:
        log, rng = RunLog(writer, args), np.random.default_rng(args.seed)
        env.action_space.seed(args.seed)
        q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
        target_q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
        optimizer = make_optimizer(q_network, args)
        restore(checkpoint, {"q_network": q_network}, {"optimizer": optimizer})  # --load-model: w, the optimiser
        target_q_network.load_state_dict(q_network.state_dict())
        capacity = len(dataset["action"]) if dataset is not None else min(args.buffer_size, args.total_timesteps)
        replay_buffer = ReplayBuffer(capacity, obs_dim, rng)  # online, never more than the run's transitions
        for i in range(capacity if dataset is not None else 0):  # offline, D is the dataset
            replay_buffer.add(*(dataset[name][i] for name in DATASET_FIELDS))
        iterations = math.ceil(args.total_timesteps / args.transitions_per_iteration)
        global_step, exploration_steps = 0, args.exploration_fraction * args.total_timesteps
        obs, _ = env.reset(seed=args.seed)
        try:
            for iteration in range(iterations):
                update_target_network(target_q_network, q_network, args.tau)  # (2) w' ← w

                if dataset is None:  # (1) collect N transitions with ε-greedy(q̂_w)
                    for _ in range(min(args.transitions_per_iteration, args.total_timesteps - global_step)):
                        epsilon = linear_schedule(args.start_e, args.end_e, exploration_steps, global_step)
                        action = epsilon_greedy_action(q_network, obs, epsilon, env, rng, device)
                        next_obs, reward, terminated, truncated, info = env.step(action + shift)
                        # next_obs is the real successor, also when the episode just ended: the reset comes after.
                        replay_buffer.add(obs, action, float(reward), next_obs, terminated, truncated)
                        obs = next_obs
                        if terminated or truncated:
                            log.episode(info["episode"]["r"], info["episode"]["l"], global_step)
                            obs, _ = env.reset()
                        global_step += 1
                    if global_step < args.learning_starts:
                        continue
                else:
                    global_step += args.transitions_per_iteration  # offline: the budget counts iterations

                if args.refit_from_scratch:  # NFQ: each iteration fits a fresh network
                    q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
                    optimizer = make_optimizer(q_network, args)
                loss = fit(q_network, target_q_network, optimizer, replay_buffer, args, device)  # (3) K steps
                if iteration % max(1, iterations // 10) == 0 or iteration == iterations - 1:  # .item() waits: seldom
                    log.losses({"losses/td_loss": loss.item()}, global_step)
                if dataset is None:  # (offline there are no environment steps to count)
                    log.progress(global_step)
            env.close()
            networks, optimizers = {"q_network": q_network}, {"optimizer": optimizer}  # (refits replace them)
            log.finish(networks, global_step)  # no non-finite weight goes on to the evaluation or a file
            videos = video_dir(args, run_dir)  # None without --capture-video
            eval_returns = evaluate(q_network, args.env_id, args.seed, args.eval_episodes, device, videos)
        except KeyboardInterrupt:
            networks, optimizers = {"q_network": q_network}, {"optimizer": optimizer}
            raise interrupted(args, run_dir, global_step, networks, optimizers, replay_buffer) from None
        results = report(args, log, run_dir, eval_returns, networks, optimizers, replay_buffer)
        return results | {"replay_buffer": replay_buffer}


# ----------------------------------------------------------------------------------- evaluation
def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """The env with flattened observations (Discrete observations become one-hot vectors); kwargs go to gym.make."""
    return gym.wrappers.FlattenObservation(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs)))


EVAL_STEP_LIMIT = 10_000  # an env registered without a time limit gets this one in evaluation


def evaluate(
    q_network: QNetwork, env_id: str, seed: int, episodes: int, device: torch.device, video_dir: str | None = None
) -> list[float]:
    """Undiscounted returns of greedy episodes on a fresh env, seeded once per run (reset(seed=seed + 10_000),
    then its own stream): a seed meets the same start states every run, two seeds independent ones. An env
    without a time limit is cut at EVAL_STEP_LIMIT steps, so a policy that never ends an episode cannot hang. With `video_dir`,
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
    replay_buffer: ReplayBuffer,
) -> dict:
    """Log the evaluation, save the model and the dataset (when asked), print the summary line; train()'s result."""
    for i, episode_return in enumerate(eval_returns):
        log.writer.add_scalar("eval/return", episode_return, i)
    if args.save_model:
        print(f"model saved to {save_model(args, run_dir, networks, optimizers)}")
    if args.save_dataset is not None:
        print(f"{replay_buffer.size} transitions saved to {save_dataset(args.save_dataset, replay_buffer)}")
    sps = log.steps / log.train_time if args.dataset is None else 0.0  # offline: no environment steps
    steps = f"{log.steps} steps, {log.train_time:.1f} s training ({sps:.0f} SPS)"
    if args.dataset is not None:
        regressions = math.ceil(args.total_timesteps / args.transitions_per_iteration) * args.fit_steps
        steps = f"offline: {regressions} regression steps in {log.train_time:.1f} s"
    summary = "no evaluation"
    if eval_returns:
        summary = (
            f"eval return {np.mean(eval_returns):.1f} ± {np.std(eval_returns):.1f} over {len(eval_returns)} episodes"
        )
    print(f"{args.env_id} seed {args.seed}: {summary}, {steps}, logs in {run_dir}")
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
    positive = ["total_timesteps", "buffer_size", "batch_size", "transitions_per_iteration", "fit_steps"]
    offline, save = args.dataset is not None, args.save_dataset
    collection = ["buffer_size", "learning_starts", "start_e", "end_e", "exploration_fraction", "save_dataset"]
    rules = [(name, getattr(args, name) > 0, "be positive") for name in [*positive, "learning_rate"]]
    unset = "stay unset with --dataset, which collects nothing"
    rules += [(name, not offline or getattr(args, name) == getattr(Args, name), unset) for name in collection]
    rules += [  # (field, whether its rule holds, what it must do)
        ("dataset", not offline or os.path.isfile(args.dataset), "name an existing file"),
        ("batch_size", offline or args.batch_size <= args.buffer_size, "fit in the replay buffer (--buffer-size)"),
        (
            "learning_starts",
            offline or 0 <= args.learning_starts < args.total_timesteps,
            "leave a regression in --total-timesteps",
        ),
        (
            "buffer_size",
            save is None or args.buffer_size >= args.total_timesteps,
            "hold every transition (≥ --total-timesteps) to --save-dataset them",
        ),
        ("save_dataset", save is None or save.endswith(".npz"), "end in .npz"),
        ("save_dataset", save is None or not os.path.exists(save), "be a new path (this one exists)"),
        (
            "save_dataset",
            save is None
            or (
                os.path.isdir(os.path.dirname(os.path.abspath(save)))
                and writable(os.path.dirname(os.path.abspath(save)))
            ),
            "be in an existing directory this process can write",
        ),
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
        rows = 0 if args.dataset is not None else min(args.buffer_size, args.total_timesteps)  # (a dataset: its own)
        batch = rows if args.optimizer == "rprop" else args.batch_size  # Rprop regresses on all of D at once
        # bytes: the transitions; the weights ×5 (w, w', ∇, the optimiser's two); activations
        transitions, networks = rows * 4 * (2 * obs.shape[0] + 5), 4 * (5 * weights + 3 * batch * sum(widths))
        problem = memory_problem({"--buffer-size": transitions, "--hidden-sizes": networks}, device)
    if problem is not None:
        env.close()
        raise UsageError(f"{SCRIPT} {problem}.")
    if args.capture_video:
        check_video(args)
    return env


def load_dataset(path: str, obs_dim: int, n_actions: int) -> dict[str, np.ndarray]:
    """Read a dataset file and check every array; anything malformed is one UsageError naming the file and the fault."""

    def refuse(problem: str) -> UsageError:
        return UsageError(f"{SCRIPT}: the dataset {path!r} {problem}.")

    try:  # an empty file, one that is no zip archive, a lone .npy, arrays of pickled objects
        with np.load(path, allow_pickle=False) as file:
            data = {name: file[name] for name in file.files}
    except Exception:
        raise refuse("is not an .npz archive of numeric arrays (as --save-dataset writes)") from None
    missing = [name for name in DATASET_FIELDS if name not in data]
    if missing:
        raise refuse(f"lacks the array(s) {', '.join(missing)}")
    if data["action"].ndim != 1 or len(data["action"]) == 0:
        raise refuse(f"has action of shape {data['action'].shape}; expected (m,) for m ≥ 1 transitions")
    m = len(data["action"])
    for name in DATASET_FIELDS:
        array, shape = data[name], (m, obs_dim) if name in ("obs", "next_obs") else (m,)
        if array.shape != shape:
            raise refuse(f"has {name} of shape {array.shape}; expected {shape} for {m} transitions of this env")
        if not (
            np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating) or array.dtype == bool
        ):
            raise refuse(f"has {name} of dtype {array.dtype}; expected integers, floats or booleans")
        if not np.all(np.isfinite(array)):
            raise refuse(f"has NaN or infinite values in {name}")
    if not np.all((data["action"] == np.round(data["action"])) & (data["action"] >= 0) & (data["action"] < n_actions)):
        raise refuse(f"has actions that are not whole numbers in 0..{n_actions - 1}")
    for name in ("terminated", "truncated"):
        if not np.all((data[name] == 0) | (data[name] == 1)):
            raise refuse(f"has {name} values other than 0 and 1")
    return data


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


def save_dataset(path: str, replay_buffer: ReplayBuffer) -> str:
    """Every transition of D, in the order collected, as the .npz file --dataset reads; returns where it went."""
    return save_atomically(path, lambda file: np.savez(file, **replay_buffer.as_dataset()))


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
            "--learning-rate."
        )


def interrupted(
    args: Args,
    run_dir: str,
    step: int,
    networks: dict[str, nn.Module],
    optimizers: dict[str, Optimizer],
    replay_buffer: ReplayBuffer,
) -> KeyboardInterrupt:
    """Ctrl-C: keep the model as it stands (with --save-model) and the transitions so far (with --save-dataset), and
    say in one line where the run stopped."""
    saved = ""
    if args.save_model:
        try:
            check_finite({}, networks, step, step)
            saved = f"; model saved to {save_model(args, run_dir, networks, optimizers)}"
        except FloatingPointError:
            saved = "; model not saved: its weights are not finite"
    if args.save_dataset is not None:
        saved += f"; {replay_buffer.size} transitions saved to {save_dataset(args.save_dataset, replay_buffer)}"
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
