"""The README's Python API snippet runs as written (on a small expert dataset) and does what the CLI does."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
from test_relabel_cli import TASK, write_source

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_snippet() -> str:
    text = README.read_text()
    section = text[text.index("**Python API.**"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_snippet_trains_scores_and_saves(tmp_path, monkeypatch):
    import diffusion_reward as dr

    monkeypatch.chdir(tmp_path)
    write_source(tmp_path / "experts.hdf5", episodes=4, steps=12)
    frames = np.random.default_rng(1).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    code = readme_snippet().replace("button-press-v3", TASK)
    scope = {"frames": frames}
    exec(compile(code, "README.md", "exec"), scope)

    model, stats, rewards = scope["model"], scope["stats"], scope["rewards"]
    assert model.provenance["training_steps"] == 40 and model.provenance["preset"] == "tiny"
    assert (stats.task, stats.reward_type, stats.frames) == (TASK, "likelihood", 4 * 12)
    assert rewards.shape == (9,) and np.isfinite(rewards).all()
    loaded = dr.RewardModel.load("reward.safetensors")
    assert loaded.weights_hash == model.weights_hash and loaded.get_stats(TASK, "likelihood", 9, 1)
    direct = dr.RewardScorer(loaded, dr.ScoreConfig(task=TASK, reward_type="likelihood")).score_episode(frames)
    np.testing.assert_array_equal(direct.reward, rewards)  # the API's scorer is the CLI's scorer


def test_import_is_light_and_exports_the_api():
    import subprocess

    code = ("import sys, diffusion_reward as dr; assert 'torch' not in sys.modules; dr.ScoreConfig(); "
            "assert 'torch' not in sys.modules; dr.RewardModel; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
