"""Nothing lost, nothing silent (CONVENTIONS.md §5): every failure a user can cause ends in one sentence, before
anything is written, and a run that is stopped (Ctrl-C, a NaN, a directory that cannot be written) keeps its work.

Each case runs on all six scripts. Bad input is checked in process (a ValueError naming the script, nothing written);
a few cases also through the command line (exit status 2, one line on stderr, no traceback).
"""

import plumbing

import errno
import importlib
import math
import os
import re
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import torch
from conftest import assert_logs_were_flushed, assert_refused_before_any_work, cli_in_process
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.summary.writer import record_writer
from test_smoke import FIRST_RUNS, ROOT, SCRIPTS, short_args

MODULES = [module for module, *_ in SCRIPTS]
NETWORKS = ("q_network", "actor", "critic", "policy", "value")


def box(module_name: str) -> str:
    """The prefix of the test env ids whose action space the script uses ("Box" for ddpg.py)."""
    return "Box" if module_name == "ddpg" else ""


def bad_input_cases(module_name: str, tmp_path: Path) -> list[tuple[dict, str]]:
    """(Args overrides, a phrase the refusal must contain) for the bad input each script checks in its own way: its
    env (made by its make_env), its memory estimate, its own fields. What plumbing.py checks alike for every script
    (the run settings, the types) is in test_plumbing.py, on one script."""
    cases = [
        ({"env_id": "Hopper-v3"}, "cannot make the environment 'Hopper-v3': ImportError"),
        ({"env_id": f"tests/{box(module_name)}SequenceObservations-v0"}, "cannot flatten the observations of"),
        ({"hidden_sizes": (100_000, 100_000)}, "mostly for --hidden-sizes"),
        ({"learning_rate": math.inf}, "--learning-rate must be a finite number, got inf"),
    ]
    huge = {"total_timesteps": 10**12}
    specific = {
        "dqn": [({"buffer_size": 10**12, **huge}, "mostly for --buffer-size")],
        "fitted_q": [
            ({"buffer_size": 10**12, **huge}, "mostly for --buffer-size"),
            (
                {"save_dataset": "/proc/d.npz", "buffer_size": 30_000},
                "--save-dataset must be in an existing directory this process can write",
            ),
        ],
        "ddpg": [
            ({"buffer_size": 10**12, **huge}, "mostly for --buffer-size"),
            ({"exploration_noise": math.inf}, "--exploration-noise must be a finite number"),
            ({"env_id": "tests/MultiBinary-v0"}, "which no script here handles"),
        ],
        "reinforce": [
            ({"steps_per_update": 10**11, **huge}, "mostly for --steps-per-update"),
            ({"init_log_std": math.inf}, "--init-log-std must be a finite number"),
            ({"gamma": math.inf}, "--gamma must be a finite number or None, got inf"),
        ],
    }
    policy_gradient = [
        ({"num_steps": 10**9, **huge}, "mostly for --num-steps"),
        ({"max_kl": math.inf}, "--max-kl must be a finite number"),
        ({"cg_damping": math.inf}, "--cg-damping must be a finite number"),
        ({"init_log_std": math.inf}, "--init-log-std must be a finite number"),
        (
            {"num_envs": 16, "total_timesteps": 10},
            "--num-envs must leave a step of all environments in --total-timesteps, got 16",
        ),
    ]
    return cases + specific.get(module_name, policy_gradient)


@pytest.mark.parametrize("module_name", MODULES)
def test_bad_input_is_refused_in_one_sentence_before_anything_is_written(module_name, tmp_path, log_dir):
    module = importlib.import_module(module_name)
    (tmp_path / "a_file").write_text("keep me")
    for overrides, phrase in bad_input_cases(module_name, tmp_path):
        args = module.Args(**{"log_dir": log_dir, **overrides})
        with pytest.raises(ValueError) as error:
            module.train(args)
        message = str(error.value)
        assert phrase in message, (overrides, message)
        assert message.startswith(f"{module_name}.py") and "\n" not in message and message.endswith("."), message
        assert not os.path.exists(log_dir), f"{overrides} wrote {log_dir}"
        assert (tmp_path / "a_file").read_text() == "keep me"


class ChecksPassed(Exception):
    """Raised where the run directory would be made: every check before it let the settings through."""


@pytest.mark.parametrize("module_name", MODULES)
def test_zero_negative_and_large_numbers_in_any_field_are_refused_in_a_sentence_or_accepted(
    module_name, monkeypatch, log_dir
):
    """A zero or a negative in any numeric field (a divisor, a count, a rate) gets a ValueError or passes the
    checks; never another exception (a ZeroDivisionError from a check that divides before it refuses)."""
    module = importlib.import_module(module_name)

    def checks_passed(args):
        raise ChecksPassed

    monkeypatch.setattr(plumbing, "make_run_dir", checks_passed)
    for field, kind in typing.get_type_hints(module.Args).items():
        numeric = {int: (0, -1, 10**6), float: (0.0, -1.0, 2.0)}
        for value in next((values for number, values in numeric.items() if kind in (number, number | None)), ()):
            with pytest.raises((ValueError, ChecksPassed)):
                module.train(module.Args(**{"log_dir": log_dir, field: value}))
    assert not os.path.exists(log_dir)


def test_ddpg_does_not_send_a_multibinary_user_to_a_script_that_refuses_it_too(log_dir):
    ddpg = importlib.import_module("ddpg")
    with pytest.raises(ValueError) as error:
        ddpg.train(ddpg.Args(env_id="tests/MultiBinary-v0", log_dir=log_dir))
    assert ".py" not in str(error.value).removeprefix("ddpg.py")


def test_reinforce_refuses_a_budget_that_no_episode_fits_in_and_leaves_no_run(log_dir):
    reinforce = importlib.import_module("reinforce")
    # CartPole-v1's episodes last at least 8 steps; 5 steps in each of 8 environments finish none.
    args = reinforce.Args(total_timesteps=40, num_envs=8, log_dir=log_dir, save_model=True)
    with pytest.raises(
        ValueError, match=r"no episode of CartPole-v1 ended within --total-timesteps 40 .*never updated"
    ):
        reinforce.train(args)
    assert not os.path.exists(log_dir), "nothing is left of a run refused for its budget"


@pytest.mark.parametrize("module_name", ["trpo", "natural_gradient"])
def test_a_budget_that_is_no_multiple_of_the_environments_is_never_overrun(module_name, log_dir):
    module = importlib.import_module(module_name)
    args = module.Args(total_timesteps=101, num_envs=4, num_steps=10, eval_episodes=0, log_dir=log_dir)
    args.normalize_observations = False  # (natural_gradient.py's default warm-up would take the first 40 steps)
    events = EventAccumulator(module.train(args)["run_dir"], size_guidance={"scalars": 0})
    events.Reload()
    assert [point.step for point in events.Scalars("policy/kl")] == [40, 80, 100]  # 25 whole steps of 4 envs


# ------------------------------------------------------------------------------------------ non-finite numbers
@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_a_nan_in_the_last_stretch_reaches_no_saved_model_and_no_result(module_name, env_id, short, log_dir):
    # Rewards turn NaN at the env's 450th step: after the last loss dqn.py and ddpg.py read (every 100 steps).
    module = importlib.import_module(module_name)
    env = f"tests/{'Box' if env_id == 'Pendulum-v1' else ''}LateHugeReward-v0"
    overrides = {"num_envs": 1} if "num_envs" in short else {}  # one env lives all 500 steps
    module, args = short_args(module_name, env, short, log_dir, total_timesteps=500, save_model=True, **overrides)
    with pytest.raises(FloatingPointError) as error:
        module.train(args)
    message = str(error.value)
    assert message.startswith(f"{module_name}.py: non-finite numbers appeared between step ") and "\n" not in message
    if module_name == "dqn":  # found by the check at the end of training
        assert "between step 401 and step 500 (the weights of q_network)" in message
    if module_name == "ddpg":  # found as soon as the actor's action (on the CPU anyway) is NaN
        assert re.search(r"between step 40\d and step 4\d\d \(the weights of actor\)", message), message
    (run_dir,) = os.listdir(log_dir)
    assert not any(name.endswith(".pt") for name in os.listdir(os.path.join(log_dir, run_dir)))
    assert_logs_were_flushed(log_dir)


# ---------------------------------------------------------------------------------------------------- saving
def test_fitted_q_keeps_its_dataset_when_the_directory_stops_being_writable(tmp_path, log_dir, unwritable_run_dirs):
    fitted_q = importlib.import_module("fitted_q")
    path = Path(log_dir) / "data" / "transitions.npz"
    path.parent.mkdir(parents=True)
    args = fitted_q.Args(
        total_timesteps=300,
        learning_starts=100,
        batch_size=32,
        eval_episodes=0,
        log_dir=log_dir,
        save_dataset=str(path),
    )
    fitted_q.train(args)  # (the check before the run probes with a directory, which the fixture still allows)
    (saved,) = unwritable_run_dirs.glob("*.npz")
    assert not path.exists() and len(fitted_q.load_dataset(str(saved), 4, 2)["action"]) == 300


# ---------------------------------------------------------------------------------------------------- Ctrl-C
@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_ctrl_c_in_process_saves_the_model_as_it_stands_and_raises_keyboard_interrupt(
    module_name, env_id, short, log_dir
):
    # tests/CtrlC-v0 raises KeyboardInterrupt at its 300th step, as Ctrl-C there would.
    module = importlib.import_module(module_name)
    env = f"tests/{'Box' if env_id == 'Pendulum-v1' else ''}CtrlC-v0"
    overrides = {"num_envs": 1} if "num_envs" in short else {}
    module, args = short_args(module_name, env, short, log_dir, save_model=True, total_timesteps=1000, **overrides)
    with pytest.raises(KeyboardInterrupt) as error:
        module.train(args)
    message = str(error.value)
    assert message.startswith(f"{module_name}.py: stopped by Ctrl-C at step ") and "of 1000; model saved to" in message
    (run_dir,) = os.listdir(log_dir)
    checkpoint = torch.load(Path(log_dir, run_dir, f"{module_name}.pt"), weights_only=True)
    assert checkpoint["args"]["env_id"] == env and any(name in checkpoint for name in NETWORKS)
    assert_logs_were_flushed(log_dir)


# ------------------------------------------------------------------------------------- numbers that cannot train
POLICY_GRADIENT = ["reinforce", "trpo", "natural_gradient"]
CANNOT_TRAIN = [
    *[(m, {"learning_rate": 1e-300}, "--learning-rate must be at least 1e-08") for m in MODULES],
    ("ddpg", {"critic_learning_rate": 1e-12}, "--critic-learning-rate must be at least 1e-08"),
    ("reinforce", {"value_learning_rate": 1e-12}, "--value-learning-rate must be at least 1e-08"),
    *[(m, {"max_kl": 1e-300}, "--max-kl must lie in [1e-10, 1] nats") for m in POLICY_GRADIENT[1:]],
    *[(m, {"max_kl": 1e30}, "--max-kl must lie in [1e-10, 1] nats") for m in POLICY_GRADIENT[1:]],
    *[(m, {"cg_damping": 1e30}, "--cg-damping must lie in [0, 1000]") for m in POLICY_GRADIENT[1:]],
    *[(m, {"init_log_std": 100.0}, "--init-log-std must lie in [-20, 5]") for m in POLICY_GRADIENT],
    *[
        (m, {"env_id": "tests/HugeBounds-v0"}, "needs Box bounds at most 1e18 apart")
        for m in ["ddpg", *POLICY_GRADIENT]
    ],
]


@pytest.mark.parametrize("module_name, overrides, phrase", CANNOT_TRAIN)
def test_numbers_that_cannot_train_are_refused_naming_a_sensible_range(module_name, overrides, phrase, log_dir):
    module = importlib.import_module(module_name)
    assert_refused_before_any_work(module, log_dir, overrides, phrase)


# ------------------------------------------------------------------------------------------ an env that fails
@pytest.mark.parametrize(
    "how, problem",
    [
        ("raises", "raised at its step 300 (RuntimeError: the simulator broke)"),
        ("nan", "returned a non-finite observation or reward at its step 300 ([nan  0.], 1.0)"),
        ("shape", "returned an observation of shape (7,) at its step 300, not (2,)"),
    ],
)
@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_an_env_that_fails_mid_run_is_named_with_its_step_and_the_model_is_kept(
    module_name, env_id, short, how, problem, log_dir
):
    env = f"tests/{'Box' if env_id == 'Pendulum-v1' else ''}Env{how.capitalize()}-v0"
    overrides = {"num_envs": 1} if "num_envs" in short else {}  # (one env: its 300th step is in the budget)
    module, args = short_args(module_name, env, short, log_dir, save_model=True, total_timesteps=1000, **overrides)
    with pytest.raises(plumbing.EnvFailed) as error:
        module.train(args)
    message = str(error.value)
    assert message.startswith(f"{module_name}.py: stopped because {env} {problem} at step ") and "\n" not in message
    assert "of 1000; model saved to " in message and message.endswith(".")
    (run_dir,) = os.listdir(log_dir)
    assert os.path.exists(os.path.join(log_dir, run_dir, f"{module_name}.pt"))
    assert_logs_were_flushed(log_dir)


@pytest.fixture
def full_disk_after_a_few_log_writes(monkeypatch):
    """TensorBoard's record writer fails with ENOSPC from its 20th write on, in its writer thread, as a full disk."""
    write, writes = record_writer.RecordWriter.write, []

    def failing_write(self, data):
        writes.append(1)
        if len(writes) >= 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", failing_write)


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_logs_the_disk_will_not_take_stop_the_run_in_one_sentence_and_keep_the_model(
    module_name, env_id, short, log_dir, full_disk_after_a_few_log_writes, capsys
):
    module, args = short_args(module_name, env_id, short, log_dir, save_model=True, total_timesteps=3000)
    with pytest.raises(plumbing.RunFailed) as error:
        module.train(args)
    message = str(error.value)
    assert message.startswith(f"{module_name}.py: stopped because its logs could not be written (OSError: [Errno 28]")
    assert "of 3000; model saved to " in message and "\n" not in message
    (run_dir,) = os.listdir(log_dir)
    assert os.path.exists(os.path.join(log_dir, run_dir, f"{module_name}.pt"))
    assert "Exception in thread" not in capsys.readouterr().err, "TensorBoard's thread prints no traceback"


def test_on_the_command_line_the_envs_traceback_comes_first_and_the_sentence_last(monkeypatch, capsys, log_dir):
    dqn = importlib.import_module("dqn")
    flags = [
        "--env-id",
        "tests/EnvRaises-v0",
        "--total-timesteps",
        "1000",
        "--learning-starts",
        "100",
        "--log-dir",
        log_dir,
    ]
    status, _, err = cli_in_process(monkeypatch, capsys, dqn, *flags)
    *traceback, sentence = err.strip().splitlines()
    assert status == 1 and traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "RuntimeError: the simulator broke", "the env's own exception, as it raised it"
    assert (
        sentence.startswith("dqn.py: stopped because tests/EnvRaises-v0 raised at its step 300")
        and "logs in" in sentence
    )


CTRL_C_RUNS = {  # a run long enough to be interrupted in the middle of training, on its default env
    "dqn": ["--learning-starts", "100"],
    "fitted_q": ["--learning-starts", "100", "--buffer-size", "10000000", "--save-dataset", "{log_dir}-data.npz"],
    "ddpg": ["--learning-starts", "100", "--hidden-sizes", "32", "32"],
    "reinforce": ["--steps-per-update", "200"],
    "trpo": ["--num-steps", "32"],
    "natural_gradient": ["--num-steps", "32"],
}


@pytest.mark.parametrize("module_name", MODULES)
def test_ctrl_c_on_the_command_line_is_one_line_exit_130_and_keeps_model_and_logs(module_name, log_dir):
    flags = [flag.format(log_dir=log_dir) for flag in CTRL_C_RUNS[module_name]]
    # A suite started in the background ignores SIGINT, and so would the run: a handled signal is reset at exec, an
    # ignored one is not. So handle it here while the run starts (not preexec_fn: with threads in this process, from
    # earlier tests, a forked child can deadlock before exec, and a child that never runs never answers the signal).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        command = [sys.executable, f"{module_name}.py", "--log-dir", log_dir, "--save-model"]
        command += ["--total-timesteps", "10000000", *flags]
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    # The TensorBoard file appears once the run's setup is done (imports: seconds on a loaded machine, and more on a
    # fresh virtual environment's first run).
    deadline = time.monotonic() + 120
    while not any(Path(log_dir).glob("*/events.out.tfevents.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(6 if module_name == "ddpg" else 3)  # into the loop, with episodes behind it (Pendulum's: 200 steps)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a run that ignored the signal must not outlive the test
    assert proc.returncode == 130, stderr
    message = stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(f"{module_name}.py: stopped by Ctrl-C at step ") and "; model saved to " in message
    (run_dir,) = Path(log_dir).glob("*__*")
    checkpoint = torch.load(run_dir / f"{module_name}.pt", weights_only=True)
    assert all(
        torch.isfinite(tensor).all() for name in NETWORKS if name in checkpoint for tensor in checkpoint[name].values()
    )
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    assert len(events.Scalars("charts/episodic_return")) > 0, "the logs up to the interruption read back"
    if module_name == "fitted_q":
        dataset = importlib.import_module("fitted_q").load_dataset(f"{log_dir}-data.npz", 4, 2)
        assert len(dataset["action"]) > 0 and f"transitions saved to {log_dir}-data.npz" in message
