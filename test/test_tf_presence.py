"""Per-track speech presence from time-frequency observations (issue 18, item 2): the
per-frame ITD profile (kernel vs numpy reference, analytic sources, the front-end), its
speaking emission in the tracker, and its way through the tracking stage's buffer."""
import numpy as np
import pytest

from av_perception.core.audio import BinauralFrontEnd
from av_perception.core.config import AudioFrontEndConfig
from av_perception.core.geometry import MicGeometry
from av_perception.core.tf_presence import itd_grid, itd_profile
from av_perception.core.tracking import AudioFrames, Tracker, TrackerConfig
from av_perception.core.tracking.inference import tf_presence_terms
from av_perception.pipeline.buffer import TimeOrderedBuffer

pytestmark = pytest.mark.timeout(120)

FS = 16000
N_FFT = 512
OMEGA = 2 * np.pi * np.fft.rfftfreq(N_FFT, 1.0 / FS)
USE = (OMEGA >= 2 * np.pi * 150) & (OMEGA <= 2 * np.pi * 7500)
GEOM = MicGeometry((-0.075, 0.0, 0.0), (0.075, 0.0, 0.0))
GRID = itd_grid(GEOM.max_itd, 33)


def _cross(taus, n_frames, rng, phase_noise=0.2):
    """Weighted PHAT cross-spectra (F, 2, B) of W-disjoint sources: every bin belongs to
    one of the sources at ITDs ``taus`` (chosen at random per frame and bin), its IPD
    omega x tau plus noise, its weight uniform in [0.3, 1]."""
    owner = rng.integers(0, len(taus), (n_frames, len(OMEGA)))
    phi = OMEGA[None, :] * np.asarray(taus)[owner] + rng.normal(0, phase_noise, owner.shape)
    w = rng.uniform(0.3, 1.0, owner.shape) * USE[None, :]
    return np.stack([w * np.cos(phi), w * np.sin(phi)], axis=1)


def _near(tau):
    return int(np.argmin(np.abs(GRID - tau)))


def test_profile_kernel_matches_numpy_reference(rng):
    cross = _cross([1.5e-4, -2.1e-4], 20, rng, phase_noise=0.8)
    cross[3] = 0.0  # a frame without any weighted bin
    act = rng.uniform(0.0, 1.0, 20)
    for phase_std, outlier in ((0.3, 0.3), (1.0, 0.05), (0.1, 0.9)):
        a = itd_profile(cross, OMEGA, USE, GRID, phase_std, outlier, act, use_numba=True)
        b = itd_profile(cross, OMEGA, USE, GRID, phase_std, outlier, act, use_numba=False)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert np.all(a[3] == 0.0)
    assert np.all(a.sum(axis=1) <= act + 1e-12)


def test_profile_refuses_bad_input():
    cross = np.zeros((2, 2, len(OMEGA)))
    with pytest.raises(ValueError, match="cross must be"):
        itd_profile(cross[:, 0], OMEGA, USE, GRID, 0.3, 0.3)
    with pytest.raises(ValueError, match="omega and use_bin"):
        itd_profile(cross, OMEGA[:-1], USE, GRID, 0.3, 0.3)
    bad = cross.copy()
    bad[0, 0, 5] = np.nan
    with pytest.raises(ValueError, match="cross contains NaN"):
        itd_profile(bad, OMEGA, USE, GRID, 0.3, 0.3)
    with pytest.raises(ValueError, match="outlier_prior"):
        itd_profile(cross, OMEGA, USE, GRID, 0.3, 1.0)
    with pytest.raises(ValueError, match="at least 2 cells"):
        itd_grid(4e-4, 1)


@pytest.mark.parametrize("taus", [[1.5e-4, -2.1e-4], [1.5e-4]])
def test_profile_peaks_at_every_talker_of_the_frame(taus, rng):
    """The profile of frames whose bins come from talkers at ``taus`` has its largest
    values at those ITDs (each a local maximum holding well above the uniform share)."""
    prof = itd_profile(_cross(taus, 30, rng), OMEGA, USE, GRID, 0.3, 0.3).mean(axis=0)
    for tau in taus:
        j = _near(tau)
        assert prof[j] >= prof[max(j - 3, 0)] and prof[j] >= prof[min(j + 3, len(GRID) - 1)]
        assert prof[j] > 1.5 * np.median(prof), prof
    far = _near(-1e-5)  # between the talkers, nobody there
    assert prof[far] < 0.5 * min(prof[_near(t)] for t in taus)


@pytest.mark.parametrize("n_talkers", [2, 1])
def test_both_talkers_of_a_frame_get_speaking_evidence(n_talkers, rng):
    """Tracks at the talkers' ITDs get evidence for speaking from the frames' profiles;
    a track at an ITD no bin points at gets evidence against -- with two talkers at once
    both are speaking, with one only its track."""
    taus = [1.5e-4, -2.1e-4][:n_talkers]
    prof = itd_profile(_cross(taus, 30, rng), OMEGA, USE, GRID, 0.3, 0.3)
    G = np.array([1.5e-4, -2.1e-4, -1e-5])
    rate = np.full((30, 3), 0.5)
    llr = tf_presence_terms(prof, GRID, G, np.zeros(3), rate, TrackerConfig())
    total = llr.sum(axis=0)
    # measured: two talkers 1.4, 2.2, -1.2; one talker 7.8, -5.0, -0.45
    if n_talkers == 2:
        assert total[0] > 0.5 and total[1] > 0.5, total
    else:
        assert total[0] > 3.0 and total[1] < -2.0, total
    assert total[2] < 0.0, total
    off = TrackerConfig(tf_presence_gain=0.0)
    assert np.all(tf_presence_terms(prof, GRID, G, np.zeros(3), rate, off) == 0.0)


def test_front_end_profile_shows_two_simultaneous_sources(rng):
    """The front-end's profile of two noise sources at once, each in its own frequency
    bands, at +3 and -4 samples of delay: both ITDs stand out; its single ITD names one."""
    n = FS * 2
    x = rng.standard_normal((2, n + 64))

    def band(sig, bands):
        spec = np.fft.rfft(sig)
        f = np.fft.rfftfreq(len(sig), 1.0 / FS)
        keep = np.zeros(len(f), dtype=bool)
        for lo, hi in bands:
            keep |= (f >= lo) & (f < hi)
        return np.fft.irfft(spec * keep, len(sig))

    a = band(x[0], [(300, 700), (1100, 1500), (1900, 2300), (2700, 3100), (3500, 3900)])
    b = band(x[1], [(700, 1100), (1500, 1900), (2300, 2700), (3100, 3500), (3900, 4300)])
    # positive ITD: the left microphone first
    left = a[32:32 + n] + b[32 + 4:32 + 4 + n]
    right = a[32 + 3:32 + 3 + n] + b[32:32 + n]
    amp = np.repeat(rng.uniform(0.2, 1.0, n // 800 + 1), 800)[:n]  # non-stationary
    sig = np.stack([left, right], axis=1) * amp[:, None] * 0.1
    fe = BinauralFrontEnd(AudioFrontEndConfig(itd_profile=True), GEOM)
    feats = fe.process(sig, FS, 0.0)
    act = feats.activity > 0.3
    assert act.sum() > 20
    prof = (feats.itd_profile[act] / feats.activity[act, None]).mean(axis=0)
    grid = fe.profile_grid
    ta, tb = -3 / FS, 4 / FS  # a: right later -> negative ITD; b: left later -> positive
    for tau in (ta, tb):
        j = int(np.argmin(np.abs(grid - tau)))
        assert prof[j] > 1.5 * np.median(prof), (tau, prof)
    mid = int(np.argmin(np.abs(grid - 0.5 * (ta + tb))))
    assert prof[mid] < min(prof[int(np.argmin(np.abs(grid - t)))] for t in (ta, tb))


def _visual(points, rng):
    """Visual observations (xyz, cov) of the points, 5 mm noise."""
    xyz = np.array(points) + rng.normal(0, 0.005, (len(points), 3))
    return xyz, np.repeat((0.02 ** 2 * np.eye(3))[None], len(points), axis=0)


def test_tracker_takes_the_profiles_into_the_speaking_state(rng):
    """Three people; two (A, B) talk at once and the frames' single ITD always names the
    louder (A).  The profiles reach the speaking HMM: B's evidence for speaking grows with
    tf_presence_gain while C, whom no bin points at, stays silent.  Measured (and why it
    is off by default): against the single-ITD emission, which counts every frame of A
    against B, it stays weak -- B 0.013 / 0.018 / 0.156 at gain 0 / 2 / 8."""

    people = np.array([[-0.9, -0.4, 2.4], [1.1, 0.0, 2.0], [0.1, -0.3, 2.5]])
    G = GEOM.itd(people)
    grid = itd_grid(GEOM.max_itd, 33)
    result = {}
    for gain in (0.0, 8.0):
        run = np.random.default_rng(7)
        trk = Tracker(TrackerConfig(tf_presence_gain=gain), GEOM)
        for k in range(10):
            trk.update_visual(k / 15.0, *_visual(people, run))
        assert trk.num_tracks == 3
        rows = [int(np.argmin(np.linalg.norm(trk._tracks.mean[:, :3] - p, axis=1)))
                for p in people]
        t_audio = 10 / 15.0
        for k in range(11, 40):
            t = k / 15.0
            stamps = np.arange(t_audio, t, 0.016)
            t_audio = stamps[-1] + 0.016
            prof = 0.9 * itd_profile(_cross(G[:2], len(stamps), run, phase_noise=0.4),
                                     OMEGA, USE, grid, 0.3, 0.3)
            itd = G[0] + run.normal(0, 2e-5, len(stamps))
            trk.step(t, audio=AudioFrames(stamps, itd, np.full(len(stamps), 0.8), prof))
            trk.update_visual(t, *_visual(people, run))
        result[gain] = trk._tracks.speaking[rows]
    off, on = result[0.0], result[8.0]
    assert off[0] > 0.9 and on[0] > 0.9, (off, on)
    assert on[1] > 5.0 * off[1], (off, on)
    assert on[2] < 0.05 and on[2] < on[1], (off, on)


def test_buffer_keeps_each_frames_profile_in_stamp_order():
    b = TimeOrderedBuffer()
    prof = np.arange(8.0).reshape(4, 2)
    b.add_audio([1.0, 1.2, 1.1, 1.3], [0, 0, 0, 0], [1, 1, 1, 1], profile=prof)
    b.add_audio([1.05], [0], [1], profile=[[9.0, 9.0]])
    got = b.release(1.15)
    np.testing.assert_array_equal(got.audio[0], [1.0, 1.05, 1.1])
    np.testing.assert_array_equal(got.audio_profile, [[0, 1], [9, 9], [4, 5]])
    b.add_audio([1.4], [0], [1])  # a message without profiles: none released
    rest = b.release()
    assert len(rest.audio[0]) == 3 and rest.audio_profile is None


def test_audio_feature_cloud_carries_the_profile(rng):
    """features_to_cloud / cloud_to_features keep the profile (float32) for tracker_node;
    a cloud without it gives none."""
    pytest.importorskip("sensor_msgs")
    from av_perception.nodes.conversions import cloud_to_features, features_to_cloud

    fe = BinauralFrontEnd(AudioFrontEndConfig(itd_profile=True), GEOM)
    feats = fe.process(0.1 * rng.standard_normal((4000, 2)), FS, 100.0)
    got = cloud_to_features(features_to_cloud("mics", feats))
    np.testing.assert_allclose(got["itd_profile"], feats.itd_profile, rtol=1e-6, atol=1e-7)
    plain = BinauralFrontEnd(AudioFrontEndConfig(), GEOM).process(
        0.1 * rng.standard_normal((4000, 2)), FS, 100.0)
    assert plain.itd_profile is None
    assert "itd_profile" not in cloud_to_features(features_to_cloud("mics", plain))


def test_tracking_stage_hands_the_profiles_to_the_tracker(rng):
    """The tracking stage (nodes and `process`): profiles given with the audio features
    (a ``cloud_to_features`` dict, as tracker_node receives them) reach the tracker's
    speaking emission; features without profiles do not call it."""
    from av_perception.pipeline.tracking import TrackingPipeline

    people = np.array([[-0.9, -0.4, 2.4], [1.1, 0.0, 2.0]])
    calls = []
    for with_profile in (True, False):
        tp = TrackingPipeline()
        real = tp.tracker._tf_presence
        tp.tracker._tf_presence = lambda prof, *pose, real=real: (calls.append(prof.shape)
                                                                  or real(prof, *pose))
        for k in range(10):
            tp.step(k / 15.0, *_visual(people, rng))
        stamps = np.arange(10 / 15.0 + 0.001, 11 / 15.0, 0.016)
        feats = {"stamp": stamps, "itd": np.full(len(stamps), 1.5e-4),
                 "activity": np.full(len(stamps), 0.9), "reliability": np.full(len(stamps), 0.9)}
        if with_profile:
            feats["itd_profile"] = np.full((len(stamps), 33), 0.01)
        tp.add_audio_features(feats)
        tp.step(11 / 15.0, *_visual(people, rng))
        if with_profile:
            assert calls == [(len(stamps), 33)], calls
        else:
            assert len(calls) == 1, calls
