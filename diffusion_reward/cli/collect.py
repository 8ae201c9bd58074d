"""`diffusion-reward collect`: simulated episodes from a scripted expert degraded by epsilon-random actions
(`diffusion_reward.offline.collect`: seeds, attributes, resuming)."""
from __future__ import annotations

import argparse

from .config_args import add_config_arguments, config_from_args

EXAMPLES = """examples:
  diffusion-reward collect --task button-press-topdown-v3 --episodes 10 --epsilon 0 --out expert.hdf5
  diffusion-reward collect --task button-press-topdown-v3 --episodes 10 --epsilon 0.75 --seed 100 --out mixed.hdf5
  diffusion-reward collect ... --resume            # finish a killed run with the same options
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..offline.collect import CollectConfig

    parser.epilog = EXAMPLES
    add_config_arguments(parser, CollectConfig)


def run(args: argparse.Namespace) -> int:
    from ..offline.collect import CollectConfig, collect_dataset

    cfg = config_from_args(CollectConfig, args)
    s = collect_dataset(cfg)
    if not s.collected:
        print(f"nothing to collect: the {cfg.episodes} episodes of this run are already in {cfg.out}")
        return 0
    print(f"collected {s.collected} episodes of {cfg.task} (epsilon {cfg.epsilon:g}, seed {cfg.seed}): "
          f"success {s.successes}/{s.collected} ({s.successes / s.collected:.0%}), "
          f"mean length {s.mean_length:.1f} steps -> {cfg.out} ({s.total} episodes in total)")
    return 0
