"""RealSense recordings (`.db3` from the pyrealsense2 recorder, `.bag` where pyrealsense2 plays it).

Played back through pyrealsense2 in non-real-time mode, sensors started on a frame queue while the
playback is paused (environment.md §4, low-level path): real-time playback drops frames, and the
pipeline variant (pause -> set_real_time(False) -> seek(0) -> resume) still lost frames here in 1 of 8 runs.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import UserError
from ..sync import synchronise
from ..episode import Episode
from ...msgs import Image
from ..frames import image_to_rgb

WAIT_MS, DRAIN_MS, POLL_MS = 2000, 250, 50  # playback silence that ends reading
ENCODINGS = {"rgb8": "rgb8", "bgr8": "bgr8", "rgba8": "rgba8", "bgra8": "bgra8", "y8": "mono8"}  # rs -> ROS


def is_realsense_db3(path: Path) -> bool:
    """pyrealsense2 writes rosbag2-style sqlite files whose topics live under `/device_0/`."""
    try:
        with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as db:
            names = [row[0] for row in db.execute("SELECT name FROM topics")]
    except sqlite3.Error:
        return False
    return any(n.startswith("/device_0/") for n in names)


def read_realsense(path: Path, rate_hz=None, tolerance_s=None) -> Iterator[Episode]:
    import pyrealsense2 as rs

    try:
        device = rs.context().load_device(str(path))
    except RuntimeError as exc:
        raise UserError(f"pyrealsense2 cannot play {path}: {exc}") from None
    playback = device.as_playback()
    playback.set_real_time(False)
    playback.pause()
    queue = rs.frame_queue(64, keep_frames=True)
    sensors = []
    for sensor in device.query_sensors():
        color = [p for p in sensor.get_stream_profiles() if p.stream_type() == rs.stream.color]
        if color:
            sensor.open(color)
            sensor.start(queue)
            sensors.append(sensor)
    if not sensors:
        raise UserError(f"{path} has no colour stream")
    frames, stamps, idle_ms = [], [], 0
    try:
        playback.resume()
        while True:  # playback reports `stopped` before the queue has delivered the last frames: drain
            ok, frame = queue.try_wait_for_frame(POLL_MS)
            if not ok:
                idle_ms += POLL_MS
                finished = idle_ms >= DRAIN_MS and playback.current_status() == rs.playback_status.stopped
                if finished or idle_ms >= WAIT_MS:
                    break
                continue
            idle_ms = 0
            frame = frame.as_video_frame()
            frames.append(_decode(frame))
            stamps.append(frame.get_timestamp() * 1e-3)
    finally:
        for sensor in sensors:
            sensor.stop()
            sensor.close()
    if len(frames) < 2:
        raise UserError(f"{path} holds {len(frames)} colour frame(s); need at least 2")
    sync = synchronise({"image": np.asarray(stamps)}, "image", rate_hz, tolerance_s)
    yield Episode(name=path.stem, frames=np.stack(frames)[sync.indices["image"]], timestamps=sync.times,
                        stamps=sync.stamps, attrs={"topics": {"image": "color"}, "sync": sync.stats})


def _decode(color) -> np.ndarray:
    fmt = str(color.get_profile().format()).split(".")[-1]
    if fmt not in ENCODINGS:
        raise UserError(f"unsupported RealSense colour format {fmt!r}; supported: {', '.join(ENCODINGS)}")
    return image_to_rgb(Image(height=color.get_height(), width=color.get_width(), encoding=ENCODINGS[fmt],
                              step=color.get_stride_in_bytes(), data=np.asanyarray(color.get_data()).tobytes()))
