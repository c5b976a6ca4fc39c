"""The READMEs' marked result tables are what their folders give (benchmarks/tables.py): none is typed by hand."""

import shutil
import subprocess
import sys

import pytest
from test_smoke import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import tables


def test_every_marked_table_is_what_its_committed_folders_give():
    assert tables.main(tables.Args(check=True)) == [], "run python benchmarks/tables.py and commit the READMEs"
    text = tables.README.read_text(encoding="utf-8") + tables.BENCHMARKS.read_text(encoding="utf-8")
    assert {match["name"] for match in tables.MARKED.finditer(text)} == set(tables.TABLES), "every table is shown"


def test_a_table_edited_by_hand_is_named_by_check_and_rewritten_from_its_folders(readmes):
    edited = tables.README.read_text(encoding="utf-8").replace(
        "| dqn.py | CartPole-v1 | ≥ 475 |", "| dqn.py | CartPole-v1 | ≥ 470 |", 1
    )
    tables.README.write_text(edited, encoding="utf-8")
    assert tables.main(tables.Args(check=True)) == ["README.md: confirm-readme"]
    assert tables.README.read_text(encoding="utf-8") == edited, "--check rewrites nothing"
    tables.main(tables.Args())
    assert tables.main(tables.Args(check=True)) == []


@pytest.fixture
def readmes(tmp_path, monkeypatch):
    """Copies of the two READMEs that tables.py reads and writes instead of the repository's."""
    for name in ("README", "BENCHMARKS"):
        copy = tmp_path / f"{name}.md"
        shutil.copy(getattr(tables, name), copy)
        monkeypatch.setattr(tables, name, copy)
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    return tables.README, tables.BENCHMARKS


def test_a_figure_that_prose_quotes_from_no_table_is_named_even_without_check(readmes):
    readme, _ = readmes
    text = readme.read_text(encoding="utf-8")
    assert "dqn.py 17 of 20 (25 of 30 over both ranges;" in text
    readme.write_text(text.replace("(25 of 30 over both ranges;", "(25 of 31 over both ranges;"), encoding="utf-8")
    assert tables.main(tables.Args(check=True)) == ["README.md, ## Results: 25 of 31"]
    assert tables.main(tables.Args()) == ["README.md, ## Results: 25 of 31"], "a rewrite cannot fix prose: exit 1"


def test_a_new_tables_empty_markers_are_filled_and_the_next_table_is_left_whole(readmes):
    readme, _ = readmes
    text = readme.read_text(encoding="utf-8")
    first = text.index("<!-- table: summary -->")
    readme.write_text(text[:first] + "<!-- table: classic -->\n<!-- /table -->\n\n" + text[first:], encoding="utf-8")
    tables.main(tables.Args())
    written = readme.read_text(encoding="utf-8")
    assert written.count("<!-- table: ") == text.count("<!-- table: ") + 1
    assert written.replace(written[: written.index("<!-- table: summary -->")], "") == text[first:]
    assert tables.main(tables.Args(check=True)) == []


def test_check_on_the_command_line_exits_0_when_every_table_is_its_folders():
    done = subprocess.run([sys.executable, "benchmarks/tables.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("seeds, message", [((1001, 1011), "has no run of dqn on CartPole-v1 with seed 1011")])
def test_a_row_whose_seeds_are_not_all_in_its_folder_is_refused(seeds, message):
    with pytest.raises(tables.UsageError, match=message):
        tables.Seeds("confirm", *seeds).scores("dqn", "CartPole-v1")
