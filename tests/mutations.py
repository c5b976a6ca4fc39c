"""The classic deep-RL bugs, planted one at a time: does a fast test catch each one?

Each entry of CATALOGUE is one bug people make and papers warn about, written as a one-line change to one
script (or to trpo.py and natural_gradient.py alike, where they share the code), or to plumbing.py, whose bugs
every script would share. For each, this copies the
repository to a scratch directory, applies the change, runs the fast tests of the scripts it touches
(`-m "not slow"`), and reports whether any test failed, and which.

    python tests/mutations.py              # the whole catalogue, about 15 minutes on 2 cores (46 entries: 891 s on 2026-12-07)
    python tests/mutations.py --only 3 17  # some entries, by number
    python tests/mutations.py --list       # the catalogue, without running it

Exit status 1 if any bug survives every fast test.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bug:
    name: str
    scripts: tuple[str, ...]  # where the same one-line change is made
    old: str  # a line (or part of one) that occurs exactly once in each script
    new: str
    tests: tuple[str, ...] = ()  # the test files that should catch it, where not the scripts' own (tests_for)


TRPO_AND_NPG = ("trpo", "natural_gradient")
CATALOGUE = [
    # ---------------------------------------------------------------- value-based: dqn.py, fitted_q.py, ddpg.py
    Bug(
        "TD target without (1 − terminated)",
        ("dqn",),
        "return rewards + gamma * (1.0 - terminated) * next_value",
        "return rewards + gamma * next_value",
    ),
    Bug(
        "truncation stored as termination",
        ("dqn",),
        "replay_buffer.add(obs, action, float(reward), next_obs, terminated)",
        "replay_buffer.add(obs, action, float(reward), next_obs, terminated or truncated)",
    ),
    Bug("a transition across a reset (obs not reset)", ("dqn",), "obs, _ = env.reset()\n", "env.reset()\n"),
    Bug(
        "TD target from the online network",
        ("dqn",),
        "next_q_target = target_q_network(batch.next_obs)",
        "next_q_target = q_network(batch.next_obs)",
    ),
    Bug(
        "Double DQN argmax by the target network",
        ("dqn",),
        "next_q_online = q_network(batch.next_obs) if double_q",
        "next_q_online = target_q_network(batch.next_obs) if double_q",
    ),
    Bug(
        "gradient through the TD target",
        ("dqn",),
        "    with torch.no_grad():\n        next_q_target",
        "    with torch.enable_grad():\n        next_q_target",
    ),
    Bug(
        "Polyak update with τ and 1 − τ swapped",
        ("dqn",),
        "target_param.lerp_(param, tau)",
        "target_param.lerp_(param, 1 - tau)",
    ),
    Bug(
        "target network moved with 1 − τ at the call in train()",
        ("dqn",),
        "update_target_network(target_q_network, q_network, args.tau)",
        "update_target_network(target_q_network, q_network, 1 - args.tau)",
    ),
    Bug(
        "gradient clipping left out of the step",
        ("dqn",),
        "        clip_gradient_norm([p.grad for p in q_network.parameters()], args.max_grad_norm)\n",
        "        pass\n",
    ),
    Bug(
        "gradient clipping that also scales gradients below the bound up to it",
        ("dqn",),
        "torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)",
        "max_norm / (total_norm + 1e-6)",
    ),
    Bug("ε schedule that never decays", ("dqn",), "min(t / duration, 1.0)", "min(t / duration, 0.0)"),
    Bug(
        "ε-greedy left on in evaluation",
        ("dqn",),
        "return int(q_values.argmax()) + int(space.start)",
        "return (int(q_values.argmax()) if np.random.random() > 0.05 else int(space.sample()) - int(space.start)) + int(space.start)",
    ),
    Bug(
        "fitted Q regresses onto the moving network",
        ("fitted_q",),
        "y = td_target(batch.rewards, batch.terminated, target_q_network(batch.next_obs), gamma)",
        "y = td_target(batch.rewards, batch.terminated, q_network(batch.next_obs), gamma)",
    ),
    Bug(
        "fitted Q target cut on truncation",
        ("fitted_q",),
        "replay_buffer.add(obs, action, float(reward), next_obs, terminated, truncated)",
        "replay_buffer.add(obs, action, float(reward), next_obs, terminated or truncated, truncated)",
    ),
    Bug(
        "DDPG critic target from the online actor",
        ("ddpg",),
        "q_loss = critic_loss(critic, target_actor, target_critic, batch, gamma)",
        "q_loss = critic_loss(critic, actor, target_critic, batch, gamma)",
    ),
    Bug(
        "DDPG Polyak update with τ and 1 − τ swapped at the call",
        ("ddpg",),
        "update_target_network(target_actor, actor, tau)",
        "update_target_network(target_actor, actor, 1 - tau)",
    ),
    Bug(
        "DDPG critic target without (1 − terminated)",
        ("ddpg",),
        "return rewards + gamma * (1.0 - terminated) * next_q_target",
        "return rewards + gamma * next_q_target",
    ),
    Bug(
        "DDPG critic target from the online critic",
        ("ddpg",),
        "next_q_target = target_critic(batch.next_obs, target_actor(batch.next_obs))",
        "next_q_target = critic(batch.next_obs, target_actor(batch.next_obs))",
    ),
    Bug(
        "DDPG actor ascends −Q (sign flipped)",
        ("ddpg",),
        "return -critic(obs, actor(obs)).mean()",
        "return critic(obs, actor(obs)).mean()",
    ),
    Bug(
        "DDPG exploration noise left on in evaluation",
        ("ddpg",),
        "return actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0].cpu().numpy()",
        "return np.clip(actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0].cpu().numpy() + 0.1, space.low, space.high)",
    ),
    Bug(
        "DDPG actions sent to the env unclipped",
        ("ddpg",),
        "action = np.clip(mu.cpu().numpy() + noise.sample(), low, high).astype(env.action_space.dtype)",
        "action = (mu.cpu().numpy() + noise.sample()).astype(env.action_space.dtype)",
    ),
    # ---------------------------------------------------------------------------- policy gradient: reinforce.py
    Bug(
        "reward-to-go without γ",
        ("reinforce",),
        "running = rewards[t] + gamma * running",
        "running = rewards[t] + running",
    ),
    Bug(
        "the whole return for every step instead of the reward-to-go",
        ("reinforce",),
        "returns[t] = running",
        "returns[t] = rewards.sum()",
    ),
    Bug(
        "truncated episodes not bootstrapped",
        ("reinforce",),
        "truncated = [i for i, episode in enumerate(episodes) if not episode.terminated]",
        "truncated = [i for i, episode in enumerate(episodes) if episode.terminated]",
    ),
    Bug(
        "log-probabilities of the clipped actions",
        ("reinforce",),
        "current[i].append((obs[i].copy(), actions[j], np.float32(reward)))",
        "current[i].append((obs[i].copy(), np.asarray(env_action), np.float32(reward)))",
    ),
    Bug(
        "REINFORCE evaluation samples instead of taking the mean",
        ("reinforce",),
        "action = policy.deterministic_action(obs_tensor)[0].cpu().numpy()",
        "action = policy.sample(obs_tensor)[0].cpu().numpy()",
    ),
    Bug(
        "policy-gradient loss with the sign flipped",
        ("reinforce",),
        "loss = -(distribution.log_prob(actions) * advantage).sum() / n_episodes",
        "loss = (distribution.log_prob(actions) * advantage).sum() / n_episodes",
    ),
    # ------------------------------------------------------------------- trpo.py and natural_gradient.py, shared
    Bug(
        "GAE not cut at termination",
        TRPO_AND_NPG,
        "deltas = rewards + gamma * (1.0 - terminated) * next_values - values",
        "deltas = rewards + gamma * next_values - values",
    ),
    Bug(
        "GAE's λ-sum runs across a time-limit reset",
        TRPO_AND_NPG,
        "same_episode_next = (1.0 - terminated) * (1.0 - truncated)",
        "same_episode_next = 1.0 - terminated",
    ),
    Bug(
        "pseudo-transition across an autoreset",
        TRPO_AND_NPG,
        'real_next_obs[i] = info["final_obs"][i]',
        "real_next_obs[i] = next_obs[i]",
    ),
    Bug(
        "surrogate without the importance ratio",
        TRPO_AND_NPG,
        "ratio = torch.exp(distribution.log_prob(actions) - old_log_prob)",
        "ratio = distribution.log_prob(actions)",
    ),
    Bug(
        "KL in the wrong direction",
        TRPO_AND_NPG,
        "kl = torch.distributions.kl_divergence(old, distribution).mean()",
        "kl = torch.distributions.kl_divergence(distribution, old).mean()",
    ),
    Bug(
        "step length without its square root",
        TRPO_AND_NPG,
        "return torch.sqrt(2.0 * max_kl / curvature) * x",
        "return (2.0 * max_kl / curvature) * x",
    ),
    Bug(
        "conjugate gradient runs one iteration fewer",
        TRPO_AND_NPG,
        "for _ in range(iters):",
        "for _ in range(iters - 1):",
    ),
    Bug(
        "damping left out of conjugate gradient",
        TRPO_AND_NPG,
        "a_direction = product(direction) + damping * direction",
        "a_direction = product(direction)",
    ),
    Bug(
        "Gaussian log-probabilities of the clipped actions",
        TRPO_AND_NPG,
        "storage.actions[t] = actions",
        "storage.actions[t] = torch.as_tensor(env_actions, dtype=actions.dtype)",
    ),
    Bug(
        "evaluation samples instead of taking the mean",
        TRPO_AND_NPG,
        "action = policy.deterministic_action(obs_tensor)[0].cpu().numpy()",
        "action = policy.sample(obs_tensor)[0].cpu().numpy()",
    ),
    Bug(
        "the normaliser's new statistics move the policy",
        TRPO_AND_NPG,
        "normalizer.update(batch_obs, (policy, value))",
        "normalizer.update(batch_obs)",
    ),
    Bug(
        "the value network regresses onto the advantages instead of the λ-returns",
        TRPO_AND_NPG,
        "value_targets = (advantages + values).flatten()",
        "value_targets = advantages.flatten()",
    ),
    # --------------------------------------------------------------------------------- one script of the two
    Bug(
        "line search accepts a step whose KL is above max_kl",
        ("trpo",),
        "if float(kl) <= max_kl and improvement > 0:",
        "if improvement > 0:",
    ),
    Bug(
        "step sized by the damped quadratic model",
        ("natural_gradient",),
        "step = trust_region_step(x, fisher_product(x), args.max_kl)",
        "step = trust_region_step(x, fisher_product(x) + args.cg_damping * x, args.max_kl)",
    ),
    Bug(
        "empirical Fisher from the mean score",
        ("natural_gradient",),
        "return scores.T @ (scores @ v) / len(scores)",
        "return scores.mean(0) * (scores.mean(0) @ v)",
    ),
    Bug(
        "--vanilla steps along F⁻¹g after all",
        ("natural_gradient",),
        "        x = gradient  # the plain gradient direction",
        "        x = conjugate_gradient(fisher_product, gradient, args.cg_iters, args.cg_damping)",
    ),
    # ------------------------------------------------------------- held out by an audit (#33), now planted too
    Bug(
        "REINFORCE's baseline regresses onto the advantages instead of the returns",
        ("reinforce",),
        "value_loss = (value(obs) - returns).pow(2).mean()",
        "value_loss = (value(obs) - advantage).pow(2).mean()",
    ),
    Bug(
        "advantages normalised per environment instead of over the whole batch",
        ("trpo",),
        "    advantages = advantages.flatten()\n",
        "    advantages = ((advantages - advantages.mean(0)) / (advantages.std(0) + 1e-8)).flatten()\n",
    ),
    Bug(
        "damping added twice: conjugate gradient on F + 2λI",
        ("trpo",),
        "x = conjugate_gradient(fisher_product, gradient, args.cg_iters, args.cg_damping)",
        "x = conjugate_gradient(lambda v: fisher_product(v) + args.cg_damping * v, gradient, args.cg_iters, args.cg_damping)",
    ),
    # ---------------------------------------------------------------------------- plumbing.py: all six at once
    Bug(
        "a save that is not atomic (written in place, over the old file)",
        ("plumbing",),
        'handle, partial = tempfile.mkstemp(dir=folder, prefix=f"{name}.", suffix=".partial")',
        "handle, partial = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), target",
    ),
    Bug(
        "the caller's random state not restored after a run",
        ("plumbing",),
        "            random.setstate(python_state)\n",
        "",
    ),
    Bug(
        "the NaN check of the logged losses skipped",
        ("plumbing",),
        "        self.check(values, {}, step)\n",
        "",
    ),
    Bug(
        "a resume that leaves torch's random generator where the new process seeded it",
        ("plumbing",),
        '        torch.set_rng_state(saved["random"]["torch"])\n',
        "",
        ("tests/test_checkpoints.py",),
    ),
    Bug(
        "a resume that keeps what a killed run logged after its checkpoint (no purge)",
        ("plumbing",),
        "SummaryWriter(self.dir, purge_step=step)",
        "SummaryWriter(self.dir)",
        ("tests/test_checkpoints.py", "-k", "killed"),
    ),
    Bug(
        "a Ctrl-C that lands inside a write to the logs raised there, half-way through TensorBoard's queue",
        ("plumbing",),
        "            with ctrl_c_held():  # (delivered once the write is whole)\n",
        "            with contextlib.nullcontext():\n",
    ),
]


def tests_for(scripts: tuple[str, ...]) -> list[str]:
    """The fast tests of these scripts (or of plumbing.py): their own files, and the shared matrix's rows for them."""
    if scripts == ("plumbing",):
        return ["tests/test_plumbing.py"]
    files = [f"tests/test_{script}.py" for script in scripts]
    return [*files, "tests/test_smoke.py", "-k", " or ".join(scripts)]  # -k matches file names too


def plant(bug: Bug, scratch: Path) -> None:
    for script in bug.scripts:
        path = scratch / f"{script}.py"
        source = path.read_text()
        if source.count(bug.old) != 1:
            raise SystemExit(
                f"mutations.py: {bug.name!r}: {bug.old!r} occurs {source.count(bug.old)} times in {script}.py"
            )
        path.write_text(source.replace(bug.old, bug.new))


def run(bug: Bug) -> tuple[bool, list[str], float]:
    """(caught, the tests that failed, seconds) for one planted bug."""
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        for name in ("plumbing", "dqn", "fitted_q", "ddpg", "reinforce", "trpo", "natural_gradient"):
            shutil.copy(ROOT / f"{name}.py", scratch)
        shutil.copytree(ROOT / "tests", scratch / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "pyproject.toml", scratch)
        plant(bug, scratch)
        start = time.perf_counter()
        command = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "2"]
        tests = list(bug.tests) or tests_for(bug.scripts)
        result = subprocess.run([*command, *tests], cwd=scratch, capture_output=True, text=True)
        failed = sorted(set(re.findall(r"^FAILED (\S+)", result.stdout, flags=re.MULTILINE)))
        return result.returncode != 0, failed, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, nargs="*", help="run these entries (numbers from --list)")
    parser.add_argument("--list", action="store_true", help="print the catalogue and stop")
    options = parser.parse_args()
    chosen = [(i, bug) for i, bug in enumerate(CATALOGUE, 1) if not options.only or i in options.only]
    if options.list:
        for i, bug in chosen:
            print(f"{i:2d}. {'+'.join(bug.scripts)}: {bug.name}")
        return
    survived, start = [], time.perf_counter()
    for i, bug in chosen:
        caught, failed, seconds = run(bug)
        first = failed[0].split("::", 1)[-1] if failed else "-"
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        print(
            f"{i:2d}. {'caught  ' if caught else 'SURVIVED'} {'+'.join(bug.scripts)}: {bug.name}  [{first}{more}, {seconds:.0f} s]",
            flush=True,
        )
        if not caught:
            survived.append(bug.name)
    print(
        f"{len(chosen) - len(survived)} of {len(chosen)} caught by the fast tests in {time.perf_counter() - start:.0f} s"
    )
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
