"""reinforce.py's math against hand computations and closed forms, its episodes and bounds, and learning."""

import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import assert_logs_were_flushed, assert_refused_before_any_work

import reinforce

GAMMA = 0.9
LOW, HIGH = np.array([-1.0, 0.5], np.float32), np.array([3.0, 2.0], np.float32)  # tests/Box*-v0's bounds
BOX = gym.spaces.Box(LOW, HIGH, dtype=np.float32)


def short_args(log_dir: str, **overrides) -> reinforce.Args:
    """Args for a run of a second or so: two environments, small updates, two evaluation episodes."""
    defaults = {"total_timesteps": 300, "steps_per_update": 40, "num_envs": 2, "eval_episodes": 2}
    return reinforce.Args(**(defaults | {"log_dir": log_dir} | overrides))


def make_envs(env_id: str, n: int, seed: int = 0) -> list:
    envs = [reinforce.make_env(env_id) for _ in range(n)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    return envs


# ---------------------------------------------------------------------------------- reward-to-go
def test_reward_to_go_matches_a_hand_computation_over_episodes_of_different_lengths():
    # Three episodes of lengths 3, 1 and 4; the last one truncated, bootstrapping from V(S_T) = 10.
    assert reinforce.reward_to_go(np.array([1.0, 2.0, 3.0]), GAMMA).tolist() == pytest.approx(
        [1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3]
    )
    assert reinforce.reward_to_go(np.array([-4.0]), GAMMA).tolist() == pytest.approx([-4.0])
    assert reinforce.reward_to_go(np.array([0.0, 1.0, 0.0, 2.0]), GAMMA, bootstrap=10.0).tolist() == pytest.approx(
        [0.9 * 1 + 0.729 * 2 + 0.6561 * 10, 1 + 0.81 * 2 + 0.729 * 10, 0.9 * 2 + 0.81 * 10, 2 + 0.9 * 10]
    )


def test_batch_returns_bootstrap_only_truncated_episodes_and_only_with_a_baseline():
    torch.manual_seed(0)
    value = reinforce.ValueNetwork(2, (8,))
    final_terminated, final_truncated = np.array([3.0, 0.0], np.float32), np.array([4.0, 1.0], np.float32)
    episodes = [
        reinforce.Episode(
            np.zeros((3, 2), np.float32), np.zeros(3), np.array([1, 1, 1], np.float32), True, final_terminated
        ),
        reinforce.Episode(
            np.zeros((2, 2), np.float32), np.zeros(2), np.array([1, 2], np.float32), False, final_truncated
        ),
    ]
    with torch.no_grad():
        v_final = float(value(torch.as_tensor(final_truncated).unsqueeze(0)))
    expected = [1 + 0.9 + 0.81, 1 + 0.9, 1, 1 + 0.9 * 2 + 0.81 * v_final, 2 + 0.9 * v_final]
    returns = reinforce.batch_returns(episodes, value, GAMMA, torch.device("cpu"))
    assert returns.tolist() == pytest.approx(expected, rel=1e-5)
    without_baseline = reinforce.batch_returns(episodes, None, GAMMA, torch.device("cpu"))
    assert without_baseline.tolist() == pytest.approx([1 + 0.9 + 0.81, 1 + 0.9, 1, 1 + 0.9 * 2, 2], rel=1e-6)


def test_normalised_advantages_have_mean_zero_and_std_one_and_constant_ones_become_zero():
    returns, values = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0]), torch.tensor([1.0, 1.0, 2.0, 0.0, 1.0])
    raw = reinforce.advantages(returns, values, normalize=False)
    assert raw.tolist() == [2.0, 0.0, 2.0, 1.0, 4.0]
    normalised = reinforce.advantages(returns, values, normalize=True)
    torch.testing.assert_close(normalised, (raw - raw.mean()) / raw.std())
    flat = reinforce.advantages(torch.full((4,), 7.0), None, normalize=True)
    assert torch.equal(flat, torch.zeros(4))


# ------------------------------------------------------------------- unbiasedness on a bandit
ARM_REWARDS = torch.tensor([1.0, 2.0, 5.0])


def bandit_policy() -> reinforce.CategoricalPolicy:
    torch.manual_seed(0)
    policy = reinforce.CategoricalPolicy(1, 3, (4,))
    with torch.no_grad():  # move away from the near-uniform start, so the gradient is not tiny
        policy.logits[-1].bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    return policy


def bandit_estimates(baseline: float | None, samples: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-episode REINFORCE estimates of ∇_θ J on a one-step, three-armed bandit, and the exact ∇_θ J.

    The policy is the script's CategoricalPolicy on a constant observation; an episode is one pull with
    a deterministic reward per arm, so G = r_a and, with a baseline b, Â = r_a − b.
    """
    policy = bandit_policy()
    params = list(policy.parameters())
    obs = torch.ones(1, 1)
    exact_j = (policy(obs).probs[0] * ARM_REWARDS).sum()  # J(θ) = Σ_a π_θ(a) r_a, in closed form
    exact = torch.cat([g.flatten() for g in torch.autograd.grad(exact_j, params)])

    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        actions = torch.multinomial(policy(obs).probs[0], samples, replacement=True, generator=generator)
    estimates = []
    for a in actions:
        returns = ARM_REWARDS[a].reshape(1)
        values = None if baseline is None else torch.tensor([baseline])
        advantage = reinforce.advantages(returns, values, normalize=False)
        loss, _ = reinforce.policy_gradient_loss(policy, obs, a.reshape(1), advantage, n_episodes=1)
        estimates.append(-torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))  # loss = −Ĵ
    return torch.stack(estimates), exact


def assert_mean_matches(estimates: torch.Tensor, exact: torch.Tensor) -> None:
    # Each component's sample mean is within 4.5 standard errors of its expectation: with ~25 components,
    # a wrong test failure has probability below 25 · 7e-6 (Bonferroni on a two-sided normal tail).
    standard_error = estimates.std(dim=0) / len(estimates) ** 0.5
    assert torch.all((estimates.mean(dim=0) - exact).abs() <= 4.5 * standard_error + 1e-7)


def test_reinforce_estimate_is_unbiased_for_the_closed_form_bandit_gradient():
    estimates, exact = bandit_estimates(baseline=None)
    assert exact.abs().max() > 0.01, "the test needs a non-trivial gradient"
    assert_mean_matches(estimates, exact)


def test_a_baseline_keeps_the_estimate_unbiased_and_lowers_its_variance():
    plain, exact = bandit_estimates(baseline=None)
    with torch.no_grad():
        expected_reward = float((bandit_policy()(torch.ones(1, 1)).probs[0] * ARM_REWARDS).sum())  # b = E[r]
    with_baseline, _ = bandit_estimates(baseline=expected_reward)
    assert_mean_matches(with_baseline, exact)
    assert with_baseline.var(dim=0).sum() < 0.5 * plain.var(dim=0).sum()


def test_policy_gradient_loss_is_the_sum_over_episodes_of_log_prob_times_advantage_over_n():
    torch.manual_seed(0)
    policy = reinforce.CategoricalPolicy(2, 3, (5,))
    obs, actions, advantage = torch.randn(6, 2), torch.tensor([0, 2, 1, 1, 0, 2]), torch.randn(6)
    loss, entropy = reinforce.policy_gradient_loss(policy, obs, actions, advantage, n_episodes=2)
    logits = policy.logits(obs)
    log_probs = torch.log_softmax(logits, dim=1)[torch.arange(6), actions]
    torch.testing.assert_close(loss, -(log_probs * advantage).sum() / 2)
    probs = torch.softmax(logits, dim=1)
    torch.testing.assert_close(entropy, -(probs * probs.log()).sum(dim=1).mean())


# ------------------------------------------------------------------------------ Gaussian policy
def test_gaussian_policy_is_centred_on_asymmetric_bounds_and_its_log_prob_is_the_normal_density():
    torch.manual_seed(0)
    policy = reinforce.GaussianPolicy(2, BOX, (8,), init_log_std=0.3)
    with torch.no_grad():
        policy.mean[-1].weight.zero_()  # the network's output is 0: the mean is the middle of the bounds
    obs = torch.randn(4, 2)
    distribution = policy(obs)
    center, half_width = (HIGH + LOW) / 2, (HIGH - LOW) / 2
    torch.testing.assert_close(distribution.mean, torch.as_tensor(center).expand(4, 2))
    std = half_width * np.exp(0.3)
    torch.testing.assert_close(distribution.stddev, torch.as_tensor(std, dtype=torch.float32).expand(4, 2))
    action = torch.tensor([[5.0, -3.0]] * 4)  # far outside the bounds: the density is still the normal one
    by_hand = (-((action.numpy() - center) ** 2) / (2 * std**2) - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(1)
    np.testing.assert_allclose(distribution.log_prob(action).detach().numpy(), by_hand, rtol=1e-5)


def test_clipped_actions_reach_the_env_inside_the_bounds_while_the_batch_keeps_the_unclipped_samples():
    # tests/BoxTruncated-v0 raises on any action outside [-1, 3] × [0.5, 2]; σ = e · half-width forces clipping.
    torch.manual_seed(0)
    envs = make_envs("tests/BoxTruncated-v0", 2)
    policy = reinforce.GaussianPolicy(2, BOX, (8,), init_log_std=1.0)
    episodes, _, _ = reinforce.collect_episodes(envs, policy, 200, 10_000, torch.device("cpu"))
    actions = np.concatenate([e.actions for e in episodes])
    assert np.any(actions < LOW) and np.any(actions > HIGH), "the stored samples are the unclipped ones"


def test_evaluation_clips_the_mean_action_into_asymmetric_bounds():
    torch.manual_seed(0)
    policy = reinforce.GaussianPolicy(2, BOX, (8,), init_log_std=0.0)
    with torch.no_grad():
        policy.mean[-1].bias.copy_(torch.tensor([5.0, -5.0]))  # a mean far outside both bounds
    returns = reinforce.evaluate(policy, "tests/BoxTruncated-v0", 0, 2, torch.device("cpu"))
    assert returns == [4.0, 4.0]


# ---------------------------------------------------------------------------------------- episodes
@pytest.mark.parametrize(
    "env_id, length, terminated", [("tests/Terminating-v0", 3, True), ("tests/Truncated-v0", 4, False)]
)
def test_collected_episodes_are_whole_end_on_the_real_final_observation_and_meet_the_budget(env_id, length, terminated):
    torch.manual_seed(0)
    envs = make_envs(env_id, 3)
    policy = reinforce.CategoricalPolicy(2, 2, (8,))
    episodes, statistics, steps = reinforce.collect_episodes(envs, policy, 10, 10_000, torch.device("cpu"))
    assert steps == sum(len(e.obs) for e in episodes) >= 10
    assert steps < 10 + 3 * length, "no environment starts an episode after the budget is spent"
    assert [(r, n) for r, n, _ in statistics] == [(float(length), length)] * len(episodes)
    rounds = len(episodes) // 3  # each of the 3 envs ends an episode at its step `length` k − 1, in env order
    assert [step for *_, step in statistics] == [
        3 * (length * k - 1) + i for k in range(1, rounds + 1) for i in range(3)
    ]
    for e in episodes:  # obs = [t, episode index]: one episode, from its reset to its end
        episode_index = e.obs[0, 1]
        assert e.obs.tolist() == [[t, episode_index] for t in range(length)]
        assert e.final_obs.tolist() == [length, episode_index]
        assert e.terminated == terminated and e.rewards.tolist() == [1.0] * length


def test_collection_stops_at_the_end_of_training_and_drops_unfinished_episodes():
    torch.manual_seed(0)
    envs = make_envs("tests/Truncated-v0", 3)
    policy = reinforce.CategoricalPolicy(2, 2, (8,))
    episodes, _, steps = reinforce.collect_episodes(envs, policy, 100, 14, torch.device("cpu"))
    assert steps == 14  # 4 full steps of 3 envs (3 whole episodes), then 2 more steps
    assert len(episodes) == 3 and all(len(e.obs) == 4 for e in episodes)  # the 2 started episodes are dropped


def test_without_a_baseline_the_result_has_no_value_network(log_dir):
    result = reinforce.train(short_args(log_dir, baseline=False, save_model=True, eval_episodes=0))
    assert "value" not in result
    checkpoint = torch.load(os.path.join(result["run_dir"], "reinforce.pt"), weights_only=True)
    assert set(checkpoint) == {"policy", "optimizers", "args", "script"} and set(checkpoint["optimizers"]) == {
        "policy_optimizer"
    }


# -------------------------------------------------------------------------------------- bad input
def test_a_nan_loss_stops_the_run_with_the_step_after_flushing_the_logs(log_dir):
    args = short_args(log_dir, env_id="tests/HugeReward-v0", eval_episodes=0, normalize_advantages=False)
    with pytest.raises(
        FloatingPointError, match=r"reinforce\.py: non-finite numbers appeared between step 1 and step 4\d "
    ):
        reinforce.train(args)
    assert_logs_were_flushed(log_dir)


@pytest.mark.parametrize(
    "overrides, phrase",
    [
        ({"env_id": "tests/MultiDiscrete-v0"}, "needs a Discrete or a one-dimensional Box action space"),
        ({"steps_per_update": 0}, "--steps-per-update must be positive, got 0"),
        ({"num_envs": -1}, "--num-envs must be positive, got -1"),
        ({"gamma": 1.5}, "--gamma must lie in [0, 1]"),
        ({"value_learning_rate": 0.0}, "--value-learning-rate must be at least 1e-08"),
        ({"hidden_sizes": (64, 0)}, "--hidden-sizes must be positive widths"),
    ],
)
def test_bad_settings_are_refused_before_any_work(overrides, phrase, log_dir):
    assert_refused_before_any_work(reinforce, log_dir, overrides, phrase)


@pytest.mark.slow
def test_default_settings_solve_cartpole(log_dir):
    result = reinforce.train(reinforce.Args(log_dir=log_dir))
    assert np.mean(result["eval_returns"]) >= 475


def test_the_baseline_regresses_onto_the_returns_not_the_advantages(log_dir, monkeypatch):
    # V_w starts at 5 (its last bias), far from every return here (G = 2.71, 1.9, 1 for γ = 0.9, three steps of
    # reward 1), so the returns and the advantages G − V(S) (about −2.3 to −4) are far apart: after 500 steps on one
    # batch, V_w sits on the targets it was fitted to.
    value_network, seen = reinforce.ValueNetwork, {}

    class StartsAtFive(value_network):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            with torch.no_grad():
                self.net[-1].bias.fill_(5.0)

    advantages, policy_gradient_loss = reinforce.advantages, reinforce.policy_gradient_loss

    def recording_advantages(returns, values, normalize):
        seen["returns"] = returns.clone()
        return advantages(returns, values, normalize)

    def recording_loss(policy, obs, *rest):
        seen["obs"] = obs.clone()
        return policy_gradient_loss(policy, obs, *rest)

    monkeypatch.setattr(reinforce, "ValueNetwork", StartsAtFive)
    monkeypatch.setattr(reinforce, "advantages", recording_advantages)
    monkeypatch.setattr(reinforce, "policy_gradient_loss", recording_loss)
    args = reinforce.Args(
        env_id="tests/Terminating-v0",
        num_envs=1,
        steps_per_update=12,
        total_timesteps=12,  # one update on four whole episodes
        gamma=0.9,
        value_steps=500,
        value_learning_rate=0.01,
        eval_episodes=0,
        log_dir=log_dir,
    )
    result = reinforce.train(args)
    assert sorted(set(seen["returns"].tolist())) == pytest.approx([1.0, 1.9, 2.71])
    with torch.no_grad():
        assert float((result["value"](seen["obs"]) - seen["returns"]).abs().max()) < 0.2
