"""Policy runner on the in-process bus: a real TorchScript policy, FR3 kinematics, the safety envelope."""
import json

import numpy as np
import pytest
import torch

from diffusion_reward.errors import UserError
from diffusion_reward.msgs import Bool, Empty, Float64MultiArray, Header, Image, JointState, JointTrajectory, \
    String, Time
from diffusion_reward.nodes.policy_runner import PolicyRunnerNode
from diffusion_reward.safety import FR3, FrankaKinematics
from diffusion_reward.transport.base import SENSOR_DATA_QOS
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

HOME = np.array(FR3.q_home)


class ConstantPolicy(torch.nn.Module):
    """The exported-policy signature; always moves +x at full speed and closes the gripper."""

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.value = value

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        action = torch.zeros(image.shape[0], 4)
        action[:, 0] = self.value
        action[:, 3] = 1.0
        return action


def _export(folder, module, **meta):
    folder.mkdir()
    torch.jit.script(module).save(str(folder / "policy.ts"))
    info = {"obs": "image", "frame_stack": 2, "image_size": 16, "state_dim": 3, "action_dim": 4, "task": "t",
            "algo": "test", "action_space": "ee_delta_xyz_gripper", **meta}
    (folder / "policy.json").write_text(json.dumps(info))
    return folder


class Rig:
    """The runner plus a fake robot: image and joint-state publishers and recorders of every output."""

    def __init__(self, policy_dir, **params):
        self.bus = InProcessBus()
        self.robot = InProcessTransport("robot", self.bus)
        self.image_pub = self.robot.create_publisher(Image, "/camera/camera/color/image_raw", SENSOR_DATA_QOS)
        self.joint_pub = self.robot.create_publisher(JointState, "/franka/joint_states", SENSOR_DATA_QOS)
        self.reset_pub = self.robot.create_publisher(Empty, "/policy_runner/reset")
        self.estop_pub = self.robot.create_publisher(Bool, "/policy_runner/estop")
        self.out = {name: [] for name in ("traj", "shadow", "gripper", "state")}
        for name, msg_type, topic in [("traj", JointTrajectory, "/fr3_arm_controller/joint_trajectory"),
                                      ("shadow", JointTrajectory, "/policy_runner/shadow/joint_trajectory"),
                                      ("gripper", Float64MultiArray, "/policy_runner/gripper_command"),
                                      ("state", String, "/policy_runner/state")]:
            self.robot.create_subscription(msg_type, topic, self.out[name].append)
        self.q = HOME.copy()
        self.node = PolicyRunnerNode(InProcessTransport("policy_runner", self.bus,
                                                        params={"policy_path": str(policy_dir), **params}))

    def sense(self, image=True):
        stamp = Header(stamp=Time.from_ns(self.bus.wall_ns()))
        if image:
            self.image_pub.publish(Image(header=stamp, height=32, width=32, encoding="rgb8", step=96,
                                         data=bytes(np.full((32, 32, 3), 128, np.uint8))))
        self.joint_pub.publish(JointState(header=stamp, name=list(FR3.joint_names), position=self.q.copy(),
                                          velocity=np.zeros(7)))
        self.bus.spin_until_idle()

    def run(self, periods, image=True, follow=True):
        """Advance `periods` control periods, the arm reaching every commanded point."""
        for _ in range(periods):
            self.sense(image)
            self.bus.advance(0.1)
            if follow and self.out["traj"]:
                self.q = np.asarray(self.out["traj"][-1].points[-1].positions)


@pytest.fixture
def policy_dir(tmp_path):
    return _export(tmp_path / "policy", ConstantPolicy())


def test_starts_disarmed_then_moves_the_tcp_within_limits(policy_dir):
    rig = Rig(policy_dir)
    rig.run(3)
    assert rig.out["traj"] == [] and rig.out["state"][-1].data == "waiting for ~/reset"
    rig.reset_pub.publish(Empty())
    rig.run(5)
    assert rig.out["state"][-1].data == "running"
    trajectories = rig.out["traj"]
    assert len(trajectories) == 5
    kin = FrankaKinematics(FR3)
    start = kin.fk(HOME)
    previous = HOME
    for msg in trajectories:
        assert msg.joint_names == list(FR3.joint_names)
        q = np.asarray(msg.points[0].positions)
        assert np.max(np.abs(q - previous)) <= 0.05 + 1e-6  # max joint step at 10 Hz (state is float32)
        assert msg.points[0].time_from_start.nanosec == 200_000_000
        previous = q
    end = kin.fk(previous)
    moved = end[:3, 3] - start[:3, 3]
    assert 0.05 < moved[0] <= 5 * 0.02 + 1e-6  # +x, at most 2 cm per step
    assert np.all(np.abs(moved[1:]) < 5e-3)  # y and z held
    np.testing.assert_allclose(end[:3, :3], start[:3, :3], atol=1e-3)  # orientation held
    assert len(rig.out["gripper"]) == 1  # sent on the state change only
    np.testing.assert_allclose(rig.out["gripper"][0].data, [0.0, 0.05, 20.0])
    # a new episode (the robot was reset): no stop, the gripper target is sent again
    rig.robot.create_publisher(Empty, "/episode/start").publish(Empty())
    rig.run(2)
    assert rig.out["state"][-1].data == "running" and len(rig.out["traj"]) == 7
    assert len(rig.out["gripper"]) == 2


def test_stale_image_stops_holds_and_latches_until_reset(policy_dir):
    rig = Rig(policy_dir)
    rig.sense()
    rig.reset_pub.publish(Empty())
    rig.run(2)
    rig.run(4, image=False)  # camera dies: joint states keep coming; images up to 0.2 s old still count
    assert rig.out["state"][-1].data.startswith("stopped: image is stale")
    hold = rig.out["traj"][-1]
    np.testing.assert_allclose(hold.points[0].positions, rig.q)  # the hold: at the measured joints
    sent = len(rig.out["traj"])
    assert sent == 2 + 1 + 1  # 2 with fresh images, 1 with the last image 0.2 s old (the limit), the hold
    rig.run(3)  # the camera is back, but the stop is latched
    assert len(rig.out["traj"]) == sent
    rig.reset_pub.publish(Empty())
    rig.run(2)
    assert len(rig.out["traj"]) == sent + 2 and rig.out["state"][-1].data == "running"


def test_nan_policy_output_stops_and_latches(tmp_path):
    rig = Rig(_export(tmp_path / "nan", ConstantPolicy(float("nan"))))
    rig.sense()
    rig.reset_pub.publish(Empty())
    rig.run(3)
    assert rig.out["state"][-1].data.startswith("stopped: non-finite")
    assert len(rig.out["traj"]) == 1  # the hold, nothing else
    np.testing.assert_allclose(rig.out["traj"][0].points[0].positions, HOME)


def test_estop_topic_and_shadow_mode(policy_dir):
    rig = Rig(policy_dir)
    rig.sense()
    rig.reset_pub.publish(Empty())
    rig.run(1)
    rig.estop_pub.publish(Bool(data=True))
    rig.run(2)
    assert rig.out["state"][-1].data == "stopped: software e-stop"
    rig.reset_pub.publish(Empty())  # refused while engaged
    rig.run(2)
    assert rig.out["state"][-1].data == "stopped: software e-stop"
    rig.estop_pub.publish(Bool(data=False))
    rig.reset_pub.publish(Empty())
    rig.run(1)
    assert rig.out["state"][-1].data == "running"

    shadow = Rig(policy_dir, shadow_mode=True)
    shadow.sense()
    shadow.reset_pub.publish(Empty())
    shadow.run(3)
    assert shadow.out["traj"] == [] and shadow.out["gripper"] == []
    assert len(shadow.out["shadow"]) == 3


def test_bad_parameters_fail_at_start_up(tmp_path, policy_dir):
    bus = InProcessBus()
    with pytest.raises(UserError, match="policy_path is empty"):
        PolicyRunnerNode(InProcessTransport("policy_runner", bus))
    with pytest.raises(UserError, match="no policy.ts"):
        PolicyRunnerNode(InProcessTransport("policy_runner", bus, params={"policy_path": str(tmp_path)}))
    state_policy = _export(tmp_path / "state", ConstantPolicy(), obs="state", state_dim=39)
    with pytest.raises(UserError, match="39-D state"):
        PolicyRunnerNode(InProcessTransport("policy_runner", bus, params={"policy_path": str(state_policy)}))
    with pytest.raises(UserError, match="workspace_min"):
        PolicyRunnerNode(InProcessTransport("policy_runner", bus, params={
            "policy_path": str(policy_dir), "workspace_min": [1.0, 0.0, 0.0]}))
    # the policy.json spec is checked once (offline/policy_folder.PolicySpec), for export, evaluate and the robot
    for name, meta, message in (("joints", {"action_space": "joint_position"}, "actions are 'joint_position'"),
                                ("stack", {"frame_stack": 0}, "frame_stack must be a positive integer"),
                                ("obs", {"obs": "depth"}, "obs must be one of state, image, both")):
        bad = _export(tmp_path / name, ConstantPolicy(), **meta)
        with pytest.raises(UserError, match=message):
            PolicyRunnerNode(InProcessTransport("policy_runner", bus, params={"policy_path": str(bad)}))
    lacking = _export(tmp_path / "lacking", ConstantPolicy())
    (lacking / "policy.json").write_text(json.dumps({"obs": "image", "frame_stack": 1}))
    with pytest.raises(UserError, match="is damaged: it lacks image_size, state_dim, action_dim"):
        PolicyRunnerNode(InProcessTransport("policy_runner", bus, params={"policy_path": str(lacking)}))
