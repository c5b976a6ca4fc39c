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
    G_t        `reward_to_go`; over a batch `batch_returns` (bootstrapping the truncated episodes)
    Â_t        `advantages`
    ∇_θ J      `policy_gradient_loss` (its negative, so that a minimiser ascends J)
    θ, w       one Adam step on it, then `value_steps` on V_w's squared error: the update, in `train`

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

import plumbing  # first: a Ctrl-C while the imports below load is then one line

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn


@plumbing.with_run_settings  # then the run's settings: --seed, --device, --log-dir, ... (plumbing.RunSettings)
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
) -> tuple[list[Episode], list[tuple[float, int, int]], int]:
    """Whole episodes from all environments under the current π_θ, at least `min_steps` steps in all.

    Each environment starts a fresh episode; once `min_steps` steps are collected no new episode starts,
    and the ones in progress run to their end. Collection stops early, dropping unfinished episodes,
    after `max_steps` steps (the end of training). Returns the episodes, (return, length, which of the steps
    taken ended it) of each as recorded by RecordEpisodeStatistics, and the number of steps taken.
    """
    space = envs[0].action_space  # the same in every environment (looked up once: each wrapper forwards it)
    is_box = isinstance(space, gym.spaces.Box)
    obs = np.stack([env.reset()[0] for env in envs]).astype(np.float32)  # [num_envs, obs_dim]
    active = np.ones(len(envs), dtype=bool)
    current: list[list[tuple[np.ndarray, np.ndarray, float]]] = [[] for _ in envs]  # (S_t, A_t, R_{t+1}) so far
    episodes: list[Episode] = []
    statistics: list[tuple[float, int, int]] = []
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
                statistics.append((float(info["episode"]["r"]), int(info["episode"]["l"]), steps + j))
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
    args = plumbing.check_args(args, rules)  # (a copy in Python's own numbers)
    device = plumbing.resolve_device(args)
    env = plumbing.make_checked_env(args, make_env, device, plumbing.discrete_or_flat_box_actions, memory_needed)
    envs = [env] + [make_env(args.env_id) for _ in range(args.num_envs - 1)]
    checkpoint = plumbing.read_model(args, make_env, env, ARCHITECTURE)
    # the run directory, seeds, threads, TensorBoard; the caller's generators and settings come back after
    with plumbing.Run(args, device, remedy="--learning-rate or --value-learning-rate") as run:
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
        run.restore(checkpoint, networks, optimizers)  # --load-model: θ, w and Adam's states from its file
        updates = 0

        def state() -> dict:  # what the rest of the run depends on: a checkpoint holds it (--resume restores it)
            return {"networks": networks, "optimizers": optimizers, "envs": envs, "updates": updates}

        global_step, (envs, updates) = run.resume(state, step=0)
        try:
            while global_step < args.total_timesteps:
                episodes, statistics, steps = collect_episodes(
                    envs, policy, args.steps_per_update, args.total_timesteps - global_step, device
                )
                for episode_return, episode_length, step in statistics:  # at the step that ended it
                    run.episode(episode_return, episode_length, global_step + step)
                global_step += steps
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
                run.losses(
                    losses | ({"losses/value_loss": value_loss.item()} if value is not None else {}), global_step
                )
                run.scalars({"charts/episodes_per_update": len(episodes)}, global_step)
                run.progress(global_step)
                run.checkpoint(global_step)  # (--checkpoint-frequency)
            if updates == 0 and args.total_timesteps > 0:  # no episode ended inside the budget: refuse, not report
                raise run.discard(
                    f"no episode of {args.env_id} ended within --total-timesteps {args.total_timesteps} (about "
                    f"{args.total_timesteps // args.num_envs} steps in each of --num-envs {args.num_envs}), so the "
                    "policy was never updated; raise --total-timesteps or lower --num-envs"
                )
            for env in envs:
                env.close()
            run.finish(networks, global_step)  # no non-finite weight goes on to the evaluation or a file
            eval_returns = evaluate(policy, args.env_id, args.seed, args.eval_episodes, device, run.video_dir)
        except (KeyboardInterrupt, plumbing.RunFailed) as error:  # keep what can be kept, say where it stopped
            raise run.interrupted(error, global_step, networks, optimizers) from None
        return run.report(eval_returns, networks, optimizers)


# ----------------------------------------------------------------------------------- evaluation
def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """The env with flattened observations (Discrete observations become one-hot vectors), whose failures name its
    step (plumbing.CheckedEnv); kwargs go to gym.make."""
    return plumbing.CheckedEnv(
        gym.wrappers.FlattenObservation(gym.wrappers.RecordEpisodeStatistics(gym.make(env_id, **kwargs)))
    )


def evaluate(
    policy: Policy, env_id: str, seed: int, episodes: int, device: torch.device, video_dir: str | None = None
) -> list[float]:
    """Undiscounted returns of deterministic episodes (the Gaussian's mean, clipped into the bounds, or the most
    probable action) on a fresh env seeded once per run, each recorded to `video_dir` if given
    (plumbing.evaluation_returns: which start states it meets)."""

    def deterministic(obs: np.ndarray, space: gym.Space) -> np.ndarray | int:
        with torch.no_grad():
            obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)
            action = policy.deterministic_action(obs_tensor)[0].cpu().numpy()
        if isinstance(space, gym.spaces.Box):
            return np.clip(action, space.low, space.high)
        return int(action) + int(space.start)

    return plumbing.evaluation_returns(make_env, env_id, deterministic, seed, episodes, video_dir)


# ------------------------------------------------------------------------ what is this script's own
def rules(args: Args) -> list[plumbing.Rule]:
    """What each field must hold (plumbing.check_args refuses the first that does not, in one sentence)."""
    positive = ["total_timesteps", "num_envs", "steps_per_update", "learning_rate", "value_learning_rate"]
    return [
        *[(name, getattr(args, name) > 0, "be positive") for name in positive],
        ("num_envs", args.num_envs <= args.total_timesteps, "leave a step of every environment in --total-timesteps"),
        ("gamma", args.gamma is None or 0 <= args.gamma <= 1, "lie in [0, 1]"),
        ("value_steps", args.value_steps >= 0, "be non-negative"),
        ("init_log_std", -20 <= args.init_log_std <= 5, plumbing.LOG_STD),
        ("hidden_sizes", all(width > 0 for width in args.hidden_sizes), "be positive widths"),
    ]


def memory_needed(args: Args, obs_dim: int, actions: gym.Space) -> dict[str, int]:
    """Bytes, by the flag that sets them: the weights ×5 (θ, w, ∇, Adam's two); one update's steps, activations."""
    outputs = actions.shape[0] if actions.shape else int(actions.n)
    rows = min(args.steps_per_update, args.total_timesteps)  # one update's steps
    layers = [(obs_dim, *args.hidden_sizes, out) for out in (outputs, 1)]  # the policy's and V_w's
    weights = sum((a + 1) * b for widths in layers for a, b in itertools.pairwise(widths))
    row = obs_dim + outputs + 2 + 4 * (2 * sum(args.hidden_sizes) + outputs + 1)  # and its activations
    return {"--hidden-sizes": 4 * 5 * weights, "--steps-per-update": rows * 4 * row}


ARCHITECTURE = ("hidden_sizes", "baseline")  # the settings a saved network's shape depends on, beside its env's spaces

if __name__ == "__main__":
    plumbing.cli(train, Args, __doc__)
