"""Models of the multi-speaker tracker: constant-velocity dynamics, the visual and ITD
observation likelihoods, the anchoring of audio-only tracks and the speaking HMM.

Positions are in the left camera optical frame (x right, y down, z forward, metres); a
track state is (position, velocity) in R^6.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

__all__ = [
    "anchor_reference",
    "anchored_position",
    "cap_covariance",
    "constant_velocity_model",
    "in_view",
    "itd_loglik",
    "itd_model",
    "speaking_emission",
    "speaking_hmm_step",
    "visual_loglik",
]

LOG2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------
# Gaussian helpers
# ---------------------------------------------------------------------------
def logit(p: float) -> float:
    """log(p / (1 - p))."""
    return math.log(p) - math.log1p(-p)


def gauss_logpdf(r: np.ndarray, S: np.ndarray) -> np.ndarray:
    """log N(r; 0, S) for residuals r (..., d) and covariances S (..., d, d)."""
    d = r.shape[-1]
    sol = np.linalg.solve(S, r[..., None])[..., 0]
    _, logdet = np.linalg.slogdet(S)
    return -0.5 * (np.sum(r * sol, axis=-1) + logdet + d * LOG2PI)


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log sum exp of ``a`` along ``axis`` (shifted by the maximum)."""
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def symmetrise(c: np.ndarray) -> np.ndarray:
    """(c + c^T) / 2 over the last two axes."""
    return 0.5 * (c + np.swapaxes(c, -1, -2))


# ---------------------------------------------------------------------------
# Dynamics
# ---------------------------------------------------------------------------
def constant_velocity_model(dt: float, damping, q_axes) -> tuple[np.ndarray, np.ndarray]:
    """Transition and process-noise matrices of the (damped) constant-velocity model:
    dp = v dt, dv = -c v dt + sqrt(q) dW (an integrated Ornstein-Uhlenbeck velocity;
    c = 0 is white-noise acceleration).

    Parameters
    ----------
    dt : float
        Seconds (>= 0).
    damping : array (K,)
        Velocity decay rate per track (1/s); 0 = constant velocity.
    q_axes : array (K, 3)
        White-acceleration spectral density per track and axis (m^2/s^3).

    Returns
    -------
    D : array (K, 6, 6)
        p' = p + f v, v' = e v with e = exp(-c dt), f = (1 - e) / c (f = dt when c = 0).
    Q : array (K, 6, 6)
        Exact covariance of the accumulated noise over dt: with e = exp(-c dt),
        Q_vv = q (1 - e^2) / (2c), Q_pv = q (1 - e)^2 / (2c^2),
        Q_pp = q (dt - 2 (1 - e) / c + (1 - e^2) / (2c)) / c^2; for c -> 0 the
        white-acceleration q dt, q dt^2 / 2, q dt^3 / 3 (used when c dt < 1e-3).
    """
    damping = np.asarray(damping, dtype=float)
    q_axes = np.asarray(q_axes, dtype=float)
    k = len(damping)
    e = np.exp(-damping * dt)
    f = np.where(damping > 1e-12, -np.expm1(-damping * dt) / np.maximum(damping, 1e-12), dt)
    eye = np.eye(3)
    D = np.zeros((k, 6, 6))
    D[:, :3, :3] = eye
    D[:, :3, 3:] = f[:, None, None] * eye
    D[:, 3:, 3:] = e[:, None, None] * eye
    small = damping * dt < 1e-3
    c = np.where(small, 1.0, damping)
    one_e = -np.expm1(-c * dt)  # 1 - e
    one_e2 = -np.expm1(-2.0 * c * dt)  # 1 - e^2
    qvv = np.where(small, dt, one_e2 / (2.0 * c))
    qpv = np.where(small, dt ** 2 / 2.0, one_e ** 2 / (2.0 * c * c))
    qpp = np.where(small, dt ** 3 / 3.0, (dt - 2.0 * one_e / c + one_e2 / (2.0 * c)) / (c * c))
    Q = np.zeros((k, 6, 6))
    qa = q_axes[:, :, None] * eye  # (K, 3, 3) diagonal
    Q[:, :3, :3] = qa * qpp[:, None, None]
    Q[:, :3, 3:] = qa * qpv[:, None, None]
    Q[:, 3:, :3] = qa * qpv[:, None, None]
    Q[:, 3:, 3:] = qa * qvv[:, None, None]
    return D, Q


def cap_covariance(cov: np.ndarray, max_position_std: float, max_speed_std: float) -> None:
    """Clamp the position and velocity eigenvalues of state covariances, in place.

    Parameters
    ----------
    cov : array (K, 6, 6)
        State covariances (m^2, m^2/s, m^2/s^2); changed by congruence (stay PSD).
    max_position_std, max_speed_std : float
        Largest standard deviation in any direction, m and m/s.
    """
    for block, cap in ((slice(0, 3), max_position_std ** 2),
                       (slice(3, 6), max_speed_std ** 2)):
        diag = np.diagonal(cov[:, block, block], axis1=1, axis2=2)
        for k in np.flatnonzero(diag.max(axis=1) > cap):
            lam, vec = np.linalg.eigh(cov[k, block, block])
            if lam[-1] <= cap:
                continue
            s = np.sqrt(np.minimum(cap / np.maximum(lam, 1e-300), 1.0))
            T = np.eye(6)
            T[block, block] = (vec * s) @ vec.T
            cov[k] = symmetrise(T @ cov[k] @ T.T)


def in_view(points: np.ndarray, camera, min_depth: float, max_depth: float) -> np.ndarray:
    """Boolean (N,): points (N, 3) (m) inside the left camera's image and depth range."""
    z = points[:, 2]
    zs = np.where(z > 1e-6, z, 1.0)
    u = camera.cx + camera.fx * points[:, 0] / zs
    v = camera.cy + camera.fy * points[:, 1] / zs
    return ((z >= min_depth) & (z <= max_depth)
            & (u >= -0.5) & (u <= camera.width - 0.5) & (v >= -0.5)
            & (v <= camera.height - 0.5))


# ---------------------------------------------------------------------------
# Anchoring of audio-only tracks: an ITD observes only the angle to the microphone axis
# ---------------------------------------------------------------------------
def anchor_reference(position: np.ndarray, geometry) -> tuple[float, np.ndarray]:
    """Range (m, at least 0.2) from the microphone centre and unit direction around the
    microphone axis of a position (3,); the direction is ``geometry.forward`` on the axis."""
    d = position - geometry.centre
    perp = d - (d @ geometry.axis) * geometry.axis
    n = np.linalg.norm(perp)
    return max(np.linalg.norm(d), 0.2), (perp / n if n > 1e-9 else geometry.forward)


def anchored_position(position: np.ndarray, ref_range: float, ref_direction: np.ndarray,
                      geometry) -> np.ndarray:
    """A position (3,) moved to the reference range and around-axis direction, keeping its
    angle to the microphone axis (its ITD cone)."""
    d = position - geometry.centre
    r = np.linalg.norm(d)
    cos = float(np.clip(d @ geometry.axis / r, -1.0, 1.0)) if r > 1e-9 else 0.0
    sin = math.sqrt(max(1.0 - cos * cos, 0.0))
    return geometry.centre + ref_range * (cos * geometry.axis + sin * ref_direction)


# ---------------------------------------------------------------------------
# Observation models
# ---------------------------------------------------------------------------
def itd_model(geometry, shrink: float, points) -> tuple[np.ndarray, np.ndarray]:
    """Expected ITD of points under the audio model and its gradient.

    Parameters
    ----------
    geometry : MicGeometry or head model
        Gives the direct-path ITD G(p), its Jacobian and the microphone centre.
    shrink : float
        Reverberation shrink b (1/m): observed ITD = (1 - b d) G(p), d = |p - centre|.
    points : array (N, 3)
        m, left camera optical frame.

    Returns
    -------
    itd : array (N,)
        s.
    gradient : array (N, 3)
        s/m.
    """
    p = np.atleast_2d(np.asarray(points, dtype=float))
    G = geometry.itd(p)
    J = geometry.itd_jacobian(p)
    b = shrink
    if b == 0.0:
        return G, J
    rel = p - geometry.centre
    d = np.maximum(np.linalg.norm(rel, axis=1), 1e-9)
    f = 1.0 - b * d
    return f * G, f[:, None] * J - (b * G / d)[:, None] * rel


def visual_loglik(xyz, R, Rinv, position, position_cov, association: str,
                  gate: float) -> np.ndarray:
    """Log-likelihood of visual observations under each track, gated.

    Parameters
    ----------
    xyz : array (M, 3)
        Observations, m.
    R, Rinv : array (M, 3, 3)
        Their weighted covariances Phi / w (m^2) and inverses.
    position, position_cov : array (K, 3), (K, 3, 3)
        Track positions (m) and position covariances (m^2).
    association : str
        'predictive': log N(v; p, R + P); 'mean_field': log N(v; p, R) - tr(R^-1 P) / 2.
    gate : float
        Squared Mahalanobis distance beyond which the log-likelihood is -inf.

    Returns
    -------
    array (M, K)
    """
    m = len(xyz)
    k = len(position)
    r = xyz[:, None, :] - position[None, :, :]
    if association == "predictive":
        S = R[:, None] + position_cov[None]
    else:
        S = np.broadcast_to(R[:, None], (m, k, 3, 3))
    sol = np.linalg.solve(S, r[..., None])[..., 0]
    md = np.sum(r * sol, axis=-1)
    ll = -0.5 * (md + np.linalg.slogdet(S)[1] + 3 * LOG2PI)
    if association == "mean_field":
        ll = ll - 0.5 * np.einsum("mij,kji->mk", Rinv, position_cov)
    return np.where(md <= gate, ll, -np.inf)


def itd_loglik(g, wn, G, J, position_cov, itd_sigma: float, association: str, gate: float,
               reflection_prob: float, direct: bool = False):
    """Log-likelihood of ITDs under each track, gated, with the reflection component.

    A track's ITD is, with probability 1 - rho, Gaussian around its expected ITD G
    (variance itd_sigma^2 / w~, plus J P J^T when predictive) and, with probability rho
    (``reflection_prob``), uniform between 0 and G convolved with the same noise
    (reflections see the talker at a smaller angle to the microphone axis).

    Parameters
    ----------
    g, wn : array (F,)
        ITDs (s) and normalised weights w~ in (0, 1].
    G, J : array (K,), (K, 3) or (F, K), (F, K, 3)
        Expected ITD (s) of each track and its gradient (s/m), see :func:`itd_model`;
        per ITD when the microphones moved between the frames (a turning head).
    position_cov : array (K, 3, 3)
        m^2.
    itd_sigma : float
        s, noise of a fully weighted ITD.
    association : str
        'predictive' or 'mean_field' (as :func:`visual_loglik`).
    gate : float
        Squared normalised residual beyond which the Gaussian part is -inf.
    reflection_prob : float
        rho in [0, 1).
    direct : bool
        Also return the direct-path part log((1 - rho) N(...)).

    Returns
    -------
    ll : array (F, K)
    ll_direct : array (F, K), only with ``direct``
        ll - ll_direct is log of the share of the direct path, the rest is reflection.
    """
    if np.ndim(G) == 2:  # per ITD (F, K)
        jpj = np.einsum("fki,kij,fkj->fk", J, position_cov, J)  # (F, K) s^2
        G = np.asarray(G)
    else:
        jpj = np.einsum("ki,kij,kj->k", J, position_cov, J)[None, :]  # (1, K) s^2
        G = np.asarray(G)[None, :]
    var_obs = itd_sigma ** 2 / wn  # (F,)
    r = g[:, None] - G
    if association == "predictive":
        var = var_obs[:, None] + jpj
        ll = -0.5 * (r * r / var + np.log(var) + LOG2PI)
    else:
        var = var_obs[:, None]
        ll = -0.5 * (r * r / var + np.log(var) + LOG2PI) - 0.5 * jpj / var
    ll = np.where(r * r / var <= gate, ll, -np.inf)
    rho = reflection_prob
    ll_direct = ll
    if rho > 0.0:
        lo = np.minimum(G, 0.0)
        width = np.maximum(np.abs(G), 1e-7)
        s = np.sqrt(var)
        u = (ndtr((g[:, None] - lo) / s) - ndtr((g[:, None] - lo - width) / s)) / width
        ll_direct = math.log1p(-rho) + ll
        with np.errstate(divide="ignore"):
            ll = np.logaddexp(ll_direct, math.log(rho) + np.log(u))
    return (ll, ll_direct) if direct else ll


# ---------------------------------------------------------------------------
# Speaking status: a two-state HMM per track, stepped per audio frame
# ---------------------------------------------------------------------------
def speaking_emission(ll, wn, rate, log_clutter: float, clutter_rate: float,
                      silent_rate: float, share_penalty: float = 1.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood ratio (track k speaks vs is silent) of one audio frame's ITDs, and
    their assignment responsibilities, under the ITD mixture of the tracks.

    An ITD's density is the mixture (c u + sum_j r_j l_j(g)) / (c + sum_j r_j): clutter at
    rate c with density u, track j at rate r_j = 1 when it speaks and ``silent_rate`` eps
    when it is silent.  For track k the other tracks keep their expected rates
    r_j = eps + (1 - eps) q_j (``rate``), and k's rate is 1 (speaks) or eps (silent):
    llr_k = mean_f w~_f [log(A_f^-k + l_fk) - log(A_f^-k + eps l_fk)
    - log(Z^-k + 1) + log(Z^-k + eps)], with A_f^-k = c u + sum_(j != k) r_j l_fj and
    Z^-k = c + sum_(j != k) r_j (the mixture with and without k's component; the ITDs of
    one frame count as one frame's evidence, their mean).

    Parameters
    ----------
    ll : array (F, K)
        log l_fk, the ITD log-likelihoods of the tracks (:func:`itd_loglik`; -inf gated).
    wn : array (F,)
        Normalised weights w~ in [0, 1] (a tempered likelihood).
    rate : array (K,)
        Expected emission rates r_k of the tracks.
    log_clutter : float
        log(c u), clutter rate times density (1/s).
    clutter_rate : float
        c, the clutter rate relative to one talker's.
    silent_rate : float
        eps in (0, 1): the rate of a silent track.
    share_penalty : float
        Weight gamma of the normalisation term log(Z^-k + 1) - log(Z^-k + eps) (1: the
        mixture; < 1 a heuristic for a front-end that reports the louder talker's ITD,
        so that a talker loses fewer frames than its share).

    Returns
    -------
    llr : array (K,)
    beta : array (F, K + 1)
        Responsibilities r_k l_fk / A_f under the expected rates, column 0 = clutter.
    """
    ll = np.asarray(ll, dtype=float)
    f, k = ll.shape
    if f == 0:
        return np.zeros(k), np.zeros((0, k + 1))
    terms, beta = emission_terms(ll, wn, np.broadcast_to(rate, (f, k)), log_clutter,
                                 clutter_rate, silent_rate, share_penalty)
    return terms.mean(axis=0), beta


def emission_terms(ll, wn, rate, log_clutter: float, clutter_rate: float,
                   silent_rate: float, share_penalty: float = 1.0):
    """Per ITD: w~_f times the log-likelihood ratio of :func:`speaking_emission` (F, K),
    with the rates of each ITD's frame ``rate`` (F, K), and the responsibilities
    (F, K + 1)."""
    m = np.maximum(np.max(ll, axis=1, initial=-np.inf), log_clutter)  # (F,)
    L = np.exp(ll - m[:, None])  # (F, K), l / e^m
    C = np.exp(log_clutter - m)  # (F,)
    RL = rate * L
    A = C + RL.sum(axis=1)  # (F,)
    A_k = np.maximum(A[:, None] - RL, C[:, None])  # without k's component
    eps = silent_rate
    t1 = np.log(A_k + L) - np.log(A_k + eps * L)
    Z_k = np.maximum(clutter_rate + rate.sum(axis=1, keepdims=True) - rate, clutter_rate)
    t2 = share_penalty * (np.log(Z_k + 1.0) - np.log(Z_k + eps))
    beta = np.empty((len(ll), ll.shape[1] + 1))
    beta[:, 0] = C / A
    beta[:, 1:] = RL / A[:, None]
    return np.asarray(wn, dtype=float)[:, None] * (t1 - t2), beta


def speaking_hmm_step(prob, llr, entry: float, exit: float) -> np.ndarray:
    """One forward step of the two-state speaking HMM.

    Parameters
    ----------
    prob : array (K,)
        P(speaking) after the previous audio frame.
    llr : array (K,)
        Log-likelihood ratio speaking/silent of the new frame.
    entry, exit : float
        Transition probabilities silent -> speaking and speaking -> silent.

    Returns
    -------
    array (K,): P(speaking) after the new frame.
    """
    prob = np.asarray(prob, dtype=float)
    prior = prob * (1.0 - exit) + (1.0 - prob) * entry
    prior = np.clip(prior, 1e-12, 1.0 - 1e-12)
    log_odds = np.log(prior) - np.log1p(-prior) + np.asarray(llr, dtype=float)
    return 0.5 * (1.0 + np.tanh(0.5 * log_odds))
