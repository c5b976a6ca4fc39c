"""The shared matrix (CONVENTIONS.md §7): every script, every env kind it supports, a short run each.

Adding a script is one row in SCRIPTS. Each row names the module, the envs it must run on, the env of
an action space it must refuse, and the Args overrides that keep a run to a second or two.
"""

import plumbing

import ast
import contextlib
import dataclasses
import importlib
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import BOX_ACTIONS, cli_in_process
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parent.parent

BOTH_KINDS = ("CartPole-v1", "Pendulum-v1")  # a Discrete and a Box action space
SHORT_ROLLOUTS = {"total_timesteps": 512, "num_envs": 2, "num_steps": 64}
SCRIPTS = [
    # module, envs it runs on, an env it must refuse, overrides for a short run
    ("dqn", ("CartPole-v1",), "Pendulum-v1", {"total_timesteps": 600, "learning_starts": 200, "batch_size": 32}),
    ("fitted_q", ("CartPole-v1",), "Pendulum-v1", {"total_timesteps": 600, "learning_starts": 200, "batch_size": 32}),
    ("ddpg", ("Pendulum-v1",), "CartPole-v1", {"total_timesteps": 400, "learning_starts": 200, "batch_size": 32}),
    # No registered Gymnasium env has an action space the policy-gradient scripts refuse; each test file checks one.
    ("reinforce", BOTH_KINDS, None, {"total_timesteps": 600, "steps_per_update": 200, "num_envs": 2}),
    ("trpo", BOTH_KINDS, None, SHORT_ROLLOUTS),
    ("natural_gradient", BOTH_KINDS, None, SHORT_ROLLOUTS | {"total_timesteps": 640}),  # + its warm-up rollout (128)
]
POLICY_GRADIENT_RUNS = [(module, short) for module, env_ids, _, short in SCRIPTS if env_ids == BOTH_KINDS]
RUNS = [(module, env_id, short) for module, env_ids, _, short in SCRIPTS for env_id in env_ids]
FIRST_RUNS = [(module, env_ids[0], short) for module, env_ids, _, short in SCRIPTS]  # one env per script
SHARED_FIELDS = (
    "exp_name env_id seed total_timesteps gamma learning_rate device torch_deterministic "
    "log_dir save_model eval_episodes torch_threads"
).split()


def short_args(module_name: str, env_id: str, short: dict, log_dir: str, **extra):
    module = importlib.import_module(module_name)
    return module, module.Args(**{"env_id": env_id, "log_dir": log_dir, "eval_episodes": 2, **short, **extra})


def check_modules(result: dict, env_id: str) -> None:
    """Each returned network maps a batch of observations as CONVENTIONS.md §2 says."""
    env = gym.wrappers.FlattenObservation(gym.make(env_id))
    obs_batch = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(5)]), dtype=torch.float32)
    space = env.action_space
    with torch.no_grad():
        if "q_network" in result:
            assert result["q_network"](obs_batch).shape == (5, space.n)
        if "actor" in result:
            actions = result["actor"](obs_batch)
            assert actions.shape == (5, *space.shape)
            assert torch.all(actions >= torch.as_tensor(space.low)) and torch.all(
                actions <= torch.as_tensor(space.high)
            )
            assert result["critic"](obs_batch, actions).shape in ((5,), (5, 1))
        if "policy" in result:
            distribution = result["policy"](obs_batch)
            assert isinstance(distribution, torch.distributions.Distribution)
            assert distribution.log_prob(distribution.sample()).shape == (5,)
        if "value" in result:
            assert result["value"](obs_batch).shape in ((5,), (5, 1))


@pytest.mark.parametrize("module_name, env_id, short", RUNS)
def test_train_returns_the_contract_dict(module_name, env_id, short, log_dir):
    module, args = short_args(module_name, env_id, short, log_dir)
    result = module.train(args)
    assert len(result["episodic_returns"]) > 0
    assert all(isinstance(r, float) for r in result["episodic_returns"])
    assert len(result["eval_returns"]) == 2 and all(isinstance(r, float) for r in result["eval_returns"])
    assert isinstance(result["sps"], float) and result["sps"] > 0
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == Path(log_dir)
    assert run_dir.name.startswith(f"{env_id}__{module_name}__{args.seed}__")
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
    # episode_end_steps is the x of every charts/episodic_return point, episodic_returns its y
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    logged = events.Scalars("charts/episodic_return")
    assert result["episode_end_steps"] == [point.step for point in logged]
    assert result["episodic_returns"] == pytest.approx([point.value for point in logged], rel=1e-6)
    assert all(isinstance(step, int) and 0 <= step <= args.total_timesteps for step in result["episode_end_steps"])
    assert result["episode_end_steps"] == sorted(result["episode_end_steps"])
    check_modules(result, env_id)


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_eval_episodes_zero_turns_evaluation_off(module_name, env_id, short, log_dir):
    module, args = short_args(module_name, env_id, short, log_dir)
    result = module.train(dataclasses.replace(args, eval_episodes=0))
    assert result["eval_returns"] == []


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_save_model_writes_a_weights_only_checkpoint(module_name, env_id, short, log_dir):
    module, args = short_args(module_name, env_id, short, log_dir, save_model=True, eval_episodes=0)
    result = module.train(args)
    checkpoint = torch.load(Path(result["run_dir"]) / f"{module_name}.pt", weights_only=True)
    assert checkpoint["args"] == dataclasses.asdict(args)
    for name in ("q_network", "actor", "critic", "policy", "value"):
        if name in result:
            result[name].load_state_dict(checkpoint[name])


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_same_seed_gives_the_same_run_twice_on_cpu(module_name, env_id, short, log_dir):
    module, args = short_args(module_name, env_id, short, log_dir, device="cpu")
    first, second = module.train(args), module.train(args)
    assert first["episodic_returns"] == second["episodic_returns"]
    assert first["eval_returns"] == second["eval_returns"]
    for name in ("q_network", "actor", "critic", "policy", "value"):
        if name in first:
            for p, q in zip(first[name].parameters(), second[name].parameters(), strict=True):
                assert torch.equal(p, q), f"{name} differs between two runs of the same seed"
    other = module.train(dataclasses.replace(args, seed=args.seed + 1))
    assert (other["episodic_returns"], other["eval_returns"]) != (first["episodic_returns"], first["eval_returns"])


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_evaluation_start_states_repeat_for_a_seed_and_are_shared_by_no_two_seeds(module_name, env_id, short, log_dir):
    # tests/*RandomStart-v0 pays its start state u ~ U(0, 1) in a one-step episode: eval returns are start states.
    random_start = "tests/RandomStart-v0" if env_id == "CartPole-v1" else "tests/BoxRandomStart-v0"

    def starts(seed: int) -> list[float]:
        module, args = short_args(module_name, random_start, short, log_dir, seed=seed, eval_episodes=10)
        return module.train(args)["eval_returns"]

    first = starts(1)
    assert starts(1) == first and len(set(first)) == 10, "a seed meets the same ten distinct start states every run"
    assert set(starts(2)).isdisjoint(first), "two seeds share no start state"
    # The contract (CONVENTIONS.md §1): reset(seed=seed + 10_000) once, then the env's own stream.
    env = gym.make(random_start)
    expected = [float(env.reset(seed=10_001)[0][0])] + [float(env.reset()[0][0]) for _ in range(9)]
    assert first == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
@pytest.mark.parametrize("raises", [False, True])
def test_train_leaves_the_callers_threads_generators_and_determinism_as_it_found_them(
    module_name, env_id, short, log_dir, raises, monkeypatch, caller_state
):
    module, args = short_args(module_name, env_id, short, log_dir, eval_episodes=1)
    evaluate, inside_the_run = module.evaluate, []

    def recording_evaluate(*args, **kwargs):  # evaluation runs inside the run's settings
        inside_the_run.append((torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()))
        if raises:  # a failure there must restore the caller's settings too
            raise RuntimeError("evaluation failed")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(module, "evaluate", recording_evaluate)
    with pytest.raises(RuntimeError, match="evaluation failed") if raises else contextlib.nullcontext():
        module.train(args)
    assert inside_the_run == [(1, True)], "torch_threads=1 and torch_deterministic held during the run"
    assert caller_state(), "the caller's generators, threads and determinism are as they were"


def network_whose_greedy_action_is_known(module, env_id: str) -> torch.nn.Module:
    """The script's network for tests/*ActionReward-v0 (2-d observations), every weight 0 and the last bias set so that
    its greedy (or deterministic) action is action 1, or the middle of the Box bounds, whatever the observation."""
    torch.manual_seed(0)
    normalizer = () if not hasattr(module, "ObservationNormalizer") else (torch.nn.Identity(),)
    if hasattr(module, "QNetwork"):
        network = module.QNetwork(2, 2, (4,))
    elif hasattr(module, "Actor"):
        network = module.Actor(2, 2, (4,), BOX_ACTIONS.low.astype(np.float64), BOX_ACTIONS.high.astype(np.float64))
    elif env_id.startswith("tests/Box"):
        network = module.GaussianPolicy(2, BOX_ACTIONS, (4,), 0.5, *normalizer)
    else:
        network = module.CategoricalPolicy(2, 2, (4,), *normalizer)
    with torch.no_grad():
        for p in network.parameters():
            p.zero_()
        last = [m for m in network.modules() if isinstance(m, torch.nn.Linear)][-1]
        if not env_id.startswith("tests/Box"):
            last.bias.copy_(torch.tensor([0.0, 1.0]))  # action 1 is greedy; softmax still gives action 0 27 %
        if hasattr(network, "log_std"):
            network.log_std.fill_(0.5)  # a wide Gaussian: sampling would cost ~2 per step
    return network


@pytest.mark.parametrize(
    "module_name, env_id",
    [(m, "tests/ActionReward-v0") for m, env_ids, *_ in SCRIPTS if "CartPole-v1" in env_ids]
    + [(m, "tests/BoxActionReward-v0") for m, env_ids, *_ in SCRIPTS if "Pendulum-v1" in env_ids],
)
def test_evaluation_is_greedy_or_deterministic_on_an_env_whose_return_depends_on_the_action(module_name, env_id):
    module = importlib.import_module(module_name)
    network = network_whose_greedy_action_is_known(module, env_id)
    returns = module.evaluate(network, env_id, 1, 5, torch.device("cpu"))
    # Greedy: action 1 every step, 50 per episode; the middle of the bounds, 0 (up to float32 rounding).
    assert returns == ([50.0] * 5 if env_id == "tests/ActionReward-v0" else pytest.approx([0.0] * 5, abs=1e-9))


@pytest.mark.parametrize(
    "module_name", [m for m, *_ in SCRIPTS if hasattr(importlib.import_module(m), "update_target_network")]
)
def test_polyak_update_follows_its_formula_and_tau_one_copies_exactly(module_name):
    update_target_network = importlib.import_module(module_name).update_target_network
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    target = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    before = [p.detach().clone() for p in target.parameters()]
    update_target_network(target, network, 0.3)  # w' ← τ w + (1 − τ) w'
    for new, old, source in zip(target.parameters(), before, network.parameters(), strict=True):
        torch.testing.assert_close(new, 0.3 * source + 0.7 * old)
    update_target_network(target, network, 1.0)  # τ = 1 is the hard copy
    for new, source in zip(target.parameters(), network.parameters(), strict=True):
        assert torch.equal(new, source)


@pytest.mark.parametrize("module_name", [m for m, *_ in SCRIPTS])
def test_args_has_the_shared_fields(module_name):
    fields = {f.name: f.default for f in dataclasses.fields(importlib.import_module(module_name).Args)}
    assert set(SHARED_FIELDS) <= set(fields)
    assert fields["exp_name"] == module_name and fields["log_dir"] == "runs" and fields["device"] == "auto"
    assert fields["save_model"] is False and fields["eval_episodes"] == 10 and fields["torch_threads"] == 1


@pytest.mark.parametrize("module_name", [m for m, *_ in SCRIPTS])
def test_help_documents_every_flag(module_name, monkeypatch, capsys):
    module = importlib.import_module(module_name)
    status, out, _ = cli_in_process(monkeypatch, capsys, module, "--help")
    assert status == 0 and module.__doc__.split("\n")[0] in out and "Examples:" in out
    for field in dataclasses.fields(module.Args):
        assert "--" + field.name.replace("_", "-") in out, f"--{field.name} missing from --help"
    # tyro shows the docstring under each field as its help text: every field needs one (the script's hyperparameters
    # in its Args, the run's settings in plumbing.RunSettings).
    for file, name in ((f"{module_name}.py", "Args"), ("plumbing.py", "RunSettings")):
        body = next(
            node.body
            for node in ast.parse((ROOT / file).read_text()).body
            if isinstance(node, ast.ClassDef) and node.name == name
        )
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                following = body[i + 1] if i + 1 < len(body) else None
                documented = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                assert documented, f"{name}.{node.target.id} has no docstring"
    fields = [field.name for field in dataclasses.fields(module.Args)]
    assert fields.index("env_id") < fields.index("exp_name"), "the hyperparameters first, then the run's settings"


def run_cli(module_name: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, f"{module_name}.py", *flags], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def as_flags(overrides: dict) -> list[str]:
    return [x for k, v in overrides.items() for x in (f"--{k.replace('_', '-')}", str(v))]


@pytest.mark.parametrize("module_name, env_id, short", FIRST_RUNS)
def test_cli_short_run_prints_progress_and_summary(module_name, env_id, short, log_dir):
    proc = run_cli(module_name, "--env-id", env_id, "--log-dir", log_dir, "--eval-episodes", "2", *as_flags(short))
    assert proc.returncode == 0, proc.stderr
    assert "SPS" in proc.stdout and "eval return" in proc.stdout
    assert len(os.listdir(log_dir)) == 1


def bad_inputs(refused_env: str | None) -> list[tuple[str, ...]]:
    cases = [("--env-id", "NoSuchEnv-v0"), ("--total-timesteps", "0")]
    if refused_env is not None:
        cases.append(("--env-id", refused_env))
    if not torch.cuda.is_available():
        cases.append(("--device", "cuda"))
    return cases


# Through plumbing.cli, in process (test_plumbing.py runs one refusal as a real process, and the other kinds once).
@pytest.mark.parametrize(
    "module_name, flags", [(m, ("--env-id", refused or "tests/MultiDiscrete-v0")) for m, _, refused, _ in SCRIPTS]
)
def test_bad_input_is_one_sentence_on_stderr_with_exit_status_2(module_name, flags, log_dir, monkeypatch, capsys):
    module = importlib.import_module(module_name)
    status, _, err = cli_in_process(monkeypatch, capsys, module, "--log-dir", log_dir, *flags)
    assert status == 2 and "Traceback" not in err
    message = err.strip()
    assert message.startswith(f"{module_name}.py") and "\n" not in message and message.endswith(".")
    assert not os.path.exists(log_dir), "nothing is written before the input is checked"


@pytest.mark.parametrize(
    "module_name, flags", [(m, flags) for m, _, refused, _ in SCRIPTS for flags in bad_inputs(refused)]
)
def test_bad_input_raises_value_error_in_process(module_name, flags, log_dir):
    module = importlib.import_module(module_name)
    overrides = {flags[0].removeprefix("--").replace("-", "_"): flags[1]}
    if overrides.keys() == {"total_timesteps"}:
        overrides["total_timesteps"] = int(overrides["total_timesteps"])
    with pytest.raises(ValueError, match=rf"^{module_name}\.py"):
        module.train(module.Args(log_dir=log_dir, **overrides))
    assert not os.path.exists(log_dir)


@pytest.mark.parametrize("module_name, short", POLICY_GRADIENT_RUNS)
def test_gamma_defaults_to_a_pendulum_value_there_and_0_99_on_every_other_env(module_name, short):
    module = importlib.import_module(module_name)
    assert module.Args().gamma is None
    assert module.default_gamma("Pendulum-v1") == (
        0.9 if module_name == "reinforce" else 0.95
    )  # trpo.py, npg: searches
    assert module.default_gamma("CartPole-v1") == module.default_gamma("HalfCheetah-v5") == 0.99
    assert module.default_gamma("MountainCarContinuous-v0") == 0.99  # a Box env gets no Pendulum default


@pytest.mark.parametrize("module_name, short", POLICY_GRADIENT_RUNS)
def test_shifted_discrete_actions_reach_the_env_in_its_own_range(module_name, short, log_dir):
    # tests/ShiftedActions-v0 is Discrete(3, start=-1) and raises on anything but -1, 0, 1.
    module, args = short_args(module_name, "tests/ShiftedActions-v0", short, log_dir)
    result = module.train(args)
    assert len(result["episodic_returns"]) > 0 and result["eval_returns"] == [20.0, 20.0]


@pytest.mark.parametrize("module_name, short", POLICY_GRADIENT_RUNS)
def test_an_env_without_a_time_limit_trains_to_its_budget_and_evaluates_capped(module_name, short, log_dir):
    module, args = short_args(module_name, "tests/Endless-v0", short, log_dir, eval_episodes=1)
    if module_name == "reinforce":  # learns from whole episodes only: with none, the run is refused, its logs removed
        with pytest.raises(ValueError, match=r"no episode of tests/Endless-v0 ended within --total-timesteps 600"):
            module.train(args)
        assert not os.path.exists(log_dir), "nothing is left of a run refused for its budget"
        return
    result = module.train(args)
    assert result["episodic_returns"] == []  # no episode ever ended
    assert result["eval_returns"] == [float(plumbing.EVAL_STEP_LIMIT)]


@pytest.mark.parametrize(
    "module_name", [row[0] for row in SCRIPTS if hasattr(importlib.import_module(row[0]), "CategoricalPolicy")]
)
def test_policy_sample_draws_actions_with_the_policys_probabilities(module_name):
    """The rollouts' fast sampler (Gumbel-max for Categorical) against softmax(logits), 4.5 standard errors."""
    module = importlib.import_module(module_name)
    normalizer = () if module_name == "reinforce" else (torch.nn.Identity(),)
    torch.manual_seed(0)
    policy = module.CategoricalPolicy(3, 4, (5,), *normalizer)
    with torch.no_grad():
        policy.logits[-1].weight.normal_(std=2.0)  # far from uniform
        obs = torch.randn(2, 3)
        probabilities = torch.softmax(policy.logits(obs), dim=-1)  # [2, 4]
        draws = 40_000
        actions = policy.sample(obs.repeat(draws, 1)).view(draws, 2)
    for row in range(2):
        frequencies = torch.bincount(actions[:, row], minlength=4) / draws
        standard_error = (probabilities[row] * (1 - probabilities[row]) / draws).sqrt()
        assert ((frequencies - probabilities[row]).abs() <= 4.5 * standard_error + 1e-6).all()
    gaussian = module.GaussianPolicy(3, BOX_ACTIONS, (5,), -0.5, *normalizer)
    with torch.no_grad():
        distribution, samples = gaussian(obs), gaussian.sample(obs.repeat(draws, 1)).view(draws, 2, 2)
    standard_error = distribution.stddev / draws**0.5
    assert ((samples.mean(0) - distribution.mean).abs() <= 4.5 * standard_error).all()
