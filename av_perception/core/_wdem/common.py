"""Constants and chunking shared by the weighted-data EM kernels: covariance codes,
the fixed parallel chunking, the work from which kernels run in parallel, the M-step's
division guard."""
from __future__ import annotations

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

# Numba's on-disk cache is not used for the prange kernels nor for the kernels that call
# them (em_pass, em_loop): a parallel function loaded from the cache computed wrong
# log-likelihoods (off by multiples of log 2) or crashed, while the same function compiled
# in the process was right (numba 0.68, AVX-512 Zen 4 CPU; test_wdem's
# test_kernels_loaded_from_the_cache_match_the_reference).  They are thin: the row kernels
# they run stay cached, and compiling the rest at warm-up takes seconds.
CACHE_PARALLEL = False
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

