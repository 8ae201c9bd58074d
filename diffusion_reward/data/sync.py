"""The one stamp-synchronisation policy: how time-stamped streams become steps, live and offline.

Live (`nodes/episode_recorder.py`) and offline (`synchronise`, used for rosbag2 and RealSense recordings) follow
the same rules, so one session gives the same steps recorded live and read back from its bag:

- **One step per camera image**, in arrival (log) order. An image whose stamp is not newer than an earlier image's
  (sent twice, or out of order) is dropped: `stale_image`.
- **Measured streams** (joint state, gripper): the message whose header stamp is nearest the image's, if it lies
  within `tolerance_s` (default `SYNC_TOLERANCE_S`); otherwise the image is dropped: `no_<stream>`.
- **Held streams** (commands: the controller holds the last one): the nearest within the tolerance, else the
  latest one stamped before the image; an image before the first command is dropped: `no_<stream>`.
- Ties go to the earlier message. Every episode records the policy's numbers in its `sync` attribute: tolerance,
  steps recorded, drops per reason and the largest skew per stream.

`match` is the rule for one stream, written once: the recorder calls it per image, `synchronise` for a whole
recording. Offline only, `rate_hz` instead resamples onto a control-rate grid t_k = t_0 + k / rate (t_0, rate
fitted to the camera's stamps; tolerance default half a period), each stream contributing its nearest message,
a step where one has nothing within the tolerance reusing the nearest anyway; leading and trailing such steps are
trimmed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import check_float, check_memory
from ..errors import UserError

SYNC_TOLERANCE_S = 0.05  # max |stamp difference| between an image and the message matched to it
SYNC_POLICY = "one step per image"  # the `policy` in an episode's `sync` attribute (`resampled`: rate_hz given)
HELD_STREAMS = ("action",)  # streams the robot holds between messages (commands)
REPEAT_EPS_S = 1e-6  # stamps closer than this are the same frame recorded twice
GRID_BYTES_PER_STREAM = 64  # per grid step and stream while matching: 8 float64 / int64 arrays


def check_rate(rate_hz: float | None) -> None:
    """`rate_hz`: None (one step per camera image) or a positive finite number of Hz."""
    if rate_hz is not None:
        check_float("rate_hz", rate_hz, 0.0, above=True)


@dataclass
class SyncResult:
    times: np.ndarray  # f64[T] step times (s): the images' stamps, or the grid's
    indices: dict[str, np.ndarray]  # stream -> int64[T] index into that stream's ORIGINAL message list
    stamps: dict[str, np.ndarray]  # stream -> f64[T] stamp of the message used at each step
    stats: dict  # the episode's `sync` attribute


def match(stamps: np.ndarray, times: np.ndarray, tolerance: float, held: bool = False) -> np.ndarray:
    """Index into `stamps` (sorted ascending, one stream's messages) of the message each of `times` uses, -1 for
    none: the nearest within `tolerance` (ties to the earlier); for a `held` stream, else the latest at or before
    the time."""
    stamps, times = np.asarray(stamps), np.asarray(times)
    if len(stamps) == 0:
        return np.full(len(times), -1, dtype=np.int64)
    right = np.clip(np.searchsorted(stamps, times), 1, max(1, len(stamps) - 1))
    left = right - 1
    if len(stamps) == 1:
        nearest = np.zeros(len(times), dtype=np.int64)
    else:
        nearest = np.where(times - stamps[left] <= stamps[right] - times, left, right)
    picked = np.where(np.abs(stamps[nearest] - times) <= tolerance, nearest, -1)
    if held:
        before = np.searchsorted(stamps, times, side="right") - 1  # latest at or before; -1 when none
        picked = np.where(picked >= 0, picked, before)
    return picked.astype(np.int64)


def camera_clock(stamps: np.ndarray) -> tuple[float, float]:
    """(phase t_0 in s, rate in Hz) of a periodic stream: a least-squares line through the stamps against
    their frame numbers, which stays unbiased under jitter and dropped frames (a median period does not)."""
    stamps, _, _ = _unique_sorted(np.asarray(stamps, dtype=np.float64))
    gaps = np.diff(stamps)
    if gaps.size == 0:
        raise UserError("cannot measure a frame rate from fewer than 2 distinct image stamps; give `rate_hz`")
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


def synchronise(streams: dict[str, np.ndarray], reference: str, rate_hz: float | None = None,
                tolerance_s: float | None = None) -> SyncResult:
    """Steps of a recording: every stream (name -> f64[N] header stamps in s, in log order) matched to the
    reference stream's images by the policy above, or to a grid at `rate_hz`."""
    check_rate(rate_hz)
    if tolerance_s is not None:
        check_float("tolerance_s", tolerance_s, 0.0)
    if rate_hz is not None:
        return _resample(streams, reference, rate_hz, tolerance_s)
    tolerance = SYNC_TOLERANCE_S if tolerance_s is None else float(tolerance_s)
    ref = np.asarray(streams[reference], dtype=np.float64)
    newest = np.maximum.accumulate(np.concatenate([[-np.inf], ref[:-1]]))  # newest stamp among earlier images
    fresh = ref > newest
    dropped = {"stale_image": int((~fresh).sum())} if not fresh.all() else {}
    steps = np.nonzero(fresh)[0]  # image indices, in stamp order
    times = ref[steps]
    matched = {reference: steps}
    keep = np.ones(len(times), dtype=bool)
    for name, stamps in streams.items():
        if name == reference:
            continue
        stamps = np.asarray(stamps, dtype=np.float64)
        order = np.argsort(stamps, kind="stable")
        picked = match(stamps[order], times, tolerance, held=name in HELD_STREAMS)
        missing = keep & (picked < 0)  # an image is dropped for the first stream it lacks, as live
        if missing.any():
            dropped[f"no_{name}"] = int(missing.sum())
        keep &= picked >= 0
        matched[name] = order[np.maximum(picked, 0)]
    if not keep.any():
        raise UserError(f"no image has a message of every stream ({', '.join(sorted(streams))}) within "
                        f"{tolerance:.3f} s; check the topics' stamps")
    indices = {name: idx[keep] for name, idx in matched.items()}
    stamps_used = {name: np.asarray(streams[name], dtype=np.float64)[idx] for name, idx in indices.items()}
    stats = {"policy": SYNC_POLICY, "tolerance_s": tolerance, "recorded": int(keep.sum()),
             "dropped": dropped, "max_skew_s": {name: float(np.abs(stamps_used[name] - times[keep]).max())
                                                for name in streams}}
    return SyncResult(times=times[keep], indices=indices, stamps=stamps_used, stats=stats)


def _resample(streams: dict[str, np.ndarray], reference: str, rate_hz: float, tolerance_s: float | None) -> SyncResult:
    """Offline only: every stream's nearest message at each step of a `rate_hz` grid spanning the reference."""
    ref = np.asarray(streams[reference], dtype=np.float64)
    t0, camera_rate = camera_clock(ref) if np.ptp(ref) > REPEAT_EPS_S else (float(ref.min()), rate_hz)
    rate = float(rate_hz)
    tolerance = float(tolerance_s) if tolerance_s is not None else 0.5 / rate
    t1 = float(ref.max())
    steps = int(np.floor((t1 - t0) * rate + 0.5)) + 1
    check_memory(steps * GRID_BYTES_PER_STREAM * len(streams), f"`rate_hz` {rate:g} Hz over {t1 - t0:.3g} s of recording "
                 f"({steps} control steps)", f"choose a rate near the camera's ({camera_rate:.3g} Hz)")
    times = t0 + np.arange(steps) / rate  # [T]

    matched, skews, repeats = {}, {}, {}
    for name, stamps in streams.items():
        stamps = np.asarray(stamps, dtype=np.float64)
        if stamps.size == 0:
            raise UserError(f"stream {name!r} has no messages in this episode")
        sorted_stamps, original, repeats[name] = _unique_sorted(stamps)
        nearest = match(sorted_stamps, times, np.inf)
        matched[name] = original[nearest]
        skews[name] = np.abs(sorted_stamps[nearest] - times)

    ok = np.all([skews[n] <= tolerance for n in streams], axis=0)
    if not ok.any():
        raise UserError(f"streams {sorted(streams)} never overlap within {tolerance:.3f} s; check the topics' stamps")
    first, last = int(np.argmax(ok)), len(ok) - int(np.argmax(ok[::-1])) - 1
    keep = slice(first, last + 1)
    stats: dict = {"policy": "resampled", "rate_hz": rate, "tolerance_s": tolerance, "recorded": last + 1 - first,
                   "trimmed_steps": int(len(times) - (last + 1 - first)),
                   "missing_steps": {n: int((skews[n][keep] > tolerance).sum()) for n in streams},
                   "repeated_messages": repeats, "max_skew_s": {n: float(skews[n][keep].max()) for n in streams}}
    indices = {name: idx[keep] for name, idx in matched.items()}
    stamps_used = {name: np.asarray(streams[name], dtype=np.float64)[idx] for name, idx in indices.items()}
    return SyncResult(times=times[keep], indices=indices, stamps=stamps_used, stats=stats)
