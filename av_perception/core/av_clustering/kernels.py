"""numba kernel of the window EM (E-step, M-step with Gauss-Newton on the positions,
the loop); its plain-numpy reference is :meth:`~.window._Window.run_reference`.  The
kernel evaluates the ITD G and its gradient with :func:`~av_perception.core.head.model_itd_jac`
(exact near-field formula in free field, the model's (lat, pol) table otherwise), times
the reverberation shrink factor of :mod:`.shrink`; the reference calls the model's ``itd``
/ ``itd_jacobian`` (same arithmetic)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..head import model_itd_jac
from .clusters import _PI_FLOOR

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
P_SHRINK = 12  # reverberation shrink b (1/m) of the ITD model (shrink.py)
P_CENTRE = 13  # 3 values: the mics' centre, from which the shrink's distance counts
P_MODEL2 = 16  # itd_model_std ** 2: the ITD variance floor of the position step
N_PARAMS = 17
#: the shrink factor 1 - b d never falls below this (shrink.MIN_FACTOR)
_MIN_FACTOR = 0.2


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
def _itd_jac(S, ml, mr, hframe, htab, params, J):
    """Expected ITD of S, (1 - b d) G(S) (b = params[P_SHRINK], d the distance to the mics'
    centre; the factor floored at _MIN_FACTOR), and its gradient into J."""
    g = model_itd_jac(S, ml, mr, params[P_SPEED], hframe, htab, J)
    b = params[P_SHRINK]
    if b == 0.0:
        return g
    d2 = 0.0
    for a in range(3):
        d2 += (S[a] - params[P_CENTRE + a]) ** 2
    d = max(math.sqrt(d2), 1e-9)
    f = 1.0 - b * d
    if f < _MIN_FACTOR:
        for a in range(3):
            J[a] *= _MIN_FACTOR
        return _MIN_FACTOR * g
    for a in range(3):
        J[a] = f * J[a] - b * g * (S[a] - params[P_CENTRE + a]) / d
    return f * g


@njit(cache=True)
def _gn_objective(S, A, b, s_a, tbar, S0, inv_p2, ml, mr, hframe, htab, params, J):
    q = 0.0
    for a in range(3):
        q -= 2.0 * S[a] * b[a]
        q += inv_p2 * (S[a] - S0[a]) ** 2
        for c in range(3):
            q += S[a] * A[a, c] * S[c]
    g = _itd_jac(S, ml, mr, hframe, htab, params, J)
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
        s_a[k] = sw_a[k] / max(avar[k], params[P_MODEL2])
        if not audio_only[k]:
            f[k] = _gn_objective(pos[k], A[k], b[k], s_a[k], tbar[k], start_pos[k], inv_p2, ml,
                                 mr, hframe, htab, params, J)
    if any_seen:
        for _step in range(int(params[P_GN_STEPS])):
            all_small = True
            for k in range(K):
                if audio_only[k]:
                    continue
                g = _itd_jac(pos[k], ml, mr, hframe, htab, params, J)
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
                                          inv_p2, ml, mr, hframe, htab, params, J2)
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
            itd[k] = _itd_jac(pos[k], ml, mr, hframe, htab, params, J)
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
