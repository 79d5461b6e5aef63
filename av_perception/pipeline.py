"""The processing pipeline shared by the ROS nodes and the offline commands.

Today it holds the audio stage (:class:`AudioPipeline`) and the visual stage
(:class:`VisionPipeline`); the weighted-data EM and the tracker join it as their
issues land, so that a node and an offline command run exactly the same code on
the same inputs.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .core.audio import AudioInputError, BinauralFeatures, BinauralFrontEnd
from .core.config import AudioFrontEndConfig, MicArrayConfig, StereoCameraConfig
from .core.detection import DetectionConfig
from .core.geometry import MicGeometry
from .core.vision import VisionConfig, VisionInputError, VisualFrontEnd

__all__ = ["AudioPipeline", "AudioRunResult", "VisionPipeline", "VisionRunResult"]


@dataclass
class AudioRunResult:
    features: BinauralFeatures
    errors: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


class AudioPipeline:
    """Audio stage: chunks of binaural audio -> per-frame features.

    Bad chunks (wrong channel count, NaN, a sample-rate change) are refused
    with :class:`AudioInputError`; a rate change restarts the stream so that
    processing continues at the new rate.
    """

    def __init__(self, audio: AudioFrontEndConfig | None = None,
                 mics: MicArrayConfig | None = None, use_numba: bool = True):
        self.audio_config = audio or AudioFrontEndConfig()
        self.mics_config = mics or MicArrayConfig()
        self.geometry = MicGeometry.from_config(self.mics_config)
        self.front_end = BinauralFrontEnd(self.audio_config, self.geometry, use_numba=use_numba)
        self.processing_time = 0.0
        self.rejected_chunks = 0
        self.last_error = ""

    def warm_up(self):
        """Compile the numba kernels now, so the first real chunk is not slow."""
        self.front_end.warm_up()

    def process_audio(self, samples, sample_rate: int, stamp: float | None) -> BinauralFeatures:
        """Process one chunk (n, 2); raises AudioInputError for unusable input."""
        fe = self.front_end
        if fe.input_rate is not None and int(sample_rate) != fe.input_rate:
            self.last_error = (f"sample rate changed from {fe.input_rate} Hz to "
                               f"{int(sample_rate)} Hz: stream restarted")
            fe.reset()
        t0 = time.perf_counter()
        try:
            return fe.process(samples, sample_rate, stamp)
        except AudioInputError as exc:
            self.rejected_chunks += 1
            self.last_error = str(exc)
            raise
        finally:
            self.processing_time += time.perf_counter() - t0

    def run(self, chunks: Iterable) -> AudioRunResult:
        """Process a whole source (iterable of AudioChunk), keeping going past bad chunks."""
        parts, errors = [], []
        audio_s = 0.0
        t0 = time.perf_counter()
        for chunk in chunks:
            audio_s += len(chunk.samples) / chunk.sample_rate
            try:
                parts.append(self.process_audio(chunk.samples, chunk.sample_rate, chunk.stamp))
            except AudioInputError as exc:
                errors.append(f"chunk at {chunk.stamp:.3f} s: {exc}")
        feats = (BinauralFeatures.concatenate(parts) if parts else BinauralFeatures.empty(
            self.front_end.n_bands, self.audio_config.ild_band_edges))
        return AudioRunResult(feats, errors, audio_s, time.perf_counter() - t0)

    def active_directions(self, features: BinauralFeatures, min_activity: float,
                          min_reliability: float):
        """(mask (F,), unit vectors (M, 3)) of frames with an active, reliable ITD."""
        mask = (np.isfinite(features.itd) & (features.activity >= min_activity)
                & (features.reliability >= min_reliability))
        return mask, self.geometry.direction_from_itd(features.itd[mask])


# ---------------------------------------------------------------------------
# Visual stage
# ---------------------------------------------------------------------------
@dataclass
class VisionRunResult:
    """What :meth:`VisionPipeline.run` did over a whole source."""

    frames: int = 0
    observations: int = 0
    #: the per-frame observations (empty when a callback consumed them)
    results: list = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    first_stamp: float = float("nan")
    last_stamp: float = float("nan")
    wall_seconds: float = 0.0

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time (processing and reading)."""
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    @property
    def video_seconds(self) -> float:
        return (self.last_stamp - self.first_stamp) if self.frames > 1 else 0.0


class VisionPipeline:
    """Visual stage: stereo pairs -> :class:`~av_perception.core.vision.VisualObservations`.

    Wraps :class:`~av_perception.core.vision.VisualFrontEnd`.  The calibration
    can change from frame to frame (e.g. new CameraInfo): the front-end is
    rebuilt when a different calibration object is passed, so callers should
    pass the same object while it does not change (see
    :class:`~av_perception.io.stereo_sources.CalibrationCache`).

    Statistics: ``frames``, ``observations``, ``rejected_pairs``,
    ``processing_time`` (s, total), ``last_processing_time``, ``last_error``.
    """

    def __init__(self, vision: VisionConfig | None = None,
                 detection: DetectionConfig | None = None, calibration=None):
        self.vision_config = vision or VisionConfig()
        self.detection_config = detection or DetectionConfig()
        self._calibration_source = calibration if calibration is not None \
            else StereoCameraConfig()
        self.front_end = self._build(self._calibration_source)
        self.frames = 0
        self.observations = 0
        self.rejected_pairs = 0
        self.processing_time = 0.0
        self.last_processing_time = 0.0
        self.last_error = ""
        self.calibration_changes = 0

    def _build(self, calibration) -> VisualFrontEnd:
        return VisualFrontEnd(self.vision_config, calibration, self.detection_config)

    @property
    def calibration(self):
        """The :class:`~av_perception.core.stereo.StereoCalibration` in use."""
        return self.front_end.calibration

    def warm_up(self):
        """Compile the numba matching kernel now, so the first real pair is not slow."""
        self.front_end.warm_up()

    def set_calibration(self, calibration) -> bool:
        """Use ``calibration`` (StereoCalibration or StereoCameraConfig) from now on;
        returns True when the front-end had to be rebuilt."""
        src = self._calibration_source
        same = calibration is src or (isinstance(calibration, StereoCameraConfig)
                                      and calibration == src)
        if same:
            return False
        self.front_end = self._build(calibration)
        self._calibration_source = calibration
        self.calibration_changes += 1
        return True

    @property
    def mean_processing_time(self) -> float:
        """Seconds per processed pair."""
        return self.processing_time / self.frames if self.frames else 0.0

    def process_pair(self, left, right, stamp: float, calibration=None):
        """Observations of one stereo pair.

        Parameters
        ----------
        left, right : arrays (H, W, 3) BGR or (H, W) grey, uint8
        stamp : float
            Seconds (left image header stamp).
        calibration : StereoCalibration or StereoCameraConfig, optional
            The pair's calibration (default: keep the current one).

        Raises
        ------
        VisionInputError
            Unusable pair (shape, dtype, size mismatch with each other or with the
            calibration, non-finite stamp); counted in ``rejected_pairs``.
        """
        if calibration is not None:
            self.set_calibration(calibration)
        t0 = time.perf_counter()
        try:
            obs = self.front_end.process(left, right, stamp)
        except VisionInputError as exc:
            self.rejected_pairs += 1
            self.last_error = str(exc)
            raise
        finally:
            dt = time.perf_counter() - t0
            self.processing_time += dt
            self.last_processing_time = dt
        self.frames += 1
        self.observations += len(obs)
        return obs

    def run(self, frames: Iterable, callback=None) -> VisionRunResult:
        """Process a whole source (iterable of ``(stamp, left, right, calibration)``),
        keeping going past unusable pairs.

        ``callback(observations)`` receives each frame's result as it is computed
        (e.g. to write it at once); without it the results are kept in
        ``VisionRunResult.results``.
        """
        res = VisionRunResult()
        t0 = time.perf_counter()
        for stamp, left, right, calibration in frames:
            try:
                obs = self.process_pair(left, right, stamp, calibration)
            except VisionInputError as exc:
                res.errors.append(f"frame at {float(stamp):.3f} s: {exc}")
                continue
            res.frames += 1
            res.observations += len(obs)
            if res.frames == 1:
                res.first_stamp = float(stamp)
            res.last_stamp = float(stamp)
            if callback is not None:
                callback(obs)
            else:
                res.results.append(obs)
        res.wall_seconds = time.perf_counter() - t0
        return res
