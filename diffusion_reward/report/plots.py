"""PNG plots of the QA report (matplotlib Figure objects with the Agg canvas; no pyplot global state)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .episodes import ScoredEpisode


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    tmp.replace(path)


def _colors(epsilons: list[float]):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return {e: cmap(0.9 * i / max(1, len(epsilons) - 1)) for i, e in enumerate(epsilons)}


def reward_curves(episodes: list[ScoredEpisode], ylabel: str, path: Path) -> None:
    """Per-frame reward of every episode (thin) and the mean per epsilon (thick)."""
    epsilons = sorted({e.epsilon for e in episodes})
    colors = _colors(epsilons)
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for eps in epsilons:
        group = [e.reward for e in episodes if e.epsilon == eps]
        for r in group:
            ax.plot(r, color=colors[eps], alpha=0.25, linewidth=0.8)
        length = min(len(r) for r in group)
        ax.plot(np.mean([r[:length] for r in group], axis=0), color=colors[eps], linewidth=2, label=f"eps {eps:g}")
    ax.set(xlabel="frame", ylabel=ylabel, title="reward per frame, by epsilon")
    ax.legend(fontsize=8)
    _save(fig, path)


def reward_histogram(episodes: list[ScoredEpisode], xlabel: str, path: Path) -> None:
    epsilons = sorted({e.epsilon for e in episodes})
    colors = _colors(epsilons)
    values = np.concatenate([e.reward for e in episodes])
    bins = np.linspace(values.min(), values.max() + 1e-6, 40)
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for eps in epsilons:
        ax.hist(np.concatenate([e.reward for e in episodes if e.epsilon == eps]), bins=bins, alpha=0.45,
                color=colors[eps], label=f"eps {eps:g}", density=True)
    ax.set(xlabel=xlabel, ylabel="density", title="per-frame rewards")
    ax.legend(fontsize=8)
    _save(fig, path)


def episode_strip(episode: ScoredEpisode, ylabel: str, path: Path, num_frames: int = 8) -> None:
    """Evenly spaced frames of one episode above its reward curve (markers at the shown frames)."""
    idx = np.linspace(0, len(episode.frames) - 1, num_frames).round().astype(int)
    fig = Figure(figsize=(num_frames * 1.1, 3.6))
    grid = fig.add_gridspec(2, num_frames, height_ratios=(1, 1.4))
    for j, i in enumerate(idx):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(episode.frames[i])
        ax.set_axis_off()
        ax.set_title(str(i), fontsize=8)
    ax = fig.add_subplot(grid[1, :])
    ax.plot(episode.reward, color="black")
    ax.plot(idx, episode.reward[idx], "o", color="tab:red")
    ax.set(xlabel="frame", ylabel=ylabel)
    fig.suptitle(f"epsilon {episode.epsilon:g}, seed {episode.seed}, success {episode.success}", fontsize=9)
    _save(fig, path)


def auroc_comparison(per_model: dict[str, dict[str, float]], path: Path) -> None:
    """AUROC (expert vs each epsilon and control group, keyed like the metrics) of several models side by side."""
    names = list(per_model)
    groups = list(dict.fromkeys(g for m in per_model.values() for g in m))  # the metrics' order: epsilons, controls
    width = 0.8 / len(names)
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    for k, name in enumerate(names):
        values = [per_model[name].get(g) for g in groups]
        ax.bar(np.arange(len(groups)) + k * width, [np.nan if v is None else v for v in values], width, label=name)
    ax.axhline(0.5, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2,
                  [f"eps {float(g):g}" if g[0].isdigit() else g for g in groups], fontsize=7)
    ax.set(ylim=(0, 1), ylabel="AUROC expert vs", title="model comparison")
    ax.legend(fontsize=8)
    _save(fig, path)


def compared_curves(per_scorer: dict[str, list[ScoredEpisode]], path: Path) -> None:
    """Mean reward per frame of the expert (solid) and epsilon-1 episodes (dashed) for several scorers in one plot.
    Each scorer's rewards are z-scored over its expert + epsilon-1 rows, so different scales and types compare."""
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    for k, (name, episodes) in enumerate(per_scorer.items()):
        groups = {eps: [e.reward for e in episodes if e.kind == "epsilon" and e.epsilon == eps] for eps in (0.0, 1.0)}
        pooled = np.concatenate(groups[0.0] + groups[1.0])
        mean, std = pooled.mean(), pooled.std() or 1.0
        for eps, style in ((0.0, "-"), (1.0, "--")):
            if groups[eps]:
                length = min(len(r) for r in groups[eps])
                curve = (np.mean([r[:length] for r in groups[eps]], axis=0) - mean) / std
                ax.plot(curve, style, color=f"C{k}", linewidth=1.6, label=f"{name}, eps {eps:g}")
    ax.set(xlabel="frame", ylabel="reward (z-score per scorer)", title="expert (solid) vs epsilon 1 (dashed)")
    ax.legend(fontsize=7)
    _save(fig, path)
