"""`diffusion-reward train-reward`: train the reward model (codec, then video model) on expert videos; the video model
is VQ-Diffusion (Diffusion Reward) or, with --video-model videogpt, VIPER's VideoGPT.

Multi-GPU / multi-node: launch the same command with torchrun, e.g.
    torchrun --nproc_per_node 4 -m diffusion_reward train-reward --data expert.h5 --preset small --out m.safetensors --device cuda
"""
from __future__ import annotations

import argparse

from ..models.presets import VIDEO_MODELS
from ..outputs import check_output, refuse_writing_into_inputs
from ..training import PRESET_DEFAULTS, TrainConfig


EXAMPLES = """examples:
  diffusion-reward train-reward --data expert.hdf5 --preset tiny --out reward.safetensors
  diffusion-reward train-reward --data a.hdf5 --data b.hdf5 --preset small --resume --out reward.safetensors
  diffusion-reward stats --model reward.safetensors --data expert.hdf5 --in-place     # then standardise
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EXAMPLES
    p.add_argument("--data", action="append", required=True, metavar="RECORDING",
                   help="expert recording: HDF5 dataset, rosbag2, RealSense, LeRobot dataset or authors' PNG video "
                        "folder; repeat for several tasks")
    p.add_argument("--preset", default="tiny", help=f"model preset: {', '.join(PRESET_DEFAULTS)} (default tiny)")
    p.add_argument("--video-model", choices=VIDEO_MODELS, default="vqdiffusion",
                   help="vqdiffusion (Diffusion Reward, default) or videogpt (the VIPER baseline), on the preset's codec")
    p.add_argument("--out", required=True, metavar="MODEL", help="model file to write (.safetensors)")
    p.add_argument("--force", action="store_true", help="replace an existing --out (never an input)")
    p.add_argument("--codec-steps", type=int, help="codec training steps (default: per preset)")
    p.add_argument("--video-steps", type=int, help="video-model training steps (default: per preset)")
    p.add_argument("--batch-size", type=int, help="video-model windows per step over all ranks (default: per preset)")
    p.add_argument("--codec-batch-size", type=int, help="codec frames per step over all ranks (default: per preset)")
    p.add_argument("--lr", type=float, help="video-model peak learning rate (default: per preset)")
    p.add_argument("--codec-lr", type=float, help="codec learning rate (default: per preset)")
    p.add_argument("--disc-start", type=int, help="codec step from which the PatchGAN loss is on (default: per preset)")
    p.add_argument("--codebook-restart-every", type=int, default=50,
                   help="codec steps between restarts of unused codes (0: never, as upstream; default 50)")
    p.add_argument("--codec-from", metavar="MODEL", help="reuse this model file's codec and train only the video model")
    p.add_argument("--frame-skip", type=int, help="video model: context stride and prediction horizon in frames "
                   "(default: per preset, 1 as the authors)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and validation split")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --checkpoint-dir")
    p.add_argument("--checkpoint-dir", help="checkpoints and log.jsonl (default: MODEL.ckpt/)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: per preset)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="episodes per task held out (default 0.1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--lpips-weights", metavar="FILE",
                   help="VGG16-LPIPS weights file; adds the perceptual loss (never downloaded)")
    p.add_argument("--all-episodes", action="store_true", help="also train on episodes recorded as failed")
    p.add_argument("--resize", action="store_true",
                   help="center-crop and resize frames of another size to the model's (as score/relabel --resize)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for both networks (default: on where the hardware has native bf16, "
                        "else float32)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    inputs = {"--data": args.data, "--codec-from": args.codec_from, "--lpips-weights": args.lpips_weights}
    check_output(args.out, inputs, force=args.force)
    if args.checkpoint_dir:
        refuse_writing_into_inputs(args.checkpoint_dir, inputs, flag="--checkpoint-dir")
    cfg = TrainConfig(
        data=args.data, out=args.out, preset=args.preset, video_model=args.video_model, codec_steps=args.codec_steps, video_steps=args.video_steps,
        batch_size=args.batch_size, codec_batch_size=args.codec_batch_size, lr=args.lr, codec_lr=args.codec_lr,
        seed=args.seed, resume=args.resume, checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
        val_fraction=args.val_fraction, device=args.device, lpips_weights=args.lpips_weights,
        all_episodes=args.all_episodes, resize=args.resize, bf16=args.bf16, progress=args.progress, disc_start=args.disc_start,
        codebook_restart_every=args.codebook_restart_every, codec_from=args.codec_from, frame_skip=args.frame_skip,
    )
    from ..training import RewardTrainer

    trainer = RewardTrainer(cfg)
    out = trainer.fit()
    if trainer.dist.is_main:
        s = trainer.summary
        print(f"wrote {out} (codec val L1 {s.get('codec_val_rec_l1')}, video val loss {s.get('video_val_loss')})")
    return 0
