"""plumbing.py, tested once: what every script gets from it alike (checks, run directories, saving, the command line,
the evaluation's seeding). What each script wires in its own way (a NaN mid-run, Ctrl-C, save → load → evaluate)
is tested on every script, in test_failures.py, test_reuse.py and test_smoke.py.

The cases run through dqn.py, the shortest script, where they need one; the command line is driven in process through
plumbing.cli (real processes: a short run and a Ctrl-C per script, in test_smoke.py and test_failures.py, and here
a refusal).
"""

import plumbing

import contextlib
import dataclasses
import importlib
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import assert_refused_before_any_work, cli_in_process
from test_smoke import ROOT, SCRIPTS, run_cli, short_args

import dqn

DQN_SHORT = SCRIPTS[0][3]


# ----------------------------------------------------------------------------------------------- bad input, once
def shared_bad_input(tmp_path: Path) -> list[tuple[dict, str]]:
    """(Args overrides, a phrase the refusal must contain): the run settings and types plumbing checks for all six."""
    a_file = tmp_path / "a_file"
    return [
        ({"log_dir": str(a_file)}, "--log-dir must be a directory this process can create or write"),
        ({"log_dir": str(a_file / "runs")}, "--log-dir must be a directory this process can create or write"),
        ({"log_dir": "/proc/runs"}, "--log-dir must be a directory this process can create or write"),  # even as root
        ({"log_dir": ""}, "--log-dir must be a directory this process can create or write, got ''"),
        ({"exp_name": "a/b"}, "--exp-name must be a file name (no '/'), got 'a/b'"),
        ({"exp_name": ""}, "--exp-name must be a file name"),
        ({"seed": -1}, "--seed must lie in [0, 2**32 - 1]"),
        ({"seed": 2**32}, "--seed must lie in [0, 2**32 - 1]"),
        ({"env_id": "phys2d/CartPole-v1"}, "ModuleNotFoundError: No module named 'jax'"),
        ({"env_id": "no_such_module:Env-v0"}, "ModuleNotFoundError: No module named 'no_such_module'"),
        ({"env_id": "tests/GraphObservations-v0"}, "cannot flatten the observations of"),
        ({"torch_threads": 100_000}, "--torch-threads must lie in [0, "),
        ({"learning_rate": math.nan}, "--learning-rate must be a finite number, got nan"),
        ({"total_timesteps": "1000"}, "--total-timesteps must be an integer, got '1000'"),
        ({"total_timesteps": True}, "--total-timesteps must be an integer, got True"),
        ({"seed": 1.5}, "--seed must be an integer, got 1.5"),
        ({"hidden_sizes": (64, "a")}, "--hidden-sizes must be tuple[int, ...], got (64, 'a')"),
        ({"save_model": "yes"}, "--save-model must be True or False"),
        ({"device": "cuda:99"}, "--device cuda:99 is not a device of this machine"),
        ({"device": "tpu"}, "--device tpu is not a device of this machine"),
        ({"capture_video": True, "eval_episodes": 0}, "--capture-video must go with --eval-episodes above 0"),
        ({"load_model": str(tmp_path / "missing.pt")}, "--load-model must name a file --save-model wrote"),
    ]


def test_the_run_settings_and_the_types_are_refused_in_one_sentence_before_anything_is_written(tmp_path, log_dir):
    (tmp_path / "a_file").write_text("keep me")
    for overrides, phrase in shared_bad_input(tmp_path):
        with pytest.raises(plumbing.UsageError) as error:
            dqn.train(dqn.Args(**{"log_dir": log_dir, **overrides}))
        message = str(error.value)
        assert phrase in message and message.startswith("dqn.py") and "\n" not in message and message.endswith(".")
        assert not os.path.exists(log_dir), f"{overrides} wrote {log_dir}"
        assert (tmp_path / "a_file").read_text() == "keep me"


def test_every_message_starts_with_the_scripts_file_name_whatever_the_experiment_is_called(log_dir):
    for module_name, *_ in SCRIPTS:
        module = importlib.import_module(module_name)
        assert plumbing.script_name(module.Args(exp_name="mine")) == f"{module_name}.py"
        with pytest.raises(plumbing.UsageError, match=rf"^{module_name}\.py: --seed must"):
            module.train(module.Args(exp_name="mine", seed=-1, log_dir=log_dir))


@pytest.mark.parametrize(
    "flags, status, phrase",
    [
        (("--env-id", "NoSuchEnv-v0"), 2, "dqn.py cannot make the environment 'NoSuchEnv-v0'"),
        (("--total-timesteps", "0"), 2, "dqn.py: --total-timesteps must be positive, got 0."),
        (("--learning-rate", "inf"), 2, "dqn.py: --learning-rate must be a finite number, got inf."),
        (("--env-id", "Hopper-v3"), 2, "dqn.py cannot make the environment 'Hopper-v3': ImportError"),
        (("--device", "cuda:99"), 2, "dqn.py: --device cuda:99 is not a device of this machine"),
        (("--env-id", "tests/HugeReward-v0"), 1, "dqn.py: non-finite numbers appeared between step"),
    ],
)
def test_the_command_line_ends_in_one_line_on_stderr_and_an_exit_status(
    flags, status, phrase, monkeypatch, capsys, log_dir
):
    short = [f for k, v in DQN_SHORT.items() for f in (f"--{k.replace('_', '-')}", str(v))]
    code, _, err = cli_in_process(monkeypatch, capsys, dqn, "--log-dir", log_dir, *short, *flags)
    last = err.strip().splitlines()[-1]  # (Gymnasium warns about a NaN reward before)
    assert code == status and last.startswith(phrase) and last.endswith(".") and "Traceback" not in err, err
    if status == 2:
        assert not os.path.exists(log_dir), "nothing is written before the input is checked"
    else:  # the NaN: the run existed, its logs stay, no model was saved
        (run_dir,) = os.listdir(log_dir)
        assert "nothing was saved" in last and not list(Path(log_dir, run_dir).glob("*.pt"))


@pytest.mark.parametrize(
    "flags, line",
    [
        (
            ["--total-timesteps", "abc"],
            "Error parsing --total-timesteps: invalid literal for int() with base 10: 'abc' (expected: --total-timesteps INT)",
        ),
        (["--loss", "bogus"], "invalid choice 'bogus' for argument '--loss'. Expected one of ('mse', 'huber')"),
        (["--no-such-flag", "3"], "Unrecognized options: --no-such-flag, 3"),
        (["--seed"], "Missing value for argument '--seed'. Expected 1 values"),
    ],
)
def test_a_parse_error_is_one_line_naming_the_flag_and_its_form_not_a_box(flags, line, monkeypatch, capsys, log_dir):
    code, out, err = cli_in_process(monkeypatch, capsys, dqn, "--log-dir", log_dir, *flags)
    assert (code, out, err) == (2, "", f"dqn.py: {line}; see python dqn.py --help.\n")
    assert not os.path.exists(log_dir)


def test_an_envs_warnings_do_not_bury_a_refusal_and_show_once_the_env_is_accepted(monkeypatch, capsys, log_dir):
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        code, _, err = cli_in_process(monkeypatch, capsys, dqn, "--env-id", "tests/BoxWarning-v0", "--log-dir", log_dir)
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("dqn.py needs a Discrete action space"), err
    assert not [w for w in shown if "WarningEnv" in str(w.message)], "a refused env's warnings are not shown"
    short = [f for k, v in DQN_SHORT.items() for f in (f"--{k.replace('_', '-')}", str(v))]
    with pytest.warns(UserWarning, match="WarningEnv: this env is out of date"):  # (shown once, after the checks)
        code, _, _ = cli_in_process(
            monkeypatch, capsys, dqn, "--env-id", "tests/Warning-v0", "--log-dir", log_dir, *short
        )
    assert code == 0


def test_help_shows_the_docstrings_summary_and_examples(monkeypatch, capsys):
    code, out, _ = cli_in_process(monkeypatch, capsys, dqn, "--help")
    assert code == 0 and "Deep Q-Network (DQN)" in out and "python dqn.py --double-q --save-model" in out


def test_a_file_of_another_script_is_refused_on_the_command_line_with_exit_status_2(log_dir, tmp_path):
    # The bug this module was made to fix once: trpo.py read a dqn.py file's args before asking whose it was.
    _, dqn_args = short_args("dqn", "CartPole-v1", DQN_SHORT, str(tmp_path / "saved"), save_model=True)
    path = os.path.join(dqn.train(dqn_args)["run_dir"], "dqn.pt")
    proc = run_cli("trpo", "--load-model", path, "--total-timesteps", "0", "--log-dir", log_dir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"trpo.py: --load-model {path} was written by dqn.py, not by trpo.py."
    assert not os.path.exists(log_dir)


def test_capture_video_without_moviepy_is_refused_first(monkeypatch, log_dir):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "moviepy" else find_spec(name, *a)
    )
    with pytest.raises(
        plumbing.UsageError, match=r"^dqn\.py: --capture-video cannot record .*\); pip install moviepy\.$"
    ):
        dqn.train(dqn.Args(capture_video=True, log_dir=log_dir))
    assert not os.path.exists(log_dir)


def test_capture_video_on_an_env_that_draws_no_frames_says_so_not_pip_install(log_dir):
    # tests/Terminating-v0 declares no render modes: no library would let it be recorded
    with pytest.raises(plumbing.UsageError, match=r"the env draws no rgb_array frames, so it cannot be recorded"):
        dqn.train(dqn.Args(env_id="tests/Terminating-v0", capture_video=True, log_dir=log_dir))
    assert not os.path.exists(log_dir)


def test_memory_is_checked_against_what_is_free_naming_the_largest_flag():
    assert plumbing.memory_problem({"--a": 1, "--b": 2}, torch.device("cpu")) is None
    problem = plumbing.memory_problem({"--a": 2**70, "--b": 2**60}, torch.device("cpu"))
    assert problem.startswith("would need about ") and problem.endswith("lower --a") and "mostly for --a" in problem


# --------------------------------------------------------------------------------------------- run directories
def test_two_runs_in_the_same_second_get_distinct_run_dirs(log_dir):
    args = dqn.Args(total_timesteps=50, learning_starts=10, eval_episodes=0, log_dir=log_dir)
    first, second = dqn.train(args)["run_dir"], dqn.train(args)["run_dir"]
    assert first != second and os.path.isdir(first) and os.path.isdir(second)
    names = {plumbing.make_run_dir(args) for _ in range(5)}  # well inside one second
    assert len(names) == 5 and all(os.path.isdir(name) for name in names)
    assert all(Path(name).name.startswith("CartPole-v1__dqn__1__") for name in names)


def test_a_namespaced_env_id_gets_a_dash_in_the_run_dir_name(log_dir):
    run_dir = plumbing.make_run_dir(dqn.Args(env_id="tests/Truncated-v0", log_dir=log_dir))
    assert Path(run_dir).parent == Path(log_dir) and Path(run_dir).name.startswith("tests-Truncated-v0__dqn__1__")


# ------------------------------------------------------------------------------------------------------- saving
def test_saves_are_atomic_an_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "model.pt"

    def half_then_ctrl_c(file):
        file.write(b"half a model")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plumbing.save_atomically(str(target), half_then_ctrl_c, "dqn.py")
    assert os.listdir(tmp_path) == [], "no partial file at the path or beside it"
    target.write_bytes(b"the old model")

    def check_then_write(file):  # while it writes, the old file is still whole at the path
        assert target.read_bytes() == b"the old model"
        file.write(b"the new model")

    plumbing.save_atomically(str(target), check_then_write, "dqn.py")
    assert target.read_bytes() == b"the new model" and os.listdir(tmp_path) == ["model.pt"]


def test_a_model_that_cannot_be_written_in_its_run_dir_is_written_elsewhere_and_said(
    log_dir, unwritable_run_dirs, capsys
):
    _, args = short_args("dqn", "CartPole-v1", DQN_SHORT, log_dir, save_model=True, eval_episodes=0)
    result = dqn.train(args)
    (saved,) = unwritable_run_dirs.glob("*.pt")  # (torch may keep a cache directory there too)
    assert saved.name.endswith("-dqn.pt")
    result["q_network"].load_state_dict(torch.load(saved, weights_only=True)["q_network"])
    out, err = capsys.readouterr()
    assert f"could not write {os.path.join(result['run_dir'], 'dqn.pt')}" in err and str(saved) in err
    assert f"model saved to {saved}" in out


def test_a_save_that_fails_everywhere_says_so_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(plumbing.tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError, match=r"^dqn\.py: could not save .*model\.pt, nor in .*: No space; No space\.$"):
        plumbing.save_atomically(str(tmp_path / "model.pt"), lambda file: file.write(b"x"), "dqn.py")


# --------------------------------------------------------------------------------------------------- evaluation
def test_evaluation_meets_the_start_states_of_one_seeding_per_run():
    # tests/RandomStart-v0 pays its start state u ~ U(0, 1) in a one-step episode: the returns are the start states.
    returns = plumbing.evaluation_returns(gym.make, "tests/RandomStart-v0", lambda obs, space: 0, 7, 6)
    env = gym.make("tests/RandomStart-v0")
    expected = [float(env.reset(seed=10_007)[0][0])] + [float(env.reset()[0][0]) for _ in range(5)]
    assert returns == pytest.approx(expected, rel=1e-6)


def test_evaluation_cuts_an_env_without_a_time_limit_and_passes_the_action_space_to_act():
    seen = []

    def act(obs: np.ndarray, space: gym.Space) -> int:
        seen.append(space)
        return 0

    assert plumbing.evaluation_returns(gym.make, "tests/Endless-v0", act, 1, 1) == [float(plumbing.EVAL_STEP_LIMIT)]
    assert len(seen) == plumbing.EVAL_STEP_LIMIT and seen[0] == gym.spaces.Discrete(2)


def test_plumbing_imports_no_script_and_no_script_imports_another():
    scripts = [name for name, *_ in SCRIPTS]
    for path in [ROOT / "plumbing.py", *(ROOT / f"{name}.py" for name in scripts)]:
        imported = {
            line.split()[1].split(".")[0]
            for line in path.read_text().splitlines()
            if line.startswith(("import ", "from "))
        }
        assert not imported & set(scripts), path.name
    command = [sys.executable, "-c", "import plumbing, sys; print(' '.join(sys.modules))"]
    loaded = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "plumbing" in loaded and not set(scripts) & set(loaded)


# -------------------------------------------------------------------------------------------------------- the run
@pytest.mark.parametrize("raises", [False, True])
def test_a_run_gives_the_caller_back_its_generators_threads_and_determinism_however_it_ends(
    raises, log_dir, caller_state
):
    args = dqn.Args(seed=3, torch_threads=1, log_dir=log_dir)
    with contextlib.suppress(RuntimeError), plumbing.Run(args, torch.device("cpu"), remedy="--learning-rate"):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
        random.random(), np.random.random(), torch.rand(1)  # the run draws from its own seed's streams
        if raises:
            raise RuntimeError("the run failed")
    assert caller_state(), "the caller's generators, threads and determinism are as they were"


def test_a_run_seeds_every_generator_with_its_seed(log_dir):
    with plumbing.Run(dqn.Args(seed=5, log_dir=log_dir), torch.device("cpu"), remedy="--learning-rate"):
        drawn = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    assert drawn == (random.random(), np.random.random(), torch.rand(1).item())


def test_a_non_finite_loss_stops_the_run_at_once_saying_between_which_steps_and_the_logs_stay(log_dir):
    args = dqn.Args(log_dir=log_dir)
    with pytest.raises(FloatingPointError) as error, plumbing.Run(args, torch.device("cpu"), remedy="--x") as run:
        run.losses({"losses/td_loss": 1.0}, 100)
        run.losses({"losses/td_loss": 2.0, "losses/q_values": math.inf}, 200)
        raise AssertionError("the run went on after a non-finite loss")
    assert str(error.value) == (
        "dqn.py: non-finite numbers appeared between step 101 and step 200 (losses/q_values = inf), so nothing was "
        "saved; a step too large for the rewards' scale is the usual cause: try a lower --x."
    )
    (run_dir,) = os.listdir(log_dir)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(log_dir, run_dir)))


def test_finish_checks_every_weight_and_ctrl_c_saves_no_non_finite_model(log_dir):
    network = torch.nn.Linear(2, 2)
    args = dqn.Args(log_dir=log_dir, save_model=True)
    with plumbing.Run(args, torch.device("cpu"), remedy="--x") as run:
        with torch.no_grad():
            network.weight[0, 0] = math.nan
        stopped = run.interrupted(KeyboardInterrupt(), 7, {"q_network": network}, {})
        assert (
            str(stopped)
            == f"dqn.py: stopped by Ctrl-C at step 7 of 50000; model not saved: its weights are not finite; logs in {run.dir}."
        )
        with pytest.raises(FloatingPointError, match=r"between step 1 and step 50000 \(the weights of q_network\)"):
            run.finish({"q_network": network})
    assert not list(Path(run.dir).glob("*.pt"))


@pytest.mark.parametrize("module_name, env_id, short", [(m, env_ids[0], short) for m, env_ids, _, short in SCRIPTS])
def test_a_make_env_replaced_on_the_script_reaches_training_and_evaluation(
    module_name, env_id, short, monkeypatch, log_dir
):
    # plumbing.py keeps no reference to a script's make_env: it is handed the one the script looks up at each call.
    module, args = short_args(module_name, env_id, short, log_dir, eval_episodes=1)
    make_env, steps = module.make_env, []

    class Counting(gym.Wrapper):
        def step(self, action):
            steps.append(action)
            return super().step(action)

    monkeypatch.setattr(module, "make_env", lambda *a, **k: Counting(make_env(*a, **k)))
    result = module.train(args)
    evaluation = 200 if env_id == "Pendulum-v1" else int(result["eval_returns"][0])  # CartPole: 1 per step
    assert len(steps) == args.total_timesteps + evaluation


# ------------------------------------------------------------------------- files that do not fit, saves that fail
@pytest.fixture(scope="module")
def dqn_model(tmp_path_factory) -> str:
    """A file dqn.py's --save-model wrote."""
    log_dir = str(tmp_path_factory.mktemp("saved"))
    _, args = short_args("dqn", "CartPole-v1", DQN_SHORT, log_dir, save_model=True, eval_episodes=0)
    return os.path.join(dqn.train(args)["run_dir"], "dqn.pt")


def edited(path: str, tmp_path: Path, edit) -> str:
    checkpoint = torch.load(path, weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, tmp_path / "edited.pt")
    return str(tmp_path / "edited.pt")


def no_q_network(checkpoint: dict) -> None:
    del checkpoint["q_network"]


def nan_weight(checkpoint: dict) -> None:
    next(iter(checkpoint["q_network"].values()))[0] = math.nan


def reshaped_layer(checkpoint: dict) -> None:
    checkpoint["q_network"]["net.0.weight"] = torch.zeros(3, 4)


def one_parameter_group_too_many(checkpoint: dict) -> None:
    groups = checkpoint["optimizers"]["optimizer"]["param_groups"]
    groups.append({**groups[0], "params": [99]})


@pytest.mark.parametrize(
    "edit, phrase",
    [
        (no_q_network, "does not fit this run (KeyError: 'q_network')"),
        (nan_weight, "holds non-finite weights (q_network)"),
        (reshaped_layer, "does not fit this run (RuntimeError: Error(s) in loading state_dict for QNetwork"),
        (one_parameter_group_too_many, "does not fit this run (ValueError: loaded state dict has a different number"),
    ],
)
@pytest.mark.parametrize("budget", [0, 600])  # only evaluate it, or train on from it
def test_a_model_file_that_does_not_fit_is_one_sentence_and_leaves_no_run(edit, phrase, budget, dqn_model, tmp_path):
    path = edited(dqn_model, tmp_path, edit)
    overrides = {**DQN_SHORT, "load_model": path, "total_timesteps": budget}
    assert_refused_before_any_work(dqn, str(tmp_path / "runs"), overrides, phrase)


def test_a_save_whose_write_raises_any_exception_falls_back_to_the_temporary_directory(tmp_path, monkeypatch, capsys):
    target, elsewhere, attempts = tmp_path / "runs" / "model.pt", tmp_path / "elsewhere", []
    target.parent.mkdir(), elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))

    def full_disk_then_fine(file):  # torch.save on a full disk raises RuntimeError, not OSError
        attempts.append(file.name)
        if len(attempts) == 1:
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 64 vs 0")
        file.write(b"the model")

    saved = plumbing.save_atomically(str(target), full_disk_then_fine, "dqn.py")
    assert Path(saved).parent == elsewhere and Path(saved).read_bytes() == b"the model"
    assert not target.exists() and os.listdir(target.parent) == []
    assert "RuntimeError: [enforce fail at inline_container.cc:672] unexpected pos 64 vs 0" in capsys.readouterr().err


def test_saved_files_follow_the_umask_and_numpy_args_load_with_weights_only(log_dir):
    umask = os.umask(0o027)
    try:
        numpy_numbers = {"batch_size": np.int64(32), "gamma": np.float64(0.98), "seed": np.int64(3)}  # a notebook's
        args = dqn.Args(**{**DQN_SHORT, **numpy_numbers}, save_model=True, log_dir=log_dir)
        path = Path(dqn.train(dataclasses.replace(args, eval_episodes=0))["run_dir"], "dqn.pt")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o640
    saved = torch.load(path, weights_only=True)["args"]
    assert saved["batch_size"] == 32 and type(saved["batch_size"]) is int and type(saved["gamma"]) is float
    assert saved["seed"] == 3 and type(saved["seed"]) is int  # (Gymnasium's reset takes no numpy seed)


def test_paths_the_filesystem_would_refuse_mid_run_are_refused_first(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "at-all")
    named = "a file name is at most 255 bytes"
    assert_refused_before_any_work(
        dqn, str(tmp_path / "runs"), {"exp_name": "x" * 250}, f"--exp-name must be shorter ({named}"
    )
    assert_refused_before_any_work(dqn, str(tmp_path / ("y" * 256)), {}, f"--log-dir must be a shorter path ({named}")
    unusable = "--log-dir must be a directory this process can create or write"
    assert_refused_before_any_work(dqn, str(tmp_path / "dangling"), {}, unusable)
    assert sorted(os.listdir(tmp_path)) == ["dangling"]


# ------------------------------------------------------------------------------------------------ Ctrl-C at any moment
def test_ctrl_c_while_the_script_imports_is_one_line_and_exit_130(tmp_path):
    """Half a second in, torch is still importing (it takes seconds): the guard plumbing.py installs first answers."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a suite in the background ignores SIGINT)
    try:
        command = [sys.executable, "dqn.py", "--log-dir", str(tmp_path / "runs")]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stderr == "dqn.py: stopped by Ctrl-C while starting.\n"
    assert not (tmp_path / "runs").exists()


def test_a_run_imports_none_of_torchs_big_lazy_modules_that_importing_the_script_did_not(tmp_path):
    """So a Ctrl-C during a run's setup cannot leave one half-imported: torch imports its compiler and sympy (over a
    second) on its first use_deterministic_algorithms; plumbing.py imports them up front, while Ctrl-C is one line."""
    code = (
        "import sys, dqn; before = set(sys.modules); "
        f"dqn.train(dqn.Args(total_timesteps=600, learning_starts=200, eval_episodes=1, log_dir={str(tmp_path)!r})); "
        "late = sorted(m for m in set(sys.modules) - before if m.startswith(('sympy', 'torch._', 'torch.fx'))); "
        "assert not late, late[:5]"
    )
    process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr[-2000:]


def test_a_second_ctrl_c_while_the_model_is_saved_is_dropped_and_the_handler_comes_back():
    before = signal.getsignal(signal.SIGINT)
    with plumbing.ctrl_c_held(then=False):
        os.kill(os.getpid(), signal.SIGINT)  # (would raise KeyboardInterrupt here)
        time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_ctrl_c_in_the_middle_of_a_write_to_the_logs_stops_the_run_once_the_write_is_whole(log_dir):
    """A KeyboardInterrupt raised inside TensorBoard's queue left its writer thread waiting, and the run's last flush
    with it: Ctrl-C on the command line hung 1 run in about 45 on a loaded machine (py-spy: the main thread in
    SummaryWriter.close, joining a writer thread waiting on its queue)."""
    written = []

    class Writer:  # a write that a Ctrl-C lands in the middle of
        def add_scalar(self, tag: str, value: float, step: int) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # (KeyboardInterrupt would be raised here, the write half done)
            written.append(tag)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (as in a program; a suite may ignore it)
    try:
        with plumbing.Run(dqn.Args(log_dir=log_dir), torch.device("cpu"), remedy="--x") as run:
            writer, run.writer = run.writer, Writer()
            with pytest.raises(KeyboardInterrupt):
                run.scalars({"a": 1.0, "b": 2.0}, step=1)
            run.writer = writer
        assert written == ["a", "b"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_after_training_says_so_with_the_logs(log_dir):
    with pytest.raises(KeyboardInterrupt, match=r"^dqn\.py: stopped by Ctrl-C after training; logs in .*\.$"):
        with plumbing.Run(dqn.Args(log_dir=log_dir), torch.device("cpu"), remedy="--x"):
            raise KeyboardInterrupt  # as one in the evaluation or the save would
