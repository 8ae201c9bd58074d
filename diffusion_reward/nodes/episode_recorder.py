"""Episode recorder: robot episodes from ROS 2 topics into a crash-safe dataset (`DatasetWriter`).

One step per colour image. Every other stream is matched to the image by HEADER stamp:
- joint state (`state_topic`, default `/franka/joint_states`: stamped at the controller rate, unlike the
  re-stamped `/joint_states`): the nearest message within `sync_tolerance_s`; `obs/state` = the
  `state_fields` (position, velocity) of `joint_names`, in that order;
- gripper / hand joint state (`gripper_topic`, optional) and a second robot-state JointState topic
  (`robot_state_topic`, optional): nearest within the tolerance (`obs/gripper`, `obs/robot_state`);
  `obs/state`, `obs/gripper` and the actions are built by `diffusion_reward.robot_state`, which a rosbag2
  relabel uses too, with the same defaults: one layout per robot (FORMAT.md, "Robot state layout");
- reward (`reward_topic`, the labeller's `~/reward`): the reward whose stamp EQUALS the image stamp,
  stored as the reward label group `reward_labels/<reward_type>/{reward, raw, latency}` with the
  labeller's provenance (`data.labels.LabelProvenance`, latched beside the stream on `<reward_topic>_provenance`);
- commanded action (`action_topic`: `trajectory_msgs/JointTrajectory`, last point's positions, or
  `std_msgs/Float64MultiArray`, which has no header and is stamped on receipt): nearest within the
  tolerance, else the last command before the image (the controller holds it).
An image is written once every stream it needs is decided (a later message passed its stamp +
tolerance, its reward arrived) or after `wait_timeout_s`; images that cannot be matched are dropped
and counted per reason. Per-step stamps of every stream go to `stamps/<stream>`, and the episode
attribute `sync` records tolerance, drop counts and skew statistics.

Episodes: `/episode/start`, `/episode/stop`, `/episode/discard` (std_msgs/Empty); `/episode/success`
(std_msgs/Bool) sets the success flag before a stop; `/episode/result` (Bool) stops with that flag;
an optional teleop button (`button_topic`, Bool) toggles start/stop on each press. On stop the last step
gets `done` (and sparse reward 1.0 if successful). Observations: `image` (model resolution, the
labeller's crop), `image_full` (camera resolution, `store_full_image`), `state`, optional `gripper`,
`robot_state`. `/diagnostics` (1 Hz): recording state, steps, images waiting, drops by reason.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from ..data.format import REWARD_ALIGNMENT
from ..data.labels import LabelProvenance, provenance_topic
from ..errors import UserError
from ..msgs import Bool, CompressedImage, DiagnosticArray, DiagnosticStatus, Empty, Float64MultiArray, Header, \
    Image, JointState, JointTrajectory, KeyValue, String, Time, Vector3Stamped
from ..transport.base import DEFAULT_QOS, LATCHED_QOS, QoS, Transport
from ..robot_state import (DEFAULT_GRIPPER_TOPIC, DEFAULT_STATE_FIELDS, DEFAULT_STATE_TOPIC, FR3_FINGERS, FR3_JOINTS,
                           STATE_FIELDS, MissingJointsError, check_state_fields, command_vector, gripper_vector,
                           state_vector)
from ..data.sync import HELD_STREAMS, SYNC_POLICY, SYNC_TOLERANCE_S, match
from ..data.frames import Crop, ImageConversionError, image_to_rgb, to_model_frame
from .params import declare_params

ACTION_TYPES = {"joint_trajectory": JointTrajectory, "float64_multi_array": Float64MultiArray}
OPTIONAL_TOPICS = ("gripper_topic", "robot_state_topic", "action_topic", "reward_topic", "button_topic")
# Best effort matches reliable and best-effort publishers alike (franka's convenience topics and the sim
# bridge publish best effort); depth 100 absorbs bursts of 1 kHz joint states. Rewards stay reliable.
STREAM_QOS = QoS(reliable=False, depth=100)
REWARD_QOS = QoS(reliable=True, depth=100)


@dataclass
class EpisodeRecorderParams:
    output: str = field(default="robot_episodes.hdf5", metadata={"help": "dataset file (created or appended)"})
    task: str = field(default="", metadata={"help": "task name stored in env_args (must match the reward model's)"})
    image_topic: str = field(default="/camera/camera/color/image_raw", metadata={"help": "colour image topic"})
    image_size: int = field(default=64, metadata={"help": "side of the model-resolution image `obs/image`"})
    crop: str = field(default="center", metadata={"help": "center | none | x,y,w,h, as the labeller's"})
    store_full_image: bool = field(default=True, metadata={"help": "also store camera-resolution `image_full`"})
    state_topic: str = field(default=DEFAULT_STATE_TOPIC, metadata={"help": "arm JointState topic"})
    joint_names: list = field(default_factory=lambda: list(FR3_JOINTS), metadata={"help": "arm joints, in order"})
    state_fields: list = field(default_factory=lambda: list(DEFAULT_STATE_FIELDS),
                               metadata={"help": "JointState fields in obs/state: position, velocity, effort"})
    gripper_topic: str = field(default=DEFAULT_GRIPPER_TOPIC, metadata={"help": "gripper/hand JointState (none = no gripper)"})
    gripper_joint_names: list = field(default_factory=lambda: list(FR3_FINGERS), metadata={"help": "gripper joints"})
    robot_state_topic: str = field(default="none", metadata={"help": "extra JointState topic -> obs/robot_state (none = off)"})
    action_topic: str = field(default="/fr3_arm_controller/joint_trajectory", metadata={"help": "commanded actions (none = no actions)"})
    action_type: str = field(default="joint_trajectory", metadata={"help": "joint_trajectory | float64_multi_array"})
    reward_topic: str = field(default="/reward_labeller/reward", metadata={"help": "labeller rewards (none = no reward labels)"})
    sync_tolerance_s: float = field(default=SYNC_TOLERANCE_S, metadata={"help": "max |stamp difference| to the image"})
    wait_timeout_s: float = field(default=2.0, metadata={"help": "how long an image waits for its reward/state"})
    button_topic: str = field(default="none", metadata={"help": "std_msgs/Bool teleop button, press toggles start/stop (none = off)"})
    compression: str = field(default="lzf", metadata={"help": "image compression: lzf | gzip | none"})

    def __post_init__(self) -> None:
        for name in OPTIONAL_TOPICS:  # `none` disables a stream where an empty string cannot be given
            if getattr(self, name).lower() == "none":
                setattr(self, name, "")

    def validate(self) -> None:
        if not self.output:
            raise UserError("parameter output is empty: set it to the dataset file to record into")
        if self.image_size < 8:
            raise UserError(f"parameter image_size must be >= 8, got {self.image_size}")
        if not self.state_topic or not self.joint_names:
            raise UserError("parameters state_topic and joint_names must not be empty")
        check_state_fields(self.state_fields, "parameter state_fields")
        if self.action_type not in ACTION_TYPES:
            raise UserError(f"parameter action_type must be one of {', '.join(ACTION_TYPES)}, got '{self.action_type}'")
        if self.sync_tolerance_s <= 0 or self.wait_timeout_s <= 0:
            raise UserError("parameters sync_tolerance_s and wait_timeout_s must be > 0")
        if self.compression not in ("lzf", "gzip", "none"):
            raise UserError(f"parameter compression must be lzf, gzip or none, got '{self.compression}'")
        Crop.parse(self.crop)


class _Stream:
    """Stamped samples of one topic, oldest first, matched to images by the one sync policy (`data.sync.match`)."""

    def __init__(self, maxlen: int = 20000):
        self.samples: deque[tuple[int, Any]] = deque(maxlen=maxlen)

    def add(self, stamp_ns: int, value: Any) -> None:
        self.samples.append((stamp_ns, value))

    def latest_ns(self) -> int | None:
        return max((s for s, _ in self.samples), default=None) if self.samples else None

    def match(self, stamp_ns: int, tolerance_ns: int, held: bool) -> tuple[int, Any] | None:
        stamps = np.fromiter((s for s, _ in self.samples), dtype=np.int64, count=len(self.samples))
        order = np.argsort(stamps, kind="stable")
        [picked] = match(stamps[order], np.array([stamp_ns], dtype=np.int64), tolerance_ns, held)
        return None if picked < 0 else self.samples[int(order[picked])]

    def prune_before(self, stamp_ns: int) -> None:
        while len(self.samples) > 1 and self.samples[0][0] < stamp_ns and self.samples[1][0] <= stamp_ns:
            self.samples.popleft()


class EpisodeRecorderNode:
    def __init__(self, transport: Transport):
        from ..data import DatasetWriter

        self.transport = transport
        self.params = p = declare_params(transport, EpisodeRecorderParams)
        self.crop = Crop.parse(p.crop)
        self.tolerance_ns = round(p.sync_tolerance_s * 1e9)
        self.writer = DatasetWriter(p.output, env_args=self._env_args(),
                                    compression=None if p.compression == "none" else p.compression)
        self.streams = {"state": _Stream()}
        if p.gripper_topic:
            self.streams["gripper"] = _Stream()
        if p.robot_state_topic:
            self.streams["robot_state"] = _Stream()
        if p.action_topic:
            self.streams["action"] = _Stream()
        self.rewards: dict[int, tuple[float, float, float]] = {}  # image stamp ns -> (reward, raw, latency)
        self.labeller_provenance: LabelProvenance | None = None
        self.episode = None
        self.stopping = False
        self.success = False
        self.pending: deque[tuple[int, Image | CompressedImage, int]] = deque()  # (stamp, msg, received ns)
        self.held_row: dict | None = None  # the newest step: written when the next one comes or at stop
        self.label: str | None = None
        self.done_stamp = -1  # newest image stamp written or dropped: later rewards for it are stale
        self.newest_image_ns = -1  # newest image stamp seen this episode: an image not newer is stale
        self.stats = self._new_stats()
        self.saved: list[str] = []
        self._logged_errors: set[str] = set()
        self._button = False

        image_type = CompressedImage if p.image_topic.rstrip("/").endswith("/compressed") else Image
        transport.create_subscription(image_type, p.image_topic, self._on_image, STREAM_QOS)
        transport.create_subscription(JointState, p.state_topic, self._joint_callback("state"), STREAM_QOS)
        if p.gripper_topic:
            transport.create_subscription(JointState, p.gripper_topic, self._joint_callback("gripper"), STREAM_QOS)
        if p.robot_state_topic:
            transport.create_subscription(JointState, p.robot_state_topic, self._joint_callback("robot_state"),
                                          STREAM_QOS)
        if p.action_topic:
            transport.create_subscription(ACTION_TYPES[p.action_type], p.action_topic, self._on_action, STREAM_QOS)
        if p.reward_topic:
            transport.create_subscription(Vector3Stamped, p.reward_topic, self._on_reward, REWARD_QOS)
            transport.create_subscription(String, provenance_topic(p.reward_topic), self._on_provenance, LATCHED_QOS)
        transport.create_subscription(Empty, "/episode/start", lambda _: self.start(), DEFAULT_QOS)
        transport.create_subscription(Empty, "/episode/stop", lambda _: self.stop(), DEFAULT_QOS)
        transport.create_subscription(Empty, "/episode/discard", lambda _: self.discard(), DEFAULT_QOS)
        transport.create_subscription(Bool, "/episode/success", self._on_success, DEFAULT_QOS)
        transport.create_subscription(Bool, "/episode/result", self._on_result, DEFAULT_QOS)
        if p.button_topic:
            transport.create_subscription(Bool, p.button_topic, self._on_button, DEFAULT_QOS)
        transport.create_timer(0.1, self._drain)
        self.diagnostics_pub = transport.create_publisher(DiagnosticArray, "/diagnostics", DEFAULT_QOS)
        transport.create_timer(1.0, self._publish_diagnostics)
        transport.log("info", f"recording into {p.output} ({len(self.writer.episode_names)} episodes there); "
                              f"waiting for /episode/start")

    # -- episode control --------------------------------------------------------------------------
    def start(self) -> None:
        if self.stopping:  # the previous episode still waits for rewards: save what it has now
            self._finish_now()
        if self.episode is not None:
            self.transport.log("warn", f"/episode/start while {self.episode.name} is recording: ignored")
            return
        self.episode = self.writer.begin_episode()
        self.stopping, self.success, self.done_stamp, self.newest_image_ns = False, False, -1, -1
        self.stats = self._new_stats()
        self.transport.log("info", f"recording {self.episode.name}")

    def stop(self) -> None:
        if self.episode is None:
            self.transport.log("warn", "/episode/stop without a recording episode: ignored")
            return
        self.stopping = True  # images already received still wait for their rewards
        self._drain()

    def discard(self) -> None:
        if self.episode is None:
            return
        name = self.episode.name
        self.writer.discard_episode(self.episode)
        self._reset_episode()
        self.transport.log("info", f"discarded {name}")

    def _finish(self) -> None:
        self._write_held(last=True)
        name, episode = self.episode.name, self.episode
        episode.flush()
        if episode.num_samples == 0:
            self.writer.discard_episode(episode)
            self.transport.log("warn", f"{name} has no complete step (drops: {self.stats['dropped']}): not saved")
        else:
            label = self._label_name()
            extra_attrs = {f"reward_labels/{label}": self._label_provenance()} if self.params.reward_topic else {}
            self.writer.end_episode(episode, success=self.success, attrs={"sync": self._sync_summary()},
                                    extra_attrs=extra_attrs)
            self.saved.append(name)
            self.transport.log("info", f"saved {name}: {episode.num_samples} steps, success={self.success}, "
                                       f"dropped {sum(self.stats['dropped'].values())} image(s)")
        self._reset_episode()

    def _finish_now(self) -> None:
        """Match the waiting images as far as possible now (no more waiting) and save the episode."""
        while self.pending:
            stamp, msg, _ = self.pending.popleft()
            self._record(stamp, msg)
        self._finish()

    def _reset_episode(self) -> None:
        self.episode, self.stopping, self.held_row, self.label = None, False, None, None
        self.pending.clear()

    # -- callbacks --------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        if self.episode is None or self.stopping:
            return
        self.pending.append((msg.header.stamp.to_ns(), msg, self.transport.now_ns()))
        self._drain()

    def _joint_callback(self, stream: str):
        p = self.params

        def callback(msg: JointState) -> None:
            try:
                if stream == "robot_state":
                    value = np.concatenate([np.asarray(getattr(msg, f), np.float32) for f in STATE_FIELDS])
                elif stream == "state":
                    value = state_vector(msg, p.joint_names, p.state_fields)
                else:
                    value = gripper_vector(msg, p.gripper_joint_names)
            except MissingJointsError as exc:
                self.stats["bad_messages"][stream] = self.stats["bad_messages"].get(stream, 0) + 1
                self._log_once("error", f"ignoring a {stream} message: {exc}")
                return
            self.streams[stream].add(msg.header.stamp.to_ns(), value)
        return callback

    def _on_action(self, msg: JointTrajectory | Float64MultiArray) -> None:
        if isinstance(msg, JointTrajectory):
            if not msg.points:
                return
            try:
                value = command_vector(msg, self.params.joint_names)  # in joint_names order, like state
            except MissingJointsError as exc:
                self.stats["bad_messages"]["action"] = self.stats["bad_messages"].get("action", 0) + 1
                self._log_once("error", f"ignoring a command: {exc}")
                return
            stamp = msg.header.stamp.to_ns() or self.transport.now_ns()  # stamp 0 = "start now" for the JTC
        else:
            stamp, value = self.transport.now_ns(), np.asarray(msg.data, np.float32)
        self.streams["action"].add(stamp, value)

    def _on_reward(self, msg: Vector3Stamped) -> None:
        stamp = msg.header.stamp.to_ns()
        if self.episode is None or stamp <= self.done_stamp:
            return  # not recording, or its image is already written or dropped
        self.rewards[stamp] = (msg.vector.x, msg.vector.y, msg.vector.z)
        self._drain()

    def _on_provenance(self, msg: String) -> None:
        try:
            self.labeller_provenance = LabelProvenance.from_json(msg.data)
        except UserError as exc:
            self._log_once("error", f"unreadable reward provenance on {provenance_topic(self.params.reward_topic)}: "
                                    f"{exc}")

    def _on_success(self, msg: Bool) -> None:
        self.success = bool(msg.data)

    def _on_result(self, msg: Bool) -> None:
        self.success = bool(msg.data)
        self.stop()

    def _on_button(self, msg: Bool) -> None:
        pressed = bool(msg.data)
        if pressed and not self._button:  # rising edge
            self.stop() if self.episode is not None and not self.stopping else self.start()
        self._button = pressed

    # -- synchronisation ----------------------------------------------------------------------------
    def _drain(self) -> None:
        """Write every pending image whose streams are decided, oldest first; finish a stopping episode."""
        if self.episode is None:
            return
        now = self.transport.now_ns()
        timeout_ns = round(self.params.wait_timeout_s * 1e9)
        while self.pending:
            stamp, msg, received = self.pending[0]
            timed_out = now - received >= timeout_ns
            if not timed_out and not self._decided(stamp):
                break
            self.pending.popleft()
            self._record(stamp, msg)
            self.done_stamp = max(self.done_stamp, stamp)
        self.rewards = {s: r for s, r in self.rewards.items() if s > self.done_stamp}
        if self.pending:
            oldest = self.pending[0][0] - self.tolerance_ns
            for stream in self.streams.values():
                stream.prune_before(oldest)
        if self.stopping and not self.pending:
            self._finish()

    def _decided(self, stamp: int) -> bool:
        if self.params.reward_topic and stamp not in self.rewards:
            return False
        for name, stream in self.streams.items():
            latest = stream.latest_ns()
            if name != "action" and (latest is None or latest < stamp + self.tolerance_ns):
                return False
        return True

    def _record(self, stamp: int, msg: Image | CompressedImage) -> None:
        if stamp <= self.newest_image_ns:
            return self._drop("stale_image", "an image not newer than an earlier one (sent twice or out of order)")
        self.newest_image_ns = stamp
        try:
            rgb = image_to_rgb(msg)
            image = to_model_frame(rgb, self.crop, self.params.image_size)
        except ImageConversionError as exc:
            return self._drop("bad_image", f"skipping an image: {exc}")
        obs = {"image": image}
        if self.params.store_full_image:
            obs["image_full"] = rgb
            if self.stats["full_image_shape"] is None:
                self.stats["full_image_shape"] = list(rgb.shape)
            elif list(rgb.shape) != self.stats["full_image_shape"]:
                return self._drop("image_size_changed", f"camera resolution changed to {rgb.shape[1]}x{rgb.shape[0]}")
        stamps, action = {"image": stamp}, None
        for name, stream in self.streams.items():
            matched = stream.match(stamp, self.tolerance_ns, held=name in HELD_STREAMS)
            if matched is None:
                return self._drop(f"no_{name}", "no command yet: images before the first command are not recorded"
                                  if name in HELD_STREAMS else
                                  f"no {name} within {self.params.sync_tolerance_s} s of an image")
            stamps[name], value = matched
            if name in HELD_STREAMS:
                action = value
            else:
                obs[name] = value
        extra = {}
        if self.params.reward_topic:
            reward = self.rewards.pop(stamp, None)
            if reward is None:
                return self._drop("no_reward", f"no reward for an image within {self.params.wait_timeout_s} s "
                                               "(labeller dropped it or is not running)")
            stamps["reward"] = stamp
            label = self._label_name()
            extra = {f"reward_labels/{label}/reward": np.float32(reward[0]),
                     f"reward_labels/{label}/raw": np.float32(reward[1]),
                     f"reward_labels/{label}/latency": np.float32(reward[2])}
        for name, s in stamps.items():
            skew = abs(s - stamp) / 1e9
            self.stats["max_skew_s"][name] = max(self.stats["max_skew_s"].get(name, 0.0), skew)
        self._write_held(last=False)
        self.held_row = dict(obs=obs, action=action, timestamp=stamp / 1e9,
                             stamps={k: v / 1e9 for k, v in stamps.items()}, extra=extra)
        self.stats["recorded"] += 1

    def _write_held(self, last: bool) -> None:
        if self.held_row is None:
            return
        row, self.held_row = self.held_row, None
        try:
            self.episode.add_step(obs=row["obs"], action=row["action"], reward=float(last and self.success),
                                  done=last, timestamp=row["timestamp"], stamps=row["stamps"], extra=row["extra"])
        except UserError as exc:  # e.g. a command of another length: rejected before anything is written
            self.stats["recorded"] -= 1
            self._drop("inconsistent_step", f"step not recorded: {exc}")

    def _drop(self, reason: str, message: str) -> None:
        self.stats["dropped"][reason] = self.stats["dropped"].get(reason, 0) + 1
        self._log_once("warn", message)

    def _log_once(self, level: str, message: str) -> None:
        if message not in self._logged_errors:
            self._logged_errors.add(message)
            self.transport.log(level, message)

    def _publish_diagnostics(self) -> None:
        recording = self.episode is not None
        dropped = sum(self.stats["dropped"].values())
        values = {"recording": recording, "episode": self.episode.name if recording else "",
                  "steps": self.stats["recorded"], "waiting_images": len(self.pending), "dropped": dropped,
                  "saved_episodes": len(self.saved), "output": self.params.output,
                  **{f"dropped_{reason}": n for reason, n in self.stats["dropped"].items()}}
        level = DiagnosticStatus.WARN if dropped else DiagnosticStatus.OK
        message = (f"recording {self.episode.name}: {self.stats['recorded']} steps, {dropped} images dropped"
                   if recording else f"idle, {len(self.saved)} episode(s) saved")
        self.diagnostics_pub.publish(DiagnosticArray(
            header=Header(stamp=Time.from_ns(self.transport.now_ns())),
            status=[DiagnosticStatus(level=level, name=f"{self.transport.name}: recorder", message=message,
                                     values=[KeyValue(k, str(v)) for k, v in values.items()])]))

    # -- metadata -----------------------------------------------------------------------------------
    def _new_stats(self) -> dict:
        return {"recorded": 0, "dropped": {}, "bad_messages": {}, "max_skew_s": {}, "full_image_shape": None}

    def _sync_summary(self) -> dict:
        return {"policy": SYNC_POLICY, "tolerance_s": self.params.sync_tolerance_s, "reward_match": "exact image stamp",
                **self.stats}

    def _label_name(self) -> str:
        """The reward label group of this episode, fixed at its first step (the reward type, when known)."""
        if self.label is None:
            self.label = self.labeller_provenance.reward_type if self.labeller_provenance else "labeller"
        return self.label

    def _label_provenance(self) -> dict:
        """FORMAT.md's provenance attributes: the labeller's, and how this recorder received its rewards."""
        ours = {"topic": self.params.reward_topic, "alignment": REWARD_ALIGNMENT,
                "datasets": "reward = standardised (Vector3Stamped.x), raw = model score (.y), latency = s (.z)"}
        if self.labeller_provenance is None:
            self._log_once("warn", f"no reward provenance received on {provenance_topic(self.params.reward_topic)}: "
                                   "the reward label's provenance is incomplete")
            return {**ours, "source": "ros2", "software_version": __version__}
        return {**self.labeller_provenance.attrs(), **ours}

    def _env_args(self) -> dict:
        p = self.params
        return {"task": p.task, "camera": p.image_topic, "image_size": p.image_size, "image_key": "image",
                "crop": p.crop, "source": "ros2", "joint_names": p.joint_names, "state_fields": p.state_fields,
                "gripper_joint_names": p.gripper_joint_names if p.gripper_topic else [],
                "action_space": p.action_type if p.action_topic else None,
                "topics": {"image": p.image_topic, "state": p.state_topic, "gripper": p.gripper_topic,
                           "robot_state": p.robot_state_topic, "action": p.action_topic, "reward": p.reward_topic}}

    def close(self) -> None:
        """Save what a recording episode has, then release the dataset."""
        if self.episode is not None:
            self._finish_now()
        self.writer.close()
