"""Crash-safe episode writer (see FORMAT.md, "Crash safety").

`X.hdf5` is a small index whose `data/demo_N` are external links into immutable per-episode files
`X.hdf5.episodes/demo_N.h5`. An episode streams into `demo_N.h5.partial`; `end_episode` closes, fsyncs
and renames it, then rewrites the index (temp file, fsync, os.replace, directory fsync). A kill at any
moment leaves the previous index and every committed episode file intact.
"""
from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from .. import __version__
from ..errors import UserError
from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    INCOMPLETE_ATTR,
    INTERRUPTED_DIR,
    LAYOUT_LINKED,
    LOCK_FILE,
    PARTIAL_SUFFIX,
    check_env_args_compatible,
    check_format_version,
    decode_attr,
    demo_number,
    encode_attr,
    episodes_dir,
    fsync_dir,
    fsync_file,
    open_hdf5,
    sort_demo_names,
)

IMAGE_CHUNK_NDIM = 2  # per-step arrays with at least this many dims are frames: one chunk per frame, compressed
LOCK_ATTEMPTS = 20
WRITE_SLAB = 256
DISK_MARGIN = 1 << 20  # free bytes kept beyond a write: HDF5 metadata, the index, the chunk cache's write-back
VECTOR_CHUNK_BYTES = 16 << 10  # small: HDF5 allocates whole chunks, and short episodes are common


class EpisodeStream:
    """An episode being recorded. Rows go straight to `demo_N.h5.partial`, invisible until committed."""

    def __init__(self, name: str, partial_path: Path, image_key: str, image_size: int | None,
                 compression: str | None, flush_every: int):
        self.name = name
        self.partial_path = partial_path
        self.num_samples = 0
        self._image_key = image_key
        self._image_size = image_size
        self._compression = compression
        self._compression_opts = 1 if compression == "gzip" else None
        self._flush_every = flush_every
        self._spec: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._pending: dict[str, list[np.ndarray]] = {}
        self._pending_rows = 0
        self._datasets: dict[str, h5py.Dataset] = {}
        self.error: str | None = None  # set when a write failed; the episode can then only be discarded
        try:
            self._file: h5py.File | None = h5py.File(partial_path, "w")
        except OSError as exc:
            raise UserError(f"cannot create {partial_path}: {exc}") from None

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def add_step(self, obs: Mapping[str, Any], action: Any = None, reward: float = 0.0, done: bool = False,
                 timestamp: float | None = None, stamps: Mapping[str, float] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        """Append one step. `stamps`: per-stream source stamps (s); `extra`: more per-step values by path."""
        row = {f"obs/{k}": np.asarray(v) for k, v in obs.items()}
        if action is not None:
            row["actions"] = np.asarray(action, dtype=np.float32)
        row["rewards"] = np.asarray(reward, dtype=np.float32)
        row["dones"] = np.asarray(bool(done), dtype=np.uint8)
        row["timestamps"] = np.asarray(time.time() if timestamp is None else timestamp, dtype=np.float64)
        for stream, stamp in (stamps or {}).items():
            row[f"stamps/{stream}"] = np.asarray(stamp, dtype=np.float64)
        for path, value in (extra or {}).items():
            row[path] = np.asarray(value)
        self.append({k: v[None] for k, v in row.items()})

    def append(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append rows given as `{path: array[n, ...]}`; every column must have the same n."""
        self._require_open()
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise UserError(f"{self.name}: columns have different lengths {sorted(lengths)}: "
                            + ", ".join(f"{k}={len(v)}" for k, v in columns.items()))
        self._check_spec(columns)
        for path, value in columns.items():
            self._pending.setdefault(path, []).append(value)
        self._pending_rows += lengths.pop()
        if self._pending_rows >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        self._require_open()
        if not self._pending_rows:
            return
        start = self.num_samples
        try:
            _require_free_space(self.partial_path.parent, sum(p.nbytes for v in self._pending.values() for p in v),
                                f"{self.name} step {start}")
        except UserError as exc:
            self.error = str(exc)
            raise
        try:
            for path, parts in self._pending.items():
                rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
                dataset = self._datasets.get(path) or self._create_dataset(path, rows)
                dataset.resize(start + len(rows), axis=0)
                dataset[start:] = rows
        except (OSError, RuntimeError) as exc:  # disk full, I/O error: this episode is lost, earlier ones are not
            self._fail(exc)
            raise UserError(f"{self.error}; this episode is lost, the episodes committed before it are intact") \
                from None
        self.num_samples += self._pending_rows
        self._pending = {}
        self._pending_rows = 0

    def _create_dataset(self, path: str, rows: np.ndarray) -> h5py.Dataset:
        row_shape = rows.shape[1:]
        if len(row_shape) >= IMAGE_CHUNK_NDIM:
            chunks = (1, *row_shape)
            compression, opts = self._compression, self._compression_opts
        else:
            row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * rows.dtype.itemsize)
            chunks = (min(1024, max(16, VECTOR_CHUNK_BYTES // row_bytes)), *row_shape)
            compression, opts = None, None
        dataset = self._file.create_dataset(path, shape=(0, *row_shape), maxshape=(None, *row_shape),
                                            dtype=rows.dtype, chunks=chunks, compression=compression,
                                            compression_opts=opts)
        self._datasets[path] = dataset
        return dataset

    def _check_spec(self, columns: Mapping[str, np.ndarray]) -> None:
        step = self.num_samples + self._pending_rows
        spec = {k: (v.shape[1:], v.dtype) for k, v in columns.items()}
        for path, (shape, dtype) in spec.items():
            if dtype.kind not in "biuf":
                raise UserError(f"{self.name} step {step}: {path!r} has dtype {dtype}; only numbers can be stored")
        if self._spec is None:
            self._check_image(spec, step)
            self._spec = spec
            return
        if spec.keys() != self._spec.keys():
            missing = sorted(self._spec.keys() - spec.keys())
            unexpected = sorted(spec.keys() - self._spec.keys())
            raise UserError(f"{self.name} step {step}: keys differ from the first step "
                            f"(missing {missing}, unexpected {unexpected})")
        for path, (shape, dtype) in spec.items():
            first_shape, first_dtype = self._spec[path]
            if shape != first_shape or dtype != first_dtype:
                raise UserError(f"{self.name} step {step}: {path!r} is {dtype}{list(shape)} "
                                f"but the episode started with {first_dtype}{list(first_shape)}")

    def _check_image(self, spec: dict, step: int) -> None:
        key = f"obs/{self._image_key}"
        if key not in spec:
            return
        shape, dtype = spec[key]
        if dtype != np.uint8 or len(shape) != 3 or shape[2] != 3:
            raise UserError(f"{self.name} step {step}: main camera image {key!r} must be uint8 [H,W,3], "
                            f"got {dtype}{list(shape)}")
        if self._image_size is not None and shape[:2] != (self._image_size, self._image_size):
            raise UserError(f"{self.name} step {step}: main camera image is {shape[0]}x{shape[1]} but "
                            f"env_args image_size is {self._image_size}")

    def _finish(self, attrs: Mapping[str, Any], group_attrs: Mapping[str, Mapping[str, Any]]) -> None:
        """Write the attributes and close the file; UserError (the episode is then closed, not committed) when
        the disk refuses the last writes."""
        try:
            for key, value in attrs.items():
                self._file.attrs[key] = encode_attr(value)
            for group_path, values in group_attrs.items():
                group = self._file.require_group(group_path)
                for key, value in values.items():
                    group.attrs[key] = encode_attr(value)
        except (OSError, RuntimeError) as exc:
            self._fail(exc)
        self._close()
        if self.error:
            raise UserError(self.error)

    def _require_open(self) -> None:
        if self._file is None:
            raise UserError(f"{self.name} is already ended or discarded")
        if self.error:
            raise UserError(f"{self.name} failed to write ({self.error}); discard it")

    def _fail(self, exc: BaseException) -> None:
        self.error = f"cannot write {self.partial_path}: {_reason(exc)}"

    def _close(self) -> None:
        """Close the file; a failure of HDF5's final metadata writes (disk full) is recorded in `error`."""
        if self._file is not None:
            file, self._file = self._file, None
            self._datasets = {}  # no handle into the file may outlive it
            try:
                file.close()
            except (OSError, RuntimeError) as exc:  # h5py reports a failed flush on close as RuntimeError
                if not self.error:
                    self._fail(exc)


class DatasetWriter:
    """Create a dataset, or append to one of ours. Episodes are durable once `end_episode` returns.

    >>> with DatasetWriter("runs/button.hdf5", env_args={"task": "button-press-v3", "image_size": 64}) as w:
    ...     ep = w.begin_episode()
    ...     ep.add_step(obs={"image": frame, "state": state}, action=action, reward=0.0, done=False, timestamp=t)
    ...     w.end_episode(ep, success=True)
    """

    def __init__(self, path: str | os.PathLike, env_args: Mapping[str, Any] | None = None, *,
                 compression: str | None = "lzf", flush_every: int = 32):
        if compression not in ("lzf", "gzip", None):
            raise UserError(f"compression must be 'lzf', 'gzip' or None, not {compression!r}")
        self.path = Path(path)
        self.episodes_path = episodes_dir(self.path)
        self._compression = compression
        self._flush_every = max(1, int(flush_every))
        self._lock_fd: int | None = None
        self._open: EpisodeStream | None = None
        self._episodes: dict[str, tuple[int, bool]] = {}  # name -> (num_samples, success)
        self._masks: dict[str, list[str]] = {}
        self._linked: set[str] = set()  # episodes the index on disk links when this writer opened
        self.interrupted: list[Path] = []  # partial episodes moved aside when this writer opened
        self.recovered: list[str] = []  # committed episodes that a crash had left out of the index
        self.damaged: list[str] = []  # committed episodes that cannot be read: kept in the index, with a warning
        self._job: dict[str, str] | None = None  # the unfinished job that marks the dataset incomplete

        self._prepare_output_folder()
        defaults = {"image_key": "image", "software_version": __version__}
        if self.path.exists():
            self.env_args = self._read_existing_index(env_args)  # the dataset keeps its creation env_args
        else:
            self.env_args = {**defaults, **dict(env_args or {})}
        # each episode records the env_args of the session that wrote it (seed, software version, ...)
        self.session_env_args = {**self.env_args, "software_version": __version__, **dict(env_args or {})}
        try:
            self.episodes_path.mkdir(exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create {self.episodes_path}: {exc.strerror}") from None
        self._acquire_lock()
        self._recover()
        self._write_index()

    # -- public API ------------------------------------------------------------------------------

    def begin_episode(self) -> EpisodeStream:
        self._require_lock()
        if self._open is not None and self._open.is_open:
            raise UserError(f"episode {self._open.name} is still open; end or discard it first")
        name = self._next_name()
        image_size = self.env_args.get("image_size")
        self._open = EpisodeStream(name, self.episodes_path / f"{name}{PARTIAL_SUFFIX}",
                                   image_key=self.env_args.get("image_key", "image"),
                                   image_size=image_size if isinstance(image_size, int) else None,
                                   compression=self._compression, flush_every=self._flush_every)
        return self._open

    def end_episode(self, episode: EpisodeStream, success: bool = False, attrs: Mapping[str, Any] | None = None,
                    extra_attrs: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """Commit the episode; when this returns it survives any crash. Returns its name (`demo_N`)."""
        self._require_current(episode)
        episode.flush()
        if episode.num_samples == 0:
            raise UserError(f"{episode.name} has no steps; discard it instead of ending it")
        final = self.episodes_path / f"{episode.name}.h5"
        try:
            episode._finish({**(attrs or {}), "num_samples": episode.num_samples, "success": bool(success),
                             "env_args": self.session_env_args, "format_version": FORMAT_VERSION},
                            extra_attrs or {})
            fsync_file(episode.partial_path)
            os.rename(episode.partial_path, final)
            fsync_dir(self.episodes_path)
        except (UserError, OSError) as exc:  # disk full at the last writes: nothing of this episode is kept
            self.discard_episode(episode)
            raise UserError(f"{exc if isinstance(exc, UserError) else _reason(exc)}; episode {episode.name} was "
                            "not committed, the episodes committed before it are intact") from None
        self._episodes[episode.name] = (episode.num_samples, bool(success))
        self._open = None
        self._write_index()
        return episode.name

    def discard_episode(self, episode: EpisodeStream) -> None:
        """Drop the episode being recorded (also one whose file a failed write has already closed)."""
        self._require_lock()
        if episode is not self._open:
            raise UserError(f"{episode.name} is not the episode being recorded by this writer")
        episode._close()
        episode.partial_path.unlink(missing_ok=True)
        self._open = None

    def write_episode(self, obs: Mapping[str, np.ndarray], actions: np.ndarray | None = None,
                      rewards: np.ndarray | None = None, dones: np.ndarray | None = None,
                      timestamps: np.ndarray | None = None, success: bool = False,
                      attrs: Mapping[str, Any] | None = None, stamps: Mapping[str, np.ndarray] | None = None,
                      extra: Mapping[str, np.ndarray] | None = None,
                      extra_attrs: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """Write a whole episode from arrays with T rows each. `extra`: more per-step datasets by path,
        e.g. `{"reward_labels/entropy/reward": f32[T]}`; `extra_attrs`: attributes of groups by path."""
        if not obs:
            raise UserError("write_episode needs at least one observation key")
        steps = len(next(iter(obs.values())))
        columns = episode_columns(steps, obs, actions, rewards, dones, timestamps, stamps, extra)
        slabs = ({k: np.asarray(v[start:start + WRITE_SLAB]) for k, v in columns.items()}  # bounded: inputs may
                 for start in range(0, steps, WRITE_SLAB))  # be h5py datasets or memmaps
        return self.write_episode_chunks(slabs, success=success, attrs=attrs, extra_attrs=extra_attrs)

    def write_episode_chunks(self, chunks: Iterable[Mapping[str, np.ndarray]], success: bool = False,
                             attrs: Mapping[str, Any] | None = None,
                             extra_attrs: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """Write an episode from consecutive `{path: rows}` chunks (every chunk the same paths, e.g. slabs of
        `episode_columns`) as they come: a generator may compute them while earlier rows are already on disk.
        Committed only after the last chunk; an exception on the way (from the generator too) discards it."""
        episode = self.begin_episode()
        try:
            for columns in chunks:
                episode.append(columns)
            return self.end_episode(episode, success=success, attrs=attrs, extra_attrs=extra_attrs)
        except BaseException:
            if episode.is_open:
                self.discard_episode(episode)
            raise

    def adopt_episode(self, episode_file: str | os.PathLike) -> str:
        """Commit an episode file that another writer committed (a part of a sharded `relabel`), linked in rather
        than copied: a hard link where the filesystem has them (the file is immutable, so the part keeps its
        copy until it is deleted), else a copy, fsynced. Its session's `env_args` must fit this dataset's
        (appending rule). Returns its name here (`demo_N`)."""
        self._require_lock()
        if self._open is not None and self._open.is_open:
            raise UserError(f"episode {self._open.name} is still open; end or discard it first")
        episode_file = Path(episode_file)
        try:
            with h5py.File(episode_file, "r") as f:
                num_samples, success = int(f.attrs["num_samples"]), bool(f.attrs["success"])
                check_env_args_compatible(self.env_args, decode_attr(f.attrs.get("env_args", "{}")), self.path)
        except (OSError, KeyError) as exc:
            raise UserError(f"cannot adopt {episode_file}: not a committed episode ({exc})") from None
        name = self._next_name()
        final, partial = self.episodes_path / f"{name}.h5", self.episodes_path / f"{name}{PARTIAL_SUFFIX}"
        try:
            try:
                os.link(episode_file, final)
            except OSError:  # no hard links here (or another filesystem): copy under the partial name
                _require_free_space(self.episodes_path, episode_file.stat().st_size, f"episode {name}")
                shutil.copyfile(episode_file, partial)
                fsync_file(partial)
                os.rename(partial, final)
            fsync_dir(self.episodes_path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise UserError(f"cannot adopt {episode_file} as {final}: {_reason(exc)}; the episodes committed "
                            "before it are intact") from None
        self._episodes[name] = (num_samples, success)
        self._write_index()
        return name

    def begin_job(self, job: str, resume: str) -> None:
        """Mark the dataset incomplete until `end_job`: a multi-episode job that is killed, runs out of disk
        or stops on a bad source episode leaves the mark, which `info` shows, `Dataset.verify` fails on and
        `train-policy` refuses. `resume`: the command that finishes the job."""
        self._require_lock()
        self._job = {"job": job, "resume": resume}
        self._write_index()

    def end_job(self) -> None:
        """The job finished: the dataset is complete again."""
        self._require_lock()
        self._job = None
        self._write_index()

    def set_mask(self, name: str, demo_names: list[str]) -> None:
        """Store a robomimic filter key `mask/<name>` (a list of episode names)."""
        unknown = sorted(set(demo_names) - self._episodes.keys())
        if unknown:
            raise UserError(f"mask {name!r} names episodes that are not in the dataset: {unknown[:5]}")
        if name == "success":
            raise UserError("mask 'success' is maintained automatically from each episode's success flag")
        self._masks[name] = sort_demo_names(demo_names)
        self._write_index()

    def split_train_valid(self, valid_fraction: float = 0.1, seed: int = 0) -> None:
        """robomimic-style `mask/train` and `mask/valid` over all episodes (seeded shuffle)."""
        if not 0.0 < valid_fraction < 1.0:
            raise UserError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
        names = sort_demo_names(self._episodes)
        random.Random(seed).shuffle(names)
        num_valid = max(1, round(len(names) * valid_fraction)) if len(names) > 1 else 0
        self._masks["valid"] = sort_demo_names(names[:num_valid])
        self._masks["train"] = sort_demo_names(names[num_valid:])
        self._write_index()

    @property
    def episode_names(self) -> list[str]:
        return sort_demo_names(self._episodes)

    def close(self) -> None:
        """Release the dataset. An episode still open is moved to `interrupted/`, like after a crash."""
        if self._open is not None and self._open.is_open:
            self._open._close()
            self.interrupted.append(self._move_aside(self._open.partial_path))
            self._open = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- opening and recovery --------------------------------------------------------------------

    def _prepare_output_folder(self) -> None:
        if self.path.is_dir():
            raise UserError(f"{self.path} is a directory; give a dataset file path such as {self.path / 'data.hdf5'}")
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output folder {parent}: {exc.strerror}") from None
        if not os.access(parent, os.W_OK):
            raise UserError(f"output folder {parent} is not writable")

    def _read_existing_index(self, env_args: Mapping[str, Any] | None) -> dict[str, Any]:
        with open_hdf5(self.path) as f:
            if f.attrs.get("format") != FORMAT_NAME or "data" not in f:
                raise UserError(f"{self.path} exists and is not a diffusion_reward dataset; "
                                "refusing to append to it (choose a new output path)")
            check_format_version(f.attrs, self.path)
            if f.attrs.get("layout") != LAYOUT_LINKED:
                raise UserError(f"{self.path} is a single-file export and is read-only; append to the original")
            existing = decode_attr(f["data"].attrs.get("env_args", "{}"))
            if "mask" in f:
                self._masks = {k: [decode_attr(n) for n in v[()]] for k, v in f["mask"].items() if k != "success"}
            self._linked = set(f["data"].keys())
            self._job = decode_attr(f.attrs.get(INCOMPLETE_ATTR)) or None  # appending keeps an unfinished mark
        missing = sort_demo_names(n for n in self._linked if not (self.episodes_path / f"{n}.h5").exists())
        if missing:
            raise UserError(f"{self.path} links {len(missing)} episode(s) missing from {self.episodes_path} "
                            f"(e.g. {missing[0]}; was the index moved without its folder?); refusing to append")
        check_env_args_compatible(existing, dict(env_args or {}), self.path)
        return existing

    def _acquire_lock(self) -> None:
        """One writer per dataset. The kernel drops the lock when a writer dies, even by SIGKILL."""
        try:
            self._lock_fd = os.open(self.episodes_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"cannot write to {self.episodes_path}: {exc.strerror}") from None
        for _ in range(LOCK_ATTEMPTS):  # readers probe the lock for an instant (see Dataset.recording)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.05)
        os.close(self._lock_fd)
        self._lock_fd = None
        raise UserError(f"{self.path} is open for writing by another process")

    def _recover(self) -> None:
        """Move partial episodes aside and (re)index every committed episode file on disk."""
        for partial in sorted(self.episodes_path.glob(f"demo_*{PARTIAL_SUFFIX}")):
            self.interrupted.append(self._move_aside(partial))
        for episode_file in self.episodes_path.glob("demo_*.h5"):
            name = episode_file.stem
            try:
                with h5py.File(episode_file, "r") as f:
                    self._episodes[name] = (int(f.attrs["num_samples"]), bool(f.attrs["success"]))
            except (OSError, KeyError) as exc:  # damaged on disk after its commit (bad sector, a copy cut short)
                if name not in self._linked:  # never indexed: nobody counts on it; keep it for forensics
                    self.interrupted.append(self._move_aside(episode_file))
                    continue
                self._episodes[name] = (0, False)  # stays linked: `info --verify` names it until it is repaired
                self.damaged.append(name)
                warnings.warn(f"{self.path}: committed episode {name} cannot be read ({exc}); it stays in the "
                              "index and `info --verify` fails on it until it is repaired or removed", stacklevel=3)
                continue
            if name not in self._linked:
                self.recovered.append(name)
        self._masks = {k: [n for n in v if n in self._episodes] for k, v in self._masks.items()}

    def _move_aside(self, path: Path) -> Path:
        folder = self.episodes_path / INTERRUPTED_DIR
        folder.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = folder / f"{path.name}.{stamp}"
        suffix = 1
        while target.exists():
            target = folder / f"{path.name}.{stamp}-{suffix}"
            suffix += 1
        os.rename(path, target)
        fsync_dir(folder)
        fsync_dir(self.episodes_path)
        return target

    # -- index -----------------------------------------------------------------------------------

    def _write_index(self) -> None:
        """Replace the index atomically; on a full disk the previous index stays (UserError)."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        _require_free_space(self.path.parent, 0, f"the index {self.path}")
        try:
            self._write_index_file(tmp)
            fsync_file(tmp)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except (OSError, RuntimeError) as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write the index {self.path}: {_reason(exc)}; the previous index is intact "
                            "(an episode committed just now is linked by the next writer)") from None

    def _write_index_file(self, tmp: Path) -> None:
        names = sort_demo_names(self._episodes)
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["layout"] = LAYOUT_LINKED
            f.attrs["software_version"] = __version__
            if self._job is not None:
                f.attrs[INCOMPLETE_ATTR] = json.dumps(self._job, sort_keys=True)
            data = f.create_group("data")
            data.attrs["env_args"] = json.dumps(self.env_args, sort_keys=True)
            data.attrs["total"] = sum(self._episodes[n][0] for n in names)
            for name in names:
                data[name] = h5py.ExternalLink(f"{self.episodes_path.name}/{name}.h5", "/")
            mask = f.create_group("mask")
            masks = {"success": [n for n in names if self._episodes[n][1]], **self._masks}
            for key, members in masks.items():
                mask.create_dataset(key, data=np.array(members, dtype="S"))

    def _next_name(self) -> str:
        """`demo_N` after the highest episode number the dataset holds."""
        return f"demo_{max((demo_number(n) for n in self._episodes), default=-1) + 1}"

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise UserError(f"the writer for {self.path} is closed")

    def _require_current(self, episode: EpisodeStream) -> None:
        self._require_lock()
        if episode is not self._open or not episode.is_open:
            raise UserError(f"{episode.name} is not the episode being recorded by this writer")


def episode_columns(steps: int, obs: Mapping[str, Any], actions: Any = None, rewards: Any = None,
                    dones: Any = None, timestamps: Any = None, stamps: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The per-step datasets of one episode of `steps` rows by path (FORMAT.md), with the defaults: rewards 0,
    dones 1 on the last step, timestamps 0, 1, 2, ... Observations and `extra` stay as given when they can be
    sliced lazily (h5py datasets, memmaps), so frames are read a slab at a time."""
    columns = {f"obs/{k}": _rows(v) for k, v in obs.items()}
    if actions is not None:
        columns["actions"] = np.asarray(actions, dtype=np.float32)
    columns["rewards"] = np.zeros(steps, np.float32) if rewards is None else np.asarray(rewards, np.float32)
    columns["dones"] = (np.arange(steps) == steps - 1) if dones is None else np.asarray(dones)
    columns["dones"] = columns["dones"].astype(np.uint8)
    columns["timestamps"] = (np.arange(steps, dtype=np.float64) if timestamps is None
                             else np.asarray(timestamps, np.float64))
    for stream, values in (stamps or {}).items():
        columns[f"stamps/{stream}"] = np.asarray(values, np.float64)
    for path, values in (extra or {}).items():
        columns[path] = _rows(values)
    lengths = {k: len(v) for k, v in columns.items()}
    if set(lengths.values()) != {steps}:
        raise UserError("write_episode: arrays have different lengths: "
                        + ", ".join(f"{k}={n}" for k, n in lengths.items()))
    return columns


def _rows(values: Any) -> Any:
    """Per-step rows as given when they can be sliced lazily (h5py datasets, memmaps), else as an array."""
    return values if isinstance(values, (h5py.Dataset, np.ndarray)) else np.asarray(values)


def _require_free_space(folder: Path, nbytes: int, what: str) -> None:
    """UserError unless `folder`'s disk has room for `nbytes` (uncompressed, so an over-estimate) plus
    DISK_MARGIN. Checked before HDF5 writes: HDF5 cannot recover a file from a failed write (a full disk
    left it unclosable and crashed the interpreter at exit), so the writer stops while it still can."""
    free = shutil.disk_usage(folder).free
    if free < nbytes + DISK_MARGIN:
        raise UserError(f"{what}: not enough disk space in {folder} ({free / 2**20:.1f} MiB free, "
                        f"{(nbytes + DISK_MARGIN) / 2**20:.1f} MiB needed); the episodes committed before are intact")


def _reason(exc: BaseException) -> str:
    """The OS reason of a failed HDF5 write ("No space left on device"), not HDF5's multi-line report."""
    text = str(exc)
    for marker in ("error message = '", "errno = "):
        if marker in text:
            return text.split(marker, 1)[1].split("'", 1)[0].split(",", 1)[0]
    return text.splitlines()[0] if text else type(exc).__name__
