"""fitted_q.py against value iteration, against a hand-computed DQN step, and its dataset round trip."""

import plumbing

import os
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import CountingEnv, assert_refused_before_any_work

import fitted_q

GAMMA = 0.9


class ChainMDP(gym.Env):
    """States 0..3 as Discrete observations (one-hot after flattening); 3 is terminal.

    Action 1 moves right, action 0 moves left (0 stays at 0). Entering 3 pays +1, every other
    step costs 0.1.
    """

    observation_space = gym.spaces.Discrete(4)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 0
        return self.state, {}

    def step(self, action):
        self.state = chain_next_state(self.state, int(action))
        terminated = self.state == 3
        return self.state, 1.0 if terminated else -0.1, terminated, False, {}


def chain_next_state(state: int, action: int) -> int:
    return state + 1 if action == 1 else max(state - 1, 0)


gym.register("tests/ChainMDP-v0", entry_point=ChainMDP, max_episode_steps=20)


def value_iteration_q_star(gamma: float, sweeps: int = 500) -> np.ndarray:
    """Q*(s, a) for s in 0..2 by iterating the Bellman optimality operator on the explicit model."""
    q = np.zeros((4, 2))
    for _ in range(sweeps):
        new = np.zeros_like(q)
        for s in range(3):
            for a in range(2):
                s_next = chain_next_state(s, a)
                new[s, a] = (1.0 if s_next == 3 else -0.1) + (0.0 if s_next == 3 else gamma * q[s_next].max())
        q = new
    return q[:3]


def chain_dataset(path: str, repeats: int = 20) -> None:
    """Every (s, a) pair of the chain, `repeats` times, as a --save-dataset file would hold it."""
    rows = [(s, a) for s in range(3) for a in range(2)] * repeats
    one_hot = np.eye(4, dtype=np.float32)
    next_states = [chain_next_state(s, a) for s, a in rows]
    np.savez(
        path,
        obs=one_hot[[s for s, _ in rows]],
        action=np.array([a for _, a in rows]),
        reward=np.array([1.0 if n == 3 else -0.1 for n in next_states], dtype=np.float32),
        next_obs=one_hot[next_states],
        terminated=np.array([n == 3 for n in next_states], dtype=np.float32),
        truncated=np.zeros(len(rows), dtype=np.float32),
    )


def short_args(log_dir: str, **overrides) -> fitted_q.Args:
    """Args for a run of a second or so: a few hundred steps, small batches, two evaluation episodes."""
    defaults = {"total_timesteps": 400, "batch_size": 16, "eval_episodes": 2}
    if "dataset" not in overrides:  # offline, a collection flag is refused
        defaults["learning_starts"] = 100
    return fitted_q.Args(**(defaults | {"log_dir": log_dir} | overrides))


@pytest.mark.parametrize("optimizer, refit_from_scratch", [("rprop", False), ("adam", False), ("rprop", True)])
def test_fitted_q_iteration_converges_to_q_star_of_a_small_mdp(optimizer, refit_from_scratch, tmp_path, log_dir):
    # With --refit-from-scratch (NFQ) each iteration fits a fresh network to the backup of the last one.
    path = str(tmp_path / "chain.npz")
    chain_dataset(path)
    # 60 iterations = 60 backups: the remaining error of value iteration is below γ^60 < 0.002.
    args = fitted_q.Args(
        env_id="tests/ChainMDP-v0",
        dataset=path,
        total_timesteps=60,
        transitions_per_iteration=1,
        fit_steps=60,
        optimizer=optimizer,
        refit_from_scratch=refit_from_scratch,
        batch_size=120,
        learning_rate=1e-2 if optimizer == "adam" else 1e-3,
        gamma=GAMMA,
        hidden_sizes=(32,),
        eval_episodes=1,
        log_dir=log_dir,
    )
    result = fitted_q.train(args)
    with torch.no_grad():
        q = result["q_network"](torch.eye(4)[:3]).numpy()
    np.testing.assert_allclose(q, value_iteration_q_star(GAMMA), atol=0.05)
    assert result["episodic_returns"] == [], "offline: no training episode ran"
    assert result["eval_returns"] == [pytest.approx(1.0 - 0.2)], "greedy policy walks right: -0.1, -0.1, +1"


def test_regression_loss_takes_its_targets_from_the_frozen_network_not_the_one_it_fits():
    torch.manual_seed(0)
    q_network, frozen = fitted_q.QNetwork(3, 2, (8,)), fitted_q.QNetwork(3, 2, (8,))  # w ≠ w'
    generator = torch.Generator().manual_seed(2)
    batch = fitted_q.Batch(
        obs=torch.randn(8, 3, generator=generator),
        actions=torch.tensor([0, 1, 1, 0, 1, 0, 0, 1]),
        rewards=torch.randn(8, generator=generator),
        next_obs=torch.randn(8, 3, generator=generator),
        terminated=torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
    )
    with torch.no_grad():
        y = [
            float(batch.rewards[i]) + (0.0 if batch.terminated[i] else GAMMA * float(frozen(batch.next_obs[i]).max()))
            for i in range(8)
        ]
        q = [float(q_network(batch.obs[i])[int(batch.actions[i])]) for i in range(8)]
    by_hand = np.mean([(a - b) ** 2 for a, b in zip(y, q, strict=True)])
    assert float(fitted_q.regression_loss(q_network, frozen, batch, GAMMA)) == pytest.approx(by_hand, rel=1e-5)


def test_one_iteration_with_n_1_k_1_is_one_dqn_step(log_dir):
    """With N = 1, K = 1, τ = 1, one iteration is DQN's step: copy w' ← w, one Adam step on L(w)."""
    torch.manual_seed(0)
    q_network = fitted_q.QNetwork(3, 2, (8,))
    target_q_network = fitted_q.QNetwork(3, 2, (8,))  # stale: the iteration must copy w into it first
    buffer = fitted_q.ReplayBuffer(10, 3, np.random.default_rng(7))
    data = np.random.default_rng(1)
    for t in range(10):
        buffer.add(data.normal(size=3), t % 2, data.normal(), data.normal(size=3), t % 4 == 0, t % 4 == 2)
    args = fitted_q.Args(transitions_per_iteration=1, fit_steps=1, batch_size=4, max_grad_norm=0.0, gamma=GAMMA)
    before = [p.detach().clone() for p in q_network.parameters()]

    # The independent DQN step, by hand: the same 4 indices the buffer's generator draws.
    idx = np.random.default_rng(7).integers(0, 10, size=4)
    frozen = fitted_q.QNetwork(3, 2, (8,))
    frozen.load_state_dict(q_network.state_dict())  # w' = w at the start of the step
    loss = 0.0
    for i in idx:
        with torch.no_grad():
            next_max = frozen(torch.as_tensor(buffer.next_obs[i])).max().item()
        y = buffer.rewards[i] + (0.0 if buffer.terminated[i] else GAMMA * next_max)
        loss = loss + (y - q_network(torch.as_tensor(buffer.obs[i]))[buffer.actions[i]]) ** 2 / 4
    grads = torch.autograd.grad(loss, list(q_network.parameters()))
    # Adam's first step from zero moments: m̂ = g, v̂ = g², so θ ← θ − α g / (|g| + ε).
    expected = [p - 1e-3 * g / (g.abs() + 1e-8) for p, g in zip(before, grads, strict=True)]

    fitted_q.update_target_network(target_q_network, q_network, args.tau)
    optimizer = fitted_q.make_optimizer(q_network, args)
    fitted_q.fit(q_network, target_q_network, optimizer, buffer, args, torch.device("cpu"))
    for new, want in zip(q_network.parameters(), expected, strict=True):
        torch.testing.assert_close(new.detach(), want, rtol=1e-5, atol=1e-7)


def test_td_target_cuts_on_termination_and_bootstraps_on_truncation():
    rewards = torch.tensor([1.0, 2.0, 3.0])
    terminated = torch.tensor([0.0, 1.0, 0.0])  # the third transition was truncated: it bootstraps
    next_q_target = torch.tensor([[5.0, 7.0], [10.0, 20.0], [-4.0, -6.0]])
    y = fitted_q.td_target(rewards, terminated, next_q_target, GAMMA)
    assert y.tolist() == pytest.approx([1.0 + 0.9 * 7.0, 2.0, 3.0 + 0.9 * -4.0])


def test_dataset_round_trip_and_offline_training_never_steps_the_env(tmp_path, log_dir, monkeypatch):
    path = str(tmp_path / "data.npz")
    online = fitted_q.train(short_args(log_dir, env_id="tests/Truncated-v0", save_dataset=path))
    with np.load(path) as file:
        saved = {name: file[name] for name in file.files}
    assert sorted(saved) == sorted(fitted_q.DATASET_FIELDS)
    for name, array in online["replay_buffer"].as_dataset().items():
        np.testing.assert_array_equal(saved[name], array)
    # Independently of as_dataset(): Truncated-v0's observations are [t, episode], in collection order.
    np.testing.assert_array_equal(saved["obs"][:, 0], np.tile([0, 1, 2, 3], 100))
    np.testing.assert_array_equal(saved["obs"][:, 1], np.repeat(np.arange(100), 4))
    np.testing.assert_array_equal(saved["next_obs"][:, 0], np.tile([1, 2, 3, 4], 100))
    # Truncated-v0 ends every episode after 4 steps by its time limit: truncated, never terminated.
    assert saved["truncated"].sum() == 100 and saved["terminated"].sum() == 0
    np.testing.assert_array_equal(saved["next_obs"][saved["truncated"] == 1][:, 0], 4.0)

    def no_stepping(self, action):
        raise AssertionError("offline training stepped the environment")

    monkeypatch.setattr(CountingEnv, "step", no_stepping)
    offline = fitted_q.train(short_args(log_dir, env_id="tests/Truncated-v0", dataset=path, eval_episodes=0))
    assert offline["episodic_returns"] == [] and offline["replay_buffer"].size == 400


def test_two_runs_saving_one_dataset_path_at_once_leave_one_whole_file(tmp_path, log_dir):
    """Both pass the check that the path is new, then write at their ends: one rename wins, and no file is half of
    one and half of the other. Here the second save happens while the first is in the middle of its write."""
    first = fitted_q.train(short_args(log_dir, env_id="tests/Truncated-v0", seed=1))["replay_buffer"]
    second = fitted_q.train(short_args(log_dir, env_id="tests/Terminating-v0", seed=2))["replay_buffer"]
    path = str(tmp_path / "data.npz")

    def interleaved(file):
        file.write(b"PK")  # the first run's write has begun...
        fitted_q.save_dataset(path, second)  # ...when the second run saves to the same path
        file.seek(0)
        np.savez(file, **first.as_dataset())

    plumbing.save_atomically(path, interleaved, "fitted_q.py")
    loaded = fitted_q.load_dataset(path, 2, 2)
    np.testing.assert_array_equal(loaded["obs"], first.as_dataset()["obs"])  # whole: the later rename's file
    assert not list(tmp_path.glob("*.partial"))


def test_save_dataset_refuses_a_buffer_that_cannot_hold_every_transition(tmp_path, log_dir):
    path = str(tmp_path / "data.npz")
    with pytest.raises(
        plumbing.UsageError,
        match=r"--buffer-size must hold every transition \(≥ --total-timesteps\) to --save-dataset them",
    ):
        fitted_q.train(short_args(log_dir, env_id="tests/Truncated-v0", buffer_size=100, save_dataset=path))
    assert not os.path.exists(path) and not os.path.exists(log_dir)


def good_dataset() -> dict[str, np.ndarray]:
    """Six transitions of tests/Truncated-v0 (2-d observations, 2 actions), well formed."""
    obs = np.array([[t % 4, t // 4] for t in range(6)], np.float32)
    return {
        "obs": obs,
        "action": np.array([0, 1, 1, 0, 1, 0]),
        "reward": np.ones(6, np.float32),
        "next_obs": obs + np.array([1, 0], np.float32),
        "terminated": np.zeros(6, np.float32),
        "truncated": np.array([0, 0, 0, 1, 0, 0], np.float32),
    }


def changed(**arrays) -> Callable[[str], None]:
    return lambda path: np.savez(path, **(good_dataset() | arrays))


def without(name: str) -> Callable[[str], None]:
    return lambda path: np.savez(path, **{k: v for k, v in good_dataset().items() if k != name})


@pytest.mark.parametrize(
    "write, phrase",
    [
        (lambda path: Path(path).write_bytes(b""), "is not an .npz archive"),  # an empty file
        (lambda path: Path(path).write_text("obs,action\n1,2\n"), "is not an .npz archive"),
        (
            lambda path: np.save(open(path, "wb"), np.zeros(3)),
            "is not an .npz archive",
        ),  # a lone .npy under an .npz name
        (changed(reward=np.array([{"r": 1}] * 6, dtype=object)), "is not an .npz archive"),  # pickled objects
        (without("reward"), "lacks the array(s) reward"),
        (changed(obs=np.zeros((6, 1), np.float32)), "has obs of shape (6, 1)"),
        (changed(terminated=np.zeros(5, np.float32)), "has terminated of shape (5,)"),
        (changed(action=np.array(1)), "has action of shape ()"),  # 0-d
        (changed(reward=np.array(1.0)), "has reward of shape ()"),
        (changed(**{k: v[:0] for k, v in good_dataset().items()}), "has action of shape (0,)"),  # empty arrays
        (changed(action=np.array([0, 1, 7, 0, 1, 0])), "actions that are not whole numbers in 0..1"),
        (changed(action=np.array([0, 1, 0.5, 0, 1, 0])), "actions that are not whole numbers in 0..1"),
        (changed(action=np.array([0, 1, -1, 0, 1, 0])), "actions that are not whole numbers in 0..1"),
        (changed(action=np.array(["a"] * 6)), "has action of dtype <U1"),
        (changed(reward=np.array([1, np.nan, 1, 1, 1, 1], np.float32)), "NaN or infinite values in reward"),
        (changed(obs=np.full((6, 2), np.inf, np.float32)), "NaN or infinite values in obs"),
        (changed(next_obs=np.full((6, 2), np.nan, np.float32)), "NaN or infinite values in next_obs"),
        (changed(terminated=np.array([0, 0, 7, 0, 0, 0])), "terminated values other than 0 and 1"),
        (changed(truncated=np.array([0, 0, 0.5, 0, 0, 0])), "truncated values other than 0 and 1"),
    ],
)
def test_a_malformed_dataset_is_one_sentence_naming_the_file_and_the_fault(write, phrase, tmp_path, log_dir):
    bad = str(tmp_path / "bad.npz")
    write(bad)
    with pytest.raises(plumbing.UsageError) as error:
        fitted_q.train(short_args(log_dir, env_id="tests/Truncated-v0", dataset=bad))
    message = str(error.value)
    assert message.startswith(f"fitted_q.py: the dataset {bad!r}") and phrase in message
    assert "\n" not in message and message.endswith(".")
    assert not os.path.exists(log_dir)


def test_a_well_formed_dataset_of_integral_float_actions_and_boolean_flags_is_accepted(tmp_path, log_dir):
    path = str(tmp_path / "data.npz")
    data = good_dataset()
    changed(action=data["action"].astype(np.float64), truncated=data["truncated"].astype(bool))(path)
    result = fitted_q.train(short_args(log_dir, env_id="tests/Truncated-v0", dataset=path, eval_episodes=0))
    assert result["replay_buffer"].actions[:6].tolist() == [0, 1, 1, 0, 1, 0] and result["sps"] == 0.0


@pytest.mark.parametrize(
    "flag",
    [{"buffer_size": 10}, {"learning_starts": 5}, {"start_e": 0.5}, {"end_e": 0.2}, {"exploration_fraction": 0.5}],
)
def test_offline_a_collection_flag_is_refused_because_it_would_do_nothing(flag, tmp_path, log_dir):
    path = str(tmp_path / "data.npz")
    changed()(path)
    with pytest.raises(plumbing.UsageError, match="must stay unset with --dataset, which collects nothing"):
        fitted_q.train(fitted_q.Args(dataset=path, log_dir=log_dir, **flag))
    assert not os.path.exists(log_dir)


def test_save_dataset_never_overwrites_a_file(tmp_path, log_dir):
    path = tmp_path / "kept.npz"
    path.write_bytes(b"precious")
    with pytest.raises(plumbing.UsageError, match="--save-dataset must be a new path"):
        fitted_q.train(short_args(log_dir, save_dataset=str(path)))
    assert path.read_bytes() == b"precious" and not os.path.exists(log_dir)


@pytest.mark.parametrize(
    "overrides, phrase",
    [
        ({"env_id": "Pendulum-v1"}, "needs a Discrete action space"),
        ({"fit_steps": 0}, "--fit-steps must be positive, got 0"),
        ({"transitions_per_iteration": -1}, "--transitions-per-iteration must be positive, got -1"),
        ({"dataset": "/no/such/file.npz"}, "--dataset must name an existing file"),
        ({"batch_size": 1000, "buffer_size": 100}, "--batch-size must fit in the replay buffer"),
        ({"save_dataset": "/no/such/dir/data.npz"}, "must be in an existing directory this process can write"),
        ({"save_dataset": "data.csv"}, "must end in .npz"),
        ({"learning_starts": 30_000}, "--learning-starts must leave a regression in --total-timesteps, got 30000"),
        ({"optimizer": "sgd"}, "--optimizer must be one of 'adam', 'rprop', got 'sgd'"),
    ],
)
def test_bad_settings_are_refused_before_any_work(overrides, phrase, log_dir):
    assert_refused_before_any_work(fitted_q, log_dir, overrides, phrase)


@pytest.mark.slow
def test_default_settings_solve_cartpole(log_dir):
    result = fitted_q.train(fitted_q.Args(log_dir=log_dir))
    assert np.mean(result["eval_returns"]) >= 475


def test_a_dataset_archive_with_a_member_that_is_no_array_is_refused_in_one_sentence(tmp_path, log_dir):
    import zipfile

    path = tmp_path / "foreign.npz"
    rows = {"obs": np.zeros((3, 4)), "action": np.zeros(3, int), "reward": np.zeros(3), "next_obs": np.zeros((3, 4))}
    np.savez(path, **rows, terminated=np.zeros(3), truncated=np.zeros(3))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("notes.txt", "not an array")
    phrase = "is not an .npz archive of numeric arrays (as --save-dataset writes)"
    assert_refused_before_any_work(fitted_q, log_dir, {"dataset": str(path)}, phrase)
