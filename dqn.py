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
    w ← w − α ∇L(w)       `gradient_step`, the gradient's norm clipped by `clip_gradient_norm`
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

import plumbing  # first: a Ctrl-C while the imports below load is then one line

import itertools
from dataclasses import dataclass
from typing import Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@plumbing.with_run_settings  # then the run's settings: --seed, --device, --log-dir, ... (plumbing.RunSettings)
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
        # clip_grad_norm_'s arithmetic without its per-call bookkeeping: ~10 % more steps per second (benchmarks/README.md)
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
    args = plumbing.check_args(args, rules)  # (a copy in Python's own numbers)
    device = plumbing.resolve_device(args)
    env = plumbing.make_checked_env(args, make_env, device, plumbing.discrete_actions, memory_needed)
    checkpoint = plumbing.read_model(args, make_env, env, ARCHITECTURE)
    # the run directory, seeds, threads, TensorBoard; the caller's generators and settings come back after
    with plumbing.Run(args, device, remedy="--learning-rate, --loss huber or --clip-reward") as run:
        rng = np.random.default_rng(args.seed)
        env.action_space.seed(args.seed)
        obs_dim, n_actions, shift = env.observation_space.shape[0], int(env.action_space.n), int(env.action_space.start)
        q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
        target_q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
        optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
        networks, optimizers = {"q_network": q_network}, {"optimizer": optimizer}
        run.restore(checkpoint, networks, optimizers)  # --load-model: w and Adam's state from its file
        target_q_network.load_state_dict(q_network.state_dict())  # w' ← w
        replay_buffer = ReplayBuffer(min(args.buffer_size, args.total_timesteps), obs_dim, rng)  # never holds more
        global_step, logged_step, exploration_steps = 0, -LOG_INTERVAL, args.exploration_fraction * args.total_timesteps
        obs, _ = env.reset(seed=args.seed)

        def state() -> dict:  # what the rest of the run depends on: a checkpoint holds it (--resume restores it)
            models = {"networks": networks | {"target_q_network": target_q_network}, "optimizers": optimizers}
            return models | {"env": env, "rng": rng, "replay_buffer": replay_buffer, "obs": obs, "logged": logged_step}

        start, (env, rng, replay_buffer, obs, logged_step) = run.resume(state, step=0)
        try:
            for global_step in range(start, args.total_timesteps):
                epsilon = linear_schedule(args.start_e, args.end_e, exploration_steps, global_step)
                action = epsilon_greedy_action(q_network, obs, epsilon, env, rng, device)
                next_obs, reward, terminated, truncated, info = env.step(action + shift)
                if args.clip_reward:
                    reward = float(np.clip(reward, -1.0, 1.0))
                # next_obs is the real successor, also when the episode just ended: the reset comes after.
                replay_buffer.add(obs, action, float(reward), next_obs, terminated)
                obs = next_obs
                if terminated or truncated:
                    run.episode(info["episode"]["r"], info["episode"]["l"], global_step)
                    obs, _ = env.reset()

                if global_step >= args.learning_starts and global_step % args.train_frequency == 0:
                    for _ in range(args.gradient_steps):
                        batch = replay_buffer.sample(args.batch_size, device)
                        td_loss, q_taken = gradient_step(q_network, target_q_network, optimizer, batch, args)
                    if global_step - logged_step >= LOG_INTERVAL:  # .item() waits for the device: only now and then
                        run.losses(
                            {"losses/td_loss": td_loss.item(), "losses/q_values": q_taken.mean().item()}, global_step
                        )
                        logged_step = global_step
                if global_step >= args.learning_starts and global_step % args.target_network_frequency == 0:
                    update_target_network(target_q_network, q_network, args.tau)
                run.progress(global_step + 1, {"charts/epsilon": epsilon})
                run.checkpoint(global_step + 1)  # (--checkpoint-frequency)
            env.close()
            run.finish(networks)  # no non-finite weight goes on to the evaluation or a file
            eval_returns = evaluate(q_network, args.env_id, args.seed, args.eval_episodes, device, run.video_dir)
        except (KeyboardInterrupt, plumbing.RunFailed) as error:  # keep what can be kept, say where it stopped
            raise run.interrupted(error, global_step, networks, optimizers) from None
        return run.report(eval_returns, networks, optimizers) | {"replay_buffer": replay_buffer}


# ----------------------------------------------------------------------------------- evaluation
def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """The env with flattened observations (Discrete observations become one-hot vectors), whose failures name its
    step (plumbing.CheckedEnv); kwargs go to gym.make."""
    return plumbing.CheckedEnv(
        gym.wrappers.FlattenObservation(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs)))
    )


def evaluate(
    q_network: QNetwork, env_id: str, seed: int, episodes: int, device: torch.device, video_dir: str | None = None
) -> list[float]:
    """Undiscounted returns of greedy episodes, a = argmax_a q̂_w(s, a), on a fresh env seeded once per run, each
    recorded to `video_dir` if given (plumbing.evaluation_returns: which start states it meets)."""

    def greedy(obs: np.ndarray, space: gym.spaces.Discrete) -> int:
        with torch.no_grad():
            q_values = q_network(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))
        return int(q_values.argmax()) + int(space.start)

    return plumbing.evaluation_returns(make_env, env_id, greedy, seed, episodes, video_dir)


# ------------------------------------------------------------------------ what is this script's own
def rules(args: Args) -> list[plumbing.Rule]:
    """What each field must hold (plumbing.check_args refuses the first that does not, in one sentence)."""
    frequency = max(args.train_frequency, 1)  # (0 is refused below)
    first_update = -(-args.learning_starts // frequency) * frequency  # the first t % F == 0
    positive = ["total_timesteps", "buffer_size", "batch_size", "train_frequency", "gradient_steps", "learning_rate"]
    return [
        *[(name, getattr(args, name) > 0, "be positive") for name in [*positive, "target_network_frequency"]],
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


def memory_needed(args: Args, obs_dim: int, actions: gym.spaces.Discrete) -> dict[str, int]:
    """Bytes, by the flag that sets them: the transitions; the weights ×5 (w, w', ∇, Adam's two), a batch's activations."""
    widths = (obs_dim, *args.hidden_sizes, int(actions.n))
    weights = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    transitions = min(args.buffer_size, args.total_timesteps) * 4 * (2 * obs_dim + 4)
    return {"--buffer-size": transitions, "--hidden-sizes": 4 * (5 * weights + 3 * args.batch_size * sum(widths))}


ARCHITECTURE = ("hidden_sizes",)  # the settings a saved network's shape depends on, beside its env's spaces

if __name__ == "__main__":
    plumbing.cli(train, Args, __doc__)
