"""Detectors, NMS and keyframe tracking on real photos (scikit-image)."""
import threading

import cv2
import numpy as np
import pytest

from av_perception.core.config import ConfigError, StereoCameraConfig
from av_perception.core.detection import (
    Detection,
    DetectionConfig,
    DetectionPipeline,
    DetectorError,
    HaarDetector,
    YuNetDetector,
    box_iou,
    non_max_suppression,
)
from av_perception.core.stereo import StereoCalibration
from av_perception.sim.stereo_heads import render_stereo_heads

# Hand-labelled on skimage's astronaut photo (pixels, x right, y down), independently of
# any detector: the eye centres, the mouth centre, and the face from brow to chin and
# cheek to cheek
ASTRONAUT_EYES = ((202, 101), (245, 103))
ASTRONAUT_MOUTH = (225, 145)
ASTRONAUT_FACE = (182, 80, 88, 98)


def is_astronaut_face(box) -> bool:
    """A face box of the astronaut: both eyes and the mouth inside, and about her face's
    width (detectors frame a face differently: Haar includes the forehead)."""
    x, y, w, h = box
    inside = all(x <= px <= x + w and y <= py <= y + h
                 for px, py in (*ASTRONAUT_EYES, ASTRONAUT_MOUTH))
    return inside and 0.7 <= w / ASTRONAUT_FACE[2] <= 1.4


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., ::-1])


@pytest.fixture(scope="module")
def cameraman():
    from skimage import data

    return np.ascontiguousarray(data.camera())


def test_haar_frontal_finds_the_face(astronaut):
    dets = DetectionPipeline(DetectionConfig(detector="haar_frontal", every_k=1)).detect(astronaut)
    faces = [d for d in dets if d.kind == "face"]
    assert len(faces) >= 1
    best = faces[0]
    assert is_astronaut_face(best.box), best.box
    assert 0.3 < best.confidence <= 1.0
    assert best.source == "haar_frontal" and not best.tracked


def test_profile_runs_on_the_mirrored_image(cameraman):
    plain = HaarDetector("profile", "profile", scale_factor=1.1, min_neighbors=3)
    both = HaarDetector("profile", "profile", mirrored=True, scale_factor=1.1, min_neighbors=3)
    direct = plain.detect(cameraman)
    assert direct, "the cameraman's 3/4 profile should be found"
    flipped = both.detect(cv2.flip(cameraman, 1))
    w = cameraman.shape[1]
    # every hit on the original appears, mirrored back, when the mirrored pass runs on the flip
    for d in direct:
        want = (w - d.x - d.w, d.y, d.w, d.h)
        assert any(np.allclose(f.box, want) for f in flipped)
    assert all(f.kind == "profile" for f in flipped)


def test_scale_and_roi_map_back_to_full_resolution(astronaut):
    half = DetectionPipeline(DetectionConfig(every_k=1, scale=0.5)).detect(astronaut)
    assert any(is_astronaut_face(d.box) for d in half)
    roi_in = (0.25, 0.0, 0.75, 0.5)
    inside = DetectionPipeline(DetectionConfig(every_k=1, roi=roi_in)).detect(astronaut)
    assert any(is_astronaut_face(d.box) for d in inside)
    assert all(d.x >= 0.25 * 512 - 1 and d.x + d.w <= 0.75 * 512 + 1 for d in inside)
    outside = DetectionPipeline(DetectionConfig(every_k=1, roi=(0.0, 0.5, 1.0, 1.0)))
    assert not any(box_iou(d.box, ASTRONAUT_FACE)[0, 0] > 0.1 for d in outside.detect(astronaut))
    # size limits: a max size below the face hides it
    small = DetectionPipeline(DetectionConfig(every_k=1, max_size=60))
    assert not any(is_astronaut_face(d.box) for d in small.detect(astronaut))


def test_upper_body_and_combined_detectors_run(astronaut):
    p = DetectionPipeline(DetectionConfig(detector="haar_all", every_k=1))
    assert [type(d).__name__ for d in p.detectors] == ["HaarDetector"] * 3
    dets = p.detect(astronaut)
    assert {d.kind for d in dets} <= {"face", "profile", "upper_body"}
    assert any(d.kind in ("face", "profile") and is_astronaut_face(d.box) for d in dets)
    # after NMS no two head boxes overlap much
    heads = np.array([d.head_box() for d in dets])
    iou = box_iou(heads, heads)
    assert np.all(iou[~np.eye(len(dets), dtype=bool)] <= 0.3)


def test_head_box_of_an_upper_body():
    d = Detection(100, 50, 200, 160, 0.8, "upper_body")
    x, y, w, h = d.head_box()
    assert (x, y, w, h) == pytest.approx((160, 58, 80, 80))
    assert Detection(1, 2, 3, 4, 0.5, "face").head_box().tolist() == [1, 2, 3, 4]


def test_non_max_suppression():
    dets = [
        Detection(100, 100, 50, 50, 0.9, "face"),
        Detection(104, 102, 50, 50, 0.6, "profile"),  # same head, lower confidence
        Detection(60, 80, 130, 110, 0.7, "upper_body"),  # head box ~ the face above
        Detection(400, 100, 50, 50, 0.5, "face"),  # another person
        Detection(300, 300, 40, 40, 0.2, "face"),
    ]
    kept = non_max_suppression(dets, 0.3)
    assert [(d.x, d.kind) for d in kept] == [(100, "face"), (400, "face"), (300, "face")]
    assert len(non_max_suppression(dets, 0.3, max_detections=2)) == 2
    assert non_max_suppression([], 0.3) == []
    np.testing.assert_allclose(box_iou([0, 0, 10, 10], [[5, 0, 10, 10], [20, 20, 5, 5]]),
                               [[50 / 150, 0.0]])


@pytest.fixture(scope="module")
def moving_face(astronaut):
    """Left images of a face at 1.5 m moving right by 0.012 m (4 px) per frame."""
    # a square around the labelled eyes and mouth, 2.4 eye-to-mouth distances wide
    (ex0, ey0), (ex1, ey1) = ASTRONAUT_EYES
    mx, my = ASTRONAUT_MOUTH
    cx, cy = ((ex0 + ex1) / 2 + mx) / 2, ((ey0 + ey1) / 2 + my) / 2
    s = 2.4 * np.hypot(mx - (ex0 + ex1) / 2, my - (ey0 + ey1) / 2)
    face = astronaut[int(cy - s / 2):int(cy + s / 2), int(cx - s / 2):int(cx + s / 2)]
    cal = StereoCalibration.from_config(StereoCameraConfig())
    frames = []
    rng = np.random.default_rng(0)
    for i in range(7):
        pos = np.array([-0.2 + 0.012 * i, 0.0, 1.5])
        left, _ = render_stereo_heads(cal, [pos], face, None, 6.0, noise_sigma=1.0, rng=rng)
        frames.append((left, cal.project(pos)[0][0]))
    return frames


def test_every_k_tracks_between_keyframes(moving_face):
    p = DetectionPipeline(DetectionConfig(every_k=5, haar_min_neighbors=3))
    first = p.detect(moving_face[0][0])
    assert len(first) == 1 and not first[0].tracked
    u0 = first[0].centre[0] - moving_face[0][1]  # detector offset from the true centre
    for i, (img, u) in enumerate(moving_face[1:5], start=1):
        dets = p.detect(img)
        assert len(dets) == 1 and dets[0].tracked, i
        assert dets[0].centre[0] - u == pytest.approx(u0, abs=1.0)
        assert dets[0].w == first[0].w
        assert 0 < dets[0].confidence <= first[0].confidence
    again = p.detect(moving_face[5][0])  # keyframe
    u5 = moving_face[5][1]
    assert any(abs(d.centre[0] - u5 - u0) < 3 and not d.tracked for d in again)
    assert all(not d.tracked for d in again)
    assert p.stats["keyframes"] == 2 and p.stats["tracked"] == 4
    p.reset()
    assert all(not d.tracked for d in p.detect(moving_face[6][0]))


def _pan(deg):
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])


@pytest.mark.parametrize("turn", [0.0, 7.0])
def test_a_turning_camera_makes_a_keyframe_so_a_face_coming_into_view_is_found(
        moving_face, turn):
    """every_k 5: a face appearing on frame 1 is found there when the camera turned by
    more than detection.turn_keyframe (6 deg) since the keyframe, at the next keyframe
    (frame 5) when it did not turn."""
    p = DetectionPipeline(DetectionConfig(every_k=5, haar_min_neighbors=3))
    blank = np.full_like(moving_face[0][0], 127)
    p.tracker.rotation = _pan(0.0)
    assert p.detect(blank) == []
    p.tracker.rotation = _pan(turn)
    dets = p.detect(moving_face[1][0])
    if turn > p.config.turn_keyframe:
        assert len(dets) == 1 and not dets[0].tracked
        assert p.stats["turn_keyframes"] == 1 and p.stats["keyframes"] == 2
    else:
        assert dets == [] and p.stats["keyframes"] == 1
    off = DetectionPipeline(DetectionConfig(every_k=5, haar_min_neighbors=3, turn_keyframe=0))
    off.tracker.rotation = _pan(0.0)
    off.detect(blank)
    off.tracker.rotation = _pan(turn)
    assert off.detect(moving_face[1][0]) == []  # 0: every_k only


def test_asynchronous_detection_starts_a_detection_when_the_camera_turned(moving_face):
    from av_perception.pipeline import AsyncDetection

    det = AsyncDetection(DetectionPipeline(DetectionConfig(every_k=5, haar_min_neighbors=3)))
    try:
        det.pipeline.tracker.rotation = _pan(0.0)
        det.detect(moving_face[0][0])  # nothing held: a detection starts
        assert det.wait_idle()
        for i, deg in ((1, 0.0), (2, 2.0), (3, 7.0)):
            det.pipeline.tracker.rotation = _pan(deg)
            det.detect(moving_face[i][0])
            assert det.wait_idle()
        # frames 1 and 2: boxes held, every_k not reached; frame 3: turned 7 deg > 6
        assert det.detections_run == 2
    finally:
        det.close()


def test_tracking_drops_a_vanished_face(moving_face):
    p = DetectionPipeline(DetectionConfig(every_k=4, haar_min_neighbors=3))
    assert len(p.detect(moving_face[0][0])) == 1
    blank = np.full_like(moving_face[1][0], 127)
    assert p.detect(blank) == []


def test_asynchronous_detection_tracks_every_frame_and_applies_late_detections(moving_face):
    """AsyncDetection (live nodes): the detectors run on a worker thread; the frame that
    starts a detection gets only the held boxes, the detection reaches a later frame
    carried there by tracking, at the same place a synchronous keyframe would put it."""
    from av_perception.pipeline import AsyncDetection

    cfg = DetectionConfig(every_k=3, haar_min_neighbors=3)
    sync = DetectionPipeline(cfg)
    u0 = sync.detect(moving_face[0][0])[0].centre[0] - moving_face[0][1]
    pipeline = DetectionPipeline(cfg)
    before = set(threading.enumerate())
    det = AsyncDetection(pipeline)
    workers = set(threading.enumerate()) - before
    assert len(workers) == 1  # its worker thread
    try:
        assert det.detect(moving_face[0][0]) == []  # nothing held yet: a detection starts
        assert det.wait_idle()
        counts = []
        for i, (img, u) in enumerate(moving_face[1:], start=1):
            boxes = det.detect(img)
            counts.append(len(boxes))
            assert len(boxes) == 1, i
            # carried from its detection frame into this one: the true position of frame i
            assert boxes[0].centre[0] - u == pytest.approx(u0, abs=1.0), i
            assert det.wait_idle()
        assert det.detections_run == 3  # frames 0, 3 and 6 (every_k = 3)
        assert det.stats["keyframes"] == 2 and det.stats["frames"] == 7
        # a detector error surfaces at the next frame; reset drops a detection in flight
        det.pipeline.detect_keyframe = lambda image, grey=None: 1 / 0
        det.reset()
        det.detect(moving_face[0][0])
        assert det.wait_idle()
        with pytest.raises(ZeroDivisionError):
            det.detect(moving_face[1][0])
    finally:
        det.close()
    assert not any(t.is_alive() for t in workers)  # close() stops the worker


def test_vision_pipeline_detects_asynchronously_only_live():
    from av_perception.pipeline import AsyncDetection, VisionPipeline

    live = VisionPipeline(live=True)
    try:
        assert isinstance(live.front_end.detector, AsyncDetection)
        assert live.front_end.detector.roi_pixels(640, 480) == (0, 0, 640, 480)
    finally:
        live.close()
    assert not isinstance(VisionPipeline().front_end.detector, AsyncDetection)
    off = VisionPipeline(detection=DetectionConfig(asynchronous=False), live=True)
    assert not isinstance(off.front_end.detector, AsyncDetection)


def test_yunet_errors(tmp_path):
    with pytest.raises(DetectorError, match="detection.yunet_model"):
        YuNetDetector("")
    missing = tmp_path / "face_detection_yunet_2023mar.onnx"
    with pytest.raises(DetectorError, match="does not exist.*model zoo"):
        YuNetDetector(str(missing))
    with pytest.raises(DetectorError, match="does not exist"):
        DetectionPipeline(DetectionConfig(detector="yunet", yunet_model=str(missing)))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model")
    with pytest.raises(DetectorError, match="cannot load the YuNet model"):
        YuNetDetector(str(bad))


def test_detection_config_validation():
    with pytest.raises(ConfigError, match="detection.roi"):
        DetectionConfig(roi=(0.5, 0.0, 0.4, 1.0))
    with pytest.raises(ConfigError, match="detection.detector"):
        DetectionConfig(detector="hog")
    with pytest.raises(ConfigError, match="detection.max_size"):
        DetectionConfig(min_size=40, max_size=30)
    with pytest.raises(ConfigError, match="detection.every_k"):
        DetectionConfig(every_k=0)
    names = {s.name for s in DetectionConfig.parameter_specs()}
    assert {"detection.detector", "detection.every_k", "detection.scale"} <= names


def test_bad_images():
    p = DetectionPipeline(DetectionConfig(every_k=1))
    with pytest.raises(DetectorError, match="shape"):
        p.detect(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(DetectorError, match="dtype"):
        p.detect(np.zeros((10, 10), np.float32))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cut", [0.0, 0.3, 0.45])
def test_a_box_cut_by_the_image_border_is_followed_by_its_part_inside(cut):
    """A textured square (40 px) at the right border with ``cut`` of its width outside,
    moved by known shifts: with border_boxes it is followed by its part inside to the
    true place (within 0.3 px); without, a box cut by the border is dropped."""
    from av_perception.core.detection import Detection
    from av_perception.core.template_tracking import BoxTracker

    rng = np.random.default_rng(3)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (40, 40)).astype(np.float32), (0, 0), 1.5)
    bg = cv2.GaussianBlur(rng.uniform(90, 110, (240, 400)).astype(np.float32), (0, 0), 3.0)

    def frame(x):  # the square's left edge at x (integer px), cut by the right border
        img = bg.copy()
        img[100:140, x:x + 40] = tex
        return np.clip(img[:, :320], 0, 255).astype(np.uint8)

    x0 = int(round(320 - 40 * (1 - cut)))
    det = Detection(float(x0), 100.0, 40.0, 40.0, 0.9, "face")
    for border, expect in ((True, True), (False, cut == 0.0)):
        t = BoxTracker(0.5, 0.6, border_boxes=border)
        t.start(frame(x0), [det])
        for dx in (-2, -5, -3):  # the square moves left, into the image
            out = t.update(frame(x0 + dx))
            assert bool(out) == expect, (border, dx)
            if out:
                assert out[0].x == pytest.approx(x0 + dx, abs=0.3)
                assert out[0].y == pytest.approx(100.0, abs=0.3)
                assert (out[0].w, out[0].h) == (40.0, 40.0)
    # less than half of it inside: not followed
    t = BoxTracker(0.5, 0.6, border_boxes=True)
    t.start(frame(305), [Detection(305.0, 100.0, 40.0, 40.0, 0.9, "face")])
    assert len(t) == 0
