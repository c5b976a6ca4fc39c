"""Natural policy gradient (NPG): the policy gradient measured in the geometry of the policy's distributions.

Ascend the importance-sampled surrogate along F⁻¹∇J instead of ∇J: the steepest-ascent direction when
distance is the KL divergence between the old and the new action distributions rather than the
Euclidean distance between parameter vectors, so the step does not depend on how the policy is
parameterised (Amari 1998, "Natural gradient works efficiently in learning"; Kakade 2001, "A Natural
Policy Gradient"; the step normalised to a KL budget as in Rajeswaran et al. 2017, "Towards
Generalization and Simplicity in Continuous Control"). TRPO (trpo.py) is this step plus a line search.

The update, in the lecture's notation, for a batch of n = num_envs · num_steps transitions collected with π_θ:

    Â_t = δ_t + γλ (1 − terminated_t)(1 − truncated_t) Â_{t+1},  δ_t = R_{t+1} + γ (1 − terminated_t) V_w(S_{t+1}) − V_w(S_t)
    L(θ') = 1/n Σ_t π_θ'(A_t | S_t) / π_θ(A_t | S_t) Â_t             (surrogate; ∇L at θ is the policy gradient)
    g = ∇_θ' L at θ = 1/n Σ_t ∇_θ log π_θ(A_t | S_t) Â_t
    F = ∇²_θ' D̄ at θ, D̄(θ') = 1/n Σ_t D_KL(π_θ(· | S_t) ‖ π_θ'(· | S_t))   (`--fisher kl-hessian`, the default)
    F = 1/n Σ_t ∇_θ log π_θ(A_t | S_t) ∇_θ log π_θ(A_t | S_t)ᵀ          (`--fisher empirical`: the score vectors)
    x ≈ (F + λI)⁻¹ g  by conjugate gradient on Fisher-vector products, λ = `cg_damping`
    θ ← θ + s,  s = sqrt(2δ / (xᵀ F x)) x                            (undamped ½ sᵀ F s = δ = `max_kl`; no line search)
    w ← w − α ∇_w 1/n Σ_t (V_w(S_t) − (Â_t + V_w_old(S_t)))²           (Adam, `value_epochs` passes)

`--vanilla` takes the plain gradient direction x = g, with its length set by the same undamped F, so that
both steps have the same quadratic KL model ½ sᵀFs = δ: only the direction differs, and the two can be
compared. The damping λ only conditions the conjugate-gradient solve; with it in the length, the damping
would eat a larger share of the natural step's budget than of the vanilla one's, and the two would differ
in size too. TensorBoard shows the undamped model (`policy/quadratic_kl`) beside the real KL (`policy/kl`).

Where each piece lives:
    π_θ          `CategoricalPolicy` (Discrete actions) or `GaussianPolicy` (Box: diagonal Gaussian, state-
                 independent log std), the same classes as reinforce.py's with an observation normaliser in front
    V_w          `ValueNetwork`
    rollout      `Rollout`, filled by `collect_rollout`
    Â_t          `generalized_advantages`
    L, D̄         `surrogate_and_kl`
    F v          `fisher_vector_product` (KL Hessian, double back-propagation) or
                 `empirical_fisher_vector_product` (per-sample score vectors by torch.func)
    F⁻¹ g        `conjugate_gradient`, on (F + λI): damping only conditions the solve
    the step     `trust_region_step`, applied by `natural_gradient_update`, which composes the update of θ; halved
                 while its measured KL is not finite or above `KL_GUARD` · δ: a guard, not a line search
    w            `fit_value`, onto the λ-returns Â_t + V_w(S_t) of `advantages_and_targets` (in `train`)
    optional     `ObservationNormalizer` (`--normalize-observations`, after the core): new statistics never move
                 the acting policy, so the step alone decides how far it goes

Every definition this file shares with trpo.py is the same, letter for letter (a test holds them so). The step length
uses xᵀFx rather than the textbook's gᵀx: equal when x = F⁻¹g exactly; with a truncated conjugate gradient (and with
`--vanilla`, x = g) xᵀFx is the quadratic KL model of the step actually taken, which is what δ bounds.

Box actions: a Gaussian sample is clipped into [low, high] before `env.step`, while its log-probability
is that of the unclipped sample. Termination is not truncation: δ_t is cut only where the episode
*terminated*; where it was *truncated*, S_{t+1} is the real final observation and δ_t bootstraps from
it. Vector environments step in a `gymnasium.vector.SyncVectorEnv` with `AutoresetMode.SAME_STEP`:
an episode's real final observation comes from `info["final_obs"]`, so no stored transition crosses a
reset and no pseudo-step of next-step autoreset enters a batch. Observations pass through
FlattenObservation.

Examples:
    python natural_gradient.py                                   # CartPole-v1, the defaults
    python natural_gradient.py --env-id Pendulum-v1 --vanilla    # the plain gradient, the same KL-sized step
    python natural_gradient.py --fisher empirical --max-kl 0.01
"""

import plumbing  # first: a Ctrl-C while the imports below load is then one line

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Generator, Tensor, nn
from torch.distributions import Distribution
from torch.func import functional_call, grad, vmap
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torch.optim import Optimizer


@plumbing.with_run_settings  # then the run's settings: --seed, --device, --log-dir, ... (plumbing.RunSettings)
@dataclass
class Args:
    env_id: str = "CartPole-v1"
    """id of a registered Gymnasium environment with a Discrete or Box action space"""
    total_timesteps: int = 100_000
    """environment steps to train for"""
    gamma: float | None = None
    """discount factor γ; None: 0.95 on Pendulum-v1 (by benchmarks/search.py, 2026-12-08; 0.99 learns far less there), 0.99 elsewhere"""
    learning_rate: float = 4.6e-3
    """Adam learning rate α of the value network (the policy moves by the trust-region step, not an optimiser); 4.6e-3 by benchmarks/search.py, 2026-12-08"""
    num_envs: int = 16
    """environments stepped side by side in one vector env"""
    num_steps: int = 128
    """steps per environment per update (the batch is num_envs · num_steps transitions)"""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """widths of the hidden layers of the policy and of the value network (none: linear)"""
    gae_lambda: float = 0.87
    """λ of GAE(λ): 0 is the one-step TD error, 1 the Monte-Carlo return minus V; 0.87 by benchmarks/search.py, 2026-12-08"""
    max_kl: float = 0.019
    """δ: the quadratic model ½ sᵀFs of the KL divergence that every step is sized to; 0.019 by benchmarks/search.py, 2026-12-08"""
    cg_iters: int = 10
    """conjugate-gradient iterations for x ≈ F⁻¹ g"""
    cg_damping: float = 0.15
    """λ: conjugate gradient solves (F + λI) x = g, so that a nearly singular F stays well conditioned (the step's length uses F alone); 0.15 by benchmarks/search.py, 2026-12-08"""
    fisher: Literal["kl-hessian", "empirical"] = "kl-hessian"
    """Fisher estimate: the Hessian of the mean KL, or the mean outer product of the batch's score vectors"""
    vanilla: bool = False
    """step along the plain gradient g instead of F⁻¹g, with the same quadratic KL model δ"""
    value_epochs: int = 5
    """passes of Adam over the batch, in mini-batches of value_batch_size, for the value network per update; 5 by benchmarks/search.py, 2026-12-08"""
    value_batch_size: int = 256
    """mini-batch size of the value network's regression"""
    normalize_advantages: bool = True
    """rescale each batch's advantages to mean 0 and standard deviation 1"""
    normalize_observations: bool = True
    """standardise observations by running moments: started by one rollout of random actions, then kept from moving the policy; on by benchmarks/search.py, 2026-12-08"""
    init_log_std: float = -0.44
    """Box actions: initial log std of the Gaussian, in units of the bounds' half-width; -0.44 by benchmarks/search.py, 2026-12-08"""


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
class Rollout(NamedTuple):
    """One update's transitions, [T, N, ...] (time, environment): preallocated once (`Rollout.zeros`), filled in
    place by `collect_rollout`, and cut to the steps an update used (`first`)."""

    obs: Tensor  # S_t, [T, N, obs_dim]
    next_obs: Tensor  # S_{t+1}, [T, N, obs_dim]: the real next observation, never a reset one
    actions: Tensor  # A_t, [T, N] int64 indices or [T, N, act_dim] unclipped Gaussian samples
    rewards: Tensor  # R_{t+1}, [T, N]
    terminated: Tensor  # [T, N]: 1.0 where S_{t+1} is terminal
    truncated: Tensor  # [T, N]: 1.0 where a time limit ended the episode at S_{t+1}

    @classmethod
    def zeros(
        cls, steps: int, envs: int, obs_dim: int, action_shape: tuple[int, ...], device: torch.device
    ) -> "Rollout":
        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.zeros(steps, envs, *shape, dtype=dtype, device=device)

        action_dtype = torch.float32 if action_shape else torch.int64
        return cls(zeros(obs_dim), zeros(obs_dim), zeros(*action_shape, dtype=action_dtype), zeros(), zeros(), zeros())

    def first(self, num_steps: int) -> "Rollout":
        """The first `num_steps` steps of every field (the budget's last rollout may be shorter)."""
        return Rollout(*(tensor[:num_steps] for tensor in self))


def collect_rollout(
    envs: gym.vector.VectorEnv, policy: Policy, storage: Rollout, obs: np.ndarray, num_steps: int
) -> tuple[np.ndarray, list[tuple[float, int, int]]]:
    """Step all environments `num_steps` times under π_θ, filling `storage[:num_steps]`; returns the observation
    to continue from and (return, length, t · N + i: the rollout's step that ended it) of every episode that ended."""
    space, device = envs.single_action_space, storage.obs.device
    is_box = isinstance(space, gym.spaces.Box)  # clipped into the bounds; Discrete: shifted to the space's start
    statistics: list[tuple[float, int, int]] = []
    for t in range(num_steps):
        obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)
        with torch.no_grad():
            actions = policy.sample(obs_tensor)
        actions_np = actions.cpu().numpy()
        env_actions = np.clip(actions_np, space.low, space.high) if is_box else actions_np + int(space.start)
        next_obs, rewards, terminated, truncated, info = envs.step(env_actions)
        real_next_obs = next_obs.copy()
        if "_final_obs" in info:  # same-step autoreset: next_obs holds reset observations where an episode ended
            for i in np.flatnonzero(info["_final_obs"]):
                real_next_obs[i] = info["final_obs"][i]
        if "_episode" in info:
            for i in np.flatnonzero(info["_episode"]):
                statistics.append((float(info["episode"]["r"][i]), int(info["episode"]["l"][i]), t * len(obs) + int(i)))
        storage.obs[t] = obs_tensor
        storage.actions[t] = actions
        storage.next_obs[t] = torch.as_tensor(real_next_obs, dtype=torch.float32, device=device)
        storage.rewards[t] = torch.as_tensor(rewards, dtype=torch.float32, device=device)
        storage.terminated[t] = torch.as_tensor(terminated, dtype=torch.float32, device=device)
        storage.truncated[t] = torch.as_tensor(truncated, dtype=torch.float32, device=device)
        obs = next_obs
    return obs, statistics


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
    batch: Rollout, value: nn.Module, gamma: float, gae_lambda: float, normalize: bool
) -> tuple[Tensor, Tensor]:
    """A rollout's advantages Â_t, flattened to [n] (standardised with --normalize-advantages), and the value
    targets Â_t + V_w(S_t), the λ-returns, by GAE under the value network as it stands."""
    with torch.no_grad():
        values = value(batch.obs)  # V_w(S_t), [T, N]
        next_values = value(batch.next_obs)  # V_w(S_{t+1}) of the real next observation
    advantages = generalized_advantages(
        batch.rewards, values, next_values, batch.terminated, batch.truncated, gamma, gae_lambda
    )
    value_targets = (advantages + values).flatten()  # the λ-return
    advantages = advantages.flatten()
    if normalize and len(advantages) > 1:
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


def empirical_fisher_vector_product(policy: Policy, obs: Tensor, actions: Tensor) -> Callable[[Tensor], Tensor]:
    """v ↦ F v with F = 1/n Σ_t s_t s_tᵀ, s_t = ∇_θ log π_θ(A_t | S_t), the batch's score vectors (undamped).

    The scores [n, n_params] come once from torch.func (vmap of grad over the batch); each product is
    then Sᵀ(S v) / n. In expectation over actions drawn from π_θ this is the same Fisher matrix as the
    KL Hessian; on a batch it is a different estimate.
    """
    params = {name: p.detach() for name, p in policy.named_parameters() if p.requires_grad}

    def log_prob(parameters: dict[str, Tensor], state: Tensor, action: Tensor) -> Tensor:
        distribution = functional_call(policy, parameters, (state.unsqueeze(0),))
        return distribution.log_prob(action.unsqueeze(0)).squeeze(0)

    per_sample = vmap(grad(log_prob), in_dims=(None, 0, 0))(params, obs, actions)
    scores = torch.cat([per_sample[name].flatten(1) for name in params], dim=1)  # [n, n_params]

    def product(v: Tensor) -> Tensor:
        return scores.T @ (scores @ v) / len(scores)

    return product


KL_GUARD = 10  # a step whose measured KL is not finite or > KL_GUARD · δ is halved (ten times at most, then none)


def natural_gradient_update(
    policy: Policy, obs: Tensor, actions: Tensor, advantages: Tensor, args: Args
) -> dict[str, float]:
    """One natural (or, with `vanilla`, plain) gradient step of π_θ on a batch; returns what is logged about it."""
    with torch.no_grad():
        old_distribution = policy(obs)
        old_log_prob = old_distribution.log_prob(actions)
        entropy = old_distribution.entropy().mean()
    params = [p for p in policy.parameters() if p.requires_grad]  # θ: what the step moves
    surrogate, _ = surrogate_and_kl(policy, obs, actions, advantages, old_distribution, old_log_prob)
    gradient = parameters_to_vector(torch.autograd.grad(surrogate, params))  # g = ∇_θ L at θ
    if args.fisher == "empirical":
        fisher_product = empirical_fisher_vector_product(policy, obs, actions)  # v ↦ F v
    else:
        fisher_product = fisher_vector_product(policy, obs)  # v ↦ F v
    if args.vanilla:
        x = gradient  # the plain gradient direction
    else:
        x = conjugate_gradient(fisher_product, gradient, args.cg_iters, args.cg_damping)  # x ≈ (F + λI)⁻¹ g
    step = trust_region_step(x, fisher_product(x), args.max_kl)  # by the undamped F: ½ sᵀ F s = δ either way
    quadratic_kl = 0.5 * step @ fisher_product(step)  # before θ moves: F is the Fisher matrix at the old θ
    old_params = parameters_to_vector(params).detach().clone()
    with torch.no_grad():
        for fraction in [2.0**-k for k in range(11)] + [0.0]:
            vector_to_parameters(old_params + fraction * step if fraction else old_params, params)
            surrogate_after, kl = surrogate_and_kl(policy, obs, actions, advantages, old_distribution, old_log_prob)
            if torch.isfinite(kl) and kl <= KL_GUARD * args.max_kl:
                break
    return {
        "policy/step_fraction": fraction,  # 1 but for a batch with no signal (a policy near a deterministic one)
        "policy/quadratic_kl": float(quadratic_kl),
        "policy/kl": float(kl),
        "policy/g_F_inverse_g": float(gradient @ x),  # gᵀx, x ≈ F⁻¹g (with --vanilla, x = g: ‖g‖²)
        "policy/surrogate_improvement": float(surrogate_after - surrogate.detach()),
        "losses/entropy": float(entropy),
        "policy/gradient_norm": float(gradient.norm()),
    }


def fit_value(
    value: nn.Module, optimizer: Optimizer, obs: Tensor, targets: Tensor, epochs: int, batch_size: int, rng: Generator
) -> Tensor:
    """w ← w − α ∇_w (V_w(S_t) − target_t)²: `epochs` shuffled passes of mini-batches of `batch_size` (Adam); returns
    the last mini-batch's loss."""
    loss = torch.zeros((), device=obs.device)
    for _ in range(epochs):
        order = torch.randperm(len(obs), generator=rng).to(obs.device)  # the mini-batches' order
        for start in range(0, len(obs), batch_size):
            index = order[start : start + batch_size]
            loss = (value(obs[index]) - targets[index]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return loss


# ------------------------------------------------- optional: observation normalisation (off by default)
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


# ------------------------------------------------------------------------------------- training loop
def default_gamma(env_id: str) -> float:
    """γ when --gamma is not given: 0.95 on Pendulum-v1, 0.99 on every other env (README.md has the measurements)."""
    return 0.95 if env_id == "Pendulum-v1" else 0.99


def train(args: Args) -> dict:
    args = plumbing.check_args(args, rules)  # (a copy in Python's own numbers)
    device = plumbing.resolve_device(args)
    env = plumbing.make_checked_env(args, make_env, device, plumbing.discrete_or_flat_box_actions, memory_needed)
    checkpoint = plumbing.read_model(args, make_env, env, ARCHITECTURE)
    env.close()  # (it served the checks; training steps num_envs copies together)
    envs = make_vector_env(args.env_id, args.num_envs)
    # the run directory, seeds, threads, TensorBoard; the caller's generators and settings come back after
    with plumbing.Run(args, device, remedy="--learning-rate or --max-kl, or --normalize-observations") as run:
        rng = torch.Generator().manual_seed(args.seed)  # the order of the value regression's mini-batches
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
        storage = Rollout.zeros(storage_steps, args.num_envs, obs_dim, space.shape, device)
        networks, optimizers = {"policy": policy, "value": value}, {"value_optimizer": value_optimizer}
        # --load-model: θ, w, the normaliser's statistics, Adam's state
        run.restore(checkpoint, networks, optimizers)
        global_step, update = 0, 0
        if args.normalize_observations and checkpoint is None:  # counted in the budget: steps in the environment
            obs = warm_up_normalizer(envs, normalizer, obs, args.num_steps)
            global_step = run.checked_step = args.num_steps * args.num_envs

        def state() -> dict:  # what the rest of the run depends on: a checkpoint holds it (--resume restores it)
            models = {"networks": networks, "optimizers": optimizers}
            return models | {"envs": envs, "obs": obs, "rng": rng, "update": update}

        global_step, (envs, obs, rng, update) = run.resume(state, global_step)
        if checkpoint is not None or update > 0:  # θ in one flat vector, as each update leaves it: the same arithmetic
            vector_to_parameters(parameters_to_vector(policy.parameters()), policy.parameters())
        try:
            while global_step + args.num_envs <= args.total_timesteps:
                # The last rollout is shortened to the whole steps of all environments that the budget has left.
                num_steps = min(args.num_steps, (args.total_timesteps - global_step) // args.num_envs)
                obs, statistics = collect_rollout(envs, policy, storage, obs, num_steps)
                for episode_return, episode_length, step in statistics:  # at the step that ended it
                    run.episode(episode_return, episode_length, global_step + step)
                global_step, update = global_step + num_steps * args.num_envs, update + 1
                batch = storage.first(num_steps)  # [T, N, ...]
                batch_obs, batch_actions = batch.obs.flatten(0, 1), batch.actions.flatten(0, 1)  # [n, ...]
                if args.normalize_observations:  # new statistics, the same functions: only the step below moves π_θ
                    normalizer.update(batch_obs, (policy, value))
                advantages, value_targets = advantages_and_targets(
                    batch, value, gamma, args.gae_lambda, args.normalize_advantages
                )
                logged = natural_gradient_update(policy, batch_obs, batch_actions, advantages, args)
                value_loss = fit_value(
                    value, value_optimizer, batch_obs, value_targets, args.value_epochs, args.value_batch_size, rng
                )
                run.losses(logged | {"losses/value_loss": value_loss.item()}, global_step)
                run.progress(global_step)
                run.checkpoint(global_step)  # (--checkpoint-frequency)
            envs.close()
            run.finish(networks, global_step)  # no non-finite weight goes on to the evaluation or a file
            eval_returns = evaluate(policy, args.env_id, args.seed, args.eval_episodes, device, run.video_dir)
        except (KeyboardInterrupt, plumbing.RunFailed) as error:  # keep what can be kept, say where it stopped
            raise run.interrupted(error, global_step, networks, optimizers) from None
        return run.report(eval_returns, networks, optimizers)


# ----------------------------------------------------------------------------------- evaluation
def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """The env with flattened observations (Discrete observations become one-hot vectors), whose failures name its
    step (plumbing.CheckedEnv); kwargs go to gym.make."""
    return plumbing.CheckedEnv(gym.wrappers.FlattenObservation(gym.make(env_id, **kwargs)))


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """`num_envs` copies stepped together, each ended episode reset in the same step (its real final observation in
    info["final_obs"]), and each one's return and length recorded."""
    envs = [lambda: make_env(env_id) for _ in range(num_envs)]
    return gym.wrappers.vector.RecordEpisodeStatistics(
        gym.vector.SyncVectorEnv(envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
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
    positive = ["total_timesteps", "num_envs", "num_steps", "cg_iters", "value_batch_size", "learning_rate", "max_kl"]
    skips = "go without --cg-iters and --cg-damping, whose solve it skips"
    warm_up = args.num_steps * args.num_envs if args.normalize_observations else 0  # random steps before training
    after_warm_up = "leave steps to train on after its warm-up (--num-steps × --num-envs)"
    return [
        *[(name, getattr(args, name) > 0, "be positive") for name in positive],
        ("num_envs", args.num_envs <= args.total_timesteps, "leave a step of all environments in --total-timesteps"),
        ("normalize_observations", not warm_up or warm_up + args.num_envs <= args.total_timesteps, after_warm_up),
        ("gamma", args.gamma is None or 0 <= args.gamma <= 1, "lie in [0, 1]"),
        ("gae_lambda", 0 <= args.gae_lambda <= 1, "lie in [0, 1]"),
        (
            "cg_damping",
            0 <= args.cg_damping <= 1e3,
            "lie in [0, 1000] (far above F's eigenvalues, λ swamps its curvature)",
        ),
        ("max_kl", 1e-10 <= args.max_kl <= 1, "lie in [1e-10, 1] nats (smaller steps barely move float32 weights)"),
        ("init_log_std", -20 <= args.init_log_std <= 5, plumbing.LOG_STD),
        ("vanilla", not args.vanilla or (args.cg_iters, args.cg_damping) == (Args.cg_iters, Args.cg_damping), skips),
        ("value_epochs", args.value_epochs >= 0, "be non-negative"),
        ("hidden_sizes", all(width > 0 for width in args.hidden_sizes), "be positive widths"),
    ]


def memory_needed(args: Args, obs_dim: int, actions: gym.Space) -> dict[str, int]:
    """Bytes, by the flag that sets them: the weights ×5 (θ, w, ∇, Adam's two); the rollout and its activations."""
    outputs = actions.shape[0] if actions.shape else int(actions.n)
    rows = min(args.num_steps, args.total_timesteps // args.num_envs) * args.num_envs  # one update's transitions
    layers = [(obs_dim, *args.hidden_sizes, out) for out in (outputs, 1)]  # the policy's and V_w's
    weights = sum((a + 1) * b for widths in layers for a, b in itertools.pairwise(widths))
    row = 2 * obs_dim + outputs + 4 + 4 * (2 * sum(args.hidden_sizes) + outputs + 1)  # and its activations
    return {"--hidden-sizes": 4 * 5 * weights, "--num-steps": rows * 4 * row}


ARCHITECTURE = ("hidden_sizes", "normalize_observations")  # what a saved network's shape depends on, beside the spaces

if __name__ == "__main__":
    plumbing.cli(train, Args, __doc__)
