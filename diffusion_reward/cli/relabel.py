"""`diffusion-reward relabel`: score recorded episodes with a reward model into a new dataset."""
from __future__ import annotations

import argparse

from ..data.sources.rosbag import DEFAULT_GAP_S
from ..robot_state import DEFAULT_STATE_FIELDS
from ..scoring_options import add_scoring_arguments, scoring_options


EXAMPLES = """examples:
  diffusion-reward relabel --input mixed.hdf5 --out labelled.hdf5          # shipped model, task from the data
  diffusion-reward relabel --model reward.safetensors --input bags/ep_001 --task button-press-v3 --resize \\
      --out labelled.hdf5                                                  # a rosbag2 recording
  diffusion-reward relabel ... --resume                                    # finish a killed run
  diffusion-reward relabel --input lerobot/pusht --camera observation.image --resize --task T \
      --out pusht.rewards.parquet                                          # LeRobot: a sidecar of rewards
"""


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (joints, JointState fields)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EXAMPLES
    p.add_argument("--model", help="reward model file (.safetensors; default: the shipped model of the task's "
                                   "domain for MetaWorld / Adroit tasks)")
    p.add_argument("--input", required=True, metavar="SRC",
                   help="our/robomimic HDF5, rosbag2 directory, .mcap, .db3 (rosbag2 or RealSense), "
                        "RealSense .bag, a LeRobot dataset folder (meta/info.json; v2.0, v2.1, v3.0), or a folder "
                        "of PNG frames (<domain>/<task>/<split>/<episode>/<i>.png)")
    p.add_argument("--out", required=True, metavar="DST",
                   help="new dataset to write (HDF5; never overwritten). For LeRobot input, a path ending in "
                        ".parquet writes a sidecar of per-frame rewards instead (episode_index, frame_index, "
                        "timestamp, reward, raw; provenance in its metadata) and leaves the dataset as it is")
    p.add_argument("--task", help="statistics to standardise with (default: the source's task, else the "
                                  "model's only task)")
    p.add_argument("--image-topic", help="rosbag2 image topic (default: /camera/camera/color/image_raw, ...); "
                                         "for HDF5 input, the obs key to score")
    p.add_argument("--state-topic", help="rosbag2 JointState topic (default: /franka/joint_states, /joint_states)")
    p.add_argument("--gripper-topic", metavar="TOPIC",
                   help="rosbag2 gripper JointState topic, stored as obs/gripper = the finger positions, as the live "
                        "recorder does (default: /franka_gripper/joint_states when the bag has it; none = no gripper)")
    p.add_argument("--joint-names", type=_names, metavar="J1,J2,...",
                   help="rosbag2: the arm joints of obs/state and of JointTrajectory actions, in order (default: "
                        "fr3_joint1..7 when the JointState has them, else its joints in the first message's order)")
    p.add_argument("--state-fields", type=_names, default=DEFAULT_STATE_FIELDS, metavar="F1,F2",
                   help="rosbag2: the JointState fields in obs/state (position, velocity, effort), each over all arm "
                        "joints, in this order (default: position,velocity, the live recorder's state_fields; "
                        "layout: diffusion_reward/data/FORMAT.md)")
    p.add_argument("--action-topic", help="rosbag2 command topic (default: /fr3_arm_controller/joint_trajectory; "
                                          "JointTrajectory, Float64MultiArray or TwistStamped)")
    p.add_argument("--episode-topic", help="rosbag2 topic that splits episodes: std_msgs/Bool (true = start, "
                                           "false = stop) or std_msgs/Empty (each message starts a new one); "
                                           "default: /episode/start and /episode/stop when present")
    p.add_argument("--rate", type=float, dest="rate_hz", metavar="HZ",
                   help="control rate to resample bag / RealSense streams to (default: the camera rate)")
    p.add_argument("--tolerance", type=float, dest="tolerance_s", metavar="S",
                   help="max stamp distance for a match (default: 0.05 s, the live recorder's; with --rate: half a control period); LeRobot input: max "
                        "distance between a row's timestamp and its video frame (default: 1e-4, LeRobot's)")
    p.add_argument("--camera", metavar="KEY",
                   help="LeRobot input: the image or video feature to score, e.g. observation.images.top "
                        "(default: the first one in meta/info.json; the choice is printed)")
    p.add_argument("--gap", type=float, default=DEFAULT_GAP_S, dest="gap_s", metavar="S",
                   help=f"a camera gap longer than this splits an episode (default: {DEFAULT_GAP_S})")
    p.add_argument("--resize", action="store_true",
                   help="center-crop frames to a square and resize them to the model's input size")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: skip episodes already labelled with the same settings")
    p.add_argument("--force", action="store_true",
                   help="replace an existing .parquet sidecar (never a file of the input; an HDF5 --out is "
                        "continued with --resume instead)")
    add_scoring_arguments(p)
    p.add_argument("--label-name", help="name of the label group reward_labels/<name> (default: the reward type)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")


def run(args: argparse.Namespace) -> int:
    from ..offline.relabel import RelabelConfig, relabel

    cfg = RelabelConfig(
        model=args.model, input=args.input, out=args.out, task=args.task, image_topic=args.image_topic,
        state_topic=args.state_topic, action_topic=args.action_topic, episode_topic=args.episode_topic,
        gripper_topic=args.gripper_topic, joint_names=args.joint_names, state_fields=args.state_fields,
        rate_hz=args.rate_hz, tolerance_s=args.tolerance_s, gap_s=args.gap_s, resize=args.resize,
        resume=args.resume, camera=args.camera, force=args.force, label_name=args.label_name, device=args.device,
        **scoring_options(args))
    s = relabel(cfg)
    rate = s.frames / s.seconds if s.seconds else 0.0
    print(f"relabelled {len(s.written)} episode(s), {s.frames} frames ({rate:.1f} frames/s) into {s.out}"
          + (f" (camera {s.camera})" if s.camera else "")
          + (f"; skipped {len(s.skipped)} already labelled" if s.skipped else ""))
    return 0
