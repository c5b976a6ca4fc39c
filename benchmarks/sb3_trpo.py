"""sb3-contrib TRPO on CartPole-v1 or Pendulum-v1 with rl-baselines3-zoo's settings, evaluated as trpo.py is.

The reference trpo.py is measured against (README.md, Results): same budget, one torch thread, and the
same evaluation (10 deterministic episodes, episode i reset with seed + 10000 + i).

    pip install -r requirements.txt -r benchmarks/requirements.txt
    python benchmarks/sb3_trpo.py --env-id CartPole-v1 --seed 1
    python benchmarks/sb3_trpo.py --env-id Pendulum-v1 --seed 1
"""

import time
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import tyro
from sb3_contrib import TRPO
from stable_baselines3.common.env_util import make_vec_env

# rl-baselines3-zoo, hyperparams/trpo.yml (2 envs, 100k steps for both).
ZOO_SETTINGS = {
    "CartPole-v1": {
        "n_steps": 512,
        "batch_size": 512,
        "cg_damping": 1e-3,
        "gae_lambda": 0.98,
        "gamma": 0.99,
        "learning_rate": 1e-3,
        "n_critic_updates": 20,
    },
    "Pendulum-v1": {"n_steps": 1024, "gamma": 0.9, "n_critic_updates": 15, "use_sde": True, "sde_sample_freq": 4},
}


@dataclass
class Args:
    env_id: Literal["CartPole-v1", "Pendulum-v1"] = "CartPole-v1"
    """one of the two envs the zoo has tuned TRPO settings for"""
    seed: int = 1
    """seed of the SB3 model and of the evaluation episodes"""
    total_timesteps: int = 100_000
    """environment steps to train for (the zoo's budget)"""


def main(args: Args) -> None:
    torch.set_num_threads(1)
    env = make_vec_env(args.env_id, n_envs=2, seed=args.seed)
    model = TRPO("MlpPolicy", env, seed=args.seed, device="cpu", **ZOO_SETTINGS[args.env_id])
    start = time.perf_counter()
    model.learn(args.total_timesteps)
    train_time = time.perf_counter() - start

    eval_env, returns = gym.make(args.env_id), []
    for i in range(10):
        obs, _ = eval_env.reset(seed=args.seed + 10_000 + i)
        episode_return, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    print(f"SB3 TRPO {args.env_id} seed {args.seed}: eval return {np.mean(returns):.1f}, {train_time:.1f} s training")


if __name__ == "__main__":
    main(tyro.cli(Args))
