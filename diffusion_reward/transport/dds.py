"""ROS 2 wire-compatible transport on Cyclone DDS, without a ROS install.

    transport = DdsTransport("reward_labeller", params={"model_path": "m.safetensors"}, config="loopback")
    node = RewardLabellerNode(transport)
    transport.spin()                      # until transport.shutdown() (e.g. from a SIGINT handler)

What ROS 2 (rmw_cyclonedds_cpp, rmw_fastrtps_cpp) expects on the wire, and what this sends:
- DDS topic `rt/<ros topic>` (`/camera/image` -> `rt/camera/image`);
- DDS type name `<pkg>::msg::dds_::<Name>_` (`sensor_msgs::msg::dds_::Image_`);
- payload = plain CDR little endian (XCDR1) from `cdr.py`, byte-equal to what rosbag2 stores;
- QoS: reliable / best effort, keep-last depth, volatile or transient-local (latched), XCDR1 data representation.

The bytes from `cdr.serialize` go on the wire unchanged: each topic is registered with a Cyclone DDS
type that mirrors the ROS message (built from the same `cdr.MSG_DEFS`), but samples are written and
taken as serialized bytes (`ddspy_write` / `ddspy_take`), so the slow per-element Python serialiser of
cyclonedds is never used and a 640x480 image costs two memory copies. Cyclone DDS still validates every
sample against the type ("normalize") on both ends, so a payload that does not fit the declared type is
rejected by DDS itself. Pinned to cyclonedds==11.0.1 (`ddspy_write`/`ddspy_take` are its C-layer API).

Callbacks and timers run in the thread that calls `spin()` / `spin_once()`, one at a time, like
rclpy's single-threaded executor; `publish` may be called from any thread. Messages that arrive together
are delivered in source-timestamp order.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable
from xml.etree import ElementTree

from cyclonedds._clayer import ddspy_take, ddspy_write
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription
from cyclonedds.core import (DDSException, GuardCondition, InstanceState, Policy, Qos, ReadCondition,
                             SampleState, ViewState, WaitSet)
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import make_idl_struct
from cyclonedds.idl import types as idl
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from .. import msgs
from ..errors import UserError
from . import cdr
from .base import (DEFAULT_QOS, LOG_LEVELS, OverrideParameters, Publisher, QoS, Subscription, Timer, Transport,
                   check_log_level, timer_schedule)

LOOPBACK_CONFIG = Path(__file__).with_name("dds_loopback.xml")
_ANY_SAMPLE = SampleState.Any | ViewState.Any | InstanceState.Any
_GRAPH_CHECK_NS = 500_000_000  # how often peers' types and QoS are checked for mismatches
_MAX_WAIT_S = 0.1  # upper bound on one wait, so signal handlers run promptly
_READER_HISTORY = 32  # DDS keeps up to this many samples per reader; we keep the QoS depth and count the rest
_TYPE_CONSISTENCY_POLICY_ID = 24  # Cyclone reports a type mismatch as this "incompatible QoS"
_POLICY_NAMES = {2: "durability", 11: "reliability", 23: "data representation"}

_IDL_PRIMITIVES = {
    "bool": bool, "byte": idl.byte, "char": idl.uint8, "uint8": idl.uint8, "int8": idl.int8,
    "uint16": idl.uint16, "int16": idl.int16, "uint32": idl.uint32, "int32": idl.int32, "uint64": idl.uint64,
    "int64": idl.int64, "float32": idl.float32, "float64": idl.float64, "string": str,
}


def dds_topic_name(ros_topic: str) -> str:
    """`/camera/image` -> `rt/camera/image` (ROS 2's prefix for topics)."""
    return "rt" + ros_topic


@lru_cache(maxsize=None)
def idl_type(msgtype: str) -> type:
    """A cyclonedds struct mirroring the ROS message, named as ROS 2 names it on DDS (`pkg::msg::dds_::X_`)."""
    fields = {}
    for f in cdr.fields_of(msgtype):
        base = _IDL_PRIMITIVES.get(f.type) or idl_type(f.type)
        fields[f.name] = base if f.length is None else (
            idl.sequence[base] if f.length == 0 else idl.array[base, f.length])
    return make_idl_struct(msgtype.rsplit("/", 1)[-1] + "_", cdr.dds_type_name(msgtype), fields)


def dds_qos(qos: QoS, reader_cache: int | None = None) -> Qos:
    """The DDS QoS for a ROS QoS. A reader gets `reader_cache` instead of keep-last: keep-all bounded to that
    many samples, so that a sample arriving at a full cache is never overwritten silently: DDS rejects it
    (counted) and a reliable writer sends it again later (back-pressure), a best-effort one loses it (counted)."""
    reliability = Policy.Reliability.Reliable(duration(milliseconds=100)) if qos.reliable \
        else Policy.Reliability.BestEffort
    history = Policy.History.KeepLast(qos.depth) if reader_cache is None else Policy.History.KeepAll
    limits = [] if reader_cache is None else [Policy.ResourceLimits(max_samples=reader_cache, max_instances=1,
                                                                     max_samples_per_instance=reader_cache)]
    durability = Policy.Durability.TransientLocal if qos.latched else Policy.Durability.Volatile
    return Qos(reliability, history, *limits, durability,
               Policy.DataRepresentation(use_cdrv0_representation=True))


def interface_config(interface: str) -> str:
    """Cyclone DDS XML that binds to one network interface (name or address), multicast as on ROS 2."""
    if not re.fullmatch(r"[A-Za-z0-9_.:%-]+", interface):
        raise UserError(f"network interface must be an interface name or address, got {interface!r}")
    return (f'<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface name="{interface}"/>'
            f"</Interfaces></General></Domain></CycloneDDS>")


def config_uri(config: str | os.PathLike | None) -> str | None:
    """`CYCLONEDDS_URI` value for `config`: None, "loopback", an XML file path or inline XML."""
    if config is None:
        return None
    config = os.fspath(config)
    if config == "loopback":
        return LOOPBACK_CONFIG.as_uri()
    if config.lstrip().startswith("<"):
        return config
    path = Path(config)
    if not path.is_file():
        raise UserError(f"DDS configuration file not found: {config}")
    try:
        ElementTree.parse(path)
    except ElementTree.ParseError as exc:  # Cyclone DDS would print its own parser error and fail vaguely
        raise UserError(f"DDS configuration file {config} is not XML ({exc})") from None
    return path.resolve().as_uri()


def default_domain_id() -> int:
    value = os.environ.get("ROS_DOMAIN_ID", "0") or "0"
    if not value.isdigit():
        raise UserError(f"ROS_DOMAIN_ID must be an integer, got {value!r}")
    return int(value)


def pad_sample(sample: bytearray) -> bytearray:
    """Pad a CDR sample in place to a multiple of 4 bytes and record the padding in the header's option
    bits, as Cyclone DDS's own serialiser does (readers ignore the padding)."""
    pad = -len(sample) % 4
    if pad:
        sample[3] = pad
        sample += b"\x00" * pad
    return sample


class DdsPublisher(Publisher):
    def __init__(self, writer: DataWriter, msg_type: type, topic: str):
        self.writer, self.msg_type, self.topic = writer, msg_type, topic

    def publish(self, msg: Any) -> None:
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"publisher on {self.topic} expects {self.msg_type.__name__}, got {type(msg).__name__}")
        self._write(pad_sample(cdr.encode(msg)))

    def publish_serialized(self, data: bytes) -> None:
        """Publish CDR bytes as they are (e.g. straight from a rosbag2 file)."""
        self._write(pad_sample(bytearray(data)))

    def _write(self, sample: bytearray) -> None:
        ret = ddspy_write(self.writer._ref, sample)
        if ret < 0:
            raise DDSException(ret, f"writing a {self.msg_type.__msgtype__} on {self.topic}")

    @property
    def subscription_count(self) -> int:
        """Matched subscriptions (as `rclpy` `Publisher.get_subscription_count()`)."""
        return len(self.writer.get_matched_subscriptions())


class _Subscription(Subscription):
    def __init__(self, reader: DataReader, msg_type: type, topic: str, callback: Callable[[Any], None],
                 depth: int):
        self.reader, self.msg_type, self.topic, self.callback, self.depth = reader, msg_type, topic, callback, depth
        self.received = 0
        self.dropped = 0  # older than the newest `depth` waiting when the node got to them (keep-last)
        self.missed_reported = 0  # dropped + lost already warned about
        self.malformed = 0
        self.foreign = 0  # samples from writers of another message type (dropped, as ROS 2 never connects them)
        self.incompatible_qos_seen = 0
        self._writer_type_ok: dict[int, bool] = {}

    def accepts_writer(self, publication_handle: int) -> bool:
        """Cyclone DDS matches structurally equal types with different names (XTypes assignability); ROS 2
        peers match on the type name only. Samples from a writer of another type name are not for us."""
        ok = self._writer_type_ok.get(publication_handle)
        if ok is None:
            endpoint = self.reader.get_matched_publication_data(publication_handle)
            ok = endpoint is None or endpoint.type_name == self.reader.topic.typename
            self._writer_type_ok[publication_handle] = ok
        return ok

    @property
    def lost(self) -> int:
        """Samples that never reached the reader cache: rejected by the full cache (`dds_qos`), or best-effort
        samples lost on the way (a gap in the writer's sequence numbers)."""
        return (self.reader.get_sample_rejected_status().total_count
                + self.reader.get_sample_lost_status().total_count)

    @property
    def publisher_count(self) -> int:
        """Matched publishers (as `rclpy` `Subscription.get_publisher_count()`)."""
        return len(self.reader.get_matched_publications())


class _Timer(Timer):
    def __init__(self, period_ns: int, callback: Callable[[], None], next_ns: int | None, sim: bool):
        self.period_ns, self.callback, self.next_ns, self.sim = period_ns, callback, next_ns, sim
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class DdsTransport(OverrideParameters, Transport):
    """One node = one DDS participant. `params` overrides declared parameter defaults."""

    warns_on_missed_messages = True  # each subscription's dropped + lost count, in `spin` (one warning per loss)

    def __init__(self, name: str, params: dict[str, Any] | None = None, domain_id: int | None = None,
                 config: str | os.PathLike | None = None, log_level: str = "info"):
        super().__init__(name)
        if log_level not in LOG_LEVELS:
            raise UserError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        self._min_level = LOG_LEVELS.index(log_level)
        self.domain_id = default_domain_id() if domain_id is None else int(domain_id)
        if not 0 <= self.domain_id <= 232:
            raise UserError(f"DDS domain id must be between 0 and 232, got {self.domain_id}")
        self._init_parameters(params)

        uri = config_uri(config)
        if uri is not None:
            os.environ["CYCLONEDDS_URI"] = uri  # read when the first participant of the domain is created
        try:
            self.participant = DomainParticipant(self.domain_id)
        except DDSException as exc:
            raise UserError(f"cannot join DDS domain {self.domain_id} ({exc}); check --network, "
                            f"--dds-config and CYCLONEDDS_URI") from None
        self._entities: list[Any] = [self.participant]  # deleted in reverse order on close
        self._topics: dict[str, Topic] = {}  # DDS topic name -> Topic
        self._subs: list[_Subscription] = []
        self._timers: list[_Timer] = []
        self._waitset = WaitSet(self.participant)
        self._guard = GuardCondition(self.participant)
        self._waitset.attach(self._guard)
        self._entities += [self._waitset, self._guard]
        self._graph_readers = [BuiltinDataReader(self.participant, BuiltinTopicDcpsPublication),
                               BuiltinDataReader(self.participant, BuiltinTopicDcpsSubscription)]
        self._entities += self._graph_readers
        self._next_graph_check = 0
        self._peer_endpoints: set[tuple[str, str]] = set()  # (DDS topic, type name) of every endpoint seen
        self._type_warnings: set[tuple[str, str]] = set()
        self._sim_ns = 0
        self._stop = threading.Event()
        self._closing = self._closed = False
        self._spin_lock = threading.Lock()
        if self.use_sim_time:
            self.create_subscription(msgs.Clock, "/clock", self._on_clock, QoS(reliable=False, depth=1))

    # -- graph ---------------------------------------------------------------------------------
    def _topic(self, msg_type: type, topic: str) -> Topic:
        name = dds_topic_name(self.resolve(topic))
        existing = self._topics.get(name)
        if existing is not None:
            if existing.data_type is not idl_type(msg_type.__msgtype__):
                raise UserError(f"topic {self.resolve(topic)} is already used with another message type "
                                f"in node '{self.name}'")
            return existing
        self._topics[name] = Topic(self.participant, name, idl_type(msg_type.__msgtype__))
        self._entities.append(self._topics[name])
        return self._topics[name]

    def create_publisher(self, msg_type: type, topic: str, qos: QoS = DEFAULT_QOS) -> DdsPublisher:
        writer = DataWriter(self.participant, self._topic(msg_type, topic), dds_qos(qos))
        self._entities.append(writer)
        return DdsPublisher(writer, msg_type, self.resolve(topic))

    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                            qos: QoS = DEFAULT_QOS) -> _Subscription:
        if qos.depth < 1:
            raise ValueError("QoS depth must be >= 1")
        # a deeper DDS cache than the QoS depth, so that messages the node falls behind on are counted when
        # `_dispatch_messages` keeps the newest `depth` of them (in ROS they vanish silently)
        reader = DataReader(self.participant, self._topic(msg_type, topic),
                            dds_qos(qos, reader_cache=max(qos.depth, _READER_HISTORY)))
        condition = ReadCondition(reader, _ANY_SAMPLE)
        self._waitset.attach(condition)
        self._entities += [reader, condition]
        sub = _Subscription(reader, msg_type, self.resolve(topic), callback, qos.depth)
        self._subs.append(sub)
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        period_ns, first = timer_schedule(period_s, self.now_ns(), self.use_sim_time)
        timer = _Timer(period_ns, callback, first, self.use_sim_time)
        self._timers.append(timer)
        self._wake()  # let a waiting spin recompute its timeout
        return timer

    # -- time and logging --------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self._sim_ns if self.use_sim_time else time.time_ns()

    def _on_clock(self, msg: msgs.Clock) -> None:
        self._sim_ns = max(self._sim_ns, msg.clock.to_ns())
        for timer in self._timers:  # sim-time timers start counting when sim time starts
            if timer.next_ns is None:
                timer.next_ns = self._sim_ns + timer.period_ns

    def log(self, level: str, message: str) -> None:
        if check_log_level(level) >= self._min_level:
            ns = time.time_ns()
            sys.stderr.write(f"[{level.upper()}] [{ns // 10**9}.{ns % 10**9:09d}] [{self.name}]: {message}\n")
            sys.stderr.flush()

    # -- executor --------------------------------------------------------------------------------
    def spin(self) -> None:
        """Run callbacks until `interrupt()`/`shutdown()`; messages already received when interrupted are
        still delivered (a recorder stopped by Ctrl-C keeps the frames that reached it), timers are not."""
        while not self._stop.is_set():
            self.spin_once(_MAX_WAIT_S)
        with self._spin_lock:
            if not self._closed:
                self._dispatch_messages()
        if self._closing:
            self._close_if_idle()

    def spin_once(self, timeout_s: float = 0.0) -> int:
        """Wait up to `timeout_s` for work, then run every ready callback. Returns how many ran."""
        ran = 0
        with self._spin_lock:
            if not self._closed:
                wait_ns = self._wait_ns(timeout_s)
                if wait_ns > 0:
                    self._waitset.wait(wait_ns)
                self._guard.set(False)
                if not self._stop.is_set():
                    ran = self._dispatch_messages() + self._run_timers()
                    if time.monotonic_ns() >= self._next_graph_check:
                        self._next_graph_check = time.monotonic_ns() + _GRAPH_CHECK_NS
                        self._check_graph()
        if self._closing:
            self._close_if_idle()
        return ran

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Spin until `predicate()` is true or `timeout_s` passes; returns the predicate's last value."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                return predicate()
            self.spin_once(min(left, _MAX_WAIT_S))
        return True

    def _wait_ns(self, timeout_s: float) -> int:
        wait = timeout_s
        now = self.now_ns()
        for timer in self._timers:
            if not timer.cancelled and timer.next_ns is not None and not timer.sim:
                wait = min(wait, (timer.next_ns - now) / 1e9)
        return max(0, round(wait * 1e9))

    def _dispatch_messages(self) -> int:
        ready = []
        for sub in self._subs:
            waiting = []
            for data, info in ddspy_take(sub.reader._ref, _ANY_SAMPLE, 256):
                if not info.valid_data:
                    continue
                if sub.accepts_writer(info.publication_handle):
                    waiting.append((info.source_timestamp, data))
                else:
                    sub.foreign += 1
            sub.dropped += max(0, len(waiting) - sub.depth)
            ready += [(stamp, len(ready) + i, sub, data) for i, (stamp, data) in enumerate(waiting[-sub.depth:])]
        ready.sort(key=lambda item: item[:2])
        for _, _, sub, data in ready:
            try:
                msg = cdr.deserialize(data, sub.msg_type)
            except cdr.CdrError as exc:
                sub.malformed += 1
                self.log("error", f"dropped a malformed message on {sub.topic}: {exc}")
                continue
            sub.received += 1
            sub.callback(msg)
        return len(ready)

    def _run_timers(self) -> int:
        ran = 0
        for timer in list(self._timers):
            now = self.now_ns()
            if timer.cancelled or timer.next_ns is None or timer.next_ns > now:
                continue
            # a late timer fires once and its next deadline moves past `now` (as rcl does)
            timer.next_ns += ((now - timer.next_ns) // timer.period_ns + 1) * timer.period_ns
            timer.callback()
            ran += 1
        self._timers = [t for t in self._timers if not t.cancelled]
        return ran

    def _check_graph(self) -> None:
        """Warn (once) about peers using our topics with another message type or an incompatible QoS:
        DDS silently does not connect them, which otherwise looks like a dead topic."""
        for reader in self._graph_readers:
            for endpoint in reader.take(N=256):
                if hasattr(endpoint, "topic_name"):  # not a disposal notice
                    self._peer_endpoints.add((endpoint.topic_name, endpoint.type_name))
        for topic, their_type in self._peer_endpoints - self._type_warnings:
            ours = self._topics.get(topic)
            if ours is not None and their_type != ours.typename:
                self._type_warnings.add((topic, their_type))
                self.log("warn", f"a peer uses topic {topic[2:]} with type {their_type}, but this node uses "
                                 f"{ours.typename}; they do not exchange messages")
        for sub in self._subs:
            missed = sub.dropped + sub.lost
            if missed > sub.missed_reported:
                self.log("warn", f"dropped {missed - sub.missed_reported} message(s) on {sub.topic}: the node "
                                 f"fell behind the publisher (keep-last depth {sub.depth}) or they were lost "
                                 f"on the way ({sub.dropped} dropped, {sub.lost} lost in all)")
                sub.missed_reported = missed
            status = sub.reader.get_requested_incompatible_qos_status()
            if status.total_count > sub.incompatible_qos_seen:
                sub.incompatible_qos_seen = status.total_count
                if status.last_policy_id != _TYPE_CONSISTENCY_POLICY_ID:
                    policy = _POLICY_NAMES.get(status.last_policy_id, f"policy {status.last_policy_id}")
                    self.log("warn", f"a publisher on {sub.topic} offers an incompatible {policy} QoS (a reliable "
                                     f"subscription does not receive from a best-effort publisher)")

    # -- lifecycle ---------------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Make `spin()` return (safe from signal handlers, other threads and callbacks); stay in the graph,
        so a node can still publish while it closes. `shutdown()` afterwards leaves the graph."""
        self._stop.set()
        self._wake()

    def shutdown(self) -> None:
        """Stop `spin()` and leave the DDS graph (now, or when the spinning thread's current round ends)."""
        self._closing = True
        self.interrupt()
        self._close_if_idle()

    def _wake(self) -> None:
        try:
            self._guard.set(True)
        except DDSException:  # already closed (shutdown twice, or racing the spinning thread's close)
            pass

    def _close_if_idle(self) -> None:
        if not self._spin_lock.acquire(blocking=False):
            return  # the spinning thread closes when its current round ends
        try:
            if not self._closed:
                self._closed = True
                for entity in reversed(self._entities):
                    entity.__del__()  # cyclonedds deletes the DDS entity now, not at garbage collection
                self._entities.clear()
        finally:
            self._spin_lock.release()

    @property
    def is_shutdown(self) -> bool:
        return self._stop.is_set()
