"""Where new tracks come from: chains of unexplained visual observations, unexplained
audio frames that agree on an ITD (talkers out of view), and audio-visual events."""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from .models import constant_velocity_model, gauss_logpdf, symmetrise

__all__ = ["AudioBirths", "Birth", "BirthChain", "VisualBirths", "event_birth",
           "near_a_track", "reentry_candidates",
           "reentry_match"]

# audio-only births: frames count when their normalised weight is at least this and the
# mass they leave to clutter (w~ x beta_0) exceeds _BIRTH_MIN_MASS
_BIRTH_MIN_WEIGHT = 0.3
_BIRTH_MIN_MASS = 0.05
_AUDIO_BIRTH_SPEAKING = 0.9  # initial P(speaking) of an audio-only track (born from speech)


class Birth(NamedTuple):
    """A track to start: state mean (6,) and covariance (6, 6), initial existence
    probability and P(speaking), whether it has visual support, and the stats key."""

    mean: np.ndarray
    cov: np.ndarray
    existence: float
    visual: bool
    speaking: float
    kind: str

    def moved(self, pose) -> Birth:
        """The same birth in another frame (``pose``: new frame <- this one)."""
        T = np.zeros((6, 6))
        T[:3, :3] = T[3:, 3:] = pose.R
        mean = T @ self.mean
        mean[:3] += pose.t
        return self._replace(mean=mean, cov=T @ self.cov @ T.T)


def near_a_track(point, positions, merge_distance: float) -> bool:
    """True when ``point`` (3,) is closer than half of ``merge_distance`` (m) to one of the
    track ``positions`` (K, 3): the same head (two head centres cannot be that close)."""
    return bool(len(positions) and np.min(np.linalg.norm(
        positions - point, axis=1)) < 0.5 * merge_distance)


def reentry_match(mean, cov, track_mean, track_cov, eligible, sigma: float,
                  gate: float) -> int:
    """The track a new visual track is the same person as: the nearest ``eligible``
    track (no visual support: out of view or audio-only) within the squared Mahalanobis
    ``gate`` of the candidate, with both covariances and ``sigma``^2 I added (how far an
    unseen person may be from the coasting track: the ITD's bias, a step aside).

    Parameters
    ----------
    mean : array (3,)
        m, the candidate's position (tracker frame).
    cov : array (3, 3)
        m^2, its covariance.
    track_mean, track_cov : array (K, 3), (K, 3, 3)
        The tracks' positions (m) and position covariances (m^2).
    eligible : array (K,) bool
    sigma : float
        m (0: the covariances alone).
    gate : float
        Squared Mahalanobis distance (3 dof).

    Returns
    -------
    int
        Row of the track, or -1 when none is within the gate.
    """
    rows = reentry_candidates(mean, cov, track_mean, track_cov, eligible, sigma, gate)
    return int(rows[0]) if len(rows) else -1


def reentry_candidates(mean, cov, track_mean, track_cov, eligible, sigma: float,
                       gate: float) -> np.ndarray:
    """Every ``eligible`` track within the gate of :func:`reentry_match`, nearest first.

    Returns
    -------
    array (n,) int
        Rows of the tracks (empty when none is within the gate or ``sigma`` < 0).
    """
    idx = np.flatnonzero(eligible)
    if not len(idx) or sigma < 0:
        return np.zeros(0, dtype=np.int64)
    r = track_mean[idx] - mean
    S = track_cov[idx] + cov + sigma ** 2 * np.eye(3)
    md = np.einsum("ni,ni->n", r, np.linalg.solve(S, r[..., None])[..., 0])
    order = np.argsort(md, kind="stable")
    return idx[order[md[order] <= gate]].astype(np.int64)


class BirthChain:
    """A birth candidate: a Kalman filter over unassigned visual observations."""

    __slots__ = ("mu", "cov", "n_obs", "llr", "misses", "stamp", "seen")

    def __init__(self, mu, cov, stamp):
        self.mu = mu
        self.cov = cov
        self.n_obs = 1
        self.llr = 0.0
        self.misses = 0
        self.stamp = stamp  # s, the time mu and cov are predicted to
        self.seen = stamp  # s, its last observation


class VisualBirths:
    """Visual births: observations left to clutter (alpha_m0 >= ``birth_unassigned``, not
    within half of ``merge_distance`` of a track) are chained over image frames (gated
    Hungarian assignment, ``birth_max_misses``); a chain of ``birth_window`` observations
    whose log marginal likelihood beats clutter by ``birth_llr_threshold`` is complete.
    Given an in-view test (tracking in a fixed frame), a chain predicted out of view is
    held where it is, without misses, for ``birth_unseen_hold`` s after its last
    observation (the head turned away from a person before their track was born).

    Parameters
    ----------
    config : TrackerConfig
    q_axes : array (3,)
        White-acceleration spectral density per axis (m^2/s^3) of the chains' model.
    """

    def __init__(self, config, q_axes):
        self.config = config
        self.q_axes = q_axes
        self.chains: list[BirthChain] = []

    def update(self, t: float, xyz, cov, w, alpha, positions, in_view=None):
        """One image frame.

        Parameters
        ----------
        t : float
            s.
        xyz, cov, w : array (M, 3), (M, 3, 3), (M,)
            The frame's observations (m, m^2, weights).
        alpha : array (M, K + 1)
            Their responsibilities (column 0 = clutter).
        positions : array (K, 3)
            m, the tracks' positions.
        in_view : callable, optional
            Points (N, 3) -> bool (N,), the camera view at ``t`` (tracker frame): chains
            outside it are held (``birth_unseen_hold``); None: no chain is held.

        Returns
        -------
        complete : list of BirthChain
            Chains that are ready to become tracks, in order.
        single : list of (mean (6,), cov (6, 6))
            With ``birth_window`` 1: the new observations that are tracks at once.
        """
        c = self.config
        cand = (alpha[:, 0] >= c.birth_unassigned) & (w >= c.birth_min_weight) if len(w) \
            else np.zeros(0, dtype=bool)
        if np.any(cand) and len(positions) and c.merge_distance > 0:
            # a second detection of a tracked head (two head centres cannot be this close)
            near = np.linalg.norm(xyz[:, None] - positions[None], axis=2).min(axis=1)
            cand &= near >= 0.5 * c.merge_distance
        idx = np.flatnonzero(cand)
        R = cov[idx] / w[idx, None, None]
        v = xyz[idx]
        log_u = math.log(c.visual_clutter_density)
        chains = self.chains
        held = np.zeros(len(chains), dtype=bool)
        if in_view is not None and c.birth_unseen_hold > 0 and chains:
            recent = np.array([t - ch.seen <= c.birth_unseen_hold for ch in chains])
            held = recent & ~in_view(np.array([ch.mu[:3] for ch in chains]))
        for a, ch in enumerate(chains):  # chains are predicted only here, at image frames
            if held[a]:  # out of view: where it was, as a person the head turned from
                ch.stamp = max(ch.stamp, t)
            elif t > ch.stamp:
                D, Q = constant_velocity_model(t - ch.stamp, np.zeros(1), self.q_axes[None, :])
                ch.mu = D[0] @ ch.mu
                ch.cov = D[0] @ ch.cov @ D[0].T + Q[0]
                ch.stamp = t
        n_c, n_o = len(chains), len(idx)
        used = np.zeros(n_o, dtype=bool)
        extended = np.zeros(n_c, dtype=bool)
        if n_c and n_o:
            cost = np.full((n_c, n_o), np.inf)
            ll = np.zeros((n_c, n_o))
            for a, ch in enumerate(chains):
                S = ch.cov[None, :3, :3] + R
                r = v - ch.mu[None, :3]
                md = np.einsum("mi,mi->m", r, np.linalg.solve(S, r[..., None])[..., 0])
                ll[a] = gauss_logpdf(r, S)
                cost[a] = np.where(md <= c.birth_gate, -ll[a], np.inf)
            finite = np.isfinite(cost)
            if np.any(finite):
                big = np.abs(cost[finite]).max() + 1e6
                rows, cols = linear_sum_assignment(np.where(finite, cost, big))
                for a, m in zip(rows, cols):
                    if not finite[a, m]:
                        continue
                    ch = chains[a]
                    S = ch.cov[:3, :3] + R[m]
                    K = ch.cov[:, :3] @ np.linalg.inv(S)
                    ch.mu = ch.mu + K @ (v[m] - ch.mu[:3])
                    ch.cov = symmetrise(ch.cov - K @ ch.cov[:3, :])
                    ch.llr += ll[a, m] - log_u
                    ch.n_obs += 1
                    ch.misses = 0
                    ch.seen = t
                    used[m] = True
                    extended[a] = True
        survivors, complete, single = [], [], []
        for a, ch in enumerate(chains):
            if not extended[a] and not held[a]:
                ch.misses += 1
                if ch.misses > c.birth_max_misses:
                    continue
            if ch.n_obs >= c.birth_window and ch.llr >= c.birth_llr_threshold:
                complete.append(ch)
                continue
            survivors.append(ch)
        for m in np.flatnonzero(~used):
            mu = np.r_[v[m], 0.0, 0.0, 0.0]
            P = np.zeros((6, 6))
            P[:3, :3] = R[m]
            P[3:, 3:] = c.birth_velocity_sigma ** 2 * np.eye(3)
            if c.birth_window <= 1:
                single.append((mu, P))
            else:
                survivors.append(BirthChain(mu, P, t))
        self.chains = survivors
        return complete, single


class AudioBirths:
    """Audio-only births: active audio frames left to clutter in the last
    ``audio_birth_window`` s that agree on an ITD (within ``audio_birth_spread`` itd_sigma
    of their weighted median), with a mass of at least ``audio_birth_mass``, give a track
    on that ITD cone at distance ``audio_birth_depth`` and height ``audio_birth_height``
    (by default only outside the camera view).

    Parameters
    ----------
    config : TrackerConfig
    geometry : MicGeometry or head model
    """

    def __init__(self, config, geometry):
        self.config = config
        self.geometry = geometry
        self.buffer: deque = deque()  # (stamp s, ITD s, unexplained mass)

    def update(self, t: float, g, wn, beta0, shrink: float, in_view: Callable,
               itd_model: Callable) -> Birth | None:
        """One audio frame.

        Parameters
        ----------
        t : float
            s, the frame's stamp.
        g, wn, beta0 : array (F,)
            ITDs (s), normalised weights and clutter responsibilities.
        shrink : float
            Current ITD shrink per metre (1/m).
        in_view : callable
            Points (N, 3) -> bool (N,).
        itd_model : callable
            Points (N, 3) -> expected ITD (N,) s and gradient (N, 3) s/m.

        Returns
        -------
        Birth or None
            Covariance ``audio_birth_sigma``^2 across the ITD cone and the ITD precision
            of the mass along it; the track starts speaking (it was born from speech).
        """
        c = self.config
        buf = self.buffer
        for gi, wi, bi in zip(g, wn, beta0):
            mass = wi * bi
            if wi >= _BIRTH_MIN_WEIGHT and mass > _BIRTH_MIN_MASS:
                buf.append((t, gi, mass))
        while buf and buf[0][0] < t - c.audio_birth_window:
            buf.popleft()
        if not buf:
            return None
        arr = np.array(buf)
        if arr[:, 2].sum() < c.audio_birth_mass:
            return None
        order = np.argsort(arr[:, 1])
        cum = np.cumsum(arr[order, 2])
        med = arr[order[np.searchsorted(cum, 0.5 * cum[-1])], 1]
        inl = np.abs(arr[:, 1] - med) <= c.audio_birth_spread * c.itd_sigma
        mass = arr[inl, 2].sum()
        if mass < c.audio_birth_mass:
            return None
        itd = float(np.sum(arr[inl, 1] * arr[inl, 2]) / mass)
        d0 = c.audio_birth_depth
        geo = self.geometry
        point = geo.point_from_itd(itd / max(1.0 - shrink * d0, 0.2), d0)[0]
        # turn about the microphone axis (the exact ITD is invariant) to the birth height
        rel = point - geo.centre
        along = (rel @ geo.axis) * geo.axis
        r_perp = float(np.linalg.norm(rel - along))
        down = np.array([0.0, 1.0, 0.0]) - geo.axis[1] * geo.axis
        down = down - (down @ geo.forward) * geo.forward
        if r_perp > 1e-6 and np.linalg.norm(down) > 1e-6:
            down /= np.linalg.norm(down)
            s_phi = float(np.clip((c.audio_birth_height - geo.centre @ down) / r_perp,
                                  -0.9, 0.9))
            point = geo.centre + along + r_perp * (math.sqrt(1.0 - s_phi ** 2) * geo.forward
                                                   + s_phi * down)
        if c.audio_birth_outside_view_only and in_view(point[None])[0]:
            return None
        J = itd_model(point[None])[1][0]
        jn = float(np.linalg.norm(J))
        jhat = J / jn
        s2 = c.audio_birth_sigma ** 2
        var_along = (c.itd_sigma / jn) ** 2 / max(mass, 1.0)  # ITD precision of the mass
        P = np.zeros((6, 6))
        P[:3, :3] = s2 * np.eye(3) - (s2 - min(var_along, s2)) * np.outer(jhat, jhat)
        P[3:, 3:] = c.birth_velocity_sigma ** 2 * np.eye(3)
        self.buffer = deque(row for row, keep in zip(buf, ~inl) if keep)
        return Birth(np.r_[point, 0.0, 0.0, 0.0], P, c.audio_birth_existence, False,
                     _AUDIO_BIRTH_SPEAKING, "births_audio")


def event_birth(position, covariance, spread, visual_mass: float, audio_mass: float,
                out_of_view: bool, track_mean, track_cov, in_view: Callable,
                config) -> Birth | None:
    """The track an audio-visual event starts, if any.

    An in-view event with ``event_birth_visual_mass`` of visual support starts a track at
    its position; an out-of-view event with ``event_birth_audio_mass`` of audio starts an
    audio-only track (outside the camera view only).  None when a track explains the
    event: positions within ``event_gate`` (Mahalanobis; the track's covariance plus the
    event's covariance and spread) or ``merge_distance``.

    Parameters
    ----------
    position : array (3,)
        m, left camera optical frame.
    covariance, spread : array (3, 3)
        m^2, position uncertainty and spread of the event's visual observations.
    visual_mass, audio_mass : float
        Support of the event.
    out_of_view : bool
        Audio without visual support.
    track_mean, track_cov : array (K, 6), (K, 6, 6)
        The live tracks (including those born from earlier events of the window).
    in_view : callable
        Points (N, 3) -> bool (N,).
    config : TrackerConfig
    """
    c = config
    pos, cov = position, covariance
    if len(track_mean):
        r = track_mean[:, :3] - pos
        S = track_cov[:, :3, :3] + cov + symmetrise(spread)
        md = np.einsum("ni,ni->n", r, np.linalg.solve(S, r[..., None])[..., 0])
        if np.any(md <= c.event_gate) or np.min(
                np.linalg.norm(r, axis=1)) < max(c.merge_distance, 1e-9):
            return None
    P = np.zeros((6, 6))
    P[:3, :3] = symmetrise(cov)
    P[3:, 3:] = c.birth_velocity_sigma ** 2 * np.eye(3)
    mu = np.r_[pos, 0.0, 0.0, 0.0]
    if not out_of_view:
        if visual_mass < c.event_birth_visual_mass:
            return None
        if not in_view(pos[None])[0]:
            return None
        speaking = (_AUDIO_BIRTH_SPEAKING if audio_mass >= c.event_birth_audio_mass
                    else c.speaking_entry)
        return Birth(mu, P, c.birth_existence, True, speaking, "births_events")
    if not c.audio_births or audio_mass < c.event_birth_audio_mass:
        return None
    if c.audio_birth_outside_view_only and in_view(pos[None])[0]:
        return None
    return Birth(mu, P, c.audio_birth_existence, False, _AUDIO_BIRTH_SPEAKING,
                 "births_events_audio")
