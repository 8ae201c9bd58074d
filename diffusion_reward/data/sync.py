"""Resample time-stamped streams onto one control-rate grid by their header stamps.

The reference stream (the camera) defines the grid: t_k = t_0 + k / rate, where t_0 is the camera's
phase and rate defaults to the camera's frame rate (both fitted to its stamps). At every step each stream
contributes its message nearest in time; a step where a stream has nothing within `tolerance_s` (default
half a period) is *missing* for that stream and reuses the nearest message anyway. Leading and trailing steps where any stream is missing are trimmed.
Messages repeating the previous message's stamp are dropped as duplicates before matching.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import check_float, check_memory
from ..errors import UserError

REPEAT_EPS_S = 1e-6  # stamps closer than this are the same frame recorded twice
GRID_BYTES_PER_STREAM = 64  # per grid step and stream while matching: 8 float64 / int64 arrays


def check_rate(rate_hz: float | None) -> None:
    """`--rate`: None (the camera's rate) or a positive finite number of Hz."""
    if rate_hz is not None:
        check_float("--rate", rate_hz, 0.0, above=True)


@dataclass
class SyncResult:
    times: np.ndarray  # f64[T] grid times (s)
    indices: dict[str, np.ndarray]  # stream -> int64[T] index into that stream's ORIGINAL message list
    stamps: dict[str, np.ndarray]  # stream -> f64[T] stamp of the message used at each step
    stats: dict[str, float | int]  # flat, ready for HDF5 attrs


def camera_clock(stamps: np.ndarray) -> tuple[float, float]:
    """(phase t_0 in s, rate in Hz) of a periodic stream: a least-squares line through the stamps against
    their frame numbers, which stays unbiased under jitter and dropped frames (a median period does not)."""
    stamps, _, _ = _unique_sorted(np.asarray(stamps, dtype=np.float64))
    gaps = np.diff(stamps)
    if gaps.size == 0:
        raise UserError("cannot measure a frame rate from fewer than 2 distinct image stamps; pass --rate")
    steps = np.maximum(1, np.round(np.diff(stamps) / np.median(gaps)))  # frames between stamps (2+ = drop)
    numbers = np.concatenate([[0.0], np.cumsum(steps)])
    period, phase = np.polyfit(numbers, stamps, 1)
    return float(phase), float(1.0 / period)


def _unique_sorted(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """-> (sorted stamps without repeats, their original indices, number of repeats removed)."""
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = np.diff(sorted_stamps) > REPEAT_EPS_S
    return sorted_stamps[keep], order[keep], int((~keep).sum())


def _nearest(sorted_stamps: np.ndarray, times: np.ndarray) -> np.ndarray:
    if len(sorted_stamps) == 1:
        return np.zeros(len(times), dtype=np.int64)
    right = np.clip(np.searchsorted(sorted_stamps, times), 1, len(sorted_stamps) - 1)
    left = right - 1
    return np.where(times - sorted_stamps[left] <= sorted_stamps[right] - times, left, right)


def synchronise(streams: dict[str, np.ndarray], reference: str, rate_hz: float | None = None,
                tolerance_s: float | None = None) -> SyncResult:
    """Match every stream (name -> f64[N] stamps in s) to a grid at `rate_hz` spanning the reference stream."""
    ref = np.asarray(streams[reference], dtype=np.float64)
    check_rate(rate_hz)
    t0, camera_rate = camera_clock(ref) if np.ptp(ref) > REPEAT_EPS_S else (float(ref.min()), rate_hz or 1.0)
    rate = float(rate_hz or camera_rate)
    tolerance = float(tolerance_s) if tolerance_s is not None else 0.5 / rate
    t1 = float(ref.max())
    steps = int(np.floor((t1 - t0) * rate + 0.5)) + 1
    check_memory(steps * GRID_BYTES_PER_STREAM * len(streams), f"--rate {rate:g} Hz over {t1 - t0:.3g} s of recording "
                 f"({steps} control steps)", f"choose a rate near the camera's ({camera_rate:.3g} Hz)")
    times = t0 + np.arange(steps) / rate  # [T]

    matched, skews, repeats = {}, {}, {}
    for name, stamps in streams.items():
        stamps = np.asarray(stamps, dtype=np.float64)
        if stamps.size == 0:
            raise UserError(f"stream {name!r} has no messages in this episode")
        sorted_stamps, original, repeats[name] = _unique_sorted(stamps)
        nearest = _nearest(sorted_stamps, times)
        matched[name] = original[nearest]
        skews[name] = np.abs(sorted_stamps[nearest] - times)

    ok = np.all([skews[n] <= tolerance for n in streams], axis=0)
    if not ok.any():
        raise UserError(f"streams {sorted(streams)} never overlap within {tolerance:.3f} s; check the topics' stamps")
    first, last = int(np.argmax(ok)), len(ok) - int(np.argmax(ok[::-1])) - 1
    keep = slice(first, last + 1)

    stats: dict[str, float | int] = {"rate_hz": rate, "tolerance_s": tolerance,
                                     "trimmed_steps": int(len(times) - (last + 1 - first))}
    for name in streams:
        skew = skews[name][keep]
        hit = skew <= tolerance
        stats[f"{name}_skew_mean_s"] = float(skew[hit].mean())
        stats[f"{name}_skew_max_s"] = float(skew[hit].max())
        stats[f"{name}_missing_steps"] = int((~hit).sum())
        stats[f"{name}_repeated_messages"] = repeats[name]
    stats["dropped_frames"] = stats[f"{reference}_missing_steps"]
    stats["duplicated_frames"] = stats[f"{reference}_repeated_messages"]
    indices = {name: idx[keep] for name, idx in matched.items()}
    stamps_used = {name: np.asarray(streams[name], dtype=np.float64)[idx] for name, idx in indices.items()}
    return SyncResult(times=times[keep], indices=indices, stamps=stamps_used, stats=stats)
