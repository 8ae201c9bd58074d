"""The ROS 2 messages the nodes speak, defined once as plain dataclasses.

Field names, order and types follow the ROS 2 `.msg` definitions exactly (Humble and Jazzy agree
for all of these), so the same objects are converted to rclpy messages by the rclpy transport and
serialised to CDR by the DDS transport. `__msgtype__` is the ROS type name.

Sequences of primitives are numpy arrays (`float64[]` -> float64 array, `uint8[]` -> bytes for
image payloads). The per-frame reward is published as `geometry_msgs/msg/Vector3Stamped`:
`header` = the source image's header, `vector.x` = standardised reward, `vector.y` = raw model
score, `vector.z` = processing latency in seconds (see README "ROS 2 interfaces").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _f64(values=()) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


@dataclass
class Time:
    __msgtype__ = "builtin_interfaces/msg/Time"
    sec: int = 0
    nanosec: int = 0

    @classmethod
    def from_ns(cls, ns: int) -> "Time":
        return cls(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))

    def to_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec


@dataclass
class Duration:
    __msgtype__ = "builtin_interfaces/msg/Duration"
    sec: int = 0
    nanosec: int = 0


@dataclass
class Header:
    __msgtype__ = "std_msgs/msg/Header"
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
class Image:
    __msgtype__ = "sensor_msgs/msg/Image"
    header: Header = field(default_factory=Header)
    height: int = 0
    width: int = 0
    encoding: str = ""
    is_bigendian: int = 0
    step: int = 0
    data: bytes = b""


@dataclass
class CompressedImage:
    __msgtype__ = "sensor_msgs/msg/CompressedImage"
    header: Header = field(default_factory=Header)
    format: str = ""
    data: bytes = b""


@dataclass
class RegionOfInterest:
    __msgtype__ = "sensor_msgs/msg/RegionOfInterest"
    x_offset: int = 0
    y_offset: int = 0
    height: int = 0
    width: int = 0
    do_rectify: bool = False


@dataclass
class CameraInfo:
    __msgtype__ = "sensor_msgs/msg/CameraInfo"
    header: Header = field(default_factory=Header)
    height: int = 0
    width: int = 0
    distortion_model: str = ""
    d: np.ndarray = field(default_factory=_f64)
    k: np.ndarray = field(default_factory=lambda: np.zeros(9))  # float64[9]
    r: np.ndarray = field(default_factory=lambda: np.zeros(9))  # float64[9]
    p: np.ndarray = field(default_factory=lambda: np.zeros(12))  # float64[12]
    binning_x: int = 0
    binning_y: int = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)


@dataclass
class JointState:
    __msgtype__ = "sensor_msgs/msg/JointState"
    header: Header = field(default_factory=Header)
    name: list[str] = field(default_factory=list)
    position: np.ndarray = field(default_factory=_f64)
    velocity: np.ndarray = field(default_factory=_f64)
    effort: np.ndarray = field(default_factory=_f64)


@dataclass
class Vector3:
    __msgtype__ = "geometry_msgs/msg/Vector3"
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Vector3Stamped:
    __msgtype__ = "geometry_msgs/msg/Vector3Stamped"
    header: Header = field(default_factory=Header)
    vector: Vector3 = field(default_factory=Vector3)


@dataclass
class Twist:
    __msgtype__ = "geometry_msgs/msg/Twist"
    linear: Vector3 = field(default_factory=Vector3)
    angular: Vector3 = field(default_factory=Vector3)


@dataclass
class TwistStamped:
    __msgtype__ = "geometry_msgs/msg/TwistStamped"
    header: Header = field(default_factory=Header)
    twist: Twist = field(default_factory=Twist)


@dataclass
class JointTrajectoryPoint:
    __msgtype__ = "trajectory_msgs/msg/JointTrajectoryPoint"
    positions: np.ndarray = field(default_factory=_f64)
    velocities: np.ndarray = field(default_factory=_f64)
    accelerations: np.ndarray = field(default_factory=_f64)
    effort: np.ndarray = field(default_factory=_f64)
    time_from_start: Duration = field(default_factory=Duration)


@dataclass
class JointTrajectory:
    __msgtype__ = "trajectory_msgs/msg/JointTrajectory"
    header: Header = field(default_factory=Header)
    joint_names: list[str] = field(default_factory=list)
    points: list[JointTrajectoryPoint] = field(default_factory=list)


@dataclass
class MultiArrayDimension:
    __msgtype__ = "std_msgs/msg/MultiArrayDimension"
    label: str = ""
    size: int = 0
    stride: int = 0


@dataclass
class MultiArrayLayout:
    __msgtype__ = "std_msgs/msg/MultiArrayLayout"
    dim: list[MultiArrayDimension] = field(default_factory=list)
    data_offset: int = 0


@dataclass
class Float64MultiArray:
    __msgtype__ = "std_msgs/msg/Float64MultiArray"
    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: np.ndarray = field(default_factory=_f64)


@dataclass
class Bool:
    __msgtype__ = "std_msgs/msg/Bool"
    data: bool = False


@dataclass
class Empty:
    __msgtype__ = "std_msgs/msg/Empty"


@dataclass
class String:
    __msgtype__ = "std_msgs/msg/String"
    data: str = ""


@dataclass
class KeyValue:
    __msgtype__ = "diagnostic_msgs/msg/KeyValue"
    key: str = ""
    value: str = ""


@dataclass
class DiagnosticStatus:
    __msgtype__ = "diagnostic_msgs/msg/DiagnosticStatus"
    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3
    level: int = 0  # byte
    name: str = ""
    message: str = ""
    hardware_id: str = ""
    values: list[KeyValue] = field(default_factory=list)


@dataclass
class DiagnosticArray:
    __msgtype__ = "diagnostic_msgs/msg/DiagnosticArray"
    header: Header = field(default_factory=Header)
    status: list[DiagnosticStatus] = field(default_factory=list)


@dataclass
class Clock:
    __msgtype__ = "rosgraph_msgs/msg/Clock"  # simulated time on /clock (`use_sim_time`)
    clock: Time = field(default_factory=Time)


ALL_MESSAGES = [
    Time, Duration, Header, Image, CompressedImage, RegionOfInterest, CameraInfo, JointState, Vector3,
    Vector3Stamped, Twist, TwistStamped, JointTrajectoryPoint, JointTrajectory, MultiArrayDimension,
    MultiArrayLayout, Float64MultiArray, Bool, Empty, String, KeyValue, DiagnosticStatus, DiagnosticArray, Clock,
]
BY_TYPE_NAME = {m.__msgtype__: m for m in ALL_MESSAGES}
