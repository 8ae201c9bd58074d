"""`diffusion-reward live up` as a user runs it: node processes, prefixed output, clean stop on SIGINT."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from diffusion_reward import msgs
from diffusion_reward.data import Dataset
from diffusion_reward.errors import UserError
from diffusion_reward.live import LaunchSet, parse_param
from diffusion_reward.transport.base import SENSOR_DATA_QOS
from diffusion_reward.transport.dds import DdsTransport

DOMAIN = 1 + os.getpid() % 99  # disjoint from test_dds_transport's domains


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_live_up_records_until_sigint_and_survives_a_failing_node(tmp_path):
    dataset = tmp_path / "episodes.hdf5"
    recorder_yaml = tmp_path / "recorder.yaml"
    recorder_yaml.write_text(yaml.safe_dump({"episode_recorder": {"ros__parameters": {
        "output": str(dataset), "task": "button-press-v3", "image_topic": "/cam/image", "state_topic": "/joint_states",
        "joint_names": ["j1", "j2"], "gripper_topic": "", "action_topic": "", "reward_topic": "",
        "store_full_image": False}}}))
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"network": "loopback", "stop_timeout_s": 20, "nodes": [
        {"node": "recorder", "params": ["recorder.yaml"], "param": {"sync_tolerance_s": 0.01}},
        {"node": "labeller"},  # no task (so no model either): exits 2 at start-up, the recorder keeps running
        {"node": "camera", "after": ["reward_labeller"]},  # so this one never starts
    ]}))
    proc = subprocess.Popen([sys.executable, "-m", "diffusion_reward", "live", "up", "--config", str(config),
                             "--domain-id", str(DOMAIN)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # read as it comes
    reader.start()
    robot = DdsTransport("test_robot", domain_id=DOMAIN, config="loopback")
    recorder: dict[str, str] = {}  # the recorder's latest diagnostics values
    try:
        start = robot.create_publisher(msgs.Empty, "/episode/start")
        images = robot.create_publisher(msgs.Image, "/cam/image", SENSOR_DATA_QOS)
        states = robot.create_publisher(msgs.JointState, "/joint_states")
        robot.create_subscription(msgs.DiagnosticArray, "/diagnostics", lambda msg: recorder.update(
            {kv.key: kv.value for status in msg.status if status.name == "episode_recorder: recorder"
             for kv in status.values}))
        wait_for(lambda: start.subscription_count and images.subscription_count and states.subscription_count,
                 60, "the recorder to subscribe")
        start.publish(msgs.Empty())
        wait_for(lambda: any("recording demo_0" in line for line in lines), 60, "the recorder to open an episode")
        frames = np.random.default_rng(0).integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)
        for i, frame in enumerate(frames):
            header = msgs.Header(msgs.Time(1000 + i, 0), "cam")
            states.publish(msgs.JointState(header=header, name=["j2", "j1"], position=np.array([2.0 * i, 1.0 * i]),
                                           velocity=np.zeros(2)))
            images.publish(msgs.Image(header=header, height=64, width=64, encoding="rgb8", step=192,
                                      data=frame.tobytes()))
            time.sleep(0.05)
        # SIGINT only once the recorder has every frame (written, waiting for its state, or dropped): on a loaded
        # machine it may still be reading them, and what it has not received by SIGINT is lost
        assert robot.spin_until(lambda: sum(int(recorder.get(key, 0)) for key in ("steps", "waiting_images",
                                                                                   "dropped")) == 5, 120), recorder
        # SIGINT only once the labeller's start-up error has been reported: on a loaded machine its import can
        # take longer than the frames above, and a SIGINT before it exits would make it end with -2, not 2
        wait_for(lambda: any("reward_labeller exited" in line for line in lines), 120, "the labeller to exit")
    finally:
        robot.shutdown()
    proc.send_signal(signal.SIGINT)  # no /episode/stop: the recorder must save the open episode on its way out
    proc.wait(timeout=60)
    reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 2, out  # the labeller's start-up error is the set's exit code
    assert "[reward_labeller] error: parameter task is empty" in out
    assert "[live] reward_labeller exited with code 2" in out
    assert "[live] not starting camera: reward_labeller ended before it was ready" in out
    assert "[episode_recorder] ready" in out  # printed when a node starts spinning
    assert "[episode_recorder] [INFO]" in out and "[live] episode_recorder exited with code 0" in out
    with Dataset(dataset) as ds:
        ds.verify()
        assert len(ds) == 1
        ep = ds[0]
        assert ep.num_samples == 5
        np.testing.assert_array_equal(ep.obs["image"][:], frames)
        np.testing.assert_allclose(ep.obs["state"][:, :2], np.stack([np.arange(5.0), 2 * np.arange(5.0)], 1))
        assert ep.dones[-1]


def test_live_config_errors_are_one_line(tmp_path):
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"nodes": [{"node": "recorder", "params": ["missing.yaml"]}]}))
    with pytest.raises(UserError, match="parameter file not found"):
        LaunchSet.from_file(config)
    config.write_text(yaml.safe_dump({"nodes": [{"node": "teleporter"}]}))
    with pytest.raises(UserError, match="labeller"):
        LaunchSet.from_file(config)
    config.write_text(yaml.safe_dump({"nodes": [{"node": "recorder"}, {"node": "recorder"}]}))
    with pytest.raises(UserError, match="two nodes are named 'episode_recorder'"):
        LaunchSet.from_file(config)
    config.write_text(yaml.safe_dump({"nodes": [{"node": "recorder", "after": "camera"}]}))
    with pytest.raises(UserError, match="episode_recorder is after camera, which is not another node"):
        LaunchSet.from_file(config)
    config.write_text(yaml.safe_dump({"nodes": [{"node": "recorder", "after": ["reward_labeller"]},
                                                {"node": "labeller", "after": ["camera"]},
                                                {"node": "camera", "after": ["episode_recorder"]}]}))
    with pytest.raises(UserError, match="cycle"):
        LaunchSet.from_file(config)
    result = subprocess.run([sys.executable, "-m", "diffusion_reward", "live", "up", "--config",
                             str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip() == f"error: live config not found: {tmp_path / 'nope.yaml'}"


def test_param_values_are_yaml():
    assert parse_param("rate_hz:=30") == ("rate_hz", 30)
    assert parse_param("joint_names:=[a, b]") == ("joint_names", ["a", "b"])
    assert parse_param("synchronous:=true") == ("synchronous", True)
    assert parse_param("model_path:=/m/x.safetensors") == ("model_path", "/m/x.safetensors")
    with pytest.raises(UserError, match="name:=value"):
        parse_param("rate_hz=30")


def test_required_node_exit_stops_the_set(tmp_path):
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"network": "loopback", "nodes": [
        {"node": "recorder", "param": {"output": str(tmp_path / "unused.hdf5")}},
        {"node": "labeller", "required": True},  # fails at start-up (no model_path): everything stops
        {"node": "camera", "after": ["reward_labeller"]},  # never started: the labeller was never ready
    ]}))
    result = subprocess.run([sys.executable, "-m", "diffusion_reward", "live", "up", "--config", str(config),
                             "--domain-id", str(DOMAIN)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout
    assert "[live] reward_labeller is required: stopping the others" in result.stdout
    assert "[live] episode_recorder exited with code 0" in result.stdout
    assert "started camera" not in result.stdout
