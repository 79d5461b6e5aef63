"""The pose buffer (core/poses.py) against analytic poses."""
import math

import numpy as np
import pytest

from av_perception.core.poses import (
    Pose,
    PosedGeometry,
    TransformError,
    TransformTree,
    quat_from_matrix,
    quat_slerp,
    quat_to_matrix,
)

pytestmark = pytest.mark.timeout(60)


def rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def qz(a):
    return np.array([0.0, 0.0, math.sin(a / 2), math.cos(a / 2)])


def test_quaternion_matrix_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.standard_normal(4)
        q /= np.linalg.norm(q)
        R = quat_to_matrix(q)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(R), 1.0)
        q2 = quat_from_matrix(R)
        assert np.allclose(q2, q if q[3] >= 0 else -q, atol=1e-9)


def test_slerp_interpolates_the_angle_linearly():
    for u in (0.0, 0.25, 0.5, 1.0, 1.5):
        q = quat_slerp(qz(0.2), qz(1.0), u)
        assert np.allclose(quat_to_matrix(q), rz(0.2 + 0.8 * u), atol=1e-12)
    # the short way round
    q = quat_slerp(qz(0.1), -qz(0.5), 0.5)
    assert np.allclose(quat_to_matrix(q), rz(0.3), atol=1e-12)


def test_pose_compose_inverse_and_points():
    a = Pose(rz(0.3), np.array([1.0, 2.0, 0.5]))
    b = Pose(rz(-1.1), np.array([0.0, -0.4, 0.2]))
    p = np.array([[0.3, -0.2, 2.0], [1.0, 1.0, 1.0]])
    assert np.allclose((a @ b).apply(p), a.apply(b.apply(p)))
    assert np.allclose(a.apply_inverse(a.apply(p)), p)
    assert np.allclose((a @ a.inverse()).R, np.eye(3))
    cov = np.diag([1.0, 2.0, 3.0])[None]
    assert np.allclose(a.rotate_covariance(cov)[0], a.R @ cov[0] @ a.R.T)


def test_chain_interpolated_at_stamps():
    """odom -> base (moving in x at 1 m/s) -> head (panning at 0.5 rad/s) -> camera
    (static offset): the camera pose at any stamp is the analytic one."""
    tree = TransformTree()
    cam_off = Pose(rz(0.0), np.array([0.1, 0.0, 0.3]))
    tree.add("head", "camera", 0.0, cam_off.t, [0, 0, 0, 1], static=True)
    for k in range(21):
        t = 0.1 * k
        tree.add("odom", "base", t, [1.0 * t, 0, 0], [0, 0, 0, 1])
        tree.add("base", "head", t, [0, 0, 1.0], qz(0.5 * t))
    for t in (0.0, 0.37, 1.234, 2.0):
        look = tree.lookup("odom", "camera", t)
        expect = Pose(np.eye(3), np.array([t, 0, 0])) @ Pose(rz(0.5 * t), np.array(
            [0, 0, 1.0])) @ cam_off
        assert look.status == "ok"
        assert np.allclose(look.pose.R, expect.R, atol=1e-9)
        assert np.allclose(look.pose.t, expect.t, atol=1e-9)
    # the inverse direction and a lookup between siblings
    inv = tree.lookup("camera", "odom", 1.0).pose
    assert np.allclose((inv @ tree.lookup("odom", "camera", 1.0).pose).R, np.eye(3))


def test_bounded_extrapolation_then_held():
    tree = TransformTree(max_extrapolation=0.1)
    for k in range(11):
        tree.add("base", "head", 0.1 * k, [0, 0, 0], qz(0.5 * 0.1 * k))
    look = tree.lookup("base", "head", 1.05)
    assert look.status == "extrapolated" and np.isclose(look.lag, 0.05)
    assert np.allclose(look.pose.R, rz(0.525), atol=1e-9)
    look = tree.lookup("base", "head", 1.6)
    assert look.status == "held" and np.isclose(look.lag, 0.6)
    assert np.allclose(look.pose.R, rz(0.55), atol=1e-9)  # extrapolated 0.1 s, then held
    assert tree.lookup("base", "head", -1.0).status == "before"


def test_jump_restarts_the_link_history():
    tree = TransformTree(jump_distance=0.5)
    for k in range(5):
        tree.add("odom", "base", 0.1 * k, [0.1 * k, 0, 0], [0, 0, 0, 1])
    assert tree.jumps == 0
    msg = tree.add("odom", "base", 0.5, [5.0, 0, 0], [0, 0, 0, 1])  # odometry reset
    assert msg is not None and tree.jumps == 1 and "odom -> base" in tree.last_jump
    # no interpolation across the jump: the old samples are gone
    assert np.allclose(tree.lookup("odom", "base", 0.45).pose.t, [5.0, 0, 0])


def test_broken_chain_and_bad_values_say_what_is_wrong():
    tree = TransformTree()
    with pytest.raises(TransformError, match="no transform received"):
        tree.lookup("base_link", "camera", 0.0)
    tree.add("base_link", "head", 0.0, [0, 0, 0], [0, 0, 0, 1])
    tree.add("map", "camera", 0.0, [0, 0, 0], [0, 0, 0, 1])
    with pytest.raises(TransformError, match="no transform chain"):
        tree.lookup("base_link", "camera", 0.0)
    with pytest.raises(TransformError, match="not a rotation"):
        tree.add("a", "b", 0.0, [0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(TransformError, match="non-finite"):
        tree.add("a", "b", 0.0, [np.nan, 0, 0], [0, 0, 0, 1])


def test_posed_geometry_matches_the_camera_frame_geometry():
    from av_perception.core.config import MicArrayConfig
    from av_perception.core.head import make_head_model

    geo = make_head_model(MicArrayConfig())
    pose = Pose(rz(0.4) @ quat_to_matrix([0.2, 0.1, 0.0, 1.0]), np.array([0.3, -1.0, 1.2]))
    pg = PosedGeometry(geo, pose)
    pts_cam = np.array([[0.5, 0.1, 2.0], [-1.0, 0.0, 1.5]])
    pts_fixed = pose.apply(pts_cam)
    assert np.allclose(pg.itd(pts_fixed), geo.itd(pts_cam))
    # the gradient by finite differences in the fixed frame
    h = 1e-6
    num = np.stack([(pg.itd(pts_fixed + h * e) - pg.itd(pts_fixed - h * e)) / (2 * h)
                    for e in np.eye(3)], axis=1)
    assert np.allclose(pg.itd_jacobian(pts_fixed), num, atol=1e-8)
    assert np.allclose(pg.centre, pose.apply(geo.centre)[0])


def _turning_tree(rng, n=300, rate=100.0):
    """odom -> base (driving) -> head (panning, 100 Hz) -> cam (static), random wobble."""
    tree = TransformTree(max_age=1.0, max_extrapolation=0.1)
    tree.add("head", "cam", 0.0, (0.0, 0.1, 0.05), quat_from_matrix(rz(0.3)), static=True)
    for k in range(n):
        s = k / rate
        tree.add("odom", "base", s, (0.2 * s, 0.0, 0.0), qz(0.1 * s))
        tree.add("base", "head", s, rng.normal(0, 1e-3, 3),
                 qz(math.radians(40) * math.sin(1.5 * s) + rng.normal(0, 1e-3)))
    return tree


def test_lookup_many_equals_one_lookup_per_stamp():
    """The vectorised lookup of many stamps equals :meth:`lookup` stamp by stamp where
    every link is interpolated, and marks the other stamps (before, extrapolated)."""
    tree = _turning_tree(np.random.default_rng(2))
    stamps = np.r_[np.sort(np.random.default_rng(3).uniform(2.0, 2.99, 40)), 2.99, 3.05,
                   1.5]
    R, t, ok = tree.lookup_many("odom", "cam", stamps)
    assert ok[:41].all() and not ok[41:].any()  # 3.05: past the newest; 1.5: before
    for k in np.flatnonzero(ok):
        look = tree.lookup("odom", "cam", float(stamps[k]))
        assert look.status == "ok"
        assert np.allclose(R[k], look.pose.R, atol=1e-12)
        assert np.allclose(t[k], look.pose.t, atol=1e-12)
    R2, t2, ok2 = tree.lookup_many("cam", "odom", stamps[:5])  # the other way round
    for k in range(5):
        look = tree.lookup("cam", "odom", float(stamps[k]))
        assert ok2[k] and np.allclose(R2[k], look.pose.R, atol=1e-12)
        assert np.allclose(t2[k], look.pose.t, atol=1e-12)


def test_link_history_appends_replaces_inserts_and_forgets_like_a_sorted_list():
    """The link's history against a plain reference (a sorted list of the samples of the
    last max_age s, plus the one before): in order, out of order, same stamp replaced."""
    rng = np.random.default_rng(4)
    tree = TransformTree(max_age=0.5, jump_distance=10.0, jump_angle=math.pi)
    ref = {}
    s = 0.0
    for k in range(400):
        s += 0.01
        stamp = s if k % 7 else round(s - rng.uniform(0.0, 0.3), 2)  # some out of order
        t = rng.normal(0, 0.1, 3)
        tree.add("a", "b", stamp, t, (0, 0, 0, 1))
        ref[stamp] = t
        keys = sorted(ref)
        old = [x for x in keys if x < keys[-1] - 0.5]
        for x in old[:-1]:
            del ref[x]
        link = tree.links["b"]
        assert np.array_equal(link.stamps, sorted(ref))
        assert np.allclose(link.trans, [ref[x] for x in sorted(ref)])
