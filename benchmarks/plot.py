"""Learning curves, a results table and the race table from benchmarks/run.py's JSON files.

One PNG per env: for every script, the mean ± std across seeds of the episodic return against environment
steps, where a seed's return at step x is the mean of its last `window` training episodes that ended by x
(a seed counts from its first finished episode on). The table gives, per env and script, the final
evaluation return (each seed's mean over its evaluation episodes, then mean ± std over seeds, and the interquartile
mean with its 95% bootstrap confidence interval by rliable) and the
medians over seeds of wall time (the whole train() call) and training steps per second, and each seed's
score, so that a mean ± std does not hide a failed seed. When the results hold both sides of a race pair
(run.py's RACE), a second table sets ours beside Stable-Baselines3: both returns, and the medians over seeds
of the per-seed ratios ours / theirs of wall time and of training-loop time.

    python benchmarks/plot.py                                   # benchmarks/results/classic -> benchmarks/figures/classic
    python benchmarks/plot.py --results-dir benchmarks/results/race
"""

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
import numpy as np
from rliable import library, metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import OURS, RACE, ROOT, SB3, UsageError, cli  # the race's pairs are defined once, where they are run


@dataclass
class Args:
    results_dir: str = "benchmarks/results/classic"
    """a directory of run.py's JSON files"""
    out_dir: str | None = None
    """where the PNGs and table.md go (None: benchmarks/figures/<name of results-dir>)"""
    window: int = 10
    """training episodes averaged into one seed's curve"""
    points: int = 200
    """points along the step axis"""


def load_results(results_dir: Path) -> list[dict]:
    """The finished runs, one per (script, env, budget, seed): where a changed script or setting left an older
    run of the same cell beside a newer one, the one that finished last counts (by its record's finished_at,
    which a git checkout does not reset as it does file times). Failed runs live under failed/, unread."""
    newest: dict[tuple, tuple[float, dict]] = {}
    for path in results_dir.glob("*.json"):
        try:
            record = json.loads(path.read_text())
            if record.get("status") != "ok":
                continue
            cell = (record["script"], record["env_id"], record["args"].get("total_timesteps"), record["seed"])
            if missing := {"eval_returns", "episode_end_steps", "episodic_returns", "wall_time"} - record.keys():
                raise KeyError(sorted(missing)[0])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise UsageError(
                f"{path} is not a result benchmarks/run.py wrote ({type(error).__name__}: {error}); move it aside."
            ) from None
        finished_at = record.get("finished_at", path.stat().st_mtime)  # files from before finished_at existed
        if cell not in newest or finished_at > newest[cell][0]:
            newest[cell] = (finished_at, record)
    return [record for _, record in newest.values()]


def seed_curve(end_steps: list[int], returns: list[float], grid: np.ndarray, window: int) -> np.ndarray:
    """At each grid step x, the mean return of the last `window` episodes that ended at or before x (NaN before
    the first)."""
    returns_array = np.asarray(returns, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(returns_array)])
    ended = np.searchsorted(np.asarray(end_steps), grid, side="right")  # episodes finished by each x
    first = np.maximum(ended - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = (cumulative[ended] - cumulative[first]) / (ended - first)
    return np.where(ended > 0, curve, np.nan)


def group_runs(records: list[dict]) -> dict[tuple[str, str, int], list[dict]]:
    """Runs by (env, script, budget): the seeds of one curve and one table row."""
    groups: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    for record in records:
        budget = record["args"].get("total_timesteps") or max(record["episode_end_steps"], default=0)
        groups[(record["env_id"], record["script"], budget)].append(record)
    return dict(sorted(groups.items()))


def label(script: str, budget: int, budgets_of_script: int) -> str:
    return f"{script} ({budget:,} steps)" if budgets_of_script > 1 else script


def plot_env(env_id: str, groups: dict[tuple[str, str, int], list[dict]], path: Path, args: Args) -> None:
    """One figure: every (script, budget) of this env, mean ± std across seeds."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    mine = {key: runs for key, runs in groups.items() if key[0] == env_id}
    for (_, script, budget), runs in mine.items():
        grid = np.linspace(0, budget, args.points)
        curves = np.array([seed_curve(r["episode_end_steps"], r["episodic_returns"], grid, args.window) for r in runs])
        shown = ~np.isnan(curves).all(axis=0)  # from the first episode any seed finished
        mean, std = np.nanmean(curves[:, shown], axis=0), np.nanstd(curves[:, shown], axis=0)
        budgets_of_script = sum(1 for key in mine if key[1] == script)
        color = f"C{(OURS + SB3).index(script) % 10}"  # a script has one colour in every figure
        line_style = "--" if script in SB3 else "-"
        text = f"{label(script, budget, budgets_of_script)}, {len(runs)} seed{'s' if len(runs) > 1 else ''}"
        axes.plot(grid[shown], mean, line_style, color=color, label=text)
        axes.fill_between(grid[shown], mean - std, mean + std, color=color, alpha=0.2)
    axes.set_title(f"{env_id}: training episodic return, mean ± std across seeds")
    axes.set_xlabel("environment steps")
    axes.set_ylabel(f"return (mean of last {args.window} episodes)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def seed_scores(runs: list[dict]) -> np.ndarray:
    """Each seed's mean evaluation return, in the order of the seeds."""
    return np.array([np.mean(r["eval_returns"]) for r in sorted(runs, key=lambda r: r["seed"]) if r["eval_returns"]])


def per_seed(runs: list[dict]) -> str:
    """Each seed's mean evaluation return, rounded, seed by seed: where a mean ± std hides a failed seed."""
    return " / ".join(f"{score:.0f}" for score in seed_scores(runs)) or "-"


def mean_std(values: np.ndarray) -> str:
    return f"{values.mean():.1f} ± {values.std():.1f}" if len(values) else "-"


def iqm(values: np.ndarray, reps: int = 2000) -> str:
    """The interquartile mean over seeds (the mean of the middle half: one wild seed moves it little, a quarter of
    failed seeds moves it a lot) with its 95% bootstrap confidence interval, by rliable (Agarwal et al. 2021),
    resampling seeds `reps` times from a fixed generator so that a table repeats."""
    if len(values) < 2:
        return "-"
    state = np.random.get_state()
    np.random.seed(0)  # rliable resamples with numpy's global generator (it ignores its random_state argument)
    try:
        point, interval = library.get_interval_estimates(
            {"runs": values.reshape(-1, 1)},  # [seeds, tasks = 1]
            lambda scores: np.array([metrics.aggregate_iqm(scores)]),
            reps=reps,
        )
    finally:
        np.random.set_state(state)
    low, high = interval["runs"][:, 0]
    return f"{point['runs'][0]:.1f} [{low:.1f}, {high:.1f}]"


def results_table(groups: dict[tuple[str, str, int], list[dict]]) -> str:
    lines = [
        "| env | script | steps | seeds | final eval return (mean ± std over seeds) | IQM [95% CI] | per seed "
        "| wall time s (median) | SPS (median) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (env_id, script, budget), runs in groups.items():
        wall = np.median([r["wall_time"] for r in runs])
        sps = np.median([r["sps"] for r in runs])
        scores = seed_scores(runs)
        lines.append(
            f"| {env_id} | {script} | {budget:,} | {len(runs)} | {mean_std(scores)} | {iqm(scores)} | {per_seed(runs)} "
            f"| {wall:.1f} | {sps:,.0f} |"
        )
    return "\n".join(lines)


def race_table(records: list[dict]) -> str:
    """Ours beside SB3 per RACE pair and budget, over the seeds both sides ran; empty when no pair is complete."""
    by_run = {(r["script"], r["env_id"], r["args"].get("total_timesteps"), r["seed"]): r for r in records}
    lines = [
        "| ours | theirs | env | steps | seeds | ours: eval return | ours: IQM [95% CI] | ours: per seed "
        "| theirs: eval return | theirs: IQM [95% CI] | theirs: per seed | ours: wall s | theirs: wall s "
        "| wall-time ratio (median) | training-loop ratio (median) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for ours, theirs, env_id in dict.fromkeys((ours, theirs, env_id) for ours, theirs, env_id, _ in RACE):
        budgets = sorted({steps for (script, env, steps, _) in by_run if (script, env) == (ours, env_id)})
        for budget in budgets:  # the race's own budget, or any other both sides ran
            keys = sorted(key for key in by_run if key[:3] == (ours, env_id, budget))
            pairs = [(by_run[key], by_run[(theirs, *key[1:])]) for key in keys if (theirs, *key[1:]) in by_run]
            if pairs:
                lines.append(race_row(ours, theirs, env_id, budget, pairs))
    return "\n".join(lines) if len(lines) > 2 else ""


def race_row(ours: str, theirs: str, env_id: str, budget: int, pairs: list[tuple[dict, dict]]) -> str:
    """Wall time is the whole train() call (building, training, evaluating); the training loop excludes the
    evaluation. Each ratio is ours / theirs per seed, then the median over seeds."""
    mine, other = [p[0] for p in pairs], [p[1] for p in pairs]
    wall_ratio = np.median([a["wall_time"] / b["wall_time"] for a, b in pairs])
    train_ratio = np.median([a["train_time"] / b["train_time"] for a, b in pairs])
    ours_scores, their_scores = seed_scores(mine), seed_scores(other)
    return (
        f"| {ours} | {theirs} | {env_id} | {budget:,} | {len(pairs)} | {mean_std(ours_scores)} | {iqm(ours_scores)} "
        f"| {per_seed(mine)} | {mean_std(their_scores)} | {iqm(their_scores)} | {per_seed(other)} "
        f"| {np.median([r['wall_time'] for r in mine]):.1f} "
        f"| {np.median([r['wall_time'] for r in other]):.1f} | {wall_ratio:.2f} | {train_ratio:.2f} |"
    )


def main(args: Args) -> str:
    """Write one PNG per env and table.md; return the table's markdown."""
    if args.window < 1 or args.points < 2:
        raise UsageError(f"--window must be at least 1 and --points at least 2, got {args.window} and {args.points}.")
    results_dir = Path(args.results_dir)
    if not results_dir.is_absolute() and not results_dir.exists():  # the defaults are relative to the repository
        results_dir = ROOT / results_dir
    records = load_results(results_dir)
    if not records:
        raise SystemExit(f"No finished runs in {results_dir}: run benchmarks/run.py first.")
    out_dir = Path(args.out_dir or ROOT / "benchmarks" / "figures" / results_dir.name)
    groups = group_runs(records)
    for env_id in dict.fromkeys(env_id for env_id, _, _ in groups):
        plot_env(env_id, groups, out_dir / f"{env_id.replace('/', '-')}.png", args)
    table = results_table(groups)
    race = race_table(records)
    if race:
        table += "\n\nThe race (each pair on the same seeds, run one at a time, interleaved):\n\n" + race
    (out_dir / "table.md").write_text(table + "\n")
    print(table)
    return table


if __name__ == "__main__":
    cli(main, Args, "plot.py: stopped by Ctrl-C; the figures written so far are whole, table.md is not updated.")
