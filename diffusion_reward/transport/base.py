"""The small interface every node is written against: subscribe, publish, timer, parameters, clock.

Messages are the dataclasses of `diffusion_reward.msgs`. Times are integer nanoseconds.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import UserError


@dataclass(frozen=True)
class QoS:
    """The subset of ROS 2 QoS the nodes use (history is always KEEP_LAST). `latched`: durability TRANSIENT_LOCAL,
    a publisher keeps its last `depth` messages for subscribers that join later (a latched subscriber connects only
    to a latched publisher, as in ROS 2); otherwise VOLATILE."""

    reliable: bool = True
    depth: int = 10
    latched: bool = False


DEFAULT_QOS = QoS(reliable=True, depth=10)  # rclpy default profile
SENSOR_DATA_QOS = QoS(reliable=False, depth=5)  # rclpy.qos.qos_profile_sensor_data
LATCHED_QOS = QoS(reliable=True, depth=1, latched=True)  # the last message, for late joiners (e.g. /robot_description)


class Subscription:
    """What `create_subscription` returns: how many messages the callback got and how many it never saw.

    `received`: delivered to the callback. `dropped`: overwritten in the keep-last queue of `qos.depth` before
    the callback could run (the node fell behind). `lost`: never reached that queue (DDS: arrived at a full
    reader cache, or a best-effort sample lost on the way). A transport that cannot see a loss reports 0."""

    received: int = 0
    dropped: int = 0
    lost: int = 0


class Publisher(abc.ABC):
    @abc.abstractmethod
    def publish(self, msg: Any) -> None: ...


class Timer(abc.ABC):
    @abc.abstractmethod
    def cancel(self) -> None: ...


LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


def check_log_level(level: str) -> int:
    """The rank of a log level (LOG_LEVELS); ValueError for anything else (a bug in the caller)."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {LOG_LEVELS}, got {level!r}")
    return LOG_LEVELS.index(level)


def timer_schedule(period_s: float, now_ns: int, use_sim_time: bool) -> tuple[int, int | None]:
    """(period ns, first deadline ns) of a new timer; the deadline is None while sim time has not started (no
    /clock yet): such a timer starts counting at the first clock message, as in rclpy."""
    if not period_s > 0:
        raise ValueError("timer period must be > 0")
    period_ns = round(period_s * 1e9)
    return period_ns, None if (use_sim_time and now_ns == 0) else now_ns + period_ns


class Transport(abc.ABC):
    """One node's connection to the graph. `name` is the node name (used for `~/` topics)."""

    warns_on_missed_messages = False  # True: the transport itself logs dropped / lost messages per subscription

    def __init__(self, name: str):
        self.name = name

    # -- graph -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_publisher(self, msg_type: type, topic: str, qos: QoS = DEFAULT_QOS) -> Publisher: ...

    @abc.abstractmethod
    def create_subscription(
        self, msg_type: type, topic: str, callback: Callable[[Any], None], qos: QoS = DEFAULT_QOS
    ) -> Subscription: ...

    @abc.abstractmethod
    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer: ...

    # -- parameters --------------------------------------------------------------------------------
    @abc.abstractmethod
    def declare_parameter(self, name: str, default: Any, description: str = "", read_only: bool = False) -> Any:
        """Declare a parameter with its default; return the value in force (override or default).
        `read_only`: it is read only at start-up, so setting it later is refused (ROS: `ros2 param set` fails)."""

    # -- time and logging ------------------------------------------------------------------------
    @abc.abstractmethod
    def now_ns(self) -> int:
        """Node clock in ns: simulated time when `use_sim_time` is true, else wall time."""

    @abc.abstractmethod
    def log(self, level: str, message: str) -> None:
        """level: 'debug' | 'info' | 'warn' | 'error' | 'fatal'."""

    # -- lifecycle ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def spin(self) -> None:
        """Process callbacks until shutdown."""

    @abc.abstractmethod
    def shutdown(self) -> None: ...

    def resolve(self, topic: str) -> str:
        """Expand a private `~/x` topic to `/<node>/x`; absolute and relative names pass through."""
        if topic.startswith("~/"):
            return f"/{self.name}/{topic[2:]}"
        return topic if topic.startswith("/") else f"/{topic}"


class OverrideParameters:
    """Parameters as plain overrides (parameter YAML / command line) over declared defaults: what the rclpy-free
    transports share. `use_sim_time` is taken out of the overrides, as ROS does."""

    def _init_parameters(self, params: dict[str, Any] | None, use_sim_time: bool = False) -> None:
        self.overrides = dict(params or {})
        self.use_sim_time = bool(self.overrides.pop("use_sim_time", use_sim_time))
        self.parameters: dict[str, Any] = {"use_sim_time": self.use_sim_time}
        self.descriptions: dict[str, str] = {}
        self.read_only: set[str] = set()

    def declare_parameter(self, name: str, default: Any, description: str = "", read_only: bool = False) -> Any:
        if name in self.descriptions:
            raise UserError(f"parameter '{name}' is declared twice on node '{self.name}'")
        value = self.overrides.get(name, default)
        self.parameters[name] = value
        self.descriptions[name] = description
        if read_only:
            self.read_only.add(name)
        return value

    def undeclared_overrides(self) -> list[str]:
        """Overrides no parameter was declared for (ROS ignores them; typos show up here)."""
        return sorted(set(self.overrides) - set(self.parameters))
