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
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import UserError
from ...robot_state import StateLayout
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
            raise UserError(f"{path} has no metadata.yaml; pass the storage file inside it as --input "
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


def open_source(path: str | os.PathLike, image_topic: str | None = None, state_topic: str | None = None,
                action_topic: str | None = None, rate_hz: float | None = None, episode_topic: str | None = None,
                gap_s: float = DEFAULT_GAP_S, tolerance_s: float | None = None,
                camera: str | None = None, gripper_topic: str | None = None,
                layout: StateLayout | None = None) -> Iterator[Episode]:
    """Episodes of a recording. Topics apply to rosbag2 (for HDF5, `image_topic` is the obs key);
    `rate_hz` / `tolerance_s` resample time-stamped recordings (rosbag2, RealSense) to a control rate;
    `camera` is the image feature of a LeRobot dataset, where `tolerance_s` matches video frames to timestamps;
    `gripper_topic` ("none": no gripper) and `layout` (joint names, state fields) lay out a rosbag2's robot state
    as the live recorder does (`diffusion_reward.robot_state`)."""
    path = Path(path)
    kind = detect_kind(path)
    if kind in ("hdf5", "png", "lerobot") and rate_hz:
        raise UserError(f"--rate applies to time-stamped recordings (rosbag2, RealSense), not to {kind} input")
    if kind in ("hdf5", "png") and tolerance_s is not None:
        raise UserError(f"--tolerance applies to rosbag2, RealSense and LeRobot input, not to {kind} input")
    if kind != "rosbag2" and (state_topic or action_topic or episode_topic or gripper_topic):
        raise UserError(f"state/gripper/action/episode topics apply to rosbag2 recordings, not to {kind} input")
    if kind != "rosbag2" and layout not in (None, StateLayout()):
        raise UserError(f"--joint-names / --state-fields lay out a rosbag2 recording's JointState, not {kind} input")
    if kind == "lerobot" and image_topic:
        raise UserError("a LeRobot dataset's camera is chosen with --camera (an image or video feature key), "
                        "not --image-topic")
    if kind != "lerobot" and camera:
        raise UserError(f"--camera picks a LeRobot dataset's image feature; for {kind} input use --image-topic")
    if kind == "hdf5":
        from .hdf5 import read_hdf5

        episodes = read_hdf5(path, image_key=image_topic)
    elif kind == "rosbag2":
        from .rosbag import read_rosbag

        episodes = read_rosbag(path, image_topic, state_topic, action_topic, rate_hz, episode_topic, gap_s,
                               tolerance_s, gripper_topic, layout)
    elif kind == "realsense":
        from .realsense import read_realsense

        episodes = read_realsense(path, rate_hz, tolerance_s)
    elif kind == "lerobot":
        from .lerobot import read_lerobot

        episodes = read_lerobot(path, camera, tolerance_s)
    else:
        from .folder import read_png_folder

        episodes = read_png_folder(path)
    for episode in episodes:
        episode.attrs.update(source_kind=kind, source_path=str(path.resolve()), source_episode=episode.name)
        yield episode


READ_ROWS = 256  # frames read (and resized) at a time while loading: full-resolution frames are never all held


def load_episodes(paths: list[str], image_size: int, all_episodes: bool = False,
                  resize: bool = False) -> tuple[list[Episode], list[dict]]:
    """Whole episodes of every source in memory, frames u8[T,image_size,image_size,3], and one provenance record per
    source (kind, content hash, counts, tasks). Episodes known to have failed (`success` False) are left out unless
    `all_episodes`; so is the authors' held-out `test` split of a PNG folder. `resize` center-crops and resizes
    frames of another size (`frames.model_frames`, what scoring does); without it they are an error. An
    episode's task is the one its source names, else the source file's stem."""
    episodes, provenance = [], []
    for path in paths:
        eps, digest = [], hashlib.sha256()
        for ep in open_source(path):
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
        provenance.append({"path": str(path), "kind": eps[0].attrs["source_kind"], "sha256": digest.hexdigest(), "episodes": len(eps),
                           "frames": int(sum(len(e.frames) for e in eps)), "tasks": sorted({e.task for e in eps})})
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


__all__ = ["KINDS", "Episode", "detect_kind", "load_episodes", "open_source"]
