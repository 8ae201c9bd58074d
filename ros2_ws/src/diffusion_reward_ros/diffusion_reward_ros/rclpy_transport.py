"""`diffusion_reward.transport.Transport` on rclpy: the nodes of `diffusion_reward.nodes` on a ROS 2 install.

Messages cross the boundary by type name: our dataclass `sensor_msgs/msg/Image` <-> rclpy's
`sensor_msgs.msg.Image`, copied field by field (recursively), with numeric sequences moved as whole
buffers (array.array / numpy) so a 640x480 image is not copied one byte at a time.
"""
from __future__ import annotations

import array
import dataclasses
from typing import Any, Callable

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosidl_runtime_py.utilities import get_message

from diffusion_reward.msgs import BY_TYPE_NAME
from diffusion_reward.transport.base import DEFAULT_QOS, Publisher, QoS, Subscription, Timer, Transport

# rosidl element type -> (array.array typecode, numpy dtype)
_NUMERIC = {
    "octet": ("B", np.uint8), "uint8": ("B", np.uint8), "int8": ("b", np.int8),
    "uint16": ("H", np.uint16), "int16": ("h", np.int16), "uint32": ("I", np.uint32), "int32": ("i", np.int32),
    "uint64": ("Q", np.uint64), "int64": ("q", np.int64), "float": ("f", np.float32), "double": ("d", np.float64),
}


def _element_type(field_type: str) -> tuple[str, str]:
    """'sequence<double, 3>' -> ('sequence', 'double'); 'double[9]' -> ('array', 'double'); 'double' -> ('', 'double')."""
    if field_type.startswith("sequence<"):
        return "sequence", field_type[len("sequence<"):-1].split(",")[0].strip()
    if field_type.endswith("]"):
        return "array", field_type[:field_type.index("[")]
    return "", field_type


def _ros_type_name(element: str) -> str:
    """'sensor_msgs/Image' (rosidl field type) -> 'sensor_msgs/msg/Image'."""
    pkg, name = element.split("/")[0], element.split("/")[-1]
    return f"{pkg}/msg/{name}"


def to_ros(obj: Any) -> Any:
    """rclpy message from one of our message dataclasses."""
    ros_cls = get_message(obj.__msgtype__)
    msg = ros_cls()
    for name, field_type in ros_cls.get_fields_and_field_types().items():
        kind, element = _element_type(field_type)
        value = getattr(obj, name)
        if "/" in element:  # nested message(s)
            value = [to_ros(v) for v in value] if kind else to_ros(value)
        elif element in _NUMERIC and kind:
            code, dtype = _NUMERIC[element]
            flat = np.frombuffer(value, np.uint8) if isinstance(value, (bytes, bytearray)) else np.asarray(value)
            flat = np.ascontiguousarray(flat, dtype=dtype).reshape(-1)
            value = array.array(code, flat.tobytes()) if kind == "sequence" else flat
        elif element == "octet":
            value = bytes([int(value)])
        elif element in ("float", "double"):
            value = float(value)
        elif element == "boolean":
            value = bool(value)
        elif element in _NUMERIC:
            value = int(value)
        elif kind:
            value = list(value)
        setattr(msg, name, value)
    return msg


def from_ros(msg: Any, cls: type) -> Any:
    """One of our message dataclasses from an rclpy message."""
    types = type(msg).get_fields_and_field_types()
    template = cls()
    kwargs = {}
    for f in dataclasses.fields(cls):
        value = getattr(msg, f.name)
        kind, element = _element_type(types[f.name])
        default = getattr(template, f.name)
        if "/" in element:
            sub = BY_TYPE_NAME[_ros_type_name(element)]
            value = [from_ros(v, sub) for v in value] if kind else from_ros(value, sub)
        elif isinstance(default, bytes):
            value = bytes(value)
        elif isinstance(default, np.ndarray):
            value = np.array(value, dtype=default.dtype)
        elif element == "octet":
            value = value[0] if isinstance(value, (bytes, bytearray)) else int(value)
        elif kind:
            value = list(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def qos_profile(qos: QoS) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=qos.depth,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.latched else DurabilityPolicy.VOLATILE,
        reliability=ReliabilityPolicy.RELIABLE if qos.reliable else ReliabilityPolicy.BEST_EFFORT,
    )


class _RclpyPublisher(Publisher):
    def __init__(self, publisher):
        self._publisher = publisher

    def publish(self, msg: Any) -> None:
        self._publisher.publish(to_ros(msg))


class _RclpyTimer(Timer):
    def __init__(self, timer):
        self._timer = timer

    def cancel(self) -> None:
        self._timer.cancel()


class RclpyTransport(Transport):
    """One rclpy node. Parameters, remaps, namespaces and `use_sim_time` come from the usual `--ros-args`."""

    def __init__(self, name: str, args: list[str] | None = None):
        self.node = Node(name, cli_args=args)
        super().__init__(self.node.get_name())  # a launch file's `name=` wins over the default
        self._subscriptions = []  # rclpy drops callbacks of unreferenced subscriptions

    def create_publisher(self, msg_type: type, topic: str, qos: QoS = DEFAULT_QOS) -> Publisher:
        ros_type = get_message(msg_type.__msgtype__)
        return _RclpyPublisher(self.node.create_publisher(ros_type, topic, qos_profile(qos)))

    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoS = DEFAULT_QOS) -> Subscription:
        ros_type = get_message(msg_type.__msgtype__)
        counts = Subscription()  # rclpy does not report messages dropped or lost: those stay 0

        def deliver(ros_msg) -> None:
            counts.received += 1
            callback(from_ros(ros_msg, msg_type))

        self._subscriptions.append(self.node.create_subscription(ros_type, topic, deliver, qos_profile(qos)))
        return counts

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        return _RclpyTimer(self.node.create_timer(period_s, callback))  # runs on the node clock (sim time aware)

    def declare_parameter(self, name: str, default: Any, description: str = "", read_only: bool = False) -> Any:
        descriptor = ParameterDescriptor(description=description, dynamic_typing=default == [], read_only=read_only)
        return self.node.declare_parameter(name, default, descriptor).value

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def log(self, level: str, message: str) -> None:
        getattr(self.node.get_logger(), "warning" if level == "warn" else level)(message)

    def spin(self) -> None:
        rclpy.spin(self.node)

    def shutdown(self) -> None:
        self.node.destroy_node()

    def resolve(self, topic: str) -> str:
        return expand_topic_name(topic, self.node.get_name(), self.node.get_namespace())
