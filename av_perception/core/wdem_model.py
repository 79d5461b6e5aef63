"""Model helpers of the weighted-data EM (:mod:`av_perception.core.wdem`): the Gamma prior
of the WD-EM weights, the Student-t scale factor, parameter counts, the bounding volume of
the outlier component and the validation of inputs and options."""
from __future__ import annotations

import functools
import math

import numpy as np

WD_DEGREES_OF_FREEDOM = 1.0
VARIANTS = ("wd", "fwd")
COVARIANCES = ("full", "diag", "spherical")


def gamma_prior(weights, d: int, dof: float = WD_DEGREES_OF_FREEDOM):
    """Gamma(alpha_i, beta_i) prior (shape, rate) of the WD-EM weights from input weights.

    Parameters
    ----------
    weights : (N,) positive input weights
    d : dimension of the observations
    dof : nu, degrees of freedom of the resulting Student-t marginal

    Returns
    -------
    alpha, beta : (N,) each; alpha_i = nu / 2, beta_i = nu / (2 w_i), so E[w_i] = w_i.
    """
    w = np.asarray(weights, dtype=np.float64)
    alpha = np.full(w.shape, 0.5 * dof)
    return alpha, 0.5 * dof / w


@functools.lru_cache(maxsize=64)
def t_scale_factor(dof: float, d: int) -> float:
    """c(nu, d): the WD-EM scale matrix fitted to Gaussian data of covariance C is c C.

    Fixed point of the M-step Sigma = E[u (x - mu)(x - mu)^T], u = (nu + d) / (nu + delta),
    for x ~ N(mu, C) and Sigma = c C: d = (nu + d) E[r / (nu c + r)], r ~ chi2(d).
    c(1, 1) = 0.37, c(1, 2) = 0.49, c(1, 3) = 0.58, c(4, 1) = 0.69; c -> 1 as nu -> inf.
    """
    dof, d = float(dof), int(d)
    if not (dof > 0 and d >= 1):
        raise ValueError(f"t_scale_factor needs nu > 0 and d >= 1, got nu={dof}, d={d}")

    from scipy import integrate, optimize

    k = 0.5 * d
    log_norm = k * math.log(2.0) + math.lgamma(k)  # chi2(d) pdf: r^(k-1) e^(-r/2) / norm

    def excess(c):
        s = dof * c

        def integrand(r):  # r / (s + r) * chi2.pdf(r, d), in plain floats (fast)
            return math.exp(k * math.log(r) - 0.5 * r - log_norm) / (s + r) if r > 0 else 0.0

        e = integrate.quad(integrand, 0, np.inf)[0]
        return (dof + d) * e - d

    return float(optimize.brentq(excess, 1e-6, 1e3, xtol=1e-12))


def parameters_per_component(d: int, covariance: str) -> int:
    """Free parameters of one Gaussian component (mean + covariance, not its pi)."""
    if covariance == "full":
        return d + d * (d + 1) // 2
    if covariance == "diag":
        return 2 * d
    return d + 1


def bounding_volume(X) -> float:
    """Volume (units of x to the power d) of the axis-aligned bounding box of X (N, d),
    each side at least 1e-6 of the largest side (and of 1e-12)."""
    X = np.asarray(X, dtype=np.float64)
    side = X.max(axis=0) - X.min(axis=0)
    side = np.maximum(side, max(1e-12, 1e-6 * float(side.max())))
    return float(np.prod(side))


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not allowed: must be one of "
                         + ", ".join(repr(c) for c in choices))


def _validate_data(X, weights):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (N, d) of observations, got shape {X.shape}"
                         + ("; for 1-D data pass X[:, None]" if X.ndim == 1 else ""))
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X has shape {X.shape}: need at least one observation and one dimension")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise ValueError(f"X must be real numbers, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        bad = np.flatnonzero(~np.all(np.isfinite(X), axis=1))
        raise ValueError(f"X contains NaN or infinite values (rows {bad[:5].tolist()}"
                         + (", ..." if len(bad) > 5 else "") + ")")
    w = np.asarray(weights)
    if w.shape != (X.shape[0],):
        raise ValueError(f"weights must have shape (N,) = ({X.shape[0]},) to match X {X.shape}, "
                         f"got {w.shape}")
    if not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
        raise ValueError(f"weights must be real numbers, got dtype {w.dtype}")
    w = np.ascontiguousarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or infinite values")
    if np.any(w < 0):
        bad = np.flatnonzero(w < 0)
        raise ValueError(f"weights must be >= 0; negative at indices {bad[:5].tolist()}"
                         + (", ..." if len(bad) > 5 else ""))
    if not np.any(w > 0):
        raise ValueError("all weights are zero: there is nothing to cluster")
    return X, w


def _check_common(variant, covariance, max_iter, tol, reg_covar):
    _check_choice("variant", variant, VARIANTS)
    _check_choice("covariance", covariance, COVARIANCES)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r} must be an integer >= 1")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol={tol!r} must be a finite number >= 0")
    if not (np.isfinite(reg_covar) and reg_covar >= 0):
        raise ValueError(f"reg_covar={reg_covar!r} must be a finite number >= 0")


def _outlier_log_density(outlier_volume, X) -> float | None:
    if outlier_volume is None:
        return None
    if isinstance(outlier_volume, str):
        if outlier_volume != "auto":
            raise ValueError(f"outlier_volume={outlier_volume!r}: must be None, 'auto' or a "
                             "positive number")
        return -math.log(bounding_volume(X))
    v = float(outlier_volume)
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"outlier_volume={outlier_volume!r} must be a positive finite number "
                         "(or None for no outlier component, or 'auto')")
    return -math.log(v)


def _check_n_init(n_init):
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ValueError(f"n_init={n_init!r} must be an integer >= 1 (number of random starts)")


def _check_k(name, k, n):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name}={k!r} must be an integer >= 1")
    if k > n:
        raise ValueError(f"{name}={k} is larger than the number of observations with a positive "
                         f"weight ({n}): cannot fit more clusters than observations")
