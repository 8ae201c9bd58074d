"""`diffusion-reward import-upstream`: the authors' VQ-Diffusion (Diffusion Reward) or VideoGPT (VIPER) checkpoint
(+ config, VQGAN, statistics) -> one model file. Which of the two it is, the config says."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..outputs import check_output


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video-checkpoint", required=True, type=Path,
                   help="exp_local/video_models/vqdiffusion/<domain>/checkpoint/best.pth (EMA transformer + codec), or "
                        "VIPER's exp_local/video_models/videogpt/<domain>/results/checkpoints/videogpt.pt")
    p.add_argument("--video-config", required=True, type=Path,
                   help="the hydra config of that run: exp_local/video_models/{vqdiffusion,videogpt}/<domain>/"
                        ".hydra/config.yaml")
    p.add_argument("--codec-checkpoint", type=Path,
                   help="exp_local/codec_models/vqgan/<domain>/results/checkpoints/vqgan.pt: cross-check (or the codec "
                        "when best.pth carries none)")
    p.add_argument("--stats", type=Path, help="statistics YAML: {task: {skip_step: [mean, std]}}, e.g. "
                                              "statistics/diffusion_reward/entropy/<domain>.yaml, or VIPER's "
                                              "{task: [mean, std]}, statistics/viper/likelihood/<domain>.yaml")
    p.add_argument("--task", help="import the statistics of this task only (default: all tasks in --stats)")
    p.add_argument("--reward-type", choices=("entropy", "likelihood"),
                   help="reward type of --stats (default: from its path, .../entropy/... or .../likelihood/...)")
    p.add_argument("--out", required=True, type=Path, help="model file to write (.safetensors)")
    p.add_argument("--force", action="store_true", help="replace an existing --out (never an input)")


def run(args: argparse.Namespace) -> int:
    from ..upstream import import_upstream, import_upstream_videogpt, upstream_video_model

    check_output(args.out, {"--video-checkpoint": args.video_checkpoint, "--video-config": args.video_config,
                            "--codec-checkpoint": args.codec_checkpoint, "--stats": args.stats}, force=args.force)
    if args.task and not args.stats:
        raise UserError("--task selects statistics; pass the statistics file with --stats")
    if upstream_video_model(args.video_config) == "videogpt":
        if args.codec_checkpoint:
            raise UserError("--codec-checkpoint is for VQ-Diffusion imports: videogpt.pt carries the codec VIPER uses")
        model = import_upstream_videogpt(args.video_checkpoint, args.video_config, stats=args.stats, task=args.task,
                                         reward_type=args.reward_type)
    else:
        model = import_upstream(args.video_checkpoint, args.video_config, codec_checkpoint=args.codec_checkpoint,
                                stats=args.stats, task=args.task, reward_type=args.reward_type)
    model.save(args.out)
    check = model.provenance["imported_from"].get("codec_crosscheck")
    print(f"wrote {args.out}  (weights {model.weights_hash[:12]}, {len(model.stats)} statistics entries"
          + (f", codec vs vqgan.pt: {check}" if check else "") + ")")
    return 0
