"""Run a grid of scripts × env ids × seeds, each run one `train()` in its own process, one JSON file per run.

A run's file, `<results-dir>/<script>__<env>__seed<seed>__<hash>.json`, holds the run's Args, every training
episode's return and the step it ended at, the evaluation returns, the wall time of the whole `train()` call
(construction, training and evaluation), the training loop's steps per second, and the host. The hash is of
the run's full Args (log_dir aside) and of the script file with plumbing.py, so a run whose file exists is skipped when the
grid is run again, and a changed setting, default or line of the script or of plumbing.py makes a new run. A run that raises,
or whose process dies, is written under `<results-dir>/failed/` with its error and traceback, reported at
the end, and tried again on the next invocation; the other runs go on. The driver writes every file, so a Ray cluster's workers need no shared disk.

Presets (each script at its own default budget unless the preset says otherwise):
- classic: every script on the classic-control envs it supports (CartPole-v1, Pendulum-v1);
- race: ours beside Stable-Baselines3 / sb3-contrib with rl-baselines3-zoo settings, same budgets and seeds,
  ordered so that one worker runs them interleaved (seed by seed, ours then theirs);
- mujoco: ddpg.py, trpo.py and natural_gradient.py on HalfCheetah-v5, Hopper-v5 and Walker2d-v5 at the papers'
  settings (pip install mujoco).

    python benchmarks/run.py                                   # classic, seeds 1-5, one worker per core
    python benchmarks/run.py --preset race                     # the side-by-side race, one run at a time
    python benchmarks/run.py --preset mujoco --scripts trpo natural_gradient --seeds 1 2 3 --results-dir benchmarks/results/mujoco_1m
    python benchmarks/run.py --scripts dqn trpo --env-ids Acrobot-v1 --seeds 1 2 3 --set dqn.learning_starts=500
    python benchmarks/run.py --backend ray --ray-address auto  # the same grid on a running Ray cluster
"""

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import tyro

ROOT = Path(__file__).resolve().parent.parent
OURS = ("dqn", "fitted_q", "ddpg", "reinforce", "trpo", "natural_gradient")
SB3 = ("sb3_dqn", "sb3_ddpg", "sb3_trpo", "sb3_a2c")
# The action spaces each script takes; a pair outside them is left out of a grid, not run to fail.
SPACES: dict[str, tuple[type, ...]] = {
    "dqn": (gym.spaces.Discrete,),
    "fitted_q": (gym.spaces.Discrete,),
    "ddpg": (gym.spaces.Box,),
    "reinforce": (gym.spaces.Discrete, gym.spaces.Box),
    "trpo": (gym.spaces.Discrete, gym.spaces.Box),
    "natural_gradient": (gym.spaces.Discrete, gym.spaces.Box),
}
CLASSIC = ("CartPole-v1", "Pendulum-v1")
CLASSIC_MISFITS = {("dqn", "Pendulum-v1"), ("fitted_q", "Pendulum-v1"), ("ddpg", "CartPole-v1")}
POLICY_GRADIENT_1M = {"total_timesteps": 1_000_000, "gamma": 0.99, "max_kl": 0.01, "normalize_observations": True}
POLICY_GRADIENT_1M |= {
    "learning_rate": 3e-3,
    "gae_lambda": 0.95,
    "cg_damping": 0.1,
    "value_epochs": 10,
    "init_log_std": -0.5,
}
MUJOCO_SETTINGS = {  # the budgets and settings of the papers' locomotion runs, not those of Pendulum-v1
    "ddpg": {
        "total_timesteps": 1_000_000,
        "gamma": 0.99,
        "hidden_sizes": (256, 256),
        "batch_size": 256,
        "buffer_size": 1_000_000,
        "learning_starts": 10_000,
    },
    # trpo.py and natural_gradient.py: the settings of the 1M runs in benchmarks/README.md, their defaults before the
    # searches that changed them (trpo.py's of 2026-12-02, natural_gradient.py's of 2026-12-08)
    "trpo": POLICY_GRADIENT_1M | {"backtrack_coeff": 0.8},
    "natural_gradient": POLICY_GRADIENT_1M,
}
MUJOCO_CHECKPOINTS = 50_000  # a 1M ddpg.py run takes hours: one checkpoint every 25 minutes or so
# (ours, theirs, env id, budget): the pairs; A2C is the policy-gradient reference for two scripts.
RACE = (
    ("dqn", "sb3_dqn", "CartPole-v1", 50_000),
    ("ddpg", "sb3_ddpg", "Pendulum-v1", 20_000),
    ("trpo", "sb3_trpo", "CartPole-v1", 100_000),
    ("trpo", "sb3_trpo", "Pendulum-v1", 100_000),
    ("reinforce", "sb3_a2c", "CartPole-v1", 100_000),
    ("natural_gradient", "sb3_a2c", "CartPole-v1", 100_000),
)


@dataclass
class Args:
    preset: Literal["classic", "race", "mujoco"] = "classic"
    """the grid to run: classic (every script, classic control), race (ours beside SB3), mujoco"""
    scripts: tuple[str, ...] = ()
    """only these scripts (empty: the preset's; ours: dqn ... natural_gradient; SB3: sb3_dqn, sb3_ddpg, sb3_trpo, sb3_a2c)"""
    env_ids: tuple[str, ...] = ()
    """a grid of these env ids instead of the preset's: every chosen script that takes the env's action space"""
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    """the seeds; every (script, env) pair runs each of them"""
    total_timesteps: int | None = None
    """one budget for every run (None: each script's or preset's own)"""
    set: tuple[str, ...] = ()
    """Args overrides, FIELD=VALUE for every script that has FIELD or SCRIPT.FIELD=VALUE for one (JSON values)"""
    results_dir: str | None = None
    """where the JSON files go (None: benchmarks/results/<preset>)"""
    log_dir: str = "runs"
    """the scripts' TensorBoard log directory (each run's under <log_dir>/<its result's name>)"""
    checkpoint_frequency: int | None = None
    """our scripts' --checkpoint-frequency: a run stopped before its end (Ctrl-C, killed, a session's end) goes on from its checkpoint when the grid is run again (None: 50000 for the mujoco preset, else 0: it starts over)"""
    workers: int = 0
    """runs at once (0: one per CPU core, or 1 for the race); 1 runs the grid in order; a Ray cluster uses its CPUs"""
    backend: Literal["local", "ray"] = "local"
    """local: a process pool on this machine; ray: one Ray task per run"""
    ray_address: str | None = None
    """the Ray cluster to submit to ("auto", "ray://host:10001"); None starts a local Ray instance"""


NOT_RESULTS = ("log_dir", "checkpoint_frequency", "resume")  # settings that change where a run writes, not what


class UsageError(ValueError):
    """A grid that cannot be run as asked; the message says what to change."""


@dataclass
class Run:
    """One cell of the grid: which file's train() to call with which Args fields."""

    script: str
    env_id: str
    seed: int
    fields: dict[str, Any]  # the Args fields passed explicitly (env_id, seed and overrides)
    code: str = ""  # a digest of the script file and plumbing.py: an edited script or plumbing is a new run

    @property
    def name(self) -> str:
        settings = {key: value for key, value in self.fields.items() if key not in NOT_RESULTS}
        key = json.dumps([settings, self.code], sort_keys=True, default=str)
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        return f"{self.script}__{self.env_id.replace('/', '-')}__seed{self.seed}__{digest}"


def script_path(script: str, root: Path) -> Path:
    return root / "benchmarks" / "sb3_baselines.py" if script in SB3 else root / f"{script}.py"


def code_digest(script: str, root: Path) -> str:
    """What a run's code is: our scripts' file and plumbing.py, which they import; SB3's wrapper file."""
    files = [script_path(script, root)] + ([] if script in SB3 else [root / "plumbing.py"])
    return hashlib.sha1(b"".join(path.read_bytes() for path in files)).hexdigest()[:12]


def load_script(script: str, root: Path):
    """The script's module, imported from its file (the scripts are not a package; they import plumbing.py from
    the repository root, which therefore goes on sys.path)."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location(script, script_path(script, root))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain(value: Any) -> Any:
    """Args values as JSON types (tuples become lists)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def settings_of(script: str) -> set[str]:
    return {field.name for field in dataclasses.fields(load_script(script, ROOT).Args)}


def parse_overrides(assignments: tuple[str, ...], scripts: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`--set` assignments as {script: {field: value}}; an unscoped FIELD=VALUE goes to every script with FIELD."""
    overrides: dict[str, dict[str, Any]] = {script: {} for script in scripts}
    settings = {script: settings_of(script) for script in scripts}
    for assignment in assignments:
        target, separator, text = assignment.partition("=")
        if not separator or not target:
            raise UsageError(f"--set takes FIELD=VALUE or SCRIPT.FIELD=VALUE, got {assignment!r}.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare word: a string such as ou or empirical
        value = tuple(value) if isinstance(value, list) else value
        script, _, field = target.rpartition(".")
        if script and script not in overrides:
            raise UsageError(
                f"--set {assignment!r} names {script!r}, which is not in this grid ({', '.join(scripts)})."
            )
        targets = [script] if script else [name for name in scripts if field in settings[name]]
        for name in targets:
            if field not in settings[name]:
                raise UsageError(
                    f"{name} has no setting {field!r} (its settings: {', '.join(sorted(settings[name]))})."
                )
            overrides[name][field] = value
        if not targets:
            raise UsageError(f"--set {assignment!r}: no script of this grid has a setting {field!r}.")
    return overrides


def action_space_kind(env_id: str) -> type | None:
    """The env's action space class, or None when it cannot be made here (its runs then fail with the reason)."""
    try:
        env = gym.make(env_id)
    except Exception:
        return None
    kind = type(env.action_space)
    env.close()
    return kind


def takes(script: str, env_id: str, kind: type | None) -> bool:
    if script in SB3:
        return (script.removeprefix("sb3_"), env_id) in load_script(script, ROOT).ZOO
    return kind is None or issubclass(kind, SPACES[script])


def build_grid(args: Args) -> list[Run]:
    """The runs, seed by seed, so that one worker interleaves the pairs of the race."""
    if args.preset == "race":
        pairs = [(script, env_id, budget) for ours, theirs, env_id, budget in RACE for script in (ours, theirs)]
        pairs = list(dict.fromkeys(pairs))  # sb3_a2c is the reference of two scripts; run it once
    elif args.preset == "mujoco":
        pairs = [(s, e, None) for s in MUJOCO_SETTINGS for e in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")]
    else:
        pairs = [(s, e, None) for s in OURS for e in CLASSIC if (s, e) not in CLASSIC_MISFITS]
    chosen = args.scripts or tuple(dict.fromkeys(script for script, _, _ in pairs))
    unknown = [script for script in chosen if script not in OURS + SB3]
    if unknown:
        raise UsageError(f"Unknown script {unknown[0]!r}; the scripts are {', '.join(OURS + SB3)}.")
    if args.env_ids:
        pairs = [(script, env_id, None) for script in chosen for env_id in args.env_ids]
    pairs = [pair for pair in pairs if pair[0] in chosen]
    kinds = {env_id: action_space_kind(env_id) for env_id in dict.fromkeys(env_id for _, env_id, _ in pairs)}
    left_out = [f"{s} on {e}" for s, e, _ in pairs if not takes(s, e, kinds[e])]
    if left_out:
        print(f"left out (the script does not take the env's action space): {', '.join(left_out)}")
    pairs = [(s, e, budget) for s, e, budget in pairs if takes(s, e, kinds[e])]
    if not pairs:
        raise UsageError("The grid is empty: no chosen script takes the action space of a chosen env.")
    if not args.seeds:
        raise UsageError("--seeds needs at least one seed.")
    if bad := [seed for seed in args.seeds if not 0 <= seed < 2**32]:
        raise UsageError(f"--seeds must lie in [0, 2**32 - 1] (numpy's seeds), got {bad[0]}.")
    if len(set(args.seeds)) < len(args.seeds):
        twice = next(seed for seed in args.seeds if args.seeds.count(seed) > 1)
        raise UsageError(f"--seeds names seed {twice} twice; a seed runs once (a re-run of it would count twice).")
    if args.total_timesteps is not None and args.total_timesteps <= 0:
        raise UsageError(f"--total-timesteps must be positive, got {args.total_timesteps}.")
    overrides = parse_overrides(args.set, tuple(dict.fromkeys(s for s, _, _ in pairs)))

    runs = []
    for seed in args.seeds:
        for script, env_id, budget in pairs:
            fields: dict[str, Any] = {"algo": script.removeprefix("sb3_")} if script in SB3 else {}
            if args.preset == "mujoco" and script in MUJOCO_SETTINGS:
                fields.update(MUJOCO_SETTINGS[script])
            if budget is not None:
                fields["total_timesteps"] = budget
            if args.total_timesteps is not None:
                fields["total_timesteps"] = args.total_timesteps
            fields.update(overrides[script], env_id=env_id, seed=seed)
            runs.append(Run(script, env_id, seed, fields))
    return runs


def resolve(runs: list[Run], log_dir: str, checkpoint_frequency: int = 0) -> list[Run]:
    """Each run with its full Args as fields and its code's digest (code_digest), so that the file name's hash
    covers the defaults and the code too. Settings a script would refuse (`--set gamma=5`) are refused here, in its
    own sentence, before any run starts."""
    resolved, modules = [], {}
    for run in runs:
        module = modules.setdefault(run.script, load_script(run.script, ROOT))
        if run.script in OURS:
            run.fields["checkpoint_frequency"] = checkpoint_frequency
            try:
                module.plumbing.check_args(module.Args(**{**run.fields, "log_dir": log_dir}), module.rules)
            except module.plumbing.UsageError as error:
                raise UsageError(f"{run.name}: {error}") from None
        fields = dataclasses.asdict(module.Args(**run.fields))
        if "log_dir" in fields:
            fields["log_dir"] = log_dir
        resolved.append(Run(run.script, run.env_id, run.seed, plain(fields), code_digest(run.script, ROOT)))
    return resolved


def execute(run: Run, root: str) -> dict:
    """Call the script's train() with the run's Args and return the run's record. Runs in a fresh process
    (a pool worker or a Ray task); never raises, a failure is a record with its error."""
    record: dict[str, Any] = {"script": run.script, "env_id": run.env_id, "seed": run.seed, "args": run.fields}
    record["code"] = run.code
    record["host"] = {"node": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()}
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            module = load_script(run.script, Path(root))
            fields = {key: tuple(v) if isinstance(v, list) else v for key, v in run.fields.items()}
            if "log_dir" in fields:  # each run in a directory of its own, where a later invocation finds its checkpoint
                fields["log_dir"] = os.path.join(fields["log_dir"], run.name)
                checkpoints = sorted(Path(fields["log_dir"]).glob("*/checkpoint.pt"), key=os.path.getmtime)
                if checkpoints and run.fields.get("checkpoint_frequency"):  # an unfinished run: it goes on
                    fields["resume"] = str(checkpoints[-1].parent)
                    record["resumed_from"] = fields["resume"]
            args = module.Args(**fields)
            start = time.perf_counter()
            result = module.train(args)
            wall_time = time.perf_counter() - start
        steps = args.total_timesteps or max(result["episode_end_steps"], default=0)
        record.update(
            status="ok",
            episodic_returns=[float(r) for r in result["episodic_returns"]],
            episode_end_steps=[int(s) for s in result["episode_end_steps"]],
            eval_returns=[float(r) for r in result["eval_returns"]],
            sps=float(result["sps"]),
            train_time=steps / float(result["sps"]),  # the training loop alone, evaluation excluded
            wall_time=wall_time,
            finished_at=time.time(),  # which of two runs of one cell is the newer (plot.py)
        )
    except Exception as error:
        record.update(status="failed", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
    record["output"] = output.getvalue()[-20_000:]
    return record


def write_json(path: Path, data: dict) -> None:
    """Write through a temporary file, so an interrupted write never leaves a half file that looks finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, path)


def finished(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("status") == "ok"
    except (OSError, json.JSONDecodeError):
        return False


def record_result(record: dict, run: Run, results_dir: Path) -> str:
    """Write a finished run's JSON (or its failure under failed/) and return one line about it."""
    failed_path = results_dir / "failed" / f"{run.name}.json"
    if record["status"] == "ok":
        write_json(results_dir / f"{run.name}.json", record)
        failed_path.unlink(missing_ok=True)
        evaluation = record["eval_returns"]
        score = f"eval {sum(evaluation) / len(evaluation):.1f}" if evaluation else "no evaluation"
        return f"{run.script} {run.env_id} seed {run.seed}: {score}, {record['wall_time']:.1f} s"
    write_json(failed_path, record)
    return f"{run.script} {run.env_id} seed {run.seed}: FAILED, {record['error']}"


def execute_in_subprocess(run: Run) -> dict:
    """execute(run) in a new Python process; a process that dies (killed, out of memory) fails this run alone."""
    with tempfile.TemporaryDirectory() as folder:
        spec, out = Path(folder) / "run.json", Path(folder) / "record.json"
        spec.write_text(json.dumps(dataclasses.asdict(run)))
        code = "import sys, run; run.execute_from_files(sys.argv[1], sys.argv[2])"
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), *sys.path])}
        process = subprocess.run(
            [sys.executable, "-c", code, spec, out], env=environment, capture_output=True, text=True, check=False
        )
        if out.exists():
            return json.loads(out.read_text())
    error = f"the run's process exited with status {process.returncode} before it finished"
    return {"status": "failed", "error": error, "traceback": process.stderr[-5000:], "output": process.stdout}


def execute_from_files(spec_path: str, record_path: str) -> None:
    """The subprocess's side of execute_in_subprocess: read the Run, write its record."""
    run = Run(**json.loads(Path(spec_path).read_text()))
    write_json(Path(record_path), execute(run, str(ROOT)))


def run_local(runs: list[Run], workers: int):
    """Yield (run, record) as runs finish: `workers` threads, each starting one process per run. Stopped (Ctrl-C),
    it starts no queued run and waits for the running ones, which a terminal's Ctrl-C stops too."""
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    try:
        futures = {pool.submit(execute_in_subprocess, run): run for run in runs}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(runs: list[Run], address: str | None, workers: int):
    """Yield (run, record) as runs finish, each a Ray task in a fresh worker process (max_calls=1)."""
    import ray
    import ray.cloudpickle

    if address is None:  # a local instance sees this checkout where it is
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        root = str(ROOT)
    else:  # a cluster gets a copy of the checkout as each worker's working directory
        # Ray leaves out what .gitignore names (the venv, runs/); the results stay with the driver.
        excludes = [".git", "benchmarks/results", "benchmarks/figures"]
        ray.init(address=address, log_to_driver=False, runtime_env={"working_dir": str(ROOT), "excludes": excludes})
        root = "."
    ray.cloudpickle.register_pickle_by_value(sys.modules[execute.__module__])  # workers need not import this file
    task = ray.remote(num_cpus=1, max_calls=1)(execute)
    try:
        pending = {task.remote(run, root): run for run in runs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(done[0])
            try:
                yield run, ray.get(done[0])
            except Exception as error:  # the task's worker died
                yield run, {"status": "failed", "error": f"{type(error).__name__}: {error}", "traceback": ""}
    finally:
        ray.shutdown()


def main(args: Args) -> dict[str, list[str]]:
    """Run the grid's unfinished runs; return the names of the runs done, skipped and failed."""
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 (one per core) or more, got {args.workers}.")
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise UsageError("--backend ray needs Ray: pip install -r benchmarks/requirements.txt.")
    results_dir = Path(args.results_dir or ROOT / "benchmarks" / "results" / args.preset)
    if args.checkpoint_frequency is not None and args.checkpoint_frequency < 0:
        raise UsageError(f"--checkpoint-frequency must be 0 (none) or more, got {args.checkpoint_frequency}.")
    frequency = args.checkpoint_frequency
    if frequency is None:  # (only the long runs by default: a checkpoint of a short one costs more than it keeps)
        frequency = MUJOCO_CHECKPOINTS if args.preset == "mujoco" else 0
    runs = resolve(build_grid(args), args.log_dir, frequency)
    try:  # a place the results can go, before any run starts (not under a file, not /proc)
        results_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=results_dir).close()
    except OSError as error:
        raise UsageError(f"--results-dir {results_dir} cannot hold the results ({error.strerror or error}).") from None
    todo = [run for run in runs if not finished(results_dir / f"{run.name}.json")]
    skipped = [run.name for run in runs if run not in todo]
    print(f"{len(runs)} runs, {len(skipped)} already in {results_dir}, {len(todo)} to do")
    summary: dict[str, list[str]] = {"done": [], "skipped": skipped, "failed": []}
    if todo:
        # The race times runs against each other: one at a time unless asked otherwise.
        workers = args.workers or (1 if args.preset == "race" else os.cpu_count() or 1)
        results = run_ray(todo, args.ray_address, workers) if args.backend == "ray" else run_local(todo, workers)
        try:
            for count, (run, record) in enumerate(results, 1):
                (results_dir / "logs").mkdir(parents=True, exist_ok=True)
                (results_dir / "logs" / f"{run.name}.log").write_text(record.pop("output", ""))
                print(f"[{count}/{len(todo)}] {record_result(record, run, results_dir)}", flush=True)
                summary["done" if record["status"] == "ok" else "failed"].append(run.name)
        except KeyboardInterrupt:  # the runs in progress got the Ctrl-C too; the queued ones are dropped
            # (what finished is what is on disk: the Ctrl-C may land between a result's file and its count)
            done = [run.name for run in todo if finished(results_dir / f"{run.name}.json")]
            not_run = [run.name for run in todo if run.name not in done + summary["failed"]]
            raise KeyboardInterrupt(
                f"run.py: stopped by Ctrl-C: {len(done)} runs finished (results in {results_dir}), "
                f"{len(summary['failed'])} failed, {len(not_run)} not run ({', '.join(not_run[:3])}"
                f"{', …' if len(not_run) > 3 else ''}); run the same command again to do the rest."
            ) from None
    if summary["failed"]:
        print(f"{len(summary['failed'])} runs failed (errors and tracebacks in {results_dir / 'failed'}):")
        for name in summary["failed"]:
            print(f"  {name}: {json.loads((results_dir / 'failed' / f'{name}.json').read_text())['error']}")
    return summary


def cli(main: Any, args_class: type, stopped: str) -> Any:
    """A benchmark tool's command line: bad input is one sentence and exit 2; Ctrl-C is one line (what the tool
    raised, else `stopped`) and exit 130. Returns what `main` returns."""
    try:
        return main(tyro.cli(args_class))
    except UsageError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as error:
        print(str(error) or stopped, file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    outcome = cli(main, Args, "run.py: stopped by Ctrl-C before any run started.")
    sys.exit(1 if outcome["failed"] else 0)
