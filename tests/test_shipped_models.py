"""The reward models shipped in the package (models/pretrained, MODEL_CARD.md): they load, carry statistics for
the evaluated tasks, are what every command falls back to, and rank expert behaviour above random actions.

The ranking check is the fast-tier guard the reward-quality issue asks for: fresh reset seeds (disjoint from
training and from the benchmark's evaluation seeds), the expert compared on the rows while the task is being done
with the epsilon=1 episode of the same seed and with a frozen robot (its own reset frame repeated), in the shipped
models' own reward types (metaworld: likelihood; adroit: likelihood_ratio). The full per-task picture, with
confidence intervals, is the README's table from bench/bench_reward_quality.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel
from diffusion_reward.models.pretrained import resolve_model_path, shipped_model_path
from diffusion_reward.report.episodes import collect
from diffusion_reward.report.quality import task_rows
from diffusion_reward.reward import RewardScorer, ScoreConfig

SEEDS = 20_000  # fresh: training uses episode_seed(0, i), the benchmark 10_000 + i


OWN_TYPE = {"metaworld": "likelihood", "adroit": "likelihood_ratio"}  # MODEL_CARD.md: why each


@pytest.mark.parametrize("domain,task", [("metaworld", "door-close-v3"), ("adroit", "adroit-door")])
def test_shipped_model_loads_with_statistics_and_is_the_default(domain, task):
    path = shipped_model_path(task)
    assert path.name == f"{domain}.safetensors" and path.stat().st_size <= 25 * 2**20
    model = RewardModel.load(path)
    assert model.config.preset == "base" and model.provenance["weights_dtype"] == "bfloat16"
    assert model.reward_type == OWN_TYPE[domain] and model.config.video.frame_skip == 4
    for reward_type in ("likelihood", OWN_TYPE[domain]):
        mean, std = model.get_stats(task, reward_type, 9, 1)
        assert np.isfinite(mean) and std > 0
    assert resolve_model_path(None, task) == str(path)
    assert resolve_model_path("mine.safetensors", task) == "mine.safetensors"
    with pytest.raises(UserError, match="not a MetaWorld / Adroit task"):
        resolve_model_path(None, "franka-wipe")


@pytest.mark.parametrize("task", ["assembly-v3", "door-close-v3", "adroit-door"])
def test_shipped_model_ranks_expert_above_random_and_frozen_on_fresh_seeds_paired(task):
    model = RewardModel.load(shipped_model_path(task))
    scorer = RewardScorer(model, ScoreConfig(task=task, seed=SEEDS))  # float32: the same numbers on every CPU
    assert scorer.cfg.reward_type == model.reward_type
    episodes = collect(task, 3, seed=SEEDS, epsilons=(0.0, 1.0), max_steps=60, progress=False)
    rows = task_rows(episodes)
    means = {}
    for e in episodes:
        n = rows[e.seed]  # a row's score needs frames up to its successor: the rest of the episode is not scored
        means[(e.epsilon, e.seed)] = scorer.score_episode(e.frames[:n + scorer.lookahead]).reward[:n].mean()
        if e.epsilon == 0.0:  # the frozen control: the reset frame for the episode's length
            frozen = np.repeat(e.frames[:1], n + scorer.lookahead, axis=0)
            means[("frozen", e.seed)] = scorer.score_episode(frozen).reward[:n].mean()
    for seed in rows:
        assert means[(0.0, seed)] > means[(1.0, seed)], (seed, means)
        assert means[(0.0, seed)] > means[("frozen", seed)], (seed, means)


def _recording(path, task, camera, free_camera):
    from diffusion_reward.data.writer import DatasetWriter

    with DatasetWriter(path, env_args={"task": task, "image_size": 64, "camera": camera,
                                       "free_camera": free_camera}) as w:
        ep = w.begin_episode()
        for t in range(2):
            ep.add_step(obs={"image": np.zeros((64, 64, 3), np.uint8)}, action=np.zeros(2, np.float32), reward=0.0,
                        done=t == 1, timestamp=float(t))
        w.end_episode(ep, success=False)
    return path


def test_a_recording_from_another_camera_is_refused_by_the_shipped_model(tmp_path, capsys):
    from diffusion_reward.cli import main as cli
    from diffusion_reward.sim.tasks import task_spec

    pen = task_spec("adroit-pen")
    old = _recording(tmp_path / "pen-vil.h5", "adroit-pen", "vil_camera", {})  # adroit-pen before pen_close
    now = _recording(tmp_path / "pen-now.h5", "adroit-pen", pen.camera, dict(pen.free_camera))
    with pytest.raises(UserError, match="from camera 'vil_camera'.*trained on adroit-pen rendered from 'pen_close'"):
        resolve_model_path(None, "adroit-pen", old)
    assert resolve_model_path(None, "adroit-pen", now) == str(shipped_model_path("adroit-pen"))
    assert resolve_model_path("mine.safetensors", "adroit-pen", old) == "mine.safetensors"  # a model given: its call
    assert cli(["score", "--data", str(old), "--out", str(tmp_path / "r.npz")]) == 2
    assert "vil_camera" in capsys.readouterr().err and not (tmp_path / "r.npz").exists()
