"""`diffusion-reward stats`: statistics over expert episodes are stored in a new model file and then used."""
from __future__ import annotations

import numpy as np
import pytest
from test_training_unit import write_dataset

from diffusion_reward.cli import main as cli_main
from diffusion_reward.data import Dataset
from diffusion_reward.models import RewardModel
from diffusion_reward.reward import RewardScorer, ScoreConfig


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    model = RewardModel.from_preset("tiny", seed=0).save(root / "model.safetensors")
    expert = write_dataset(root / "expert.h5", "squares", 3, steps=6)
    return root, model, expert


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main(["stats", "--no-progress", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stats_are_written_to_a_new_file_and_standardise_the_expert_scores(files, capsys, tmp_path):
    root, model_path, expert = files
    before = model_path.read_bytes()
    out = tmp_path / "with_stats.safetensors"
    code, stdout, _ = run_cli(capsys, "--model", model_path, "--data", expert, "--seed", 3, "--out", out)
    assert code == 0 and "squares entropy skip 9 n 1" in stdout
    assert model_path.read_bytes() == before  # the source model is untouched

    model = RewardModel.load(out)
    mean, std = model.get_stats("squares", "entropy", 9, 1)
    assert std > 0 and model.weights_hash == RewardModel.load(model_path).weights_hash
    # the same seed gives the same raw scores, so the expert frames standardise to exactly mean 0, std 1
    scorer = RewardScorer(model, ScoreConfig(task="squares", seed=3, standardize=True))
    rewards = np.concatenate([scorer.score_episode(np.asarray(ep.obs["image"][()])).reward for ep in Dataset(expert)])
    assert abs(rewards.mean()) < 1e-4 and abs(rewards.std() - 1.0) < 1e-4
    # other keys are separate entries
    code, _, _ = run_cli(capsys, "--model", out, "--data", expert, "--skip-step", 19, "--in-place")
    assert code == 0
    stats = RewardModel.load(out).stats
    assert sorted(stats) == ["squares/entropy/skip19/n1", "squares/entropy/skip9/n1"]
    assert stats["squares/entropy/skip19/n1"]["mean"] != mean


def test_wrong_task_or_ambiguous_task_is_one_line_exit_2(files, capsys, tmp_path):
    root, model_path, expert = files
    code, _, err = run_cli(capsys, "--model", model_path, "--data", expert, "--task", "door-open-v3",
                           "--out", tmp_path / "x.safetensors")
    assert code == 2 and err.strip() == "error: " + (
        f"{expert} has no expert episodes of task 'door-open-v3' (it has: squares).")
    videos = tmp_path / "videos" / "metaworld"
    for task in ("a", "b"):
        episode = videos / task / "train" / "0"
        episode.mkdir(parents=True)
        import cv2

        for i in range(3):
            cv2.imwrite(str(episode / f"{i}.png"), np.full((64, 64, 3), 40 * i, np.uint8))
    code, _, err = run_cli(capsys, "--model", model_path, "--data", videos, "--out", tmp_path / "y.safetensors")
    assert code == 2 and "several tasks (a, b)" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "--model", model_path, "--data", expert, "--out", model_path)
    assert code == 2 and "--in-place" in err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "y.safetensors").exists()
