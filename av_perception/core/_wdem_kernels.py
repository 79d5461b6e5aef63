"""Weighted-data EM kernels (numba) and their plain-numpy references.

Every kernel has a reference with the same name plus ``_reference``, the same
arguments and the same outputs (written in place); the public entry points are
:func:`av_perception.core.wdem.fit` and :func:`~av_perception.core.wdem.select`,
which validate inputs before any kernel runs.  Kernels are ``parallel=True``
with ``prange`` over observations (E-steps) or over fixed chunks of
observations (sufficient statistics: each chunk accumulates privately and the
chunks are summed in a fixed order, so results do not depend on the number of
threads).

Arguments (N observations, d dimensions, K Gaussian components, Kc = K or K + 1
when a uniform outlier component is appended as the last column):

X          : float64 (N, d)     observations
w          : float64 (N,)       fixed weights (FWD-EM), > 0
a, beta    : float64 (N,)       WD-EM posterior shape a_i = alpha_i + d/2 and prior rate beta_i
obs_const  : float64 (N,)       per-observation constant of the log-density
                                FWD: (d/2) log w_i - (d/2) log 2 pi
                                WD:  lnG(a_i) - lnG(alpha_i) - (d/2) log(2 pi beta_i)
means      : float64 (K, d)
prec_chol  : float64 (K, d, d)  lower-triangular L_k^-1 with Sigma_k = L_k L_k^T
                                (only the lower triangle is read)
log_det    : float64 (K,)       log |Sigma_k|
log_pi     : float64 (K,)       log mixing proportions of the Gaussian components
log_out    : float              log pi_0 - log V of the outlier component (ignored when Kc == K)
log_resp   : float64 (N, Kc)    out: normalised log-responsibilities
resp       : float64 (N, Kc)    out: responsibilities exp(log_resp)
post_w     : float64 (N, K)     out (WD): posterior weights E[w_ik] = a_i / (beta_i + delta_ik / 2)
ll         : float64 (N,)       out: log p(x_i), the row log-normaliser
pw         : float64 (N, K) or (N, 1)  weights of the M-step (E[w_ik], or w_i broadcast over k)
cov_code   : int                0 full, 1 diagonal, 2 spherical
min_work   : int                run the prange loop from this much work on (see
                                PARALLEL_MIN_WORK; the references ignore it)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

COV_FULL = 0
COV_DIAG = 1
COV_SPHERICAL = 2
COV_CODES = {"full": COV_FULL, "diag": COV_DIAG, "spherical": COV_SPHERICAL}

N_CHUNKS = 32  # fixed chunking of parallel loops (results do not depend on the thread count)
# Work (rows x per-row operations) from which the kernels run their prange loops; passed to
# every kernel as ``min_work`` and read at call time, so it can be changed without recompiling.
# Measured on the 2-core development machine shared with other processes (load ~4): 2 threads
# were slower than 1 at every size tried (N = 1e5, K = 10, d = 3: 47 ms vs 68 ms per EM
# iteration), because the second thread is often scheduled only a time slice later.  The
# default therefore keeps problems up to N ~ 1e6 serial; lower it on a machine with idle cores.
PARALLEL_MIN_WORK = 20_000_000


@njit(cache=True)
def _fill_zero(a):
    for i in range(a.shape[0]):
        a[i] = 0.0


@njit(cache=True)
def _n_chunks(n, work_per_row, min_work):
    """1 (serial: no thread start-up cost) below ``min_work``, else N_CHUNKS."""
    if n * work_per_row < min_work:
        return 1
    return min(n, N_CHUNKS)


# ---------------------------------------------------------------------------
# E-steps
# ---------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _mahalanobis(X, i, means, prec_chol, k):
    d = X.shape[1]
    delta = 0.0
    for r in range(d):
        s = 0.0
        for c in range(r + 1):
            s += prec_chol[k, r, c] * (X[i, c] - means[k, c])
        delta += s * s
    return delta


@njit(cache=True, inline="always")
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


@njit(cache=True, parallel=True)
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


@njit(cache=True, parallel=True)
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


@njit(cache=True)
def _normalise_range(lo, hi, logp, log_resp, resp, ll):
    Kc = logp.shape[1]
    for i in range(lo, hi):
        for k in range(Kc):
            log_resp[i, k] = logp[i, k]
        _normalise_row(i, Kc, Kc, 0.0, log_resp, resp, ll)


@njit(cache=True, parallel=True)
def normalise_rows(logp, log_resp, resp, ll, min_work):
    """Row-wise log-sum-exp normalisation of unnormalised log-probabilities (N, Kc)."""
    n = logp.shape[0]
    n_chunks = _n_chunks(n, logp.shape[1], min_work)
    if n_chunks == 1:
        _normalise_range(0, n, logp, log_resp, resp, ll)
        return
    for c in prange(n_chunks):
        _normalise_range(c * n // n_chunks, (c + 1) * n // n_chunks, logp, log_resp, resp, ll)


def _mahalanobis_reference(X, means, prec_chol):
    diff = X[:, None, :] - means[None, :, :]  # (N, K, d)
    y = np.einsum("kab,nkb->nka", np.tril(prec_chol), diff)
    return np.einsum("nka,nka->nk", y, y)


def _normalise_reference(v, log_resp, resp, ll):
    mx = v.max(axis=1)
    bad = mx == -np.inf
    safe = np.where(bad, 0.0, mx)
    lse = safe + np.log(np.exp(v - safe[:, None]).sum(axis=1))
    lse[bad] = -np.inf
    Kc = v.shape[1]
    with np.errstate(invalid="ignore"):
        lr = v - lse[:, None]
    lr[bad] = -np.log(Kc)
    log_resp[:] = lr
    resp[:] = np.exp(lr)
    ll[:] = lse


def estep_fwd_reference(X, w, obs_const, means, prec_chol, log_det, log_pi, log_out, log_resp,
                        resp, ll, min_work=0):
    """Plain-numpy reference of :func:`estep_fwd` (same arguments, same outputs)."""
    K = means.shape[0]
    delta = _mahalanobis_reference(X, means, prec_chol)
    v = np.empty(log_resp.shape)
    v[:, :K] = (log_pi - 0.5 * log_det)[None, :] + obs_const[:, None] - 0.5 * w[:, None] * delta
    if v.shape[1] > K:
        v[:, K] = log_out
    _normalise_reference(v, log_resp, resp, ll)


def estep_wd_reference(X, a, beta, obs_const, means, prec_chol, log_det, log_pi, log_out,
                       log_resp, resp, post_w, ll, min_work=0):
    """Plain-numpy reference of :func:`estep_wd` (same arguments, same outputs)."""
    K = means.shape[0]
    delta = _mahalanobis_reference(X, means, prec_chol)
    v = np.empty(log_resp.shape)
    v[:, :K] = ((log_pi - 0.5 * log_det)[None, :] + obs_const[:, None]
                - a[:, None] * np.log1p(0.5 * delta / beta[:, None]))
    if v.shape[1] > K:
        v[:, K] = log_out
    post_w[:] = a[:, None] / (beta[:, None] + 0.5 * delta)
    _normalise_reference(v, log_resp, resp, ll)


def normalise_rows_reference(logp, log_resp, resp, ll, min_work=0):
    """Plain-numpy reference of :func:`normalise_rows`."""
    _normalise_reference(np.array(logp, dtype=np.float64), log_resp, resp, ll)


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


@njit(cache=True, parallel=True)
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


@njit(cache=True, parallel=True)
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


def moments_reference(X, resp, pw, nk, sw, sx, min_work=0):
    """Plain-numpy reference of :func:`moments`."""
    K = sx.shape[0]
    u = resp[:, :K] * pw
    nk[:] = resp.sum(axis=0)
    sw[:] = u.sum(axis=0)
    sx[:] = u.T @ X


def scatter_reference(X, resp, pw, means, cov_code, out, min_work=0):
    """Plain-numpy reference of :func:`scatter`."""
    K, d = means.shape
    u = resp[:, :K] * pw
    for k in range(K):
        diff = X - means[k]
        if cov_code == COV_FULL:
            out[k] = (u[:, k, None] * diff).T @ diff
        else:
            v = u[:, k] @ (diff * diff)
            out[k] = np.diag(v if cov_code == COV_DIAG else np.full(d, v.sum() / d))


# ---------------------------------------------------------------------------
# One EM iteration in one pass: E-step at the current parameters and the sufficient
# statistics of the next M-step, without storing the (N, K) responsibilities
# ---------------------------------------------------------------------------
@njit(cache=True, fastmath={"nsz", "arcp", "contract", "reassoc", "afn"})
def _em_pass_rows(lo, hi, c, X, w, a, beta, wd, obs_const, means, prec_chol, log_det, log_pi,
                  log_out, Kc, cov_code, acc_n, acc_sw, acc_sx, acc_s, acc_ll):
    d = X.shape[1]
    K = means.shape[0]
    v = np.empty(Kc)
    pw = np.empty(K)
    for i in range(lo, hi):
        mx = -np.inf
        top = 0
        for k in range(K):
            delta = _mahalanobis(X, i, means, prec_chol, k)
            if wd:
                v[k] = (log_pi[k] - 0.5 * log_det[k] + obs_const[i]
                        - a[i] * math.log1p(0.5 * delta / beta[i]))
                pw[k] = a[i] / (beta[i] + 0.5 * delta)
            else:
                v[k] = log_pi[k] - 0.5 * log_det[k] + obs_const[i] - 0.5 * w[i] * delta
                pw[k] = w[i]
            if v[k] > mx:
                mx = v[k]
                top = k
        if Kc > K:
            v[K] = log_out
            if log_out > mx:
                mx = log_out
                top = K
        if mx == -np.inf:  # every component impossible: spread evenly, zero likelihood
            for k in range(Kc):
                v[k] = 1.0 / Kc
            acc_ll[c] = -np.inf
        else:
            t = 0.0
            for k in range(Kc):
                v[k] = 1.0 if k == top else math.exp(v[k] - mx)  # exp(0): skip it
                t += v[k]
            inv = 1.0 / t
            for k in range(Kc):
                v[k] *= inv
            acc_ll[c] += mx + math.log(t)
        for k in range(Kc):
            acc_n[c, k] += v[k]
        for k in range(K):
            u = v[k] * pw[k]
            acc_sw[c, k] += u
            for r in range(d):
                dr = X[i, r] - means[k, r]
                acc_sx[c, k, r] += u * dr
                if cov_code == 0:
                    ur = u * dr
                    for q in range(r + 1):
                        acc_s[c, k, r, q] += ur * (X[i, q] - means[k, q])
                else:
                    acc_s[c, k, r, r] += u * dr * dr


@njit(cache=True, parallel=True)
def em_pass(X, w, a, beta, wd, obs_const, means, prec_chol, log_det, log_pi, log_out, Kc,
            cov_code, nk, sw, sx, s, min_work):
    """E-step at (means, prec_chol, log_det, log_pi, log_out) fused with the M-step's
    sufficient statistics; returns the total log-likelihood.

    Outputs: nk (Kc,) = sum_i r_ik; sw (K,) = sum_i r_ik pw_ik; sx (K, d) = sum_i r_ik
    pw_ik (x_i - m_k); s (K, d, d) = sum_i r_ik pw_ik (x_i - m_k)(x_i - m_k)^T (lower
    triangle; the diagonal only unless cov_code is 0), all centred on the current means
    m_k (pw = w for FWD, the posterior weight a / (beta + delta / 2) for WD).
    """
    n, d = X.shape
    K = means.shape[0]
    n_chunks = _n_chunks(n, Kc * (d * d + 2 * d + 4), min_work)
    acc_n = np.empty((n_chunks, Kc))
    acc_sw = np.empty((n_chunks, K))
    acc_sx = np.empty((n_chunks, K, d))
    acc_s = np.empty((n_chunks, K, d, d))
    acc_ll = np.empty(n_chunks)
    _fill_zero(acc_n.reshape(-1))
    _fill_zero(acc_sw.reshape(-1))
    _fill_zero(acc_sx.reshape(-1))
    _fill_zero(acc_s.reshape(-1))
    _fill_zero(acc_ll)
    if n_chunks == 1:
        _em_pass_rows(0, n, 0, X, w, a, beta, wd, obs_const, means, prec_chol, log_det,
                      log_pi, log_out, Kc, cov_code, acc_n, acc_sw, acc_sx, acc_s, acc_ll)
    else:
        for c in prange(n_chunks):
            _em_pass_rows(c * n // n_chunks, (c + 1) * n // n_chunks, c, X, w, a, beta, wd,
                          obs_const, means, prec_chol, log_det, log_pi, log_out, Kc, cov_code,
                          acc_n, acc_sw, acc_sx, acc_s, acc_ll)
    _fill_zero(nk)
    _fill_zero(sw)
    _fill_zero(sx.reshape(-1))
    _fill_zero(s.reshape(-1))
    ll = 0.0
    for c in range(n_chunks):
        ll += acc_ll[c]
        for k in range(Kc):
            nk[k] += acc_n[c, k]
        for k in range(K):
            sw[k] += acc_sw[c, k]
            for r in range(d):
                sx[k, r] += acc_sx[c, k, r]
                for q in range(d):
                    s[k, r, q] += acc_s[c, k, r, q]
    return ll


def em_pass_reference(X, w, a, beta, wd, obs_const, means, prec_chol, log_det, log_pi,
                      log_out, Kc, cov_code, nk, sw, sx, s, min_work=0):
    """Plain-numpy reference of :func:`em_pass` (same arguments, same outputs)."""
    n, d = X.shape
    K = means.shape[0]
    log_resp = np.empty((n, Kc))
    resp = np.empty((n, Kc))
    ll = np.empty(n)
    if wd:
        pw = np.empty((n, K))
        estep_wd_reference(X, a, beta, obs_const, means, prec_chol, log_det, log_pi, log_out,
                           log_resp, resp, pw, ll)
    else:
        estep_fwd_reference(X, w, obs_const, means, prec_chol, log_det, log_pi, log_out,
                            log_resp, resp, ll)
        pw = np.broadcast_to(w[:, None], (n, K))
    u = resp[:, :K] * pw
    nk[:] = resp.sum(axis=0)
    sw[:] = u.sum(axis=0)
    for k in range(K):
        diff = X - means[k]
        sx[k] = u[:, k] @ diff
        full = (u[:, k, None] * diff).T @ diff
        s[k] = np.tril(full) if cov_code == COV_FULL else np.diag(np.diag(full))
    return float(ll.sum())


KERNELS = {
    "estep_fwd": estep_fwd,
    "estep_wd": estep_wd,
    "normalise_rows": normalise_rows,
    "moments": moments,
    "scatter": scatter,
    "em_pass": em_pass,
}
REFERENCES = {
    "estep_fwd": estep_fwd_reference,
    "estep_wd": estep_wd_reference,
    "normalise_rows": normalise_rows_reference,
    "moments": moments_reference,
    "scatter": scatter_reference,
    "em_pass": em_pass_reference,
}
