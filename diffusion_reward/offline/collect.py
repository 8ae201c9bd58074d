"""Simulated episodes into a dataset: a scripted expert degraded by epsilon-random actions (`diffusion-reward
collect`).

Appends to the dataset at `out` (creates it if missing). Episode i resets the simulator with a seed derived from
(`seed`, i), so another `seed` gives new layouts and the same `seed` reproduces the same episodes. Each episode
records `reset_seed`, `epsilon`, `policy` and `policy_seed` in its attributes. The dataset is marked incomplete
while the run goes on: a killed run leaves that mark (`info` shows it, `info --verify` and `train-policy` refuse
the dataset) and its committed episodes; `resume` collects the rest of the run.

Rows: step t holds the observation before action t, action t, the sparse success reward of that agent step and
`timestamps[t]` = simulated seconds since reset at observation t.
"""
from __future__ import annotations

import dataclasses
import shlex
from dataclasses import MISSING, dataclass
from pathlib import Path

import numpy as np

from ..checks import check_int, config_field, flag_name
from ..data import Dataset, DatasetWriter
from ..outputs import check_writable
from ..sim import episode_seed, make_env, make_policy, task_spec


@dataclass
class CollectConfig:
    """What `collect` does; its fields are the command's flags (`cli/config_args.py`)."""

    task: str = config_field(MISSING, "task name, e.g. button-press-v3 or adroit-door")
    out: str = config_field(MISSING, "dataset file to create or append to (.hdf5)")
    episodes: int = config_field(10, "episodes to collect")
    epsilon: float = config_field(0.0, "probability of a uniform random action per step: 0 = expert, 1 = random")
    seed: int = config_field(0, "seed of the episode layouts and random actions")
    action_repeat: int = config_field(2, "physics steps per action")
    image_size: int = config_field(64, "square camera image size")
    max_episode_steps: int | None = config_field(None, "agent steps per episode (default: the task's, 100 for "
                                                       "MetaWorld)", flag="--max-steps", metavar="N")
    stop_on_success: bool = config_field(False, "end an episode at its first success")
    steps_after_success: int | None = config_field(
        None, "end an episode K agent steps after its first success, like the authors' expert videos (default: run "
              "every episode to --max-steps); recorded as env_args episode_end", metavar="K")
    resume: bool = config_field(False, "finish an interrupted run: skip its episodes (same seed, epsilon) already "
                                       "in --out")
    progress: bool = True

    def __post_init__(self):  # unknown task, bad numbers: fail before touching the output
        task_spec(self.task)
        check_int("episodes", self.episodes, 1)

    def resume_command(self) -> str:
        """The command that finishes this run: every option that decides its episodes, then --resume."""
        words = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("resume", "progress") or value is None or value is False:
                continue
            words += [flag_name(f)] if value is True else [flag_name(f), str(value)]
        return shlex.join(["diffusion-reward", "collect", *words, "--resume"])


@dataclass
class CollectSummary:
    collected: int  # episodes written by this run (0: all were already there)
    successes: int
    mean_length: float
    total: int  # episodes in the dataset now


def collect_dataset(cfg: CollectConfig) -> CollectSummary:
    from tqdm import tqdm

    check_writable(cfg.out)
    resume = cfg.resume_command()
    _check_unfinished_job(cfg.out, resume, cfg.resume)
    env = make_env(cfg.task, seed=cfg.seed, image_size=cfg.image_size, action_repeat=cfg.action_repeat,
                   max_episode_steps=cfg.max_episode_steps, terminate_on_success=cfg.stop_on_success,
                   steps_after_success=cfg.steps_after_success)
    with env:
        policy = make_policy(cfg.task, env, epsilon=cfg.epsilon, seed=cfg.seed)
        with DatasetWriter(cfg.out, env_args=env.env_args()) as writer:
            seeds = [episode_seed(cfg.seed, index) for index in range(cfg.episodes)]
            done = _collected(cfg.out, seeds, cfg.epsilon, policy.name) if cfg.resume else set()
            writer.begin_job("collect", resume)
            successes, lengths = 0, []
            progress = tqdm([s for s in seeds if s not in done], desc=f"collect {cfg.task} eps={cfg.epsilon:g}",
                            unit="episode", disable=not cfg.progress)
            for seed in progress:
                success, steps = _collect_episode(env, policy, writer, seed, cfg.epsilon)
                successes += success
                lengths.append(steps)
                progress.set_postfix(success=f"{successes}/{len(lengths)}")
            writer.end_job()
            total = len(writer.episode_names)
    return CollectSummary(collected=len(lengths), successes=successes,
                          mean_length=float(np.mean(lengths)) if lengths else 0.0, total=total)


def _check_unfinished_job(path: str, resume: str, resuming: bool) -> None:
    """A dataset that an unfinished job marked incomplete takes no episodes except from that job's resume
    command (appending would hide the unfinished job when this run clears the mark)."""
    if Path(path).exists():
        with Dataset(path) as ds:
            if ds.incomplete is not None and (not resuming or ds.incomplete != {"job": "collect", "resume": resume}):
                ds.require_complete()


def _collected(path: str, seeds: list[int], epsilon: float, policy: str) -> set[int]:
    """The seeds of `seeds` whose episode (same epsilon and policy) the dataset already holds."""
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
