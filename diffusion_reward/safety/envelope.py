"""The safety envelope every robot command passes through, whatever produced it.

    envelope = SafetyEnvelope(SafetyConfig())                     # conservative defaults, FR3
    out = envelope.filter(ArmCommand(joint_positions=q_target, gripper_width=0.08),
                          now_ns, obs_stamps={"image": t_img, "joint_states": t_js}, measured_q=q)
    if isinstance(out, Stop): hold position (out.hold_positions), log out.reason
    elif not out.shadow: send out.joint_positions, out.gripper_width, ...

What `filter` guarantees for every `SafeCommand` it returns (property-tested with hypothesis):
- all values finite; arm joints inside the FR3 limits minus `joint_margin` (a joint measured inside that
  margin band may only move back toward it);
- per command, each joint moves at most min(`max_joint_step`, `max_joint_velocity` x `control_period_s`)
  from the measured position, and the TCP at most `max_ee_speed` x `control_period_s`;
- the TCP (forward kinematics of the commanded joints) stays inside the `workspace_min/max` box;
- gripper width in [0, `gripper_max_width`], force in [0, `gripper_max_force`], speed in (0, `gripper_max_speed`];
- Allegro hand joints inside their limits and at most `hand_max_step` from the last hand command.

It returns `Stop` (hold the measured position) and LATCHES, until `reset()`, on: a non-finite value anywhere
in the command or the measured joints, a gripper value that is not one number, a stale or missing observation
stream (older than `max_observation_age_s`, or stamped in the future), a clock or stamp it cannot read (NaN,
inf, not a number), the software e-stop, or a measured TCP outside the workspace. It fails closed: a value
it cannot interpret gives a Stop, never an exception and never a SafeCommand. Out-of-range finite values are
clipped, not refused, and the clip reasons are reported.
Shadow mode computes everything and marks the result `shadow=True`: callers log it and never send it.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import UserError
from .kinematics import ARMS, FrankaKinematics

# Allegro hand v4 joint limits (allegro_hand_description URDF), order ah_joint00..03, 10..13, 20..23, 30..33:
# index, middle, ring fingers share limits; the thumb (30..33) differs.
_FINGER_MIN, _FINGER_MAX = (-0.47, -0.196, -0.174, -0.227), (0.47, 1.61, 1.709, 1.618)
_THUMB_MIN, _THUMB_MAX = (0.263, -0.105, -0.189, -0.162), (1.396, 1.163, 1.644, 1.719)
ALLEGRO_Q_MIN = _FINGER_MIN * 3 + _THUMB_MIN
ALLEGRO_Q_MAX = _FINGER_MAX * 3 + _THUMB_MAX
GRIPPER_FIELDS = ("gripper_width", "gripper_force", "gripper_speed")


@dataclass
class SafetyConfig:
    """Conservative defaults for learned-policy rollouts on an FR3 (franka_ros2's documented limits, with margin)."""

    arm: str = "fr3"  # fr3 | panda
    control_period_s: float = 0.1  # one command per period (10 Hz)
    joint_margin: float = 0.05  # rad kept clear of every hard joint limit
    max_joint_velocity: float = 0.5  # rad/s, every joint
    max_joint_step: float = 0.05  # rad per command
    max_ee_speed: float = 0.2  # m/s of the TCP
    workspace_min: tuple[float, float, float] = (0.25, -0.35, 0.05)  # TCP box in the base frame, m
    workspace_max: tuple[float, float, float] = (0.75, 0.35, 0.65)
    gripper_max_width: float = 0.08  # m (Franka Hand stroke)
    gripper_max_force: float = 40.0  # N (the hand allows 70 N continuous)
    gripper_max_speed: float = 0.1  # m/s
    hand_max_step: float = 0.1  # rad per command, Allegro joints
    max_observation_age_s: float = 0.2  # stale camera or joint state -> stop
    required_streams: tuple[str, ...] = ("image", "joint_states")
    shadow_mode: bool = False

    def validate(self) -> None:
        if self.arm not in ARMS:
            raise UserError(f"safety arm must be one of {', '.join(ARMS)}, got {self.arm!r}")
        positive = ("control_period_s", "max_joint_velocity", "max_joint_step", "max_ee_speed", "gripper_max_width",
                    "gripper_max_speed", "hand_max_step", "max_observation_age_s")
        for name in positive:
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise UserError(f"safety {name} must be a positive number, got {value}")
        if not (np.isfinite(self.gripper_max_force) and self.gripper_max_force >= 0):
            raise UserError(f"safety gripper_max_force must be >= 0, got {self.gripper_max_force}")
        if not 0 <= self.joint_margin < 0.3:
            raise UserError(f"safety joint_margin must be in [0, 0.3) rad, got {self.joint_margin}")
        streams = self.required_streams
        if isinstance(streams, str) or not streams or not all(isinstance(n, str) and n for n in streams):
            raise UserError(f"safety required_streams must name at least one observation stream, got {streams!r}: "
                            "without one the watchdog could never stop the arm")
        low, high = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if low.shape != (3,) or high.shape != (3,) or not np.all(np.isfinite(low)) or not np.all(low < high):
            raise UserError(f"safety workspace_min {self.workspace_min} must be below workspace_max "
                            f"{self.workspace_max} on x, y and z")


@dataclass
class ArmCommand:
    """What a policy (or teleop) wants: absolute targets. None = leave that part alone."""

    joint_positions: np.ndarray  # f64[7] target arm joints, rad
    gripper_width: float | None = None  # m
    gripper_force: float | None = None  # N; > 0 means grasp
    gripper_speed: float | None = None  # m/s
    hand_positions: np.ndarray | None = None  # f64[16] Allegro joint targets, rad


@dataclass
class SafeCommand:
    """A command inside the envelope. `shadow`: computed in shadow mode, never send it."""

    joint_positions: np.ndarray
    gripper_width: float | None = None
    gripper_force: float | None = None
    gripper_speed: float | None = None
    hand_positions: np.ndarray | None = None
    tcp_position: np.ndarray = field(default_factory=lambda: np.zeros(3))  # FK of joint_positions
    clipped: tuple[str, ...] = ()  # what was limited, e.g. ("joint_limits", "ee_step")
    shadow: bool = False


@dataclass
class Stop:
    """Do not move: hold `hold_positions` (the measured joints; None when they are unusable)."""

    reason: str
    hold_positions: np.ndarray | None
    latched: bool = True


class SafetyEnvelope:
    def __init__(self, config: SafetyConfig | None = None):
        self.config = config = config or SafetyConfig()
        config.validate()
        self.kinematics = FrankaKinematics(ARMS[config.arm])
        self.q_low = self.kinematics.q_min + config.joint_margin
        self.q_high = self.kinematics.q_max - config.joint_margin
        self.joint_step = min(config.max_joint_step, config.max_joint_velocity * config.control_period_s)
        self.ee_step = config.max_ee_speed * config.control_period_s
        self.box_low = np.asarray(config.workspace_min, dtype=np.float64)
        self.box_high = np.asarray(config.workspace_max, dtype=np.float64)
        self.hand_low, self.hand_high = np.asarray(ALLEGRO_Q_MIN), np.asarray(ALLEGRO_Q_MAX)
        self.latched_reason: str | None = None
        self.estop_engaged = False
        self._last_hand: np.ndarray | None = None

    # -- operator controls -----------------------------------------------------------------------
    def engage_estop(self) -> None:
        self.estop_engaged = True
        self.latched_reason = self.latched_reason or "software e-stop"

    def release_estop(self) -> None:
        """Release the e-stop; motion still needs `reset()`."""
        self.estop_engaged = False

    def reset(self) -> bool:
        """Clear a latched stop (not while the e-stop is engaged). Returns whether commands flow again."""
        if self.estop_engaged:
            return False
        self.latched_reason = None
        self._last_hand = None
        return True

    # -- the filter ----------------------------------------------------------------------------
    def filter(self, command: ArmCommand, now_ns: int, obs_stamps: Mapping[str, int | None],
               measured_q: np.ndarray, measured_hand: np.ndarray | None = None) -> SafeCommand | Stop:
        measured = _as_vector(measured_q, 7)
        hold = measured if measured is not None and np.all(np.isfinite(measured)) else None
        if self.estop_engaged:
            return self._stop("software e-stop", hold)
        if self.latched_reason is not None:
            return Stop(f"latched: {self.latched_reason} (reset required)", hold)
        if hold is None:
            return self._stop("measured joint positions missing or not finite", None)
        stale = self._stale_stream(now_ns, obs_stamps)
        if stale:
            return self._stop(stale, hold)
        if not _all_finite(command):
            return self._stop("non-finite value in the command (NaN or inf)", hold)
        not_scalar = next((n for n in GRIPPER_FIELDS if getattr(command, n) is not None
                           and _real_number(getattr(command, n)) is None), None)
        if not_scalar:
            return self._stop(f"command {not_scalar} is not a single number", hold)
        if not self.kinematics.within_limits(measured):
            return self._stop("measured joint positions are outside the hard joint limits", hold)
        tcp_now = self.kinematics.fk(measured)[:3, 3]
        if not self._in_box(tcp_now):
            return self._stop(f"measured TCP {np.round(tcp_now, 3).tolist()} is outside the workspace", hold)

        clipped: list[str] = []
        target = _as_vector(command.joint_positions, 7)
        if target is None:
            return self._stop("command has no 7 arm joint positions", hold)
        # a joint already inside the margin band may only move back toward the band
        q = _clip(target, np.minimum(self.q_low, measured), np.maximum(self.q_high, measured), "joint_limits",
                  clipped)
        largest = float(np.max(np.abs(q - measured)))
        if largest > self.joint_step:  # shorten the whole step: clipping joints one by one bends the TCP path
            q = measured + (q - measured) * (self.joint_step / largest)
            q = np.clip(q, measured - self.joint_step, measured + self.joint_step)  # rounding
            clipped.append("joint_step")
        q, tcp = self._keep_tcp_inside(measured, tcp_now, q, clipped)
        hand = None
        if command.hand_positions is not None:
            reference = self._last_hand if self._last_hand is not None else _as_vector(measured_hand, 16)
            hand = self._filter_hand(command.hand_positions, reference, clipped)
            if hand is None:
                return self._stop("hand command needs 16 joints and a measured or previous hand position", hold)
            if not self.config.shadow_mode:
                self._last_hand = hand
        c = self.config
        return SafeCommand(
            joint_positions=q,
            gripper_width=_clip_scalar(command.gripper_width, 0.0, c.gripper_max_width, "gripper_width", clipped),
            gripper_force=_clip_scalar(command.gripper_force, 0.0, c.gripper_max_force, "gripper_force", clipped),
            gripper_speed=_clip_scalar(command.gripper_speed, 1e-3, c.gripper_max_speed, "gripper_speed", clipped),
            hand_positions=hand, tcp_position=tcp, clipped=tuple(clipped), shadow=c.shadow_mode)

    # -- parts ---------------------------------------------------------------------------------
    def _stop(self, reason: str, hold: np.ndarray | None) -> Stop:
        self.latched_reason = self.latched_reason or reason
        return Stop(reason, hold)

    def _stale_stream(self, now_ns: int, obs_stamps: Mapping[str, int | None]) -> str | None:
        """Why the observations cannot be trusted now (missing, stale, future or unreadable stamps), or None."""
        max_age_ns = self.config.max_observation_age_s * 1e9
        now = _real_number(now_ns)
        if now is None:
            return f"the clock reads {now_ns!r}, not a finite number of ns"
        if not isinstance(obs_stamps, Mapping):
            return f"observation stamps are {type(obs_stamps).__name__}, not a mapping of stream -> ns"
        for stream in self.config.required_streams:
            if obs_stamps.get(stream) is None:
                return f"no {stream} received"
            stamp = _real_number(obs_stamps[stream])
            if stamp is None:
                return f"{stream} is stamped {obs_stamps[stream]!r}, not a finite number of ns"
            age_ns = now - stamp
            if age_ns > max_age_ns:
                return f"{stream} is stale ({age_ns / 1e9:.3f} s old, limit {self.config.max_observation_age_s} s)"
            if age_ns < -max_age_ns:
                return f"{stream} is stamped {-age_ns / 1e9:.3f} s in the future (clock problem)"
        return None

    def _in_box(self, p: np.ndarray) -> bool:
        return bool(np.all(p >= self.box_low) and np.all(p <= self.box_high))

    def _keep_tcp_inside(self, measured, tcp_now, q, clipped):
        """Shorten the joint step (same direction) until the TCP is in the box and moved <= ee_step.

        fraction 0 (stay) is always admissible because the measured TCP is inside the box; bisection
        finds the largest admissible fraction of the step to 1/1024.
        """
        def admissible(fraction: float) -> tuple[bool, np.ndarray, np.ndarray]:
            candidate = measured + fraction * (q - measured)
            tcp = self.kinematics.fk(candidate)[:3, 3]
            ok = self._in_box(tcp) and np.linalg.norm(tcp - tcp_now) <= self.ee_step
            return ok, candidate, tcp

        ok, candidate, tcp = admissible(1.0)
        if ok:
            return candidate, tcp
        low, best = 0.0, (measured.copy(), tcp_now)
        high = 1.0
        for _ in range(10):
            middle = (low + high) / 2
            ok, candidate, tcp = admissible(middle)
            if ok:
                low, best = middle, (candidate, tcp)
            else:
                high = middle
        clipped.append("tcp_workspace_or_step")
        return best

    def _filter_hand(self, hand_command, reference, clipped):
        target = _as_vector(hand_command, 16)
        if target is None or reference is None or not np.all(np.isfinite(reference)):
            return None
        hand = _clip(target, self.hand_low, self.hand_high, "hand_limits", clipped)
        step = self.config.hand_max_step
        low = np.maximum(reference - step, self.hand_low)
        high = np.minimum(reference + step, self.hand_high)
        return _clip(hand, np.minimum(low, high), np.maximum(low, high), "hand_step", clipped)


def _as_vector(values, size: int) -> np.ndarray | None:
    if values is None:
        return None
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return array if array.shape == (size,) else None


def _real_number(value) -> int | float | None:
    """`value` as a Python int or float if it is one finite real number (not a bool, string or array; integers
    within int64, the range of ns stamps), else None. Integers stay exact: ns near 1e18 exceed float precision."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value) if abs(int(value)) < 2**63 else None
    return float(value) if math.isfinite(value) else None


def _all_finite(command: ArmCommand) -> bool:
    for value in (command.joint_positions, command.gripper_width, command.gripper_force, command.gripper_speed,
                  command.hand_positions):
        if value is None:
            continue
        try:
            if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
                return False
        except (TypeError, ValueError):
            return False
    return True


def _clip(values: np.ndarray, low: np.ndarray, high: np.ndarray, reason: str, clipped: list[str]) -> np.ndarray:
    out = np.clip(values, low, high)
    if not np.array_equal(out, values) and reason not in clipped:
        clipped.append(reason)
    return out


def _clip_scalar(value: float | None, low: float, high: float, reason: str, clipped: list[str]) -> float | None:
    if value is None:
        return None
    out = float(min(max(float(value), low), high))
    if out != float(value):
        clipped.append(reason)
    return out
