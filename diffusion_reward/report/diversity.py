"""The paper's generative-diversity diagnostic (its Table 2): how different are the next frames the video model
samples for one context? Expert contexts should give consistent samples (high mutual SSIM), degraded ones diverse.

    table = diversity(scorer, episodes, rows_per_episode=4, num_samples=4)   # {group: {"ssim", "psnr", "lpips"}}

For `rows_per_episode` evenly spaced rows of every episode's task rows (quality.task_rows), the entropy chain
samples `num_samples` next frames (x0_hat, seeded like the reward), the codec decodes them, and every pair of
samples of one context is compared: SSIM (11x11 Gaussian window, sigma 1.5, on [0, 1] RGB, mean over channels),
PSNR (dB, peak 1) and, when LPIPS weights are given, LPIPS.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F

from .quality import group_episodes, task_rows


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = (g / g.sum())[:, None] * (g / g.sum())[None, :]
    return g.float()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N,) SSIM (Wang et al. 2004, valid-window means)."""
    c = a.shape[1]
    w = _gaussian_window().to(a)[None, None].expand(c, 1, -1, -1)
    mu_a, mu_b = F.conv2d(a, w, groups=c), F.conv2d(b, w, groups=c)
    var_a = F.conv2d(a * a, w, groups=c) - mu_a**2
    var_b = F.conv2d(b * b, w, groups=c) - mu_b**2
    cov = F.conv2d(a * b, w, groups=c) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
    return 10 * torch.log10(1.0 / mse)


@torch.no_grad()
def diversity(scorer, episodes, rows_per_episode: int = 4, num_samples: int = 4, lpips=None) -> dict:
    """Mean pairwise SSIM / PSNR (/ LPIPS) of sampled next frames per epsilon / control group."""
    if num_samples < 2:
        raise ValueError("diversity needs at least 2 samples per context")
    model, rows = scorer.model, task_rows(episodes)
    table = {}
    for group, members in group_episodes(episodes).items():
        scores: dict[str, list[float]] = {"ssim": [], "psnr": []} | ({"lpips": []} if lpips is not None else {})
        contexts = 0
        for e in members:
            n = min(rows.get(e.seed, len(e.frames)), len(e.frames))
            picked = np.unique(np.linspace(0, n - 1, rows_per_episode).round().astype(int))
            contexts += len(picked)
            tokens = model.tokenize(scorer.prepare_frames(e.frames))
            cond, _ = scorer.condition_rows(tokens, picked)
            samples = scorer.sample_next_tokens(cond, picked, num_samples)  # (S, B, L)
            images = (model.codec.decode_tokens(samples.flatten(0, 1).to(model.device)).float().clamp(-1, 1) + 1) / 2
            images = images.view(num_samples, len(picked), *images.shape[1:]).cpu()
            for i, j in combinations(range(num_samples), 2):
                scores["ssim"] += ssim(images[i], images[j]).tolist()
                scores["psnr"] += psnr(images[i], images[j]).tolist()
                if lpips is not None:
                    scores["lpips"] += lpips(images[i] * 2 - 1, images[j] * 2 - 1).flatten().tolist()
        table[group] = {k: float(np.mean(v)) for k, v in scores.items()} | {"contexts": contexts}
    return table
