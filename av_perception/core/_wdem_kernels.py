"""Weighted-data EM kernels (numba) and their plain-numpy references.

Every kernel has a reference with the same name plus ``_reference``, the same
arguments and the same outputs (written in place); the public entry points are
:func:`av_perception.core.wdem.fit` and :func:`~av_perception.core.wdem.select`,
which validate inputs before any kernel runs.  Kernels are ``parallel=True``
with ``prange`` over observations (E-steps) or over fixed chunks of
observations (sufficient statistics: each chunk accumulates privately and the
chunks are summed in a fixed order, so results do not depend on the number of
threads).

A fit runs one kernel call, :func:`em_loop`: per iteration :func:`prec_chol`
(Cholesky factors of the K covariances), :func:`em_pass` (E-step fused with the
M-step's sufficient statistics) and :func:`em_update` (the M-step), with the
log-likelihood history and the convergence test, then one storing pass for the
responsibilities; no Python between iterations.  The fused pass works on blocks
of BLOCK rows, component outer and row inner, on contiguous scratch arrays, with
a branch-free exp (:func:`_exp_neg`) and log (:func:`_log_pos`) so that LLVM
vectorises the per-(observation, component) work (numba's SVML is not available
here; math.exp / math.log are scalar libm calls); d = 1 has its own pass
(:func:`_em_pass_rows_d1`, three passes over each block instead of six).  WD-EM blocks
whose a_i are all 1, 3/2 or 2 (the Gamma prior's a = (1 + d) / 2 at d = 1, 2, 3) take
the Student-t factor t^-a as a power, shifted by an upper bound of the row's
log-probabilities, without a log or exp per (observation, component)
(:func:`_finish_power_block`); other a_i, and rows that would underflow, go through the
log domain.  Its reference
(:func:`em_loop_reference`) is the same algorithm in a Python loop over the
vectorised numpy references.

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
from llvmlite import ir as llvm_ir
from numba import njit, prange, types
from numba.extending import intrinsic

COV_FULL = 0
COV_DIAG = 1
COV_SPHERICAL = 2
COV_CODES = {"full": COV_FULL, "diag": COV_DIAG, "spherical": COV_SPHERICAL}

N_CHUNKS = 32  # fixed chunking of parallel loops (results do not depend on the thread count)
# Work (rows x per-row operations) from which the kernels run their prange loops; passed to
# every kernel as ``min_work`` and read at call time, so it can be changed without recompiling.
# Measured on the 2-core development machine, quiet, 2026-12-01, EM of a fit (10 M-steps),
# serial and 2 threads timed in alternating blocks (bench_wdem._paired), FWD / WD speed-up:
# work 7e4 (N = 1e3, K = 10, d = 1) 0.56 / 0.40; 1.9e5 (N = 1e3, K = 10, d = 3) 0.77 / 0.61;
# 2.1e5 (N = 3e3, K = 10, d = 1) 1.05 / 0.78; 2.9e5 (N = 3e3, K = 5, d = 3) 1.05 / 1.01;
# 3.5e5 (N = 1e4, K = 5, d = 1) 1.52 / 1.02; 3.8e5 (N = 1e4, K = 2, d = 3) 1.37 / 1.01;
# 6e5 (N = 1e4, K = 5, d = 2) 1.48 / 1.52; 7e5 (N = 1e4, K = 10, d = 1) 1.55 / 1.40;
# 1.4e6 (N = 1e5, K = 2, d = 1) 1.67 / 1.77.  (The former 5e6 came from medians timed one
# after the other, which this machine's drift of up to 2x within a second distorted.)  On
# a machine whose cores are busy 2 threads lose: set NUMBA_NUM_THREADS=1 there.  The fusion
# windows of the nodes (~150 observations, work ~2e4) are always serial.
PARALLEL_MIN_WORK = 300_000


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
# exp and log that LLVM can vectorise (numba has no SVML here: math.exp / math.log are
# scalar libm calls, which kept the fused pass at one call per observation and component)
# ---------------------------------------------------------------------------
@intrinsic
def _f64_bits(typingctx, x):
    """The bits of a float64 as an int64 (a register bitcast, vectorisable)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, x):
    """The float64 whose bits are an int64 (inverse of :func:`_f64_bits`)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _fmax(typingctx, x, y):
    """max(x, y) of float64s as llvm.maxnum (vmaxpd): ``m[j] = v if v > m[j] else m[j]``
    in a loop becomes a masked store (vmaskmovpd), very slow on AMD cores."""
    def codegen(context, builder, sig, args):
        dbl = llvm_ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.maxnum", [dbl],
                                              llvm_ir.FunctionType(dbl, [dbl, dbl]))
        return builder.call(fn, args)
    return types.float64(types.float64, types.float64), codegen


_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2**52: its bits plus n are the bits of _ROUND + n


@njit(cache=True, error_model="numpy", inline="always")
def _exp_neg(x):
    """exp(x) for x <= 0 (and -inf), relative error < 1e-14 (0 below -708, where exp is
    subnormal, < 3.3e-308): x = n ln 2 + r (Cody-Waite), |r| <= ln 2 / 2, degree-13
    Taylor polynomial of exp(r) times 2**n built in the exponent bits; branch-free, so
    loops over it vectorise.  No step relies on a rounding (n is rounded by floor and is an
    integer before it is added to _ROUND), so it stays exact under the callers' fastmath
    flags (which reach it: numba applies them to inlined callees too)."""
    xc = max(x, -708.0)
    # np.floor keeps n a float: math.floor returns an int64, whose conversions have no
    # AVX2 vector form
    n = np.floor(xc * _LOG2E + 0.5)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    # Estrin's scheme (shorter dependency chain than Horner's)
    r2 = r * r
    r4 = r2 * r2
    q0 = (1.0 + r) + r2 * (1.0 / 2 + r * (1.0 / 6))
    q1 = (1.0 / 24 + r * (1.0 / 120)) + r2 * (1.0 / 720 + r * (1.0 / 5040))
    q2 = (1.0 / 40320 + r * (1.0 / 362880)) + r2 * (1.0 / 3628800 + r * (1.0 / 39916800))
    q3 = 1.0 / 479001600 + r * (1.0 / 6227020800)
    p = (q0 + r4 * q1) + (r4 * r4) * (q2 + r4 * q3)
    # n is an integer in [-1022, 0]: the low bits of _ROUND + n hold it exactly
    y = p * _bits_f64((_f64_bits(n + _ROUND) + 1023) << 52)
    return 0.0 if x < -708.0 else y


@njit(cache=True, error_model="numpy", inline="always")
def _log_pos(x):
    """log(x) for a positive normal float64, absolute error < 3e-16 max(1, |log x|):
    x = 2**e m with m in [sqrt(1/2), sqrt(2)], log m = 2 atanh(s), s = (m - 1) / (m + 1),
    a minimax polynomial in s**2 (:func:`_log_tail`); branch-free."""
    e, m = _log_split(x)
    return _log_tail(e, (m - 1.0) / (m + 1.0))


@njit(cache=True, error_model="numpy", inline="always")
def _log_split(x):
    """(e, m) with x = 2**e m, m in [sqrt(1/2), sqrt(2)] (x positive and normal); e a float."""
    b = _f64_bits(x)
    m = _bits_f64((b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    e = _bits_f64((b >> 52) | 0x4330000000000000) - 4503599627371519.0  # - (2**52 + 1023)
    big = m > 1.4142135623730951
    return (e + 1.0 if big else e), (0.5 * m if big else m)


@njit(cache=True, error_model="numpy", inline="always")
def _log_tail(e, s):
    """e ln 2 + log m from s = (m - 1) / (m + 1): log m = 2 atanh(s) = s (2 + R(s**2)),
    R fdlibm's minimax polynomial Lg1..Lg7 (error < 2**-58.45 for |s| <= 0.1716)."""
    z = s * s
    z2 = z * z
    # Estrin's scheme
    q0 = 2.0 + z * 6.666666666666735130e-01
    q1 = 3.999999999940941908e-01 + z * 2.857142874366239149e-01
    q2 = 2.222219843214978396e-01 + z * 1.818357216161805012e-01
    q3 = 1.531383769920937332e-01 + z * 1.479819860511658591e-01
    q = q0 + z2 * ((q1 + z2 * q2) + (z2 * z2) * q3)
    return e * _LN2 + s * q


@njit(cache=True, error_model="numpy", inline="always")
def _log_and_inverse(t):
    """(log t, 1 / t) for a positive normal t, with one division: log t as
    :func:`_log_pos` (s = (m - 1) / (m + 1)) and q = 1 / (t (m + 1)) gives both
    s = (m - 1) t q and 1 / t = (m + 1) q."""
    e, m = _log_split(t)
    q = 1.0 / (t * (m + 1.0))
    return _log_tail(e, (m - 1.0) * (t * q)), (m + 1.0) * q


@njit(cache=True, error_model="numpy")
def exp_neg(x, out):
    """out[i] = exp(x[i]) for x <= 0 with :func:`_exp_neg` (test and reference entry)."""
    for i in range(x.shape[0]):
        out[i] = _exp_neg(x[i])


@njit(cache=True, error_model="numpy")
def log_pos(x, out):
    """out[i] = log(x[i]) for positive x with :func:`_log_pos` (test and reference entry)."""
    for i in range(x.shape[0]):
        out[i] = _log_pos(x[i])


def exp_neg_reference(x, out):
    """Plain-numpy reference of :func:`exp_neg`."""
    out[:] = np.exp(x)


def log_pos_reference(x, out):
    """Plain-numpy reference of :func:`log_pos`."""
    out[:] = np.log(x)


# ---------------------------------------------------------------------------
# One EM iteration in one pass: E-step at the current parameters and the sufficient
# statistics of the next M-step, without storing the (N, K) responsibilities
# ---------------------------------------------------------------------------
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
    that does not depend on the heap, rows on cache-line boundaries.  (Against the same
    buffer unaligned no difference was resolved: in this machine's A/B, identical code
    differs by up to 10 %.)"""
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


@njit(cache=True)
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


@njit(cache=True, parallel=True)
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


# ---------------------------------------------------------------------------
# The whole EM loop of one fit in one call: per iteration the precision factors of the
# covariances, the fused pass, the M-step update, the log-likelihood history and the
# convergence test, without returning to Python
# ---------------------------------------------------------------------------
EPS = 10.0 * np.finfo(np.float64).eps  # guards the M-step divisions (as wdem._EPS)


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


@njit(cache=True)
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


KERNELS = {
    "estep_fwd": estep_fwd,
    "estep_wd": estep_wd,
    "normalise_rows": normalise_rows,
    "moments": moments,
    "scatter": scatter,
    "em_pass": em_pass,
    "exp_neg": exp_neg,
    "log_pos": log_pos,
    "prec_chol": prec_chol,
    "em_update": em_update,
    "em_loop": em_loop,
}
REFERENCES = {
    "estep_fwd": estep_fwd_reference,
    "estep_wd": estep_wd_reference,
    "normalise_rows": normalise_rows_reference,
    "moments": moments_reference,
    "scatter": scatter_reference,
    "em_pass": em_pass_reference,
    "exp_neg": exp_neg_reference,
    "log_pos": log_pos_reference,
    "prec_chol": prec_chol_reference,
    "em_update": em_update_reference,
    "em_loop": em_loop_reference,
}
