"""Audio-visual clustering in 3D: a conjugate weighted-data mixture over sliding windows.

docs/algorithms.md, "Audio-visual clustering".  Cluster k is a 3D position S_k (left
camera optical frame, metres) seen by two modalities:

* visual observations x_j (3D points, weight w_j, optional 3x3 covariance C_j):
  x_j ~ N(S_k, (Sigma_k + C_j) / w_j), Sigma_k the cluster's spread (learned);
* audio observations tau_i (ITDs in seconds, weight w_i):
  tau_i ~ N(G(S_k), sigma_k^2 / w_i), G the exact near-field ITD of
  :class:`~av_perception.core.geometry.MicGeometry`;

each modality with its own proportions and its own uniform outlier class
(visual: 1 / ``visual_outlier_volume``; audio: uniform over the physical ITD
range plus a margin).  The E-steps are those of FWD- or WD-EM
(:mod:`av_perception.core.wdem`, same Gamma prior); the M-step moves S_k by a
few Gauss-Newton steps on

    sum_j eta_jk u_jk |x_j - S|^2_{(Sigma_k + C_j)^-1}
    + sum_i eta_ik u_ik (tau_i - G(S))^2 / sigma_k^2 + |S - S_k^0|^2 / p^2

(u = posterior weights, S_k^0 the position at the start of the window, p =
``position_prior_std`` only conditions directions no observation constrains),
with step halving so that the objective never increases (generalised EM).
Sigma_k follows the measurement-error EM update (x_j = y_j + e_j,
y_j ~ N(S_k, Sigma_k / w_j), e_j ~ N(0, C_j / w_j)), sigma_k^2 the weighted residual.
Both spreads are clipped to configured ranges (``visual_std_min/max``,
``audio_std_min/max``): without an upper bound a silent cluster widens until it
absorbs the ITDs of another speaker, or one cluster swallows two people.
G is the ITD of the binaural model (:mod:`av_perception.core.head`: free field
= :class:`MicGeometry`, spherical head or measured table); the numba kernel of the
window EM evaluates G and its gradient with
:func:`~av_perception.core.head.model_itd_jac` (exact near-field formula in free
field, the model's (lat, pol) table otherwise), the numpy reference calls the
model's ``itd``/``itd_jacobian`` (same arithmetic; the tests compare the two).

A cluster without visual support but with audio mass is a speaker out of view:
it is kept as an ITD (its parameter is tau_k, not S_k) and reported on the ITD
cone at ``default_depth`` (:meth:`MicGeometry.point_from_itd`).

Windows: :class:`AVClusterer` keeps the observations of the last
``window_length`` seconds and clusters them every ``hop_length`` seconds,
warm-started from the previous window.  Per window: EM from the previous
clusters; clusters that lost their support die (or become audio-only); near
duplicates merge; unexplained observations give births (visual: a weighted
density test, then :func:`wdem.select` on the unexplained points; audio: the
densest ITD interval, against the clutter level); EM again when anything
changed.  Measured (bench/bench_wdem.py): a warm-started 1 s window (45 points,
100 ITDs) takes ~1.8 ms; a window with births ~40 ms (the MML search).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numba import njit
from scipy.special import gammaln

from . import wdem
from .config import ConfigError, MicArrayConfig, StageConfig, param
from .geometry import MicGeometry
from .head import make_head_model, model_itd_jac

__all__ = [
    "AVClusteringConfig",
    "AVEvent",
    "AVWindowResult",
    "AVClusterer",
    "cluster_window",
    "dense_cores",
    "warm_up",
]

_LOG_2PI = math.log(2.0 * math.pi)
_BIRTH_GATE = 16.27  # squared Mahalanobis, 3 dof, 99.9 %: a visual point outside it is unexplained
_PI_FLOOR = 1e-8


@dataclass(frozen=True)
class AVClusteringConfig(StageConfig):
    """Audio-visual clustering over sliding windows (the fusion stage)."""

    SECTION: ClassVar[str] = "fusion"

    window_length: float = param(
        1.0, "Length (s) of the sliding window of observations clustered together.",
        low=0.05, high=60.0)
    hop_length: float = param(
        0.25, "Time (s) between two clusterings of the window (<= window_length).",
        low=0.01, high=60.0)
    max_iter: int = param(30, "Maximum EM iterations per window.", low=1, high=1000)
    tol: float = param(
        1e-5, "EM stops when the relative change of the log-likelihood is at most this.",
        low=0.0, high=0.1)
    gauss_newton_steps: int = param(
        3, "Gauss-Newton steps on each cluster position per M-step.", low=1, high=20)
    visual_outlier_volume: float = param(
        30.0, "Volume (m^3) over which visual clutter is uniform (about the viewed space).",
        low=1e-3, high=1e6)
    audio_outlier_margin: float = param(
        0.1, "Audio clutter is uniform over +-(1 + margin) x the largest physical ITD.",
        low=0.0, high=2.0)
    visual_std_init: float = param(
        0.1, "Initial spread (m, standard deviation) of a new cluster's visual observations.",
        low=0.005, high=2.0)
    visual_std_min: float = param(
        0.02, "Smallest spread (m) a cluster's visual covariance may shrink to.",
        low=1e-4, high=1.0)
    visual_std_max: float = param(
        0.25, "Largest spread (m, per principal axis) of a cluster's visual covariance; a "
        "visual birth broader than this is refused (one person, not a crowd).",
        low=0.01, high=10.0)
    audio_std_init: float = param(
        4e-5, "Initial ITD standard deviation (s) of a new cluster.", low=1e-7, high=1e-3)
    audio_std_min: float = param(
        1e-5, "Smallest ITD standard deviation (s) of a cluster.", low=1e-7, high=1e-3)
    audio_std_max: float = param(
        1e-4, "Largest ITD standard deviation (s) of a cluster (keeps a silent cluster from "
        "absorbing every ITD; wider spreads are clutter).", low=1e-6, high=1e-2)
    min_visual_mass: float = param(
        3.0, "Visual support (sum of weight x responsibility over the window) below which a "
        "cluster counts as not seen; also the mass a visual birth needs.", low=0.0, high=1e5)
    min_audio_mass: float = param(
        3.0, "Audio mass (sum of weight x responsibility) an unseen cluster needs to survive, "
        "and an audio-only birth needs.", low=0.0, high=1e5)
    audio_birth_ratio: float = param(
        4.0, "An audio-only birth needs this many times the clutter mass expected in its ITD "
        "interval.", low=1.0, high=1e3)
    birth_radius: float = param(
        0.3, "Radius (m) of the neighbourhood whose weighted mass triggers a visual birth.",
        low=0.01, high=5.0)
    birth_search: str = param(
        "cores", "How a visual birth finds the new clusters among the unexplained points: "
        "'cores' (greedy dense cores of birth_radius, then one weighted-data EM with as many "
        "components, started at them; ~1 ms) or 'mml' (wdem.select with the wdem.* criterion "
        "from wdem.k_max components down; ~40 ms per birth window).",
        choices=("cores", "mml"))
    merge_distance: float = param(
        0.3, "Two seen clusters closer than this (m) merge.", low=0.0, high=5.0)
    merge_itd: float = param(
        2.5, "An audio-only cluster merges with another cluster when their ITDs differ by less "
        "than this many ITD standard deviations.", low=0.0, high=20.0)
    default_depth: float = param(
        2.0, "Distance (m) from the microphones at which an out-of-view speaker is placed on "
        "its ITD cone.", low=0.2, high=50.0)
    out_of_view_std: float = param(
        1.0, "Position standard deviation (m) of an out-of-view speaker along the directions "
        "the ITD does not constrain.", low=0.01, high=50.0)
    position_prior_std: float = param(
        2.0, "Standard deviation (m) of the weak prior that keeps a cluster near its position "
        "at the start of the window (conditions unobserved directions).", low=0.01, high=1e3)

    def validate(self):
        if self.hop_length > self.window_length:
            raise ConfigError(
                f"parameter 'fusion.hop_length' = {self.hop_length} is not allowed: must be "
                f"<= fusion.window_length ({self.window_length})")
        if not self.visual_std_min <= self.visual_std_init <= self.visual_std_max:
            raise ConfigError(
                f"parameters 'fusion.visual_std_min' = {self.visual_std_min}, "
                f"'fusion.visual_std_init' = {self.visual_std_init} and 'fusion.visual_std_max' = "
                f"{self.visual_std_max} are not allowed: need min <= init <= max")
        if not self.audio_std_min <= self.audio_std_init <= self.audio_std_max:
            raise ConfigError(
                f"parameters 'fusion.audio_std_min' = {self.audio_std_min}, "
                f"'fusion.audio_std_init' = {self.audio_std_init} and 'fusion.audio_std_max' = "
                f"{self.audio_std_max} are not allowed: need min <= init <= max")


@dataclass
class AVEvent:
    """One audio-visual cluster of a window.

    position : (3,) m, left camera optical frame (on the ITD cone at ``default_depth`` when
        out of view).
    covariance : (3, 3) m^2, uncertainty of the position (inverse Gauss-Newton information;
        ``out_of_view_std`` along the directions an ITD does not constrain).
    spread : (3, 3) m^2, covariance of the cluster's visual observations (Sigma_k).
    visual_mass, audio_mass : sums of weight x responsibility over the window.
    itd, itd_std : s, the cluster's ITD G(S_k) (or tau_k when out of view) and its spread.
    out_of_view : True when the cluster has audio but no visual support.
    label : int, kept across windows (warm start), new for every birth.
    stamp : s, end of the window.
    """

    position: np.ndarray
    covariance: np.ndarray
    spread: np.ndarray
    visual_mass: float
    audio_mass: float
    itd: float
    itd_std: float
    out_of_view: bool
    label: int
    stamp: float = 0.0


@dataclass
class _Clusters:
    pos: np.ndarray  # (K, 3)
    vcov: np.ndarray  # (K, 3, 3)
    itd: np.ndarray  # (K,) G(S_k), or the free ITD of audio-only clusters
    avar: np.ndarray  # (K,) s^2
    audio_only: np.ndarray  # (K,) bool
    labels: np.ndarray  # (K,) int
    pi_v: np.ndarray  # (K + 1,), last = visual outlier
    pi_a: np.ndarray  # (K + 1,), last = audio outlier
    info: np.ndarray = field(default=None)  # (K, 3, 3) Gauss-Newton information

    @property
    def K(self):
        return len(self.labels)

    def subset(self, keep):
        keep = np.asarray(keep, dtype=bool)
        pv = np.concatenate([self.pi_v[:-1][keep], self.pi_v[-1:]])
        pa = np.concatenate([self.pi_a[:-1][keep], self.pi_a[-1:]])
        return _Clusters(self.pos[keep], self.vcov[keep], self.itd[keep], self.avar[keep],
                         self.audio_only[keep], self.labels[keep], pv / pv.sum(), pa / pa.sum(),
                         None if self.info is None else self.info[keep])

    @staticmethod
    def empty():
        return _Clusters(np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros(0), np.zeros(0),
                         np.zeros(0, bool), np.zeros(0, np.int64), np.ones(1), np.ones(1))

    def copy(self):
        return _Clusters(self.pos.copy(), self.vcov.copy(), self.itd.copy(), self.avar.copy(),
                         self.audio_only.copy(), self.labels.copy(), self.pi_v.copy(),
                         self.pi_a.copy(), None if self.info is None else self.info.copy())


@dataclass
class AVWindowResult:
    """Clustering of one window.

    events : list of AVEvent (one per cluster).
    visual_responsibilities : (N_v, K + 1), last column = visual clutter.
    audio_responsibilities : (N_a, K + 1), last column = audio clutter.
    log_likelihood : history of the last EM run of the window.
    n_iter : EM iterations over the whole window (all runs).
    state : opaque warm start for the next window (pass as ``previous``).
    """

    events: list
    visual_responsibilities: np.ndarray
    audio_responsibilities: np.ndarray
    log_likelihood: np.ndarray
    n_iter: int
    state: object


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------
def _validate_inputs(visual_points, visual_weights, itds, itd_weights, visual_covariances):
    if visual_points is None:
        visual_points = np.zeros((0, 3))
    X = np.asarray(visual_points, dtype=np.float64)
    if X.ndim == 1 and X.size == 0:
        X = X.reshape(0, 3)
    if X.ndim != 2 or X.shape[1] != 3:
        raise ValueError(f"visual_points must have shape (N_v, 3), got {X.shape}")
    wv = np.ones(len(X)) if visual_weights is None else np.asarray(visual_weights, np.float64)
    if wv.shape != (len(X),):
        raise ValueError(f"visual_weights must have shape ({len(X)},) to match visual_points, "
                         f"got {wv.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(wv))):
        raise ValueError("visual_points and visual_weights must be finite")
    if np.any(wv < 0):
        raise ValueError("visual_weights must be >= 0")
    C = None
    if visual_covariances is not None:
        C = np.asarray(visual_covariances, dtype=np.float64)
        if C.shape != (len(X), 3, 3):
            raise ValueError(f"visual_covariances must have shape ({len(X)}, 3, 3), got {C.shape}")
        if not np.all(np.isfinite(C)):
            raise ValueError("visual_covariances must be finite")
        if len(C) and (np.abs(C - np.swapaxes(C, 1, 2)).max() > 1e-9 * max(np.abs(C).max(), 1e-300)
                       or np.linalg.eigvalsh(C)[:, 0].min() < -1e-12 * np.abs(C).max()):
            raise ValueError("visual_covariances must be symmetric positive semi-definite")
    if itds is None:
        itds = np.zeros(0)
    tau = np.asarray(itds, dtype=np.float64).reshape(-1) if np.ndim(itds) else np.zeros(0)
    if np.ndim(itds) > 1:
        raise ValueError(f"itds must have shape (N_a,), got {np.shape(itds)}")
    wa = np.ones(len(tau)) if itd_weights is None else np.asarray(itd_weights, np.float64)
    if wa.shape != (len(tau),):
        raise ValueError(f"itd_weights must have shape ({len(tau)},) to match itds, "
                         f"got {wa.shape}")
    if not np.all(np.isfinite(wa)) or np.any(wa < 0):
        raise ValueError("itd_weights must be finite and >= 0")
    bad = ~np.isfinite(tau)
    if np.any(bad & (wa > 0)):
        raise ValueError("itds contain NaN or infinite values with a positive weight (give such "
                         "frames weight 0, e.g. frames where no ITD could be measured)")
    return X, wv, C, tau, wa


# ---------------------------------------------------------------------------
# The conjugate EM
# ---------------------------------------------------------------------------
class _Window:
    """Observations of one window (positive weights only) and the fixed model constants."""

    def __init__(self, X, wv, C, tau, wa, geometry: MicGeometry, cfg: AVClusteringConfig,
                 variant: str, reg_covar: float, use_numba: bool = True):
        self.use_numba = use_numba
        kv = wv > 0
        ka = wa > 0
        self.keep_v, self.keep_a = kv, ka
        self.X = X[kv]
        self.wv = wv[kv]
        self.C = None if C is None else C[kv]
        self.tau = tau[ka]
        self.wa = wa[ka]
        self.geometry = geometry
        self.cfg = cfg
        self.variant = variant
        self.reg = reg_covar
        self.tau_max = geometry.max_itd * (1.0 + cfg.audio_outlier_margin)
        self.log_out_v = -math.log(cfg.visual_outlier_volume)
        self.log_out_a = -math.log(2.0 * self.tau_max)
        self.v_const, self.v_a, self.v_beta = self._consts(self.wv, 3)
        self.a_const, self.a_a, self.a_beta = self._consts(self.wa, 1)

    def _consts(self, w, d):
        if self.variant == "fwd":
            return 0.5 * d * (np.log(w) - _LOG_2PI), None, None
        alpha, beta = wdem.gamma_prior(w, d)
        a = alpha + 0.5 * d
        return gammaln(a) - gammaln(alpha) - 0.5 * d * np.log(2 * math.pi * beta), a, beta

    def _logdens(self, delta, log_det, const, w, a, beta):
        """Log-density (n, K) and posterior weights (n, K) from Mahalanobis distances."""
        if self.variant == "fwd":
            return const[:, None] - 0.5 * log_det - 0.5 * w[:, None] * delta, np.broadcast_to(
                w[:, None], delta.shape)
        ld = const[:, None] - 0.5 * log_det - a[:, None] * np.log1p(0.5 * delta / beta[:, None])
        return ld, a[:, None] / (beta[:, None] + 0.5 * delta)

    # ------------------------------------------------------------------ E-step
    def visual_terms(self, cl: _Clusters):
        """delta (N_v, K), log|V| (N_v, K) or (K,), precisions P (N_v, K, 3, 3) or (K, 3, 3)."""
        r = self.X[:, None, :] - cl.pos[None, :, :]
        if self.C is None:
            P = np.linalg.inv(cl.vcov)
            log_det = np.linalg.slogdet(cl.vcov)[1]
            delta = np.einsum("nka,kab,nkb->nk", r, P, r)
        else:
            V = cl.vcov[None, :, :, :] + self.C[:, None, :, :]
            P = np.linalg.inv(V)
            log_det = np.linalg.slogdet(V)[1]
            delta = np.einsum("nka,nkab,nkb->nk", r, P, r)
        return delta, log_det, P

    def estep(self, cl: _Clusters):
        K = cl.K
        out = {}
        with np.errstate(divide="ignore"):
            log_pi_v = np.log(np.maximum(cl.pi_v, 0.0))
            log_pi_a = np.log(np.maximum(cl.pi_a, 0.0))
        ll = 0.0
        # visual
        nv = len(self.X)
        if nv:
            logp = np.full((nv, K + 1), -np.inf)
            seen = ~cl.audio_only
            if np.any(seen) and K:
                delta, log_det, P = self.visual_terms(cl)
                ld, u = self._logdens(delta, log_det, self.v_const, self.wv, self.v_a,
                                      self.v_beta)
                logp[:, :K] = np.where(seen[None, :], ld + log_pi_v[:K], -np.inf)
                out["P"] = P
                out["u_v"] = u
            logp[:, K] = log_pi_v[K] + self.log_out_v
            eta, lse = _normalise(logp)
            out["eta_v"] = eta
            ll += float(lse.sum())
        # audio
        na = len(self.tau)
        if na:
            logp = np.empty((na, K + 1))
            if K:
                delta = (self.tau[:, None] - cl.itd[None, :]) ** 2 / cl.avar[None, :]
                ld, u = self._logdens(delta, np.log(cl.avar), self.a_const, self.wa, self.a_a,
                                      self.a_beta)
                logp[:, :K] = ld + log_pi_a[:K]
                out["u_a"] = u
            logp[:, K] = log_pi_a[K] + self.log_out_a
            eta, lse = _normalise(logp)
            out["eta_a"] = eta
            ll += float(lse.sum())
        return ll, out

    # ------------------------------------------------------------------ M-step
    def mstep(self, cl: _Clusters, e, start_pos):
        cfg = self.cfg
        K = cl.K
        cl = cl.copy()
        if K == 0:
            return cl
        nv, na = len(self.X), len(self.tau)
        if nv:
            cnt = e["eta_v"].sum(axis=0)
            cl.pi_v = np.maximum(cnt / nv, _PI_FLOOR)
            cl.pi_v /= cl.pi_v.sum()
        if na:
            cnt = e["eta_a"].sum(axis=0)
            cl.pi_a = np.maximum(cnt / na, _PI_FLOOR)
            cl.pi_a /= cl.pi_a.sum()
        # audio sufficient statistics per cluster: s_a = sum eta u / sigma^2, tbar
        if na and K:
            ua = e["eta_a"][:, :K] * e["u_a"]
            sw_a = ua.sum(axis=0)
            tbar = (ua * self.tau[:, None]).sum(axis=0) / np.maximum(sw_a, 1e-300)
            n_a = e["eta_a"][:, :K].sum(axis=0)
        else:
            ua = None
            sw_a = np.zeros(K)
            tbar = cl.itd.copy()
            n_a = np.zeros(K)
        # visual quadratic: A S - b
        A = np.zeros((K, 3, 3))
        b = np.zeros((K, 3))
        n_v = np.zeros(K)
        if nv and "P" in e:
            uv = e["eta_v"][:, :K] * e["u_v"]
            n_v = e["eta_v"][:, :K].sum(axis=0)
            if self.C is None:
                sw = uv.sum(axis=0)
                A = sw[:, None, None] * e["P"]
                b = np.einsum("kab,kb->ka", e["P"], uv.T @ self.X)
            else:
                A = np.einsum("nk,nkab->kab", uv, e["P"])
                b = np.einsum("nk,nkab,nb->ka", uv, e["P"], self.X)
        seen = ~cl.audio_only
        # positions of seen clusters: Gauss-Newton with step halving
        if np.any(seen):
            idx = np.flatnonzero(seen)
            cl.pos[idx], cl.info[idx] = self._gauss_newton(
                cl.pos[idx], A[idx], b[idx], sw_a[idx] / cl.avar[idx], tbar[idx],
                start_pos[idx])
            cl.itd[idx] = self.geometry.itd(cl.pos[idx])
        # audio-only clusters: the ITD itself is the parameter
        ao = cl.audio_only & (sw_a > 1e-12)
        cl.itd[ao] = np.clip(tbar[ao], -self.tau_max, self.tau_max)
        # visual spread (measurement-error EM update), floored
        if nv and "P" in e:
            upd = seen & (n_v > 1e-6)
            if np.any(upd):
                r = self.X[:, None, :] - cl.pos[None, :, :]
                if self.C is None:
                    S = np.einsum("nk,nka,nkb->kab", uv, r, r) / np.maximum(n_v, 1e-300)[
                        :, None, None]
                else:
                    SP = np.einsum("kab,nkbc->nkac", cl.vcov, e["P"])  # Sigma V^-1
                    m = np.einsum("nkab,nkb->nka", SP, r)
                    shrink = cl.vcov[None] - np.einsum("nkab,kbc->nkac", SP, cl.vcov)
                    S = (np.einsum("nk,nka,nkb->kab", uv, m, m)
                         + np.einsum("nk,nkab->kab", e["eta_v"][:, :K], shrink)) / np.maximum(
                             n_v, 1e-300)[:, None, None]
                S = S + self.reg * np.eye(3)
                cl.vcov[upd] = _floor_cov(S[upd], cfg.visual_std_min ** 2,
                                          cfg.visual_std_max ** 2)
        # ITD spread
        if na and K:
            upd = n_a > 1e-6
            res2 = (ua * (self.tau[:, None] - cl.itd[None, :]) ** 2).sum(axis=0)
            var = res2 / np.maximum(n_a, 1e-300)
            cl.avar[upd] = np.clip(var[upd], cfg.audio_std_min ** 2, cfg.audio_std_max ** 2)
        return cl

    def _objective(self, S, A, b, s_a, tbar, S0, inv_p2):
        quad = np.einsum("ka,kab,kb->k", S, A, S) - 2 * np.einsum("ka,ka->k", S, b)
        g = self.geometry.itd(S)
        return quad + s_a * (tbar - g) ** 2 + inv_p2 * ((S - S0) ** 2).sum(axis=1)

    def _gauss_newton(self, S, A, b, s_a, tbar, S0):
        inv_p2 = 1.0 / self.cfg.position_prior_std ** 2
        eye = np.eye(3)
        f = self._objective(S, A, b, s_a, tbar, S0, inv_p2)
        H = None
        for _ in range(self.cfg.gauss_newton_steps):
            J = self.geometry.itd_jacobian(S)
            g = self.geometry.itd(S)
            H = A + s_a[:, None, None] * np.einsum("ka,kb->kab", J, J) + inv_p2 * eye
            grad = (b - np.einsum("kab,kb->ka", A, S) + s_a[:, None] * J * (tbar - g)[:, None]
                    + inv_p2 * (S0 - S))
            step = np.linalg.solve(H, grad[:, :, None])[:, :, 0]
            t = np.ones(len(S))
            for _h in range(8):
                S_new = S + t[:, None] * step
                f_new = self._objective(S_new, A, b, s_a, tbar, S0, inv_p2)
                worse = f_new > f + 1e-12 * np.abs(f)
                if not np.any(worse):
                    break
                t = np.where(worse, 0.5 * t, t)
            ok = ~worse
            S = np.where(ok[:, None], S_new, S)
            f = np.where(ok, f_new, f)
            if np.all(np.abs(step) * t[:, None] < 1e-7):
                break
        J = self.geometry.itd_jacobian(S)
        H = A + s_a[:, None, None] * np.einsum("ka,kb->kab", J, J) + inv_p2 * eye
        return S, H

    def masses(self, e, K):
        mv = (e["eta_v"][:, :K] * self.wv[:, None]).sum(axis=0) if "eta_v" in e else np.zeros(K)
        ma = (e["eta_a"][:, :K] * self.wa[:, None]).sum(axis=0) if "eta_a" in e else np.zeros(K)
        return mv, ma

    def run(self, cl: _Clusters, max_iter=None):
        """EM from ``cl`` -> (clusters, E-step dict, log-likelihood history, n_iter)."""
        if self.use_numba:
            return self._run_numba(cl, max_iter)
        return self.run_reference(cl, max_iter)

    def _run_numba(self, cl: _Clusters, max_iter=None):
        cfg = self.cfg
        max_iter = cfg.max_iter if max_iter is None else max_iter
        cl = cl.copy()
        K = cl.K
        if cl.info is None:
            cl.info = np.repeat(np.eye(3)[None], K, axis=0)
        nv, na = len(self.X), len(self.tau)
        eta_v = np.empty((nv, K + 1))
        u_v = np.empty((nv, K))
        P = np.empty((nv, K, 3, 3))
        eta_a = np.empty((na, K + 1))
        u_a = np.empty((na, K))
        hist = np.empty(max_iter + 1)
        params = np.empty(N_PARAMS)
        params[P_LOG_OUT_V] = self.log_out_v
        params[P_LOG_OUT_A] = self.log_out_a
        params[P_TAU_MAX] = self.tau_max
        params[P_REG] = self.reg
        params[P_VMIN2] = cfg.visual_std_min ** 2
        params[P_AMIN2] = cfg.audio_std_min ** 2
        params[P_INV_P2] = 1.0 / cfg.position_prior_std ** 2
        params[P_GN_STEPS] = cfg.gauss_newton_steps
        params[P_TOL] = cfg.tol
        params[P_SPEED] = self.geometry.speed_of_sound
        params[P_AMAX2] = cfg.audio_std_max ** 2
        params[P_VMAX2] = cfg.visual_std_max ** 2
        wd = self.variant == "wd"
        zv, za = np.zeros(nv), np.zeros(na)
        hframe, htab = self.geometry.kernel_arrays()
        n = _em_kernel(
            self.X, self.wv, self.C if self.C is not None else np.zeros((0, 3, 3)),
            self.C is not None, self.tau, self.wa, wd, self.v_const,
            self.v_a if wd else zv, self.v_beta if wd else zv, self.a_const,
            self.a_a if wd else za, self.a_beta if wd else za, cl.pos, cl.vcov, cl.itd, cl.avar,
            cl.audio_only, cl.pi_v, cl.pi_a, cl.info, self.geometry.left, self.geometry.right,
            hframe, htab, params, max_iter, eta_v, u_v, P, eta_a, u_a, hist)
        e = {}
        if nv:
            e["eta_v"] = eta_v
        if na:
            e["eta_a"] = eta_a
        return cl, e, hist[:n + 1].copy(), n

    def run_reference(self, cl: _Clusters, max_iter=None):
        """Plain-numpy reference of the window EM (same results as the numba kernel)."""
        cfg = self.cfg
        max_iter = cfg.max_iter if max_iter is None else max_iter
        start_pos = cl.pos.copy()
        if cl.info is None:
            cl.info = np.repeat(np.eye(3)[None], cl.K, axis=0)
        ll, e = self.estep(cl)
        hist = [ll]
        n_iter = 0
        for _ in range(max_iter):
            if cl.K == 0:
                break
            cl = self.mstep(cl, e, start_pos)
            n_iter += 1
            ll, e = self.estep(cl)
            prev = hist[-1]
            hist.append(ll)
            if abs(ll - prev) <= cfg.tol * abs(prev):
                break
        return cl, e, np.asarray(hist), n_iter



# ---------------------------------------------------------------------------
# numba kernel of the window EM (the numpy reference is _Window.run_reference)
# ---------------------------------------------------------------------------
P_LOG_OUT_V = 0
P_LOG_OUT_A = 1
P_TAU_MAX = 2
P_REG = 3
P_VMIN2 = 4
P_AMIN2 = 5
P_INV_P2 = 6
P_GN_STEPS = 7
P_TOL = 8
P_SPEED = 9
P_AMAX2 = 10
P_VMAX2 = 11
N_PARAMS = 12


@njit(cache=True)
def _inv3(M, out):
    """Inverse of a 3x3 matrix into out; returns log|det| (the matrices here are SPD)."""
    a, b, c = M[0, 0], M[0, 1], M[0, 2]
    d, e, f = M[1, 0], M[1, 1], M[1, 2]
    g, h, i = M[2, 0], M[2, 1], M[2, 2]
    A = e * i - f * h
    B = -(d * i - f * g)
    C = d * h - e * g
    det = a * A + b * B + c * C
    inv = 1.0 / det
    out[0, 0] = A * inv
    out[0, 1] = -(b * i - c * h) * inv
    out[0, 2] = (b * f - c * e) * inv
    out[1, 0] = B * inv
    out[1, 1] = (a * i - c * g) * inv
    out[1, 2] = -(a * f - c * d) * inv
    out[2, 0] = C * inv
    out[2, 1] = -(a * h - b * g) * inv
    out[2, 2] = (a * e - b * d) * inv
    return math.log(abs(det))


@njit(cache=True)
def _gn_objective(S, A, b, s_a, tbar, S0, inv_p2, ml, mr, hframe, htab, speed, J):
    q = 0.0
    for a in range(3):
        q -= 2.0 * S[a] * b[a]
        q += inv_p2 * (S[a] - S0[a]) ** 2
        for c in range(3):
            q += S[a] * A[a, c] * S[c]
    g = model_itd_jac(S, ml, mr, speed, hframe, htab, J)
    return q + s_a * (tbar - g) ** 2


@njit(cache=True)
def _normalise_inplace(row, n):
    mx = -np.inf
    for k in range(n):
        if row[k] > mx:
            mx = row[k]
    if not np.isfinite(mx):
        mx = 0.0
    s = 0.0
    for k in range(n):
        row[k] = math.exp(row[k] - mx)
        s += row[k]
    for k in range(n):
        row[k] /= s
    return mx + math.log(s)


@njit(cache=True)
def _estep_kernel(X, wv, C, has_c, tau, wa, wd, v_const, v_a, v_beta, a_const, a_a, a_beta,
                  pos, vcov, itd, avar, audio_only, pi_v, pi_a, params, eta_v, u_v, P, eta_a,
                  u_a):
    nv = X.shape[0]
    na = tau.shape[0]
    K = pos.shape[0]
    ll = 0.0
    V = np.empty((3, 3))
    Pi = np.empty((3, 3))
    logdet_k = np.empty(K)
    if not has_c:
        for k in range(K):
            logdet_k[k] = _inv3(vcov[k], Pi)
            for j in range(nv):
                P[j, k] = Pi
    for j in range(nv):
        for k in range(K):
            if audio_only[k]:
                eta_v[j, k] = -np.inf
                u_v[j, k] = 0.0
                continue
            if has_c:
                for a in range(3):
                    for c in range(3):
                        V[a, c] = vcov[k, a, c] + C[j, a, c]
                logdet = _inv3(V, Pi)
                P[j, k] = Pi
            else:
                logdet = logdet_k[k]
            delta = 0.0
            for a in range(3):
                ra = X[j, a] - pos[k, a]
                for c in range(3):
                    delta += ra * P[j, k, a, c] * (X[j, c] - pos[k, c])
            if wd:
                eta_v[j, k] = (v_const[j] - 0.5 * logdet
                               - v_a[j] * math.log1p(0.5 * delta / v_beta[j]))
                u_v[j, k] = v_a[j] / (v_beta[j] + 0.5 * delta)
            else:
                eta_v[j, k] = v_const[j] - 0.5 * logdet - 0.5 * wv[j] * delta
                u_v[j, k] = wv[j]
            eta_v[j, k] += math.log(pi_v[k]) if pi_v[k] > 0 else -np.inf
        eta_v[j, K] = (math.log(pi_v[K]) if pi_v[K] > 0 else -np.inf) + params[P_LOG_OUT_V]
        ll += _normalise_inplace(eta_v[j], K + 1)
    for i in range(na):
        for k in range(K):
            delta = (tau[i] - itd[k]) ** 2 / avar[k]
            ld = math.log(avar[k])
            if wd:
                eta_a[i, k] = a_const[i] - 0.5 * ld - a_a[i] * math.log1p(0.5 * delta / a_beta[i])
                u_a[i, k] = a_a[i] / (a_beta[i] + 0.5 * delta)
            else:
                eta_a[i, k] = a_const[i] - 0.5 * ld - 0.5 * wa[i] * delta
                u_a[i, k] = wa[i]
            eta_a[i, k] += math.log(pi_a[k]) if pi_a[k] > 0 else -np.inf
        eta_a[i, K] = (math.log(pi_a[K]) if pi_a[K] > 0 else -np.inf) + params[P_LOG_OUT_A]
        ll += _normalise_inplace(eta_a[i], K + 1)
    return ll


@njit(cache=True)
def _floor_cov3(S, floor, ceil):
    Sym = 0.5 * (S + S.T)
    vals, vecs = np.linalg.eigh(Sym)
    out = np.zeros((3, 3))
    for m in range(3):
        v = min(max(vals[m], floor), ceil)
        for a in range(3):
            for c in range(3):
                out[a, c] += vecs[a, m] * v * vecs[c, m]
    return out


@njit(cache=True)
def _mstep_kernel(X, C, has_c, tau, pos, vcov, itd, avar, audio_only, pi_v, pi_a, info,
                  start_pos, ml, mr, hframe, htab, params, eta_v, u_v, P, eta_a, u_a):
    nv = X.shape[0]
    na = tau.shape[0]
    K = pos.shape[0]
    speed = params[P_SPEED]
    tau_max = params[P_TAU_MAX]
    inv_p2 = params[P_INV_P2]
    if nv > 0:
        tot = 0.0
        for k in range(K + 1):
            cnt = 0.0
            for j in range(nv):
                cnt += eta_v[j, k]
            pi_v[k] = max(cnt / nv, _PI_FLOOR)
            tot += pi_v[k]
        for k in range(K + 1):
            pi_v[k] /= tot
    if na > 0:
        tot = 0.0
        for k in range(K + 1):
            cnt = 0.0
            for i in range(na):
                cnt += eta_a[i, k]
            pi_a[k] = max(cnt / na, _PI_FLOOR)
            tot += pi_a[k]
        for k in range(K + 1):
            pi_a[k] /= tot
    sw_a = np.zeros(K)
    tbar = itd.copy()
    n_a = np.zeros(K)
    if na > 0:
        for k in range(K):
            s = 0.0
            st = 0.0
            nn = 0.0
            for i in range(na):
                u = eta_a[i, k] * u_a[i, k]
                s += u
                st += u * tau[i]
                nn += eta_a[i, k]
            sw_a[k] = s
            tbar[k] = st / max(s, 1e-300)
            n_a[k] = nn
    any_seen = False
    for k in range(K):
        if not audio_only[k]:
            any_seen = True
    A = np.zeros((K, 3, 3))
    b = np.zeros((K, 3))
    n_v = np.zeros(K)
    if nv > 0 and any_seen:
        for j in range(nv):
            for k in range(K):
                if audio_only[k]:
                    continue
                u = eta_v[j, k] * u_v[j, k]
                n_v[k] += eta_v[j, k]
                for a in range(3):
                    for c in range(3):
                        A[k, a, c] += u * P[j, k, a, c]
                        b[k, a] += u * P[j, k, a, c] * X[j, c]
    # Gauss-Newton on the seen clusters (same schedule as the reference)
    J = np.empty(3)
    J2 = np.empty(3)
    H = np.empty((3, 3))
    grad = np.empty(3)
    S_new = np.empty(3)
    f = np.empty(K)
    s_a = np.empty(K)
    for k in range(K):
        s_a[k] = sw_a[k] / avar[k]
        if not audio_only[k]:
            f[k] = _gn_objective(pos[k], A[k], b[k], s_a[k], tbar[k], start_pos[k], inv_p2, ml,
                                 mr, hframe, htab, speed, J)
    if any_seen:
        for _step in range(int(params[P_GN_STEPS])):
            all_small = True
            for k in range(K):
                if audio_only[k]:
                    continue
                g = model_itd_jac(pos[k], ml, mr, speed, hframe, htab, J)
                for a in range(3):
                    grad[a] = (b[k, a] + s_a[k] * J[a] * (tbar[k] - g)
                               + inv_p2 * (start_pos[k, a] - pos[k, a]))
                    for c in range(3):
                        H[a, c] = A[k, a, c] + s_a[k] * J[a] * J[c]
                        grad[a] -= A[k, a, c] * pos[k, c]
                    H[a, a] += inv_p2
                step = np.linalg.solve(H, grad)
                t = 1.0
                worse = True
                f_new = f[k]
                for _h in range(8):
                    for a in range(3):
                        S_new[a] = pos[k, a] + t * step[a]
                    f_new = _gn_objective(S_new, A[k], b[k], s_a[k], tbar[k], start_pos[k],
                                          inv_p2, ml, mr, hframe, htab, speed, J2)
                    worse = f_new > f[k] + 1e-12 * abs(f[k])
                    if not worse:
                        break
                    t *= 0.5
                if not worse:
                    for a in range(3):
                        pos[k, a] = S_new[a]
                    f[k] = f_new
                for a in range(3):
                    if abs(step[a]) * t >= 1e-7:
                        all_small = False
            if all_small:
                break
        for k in range(K):
            if audio_only[k]:
                continue
            itd[k] = model_itd_jac(pos[k], ml, mr, speed, hframe, htab, J)
            for a in range(3):
                for c in range(3):
                    info[k, a, c] = A[k, a, c] + s_a[k] * J[a] * J[c]
                info[k, a, a] += inv_p2
    for k in range(K):
        if audio_only[k] and sw_a[k] > 1e-12:
            itd[k] = min(max(tbar[k], -tau_max), tau_max)
    # visual spread (measurement-error EM), floored
    if nv > 0 and any_seen:
        SP = np.empty((3, 3))
        m = np.empty(3)
        for k in range(K):
            if audio_only[k] or n_v[k] <= 1e-6:
                continue
            Snew = np.zeros((3, 3))
            for j in range(nv):
                u = eta_v[j, k] * u_v[j, k]
                if has_c:
                    for a in range(3):
                        for c in range(3):
                            acc = 0.0
                            for e in range(3):
                                acc += vcov[k, a, e] * P[j, k, e, c]
                            SP[a, c] = acc
                    for a in range(3):
                        acc = 0.0
                        for c in range(3):
                            acc += SP[a, c] * (X[j, c] - pos[k, c])
                        m[a] = acc
                    for a in range(3):
                        for c in range(3):
                            sh = vcov[k, a, c]
                            for e in range(3):
                                sh -= SP[a, e] * vcov[k, e, c]
                            Snew[a, c] += u * m[a] * m[c] + eta_v[j, k] * sh
                else:
                    for a in range(3):
                        for c in range(3):
                            Snew[a, c] += u * (X[j, a] - pos[k, a]) * (X[j, c] - pos[k, c])
            for a in range(3):
                for c in range(3):
                    Snew[a, c] /= n_v[k]
                Snew[a, a] += params[P_REG]
            vcov[k] = _floor_cov3(Snew, params[P_VMIN2], params[P_VMAX2])
    if na > 0:
        for k in range(K):
            if n_a[k] <= 1e-6:
                continue
            r2 = 0.0
            for i in range(na):
                r2 += eta_a[i, k] * u_a[i, k] * (tau[i] - itd[k]) ** 2
            avar[k] = min(max(r2 / max(n_a[k], 1e-300), params[P_AMIN2]), params[P_AMAX2])


@njit(cache=True)
def _em_kernel(X, wv, C, has_c, tau, wa, wd, v_const, v_a, v_beta, a_const, a_a, a_beta, pos,
               vcov, itd, avar, audio_only, pi_v, pi_a, info, ml, mr, hframe, htab, params,
               max_iter, eta_v,
               u_v, P, eta_a, u_a, hist):
    """The whole EM of one window in place; returns the number of M-steps (hist[: n + 1])."""
    start_pos = pos.copy()
    K = pos.shape[0]
    ll = _estep_kernel(X, wv, C, has_c, tau, wa, wd, v_const, v_a, v_beta, a_const, a_a, a_beta,
                       pos, vcov, itd, avar, audio_only, pi_v, pi_a, params, eta_v, u_v, P,
                       eta_a, u_a)
    hist[0] = ll
    n_iter = 0
    for _ in range(max_iter):
        if K == 0:
            break
        _mstep_kernel(X, C, has_c, tau, pos, vcov, itd, avar, audio_only, pi_v, pi_a, info,
                      start_pos, ml, mr, hframe, htab, params, eta_v, u_v, P, eta_a, u_a)
        n_iter += 1
        ll = _estep_kernel(X, wv, C, has_c, tau, wa, wd, v_const, v_a, v_beta, a_const, a_a,
                           a_beta, pos, vcov, itd, avar, audio_only, pi_v, pi_a, params, eta_v,
                           u_v, P, eta_a, u_a)
        prev = hist[n_iter - 1]
        hist[n_iter] = ll
        if abs(ll - prev) <= params[P_TOL] * abs(prev):
            break
    return n_iter


def _normalise(logp):
    mx = logp.max(axis=1)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    p = np.exp(logp - mx[:, None])
    s = p.sum(axis=1)
    return p / s[:, None], mx + np.log(s)


def _floor_cov(S, floor, ceil=np.inf):
    vals, vecs = np.linalg.eigh(0.5 * (S + np.swapaxes(S, 1, 2)))
    vals = np.clip(vals, floor, ceil)
    return np.einsum("kab,kb,kcb->kac", vecs, vals, vecs)


# ---------------------------------------------------------------------------
# Births, deaths, merges
# ---------------------------------------------------------------------------
def _reset_mixing(cl: _Clusters):
    K = cl.K
    cl.pi_v = np.full(K + 1, 1.0 / (K + 1))
    cl.pi_a = np.full(K + 1, 1.0 / (K + 1))
    return cl


def _concat(cl: _Clusters, pos, vcov, itd, avar, audio_only, labels):
    n = len(labels)
    info = np.repeat(np.eye(3)[None], n, axis=0)
    out = _Clusters(np.concatenate([cl.pos, pos]), np.concatenate([cl.vcov, vcov]),
                    np.concatenate([cl.itd, itd]), np.concatenate([cl.avar, avar]),
                    np.concatenate([cl.audio_only, audio_only]),
                    np.concatenate([cl.labels, labels]).astype(np.int64), cl.pi_v, cl.pi_a,
                    np.concatenate([cl.info if cl.info is not None else
                                    np.repeat(np.eye(3)[None], cl.K, 0), info]))
    return _reset_mixing(out)


def _prune_and_merge(win: _Window, cl: _Clusters, e) -> tuple[_Clusters, bool]:
    """Deaths (no support), seen -> audio-only conversions, and merges of duplicates."""
    cfg = win.cfg
    K = cl.K
    if K == 0:
        return cl, False
    mv, ma = win.masses(e, K)
    changed = False
    cl = cl.copy()
    keep = np.ones(K, bool)
    for k in range(K):
        if mv[k] < cfg.min_visual_mass:
            if ma[k] >= cfg.min_audio_mass:
                if not cl.audio_only[k]:
                    cl.audio_only[k] = True
                    changed = True
            else:
                keep[k] = False
                changed = True
        elif cl.audio_only[k]:  # cannot happen (audio-only clusters take no visual mass)
            cl.audio_only[k] = False
    # merges keep the older (smaller) label
    order = np.argsort(cl.labels)
    # 1. seen duplicates: closer than merge_distance, mass-weighted position
    for ii, a in enumerate(order):
        if not keep[a] or cl.audio_only[a]:
            continue
        for b in order[ii + 1:]:
            if not keep[b] or cl.audio_only[b]:
                continue
            if np.linalg.norm(cl.pos[a] - cl.pos[b]) < cfg.merge_distance:
                keep[b] = False
                changed = True
                wa_, wb_ = mv[a] + 1e-9, mv[b] + 1e-9
                cl.pos[a] = (wa_ * cl.pos[a] + wb_ * cl.pos[b]) / (wa_ + wb_)
                cl.itd[a] = win.geometry.itd(cl.pos[a])[0]
                cl.avar[a] = max(cl.avar[a], cl.avar[b])
    # 2. an audio-only cluster whose ITD matches a seen cluster is that (now seen) speaker:
    #    the best match (smallest normalised ITD difference) takes it
    seen = [k for k in order if keep[k] and not cl.audio_only[k]]
    for a in order:
        if not keep[a] or not cl.audio_only[a] or not seen:
            continue
        z = [abs(cl.itd[a] - cl.itd[k]) / math.sqrt(cl.avar[a] + cl.avar[k]) for k in seen]
        j = int(np.argmin(z))
        if z[j] >= cfg.merge_itd:
            continue
        k = seen[j]
        changed = True
        if cl.labels[a] < cl.labels[k]:  # the older identity survives, with the seen geometry
            cl.labels[a], cl.labels[k] = cl.labels[k], cl.labels[a]
        keep[a] = False
    # 3. audio-only duplicates
    for ii, a in enumerate(order):
        if not keep[a] or not cl.audio_only[a]:
            continue
        for b in order[ii + 1:]:
            if keep[b] and cl.audio_only[b] and abs(cl.itd[a] - cl.itd[b]) < cfg.merge_itd * (
                    math.sqrt(cl.avar[a] + cl.avar[b])):
                keep[b] = False
                changed = True
    if changed:
        cl = _reset_mixing(cl.subset(keep))
    return cl, changed


def dense_cores(X, weights, radius: float, min_mass: float, max_cores: int) -> np.ndarray:
    """Centres of the dense cores of weighted 3D points, densest first.

    Greedy: the point with the most weight within ``radius`` (among the points not yet
    taken) seeds a core if that weight reaches ``min_mass``; the core is the weighted
    mean of those neighbours, and the points within ``radius`` of the seed or of the
    core are taken.  Repeats until no seed qualifies or ``max_cores`` are found.

    Parameters
    ----------
    X : (N, 3) m.  weights : (N,) >= 0.  radius : m.  min_mass : weight.

    Returns
    -------
    (C, 3) core centres, C <= max_cores.
    """
    X = np.asarray(X, dtype=float).reshape(-1, 3)
    w = np.asarray(weights, dtype=float).reshape(len(X))
    near = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) < radius ** 2
    free = np.ones(len(X), bool)
    cores = []
    while len(cores) < max_cores and np.any(free):
        density = np.where(free, near[:, free] @ w[free], -1.0)
        i = int(np.argmax(density))
        if density[i] < min_mass:
            break
        sel = near[i] & free
        c = (w[sel, None] * X[sel]).sum(0) / max(w[sel].sum(), 1e-300)
        cores.append(c)
        free &= ~(near[i] | (((X - c) ** 2).sum(-1) < radius ** 2))
    return np.array(cores).reshape(-1, 3)


def _visual_births(win: _Window, cl: _Clusters, e, wcfg: wdem.WdemConfig, next_label):
    cfg = win.cfg
    nv = len(win.X)
    if nv == 0:
        return None
    free = win.wv * e["eta_v"][:, -1] if "eta_v" in e else win.wv
    cand = np.flatnonzero(e["eta_v"][:, -1] > 0.5) if "eta_v" in e else np.arange(nv)
    seen = ~cl.audio_only
    if np.any(seen):
        # points beyond every seen cluster's gate are unexplained too, whatever their
        # clutter responsibility: the heavy tails of the weighted-data marginal would
        # otherwise let the first cluster of a window absorb people seen later
        delta = win.visual_terms(cl.subset(seen))[0]
        outside = delta.min(axis=1) > _BIRTH_GATE
        free = np.where(outside, win.wv, free)
        cand = np.flatnonzero(outside | (free > 0.5 * win.wv))
    if free[cand].sum() < cfg.min_visual_mass:
        return None
    Xc, wc = win.X[cand], free[cand]
    d2 = ((Xc[:, None, :] - Xc[None, :, :]) ** 2).sum(-1)
    density = (d2 < cfg.birth_radius ** 2) @ wc
    if density.max() < cfg.min_visual_mass:
        return None
    common = dict(variant=wcfg.variant, covariance=wcfg.covariance,
                  outlier_volume=cfg.visual_outlier_volume, max_iter=wcfg.max_iter,
                  tol=max(wcfg.tol, 1e-5), reg_covar=max(wcfg.reg_covar, 1e-6),
                  seed=wcfg.seed)
    try:
        if cfg.birth_search == "cores":
            cores = dense_cores(Xc, wc, cfg.birth_radius, cfg.min_visual_mass, wcfg.k_max)
            if len(cores) == 0 or len(cores) > np.count_nonzero(wc > 0):
                return None
            # a rough fit is enough: the window's conjugate EM refines the new clusters
            common["tol"] = max(common["tol"], 1e-3)
            res = wdem.fit(Xc, wc, len(cores), init="means", means_init=cores, **common)
        else:
            k_max = int(min(wcfg.k_max, max(1, len(cand) // 4)))
            res = wdem.select(Xc, wc, 1, k_max, criterion=wcfg.criterion, **common)
    except ValueError:
        return None
    mass = (res.responsibilities[:, :res.n_components] * wc[:, None]).sum(axis=0)
    # a birth needs the mass and a dense core (not a broad component over scattered clutter)
    core = np.array([((d2[i] < cfg.birth_radius ** 2) @ wc) for i in
                     np.argmin(((Xc[:, None, :] - res.means[None]) ** 2).sum(-1), axis=0)])
    # (cores: the dense core of birth_radius already says "one person"; the fitted spread
    # may exceed visual_std_max through a few far points and is clamped below)
    compact = (np.ones(res.n_components, bool) if cfg.birth_search == "cores" else
               np.linalg.eigvalsh(res.covariances)[:, -1] <= cfg.visual_std_max ** 2)
    ok = (mass >= cfg.min_visual_mass) & (core >= cfg.min_visual_mass) & compact
    if not np.any(ok):
        return None
    pos = res.means[ok]
    vcov = _floor_cov(res.covariances[ok], cfg.visual_std_min ** 2, cfg.visual_std_max ** 2)
    n = len(pos)
    itd = win.geometry.itd(pos)
    labels = np.arange(next_label, next_label + n)
    return _concat(cl, pos, vcov, itd, np.full(n, cfg.audio_std_init ** 2), np.zeros(n, bool),
                   labels), n


def _audio_births(win: _Window, cl: _Clusters, e, next_label):
    cfg = win.cfg
    na = len(win.tau)
    if na == 0:
        return None
    free = win.wa * e["eta_a"][:, -1] if "eta_a" in e else win.wa.copy()
    total = free.sum()
    if total < cfg.min_audio_mass:
        return None
    half = 2.0 * cfg.audio_std_init
    near = np.abs(win.tau[:, None] - win.tau[None, :]) < half
    mass = near @ free
    i = int(np.argmax(mass))
    clutter = total * (2 * half) / (2 * win.tau_max)
    if mass[i] < cfg.min_audio_mass or mass[i] < cfg.audio_birth_ratio * clutter:
        return None
    sel = near[i]
    itd = float((free[sel] * win.tau[sel]).sum() / free[sel].sum())
    # an ITD explained by an existing cluster is not a new speaker
    if cl.K and np.any(np.abs(cl.itd - itd) < cfg.merge_itd * np.sqrt(cl.avar)):
        return None
    pos = win.geometry.point_from_itd(itd, cfg.default_depth)
    vcov = np.eye(3)[None] * cfg.visual_std_init ** 2
    return _concat(cl, pos, vcov, np.array([itd]), np.array([cfg.audio_std_init ** 2]),
                   np.ones(1, bool), np.array([next_label])), 1


# ---------------------------------------------------------------------------
# One window
# ---------------------------------------------------------------------------
@dataclass
class _State:
    clusters: _Clusters
    next_label: int


def _run_window(win: _Window, state: _State | None, wcfg: wdem.WdemConfig):
    cl = state.clusters.copy() if state is not None else _Clusters.empty()
    next_label = state.next_label if state is not None else 0
    if cl.K:
        cl = _reset_mixing(cl)
    total_iter = 0
    cl, e, hist, n = win.run(cl)
    total_iter += n
    for _round in range(3):
        cl2, changed = _prune_and_merge(win, cl, e)
        if changed:
            cl, e, hist, n = win.run(cl2)
            total_iter += n
        born = False
        out = _visual_births(win, cl, e, wcfg, next_label)
        if out is not None:
            cl, n_new = out
            next_label += n_new
            born = True
        out = _audio_births(win, cl, e, next_label) if not born else None
        if out is not None:
            cl, n_new = out
            next_label += n_new
            born = True
        if not born:
            if changed:
                continue
            break
        cl, e, hist, n = win.run(cl)
        total_iter += n
    cl, changed = _prune_and_merge(win, cl, e)
    if changed:
        cl, e, hist, n = win.run(cl)
        total_iter += n
    return cl, e, hist, total_iter, next_label


def _events(win: _Window, cl: _Clusters, e, stamp) -> list[AVEvent]:
    cfg = win.cfg
    K = cl.K
    if K == 0:
        return []
    mv, ma = win.masses(e, K)
    pos = cl.pos.copy()
    ao = np.flatnonzero(cl.audio_only)
    if len(ao):
        pos[ao] = win.geometry.point_from_itd(cl.itd[ao], cfg.default_depth)
    J = win.geometry.itd_jacobian(pos)
    events = []
    for k in range(K):
        if cl.audio_only[k]:
            g = J[k]
            gg = float(g @ g)
            proj = np.outer(g, g) / gg
            n_eff = max(float(ma[k]), 1.0)
            cov = proj * (cl.avar[k] / n_eff) / gg + (np.eye(3) - proj) * cfg.out_of_view_std ** 2
        else:
            info = cl.info[k] if cl.info is not None else np.eye(3)
            cov = np.linalg.inv(info)
        events.append(AVEvent(
            position=pos[k], covariance=0.5 * (cov + cov.T), spread=cl.vcov[k].copy(),
            visual_mass=float(mv[k]), audio_mass=float(ma[k]), itd=float(cl.itd[k]),
            itd_std=float(math.sqrt(cl.avar[k])), out_of_view=bool(cl.audio_only[k]),
            label=int(cl.labels[k]), stamp=float(stamp)))
    return events


def _expand(eta, keep, K):
    full = np.zeros((len(keep), K + 1))
    full[:, K] = 1.0
    if eta is not None:
        full[keep] = eta
    return full


def cluster_window(visual_points, visual_weights, itds, itd_weights, geometry=None,
                   config: AVClusteringConfig | None = None,
                   wdem_config: wdem.WdemConfig | None = None, visual_covariances=None,
                   previous=None, stamp: float = 0.0, use_numba: bool = True) -> AVWindowResult:
    """Cluster one window of audio-visual observations.

    Parameters
    ----------
    visual_points : (N_v, 3) m, left camera optical frame; visual_weights : (N_v,) >= 0.
    itds : (N_a,) s (positive when the sound reaches the left mic first); itd_weights :
        (N_a,) >= 0.  Non-finite ITDs are allowed only with weight 0.
    geometry : MicGeometry (default: the default MicArrayConfig).
    config : AVClusteringConfig; wdem_config : WdemConfig (E-step variant, births' K search).
    visual_covariances : optional (N_v, 3, 3) m^2 per-observation covariances (stereo noise).
    previous : ``AVWindowResult.state`` of the previous window (warm start).
    stamp : s, written into the events.
    use_numba : run the window EM with the numba kernel (default) or its numpy reference.

    Returns
    -------
    AVWindowResult
    """
    cfg = config or AVClusteringConfig()
    wcfg = wdem_config or wdem.WdemConfig()
    geometry = geometry if geometry is not None else MicGeometry.from_config(MicArrayConfig())
    X, wv, C, tau, wa = _validate_inputs(visual_points, visual_weights, itds, itd_weights,
                                         visual_covariances)
    if previous is not None and not isinstance(previous, _State):
        raise ValueError("previous must be the .state of an AVWindowResult")
    win = _Window(X, wv, C, tau, wa, geometry, cfg, wcfg.variant, wcfg.reg_covar,
                  bool(use_numba))
    cl, e, hist, n_iter, next_label = _run_window(win, previous, wcfg)
    K = cl.K
    return AVWindowResult(
        events=_events(win, cl, e, stamp),
        visual_responsibilities=_expand(e.get("eta_v"), win.keep_v, K),
        audio_responsibilities=_expand(e.get("eta_a"), win.keep_a, K),
        log_likelihood=hist, n_iter=n_iter, state=_State(cl, next_label))


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------
class AVClusterer:
    """Sliding-window audio-visual clustering (the fusion stage).

    Parameters
    ----------
    config : AVClusteringConfig
    geometry : MicGeometry or MicArrayConfig
    wdem_config : WdemConfig (E-step variant and the K search of visual births)
    use_numba : numba kernel (default) or numpy reference for the window EM
    """

    def __init__(self, config: AVClusteringConfig | None = None, geometry=None,
                 wdem_config: wdem.WdemConfig | None = None, use_numba: bool = True):
        self.use_numba = bool(use_numba)
        self.config = config or AVClusteringConfig()
        if geometry is None:
            geometry = MicArrayConfig()
        self.geometry = (geometry if isinstance(geometry, MicGeometry)
                         else make_head_model(geometry))
        self.wdem_config = wdem_config or wdem.WdemConfig()
        self.reset()

    def reset(self):
        """Forget every observation and cluster."""
        self._vt = np.zeros(0)
        self._vx = np.zeros((0, 3))
        self._vw = np.zeros(0)
        self._vc = np.zeros((0, 3, 3))
        self._has_cov = None
        self._at = np.zeros(0)
        self._ax = np.zeros(0)
        self._aw = np.zeros(0)
        self._now = -math.inf
        self._next = None
        self._state = None
        self.last_result: AVWindowResult | None = None

    def update(self, t, visual_points=None, visual_weights=None, itds=None, itd_weights=None,
               visual_covariances=None, itd_stamps=None) -> list[AVEvent]:
        """Add observations stamped ``t`` (s) and cluster the window when a hop is due.

        Parameters
        ----------
        t : float, s; stamp of the visual observations (and of the ITDs unless
            ``itd_stamps`` is given).  Observations may arrive slightly out of order; the
            window ends at the latest stamp seen.
        visual_points, visual_weights, visual_covariances, itds, itd_weights :
            as in :func:`cluster_window` (any may be None or empty).
        itd_stamps : optional (N_a,) s, one stamp per ITD (audio frame centres).

        Returns
        -------
        list of AVEvent: the clusters of the window ending now when a hop was due, else [].
        """
        if not np.isfinite(t):
            raise ValueError(f"t={t!r} must be a finite time in seconds")
        X, wv, C, tau, wa = _validate_inputs(visual_points, visual_weights, itds, itd_weights,
                                             visual_covariances)
        if len(X):
            if self._has_cov is None:
                self._has_cov = C is not None
            elif self._has_cov != (C is not None):
                raise ValueError("give visual_covariances with every visual batch or never")
            self._vt = np.concatenate([self._vt, np.full(len(X), float(t))])
            self._vx = np.concatenate([self._vx, X])
            self._vw = np.concatenate([self._vw, wv])
            if C is not None:
                self._vc = np.concatenate([self._vc, C])
        if len(tau):
            ts = np.full(len(tau), float(t)) if itd_stamps is None else np.asarray(
                itd_stamps, dtype=np.float64)
            if ts.shape != tau.shape or not np.all(np.isfinite(ts)):
                raise ValueError(f"itd_stamps must be finite with shape {tau.shape}")
            self._at = np.concatenate([self._at, ts])
            self._ax = np.concatenate([self._ax, tau])
            self._aw = np.concatenate([self._aw, wa])
            self._now = max(self._now, float(ts.max()))
        self._now = max(self._now, float(t))
        if self._next is None:
            self._next = self._now + self.config.hop_length
            return []
        if self._now < self._next:
            return []
        while self._next <= self._now:
            self._next += self.config.hop_length
        return self._cluster()

    def _cluster(self) -> list[AVEvent]:
        start = self._now - self.config.window_length
        kv = self._vt > start
        ka = self._at > start
        self._vt, self._vx, self._vw = self._vt[kv], self._vx[kv], self._vw[kv]
        if self._has_cov:
            self._vc = self._vc[kv]
        self._at, self._ax, self._aw = self._at[ka], self._ax[ka], self._aw[ka]
        result = cluster_window(self._vx, self._vw, self._ax, self._aw, self.geometry,
                                self.config, self.wdem_config,
                                self._vc if self._has_cov else None, self._state, self._now,
                                self.use_numba)
        self._state = result.state
        self.last_result = result
        return result.events


def warm_up() -> None:
    """Compile or load from cache the window kernels (and the WD-EM ones used by births)."""
    wdem.warm_up()
    rng = np.random.default_rng(0)
    X = np.array([0.0, 0.0, 2.0]) + 0.02 * rng.normal(size=(12, 3))
    itd = 1e-5 * rng.normal(size=20)
    cov = np.repeat(np.eye(3)[None] * 1e-4, 12, axis=0)
    for variant in wdem.VARIANTS:
        wc = wdem.WdemConfig(variant=variant)
        res = cluster_window(X, np.ones(12), itd, np.ones(20), wdem_config=wc)
        cluster_window(X, np.ones(12), itd, np.ones(20), wdem_config=wc,
                       visual_covariances=cov, previous=res.state)
