"""Weighted-data EM kernels (numba) and their plain-numpy references, behind
:mod:`av_perception.core.wdem` (which validates inputs before any kernel runs).
``KERNELS`` and ``REFERENCES`` map each kernel's name to the numba kernel and to its
reference (same arguments, same outputs written in place).  numba's cache does not
see edits to another module: after changing a callee here, clear ``__pycache__``."""
from __future__ import annotations

from .common import (
    COV_CODES,
    COV_DIAG,
    COV_FULL,
    COV_SPHERICAL,
    EPS,
    N_CHUNKS,
    PARALLEL_MIN_WORK,
)
from .mathfn import exp_neg, log_pos
from .passes import _em_pass, em_pass
from .reference import (
    em_loop_reference,
    em_pass_reference,
    em_update_reference,
    estep_fwd_reference,
    estep_wd_reference,
    exp_neg_reference,
    lloyd_reference,
    log_pos_reference,
    moments_reference,
    normalise_rows_reference,
    prec_chol_reference,
    scatter_reference,
)
from .seeding import lloyd
from .steps import estep_fwd, estep_wd, moments, normalise_rows, scatter
from .updates import em_loop, em_update, prec_chol

__all__ = [
    "COV_CODES", "COV_DIAG", "COV_FULL", "COV_SPHERICAL", "EPS", "N_CHUNKS",
    "PARALLEL_MIN_WORK", "KERNELS", "REFERENCES", "_em_pass",
    "em_loop", "em_pass", "em_update", "estep_fwd", "estep_wd", "exp_neg", "lloyd", "log_pos",
    "moments", "normalise_rows", "prec_chol", "scatter",
    "em_loop_reference", "em_pass_reference", "em_update_reference", "estep_fwd_reference",
    "estep_wd_reference", "exp_neg_reference", "lloyd_reference", "log_pos_reference",
    "moments_reference",
    "normalise_rows_reference", "prec_chol_reference", "scatter_reference",
]

# Arguments (N observations, d dimensions, K Gaussian components, Kc = K or K + 1 when a
# uniform outlier component is appended as the last column):
#
# X          : float64 (N, d)     observations
# w          : float64 (N,)       fixed weights (FWD-EM), > 0
# a, beta    : float64 (N,)       WD-EM posterior shape a_i = alpha_i + d/2 and prior rate beta_i
# obs_const  : float64 (N,)       per-observation constant of the log-density
#                                 FWD: (d/2) log w_i - (d/2) log 2 pi
#                                 WD:  lnG(a_i) - lnG(alpha_i) - (d/2) log(2 pi beta_i)
# means      : float64 (K, d)
# prec_chol  : float64 (K, d, d)  lower-triangular L_k^-1 with Sigma_k = L_k L_k^T
#                                 (only the lower triangle is read)
# log_det    : float64 (K,)       log |Sigma_k|
# log_pi     : float64 (K,)       log mixing proportions of the Gaussian components
# log_out    : float              log pi_0 - log V of the outlier component (ignored when Kc == K)
# log_resp   : float64 (N, Kc)    out: normalised log-responsibilities
# resp       : float64 (N, Kc)    out: responsibilities exp(log_resp)
# post_w     : float64 (N, K)     out (WD): posterior weights
#                                 E[w_ik] = a_i / (beta_i + delta_ik / 2)
# ll         : float64 (N,)       out: log p(x_i), the row log-normaliser
# pw         : float64 (N, K) or (N, 1)  weights of the M-step (E[w_ik], or w_i broadcast over k)
# cov_code   : int                0 full, 1 diagonal, 2 spherical
# labels     : int64 (N,)         out (lloyd): index of the nearest centre
# min_work   : int                run the prange loop from this much work on (see
#                                 PARALLEL_MIN_WORK; the references ignore it)
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
    "lloyd": lloyd,
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
    "lloyd": lloyd_reference,
}
