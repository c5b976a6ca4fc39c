"""benchmarks/search.py: Optuna trials scored over seeds, the study kept and resumed, runs reused, bad input refused."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import search  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

TINY = ("total_timesteps=300", "learning_starts=50", "eval_episodes=2")


def tiny_search(tmp_path: Path, **changes) -> search.Args:
    """dqn on CartPole-v1, a few hundred steps per run, two seeds, one searched field."""
    settings = dict(
        script="dqn",
        seeds=(1, 2),
        space=("learning_rate=log:1e-4:1e-2",),
        set=TINY,
        threshold=12.0,
        trials=2,
        workers=2,
        results_dir=str(tmp_path / "search"),
        log_dir=str(tmp_path / "runs"),
    )
    return search.Args(**{**settings, **changes})


def eval_means(results_dir: str) -> dict[tuple[float, int], float]:
    """(learning rate, seed) → evaluation mean, read from the runs' JSON files."""
    means = {}
    for path in Path(results_dir).glob("*.json"):
        record = json.loads(path.read_text())
        means[(record["args"]["learning_rate"], record["seed"])] = sum(record["eval_returns"]) / 2
    return means


def test_each_trial_runs_every_seed_and_is_scored_by_the_seeds_solved_the_defaults_first(tmp_path):
    args = tiny_search(tmp_path)
    study = search.main(args)
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert trials[0].params == {"learning_rate": 1e-3}  # the script's default, the study's first trial
    means = eval_means(args.results_dir)
    assert len(means) == 4  # 2 trials × 2 seeds, one JSON each
    for trial in trials:
        lr = trial.params["learning_rate"]
        assert trial.value == sum(means[(lr, seed)] >= 12.0 for seed in (1, 2))  # counted here, independently
        assert {int(s): m for s, m in trial.user_attrs["eval_means"].items()} == {s: means[(lr, s)] for s in (1, 2)}

    # The same command again goes on with the same study; a new study in the same folder reuses finished runs.
    written = {path: path.stat().st_mtime_ns for path in Path(args.results_dir).glob("*.json")}
    again = search.main(dataclasses.replace(args, trials=0))
    assert len(again.trials) == 2
    other = search.main(dataclasses.replace(args, trials=1, study_name="other"))
    assert other.trials[0].params == {"learning_rate": 1e-3} and other.trials[0].value == trials[0].value
    assert {path: path.stat().st_mtime_ns for path in Path(args.results_dir).glob("*.json")} == written


def test_mean_objective_is_the_mean_over_seeds_of_each_runs_evaluation_mean(tmp_path):
    args = tiny_search(tmp_path, objective="mean", threshold=None, trials=1)
    trial = search.main(args).trials[0]
    means = eval_means(args.results_dir)
    assert trial.value == pytest.approx((means[(1e-3, 1)] + means[(1e-3, 2)]) / 2)


def test_a_trial_stops_once_max_failures_seeds_missed(tmp_path):
    args = tiny_search(tmp_path, seeds=(1, 2, 3), threshold=1e9, max_failures=1, workers=1, trials=1)
    trial = search.main(args).trials[0]
    assert trial.value == 0 and trial.user_attrs["stopped_early"] == "after 1 of 3 seeds"
    assert len(list(Path(args.results_dir).glob("*.json"))) == 1  # seeds 2 and 3 never ran


def test_choice_and_int_dimensions_reach_the_runs_and_print_as_flags(tmp_path):
    space = ("hidden_sizes=choice:[8]|[16,16]", "double_q=choice:true|false", "batch_size=int:16:64")
    args = tiny_search(tmp_path, space=space, seeds=(1,), trials=3, workers=1)
    study = search.main(args)
    runs = [json.loads(path.read_text())["args"] for path in Path(args.results_dir).glob("*.json")]
    for trial in study.trials:
        expected = {
            "hidden_sizes": json.loads(trial.params["hidden_sizes"]),
            "double_q": json.loads(trial.params["double_q"]),
            "batch_size": trial.params["batch_size"],
        }
        assert any(all(run[key] == value for key, value in expected.items()) for run in runs)
    dimensions = search.parse_space(space, dataclasses.asdict(search.run.load_script("dqn", ROOT).Args()))
    flags = search.flags({"hidden_sizes": "[16, 16]", "double_q": "false", "batch_size": 32}, dimensions)
    assert flags == "--hidden-sizes 16 16 --no-double-q --batch-size 32"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"script": "nope"}, "--script must be one of"),
        ({"space": ("learning_rate=uniform:0:1",)}, "--space takes FIELD=KIND:ARGS"),
        ({"space": ("no_such_field=float:0:1",)}, "the script has no setting 'no_such_field'"),
        ({"space": ("learning_rate=log:0:1",)}, "needs LOW < HIGH and LOW > 0"),
        ({"space": ("batch_size=int:64:16",)}, "needs LOW < HIGH"),
        ({"space": ("batch_size=int:a:b",)}, "int takes LOW:HIGH"),
        ({"space": ("double_q=choice:true",)}, "a choice needs at least two different values"),
        ({"space": ("gamma=float:0.9:0.99", "gamma=float:0.9:0.99")}, "--space names 'gamma' twice"),
        ({"space": ()}, "--space is empty"),
        ({"set": (*TINY, "learning_rate=0.01")}, "'learning_rate' is both fixed by --set and searched"),
        ({"set": ("seed=3",)}, "'seed' is both fixed by --set"),
        ({"seeds": ()}, "--seeds needs at least one seed"),
        ({"seeds": (1, 1)}, "each once"),
        ({"trials": -1}, "--trials and --workers must be 0 or more"),
        (
            {"script": "trpo", "env_id": "Pendulum-v1", "threshold": None, "set": ()},
            "Pendulum-v1 has no reward_threshold",
        ),
        ({"env_id": "NoSuchEnv-v0", "threshold": None}, "'NoSuchEnv-v0' cannot be made"),
        ({"objective": "mean", "max_failures": 2}, "--max-failures takes a positive count, and only with"),
        ({"max_failures": 0}, "--max-failures takes a positive count"),
        ({"sampler_seed": -1}, "--sampler-seed must lie in [0, 2"),
        ({"space": ("learning_rate=log:1e-300:1e-3",)}, "--space learning_rate=1e-300 would be refused"),
        ({"space": ("gamma=float:0.9:5",)}, "--space gamma=5.0 would be refused: dqn__CartPole-v1__seed1__"),
    ],
)
def test_bad_search_is_refused_before_any_run(tmp_path, changes, message):
    with pytest.raises(search.run.UsageError, match=message.replace("[", r"\[")):
        search.main(tiny_search(tmp_path, **changes))
    assert not (tmp_path / "search").exists()


def test_ctrl_c_in_the_defaults_trial_loses_neither_it_nor_says_more_than_one_line(tmp_path, monkeypatch, capsys):
    run_local = search.run.run_local

    def interrupted(runs, workers):
        raise KeyboardInterrupt
        yield  # (a generator, as run_local is)

    monkeypatch.setattr(search.run, "run_local", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search.main(tiny_search(tmp_path, trials=1))
    assert "Traceback" not in capsys.readouterr().err, "Optuna's report of the stopped trial stays quiet"
    monkeypatch.setattr(search.run, "run_local", run_local)
    study = search.main(tiny_search(tmp_path, trials=1))  # the same command again
    (done,) = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done.params == {"learning_rate": 1e-3}, "the defaults' trial is run again, not lost"


def test_a_results_dir_under_a_file_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(search.run.UsageError, match="cannot hold the study"):
        search.main(dataclasses.replace(tiny_search(tmp_path), results_dir=str(tmp_path / "file" / "study")))


def test_cli_help_and_bad_input():
    script = ROOT / "benchmarks" / "search.py"
    proc = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--max-failures" in proc.stdout and "Optuna" in proc.stdout
    proc = subprocess.run([sys.executable, script, "--space", "lr=float:0:1"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("--space 'lr=float:0:1': the script has no setting")
    assert "Traceback" not in proc.stderr
