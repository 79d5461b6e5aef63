"""Per-frame ITD profile from the time-frequency bins (speech presence of several talkers
in one audio frame).

Every bin of a frame votes for the ITDs its IPD is consistent with: its posterior over a
grid of ITDs plus an outlier class (a von Mises IPD around omega x ITD against a uniform
phase), weighted by the bin's direct-path weight (the front-end's weighted PHAT
cross-spectrum).  The profile of a frame is the share of its weighted bins on each grid
ITD, times the frame's activity; with two talkers at once, each holding its own
time-frequency bins, both their ITDs hold mass, where the frame's single GCC-PHAT ITD
names only the louder.
The tracker turns it into per-track speaking evidence
(:func:`av_perception.core.tracking.inference.tf_presence_terms`).  Causal: each frame
alone, no added latency.  Model: docs/algorithms.md, "Speaking state".
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import i0e

from . import _tf_kernels as TK

__all__ = ["itd_grid", "itd_profile"]


def itd_grid(max_itd: float, cells: int) -> np.ndarray:
    """The profile's ITDs (s): ``cells`` evenly spaced over [-max_itd, max_itd]."""
    if not (math.isfinite(max_itd) and max_itd > 0):
        raise ValueError(f"max_itd must be a positive number of seconds, got {max_itd!r}")
    if cells < 2:
        raise ValueError(f"an ITD profile needs at least 2 cells, got {cells}")
    return np.linspace(-max_itd, max_itd, int(cells))


def itd_profile(cross, omega, use_bin, grid, phase_std: float, outlier_prior: float,
                activity=None, use_numba: bool = True) -> np.ndarray:
    """ITD profile (F, N) of F frames.

    Parameters
    ----------
    cross : (F, 2, B)
        Each frame's weighted PHAT cross-spectrum (Re, Im) (the front-end's
        ``features.cross``): per bin its weight times (cos, sin) of the IPD.
    omega : (B,) rad/s of the bins.
    use_bin : (B,) bool, bins that vote.
    grid : (N,) s, the profile's ITDs (:func:`itd_grid`).
    phase_std : rad, spread of a bin's IPD around the phase its ITD predicts.
    outlier_prior : prior of the outlier class (reverberation, noise) in each bin.
    activity : (F,) in [0, 1] or None (1): scales each frame's profile.

    Returns
    -------
    (F, N): per frame and grid ITD, the weighted share of the frame's bins that point
    there, times the activity; a row sums to at most the activity.
    """
    cross = np.ascontiguousarray(cross, dtype=np.float64)
    if cross.ndim != 3 or cross.shape[1] != 2:
        raise ValueError(f"cross must be (F, 2, B), got {cross.shape}")
    n_frames, _, n_bins = cross.shape
    omega = np.ascontiguousarray(omega, dtype=np.float64)
    use_bin = np.ascontiguousarray(use_bin, dtype=np.bool_)
    grid = np.ascontiguousarray(grid, dtype=np.float64)
    if omega.shape != (n_bins,) or use_bin.shape != (n_bins,):
        raise ValueError(f"omega and use_bin must have shape ({n_bins},), got {omega.shape} "
                         f"and {use_bin.shape}")
    if grid.ndim != 1 or len(grid) < 2:
        raise ValueError("grid must hold at least 2 ITDs (s): use itd_grid")
    act = (np.ones(n_frames) if activity is None
           else np.ascontiguousarray(activity, dtype=np.float64).reshape(-1))
    if act.shape != (n_frames,):
        raise ValueError(f"activity must have shape ({n_frames},), got {act.shape}")
    for name, a in (("cross", cross), ("omega", omega), ("grid", grid), ("activity", act)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values")
    if not phase_std > 0:
        raise ValueError(f"phase_std must be > 0 rad, got {phase_std}")
    if not 0.0 < outlier_prior < 1.0:
        raise ValueError(f"outlier_prior must be in (0, 1), got {outlier_prior}")
    kappa = 1.0 / phase_std ** 2
    log_i0 = math.log(i0e(kappa)) + kappa  # log I0(kappa), the von Mises normaliser
    log_outlier = math.log(outlier_prior * len(grid) / (1.0 - outlier_prior)) + log_i0
    out = np.zeros((n_frames, len(grid)))
    kern = TK.itd_profile_kernel if use_numba else TK.itd_profile_reference
    kern(cross, omega, use_bin, grid, kappa, log_outlier, act, out)
    return out
