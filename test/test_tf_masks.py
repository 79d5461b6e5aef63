"""Time-frequency observations, their per-talker clustering, masks, presence and voices."""
import numpy as np
import pytest

from av_perception.core import _tf_kernels as TK
from av_perception.core.audio import BinauralFrontEnd
from av_perception.core.separation import (
    MWFState,
    finish_overlap_add,
    mwf_window,
    overlap_add,
)
from av_perception.core.tf_masks import (
    TFObservations,
    VoiceConfig,
    cluster_window,
    itd_candidates,
    tf_observations,
)
from av_perception.pipeline.voices import VoiceSeparator

pytestmark = pytest.mark.timeout(120)

FS = 16000
ITD_A, ITD_B = 2.5e-4, -2.0e-4


def _delayed(x, d):
    """x delayed by d seconds (fractional, by FFT with zero padding)."""
    n = 2 * len(x)
    f = np.fft.rfftfreq(n, 1 / FS)
    return np.fft.irfft(np.fft.rfft(x, n) * np.exp(-2j * np.pi * f * d), n)[:len(x)]


def _band_noise(n, groups, rng):
    """White noise kept in alternate 125 Hz groups (``groups`` 0: even ones, 1: odd ones)."""
    X = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / FS)
    keep = ((f // 125).astype(int) % 2 == groups) & (f > 150) & (f < 7000)
    return np.fft.irfft(X * keep, n)


def _binaural(s, itd):
    """Left and right of a far source: the left leads by itd (positive: left first)."""
    return np.stack([_delayed(s, -itd / 2 + 1e-3), _delayed(s, itd / 2 + 1e-3)], axis=1)


@pytest.fixture(scope="module")
def two_sources():
    return make_two_sources()


def make_two_sources():
    """A (even 125 Hz groups, ITD_A) from 0 to 1.4 s and B (odd groups, ITD_B) from
    0.6 to 2 s; the images at the microphones and the mixture."""
    rng = np.random.default_rng(7)
    n = 2 * FS
    t = np.arange(n) / FS
    a = _band_noise(n, 0, rng) * (t < 1.4)
    b = _band_noise(n, 1, rng) * (t >= 0.6)
    img_a, img_b = _binaural(a, ITD_A), _binaural(b, ITD_B)
    mix = img_a + img_b + 1e-4 * rng.standard_normal((n, 2))
    return img_a, img_b, mix


def _front_end(mix):
    fe = BinauralFrontEnd(keep_spectra=True)
    return fe, fe.process(mix, FS, 0.0)


def test_observation_kernel_agrees_with_reference_and_streams(rng):
    F, B = 30, 65
    spec_l = rng.standard_normal((F, B)) + 1j * rng.standard_normal((F, B))
    spec_r = 0.7 * spec_l * np.exp(1j * 0.3) + 0.3 * (rng.standard_normal((F, B))
                                                        + 1j * rng.standard_normal((F, B)))
    in_band = np.arange(B) > 2
    diffuse = np.sinc(np.linspace(0, 3, B))
    ref = tf_observations(spec_l, spec_r, in_band, diffuse, 0.7, 1.01, use_numba=False)
    fast = tf_observations(spec_l, spec_r, in_band, diffuse, 0.7, 1.01, use_numba=True)
    for r, f in zip(ref, fast):
        np.testing.assert_allclose(f, r, rtol=1e-9, atol=1e-12)
    # streaming in two pieces gives the same as one call
    state = (np.zeros((TK.N_STATE, B)), np.zeros(1, dtype=np.int64))
    parts = [tf_observations(spec_l[a:b], spec_r[a:b], in_band, diffuse, 0.7, 1.01, state)
             for a, b in ((0, 11), (11, F))]
    for k in range(3):
        np.testing.assert_allclose(np.concatenate([p[k] for p in parts]), fast[k], atol=1e-12)
    ipd, ild, w = fast
    assert np.all(w[:, ~in_band] == 0) and np.all((w >= 0) & (w <= 1))
    np.testing.assert_allclose(ipd, np.angle(spec_l * np.conj(spec_r)), atol=1e-12)
    np.testing.assert_allclose(ild, 10 * np.log10(np.abs(spec_l) ** 2 / np.abs(spec_r) ** 2),
                               atol=1e-9)


@pytest.mark.parametrize("use_ild", [False, True])
def test_posterior_kernel_agrees_with_reference(rng, use_ild):
    F, B, K = 12, 40, 3
    ipd = rng.uniform(-np.pi, np.pi, (F, B))
    ild = rng.normal(0, 5, (F, B))
    w = rng.uniform(0, 1, (F, B))
    w[0, :5] = 0.0
    omega = 2 * np.pi * np.linspace(100, 6000, B)
    itd = np.array([2e-4, -1e-4, 0.0])
    pv = rng.uniform(0.05, 2.0, (K, B))
    im, iv = rng.normal(0, 3, (K, B)), rng.uniform(1, 20, (K, B))
    pri = rng.uniform(0.05, 1.0, (K + 1, B))
    lp = np.log(pri / pri.sum(axis=0))  # a prior per frequency
    lik = [np.zeros((K + 1, F, B)) for _ in range(2)]
    TK.tf_loglik_kernel(ipd, ild, w, omega, itd, pv, im, iv, use_ild, lik[0])
    TK.tf_loglik_reference(ipd, ild, w, omega, itd, pv, im, iv, use_ild, lik[1])
    np.testing.assert_allclose(lik[0], lik[1], rtol=1e-12, atol=1e-12)
    # a talker's IPD log density: wrapped-Gaussian of variance phase_var / weight
    r = np.angle(np.exp(1j * (ipd[2, 7] - omega[7] * itd[1])))
    v = pv[1, 7] / max(w[2, 7], TK.W_MIN)
    expect = -0.5 * r * r / v - 0.5 * np.log(2 * np.pi * v)
    if use_ild:
        d = ild[2, 7] - im[1, 7]
        expect += -0.5 * d * d / iv[1, 7] - 0.5 * np.log(2 * np.pi * iv[1, 7])
    assert lik[0][1, 2, 7] == pytest.approx(expect, rel=1e-12)
    out = [np.zeros((K + 1, F, B)) for _ in range(2)]
    l1 = TK.tf_posteriors_kernel(lik[0], w, lp, out[0])
    l2 = TK.tf_posteriors_reference(lik[0], w, lp, out[1])
    np.testing.assert_allclose(out[0], out[1], atol=1e-12)
    np.testing.assert_allclose(out[0].sum(axis=0), 1.0, atol=1e-12)
    assert l1 == pytest.approx(l2, rel=1e-10)
    # Bayes: the posterior is the likelihood times the prior, normalised
    joint = np.exp(lik[0][:, 4, 9] + lp[:, 9])
    np.testing.assert_allclose(out[0][:, 4, 9], joint / joint.sum(), rtol=1e-10)


def test_itd_candidates_cover_every_wrap():
    omega = 2 * np.pi * np.array([500.0, 3000.0])
    ipd = np.array([[omega[0] * 2e-4, np.angle(np.exp(1j * omega[1] * 2e-4))]])
    tau, w = itd_candidates(ipd, np.ones((1, 2)), omega, np.array([True, True]), 6e-4, 0.0)
    assert np.sum(np.isclose(tau, 2e-4, atol=1e-9)) == 2  # the true ITD from both bins
    assert np.all(np.abs(tau) <= 6e-4)
    # the 500 Hz bin has one candidate (weight 1), the 3 kHz bin splits its weight
    assert w.sum() == pytest.approx(2.0)
    assert np.max(w) == pytest.approx(1.0)


def test_em_recovers_two_itds_masks_and_presence(two_sources):
    img_a, img_b, mix = two_sources
    fe, feats = _front_end(mix)
    ipd, ild, w = TFObservations(fe)(feats.spec[:, 0], feats.spec[:, 1])
    # a window where both talk (0.7-1.1 s); the tracks' predictions are 30 us off
    sel = (feats.stamp > 0.7) & (feats.stamp < 1.1)
    pred = np.array([ITD_A + 3e-5, ITD_B - 3e-5])
    cl = cluster_window(ipd[sel], ild[sel], w[sel], fe.omega, pred, tau_max=fe.tau_max)
    assert cl.em_used
    # measured: 0.4 us and 0.1 us off
    np.testing.assert_allclose(cl.itd, [ITD_A, ITD_B], atol=3e-6)
    assert np.all(cl.itd_std < 4e-5)  # measured 24 and 25 us
    # masks against the truth: bins in A's groups belong to A, in B's to B
    f = fe.freqs
    group = (f // 125).astype(int) % 2
    inner = (f % 125 > 30) & (f % 125 < 95) & (f > 200) & (f < 6500)  # away from edges
    mask_a = cl.masks[0][:, inner & (group == 0)]
    mask_b = cl.masks[1][:, inner & (group == 1)]
    # measured: 0.91 and 0.91, 0.08
    assert np.mean(mask_a) > 0.85 and np.mean(mask_b) > 0.85
    assert np.mean(cl.masks[0][:, inner & (group == 1)]) < 0.15
    # presence: both talk here (each about half of the frame's weighted bins)...
    assert np.all((cl.presence > 0.3) & (cl.presence < 0.7))
    # ... scaled by the frames' activity when given
    c = cluster_window(ipd[sel], ild[sel], w[sel], fe.omega, pred, tau_max=fe.tau_max,
                       activity=feats.activity[sel])
    np.testing.assert_allclose(c.presence, cl.presence * feats.activity[sel], atol=1e-9)
    # alone before 0.6 s (A) and after 1.4 s (B)
    for lo, hi, who in ((0.1, 0.5, 0), (1.5, 1.9, 1)):
        s = (feats.stamp > lo) & (feats.stamp < hi)
        c = cluster_window(ipd[s], ild[s], w[s], fe.omega, pred, tau_max=fe.tau_max)
        assert np.median(c.presence[who]) > 0.9
        assert np.median(c.presence[1 - who]) < 0.1
        assert c.prior[who] > 0.9
        # voices.min_share: the silent talker is taken out of the window
        from dataclasses import replace
        g = cluster_window(ipd[s], ild[s], w[s], fe.omega, pred, tau_max=fe.tau_max,
                           config=replace(VoiceConfig(), min_share=0.2))
        assert np.all(g.masks[1 - who] < 1e-6) and np.all(g.presence[1 - who] < 1e-6)
        assert np.mean(g.masks[who]) > np.mean(c.masks[who])


def _si_sdr(est, ref):
    a = np.dot(est, ref) / np.dot(ref, ref)
    e = est - a * ref
    return 10 * np.log10(np.dot(a * ref, a * ref) / np.dot(e, e))


@pytest.mark.parametrize("method, hop, window", [("mask", 0.0, 0.4), ("mvdr", 0.0, 0.4),
                                                 ("mwf", 0.0, 0.4), ("mwf", 0.064, 0.4),
                                                 ("mwf", 0.048, 0.2)])
def test_separation_improves_si_sdr_of_both_voices(two_sources, method, hop, window):
    img_a, img_b, mix = two_sources
    fe, feats = _front_end(mix)
    out = type("Out", (), {"stamp": 0.0, "ids": np.array([4, 9]),
                           "position": np.zeros((2, 3))})()
    geometry = type("G", (), {"itd": staticmethod(lambda p: np.array([ITD_A, ITD_B]))})()
    from dataclasses import replace
    sep = VoiceSeparator(fe, geometry, replace(VoiceConfig(), method=method, hop=hop,
                                               window=window))
    res = sep.run(feats, [out], 0.0, len(mix))
    assert sorted(res.voices) == [4, 9]
    both = slice(int(0.7 * FS), int(1.3 * FS))  # where both talk
    gains = []
    for tid, img in ((4, img_a), (9, img_b)):
        v = res.voices[tid]
        assert v.shape == (len(mix),) and np.all(np.isfinite(v))
        gains.append(_si_sdr(v[both], img[both, 0]) - _si_sdr(mix[both, 0], img[both, 0]))
    # measured: mask +7.6 / +8.1 dB, mvdr +9.1 / +10.3 dB, mwf +6.7 / +7.3 dB, mwf with a
    # 64 ms hop (the 0.4 s window sliding, 96 ms latency) +6.5 / +7.3 dB, with the live
    # voices' 48 ms hop and 0.2 s window (80 ms latency) +6.7 / +7.5 dB
    assert min(gains) > 6.0
    assert res.windows > 0 and res.em_windows == res.windows
    # presence (x the front-end's activity): A alone before 0.6 s
    alone = (res.stamps > 0.1) & (res.stamps < 0.5)
    assert np.all(res.presence[4][alone] > 10 * res.presence[9][alone])


def test_overlap_add_reconstructs_the_signal(rng):
    x = rng.standard_normal((FS, 2))
    fe, feats = _front_end(x)
    starts = np.round(feats.stamp * FS - (fe.config.frame_length - 1) / 2).astype(int)
    y = finish_overlap_add(*overlap_add(feats.spec[:, 0], starts, len(x), fe.window))
    inner = slice(fe.config.frame_length, len(x) - fe.config.frame_length)
    np.testing.assert_allclose(y[inner], x[inner, 0], atol=1e-9)
    # voices of a silent window are zero, not amplified edges
    assert np.all(np.isfinite(y))


def test_bad_input_is_refused_clearly():
    fe = BinauralFrontEnd()
    B = len(fe.freqs)
    good = np.zeros((5, B))
    with pytest.raises(ValueError, match="ipd contains NaN"):
        cluster_window(np.full((5, B), np.nan), good, good, fe.omega, [1e-4], tau_max=5e-4)
    with pytest.raises(ValueError, match="at least one ITD"):
        cluster_window(good, good, good, fe.omega, [], tau_max=5e-4)
    with pytest.raises(ValueError, match="one shape"):
        cluster_window(good, good[:4], good, fe.omega, [1e-4], tau_max=5e-4)
    with pytest.raises(ValueError, match="NaN or infinite"):
        tf_observations(np.full((2, B), np.nan + 0j), np.zeros((2, B), complex),
                        fe.in_band, fe.diffuse_coherence, 0.7, 1.01)
    with pytest.raises(ValueError, match="keep_spectra"):
        feats = fe.process(np.zeros((4096, 2)), FS, 0.0)
        VoiceSeparator(fe, fe.geometry).run(feats, [], 0.0, 4096)
    # no track at all: no voice
    fe2 = BinauralFrontEnd(keep_spectra=True)
    feats = fe2.process(np.random.default_rng(1).standard_normal((8000, 2)), FS, 0.0)
    res = VoiceSeparator(fe2, fe2.geometry).run(feats, [], 0.0, 8000)
    assert res.voices == {} and res.presence == {} and res.windows == 0


@pytest.mark.parametrize("hop, hop_frames", [(0.0, 25), (0.064, 4)])
def test_streaming_voices_equal_the_batch_and_bound_the_latency(two_sources, rng, hop,
                                                                hop_frames):
    img_a, img_b, mix = two_sources
    fe, feats = _front_end(mix)
    from dataclasses import replace
    cfg = replace(VoiceConfig(), hop=hop)
    geometry = type("G", (), {"itd": staticmethod(
        lambda p: np.where(np.asarray(p)[:, 0] > 0, ITD_A, ITD_B))})()

    def out(t, ids):
        pos = np.array([[1.0 if i == 4 else -1.0, 0, 2] for i in ids]).reshape(-1, 3)
        return type("Out", (), {"stamp": t, "ids": np.array(ids), "position": pos})()

    # track 9 appears at 0.5 s; track 4 ends at 1.5 s
    outputs = [out(0.0, [4]), out(0.5, [4, 9]), out(1.5, [9])]
    batch = VoiceSeparator(fe, geometry, cfg).run(feats, outputs, 0.0, len(mix))
    st = VoiceSeparator(fe, geometry, cfg).stream(0.0)
    got = {}
    a, seen = 0, -np.inf
    while a < len(feats):
        b = min(len(feats), a + int(rng.integers(1, 40)))
        new = [o for o in outputs if seen < o.stamp <= feats.stamp[b - 1]]  # as they come
        seen = feats.stamp[b - 1]
        for tid, chunks in st.push(feats.slice(a, b), new).items():
            got.setdefault(tid, []).extend(chunks)
        # every sample older than the latency bound has been returned
        done = max((c[-1][0] + len(c[-1][1]) for c in got.values()), default=0)
        last_end = feats.stamp[b - 1] + (fe.config.frame_length / 2) / FS
        assert done / FS >= last_end - st.latency - 1e-9
        a = b
    for tid, chunks in st.flush().items():
        got.setdefault(tid, []).extend(chunks)
    assert sorted(got) == sorted(batch.voices) == [4, 9]
    # an ended track's voice stops being returned once all of it is out (its last chunk
    # may run on with zeros to the end of what one push made final)
    assert got[4][-1][0] < int(1.7 * FS)
    for tid, chunks in got.items():
        v = np.zeros(len(mix))
        for s0, x in chunks:
            v[s0:s0 + len(x)] = x[:len(mix) - s0]
        np.testing.assert_allclose(v, batch.voices[tid], atol=1e-12)
    # the voice of a track is silent outside its life
    assert np.all(batch.voices[9][:int(0.3 * FS)] == 0)
    assert np.all(batch.voices[4][int(1.6 * FS):] == 0)
    assert st.latency == pytest.approx((hop_frames * 256 + 512) / FS)
    assert st.track_ids == {9}  # track 4's voice is all out


def _spectral_sources(rng):
    """A (200-1800 Hz, ITD_A) and B (2200-6500 Hz, ITD_B) talking together for 1.6 s, and
    noise of the same power independent at each microphone (a bin's IPD is unreliable):
    the images at the microphones and the mixture."""
    n = int(1.6 * FS)
    f = np.fft.rfftfreq(n, 1 / FS)

    def band(lo, hi):
        return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * ((f > lo) & (f < hi)), n)

    img_a, img_b = _binaural(band(200, 1800), ITD_A), _binaural(band(2200, 6500), ITD_B)
    p = np.mean(img_a ** 2) + np.mean(img_b ** 2)
    mix = img_a + img_b + np.sqrt(p) * rng.standard_normal((n, 2))
    return img_a, img_b, mix


def test_frequency_priors_give_each_talker_its_own_spectrum(rng):
    img_a, img_b, mix = _spectral_sources(rng)
    fe, feats = _front_end(mix)
    ipd, ild, w = TFObservations(fe)(feats.spec[:, 0], feats.spec[:, 1])
    sel = (feats.stamp > 0.3) & (feats.stamp < 0.7)
    from dataclasses import replace
    masks = {}
    for pool, ratio in ((0, 2.0), (17, 2.0), (17, 0.0)):
        cl = cluster_window(ipd[sel], ild[sel], w[sel], fe.omega, [ITD_A, ITD_B],
                            tau_max=fe.tau_max,
                            config=replace(VoiceConfig(), frequency_prior_pool=pool,
                                           frequency_prior_ratio=ratio))
        masks[pool, ratio] = cl.masks
    f = fe.freqs
    a_band, b_band = (f > 300) & (f < 1700), (f > 2300) & (f < 6400)
    # the right talker's share of its own band, without and with priors per frequency
    right = {key: 0.5 * (np.mean(m[0][:, a_band]) + np.mean(m[1][:, b_band]))
             for key, m in masks.items()}
    # measured: 0.58 without, 0.78 with (bounded: the default), 0.90 unbounded
    assert right[17, 2.0] > right[0, 2.0] + 0.1
    assert right[17, 0.0] > right[17, 2.0]


def test_bounded_frequency_priors_leave_a_silent_track_no_band(rng):
    """A talks alone (200-6500 Hz) with noise at SNR 0 dB; B is a silent track.  Unbounded
    per-frequency priors let B take a band of A's voice; within a factor 2 of its window
    prior (the default) it takes none."""
    n = int(1.6 * FS)
    f = np.fft.rfftfreq(n, 1 / FS)
    s = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * ((f > 200) & (f < 6500)), n)
    img = _binaural(s, ITD_A)
    mix = img + np.sqrt(np.mean(img ** 2)) * rng.standard_normal((n, 2))
    fe, feats = _front_end(mix)
    ipd, ild, w = TFObservations(fe)(feats.spec[:, 0], feats.spec[:, 1])
    sel = (feats.stamp > 0.3) & (feats.stamp < 0.7)
    from dataclasses import replace
    worst = {}
    for ratio in (2.0, 0.0):
        cl = cluster_window(ipd[sel], ild[sel], w[sel], fe.omega, [ITD_A, ITD_B],
                            tau_max=fe.tau_max,
                            config=replace(VoiceConfig(), frequency_prior_pool=17,
                                           frequency_prior_ratio=ratio))
        fb = fe.freqs
        worst[ratio] = max(np.mean(cl.masks[1][:, (fb >= lo) & (fb < lo + 500)])
                           for lo in range(250, 6000, 500))
    # measured: B's worst 500 Hz band 0.023 bounded, 0.25 unbounded
    assert worst[2.0] < 0.05 < 0.15 < worst[0.0]


def test_speaking_gate_leaves_a_silent_track_out(two_sources):
    img_a, img_b, mix = two_sources
    fe, feats = _front_end(mix)
    geometry = type("G", (), {"itd": staticmethod(lambda p: np.array([ITD_A, ITD_B]))})()
    t = np.arange(0.0, 2.05, 0.1)
    # B (track 9) is said to be silent until 0.9 s (it starts at 0.6 s: a late status)
    outs = [type("Out", (), {"stamp": s, "ids": np.array([4, 9]),
                             "position": np.zeros((2, 3)),
                             "speaking": np.array([1.0, float(s >= 0.9)])})() for s in t]
    from dataclasses import replace
    # masks (no memory across windows: the late windows compare one to one)
    gated = replace(VoiceConfig(), speaking_gate=0.3, method="mask")
    res = VoiceSeparator(fe, geometry, gated).run(feats, outs, 0.0, len(mix))
    free = VoiceSeparator(fe, geometry, replace(gated, speaking_gate=0.0)).run(
        feats, outs, 0.0, len(mix))
    # the windows ending before 0.9 s (0-0.4 s, 0.4-0.8 s): 9 is left out -- its voice is
    # silent and its presence 0 there, and 4's voice is the mixture
    early = slice(int(0.05 * FS), int(0.75 * FS))
    assert np.all(res.voices[9][:int(0.7 * FS)] == 0)
    frames = res.stamps < 0.75
    assert np.all(res.presence[9][frames] == 0)
    a_alone = slice(int(0.05 * FS), int(0.55 * FS))
    np.testing.assert_allclose(res.voices[4][a_alone], mix[a_alone, 0], atol=1e-9)
    # the modelled silent track takes some of A's bins when not gated
    assert np.sum(free.voices[9][early] ** 2) > 0
    # once 9 is said to speak, both are separated as without the gate
    late = slice(int(1.25 * FS), int(2.0 * FS))
    np.testing.assert_allclose(res.voices[9][late], free.voices[9][late], atol=1e-9)


def test_speaking_gate_span_keeps_a_talker_through_a_short_status_dip(two_sources):
    """The live voices' short window (0.2 s every 0.048 s): a talker whose speaking status
    dips for 0.3 s (a pause) is gated out of the windows inside the dip without a span,
    and kept with voices.speaking_gate_span 0.4 (the highest status over 0.4 s)."""
    img_a, img_b, mix = two_sources
    fe, feats = _front_end(mix)
    geometry = type("G", (), {"itd": staticmethod(lambda p: np.array([ITD_A]))})()
    t = np.arange(0.0, 2.05, 0.02)
    # A (track 4) talks from 0 to 1.4 s; its status says silent in [0.5, 0.8) s
    outs = [type("Out", (), {"stamp": s, "ids": np.array([4]), "position": np.zeros((1, 3)),
                             "speaking": np.array([float(not 0.5 <= s < 0.8)])})()
            for s in t]
    from dataclasses import replace
    live = replace(VoiceConfig(), hop=0.048, window=0.2, speaking_gate=0.3)
    short = VoiceSeparator(fe, geometry, live).run(feats, outs, 0.0, len(mix))
    spanned = VoiceSeparator(fe, geometry, replace(live, speaking_gate_span=0.4)).run(
        feats, outs, 0.0, len(mix))
    dip = slice(int(0.69 * FS), int(0.76 * FS))  # frames of windows inside the dip only
    assert np.all(short.voices[4][dip] == 0)
    assert np.sqrt(np.mean(spanned.voices[4][dip] ** 2)) > 0.3 * np.sqrt(
        np.mean(img_a[dip, 0] ** 2))
    # outside the dip's reach the span changes nothing
    before = slice(int(0.1 * FS), int(0.45 * FS))
    np.testing.assert_allclose(spanned.voices[4][before], short.voices[4][before],
                               atol=1e-9)


def test_mwf_window_is_the_wiener_filter_of_its_covariances(rng):
    F, B = 40, 9
    # a target with a fixed relative transfer function per bin, and independent noise
    h = np.exp(1j * rng.uniform(-np.pi, np.pi, B)) * rng.uniform(0.5, 1.5, B)
    s_ = rng.standard_normal((F, B)) + 1j * rng.standard_normal((F, B))
    n_ = 0.5 * (rng.standard_normal((F, 2, B)) + 1j * rng.standard_normal((F, 2, B)))
    spec = np.stack([s_, h * s_], axis=1) + n_
    # mask weight 0: the mixture's left microphone, exactly
    y0 = mwf_window(spec, np.zeros((F, B)), MWFState(B), 0.9, 0.0)
    np.testing.assert_allclose(y0, spec[:, 0], atol=1e-9)
    # mask 1 on the mixture's frames, 0 on frames of noise alone: the covariances add
    both = np.concatenate([spec, n_], axis=0)
    mask = np.concatenate([np.ones((F, B)), np.zeros((F, B))])
    st = MWFState(B)
    mwf_window(both, mask, st, 1.0, 1.0)
    # Phi_s = sum over the target frames of x x^H, Phi_x over every frame
    np.testing.assert_allclose(st.target, np.einsum("fib,fjb->bij", spec, np.conj(spec)),
                               rtol=1e-12)
    np.testing.assert_allclose(st.mixture, st.target + np.einsum(
        "fib,fjb->bij", n_, np.conj(n_)), rtol=1e-12)
    # with the true covariances the filter is the two-tap Wiener filter: the target (at the
    # left mic) comes out with less noise than the left mic has
    clean = np.stack([s_, h * s_], axis=1)
    def cov(x):
        return np.einsum("fib,fjb->bij", x, np.conj(x))

    st2 = MWFState(B)  # after this window: Phi_s = clean's, Phi_x = clean's + noise's
    st2.target[:] = cov(clean)
    st2.mixture[:] = cov(clean) + cov(n_) - cov(spec)
    y = mwf_window(spec, np.zeros((F, B)), st2, 1.0, 1.0)  # mask 0 adds nothing to Phi_s
    np.testing.assert_allclose(st2.mixture, cov(clean) + cov(n_), atol=1e-9)
    err = np.sum(np.abs(y - s_) ** 2)
    assert err < 0.6 * np.sum(np.abs(spec[:, 0] - s_) ** 2)  # measured 0.42
    with pytest.raises(ValueError, match="must be"):
        mwf_window(spec, np.ones((F, B + 1)), MWFState(B), 1.0, 1.0)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        mwf_window(spec, np.ones((F, B)), MWFState(B), 1.5, 1.0)


def test_a_hop_longer_than_the_window_is_refused():
    from av_perception.core.config import ConfigError
    with pytest.raises(ConfigError, match="voices.hop"):
        VoiceConfig(window=0.2, hop=0.3)
