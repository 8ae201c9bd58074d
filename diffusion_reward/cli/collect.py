"""`diffusion-reward collect`: simulated episodes from a scripted expert degraded by epsilon-random actions.

Appends to the dataset at `--out` (creates it if missing). Episode i resets the simulator with a seed
derived from (`--seed`, number of episodes already collected with that seed in this call), so
another `--seed` gives new layouts and the same `--seed` reproduces the same episodes. Each episode
records `reset_seed`, `epsilon`, `policy` and `policy_seed` in its attributes. The dataset is marked
incomplete while the run goes on: a killed run leaves that mark (`info` shows it, `info --verify` and
`train-policy` refuse the dataset) and its committed episodes; `--resume` collects the rest of the run.

Rows: step t holds the observation before action t, action t, the sparse success reward of that
agent step and `timestamps[t]` = simulated seconds since reset at observation t.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np


EXAMPLES = """examples:
  diffusion-reward collect --task button-press-topdown-v3 --episodes 10 --epsilon 0 --out expert.hdf5
  diffusion-reward collect --task button-press-topdown-v3 --episodes 10 --epsilon 0.75 --seed 100 --out mixed.hdf5
  diffusion-reward collect ... --resume            # finish a killed run with the same options
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--task", required=True, help="task name, e.g. button-press-v3 or adroit-door")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to collect (default 10)")
    parser.add_argument("--epsilon", type=float, default=0.0,
                        help="probability of a uniform random action per step: 0 = expert, 1 = random (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode layouts and random actions")
    parser.add_argument("--out", required=True, help="dataset file to create or append to (.hdf5)")
    parser.add_argument("--action-repeat", type=int, default=2, help="physics steps per action (default 2)")
    parser.add_argument("--image-size", type=int, default=64, help="square camera image size (default 64)")
    parser.add_argument("--max-steps", type=int, default=None, dest="max_episode_steps",
                        help="agent steps per episode (default: the task's, 100 for MetaWorld)")
    parser.add_argument("--stop-on-success", action="store_true", help="end an episode at its first success")
    parser.add_argument("--steps-after-success", type=int, default=None, metavar="K",
                        help="end an episode K agent steps after its first success, like the authors' expert videos "
                             "(default: run every episode to --max-steps); recorded as env_args episode_end")
    parser.add_argument("--resume", action="store_true",
                        help="finish an interrupted run: skip its episodes (same seed, epsilon) already in --out")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..checks import check_int
    from ..data import DatasetWriter
    from ..outputs import check_writable
    from ..sim import episode_seed, make_env, make_policy, task_spec

    task_spec(args.task)  # unknown task, bad numbers, unwritable output: fail before touching the output
    check_int("--episodes", args.episodes, 1)
    check_writable(args.out)
    resume = _resume_command(args)
    _check_unfinished_job(args.out, resume, args.resume)
    env = make_env(args.task, seed=args.seed, image_size=args.image_size, action_repeat=args.action_repeat,
                   max_episode_steps=args.max_episode_steps, terminate_on_success=args.stop_on_success,
                   steps_after_success=args.steps_after_success)
    with env:
        policy = make_policy(args.task, env, epsilon=args.epsilon, seed=args.seed)
        with DatasetWriter(args.out, env_args=env.env_args()) as writer:
            seeds = [episode_seed(args.seed, index) for index in range(args.episodes)]
            done = _collected(args.out, seeds, args.epsilon, policy.name) if args.resume else set()
            writer.begin_job("collect", resume)
            successes, lengths = 0, []
            progress = tqdm([s for s in seeds if s not in done], desc=f"collect {args.task} eps={args.epsilon:g}",
                            unit="episode")
            for seed in progress:
                success, steps = _collect_episode(env, policy, writer, seed, args.epsilon)
                successes += success
                lengths.append(steps)
                progress.set_postfix(success=f"{successes}/{len(lengths)}")
            writer.end_job()
            total = len(writer.episode_names)
    if not lengths:
        print(f"nothing to collect: the {args.episodes} episodes of this run are already in {args.out}")
        return 0
    print(f"collected {len(lengths)} episodes of {args.task} (epsilon {args.epsilon:g}, seed {args.seed}): "
          f"success {successes}/{len(lengths)} ({successes / len(lengths):.0%}), "
          f"mean length {np.mean(lengths):.1f} steps -> {args.out} ({total} episodes in total)")
    return 0


def _resume_command(args: argparse.Namespace) -> str:
    """The command that finishes this run: every option that decides its episodes, then --resume."""
    options = {"--task": args.task, "--episodes": args.episodes, "--epsilon": args.epsilon, "--seed": args.seed,
               "--out": args.out, "--action-repeat": args.action_repeat, "--image-size": args.image_size,
               "--max-steps": args.max_episode_steps, "--steps-after-success": args.steps_after_success}
    words = [word for flag, value in options.items() if value is not None for word in (flag, str(value))]
    return shlex.join(["diffusion-reward", "collect", *words, *["--stop-on-success"] * args.stop_on_success,
                       "--resume"])


def _check_unfinished_job(path: str, resume: str, resuming: bool) -> None:
    """A dataset that an unfinished job marked incomplete takes no episodes except from that job's resume
    command (appending would hide the unfinished job when this run clears the mark)."""
    from ..data import Dataset

    if Path(path).exists():
        with Dataset(path) as ds:
            if ds.incomplete is not None and (not resuming or ds.incomplete != {"job": "collect", "resume": resume}):
                ds.require_complete()


def _collected(path: str, seeds: list[int], epsilon: float, policy: str) -> set[int]:
    """The seeds of `seeds` whose episode (same epsilon and policy) the dataset already holds."""
    from ..data import Dataset

    found = set()
    with Dataset(path) as ds:
        for ep in ds:
            with ep:
                if ep.attrs.get("epsilon") == epsilon and ep.attrs.get("policy") == policy:
                    found.add(ep.attrs.get("reset_seed"))
    return found & set(seeds)


def _collect_episode(env, policy, writer, seed: int, epsilon: float) -> tuple[bool, int]:
    obs = env.reset(seed=seed)
    policy.reset(seed)
    episode = writer.begin_episode()
    success, done, steps = False, False, 0
    try:
        while not done:
            action = policy(obs)
            timestamp = env.time
            next_obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            episode.add_step(obs=obs, action=action, reward=reward, done=done, timestamp=timestamp)
            success |= info["success"]
            obs, steps = next_obs, steps + 1
    except BaseException:
        writer.discard_episode(episode)
        raise
    writer.end_episode(episode, success=success, attrs={
        "reset_seed": seed, "seed": seed, "policy_seed": seed, "epsilon": epsilon, "policy": policy.name})
    return success, steps
