"""`diffusion-reward live`: pipeline nodes on a ROS 2 DDS graph, without a ROS install.

    diffusion-reward live labeller --params ros2_ws/src/diffusion_reward_ros/config/reward_labeller.yaml \\
        --param model_path:=reward.safetensors --param task:=button-press-v3
    diffusion-reward live up --config live.yaml        # several nodes, as a launch file would
"""
from __future__ import annotations

import argparse

from ..live import NODE_ALIASES, LaunchSet, dds_config, parse_param, run_node
from ..transport.base import LOG_LEVELS

_NODE_HELP = {
    "labeller": "reward labeller: camera frames in, ~/reward out",
    "recorder": "episode recorder: synchronised topics into a dataset",
    "policy": "policy runner: exported policy on camera/state, commands out",
    "sim-bridge": "simulated robot + camera (MetaWorld / Adroit) on ROS topics",
    "camera": "camera node (RealSense, video file or folder of frames)",
}


def _graph_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--domain-id", type=int, default=None,
                   help="DDS domain (ROS_DOMAIN_ID); default: $ROS_DOMAIN_ID, else 0")
    p.add_argument("--network", default=None, metavar="loopback|default|IFACE",
                   help="loopback: this machine only, no multicast; default: $CYCLONEDDS_URI or Cyclone DDS "
                        "defaults (as ROS 2); IFACE: join the robot's network on that interface (e.g. eth0)")
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS, help="lowest level of log lines printed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="live_command", metavar="NODE|up", required=True)
    for node in NODE_ALIASES:
        p = sub.add_parser(node, help=_NODE_HELP[node], description=_NODE_HELP[node],
                           formatter_class=parser.formatter_class)
        p.add_argument("--params", action="append", default=[], metavar="YAML",
                       help="ROS 2 parameter file (repeatable; later files win)")
        p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                       help="parameter override, YAML value (repeatable; beats --params)")
        p.add_argument("--name", default=None, help=f"ROS node name (default: {NODE_ALIASES[node]})")
        p.add_argument("--dds-config", default=None, metavar="XML",
                       help="Cyclone DDS configuration file (instead of --network)")
        _graph_options(p)
    up = sub.add_parser("up", help="start several nodes from a YAML file, one process each",
                        formatter_class=parser.formatter_class,
                        description="Start the nodes a launch file would (file format: docs/live.md), prefix "
                                    "their output, stop them cleanly on Ctrl-C.")
    up.add_argument("--config", required=True, metavar="YAML", help="nodes, parameter files, domain, network")
    _graph_options(up)


def run(args: argparse.Namespace) -> int:
    if args.live_command == "up":
        launch = LaunchSet.from_file(args.config, domain_id=args.domain_id, network=args.network,
                                     log_level=args.log_level)
        dds_config(launch.network)  # fail here on a bad --network, not in every child
        return launch.run()
    overrides = dict(parse_param(text) for text in args.param)
    return run_node(args.live_command, params_files=args.params, overrides=overrides, name=args.name,
                    domain_id=args.domain_id, config=dds_config(args.network, args.dds_config),
                    log_level=args.log_level)
