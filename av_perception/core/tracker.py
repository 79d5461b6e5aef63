"""Variational Bayesian multi-speaker tracker in 3D (docs/algorithms.md).

Ban, Alameda-Pineda, Girin, Horaud (TPAMI 2019), adapted from the image plane to
the left camera optical frame (x right, y down, z forward, metres) with stereo
visual observations and binaural ITD audio observations.  Numbers quoted below
come from ``av_perception.eval.tracker_benchmark`` (synthetic observation streams
made from the simulator's ground truth, see test/test_tracker.py).

Model
-----
* Person n: s_n = (position p, velocity v) in R^6, constant-velocity dynamics
  s_t = D(dt) s_{t-dt} + w, white-acceleration noise of spectral density
  ``process_noise`` (x, z) and ``vertical_process_noise`` (y).
* Visual observation m (3D head v_m, covariance Phi_m, weight w_m):
  v_m | A_m = n ~ N(p_n, Phi_m / w_m); A_m = 0 is clutter, uniform with density
  ``visual_clutter_density`` (1 / visible volume), prior ``visual_clutter_prob``.
* Audio observation k (ITD g_k in s, weight w_k, w~ = min(1, w / audio_full_weight)):
  g_k | B_k = n ~ N((1 - b d(p_n)) G(p_n), itd_sigma^2 / w~_k); G the ITD of the
  binaural model (free field: the exact near-field ITD of
  :class:`~av_perception.core.geometry.MicGeometry`; a head model of
  :mod:`av_perception.core.head`), linearised at the current estimate (iterated
  EKF); d the distance from the microphones (head centre);
  B_k = 0 is clutter, uniform with density ``audio_clutter_density``.
* Speaking state chi_n: two-state HMM per track (below).

Inference per update: predict, then at most ``vb_iterations`` of E-Z visual
(alpha), E-Z audio (beta), E-S (Kalman-like update of q(s_n) from the soft
assignments, written so that a track without assigned mass is untouched), until
no position moves more than ``vb_tolerance``; then the M-steps, existence, births,
merges and deaths.  :meth:`Tracker.update_audio` processes one audio frame,
:meth:`Tracker.update_visual` one image pair.

Choices (beyond or against the paper), each measured
----------------------------------------------------
* ``association="predictive"`` (default): alpha_mn ~ N(v_m; p_n^-, Phi_m/w_m +
  Gamma_pp^-), the predictive density under the *predicted* q(s_n) (as in PDA).
  ``"mean_field"`` is the paper's VB step, N(v_m; p_n, Phi_m/w_m) exp(-1/2
  tr((Phi_m/w_m)^-1 Gamma_pp)): the trace factor vanishes for uncertain tracks
  (after an occlusion; audio-only tracks entering the view), which then never take
  an observation again.  IDF1 ``moving`` 0.99 vs 0.87, ``hard`` 0.95 vs 0.41
  (scene seed 1).
  With "predictive", the iterations refine the audio linearisation only.
* Gates: a visual observation beyond Mahalanobis^2 ``visual_gate`` (an ITD beyond
  ``audio_gate``) cannot belong to a track; without them a coasting track took a
  clutter point 0.33 m away and ran off with the velocity it implied.
* Reverberation shrinks GCC-PHAT ITDs towards 0, more for farther talkers (real
  front-end on the ``default`` preset: -22 % to -34 % at 2.3-2.7 m), hence the
  factor (1 - b d).  An M-step estimates b online: MAP (Gaussian prior
  N(``itd_shrink_per_m``, ``itd_shrink_prior_sigma``^2)) least squares over the
  frames, weighted by beta w~, of tracks that have visual support and speak, with
  ``itd_shrink_memory`` frames of memory.  Estimates: 0.000 anechoic, 0.10-0.11
  where the streams use 0.12 (0.07 on ``hard``, whose radio contaminates it).
  Speaking F1 without -> with: ``default`` 0.89 -> 0.95 and 0.93 -> 0.93, ``moving``
  0.80 -> 0.93 and 0.59 -> 0.81 (scene seeds 1 and 0).  A short memory or no prior
  let frontal talkers (no information on b) and misassigned frames drive b to a
  wrong self-consistent value.
* Reflections: floor, ceiling, front and back walls see a talker at a smaller
  angle to the microphone axis, so a lateral talker's frame ITDs spread between 0
  and its direct-path ITD (``default`` preset, talker at 29 deg: 38 % of frames
  within 60 us of it).  The ITD likelihood of a track is (1 - rho) N(g; G, var) +
  rho U(g; between 0 and G) convolved with the same noise, rho =
  ``itd_reflection_prob``; with ``speaking_threshold`` 0.35 speaking F1 of the whole
  pipeline on ``default`` seeds 1-6 went from mean 0.818 to 0.882 (seed 2: 0.73 ->
  0.87), ``two_static``, ``moving`` seed 1 and ``hard`` up, ``moving`` seed 2 down
  (0.85 -> 0.79).
* Only a talker emits ITDs: the weight of frame k in the E-S step of track n is
  E[B_kn chi_n] = beta_kn P(speaking_n).  And (``audio_moves_in_view`` false) the
  ITD term moves only tracks outside the camera view: in view, stereo is ~100x
  more precise laterally (the audio share of a visually supported update is
  ~0.1 %), and during occlusions the ITD term made a listener's track follow
  another talker (``hard``, scene seed 4: MOTA/IDF1 0.86/0.75 -> 0.92/0.96).
* Tracks without visual support for ``visual_timeout`` s (audio-only) are
  anchored: an ITD observes only the angle to the microphone axis, so after each
  update the position is put back at the reference range and direction around
  the axis (those of the last visual support, or of the audio birth), keeping the
  angle the audio estimated.  Without it range and elevation random-walk (an
  audio-only track fell onto the microphones within 5 s on ``hard``).  Their
  velocity decays with ``unsupported_velocity_damping``.
* Visual precedence: an observation that a visually supported track explains
  (alpha >= 0.5) is not shared with tracks without visual support, and
  responsibilities below ``min_responsibility`` do not enter E-S.  An audio-only
  track (covariance ~1 m^2) taking 1 % of a stereo observation gains more
  information than it has and jumps onto a person who already has a track.
* Optional M-step for the process noise (``estimate_process_noise``): the scale
  of Q maximising E[log N(s_t; D s_{t-1}, scale Q)] under the lag-one smoothed
  joint posterior of (s_{t-1}, s_t), between image frames, averaged online.
  The usual form with *filtered* moments counts measurement-driven
  corrections as process noise (a still person's scale hit the 10x cap).  The
  smoothed form is unbiased, but with 1 cm stereo noise at 15 Hz one transition
  says little about q, so online EM moves ~1 % per frame (a target with 10x the
  configured acceleration noise: scale 1.06 after 10 s).  Off by default;
  neutral on every preset.

Speaking status
---------------
Per track, a two-state HMM updated at every audio frame (the paper thresholds
the mean audio assignment per frame, without temporal model).  Evidence of a
frame, a log-likelihood ratio speaking vs silent (mean over the frame's ITDs)::

    llr_n = speaking_gain * w~ * (beta_n - speaking_threshold) - speaking_idle * (1 - w~)

An active frame assigned to n counts for speaking, one assigned elsewhere
against; an inactive frame is weak evidence of silence (short gaps inside an
utterance do not switch the state off).  Transitions per audio frame:
``speaking_entry`` (silent -> speaking), ``speaking_exit``.  The defaults were
chosen on explicit behaviour (test_tracker.py) and then on the real front-end's
features: one isolated frame of full evidence leaves a silent track below 0.5
(0.36 with speaking_threshold 0.35; 0.30 with the former 0.4); two consecutive
active frames switch it on; one inactive or assigned-elsewhere frame inside speech
does not switch it off; frames alternating between two talkers (overlap) keep both
on (minimum 0.89; 0.68 with 0.4); 6-7 inactive frames (~100 ms) or 2-3 frames of
another talker switch it off.  The
assignment prior of the audio E-Z step favours tracks that speak
(``audio_speaking_prior``).

Births, deaths, reporting
-------------------------
* Visual births: observations left to clutter (alpha_m0 >= ``birth_unassigned``),
  and not within half of ``merge_distance`` of a track (a second detection of a
  tracked head), are chained over image frames by a Kalman filter of the same model (gated
  Hungarian assignment, ``birth_max_misses``).  A chain of ``birth_window``
  observations whose log marginal likelihood beats the clutter hypothesis by
  ``birth_llr_threshold`` becomes a track with the chain's state.
* Audio-only births (``audio_births``): active audio frames left to clutter in
  the last ``audio_birth_window`` s that agree on an ITD (within
  ``audio_birth_spread`` itd_sigma of their weighted median), with a mass of at
  least ``audio_birth_mass``, give a track on that ITD cone at distance
  ``audio_birth_depth`` and height ``audio_birth_height``, covariance
  ``audio_birth_sigma``^2 across the cone and the ITD precision along it; by
  default only outside the camera view.
* Existence (log-odds): + ``existence_hit`` per fully supported image frame,
  - ``existence_decay``/s of missed detections in view, - ``unseen_existence_decay``/s
  out of view, + ``audio_existence_gain`` x P(speaking) per audio frame fully
  assigned.  Death below ``death_existence``; identities are never reused.
  Two tracks closer than ``merge_distance`` that share their observations (soft
  assignments split between them; two people passing close by each claim their
  own), or closer than half of it, for ``merge_time`` s are merged: older
  identity, more precise state.
* Reported tracks: existence has reached ``confirm_existence`` once, and (unless
  ``report_unseen_silent``) the track is in view, or had visual support within
  ``visual_timeout``, or speaks -- a silent person out of view has no observable
  position; the track coasts unreported, for re-identification.

Asynchronous streams
--------------------
One clock, :attr:`Tracker.time`.  ``update_audio`` / ``update_visual`` predict to
their stamp and must come in time order; input older than ``max_lateness`` is
dropped (``stats['late_audio']``, ``stats['late_visual']``), less late input is
applied at the current time.  :meth:`Tracker.step` is the pipeline form: it takes
the audio frames received so far (any stamps) and an image pair's observations,
applies the audio frames up to the image stamp in time order, then the image,
keeps later audio frames for the next call, and returns the reported tracks.

Cost (numpy, process CPU time, shared 2-core machine): ~0.75 ms per audio update,
~2.0 ms per image update (3 clutter points), flat from 1 to 8 tracks -- it is
Python/numpy call overhead, not arithmetic: 7.4-8.3 % of one core at 62.5 + 15
Hz.  The VB core (E-Z/E-S, ``_variational``) is 36 % of it, so a numba kernel of it
would save at most ~3 % of a core; not done (no ``_tracker_kernels.py``).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import ndtr

from .config import ConfigError, MicArrayConfig, StageConfig, StereoCameraConfig, param
from .geometry import MicGeometry
from .head import make_head_model

__all__ = [
    "AudioFrames",
    "Tracker",
    "TrackerConfig",
    "TrackerInputError",
    "TrackerOutput",
    "constant_velocity_model",
    "frustum_volume",
    "speaking_evidence",
    "speaking_hmm_step",
]

_LOG2PI = math.log(2.0 * math.pi)
# audio-only births: frames count when their normalised weight is at least this and the
# mass they leave to clutter (w~ x beta_0) exceeds _BIRTH_MIN_MASS
_BIRTH_MIN_WEIGHT = 0.3
_BIRTH_MIN_MASS = 0.05
_AUDIO_BIRTH_SPEAKING = 0.9  # initial P(speaking) of an audio-only track (born from speech)


class TrackerInputError(ValueError):
    """Observations given to the tracker have a wrong shape, NaN values or a bad stamp."""


def frustum_volume(camera: StereoCameraConfig, min_depth: float, max_depth: float) -> float:
    """Volume (m^3) of the camera's view between two depths (m), for the clutter density."""
    return (camera.width / camera.fx) * (camera.height / camera.fy) * (
        max_depth ** 3 - min_depth ** 3) / 3.0


@dataclass(frozen=True)
class TrackerConfig(StageConfig):
    """Variational Bayesian multi-speaker tracker (docs/algorithms.md)."""

    SECTION: ClassVar[str] = "tracker"

    # ----------------------------------------------------------------- dynamics
    process_noise: float = param(
        0.1, "White-acceleration spectral density (m^2/s^3) of the constant-velocity model "
        "along x and z (horizontal).", low=1e-6, high=100.0)
    vertical_process_noise: float = param(
        0.02, "White-acceleration spectral density (m^2/s^3) along y (vertical).",
        low=1e-6, high=100.0)
    velocity_damping: float = param(
        0.0, "Velocity decay rate (1/s) of tracks with recent visual support; 0 is the pure "
        "constant-velocity model.", low=0.0, high=100.0)
    unsupported_velocity_damping: float = param(
        2.0, "Velocity decay rate (1/s) of tracks without visual support for visual_timeout "
        "(extrapolation stops instead of running away).", low=0.0, high=100.0)
    visual_timeout: float = param(
        0.5, "Seconds without visual support after which a track is flagged audio-only and "
        "its velocity decays with unsupported_velocity_damping.", low=0.0, high=60.0)
    max_position_std: float = param(
        2.0, "Cap (m) on a track's position standard deviation in any direction (the "
        "unobservable directions of audio-only tracks).", low=0.01, high=100.0)
    max_speed_std: float = param(
        1.5, "Cap (m/s) on a track's velocity standard deviation in any direction.",
        low=0.01, high=100.0)
    estimate_process_noise: bool = param(
        False, "M-step: re-estimate each track's process-noise level from its visual "
        "updates (otherwise the configured noise is kept).")
    process_noise_forgetting: float = param(
        0.9, "Forgetting factor of the M-step's running estimate (per image frame).",
        low=0.0, high=0.999)
    process_noise_scale_range: tuple = param(
        (0.2, 10.0), "Lowest and highest process-noise scale the M-step may reach.",
        low=1e-3, high=1e3, length=2)
    # ------------------------------------------------------------ visual model
    visual_clutter_prob: float = param(
        0.1, "Prior probability that a visual observation is clutter.", low=1e-6, high=0.99)
    visual_clutter_density: float = param(
        1.0 / 88.0, "Density (1/m^3) of visual clutter = 1 / visible volume (default: the "
        "default camera's view between 0.4 and 6 m, 88 m^3; see frustum_volume).",
        low=1e-9, high=1e6)
    unseen_detection_prob: float = param(
        0.1, "Relative prior weight of a track whose predicted position is out of view in "
        "the visual assignment (a person out of view is rarely detected).",
        low=1e-6, high=1.0)
    weighted_clutter_prior: bool = param(
        True, "Read a visual weight as the detection's chance of being real: clutter prior "
        "1 - w (1 - visual_clutter_prob) per observation (else visual_clutter_prob for all).")
    min_visual_weight: float = param(
        0.05, "Visual observations with a smaller weight are ignored.", low=0.0, high=1.0)
    visual_full_weight: float = param(
        0.5, "Visual weight that counts as full support for the existence update.",
        low=1e-3, high=1.0)
    min_depth: float = param(
        0.4, "Nearest depth (m) of the visible volume (in-view test of tracks).",
        low=0.01, high=100.0)
    max_depth: float = param(
        6.0, "Farthest depth (m) of the visible volume (in-view test of tracks).",
        low=0.1, high=200.0)
    # ------------------------------------------------------------- audio model
    audio_enabled: bool = param(
        True, "Use audio observations (false: visual-only tracking, no speaking status).")
    itd_sigma: float = param(
        60e-6, "Standard deviation (s) of an ITD of weight >= audio_full_weight around the "
        "exact near-field ITD of the speaker (noise and reverberation bias).",
        low=1e-7, high=1e-3)
    itd_shrink_per_m: float = param(
        0.0, "Initial (or fixed) reverberation shrink of the ITD towards 0 per metre of "
        "source distance: observed ITD = (1 - b d) G(p).", low=0.0, high=0.4)
    estimate_itd_shrink: bool = param(
        True, "M-step for the audio model: estimate itd_shrink_per_m online from the audio "
        "frames assigned to visually supported tracks.")
    itd_shrink_memory: float = param(
        1000.0, "Memory (in audio frames) of the running shrink estimate.", low=10.0,
        high=1e6)
    itd_shrink_prior_sigma: float = param(
        0.05, "Standard deviation (1/m) of the Gaussian prior of the shrink around "
        "itd_shrink_per_m (MAP M-step: frontal talkers, whose ITD says little about the "
        "shrink, leave it near the prior).", low=1e-4, high=10.0)
    audio_clutter_prob: float = param(
        0.2, "Prior probability that an audio frame comes from no track (noise, "
        "reverberation, other sources).", low=1e-6, high=0.99)
    audio_clutter_density: float = param(
        1040.0, "Density (1/s) of clutter ITDs = 1 / ITD range (default: uniform over "
        "+-480 us, the range of the default 0.15 m pair with a 10 % margin).",
        low=1.0, high=1e7)
    audio_moves_in_view: bool = param(
        False, "Let ITDs move tracks that are inside the camera view (stereo is ~100x more "
        "precise there; false keeps an occluded listener from following a neighbour's "
        "voice).  Tracks out of view are always localised by audio.")
    audio_full_weight: float = param(
        0.3, "Audio frame weight (activity x reliability) that counts fully; smaller weights "
        "scale the ITD precision and the speaking evidence down.", low=1e-3, high=1.0)
    audio_speaking_prior: float = param(
        0.5, "How much the audio assignment prior favours tracks that already speak "
        "(0: uniform over tracks; 1: proportional to the speaking probability).",
        low=0.0, high=0.99)
    # --------------------------------------------------------------- inference
    association: str = param(
        "predictive", "E-Z likelihood: 'predictive' (predictive density of the predicted "
        "track, robust for uncertain tracks) or 'mean_field' (Ban et al.'s VB expectation).",
        choices=("predictive", "mean_field"))
    visual_gate: float = param(
        16.27, "Squared Mahalanobis distance (3 dof; 16.27 = 99.9 %) beyond which a visual "
        "observation cannot belong to a track (otherwise a coasting track takes clutter "
        "points in its Gaussian tail).", low=1.0, high=1e6)
    itd_reflection_prob: float = param(
        0.4, "Share of a talker's ITDs that come from reflections rather than the direct "
        "path: uniform between 0 and the talker's ITD (floor, ceiling, front and back "
        "walls see the talker at a smaller angle to the microphone axis); 0: Gaussian "
        "around the direct-path ITD only.", low=0.0, high=0.95)
    audio_gate: float = param(
        10.83, "Squared normalised ITD residual (1 dof; 10.83 = 99.9 %) beyond which an "
        "audio frame cannot belong to a track.", low=1.0, high=1e6)
    min_responsibility: float = param(
        0.05, "Responsibilities below this do not enter the E-S step (a very uncertain track "
        "would otherwise jump onto a stereo observation it explains with 1 % of its mass).",
        low=0.0, high=0.5)
    vb_iterations: int = param(
        3, "Most variational iterations (E-Z, E-S) per update.", low=1, high=50)
    vb_tolerance: float = param(
        1e-4, "Stop iterating when no track position moves more than this (m).",
        low=0.0, high=1.0)
    audio_batch_span: float = param(
        0.1, "Tracker.step applies the audio frames that lie within this many seconds of "
        "each other in one variational update (the speaking HMM still steps per frame); "
        "0 = one update per frame.  Cuts the tracker's cost per image roughly by the number "
        "of frames merged.", low=0.0, high=1.0)
    max_lateness: float = param(
        0.25, "Input older than the tracker clock by more than this (s) is dropped; less "
        "late input is applied at the current time.", low=0.0, high=10.0)
    # ------------------------------------------------------------------ births
    birth_window: int = param(
        3, "Visual observations (image frames) a birth chain needs (B).", low=1, high=30)
    birth_llr_threshold: float = param(
        10.0, "Log marginal-likelihood ratio (chain vs clutter) a birth chain must exceed.",
        low=-100.0, high=1000.0)
    birth_gate: float = param(
        16.27, "Mahalanobis gate (squared, 3 dof; 16.27 = 99.9 %) extending a birth chain.",
        low=1.0, high=1000.0)
    birth_max_misses: int = param(
        1, "Image frames in a row a birth chain may miss before it is dropped.", low=0, high=10)
    birth_unassigned: float = param(
        0.5, "A visual observation feeds the births when its clutter responsibility is at "
        "least this.", low=0.0, high=1.0)
    birth_min_weight: float = param(
        0.3, "Smallest weight of a visual observation that may feed a birth.",
        low=0.0, high=1.0)
    birth_velocity_sigma: float = param(
        0.5, "Prior standard deviation (m/s) of the velocity of a new chain or track.",
        low=0.01, high=10.0)
    birth_existence: float = param(
        0.8, "Existence probability of a track born from a visual chain.", low=0.01, high=0.99)
    audio_births: bool = param(True, "Allow audio-only births (speakers out of view).")
    audio_birth_outside_view_only: bool = param(
        True, "Audio-only births only when the ITD direction is outside the camera view.")
    audio_birth_depth: float = param(
        2.0, "Distance (m) from the microphones of an audio-only birth.", low=0.2, high=20.0)
    audio_birth_height: float = param(
        -0.2, "Height y (m, camera frame, y down) of an audio-only birth: the ITD cone is "
        "turned about the microphone axis to reach it (between standing, about -0.4, and "
        "seated, about 0, people at the default camera height).", low=-3.0, high=3.0)
    audio_birth_sigma: float = param(
        1.0, "Position standard deviation (m) of an audio-only birth across the ITD cone.",
        low=0.01, high=10.0)
    audio_birth_window: float = param(
        0.5, "Seconds of unexplained audio considered for an audio-only birth.",
        low=0.05, high=10.0)
    audio_birth_mass: float = param(
        8.0, "Unexplained weighted audio frames (sum of w~ x clutter responsibility) with "
        "one ITD needed for an audio-only birth.", low=0.5, high=1000.0)
    audio_birth_spread: float = param(
        2.0, "ITDs within this many itd_sigma of the weighted median count for a birth.",
        low=0.1, high=20.0)
    audio_birth_existence: float = param(
        0.7, "Existence probability of an audio-only birth.", low=0.01, high=0.99)
    event_birth_visual_mass: float = param(
        4.0, "Births from audio-visual events (weighted-data EM clusters, tracker_node with "
        "tracking.use_av_events): visual mass (sum of weight x responsibility over the "
        "window) an in-view event no track explains needs to start a track.",
        low=0.1, high=1000.0)
    event_birth_audio_mass: float = param(
        8.0, "Audio mass an out-of-view event (audio, no visual support) no track explains "
        "needs to start an audio-only track.", low=0.1, high=10000.0)
    event_max_age: float = param(
        2.0, "Events whose window ended more than this (s) before the tracker clock are "
        "dropped (the fusion window lags the images by up to its length).",
        low=0.0, high=60.0)
    event_gate: float = param(
        16.27, "Mahalanobis gate (squared, 3 dof) within which a track explains an event "
        "(track and event position covariances added).", low=1.0, high=1000.0)
    # --------------------------------------------------------- existence/death
    existence_hit: float = param(
        1.0, "Existence log-odds gained per image frame with full visual support.",
        low=0.0, high=20.0)
    existence_decay: float = param(
        4.0, "Existence log-odds lost per second of missed detections while in view.",
        low=0.0, high=1000.0)
    unseen_existence_decay: float = param(
        4.0, "Existence log-odds lost per second while out of the camera view.",
        low=0.0, high=1000.0)
    audio_existence_gain: float = param(
        0.1, "Existence log-odds gained per audio frame fully assigned to the track, times "
        "its speaking probability (a silent track gains nothing from audio).",
        low=0.0, high=10.0)
    max_existence: float = param(
        0.999, "Existence probability cap (bounds how long a lost track coasts).",
        low=0.5, high=0.999999)
    death_existence: float = param(
        0.2, "A track dies when its existence probability falls below this.",
        low=1e-6, high=0.99)
    confirm_existence: float = param(
        0.7, "A track is confirmed (reported) once its existence reaches this; it stays "
        "confirmed until it dies.", low=0.01, high=0.999)
    report_unseen_silent: bool = param(
        False, "Report tracks that are out of view, without visual support for "
        "visual_timeout and not speaking (their position is a guess; they are kept alive, "
        "unreported, to keep the identity if the person comes back).")
    merge_distance: float = param(
        0.2, "Two tracks closer than this (m) that share their observations for merge_time "
        "are merged (duplicates of one person; 0 disables merging).", low=0.0, high=5.0)
    merge_time: float = param(
        1.0, "Seconds two tracks must stay within merge_distance, sharing observations, "
        "before they are merged.", low=0.0, high=60.0)
    # ---------------------------------------------------------------- speaking
    speaking_entry: float = param(
        0.01, "HMM transition probability silent -> speaking per audio frame.",
        low=1e-6, high=0.5)
    speaking_exit: float = param(
        0.01, "HMM transition probability speaking -> silent per audio frame.",
        low=1e-6, high=0.5)
    speaking_threshold: float = param(
        0.35, "Audio responsibility at which a fully active frame is neutral evidence.",
        low=0.0, high=1.0)
    speaking_gain: float = param(
        5.0, "Log-likelihood ratio (speaking/silent) per unit of responsibility above "
        "speaking_threshold, for a fully active frame.", low=0.0, high=100.0)
    speaking_idle: float = param(
        0.6, "Log-likelihood ratio against speaking of a fully inactive frame.",
        low=0.0, high=100.0)

    def validate(self):
        if self.min_depth >= self.max_depth:
            raise ConfigError(
                f"parameters 'tracker.min_depth' = {self.min_depth} and 'tracker.max_depth' = "
                f"{self.max_depth} are not allowed: need min_depth < max_depth")
        if self.death_existence >= self.confirm_existence:
            raise ConfigError(
                f"parameters 'tracker.death_existence' = {self.death_existence} and "
                f"'tracker.confirm_existence' = {self.confirm_existence} are not allowed: need "
                "death_existence < confirm_existence")
        for name in ("birth_existence", "audio_birth_existence", "confirm_existence"):
            if getattr(self, name) > self.max_existence:
                raise ConfigError(
                    f"parameter 'tracker.{name}' = {getattr(self, name)} is not allowed: must be "
                    f"<= tracker.max_existence ({self.max_existence})")
        lo, hi = self.process_noise_scale_range
        if not lo <= 1.0 <= hi:
            raise ConfigError(
                f"parameter 'tracker.process_noise_scale_range' = {[lo, hi]} is not allowed: "
                "must be [low, high] with low <= 1 <= high")


# ---------------------------------------------------------------------------
# Small model functions (public: the tests and the baselines use them)
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


def speaking_evidence(beta, weight, threshold: float, gain: float, idle: float) -> np.ndarray:
    """Per-track log-likelihood ratio (speaking vs silent) of one audio frame.

    Parameters
    ----------
    beta : array (F, K)
        Audio responsibilities of the K tracks for the F ITDs of the frame.
    weight : array (F,)
        Normalised weights w~ in [0, 1] of those ITDs.
    threshold, gain, idle : float
        See :class:`TrackerConfig` (speaking_threshold, speaking_gain, speaking_idle).

    Returns
    -------
    llr : array (K,)
        ``mean_f [gain w~_f (beta_fk - threshold) - idle (1 - w~_f)]``.
    """
    beta = np.asarray(beta, dtype=float)
    w = np.asarray(weight, dtype=float)[:, None]
    if beta.shape[0] == 0:
        return np.zeros(beta.shape[1])
    return np.mean(gain * w * (beta - threshold) - idle * (1.0 - w), axis=0)


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
    logit = np.log(prior) - np.log1p(-prior) + np.asarray(llr, dtype=float)
    return 0.5 * (1.0 + np.tanh(0.5 * logit))


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def _gauss_logpdf(r: np.ndarray, S: np.ndarray) -> np.ndarray:
    """log N(r; 0, S) for residuals r (..., d) and covariances S (..., d, d)."""
    d = r.shape[-1]
    sol = np.linalg.solve(S, r[..., None])[..., 0]
    _, logdet = np.linalg.slogdet(S)
    return -0.5 * (np.sum(r * sol, axis=-1) + logdet + d * _LOG2PI)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _symmetrise(c: np.ndarray) -> np.ndarray:
    return 0.5 * (c + np.swapaxes(c, -1, -2))


# ---------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------
@dataclass
class AudioFrames:
    """Audio observations of F frames (the part of the front-end output the tracker uses).

    stamp : (F,) s, frame centre times.  itd : (F,) s (NaN = no ITD).  weight : (F,) in
    [0, 1], activity x reliability.  Entries with the same stamp form one frame (e.g.
    sub-band ITDs).
    """

    stamp: np.ndarray
    itd: np.ndarray
    weight: np.ndarray

    def __post_init__(self):
        self.stamp = np.atleast_1d(np.asarray(self.stamp, dtype=float))
        self.itd = np.atleast_1d(np.asarray(self.itd, dtype=float))
        self.weight = np.atleast_1d(np.asarray(self.weight, dtype=float))
        n = len(self.stamp)
        if self.stamp.ndim != 1 or self.itd.shape != (n,) or self.weight.shape != (n,):
            raise TrackerInputError(
                f"audio frames need stamp, itd and weight of one shape (F,), got "
                f"{self.stamp.shape}, {self.itd.shape}, {self.weight.shape}")
        if not np.all(np.isfinite(self.stamp)):
            raise TrackerInputError("audio frame stamps must be finite")
        if not np.all(np.isfinite(self.weight)) or np.any(self.weight < 0):
            raise TrackerInputError("audio frame weights must be finite and >= 0")

    def __len__(self) -> int:
        return len(self.stamp)

    @classmethod
    def from_features(cls, features) -> AudioFrames:
        """From :class:`~av_perception.core.audio.BinauralFeatures` (weight = activity x
        reliability)."""
        return cls(features.stamp, features.itd, features.weight)

    @classmethod
    def empty(cls) -> AudioFrames:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0))

    def select(self, mask) -> AudioFrames:
        return AudioFrames(self.stamp[mask], self.itd[mask], self.weight[mask])


@dataclass
class EventObservations:
    """Audio-visual events of one fusion window (weighted-data EM clusters), the input of
    event births.

    position : (E, 3) m, left camera optical frame.  covariance : (E, 3, 3) m^2, position
    uncertainty.  visual_mass, audio_mass : (E,) >= 0.  out_of_view : (E,) bool, audio
    without visual support (position on the ITD cone at the fusion's default depth).
    stamp : s, end of the window (None: unknown, the time they are given at is used).
    spread : (E, 3, 3) m^2, covariance of each cluster's visual observations over the
    window (motion inflates it; default zero).
    """

    position: np.ndarray
    covariance: np.ndarray
    visual_mass: np.ndarray
    audio_mass: np.ndarray
    out_of_view: np.ndarray
    stamp: float | None = None
    spread: np.ndarray | None = None

    def __post_init__(self):
        self.position = np.asarray(self.position, dtype=float).reshape(-1, 3)
        n = len(self.position)
        self.covariance = np.asarray(self.covariance, dtype=float).reshape(n, 3, 3)
        self.spread = (np.zeros((n, 3, 3)) if self.spread is None
                       else np.asarray(self.spread, dtype=float).reshape(n, 3, 3))
        self.visual_mass = np.asarray(self.visual_mass, dtype=float).reshape(n)
        self.audio_mass = np.asarray(self.audio_mass, dtype=float).reshape(n)
        self.out_of_view = np.asarray(self.out_of_view, dtype=bool).reshape(n)
        finite = (np.all(np.isfinite(self.position)) and np.all(np.isfinite(self.covariance))
                  and np.all(np.isfinite(self.spread))
                  and np.all(np.isfinite(self.visual_mass))
                  and np.all(np.isfinite(self.audio_mass)))
        if not finite:
            raise TrackerInputError("events must have finite positions, covariances and masses")
        if np.any(self.visual_mass < 0) or np.any(self.audio_mass < 0):
            raise TrackerInputError("event masses must be >= 0")
        if n and np.any(np.linalg.eigvalsh(_symmetrise(self.covariance)) <= 0):
            raise TrackerInputError("event covariances must be positive definite")

    def __len__(self) -> int:
        return len(self.position)

    @classmethod
    def from_events(cls, events) -> EventObservations:
        """From a list of :class:`~av_perception.core.av_clustering.AVEvent`."""
        return cls([e.position for e in events], [e.covariance for e in events],
                   [e.visual_mass for e in events], [e.audio_mass for e in events],
                   [e.out_of_view for e in events],
                   max((e.stamp for e in events), default=None),
                   [e.spread for e in events])


@dataclass
class TrackerOutput:
    """The reported tracks at one stamp (K of them), left camera optical frame.

    Attributes
    ----------
    stamp : float
        Seconds.
    ids : (K,) int64
        Track identities (never reused).
    position : (K, 3)
        m.
    covariance : (K, 3, 3)
        m^2, position covariance.
    velocity : (K, 3)
        m/s.
    existence : (K,)
        Existence probability.
    speaking : (K,)
        Probability that the person speaks (HMM posterior); 0 with audio disabled.
    audio_only : (K,) bool
        No visual support for ``visual_timeout`` s (e.g. a talker out of view).
    ended : (E,) int64
        Identities of the tracks that ended since the previous output.
    """

    stamp: float
    ids: np.ndarray
    position: np.ndarray
    covariance: np.ndarray
    velocity: np.ndarray
    existence: np.ndarray
    speaking: np.ndarray
    audio_only: np.ndarray
    ended: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def variances(self) -> np.ndarray:
        """(K, 3) var_x, var_y, var_z in m^2."""
        return np.diagonal(self.covariance, axis1=1, axis2=2).copy()

    def rows(self, include_audio_only: bool = True) -> list[tuple]:
        """Track-file rows ``(stamp, track_id, x, y, z, speaking)`` (docs/architecture.md, "Files"),
        optionally without the audio-only tracks."""
        return [(self.stamp, int(i), float(p[0]), float(p[1]), float(p[2]), float(s))
                for i, p, s, a in zip(self.ids, self.position, self.speaking, self.audio_only)
                if include_audio_only or not a]


# ---------------------------------------------------------------------------
# The tracker
# ---------------------------------------------------------------------------
class _Chain:
    """A birth candidate: a Kalman filter over unassigned visual observations."""

    __slots__ = ("mu", "cov", "n_obs", "llr", "misses", "stamp")

    def __init__(self, mu, cov, stamp):
        self.mu = mu
        self.cov = cov
        self.n_obs = 1
        self.llr = 0.0
        self.misses = 0
        self.stamp = stamp


class Tracker:
    """Variational Bayesian audio-visual multi-person tracker (see the module docstring).

    Parameters
    ----------
    config : TrackerConfig
    mics : MicArrayConfig or MicGeometry
        The binaural pair (default: :class:`MicArrayConfig` defaults).
    camera : StereoCameraConfig
        Intrinsics of the left camera, for the in-view test (default: defaults).

    Typical use, once per image pair (``features``: the BinauralFeatures received
    since the previous image, ``obs``: that pair's VisualObservations)::

        tracker = Tracker(TrackerConfig(), mics_config, camera_config)
        out = tracker.step(obs.stamp, visual=obs, audio=features)
        out.ids, out.position, out.speaking, out.audio_only, out.ended
    """

    def __init__(self, config: TrackerConfig | None = None,
                 mics: MicArrayConfig | MicGeometry | None = None,
                 camera: StereoCameraConfig | None = None):
        self.config = config or TrackerConfig()
        mics = mics if mics is not None else MicArrayConfig()
        self.geometry = mics if isinstance(mics, MicGeometry) else make_head_model(mics)
        self.camera = camera or StereoCameraConfig()
        c = self.config
        self._q_axes = np.array([c.process_noise, c.vertical_process_noise, c.process_noise])
        self._logit_max = _logit(c.max_existence)
        self._logit_death = _logit(c.death_existence)
        self._logit_confirm = _logit(c.confirm_existence)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every track, chain and buffered input; identities restart at 1."""
        self.time: float | None = None
        self._next_id = 1
        self._mu = np.zeros((0, 6))
        self._cov = np.zeros((0, 6, 6))
        self._ids = np.zeros(0, dtype=np.int64)
        self._logodds = np.zeros(0)
        self._speak = np.zeros(0)
        self._confirmed = np.zeros(0, dtype=bool)
        self._last_visual = np.zeros(0)  # stamp of the last visual support (-inf: never)
        self._qscale = np.zeros(0)
        self._vis_mu = np.zeros((0, 6))  # posterior at the previous image frame (M-step)
        self._vis_cov = np.zeros((0, 6, 6))
        self._vis_time = np.zeros(0)
        self._ref_range = np.zeros(0)  # anchor of audio-only tracks (see module docstring)
        self._ref_perp = np.zeros((0, 3))
        self._close_since: dict = {}
        self._shrink = self.config.itd_shrink_per_m
        self._shrink_num = 0.0  # running sums of the shrink least squares
        self._shrink_den = 0.0
        self._last_image: float | None = None
        self._visual_w = np.zeros(0)
        self._chains: list[_Chain] = []
        self._audio_buffer: deque = deque()
        self._pending = AudioFrames.empty()
        self._ended: list[int] = []
        self.stats = {"audio_frames": 0, "visual_frames": 0, "late_audio": 0,
                      "late_visual": 0, "births_visual": 0, "births_audio": 0, "deaths": 0,
                      "merges": 0, "vb_iterations": 0, "event_windows": 0, "late_events": 0,
                      "births_events": 0, "births_events_audio": 0}

    @property
    def num_tracks(self) -> int:
        """Live tracks, confirmed or not."""
        return len(self._ids)

    @property
    def itd_shrink(self) -> float:
        """Current ITD shrink per metre b (estimated or fixed)."""
        return self._shrink

    def itd_model(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Expected ITD (s) of points (N, 3) under the audio model, and its gradient (N, 3).

        (1 - b d) G(p) with the current shrink b, d = |p - mic centre| (m).
        """
        p = np.atleast_2d(np.asarray(points, dtype=float))
        G = self.geometry.itd(p)
        J = self.geometry.itd_jacobian(p)
        b = self._shrink
        if b == 0.0:
            return G, J
        rel = p - self.geometry.centre
        d = np.maximum(np.linalg.norm(rel, axis=1), 1e-9)
        f = 1.0 - b * d
        return f * G, f[:, None] * J - (b * G / d)[:, None] * rel

    @property
    def process_noise_scale(self) -> dict:
        """{track id: M-step process-noise scale} (1 without the M-step)."""
        return {int(i): float(s) for i, s in zip(self._ids, self._qscale)}

    # ------------------------------------------------------------------ public
    def step(self, stamp: float, visual=None, audio=None, events=None) -> TrackerOutput:
        """Advance to ``stamp``: buffered and new audio frames up to ``stamp`` (time order),
        then the audio-visual events (births only), then the image pair, then report.

        Parameters
        ----------
        stamp : float
            s, the image header stamp (or any time to report at when ``visual`` is None).
        visual : VisualObservations, optional
            Observations of the image pair at ``stamp`` (its ``xyz``, ``covariance``,
            ``weight`` are used).
        audio : BinauralFeatures or AudioFrames, optional
            Audio frames received since the previous call; frames later than ``stamp``
            are kept for the next call.
        events : EventObservations or list of AVEvent, optional
            Audio-visual events received since the previous call (:meth:`update_events`).

        Returns
        -------
        TrackerOutput at ``stamp``.
        """
        stamp = self._check_stamp(stamp)
        if audio is not None:
            if not isinstance(audio, AudioFrames):
                if not all(hasattr(audio, a) for a in ("stamp", "itd", "weight")):
                    raise TrackerInputError(
                        "audio must be AudioFrames or BinauralFeatures, got "
                        f"{type(audio).__name__}")
                audio = AudioFrames.from_features(audio)
            frames = audio
            if len(frames):
                self._pending = AudioFrames(
                    np.concatenate([self._pending.stamp, frames.stamp]),
                    np.concatenate([self._pending.itd, frames.itd]),
                    np.concatenate([self._pending.weight, frames.weight]))
        if len(self._pending):
            order = np.argsort(self._pending.stamp, kind="stable")
            pend = self._pending.select(order)
            due = pend.stamp <= stamp
            now = pend.select(due)
            self._pending = pend.select(~due)
            if len(now):
                starts = np.flatnonzero(np.r_[True, np.diff(now.stamp) > 0])
                ends = np.r_[starts[1:], len(now)]
                span = self.config.audio_batch_span
                a = 0
                while a < len(starts):  # frames within audio_batch_span of a: one update
                    b = max(a + 1, int(np.searchsorted(
                        now.stamp[starts], now.stamp[starts[a]] + span, side="right")))
                    self._update_audio_batch(now.select(slice(starts[a], ends[b - 1])))
                    a = b
        if events is not None:
            window_end = getattr(events, "stamp", None)
            self.update_events(stamp if window_end is None else window_end, events)
        if visual is not None:
            if not all(hasattr(visual, a) for a in ("xyz", "covariance", "weight")):
                raise TrackerInputError(
                    "visual must have xyz, covariance and weight (e.g. VisualObservations), "
                    f"got {type(visual).__name__}")
            return self.update_visual(stamp, visual.xyz, visual.covariance, visual.weight)
        return self.report(stamp)

    def update_visual(self, stamp: float, xyz, covariance, weight=None) -> TrackerOutput:
        """Update with the visual observations of one image pair and report.

        Parameters
        ----------
        stamp : float
            s, image header stamp.
        xyz : array (M, 3)
            m, left camera optical frame.
        covariance : array (M, 3, 3)
            m^2, symmetric positive definite.
        weight : array (M,), optional
            In [0, 1] (default 1).

        Returns
        -------
        TrackerOutput at ``stamp``.
        """
        stamp = self._check_stamp(stamp)
        xyz, cov, w = self._check_visual(xyz, covariance, weight)
        t = self._advance(stamp, "late_visual")
        if t is None:
            return self.report(stamp)
        self.stats["visual_frames"] += 1
        keep = w >= max(self.config.min_visual_weight, 1e-6)
        xyz, cov, w = xyz[keep], cov[keep], w[keep]
        dt_img = 1.0 / self.camera.fps if self._last_image is None else min(
            max(t - self._last_image, 0.0), 0.5)
        self._last_image = t
        self._visual_w = w
        alpha, _ = self._variational(xyz, cov / w[:, None, None], None, None)
        self._visual_bookkeeping(t, dt_img, alpha, w)
        self._births(t, xyz, cov, w, alpha)
        self._merge(alpha)
        self._deaths()
        return self.report(stamp)

    def update_events(self, stamp: float, events) -> int:
        """Births from the audio-visual events no track explains; returns the births.

        An in-view event with ``event_birth_visual_mass`` of visual support starts a
        track at its position; an out-of-view event with ``event_birth_audio_mass`` of
        audio starts an audio-only track (outside the camera view only, like the
        tracker's own audio births).  A track explains an event when their positions
        are within ``event_gate`` (Mahalanobis; the track's covariance plus the event's
        covariance and spread, as a moving person's window-average lags behind) or
        ``merge_distance``.
        The events only start tracks: their observations already reach the tracker as
        visual observations and audio frames, and counting them twice would make the
        tracks overconfident.

        Parameters
        ----------
        stamp : float
            s, end of the events' window; the births happen at the tracker's current time
            (events lag the images; they never advance the tracker's clock).
        events : EventObservations or list of AVEvent
        """
        stamp = self._check_stamp(stamp)
        if not isinstance(events, EventObservations):
            try:
                events = EventObservations.from_events(events)
            except (AttributeError, TypeError) as exc:
                raise TrackerInputError(
                    "events must be EventObservations or a list of AVEvent, got "
                    f"{type(events).__name__}") from exc
        c = self.config
        self.stats["event_windows"] += 1
        if self.time is not None and stamp < self.time - c.event_max_age:
            self.stats["late_events"] += 1
            return 0
        if self.time is None:
            self._advance(stamp, "late_events")
        t = self.time  # never advanced by events: the images they lag must stay on time
        births = 0
        for e in range(len(events)):
            pos, cov = events.position[e], events.covariance[e]
            if len(self._ids):
                r = self._mu[:, :3] - pos
                S = self._cov[:, :3, :3] + cov + _symmetrise(events.spread[e])
                md = np.einsum("ni,ni->n", r, np.linalg.solve(S, r[..., None])[..., 0])
                if np.any(md <= c.event_gate) or np.min(
                        np.linalg.norm(r, axis=1)) < max(c.merge_distance, 1e-9):
                    continue
            P = np.zeros((6, 6))
            P[:3, :3] = _symmetrise(cov)
            P[3:, 3:] = c.birth_velocity_sigma ** 2 * np.eye(3)
            mu = np.r_[pos, 0.0, 0.0, 0.0]
            if not events.out_of_view[e]:
                if events.visual_mass[e] < c.event_birth_visual_mass:
                    continue
                if not self._in_view(pos[None])[0]:
                    continue
                speaking = (_AUDIO_BIRTH_SPEAKING if events.audio_mass[e]
                            >= c.event_birth_audio_mass else c.speaking_entry)
                self._new_track(mu, P, t, c.birth_existence, True, speaking)
                self.stats["births_events"] += 1
            else:
                if not c.audio_births or events.audio_mass[e] < c.event_birth_audio_mass:
                    continue
                if c.audio_birth_outside_view_only and self._in_view(pos[None])[0]:
                    continue
                self._new_track(mu, P, t, c.audio_birth_existence, False,
                                _AUDIO_BIRTH_SPEAKING)
                self.stats["births_events_audio"] += 1
            births += 1
        self._cap_covariance()
        return births

    def update_audio(self, stamp: float, itds, weights) -> None:
        """Update with one audio frame: one or more ITDs observed at ``stamp``.

        Parameters
        ----------
        stamp : float
            s, time of the frame's centre sample.
        itds : array (F,) or float
            s, positive when the sound reaches the left mic first; NaN = no ITD.
        weights : array (F,) or float
            Activity x reliability in [0, 1]; NaN ITDs count as weight 0.
        """
        stamp = self._check_stamp(stamp)
        g = np.atleast_1d(np.asarray(itds, dtype=float))
        w = np.atleast_1d(np.asarray(weights, dtype=float))
        if g.ndim != 1 or w.shape != g.shape:
            raise TrackerInputError(
                f"itds and weights must have one shape (F,), got {g.shape} and {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise TrackerInputError("audio weights must be finite and >= 0")
        if np.any(np.isinf(g)):
            raise TrackerInputError("ITDs must be finite (NaN marks a frame without ITD)")
        if not self.config.audio_enabled:
            return
        t = self._advance(stamp, "late_audio")
        if t is None:
            return
        self.stats["audio_frames"] += 1
        self._audio_update(np.full(len(g), t), g, w)

    def _audio_update(self, stamps, g, w) -> None:
        """One variational update with the ITDs of one or more audio frames (``stamps``
        (F,), non-decreasing, the tracker already predicted to the last); the speaking
        HMM, existence, shrink M-step and audio births still step frame by frame."""
        c = self.config
        ok = np.isfinite(g)
        wn = np.where(ok, np.minimum(w / c.audio_full_weight, 1.0), 0.0)
        g = np.where(ok, g, 0.0)
        use = wn > 1e-6
        beta_full = np.zeros((len(g), len(self._ids) + 1))
        beta_full[:, 0] = 1.0
        if np.any(use):
            _, beta = self._variational(None, None, g[use], wn[use])
            beta_full[use] = beta
        starts = np.flatnonzero(np.r_[True, np.diff(stamps) > 0])
        ends = np.r_[starts[1:], len(stamps)]
        k0 = len(self._ids)
        for a, b in zip(starts, ends):
            gf, wf, bf = g[a:b], wn[a:b], beta_full[a:b]
            if len(self._ids):
                tb = bf[:, 1:]
                if len(self._ids) > k0:  # born from an earlier frame of this batch
                    tb = np.hstack([tb, np.zeros((len(tb), len(self._ids) - k0))])
                llr = speaking_evidence(tb, wf, c.speaking_threshold, c.speaking_gain,
                                        c.speaking_idle)
                self._speak = speaking_hmm_step(self._speak, llr, c.speaking_entry,
                                                c.speaking_exit)
                self._logodds = np.minimum(
                    self._logodds + c.audio_existence_gain * self._speak
                    * np.sum(wf[:, None] * tb, axis=0), self._logit_max)
                self._confirmed |= self._logodds >= self._logit_confirm
                if c.estimate_itd_shrink:
                    self._m_step_shrink(gf, wf, tb)
            if c.audio_births:
                self._audio_births(float(stamps[a]), gf, wf, bf[:, 0])
        self._deaths()

    def _update_audio_batch(self, frames: AudioFrames) -> None:
        """Audio frames in time order (one or more stamps) in one variational update at
        the last one's stamp (``audio_batch_span``); frames too late are dropped and
        counted, slightly late ones happen at the tracker's time, as in update_audio."""
        if np.any(np.isinf(frames.itd)):
            raise TrackerInputError("ITDs must be finite (NaN marks a frame without ITD)")
        if not self.config.audio_enabled or not len(frames):
            return
        before = -np.inf if self.time is None else self.time
        late = frames.stamp < before - self.config.max_lateness
        if np.any(late):
            self.stats["late_audio"] += len(np.unique(frames.stamp[late]))
            frames = frames.select(~late)
            if not len(frames):
                return
        self._advance(float(frames.stamp[-1]), "late_audio")
        self.stats["audio_frames"] += len(np.unique(frames.stamp))
        self._audio_update(np.maximum(frames.stamp, before), frames.itd, frames.weight)

    def report(self, stamp: float | None = None) -> TrackerOutput:
        """The confirmed tracks, predicted to ``stamp`` (default: the tracker clock) without
        changing the state; also returns (and forgets) the identities that ended."""
        t = self.time if stamp is None else float(stamp)
        sel = self._confirmed.copy()
        if not self.config.report_unseen_silent and t is not None and len(sel):
            hidden = ((t - self._last_visual > self.config.visual_timeout)
                      & (self._speak < 0.5) & ~self._in_view(self._mu[:, :3]))
            sel &= ~hidden
        mu, cov = self._mu[sel], self._cov[sel]
        if t is not None and self.time is not None and t > self.time and np.any(sel):
            D, Q = self._model(t - self.time, sel)
            mu = np.einsum("kij,kj->ki", D, mu)
            cov = D @ cov @ np.swapaxes(D, 1, 2) + Q
        ended = np.asarray(self._ended, dtype=np.int64)
        self._ended = []
        audio_only = (t - self._last_visual[sel] > self.config.visual_timeout
                      if t is not None else np.zeros(int(sel.sum()), dtype=bool))
        return TrackerOutput(
            stamp=float("nan") if t is None else float(t), ids=self._ids[sel].copy(),
            position=mu[:, :3].copy(), covariance=cov[:, :3, :3].copy(),
            velocity=mu[:, 3:].copy(), existence=1.0 / (1.0 + np.exp(-self._logodds[sel])),
            speaking=self._speak[sel].copy(), audio_only=np.asarray(audio_only, dtype=bool),
            ended=ended)

    # --------------------------------------------------------------- checks
    @staticmethod
    def _check_stamp(stamp) -> float:
        try:
            s = float(stamp)
        except (TypeError, ValueError) as exc:
            raise TrackerInputError(f"stamp must be a number of seconds, got {stamp!r}") from exc
        if not math.isfinite(s):
            raise TrackerInputError(f"stamp must be finite, got {stamp!r}")
        return s

    @staticmethod
    def _check_visual(xyz, covariance, weight):
        xyz = np.asarray(xyz, dtype=float)
        if xyz.ndim == 1 and xyz.size == 0:
            xyz = xyz.reshape(0, 3)
        cov = np.asarray(covariance, dtype=float)
        if cov.size == 0:
            cov = cov.reshape(0, 3, 3)
        m = len(xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise TrackerInputError(f"xyz must have shape (M, 3), got {xyz.shape}")
        if cov.shape != (m, 3, 3):
            raise TrackerInputError(f"covariance must have shape ({m}, 3, 3), got {cov.shape}")
        w = np.ones(m) if weight is None else np.asarray(weight, dtype=float).reshape(-1)
        if w.shape != (m,):
            raise TrackerInputError(f"weight must have shape ({m},), got {w.shape}")
        if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(cov)) and np.all(np.isfinite(w))):
            raise TrackerInputError("visual observations contain NaN or infinite values")
        if np.any(w < 0):
            raise TrackerInputError("visual weights must be >= 0")
        if m:
            if not np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=1e-6, atol=1e-12):
                raise TrackerInputError("visual covariances must be symmetric")
            if np.any(np.linalg.eigvalsh(cov)[:, 0] <= 0):
                raise TrackerInputError("visual covariances must be positive definite")
        return xyz, cov, w

    def _advance(self, stamp: float, late_key: str) -> float | None:
        """Predict to ``stamp``; None (and count) when the input is too late."""
        if self.time is None:
            self.time = stamp
            return stamp
        if stamp < self.time - self.config.max_lateness:
            self.stats[late_key] += 1
            return None
        if stamp > self.time:
            self._predict(stamp)
        return self.time

    # --------------------------------------------------------------- dynamics
    def _model(self, dt: float, sel=None):
        c = self.config
        last = self._last_visual if sel is None else self._last_visual[sel]
        qs = self._qscale if sel is None else self._qscale[sel]
        t = self.time
        supported = (t - last) <= c.visual_timeout
        damping = np.where(supported, c.velocity_damping, c.unsupported_velocity_damping)
        return constant_velocity_model(dt, damping, qs[:, None] * self._q_axes[None, :])

    def _predict(self, t: float) -> None:
        dt = t - self.time
        if len(self._ids):
            D, Q = self._model(dt)
            self._mu = np.einsum("kij,kj->ki", D, self._mu)
            self._cov = _symmetrise(D @ self._cov @ np.swapaxes(D, 1, 2) + Q)
            self._cap_covariance()
            unseen = ~self._in_view(self._mu[:, :3])
            self._logodds = self._logodds - self.config.unseen_existence_decay * dt * unseen
        self.time = t
        self._anchor()

    def _cap_covariance(self) -> None:
        """Clamp the position / velocity covariance eigenvalues by congruence (stays PSD)."""
        c = self.config
        for block, cap in ((slice(0, 3), c.max_position_std ** 2),
                           (slice(3, 6), c.max_speed_std ** 2)):
            diag = np.diagonal(self._cov[:, block, block], axis1=1, axis2=2)
            for k in np.flatnonzero(diag.max(axis=1) > cap):
                lam, vec = np.linalg.eigh(self._cov[k, block, block])
                if lam[-1] <= cap:
                    continue
                s = np.sqrt(np.minimum(cap / np.maximum(lam, 1e-300), 1.0))
                T = np.eye(6)
                T[block, block] = (vec * s) @ vec.T
                self._cov[k] = _symmetrise(T @ self._cov[k] @ T.T)

    def _in_view(self, p: np.ndarray) -> np.ndarray:
        """Boolean (N,): points (N, 3) inside the camera view and depth range."""
        cam = self.camera
        z = p[:, 2]
        zs = np.where(z > 1e-6, z, 1.0)
        u = cam.cx + cam.fx * p[:, 0] / zs
        v = cam.cy + cam.fy * p[:, 1] / zs
        return ((z >= self.config.min_depth) & (z <= self.config.max_depth)
                & (u >= -0.5) & (u <= cam.width - 0.5) & (v >= -0.5) & (v <= cam.height - 0.5))

    # ------------------------------------------------------------ variational
    def _variational(self, xyz, R, g, wn):
        """VB iterations at the current time.

        Parameters
        ----------
        xyz, R : (M, 3), (M, 3, 3) or None
            Visual observations and their weighted covariances Phi / w.
        g, wn : (F,), (F,) or None
            ITDs (s) and normalised weights.

        Returns
        -------
        alpha : (M, K + 1) or None, beta : (F, K + 1) or None
            Responsibilities, column 0 = clutter.  Updates the track posteriors.
        """
        c = self.config
        k = len(self._ids)
        alpha = beta = None
        if k == 0:
            if xyz is not None:
                alpha = np.zeros((len(xyz), 1))
                alpha[:, 0] = 1.0
            if g is not None:
                beta = np.zeros((len(g), 1))
                beta[:, 0] = 1.0
            return alpha, beta
        mu0, cov0 = self._mu.copy(), self._cov.copy()
        mu, cov = mu0, cov0
        Rinv = Rinv_v = None
        if xyz is not None and len(xyz):
            Rinv = np.linalg.inv(R)
            Rinv_v = np.einsum("mij,mj->mi", Rinv, xyz)
        sig2 = c.itd_sigma ** 2
        for _ in range(c.vb_iterations):
            self.stats["vb_iterations"] += 1
            assoc_mu, assoc_cov = (mu0, cov0) if c.association == "predictive" else (mu, cov)
            H_parts, O_parts, b_parts = [], [], []
            if xyz is not None:
                alpha = self._ez_visual(xyz, R, Rinv, assoc_mu, assoc_cov)
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
                G_lin, J_lin = self.itd_model(mu[:, :3])
                beta = self._ez_audio(g, wn, assoc_mu, assoc_cov,
                                      G_lin if assoc_mu is mu else None,
                                      J_lin if assoc_mu is mu else None)
                # E[B_kn chi_n] = beta_kn P(speaking_n): only a talker emits ITDs
                bk = np.where(beta[:, 1:] >= c.min_responsibility, beta[:, 1:], 0.0)
                bk = bk * (wn[:, None] / sig2) * self._speak[None, :]  # (F, K)
                if not c.audio_moves_in_view:
                    bk = bk * ~self._in_view(mu0[:, :3])[None, :]
                om = bk.sum(axis=0)  # (K,)
                y = g[:, None] - G_lin[None, :] + np.sum(J_lin * mu[:, :3], axis=1)[None, :]
                ba = np.sum(bk * y, axis=0)
                H = np.zeros((k, 1, 6))
                H[:, 0, :3] = J_lin
                H_parts.append(H)
                O_parts.append(om[:, None, None])
                b_parts.append(ba[:, None])
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
            new_mu, new_cov = self._es(mu0, cov0, H, Om, b)
            moved = float(np.max(np.abs(new_mu[:, :3] - mu[:, :3])))
            mu, cov = new_mu, new_cov
            if moved <= c.vb_tolerance:
                break
        self._mu, self._cov = mu, cov
        self._cap_covariance()
        self._anchor()
        return alpha, beta

    def _ez_visual(self, xyz, R, Rinv, mu, cov) -> np.ndarray:
        c = self.config
        k = len(self._ids)
        m = len(xyz)
        logr = np.empty((m, k + 1))
        # clutter prior per observation: the weight (detector confidence) is the chance
        # of a real detection when weighted_clutter_prior
        p0 = np.full(m, c.visual_clutter_prob)
        if c.weighted_clutter_prior:
            p0 = 1.0 - np.clip(self._visual_w, 0.0, 1.0) * (1.0 - c.visual_clutter_prob)
        p0 = np.clip(p0, 1e-6, 1.0 - 1e-6)
        logr[:, 0] = np.log(p0) + math.log(c.visual_clutter_density)
        if m == 0:
            return np.zeros((0, k + 1))
        r = xyz[:, None, :] - mu[None, :, :3]
        P = cov[:, :3, :3]
        if c.association == "predictive":
            S = R[:, None] + P[None]
        else:
            S = np.broadcast_to(R[:, None], (m, k, 3, 3))
        sol = np.linalg.solve(S, r[..., None])[..., 0]
        md = np.sum(r * sol, axis=-1)
        ll = -0.5 * (md + np.linalg.slogdet(S)[1] + 3 * _LOG2PI)
        if c.association == "mean_field":
            ll = ll - 0.5 * np.einsum("mij,kji->mk", Rinv, P)
        ll = np.where(md <= c.visual_gate, ll, -np.inf)
        # prior of "from track n": existence x detectability (mean in view, else
        # unseen_detection_prob), normalised over the tracks
        prior = 1.0 / (1.0 + np.exp(-self._logodds))
        prior = prior * np.where(self._in_view(mu[:, :3]), 1.0, c.unseen_detection_prob)
        prior = prior / max(prior.sum(), 1e-300)
        logr[:, 1:] = (np.log(np.maximum(prior, 1e-300))[None, :] + np.log1p(-p0)[:, None]
                       + ll)
        alpha = np.exp(logr - _logsumexp(logr, axis=1)[:, None])
        # precedence: what a visually supported track explains is not shared with tracks
        # without visual support (audio-only tracks have huge covariances, see module doc)
        uns = (self.time - self._last_visual) > c.visual_timeout
        if np.any(uns) and not np.all(uns):
            claimed = np.max(alpha[:, 1:][:, ~uns], axis=1) >= 0.5
            if np.any(claimed):
                a = alpha[claimed]
                a[:, 1:][:, uns] = 0.0
                alpha[claimed] = a / a.sum(axis=1, keepdims=True)
        return alpha

    def _ez_audio(self, g, wn, mu, cov, G=None, J=None) -> np.ndarray:
        c = self.config
        k = len(self._ids)
        if G is None:
            G, J = self.itd_model(mu[:, :3])
        jpj = np.einsum("ki,kij,kj->k", J, cov[:, :3, :3], J)  # (K,) s^2
        var_obs = c.itd_sigma ** 2 / wn  # (F,)
        r = g[:, None] - G[None, :]
        if c.association == "predictive":
            var = var_obs[:, None] + jpj[None, :]
            ll = -0.5 * (r * r / var + np.log(var) + _LOG2PI)
        else:
            var = var_obs[:, None]
            ll = -0.5 * (r * r / var + np.log(var) + _LOG2PI) - 0.5 * jpj[None, :] / var
        ll = np.where(r * r / var <= c.audio_gate, ll, -np.inf)
        rho = c.itd_reflection_prob
        if rho > 0.0:
            # mixture: direct path N(G, var) and reflections uniform between 0 and G (the
            # uniform convolved with the same noise)
            lo = np.minimum(G, 0.0)[None, :]
            width = np.maximum(np.abs(G), 1e-7)[None, :]
            s = np.sqrt(var)
            u = (ndtr((g[:, None] - lo) / s) - ndtr((g[:, None] - lo - width) / s)) / width
            with np.errstate(divide="ignore"):
                ll = np.logaddexp(math.log1p(-rho) + ll, math.log(rho) + np.log(u))
        prior = (1.0 - c.audio_speaking_prior) + c.audio_speaking_prior * self._speak
        prior = (1.0 - c.audio_clutter_prob) * prior / prior.sum()
        logr = np.empty((len(g), k + 1))
        logr[:, 0] = math.log(c.audio_clutter_prob) + math.log(c.audio_clutter_density)
        logr[:, 1:] = np.log(prior)[None, :] + ll
        return np.exp(logr - _logsumexp(logr, axis=1)[:, None])

    @staticmethod
    def _es(mu0, cov0, H, Om, b):
        """E-S: Kalman-like update of every track from its aggregated pseudo-observation.

        With A = H Gamma H^T, G = (Omega A + I)^-1:
        mu = mu0 + Gamma H^T G (b - Omega H mu0),  Gamma' = Gamma - Gamma H^T G Omega H Gamma.
        (Equal to the information form in docs/algorithms.md; needs no inverse of
        Omega, so a track with no assigned mass is left unchanged.)
        """
        d = H.shape[1]
        PHt = cov0 @ np.swapaxes(H, 1, 2)  # (K, 6, d)
        A = H @ PHt  # (K, d, d)
        Gm = np.linalg.inv(Om @ A + np.eye(d))
        innov = b - np.einsum("kij,kj->ki", Om, np.einsum("kij,kj->ki", H, mu0))
        gain = PHt @ Gm  # (K, 6, d)
        mu = mu0 + np.einsum("kij,kj->ki", gain, innov)
        cov = cov0 - gain @ Om @ np.swapaxes(PHt, 1, 2)
        return mu, _symmetrise(cov)

    # ----------------------------------------------------------- bookkeeping
    def _visual_bookkeeping(self, t, dt_img, alpha, w) -> None:
        """Existence, confirmation, visual support (and the process-noise M-step) after
        the E-S step of an image frame."""
        c = self.config
        k = len(self._ids)
        if k == 0:
            return
        wn = np.minimum(w / c.visual_full_weight, 1.0)
        support = np.minimum(np.sum(alpha[:, 1:] * wn[:, None], axis=0), 1.0) if len(w) \
            else np.zeros(k)
        in_view = self._in_view(self._mu[:, :3])
        delta = np.where(in_view, support * c.existence_hit
                         - (1.0 - support) * c.existence_decay * dt_img,
                         support * c.existence_hit)
        self._logodds = np.minimum(self._logodds + delta, self._logit_max)
        self._confirmed |= self._logodds >= self._logit_confirm
        seen = support >= 0.5
        if c.estimate_process_noise:
            self._m_step(t, seen)
        self._last_visual = np.where(seen, t, self._last_visual)
        self._vis_mu = np.where(seen[:, None], self._mu, self._vis_mu)
        self._vis_cov = np.where(seen[:, None, None], self._cov, self._vis_cov)
        self._vis_time = np.where(seen, t, self._vis_time)
        self._set_reference(np.flatnonzero(seen))

    def _m_step(self, t, seen) -> None:
        """Process-noise level per track from the expected squared transition residual.

        Over the interval since the track's previous supported image frame (dt), with the
        joint posterior of (s_prev, s_now) given the data up to now (lag-one RTS smoothing):
        J = Gamma_prev D^T (Gamma^-)^-1, s_prev ~ N(m_s, P_s) with
        m_s = mu_prev + J (mu - D mu_prev), P_s = Gamma_prev + J (Gamma - Gamma^-) J^T,
        Cov(s_now, s_prev) = C = Gamma J^T, and
        E = Gamma - C D^T - D C^T + D P_s D^T + (mu - D m_s)(mu - D m_s)^T.
        The scale maximising E[log N(s_now; D s_prev, scale Q1)] is tr(Q1^-1 E) / 6; it is
        averaged with forgetting ``process_noise_forgetting``.  The intermediate audio updates
        are ignored (they hardly move a visually supported track).
        """
        c = self.config
        lo, hi = c.process_noise_scale_range
        for k in np.flatnonzero(seen & np.isfinite(self._vis_time)):
            dt = t - self._vis_time[k]
            if not 1e-3 < dt <= 1.0:
                continue
            D, Q1 = constant_velocity_model(dt, np.zeros(1), self._q_axes[None, :])
            D, Q1 = D[0], Q1[0]
            mp, Pp = self._vis_mu[k], self._vis_cov[k]
            Pm = D @ Pp @ D.T + self._qscale[k] * Q1
            J = np.linalg.solve(Pm, D @ Pp).T  # Pp D^T Pm^-1 (Pm, Pp symmetric)
            m_s = mp + J @ (self._mu[k] - D @ mp)
            P_s = Pp + J @ (self._cov[k] - Pm) @ J.T
            C = self._cov[k] @ J.T
            e = self._mu[k] - D @ m_s
            E = self._cov[k] - C @ D.T - D @ C.T + D @ P_s @ D.T + np.outer(e, e)
            est = float(np.trace(np.linalg.solve(Q1, E))) / 6.0
            rho = c.process_noise_forgetting
            self._qscale[k] = float(np.clip(rho * self._qscale[k] + (1 - rho) * est, lo, hi))

    def _m_step_shrink(self, g, wn, beta) -> None:
        """Audio-model M-step: MAP ITD shrink b from g ~ N((1 - b d) G(p), itd_sigma^2 / w~),
        weights beta, over the tracks that have visual support and speak (P >= 0.5: keeps
        out directional noise such as a radio assigned to a silent person), with the
        prior N(itd_shrink_per_m, itd_shrink_prior_sigma^2) and exponential memory."""
        c = self.config
        vis = ((self.time - self._last_visual) <= c.visual_timeout) & (self._speak >= 0.5)
        sel = (beta > 0.0) & (wn[:, None] > 0.0) & vis[None, :]
        decay = math.exp(-1.0 / c.itd_shrink_memory)
        self._shrink_num *= decay
        self._shrink_den *= decay
        if np.any(sel):
            f, k = np.nonzero(sel)
            p = self._mu[k, :3]
            G = self.geometry.itd(p)
            dG = np.linalg.norm(p - self.geometry.centre, axis=1) * G
            wt = beta[f, k] * wn[f] / c.itd_sigma ** 2
            self._shrink_num += float(np.sum(wt * (G - g[f]) * dG))
            self._shrink_den += float(np.sum(wt * dG * dG))
        prior = 1.0 / c.itd_shrink_prior_sigma ** 2
        b = (self._shrink_num + prior * c.itd_shrink_per_m) / (self._shrink_den + prior)
        self._shrink = float(np.clip(b, 0.0, 0.3))

    def _new_track(self, mu, cov, t, existence, visual: bool, speaking: float) -> None:
        self._mu = np.vstack([self._mu, mu[None]])
        self._cov = np.concatenate([self._cov, cov[None]])
        self._ids = np.append(self._ids, self._next_id)
        self._next_id += 1
        lo = min(_logit(existence), self._logit_max)
        self._logodds = np.append(self._logodds, lo)
        self._speak = np.append(self._speak, speaking)
        self._confirmed = np.append(self._confirmed, lo >= self._logit_confirm)
        self._last_visual = np.append(self._last_visual, t if visual else -np.inf)
        self._qscale = np.append(self._qscale, 1.0)
        self._vis_mu = np.vstack([self._vis_mu, mu[None]])
        self._vis_cov = np.concatenate([self._vis_cov, cov[None]])
        self._vis_time = np.append(self._vis_time, t if visual else np.nan)
        self._ref_range = np.append(self._ref_range, 0.0)
        self._ref_perp = np.vstack([self._ref_perp, np.zeros((1, 3))])
        self._set_reference(np.array([len(self._ids) - 1]))

    def _remove(self, keep: np.ndarray) -> None:
        for name in ("_mu", "_cov", "_ids", "_logodds", "_speak", "_confirmed", "_last_visual",
                     "_qscale", "_vis_mu", "_vis_cov", "_vis_time", "_ref_range",
                     "_ref_perp"):
            setattr(self, name, getattr(self, name)[keep])

    def _set_reference(self, idx) -> None:
        """Remember range and around-axis direction of tracks ``idx`` (for anchoring)."""
        g = self.geometry
        for k in idx:
            d = self._mu[k, :3] - g.centre
            perp = d - (d @ g.axis) * g.axis
            n = np.linalg.norm(perp)
            self._ref_range[k] = max(np.linalg.norm(d), 0.2)
            self._ref_perp[k] = perp / n if n > 1e-9 else g.forward

    def _anchor(self) -> None:
        """Put tracks without visual support back on their reference range and direction
        around the microphone axis, keeping their angle to the axis (the ITD cone)."""
        if not len(self._ids):
            return
        uns = np.flatnonzero(self.time - self._last_visual > self.config.visual_timeout)
        g = self.geometry
        for k in uns:
            d = self._mu[k, :3] - g.centre
            r = np.linalg.norm(d)
            cos = float(np.clip(d @ g.axis / r, -1.0, 1.0)) if r > 1e-9 else 0.0
            sin = math.sqrt(max(1.0 - cos * cos, 0.0))
            self._mu[k, :3] = g.centre + self._ref_range[k] * (
                cos * g.axis + sin * self._ref_perp[k])

    def _deaths(self) -> None:
        dead = self._logodds < self._logit_death
        if np.any(dead):
            self._ended.extend(int(i) for i in self._ids[dead & self._confirmed])
            self.stats["deaths"] += int(dead.sum())
            self._remove(~dead)

    def _merge(self, alpha) -> None:
        """Merge duplicates: pairs closer than merge_distance that share their observations
        (or have none), or are closer than half of it (two head centres cannot be), for
        merge_time.  Two people passing close by each claim their own observation, which
        restarts the pair's clock."""
        c = self.config
        k = len(self._ids)
        if k < 2 or c.merge_distance <= 0:
            self._close_since = {}
            return
        p = self._mu[:, :3]
        d = np.linalg.norm(p[:, None] - p[None], axis=2)
        close = np.argwhere(np.triu(d < c.merge_distance, 1))
        a = np.zeros((len(alpha), k))  # tracks born this frame have no assignments yet
        a[:, :alpha.shape[1] - 1] = alpha[:, 1:]
        since = {}
        due = []
        for i, j in close:
            key = (int(self._ids[i]), int(self._ids[j]))
            own_i, own_j = np.sum(a[:, i]), np.sum(a[:, j])
            shared = float(np.sum(np.minimum(a[:, i], a[:, j])))
            distinct = (d[i, j] >= 0.5 * c.merge_distance and min(own_i, own_j) >= 0.5
                        and shared < 0.25 * min(own_i, own_j))
            if distinct:
                continue
            since[key] = self._close_since.get(key, self.time)
            if self.time - since[key] >= c.merge_time:
                due.append((i, j))
        self._close_since = since
        if not due:
            return
        keep = np.ones(k, dtype=bool)
        for i, j in due:
            if not (keep[i] and keep[j]):
                continue
            # older identity (smaller id, arrays are in birth order) survives ...
            old, new = (i, j) if self._ids[i] < self._ids[j] else (j, i)
            if self._confirmed[new] and not self._confirmed[old]:
                old, new = new, old
            # ... with the more precise state
            if np.trace(self._cov[new, :3, :3]) < np.trace(self._cov[old, :3, :3]):
                self._mu[old] = self._mu[new]
                self._cov[old] = self._cov[new]
            self._logodds[old] = max(self._logodds[old], self._logodds[new])
            self._speak[old] = max(self._speak[old], self._speak[new])
            self._last_visual[old] = max(self._last_visual[old], self._last_visual[new])
            self._confirmed[old] |= self._confirmed[new]
            keep[new] = False
            if self._confirmed[new]:
                self._ended.append(int(self._ids[new]))
            self.stats["merges"] += 1
        self._remove(keep)

    # ----------------------------------------------------------------- births
    def _births(self, t, xyz, cov, w, alpha) -> None:
        c = self.config
        cand = (alpha[:, 0] >= c.birth_unassigned) & (w >= c.birth_min_weight) if len(w) \
            else np.zeros(0, dtype=bool)
        if np.any(cand) and len(self._ids) and c.merge_distance > 0:
            # a second detection of a tracked head (two head centres cannot be this close)
            near = np.linalg.norm(xyz[:, None] - self._mu[None, :, :3], axis=2).min(axis=1)
            cand &= near >= 0.5 * c.merge_distance
        idx = np.flatnonzero(cand)
        R = cov[idx] / w[idx, None, None]
        v = xyz[idx]
        log_u = math.log(c.visual_clutter_density)
        chains = self._chains
        for ch in chains:  # chains are predicted only here, at image frames
            if t > ch.stamp:
                D, Q = constant_velocity_model(t - ch.stamp, np.zeros(1), self._q_axes[None, :])
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
                ll[a] = _gauss_logpdf(r, S)
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
                    ch.cov = _symmetrise(ch.cov - K @ ch.cov[:3, :])
                    ch.llr += ll[a, m] - log_u
                    ch.n_obs += 1
                    ch.misses = 0
                    used[m] = True
                    extended[a] = True
        survivors = []
        for a, ch in enumerate(chains):
            if not extended[a]:
                ch.misses += 1
                if ch.misses > c.birth_max_misses:
                    continue
            if ch.n_obs >= c.birth_window and ch.llr >= c.birth_llr_threshold:
                if len(self._ids) and np.min(np.linalg.norm(
                        self._mu[:, :3] - ch.mu[:3], axis=1)) < 0.5 * c.merge_distance:
                    continue  # same head as a track (possibly born this frame)
                self._new_track(ch.mu.copy(), ch.cov.copy(), t, c.birth_existence, True,
                                c.speaking_entry)
                self.stats["births_visual"] += 1
                continue
            survivors.append(ch)
        for m in np.flatnonzero(~used):
            mu = np.r_[v[m], 0.0, 0.0, 0.0]
            P = np.zeros((6, 6))
            P[:3, :3] = R[m]
            P[3:, 3:] = c.birth_velocity_sigma ** 2 * np.eye(3)
            ch = _Chain(mu, P, t)
            if c.birth_window <= 1:
                self._new_track(mu, P, t, c.birth_existence, True, c.speaking_entry)
                self.stats["births_visual"] += 1
            else:
                survivors.append(ch)
        self._chains = survivors

    def _audio_births(self, t, g, wn, beta0) -> None:
        """Audio-only birth from the unexplained active frames of the last
        audio_birth_window s (module docstring); the new track starts speaking (P = 0.9,
        it was born from speech)."""
        c = self.config
        buf = self._audio_buffer
        for gi, wi, bi in zip(g, wn, beta0):
            mass = wi * bi
            if wi >= _BIRTH_MIN_WEIGHT and mass > _BIRTH_MIN_MASS:
                buf.append((t, gi, mass))
        while buf and buf[0][0] < t - c.audio_birth_window:
            buf.popleft()
        if not buf:
            return
        arr = np.array(buf)
        if arr[:, 2].sum() < c.audio_birth_mass:
            return
        order = np.argsort(arr[:, 1])
        cum = np.cumsum(arr[order, 2])
        med = arr[order[np.searchsorted(cum, 0.5 * cum[-1])], 1]
        inl = np.abs(arr[:, 1] - med) <= c.audio_birth_spread * c.itd_sigma
        mass = arr[inl, 2].sum()
        if mass < c.audio_birth_mass:
            return
        itd = float(np.sum(arr[inl, 1] * arr[inl, 2]) / mass)
        d0 = c.audio_birth_depth
        g = self.geometry
        point = g.point_from_itd(itd / max(1.0 - self._shrink * d0, 0.2), d0)[0]
        # turn about the microphone axis (the exact ITD is invariant) to the birth height
        rel = point - g.centre
        along = (rel @ g.axis) * g.axis
        r_perp = float(np.linalg.norm(rel - along))
        down = np.array([0.0, 1.0, 0.0]) - g.axis[1] * g.axis
        down = down - (down @ g.forward) * g.forward
        if r_perp > 1e-6 and np.linalg.norm(down) > 1e-6:
            down /= np.linalg.norm(down)
            s_phi = float(np.clip((c.audio_birth_height - g.centre @ down) / r_perp, -0.9, 0.9))
            point = g.centre + along + r_perp * (math.sqrt(1.0 - s_phi ** 2) * g.forward
                                                 + s_phi * down)
        if c.audio_birth_outside_view_only and self._in_view(point[None])[0]:
            return
        J = self.itd_model(point[None])[1][0]
        jn = float(np.linalg.norm(J))
        jhat = J / jn
        s2 = c.audio_birth_sigma ** 2
        var_along = (c.itd_sigma / jn) ** 2 / max(mass, 1.0)  # ITD precision of the mass
        P = np.zeros((6, 6))
        P[:3, :3] = s2 * np.eye(3) - (s2 - min(var_along, s2)) * np.outer(jhat, jhat)
        P[3:, 3:] = c.birth_velocity_sigma ** 2 * np.eye(3)
        self._new_track(np.r_[point, 0.0, 0.0, 0.0], P, t, c.audio_birth_existence, False,
                        _AUDIO_BIRTH_SPEAKING)
        self.stats["births_audio"] += 1
        self._audio_buffer = deque(row for row, keep in zip(buf, ~inl) if keep)
