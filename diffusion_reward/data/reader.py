"""Lazy, read-only access to our datasets and to robomimic-layout HDF5 files written by others."""
from __future__ import annotations

import fcntl
import os
import weakref
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from ..errors import UserError
from .format import (
    FORMAT_NAME,
    INCOMPLETE_ATTR,
    INTERRUPTED_DIR,
    LABELS_GROUP,
    LAYOUT_LINKED,
    LAYOUT_SINGLE,
    LOCK_FILE,
    STAMPS_GROUP,
    check_format_version,
    decode_attr,
    decode_attrs,
    episodes_dir,
    fsync_file,
    open_hdf5,
    sort_demo_names,
)

VERIFY_SLAB = 256  # rows read at a time by verify(), so episodes larger than RAM can be checked


class CheckedDataset(h5py.Dataset):
    """An h5py dataset whose reads fail with a UserError naming the episode, the dataset and the rows when the
    file is damaged (a chunk that does not decompress, a truncated file), instead of h5py's OSError."""

    def __init__(self, dataset: h5py.Dataset, episode: str, episode_root: str):
        super().__init__(dataset.id)
        self.episode, self.path = episode, dataset.name[len(episode_root):].lstrip("/")

    def __getitem__(self, args, **new_dtype):  # new_dtype: what h5py's astype() views pass
        try:
            return super().__getitem__(args, **new_dtype)
        except (OSError, RuntimeError) as exc:
            rows = f" rows {args.start or 0}+" if isinstance(args, slice) else ""
            raise UserError(f"{self.episode}: cannot read {self.path!r}{rows}: {exc}") from None

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[()], dtype=dtype)


class CheckedGroup(h5py.Group):
    """An episode's h5py group (or a group inside it) whose datasets are `CheckedDataset`s."""

    def __init__(self, group: h5py.Group, episode: str, episode_root: str | None = None):
        super().__init__(group.id)
        self.episode, self.episode_root = episode, group.name if episode_root is None else episode_root

    def __getitem__(self, name):
        item = super().__getitem__(name)
        if isinstance(item, h5py.Dataset):
            return CheckedDataset(item, self.episode, self.episode_root)
        return CheckedGroup(item, self.episode, self.episode_root) if isinstance(item, h5py.Group) else item

    def get(self, name, default=None, **options):  # items() and values() read through get()
        if options:
            return super().get(name, default, **options)
        return self[name] if name in self else default


class StoredEpisode:
    """One stored episode (the `data/demo_N` group), read lazily: `obs[key]` are lazy h5py datasets (reads of
    damaged chunks raise a UserError); the small per-step vectors load on access. The readers of
    `data.sources` turn it into the one in-memory `data.Episode`."""

    def __init__(self, name: str, group: h5py.Group, owned_file: h5py.File | None = None):
        self.name = name
        self.group = CheckedGroup(group, name)
        self._owned_file = owned_file

    @property
    def obs(self) -> h5py.Group:
        return self.group["obs"]

    @property
    def num_samples(self) -> int:
        if "num_samples" in self.group.attrs:
            return int(self.group.attrs["num_samples"])
        return len(self.group["actions"]) if "actions" in self.group else len(next(iter(self.obs.values())))

    def require_steps(self) -> int:
        """`num_samples`; UserError for an episode without steps (the writer never commits one: damaged)."""
        if self.num_samples == 0:
            raise UserError(f"episode {self.name} has no steps (a damaged or edited dataset); remove or re-record it")
        return self.num_samples

    @property
    def success(self) -> bool | None:
        value = self.group.attrs.get("success")
        return None if value is None else bool(value)

    @property
    def actions(self) -> np.ndarray | None:
        return self._array("actions")

    @property
    def rewards(self) -> np.ndarray | None:
        return self._array("rewards")

    @property
    def dones(self) -> np.ndarray | None:
        return self._array("dones")

    @property
    def timestamps(self) -> np.ndarray | None:
        return self._array("timestamps")

    @property
    def stamps(self) -> dict[str, np.ndarray]:
        group = self.group.get(STAMPS_GROUP)
        return {} if group is None else {k: v[()] for k, v in group.items()}

    @property
    def attrs(self) -> dict[str, Any]:
        return decode_attrs(self.group.attrs)

    @property
    def reward_labels(self) -> dict[str, dict[str, Any]]:
        """`{label: {"datasets": {name: array}, "attrs": {provenance}}}`."""
        group = self.group.get(LABELS_GROUP)
        if group is None:
            return {}
        return {name: {"datasets": {k: v[()] for k, v in label.items() if isinstance(v, h5py.Dataset)},
                       "attrs": decode_attrs(label.attrs)} for name, label in group.items()}

    def _array(self, path: str) -> np.ndarray | None:
        return self.group[path][()] if path in self.group else None

    def close(self) -> None:
        if self._owned_file is not None:
            self._owned_file.close()
            self._owned_file = None

    def __enter__(self) -> "StoredEpisode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StoredEpisode({self.name!r}, num_samples={self.num_samples}, success={self.success})"


class Dataset:
    """Read-only view of a dataset; nothing loads until asked for.

    >>> with Dataset("runs/button.hdf5") as ds:
    ...     for ep in ds:
    ...         frames = ep.obs[ds.image_key]   # h5py dataset [T,64,64,3], lazy
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = open_hdf5(self.path)
        self._episodes: weakref.WeakSet[StoredEpisode] = weakref.WeakSet()
        try:
            self._read_header()
        except BaseException:
            self._file.close()
            raise

    def _read_header(self) -> None:
        attrs = self._file.attrs
        fmt = decode_attr(attrs.get("format"))
        if fmt is not None and fmt != FORMAT_NAME:
            raise UserError(f"{self.path} has format {fmt!r}, not a {FORMAT_NAME} file")
        self.format_version = check_format_version(attrs, self.path) if fmt else 0
        self.layout = decode_attr(attrs.get("layout", LAYOUT_SINGLE))
        if "data" not in self._file or not isinstance(self._file["data"], h5py.Group):
            raise UserError(f"{self.path} is not a robomimic-layout dataset (it has no 'data' group)")
        self._data = self._file["data"]
        env_args = decode_attr(self._data.attrs.get("env_args", "{}"))
        self.env_args: dict[str, Any] = env_args if isinstance(env_args, dict) else {}
        self.episode_names: list[str] = sort_demo_names(self._data.keys())
        self.image_key: str | None = self.env_args.get("image_key") or self._guess_image_key()

    def _guess_image_key(self) -> str | None:
        if not self.episode_names:
            return None
        with self.episode(self.episode_names[0]) as ep:
            if "obs" not in ep.group:
                return None
            if "image" in ep.obs:
                return "image"
            for key in sorted(ep.obs):
                dataset = ep.obs[key]
                if isinstance(dataset, h5py.Dataset) and dataset.dtype == np.uint8 and dataset.ndim == 4:
                    return key
        return None

    # -- episodes --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.episode_names)

    def __iter__(self) -> Iterator[StoredEpisode]:
        for name in self.episode_names:
            yield self.episode(name)

    def __getitem__(self, index: int | str) -> StoredEpisode:
        return self.episode(self.episode_names[index] if isinstance(index, int) else index)

    def episode(self, name: str) -> StoredEpisode:
        link = self._data.get(name, getlink=True)
        if link is None:
            raise UserError(f"{self.path} has no episode {name!r}")
        if isinstance(link, h5py.ExternalLink):
            target = self.path.parent / link.filename
            if not target.exists():
                raise UserError(f"{name}: episode file {target} is missing")
            try:
                owned = h5py.File(target, "r")
            except OSError as exc:
                raise UserError(f"{name}: cannot open episode file {target}: {exc}") from None
            episode = StoredEpisode(name, owned[link.path], owned)
        else:
            episode = StoredEpisode(name, self._data[name])
        self._episodes.add(episode)
        return episode

    # -- dataset-level facts ---------------------------------------------------------------------

    @property
    def obs_keys(self) -> dict[str, dict[str, Any]]:
        """`{key: {"shape": per-step shape, "dtype": str}}` from the first episode."""
        if not self.episode_names:
            return {}
        with self.episode(self.episode_names[0]) as ep:
            return _obs_spec(ep)

    @property
    def masks(self) -> dict[str, list[str]]:
        group = self._file.get("mask")
        if group is None:
            return {}
        return {k: [decode_attr(n) for n in v[()]] for k, v in group.items() if isinstance(v, h5py.Dataset)}

    @property
    def recording(self) -> bool:
        """Whether a writer holds this dataset open right now (its `.partial` episode is in progress)."""
        lock = episodes_dir(self.path) / LOCK_FILE
        if self.layout != LAYOUT_LINKED or not lock.exists():
            return False
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also releases the probe lock

    @property
    def interrupted(self) -> list[str]:
        """Partial episodes left by a crash: moved aside to `interrupted/` by the next writer, or still in
        place when no writer has opened the dataset since (in place while recording = in progress)."""
        folder = episodes_dir(self.path)
        if self.layout != LAYOUT_LINKED or not folder.is_dir():
            return []
        found = list((folder / INTERRUPTED_DIR).glob("*"))
        if not self.recording:
            found += folder.glob("demo_*.h5.partial")
        return sorted(str(p.relative_to(self.path.parent)) for p in found)

    @property
    def incomplete(self) -> dict[str, str] | None:
        """`{"job", "resume"}` of a multi-episode job that wrote into this dataset and has not finished (it was
        killed, ran out of disk or stopped on a bad source episode); None when the dataset is complete."""
        job = decode_attr(self._file.attrs.get(INCOMPLETE_ATTR))
        return job if isinstance(job, dict) else None

    def require_complete(self) -> None:
        """UserError naming the unfinished job and the command that finishes it."""
        job = self.incomplete
        if job is not None:
            raise UserError(f"{self.path} is incomplete: its {job.get('job', 'writer')} stopped before it finished; "
                            f"finish it with `{job.get('resume', 'the same command with --resume')}`")

    @property
    def unindexed(self) -> list[str]:
        """Committed episode files a crash left out of the index; the next append links them."""
        folder = episodes_dir(self.path)
        if self.layout != LAYOUT_LINKED or not folder.is_dir():
            return []
        return sort_demo_names(p.stem for p in folder.glob("demo_*.h5") if p.stem not in self._data)

    def summary(self) -> dict[str, Any]:
        frames, successes, known, labels = 0, 0, 0, {}
        for ep in self:
            with ep:
                frames += ep.num_samples
                if ep.success is not None:
                    known += 1
                    successes += ep.success
                for label in ep.group.get(LABELS_GROUP, {}):
                    labels[label] = labels.get(label, 0) + 1
        return {
            "path": str(self.path),
            "format_version": self.format_version,
            "layout": self.layout,
            "episodes": len(self),
            "frames": frames,
            "success_rate": successes / known if known else None,
            "image_key": self.image_key,
            "obs_keys": self.obs_keys,
            "reward_labels": labels,
            "masks": {k: len(v) for k, v in self.masks.items()},
            "env_args": self.env_args,
            "interrupted": self.interrupted,
            "recording": self.recording,
            "unindexed": self.unindexed,
            "incomplete": self.incomplete,
        }

    def verify(self) -> dict[str, Any]:
        """Read every episode fully; raise UserError naming the first inconsistency (or the unfinished job
        of an incomplete dataset). Returns `summary()`."""
        self.require_complete()
        first_spec, total = None, 0
        for name in self.episode_names:
            with self.episode(name) as ep:
                spec = _verify_episode(ep)
                if first_spec is None:
                    first_spec = (name, spec)
                elif spec != first_spec[1]:
                    raise UserError(f"{name}: observation keys {spec} differ from {first_spec[0]}'s {first_spec[1]}")
                total += ep.num_samples
        if "total" in self._data.attrs and int(self._data.attrs["total"]) != total:
            raise UserError(f"data/total attribute is {int(self._data.attrs['total'])} "
                            f"but the episodes hold {total} steps")
        for mask, members in self.masks.items():
            unknown = sorted(set(members) - set(self.episode_names))
            if unknown:
                raise UserError(f"mask/{mask} names episodes that do not exist: {unknown[:5]}")
        return self.summary()

    def export(self, path: str | os.PathLike) -> Path:
        """Copy everything into one self-contained HDF5 file (no external links), written atomically."""
        out = Path(path)
        if out.exists():
            raise UserError(f"{out} already exists; choose a new path for the export")
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            with h5py.File(tmp, "w") as f:
                for key, value in self._file.attrs.items():
                    f.attrs[key] = value
                f.attrs["layout"] = LAYOUT_SINGLE
                data = f.create_group("data")
                for key, value in self._data.attrs.items():
                    data.attrs[key] = value
                for ep in self:
                    with ep:
                        f.copy(ep.group, data, name=ep.name)
                if "mask" in self._file:
                    f.copy(self._file["mask"], f, name="mask")
            fsync_file(tmp)
            os.replace(tmp, out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"cannot write {out}: {exc}") from None
        return out

    def close(self) -> None:
        for episode in list(self._episodes):
            episode.close()
        self._file.close()

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, episodes={len(self)}, image_key={self.image_key!r})"


def _obs_spec(ep: StoredEpisode) -> dict[str, dict[str, Any]]:
    if "obs" not in ep.group:
        return {}
    return {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype)}
            for k, v in ep.obs.items() if isinstance(v, h5py.Dataset)}


def _per_step_datasets(ep: StoredEpisode) -> dict[str, h5py.Dataset]:
    """Every dataset that must have one row per step, by path inside the episode."""
    found = {}
    for group_path in ("obs", "next_obs", STAMPS_GROUP):
        for key, value in ep.group.get(group_path, {}).items():
            found[f"{group_path}/{key}"] = value
    for label, group in ep.group.get(LABELS_GROUP, {}).items():
        for key, value in group.items():
            found[f"{LABELS_GROUP}/{label}/{key}"] = value
    for key in ("actions", "rewards", "dones", "timestamps", "states"):
        if key in ep.group:
            found[key] = ep.group[key]
    return found


def _verify_episode(ep: StoredEpisode) -> dict[str, dict[str, Any]]:
    name = ep.name
    datasets = _per_step_datasets(ep)
    if not any(p.startswith("obs/") for p in datasets):
        raise UserError(f"{name}: has no observations (no datasets under 'obs')")
    reference = "actions" if "actions" in datasets else next(p for p in datasets if p.startswith("obs/"))
    steps = len(datasets[reference])
    ep.require_steps()
    for path, dataset in datasets.items():
        if not isinstance(dataset, h5py.Dataset):
            raise UserError(f"{name}: {path!r} is a group, expected a per-step dataset")
        if len(dataset) != steps:
            raise UserError(f"{name}: {path!r} has {len(dataset)} rows but {reference!r} has {steps}")
        for start in range(0, steps, VERIFY_SLAB):
            rows = dataset[start:start + VERIFY_SLAB]
            if path == "actions" and not np.isfinite(rows).all():
                bad = start + int(np.argwhere(~np.isfinite(rows))[0][0])
                raise UserError(f"{name}: actions contain NaN or inf at step {bad}")
    if "num_samples" in ep.group.attrs and int(ep.group.attrs["num_samples"]) != steps:
        raise UserError(f"{name}: num_samples attribute is {int(ep.group.attrs['num_samples'])} "
                        f"but the episode has {steps} steps")
    timestamps = ep.timestamps
    if timestamps is not None:
        if not np.isfinite(timestamps).all():
            raise UserError(f"{name}: timestamps contain NaN or inf")
        backwards = np.flatnonzero(np.diff(timestamps) < 0)
        if len(backwards):
            i = int(backwards[0]) + 1
            raise UserError(f"{name}: timestamps go backwards at step {i} "
                            f"({timestamps[i - 1]:.6f} -> {timestamps[i]:.6f})")
    return _obs_spec(ep)

