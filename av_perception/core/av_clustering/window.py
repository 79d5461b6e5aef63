"""The observations of one window and its EM: input validation, the model constants of
both modalities, E-step and generalised M-step (Gauss-Newton on the positions) in
numpy, the reference of the numba kernel that :meth:`_Window.run` calls."""
from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from .. import wdem
from ..geometry import MicGeometry
from .clusters import _PI_FLOOR, _Clusters
from .config import AVClusteringConfig
from .kernels import (
    N_PARAMS,
    P_AMAX2,
    P_AMIN2,
    P_CENTRE,
    P_GN_STEPS,
    P_INV_P2,
    P_LOG_OUT_A,
    P_LOG_OUT_V,
    P_MODEL2,
    P_REG,
    P_SHRINK,
    P_SPEED,
    P_TAU_MAX,
    P_TOL,
    P_VMAX2,
    P_VMIN2,
    _em_kernel,
)

_LOG_2PI = math.log(2.0 * math.pi)


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
        """Generalised M-step: S_k by a few Gauss-Newton steps with step halving (the
        objective never increases) on sum_j eta u |x_j - S|^2_{(Sigma_k + C_j)^-1}
        + sum_i eta u (tau_i - G(S))^2 / max(sigma_k^2, m^2) + |S - S_k^0|^2 / p^2 (m =
        ``itd_model_std``, p =
        ``position_prior_std``); Sigma_k by the measurement-error EM update, sigma_k^2
        the weighted ITD residual, both clipped to the configured ranges (unbounded, a
        silent cluster widens until it absorbs another speaker's ITDs)."""
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
                cl.pos[idx], A[idx], b[idx],
                sw_a[idx] / np.maximum(cl.avar[idx], cfg.itd_model_std ** 2), tbar[idx],
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
        params[P_SHRINK] = getattr(self.geometry, "shrink", 0.0)
        params[P_CENTRE:P_CENTRE + 3] = self.geometry.centre
        params[P_MODEL2] = cfg.itd_model_std ** 2
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
