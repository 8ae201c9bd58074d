"""LeRobot datasets (codebase_version v2.0, v2.1 and v3.0), read with pyarrow and ffmpeg: no `lerobot` install.

A LeRobot dataset is a folder with `meta/info.json`. What is read (from huggingface/lerobot
`lerobot/datasets/lerobot_dataset.py`, `utils.py` and `v30/convert_dataset_v21_to_v30.py`; the test fixture
`tests/fixtures/lerobot/v30_written_by_lerobot/` was written by LeRobot's own writer):

    meta/info.json       codebase_version ("v2.0" | "v2.1" | "v3.0"), fps, robot_type, total_episodes,
                         total_frames, chunks_size (1000), data_path, video_path (null without videos),
                         features: {key: {"dtype", "shape", "names", "info" (videos)}}
  v2.0 / v2.1: one Parquet file and one MP4 per camera per episode, chunk = episode_index // chunks_size
    data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet
    videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4     (the episode from 0 s)
    meta/episodes.jsonl  {"episode_index", "tasks": [str], "length"} per line
    meta/tasks.jsonl     {"task_index", "task"};  meta/stats.json (v2.0) | meta/episodes_stats.jsonl (v2.1)
  v3.0: many episodes per file (files of up to data_files_size_in_mb / video_files_size_in_mb), chunks of
        chunks_size files
    data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet            rows of many episodes (episode_index)
    videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4 episodes one after another
    meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet  one row per episode: episode_index,
        tasks (list<str>), length, data/chunk_index, data/file_index, dataset_from_index, dataset_to_index,
        videos/{video_key}/chunk_index, .../file_index, .../from_timestamp, .../to_timestamp (s in that MP4),
        meta/episodes/chunk_index, .../file_index, stats/{feature}/{min,max,mean,std,count,q01,...}
    meta/tasks.parquet   task_index, with the task string as the pandas index (`__index_level_0__`)
    meta/stats.json      {feature: {min, max, mean, std, count, q01, q10, q50, q90, q99}}

Data rows (both versions): `timestamp` float32 (s from the episode start, frame_index / fps), `frame_index`,
`episode_index`, `index` (global), `task_index` int64, and one column per non-video feature: shape [1] ->
a scalar column, [D] -> fixed_size_list<D>, more dims -> nested lists; `dtype: image` -> struct<bytes: binary
(PNG), path: string> (a path relative to the dataset when bytes is null). `dtype: video` features are not in
the Parquet: row i of an episode is the frame of the feature's MP4 at `from_timestamp + timestamp[i]` (0 for
v2.x), matched within `tolerance_s` (LeRobot's default 1e-4 s; `relabel --tolerance`). An image feature's
`shape` is read with its `names` ([height, width, channels] as LeRobot writes, or [channels, height, width]).

Into a `Episode` (name `episode_{episode_index:06d}`): frames = the chosen camera (`relabel --camera KEY`,
default the first image or video feature in info.json), obs `state` = `observation.state` and obs `<name>` =
every other numeric `observation.<name>` (dots -> `_`), actions = `action`, rewards = `next.reward`, dones =
`next.done`, success = any `next.success`, timestamps = `timestamp`; attrs carry the camera, the episode's tasks,
the codebase version and fps. Other cameras are not read.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ...errors import UserError
from ..video import DEFAULT_TOLERANCE_S, VideoFrames
from ..episode import Episode, forward_slice

VERSIONS = ("v2.0", "v2.1", "v3.0")
LEROBOT_FOLDERS = ("meta", "data", "videos", "images")  # the dataset's own folders: nothing is ever written there
INDEX_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
CAMERA_DTYPES = ("image", "video")
NUMERIC = re.compile(r"^(float(16|32|64)|u?int(8|16|32|64)|bool)$")


def is_lerobot(path: Path) -> bool:
    return path.is_dir() and (path / "meta" / "info.json").is_file()


@dataclass
class LeRobotMeta:
    root: Path
    info: dict
    version: str
    fps: float
    features: dict

    @property
    def cameras(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") in CAMERA_DTYPES]

    def numeric(self) -> list[str]:
        return [k for k, f in self.features.items() if NUMERIC.match(str(f.get("dtype", "")))]


@dataclass
class EpisodeRef:
    index: int
    length: int | None
    tasks: list[str]
    data_file: Path
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)  # video key -> (file, from_timestamp)


def read_meta(root: Path) -> LeRobotMeta:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise UserError(f"{root} is not a LeRobot dataset: it has no meta/info.json")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(info, dict):
        raise UserError(f"{path} is not a JSON object")
    version = info.get("codebase_version")
    if version not in VERSIONS:
        raise UserError(f"{path}: unknown LeRobot codebase_version {version!r}; supported: {', '.join(VERSIONS)}")
    fps = info.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise UserError(f"{path}: fps must be a positive number, got {fps!r}")
    features = info.get("features")
    if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
        raise UserError(f"{path}: features must be an object of feature objects")
    for key in ("data_path",):
        if not isinstance(info.get(key), str):
            raise UserError(f"{path}: {key} must be a path template, got {info.get(key)!r}")
    return LeRobotMeta(root, info, version, float(fps), features)


def pick_camera(meta: LeRobotMeta, camera: str | None) -> str:
    cameras = meta.cameras
    if camera is None:
        if not cameras:
            raise UserError(f"{meta.root} has no image or video feature to score (features: "
                            f"{', '.join(meta.features)})")
        return cameras[0]
    if camera not in cameras:
        raise UserError(f"{meta.root} has no camera {camera!r}; its image and video features: "
                        f"{', '.join(cameras) or 'none'}")
    return camera


def image_shape(meta: LeRobotMeta, key: str) -> tuple[int, int, int] | None:
    """(height, width, channels) of a camera feature from its shape and names (None if it does not say)."""
    feature = meta.features[key]
    shape, names = feature.get("shape"), feature.get("names")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) for s in shape)):
        return None
    if isinstance(names, list) and len(names) == 3 and str(names[0]).startswith("channel"):
        return shape[1], shape[2], shape[0]
    return shape[0], shape[1], shape[2]


def episode_refs(meta: LeRobotMeta) -> list[EpisodeRef]:
    videos = [k for k, f in meta.features.items() if f.get("dtype") == "video"]
    if videos and not isinstance(meta.info.get("video_path"), str):
        raise UserError(f"{meta.root}/meta/info.json has video features ({', '.join(videos)}) but no video_path")
    refs = _v3_refs(meta, videos) if meta.version == "v3.0" else _v2_refs(meta, videos)
    if not refs:
        raise UserError(f"{meta.root} has no episodes")
    return refs


def _format(meta: LeRobotMeta, template_key: str, **values) -> Path:
    template = meta.info[template_key]
    try:
        return meta.root / template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(f"{meta.root}/meta/info.json: {template_key} {template!r} does not fit LeRobot "
                        f"{meta.version} ({type(exc).__name__}: {exc})") from None


def _v2_refs(meta: LeRobotMeta, videos: list[str]) -> list[EpisodeRef]:
    chunks = int(meta.info.get("chunks_size") or 1000)
    listing = meta.root / "meta" / "episodes.jsonl"
    if listing.is_file():
        rows = []
        for number, line in enumerate(listing.read_text().splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    rows.append((int(row["episode_index"]), row.get("length"), list(row.get("tasks") or [])))
                except (ValueError, KeyError, TypeError) as exc:
                    raise UserError(f"{listing}:{number} is not an episode record ({exc})") from None
    else:  # no listing: the data files are the episodes
        found = sorted(meta.root.glob("data/*/episode_*.parquet"))
        rows = [(int(p.stem.split("_")[-1]), None, []) for p in found]
    refs = []
    for index, length, tasks in sorted(rows):
        chunk = index // chunks
        refs.append(EpisodeRef(index, None if length is None else int(length), tasks,
                               _format(meta, "data_path", episode_chunk=chunk, episode_index=index),
                               {k: (_format(meta, "video_path", episode_chunk=chunk, video_key=k, episode_index=index),
                                    0.0) for k in videos}))
    return refs


def _v3_refs(meta: LeRobotMeta, videos: list[str]) -> list[EpisodeRef]:
    import pyarrow.parquet as pq

    files = sorted((meta.root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise UserError(f"{meta.root} (LeRobot v3.0) has no meta/episodes/chunk-*/file-*.parquet")
    refs = []
    for path in files:
        try:
            schema = pq.read_schema(path)
            wanted = [n for n in schema.names if not n.startswith("stats/")]
            rows = pq.read_table(path, columns=wanted).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise UserError(f"{path} is not a readable Parquet file: {exc}") from None
        for row in rows:
            try:
                index = int(row["episode_index"])
                data = _format(meta, "data_path", chunk_index=int(row["data/chunk_index"]),
                               file_index=int(row["data/file_index"]))
                refs.append(EpisodeRef(
                    index, int(row["length"]) if row.get("length") is not None else None, list(row.get("tasks") or []),
                    data, {k: (_format(meta, "video_path", video_key=k, chunk_index=int(row[f"videos/{k}/chunk_index"]),
                                       file_index=int(row[f"videos/{k}/file_index"])),
                               float(row[f"videos/{k}/from_timestamp"])) for k in videos}))
            except (KeyError, TypeError, ValueError) as exc:
                raise UserError(f"{path}: episode row without {exc} (LeRobot v3.0 episode metadata)") from None
    return sorted(refs, key=lambda r: r.index)


def check_files(meta: LeRobotMeta, refs: list[EpisodeRef], camera: str) -> None:
    """Every data file, and every MP4 of the camera, exists: fail before anything is written."""
    for ref in refs:
        if not ref.data_file.is_file():
            raise UserError(f"{meta.root}: episode {ref.index}'s data file {ref.data_file} does not exist")
        if camera in ref.videos and not ref.videos[camera][0].is_file():
            raise UserError(f"{meta.root}: episode {ref.index}'s video file {ref.videos[camera][0]} for {camera} "
                            "does not exist")


def episode_name(index: int) -> str:
    return f"episode_{index:06d}"


def episode_lengths(root: Path) -> dict[str, int | None]:
    """{episode name: its length from the metadata (None where it is not listed)}."""
    return {episode_name(r.index): r.length for r in episode_refs(read_meta(root))}


class _DataFiles:
    """The rows of one episode from its Parquet file; the file last read stays open for the next episode."""

    def __init__(self, meta: LeRobotMeta, columns: list[str]):
        self.meta, self.columns = meta, columns
        self._path, self._table = None, None

    def rows(self, ref: EpisodeRef):
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if self._path != ref.data_file:
            try:
                names = pq.read_schema(ref.data_file).names
                missing = [c for c in self.columns if c not in names and c not in INDEX_COLUMNS]
                if self.meta.version == "v3.0" and "episode_index" not in names:
                    missing.append("episode_index")
                if missing:
                    raise UserError(f"{ref.data_file} has no column(s) {', '.join(missing)} that meta/info.json "
                                    "lists as features")
                self._table = pq.read_table(ref.data_file, columns=[c for c in self.columns if c in names])
            except UserError:
                raise
            except Exception as exc:
                raise UserError(f"{ref.data_file} is not a readable Parquet file: {exc}") from None
            self._path = ref.data_file
        table = self._table
        if "episode_index" in table.column_names:
            table = table.filter(pc.equal(table["episode_index"], ref.index))
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        if table.num_rows == 0:
            raise UserError(f"{ref.data_file} has no rows of episode {ref.index}")
        if "frame_index" in table.column_names and not np.array_equal(
                column(table, "frame_index", None), np.arange(table.num_rows)):
            raise UserError(f"episode {ref.index} in {ref.data_file}: frame_index is not 0 .. {table.num_rows - 1} "
                            "(missing or repeated rows)")
        if ref.length is not None and table.num_rows != ref.length:
            raise UserError(f"episode {ref.index} has {table.num_rows} rows in {ref.data_file}, its metadata says "
                            f"{ref.length}")
        return table


def column(table, name: str, shape: list | None) -> np.ndarray:
    """A feature column as an array [T, *shape] (a scalar column, or fixed / nested lists)."""
    import pyarrow as pa

    values = table[name].combine_chunks()
    if values.null_count:
        raise UserError(f"column {name} has {values.null_count} null value(s)")
    rows = len(values)
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type) \
            or pa.types.is_large_list(values.type):
        values = values.flatten()
    array = values.to_numpy(zero_copy_only=False)
    dims = [int(s) for s in shape] if isinstance(shape, list) and shape not in ([1], []) else []
    try:
        return array.reshape(rows, *dims) if dims else array.reshape(rows)
    except ValueError:
        raise UserError(f"column {name} holds {array.size} values for {rows} rows, not the shape {shape} "
                        "that meta/info.json gives") from None


class ImageFrames:
    """u8[T,H,W,3] RGB frames of an `image` feature (PNG / JPEG bytes in the Parquet, or files), decoded as
    they are sliced."""

    def __init__(self, cells: list, root: Path, name: str):
        self._cells, self._root, self._name = cells, root, name

    def __len__(self) -> int:
        return len(self._cells)

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop = forward_slice(index, len(self), "image frames")
        return np.stack([self._decode(row) for row in range(start, stop)])

    def _decode(self, row: int) -> np.ndarray:
        import cv2

        cell = self._cells[row] or {}
        data = cell.get("bytes")
        if data is None and cell.get("path"):
            path = Path(cell["path"])
            path = path if path.is_absolute() else self._root / path
            if not path.is_file():
                raise UserError(f"{self._name}: frame {row} is the file {path}, which does not exist")
            data = path.read_bytes()
        if data is None:
            raise UserError(f"{self._name}: frame {row} has neither image bytes nor a path")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"{self._name}: frame {row} is not a decodable image")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_lerobot(root: Path, camera: str | None = None, tolerance_s: float | None = None) -> Iterator[Episode]:
    meta = read_meta(root)
    camera = pick_camera(meta, camera)
    refs = episode_refs(meta)
    check_files(meta, refs, camera)
    tolerance = DEFAULT_TOLERANCE_S if tolerance_s is None else tolerance_s
    storage = meta.features[camera]["dtype"]
    numeric = meta.numeric()
    columns = list(dict.fromkeys([*INDEX_COLUMNS, *numeric] + ([camera] if storage == "image" else [])))
    data = _DataFiles(meta, columns)
    for ref in refs:
        table = data.rows(ref)
        steps = table.num_rows
        if "timestamp" in table.column_names:
            timestamps = column(table, "timestamp", None).astype(np.float64)
        else:
            timestamps = np.arange(steps) / meta.fps
        name = episode_name(ref.index)
        if storage == "video":
            video, start = ref.videos[camera]
            frames = VideoFrames(video, start + timestamps, tolerance, name=f"{meta.root.name} {name} {camera}")
        else:
            frames = ImageFrames(table[camera].to_pylist(), meta.root, f"{meta.root.name} {name} {camera}")
        features = {k: column(table, k, meta.features[k].get("shape")) for k in numeric
                    if k in table.column_names and k not in INDEX_COLUMNS}
        obs = {_obs_name(k): v for k, v in features.items() if k.startswith("observation.")}
        actions = features.get("action")
        if actions is not None:
            actions = actions.astype(np.float32).reshape(steps, -1)
        rewards = features.get("next.reward")
        dones = features.get("next.done")
        success = features.get("next.success")
        attrs = {"image_key": camera, "camera_storage": storage, "lerobot_episode_index": ref.index,
                 "lerobot_codebase_version": meta.version, "fps": meta.fps, "tasks": ref.tasks}
        try:
            yield Episode(
                name=name, frames=frames, obs=obs, actions=actions,
                rewards=None if rewards is None else rewards.astype(np.float32).reshape(steps),
                dones=None if dones is None else dones.astype(bool).reshape(steps), timestamps=timestamps,
                success=None if success is None else bool(np.any(success)), attrs=attrs)
        finally:
            if isinstance(frames, VideoFrames):
                frames.close()


def _obs_name(key: str) -> str:
    rest = key[len("observation."):]
    return "state" if rest == "state" else rest.replace(".", "_")
