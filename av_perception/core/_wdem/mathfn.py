"""exp and log that LLVM can vectorise (numba has no SVML here: math.exp / math.log are
scalar libm calls), float64 bit casts and maxnum as intrinsics, and the array entries
that test them against numpy."""
from __future__ import annotations

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic


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
