"""One state layout per robot: the same session recorded live by the episode recorder (in-process transport) and
written as a rosbag2 (the same messages, CDR bytes as on the wire) then relabelled gives the same obs/state,
obs/gripper and actions, under the same env_args layout keys (FORMAT.md, "Robot state layout")."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset
from diffusion_reward.models import RewardModel
from diffusion_reward.msgs import Empty, Header, JointState, JointTrajectory, JointTrajectoryPoint, Time
from diffusion_reward.nodes.episode_recorder import EpisodeRecorderNode
from diffusion_reward.data.frames import image_to_rgb, rgb_to_image
from diffusion_reward.errors import UserError
from diffusion_reward.data.sources import open_source
from diffusion_reward.data.sources.rosbag import _Vectors
from diffusion_reward.data.sync import SYNC_TOLERANCE_S
from diffusion_reward.robot_state import FR3_FINGERS, FR3_JOINTS, StateLayout, state_vector
from diffusion_reward.transport import DEFAULT_QOS, SENSOR_DATA_QOS
from diffusion_reward.transport.cdr import serialize
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

TASK = "button-press-v3"
FRAMES, FRAME_NS = 8, 100_000_000  # 10 Hz camera
IMAGE, ARM, GRIPPER, COMMAND = ("/camera/camera/color/image_raw", "/franka/joint_states",
                                "/franka_gripper/joint_states", "/fr3_arm_controller/joint_trajectory")
LAYOUT_KEYS = ("joint_names", "state_fields", "gripper_joint_names")


def session(start_ns: int, faults: bool = False) -> list[tuple[int, str, object]]:
    """(stamp ns, topic, message) of a short teleop session: camera at 10 Hz; arm joint states 3 ms after each
    frame and half a frame later (joints in a shuffled order, with velocities), gripper 2 ms after each frame,
    a two-point trajectory command at each frame (joints reversed; its last point is the target).
    `faults`: what real sessions have: the camera drops frame 3, sends frame 5 twice and stamps frame 6 7 ms
    late; the arm's joint states are missing from frame 1's half-frame message through frame 2; commands come
    only at even frames (the controller holds the last one)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(FRAMES):
        stamp = start_ns + i * FRAME_NS
        q = np.arange(7) * 0.1 + i
        image = rgb_to_image(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), stamp, "cam")
        if faults and i == 6:
            image = rgb_to_image(image_to_rgb(image), stamp + 7_000_000, "cam")
        if not (faults and i == 3):
            out += [(image.header.stamp.to_ns(), IMAGE, image)] * (2 if faults and i == 5 else 1)
        for dt, offset in ((3_000_000, 0.0), (FRAME_NS // 2, 0.5)):
            order = rng.permutation(7)
            if faults and (i, dt) in ((1, FRAME_NS // 2), (2, 3_000_000), (2, FRAME_NS // 2)):
                continue
            out.append((stamp + dt, ARM, JointState(
                header=Header(stamp=Time.from_ns(stamp + dt)), name=[FR3_JOINTS[j] for j in order],
                position=(q + offset)[order], velocity=-(q + offset)[order], effort=np.zeros(7))))
        width = 0.04 - 0.004 * i
        out.append((stamp + 2_000_000, GRIPPER, JointState(
            header=Header(stamp=Time.from_ns(stamp + 2_000_000)), name=FR3_FINGERS[::-1],
            position=np.array([width, width + 0.001]), velocity=np.zeros(2), effort=np.zeros(2))))
        if faults and i % 2:
            continue
        out.append((stamp, COMMAND, JointTrajectory(
            header=Header(stamp=Time.from_ns(stamp)), joint_names=FR3_JOINTS[::-1],
            points=[JointTrajectoryPoint(positions=q[::-1] + 0.2), JointTrajectoryPoint(positions=q[::-1] + 0.7)])))
    return sorted(out, key=lambda m: m[0])


def record_live(tmp_path, faults: bool = False) -> tuple[object, int, list]:
    bus = InProcessBus()
    params = {"output": str(tmp_path / "live.hdf5"), "task": TASK, "image_size": 16, "reward_topic": "none"}
    recorder = EpisodeRecorderNode(InProcessTransport("episode_recorder", bus, params=params))
    robot = InProcessTransport("robot", bus)
    pubs = {topic: robot.create_publisher(type(msg), topic, SENSOR_DATA_QOS) for topic, msg in
            ((IMAGE, rgb_to_image(np.zeros((1, 1, 3), np.uint8))), (ARM, JointState()), (GRIPPER, JointState()),
             (COMMAND, JointTrajectory()))}
    start_pub, stop_pub = (robot.create_publisher(Empty, f"/episode/{e}", DEFAULT_QOS) for e in ("start", "stop"))
    start_pub.publish(Empty())
    bus.spin_until_idle()
    start = robot.now_ns() + 10_000_000
    messages = session(start, faults)
    for i in range(FRAMES):  # each frame's messages, then the clock moves on a frame
        for stamp, topic, msg in messages:
            if start + i * FRAME_NS <= stamp < start + (i + 1) * FRAME_NS:
                pubs[topic].publish(msg)
        bus.spin_until_idle()
        bus.advance(FRAME_NS / 1e9)
    stop_pub.publish(Empty())
    bus.advance(3.0)  # the last frame waits for a later gripper message until the recorder's timeout
    assert recorder.saved == ["demo_0"]
    recorder.close()
    return tmp_path / "live.hdf5", start, messages


def write_rosbag(path, start: int, messages) -> object:
    """The same messages in a rosbag2 (mcap), as `ros2 bag record` stores them: CDR bytes, logged at their stamp,
    with the session's /episode/start and /episode/stop markers."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    markers = [(start - 5_000_000, "/episode/start", Empty()),
               (start + FRAMES * FRAME_NS, "/episode/stop", Empty())]
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for stamp, topic, msg in sorted(messages + markers, key=lambda m: m[0]):
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=ts)
            writer.write(connections[topic], stamp, serialize(msg))
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats(TASK, "entropy", 9, 1, mean=-400.0, std=20.0)
    return model.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def test_live_recording_and_relabelled_bag_of_one_session_store_the_same_state(tmp_path, capsys, model_path):
    live, start, messages = record_live(tmp_path)
    bag = write_rosbag(tmp_path / "session", start, messages)
    out = tmp_path / "from_bag.hdf5"
    rc = main(["relabel", "--model", str(model_path), "--input", str(bag), "--out", str(out), "--resize"])
    assert rc == 0, capsys.readouterr().err
    with Dataset(live) as a, Dataset(out) as b:
        assert len(a) == len(b) == 1
        ea, eb = a[0], b[0]
        assert ea.num_samples == eb.num_samples == FRAMES
        assert set(ea.obs) >= {"state", "gripper"} and set(eb.obs) >= {"state", "gripper"}
        for key in ("state", "gripper"):
            assert ea.obs[key].dtype == eb.obs[key].dtype == np.float32
            np.testing.assert_array_equal(ea.obs[key][()], eb.obs[key][()])
        np.testing.assert_array_equal(ea.actions, eb.actions)
        np.testing.assert_allclose(ea.timestamps, eb.timestamps, rtol=0, atol=1e-6)
        for stream in ("state", "gripper", "action"):
            np.testing.assert_allclose(ea.stamps[stream], eb.stamps[stream], rtol=0, atol=1e-6)  # float64 s at 1.7e9
        assert {k: a.env_args[k] for k in LAYOUT_KEYS} == {k: b.env_args[k] for k in LAYOUT_KEYS} == {
            "joint_names": FR3_JOINTS, "state_fields": ["position", "velocity"], "gripper_joint_names": FR3_FINGERS}
        # the layout itself: 7 positions then 7 velocities in fr3_joint1..7 order, the 3 ms message; fingers 1, 2
        q = np.arange(7) * 0.1 + np.arange(FRAMES)[:, None]
        np.testing.assert_allclose(ea.obs["state"][()], np.concatenate([q, -q], axis=1), atol=1e-6)
        width = 0.04 - 0.004 * np.arange(FRAMES)
        np.testing.assert_allclose(ea.obs["gripper"][()], np.stack([width + 0.001, width], axis=1), atol=1e-7)
        np.testing.assert_allclose(ea.actions, q + 0.7, atol=1e-6)  # the command's last point, arm order


def test_layout_options_and_bad_input(tmp_path, capsys, model_path):
    _, start, messages = record_live(tmp_path)
    bag = write_rosbag(tmp_path / "session", start, messages)
    [ep] = open_source(bag, gripper_topic="none", joint_names=("fr3_joint2", "fr3_joint1"), state_fields=("position",))
    assert "gripper" not in ep.obs and ep.obs["state"].shape == (FRAMES, 2)
    np.testing.assert_allclose(ep.obs["state"][:, 0], 0.1 + np.arange(FRAMES), atol=1e-6)
    assert ep.attrs["joint_names"] == ["fr3_joint2", "fr3_joint1"] and ep.attrs["state_fields"] == ["position"]
    np.testing.assert_allclose(ep.actions[:, 1], 0.7 + np.arange(FRAMES), atol=1e-6)  # actions in that order too
    # a robot of other joints: its own names, in the first message's order
    other = JointState(name=["b", "a"], position=np.array([1.0, 2.0]), velocity=np.array([3.0, 4.0]))
    assert StateLayout().arm_joints(other.name) == ["b", "a"]
    assert state_vector(other, ["a", "b"]).tolist() == [2.0, 1.0, 4.0, 3.0]
    # a bag without joint velocities fails on the default layout, in one line that names the way out
    no_velocity = JointState(name=FR3_JOINTS, position=np.zeros(7), velocity=np.zeros(0))
    with pytest.raises(UserError, match=r"'velocity' has 0 values for 7 joints .*pass `state_fields` position"):
        _Vectors("state", ARM, "sensor_msgs/msg/JointState", StateLayout())(no_velocity)

    for args, message in [(["--state-fields", "position,torque"], "--state-fields must list some of position"),
                          (["--joint-names", "fr3_joint1,elbow"], "has no elbow (it has fr3_joint"),
                          (["--gripper-topic", "/nope"], "has no topic '/nope'")]:
        out = tmp_path / "out.hdf5"
        assert main(["relabel", "--model", str(model_path), "--input", str(bag), "--out", str(out), "--resize",
                     *args]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and message in err, err
        assert not out.exists()


def test_one_sync_policy_live_and_offline_when_streams_misbehave(tmp_path):
    """The live recorder and a bag of the same session make the same steps (data/sync.py): one step per camera
    image, a repeated image stamp dropped, an image without a joint state within the tolerance dropped, the
    command nearest within the tolerance else the one the controller holds."""
    live, start, messages = record_live(tmp_path, faults=True)
    bag = write_rosbag(tmp_path / "session", start, messages)
    [ep] = [dataclasses.replace(ep, frames=ep.frames[0:len(ep.frames)]) for ep in open_source(bag)]
    with Dataset(live) as ds:
        [rec] = list(ds)
        frames = [0, 1, 4, 5, 6, 7]  # 2: no joint state within 50 ms; 3: dropped by the camera; 5 once
        expected = start / 1e9 + np.array(frames) * FRAME_NS / 1e9 + np.where(np.array(frames) == 6, 0.007, 0.0)
        np.testing.assert_allclose(rec.timestamps, expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ep.timestamps, rec.timestamps, rtol=0, atol=1e-6)
        for stream in ("image", "state", "gripper", "action"):
            np.testing.assert_allclose(ep.stamps[stream], rec.stamps[stream], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(ep.obs["state"], rec.obs["state"][()])
        np.testing.assert_array_equal(ep.actions, rec.actions)
        q = np.arange(7) * 0.1 + np.array(frames)[:, None]
        np.testing.assert_allclose(rec.actions, q - (np.array(frames) % 2)[:, None] + 0.7, atol=1e-6)  # frame 1, 5, 7: held command
        np.testing.assert_array_equal(ep.frames, rec.obs["image_full"][()])
        assert rec.attrs["sync"]["dropped"] == ep.attrs["sync"]["dropped"] == {"no_state": 1, "stale_image": 1}
        assert ep.attrs["sync"]["tolerance_s"] == rec.attrs["sync"]["tolerance_s"] == SYNC_TOLERANCE_S
