"""Harmonicity of the talkers: F0 salience, harmonic combs and their effect on the voices."""
from dataclasses import replace

import numpy as np
import pytest

from av_perception.core import harmonic as H
from av_perception.core.audio import BinauralFrontEnd
from av_perception.core.tf_masks import VoiceConfig
from av_perception.pipeline.voices import VoiceSeparator

pytestmark = pytest.mark.timeout(180)

FS = 16000
FREQS = np.fft.rfftfreq(512, 1 / FS)


def _delayed(x, d):
    n = 2 * len(x)
    f = np.fft.rfftfreq(n, 1 / FS)
    return np.fft.irfft(np.fft.rfft(x, n) * np.exp(-2j * np.pi * f * d), n)[:len(x)]


def _binaural(s, itd):
    """Left and right of a far source: the left leads by itd."""
    return np.stack([_delayed(s, -itd / 2 + 1e-3), _delayed(s, itd / 2 + 1e-3)], axis=1)


def harmonic_source(f0, n, rng, vibrato=0.02, rate=3.0):
    """Harmonics (amplitude h^-1/2) up to 4 kHz of an F0 with a slow vibrato; its F0 track."""
    t = np.arange(n) / FS
    f = f0 * (1 + vibrato * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6)))
    ph = 2 * np.pi * np.cumsum(f) / FS
    x = sum(np.sin(h * ph + rng.uniform(0, 6)) / h ** 0.5 for h in range(1, int(4000 / f0)))
    return x, f


def _si_sdr(est, ref):
    a = np.dot(est, ref) / np.dot(ref, ref)
    e = est - a * ref
    return 10 * np.log10(np.dot(a * ref, a * ref) / np.dot(e, e))


def test_salience_kernel_agrees_with_reference(rng):
    mag = np.abs(rng.standard_normal((2, 7, len(FREQS))))
    grid = H.f0_grid(70, 400)
    fast = H.pitch_salience(mag, FREQS, grid, 3000.0, use_numba=True)
    ref = H.pitch_salience(mag, FREQS, grid, 3000.0, use_numba=False)
    np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-12)


def test_comb_kernel_agrees_with_reference(rng):
    f0 = rng.uniform(80, 300, (3, 6))
    conf = np.clip(rng.uniform(-0.5, 1.2, (3, 6)), 0, 1)
    fast = H.harmonic_loglik(f0, conf, FREQS, 0.8, 0.1, 80.0, 3000.0, use_numba=True)
    ref = H.harmonic_loglik(f0, conf, FREQS, 0.8, 0.1, 80.0, 3000.0, use_numba=False)
    np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-12)
    assert np.all(fast[conf == 0] == 0) and np.all(fast[:, :, FREQS > 3000.0] == 0)
    # positive at the harmonics, negative half-way between them
    k, t = np.unravel_index(np.argmax(conf), conf.shape)
    on = int(round(3 * f0[k, t] / FREQS[1]))
    off = int(round(3.5 * f0[k, t] / FREQS[1]))
    assert fast[k, t, on] > 0 > fast[k, t, off]


def test_pitch_of_a_harmonic_source_is_found(rng):
    """The F0 of a harmonic source (not its octave, sub-octave or twelfth) frame by frame."""
    for f0 in (112.0, 205.0):
        x, track = harmonic_source(f0, FS, rng)
        fe = BinauralFrontEnd(keep_spectra=True)
        feats = fe.process(np.stack([x, x], axis=1), FS, 0.0)
        est, contrast = H.pitch_tracks(np.abs(feats.spec[:, 0])[None], fe.freqs,
                                       H.f0_grid(70, 400), 3000.0)
        true = track[np.clip(np.round(feats.stamp * FS).astype(int), 0, FS - 1)]
        inner = slice(3, -3)
        err = np.abs(np.log2(est[0][inner] / true[inner]))
        assert np.mean(err < 0.02) > 0.9, (f0, np.median(est[0]))
        assert np.median(contrast[0][inner]) > 0.5


def test_shared_pitch_stays_with_the_talker_that_owns_it():
    """Two talkers whose spectra peak at one F0: it stays with the one that has both the
    higher salience and the more energy; on disagreement neither keeps a comb."""
    grid = H.f0_grid(70, 400)
    g = int(np.argmin(np.abs(grid - 150.0)))
    sal = np.zeros((2, 2, len(grid)))
    sal[0, :, g], sal[1, :, g] = 2.0, 1.0
    mix = np.full((2, len(grid)), 1.0)
    mag = np.ones((2, 2, len(FREQS)))
    mag[1, 1] = 3.0  # frame 1: the talker of lower salience has more energy
    f0, contrast = H.talker_pitches(mix, sal, grid, 3000.0, mag, FREQS[1])
    assert np.allclose(f0, grid[g])
    assert contrast[0, 0] > 0 and contrast[1, 0] == -1.0  # agreement: talker 0 keeps it
    assert contrast[0, 1] == -1.0 and contrast[1, 1] == -1.0  # disagreement: nobody


@pytest.fixture(scope="module")
def harmonic_pair():
    """Two harmonic talkers (F0 118 and 207 Hz) at ITDs +-0.1 ms in white noise."""
    rng = np.random.default_rng(3)
    n = 2 * FS
    a, _ = harmonic_source(118.0, n, rng)
    b, _ = harmonic_source(207.0, n, rng)
    img_a, img_b = _binaural(a, 1e-4), _binaural(b, -1e-4)
    return img_a, img_b, img_a + img_b + 0.3 * rng.standard_normal((n, 2))


def _voices(mix, itds, config):
    fe = BinauralFrontEnd(keep_spectra=True)
    feats = fe.process(mix, FS, 0.0)
    ids = np.arange(1, len(itds) + 1)
    out = type("Out", (), {"stamp": 0.0, "ids": ids, "position": np.zeros((len(ids), 3))})()
    geometry = type("G", (), {"itd": staticmethod(lambda p: np.asarray(itds))})()
    return VoiceSeparator(fe, geometry, config).run(feats, [out], 0.0, len(mix))


def test_harmonic_combs_separate_two_talkers_the_spatial_mask_does_not(harmonic_pair):
    img_a, img_b, mix = harmonic_pair
    sl = slice(int(0.3 * FS), int(1.8 * FS))
    gains = {}
    for w in (0.0, 2.0):
        res = _voices(mix, [1e-4, -1e-4], replace(VoiceConfig(), harmonic_weight=w))
        gains[w] = [_si_sdr(res.voices[k][sl], img[sl, 0]) - _si_sdr(mix[sl, 0], img[sl, 0])
                    for k, img in ((1, img_a), (2, img_b))]
    # measured: spatial only +1.0 / +1.6 dB, with the combs +3.8 / +4.1 dB
    assert max(gains[0.0]) < 2.5
    assert min(gains[2.0]) > 3.0


def test_a_lone_harmonic_talker_keeps_its_voice(harmonic_pair):
    img_a, _, _ = harmonic_pair
    rng = np.random.default_rng(5)
    mix = img_a + 0.05 * rng.standard_normal(img_a.shape)
    sl = slice(int(0.3 * FS), int(1.8 * FS))
    res = _voices(mix, [1e-4, -1e-4], VoiceConfig())  # the second track is silent
    gain = _si_sdr(res.voices[1][sl], img_a[sl, 0]) - _si_sdr(mix[sl, 0], img_a[sl, 0])
    assert gain > -1.0
