"""Stable-Baselines3 DDPG on Pendulum-v1 with rl-baselines3-zoo's settings, evaluated as ddpg.py is.

The reference ddpg.py is measured against (README.md, Results): same budget (20k steps), one torch
thread, and the same evaluation (10 deterministic episodes, episode i reset with seed + 10000 + i).

    pip install -r requirements.txt -r benchmarks/requirements.txt
    python benchmarks/sb3_ddpg.py --seed 1
"""

import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import tyro
from stable_baselines3 import DDPG
from stable_baselines3.common.noise import NormalActionNoise


@dataclass
class Args:
    seed: int = 1
    """seed of the SB3 model and of the evaluation episodes"""
    total_timesteps: int = 20_000
    """environment steps to train for (the zoo's budget)"""


def main(args: Args) -> None:
    torch.set_num_threads(1)
    env = gym.make("Pendulum-v1")
    n_actions = env.action_space.shape[0]
    # rl-baselines3-zoo, hyperparams/ddpg.yml, Pendulum-v1
    model = DDPG(
        "MlpPolicy",
        env,
        gamma=0.98,
        buffer_size=200_000,
        learning_starts=10_000,
        action_noise=NormalActionNoise(np.zeros(n_actions), 0.1 * np.ones(n_actions)),
        gradient_steps=1,
        train_freq=1,
        learning_rate=1e-3,
        policy_kwargs={"net_arch": [400, 300]},
        seed=args.seed,
        device="cpu",
    )
    start = time.perf_counter()
    model.learn(args.total_timesteps)
    train_time = time.perf_counter() - start

    eval_env, returns = gym.make("Pendulum-v1"), []
    for i in range(10):
        obs, _ = eval_env.reset(seed=args.seed + 10_000 + i)
        episode_return, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    print(f"SB3 DDPG seed {args.seed}: eval return {np.mean(returns):.1f}, {train_time:.1f} s training")


if __name__ == "__main__":
    main(tyro.cli(Args))
