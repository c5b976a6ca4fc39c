"""The repository around the scripts: lint, exact pins, and CI running exactly what README.md says."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_requirement_is_pinned_exactly():
    for name in ("requirements.txt", "requirements-test.txt", "benchmarks/requirements.txt"):
        lines = [line for line in (ROOT / name).read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][^\s]*", line) for line in lines), name
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text().split()


def test_ci_runs_the_readme_commands_verbatim():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    test_command = ci_lines[-1]
    assert test_command in readme.splitlines(), "CI's test command must be the README's, word for word"
    assert "python -m venv" in readme and "pip install -r requirements.txt" in readme


def test_the_readmes_line_counts_are_the_files():
    rows = re.findall(r"^\| \[`(\w+\.py)`\]\(\1\) \|.*\| (\d+) \|$", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert len(rows) == 7, "the six scripts and plumbing.py"
    for name, lines in rows:
        assert int(lines) == len((ROOT / name).read_text().splitlines()), f"README.md gives {name} {lines} lines"
