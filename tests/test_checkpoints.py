"""Checkpoints and --resume (plumbing.Run.checkpoint, Run.resume): a run stopped at step k and resumed is, bitwise,
the run that never stopped: the same episode returns at the same steps, the same evaluation returns, the same
weights, and TensorBoard's log reads as one run. Stopped three ways on all six scripts: a checkpoint left by a run
(in process), Ctrl-C on the command line (SIGINT), and a process killed after a checkpoint (SIGKILL). Then what a
resume refuses, in one sentence before anything is written, an extended budget, and an env that cannot be saved.
"""

import plumbing

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TWO_ACTIONS, CountingEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_smoke import ROOT

# Per script: settings of a run long enough for a signal to land inside it, and its --checkpoint-frequency.
RUNS = {
    "dqn": ({"total_timesteps": 8000, "learning_starts": 500}, 1000),
    "fitted_q": ({"total_timesteps": 8000, "learning_starts": 500}, 1000),
    "ddpg": ({"total_timesteps": 3000, "learning_starts": 300, "hidden_sizes": (32, 32), "batch_size": 32}, 500),
    "reinforce": ({"total_timesteps": 40_000, "steps_per_update": 500}, 4000),
    "trpo": ({"total_timesteps": 40_000, "num_steps": 32}, 4000),
    "natural_gradient": ({"total_timesteps": 40_000, "num_steps": 32}, 4000),
}
ROLLOUTS = ("reinforce", "trpo", "natural_gradient")  # a checkpoint between rollouts; Ctrl-C ends the one under way


class UnpicklableEnv(CountingEnv):
    """A CountingEnv holding what no pickle takes (a lock, as a simulator's handle would be)."""

    def __init__(self, action_space: gym.Space):
        super().__init__(action_space)
        self.lock = __import__("threading").Lock()


gym.register("tests/Unpicklable-v0", UnpicklableEnv, max_episode_steps=20, kwargs={"action_space": TWO_ACTIONS})


def args_of(module_name: str, log_dir: str, **extra):
    module = importlib.import_module(module_name)
    settings, frequency = RUNS[module_name]
    fields = {"log_dir": log_dir, "eval_episodes": 3, "checkpoint_frequency": frequency, **settings, **extra}
    return module, module.Args(**fields)


def flags_of(module_name: str, log_dir: str) -> list[str]:
    """The command line of args_of(module_name, log_dir)."""
    settings, frequency = RUNS[module_name]
    flags = ["--log-dir", log_dir, "--eval-episodes", "3", "--checkpoint-frequency", str(frequency)]
    for name, value in settings.items():
        flags += [f"--{name.replace('_', '-')}", *map(str, value if isinstance(value, tuple) else (value,))]
    return flags


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict:
    """Each script's run that never stopped, made once for the tests of this file (in process)."""
    cache: dict = {}

    def reference(module_name: str) -> dict:
        if module_name not in cache:
            module, args = args_of(module_name, str(tmp_path_factory.mktemp("reference")), checkpoint_frequency=0)
            cache[module_name] = module.train(args)
        return cache[module_name]

    return reference


def assert_same_run(resumed: dict, reference: dict) -> None:
    assert resumed["episodic_returns"] == reference["episodic_returns"]
    assert resumed["episode_end_steps"] == reference["episode_end_steps"]
    assert resumed["eval_returns"] == reference["eval_returns"]
    for name, network in reference.items():
        if isinstance(network, torch.nn.Module):
            mine, theirs = resumed[name].state_dict(), network.state_dict()
            assert all(torch.equal(mine[key], theirs[key]) for key in theirs), f"{name}'s weights"


def assert_log_reads_as_one_run(run_dir: str, reference: dict) -> None:
    """TensorBoard's view of the run directory (every part's file, the purge of what a killed part logged after its
    checkpoint applied): each episode once, at its step, as the run that never stopped logged it."""
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    logged = [(event.step, event.value) for event in events.Scalars("charts/episodic_return")]
    expected = [
        (s, float(np.float32(r)))
        for s, r in zip(reference["episode_end_steps"], reference["episodic_returns"], strict=True)
    ]
    assert logged == expected


def checkpoint_step(run_dir: str) -> int:
    return torch.load(os.path.join(run_dir, plumbing.CHECKPOINT), weights_only=True)["step"]


@pytest.mark.parametrize("module_name", list(RUNS))
def test_a_run_resumed_from_its_checkpoint_mid_episode_is_the_run_that_never_stopped(module_name, log_dir, references):
    reference = references(module_name)
    total, frequency = RUNS[module_name][0]["total_timesteps"], RUNS[module_name][1]
    # One checkpoint only, at the first point past 55 % of the budget where the state is whole; the run goes on.
    module, args = args_of(module_name, log_dir, checkpoint_frequency=int(total * 0.55) | 1)
    first = module.train(args)
    assert_same_run(first, reference)  # (checkpoints change nothing in the run that writes them)
    k = checkpoint_step(first["run_dir"])
    assert total * 0.55 <= k < total
    if module_name != "reinforce":  # (which learns from whole episodes: none is under way between its updates)
        assert k - 1 not in reference["episode_end_steps"], "the checkpoint is in the middle of an episode"
    resumed = module.train(args_of(module_name, log_dir, resume=first["run_dir"], checkpoint_frequency=frequency)[1])
    assert_same_run(resumed, reference)
    assert resumed["run_dir"] == first["run_dir"] and len(os.listdir(log_dir)) == 1, "the same run directory"


def start(module_name: str, log_dir: str) -> subprocess.Popen:
    """`python <script>.py <flags>` in a process of its own, answering SIGINT as a terminal's Ctrl-C."""
    # A suite started in the background ignores SIGINT, and so would the run (an ignored signal stays ignored
    # across exec): handle it here while the run starts.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        command = [sys.executable, f"{module_name}.py", *flags_of(module_name, log_dir)]
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_for_checkpoint(proc: subprocess.Popen, log_dir: str) -> str:
    """The run directory, once its first checkpoint is written (imports take seconds on a loaded machine)."""
    deadline = time.monotonic() + 180
    while not (found := list(Path(log_dir).glob(f"*/{plumbing.CHECKPOINT}"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return str(found[0].parent)


@pytest.mark.parametrize("module_name", list(RUNS))
def test_ctrl_c_writes_a_checkpoint_the_same_command_with_resume_goes_on_from_exactly(module_name, log_dir, references):
    proc = start(module_name, log_dir)
    try:
        run_dir = wait_for_checkpoint(proc, log_dir)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    message = stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    k = checkpoint_step(run_dir)
    path = os.path.join(run_dir, plumbing.CHECKPOINT)
    assert message.startswith(f"{module_name}.py: stopped by Ctrl-C at step {k} of ")
    assert f"checkpoint of step {k} in {path} (go on: the same flags and --resume {path})" in message
    assert 0 < k < RUNS[module_name][0]["total_timesteps"], "stopped before its end"
    module, args = args_of(module_name, log_dir, resume=path)
    resumed = module.train(args)
    assert_same_run(resumed, references(module_name))
    assert_log_reads_as_one_run(run_dir, references(module_name))


@pytest.mark.parametrize("module_name", list(RUNS))
def test_a_run_killed_after_a_checkpoint_resumes_from_it_exactly(module_name, log_dir, references):
    proc = start(module_name, log_dir)
    try:
        run_dir = wait_for_checkpoint(proc, log_dir)
        time.sleep(0.3)  # on past the checkpoint: what it logs after it is purged from the log on resume
        proc.kill()  # SIGKILL: no handler, no last write
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    half_written = Path(run_dir) / "checkpoint.pt.k7x2.partial"  # as a kill during the next write would leave it
    half_written.write_bytes(b"\0" * 1000)
    module, args = args_of(module_name, log_dir, resume=run_dir)
    resumed = module.train(args)
    assert_same_run(resumed, references(module_name))
    assert_log_reads_as_one_run(run_dir, references(module_name))
    assert not half_written.exists(), "the resumed run removes what a killed write left"


def test_a_resumed_run_may_be_given_a_larger_budget_and_returns_the_whole_run(log_dir):
    module, args = args_of("trpo", log_dir, total_timesteps=8192, checkpoint_frequency=8192)
    first = module.train(args)
    longer = module.train(args_of("trpo", log_dir, total_timesteps=12288, resume=first["run_dir"])[1])
    n = len(first["episodic_returns"])
    assert longer["episodic_returns"][:n] == first["episodic_returns"], "the episodes before the stop are kept"
    assert len(longer["episodic_returns"]) > n and max(longer["episode_end_steps"]) >= 8192
    assert checkpoint_step(first["run_dir"]) == 12288


def refusals(log_dir: str, run_dir: str, other_dir: str, model: str) -> list[tuple[str, dict, str]]:
    """(script, Args overrides, the phrase its refusal says) for each checkpoint --resume must refuse."""
    garbage = os.path.join(log_dir, "garbage.pt")
    Path(garbage).write_bytes(b"not a checkpoint")
    path = os.path.join(run_dir, plumbing.CHECKPOINT)
    return [
        ("dqn", {"resume": other_dir}, "was written by fitted_q.py, not by dqn.py"),
        ("dqn", {"resume": run_dir, "gamma": 0.9}, "was written with --gamma 0.99, not 0.9"),
        ("dqn", {"resume": run_dir, "seed": 2}, "was written with --seed 1, not 2"),
        ("dqn", {"resume": path, "env_id": "Acrobot-v1"}, "was written with --env-id CartPole-v1, not Acrobot-v1"),
        ("dqn", {"resume": run_dir, "total_timesteps": 999}, "stands at step 1000, past --total-timesteps 999"),
        ("dqn", {"resume": os.path.join(log_dir, "nothing")}, "names no checkpoint"),
        ("dqn", {"resume": log_dir}, "names no checkpoint"),
        ("dqn", {"resume": garbage}, "is not a checkpoint"),
        ("dqn", {"resume": model}, "is not a checkpoint"),
        ("dqn", {"resume": run_dir, "load_model": model}, "--load-model must not go with --resume"),
        ("dqn", {"resume": run_dir, "checkpoint_frequency": -1}, "--checkpoint-frequency must be non-negative"),
    ]


def test_resume_refuses_in_one_sentence_what_it_cannot_go_on_from_and_writes_nothing(log_dir, tmp_path):
    dqn, fitted_q = importlib.import_module("dqn"), importlib.import_module("fitted_q")
    short = {"total_timesteps": 1000, "learning_starts": 200, "eval_episodes": 1, "checkpoint_frequency": 1000}
    run_dir = dqn.train(dqn.Args(log_dir=log_dir, save_model=True, **short))["run_dir"]
    other_dir = fitted_q.train(fitted_q.Args(log_dir=str(tmp_path / "other"), **short))["run_dir"]
    model = os.path.join(run_dir, "dqn.pt")
    cases = refusals(log_dir, run_dir, other_dir, model)
    files = lambda: {path: path.stat().st_mtime_ns for path in Path(tmp_path).rglob("*") if path.is_file()}  # noqa: E731
    before = files()
    for module_name, overrides, phrase in cases:
        module = importlib.import_module(module_name)
        with pytest.raises(plumbing.UsageError) as error:
            module.train(module.Args(**{"log_dir": log_dir, **short, **overrides}))
        message = str(error.value)
        assert message.startswith(f"{module_name}.py: ") and phrase in message, message
        assert "\n" not in message and message.endswith(".")
    assert files() == before and len(os.listdir(log_dir)) == 2, "nothing written (the run and garbage.pt)"


def test_an_env_that_cannot_be_saved_is_said_and_restarted_and_the_rest_is_restored(log_dir, capsys):
    dqn = importlib.import_module("dqn")
    settings = {"env_id": "tests/Unpicklable-v0", "learning_starts": 100, "eval_episodes": 1, "log_dir": log_dir}
    whole = dqn.train(dqn.Args(total_timesteps=1000, **settings))
    first = dqn.train(dqn.Args(total_timesteps=1000, checkpoint_frequency=510, **settings))
    assert first["episodic_returns"] == whole["episodic_returns"], "checkpoints change nothing in the run"
    said = capsys.readouterr().err
    assert "tests/Unpicklable-v0 cannot be saved in a checkpoint (TypeError: cannot pickle '_thread.lock'" in said
    assert said.count("cannot be saved") == 1, "said once, not at every checkpoint"
    resumed = dqn.train(dqn.Args(total_timesteps=1000, resume=first["run_dir"], **settings))
    out = capsys.readouterr().out
    assert "could not be saved with it" in out and "new ones start from reset(seed=511)" in out, out
    k = checkpoint_step(first["run_dir"])
    before = [r for r, s in zip(whole["episodic_returns"], whole["episode_end_steps"], strict=True) if s < k]
    assert resumed["episodic_returns"][: len(before)] == before, "the episodes before the checkpoint are kept"
    after = [s for s in resumed["episode_end_steps"] if s >= k]
    assert after and after[0] == k - 1 + 20, "the resumed run starts a fresh episode at the checkpoint's step"


def test_checkpoints_off_ctrl_c_stops_at_once_and_writes_none(log_dir):
    dqn = importlib.import_module("dqn")
    with pytest.raises(KeyboardInterrupt) as error:
        dqn.train(dqn.Args(env_id="tests/CtrlC-v0", total_timesteps=1000, learning_starts=100, log_dir=log_dir))
    assert "stopped by Ctrl-C at step 299 of 1000; logs in " in str(error.value)
    assert not list(Path(log_dir).glob(f"*/{plumbing.CHECKPOINT}"))


def test_when_a_checkpoint_is_written_the_logs_up_to_it_are_on_disk(log_dir, monkeypatch):
    """A process killed right after a checkpoint loses nothing its resume does not log again: TensorBoard's buffered
    events are written before the checkpoint is."""
    seen: list[tuple[int, int]] = []
    write = plumbing.Run.checkpoint

    def checked(run: plumbing.Run, step: int) -> None:
        write(run, step)
        if run.checkpoint_step == step:
            events = EventAccumulator(run.dir, size_guidance={"scalars": 0})
            events.Reload()
            seen.append((len(events.Scalars("charts/episodic_return")), len(run.episodic_returns)))

    monkeypatch.setattr(plumbing.Run, "checkpoint", checked)
    module, args = args_of("dqn", log_dir, total_timesteps=3000)
    module.train(args)
    assert len(seen) == 3 and all(on_disk == logged > 0 for on_disk, logged in seen), seen
