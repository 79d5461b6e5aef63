"""Births, deaths and merges of clusters between EM runs of a window: clusters without
support die or become audio-only, duplicates merge, unexplained visual points (dense
cores, then a weighted-data EM) and ITDs (densest interval against clutter) give births."""
from __future__ import annotations

import math

import numpy as np

from .. import wdem
from .clusters import _Clusters
from .window import _floor_cov, _Window

_BIRTH_GATE = 16.27  # squared Mahalanobis, 3 dof, 99.9 %: a visual point outside it is unexplained


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


def _within(X, radius: float, rows: int = 512) -> np.ndarray:
    """(N, N) bool: pairs of points closer than ``radius``; computed ``rows`` rows at a
    time (the (N, N, 3) differences of all points at once take 24 N^2 bytes: gigabytes
    for a window of many points)."""
    near = np.empty((len(X), len(X)), bool)
    for i in range(0, len(X), rows):
        near[i:i + rows] = ((X[i:i + rows, None, :] - X[None, :, :]) ** 2).sum(-1) < radius ** 2
    return near


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
    near = _within(X, radius)
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
    near = _within(Xc, cfg.birth_radius)
    density = near @ wc
    if density.max() < cfg.min_visual_mass:
        return None
    common = dict(variant=wcfg.variant, covariance=wcfg.covariance,
                  outlier_volume=cfg.visual_outlier_volume, max_iter=wcfg.max_iter,
                  tol=max(wcfg.tol, 1e-5), reg_covar=max(wcfg.reg_covar, 1e-6),
                  seed=wcfg.seed, n_init=wcfg.n_init)
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
    core = np.array([(near[i] @ wc) for i in
                     np.argmin(((Xc[:, None, :] - res.means[None]) ** 2).sum(-1), axis=0)])
    # (cores: the dense core of birth_radius already says "one person"; the fitted spread
    # may exceed visual_std_max through a few far points and is clamped below)
    # (covariances: the clusters' spread; under WD-EM the fitted Sigma_k are Student-t scales)
    compact = (np.ones(res.n_components, bool) if cfg.birth_search == "cores" else
               np.linalg.eigvalsh(res.covariances)[:, -1] <= cfg.visual_std_max ** 2)
    ok = (mass >= cfg.min_visual_mass) & (core >= cfg.min_visual_mass) & compact
    if not np.any(ok):
        return None
    pos = res.means[ok]
    # the window's Sigma_k is the same parameter as wdem's (a Student-t scale under WD)
    vcov = _floor_cov(res.scales[ok], cfg.visual_std_min ** 2, cfg.visual_std_max ** 2)
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
