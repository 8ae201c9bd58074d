"""`diffusion-reward convert`: a dataset into the files robomimic, d3rlpy, Minari or LeRobot users train on
(layouts: diffusion_reward/offline/convert/FORMATS.md)."""
from __future__ import annotations

import argparse

from .config_args import add_config_arguments, config_from_args

EXAMPLES = """examples:
  diffusion-reward convert labelled.hdf5 --to robomimic --reward diffusion --out robomimic.hdf5
  python -m robomimic.scripts.train --config bc.json        # with "train": {"data": "robomimic.hdf5"}
  diffusion-reward convert labelled.hdf5 --to d3rlpy --obs state --out dataset.d3rlpy.h5
  diffusion-reward convert labelled.hdf5 --to minari --out ~/.minari/datasets/diffusion_reward/button-v0
  python -c 'import minari; print(minari.load_dataset("diffusion_reward/button-v0"))'
  diffusion-reward convert labelled.hdf5 --to lerobot --out lerobot/button   # LeRobot v3.0, AV1 video
  python -c 'from lerobot.datasets.lerobot_dataset import LeRobotDataset as D; print(D("x/b", root="lerobot/button"))'
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..offline.convert import ConvertConfig

    p.epilog = EXAMPLES
    add_config_arguments(p, ConvertConfig)


def run(args: argparse.Namespace) -> int:
    from ..offline.convert import ConvertConfig, convert
    from ..offline.train_policy import quiet_d3rlpy_logs

    quiet_d3rlpy_logs()
    summary = convert(config_from_args(ConvertConfig, args))
    reward = f"Eq. 5 from label {summary.label!r}" if summary.label else "sparse only"
    extra = ", ".join(f"{k} {v}" for k, v in summary.details.items())
    print(f"wrote {summary.out} for {args.to}: {summary.episodes} episode(s), {summary.steps} steps, rewards = "
          f"{reward} (alpha {args.alpha}, beta {args.beta})" + (f"; {extra}" if extra else ""))
    return 0
