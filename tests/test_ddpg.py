"""ddpg.py's math against hand computations, its exploration and bounds, determinism, and learning."""

import numpy as np
import pytest
import torch
from conftest import assert_logs_were_flushed, assert_refused_before_any_work, assert_transitions_follow_episodes

import ddpg

GAMMA = 0.9
LOW, HIGH = np.array([-1.0, 0.5]), np.array([3.0, 2.0])  # the asymmetric bounds of tests/Box*-v0


def short_args(log_dir: str, **overrides) -> ddpg.Args:
    """Args for a run of a second or so: a few hundred steps, small batches, two evaluation episodes."""
    defaults = {"total_timesteps": 300, "learning_starts": 100, "batch_size": 16, "eval_episodes": 2}
    return ddpg.Args(**(defaults | {"log_dir": log_dir} | overrides))


def tiny_networks() -> tuple[ddpg.Actor, ddpg.Critic]:
    torch.manual_seed(0)
    return ddpg.Actor(3, 2, (5,), LOW, HIGH), ddpg.Critic(3, 2, (5,))


def tiny_batch() -> ddpg.Batch:
    generator = torch.Generator().manual_seed(1)
    return ddpg.Batch(
        obs=torch.randn(6, 3, generator=generator),
        actions=torch.rand(6, 2, generator=generator),
        rewards=torch.randn(6, generator=generator),
        next_obs=torch.randn(6, 3, generator=generator),
        terminated=torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
    )


def test_critic_target_cuts_on_termination_and_bootstraps_on_truncation():
    # An ordinary transition, a terminated one, and a truncated one (terminated = 0 there).
    rewards = torch.tensor([1.0, 2.0, 3.0])
    terminated = torch.tensor([0.0, 1.0, 0.0])
    next_q_target = torch.tensor([5.0, 10.0, -4.0])
    y = ddpg.critic_target(rewards, terminated, next_q_target, GAMMA)
    assert y.tolist() == pytest.approx([1.0 + 0.9 * 5.0, 2.0, 3.0 + 0.9 * -4.0])


def test_critic_loss_matches_a_per_transition_hand_computation_with_given_target_networks():
    actor, critic = tiny_networks()
    torch.manual_seed(5)
    target_actor, target_critic = ddpg.Actor(3, 2, (5,), LOW, HIGH), ddpg.Critic(3, 2, (5,))
    batch = tiny_batch()
    value = ddpg.critic_loss(critic, target_actor, target_critic, batch, GAMMA)
    terms = []
    for i in range(6):  # one transition at a time: y_i = R_i + γ (1 − d_i) q̂_w'(S', μ_θ'(S'))
        with torch.no_grad():
            next_action = target_actor(batch.next_obs[i : i + 1])
            next_q = float(target_critic(batch.next_obs[i : i + 1], next_action))
            q = float(critic(batch.obs[i : i + 1], batch.actions[i : i + 1]))
        y = float(batch.rewards[i]) + (0.0 if batch.terminated[i] else GAMMA * next_q)
        terms.append((y - q) ** 2)
    assert value.item() == pytest.approx(np.mean(terms), rel=1e-5)
    value.backward()
    assert all(p.grad is None for p in [*target_actor.parameters(), *target_critic.parameters()])
    assert all(p.grad is None for p in actor.parameters())


def test_actor_gradient_is_the_chain_rule_dq_da_times_dmu_dtheta():
    actor, critic = tiny_networks()
    obs = tiny_batch().obs
    ddpg.actor_loss(actor, critic, obs).backward()
    autograd_gradient = torch.cat([p.grad.flatten() for p in actor.parameters()])

    # Independently: per sample, ∂q̂/∂a at a = μ(s) (a row vector [act_dim]) times the Jacobian
    # dμ(s)/dθ ([act_dim, n_params], one backward pass per action dimension); ∇θ J is their mean.
    params = list(actor.parameters())
    chain_rule = torch.zeros_like(autograd_gradient)
    for s in obs:
        a = actor(s.unsqueeze(0)).detach().requires_grad_(True)
        (dq_da,) = torch.autograd.grad(critic(s.unsqueeze(0), a).sum(), a)  # [1, act_dim]
        jacobian = torch.stack(
            [
                torch.cat([g.flatten() for g in torch.autograd.grad(actor(s.unsqueeze(0))[0, k], params)])
                for k in range(2)
            ]
        )  # [act_dim, n_params]
        chain_rule += dq_da[0] @ jacobian
    # actor_loss is −J, so its gradient is minus the ascent direction.
    torch.testing.assert_close(autograd_gradient, -chain_rule / len(obs))


@pytest.mark.parametrize("update_actor", [True, False])
def test_one_update_against_a_hand_computation_targets_from_the_target_networks_then_polyak(update_actor):
    # Four networks, all different (targets are not copies here); plain SGD so each step is θ − α ∇.
    actor, critic = tiny_networks()
    target_actor, target_critic = ddpg.Actor(3, 2, (5,), LOW, HIGH), ddpg.Critic(3, 2, (5,))
    batch, lr, tau = tiny_batch(), 0.1, 0.3
    snapshot = [[p.detach().clone() for p in net.parameters()] for net in (actor, critic, target_actor, target_critic)]

    # By hand: y_i = R_i + γ (1 − terminated_i) q̂_w'(S', μ_θ'(S')), one transition at a time.
    critic_copy, actor_copy = ddpg.Critic(3, 2, (5,)), ddpg.Actor(3, 2, (5,), LOW, HIGH)
    critic_copy.load_state_dict(critic.state_dict())
    actor_copy.load_state_dict(actor.state_dict())
    with torch.no_grad():
        y = [
            float(batch.rewards[i])
            + (
                0.0
                if batch.terminated[i]
                else GAMMA * float(target_critic(batch.next_obs[i : i + 1], target_actor(batch.next_obs[i : i + 1])))
            )
            for i in range(6)
        ]
    critic_loss = (
        sum((y[i] - critic_copy(batch.obs[i : i + 1], batch.actions[i : i + 1])[0]) ** 2 for i in range(6)) / 6
    )
    grads = torch.autograd.grad(critic_loss, list(critic_copy.parameters()))
    with torch.no_grad():
        for p, g in zip(critic_copy.parameters(), grads, strict=True):
            p -= lr * g  # w ← w − α ∇L(w)
    actor_objective = sum(critic_copy(batch.obs[i : i + 1], actor_copy(batch.obs[i : i + 1]))[0] for i in range(6)) / 6
    actor_grads = torch.autograd.grad(actor_objective, list(actor_copy.parameters()))  # ∇J, with the new critic
    expected_actor = (
        [p + lr * g for p, g in zip(snapshot[0], actor_grads, strict=True)] if update_actor else snapshot[0]
    )
    expected_critic = [p.detach() for p in critic_copy.parameters()]
    if update_actor:  # θ' ← τ θ + (1 − τ) θ', w' ← τ w + (1 − τ) w', with the new θ and w
        expected_target_actor = [tau * a + (1 - tau) * t for a, t in zip(expected_actor, snapshot[2], strict=True)]
        expected_target_critic = [tau * c + (1 - tau) * t for c, t in zip(expected_critic, snapshot[3], strict=True)]
    else:
        expected_target_actor, expected_target_critic = snapshot[2], snapshot[3]

    optimizers = (torch.optim.SGD(actor.parameters(), lr=lr), torch.optim.SGD(critic.parameters(), lr=lr))
    models = (actor, critic, target_actor, target_critic)
    q_loss, pi_loss = ddpg.ddpg_update(batch, models, optimizers, GAMMA, tau, update_actor)
    assert float(q_loss) == pytest.approx(float(critic_loss), rel=1e-5)
    assert (pi_loss is None) == (not update_actor)
    for net, expected in [
        (critic, expected_critic), (actor, expected_actor),
        (target_actor, expected_target_actor), (target_critic, expected_target_critic),
    ]:  # fmt: skip
        for p, want in zip(net.parameters(), expected, strict=True):
            torch.testing.assert_close(p.detach(), want, rtol=1e-5, atol=1e-6)


def test_actor_maps_tanh_affinely_onto_asymmetric_bounds():
    actor, _ = tiny_networks()
    with torch.no_grad():
        for p in actor.net.parameters():
            p.zero_()
        last = actor.net[-1]
        for pre_activation in (-100.0, -0.5, 0.0, 0.7, 100.0):
            last.bias.fill_(pre_activation)
            action = actor(torch.zeros(1, 3))[0].numpy()
            u = np.tanh(pre_activation)
            np.testing.assert_allclose(action, LOW + (u + 1.0) * (HIGH - LOW) / 2.0, rtol=1e-6)
            assert np.all(action >= LOW.astype(np.float32)) and np.all(action <= HIGH.astype(np.float32))


def test_ornstein_uhlenbeck_noise_follows_its_recursion_and_resets():
    sigma = np.array([0.2, 0.75])
    noise = ddpg.OrnsteinUhlenbeckNoise(sigma, 0.15, np.random.default_rng(3))
    draws = np.random.default_rng(3).standard_normal((5, 2))
    x = np.zeros(2)
    for t in range(5):
        x = x - 0.15 * x + sigma * draws[t]
        np.testing.assert_allclose(noise.sample(), x)
    noise.reset()
    np.testing.assert_allclose(noise.sample(), sigma * np.random.default_rng(3).standard_normal((6, 2))[5])


def test_gaussian_noise_has_the_scale_relative_to_the_action_range():
    sigma = 0.1 * (HIGH - LOW) / 2.0
    noise = ddpg.GaussianNoise(sigma, np.random.default_rng(0))
    samples = np.stack([noise.sample() for _ in range(20_000)])
    # The sample std of 20k normals is within 2 % of σ with overwhelming probability (its sd is σ/√(2n) ≈ 0.5 %).
    np.testing.assert_allclose(samples.std(axis=0), sigma, rtol=0.02)
    assert np.all(np.abs(samples.mean(axis=0)) < 5 * sigma / np.sqrt(20_000))


@pytest.mark.parametrize("noise_type", ["gaussian", "ou"])
def test_actions_stay_inside_asymmetric_bounds_even_with_large_noise(noise_type, log_dir):
    # The env raises on any action outside [-1, 3] × [0.5, 2]; noise 3 × the half-range forces clipping.
    args = short_args(log_dir, env_id="tests/BoxTruncated-v0", exploration_noise=3.0, noise_type=noise_type)
    result = ddpg.train(args)
    actions = result["replay_buffer"].actions[: result["replay_buffer"].size]
    assert np.all(actions >= LOW.astype(np.float32)) and np.all(actions <= HIGH.astype(np.float32))
    assert np.any(actions == LOW.astype(np.float32)) and np.any(actions == HIGH.astype(np.float32)), "noise was clipped"


@pytest.mark.parametrize("env_id, terminates", [("tests/BoxTerminating-v0", True), ("tests/BoxTruncated-v0", False)])
def test_stored_transitions_end_on_the_real_final_observation_and_never_cross_a_reset(env_id, terminates, log_dir):
    args = short_args(log_dir, env_id=env_id, total_timesteps=23, learning_starts=10, eval_episodes=0)
    buffer = ddpg.train(args)["replay_buffer"]
    assert_transitions_follow_episodes(buffer, 3 if terminates else 4, terminates)


def test_a_nan_loss_stops_the_run_with_the_step_after_flushing_the_logs(log_dir):
    args = short_args(log_dir, env_id="tests/BoxHugeReward-v0", total_timesteps=500, eval_episodes=0)
    with pytest.raises(
        FloatingPointError,
        match=r"ddpg\.py: non-finite numbers appeared between step 1 and step 100 \(losses/qf1_loss = inf",
    ):
        ddpg.train(args)
    assert_logs_were_flushed(log_dir)


@pytest.mark.parametrize(
    "overrides, phrase",
    [
        ({"env_id": "CartPole-v1"}, "use dqn.py"),
        ({"env_id": "tests/ShiftedActions-v0"}, "needs a Box (continuous) action space"),
        ({"batch_size": 1000, "buffer_size": 100}, "--batch-size must fit in the replay buffer"),
        ({"policy_frequency": 0}, "--policy-frequency must be positive, got 0"),
        ({"tau": 1.5}, "--tau must lie in (0, 1]"),
        ({"learning_starts": 15_000}, "--learning-starts must leave an actor update in --total-timesteps, got 15000"),
        (
            {"total_timesteps": 1001, "policy_frequency": 2},
            "--learning-starts must leave an actor update",
        ),  # one critic update only
        ({"noise_type": "uniform"}, "--noise-type must be one of 'gaussian', 'ou', got 'uniform'"),
        ({"exploration_noise": -0.1}, "--exploration-noise must be non-negative"),
    ],
)
def test_bad_settings_are_refused_before_any_work(overrides, phrase, log_dir):
    assert_refused_before_any_work(ddpg, log_dir, overrides, phrase)


@pytest.mark.slow
def test_default_settings_solve_pendulum(log_dir):
    result = ddpg.train(ddpg.Args(log_dir=log_dir))
    assert np.mean(result["eval_returns"]) >= -200
