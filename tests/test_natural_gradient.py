"""natural_gradient.py's Fisher estimates and step against explicit matrices, its invariance, and learning."""

import ast

import numpy as np
import pytest
import torch
from conftest import (
    assert_logs_were_flushed,
    assert_refused_before_any_work,
    batch_for,
    explicit_kl_hessian,
    flat_params,
    small_policy,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.func import functional_call

import natural_gradient as npg
import trpo

# The algorithm's settings these tests were written with: the defaults before the 2026-12-08 search (its larger δ
# shows learning within a few updates, and raw observations reach the HugeReward env's first batch).
WRITTEN_WITH = {"max_kl": 0.05, "gae_lambda": 0.95, "learning_rate": 3e-3, "value_epochs": 10, "cg_damping": 0.1}
WRITTEN_WITH |= {"init_log_std": -0.5, "normalize_observations": False}


def short_args(log_dir: str, **overrides) -> npg.Args:
    """Args for a run of a second or so: two environments, 16-step rollouts, two evaluation episodes (WRITTEN_WITH)."""
    defaults = {"total_timesteps": 256, "num_envs": 2, "num_steps": 16, "eval_episodes": 2, "value_batch_size": 16}
    return npg.Args(**(WRITTEN_WITH | defaults | {"log_dir": log_dir} | overrides))


def explicit_empirical_fisher(policy: npg.Policy, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """1/n Σ s sᵀ with each score vector s from its own backward pass (no torch.func)."""
    scores = []
    for state, action in zip(obs, actions, strict=True):
        log_prob = policy(state.unsqueeze(0)).log_prob(action.unsqueeze(0)).sum()
        scores.append(torch.cat([g.flatten() for g in torch.autograd.grad(log_prob, list(policy.parameters()))]))
    scores = torch.stack(scores)
    return scores.T @ scores / len(scores)


def policy_gradient(policy: npg.Policy, obs: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor):
    """g = 1/n Σ ∇ log π(a|s) Â: the surrogate's gradient at θ, written the REINFORCE way."""
    loss = (policy(obs).log_prob(actions) * advantages).mean()
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(policy.parameters()))])


# natural_gradient.py and trpo.py must not drift apart: every top-level definition in both files is the same, letter
# for letter, except these, which differ on purpose.
DIFFER_ON_PURPOSE = {
    "Args": "the settings of each algorithm (the line search's here, --fisher and --vanilla there)",
    "rules": "the rules of those settings",
    "train": "the update each calls (trpo_update with its line search; natural_gradient_update without one)",
}


def top_level_definitions(path: str) -> dict[str, str]:
    """Each top-level function, class and assigned name of a file, with its source text."""
    source = open(path).read()
    definitions = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            definitions[node.name] = ast.get_source_segment(source, node)
        elif isinstance(node, ast.Assign):
            definitions |= {t.id: ast.get_source_segment(source, node) for t in node.targets if isinstance(t, ast.Name)}
    return definitions


def test_every_definition_in_both_files_is_the_same_but_the_ones_named_to_differ():
    trpo_definitions, npg_definitions = top_level_definitions(trpo.__file__), top_level_definitions(npg.__file__)
    shared = trpo_definitions.keys() & npg_definitions.keys()
    differ = {name for name in shared if trpo_definitions[name] != npg_definitions[name]}
    assert differ == set(DIFFER_ON_PURPOSE)
    assert {"conjugate_gradient", "fisher_vector_product", "collect_rollout", "evaluate"} <= shared - differ


# --------------------------------------------------------------------------------- F⁻¹ g
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("fisher", ["kl-hessian", "empirical"])
def test_conjugate_gradient_on_fisher_vector_products_matches_the_explicit_solve(kind, fisher):
    policy = small_policy(npg, kind)
    obs, actions, advantages = batch_for(policy)
    if fisher == "kl-hessian":
        matrix = explicit_kl_hessian(policy, obs)
        product = npg.fisher_vector_product(policy, obs)
    else:
        matrix = explicit_empirical_fisher(policy, obs, actions)
        product = npg.empirical_fisher_vector_product(policy, obs, actions)
    g = policy_gradient(policy, obs, actions, advantages)
    x = npg.conjugate_gradient(product, g, iters=200, damping=0.1)
    expected = torch.linalg.solve(matrix + 0.1 * torch.eye(len(g)), g)
    torch.testing.assert_close(x, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_kl_hessian_and_empirical_fisher_agree_in_expectation(kind):
    # Actions drawn from π_θ: E[s sᵀ] is the Fisher matrix, which is also the KL Hessian. With 20k samples the
    # Monte-Carlo error of each entry is ~1/√20000 ≈ 0.7 % of its scale; 5 % of the matrix norm leaves margin.
    policy = small_policy(npg, kind)
    states = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    obs = states.repeat(2500, 1)  # 20k rows over 8 states, so the KL Hessian is the same 8 states' average
    torch.manual_seed(3)
    with torch.no_grad():
        actions = policy(obs).sample()
    kl_hessian = explicit_kl_hessian(policy, states)
    product = npg.empirical_fisher_vector_product(policy, obs, actions)
    empirical = torch.stack([product(e) for e in torch.eye(len(kl_hessian))], dim=1)
    assert torch.linalg.norm(empirical - kl_hessian) <= 0.05 * torch.linalg.norm(kl_hessian)


# ----------------------------------------------------------------------------------- the step
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("vanilla", [False, True])
def test_the_step_has_an_undamped_quadratic_kl_model_of_max_kl_and_a_small_one_a_measured_kl_close_to_it(kind, vanilla):
    # Damping 0.1 (the default) conditions the solve only: the step is sized by the explicit, undamped F.
    policy = small_policy(npg, kind)
    obs, actions, advantages = batch_for(policy, n=256)
    fisher = explicit_kl_hessian(policy, obs)
    with torch.no_grad():
        old = policy(obs)
    before = flat_params(policy)
    logged = npg.natural_gradient_update(policy, obs, actions, advantages, npg.Args(max_kl=1e-4, vanilla=vanilla))
    step = flat_params(policy) - before
    assert float(0.5 * step @ fisher @ step) == pytest.approx(1e-4, rel=1e-3)
    assert logged["policy/quadratic_kl"] == pytest.approx(1e-4, rel=1e-3)
    with torch.no_grad():
        kl = float(torch.distributions.kl_divergence(old, policy(obs)).mean())
    # For a small step the real KL is its quadratic model, up to third-order terms.
    assert kl == pytest.approx(1e-4, rel=0.02)
    assert logged["policy/kl"] == pytest.approx(kl, rel=1e-5)
    g = policy_gradient(small_policy(npg, kind), obs, actions, advantages)  # at the parameters before the step
    if vanilla:
        torch.testing.assert_close(step / step.norm(), g / g.norm(), rtol=1e-4, atol=1e-5)  # only the length differs


def test_zero_advantages_take_no_step_and_leave_no_nan():
    policy = small_policy(npg, "gaussian")
    obs, actions, _ = batch_for(policy)
    before = flat_params(policy)
    logged = npg.natural_gradient_update(policy, obs, actions, torch.zeros(len(obs)), npg.Args(max_kl=0.01))
    assert torch.equal(flat_params(policy), before) and all(np.isfinite(list(logged.values())))


class Reparameterised(torch.nn.Module):
    """The same policy with θ = A φ: φ is the only parameter, A a fixed invertible matrix."""

    def __init__(self, policy: npg.Policy, a: torch.Tensor) -> None:
        super().__init__()
        self.policy, self.a = policy, a
        self.names = [name for name, _ in policy.named_parameters()]
        self.shapes = [p.shape for p in policy.parameters()]
        for p in policy.parameters():
            p.requires_grad_(False)  # only φ is a parameter of this module
        self.phi = torch.nn.Parameter(torch.linalg.solve(a, flat_params(policy)))

    def theta(self) -> torch.Tensor:
        return self.a @ self.phi

    def forward(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        pieces = torch.split(self.theta(), [s.numel() for s in self.shapes])
        params = {n: piece.reshape(s) for n, piece, s in zip(self.names, pieces, self.shapes, strict=True)}
        return functional_call(self.policy, params, (obs,))


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_the_natural_step_does_not_depend_on_the_parameterisation_and_the_vanilla_step_does(kind):
    obs, actions, advantages = batch_for(small_policy(npg, kind, hidden_sizes=()), n=256)
    n_params = len(flat_params(small_policy(npg, kind, hidden_sizes=())))
    a = torch.eye(n_params) + 0.5 * torch.randn(n_params, n_params, generator=torch.Generator().manual_seed(4))

    def change_of_distribution(vanilla: bool, reparameterise: bool) -> torch.Tensor:
        policy = small_policy(npg, kind, hidden_sizes=())
        module = Reparameterised(policy, a) if reparameterise else policy
        with torch.no_grad():
            before = module(obs).log_prob(actions)
        npg.natural_gradient_update(
            module, obs, actions, advantages, npg.Args(max_kl=1e-4, cg_iters=200, cg_damping=1e-6, vanilla=vanilla)
        )
        with torch.no_grad():
            return module(obs).log_prob(actions) - before  # how the step moved each log π(a|s)

    natural_theta, natural_phi = change_of_distribution(False, False), change_of_distribution(False, True)
    vanilla_theta, vanilla_phi = change_of_distribution(True, False), change_of_distribution(True, True)
    assert torch.linalg.norm(natural_phi - natural_theta) <= 0.05 * torch.linalg.norm(natural_theta)
    assert torch.linalg.norm(vanilla_phi - vanilla_theta) >= 0.3 * torch.linalg.norm(vanilla_theta)


# ---------------------------------------------------------------------------------------- runs
@pytest.mark.parametrize("fisher", ["kl-hessian", "empirical"])
@pytest.mark.parametrize("env_id", ["tests/ActionReward-v0", "tests/BoxActionReward-v0"])
def test_both_fisher_estimates_learn_on_discrete_and_asymmetric_box_actions(fisher, env_id, log_dir):
    # The reward depends on the action alone (conftest.ActionRewardEnv): 1 for action 1, or −‖a − middle‖².
    # Learning shows as the returns rising and π moving toward that action: P(action 1) up from 0.5, or the
    # Gaussian narrowing around the middle of the asymmetric bounds (log σ down from 0.5).
    args = short_args(
        log_dir, env_id=env_id, fisher=fisher, total_timesteps=512, num_steps=64, init_log_std=0.5, max_kl=0.05
    )
    result = npg.train(args)
    returns = result["episodic_returns"]
    assert np.mean(returns[-3:]) > np.mean(returns[:3]) + 10
    with torch.no_grad():
        distribution = result["policy"](torch.tensor([[0.5, -0.5]]))
    if env_id == "tests/ActionReward-v0":
        assert float(distribution.probs[0, 1]) > 0.65
    else:
        assert float(result["policy"].log_std.mean()) < 0.35


def test_a_nan_loss_stops_the_run_with_the_step_after_flushing_the_logs(log_dir):
    args = short_args(log_dir, env_id="tests/HugeReward-v0", eval_episodes=0, normalize_advantages=False)
    with pytest.raises(
        FloatingPointError, match=r"natural_gradient\.py: non-finite numbers appeared between step 1 and step 32 "
    ):
        npg.train(args)
    assert_logs_were_flushed(log_dir)


@pytest.mark.parametrize(
    "overrides, phrase",
    [
        ({"env_id": "tests/MultiDiscrete-v0"}, "needs a Discrete or a one-dimensional Box action space"),
        ({"fisher": "diagonal"}, "--fisher must be one of 'kl-hessian', 'empirical'"),
        ({"num_envs": 0}, "--num-envs must be positive, got 0"),
        ({"max_kl": -1.0}, "--max-kl must be positive"),
        ({"cg_damping": -0.1}, "--cg-damping must lie in [0, 1000]"),
        (
            {"vanilla": True, "cg_iters": 20},
            "--vanilla must go without --cg-iters and --cg-damping, whose solve it skips",
        ),
        (
            {"vanilla": True, "cg_damping": 0.01},
            "--vanilla must go without --cg-iters and --cg-damping, whose solve it skips",
        ),
    ],
)
def test_bad_settings_are_refused_before_any_work(overrides, phrase, log_dir):
    assert_refused_before_any_work(npg, log_dir, overrides, phrase)


@pytest.mark.slow
def test_default_settings_solve_cartpole(log_dir):
    result = npg.train(npg.Args(log_dir=log_dir))
    assert np.mean(result["eval_returns"]) >= 475


def test_a_step_whose_measured_kl_is_far_above_max_kl_is_halved_until_it_is_not(monkeypatch):
    # A step a thousand times too long (as the undamped curvature of a near-deterministic policy can size one) makes
    # the measured KL far above δ: the update halves it until the KL is within KL_GUARD · δ, and logs the fraction.
    policy = small_policy(npg, "categorical")
    obs, actions, advantages = batch_for(policy)
    trust_region_step = npg.trust_region_step
    monkeypatch.setattr(npg, "trust_region_step", lambda *args: 1000 * trust_region_step(*args))
    logged = npg.natural_gradient_update(policy, obs, actions, advantages, npg.Args(max_kl=0.01))
    assert 0 < logged["policy/step_fraction"] < 1 and logged["policy/step_fraction"] * 2**10 == int(
        logged["policy/step_fraction"] * 2**10
    )
    assert 0 < logged["policy/kl"] <= npg.KL_GUARD * 0.01 and torch.isfinite(flat_params(policy)).all()
    monkeypatch.undo()  # the KL-sized step itself is taken whole
    policy = small_policy(npg, "categorical")
    assert npg.natural_gradient_update(policy, obs, actions, advantages, npg.Args())["policy/step_fraction"] == 1.0


def test_a_batch_with_no_signal_does_not_end_the_run_mountain_car_seed_2(log_dir):
    # Every return is −200 on MountainCar-v0: the normalised advantages are noise, the policy drifts toward a
    # deterministic one, and at ~96k steps a KL-sized step once gave an action probability 0 (KL = inf, the run
    # stopped with a FloatingPointError). Now that step is shortened, and the run ends with its evaluation.
    result = npg.train(npg.Args(env_id="MountainCar-v0", seed=2, eval_episodes=1, log_dir=log_dir, **WRITTEN_WITH))
    assert result["eval_returns"] == [-200.0] and torch.isfinite(flat_params(result["policy"])).all()
    events = EventAccumulator(result["run_dir"], size_guidance={"scalars": 0})
    events.Reload()
    assert min(point.value for point in events.Scalars("policy/step_fraction")) < 1
