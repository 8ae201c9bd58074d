"""Franka FR3 kinematics: known pose, Jacobian, FK/IK round trips."""
import numpy as np
import pytest

from diffusion_reward.safety import FR3, PANDA, FrankaKinematics


def test_ready_pose_matches_franka():
    kin = FrankaKinematics(FR3)
    pose = kin.fk(kin.q_home)
    np.testing.assert_allclose(pose[:3, 3], [0.3069, 0.0, 0.4869], atol=5e-4)  # o_t_ee of the ready pose
    np.testing.assert_allclose(pose[:3, 2], [0, 0, -1], atol=1e-9)  # gripper points down


def test_jacobian_matches_finite_differences():
    kin = FrankaKinematics(FR3)
    q = np.random.default_rng(0).uniform(kin.q_min, kin.q_max)
    jac = kin.jacobian(q)
    eps = 1e-6
    for j in range(7):
        dq = np.zeros(7)
        dq[j] = eps
        numeric = (kin.fk(q + dq)[:3, 3] - kin.fk(q - dq)[:3, 3]) / (2 * eps)
        np.testing.assert_allclose(jac[:3, j], numeric, atol=1e-6)


@pytest.mark.parametrize("arm", [FR3, PANDA])
def test_fk_ik_round_trip_within_1mm(arm):
    kin = FrankaKinematics(arm)
    rng = np.random.default_rng(42)
    for i in range(15):
        q = rng.uniform(kin.q_min + 0.1, kin.q_max - 0.1)  # a reachable pose by construction
        target = kin.fk(q)
        result = kin.ik(target, restarts=10, seed=i)
        reached = kin.fk(result.q)
        assert result.success
        assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 1e-3
        assert np.allclose(reached[:3, :3], target[:3, :3], atol=1e-2)
        assert kin.within_limits(result.q)


def test_small_cartesian_steps_converge_from_current_joints():
    kin = FrankaKinematics(FR3)
    rng = np.random.default_rng(1)
    q = kin.q_home.copy()
    for _ in range(20):  # what the policy runner does: 2 cm steps from where the arm is
        target = kin.fk(q)
        target[:3, 3] += rng.uniform(-0.02, 0.02, 3)
        result = kin.ik(target, q)
        assert result.success and result.iterations < 20
        assert np.linalg.norm(kin.fk(result.q)[:3, 3] - target[:3, 3]) < 1e-3
        q = result.q


def test_ik_reports_unreachable_targets():
    kin = FrankaKinematics(FR3)
    target = kin.fk(kin.q_home)
    target[:3, 3] = [2.0, 0.0, 0.5]  # 2 m away: beyond the arm's reach
    result = kin.ik(target, max_iterations=50)
    assert not result.success and result.position_error > 0.5
    assert kin.within_limits(result.q)
