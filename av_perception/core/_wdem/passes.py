"""The fused EM pass: one E-step at the current parameters together with the sufficient
statistics of the next M-step, without storing the (N, K) responsibilities; blocks of
rows, component outer and row inner, so that the per-(observation, component) work
vectorises; d = 1 has its own pass."""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .blocks import (
    _FASTMATH,
    BLOCK,
    SCRATCH_PAD,
    _block_mahalanobis,
    _block_stats,
    _exp_shifted_by_row_max,
    _finish_power_block,
    _page_aligned,
    _row_log_likelihood,
    _spread_impossible_rows,
    _store_block,
    _take_rows,
    _wd_block_a1,
)
from .common import TwoWayKernel, _fill_zero, _n_chunks
from .mathfn import _fmax, _log_and_inverse


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _em_pass_rows(lo, hi, c, X, w, a, beta, wd, obs_const, means, prec_chol, log_det, log_pi,
                  log_out, Kc, cov_code, acc_n, acc_sw, acc_sx, acc_s, acc_ll, store, resp,
                  post_w):
    """Rows lo..hi of :func:`em_pass`, in blocks of BLOCK rows: component outer, row
    inner, on contiguous per-block scratch arrays, so that the Mahalanobis distances,
    the exp / log and the weighted sums vectorise; the chunk's accumulators are updated
    once per block.  With ``store`` the responsibilities (and, WD, the posterior
    weights) are also written to resp (N, Kc) and post_w (N, K)."""
    d = X.shape[1]
    K = means.shape[0]
    B = BLOCK
    full = cov_code == 0
    S = B + SCRATCH_PAD
    buf = _page_aligned((2 * d + Kc + K + 10) * S)
    xb, o = _take_rows(buf, 0, d, S)  # the block's observations, transposed
    dx, o = _take_rows(buf, o, d, S)  # scratch of the d > 3 loops
    lp, o = _take_rows(buf, o, Kc, S)  # log-probabilities, then responsibilities
    pwb, o = _take_rows(buf, o, K, S)  # posterior weights (WD)
    rows, o = _take_rows(buf, o, 10, S)
    gb = rows[9]  # exp(c_max + obs_const - shift) (power blocks)
    y = rows[0]
    dl = rows[1]  # Mahalanobis distances to one component
    wb = rows[2]  # fixed weights (FWD), 1 / (2 beta) (WD)
    ocb = rows[3]  # obs_const
    ab = rows[4]  # a (WD)
    ab2 = rows[5]  # a / beta (WD)
    mx = rows[6]
    sh = rows[7]
    tot = rows[8]
    cw = np.empty(K)  # exp(c_k - c_max) (power blocks)
    c_max = -np.inf
    for k in range(K):
        c_max = max(c_max, log_pi[k] - 0.5 * log_det[k])
    for k in range(K):
        cw[k] = math.exp(log_pi[k] - 0.5 * log_det[k] - c_max) if c_max > -np.inf else 0.0
    ll = 0.0
    for b0 in range(lo, hi, B):
        nb = min(B, hi - b0)
        for j in range(nb):
            for r in range(d):
                xb[r, j] = X[b0 + j, r]
            ocb[j] = obs_const[b0 + j]
        # WD blocks whose a_i are all 1, 3/2 or 2 (the prior's a = (1 + d) / 2 at d = 1, 2,
        # 3) take t^-a as a power, without a log or exp per (observation, component)
        a_code = 0
        if wd:
            n_other = 0
            for j in range(nb):
                wb[j] = 0.5 / beta[b0 + j]
                ab[j] = a[b0 + j]
                ab2[j] = 2.0 * ab[j] * wb[j]  # a / beta
                n_other += 0 if ab[j] == ab[0] else 1
            if n_other == 0 and c_max > -np.inf and (ab[0] == 1.0 or ab[0] == 1.5
                                                     or ab[0] == 2.0):
                a_code = int(2.0 * ab[0])
        else:
            for j in range(nb):
                wb[j] = w[b0 + j]
        for attempt in range(2):  # a power block whose rows underflow is redone with logs
            power = a_code > 0 and attempt == 0
            if power:
                for j in range(nb):
                    tot[j] = 0.0
            for k in range(K):
                ck = log_pi[k] - 0.5 * log_det[k]
                w0 = cw[k]
                _block_mahalanobis(xb, nb, means, prec_chol, k, dx, y, dl)
                if power and a_code == 4:
                    for j in range(nb):
                        inv = 1.0 / (1.0 + wb[j] * dl[j])  # 1 / t, t = 1 + delta / (2 beta)
                        e = w0 * (inv * inv)
                        lp[k, j] = e
                        tot[j] += e
                        pwb[k, j] = ab2[j] * inv  # a / (beta + delta / 2)
                elif power and a_code == 3:
                    for j in range(nb):
                        inv = 1.0 / (1.0 + wb[j] * dl[j])
                        e = w0 * (inv * math.sqrt(inv))
                        lp[k, j] = e
                        tot[j] += e
                        pwb[k, j] = ab2[j] * inv
                elif power:
                    for j in range(nb):
                        inv = 1.0 / (1.0 + wb[j] * dl[j])
                        e = w0 * inv
                        lp[k, j] = e
                        tot[j] += e
                        pwb[k, j] = ab2[j] * inv
                elif wd:
                    for j in range(nb):
                        # log1p(delta / (2 beta)) as log(t)
                        lg, inv = _log_and_inverse(1.0 + wb[j] * dl[j])
                        lp[k, j] = ck + ocb[j] - ab[j] * lg
                        pwb[k, j] = ab2[j] * inv
                else:
                    for j in range(nb):
                        lp[k, j] = ck + ocb[j] - 0.5 * wb[j] * dl[j]
            if not power or _finish_power_block(nb, K, Kc, ocb, c_max, log_out, lp, mx, tot,
                                                gb):
                break
        if not power:
            if Kc > K:
                for j in range(nb):
                    lp[K, j] = log_out
            for j in range(nb):
                mx[j] = lp[0, j]
            for k in range(1, Kc):
                for j in range(nb):
                    mx[j] = _fmax(mx[j], lp[k, j])
            _exp_shifted_by_row_max(nb, Kc, lp, mx, sh, tot)
        _spread_impossible_rows(nb, Kc, lp, tot)
        ll += _row_log_likelihood(nb, mx, tot)
        for k in range(Kc):
            t = 0.0
            for j in range(nb):
                e = lp[k, j] * tot[j]
                lp[k, j] = e
                t += e
            acc_n[c, k] += t
        if store:
            _store_block(b0, nb, K, Kc, wd, lp, pwb, resp, post_w)
        for k in range(K):
            _block_stats(xb, nb, means, k, lp[k], pwb[k] if wd else wb, full, dx, y, c,
                         acc_sw, acc_sx, acc_s)
    acc_ll[c] += ll


BLOCK_D1 = 256  # rows per block of the d = 1 pass


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def _em_pass_rows_d1(lo, hi, c, X, w, a, beta, wd, obs_const, means, prec_chol, log_det,
                     log_pi, log_out, Kc, acc_n, acc_sw, acc_sx, acc_s, acc_ll, store, resp,
                     post_w):
    """:func:`_em_pass_rows` for d = 1, with the per-block work in three passes over the
    (Kc, B) scratch instead of six: log-probabilities with the running row maximum
    (x_j - m_k and the Mahalanobis distance computed on the fly), then exp and the row
    sums, then normalisation fused with the weighted sums of the M-step (WD blocks whose
    a_i are all 1: the first two in one, :func:`_wd_block_a1`)."""
    K = means.shape[0]
    B = BLOCK_D1
    S = B + SCRATCH_PAD
    buf = _page_aligned((Kc + K + 9) * S)
    lp, o = _take_rows(buf, 0, Kc, S)  # log-probabilities, then exp(lp - shift)
    pwb, o = _take_rows(buf, o, K, S)  # posterior weights (WD)
    rows, o = _take_rows(buf, o, 9, S)
    xb = rows[0]
    ocb = rows[1]  # obs_const
    hb = rows[2]  # w / 2 (FWD), 1 / (2 beta) (WD)
    ab = rows[3]  # a (WD)
    ab2 = rows[4]  # a / beta (WD)
    mx = rows[5]
    sh = rows[6]
    tot = rows[7]
    gb = rows[8]  # exp(max_k c_k + obs_const - shift) (WD with a = 1)
    mk = np.empty(K)
    pk = np.empty(K)
    ck = np.empty(K)
    cw = np.empty(K)  # exp(c_k - max_k c_k) (WD with a = 1)
    for k in range(K):
        mk[k] = means[k, 0]
        pk[k] = prec_chol[k, 0, 0]
        ck[k] = log_pi[k] - 0.5 * log_det[k]
    c_max = -np.inf
    for k in range(K):
        c_max = max(c_max, ck[k])
    for k in range(K):
        cw[k] = math.exp(ck[k] - c_max) if c_max > -np.inf else 0.0
    m_init = log_out if Kc > K else -np.inf
    ll = 0.0
    for b0 in range(lo, hi, B):
        nb = min(B, hi - b0)
        for j in range(nb):
            xb[j] = X[b0 + j, 0]
            ocb[j] = obs_const[b0 + j]
            mx[j] = m_init
        power = False
        if wd:
            n_other = 0
            for j in range(nb):
                hb[j] = 0.5 / beta[b0 + j]
                ab[j] = a[b0 + j]
                ab2[j] = 2.0 * ab[j] * hb[j]  # a / beta
                n_other += 0 if ab[j] == 1.0 else 1
            if n_other == 0 and c_max > -np.inf:
                power = _wd_block_a1(nb, K, Kc, xb, ocb, hb, ab2, mk, pk, cw, c_max, log_out,
                                     lp, pwb, mx, tot, gb)
        if wd and not power:
            for k in range(K):
                m0, p0, c0 = mk[k], pk[k], ck[k]
                for j in range(nb):
                    y0 = p0 * (xb[j] - m0)
                    lg, inv = _log_and_inverse(1.0 + hb[j] * (y0 * y0))  # t = 1 + delta / (2 beta)
                    v = c0 + ocb[j] - ab[j] * lg
                    lp[k, j] = v
                    mx[j] = _fmax(mx[j], v)
                    pwb[k, j] = ab2[j] * inv  # a / (beta + delta / 2)
        elif not wd:
            for j in range(nb):
                hb[j] = 0.5 * w[b0 + j]
            for k in range(K):
                m0, p0, c0 = mk[k], pk[k], ck[k]
                for j in range(nb):
                    y0 = p0 * (xb[j] - m0)
                    v = c0 + ocb[j] - hb[j] * (y0 * y0)
                    lp[k, j] = v
                    mx[j] = _fmax(mx[j], v)
        if not power:
            if Kc > K:  # (mx started at log_out)
                for j in range(nb):
                    lp[K, j] = log_out
            _exp_shifted_by_row_max(nb, Kc, lp, mx, sh, tot)
        _spread_impossible_rows(nb, Kc, lp, tot)
        ll += _row_log_likelihood(nb, mx, tot)
        for k in range(K):
            m0 = mk[k]
            sn = sw = sx0 = s00 = 0.0
            if wd:
                for j in range(nb):
                    r = lp[k, j] * tot[j]
                    lp[k, j] = r
                    u = r * pwb[k, j]
                    e0 = xb[j] - m0
                    a0 = u * e0
                    sn += r
                    sw += u
                    sx0 += a0
                    s00 += a0 * e0
            else:
                for j in range(nb):
                    r = lp[k, j] * tot[j]
                    lp[k, j] = r
                    u = r * (2.0 * hb[j])
                    e0 = xb[j] - m0
                    a0 = u * e0
                    sn += r
                    sw += u
                    sx0 += a0
                    s00 += a0 * e0
            acc_n[c, k] += sn
            acc_sw[c, k] += sw
            acc_sx[c, k, 0] += sx0
            acc_s[c, k, 0, 0] += s00
        if Kc > K:
            sn = 0.0
            for j in range(nb):
                r = lp[K, j] * tot[j]
                lp[K, j] = r
                sn += r
            acc_n[c, K] += sn
        if store:
            _store_block(b0, nb, K, Kc, wd, lp, pwb, resp, post_w)
    acc_ll[c] += ll


def em_pass(X, w, a, beta, wd, obs_const, means, prec_chol, log_det, log_pi, log_out, Kc,
            cov_code, nk, sw, sx, s, min_work):
    """E-step at (means, prec_chol, log_det, log_pi, log_out) fused with the M-step's
    sufficient statistics; returns the total log-likelihood.

    Outputs: nk (Kc,) = sum_i r_ik; sw (K,) = sum_i r_ik pw_ik; sx (K, d) = sum_i r_ik
    pw_ik (x_i - m_k); s (K, d, d) = sum_i r_ik pw_ik (x_i - m_k)(x_i - m_k)^T (lower
    triangle; the diagonal only unless cov_code is 0), all centred on the current means
    m_k (pw = w for FWD, the posterior weight a / (beta + delta / 2) for WD).
    """
    none = np.empty((0, 0))
    return _em_pass(X, w, a, beta, wd, obs_const, means, prec_chol, log_det, log_pi, log_out,
                    Kc, cov_code, nk, sw, sx, s, False, none, none, min_work)


def _em_pass(X, w, a, beta, wd, obs_const, means, prec_chol, log_det, log_pi, log_out, Kc,
             cov_code, nk, sw, sx, s, store, resp, post_w, min_work):
    """:func:`em_pass`, and with ``store`` the responsibilities resp (N, Kc) and (WD) the
    posterior weights post_w (N, K) of the E-step."""
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
    if d == 1 and n_chunks == 1:
        _em_pass_rows_d1(0, n, 0, X, w, a, beta, wd, obs_const, means, prec_chol, log_det,
                         log_pi, log_out, Kc, acc_n, acc_sw, acc_sx, acc_s, acc_ll, store,
                         resp, post_w)
    elif d == 1:
        for c in prange(n_chunks):
            _em_pass_rows_d1(c * n // n_chunks, (c + 1) * n // n_chunks, c, X, w, a, beta, wd,
                             obs_const, means, prec_chol, log_det, log_pi, log_out, Kc, acc_n,
                             acc_sw, acc_sx, acc_s, acc_ll, store, resp, post_w)
    elif n_chunks == 1:
        _em_pass_rows(0, n, 0, X, w, a, beta, wd, obs_const, means, prec_chol, log_det,
                      log_pi, log_out, Kc, cov_code, acc_n, acc_sw, acc_sx, acc_s, acc_ll,
                      store, resp, post_w)
    else:
        for c in prange(n_chunks):
            _em_pass_rows(c * n // n_chunks, (c + 1) * n // n_chunks, c, X, w, a, beta, wd,
                          obs_const, means, prec_chol, log_det, log_pi, log_out, Kc, cov_code,
                          acc_n, acc_sw, acc_sx, acc_s, acc_ll, store, resp, post_w)
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


def _pass_work(a):
    d = a["X"].shape[1]
    return a["X"].shape[0] * a["Kc"] * (d * d + 2 * d + 4)


_em_pass = TwoWayKernel(_em_pass, _pass_work)
em_pass = TwoWayKernel(em_pass, _pass_work, callees={"_em_pass": _em_pass}, own_prange=False)
