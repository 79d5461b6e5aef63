"""Parameters of the audio-visual clustering stage (ROS section ``fusion``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config import ConfigError, StageConfig, param


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
    itd_model_std: float = param(
        3e-5, "Smallest ITD standard deviation (s) with which a seen cluster's ITDs place it: "
        "the ITD model's error that the shrink does not explain (each talker's own "
        "reflections), which averaging frames does not remove.", low=0.0, high=1e-3)
    itd_shrink_per_m: float = param(
        0.0, "Initial (or fixed) reverberation shrink of the ITD model towards 0 per metre "
        "of source distance: expected ITD = (1 - b d) G(S).", low=0.0, high=0.3)
    estimate_itd_shrink: bool = param(
        True, "Estimate the shrink b across windows from the ITDs of the clusters both seen "
        "and heard (else itd_shrink_per_m is used as it is).")
    itd_shrink_memory: float = param(
        30.0, "Memory (s) of the running shrink estimate.", low=0.1, high=1e5)
    itd_shrink_prior_sigma: float = param(
        0.05, "Standard deviation (1/m) of the Gaussian prior of the shrink around "
        "itd_shrink_per_m (frontal talkers, whose ITD says little about the shrink, leave "
        "it near the prior).", low=1e-4, high=10.0)
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
