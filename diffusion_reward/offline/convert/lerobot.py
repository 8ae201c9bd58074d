"""Write a LeRobot v3.0 dataset folder (FORMATS.md, "lerobot") with pyarrow and the bundled ffmpeg: no `lerobot`
install. The layout is the one `data/sources/lerobot.py` documents and reads (LeRobot's own `LeRobotDataset`
loads it: see FORMATS.md for how that was checked).

Every uint8 [T,H,W,3] observation becomes a video feature `observation.images.<key>` (AV1 with LeRobot's
encoder settings, or H.264 where the ffmpeg binary has no AV1 encoder, or as `--video-codec` says), `state` is
`observation.state` and other observations `observation.<key>`; `action`, `next.reward` = Eq. 5 of the chosen
label, `next.done`, `next.success`. Frames are read and encoded a slab at a time, one MP4 per camera for many
episodes (a new file past `video_files_size_in_mb`), so memory does not grow with the dataset.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ... import __version__
from ...data import Dataset
from ...errors import UserError
from ...reward.combine import RewardMix
from ...data.video import ENCODERS, VideoEncoder, pick_encoder
from . import ConvertConfig, ConvertSummary, labelled_input, progress_bar
from .robomimic import RND_NOTE, SLAB

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILE_MB = 100  # LeRobot's default data_files_size_in_mb
VIDEO_FILE_MB = 200  # LeRobot's default video_files_size_in_mb
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
IMAGE_STATS_SAMPLES = 100  # frames per episode for image statistics (LeRobot samples at least 100)
VIDEO_CODECS = {"auto": ("libsvtav1", "libaom-av1", "libx264"), "av1": ("libsvtav1", "libaom-av1"),
                "h264": ("libx264",)}


def write_lerobot(cfg: ConvertConfig, tmp: Path, out: Path) -> ConvertSummary:
    from ..mdp import episode_rewards, is_terminal

    mix = RewardMix(cfg.alpha, cfg.beta)
    encoder = pick_encoder(VIDEO_CODECS[cfg.video_codec])
    with labelled_input(cfg) as (ds, label, label_attrs):
        names = ds.episode_names
        env_args = dict(ds.env_args)
        layout = _Layout(ds, names)
        fps = cfg.fps or layout.fps()
        task = str(env_args.get("task") or "unknown task")
        features = layout.features(fps, ENCODERS[encoder][0])
        files = _Files(tmp, layout.cameras, fps, encoder)
        episodes, all_stats = [], []
        try:
            with progress_bar(layout.total, "convert to lerobot", cfg.progress) as bar:
                for index, name in enumerate(names):
                    with ds.episode(name) as ep:
                        steps = ep.num_samples
                        if ep.actions is None or ep.rewards is None:
                            raise UserError(f"episode {ep.name} has no actions or no rewards; LeRobot's action "
                                            "and next.reward need both")
                        row = {"episode_index": index, "tasks": [task], "length": steps}
                        stats = {}
                        for key, feature in layout.cameras.items():
                            row.update(files.video(feature, ep.obs[key], steps, bar if key == layout.main else None))
                            stats[feature] = _image_stats(ep.obs[key], steps)
                        columns = _columns(ep, layout, index, files.frames_written, fps,
                                           episode_rewards(ep, label, mix), is_terminal(ep))
                        stats.update({k: _stats(v) for k, v in columns.items()})
                        row.update(files.data(columns, features))
                        row.update({f"stats/{f}/{s}": v.tolist() for f, fs in stats.items() for s, v in fs.items()})
                        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
                        episodes.append(row)
                        all_stats.append(stats)
                        if not layout.cameras:
                            bar.update(steps)
            files.close()
        except BaseException:
            files.abort()
            raise
    _write_episodes(tmp, episodes)
    _write_tasks(tmp, [task])
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": env_args.get("robot_type"),
            "total_episodes": len(names), "total_frames": layout.total, "total_tasks": 1,
            "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB,
            "video_files_size_in_mb": VIDEO_FILE_MB, "fps": fps, "splits": {"train": f"0:{len(names)}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH if layout.cameras else None, "features": features}
    _write_json(tmp / "meta" / "info.json", info)
    _write_json(tmp / "meta" / "stats.json", {f: {s: v.tolist() for s, v in fs.items()}
                                              for f, fs in _aggregate(all_stats).items()})
    _write_json(tmp / "meta" / "diffusion_reward.json", {
        "converted_by": f"diffusion_reward {__version__}", "converted_from": str(Path(cfg.input).resolve()),
        "label": label, "label_attrs": label_attrs, "alpha": mix.alpha, "beta": mix.beta,
        "formula": ("beta * r_sparse" if label is None else "(1 - alpha) * r_ce_bar + alpha * r_rnd + beta * r_sparse"),
        "rnd": RND_NOTE, "env_args": env_args, "episodes": dict(enumerate(names)),
        "video_encoder": encoder if layout.cameras else None})
    return ConvertSummary(out=tmp, episodes=len(names), steps=layout.total, label=label,
                          details={"LeRobot": CODEBASE_VERSION, "fps": fps,
                                   "video": f"{ENCODERS[encoder][0]} ({encoder})" if layout.cameras else "none"})


class _Layout:
    """What the input holds, from its first episode; every episode must match it."""

    def __init__(self, ds: Dataset, names: list[str]):
        self.total, self.names, self._ds = 0, names, ds
        self.cameras: dict[str, str] = {}  # obs key -> feature
        self.vectors: dict[str, tuple[str, tuple, np.dtype]] = {}  # obs key -> (feature, row shape, dtype)
        with ds.episode(names[0]) as ep:
            main = ds.image_key if ds.image_key in ep.obs else None
            keys = ([main] if main else []) + sorted(k for k in ep.obs if k != main)
            for key in keys:
                data = ep.obs[key]
                if data.dtype == np.uint8 and data.ndim == 4 and data.shape[-1] == 3:
                    self.cameras[key] = f"observation.images.{key}"
                elif np.issubdtype(data.dtype, np.number) or data.dtype == bool:
                    self.vectors[key] = ("observation.state" if key == "state" else f"observation.{key}",
                                         data.shape[1:], data.dtype)
            self.main = next(iter(self.cameras), None)
            self.shapes = {key: ep.obs[key].shape[1:] for key in (*self.cameras, *self.vectors)}
            self.action_dim = None if ep.actions is None else np.asarray(ep.actions).shape[1:]
        for name in names:
            with ds.episode(name) as ep:
                self.total += ep.require_steps()
                shapes = {key: ep.obs[key].shape[1:] for key in self.shapes if key in ep.obs}
                if shapes != self.shapes:
                    raise UserError(f"episode {ep.name} has observations {shapes}, the first episode {self.shapes}; "
                                    "a LeRobot dataset has one shape per feature")

    def fps(self) -> int:
        """Frames per second from the timestamps (their median step; LeRobot's fps is an integer)."""
        steps = []
        for name in self.names:
            with self._ds.episode(name) as ep:
                if ep.timestamps is not None and ep.num_samples > 1:
                    steps.append(np.diff(np.asarray(ep.timestamps, np.float64)))
        steps = np.concatenate(steps) if steps else np.array([])
        steps = steps[steps > 0]
        if not len(steps):
            raise UserError("the input's timestamps do not tell the frame rate; pass `fps`")
        return max(1, int(round(1.0 / float(np.median(steps)))))

    def features(self, fps: int, codec: str) -> dict:
        """info.json's features, as LeRobot's writer gives them (video features carry their encoding)."""
        features = {}
        for key, feature in self.cameras.items():
            height, width, channels = self.shapes[key]
            features[feature] = {
                "dtype": "video", "shape": [height, width, channels], "names": ["height", "width", "channels"],
                "info": {"video.height": height, "video.width": width, "video.codec": codec,
                         "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                         "video.channels": channels, "has_audio": False}}
        for key, (feature, shape, dtype) in self.vectors.items():
            features[feature] = {"dtype": _dtype_name(dtype), "shape": list(shape) or [1], "names": None}
        features["action"] = {"dtype": "float32", "shape": list(self.action_dim or [1]), "names": None}
        features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
        features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
        features["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
        for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                           ("index", "int64"), ("task_index", "int64")):
            features[key] = {"dtype": dtype, "shape": [1], "names": None}
        return features


def _dtype_name(dtype: np.dtype) -> str:
    return "bool" if dtype == bool else np.dtype(dtype).name


def _columns(ep, layout: _Layout, index: int, first: int, fps: int, rewards: np.ndarray, terminal: bool) -> dict:
    """The episode's data rows by feature (numeric arrays of T rows)."""
    steps = ep.num_samples
    actions = np.asarray(ep.actions, np.float32).reshape(steps, -1)
    if actions.shape[1:] != tuple(layout.action_dim or (1,)):
        raise UserError(f"episode {ep.name} has actions of shape {list(actions.shape[1:])}, the first episode "
                        f"{list(layout.action_dim or [1])}")
    columns = {feature: np.asarray(ep.obs[key]) for key, (feature, _, _) in layout.vectors.items()}
    frame_index = np.arange(steps, dtype=np.int64)
    columns.update({
        "action": actions,
        "next.reward": np.asarray(rewards, np.float32),
        "next.done": (frame_index == steps - 1) & terminal,
        "next.success": np.asarray(ep.rewards, np.float32) > 0,
        "timestamp": (frame_index / fps).astype(np.float32),  # LeRobot's rule: frame_index / fps
        "frame_index": frame_index,
        "episode_index": np.full(steps, index, np.int64),
        "index": first + frame_index,
        "task_index": np.zeros(steps, np.int64),
    })
    return columns


class _Files:
    """The data Parquet files and one MP4 per camera, each continued across episodes until LeRobot's file size,
    then the next file (file_index, then chunk_index after CHUNKS_SIZE files)."""

    def __init__(self, root: Path, cameras: dict[str, str], fps: int, encoder: str):
        self.root, self.fps, self.encoder = root, fps, encoder
        self.frames_written = 0  # rows in all data files so far (LeRobot's global `index`)
        self._data = None  # (chunk, file, ParquetWriter, bytes, schema)
        self._data_at = (0, -1)
        self._videos: dict[str, list] = {}  # feature -> [chunk, file, VideoEncoder]

    def video(self, feature: str, frames, steps: int, bar) -> dict:
        current = self._videos.get(feature)
        if current is None or _size(current[2].path) >= VIDEO_FILE_MB * 2**20:
            chunk, file = (0, 0) if current is None else _next(current[0], current[1])
            if current is not None:
                current[2].close()
            path = self.root / VIDEO_PATH.format(video_key=feature, chunk_index=chunk, file_index=file)
            current = self._videos[feature] = [chunk, file, VideoEncoder(path, frames.shape[1:3], self.fps,
                                                                         self.encoder)]
        start = current[2].frames
        for first in range(0, steps, SLAB):
            rows = np.asarray(frames[first:first + SLAB])
            current[2].write(rows)
            if bar is not None:
                bar.update(len(rows))
        return {f"videos/{feature}/chunk_index": current[0], f"videos/{feature}/file_index": current[1],
                f"videos/{feature}/from_timestamp": start / self.fps,
                f"videos/{feature}/to_timestamp": (start + steps) / self.fps}

    def data(self, columns: dict, features: dict) -> dict:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({k: _arrow(v, features[k]) for k, v in columns.items()})
        if self._data is None or self._data[3] >= DATA_FILE_MB * 2**20:
            chunk, file = _next(*self._data_at) if self._data is not None else (0, 0)
            self._close_data()
            path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data = [chunk, file, pq.ParquetWriter(path, table.schema, compression="snappy"), 0]
            self._data_at = (chunk, file)
        self._data[2].write_table(table)
        self._data[3] += table.nbytes
        first, self.frames_written = self.frames_written, self.frames_written + table.num_rows
        return {"data/chunk_index": self._data[0], "data/file_index": self._data[1],
                "dataset_from_index": first, "dataset_to_index": self.frames_written}

    def close(self) -> None:
        self._close_data()
        for _, _, encoder in self._videos.values():
            encoder.close()

    def abort(self) -> None:
        self._close_data()
        for _, _, encoder in self._videos.values():
            encoder.abort()

    def _close_data(self) -> None:
        if self._data is not None:
            self._data[2].close()


def _size(path: Path) -> int:
    """Bytes ffmpeg has written so far (0 before it has created the file: it starts asynchronously)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _next(chunk: int, file: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


def _arrow(values: np.ndarray, feature: dict):
    """A scalar column for shape [1], else (nested) fixed-size lists: the Arrow types LeRobot's files have."""
    import pyarrow as pa

    values = np.asarray(values)
    rows = len(values)
    if feature["shape"] == [1]:
        return pa.array(values.reshape(rows))
    array = pa.array(values.reshape(-1))
    for size in reversed(feature["shape"]):
        array = pa.FixedSizeListArray.from_arrays(array, int(size))
    return array


def _stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics over the rows (one value per element of the feature's shape)."""
    values = np.asarray(values)
    values = values.reshape(len(values), -1) if values.ndim > 1 else values.reshape(-1, 1)
    numbers = values.astype(np.float64)
    stats = {"min": numbers.min(0), "max": numbers.max(0), "mean": numbers.mean(0), "std": numbers.std(0),
             "count": np.array([len(values)])}
    stats.update({k: np.quantile(numbers, q, axis=0) for k, q in QUANTILES.items()})
    return stats


def _image_stats(frames, steps: int) -> dict[str, np.ndarray]:
    """Per-channel statistics in [0, 1], shape (3, 1, 1), over up to IMAGE_STATS_SAMPLES frames (as LeRobot)."""
    picks = np.unique(np.round(np.linspace(0, steps - 1, min(steps, IMAGE_STATS_SAMPLES))).astype(int))
    sample = np.stack([np.asarray(frames[i]) for i in picks]).astype(np.float64) / 255.0  # [n,H,W,3]
    channels = sample.transpose(3, 0, 1, 2).reshape(3, -1)
    stats = {"min": channels.min(1), "max": channels.max(1), "mean": channels.mean(1), "std": channels.std(1)}
    stats.update({k: np.quantile(channels, q, axis=1) for k, q in QUANTILES.items()})
    stats = {k: v.reshape(3, 1, 1) for k, v in stats.items()}
    stats["count"] = np.array([len(picks)])
    return stats


def _aggregate(per_episode: list[dict]) -> dict:
    """LeRobot's `aggregate_stats`: min of mins, max of maxes, count-weighted mean, pooled std, count-weighted
    quantiles."""
    out = {}
    for feature in per_episode[0]:
        items = [s[feature] for s in per_episode]
        counts = np.array([s["count"][0] for s in items], np.float64)
        total = counts.sum()
        weights = counts.reshape(-1, *([1] * items[0]["mean"].ndim))
        means = np.stack([s["mean"] for s in items])
        mean = (means * weights).sum(0) / total
        variance = ((np.stack([s["std"] for s in items]) ** 2 + (means - mean) ** 2) * weights).sum(0) / total
        out[feature] = {"min": np.min([s["min"] for s in items], 0), "max": np.max([s["max"] for s in items], 0),
                        "mean": mean, "std": np.sqrt(variance), "count": np.array([int(total)])}
        out[feature].update({k: (np.stack([s[k] for s in items]) * weights).sum(0) / total for k in QUANTILES})
    return out


def _write_episodes(root: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, compression="snappy")


def _write_tasks(root: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as pandas writes LeRobot's DataFrame: `task_index`, the task string as the index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas = {"index_columns": ["__index_level_0__"],
              "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                  "metadata": {"encoding": "UTF-8"}}],
              "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                           "numpy_type": "int64", "metadata": None},
                          {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                           "numpy_type": "object", "metadata": None}],
              "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__},
              "pandas_version": "2.2.3"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas)}), root / "meta" / "tasks.parquet")


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=4, default=str) + "\n")
