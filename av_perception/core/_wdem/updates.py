"""The M-step and the whole EM loop of one fit in one call: Cholesky factors of the
covariances, the M-step update from the fused pass's statistics, and ``em_loop``
(iterations, log-likelihood history and convergence test without returning to Python)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .common import EPS, TwoWayKernel
from .passes import _em_pass


@njit(cache=True)
def _cholesky_lower(C, L):
    """L (d, d) lower-triangular with C = L L^T from the lower triangle of C; False when C
    is not positive definite (a pivot <= 0 or NaN, as LAPACK's potrf)."""
    d = C.shape[0]
    for j in range(d):
        t = C[j, j]
        for q in range(j):
            t -= L[j, q] * L[j, q]
        if not t > 0.0:
            return False
        ljj = math.sqrt(t)
        L[j, j] = ljj
        for i in range(j):
            L[i, j] = 0.0
        for i in range(j + 1, d):
            t = C[i, j]
            for q in range(j):
                t -= L[i, q] * L[j, q]
            L[i, j] = t / ljj
    return True


@njit(cache=True)
def prec_chol(covs, U, log_det):
    """U[k] = L_k^-1 (lower-triangular, zeros above) and log_det[k] = log |Sigma_k| with
    Sigma_k = L_k L_k^T for covariances (K, d, d), lower triangles read.  When a matrix is
    not positive definite (degenerate data with reg_covar = 0) every matrix is rebuilt from
    its eigen-decomposition with the eigenvalues floored at 1e-12 times the largest."""
    K, d = covs.shape[0], covs.shape[1]
    L = np.zeros((K, d, d))
    ok = True
    for k in range(K):
        if not _cholesky_lower(covs[k], L[k]):
            ok = False
            break
    if not ok:
        C = np.empty((d, d))
        R = np.empty((d, d))
        for k in range(K):
            for i in range(d):
                for j in range(d):
                    C[i, j] = covs[k, max(i, j), min(i, j)]
            vals, vecs = np.linalg.eigh(C)
            floor = 1e-12 * max(vals.max(), 1e-300)
            for j in range(d):
                vals[j] = max(vals[j], floor)
            for i in range(d):
                for q in range(d):
                    t = 0.0
                    for j in range(d):
                        t += vecs[i, j] * vals[j] * vecs[q, j]
                    R[i, q] = t
            if not _cholesky_lower(R, L[k]):
                raise ValueError("covariance matrix is not positive definite")
    for k in range(K):
        ld = 0.0
        for j in range(d):
            ld += math.log(L[k, j, j])
            U[k, j, j] = 1.0 / L[k, j, j]
            for i in range(j):
                U[k, i, j] = 0.0
            for i in range(j + 1, d):
                t = 0.0
                for q in range(j, i):
                    t -= L[k, i, q] * U[k, q, j]
                U[k, i, j] = t / L[k, i, i]
        log_det[k] = 2.0 * ld


@njit(cache=True)
def em_update(means, covs, nk, sw, sx, s, cov_code, reg_covar, n, new_means, new_covs,
              new_mix):
    """M-step from the statistics of :func:`em_pass` over n observations (centred on
    ``means``): new means (K, d), covariances (K, d, d) (+ reg_covar I) and mixing
    proportions (K,); returns the outlier proportion pi_0 (0 when nk has K entries).  A
    component whose responsibility sum is below 1e-10 n keeps its mean and covariance;
    pi = (nk + EPS) / (n + EPS Kc)."""
    K, d = means.shape
    Kc = nk.shape[0]
    delta = np.empty(d)
    v = np.empty(d)
    for k in range(K):
        if nk[k] < 1e-10 * max(n, 1.0):  # a component that lost every observation
            for r in range(d):
                new_means[k, r] = means[k, r]
                for q in range(d):
                    new_covs[k, r, q] = covs[k, r, q]
            continue
        den = sw[k] + EPS
        for r in range(d):
            new_means[k, r] = (sx[k, r] + sw[k] * means[k, r]) / den
            delta[r] = new_means[k, r] - means[k, r]
        nrm = nk[k] + EPS
        if cov_code == 0:
            for r in range(d):
                for q in range(r + 1):
                    t = (s[k, r, q] - delta[r] * sx[k, q] - sx[k, r] * delta[q]
                         + sw[k] * delta[r] * delta[q]) / nrm
                    new_covs[k, r, q] = t
                    new_covs[k, q, r] = t
        else:
            for r in range(d):
                v[r] = s[k, r, r] - 2.0 * delta[r] * sx[k, r] + sw[k] * delta[r] * delta[r]
            if cov_code == 2:
                t = 0.0
                for r in range(d):
                    t += v[r]
                for r in range(d):
                    v[r] = t / d
            for r in range(d):
                for q in range(d):
                    new_covs[k, r, q] = 0.0
                new_covs[k, r, r] = v[r] / nrm
        for r in range(d):
            new_covs[k, r, r] += reg_covar
    for k in range(K):
        new_mix[k] = (nk[k] + EPS) / (n + EPS * Kc)
    return (nk[K] + EPS) / (n + EPS * Kc) if Kc > K else 0.0


def em_loop(X, w, a, beta, wd, obs_const, means, covs, mixing, outlier, log_vol, has_outlier,
            cov_code, reg_covar, max_iter, tol, resp, post_w, min_work):
    """EM from (means, covs, mixing, outlier) until the relative change of the
    log-likelihood is at most ``tol`` or after ``max_iter`` M-steps: per iteration
    :func:`prec_chol`, :func:`em_pass` and :func:`em_update`.

    outlier : pi_0 of the uniform component (used when has_outlier); log_vol : -log V.
    Returns (means, covs, mixing, outlier, history, n_iter, converged): the parameters
    whose log-likelihood ends ``history`` (one entry per E-step, n_iter + 1 of them), the
    number of M-steps and whether the tolerance was reached; writes the E-step at the
    returned parameters (one more pass) to resp (N, Kc) and, WD, post_w (N, K) (FWD:
    post_w is not touched and may be empty).  The inputs are not modified.
    """
    K, d = means.shape
    Kc = K + 1 if has_outlier else K
    m, c, pi, pi0 = means.copy(), covs.copy(), mixing.copy(), outlier
    m2, c2, pi2 = np.empty((K, d)), np.empty((K, d, d)), np.empty(K)
    U, log_det, log_pi = np.empty((K, d, d)), np.empty(K), np.empty(K)
    nk, sw, sx, s = np.empty(Kc), np.empty(K), np.empty((K, d)), np.empty((K, d, d))
    history = np.empty(max_iter + 1)
    n_iter = 0
    converged = False
    for it in range(max_iter + 1):
        prec_chol(c, U, log_det)
        for k in range(K):
            log_pi[k] = math.log(pi[k]) if pi[k] > 0 else -np.inf
        log_out = (math.log(pi0) if pi0 > 0 else -np.inf) + log_vol
        ll = _em_pass(X, w, a, beta, wd, obs_const, m, U, log_det, log_pi, log_out, Kc,
                      cov_code, nk, sw, sx, s, False, resp, post_w, min_work)
        history[it] = ll
        if it > 0 and abs(ll - history[it - 1]) <= tol * abs(history[it - 1]):
            converged = True
            break
        if it == max_iter:
            break
        pi0 = em_update(m, c, nk, sw, sx, s, cov_code, reg_covar, X.shape[0], m2, c2, pi2)
        m, m2 = m2, m
        c, c2 = c2, c
        pi, pi2 = pi2, pi
        n_iter += 1
    # the E-step of the returned parameters (the pass that ended the history, stored)
    prec_chol(c, U, log_det)
    for k in range(K):
        log_pi[k] = math.log(pi[k]) if pi[k] > 0 else -np.inf
    log_out = (math.log(pi0) if pi0 > 0 else -np.inf) + log_vol
    _em_pass(X, w, a, beta, wd, obs_const, m, U, log_det, log_pi, log_out, Kc, cov_code, nk,
             sw, sx, s, True, resp, post_w, min_work)
    return m, c, pi, pi0, history[:n_iter + 1].copy(), n_iter, converged


def _loop_work(a):
    d = a["X"].shape[1]
    kc = a["means"].shape[0] + (1 if a["has_outlier"] else 0)
    return a["X"].shape[0] * kc * (d * d + 2 * d + 4)


em_loop = TwoWayKernel(em_loop, _loop_work, callees={"_em_pass": _em_pass}, own_prange=False)
