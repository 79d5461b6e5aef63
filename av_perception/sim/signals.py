"""Analytic test signals with exactly known properties (tests and benchmarks)."""
from __future__ import annotations

import numpy as np


def fractional_delay(x: np.ndarray, delay_samples: float) -> np.ndarray:
    """Delay ``x`` by a (fractional) number of samples exactly (circular, via the FFT)."""
    n = len(x)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n)
    return np.fft.irfft(spec * np.exp(-2j * np.pi * f * delay_samples), n)


def binaural_noise(itd: float, fs: int, duration: float, seed: int = 0, level: float = 0.1):
    """White noise reaching the left mic ``itd`` seconds before the right one, (n, 2)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(duration * fs)) * level
    return np.stack([x, fractional_delay(x, itd * fs)], axis=1)


def synthetic_voice(fs: int, duration: float, f0: float = 120.0, seed: int = 0,
                    syllable_rate: float = 4.0, pause_every: float = 0.0) -> np.ndarray:
    """A speech-like mono signal: glottal pulse train through three formant resonators,
    unvoiced noise bursts, syllable-rate amplitude modulation and optional pauses."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(duration * fs)
    t = np.arange(n) / fs
    f0_track = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = np.cumsum(f0_track / fs)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    excitation = pulses + 0.05 * rng.standard_normal(n)
    out = np.zeros(n)
    for formant, bw in ((700, 110), (1220, 120), (2600, 160)):
        r = np.exp(-np.pi * bw / fs)
        a = [1, -2 * r * np.cos(2 * np.pi * formant / fs), r * r]
        out += lfilter([1 - r], a, excitation)
    syl = 0.5 * (1 - np.cos(2 * np.pi * syllable_rate * t + rng.uniform(0, 6)))
    out *= syl ** 2
    if pause_every > 0:
        on = (t % pause_every) < 0.7 * pause_every
        out *= on
    return out / (np.max(np.abs(out)) + 1e-12) * 0.5


def binauralize(mono: np.ndarray, itd: float, fs: int) -> np.ndarray:
    """(n, 2) pair where the right channel lags the left by ``itd`` seconds (exact)."""
    mono = np.asarray(mono, dtype=float)
    return np.stack([mono, fractional_delay(mono, itd * fs)], axis=1)


def noise_bursts(fs: int, duration: float, on: float = 0.4, off: float = 0.3, seed: int = 0,
                 level: float = 0.2, floor: float = 0.002) -> np.ndarray:
    """White-noise bursts (``on`` s) separated by pauses (``off`` s) over a faint noise
    floor, with 10 ms raised-cosine ramps: a mono signal whose activity is known."""
    rng = np.random.default_rng(seed)
    n = int(duration * fs)
    t = np.arange(n) / fs
    gate = ((t % (on + off)) < on).astype(float)
    ramp = int(0.01 * fs)
    kernel = np.hanning(2 * ramp + 1)
    gate = np.convolve(gate, kernel / kernel.sum(), mode="same")
    return rng.standard_normal(n) * level * gate + rng.standard_normal(n) * floor
