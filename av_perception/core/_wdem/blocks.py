"""Block helpers of the fused EM passes: per-block Mahalanobis distances and weighted
sums for one component, page-aligned scratch, shifted exp / log-likelihood of a block's
rows, and the WD blocks computed as powers of the Student-t factor."""
from __future__ import annotations

import numpy as np
from numba import njit

from .mathfn import _exp_neg, _fmax, _log_pos

BLOCK = 128  # rows per block of the fused pass (its scratch stays in L1)
# no "nnan" / "ninf": -inf log-probabilities are meaningful here
_FASTMATH = {"nsz", "arcp", "contract", "reassoc", "afn"}


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _block_mahalanobis(xb, nb, means, prec_chol, k, dx, y, dl):
    """dl[j] = |L_k^-1 (x_j - m_k)|^2 for the nb rows of the block xb (d, B); one fused
    loop over the rows for d <= 3, one loop per matrix entry beyond."""
    d = xb.shape[0]
    if d == 1:
        m0 = means[k, 0]
        p00 = prec_chol[k, 0, 0]
        for j in range(nb):
            y0 = p00 * (xb[0, j] - m0)
            dl[j] = y0 * y0
    elif d == 2:
        m0, m1 = means[k, 0], means[k, 1]
        p00, p10, p11 = prec_chol[k, 0, 0], prec_chol[k, 1, 0], prec_chol[k, 1, 1]
        for j in range(nb):
            e0 = xb[0, j] - m0
            e1 = xb[1, j] - m1
            y0 = p00 * e0
            y1 = p10 * e0 + p11 * e1
            dl[j] = y0 * y0 + y1 * y1
    elif d == 3:
        m0, m1, m2 = means[k, 0], means[k, 1], means[k, 2]
        p00, p10, p11 = prec_chol[k, 0, 0], prec_chol[k, 1, 0], prec_chol[k, 1, 1]
        p20, p21, p22 = prec_chol[k, 2, 0], prec_chol[k, 2, 1], prec_chol[k, 2, 2]
        for j in range(nb):
            e0 = xb[0, j] - m0
            e1 = xb[1, j] - m1
            e2 = xb[2, j] - m2
            y0 = p00 * e0
            y1 = p10 * e0 + p11 * e1
            y2 = p20 * e0 + p21 * e1 + p22 * e2
            dl[j] = y0 * y0 + y1 * y1 + y2 * y2
    else:
        for r in range(d):
            m = means[k, r]
            for j in range(nb):
                dx[r, j] = xb[r, j] - m
        for j in range(nb):
            dl[j] = 0.0
        for r in range(d):
            p0 = prec_chol[k, r, 0]
            for j in range(nb):
                y[j] = p0 * dx[0, j]
            for q in range(1, r + 1):
                pq = prec_chol[k, r, q]
                for j in range(nb):
                    y[j] += pq * dx[q, j]
            for j in range(nb):
                dl[j] += y[j] * y[j]


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _block_stats(xb, nb, means, k, rk, pwk, full, dx, y, c, acc_sw, acc_sx, acc_s):
    """Adds the block's sum_j u_j, sum_j u_j e_j and sum_j u_j e_j e_j^T (lower triangle,
    or its diagonal unless ``full``) to chunk c's accumulators of component k, with
    u_j = rk[j] pwk[j] and e_j = x_j - m_k; fused loops for d <= 3."""
    d = xb.shape[0]
    sw = 0.0
    if d == 1:
        m0 = means[k, 0]
        sx0 = s00 = 0.0
        for j in range(nb):
            u = rk[j] * pwk[j]
            e0 = xb[0, j] - m0
            a0 = u * e0
            sw += u
            sx0 += a0
            s00 += a0 * e0
        acc_sx[c, k, 0] += sx0
        acc_s[c, k, 0, 0] += s00
    elif d == 2:
        m0, m1 = means[k, 0], means[k, 1]
        sx0 = sx1 = s00 = s10 = s11 = 0.0
        for j in range(nb):
            u = rk[j] * pwk[j]
            e0 = xb[0, j] - m0
            e1 = xb[1, j] - m1
            a0 = u * e0
            a1 = u * e1
            sw += u
            sx0 += a0
            sx1 += a1
            s00 += a0 * e0
            s10 += a1 * e0
            s11 += a1 * e1
        acc_sx[c, k, 0] += sx0
        acc_sx[c, k, 1] += sx1
        acc_s[c, k, 0, 0] += s00
        acc_s[c, k, 1, 1] += s11
        if full:
            acc_s[c, k, 1, 0] += s10
    elif d == 3:
        m0, m1, m2 = means[k, 0], means[k, 1], means[k, 2]
        sx0 = sx1 = sx2 = s00 = s10 = s11 = s20 = s21 = s22 = 0.0
        for j in range(nb):
            u = rk[j] * pwk[j]
            e0 = xb[0, j] - m0
            e1 = xb[1, j] - m1
            e2 = xb[2, j] - m2
            a0 = u * e0
            a1 = u * e1
            a2 = u * e2
            sw += u
            sx0 += a0
            sx1 += a1
            sx2 += a2
            s00 += a0 * e0
            s10 += a1 * e0
            s11 += a1 * e1
            s20 += a2 * e0
            s21 += a2 * e1
            s22 += a2 * e2
        acc_sx[c, k, 0] += sx0
        acc_sx[c, k, 1] += sx1
        acc_sx[c, k, 2] += sx2
        acc_s[c, k, 0, 0] += s00
        acc_s[c, k, 1, 1] += s11
        acc_s[c, k, 2, 2] += s22
        if full:
            acc_s[c, k, 1, 0] += s10
            acc_s[c, k, 2, 0] += s20
            acc_s[c, k, 2, 1] += s21
    else:
        for j in range(nb):
            u = rk[j] * pwk[j]
            y[j] = u
            sw += u
        for r in range(d):
            m = means[k, r]
            for j in range(nb):
                dx[r, j] = xb[r, j] - m
        for r in range(d):
            t = 0.0
            for j in range(nb):
                t += y[j] * dx[r, j]
            acc_sx[c, k, r] += t
            for q in range(r + 1 if full else 0):
                t = 0.0
                for j in range(nb):
                    t += y[j] * dx[r, j] * dx[q, j]
                acc_s[c, k, r, q] += t
            if not full:
                t = 0.0
                for j in range(nb):
                    t += y[j] * dx[r, j] * dx[r, j]
                acc_s[c, k, r, r] += t
    acc_sw[c, k] += sw


SCRATCH_PAD = 8  # float64s after each row of a pass's scratch (rows do not start 1 KiB apart)


@njit(cache=True, inline="always")
def _page_aligned(n):
    """n float64s starting on a 4096-byte boundary.  The fused passes lay their scratch
    out in one such buffer (rows of B + SCRATCH_PAD): one allocation per pass, a layout
    that does not depend on the heap, rows on cache-line boundaries."""
    buf = np.empty(n + 511)
    o = ((-buf.ctypes.data) % 4096) // 8
    return buf[o:o + n]


@njit(cache=True, inline="always")
def _take_rows(buf, o, n_rows, S):
    """(rows (n_rows, S) of buf from offset o, the offset after them)."""
    return buf[o:o + n_rows * S].reshape((n_rows, S)), o + n_rows * S


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _exp_shifted_by_row_max(nb, Kc, lp, mx, sh, tot):
    """Log domain: lp (Kc, B) log-probabilities (outlier row included), mx their row
    maxima -> lp = exp(lp - shift), tot the row sums (shift = mx, 0 for a row where every
    component is impossible)."""
    for j in range(nb):
        sh[j] = 0.0 if mx[j] == -np.inf else mx[j]
        tot[j] = 0.0
    for k in range(Kc):
        for j in range(nb):
            e = _exp_neg(lp[k, j] - sh[j])
            lp[k, j] = e
            tot[j] += e


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _row_log_likelihood(nb, mx, tot):
    """sum_j mx_j + log tot_j (shift plus log of the shifted row sum: the rows'
    log-likelihood, with a vectorised log), and tot_j <- 1 / tot_j for the normalisation."""
    ll = 0.0
    for j in range(nb):
        ll += mx[j] + _log_pos(tot[j])
        tot[j] = 1.0 / tot[j]
    return ll


@njit(cache=True, error_model="numpy", inline="always")
def _spread_impossible_rows(nb, Kc, lp, tot):
    """Rows of a block where every component is impossible (tot 0, row maximum -inf):
    spread them evenly over the Kc components (their likelihood stays zero)."""
    n_bad = 0
    for j in range(nb):
        n_bad += 1 if tot[j] == 0.0 else 0
    if n_bad:
        for j in range(nb):
            if tot[j] == 0.0:
                for k in range(Kc):
                    lp[k, j] = 1.0
                tot[j] = Kc


@njit(cache=True, error_model="numpy", inline="always")
def _store_block(b0, nb, K, Kc, wd, lp, pwb, resp, post_w):
    """Rows b0..b0+nb of resp (N, Kc) and, WD, post_w (N, K) from a block's (Kc, B)
    responsibilities and (K, B) posterior weights."""
    for j in range(nb):
        for k in range(Kc):
            resp[b0 + j, k] = lp[k, j]
    if wd:
        for j in range(nb):
            for k in range(K):
                post_w[b0 + j, k] = pwb[k, j]


POWER_MIN_ROW_SUM = 1e-250  # below, a row of a power block loses precision: it goes to logs


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _wd_block_a1(nb, K, Kc, xb, ocb, hb, ab2, mk, pk, cw, c_max, log_out, lp, pwb, mx, tot,
                 gb):
    """The d = 1 WD E-step of a block whose a_i are all 1 (what the Gamma prior of
    :func:`wdem.gamma_prior` gives at d = 1: a = nu / 2 + d / 2 with nu = 1), without a
    log or exp per (observation, component): exp(c_k + obs_const_j - a log t_jk - shift_j)
    = exp(c_k - c_max) exp(c_max + obs_const_j - shift_j) / t_jk.  Leaves what the
    log-domain pass leaves before normalisation: lp (Kc, B) the shifted probabilities
    (outlier row included), tot their row sums, mx the shifts (the row maxima of the
    log-probabilities are not needed: the shift is max(c_max + obs_const_j, log_out), so
    every shifted term is at most 1), pwb the posterior weights.  Returns False (nothing
    usable written) when a row sum of the components falls below POWER_MIN_ROW_SUM (the
    row's probabilities would be subnormal); then the caller takes the log path."""
    for j in range(nb):
        tot[j] = 0.0
    for k in range(K):
        m0, p0, w0 = mk[k], pk[k], cw[k]
        for j in range(nb):
            y0 = p0 * (xb[j] - m0)
            inv = 1.0 / (1.0 + hb[j] * (y0 * y0))  # 1 / t
            e = w0 * inv
            lp[k, j] = e
            tot[j] += e
            pwb[k, j] = ab2[j] * inv  # a / (beta + delta / 2)
    return _finish_power_block(nb, K, Kc, ocb, c_max, log_out, lp, mx, tot, gb)


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", inline="always")
def _finish_power_block(nb, K, Kc, ocb, c_max, log_out, lp, mx, tot, gb):
    """End of a WD block computed as powers (:func:`_wd_block_a1`, the ``power`` blocks of
    :func:`_em_pass_rows`): lp[:K] hold exp(c_k - c_max) t^-a and tot their row sums.
    Returns False when a row sum is below POWER_MIN_ROW_SUM (its probabilities would be
    subnormal; the caller redoes the block in the log domain); else shifts the rows by
    shift_j = max(c_max + obs_const_j, log_out) (every term is then at most 1), adds the
    outlier row and leaves the shifts in mx, as the log-domain path leaves its row maxima."""
    n_small = 0
    for j in range(nb):
        n_small += 1 if tot[j] < POWER_MIN_ROW_SUM else 0
    if n_small:
        return False
    if Kc > K:
        for j in range(nb):
            base = c_max + ocb[j]
            sh = _fmax(base, log_out)
            mx[j] = sh
            gb[j] = _exp_neg(base - sh)
            e = _exp_neg(log_out - sh)
            lp[K, j] = e
            tot[j] = gb[j] * tot[j] + e
        for k in range(K):
            for j in range(nb):
                lp[k, j] *= gb[j]
    else:
        for j in range(nb):
            mx[j] = c_max + ocb[j]
    return True
