"""Stable-Baselines3 DQN on CartPole-v1 with rl-baselines3-zoo's settings, evaluated as dqn.py is.

The reference dqn.py is measured against (README.md, Results): same budget (50k steps), one torch
thread, and the same evaluation (10 greedy episodes, episode i reset with seed + 10000 + i).

    pip install -r requirements.txt -r benchmarks/requirements.txt
    python benchmarks/sb3_dqn.py --seed 1
"""

import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import tyro
from stable_baselines3 import DQN


@dataclass
class Args:
    seed: int = 1
    """seed of the SB3 model and of the evaluation episodes"""
    total_timesteps: int = 50_000
    """environment steps to train for (the zoo's budget)"""


def main(args: Args) -> None:
    torch.set_num_threads(1)
    # rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1
    model = DQN(
        "MlpPolicy",
        gym.make("CartPole-v1"),
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs={"net_arch": [256, 256]},
        seed=args.seed,
        device="cpu",
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
    print(f"SB3 DQN seed {args.seed}: eval return {np.mean(returns):.1f}, {train_time:.1f} s training")


if __name__ == "__main__":
    main(tyro.cli(Args))
