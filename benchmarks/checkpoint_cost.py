"""What a checkpoint costs: its time and size for the default dqn.py run (a real run, its 50,000-transition buffer
full by the end) and for ddpg.py with a full 1M-transition buffer on a MuJoCo env (the buffer filled with random
numbers, the rest of the state as a run would hold it), the largest state any script here checkpoints.

    python benchmarks/checkpoint_cost.py                      # dqn.py default, ddpg.py on HalfCheetah-v5 and Hopper-v5
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import plumbing

import ddpg
import dqn


def dqn_default(folder: str) -> None:
    times: list[float] = []
    write = plumbing.Run.checkpoint

    def timed(run: plumbing.Run, step: int) -> None:
        start = time.perf_counter()
        write(run, step)
        if run.checkpoint_step == step:
            times.append(time.perf_counter() - start)

    plumbing.Run.checkpoint = timed  # type: ignore[method-assign]
    try:
        result = dqn.train(dqn.Args(log_dir=folder, checkpoint_frequency=10_000, eval_episodes=0))
    finally:
        plumbing.Run.checkpoint = write  # type: ignore[method-assign]
    size = (Path(result["run_dir"]) / plumbing.CHECKPOINT).stat().st_size
    print(f"dqn.py defaults: {len(times)} checkpoints, median {np.median(times):.3f} s, {size / 1e6:.1f} MB")


def ddpg_million(env_id: str, folder: str) -> None:
    args = ddpg.Args(env_id=env_id, log_dir=folder, hidden_sizes=(256, 256), buffer_size=1_000_000)
    env = ddpg.make_env(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    rng = np.random.default_rng(0)
    buffer = ddpg.ReplayBuffer(1_000_000, obs_dim, act_dim, rng)
    for name in ("obs", "next_obs", "actions", "rewards"):
        array = getattr(buffer, name)
        array[...] = rng.standard_normal(array.shape)
    buffer.size = 1_000_000
    low, high = env.action_space.low, env.action_space.high
    actor, critic = (
        ddpg.Actor(obs_dim, act_dim, args.hidden_sizes, low, high),
        ddpg.Critic(obs_dim, act_dim, args.hidden_sizes),
    )
    optimizers = {"actor": torch.optim.Adam(actor.parameters()), "critic": torch.optim.Adam(critic.parameters())}
    with plumbing.Run(plumbing.check_args(args, ddpg.rules), torch.device("cpu"), remedy="") as run:
        models = {"networks": {"actor": actor, "critic": critic}, "optimizers": optimizers}
        run.resume(lambda: models | {"env": env, "replay_buffer": buffer}, step=0)
        run.checkpoint_every = run.next_checkpoint = 1
        start = time.perf_counter()
        run.checkpoint(1)
        seconds = time.perf_counter() - start
    size = (Path(run.dir) / plumbing.CHECKPOINT).stat().st_size
    print(f"ddpg.py, {env_id}, 1M transitions: {seconds:.1f} s, {size / 1e6:.0f} MB")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        dqn_default(folder)
        for env_id in ("HalfCheetah-v5", "Hopper-v5"):
            ddpg_million(env_id, folder)
