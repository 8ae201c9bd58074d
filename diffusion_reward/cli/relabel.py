"""`diffusion-reward relabel`: score recorded episodes with a reward model into a new dataset."""
from __future__ import annotations

import argparse
import os

from .config_args import add_config_arguments, config_from_args


EXAMPLES = """examples:
  diffusion-reward relabel --input mixed.hdf5 --out labelled.hdf5          # shipped model, task from the data
  diffusion-reward relabel --model reward.safetensors --input bags/ep_001 --task button-press-v3 --resize \\
      --out labelled.hdf5                                                  # a rosbag2 recording
  diffusion-reward relabel ... --resume                                    # finish a killed run
  torchrun --nproc_per_node 4 -m diffusion_reward relabel ... --device cuda # 4 processes, one merged --out
  diffusion-reward relabel --input lerobot/pusht --camera observation.image --resize --task T \
      --out pusht.rewards.parquet                                          # LeRobot: a sidecar of rewards
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..offline.relabel import RelabelConfig

    p.epilog = EXAMPLES
    add_config_arguments(p, RelabelConfig)


def run(args: argparse.Namespace) -> int:
    from ..offline.relabel import RelabelConfig, relabel
    from ..offline.relabel_shards import launched_by_torchrun, relabel_sharded

    cfg = config_from_args(RelabelConfig, args)
    sharded = launched_by_torchrun()
    s = relabel_sharded(cfg) if sharded else relabel(cfg)
    rate = s.frames / s.seconds if s.seconds else 0.0
    if not sharded:
        print(f"relabelled {len(s.written)} episode(s), {s.frames} frames ({rate:.1f} frames/s) into {s.out}"
              + (f" (camera {s.camera})" if s.camera else "")
              + (f"; skipped {len(s.skipped)} already labelled" if s.skipped else ""))
        return 0
    rank = os.environ.get("RANK", "0")
    print(f"rank {rank}: labelled {s.frames} frames ({rate:.1f} frames/s)"
          + (f", skipped {len(s.skipped)} already labelled" if s.skipped else "")
          + (f"; merged {len(s.written)} episode(s) of every rank into {s.out}" if rank == "0" else ""))
    return 0
