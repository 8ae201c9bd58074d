"""Where a command may write: never into one of its inputs, never over an existing output without `--force`.

    check_output(args.out, {"--model": args.model, "--data": args.data}, force=args.force)

An input protects its own path, everything under it and, for a dataset index `X.hdf5`, its `X.hdf5.episodes/`
folder. Paths are compared after resolving symlinks, and existing files also by inode (hard links), so no
spelling of an input's path gets past the check. `--force` replaces an earlier output, never an input. An output
this user cannot create (a read-only folder, a path through a file) fails before any work (`check_writable`).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Union

from .data.format import episodes_dir
from .errors import UserError

PathLike = Union[str, "os.PathLike[str]"]
Inputs = Mapping[str, Union[PathLike, Iterable[PathLike], None]]  # flag -> path(s); None: not given


def refuse_writing_into_inputs(output: PathLike, inputs: Inputs, flag: str = "`out`") -> None:
    """UserError if `output` is, or lies inside, one of `inputs` (or a dataset input's episodes folder)."""
    target = Path(output).resolve()
    for input_flag, value in inputs.items():
        for path in _paths(value):
            if any(target == p or p in target.parents or _same_file(target, p) for p in _protected(path)):
                raise UserError(f"{flag} {output} would write into {input_flag} {path}; choose a path outside it "
                                "(nothing was written)")


def check_output(output: PathLike, inputs: Inputs, force: bool, flag: str = "`out`") -> None:
    """`refuse_writing_into_inputs`, then refuse an existing `output` (a file, or a folder that is not empty)
    unless `force`, then `check_writable`."""
    refuse_writing_into_inputs(output, inputs, flag)
    path = Path(output)
    empty_folder = path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    if not force and os.path.lexists(path) and not empty_folder:
        raise UserError(f"{flag} {output} already exists; pass `force` to replace it, or choose another path")
    check_writable(output, flag)


def check_writable(output: PathLike, flag: str = "`out`") -> None:
    """UserError unless this user can create `output` (a file, or a folder and what goes in it): the nearest
    existing folder on its path must accept a new file. The probe is an unnamed temporary file, never seen."""
    path = Path(output).absolute()
    folder = path if path.is_dir() else path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{flag} {output} cannot be written: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {output} cannot be written: {folder}: {exc.strerror} (nothing was written)") from None


def _paths(value) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value if v is not None]


def _protected(path: Path) -> list[Path]:
    resolved = path.resolve()
    episodes = episodes_dir(resolved)
    return [resolved, episodes] if episodes.is_dir() else [resolved]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False
