"""The unfused kernels that wdem calls outside the EM loop: E-steps (FWD and WD), row
normalisation, and the M-step's weighted moments and scatter matrices, each ``prange``
over fixed chunks of observations."""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .common import TwoWayKernel, _fill_zero, _n_chunks


# ---------------------------------------------------------------------------
@njit(cache=True, error_model="numpy", inline="always")
def _mahalanobis(X, i, means, prec_chol, k):
    d = X.shape[1]
    delta = 0.0
    for r in range(d):
        s = 0.0
        for c in range(r + 1):
            s += prec_chol[k, r, c] * (X[i, c] - means[k, c])
        delta += s * s
    return delta


@njit(cache=True, error_model="numpy", inline="always")
def _normalise_row(i, K, Kc, log_out, log_resp, resp, ll):
    if Kc > K:
        log_resp[i, K] = log_out
    mx = -np.inf
    for k in range(Kc):
        if log_resp[i, k] > mx:
            mx = log_resp[i, k]
    if mx == -np.inf:  # every component impossible: spread evenly, zero likelihood
        for k in range(Kc):
            resp[i, k] = 1.0 / Kc
            log_resp[i, k] = -math.log(Kc)
        ll[i] = -np.inf
        return
    s = 0.0
    for k in range(Kc):
        e = math.exp(log_resp[i, k] - mx)
        resp[i, k] = e
        s += e
    lse = mx + math.log(s)
    inv = 1.0 / s
    for k in range(Kc):
        resp[i, k] *= inv
        log_resp[i, k] -= lse
    ll[i] = lse


@njit(cache=True)
def _estep_fwd_rows(lo, hi, X, w, obs_const, means, prec_chol, log_det, log_pi, log_out,
                    log_resp, resp, ll):
    K = means.shape[0]
    Kc = log_resp.shape[1]
    for i in range(lo, hi):
        for k in range(K):
            delta = _mahalanobis(X, i, means, prec_chol, k)
            log_resp[i, k] = log_pi[k] - 0.5 * log_det[k] + obs_const[i] - 0.5 * w[i] * delta
        _normalise_row(i, K, Kc, log_out, log_resp, resp, ll)


def estep_fwd(X, w, obs_const, means, prec_chol, log_det, log_pi, log_out, log_resp, resp, ll,
              min_work):
    n = X.shape[0]
    n_chunks = _n_chunks(n, log_resp.shape[1] * X.shape[1] ** 2, min_work)
    if n_chunks == 1:
        _estep_fwd_rows(0, n, X, w, obs_const, means, prec_chol, log_det, log_pi, log_out,
                        log_resp, resp, ll)
        return
    for c in prange(n_chunks):
        _estep_fwd_rows(c * n // n_chunks, (c + 1) * n // n_chunks, X, w, obs_const, means,
                        prec_chol, log_det, log_pi, log_out, log_resp, resp, ll)


estep_fwd = TwoWayKernel(
    estep_fwd, lambda a: a["X"].shape[0] * a["log_resp"].shape[1] * a["X"].shape[1] ** 2)


@njit(cache=True)
def _estep_wd_rows(lo, hi, X, a, beta, obs_const, means, prec_chol, log_det, log_pi, log_out,
                   log_resp, resp, post_w, ll):
    K = means.shape[0]
    Kc = log_resp.shape[1]
    for i in range(lo, hi):
        for k in range(K):
            delta = _mahalanobis(X, i, means, prec_chol, k)
            log_resp[i, k] = (log_pi[k] - 0.5 * log_det[k] + obs_const[i]
                              - a[i] * math.log1p(0.5 * delta / beta[i]))
            post_w[i, k] = a[i] / (beta[i] + 0.5 * delta)
        _normalise_row(i, K, Kc, log_out, log_resp, resp, ll)


def estep_wd(X, a, beta, obs_const, means, prec_chol, log_det, log_pi, log_out, log_resp, resp,
             post_w, ll, min_work):
    n = X.shape[0]
    n_chunks = _n_chunks(n, log_resp.shape[1] * X.shape[1] ** 2, min_work)
    if n_chunks == 1:
        _estep_wd_rows(0, n, X, a, beta, obs_const, means, prec_chol, log_det, log_pi, log_out,
                       log_resp, resp, post_w, ll)
        return
    for c in prange(n_chunks):
        _estep_wd_rows(c * n // n_chunks, (c + 1) * n // n_chunks, X, a, beta, obs_const, means,
                       prec_chol, log_det, log_pi, log_out, log_resp, resp, post_w, ll)


estep_wd = TwoWayKernel(
    estep_wd, lambda a: a["X"].shape[0] * a["log_resp"].shape[1] * a["X"].shape[1] ** 2)


@njit(cache=True)
def _normalise_range(lo, hi, logp, log_resp, resp, ll):
    Kc = logp.shape[1]
    for i in range(lo, hi):
        for k in range(Kc):
            log_resp[i, k] = logp[i, k]
        _normalise_row(i, Kc, Kc, 0.0, log_resp, resp, ll)


def normalise_rows(logp, log_resp, resp, ll, min_work):
    """Row-wise log-sum-exp normalisation of unnormalised log-probabilities (N, Kc)."""
    n = logp.shape[0]
    n_chunks = _n_chunks(n, logp.shape[1], min_work)
    if n_chunks == 1:
        _normalise_range(0, n, logp, log_resp, resp, ll)
        return
    for c in prange(n_chunks):
        _normalise_range(c * n // n_chunks, (c + 1) * n // n_chunks, logp, log_resp, resp, ll)


normalise_rows = TwoWayKernel(
    normalise_rows, lambda a: a["logp"].shape[0] * a["logp"].shape[1])


# ---------------------------------------------------------------------------
# Weighted sufficient statistics (M-step)
# ---------------------------------------------------------------------------
@njit(cache=True)
def _moments_rows(lo, hi, c, X, resp, pw, K, acc):
    d = X.shape[1]
    Kc = resp.shape[1]
    shared = pw.shape[1] == 1
    for i in range(lo, hi):
        for k in range(Kc):
            acc[c, k, 0] += resp[i, k]
        for k in range(K):
            u = resp[i, k] * (pw[i, 0] if shared else pw[i, k])
            acc[c, k, 1] += u
            for j in range(d):
                acc[c, k, 2 + j] += u * X[i, j]


def moments(X, resp, pw, nk, sw, sx, min_work):
    """nk[k] = sum_i resp_ik (k < Kc); sw[k] = sum_i resp_ik pw_ik;
    sx[k] = sum_i resp_ik pw_ik x_i (k < K)."""
    n, d = X.shape
    K = sx.shape[0]
    Kc = nk.shape[0]
    n_chunks = _n_chunks(n, Kc * (d + 2), min_work)
    # explicit loops instead of np.zeros / slice assignment: under parallel=True those become
    # parfors, each paying a thread start-up even when the problem is small
    acc = np.empty((n_chunks, Kc, 2 + d))
    _fill_zero(acc.reshape(-1))
    if n_chunks == 1:
        _moments_rows(0, n, 0, X, resp, pw, K, acc)
    else:
        for c in prange(n_chunks):
            _moments_rows(c * n // n_chunks, (c + 1) * n // n_chunks, c, X, resp, pw, K, acc)
    _fill_zero(nk)
    _fill_zero(sw)
    _fill_zero(sx.reshape(-1))
    for c in range(n_chunks):
        for k in range(Kc):
            nk[k] += acc[c, k, 0]
        for k in range(K):
            sw[k] += acc[c, k, 1]
            for j in range(d):
                sx[k, j] += acc[c, k, 2 + j]


moments = TwoWayKernel(
    moments, lambda a: a["X"].shape[0] * a["resp"].shape[1] * (a["X"].shape[1] + 2))


@njit(cache=True)
def _scatter_rows(lo, hi, c, X, resp, pw, means, cov_code, acc):
    d = X.shape[1]
    K = means.shape[0]
    shared = pw.shape[1] == 1
    for i in range(lo, hi):
        for k in range(K):
            u = resp[i, k] * (pw[i, 0] if shared else pw[i, k])
            if cov_code == 0:
                for r in range(d):
                    dr = u * (X[i, r] - means[k, r])
                    for s in range(r + 1):
                        acc[c, k, r, s] += dr * (X[i, s] - means[k, s])
            else:
                for r in range(d):
                    dr = X[i, r] - means[k, r]
                    acc[c, k, r, r] += u * dr * dr


def scatter(X, resp, pw, means, cov_code, out, min_work):
    """out[k] = sum_i resp_ik pw_ik (x_i - mu_k)(x_i - mu_k)^T, restricted to the diagonal
    (cov_code 1) or to its mean diagonal value times I (cov_code 2)."""
    n, d = X.shape
    K = means.shape[0]
    n_chunks = _n_chunks(n, K * d * d, min_work)
    acc = np.empty((n_chunks, K, d, d))
    _fill_zero(acc.reshape(-1))
    if n_chunks == 1:
        _scatter_rows(0, n, 0, X, resp, pw, means, cov_code, acc)
    else:
        for c in prange(n_chunks):
            _scatter_rows(c * n // n_chunks, (c + 1) * n // n_chunks, c, X, resp, pw, means,
                          cov_code, acc)
    _fill_zero(out.reshape(-1))
    for c in range(n_chunks):
        for k in range(K):
            for r in range(d):
                for s in range(r + 1):
                    out[k, r, s] += acc[c, k, r, s]
    for k in range(K):
        if cov_code == 0:
            for r in range(d):
                for s in range(r):
                    out[k, s, r] = out[k, r, s]
        elif cov_code == 2:
            t = 0.0
            for r in range(d):
                t += out[k, r, r]
            for r in range(d):
                out[k, r, r] = t / d


scatter = TwoWayKernel(
    scatter, lambda a: a["X"].shape[0] * a["means"].shape[0] * a["X"].shape[1] ** 2)


