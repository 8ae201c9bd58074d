"""Reward QA report: does the learned reward rank expert behaviour above epsilon-degraded behaviour?

    metrics = build_report(ReportConfig(model="m.safetensors", task="button-press-v3", out="qa/"))

Writes `metrics.json`, `report.md` and PNG plots into `out` (with `video=True` also one MP4 per epsilon of one
reset seed, the episode above its reward curve with a moving cursor: `video.py`). A good reward model gives AUROC near 1 for
expert (epsilon 0) vs epsilon-1 episodes and vs a frozen robot, on the rows while the task is being done as
well as on whole episodes, and a strongly negative Spearman correlation between epsilon and the episode-mean
reward; the stillness diagnostics show whether it only rewards standing still (`quality.py` defines them all).
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import MISSING, asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..checks import check_int, config_field
from ..errors import UserError
from ..reward_types import REWARD_TYPE_HELP
from ..scoring_options import REPORT_OPTIONS, ScoreConfig, option_field, scoring_options
from . import plots
from .episodes import ScoredEpisode, collect, frozen_first_frame, read_dataset
from .quality import analyse, strip_replicates


@dataclass
class ReportConfig:
    """What `report` does; its fields are the command's flags (`cli/config_args.py`)."""

    task: str = config_field(MISSING, "task to collect (or to check the dataset against)")
    out: str = config_field(MISSING, "folder for metrics.json, report.md and plots", metavar="DIR")
    model: str | None = config_field(None, "reward model file (default: the shipped model of the task's domain)")
    episodes: int = config_field(5, "episodes per epsilon in simulation")
    data: str | None = config_field(None, "read episodes (with an `epsilon` attribute) instead of collecting",
                                    metavar="DATASET")
    compare_model: str | None = config_field(None, "second model scored on the same episodes", metavar="MODEL")
    max_steps: int | None = config_field(None, "agent steps per simulated episode (default: the task's)")
    reward_types: tuple[str, ...] = config_field(
        ("auto",), f"{REWARD_TYPE_HELP}. Several, comma-separated (e.g. entropy,likelihood), score every model with "
                   "each and add a side-by-side table: the paper's 2 x 2 with a VideoGPT --compare-model (default: "
                   "auto)", flag="--reward-type", metavar="TYPE[,TYPE...]")
    skip_step: int = option_field("skip_step")  # the scoring options of REPORT_OPTIONS (scoring_options.py)
    num_samples: int = option_field("num_samples")
    seed: int = config_field(0, "reset seed of the first simulated episode per epsilon (then seed + 1, ...) and of "
                                "the per-frame sampling noise")
    device: str = config_field("cpu", "torch device: cpu, cuda or cuda:N")
    diversity: bool = config_field(False, "also decode sampled next frames and report their mutual SSIM / PSNR per "
                                          "epsilon (Table 2)")
    diversity_samples: int = config_field(4, "sampled next frames per context")
    lpips_weights: str | None = config_field(None, "LPIPS weights: adds LPIPS to the diversity table", metavar="FILE")
    video: bool = config_field(False, "also write an MP4 per epsilon of one reset seed, episode_eps<E>_seed<S>.mp4: "
                                      "the frames scaled up above the episode's reward curve, a cursor at the frame "
                                      "shown, the same-seed expert's curve in grey (H.264, 10 frames/s)")
    video_seed: int | None = config_field(None, "reset seed of the --video episodes (default: the first expert "
                                                "episode's)", metavar="SEED")
    progress: bool = config_field(True, "no progress bar", flag="--no-progress")

    def __post_init__(self):
        from ..reward_types import REWARD_TYPE_CHOICES

        check_int("episodes", self.episodes, 1)
        bad = [t for t in self.reward_types if t not in REWARD_TYPE_CHOICES]
        if bad or not self.reward_types:
            raise UserError(f"`reward_types` must be a comma-separated list of {', '.join(REWARD_TYPE_CHOICES)}; "
                            f"got {','.join(self.reward_types)!r}.")
        check_int("diversity_samples", self.diversity_samples, 2)
        if self.lpips_weights and not self.diversity:
            raise UserError("`lpips_weights` adds LPIPS to the `diversity` table; pass `diversity` too")
        if self.video_seed is not None and not self.video:
            raise UserError("`video_seed` picks the episodes of the `video` MP4s; pass `video` too")
        ScoreConfig(**scoring_options(self, REPORT_OPTIONS), seed=self.seed)  # its checks


def build_report(cfg: ReportConfig) -> dict:
    from ..models import RewardModel

    from ..models.pretrained import resolve_model_path
    from .diversity import diversity

    cfg = replace(cfg, model=resolve_model_path(cfg.model, cfg.task, cfg.data))
    models = {"model": RewardModel.load(cfg.model, device=cfg.device)}
    if cfg.compare_model:
        models["compare_model"] = RewardModel.load(cfg.compare_model, device=cfg.device)
    lpips = None
    if cfg.lpips_weights:  # read before any scoring or writing
        from ..models.lpips import LPIPS

        lpips = LPIPS.from_file(cfg.lpips_weights).eval()
    image_size = models["model"].image_size
    if cfg.data:
        episodes = read_dataset(cfg.data, cfg.task)
        episodes += frozen_first_frame(episodes)
    else:
        episodes = collect(cfg.task, cfg.episodes, seed=cfg.seed, max_steps=cfg.max_steps, image_size=image_size,
                           progress=cfg.progress, controls=True)
    if not any(e.epsilon == 0.0 for e in episodes):
        raise UserError("the report needs expert (epsilon 0) episodes to compare against.")
    if cfg.video:
        from .video import pick_episodes

        pick_episodes(episodes, cfg.video_seed)  # a seed without episodes fails before anything is written

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results, scored_by = {}, {}  # key: "model" / "compare_model" for each model's first reward type, else "name/type"
    for name, model in models.items():
        types = list(dict.fromkeys(model.resolve_reward_type(t) for t in cfg.reward_types))  # "auto" resolved
        for i, reward_type in enumerate(types):
            key = name if i == 0 else f"{name}/{reward_type}"
            scored = [copy.copy(e) for e in episodes]
            scorer, scale = _score(model, reward_type, scored, cfg, desc=key)
            results[key] = _summarise(model, getattr(cfg, name), scored, scale, cfg.seed) | {"reward_type": reward_type}
            scored_by[key] = scored
            if cfg.diversity and i == 0:
                results[key]["diversity"] = diversity(scorer, scored, num_samples=cfg.diversity_samples, lpips=lpips)
            if key == "model":
                _plots(scored, scale, out)
                if cfg.video:
                    from .video import write_videos

                    results[key]["videos"] = write_videos(scored, f"reward ({scale})", out, cfg.video_seed)
    metrics = {"task": cfg.task, "episodes_source": cfg.data or "simulation",
               "report_config": asdict(cfg), **results["model"]}
    if "compare_model" in results:
        metrics["compare_model"] = results["compare_model"]
    metrics["other_reward_types"] = {k: r for k, r in results.items() if "/" in k}
    if len(results) > 1:
        labelled = _labelled(results)
        metrics["side_by_side"] = [_side_by_side_row(label, r) for label, r in labelled.items()]
        plots.auroc_comparison({n: {g: a["value"] for g, a in r["whole"]["auroc_expert_vs"].items()}
                                for n, r in labelled.items()},
                               out / "auroc_comparison.png")
        plots.compared_curves({label: scored_by[k] for label, k in zip(labelled, results)},
                              out / "reward_curves_compared.png")
    _write_text(out / "metrics.json", json.dumps(_finite_or_none(metrics), indent=2))
    _write_text(out / "report.md", _markdown(metrics, results))
    return metrics


def _score(model, reward_type: str, episodes: list[ScoredEpisode], cfg: ReportConfig, desc: str):
    """Fill every episode's reward; standardised when the model has statistics for the task, else raw."""
    from ..reward import RewardScorer

    score_cfg = ScoreConfig(**scoring_options(cfg, REPORT_OPTIONS), reward_type=reward_type, seed=cfg.seed,
                            task=cfg.task, standardize=False)
    scorer = RewardScorer(model, score_cfg)  # resolves what the model's reward type fixes (VideoGPT: skip, samples)
    try:
        model.get_stats(cfg.task, scorer.cfg.reward_type, scorer.cfg.skip_step, scorer.cfg.num_samples,
                        likelihood_compat=scorer.cfg.likelihood_compat)
        standardize = True
        scorer = RewardScorer(model, replace(score_cfg, standardize=True))
    except UserError:
        standardize = False
    for ep in tqdm(episodes, desc=f"score ({desc})", unit="ep", disable=not cfg.progress):
        res = scorer.score_episode(ep.frames)
        ep.reward = res.reward if standardize else res.raw
    return scorer, "standardised" if standardize else "raw"


def _summarise(model, path: str, episodes: list[ScoredEpisode], scale: str, seed: int) -> dict:
    return {"model_path": str(path), "model_hash": model.weights_hash, "model_config": model.config.to_dict(),
            "model_provenance": model.provenance, "reward_scale": scale,
            **strip_replicates(analyse(episodes, seed=seed))}


def _labelled(results: dict) -> dict:
    return {f"{name.split('/')[0]} ({r['model_config'].get('preset', '?')} "
            f"{r['model_config'].get('video_model', 'vqdiffusion')}, {r['model_hash'][:8]}), {r['reward_type']}": r
            for name, r in results.items()}


def _side_by_side_row(label: str, r: dict) -> dict:
    """One scorer's headline numbers: AUROC expert vs epsilon 1 and vs the worse frozen control, Spearman, wins."""
    row = {"scorer": label, "reward_type": r["reward_type"], "reward_scale": r["reward_scale"]}
    for view in ("task_rows", "whole"):
        v = r[view]
        frozen = [v["auroc_expert_vs"][g]["value"] for g in ("zero-action", "frozen-first-frame")
                  if g in v["auroc_expert_vs"] and v["auroc_expert_vs"][g]["value"] is not None]
        row[view] = {"auroc_vs_eps1": v["auroc_expert_vs"].get("1.0", {}).get("value"),
                     "auroc_vs_frozen_worse": min(frozen) if frozen else None,
                     "spearman_epsilon": v["spearman_epsilon"]["value"],
                     "paired_win_rate_vs_eps1": v["paired_win_rate_expert_vs"].get("1.0")}
    return row


def _plots(episodes: list[ScoredEpisode], scale: str, out: Path) -> None:
    label = f"reward ({scale})"
    episodes = [e for e in episodes if e.kind == "epsilon"]
    plots.reward_curves(episodes, label, out / "reward_curves.png")
    plots.reward_histogram(episodes, label, out / "reward_histogram.png")
    expert = next(e for e in episodes if e.epsilon == 0.0)
    plots.episode_strip(expert, label, out / "episode_expert.png")


def _markdown(metrics: dict, results: dict) -> str:
    rc = metrics["report_config"]
    lines = [f"# Reward QA report: {metrics['task']}", "",
             f"Episodes: {metrics['episodes_source']}. Reward: {', '.join(rc['reward_types'])}, skip {rc['skip_step']}, "
             f"{rc['num_samples']} sample(s), seed {rc['seed']}. Intervals: bootstrap 95 %. *Task rows*: the "
             "same-seed expert's rows up to its first success; *whole*: every row.", ""]
    if "side_by_side" in metrics:
        lines += ["## Side by side", "", "| scorer | AUROC vs eps 1, task rows | whole | vs frozen (worse), task rows "
                  "| Spearman(epsilon), task rows | expert wins same seed vs eps 1 |", "|---|---|---|---|---|---|"]
        for row in metrics["side_by_side"]:
            t, w = row["task_rows"], row["whole"]
            lines.append(f"| {row['scorer']} | {_num(t['auroc_vs_eps1'])} | {_num(w['auroc_vs_eps1'])} "
                         f"| {_num(t['auroc_vs_frozen_worse'])} | {_num(t['spearman_epsilon'])} "
                         f"| {_num(t['paired_win_rate_vs_eps1'])} |")
        lines += ["", "![reward curves of every scorer](reward_curves_compared.png)", ""]
    for name, r in _labelled(results).items():
        lines += [f"## {name}", "", f"Rewards ({r['reward_type']}) are **{r['reward_scale']}**"
                  + (" (the model has no statistics for this task; run `diffusion-reward stats`)."
                     if r["reward_scale"] == "raw" else " with the model's statistics."), "",
                  "| episodes | n | success | mean reward, task rows | AUROC expert vs, task rows | mean reward, whole "
                  "| AUROC expert vs, whole | expert wins same seed (task rows) | static transitions |",
                  "|---|---|---|---|---|---|---|---|---|"]
        t, w, st = r["task_rows"], r["whole"], r["stillness"]
        for g, s in t["per_group"].items():
            label = f"epsilon {float(g):g}" if g[0].isdigit() else g
            lines.append(f"| {label} | {s['episodes']} | {r['success_rate'][g]:.2f} | {s['mean']:.3f} ± {s['std']:.3f} "
                         f"| {_interval(t['auroc_expert_vs'].get(g))} | {w['per_group'][g]['mean']:.3f} "
                         f"| {_interval(w['auroc_expert_vs'].get(g))} | {_num(t['paired_win_rate_expert_vs'].get(g))} "
                         f"| {st['static_fraction'][g]:.2f} |")
        lines += ["", f"Spearman(epsilon, episode-mean reward): task rows **{_interval(t['spearman_epsilon'])}**, "
                  f"whole {_interval(w['spearman_epsilon'])} (good: close to -1).", "",
                  "Stillness diagnostics (a reward that only measures stillness ranks the frozen controls high, "
                  "correlates negatively with motion and jumps after success): Spearman(row reward, context motion) "
                  f"{_num(st['spearman_reward_vs_motion_rows'])} per row, "
                  f"{_num(st['spearman_reward_vs_motion_episodes'])} per episode; expert mean reward before success "
                  f"{_num(st['expert_pre_success_mean'])}, after {_num(st['expert_post_success_mean'])}. Per-row "
                  "signal-to-noise (expert vs epsilon 1 over the within-episode std): "
                  + ", ".join(f"{k.replace('_', ' ')} rows {_num(v)}" for k, v in r["signal_to_noise"].items()) + ".",
                  ""]
        if "diversity" in r:
            d = r["diversity"]
            lpips_col = any("lpips" in v for v in d.values())
            lines += [f"Diversity of sampled next frames ({rc['diversity_samples']} per context, pairwise; the paper's "
                      "Table 2: expert contexts give consistent samples, higher SSIM):", "",
                      "| episodes | contexts | SSIM | PSNR (dB) |" + (" LPIPS |" if lpips_col else ""),
                      "|---|---|---|---|" + ("---|" if lpips_col else "")]
            for g, v in d.items():
                label = f"epsilon {float(g):g}" if g[0].isdigit() else g
                lines.append(f"| {label} | {v['contexts']} | {v['ssim']:.3f} | {v['psnr']:.2f} |"
                             + (f" {v['lpips']:.3f} |" if lpips_col else ""))
            lines.append("")
    lines += ["![reward curves](reward_curves.png)", "", "![histogram](reward_histogram.png)", "",
              "![expert episode](episode_expert.png)", ""]
    if len(results) > 1:
        lines += ["![comparison](auroc_comparison.png)", ""]
    if metrics.get("videos"):
        lines += ["Episodes over their reward curve (MP4, the cursor marks the frame shown): "
                  + ", ".join(f"[{name}]({name})" for name in metrics["videos"]), ""]
    return "\n".join(lines)


def _num(x) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.2f}"


def _interval(a: dict | None) -> str:
    if a is None or a["value"] is None:
        return "—"
    return f"{_num(a['value'])} [{_num(a['ci'][0])}, {_num(a['ci'][1])}]"


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
