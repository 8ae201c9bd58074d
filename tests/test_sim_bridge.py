"""Sim bridge on the in-process bus: real MuJoCo, the robot's topics, commands through the envelope."""
import json

import numpy as np
import pytest
import torch

from diffusion_reward.errors import UserError
from diffusion_reward.msgs import Bool, CameraInfo, Clock, Empty, Float64MultiArray, Image, JointState, String
from diffusion_reward.data.frames import Crop, image_to_rgb, to_model_frame
from diffusion_reward.nodes.policy_runner import PolicyRunnerNode
from diffusion_reward.nodes.sim_bridge import SimBridgeNode
from diffusion_reward.safety import FR3, FrankaKinematics
from diffusion_reward.transport.base import DEFAULT_QOS, SENSOR_DATA_QOS
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

DT = 0.025  # MetaWorld control period at action repeat 2


class Listener:
    def __init__(self, bus):
        self.transport = InProcessTransport("listener", bus)

    def listen(self, msg_type, topic, qos=SENSOR_DATA_QOS) -> list:
        received = []
        self.transport.create_subscription(msg_type, topic, received.append, qos)
        return received

    def publisher(self, msg_type, topic):
        return self.transport.create_publisher(msg_type, topic, DEFAULT_QOS)


def _bridge(bus, **params):
    return SimBridgeNode(InProcessTransport("sim_bridge", bus, params={"task": "reach-v3", **params}))


def test_camera_joint_states_clock_and_episode_markers():
    bus = InProcessBus()
    listener = Listener(bus)
    images = listener.listen(Image, "/camera/camera/color/image_raw")
    infos = listener.listen(CameraInfo, "/camera/camera/color/camera_info", DEFAULT_QOS)
    joints = listener.listen(JointState, "/franka/joint_states")
    fingers = listener.listen(JointState, "/franka_gripper/joint_states")
    clock = listener.listen(Clock, "/clock")
    starts = listener.listen(Empty, "/episode/start", DEFAULT_QOS)
    results = listener.listen(Bool, "/episode/result", DEFAULT_QOS)
    bridge = _bridge(bus, max_episode_steps=3, episodes=2)
    for _ in range(12):
        bus.advance(DT)
    assert bridge.finished
    assert len(starts) == 2 and [r.data for r in results] == [False, False]
    assert len(images) == 2 * (1 + 3)  # reset frame + 3 steps, per episode
    stamps = [m.header.stamp.to_ns() for m in images]
    assert stamps == [round(i * DT * 1e9) for i in range(8)]  # simulated time, one control period apart
    assert [c.clock.to_ns() for c in clock] == stamps
    first = image_to_rgb(images[0])
    assert first.shape == (64, 64, 3) and images[0].encoding == "rgb8"
    assert images[0].header.frame_id == "camera_color_optical_frame"
    assert infos[0].k[0] > 0 and infos[0].k[2] == pytest.approx(31.5) and infos[0].height == 64
    assert joints[0].name == list(FR3.joint_names) and len(joints) == 8
    kin = FrankaKinematics(FR3)
    np.testing.assert_allclose(kin.fk(joints[0].position)[:3, 3], kin.fk(kin.q_home)[:3, 3], atol=2e-3)
    assert fingers[0].name == ["fr3_finger_joint1", "fr3_finger_joint2"]
    assert 0.0 <= fingers[0].position[0] <= 0.04
    assert not np.array_equal(first, image_to_rgb(images[4]))  # episode 1: another seed, another layout
    bridge.close()


def test_ee_delta_moves_the_hand_and_nan_is_refused_until_reset():
    bus = InProcessBus()
    listener = Listener(bus)
    joints = listener.listen(JointState, "/franka/joint_states")
    delta = listener.publisher(Float64MultiArray, "/sim_bridge/ee_delta")
    reset = listener.publisher(Empty, "/sim_bridge/reset")
    bridge = _bridge(bus)
    bus.advance(DT)  # episode starts
    hand0 = bridge.env.state[:3].copy()
    for _ in range(8):
        delta.publish(Float64MultiArray(data=np.array([0.0, 1.0, 0.0, -1.0])))  # MetaWorld +y: away from the base
        bus.advance(DT)
    hand1 = bridge.env.state[:3].copy()
    # 8 steps = 0.2 s; the envelope's 0.5 rad/s joint cap, not MetaWorld's 0.8 m/s, sets the pace
    assert hand1[1] - hand0[1] > 0.015 and abs(hand1[0] - hand0[0]) < 0.01
    kin = FrankaKinematics(FR3)
    tcp0, tcp1 = kin.fk(joints[0].position)[:3, 3], kin.fk(joints[-1].position)[:3, 3]
    assert tcp1[0] - tcp0[0] > 0.015  # the virtual FR3 moved forward (+x of its base)
    # speed cap of the bridge's envelope: 0.5 m/s = 12.5 mm per control step
    steps = np.diff([kin.fk(j.position)[:3, 3] for j in joints], axis=0)
    assert np.max(np.linalg.norm(steps, axis=1)) < 0.0125 + 0.005

    delta.publish(Float64MultiArray(data=np.array([0.0, np.nan, 0.0, 0.0])))
    bus.advance(DT)
    assert any("non-finite" in message for _, message in bridge.transport.logs)
    held = bridge.env.state[:3].copy()
    for _ in range(4):
        delta.publish(Float64MultiArray(data=np.array([0.0, 1.0, 0.0, -1.0])))
        bus.advance(DT)
    assert abs(bridge.env.state[1] - held[1]) < 0.005  # latched: valid commands are refused too
    reset.publish(Empty())  # ends the episode and clears the latch
    bus.advance(DT)
    bus.advance(DT)
    start = bridge.env.state[:3].copy()
    for _ in range(4):
        delta.publish(Float64MultiArray(data=np.array([0.0, 1.0, 0.0, -1.0])))
        bus.advance(DT)
    assert bridge.env.state[1] - start[1] > 0.005  # moving again
    bridge.close()


class ForwardPolicy(torch.nn.Module):
    """MetaWorld action +y (forward) with the gripper closing, whatever it sees."""

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        action = torch.zeros(image.shape[0], 4)
        action[:, 1] = 1.0
        action[:, 3] = 1.0
        return action


def test_policy_runner_drives_the_simulated_arm_on_sim_time(tmp_path):
    folder = tmp_path / "policy"
    folder.mkdir()
    torch.jit.script(ForwardPolicy()).save(str(folder / "policy.ts"))
    (folder / "policy.json").write_text(json.dumps({"obs": "image", "frame_stack": 1, "image_size": 64,
                                                    "state_dim": 39, "action_dim": 4}))
    bus = InProcessBus()
    listener = Listener(bus)
    states = listener.listen(String, "/policy_runner/state", DEFAULT_QOS)
    bridge = _bridge(bus)
    runner = PolicyRunnerNode(InProcessTransport("policy_runner", bus, params={
        "policy_path": str(folder), "use_sim_time": True, "action_yaw_deg": -90.0, "max_ee_speed": 0.2}))
    bus.advance(DT)
    hand0 = bridge.env.state[:4].copy()
    listener.publisher(Empty, "/policy_runner/reset").publish(Empty())
    for _ in range(40):  # 1 s of simulated time: 10 runner periods
        bus.advance(DT)
    hand1 = bridge.env.state[:4]
    assert states[-1].data == "running", states[-1].data
    assert runner.commands_sent >= 8
    assert hand1[1] - hand0[1] > 0.05  # moved forward in MetaWorld: the whole loop agrees on the axes
    assert abs(hand1[0] - hand0[0]) < 0.02 and abs(hand1[2] - hand0[2]) < 0.02
    assert hand1[1] - hand0[1] < 0.2 * 1.0 + 0.01  # never faster than the runner's 0.2 m/s cap
    assert hand1[3] < hand0[3]  # the gripper closed (MetaWorld's finger opening shrank)
    bridge.close()


def test_full_resolution_stream_shows_the_same_view():
    bus = InProcessBus()
    listener = Listener(bus)
    small = listener.listen(Image, "/camera/camera/color/image_raw")
    full = listener.listen(Image, "/camera/camera/color/image_full")
    bridge = _bridge(bus, full_image_topic="/camera/camera/color/image_full")
    bus.advance(DT)
    big = image_to_rgb(full[0])
    assert big.shape == (480, 640, 3)
    # the labeller's default center crop + resize of the full stream ~ the 64x64 stream
    as_model = to_model_frame(big, Crop.parse("center"), 64).astype(float)
    assert np.abs(as_model - image_to_rgb(small[0]).astype(float)).mean() < 12
    bridge.close()


def test_adroit_bridge_takes_hand_actions_and_refuses_nan():
    bus = InProcessBus()
    listener = Listener(bus)
    joints = listener.listen(JointState, "/franka/joint_states")
    action = listener.publisher(Float64MultiArray, "/sim_bridge/action")
    bridge = SimBridgeNode(InProcessTransport("sim_bridge", bus, params={"task": "adroit-door"}))
    bus.advance(0.02)
    assert len(joints[0].name) == bridge.env.model.njnt and "ARTz" in joints[0].name
    action.publish(Float64MultiArray(data=np.full(bridge.env.action_dim, 0.5)))
    bus.advance(0.02)
    assert not np.allclose(joints[-1].position, joints[0].position)
    action.publish(Float64MultiArray(data=np.full(bridge.env.action_dim, np.nan)))
    bus.advance(0.02)
    assert bridge.action_latched and np.all(np.isfinite(bridge.env.state))
    bridge.close()


def test_bad_parameters_fail_at_start_up():
    with pytest.raises(UserError, match="unknown task"):
        _bridge(InProcessBus(), task="reach-v9")
    with pytest.raises(UserError, match="stamp_source"):
        _bridge(InProcessBus(), stamp_source="gps")
