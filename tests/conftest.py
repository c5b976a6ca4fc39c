"""What the tests share: small toy environments with known dynamics, and a fresh log directory."""

import plumbing

import os
import random
import sys
import tempfile
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.func import functional_call


class CountingEnv(gym.Env):
    """obs = [t, episode index]; a constant reward per step; terminates after `terminate_at` steps if set.

    Registered with a TimeLimit, so an episode either terminates or is truncated at a known step, and
    every observation tells where in which episode it was emitted. Any action outside the action space
    raises, so a script that sends one (off by one ulp, of the wrong shape, or unshifted) is caught.
    """

    def __init__(
        self,
        action_space: gym.Space,
        terminate_at: int | None = None,
        reward: float = 1.0,
        late_reward: tuple[int, float] | None = None,
        interrupt_at: int | None = None,
        fail_at: tuple[int, str] | None = None,
    ):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = action_space
        self.terminate_at = terminate_at
        self.reward = reward
        self.late_reward = late_reward  # (k, r): the reward is r from the env's k-th step on
        self.interrupt_at = interrupt_at  # this step of the env's life raises KeyboardInterrupt, as Ctrl-C would
        self.fail_at = fail_at  # (k, how): at its k-th step the env raises, or returns a NaN or a misshapen observation
        self.steps = 0
        self.episode = -1
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.episode], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise AssertionError(f"action {action!r} is outside {self.action_space}")
        self.t += 1
        self.steps += 1
        if self.steps == self.interrupt_at:
            raise KeyboardInterrupt
        if self.fail_at is not None and self.steps == self.fail_at[0]:
            if self.fail_at[1] == "raises":
                raise RuntimeError("the simulator broke")
            obs = np.array([np.nan, 0], np.float32) if self.fail_at[1] == "nan" else np.zeros(7, np.float32)
            return obs, self.reward, False, False, {}
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        late = self.late_reward is not None and self.steps >= self.late_reward[0]
        reward = self.late_reward[1] if late else self.reward
        return self._obs(), reward, terminated, False, {}


class RandomStartEnv(gym.Env):
    """One-step episodes whose only reward is the start state u ~ U(0, 1) that reset drew from the env's generator.

    So an evaluation's returns are its start states, and a test can see which ones it met.
    """

    observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    def __init__(self, action_space: gym.Space):
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.start = float(self.np_random.uniform())
        return np.array([self.start], np.float32), {}

    def step(self, action):
        return np.array([self.start], np.float32), self.start, True, False, {}


class ActionRewardEnv(gym.Env):
    """A constant observation and a reward that depends on the action alone, 50 steps an episode.

    Discrete(2): reward 1 for action 1, else 0. Box: reward −‖a − c‖², c the middle of the bounds. So a
    policy that always takes action 1 (or the middle) scores exactly 50 (or 0) per episode, and any
    exploration or sampling left on in an evaluation shows as a lower return.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def __init__(self, action_space: gym.Space):
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.array([0.5, -0.5], np.float32), {}

    def step(self, action):
        if isinstance(self.action_space, gym.spaces.Box):
            middle = (self.action_space.low + self.action_space.high) / 2
            reward = -float(np.sum((np.asarray(action) - middle) ** 2))
        else:
            reward = float(action == 1)
        return np.array([0.5, -0.5], np.float32), reward, False, False, {}


class WarningEnv(CountingEnv):
    """A CountingEnv that warns when made, as an outdated or misconfigured env does."""

    def __init__(self, action_space: gym.Space):
        warnings.warn("WarningEnv: this env is out of date", UserWarning, stacklevel=2)
        super().__init__(action_space)


class ObservationSpaceEnv(gym.Env):
    """An env whose observation space is given: only made, never stepped (the scripts must refuse it first)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space, self.action_space = observation_space, action_space


def register(env_id: str, action_space: gym.Space, max_episode_steps: int | None, **kwargs) -> None:
    kwargs = {"action_space": action_space, **kwargs}
    gym.register(env_id, entry_point=CountingEnv, max_episode_steps=max_episode_steps, kwargs=kwargs)


TWO_ACTIONS = gym.spaces.Discrete(2)
# Asymmetric bounds, neither centred on 0 nor of equal width.
BOX_ACTIONS = gym.spaces.Box(np.array([-1, 0.5], np.float32), np.array([3, 2], np.float32), dtype=np.float32)

register("tests/Terminating-v0", TWO_ACTIONS, 5, terminate_at=3)  # terminates before its time limit
register("tests/Truncated-v0", TWO_ACTIONS, 4)  # only ever truncated
register("tests/ShiftedActions-v0", gym.spaces.Discrete(3, start=-1), 20)  # actions -1, 0, 1
register("tests/Endless-v0", TWO_ACTIONS, None)  # no time limit at all
register("tests/HugeReward-v0", TWO_ACTIONS, 20, reward=1e38)  # finite, but its squared TD error is not (float32)
register("tests/NaNReward-v0", TWO_ACTIONS, 20, late_reward=(30, float("nan")))  # an env's bug: the env's to answer for
register("tests/BoxTerminating-v0", BOX_ACTIONS, 5, terminate_at=3)
register("tests/BoxTruncated-v0", BOX_ACTIONS, 4)
register("tests/BoxHugeReward-v0", BOX_ACTIONS, 20, reward=1e38)
gym.register(
    "tests/RandomStart-v0", entry_point=RandomStartEnv, max_episode_steps=5, kwargs={"action_space": TWO_ACTIONS}
)
gym.register(
    "tests/BoxRandomStart-v0", entry_point=RandomStartEnv, max_episode_steps=5, kwargs={"action_space": BOX_ACTIONS}
)
gym.register("tests/ActionReward-v0", ActionRewardEnv, max_episode_steps=50, kwargs={"action_space": TWO_ACTIONS})
gym.register("tests/BoxActionReward-v0", ActionRewardEnv, max_episode_steps=50, kwargs={"action_space": BOX_ACTIONS})
register("tests/HugeBounds-v0", gym.spaces.Box(-1e38, 1e38, shape=(1,), dtype=np.float32), 5)  # finite, but vast
for prefix, actions in [("", TWO_ACTIONS), ("Box", BOX_ACTIONS)]:
    gym.register(f"tests/{prefix}Warning-v0", WarningEnv, max_episode_steps=20, kwargs={"action_space": actions})
register("tests/MultiDiscrete-v0", gym.spaces.MultiDiscrete([2, 3]), 5)  # no script handles this one
register("tests/MultiBinary-v0", gym.spaces.MultiBinary(3), 5)  # nor this one
register("tests/LateHugeReward-v0", TWO_ACTIONS, 20, late_reward=(450, 3e38))  # small rewards first, then huge
register("tests/BoxLateHugeReward-v0", BOX_ACTIONS, 20, late_reward=(450, 3e38))
register("tests/CtrlC-v0", TWO_ACTIONS, 20, interrupt_at=300)  # Ctrl-C at its 300th step
register("tests/BoxCtrlC-v0", BOX_ACTIONS, 20, interrupt_at=300)
for how in ("raises", "nan", "shape"):  # at its 300th step the env fails: tests/EnvRaises-v0, tests/BoxEnvNan-v0, ...
    for prefix, actions in [("", TWO_ACTIONS), ("Box", BOX_ACTIONS)]:
        register(f"tests/{prefix}Env{how.capitalize()}-v0", actions, 20, fail_at=(300, how))
for name, space in [
    ("Sequence", gym.spaces.Sequence(gym.spaces.Discrete(3))),
    ("Graph", gym.spaces.Graph(BOX_ACTIONS, None)),
]:
    for prefix, actions in [("", TWO_ACTIONS), ("Box", BOX_ACTIONS)]:  # observations no script can flatten
        gym.register(
            f"tests/{prefix}{name}Observations-v0",
            ObservationSpaceEnv,
            kwargs={"observation_space": space, "action_space": actions},
        )


def assert_transitions_follow_episodes(buffer, episode_length: int, terminates: bool) -> None:
    """Check a replay buffer filled from a CountingEnv, whose observations are [t, episode index].

    Every stored successor is the next step of the same episode, the last one of an episode is the real
    final observation (t = episode_length), only termination is marked terminal, and the transition after
    an episode's end starts from the reset observation [0, next episode].
    """
    obs, next_obs, terminated = buffer.obs[: buffer.size], buffer.next_obs[: buffer.size], buffer.terminated
    for i in range(buffer.size):
        t, episode = obs[i]
        assert (next_obs[i] == [t + 1, episode]).all(), "a transition's successor is the next step of the same episode"
        episode_ends = next_obs[i][0] == episode_length
        assert terminated[i] == (episode_ends and terminates), "only termination is marked terminal"
        if episode_ends and i + 1 < buffer.size:
            assert (obs[i + 1] == [0, episode + 1]).all(), "the next transition starts from the reset observation"


def cli_in_process(monkeypatch, capsys, module, *flags: str) -> tuple[int, str, str]:
    """`python <module>.py <flags>` through plumbing.cli, in this process: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [f"{module.__name__}.py", *flags])
    with pytest.raises(SystemExit) as exit_status:
        plumbing.cli(module.train, module.Args, module.__doc__)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return exit_status.value.code, out, err


def assert_refused_before_any_work(module, log_dir: str, overrides: dict, phrase: str) -> None:
    """train() refuses these Args before writing anything, with a UsageError that names the script and says `phrase`."""
    with pytest.raises(plumbing.UsageError) as error:
        module.train(module.Args(log_dir=log_dir, **overrides))
    message = str(error.value)
    assert phrase in message and message.startswith(f"{module.__name__}.py"), message
    assert not os.path.exists(log_dir)


def assert_logs_were_flushed(log_dir: str) -> None:
    """The one run under log_dir left a non-empty TensorBoard event file."""
    (run_dir,) = os.listdir(log_dir)
    events = [f for f in os.listdir(os.path.join(log_dir, run_dir)) if f.startswith("events")]
    assert events and os.path.getsize(os.path.join(log_dir, run_dir, events[0])) > 0


def small_policy(module, kind: str, hidden_sizes: tuple[int, ...] = (5,)) -> torch.nn.Module:
    """A script's CategoricalPolicy (3 → 4 actions) or GaussianPolicy (3 → BOX_ACTIONS), seeded, away from uniform."""
    torch.manual_seed(0)
    if kind == "categorical":
        policy = module.CategoricalPolicy(3, 4, hidden_sizes, torch.nn.Identity())
        last = policy.logits[-1]
    else:
        policy = module.GaussianPolicy(3, BOX_ACTIONS, hidden_sizes, 0.2, torch.nn.Identity())
        last = policy.mean[-1]
    with torch.no_grad():  # the near-uniform start would make the Fisher matrix nearly singular
        last.weight.normal_()
    return policy


def batch_for(policy: torch.nn.Module, n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Observations [n, 3], actions sampled from the policy, and random advantages [n]."""
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 3, generator=generator)
    with torch.no_grad():
        actions = policy(obs).sample()
    return obs, actions, torch.randn(n, generator=generator)


def flat_params(module: torch.nn.Module) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().clone()


def explicit_kl_hessian(policy: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """∇²_θ' mean KL(π_θ ‖ π_θ') at θ' = θ, by torch.autograd.functional on the flattened parameters."""
    names = [name for name, _ in policy.named_parameters()]
    shapes = [p.shape for p in policy.parameters()]
    with torch.no_grad():
        old = policy(obs)

    def mean_kl(flat: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, [s.numel() for s in shapes])
        params = {name: piece.reshape(shape) for name, piece, shape in zip(names, pieces, shapes, strict=True)}
        return torch.distributions.kl_divergence(old, functional_call(policy, params, (obs,))).mean()

    return torch.autograd.functional.hessian(mean_kl, flat_params(policy))


@pytest.fixture
def caller_state():
    """A caller's process as train() must leave it: 3 torch threads, no deterministic algorithms, and random, numpy
    and torch seeded with 7. Yields a check, to call once after the run, that all of it is as it was."""
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(7), np.random.seed(7), torch.manual_seed(7)

    def as_it_was() -> bool:
        draws = (random.random(), np.random.random(), torch.rand(1).item())
        return draws == expected and torch.get_num_threads() == 3 and not torch.are_deterministic_algorithms_enabled()

    yield as_it_was
    torch.set_num_threads(threads)


@pytest.fixture
def log_dir(tmp_path) -> str:
    """A fresh directory for a test run's logs and models, removed by pytest afterwards."""
    return str(tmp_path / "runs")


@pytest.fixture
def unwritable_run_dirs(tmp_path, monkeypatch):
    """Writes into any directory under tmp_path/"runs" fail as a read-only disk would (root ignores chmod); the
    system's temporary directory becomes tmp_path/"elsewhere". Yields that directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    mkstemp = tempfile.mkstemp

    def read_only_mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(tmp_path / "runs") in str(dir):
            raise PermissionError(30, "Read-only file system")
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only_mkstemp)
    return elsewhere
