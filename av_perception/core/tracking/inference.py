"""Variational inference of the multi-speaker tracker: the E-Z steps (visual and audio
responsibilities), the E-S step (track posteriors), their iteration, and the M-steps
(process-noise scale, ITD shrink)."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .models import (
    constant_velocity_model,
    emission_terms,
    itd_loglik,
    logsumexp,
    speaking_hmm_step,
    symmetrise,
    visual_loglik,
)

__all__ = [
    "ItdShrinkEstimator",
    "SpeechActivityLevel",
    "audio_responsibilities",
    "es_update",
    "process_noise_m_step",
    "speaking_filter",
    "tf_presence_terms",
    "variational_update",
    "visual_responsibilities",
]


def visual_responsibilities(xyz, R, Rinv, mean, cov, weight, logodds, unsupported,
                            in_view: Callable, config) -> np.ndarray:
    """E-Z visual: responsibilities of clutter and of each track for the observations.

    Parameters
    ----------
    xyz : array (M, 3)
        Observations, m, left camera optical frame.
    R, Rinv : array (M, 3, 3)
        Weighted covariances Phi / w (m^2) and their inverses.
    mean, cov : array (K, 6), (K, 6, 6)
        Track posteriors the likelihood is evaluated at.
    weight : array (M,)
        Observation weights in [0, 1] (the clutter prior with ``weighted_clutter_prior``).
    logodds : array (K,)
        Existence log-odds (the prior of "from track n", with detectability).
    unsupported : array (K,) bool
        Tracks without visual support for ``visual_timeout``: they do not share an
        observation that a supported track explains (alpha >= 0.5).
    in_view : callable
        Points (N, 3) -> bool (N,).
    config : TrackerConfig

    Returns
    -------
    alpha : array (M, K + 1)
        Column 0 = clutter.
    """
    c = config
    k = len(mean)
    m = len(xyz)
    logr = np.empty((m, k + 1))
    p0 = np.full(m, c.visual_clutter_prob)
    if c.weighted_clutter_prior:
        p0 = 1.0 - np.clip(weight, 0.0, 1.0) * (1.0 - c.visual_clutter_prob)
    p0 = np.clip(p0, 1e-6, 1.0 - 1e-6)
    logr[:, 0] = np.log(p0) + math.log(c.visual_clutter_density)
    if m == 0:
        return np.zeros((0, k + 1))
    ll = visual_loglik(xyz, R, Rinv, mean[:, :3], cov[:, :3, :3], c.association,
                       c.visual_gate)
    # prior of "from track n": existence x detectability (mean in view, else
    # unseen_detection_prob), normalised over the tracks
    prior = 1.0 / (1.0 + np.exp(-logodds))
    prior = prior * np.where(in_view(mean[:, :3]), 1.0, c.unseen_detection_prob)
    prior = prior / max(prior.sum(), 1e-300)
    logr[:, 1:] = (np.log(np.maximum(prior, 1e-300))[None, :] + np.log1p(-p0)[:, None]
                   + ll)
    alpha = np.exp(logr - logsumexp(logr, axis=1)[:, None])
    uns = unsupported
    if np.any(uns) and not np.all(uns):
        claimed = np.max(alpha[:, 1:][:, ~uns], axis=1) >= 0.5
        if np.any(claimed):
            a = alpha[claimed]
            a[:, 1:][:, uns] = 0.0
            alpha[claimed] = a / a.sum(axis=1, keepdims=True)
    return alpha


def audio_responsibilities(g, wn, G, J, cov, rate, config):
    """E-Z audio: responsibilities of clutter and of each track for the ITDs, with the
    direct-path share of each track's.

    Parameters
    ----------
    g, wn : array (F,)
        ITDs (s) and normalised weights w~ in (0, 1].
    G, J : array (K,), (K, 3)
        Expected ITD (s) of each track and its gradient (s/m).
    cov : array (K, 6, 6)
        Track covariances.
    rate : array (F, K)
        Expected emission rate of each track at each ITD's frame (the speaking
        posterior: eps + (1 - eps) q, see :func:`~.models.speaking_emission`).
    config : TrackerConfig

    Returns
    -------
    beta : array (F, K + 1)
        Column 0 = clutter.
    direct : array (F, K)
        The part of beta[:, 1:] that the direct path explains (the rest: reflections).
    ll : array (F, K)
        ITD log-likelihoods of the tracks (reflections included).
    """
    c = config
    ll, ll_dir = itd_loglik(g, wn, G, J, cov[:, :3, :3], c.itd_sigma, c.association,
                            c.audio_gate, c.itd_reflection_prob, direct=True)
    beta, direct = _assign_itds(ll, ll_dir, rate, c)
    return beta, direct, ll


def _assign_itds(ll, ll_dir, rate, c):
    """Responsibilities (F, K + 1) of clutter and the tracks at rates ``rate`` (F, K),
    and the direct-path part (F, K) of the tracks'."""
    logr = np.empty((ll.shape[0], ll.shape[1] + 1))
    logr[:, 0] = math.log(clutter_rate(c) * c.audio_clutter_density)
    with np.errstate(divide="ignore"):
        logr[:, 1:] = np.log(rate) + ll
    beta = np.exp(logr - logsumexp(logr, axis=1)[:, None])
    with np.errstate(invalid="ignore"):
        share = np.where(np.isfinite(ll), np.exp(ll_dir - ll), 0.0)
    return beta, beta[:, 1:] * share


def clutter_rate(config) -> float:
    """c: the rate of clutter ITDs relative to one talker's (audio_clutter_prob is the
    clutter's share with one talker)."""
    p = config.audio_clutter_prob
    return p / (1.0 - p)


def speaking_filter(ll, wn, frame, prior, frame_llr, others, config):
    """Speaking E-step: the two-state HMM of every track filtered forward over the audio
    frames of one update, the ITD emissions evaluated with the other tracks at their
    current speaking posteriors.

    Parameters
    ----------
    ll : array (F, K)
        ITD log-likelihoods of the tracks.
    wn : array (F,)
        Normalised weights (taken as min(``speaking_itd_gain`` x wn, 1) here).
    frame : array (F,) int
        Audio frame (0 .. T-1) of each ITD.
    prior : array (K,)
        P(speaking) before the first frame.
    frame_llr : array (T, K)
        Evidence of each frame that is not in the ITDs (inactive frames, lips).
    others : array (T, K)
        The speaking posteriors the other tracks' rates are taken from (the previous
        iteration's).
    config : TrackerConfig

    Returns
    -------
    q : array (T, K)
        P(speaking) after each frame.
    log_evidence : float
        sum over frames and tracks of log(p(y_t | speaks) P + p(y_t | silent) (1 - P)) -
        log p(y_t | silent) with P the predicted probability: the filter's log evidence,
        the bound the variational iterations watch.
    """
    c = config
    eps = c.speaking_silent_rate
    n_frames, k = frame_llr.shape
    q = np.empty((n_frames, k))
    p = np.asarray(prior, dtype=float)
    llr = np.array(frame_llr, dtype=float)
    if len(ll):  # the ITD emissions of every frame at once (the others' rates are given)
        wn = np.minimum(c.speaking_itd_gain * np.asarray(wn, dtype=float), 1.0)
        rate = eps + (1.0 - eps) * others[frame]
        cr = clutter_rate(c)
        terms, _ = emission_terms(ll, wn, rate, math.log(cr * c.audio_clutter_density), cr,
                                  eps, c.speaking_share_penalty)
        count = np.bincount(frame, minlength=n_frames)
        sums = np.zeros((n_frames, k))
        np.add.at(sums, frame, terms)
        llr += sums / np.maximum(count, 1)[:, None]
    evidence = 0.0
    for t in range(n_frames):
        pred = np.clip(p * (1.0 - c.speaking_exit) + (1.0 - p) * c.speaking_entry,
                       1e-12, 1.0 - 1e-12)
        evidence += float(np.sum(np.logaddexp(np.log(pred) + llr[t], np.log1p(-pred))))
        p = speaking_hmm_step(p, llr[t], c.speaking_entry, c.speaking_exit)
        q[t] = p
    return q, evidence


def tf_presence_terms(profile, grid, G, itd_var, rate, config) -> np.ndarray:
    """Speaking evidence of every track from the frames' ITD profiles (time-frequency
    speech presence; :mod:`av_perception.core.tf_presence`).

    Each profile cell (an ITD tau_j holding mass h_tj, the share of frame t's bins that
    point there) is taken as a weighted ITD observation of the speaking emission
    (:func:`~.models.emission_terms`): a mixture of the tracks at their predicted ITDs,
    N(tau_j; G_k, sigma^2 + var_k), at their rates, and clutter.  A track whose ITD holds
    mass gets evidence for speaking even when another talker is louder in the frame;
    mass elsewhere is evidence against (the share penalty).  Summed over the cells, times
    ``tf_presence_gain``.

    Parameters
    ----------
    profile : array (T, N)
        The frames' ITD profiles (rows of zeros: no evidence).
    grid : array (N,)
        s, the profile's ITDs.
    G, itd_var : array (K,) or (T, K)
        s and s^2: the tracks' predicted ITDs and their variances (J P J^T), per frame
        when the microphones moved between the frames.
    rate : array (T, K)
        Expected emission rate of each track in each frame (eps + (1 - eps) P(speaking)).
    config : TrackerConfig

    Returns
    -------
    array (T, K): log-likelihood ratios speaking / silent.
    """
    c = config
    n_frames, n_cells = profile.shape
    k = np.shape(G)[-1]
    if n_frames == 0 or k == 0 or c.tf_presence_gain <= 0.0:
        return np.zeros((n_frames, k))
    s2 = c.tf_presence_sigma ** 2 + np.maximum(itd_var, 0.0)  # (K,) or (T, K)
    d = np.asarray(grid)[:, None] - np.asarray(G)[..., None, :]  # (N, K) or (T, N, K)
    s2 = s2[..., None, :]
    ll = -0.5 * d * d / s2 - 0.5 * np.log(2.0 * math.pi * s2)
    if ll.ndim == 2:
        ll = np.tile(ll, (n_frames, 1))
    else:
        ll = ll.reshape(n_frames * n_cells, k)
    # the mass above the frame's uniform level: what points at particular ITDs (a flat
    # floor of reverberant and noisy bins says nothing about who speaks)
    excess = np.maximum(profile - profile.mean(axis=1, keepdims=True), 0.0)
    cr = clutter_rate(c)
    terms, _ = emission_terms(ll, excess.reshape(-1),
                              np.repeat(rate, n_cells, axis=0),
                              math.log(cr * c.audio_clutter_density), cr,
                              c.speaking_silent_rate, c.speaking_share_penalty)
    return c.tf_presence_gain * terms.reshape(n_frames, n_cells, k).sum(axis=1)


def es_update(mu0, cov0, H, Om, b) -> tuple[np.ndarray, np.ndarray]:
    """E-S: Kalman-like update of every track from its aggregated pseudo-observation.

    With A = H Gamma H^T, G = (Omega A + I)^-1:
    mu = mu0 + Gamma H^T G (b - Omega H mu0),  Gamma' = Gamma - Gamma H^T G Omega H Gamma.
    Equal to the information form (Gamma^-1 + H^T Omega H)^-1; needs no inverse of Omega,
    so a track with no assigned mass is left unchanged.

    Parameters
    ----------
    mu0, cov0 : array (K, 6), (K, 6, 6)
        Predicted posteriors.
    H : array (K, d, 6)
        Observation matrices (rows: visual position, linearised ITD).
    Om : array (K, d, d)
        Precision of the aggregated pseudo-observation (responsibility-weighted).
    b : array (K, d)
        Information vector of the pseudo-observation (Omega y).

    Returns
    -------
    mu, cov : array (K, 6), (K, 6, 6)
    """
    d = H.shape[1]
    PHt = cov0 @ np.swapaxes(H, 1, 2)  # (K, 6, d)
    A = H @ PHt  # (K, d, d)
    Gm = np.linalg.inv(Om @ A + np.eye(d))
    innov = b - np.einsum("kij,kj->ki", Om, np.einsum("kij,kj->ki", H, mu0))
    gain = PHt @ Gm  # (K, 6, d)
    mu = mu0 + np.einsum("kij,kj->ki", gain, innov)
    cov = cov0 - gain @ Om @ np.swapaxes(PHt, 1, 2)
    return mu, symmetrise(cov)


def variational_update(mean, cov, xyz, R, g, wn, *, speaking, logodds, visual_weight,
                       unsupported, in_view: Callable, itd_model: Callable, config,
                       frame=None, frame_llr=None, frozen=None, seen_cov=None):
    """VB iterations (E-Z visual, speaking E-step, E-Z audio, E-S) at one time, until no
    position moves more than ``vb_tolerance`` and the speaking filter's log evidence
    improves by less than ``vb_bound_tolerance``, or ``vb_iterations`` are done.

    Parameters
    ----------
    mean, cov : array (K, 6), (K, 6, 6)
        Predicted track posteriors (not modified).
    xyz, R : array (M, 3), (M, 3, 3) or None
        Visual observations (m) and their weighted covariances Phi / w (m^2).
    g, wn : array (F,), (F,) or None
        ITDs (s) and normalised weights.
    speaking : array (K,)
        P(speaking) before the audio frames.
    logodds, visual_weight, unsupported :
        See :func:`visual_responsibilities`.
    in_view : callable
        Points (N, 3) -> bool (N,).
    itd_model : callable
        Points (K, 3) -> expected ITD (K,) s and gradient (K, 3) s/m; or, when the
        microphones moved between the ITDs' frames, per ITD: (F, K) and (F, K, 3) (the
        ITD rows then enter the E-S step as a position pseudo-observation of precision
        sum_f b_fk J_fk J_fk^T / sigma_f^2, the same model as one row per frame).
    config : TrackerConfig
    frame : array (F,) int, optional
        Audio frame (0 .. T-1) of each ITD (default: all in frame 0).
    frame_llr : array (T, K), optional
        Speaking evidence of each audio frame that is not in the ITDs (default: zeros,
        one frame).
    frozen : array (K,) bool, optional
        Tracks whose visual association uses ``seen_cov`` instead of their grown position
        covariance: seen before, without visual support for ``visual_timeout`` and
        predicted out of view (a person out of view is taken to be where they were last
        seen; one who came into view is a birth, see ``Tracker``).
    seen_cov : array (K, 3, 3), optional
        m^2, position covariances at the last visual support (rows of ``frozen`` used).

    Returns
    -------
    mean, cov : array (K, 6), (K, 6, 6)
        Updated posteriors (the input ones when K = 0).
    alpha : array (M, K + 1) or None
    beta : array (F, K + 1) or None
        Responsibilities, column 0 = clutter.
    iterations : int
    speaking : array (T, K) or None
        P(speaking) after each audio frame (None without ITDs).
    direct : array (F, K) or None
        The direct-path part of beta[:, 1:] (what moved the tracks).
    """
    c = config
    k = len(mean)
    alpha = beta = None
    if k == 0:
        if xyz is not None:
            alpha = np.zeros((len(xyz), 1))
            alpha[:, 0] = 1.0
        if g is not None:
            beta = np.zeros((len(g), 1))
            beta[:, 0] = 1.0
        return mean, cov, alpha, beta, 0, None, None
    q = direct = None
    if g is not None:
        frame = np.zeros(len(g), dtype=int) if frame is None else np.asarray(frame)
        if frame_llr is None:
            frame_llr = np.zeros((int(frame.max(initial=0)) + 1, k))
        q = np.repeat(np.asarray(speaking, dtype=float)[None, :], len(frame_llr), axis=0)
        bound = -np.inf
    mu0, cov0 = mean.copy(), cov.copy()
    mu, cov = mu0, cov0
    Rinv = Rinv_v = None
    if xyz is not None and len(xyz):
        Rinv = np.linalg.inv(R)
        Rinv_v = np.einsum("mij,mj->mi", Rinv, xyz)
    sig2 = c.itd_sigma ** 2
    iterations = 0
    for _ in range(c.vb_iterations):
        iterations += 1
        assoc_mu, assoc_cov = (mu0, cov0) if c.association == "predictive" else (mu, cov)
        H_parts, O_parts, b_parts = [], [], []
        if xyz is not None:
            vis_cov = assoc_cov
            if frozen is not None and np.any(frozen):
                vis_cov = assoc_cov.copy()
                vis_cov[frozen, :3, :3] = seen_cov[frozen]
            alpha = visual_responsibilities(xyz, R, Rinv, assoc_mu, vis_cov, visual_weight,
                                            logodds, unsupported, in_view, c)
            if len(xyz):
                a = np.where(alpha[:, 1:] >= c.min_responsibility, alpha[:, 1:], 0.0)
                Om = np.einsum("mk,mij->kij", a, Rinv)
                bv = np.einsum("mk,mi->ki", a, Rinv_v)
                H = np.zeros((k, 3, 6))
                H[:, :, :3] = np.eye(3)
                H_parts.append(H)
                O_parts.append(Om)
                b_parts.append(bv)
        if g is not None:
            G_lin, J_lin = itd_model(mu[:, :3])
            if assoc_mu is mu:
                G_assoc, J_assoc = G_lin, J_lin
            else:
                G_assoc, J_assoc = itd_model(assoc_mu[:, :3])
            ll, ll_dir = itd_loglik(g, wn, G_assoc, J_assoc, assoc_cov[:, :3, :3],
                                    c.itd_sigma, c.association, c.audio_gate,
                                    c.itd_reflection_prob, direct=True)
            # speaking E-step: the HMMs filtered with the others at their posteriors
            q, evidence = speaking_filter(ll, wn, frame, speaking, frame_llr, q, c)
            rate = c.speaking_silent_rate + (1.0 - c.speaking_silent_rate) * q[frame]
            beta, direct = _assign_itds(ll, ll_dir, rate, c)
            # only the direct path moves a track (reflections arrive at smaller angles)
            bk = np.where(direct >= c.min_responsibility, direct, 0.0)
            bk = bk * (wn[:, None] / sig2)  # (F, K)
            if not c.audio_moves_in_view:
                bk = bk * ~in_view(mu0[:, :3])[None, :]
            if np.ndim(G_lin) == 1:  # one geometry for every ITD: one row per track
                om = bk.sum(axis=0)  # (K,)
                y = g[:, None] - G_lin[None, :] + np.sum(J_lin * mu[:, :3], axis=1)[None, :]
                ba = np.sum(bk * y, axis=0)
                H = np.zeros((k, 1, 6))
                H[:, 0, :3] = J_lin
                H_parts.append(H)
                O_parts.append(om[:, None, None])
                b_parts.append(ba[:, None])
            else:  # a geometry per ITD (a turning head): the rows summed in position
                y = g[:, None] - G_lin + np.einsum("fki,ki->fk", J_lin, mu[:, :3])
                H = np.zeros((k, 3, 6))
                H[:, :, :3] = np.eye(3)
                H_parts.append(H)
                O_parts.append(np.einsum("fk,fki,fkj->kij", bk, J_lin, J_lin))
                b_parts.append(np.einsum("fk,fki->ki", bk * y, J_lin))
        if not H_parts:
            break
        H = np.concatenate(H_parts, axis=1)
        d = H.shape[1]
        Om = np.zeros((k, d, d))
        row = 0
        for O in O_parts:
            n = O.shape[1]
            Om[:, row:row + n, row:row + n] = O
            row += n
        b = np.concatenate(b_parts, axis=1)
        new_mu, new_cov = es_update(mu0, cov0, H, Om, b)
        moved = float(np.max(np.abs(new_mu[:, :3] - mu[:, :3])))
        mu, cov = new_mu, new_cov
        still = True
        if g is not None:
            still = evidence - bound <= c.vb_bound_tolerance
            bound = evidence
        if moved <= c.vb_tolerance and still:
            break
    return mu, cov, alpha, beta, iterations, q, direct


def process_noise_m_step(tracks, t: float, seen, q_axes, config) -> None:
    """Process-noise scale per track from the expected squared transition residual, in
    place (``tracks.noise_scale``).

    Over the interval since the track's previous supported image frame (dt), with the
    joint posterior of (s_prev, s_now) given the data up to now (lag-one RTS smoothing):
    J = Gamma_prev D^T (Gamma^-)^-1, s_prev ~ N(m_s, P_s) with
    m_s = mu_prev + J (mu - D mu_prev), P_s = Gamma_prev + J (Gamma - Gamma^-) J^T,
    Cov(s_now, s_prev) = C = Gamma J^T, and
    E = Gamma - C D^T - D C^T + D P_s D^T + (mu - D m_s)(mu - D m_s)^T.
    The scale maximising E[log N(s_now; D s_prev, scale Q1)] is tr(Q1^-1 E) / 6; it is
    averaged with forgetting ``process_noise_forgetting``.  The intermediate audio updates
    are ignored (they hardly move a visually supported track).

    Parameters
    ----------
    tracks : TrackState
        After the E-S step of the image frame at ``t`` (s).
    seen : array (K,) bool
        Tracks with visual support in this frame.
    q_axes : array (3,)
        Configured white-acceleration spectral density per axis (m^2/s^3).
    config : TrackerConfig
    """
    c = config
    lo, hi = c.process_noise_scale_range
    for k in np.flatnonzero(seen & np.isfinite(tracks.visual_time)):
        dt = t - tracks.visual_time[k]
        if not 1e-3 < dt <= 1.0:
            continue
        D, Q1 = constant_velocity_model(dt, np.zeros(1), q_axes[None, :])
        D, Q1 = D[0], Q1[0]
        mp, Pp = tracks.visual_mean[k], tracks.visual_cov[k]
        Pm = D @ Pp @ D.T + tracks.noise_scale[k] * Q1
        J = np.linalg.solve(Pm, D @ Pp).T  # Pp D^T Pm^-1 (Pm, Pp symmetric)
        m_s = mp + J @ (tracks.mean[k] - D @ mp)
        P_s = Pp + J @ (tracks.cov[k] - Pm) @ J.T
        C = tracks.cov[k] @ J.T
        e = tracks.mean[k] - D @ m_s
        E = tracks.cov[k] - C @ D.T - D @ C.T + D @ P_s @ D.T + np.outer(e, e)
        est = float(np.trace(np.linalg.solve(Q1, E))) / 6.0
        rho = c.process_noise_forgetting
        tracks.noise_scale[k] = float(np.clip(rho * tracks.noise_scale[k] + (1 - rho) * est,
                                              lo, hi))


class ItdShrinkEstimator:
    """Audio-model M-step: MAP reverberation shrink b of g ~ N((1 - b d) G(p),
    itd_sigma^2 / w~), from running least-squares sums with exponential memory
    (``itd_shrink_memory`` frames) and the prior N(itd_shrink_per_m,
    itd_shrink_prior_sigma^2).

    Parameters
    ----------
    config : TrackerConfig
    geometry : MicGeometry or head model
        Gives the direct-path ITD G(p) and the microphone centre.
    """

    def __init__(self, config, geometry):
        self.config = config
        self.geometry = geometry
        self.value = config.itd_shrink_per_m  # 1/m
        self._num = 0.0
        self._den = 0.0

    def update(self, g, wn, beta, positions, talking) -> None:
        """One audio frame.

        Parameters
        ----------
        g, wn : array (F,)
            ITDs (s) and normalised weights.
        beta : array (F, K)
            Track responsibilities of the ITDs.
        positions : array (K, 3)
            m, track positions.
        talking : array (K,) bool
            Tracks that count: visually supported and speaking (P >= 0.5; keeps out
            directional noise such as a radio assigned to a silent person).
        """
        c = self.config
        sel = (beta > 0.0) & (wn[:, None] > 0.0) & talking[None, :]
        decay = math.exp(-1.0 / c.itd_shrink_memory)
        self._num *= decay
        self._den *= decay
        if np.any(sel):
            f, k = np.nonzero(sel)
            p = positions[k]
            G = self.geometry.itd(p)
            dG = np.linalg.norm(p - self.geometry.centre, axis=1) * G
            wt = beta[f, k] * wn[f] / c.itd_sigma ** 2
            self._num += float(np.sum(wt * (G - g[f]) * dG))
            self._den += float(np.sum(wt * dG * dG))
        prior = 1.0 / c.itd_shrink_prior_sigma ** 2
        b = (self._num + prior * c.itd_shrink_per_m) / (self._den + prior)
        self.value = float(np.clip(b, 0.0, 0.3))


class SpeechActivityLevel:
    """Noise-floor aware full activity of the speaking model's inactive frames.

    The front-end's activity is a frame's SNR over its noise floor, so the same speech
    reads a lower activity in noise (`hard`, SNR 5 dB: median 0.18 in speech, 0.04 in
    pauses; `default`, SNR 15 dB: 0.93 and 0.02).  The level L is the running mean
    (memory ``speaking_activity_memory`` frames, from L = 1) of the activity of the
    frames above ``speaking_activity_floor``; a frame's full activity is
    min(``audio_full_weight``, ``speaking_activity_ratio`` L), taken before the frame
    updates L (causal).

    Parameters
    ----------
    config : TrackerConfig
    """

    def __init__(self, config):
        self.config = config
        self.level = 1.0

    def full(self, activity) -> np.ndarray:
        """Per frame of ``activity`` (T,) in [0, 1]: the activity that counts as fully
        active; updates the level frame by frame."""
        c = self.config
        a = np.asarray(activity, dtype=float)
        out = np.full(len(a), c.audio_full_weight)
        if c.speaking_activity_ratio <= 0.0:
            return out
        keep = math.exp(-1.0 / c.speaking_activity_memory)
        level = self.level
        for t, x in enumerate(a):
            out[t] = min(c.audio_full_weight, c.speaking_activity_ratio * level)
            if x > c.speaking_activity_floor:
                level = keep * level + (1.0 - keep) * x
        self.level = level
        return out
