"""trpo.py's math against explicit matrices and hand computations, its trust region, rollouts, and learning."""

import importlib
import os

import gymnasium as gym
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

import trpo

LOW, HIGH = np.array([-1.0, 0.5], np.float32), np.array([3.0, 2.0], np.float32)  # tests/Box*-v0's bounds
BOX = gym.spaces.Box(LOW, HIGH, dtype=np.float32)


def short_args(log_dir: str, **overrides) -> trpo.Args:
    """Args for a run of a second or so: two environments, 16-step rollouts, two evaluation episodes."""
    defaults = {"total_timesteps": 256, "num_envs": 2, "num_steps": 16, "eval_episodes": 2, "value_batch_size": 16}
    return trpo.Args(**(defaults | {"log_dir": log_dir} | overrides))


# ------------------------------------------------------------------------------- linear algebra
@pytest.mark.parametrize("n", [2, 7, 20])
def test_conjugate_gradient_solves_random_symmetric_positive_definite_systems(n):
    generator = torch.Generator().manual_seed(n)
    m = torch.randn(n, n, generator=generator, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    x = trpo.conjugate_gradient(lambda v: a @ v, b, iters=3 * n)
    torch.testing.assert_close(x, torch.linalg.solve(a, b))


def test_conjugate_gradient_takes_exactly_the_iterations_it_is_given():
    # In exact arithmetic CG solves an n × n system in n iterations and, for a generic one, not in fewer; its
    # first iterate is the exact line minimum along b: x_1 = (bᵀb / bᵀAb) b. float64 keeps "exact" close.
    generator = torch.Generator().manual_seed(11)
    n = 6
    m = torch.randn(n, n, generator=generator, dtype=torch.float64)
    a = m @ m.T + torch.diag(torch.arange(1.0, n + 1, dtype=torch.float64))  # distinct eigenvalues
    b = torch.randn(n, generator=generator, dtype=torch.float64)
    solution = torch.linalg.solve(a, b)
    x1 = trpo.conjugate_gradient(lambda v: a @ v, b, iters=1)
    torch.testing.assert_close(x1, (b @ b) / (b @ a @ b) * b)
    almost = trpo.conjugate_gradient(lambda v: a @ v, b, iters=n - 1)
    assert torch.linalg.norm(almost - solution) > 1e-6 * torch.linalg.norm(solution)
    torch.testing.assert_close(trpo.conjugate_gradient(lambda v: a @ v, b, iters=n), solution)


def test_conjugate_gradient_with_damping_solves_the_damped_system():
    generator = torch.Generator().manual_seed(5)
    m = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    a = m @ m.T  # rank 3 of 6: singular, as a Fisher matrix of more parameters than its batch can fill
    b = torch.randn(6, generator=generator, dtype=torch.float64)
    x = trpo.conjugate_gradient(lambda v: a @ v, b, iters=18, damping=0.1)
    torch.testing.assert_close(x, torch.linalg.solve(a + 0.1 * torch.eye(6, dtype=torch.float64), b))


def test_conjugate_gradient_of_a_zero_right_hand_side_is_zero_without_nan():
    x = trpo.conjugate_gradient(lambda v: 2.0 * v, torch.zeros(5), iters=10)
    assert torch.equal(x, torch.zeros(5))


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_fisher_vector_product_is_the_explicit_kl_hessian_undamped(kind):
    policy = small_policy(trpo, kind)
    obs, _, _ = batch_for(policy)
    hessian = explicit_kl_hessian(policy, obs)
    product = trpo.fisher_vector_product(policy, obs)
    for seed in range(3):
        v = torch.randn(len(hessian), generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(product(v), hessian @ v, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_the_trust_region_step_has_a_quadratic_kl_model_of_exactly_max_kl(kind):
    policy = small_policy(trpo, kind)
    obs, _, _ = batch_for(policy)
    fisher = explicit_kl_hessian(policy, obs)
    x = torch.randn(len(fisher), generator=torch.Generator().manual_seed(3))
    step = trpo.trust_region_step(x, fisher @ x, max_kl=0.01)
    assert float(0.5 * step @ fisher @ step) == pytest.approx(0.01, rel=1e-5)
    assert torch.equal(trpo.trust_region_step(torch.zeros(4), torch.zeros(4), 0.01), torch.zeros(4))


# ------------------------------------------------------------------------------- the TRPO update
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_an_update_keeps_the_measured_kl_within_max_kl_and_does_not_lower_the_surrogate(kind):
    policy = small_policy(trpo, kind)
    obs, actions, advantages = batch_for(policy)
    with torch.no_grad():
        old = policy(obs)
        old_log_prob = old.log_prob(actions)
    before = flat_params(policy)
    args = trpo.Args(max_kl=0.01)
    logged = trpo.trpo_update(policy, obs, actions, advantages, args)
    with torch.no_grad():
        new = policy(obs)
        kl = torch.distributions.kl_divergence(old, new).mean()
        surrogate = (torch.exp(new.log_prob(actions) - old_log_prob) * advantages).mean()
    assert not torch.equal(flat_params(policy), before), "a random batch has a direction that improves"
    assert 0 < float(kl) <= 0.01 and float(kl) == pytest.approx(logged["policy/kl"], rel=1e-5)
    assert float(surrogate) > float(advantages.mean())  # L(θ) = mean Â at the old parameters
    assert logged["policy/surrogate_improvement"] == pytest.approx(float(surrogate - advantages.mean()), rel=1e-4)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_the_full_step_is_sized_by_the_undamped_fisher_matrix_whatever_the_damping(kind):
    # θ moved by β^k s; the full step s has ½ sᵀ F s = δ with the explicit KL Hessian F, although conjugate
    # gradient solved with (F + 0.1 I); the logged model is that of the step taken, β^2k δ.
    policy = small_policy(trpo, kind)
    obs, actions, advantages = batch_for(policy, n=256)
    fisher = explicit_kl_hessian(policy, obs)
    before = flat_params(policy)
    logged = trpo.trpo_update(policy, obs, actions, advantages, trpo.Args(max_kl=1e-5, cg_damping=0.1))
    fraction = logged["policy/accepted_step_fraction"]
    full_step = (flat_params(policy) - before) / fraction
    assert fraction > 0.5
    assert float(0.5 * full_step @ fisher @ full_step) == pytest.approx(1e-5, rel=1e-3)
    assert logged["policy/quadratic_kl"] == pytest.approx(fraction**2 * 1e-5, rel=1e-3)


def line_search_problem(n: int):
    """A small categorical policy, a batch, its L and D̄ at the policy's current θ (the line search's
    `evaluate_surrogate_and_kl`), the old distribution and log-probabilities, and g = ∇L at θ."""
    policy = small_policy(trpo, "categorical")
    obs, actions, advantages = batch_for(policy, n=n)
    with torch.no_grad():
        old = policy(obs)
        old_log_prob = old.log_prob(actions)

    def evaluate():
        return trpo.surrogate_and_kl(policy, obs, actions, advantages, old, old_log_prob)

    surrogate, _ = evaluate()
    gradient = torch.nn.utils.parameters_to_vector(torch.autograd.grad(surrogate, list(policy.parameters())))
    return policy, obs, actions, advantages, old, old_log_prob, evaluate, gradient


def test_a_line_search_backs_off_to_the_first_fraction_within_max_kl_that_improves():
    # A step of 3× the trust-region length has a quadratic KL model of 9δ: the search must shrink it to
    # β^k s for the first k whose measured KL is ≤ δ and whose surrogate is higher, computed here one by one.
    policy, obs, actions, advantages, old, old_log_prob, evaluate, gradient = line_search_problem(256)
    params = list(policy.parameters())
    fisher = explicit_kl_hessian(policy, obs)
    x = torch.linalg.solve(fisher + 0.1 * torch.eye(len(fisher)), gradient)
    step = 3 * trpo.trust_region_step(x, fisher @ x, 0.01)
    before = flat_params(policy)
    by_hand = None
    for k in range(10):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(before + 0.5**k * step, params)
            new = policy(obs)
            kl = float(torch.distributions.kl_divergence(old, new).mean())
            gain = float((torch.exp(new.log_prob(actions) - old_log_prob) * advantages).mean() - advantages.mean())
        if kl <= 0.01 and gain > 0:
            by_hand = (0.5**k, gain, kl)
            break
    torch.nn.utils.vector_to_parameters(before, params)
    assert by_hand is not None and by_hand[0] < 1, "the full step must be too long for this test to mean anything"
    fraction, improvement, kl = trpo.line_search(
        policy, step, evaluate, max_kl=0.01, backtrack_iters=10, backtrack_coeff=0.5
    )
    assert fraction == by_hand[0] and kl <= 0.01
    assert (improvement, kl) == pytest.approx(by_hand[1:], rel=1e-4)
    torch.testing.assert_close(flat_params(policy), before + fraction * step)


def test_a_line_search_with_no_qualifying_step_keeps_the_old_parameters():
    policy, *_, evaluate, gradient = line_search_problem(64)
    before = flat_params(policy)
    # Downhill: every fraction of −g lowers the surrogate, so no step qualifies.
    fraction, improvement, kl = trpo.line_search(
        policy, -0.1 * gradient, evaluate, max_kl=0.05, backtrack_iters=10, backtrack_coeff=0.71
    )
    assert (fraction, improvement, kl) == (0.0, 0.0, 0.0)
    assert torch.equal(flat_params(policy), before)


def test_zero_advantages_take_no_step_and_leave_no_nan():
    policy = small_policy(trpo, "gaussian")
    obs, actions, _ = batch_for(policy)
    before = flat_params(policy)
    logged = trpo.trpo_update(policy, obs, actions, torch.zeros(len(obs)), trpo.Args())
    assert torch.equal(flat_params(policy), before)
    assert logged["policy/step_rejected"] == 1.0 and all(np.isfinite(list(logged.values())))


# ---------------------------------------------------------------------------------------- GAE
def test_gae_matches_a_hand_computation_with_a_terminated_and_a_truncated_episode_in_one_batch():
    # One environment, 6 steps: an episode terminates at t = 1, the next is truncated at t = 3, and the
    # rollout ends mid-episode at t = 5. next_values are V of the real next observations.
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([1.0, 2.0, 0.5, 1.5, -1.0, 3.0]).unsqueeze(1)
    values = torch.tensor([0.3, 0.6, -0.2, 0.4, 1.0, 0.7]).unsqueeze(1)
    next_values = torch.tensor([0.6, 9.0, 0.4, 5.0, 0.7, 2.0]).unsqueeze(1)  # 9.0: terminal, must be ignored
    terminated = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0]).unsqueeze(1)
    truncated = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unsqueeze(1)
    advantages = trpo.generalized_advantages(rewards, values, next_values, terminated, truncated, gamma, lam)

    d = [
        1.0 + 0.9 * 0.6 - 0.3,
        2.0 - 0.6,  # terminated: no bootstrap
        0.5 + 0.9 * 0.4 + 0.2,
        1.5 + 0.9 * 5.0 - 0.4,  # truncated: bootstraps from V(final observation) = 5
        -1.0 + 0.9 * 0.7 - 1.0,
        3.0 + 0.9 * 2.0 - 0.7,  # the rollout's end: bootstraps from where it stopped
    ]
    by_hand = [d[0] + 0.72 * d[1], d[1], d[2] + 0.72 * d[3], d[3], d[4] + 0.72 * d[5], d[5]]
    assert advantages.squeeze(1).tolist() == pytest.approx(by_hand, rel=1e-6)


def test_gae_with_lambda_one_and_no_episode_end_is_the_discounted_return_minus_v():
    generator = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(5, 1, generator=generator), torch.randn(5, 1, generator=generator)
    last_value = 2.0
    next_values = torch.cat([values[1:], torch.tensor([[last_value]])])
    zeros = torch.zeros(5, 1)
    advantages = trpo.generalized_advantages(rewards, values, next_values, zeros, zeros, 0.9, 1.0)
    returns = [
        sum(0.9**k * float(rewards[t + k]) for k in range(5 - t)) + 0.9 ** (5 - t) * last_value for t in range(5)
    ]
    assert advantages.squeeze(1).tolist() == pytest.approx([g - float(v) for g, v in zip(returns, values, strict=True)])


# ------------------------------------------------------------------------------------- rollouts
def rollout(env_id: str, num_steps: int, policy: trpo.Policy, action_shape: tuple[int, ...]) -> trpo.Rollout:
    envs = trpo.make_vector_env(env_id, 2)
    obs, _ = envs.reset(seed=0)
    storage = trpo.Rollout.zeros(num_steps, 2, 2, action_shape, torch.device("cpu"))
    trpo.collect_rollout(envs, policy, storage, obs, num_steps)
    envs.close()
    return storage


@pytest.mark.parametrize(
    "env_id, length, terminates", [("tests/Terminating-v0", 3, True), ("tests/Truncated-v0", 4, False)]
)
def test_stored_transitions_end_on_the_real_final_observation_and_never_cross_a_reset(env_id, length, terminates):
    torch.manual_seed(0)
    storage = rollout(env_id, 11, trpo.CategoricalPolicy(2, 2, (4,), torch.nn.Identity()), ())
    for t in range(11):
        for i in range(2):
            step, episode = storage.obs[t, i].tolist()
            assert storage.next_obs[t, i].tolist() == [step + 1, episode], (
                "S_{t+1} is the next step of the same episode"
            )
            ended = step + 1 == length
            assert storage.terminated[t, i] == float(ended and terminates)
            assert storage.truncated[t, i] == float(ended and not terminates)
            if ended and t + 1 < 11:
                assert storage.obs[t + 1, i].tolist() == [0, episode + 1], "the next step starts from the reset"


def test_gaussian_actions_reach_the_env_clipped_while_the_batch_keeps_the_unclipped_samples():
    # tests/BoxTruncated-v0 raises on any action outside [-1, 3] × [0.5, 2]; σ = e · half-width forces clipping.
    torch.manual_seed(0)
    storage = rollout("tests/BoxTruncated-v0", 40, trpo.GaussianPolicy(2, BOX, (4,), 1.0, torch.nn.Identity()), (2,))
    actions = storage.actions.reshape(-1, 2).numpy()
    assert np.any(actions < LOW) and np.any(actions > HIGH)


def test_observation_normalizer_tracks_the_moments_of_everything_seen():
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 3, generator=generator) * 4 + 7 for n in (5, 50, 17)]
    normalizer = trpo.ObservationNormalizer(3)
    for batch in batches:
        normalizer.update(batch)
    everything = torch.cat(batches)
    torch.testing.assert_close(normalizer.mean, everything.mean(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(normalizer.var, everything.var(0, unbiased=False), rtol=1e-4, atol=1e-4)
    normalised = normalizer(everything)
    torch.testing.assert_close(normalised.mean(0), torch.zeros(3), atol=1e-3, rtol=0)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_new_normaliser_statistics_leave_what_the_networks_compute_unchanged(kind):
    generator = torch.Generator().manual_seed(1)
    normalizer = trpo.ObservationNormalizer(3)
    normalizer.update(torch.randn(40, 3, generator=generator) * 2 + 1)
    if kind == "categorical":
        policy = trpo.CategoricalPolicy(3, 4, (5,), normalizer)
    else:
        policy = trpo.GaussianPolicy(3, BOX, (5,), 0.2, normalizer)
    value = trpo.ValueNetwork(3, (), normalizer)  # no hidden layer: its first layer is its last
    obs = torch.randn(64, 3, generator=generator) * 2 + 1
    with torch.no_grad():
        policy_before, value_before = policy(obs), value(obs)
        first_layer_before = flat_params(policy.logits[0] if kind == "categorical" else policy.mean[0])
    normalizer.update(torch.randn(200, 3, generator=generator) * 5 - 3, (policy, value))  # very different moments
    with torch.no_grad():
        policy_after, value_after = policy(obs), value(obs)
        first_layer_after = flat_params(policy.logits[0] if kind == "categorical" else policy.mean[0])
    assert not torch.allclose(first_layer_before, first_layer_after), "the first layer was rescaled"
    assert float(torch.distributions.kl_divergence(policy_before, policy_after).max()) < 1e-6
    torch.testing.assert_close(value_after, value_before, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------- runs
@pytest.mark.parametrize("module_name", ["trpo", "natural_gradient"])
def test_with_observation_normalisation_the_acting_policy_moves_only_by_the_logged_step(
    module_name, log_dir, monkeypatch
):
    # Before each rollout, the KL between the policy that collected the previous batch and the one about to act,
    # on that batch's states, with the normaliser's new statistics included: it must be the KL the update logged
    # for its step (so within δ for trpo.py, whose line search checks it). Pendulum-v1's raw observations moved
    # the first update ~0.026 outside the step when the statistics were merged after it.
    module = importlib.import_module(module_name)
    original, acted, kl_between_rollouts = module.collect_rollout, [], []

    def recording_collect_rollout(envs, policy, storage, obs, num_steps):
        with torch.no_grad():
            if acted:
                states, distribution = acted[-1]
                kl_between_rollouts.append(
                    float(torch.distributions.kl_divergence(distribution, policy(states)).mean())
                )
            result = original(envs, policy, storage, obs, num_steps)
            states = storage.obs[:num_steps].reshape(-1, storage.obs.shape[-1]).clone()
            acted.append((states, policy(states)))
        return result

    monkeypatch.setattr(module, "collect_rollout", recording_collect_rollout)
    args = module.Args(
        env_id="Pendulum-v1",
        normalize_observations=True,
        max_kl=0.01,
        total_timesteps=2048,
        num_envs=4,
        num_steps=64,
        eval_episodes=0,
        log_dir=log_dir,
    )
    result = module.train(args)
    events = EventAccumulator(result["run_dir"], size_guidance={"scalars": 0})
    events.Reload()
    logged_kl = [point.value for point in events.Scalars("policy/kl")][:-1]  # the last update has no next rollout
    assert len(kl_between_rollouts) == len(logged_kl) == 6  # 2048 steps: 256 of warm-up, 7 rollouts of 256
    assert kl_between_rollouts == pytest.approx(logged_kl, rel=1e-3, abs=1e-7)
    if module_name == "trpo":
        assert max(kl_between_rollouts) <= 0.01 * (1 + 1e-4)


def test_observation_normalisation_travels_with_the_saved_policy(log_dir):
    result = trpo.train(short_args(log_dir, normalize_observations=True, save_model=True, eval_episodes=0))
    checkpoint = torch.load(os.path.join(result["run_dir"], "trpo.pt"), weights_only=True)
    assert checkpoint["policy"]["normalizer.count"] > 256
    torch.testing.assert_close(checkpoint["policy"]["normalizer.mean"], checkpoint["value"]["normalizer.mean"])


def test_the_normaliser_starts_from_a_warm_up_of_random_actions_counted_in_the_budget(log_dir, monkeypatch):
    # tests/Truncated-v0's observations are [t, episode] with 4-step episodes. Each of 2 envs shows its reset
    # observation and 16 warm-up steps: t = 0, 1, 2, 3, 0 (a same-step reset), 1, .. 0, so mean t = 24/17.
    args = short_args(log_dir, env_id="tests/Truncated-v0", normalize_observations=True, total_timesteps=32 + 64)
    original, seen = trpo.collect_rollout, []

    def recording_collect_rollout(envs, policy, storage, obs, num_steps):
        seen.append((float(policy.normalizer.count), float(policy.normalizer.mean[0]), obs[:, 0].tolist()))
        return original(envs, policy, storage, obs, num_steps)

    monkeypatch.setattr(trpo, "collect_rollout", recording_collect_rollout)
    result = trpo.train(args)
    count, mean_t, first_obs_t = seen[0]
    assert count == pytest.approx(34, abs=1e-3) and mean_t == pytest.approx(24 / 17, rel=1e-4)
    assert first_obs_t == [0, 0], "training starts from fresh episodes, not mid-way through a random one"
    assert len(result["episodic_returns"]) == 16  # the budget's other 64 steps: 2 envs × 8 episodes of 4


@pytest.mark.parametrize("env_id", ["tests/Terminating-v0", "tests/Truncated-v0"])
@pytest.mark.parametrize("module_name", ["trpo", "natural_gradient"])
def test_the_value_network_regresses_onto_lambda_returns(module_name, env_id, log_dir, monkeypatch):
    # The λ-return by the textbook recursion, one environment at a time (independent of GAE's code):
    # G_t = R_{t+1} + γ [(1 − λ) V(S_{t+1}) + λ G_{t+1}], with G_t = R_{t+1} after a termination and
    # G_t = R_{t+1} + γ V(S_{t+1}) after a truncation or at the rollout's end.
    module = importlib.import_module(module_name)
    gamma, lam = 0.9, 0.8
    storages, checked = [], []
    original_collect, original_fit = module.collect_rollout, module.fit_value

    def recording_collect_rollout(envs, policy, storage, obs, num_steps):
        storages.append((storage, num_steps))
        return original_collect(envs, policy, storage, obs, num_steps)

    def checking_fit_value(value, optimizer, obs, targets, *rest):
        storage, steps = storages[-1]
        with torch.no_grad():
            v_next = value(storage.next_obs[:steps])  # [T, N]: V of each real next observation, before the fit
        rewards, terminated, truncated = storage.rewards[:steps], storage.terminated[:steps], storage.truncated[:steps]
        by_hand = torch.zeros_like(rewards)
        for i in range(rewards.shape[1]):
            following = None
            for t in reversed(range(steps)):
                if terminated[t, i]:
                    following = float(rewards[t, i])
                elif truncated[t, i] or following is None:
                    following = float(rewards[t, i]) + gamma * float(v_next[t, i])
                else:
                    following = float(rewards[t, i]) + gamma * ((1 - lam) * float(v_next[t, i]) + lam * following)
                by_hand[t, i] = following
                if t > 0 and (terminated[t - 1, i] or truncated[t - 1, i]):
                    following = None  # the step before belongs to the previous episode
        torch.testing.assert_close(targets, by_hand.flatten(), rtol=1e-5, atol=1e-5)
        checked.append(True)
        return original_fit(value, optimizer, obs, targets, *rest)

    monkeypatch.setattr(module, "collect_rollout", recording_collect_rollout)
    monkeypatch.setattr(module, "fit_value", checking_fit_value)
    args = module.Args(
        env_id=env_id,
        gamma=gamma,
        gae_lambda=lam,
        total_timesteps=96,
        num_envs=2,
        num_steps=16,
        eval_episodes=0,
        value_batch_size=16,
        normalize_observations=False,  # (no warm-up rollout: every rollout collected is one the value fits)
        log_dir=log_dir,
    )
    module.train(args)
    assert len(checked) == 3


def test_training_stops_at_total_timesteps_with_a_shortened_last_rollout(log_dir):
    # 2 envs × 50 steps = 3 rollouts of 16 steps and a last one of 2. Episodes last 4 steps, so each env
    # finishes 12; a full last rollout (64 steps per env) would have finished 16.
    result = trpo.train(short_args(log_dir, env_id="tests/Truncated-v0", total_timesteps=100, eval_episodes=0))
    assert len(result["episodic_returns"]) == 24


def test_a_nan_loss_stops_the_run_with_the_step_after_flushing_the_logs(log_dir):
    args = short_args(log_dir, env_id="tests/HugeReward-v0", eval_episodes=0, normalize_advantages=False)
    with pytest.raises(FloatingPointError, match=r"trpo\.py: non-finite numbers appeared between step 1 and step 32 "):
        trpo.train(args)
    assert_logs_were_flushed(log_dir)


@pytest.mark.parametrize(
    "overrides, phrase",
    [
        ({"env_id": "tests/MultiDiscrete-v0"}, "needs a Discrete or a one-dimensional Box action space"),
        ({"num_steps": 0}, "--num-steps must be positive, got 0"),
        ({"cg_iters": 0}, "--cg-iters must be positive, got 0"),
        ({"max_kl": 0.0}, "--max-kl must be positive"),
        ({"backtrack_coeff": 1.0}, "--backtrack-coeff must lie in (0, 1)"),
        ({"gae_lambda": 1.5}, "--gae-lambda must lie in [0, 1]"),
        (
            {"normalize_observations": True, "total_timesteps": 2048},
            "--normalize-observations must leave steps to train on after its warm-up",
        ),
    ],
)
def test_bad_settings_are_refused_before_any_work(overrides, phrase, log_dir):
    assert_refused_before_any_work(trpo, log_dir, overrides, phrase)


@pytest.mark.slow
def test_default_settings_solve_cartpole(log_dir):
    result = trpo.train(trpo.Args(log_dir=log_dir))
    assert np.mean(result["eval_returns"]) >= 475


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_the_step_solves_the_fisher_system_damped_once(kind, monkeypatch):
    # x = (F + λI)⁻¹ g by an explicit solve (F the explicit KL Hessian, g the policy gradient 1/n Σ ∇log π Â), and
    # the step handed to the line search is s = sqrt(2δ / xᵀFx) x. Damping twice would solve (F + 2λI) x = g.
    policy = small_policy(trpo, kind)
    obs, actions, advantages = batch_for(policy, n=256)
    fisher = explicit_kl_hessian(policy, obs)
    surrogate_gradient = (policy(obs).log_prob(actions) * advantages).mean()
    g = torch.cat([p.flatten() for p in torch.autograd.grad(surrogate_gradient, list(policy.parameters()))])
    x = torch.linalg.solve(fisher + 0.1 * torch.eye(len(g)), g)
    expected = torch.sqrt(2 * 0.01 / (x @ fisher @ x)) * x
    steps, line_search = [], trpo.line_search
    monkeypatch.setattr(
        trpo, "line_search", lambda policy, step, *rest: steps.append(step) or line_search(policy, step, *rest)
    )
    trpo.trpo_update(policy, obs, actions, advantages, trpo.Args(max_kl=0.01, cg_damping=0.1, cg_iters=200))
    assert float(torch.linalg.vector_norm(steps[0] - expected)) < 1e-3 * float(torch.linalg.vector_norm(expected))


def test_advantages_are_standardised_over_the_whole_batch_not_per_environment():
    # Two environments whose advantages differ in scale; standardised apart, each column would have mean 0.
    rollout = trpo.Rollout.zeros(8, 2, 1, (), torch.device("cpu"))
    rollout.rewards[:, 0] = torch.arange(8.0)
    rollout.rewards[:, 1] = 10.0
    zeros = torch.zeros(8, 2)
    advantages, targets = trpo.advantages_and_targets(rollout, lambda obs: obs.sum(-1) * 0, 0.9, 0.95, normalize=True)
    raw = trpo.generalized_advantages(rollout.rewards, zeros, zeros, zeros, zeros, 0.9, 0.95).flatten()  # V = 0
    torch.testing.assert_close(advantages, (raw - raw.mean()) / (raw.std() + 1e-8))
    torch.testing.assert_close(targets, raw)  # the λ-returns Â + V, V = 0
    assert float(advantages.view(8, 2)[:, 1].mean()) > 0.5  # env 1's larger returns stay above the batch's mean
