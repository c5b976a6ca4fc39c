"""Stable-Baselines3 A2C on CartPole-v1 with rl-baselines3-zoo's settings, evaluated as reinforce.py is.

The policy-gradient reference reinforce.py is measured against (README.md, Results): 8 environments,
one torch thread, and the same evaluation (10 deterministic episodes, episode i reset with
seed + 10000 + i).

    pip install -r requirements.txt -r benchmarks/requirements.txt
    python benchmarks/sb3_a2c.py --seed 1 --total-timesteps 100000
"""

import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import tyro
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env


@dataclass
class Args:
    seed: int = 1
    """seed of the SB3 model and of the evaluation episodes"""
    total_timesteps: int = 100_000
    """environment steps to train for (the zoo trains 500k; the issue's reference pace is 100k)"""


def main(args: Args) -> None:
    torch.set_num_threads(1)
    # rl-baselines3-zoo, hyperparams/a2c.yml, CartPole-v1: 8 envs, ent_coef 0, everything else A2C's defaults.
    model = A2C(
        "MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=args.seed), ent_coef=0.0, seed=args.seed, device="cpu"
    )
    start = time.perf_counter()
    model.learn(args.total_timesteps)
    train_time = time.perf_counter() - start

    env, returns = gym.make("CartPole-v1"), []
    for i in range(10):
        obs, _ = env.reset(seed=args.seed + 10_000 + i)
        episode_return, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    print(f"SB3 A2C seed {args.seed}: eval return {np.mean(returns):.1f}, {train_time:.1f} s training")


if __name__ == "__main__":
    main(tyro.cli(Args))
