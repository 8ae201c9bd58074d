"""Folders of PNG frames in the authors' `video_dataset/<domain>/<task>/<split>/<episode>/<i>.png` layout."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ...errors import UserError
from ..episode import Episode
from ..video_folder import VideoFolder, read_video_folder

SPLITS = ("train", "test")


def png_folders(path: Path) -> list[VideoFolder]:
    """The episodes of every split the folder has (the authors ship `train` and `test`)."""
    folders, errors = [], []
    for split in SPLITS:
        try:
            folders.append(read_video_folder(path, split=split))
        except UserError as exc:
            errors.append(exc)
    if not folders:
        raise errors[0]
    return folders


def read_png_folder(path: Path) -> Iterator[Episode]:
    for folder in png_folders(path):
        yield from folder
