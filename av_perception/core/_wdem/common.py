"""Constants and chunking shared by the weighted-data EM kernels: covariance codes,
the fixed parallel chunking, the work from which kernels run in parallel, the M-step's
division guard."""
from __future__ import annotations

import inspect
import types

import numpy as np
from numba import njit

COV_FULL = 0
COV_DIAG = 1
COV_SPHERICAL = 2
COV_CODES = {"full": COV_FULL, "diag": COV_DIAG, "spherical": COV_SPHERICAL}

N_CHUNKS = 32  # fixed chunking of parallel loops (results do not depend on the thread count)
# Work (rows x per-row operations) from which the kernels run their prange loops; passed to
# every kernel as ``min_work`` and read at call time, so it can be changed without recompiling
# (on a machine whose cores are busy, 2 threads lose: set NUMBA_NUM_THREADS=1 there).
PARALLEL_MIN_WORK = 300_000

# The kernels with prange loops and the kernels that call them (em_pass, em_loop) are
# compiled twice from one source (TwoWayKernel): serial (prange runs as range over the
# same fixed chunks: the same arithmetic), cached on disk, and parallel (threads), compiled
# in the process when a problem first reaches PARALLEL_MIN_WORK and never cached (its
# cached build miscomputed while the kernels inlined a bit-cast exp/log; see mathfn and
# docs/development.md).  The live fusion windows are far below PARALLEL_MIN_WORK: nodes
# start on cached serial code.
EPS = 10.0 * np.finfo(np.float64).eps  # guards the M-step divisions (as wdem._EPS)


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



def rebind(py_func, **callees):
    """A copy of the Python function ``py_func`` whose global names ``callees`` refer to
    other objects (the parallel build of a kernel calls the parallel builds of its
    callees)."""
    globs = dict(py_func.__globals__)
    globs.update(callees)
    f = types.FunctionType(py_func.__code__, globs, py_func.__name__, py_func.__defaults__,
                           py_func.__closure__)
    f.__qualname__ = py_func.__qualname__
    f.__doc__ = py_func.__doc__
    return f


class TwoWayKernel:
    """One kernel compiled twice from the same source: ``serial`` (cached on disk) and
    ``parallel`` (prange on numba's threads; compiled on first use, not cached).  Called
    from Python, it runs ``parallel`` when ``work`` (of the arguments by name) reaches the
    ``min_work`` argument (the kernel's own test for using its chunks), else
    ``serial``: both give the same results.  Numba code calls ``serial`` or ``parallel``
    directly."""

    def __init__(self, py_func, work, callees=None, own_prange=True):
        """``callees``: {global name: TwoWayKernel} the kernel calls (each build calls the
        same build of its callees); ``own_prange``: whether the kernel itself has prange
        loops (a wrapper that only calls parallel callees is not compiled parallel)."""
        self.py_func = py_func
        self.work = work
        callees = callees or {}
        serial = rebind(py_func, **{k: v.serial for k, v in callees.items()})
        parallel = rebind(py_func, **{k: v.parallel for k, v in callees.items()})
        self.serial = njit(cache=True)(serial)
        self.parallel = njit(parallel=own_prange)(parallel)
        self._names = list(inspect.signature(py_func).parameters)
        self.__name__ = py_func.__name__
        self.__doc__ = py_func.__doc__

    def __call__(self, *args):
        named = dict(zip(self._names, args))
        if self.work(named) >= named["min_work"]:
            return self.parallel(*args)
        return self.serial(*args)
