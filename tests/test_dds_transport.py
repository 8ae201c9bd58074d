"""DdsTransport over real Cyclone DDS on loopback: wire format, QoS matching, robustness, time, processes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from rosbags.typesys import Stores, get_typestore

from diffusion_reward import msgs
from diffusion_reward.errors import UserError
from diffusion_reward.transport import cdr
from diffusion_reward.transport.base import LATCHED_QOS, SENSOR_DATA_QOS, QoS
from diffusion_reward.transport.dds import DdsTransport, dds_qos, idl_type, interface_config, pad_sample
from cyclonedds._clayer import ddspy_take

DOMAIN = 100 + os.getpid() % 50  # one domain per test run (100-149: other DDS tests use other ranges)


@pytest.fixture
def make_transport():
    made = []

    def make(name, **kwargs):
        t = DdsTransport(name, domain_id=DOMAIN, config="loopback", **kwargs)
        made.append(t)
        return t

    yield make
    for t in made:
        t.shutdown()


def wait_matched(pub, n=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while pub.subscription_count < n:
        assert time.monotonic() < deadline, "publisher never matched its subscriber"
        time.sleep(0.01)


def image(i: int, h: int = 480, w: int = 640) -> msgs.Image:
    frame = np.random.default_rng(i).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return msgs.Image(header=msgs.Header(msgs.Time(sec=100 + i, nanosec=7), "camera_color_optical_frame"),
                      height=h, width=w, encoding="rgb8", step=w * 3, data=frame.tobytes())


def test_messages_arrive_intact_between_participants(make_transport):
    cam, lab = make_transport("camera"), make_transport("labeller")
    images, states = [], []
    image_sub = lab.create_subscription(msgs.Image, "/camera/color/image_raw", images.append,
                                        QoS(reliable=True, depth=10))
    lab.create_subscription(msgs.JointState, "/joint_states", states.append)
    pub_img = cam.create_publisher(msgs.Image, "/camera/color/image_raw")
    pub_js = cam.create_publisher(msgs.JointState, "/joint_states")
    wait_matched(pub_img), wait_matched(pub_js)
    sent = [image(i, *((64, 64) if i % 2 else (480, 640))) for i in range(4)]
    js = msgs.JointState(header=msgs.Header(msgs.Time(1, 2), "base"), name=["fr3_joint1", "j2"],
                         position=np.array([0.5, -1.25]), velocity=np.zeros(2), effort=np.zeros(0))
    for m in sent:
        pub_img.publish(m)
    pub_js.publish(js)
    assert lab.spin_until(lambda: len(images) == 4 and len(states) == 1, 10)
    assert image_sub.publisher_count == 1 and image_sub.received == 4
    assert [cdr.serialize(m) for m in images] == [cdr.serialize(m) for m in sent]
    assert states[0].name == js.name and np.array_equal(states[0].position, js.position)


def test_wire_bytes_are_ros2_cdr(make_transport):
    """What a foreign DDS reader of `rt/...` with the ROS type name sees: rosbags-compatible CDR."""
    node = make_transport("talker")
    spy = make_transport("spy")
    topic = Topic(spy.participant, "rt/wire_check", idl_type("sensor_msgs/msg/JointState"))
    reader = DataReader(spy.participant, topic, dds_qos(QoS()))
    assert topic.typename == "sensor_msgs::msg::dds_::JointState_"
    pub = node.create_publisher(msgs.JointState, "/wire_check")
    wait_matched(pub)
    msg = msgs.JointState(header=msgs.Header(msgs.Time(3, 4), "abcde"), name=["a"], position=np.array([1.0]))
    pub.publish(msg)
    deadline, samples = time.monotonic() + 5, []
    while not samples and time.monotonic() < deadline:
        samples = ddspy_take(reader._ref, 0xFFFF, 1) or []
        time.sleep(0.01)
    raw = samples[0][0]
    assert raw == pad_sample(cdr.encode(msg))
    for store in (Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY):
        decoded = get_typestore(store).deserialize_cdr(raw, "sensor_msgs/msg/JointState")
        assert decoded.header.frame_id == "abcde" and list(decoded.name) == ["a"]
        assert decoded.position.tolist() == [1.0] and decoded.effort.size == 0
    # cyclonedds' own (independent) deserialiser of the mirrored type reads the same values
    theirs = idl_type("sensor_msgs/msg/JointState").deserialize(raw)
    assert theirs.header.stamp.nanosec == 4 and list(theirs.position) == [1.0]


def test_best_effort_subscriber_receives_from_reliable_publisher_not_the_reverse(make_transport, capsys):
    pub_node, sub_node = make_transport("pub"), make_transport("sub")
    got_be, got_rel = [], []
    sub_node.create_subscription(msgs.String, "/qos_a", got_be.append, SENSOR_DATA_QOS)
    sub_node.create_subscription(msgs.String, "/qos_b", got_rel.append, QoS(reliable=True, depth=10))
    reliable_pub = pub_node.create_publisher(msgs.String, "/qos_a", QoS(reliable=True, depth=10))
    best_effort_pub = pub_node.create_publisher(msgs.String, "/qos_b", SENSOR_DATA_QOS)
    wait_matched(reliable_pub)
    reliable_pub.publish(msgs.String("to best effort"))
    best_effort_pub.publish(msgs.String("to reliable"))
    sub_node.spin_until(lambda: False, 1.0)
    assert [m.data for m in got_be] == ["to best effort"] and got_rel == []
    assert "offers an incompatible reliability QoS" in capsys.readouterr().err


def test_peer_with_another_type_is_ignored_with_a_warning(make_transport, capsys):
    talker, listener = make_transport("talker"), make_transport("listener")
    got = []
    wrong = talker.create_publisher(msgs.Time, "/mixed")  # same layout as Duration, another ROS type
    right = talker.create_publisher(msgs.String, "/fine")
    listener.spin_until(lambda: False, 0.7)  # the listener sees the publishers before it uses the topics
    mixed = listener.create_subscription(msgs.Duration, "/mixed", got.append)
    listener.create_subscription(msgs.String, "/fine", got.append)
    wait_matched(right)
    time.sleep(0.2)
    wrong.publish(msgs.Time(1, 2))
    right.publish(msgs.String("still running"))
    listener.spin_until(lambda: False, 1.0)
    assert [type(m) for m in got] == [msgs.String] and mixed.foreign == 1
    err = capsys.readouterr().err
    assert "with type builtin_interfaces::msg::dds_::Time_, but this node uses " \
           "builtin_interfaces::msg::dds_::Duration_" in err
    assert err.count("with type builtin_interfaces::msg::dds_::Time_") == 1  # warned once


def test_malformed_payload_is_dropped_with_one_log_line(make_transport, capsys):
    talker, listener = make_transport("talker"), make_transport("listener")
    got = []
    sub = listener.create_subscription(msgs.String, "/chatter", got.append)
    pub = talker.create_publisher(msgs.String, "/chatter")
    wait_matched(pub)
    pub.publish_serialized(cdr.CDR_LE_HEADER + b"\x03\x00\x00\x00\xff\xfe\x00")  # valid CDR, invalid UTF-8
    pub.publish(msgs.String("ok"))
    assert listener.spin_until(lambda: len(got) == 1, 5)
    assert got[0].data == "ok" and sub.malformed == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "malformed" in line]
    assert len(errors) == 1 and "/chatter" in errors[0] and errors[0].startswith("[ERROR]")


def test_sim_time_follows_clock_and_drives_timers(make_transport):
    sim = make_transport("sim")
    node = make_transport("node", params={"use_sim_time": True})
    ticks = []
    node.create_timer(0.5, lambda: ticks.append(node.now_ns()))
    clock = sim.create_publisher(msgs.Clock, "/clock")
    wait_matched(clock)
    assert node.now_ns() == 0  # as in ROS: no time until /clock arrives
    for ns in (10**9, 10**9 + 2 * 10**8, 10**9 + 6 * 10**8, 2 * 10**9 + 10**8):
        clock.publish(msgs.Clock(msgs.Time.from_ns(ns)))
        assert node.spin_until(lambda ns=ns: node.now_ns() == ns, 5)
    assert ticks == [10**9 + 6 * 10**8, 2 * 10**9 + 10**8]  # deadlines 1.5 s, then 2.0 s (late: fires once)
    assert node.parameters["use_sim_time"] is True


def test_wall_timer_and_parameters(make_transport):
    node = make_transport("node", params={"rate_hz": 20.0, "typo_param": 1})
    assert node.declare_parameter("rate_hz", 10.0, "how fast") == 20.0
    assert node.declare_parameter("topic", "/x") == "/x"
    assert node.undeclared_overrides() == ["typo_param"]
    with pytest.raises(UserError, match="declared twice"):
        node.declare_parameter("topic", "/y")
    ticks = []
    node.create_timer(0.02, lambda: ticks.append(time.monotonic()))
    node.spin_until(lambda: len(ticks) >= 5, 5)
    assert len(ticks) >= 5 and np.all(np.diff(ticks) > 0.01)


def test_shutdown_from_another_thread_stops_spin(make_transport):
    node = make_transport("node")
    threading.Timer(0.3, node.shutdown).start()
    t0 = time.monotonic()
    node.spin()
    assert node.is_shutdown and time.monotonic() - t0 < 3


def test_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="between 0 and 232"):
        DdsTransport("n", domain_id=300, config="loopback")
    with pytest.raises(UserError, match="not found"):
        DdsTransport("n", domain_id=DOMAIN, config=tmp_path / "missing.xml")
    with pytest.raises(UserError, match="interface name"):
        interface_config('eth0"/><x')
    # a missing interface: Cyclone DDS refuses to start; one clear line, exit code 2
    result = subprocess.run([sys.executable, "-m", "diffusion_reward", "live", "recorder", "--network", "nosuchif0",
                             "--domain-id", str(DOMAIN)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot join DDS domain {DOMAIN}")


def test_cross_process_frames_and_states(make_transport):
    """A publisher in another process: every reliable 640x480 and 64x64 frame arrives bit-exact, in order."""
    received = []
    listener = make_transport("listener")
    listener.create_subscription(msgs.Image, "/xproc/image", received.append, QoS(reliable=True, depth=20))
    states = []
    listener.create_subscription(msgs.JointState, "/xproc/joint_states", states.append)
    code = textwrap.dedent(f"""
        import time, numpy as np
        from diffusion_reward import msgs
        from diffusion_reward.transport.dds import DdsTransport
        t = DdsTransport("talker", domain_id={DOMAIN}, config="loopback")
        img = t.create_publisher(msgs.Image, "/xproc/image")
        js = t.create_publisher(msgs.JointState, "/xproc/joint_states")
        deadline = time.monotonic() + 10
        while (img.subscription_count < 1 or js.subscription_count < 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(6):
            h, w = (480, 640) if i % 2 == 0 else (64, 64)
            frame = np.random.default_rng(i).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            img.publish(msgs.Image(header=msgs.Header(msgs.Time(100 + i, 7), "camera_color_optical_frame"),
                                   height=h, width=w, encoding="rgb8", step=w * 3, data=frame.tobytes()))
            js.publish(msgs.JointState(name=["j"], position=np.array([float(i)])))
            time.sleep(0.02)
        time.sleep(0.5)
        t.shutdown()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    ok = listener.spin_until(lambda: len(received) == 6 and len(states) == 6, 30)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert ok, f"received {len(received)} images, {len(states)} states"
    for i, m in enumerate(received):
        assert cdr.serialize(m) == cdr.serialize(image(i, *((480, 640) if i % 2 == 0 else (64, 64))))
    assert [s.position[0] for s in states] == [float(i) for i in range(6)]


def test_keep_last_drops_are_counted_and_reported(make_transport, capsys):
    talker, listener = make_transport("talker"), make_transport("listener")
    got = []
    sub = listener.create_subscription(msgs.String, "/burst", got.append, SENSOR_DATA_QOS)  # depth 5
    pub = talker.create_publisher(msgs.String, "/burst")
    wait_matched(pub)
    time.sleep(0.2)
    for i in range(20):  # the listener is not spinning: a slow callback elsewhere, as far as it can tell
        pub.publish(msgs.String(str(i)))
    time.sleep(0.3)
    listener.spin_until(lambda: False, 0.8)  # long enough for one graph check
    assert [m.data for m in got] == [str(i) for i in range(15, 20)]  # the newest `depth`, as in ROS
    assert sub.dropped == 15 and sub.received == 5
    assert "dropped 15 message(s) on /burst: the node fell behind the publisher (keep-last depth 5)" in \
        capsys.readouterr().err


def test_rosbag2_bytes_replay_unchanged(make_transport):
    """CDR written by another implementation (rosbags, as stored in rosbag2 files) goes on the wire as it is."""
    typestore = get_typestore(Stores.ROS2_JAZZY)
    Image, Header, Time = (typestore.types[t] for t in
                           ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    frame = np.random.default_rng(3).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)  # odd sizes: padding
    raw = bytes(typestore.serialize_cdr(Image(header=Header(stamp=Time(sec=9, nanosec=1), frame_id="bag"), height=7,
                                              width=5, encoding="rgb8", is_bigendian=0, step=15,
                                              data=frame.reshape(-1)), "sensor_msgs/msg/Image"))
    player, listener = make_transport("player"), make_transport("listener")
    got = []
    listener.create_subscription(msgs.Image, "/bag/image", got.append)
    pub = player.create_publisher(msgs.Image, "/bag/image")
    wait_matched(pub)
    pub.publish_serialized(raw)
    assert listener.spin_until(lambda: len(got) == 1, 5)
    assert got[0].header.frame_id == "bag" and got[0].header.stamp == msgs.Time(9, 1)
    np.testing.assert_array_equal(np.frombuffer(got[0].data, np.uint8).reshape(7, 5, 3), frame)
    assert cdr.serialize(got[0]) == raw


def test_a_full_reader_cache_rejects_and_counts_instead_of_overwriting(make_transport):
    """Beyond the reader cache (32 samples for depth 5) DDS rejects new samples; every one of a burst is
    accounted for: delivered, dropped by keep-last, or lost."""
    talker, listener = make_transport("talker"), make_transport("listener")
    got = []
    sub = listener.create_subscription(msgs.String, "/burst", got.append, SENSOR_DATA_QOS)
    pub = talker.create_publisher(msgs.String, "/burst")
    wait_matched(pub)
    time.sleep(0.2)
    for i in range(50):
        pub.publish(msgs.String(str(i)))
    deadline = time.monotonic() + 30
    while sub.lost < 18 and time.monotonic() < deadline:  # the listener does not spin until all arrived
        time.sleep(0.01)
    listener.spin_until(lambda: False, 0.3)
    assert (sub.received, sub.dropped, sub.lost) == (5, 27, 18)
    assert [m.data for m in got] == [str(i) for i in range(27, 32)]  # the newest 5 of the 32 the cache kept


def test_latched_publisher_reaches_a_subscriber_that_joins_later(make_transport):
    """TRANSIENT_LOCAL on both ends (LATCHED_QOS): a subscriber created after the message was sent still gets it,
    as the recorder gets the labeller's reward provenance."""
    pub_node, sub_node = make_transport("pub"), make_transport("sub")
    pub = pub_node.create_publisher(msgs.String, "/latched", LATCHED_QOS)
    pub.publish(msgs.String("old"))
    pub.publish(msgs.String("kept"))
    got = []
    sub_node.create_subscription(msgs.String, "/latched", got.append, LATCHED_QOS)
    assert sub_node.spin_until(lambda: len(got) >= 1, 10)
    assert [m.data for m in got] == ["kept"]  # depth 1: only the last one is kept
