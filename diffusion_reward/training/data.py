"""Training data: expert episodes (read by `data.sources.load_episodes`, any recording kind), split and sampled.

Every source is read once into memory as uint8 frames (the reward model's 64x64 frames are small: 100
episodes x 100 frames = 120 MB). Batches are drawn from one seeded `torch.Generator`; every rank draws
the same global batch and keeps its own slice (DistributedSampler-style), so the data order depends only
on the seed and the step, and a resumed run continues with the generator state it saved.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data import Episode
from ..errors import UserError
from ..models.video import context_window, gather_context


def split_by_episode(episodes: list[Episode], val_fraction: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    """Hold out round(val_fraction * n) episodes of every task (at least one when the task has two or more)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for task in sorted({e.task for e in episodes}):
        eps = [e for e in episodes if e.task == task]
        n_val = 0 if val_fraction == 0 or len(eps) < 2 else max(1, round(val_fraction * len(eps)))
        order = rng.permutation(len(eps))
        val += [eps[i] for i in order[:n_val]]
        train += [eps[i] for i in order[n_val:]]
    return train, val


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    return indices[rank::world_size]


class FrameSampler:
    """Uniform random frames over all training frames (codec training)."""

    def __init__(self, episodes: list[Episode], seed: int):
        self.frames = torch.from_numpy(np.concatenate([e.frames for e in episodes]))  # u8[N,H,W,3]
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, batch_size: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        idx = torch.randint(len(self.frames), (batch_size,), generator=self.generator)
        return self.frames[shard(idx, rank, world_size)]


def context_indices(target: int, context_frames: int, frame_skip: int, padding: str = "repeat") -> list[int]:
    """Frames conditioning the prediction of frame `target`, oldest first (-1: [PAD]).

    The scorer's row layout (models.video.context_window) for row target - frame_skip, so the first rows train
    on exactly the contexts they are scored on: (f0, f0) -> f1 with "repeat" padding, ([PAD], f0) -> f1 with "token".
    """
    return context_window(np.array([target - frame_skip]), context_frames, frame_skip, padding)[0].tolist()


class WindowSampler:
    """(context tokens, next-frame tokens) windows from tokenised episodes (video-model training).

    Upstream draws a random time index per video, with a fixed epoch length of 33 items per video and
    no windows that start before the episode. We draw an episode uniformly (every episode counts the same,
    as upstream), then a target frame uniformly over all of that episode's frames that have at least
    one context frame, including the first rows whose history is padded, so training sees every
    context the reward computation will ask about. `full_context=True` (VideoGPT, as upstream) draws only targets
    whose whole context lies inside the episode: t >= context_frames * frame_skip.
    """

    def __init__(self, tokens: list[torch.Tensor], context_frames: int, frame_skip: int, seed: int,
                 pad_id: int | None = None, full_context: bool = False):
        self.first_target = frame_skip * (context_frames if full_context else 1)
        self.tokens = [t for t in tokens if len(t) > self.first_target]  # each: long[T,64]
        if not self.tokens:
            raise UserError(f"no training episode is longer than {self.first_target} frames (the context of the "
                            f"first target frame).")
        self.context_frames, self.frame_skip = context_frames, frame_skip
        self.pad_id = pad_id  # the video model's [PAD] context id; None: upstream's repeated-frame padding
        self.padding = "repeat" if pad_id is None else "token"
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, batch_size: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        episode = torch.randint(len(self.tokens), (batch_size,), generator=self.generator)
        u = torch.rand(batch_size, generator=self.generator)
        x0, cond = [], []
        for e, r in zip(shard(episode, rank, world_size).tolist(), shard(u, rank, world_size).tolist()):
            tokens = self.tokens[e]
            target = self.first_target + int(r * (len(tokens) - self.first_target))
            x0.append(tokens[target])
            cond.append(self._context(tokens, target))
        return torch.stack(x0), torch.stack(cond)  # long[b,64], long[b,ctx*64]

    def _context(self, tokens: torch.Tensor, target: int) -> torch.Tensor:
        window = np.array([context_indices(target, self.context_frames, self.frame_skip, self.padding)])
        return gather_context(tokens, window, self.pad_id)[0]

    def all_windows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every window once (validation)."""
        x0, cond = [], []
        for tokens in self.tokens:
            for target in range(self.first_target, len(tokens)):
                x0.append(tokens[target])
                cond.append(self._context(tokens, target))
        return torch.stack(x0), torch.stack(cond)
