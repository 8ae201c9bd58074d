"""`diffusion-reward stats`: standardisation statistics over expert episodes, stored in the model file."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..outputs import check_output
from ..scoring_options import STATS_OPTIONS, add_scoring_arguments, scoring_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="reward model file")
    p.add_argument("--data", required=True, metavar="EXPERT_DATA",
                   help="expert recording (episodes recorded as failed are left out): HDF5 dataset, rosbag2, RealSense, "
                        "LeRobot dataset or authors' PNG video folder")
    p.add_argument("--task", help="task name (default: the dataset's task, if it holds only one)")
    add_scoring_arguments(p, STATS_OPTIONS)
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", metavar="NEW_MODEL", help="write the model with its new statistics here")
    out.add_argument("--in-place", action="store_true", help="update --model itself")
    p.add_argument("--force", action="store_true", help="replace an existing --out (never an input)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..models import RewardModel

    if args.out and Path(args.out).resolve() == Path(args.model).resolve():
        raise UserError("--out is the model itself; pass --in-place to update it.")
    if args.out:
        check_output(args.out, {"--model": args.model, "--data": args.data}, force=args.force)
    model = RewardModel.load(args.model)
    stats = model.compute_stats(args.data, args.task, progress=args.progress, **scoring_options(args, STATS_OPTIONS))
    out = model.save(args.model if args.in_place else args.out)
    print(f"{stats.task} {stats.reward_type} skip {stats.skip_step} n {stats.num_samples}: mean {stats.mean:.4f} "
          f"std {stats.std:.4f} over {stats.frames} frames of {stats.episodes} episodes -> {out}")
    return 0
