"""Recorded episodes from every kind of source, as `Episode`s: the one reader behind relabelling, training,
statistics and scoring.

Kinds: our HDF5 datasets and robomimic-layout HDF5 files, rosbag2 recordings (directories with mcap or
sqlite3 storage, bare `.mcap` / `.db3` files), RealSense recordings (`.db3` from the pyrealsense2
recorder, `.bag`), LeRobot datasets (a folder with `meta/info.json`, v2.0 / v2.1 / v3.0; `lerobot.py`), and
folders of PNG frames in the authors' `<domain>/<task>/<split>/<episode>/<i>.png` layout. Every episode's `attrs`
carry `source_kind`, `source_path` and `source_episode`. `open_source` streams (frames stay lazy, for long
recordings); `load_episodes` reads whole episodes into memory at the model's resolution (training, statistics).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ...checks import check_float, config_field
from ...errors import UserError
from ...robot_state import DEFAULT_STATE_FIELDS, StateLayout
from ..sync import check_rate
from ..episode import Episode
from ..frames import model_frames
from .rosbag import DEFAULT_GAP_S

KINDS = ("hdf5", "rosbag2", "realsense", "lerobot", "png")


def detect_kind(path: Path) -> str:
    if not path.exists():
        raise UserError(f"input {path} does not exist")
    if path.is_dir():
        if (path / "metadata.yaml").exists():
            return "rosbag2"
        if (path / "meta" / "info.json").exists():
            return "lerobot"
        if next(path.rglob("*.png"), None) is not None:
            return "png"
        storage = sorted(p.name for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
        if storage:
            raise UserError(f"{path} has no metadata.yaml; pass the storage file inside it instead "
                            f"({', '.join(storage)})")
        raise UserError(f"{path} is neither a rosbag2 directory (no metadata.yaml), a LeRobot dataset (no "
                        "meta/info.json) nor a folder of PNG frames")
    suffix = path.suffix.lower()
    if suffix in (".hdf5", ".h5"):
        return "hdf5"
    if suffix == ".mcap":
        return "rosbag2"
    if suffix == ".db3":
        from .realsense import is_realsense_db3

        return "realsense" if is_realsense_db3(path) else "rosbag2"
    if suffix == ".bag":
        return "realsense"
    raise UserError(f"cannot tell what {path} is; supported: .hdf5/.h5, rosbag2 directory, .mcap, .db3 "
                    "(rosbag2 or RealSense), RealSense .bag, folder of PNG frames")


@dataclass(frozen=True)
class SourceOptions:
    """How a recording is read: which topics, how its streams become steps (`data/sync.py`), which camera. Every
    field is a flag of `relabel` and `score` (`cli/config_args.py`); they apply to the kinds their help names."""

    image_topic: str | None = config_field(
        None, "rosbag2 image topic (default: /camera/camera/color/image_raw, ...); for HDF5 input, the obs key to "
              "score")
    state_topic: str | None = config_field(
        None, "rosbag2 JointState topic (default: /franka/joint_states, /joint_states)")
    gripper_topic: str | None = config_field(
        None, "rosbag2 gripper JointState topic, stored as obs/gripper = the finger positions, as the live recorder "
              "does (default: /franka_gripper/joint_states when the bag has it; none = no gripper)", metavar="TOPIC")
    joint_names: tuple[str, ...] | None = config_field(
        None, "rosbag2: the arm joints of obs/state and of JointTrajectory actions, in order (default: fr3_joint1..7 "
              "when the JointState has them, else its joints in the first message's order)", metavar="J1,J2,...")
    state_fields: tuple[str, ...] = config_field(
        DEFAULT_STATE_FIELDS, "rosbag2: the JointState fields in obs/state (position, velocity, effort), each over "
                              "all arm joints, in this order (default: position,velocity, the live recorder's "
                              "state_fields; layout: diffusion_reward/data/FORMAT.md)", metavar="F1,F2")
    action_topic: str | None = config_field(
        None, "rosbag2 command topic (default: /fr3_arm_controller/joint_trajectory; JointTrajectory, "
              "Float64MultiArray or TwistStamped)")
    episode_topic: str | None = config_field(
        None, "rosbag2 topic that splits episodes: std_msgs/Bool (true = start, false = stop) or std_msgs/Empty (each "
              "message starts a new one); default: /episode/start and /episode/stop when present")
    rate_hz: float | None = config_field(
        None, "resample bag / RealSense streams onto a control-rate grid of this many Hz (default: one step per "
              "camera image, as the live recorder records)", flag="--rate", metavar="HZ")
    tolerance_s: float | None = config_field(
        None, "max stamp distance for a match (default: 0.05 s, the live recorder's; with --rate: half a control "
              "period); LeRobot input: max distance between a row's timestamp and its video frame (default: 1e-4, "
              "LeRobot's)", flag="--tolerance", metavar="S")
    gap_s: float = config_field(DEFAULT_GAP_S, "a camera gap longer than this many seconds splits an episode",
                                flag="--gap", metavar="S")
    camera: str | None = config_field(None, "LeRobot input: the image or video feature to score, e.g. "
                                            "observation.images.top (default: the first one in meta/info.json)",
                                      metavar="KEY")

    def __post_init__(self):  # bad numbers fail before anything is read
        check_rate(self.rate_hz)
        if self.tolerance_s is not None:
            check_float("tolerance_s", self.tolerance_s, 0.0)
        check_float("gap_s", self.gap_s, 0.0, above=True)
        self.layout  # checks state_fields

    @property
    def layout(self) -> StateLayout:
        return StateLayout(joint_names=tuple(self.joint_names) if self.joint_names else None,
                           state_fields=tuple(self.state_fields))

    def check_kind(self, kind: str) -> None:
        """UserError for an option set that does not apply to a recording of `kind`."""
        if kind in ("hdf5", "png", "lerobot") and self.rate_hz:
            raise UserError(f"`rate_hz` applies to time-stamped recordings (rosbag2, RealSense), not to {kind} input")
        if kind in ("hdf5", "png") and self.tolerance_s is not None:
            raise UserError(f"`tolerance_s` applies to rosbag2, RealSense and LeRobot input, not to {kind} input")
        if kind != "rosbag2" and (self.state_topic or self.action_topic or self.episode_topic or self.gripper_topic):
            raise UserError(f"state/gripper/action/episode topics apply to rosbag2 recordings, not to {kind} input")
        if kind != "rosbag2" and self.layout != StateLayout():
            raise UserError(f"`joint_names` / `state_fields` lay out a rosbag2 recording's JointState, not {kind} "
                            "input")
        if kind == "lerobot" and self.image_topic:
            raise UserError("a LeRobot dataset's camera is chosen with `camera` (an image or video feature key), "
                            "not `image_topic`")
        if kind != "lerobot" and self.camera:
            raise UserError(f"`camera` picks a LeRobot dataset's image feature; for {kind} input use `image_topic`")

    def recorded(self, kind: str) -> dict:
        """The options that shaped a recording of `kind`'s steps, for label provenance (equal ones may resume)."""
        out = {k: getattr(self, k) for k in ("image_topic", "state_topic", "action_topic", "episode_topic", "rate_hz",
                                             "tolerance_s", "gap_s")}
        if kind == "rosbag2":  # the robot-state layout
            out.update(gripper_topic=self.gripper_topic, state_fields=list(self.state_fields),
                       joint_names=list(self.joint_names) if self.joint_names else None)
        return out


def open_source(path: str | os.PathLike, options: SourceOptions | None = None, **fields) -> Iterator[Episode]:
    """Episodes of a recording, read as `options` (or SourceOptions(**fields)) say."""
    o = options or SourceOptions(**fields)
    path = Path(path)
    kind = detect_kind(path)
    o.check_kind(kind)
    if kind == "hdf5":
        from .hdf5 import read_hdf5

        episodes = read_hdf5(path, image_key=o.image_topic)
    elif kind == "rosbag2":
        from .rosbag import read_rosbag

        episodes = read_rosbag(path, o.image_topic, o.state_topic, o.action_topic, o.rate_hz, o.episode_topic, o.gap_s,
                               o.tolerance_s, o.gripper_topic, o.layout)
    elif kind == "realsense":
        from .realsense import read_realsense

        episodes = read_realsense(path, o.rate_hz, o.tolerance_s)
    elif kind == "lerobot":
        from .lerobot import read_lerobot

        episodes = read_lerobot(path, o.camera, o.tolerance_s)
    else:
        from .folder import read_png_folder

        episodes = read_png_folder(path)
    for episode in episodes:
        episode.attrs.update(source_kind=kind, source_path=str(path.resolve()), source_episode=episode.name)
        yield episode


READ_ROWS = 256  # frames read (and resized) at a time while loading: full-resolution frames are never all held


def load_episodes(paths: list[str], image_size: int, all_episodes: bool = False, resize: bool = False,
                  options: SourceOptions | None = None) -> tuple[list[Episode], list[dict]]:
    """Whole episodes of every source in memory, frames u8[T,image_size,image_size,3], and one provenance record per
    source (kind, content hash, counts, tasks). Episodes known to have failed (`success` False) are left out unless
    `all_episodes`; so is the authors' held-out `test` split of a PNG folder. `resize` center-crops and resizes
    frames of another size (`frames.model_frames`, what scoring does); without it they are an error. An
    episode's task is the one its source names, else the source file's stem. `options`: how recordings are read."""
    episodes, provenance = [], []
    for path in paths:
        eps, digest = [], hashlib.sha256()
        for ep in open_source(path, options):
            if ep.attrs.get("split") == "test" or (ep.success is False and not all_episodes):
                continue
            frames = _read_frames(path, ep, image_size, resize)
            eps.append(Episode(name=ep.name, frames=frames, task=ep.task or Path(path).stem,
                               success=ep.success, attrs=ep.attrs))
            digest.update(ep.name.encode())
            digest.update(frames.tobytes())
        if not eps:
            raise UserError(f"{path} has no usable episodes (episodes recorded as failed are left out unless all "
                            "episodes are asked for).")
        episodes += eps
        provenance.append({"path": str(path), "kind": eps[0].attrs["source_kind"], "sha256": digest.hexdigest(),
                           "episodes": len(eps), "frames": int(sum(len(e.frames) for e in eps)),
                           "tasks": sorted({e.task for e in eps})})
    return episodes, provenance


def _read_frames(path, ep: Episode, image_size: int, resize: bool) -> np.ndarray:
    n = len(ep.frames)
    if n < 2:
        raise UserError(f"{path}: episode {ep.name} has fewer than 2 frames.")
    try:
        return np.concatenate([model_frames(ep.frames[start:min(n, start + READ_ROWS)], image_size, resize)
                               for start in range(0, n, READ_ROWS)])
    except UserError as exc:
        raise UserError(f"{path}: episode {ep.name}: {exc}") from None


__all__ = ["KINDS", "Episode", "SourceOptions", "detect_kind", "load_episodes", "open_source"]
