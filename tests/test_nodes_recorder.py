"""Episode recorder on the in-process transport: stamp sync, drops, episode control, crash-safe dataset."""
import numpy as np
import pytest

from diffusion_reward.data import Dataset
from diffusion_reward.data.format import REWARD_ALIGNMENT
from diffusion_reward.data.labels import LabelProvenance
from diffusion_reward.errors import UserError
from diffusion_reward.msgs import Bool, DiagnosticArray, Empty, Float64MultiArray, Header, \
    JointState, JointTrajectory, JointTrajectoryPoint, String, Time, Vector3, Vector3Stamped
from diffusion_reward.nodes.episode_recorder import FR3_JOINTS, EpisodeRecorderNode
from diffusion_reward.data.frames import rgb_to_image
from diffusion_reward.transport import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

FPS = 10
FRAME_NS = 10**9 // FPS


class Robot:
    """Publishes what the camera, arm, controller and labeller would, with controllable stamps."""

    def __init__(self, bus):
        self.bus = bus
        t = self.t = InProcessTransport("robot", bus)
        self.image = t.create_publisher(type(rgb_to_image(np.zeros((1, 1, 3), np.uint8))),
                                        "/camera/camera/color/image_raw", SENSOR_DATA_QOS)
        self.joints = t.create_publisher(JointState, "/franka/joint_states", SENSOR_DATA_QOS)  # best effort, as the
        # sim bridge and franka's convenience topics publish: the recorder must still hear it
        self.command = t.create_publisher(JointTrajectory, "/fr3_arm_controller/joint_trajectory")
        self.reward = t.create_publisher(Vector3Stamped, "/reward_labeller/reward")
        self.provenance = t.create_publisher(String, "/reward_labeller/reward_provenance", LATCHED_QOS)
        self.events = {name: t.create_publisher(Empty, f"/episode/{name}") for name in ("start", "stop", "discard")}
        self.success = t.create_publisher(Bool, "/episode/success", DEFAULT_QOS)
        self.rng = np.random.default_rng(0)

    def event(self, name):
        self.events[name].publish(Empty())
        self.bus.spin_until_idle()

    def frame(self, i, stamp, reward=True, joints=FR3_JOINTS, state_offset_ns=3_000_000):
        rgb = self.rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        q = np.arange(7) + i
        self.joints.publish(JointState(header=Header(stamp=Time.from_ns(stamp + state_offset_ns)), name=list(joints),
                                       position=q.astype(float), velocity=-q.astype(float)))
        self.image.publish(rgb_to_image(rgb, stamp, "camera_color_optical_frame"))
        self.command.publish(JointTrajectory(  # joints in another order than the recorder's joint_names
            header=Header(stamp=Time.from_ns(stamp)), joint_names=FR3_JOINTS[::-1],
            points=[JointTrajectoryPoint(positions=(q + 0.5)[::-1])]))
        self.joints.publish(JointState(header=Header(stamp=Time.from_ns(stamp + FRAME_NS // 2)), name=list(joints),
                                       position=q + 0.5, velocity=q * 0.0))
        if reward:
            self.reward.publish(Vector3Stamped(header=Header(stamp=Time.from_ns(stamp), frame_id="cam"),
                                               vector=Vector3(x=float(i), y=-float(i), z=0.01)))
        self.bus.advance(1 / FPS)
        return rgb


def _recorder(tmp_path, **overrides):
    bus = InProcessBus()
    params = {"output": str(tmp_path / "robot.hdf5"), "task": "button-press-v3", "image_size": 16,
              "gripper_topic": "", **overrides}
    return bus, EpisodeRecorderNode(InProcessTransport("episode_recorder", bus, params=params))


def test_records_synced_episode_with_reward_labels_and_drop_counts(tmp_path):
    bus, rec = _recorder(tmp_path)
    robot = Robot(bus)
    robot.provenance.publish(String(data=LabelProvenance(  # what the labeller latches beside its rewards
        model_hash="abc", task="button-press-v3", reward_type="entropy", skip_step=9, num_samples=1, noise=True,
        seed=0, stats_mean=-1.5, stats_std=2.0, dtype="float32", image_size=16, source="ros2",
        extra={"crop": "center"}).to_json()))
    robot.event("start")
    start = robot.t.now_ns()
    stamps, frames = [], []
    for i in range(6):
        stamp = start + i * FRAME_NS
        frames.append(robot.frame(i, stamp, reward=(i != 3)))  # the labeller skipped frame 3
        stamps.append(stamp)
    status = []
    robot.t.create_subscription(DiagnosticArray, "/diagnostics", lambda m: status.extend(
        s for s in m.status if s.name == "episode_recorder: recorder"))
    bus.advance(1.0)
    values = {kv.key: kv.value for kv in status[-1].values}
    # frames 3, 4, 5 wait: 3 for its reward (up to wait_timeout_s), the others behind it, in order
    assert (values["recording"], values["episode"], values["steps"], values["waiting_images"]) == (
        "True", "demo_0", "3", "3")
    robot.success.publish(Bool(data=True))
    robot.event("stop")
    bus.advance(3.0)  # frame 3 times out waiting for its reward; then the episode is saved
    assert rec.saved == ["demo_0"]
    rec.close()

    ds = Dataset(tmp_path / "robot.hdf5")
    ds.verify()
    assert ds.env_args["task"] == "button-press-v3" and ds.env_args["topics"]["reward"] == "/reward_labeller/reward"
    (ep,) = list(ds)
    kept = [0, 1, 2, 4, 5]
    assert ep.num_samples == 5 and ep.success
    np.testing.assert_array_equal(ep.obs["image_full"][()], np.stack([frames[i] for i in kept]))
    assert ep.obs["image"].shape == (5, 16, 16, 3)
    # the state nearest each image (3 ms later), not the one half a frame later
    np.testing.assert_allclose(ep.obs["state"][()][:, :7], np.stack([np.arange(7) + i for i in kept]))
    np.testing.assert_allclose(ep.obs["state"][()][:, 7:], -np.stack([np.arange(7) + i for i in kept]))
    np.testing.assert_allclose(ep.actions, np.stack([np.arange(7) + i + 0.5 for i in kept]))
    np.testing.assert_allclose(ep.stamps["image"], np.array(stamps)[kept] / 1e9)
    np.testing.assert_allclose(ep.stamps["state"] - ep.stamps["image"], 0.003, atol=1e-6)
    label = ep.reward_labels["entropy"]
    np.testing.assert_array_equal(label["datasets"]["reward"], np.array(kept, np.float32))
    np.testing.assert_array_equal(label["datasets"]["raw"], -np.array(kept, np.float32))
    attrs = label["attrs"]
    assert (attrs["model_hash"], attrs["skip_step"], attrs["noise"], attrs["source"]) == ("abc", 9, True, "ros2")
    assert attrs["stats"] == {"mean": -1.5, "std": 2.0} and attrs["crop"] == "center"
    assert LabelProvenance.from_attrs(attrs).stats_std == 2.0 and attrs["topic"] == "/reward_labeller/reward"
    assert attrs["alignment"] == REWARD_ALIGNMENT
    assert list(ep.dones) == [0, 0, 0, 0, 1] and list(ep.rewards) == [0, 0, 0, 0, 1.0]
    sync = ep.attrs["sync"]
    assert sync["dropped"] == {"no_reward": 1} and sync["recorded"] == 5
    assert sync["max_skew_s"]["state"] == pytest.approx(0.003)


def test_state_with_missing_joints_skips_frames_without_corrupting(tmp_path):
    bus, rec = _recorder(tmp_path, store_full_image=False, sync_tolerance_s=0.02)
    robot = Robot(bus)
    robot.event("start")
    start = robot.t.now_ns()
    for i in range(4):
        joints = FR3_JOINTS[:5] if i == 1 else FR3_JOINTS  # one frame's states lack two joints
        robot.frame(i, start + i * FRAME_NS, joints=joints)
    robot.event("stop")
    bus.advance(3.0)
    errors = [m for level, m in rec.transport.logs if level == "error"]
    assert len(errors) == 1 and "fr3_joint6, fr3_joint7" in errors[0]
    rec.close()
    ds = Dataset(tmp_path / "robot.hdf5")
    ds.verify()
    (ep,) = list(ds)
    assert ep.num_samples == 3 and "image_full" not in ep.obs
    assert ep.attrs["sync"]["dropped"] == {"no_state": 1}
    assert ep.attrs["sync"]["bad_messages"] == {"state": 2}


def test_discard_and_back_to_back_episodes_append(tmp_path):
    bus, rec = _recorder(tmp_path, reward_topic="", action_topic="")
    robot = Robot(bus)
    for name in ("start", "discard", "start"):
        if name == "discard":
            robot.frame(0, robot.t.now_ns())
        robot.event(name)
    for i in range(3):
        robot.frame(i, robot.t.now_ns())
    robot.event("stop")
    robot.event("start")
    robot.frame(0, robot.t.now_ns())
    rec.close()  # shutting down saves the running episode
    bus2, rec2 = _recorder(tmp_path, reward_topic="", action_topic="")  # a new session appends
    rec2.close()
    ds = Dataset(tmp_path / "robot.hdf5")
    ds.verify()
    assert ds.episode_names == ["demo_0", "demo_1"]
    assert [ep.num_samples for ep in ds] == [3, 1]
    assert "reward_labels" not in ds.episode("demo_0").group and ds.episode("demo_0").actions is None


def test_headerless_ee_delta_commands_are_stamped_on_receipt_and_held(tmp_path):
    bus, rec = _recorder(tmp_path, reward_topic="none", action_topic="/ee_delta", action_type="float64_multi_array")
    robot = Robot(bus)
    delta = robot.t.create_publisher(Float64MultiArray, "/ee_delta")
    robot.event("start")
    for i in range(4):
        if i != 2:  # no command for frame 2: the previous one is still in force
            delta.publish(Float64MultiArray(data=np.array([i, 0.0, -i, 1.0])))
            bus.spin_until_idle()
        robot.frame(i, robot.t.now_ns())
    robot.event("stop")
    bus.advance(3.0)
    rec.close()
    (ep,) = list(Dataset(tmp_path / "robot.hdf5"))
    np.testing.assert_array_equal(ep.actions[:, 0], [0, 1, 1, 3])
    assert ep.attrs["sync"]["dropped"] == {}


def test_teleop_button_presses_start_and_stop_episodes(tmp_path):
    bus, rec = _recorder(tmp_path, reward_topic="none", action_topic="none", button_topic="/teleop/record")
    robot = Robot(bus)
    button = robot.t.create_publisher(Bool, "/teleop/record")

    def hold(pressed, messages=3):  # a joystick repeats its state: only a press (rising edge) counts
        for _ in range(messages):
            button.publish(Bool(data=pressed))
        bus.spin_until_idle()

    for episode_frames in (2, 3):
        hold(True)
        hold(False)
        for i in range(episode_frames):
            robot.frame(i, robot.t.now_ns())
        hold(True)
        hold(False)
        bus.advance(3.0)
    rec.close()
    assert [ep.num_samples for ep in Dataset(tmp_path / "robot.hdf5")] == [2, 3]


@pytest.mark.parametrize("params,match", [
    ({"state_fields": ["pose"]}, "state_fields"),
    ({"action_type": "twist"}, "action_type"),
    ({"sync_tolerance_s": 0.0}, "sync_tolerance_s"),
    ({"crop": "1,2"}, "crop"),
    ({"output": ""}, "output is empty"),
    ({"image_size": "64"}, "'image_size' must be of type int"),
])
def test_parameter_validation(tmp_path, params, match):
    with pytest.raises(UserError, match=match):
        _recorder(tmp_path, **params)
    assert not (tmp_path / "robot.hdf5").exists()
