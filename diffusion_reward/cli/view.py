"""`diffusion-reward view`: a dataset as an MCAP (video, rewards, state on ROS 2 topics) that Foxglove opens."""
from __future__ import annotations

import argparse

EXAMPLES = """examples:
  diffusion-reward view labelled.hdf5 --out labelled.mcap                  # then open it in Foxglove
  diffusion-reward view labelled.hdf5 --episodes demo_0,demo_3 --reward sparse --out two.mcap
topics: /camera/<obs key> (sensor_msgs/Image), /reward_labels/<label> (Vector3Stamped: x standardised, y raw),
/reward/eq5 and /reward/sparse (std_msgs/Float64), /obs/<key> and /action (Float32MultiArray), /episode (String)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EXAMPLES
    p.add_argument("data", metavar="DATASET", help="our dataset or a robomimic HDF5 file")
    p.add_argument("--out", required=True, metavar="FILE.mcap", help="MCAP file to write (replaced only with --force)")
    p.add_argument("--episodes", metavar="NAMES", help="comma-separated episodes to include (default: all)")
    p.add_argument("--reward", default="diffusion", metavar="LABEL",
                   help="label for the /reward/eq5 channel (diffusion, entropy, likelihood, a label name); sparse: "
                        "no Eq. 5 channel. With the default, a dataset without labels gets none")
    p.add_argument("--alpha", type=float, default=0.95, help="Eq. 5 weight of the RND term (r_rnd = 0 offline)")
    p.add_argument("--beta", type=float, default=1.0, help="Eq. 5 weight of the sparse success reward")
    p.add_argument("--force", action="store_true", help="replace an existing FILE.mcap (never the dataset)")


def run(args: argparse.Namespace) -> int:
    from ..offline.convert.mcap_view import ViewConfig, write_view

    episodes = [n.strip() for n in args.episodes.split(",") if n.strip()] if args.episodes else None
    summary = write_view(ViewConfig(data=args.data, out=args.out, episodes=episodes, reward=args.reward,
                                    alpha=args.alpha, beta=args.beta, force=args.force))
    topics = ", ".join(f"{topic} ({n})" for topic, n in sorted(summary.messages.items()))
    print(f"wrote {summary.out}: {summary.episodes} episode(s), {summary.steps} steps; topics: {topics}")
    return 0
