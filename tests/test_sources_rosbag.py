"""rosbag2 sources: real bags written with rosbags (mcap + sqlite3, Humble + Jazzy) and the mcap package."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from test_sources_files import read_episodes

from diffusion_reward.errors import UserError
from diffusion_reward.data.sources import detect_kind, open_source
from diffusion_reward.data.sources.rosbag import message_stamp, message_vector
from diffusion_reward.data.sync import SYNC_POLICY, SYNC_TOLERANCE_S

T0 = 100.0  # s, first camera stamp
RATE = 10.0  # Hz camera
FRAMES = 12
JOINTS = [f"fr3_joint{i}" for i in range(1, 8)]
IMAGE_TOPIC = "/camera/camera/color/image_raw"


def joint_positions(t: float) -> np.ndarray:
    """Robot state as a known function of time, so a synchronised row can be checked against its stamp."""
    return np.array([t - T0 + 0.1 * j for j in range(7)])


def make_frames(seed: int = 0, height: int = 16, width: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (FRAMES, height, width, 3), dtype=np.uint8)


def encode(ts, img: np.ndarray, encoding: str, pad: int, header):
    """A sensor_msgs Image / CompressedImage of `img` (RGB) in `encoding` with `pad` bytes per row."""
    if encoding == "png":
        ok, buf = cv2.imencode(".png", img[..., ::-1])
        msgtype = "sensor_msgs/msg/CompressedImage"
        return msgtype, ts.types[msgtype](header=header, format="png", data=buf.reshape(-1))
    pixels = {"rgb8": img, "bgr8": img[..., ::-1], "mono8": img[..., :1],
              "rgba8": np.concatenate([img, np.full(img.shape[:2] + (1,), 7, np.uint8)], axis=2),
              "yuv422": img[..., :2]}[encoding]
    h, w, c = pixels.shape
    rows = np.zeros((h, w * c + pad), np.uint8)
    rows[:, : w * c] = pixels.reshape(h, w * c)
    msgtype = "sensor_msgs/msg/Image"
    return msgtype, ts.types[msgtype](header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                                      step=w * c + pad, data=rows.reshape(-1))


def bag_messages(ts, frames, encoding="rgb8", pad=0, drop=5, duplicate=8, seed=1, t0=T0, markers=()):
    """(topic, msgtype, log_ns, msg) of a jittered recording: camera at 10 Hz with frame `drop` missing and
    frame `duplicate` recorded twice, JointState at 100 Hz (joint order shuffled), JointTrajectory at 10 Hz."""
    rng = np.random.default_rng(seed)
    Time, Header = ts.types["builtin_interfaces/msg/Time"], ts.types["std_msgs/msg/Header"]

    def header(t):
        return Header(stamp=Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9))), frame_id="cam")

    out = []
    for i, img in enumerate(frames):
        if i == drop:
            continue
        t = t0 + i / RATE + rng.uniform(-0.01, 0.01)
        msgtype, msg = encode(ts, img, encoding, pad, header(t))
        for _ in range(2 if i == duplicate else 1):
            out.append((IMAGE_TOPIC, msgtype, int(t * 1e9) + 2_000_000, msg))
    JointState = ts.types["sensor_msgs/msg/JointState"]
    for k in range(int((FRAMES + 1) * 10)):
        t = t0 - 0.05 + k / 100 + rng.uniform(-0.002, 0.002)
        order = rng.permutation(7) if k % 3 else np.arange(7)
        msg = JointState(header=header(t), name=[JOINTS[j] for j in order], position=joint_positions(t)[order],
                         velocity=-joint_positions(t)[order], effort=np.zeros(0))
        out.append(("/franka/joint_states", JointState.__msgtype__, int(t * 1e9), msg))
    Traj = ts.types["trajectory_msgs/msg/JointTrajectory"]
    Point, Duration = ts.types["trajectory_msgs/msg/JointTrajectoryPoint"], ts.types["builtin_interfaces/msg/Duration"]
    for i in range(FRAMES):
        t = t0 + i / RATE + 0.003
        point = Point(positions=np.full(7, float(i)), velocities=np.zeros(0), accelerations=np.zeros(0),
                      effort=np.zeros(0), time_from_start=Duration(sec=0, nanosec=100_000_000))
        out.append(("/fr3_arm_controller/joint_trajectory", Traj.__msgtype__, int(t * 1e9),
                    Traj(header=header(t), joint_names=JOINTS, points=[point])))
    for topic, t, *value in markers:  # (topic, t) -> std_msgs/Empty, (topic, t, flag) -> std_msgs/Bool
        msgtype = "std_msgs/msg/Bool" if value else "std_msgs/msg/Empty"
        out.append((topic, msgtype, int(t * 1e9), ts.types[msgtype](*value)))
    return sorted(out, key=lambda m: m[2])


def write_bag(path, messages, ts, storage=StoragePlugin.SQLITE3, version=8):
    with Writer(path, version=version, storage_plugin=storage) as writer:
        connections = {}
        for topic, msgtype, log_ns, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(connections[topic], log_ns, ts.serialize_cdr(msg, msgtype))
    return path


def write_bare_mcap(path, messages, ts, profile="ros2", summary=True):
    """A bare .mcap as non-rosbag2 MCAP tools write it: `mcap` package writer, ros2msg schemas, cdr channels."""
    from mcap.writer import IndexType
    from mcap.writer import Writer as McapWriter

    with open(path, "wb") as f:
        writer = McapWriter(f) if summary else McapWriter(
            f, index_types=IndexType.NONE, repeat_channels=False, repeat_schemas=False, use_statistics=False,
            use_summary_offsets=False)
        writer.start(profile=profile, library="test")
        channels = {}
        for topic, msgtype, log_ns, msg in messages:
            if topic not in channels:
                schema = writer.register_schema(msgtype, "ros2msg", ts.generate_msgdef(msgtype, ros_version=2)[0].encode())
                channels[topic] = writer.register_channel(topic, "cdr", schema)
            writer.add_message(channels[topic], log_ns, bytes(ts.serialize_cdr(msg, msgtype)), log_ns)
        writer.finish()
    return path


def check_episode(ep, frames, mono=False):
    kept = [k for k in range(FRAMES) if k != 5]  # frame 5 was dropped by the camera; frame 8's repeat is stale
    assert ep.frames.shape == (len(kept), *frames.shape[1:])
    ref = np.repeat(frames[..., :1], 3, axis=3) if mono else frames
    for step, k in enumerate(kept):
        assert np.array_equal(ep.frames[step], ref[k]), k
    assert ep.attrs["sync"] == {"policy": SYNC_POLICY, "tolerance_s": SYNC_TOLERANCE_S, "recorded": len(kept),
                                "dropped": {"stale_image": 1}, "max_skew_s": ep.attrs["sync"]["max_skew_s"]}
    assert ep.attrs["sync"]["max_skew_s"]["image"] == 0 and np.all(np.diff(ep.timestamps) > 0.05)
    # state: the nearest JointState, positions then velocities of fr3_joint1..7 (the live recorder's layout,
    # whatever order each message lists them in), matches its own stamp
    state_stamps = ep.stamps["state"]
    assert np.all(np.abs(state_stamps - ep.timestamps) <= 0.0075)
    positions = np.stack([joint_positions(t) for t in state_stamps])
    assert np.allclose(ep.obs["state"], np.concatenate([positions, -positions], axis=1), atol=1e-5)
    assert ep.attrs["joint_names"] == JOINTS and ep.attrs["state_fields"] == ["position", "velocity"]
    assert ep.obs["state"].dtype == np.float32 and ep.attrs["sync"]["max_skew_s"]["state"] <= 0.0075
    assert np.array_equal(ep.actions[:, 0], np.array(kept, dtype=np.float32))  # each frame's own command
    assert ep.attrs["topics"] == {"image": IMAGE_TOPIC, "state": "/franka/joint_states",
                                  "action": "/fr3_arm_controller/joint_trajectory"}


@pytest.mark.parametrize("store,storage,version,encoding,pad", [
    (Stores.ROS2_HUMBLE, StoragePlugin.SQLITE3, 8, "rgb8", 4),
    (Stores.ROS2_HUMBLE, StoragePlugin.MCAP, 8, "bgr8", 0),
    (Stores.ROS2_JAZZY, StoragePlugin.MCAP, 9, "rgba8", 8),
    (Stores.ROS2_JAZZY, StoragePlugin.SQLITE3, 9, "mono8", 3),
    (Stores.ROS2_JAZZY, StoragePlugin.MCAP, 9, "png", 0),
])
def test_bag_directory_decodes_and_synchronises(tmp_path, store, storage, version, encoding, pad):
    ts = get_typestore(store)
    frames = make_frames()
    bag = write_bag(tmp_path / "ep_001", bag_messages(ts, frames, encoding, pad), ts, storage, version)
    assert detect_kind(bag) == "rosbag2"
    [ep] = read_episodes(bag)
    check_episode(ep, frames, mono=encoding == "mono8")
    assert ep.name == "ep_001" and ep.attrs["source_kind"] == "rosbag2"


@pytest.mark.parametrize("profile,summary", [("ros2", True), ("", True), ("", False)])
def test_bare_mcap_from_other_tools(tmp_path, profile, summary):
    """profile 'ros2' is read by rosbags; another profile falls back to the mcap package, which learns the
    types from the file's schemas (here also a custom message no typestore knows)."""
    from rosbags.typesys import get_types_from_msg

    ts = get_typestore(Stores.ROS2_JAZZY)
    ts.register(get_types_from_msg("string text\nint32 code", "acme_msgs/msg/Status"))
    frames = make_frames(3)
    status = ts.types["acme_msgs/msg/Status"](text="ok", code=1)
    messages = bag_messages(ts, frames, "bgr8", 2) + [("/acme/status", "acme_msgs/msg/Status", int(T0 * 1e9), status)]
    path = write_bare_mcap(tmp_path / "take.mcap", messages, ts, profile, summary)
    [ep] = read_episodes(path)
    check_episode(ep, frames)


def test_rate_resamples_to_control_rate(tmp_path):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    frames = make_frames()
    bag = write_bag(tmp_path / "b", bag_messages(ts, frames, drop=-1, duplicate=-1), ts)
    [ep] = read_episodes(bag, rate_hz=5.0)
    sync = ep.attrs["sync"]
    assert sync["policy"] == "resampled" and sync["rate_hz"] == 5.0 and len(ep.frames) == FRAMES // 2
    assert np.array_equal(ep.frames, frames[::2]) and sync["missing_steps"]["image"] == 0


def test_episode_markers_and_time_gaps_split(tmp_path):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    frames = make_frames()
    # two takes 30 s apart in one bag: the gap splits them
    gap = bag_messages(ts, frames, drop=-1, duplicate=-1) + bag_messages(ts, frames, drop=-1, duplicate=-1, t0=T0 + 30)
    episodes = read_episodes(write_bag(tmp_path / "gap", sorted(gap, key=lambda m: m[2]), ts))
    assert [e.name for e in episodes] == ["gap_ep0", "gap_ep1"] and [len(e.frames) for e in episodes] == [12, 12]
    # start/stop markers: frames 0-1 before the start and 10-11 after the stop are not part of an episode;
    # a second start at 0.55 s splits the rest into two episodes
    marked = bag_messages(ts, frames, drop=-1, duplicate=-1, markers=[
        ("/episode/start", T0 + 0.15), ("/episode/start", T0 + 0.55), ("/episode/stop", T0 + 0.95)])
    episodes = read_episodes(write_bag(tmp_path / "marked", marked, ts))
    assert [len(e.frames) for e in episodes] == [4, 4]
    assert np.array_equal(episodes[0].frames, frames[2:6]) and np.array_equal(episodes[1].frames, frames[6:10])
    # a Bool topic named with episode_topic: true starts, false stops
    marked = bag_messages(ts, frames, drop=-1, duplicate=-1, markers=[
        ("/recorder/active", T0 + 0.25, True), ("/recorder/active", T0 + 0.75, False)])
    [episode] = read_episodes(write_bag(tmp_path / "bool", marked, ts), episode_topic="/recorder/active")
    assert np.array_equal(episode.frames, frames[3:8])


def test_missing_topic_lists_the_topics(tmp_path):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    bag = write_bag(tmp_path / "b", bag_messages(ts, make_frames()), ts)
    with pytest.raises(UserError, match=r"no topic '/cam/nope'.*/franka/joint_states \(sensor_msgs/msg/JointState\)"):
        list(open_source(bag, image_topic="/cam/nope"))
    with pytest.raises(UserError, match=r"state topic '/camera/camera/color/image_raw' has type sensor_msgs/msg/Image"):
        list(open_source(bag, state_topic=IMAGE_TOPIC))


def test_unknown_encoding_is_named(tmp_path):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    bag = write_bag(tmp_path / "b", bag_messages(ts, make_frames(), "yuv422"), ts)
    with pytest.raises(UserError, match=r"unsupported image encoding 'yuv422'.*rgb8"):
        list(open_source(bag))


def test_command_messages_to_vectors():
    ts = get_typestore(Stores.ROS2_JAZZY)
    Vector3, Twist = ts.types["geometry_msgs/msg/Vector3"], ts.types["geometry_msgs/msg/Twist"]
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    twist = ts.types["geometry_msgs/msg/TwistStamped"](
        header=Header(stamp=Time(sec=0, nanosec=0), frame_id=""),
        twist=Twist(linear=Vector3(x=1.0, y=2.0, z=3.0), angular=Vector3(x=4.0, y=5.0, z=6.0)))
    layout = ts.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    array = ts.types["std_msgs/msg/Float64MultiArray"](layout=layout, data=np.array([0.5, -0.5]))
    assert message_vector(twist, "geometry_msgs/msg/TwistStamped", []).tolist() == [1, 2, 3, 4, 5, 6]
    assert message_vector(array, "std_msgs/msg/Float64MultiArray", []).tolist() == [0.5, -0.5]
    assert message_stamp(twist, 7_500_000_000) == 7.5  # zero header stamp: the bag's log time
