"""dqn.py's math against hand computations, its replay buffer, determinism, bad input, and learning."""

import plumbing

import numpy as np
import pytest
import torch
from conftest import assert_logs_were_flushed, assert_refused_before_any_work, assert_transitions_follow_episodes
from torch import nn

import dqn

GAMMA = 0.9


def test_td_target_cuts_on_termination_and_bootstraps_on_truncation():
    # Three transitions: an ordinary one, a terminated one, and a truncated one (terminated = 0 there:
    # the time limit is not part of the MDP, so its target bootstraps from the real final observation).
    rewards = torch.tensor([1.0, 2.0, 3.0])
    terminated = torch.tensor([0.0, 1.0, 0.0])
    next_q_target = torch.tensor([[5.0, 7.0], [10.0, 20.0], [-4.0, -6.0]])
    y = dqn.td_target(rewards, terminated, next_q_target, GAMMA)
    expected = [1.0 + 0.9 * 7.0, 2.0, 3.0 + 0.9 * -4.0]
    assert y.tolist() == pytest.approx(expected)


def test_double_q_target_takes_the_online_argmax_valued_by_the_target_network():
    rewards = torch.tensor([0.5, 0.5])
    terminated = torch.tensor([0.0, 0.0])
    next_q_target = torch.tensor([[1.0, 3.0, 2.0], [4.0, 0.0, 1.0]])
    next_q_online = torch.tensor([[9.0, 0.0, 1.0], [0.0, 0.0, 5.0]])  # argmax: action 0, then action 2
    double = dqn.td_target(rewards, terminated, next_q_target, GAMMA, next_q_online)
    plain = dqn.td_target(rewards, terminated, next_q_target, GAMMA)
    assert double.tolist() == pytest.approx([0.5 + 0.9 * 1.0, 0.5 + 0.9 * 1.0])
    assert plain.tolist() == pytest.approx([0.5 + 0.9 * 3.0, 0.5 + 0.9 * 4.0])


def tiny_networks() -> tuple[dqn.QNetwork, dqn.QNetwork]:
    torch.manual_seed(0)
    q_network, target_q_network = dqn.QNetwork(3, 3, (4,)), dqn.QNetwork(3, 3, (4,))
    return q_network, target_q_network


def tiny_batch() -> dqn.Batch:
    generator = torch.Generator().manual_seed(1)
    return dqn.Batch(
        obs=torch.randn(6, 3, generator=generator),
        actions=torch.tensor([0, 1, 1, 0, 1, 0]),
        rewards=torch.randn(6, generator=generator),
        next_obs=torch.randn(6, 3, generator=generator),
        terminated=torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
    )


@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize("double_q", [False, True])
def test_q_learning_loss_matches_a_per_transition_hand_computation(loss, double_q):
    q_network, target_q_network = tiny_networks()
    batch = tiny_batch()
    value, _ = dqn.q_learning_loss(q_network, target_q_network, batch, GAMMA, double_q, loss)
    with torch.no_grad():  # the two networks must disagree somewhere, or Double DQN's target is DQN's
        disagree = q_network(batch.next_obs).argmax(1) != target_q_network(batch.next_obs).argmax(1)
    assert bool((disagree & (batch.terminated == 0)).any())
    terms = []
    for i in range(6):  # one transition at a time, in plain Python floats
        with torch.no_grad():
            next_target = target_q_network(batch.next_obs[i]).tolist()
            next_online = q_network(batch.next_obs[i]).tolist()
            q = q_network(batch.obs[i]).tolist()[int(batch.actions[i])]
        a_star = int(np.argmax(next_online if double_q else next_target))
        y = float(batch.rewards[i]) + (0.0 if batch.terminated[i] else GAMMA * next_target[a_star])
        error = abs(y - q)
        terms.append(error**2 if loss == "mse" else (0.5 * error**2 if error < 1 else error - 0.5))
    assert value.item() == pytest.approx(np.mean(terms), rel=1e-5)


@pytest.mark.parametrize("max_grad_norm", [0.0, 0.05, 1e6])  # off, clipping, and a bound the norm stays under
def test_one_gradient_step_against_a_hand_computation_with_targets_from_the_target_network(max_grad_norm):
    q_network, target_q_network = tiny_networks()  # different weights: the target must come from w'
    batch, lr = tiny_batch(), 0.1
    args = dqn.Args(gamma=GAMMA, max_grad_norm=max_grad_norm)
    copy = dqn.QNetwork(3, 3, (4,))
    copy.load_state_dict(q_network.state_dict())
    with torch.no_grad():  # y_i = R_i + γ (1 − terminated_i) max_a' q̂_w'(S_{i+1}, a'), one at a time
        y = [
            float(batch.rewards[i])
            + (0.0 if batch.terminated[i] else GAMMA * float(target_q_network(batch.next_obs[i]).max()))
            for i in range(6)
        ]
    loss = sum((y[i] - copy(batch.obs[i])[int(batch.actions[i])]) ** 2 for i in range(6)) / 6
    grads = torch.autograd.grad(loss, list(copy.parameters()))
    norm = float(torch.sqrt(sum((g**2).sum() for g in grads)))
    scale = min(1.0, max_grad_norm / (norm + 1e-6)) if max_grad_norm > 0 else 1.0
    assert (scale < 1) == (max_grad_norm == 0.05), "only the clipped case may clip"
    expected = [p.detach() - lr * scale * g for p, g in zip(copy.parameters(), grads, strict=True)]
    td_loss, _ = dqn.gradient_step(
        q_network, target_q_network, torch.optim.SGD(q_network.parameters(), lr=lr), batch, args
    )
    assert float(td_loss) == pytest.approx(float(loss), rel=1e-5)
    for p, want in zip(q_network.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), want, rtol=1e-5, atol=1e-6)


def test_train_moves_the_target_network_toward_the_online_one_by_tau_every_c_steps(log_dir, monkeypatch):
    # The Polyak formula itself is test_smoke's; this checks the call in train(): w' ← τ w + (1 − τ) w',
    # with the online network as w, Args.tau as τ, every target_network_frequency steps from learning_starts.
    original, calls = dqn.update_target_network, []

    def recording_update(target_network, network, tau):
        calls.append((target_network, network, tau))
        original(target_network, network, tau)

    monkeypatch.setattr(dqn, "update_target_network", recording_update)
    args = short_args(log_dir, total_timesteps=300, learning_starts=100, target_network_frequency=50, tau=0.3)
    result = dqn.train(args)
    assert [tau for *_, tau in calls] == [0.3] * 4  # at steps 100, 150, 200, 250
    assert all(network is result["q_network"] and target is not network for target, network, _ in calls)


def test_loss_gradient_flows_into_the_online_network_only():
    q_network, target_q_network = tiny_networks()
    value, _ = dqn.q_learning_loss(q_network, target_q_network, tiny_batch(), GAMMA, True, "mse")
    value.backward()
    assert all(p.grad is not None for p in q_network.parameters())
    assert all(p.grad is None for p in target_q_network.parameters())


def test_linear_schedule_decays_then_holds():
    assert dqn.linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert dqn.linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert dqn.linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)
    assert dqn.linear_schedule(1.0, 0.1, 100, 10_000) == pytest.approx(0.1)
    assert dqn.linear_schedule(1.0, 0.1, 0, 0) == 0.1


def test_epsilon_greedy_is_greedy_at_zero_and_uniform_at_one():
    import gymnasium as gym

    q_network = dqn.QNetwork(2, 3, (4,))
    with torch.no_grad():
        for p in q_network.parameters():
            p.zero_()
        q_network.net[-1].bias.copy_(torch.tensor([0.0, 2.0, 1.0]))  # action 1 is greedy everywhere
    env = gym.make("tests/ShiftedActions-v0")
    env.action_space.seed(0)
    rng = np.random.default_rng(0)
    obs = np.zeros(2, dtype=np.float32)
    cpu = torch.device("cpu")
    assert {dqn.epsilon_greedy_action(q_network, obs, 0.0, env, rng, cpu) for _ in range(50)} == {1}
    counts = np.bincount([dqn.epsilon_greedy_action(q_network, obs, 1.0, env, rng, cpu) for _ in range(3000)])
    # Uniform over 3 actions: each count ~ Binomial(3000, 1/3), std ≈ 26; 5 std either side.
    assert np.all(np.abs(counts - 1000) < 130), counts


def test_replay_buffer_wraps_around_and_overwrites_the_oldest():
    buffer = dqn.ReplayBuffer(3, 1, np.random.default_rng(0))
    for t in range(5):
        buffer.add(np.array([t]), t % 2, float(t), np.array([t + 1]), t == 4)
    assert buffer.size == 3 and buffer.position == 2
    # Slots hold transitions 3, 4, 2 (0 and 1 were overwritten by 3 and 4).
    assert buffer.obs[:, 0].tolist() == [3, 4, 2]
    assert buffer.next_obs[:, 0].tolist() == [4, 5, 3]
    assert buffer.rewards.tolist() == [3, 4, 2]
    assert buffer.terminated.tolist() == [0, 1, 0]


def test_replay_buffer_never_samples_an_unwritten_slot():
    buffer = dqn.ReplayBuffer(100, 1, np.random.default_rng(0))
    for t in range(1, 6):
        buffer.add(np.array([t]), 0, 1.0, np.array([t]), False)
    batch = buffer.sample(2000, torch.device("cpu"))
    assert set(batch.obs[:, 0].tolist()) == {1, 2, 3, 4, 5}  # never the zeros of slots 5..99


def short_args(log_dir: str, **overrides) -> dqn.Args:
    """Args for a run of a second or so: a few hundred steps, small batches, two evaluation episodes."""
    return dqn.Args(
        **{"total_timesteps": 300, "learning_starts": 100, "batch_size": 16, "eval_episodes": 2, "log_dir": log_dir}
        | overrides
    )


@pytest.mark.parametrize("env_id, terminates", [("tests/Terminating-v0", True), ("tests/Truncated-v0", False)])
def test_stored_transitions_end_on_the_real_final_observation_and_never_cross_a_reset(env_id, terminates, log_dir):
    # Learning does not touch the buffer: it holds exactly what was seen.
    args = short_args(log_dir, env_id=env_id, total_timesteps=23, learning_starts=10, eval_episodes=0)
    buffer = dqn.train(args)["replay_buffer"]
    assert_transitions_follow_episodes(buffer, 3 if terminates else 4, terminates)


def test_actions_reach_the_env_inside_a_shifted_discrete_space(log_dir):
    # Discrete(3, start=-1): the env raises on any action outside {-1, 0, 1}.
    result = dqn.train(short_args(log_dir, env_id="tests/ShiftedActions-v0"))
    assert result["q_network"](torch.zeros(1, 2)).shape == (1, 3)


def test_evaluation_truncates_an_env_without_a_time_limit():
    q_network = dqn.QNetwork(2, 2, (4,))
    assert dqn.evaluate(q_network, "tests/Endless-v0", 0, 1, torch.device("cpu")) == [float(plumbing.EVAL_STEP_LIMIT)]


def test_discrete_observations_become_one_hot_inputs(log_dir):
    result = dqn.train(short_args(log_dir, env_id="FrozenLake-v1"))
    assert result["q_network"].net[0].in_features == 16
    assert result["replay_buffer"].obs[:300].sum(axis=1).tolist() == [1.0] * 300


def test_a_nan_loss_stops_the_run_with_the_step_after_flushing_the_logs(log_dir):
    args = short_args(log_dir, env_id="tests/HugeReward-v0", total_timesteps=500, eval_episodes=0)
    with pytest.raises(
        FloatingPointError,
        match=r"dqn\.py: non-finite numbers appeared between step 1 and step 100 \(losses/td_loss = inf",
    ):
        dqn.train(args)
    assert_logs_were_flushed(log_dir)


@pytest.mark.parametrize(
    "overrides, phrase",
    [
        ({"batch_size": 1000, "buffer_size": 100}, "--batch-size must fit in the replay buffer"),
        ({"buffer_size": 0}, "--buffer-size must be positive, got 0"),
        ({"gamma": 1.5}, "--gamma must lie in [0, 1]"),
        ({"tau": 0.0}, "--tau must lie in (0, 1]"),
        ({"learning_starts": 50_000}, "--learning-starts must leave a gradient step in --total-timesteps, got 50000"),
        (
            {"total_timesteps": 1003, "learning_starts": 1001},
            "--learning-starts must leave a gradient step",
        ),  # steps 1001, 1002: t % 4 ≠ 0
        ({"loss": "l1"}, "--loss must be one of 'mse', 'huber', got 'l1'"),
    ],
)
def test_bad_settings_are_refused_before_any_work(overrides, phrase, log_dir):
    assert_refused_before_any_work(dqn, log_dir, overrides, phrase)


def test_network_shapes_follow_the_env():
    network = dqn.QNetwork(6, 3, (32, 16))
    assert network(torch.zeros(5, 6)).shape == (5, 3)
    assert [m.out_features for m in network.net if isinstance(m, nn.Linear)] == [32, 16, 3]


@pytest.mark.slow
def test_default_settings_solve_cartpole(log_dir):
    result = dqn.train(dqn.Args(log_dir=log_dir))
    assert np.mean(result["eval_returns"]) >= 475
