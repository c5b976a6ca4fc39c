"""benchmarks/reproduce.py, and the cheapest guard a refactor can have: one committed result of each script re-run
with the code that stands, bitwise."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_benchmarks import tiny_grid
from test_smoke import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import reproduce
import run

CONFIRM = ROOT / "benchmarks" / "results" / "confirm"
# One run of each script from a folder README.md presents as today's (the confirm seeds), about a minute on 2 cores.
SAMPLE = [
    "dqn__CartPole-v1__seed1002",
    "fitted_q__CartPole-v1__seed1001",
    "ddpg__Pendulum-v1__seed1001",
    "reinforce__CartPole-v1__seed1001",
    "trpo__Pendulum-v1__seed1002",
    "natural_gradient__Pendulum-v1__seed1001",
]


def test_one_committed_result_of_each_script_is_what_the_code_that_stands_gives(capsys):
    paths = [str(next(CONFIRM.glob(f"{name}__*.json"))) for name in SAMPLE]
    outcome = reproduce.main(reproduce.Args(paths=tuple(paths)))
    assert outcome == {"same": sorted(paths, key=outcome["same"].index), "different": [], "not runnable": []}, (
        capsys.readouterr().out
    )


def test_reproduce_names_what_differs_and_what_cannot_run_today_and_exits_1(tmp_path):
    args = tiny_grid(tmp_path, "results", scripts=("reinforce",), seeds=(1,))
    run.main(args)
    (original,) = Path(args.results_dir).glob("*.json")
    record = json.loads(original.read_text())
    changed = dict(record, eval_returns=[r + 1 for r in record["eval_returns"]])
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    (tmp_path / "gone.json").write_text(json.dumps(dict(record, args=dict(record["args"], vf_iters=5))))
    (tmp_path / "refused.json").write_text(json.dumps(dict(record, args=dict(record["args"], gamma=5.0))))
    command = [sys.executable, "benchmarks/reproduce.py", str(original), *(str(tmp_path / n) for n in ["changed.json"])]
    command += [str(tmp_path / "gone.json"), str(tmp_path / "refused.json")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    lines = {line.split(": ", 1)[0].split("] ")[-1]: line.split(": ", 1)[1] for line in done.stdout.splitlines()[:-1]}
    assert lines[str(original)] == "same"
    mean_then, mean_now = (sum(r["eval_returns"]) / 2 for r in (changed, record))
    assert lines[str(tmp_path / "changed.json")].startswith(
        f"DIFFERENT: evaluation {mean_then!r} then, {mean_now!r} now"
    )
    assert lines[str(tmp_path / "gone.json")] == "not runnable today: reinforce.py has no --vf-iters any more"
    assert lines[str(tmp_path / "refused.json")].startswith("not runnable today: reinforce.py: --gamma must lie in")
    assert done.stdout.splitlines()[-1].startswith("1 same, 1 different, 2 not runnable today, of 4 files")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["nowhere.json"], "reproduce.py: nowhere.json is neither a result file (.json) nor a folder of them."),
        (["benchmarks/results/search"], "reproduce.py: no result files in benchmarks/results/search."),
        (["benchmarks/results/confirm", "--sample", "-1"], "reproduce.py: --sample must be 0 (every file) or more"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(flags, message):
    done = subprocess.run(
        [sys.executable, "benchmarks/reproduce.py", *flags], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stderr.strip().startswith(message) and "\n" not in done.stderr.strip()


def test_sample_picks_that_many_files_and_says_how_to_pick_them_again(capsys, monkeypatch):
    compared: list = []
    monkeypatch.setattr(run, "run_local", lambda cells, workers: compared.extend(cells) or iter(()))
    reproduce.main(reproduce.Args(paths=(str(CONFIRM),), sample=3, sample_seed=7))
    first = [cell.name for cell in compared]
    assert len(first) == 3 and "--sample 3 --sample-seed 7" in capsys.readouterr().out
    compared.clear()
    reproduce.main(reproduce.Args(paths=(str(CONFIRM),), sample=3, sample_seed=7))
    assert [cell.name for cell in compared] == first, "the same seed picks the same files"


def test_commits_names_the_oldest_commit_whose_code_made_each_scripts_files(tmp_path, capsys):
    """The 2026-12-01 race's dqn.py file was made by 1528adc (its script alone: plumbing.py came later), the
    2026-12-07 classic table's by 62f69e9 (script and plumbing.py); an edited script's digest is no commit's."""
    race = next((ROOT / "benchmarks" / "results" / "race").glob("dqn__CartPole-v1__seed1__*.json"))
    classic = next((ROOT / "benchmarks" / "results" / "classic").glob("dqn__CartPole-v1__seed1__*.json"))
    edited = json.loads(classic.read_text()) | {"code": "0123456789ab"}
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    outcome = reproduce.main(
        reproduce.Args(paths=(str(race), str(classic), str(tmp_path / "edited.json")), commits=True)
    )
    assert outcome == {"same": [], "different": [], "not runnable": []}, "re-runs nothing"
    said = capsys.readouterr().out
    assert (
        said
        == "dqn: 1528adc of 2026-12-01 (1 file), 62f69e9 of 2026-12-07 (1 file), a commit not in this history (1 file)\n"
    )
