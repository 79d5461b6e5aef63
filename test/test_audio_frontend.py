"""Binaural front-end against analytic signals with exactly known ITD, ILD, timing."""
import itertools

import numpy as np
import pytest

from av_perception.core import _binaural_kernels as K
from av_perception.core.audio import (
    AudioInputError,
    BinauralFrontEnd,
    StreamResampler,
    extract_features,
    frame_signal,
    interaural_phase_difference,
    pcm_to_float,
)
from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig
from av_perception.sim.signals import binaural_noise, binauralize, noise_bursts

FS = 16000


def assert_numba_matches_reference(cfg, x, names, tag):
    """The numba front-end and its numpy reference give the same fields ``names`` on
    ``x`` (NaN where the other is NaN, else within 1e-9 relative); returns the numba
    front-end's features."""
    a = BinauralFrontEnd(cfg, use_numba=True, keep_cross=True).process(x, FS, 0.0)
    b = BinauralFrontEnd(cfg, use_numba=False, keep_cross=True).process(x, FS, 0.0)
    for name in names:
        va, vb = getattr(a, name), getattr(b, name)
        assert np.array_equal(np.isnan(va), np.isnan(vb)), (*tag, name)
        ok = ~np.isnan(va)
        assert np.allclose(va[ok], vb[ok], rtol=1e-9, atol=1e-12), (*tag, name)
    return a


@pytest.mark.parametrize("delay_samples", [0.0, 0.25, 1.5, 3.7, -2.2, -6.4])
def test_fractional_delay_itd_is_exact(delay_samples):
    """Sub-sample precision of the continuous GCC-PHAT + Newton (stated in docs/algorithms.md)."""
    x = binaural_noise(delay_samples / FS, FS, 2.0, seed=3)
    f = extract_features(x, FS)
    # the first frame only initialises the noise floor (every bin masked -> NaN)
    assert np.isnan(f.itd[0]) and np.all(np.isfinite(f.itd[1:]))
    err_samples = np.abs(f.itd[1:] * FS - delay_samples)
    # measured: at most 0.0066 samples (0.4 us), median at most 0.0013, reliability >= 0.998
    assert err_samples.max() < 0.01  # < 0.63 us
    assert np.median(err_samples) < 0.003
    assert f.reliability[1:].min() > 0.99


def test_itd_sign_left_first_is_positive():
    x = binaural_noise(2e-4, FS, 1.0)  # right channel delayed: sound reaches the left first
    f = extract_features(x, FS)
    assert np.all(f.itd[1:] > 0) and np.all(f.azimuth[1:] > 0)


def test_itd_search_is_limited_to_physical_lags():
    mics = MicArrayConfig()
    tau_max = mics.max_itd * 1.1
    x = binaural_noise(30 / FS, FS, 1.0)  # 1.9 ms: impossible for 15 cm
    f = extract_features(x, FS, mics=mics)
    assert np.all(np.abs(f.itd[1:]) <= tau_max + 1e-12)


def test_numba_kernel_matches_numpy_reference(rng):
    modes = ("none", "coherence", "onset", "coherence+onset", "cdr", "cdr+onset")
    settings = ((0.0, 0.5, 0.0), (0.4, 0.5, 0.0), (0.4, 1.5, 0.0), (0.4, 0.5, 0.1),
                (0.4, 1.5, 0.1))  # precedence memory, gate, hold
    for mode, (memory, gate, hold) in itertools.product(modes, settings):
        cfg = AudioFrontEndConfig(direct_path_weighting=mode, precedence_time=memory,
                                  precedence_gate=gate, precedence_hold_time=hold)
        x = binauralize(noise_bursts(FS, 1.5, seed=2), 1.3e-4, FS)
        x += 0.01 * rng.standard_normal(x.shape)
        assert_numba_matches_reference(
            cfg, x, ("itd", "reliability", "ild", "ild_bands", "activity", "direct_path",
                     "snr_db", "n_bins", "cross"), (mode, memory))


def test_direct_to_total_ratio_of_diffuse_and_coherent_fields(rng):
    """CDR estimator: a diffuse field (coherence = the diffuse model, real) has no direct
    part, a fully coherent one (any phase) is all direct; numba equals numpy."""
    gamma_n = np.array([0.95, 0.6, 0.1, -0.2])
    for g in gamma_n:
        assert K.direct_to_total(1.0, 1.0, g, 0.0, g) == pytest.approx(0.0, abs=1e-9)
        assert K.direct_to_total(2.0, 0.5, np.cos(0.7), np.sin(0.7), g) == 1.0
    # half direct (coherence exp(i phi)) + half diffuse: CDR 1, ratio 1/2
    phi = 0.9
    for g in gamma_n:
        gx = 0.5 * np.exp(1j * phi) + 0.5 * g
        assert K.direct_to_total(1.0, 1.0, gx.real, gx.imag, g) == pytest.approx(0.5, abs=1e-9)
    s_ll, s_rr = rng.uniform(0.1, 2, 50), rng.uniform(0.1, 2, 50)
    c = np.sqrt(s_ll * s_rr) * rng.uniform(0, 1, 50) * np.exp(1j * rng.uniform(-3, 3, 50))
    g = rng.uniform(-0.2, 1.0, 50)
    ref = K.direct_to_total_reference(s_ll, s_rr, c.real, c.imag, g)
    got = [K.direct_to_total(*args) for args in zip(s_ll, s_rr, c.real, c.imag, g)]
    assert np.allclose(got, ref, rtol=1e-9, atol=1e-12)
    assert np.all((ref >= 0) & (ref <= 1))


def test_kernel_direct_call_on_random_spectra(rng):
    fe = BinauralFrontEnd()
    n_bins = len(fe.freqs)
    spec_l = rng.standard_normal((20, n_bins)) + 1j * rng.standard_normal((20, n_bins))
    spec_r = rng.standard_normal((20, n_bins)) + 1j * rng.standard_normal((20, n_bins))
    outs = []
    fe.params[K.P_HOLD] = 0.9  # the precedence hold on
    for kernel in (K.binaural_kernel, K.binaural_reference):
        state = np.zeros((K.N_STATE, n_bins))
        state[9, 1] = np.inf
        init = np.zeros(1, dtype=np.int64)
        out = np.zeros((20, K.OUT_BANDS + fe.n_bands))
        cross = np.zeros((20, 2, n_bins))
        kernel(spec_l, spec_r, fe.omega, fe.diffuse_coherence, fe.in_band, fe.band_of_bin,
               fe.scan_tau, fe.scan_cos, fe.scan_sin, fe.tau_max, state, init, fe.params, out,
               cross)
        outs.append((np.nan_to_num(out), cross, state))
    assert np.allclose(outs[0][0], outs[1][0], rtol=1e-9, atol=1e-12)
    assert np.allclose(outs[0][1], outs[1][1], rtol=1e-9, atol=1e-12)
    # the state too: the memory, the hold (row 8) and the second talker (row 9) agree
    assert np.allclose(outs[0][2], outs[1][2], rtol=1e-9, atol=1e-12)
    weights = rng.uniform(0, 1, 20)
    weights[3] = 0.0
    args = (fe.omega, fe.scan_tau, fe.scan_cos, fe.scan_sin, fe.tau_max, 4)
    a = K.pooled_kernel(outs[0][1], weights, *args)
    b = K.pooled_reference(outs[0][1], weights, *args)
    assert np.allclose(a, b, rtol=1e-9, atol=1e-15)


def test_pooled_itd_of_frames_is_exact_and_validated():
    x = binauralize(noise_bursts(FS, 2.0, seed=8), 2.4e-4, FS)
    fe = BinauralFrontEnd(keep_cross=True)
    f = fe.process(x, FS, 0.0)
    itd, rel = fe.pooled_itd(f.cross, f.weight)
    assert itd == pytest.approx(2.4e-4, abs=5e-8) and rel > 0.99  # measured: 7 ns, 0.9992
    assert np.isnan(fe.pooled_itd(f.cross, np.zeros(len(f)))[0])
    with pytest.raises(ValueError, match="shape"):
        fe.pooled_itd(f.cross[:, :1], f.weight)
    with pytest.raises(ValueError, match="weights"):
        fe.pooled_itd(f.cross, f.weight[:-1])


def test_frame_stamps_are_centre_times_and_streaming_equals_batch():
    cfg = AudioFrontEndConfig()
    x = binaural_noise(1e-4, FS, 2.0)
    batch = extract_features(x, FS, cfg, start_time=100.0)
    n = cfg.frame_length
    expected = 100.0 + (np.arange(len(batch)) * cfg.hop_length + (n - 1) / 2) / FS
    assert np.allclose(batch.stamp, expected, atol=1e-9)
    fe = BinauralFrontEnd(cfg)
    parts, pos = [], 0
    for size in [100, 7, 513, 256, 1000, 3000] * 20:
        if pos >= len(x):
            break
        parts.append(fe.process(x[pos:pos + size], FS, 100.0 + pos / FS))
        pos += size
    stream = type(batch).concatenate(parts)
    assert len(stream) == len(batch)
    assert np.allclose(stream.stamp, batch.stamp)
    assert np.allclose(stream.itd, batch.itd, equal_nan=True)


#: group delay (s) of the Kaiser-windowed FIR of a resample_poly-like resampler to 16 kHz:
#: 10 * max(up, down) taps on each side at the upsampled rate up * rate, by hand:
#: 8 kHz (up 2, down 1): 20 / 16000 Hz; 22.05 kHz (320 / 441), 44.1 kHz (160 / 441) and
#: 48 kHz (1 / 3): 4410 / 7056000 Hz = 30 / 48000 Hz
GROUP_DELAY = {8000: 1.25e-3, 22050: 0.625e-3, 44100: 0.625e-3, 48000: 0.625e-3}


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_any_input_rate_is_resampled_with_itd_and_time_preserved(rate):
    from scipy.signal import resample_poly

    itd = 2.1e-4
    x16 = binaural_noise(itd, FS, 2.0, seed=5)
    x = resample_poly(x16, rate, FS, axis=0) if rate != FS else x16
    fe = BinauralFrontEnd()
    parts = [fe.process(x[i:i + 997], rate, None) for i in range(0, len(x), 997)]
    f = type(parts[0]).concatenate([p for p in parts if len(p)])
    core = slice(5, -5)
    # 8 kHz input has half the bandwidth; measured: 170 ns at 8 kHz, 47 ns above 16 kHz
    tol = 1e-7 if rate > FS else 4e-7
    assert np.median(np.abs(f.itd[core] - itd)) < tol
    # stamps: the content of each frame is centred on its stamp (filter delay compensated)
    centre = (AudioFrontEndConfig().frame_length - 1) / 2 / FS
    assert f.stamp[0] == pytest.approx(centre - GROUP_DELAY[rate], abs=1e-9)


def test_stream_resampler_matches_resample_poly(rng):
    from scipy.signal import resample_poly

    x = rng.standard_normal((44100, 2))
    r = StreamResampler(44100, 16000)
    y = np.concatenate([r.process(x[i:i + 1234]) for i in range(0, len(x), 1234)])
    ref = resample_poly(x, 160, 441, axis=0, window=("kaiser", 5.0))
    # our output j is the signal at time j/fs_out - delay (resample_poly's is at j/fs_out):
    # the filter's group delay is 4410 / (160 * 44100) s = 10 samples at 16 kHz
    assert r.delay == pytest.approx(GROUP_DELAY[44100], abs=1e-15)
    shift = 10
    a = y[shift:shift + 10000]
    b = ref[:10000]
    assert np.max(np.abs(a - b)) < 1e-9


def test_ild_of_a_known_gain_and_ipd():
    mono = np.random.default_rng(1).standard_normal(FS * 2) * 0.1
    x = np.stack([mono, mono * 10 ** (-6 / 20)], axis=1)  # right 6 dB quieter
    f = extract_features(x, FS)
    assert np.allclose(f.ild, 6.0, atol=1e-6)
    assert np.allclose(f.ild_bands, 6.0, atol=1e-6)
    fe = BinauralFrontEnd(keep_ipd=True)
    g = fe.process(binauralize(mono, 1e-4, FS), FS, 0.0)
    ipd = g.ipd  # (F, B, 2) cos/sin of omega * itd
    phase = np.arctan2(ipd[..., 1], ipd[..., 0])
    k = np.searchsorted(fe.freqs, 1000.0)
    assert np.allclose(np.median(phase[:, k]), 2 * np.pi * fe.freqs[k] * 1e-4, atol=0.005)
    assert np.allclose(interaural_phase_difference(np.zeros(3), np.ones(3))[..., 0], 1.0)


def test_activity_follows_bursts_and_noise_floor_masks_bins():
    on, off = 0.4, 0.4
    x = binauralize(noise_bursts(FS, 6.0, on=on, off=off, seed=4), -1.5e-4, FS)
    f = extract_features(x, FS)
    phase = f.stamp % (on + off)
    inside = (phase > 0.06) & (phase < on - 0.06) & (f.stamp > 1.0)
    outside = (phase > on + 0.08) & (phase < on + off - 0.06) & (f.stamp > 1.0)
    # measured: activity 0.99999 inside, 0.0005 outside; ITD within 0.2 us; no bin left
    # in the pauses (median)
    assert f.activity[inside].mean() > 0.99
    assert f.activity[outside].mean() < 0.01
    assert np.all(np.abs(f.itd[inside] + 1.5e-4) < 1e-6)
    # pauses: the noise floor masks nearly every bin
    assert np.median(f.n_bins[outside]) < 0.05 * np.median(f.n_bins[inside])


def test_silence_gives_nan_itd_and_zero_activity():
    f = extract_features(np.zeros((FS, 2)), FS)
    assert np.all(np.isnan(f.itd)) and np.all(f.reliability == 0)
    assert np.all(f.activity == 0.0)


def test_bad_input_errors_name_the_problem():
    fe = BinauralFrontEnd()
    with pytest.raises(AudioInputError, match="3 channel"):
        fe.process(np.zeros((100, 3)), FS)
    with pytest.raises(AudioInputError, match="expected \\(samples, 2\\)"):
        fe.process(np.zeros(100), FS)
    bad = np.zeros((100, 2))
    bad[5, 1] = np.nan
    with pytest.raises(AudioInputError, match="NaN"):
        fe.process(bad, FS)
    fe.process(np.zeros((100, 2)), FS, 0.0)
    with pytest.raises(AudioInputError, match="sample rate changed"):
        fe.process(np.zeros((100, 2)), 48000)


def test_gap_in_stamps_restarts_the_time_base():
    fe = BinauralFrontEnd()
    x = binaural_noise(1e-4, FS, 1.0)
    a = fe.process(x, FS, 10.0)
    b = fe.process(x, FS, 20.0)  # 9 s gap
    assert fe.stats["discontinuities"] == 1
    assert b.stamp[0] == pytest.approx(20.0 + 255.5 / FS)
    assert a.stamp[-1] < 11.0


def test_pcm_conversion_and_framing():
    assert pcm_to_float(np.array([-32768, 16384], np.int16)).tolist() == [-1.0, 0.5]
    assert pcm_to_float(np.array([0, 128], np.uint8)).tolist() == [-1.0, 0.0]
    assert pcm_to_float(np.array([-(2 ** 31)], np.int32)).tolist() == [-1.0]
    frames = frame_signal(np.arange(20.0)[:, None].repeat(2, 1), 8, 4)
    assert frames.shape == (4, 2, 8) and frames[1, 0, 0] == 4


def test_slice_and_concatenate_round_trip():
    f = BinauralFrontEnd(keep_cross=True).process(binaural_noise(1e-4, FS, 1.0), FS, 0.0)
    parts = [f.slice(0, 10), f.slice(10, 25), f.slice(25, len(f))]
    g = type(f).concatenate(parts)
    assert len(parts[1]) == 15 and parts[1].stamp[0] == f.stamp[10]
    assert np.array_equal(g.stamp, f.stamp) and np.array_equal(g.cross, f.cross)
    assert np.array_equal(g.itd, f.itd, equal_nan=True)


@pytest.mark.timeout(120)
def test_periodic_hann_is_scipys_window_bit_for_bit():
    """The front-end's window without importing scipy.signal at start-up: the same
    values as scipy.signal.get_window('hann', n, fftbins=True), exactly, so the features
    do not change; and ``process`` never imports scipy.signal or scipy.stats."""
    import subprocess
    import sys

    import scipy.signal

    from av_perception.core.audio import periodic_hann

    for n in [*range(1, 40), 256, 400, 511, 512, 1024]:
        assert np.array_equal(periodic_hann(n), scipy.signal.get_window("hann", n, fftbins=True))
    code = ("import sys, av_perception.cli, av_perception.offline; "
            "from av_perception.core.audio import BinauralFrontEnd; BinauralFrontEnd(); "
            "print(' '.join(m for m in sys.modules if m.startswith(('scipy.signal', "
            "'scipy.stats'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=100, check=True)
    assert out.stdout.strip() == ""


def test_kernel_parameter_indices_are_distinct_and_each_setting_lands_in_its_own():
    """Every P_* index is its own slot (two settings sharing one would silently overwrite
    each other); the hold and the second talker's settings are read where they are set."""
    idx = {name: getattr(K, name) for name in dir(K) if name.startswith("P_")}
    assert len(set(idx.values())) == len(idx)
    assert sorted(idx.values()) == list(range(K.N_PARAMS))
    cfg = AudioFrontEndConfig(precedence_hold_time=0.1, precedence_second_separation=90.0)
    fe = BinauralFrontEnd(cfg)
    assert fe.params[K.P_HOLD] == pytest.approx(np.exp(-cfg.hop_duration / 0.1))
    assert fe.params[K.P_NEW_SEPARATION] == pytest.approx(90e-6)
    assert BinauralFrontEnd(AudioFrontEndConfig(precedence_hold_time=0.0)).params[K.P_HOLD] == 0.0


@pytest.mark.timeout(300)
def test_snr_weighting_matches_reference_and_keeps_an_exact_itd(rng):
    """audio.bin_snr_weight_exponent: the kernel equals its numpy reference; the unmasked
    bins' weights fall with their SNR (mean direct-path weight below 1 without any other
    weighting); an exact delay in white noise still reads its ITD."""
    itd = 1.3e-4
    x = binauralize(noise_bursts(FS, 1.5, seed=3), itd, FS)
    x += 0.01 * rng.standard_normal(x.shape)
    for mode, memory, hold in (("none", 0.0, 0.0), ("cdr+onset", 1.0, 0.1), ("cdr", 0.4, 0.0)):
        cfg = AudioFrontEndConfig(direct_path_weighting=mode, precedence_time=memory,
                                  precedence_hold_time=hold, bin_snr_weight_exponent=0.5)
        assert_numba_matches_reference(
            cfg, x, ("itd", "reliability", "direct_path", "n_bins", "cross"), (mode,))
    plain = AudioFrontEndConfig(direct_path_weighting="none", precedence_time=0.0)
    weighted = AudioFrontEndConfig(direct_path_weighting="none", precedence_time=0.0,
                                   bin_snr_weight_exponent=0.5)
    f0 = extract_features(x, FS, plain)
    f1 = extract_features(x, FS, weighted)
    act = (f1.activity >= 0.5) & np.isfinite(f1.itd)
    assert act.sum() > 20
    assert np.all(f0.direct_path[act] == 1.0)
    assert np.all(f1.direct_path[act] < 0.9)
    assert np.median(np.abs(f1.itd[act] - itd)) < 2e-6


def _run_kernel(fe, spec_l, spec_r, kernel=K.binaural_kernel):
    n_frames, n_bins = spec_l.shape
    state = np.zeros((K.N_STATE, n_bins))
    state[9, 1] = np.inf
    out = np.zeros((n_frames, K.OUT_BANDS + fe.n_bands))
    cross = np.zeros((n_frames, 2, n_bins))
    kernel(spec_l, spec_r, fe.omega, fe.diffuse_coherence, fe.in_band, fe.band_of_bin,
           fe.scan_tau, fe.scan_cos, fe.scan_sin, fe.tau_max, state, np.zeros(1, np.int64),
           fe.params, out, cross)
    return out, cross, state


@pytest.mark.timeout(300)
def test_band_onset_writes_the_memory_with_the_band_power_rise():
    """audio.onset_band_hz: after a step whose rise alternates 12 dB / 0 dB from bin to bin
    (a reflection's comb), the per-bin onset writes every other bin of the precedence
    memory, the band onset (the band's 9.3 dB rise) every bin; a plain 12 dB step writes
    every bin either way.  The frame's own direct-path weight keeps the per-bin onset.
    Kernel and reference agree."""
    n_bins = AudioFrontEndConfig().frame_length // 2 + 1
    odd = np.arange(n_bins) % 2 == 1
    comb = np.where(odd, 16.0, 1.0)
    for step, per_bin_direct in ((comb, 0.5), (np.full(n_bins, 16.0), 1.0)):
        # a quiet first frame (the noise floor), 30 steady frames, then the step
        power = np.vstack([np.full((1, n_bins), 1e-6), np.ones((30, n_bins)), step[None]])
        spec = np.sqrt(power).astype(complex)
        for hz in (0.0, 500.0):
            cfg = AudioFrontEndConfig(direct_path_weighting="onset", precedence_time=0.05,
                                      precedence_hold_time=0.0, onset_band_hz=hz)
            fe = BinauralFrontEnd(cfg)
            assert fe.params[K.P_ONSET_BINS] == round(hz * cfg.frame_length
                                                       / cfg.processing_rate)
            out, cross, state = _run_kernel(fe, spec, spec)
            ref = _run_kernel(fe, spec, spec, K.binaural_reference)
            assert np.allclose(np.nan_to_num(out), np.nan_to_num(ref[0]), rtol=1e-9, atol=1e-12)
            assert np.allclose(cross, ref[1], rtol=1e-9, atol=1e-12)
            assert np.allclose(state, ref[2], rtol=1e-9, atol=1e-12)
            # the psd smoothing has not fully settled on the steady level: within 0.02
            assert out[-1, K.OUT_DIRECT] == pytest.approx(per_bin_direct, abs=0.02), hz
            memory = np.hypot(state[6], state[7])[fe.in_band]
            written = odd[fe.in_band] if (hz == 0.0 and per_bin_direct < 1) else True
            assert np.all(np.where(written, memory > 0.98, memory < 0.01)), hz
            assert np.all(state[7][fe.in_band] == 0.0)  # equal ears: ITD 0


@pytest.mark.timeout(300)
def test_itd_snr_weight_leaves_gate_and_direct_weight_and_matches_reference(rng):
    """audio.itd_snr_weight_exponent: kernel equals reference (with and without the memory,
    hold and band onset); the direct-path weight that the gate reads is unchanged; an exact
    delay in white noise still reads its ITD."""
    itd = 1.3e-4
    x = binauralize(noise_bursts(FS, 1.5, seed=3), itd, FS)
    x += 0.01 * rng.standard_normal(x.shape)
    for mode, memory, hold, band in (("none", 0.0, 0.0, 0.0), ("cdr+onset", 1.0, 0.1, 500.0),
                                     ("cdr+onset", 1.0, 0.0, 0.0), ("onset", 0.0, 0.0, 300.0)):
        cfg = AudioFrontEndConfig(direct_path_weighting=mode, precedence_time=memory,
                                  precedence_hold_time=hold, onset_band_hz=band,
                                  itd_snr_weight_exponent=0.5)
        a = assert_numba_matches_reference(
            cfg, x, ("itd", "reliability", "direct_path", "n_bins", "cross"), (mode,))
        off = extract_features(x, FS, AudioFrontEndConfig(
            direct_path_weighting=mode, precedence_time=memory, precedence_hold_time=hold,
            onset_band_hz=0.0))
        assert np.array_equal(a.direct_path, off.direct_path), mode
        act = (a.activity >= 0.5) & np.isfinite(a.itd)
        assert act.sum() > 20
        assert np.median(np.abs(a.itd[act] - itd)) < 2e-6, mode
