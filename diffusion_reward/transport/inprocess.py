"""Nodes wired together inside one Python process: deterministic tests and offline replays.

    bus = InProcessBus()                                   # manual clock: time moves only when told to
    cam = InProcessTransport("camera", bus)
    lab = InProcessTransport("reward_labeller", bus, params={"model_path": "m.safetensors"})
    node = RewardLabellerNode(lab)
    pub = cam.create_publisher(Image, "/camera/camera/color/image_raw", SENSOR_DATA_QOS)
    pub.publish(img); bus.spin_until_idle()                # deliver queued messages, run due timers
    bus.advance(1.0)                                       # move the clock; timers fire at each deadline

It behaves like ROS 2 where the nodes can tell: every subscription has its own keep-last queue of
`qos.depth` messages (older ones are dropped and counted when callbacks fall behind), a reliable
subscription does not connect to a best-effort publisher, a latched one (`QoS.latched`) gets the last messages
of latched publishers when it joins, subscribers receive their own copy of each
message, callbacks of all nodes on one bus run one at a time (a single-threaded executor), and
`publish` may be called from any thread. Timers run on the bus clock, or on simulated time for nodes
with `use_sim_time` (set by `bus.set_sim_time(ns)` or by publishing a `rosgraph_msgs/msg/Clock`-shaped
message, one with a `clock` Time field, on `/clock`); `now_ns()` returns 0 until sim time is first set,
as in ROS. `realtime=True` follows the system clock instead, for live replays (`spin()` then runs timers
on time).
"""
from __future__ import annotations

import copy
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .base import (DEFAULT_QOS, OverrideParameters, Publisher, QoS, Subscription, Timer, Transport, check_log_level,
                   timer_schedule)

_PY_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
              "fatal": logging.CRITICAL}
START_NS = 1_700_000_000 * 1_000_000_000  # manual clock origin: a fixed, realistic epoch time


@dataclass(eq=False)
class _Subscription(Subscription):
    transport: "InProcessTransport"
    msg_type: type
    topic: str
    callback: Callable[[Any], None]
    qos: QoS
    queue: deque = field(default_factory=deque)  # (sequence number, message)
    received: int = 0
    dropped: int = 0  # overwritten in the keep-last queue before the callback could run
    lost: int = 0  # nothing is lost between in-process nodes


@dataclass(eq=False)
class _Timer(Timer):
    transport: "InProcessTransport"
    period_ns: int
    callback: Callable[[], None]
    next_ns: int | None  # None: sim time not started yet
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class _Publisher(Publisher):
    def __init__(self, transport: "InProcessTransport", msg_type: type, topic: str, qos: QoS):
        self.transport, self.bus, self.msg_type, self.topic, self.qos = transport, transport.bus, msg_type, topic, qos
        self.kept: deque = deque(maxlen=qos.depth)  # latched: the last `depth` messages, for later subscribers

    def publish(self, msg: Any) -> None:
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"publisher on {self.topic} expects {self.msg_type.__name__}, got {type(msg).__name__}")
        self.bus._publish(self, msg)


class InProcessBus:
    """The graph: topics, the clocks and the executor shared by every `InProcessTransport` on it."""

    def __init__(self, start_ns: int = START_NS, realtime: bool = False):
        self.realtime = realtime
        self._wall_ns = start_ns
        self._sim_ns = 0
        self._subs: dict[str, list[_Subscription]] = {}
        self._latched: dict[str, list[_Publisher]] = {}  # topic -> latched publishers that have published
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()  # guards queues, timers and clocks
        self._exec_lock = threading.RLock()  # one callback at a time, like a single-threaded executor

    # -- clocks --------------------------------------------------------------------------------
    def wall_ns(self) -> int:
        return time.time_ns() if self.realtime else self._wall_ns

    def sim_ns(self) -> int:
        return self._sim_ns

    def advance(self, dt_s: float) -> None:
        """Move the manual clock forward by `dt_s`, firing every timer deadline on the way, in order."""
        if self.realtime:
            raise RuntimeError("advance() needs the manual clock (InProcessBus(realtime=False))")
        self._run_clock_to(self._wall_ns + round(dt_s * 1e9), sim=False)

    def set_sim_time(self, ns: int) -> None:
        """Set simulated time (what `/clock` carries); timers of `use_sim_time` nodes fire up to it."""
        self._run_clock_to(int(ns), sim=True)

    def _run_clock_to(self, target_ns: int, sim: bool) -> None:
        with self._cond:
            if sim:
                self._start_sim_time(target_ns)
        while True:
            self.spin_until_idle()
            with self._cond:
                due = [t.next_ns for t in self._timers
                       if t.transport.use_sim_time == sim and t.next_ns is not None and t.next_ns <= target_ns]
                step = min(due, default=target_ns)
                if sim:
                    self._sim_ns = step
                else:
                    self._wall_ns = step
            if not due:
                self.spin_until_idle()
                return

    def _start_sim_time(self, ns: int) -> None:
        """Timers of sim-time nodes count from the first sim time seen, and restart when time jumps back."""
        if self._sim_ns == 0 or ns < self._sim_ns:
            self._sim_ns = ns
            for t in self._timers:
                if t.transport.use_sim_time:
                    t.next_ns = ns + t.period_ns

    # -- executor ------------------------------------------------------------------------------
    def spin_once(self, timeout_s: float = 0.0) -> int:
        """Run every callback that is ready now (queued messages in publish order, then due timers).

        Waits up to `timeout_s` for work when there is none. Returns the number of callbacks run.
        """
        with self._exec_lock:
            work = self._take_ready()
            if not work and timeout_s > 0:
                with self._cond:
                    self._cond.wait(timeout_s)
                work = self._take_ready()
            for callback, arg in work:
                callback(arg) if arg is not _NO_ARG else callback()
            return len(work)

    def spin_until_idle(self, max_callbacks: int = 1_000_000) -> int:
        """Spin until no message is queued and no timer is due; returns the number of callbacks run."""
        total = 0
        while (ran := self.spin_once()) and total < max_callbacks:
            total += ran
        return total

    def _take_ready(self) -> list[tuple[Callable, Any]]:
        with self._cond:
            heads = []
            for subs in self._subs.values():
                for sub in subs:
                    heads.extend((seq, id(sub), sub, msg) for seq, msg in sub.queue)
                    sub.queue.clear()
            work: list[tuple[Callable, Any]] = [(s.callback, m) for _, _, s, m in heapq.nsmallest(len(heads), heads)]
            wall, sim = self.wall_ns(), self._sim_ns
            for t in self._timers:
                now = sim if t.transport.use_sim_time else wall
                if not t.cancelled and t.next_ns is not None and t.next_ns <= now:
                    # a late timer fires once and its next deadline moves past `now` (as rcl does)
                    missed = (now - t.next_ns) // t.period_ns
                    t.next_ns += (missed + 1) * t.period_ns
                    work.append((t.callback, _NO_ARG))
            self._timers = [t for t in self._timers if not t.cancelled]
            return work

    # -- graph ---------------------------------------------------------------------------------
    def _publish(self, pub: _Publisher, msg: Any) -> None:
        with self._cond:
            if pub.topic == "/clock" and hasattr(msg, "clock"):  # rosgraph_msgs/msg/Clock
                self._start_sim_time(msg.clock.to_ns())
                self._sim_ns = msg.clock.to_ns()
            if pub.qos.latched:
                latched = self._latched.setdefault(pub.topic, [])
                if pub not in latched:
                    latched.append(pub)
                pub.kept.append(copy.deepcopy(msg))
            for sub in self._subs.get(pub.topic, []):
                if _connects(pub, sub):
                    self._deliver(sub, msg)
            self._cond.notify_all()

    def _deliver(self, sub: _Subscription, msg: Any) -> None:
        if len(sub.queue) >= sub.qos.depth:
            sub.queue.popleft()
            sub.dropped += 1
        sub.queue.append((next(self._seq), copy.deepcopy(msg)))
        sub.received += 1

    def subscriptions(self, topic: str) -> list[_Subscription]:
        """The subscriptions on `topic` (with their `received` / `dropped` counts), for tests."""
        with self._cond:
            return list(self._subs.get(topic, []))

    def _add_subscription(self, sub: _Subscription) -> None:
        with self._cond:
            self._subs.setdefault(sub.topic, []).append(sub)
            if sub.qos.latched:  # a late joiner gets what latched publishers kept
                for pub in self._latched.get(sub.topic, []):
                    if _connects(pub, sub):
                        for msg in pub.kept:
                            self._deliver(sub, msg)
                self._cond.notify_all()

    def _add_timer(self, timer: _Timer) -> None:
        with self._cond:
            self._timers.append(timer)

    def _remove(self, transport: "InProcessTransport") -> None:
        with self._cond:
            for topic, subs in self._subs.items():
                self._subs[topic] = [s for s in subs if s.transport is not transport]
            for topic, pubs in self._latched.items():
                self._latched[topic] = [p for p in pubs if p.transport is not transport]
            for t in self._timers:
                if t.transport is transport:
                    t.cancelled = True
            self._cond.notify_all()


_NO_ARG = object()


def _connects(pub: _Publisher, sub: _Subscription) -> bool:
    """Whether ROS 2 would match the two endpoints: the same type, and QoS the publisher offers at least as strong
    as the subscriber asks (reliability, durability)."""
    return (sub.msg_type.__msgtype__ == pub.msg_type.__msgtype__ and not (sub.qos.reliable and not pub.qos.reliable)
            and not (sub.qos.latched and not pub.qos.latched))


class InProcessTransport(OverrideParameters, Transport):
    """One node on an `InProcessBus`. `params` overrides declared defaults (e.g. from a parameter YAML)."""

    def __init__(self, name: str, bus: InProcessBus, params: dict[str, Any] | None = None,
                 use_sim_time: bool = False):
        super().__init__(name)
        self.bus = bus
        self._init_parameters(params, use_sim_time)
        self.logs: list[tuple[str, str]] = []  # (level, message), newest last
        self._logger = logging.getLogger(f"diffusion_reward.node.{name}")
        self._shutdown = threading.Event()

    def create_publisher(self, msg_type: type, topic: str, qos: QoS = DEFAULT_QOS) -> Publisher:
        return _Publisher(self, msg_type, self.resolve(topic), qos)

    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoS = DEFAULT_QOS) -> Subscription:
        if qos.depth < 1:
            raise ValueError("QoS depth must be >= 1")
        sub = _Subscription(self, msg_type, self.resolve(topic), callback, qos)
        self.bus._add_subscription(sub)
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        period_ns, first = timer_schedule(period_s, self.now_ns(), self.use_sim_time)
        timer = _Timer(self, period_ns, callback, first)
        self.bus._add_timer(timer)
        return timer


    def now_ns(self) -> int:
        return self.bus.sim_ns() if self.use_sim_time else self.bus.wall_ns()

    def log(self, level: str, message: str) -> None:
        check_log_level(level)
        self.logs.append((level, message))
        self._logger.log(_PY_LEVELS[level], "[%s] %s", self.name, message)

    def spin(self) -> None:
        while not self._shutdown.is_set():
            self.bus.spin_once(timeout_s=0.05)

    def shutdown(self) -> None:
        self._shutdown.set()
        self.bus._remove(self)
