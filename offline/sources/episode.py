"""The episode every source reader yields."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SourceEpisode:
    name: str  # unique within its source
    frames: np.ndarray  # u8[T,H,W,3] RGB, the camera that gets scored
    obs: dict[str, np.ndarray] = field(default_factory=dict)  # other observations, T rows each ("state", ...)
    actions: np.ndarray | None = None  # f32[T,A]
    rewards: np.ndarray | None = None  # sparse task reward f32[T], when the source has one
    dones: np.ndarray | None = None  # bool[T], when the source has them
    timestamps: np.ndarray | None = None  # f64[T] s: control-step times
    success: bool | None = None
    stamps: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> f64[T] stamp of the message used
    attrs: dict = field(default_factory=dict)  # sync statistics, topics, source kind and path
