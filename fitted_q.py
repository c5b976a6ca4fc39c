"""Neural fitted Q-iteration: collect N transitions, freeze a target, regress K steps; DQN is close to N = C, K = C/F.

Q-learning with function approximation runs three processes (the lecture's "more general view"):
(1) collecting transitions into a buffer D, (2) saving target parameters w' ← w, and (3) regressing
q̂_w onto targets computed with w'. Online Q-learning runs all three at one rate; DQN runs (2) slowly;
fitted Q-iteration puts (3) in the inner loop of (2), inside (1) (Riedmiller 2005, "Neural Fitted Q
Iteration"; Ernst, Geurts & Wehenkel 2005, "Tree-Based Batch Mode Reinforcement Learning").

Each iteration of the outer loop:

    w' ← w                                                         (2) `update_target_network` (τ = 1)
    collect N transitions with ε-greedy(q̂_w) into D                (1) `epsilon_greedy_action`, N = `transitions_per_iteration`
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

import plumbing  # first: a Ctrl-C while the imports below load is then one line

import itertools
import math
import os
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
    args = plumbing.check_args(args, rules)  # (a copy in Python's own numbers)
    device = plumbing.resolve_device(args)
    env = plumbing.make_checked_env(args, make_env, device, plumbing.discrete_actions, memory_needed)
    obs_dim, n_actions, shift = env.observation_space.shape[0], int(env.action_space.n), int(env.action_space.start)
    dataset = load_dataset(args.dataset, obs_dim, n_actions) if args.dataset is not None else None
    checkpoint = plumbing.read_model(args, make_env, env, ARCHITECTURE)
    # the run directory, seeds, threads, TensorBoard; the caller's generators and settings come back after
    with plumbing.Run(args, device, remedy="--learning-rate") as run:
        rng = np.random.default_rng(args.seed)
        env.action_space.seed(args.seed)
        q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
        target_q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
        optimizer = make_optimizer(q_network, args)
        run.restore(checkpoint, {"q_network": q_network}, {"optimizer": optimizer})  # --load-model: w, the optimiser
        target_q_network.load_state_dict(q_network.state_dict())
        capacity = len(dataset["action"]) if dataset is not None else min(args.buffer_size, args.total_timesteps)
        replay_buffer = ReplayBuffer(capacity, obs_dim, rng)  # online, never more than the run's transitions
        for i in range(capacity if dataset is not None else 0):  # offline, D is the dataset
            replay_buffer.add(*(dataset[name][i] for name in DATASET_FIELDS))
        iterations = math.ceil(args.total_timesteps / args.transitions_per_iteration)
        global_step, exploration_steps = 0, args.exploration_fraction * args.total_timesteps
        obs, _ = env.reset(seed=args.seed)
        iteration = -1  # (none done yet)

        def state() -> dict:  # what the rest of the run depends on: a checkpoint holds it (--resume restores it)
            networks = {"q_network": q_network, "target_q_network": target_q_network}
            models = {"networks": networks, "optimizers": {"optimizer": optimizer}}
            return models | {"env": env, "rng": rng, "replay_buffer": replay_buffer, "obs": obs, "next": iteration + 1}

        global_step, (env, rng, replay_buffer, obs, start) = run.resume(state, step=0)
        try:
            for iteration in range(start, iterations):
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
                            run.episode(info["episode"]["r"], info["episode"]["l"], global_step)
                            obs, _ = env.reset()
                        global_step += 1
                else:
                    global_step += args.transitions_per_iteration  # offline: the budget counts iterations

                if dataset is not None or global_step >= args.learning_starts:
                    if args.refit_from_scratch:  # NFQ: each iteration fits a fresh network
                        q_network = QNetwork(obs_dim, n_actions, args.hidden_sizes).to(device)
                        optimizer = make_optimizer(q_network, args)
                    loss = fit(q_network, target_q_network, optimizer, replay_buffer, args, device)  # (3) K steps
                    if iteration % max(1, iterations // 10) == 0 or iteration == iterations - 1:  # .item() waits
                        run.losses({"losses/td_loss": loss.item()}, global_step)
                if dataset is None:  # (offline there are no environment steps to count)
                    run.progress(global_step)
                run.checkpoint(global_step)  # (--checkpoint-frequency)
            env.close()
            networks, optimizers = {"q_network": q_network}, {"optimizer": optimizer}  # (refits replace them)
            run.finish(networks, global_step, offline=dataset is not None)  # no non-finite weight goes on
            eval_returns = evaluate(q_network, args.env_id, args.seed, args.eval_episodes, device, run.video_dir)
        except (KeyboardInterrupt, plumbing.RunFailed) as error:  # keep what can be kept, say where it stopped
            networks, optimizers = {"q_network": q_network}, {"optimizer": optimizer}
            kept = f"; {save_dataset(args.save_dataset, replay_buffer)}" if args.save_dataset else ""
            raise run.interrupted(error, global_step, networks, optimizers, kept) from None
        if args.save_dataset is not None:
            print(save_dataset(args.save_dataset, replay_buffer))
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
    positive = ["total_timesteps", "buffer_size", "batch_size", "transitions_per_iteration", "fit_steps"]
    offline, save = args.dataset is not None, args.save_dataset
    collection = ["buffer_size", "learning_starts", "start_e", "end_e", "exploration_fraction", "save_dataset"]
    unset = "stay unset with --dataset, which collects nothing"
    save_dir = os.path.dirname(os.path.abspath(save or "."))
    return [
        *[(name, getattr(args, name) > 0, "be positive") for name in [*positive, "learning_rate"]],
        *[(name, not offline or getattr(args, name) == getattr(Args, name), unset) for name in collection],
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
            save is None or (os.path.isdir(save_dir) and plumbing.writable(save_dir)),
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


def memory_needed(args: Args, obs_dim: int, actions: gym.spaces.Discrete) -> dict[str, int]:
    """Bytes, by the flag that sets them: the transitions; the weights ×5 (w, w', ∇, the optimiser's two), activations."""
    widths = (obs_dim, *args.hidden_sizes, int(actions.n))
    weights = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    rows = 0 if args.dataset is not None else min(args.buffer_size, args.total_timesteps)  # (a dataset: its own)
    batch = rows if args.optimizer == "rprop" else args.batch_size  # Rprop regresses on all of D at once
    return {
        "--buffer-size": rows * 4 * (2 * obs_dim + 5),
        "--hidden-sizes": 4 * (5 * weights + 3 * batch * sum(widths)),
    }


ARCHITECTURE = ("hidden_sizes",)  # the settings a saved network's shape depends on, beside its env's spaces


def load_dataset(path: str, obs_dim: int, n_actions: int) -> dict[str, np.ndarray]:
    """Read a dataset file and check every array; anything malformed is one UsageError naming the file and the fault."""

    def refuse(problem: str) -> plumbing.UsageError:
        return plumbing.UsageError(f"{Args.exp_name}.py: the dataset {path!r} {problem}.")

    try:  # an empty file, one that is no zip archive, a lone .npy, arrays of pickled objects
        with np.load(path, allow_pickle=False) as file:
            data = {name: file[name] for name in file.files}
        if not all(isinstance(array, np.ndarray) for array in data.values()):  # a member that is no .npy file: bytes
            raise ValueError("a member is not an array")
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


def save_dataset(path: str, replay_buffer: ReplayBuffer) -> str:
    """Every transition of D, in the order collected, as the .npz file --dataset reads; says where it went."""
    path = plumbing.save_atomically(path, lambda file: np.savez(file, **replay_buffer.as_dataset()), "fitted_q.py")
    return f"{replay_buffer.size} transitions saved to {path}"


if __name__ == "__main__":
    plumbing.cli(train, Args, __doc__)
