"""Harmonicity kernels (numba) and their plain-numpy references.

* :func:`pitch_salience_kernel` / :func:`pitch_salience_reference`: per talker, frame and
  candidate F0, the harmonic contrast of the talker's magnitude spectrum: the magnitudes at
  the harmonics ``h f0`` minus those half-way between them ``(h + 1/2) f0``, over their sum
  (in [-1, 1]; a sub-octave ``f0 / 2`` scores about half), times the square root of the
  harmonic count (a multiple ``n f0`` scores about ``1 / sqrt(n)`` of ``f0``).
* :func:`harmonic_loglik_kernel` / :func:`harmonic_loglik_reference`: per talker, frame and
  bin, the log-likelihood ratio of a harmonic comb at the talker's F0 against a flat
  spectrum (0 where the talker is unvoiced in the frame).

The public entry points (which validate their inputs) are in :mod:`.harmonic`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

EPS = 1e-12


@njit(cache=True)
def _interp(row, x):
    """``row`` linearly interpolated at the fractional index ``x`` (0 outside)."""
    i = int(math.floor(x))
    if i < 0 or i + 1 >= row.shape[0]:
        return 0.0
    a = x - i
    return (1.0 - a) * row[i] + a * row[i + 1]


@njit(cache=True)
def pitch_salience_kernel(mag, f0_grid, bin_hz, max_frequency, out):
    """Harmonic salience of every candidate F0 (contrast x sqrt(harmonic count)).

    mag : (K, F, B) magnitude spectra (bin b at ``b * bin_hz`` Hz); f0_grid : (G,) Hz;
    max_frequency : Hz, the highest harmonic used.  Output out : (K, F, G).
    """
    n_k, n_frames, _ = mag.shape
    n_grid = f0_grid.shape[0]
    for k in range(n_k):
        for t in range(n_frames):
            row = mag[k, t]
            for g in range(n_grid):
                f0 = f0_grid[g]
                n_h = int(max_frequency / f0)
                on = 0.0
                off = 0.0
                for h in range(1, n_h + 1):
                    on += _interp(row, h * f0 / bin_hz)
                    off += _interp(row, (h + 0.5) * f0 / bin_hz)
                out[k, t, g] = (on - off) / (on + off + EPS) * math.sqrt(n_h)


def pitch_salience_reference(mag, f0_grid, bin_hz, max_frequency, out):
    """Plain-numpy reference of :func:`pitch_salience_kernel` (same arguments)."""
    n_bins = mag.shape[2]
    idx = np.arange(n_bins)
    for g, f0 in enumerate(f0_grid):
        h = np.arange(1, int(max_frequency / f0) + 1)
        x_on, x_off = h * f0 / bin_hz, (h + 0.5) * f0 / bin_hz
        ok_on = (np.floor(x_on) >= 0) & (np.floor(x_on) + 1 < n_bins)
        ok_off = (np.floor(x_off) >= 0) & (np.floor(x_off) + 1 < n_bins)
        on = np.zeros(mag.shape[:2])
        off = np.zeros(mag.shape[:2])
        for k in range(mag.shape[0]):
            for t in range(mag.shape[1]):
                on[k, t] = np.interp(x_on[ok_on], idx, mag[k, t]).sum()
                off[k, t] = np.interp(x_off[ok_off], idx, mag[k, t]).sum()
        out[:, :, g] = (on - off) / (on + off + EPS) * np.sqrt(len(h))


@njit(cache=True)
def harmonic_loglik_kernel(f0, confidence, bin_hz, width, floor, lo_bin, hi_bin, out):
    """Log-likelihood ratio of each talker's harmonic comb per bin.

    f0 : (K, F) Hz (the talker's F0 in the frame); confidence : (K, F) in [0, 1] (0:
    unvoiced, the ratio is 0); width : the comb's Gaussian spread (bins) around each
    harmonic; floor : in (0, 1), the comb's value far from the harmonics; bins
    [lo_bin, hi_bin) get the ratio, the others 0.  The comb ``c = floor + (1 - floor)
    exp(-d^2 / (2 width^2))`` (d: bins to the nearest harmonic) over its mean across those
    bins.  Output out : (K, F, B): ``confidence * log(c / mean(c))``.
    """
    n_k, n_frames, n_bins = out.shape
    comb = np.empty(n_bins)
    for k in range(n_k):
        for t in range(n_frames):
            c = confidence[k, t]
            for b in range(n_bins):
                out[k, t, b] = 0.0
            if c <= 0.0 or f0[k, t] <= 0.0:
                continue
            spacing = f0[k, t] / bin_hz
            total = 0.0
            for b in range(lo_bin, hi_bin):
                h = max(1.0, math.floor(b / spacing + 0.5))
                d = (b - h * spacing) / width
                comb[b] = floor + (1.0 - floor) * math.exp(-0.5 * d * d)
                total += comb[b]
            if hi_bin <= lo_bin:
                continue
            mean = total / (hi_bin - lo_bin)
            for b in range(lo_bin, hi_bin):
                out[k, t, b] = c * math.log(comb[b] / mean)


def harmonic_loglik_reference(f0, confidence, bin_hz, width, floor, lo_bin, hi_bin, out):
    """Plain-numpy reference of :func:`harmonic_loglik_kernel` (same arguments)."""
    out[:] = 0.0
    if hi_bin <= lo_bin:
        return
    b = np.arange(lo_bin, hi_bin, dtype=np.float64)
    spacing = np.asarray(f0, dtype=np.float64) / bin_hz  # (K, F)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.maximum(1.0, np.floor(b[None, None, :] / spacing[:, :, None] + 0.5))
    d = (b[None, None, :] - h * spacing[:, :, None]) / width
    comb = floor + (1.0 - floor) * np.exp(-0.5 * d ** 2)
    ratio = np.log(comb / comb.mean(axis=2, keepdims=True))
    on = (np.asarray(confidence) > 0) & (spacing > 0)
    out[:, :, lo_bin:hi_bin] = np.where(on[:, :, None], confidence[:, :, None] * ratio, 0.0)
