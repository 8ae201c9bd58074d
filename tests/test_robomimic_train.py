"""robomimic's own trainer (`python -m robomimic.scripts.train`, robomimic 0.3.0) runs one epoch of BC and IQL on a
file written by `diffusion-reward convert --to robomimic`, in the separate venv that scripts/setup_robomimic.sh
makes (.venv-robomimic: robomimic needs torchvision, which does not import beside .venv's CPU torch).

Tier `robomimic` (`pytest -m robomimic`), run by .ci/run after the setup script. Without the venv the tests skip
with the reason, except where DIFFUSION_REWARD_REQUIRE_ROBOMIMIC=1 (CI), where a missing venv fails.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_policy_data import write_dataset

from diffusion_reward.cli import main

pytestmark = pytest.mark.robomimic
ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-robomimic" / "bin" / "python"


@pytest.fixture(scope="module")
def robomimic_python():
    if not PYTHON.exists():
        reason = f"{PYTHON} is missing: run `bash scripts/setup_robomimic.sh`"
        if os.environ.get("DIFFUSION_REWARD_REQUIRE_ROBOMIMIC") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return PYTHON


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("robomimic")
    labelled = write_dataset(root / "labelled.hdf5", episodes=6, steps=20, labels=("likelihood",))
    out = root / "robomimic.hdf5"
    assert main(["convert", str(labelled), "--to", "robomimic", "--reward", "diffusion", "--out", str(out)]) == 0
    return out


def train(python: Path, data: Path, out: Path, algo: str, low_dim: list[str], rgb: list[str]) -> str:
    """robomimic's train.py with a partial config (robomimic fills the rest from its defaults); one short epoch
    with validation on the valid mask, rollouts off (robomimic has no MetaWorld env wrapper)."""
    config = {
        "algo_name": algo,
        "experiment": {"name": algo, "validate": True, "epoch_every_n_steps": 3, "validation_epoch_every_n_steps": 1,
                       "rollout": {"enabled": False}, "render_video": False,
                       "logging": {"terminal_output_to_txt": False, "log_tb": False},
                       "save": {"enabled": True, "every_n_epochs": 1, "on_best_rollout_success_rate": False}},
        "train": {"data": str(data), "output_dir": str(out), "num_epochs": 1, "batch_size": 8, "cuda": False,
                  "hdf5_filter_key": "train", "hdf5_validation_filter_key": "valid", "hdf5_cache_mode": "low_dim"},
        "observation": {"modalities": {"obs": {"low_dim": low_dim, "rgb": rgb}}},
    }
    path = out.with_suffix(".json")
    path.write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(python), "-m", "robomimic.scripts.train", "--config", str(path)], capture_output=True,
                          text=True, cwd=out.parent, env=env, timeout=600)
    log = proc.stdout + proc.stderr
    # robomimic's train.py prints a failed run's traceback and still exits 0: its own success line is the verdict
    assert proc.returncode == 0 and "finished run successfully!" in log, log[-3000:]
    [checkpoint] = out.glob(f"{algo}/*/models/model_epoch_1.pth")
    assert checkpoint.stat().st_size > 0
    return log


def epoch_losses(log: str, key: str) -> list[float]:
    """The values of `key` in the epoch summaries robomimic prints as JSON (train, then validation)."""
    return [float(line.split(":")[1].strip().rstrip(",")) for line in log.splitlines()
            if line.strip().startswith(f'"{key}"')]


def test_converted_file_has_what_robomimic_offline_rl_reads(converted):
    with h5py.File(converted, "r") as f:
        assert json.loads(f["data"].attrs["env_args"])["type"] == 2
        for name in f["data"]:
            g = f["data"][name]
            assert {"obs", "next_obs", "actions", "rewards", "dones"} <= set(g)
            assert g["rewards"].dtype == np.float32 and g.attrs["num_samples"] == len(g["actions"])


def test_robomimic_bc_on_state(robomimic_python, converted, tmp_path):
    log = train(robomimic_python, converted, tmp_path / "bc_state", "bc", ["state"], [])
    assert "net=VisualCore(" not in log
    losses = epoch_losses(log, "Loss")
    assert len(losses) == 2 and all(np.isfinite(losses))  # one train and one validation epoch


def test_robomimic_bc_on_images(robomimic_python, converted, tmp_path):
    log = train(robomimic_python, converted, tmp_path / "bc_image", "bc", [], ["image"])
    assert "net=VisualCore(" in log and "ResNet18Conv(" in log  # the printed model has an image encoder
    assert all(np.isfinite(epoch_losses(log, "Loss")))


def test_robomimic_iql_reads_rewards_next_obs_and_dones(robomimic_python, converted, tmp_path):
    log = train(robomimic_python, converted, tmp_path / "iql", "iql", ["state"], [])
    critic = epoch_losses(log, "critic/critic1_loss")
    assert critic and all(np.isfinite(critic))
