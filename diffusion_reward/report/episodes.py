"""Episodes for the QA report: rolled out in simulation at several epsilons, or read from a dataset.

Besides the epsilon-degraded episodes, `collect(..., controls=True)` adds the two "frozen robot" controls a
reward must rank below the expert: `zero-action` (the same reset seed, the arm commanded to stay) and
`frozen-first-frame` (the expert episode's reset frame repeated for the expert episode's length).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..errors import UserError

EPSILONS = (0.0, 0.25, 0.5, 0.75, 1.0)
CONTROLS = ("zero-action", "frozen-first-frame")


@dataclass
class ScoredEpisode:
    epsilon: float | None         # None for a control episode
    seed: int
    success: bool
    frames: np.ndarray            # u8[T,H,W,3], the reset frame first
    reward: np.ndarray | None = None  # f32[T] (standardised if statistics exist, else raw)
    first_success: int | None = None  # agent step of the first success: rows 0..first_success do the task
    kind: str = "epsilon"         # "epsilon" or one of CONTROLS


def rollout(env, policy, seed: int, max_steps: int | None = None) -> tuple[np.ndarray, bool, int | None]:
    """One episode: frames u8[T+1,H,W,3] (reset frame included), whether and at which step it was first solved."""
    policy.reset(seed)
    obs = env.reset(seed=seed)
    frames, first_success = [obs["image"]], None
    for step in range(max_steps or env.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        frames.append(obs["image"])
        if info.get("success", False) and first_success is None:
            first_success = step
        if terminated or truncated:
            break
    return np.stack(frames), first_success is not None, first_success


class ZeroActionPolicy:
    """The robot commanded not to move (a zero action every step)."""

    name = "zero-action"

    def __init__(self, action_dim: int):
        self.action = np.zeros(action_dim, np.float32)

    def reset(self, seed: int) -> None:
        pass

    def __call__(self, obs) -> np.ndarray:
        return self.action


def collect(task: str, episodes_per_epsilon: int, seed: int = 0, max_steps: int | None = None,
            epsilons: tuple[float, ...] = EPSILONS, image_size: int = 64, progress: bool = True,
            controls: bool = False) -> list[ScoredEpisode]:
    """Roll out `episodes_per_epsilon` episodes for every epsilon; the same reset seeds at every epsilon."""
    from ..sim import make_env, make_policy

    out = []
    with make_env(task, seed=seed, image_size=image_size) as env:
        policies = [(eps, make_policy(task, env, epsilon=eps, seed=seed)) for eps in epsilons]
        if controls:
            policies.append((None, ZeroActionPolicy(env.action_dim)))
        bar = tqdm(total=len(policies) * episodes_per_epsilon, desc=f"collect {task}", unit="ep", disable=not progress)
        for eps, policy in policies:
            for i in range(episodes_per_epsilon):
                frames, success, first = rollout(env, policy, seed=seed + i, max_steps=max_steps)
                kind = "epsilon" if eps is not None else "zero-action"
                out.append(ScoredEpisode(eps, seed + i, success, frames, first_success=first, kind=kind))
                bar.update(1)
        bar.close()
    if controls:
        out += frozen_first_frame(out)
    return out


def frozen_first_frame(episodes: list[ScoredEpisode]) -> list[ScoredEpisode]:
    """A control per expert episode: its reset frame repeated for its length (a robot that never moves)."""
    return [ScoredEpisode(None, e.seed, False, np.repeat(e.frames[:1], len(e.frames), axis=0),
                          kind="frozen-first-frame")
            for e in episodes if e.kind == "epsilon" and e.epsilon == 0.0]


def read_dataset(path: str, task: str | None = None) -> list[ScoredEpisode]:
    """Episodes of an HDF5 dataset, grouped by their `epsilon` attribute (expert episodes without one: 0)."""
    from ..data import Dataset

    ds = Dataset(path)
    if task is not None and ds.env_args.get("task") not in (None, task):
        raise UserError(f"dataset {path} holds task {ds.env_args.get('task')!r}, not {task!r}.")
    out = []
    for i, ep in enumerate(ds):
        eps = ep.attrs.get("epsilon", 0.0 if ep.success else None)
        if eps is None:
            continue
        ep.require_steps()
        rewards = ep.rewards
        hits = np.flatnonzero(np.asarray(rewards) > 0) if rewards is not None else np.zeros(0, int)
        out.append(ScoredEpisode(float(eps), int(ep.attrs.get("seed", i)), bool(ep.success),
                                 np.asarray(ep.obs[ds.image_key][()]),
                                 first_success=int(hits[0]) if len(hits) else None))
    if not out:
        raise UserError(f"dataset {path} has no episodes with an `epsilon` attribute or success flag.")
    return out
