"""Sim bridge: a MetaWorld / Adroit task that speaks the real robot's ROS 2 interfaces.

Every control step (`control_dt` of simulated time, paced at `real_time_factor` x real time) it applies
the latest command, steps the env and publishes, all stamped with the simulated time:
- `/clock` (`rosgraph_msgs/Clock`, with `stamp_source: sim`; run the other nodes with use_sim_time:=true);
- the camera on realsense-ros names: `/camera/camera/color/image_raw` (rgb8, `image_size`, exactly the
  frames `collect` records) + `.../camera_info` (pinhole from the MuJoCo camera's fovy), and optionally a
  full-resolution stream (`full_image_topic`, `full_width` x `full_height`, rendered or upscaled);
- MetaWorld: a virtual FR3 on `/franka/joint_states` (`fr3_joint1..7`): its TCP follows the Sawyer hand,
  TCP = Rz(`world_to_base_yaw_deg`) (hand - hand at reset) + the FR3 ready-pose TCP, gripper pointing
  down, joints from IK; fingers on `/franka_gripper/joint_states` (each = 0.04 m x MetaWorld's gripper
  opening). Adroit: the hand's joint positions under their MuJoCo names on `state_topic`.
Commands, the same the real robot gets:
- MetaWorld: `/fr3_arm_controller/joint_trajectory` (last point = target, held like a JTC) -> safety
  envelope (relative to the virtual joints) -> FK -> TCP target -> Sawyer hand delta -> env action; the
  gripper target of the policy runner (`gripper_command_topic`, [width, speed, force]: width < 0.04 m
  closes); or `~/ee_delta` (`Float64MultiArray` [dx, dy, dz, grip] in MetaWorld action units, one step),
  turned into joint targets by IK and passed through the same envelope;
- Adroit: `~/action` (`Float64MultiArray`, the env's action), NaN/inf refused (zero action, latched until
  `~/reset`), clipped to [-1, 1] (the Franka envelope does not apply to the Adroit hand).
Episodes: the bridge publishes `/episode/start` (std_msgs/Empty) after each reset and `/episode/result`
(std_msgs/Bool, success) when the episode ends (time limit, or success with `terminate_on_success`),
the markers the episode recorder listens to; `~/reset` (Empty) ends the current episode now and clears
a latched safety stop. `episodes` > 0 stops the sim after that many episodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import UserError
from ..msgs import Bool, CameraInfo, Clock, Empty, Float64MultiArray, Header, Image, JointState, JointTrajectory, \
    Time
from ..safety import FR3, ArmCommand, FrankaKinematics, SafetyConfig, SafetyEnvelope, Stop, yaw_matrix
from ..transport.base import DEFAULT_QOS, SENSOR_DATA_QOS, QoS, Transport
from ..data.frames import rgb_to_image
from .params import declare_params

FINGERS = ["fr3_finger_joint1", "fr3_finger_joint2"]
GRIPPER_OPEN_WIDTH = 0.08
METAWORLD_STEP_M = 0.01  # Sawyer mocap metres per unit action per physics step (MetaWorld's action_scale)
SIM_STATE_STREAM = "sim_state"  # the envelope's one required stream in the sim: the simulation's own state


@dataclass
class SimBridgeParams:
    task: str = field(default="button-press-v3", metadata={"help": "simulated task (diffusion_reward.sim)"})
    seed: int = field(default=0, metadata={"help": "episode i resets with sim.episode_seed(seed, i)"})
    image_size: int = field(default=64, metadata={"help": "side of the camera image on image_topic"})
    action_repeat: int = field(default=2, metadata={"help": "physics steps per control step"})
    max_episode_steps: int = field(default=0, metadata={"help": "control steps per episode (0: the task's)"})
    terminate_on_success: bool = field(default=False, metadata={"help": "end an episode at its first success"})
    episodes: int = field(default=0, metadata={"help": "stop after this many episodes (0: run forever)"})
    real_time_factor: float = field(default=1.0, metadata={"help": "simulated seconds per wall second"})
    stamp_source: str = field(default="sim", metadata={"help": "sim (publish /clock) | wall (node clock)"})
    image_topic: str = field(default="/camera/camera/color/image_raw", metadata={"help": "camera topic"})
    camera_info_topic: str = field(default="/camera/camera/color/camera_info", metadata={"help": "its CameraInfo"})
    frame_id: str = field(default="camera_color_optical_frame", metadata={"help": "camera frame id"})
    full_image_topic: str = field(default="none", metadata={"help": "full-resolution stream (none = off)"})
    full_width: int = field(default=640, metadata={"help": "full-resolution width"})
    full_height: int = field(default=480, metadata={"help": "full-resolution height"})
    full_mode: str = field(default="render", metadata={"help": "render (same camera, more pixels) | upscale"})
    state_topic: str = field(default="/franka/joint_states", metadata={"help": "arm (or Adroit hand) JointState"})
    gripper_state_topic: str = field(default="/franka_gripper/joint_states", metadata={"help": "finger JointState"})
    trajectory_topic: str = field(default="/fr3_arm_controller/joint_trajectory",
                                  metadata={"help": "JointTrajectory commands (MetaWorld)"})
    gripper_command_topic: str = field(default="/policy_runner/gripper_command",
                                       metadata={"help": "gripper target [width, speed, force] (none = off)"})
    world_to_base_yaw_deg: float = field(default=-90.0,
                                         metadata={"help": "MetaWorld world -> virtual FR3 base, about z"})
    max_joint_velocity: float = field(default=0.5, metadata={"help": "safety envelope, rad/s"})
    max_ee_speed: float = field(default=0.5, metadata={"help": "safety envelope, m/s of the TCP"})

    def __post_init__(self) -> None:
        for name in ("full_image_topic", "gripper_command_topic"):
            if getattr(self, name).lower() == "none":
                setattr(self, name, "")

    def validate(self) -> None:
        from ..sim import task_spec

        task_spec(self.task)
        if self.image_size < 8 or self.action_repeat < 1 or self.max_episode_steps < 0 or self.episodes < 0:
            raise UserError("parameters image_size >= 8, action_repeat >= 1, max_episode_steps >= 0, episodes >= 0")
        if not self.real_time_factor > 0:
            raise UserError(f"parameter real_time_factor must be > 0, got {self.real_time_factor}")
        if self.stamp_source not in ("sim", "wall"):
            raise UserError(f"parameter stamp_source must be sim or wall, got '{self.stamp_source}'")
        if self.full_mode not in ("render", "upscale") or self.full_width < 8 or self.full_height < 8:
            raise UserError("parameter full_mode must be render or upscale, full_width/full_height >= 8")


class SimBridgeNode:
    def __init__(self, transport: Transport):
        from ..sim import make_env

        self.transport = transport
        self.params = p = declare_params(transport, SimBridgeParams)
        self.env = make_env(p.task, seed=p.seed, image_size=p.image_size, action_repeat=p.action_repeat,
                            max_episode_steps=p.max_episode_steps or None,
                            terminate_on_success=p.terminate_on_success)
        self.is_arm = self.env.spec.domain == "metaworld"
        self.control_dt_ns = round(self.env.control_dt * 1e9)
        self.sim_ns = 0
        self.episode_index = 0
        self.episode_success = False
        self.running = False
        self.finished = False
        self.steps = 0
        self.ticks = 0
        if self.is_arm:
            self.kinematics = FrankaKinematics(FR3)
            self.world_to_base = yaw_matrix(p.world_to_base_yaw_deg)
            self.tcp_home = self.kinematics.fk(self.kinematics.q_home)
            self.envelope = SafetyEnvelope(self._safety_config())
            self.q = self.kinematics.q_home.copy()
        self.target_q: np.ndarray | None = None  # held trajectory target
        self.pending_delta: np.ndarray | None = None  # one-step ee delta (MetaWorld action units)
        self.grip = -1.0  # open
        self.pending_action: np.ndarray | None = None  # Adroit
        self.action_latched: str | None = None

        self.clock_pub = transport.create_publisher(Clock, "/clock", QoS(reliable=False, depth=1))
        self.image_pub = transport.create_publisher(Image, p.image_topic, SENSOR_DATA_QOS)
        self.info_pub = transport.create_publisher(CameraInfo, p.camera_info_topic, DEFAULT_QOS)
        self.full_pub = transport.create_publisher(Image, p.full_image_topic, SENSOR_DATA_QOS) \
            if p.full_image_topic else None
        self.state_pub = transport.create_publisher(JointState, p.state_topic, SENSOR_DATA_QOS)
        self.finger_pub = transport.create_publisher(JointState, p.gripper_state_topic, SENSOR_DATA_QOS) \
            if self.is_arm else None
        self.start_pub = transport.create_publisher(Empty, "/episode/start", DEFAULT_QOS)
        self.result_pub = transport.create_publisher(Bool, "/episode/result", DEFAULT_QOS)
        if self.is_arm:
            transport.create_subscription(JointTrajectory, p.trajectory_topic, self._on_trajectory, DEFAULT_QOS)
            transport.create_subscription(Float64MultiArray, "~/ee_delta", self._on_ee_delta, DEFAULT_QOS)
            if p.gripper_command_topic:
                transport.create_subscription(Float64MultiArray, p.gripper_command_topic, self._on_gripper,
                                              DEFAULT_QOS)
        else:
            transport.create_subscription(Float64MultiArray, "~/action", self._on_action, DEFAULT_QOS)
        transport.create_subscription(Empty, "~/reset", lambda _: self.end_episode(), DEFAULT_QOS)
        self.timer = transport.create_timer(self.env.control_dt / p.real_time_factor, self.tick)
        transport.log("info", f"simulating {p.task} ({self.env.spec.domain}, camera {self.env.spec.camera}) "
                              f"every {self.env.control_dt * 1000:.0f} ms of sim time")

    def _safety_config(self) -> SafetyConfig:
        """The envelope the sim 'robot' enforces: the default limits, with the workspace box = the Sawyer
        hand's reachable box mapped into the virtual base frame (the sim cannot leave it anyway)."""
        raw = self.env.raw
        low, high = raw.mocap_low, raw.mocap_high
        corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
        mapped = np.array([self._to_base(c, raw.hand_init_pos) for c in corners])
        margin = 0.05
        return SafetyConfig(control_period_s=self.env.control_dt, max_joint_velocity=self.params.max_joint_velocity,
                            max_ee_speed=self.params.max_ee_speed, required_streams=(SIM_STATE_STREAM,),
                            workspace_min=tuple(mapped.min(0) - margin), workspace_max=tuple(mapped.max(0) + margin))

    # -- frames -----------------------------------------------------------------------------------
    def _to_base(self, hand_world: np.ndarray, hand_origin: np.ndarray) -> np.ndarray:
        return self.world_to_base @ (np.asarray(hand_world) - hand_origin) + self.tcp_home[:3, 3]

    def _to_world_delta(self, base_delta: np.ndarray) -> np.ndarray:
        return self.world_to_base.T @ base_delta

    def _follow_hand(self) -> None:
        """Virtual FR3 joints whose TCP is at the Sawyer hand (IK from the previous joints)."""
        target = self.tcp_home.copy()
        target[:3, 3] = self._to_base(self.env.state[:3], self.hand_origin)
        result = self.kinematics.ik(target, self.q, restarts=2)
        self.q = result.q

    # -- commands -----------------------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:
            self.target_q = None  # an empty trajectory: stop tracking, hold
            return
        index = {n: i for i, n in enumerate(msg.joint_names)}
        missing = [n for n in FR3.joint_names if n not in index]
        if missing:
            self.transport.log("warn", f"trajectory ignored: no {', '.join(missing)}")
            return
        positions = np.asarray(msg.points[-1].positions, dtype=np.float64)
        self.target_q = positions[[index[n] for n in FR3.joint_names]]

    def _on_ee_delta(self, msg: Float64MultiArray) -> None:
        self.pending_delta = np.asarray(msg.data, dtype=np.float64)

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        width = float(np.asarray(msg.data, dtype=np.float64)[0]) if len(msg.data) else np.nan
        if np.isfinite(width):
            self.grip = 1.0 if width < GRIPPER_OPEN_WIDTH / 2 else -1.0

    def _on_action(self, msg: Float64MultiArray) -> None:
        self.pending_action = np.asarray(msg.data, dtype=np.float64)

    def _arm_action(self) -> np.ndarray:
        """The env action for this step: the command through the safety envelope, as a hand delta."""
        command = None
        if self.pending_delta is not None:
            command, self.pending_delta = self._ee_delta_command(self.pending_delta), None
        elif self.target_q is not None:
            command = ArmCommand(joint_positions=self.target_q)
        move = np.zeros(3)
        if command is not None:
            # the simulated robot's observation is its own state, current by construction (SIM_STATE_STREAM)
            out = self.envelope.filter(command, self.sim_ns, {SIM_STATE_STREAM: self.sim_ns}, self.q)
            if isinstance(out, Stop):
                if not out.reason.startswith("latched"):
                    self.transport.log("error", f"command refused: {out.reason}; ~/reset to resume")
                self.target_q = None
            else:
                base_delta = out.tcp_position - self.kinematics.fk(self.q)[:3, 3]
                move = self._to_world_delta(base_delta) / (METAWORLD_STEP_M * self.env.action_repeat)
        return np.concatenate([np.clip(move, -1, 1), [self.grip]])

    def _ee_delta_command(self, delta: np.ndarray) -> ArmCommand:
        """[dx, dy, dz, grip] in MetaWorld action units -> joint targets by IK. Malformed or non-finite
        input becomes a NaN command, which the envelope refuses and latches on."""
        if delta.shape != (4,) or not np.all(np.isfinite(delta)):
            return ArmCommand(joint_positions=np.full(7, np.nan))
        self.grip = float(np.clip(delta[3], -1, 1))
        base_delta = self.world_to_base @ (np.clip(delta[:3], -1, 1) * METAWORLD_STEP_M * self.env.action_repeat)
        return ArmCommand(joint_positions=self.kinematics.step_tcp(self.q, base_delta).q)

    def _hand_action(self) -> np.ndarray:
        action = np.zeros(self.env.action_dim)
        if self.pending_action is not None:
            candidate, self.pending_action = self.pending_action, None
            if candidate.shape != (self.env.action_dim,) or not np.all(np.isfinite(candidate)):
                self.action_latched = self.action_latched or "non-finite or wrong-size action"
                self.transport.log("error", f"action refused ({self.action_latched}); ~/reset to resume")
            elif self.action_latched is None:
                action = np.clip(candidate, -1, 1)
        return action

    # -- episodes and stepping ------------------------------------------------------------------------
    def start_episode(self) -> None:
        from ..sim import episode_seed

        self.env.reset(seed=episode_seed(self.params.seed, self.episode_index))
        self.steps, self.episode_success, self.running = 0, False, True
        self.target_q, self.pending_delta, self.pending_action, self.grip = None, None, None, -1.0
        self.action_latched = None
        if self.is_arm:
            self.envelope.reset()
            self.hand_origin = self.env.state[:3].astype(np.float64)  # the virtual arm starts in its ready pose
            self.q = self.kinematics.q_home.copy()
            self._follow_hand()
        self.start_pub.publish(Empty())
        self._publish_observation()

    def end_episode(self) -> None:
        if self.running:
            self.result_pub.publish(Bool(data=self.episode_success))
            self.transport.log("info", f"episode {self.episode_index}: {self.steps} steps, "
                                       f"success={self.episode_success}")
            self.running = False
            self.episode_index += 1
        elif self.is_arm:
            self.envelope.reset()
        self.action_latched = None

    def tick(self) -> None:
        if self.finished:
            return
        if self.ticks:  # every tick is one control period of simulated time, resets included
            self.sim_ns += self.control_dt_ns
        self.ticks += 1
        if not self.running:
            if self.params.episodes and self.episode_index >= self.params.episodes:
                self.finished = True
                self.timer.cancel()
                self.transport.log("info", f"done: {self.episode_index} episodes")
                return
            self.start_episode()
            return
        action = self._arm_action() if self.is_arm else self._hand_action()
        _, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self.episode_success |= bool(info["success"])
        if self.is_arm:
            self._follow_hand()
        self._publish_observation()
        if terminated or truncated:
            self.end_episode()

    # -- outputs ------------------------------------------------------------------------------------
    def _stamp_ns(self) -> int:
        return self.sim_ns if self.params.stamp_source == "sim" else self.transport.now_ns()

    def _publish_observation(self) -> None:
        p = self.params
        stamp = Time.from_ns(self._stamp_ns())
        if p.stamp_source == "sim":
            self.clock_pub.publish(Clock(clock=stamp))
        image = self.env.render()
        self._publish_image(self.image_pub, image, stamp)
        if self.full_pub is not None:
            full = self.env.render(p.full_height, p.full_width) if p.full_mode == "render" else \
                cv2.resize(image, (p.full_width, p.full_height), interpolation=cv2.INTER_LINEAR)
            self._publish_image(self.full_pub, full, stamp)
        header = Header(stamp=stamp, frame_id="")
        if self.is_arm:
            self.state_pub.publish(JointState(header=header, name=list(FR3.joint_names), position=self.q.copy(),
                                              velocity=np.zeros(7), effort=np.zeros(7)))
            finger = 0.5 * GRIPPER_OPEN_WIDTH * float(np.clip(self.env.state[3], 0.0, 1.0))
            self.finger_pub.publish(JointState(header=header, name=list(FINGERS), position=np.full(2, finger)))
        else:
            model = self.env.model
            names = [model.joint(j).name for j in range(model.njnt)]
            self.state_pub.publish(JointState(header=header, name=names,
                                              position=self.env.data.qpos[model.jnt_qposadr].copy()))

    def _publish_image(self, publisher, rgb: np.ndarray, stamp: Time) -> None:
        msg = rgb_to_image(rgb, stamp.to_ns(), self.params.frame_id)
        publisher.publish(msg)
        if publisher is self.image_pub:
            self.info_pub.publish(self._camera_info(msg.header, rgb.shape[0], rgb.shape[1]))

    def _camera_info(self, header: Header, height: int, width: int) -> CameraInfo:
        """Pinhole intrinsics of the MuJoCo camera (fovy is vertical; square pixels)."""
        spec = self.env.spec
        model = self.env.model
        fovy = model.vis.global_.fovy if spec.free_camera else model.cam_fovy[model.camera(spec.camera).id]
        f = 0.5 * height / np.tan(np.radians(fovy) / 2)
        cx, cy = (width - 1) / 2, (height - 1) / 2
        return CameraInfo(header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
                          k=np.array([f, 0, cx, 0, f, cy, 0, 0, 1.0]), r=np.eye(3).reshape(-1),
                          p=np.array([f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1.0, 0]))

    def close(self) -> None:
        self.env.close()
