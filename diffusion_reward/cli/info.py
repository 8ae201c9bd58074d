"""`diffusion-reward info PATH [--json] [--verify]`: what is in a dataset, and whether it is intact."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset file (ours or any robomimic-layout HDF5), or a folder of "
                                     "the authors' PNG videos (<domain>/<task>/<split>/<episode>/<i>.png)")
    parser.add_argument("--split", default="train", help="split to count in a PNG video folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--verify", action="store_true",
                        help="read every episode fully; exit 2 naming the first inconsistency")


def run(args: argparse.Namespace) -> int:
    from ..data import Dataset

    if Path(args.path).is_dir():
        return _video_folder(args)
    with Dataset(args.path) as dataset:
        summary = dataset.verify() if args.verify else dataset.summary()
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    Console().print(_table(summary, verified=args.verify))
    return 0


def _video_folder(args: argparse.Namespace) -> int:
    from ..data.video_folder import read_video_folder

    summary = {"path": args.path, **read_video_folder(args.path, split=args.split).summary()}
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    table = Table(title=f"{args.path} (PNG video folder)", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key in ("split", "episodes", "frames", "image_size"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row("tasks", "\n".join(f"{task}: {n} episodes" for task, n in summary["tasks"].items()))
    Console().print(table)
    return 0


def _table(summary: dict, verified: bool) -> Table:
    table = Table(title=summary["path"], show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rate = summary["success_rate"]
    env = summary["env_args"]
    rows = {
        "format": f"version {summary['format_version']} ({summary['layout']})" if summary["format_version"]
        else "robomimic layout (not written by diffusion_reward)",
        "task": str(env.get("task", env.get("env_name", "-"))),
        "episodes": str(summary["episodes"]),
        "frames": str(summary["frames"]),
        "success rate": "-" if rate is None else f"{rate:.1%}",
        "main image": str(summary["image_key"]),
        "observations": "\n".join(f"{k}: {v['dtype']}{v['shape']}" for k, v in summary["obs_keys"].items()) or "-",
        "reward labels": ", ".join(f"{k} ({n} ep)" for k, n in summary["reward_labels"].items()) or "-",
        "masks": ", ".join(f"{k} ({n})" for k, n in summary["masks"].items()) or "-",
        "interrupted": "\n".join(summary["interrupted"]) or "none",
    }
    if summary["incomplete"]:
        job = summary["incomplete"]
        rows["INCOMPLETE"] = f"{job.get('job')} stopped before it finished; finish it with `{job.get('resume')}`"
    if summary["recording"]:
        rows["recording"] = "a writer has this dataset open now"
    if summary["unindexed"]:
        rows["not yet indexed"] = ", ".join(summary["unindexed"]) + " (linked on the next append)"
    if verified:
        rows["verify"] = "ok: every episode read back consistent"
    for key, value in rows.items():
        table.add_row(key, value)
    return table
