"""`diffusion-reward convert`: a dataset into the files robomimic, d3rlpy, Minari or LeRobot users train on
(layouts: diffusion_reward/offline/convert/FORMATS.md)."""
from __future__ import annotations

import argparse

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
    from ..offline.convert import TARGETS, VIDEO_CODEC_CHOICES
    from ..offline.mdp import OBS_MODES

    p.epilog = EXAMPLES
    p.add_argument("input", metavar="IN", help="our dataset (relabel output) or a robomimic HDF5 file")
    p.add_argument("--to", required=True, choices=TARGETS, help="the tool whose file to write")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="file to write (minari: a dataset folder; Minari's id is diffusion_reward/<folder name>; "
                        "lerobot: a LeRobot v3.0 dataset folder); replaced only with --force")
    p.add_argument("--reward", default="diffusion", metavar="LABEL",
                   help="reward label for Eq. 5: diffusion (the label of entropy or likelihood type), entropy, "
                        "likelihood, a label name, or sparse (beta * success only)")
    p.add_argument("--alpha", type=float, default=0.95,
                   help="Eq. 5 weight of the RND term; the diffusion term gets (1 - alpha) and r_rnd = 0 in a "
                        "fixed dataset. 0 puts the diffusion term at full weight")
    p.add_argument("--beta", type=float, default=1.0, help="Eq. 5 weight of the sparse success reward")
    p.add_argument("--valid-fraction", type=float, default=0.1, metavar="F",
                   help="robomimic: share of episodes in mask/valid when the input has no train/valid masks")
    p.add_argument("--seed", type=int, default=0, help="robomimic: seed of the train/valid shuffle")
    p.add_argument("--obs", choices=OBS_MODES, default="state",
                   help="d3rlpy: observations (state vector, image stack, or both as a tuple)")
    p.add_argument("--frame-stack", type=int, default=1, metavar="K", help="d3rlpy: frames stacked for image obs")
    p.add_argument("--fps", type=int, metavar="N",
                   help="lerobot: frames per second of the dataset (default: from the input's timestamps, their "
                        "median step); row i gets timestamp i / fps, LeRobot's rule")
    p.add_argument("--video-codec", choices=VIDEO_CODEC_CHOICES, default="auto",
                   help="lerobot: video codec of the camera MP4s; auto = AV1 (libsvtav1, LeRobot's default, or "
                        "libaom-av1), else H.264 where the ffmpeg binary has no AV1 encoder")
    p.add_argument("--force", action="store_true", help="replace an existing OUT (never the input)")


def run(args: argparse.Namespace) -> int:
    from ..offline.convert import ConvertConfig, convert
    from ..offline.train_policy import quiet_d3rlpy_logs

    quiet_d3rlpy_logs()
    summary = convert(ConvertConfig(
        input=args.input, to=args.to, out=args.out, reward=args.reward, alpha=args.alpha, beta=args.beta,
        valid_fraction=args.valid_fraction, seed=args.seed, obs=args.obs, frame_stack=args.frame_stack,
        fps=args.fps, video_codec=args.video_codec, force=args.force))
    reward = f"Eq. 5 from label {summary.label!r}" if summary.label else "sparse only"
    extra = ", ".join(f"{k} {v}" for k, v in summary.details.items())
    print(f"wrote {summary.out} for {args.to}: {summary.episodes} episode(s), {summary.steps} steps, rewards = "
          f"{reward} (alpha {args.alpha}, beta {args.beta})" + (f"; {extra}" if extra else ""))
    return 0
