"""Weighted-data EM (Gebru et al., TPAMI 2016) and the choice of the number of clusters.

:func:`fit` runs FWD-EM (``variant="fwd"``, fixed weights) or WD-EM (``variant="wd"``,
Gamma-distributed weights, prior :func:`gamma_prior`) for a given K, optionally with a
uniform outlier component; :func:`select` chooses K by MML (Figueiredo & Jain) or BIC;
:class:`WdemConfig` holds the ``wdem.*`` parameters.  A fit keeps the best of ``n_init``
random starts; its result separates the fitted Sigma_k (``scales``: Student-t scales under
WD-EM) from ``covariances``.  Prior, scale factor, validation: :mod:`.wdem_model`.  Model,
initialisation and measured K-selection rates: docs/algorithms.md, "Weighted-data EM".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy.special import gammaln

from . import _wdem as WK
from .config import ConfigError, StageConfig, param
from .wdem_model import (
    COVARIANCES,
    VARIANTS,
    WD_DEGREES_OF_FREEDOM,
    _check_choice,
    _check_common,
    _check_k,
    _check_n_init,
    _outlier_log_density,
    _validate_data,
    bounding_volume,
    gamma_prior,
    parameters_per_component,
    t_scale_factor,
)

__all__ = [
    "WD_DEGREES_OF_FREEDOM",
    "WdemConfig",
    "WdemResult",
    "fit",
    "gamma_prior",
    "select",
    "parameters_per_component",
    "t_scale_factor",
    "bounding_volume",
    "warm_up",
]

INITS = ("kmeans++", "spread", "means", "warm")
RANDOM_INITS = ("kmeans++", "spread")
N_INIT = 10  # random starts of a fit (docs/algorithms.md, "Initialisation")
CRITERIA = ("mml", "bic")
_LOG_2PI = math.log(2.0 * math.pi)
_EPS = WK.EPS


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WdemConfig(StageConfig):
    """Weighted-data EM clustering (docs/algorithms.md)."""

    SECTION: ClassVar[str] = "wdem"

    variant: str = param(
        "wd", "'wd' (random weights, Gamma prior, robust to outliers) or 'fwd' (fixed weights).",
        choices=VARIANTS,
    )
    covariance: str = param(
        "full", "Covariance model of the clusters: 'full', 'diag' or 'spherical'.",
        choices=COVARIANCES,
    )
    criterion: str = param(
        "mml", "How the number of clusters is chosen: 'mml' (component-wise EM with minimum "
        "message length, Figueiredo & Jain) or 'bic' (fit every K, keep the smallest BIC).",
        choices=CRITERIA,
    )
    k_min: int = param(1, "Smallest number of clusters considered.", low=1, high=100)
    k_max: int = param(6, "Largest number of clusters considered.", low=1, high=100)
    max_iter: int = param(
        200, "Maximum EM iterations per fit (per K level for 'mml').", low=1, high=100000)
    tol: float = param(
        1e-6, "EM stops when the relative change of the log-likelihood is at most this.",
        low=0.0, high=0.1,
    )
    reg_covar: float = param(
        1e-6, "Added to the diagonal of every Sigma_k (covariance, or scale for 'wd') after "
        "each M-step (units of x squared).",
        low=0.0, high=1e3,
    )
    outlier: bool = param(True, "Add a uniform outlier component that absorbs clutter.")
    outlier_volume: float = param(
        0.0, "Volume of the outlier component's support (units of x to the power d); "
        "0 = the bounding box of the data.", low=0.0, high=1e12,
    )
    seed: int = param(0, "Seed of the random starts.", low=0, high=2**31 - 1)
    init: str = param(
        "kmeans++", "Random start of a fit: 'kmeans++' (weighted k-means++ seeding + weighted "
        "Lloyd) or 'spread' (Figueiredo & Jain: weight-sampled means, broad covariances).",
        choices=RANDOM_INITS,
    )
    n_init: int = param(
        N_INIT, "Random starts per fit and per K of the 'bic' search (plus one 'spread' "
        "start there; 'mml' does not use it): each runs 20 EM iterations, the most likely one "
        "is run to convergence.  1 = a single start (its result depends on the seed under "
        "clutter).",
        low=1, high=1000,
    )

    def validate(self):
        if self.k_min > self.k_max:
            raise ConfigError(
                f"parameters 'wdem.k_min' = {self.k_min} and 'wdem.k_max' = {self.k_max} are "
                "not allowed: need k_min <= k_max"
            )

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`fit` (and :func:`select`) for this configuration."""
        volume = None
        if self.outlier:
            volume = self.outlier_volume if self.outlier_volume > 0 else "auto"
        return dict(variant=self.variant, covariance=self.covariance, outlier_volume=volume,
                    max_iter=self.max_iter, tol=self.tol, reg_covar=self.reg_covar,
                    seed=self.seed, n_init=self.n_init)

    def fit(self, X, weights, n_components, use_numba: bool = True) -> WdemResult:
        """:func:`fit` with K = ``n_components`` from the configured random starts."""
        return fit(X, weights, n_components, init=self.init, use_numba=use_numba,
                   **self.fit_kwargs())

    def select(self, X, weights, use_numba: bool = True) -> WdemResult:
        """:func:`select` with the configured K range and criterion."""
        return select(X, weights, self.k_min, self.k_max, criterion=self.criterion,
                      use_numba=use_numba, **self.fit_kwargs())


# ---------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------
@dataclass
class WdemResult:
    """A fitted weighted-data mixture.

    Attributes
    ----------
    means : (K, d)
    scales : (K, d, d)
        The fitted Sigma_k: the covariance of a weight-1 observation for FWD-EM, the scale
        matrix of its Student-t marginal for WD-EM (not a covariance: with the default
        nu = 1 it is 0.38 for unit-variance data in 1-D).  Full matrices for every
        covariance model (diagonal ones for 'diag'/'spherical').  Use :attr:`covariances`
        for a spread.
    mixing : (K,)
        pi_k of the Gaussian components (sums to 1 - outlier_mixing).
    outlier_mixing : float or None
        pi_0 of the uniform outlier component; None when there is none.
    outlier_volume : float or None
        V of the outlier component (its density is 1 / V).
    responsibilities : (N, K) or (N, K + 1)
        eta_ik; the last column is the outlier component when there is one.
    posterior_weights : (N, K)
        E[w_ik] (FWD: the input weight w_i in every column).
    log_likelihood : (n_iter + 1,)
        Total log-likelihood of the positive-weight observations after each E-step.
    n_iter : int
        Number of M-steps performed.
    converged : bool
    variant, covariance_type : str
    criterion : str or None
        'mml' or 'bic' when the result comes from :func:`select`.
    criterion_values : dict or None
        K -> message length (mml) or BIC of the best model with K components.
    dof : float or None
        nu of the WD-EM Gamma prior (None for FWD-EM).
    """

    means: np.ndarray
    scales: np.ndarray
    mixing: np.ndarray
    outlier_mixing: float | None
    responsibilities: np.ndarray
    posterior_weights: np.ndarray
    log_likelihood: np.ndarray
    n_iter: int
    converged: bool
    variant: str = "wd"
    covariance_type: str = "full"
    outlier_volume: float | None = None
    criterion: str | None = None
    criterion_values: dict | None = field(default=None)
    dof: float | None = None

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def covariances(self) -> np.ndarray:
        """(K, d, d) covariance of a weight-1 observation of each cluster, finite for every
        prior: FWD-EM Sigma_k; WD-EM Sigma_k / c(nu, d) (:func:`t_scale_factor`), the
        covariance of the cluster if its noise is Gaussian (the Student-t fit is a robust
        M-estimate of it).  The Student-t model's own covariance is
        :attr:`model_covariances`."""
        if self.dof is None:
            return self.scales
        return self.scales / t_scale_factor(self.dof, self.scales.shape[-1])

    @property
    def model_covariances(self) -> np.ndarray:
        """(K, d, d) covariance of a weight-1 observation under the fitted model: Sigma_k
        (FWD-EM), Sigma_k nu / (nu - 2) (WD-EM, nu > 2); infinite for WD-EM with nu <= 2
        (the default nu = 1: use :attr:`covariances`)."""
        if self.dof is None:
            return self.scales
        if self.dof > 2:
            return self.scales * (self.dof / (self.dof - 2.0))
        return np.full(self.scales.shape, np.inf)

    @property
    def labels(self) -> np.ndarray:
        """Most responsible component per observation, -1 for the outlier component, (N,)."""
        lab = np.argmax(self.responsibilities, axis=1)
        lab[lab >= self.n_components] = -1
        return lab


class _Problem:
    """Validated data of one fit: positive-weight observations and per-observation constants."""

    def __init__(self, X, w, variant, covariance, log_vol, reg_covar, use_numba):
        self.X_all = X
        self.w_all = w
        self.keep = w > 0
        self.all_kept = bool(np.all(self.keep))
        self.X = X if self.all_kept else np.ascontiguousarray(X[self.keep])
        self.w = w if self.all_kept else np.ascontiguousarray(w[self.keep])
        self.n, self.d = self.X.shape
        self.variant = variant
        self.covariance = covariance
        self.cov_code = WK.COV_CODES[covariance]
        self.log_vol = log_vol  # -log V or None
        self.reg_covar = float(reg_covar)
        self.use_numba = use_numba
        kern = WK.KERNELS if use_numba else WK.REFERENCES
        self.k_estep_fwd = kern["estep_fwd"]
        self.k_estep_wd = kern["estep_wd"]
        self.k_norm = kern["normalise_rows"]
        self.k_moments = kern["moments"]
        self.k_scatter = kern["scatter"]
        self.k_em_loop = kern["em_loop"]
        d = self.d
        if variant == "fwd":
            self.obs_const = 0.5 * d * (np.log(self.w) - _LOG_2PI)
            self.prior_mean_w = self.w
        else:
            alpha, beta = gamma_prior(self.w, d)
            self.a = alpha + 0.5 * d
            self.beta = np.ascontiguousarray(beta)
            self.obs_const = gammaln(self.a) - gammaln(alpha) - 0.5 * d * np.log(
                2.0 * math.pi * self.beta)
            self.prior_mean_w = alpha / beta
        self.pw_fixed = np.ascontiguousarray(self.w[:, None])

    @property
    def has_outlier(self):
        return self.log_vol is not None


@dataclass
class _Params:
    means: np.ndarray  # (K, d)
    covs: np.ndarray  # (K, d, d)
    mixing: np.ndarray  # (K,)
    outlier: float  # pi_0 (0 when no outlier component)

    def copy(self):
        return _Params(self.means.copy(), self.covs.copy(), self.mixing.copy(), self.outlier)


def _prec_chol(covs):
    """Lower-triangular L^-1 (K, d, d) and log|Sigma| (K,) of covariances (K, d, d)."""
    K, d = covs.shape[0], covs.shape[-1]
    U, log_det = np.empty((K, d, d)), np.empty(K)
    WK.prec_chol_reference(covs, U, log_det)
    return U, log_det


def _estep(prob: _Problem, p: _Params):
    """E-step on the kept observations: (total log-lik, log_resp, resp, post_w or None)."""
    K = p.means.shape[0]
    Kc = K + (1 if prob.has_outlier else 0)
    U, log_det = _prec_chol(p.covs)
    with np.errstate(divide="ignore"):
        log_pi = np.log(p.mixing)
        log_out = (math.log(p.outlier) if p.outlier > 0 else -np.inf) + (prob.log_vol or 0.0)
    n = prob.n
    log_resp = np.empty((n, Kc))
    resp = np.empty((n, Kc))
    ll = np.empty(n)
    means = np.ascontiguousarray(p.means)
    if prob.variant == "fwd":
        prob.k_estep_fwd(prob.X, prob.w, prob.obs_const, means, U, log_det, log_pi, log_out,
                         log_resp, resp, ll, WK.PARALLEL_MIN_WORK)
        post_w = None
    else:
        post_w = np.empty((n, K))
        prob.k_estep_wd(prob.X, prob.a, prob.beta, prob.obs_const, means, U, log_det, log_pi,
                        log_out, log_resp, resp, post_w, ll, WK.PARALLEL_MIN_WORK)
    return float(ll.sum()), log_resp, resp, post_w


def _component_stats(prob: _Problem, resp, pw, K):
    """Means (K, d), covariances (K, d, d) and responsibility sums (Kc,) of an M-step."""
    Kc = resp.shape[1]
    nk = np.empty(Kc)
    sw = np.empty(K)
    sx = np.empty((K, prob.d))
    prob.k_moments(prob.X, resp, pw, nk, sw, sx, WK.PARALLEL_MIN_WORK)
    means = sx / (sw + _EPS)[:, None]
    S = np.empty((K, prob.d, prob.d))
    prob.k_scatter(prob.X, resp, pw, means, prob.cov_code, S, WK.PARALLEL_MIN_WORK)
    covs = S / (nk[:K] + _EPS)[:, None, None]
    covs[:, np.arange(prob.d), np.arange(prob.d)] += prob.reg_covar
    return means, covs, nk


def _global_cov(prob: _Problem):
    w = prob.prior_mean_w
    mu = (w[:, None] * prob.X).sum(0) / w.sum()
    var = (w[:, None] * (prob.X - mu) ** 2).sum(0) / prob.n
    var = np.maximum(var, max(prob.reg_covar, 1e-12 * float(var.max()), 1e-300))
    if prob.covariance == "spherical":
        var = np.full(prob.d, var.mean())
    return np.diag(var)


def _params_from_labels(prob: _Problem, labels, K, means=None) -> _Params:
    """Hard-assignment parameters (one-hot M-step); means kept when given."""
    resp = np.zeros((prob.n, K))
    resp[np.arange(prob.n), labels] = 1.0
    m, covs, nk = _component_stats(prob, resp, np.ascontiguousarray(prob.prior_mean_w[:, None]), K)
    if means is not None:
        m = np.array(means, dtype=np.float64)
        S = np.empty((K, prob.d, prob.d))
        prob.k_scatter(prob.X, resp, np.ascontiguousarray(prob.prior_mean_w[:, None]), m,
                       prob.cov_code, S, WK.PARALLEL_MIN_WORK)
        covs = S / (nk + _EPS)[:, None, None]
        covs[:, np.arange(prob.d), np.arange(prob.d)] += prob.reg_covar
    small = nk < prob.d + 1  # too few points for a covariance: use the data's spread
    if np.any(small):
        covs[small] = _global_cov(prob)
        empty = nk < 0.5
        if means is None and np.any(empty):
            m[empty] = prob.X[np.argmax(prob.w)]
    pi0 = 1.0 / (K + 1) if prob.has_outlier else 0.0
    mixing = (nk + 1e-3) / (nk + 1e-3).sum() * (1.0 - pi0)
    return _Params(m, covs, mixing, pi0)


def _nearest(X, means):
    d2 = ((X[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    return np.argmin(d2, axis=1)


def _kmeans_pp(prob: _Problem, K, rng, n_lloyd=20):
    """Weighted greedy k-means++ seeding (2 + log K candidates per centre, keep the one that
    lowers the weighted potential most, as scikit-learn does) followed by weighted Lloyd
    iterations -> centres (K, d), labels (n,)."""
    X, w = prob.X, prob.prior_mean_w
    n = prob.n
    n_trials = 2 + int(math.log(K))
    centres = np.empty((K, prob.d))
    centres[0] = X[rng.choice(n, p=w / w.sum())]
    d2 = ((X - centres[0]) ** 2).sum(1)
    for j in range(1, K):
        p = w * d2
        tot = p.sum()
        if tot <= 0:
            cand = rng.integers(n, size=n_trials)
        else:
            cand = np.minimum(np.searchsorted(np.cumsum(p), rng.random(n_trials) * tot), n - 1)
        dc = np.minimum(d2[None, :], ((X[None, :, :] - X[cand][:, None, :]) ** 2).sum(-1))
        best = int(np.argmin(dc @ w))
        centres[j] = X[cand[best]]
        d2 = dc[best]
    labels = np.empty(n, dtype=np.int64)
    (WK.lloyd if prob.use_numba else WK.lloyd_reference)(X, w, centres, labels, n_lloyd)
    return centres, labels


def _initial_params(prob: _Problem, K, init, means_init, warm_start, rng) -> _Params:
    d = prob.d
    if init == "kmeans++":
        _, labels = _kmeans_pp(prob, K, rng)
        return _params_from_labels(prob, labels, K)
    if init == "spread":
        return _spread_init(prob, K, rng)
    if init == "means":
        if means_init is None:
            raise ValueError("init='means' needs means_init of shape (K, d)")
        m = np.asarray(means_init, dtype=np.float64)
        if m.shape != (K, d):
            raise ValueError(f"means_init must have shape (n_components, d) = ({K}, {d}), "
                             f"got {m.shape}")
        if not np.all(np.isfinite(m)):
            raise ValueError("means_init contains NaN or infinite values")
        return _params_from_labels(prob, _nearest(prob.X, m), K, means=m)
    # warm start
    if warm_start is None:
        raise ValueError("init='warm' needs warm_start (a WdemResult, or an object with means, "
                         "scales and mixing)")
    try:
        m = np.asarray(warm_start.means, dtype=np.float64)
        c = np.asarray(warm_start.scales, dtype=np.float64)
        pi = np.asarray(warm_start.mixing, dtype=np.float64)
    except AttributeError as exc:
        raise ValueError("warm_start must have attributes means, scales (the Sigma_k of the model, "
                         "not covariances) and mixing") from exc
    if m.shape != (K, d) or c.shape != (K, d, d) or pi.shape != (K,):
        raise ValueError(
            f"warm_start has means {m.shape}, scales {c.shape}, mixing {pi.shape}: expected "
            f"({K}, {d}), ({K}, {d}, {d}), ({K},) for n_components={K} and d={d}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(c)) and np.all(np.isfinite(pi))):
        raise ValueError("warm_start contains NaN or infinite values")
    if np.any(pi < 0) or pi.sum() <= 0:
        raise ValueError("warm_start.mixing must be non-negative with a positive sum")
    c = 0.5 * (c + np.swapaxes(c, 1, 2))
    if np.any(np.linalg.eigvalsh(c)[:, 0] <= 0):
        raise ValueError("warm_start.scales must be positive definite")
    if prob.has_outlier:
        pi0 = getattr(warm_start, "outlier_mixing", None)
        pi0 = float(pi0) if pi0 is not None and 0 < pi0 < 1 else 1.0 / (K + 1)
        pi = pi / pi.sum() * (1.0 - pi0)
    else:
        pi0 = 0.0
        pi = pi / pi.sum()
    return _Params(m.copy(), c.copy(), pi.copy(), pi0)


def _spread_init(prob: _Problem, K, rng) -> _Params:
    """Figueiredo & Jain's initialisation: K distinct observations drawn with probability
    proportional to their (prior mean) weight as means, every covariance 1/10 of the mean
    variance of the data times I, equal proportions."""
    w = prob.prior_mean_w
    idx = rng.choice(prob.n, size=K, replace=False, p=w / w.sum())
    var = float(np.trace(_global_cov(prob))) / prob.d / 10.0
    covs = np.repeat((np.eye(prob.d) * max(var, prob.reg_covar, 1e-300))[None], K, axis=0)
    pi0 = 1.0 / (K + 1) if prob.has_outlier else 0.0
    return _Params(prob.X[idx].copy(), covs, np.full(K, (1.0 - pi0) / K), pi0)


def _run_em(prob: _Problem, p: _Params, max_iter, tol):
    """EM from ``p`` in one kernel call (``em_loop``: per iteration the precision factors,
    one fused E-step + M-step statistics pass and the M-step update, then one more pass
    that stores the E-step), stopping when the relative change of the log-likelihood is
    at most ``tol`` or after ``max_iter`` M-steps; the parameters returned are those whose
    log-likelihood ended the history, with their responsibilities and posterior weights
    (None for FWD)."""
    wd = prob.variant == "wd"
    K = p.means.shape[0]
    resp = np.empty((prob.n, K + (1 if prob.has_outlier else 0)))
    post_w = np.empty((prob.n, K) if wd else (0, K))
    means, covs, mixing, outlier, history, n_iter, converged = prob.k_em_loop(
        prob.X, prob.w, prob.a if wd else prob.w, prob.beta if wd else prob.w, wd,
        prob.obs_const, np.ascontiguousarray(p.means, dtype=np.float64),
        np.ascontiguousarray(p.covs, dtype=np.float64),
        np.ascontiguousarray(p.mixing, dtype=np.float64), float(p.outlier),
        float(prob.log_vol) if prob.has_outlier else 0.0, prob.has_outlier, prob.cov_code,
        prob.reg_covar, int(max_iter), float(tol), resp, post_w, WK.PARALLEL_MIN_WORK)
    p = _Params(means, covs, mixing, float(outlier))
    return (p, resp, post_w if wd else None, np.asarray(history), int(n_iter),
            bool(converged))


def _result(prob: _Problem, p: _Params, resp, post_w, history, n_iter, converged,
            criterion=None, values=None) -> WdemResult:
    K = p.means.shape[0]
    if post_w is None:
        post_w = np.repeat(prob.pw_fixed, K, axis=1)
    if not prob.all_kept:
        n_all = len(prob.w_all)
        full_resp = np.empty((n_all, resp.shape[1]))
        prior = np.concatenate([p.mixing, [p.outlier]]) if prob.has_outlier else p.mixing
        full_resp[:] = prior / prior.sum()
        full_resp[prob.keep] = resp
        full_pw = np.zeros((n_all, K))
        full_pw[prob.keep] = post_w
        resp, post_w = full_resp, full_pw
    return WdemResult(
        means=p.means, scales=p.covs, mixing=p.mixing,
        outlier_mixing=p.outlier if prob.has_outlier else None,
        responsibilities=resp, posterior_weights=post_w, log_likelihood=history,
        n_iter=n_iter, converged=converged, variant=prob.variant,
        covariance_type=prob.covariance,
        outlier_volume=math.exp(-prob.log_vol) if prob.has_outlier else None,
        criterion=criterion, criterion_values=values,
        dof=WD_DEGREES_OF_FREEDOM if prob.variant == "wd" else None)


def _prepare(X, weights, variant, covariance, outlier_volume, max_iter, tol, reg_covar,
             use_numba):
    _check_common(variant, covariance, max_iter, tol, reg_covar)
    X, w = _validate_data(X, weights)
    keep = w > 0
    log_vol = _outlier_log_density(outlier_volume, X[keep])
    return _Problem(X, w, variant, covariance, log_vol, reg_covar, bool(use_numba))


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------
def fit(X, weights, n_components, variant="wd", covariance="full", outlier_volume=None,
        init="kmeans++", means_init=None, warm_start=None, max_iter=200, tol=1e-6,
        reg_covar=1e-6, seed=None, n_init=N_INIT, use_numba=True) -> WdemResult:
    """Fit a weighted-data Gaussian mixture by FWD-EM or WD-EM.

    Parameters
    ----------
    X : (N, d) observations.
    weights : (N,) non-negative observation weights (reliabilities); zero-weight rows are
        left out of the fit.
    n_components : K, number of Gaussian components (<= number of positive weights).
    variant : 'wd' (random weights, Gamma prior, see :func:`gamma_prior`) or 'fwd'.
    covariance : 'full', 'diag' or 'spherical'.
    outlier_volume : None (no outlier component), a volume V > 0 (units of x**d) of a uniform
        outlier component of density 1/V, or 'auto' (bounding box of the data).
    init : 'kmeans++' (weighted seeding + Lloyd), 'spread' (Figueiredo & Jain: K
        weight-sampled observations, broad covariances), 'means' (``means_init``;
        covariances and proportions from the nearest-mean partition) or 'warm'
        (``warm_start``: a WdemResult or any object with means, scales (Sigma_k), mixing
        and optionally outlier_mixing).
    max_iter, tol : at most ``max_iter`` M-steps; stop when |L_t - L_{t-1}| <= tol |L_{t-1}|.
    reg_covar : added to the diagonal of each Sigma_k after every M-step.
    seed : seed of the random starts.
    n_init : random starts ('kmeans++' / 'spread'; 'means' and 'warm' run once): each runs
        SCREEN_ITER (20) EM iterations, the one of largest log-likelihood is continued to
        convergence (its ``log_likelihood`` history includes its screening iterations).
    use_numba : numba kernels (default) or their plain-numpy references.

    Returns
    -------
    WdemResult
    """
    prob = _prepare(X, weights, variant, covariance, outlier_volume, max_iter, tol, reg_covar,
                    use_numba)
    _check_k("n_components", n_components, prob.n)
    _check_choice("init", init, INITS)
    _check_n_init(n_init)
    rng = np.random.default_rng(seed)
    K = int(n_components)
    if init in RANDOM_INITS:
        out = _best_of_starts(prob, K, (init,) * int(n_init), rng, int(max_iter), float(tol))
    else:  # means / warm starts are deterministic: one start
        p = _initial_params(prob, K, init, means_init, warm_start, rng)
        out = _run_em(prob, p, int(max_iter), float(tol))
    p, resp, post_w, history, n_iter, converged = out
    return _result(prob, p, resp, post_w, history, n_iter, converged)


SCREEN_ITER = 20  # EM iterations of every start before the best one is run to convergence


def _best_of_starts(prob: _Problem, K, inits, rng, max_iter, tol):
    """EM from several random starts (one per entry of ``inits``: 'kmeans++' or 'spread'):
    each start runs min(SCREEN_ITER, max_iter) iterations, the one with the largest
    log-likelihood is continued to convergence (a single start runs to convergence at
    once).  Returns the output of :func:`_run_em` of the kept start."""
    if len(inits) == 1:
        return _run_em(prob, _initial_params(prob, K, inits[0], None, None, rng), max_iter,
                       tol)
    best = None
    for init in inits:
        out = _run_em(prob, _initial_params(prob, K, init, None, None, rng),
                      min(SCREEN_ITER, max_iter), tol)
        if best is None or out[3][-1] > best[3][-1]:
            best = out
    p, _resp, _pw, history, n_iter, converged = best
    if converged or n_iter >= max_iter:
        return best
    rest = _run_em(prob, p, max_iter - n_iter, tol)
    return (rest[0], rest[1], rest[2], np.concatenate([history[:-1], rest[3]]),
            n_iter + rest[4], rest[5])


def select(X, weights, k_min, k_max, criterion="mml", variant="wd", covariance="full",
           outlier_volume=None, max_iter=200, tol=1e-6, reg_covar=1e-6, seed=None,
           n_init=N_INIT, use_numba=True) -> WdemResult:
    """Fit a weighted-data mixture and choose its number of components in [k_min, k_max].

    Parameters
    ----------
    X, weights, variant, covariance, outlier_volume, max_iter, tol, reg_covar, seed, use_numba
        As in :func:`fit` (``max_iter`` bounds each K level of the MML search).
    k_min, k_max : range of K, 1 <= k_min <= k_max <= number of positive weights.
    criterion : 'mml' (Figueiredo & Jain component-wise EM with annihilation, from k_max down,
        started from k_max weight-sampled observations with broad covariances, as they do) or
        'bic' (per K the better of the best of n_init k-means++ starts and a spread start;
        BIC = -2 L + p log N, p counting means, covariances and proportions, plus pi_0 with
        an outlier component; a
        fit in which a component carries fewer observations than its parameters counts as
        BIC = inf).
    n_init : random k-means++ starts per K of 'bic' (see :func:`fit`); 'mml' ignores it.

    Returns
    -------
    WdemResult of the chosen K, refined by EM, with ``criterion`` and ``criterion_values``
    (K -> message length or BIC) set.
    """
    prob = _prepare(X, weights, variant, covariance, outlier_volume, max_iter, tol, reg_covar,
                    use_numba)
    _check_choice("criterion", criterion, CRITERIA)
    _check_n_init(n_init)
    n_init = int(n_init)
    _check_k("k_min", k_min, prob.n)
    _check_k("k_max", k_max, prob.n)
    if k_min > k_max:
        raise ValueError(f"k_min={k_min} must be <= k_max={k_max}")
    rng = np.random.default_rng(seed)
    k_min, k_max, max_iter, tol = int(k_min), int(k_max), int(max_iter), float(tol)
    if criterion == "bic":
        return _select_bic(prob, k_min, k_max, max_iter, tol, rng, n_init)
    return _select_mml(prob, k_min, k_max, max_iter, tol, rng)


def _select_bic(prob, k_min, k_max, max_iter, tol, rng, n_init):
    n_p = parameters_per_component(prob.d, prob.covariance)
    values = {}
    best = None
    for K in range(k_min, k_max + 1):
        n_free = K * n_p + (K - 1) + (1 if prob.has_outlier else 0)
        fit_k = None
        # per K the best of n_init k-means++ starts and Figueiredo & Jain's spread start (the
        # better one under heavy tails, where D^2 seeding picks far-away points)
        for inits in (("kmeans++",) * n_init, ("spread",)):
            out = _best_of_starts(prob, K, inits, rng, max_iter, tol)
            # a component carried by fewer observations than it has parameters is a
            # degenerate (collapsing) fit, not evidence for K clusters
            degenerate = K > k_min and np.min(out[1][:, :K].sum(axis=0)) < n_p
            score = math.inf if degenerate else -2.0 * out[3][-1] + n_free * math.log(prob.n)
            if fit_k is None or score < fit_k[0]:
                fit_k = (score, out)
        values[K] = float(fit_k[0])
        if best is None or fit_k[0] < best[0]:
            best = fit_k
    p, resp, post_w, history, n_iter, converged = best[1]
    return _result(prob, p, resp, post_w, history, n_iter, converged, "bic", values)


def _component_column(prob: _Problem, p: _Params, k):
    """log N_k(x_i) (or the Pearson VII log-density) and E[w_ik] of component k, (n,) each."""
    one = _Params(p.means[k:k + 1], p.covs[k:k + 1], np.ones(1), 0.0)
    U, log_det = _prec_chol(one.covs)
    n = prob.n
    lr = np.empty((n, 1))
    r = np.empty((n, 1))
    ll = np.empty(n)
    zero = np.zeros(1)
    means = np.ascontiguousarray(one.means)
    if prob.variant == "fwd":
        prob.k_estep_fwd(prob.X, prob.w, prob.obs_const, means, U, log_det, zero, -np.inf, lr,
                         r, ll, WK.PARALLEL_MIN_WORK)
        return ll, prob.w
    pw = np.empty((n, 1))
    prob.k_estep_wd(prob.X, prob.a, prob.beta, prob.obs_const, means, U, log_det, zero,
                    -np.inf, lr, r, pw, ll, WK.PARALLEL_MIN_WORK)
    return ll, pw[:, 0]


def _select_mml(prob: _Problem, k_min, k_max, max_iter, tol, rng):
    """Component-wise EM with minimum message length (Figueiredo & Jain 2002, CEM^2)."""
    n, n_p = prob.n, parameters_per_component(prob.d, prob.covariance)
    half = 0.5 * n_p
    p = _spread_init(prob, k_max, rng)
    K = k_max
    pi = np.concatenate([p.mixing, [p.outlier]]) if prob.has_outlier else p.mixing.copy()
    log_dens = np.empty((n, K))
    post_w = np.empty((n, K))
    for k in range(K):
        log_dens[:, k], post_w[:, k] = _component_column(prob, p, k)
    log_vol = prob.log_vol if prob.has_outlier else 0.0
    active = list(range(K))
    values: dict[int, float] = {}
    best = None

    def responsibilities():
        cols = log_dens[:, active]
        with np.errstate(divide="ignore"):
            logp = cols + np.log(pi[active])
            if prob.has_outlier:
                logp = np.concatenate([logp, (np.log(pi[K]) + log_vol) * np.ones((n, 1))], 1)
        logp = np.ascontiguousarray(logp)
        lr = np.empty_like(logp)
        r = np.empty_like(logp)
        ll = np.empty(n)
        prob.k_norm(logp, lr, r, ll, WK.PARALLEL_MIN_WORK)
        return r, float(ll.sum())

    def fit_length(out):
        """Message length of an EM fit (output of _run_em) with unpenalised proportions."""
        k_nz = out[0].means.shape[0]
        return (-out[3][-1] + half * float(np.sum(np.log(n * out[0].mixing / 12.0)))
                + 0.5 * k_nz * math.log(n / 12.0) + 0.5 * k_nz * (n_p + 1))

    def message_length(ll):
        k_nz = len(active)
        return (-ll + half * float(np.sum(np.log(n * pi[active] / 12.0)))
                + 0.5 * k_nz * math.log(n / 12.0) + 0.5 * k_nz * (n_p + 1))

    while True:
        prev = None
        for _ in range(max_iter):
            for k in list(active):
                r, _ll = responsibilities()
                sums = r.sum(axis=0)
                j = active.index(k)
                if len(active) > k_min:
                    pi[k] = max(sums[j] - half, 0.0) / n
                else:  # never annihilate below k_min
                    pi[k] = sums[j] / n
                if prob.has_outlier:
                    pi[K] = sums[-1] / n
                total = pi[active].sum() + (pi[K] if prob.has_outlier else 0.0)
                pi /= total
                if pi[k] <= 0.0:
                    active.remove(k)
                    pi[k] = 0.0
                    continue
                col = np.ascontiguousarray(r[:, j:j + 1])
                pw = np.ascontiguousarray(post_w[:, k:k + 1])
                means, covs, nk = _component_stats(prob, col, pw, 1)
                if nk[0] > 1e-10 * n:
                    p.means[k], p.covs[k] = means[0], covs[0]
                    log_dens[:, k], post_w[:, k] = _component_column(prob, p, k)
            _r, ll = responsibilities()
            dl = message_length(ll)
            if prev is not None and abs(prev - dl) <= tol * abs(prev):
                break
            prev = dl
        # evaluate the level on its EM-refined fit (unpenalised proportions, converged
        # likelihood): the CEM^2 fixed point itself favours tiny components, whose
        # (N_p / 2) log(n pi_k / 12) term is small
        k_nz = len(active)
        sel = list(active)
        mix = pi[sel] / (pi[sel].sum() + (pi[K] if prob.has_outlier else 0.0))
        start = _Params(p.means[sel].copy(), p.covs[sel].copy(), mix,
                        float(pi[K]) if prob.has_outlier else 0.0)
        refined = _run_em(prob, start, max_iter, tol)
        dl_ref = fit_length(refined)
        values[k_nz] = min(values.get(k_nz, np.inf), float(dl_ref))
        if best is None or dl_ref < best[0]:
            best = (dl_ref, refined)
        if k_nz <= k_min:
            break
        weakest = active[int(np.argmin(pi[active]))]
        active.remove(weakest)
        pi[weakest] = 0.0
        pi /= pi.sum()
    p, resp, post_w_b, history, n_iter, converged = best[1]
    return _result(prob, p, resp, post_w_b, history, n_iter, converged, "mml", values)


def warm_up() -> None:
    """Compile or load from cache every kernel on a tiny problem (call at node start)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 2))
    w = np.ones(8)
    for variant in VARIANTS:
        fit(X, w, 2, variant=variant, outlier_volume="auto", max_iter=2, seed=0)
    select(X, w, 1, 2, max_iter=2, seed=0)
    for d in (1, 2, 3):  # the scale -> covariance factors (cached)
        t_scale_factor(WD_DEGREES_OF_FREEDOM, d)
