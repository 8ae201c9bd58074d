"""`diffusion-reward score`: per-frame rewards of a frames .npy or of a recording's episodes (any kind `relabel`
reads: `data.sources`).

Row i of the output scores the transition that starts at frame i (`data.format.REWARD_ALIGNMENT`: with the model's
frame skip k it conditions on frames i-k and i).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import itertools
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import UserError
from ..outputs import check_output
from ..scoring_options import SCORE_OPTIONS, ScoreConfig, add_scoring_arguments, scoring_options
from .config_args import add_config_arguments, config_from_args

EXAMPLES = """examples:
  diffusion-reward score --frames episode.npy --task button-press-v3 --out rewards.npy
  diffusion-reward score --data robot.hdf5 --out rewards.npz                  # every episode, task from the data
  diffusion-reward score --data bags/ep_001 --task button-press-v3 --resize --episode 0 --out ep.npy  # a rosbag2
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..data.sources import SourceOptions

    p.epilog = EXAMPLES
    p.add_argument("--model", type=Path, help="reward model file (.safetensors; default: the shipped model of the "
                                              "task's domain for MetaWorld / Adroit tasks)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--frames", type=Path, help=".npy of uint8 frames (T, H, W, 3)")
    src.add_argument("--data", type=Path, help="recording whose image stream is scored: any kind relabel reads (our "
                                               "or robomimic HDF5, rosbag2, RealSense, LeRobot, PNG folders)")
    p.add_argument("--episode", help="episode name, or number (demo_N of an HDF5 dataset, else the Nth episode from 0) "
                                     "(default: all episodes -> .npz keyed by episode)")
    add_scoring_arguments(p, SCORE_OPTIONS)
    add_config_arguments(p, SourceOptions)
    p.add_argument("--raw", action="store_true", help="write raw scores instead of standardised rewards")
    p.add_argument("--task", help="task whose statistics standardise the scores (default: the recording's task)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")
    p.add_argument("--out", required=True, type=Path, help="output .npy (one episode) or .npz (all episodes)")
    p.add_argument("--force", action="store_true", help="replace an existing --out (never an input)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.sources import SourceOptions
    from ..models import RewardModel
    from ..models.pretrained import resolve_model_path
    from ..reward import RewardScorer

    check_output(args.out, {"--model": args.model, "--frames": args.frames, "--data": args.data}, force=args.force)
    config = ScoreConfig(**scoring_options(args, SCORE_OPTIONS), task=args.task, standardize=not args.raw)
    episodes = _load_episodes(args, config_from_args(SourceOptions, args))  # inputs fail before the model loads
    model = RewardModel.load(resolve_model_path(args.model, args.task or episodes.task, args.data), device=args.device)
    task = args.task or (episodes.task if not args.raw else None)
    scorer = RewardScorer(model, dataclasses.replace(config, task=task))
    for first_frames in episodes.first_frames:  # bad frames fail before any work or progress output
        scorer.prepare_frames(first_frames)
    results: dict[str, np.ndarray] = {}
    items = iter(episodes)
    first_name, chunks = next(items)
    first_chunk = next(chunks)  # read (an unreadable recording fails) before any progress output
    items = itertools.chain([(first_name, itertools.chain([first_chunk], chunks))], items)
    with tqdm(total=episodes.total_frames, unit="frame", desc="scoring") as bar:
        for name, chunks in items:
            res = scorer.score_chunks(chunks, progress=bar.update)
            results[name] = res.raw if args.raw else res.reward
    if episodes.single:
        _atomic_save(args.out, next(iter(results.values())), npz=False)
    else:
        _atomic_save(args.out, results, npz=True)
    print(f"wrote {args.out} ({len(results)} episode(s), {sum(map(len, results.values()))} rows, "
          f"{'raw' if args.raw else 'standardised'} {args.reward_type})")
    return 0


@dataclasses.dataclass
class _Episodes:
    """(name, frame chunks) pairs of a .npy (memory-mapped) or a recording, read a codec batch of frames at a time."""

    iterate: Callable[[], Iterator[tuple[str, Iterator[np.ndarray]]]]
    first_frames: list[np.ndarray]  # each episode's first frame(s), checked before any scoring
    total_frames: int
    task: str | None
    single: bool  # one episode: written as .npy

    def __iter__(self):
        return self.iterate()


def _load_episodes(args, options) -> _Episodes:
    if args.out.suffix not in (".npy", ".npz"):
        raise UserError(f"--out must end in .npy or .npz, got {args.out}")
    if args.frames is not None:
        if args.episode is not None:
            raise UserError("--episode selects an episode of a recording; it needs --data")
        if options != type(options)():
            raise UserError("recording options (--image-topic, --rate, ...) apply to --data, not to --frames")
        try:  # memory-mapped: the frames are read a codec batch at a time, like a dataset episode
            frames = np.load(args.frames, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise UserError(f"{args.frames} does not exist") from None
        except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty file
            raise UserError(f"{args.frames} is not a readable .npy array ({exc})") from None
        if not isinstance(frames, np.ndarray):  # an .npz archive
            raise UserError(f"{args.frames} is not a .npy array (an .npz archive?)")
        if args.out.suffix != ".npy":
            raise UserError("one episode of frames is written as .npy; use an --out ending in .npy")
        first = np.array(frames[0:1]) if frames.ndim else np.asarray(frames)  # checked; the rest read once
        return _Episodes(lambda: iter([(args.frames.stem, _codec_batches(frames))]),
                         [first], frames.shape[0] if frames.ndim else 0, None, single=True)

    from ..data.sources import open_source

    listed = []  # first pass: names, lengths, tasks and first frames, without reading whole episodes
    with contextlib.closing(open_source(args.data, options)) as source:
        for ep in source:
            listed.append((ep.name, len(ep.frames), ep.task, np.asarray(ep.frames[0:1])))
    names = [name for name, *_ in listed]
    if args.episode is not None:
        picked = _pick_episode(args.data, names, args.episode)
        listed = [row for row in listed if row[0] == picked]
    elif args.out.suffix != ".npz":
        raise UserError("scoring every episode writes an .npz keyed by episode; use an --out ending in .npz "
                        "or pick one with --episode")
    if not listed:
        raise UserError(f"{args.data} has no episodes to score")
    wanted = {name for name, *_ in listed}
    tasks = {task for *_, task, _ in listed if task}

    def iterate():
        with contextlib.closing(open_source(args.data, options)) as source:
            for ep in source:
                if ep.name in wanted:
                    yield ep.name, _codec_batches(ep.frames)

    return _Episodes(iterate, [first for *_, first in listed], sum(n for _, n, *_ in listed),
                     tasks.pop() if len(tasks) == 1 else None, single=args.episode is not None)


def _pick_episode(data: Path, names: list[str], episode: str) -> str:
    """An episode by name; a number is demo_N where that exists, else the Nth episode (from 0)."""
    if episode in names:
        return episode
    if episode.isdigit():
        if f"demo_{episode}" in names:
            return f"demo_{episode}"
        if int(episode) < len(names):
            return names[int(episode)]
    raise UserError(f"{data} has no episode {episode!r} (it has {len(names)}: {', '.join(names[:5])}"
                    f"{', ...' if len(names) > 5 else ''})")


def _codec_batches(frames):
    """Read `frames` (an array or a recording's lazy frames) a codec batch at a time; at least one, possibly empty,
    batch (an empty episode fails like an empty .npy)."""
    from ..models.model_file import TOKENIZE_BATCH

    if getattr(frames, "ndim", None) == 0:  # not frames at all: the scorer's checks say so
        yield np.asarray(frames)
        return
    for start in range(0, max(1, len(frames)), TOKENIZE_BATCH):
        yield np.array(frames[start:start + TOKENIZE_BATCH])  # a copy: memory-mapped pages are read-only


def _atomic_save(path: Path, value, npz: bool) -> None:
    from ..models.model_file import atomic_write

    buf = io.BytesIO()
    if npz:
        np.savez(buf, **value)
    else:
        np.save(buf, value)
    atomic_write(path, buf.getvalue())
