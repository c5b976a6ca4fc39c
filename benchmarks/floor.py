"""The floor under each script's training loop: its env steps and its acting forward passes, with no learning.

For every pair of the race (script, env, budget), the floor builds the envs as the script does (its own
`make_env`: the same wrappers; trpo.py and natural_gradient.py's `make_vector_env` of num_envs copies;
reinforce.py's list of num_envs envs), steps them for the budget with uniformly random actions, and before every
step runs what the script runs to act: one forward pass of an MLP of the script's hidden sizes over the batch of
observations (one row per env). No gradient, buffer, rollout storage or update. No training loop that acts through
such a network can be faster; the loop's multiple of its floor is what learning and bookkeeping add.

    python benchmarks/floor.py                                          # each race pair's floor, median of 3
    python benchmarks/floor.py --results-dir benchmarks/results/race    # and each training loop as a multiple of it
"""

import itertools
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import run
import torch
from torch import nn


@dataclass
class Args:
    scripts: tuple[str, ...] = ()
    """only these of our scripts (empty: every script of the race)"""
    repeats: int = 3
    """times each floor is measured; the median is reported"""
    results_dir: str | None = None
    """run.py's JSON files (e.g. benchmarks/results/race): add each script's training loop (median over its runs at
    the pair's env and budget) and its multiple of the floor"""


def floor_seconds(script: str, env_id: str, budget: int, seed: int = 1) -> float:
    """Seconds for `budget` env steps with random actions and one batched forward pass per step of envs."""
    module = run.load_script(script, run.ROOT)
    args = module.Args(env_id=env_id, total_timesteps=budget, seed=seed)
    if hasattr(module, "make_vector_env"):  # trpo.py, natural_gradient.py
        made = module.make_vector_env(args.env_id, args.num_envs)
    else:  # one env (dqn.py, fitted_q.py, ddpg.py), or reinforce.py's list of num_envs
        made = [module.make_env(args.env_id) for _ in range(getattr(args, "num_envs", 1))]
    vector = isinstance(made, gym.vector.VectorEnv)
    envs = made if vector or isinstance(made, list) else [made]
    space = made.single_action_space if vector else envs[0].action_space
    obs_dim = (made.single_observation_space if vector else envs[0].observation_space).shape[0]
    outputs = space.shape[0] if isinstance(space, gym.spaces.Box) else int(space.n)
    widths = (obs_dim, *args.hidden_sizes, outputs)
    layers = [layer for a, b in itertools.pairwise(widths) for layer in (nn.Linear(a, b), nn.Tanh())][:-1]
    network = nn.Sequential(*layers)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.torch_threads or threads)  # as the scripts run: one thread by default
    try:
        if vector:
            made.action_space.seed(seed)
            obs, _ = made.reset(seed=seed)
            start = time.perf_counter()
            for _ in range(budget // made.num_envs):
                with torch.no_grad():
                    network(torch.as_tensor(obs, dtype=torch.float32))
                obs, *_ = made.step(made.action_space.sample())
        else:
            observations = []
            for i, env in enumerate(envs):
                env.action_space.seed(seed + i)
                observations.append(env.reset(seed=seed + i)[0])
            start = time.perf_counter()
            for _ in range(budget // len(envs)):
                with torch.no_grad():
                    network(torch.as_tensor(np.stack(observations), dtype=torch.float32))
                for i, env in enumerate(envs):
                    next_obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
                    observations[i] = env.reset()[0] if terminated or truncated else next_obs
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
        for env in [made] if vector else envs:
            env.close()


def training_loops(results_dir: Path) -> dict[tuple[str, str, int], list[float]]:
    """Training-loop seconds of each finished run, by (script, env, budget)."""
    loops: dict[tuple[str, str, int], list[float]] = {}
    for path in results_dir.glob("*.json"):
        record = json.loads(path.read_text())
        if record.get("status") == "ok":
            cell = (record["script"], record["env_id"], record["args"]["total_timesteps"])
            loops.setdefault(cell, []).append(record["train_time"])
    return loops


def main(args: Args) -> str:
    if args.repeats < 1:
        raise run.UsageError(f"--repeats must be at least 1, got {args.repeats}.")
    unknown = [script for script in args.scripts if script not in run.OURS]
    if unknown:
        raise run.UsageError(f"Unknown script {unknown[0]!r}; ours are {', '.join(run.OURS)}.")
    if args.results_dir is not None and not Path(args.results_dir).is_dir():
        raise run.UsageError(f"--results-dir {args.results_dir!r} is not a directory of run.py's results.")
    pairs = [(ours, env_id, budget) for ours, _, env_id, budget in run.RACE if ours in (args.scripts or run.OURS)]
    loops = training_loops(Path(args.results_dir)) if args.results_dir else {}
    lines = [
        "| script | env | steps | envs | floor s (median) | training loop s (median) | × floor |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    print("\n".join(lines), flush=True)
    for script, env_id, budget in pairs:
        floor = statistics.median(floor_seconds(script, env_id, budget) for _ in range(args.repeats))
        envs = getattr(run.load_script(script, run.ROOT).Args(), "num_envs", 1)
        measured = loops.get((script, env_id, budget))
        loop = f"{statistics.median(measured):.2f} ({len(measured)} runs)" if measured else "-"
        multiple = f"{statistics.median(measured) / floor:.1f}" if measured else "-"
        lines.append(f"| {script} | {env_id} | {budget:,} | {envs} | {floor:.2f} | {loop} | {multiple} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


if __name__ == "__main__":
    run.cli(main, Args, "floor.py: stopped by Ctrl-C before its table was complete; nothing was written.")
