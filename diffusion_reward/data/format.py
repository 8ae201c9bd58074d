"""Constants and small helpers shared by the dataset writer and reader (see FORMAT.md)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import UserError

FORMAT_NAME = "diffusion_reward.dataset"
FORMAT_VERSION = 1
LAYOUT_LINKED = "linked"  # index file + per-episode files in `<index>.episodes/`
LAYOUT_SINGLE = "single"  # self-contained copy made by `Dataset.export`

EPISODES_SUFFIX = ".episodes"
PARTIAL_SUFFIX = ".h5.partial"
INTERRUPTED_DIR = "interrupted"
LOCK_FILE = ".lock"
INCOMPLETE_ATTR = "incomplete"  # index attr while a multi-episode job (relabel) has not finished: JSON {job, resume}
LABELS_GROUP = "reward_labels"
STAMPS_GROUP = "stamps"

# The time-alignment rule of every reward label; producers store it in the label's `alignment`.
REWARD_ALIGNMENT = ("row i scores the transition that starts at frame i: with the model's frame skip k it conditions "
                    "on frames (i-k, i) (the first rows on padding) and predicts frame i+k (k = 1: (i-1, i), i+1)")

# Appending must not mix data the reward model would see differently; other env_args keys may differ
# between sessions (each episode keeps its own copy in its `env_args` attribute).
ENV_ARGS_MUST_MATCH = ("task", "camera", "image_size", "image_key", "action_repeat")


def episodes_dir(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + EPISODES_SUFFIX)


def demo_number(name: str) -> int:
    """`demo_12` -> 12; anything else sorts last."""
    try:
        return int(name.split("_", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return 1 << 62


def sort_demo_names(names) -> list[str]:
    return sorted(names, key=lambda n: (demo_number(n), n))


def encode_attr(value: Any) -> Any:
    """HDF5-storable form of an attribute: dicts/lists/tuples/None become JSON strings."""
    if isinstance(value, (dict, list, tuple)) or value is None:
        return json.dumps(value, sort_keys=True, default=_json_default)
    if isinstance(value, (str, bool, int, float, np.generic, np.ndarray)):
        return value
    raise UserError(f"attribute value {value!r} of type {type(value).__name__} cannot be stored in HDF5")


def decode_attr(value: Any) -> Any:
    """Inverse of `encode_attr` for reading: bytes -> str, JSON containers -> Python objects."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and (value[:1] in ("{", "[") or value == "null"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    return {k: decode_attr(v) for k, v in attrs.items()}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def check_env_args_compatible(existing: dict, new: dict, path: Path) -> None:
    for key in ENV_ARGS_MUST_MATCH:
        if key in existing and key in new and existing[key] != new[key]:
            raise UserError(
                f"cannot append to {path}: env_args[{key!r}] is {new[key]!r} but the dataset has {existing[key]!r}"
            )


def check_format_version(attrs: h5py.AttributeManager, path: Path) -> int:
    version = int(attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise UserError(
            f"{path} uses dataset format version {version}, newer than version {FORMAT_VERSION} "
            "that this diffusion_reward understands; upgrade diffusion_reward to read it"
        )
    return version


def open_hdf5(path: Path, mode: str = "r") -> h5py.File:
    """h5py.File with one-line UserErrors for missing files and files that are not HDF5."""
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not an HDF5 dataset file")
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        if not h5py.is_hdf5(path):
            raise UserError(f"{path} is not an HDF5 file") from None
        raise UserError(f"cannot open {path}: {exc}") from None


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
