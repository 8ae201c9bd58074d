"""Relabelling on several processes, GPUs or machines: torchrun starts N copies of `diffusion-reward relabel`.

    torchrun --nproc_per_node 4 -m diffusion_reward relabel --input bags/ --out labelled.hdf5 --device cuda
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m diffusion_reward relabel ...            # several machines: `out` on a filesystem they all mount

Rank r of N labels the source episodes i (in the source's order) with i % N == r into its own part dataset
`<out>.parts/rank-<r>-of-<N>.hdf5` (our crash-safe format, like any output). When every rank has finished (a
barrier of the torch.distributed group: gloo on CPU, NCCL on GPUs), rank 0 merges: it links each part's
episodes into `out` in the source's order (hard links, `DatasetWriter.adopt_episode`; the episode files are
immutable), carries the source's masks, and deletes the parts. `out` is then the dataset one process would have
written: the same episodes, rows, rewards (each episode is scored with its own seed) and provenance.

Crash safety and resume, as with one process: a killed run leaves the parts (and, when the merge had begun, an
`out` marked incomplete); the same torchrun command with `--resume` skips every episode already in `out` or in
the rank's part and finishes the merge. The number of ranks may change between the runs: an earlier run's parts
are merged too.
"""
from __future__ import annotations

import datetime
import os
import shutil
from dataclasses import replace
from pathlib import Path

from ..data import Dataset, DatasetWriter
from ..data.format import episodes_dir
from ..data.sources import detect_kind
from ..training.distributed import DistInfo, barrier, setup, teardown
from .relabel import (RelabelConfig, RelabelSummary, Shard, carry_masks, labelled_sources, part_path, relabel,
                      resume_command)

# ranks wait at the barrier for the slowest one; a shard of a large recording may take hours
BARRIER_TIMEOUT = datetime.timedelta(days=2)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def relabel_sharded(cfg: RelabelConfig) -> RelabelSummary:
    """This rank's share of the labelling, then (rank 0) the merge into `cfg.out`. The summary counts this
    rank's episodes; rank 0's `written` lists every episode the merge added to `out`."""
    info: DistInfo = setup(cfg.device, timeout=BARRIER_TIMEOUT)
    try:
        shard = Shard(info.rank, info.world_size)
        summary = relabel(replace(cfg, device=info.device), shard=shard)
        barrier(info)  # every part is complete
        if info.is_main:
            summary.written = merge_parts(cfg, summary.source_order, shard)
            summary.out = Path(cfg.out).resolve()
        return summary
    finally:
        teardown(info)


def merge_parts(cfg: RelabelConfig, source_order: list[str], shard: Shard) -> list[str]:
    """Link every part's episodes into `out` (those not there yet) in the source's order, carry the source's
    masks, then delete the parts. Returns the names added to `out`."""
    dst, src = Path(cfg.out).resolve(), Path(cfg.input).resolve()
    folder = part_path(dst, shard).parent
    parts = sorted(folder.glob("rank-*-of-*.hdf5")) if folder.is_dir() else []
    position = {name: i for i, name in enumerate(source_order)}
    episodes = []  # (source position, episode file, source name) of every part episode
    env_args = None
    for part in parts:
        with Dataset(part) as ds:
            env_args = env_args or dict(ds.env_args)
            for name in ds.episode_names:
                with ds.episode(name) as ep:
                    source = ep.attrs["source_episode"]
                episodes.append((position.get(source, len(position)), episodes_dir(part) / f"{name}.h5", source))
    if not episodes and not dst.exists():
        return []
    added = []
    with DatasetWriter(dst, env_args=env_args) as out:
        out.begin_job("relabel", resume_command(cfg, shard))
        merged = labelled_sources(dst, str(src))  # what an interrupted merge already added
        for _, episode_file, source in sorted(episodes):
            if source not in merged:
                merged[source] = out.adopt_episode(episode_file)
                added.append(merged[source])
        if detect_kind(src) == "hdf5":
            carry_masks(out, src, merged)
        out.end_job()
    for part in parts:  # the index first: a part folder without its index is only its episode files
        part.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    return added

