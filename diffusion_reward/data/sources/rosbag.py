"""rosbag2 recordings (directories with mcap or sqlite3 storage, bare `.mcap` / `.db3` files) without ROS.

Messages are read with `rosbags`; a bare `.mcap` that `rosbags` refuses (another profile, no summary)
is read with the `mcap` package and deserialised with the schema stored in the file.

Robot state is laid out as the live episode recorder lays it out, by the same functions (`robot_state`, layout in
data/FORMAT.md "Robot state layout"): a JointState state topic gives `obs/state` = the `state_fields` (default
position, velocity) of the arm joints (default the FR3's seven, when the bag has them; else every joint of the first
message, in its order), the gripper topic (default `/franka_gripper/joint_states`, when the bag has it) gives
`obs/gripper` = the finger positions, and a JointTrajectory command topic gives the last point's positions in the
arm's joint order. The names used are in each episode's attrs (`joint_names`, `state_fields`,
`gripper_joint_names`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import UserError
from ..frames import image_to_rgb
from ...robot_state import (DEFAULT_GRIPPER_TOPIC, DEFAULT_STATE_TOPIC, MissingJointsError, StateLayout,
                            command_vector, gripper_vector, state_vector)
from ..sync import HELD_STREAMS, synchronise
from ..episode import Episode, forward_slice

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DEFAULT_IMAGE_TOPICS = ("/camera/camera/color/image_raw", "/camera/color/image_raw",
                        "/camera/camera/color/image_raw/compressed", "/camera/color/image_raw/compressed")
DEFAULT_STATE_TOPICS = (DEFAULT_STATE_TOPIC, "/joint_states")
DEFAULT_GRIPPER_TOPICS = (DEFAULT_GRIPPER_TOPIC,)
JOINT_STATE = "sensor_msgs/msg/JointState"
JOINT_TRAJECTORY = "trajectory_msgs/msg/JointTrajectory"
DEFAULT_ACTION_TOPICS = ("/fr3_arm_controller/joint_trajectory",)
DEFAULT_EPISODE_TOPICS = ("/episode/start", "/episode/stop")
VECTOR_TYPES = ("sensor_msgs/msg/JointState", "trajectory_msgs/msg/JointTrajectory",
                "std_msgs/msg/Float64MultiArray", "std_msgs/msg/Float32MultiArray",
                "geometry_msgs/msg/TwistStamped", "geometry_msgs/msg/Twist")
MARKER_TYPES = ("std_msgs/msg/Empty", "std_msgs/msg/Bool")
DEFAULT_GAP_S = 1.0


class BagMessages:
    """Topic table and deserialised messages of one recording, whichever library reads it."""

    def __init__(self, path: Path):
        from rosbags.rosbag2 import Reader
        from rosbags.rosbag2.errors import ReaderError
        from rosbags.typesys import Stores, get_typestore

        self.path = path
        self.typestore = get_typestore(Stores.LATEST)
        self._reader = None
        try:
            reader = Reader(path)
            reader.open()
        except (ReaderError, FileNotFoundError) as exc:
            if path.suffix != ".mcap":
                raise UserError(f"cannot read rosbag2 recording {path}: {exc}") from None
            self._mcap_path, self.topics = path, self._mcap_topics(path)
        else:
            self._reader = reader
            self.topics = {}
            for con in reader.connections:
                self.topics[con.topic] = con.msgtype
                self._register(con.msgtype, con.msgdef.data, con.msgdef.format.name)

    def _register(self, msgtype: str, definition: str, fmt: str) -> None:
        """Teach the typestore a message type it lacks from the definition stored in the recording."""
        from rosbags.typesys import get_types_from_idl, get_types_from_msg

        if msgtype in self.typestore.types or not definition:
            return
        try:
            idl = fmt.lower() in ("idl", "ros2idl")
            self.typestore.register(get_types_from_idl(definition) if idl else get_types_from_msg(definition, msgtype))
        except Exception as exc:  # rosbags' parser and typestore raise several error types
            raise UserError(f"{self.path}: cannot use the stored definition of {msgtype}: {exc}") from None

    def _mcap_topics(self, path: Path) -> dict[str, str]:
        from mcap.reader import make_reader

        topics = {}
        with open(path, "rb") as f:
            try:
                reader = make_reader(f)
                summary = reader.get_summary()
                if summary is not None:
                    channels = [(summary.schemas[c.schema_id], c) for c in summary.channels.values()]
                else:  # no summary section: find the channels by reading the messages
                    channels = [(schema, channel) for schema, channel, _ in reader.iter_messages()]
            except Exception as exc:  # the mcap package raises its own zoo of errors on broken files
                raise UserError(f"cannot read MCAP file {path}: {exc}") from None
        for schema, channel in channels:
            if channel.topic not in topics:
                topics[channel.topic] = schema.name
                self._register(schema.name, schema.data.decode(), schema.encoding)
        return topics

    def messages(self, topics: set[str]) -> Iterator[tuple[str, int, object]]:
        """(topic, log time ns, message) in log order for the requested topics; UserError on a damaged chunk."""
        try:
            yield from self._messages(topics)
        except Exception as exc:  # rosbags, mcap and the decompressors raise many error types on damaged bytes
            raise UserError(f"{self.path} is damaged: cannot read its messages ({type(exc).__name__}: "
                            f"{str(exc)[:200]})") from None

    def _messages(self, topics: set[str]) -> Iterator[tuple[str, int, object]]:
        if self._reader is not None:
            cons = [c for c in self._reader.connections if c.topic in topics]
            for con, log_ns, raw in self._reader.messages(connections=cons):
                yield con.topic, log_ns, self.typestore.deserialize_cdr(raw, con.msgtype)
            return
        from mcap.reader import make_reader

        with open(self._mcap_path, "rb") as f:
            for schema, channel, message in make_reader(f).iter_messages(topics=list(topics)):
                yield channel.topic, message.log_time, self.typestore.deserialize_cdr(message.data, schema.name)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def describe(self) -> str:
        return ", ".join(f"{t} ({ty})" for t, ty in sorted(self.topics.items())) or "none"

    def pick(self, requested: str | None, defaults: tuple[str, ...], types: tuple[str, ...], what: str,
             flag: str, required: bool) -> str | None:
        """The topic to read for one stream: the requested one (must exist), else the first default present."""
        if requested:
            if requested not in self.topics:
                raise UserError(f"{self.path} has no topic {requested!r}; topics: {self.describe()}")
            if self.topics[requested] not in types:
                raise UserError(f"{what} topic {requested!r} has type {self.topics[requested]}; "
                                f"supported: {', '.join(types)}")
            return requested
        found = [t for t in defaults if self.topics.get(t) in types]
        if not found and required:
            found = [t for t, ty in sorted(self.topics.items()) if ty in types]
            if len(found) != 1:
                raise UserError(f"cannot choose the {what} topic in {self.path}; pass {flag}; "
                                f"topics: {self.describe()}")
        return found[0] if found else None


def message_stamp(msg, log_ns: int) -> float:
    """Header stamp in seconds; the log time when the message has no (or a zero) header stamp."""
    header = getattr(msg, "header", None)
    if header is not None and (header.stamp.sec or header.stamp.nanosec):
        return header.stamp.sec + header.stamp.nanosec / 1e9
    return log_ns / 1e9


def _reorder(values, names, order: list[str]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if not order or list(names) == order:
        return values
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in order if n not in index]
    if missing:
        raise UserError(f"joint names changed during the recording: {missing} disappeared")
    return values[[index[n] for n in order]]


def message_vector(msg, msgtype: str, order: list[str]) -> np.ndarray:
    """State / action message -> f32 vector. Float*MultiArray: data; Twist(Stamped): linear xyz + angular xyz;
    JointState: positions; JointTrajectory: positions of the first point. Joints keep the order of the first
    message (`order`, filled in place). Reading a bag, JointState and JointTrajectory topics go through
    `robot_state` instead (`_Vectors`), in the live recorder's layout."""
    if msgtype == "sensor_msgs/msg/JointState":
        names, values = list(msg.name), msg.position
    elif msgtype == "trajectory_msgs/msg/JointTrajectory":
        if not msg.points:
            raise UserError("JointTrajectory message without points")
        names, values = list(msg.joint_names), msg.points[0].positions
    elif msgtype in ("std_msgs/msg/Float64MultiArray", "std_msgs/msg/Float32MultiArray"):
        names, values = [], msg.data
    else:
        twist = msg.twist if msgtype == "geometry_msgs/msg/TwistStamped" else msg
        names, values = [], [twist.linear.x, twist.linear.y, twist.linear.z,
                             twist.angular.x, twist.angular.y, twist.angular.z]
    if names and not order:
        order.extend(names)
    return _reorder(values, names, order).astype(np.float32)


def _episode_windows(markers: list[tuple[float, bool | None]]) -> list[tuple[float, float]]:
    """Marker messages -> [begin, end) windows. True = start, False = stop, None = boundary."""
    if not markers:
        return [(-np.inf, np.inf)]
    markers = sorted(markers, key=lambda m: m[0])
    if all(kind is None for _, kind in markers):
        edges = [-np.inf] + [t for t, _ in markers] + [np.inf]
        return list(zip(edges[:-1], edges[1:]))
    if not any(kind for _, kind in markers):  # stops only
        edges = [-np.inf] + [t for t, _ in markers]
        return list(zip(edges[:-1], edges[1:]))
    windows, begin = [], None
    for t, kind in markers:
        if kind:
            if begin is not None:
                windows.append((begin, t))
            begin = t
        elif begin is not None:
            windows.append((begin, t))
            begin = None
    if begin is not None:
        windows.append((begin, np.inf))
    return windows


def _split_gaps(stamps: np.ndarray, gap_s: float) -> list[np.ndarray]:
    """Indices (into `stamps`, sorted by time) of runs without a gap longer than `gap_s`."""
    order = np.argsort(stamps, kind="stable")
    cuts = np.nonzero(np.diff(stamps[order]) > gap_s)[0] + 1
    return np.split(order, cuts)


def read_rosbag(path: Path, image_topic=None, state_topic=None, action_topic=None, rate_hz=None,
                episode_topic=None, gap_s: float = DEFAULT_GAP_S, tolerance_s=None, gripper_topic=None,
                layout: StateLayout | None = None) -> Iterator[Episode]:
    """Episodes of a recording. Two passes keep memory to about one slice of frames: the first reads
    stamps, robot vectors and markers; the second decodes only the frames the episodes use, as the
    consumer slices each episode's `frames` (`BagFrames`). `gripper_topic` "none" reads no gripper."""
    layout = layout or StateLayout()
    bag = BagMessages(path)
    try:
        image_topic = bag.pick(image_topic, DEFAULT_IMAGE_TOPICS, IMAGE_TYPES, "image", "`image_topic`", True)
        state_topic = bag.pick(state_topic, DEFAULT_STATE_TOPICS, VECTOR_TYPES, "state", "`state_topic`", False)
        action_topic = bag.pick(action_topic, DEFAULT_ACTION_TOPICS, VECTOR_TYPES, "action", "`action_topic`", False)
        gripper_topic = None if (gripper_topic or "").lower() == "none" else bag.pick(
            gripper_topic, DEFAULT_GRIPPER_TOPICS, (JOINT_STATE,), "gripper", "`gripper_topic`", False)
        marker_topics = [bag.pick(episode_topic, (), MARKER_TYPES, "episode marker", "`episode_topic`", True)] \
            if episode_topic else [t for t in DEFAULT_EPISODE_TOPICS if bag.topics.get(t) in MARKER_TYPES]
        streams = {k: t for k, t in (("image", image_topic), ("state", state_topic), ("gripper", gripper_topic),
                                     ("action", action_topic)) if t}
        stamps, vectors, markers, names = _read_streams(bag, streams, marker_topics, bool(episode_topic), layout)
        plans = _plan_episodes(path, stamps, markers, gap_s, rate_hz, tolerance_s)
        for plan in _with_frames(bag, image_topic, plans):
            pick, sync = plan["pick"], plan["sync"]
            yield Episode(
                name=plan["name"], frames=plan["frames"],
                obs={k: vectors[k][pick[k]] for k in ("state", "gripper") if k in pick},
                actions=vectors["action"][pick["action"]] if "action" in pick else None,
                timestamps=sync.times, stamps=sync.stamps,
                attrs={"topics": {s: streams[s] for s in pick}, **names, "sync": sync.stats})
    finally:
        bag.close()


class _Vectors:
    """The vectors of one state / gripper / action topic. JointState and JointTrajectory go through
    `robot_state`, as the live recorder's do; their joint names are fixed by the first message (`layout`)."""

    def __init__(self, stream: str, topic: str, msgtype: str, layout: StateLayout):
        self.stream, self.topic, self.msgtype, self.layout = stream, topic, msgtype, layout
        self.joints: list[str] | None = None  # resolved at the first message
        self.order: list[str] = []  # message_vector's joint order for other message types

    def __call__(self, msg) -> np.ndarray:
        try:
            if self.msgtype == JOINT_STATE:
                if self.joints is None:
                    pick = self.layout.gripper_joints if self.stream == "gripper" else self.layout.arm_joints
                    self.joints = pick(msg.name)
                if self.stream == "gripper":
                    return gripper_vector(msg, self.joints)
                fields = self.layout.state_fields if self.stream == "state" else ("position",)
                return state_vector(msg, self.joints, fields)
            if self.msgtype == JOINT_TRAJECTORY:
                if self.joints is None:
                    self.joints = self.layout.arm_joints(msg.joint_names)
                return command_vector(msg, self.joints)
        except MissingJointsError as exc:
            hint = " (a recording without joint velocities: pass `state_fields` position)" \
                if "'velocity' has 0 values" in str(exc) else ""
            raise UserError(f"{self.stream} topic {self.topic!r}: {exc}{hint}") from None
        return message_vector(msg, self.msgtype, self.order)

    def names(self) -> dict:
        """What the episode attrs say about this stream's layout."""
        if self.msgtype != JOINT_STATE or self.joints is None:
            return {}
        if self.stream == "gripper":
            return {"gripper_joint_names": list(self.joints)}
        if self.stream == "state":
            return {"joint_names": list(self.joints), "state_fields": list(self.layout.state_fields)}
        return {}


def _read_streams(bag: BagMessages, streams: dict[str, str], marker_topics: list[str], named_markers: bool,
                  layout: StateLayout):
    """First pass: per-stream stamps (s), state/gripper/action vectors, episode markers (t, start/stop/boundary),
    the joint names used. Only the first image is decoded, so an unsupported encoding fails before any work is
    done."""
    stamps: dict[str, list[float]] = {k: [] for k in streams}
    vectors: dict[str, list[np.ndarray]] = {k: [] for k in streams if k != "image"}
    readers = {k: _Vectors(k, streams[k], bag.topics[streams[k]], layout) for k in vectors}
    markers: list[tuple[float, bool | None]] = []
    topic_streams: dict[str, list[str]] = {}  # one topic may feed two streams (arm + fingers in /joint_states)
    for k, t in streams.items():
        topic_streams.setdefault(t, []).append(k)
    for topic, log_ns, msg in bag.messages(set(streams.values()) | set(marker_topics)):
        msgtype = bag.topics[topic]
        if topic in marker_topics:
            if named_markers:
                kind = bool(msg.data) if msgtype == "std_msgs/msg/Bool" else None
            else:
                kind = topic == "/episode/start"
            markers.append((log_ns / 1e9, kind))
            continue
        for stream in topic_streams[topic]:
            stamps[stream].append(message_stamp(msg, log_ns))
            if stream != "image":
                vectors[stream].append(readers[stream](msg))
            elif len(stamps["image"]) == 1:
                image_to_rgb(msg)
    if not stamps["image"]:
        raise UserError(f"image topic {streams['image']!r} in {bag.path} has no messages")
    for stream, rows in vectors.items():
        if rows and len({len(r) for r in rows}) > 1:
            raise UserError(f"{stream} topic {streams[stream]!r} changes its vector length during the recording")
    names = {k: v for reader in readers.values() for k, v in reader.names().items()}
    return ({k: np.asarray(v, dtype=np.float64) for k, v in stamps.items()},
            {k: np.stack(v) if v else np.zeros((0, 0), np.float32) for k, v in vectors.items()}, markers, names)


def _plan_episodes(path: Path, stamps, markers, gap_s, rate_hz, tolerance_s) -> list[dict]:
    """Split by markers and gaps, synchronise each episode; `pick` indexes each stream's message list."""
    runs = []
    for begin, end in _episode_windows(markers):
        inside = np.nonzero((stamps["image"] >= begin) & (stamps["image"] < end))[0]
        runs += [inside[run] for run in _split_gaps(stamps["image"][inside], gap_s) if len(run) >= 2]
    plans = []
    for k, frame_idx in enumerate(runs):
        begin, end = stamps["image"][frame_idx].min(), stamps["image"][frame_idx].max()
        window = {"image": frame_idx}
        for stream in stamps.keys() - {"image"}:  # messages during the episode, plus a margin for matching
            inside = (stamps[stream] >= begin - 0.5) & (stamps[stream] <= end + 0.5)
            earlier = np.nonzero(stamps[stream] < begin - 0.5)[0]
            if stream in HELD_STREAMS and len(earlier):  # the command the controller still holds
                inside[earlier[np.argmax(stamps[stream][earlier])]] = True
            window[stream] = np.nonzero(inside)[0]
        sync = synchronise({s: stamps[s][idx] for s, idx in window.items()}, "image", rate_hz, tolerance_s)
        plans.append({"name": path.stem if len(runs) == 1 else f"{path.stem}_ep{k}", "sync": sync,
                      "pick": {s: window[s][sync.indices[s]] for s in window}})
    return plans


class _FrameReader:
    """Second pass over the image messages, once, in log order, for every episode of the recording. A decoded
    frame is kept until a read starts after the last step that uses it (the steps of one slice, plus frames
    recorded out of order), so memory holds about one slice, not an episode."""

    def __init__(self, bag: BagMessages, image_topic: str, picks: list[np.ndarray]):
        self._messages = enumerate(msg for _, _, msg in bag.messages({image_topic}))
        self._position = -1  # ordinal of the last image message read
        self._cache: dict[int, np.ndarray] = {}  # ordinal -> decoded frame still to be used
        self._last_use: dict[int, tuple[int, int]] = {}  # ordinal -> (episode, step) of its last use
        for episode, pick in enumerate(picks):
            self._last_use.update((int(ordinal), (episode, step)) for step, ordinal in enumerate(pick))

    def read(self, episode: int, pick: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Frames of steps [start, stop) of `episode`, whose steps show image messages `pick`; `start` must not
        be before the previous read's."""
        self._cache = {o: f for o, f in self._cache.items() if self._last_use[o] >= (episode, start)}
        ordinals = pick[start:stop]
        while self._position < ordinals.max():
            self._position, msg = next(self._messages)
            if self._last_use.get(self._position, (-1, -1)) >= (episode, start):
                self._cache[self._position] = image_to_rgb(msg)
        try:
            return np.stack([self._cache[int(o)] for o in ordinals])
        except KeyError:
            raise UserError("bag frames are read forward: a slice cannot start before the previous one") from None


class BagFrames:
    """The frames of one bag episode, decoded as they are sliced (`frames[a:b]`, each slice starting at or
    after the previous one's start)."""

    def __init__(self, reader: _FrameReader, episode: int, pick: np.ndarray):
        self._reader, self._episode, self._pick = reader, episode, pick

    def __len__(self) -> int:
        return len(self._pick)

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop = forward_slice(index, len(self), "bag frames")
        return self._reader.read(self._episode, self._pick, start, stop)


def _with_frames(bag: BagMessages, image_topic: str, plans: list[dict]) -> Iterator[dict]:
    """The plans in the order their frames end in the recording, each with lazily decoded `frames`."""
    plans = sorted(plans, key=lambda p: p["pick"]["image"].max())
    reader = _FrameReader(bag, image_topic, [p["pick"]["image"] for p in plans])
    for episode, plan in enumerate(plans):
        plan["frames"] = BagFrames(reader, episode, plan["pick"]["image"])
        yield plan
