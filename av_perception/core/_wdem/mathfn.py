"""The scalar exp and log of the weighted-data EM passes, maxnum as an intrinsic, and the
array entries that test them against numpy.

exp and log are libm's (math.exp, math.log).  Hand-made vectorisable versions built from
float64 bit casts (a Cody-Waite exp, an fdlibm-style log) were faster for N >= 1000 but
gave wrong results when the kernels inlining them were loaded from numba's on-disk cache
(log-likelihoods off by exact multiples of log 2; correct when compiled in the process):
see docs/development.md."""
from __future__ import annotations

import math

from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic


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


@njit(cache=True, error_model="numpy", inline="always")
def _exp_neg(x):
    """exp(x) for x <= 0 (and -inf); 0 below -708, where exp is subnormal."""
    return 0.0 if x < -708.0 else math.exp(x)


@njit(cache=True, error_model="numpy", inline="always")
def _log_pos(x):
    """log(x) for a positive x."""
    return math.log(x)


@njit(cache=True, error_model="numpy", inline="always")
def _log_and_inverse(t):
    """(log t, 1 / t) for a positive t."""
    return math.log(t), 1.0 / t


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
