"""Reward QA report: does the learned reward rank expert behaviour above epsilon-degraded behaviour?

    metrics = build_report(ReportConfig(model="m.safetensors", task="button-press-v3", out="qa/"))

Writes `metrics.json`, `report.md` and PNG plots into `out`. A good reward model gives AUROC near 1 for
expert (epsilon 0) vs epsilon-1 episodes and a strongly negative Spearman correlation between epsilon
and the episode-mean reward.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import UserError
from . import plots
from .episodes import ScoredEpisode, collect, read_dataset
from .metrics import auroc, spearman


@dataclass
class ReportConfig:
    model: str
    task: str
    out: str
    episodes: int = 5                 # per epsilon, when collected in simulation
    data: str | None = None           # read episodes from this dataset instead (attribute `epsilon` per episode)
    compare_model: str | None = None  # second model scored on the same episodes
    max_steps: int | None = None      # episode length in simulation (default: the task's)
    reward_type: str = "entropy"
    skip_step: int = 9
    num_samples: int = 1
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


def build_report(cfg: ReportConfig) -> dict:
    from ..models import RewardModel

    if cfg.episodes < 1:
        raise UserError("--episodes must be at least 1.")
    models = {"model": RewardModel.load(cfg.model, device=cfg.device)}
    if cfg.compare_model:
        models["compare_model"] = RewardModel.load(cfg.compare_model, device=cfg.device)
    image_size = models["model"].image_size
    if cfg.data:
        episodes = read_dataset(cfg.data, cfg.task)
    else:
        episodes = collect(cfg.task, cfg.episodes, seed=cfg.seed, max_steps=cfg.max_steps, image_size=image_size,
                           progress=cfg.progress)
    if not any(e.epsilon == 0.0 for e in episodes):
        raise UserError("the report needs expert (epsilon 0) episodes to compare against.")

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, model in models.items():
        scored = [copy.copy(e) for e in episodes]
        scale = _score(model, scored, cfg, desc=name)
        results[name] = _summarise(model, getattr(cfg, name), scored, scale)
        if name == "model":
            _plots(scored, scale, out)
    metrics = {"task": cfg.task, "episodes_source": cfg.data or "simulation",
               "report_config": asdict(cfg), **results["model"]}
    if "compare_model" in results:
        metrics["compare_model"] = results["compare_model"]
        plots.auroc_comparison({n: r["auroc_expert_vs"] for n, r in _labelled(results).items()},
                               out / "auroc_comparison.png")
    _write_text(out / "metrics.json", json.dumps(_finite_or_none(metrics), indent=2))
    _write_text(out / "report.md", _markdown(metrics, results))
    return metrics


def _score(model, episodes: list[ScoredEpisode], cfg: ReportConfig, desc: str) -> str:
    """Fill every episode's reward; standardised when the model has statistics for the task, else raw."""
    from ..reward import RewardScorer, ScoreConfig

    standardize = True
    try:
        model.get_stats(cfg.task, cfg.reward_type, cfg.skip_step, cfg.num_samples)
    except UserError:
        standardize = False
    scorer = RewardScorer(model, ScoreConfig(reward_type=cfg.reward_type, skip_step=cfg.skip_step,
                                             num_samples=cfg.num_samples, seed=cfg.seed, task=cfg.task,
                                             standardize=standardize))
    for ep in tqdm(episodes, desc=f"score ({desc})", unit="ep", disable=not cfg.progress):
        res = scorer.score_episode(ep.frames)
        ep.reward = res.reward if standardize else res.raw
    return "standardised" if standardize else "raw"


def _summarise(model, path: str, episodes: list[ScoredEpisode], scale: str) -> dict:
    means = np.array([e.reward.mean() for e in episodes])
    eps = np.array([e.epsilon for e in episodes])
    expert = means[eps == 0.0]
    per_epsilon = {}
    for e in sorted(set(eps.tolist())):
        m = means[eps == e]
        per_epsilon[str(e)] = {"episodes": int(len(m)), "mean": float(m.mean()), "std": float(m.std()),
                               "success_rate": float(np.mean([x.success for x in episodes if x.epsilon == e]))}
    return {
        "model_path": str(path), "model_hash": model.weights_hash, "model_config": model.config.to_dict(),
        "model_provenance": model.provenance, "reward_scale": scale,
        "per_epsilon": per_epsilon,
        "auroc_expert_vs": {str(e): auroc(expert, means[eps == e]) for e in sorted(set(eps.tolist())) if e != 0.0},
        "paired_win_rate_expert_vs": _paired_win_rates(episodes, means),
        "spearman_epsilon_vs_mean_reward": spearman(eps, means),
    }


def _paired_win_rates(episodes: list[ScoredEpisode], means: np.ndarray) -> dict[str, float]:
    """Fraction of reset seeds (same scene) where the expert episode out-scores the epsilon episode.

    The scene (object positions) moves the episode-mean reward as much as the behaviour does, so this
    paired comparison isolates the behaviour; AUROC above compares all expert episodes with all others.
    """
    expert = {e.seed: m for e, m in zip(episodes, means) if e.epsilon == 0.0}
    wins: dict[str, list[float]] = {}
    for e, m in zip(episodes, means):
        if e.epsilon != 0.0 and e.seed in expert:
            wins.setdefault(str(e.epsilon), []).append(float(expert[e.seed] > m) + 0.5 * float(expert[e.seed] == m))
    return {k: float(np.mean(v)) for k, v in sorted(wins.items(), key=lambda kv: float(kv[0]))}


def _labelled(results: dict) -> dict:
    return {f"{name} ({r['model_config'].get('preset', '?')}, {r['model_hash'][:8]})": r for name, r in results.items()}


def _plots(episodes: list[ScoredEpisode], scale: str, out: Path) -> None:
    label = f"reward ({scale})"
    plots.reward_curves(episodes, label, out / "reward_curves.png")
    plots.reward_histogram(episodes, label, out / "reward_histogram.png")
    expert = next(e for e in episodes if e.epsilon == 0.0)
    plots.episode_strip(expert, label, out / "episode_expert.png")


def _markdown(metrics: dict, results: dict) -> str:
    lines = [f"# Reward QA report: {metrics['task']}", "",
             f"Episodes: {metrics['episodes_source']}. Reward: {metrics['report_config']['reward_type']}, skip {metrics['report_config']['skip_step']}, "
             f"{metrics['report_config']['num_samples']} sample(s), seed {metrics['report_config']['seed']}.", ""]
    for name, r in _labelled(results).items():
        lines += [f"## {name}", "", f"Rewards are **{r['reward_scale']}**"
                  + (" (the model has no statistics for this task; run `diffusion-reward stats`)."
                     if r["reward_scale"] == "raw" else " with the model's statistics."), "",
                  "| epsilon | episodes | success rate | episode-mean reward (mean ± std) | AUROC expert vs this "
                  "| expert wins, same seed |", "|---|---|---|---|---|---|"]
        for e, s in r["per_epsilon"].items():
            a, w = r["auroc_expert_vs"].get(e), r["paired_win_rate_expert_vs"].get(e)
            lines.append(f"| {float(e):g} | {s['episodes']} | {s['success_rate']:.2f} | {s['mean']:.3f} ± {s['std']:.3f} "
                         f"| {'—' if a is None else f'{a:.3f}'} | {'—' if w is None else f'{w:.2f}'} |")
        lines += ["", f"Spearman(epsilon, episode-mean reward): **{r['spearman_epsilon_vs_mean_reward']:.3f}** "
                  "(good: close to -1).", ""]
    lines += ["![reward curves](reward_curves.png)", "", "![histogram](reward_histogram.png)", "",
              "![expert episode](episode_expert.png)", ""]
    if len(results) > 1:
        lines += ["![comparison](auroc_comparison.png)", ""]
    return "\n".join(lines)


def _finite_or_none(value):
    """Strict JSON: undefined metrics (e.g. Spearman of constant rewards) become null, not NaN."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
