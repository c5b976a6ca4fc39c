"""Re-run result files with the code that stands, and say whether it still gives their numbers.

Each JSON file that benchmarks/run.py wrote is run again, in a fresh process, through its script's train() with the
args the file recorded (its log directory aside), and the run's evaluation returns and training episodes are
compared with the file's, bitwise. One line per file: same; different (both evaluation means, and the first
training episode that differs); or not runnable today (the flag the script no longer has, or the sentence it
refuses the args with). Exit status 1 unless every file is the same. Stable-Baselines3's files (sb3_*) are re-run
too: on CPU with its seed, SB3 repeats itself bitwise.

    python benchmarks/reproduce.py benchmarks/results/confirm                      # every file in a folder
    python benchmarks/reproduce.py benchmarks/results/classic --sample 3           # three of them, at random
    python benchmarks/reproduce.py benchmarks/results/confirm/dqn__CartPole-v1__seed1001__*.json
    python benchmarks/reproduce.py benchmarks/results/race --commits   # which commit's code made each file

A folder kept as a record of its day says which commit produced it: `--commits` re-runs nothing and names, for each
script in the files, the oldest commit whose files give the code digest the files recorded.
"""

import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # the runner's own process per run and its script loader: a re-run is run as the run was


@dataclass
class Args:
    paths: Annotated[tuple[str, ...], tyro.conf.Positional]
    """result files, or folders of them (their *.json; failed/ and logs/ are not results)"""
    sample: int = 0
    """re-run only this many files, picked at random among all given (0: every file)"""
    sample_seed: int | None = None
    """the seed of that pick (None: a fresh one, printed, so that the same pick can be made again)"""
    workers: int = 0
    """runs at once (0: one per CPU core)"""
    commits: bool = False
    """re-run nothing: name the commit whose code produced the files (git's history, oldest commit with their digest)"""


def result_paths(paths: tuple[str, ...]) -> list[Path]:
    """The JSON files named, and those in the folders named, in order; refused if a path is neither."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(path.glob("*.json"))
        elif path.is_file() and path.suffix == ".json":
            found.append(path)
        else:
            raise run.UsageError(f"reproduce.py: {name} is neither a result file (.json) nor a folder of them.")
    if not found:
        raise run.UsageError(f"reproduce.py: no result files in {', '.join(paths)}.")
    return list(dict.fromkeys(found))


def rerun_of(path: Path, log_dir: str) -> tuple[run.Run | None, str]:
    """The Run that repeats a result file, or None and why it cannot be repeated by the code that stands."""
    try:
        record = json.loads(path.read_text())
        script, fields = record["script"], dict(record["args"])
        record["eval_returns"], record["episodic_returns"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"not a result file ({type(error).__name__}: {error})"
    if record.get("status") != "ok":
        return None, "not a finished run (its status is not ok)"
    if script not in run.OURS + run.SB3:
        return None, f"not runnable today: there is no script {script!r}"
    module = run.load_script(script, run.ROOT)
    known = {field.name for field in dataclasses.fields(module.Args)}
    if gone := [name for name in fields if name not in known]:
        return None, f"not runnable today: {script}.py has no --{gone[0].replace('_', '-')} any more"
    if "log_dir" in fields:
        fields["log_dir"] = log_dir
    fields = {key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()}
    if script in run.OURS:
        try:
            module.plumbing.check_args(module.Args(**fields), module.rules)
        except module.plumbing.UsageError as error:
            return None, f"not runnable today: {error}"
    return run.Run(script, record["env_id"], record["seed"], fields), ""


def compare(record: dict, again: dict) -> str:
    """same, or different with both numbers."""
    if again.get("status") != "ok":
        return f"FAILED today: {again.get('error', 'no result')}"
    if again["eval_returns"] == record["eval_returns"] and again["episodic_returns"] == record["episodic_returns"]:
        return "same"
    mean = lambda returns: sum(returns) / len(returns) if returns else float("nan")  # noqa: E731
    then, now = record["episodic_returns"], again["episodic_returns"]
    first = next((i for i, (a, b) in enumerate(zip(then, now, strict=False)) if a != b), min(len(then), len(now)))
    episode = f"training episode {first}: {then[first] if first < len(then) else '-'} then, "
    episode += f"{now[first] if first < len(now) else '-'} now"
    return (
        f"DIFFERENT: evaluation {mean(record['eval_returns'])!r} then, {mean(again['eval_returns'])!r} now; {episode}"
    )


def commits_of(records: list[dict]) -> dict[str, str]:
    """Per script of the records: the commits whose code (run.code_digest) made them, oldest first, each with its
    date and how many files; "a commit not in this history" where none of git's commits gives the digest."""
    wanted = {(r["script"], r["code"]) for r in records}
    log = subprocess.run(["git", "log", "--format=%h %cs"], cwd=run.ROOT, capture_output=True, text=True, check=True)
    first: dict[tuple[str, str], str] = {}
    for line in log.stdout.split("\n")[:-1]:  # newest first: the last commit that matches is the oldest
        commit = line.split()[0]
        for script in {script for script, _ in wanted}:
            files = [run.script_path(script, run.ROOT)] + ([] if script in run.SB3 else [run.ROOT / "plumbing.py"])
            shown = [
                subprocess.run(
                    ["git", "show", f"{commit}:{f.relative_to(run.ROOT)}"], cwd=run.ROOT, capture_output=True
                )
                for f in files
            ]
            digest = hashlib.sha1(b"".join(s.stdout for s in shown)).hexdigest()[:12]  # (no plumbing.py before 9dab1f3)
            if shown[0].returncode == 0 and (script, digest) in wanted:
                first[script, digest] = line.replace(" ", " of ")
    said: dict[str, list[tuple[str, str]]] = {}
    for script, digest in sorted(wanted):
        count = sum(r["script"] == script and r["code"] == digest for r in records)
        commit = first.get((script, digest), "a commit not in this history")
        day = commit.split(" of ")[1] if " of " in commit else "~"  # (unknown commits last: "~" sorts after digits)
        said.setdefault(script, []).append((day, f"{commit} ({count} file{'s' if count > 1 else ''})"))
    return {script: ", ".join(text for _, text in sorted(commits)) for script, commits in said.items()}


def main(args: Args) -> dict[str, list[str]]:
    """Re-run the files; return their names by outcome (same, different, not runnable)."""
    if args.sample < 0:
        raise run.UsageError(f"reproduce.py: --sample must be 0 (every file) or more, got {args.sample}.")
    if args.workers < 0:
        raise run.UsageError(f"reproduce.py: --workers must be 0 (one per core) or more, got {args.workers}.")
    paths = result_paths(args.paths)
    if args.commits:
        records = [json.loads(path.read_text()) for path in paths]
        for script, commits in commits_of([r for r in records if "code" in r]).items():
            print(f"{script}: {commits}")
        return {"same": [], "different": [], "not runnable": []}
    if args.sample:
        seed = random.randrange(2**32) if args.sample_seed is None else args.sample_seed
        paths = sorted(random.Random(seed).sample(paths, min(args.sample, len(paths))))
        print(f"{len(paths)} files picked at random (--sample {args.sample} --sample-seed {seed})")
    outcome: dict[str, list[str]] = {"same": [], "different": [], "not runnable": []}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as log_dir:
        reruns = {path: rerun_of(path, log_dir) for path in paths}
        for path, (_, why) in reruns.items():
            if why:
                outcome["not runnable"].append(str(path))
                print(f"{path}: {why}", flush=True)
        todo = {id(cell): path for path, (cell, _) in reruns.items() if cell is not None}  # (two files, one args)
        cells = [cell for cell, _ in reruns.values() if cell is not None]
        workers = args.workers or os.cpu_count() or 1
        try:
            for count, (cell, again) in enumerate(run.run_local(cells, workers), 1):
                path = todo[id(cell)]
                verdict = compare(json.loads(path.read_text()), again)
                outcome["same" if verdict == "same" else "different"].append(str(path))
                print(f"[{count}/{len(cells)}] {path}: {verdict}", flush=True)
        except KeyboardInterrupt:
            done = len(outcome["same"]) + len(outcome["different"])
            raise KeyboardInterrupt(
                f"reproduce.py: stopped by Ctrl-C after {done} of {len(cells)} re-runs: {len(outcome['same'])} same, "
                f"{len(outcome['different'])} different."
            ) from None
    print(
        f"{len(outcome['same'])} same, {len(outcome['different'])} different, {len(outcome['not runnable'])} not "
        f"runnable today, of {len(paths)} files ({time.perf_counter() - start:.0f} s)"
    )
    return outcome


if __name__ == "__main__":
    result = run.cli(main, Args, "reproduce.py: stopped by Ctrl-C before any run started.")
    sys.exit(0 if not result["different"] and not result["not runnable"] else 1)
