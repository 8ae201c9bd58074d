"""Franka FR3 / Panda forward and inverse kinematics from the public (modified, Craig) DH parameters.

Frames: base = `fr3_link0`; flange = `fr3_link8` (d = 0.107 m after joint 7); TCP = the Franka Hand's
`fr3_hand_tcp`, 0.1034 m further along the flange z axis and turned -45 deg about it (what
`o_t_ee` reports when the gripper is loaded). Units: metres, radians. numpy only.

    kin = FrankaKinematics(FR3)
    pose = kin.fk(q)                                  # f64[4,4] base -> TCP
    result = kin.ik(pose, q_start)                    # damped least squares, joint limits respected
    result = kin.step_tcp(q, [0.01, 0, 0])            # move the TCP 1 cm along x, same orientation
    result.q, result.success, result.position_error, result.rotation_error
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ArmModel:
    name: str
    joint_names: tuple[str, ...]
    a: tuple[float, ...]  # modified DH a_{i-1} of joints 1..7
    d: tuple[float, ...]  # d_i
    alpha: tuple[float, ...]  # alpha_{i-1}
    q_min: tuple[float, ...]
    q_max: tuple[float, ...]
    max_velocity: tuple[float, ...]  # rad/s
    q_home: tuple[float, ...]
    flange_d: float = 0.107
    tcp_offset: float = 0.1034  # Franka Hand TCP along flange z
    tcp_yaw: float = -np.pi / 4


_DH_A = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088)
_DH_D = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0)
_DH_ALPHA = (0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2)
_HOME = (0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4)  # franka "ready" pose

# Limits from the robot datasheets (frankarobotics.github.io/docs/robot_specifications.html).
FR3 = ArmModel(
    name="fr3", joint_names=tuple(f"fr3_joint{i}" for i in range(1, 8)), a=_DH_A, d=_DH_D, alpha=_DH_ALPHA,
    q_min=(-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159),
    q_max=(2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159),
    max_velocity=(2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26), q_home=_HOME,
)
PANDA = ArmModel(
    name="panda", joint_names=tuple(f"panda_joint{i}" for i in range(1, 8)), a=_DH_A, d=_DH_D, alpha=_DH_ALPHA,
    q_min=(-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    q_max=(2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
    max_velocity=(2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61), q_home=_HOME,
)
ARMS = {"fr3": FR3, "panda": PANDA}


def _dh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    """Modified DH: RotX(alpha) TransX(a) RotZ(theta) TransZ(d)."""
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array([[ct, -st, 0.0, a],
                     [st * ca, ct * ca, -sa, -d * sa],
                     [st * sa, ct * sa, ca, d * ca],
                     [0.0, 0.0, 0.0, 1.0]])


def yaw_matrix(degrees: float) -> np.ndarray:
    """Rotation about z by `degrees` (3x3)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (base frame) that rotates `current` onto `target` (both 3x3)."""
    r = target @ current.T
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-9:
        return axis / 2.0
    if np.pi - angle < 1e-6:  # 180 deg: the skew part vanishes; take the axis from the diagonal
        axis = np.sqrt(np.maximum((np.diag(r) + 1.0) / 2.0, 0.0))
        k = int(np.argmax(axis))
        axis = r[:, k] / np.sqrt(2.0 * (1.0 + r[k, k]))
        return axis * angle
    return axis * angle / (2.0 * np.sin(angle))


@dataclass
class IKResult:
    q: np.ndarray  # f64[7], within the joint limits
    success: bool
    position_error: float  # m
    rotation_error: float  # rad
    iterations: int


class FrankaKinematics:
    def __init__(self, arm: ArmModel = FR3):
        self.arm = arm
        self.q_min = np.asarray(arm.q_min)
        self.q_max = np.asarray(arm.q_max)
        self.q_home = np.asarray(arm.q_home)
        self._flange_to_tcp = _dh(0.0, arm.flange_d + arm.tcp_offset, 0.0, arm.tcp_yaw)

    def joint_frames(self, q: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Base->joint-i frames (z = joint axis) for i = 1..7, and the base->TCP pose."""
        frames, t = [], np.eye(4)
        for i in range(7):
            t = t @ _dh(self.arm.a[i], self.arm.d[i], self.arm.alpha[i], q[i])
            frames.append(t)
        return frames, t @ self._flange_to_tcp

    def fk(self, q: np.ndarray) -> np.ndarray:
        """Base -> TCP pose, f64[4,4]."""
        return self.joint_frames(np.asarray(q, dtype=np.float64))[1]

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """Geometric Jacobian f64[6,7] of the TCP in the base frame: rows (v_xyz, w_xyz)."""
        frames, tcp = self.joint_frames(np.asarray(q, dtype=np.float64))
        jac = np.empty((6, 7))
        for i, frame in enumerate(frames):
            z, origin = frame[:3, 2], frame[:3, 3]
            jac[:3, i] = np.cross(z, tcp[:3, 3] - origin)
            jac[3:, i] = z
        return jac

    def within_limits(self, q: np.ndarray, margin: float = 0.0) -> bool:
        q = np.asarray(q, dtype=np.float64)
        return bool(np.all(np.isfinite(q)) and np.all(q >= self.q_min + margin) and np.all(q <= self.q_max - margin))

    def ik(self, target: np.ndarray, q_start: np.ndarray | None = None, position_only: bool = False,
           max_iterations: int = 100, damping: float = 0.01, position_tolerance: float = 1e-4,
           rotation_tolerance: float = 1e-3, restarts: int = 0, seed: int = 0) -> IKResult:
        """Joint angles reaching `target` (f64[4,4]) from `q_start` (default: home), by damped least squares.

        Each iteration takes dq = J^T (J J^T + damping^2 I)^-1 e, with e = (position error, rotation
        error), plus a small pull toward the middle of the joint range in J's null space, then clips q
        to the joint limits. `restarts` > 0 retries from seeded random configurations when it fails.
        """
        target = np.asarray(target, dtype=np.float64)
        q0 = self.q_home if q_start is None else np.clip(np.asarray(q_start, np.float64), self.q_min, self.q_max)
        rng = np.random.default_rng(seed)
        best = None
        for attempt in range(restarts + 1):
            result = self._solve(target, q0, position_only, max_iterations, damping, position_tolerance,
                                 rotation_tolerance)
            if best is None or (result.position_error + result.rotation_error
                                < best.position_error + best.rotation_error):
                best = result
            if result.success:
                return result
            q0 = rng.uniform(self.q_min, self.q_max)
        return best

    def step_tcp(self, q: np.ndarray, delta_xyz: np.ndarray, orientation: np.ndarray | None = None) -> IKResult:
        """Joints that move the TCP by `delta_xyz` (base frame, m) from joints `q`, holding `orientation`
        (3x3; default: the current one). Starts from `q`, so small steps converge in a few iterations."""
        q = np.asarray(q, dtype=np.float64)
        target = self.fk(q)
        target[:3, 3] += np.asarray(delta_xyz, dtype=np.float64)
        if orientation is not None:
            target[:3, :3] = orientation
        return self.ik(target, q)

    def _solve(self, target, q, position_only, max_iterations, damping, position_tolerance, rotation_tolerance):
        rows = slice(0, 3) if position_only else slice(0, 6)
        middle = (self.q_min + self.q_max) / 2
        span = self.q_max - self.q_min
        pos_err = rot_err = np.inf
        for iteration in range(max_iterations + 1):
            frames, tcp = self.joint_frames(q)
            error = np.concatenate([target[:3, 3] - tcp[:3, 3], rotation_error(target[:3, :3], tcp[:3, :3])])
            pos_err, rot_err = float(np.linalg.norm(error[:3])), float(np.linalg.norm(error[3:]))
            if pos_err < position_tolerance and (position_only or rot_err < rotation_tolerance):
                return IKResult(q, True, pos_err, rot_err, iteration)
            if iteration == max_iterations:
                break
            jac = self.jacobian(q)[rows]
            e = error[rows]
            # limit the task-space step so the linearisation stays valid far from the target
            scale = min(1.0, 0.1 / max(np.linalg.norm(e[:3]), 1e-12), 0.5 / max(np.linalg.norm(e[3:]), 1e-12))
            jjt = jac @ jac.T + damping**2 * np.eye(jac.shape[0])
            dq = jac.T @ np.linalg.solve(jjt, scale * e)
            null = np.eye(7) - np.linalg.pinv(jac) @ jac  # exact projector: the pull never fights the task
            dq += null @ (0.1 * (middle - q) / span)
            q = np.clip(q + dq, self.q_min, self.q_max)
        return IKResult(q, False, pos_err, rot_err, max_iterations)
