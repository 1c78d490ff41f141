"""Tests of Baxter's planar left-arm kinematics (kinematics.py).

The forward kinematics are checked independently against Peter Corke's Robotics Toolbox
(roboticstoolbox-python, ``rtb.models.DH.Baxter('left')``): with the roll joints s0, e0, w0, w2 at
zero the 7-DoF arm moves in a vertical plane, whose frame is the pose after the s0 link.
"""
from __future__ import annotations

import numpy as np
import pytest

from reach_core.kinematics import (BAXTER_DH_AD, BAXTER_LEFT, JOINT_LIMITS, JOINT_NAMES,
                                   KinematicsError, PlanarArm, forward)

rtb = pytest.importorskip("roboticstoolbox")


@pytest.fixture(scope="module")
def robot():
    return rtb.models.DH.Baxter("left")


@pytest.fixture(scope="module")
def plane(robot):
    """Pose of the arm's plane frame: base * A_s0(0)."""
    return robot.base * robot.links[0].A(0)


@pytest.fixture(scope="module")
def qs():
    return BAXTER_LEFT.sample_joints(np.random.default_rng(12345), 200)


def _q7(q):
    s1, e1, w1 = q
    return np.array([0.0, s1, 0.0, e1, 0.0, w1, 0.0])


def _to_plane(T1, p_world):
    """World point -> (X, Y, off-plane Z) in the plane frame."""
    p = np.asarray(p_world) - T1.t
    R = T1.R
    return np.array([p @ R[:, 0], -(p @ R[:, 1]), p @ R[:, 2]])


def _rtb_points(robot, T1, q):
    """Elbow, wrist and end-effector in plane coordinates, plus their off-plane components."""
    frames = robot.fkine_all(_q7(q))  # base, then the frame after each of the 7 links
    pts = np.array([_to_plane(T1, frames[k].t) for k in (3, 5, 7)])
    return pts[:, :2], pts[:, 2]


def _rtb_arm(robot) -> PlanarArm:
    """A PlanarArm built from the toolbox's own (rounded) DH values, links 3, 5, 7."""
    ad = [(robot.links[i].a, robot.links[i].d) for i in (2, 4, 6)]
    return PlanarArm(link_lengths=[np.hypot(a, d) for a, d in ad],
                     angle_offsets=[np.arctan2(a, d) for a, d in ad])


# --- forward kinematics vs the Robotics Toolbox ---------------------------------------------------

def test_rtb_dh_values_are_the_rounded_rethink_ones(robot):
    # sanity of the premise of the comparison: the toolbox rounds to the millimetre
    ours = np.array(BAXTER_DH_AD)
    theirs = np.array([(robot.links[i].a, robot.links[i].d) for i in (2, 4, 6)])
    np.testing.assert_allclose(theirs, ours, atol=5e-4)
    assert not np.allclose(theirs, ours, atol=1e-6)  # they do differ (0.364 vs 0.36435 ...)


def test_forward_matches_rtb_within_rounding(robot, plane, qs):
    ref = np.array([_to_plane(plane, robot.fkine(_q7(q)).t) for q in qs])
    np.testing.assert_allclose(ref[:, 2], 0.0, atol=1e-9)  # the motion stays in the plane
    ours = BAXTER_LEFT.forward(qs)
    assert ours.shape == (len(qs), 2)
    err = np.linalg.norm(ours - ref[:, :2], axis=-1)
    assert err.max() < 1.5e-3, err.max()
    np.testing.assert_allclose(forward(qs), ours)  # the module-level wrapper is the same


def test_forward_exact_with_rtb_dh_values(robot, plane, qs):
    arm = _rtb_arm(robot)
    ref = np.array([_to_plane(plane, robot.fkine(_q7(q)).t)[:2] for q in qs])
    np.testing.assert_allclose(arm.forward(qs), ref, rtol=0, atol=1e-9)


def test_link_points_match_rtb_frames(robot, plane, qs):
    arm = _rtb_arm(robot)
    pts_ours = BAXTER_LEFT.link_points(qs[:60])
    pts_exact = arm.link_points(qs[:60])
    assert pts_ours.shape == (60, 4, 2)
    np.testing.assert_array_equal(pts_ours[:, 0], 0.0)  # the shoulder is the plane origin
    for q, p_ours, p_exact in zip(qs[:60], pts_ours, pts_exact):
        ref, off = _rtb_points(robot, plane, q)
        np.testing.assert_allclose(off, 0.0, atol=1e-9)
        np.testing.assert_allclose(p_exact[1:], ref, rtol=0, atol=1e-9)
        assert np.max(np.linalg.norm(p_ours[1:] - ref, axis=-1)) < 1.5e-3
    # the last link point is the end-effector
    np.testing.assert_allclose(pts_ours[:, 3], BAXTER_LEFT.forward(qs[:60]), atol=1e-12)


def test_forward_zero_pose_and_batch_shapes():
    # all joints at zero: the links lie along their DH (d, a) vectors, y = -sum(a)
    p = BAXTER_LEFT.forward(np.zeros(3))
    np.testing.assert_allclose(p, [0.36435 + 0.37429 + 0.28, -(0.069 + 0.010)], atol=1e-12)
    q = np.zeros((2, 5, 3))
    assert BAXTER_LEFT.forward(q).shape == (2, 5, 2)
    assert BAXTER_LEFT.link_points(q).shape == (2, 5, 4, 2)


def test_positive_s1_pitches_down():
    q = np.array([0.3, 0.5, 0.2])
    y0 = BAXTER_LEFT.forward(q)[1]
    y1 = BAXTER_LEFT.forward(q + [0.1, 0, 0])[1]
    assert y1 < y0


def test_reach_is_sum_of_link_lengths():
    assert BAXTER_LEFT.reach == pytest.approx(
        sum(np.hypot(a, d) for a, d in BAXTER_DH_AD), abs=1e-12)
    assert BAXTER_LEFT.reach == pytest.approx(1.0245, abs=1e-3)


# --- inverse kinematics ---------------------------------------------------------------------------

def test_inverse_reaches_forward_position(qs):
    x = BAXTER_LEFT.forward(qs)
    q_inv = BAXTER_LEFT.inverse(x, qs.sum(-1))
    assert q_inv.shape == qs.shape
    np.testing.assert_allclose(BAXTER_LEFT.forward(q_inv), x, rtol=0, atol=1e-9)
    # the hand keeps the requested pitch (mod 2 pi)
    dphi = q_inv.sum(-1) - qs.sum(-1)
    np.testing.assert_allclose(np.angle(np.exp(1j * dphi)), 0.0, atol=1e-9)


def test_inverse_recovers_joints_on_its_elbow_branch(qs):
    # the elbow branch inverse() returns: link 2 bent the positive way relative to link 1,
    # i.e. e1 >= offset1 - offset2.  On that branch K^-1(K(q)) = q.
    c = BAXTER_LEFT.angle_offsets
    q = qs[qs[:, 1] > c[0] - c[1] + 0.01]
    assert len(q) > 150
    np.testing.assert_allclose(BAXTER_LEFT.inverse(BAXTER_LEFT.forward(q), q.sum(-1)), q,
                               rtol=0, atol=1e-8)


# [0.28, 0]: with the hand level the wrist point is the shoulder, inside the tiny hole of radius
# |l1 - l2| = 3.6 mm that the upper arm and forearm cannot reach
@pytest.mark.parametrize("target", [[2.0, 0.0], [0.0, -1.5], [0.28, 0.0]])
def test_inverse_out_of_reach_raises(target):
    with pytest.raises(KinematicsError, match="out of reach"):
        BAXTER_LEFT.inverse(np.array(target), 0.0)


def test_inverse_batch_with_one_unreachable_raises():
    x = BAXTER_LEFT.forward(np.array([[0.2, 0.5, 0.1], [0.0, 1.0, 0.0]]))
    x[1] = [3.0, 3.0]
    with pytest.raises(KinematicsError):
        BAXTER_LEFT.inverse(x, np.array([0.8, 1.0]))


def test_inverse_nan_target_raises():
    # a NaN target is outside the model's domain like an unreachable one
    with pytest.raises(KinematicsError):
        BAXTER_LEFT.inverse(np.array([np.nan, 0.2]), 0.0)


# --- joint checks ---------------------------------------------------------------------------------

def test_check_joints_accepts_limits_and_returns_float_array():
    q = BAXTER_LEFT.check_joints(JOINT_LIMITS.T.tolist())  # both corners, shape (2, 3)
    assert q.dtype == np.float64 and q.shape == (2, 3)
    np.testing.assert_array_equal(q, JOINT_LIMITS.T)


@pytest.mark.parametrize("j", [0, 1, 2])
@pytest.mark.parametrize("side", [0, 1])
def test_check_joints_names_the_joint_out_of_range(j, side):
    q = np.array([0.1, 0.5, 0.2])
    q[j] = JOINT_LIMITS[j, side] + (0.01 if side else -0.01)
    with pytest.raises(KinematicsError, match=JOINT_NAMES[j]) as exc:
        BAXTER_LEFT.check_joints(q)
    assert f"{q[j]:.4f}" in str(exc.value)
    assert "outside its limits" in str(exc.value)


def test_check_joints_batch_reports_the_bad_value():
    q = np.tile([0.1, 0.5, 0.2], (5, 1))
    q[3, 2] = 2.5
    with pytest.raises(KinematicsError, match=r"left_w1 = 2\.5000"):
        BAXTER_LEFT.check_joints(q)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_joints_rejects_non_finite(bad):
    with pytest.raises(KinematicsError, match="NaN or infinity"):
        BAXTER_LEFT.check_joints([0.1, bad, 0.2])


@pytest.mark.parametrize("shape", [(2,), (4,), (3, 2), (), (0,)])
def test_check_joints_rejects_wrong_shape(shape):
    with pytest.raises(KinematicsError, match="3 values"):
        BAXTER_LEFT.check_joints(np.zeros(shape))


def test_kinematics_error_is_value_error():
    assert issubclass(KinematicsError, ValueError)


def test_sample_joints_within_limits_and_margin():
    rng = np.random.default_rng(0)
    q = BAXTER_LEFT.sample_joints(rng, 1000, margin=0.1)
    assert q.shape == (1000, 3)
    assert np.all(q >= JOINT_LIMITS[:, 0] + 0.1) and np.all(q <= JOINT_LIMITS[:, 1] - 0.1)
    # uniform: covers most of each range
    span = (q.max(0) - q.min(0)) / (JOINT_LIMITS[:, 1] - JOINT_LIMITS[:, 0] - 0.2)
    assert np.all(span > 0.95)
