"""`diffusion-reward score`: per-frame rewards of a frames .npy or of dataset episodes.

Row i of the output scores the transition that starts at frame i (`data.format.REWARD_ALIGNMENT`: with the model's
frame skip k it conditions on frames i-k and i).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..outputs import check_output
from ..scoring_options import SCORE_OPTIONS, ScoreConfig, add_scoring_arguments, scoring_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="reward model file (.safetensors; default: the shipped model of the "
                                              "task's domain for MetaWorld / Adroit tasks)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--frames", type=Path, help=".npy of uint8 frames (T, H, W, 3)")
    src.add_argument("--data", type=Path, help="dataset (HDF5) whose image stream is scored")
    p.add_argument("--episode", help="dataset episode name or number (default: all episodes -> .npz keyed by episode)")
    add_scoring_arguments(p, SCORE_OPTIONS)
    p.add_argument("--raw", action="store_true", help="write raw scores instead of standardised rewards")
    p.add_argument("--task", help="task whose statistics standardise the scores (default: the dataset's task)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")
    p.add_argument("--out", required=True, type=Path, help="output .npy (one episode) or .npz (all episodes)")
    p.add_argument("--force", action="store_true", help="replace an existing --out (never an input)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..models import RewardModel
    from ..models.pretrained import resolve_model_path
    from ..reward import RewardScorer

    check_output(args.out, {"--model": args.model, "--frames": args.frames, "--data": args.data}, force=args.force)
    config = ScoreConfig(**scoring_options(args, SCORE_OPTIONS), task=args.task, standardize=not args.raw)
    episodes = _load_episodes(args)  # validate inputs before the (slower) model load
    model = RewardModel.load(resolve_model_path(args.model, args.task or episodes.task), device=args.device)
    task = args.task or (episodes.task if not args.raw else None)
    scorer = RewardScorer(model, dataclasses.replace(config, task=task))
    episodes.validate(scorer.prepare_frames)  # bad frames fail before any work or progress output
    results: dict[str, np.ndarray] = {}
    with tqdm(total=episodes.total_frames, unit="frame", desc="scoring") as bar:
        for name, chunks in episodes:
            res = scorer.score_chunks(chunks, progress=bar.update)
            results[name] = res.raw if args.raw else res.reward
    if episodes.single:
        _atomic_save(args.out, next(iter(results.values())), npz=False)
    else:
        _atomic_save(args.out, results, npz=True)
    print(f"wrote {args.out} ({len(results)} episode(s), {sum(map(len, results.values()))} rows, "
          f"{'raw' if args.raw else 'standardised'} {args.reward_type})")
    return 0


class _Episodes:
    """(name, frame chunks) pairs from a .npy (memory-mapped) or a dataset, read a chunk of frames at a time."""

    def __init__(self, items, task: str | None, single: bool):
        self.items, self.task, self.single = items, task, single  # items: (name, shape, dtype, chunks)
        self.total_frames = sum(shape[0] if shape else 0 for _, shape, _, _ in items)

    def validate(self, prepare) -> None:
        for _, shape, dtype, chunks in self.items:
            if self.single:  # the .npy, or the dataset episode's first chunk
                prepare(next(iter(chunks())))
            else:  # dataset episodes: check shape and dtype without reading the frames
                prepare(np.zeros((1, *shape[1:]) if len(shape) == 4 else shape, dtype))

    def __iter__(self):
        for name, _, _, chunks in self.items:
            yield name, chunks()


def _load_episodes(args) -> _Episodes:
    if args.out.suffix not in (".npy", ".npz"):
        raise UserError(f"--out must end in .npy or .npz, got {args.out}")
    if args.frames is not None:
        if args.episode is not None:
            raise UserError("--episode selects a dataset episode; it needs --data")
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
        return _Episodes([(args.frames.stem, frames.shape, frames.dtype, lambda: _codec_batches(frames))], None,
                         single=True)

    from ..data import Dataset

    if not args.data.exists():
        raise UserError(f"{args.data} does not exist")
    ds = Dataset(args.data)
    if ds.image_key is None:
        raise UserError(f"{args.data} has no image stream to score")
    names = ds.episode_names
    if args.episode is not None:
        name = f"demo_{args.episode}" if args.episode.isdigit() else args.episode
        if name not in names:
            raise UserError(f"{args.data} has no episode {args.episode!r} (it has {len(names)}: {', '.join(names[:5])}...)")
        names = [name]
    elif args.out.suffix != ".npz":
        raise UserError("scoring every episode writes an .npz keyed by episode; use an --out ending in .npz "
                        "or pick one with --episode")

    def loader(n):
        def chunks():
            with ds.episode(n) as ep:
                yield from _codec_batches(ep.obs[ds.image_key])
        return chunks

    items = []
    for n in names:
        with ds.episode(n) as ep:
            ep.require_steps()
            stream = ep.obs[ds.image_key]
            items.append((n, stream.shape, stream.dtype, loader(n)))
    return _Episodes(items, ds.env_args.get("task"), single=args.episode is not None)


def _codec_batches(frames):
    """Read `frames` (array or dataset stream) a codec batch at a time; at least one, possibly empty, batch (an
    empty episode fails like an empty .npy)."""
    from ..models.model_file import TOKENIZE_BATCH

    if frames.ndim == 0:  # not frames at all: the scorer's checks say so
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
