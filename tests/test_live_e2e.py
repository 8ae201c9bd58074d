"""End to end over real DDS on loopback, 3 processes started by `diffusion-reward live up`: the reward labeller
(random tiny model, every-frame mode, noise off), the episode recorder (HDF5) and, once both are up, the sim
bridge (MetaWorld: 64x64 + 640x480 camera, joint states, episode markers). The recorded rewards must equal offline
scoring of the recorded frames, every frame must be accounted for, and the dataset must pass `info --verify`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import yaml

from diffusion_reward import msgs
from diffusion_reward.data import Dataset
from diffusion_reward.models import RewardModel
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.transport.base import SENSOR_DATA_QOS
from diffusion_reward.transport.dds import DdsTransport

DOMAIN = 200 + os.getpid() % 30  # disjoint from the other live/dds tests
TASK = "button-press-v3"
STEPS = 12  # control steps per episode
FRAMES = STEPS + 1  # frames per episode: the reset frame, then one per step
FULL_TOPIC = "/camera/camera/color/image_full"
CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "ros2_ws", "src", "diffusion_reward_ros", "config")


@pytest.mark.slow  # three processes over DDS for ~25 s; tests/test_nodes_dds.py keeps a cross-process check fast
def test_sim_labeller_recorder_over_dds(tmp_path):
    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats(TASK, "entropy", 9, 1, mean=-3.0, std=2.0, source="test")
    model_path = tmp_path / "tiny.safetensors"
    model.save(model_path)
    dataset = tmp_path / "live.hdf5"
    config = tmp_path / "live.yaml"
    shipped = {name: os.path.join(CONFIG_DIR, f"{name}.yaml") for name in ("reward_labeller", "episode_recorder")}
    # the ROS package's parameter files, as the launch files use them, with this test's overrides on top
    config.write_text(yaml.safe_dump({"network": "loopback", "stop_timeout_s": 30, "nodes": [
        {"node": "labeller", "params": [shipped["reward_labeller"]], "param": {
            "model_path": str(model_path), "task": TASK, "noise": False, "synchronous": True,
            "image_topic": FULL_TOPIC}},
        {"node": "recorder", "params": [shipped["episode_recorder"]], "param": {
            "output": str(dataset), "task": TASK, "image_topic": FULL_TOPIC, "action_topic": "none",
            "wait_timeout_s": 5.0, "sync_tolerance_s": 0.001}},
        # as on a robot, the camera runs whether anyone listens or not: start the sim once both nodes are up
        {"node": "sim-bridge", "after": ["reward_labeller", "episode_recorder"], "param": {
            "task": TASK, "episodes": 2, "max_episode_steps": STEPS, "real_time_factor": 0.05,
            "full_image_topic": FULL_TOPIC, "full_width": 640, "full_height": 480}},
    ]}))

    # this process watches the graph like `ros2 topic echo`: small frames, rewards, the labeller's counts
    watcher = DdsTransport("test_watcher", domain_id=DOMAIN, config="loopback")
    small_frames, rewards, results, counts = [], [], [], {}
    watcher.create_subscription(msgs.Image, "/camera/camera/color/image_raw", small_frames.append, SENSOR_DATA_QOS)
    watcher.create_subscription(msgs.Vector3Stamped, "/reward_labeller/reward", rewards.append)
    watcher.create_subscription(msgs.Bool, "/episode/result", results.append)

    def on_diagnostics(msg: msgs.DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "reward_labeller: reward":
                counts.update({kv.key: kv.value for kv in status.values})

    watcher.create_subscription(msgs.DiagnosticArray, "/diagnostics", on_diagnostics)

    proc = subprocess.Popen([sys.executable, "-m", "diffusion_reward", "live", "up", "--config", str(config),
                             "--domain-id", str(DOMAIN)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # 3 torch processes on a shared machine
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        saved = watcher.spin_until(lambda: any("saved demo_1" in line for line in lines) or proc.poll() is not None,
                                   150)
        watcher.spin_until(lambda: counts.get("processed") == str(2 * FRAMES), 10)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            watcher.shutdown()
    out = "".join(lines)
    assert saved, out
    assert proc.returncode == 0, out
    assert out.index("[reward_labeller] ready") < out.index("[live] started sim_bridge")
    assert out.index("[episode_recorder] ready") < out.index("[live] started sim_bridge")

    # every frame accounted for: published by the bridge = received = scored (+ skipped: none in this mode)
    assert len(small_frames) == 2 * FRAMES and len(results) == 2
    assert int(counts["received"]) == 2 * FRAMES and int(counts["errors"]) == 0
    assert int(counts["processed"]) == 2 * FRAMES and int(counts["skipped"]) == 0
    assert [r.header.stamp.to_ns() for r in rewards] == [f.header.stamp.to_ns() for f in small_frames]

    # Episode 0 warms the processes up (the recorder's first frame imports torch for resizing, and frames that
    # arrive meanwhile beyond its sensor-data queue of 5 are lost in DDS); episode 1 must be complete.
    with Dataset(dataset) as ds:
        ds.verify()
        assert ds.episode_names == ["demo_0", "demo_1"]
        ep = ds["demo_1"]
        sync = ep.attrs["sync"]
        assert sync["recorded"] == ep.num_samples == FRAMES and not sync["dropped"], sync
        assert ep.obs["image"].shape == (FRAMES, 64, 64, 3) and ep.obs["image_full"].shape == (FRAMES, 480, 640, 3)
        ((label_name, label),) = ep.reward_labels.items()
        # the labeller's provenance, latched beside its reward stream, reached the recorder's process over DDS
        assert label_name == "entropy" and label["attrs"]["source"] == "ros2"
        assert label["attrs"]["model_hash"] == RewardModel.load(model_path).weights_hash
        live_reward = np.asarray(label["datasets"]["reward"])
        live_raw = np.asarray(label["datasets"]["raw"])
        np.testing.assert_allclose(live_reward, [r.vector.x for r in rewards[FRAMES:]], rtol=1e-6)
        recorded_frames = ep.obs["image"][:]

    # offline scoring of the recorded frames gives the live rewards
    offline = RewardScorer(RewardModel.load(model_path), ScoreConfig(
        reward_type="entropy", skip_step=9, num_samples=1, noise=False, seed=0, task=TASK)).score_episode(recorded_frames)
    np.testing.assert_allclose(live_raw, offline.raw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(live_reward, offline.reward, rtol=1e-5, atol=1e-5)

    info = subprocess.run([sys.executable, "-m", "diffusion_reward", "info", "--verify", str(dataset)],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
