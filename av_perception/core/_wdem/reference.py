"""Plain-numpy references of the weighted-data EM kernels: same names plus
``_reference``, same arguments, same outputs (written in place); vectorised numpy,
and ``em_loop_reference`` the same iterations in a Python loop."""
from __future__ import annotations

import math

import numpy as np

from .common import COV_DIAG, COV_FULL, COV_SPHERICAL, EPS


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




def exp_neg_reference(x, out):
    """Plain-numpy reference of :func:`exp_neg`."""
    out[:] = np.exp(x)


def log_pos_reference(x, out):
    """Plain-numpy reference of :func:`log_pos`."""
    out[:] = np.log(x)


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


def prec_chol_reference(covs, U, log_det):
    """Plain-numpy reference of :func:`prec_chol`."""
    d = covs.shape[-1]
    try:
        L = np.linalg.cholesky(covs)
    except np.linalg.LinAlgError:
        # not positive definite (degenerate data and reg_covar = 0): lift the spectrum
        vals, vecs = np.linalg.eigh(covs)
        floor = 1e-12 * np.maximum(vals.max(axis=-1, keepdims=True), 1e-300)
        vals = np.maximum(vals, floor)
        L = np.linalg.cholesky(np.einsum("kij,kj,klj->kil", vecs, vals, vecs))
    U[:] = np.tril(np.linalg.solve(L, np.broadcast_to(np.eye(d), L.shape)))
    log_det[:] = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)


def em_update_reference(means, covs, nk, sw, sx, s, cov_code, reg_covar, n, new_means,
                        new_covs, new_mix):
    """Plain-numpy reference of :func:`em_update`."""
    K, d = means.shape
    m = (sx + sw[:, None] * means) / (sw + EPS)[:, None]
    delta = m - means
    if cov_code == COV_FULL:
        s_c = np.tril(s) + np.swapaxes(np.tril(s, -1), 1, 2)
        S = (s_c - delta[:, :, None] * sx[:, None, :] - sx[:, :, None] * delta[:, None, :]
             + sw[:, None, None] * delta[:, :, None] * delta[:, None, :])
    else:
        v = np.diagonal(s, axis1=1, axis2=2) - 2 * delta * sx + sw[:, None] * delta ** 2
        if cov_code == COV_SPHERICAL:
            v = np.repeat(v.mean(axis=1, keepdims=True), d, axis=1)
        S = np.zeros((K, d, d))
        S[:, np.arange(d), np.arange(d)] = v
    c = S / (nk[:K] + EPS)[:, None, None]
    c[:, np.arange(d), np.arange(d)] += reg_covar
    empty = nk[:K] < 1e-10 * max(n, 1)  # a component that lost every observation
    m[empty] = means[empty]
    c[empty] = covs[empty]
    pis = (nk + EPS) / (n + EPS * len(nk))
    new_means[:] = m
    new_covs[:] = c
    new_mix[:] = pis[:K]
    return float(pis[K]) if len(nk) > K else 0.0


def em_loop_reference(X, w, a, beta, wd, obs_const, means, covs, mixing, outlier, log_vol,
                      has_outlier, cov_code, reg_covar, max_iter, tol, resp, post_w,
                      min_work=0):
    """Plain-numpy reference of :func:`em_loop`: the same iterations in a Python loop over
    the numpy references of prec_chol, em_pass and em_update, then the E-step."""
    K, d = means.shape
    Kc = K + 1 if has_outlier else K
    m, c, pi, pi0 = means.copy(), covs.copy(), mixing.copy(), float(outlier)
    history = []
    n_iter = 0
    converged = False
    for it in range(max_iter + 1):
        U, log_det = np.empty((K, d, d)), np.empty(K)
        prec_chol_reference(c, U, log_det)
        with np.errstate(divide="ignore"):
            log_pi = np.log(pi)
            log_out = (math.log(pi0) if pi0 > 0 else -np.inf) + log_vol
        nk, sw, sx, s = np.empty(Kc), np.empty(K), np.empty((K, d)), np.empty((K, d, d))
        ll = em_pass_reference(X, w, a, beta, wd, obs_const, m, U, log_det, log_pi, log_out,
                               Kc, cov_code, nk, sw, sx, s)
        history.append(ll)
        if it and abs(ll - history[-2]) <= tol * abs(history[-2]):
            converged = True
            break
        if it == max_iter:
            break
        m2, c2, pi2 = np.empty((K, d)), np.empty((K, d, d)), np.empty(K)
        pi0 = em_update_reference(m, c, nk, sw, sx, s, cov_code, reg_covar, X.shape[0], m2,
                                  c2, pi2)
        m, c, pi = m2, c2, pi2
        n_iter += 1
    U, log_det = np.empty((K, d, d)), np.empty(K)
    prec_chol_reference(c, U, log_det)
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
        log_out = (math.log(pi0) if pi0 > 0 else -np.inf) + log_vol
    n = X.shape[0]
    log_resp, ll = np.empty((n, Kc)), np.empty(n)
    if wd:
        estep_wd_reference(X, a, beta, obs_const, m, U, log_det, log_pi, log_out, log_resp,
                           resp, post_w, ll)
    else:
        estep_fwd_reference(X, w, obs_const, m, U, log_det, log_pi, log_out, log_resp, resp,
                            ll)
    return m, c, pi, pi0, np.asarray(history), n_iter, converged


def lloyd_reference(X, w, centres, labels, max_iter):
    """Plain-numpy reference of :func:`lloyd`."""
    K = centres.shape[0]

    def nearest():
        return np.argmin(((X[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)

    lab = nearest()
    moves = 0
    for _ in range(max_iter):
        sums = np.zeros_like(centres)
        np.add.at(sums, lab, w[:, None] * X)
        mass = np.bincount(lab, weights=w, minlength=K)
        ok = mass > 0
        centres[ok] = sums[ok] / mass[ok, None]
        moves += 1
        new = nearest()
        if np.array_equal(new, lab):
            break
        lab = new
    labels[:] = lab
    return moves
