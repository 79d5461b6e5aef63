"""Stereo calibration, rectification, triangulation and region disparity.

Truth: the Middlebury 2014 'Motorcycle' pair shipped by scikit-image
(quarter resolution, ground-truth disparity; f = 994.978 px, B = 0.193 m,
doffs = 31.086 px), synthetic rigs with known geometry, closed forms.
"""
import math

import cv2
import numpy as np
import pytest

from av_perception.core.config import StereoCameraConfig
from av_perception.core.stereo import (
    CalibrationError,
    RegionMatcher,
    StereoCalibration,
    StereoInputError,
    epipolar_scan_kernel,
    epipolar_scan_reference,
)

MB_F, MB_CX, MB_CY, MB_DOFFS, MB_B = 994.978, 311.193, 254.877, 31.086, 0.193001


@pytest.fixture(scope="module")
def motorcycle():
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    return (np.ascontiguousarray(left[..., ::-1]), np.ascontiguousarray(right[..., ::-1]),
            np.asarray(disp, dtype=np.float64))


@pytest.fixture(scope="module")
def mb_cal():
    return StereoCalibration(MB_F, MB_F, MB_CX, MB_CY, MB_B, 741, 500, cx_right=MB_CX + MB_DOFFS)


def mb_regions(disp, size=24, step=16, max_spread=3.0):
    """Grid regions whose ground truth is complete and nearly fronto-parallel."""
    boxes, truth = [], []
    h, w = disp.shape
    for v in range(8, h - size - 8, step):
        for u in range(80, w - size - 8, step):
            g = disp[v:v + size, u:u + size]
            if not np.all(np.isfinite(g)) or g.max() - g.min() > max_spread:
                continue
            boxes.append((u, v, size, size))
            truth.append(float(np.median(g)))
    return np.array(boxes, dtype=float), np.array(truth)


# ---------------------------------------------------------------------------
# kernel
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", [0, 1])
def test_kernel_agrees_with_reference(method):
    rng = np.random.default_rng(4)
    left = rng.uniform(0, 255, (40, 90)).astype(np.float32)
    right = np.roll(left, -7, axis=1) + rng.normal(0, 3, left.shape).astype(np.float32)
    right = right.astype(np.float32)
    boxes = np.array([[30, 10, 12, 9], [0, 0, 8, 8], [70, 28, 20, 12], [50, 5, 17, 17]],
                     dtype=np.int64)
    d_lo = np.array([-3, 0, 2, 5], dtype=np.int64)
    stride = np.array([1, 1, 2, 3], dtype=np.int64)
    outs = []
    for fn in (epipolar_scan_kernel, epipolar_scan_reference):
        scores = np.zeros((4, 25))
        dy = np.zeros((4, 25), dtype=np.int64)
        tstd = np.zeros(4)
        fn(left, right, boxes, d_lo, 1, stride, method, scores, dy, tstd)
        outs.append((scores, dy, tstd))
    (s1, dy1, t1), (s2, dy2, t2) = outs
    assert np.array_equal(np.isnan(s1), np.isnan(s2))
    assert np.isnan(s1).any() and np.isfinite(s1).any()  # borders were exercised
    np.testing.assert_allclose(s1, s2, rtol=1e-9, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(dy1, dy2)
    np.testing.assert_allclose(t1, t2, rtol=1e-9)


def test_numba_and_numpy_matchers_agree(motorcycle, mb_cal):
    left, right, disp = motorcycle
    boxes, _ = mb_regions(disp, step=48)
    a = RegionMatcher(mb_cal, 1.0, 10.0).match(left, right, boxes[:12])
    b = RegionMatcher(mb_cal, 1.0, 10.0, use_numba=False).match(left, right, boxes[:12])
    np.testing.assert_array_equal(a.reason, b.reason)
    np.testing.assert_allclose(a.disparity, b.disparity, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(a.quality, b.quality, atol=1e-9)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", ["ncc", "sad", "sgbm"])
def test_uint8_images_match_as_their_float32_copies(motorcycle, mb_cal, method):
    """Grey uint8 images go to the scan as they are (views, the left-right check on
    mirrored views): every output equals the former path's, on float32 copies."""
    left, right, disp = motorcycle
    gl = cv2.cvtColor(left, cv2.COLOR_BGR2GRAY)
    gr = cv2.cvtColor(right, cv2.COLOR_BGR2GRAY)
    boxes, _ = mb_regions(disp, step=40)
    m = RegionMatcher(mb_cal, 1.0, 10.0, method=method)
    a = m.match(gl, gr, boxes)
    b = m.match(gl.astype(np.float32), gr.astype(np.float32), boxes)
    assert a.valid.sum() > 10 and (~a.valid).any()
    np.testing.assert_array_equal(a.reason, b.reason)
    for field in ("disparity", "depth", "score", "uniqueness", "quality", "dy"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


# ---------------------------------------------------------------------------
# region disparity against Middlebury ground truth
# ---------------------------------------------------------------------------
# measured (142 regions): NCC median 0.144 px, p95 0.583 px, 129 accepted; SAD 0.153 /
# 0.486 px, 127; SGBM 0.100 / 0.286 px, 129
@pytest.mark.parametrize("method,median_max,p95_max", [
    ("ncc", 0.17, 0.62), ("sad", 0.18, 0.55), ("sgbm", 0.12, 0.33)])
def test_region_disparity_middlebury(motorcycle, mb_cal, method, median_max, p95_max):
    left, right, disp = motorcycle
    boxes, truth = mb_regions(disp)
    assert len(boxes) > 100
    res = RegionMatcher(mb_cal, 1.0, 10.0, method=method).match(left, right, boxes)
    ok = res.valid
    err = np.abs(res.disparity[ok] - truth[ok])
    print(f"\n{method}: {ok.sum()}/{len(boxes)} regions accepted, |disparity error| median "
          f"{np.median(err):.3f} px, mean {err.mean():.3f} px, p95 {np.percentile(err, 95):.3f}"
          f" px, max {err.max():.3f} px")
    assert ok.mean() > 0.87
    # regions refused for low texture really are flat
    flat = res.reason == "low_texture"
    g = cv2.cvtColor(left, cv2.COLOR_BGR2GRAY).astype(float)
    for u, v, w, h in boxes[flat].astype(int):
        assert g[v:v + h, u:u + w].std() < 3.0
    assert np.median(err) < median_max
    assert np.percentile(err, 95) < p95_max
    assert np.all(res.quality[ok] > 0) and np.all(res.quality[ok] <= 1)
    assert np.all(res.quality[~ok] == 0) and np.all(np.isnan(res.disparity[~ok]))


def test_region_depth_middlebury(motorcycle, mb_cal):
    """Depth from the region disparity against the depth of the ground truth."""
    left, right, disp = motorcycle
    boxes, truth = mb_regions(disp, step=32)
    res = RegionMatcher(mb_cal, 1.0, 10.0).match(left, right, boxes)
    ok = res.valid
    z_true = MB_F * MB_B / (truth[ok] + MB_DOFFS)
    rel = np.abs(res.depth[ok] - z_true) / z_true
    print(f"\nMiddlebury region depth: median relative error {np.median(rel):.4f}, "
          f"max {rel.max():.4f} (depths {z_true.min():.2f}-{z_true.max():.2f} m)")
    # measured: median 0.0025, max 0.0079
    assert np.median(rel) < 0.003
    assert rel.max() < 0.01


def test_rejection_reasons(motorcycle, mb_cal):
    left, right, disp = motorcycle
    boxes, truth = mb_regions(disp, step=32)
    textured = np.flatnonzero(RegionMatcher(mb_cal, 1.0, 10.0).match(left, right, boxes).valid)
    z_true = MB_F * MB_B / (truth + MB_DOFFS)
    i = textured[np.argmax(z_true[textured])]  # farthest textured region
    j = textured[np.argmin(z_true[textured])]  # nearest
    zi, zj = z_true[i], z_true[j]
    # a depth window that excludes the region's depth gives the matching reason
    near_only = RegionMatcher(mb_cal, 0.5, 0.9 * zi).match(left, right, boxes[[i]])
    assert near_only.reason[0] == "too_far"
    far_only = RegionMatcher(mb_cal, 1.1 * zj, 20.0).match(left, right, boxes[[j]])
    assert far_only.reason[0] == "too_near"
    flat = np.full((60, 200), 120, np.uint8)
    res = RegionMatcher(mb_cal, 1.0, 10.0).match(
        np.pad(flat, ((0, 440), (0, 541))), np.pad(flat, ((0, 440), (0, 541))),
        [[100, 10, 30, 30], [-50, -50, 20, 20], [745, 510, 30, 30]])
    assert list(res.reason) == ["low_texture", "outside_image", "outside_image"]
    # a region whose match would lie left of the right image's border
    res = RegionMatcher(mb_cal, 1.0, 10.0).match(left, right, [[5, 200, 24, 24]])
    assert res.reason[0] in ("at_image_border", "too_far", "low_match_score")
    assert np.isnan(res.disparity[0])


def test_matcher_input_errors(motorcycle, mb_cal):
    left, right, _ = motorcycle
    m = RegionMatcher(mb_cal, 1.0, 10.0)
    with pytest.raises(StereoInputError, match="equal sizes"):
        m.match(left, right[:, :700], [[100, 100, 20, 20]])
    with pytest.raises(StereoInputError, match=r"\(M, 4\)"):
        m.match(left, right, [[1, 2, 3]])
    with pytest.raises(StereoInputError, match="grey"):
        m.match(left[..., :2], right[..., :2], [[100, 100, 20, 20]])
    assert len(m.match(left, right, np.zeros((0, 4)))) == 0
    with pytest.raises(ValueError, match="method"):
        RegionMatcher(mb_cal, method="census")
    with pytest.raises(ValueError, match="min_depth"):
        RegionMatcher(mb_cal, 3.0, 2.0)


# ---------------------------------------------------------------------------
# triangulation
# ---------------------------------------------------------------------------
def test_triangulate_project_round_trip():
    cal = StereoCalibration.from_config(StereoCameraConfig())
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(-1, 1, 50), rng.uniform(-0.5, 0.5, 50),
                           rng.uniform(0.5, 8, 50)])
    u, v, d = cal.project(pts)
    xyz, cov = cal.triangulate(u, v, d)
    np.testing.assert_allclose(xyz, pts, rtol=1e-12, atol=1e-12)
    assert cov.shape == (50, 3, 3)
    np.testing.assert_allclose(cov, np.transpose(cov, (0, 2, 1)))
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    np.testing.assert_allclose(cal.depth_from_disparity(d), pts[:, 2])


def test_covariance_grows_with_z_squared():
    cal = StereoCalibration.from_config(StereoCameraConfig())
    z = np.array([1.0, 2.0, 3.0, 6.0])
    u, v, d = cal.project(np.column_stack([np.zeros(4), np.zeros(4), z]))
    _, cov = cal.triangulate(u, v, d, sigma_uv=1.0, sigma_disparity=0.25)
    sz = np.sqrt(cov[:, 2, 2])
    np.testing.assert_allclose(sz, z ** 2 / (cal.fx * cal.baseline) * 0.25, rtol=1e-12)
    np.testing.assert_allclose(sz / sz[0], (z / z[0]) ** 2, rtol=1e-12)
    sx = np.sqrt(cov[:, 0, 0])  # on the axis: lateral sigma = z / fx * sigma_uv
    np.testing.assert_allclose(sx, z / cal.fx, rtol=1e-12)
    # numerical Jacobian check off-axis
    u0, v0, d0 = 500.0, 60.0, 20.0
    _, c = cal.triangulate(u0, v0, d0, sigma_uv=0.7, sigma_disparity=0.3)
    jac = np.zeros((3, 3))
    for k, delta in enumerate(np.eye(3) * 1e-5):
        p1, _ = cal.triangulate(u0 + delta[0], v0 + delta[1], d0 + delta[2])
        p0, _ = cal.triangulate(u0 - delta[0], v0 - delta[1], d0 - delta[2])
        jac[:, k] = (p1[0] - p0[0]) / 2e-5
    np.testing.assert_allclose(c[0], jac @ np.diag([0.49, 0.49, 0.09]) @ jac.T, rtol=1e-6)


def test_triangulate_refuses_points_at_infinity():
    cal = StereoCalibration.from_config(StereoCameraConfig())
    with pytest.raises(StereoInputError, match="infinity"):
        cal.triangulate([100, 200], [100, 100], [5.0, 0.0])


# ---------------------------------------------------------------------------
# calibration constructors
# ---------------------------------------------------------------------------
def info(w=640, h=480, fx=500.0, cx=320.0, cy=240.0, tx=0.0, fy=None, cxr=None, d=(0,) * 5,
         r=None):
    r = np.eye(3) if r is None else r
    fy = fx if fy is None else fy
    cxr = cx if cxr is None else cxr
    return {"width": w, "height": h, "distortion_model": "plumb_bob", "d": list(d),
            "k": [fx, 0, cx, 0, fy, cy, 0, 0, 1], "r": np.ravel(r).tolist(),
            "p": [fx, 0, cxr, tx, 0, fy, cy, 0, 0, 0, 1, 0]}


def test_from_config_and_camera_info():
    cfg = StereoCameraConfig(baseline=0.1, fx=600.0, fy=600.0)
    cal = StereoCalibration.from_config(cfg)
    assert (cal.fx, cal.baseline, cal.width, cal.height) == (600.0, 0.1, 640, 480)
    assert not cal.needs_rectification
    cal = StereoCalibration.from_camera_info(info(), info(tx=-500.0 * 0.12, cxr=330.0))
    assert cal.baseline == pytest.approx(0.12)
    assert cal.cx_right == 330.0 and cal.disparity_offset == -10.0
    assert not cal.needs_rectification
    li, ri = cal.camera_info()
    again = StereoCalibration.from_camera_info(li, ri)
    assert (again.fx, again.cx, again.cx_right, again.baseline) == (
        cal.fx, cal.cx, cal.cx_right, cal.baseline)


@pytest.mark.parametrize("left,right,message", [
    (info(), info(w=320, h=240, tx=-60.0), "same resolution"),
    (info(), {**info(), "p": [0] * 12}, "not calibrated"),
    (info(w=0, h=0), info(w=0, h=0, tx=-60), "not calibrated"),
    (info(), info(tx=60.0), "swapped"),
    (info(tx=-60.0), info(tx=-120.0), "reference"),
    (info(), info(tx=-60.0, fy=520.0), "rectified"),
    (info(), info(tx=-60.0, cy=250.0), "rectified"),
    (info(), {k: v for k, v in info(tx=-60).items() if k != "p"}, "lacks the field 'p'"),
    (info(), {**info(tx=-60), "k": [1, 2, 3]}, "3x3"),
])
def test_camera_info_errors(left, right, message):
    with pytest.raises(CalibrationError, match=message):
        StereoCalibration.from_camera_info(left, right)


def test_camera_info_with_distortion_builds_maps_and_rotation():
    rot = cv2.Rodrigues(np.array([0.0, 0.02, 0.0]))[0]
    cal = StereoCalibration.from_camera_info(
        info(d=(-0.1, 0.01, 0, 0, 0), r=rot), info(tx=-60.0, d=(-0.1, 0.01, 0, 0, 0), r=rot.T))
    assert cal.needs_rectification
    np.testing.assert_allclose(cal.rotation, rot)
    img = np.zeros((480, 640, 3), np.uint8)
    a, b = cal.rectify(img, img)
    assert a.shape == img.shape and b.shape == img.shape
    cal2 = StereoCalibration.from_camera_info(
        info(d=(-0.1, 0.01, 0, 0, 0), r=rot), info(tx=-60.0, d=(-0.1, 0.01, 0, 0, 0), r=rot.T),
        images_rectified=True)
    assert not cal2.needs_rectification
    # points come out in the physical left camera frame: rotated back by R^T
    p_rect, _ = cal2.triangulate([400.0], [200.0], [20.0], frame="rectified")
    p_cam, _ = cal2.triangulate([400.0], [200.0], [20.0])
    np.testing.assert_allclose(p_cam[0], rot.T @ p_rect[0])
    np.testing.assert_allclose(cal2.project(p_cam)[0], [400.0])
    with pytest.raises(StereoInputError, match="calibration is for 640x480"):
        cal.rectify(img[:240, :320], img[:240, :320])


@pytest.fixture(scope="module")
def raw_rig():
    """A distorted, slightly rotated OpenCV stereo rig (T in metres)."""
    k1 = np.array([[520.0, 0, 318.0], [0, 522.0, 243.0], [0, 0, 1]])
    k2 = np.array([[515.0, 0, 325.0], [0, 517.0, 238.0], [0, 0, 1]])
    d1 = np.array([-0.12, 0.05, 0.001, -0.0005, 0.0])
    d2 = np.array([-0.10, 0.04, -0.001, 0.0008, 0.0])
    r = cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))[0]
    t = np.array([-0.12, 0.002, 0.001])
    return k1, d1, k2, d2, r, t


def test_opencv_stereo_triangulates_in_the_camera_frame(raw_rig):
    k1, d1, k2, d2, r, t = raw_rig
    cal = StereoCalibration.from_opencv_stereo(k1, d1, k2, d2, r, t, (640, 480))
    assert cal.needs_rectification
    assert cal.baseline == pytest.approx(np.linalg.norm(t), rel=1e-6)
    rng = np.random.default_rng(2)
    pts = np.column_stack([rng.uniform(-0.5, 0.5, 30), rng.uniform(-0.4, 0.4, 30),
                           rng.uniform(1.0, 4.0, 30)])
    raw_l, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k1, d1)
    raw_r, _ = cv2.projectPoints(pts, cv2.Rodrigues(r)[0], t, k2, d2)
    r1, r2, p1, p2, *_ = cv2.stereoRectify(k1, d1, k2, d2, (640, 480), r, t,
                                           flags=cv2.CALIB_ZERO_DISPARITY, alpha=0.0)
    rect_l = cv2.undistortPoints(raw_l, k1, d1, R=r1, P=p1).reshape(-1, 2)
    rect_r = cv2.undistortPoints(raw_r, k2, d2, R=r2, P=p2).reshape(-1, 2)
    np.testing.assert_allclose(rect_l[:, 1], rect_r[:, 1], atol=1e-3)  # rows agree
    xyz, _ = cal.triangulate(rect_l[:, 0], rect_l[:, 1], rect_l[:, 0] - rect_r[:, 0])
    assert np.all(np.abs(xyz - pts) <= 1e-7 * pts[:, 2:] ** 2 + 1e-9)  # measured 1.2e-8 z^2


def test_opencv_stereo_rectifies_raw_images(raw_rig):
    """Unrectify a rectified pair of a textured plane, rectify it back, match it."""
    k1, d1, k2, d2, r, t = raw_rig
    cal = StereoCalibration.from_opencv_stereo(k1, d1, k2, d2, r, t, (640, 480))
    r1, r2, p1, p2, *_ = cv2.stereoRectify(k1, d1, k2, d2, (640, 480), r, t,
                                           flags=cv2.CALIB_ZERO_DISPARITY, alpha=0.0)
    rng = np.random.default_rng(3)
    tex = cv2.resize(rng.uniform(0, 255, (120, 200)).astype(np.uint8), (800, 480),
                     interpolation=cv2.INTER_CUBIC)
    z = 2.0
    d = cal.disparity_from_depth(z)
    rect_l = tex[:, 80:720].copy()
    m = np.float32([[1, 0, 80 + d], [0, 1, 0]])  # right(u) = left(u + d)
    rect_r = cv2.warpAffine(tex, m, (640, 480), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    grid = np.stack(np.meshgrid(np.arange(640.0), np.arange(480.0)), -1).reshape(-1, 1, 2)
    raws = []
    for img, k, dist, rr, pp in ((rect_l, k1, d1, r1, p1), (rect_r, k2, d2, r2, p2)):
        where = cv2.undistortPoints(grid, k, dist, R=rr, P=pp).reshape(480, 640, 2)
        raws.append(cv2.remap(img, where[..., 0].astype(np.float32),
                              where[..., 1].astype(np.float32), cv2.INTER_LINEAR))
    back_l, back_r = cal.rectify(*raws)
    inner = (slice(80, 400), slice(100, 540))
    assert np.mean(np.abs(back_l[inner].astype(float) - rect_l[inner])) < 4.5  # measured 3.6
    res = RegionMatcher(cal, 0.5, 10.0).match(back_l, back_r, [[200, 150, 60, 60],
                                                               [400, 300, 60, 60]])
    assert np.all(res.valid)
    np.testing.assert_allclose(res.depth, z, rtol=0.002)  # measured 0.05 %


def test_opencv_stereo_errors(raw_rig):
    k1, d1, k2, d2, r, t = raw_rig
    with pytest.raises(CalibrationError, match="translation_scale"):
        StereoCalibration.from_opencv_stereo(k1, d1, k2, d2, r, t * 1000, (640, 480))
    cal = StereoCalibration.from_opencv_stereo(k1, d1, k2, d2, r, t * 1000, (640, 480),
                                               translation_scale=0.001)
    assert cal.baseline == pytest.approx(np.linalg.norm(t), rel=1e-6)
    with pytest.raises(CalibrationError, match="left, right"):
        StereoCalibration.from_opencv_stereo(k1, d1, k2, d2, r.T, -t, (640, 480))
    with pytest.raises(CalibrationError, match="vertical"):
        StereoCalibration.from_opencv_stereo(k1, d1, k2, d2, np.eye(3), [0, -0.12, 0],
                                             (640, 480))
    with pytest.raises(CalibrationError, match="rotation"):
        StereoCalibration.from_opencv_stereo(k1, d1, k2, d2, 2 * np.eye(3), t, (640, 480))


def test_calibration_validation():
    with pytest.raises(CalibrationError, match="baseline"):
        StereoCalibration(500, 500, 320, 240, -0.1, 640, 480)
    with pytest.raises(CalibrationError, match="fx"):
        StereoCalibration(0, 500, 320, 240, 0.1, 640, 480)
    with pytest.raises(CalibrationError, match="width"):
        StereoCalibration(500, 500, 320, 240, 0.1, 0, 480)
    with pytest.raises(CalibrationError, match="not finite"):
        StereoCalibration(500, 500, math.nan, 240, 0.1, 640, 480)


def test_left_right_consistency_check():
    """A right region that matches another left region better is refused."""
    cal = StereoCalibration.from_config(StereoCameraConfig())
    rng = np.random.default_rng(9)
    left = rng.uniform(0, 255, (480, 640)).astype(np.float32)
    right = rng.uniform(0, 255, (480, 640)).astype(np.float32)
    a = rng.uniform(0, 255, (20, 20)).astype(np.float32)
    u0, v0, d = 200, 100, 40
    left[v0:v0 + 20, u0:u0 + 20] = a + rng.normal(0, 40, a.shape)  # the observed region
    left[v0:v0 + 20, u0 + 30:u0 + 50] = a  # a cleaner copy at disparity d + 30
    right[v0:v0 + 20, u0 - d:u0 - d + 20] = a
    box = [[u0, v0, 20, 20]]
    plain = RegionMatcher(cal, 0.4, 6.0, lr_tolerance=0).match(left, right, box)
    assert plain.valid[0] and plain.disparity[0] == pytest.approx(d, abs=0.5)
    checked = RegionMatcher(cal, 0.4, 6.0).match(left, right, box)
    assert checked.reason[0] == "left_right_mismatch"
    assert np.isnan(checked.disparity[0]) and checked.quality[0] == 0
    # the clean copy itself is consistent both ways
    ok = RegionMatcher(cal, 0.4, 6.0).match(left, right, [[u0 + 30, v0, 20, 20]])
    assert ok.valid[0] and ok.disparity[0] == pytest.approx(d + 30, abs=0.5)
