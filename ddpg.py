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
    args = plumbing.check_args(args, rules)  # (a copy in Python's own numbers)
    device = plumbing.resolve_device(args)
    env = plumbing.make_checked_env(args, make_env, device, action_space_problem, memory_needed)
    checkpoint = plumbing.read_model(args, make_env, env, ARCHITECTURE)
    # the run directory, seeds, threads, TensorBoard; the caller's generators and settings come back after
    with plumbing.Run(args, device, remedy="--learning-rate or --critic-learning-rate") as run:
        rng = np.random.default_rng(args.seed)
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
        run.restore(checkpoint, networks, optimizers)  # --load-model: θ, w and Adam's states from its file
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

        def state() -> dict:  # what the rest of the run depends on: a checkpoint holds it (--resume restores it)
            targets = {"target_actor": target_actor, "target_critic": target_critic}
            models = {"networks": networks | targets, "optimizers": optimizers}
            return models | {
                "env": env,
                "replay_buffer": replay_buffer,
                "noise": noise,
                "obs": obs,
                "counts": (logged_step, updates, pi_loss),
            }

        start, (env, replay_buffer, noise, obs, (logged_step, updates, pi_loss)) = run.resume(state, step=0)
        try:
            for global_step in range(start, args.total_timesteps):
                if global_step < args.learning_starts:
                    action = env.action_space.sample()
                else:
                    with torch.no_grad():
                        mu = actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0]
                    action = np.clip(mu.cpu().numpy() + noise.sample(), low, high).astype(env.action_space.dtype)
                    if not np.isfinite(action).all():  # a free check (the action is on the CPU): no NaN reaches the env
                        run.check({}, {"actor": actor}, global_step)
                next_obs, reward, terminated, truncated, info = env.step(action)
                # next_obs is the real successor, also when the episode just ended: the reset comes after.
                replay_buffer.add(obs, action, float(reward), next_obs, terminated)
                obs = next_obs
                if terminated or truncated:
                    run.episode(info["episode"]["r"], info["episode"]["l"], global_step)
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
                        run.losses({"losses/qf1_loss": q_loss.item(), "losses/actor_loss": pi_loss.item()}, global_step)
                        logged_step = global_step
                run.progress(global_step + 1)
                run.checkpoint(global_step + 1)  # (--checkpoint-frequency)
            env.close()
            run.finish(networks)  # no non-finite weight goes on to the evaluation or a file
            eval_returns = evaluate(actor, args.env_id, args.seed, args.eval_episodes, device, run.video_dir)
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
    actor: Actor, env_id: str, seed: int, episodes: int, device: torch.device, video_dir: str | None = None
) -> list[float]:
    """Undiscounted returns of deterministic episodes, a = μ_θ(s), on a fresh env seeded once per run, each recorded
    to `video_dir` if given (plumbing.evaluation_returns: which start states it meets)."""

    def deterministic(obs: np.ndarray, space: gym.spaces.Box) -> np.ndarray:
        with torch.no_grad():
            return actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0].cpu().numpy()

    return plumbing.evaluation_returns(make_env, env_id, deterministic, seed, episodes, video_dir)


# ------------------------------------------------------------------------ what is this script's own
def rules(args: Args) -> list[plumbing.Rule]:
    """What each field must hold (plumbing.check_args refuses the first that does not, in one sentence)."""
    positive = ["total_timesteps", "buffer_size", "batch_size", "policy_frequency", "learning_rate"]
    last_start = args.total_timesteps - args.policy_frequency  # the last step an actor update can come at
    return [
        *[(name, getattr(args, name) > 0, "be positive") for name in [*positive, "critic_learning_rate"]],
        ("batch_size", args.batch_size <= args.buffer_size, "fit in the replay buffer (--buffer-size)"),
        ("learning_starts", 0 <= args.learning_starts <= last_start, "leave an actor update in --total-timesteps"),
        ("gamma", 0 <= args.gamma <= 1, "lie in [0, 1]"),
        ("tau", 0 < args.tau <= 1, "lie in (0, 1]"),
        ("exploration_noise", args.exploration_noise >= 0, "be non-negative"),
        ("ou_theta", 0 <= args.ou_theta <= 1, "lie in [0, 1]"),
        ("hidden_sizes", all(width > 0 for width in args.hidden_sizes), "be positive widths"),
    ]


def action_space_problem(env_id: str, actions: gym.Space) -> str | None:
    if isinstance(actions, gym.spaces.Discrete):
        return f"needs a Box (continuous) action space, but {env_id} has {actions}; for Discrete actions use dqn.py, reinforce.py, trpo.py or natural_gradient.py"
    if not isinstance(actions, gym.spaces.Box):
        return f"needs a Box (continuous) action space, but {env_id} has {actions}, which no script here handles"
    if len(actions.shape) != 1 or not (np.isfinite(actions.low).all() and np.isfinite(actions.high).all()):
        return f"needs a flat Box action space with finite bounds for its tanh actor, but {env_id} has {actions}"
    return plumbing.bounds_too_far_apart(env_id, actions)


def memory_needed(args: Args, obs_dim: int, actions: gym.spaces.Box) -> dict[str, int]:
    """Bytes, by the flag that sets them: the transitions; weights ×5 (θ, w, targets, ∇, Adam's two), activations."""
    actor = (obs_dim, *args.hidden_sizes, actions.shape[0])
    critic = (obs_dim + actions.shape[0], *args.hidden_sizes, 1)
    weights = sum((a + 1) * b for widths in (actor, critic) for a, b in itertools.pairwise(widths))
    transitions = min(args.buffer_size, args.total_timesteps) * 4 * (2 * (obs_dim + actions.shape[0]) + 2)
    networks = 4 * (5 * weights + 3 * args.batch_size * (sum(actor) + sum(critic)))
    return {"--buffer-size": transitions, "--hidden-sizes": networks}


ARCHITECTURE = ("hidden_sizes",)  # the settings a saved network's shape depends on, beside its env's spaces

if __name__ == "__main__":
    plumbing.cli(train, Args, __doc__)
