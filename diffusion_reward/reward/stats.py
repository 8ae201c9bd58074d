"""Standardisation statistics: mean and std of the per-frame score over expert episodes.

The paper standardises r_ce with (mu, sigma) of the same score over the expert videos, keyed by task,
reward type and skip step (upstream ships them only for its released checkpoints and has no script to
compute them). They are stored in the model file under (task, reward type, skip step, num samples).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..errors import UserError
from .scorer import RewardScorer, ScoreConfig


@dataclass
class RewardStats:
    task: str
    reward_type: str
    skip_step: int
    num_samples: int
    mean: float
    std: float
    episodes: int
    frames: int


def compute_stats(model, episodes: list[np.ndarray], task: str, options: ScoreConfig | None = None,
                  progress: bool = True) -> RewardStats:
    """Mean / std of the raw per-frame score over `episodes` (u8[T,H,W,3] each), every frame counted once, scored
    with `options` (reward type, skip step, samples, seed, ...; default: ScoreConfig's)."""
    if not episodes:
        raise UserError(f"no expert episodes of task {task!r} to compute statistics from.")
    options = dataclasses.replace(options or ScoreConfig(), task=task, standardize=False)
    scorer = RewardScorer(model, options)
    raw = [scorer.score_episode(frames).raw
           for frames in tqdm(episodes, desc=f"stats {task}", unit="ep", disable=not progress)]
    scores = np.concatenate(raw).astype(np.float64)
    std = float(scores.std())
    if not np.isfinite(std) or std <= 0:
        raise UserError(f"the scores of task {task!r} have no spread (std {std}); give more or longer episodes.")
    return RewardStats(task, scorer.cfg.reward_type, options.skip_step, options.num_samples,  # "auto" resolved to
                       float(scores.mean()), std, len(episodes), len(scores))  # the type actually scored


def store_stats(model, stats: RewardStats, source: str) -> None:
    model.set_stats(stats.task, stats.reward_type, stats.skip_step, stats.num_samples, stats.mean, stats.std,
                    source=source)


def stats_from_data(model, data: str, task: str | None = None, options: ScoreConfig | None = None,
                    progress: bool = True) -> RewardStats:
    """Statistics of `task` over the expert episodes of a recording (any kind `data.sources` reads), stored
    in `model` with the data's hash as their source. task=None: the dataset's only task."""
    from ..data.sources import load_episodes

    options = options or ScoreConfig()
    episodes, provenance = load_episodes([data], model.image_size, resize=options.resize)
    tasks = sorted({e.task for e in episodes})
    task = task or (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise UserError(f"{data} holds several tasks ({', '.join(tasks)}); choose one with `task`.")
    if task not in tasks:
        raise UserError(f"{data} has no expert episodes of task {task!r} (it has: {', '.join(tasks)}).")
    stats = compute_stats(model, [e.frames for e in episodes if e.task == task], task, options, progress)
    store_stats(model, stats, source=f"{data} sha256:{provenance[0]['sha256']} episodes:{stats.episodes} "
                                     f"frames:{stats.frames} seed:{options.seed}")
    return stats
