"""HDF5 (ours and robomimic-layout), PNG-folder and RealSense sources, from files the tests write."""
from __future__ import annotations

import dataclasses
import json

import cv2
import h5py
import numpy as np
import pytest

from diffusion_reward.data import DatasetWriter
from diffusion_reward.errors import UserError
from diffusion_reward.data.sources import detect_kind, open_source
from realsense_recording import record_realsense


def read_episodes(path, **options):
    """Every episode of a source with its frames and observations in memory (sources read them lazily, valid
    only while the episode is the iterator's current one)."""
    return [dataclasses.replace(ep, frames=ep.frames[:], obs={k: v[:] for k, v in ep.obs.items()})
            for ep in open_source(path, **options)]


def test_our_hdf5_passes_every_stream_through(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    state = rng.normal(size=(5, 3)).astype(np.float32)
    with DatasetWriter(tmp_path / "d.hdf5", env_args={"task": "reach-v3", "image_size": 64}) as w:
        w.write_episode(obs={"image": frames, "state": state}, actions=np.ones((5, 4), np.float32),
                        rewards=np.eye(5, dtype=np.float32)[4], timestamps=np.arange(5) * 0.1, success=True,
                        stamps={"image": np.arange(5) * 0.1 + 0.01}, attrs={"reset_seed": 17, "epsilon": 0.5})
    [ep] = read_episodes(tmp_path / "d.hdf5")
    assert ep.name == "demo_0" and ep.success is True and ep.attrs["source_kind"] == "hdf5"
    assert np.array_equal(ep.frames, frames) and np.array_equal(ep.obs["state"], state) and "image" not in ep.obs
    assert np.array_equal(ep.rewards, np.eye(5)[4]) and np.allclose(ep.stamps["image"], np.arange(5) * 0.1 + 0.01)
    assert ep.actions.shape == (5, 4) and ep.dones[-1] == 1
    # the episode's own attributes travel with it (evaluation finds layouts by reset seed)
    assert ep.attrs["reset_seed"] == 17 and ep.attrs["epsilon"] == 0.5 and "num_samples" not in ep.attrs


def write_robomimic(path, episodes=2, steps=4, size=84):
    """A file in robomimic's own layout, as its dataset scripts write it (no attributes of ours)."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        for i in range(episodes):
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = steps
            g.create_dataset("obs/agentview_image", data=rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8))
            g.create_dataset("obs/robot0_eef_pos", data=rng.normal(size=(steps, 3)))
            g.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)))
            g.create_dataset("rewards", data=np.eye(steps)[-1])
            g.create_dataset("dones", data=np.eye(steps, dtype=np.int64)[-1])
    return path


def test_robomimic_layout(tmp_path):
    path = write_robomimic(tmp_path / "low_dim.hdf5")
    episodes = read_episodes(path)
    assert [e.name for e in episodes] == ["demo_0", "demo_1"]
    with h5py.File(path) as f:
        assert np.array_equal(episodes[1].frames, f["data/demo_1/obs/agentview_image"][()])
    assert set(episodes[0].obs) == {"robot0_eef_pos"} and episodes[0].actions.shape == (4, 7)
    with pytest.raises(UserError, match=r"no observation 'wrist'.*agentview_image"):
        list(open_source(path, image_topic="wrist"))
    with pytest.raises(UserError, match="`rate_hz` applies to time-stamped recordings"):
        list(open_source(path, rate_hz=10))


def write_png_folder(root, tasks=("button-press-v3",), episodes=2, frames=3):
    rng = np.random.default_rng(2)
    written = {}
    for task in tasks:
        for split in ("train", "test"):
            for e in range(episodes):
                folder = root / "metaworld" / task / split / str(e)
                folder.mkdir(parents=True)
                video = rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)
                for i, img in enumerate(video):
                    cv2.imwrite(str(folder / f"{i}.png"), img[..., ::-1])
                written[f"metaworld/{task}/{split}/{e}"] = video
    return written


def test_png_folders_all_splits(tmp_path):
    written = write_png_folder(tmp_path / "video_dataset")
    assert detect_kind(tmp_path / "video_dataset") == "png"
    episodes = {e.name: e for e in open_source(tmp_path / "video_dataset")}
    assert episodes.keys() == written.keys()
    for name, video in written.items():
        assert np.array_equal(episodes[name].frames, video)
    assert episodes["metaworld/button-press-v3/test/1"].attrs["task"] == "button-press-v3"


def test_realsense_db3_playback(tmp_path):
    frames = np.random.default_rng(3).integers(0, 256, (10, 24, 32, 3), dtype=np.uint8)
    path = record_realsense(tmp_path / "take.db3", frames)
    recorded = path.read_bytes()
    assert detect_kind(path) == "realsense"
    [ep] = list(open_source(path))
    assert np.array_equal(ep.frames, frames) and ep.name == "take"
    assert ep.attrs["sync"]["dropped"] == {} and ep.attrs["sync"]["recorded"] == 10
    assert np.allclose(ep.timestamps, 5.0 + np.arange(10) / 30)
    [third] = list(open_source(path, rate_hz=10))
    assert np.array_equal(third.frames, frames[::3])
    assert path.read_bytes() == recorded and sorted(p.name for p in tmp_path.iterdir()) == ["take.db3"]


def test_unknown_inputs(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list(open_source(tmp_path / "nope.hdf5"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="cannot tell what"):
        list(open_source(tmp_path / "notes.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a rosbag2 directory"):
        list(open_source(tmp_path / "empty"))
    (tmp_path / "empty" / "empty_0.mcap").write_bytes(b"")
    with pytest.raises(UserError, match=r"no metadata.yaml; pass the storage file inside it instead \(empty_0.mcap\)"):
        list(open_source(tmp_path / "empty"))
    with pytest.raises(UserError, match="cannot read MCAP file"):
        list(open_source(tmp_path / "empty" / "empty_0.mcap"))
