"""`diffusion-reward train-reward`: train the reward model (codec, then video model) on expert videos; the video model
is VQ-Diffusion (Diffusion Reward) or, with --video-model videogpt, VIPER's VideoGPT.

Multi-GPU / multi-node: launch the same command with torchrun, e.g.
    torchrun --nproc_per_node 4 -m diffusion_reward train-reward --data expert.h5 --preset small --out m.safetensors --device cuda
"""
from __future__ import annotations

import argparse

from ..outputs import check_output, refuse_writing_into_inputs
from ..training import TrainConfig
from .config_args import add_config_arguments, config_from_args


EXAMPLES = """examples:
  diffusion-reward train-reward --data expert.hdf5 --preset tiny --out reward.safetensors
  diffusion-reward train-reward --data a.hdf5 --data b.hdf5 --preset small --resume --out reward.safetensors
  diffusion-reward stats --model reward.safetensors --data expert.hdf5 --in-place     # then standardise
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (its name, default and help, written once in training/config.py)."""
    p.epilog = EXAMPLES
    add_config_arguments(p, TrainConfig)
    p.add_argument("--force", action="store_true", help="replace an existing --out (never an input)")


def run(args: argparse.Namespace) -> int:
    inputs = {"--data": args.data, "--codec-from": args.codec_from, "--lpips-weights": args.lpips_weights}
    check_output(args.out, inputs, force=args.force)
    if args.checkpoint_dir:
        refuse_writing_into_inputs(args.checkpoint_dir, inputs, flag="--checkpoint-dir")
    cfg = config_from_args(TrainConfig, args)
    from ..training import RewardTrainer

    trainer = RewardTrainer(cfg)
    out = trainer.fit()
    if trainer.dist.is_main:
        s = trainer.summary
        print(f"wrote {out} (codec val L1 {s.get('codec_val_rec_l1')}, video val loss {s.get('video_val_loss')})")
    return 0
