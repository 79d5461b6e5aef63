"""Low-scoring BlazeFace candidates confirmed by stereo and the tracks, and the track's
depth for a face hidden in the right image (issue 17)."""
from __future__ import annotations

import numpy as np
import pytest
from test_blazeface import BlazeFaceConfig, needs_models, paste_faces
from test_face_search import _pair, astronaut, coffee  # noqa: F401 - fixtures

from av_perception.core import blazeface as bf
from av_perception.core.config import StereoCameraConfig
from av_perception.core.detection import Detection, DetectionConfig, DetectionPipeline
from av_perception.core.stereo import StereoCalibration
from av_perception.core.vision import TRACK_DEPTH_SIGMA, VisionConfig, VisualFrontEnd

pytestmark = pytest.mark.timeout(300)

CAL = StereoCalibration.from_config(StereoCameraConfig())


# ---------------------------------------------------------------------------
# the detector's candidates
# ---------------------------------------------------------------------------
def test_candidates_never_move_or_replace_a_confident_face():
    rng = np.random.default_rng(3)
    confident = np.array([[100, 100, 140, 140], [104, 102, 142, 143], [300, 50, 330, 80]],
                         float)
    cand = np.array([[101, 99, 139, 141],  # the first face again, lower score
                     [500, 300, 520, 320], [502, 301, 521, 322]], float)  # a new one
    kp = rng.uniform(0, 600, (6, 6, 2))
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.52])
    faces = bf.RawFaces(np.concatenate([confident, cand]), kp, scores,
                        np.array([False] * 3 + [True] * 3))
    out = bf.nms_with_candidates(faces, 0.3)
    b, s, k = bf.weighted_nms(confident, scores[:3], kp[:3], 0.3)
    conf = ~out.is_candidate
    np.testing.assert_allclose(out.boxes[conf], b)
    np.testing.assert_allclose(out.scores[conf], s)
    np.testing.assert_allclose(out.keypoints[conf], k)
    # the overlapping candidate is dropped, the new face is one flagged candidate
    assert out.is_candidate.sum() == 1
    box = out.boxes[out.is_candidate][0]
    assert 500 <= box[0] <= 502 and out.scores[out.is_candidate][0] == pytest.approx(0.55)
    # without candidates: weighted NMS itself
    plain = bf.nms_with_candidates(bf.RawFaces(confident, kp[:3], scores[:3]), 0.3)
    np.testing.assert_allclose(plain.boxes, b)
    assert not plain.is_candidate.any()


def test_duplicate_candidates_are_merged_and_confident_faces_untouched():
    """The search's faces joined to the other passes': confident boxes exactly as given
    (even two overlapping ones), two candidates of one face merged into one, a candidate
    of a confident face dropped."""
    boxes = np.array([[100, 100, 130, 130], [110, 100, 140, 130],  # confident, overlapping
                      [102, 101, 131, 129],  # candidate of the first face
                      [300, 200, 320, 220], [301, 201, 321, 221]], float)  # one new face
    faces = bf.RawFaces(boxes, np.zeros((5, 6, 2)), np.array([0.9, 0.8, 0.6, 0.55, 0.5]),
                        np.array([False, False, True, True, True]))
    out = bf.without_duplicate_candidates(faces, 0.3)
    np.testing.assert_allclose(out.boxes[~out.is_candidate], boxes[:2])
    assert out.is_candidate.sum() == 1
    assert 300 < out.boxes[out.is_candidate][0, 0] < 301
    assert out.scores[out.is_candidate][0] == pytest.approx(0.55)


@needs_models
def test_a_low_threshold_adds_candidates_and_leaves_the_faces(astronaut, coffee):  # noqa: F811
    """Faces 16-40 px: the regions' pass with a low threshold returns the faces of the
    plain pass unchanged, plus flagged candidates scoring under the threshold."""
    frame, _ = paste_faces(astronaut, coffee, [(60, 200, 16), (250, 260, 22),
                                                (450, 170, 40), (560, 300, 17)])
    rgb = bf.to_rgb(frame)
    det = bf.BlazeFaceDetector("", None, 0.3, variant="back")
    crops = [((0.0, 0.0, 640.0, 480.0), 0.75), ((20.0, 150.0, 140.0, 270.0), 128 / 120)]
    plain = det.detect_regions(rgb, crops)
    both = det.detect_regions(rgb, crops, low_score=0.3)
    conf = ~both.is_candidate
    np.testing.assert_allclose(both.boxes[conf], plain.boxes)
    np.testing.assert_allclose(both.scores[conf], plain.scores)
    assert np.all(both.scores[both.is_candidate] < det.min_score)
    assert np.all(both.scores[both.is_candidate] >= 0.3)


def test_a_tracked_box_stays_a_candidate():
    d = Detection(10, 20, 30, 30, 0.55, "face", "blazeface", candidate=True)
    assert d.moved(12, 21, 0.5).candidate and d.shifted(2.0, 1, 1).candidate
    assert not Detection(10, 20, 30, 30, 0.9, "face").moved(12, 21, 0.9).candidate


@needs_models
def test_the_detector_flags_candidates_only_under_its_threshold(astronaut, coffee):  # noqa: F811
    """Regions around given heads and the search: with candidates (threshold 0.3) the
    confident faces are those without, and every added box is a flagged candidate; only
    a caller that confirms them (``keep_candidates``) gets them."""
    frame, truth = paste_faces(astronaut, coffee, [(60, 200, 16), (250, 230, 17),
                                                    (450, 170, 18)])
    regions = list(truth)
    off = DetectionPipeline(BlazeFaceConfig(every_k=1, candidate_score_threshold=0.0),
                            min_size=9)
    on = DetectionPipeline(BlazeFaceConfig(every_k=1, candidate_score_threshold=0.3),
                           min_size=9)
    hidden = DetectionPipeline(BlazeFaceConfig(every_k=1, candidate_score_threshold=0.3),
                               min_size=9)
    on.keep_candidates = True  # as the visual front-end, which confirms them
    n_cand = 0
    for _ in range(2):  # both halves of the search band
        a = off.detect(frame, regions)
        b = on.detect(frame, regions)
        n_cand += sum(d.candidate for d in b)
        assert not any(d.candidate for d in hidden.detect(frame, regions))  # by default
        assert not any(d.candidate for d in a)
        sure = sorted((d.x, d.y, d.w, d.confidence) for d in b if not d.candidate)
        np.testing.assert_allclose(np.array(sure).reshape(-1, 4), np.array(
            sorted((d.x, d.y, d.w, d.confidence) for d in a)).reshape(-1, 4))
        assert all(0.3 <= d.confidence < 0.65 for d in b if d.candidate)
    assert n_cand >= 1  # measured: 1 (a texture scoring 0.30 in the search band)


# ---------------------------------------------------------------------------
# the front-end's confirmation
# ---------------------------------------------------------------------------
def _head(box, z):
    """The 3D head (camera frame) whose face is ``box`` at depth z."""
    u = box[0] + 0.5 * box[2] - 0.5
    v = box[1] + 0.5 * box[3] - 0.5
    return np.array([[(u - CAL.cx) * z / CAL.fx, (v - CAL.cy) * z / CAL.fy, z]])


def by_track(det: Detection):
    return _front_end(det, candidate_confirmation="track")


def _front_end(det: Detection, **vision):
    fe = VisualFrontEnd(VisionConfig(**vision), StereoCameraConfig(),
                        DetectionConfig(detector="haar_frontal", every_k=1))
    fe.detector.detect = lambda image, regions=None: [det]  # the face is given
    return fe


@pytest.mark.parametrize("z", [3.6, 4.2])
def test_a_candidate_is_a_face_where_a_track_predicts_its_head(astronaut, z):  # noqa: F811
    """An unhidden face at 3.6 / 4.2 m given as a 0.55 candidate: kept with the right depth
    when a track's head is predicted there; not without a track, nor with a track at
    another depth, nor when its box is too big for its stereo depth."""
    left, right, box = _pair(astronaut, z, -FACE_PX(z))  # nothing hidden
    cand = Detection(*box, 0.55, "face", "blazeface", candidate=True)
    # confident: accepted without any track (as before)
    obs = _front_end(Detection(*box, 0.9, "face", "blazeface")).process(left, right, 0.0)
    assert len(obs) == 1 and obs.xyz[0, 2] == pytest.approx(z, rel=0.03)
    # no track: unconfirmed
    obs = by_track(cand).process(left, right, 0.0)
    assert len(obs) == 0 and [r.reason for r in obs.rejected] == ["unconfirmed"]
    # a track at its head: a face
    fe = by_track(cand)
    obs = fe.process(left, right, 0.0, tracks=(_head(box, z), [7]))
    assert len(obs) == 1 and obs.xyz[0, 2] == pytest.approx(z, rel=0.03)
    assert fe.stats["candidates"] == 1
    # a track on the ray but 25 % nearer: not this face
    obs = by_track(cand).process(left, right, 0.0, tracks=(_head(box, 0.75 * z), [7]))
    assert len(obs) == 0
    # a track 2 face widths aside: not this face
    aside = _head(box, z) + [[0.32, 0.0, 0.0]]
    obs = by_track(cand).process(left, right, 0.0, tracks=(aside, [7]))
    assert len(obs) == 0
    # a box 1.5 x too big for the stereo depth: not a head of that size
    x, y, w, h = box
    big = Detection(x - 0.25 * w, y - 0.25 * h, 1.5 * w, 1.5 * h, 0.55, "face", "blazeface",
                    candidate=True)
    obs = by_track(big).process(left, right, 0.0, tracks=(_head(box, z), [7]))
    assert len(obs) == 0


def test_stereo_alone_confirms_a_sure_match(astronaut):  # noqa: F811
    z = 4.0
    left, right, box = _pair(astronaut, z, -FACE_PX(z))
    cand = Detection(*box, 0.55, "face", "blazeface", candidate=True)
    for rule, kept in (("stereo", 1), ("either", 1), ("both", 0), ("track", 0)):
        obs = _front_end(cand, candidate_confirmation=rule).process(left, right, 0.0)
        assert len(obs) == kept, rule
        if kept:
            assert obs.xyz[0, 2] == pytest.approx(z, rel=0.03)


def FACE_PX(z):  # noqa: N802 - a unit conversion
    return CAL.fx * 0.16 / z


# ---------------------------------------------------------------------------
# the track's depth for a face hidden in the right image
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("z", [3.2, 3.9, 4.4])
def test_a_face_hidden_in_the_right_image_at_a_track_gets_a_depth_near_the_truth(
        astronaut, z):  # noqa: F811
    """0.6-1.2 of the face hidden in the right image: without a track no observation or
    the right depth (the half-face bounds); with a track predicted at the true head an
    observation within 5 % of the true depth in every case, its depth uncertain by
    TRACK_DEPTH_SIGMA when it is the track's own; a track whose depth does not fit the
    face's size does not lend it."""
    for hide in (0.6, 0.8, 1.0, 1.2):
        left, right, box = _pair(astronaut, z, hide * FACE_PX(z), 0)
        face = Detection(*box, 0.9, "face", "blazeface")
        obs = _front_end(face, track_depth_fallback=True).process(left, right, 0.0)
        assert len(obs) == 0 or obs.xyz[0, 2] == pytest.approx(z, rel=0.05)
        fe = _front_end(face, track_depth_fallback=True)
        obs = fe.process(left, right, 0.0, tracks=(_head(box, z), [3]))
        assert len(obs) == 1, hide
        assert obs.xyz[0, 2] == pytest.approx(z, rel=0.05), hide
        if fe.stats["track_depth"]:
            sz = np.sqrt(obs.covariance[0, 2, 2])
            assert sz == pytest.approx(TRACK_DEPTH_SIGMA * z, rel=0.1)
        off = _front_end(face)  # off by default
        obs = off.process(left, right, 0.0, tracks=(_head(box, z), [3]))
        assert len(obs) == 0 or obs.xyz[0, 2] == pytest.approx(z, rel=0.05)
        assert off.stats["track_depth"] == 0
        # a track at 0.5 z on the same ray: the face's size says it is not that person
        obs = _front_end(face, track_depth_fallback=True).process(
            left, right, 0.0, tracks=(_head(box, 0.5 * z), [3]))
        assert len(obs) == 0 or obs.xyz[0, 2] == pytest.approx(z, rel=0.05)
