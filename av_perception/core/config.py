"""Stage configuration: one frozen dataclass per stage, validated on creation.

Every field is declared with :func:`param`, which records a description and the
allowed range (or set of choices).  The same metadata drives three things:

* validation in ``__post_init__`` (a bad value raises :class:`ConfigError`
  naming the parameter and the allowed range),
* the ROS parameter declarations of the nodes (``<section>.<field>`` names,
  descriptions and ranges),
* offline loading from the ROS-params YAML files in ``config/``.

This module is pure Python: it reads no files (see ``av_perception.io.params``).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "ConfigError",
    "ParameterSpec",
    "StageConfig",
    "param",
    "MicArrayConfig",
    "AudioFrontEndConfig",
    "StereoCameraConfig",
]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of its allowed range."""


@dataclass(frozen=True)
class ParameterSpec:
    """Description of one tunable, as declared to ROS and checked offline."""

    name: str  # dotted ROS name, e.g. "audio.frame_length"
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    length: int | None = None  # for fixed-length float arrays


def param(default, description, *, low=None, high=None, choices=None, length=None):
    """Declare a configuration field with its description and allowed range.

    ``low``/``high`` are inclusive bounds for numbers (and for each element of a
    float tuple); ``choices`` lists the allowed strings; ``length`` fixes the
    length of a tuple.
    """
    return field(
        default=default,
        metadata={
            "description": description,
            "low": low,
            "high": high,
            "choices": tuple(choices) if choices is not None else None,
            "length": length,
        },
    )


def _range_text(meta) -> str:
    if meta["choices"] is not None:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    lo, hi = meta["low"], meta["high"]
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    if lo is not None:
        return f">= {lo}"
    if hi is not None:
        return f"<= {hi}"
    return "any value of the default's type"


def _type_name(value) -> str:
    """How a params file would call the type of a value."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


class StageConfig:
    """Mixin for the frozen stage dataclasses (validation and conversions)."""

    SECTION: ClassVar[str] = ""
    #: section -> the classes declaring parameters in it, in definition order.  A section
    #: may be shared by classes of several layers (``tracking``: the pipeline's feeding,
    #: the outputs' labels, the node's publishers), each declaring its own fields.
    REGISTRY: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        section = cls.__dict__.get("SECTION")
        if section:
            others = [c for c in StageConfig.REGISTRY.get(section, ())
                      if c.__qualname__ != cls.__qualname__ or c.__module__ != cls.__module__]
            StageConfig.REGISTRY[section] = (*others, cls)

    @classmethod
    def field_names(cls) -> set:
        return {f.name for f in dataclasses.fields(cls)}

    def __post_init__(self):
        for f in dataclasses.fields(self):
            self._check_field(f, getattr(self, f.name))
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; override in subclasses."""

    # ------------------------------------------------------------------ checks
    def _fail(self, name: str, value, allowed: str):
        raise ConfigError(
            f"parameter '{self.SECTION}.{name}' = {value!r} is not allowed: must be {allowed}"
        )

    def _check_field(self, f, value):
        meta = f.metadata
        default = f.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                self._fail(f.name, value, f"a boolean (true/false) (got {_type_name(value)})")
            return
        if isinstance(default, str):
            if not isinstance(value, str):
                self._fail(f.name, value, f"a string (got {_type_name(value)})")
            if meta.get("choices") and value not in meta["choices"]:
                self._fail(f.name, value, _range_text(meta))
            return
        if isinstance(default, tuple):
            if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
                n = f"{meta['length']} " if meta.get("length") is not None else ""
                self._fail(f.name, value, f"a list of {n}numbers, e.g. {list(default)} "
                                          f"(got {_type_name(value)})")
            if not isinstance(value, tuple):
                object.__setattr__(self, f.name, tuple(value))
                value = getattr(self, f.name)
            if meta.get("length") is not None and len(value) != meta["length"]:
                self._fail(f.name, value, f"a list of {meta['length']} numbers")
            for v in value:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    self._fail(f.name, value, "a list of finite numbers")
                self._check_number(f, v, value)
            object.__setattr__(self, f.name, tuple(float(v) for v in value))
            return
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    object.__setattr__(self, f.name, int(value))
                    value = int(value)
                else:
                    self._fail(f.name, value, "an integer " + _range_text(meta)
                               + f" (got {_type_name(value)})")
            self._check_number(f, value, value)
            return
        if isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self._fail(f.name, value, "a number " + _range_text(meta)
                           + f" (got {_type_name(value)})")
            value = float(value)
            object.__setattr__(self, f.name, value)
            if not math.isfinite(value):
                self._fail(f.name, value, "a finite number " + _range_text(meta))
            self._check_number(f, value, value)

    def _check_number(self, f, v, shown):
        meta = f.metadata
        lo, hi = meta.get("low"), meta.get("high")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self._fail(f.name, shown, _range_text(meta))

    # ------------------------------------------------------------ conversions
    @classmethod
    def parameter_specs(cls) -> list[ParameterSpec]:
        """The ROS parameters of this stage (``<SECTION>.<field>``)."""
        specs = []
        for f in dataclasses.fields(cls):
            m = f.metadata
            specs.append(
                ParameterSpec(
                    name=f"{cls.SECTION}.{f.name}",
                    default=f.default,
                    description=m.get("description", ""),
                    low=m.get("low"),
                    high=m.get("high"),
                    choices=m.get("choices"),
                    length=m.get("length"),
                )
            )
        return specs

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None):
        """Build from a mapping of field name -> value; unknown names are refused."""
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(cls.SECTION + '.' + u for u in unknown)}; "
                f"known in section '{cls.SECTION}': {', '.join(sorted(names))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------
# Audio stages
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class MicArrayConfig(StageConfig):
    """Positions of the two microphones in the left camera optical frame (m)."""

    SECTION: ClassVar[str] = "mics"

    left: tuple = param(
        (-0.075, 0.0, 0.0),
        "Left microphone position [x, y, z] in metres, left camera optical frame "
        "(x right, y down, z forward).",
        low=-5.0, high=5.0, length=3,
    )
    right: tuple = param(
        (0.075, 0.0, 0.0),
        "Right microphone position [x, y, z] in metres, left camera optical frame.",
        low=-5.0, high=5.0, length=3,
    )
    speed_of_sound: float = param(343.0, "Speed of sound in m/s.", low=300.0, high=380.0)
    head_model: str = param(
        "free_field",
        "Binaural model predicting ITD/ILD from a direction: 'free_field' (two mics in "
        "the air, exact near-field ITD), 'spherical_head' (rigid sphere: Woodworth ITD, "
        "Brown-Duda ILD), or 'measured' (ITD/ILD table from HRIRs, see measured_table).",
        choices=("free_field", "spherical_head", "measured"),
    )
    head_radius: float = param(
        0.0875, "Radius (m) of the spherical head model.", low=0.02, high=0.5,
    )
    ear_azimuth: float = param(
        90.0, "Ear azimuth (deg from the front, towards each side) on the spherical head; "
        "90 = ears on the interaural axis through the head centre.", low=45.0, high=135.0,
    )
    ear_elevation: float = param(
        0.0, "Ear elevation (deg, positive up) on the spherical head.", low=-45.0, high=45.0,
    )
    measured_table: str = param(
        "kemar",
        "Measured head table for head_model 'measured': 'kemar' (MIT KEMAR HRIRs shipped by "
        "the slab package) or the path of a .npz table (av_perception.io.heads.save_table).",
    )
    itd_scale: float = param(
        1.0, "Scale applied to the measured table's ITD (the calibration's correction for "
        "a head larger or smaller than the measured one).", low=0.3, high=3.0,
    )
    calibration_file: str = param(
        "", "JSON file of the head self-calibration (head_calibration.enabled): read at "
        "start when it exists (its fields replace head_model, head_radius, ear_azimuth, "
        "ear_elevation, itd_scale), rewritten after each accepted fit.  Empty = none.",
    )

    def validate(self):
        d = math.dist(self.left, self.right)
        if d < 0.01:
            raise ConfigError(
                f"parameters 'mics.left' and 'mics.right' are {d:.4f} m apart: "
                "the microphones must be at least 0.01 m apart"
            )

    @property
    def spacing(self) -> float:
        """Distance between the microphones in metres."""
        return math.dist(self.left, self.right)

    @property
    def max_itd(self) -> float:
        """Largest physically possible free-field ITD in seconds."""
        return self.spacing / self.speed_of_sound


@dataclass(frozen=True)
class AudioFrontEndConfig(StageConfig):
    """Binaural feature extraction (docs/algorithms.md, "Audio front-end")."""

    SECTION: ClassVar[str] = "audio"

    processing_rate: int = param(
        16000, "Processing sample rate in Hz; input at other rates is resampled.",
        low=8000, high=96000,
    )
    frame_length: int = param(
        512, "Frame length in samples at the processing rate (Hann window).", low=64, high=8192
    )
    hop_length: int = param(
        256, "Hop between frames in samples at the processing rate.", low=16, high=8192
    )
    min_frequency: float = param(
        150.0, "Lowest frequency (Hz) used for ITD and ILD.", low=0.0, high=48000.0
    )
    max_frequency: float = param(
        7500.0, "Highest frequency (Hz) used for ITD and ILD.", low=100.0, high=48000.0
    )
    itd_margin: float = param(
        0.1, "Relative margin added to the largest physical ITD (mic spacing / c) "
        "when searching the GCC-PHAT peak.", low=0.0, high=2.0,
    )
    itd_scan_step: float = param(
        0.5, "Step of the coarse GCC-PHAT lag scan in samples before Newton refinement.",
        low=0.05, high=1.0,
    )
    newton_iterations: int = param(
        4, "Newton iterations refining the continuous GCC-PHAT peak (0 = coarse scan only).",
        low=0, high=20,
    )
    noise_rise_db_per_s: float = param(
        3.0, "How fast the adaptive noise floor may rise, in dB per second.", low=0.1, high=60.0
    )
    psd_smoothing: float = param(
        0.7, "Recursive smoothing factor of the power spectrum used by the noise floor.",
        low=0.0, high=0.99,
    )
    bin_snr_threshold_db: float = param(
        6.0, "Bins whose power is less than this many dB above the noise floor are masked "
        "out of GCC-PHAT and ILD.", low=-20.0, high=40.0,
    )
    bin_snr_weight_exponent: float = param(
        0.0, "Bins that pass the noise mask are weighted by their SNR over the mask "
        "threshold to the power -this (the weak bins count more): the mask keeps the bins "
        "where the room's reflections add to the direct path, whose phase reads their "
        "shrunk ITD, and drops those where they cancel; 0 = off (the default: measured on "
        "tuning rooms only, not yet with the tracker).", low=0.0, high=4.0,
    )
    itd_snr_weight_exponent: float = param(
        0.0, "The same SNR weight as bin_snr_weight_exponent, applied to the ITD's "
        "objective only (a frame's own peak and the precedence memory's phasors), not to "
        "the direct-path weight or the precedence gate; 0 = off (the default: it reads "
        "lateral recorded talkers in long reverberation worse, BENCHMARKS.md).",
        low=0.0, high=4.0,
    )
    activity_snr_db: float = param(
        9.0, "Frame SNR (dB above the noise floor) at which the activity weight is 0.5.",
        low=-10.0, high=40.0,
    )
    activity_slope_db: float = param(
        2.0, "Width (dB) of the logistic activity curve around activity_snr_db.",
        low=0.1, high=20.0,
    )
    direct_path_weighting: str = param(
        "cdr+onset",
        "Direct-path dominance weighting of bins: 'none' (plain GCC-PHAT), 'coherence' "
        "(inter-channel coherence), 'onset' (energy onsets), 'coherence+onset', 'cdr' "
        "(direct-to-total ratio from the coherent-to-diffuse ratio, which knows that a "
        "diffuse field is coherent at low frequencies), or 'cdr+onset'.",
        choices=("none", "coherence", "onset", "coherence+onset", "cdr", "cdr+onset"),
    )
    coherence_smoothing: float = param(
        0.6, "Recursive smoothing factor of the cross- and auto-spectra for the coherence.",
        low=0.0, high=0.99,
    )
    coherence_exponent: float = param(
        4.0, "Bin weight = coherence ** exponent when coherence weighting is on.",
        low=0.0, high=32.0,
    )
    cdr_exponent: float = param(
        2.0, "Bin weight = (CDR / (1 + CDR)) ** exponent when CDR weighting is on.",
        low=0.0, high=32.0,
    )
    precedence_time: float = param(
        1.0, "Time constant (s) of the precedence memory: a per-bin memory of the weighted "
        "cross-spectrum phases, where a bin's memory is replaced in proportion to the frame's "
        "direct-path weight of that bin and otherwise decays with this time constant; with "
        "onset weighting the direction heard at the onsets holds through the reverberation "
        "that follows; 0 = each frame alone.", low=0.0, high=10.0,
    )
    precedence_gate: float = param(
        0.7, "A frame whose own GCC-PHAT peak (direct-path weights without the onset factor, "
        "the peak height in [0, 1]) reaches this, and whose mean weight reaches "
        "precedence_gate_direct, is read alone: it follows a moving talker or a new one at "
        "once; the precedence memory gives the ITD of the other frames; above 1 = every "
        "frame from the memory.", low=0.0, high=2.0,
    )
    precedence_gate_direct: float = param(
        0.3, "Mean direct-path weight (without the onset factor) over the unmasked bins that "
        "a frame needs to be read alone (see precedence_gate).", low=0.0, high=1.0,
    )
    precedence_second_window: float = param(
        0.5, "A second talker heard while the precedence memory holds the first: a frame "
        "not read alone by precedence_gate (but with precedence_gate_direct) whose own "
        "GCC-PHAT peak lies at least precedence_second_separation from the memory's peak is "
        "read alone when an earlier such frame, at most this long before (s), peaked within "
        "precedence_second_agreement of it (reflections scatter, a talker recurs); 0 = off "
        "(off too with precedence_gate above 1: every frame from the memory).",
        low=0.0, high=5.0,
    )
    precedence_second_separation: float = param(
        90.0, "ITD distance (microseconds) from the precedence memory's peak that makes a "
        "frame's own peak a second talker's candidate (see precedence_second_window).",
        low=0.0, high=2000.0,
    )
    precedence_gate_separation: float = param(
        0.0, "A frame that passes precedence_gate but whose own GCC-PHAT peak lies at least "
        "this far (microseconds) from the precedence memory's peak, between it and the front "
        "(a smaller |ITD| on the memory's side, or at most this far past ITD 0), is read "
        "alone only when confirmed as a second talker's frame is "
        "(precedence_second_window, precedence_second_agreement, precedence_second_snr_db), "
        "otherwise from the memory: in a single talker's room such frames read the diffuse "
        "noise and the reflections, which pull towards the front (45: chosen on tuning rooms; "
        "opt-in, as it costs the speaking status and the `hard` preset's tracking, "
        "BENCHMARKS.md); 0 = off, off too with precedence_second_window 0.",
        low=0.0, high=2000.0,
    )
    precedence_second_agreement: float = param(
        40.0, "Largest ITD difference (microseconds) between two second-talker candidates "
        "that confirms the later one (see precedence_second_window).", low=0.0, high=2000.0,
    )
    precedence_second_snr_db: float = param(
        10.0, "Frame SNR (dB over the noise floor) that a confirmed second-talker frame needs "
        "to be read alone (see precedence_second_window): in a noisy frame the frame's own "
        "peak is the noise's as often as a talker's.", low=-100.0, high=100.0,
    )
    precedence_alone_power: float = param(
        4.0, "A frame read alone (see precedence_gate) weights its bins by their direct-path "
        "weight (without the onset factor) to this power: the most direct bins carry its "
        "ITD.", low=1.0, high=16.0,
    )
    precedence_hold_time: float = param(
        0.1, "Time constant (s) of the precedence hold: each bin holds the weight of its "
        "strongest recent direct-path evidence, decaying with this time constant, and its "
        "precedence memory is replaced only by the part of a frame's weight above it: the "
        "first frames of an onset are not overwritten by the later frames of the same onset, "
        "which carry its reflections.  A head turn (/tf) releases it.  Default 0.1 (chosen "
        "on tuning rooms and scenes, with the memory's second talker, "
        "audio.precedence_second_*); 0 = off.", low=0.0, high=10.0,
    )
    onset_db: float = param(
        6.0, "Power increase (dB over the smoothed past) that gives a bin full onset weight.",
        low=0.1, high=40.0,
    )
    onset_band_hz: float = param(
        0.0, "The precedence memory is written with the onset of the band within this "
        "many Hz of each bin (its power increase; wider than the comb that a reflection a "
        "few ms after the direct sound cuts into the spectrum, so that the onset weight "
        "does not favour the bins where the reflection adds to the direct sound); 0 = each "
        "bin's own increase (the default: 500 measured, not kept, BENCHMARKS.md).",
        low=0.0, high=4000.0,
    )
    ild_band_edges: tuple = param(
        (150.0, 500.0, 1000.0, 2000.0, 4000.0, 7500.0),
        "Edges (Hz) of the ILD bands, increasing.", low=0.0, high=48000.0,
    )
    direction_ild_sigma: float = param(
        0.0, "Scale (dB) of the per-band ILD residual (Cauchy) in the joint ITD+ILD "
        "azimuth of a head model with ILD (spherical_head, measured); 0 = azimuth from "
        "the ITD alone.", low=0.0, high=40.0,
    )
    direction_itd_sigma: float = param(
        4.0e-5, "Standard deviation (s) of the ITD residual in the joint ITD+ILD azimuth.",
        low=1e-6, high=1e-3,
    )
    direction_ild_max_frequency: float = param(
        4000.0, "Only ILD bands whose upper edge is at most this (Hz) enter the joint "
        "azimuth.", low=100.0, high=48000.0,
    )

    itd_profile: bool = param(
        False, "Also give each frame's ITD profile: the share of its weighted time-frequency "
        "bins pointing at each of itd_profile_cells ITDs, times its activity (the tracker's "
        "per-track speech presence with several talkers at once: tracker.tf_presence_gain).  "
        "Off by default: measured, it does not raise the speaking F1 (BENCHMARKS.md, "
        "Speaking status).")
    itd_profile_cells: int = param(
        33, "ITDs of the profile, evenly spaced over the largest physical ITD either side.",
        low=2, high=256)
    itd_profile_max_frequency: float = param(
        7500.0, "Highest frequency (Hz) of the bins voting in the ITD profile.",
        low=100.0, high=48000.0)
    itd_profile_phase_std: float = param(
        0.3, "Spread (rad) of a bin's IPD around the phase an ITD predicts, in the ITD "
        "profile.", low=0.05, high=3.0)
    itd_profile_outlier_prior: float = param(
        0.3, "Prior of the outlier class (reverberation, noise: uniform phase) of a bin in "
        "the ITD profile.", low=0.001, high=0.99)

    def validate(self):
        if self.hop_length > self.frame_length:
            raise ConfigError(
                f"parameter 'audio.hop_length' = {self.hop_length} is not allowed: must be "
                f"<= audio.frame_length ({self.frame_length})"
            )
        nyquist = self.processing_rate / 2
        if not self.min_frequency < self.max_frequency <= nyquist:
            raise ConfigError(
                f"parameters 'audio.min_frequency' = {self.min_frequency} and "
                f"'audio.max_frequency' = {self.max_frequency} are not allowed: need "
                f"min_frequency < max_frequency <= processing_rate / 2 ({nyquist})"
            )
        e = self.ild_band_edges
        if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])) or e[-1] > nyquist:
            raise ConfigError(
                f"parameter 'audio.ild_band_edges' = {list(e)} is not allowed: must be at "
                f"least two increasing frequencies <= processing_rate / 2 ({nyquist})"
            )

    @property
    def frame_duration(self) -> float:
        return self.frame_length / self.processing_rate

    @property
    def hop_duration(self) -> float:
        return self.hop_length / self.processing_rate


# ---------------------------------------------------------------------------
# Camera
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StereoCameraConfig(StageConfig):
    """A rectified pinhole stereo pair (used when no CameraInfo is available,
    e.g. OpenCV capture without a calibration file, and by the simulator).
    The left camera's optical frame is the frame of every 3D output."""

    SECTION: ClassVar[str] = "camera"

    width: int = param(640, "Image width in pixels.", low=16, high=8192)
    height: int = param(480, "Image height in pixels.", low=16, high=8192)
    fx: float = param(500.0, "Focal length along x in pixels.", low=1.0, high=1e5)
    fy: float = param(500.0, "Focal length along y in pixels.", low=1.0, high=1e5)
    cx: float = param(319.5, "Principal point x in pixels.", low=-1e4, high=1e4)
    cy: float = param(239.5, "Principal point y in pixels.", low=-1e4, high=1e4)
    baseline: float = param(
        0.12, "Stereo baseline in metres (right camera at +baseline along x).",
        low=0.005, high=2.0)
    fps: float = param(15.0, "Nominal frame rate in frames per second.", low=0.5, high=240.0)
    frame_id: str = param(
        "stereo_left_optical_frame", "frame_id of the left camera optical frame (all 3D outputs).")
