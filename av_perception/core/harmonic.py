"""Harmonicity of each talker: per-frame F0 from the talker's spatially weighted spectrum
and a harmonic-comb likelihood per bin, combined with the spatial likelihoods of
:func:`~av_perception.core.tf_masks.cluster_window`.

Voiced speech is harmonic and two talkers rarely share an F0.  Per frame, each talker's
magnitude spectrum as the spatial model sees it (the mixture's magnitude times the square
root of the talker's mask) is scored against a comb of candidate F0s
(:func:`pitch_salience`: harmonics minus half-way points, so that the sub-octave and the
octave score about 0); the best F0 and its contrast (the voicing) give a comb per talker,
and the log-likelihood ratio of the comb against a flat spectrum
(:func:`harmonic_loglik`) is added to the talker's log-likelihood in every bin: bins near
talker k's harmonics lean to k, bins between them lean away.  An unvoiced frame adds 0 (the
spatial mask alone).  Model: docs/algorithms.md, "Harmonicity".
"""
from __future__ import annotations

import numpy as np

from . import _pitch_kernels as PK

__all__ = ["f0_grid", "pitch_salience", "pitch_tracks", "talker_pitches", "harmonic_energy",
           "harmonic_loglik", "voicing_confidence"]

VOICING_RAMP = 0.15  # contrast above the threshold at which a frame counts as fully voiced


def f0_grid(f0_min: float, f0_max: float, steps_per_octave: int = 48) -> np.ndarray:
    """Candidate F0s (Hz), log-spaced from ``f0_min`` to ``f0_max``."""
    if not 0 < f0_min < f0_max:
        raise ValueError(f"need 0 < f0_min < f0_max, got {f0_min} and {f0_max}")
    n = int(np.ceil(np.log2(f0_max / f0_min) * steps_per_octave)) + 1
    return f0_min * 2.0 ** (np.arange(n) / steps_per_octave)


def _bin_hz(freqs) -> float:
    freqs = np.asarray(freqs, dtype=np.float64)
    if freqs.ndim != 1 or len(freqs) < 2 or freqs[0] != 0.0:
        raise ValueError("freqs must be the (B,) frequencies of an rfft's bins, from 0 Hz")
    step = freqs[1] - freqs[0]
    if step <= 0 or not np.allclose(np.diff(freqs), step):
        raise ValueError("freqs must be evenly spaced and increasing (an rfft's bins)")
    return float(step)


def pitch_salience(mag, freqs, grid, max_frequency: float, use_numba: bool = True):
    """Harmonic contrast (K, F, G) of every candidate F0 of ``grid`` (Hz) in every talker's
    magnitude spectrum ``mag`` (K, F, B) over the bins ``freqs`` (B,) Hz, harmonics up to
    ``max_frequency`` Hz."""
    mag = np.ascontiguousarray(mag, dtype=np.float64)
    grid = np.ascontiguousarray(grid, dtype=np.float64)
    if mag.ndim != 3 or mag.shape[2] != len(freqs):
        raise ValueError(f"mag must be (K, F, {len(freqs)}), got {mag.shape}")
    if not np.all(np.isfinite(mag)) or np.any(mag < 0):
        raise ValueError("mag must hold finite magnitudes >= 0")
    if grid.ndim != 1 or len(grid) == 0 or np.any(grid <= 0):
        raise ValueError("grid must hold positive F0s (Hz)")
    out = np.zeros(mag.shape[:2] + (len(grid),))
    kern = PK.pitch_salience_kernel if use_numba else PK.pitch_salience_reference
    kern(mag, grid, _bin_hz(freqs), float(max_frequency), out)
    return out


def pitch_tracks(mag, freqs, grid, max_frequency: float, use_numba: bool = True):
    """Each talker's F0 per frame: (f0 (K, F) Hz, contrast (K, F)), the candidate of
    ``grid`` with the highest salience (:func:`pitch_salience`), refined by a parabola
    through its neighbours on the log-F0 grid; contrast: the salience over the square root
    of the harmonic count (in [-1, 1])."""
    sal = pitch_salience(mag, freqs, grid, max_frequency, use_numba)
    best = np.argmax(sal, axis=2)
    top = np.take_along_axis(sal, best[..., None], axis=2)[..., 0]
    lo = np.take_along_axis(sal, np.maximum(best - 1, 0)[..., None], axis=2)[..., 0]
    hi = np.take_along_axis(sal, np.minimum(best + 1, len(grid) - 1)[..., None], axis=2)[..., 0]
    den = lo - 2 * top + hi
    shift = np.where((best > 0) & (best < len(grid) - 1) & (den < 0),
                     0.5 * (lo - hi) / np.where(den < 0, den, -1.0), 0.0)
    step = np.log2(grid[1] / grid[0]) if len(grid) > 1 else 0.0
    f0 = grid[best] * 2.0 ** (np.clip(shift, -0.5, 0.5) * step)
    return f0, top / np.sqrt(harmonic_count(grid, max_frequency))[best]


def harmonic_count(grid, max_frequency: float) -> np.ndarray:
    """Harmonics below ``max_frequency`` of each F0 of ``grid`` (at least 1)."""
    return np.maximum(np.floor(max_frequency / np.asarray(grid, dtype=np.float64)), 1.0)


RELATED = np.log2([1 / 3, 1 / 2, 1.0, 2.0, 3.0])  # F0 ratios of one voice's octave errors
RELATED_TOL = 0.05  # octaves


def harmonic_energy(mag, f0, bin_hz: float, max_frequency: float) -> np.ndarray:
    """Energy (K, F) of each talker's spectrum ``mag`` (K, F, B) at the bins nearest to the
    harmonics of its F0 ``f0`` (K, F) Hz up to ``max_frequency``."""
    n_bins = mag.shape[2]
    h = np.arange(1, int(max_frequency / max(float(np.min(f0)), 1.0)) + 2)
    pos = h[None, None, :] * f0[:, :, None]
    b = np.clip(np.round(pos / bin_hz).astype(np.int64), 0, n_bins - 1)
    e = np.take_along_axis(mag, b, axis=2) ** 2
    return np.where(pos <= max_frequency, e, 0.0).sum(axis=2)


def talker_pitches(mix_salience, talker_salience, grid, max_frequency: float, mag=None,
                   bin_hz: float = 1.0):
    """Each talker's F0 per frame and its voicing evidence.

    Each talker's F0 is the candidate of highest salience in its own (spatially weighted)
    spectrum.  Where two talkers get related F0s (one voice: ratio 1/3 to 3 within
    ``RELATED_TOL`` octaves), the F0 is one talker's: it stays with the talker that has
    both the highest salience there and (with ``mag``) the most energy at its harmonics;
    when the two disagree, no talker of the group keeps a comb in that frame (contrast -1).

    Parameters
    ----------
    mix_salience : (F, G) the mixture's :func:`pitch_salience`.
    talker_salience : (K, F, G) each talker's.
    grid : (G,) Hz.
    mag : (K, F, B) the talkers' magnitude spectra (bins ``bin_hz`` apart) or None (the
        salience alone decides).

    Returns
    -------
    f0 : (K, F) Hz;
    contrast : (K, F) the mixture's harmonic contrast at that F0 (its salience over the
        square root of the harmonic count, in [-1, 1]; -1 where the talker lost its F0).
    """
    mix_salience = np.asarray(mix_salience, dtype=np.float64)
    talker_salience = np.asarray(talker_salience, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if talker_salience.ndim != 3 or mix_salience.shape != talker_salience.shape[1:] or \
            talker_salience.shape[2] != len(grid):
        raise ValueError(f"need mix_salience (F, G) and talker_salience (K, F, G) with G = "
                         f"{len(grid)}, got {mix_salience.shape} and {talker_salience.shape}")
    K = talker_salience.shape[0]
    best = np.argmax(talker_salience, axis=2)  # (K, F)
    frames = np.arange(mix_salience.shape[0])[None, :]
    norm = np.sqrt(harmonic_count(grid, max_frequency))
    f0 = grid[best]
    contrast = mix_salience[frames, best] / norm[best]
    if K < 2:
        return f0, contrast
    top = np.take_along_axis(talker_salience, best[..., None], axis=2)[..., 0]
    energy = None if mag is None else harmonic_energy(np.asarray(mag, dtype=np.float64),
                                                      f0, bin_hz, max_frequency)
    lf = np.log2(f0)
    lose = np.zeros(f0.shape, dtype=bool)
    for i in range(K):
        for j in range(K):
            if i == j:
                continue
            rel = np.min(np.abs((lf[i] - lf[j])[:, None] - RELATED[None, :]), axis=1) \
                < RELATED_TOL
            beaten = top[i] < top[j]
            if energy is not None:
                beaten |= energy[i] < energy[j]
            lose[i] |= rel & beaten
    return f0, np.where(lose, -1.0, contrast)


def harmonic_loglik(f0, confidence, freqs, width: float, floor: float,
                    min_frequency: float, max_frequency: float, use_numba: bool = True):
    """Log-likelihood ratio (K, F, B) of each talker's harmonic comb against a flat spectrum
    in every bin of ``freqs`` within [min_frequency, max_frequency] Hz (0 elsewhere and
    where ``confidence`` is 0).

    f0 : (K, F) Hz; confidence : (K, F) in [0, 1] (the voicing); width : bins, the comb's
    Gaussian spread around each harmonic; floor : in (0, 1), the comb between harmonics.
    """
    f0 = np.ascontiguousarray(f0, dtype=np.float64)
    conf = np.ascontiguousarray(confidence, dtype=np.float64)
    if f0.ndim != 2 or conf.shape != f0.shape:
        raise ValueError(f"f0 and confidence must be (K, F) of one shape, got {f0.shape} and "
                         f"{conf.shape}")
    if not (np.all(np.isfinite(f0)) and np.all(np.isfinite(conf))):
        raise ValueError("f0 and confidence must be finite")
    if not (width > 0 and 0 < floor < 1):
        raise ValueError(f"need width > 0 and 0 < floor < 1, got {width} and {floor}")
    bin_hz = _bin_hz(freqs)
    lo = max(1, int(np.ceil(min_frequency / bin_hz)))
    hi = min(len(freqs), int(np.floor(max_frequency / bin_hz)) + 1)
    out = np.zeros(f0.shape + (len(freqs),))
    kern = PK.harmonic_loglik_kernel if use_numba else PK.harmonic_loglik_reference
    kern(f0, np.clip(conf, 0.0, 1.0), bin_hz, float(width), float(floor), lo, max(hi, lo), out)
    return out


def voicing_confidence(contrast, threshold: float) -> np.ndarray:
    """Voicing in [0, 1] from the harmonic contrast: 0 below ``threshold``, 1 from
    ``threshold + VOICING_RAMP`` on, linear between."""
    return np.clip((np.asarray(contrast, dtype=np.float64) - threshold) / VOICING_RAMP, 0, 1)
