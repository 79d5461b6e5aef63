"""Time-frequency binaural kernels (numba) and their plain-numpy references.

* :func:`tf_observations_kernel` / :func:`tf_observations_reference`: per frame and bin,
  the interaural phase difference (rad), level difference (dB) and a reliability weight
  (local SNR over a tracked noise floor x direct-to-total ratio from the smoothed
  coherence), streaming (state carried between calls).
* :func:`tf_loglik_kernel` / :func:`tf_loglik_reference` and :func:`tf_posteriors_kernel`
  / :func:`tf_posteriors_reference`: the MESSL-like E-step of the time-frequency mixture
  -- per bin, the log-likelihood of each talker (wrapped-Gaussian IPD around the phase its
  ITD predicts, variance divided by the bin's weight, optional ILD Gaussian) and of a
  uniform outlier class (once per variance estimate), then the posteriors with the priors
  per frequency (once per prior estimate).

The public entry points (which validate their inputs) are in :mod:`.tf_masks`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._binaural_kernels import direct_to_total, direct_to_total_reference

# state rows of the observation kernel
S_FLOOR = 0
S_LL = 1
S_RR = 2
S_RE = 3
S_IM = 4
N_STATE = 5

TWO_PI = 2.0 * math.pi
OUTLIER_ILD_VAR = 400.0  # dB^2: the outlier class's ILD spread
W_MIN = 0.02  # smallest bin weight in the E-step (variance at most 1 / W_MIN times larger)
EPS = 1e-20


@njit(cache=True)
def tf_observations_kernel(spec_l, spec_r, in_band, diffuse, coh_alpha, floor_rise, state,
                           initialised, ipd, ild, weight):
    """Per-bin IPD (rad, arg L - arg R in (-pi, pi]), ILD (dB) and reliability in [0, 1].

    spec_l, spec_r : (F, B) complex; in_band : (B,) bool; diffuse : (B,) diffuse-field
    coherence; coh_alpha : smoothing of the auto/cross spectra; floor_rise : factor per
    frame by which the noise floor may rise; state : (N_STATE, B), initialised : (1,) int.
    Outputs ipd, ild, weight : (F, B).  Out-of-band bins get weight 0.
    """
    n_frames, n_bins = spec_l.shape
    for t in range(n_frames):
        for b in range(n_bins):
            lr = spec_l[t, b].real
            li = spec_l[t, b].imag
            rr = spec_r[t, b].real
            ri = spec_r[t, b].imag
            pl = lr * lr + li * li
            pr = rr * rr + ri * ri
            cre = lr * rr + li * ri
            cim = li * rr - lr * ri
            p = 0.5 * (pl + pr)
            if initialised[0] == 0:
                state[S_FLOOR, b] = p
                state[S_LL, b] = pl
                state[S_RR, b] = pr
                state[S_RE, b] = cre
                state[S_IM, b] = cim
            else:
                fl = state[S_FLOOR, b] * floor_rise
                state[S_FLOOR, b] = p if p < fl else fl
                a = coh_alpha
                state[S_LL, b] = a * state[S_LL, b] + (1.0 - a) * pl
                state[S_RR, b] = a * state[S_RR, b] + (1.0 - a) * pr
                state[S_RE, b] = a * state[S_RE, b] + (1.0 - a) * cre
                state[S_IM, b] = a * state[S_IM, b] + (1.0 - a) * cim
            ipd[t, b] = math.atan2(cim, cre)
            ild[t, b] = 10.0 * math.log10((pl + EPS) / (pr + EPS))
            if not in_band[b] or p <= EPS:
                weight[t, b] = 0.0
                continue
            snr_w = 1.0 - state[S_FLOOR, b] / p
            if snr_w < 0.0:
                snr_w = 0.0
            dtt = direct_to_total(state[S_LL, b], state[S_RR, b], state[S_RE, b],
                                  state[S_IM, b], diffuse[b])
            weight[t, b] = snr_w * dtt
        initialised[0] = 1


def tf_observations_reference(spec_l, spec_r, in_band, diffuse, coh_alpha, floor_rise, state,
                              initialised, ipd, ild, weight):
    """Plain-numpy reference of :func:`tf_observations_kernel` (same arguments)."""
    for t in range(spec_l.shape[0]):
        sl, sr = spec_l[t], spec_r[t]
        pl, pr = np.abs(sl) ** 2, np.abs(sr) ** 2
        c = sl * np.conj(sr)
        p = 0.5 * (pl + pr)
        if initialised[0] == 0:
            state[:] = np.stack([p, pl, pr, c.real, c.imag])
        else:
            state[S_FLOOR] = np.minimum(p, state[S_FLOOR] * floor_rise)
            a = coh_alpha
            state[S_LL] = a * state[S_LL] + (1 - a) * pl
            state[S_RR] = a * state[S_RR] + (1 - a) * pr
            state[S_RE] = a * state[S_RE] + (1 - a) * c.real
            state[S_IM] = a * state[S_IM] + (1 - a) * c.imag
        ipd[t] = np.arctan2(c.imag, c.real)
        ild[t] = 10 * np.log10((pl + EPS) / (pr + EPS))
        ok = in_band & (p > EPS)
        snr_w = np.clip(1.0 - state[S_FLOOR] / np.where(ok, p, 1.0), 0.0, None)
        dtt = direct_to_total_reference(state[S_LL], state[S_RR], state[S_RE], state[S_IM],
                                        diffuse)
        weight[t] = np.where(ok, snr_w * dtt, 0.0)
        initialised[0] = 1


@njit(cache=True)
def tf_loglik_kernel(ipd, ild, weight, omega, itd, phase_var, ild_mean, ild_var, use_ild,
                     loglik):
    """Per-bin log-likelihoods of the time-frequency mixture's classes (no priors).

    ipd, ild, weight : (F, B); omega : (B,) rad/s; itd : (K,) s; phase_var : (K, B) rad^2,
    the variance of talker k's IPD residual at bin b for a bin of weight 1 (a bin of
    weight w has variance phase_var / w: the weighted-data model); ild_mean, ild_var :
    (K, B) dB, dB^2 (used when use_ild).  Output loglik : (K + 1, F, B), talker k's
    wrapped-Gaussian IPD (and ILD Gaussian) log density; the last row the outlier class's
    (uniform phase; ILD N(0, 20 dB)).
    """
    n_k = itd.shape[0]
    n_frames, n_bins = ipd.shape
    lo = -math.log(TWO_PI)
    for t in range(n_frames):
        for b in range(n_bins):
            w = weight[t, b]
            wb = w if w > W_MIN else W_MIN
            for k in range(n_k):
                r = ipd[t, b] - omega[b] * itd[k]
                r = r - TWO_PI * math.floor((r + math.pi) / TWO_PI)
                v = phase_var[k, b] / wb
                ll = -0.5 * r * r / v - 0.5 * math.log(TWO_PI * v)
                if use_ild:
                    d = ild[t, b] - ild_mean[k, b]
                    vv = ild_var[k, b]
                    ll += -0.5 * d * d / vv - 0.5 * math.log(TWO_PI * vv)
                loglik[k, t, b] = ll
            ll = lo
            if use_ild:
                ll += -0.5 * ild[t, b] * ild[t, b] / OUTLIER_ILD_VAR - 0.5 * math.log(
                    TWO_PI * OUTLIER_ILD_VAR)
            loglik[n_k, t, b] = ll


def tf_loglik_reference(ipd, ild, weight, omega, itd, phase_var, ild_mean, ild_var, use_ild,
                        loglik):
    """Plain-numpy reference of :func:`tf_loglik_kernel` (same arguments)."""
    r = ipd[None] - omega[None, None, :] * np.asarray(itd)[:, None, None]
    r = r - TWO_PI * np.floor((r + np.pi) / TWO_PI)
    v = phase_var[:, None, :] / np.maximum(weight, W_MIN)[None]
    ll = -0.5 * r ** 2 / v - 0.5 * np.log(TWO_PI * v)
    lo = np.full((1,) + ipd.shape, -np.log(TWO_PI))
    if use_ild:
        d = ild[None] - ild_mean[:, None, :]
        ll = ll - 0.5 * d ** 2 / ild_var[:, None, :] - 0.5 * np.log(TWO_PI * ild_var[:, None, :])
        lo = lo - 0.5 * ild[None] ** 2 / OUTLIER_ILD_VAR - 0.5 * np.log(TWO_PI * OUTLIER_ILD_VAR)
    loglik[:] = np.concatenate([ll, lo])


@njit(cache=True)
def tf_posteriors_kernel(loglik, weight, log_prior, post):
    """E-step of the time-frequency mixture: every bin's posterior of each talker and of
    the outlier class from the classes' log-likelihoods.

    loglik : (K + 1, F, B) (:func:`tf_loglik_kernel`); weight : (F, B); log_prior :
    (K + 1, B) log priors per bin (a talker's share of each frequency), the last the
    outlier class's.  Output post : (K + 1, F, B).
    Returns the weighted log-likelihood sum_tb w_tb log p(x_tb).
    """
    n_c, n_frames, n_bins = loglik.shape
    val = np.empty(n_c)
    total = 0.0
    for t in range(n_frames):
        for b in range(n_bins):
            m = -1e300
            for k in range(n_c):
                val[k] = loglik[k, t, b] + log_prior[k, b]
                if val[k] > m:
                    m = val[k]
            s = 0.0
            for k in range(n_c):
                e = math.exp(val[k] - m)
                post[k, t, b] = e
                s += e
            for k in range(n_c):
                post[k, t, b] /= s
            total += weight[t, b] * (m + math.log(s))
    return total


def tf_posteriors_reference(loglik, weight, log_prior, post):
    """Plain-numpy reference of :func:`tf_posteriors_kernel` (same arguments)."""
    val = loglik + np.asarray(log_prior)[:, None, :]
    m = val.max(axis=0)
    e = np.exp(val - m[None])
    s = e.sum(axis=0)
    post[:] = e / s[None]
    return float(np.sum(weight * (m + np.log(s))))


@njit(cache=True)
def itd_profile_kernel(cross, omega, use_bin, grid, kappa, log_outlier, activity, out):
    """Per frame, the share of its weighted bins whose IPD points at each grid ITD.

    cross : (F, 2, B) the frame's weighted PHAT cross-spectrum (Re, Im): per bin its
    weight x (cos, sin) of the IPD; omega : (B,) rad/s; use_bin : (B,) bool; grid : (N,)
    ITDs (s); kappa : von Mises concentration of a bin's IPD around omega x ITD;
    log_outlier : log of the outlier class's (uniform phase) weight against a cell's
    exp(kappa cos r) (its prior ratio plus log I0(kappa), the von Mises normaliser);
    activity : (F,) scales each frame's profile.  Output out : (F, N): sum over the used
    bins of weight x posterior of the grid cell (outlier class left out), over their
    total weight, times the activity.
    """
    n_frames = cross.shape[0]
    n_bins = cross.shape[2]
    n_grid = grid.shape[0]
    val = np.empty(n_grid)
    for f in range(n_frames):
        for j in range(n_grid):
            out[f, j] = 0.0
        total = 0.0
        for b in range(n_bins):
            re = cross[f, 0, b]
            im = cross[f, 1, b]
            w = math.sqrt(re * re + im * im)
            if w <= 0.0 or not use_bin[b]:
                continue
            total += w
            phi = math.atan2(im, re)
            m = log_outlier
            for j in range(n_grid):
                v = kappa * math.cos(phi - omega[b] * grid[j])
                val[j] = v
                if v > m:
                    m = v
            s = math.exp(log_outlier - m)
            for j in range(n_grid):
                e = math.exp(val[j] - m)
                val[j] = e
                s += e
            for j in range(n_grid):
                out[f, j] += w * val[j] / s
        if total > 0.0:
            for j in range(n_grid):
                out[f, j] *= activity[f] / total


def itd_profile_reference(cross, omega, use_bin, grid, kappa, log_outlier, activity, out):
    """Plain-numpy reference of :func:`itd_profile_kernel` (same arguments)."""
    w = np.hypot(cross[:, 0], cross[:, 1])  # (F, B)
    phi = np.arctan2(cross[:, 1], cross[:, 0])
    val = kappa * np.cos(phi[:, :, None] - omega[None, :, None] * grid[None, None, :])
    lo = np.full(val.shape[:2] + (1,), log_outlier)
    allv = np.concatenate([val, lo], axis=2)
    m = allv.max(axis=2, keepdims=True)
    e = np.exp(allv - m)
    post = e[:, :, :-1] / e.sum(axis=2, keepdims=True)
    wu = np.where(use_bin[None, :], w, 0.0)
    total = wu.sum(axis=1)
    prof = np.einsum("fb,fbj->fj", wu, post)
    out[:] = np.where(total[:, None] > 0,
                      prof * (activity / np.where(total > 0, total, 1.0))[:, None], 0.0)
