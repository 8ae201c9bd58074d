"""Reward-quality analysis: does a reward rank expert behaviour first, while the task is being done, and is
that more than a stillness detector?

    q = analyse(episodes)        # episodes: ScoredEpisode with .reward filled (report/episodes.py)

Two views of every episode, both reported:
- `whole`: the episode-mean reward over all rows;
- `task_rows`: the rows while the task is being done: the same-seed expert episode's rows up to and including its
  first success (row i scores the transition from frame i to i+1), the same number of rows of every episode
  of that seed (all rows where the expert of that seed never succeeded).
For each: AUROC(expert vs each epsilon and each frozen control) and Spearman(epsilon, episode mean), with
percentile bootstrap 95 % intervals (episodes resampled with replacement, `BOOTSTRAP` replicates, seeded), and
the paired (same reset seed) win rate of the expert.
Stillness diagnostics: the static-transition fraction per epsilon, the rank correlation of the reward with the
motion in its context frames (per row and per episode), and the expert's reward before vs after success.
Signal-to-noise: the expert-vs-epsilon-1 gap of the per-row reward over its within-episode standard deviation,
raw and after a moving average over `SMOOTHING` rows.
"""
from __future__ import annotations

import numpy as np

from .episodes import CONTROLS
from .metrics import auroc, spearman

BOOTSTRAP = 1000
STATIC_THRESHOLD = 1.0  # mean |frame difference| (0..255) below which a transition counts as static
SMOOTHING = (1, 5)


def bootstrap_auroc(pos, neg, reps: int = BOOTSTRAP, seed: int = 0) -> dict:
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return {"value": None, "ci": [None, None], "n": [len(pos), len(neg)], "replicates": []}
    rng = np.random.default_rng(seed)
    reps_ = [auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(reps)]
    return {"value": auroc(pos, neg), "ci": _ci(reps_), "n": [len(pos), len(neg)], "replicates": reps_}


def bootstrap_spearman(x, y, reps: int = BOOTSTRAP, seed: int = 0) -> dict:
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    reps_ = []
    for _ in range(reps):
        i = rng.integers(len(x), size=len(x))
        reps_.append(spearman(x[i], y[i]))
    return {"value": spearman(x, y), "ci": _ci(reps_), "n": len(x), "replicates": reps_}


def _ci(values) -> list:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) else [None, None]


def task_rows(episodes) -> dict[int, int]:
    """Reset seed -> number of rows while the task is being done (expert's first success + 1, else all)."""
    return {e.seed: (e.first_success + 1 if e.first_success is not None else len(e.frames))
            for e in episodes if e.kind == "epsilon" and e.epsilon == 0.0}


def context_motion(frames: np.ndarray) -> np.ndarray:
    """Per row i: mean |f[i] - f[i-1]| over pixels (row 0: 0), the motion the reward's context frames show."""
    f = frames.astype(np.int16)
    return np.r_[0.0, np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))]


def analyse(episodes, seed: int = 0) -> dict:
    """All quality metrics of one task's scored episodes (see module docstring); JSON-ready except replicates."""
    rows, groups = task_rows(episodes), group_episodes(episodes)
    views = {"whole": lambda e: e.reward, "task_rows": lambda e: e.reward[:rows.get(e.seed, len(e.reward))]}
    out = {}
    for view, cut in views.items():
        means = {id(e): float(np.mean(cut(e))) for e in episodes}
        expert = [means[id(e)] for e in groups.get("0.0", [])]
        out[view] = {
            "per_group": {g: {"episodes": len(es), "mean": float(np.mean([means[id(e)] for e in es])),
                              "std": float(np.std([means[id(e)] for e in es]))} for g, es in groups.items()},
            "auroc_expert_vs": {g: bootstrap_auroc(expert, [means[id(e)] for e in es], seed=seed)
                                for g, es in groups.items() if g != "0.0"},
            "paired_win_rate_expert_vs": _paired(groups, means),
            "spearman_epsilon": bootstrap_spearman(
                [e.epsilon for e in episodes if e.kind == "epsilon"],
                [means[id(e)] for e in episodes if e.kind == "epsilon"], seed=seed),
        }
    out["stillness"] = _stillness(groups)
    out["signal_to_noise"] = {f"smooth_{w}": _snr(groups, rows, w) for w in SMOOTHING}
    out["success_rate"] = {g: float(np.mean([e.success for e in es])) for g, es in groups.items()}
    return out


def group_episodes(episodes) -> dict[str, list]:
    """Episodes by group: "0.0", "0.25", ... (epsilon, ascending), then the controls in CONTROLS order."""
    groups: dict[str, list] = {}
    order = {kind: i for i, kind in enumerate(("epsilon",) + CONTROLS)}  # epsilons ascending, then the controls
    for e in sorted(episodes, key=lambda e: (order[e.kind], e.epsilon or 0.0)):
        groups.setdefault(str(e.epsilon) if e.kind == "epsilon" else e.kind, []).append(e)
    return groups


def _paired(groups: dict[str, list], means: dict) -> dict[str, float]:
    """Fraction of reset seeds (same scene) where the expert out-scores the compared episode (ties: one half)."""
    expert = {e.seed: means[id(e)] for e in groups.get("0.0", [])}
    wins: dict[str, list[float]] = {}
    for g, es in groups.items():
        for e in es:
            if g != "0.0" and e.seed in expert:
                m = means[id(e)]
                wins.setdefault(g, []).append(float(expert[e.seed] > m) + 0.5 * float(expert[e.seed] == m))
    return {g: float(np.mean(v)) for g, v in wins.items()}


def _stillness(groups: dict[str, list]) -> dict:
    motion = {id(e): context_motion(e.frames) for es in groups.values() for e in es}
    static = {g: float(np.mean(np.concatenate([motion[id(e)][1:] < STATIC_THRESHOLD for e in es])))
              for g, es in groups.items()}
    eps_eps = [e for es in groups.values() for e in es if e.kind == "epsilon"]
    per_row = spearman(np.concatenate([motion[id(e)] for e in eps_eps]), np.concatenate([e.reward for e in eps_eps]))
    per_episode = spearman([motion[id(e)].mean() for e in eps_eps], [e.reward.mean() for e in eps_eps])
    experts = [e for e in eps_eps if e.epsilon == 0.0 and e.first_success is not None]
    pre = [e.reward[:e.first_success + 1].mean() for e in experts]
    post = [e.reward[e.first_success + 1:].mean() for e in experts if len(e.reward) > e.first_success + 1]
    return {"static_fraction": static, "spearman_reward_vs_motion_rows": per_row,
            "spearman_reward_vs_motion_episodes": per_episode,
            "expert_pre_success_mean": float(np.mean(pre)) if pre else None,
            "expert_post_success_mean": float(np.mean(post)) if post else None}


def _snr(groups: dict[str, list], rows: dict[int, int], window: int) -> float | None:
    """(mean expert row - mean epsilon-1 row) / pooled within-episode row std, on the task rows."""
    def task_part(e):
        r = e.reward[:rows.get(e.seed, len(e.reward))].astype(float)
        return np.convolve(r, np.ones(window) / window, mode="valid") if len(r) >= window else r[:0]

    if "1.0" not in groups or "0.0" not in groups:
        return None
    a = [x for x in map(task_part, groups["0.0"]) if len(x) > 1]
    b = [x for x in map(task_part, groups["1.0"]) if len(x) > 1]
    if not a or not b:
        return None
    within = np.concatenate([x - x.mean() for x in a + b])
    if within.std() == 0:
        return None
    return float((np.concatenate(a).mean() - np.concatenate(b).mean()) / within.std())


def strip_replicates(value):
    """The analysis without bootstrap replicates (what metrics.json stores)."""
    if isinstance(value, dict):
        return {k: strip_replicates(v) for k, v in value.items() if k != "replicates"}
    return value
