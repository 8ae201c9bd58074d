"""In-process transport: keep-last queues, QoS matching, clocks and timers, parameters, YAML parameter files."""
import threading
import time
from dataclasses import dataclass, field

import pytest

from diffusion_reward.errors import UserError
from diffusion_reward.msgs import Header, String, Time, Vector3Stamped
from diffusion_reward.nodes.params import declare_params, load_parameter_file
from diffusion_reward.transport import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS, QoS
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport


def test_delivery_in_publish_order_with_private_topics_and_copies():
    bus = InProcessBus()
    a, b = InProcessTransport("talker", bus), InProcessTransport("listener", bus)
    got = []
    b.create_subscription(String, "/talker/chatter", lambda m: got.append(m))
    pub = a.create_publisher(String, "~/chatter")
    sent = [String(data=str(i)) for i in range(3)]
    for m in sent:
        pub.publish(m)
    assert got == []  # nothing runs until the executor spins
    assert bus.spin_until_idle() == 3
    assert [m.data for m in got] == ["0", "1", "2"]
    sent[0].data = "changed"
    assert got[0].data == "0"  # subscribers own a copy


def test_keep_last_depth_drops_oldest_and_counts():
    bus = InProcessBus()
    t = InProcessTransport("n", bus)
    got = []
    t.create_subscription(String, "/x", lambda m: got.append(m.data), QoS(reliable=False, depth=2))
    pub = t.create_publisher(String, "/x", SENSOR_DATA_QOS)
    for i in range(5):
        pub.publish(String(data=str(i)))
    bus.spin_until_idle()
    assert got == ["3", "4"]
    (sub,) = bus.subscriptions("/x")
    assert (sub.received, sub.dropped) == (5, 3)


def test_reliable_reader_does_not_match_best_effort_writer():
    bus = InProcessBus()
    t = InProcessTransport("n", bus)
    reliable, best_effort = [], []
    t.create_subscription(String, "/img", reliable.append, DEFAULT_QOS)
    t.create_subscription(String, "/img", best_effort.append, SENSOR_DATA_QOS)
    t.create_publisher(String, "/img", SENSOR_DATA_QOS).publish(String(data="frame"))
    t.create_publisher(String, "/img", DEFAULT_QOS).publish(String(data="frame2"))
    bus.spin_until_idle()
    assert [m.data for m in reliable] == ["frame2"]
    assert [m.data for m in best_effort] == ["frame", "frame2"]


def test_latched_publisher_keeps_its_last_messages_for_latched_late_joiners():
    bus = InProcessBus()
    talker, listener = InProcessTransport("talker", bus), InProcessTransport("listener", bus)
    latched = talker.create_publisher(String, "/about", LATCHED_QOS)
    latched.publish(String(data="old"))
    latched.publish(String(data="kept"))
    talker.create_publisher(String, "/about", DEFAULT_QOS).publish(String(data="volatile"))
    late, volatile = [], []
    listener.create_subscription(String, "/about", late.append, LATCHED_QOS)
    listener.create_subscription(String, "/about", volatile.append, DEFAULT_QOS)
    bus.spin_until_idle()
    assert [m.data for m in late] == ["kept"] and volatile == []  # depth 1; a volatile subscriber gets no history
    latched.publish(String(data="new"))
    bus.spin_until_idle()
    assert [m.data for m in late] == ["kept", "new"] and [m.data for m in volatile] == ["new"]
    talker.shutdown()
    listener.create_subscription(String, "/about", late.append, LATCHED_QOS)
    bus.spin_until_idle()
    assert [m.data for m in late] == ["kept", "new"]  # a publisher's node gone: nothing kept for later joiners


def test_publisher_rejects_wrong_type():
    t = InProcessTransport("n", InProcessBus())
    with pytest.raises(TypeError):
        t.create_publisher(String, "/x").publish(Vector3Stamped())


def test_timers_fire_at_each_deadline_on_manual_clock_and_cancel():
    bus = InProcessBus()
    t = InProcessTransport("n", bus)
    stamps = []
    timer = t.create_timer(0.1, lambda: stamps.append(t.now_ns()))
    start = t.now_ns()
    bus.advance(0.35)
    assert [s - start for s in stamps] == [100_000_000, 200_000_000, 300_000_000]
    assert t.now_ns() - start == 350_000_000
    timer.cancel()
    bus.advance(1.0)
    assert len(stamps) == 3


def test_realtime_bus_runs_timers_on_the_system_clock():
    bus = InProcessBus(realtime=True)
    t = InProcessTransport("n", bus)
    ticks = []
    t.create_timer(0.02, lambda: ticks.append(t.now_ns()))
    spinner = threading.Thread(target=t.spin)
    spinner.start()
    deadline = time.monotonic() + 10
    while len(ticks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    t.shutdown()
    spinner.join(5)
    assert len(ticks) >= 3 and all(b > a for a, b in zip(ticks, ticks[1:]))
    assert abs(ticks[0] - time.time_ns()) < 60 * 10**9
    with pytest.raises(RuntimeError, match="manual clock"):
        bus.advance(1.0)


def test_sim_time_drives_sim_nodes_only():
    bus = InProcessBus()
    sim = InProcessTransport("sim_node", bus, params={"use_sim_time": True})
    wall = InProcessTransport("wall_node", bus)
    ticks = []
    sim.create_timer(1.0, lambda: ticks.append(sim.now_ns()))
    assert sim.now_ns() == 0  # no /clock yet
    bus.advance(5.0)
    assert ticks == []  # wall time does not drive sim-time timers
    bus.set_sim_time(10 * 10**9)
    bus.set_sim_time(12 * 10**9 + 5)
    assert ticks == [11 * 10**9, 12 * 10**9]
    assert sim.now_ns() == 12 * 10**9 + 5
    assert wall.now_ns() > 1_000 * 10**9


def test_clock_topic_sets_sim_time():
    @dataclass
    class Clock:  # rosgraph_msgs/msg/Clock shape
        __msgtype__ = "rosgraph_msgs/msg/Clock"
        clock: Time = field(default_factory=Time)

    bus = InProcessBus()
    node = InProcessTransport("n", bus, use_sim_time=True)
    InProcessTransport("sim", bus).create_publisher(Clock, "/clock").publish(Clock(Time(sec=3, nanosec=7)))
    assert node.now_ns() == 3_000_000_007


def test_publish_from_worker_thread_wakes_spinner():
    bus = InProcessBus()
    t = InProcessTransport("n", bus)
    got = threading.Event()
    t.create_subscription(Vector3Stamped, "/r", lambda m: got.set())
    pub = t.create_publisher(Vector3Stamped, "/r")
    spinner = threading.Thread(target=t.spin)
    spinner.start()
    threading.Thread(target=lambda: pub.publish(Vector3Stamped(header=Header(frame_id="cam")))).start()
    assert got.wait(5.0)
    t.shutdown()
    spinner.join(5.0)
    assert not spinner.is_alive()


@dataclass
class _Params:
    rate: float = field(default=10.0, metadata={"help": "Hz"})
    name: str = field(default="x", metadata={"help": "a name"})
    count: int = 1

    def validate(self):
        if self.count < 1:
            raise UserError("count must be >= 1")


def test_declare_params_overrides_types_and_validation():
    t = InProcessTransport("n", InProcessBus(), params={"rate": 30, "typo": 1})
    p = declare_params(t, _Params)
    assert p == _Params(rate=30.0, name="x", count=1) and isinstance(p.rate, float)
    assert t.descriptions["rate"] == "Hz"
    assert t.read_only == {"rate", "name", "count"}  # read once at start-up: `ros2 param set` must refuse
    assert t.undeclared_overrides() == ["typo"]
    with pytest.raises(UserError, match="'name' must be of type str"):
        declare_params(InProcessTransport("n", InProcessBus(), params={"name": 3}), _Params)
    with pytest.raises(UserError, match="count must be >= 1"):
        declare_params(InProcessTransport("n", InProcessBus(), params={"count": 0}), _Params)


def test_parameter_yaml_wildcards_namespaces_and_nesting(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    use_sim_time: true\n    rate: 1.0\n"
        "reward_labeller:\n  ros__parameters:\n    rate: 5.0\n    camera: {fps: 30, name: cam}\n"
        "/robot/*:\n  ros__parameters:\n    in_robot_ns: true\n"
        "other:\n  ros__parameters:\n    rate: 9.0\n"
    )
    assert load_parameter_file(path, "reward_labeller") == {
        "use_sim_time": True, "rate": 5.0, "camera.fps": 30, "camera.name": "cam"}
    assert load_parameter_file(path, "recorder", namespace="/robot") == {
        "use_sim_time": True, "rate": 1.0, "in_robot_ns": True}
    assert load_parameter_file(path, "recorder") == {"use_sim_time": True, "rate": 1.0}


@pytest.mark.parametrize("text,match", [
    ("a: [1, 2\n", "not valid YAML"),
    ("node:\n  rate: 1\n", "no 'ros__parameters'"),
    ("- 1\n", "must map node names"),
])
def test_parameter_yaml_errors(tmp_path, text, match):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        load_parameter_file(path, "node")
    with pytest.raises(UserError, match="not found"):
        load_parameter_file(tmp_path / "missing.yaml", "node")
