"""Stable-Baselines3 / sb3-contrib with rl-baselines3-zoo's settings, trained and evaluated as our scripts are.

The libraries our scripts race against (benchmarks/run.py --preset race). `train(Args)` returns the same
keys as a script's `train()` (episodic_returns, episode_end_steps, eval_returns, sps), so
benchmarks/run.py runs both the same way. Same evaluation as ours: `eval_episodes` deterministic episodes
on a fresh env seeded once with `seed + 10_000`, later episodes starting from its own stream; same one
torch thread. The libraries are imported when this file is, as torch and gymnasium are by ours, so that a
timed `train()` call holds the same work on both sides: building the model and its envs, training, evaluating.

    pip install -r requirements.txt -r benchmarks/requirements.txt
    python benchmarks/sb3_baselines.py --algo dqn --seed 1
    python benchmarks/sb3_baselines.py --algo trpo --env-id Pendulum-v1
"""

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import tyro
from sb3_contrib import TRPO
from stable_baselines3 import A2C, DDPG, DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise

# rl-baselines3-zoo's hyperparams/<algo>.yml for each (algo, env) pair of the race; the budgets are the
# issue's (the zoo trains A2C on CartPole-v1 for 500k steps, the race stops it at 100k with reinforce.py).
ZOO: dict[tuple[str, str], dict[str, Any]] = {
    ("dqn", "CartPole-v1"): {
        "n_envs": 1,
        "total_timesteps": 50_000,
        "learning_rate": 2.3e-3,
        "batch_size": 64,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "gamma": 0.99,
        "target_update_interval": 10,
        "train_freq": 256,
        "gradient_steps": 128,
        "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04,
        "policy_kwargs": {"net_arch": [256, 256]},
    },
    ("ddpg", "Pendulum-v1"): {
        "n_envs": 1,
        "total_timesteps": 20_000,
        "gamma": 0.98,
        "buffer_size": 200_000,
        "learning_starts": 10_000,
        "action_noise_std": 0.1,
        "gradient_steps": 1,
        "train_freq": 1,
        "learning_rate": 1e-3,
        "policy_kwargs": {"net_arch": [400, 300]},
    },
    ("trpo", "CartPole-v1"): {
        "n_envs": 2,
        "total_timesteps": 100_000,
        "n_steps": 512,
        "batch_size": 512,
        "cg_damping": 1e-3,
        "gae_lambda": 0.98,
        "gamma": 0.99,
        "learning_rate": 1e-3,
        "n_critic_updates": 20,
    },
    ("trpo", "Pendulum-v1"): {
        "n_envs": 2,
        "total_timesteps": 100_000,
        "n_steps": 1024,
        "gamma": 0.9,
        "n_critic_updates": 15,
        "use_sde": True,
        "sde_sample_freq": 4,
    },
    ("a2c", "CartPole-v1"): {"n_envs": 8, "total_timesteps": 100_000, "ent_coef": 0.0},
}


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__).removesuffix(".py")
    """the name of this experiment"""
    algo: Literal["dqn", "ddpg", "trpo", "a2c"] = "dqn"
    """the SB3 (or sb3-contrib, for TRPO) algorithm"""
    env_id: str = "CartPole-v1"
    """an env the zoo has settings for with this algo (see ZOO)"""
    seed: int = 1
    """seed of the model, its envs and the evaluation episodes"""
    total_timesteps: int | None = None
    """environment steps to train for (None: the race's budget for this pair, in ZOO)"""
    eval_episodes: int = 10
    """deterministic evaluation episodes after training (0 turns evaluation off)"""
    torch_threads: int = 1
    """torch.set_num_threads at the start (0 leaves torch's default)"""


class UsageError(ValueError):
    """Settings this runner cannot use; the message says which and what to change."""


def make_model(args: Args, settings: dict[str, Any]):
    """The zoo's model for (algo, env), on its own vector of `n_envs` seeded envs."""
    settings = dict(settings)
    env = make_vec_env(args.env_id, n_envs=settings.pop("n_envs"), seed=args.seed)
    settings.pop("total_timesteps")
    if "action_noise_std" in settings:
        n_actions = env.action_space.shape[0]
        std = settings.pop("action_noise_std")
        settings["action_noise"] = NormalActionNoise(np.zeros(n_actions), std * np.ones(n_actions))
    algorithm = {"dqn": DQN, "ddpg": DDPG, "trpo": TRPO, "a2c": A2C}[args.algo]
    return algorithm("MlpPolicy", env, seed=args.seed, device="cpu", **settings)


def evaluate(model, env_id: str, episodes: int, seed: int) -> list[float]:
    """Deterministic episodes on a fresh env seeded once with seed + 10_000, then its own stream, as in our scripts."""
    env, returns = gym.make(env_id), []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 if i == 0 else None)
        episode_return, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        returns.append(episode_return)
    env.close()
    return returns


def train(args: Args) -> dict:
    if (args.algo, args.env_id) not in ZOO:
        pairs = ", ".join(f"{algo} on {env_id}" for algo, env_id in ZOO)
        raise UsageError(f"sb3_baselines.py has zoo settings for {pairs}, not for {args.algo} on {args.env_id}.")
    settings = ZOO[(args.algo, args.env_id)]
    total_timesteps = args.total_timesteps or settings["total_timesteps"]
    if total_timesteps <= 0:
        raise UsageError(f"sb3_baselines.py needs a positive --total-timesteps, got {total_timesteps}.")
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)

    episodic_returns: list[float] = []
    episode_end_steps: list[int] = []

    class RecordEpisodes(BaseCallback):
        """SB3's Monitor puts {"r", "l"} under info["episode"] when an episode ends."""

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    episodic_returns.append(float(info["episode"]["r"]))
                    episode_end_steps.append(int(self.num_timesteps))
            return True

    model = make_model(args, settings)
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default logger leaves a /tmp/SB3-* folder per run
    start = time.perf_counter()
    model.learn(total_timesteps, callback=RecordEpisodes())
    train_time = time.perf_counter() - start
    eval_returns = evaluate(model, args.env_id, args.eval_episodes, args.seed)
    if eval_returns:
        print(
            f"SB3 {args.algo} {args.env_id} seed {args.seed}: eval return "
            f"{np.mean(eval_returns):.1f} ± {np.std(eval_returns):.1f}, {train_time:.1f} s training"
        )
    return {
        "episodic_returns": episodic_returns,
        "episode_end_steps": episode_end_steps,
        "eval_returns": eval_returns,
        "sps": model.num_timesteps / train_time,
        "model": model,
    }


if __name__ == "__main__":
    try:
        train(tyro.cli(Args))
    except UsageError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
