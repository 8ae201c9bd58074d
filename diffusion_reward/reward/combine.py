"""Eq. 5 of the paper: the reward the RL learner sees, combined from stored components.

    r = (1 - alpha) * r_ce_bar + alpha * r_rnd + beta * r_sparse

r_ce_bar is the standardised diffusion (or likelihood) score, r_rnd the RND novelty bonus and r_sparse the
environment's success signal. alpha = 0.95, beta = 1 are the paper's defaults. For tasks that need no
exploration bonus (the paper's pen-like tasks) set alpha = 0: the diffusion term then enters at full weight.

The RND bonus is computed by the learner on its own batches (it changes as the predictor trains), so offline
datasets only store r_ce_bar and r_sparse. A learner that cannot compute RND (offline d3rlpy) passes
`rnd=None`; the r_rnd term is then 0 while the diffusion term keeps its (1 - alpha) scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import check_float
from ..errors import UserError


@dataclass(frozen=True)
class RewardMix:
    alpha: float = 0.95  # weight of the RND bonus; the diffusion term gets (1 - alpha)
    beta: float = 1.0  # weight of the sparse success reward

    def __post_init__(self):
        check_float("alpha", self.alpha, 0.0, 1.0)
        check_float("beta", self.beta, 0.0)

    def combine(self, diffusion, sparse, rnd=None) -> np.ndarray:
        """Per-step reward (float32[T]) from r_ce_bar[T], r_sparse[T] and optionally r_rnd[T]."""
        diffusion = np.asarray(diffusion, dtype=np.float32)
        sparse = np.asarray(sparse, dtype=np.float32)
        rnd = np.zeros_like(diffusion) if rnd is None else np.asarray(rnd, dtype=np.float32)
        if not diffusion.shape == sparse.shape == rnd.shape:
            raise UserError(
                f"reward components differ in length: diffusion {diffusion.shape}, sparse {sparse.shape}, "
                f"rnd {rnd.shape}."
            )
        out = (1.0 - self.alpha) * diffusion + self.alpha * rnd + self.beta * sparse
        return out.astype(np.float32)
