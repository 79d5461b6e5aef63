"""Time-frequency binaural observations, their clustering per talker, and TF masks.

:class:`TFObservations` turns the front-end's own STFT (``BinauralFeatures.spec``, no
second STFT) into per-bin IPD, ILD and reliability weights.  :func:`cluster_window`
clusters the weighted bins of one window (0.25-0.5 s) into one component per track plus
an outlier class: the weighted-data EM (:func:`av_perception.core.wdem.fit`) on the bins'
ITD candidates, started at the tracks' predicted ITDs, fits each talker's ITD, spread and
share; a MESSL-like E-step (phase-wrapping aware: the IPD each ITD predicts per bin) then
gives every bin's posterior per talker (the TF mask) with per-frame priors (the speech
presence).  Model: docs/algorithms.md, "Time-frequency model and separation".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.ndimage import uniform_filter1d

from . import _tf_kernels as TK
from . import harmonic as H
from . import wdem
from .config import ConfigError, StageConfig, param

__all__ = ["VoiceConfig", "TFObservations", "TFClusterResult", "cluster_window",
           "tf_observations"]

SEPARATION_METHODS = ("mask", "mvdr", "mwf")
VARIANCE_POOL = 9  # bins pooled in the re-estimation of a talker's IPD variance
PHASE_VAR_MAX = 3.0  # rad^2: about a uniform phase (pi^2 / 3)


@dataclass(frozen=True)
class VoiceConfig(StageConfig):
    """Time-frequency clustering of the talkers and their separated voices."""

    SECTION: ClassVar[str] = "voices"

    window: float = param(
        0.4, "Length (s) of the windows whose time-frequency bins are clustered together "
        "(the separated voice lags the input by about this much unless voices.hop is set).",
        low=0.1, high=2.0)
    hop: float = param(
        0.0, "Clustering hop (s): every hop the window (voices.window) ending at the newest "
        "frame is clustered and the voices of the hop's new frames are formed, so that a "
        "voice lags the input by one hop plus one frame (0.064: <= 100 ms live) at "
        "window/hop times the CPU; 0: the hop is the window (windows do not overlap).",
        low=0.0, high=2.0)
    coherence_smoothing: float = param(
        0.7, "Recursive smoothing (per frame) of the auto/cross spectra whose coherence gives "
        "each bin's direct-to-total ratio.", low=0.0, high=0.99)
    floor_rise_db_per_s: float = param(
        3.0, "How fast (dB/s) the per-bin noise floor of the local SNR may rise.",
        low=0.1, high=60.0)
    candidate_max_frequency: float = param(
        1500.0, "Highest frequency (Hz) whose bins give ITD candidates to the weighted-data "
        "EM (above it the phase wraps too often); every bin gets a mask.",
        low=300.0, high=8000.0)
    min_weight: float = param(
        0.05, "Bins of lower reliability weight are left out of the EM.", low=0.0, high=1.0)
    prior_weight: float = param(
        0.1, "Weight of each track's predicted ITD in the EM, as a fraction of the window's "
        "total weight (a prior on the talker's ITD).", low=0.0, high=10.0)
    max_itd_shift: float = param(
        1.0e-4, "A fitted talker ITD further than this (s) from the track's predicted ITD is "
        "not trusted: the predicted one is used.", low=0.0, high=1e-3)
    itd_std_min: float = param(
        1.0e-5, "Smallest spread (s) of a talker's ITD.", low=1e-6, high=1e-3)
    itd_std_max: float = param(
        8.0e-5, "Largest spread (s) of a talker's ITD.", low=1e-6, high=1e-3)
    phase_std: float = param(
        0.6, "Phase noise (rad) added to each talker's IPD spread at every bin.",
        low=0.05, high=3.0)
    ild_std: float = param(
        4.0, "Spread (dB) of a talker's ILD around the head model's prediction (models "
        "with ILD only).", low=0.5, high=30.0)
    outlier_prior: float = param(
        0.1, "Prior of the outlier class (reverberation, noise) in every bin.",
        low=0.001, high=0.9)
    prior_iterations: int = param(
        8, "Re-estimations of the window's priors (talkers and outlier class) per pass.",
        low=0, high=50)
    variance_iterations: int = param(
        3, "Re-estimations of each talker's IPD variance per bin (MESSL M-step) per "
        "window.", low=0, high=20)
    outlier_prior_min: float = param(
        0.02, "Smallest prior of the outlier class after re-estimation.", low=0.0, high=0.9)
    phase_var_min: float = param(
        0.01, "Smallest re-estimated IPD variance (rad^2) of a talker at a bin of weight 1.",
        low=1e-4, high=1.0)
    min_share: float = param(
        0.0, "A talker whose share of a window (among the talkers) is below this is taken as "
        "silent in it: its mask is emptied (0: never).", low=0.0, high=0.5)
    frequency_prior_pool: int = param(
        17, "Bins pooled in each talker's prior per frequency (its share of the window's "
        "weighted posteriors at and around that frequency); 0: one prior per window.",
        low=0, high=257)
    frequency_prior_ratio: float = param(
        2.0, "Each talker's per-frequency prior stays within this factor of its window "
        "prior (0: unbounded; a silent track's unbounded priors take whole bands of a lone "
        "talker's voice).", low=0.0, high=100.0)
    frequency_prior_count: float = param(
        1.0, "Pseudo-count (weight per bin) drawing the per-frequency priors toward the "
        "window's priors.", low=0.0, high=1000.0)
    method: str = param(
        "mwf", "How a voice is formed: 'mask' (the talker's TF mask on the left "
        "microphone), 'mvdr' (mask-driven two-channel MVDR to the left microphone, then "
        "the mask as post-filter) or 'mwf' (two-channel Wiener filter from the talker's "
        "mask-weighted spatial covariance over voices.mwf_memory).",
        choices=SEPARATION_METHODS)
    mwf_memory: float = param(
        4.0, "Time constant (s) of the spatial covariances of method 'mwf' (the talkers are "
        "assumed still for about this long).", low=0.1, high=60.0)
    mwf_mask_weight: float = param(
        0.7, "Method 'mwf': the mask weighting a talker's covariance is drawn toward 1 as "
        "w * mask + 1 - w (1: the mask; 0: the mixture, no separation).", low=0.0, high=1.0)
    speaking_gate: float = param(
        0.3, "A track whose speaking probability (the tracker's, the highest over the "
        "window) is below this is left out of the window's model: its voice is silent "
        "there and its bins go to the others (0: every track is modelled).",
        low=0.0, high=1.0)
    speaking_gate_span: float = param(
        0.0, "The speaking probability of voices.speaking_gate is the highest over at least "
        "this many seconds before a window's last frame (0: over the window; the live "
        "voices' shorter window keeps voices.window, so that a talker's pause does not gate "
        "out the restart).", low=0.0, high=5.0)
    mask_floor: float = param(
        0.05, "Smallest gain of a voice's mask (limits musical noise).", low=0.0, high=1.0)
    mask_exponent: float = param(
        0.5, "The mask is the posterior to this power (> 1: sharper).", low=0.25, high=4.0)
    harmonic_weight: float = param(
        2.0, "Weight of each talker's harmonic comb (its F0 per frame from its spatially "
        "weighted spectrum) in the bins' log-likelihoods (0: spatial cues only).",
        low=0.0, high=10.0)
    harmonic_passes: int = param(
        1, "Re-estimations of the talkers' F0s from the combined posteriors per window.",
        low=1, high=10)
    harmonic_width: float = param(
        0.8, "Spread (bins) of a talker's harmonic comb around each harmonic.",
        low=0.2, high=4.0)
    harmonic_floor: float = param(
        0.1, "The harmonic comb between harmonics, relative to its peaks.",
        low=0.001, high=0.99)
    harmonic_max_frequency: float = param(
        3000.0, "Highest frequency (Hz) of the harmonics used for the F0 and given a comb.",
        low=500.0, high=8000.0)
    pitch_min: float = param(
        70.0, "Lowest F0 (Hz) searched.", low=30.0, high=500.0)
    pitch_max: float = param(
        400.0, "Highest F0 (Hz) searched.", low=60.0, high=1000.0)
    voicing_threshold: float = param(
        0.2, "Harmonic contrast (harmonics minus half-way points over their sum) above "
        "which a talker's frame counts as voiced (fully voiced 0.15 above it).",
        low=0.0, high=0.9)

    def validate(self):
        if self.itd_std_min > self.itd_std_max:
            raise ConfigError("voices.itd_std_min must be <= voices.itd_std_max")
        if self.pitch_min >= self.pitch_max:
            raise ConfigError(f"voices.pitch_min = {self.pitch_min} must be below "
                              f"voices.pitch_max = {self.pitch_max}")
        if self.hop > self.window:
            raise ConfigError(f"voices.hop = {self.hop} is longer than voices.window = "
                              f"{self.window}: give a hop <= the window (0: the window)")


def tf_observations(spec_l, spec_r, in_band, diffuse, coh_alpha, floor_rise, state=None,
                    use_numba: bool = True):
    """IPD (rad), ILD (dB) and reliability weight of every bin (batch form).

    Parameters
    ----------
    spec_l, spec_r : (F, B) complex
        STFT of the left and right microphones (the front-end's ``features.spec``).
    in_band : (B,) bool
        Bins that may have weight.
    diffuse : (B,)
        Coherence of a diffuse field between the microphones.
    coh_alpha, floor_rise : float
        Smoothing of the spectra; per-frame rise factor of the noise floor.
    state : (5, B) array or None
        Carried between calls of a stream (None: a fresh stream).

    Returns
    -------
    ipd, ild, weight : (F, B) each
    """
    spec_l = np.ascontiguousarray(spec_l, dtype=np.complex128)
    spec_r = np.ascontiguousarray(spec_r, dtype=np.complex128)
    if spec_l.ndim != 2 or spec_l.shape != spec_r.shape:
        raise ValueError(f"spec_l and spec_r must be (F, B) of one shape, got {spec_l.shape} "
                         f"and {spec_r.shape}")
    n_bins = spec_l.shape[1]
    in_band = np.asarray(in_band, dtype=np.bool_)
    diffuse = np.asarray(diffuse, dtype=np.float64)
    if in_band.shape != (n_bins,) or diffuse.shape != (n_bins,):
        raise ValueError(f"in_band and diffuse must have shape ({n_bins},)")
    if not (np.all(np.isfinite(spec_l)) and np.all(np.isfinite(spec_r))):
        raise ValueError("the spectra contain NaN or infinite values: drop those frames first")
    if state is None:
        state = (np.zeros((TK.N_STATE, n_bins)), np.zeros(1, dtype=np.int64))
    out = [np.zeros(spec_l.shape) for _ in range(3)]
    kern = TK.tf_observations_kernel if use_numba else TK.tf_observations_reference
    kern(spec_l, spec_r, in_band, diffuse, float(coh_alpha), float(floor_rise), state[0],
         state[1], *out)
    return out[0], out[1], out[2]


class TFObservations:
    """Streaming per-bin observations from the front-end's STFT.

    Parameters
    ----------
    front_end : BinauralFrontEnd
        Gives the bins' frequencies, band, diffuse coherence and hop.
    config : VoiceConfig
    """

    def __init__(self, front_end, config: VoiceConfig | None = None, use_numba: bool = True):
        self.config = config or VoiceConfig()
        c = front_end.config
        self.omega = front_end.omega
        self.freqs = front_end.freqs
        self.in_band = front_end.in_band
        self.diffuse = front_end.diffuse_coherence
        self.floor_rise = 10 ** (self.config.floor_rise_db_per_s * c.hop_duration / 10)
        self.use_numba = use_numba
        self.reset()

    def reset(self):
        n = len(self.freqs)
        self._state = (np.zeros((TK.N_STATE, n)), np.zeros(1, dtype=np.int64))

    def __call__(self, spec_l, spec_r):
        """(ipd, ild, weight), each (F, B), of the next frames of the stream."""
        return tf_observations(spec_l, spec_r, self.in_band, self.diffuse,
                               self.config.coherence_smoothing, self.floor_rise, self._state,
                               self.use_numba)


@dataclass
class TFClusterResult:
    """The clustering of one window of K talkers.

    itd : (K,) s, fitted ITD of each talker (the predicted one where the fit is not trusted).
    itd_std : (K,) s, their spreads.
    prior : (K,) relative share of each talker in the window (sums to 1).
    outlier_prior : the outlier class's prior fitted in the window.
    masks : (K + 1, F, B) posterior of each talker per bin; the last is the outlier class.
    presence : (K, F) speech presence of each talker per frame in [0, 1]: its share of the
        frame's weighted posteriors among the talkers, times the frame's activity.
    share : (K, F) each talker's share among the talkers (sums to 1; the window's
        priors): the part of the outlier class (reverberation) that belongs to its voice.
    n_observations : weighted ITD candidates given to the EM.
    f0 : (K, F) Hz, each talker's F0 per frame (0: unvoiced or harmonicity off).
    em_used : whether the EM's fit was used (False: too few observations, the predictions).
    """

    itd: np.ndarray
    itd_std: np.ndarray
    prior: np.ndarray
    masks: np.ndarray
    presence: np.ndarray
    share: np.ndarray
    n_observations: int = 0
    em_used: bool = False
    outlier_prior: float = 0.0
    f0: np.ndarray | None = None


def itd_candidates(ipd, weight, omega, freq_ok, tau_max, min_weight):
    """ITD candidates (s) of the bins and their weights (each bin's weight split evenly
    among its candidates in [-tau_max, tau_max]): ((N,), (N,))."""
    cols = np.flatnonzero(freq_ok)
    if len(cols) == 0:
        return np.zeros(0), np.zeros(0)
    phi = ipd[:, cols]
    w = weight[:, cols]
    om = omega[cols]
    keep = w > min_weight
    phi, w = phi[keep], w[keep]
    om = np.broadcast_to(om, keep.shape)[keep]
    m_max = int(np.ceil(float(np.max(om, initial=0.0)) * tau_max / (2 * np.pi))) + 1
    m = np.arange(-m_max, m_max + 1)
    tau = (phi[:, None] + 2 * np.pi * m[None, :]) / om[:, None]
    ok = np.abs(tau) <= tau_max
    n = ok.sum(axis=1)
    ww = np.where(ok, (w / np.maximum(n, 1))[:, None], 0.0)
    return tau[ok], ww[ok]


def cluster_window(ipd, ild, weight, omega, track_itd, *, tau_max: float,
                   config: VoiceConfig | None = None, track_ild=None, activity=None,
                   min_frequency: float = 0.0, power=None,
                   use_numba: bool = True) -> TFClusterResult:
    """Cluster the weighted bins of one window into its K tracks plus an outlier class.

    Parameters
    ----------
    ipd, ild, weight : (F, B)
        Per-bin observations (:func:`tf_observations`): rad, dB, [0, 1].
    omega : (B,) rad/s of the bins.
    track_itd : (K,) s, the tracks' predicted ITDs (initial means and priors).
    tau_max : s, largest ITD (the outlier class spans [-tau_max, tau_max]).
    track_ild : (K, B) dB or None
        The tracks' predicted ILD per bin (head models with ILD), used in the masks.
    activity : (F,) frame activity in [0, 1] (scales the presence) or None (1).
    min_frequency : Hz, lowest bin giving ITD candidates (and a harmonic comb).
    power : (F, B) the mixture's power per bin (both microphones) or None; with
        ``voices.harmonic_weight`` > 0 it gives each talker's F0 and harmonic comb.

    Returns
    -------
    TFClusterResult
    """
    cfg = config or VoiceConfig()
    ipd = np.asarray(ipd, dtype=np.float64)
    ild = np.asarray(ild, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    omega = np.asarray(omega, dtype=np.float64)
    itd0 = np.atleast_1d(np.asarray(track_itd, dtype=np.float64))
    n_frames, n_bins = ipd.shape if ipd.ndim == 2 else (0, 0)
    if ipd.ndim != 2 or ild.shape != ipd.shape or weight.shape != ipd.shape:
        raise ValueError(f"ipd, ild and weight must be (F, B) of one shape, got {ipd.shape}, "
                         f"{ild.shape}, {weight.shape}")
    if omega.shape != (n_bins,):
        raise ValueError(f"omega must have shape ({n_bins},), got {omega.shape}")
    if itd0.ndim != 1 or len(itd0) == 0:
        raise ValueError("track_itd must hold at least one ITD (s)")
    for name, a in (("ipd", ipd), ("ild", ild), ("weight", weight), ("track_itd", itd0)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values")
    if tau_max <= 0:
        raise ValueError("tau_max must be positive")
    if power is not None:
        power = np.asarray(power, dtype=np.float64)
        if power.shape != ipd.shape or not np.all(np.isfinite(power)) or np.any(power < 0):
            raise ValueError(f"power must be (F, B) = {ipd.shape} finite and >= 0 (the "
                             f"mixture's |X_l|^2 + |X_r|^2), got shape {power.shape}")
    K = len(itd0)
    itd0 = np.clip(itd0, -tau_max, tau_max)
    freq = omega / (2 * np.pi)
    freq_ok = (freq >= max(min_frequency, 1.0)) & (freq <= cfg.candidate_max_frequency)
    tau, w = itd_candidates(ipd, weight, omega, freq_ok, tau_max, cfg.min_weight)
    itd, std = itd0.copy(), np.full(K, 0.5 * (cfg.itd_std_min + cfg.itd_std_max))
    prior = np.full(K, 1.0 / K)
    em_used = False
    total = float(w.sum())
    if len(tau) >= 4 * K and total > 0:
        # the tracks' predicted ITDs enter as weighted pseudo-observations: a prior.  In
        # ms: the EM's covariance regularisation (1e-6) is far below (0.01 ms)^2
        x = 1e3 * np.concatenate([tau, itd0])
        ww = np.concatenate([w, np.full(K, cfg.prior_weight * total / K)])
        try:
            fit = wdem.fit(x[:, None], ww, K, variant="wd", covariance="full",
                           outlier_volume=2e3 * tau_max, init="means",
                           means_init=1e3 * itd0[:, None], max_iter=40, tol=1e-5,
                           use_numba=use_numba)
        except (ValueError, np.linalg.LinAlgError):
            fit = None
        if fit is not None:
            mu = 1e-3 * fit.means[:, 0]
            ok = np.isfinite(mu) & (np.abs(mu - itd0) <= cfg.max_itd_shift)
            itd = np.where(ok, mu, itd0)
            s = 1e-3 * np.sqrt(np.maximum(fit.covariances[:, 0, 0], 0.0))
            std = np.where(ok & np.isfinite(s), s, std)
            mix = np.where(np.isfinite(fit.mixing), fit.mixing, 0.0) + 0.05
            prior = mix / mix.sum()
            em_used = True
    std = np.clip(std, cfg.itd_std_min, cfg.itd_std_max)
    phase_var = (omega[None, :] * std[:, None]) ** 2 + cfg.phase_std ** 2
    use_ild = track_ild is not None
    ild_mean = (np.ascontiguousarray(track_ild, dtype=np.float64) if use_ild
                else np.zeros((K, n_bins)))
    if ild_mean.shape != (K, n_bins):
        raise ValueError(f"track_ild must have shape ({K}, {n_bins}), got {ild_mean.shape}")
    ild_var = np.full((K, n_bins), cfg.ild_std ** 2)
    post = np.zeros((K + 1, n_frames, n_bins))
    loglik = np.zeros((K + 1, n_frames, n_bins))
    lik = TK.tf_loglik_kernel if use_numba else TK.tf_loglik_reference
    kern = TK.tf_posteriors_kernel if use_numba else TK.tf_posteriors_reference
    ipd_c, ild_c, w_c = (np.ascontiguousarray(a) for a in (ipd, ild, weight))
    w_total = float(weight.sum())
    pri = np.concatenate([(1.0 - cfg.outlier_prior) * prior, [cfg.outlier_prior]])
    pri_bin = np.repeat(pri[:, None], n_bins, axis=1)
    resid2 = None
    for v_pass in range(cfg.variance_iterations + 1):
        # the likelihoods change with the variances only; the posteriors with the priors
        lik(ipd_c, ild_c, w_c, omega, itd, phase_var, ild_mean, ild_var, use_ild, loglik)
        pri, pri_bin = _prior_iterations(kern, loglik, w_c, pri, pri_bin, post, cfg)
        if v_pass == cfg.variance_iterations or w_total <= 0:
            break
        # M-step of each talker's IPD variance per bin (MESSL), pooled over neighbouring
        # bins: the weighted sample variance of the residuals (the MLE under r ~ N(0, v/w),
        # sum(gamma w r^2) / sum(gamma), is smaller; measured worse for a lone talker:
        # docs/algorithms.md)
        if resid2 is None:
            r = ipd[None] - omega[None, None, :] * itd[:, None, None]
            resid2 = (r - 2 * np.pi * np.floor((r + np.pi) / (2 * np.pi))) ** 2
        g = post[:K] * weight[None]
        num = uniform_filter1d((g * resid2).sum(axis=1), VARIANCE_POOL, axis=1, mode="nearest")
        den = uniform_filter1d(g.sum(axis=1), VARIANCE_POOL, axis=1, mode="nearest")
        est = num / np.maximum(den, 1e-9)
        phase_var = np.where(den > 1e-6, np.clip(est, cfg.phase_var_min, PHASE_VAR_MAX),
                             phase_var)
    f0 = np.zeros((K, n_frames))
    if cfg.harmonic_weight > 0 and power is not None and w_total > 0:
        # harmonicity: each talker's F0 per frame from its share of the mixture's spectrum,
        # its comb's log-likelihood ratio added to the spatial one (module .harmonic)
        freqs_hz = omega / (2 * np.pi)
        grid = H.f0_grid(cfg.pitch_min, cfg.pitch_max)
        spatial = loglik.copy()
        mix_sal = H.pitch_salience(np.sqrt(power)[None], freqs_hz, grid,
                                   cfg.harmonic_max_frequency, use_numba)[0]
        for _ in range(cfg.harmonic_passes):
            share_now = pri[:K] / pri[:K].sum()
            mag = np.sqrt(np.clip(post[:K] + post[K][None] * share_now[:, None, None], 0, 1)
                          * power[None])
            sal = H.pitch_salience(mag, freqs_hz, grid, cfg.harmonic_max_frequency, use_numba)
            f0, contrast = H.talker_pitches(mix_sal, sal, grid, cfg.harmonic_max_frequency,
                                            mag, freqs_hz[1])
            conf = H.voicing_confidence(contrast, cfg.voicing_threshold)
            harm = H.harmonic_loglik(f0, conf, freqs_hz, cfg.harmonic_width,
                                     cfg.harmonic_floor, min_frequency,
                                     cfg.harmonic_max_frequency, use_numba)
            loglik[:K] = spatial[:K] + cfg.harmonic_weight * harm
            pri, pri_bin = _prior_iterations(kern, loglik, w_c, pri, pri_bin, post, cfg)
        f0 = np.where(conf > 0, f0, 0.0)
    rel = pri[:K] / pri[:K].sum()
    silent = rel < cfg.min_share
    if K > 1 and np.any(silent) and not np.all(silent) and w_total > 0:
        # a talker with a tiny share of the window is taken as silent there: its bins go to
        # the others (a lone talker's voice is not thinned by a silent neighbour's mask)
        pri[:K][silent] = 1e-12
        pri /= pri.sum()
        pri_bin[:K][silent] = 1e-12
        pri_bin /= pri_bin.sum(axis=0, keepdims=True)
        kern(loglik, w_c, np.log(pri_bin), post)
    share = np.repeat((pri[:K] / pri[:K].sum())[:, None], n_frames, axis=1)
    wf = weight.sum(axis=1)
    frame = np.einsum("kfb,fb->kf", post[:K], weight) / np.maximum(wf, 1e-12)[None]
    act = np.ones(n_frames) if activity is None else np.clip(np.asarray(activity, float), 0, 1)
    presence = np.where(wf[None] > 0, frame / np.maximum(frame.sum(axis=0, keepdims=True),
                                                          1e-12), 0.0) * act[None, :]
    return TFClusterResult(itd, std, pri[:K] / pri[:K].sum(), post, presence, share,
                           int(len(tau)), em_used, float(pri[K]), f0)


def _prior_iterations(kern, loglik, weight, pri, pri_bin, post, cfg):
    """E-steps (into ``post``) and M-steps of the window's priors (Dirichlet pseudo-count 1
    per class) and per-frequency priors, ``cfg.prior_iterations`` times, from the classes'
    log-likelihoods: returns the new (pri (K + 1,), pri_bin (K + 1, B))."""
    K = loglik.shape[0] - 1
    w_total = float(weight.sum())
    for it in range(cfg.prior_iterations + 1):
        kern(loglik, weight, np.log(pri_bin), post)
        if it == cfg.prior_iterations or w_total <= 0:
            break
        acc_bin = np.einsum("kfb,fb->kb", post, weight)
        acc = acc_bin.sum(axis=1)
        pri = (acc + 1.0) / (w_total + K + 1.0)
        pri[K] = np.clip(pri[K], cfg.outlier_prior_min, 0.9)
        pri[:K] *= (1.0 - pri[K]) / pri[:K].sum()
        pri_bin = _frequency_priors(acc_bin, pri, cfg)
    return pri, pri_bin


def _frequency_priors(acc_bin, pri, cfg) -> np.ndarray:
    """Per-frequency priors (K + 1, B) from the weighted posteriors summed over the window's
    frames ``acc_bin`` (K + 1, B), pooled over ``cfg.frequency_prior_pool`` bins, drawn
    toward the window's priors ``pri`` by ``cfg.frequency_prior_count`` (weight units per
    bin) and kept within a factor ``cfg.frequency_prior_ratio`` of them (before the talkers'
    rows are rescaled to leave the outlier class its prior): each talker's share of each
    frequency (a talker's voice has its own spectrum)."""
    n_bins = acc_bin.shape[1]
    if cfg.frequency_prior_pool <= 0:
        return np.repeat(pri[:, None], n_bins, axis=1)
    pooled = uniform_filter1d(acc_bin, cfg.frequency_prior_pool, axis=1, mode="nearest")
    c = cfg.frequency_prior_count
    pb = (pooled + c * pri[:, None]) / (pooled.sum(axis=0, keepdims=True) + c)
    pb = np.maximum(pb, 1e-6)
    r = cfg.frequency_prior_ratio
    if r > 0:  # within a factor r of the window's prior: a silent track takes no band
        pb[:-1] = np.clip(pb[:-1], pri[:-1, None] / r, pri[:-1, None] * r)
    out = pb[-1].clip(cfg.outlier_prior_min, 0.9)
    pb[:-1] *= (1.0 - out) / pb[:-1].sum(axis=0)
    pb[-1] = out
    return pb


def hop_frames(window: float, hop_duration: float) -> int:
    """Frames per clustering window."""
    return max(1, int(math.ceil(window / hop_duration - 1e-9)))
