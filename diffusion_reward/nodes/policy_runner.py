"""Policy runner: an exported policy drives the arm through the safety envelope, at a fixed rate.

Inputs: the colour image (`image_topic`, sensor-data QoS) and the arm joint state (`state_topic`,
default `/franka/joint_states`). Every `1 / rate_hz` seconds the node builds the policy's observation
(image cropped + resized like training, `frame_stack` newest frames; state = `state_fields` of
`joint_names`, as the episode recorder stores it), runs the TorchScript policy (`policy.ts` +
`policy.json` from `diffusion-reward export`; torch only), and maps its MetaWorld-style action
`[dx, dy, dz, grip]` to the robot:
- TCP target = current TCP + `action_scale_m` x (dx, dy, dz) (turned by `action_yaw_deg` about the base z
  axis into the base frame), orientation held at the
  one the arm had when it was armed; damped-least-squares IK from the measured joints -> 7 joint targets;
- grip > `grip_threshold` closes the gripper (grasp with `gripper_force`), below opens it; with
  hysteresis, and a gripper command is sent only when the state changes;
- optional Allegro hand: actions 4..19 in [-1, 1] are scaled to the 16 hand joint ranges.
Everything passes `SafetyEnvelope` (joint/TCP limits, step and speed caps, watchdog on image and joint
state age, NaN/inf latch, e-stop). Outputs:
- `/fr3_arm_controller/joint_trajectory` (`trajectory_msgs/JointTrajectory`, the franka_ros2 JTC topic):
  one point, `time_from_start` = `trajectory_horizon_s`; header.stamp = the command time (the JTC starts
  the trajectory then; the source image stamp would start it in the past);
- `gripper_topic` (default `~/gripper_command`, `std_msgs/Float64MultiArray` [width m, speed m/s, force N]):
  the rclpy adapter turns force == 0 into a `franka_msgs/action/Move(width, speed)` goal and force > 0
  into `franka_msgs/action/Grasp(width, epsilon inner 0.005 / outer 0.08, speed, force)` on
  `/franka_gripper/{move,grasp}`;
- `hand_topic` (optional, `Float64MultiArray` of 16, e.g. `/allegro_hand_position_controller/commands`);
- `~/state` (`std_msgs/String`): `waiting for ~/reset`, `running`, `stopped: <reason>`, `shadow`.
On a stop (stale image or joint state, non-finite policy output, e-stop) it publishes ONE hold
trajectory at the measured joints (an empty trajectory does not stop an effort-controlled JTC) and
latches. It starts disarmed: publish `std_msgs/Empty` on `~/reset` to arm (also clears a latched stop);
`~/estop` (`std_msgs/Bool`) true engages the software e-stop, false releases it (then `~/reset`).
`/episode/start` (Empty) restarts the frame stack at the next image and re-sends the gripper target.
`shadow_mode: true` computes everything and publishes it on `~/shadow/joint_trajectory` only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..msgs import Bool, Duration, Empty, Float64MultiArray, Header, Image, JointState, JointTrajectory, \
    JointTrajectoryPoint, MultiArrayDimension, MultiArrayLayout, String, Time
from ..robot_state import STATE_FIELDS, MissingJointsError, joint_vector
from ..safety import ALLEGRO_Q_MAX, ALLEGRO_Q_MIN, ARMS, ArmCommand, FrankaKinematics, SafetyConfig, \
    SafetyEnvelope, Stop, yaw_matrix
from ..transport.base import DEFAULT_QOS, SENSOR_DATA_QOS, Transport
from ..data.frames import Crop, ImageConversionError, image_to_rgb, to_model_frame
from .params import declare_params

ALLEGRO_JOINTS = [f"ah_joint{finger}{joint}" for finger in range(4) for joint in range(4)]
GRIPPER_LAYOUT = MultiArrayLayout(dim=[MultiArrayDimension(label="width_m,speed_mps,force_n", size=3, stride=3)])


@dataclass
class PolicyRunnerParams:
    policy_path: str = field(default="", metadata={"help": "exported policy folder (policy.ts + policy.json)"})
    rate_hz: float = field(default=10.0, metadata={"help": "control rate (one command per period)"})
    image_topic: str = field(default="/camera/camera/color/image_raw", metadata={"help": "colour image topic"})
    crop: str = field(default="center", metadata={"help": "center | none | x,y,w,h, as in training"})
    state_topic: str = field(default="/franka/joint_states", metadata={"help": "arm JointState topic"})
    arm: str = field(default="fr3", metadata={"help": "fr3 | panda (kinematics and joint limits)"})
    joint_names: list = field(default_factory=lambda: list(ARMS["fr3"].joint_names),
                              metadata={"help": "arm joints, in kinematic order"})
    state_fields: list = field(default_factory=lambda: ["position", "velocity"],
                               metadata={"help": "JointState fields of the policy's state input, as recorded"})
    trajectory_topic: str = field(default="/fr3_arm_controller/joint_trajectory",
                                  metadata={"help": "JointTrajectoryController command topic"})
    trajectory_horizon_s: float = field(default=0.2, metadata={"help": "time_from_start of each command point"})
    action_scale_m: float = field(default=0.02, metadata={"help": "TCP metres per unit action per step"})
    action_yaw_deg: float = field(default=0.0, metadata={
        "help": "rotation about base z from the policy's action axes to the base frame (MetaWorld in the sim "
                "bridge: -90)"})
    grip_threshold: float = field(default=0.0, metadata={"help": "grip action above: close, below: open"})
    grip_hysteresis: float = field(default=0.2, metadata={"help": "dead band around grip_threshold"})
    gripper_topic: str = field(default="~/gripper_command", metadata={"help": "gripper target topic (none = off)"})
    gripper_open_width: float = field(default=0.08, metadata={"help": "open width, m"})
    gripper_force: float = field(default=20.0, metadata={"help": "grasp force, N"})
    gripper_speed: float = field(default=0.05, metadata={"help": "finger speed, m/s"})
    hand_topic: str = field(default="none", metadata={"help": "Allegro 16-joint command topic (none = no hand)"})
    hand_state_topic: str = field(default="/joint_states", metadata={"help": "JointState with ah_joint00..33"})
    shadow_mode: bool = field(default=False, metadata={"help": "compute and log, never command the robot"})
    max_observation_age_s: float = field(default=0.2, metadata={"help": "older image/joint state -> stop"})
    max_joint_velocity: float = field(default=0.5, metadata={"help": "rad/s cap on every joint"})
    max_ee_speed: float = field(default=0.2, metadata={"help": "m/s cap on the TCP"})
    workspace_min: list = field(default_factory=lambda: [0.25, -0.35, 0.05], metadata={"help": "TCP box min, m"})
    workspace_max: list = field(default_factory=lambda: [0.75, 0.35, 0.65], metadata={"help": "TCP box max, m"})
    gripper_max_force: float = field(default=40.0, metadata={"help": "N"})

    def __post_init__(self) -> None:
        for name in ("gripper_topic", "hand_topic"):
            if getattr(self, name).lower() == "none":
                setattr(self, name, "")

    def validate(self) -> None:
        if not self.policy_path:
            raise UserError("parameter policy_path is empty: set it to a folder from `diffusion-reward export`")
        if not (self.rate_hz > 0 and self.trajectory_horizon_s > 0 and self.action_scale_m > 0):
            raise UserError("parameters rate_hz, trajectory_horizon_s and action_scale_m must be > 0")
        if self.arm not in ARMS:
            raise UserError(f"parameter arm must be one of {', '.join(ARMS)}, got '{self.arm}'")
        if len(self.joint_names) != 7:
            raise UserError(f"parameter joint_names must list the 7 arm joints, got {len(self.joint_names)}")
        bad = [f for f in self.state_fields if f not in STATE_FIELDS]
        if bad or not self.state_fields:
            raise UserError(f"parameter state_fields must list some of {', '.join(STATE_FIELDS)}")
        if not 0 < self.gripper_open_width <= 0.08:
            raise UserError("parameter gripper_open_width must be in (0, 0.08] m")
        Crop.parse(self.crop)

    def safety_config(self) -> SafetyConfig:
        config = SafetyConfig(
            arm=self.arm, control_period_s=1.0 / self.rate_hz, max_joint_velocity=self.max_joint_velocity,
            max_ee_speed=self.max_ee_speed, workspace_min=tuple(self.workspace_min),
            workspace_max=tuple(self.workspace_max), gripper_max_force=self.gripper_max_force,
            max_observation_age_s=self.max_observation_age_s, shadow_mode=self.shadow_mode)
        config.validate()
        return config


def load_policy(path: str):
    """(TorchScript module, policy.json) of an exported policy; its `PolicySpec` is checked by `load_exported`."""
    from ..offline.policy_folder import load_exported

    try:
        module, meta = load_exported(path)
    except (ValueError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot load the policy in {path}: {str(exc).splitlines()[0]}") from None
    return module, meta


class PolicyRunnerNode:
    def __init__(self, transport: Transport):
        import torch

        self.transport = transport
        self.params = p = declare_params(transport, PolicyRunnerParams)
        self.policy, self.meta = load_policy(p.policy_path)
        self._check_policy_inputs()
        self.envelope = SafetyEnvelope(p.safety_config())
        self.kinematics: FrankaKinematics = self.envelope.kinematics
        self.crop = Crop.parse(p.crop)
        self._torch = torch
        self.frames: list[np.ndarray] = []
        self.refill_frames = False
        self.image_stamp_ns: int | None = None
        self.new_image = False
        self.joint_state: JointState | None = None
        self.hand_state: np.ndarray | None = None
        self.armed = False
        self.orientation: np.ndarray | None = None
        self.gripper_closed: bool | None = None
        self.last_safe_q: np.ndarray | None = None
        self.commands_sent = 0

        self.traj_pub = transport.create_publisher(JointTrajectory, p.trajectory_topic, DEFAULT_QOS)
        self.shadow_pub = transport.create_publisher(JointTrajectory, "~/shadow/joint_trajectory", DEFAULT_QOS)
        self.gripper_pub = (transport.create_publisher(Float64MultiArray, p.gripper_topic, DEFAULT_QOS)
                            if p.gripper_topic else None)
        self.hand_pub = (transport.create_publisher(Float64MultiArray, p.hand_topic, DEFAULT_QOS)
                         if p.hand_topic else None)
        self.state_pub = transport.create_publisher(String, "~/state", DEFAULT_QOS)
        transport.create_subscription(Image, p.image_topic, self._on_image, SENSOR_DATA_QOS)
        transport.create_subscription(JointState, p.state_topic, self._on_joint_state, SENSOR_DATA_QOS)
        if self.hand_pub is not None:
            transport.create_subscription(JointState, p.hand_state_topic, self._on_hand_state, SENSOR_DATA_QOS)
        transport.create_subscription(Empty, "~/reset", lambda _: self.reset(), DEFAULT_QOS)
        transport.create_subscription(Bool, "~/estop", self._on_estop, DEFAULT_QOS)
        transport.create_subscription(Empty, "/episode/start", self._on_episode_start, DEFAULT_QOS)
        transport.create_timer(1.0 / p.rate_hz, self.tick)
        self._publish_state("waiting for ~/reset")
        transport.log("info", f"policy {p.policy_path} ({self.meta.get('algo', '?')}, obs {self.meta.get('obs')}) "
                              f"at {p.rate_hz:g} Hz{' in SHADOW mode' if p.shadow_mode else ''}; "
                              "publish std_msgs/Empty on ~/reset to arm")

    def _check_policy_inputs(self) -> None:
        p, meta = self.params, self.meta
        if meta.get("obs", "image") in ("state", "both"):
            state_dim = len(p.state_fields) * 7
            if meta["state_dim"] != state_dim:
                raise UserError(f"the policy expects a {meta['state_dim']}-D state but {p.state_fields} of 7 joints "
                                f"give {state_dim}; it was trained on other data (sim state?): use an image policy "
                                "or matching state_fields")
        if p.hand_topic and meta["action_dim"] < 20:
            raise UserError(f"hand_topic is set but the policy has {meta['action_dim']} actions; a hand needs 20 "
                            "([dx, dy, dz, grip] + 16 joints)")

    # -- inputs -------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        try:
            frame = to_model_frame(image_to_rgb(msg), self.crop, int(self.meta["image_size"]))
        except ImageConversionError as exc:
            self.transport.log("warn", f"image skipped: {exc}")
            return
        k = int(self.meta["frame_stack"])
        if self.refill_frames or not self.frames:  # first frame of an episode fills the whole stack
            self.frames, self.refill_frames = [frame] * k, False
        else:
            self.frames = self.frames[1:] + [frame]
        self.image_stamp_ns = msg.header.stamp.to_ns()

    def _on_joint_state(self, msg: JointState) -> None:
        self.joint_state = msg

    def _on_hand_state(self, msg: JointState) -> None:
        try:
            self.hand_state = joint_vector(msg, ALLEGRO_JOINTS, ["position"]).astype(np.float64)
        except MissingJointsError:
            pass  # the merged /joint_states also carries arm messages without hand joints

    def _on_episode_start(self, _: Empty) -> None:
        """New episode: the frame stack restarts at its next image, the gripper target is sent again."""
        self.refill_frames = True
        self.gripper_closed = None

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self.envelope.engage_estop()
            self._stop("software e-stop")
        else:
            self.envelope.release_estop()
            self.transport.log("warn", "e-stop released; publish on ~/reset to resume")

    def reset(self) -> None:
        """Arm (or re-arm after a latched stop): hold the current TCP orientation from now on."""
        if not self.envelope.reset():
            self.transport.log("warn", "~/reset ignored: the e-stop is engaged")
            return
        measured = self._measured_q()
        if measured is None:
            self.transport.log("warn", "~/reset ignored: no usable joint state yet")
            return
        self.orientation = self.kinematics.fk(measured)[:3, :3].copy()
        self.armed = True
        self.gripper_closed = None
        self._publish_state("shadow" if self.params.shadow_mode else "running")

    # -- control loop ---------------------------------------------------------------------------
    def tick(self) -> None:
        if not self.armed:
            return
        now = self.transport.now_ns()
        measured = self._measured_q()
        stamps = {"image": self.image_stamp_ns if self.frames else None,
                  "joint_states": self.joint_state.header.stamp.to_ns() if self.joint_state else None}
        action = self._act() if self.frames and measured is not None else None
        command = self._arm_command(action, measured)
        out = self.envelope.filter(command, now, stamps,
                                   measured if measured is not None else np.full(7, np.nan), self.hand_state)
        if isinstance(out, Stop):
            self._stop(out.reason, out.hold_positions)
            return
        trajectory = self._trajectory(out.joint_positions, now)
        if out.shadow:
            self.shadow_pub.publish(trajectory)
            self.transport.log("debug", f"shadow command {np.round(out.joint_positions, 3).tolist()}")
            return
        self.traj_pub.publish(trajectory)
        self.last_safe_q = out.joint_positions
        self.commands_sent += 1
        if out.gripper_width is not None and self.gripper_pub is not None:
            self.gripper_pub.publish(Float64MultiArray(
                layout=GRIPPER_LAYOUT, data=np.array([out.gripper_width, out.gripper_speed, out.gripper_force])))
        if out.hand_positions is not None and self.hand_pub is not None:
            self.hand_pub.publish(Float64MultiArray(data=np.asarray(out.hand_positions, dtype=np.float64)))

    def _act(self) -> np.ndarray:
        torch = self._torch
        image = torch.from_numpy(np.stack(self.frames)[None])  # u8[1,K,H,W,3]
        state = self._state_vector()
        with torch.no_grad():
            action = self.policy(image, torch.from_numpy(state[None]))
        return action[0].double().numpy()

    def _state_vector(self) -> np.ndarray:
        if self.meta.get("obs", "image") == "image":
            return np.zeros(int(self.meta["state_dim"]), np.float32)  # ignored by image policies
        return joint_vector(self.joint_state, self.params.joint_names, self.params.state_fields)

    def _arm_command(self, action: np.ndarray | None, measured: np.ndarray | None) -> ArmCommand:
        """Policy action -> absolute targets. A missing or non-finite action becomes a NaN command, which
        the envelope refuses and latches on (the same path for every bad input)."""
        if action is None or measured is None or not np.all(np.isfinite(action)):
            return ArmCommand(joint_positions=np.full(7, np.nan))
        delta = yaw_matrix(self.params.action_yaw_deg) @ np.clip(action[:3], -1, 1) * self.params.action_scale_m
        ik = self.kinematics.step_tcp(measured, delta, self.orientation)
        if not ik.success:
            self.transport.log("warn", f"IK did not converge ({ik.position_error * 1000:.1f} mm off); "
                                       "sending the closest joints, the envelope limits the step")
        command = ArmCommand(joint_positions=ik.q)
        self._gripper_target(float(action[3]), command)
        if self.hand_pub is not None:
            fraction = (np.clip(action[4:20], -1, 1) + 1) / 2
            command.hand_positions = np.asarray(ALLEGRO_Q_MIN) + fraction * (np.asarray(ALLEGRO_Q_MAX)
                                                                              - np.asarray(ALLEGRO_Q_MIN))
        return command

    def _gripper_target(self, grip: float, command: ArmCommand) -> None:
        p = self.params
        if grip > p.grip_threshold + p.grip_hysteresis / 2:
            closed = True
        elif grip < p.grip_threshold - p.grip_hysteresis / 2:
            closed = False
        else:
            return  # in the dead band: keep the current gripper state
        if closed == self.gripper_closed:
            return
        self.gripper_closed = closed
        command.gripper_width = 0.0 if closed else p.gripper_open_width
        command.gripper_force = p.gripper_force if closed else 0.0
        command.gripper_speed = p.gripper_speed

    def _measured_q(self) -> np.ndarray | None:
        if self.joint_state is None:
            return None
        try:
            return joint_vector(self.joint_state, self.params.joint_names, ["position"]).astype(np.float64)
        except MissingJointsError as exc:
            self.transport.log("warn", str(exc))
            return None

    # -- outputs ------------------------------------------------------------------------------
    def _trajectory(self, q: np.ndarray, now_ns: int) -> JointTrajectory:
        horizon_ns = round(self.params.trajectory_horizon_s * 1e9)
        point = JointTrajectoryPoint(positions=np.asarray(q, dtype=np.float64),
                                     time_from_start=Duration(sec=horizon_ns // 10**9, nanosec=horizon_ns % 10**9))
        return JointTrajectory(header=Header(stamp=Time.from_ns(now_ns)), joint_names=list(self.params.joint_names),
                               points=[point])

    def _stop(self, reason: str, hold: np.ndarray | None = None) -> None:
        """Hold once and stay stopped until ~/reset (ticks do nothing while disarmed)."""
        if not self.armed:
            return
        self.armed = False
        hold = hold if hold is not None else self._measured_q()
        hold = hold if hold is not None and np.all(np.isfinite(hold)) else self.last_safe_q
        if hold is not None and not self.params.shadow_mode:
            self.traj_pub.publish(self._trajectory(hold, self.transport.now_ns()))
        self.transport.log("error", f"STOP: {reason}; holding position, publish on ~/reset to resume")
        self._publish_state(f"stopped: {reason}")

    def _publish_state(self, state: str) -> None:
        self.state_pub.publish(String(data=state))
