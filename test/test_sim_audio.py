"""Simulator audio: geometry of the rendered binaural signals, levels, noise field, voices."""
import numpy as np
import pytest
import scipy.signal

from av_perception.core.audio import extract_features
from av_perception.core.geometry import MicGeometry
from av_perception.sim import NoiseSpec, PersonSpec, RoomSpec, Scene, Utterance, make_scene
from av_perception.sim.audio import RirModel, diffuse_noise, render_audio, room_parameters
from av_perception.sim.trajectory import walk
from av_perception.sim.voice import VoiceSpec, synthesize_utterance


def _weighted_median(x, w):
    o = np.argsort(x)
    c = np.cumsum(w[o])
    return x[o][np.searchsorted(c, 0.5 * c[-1])]


def test_itd_of_anechoic_single_speaker_matches_geometry():
    scene = make_scene("single_static_anechoic", seed=3, duration=5.0)
    audio = render_audio(scene)
    f = extract_features(audio.samples, audio.rate, mics=scene.robot.mics)
    geom = MicGeometry.from_config(scene.robot.mics)
    truth = geom.itd(scene.mouth_positions([0.0])[1])[0]
    speaking = scene.speaking(f.stamp)[1]
    use = speaking & (f.activity > 0.5) & np.isfinite(f.itd)
    assert use.sum() > 100
    est = _weighted_median(f.itd[use], f.activity[use] * f.reliability[use])
    assert abs(truth) > 80e-6  # the talker is well off-axis
    assert est == pytest.approx(truth, abs=1e-6)  # measured: 0.09 us
    # and silence is silent: little activity in the pauses (measured: 0.018)
    assert np.mean(f.activity[~scene.speaking(f.stamp - 0.05)[1] &
                              ~scene.speaking(f.stamp + 0.05)[1]]) < 0.04


def test_direct_path_arrives_at_distance_over_c():
    scene = make_scene("two_static", seed=0)
    model = RirModel(scene)
    src = np.array([0.7, -0.2, 2.3])
    h = model.rir(src)
    mics = np.array([scene.robot.mics.left, scene.robot.mics.right])
    fs, c = model.fs, scene.robot.mics.speed_of_sound
    for m in range(2):
        delay = np.linalg.norm(src - mics[m]) / c * fs
        k = int(round(delay)) + model.offset
        # fit the fractional peak of the (sinc-interpolated) direct path
        seg = h[m, k - 8:k + 9]
        up = scipy.signal.resample(seg, 17 * 64)
        peak = k - 8 + np.argmax(up) / 64
        assert peak - model.offset == pytest.approx(delay, abs=0.02)  # measured 0.01
    # reverberant: energy well after the direct path (measured: 40 %)
    assert np.sum(h[0, k + 200:] ** 2) > 0.35 * np.sum(h[0] ** 2)


def test_rt60_and_anechoic_parameters():
    assert room_parameters(RoomSpec(rt60=0.0)) == (1.0, 0)
    # Sabine by hand for the 6 x 5 x 3 m room: V = 90 m^3, S = 126 m^2,
    # a = 24 ln(10) V / (c S RT60) = 0.2877; image order: reflections up to c RT60 =
    # 137.2 m away, over the smallest face's inscribed radius 15 / sqrt(34) = 2.572 m:
    # ceil(137.2 / 2.572 - 1) = 53
    a, order = room_parameters(RoomSpec(rt60=0.4))
    assert a == pytest.approx(24 * np.log(10) * 90 / (343.0 * 126 * 0.4), rel=1e-12)
    assert a == pytest.approx(0.2877, abs=1e-4) and order == 53
    assert room_parameters(RoomSpec(rt60=0.4, max_order=5))[1] == 5
    with pytest.raises(ValueError, match="too short"):
        room_parameters(RoomSpec(size=(20.0, 20.0, 10.0), rt60=0.05))


def test_moving_talker_itd_follows_the_trajectory():
    person = PersonSpec(1, walk([(-1.0, -0.3, 2.0), (1.0, -0.3, 2.0)], speed=0.5), "astronaut",
                        VoiceSpec(f0=150.0))
    scene = Scene(duration=4.0, room=RoomSpec(rt60=0.0), people=[person],
                  utterances=[Utterance(1, 0.05, 3.95)], noise=NoiseSpec(snr_db=40.0))
    audio = render_audio(scene)
    f = extract_features(audio.samples, audio.rate, mics=scene.robot.mics)
    geom = MicGeometry.from_config(scene.robot.mics)
    truth = geom.itd(scene.mouth_positions(f.stamp)[1])
    use = (f.activity > 0.5) & np.isfinite(f.itd) & (f.stamp > 0.1) & (f.stamp < 3.9)
    err = f.itd[use] - truth[use]
    assert np.ptp(truth[use]) > 300e-6  # it really moves across (+-185 us)
    assert np.median(np.abs(err)) < 5.5e-6  # segments of 0.25 s; measured 4.2 us


def test_snr_and_levels_are_calibrated():
    scene = make_scene("two_static", seed=1, duration=4.0, snr_db=10.0)
    scene.audio.self_noise_db = -200.0
    full = render_audio(scene)
    quiet = make_scene("two_static", seed=1, duration=4.0)
    quiet.noise.snr_db = None
    quiet.audio.self_noise_db = -200.0
    clean = render_audio(quiet)
    noise = full.samples / full.scale - clean.samples / clean.scale
    mask = np.zeros(len(noise), bool)
    for u in scene.utterances:
        mask[int(u.start * 16000):int(u.end * 16000)] = True
    p_speech = np.mean((clean.samples[mask] / clean.scale).astype(float) ** 2)
    p_noise = np.mean(noise.astype(float) ** 2)
    assert 10 * np.log10(p_speech / p_noise) == pytest.approx(10.0, abs=0.02)
    assert np.max(np.abs(full.samples)) == pytest.approx(scene.audio.peak, rel=1e-3)


def test_diffuse_noise_has_the_coherence_of_an_isotropic_field(rng):
    fs, d = 16000, 0.15
    x = diffuse_noise(fs * 20, fs, d, rng, "diffuse", "white")
    f, cxy = scipy.signal.coherence(x[:, 0], x[:, 1], fs, nperseg=512)
    f2, cpx = scipy.signal.csd(x[:, 0], x[:, 1], fs, nperseg=512)
    _, pxx = scipy.signal.welch(x[:, 0], fs, nperseg=512)
    _, pyy = scipy.signal.welch(x[:, 1], fs, nperseg=512)
    gamma = np.real(cpx) / np.sqrt(pxx * pyy)
    sel = (f > 100) & (f < 7000)
    assert np.max(np.abs(gamma[sel] - np.sinc(2 * f[sel] * d / 343.0))) < 0.08
    y = diffuse_noise(fs * 5, fs, d, rng, "incoherent", "pink")
    f, cyy = scipy.signal.coherence(y[:, 0], y[:, 1], fs, nperseg=512)
    assert np.mean(cyy[(f > 100) & (f < 1000)]) < 0.01  # measured 0.002
    assert np.mean(y ** 2, axis=0) == pytest.approx([1.0, 1.0])


def test_rendering_is_deterministic_per_seed():
    a = render_audio(make_scene("default", seed=5, duration=3.0))
    b = render_audio(make_scene("default", seed=5, duration=3.0))
    c = render_audio(make_scene("default", seed=6, duration=3.0))
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)
    assert a.samples.dtype == np.float32 and a.samples.shape == (48000, 2)


def test_voices_differ_in_pitch(rng):
    fs = 16000

    def pitch(voice):
        x = synthesize_utterance(voice, 3 * fs, fs, rng)
        f, p = scipy.signal.welch(x, fs, nperseg=8192)
        band = (f > 60) & (f < 400)
        return f[band][np.argmax(p[band])], x

    low, x = pitch(VoiceSpec(f0=110.0))
    high, _ = pitch(VoiceSpec(f0=210.0, formant_scale=1.15))
    assert low == pytest.approx(110.0, rel=0.15)
    assert high == pytest.approx(210.0, rel=0.15)
    assert np.std(x) == pytest.approx(0.05, rel=1e-3)
    # syllable-rate amplitude modulation (2-8 Hz) dominates the envelope spectrum
    env = scipy.signal.resample_poly(np.abs(scipy.signal.hilbert(x)), 1, 160)
    fe, pe = scipy.signal.welch(env - env.mean(), 100, nperseg=128)
    assert 2.0 <= fe[np.argmax(pe[1:]) + 1] <= 8.0


def test_distractors_add_a_second_direction():
    scene = make_scene("hard", seed=0, duration=3.0)
    assert {d.kind for d in scene.distractors} == {"fan", "radio"}
    audio = render_audio(scene)
    assert np.all(np.isfinite(audio.samples))
    assert audio.rt60_measured == pytest.approx(0.6, abs=0.15)
