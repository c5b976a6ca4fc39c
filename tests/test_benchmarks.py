"""benchmarks/: the grid runner (local pool and Ray), its resumability and failure handling, and the plots."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import floor  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
import plot  # noqa: E402
import run  # noqa: E402

import reinforce  # noqa: E402

TINY = {"total_timesteps": 300, "set": ("eval_episodes=2",), "workers": 2}


def tiny_grid(tmp_path: Path, name: str, **changes) -> run.Args:
    """2 scripts × 1 env × 2 seeds, a few hundred steps each."""
    settings = {"scripts": ("reinforce", "trpo"), "env_ids": ("CartPole-v1",), "seeds": (1, 2), **TINY}
    settings.update(changes)
    return run.Args(results_dir=str(tmp_path / name), log_dir=str(tmp_path / "runs"), **settings)


def result_files(results_dir: str) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(Path(results_dir).glob("*.json"))}


def test_tiny_grid_writes_one_json_per_run_skips_them_again_and_plots_them(tmp_path):
    args = tiny_grid(tmp_path, "results")
    summary = run.main(args)
    assert len(summary["done"]) == 4 and summary["skipped"] == [] and summary["failed"] == []
    files = result_files(args.results_dir)
    assert sorted((r["script"], r["seed"]) for r in files.values()) == [
        ("reinforce", 1),
        ("reinforce", 2),
        ("trpo", 1),
        ("trpo", 2),
    ]
    for record in files.values():
        assert record["status"] == "ok" and record["env_id"] == "CartPole-v1"
        assert record["args"]["total_timesteps"] == 300 and record["args"]["eval_episodes"] == 2
        assert len(record["episode_end_steps"]) == len(record["episodic_returns"]) > 0
        assert len(record["eval_returns"]) == 2 and record["wall_time"] > 0 and record["sps"] > 0
    # The file holds what train() returns for the same Args, called here in this process.
    record = next(r for r in files.values() if r["script"] == "reinforce" and r["seed"] == 2)
    fields = {key: tuple(v) if isinstance(v, list) else v for key, v in record["args"].items()}
    direct = reinforce.train(reinforce.Args(**{**fields, "log_dir": str(tmp_path / "direct")}))
    assert record["episodic_returns"] == direct["episodic_returns"]
    assert record["episode_end_steps"] == direct["episode_end_steps"]
    assert record["eval_returns"] == direct["eval_returns"]

    written = {path: path.stat().st_mtime_ns for path in Path(args.results_dir).glob("*.json")}
    again = run.main(args)
    assert again["done"] == [] and sorted(again["skipped"]) == sorted(p.stem for p in written)
    assert {path: path.stat().st_mtime_ns for path in written} == written  # untouched

    table = plot.main(plot.Args(results_dir=args.results_dir, out_dir=str(tmp_path / "figures")))
    assert (tmp_path / "figures" / "CartPole-v1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "figures" / "table.md").read_text().strip() == table
    rows = [line for line in table.splitlines() if line.startswith("| CartPole-v1")]
    assert [row.split("|")[2].strip() for row in rows] == ["reinforce", "trpo"]
    reinforce_scores = [np.mean(r["eval_returns"]) for r in files.values() if r["script"] == "reinforce"]
    expected = f"{np.mean(reinforce_scores):.1f} ± {np.std(reinforce_scores):.1f}"
    assert rows[0].split("|")[3:6] == [" 300 ", " 2 ", f" {expected} "]


def test_a_failed_run_is_reported_and_the_others_still_finish(tmp_path, capsys):
    args = tiny_grid(tmp_path, "results", scripts=("reinforce",), env_ids=("CartPole-v1", "NoSuchEnv-v0"), seeds=(1,))
    summary = run.main(args)
    assert len(summary["done"]) == 1 and len(summary["failed"]) == 1
    assert [r["env_id"] for r in result_files(args.results_dir).values()] == ["CartPole-v1"]
    failure = json.loads((Path(args.results_dir) / "failed" / f"{summary['failed'][0]}.json").read_text())
    assert failure["status"] == "failed" and "NoSuchEnv-v0" in failure["error"] and "Traceback" in failure["traceback"]
    assert "NoSuchEnv-v0" in capsys.readouterr().out.split("runs failed")[1]  # named again in the final report
    # A second invocation keeps the finished run and tries the failed one again.
    again = run.main(args)
    assert again["skipped"] == summary["done"] and again["failed"] == summary["failed"]


def test_a_run_whose_process_dies_fails_alone(tmp_path):
    """A worker killed mid-run (here it exits at its env's first reset) fails that run only."""
    args = tiny_grid(tmp_path, "results", scripts=("reinforce",), env_ids=("dying_env:DiesOnReset-v0", "CartPole-v1"))
    summary = run.main(dataclasses.replace(args, seeds=(1,)))
    assert len(summary["done"]) == 1 and len(summary["failed"]) == 1
    failure = json.loads((Path(args.results_dir) / "failed" / f"{summary['failed'][0]}.json").read_text())
    assert failure["error"] == "the run's process exited with status 3 before it finished"


def test_ray_backend_gives_the_local_backends_results(tmp_path):
    local = tiny_grid(tmp_path, "local", scripts=("trpo",))
    on_ray = dataclasses.replace(local, results_dir=str(tmp_path / "ray"), backend="ray")
    assert len(run.main(local)["done"]) == 2 and len(run.main(on_ray)["done"]) == 2
    local_files, ray_files = result_files(local.results_dir), result_files(on_ray.results_dir)
    assert local_files.keys() == ray_files.keys()
    for name, record in local_files.items():
        for key in ("args", "episodic_returns", "episode_end_steps", "eval_returns"):
            assert ray_files[name][key] == record[key], (name, key)


def test_race_preset_interleaves_ours_and_theirs_seed_by_seed():
    runs = run.build_grid(run.Args(preset="race", seeds=(1, 2)))
    first_seed = [(r.script, r.env_id, r.fields["total_timesteps"]) for r in runs if r.seed == 1]
    assert [r.seed for r in runs] == [1] * len(first_seed) + [2] * len(first_seed)
    assert first_seed == [  # the pairs and budgets, ours then theirs; A2C once for its two scripts
        ("dqn", "CartPole-v1", 50_000),
        ("sb3_dqn", "CartPole-v1", 50_000),
        ("ddpg", "Pendulum-v1", 20_000),
        ("sb3_ddpg", "Pendulum-v1", 20_000),
        ("trpo", "CartPole-v1", 100_000),
        ("sb3_trpo", "CartPole-v1", 100_000),
        ("trpo", "Pendulum-v1", 100_000),
        ("sb3_trpo", "Pendulum-v1", 100_000),
        ("reinforce", "CartPole-v1", 100_000),
        ("sb3_a2c", "CartPole-v1", 100_000),
        ("natural_gradient", "CartPole-v1", 100_000),
    ]
    assert all(r.fields["algo"] == r.script.removeprefix("sb3_") for r in runs if r.script in run.SB3)


def test_grid_leaves_out_scripts_that_do_not_take_the_envs_action_space():
    runs = run.build_grid(run.Args(scripts=("dqn", "ddpg", "trpo"), env_ids=("Acrobot-v1", "MountainCarContinuous-v0")))
    pairs = {(r.script, r.env_id) for r in runs}
    assert pairs == {
        ("dqn", "Acrobot-v1"),
        ("trpo", "Acrobot-v1"),
        ("ddpg", "MountainCarContinuous-v0"),
        ("trpo", "MountainCarContinuous-v0"),
    }


def test_run_name_follows_every_setting_and_the_code_but_not_the_log_dir():
    (base,) = run.resolve(run.build_grid(run.Args(scripts=("trpo",), seeds=(3,), env_ids=("CartPole-v1",))), "runs")
    (moved,) = run.resolve(run.build_grid(run.Args(scripts=("trpo",), seeds=(3,), env_ids=("CartPole-v1",))), "x")
    (changed,) = run.resolve(
        run.build_grid(run.Args(scripts=("trpo",), seeds=(3,), env_ids=("CartPole-v1",), set=("trpo.max_kl=0.01",))),
        "runs",
    )
    (checkpointed,) = run.resolve(
        run.build_grid(run.Args(scripts=("trpo",), seeds=(3,), env_ids=("CartPole-v1",))), "runs", 7
    )
    assert base.name == moved.name == checkpointed.name and base.name != changed.name  # where it writes is no result
    assert base.name != dataclasses.replace(base, code="another version").name  # an edited script is a new run
    assert base.name.startswith("trpo__CartPole-v1__seed3__") and changed.fields["max_kl"] == 0.01


def test_an_unfinished_run_goes_on_from_its_checkpoint_and_its_result_is_the_whole_run(tmp_path):
    """A run stopped part way (here: the same run with half the budget, as a killed one would leave it) is resumed
    by the next invocation, not started over; its result is the uninterrupted run's, and names where it went on."""
    args = tiny_grid(tmp_path, "results", scripts=("trpo",), seeds=(1,), total_timesteps=4096, checkpoint_frequency=1)
    (cell,) = run.resolve(run.build_grid(args), args.log_dir, checkpoint_frequency=1)
    fields = {key: tuple(v) if isinstance(v, list) else v for key, v in cell.fields.items()}
    trpo = run.load_script("trpo", ROOT)
    halfway = fields | {"total_timesteps": 2048, "log_dir": os.path.join(args.log_dir, cell.name)}
    stopped = trpo.train(trpo.Args(**halfway))
    summary = run.main(args)
    assert summary["done"] == [cell.name]
    record = result_files(args.results_dir)[f"{cell.name}.json"]
    assert record["resumed_from"] == stopped["run_dir"] and record["args"]["checkpoint_frequency"] == 1
    whole = trpo.train(trpo.Args(**fields | {"log_dir": str(tmp_path / "whole"), "checkpoint_frequency": 0}))
    assert record["episodic_returns"] == whole["episodic_returns"] and record["eval_returns"] == whole["eval_returns"]
    assert len(os.listdir(os.path.join(args.log_dir, cell.name))) == 1, "one run directory: the same run went on"


def test_a_runs_code_is_its_script_and_plumbing_py(tmp_path):
    for name in ("trpo.py", "plumbing.py", "benchmarks/sb3_baselines.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    digests = {script: run.code_digest(script, tmp_path) for script in ("trpo", "sb3_trpo")}
    assert digests == {script: run.code_digest(script, ROOT) for script in digests}
    (tmp_path / "plumbing.py").write_text("# an edit to the shared code\n", encoding="utf-8")
    assert run.code_digest("trpo", tmp_path) != digests["trpo"]  # an edited plumbing.py is a new run of ours
    assert run.code_digest("sb3_trpo", tmp_path) == digests["sb3_trpo"]  # and not of SB3's, which do not import it


def test_set_applies_unscoped_fields_to_the_scripts_that_have_them():
    overrides = run.parse_overrides(
        ("gamma=0.95", "trpo.hidden_sizes=[32, 32]", "ddpg.noise_type=ou", "batch_size=128"), ("trpo", "ddpg")
    )
    assert overrides == {
        "trpo": {"gamma": 0.95, "hidden_sizes": (32, 32)},
        "ddpg": {"gamma": 0.95, "noise_type": "ou", "batch_size": 128},
    }


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"set": ("trpo.no_such_field=1",)}, "trpo has no setting 'no_such_field'"),
        ({"set": ("no_such_field=1",)}, "no script of this grid has a setting 'no_such_field'"),
        ({"set": ("max_kl",)}, "--set takes FIELD=VALUE"),
        ({"scripts": ("dqn", "nope")}, "Unknown script 'nope'"),
        ({"scripts": ("dqn",), "env_ids": ("Pendulum-v1",)}, "The grid is empty"),
        ({"total_timesteps": 0}, "--total-timesteps must be positive"),
        ({"workers": -1}, "--workers must be 0"),
        ({"seeds": ()}, "--seeds needs at least one seed"),
        ({"seeds": (-1,)}, "--seeds must lie in [0, 2"),
        ({"seeds": (1, 2, 1)}, "--seeds names seed 1 twice"),
        ({"set": ("gamma=5",)}, "trpo.py: --gamma must lie in [0, 1], got 5"),
        ({"set": ("learning_rate=1e-300",)}, "trpo.py: --learning-rate must be at least 1e-08"),
    ],
)
def test_bad_grid_is_refused_before_any_run(tmp_path, changes, message):
    args = run.Args(scripts=("trpo",), env_ids=("CartPole-v1",), results_dir=str(tmp_path / "r"))
    with pytest.raises(run.UsageError, match=message.replace("[", r"\[")):
        run.main(dataclasses.replace(args, **changes))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_a_results_dir_that_cannot_hold_the_results_is_refused_before_any_run(tmp_path, where):
    (tmp_path / "file").write_text("")
    results_dir = tmp_path / "file" / "r" if where == "under_a_file" else Path("/proc/results")
    args = run.Args(scripts=("trpo",), env_ids=("CartPole-v1",), results_dir=str(results_dir))
    with pytest.raises(run.UsageError, match=f"--results-dir {results_dir} cannot hold the results"):
        run.main(args)


def test_ctrl_c_mid_grid_is_one_line_naming_what_finished_where_and_what_did_not_run(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--scripts", "trpo", "--env-ids", "CartPole-v1"]
    command += ["--seeds", "1", "2", "3", "--workers", "1", "--total-timesteps", "20000"]
    command += ["--results-dir", str(tmp_path / "r"), "--log-dir", str(tmp_path / "runs")]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a suite in the background ignores SIGINT)
    try:  # its own process group, as a terminal's: Ctrl-C reaches the run in progress too
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    lines = []
    while not any(line.startswith("[1/3]") for line in lines):
        lines.append(process.stdout.readline())
        assert lines[-1] or process.poll() is None, "".join(lines) + process.stderr.read()
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    (message,) = stderr.strip().splitlines()
    finished = len(list((tmp_path / "r").glob("*.json")))  # 1, or 2 when the second run ended before the signal
    pattern = rf"run\.py: stopped by Ctrl-C: {finished} runs finished \(results in {tmp_path}/r\), 0 failed, {3 - finished} not run \((trpo__CartPole-v1__seed\d__\w+(, )?)+\); run the same command again to do the rest\."
    assert finished in (1, 2) and re.fullmatch(pattern, message), message


def test_ray_backend_without_ray_installed_is_refused_before_any_run(tmp_path, monkeypatch):
    real_find_spec = run.importlib.util.find_spec
    monkeypatch.setattr(run.importlib.util, "find_spec", lambda name: None if name == "ray" else real_find_spec(name))
    args = run.Args(scripts=("trpo",), env_ids=("CartPole-v1",), results_dir=str(tmp_path / "r"), backend="ray")
    with pytest.raises(run.UsageError, match="--backend ray needs Ray"):
        run.main(args)
    assert not (tmp_path / "r").exists()


def test_cli_help_and_bad_input():
    for script in ("run.py", "plot.py", "sb3_baselines.py", "floor.py"):
        proc = subprocess.run([sys.executable, ROOT / "benchmarks" / script, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage" in proc.stdout.lower(), script
    proc = subprocess.run(
        [sys.executable, ROOT / "benchmarks" / "run.py", "--scripts", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.startswith("Unknown script 'nope'") and "Traceback" not in proc.stderr


def test_seed_curve_is_the_mean_of_the_last_window_episodes_ended_by_each_step():
    end_steps, returns = [10, 20, 20, 35], [1.0, 2.0, 4.0, 8.0]
    grid = np.array([0, 9, 10, 19, 20, 34, 35, 100])
    curve = plot.seed_curve(end_steps, returns, grid, window=2)
    # by hand: none yet, none, [1], [1], [2, 4], [2, 4], [4, 8], [4, 8]
    np.testing.assert_allclose(curve, [np.nan, np.nan, 1.0, 1.0, 3.0, 3.0, 6.0, 6.0])


def test_race_table_pairs_seeds_and_takes_the_median_of_per_seed_time_ratios():
    def record(script: str, seed: int, wall_time: float, train_time: float, score: float) -> dict:
        return {
            "script": script,
            "env_id": "CartPole-v1",
            "seed": seed,
            "args": {"total_timesteps": 50_000},
            "wall_time": wall_time,
            "train_time": train_time,
            "eval_returns": [score, score],
        }

    records = [record("dqn", s, w, w / 2, 500.0) for s, w in ((3, 10.0), (1, 10.0), (2, 30.0))]
    theirs = ((1, 40.0, 10.0, 500.0), (2, 40.0, 60.0, 100.0), (3, 10.0, 1.0, 300.0), (4, 99.0, 1.0, 0.0))
    records += [record("sb3_dqn", *row) for row in theirs]  # no dqn run of seed 4: not in the comparison
    (row,) = plot.race_table(records).splitlines()[2:]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:5] == ["dqn", "sb3_dqn", "CartPole-v1", "50,000", "3"]
    assert cells[5:8] == ["500.0 ± 0.0", "500.0 [500.0, 500.0]", "500 / 500 / 500"]
    assert cells[8] == f"300.0 ± {np.std([500, 100, 300]):.1f}" and cells[10] == "500 / 100 / 300"  # seed by seed
    assert cells[9] == plot.iqm(np.array([500.0, 100.0, 300.0]))
    assert cells[11:13] == ["10.0", "40.0"]  # medians of each side's wall times
    assert cells[13] == "0.75"  # wall-time ratios per seed 0.25, 0.75, 1.0
    assert cells[14] == "0.50"  # training-loop ratios per seed 0.5, 0.25, 5.0


def test_iqm_is_the_mean_of_the_middle_half_of_the_seeds_inside_its_bootstrap_interval():
    scores = np.array([500, 500, 129, 500, 114, 500, 480, 500, 212, 500, 500, 498], dtype=float)
    point, low, high = (float(x) for x in plot.iqm(scores).replace("[", "").replace(",", "").replace("]", "").split())
    middle = np.sort(scores)[3:9]  # 12 seeds: drop the lowest and the highest 3
    assert point == pytest.approx(middle.mean(), abs=0.05)
    assert scores.min() <= low <= point <= high <= scores.max() and low < high
    assert plot.iqm(scores) == plot.iqm(scores)  # a fixed generator: the table repeats
    assert plot.iqm(np.array([7.0, 7.0, 7.0])) == "7.0 [7.0, 7.0]" and plot.iqm(np.array([3.0])) == "-"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"status": "ok", "script": "dqn"}'])
def test_plot_refuses_a_file_that_is_not_a_result_naming_it(tmp_path, content):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "broken.json").write_text(content)
    with pytest.raises(run.UsageError, match=r"broken\.json is not a result benchmarks/run\.py wrote \("):
        plot.main(plot.Args(results_dir=str(tmp_path / "r"), out_dir=str(tmp_path / "out")))


@pytest.mark.parametrize("changes", [{"points": -1}, {"points": 1}, {"window": 0}])
def test_plot_refuses_a_curve_it_cannot_draw(tmp_path, changes):
    with pytest.raises(run.UsageError, match="--window must be at least 1 and --points at least 2"):
        plot.main(plot.Args(results_dir=str(tmp_path), out_dir=str(tmp_path / "out"), **changes))


def test_ctrl_c_in_floor_py_is_one_line_and_exit_130():
    """floor.py times loops for most of a minute: a Ctrl-C six seconds in lands in its work, past its imports."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a suite in the background ignores it)
    try:
        command = [sys.executable, str(ROOT / "benchmarks" / "floor.py"), "--scripts", "dqn"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    time.sleep(6)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert stderr == "floor.py: stopped by Ctrl-C before its table was complete; nothing was written.\n"


def test_plot_counts_only_the_newest_run_of_a_cell(tmp_path):
    """An edited script writes a new file beside the old one; a seed must not count twice in the table."""
    record = {"status": "ok", "script": "dqn", "env_id": "CartPole-v1", "seed": 1, "args": {"total_timesteps": 10}}
    record |= {"episodic_returns": [9.0], "episode_end_steps": [8], "wall_time": 1.0}
    # Written in the other order, so neither the file's name nor its age on disk can decide.
    (tmp_path / "dqn__b.json").write_text(json.dumps({**record, "finished_at": 200.0, "eval_returns": [2.0]}))
    (tmp_path / "dqn__a.json").write_text(json.dumps({**record, "finished_at": 100.0, "eval_returns": [1.0]}))
    (tmp_path / "failed.json").write_text(json.dumps({**record, "status": "failed", "seed": 2}))
    assert [r["eval_returns"] for r in plot.load_results(tmp_path)] == [[2.0]]


@pytest.mark.parametrize(
    "script, env_id", [("dqn", "CartPole-v1"), ("reinforce", "CartPole-v1"), ("trpo", "Pendulum-v1")]
)
def test_floor_steps_the_scripts_own_envs_with_one_batched_forward_per_step(script, env_id, monkeypatch):
    module, steps, forwards = floor.run.load_script(script, ROOT), [], []
    make_env = module.make_env

    class Counting(gym.Wrapper):
        def step(self, action):
            steps.append(action)
            return super().step(action)

    monkeypatch.setattr(
        module, "make_env", lambda *a, **k: Counting(make_env(*a, **k))
    )  # what make_checked_env(s) calls
    monkeypatch.setattr(floor.run, "load_script", lambda name, root: module)
    forward = torch.nn.Sequential.forward
    monkeypatch.setattr(torch.nn.Sequential, "forward", lambda self, x: forwards.append(x.shape) or forward(self, x))
    threads = torch.get_num_threads()
    assert floor.floor_seconds(script, env_id, 320) > 0 and torch.get_num_threads() == threads
    envs = getattr(module.Args(), "num_envs", 1)
    assert len(steps) == 320  # the budget, in env steps
    obs_dim = 4 if env_id == "CartPole-v1" else 3
    assert forwards == [(envs, obs_dim)] * (320 // envs)  # one forward over all envs' observations per step


def test_floor_table_gives_each_training_loop_as_a_multiple_of_its_floor(tmp_path, monkeypatch):
    for seed, train_time in ((1, 4.0), (2, 6.0), (3, 9.0)):
        record = {"status": "ok", "script": "dqn", "env_id": "CartPole-v1", "seed": seed, "train_time": train_time}
        (tmp_path / f"dqn{seed}.json").write_text(json.dumps({**record, "args": {"total_timesteps": 50_000}}))
    monkeypatch.setattr(floor, "floor_seconds", lambda script, env_id, budget: 2.0)
    table = floor.main(floor.Args(scripts=("dqn",), repeats=1, results_dir=str(tmp_path)))
    assert table.splitlines()[2] == "| dqn | CartPole-v1 | 50,000 | 1 | 2.00 | 6.00 (3 runs) | 3.0 |"
    for bad, message in (
        ({"repeats": 0}, "--repeats must be at least 1"),
        ({"scripts": ("sb3_dqn",)}, "Unknown script"),
    ):
        with pytest.raises(floor.run.UsageError, match=message):
            floor.main(floor.Args(**bad))
