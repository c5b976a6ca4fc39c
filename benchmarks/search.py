"""Search a script's settings with Optuna, scoring each setting on a range of seeds rather than one.

Each trial draws a value for every field of `--space`, runs the script once per seed (each run one `train()` in its
own process, recorded exactly as benchmarks/run.py records it), and scores the setting by the seeds whose
evaluation mean reaches `--threshold` (`--objective solved`) or by the mean evaluation return over the seeds
(`--objective mean`). Any script, any registered env, any flags: `--set` fixes fields, `--space` searches them.

The study lives in `<results-dir>/study.db` (SQLite), and every run's JSON beside it under the name run.py gives it,
so a search stopped with Ctrl-C goes on where it stopped when the same command runs again, and a run already made
with the same settings (by this search or by run.py into the same folder) is reused rather than repeated.

A space entry is FIELD=KIND:ARGS:
    float:LOW:HIGH   uniform        log:LOW:HIGH     log-uniform (learning rates)
    int:LOW:HIGH     integers       choice:A|B|...   one of the JSON values (true|false, [64,64]|[128,128], ou|gaussian)

    python benchmarks/search.py --script dqn --seeds 1 2 3 4 5 6 7 8 9 10 --trials 30 --max-failures 2 \\
        --space learning_rate=log:3e-4:3e-3 target_network_frequency=int:50:500 hidden_sizes=choice:[64,64]|[128,128]
    python benchmarks/search.py --script trpo --env-id Pendulum-v1 --objective mean --space max_kl=log:0.005:0.05
    python benchmarks/search.py --script dqn --trials 0     # print the study so far, run nothing
"""

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import optuna
import run

KINDS = ("float", "log", "int", "choice")


@dataclass
class Args:
    script: str = "dqn"
    """the script whose settings are searched (one of ours: dqn ... natural_gradient)"""
    env_id: str | None = None
    """the env (None: the script's default)"""
    seeds: tuple[int, ...] = tuple(range(1, 11))
    """the seeds every trial runs: the tuning range (confirm the winner on seeds you did not search on)"""
    space: tuple[str, ...] = ()
    """the fields searched, FIELD=KIND:ARGS each (kinds: float, log, int, choice; see the top of this file)"""
    set: tuple[str, ...] = ()
    """fields fixed for every trial, FIELD=VALUE (JSON values), as in run.py"""
    objective: Literal["solved", "mean"] = "solved"
    """solved: seeds whose evaluation mean reaches --threshold; mean: the mean evaluation return over the seeds"""
    threshold: float | None = None
    """the evaluation mean that counts as solved (None: the env's reward_threshold, e.g. 475 on CartPole-v1)"""
    max_failures: int | None = None
    """with --objective solved, stop a trial once this many seeds missed (its score then counts unrun seeds as missed)"""
    trials: int = 20
    """new trials to run now (0: only print the study so far)"""
    defaults_first: bool = True
    """make the script's own defaults the study's first trial, so every score has the defaults beside it"""
    sampler_seed: int = 0
    """seed of Optuna's TPE sampler"""
    study_name: str | None = None
    """the study's name in its storage (None: <script>-<env id>)"""
    results_dir: str | None = None
    """where the study and the runs' JSON files go (None: benchmarks/results/search/<study name>)"""
    log_dir: str = "runs"
    """the scripts' TensorBoard log directory"""
    workers: int = 0
    """runs at once (0: one per CPU core); a trial's seeds run in rounds of this many"""
    backend: Literal["local", "ray"] = "local"
    """local: a process pool on this machine; ray: one Ray task per run (see run.py)"""
    ray_address: str | None = None
    """the Ray cluster to submit to (None: a local Ray instance)"""


@dataclass
class Dimension:
    field: str
    kind: str
    bounds: tuple[Any, ...]  # (low, high) or the JSON texts of the choices

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "choice":
            value = json.loads(trial.suggest_categorical(self.field, list(self.bounds)))
            return tuple(value) if isinstance(value, list) else value
        if self.kind == "int":
            return trial.suggest_int(self.field, *self.bounds)
        return trial.suggest_float(self.field, *self.bounds, log=self.kind == "log")

    def values(self) -> list[Any]:
        """The ends of the range, or every choice: what the script must accept for the search to run."""
        if self.kind == "choice":
            return [tuple(v) if isinstance(v := json.loads(text), list) else v for text in self.bounds]
        return list(self.bounds)

    def encode(self, value: Any) -> Any:
        """A value of the field as the study stores it (for enqueuing the defaults); None if outside the space."""
        if self.kind == "choice":
            text = json.dumps(run.plain(value))
            return text if text in self.bounds else None
        low, high = self.bounds
        return value if low <= value <= high else None


def parse_space(entries: tuple[str, ...], fields: dict[str, Any]) -> list[Dimension]:
    """`--space` entries as Dimensions; a mistake is a UsageError naming the entry."""
    dimensions = []
    for entry in entries:
        field, separator, spec = entry.partition("=")
        kind, _, rest = spec.partition(":")
        if not separator or kind not in KINDS or not rest:
            raise run.UsageError(f"--space takes FIELD=KIND:ARGS with KIND one of {', '.join(KINDS)}, got {entry!r}.")
        if field not in fields:
            raise run.UsageError(f"--space {entry!r}: the script has no setting {field!r}.")
        if field in {dimension.field for dimension in dimensions}:
            raise run.UsageError(f"--space names {field!r} twice.")
        if kind == "choice":
            texts = rest.split("|")
            try:
                bounds = tuple(json.dumps(json.loads(text)) for text in texts)
            except json.JSONDecodeError:  # bare words: strings such as ou or empirical
                bounds = tuple(json.dumps(text) for text in texts)
            if len(set(bounds)) < 2:
                raise run.UsageError(f"--space {entry!r}: a choice needs at least two different values.")
        else:
            try:
                low, high = (int(x) if kind == "int" else float(x) for x in rest.split(":"))
            except ValueError:
                raise run.UsageError(f"--space {entry!r}: {kind} takes LOW:HIGH, two numbers.") from None
            if not low < high or (kind == "log" and low <= 0):
                raise run.UsageError(f"--space {entry!r}: needs LOW < HIGH{' and LOW > 0' if kind == 'log' else ''}.")
            bounds = (low, high)
        dimensions.append(Dimension(field, kind, bounds))
    return dimensions


def check(args: Args) -> tuple[str, list[Dimension], dict[str, Any], float | None]:
    """The env id, the space, the fixed fields and the threshold; a search that cannot run is a UsageError."""
    if args.script not in run.OURS:
        raise run.UsageError(f"--script must be one of {', '.join(run.OURS)}, got {args.script!r}.")
    defaults = dataclasses.asdict(run.load_script(args.script, run.ROOT).Args())
    env_id = args.env_id or defaults["env_id"]
    fixed = run.parse_overrides(args.set, (args.script,))[args.script]
    dimensions = parse_space(args.space, defaults)
    if args.trials and not dimensions:
        raise run.UsageError("--space is empty: name at least one FIELD=KIND:ARGS to search.")
    both = sorted({dimension.field for dimension in dimensions} & set(fixed) | {"env_id", "seed"} & set(fixed))
    if both:
        raise run.UsageError(f"{both[0]!r} is both fixed by --set and searched or set by the search; keep one.")
    if not args.seeds or len(set(args.seeds)) != len(args.seeds):
        raise run.UsageError("--seeds needs at least one seed, each once.")
    if args.trials < 0 or args.workers < 0:
        raise run.UsageError("--trials and --workers must be 0 or more.")
    threshold = args.threshold
    if args.objective == "solved" and threshold is None:
        try:
            threshold = gym.spec(env_id).reward_threshold
        except gym.error.Error as error:
            raise run.UsageError(f"--env-id {env_id!r} cannot be made: {error}") from None
        if threshold is None:
            raise run.UsageError(f"{env_id} has no reward_threshold: give --threshold or use --objective mean.")
    if args.max_failures is not None and (args.objective != "solved" or args.max_failures < 1):
        raise run.UsageError("--max-failures takes a positive count, and only with --objective solved.")
    if not 0 <= args.sampler_seed < 2**32:
        raise run.UsageError(f"--sampler-seed must lie in [0, 2**32 - 1], got {args.sampler_seed}.")
    for dimension in dimensions:  # each end of each range (each choice) must be a setting the script takes
        for value in dimension.values():
            cell = run.Run(args.script, env_id, args.seeds[0], fixed | {dimension.field: value, "env_id": env_id})
            try:
                run.resolve([cell], args.log_dir)
            except run.UsageError as error:
                raise run.UsageError(f"--space {dimension.field}={value!r} would be refused: {error}") from None
    return env_id, dimensions, fixed, threshold


def score(records: list[dict], objective: str, threshold: float | None, seeds: int) -> float:
    """Seeds solved (unrun seeds count as missed) or the mean over seeds of each run's evaluation mean."""
    means = [sum(r["eval_returns"]) / len(r["eval_returns"]) for r in records]
    if objective == "solved":
        return float(sum(mean >= threshold for mean in means))
    return sum(means) / len(means) if len(records) == seeds else -math.inf


def objective_of(args: Args, env_id: str, dimensions: list[Dimension], fixed: dict, threshold: float | None):
    """The function Optuna maximises: one trial's setting run on every seed."""
    results_dir = Path(args.results_dir)
    workers = args.workers or os.cpu_count() or 1

    def objective(trial: optuna.Trial) -> float:
        fields = fixed | {dimension.field: dimension.suggest(trial) for dimension in dimensions}
        runs = [run.Run(args.script, env_id, seed, fields | {"env_id": env_id, "seed": seed}) for seed in args.seeds]
        runs = run.resolve(runs, args.log_dir)
        records: dict[int, dict] = {}
        for start in range(0, len(runs), workers):  # rounds, so that a hopeless trial stops early
            todo = []
            for cell in runs[start : start + workers]:
                path = results_dir / f"{cell.name}.json"
                if run.finished(path):
                    records[cell.seed] = json.loads(path.read_text())
                else:
                    todo.append(cell)
            if todo:
                if args.backend == "ray":
                    results = run.run_ray(todo, args.ray_address, workers)
                else:
                    results = run.run_local(todo, workers)
                for cell, record in results:
                    (results_dir / "logs").mkdir(parents=True, exist_ok=True)
                    (results_dir / "logs" / f"{cell.name}.log").write_text(record.pop("output", ""))
                    print(f"  trial {trial.number}: {run.record_result(record, cell, results_dir)}", flush=True)
                    if record["status"] != "ok":
                        raise RuntimeError(f"seed {cell.seed} failed: {record['error']}")
                    records[cell.seed] = record
            ok = list(records.values())
            missed = len(ok) - score(ok, "solved", threshold, len(runs)) if args.max_failures else 0
            if args.max_failures and missed >= args.max_failures and len(ok) < len(runs):
                trial.set_user_attr("stopped_early", f"after {len(ok)} of {len(runs)} seeds")
                break
        ok = [records[seed] for seed in sorted(records)]
        trial.set_user_attr("eval_means", {r["seed"]: sum(r["eval_returns"]) / len(r["eval_returns"]) for r in ok})
        trial.set_user_attr("wall_time_median", sorted(r["wall_time"] for r in ok)[len(ok) // 2])
        return score(ok, args.objective, threshold, len(runs))

    return objective


def flags(params: dict[str, Any], dimensions: list[Dimension]) -> str:
    """A trial's parameters as command-line flags."""
    parts = []
    for dimension in dimensions:
        value = params[dimension.field]
        value = json.loads(value) if dimension.kind == "choice" else value
        name = "--" + dimension.field.replace("_", "-")
        if isinstance(value, bool):
            parts.append(name if value else "--no-" + name[2:])
        elif isinstance(value, list):
            parts.append(f"{name} {' '.join(map(str, value))}")
        else:
            parts.append(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}")
    return " ".join(parts)


def summary(study: optuna.Study, dimensions: list[Dimension], top: int = 5) -> str:
    """The best trials, best first, each with its score, its seeds and its flags."""
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return "no finished trial yet"
    lines = [f"{len(done)} finished trials; the best {min(top, len(done))}:"]
    for t in sorted(done, key=lambda t: (-t.value, t.number))[:top]:
        means = t.user_attrs.get("eval_means", {})
        early = f", stopped {t.user_attrs['stopped_early']}" if "stopped_early" in t.user_attrs else ""
        lines.append(
            f"  trial {t.number}: {t.value:g} ({len(means)} seeds{early}, median run {t.user_attrs.get('wall_time_median', 0):.1f} s)"
        )
        lines.append(f"    {flags(t.params, dimensions)}")
    return "\n".join(lines)


def main(args: Args) -> optuna.Study:
    env_id, dimensions, fixed, threshold = check(args)
    name = args.study_name or f"{args.script}-{env_id.replace('/', '-')}"
    args.results_dir = args.results_dir or str(run.ROOT / "benchmarks" / "results" / "search" / name)
    try:
        Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise run.UsageError(
            f"--results-dir {args.results_dir} cannot hold the study ({error.strerror or error})."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # (a trial stopped by Ctrl-C: our line, not its traceback)
    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{Path(args.results_dir).resolve() / 'study.db'}",
        sampler=optuna.samplers.TPESampler(seed=args.sampler_seed),
        direction="maximize",
        load_if_exists=True,
    )
    complete = [
        t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING)
    ]
    if args.defaults_first and not complete and dimensions:  # (also when Ctrl-C stopped the defaults' trial)
        defaults = dataclasses.asdict(run.load_script(args.script, run.ROOT).Args())
        encoded = {d.field: d.encode(fixed.get(d.field, defaults[d.field])) for d in dimensions}
        study.enqueue_trial({field: value for field, value in encoded.items() if value is not None})
    if args.trials:
        print(
            f"searching {args.script} on {env_id}, seeds {list(args.seeds)}, {args.trials} trials -> {args.results_dir}"
        )
        objective = objective_of(args, env_id, dimensions, fixed, threshold)
        study.optimize(objective, n_trials=args.trials, catch=(RuntimeError,))  # a failed run fails its trial alone
    print(summary(study, dimensions))
    return study


if __name__ == "__main__":
    run.cli(
        main, Args, "search.py: stopped by Ctrl-C; the finished runs and trials are kept, the same command goes on."
    )
