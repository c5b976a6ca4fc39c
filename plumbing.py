"""What the six algorithm scripts share that is not an algorithm: everything a run needs around its update rule.

In the order a run meets them: `cli` parses the command line; `check_args`, `resolve_device`, `make_checked_env`
and `read_model` refuse in one sentence, before anything is written, what cannot work (a field's type or rule, a
missing device, an env that cannot be made, flattened or acted in, sizes beyond free memory, a video that cannot
be recorded, a --load-model file that does not fit, --track without wandb); `with Run(...) as run:` makes the run
directory, starts W&B with --track (`start_tracking`), seeds the run, logs it (episodes, losses checked for NaN,
progress) and gives the caller back its generators and settings however it ends, `run.report` saves the model and prints the summary, `run.interrupted` keeps what Ctrl-C would
lose; `evaluation_returns` fixes the start states an evaluation meets; `save_atomically` writes every file.
Every message starts with the script's file name (its Args' default `exp_name` plus ".py"). Nothing here imports a
script: what differs between scripts (make_env, the rules of its fields, its memory estimate) is passed in.
"""

import os
import signal
import sys


def stop_while_starting(signum: int, frame: object) -> None:
    """`python dqn.py`: a Ctrl-C while torch and the rest import (seconds) is one line and exit 130, not a traceback
    from inside an import (nothing is written yet). `cli` hands Ctrl-C back to KeyboardInterrupt once they are in."""
    print(f"{os.path.basename(sys.modules['__main__'].__file__)}: stopped by Ctrl-C while starting.", file=sys.stderr)
    os._exit(130)


MAIN = getattr(sys.modules["__main__"], "__file__", None)  # a script beside this file, run as a program: its CLI
if MAIN and os.path.dirname(os.path.abspath(MAIN)) == os.path.dirname(os.path.abspath(__file__)):
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # (not where Ctrl-C is ignored on purpose)
        signal.signal(signal.SIGINT, stop_while_starting)

import contextlib
import dataclasses
import glob
import importlib.util
import io
import json
import math
import numbers
import random
import shutil
import tempfile
import threading
import time
import traceback
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, BinaryIO, Literal, SupportsFloat

import cloudpickle
import gymnasium as gym
import numpy as np
import torch
import torch._inductor.config
import tyro
from torch import nn
from torch.optim import Optimizer
from torch.utils.tensorboard import SummaryWriter

Rule = tuple[str, bool, str]  # (field, whether its rule holds, what the field must do)
NAME = "a file name is at most 255 bytes: <env_id>__<exp_name>__<seed>__<unix time> for a run's directory"
MakeEnv = Callable[..., gym.Env]  # a script's make_env(env_id, **gym.make kwargs)
ActionCheck = Callable[[str, gym.Space], str | None]  # (env id, action space) -> why the script cannot act in it
MemoryNeeded = Callable[[Any, int, gym.Space], dict[str, int]]  # (args, obs_dim, action space) -> bytes, by flag
Act = Callable[[np.ndarray, gym.Space], Any]  # (observation, action space) -> the action to step the env with
Networks, Optimizers = dict[str, nn.Module], dict[str, Optimizer]


class UsageError(ValueError):
    """Bad input, found before any work starts: the CLI prints the sentence and exits with status 2."""


class RunFailed(RuntimeError):
    """What stopped a run from outside its own arithmetic (an env that failed, logs the disk would not take): the CLI
    prints the sentence and exits with status 1. `original`: the exception that did."""

    def __init__(self, message: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original


class EnvFailed(RunFailed):
    """The environment raised (`original`, whose traceback the CLI prints first: the env is the user's code), or
    returned a non-finite or ill-shaped observation or a non-finite reward."""


@dataclass
class RunSettings:
    """The settings of a run that are not its algorithm's, the same in every script: `with_run_settings` adds them to
    a script's Args after its hyperparameters (so --help lists them last)."""

    exp_name: str = ""
    """name of this experiment, used in the run directory's name (default: the script's file name)"""
    seed: int = 1
    """seed of random, numpy, torch and the environment(s)"""
    device: str = "auto"
    """torch device: auto (cuda if available, else cpu), cpu, cuda or cuda:N"""
    torch_deterministic: bool = True
    """torch.use_deterministic_algorithms during the run, so GPU runs repeat too (CPU runs repeat either way)"""
    log_dir: str = "runs"
    """directory under which each run writes its TensorBoard logs (and model)"""
    track: bool = False
    """also log the run to Weights & Biases (needs: pip install wandb; WANDB_MODE=offline keeps it on this machine)"""
    wandb_project_name: str = "deep-rl-references"
    """the W&B project a --track run goes to"""
    wandb_entity: str | None = None
    """the W&B team or user a --track run goes to (none: your default entity)"""
    save_model: bool = False
    """save the trained networks and optimisers, with the args, to <run_dir>/<exp_name>.pt at the end"""
    load_model: str | None = None
    """a file written by --save-model to start from (its networks and optimiser state); --total-timesteps 0 only evaluates it"""
    checkpoint_frequency: int = 0
    """write <run_dir>/checkpoint.pt every N environment steps and at Ctrl-C, for --resume (0: no checkpoints)"""
    resume: str | None = None
    """a checkpoint (or the run directory holding one) to go on from exactly, given the same flags; --total-timesteps may be raised"""
    capture_video: bool = False
    """record the final evaluation episodes as MP4 files in <run_dir>/videos (needs: pip install moviepy pygame)"""
    eval_episodes: int = 10
    """evaluation episodes after training, greedy or deterministic (0 turns the evaluation off)"""
    torch_threads: int = 1
    """torch CPU threads (small networks run fastest on one; 0 keeps torch's default)"""


def with_run_settings(hyperparameters: type) -> type:
    """A script's Args: its hyperparameters (a dataclass), then RunSettings' fields, `exp_name` defaulting to the
    script's file name. (Its bases keep both classes' field docstrings, which tyro shows as --help.)"""
    script = sys._getframe(1).f_globals  # the script's module, being run (not always in sys.modules yet: run.py)
    name = os.path.basename(script.get("__file__") or script["__name__"]).removesuffix(".py")
    namespace = {key: getattr(hyperparameters, key) for key in ("__module__", "__qualname__", "__doc__")}
    namespace |= {"__annotations__": {"exp_name": str}, "exp_name": name}
    return dataclass(type(hyperparameters.__name__, (RunSettings, hyperparameters), namespace))


def script_name(args: Any) -> str:
    """The name every message starts with: the script's file name, which its Args' `exp_name` defaults to (stem)."""
    return f"{type(args).exp_name}.py"


def reason(error: BaseException) -> str:
    """An exception as one line without a final full stop, to end a sentence with."""
    return " ".join(f"{type(error).__name__}: {error}".split()).rstrip(".")


def cli(train: Callable[[Any], dict], args_class: type, doc: str) -> None:
    """`python script.py [flags]`: --help shows the docstring's summary and examples; a failure is one line on stderr."""
    program = signal.getsignal(signal.SIGINT) is stop_while_starting  # (not when a test calls it in its process)
    if program:  # the imports are done: Ctrl-C is KeyboardInterrupt again
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary, examples = doc.split("\n\n")[0], doc[doc.index("Examples:") :]
        train(parse(args_class, f"{summary}\n\n{examples}"))
    except (UsageError, FloatingPointError, OSError, RunFailed) as error:  # bad input: 2; NaN, a save, the env: 1
        if isinstance(error, EnvFailed) and error.original is not None:  # the env's code is the user's: its traceback
            traceback.print_exception(error.original)
        print(error, file=sys.stderr)
        sys.exit(2 if isinstance(error, UsageError) else 1)
    except KeyboardInterrupt as error:  # Run.interrupted says where; one before training began has nothing to say
        print(str(error) or f"{args_class.exp_name}.py: stopped by Ctrl-C before training began.", file=sys.stderr)
        sys.exit(130)
    finally:  # all is written and said: a Ctrl-C while Python shuts down (a second or so) has nothing left to stop
        if program:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def parse(args_class: type, description: str) -> Any:
    """tyro's parse of the command line; its error box (an unknown flag, a value of the wrong form) as one sentence
    naming the flag and the form it expects (--help is printed as tyro prints it)."""
    box = io.StringIO()
    try:
        with contextlib.redirect_stderr(box):
            args = tyro.cli(args_class, description=description)
        print(box.getvalue(), end="", file=sys.stderr)  # (what else it said, a warning, as it said it)
        return args
    except SystemExit as exit:
        if exit.code in (0, None):
            raise
        rows = [row for line in box.getvalue().splitlines() if (row := line.strip(" │╭╮╰╯"))]  # (a box, or plain)
        rules = [i for i, row in enumerate(rows) if set(row) <= set("─-")] + [len(rows)]  # its separators
        start = 2 if rules[0] == 1 else 1  # after its title (which plain text underlines)
        message = " ".join(rows[start : next(i for i in rules if i >= start)]) or "its flags could not be parsed"
        helptext = rows.index("Argument helptext:") + 1 if "Argument helptext:" in rows else None
        expected = f" (expected: {rows[helptext]})" if helptext else ""
        name = f"{args_class.exp_name}.py"
        raise UsageError(f"{name}: {message.rstrip(' .')}{expected}; see python {name} --help.") from None


# ------------------------------------------------------------------------------------------ checks, before any work
def check_args(args: Any, rules: Callable[[Any], list[Rule]]) -> Any:
    """Refuse settings that cannot work, in one sentence: the types first (the rules compare numbers), then the run
    settings' rules and the script's `rules(args)`, which do not apply when the run only evaluates a loaded model.
    Returns the Args the run uses: a copy in Python's own numbers (a notebook's numpy ones: Gymnasium takes no
    numpy seed)."""
    hints = typing.get_type_hints(type(args))
    enforce(args, [(name, has_type(getattr(args, name), kind), f"be {describe(kind)}") for name, kind in hints.items()])
    evaluates = [("eval_episodes", args.eval_episodes > 0, "be positive when --total-timesteps 0 only evaluates")]
    only_evaluates = args.load_model is not None and args.total_timesteps == 0
    enforce(args, run_rules(args) + (evaluates if only_evaluates else rules(args)))
    if args.track and importlib.util.find_spec("wandb") is None:
        raise UsageError(
            f"{script_name(args)}: --track needs Weights & Biases, which is not installed: pip install wandb."
        )
    return dataclasses.replace(args, **{name: plain(getattr(args, name)) for name in hints})


def run_rules(args: Any) -> list[Rule]:
    """The rules of the run settings every script shares; --log-dir is probed by making a directory there."""
    cores, name = os.cpu_count() or 1, args.exp_name
    rates = [field.name for field in dataclasses.fields(args) if field.name.endswith("learning_rate")]
    return [
        ("seed", 0 <= args.seed < 2**32, "lie in [0, 2**32 - 1] (numpy's seeds)"),
        ("torch_threads", 0 <= args.torch_threads <= cores, f"lie in [0, {cores}], the cores of this machine"),
        ("eval_episodes", args.eval_episodes >= 0, "be non-negative"),
        ("exp_name", name not in ("", ".", "..") and not set("/\\\0") & set(name), "be a file name (no '/')"),
        (
            "exp_name",
            len(f"{args.env_id}__{name}__{args.seed}__1234567890-999".encode()) <= 255,
            f"be shorter ({NAME})",
        ),
        (
            "log_dir",
            all(len(part.encode()) <= 255 for part in args.log_dir.split(os.sep)),
            f"be a shorter path ({NAME})",
        ),
        ("log_dir", writable(args.log_dir), "be a directory this process can create or write"),
        ("load_model", args.load_model is None or os.path.isfile(args.load_model), "name a file --save-model wrote"),
        ("load_model", args.load_model is None or args.resume is None, "not go with --resume (it restores the model)"),
        ("checkpoint_frequency", args.checkpoint_frequency >= 0, "be non-negative (0: no checkpoints)"),
        ("capture_video", not args.capture_video or args.eval_episodes > 0, "go with --eval-episodes above 0"),
        *[(name, getattr(args, name) >= SMALLEST_RATE, f"be at least {SMALLEST_RATE:g} ({STILL})") for name in rates],
        (
            "wandb_project_name",
            args.track or args.wandb_project_name == type(args).wandb_project_name,
            "go with --track",
        ),
        ("wandb_entity", args.track or args.wandb_entity is None, "go with --track"),
        ("wandb_project_name", wandb_name(args.wandb_project_name), f"be {WANDB_NAME}"),
        ("wandb_entity", args.wandb_entity is None or wandb_name(args.wandb_entity), f"be {WANDB_NAME}"),
    ]


LOG_STD = "lie in [-20, 5] (σ = e^x half-widths: beyond, float32 overflows or every sample is the mean)"
SMALLEST_RATE, STILL = 1e-8, "an optimiser's step at a smaller rate cannot move a float32 weight of size 0.1"
WANDB_NAME = "a W&B name: 1 to 128 characters, none of / \\ # ? % :"


def wandb_name(name: str) -> bool:
    return 0 < len(name) <= 128 and not set("/\\#?%:") & set(name)


def enforce(args: Any, rules: list[Rule]) -> None:
    for name, holds, requirement in rules:
        if not holds:
            raise UsageError(
                f"{script_name(args)}: --{name.replace('_', '-')} must {requirement}, got {getattr(args, name)!r}."
            )


def has_type(value: object, kind: object) -> bool:
    """Whether a field's value matches its annotation (floats finite too: inf would pass every "> 0")."""
    if typing.get_origin(kind) is Literal:
        return value in typing.get_args(kind)
    if typing.get_origin(kind) is types.UnionType:
        return any(has_type(value, option) for option in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        return isinstance(value, tuple | list) and all(has_type(item, int) for item in value)
    if kind in (int, float):
        number = isinstance(value, numbers.Integral if kind is int else numbers.Real) and not isinstance(value, bool)
        return number and math.isfinite(value)  # type: ignore[arg-type]
    return isinstance(value, kind)  # type: ignore[arg-type]


def plain(value: Any) -> Any:
    """A field's value in Python's own types: a notebook's numpy numbers as int, float or bool."""
    if isinstance(value, tuple | list):
        return type(value)(plain(item) for item in value)
    return value.item() if isinstance(value, np.generic) else value


def describe(kind: object) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(kind)))
    if typing.get_origin(kind) is types.UnionType:
        return " or ".join(describe(option) for option in typing.get_args(kind))
    names = {int: "an integer", float: "a finite number", bool: "True or False", str: "a string", type(None): "None"}
    return names.get(kind) or str(kind)  # type: ignore[call-overload]


def writable(path: str) -> bool:
    """Whether `path` is, or can become, a writable directory, by a probe in its nearest existing ancestor (root
    ignores permission bits; read-only mounts and /proc do not)."""
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):  # (a dangling link is not a place to make the directory in)
        existing = os.path.dirname(existing)
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing))
        return path != ""
    except OSError:
        return False


def resolve_device(args: Any) -> torch.device:
    """auto: cuda when torch sees a GPU, else cpu; any other name must be a device this machine has."""
    name = args.device
    with contextlib.suppress(RuntimeError):  # not a device name: refused below
        device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
        if device.type == "cpu" or (device.type == "cuda" and (device.index or 0) < torch.cuda.device_count()):
            return device
    raise UsageError(
        f"{script_name(args)}: --device {name} is not a device of this machine ({torch.cuda.device_count()} CUDA "
        "GPUs); use auto, cpu, cuda or cuda:N."
    )


def make_checked_env(
    args: Any, make_env: MakeEnv, device: torch.device, action_space_problem: ActionCheck, memory_needed: MemoryNeeded
) -> gym.Env:
    """One env of the run, or one sentence on why it cannot be made (any exception) or used: observations that do not
    flatten, an `action_space_problem`, more memory than is free for what `memory_needed` counts per flag."""
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown once the env is accepted; a refusal says why
            env = make_env(args.env_id)
    except Exception as error:
        raise UsageError(f"{script_name(args)} cannot make the environment {args.env_id!r}: {reason(error)}.") from None
    obs = env.observation_space
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
        problem = f"cannot flatten the observations of {args.env_id} ({env.unwrapped.observation_space}) into a vector"
    else:
        problem = action_space_problem(args.env_id, env.action_space)
        problem = problem or memory_problem(memory_needed(args, obs.shape[0], env.action_space), device)
    if problem is not None:
        env.close()
        raise UsageError(f"{script_name(args)} {problem}.")
    if args.capture_video:  # moviepy, and frames of the env here (pygame; MuJoCo: OpenGL): not a failure at the end
        try:
            if importlib.util.find_spec("moviepy") is None:
                raise ModuleNotFoundError("No module named 'moviepy'")
            with make_env(args.env_id, render_mode="rgb_array") as rendering:
                rendering.reset(seed=0)
                rendering.render()
        except Exception as error:
            env.close()
            problem = f"cannot record {args.env_id} here ({reason(error)}); {video_remedy(env, error)}"
            raise UsageError(f"{script_name(args)}: --capture-video {problem}.") from None
    for warning in caught:  # only now: a refusal above stays the one line on the screen, not below the env's warnings
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return env


def video_remedy(env: gym.Env, error: Exception) -> str:
    """What would let --capture-video record this env: the right fix for the failure in hand."""
    if isinstance(error, ModuleNotFoundError):
        return f"pip install {error.name or 'moviepy'}"
    if "rgb_array" not in env.metadata.get("render_modes", []):
        return "the env draws no rgb_array frames, so it cannot be recorded: run without --capture-video"
    if "mujoco" in type(env.unwrapped).__module__:
        return "MuJoCo draws with OpenGL: set MUJOCO_GL=egl (a GPU) or MUJOCO_GL=osmesa (pip install PyOpenGL, apt libosmesa6)"
    return "pip install moviepy pygame, on a machine that can draw the env"


def discrete_actions(env_id: str, actions: gym.Space) -> str | None:
    """An action_space_problem for the scripts that act by argmax over a Discrete space (dqn.py, fitted_q.py)."""
    if not isinstance(actions, gym.spaces.Discrete):
        return f"needs a Discrete action space, but {env_id} has {actions}; for Box actions use ddpg.py, reinforce.py, trpo.py or natural_gradient.py"


def discrete_or_flat_box_actions(env_id: str, actions: gym.Space) -> str | None:
    """An action_space_problem for the policy-gradient scripts: a Categorical or a diagonal Gaussian policy."""
    flat_box = isinstance(actions, gym.spaces.Box) and len(actions.shape) == 1
    if not (isinstance(actions, gym.spaces.Discrete) or flat_box):
        return f"needs a Discrete or a one-dimensional Box action space, but {env_id} has {actions}; wrap the env to flatten its actions first"
    return bounds_too_far_apart(env_id, actions) if flat_box else None


def bounds_too_far_apart(env_id: str, actions: gym.spaces.Box) -> str | None:
    """Finite bounds more than 1e18 apart: a Gaussian's log-probability or a critic's input, in float32, overflows
    once the half-width is squared (a policy works in units of the bounds)."""
    width = actions.high.astype(np.float64) - actions.low.astype(np.float64)
    if (np.isfinite(width) & (width > 1e18)).any():
        return f"needs Box bounds at most 1e18 apart (float32 arithmetic squares them), but {env_id} has {actions}; rescale its actions with a wrapper"


class CheckedEnv(gym.Wrapper):
    """The env as training and evaluation meet it: an exception from its reset or step, a non-finite or ill-shaped
    observation or a non-finite reward, is an EnvFailed naming the env and its step (not a NaN loss later, blamed on
    the learning rate, nor numpy's "could not broadcast"). It costs about 3 µs a step (2–3 % of trpo.py's speed)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps, self.shape = 0, env.observation_space.shape

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        try:
            obs, info = self.env.reset(**kwargs)
        except Exception as error:
            raise self.failed(f"raised at its reset ({reason(error)})", error) from error
        return self.checked(obs, 0.0, "reset"), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        self.steps += 1
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception as error:
            raise self.failed(f"raised at its step {self.steps} ({reason(error)})", error) from error
        return self.checked(obs, reward, self.steps), reward, terminated, truncated, info

    def checked(self, obs: Any, reward: SupportsFloat, when: int | str) -> Any:
        when = f"step {when}" if isinstance(when, int) else when
        if np.shape(obs) != self.shape:
            raise self.failed(f"returned an observation of shape {np.shape(obs)} at its {when}, not {self.shape}")
        if not (np.isfinite(obs).all() and math.isfinite(reward)):
            raise self.failed(f"returned a non-finite observation or reward at its {when} ({obs}, {reward})")
        return obs

    def failed(self, problem: str, error: BaseException | None = None) -> EnvFailed:
        return EnvFailed(f"{self.spec.id if self.spec else type(self.unwrapped).__name__} {problem}", error)


def memory_problem(needed: dict[str, int], device: torch.device) -> str | None:
    """Sizes that cannot fit, found before any is allocated: the bytes needed against those available now."""
    free = math.inf  # (not Linux: assume it fits)
    with contextlib.suppress(OSError, StopIteration), open("/proc/meminfo") as file:
        free = next(int(line.split()[1]) * 1024 for line in file if line.startswith("MemAvailable:"))
    free = min(free, torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else free
    largest = max(needed, key=needed.__getitem__)
    gib = f"{sum(needed.values()) / 2**30:.1f} GiB of memory, mostly for {largest}, but {free / 2**30:.1f} GiB are free"
    return None if sum(needed.values()) <= free else f"would need about {gib}; lower {largest}"


def read_model(args: Any, make_env: MakeEnv, env: gym.Env, architecture: tuple[str, ...]) -> dict | None:
    """--load-model's file (None without it), checked before any work: this script's, for `env`'s observation and
    action spaces, with the `architecture` settings of this run (those its networks' shapes depend on)."""
    if args.load_model is None:
        return None
    script, differs, not_finite, here = script_name(args), [], [], (env.observation_space, env.action_space)
    try:
        checkpoint = torch.load(args.load_model, map_location="cpu", weights_only=True)
        written_by, saved = checkpoint["script"], checkpoint["args"]
        if written_by == script:  # (another script's file has other settings: say whose it is, nothing more)
            with make_env(saved["env_id"]) as trained_on:  # the env it was trained on, whose spaces must be this run's
                spaces = (trained_on.observation_space, trained_on.action_space)
            differs = [name for name in architecture if json.dumps(saved[name]) != json.dumps(getattr(args, name))]
            weights = {
                name: state for name, state in checkpoint.items() if name not in ("args", "script", "optimizers")
            }
            not_finite = [
                name for name, state in weights.items() if not all(t.isfinite().all() for t in state.values())
            ]
    except Exception as error:  # not a file torch reads, not one --save-model wrote, or its env cannot be made here
        problem = f"is not a model this script can use ({reason(error)})"
    else:
        if written_by != script:
            problem = f"was written by {written_by}, not by {script}"
        elif spaces != here:
            theirs, ours = (f"observations {o.shape} and actions {a}" for o, a in (spaces, here))
            problem = f"was trained on {saved['env_id']} ({theirs}), whose spaces are not {args.env_id}'s ({ours})"
        elif not_finite:
            problem = f"holds non-finite weights ({not_finite[0]}); a run that diverged saves none, so it was edited"
        elif differs:
            problem = f"holds networks built with --{differs[0].replace('_', '-')} {saved[differs[0]]}, not {getattr(args, differs[0])}"
        else:
            return checkpoint
    raise UsageError(f"{script}: --load-model {args.load_model} {problem}.")


# ------------------------------------------------------------------------------------------------------ checkpoints
CHECKPOINT = "checkpoint.pt"  # <run_dir>/checkpoint.pt: Run.checkpoint writes it, --resume reads it
RESUMABLE = (  # the settings a resumed run may change: where and how it runs, what it keeps, how long it trains
    *("total_timesteps", "device", "torch_deterministic", "torch_threads", "log_dir", "track", "wandb_project_name"),
    *("wandb_entity", "save_model", "load_model", "capture_video", "eval_episodes", "checkpoint_frequency", "resume"),
)


def read_checkpoint(args: Any) -> dict | None:
    """--resume's checkpoint (a file, or the run directory holding checkpoint.pt), refused in one sentence before
    anything is written when it is not this script's, was written with other settings than `args` (all but
    RESUMABLE's), or has gone past --total-timesteps. Returns its header, its state still pickled (Run.resume)."""
    if args.resume is None:
        return None
    script, path = script_name(args), args.resume
    path = os.path.join(path, CHECKPOINT) if os.path.isdir(path) else path
    try:  # (the header holds plain types only: nothing in it runs code)
        header = torch.load(path, map_location="cpu", weights_only=True)
        written_by, saved, step = header["script"], header["args"], header["step"]
    except FileNotFoundError:
        problem = f"names no checkpoint (no {path}); --checkpoint-frequency N writes <run_dir>/{CHECKPOINT}"
    except Exception as error:  # not a file torch reads, or not a checkpoint (a --save-model file: --load-model)
        problem = f"is not a checkpoint ({reason(error)})"
    else:
        differs = [
            name
            for name in saved
            if name not in RESUMABLE and json.dumps(saved[name]) != json.dumps(getattr(args, name, None))
        ]
        run_dir = (os.path.dirname(path) or ".") if os.path.basename(path) == CHECKPOINT else header["dir"]
        if written_by != script:
            problem = f"was written by {written_by}, not by {script}"
        elif differs:
            name = differs[0]
            problem = f"was written with --{name.replace('_', '-')} {saved[name]}, not {getattr(args, name)}; a resumed run keeps its settings"
        elif args.total_timesteps < step:
            problem = f"stands at step {step}, past --total-timesteps {args.total_timesteps}; give at least {step}"
        elif not writable(run_dir):
            problem = f"is in {run_dir}, where this process cannot write"
        else:
            return header | {"dir": run_dir}
    raise UsageError(f"{script}: --resume {args.resume} {problem}.")


class StatePickler(cloudpickle.Pickler):
    """What a checkpoint's state is pickled with: cloudpickle (wrappers hold lambdas), and an env Gymnasium pickles
    by its arguments (EzPickle: MuJoCo's, rebuilt fresh) pickled with its whole state (MuJoCo's MjData pickles)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, gym.utils.EzPickle) and not isinstance(obj, type):
            return rebuilt, (type(obj), obj.__dict__)
        return super().reducer_override(obj)


def rebuilt(kind: type, attributes: dict) -> Any:
    obj = kind.__new__(kind)
    obj.__dict__.update(attributes)
    return obj


ENV_NOT_SAVED = "<env not saved>"  # what a checkpoint holds in place of an env that cannot be pickled


def pickled(saved: dict) -> bytes:
    buffer = io.BytesIO()  # (protocol 4 stores arrays' bytes as they are: protocol 2, torch's default, as text)
    torch.save(saved, buffer, pickle_module=StatePickling, pickle_protocol=4)
    return buffer.getvalue()


def is_env(value: Any) -> bool:
    single = isinstance(value, gym.Env | gym.vector.VectorEnv)
    return single or (isinstance(value, list) and bool(value) and all(isinstance(v, gym.Env) for v in value))


def restart(envs: Any, seed: int) -> Any:
    """A resumed run's env that its checkpoint could not hold: reset, seeded; returns the first observation(s)."""
    if isinstance(envs, list):
        return [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    return envs.reset(seed=seed)[0]


StatePickling = types.SimpleNamespace(Pickler=StatePickler, __name__="plumbing.StatePickling")  # for torch.save


# ---------------------------------------------------------------------------------------------------------- the run
@contextlib.contextmanager
def quiet_log_thread() -> Iterator[None]:
    """TensorBoard's writer thread raises a write that failed (a full disk) again in the run's own thread, where it
    becomes one sentence: its own traceback ("Exception in thread ...") is not printed as well."""
    hook = threading.excepthook

    def quiet(failure: threading.ExceptHookArgs) -> None:
        if not type(failure.thread).__module__.startswith("tensorboard."):
            hook(failure)

    threading.excepthook = quiet
    try:
        yield
    finally:
        threading.excepthook = hook


@contextlib.contextmanager
def ctrl_c_held(then: bool = True) -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that lands in the block, and deliver it when the block is done (`then`), or drop it. Held
    around every write to the logs: a KeyboardInterrupt inside TensorBoard's queue (a write cut half-way) can leave its
    writer thread waiting forever, and the run's last flush with it. Dropped while the model is saved or the logs'
    last write is made, where a second Ctrl-C would lose what the first one is keeping. Main thread only (only it sets
    signal handlers); elsewhere the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held and then:
            signal.raise_signal(signal.SIGINT)  # (to the handler that was there: KeyboardInterrupt, or a stop request)


def make_run_dir(args: Any) -> str:
    """<log_dir>/<env_id>__<exp_name>__<seed>__<unix time>, with a suffix if another run took that name."""
    name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    os.makedirs(args.log_dir, exist_ok=True)
    for attempt in range(1000):
        with contextlib.suppress(FileExistsError):  # another run took this name: no run writes into another's
            os.mkdir(run_dir := os.path.join(args.log_dir, name if attempt == 0 else f"{name}-{attempt}"))
            return run_dir
    raise RuntimeError(f"{script_name(args)}: could not create a fresh run directory under {args.log_dir}.")


@contextlib.contextmanager
def seeded_run(args: Any, device: torch.device) -> Iterator[None]:
    """Seed random, numpy and torch and set torch's threads and determinism for the run; on the way out (return or
    raise) put back what the caller had, so that train() leaves its process as it found it."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only, cublas = torch.is_deterministic_algorithms_warn_only_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # torch's generators
        try:
            torch.set_num_threads(args.torch_threads or threads)
            if args.torch_deterministic and device.type == "cuda" and cublas is None:
                os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # cuBLAS's condition for deterministic matmuls
            torch.use_deterministic_algorithms(args.torch_deterministic)
            random.seed(args.seed)
            np.random.seed(args.seed)
            torch.manual_seed(args.seed)
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            random.setstate(python_state)
            np.random.set_state(numpy_state)
            if cublas is None:
                os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


class Run:
    """One run, from its directory to its summary. `with Run(args, device, remedy) as run:` makes `run.dir`, starts
    its W&B run (--track), enters `seeded_run` and opens TensorBoard; leaving it (return or raise) flushes the logs,
    finishes the W&B run and gives the caller its generators and settings back. `remedy`: what a NaN message tells
    the user to try."""

    def __init__(self, args: Any, device: torch.device, remedy: str) -> None:
        self.args, self.device, self.remedy, self.script = args, device, remedy, script_name(args)
        self.resumed = read_checkpoint(args)  # --resume: the header of the checkpoint it goes on from, else None
        self.made_log_dir = not self.resumed and not os.path.exists(args.log_dir)  # (discard removes it again)
        self.dir = self.resumed["dir"] if self.resumed else make_run_dir(args)
        self.writer, self.wandb = None, None
        if args.track:  # before TensorBoard opens: W&B syncs the file it writes
            try:
                self.wandb = start_tracking(args, self.dir, self.resumed and self.resumed["wandb_id"])
            except Exception as error:  # not logged in, a login W&B refuses, a server out of reach
                offline = "or set WANDB_MODE=offline to keep the run here and sync it later"
                problem = f"--track could not start a W&B run ({reason(error)}); log in with `wandb login`, {offline}"
                raise self.discard(problem) from None
        self.video_dir = os.path.join(self.dir, "videos") if args.capture_video else None  # where evaluate() records
        self.checked_step = 0  # every loss and weight was finite at this step
        self.episodic_returns, self.episode_end_steps = [], []  # each return, and the global step it is logged at
        self.every = self.next_progress = max(1, args.total_timesteps // 10)
        self.checkpoint_every = self.next_checkpoint = args.checkpoint_frequency  # (0: none)
        self.checkpoint_step, self.stop_requested, self.state, self.ctrl_c = None, False, None, None
        self.env_not_saved: str | None = None  # why the env cannot be pickled, once a checkpoint found it cannot

    def __enter__(self) -> "Run":
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(seeded_run(self.args, self.device))
        self.stack.enter_context(quiet_log_thread())
        step = self.resumed["step"] if self.resumed else None  # TensorBoard hides what a stopped run logged after it
        if self.resumed:  # TensorBoard reads a directory's files in name order, <unix time>.<host>.<pid>: after theirs
            times = [
                int(name.split(".")[3]) for name in os.listdir(self.dir) if name.startswith("events.out.tfevents.")
            ]
            while int(time.time()) <= max(times, default=0):  # (only a resume within a second of the stop waits)
                time.sleep(0.05)
        for leftover in glob.glob(os.path.join(self.dir, f"{CHECKPOINT}.*.partial")) if self.resumed else []:
            os.remove(leftover)  # a checkpoint whose write was killed (SIGKILL: no cleanup), half a file
        self.writer = self.stack.enter_context(SummaryWriter(self.dir, purge_step=step))
        if not self.resumed:
            table = "".join(f"|{key}|{value}|\n" for key, value in asdict(self.args).items())
            with ctrl_c_held():
                self.writer.add_text("hyperparameters", "|param|value|\n|-|-|\n" + table)
        main = threading.current_thread() is threading.main_thread()  # (where Ctrl-C is ignored on purpose, it stays)
        if self.checkpoint_every and main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # see checkpoint
            self.ctrl_c = signal.signal(signal.SIGINT, self.stop_at_checkpoint)
        self.start_time = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, *trace: object) -> None:
        self.training_over()
        try:
            with ctrl_c_held(then=False):  # a second Ctrl-C would cut the logs' last write
                self.stack.__exit__(kind, error, *trace)
        except OSError as failure:  # TensorBoard's last write (a full disk): after what stopped the run, if anything
            if error is None:
                problem = f"{self.script}: the logs' last write failed ({reason(failure)}); logs in {self.dir}."
                raise RunFailed(problem, failure) from None
        codes = {KeyboardInterrupt: 130, UsageError: 2}  # W&B marks a run that ends with a code other than 0 failed
        self.stop_tracking(0 if kind is None else next((c for k, c in codes.items() if issubclass(kind, k)), 1))
        if isinstance(error, KeyboardInterrupt) and not str(error):  # after training: in the evaluation or the save
            raise KeyboardInterrupt(f"{self.script}: stopped by Ctrl-C after training; logs in {self.dir}.") from None

    def stop_tracking(self, exit_code: int) -> None:
        """--track: finish the W&B run (after TensorBoard's last write, which it syncs) and unpatch TensorBoard."""
        if self.wandb is not None:
            self.wandb.finish(exit_code=exit_code)
            self.wandb.tensorboard.unpatch()
            self.wandb = None

    def scalars(self, values: dict[str, float], step: int) -> None:
        try:
            with ctrl_c_held():  # (delivered once the write is whole)
                for tag, value in values.items():
                    self.writer.add_scalar(tag, value, step)
        except OSError as error:  # (TensorBoard's writer thread failed a write before: a full disk, a lost directory)
            raise RunFailed(f"its logs could not be written ({reason(error)})", error) from None

    def episode(self, episode_return: float, length: int, step: int) -> None:
        self.episodic_returns.append(float(episode_return))
        self.episode_end_steps.append(step)
        self.scalars({"charts/episodic_return": float(episode_return), "charts/episodic_length": int(length)}, step)

    def losses(self, values: dict[str, float], step: int) -> None:
        """Log the losses and stop the run if one is not finite (all were at the last check)."""
        self.scalars(values, step)
        self.check(values, {}, step)
        self.checked_step = step

    def check(self, values: dict[str, float], networks: Networks, step: int) -> None:
        """Stop the run at a non-finite number or weight, saying between which steps it appeared."""
        bad = [f"{name} = {value}" for name, value in values.items() if not math.isfinite(value)]
        weights = [name for name, net in networks.items() if not all(p.isfinite().all() for p in net.parameters())]
        bad += [f"the weights of {name}" for name in weights]
        if bad:
            raise FloatingPointError(
                f"{self.script}: non-finite numbers appeared between step {self.checked_step + 1} and step {step} "
                f"({', '.join(bad)}), so nothing was saved; a step too large for the rewards' scale is the usual "
                f"cause: try a lower {self.remedy}."
            )

    def progress(self, step: int, values: dict[str, float] | None = None) -> None:
        if step >= self.next_progress or step >= self.args.total_timesteps:
            self.next_progress = (step // self.every + 1) * self.every
            sps = step / (time.perf_counter() - self.start_time)
            self.scalars({"charts/SPS": sps, **(values or {})}, step)
            latest = f"{self.episodic_returns[-1]:.1f}" if self.episodic_returns else "-"
            print(f"step {step}/{self.args.total_timesteps}  latest return {latest}  SPS {sps:.0f}", flush=True)

    def finish(self, networks: Networks, steps: int | None = None, offline: bool = False) -> None:
        """The end of training: its time and speed (0 SPS `offline`), and a last check that every weight is finite."""
        self.training_over()
        self.steps = self.args.total_timesteps if steps is None else steps
        self.train_time = time.perf_counter() - self.start_time
        self.sps = 0.0 if offline else self.steps / self.train_time
        self.check({}, networks, self.steps)

    def report(self, eval_returns: list[float], networks: Networks, optimizers: Optimizers) -> dict:
        """Save the model (with --save-model), log the evaluation, print the summary line; train()'s result."""
        if self.args.save_model:
            print(f"model saved to {save_model(self.args, self.dir, networks, optimizers)}")
        try:
            for i, episode_return in enumerate(eval_returns):
                self.scalars({"eval/episodic_return": episode_return}, i)
        except RunFailed as failure:  # (the model is saved already)
            raise RunFailed(f"{self.script}: {failure} after training; logs in {self.dir}.", failure.original) from None
        if self.wandb is not None and self.video_dir is not None:  # TensorBoard holds no videos: W&B gets the files
            videos = sorted(glob.glob(os.path.join(self.video_dir, "*.mp4")))
            self.wandb.log({"eval/video": [self.wandb.Video(path, format="mp4") for path in videos]})
        mean, std, n = (np.mean(eval_returns), np.std(eval_returns), len(eval_returns)) if eval_returns else (0, 0, 0)
        summary = f"eval return {mean:.1f} ± {std:.1f} over {n} episodes" if eval_returns else "no evaluation"
        timing = f"{self.steps} steps, {self.train_time:.1f} s training ({self.sps:.0f} SPS)"
        print(f"{self.args.env_id} seed {self.args.seed}: {summary}, {timing}, logs in {self.dir}")
        results = {"episodic_returns": self.episodic_returns, "episode_end_steps": self.episode_end_steps}
        return results | {"eval_returns": eval_returns, "sps": self.sps, "run_dir": self.dir, **networks}

    # ------------------------------------------------------------------ checkpoints (--checkpoint-frequency, --resume)
    def resume(self, state: Callable[[], dict], step: int) -> tuple[int, tuple]:
        """Name what the rest of the run depends on: `state()` returns it as it stands, {"networks": {..},
        "optimizers": {..}, name: value, ..}; `checkpoint` saves it. Returns the step to go on from and the values
        of state()'s other entries, in its order: `step` and those values, or with --resume the checkpoint's (the
        networks and optimisers loaded in place, the generators of random, numpy and torch set as they stood)."""
        self.state, now = state, state()
        if not self.resumed:
            return step, tuple(value for name, value in now.items() if name not in ("networks", "optimizers"))
        state = self.resumed["state"]  # a byte tensor (bytes in the checkpoints of the first version, f1674ff)
        pickle = io.BytesIO(state if isinstance(state, bytes) else state.numpy().tobytes())
        saved = torch.load(pickle, map_location=self.device, weights_only=False)  # (the user's own file: README.md)
        for group in ("networks", "optimizers"):
            for name, model in now[group].items():
                model.load_state_dict(saved[group][name])
        random.setstate(saved["random"]["python"])
        np.random.set_state(saved["random"]["numpy"])
        torch.set_rng_state(saved["random"]["torch"])
        if self.device.type == "cuda" and saved["random"]["cuda"] is not None:
            torch.cuda.set_rng_state(saved["random"]["cuda"], self.device)
        self.episodic_returns, self.episode_end_steps = saved["run"]["returns"], saved["run"]["end_steps"]
        self.start_time -= saved["run"]["train_time"]  # (steps per second count the training time of every part)
        step = self.checked_step = self.checkpoint_step = self.resumed["step"]
        self.next_progress = (step // self.every + 1) * self.every
        self.next_checkpoint = (
            (step // self.checkpoint_every + 1) * self.checkpoint_every if self.checkpoint_every else 0
        )
        values, restarted = saved["state"], ""
        for name in [name for name, value in values.items() if isinstance(value, str) and value == ENV_NOT_SAVED]:
            seed = self.args.seed + step  # the env this run made, in new episodes (the saved ones could not be kept)
            values[name], first_obs = now[name], restart(now[name], seed)
            if "obs" in values:
                values["obs"] = first_obs
            restarted = (
                f"; {self.args.env_id} could not be saved with it ({self.resumed['env_not_saved']}), so the "
                f"episodes in progress at step {step} are dropped and new ones start from reset(seed={seed})"
            )
        print(f"resumed {self.dir} at step {step} of {self.args.total_timesteps}{restarted}", flush=True)
        return step, tuple(values.values())

    def checkpoint(self, step: int) -> None:
        """Where the state is whole (after a step, a rollout, an iteration): every --checkpoint-frequency steps, write
        <run_dir>/checkpoint.pt, atomically. With checkpoints on, a Ctrl-C during training stops here, after writing
        one (a second Ctrl-C stops at once), so that the same command with --resume goes on exactly."""
        if not self.checkpoint_every or (step < self.next_checkpoint and not self.stop_requested):
            return
        self.next_checkpoint = (step // self.checkpoint_every + 1) * self.checkpoint_every
        # (a Ctrl-C while it is written only asks to stop here: stop_at_checkpoint; a second one keeps the last)
        with ctrl_c_held():  # the logs up to the checkpoint on disk: a resume goes on from them (purge_step)
            self.writer.flush()
        state = self.pickled_state()
        wandb_id = self.wandb.run.id if self.wandb is not None and self.wandb.run is not None else None
        header = {"script": self.script, "args": asdict(self.args), "step": step, "wandb_id": wandb_id}
        state = torch.frombuffer(bytearray(state), dtype=torch.uint8)  # (a tensor: stored raw, read safely)
        header |= {"dir": self.dir, "env_not_saved": self.env_not_saved, "state": state}
        save_atomically(os.path.join(self.dir, CHECKPOINT), partial(torch.save, header), self.script)
        self.checkpoint_step = step
        if self.stop_requested:
            raise KeyboardInterrupt

    def pickled_state(self) -> bytes:
        """state() as it stands, with the generators and the episodes so far, pickled (StatePickler). An env that
        cannot be pickled (one holding a lock, a simulator's handle) is left out, said once, and restarted on
        resume (Run.resume); anything else that cannot be pickled fails the run."""
        now = self.state()
        saved = {
            group: {name: model.state_dict() for name, model in now[group].items()}
            for group in ("networks", "optimizers")
        }
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        saved["random"] = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": cuda,
        }
        train_time = time.perf_counter() - self.start_time
        saved["run"] = {"returns": self.episodic_returns, "end_steps": self.episode_end_steps, "train_time": train_time}
        saved["state"] = {name: value for name, value in now.items() if name not in ("networks", "optimizers")}
        try:
            return pickled(saved)
        except Exception as error:
            envs = [name for name, value in saved["state"].items() if is_env(value)]
            if not envs:
                raise
            if self.env_not_saved is None:
                self.env_not_saved = reason(error)
                print(
                    f"{self.script}: {self.args.env_id} cannot be saved in a checkpoint ({self.env_not_saved}); "
                    "checkpoints hold the rest, and a resumed run starts new episodes",
                    file=sys.stderr,
                )
            saved["state"] = {name: ENV_NOT_SAVED if name in envs else v for name, v in saved["state"].items()}
            return pickled(saved)

    def stop_at_checkpoint(self, signum: int, frame: object) -> None:
        """Ctrl-C during training with checkpoints on: stop at the next `checkpoint`, the second Ctrl-C at once."""
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True

    def training_over(self) -> None:
        """Training is over (or stopped): Ctrl-C stops the evaluation and the save at once again."""
        if self.ctrl_c is not None:
            signal.signal(signal.SIGINT, self.ctrl_c)
            self.ctrl_c = None

    def interrupted(
        self, error: BaseException, step: int, networks: Networks, optimizers: Optimizers, kept: str = ""
    ) -> BaseException:
        """Ctrl-C, or a failure from outside (RunFailed: the env, the logs): save the model as it stands (--save-model);
        one line of where it stopped, why, and what was `kept`. The exception to raise (any other: `error` itself)."""
        if not isinstance(error, KeyboardInterrupt | RunFailed):
            return error
        saved = ""
        if self.args.save_model and all(p.isfinite().all() for net in networks.values() for p in net.parameters()):
            with ctrl_c_held(then=False):  # (a second Ctrl-C would lose it half-written)
                saved = f"; model saved to {save_model(self.args, self.dir, networks, optimizers)}"
        elif self.args.save_model:
            saved = "; model not saved: its weights are not finite"
        why = "by Ctrl-C" if isinstance(error, KeyboardInterrupt) else f"because {error}"
        if self.checkpoint_step is not None:  # the same command with --resume goes on from it
            path = os.path.join(self.dir, CHECKPOINT)
            kept += f"; checkpoint of step {self.checkpoint_step} in {path} (go on: the same flags and --resume {path})"
            step = self.checkpoint_step if self.stop_requested else step
        stopped = f"{self.script}: stopped {why} at step {step} of {self.args.total_timesteps}{saved}{kept}"
        if isinstance(error, KeyboardInterrupt):
            return KeyboardInterrupt(f"{stopped}; logs in {self.dir}.")
        return type(error)(f"{stopped}; logs in {self.dir}.", error.original)

    def restore(self, checkpoint: dict | None, networks: Networks, optimizers: Optimizers) -> None:
        """With --load-model: the networks' weights, and the optimisers' state where the file holds it. A file whose
        networks or optimisers do not fit this run's (one missing, another shape) is refused, leaving no run."""
        if checkpoint is None:
            return
        try:
            for name, network in networks.items():
                network.load_state_dict(checkpoint[name])
            for name, optimizer in optimizers.items():
                if name in checkpoint["optimizers"]:
                    optimizer.load_state_dict(checkpoint["optimizers"][name])
        except Exception as error:
            raise self.discard(f"--load-model {self.args.load_model} does not fit this run ({reason(error)})") from None

    def discard(self, problem: str) -> UsageError:
        """A run that turned out to do nothing useful: remove its directory (its logs hold nothing) and refuse it."""
        if self.writer is not None:
            with ctrl_c_held(then=False):
                self.writer.close()
        self.stop_tracking(exit_code=2)
        if not self.resumed:  # (a resumed run's directory holds the logs of its earlier part)
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.made_log_dir:  # (empty now, unless another run has begun there since)
            with contextlib.suppress(OSError):
                os.rmdir(self.args.log_dir)
        return UsageError(f"{self.script}: {problem}.")


def start_tracking(args: Any, run_dir: str, run_id: str | None = None) -> types.ModuleType:
    """--track: a W&B run named as the run directory, its config the args, syncing the TensorBoard log written there
    (sync_tensorboard, its root given: W&B's own guess of it waits 10 s at the end), with the script and this file
    saved. W&B keeps its files in ./wandb or $WANDB_DIR, as CleanRL's do (inside the run directory it would sync its
    own copies of the log). Imported only here: a run without --track imports no wandb."""
    import wandb

    wandb.tensorboard.patch(root_logdir=run_dir)
    try:
        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            name=os.path.basename(run_dir),
            config=asdict(args),
            sync_tensorboard=True,
            id=run_id,  # --resume: the W&B run of the part before, going on
            resume="allow" if run_id else None,
        )
    except BaseException:
        wandb.tensorboard.unpatch()
        raise
    for path in (os.path.join(os.path.dirname(os.path.abspath(__file__)), script_name(args)), __file__):
        if os.path.isfile(path) and not wandb.run.disabled:  # a copy of the code as it stands, not a link to a file
            wandb.save(shutil.copy(path, wandb.run.dir), base_path=wandb.run.dir, policy="now")
    return wandb


# ----------------------------------------------------------------------------------- the end: evaluation, saving
EVAL_STEP_LIMIT = 10_000  # an env registered without a time limit gets this one in evaluation


def evaluation_returns(
    make_env: MakeEnv, env_id: str, act: Act, seed: int, episodes: int, video: str | None = None
) -> list[float]:
    """Undiscounted returns of `episodes` episodes on a fresh env, acting `act(obs, action_space)`. It is seeded once
    per run (reset(seed=seed + 10_000), then its own stream): a seed meets the same start states every run, two
    seeds independent ones. No time limit: EVAL_STEP_LIMIT (a greedy policy can loop forever). `video`: MP4s there."""
    env = make_env(env_id, render_mode="rgb_array") if video else make_env(env_id)
    if env.spec is None or env.spec.max_episode_steps is None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=EVAL_STEP_LIMIT)
    if video is not None:
        env = gym.wrappers.RecordVideo(env, video, episode_trigger=lambda episode: True)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 if i == 0 else None)
        episode_return, episode_over = 0.0, False
        while not episode_over:
            obs, reward, terminated, truncated, _ = env.step(act(obs, env.action_space))
            episode_return += float(reward)
            episode_over = terminated or truncated
        returns.append(episode_return)
    env.close()
    return returns


def save_model(args: Any, run_dir: str, networks: Networks, optimizers: Optimizers) -> str:
    """<run_dir>/<exp_name>.pt: the networks' and optimisers' state dicts, the args (plain types), the script's name."""
    checkpoint: dict = {name: {k: v.cpu() for k, v in net.state_dict().items()} for name, net in networks.items()}
    checkpoint["optimizers"] = {name: optimizer.state_dict() for name, optimizer in optimizers.items()}
    checkpoint |= {"args": asdict(args), "script": script_name(args)}  # (plain numbers: check_args made them so)
    path = os.path.join(run_dir, f"{args.exp_name}.pt")
    return save_atomically(path, lambda file: torch.save(checkpoint, file), script_name(args))


def save_atomically(path: str, write: Callable[[BinaryIO], object], script: str) -> str:
    """Write to a temporary file beside `path` and rename it onto `path`, so no reader sees half a file. If that
    directory cannot be written (any exception: torch.save's full disk is a RuntimeError), write to the system's
    temporary directory instead and say so: never lose it. The file follows the umask, as any other file would."""
    umask = os.umask(0o022)
    os.umask(umask)
    fallback = os.path.join(tempfile.gettempdir(), f"{int(time.time())}-{os.getpid()}-{os.path.basename(path)}")
    failures: list[str] = []
    for target in (path, fallback):
        partial = None
        try:
            folder, name = os.path.split(os.path.abspath(target))
            handle, partial = tempfile.mkstemp(dir=folder, prefix=f"{name}.", suffix=".partial")
            with os.fdopen(handle, "wb") as file:
                write(file)
            os.chmod(partial, 0o666 & ~umask)  # (mkstemp makes it 0600)
            os.replace(partial, target)
            partial = None
            if target != path:
                print(f"{script}: could not write {path} ({failures[0]}); wrote {target} instead.", file=sys.stderr)
            return target
        except Exception as error:  # (KeyboardInterrupt is not one: Ctrl-C stops the save, leaving no partial file)
            failures.append(getattr(error, "strerror", None) or reason(error))
        finally:
            if partial is not None:
                with contextlib.suppress(OSError):
                    os.remove(partial)
    raise OSError(f"{script}: could not save {path}, nor in {tempfile.gettempdir()}: {'; '.join(failures)}.")
