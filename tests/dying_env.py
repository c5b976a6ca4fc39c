"""An env whose process dies at its first reset, registered for the benchmark runner's test of a killed run."""

import os

import gymnasium as gym
import numpy as np


class DiesOnReset(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        os._exit(3)  # like a process killed for memory: no exception, no cleanup


gym.register("DiesOnReset-v0", entry_point=DiesOnReset, max_episode_steps=10)
