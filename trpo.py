"""Trust Region Policy Optimization (TRPO): the natural gradient, sized to a KL budget and line-searched.

Policy iteration with a guaranteed improvement: maximise the importance-sampled surrogate of the
advantage under the current policy π_θ, subject to the new policy staying within a KL ball of it
(Schulman et al. 2015, "Trust Region Policy Optimization"; advantages by GAE, Schulman et al. 2016,
"High-Dimensional Continuous Control Using Generalized Advantage Estimation").

The update, in the lecture's notation, for a batch of n = num_envs · num_steps transitions collected with π_θ:

    δ_t = R_{t+1} + γ (1 − terminated_t) V_w(S_{t+1}) − V_w(S_t)      (TD error; S_{t+1} the real next state)
    Â_t = δ_t + γλ (1 − terminated_t)(1 − truncated_t) Â_{t+1}        (GAE(λ): the sum of δs stays in one episode)
    L(θ') = 1/n Σ_t π_θ'(A_t | S_t) / π_θ(A_t | S_t) Â_t             (surrogate; L(θ) = mean Â)
    D̄(θ') = 1/n Σ_t D_KL(π_θ(· | S_t) ‖ π_θ'(· | S_t))               (mean KL)
    g = ∇_θ' L at θ,   F = ∇²_θ' D̄ at θ  (the Fisher matrix),   x ≈ (F + λI)⁻¹ g  by conjugate gradient
    s = sqrt(2δ / (xᵀ F x)) x                                          (the step whose undamped quadratic KL model ½ sᵀFs is δ)
    θ ← θ + β^k s   for the first k = 0, 1, .. with D̄ ≤ δ and L(θ + β^k s) > L(θ); θ kept if none
    w ← w − α ∇_w 1/n Σ_t (V_w(S_t) − (Â_t + V_w_old(S_t)))²          (Adam, `value_epochs` passes)

Where each piece lives:
    π_θ          `CategoricalPolicy` (Discrete actions) or `GaussianPolicy` (Box: diagonal Gaussian, state-
                 independent log std), the same classes as reinforce.py's with an observation normaliser in front
    V_w          `ValueNetwork`
    rollout      `RolloutStorage`, filled by `collect_rollout`
    Â_t          `generalized_advantages`
    L, D̄         `surrogate_and_kl`
    F v          `fisher_vector_product`: the Hessian-vector product of D̄ by double back-propagation
    F⁻¹ g        `conjugate_gradient`, on (F + λI) with λ = `cg_damping`: damping only conditions the solve
    s, β^k       `trust_region_step`, `line_search`
    δ, λ, β      `max_kl`, `gae_lambda`, `backtrack_coeff`

Box actions: a Gaussian sample is clipped into [low, high] before `env.step`, while its log-probability
(in L and in the stored batch) is that of the unclipped sample.

`--normalize-observations`: a running mean and variance standardise the observations, started from one
rollout of random actions (`warm_up_normalizer`, counted in the budget). At each update the batch's
statistics are merged before the old log-probabilities are fixed, and the networks' first layers are
rescaled to compute the same functions (`ObservationNormalizer.update`): the trust region bounds every
change of the acting policy.

Termination is not truncation. δ_t is cut (no V_w(S_{t+1})) only where the episode *terminated*; where it
was *truncated*, S_{t+1} is the real final observation and δ_t bootstraps from it. Either way the λ-sum of
later δs stops there; where the rollout ends mid-episode, the last δ_t bootstraps from where it stopped.
`num_envs` copies step in a `SyncVectorEnv` with `AutoresetMode.SAME_STEP`: the real final observation
of an ended episode comes from `info["final_obs"]`, so every stored step is a real transition.
Observations pass through FlattenObservation.

Examples:
    python trpo.py                                           # CartPole-v1, the defaults
    python trpo.py --env-id Pendulum-v1                      # γ = 0.95 there by default
    python trpo.py --env-id Acrobot-v1 --normalize-observations --max-kl 0.01
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
from typing import BinaryIO, Literal

import gymnasium as gym
import numpy as np
import torch
import tyro
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torch.optim import Optimizer
from torch.utils.tensorboard import SummaryWriter


@dataclass
class Args:
    env_id: str = "CartPole-v1"
    """id of a registered Gymnasium environment with a Discrete or Box action space"""
    total_timesteps: int = 100_000
    """environment steps to train for"""
    gamma: float | None = None
    """discount factor γ; None: 0.95 on Pendulum-v1 (where 0.99 learns far less), 0.99 on every other env"""
    learning_rate: float = 7.3e-3
    """Adam learning rate α of the value network (the policy moves by the trust-region step, not an optimiser)"""
    num_envs: int = 16
    """environments stepped side by side in one vector env"""
    num_steps: int = 128
    """steps per environment per update (the batch is num_envs · num_steps transitions)"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the hidden layers of the policy and of the value network (none: linear)"""
    gae_lambda: float = 0.93
    """λ of GAE(λ): 0 is the one-step TD error, 1 the Monte-Carlo return minus V"""
    max_kl: float = 0.023
    """δ: the trust region's bound on the mean KL divergence between the old and the new policy"""
    cg_iters: int = 10
    """conjugate-gradient iterations for x ≈ F⁻¹ g"""
    cg_damping: float = 0.1
    """λ: conjugate gradient solves (F + λI) x = g, so that a nearly singular F stays well conditioned (the step's length uses F alone)"""
    backtrack_iters: int = 10
    """line-search tries: steps β^k s for k = 0 .. backtrack_iters − 1"""
    backtrack_coeff: float = 0.71
    """β: the factor that shrinks the step at each line-search try"""
    value_epochs: int = 9
    """passes of Adam over the batch, in mini-batches of value_batch_size, for the value network per update"""
    value_batch_size: int = 256
    """mini-batch size of the value network's regression"""
    normalize_advantages: bool = True
    """rescale each batch's advantages to mean 0 and standard deviation 1"""
    normalize_observations: bool = False
    """standardise observations by running moments: started by one rollout of random actions, then kept from moving the policy"""
    init_log_std: float = -0.32
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
    """save the policy and the value network, with the args, to <run_dir>/<exp_name>.pt at the end"""
    load_model: str | None = None
    """a file written by --save-model to start from (its networks and optimiser state); --total-timesteps 0 only evaluates it"""
    capture_video: bool = False
    """record the final evaluation episodes as MP4 files in <run_dir>/videos (needs: pip install moviepy pygame)"""
    eval_episodes: int = 10
    """deterministic evaluation episodes after training (0 turns the evaluation off)"""
    torch_threads: int = 1
    """torch CPU threads (small networks run fastest on one; 0 keeps torch's default)"""


# ----------------------------------------------------------------------------------------- networks
class ObservationNormalizer(nn.Module):
    """z = (s − m) / σ, σ = sqrt(var + ε), clipped to ±10, with the running mean m and variance of every observation seen.

    New statistics would change what every network computes, outside any trust region. So `update` also
    rescales the first linear layer of each network it is given, W z + b = W' z' + b' for all s:
    W' = W diag(σ'/σ), b' = b + W (m' − m)/σ. The networks compute the same functions as before (exactly,
    except where the ±10 clip binds), the policy moves only by the trust-region step, and the statistics
    still make the parameters well scaled for the value network's Adam and for conjugate gradient.
    """

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("var", torch.ones(obs_dim))
        self.register_buffer("count", torch.tensor(1e-4))

    def forward(self, obs: Tensor) -> Tensor:
        return ((obs - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-10.0, 10.0)

    @torch.no_grad()
    def update(self, obs: Tensor, networks: tuple[nn.Module, ...] = ()) -> None:
        """Merge a batch [n, obs_dim] into the running moments (Chan et al.'s parallel algorithm), keeping the
        functions of `networks` (each one's first nn.Linear reads this normaliser's output) as they were."""
        old_mean, old_std = self.mean.clone(), torch.sqrt(self.var + 1e-8)
        batch_mean, batch_var, batch_count = obs.mean(0), obs.var(0, unbiased=False), obs.shape[0]
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * batch_count / total
        self.var.copy_(
            (self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total) / total
        )
        self.count.copy_(total)
        for network in networks:
            first = next(m for m in network.modules() if isinstance(m, nn.Linear))
            first.bias += first.weight @ ((self.mean - old_mean) / old_std)  # b' = b + W (m' − m)/σ
            first.weight *= torch.sqrt(self.var + 1e-8) / old_std  # W' = W diag(σ'/σ)


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

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: tuple[int, ...], normalizer: nn.Module) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.logits = mlp(obs_dim, n_actions, hidden_sizes, out_gain=0.01)

    def forward(self, obs: Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.logits(self.normalizer(obs)), validate_args=False)

    def sample(self, obs: Tensor) -> Tensor:
        """An action index per row drawn from π_θ(· | s), [B], by the Gumbel-max trick: argmax_a (logits_a − log E_a),
        E_a ~ Exp(1), is distributed as softmax(logits), at a tenth of the cost of forward(obs).sample() on CPU."""
        logits = self.logits(self.normalizer(obs))
        return (logits - torch.empty_like(logits).exponential_().log()).argmax(dim=-1)

    def deterministic_action(self, obs: Tensor) -> Tensor:
        """The most probable action index, [B]."""
        return self.logits(self.normalizer(obs)).argmax(dim=-1)


class GaussianPolicy(nn.Module):
    """π_θ(· | s) = N(μ_θ(s), diag σ²): observation [B, obs_dim] → Independent Normal over [B, act_dim]; μ_θ(s) =
    center + scale · net(s) and σ = scale · exp(log_std), with center and scale the middle and half-width of the
    bounds (0 and 1 where unbounded), so the network works in units of the bounds; log_std does not depend on s."""

    def __init__(
        self,
        obs_dim: int,
        box: gym.spaces.Box,
        hidden_sizes: tuple[int, ...],
        init_log_std: float,
        normalizer: nn.Module,
    ) -> None:
        super().__init__()
        low, high = box.low, box.high  # the action bounds
        bounded = np.isfinite(low) & np.isfinite(high)
        center = np.where(bounded, (high + low) / 2, 0.0)
        scale = np.where(bounded, (high - low) / 2, 1.0)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.normalizer = normalizer
        self.mean = mlp(obs_dim, len(low), hidden_sizes, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((len(low),), float(init_log_std)))

    def forward(self, obs: Tensor) -> torch.distributions.Independent:
        mean = self.center + self.scale * self.mean(self.normalizer(obs))  # [B, act_dim]
        std = self.scale * self.log_std.exp()  # [act_dim], broadcast over the batch
        return torch.distributions.Independent(torch.distributions.Normal(mean, std, validate_args=False), 1)

    def sample(self, obs: Tensor) -> Tensor:
        """An action drawn from π_θ(· | s), [B, act_dim] (unclipped)."""
        return self(obs).sample()

    def deterministic_action(self, obs: Tensor) -> Tensor:
        """The mean action μ_θ(s), [B, act_dim] (unclipped)."""
        return self.center + self.scale * self.mean(self.normalizer(obs))


class ValueNetwork(nn.Module):
    """V_w: observation [B, obs_dim] → state value [B]."""

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...], normalizer: nn.Module) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.net = mlp(obs_dim, 1, hidden_sizes, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(self.normalizer(obs)).squeeze(-1)


Policy = CategoricalPolicy | GaussianPolicy


# ------------------------------------------------------------------------------ rollout storage
class RolloutStorage:
    """One update's transitions, preallocated as [num_steps, num_envs, ...] tensors."""

    def __init__(
        self, num_steps: int, num_envs: int, obs_dim: int, action_shape: tuple[int, ...], device: torch.device
    ):
        self.obs = torch.zeros(num_steps, num_envs, obs_dim, device=device)  # S_t
        self.next_obs = torch.zeros(num_steps, num_envs, obs_dim, device=device)  # S_{t+1}, never a reset one
        action_dtype = torch.float32 if action_shape else torch.int64
        self.actions = torch.zeros(num_steps, num_envs, *action_shape, dtype=action_dtype, device=device)  # A_t
        self.rewards = torch.zeros(num_steps, num_envs, device=device)  # R_{t+1}
        self.terminated = torch.zeros(num_steps, num_envs, device=device)  # 1: S_{t+1} is terminal
        self.truncated = torch.zeros(num_steps, num_envs, device=device)  # 1: a time limit ended the episode here

    def batch(self, num_steps: int) -> types.SimpleNamespace:
        """Every field's first `num_steps` steps, [num_steps, num_envs, ...] (the budget's last rollout may be shorter)."""
        return types.SimpleNamespace(**{field: tensor[:num_steps] for field, tensor in vars(self).items()})


def collect_rollout(
    envs: gym.vector.VectorEnv, policy: Policy, storage: RolloutStorage, obs: np.ndarray, num_steps: int
) -> tuple[np.ndarray, list[tuple[float, int]]]:
    """Step all environments `num_steps` times under π_θ, filling `storage[:num_steps]`; returns the observation
    to continue from and (return, length) of every episode that ended."""
    space, device = envs.single_action_space, storage.obs.device
    statistics: list[tuple[float, int]] = []
    for t in range(num_steps):
        obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)
        with torch.no_grad():
            actions = policy.sample(obs_tensor)
        actions_np = actions.cpu().numpy()
        if isinstance(space, gym.spaces.Box):
            env_actions = np.clip(actions_np, space.low, space.high)
        else:
            env_actions = actions_np + int(space.start)
        next_obs, rewards, terminated, truncated, info = envs.step(env_actions)
        real_next_obs = next_obs.copy()
        if "_final_obs" in info:  # same-step autoreset: next_obs holds reset observations where an episode ended
            for i in np.flatnonzero(info["_final_obs"]):
                real_next_obs[i] = info["final_obs"][i]
        if "_episode" in info:
            for i in np.flatnonzero(info["_episode"]):
                statistics.append((float(info["episode"]["r"][i]), int(info["episode"]["l"][i])))
        storage.obs[t] = obs_tensor
        storage.actions[t] = actions
        storage.next_obs[t] = torch.as_tensor(real_next_obs, dtype=torch.float32, device=device)
        storage.rewards[t] = torch.as_tensor(rewards, dtype=torch.float32, device=device)
        storage.terminated[t] = torch.as_tensor(terminated, dtype=torch.float32, device=device)
        storage.truncated[t] = torch.as_tensor(truncated, dtype=torch.float32, device=device)
        obs = next_obs
    return obs, statistics


def warm_up_normalizer(
    envs: gym.vector.VectorEnv, normalizer: ObservationNormalizer, obs: np.ndarray, num_steps: int
) -> np.ndarray:
    """Start the normaliser's statistics from `num_steps` steps of random actions in every environment, then reset
    them, so that no training episode begins with random actions. Returns the first observation."""
    seen = [obs]
    for _ in range(num_steps):
        obs, *_ = envs.step(envs.action_space.sample())
        seen.append(obs)
    normalizer.update(torch.as_tensor(np.concatenate(seen), dtype=torch.float32, device=normalizer.mean.device))
    return envs.reset()[0]


# --------------------------------------------------------------------------------- the algorithm
def generalized_advantages(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    gae_lambda: float,
) -> Tensor:
    """Â_t = δ_t + γλ (1 − terminated_t)(1 − truncated_t) Â_{t+1}, δ_t = R_{t+1} + γ (1 − terminated_t) V(S_{t+1}) − V(S_t).

    All [T, N] (time, environment); `next_values` is V of the real next observation, so a truncated step
    bootstraps from its final observation, and the λ-sum stops at either end of an episode (Â_T = 0).
    """
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values
    same_episode_next = (1.0 - terminated) * (1.0 - truncated)  # 0 where the next stored step is a reset
    result = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in reversed(range(len(deltas))):
        running = deltas[t] + gamma * gae_lambda * same_episode_next[t] * running
        result[t] = running
    return result


def advantages_and_targets(
    batch: types.SimpleNamespace, value: nn.Module, gamma: float, args: Args
) -> tuple[Tensor, Tensor]:
    """A rollout's advantages Â_t, flattened to [n] (standardised with --normalize-advantages), and the value
    targets Â_t + V_w(S_t), the λ-returns, by GAE under the value network as it stands."""
    with torch.no_grad():
        values = value(batch.obs)  # V_w(S_t), [T, N]
        next_values = value(batch.next_obs)  # V_w(S_{t+1}) of the real next observation
    advantages = generalized_advantages(
        batch.rewards, values, next_values, batch.terminated, batch.truncated, gamma, args.gae_lambda
    )
    value_targets = (advantages + values).flatten()  # the λ-return
    advantages = advantages.flatten()
    if args.normalize_advantages and len(advantages) > 1:
        # A batch whose advantages are all equal carries no signal: it becomes zeros, not 0/0.
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    return advantages, value_targets


def surrogate_and_kl(
    policy: Policy, obs: Tensor, actions: Tensor, advantages: Tensor, old: Distribution, old_log_prob: Tensor
) -> tuple[Tensor, Tensor]:
    """L(θ') = mean π_θ'(A|S)/π_θ(A|S) Â and D̄(θ') = mean KL(π_θ ‖ π_θ') at the policy's current θ'; π_θ is `old`."""
    distribution = policy(obs)
    ratio = torch.exp(distribution.log_prob(actions) - old_log_prob)
    surrogate = (ratio * advantages).mean()
    kl = torch.distributions.kl_divergence(old, distribution).mean()
    return surrogate, kl


def fisher_vector_product(policy: Policy, obs: Tensor) -> Callable[[Tensor], Tensor]:
    """v ↦ F v, F = ∇²_θ' D̄ at θ' = θ, the current parameters, undamped (there D̄ and ∇D̄ are 0 and ∇²D̄ is the
    Fisher matrix), over the observations `obs`: ∇_θ' D̄ is built once with a graph, and each product is one
    backward pass of (∇_θ' D̄)ᵀ v."""
    params = [p for p in policy.parameters() if p.requires_grad]  # θ: what the step moves
    with torch.no_grad():
        old_distribution = policy(obs)  # π_θ, held fixed
    kl = torch.distributions.kl_divergence(old_distribution, policy(obs)).mean()
    kl_gradient = parameters_to_vector(torch.autograd.grad(kl, params, create_graph=True))

    def product(v: Tensor) -> Tensor:
        hessian_v = torch.autograd.grad(kl_gradient @ v, params, retain_graph=True)
        return parameters_to_vector(hessian_v)

    return product


def conjugate_gradient(
    product: Callable[[Tensor], Tensor], b: Tensor, iters: int, damping: float = 0.0, tolerance: float = 1e-10
) -> Tensor:
    """x ≈ (A + damping · I)⁻¹ b for a symmetric positive-semidefinite A given as `product`: v ↦ A v, in at most
    `iters` steps, fewer once the squared residual is below `tolerance` (b = 0 gives x = 0). The damping keeps
    a nearly singular A (a Fisher matrix) well conditioned; it lives here only, not in the step's length."""
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    residual_norm = residual @ residual
    for _ in range(iters):
        if residual_norm < tolerance:
            break
        a_direction = product(direction) + damping * direction
        alpha = residual_norm / (direction @ a_direction)
        x += alpha * direction
        residual -= alpha * a_direction
        new_residual_norm = residual @ residual
        direction = residual + (new_residual_norm / residual_norm) * direction
        residual_norm = new_residual_norm
    return x


def trust_region_step(x: Tensor, fisher_x: Tensor, max_kl: float) -> Tensor:
    """s = sqrt(2δ / (xᵀ F x)) x, whose quadratic KL model ½ sᵀ F s equals δ; zero if xᵀ F x is not positive."""
    curvature = x @ fisher_x
    if not curvature > 0:  # x = 0 (a zero gradient) or a degenerate batch: take no step
        return torch.zeros_like(x)
    return torch.sqrt(2.0 * max_kl / curvature) * x


def line_search(
    policy: Policy, step: Tensor, evaluate_surrogate_and_kl: Callable[[], tuple[Tensor, Tensor]], args: Args
) -> tuple[float, float, float]:
    """Try θ + β^k s for k = 0, 1, ..; keep the first with D̄ ≤ δ and a higher surrogate, else restore θ. Returns
    (β^k, the surrogate's improvement, the KL taken), all 0 when no step qualified."""
    params = [p for p in policy.parameters() if p.requires_grad]  # θ: what the step moves
    old_params = parameters_to_vector(params).detach().clone()
    with torch.no_grad():
        old_surrogate, _ = evaluate_surrogate_and_kl()
        for k in range(args.backtrack_iters):
            fraction = args.backtrack_coeff**k
            vector_to_parameters(old_params + fraction * step, params)
            surrogate, kl = evaluate_surrogate_and_kl()
            improvement = float(surrogate - old_surrogate)
            if float(kl) <= args.max_kl and improvement > 0:
                return fraction, improvement, float(kl)
        vector_to_parameters(old_params, params)
    return 0.0, 0.0, 0.0


def trpo_update(policy: Policy, obs: Tensor, actions: Tensor, advantages: Tensor, args: Args) -> dict[str, float]:
    """One TRPO step of π_θ on a batch; returns what is logged about it."""
    with torch.no_grad():
        old_distribution = policy(obs)
        old_log_prob = old_distribution.log_prob(actions)
        entropy = old_distribution.entropy().mean()

    def evaluate_surrogate_and_kl() -> tuple[Tensor, Tensor]:
        return surrogate_and_kl(policy, obs, actions, advantages, old_distribution, old_log_prob)

    params = [p for p in policy.parameters() if p.requires_grad]  # θ: what the step moves
    surrogate, _ = evaluate_surrogate_and_kl()
    gradient = parameters_to_vector(torch.autograd.grad(surrogate, params))  # g = ∇_θ L at θ
    fisher_product = fisher_vector_product(policy, obs)  # v ↦ F v
    x = conjugate_gradient(fisher_product, gradient, args.cg_iters, args.cg_damping)  # x ≈ (F + λI)⁻¹ g
    step = trust_region_step(x, fisher_product(x), args.max_kl)  # ½ sᵀ F s = δ, by the undamped F
    quadratic_kl = 0.5 * float(step @ fisher_product(step))  # before θ moves: F is the Fisher matrix at the old θ
    fraction, improvement, kl = line_search(policy, step, evaluate_surrogate_and_kl, args)
    return {
        "policy/quadratic_kl": fraction**2 * quadratic_kl,  # ½ (β^k s)ᵀ F (β^k s), the model of the step taken
        "policy/kl": kl,
        "policy/surrogate_improvement": improvement,
        "policy/accepted_step_fraction": fraction,
        "policy/step_rejected": float(fraction == 0.0),
        "policy/entropy": float(entropy),
        "policy/gradient_norm": float(gradient.norm()),
    }


def fit_value(
    value: nn.Module, optimizer: torch.optim.Adam, obs: Tensor, targets: Tensor, args: Args, generator: torch.Generator
) -> Tensor:
    """Regress V_w onto the targets: `value_epochs` shuffled passes of mini-batches; returns the last loss."""
    loss = torch.zeros((), device=obs.device)
    for _ in range(args.value_epochs):
        order = torch.randperm(len(obs), generator=generator).to(obs.device)
        for start in range(0, len(obs), args.value_batch_size):
            index = order[start : start + args.value_batch_size]
            loss = (value(obs[index]) - targets[index]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return loss


# ------------------------------------------------------------------------------------- training loop
def default_gamma(env_id: str) -> float:
    """γ when --gamma is not given: 0.95 on Pendulum-v1, 0.99 on every other env (README.md has the measurements)."""
    return 0.95 if env_id == "Pendulum-v1" else 0.99


def train(args: Args) -> dict:
    check_args(args)
    device = resolve_device(args.device)
    envs = make_checked_envs(args, device)
    checkpoint = read_model(args, envs.single_observation_space, envs.single_action_space)  # None without --load-model
    run_dir = make_run_dir(args)
    # seeds, threads, determinism (the caller's come back after); the logs are flushed however the run ends
    with seeded_run(args, device), SummaryWriter(run_dir) as writer:
        log = RunLog(writer, args)
        generator = torch.Generator().manual_seed(args.seed)  # the order of the value regression's mini-batches
        envs.action_space.seed(args.seed)
        obs, _ = envs.reset(seed=args.seed)  # environment i is seeded with seed + i
        space, obs_dim = envs.single_action_space, envs.single_observation_space.shape[0]
        gamma = default_gamma(args.env_id) if args.gamma is None else args.gamma
        normalizer = ObservationNormalizer(obs_dim) if args.normalize_observations else nn.Identity()
        if isinstance(space, gym.spaces.Box):
            policy: Policy = GaussianPolicy(obs_dim, space, args.hidden_sizes, args.init_log_std, normalizer)
        else:
            policy = CategoricalPolicy(obs_dim, int(space.n), args.hidden_sizes, normalizer)
        policy = policy.to(device)
        value = ValueNetwork(obs_dim, args.hidden_sizes, normalizer).to(device)  # shares the one normaliser
        value_optimizer = torch.optim.Adam(value.net.parameters(), lr=args.learning_rate, fused=True)
        storage_steps = min(args.num_steps, args.total_timesteps // args.num_envs)  # never more than the budget
        storage = RolloutStorage(storage_steps, args.num_envs, obs_dim, space.shape, device)
        networks, optimizers = {"policy": policy, "value": value}, {"value_optimizer": value_optimizer}
        restore(checkpoint, networks, optimizers)  # --load-model: θ, w, the normaliser's statistics, Adam's state
        if checkpoint is not None:  # θ in one flat vector, as each update leaves it: the saving run's float arithmetic
            vector_to_parameters(parameters_to_vector(policy.parameters()), policy.parameters())
        global_step, update = 0, 0
        if args.normalize_observations and checkpoint is None:  # counted in the budget: steps in the environment
            obs = warm_up_normalizer(envs, normalizer, obs, args.num_steps)
            global_step = log.checked_step = args.num_steps * args.num_envs
        try:
            while global_step + args.num_envs <= args.total_timesteps:
                # The last rollout is shortened to the whole steps of all environments that the budget has left.
                num_steps = min(args.num_steps, (args.total_timesteps - global_step) // args.num_envs)
                obs, statistics = collect_rollout(envs, policy, storage, obs, num_steps)
                global_step, update = global_step + num_steps * args.num_envs, update + 1
                for episode_return, episode_length in statistics:
                    log.episode(episode_return, episode_length, global_step)
                batch = storage.batch(num_steps)  # [T, N, ...]
                batch_obs, batch_actions = batch.obs.flatten(0, 1), batch.actions.flatten(0, 1)  # [n, ...]
                if args.normalize_observations:  # new statistics, the same functions: only the step below moves π_θ
                    normalizer.update(batch_obs, (policy, value))
                advantages, value_targets = advantages_and_targets(batch, value, gamma, args)
                logged = trpo_update(policy, batch_obs, batch_actions, advantages, args)
                value_loss = fit_value(value, value_optimizer, batch_obs, value_targets, args, generator)
                log.losses(logged | {"losses/value_loss": value_loss.item()}, global_step)
                if logged["policy/step_rejected"]:
                    print(
                        f"update {update}: no line-search step kept the KL within {args.max_kl} and improved the surrogate; θ kept"
                    )
                log.progress(global_step)
            envs.close()
            log.finish(networks, global_step)  # no non-finite weight goes on to the evaluation or a file
            videos = video_dir(args, run_dir)  # None without --capture-video
            eval_returns = evaluate(policy, args.env_id, args.seed, args.eval_episodes, device, videos)
        except KeyboardInterrupt:
            raise interrupted(args, run_dir, global_step, networks, optimizers) from None
        return report(args, log, run_dir, eval_returns, networks, optimizers)


# ----------------------------------------------------------------------------------- evaluation
def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """The env with flattened observations (Discrete observations become one-hot vectors); kwargs go to gym.make."""
    return gym.wrappers.FlattenObservation(gym.make(env_id, **kwargs))


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
    positive = ["total_timesteps", "num_envs", "num_steps", "cg_iters", "backtrack_iters", "value_batch_size"]
    rules = [(name, getattr(args, name) > 0, "be positive") for name in [*positive, "learning_rate", "max_kl"]]
    warm_up = args.num_steps * args.num_envs if args.normalize_observations else 0  # random steps before training
    after_warm_up = "leave steps to train on after its warm-up (--num-steps × --num-envs)"
    rules += [  # (field, whether its rule holds, what it must do)
        ("normalize_observations", not warm_up or warm_up + args.num_envs <= args.total_timesteps, after_warm_up),
        ("num_envs", args.num_envs <= args.total_timesteps, "leave a step of all environments in --total-timesteps"),
        ("gamma", args.gamma is None or 0 <= args.gamma <= 1, "lie in [0, 1]"),
        ("gae_lambda", 0 <= args.gae_lambda <= 1, "lie in [0, 1]"),
        ("cg_damping", args.cg_damping >= 0, "be non-negative"),
        ("backtrack_coeff", 0 < args.backtrack_coeff < 1, "lie in (0, 1)"),
        ("value_epochs", args.value_epochs >= 0, "be non-negative"),
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


def make_checked_envs(args: Args, device: torch.device) -> gym.vector.VectorEnv:
    """The vector env, or one sentence on why the env cannot be made (any exception, not only Gymnasium's) or used."""
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown if the env is made; otherwise the error says it
            probe = make_env(args.env_id)
    except Exception as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split()).rstrip(".")
        raise UsageError(f"{SCRIPT} cannot make the environment {args.env_id!r}: {reason}.") from None
    for warning in caught:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    obs, actions = probe.observation_space, probe.action_space
    probe.close()
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
        problem = (
            f"cannot flatten the observations of {args.env_id} ({probe.unwrapped.observation_space}) into a vector"
        )
    elif not (
        isinstance(actions, gym.spaces.Discrete) or (isinstance(actions, gym.spaces.Box) and len(actions.shape) == 1)
    ):
        problem = f"needs a Discrete or a one-dimensional Box action space, but {args.env_id} has {actions}; wrap the env to flatten its actions first"
    else:
        outputs = actions.shape[0] if actions.shape else int(actions.n)
        rows = min(args.num_steps, args.total_timesteps // args.num_envs) * args.num_envs  # one update's transitions
        layers = [(obs.shape[0], *args.hidden_sizes, out) for out in (outputs, 1)]  # the policy's and V_w's
        weights = sum((a + 1) * b for widths in layers for a, b in itertools.pairwise(widths))
        row = 2 * obs.shape[0] + outputs + 4 + 4 * (2 * sum(args.hidden_sizes) + outputs + 1)  # and its activations
        # bytes: the weights ×5 (θ, w, ∇, Adam's two); the rollout and its activations
        problem = memory_problem({"--hidden-sizes": 4 * 5 * weights, "--num-steps": rows * 4 * row}, device)
    if problem is not None:
        raise UsageError(f"{SCRIPT} {problem}.")
    if args.capture_video:
        check_video(args)
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(args.env_id) for _ in range(args.num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


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


ARCHITECTURE = (
    "hidden_sizes",
    "normalize_observations",
)  # the settings a saved network's shape depends on, beside its env's spaces


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
            "--learning-rate or --max-kl, or --normalize-observations."
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
