"""What the tests share: small toy environments with known dynamics, and a fresh log directory."""

import gymnasium as gym
import numpy as np
import pytest


class CountingEnv(gym.Env):
    """obs = [t, episode index]; reward 1 per step; terminates after `terminate_at` steps if set.

    Wrapped in a TimeLimit by registration, so an episode either terminates or is truncated at a known
    step, and every observation tells where in which episode it was emitted. An action outside the
    action space raises, so a script that sends one is caught.
    """

    def __init__(self, terminate_at: int | None = None, n_actions: int = 2, action_start: int = 0, reward=1.0):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(n_actions, start=action_start)
        self.terminate_at = terminate_at
        self.reward = reward
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
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return self._obs(), float(self.reward), terminated, False, {}


# Terminates after 3 steps (before its time limit of 5); truncated after 4; a 3-action space
# starting at -1; no time limit at all; a reward that is NaN.
gym.register("tests/Terminating-v0", entry_point=CountingEnv, max_episode_steps=5, kwargs={"terminate_at": 3})
gym.register("tests/Truncated-v0", entry_point=CountingEnv, max_episode_steps=4)
gym.register(
    "tests/ShiftedActions-v0",
    entry_point=CountingEnv,
    max_episode_steps=20,
    kwargs={"n_actions": 3, "action_start": -1},
)
gym.register("tests/Endless-v0", entry_point=CountingEnv, max_episode_steps=None)
gym.register("tests/NaNReward-v0", entry_point=CountingEnv, max_episode_steps=20, kwargs={"reward": float("nan")})


@pytest.fixture
def log_dir(tmp_path) -> str:
    """A fresh directory for a test run's logs and models, removed by pytest afterwards."""
    return str(tmp_path / "runs")
