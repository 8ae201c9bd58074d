"""The authors' expert videos: `video_dataset/<domain>/<task>/<split>/<episode>/<i>.png` (64x64 RGB).

`root` may be the top folder, a domain folder or a task folder. Episodes and frames are ordered
numerically (`2` before `10`), frames load one episode at a time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import UserError
from .episode import Episode


@dataclass(frozen=True)
class _EpisodeRef:
    domain: str
    task: str
    split: str
    name: str
    path: Path


class VideoFolder:
    """The matching episodes, listed up front (cheap); iterating loads their frames one episode at a time."""

    def __init__(self, refs: list[_EpisodeRef]):
        self.refs = refs

    def __len__(self) -> int:
        return len(self.refs)

    def __iter__(self) -> Iterator[Episode]:
        for ref in self.refs:
            yield Episode(name=f"{ref.domain}/{ref.task}/{ref.split}/{ref.name}", frames=read_png_frames(ref.path),
                          task=ref.task, attrs={"domain": ref.domain, "task": ref.task, "split": ref.split})

    @property
    def tasks(self) -> list[str]:
        return sorted({ref.task for ref in self.refs})

    def summary(self) -> dict:
        """Counts from the file listing; reads one frame for the image size."""
        frames, per_task = 0, {}
        for ref in self.refs:
            frames += sum(1 for _ in ref.path.glob("*.png"))
            key = f"{ref.domain}/{ref.task}"
            per_task[key] = per_task.get(key, 0) + 1
        first = cv2.imread(str(next(self.refs[0].path.glob("*.png"))), cv2.IMREAD_COLOR)
        return {"kind": "video_folder", "split": self.refs[0].split, "episodes": len(self.refs), "frames": frames,
                "tasks": per_task, "image_size": list(first.shape[:2]) if first is not None else None}


def read_video_folder(root: str | os.PathLike, split: str = "train", task: str | None = None) -> VideoFolder:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"video folder {root} does not exist or is not a directory")
    split_dirs = _split_dirs(root)
    if not split_dirs:
        raise UserError(f"{root} has no <domain>/<task>/<split>/<episode>/<i>.png folders "
                        "(expected the authors' video_dataset layout)")
    refs = []
    for split_dir in split_dirs:
        task_dir = split_dir.parent
        if split_dir.name != split or (task is not None and task_dir.name != task):
            continue
        for episode_dir in sorted((d for d in split_dir.iterdir() if d.is_dir()), key=_numeric_key):
            refs.append(_EpisodeRef(task_dir.parent.name, task_dir.name, split, episode_dir.name, episode_dir))
    if not refs:
        wanted = f"split {split!r}" + (f" of task {task!r}" if task else "")
        raise UserError(f"no episodes for {wanted} under {root}; found: {_inventory(split_dirs)}")
    return VideoFolder(refs)


def read_png_frames(folder: Path) -> np.ndarray:
    """All `<i>.png` in `folder`, numeric order, as u8[T,H,W,3] RGB."""
    paths = sorted(folder.glob("*.png"), key=_numeric_key)
    if not paths:
        raise UserError(f"episode folder {folder} has no PNG frames")
    frames = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"cannot read image {path}")
        if frames and image.shape != frames[0].shape:
            raise UserError(f"{path} is {image.shape[1]}x{image.shape[0]} but the episode's first frame is "
                            f"{frames[0].shape[1]}x{frames[0].shape[0]}")
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return np.stack(frames)


def _split_dirs(root: Path) -> list[Path]:
    """`<task>/<split>` folders at the shallowest depth that has any: root is a task, domain or top folder."""
    for pattern in ("*", "*/*", "*/*/*"):
        found = [d for d in sorted(root.glob(pattern)) if d.is_dir() and _holds_episodes(d)]
        if found:
            return found
    return []


def _holds_episodes(split_dir: Path) -> bool:
    return any(child.is_dir() and any(child.glob("*.png")) for child in split_dir.iterdir())


def _inventory(split_dirs: list[Path]) -> str:
    tasks: dict[str, list[str]] = {}
    for split_dir in split_dirs:
        task_dir = split_dir.parent
        tasks.setdefault(f"{task_dir.parent.name}/{task_dir.name}", []).append(split_dir.name)
    return "; ".join(f"{name} ({', '.join(splits)})" for name, splits in sorted(tasks.items()))


def _numeric_key(path: Path) -> tuple:
    stem = path.stem
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)
