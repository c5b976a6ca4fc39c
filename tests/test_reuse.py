"""Use what you trained: --save-model, then --load-model to evaluate again or to train on, and --capture-video.

Every case runs on every script: a saved model evaluates exactly as it did at the end of its training, training on
starts from its weights and optimiser state, a file that does not fit the run is refused before anything is
written, and the evaluation episodes can be watched as MP4 files whose frames are the episodes' steps.
"""

import plumbing

import copy
import importlib
import importlib.util
import json
import os
from pathlib import Path

import imageio
import pytest
import torch
from test_smoke import RUNS, SCRIPTS, short_args

FIRST_RUNS = [(module, env_ids[0], short) for module, env_ids, _, short in SCRIPTS]
NETWORKS = ("q_network", "actor", "critic", "policy", "value")
# Where each script's first update can be watched: the function, and the networks it is handed.
UPDATES = {
    "dqn": ("gradient_step", lambda args: {"q_network": args[0]}),
    "fitted_q": ("fit", lambda args: {"q_network": args[0]}),
    "ddpg": ("ddpg_update", lambda args: {"actor": args[1][0], "critic": args[1][1]}),
    "reinforce": ("policy_gradient_loss", lambda args: {"policy": args[0]}),
    "trpo": ("trpo_update", lambda args: {"policy": args[0]}),
    "natural_gradient": ("natural_gradient_update", lambda args: {"policy": args[0]}),
}
OTHER_SPACES = {"CartPole-v1": "Acrobot-v1", "Pendulum-v1": "MountainCarContinuous-v0"}


def train_and_save(module_name: str, env_id: str, short: dict, log_dir: str, **extra) -> tuple[object, dict, str]:
    module, args = short_args(module_name, env_id, short, log_dir, **{"save_model": True, "eval_episodes": 3, **extra})
    result = module.train(args)
    return module, result, os.path.join(result["run_dir"], f"{module_name}.pt")


def assert_same_weights(modules: dict, checkpoint: dict) -> None:
    for name, module in modules.items():
        saved = checkpoint[name]
        assert saved.keys() == module.state_dict().keys()
        assert all(torch.equal(module.state_dict()[key].cpu(), saved[key]) for key in saved), name


@pytest.mark.parametrize("module_name, env_id, short", RUNS)
def test_a_loaded_model_evaluates_exactly_as_at_the_end_of_its_training(module_name, env_id, short, tmp_path):
    module, trained, path = train_and_save(module_name, env_id, short, str(tmp_path / "train"))
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["script"] == f"{module_name}.py" and checkpoint["optimizers"], sorted(checkpoint)
    again = module.train(
        module.Args(env_id=env_id, load_model=path, total_timesteps=0, eval_episodes=3, log_dir=str(tmp_path / "again"))
    )
    assert again["eval_returns"] == trained["eval_returns"]
    assert_same_weights({name: again[name] for name in NETWORKS if name in again}, checkpoint)
    assert again["episodic_returns"] == []  # it only evaluated: no training episode


@pytest.mark.parametrize("module_name", ["trpo", "natural_gradient"])
def test_the_observation_normaliser_travels_with_the_model(module_name, tmp_path):
    short = {"total_timesteps": 1024, "num_envs": 2, "num_steps": 64}
    module, trained, path = train_and_save(
        module_name, "Pendulum-v1", short, str(tmp_path), normalize_observations=True
    )
    assert float(trained["policy"].normalizer.count) > 1000  # statistics were gathered, and are not the defaults
    args = module.Args(env_id="Pendulum-v1", load_model=path, total_timesteps=0, eval_episodes=3, log_dir=str(tmp_path))
    args.normalize_observations = False
    with pytest.raises(ValueError, match="--normalize-observations True, not False"):
        module.train(args)
    again = module.train(module.Args(**{**args.__dict__, "normalize_observations": True}))
    assert again["eval_returns"] == trained["eval_returns"]
    assert torch.equal(again["policy"].normalizer.mean, trained["policy"].normalizer.mean)


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_training_on_starts_from_the_loaded_weights_and_optimiser_state(
    module_name, env_id, short, tmp_path, monkeypatch
):
    # (without observation normalisation: its statistics, and the weights that keep π's function, move before the
    # first update, so the weights there are not the checkpoint's)
    plain = {"normalize_observations": False} if module_name in ("trpo", "natural_gradient") else {}
    module, _, path = train_and_save(module_name, env_id, short, str(tmp_path / "first"), **plain)
    checkpoint = torch.load(path, weights_only=True)
    name, networks_of = UPDATES[module_name]
    first_update, update = [], getattr(module, name)

    def watched(*args, **kwargs):
        if not first_update:
            first_update.append({key: copy.deepcopy(net.state_dict()) for key, net in networks_of(args).items()})
        return update(*args, **kwargs)

    restored = []
    restore = plumbing.Run.restore

    def watched_restore(run, file, networks, optimizers):
        restore(run, file, networks, optimizers)
        restored.append({key: copy.deepcopy(optimizer.state_dict()) for key, optimizer in optimizers.items()})

    monkeypatch.setattr(module, name, watched)
    monkeypatch.setattr(plumbing.Run, "restore", watched_restore)
    module, args = short_args(module_name, env_id, short, str(tmp_path / "on"), load_model=path, **plain)
    module.train(args)
    assert first_update, f"{name} was never called"
    for key, state in first_update[0].items():
        assert all(torch.equal(state[k].cpu(), checkpoint[key][k]) for k in checkpoint[key]), key
    assert restored[0].keys() == checkpoint["optimizers"].keys()
    for key, state in restored[0].items():  # the optimiser's moments and step counts, exactly as saved
        saved = checkpoint["optimizers"][key]["state"]
        assert state["state"].keys() == saved.keys() and saved
        assert all(torch.equal(state["state"][i][k].cpu(), saved[i][k]) for i in saved for k in saved[i])


def refusals(module_name: str, env_id: str, path: str, tmp_path: Path) -> list[tuple[dict, str]]:
    """(Args overrides, a phrase of the sentence) for each file or setting --load-model must refuse."""
    checkpoint = torch.load(path, weights_only=True)
    other_script = tmp_path / "other.pt"
    torch.save(checkpoint | {"script": "someone_else.py"}, other_script)
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("not a model")
    return [
        ({"load_model": str(other_script)}, "was written by someone_else.py, not by"),
        ({"env_id": OTHER_SPACES[env_id]}, f"was trained on {env_id} (observations"),
        ({"hidden_sizes": (7,)}, "holds networks built with --hidden-sizes (64, 64), not (7,)"),
        ({"load_model": str(not_a_model)}, "is not a model this script can use"),
        ({"load_model": str(tmp_path / "missing.pt")}, "--load-model must name a file --save-model wrote"),
        ({"eval_episodes": 0}, "--eval-episodes must be positive when --total-timesteps 0 only evaluates"),
        ({"total_timesteps": -1}, "--total-timesteps must be"),
    ]


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_a_model_that_does_not_fit_the_run_is_refused_before_anything_is_written(module_name, env_id, short, tmp_path):
    module, _, path = train_and_save(module_name, env_id, short, str(tmp_path / "first"))
    log_dir = tmp_path / "refused"
    for overrides, phrase in refusals(module_name, env_id, path, tmp_path):
        args = {"env_id": env_id, "load_model": path, "total_timesteps": 0, "log_dir": str(log_dir), **overrides}
        with pytest.raises(ValueError) as error:
            module.train(module.Args(**args))
        message = str(error.value)
        assert phrase in message and message.startswith(f"{module_name}.py") and "\n" not in message, message
        assert not log_dir.exists()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, str]:
    """A model file --save-model wrote, for every script: each one's shortest run."""
    paths = {}
    for module_name, env_id, short in FIRST_RUNS:
        log_dir = str(tmp_path_factory.mktemp(module_name))
        paths[module_name] = train_and_save(module_name, env_id, short, log_dir, eval_episodes=0)[2]
    return paths


@pytest.mark.parametrize("reader, env_id, short", FIRST_RUNS)
def test_a_file_another_script_saved_is_refused_in_one_sentence_for_every_pair(
    reader, env_id, short, saved_models, tmp_path
):
    module = importlib.import_module(reader)
    for writer, path in saved_models.items():
        if writer == reader:
            continue
        for budget in (0, short["total_timesteps"]):  # only evaluate it, or train on from it
            settings = {**short, "env_id": env_id, "load_model": path, "total_timesteps": budget}
            args = module.Args(**settings, log_dir=str(tmp_path / "no"))
            with pytest.raises(plumbing.UsageError) as error:
                module.train(args)
            assert (
                str(error.value) == f"{reader}.py: --load-model {path} was written by {writer}.py, not by {reader}.py."
            )
            assert not (tmp_path / "no").exists()


def test_without_load_model_a_zero_budget_is_still_refused(log_dir):
    dqn = importlib.import_module("dqn")
    with pytest.raises(ValueError, match="--total-timesteps must be positive, got 0"):
        dqn.train(dqn.Args(total_timesteps=0, log_dir=log_dir))


def frames(path: Path) -> int:
    with imageio.get_reader(path) as reader:
        return sum(1 for _ in reader)


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)  # (each script hands evaluate() the directory)
def test_capture_video_records_every_evaluation_episode(module_name, env_id, short, log_dir):
    module, args = short_args(module_name, env_id, short, log_dir, capture_video=True)
    result = module.train(args)
    videos = sorted(Path(result["run_dir"], "videos").glob("*.mp4"))
    assert [video.name for video in videos] == [f"rl-video-episode-{i}.mp4" for i in range(args.eval_episodes)]
    # One frame at the reset and one after each step; moviepy's writer drops the last one at some lengths (a float
    # rounding of the clip's duration: 18 of the lengths 2..39 at 30 and 50 frames per second, measured).
    lengths = [int(r) if env_id == "CartPole-v1" else 200 for r in result["eval_returns"]]  # CartPole: 1 per step
    for video, length in zip(videos, lengths, strict=True):
        assert frames(video) in (length, length + 1), (video, length)


def test_the_saved_args_and_architecture_are_plain_json(tmp_path):
    """What --load-model compares is stored as plain types: a file written today reads back without this code."""
    _, _, path = train_and_save("dqn", "CartPole-v1", SCRIPTS[0][3], str(tmp_path))
    json.dumps(torch.load(path, weights_only=True)["args"])
