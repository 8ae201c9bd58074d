"""One state layout per robot: the vectors a robot episode stores, built from ROS 2 messages by the same functions
whether the episode is recorded live (`nodes/episode_recorder.py`) or relabelled from a rosbag2
(`data/sources/rosbag.py`). The layout is written down once, in `data/FORMAT.md` ("Robot state layout"):

- `obs/state`  = for each of `state_fields` (default position, velocity), that field of each of `joint_names`
  (default the FR3's fr3_joint1..7), in that order: 14 float32 for the Franka arm;
- `obs/gripper` = the positions of `gripper_joint_names` (default fr3_finger_joint1, fr3_finger_joint2);
- `actions`    = a JointTrajectory command's last point's positions, in `joint_names` order.

Works on any JointState / JointTrajectory object with ROS's field names (our `msgs` dataclasses, rosbags' types).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError, named

FR3_JOINTS = [f"fr3_joint{i}" for i in range(1, 8)]
FR3_FINGERS = ["fr3_finger_joint1", "fr3_finger_joint2"]
STATE_FIELDS = ("position", "velocity", "effort")
DEFAULT_STATE_FIELDS = ("position", "velocity")
DEFAULT_STATE_TOPIC = "/franka/joint_states"
DEFAULT_GRIPPER_TOPIC = "/franka_gripper/joint_states"


class MissingJointsError(ValueError):
    pass


def joint_vector(msg, names: list[str], fields) -> np.ndarray:
    """f32 [fields x names] from a JointState, in `names` order; MissingJointsError if anything is absent."""
    joints = list(msg.name)
    index = {n: i for i, n in enumerate(joints)}
    missing = [n for n in names if n not in index]
    if missing:
        raise MissingJointsError(f"joint state has no {', '.join(missing)} (it has {', '.join(joints) or 'none'})")
    parts = []
    for f in fields:
        values = np.asarray(getattr(msg, f), dtype=np.float64)
        if len(values) != len(joints):
            raise MissingJointsError(f"joint state '{f}' has {len(values)} values for {len(joints)} joints")
        parts.append(values[[index[n] for n in names]])
    return np.concatenate(parts).astype(np.float32)


def state_vector(msg, joint_names: list[str] = FR3_JOINTS, state_fields=DEFAULT_STATE_FIELDS) -> np.ndarray:
    """`obs/state` of one arm JointState."""
    return joint_vector(msg, joint_names, state_fields)


def gripper_vector(msg, gripper_joint_names: list[str] = FR3_FINGERS) -> np.ndarray:
    """`obs/gripper` of one gripper / hand JointState: the finger positions."""
    return joint_vector(msg, gripper_joint_names, ("position",))


def command_vector(msg, joint_names: list[str] = FR3_JOINTS) -> np.ndarray:
    """The action of one JointTrajectory command: its last point's positions (where the controller is sent), in
    `joint_names` order; MissingJointsError when it has no points, lacks a joint or its positions do not fit."""
    if not len(msg.points):
        raise MissingJointsError("joint trajectory has no points")
    index = {n: i for i, n in enumerate(msg.joint_names)}
    missing = [n for n in joint_names if n not in index]
    if missing:
        raise MissingJointsError(f"joint trajectory has no {', '.join(missing)} (it has "
                                 f"{', '.join(msg.joint_names) or 'none'})")
    positions = np.asarray(msg.points[-1].positions, np.float64)
    if len(positions) != len(msg.joint_names):
        raise MissingJointsError(f"joint trajectory has {len(positions)} positions for {len(msg.joint_names)} joints")
    return positions[[index[n] for n in joint_names]].astype(np.float32)


def check_state_fields(fields, what: str = "state_fields") -> tuple[str, ...]:
    fields = tuple(fields)
    bad = [f for f in fields if f not in STATE_FIELDS]
    if bad or not fields:
        raise UserError(f"{named(what)} must list some of {', '.join(STATE_FIELDS)}, got {','.join(fields) or 'nothing'}")
    return fields


@dataclass(frozen=True)
class StateLayout:
    """How a recording without a recorder's parameters (a bag) is laid out; the recorder's defaults. `None` joint
    names: the FR3's when the first message has them all, else every joint of the first message, in its order."""

    joint_names: tuple[str, ...] | None = None
    state_fields: tuple[str, ...] = DEFAULT_STATE_FIELDS
    gripper_joint_names: tuple[str, ...] | None = None

    def __post_init__(self):
        check_state_fields(self.state_fields)

    def arm_joints(self, first_message_joints) -> list[str]:
        return _resolve(self.joint_names, FR3_JOINTS, first_message_joints)

    def gripper_joints(self, first_message_joints) -> list[str]:
        return _resolve(self.gripper_joint_names, FR3_FINGERS, first_message_joints)


def _resolve(requested, default: list[str], available) -> list[str]:
    if requested:
        return list(requested)
    available = list(available)
    return list(default) if set(default) <= set(available) else available
