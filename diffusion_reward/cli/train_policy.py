"""`diffusion-reward train-policy`: offline RL (d3rlpy) on a reward-labelled dataset."""
from __future__ import annotations

import argparse

from .config_args import add_config_arguments, config_from_args


EXAMPLES = """examples:
  diffusion-reward train-policy --data labelled.hdf5 --algo iql --obs state --out runs/iql
  diffusion-reward train-policy --data labelled.hdf5 --reward sparse --obs image --frame-stack 3 --out runs/sparse
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..offline.train_policy import TrainPolicyConfig

    p.epilog = EXAMPLES
    add_config_arguments(p, TrainPolicyConfig)


def run(args: argparse.Namespace) -> int:
    from ..offline.train_policy import TrainPolicyConfig, quiet_d3rlpy_logs, train_policy

    quiet_d3rlpy_logs()
    out = train_policy(config_from_args(TrainPolicyConfig, args))
    print(f"policy written to {out} (TorchScript for the robot: {out / 'export' / 'policy.ts'})")
    return 0
