"""Reward-quality analysis (report/quality.py) on synthetic scored episodes whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from diffusion_reward.report.episodes import ScoredEpisode, frozen_first_frame
from diffusion_reward.report.quality import analyse, bootstrap_auroc, context_motion, task_rows


def _episode(epsilon, seed, reward, first_success=None, moving=True, kind="epsilon"):
    t = len(reward)
    frames = np.zeros((t, 4, 4, 3), np.uint8)
    if moving:
        frames[:] = (np.arange(t) * 10 % 250)[:, None, None, None]  # every transition changes every pixel by 10
    return ScoredEpisode(epsilon, seed, first_success is not None, frames, np.asarray(reward, np.float32),
                         first_success=first_success, kind=kind)


def _stillness_detector_task():
    """Experts solve at step 4 then hold still and score high; during the task they score like epsilon 1."""
    rng = np.random.default_rng(0)
    episodes = []
    for seed in range(8):
        task = rng.normal(0, 1, 5)
        expert = _episode(0.0, seed, np.r_[task, np.full(15, 10.0)], first_success=4)
        expert.frames[5:] = expert.frames[5]  # holds still after success
        episodes += [expert, _episode(1.0, seed, rng.normal(0, 1, 20))]
    return episodes


def test_task_rows_expose_a_reward_that_only_measures_stillness():
    q = analyse(_stillness_detector_task())
    assert task_rows(_stillness_detector_task()) == {s: 5 for s in range(8)}
    assert q["whole"]["auroc_expert_vs"]["1.0"]["value"] == 1.0  # whole episodes: looks perfect
    task = q["task_rows"]["auroc_expert_vs"]["1.0"]
    assert 0.1 < task["value"] < 0.9  # while the task is being done: no better than chance
    lo, hi = task["ci"]
    assert lo < task["value"] < hi and hi - lo > 0.2  # 8 vs 8 episodes: a wide interval
    st = q["stillness"]
    assert st["static_fraction"]["0.0"] == pytest.approx(14 / 19) and st["static_fraction"]["1.0"] == 0.0
    assert st["expert_post_success_mean"] == 10.0 and abs(st["expert_pre_success_mean"]) < 1.5
    assert st["spearman_reward_vs_motion_rows"] < -0.3


def test_a_reward_that_tracks_the_task_separates_on_task_rows_and_beats_frozen_controls():
    rng = np.random.default_rng(1)
    episodes = []
    for seed in range(10):
        for eps in (0.0, 0.5, 1.0):
            r = rng.normal(-3 * eps, 0.5, 30)
            episodes.append(_episode(eps, seed, r, first_success=9 if eps == 0.0 else None))
    frozen = frozen_first_frame(episodes)
    assert len(frozen) == 10 and all(len(np.unique(f.frames, axis=0)) == 1 for f in frozen)
    for f in frozen:
        f.reward = np.full(len(f.frames), -5.0, np.float32)
    q = analyse(episodes + frozen)
    for view in ("task_rows", "whole"):
        assert q[view]["auroc_expert_vs"]["1.0"]["value"] == 1.0
        assert q[view]["auroc_expert_vs"]["frozen-first-frame"]["value"] == 1.0
        assert q[view]["paired_win_rate_expert_vs"]["1.0"] == 1.0
        assert q[view]["spearman_epsilon"]["value"] < -0.8
    assert q["task_rows"]["per_group"]["0.0"]["episodes"] == 10
    assert q["stillness"]["static_fraction"]["frozen-first-frame"] == 1.0
    snr = q["signal_to_noise"]
    assert snr["smooth_1"] > 3 and snr["smooth_5"] > snr["smooth_1"]  # averaging rows removes per-row noise


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(1, 1, 12), rng.normal(0, 1, 12)
    a, b = bootstrap_auroc(pos, neg, seed=3), bootstrap_auroc(pos, neg, seed=3)
    assert a["ci"] == b["ci"] and a["ci"][0] <= a["value"] <= a["ci"][1]
    assert bootstrap_auroc([], neg)["value"] is None


def test_context_motion_is_the_mean_absolute_frame_difference():
    frames = np.zeros((3, 2, 2, 3), np.uint8)
    frames[1] = 6
    assert context_motion(frames).tolist() == [0.0, 6.0, 6.0]
