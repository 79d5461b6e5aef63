"""Audio frames of a turning head in one tracker update: each frame's ITDs modelled with
the microphones where they were at its stamp (issue 21), against references: the model
row by row, split updates of a linear model, and a talker fixed in the fixed frame."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from av_perception.core.config import MicArrayConfig, StereoCameraConfig
from av_perception.core.head import make_head_model
from av_perception.core.poses import Pose
from av_perception.core.tracking import Tracker, TrackerConfig
from av_perception.core.tracking.inference import tf_presence_terms, variational_update
from av_perception.core.tracking.inputs import AudioFrames

pytestmark = pytest.mark.timeout(120)

CAM = StereoCameraConfig()


def pan_rotation(a: float) -> np.ndarray:
    """Camera -> fixed rotation of a head panned by ``a`` rad about the up axis (-y)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def pan_pose(t: float) -> Pose:
    """A head turning at 60 deg/s from -30 deg, pivot 5 cm behind the camera."""
    R = pan_rotation(math.radians(-30.0 + 60.0 * t))
    return Pose(R, R @ np.array([0.0, 0.0, 0.05]) - np.array([0.0, 0.0, 0.05]))


def test_per_frame_itd_model_equals_the_model_at_each_frames_pose():
    """Row n of the per-frame ITD model is the tracker's ITD model with its pose set to
    frame n's (the plain reference: one pose at a time)."""
    geo = make_head_model(MicArrayConfig())
    tracker = Tracker(TrackerConfig(), geo, CAM)
    stamps = np.array([0.1, 0.116, 0.132, 0.3])
    poses = [pan_pose(s) for s in stamps]
    R = np.stack([p.R for p in poses])
    t = np.stack([p.t for p in poses])
    points = np.array([[0.5, -0.1, 2.0], [-1.5, 0.0, 1.0], [0.0, 0.2, 3.0]])
    rows = np.array([0, 0, 1, 3, 2])
    G, J = tracker._frame_itd_model(R, t, rows)(points)
    assert G.shape == (5, 3) and J.shape == (5, 3, 3)
    for n, f in enumerate(rows):
        tracker._pose = poses[f]
        G_ref, J_ref = tracker.itd_model(points)
        assert np.allclose(G[n], G_ref, rtol=1e-12, atol=1e-15)
        assert np.allclose(J[n], J_ref, rtol=1e-12, atol=1e-15)
    # the frames differ: 12 deg of turn move a frontal source's ITD by ~0.1 ms
    assert abs(G[0, 2] - G[3, 2]) > 5e-5


def _linear_model(a, c):
    """ITD rows f: G_f(p) = a_f . p + c_f for every track (exactly linear)."""
    def model(points):
        p = np.asarray(points)
        return c[:, None] + a @ p.T, np.repeat(a[:, None, :], len(p), axis=1)
    return model


def test_one_update_with_per_frame_geometry_equals_split_updates_on_a_linear_model():
    """Linear ITD models that differ per frame (the head turned between them), one track
    that explains every ITD: one variational update with all frames (per-row model)
    gives the posterior of one update per frame in a row (a linear Gaussian update does
    not depend on how the observations are grouped)."""
    c = TrackerConfig(audio_clutter_prob=1e-6, audio_gate=1e6, itd_reflection_prob=0.0,
                      vb_iterations=1, audio_moves_in_view=True, min_responsibility=0.0)
    rng = np.random.default_rng(4)
    n = 5
    a = rng.normal(0.0, 3e-4, (n, 3))  # s/m
    off = rng.normal(0.0, 1e-4, n)
    truth = np.array([0.4, 0.1, 2.0])
    g = a @ truth + off + rng.normal(0.0, 2e-5, n)
    wn = rng.uniform(0.5, 1.0, n)
    mean = np.zeros((1, 6))
    mean[0, :3] = [0.2, 0.0, 1.8]
    cov = np.eye(6)[None] * 0.3
    kw = dict(speaking=np.ones(1), logodds=np.full(1, 5.0), visual_weight=None,
              unsupported=np.zeros(1, dtype=bool), in_view=lambda p: np.ones(len(p), bool),
              config=c)
    mu_b, cov_b, _, beta, _, _, _ = variational_update(
        mean, cov, None, None, g, wn, itd_model=_linear_model(a, off),
        frame=np.arange(n), frame_llr=np.zeros((n, 1)), **kw)
    assert np.all(beta[:, 1] > 1.0 - 1e-5)  # clutter: 1e-6 prior
    mu_s, cov_s = mean, cov
    for f in range(n):
        mu_s, cov_s, *_ = variational_update(
            mu_s, cov_s, None, None, g[f:f + 1], wn[f:f + 1],
            itd_model=_linear_model(a[f:f + 1], off[f:f + 1]), **kw)
    assert np.allclose(mu_b, mu_s, rtol=0, atol=1e-6)  # m (the update moves it ~0.2 m)
    assert np.allclose(cov_b, cov_s, rtol=1e-5, atol=1e-9)
    assert np.linalg.norm(mu_b[0, :3] - mean[0, :3]) > 0.05
    # and one geometry for every row is the one-row-per-track update of before
    same = _linear_model(np.repeat(a[:1], n, axis=0), np.repeat(off[:1], n))

    def shared(points):
        G, J = same(points)
        return G[0], J[0]
    mu_1, cov_1, *_ = variational_update(mean, cov, None, None, g, wn, itd_model=shared,
                                         **kw)
    mu_r, cov_r, *_ = variational_update(mean, cov, None, None, g, wn, itd_model=same, **kw)
    assert np.allclose(mu_1, mu_r, atol=1e-12) and np.allclose(cov_1, cov_r, atol=1e-12)


def test_tf_presence_with_per_frame_itds_equals_frame_by_frame():
    c = TrackerConfig()
    rng = np.random.default_rng(5)
    grid = np.linspace(-6e-4, 6e-4, 49)
    profile = rng.uniform(0.0, 1.0, (4, 49))
    G = rng.normal(0.0, 3e-4, (4, 2))
    var = rng.uniform(1e-9, 1e-8, (4, 2))
    rate = rng.uniform(0.1, 0.9, (4, 2))
    both = tf_presence_terms(profile, grid, G, var, rate, c)
    for f in range(4):
        one = tf_presence_terms(profile[f:f + 1], grid, G[f], var[f], rate[f:f + 1], c)
        assert np.allclose(both[f], one[0])


def _heard_talker_run(span: float, turn: bool = True):
    """A talker fixed in the fixed frame, seen for 1 s while the head is still, then
    heard only (noise-free ITDs of its true place at each frame's pose) while the head
    turns at 60 deg/s (``turn``; else it stays still); the tracker's audio batches span
    ``span`` s.  Returns the tracker, its last output, the person and the number of
    audio updates."""
    geo = make_head_model(MicArrayConfig())
    # the ITDs of an ideal front-end (no lag behind the turn): itd_pose_delay 0
    tracker = Tracker(TrackerConfig(audio_batch_span=span, audio_births=False,
                                    estimate_itd_shrink=False, itd_shrink_per_m=0.0,
                                    itd_reflection_prob=0.0, itd_pose_delay=0.0), geo, CAM)
    person = np.array([[0.9, 0.0, 2.2]])  # fixed frame

    def pose(s):
        return pan_pose(max(s - 1.0, 0.0) if turn else 0.0)
    tracker.set_pose_source(pose)
    updates = []
    batch = tracker._update_audio_batch

    def counted(frames, poses=None):
        updates.append(len(frames))
        return batch(frames, poses)
    tracker._update_audio_batch = counted
    hop, fps = 0.016, 15.0
    stamps = np.arange(1, int(2.0 / hop)) * hop
    itd = np.array([geo.itd(pose(s).apply_inverse(person))[0] for s in stamps])
    out = None
    for k in range(1, int(2.0 * fps)):
        t = k / fps
        now = (stamps > t - 1.0 / fps) & (stamps <= t)
        frames = AudioFrames(stamps[now], itd[now], np.ones(int(now.sum())))
        visual = None
        if t < 1.0:  # seen while the head is still
            visual = SimpleNamespace(xyz=pose(t).apply_inverse(person),
                                     covariance=np.eye(3)[None] * 1e-4, weight=np.ones(1))
        out = tracker.step(t, visual=visual, audio=frames)
    return tracker, out, person, len(updates)


def test_a_heard_talker_stays_in_place_with_batches_as_with_one_update_per_frame():
    """The head turns 60 deg in 1 s while a talker it saw is only heard: with 0.1 s audio
    batches (6 deg of turn each, every frame with its own geometry) the track stays where
    the talker is, as with one update per frame (span 0), and there are as many audio
    updates as with a still head."""
    _, out_b, person, n_b = _heard_talker_run(0.1)
    _, out_s, _, n_s = _heard_talker_run(0.0)
    _, _, _, n_still = _heard_talker_run(0.1, turn=False)
    assert list(out_b.ids) == [1] and list(out_s.ids) == [1]
    err_b = float(np.linalg.norm(out_b.position[0] - person[0]))
    err_s = float(np.linalg.norm(out_s.position[0] - person[0]))
    assert err_b < 0.05 and err_s < 0.05, (err_b, err_s)
    assert np.linalg.norm(out_b.position[0] - out_s.position[0]) < 1e-3  # 44 mm with one pose
    # the direction of the talker from the turned head (what the ITDs observe)
    geo = make_head_model(MicArrayConfig())
    last = pan_pose(1.0 - 1.0 / 15.0)
    assert abs(geo.itd(last.apply_inverse(out_b.position))[0]
               - geo.itd(last.apply_inverse(person))[0]) < 5e-6
    assert n_b == n_still < n_s / 3, (n_b, n_still, n_s)


def test_head_poses_cache_and_vectorised_lookups_equal_fresh_lookups():
    """/tf arriving while stamps are looked up (as live: images, audio frames, the
    outputs' extrapolation): every cached or vectorised answer equals a fresh lookup in
    the transform tree at that moment, with the same status; lookups are counted."""
    from av_perception.core.poses import quat_from_matrix
    from av_perception.pipeline import TrackingConfig
    from av_perception.pipeline.poses import HeadPoses
    poses = HeadPoses(TrackingConfig(fixed_frame="base_link"))
    poses.camera_frame = CAM.frame_id
    poses.add("head", CAM.frame_id, 0.0, (0, 0, 0.05), (0, 0, 0, 1), static=True)
    rng = np.random.default_rng(6)
    n = 0
    for k in range(300):
        s = k / 100.0
        poses.add("base_link", "head", s, (0, 0, 0), quat_from_matrix(pan_pose(s).R))
        if k < 2 or k % 3:
            continue
        stamps = np.sort(s + rng.uniform(-0.3, 0.15, 5))  # before, within and past /tf
        for x in stamps:  # one at a time, twice (the second from the cache)
            for _ in range(2):
                got = poses.camera_pose(float(x))
                look = poses.tree.lookup("base_link", CAM.frame_id, float(x))
                assert np.allclose(got.R, look.pose.R, atol=1e-12)
                assert np.allclose(got.t, look.pose.t, atol=1e-12)
                assert (poses.level == 1) == (look.status == "held")
                n += 1
        R, t = poses.camera_poses(stamps)
        n += len(stamps)
        for x, Rk, tk in zip(stamps, R, t):
            look = poses.tree.lookup("base_link", CAM.frame_id, float(x))
            assert np.allclose(Rk, look.pose.R, atol=1e-12)
            assert np.allclose(tk, look.pose.t, atol=1e-12)
    assert poses.lookups == n and poses.held > 0


@pytest.mark.parametrize("model", ["free_field", "spherical_head"])
def test_point_from_itd_equals_bisection(model):
    """The 64-way search of the azimuth gives the point of 60 plain bisections (the
    reference) for ITDs across the range, beyond it, near and far."""
    geo = make_head_model(MicArrayConfig(head_model=model))
    itd = np.r_[np.linspace(-1.2, 1.2, 41) * geo.max_itd, 0.0]
    for dist in (0.6, 2.0, 5.0):
        lo, hi = np.full(len(itd), -np.pi / 2), np.full(len(itd), np.pi / 2)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = geo.itd(geo.centre + dist * geo.direction_from_azimuth(mid)) < itd
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        ref = geo.centre + dist * geo.direction_from_azimuth(0.5 * (lo + hi))
        got = geo.point_from_itd(itd, dist)
        assert np.allclose(got, ref, rtol=0, atol=1e-12)
        inside = np.abs(itd) < 0.9 * geo.max_itd
        assert np.allclose(geo.itd(got[inside]), itd[inside], rtol=0, atol=1e-12)


def _lagging_front_end_run(delay_model: float, lag: float = 0.1):
    """Two people seen in the fixed frame, A talking (every frame), B silent 12 deg
    beside A on the side the head turns to; the head turns at 60 deg/s, and the ITDs
    are A's true ITD at the head's pose ``lag`` s before each frame's stamp (a front-end
    whose ITDs lag the turn).  The tracker models the ITDs at ``delay_model`` s before
    the stamp (``itd_pose_delay``).  Returns the largest speaking probability of B
    and the smallest of A after the first 0.5 s."""
    geo = make_head_model(MicArrayConfig())
    tracker = Tracker(TrackerConfig(audio_births=False, estimate_itd_shrink=False,
                                    itd_shrink_per_m=0.0, itd_reflection_prob=0.0,
                                    lip_gain=0.0, itd_pose_delay=delay_model), geo, CAM)
    # fixed-frame points, 2 m away; the head turns from -30 deg at 60 deg/s (pan_pose), so
    # a lagging ITD reads A where the head saw it earlier: towards B
    a_az, b_az = math.radians(-20.0), math.radians(-32.0)
    people = 2.0 * np.array([[math.sin(a_az), 0.0, math.cos(a_az)],
                             [math.sin(b_az), 0.0, math.cos(b_az)]])
    tracker.set_pose_source(pan_pose)
    hop, fps = 0.016, 15.0
    stamps = np.arange(1, int(1.5 / hop)) * hop
    itd = np.array([geo.itd(pan_pose(s - lag).apply_inverse(people[:1]))[0] for s in stamps])
    rng = np.random.default_rng(3)
    itd = itd + rng.normal(0.0, 2e-5, len(itd))
    worst_b, worst_a = 0.0, 1.0
    for k in range(1, int(1.5 * fps)):
        t = k / fps
        now = (stamps > t - 1.0 / fps) & (stamps <= t)
        frames = AudioFrames(stamps[now], itd[now], np.ones(int(now.sum())))
        seen = pan_pose(t).apply_inverse(people)
        seen = seen[seen[:, 2] > 0]
        visual = SimpleNamespace(xyz=seen, covariance=np.repeat(np.eye(3)[None] * 1e-4,
                                                                len(seen), axis=0),
                                 weight=np.ones(len(seen)))
        out = tracker.step(t, visual=visual, audio=frames)
        if t >= 0.5:
            assert len(out.ids) == 2
            b = int(np.argmin(np.linalg.norm(out.position - people[1], axis=1)))
            worst_b = max(worst_b, float(out.speaking[b]))
            worst_a = min(worst_a, float(out.speaking[1 - b]))
    return worst_b, worst_a


def test_itds_that_lag_a_turning_head_are_modelled_at_the_delayed_pose():
    """A front-end whose ITDs lag the head's turn by 0.1 s reads the talker towards the
    side the head turns to, where a silent person sits: modelled at the frame's own stamp
    the silent person is flagged speaking; with ``itd_pose_delay`` = the lag the talker
    keeps the frames and the silent person stays silent."""
    b_own, a_own = _lagging_front_end_run(0.0)
    b_delay, a_delay = _lagging_front_end_run(0.1)
    assert b_own > 0.5, b_own  # the lag gives the talker's frames to the neighbour
    assert b_delay < 0.2 and a_delay > 0.9, (b_delay, a_delay)
