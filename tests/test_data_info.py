"""`diffusion-reward info`: summary, JSON, --verify, and one-line errors with exit code 2."""
import json
import subprocess
import sys

import h5py
import numpy as np

from diffusion_reward.cli import main
from diffusion_reward.data import FORMAT_VERSION, DatasetWriter

ENV_ARGS = {"task": "button-press-v3", "image_size": 8}


def write_dataset(path, episodes=3):
    rng = np.random.default_rng(0)
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        for i in range(episodes):
            steps = 4 + i
            writer.write_episode(obs={"image": rng.integers(0, 256, (steps, 8, 8, 3), dtype=np.uint8),
                                      "state": np.zeros((steps, 2), np.float32)},
                                 actions=np.zeros((steps, 4)), success=i == 0,
                                 extra={"reward_labels/entropy/reward": np.zeros(steps, np.float32)},
                                 extra_attrs={"reward_labels/entropy": {"skip_step": 9}})
        stream = writer.begin_episode()
        stream.add_step(obs={"image": np.zeros((8, 8, 3), np.uint8), "state": np.zeros(2, np.float32)})
    return path  # the open episode was moved to interrupted/ when the writer closed


def test_info_json(tmp_path, capsys):
    path = write_dataset(tmp_path / "d.hdf5")
    assert main(["info", str(path), "--json", "--verify"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 3 and summary["frames"] == 4 + 5 + 6
    assert summary["success_rate"] == 1 / 3 and summary["image_key"] == "image"
    assert summary["reward_labels"] == {"entropy": 3}
    assert summary["obs_keys"]["image"] == {"shape": [8, 8, 3], "dtype": "uint8"}
    assert summary["env_args"]["task"] == "button-press-v3"
    assert len(summary["interrupted"]) == 1 and "interrupted/demo_3" in summary["interrupted"][0]


def test_info_human_table(tmp_path, capsys):
    path = write_dataset(tmp_path / "d.hdf5")
    assert main(["info", str(path), "--verify"]) == 0
    out = capsys.readouterr().out
    for expected in ("episodes", "33.3%", "image: uint8[8, 8, 3]", "entropy (3 ep)", "interrupted/demo_3", "ok"):
        assert expected in out


def test_info_verify_failure_is_one_line_exit_2(tmp_path, capsys):
    path = write_dataset(tmp_path / "d.hdf5")
    with h5py.File(tmp_path / "d.hdf5.episodes" / "demo_1.h5", "r+") as f:
        f["actions"][2, 1] = np.nan
    assert main(["info", str(path)]) == 0  # the summary alone does not read the data
    capsys.readouterr()
    assert main(["info", str(path), "--verify"]) == 2
    err = capsys.readouterr().err
    assert err == "error: demo_1: actions contain NaN or inf at step 2\n"


def test_info_bad_files_exit_2_with_one_line(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a dataset")
    newer = write_dataset(tmp_path / "newer.hdf5", episodes=1)
    with h5py.File(newer, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    cases = {text: "is not an HDF5 file", newer: f"newer than version {FORMAT_VERSION}",
             tmp_path / "missing.hdf5": "does not exist"}
    for path, message in cases.items():  # through the installed entry point, as a user runs it
        result = subprocess.run([sys.executable, "-m", "diffusion_reward", "info", str(path)],
                                capture_output=True, text=True)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and message in result.stderr and result.stderr.startswith("error: ")


def test_info_on_robomimic_file(tmp_path, capsys):
    path = tmp_path / "robomimic.hdf5"
    with h5py.File(path, "w") as f:
        f["data/demo_0/obs/agentview_image"] = np.zeros((5, 8, 8, 3), np.uint8)
        f["data/demo_0/actions"] = np.zeros((5, 7))
        f["data/demo_0"].attrs["num_samples"] = 5
    assert main(["info", str(path), "--json", "--verify"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["image_key"] == "agentview_image" and summary["format_version"] == 0
    assert summary["frames"] == 5 and summary["success_rate"] is None
