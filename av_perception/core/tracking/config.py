"""Parameters of the multi-speaker tracker (``tracker`` section) and the visible volume."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config import ConfigError, StageConfig, StereoCameraConfig, param

__all__ = ["TrackerConfig", "frustum_volume"]


def frustum_volume(camera: StereoCameraConfig, min_depth: float, max_depth: float) -> float:
    """Volume (m^3) of the camera's view between two depths (m), for the clutter density."""
    return (camera.width / camera.fx) * (camera.height / camera.fy) * (
        max_depth ** 3 - min_depth ** 3) / 3.0


@dataclass(frozen=True)
class TrackerConfig(StageConfig):
    """Parameters of the variational Bayesian multi-speaker tracker."""

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
        "scale the ITD precision and the speaking evidence down (also the largest activity "
        "that counts as fully active for speaking_idle, see speaking_activity_ratio).",
        low=1e-3, high=1.0)
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
        1e-4, "Stop iterating when no track position moves more than this (m) and the "
        "speaking filter's log evidence improves by less than vb_bound_tolerance.",
        low=0.0, high=1.0)
    vb_bound_tolerance: float = param(
        1e-3, "Stop iterating when the speaking filter's log evidence (the bound of the "
        "speaking E-step, nats over the update's audio frames) improves by less than this "
        "(and no position moves more than vb_tolerance).", low=0.0, high=100.0)
    audio_batch_span: float = param(
        0.1, "Tracker.step applies the audio frames that lie within this many seconds of "
        "each other in one variational update (the speaking HMM still steps per frame); "
        "0 = one update per frame.  Cuts the tracker's cost per image roughly by the number "
        "of frames merged.  With a moving head (tracking.fixed_frame) each frame of a batch "
        "keeps the microphones' geometry at its own stamp.", low=0.0, high=1.0)
    itd_pose_delay: float = param(
        0.1, "With a moving head (tracking.fixed_frame): an audio frame's ITD is modelled "
        "with the microphones where they were this many seconds before the frame's stamp "
        "(the front-end's precedence memory averages the direct-path evidence of past "
        "frames, so its ITDs lag a turning head).  0 = the frame's own stamp.",
        low=0.0, high=0.5)
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
    birth_unseen_hold: float = param(
        4.0, "When tracking in a fixed frame (a pose source: tracking.fixed_frame): a birth "
        "chain whose position the turning head has left out of the camera view is held "
        "where it was (no miss counted, not predicted) for up to this many seconds since "
        "its last observation, and continues when the view comes back: a person the head "
        "turned away from before their track was born.  0 = off (dropped after "
        "birth_max_misses, as in the camera frame).", low=0.0, high=60.0)
    birth_unassigned: float = param(
        0.5, "A visual observation feeds the births when its clutter responsibility is at "
        "least this.", low=0.0, high=1.0)
    birth_min_weight: float = param(
        0.3, "Smallest weight of a visual observation that may feed a birth.",
        low=0.0, high=1.0)
    birth_velocity_sigma: float = param(
        0.5, "Prior standard deviation (m/s) of the velocity of a new chain or track.",
        low=0.01, high=10.0)
    reentry_sigma: float = param(
        0.25, "A visual birth within the visual_gate (Mahalanobis; both covariances plus "
        "this many metres squared) of a track without visual support (a person heard only, "
        "or whose place is back in view; not one seen before and predicted out of view) "
        "continues that track instead of starting a new identity: a person coming back "
        "into view keeps their id.  0: the covariances alone; negative: off.",
        low=-1.0, high=5.0)
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
    fixed_unseen_existence_decay: float = param(
        1.0, "Existence log-odds lost per second while out of the camera view when tracking "
        "in a fixed frame (a pose source: tracking.fixed_frame): a person the turning head "
        "no longer sees is most likely still there, and the view comes back (replaces "
        "unseen_existence_decay).", low=0.0, high=1000.0)
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
    speaking_silent_rate: float = param(
        0.01, "Rate at which a silent track emits ITDs, relative to a talker's (eps of the "
        "speaking emission: 0 = a silent person is never heard; small keeps the likelihood "
        "ratio of one frame bounded by log(1 / eps)).", low=1e-4, high=0.9)
    speaking_share_penalty: float = param(
        1.0, "Weight of the speaking emission's normalisation: what an ITD that another "
        "track explains costs a track for speaking (1: the mixture model; smaller: the "
        "front-end reports the louder talker's ITD, so a second talker loses frames it "
        "would win in the mixture).", low=0.0, high=2.0)
    speaking_idle: float = param(
        0.6, "Log-likelihood ratio against speaking of a fully inactive audio frame "
        "(activity 0; scaled by 1 - min(activity / full, 1), full from "
        "speaking_activity_ratio; the front-end's "
        "activity alone, not its ITD's reliability; frames without an activity: the "
        "weight): a talker's frames are mostly active.",
        low=0.0, high=100.0)
    speaking_itd_gain: float = param(
        2.0, "Speaking emission only: an ITD's normalised weight w~ = min(w / "
        "audio_full_weight, 1) is taken as min(speaking_itd_gain x w~, 1) (the ITD mixture's "
        "evidence per frame; positions and assignments keep w~).", low=0.0, high=100.0)
    speaking_activity_ratio: float = param(
        0.25, "Noise-floor aware inactivity: an audio frame counts as fully active for the "
        "speaking model (speaking_idle, the lip cue's share for speaking) from this "
        "fraction of the running mean activity of the frames above "
        "speaking_activity_floor, at most audio_full_weight (the front-end's activity is "
        "the frame's SNR over the noise floor: speech in noise reads a lower activity); 0: "
        "audio_full_weight always.", low=0.0, high=1.0)
    speaking_activity_floor: float = param(
        0.1, "Activity above which a frame counts in the running activity level "
        "(speaking_activity_ratio): above the pauses' activity.", low=0.0, high=1.0)
    speaking_activity_memory: float = param(
        300.0, "Memory (audio frames) of the running activity level "
        "(speaking_activity_ratio).", low=1.0, high=1e6)
    tf_presence_gain: float = param(
        2.0, "Time-frequency speech presence: weight of the evidence from each audio frame's "
        "ITD profile (audio.itd_profile: the share of its bins pointing at each ITD), a "
        "mixture of the tracks at their predicted ITDs and clutter like the ITD emission, so "
        "that two people talking at once both get speaking evidence (0 disables; frames "
        "without a profile have none).", low=0.0, high=10.0)
    tf_presence_sigma: float = param(
        1.2e-4, "Time-frequency speech presence: spread (s) of a talker's mass in the ITD "
        "profile around its predicted ITD (the bins' phase spread; the track's ITD "
        "uncertainty is added).", low=1e-6, high=1e-3)
    lip_gain: float = param(
        0.3, "Lip cue: log-likelihood ratio (speaking/silent) added per audio frame per unit "
        "of a track's visual speaking evidence (its observations' lip_llr weighted by their "
        "responsibilities; evidence for speaking counts in proportion to the frame's audio "
        "activity, evidence against fully; 0 disables).", low=0.0, high=10.0)
    lip_speed_scale: float = param(
        0.15, "Lip cue: a track's visual speaking evidence is divided by 1 + (v / this)^2, v "
        "its horizontal speed (m/s; a walking face's mouth opening is read less reliably); "
        "0 = no discount.", low=0.0, high=10.0)
    lip_timeout: float = param(
        0.4, "Lip cue: a track's visual speaking evidence is dropped (unknown) when no image "
        "has brought known lip evidence for it for longer than this (s; the lips.window).",
        low=0.0, high=10.0)

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
