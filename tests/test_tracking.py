"""--track (Weights & Biases) and the page of logged tags (docs/logs.md), offline: no network here or in CI.

A tracked run is read back from the offline run W&B leaves on disk (its .wandb file: LevelDB-style log blocks of
protobuf records), and compared with the run's own TensorBoard file and args.
"""

import dataclasses
import glob
import json
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import assert_refused_before_any_work, cli_in_process
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_smoke import FIRST_RUNS, ROOT, SCRIPTS, short_args

wandb = pytest.importorskip("wandb")  # requirements-test.txt pins it: the suite always has it
from wandb.proto import wandb_internal_pb2  # noqa: E402

DQN_SHORT = SCRIPTS[0][3]


@pytest.fixture
def wandb_mode(tmp_path, monkeypatch):
    """W&B in the mode the test sets, writing under tmp_path/wandb (W&B reads its environment once per process, at
    its setup: torn down before and after, so each test's settings hold)."""

    def setup(mode: str):
        wandb.teardown()
        monkeypatch.setenv("WANDB_MODE", mode)
        monkeypatch.setenv("WANDB_DIR", str(tmp_path))
        monkeypatch.setenv("WANDB_SILENT", "true")
        return tmp_path / "wandb"

    yield setup
    wandb.teardown()


@pytest.fixture
def offline(wandb_mode):
    """W&B in its offline mode; yields the directory its runs go to."""
    return wandb_mode("offline")


def offline_run(wandb_dir) -> dict:
    """The one offline run under wandb_dir: its name, config, history rows, saved files and exit code."""
    (path,) = glob.glob(str(wandb_dir / "offline-run-*" / "run-*.wandb"))
    data = open(path, "rb").read()
    assert data[:4] == b":W&B", "a W&B data file starts with its identifier"
    run = {"config": {}, "history": [], "files": set(), "exit_code": None}
    position, block, pending = 7, 32768, b""  # 7: the file header (identifier, magic, version)
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a record header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])  # crc32c, length, FULL/FIRST/MIDDLE/LAST
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            which = record.WhichOneof("record_type")
            if which == "run":
                run["name"] = record.run.display_name
                run["config"] |= {item.key: json.loads(item.value_json) for item in record.run.config.update}
            elif which == "config":
                run["config"] |= {item.key: json.loads(item.value_json) for item in record.config.update}
            elif which == "history":
                items = record.history.item  # (a key is either whole or split at its "/")
                run["history"].append(
                    {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}
                )
            elif which == "files":
                run["files"] |= {file.path for file in record.files.files}
            elif which == "exit":
                run["exit_code"] = record.exit.exit_code
    run["config"].pop("_wandb", None)
    return run


def finished_run(wandb_dir) -> dict:
    """offline_run, once W&B's service has written the run's exit record (it may land just after finish returns)."""
    deadline = time.monotonic() + 15
    while (run := offline_run(wandb_dir))["exit_code"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return run


def scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def page_tags() -> dict[str, set[str]]:
    """docs/logs.md's table of tags: each tag and the scripts that log it."""
    table = (ROOT / "docs" / "logs.md").read_text().split("## The tags\n\n")[1].split("\n\n")[0]
    tags = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]  # (a \| inside a cell is not a border)
        scripts = [name for name, *_ in SCRIPTS] if cells[1] == "all" else cells[1].split(", ")
        tags[cells[0].strip("`")] = set(scripts)
    return tags


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_a_tracked_run_holds_the_args_and_the_tensorboard_log_and_changes_nothing_in_the_run(
    module_name, env_id, short, log_dir, offline, caller_state
):
    module, args = short_args(module_name, env_id, short, log_dir)
    tracked = module.train(dataclasses.replace(args, track=True))
    assert wandb.run is None and wandb.patched["tensorboard"] == [], "finished, and TensorBoard unpatched"
    assert caller_state(), "the caller's generators, threads and determinism are as they were"
    run = finished_run(offline)
    assert run["name"] == os.path.basename(tracked["run_dir"]) and run["exit_code"] == 0
    assert run["config"] == json.loads(json.dumps(dataclasses.asdict(dataclasses.replace(args, track=True))))
    assert {f"{module_name}.py", "plumbing.py"} <= run["files"], "the script and plumbing.py are saved with the run"
    for name in (f"{module_name}.py", "plumbing.py"):  # copies of the code as it stood, not links to files that change
        (saved,) = glob.glob(str(offline / "offline-run-*" / "files" / name))
        assert not os.path.islink(saved) and open(saved).read() == (ROOT / name).read_text()
    logged = scalars(tracked["run_dir"])
    for tag in ("charts/episodic_return", "eval/episodic_return"):
        synced = [(row["global_step"], np.float32(row[tag])) for row in run["history"] if tag in row]
        assert synced == [(step, np.float32(value)) for step, value in logged[tag]] and synced, f"W&B's {tag}"
    untracked = module.train(args)
    for key in ("episodic_returns", "episode_end_steps", "eval_returns"):
        assert tracked[key] == untracked[key], "tracking changes nothing in the run"


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_a_short_run_writes_exactly_the_tags_the_page_lists_for_its_script(module_name, env_id, short, log_dir):
    module, args = short_args(module_name, env_id, short, log_dir)
    written = set(scalars(module.train(args)["run_dir"]))
    listed = {tag for tag, scripts in page_tags().items() if module_name in scripts}
    assert written == listed, f"written, not listed: {written - listed}; listed, not written: {listed - written}"


def test_the_page_lists_every_tag_once_and_only_for_scripts_that_exist():
    tags = page_tags()
    assert len(tags) == len(set(tags)) and "eval/episodic_return" in tags
    assert set().union(*tags.values()) == {name for name, *_ in SCRIPTS}


def test_capture_video_puts_the_evaluation_videos_in_the_tracked_run(log_dir, offline):
    module, args = short_args("dqn", "CartPole-v1", DQN_SHORT, log_dir, track=True, capture_video=True)
    module.train(args)
    run = offline_run(offline)
    (videos,) = [row for row in run["history"] if "eval/video/count" in row]
    assert videos["eval/video/count"] == 2 == args.eval_episodes
    assert len([path for path in run["files"] if path.startswith("media/videos/eval/")]) == 2


@pytest.mark.parametrize(
    "env_id, exception, exit_code",
    [("tests/CtrlC-v0", KeyboardInterrupt, 130), ("tests/HugeReward-v0", FloatingPointError, 1)],
)
def test_a_run_that_stops_finishes_its_w_and_b_run_with_an_exit_code(env_id, exception, exit_code, log_dir, offline):
    module, args = short_args("dqn", env_id, DQN_SHORT, log_dir, track=True, total_timesteps=1000)
    with pytest.raises(exception):
        module.train(args)
    assert wandb.run is None and wandb.patched["tensorboard"] == []
    assert finished_run(offline)["exit_code"] == exit_code


def test_track_without_wandb_is_one_sentence_naming_the_install_and_exit_2(log_dir, monkeypatch, capsys):
    import dqn

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: importlib finds no module
    status, _, err = cli_in_process(monkeypatch, capsys, dqn, "--track", "--log-dir", log_dir)
    assert status == 2 and err == "dqn.py: --track needs Weights & Biases, which is not installed: pip install wandb.\n"
    assert not os.path.exists(log_dir)


def test_a_missing_login_is_one_sentence_exit_2_and_leaves_no_run(tmp_path):
    """A real process, online (no WANDB_MODE), with no API key anywhere: W&B refuses at once, without the network."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {"HOME": str(tmp_path)}
    log_dir = tmp_path / "runs"
    process = subprocess.run(
        [sys.executable, str(ROOT / "dqn.py"), "--track", "--log-dir", str(log_dir)],
        cwd=tmp_path,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = process.stderr.strip().splitlines()[-1]
    assert (
        process.returncode == 2
        and last.startswith("dqn.py: --track could not start a W&B run (")
        and "Traceback" not in process.stderr
    )
    assert "wandb login" in last and "WANDB_MODE=offline" in last
    assert not log_dir.exists()


def test_a_login_that_fails_is_refused_and_leaves_no_run(log_dir, monkeypatch):
    def unreachable(**settings):
        raise wandb.errors.CommError("Timed out while retrying: Post https://api.wandb.ai/graphql: no such host")

    monkeypatch.setattr(wandb, "init", unreachable)
    import dqn

    assert_refused_before_any_work(dqn, log_dir, {**DQN_SHORT, "track": True}, "could not start a W&B run (CommError")
    assert wandb.patched["tensorboard"] == [], "TensorBoard is unpatched again"


def test_wandb_mode_disabled_runs_as_w_and_b_documents_it(log_dir, tmp_path, wandb_mode):
    wandb_mode("disabled")
    module, args = short_args("dqn", "CartPole-v1", DQN_SHORT, log_dir, track=True)
    assert module.train(args)["eval_returns"] == module.train(dataclasses.replace(args, track=False))["eval_returns"]
    assert not (tmp_path / "wandb").exists(), "disabled: W&B writes nothing"


def test_the_w_and_b_flags_are_refused_without_track_and_names_w_and_b_would_refuse(log_dir):
    import dqn

    for overrides, phrase in [
        ({"wandb_entity": "me"}, "--wandb-entity must go with --track"),
        ({"wandb_project_name": "mine"}, "--wandb-project-name must go with --track"),
        ({"track": True, "wandb_project_name": "a/b"}, "--wandb-project-name must be a W&B name"),
        ({"track": True, "wandb_entity": ""}, "--wandb-entity must be a W&B name"),
    ]:
        assert_refused_before_any_work(dqn, log_dir, {**DQN_SHORT, **overrides}, phrase)


def test_a_run_without_track_imports_no_wandb(tmp_path):
    code = (
        "import sys, dqn; "
        f"dqn.train(dqn.Args(total_timesteps=600, learning_starts=200, eval_episodes=1, log_dir={str(tmp_path)!r})); "
        "assert 'wandb' not in sys.modules, 'wandb was imported'"
    )
    process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr


def test_a_resumed_tracked_run_goes_on_in_the_same_w_and_b_run(log_dir, offline):
    module, args = short_args("dqn", "CartPole-v1", DQN_SHORT, log_dir, track=True, checkpoint_frequency=300)
    first = module.train(args)
    resumed = module.train(dataclasses.replace(args, total_timesteps=900, resume=first["run_dir"]))
    parts = sorted(glob.glob(str(offline / "offline-run-*")))
    ids = {re.fullmatch(r".*offline-run-\d{8}_\d{6}-([a-z0-9]+)(-\d+)?", part)[1] for part in parts}
    assert len(parts) == 2 and len(ids) == 1, f"one W&B run id, two parts: {parts}"
    assert resumed["run_dir"] == first["run_dir"] and max(resumed["episode_end_steps"]) >= 600
