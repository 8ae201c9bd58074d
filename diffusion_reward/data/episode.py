"""The one episode type: what every source reader yields (`data.sources.open_source`) and what relabelling,
training, statistics and scoring consume, whatever the recording was (HDF5, rosbag2, RealSense, LeRobot, PNG)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Episode:
    """`frames` and `obs` values are per-step arrays or, for long sources, read lazily: `len(x)` and forward
    slices `x[a:b]` -> array (h5py datasets; `rosbag.BagFrames` decodes bag messages as it is sliced). Read them
    while the episode is the source iterator's current one, a chunk at a time: the whole episode may not fit."""

    name: str  # unique within its source
    frames: Any  # u8[T,H,W,3] RGB, the camera that gets scored
    task: str | None = None  # the task it shows, when the source says (HDF5 env_args, PNG folder)
    obs: dict[str, Any] = field(default_factory=dict)  # other observations, T rows each ("state", ...)
    actions: np.ndarray | None = None  # f32[T,A]
    rewards: np.ndarray | None = None  # sparse task reward f32[T], when the source has one
    dones: np.ndarray | None = None  # bool[T], when the source has them
    timestamps: np.ndarray | None = None  # f64[T] s: control-step times
    success: bool | None = None
    stamps: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> f64[T] stamp of the message used
    attrs: dict = field(default_factory=dict)  # sync statistics, topics, source kind and path
    next_frames: Any = None  # robomimic `next_obs` of the scored camera (T rows), kept beside `frames`
    extra: dict[str, Any] = field(default_factory=dict)  # more per-step datasets kept as they are, by path
    # (robomimic `next_obs/<key>`, `states`)


def forward_slice(index, length: int, what: str) -> tuple[int, int]:
    """(start, stop) of `x[a:b]` on a lazily read sequence of `length` rows; IndexError for anything but a forward,
    non-empty, step-1 slice (`what` names the sequence in the message)."""
    if not isinstance(index, slice):
        raise IndexError(f"{what} are read in slices")
    start, stop, step = index.indices(length)
    if step != 1 or start >= stop:
        raise IndexError(f"{what} are read in forward slices, got {index}")
    return start, stop
