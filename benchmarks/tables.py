"""The READMEs' result tables, written from the result folders: no number in them is typed by hand.

Each table lives in README.md or benchmarks/README.md between `<!-- table: NAME -->` and `<!-- /table -->`;
TABLES below says, for each NAME, which folders and seeds each row counts. `python benchmarks/tables.py` rewrites
every marked table from the committed JSON files; `--check` rewrites nothing and exits 1 naming each table that
differs from what its folders give (tests/test_tables.py runs it on every commit). Prose may quote a table: every
figure (a decimal, a count "8 of 10") in the prose of a section that holds a marked table must stand in a table of
the READMEs, or both commands name it and exit 1.

    python benchmarks/tables.py            # rewrite the marked tables
    python benchmarks/tables.py --check    # exit 1 if a README's table is not what its folders give
"""

import json
import re
import sys
import time
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plot import group_runs, iqm, load_results, results_table  # plot.py's own table and its rliable IQM
from run import ROOT, UsageError, cli

README, BENCHMARKS = ROOT / "README.md", ROOT / "benchmarks" / "README.md"
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Seeds:
    """Runs of one script on one env in one folder, on seeds first..last (each must be there)."""

    folder: str
    first: int
    last: int

    def records(self, script: str, env_id: str) -> list[dict]:
        """The runs, seed by seed (of two runs of a seed, the newer: plot.py's rule); refused if a seed is missing."""
        found: dict[int, dict] = {}
        for path in sorted((RESULTS / self.folder).glob(f"{script}__{env_id}__seed*.json")):
            record = json.loads(path.read_text())
            if record.get("status") == "ok" and self.first <= record["seed"] <= self.last:
                older = found.get(record["seed"], {"finished_at": -1.0})
                if record.get("finished_at", 0.0) > older.get("finished_at", 0.0):
                    found[record["seed"]] = record
        if missing := [seed for seed in range(self.first, self.last + 1) if seed not in found]:
            raise UsageError(f"tables.py: {self.folder} has no run of {script} on {env_id} with seed {missing[0]}.")
        return [found[seed] for seed in sorted(found)]

    def records_or_none(self, script: str, env_id: str) -> list[dict] | None:
        """The runs, or None where the folder holds no run of this script on this env at all."""
        if not list((RESULTS / self.folder).glob(f"{script}__{env_id}__seed*.json")):
            return None
        return self.records(script, env_id)

    def scores(self, script: str, env_id: str) -> list[float]:
        """Each seed's mean evaluation return, seed by seed."""
        return [float(np.mean(record["eval_returns"])) for record in self.records(script, env_id)]

    def span(self) -> str:
        return f"{self.first}–{self.last}"


@dataclass(frozen=True)
class Row:
    script: str  # run.py's name: dqn, sb3_dqn, ...
    env_id: str
    bar: float  # an evaluation mean at or above it "reached the bar"
    fresh: Seeds  # the seeds no default was chosen on
    tuning: Seeds | None = None  # the seeds the defaults were chosen on, with those defaults (None: not ours)


def minus(text: str) -> str:
    return text.replace("-", "−")


def reached(scores: list[float], bar: float) -> str:
    return f"{sum(score >= bar for score in scores)} of {len(scores)}"


def per_seed(scores: list[float]) -> str:
    return minus(" / ".join(f"{score:.0f}" for score in scores))


def shown(script: str) -> str:
    """A script's name as the tables give it: ours as its file, a peer (sb3_dqn) as run.py names it."""
    return script if script.startswith("sb3_") else f"{script}.py"


def fresh_cells(row: Row) -> tuple[str, list[float], str]:
    """A row's name as the tables give it, its fresh seeds' scores, and its cells from the median on."""
    scores = row.fresh.scores(row.script, row.env_id)
    name = shown(row.script)
    tail = f"{minus(f'{np.median(scores):.1f}')} | {minus(iqm(np.array(scores)))} | {per_seed(scores)}"
    return name, scores, tail


def reliability_table(rows: list[Row]) -> str:
    """Per script and env: how many seeds reached the bar (tuning and fresh), and the fresh seeds' median, IQM and
    per-seed scores."""
    fresh = rows[0].fresh.span()
    lines = [
        f"| script | env | bar | tuning seeds: reached the bar | seeds {fresh}: reached the bar | median "
        f"| IQM [95% CI] | per seed, {fresh} |\n| --- | --- | --- | --- | ---: | ---: | ---: | --- |"
    ]
    for row in rows:
        name, scores, tail = fresh_cells(row)
        tuning = "— (the zoo's setting)"
        if row.tuning is not None:
            tuning = f"{reached(row.tuning.scores(row.script, row.env_id), row.bar)} ({row.tuning.span()})"
        lines.append(
            f"| {name} | {row.env_id} | {minus(f'≥ {row.bar:g}')} | {tuning} | {reached(scores, row.bar)} | {tail} |"
        )
    return "\n".join(lines)


def fresh_table(rows: list[Row]) -> str:
    """The reliability table of a fresh range alone (no tuning column), with its first ten seeds' count beside."""
    fresh = rows[0].fresh
    first_ten = Seeds(fresh.folder, fresh.first, fresh.first + 9)
    lines = [
        f"| script | env | bar | seeds {fresh.span()}: reached the bar | median | IQM [95% CI] | per seed, "
        f"{fresh.span()} |\n| --- | --- | --- | ---: | ---: | ---: | --- |"
    ]
    for row in rows:
        name, scores, tail = fresh_cells(row)
        ten = reached(first_ten.scores(row.script, row.env_id), row.bar).replace(" of 10", "")
        count = f"{reached(scores, row.bar)} ({ten} of 10 on {first_ten.span()})"
        lines.append(f"| {name} | {row.env_id} | {minus(f'≥ {row.bar:g}')} | {count} | {tail} |")
    return "\n".join(lines)


def pooled_table(rows: list[Row], more: Seeds) -> str:
    """Every seed nobody tuned on as one range: each row's fresh seeds and `more`'s, how many reached the bar, their
    median and IQM."""
    both = f"{rows[0].fresh.span()} and {more.span()}"
    lines = [
        f"| script | env | bar | seeds {both}: reached the bar | median | IQM [95% CI] |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        scores = row.fresh.scores(row.script, row.env_id) + more.scores(row.script, row.env_id)
        lines.append(
            f"| {shown(row.script)} | {row.env_id} | {minus(f'≥ {row.bar:g}')} | {reached(scores, row.bar)} "
            f"| {minus(f'{np.median(scores):.1f}')} | {minus(iqm(np.array(scores)))} |"
        )
    return "\n".join(lines)


# What each MuJoCo anchor publishes, on its own terms (ours is the final evaluation: 10 episodes of the deterministic
# policy after the last step, mean over them, then mean ± std over seeds). Each header says what its numbers are.
ANCHORS = {
    "Tianshou: best average test return during training, 10 seeds, 1M, -v3": {  # examples/mujoco/README.md
        ("trpo", "HalfCheetah-v5"): "4471",
        ("trpo", "Hopper-v5"): "2046",
        ("trpo", "Walker2d-v5"): "3826.7 ± 782.7",
        ("natural_gradient", "HalfCheetah-v5"): "3485",
        ("natural_gradient", "Hopper-v5"): "1915",
        ("natural_gradient", "Walker2d-v5"): "2503.2 ± 963.3",
        ("ddpg", "HalfCheetah-v5"): "11719",
        ("ddpg", "Hopper-v5"): "2197",
        ("ddpg", "Walker2d-v5"): "1400.6 ± 905.0",
    },
    "OpenAI Baselines trpo_mpi: average of 6 seeds at 1M": {  # benchmarks_mujoco1M.htm (commit ea68f3b, 2018)
        ("trpo", "HalfCheetah-v5"): "1289.7",
        ("trpo", "Hopper-v5"): "1912.9",
        ("trpo", "Walker2d-v5"): "2342.63",
    },
    "rl-baselines3-zoo: one agent, 1M, mean ± std over ~150 evaluation episodes, -v3": {  # benchmark.md
        ("trpo", "HalfCheetah-v5"): "1785.476 ± 68.672",
        ("trpo", "Hopper-v5"): "3618.386 ± 356.768",
        ("trpo", "Walker2d-v5"): "4933.148 ± 1452.538",
    },
    "CleanRL: training episodic return, 3 seeds, 1M, -v4": {  # docs/rl-algorithms/ddpg.md
        ("ddpg", "HalfCheetah-v5"): "10374.07 ± 157.37",
        ("ddpg", "Hopper-v5"): "1576.78 ± 818.98",
        ("ddpg", "Walker2d-v5"): "1240.16 ± 390.10",
    },
}
MUJOCO_ENVS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")


def mujoco_table(rows: list[tuple[str, str, int, int, str]]) -> str:
    """Per script (its folder, budget, seeds, and the commit that made a folder kept as a record: "" for one the
    code that stands re-runs) and env: the final evaluation, mean ± std over seeds, beside what each anchor
    publishes for the same algorithm and env, on the anchor's own terms (its header says which); an env the folder
    did not run is left out."""
    lines = [
        f"| script | env | steps | seeds | ours: final evaluation | {' | '.join(ANCHORS)} |",
        f"| --- | --- | ---: | ---: | ---: | {' | '.join('---:' for _ in ANCHORS)} |",
    ]
    for script, folder, budget, seeds, record in rows:
        steps = f"{budget / 1e6:g}M" if budget >= 1_000_000 else f"{budget // 1000}k"
        name = f"{script}.py (record: {record})" if record else f"{script}.py"
        for env_id in MUJOCO_ENVS:
            runs = Seeds(folder, 1, seeds).records_or_none(script, env_id)
            if not runs:
                continue
            assert all(r["args"]["total_timesteps"] == budget for r in runs), (script, env_id)
            scores = [float(np.mean(r["eval_returns"])) for r in runs]
            anchors = [published.get((script, env_id), "—") for published in ANCHORS.values()]
            lines.append(
                f"| {name} | {env_id} | {steps} | 1–{seeds} | {np.mean(scores):.0f} ± {np.std(scores):.0f} | "
                + " | ".join(anchors)
                + " |"
            )
    return "\n".join(lines)


def setting_table(folders: tuple[str, ...], script: str, env_ids: tuple[str, ...], field: str, seeds: range) -> str:
    """Runs of one script that differ in one setting (from any of `folders`): per env and value of `field`, each
    seed's final evaluation and their mean ± std (every value needs every seed)."""
    lines = [f"| env | {field} | seeds | per seed | mean ± std |", "| --- | ---: | ---: | --- | ---: |"]
    for env_id in env_ids:
        runs: dict[object, dict[int, float]] = {}
        for path in sorted(
            path for folder in folders for path in (RESULTS / folder).glob(f"{script}__{env_id}__*.json")
        ):
            record = json.loads(path.read_text())
            if record.get("status") == "ok" and record["seed"] in seeds:
                runs.setdefault(record["args"][field], {})[record["seed"]] = float(np.mean(record["eval_returns"]))
        for value, scores in sorted(runs.items()):
            if missing := [seed for seed in seeds if seed not in scores]:
                raise UsageError(
                    f"tables.py: no run of {script} on {env_id} with {field} = {value} and seed {missing[0]} in "
                    f"{', '.join(folders)}."
                )
            ordered = [scores[seed] for seed in seeds]
            lines.append(
                f"| {env_id} | {value:g} | {seeds[0]}–{seeds[-1]} | {per_seed(ordered)} "
                f"| {np.mean(ordered):.0f} ± {np.std(ordered):.0f} |"
            )
    return "\n".join(lines)


CLEANRL_DQN = {  # CleanRL's dqn.py (docs/rl-algorithms/dqn.md): average training episodic return, 3 seeds, 500k steps
    "CartPole-v1": "488.69 ± 16.11",
    "Acrobot-v1": "−91.54 ± 7.20",
    "MountainCar-v0": "−194.95 ± 8.48",
}


def cleanrl_budget_table(folder: str, env_ids: tuple[str, ...], seeds: int) -> str:
    """dqn.py (its defaults, CleanRL's budget) beside CleanRL's dqn.py: our final evaluation and, on CleanRL's own
    terms, our training episodic return (the mean of each seed's last 10 training episodes), mean ± std over seeds."""
    lines = [
        "| env | steps | seeds | dqn.py: final eval return | dqn.py: training return, last 10 episodes "
        "| dqn.py: final eval, per seed | CleanRL dqn.py: training episodic return |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for env_id in env_ids:
        runs = Seeds(folder, 1, seeds).records("dqn", env_id)
        final = [float(np.mean(r["eval_returns"])) for r in runs]
        training = [float(np.mean(r["episodic_returns"][-10:])) for r in runs]
        (steps,) = {r["args"]["total_timesteps"] for r in runs}
        lines.append(
            f"| {env_id} | {steps // 1000}k | 1–{seeds} | {minus(f'{np.mean(final):.1f} ± {np.std(final):.1f}')} "
            f"| {minus(f'{np.mean(training):.1f} ± {np.std(training):.1f}')} "
            f"| {minus(' / '.join(f'{score:.1f}' for score in final))} | {CLEANRL_DQN[env_id]} |"
        )
    return "\n".join(lines)


def wall_time_table(then: str, now: str) -> str:
    """The default runs of two folders (two days): each script's median wall time then and now, the day its runs of
    now were made (a script re-run after its defaults changed has a later one), and now / then."""
    groups = [group_runs(load_results(RESULTS / folder)) for folder in (then, now)]

    def day(runs: list[dict]) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(max(r["finished_at"] for r in runs)))

    lines = [
        f"| env | script | steps | wall time s, {day([r for g in groups[0].values() for r in g])} (median) "
        "| wall time s, now (median) | now: run on | ratio |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for key in [key for key in groups[1] if key in groups[0]]:
        before, after = (float(np.median([r["wall_time"] for r in g[key]])) for g in groups)
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]:,} | {before:.1f} | {after:.1f} | {day(groups[1][key])} "
            f"| {after / before:.2f} |"
        )
    return "\n".join(lines)


def summary_table(rows: list[tuple[Row, Seeds]]) -> str:
    """README.md's first table: per script and env, the default run's evaluation on seeds 1–5 (mean ± std) and how
    many of its tuning seeds reached the bar."""
    lines = [
        "| script | env | steps | eval return, seeds 1–5 (mean ± std) | tuning seeds: reached the bar |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for row, first in rows:
        scores = first.scores(row.script, row.env_id)
        steps = {record["args"]["total_timesteps"] for record in first.records(row.script, row.env_id)}
        tuning = row.tuning.scores(row.script, row.env_id) if row.tuning else []
        lines.append(
            f"| {row.script}.py | {row.env_id} | {', '.join(f'{s // 1000}k' for s in sorted(steps))} "
            f"| {minus(f'{np.mean(scores):.1f} ± {np.std(scores):.1f}')} "
            f"| {reached(tuning, row.bar)} at {minus(f'≥ {row.bar:g}')} ({row.tuning.span() if row.tuning else '-'}) |"
        )
    return "\n".join(lines)


CONFIRM, SEEDS = Seeds("confirm", 1001, 1010), Seeds("seeds", 1, 30)
CONFIRM_4001 = Seeds("confirm_4001", 4001, 4010)  # fitted_q.py's second fresh range, named before it was run
TRPO_TUNING = Seeds("trpo_defaults_1_20", 1, 20)  # trpo.py's defaults re-run on the seeds its search looked at
NPG_TUNING = Seeds("natural_gradient_tuning", 101, 120)  # natural_gradient.py's Pendulum-v1 search (2026-12-08)
CONFIRM_5001 = Seeds("confirm_5001", 5001, 5010)  # its fresh range, named before the search ran
OURS_CONFIRMED = [
    Row("dqn", "CartPole-v1", 475, CONFIRM, SEEDS),
    Row("fitted_q", "CartPole-v1", 475, CONFIRM, SEEDS),
    Row("reinforce", "CartPole-v1", 475, CONFIRM, SEEDS),
    Row("trpo", "CartPole-v1", 475, CONFIRM, Seeds("trpo_defaults_1_20", 1, 20)),
    Row("natural_gradient", "CartPole-v1", 475, CONFIRM, SEEDS),
    Row("ddpg", "Pendulum-v1", -200, CONFIRM, SEEDS),
    Row("trpo", "Pendulum-v1", -300, CONFIRM, TRPO_TUNING),
    Row("sb3_trpo", "Pendulum-v1", -300, CONFIRM),
    Row("natural_gradient", "Pendulum-v1", -300, CONFIRM, NPG_TUNING),
]
CLASSIC = Seeds("classic", 1, 5)
SUMMARY = [
    (Row("dqn", "CartPole-v1", 475, CONFIRM, SEEDS), CLASSIC),
    (Row("fitted_q", "CartPole-v1", 475, CONFIRM, SEEDS), CLASSIC),
    (Row("ddpg", "Pendulum-v1", -200, CONFIRM, SEEDS), CLASSIC),
    (Row("reinforce", "CartPole-v1", 475, CONFIRM, SEEDS), CLASSIC),
    (Row("trpo", "CartPole-v1", 475, CONFIRM, Seeds("trpo_defaults_1_20", 1, 20)), CLASSIC),
    (Row("trpo", "Pendulum-v1", -300, CONFIRM, TRPO_TUNING), CLASSIC),
    (Row("natural_gradient", "CartPole-v1", 475, CONFIRM, SEEDS), CLASSIC),
    (Row("natural_gradient", "Pendulum-v1", -300, CONFIRM, NPG_TUNING), CLASSIC),
]
TABLES = {  # name: the function that writes it
    "summary": lambda: summary_table(SUMMARY),
    "confirm-2001": lambda: fresh_table(
        [
            Row(script, env_id, bar, Seeds("confirm_2001", 2001, 2020))
            for script, env_id, bar in [
                ("dqn", "CartPole-v1", 475),
                ("sb3_dqn", "CartPole-v1", 475),
                ("trpo", "Pendulum-v1", -300),
                ("sb3_trpo", "Pendulum-v1", -300),
            ]
        ]
    ),
    "mujoco": lambda: mujoco_table(
        [
            ("trpo", "mujoco_1m", 1_000_000, 3, ""),
            ("natural_gradient", "mujoco_1m", 1_000_000, 3, ""),
            ("ddpg", "mujoco_ddpg_300k", 300_000, 2, "549535d"),
        ]
    ),
    "dqn-cleanrl": lambda: cleanrl_budget_table("dqn_cleanrl_budget", ("Acrobot-v1", "MountainCar-v0"), 3),
    "classic": lambda: results_table(group_runs(load_results(RESULTS / "classic"))),  # plot.py's table.md
    "confirm": lambda: reliability_table(
        [OURS_CONFIRMED[0], Row("sb3_dqn", "CartPole-v1", 475, CONFIRM), *OURS_CONFIRMED[1:]]
    ),
    "confirm-readme": lambda: reliability_table(OURS_CONFIRMED),
    "confirm-both": lambda: pooled_table(
        [
            Row(script, env_id, bar, CONFIRM)
            for script, env_id, bar in [
                ("dqn", "CartPole-v1", 475),
                ("sb3_dqn", "CartPole-v1", 475),
                ("trpo", "Pendulum-v1", -300),
                ("sb3_trpo", "Pendulum-v1", -300),
            ]
        ],
        Seeds("confirm_2001", 2001, 2020),
    ),
    "classic-wall": lambda: wall_time_table("classic_2026-12-01", "classic"),
    "confirm-4001": lambda: reliability_table([Row("fitted_q", "CartPole-v1", 475, CONFIRM_4001, SEEDS)]),
    "fitted_q-fresh": lambda: pooled_table([Row("fitted_q", "CartPole-v1", 475, CONFIRM)], CONFIRM_4001),
    "confirm-5001": lambda: reliability_table([Row("natural_gradient", "Pendulum-v1", -300, CONFIRM_5001, NPG_TUNING)]),
    "natural_gradient-fresh": lambda: pooled_table(
        [Row("natural_gradient", "Pendulum-v1", -300, CONFIRM)], CONFIRM_5001
    ),
    "natural_gradient-1-30": lambda: reliability_table(
        [Row("natural_gradient", "Pendulum-v1", -300, SEEDS, NPG_TUNING)]
    ),
    "trpo-hopper-kl": lambda: setting_table(("trpo_hopper_search",), "trpo", ("Hopper-v5",), "max_kl", range(11, 14)),
    "trpo-hopper-confirm": lambda: setting_table(
        ("mujoco_trpo_confirm",), "trpo", ("Hopper-v5",), "max_kl", range(21, 24)
    ),
    "trpo-kl-envs": lambda: setting_table(("mujoco_1m", "mujoco_trpo_1m"), "trpo", MUJOCO_ENVS, "max_kl", range(1, 4)),
}
MARKED = re.compile(  # (an empty one too: a new table's markers; never across another table's markers)
    r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<table>(?:(?!<!-- /?table)[\s\S])*?)\n?<!-- /table -->"
)
FIGURE = re.compile(r"(?<![\w.])[−-]?\d+\.\d+(?![\w.])|\b\d+ of \d+\b")  # a decimal, or a count: "8 of 10"


def figures(text: str, tables: bool) -> list[str]:
    """The figures of a text's table rows (`tables`) or of its prose; neither counts code (blocks or `spans`)."""
    found, code = [], False
    for line in text.splitlines():
        code ^= line.startswith("```")
        if not code and not line.startswith("```") and line.startswith("|") == tables:
            found.append(line)
    spans = re.sub(r"`[^`]*`", "", "\n".join(found))  # (a span may run over a line break)
    return [minus(figure) for figure in FIGURE.findall(spans)]


def unquoted(texts: dict[str, str]) -> list[str]:
    """Prose may quote a table, and only a table: each figure in the prose of a section that holds a marked table
    must stand in a table of the READMEs (a marked one, or a dated record's). Where one does not: "file, section:
    figure"."""
    tabled = {figure for text in texts.values() for figure in figures(text, tables=True)}
    found = []
    for name, text in texts.items():
        parts = re.split(r"(?m)^(#{2,4} .*)$", text)
        for heading, body in zip(["(top)", *parts[1::2]], parts[0::2], strict=True):
            if MARKED.search(body):
                found += [f"{name}, {heading}: {f}" for f in figures(body, tables=False) if f not in tabled]
    return found


@cache
def written(name: str) -> str:
    """TABLES[name], made once in a process (two READMEs may show it; its folders do not change while it runs)."""
    return TABLES[name]()


def marked(tables: dict[str, str], match: re.Match) -> str:
    """A marked table, its markers kept, its rows what its folders give."""
    return match[1] + tables[match["name"]] + "\n<!-- /table -->"


@dataclass
class Args:
    check: bool = False
    """rewrite nothing: exit 1 if a marked table differs from what its folders give"""


def main(args: Args) -> list[str]:
    """Rewrite (or check) every marked table; return what is wrong: with --check the tables that differ, and always
    the figures prose quotes from no table."""
    differ, texts = [], {}
    for readme in (README, BENCHMARKS):
        text = readme.read_text(encoding="utf-8")
        names = [match["name"] for match in MARKED.finditer(text)]
        if unknown := [name for name in names if name not in TABLES]:
            raise UsageError(f"tables.py: {readme.name} marks a table {unknown[0]!r} that TABLES does not define.")
        tables = {name: written(name) for name in names}
        differ += [
            f"{readme.relative_to(ROOT)}: {m['name']}" for m in MARKED.finditer(text) if m["table"] != tables[m["name"]]
        ]
        texts[str(readme.relative_to(ROOT))] = MARKED.sub(partial(marked, tables), text)
        if not args.check:
            readme.write_text(texts[str(readme.relative_to(ROOT))], encoding="utf-8")
    for name in differ:
        print(f"{name}: {'differs from its folders' if args.check else 'rewritten'}")
    for figure in (quoted := unquoted(texts)):
        print(f"{figure} is quoted in prose, but no table gives it")
    return (differ if args.check else []) + quoted


if __name__ == "__main__":
    sys.exit(1 if cli(main, Args, "tables.py: stopped by Ctrl-C.") else 0)
