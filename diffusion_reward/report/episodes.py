"""Episodes for the QA report: rolled out in simulation at several epsilons, or read from a dataset."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..errors import UserError

EPSILONS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class ScoredEpisode:
    epsilon: float
    seed: int
    success: bool
    frames: np.ndarray            # u8[T,H,W,3], the reset frame first
    reward: np.ndarray | None = None  # f32[T] (standardised if statistics exist, else raw)


def rollout(env, policy, seed: int, max_steps: int | None = None) -> tuple[np.ndarray, bool]:
    """One episode: frames u8[T+1,H,W,3] (reset frame included) and whether the task was ever solved."""
    policy.reset(seed)
    obs = env.reset(seed=seed)
    frames, success = [obs["image"]], False
    for _ in range(max_steps or env.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        frames.append(obs["image"])
        success |= bool(info.get("success", False))
        if terminated or truncated:
            break
    return np.stack(frames), success


def collect(task: str, episodes_per_epsilon: int, seed: int = 0, max_steps: int | None = None,
            epsilons: tuple[float, ...] = EPSILONS, image_size: int = 64, progress: bool = True) -> list[ScoredEpisode]:
    """Roll out `episodes_per_epsilon` episodes for every epsilon; the same reset seeds at every epsilon."""
    from ..sim import make_env, make_policy

    out = []
    with make_env(task, seed=seed, image_size=image_size) as env:
        bar = tqdm(total=len(epsilons) * episodes_per_epsilon, desc=f"collect {task}", unit="ep", disable=not progress)
        for eps in epsilons:
            policy = make_policy(task, env, epsilon=eps, seed=seed)
            for i in range(episodes_per_epsilon):
                frames, success = rollout(env, policy, seed=seed + i, max_steps=max_steps)
                out.append(ScoredEpisode(eps, seed + i, success, frames))
                bar.update(1)
        bar.close()
    return out


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
        out.append(ScoredEpisode(float(eps), int(ep.attrs.get("seed", i)), bool(ep.success),
                                 np.asarray(ep.obs[ds.image_key][()])))
    if not out:
        raise UserError(f"dataset {path} has no episodes with an `epsilon` attribute or success flag.")
    return out
