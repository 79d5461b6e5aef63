"""The processing pipeline shared by the ROS nodes and the offline commands.

Today it holds the audio stage (:class:`AudioPipeline`), the visual stage
(:class:`VisionPipeline`) and the audio-visual clustering (:class:`FusionPipeline`);
the tracker joins it as its issue lands, so that a node and an offline command run
exactly the same code on the same inputs.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .compile_lock import serialized_compilation
from .core.audio import AudioInputError, BinauralFeatures, BinauralFrontEnd
from .core.av_clustering import AVClusterer, AVClusteringConfig
from .core.av_clustering import warm_up as av_warm_up
from .core.config import (
    AudioFrontEndConfig,
    ConfigError,
    MicArrayConfig,
    StageConfig,
    StereoCameraConfig,
    param,
)
from .core.detection import DetectionConfig, gray_image
from .core.head_calibration import CalibrationFit, HeadCalibrationConfig, HeadCalibrator
from .core.vision import VisionConfig, VisionInputError, VisualFrontEnd
from .core.wdem import WdemConfig
from .io.heads import load_head_model, save_calibration

__all__ = ["AudioPipeline", "AudioRunResult", "VisionPipeline", "VisionRunResult",
           "FusionInputConfig", "FusionInputError", "FusionPipeline", "FusionRunResult",
           "FusionWindow"]


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
        self.geometry = load_head_model(self.mics_config, self.audio_config)
        self.front_end = BinauralFrontEnd(self.audio_config, self.geometry, use_numba=use_numba)
        self.processing_time = 0.0
        self.rejected_chunks = 0
        self.last_error = ""

    def warm_up(self):
        """Compile the numba kernels now, so the first real chunk is not slow."""
        with serialized_compilation():
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


#: nice value of the detection worker thread (Linux: per thread), above the frame thread's
DETECTION_NICENESS = 10


class AsyncDetection:
    """A :class:`~av_perception.core.detection.DetectionPipeline` whose detectors run on
    a worker thread (``detection.asynchronous``, live nodes).

    On every frame the held boxes are tracked into it (template matching, a few ms);
    a detection finished since the previous frame replaces them, carried from its own
    frame into this one by tracking; a new detection starts on this frame when the
    worker is idle and ``detection.every_k`` frames have passed since the last one (at
    once while no box is held).  A keyframe therefore no longer delays its frame's
    output; new faces appear one or two frames after the frame they were detected in.
    Same interface as DetectionPipeline (``detect``, ``reset``, ``roi_pixels``,
    ``stats``); an error of the detectors is raised by the next ``detect``.
    """

    def __init__(self, pipeline):
        import threading

        self.pipeline = pipeline
        self._cv = threading.Condition()
        self._job = None  # (generation, image, grey) waiting for the worker
        self._done = None  # (generation, grey, detections, error) not yet applied
        self._busy = False
        self._stop = False
        self._generation = 0
        self._since = 0
        self.detect_time = 0.0  # s, total on the worker
        self.detections_run = 0
        self._thread = threading.Thread(target=self._run, name="av_perception_detection",
                                        daemon=True)
        self._thread.start()

    def __getattr__(self, name):  # roi_pixels, stats, config, tracker of the pipeline
        return getattr(self.__dict__["pipeline"], name)

    def _run(self):
        import os
        import threading

        try:  # below the frame thread: a detection may wait, a frame should not
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DETECTION_NICENESS)
        except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
            pass
        while True:
            with self._cv:
                while self._job is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                (gen, image, grey), self._job = self._job, None
            t0 = time.perf_counter()
            error = None
            try:
                dets = self.pipeline.detect_keyframe(image, grey)
            except Exception as exc:  # handed to the frame thread, which reports it
                dets, error = [], exc
            with self._cv:
                self.detect_time += time.perf_counter() - t0
                self.detections_run += 1
                self._busy = False
                if gen == self._generation:
                    self._done = (gen, grey, dets, error)
                self._cv.notify_all()

    def detect(self, image: np.ndarray) -> list:
        """Boxes of this frame (see the class docstring)."""
        grey = gray_image(image)
        with self._cv:
            done, self._done = self._done, None
        if done is not None:
            _, key_grey, dets, error = done
            if error is not None:
                raise error
            out = self.pipeline.restart(key_grey, dets, grey)
        else:
            out = self.pipeline.track(grey)
        self._since += 1
        with self._cv:
            idle = not self._busy and self._job is None
            if idle and (self._since >= self.pipeline.config.every_k
                         or len(self.pipeline.tracker) == 0):
                self._job = (self._generation, image, grey)
                self._busy = True
                self._since = 0
                self._cv.notify_all()
        return out

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until the worker has finished its detection (tests, shutdown)."""
        end = time.monotonic() + timeout
        with self._cv:
            while self._busy or self._job is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def reset(self) -> None:
        """Forget the held boxes and any detection in flight; the next frame starts one."""
        with self._cv:
            self._generation += 1
            self._done = None
            self._job = None
        self.pipeline.reset()
        self._since = 0

    def close(self) -> None:
        """Stop the worker thread."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=2.0)


class VisionPipeline:
    """Visual stage: stereo pairs -> :class:`~av_perception.core.vision.VisualObservations`.

    Wraps :class:`~av_perception.core.vision.VisualFrontEnd`.  The calibration
    can change from frame to frame (e.g. new CameraInfo): the front-end is
    rebuilt when a different calibration object is passed, so callers should
    pass the same object while it does not change (see
    :class:`~av_perception.io.stereo_sources.CalibrationCache`).

    Statistics: ``frames``, ``observations``, ``rejected_pairs``,
    ``processing_time`` (s, total), ``last_processing_time``, ``last_error``.

    ``live=True`` (the nodes) runs the detectors on a worker thread when
    ``detection.asynchronous`` (:class:`AsyncDetection`); offline runs detect in the
    frame and are reproducible.
    """

    def __init__(self, vision: VisionConfig | None = None,
                 detection: DetectionConfig | None = None, calibration=None,
                 live: bool = False):
        self.vision_config = vision or VisionConfig()
        self.detection_config = detection or DetectionConfig()
        # live nodes detect on a worker thread when detection.asynchronous (AsyncDetection)
        self.asynchronous_detection = live and self.detection_config.asynchronous
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
        front_end = VisualFrontEnd(self.vision_config, calibration, self.detection_config)
        if self.asynchronous_detection:
            front_end.detector = AsyncDetection(front_end.detector)
        return front_end

    def close(self) -> None:
        """Stop the detection worker thread (asynchronous detection)."""
        if isinstance(self.front_end.detector, AsyncDetection):
            self.front_end.detector.close()

    @property
    def calibration(self):
        """The :class:`~av_perception.core.stereo.StereoCalibration` in use."""
        return self.front_end.calibration

    def warm_up(self):
        """Compile the numba matching kernel now, so the first real pair is not slow."""
        with serialized_compilation():
            self.front_end.warm_up()

    def set_calibration(self, calibration) -> bool:
        """Use ``calibration`` (StereoCalibration or StereoCameraConfig) from now on;
        returns True when the front-end had to be rebuilt."""
        src = self._calibration_source
        same = calibration is src or (isinstance(calibration, StereoCameraConfig)
                                      and calibration == src)
        if same:
            return False
        self.close()
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


def audio_frames_of(features):
    """(stamp, itd, weight) of audio frames from :class:`BinauralFeatures` or a
    ``cloud_to_features`` dict; weight = activity x reliability."""
    if isinstance(features, BinauralFeatures):
        return features.stamp, features.itd, features.weight
    rel = features.get("reliability")
    return (features["stamp"], features["itd"],
            features["activity"] * (rel if rel is not None else 1.0))


# ---------------------------------------------------------------------------
# Fusion stage (audio-visual clustering over sliding windows)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FusionInputConfig(StageConfig):
    """How the fusion stage merges its two input streams (section ``fusion_input``)."""

    SECTION: ClassVar[str] = "fusion_input"

    frame_id: str = param(
        "stereo_left_optical_frame", "frame_id of av_events when the visual observations carry "
        "none (before the first one arrives, or an empty header frame_id); otherwise the "
        "observations' frame_id is used.")
    max_input_delay: float = param(
        0.3, "Data time (s) the fusion waits for the slower input stream: windows run on the "
        "data both streams have delivered, or on the faster one alone once it is this far "
        "ahead (a silent or lagging stream does not stop the output; its data older than the "
        "processed time is then dropped as late).", low=0.0, high=10.0)
    max_buffer: int = param(
        500, "Largest number of input messages (audio feature clouds + observation clouds) "
        "waiting to be clustered; beyond it the oldest are dropped (and counted).",
        low=1, high=100000)
    time_jump_reset: float = param(
        3.0, "An input stamped this many seconds before the processed data time is a jump back "
        "(bag restarted, clock reset): the fusion restarts from empty instead of dropping it as "
        "late.  Must exceed max_input_delay.", low=0.1, high=1e6)
    min_itd_weight: float = param(
        0.02, "Audio frames whose weight (activity x GCC-PHAT reliability) is below this are "
        "not clustered (silence; they only cost time).", low=0.0, high=1.0)
    queue_size: int = param(
        20, "Depth of the audio/features and visual/observations subscriptions (reliable).",
        low=1, high=1000)
    diagnostics_period: float = param(
        1.0, "Seconds between /diagnostics messages.", low=0.1, high=60.0)

    def validate(self):
        if not self.frame_id.strip():
            raise ConfigError("parameter 'fusion_input.frame_id' is empty: give the frame of "
                              "the left camera optical frame")
        if self.time_jump_reset <= self.max_input_delay:
            raise ConfigError(
                f"parameter 'fusion_input.time_jump_reset' = {self.time_jump_reset} is not "
                f"allowed: must be > fusion_input.max_input_delay ({self.max_input_delay})")


class FusionInputError(ValueError):
    """An input batch of the fusion stage is unusable (non-finite stamp, shape mismatch)."""


@dataclass
class FusionWindow:
    """One clustered window: ``events`` (list of AVEvent) of the window ending at ``stamp``."""

    stamp: float
    events: list
    frame_id: str
    processing_time: float
    n_visual: int
    n_audio: int


@dataclass
class FusionRunResult:
    windows: list = field(default_factory=list)
    wall_seconds: float = 0.0


@dataclass
class _VisualFrame:
    stamp: float
    xyz: np.ndarray
    weight: np.ndarray
    cov: np.ndarray
    frame_id: str


class FusionPipeline:
    """Fusion stage: audio features + visual observations -> AV events per window.

    Wraps :class:`~av_perception.core.av_clustering.AVClusterer`.  The two inputs
    arrive separately, each in stamp order but with different latencies, so they
    are buffered and released to the clusterer merged in stamp order up to the
    *release time*: the older of the two streams' newest stamps, or the newer
    one minus ``fusion_input.max_input_delay`` when the other stream lags that much
    (or has never delivered).  Windows are therefore driven by data time only
    (header stamps): a bag replayed at any rate gives the same windows.

    Input that arrives stamped before the data already released is *late*:
    dropped and counted (``late_audio_frames``, ``late_visual_frames``), unless it is
    more than ``time_jump_reset`` s before it, which restarts the stage
    (``resets``; a bag played again, a clock reset).

    ITD weights are activity x reliability (:attr:`BinauralFeatures.weight`);
    frames with a non-finite ITD or a weight below ``min_itd_weight`` are left out.
    Visual points with a non-finite position/weight or a negative weight are left
    out (``invalid_points``); a non-finite variance becomes the
    ``fusion.visual_std_max`` variance (observation kept, trusted little).

    Statistics (totals): ``windows``, ``processing_time`` (s), ``audio_frames``,
    ``visual_frames``, ``late_audio_frames``, ``late_visual_frames``,
    ``overflow_dropped`` (messages), ``invalid_points``, ``resets``.
    """

    def __init__(self, fusion: AVClusteringConfig | None = None,
                 wdem_config: WdemConfig | None = None, mics: MicArrayConfig | None = None,
                 inputs: FusionInputConfig | None = None, use_numba: bool = True):
        self.fusion_config = fusion or AVClusteringConfig()
        self.wdem_config = wdem_config or WdemConfig()
        self.mics_config = mics or MicArrayConfig()
        self.input_config = inputs or FusionInputConfig()
        self.use_numba = use_numba
        self.geometry = load_head_model(self.mics_config)
        self.clusterer = AVClusterer(self.fusion_config, self.geometry, self.wdem_config,
                                     use_numba=use_numba)
        self.windows = 0
        self.processing_time = 0.0
        self.audio_frames = 0
        self.visual_frames = 0
        self.late_audio_frames = 0
        self.late_visual_frames = 0
        self.overflow_dropped = 0
        self.invalid_points = 0
        self.resets = 0
        self._clear()

    def _clear(self):
        self._audio: list = []  # [(stamps, itds, weights)] per message, each stamp-sorted
        self._visual: list[_VisualFrame] = []
        self.audio_head: float | None = None
        self.visual_head: float | None = None
        self.released = -math.inf  # data time handed to the clusterer
        self._fed = -math.inf  # newest stamp handed to the clusterer
        self.frame_id = self.input_config.frame_id

    def warm_up(self):
        """Compile (or load from cache) the clustering kernels now."""
        with serialized_compilation():
            av_warm_up()

    def reset(self):
        """Forget buffered input and clusters (the statistics are kept)."""
        self.clusterer.reset()
        self._clear()

    def configure(self, fusion: AVClusteringConfig, wdem_config: WdemConfig,
                  mics: MicArrayConfig, inputs: FusionInputConfig):
        """New configuration; a new clustering model restarts the clusters (buffers kept)."""
        model_changed = (fusion, wdem_config, mics) != (
            self.fusion_config, self.wdem_config, self.mics_config)
        self.fusion_config, self.wdem_config = fusion, wdem_config
        self.mics_config, self.input_config = mics, inputs
        if model_changed:
            self.geometry = load_head_model(mics)
            self.clusterer = AVClusterer(fusion, self.geometry, wdem_config,
                                         use_numba=self.use_numba)
            self._fed = -math.inf

    @property
    def buffered_messages(self) -> int:
        return len(self._audio) + len(self._visual)

    # ----------------------------------------------------------------- input
    def _check_time(self, stamp: float) -> bool:
        """False when ``stamp`` is late; resets the stage on a large jump back."""
        if stamp > self.released:
            return True
        if self.released - stamp > self.input_config.time_jump_reset:
            self.resets += 1
            self.reset()
            return True
        return False

    def add_audio(self, stamps, itds, weights) -> int:
        """Buffer audio frames (stamps s, ITDs s, weights >= 0); returns how many were kept.

        Raises FusionInputError for mismatched shapes or non-finite stamps.
        """
        t = np.asarray(stamps, dtype=np.float64).reshape(-1)
        tau = np.asarray(itds, dtype=np.float64).reshape(-1)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if not len(t) == len(tau) == len(w):
            raise FusionInputError(f"audio frames: {len(t)} stamps, {len(tau)} ITDs and "
                                   f"{len(w)} weights (must be equal)")
        if not np.all(np.isfinite(t)):
            raise FusionInputError("audio frames have non-finite stamps")
        if len(t) == 0:
            return 0
        order = np.argsort(t, kind="stable")
        t, tau, w = t[order], tau[order], w[order]
        if not self._check_time(float(t[0])):
            late = t <= self.released
            self.late_audio_frames += int(late.sum())
            t, tau, w = t[~late], tau[~late], w[~late]
            if len(t) == 0:
                return 0
        self.audio_frames += len(t)
        self.audio_head = float(t[-1]) if self.audio_head is None else max(self.audio_head,
                                                                           float(t[-1]))
        ok = np.isfinite(tau) & np.isfinite(w) & (w >= self.input_config.min_itd_weight) & (w > 0)
        self._audio.append((t[ok], tau[ok], w[ok]))
        self._limit()
        return len(t)

    def add_audio_features(self, features) -> int:
        """Buffer a :class:`BinauralFeatures` or a ``cloud_to_features`` dict."""
        return self.add_audio(*audio_frames_of(features))

    def add_visual(self, stamp: float, xyz, weights, variances=None, frame_id: str = "") -> bool:
        """Buffer one frame of visual observations ((M, 3) m, (M,) weights, optional (M, 3)
        variances m^2); returns False when the frame was late.  Raises FusionInputError for
        a non-finite stamp or mismatched shapes."""
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise FusionInputError(f"visual observations with a non-finite stamp {stamp}")
        X = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        var = (np.zeros((len(X), 3)) if variances is None
               else np.asarray(variances, dtype=np.float64).reshape(-1, 3))
        if not len(X) == len(w) == len(var):
            raise FusionInputError(f"visual observations: {len(X)} points, {len(w)} weights "
                                   f"and {len(var)} variances (must be equal)")
        if not self._check_time(stamp):
            self.late_visual_frames += 1
            return False
        ok = np.all(np.isfinite(X), axis=1) & np.isfinite(w) & (w >= 0)
        self.invalid_points += int((~ok).sum())
        X, w, var = X[ok], w[ok], var[ok]
        var = np.where(np.isfinite(var) & (var >= 0), var, self.fusion_config.visual_std_max ** 2)
        cov = np.zeros((len(X), 3, 3))
        cov[:, [0, 1, 2], [0, 1, 2]] = var
        self._visual.append(_VisualFrame(stamp, X, w, cov, frame_id))
        self.visual_frames += 1
        self.visual_head = stamp if self.visual_head is None else max(self.visual_head, stamp)
        self._limit()
        return True

    def _limit(self):
        while self.buffered_messages > self.input_config.max_buffer:
            a = self._audio[0][0][0] if self._audio and len(self._audio[0][0]) else math.inf
            v = self._visual[0].stamp if self._visual else math.inf
            if self._audio and (a <= v or not self._visual):
                self._audio.pop(0)
            else:
                self._visual.pop(0)
            self.overflow_dropped += 1

    # ------------------------------------------------------------ processing
    def release_time(self, flush: bool = False) -> float:
        """Data time up to which the buffered input can be clustered now."""
        heads = [h for h in (self.audio_head, self.visual_head) if h is not None]
        if not heads:
            return -math.inf
        newest = max(heads)
        if flush:
            return newest
        delay = self.input_config.max_input_delay
        if len(heads) == 1:
            return newest - delay
        return max(min(heads), newest - delay)

    def process(self, flush: bool = False) -> list[FusionWindow]:
        """Cluster the buffered input up to the release time (all of it with ``flush``);
        returns the windows completed (one per ``fusion.hop_length`` of data time)."""
        until = self.release_time(flush)
        if until <= self.released:
            return []
        self.released = until
        # audio frames up to `until`, merged over messages, in stamp order
        take, keep = [], []
        for t, tau, w in self._audio:
            n = int(np.searchsorted(t, until, side="right"))
            if n:
                take.append((t[:n], tau[:n], w[:n]))
            if n < len(t):
                keep.append((t[n:], tau[n:], w[n:]))
        self._audio = keep
        if take:
            at = np.concatenate([x[0] for x in take])
            ax = np.concatenate([x[1] for x in take])
            aw = np.concatenate([x[2] for x in take])
            order = np.argsort(at, kind="stable")
            at, ax, aw = at[order], ax[order], aw[order]
        else:
            at = ax = aw = np.zeros(0)
        frames = sorted((f for f in self._visual if f.stamp <= until), key=lambda f: f.stamp)
        self._visual = [f for f in self._visual if f.stamp > until]
        out: list[FusionWindow] = []
        i = 0
        for f in frames:
            j = int(np.searchsorted(at, f.stamp, side="right"))
            if j > i:
                self._feed_audio(at[i:j], ax[i:j], aw[i:j], out)
                i = j
            self._feed_visual(f, out)
        if i < len(at):
            self._feed_audio(at[i:], ax[i:], aw[i:], out)
        # time passes even where the inputs carry no frame (e.g. frames below
        # min_itd_weight), once the clusterer has seen data
        if until > self._fed and math.isfinite(self._fed):
            self._feed(until, {}, out)
        return out

    def _feed_audio(self, t, tau, w, out):
        self._feed(float(t[-1]), dict(itds=tau, itd_weights=w, itd_stamps=t), out)

    def _feed_visual(self, f: _VisualFrame, out):
        if f.frame_id:
            self.frame_id = f.frame_id
        kw = dict(visual_points=f.xyz, visual_weights=f.weight)
        if len(f.xyz):
            kw["visual_covariances"] = f.cov
        self._feed(f.stamp, kw, out)

    def _feed(self, t: float, kwargs, out):
        t = max(t, self._fed)  # the clusterer's window ends at the newest stamp it saw
        before = self.clusterer.last_result
        t0 = time.perf_counter()
        events = self.clusterer.update(t, **kwargs)
        dt = time.perf_counter() - t0
        self._fed = t
        result = self.clusterer.last_result
        if result is not before:
            self.windows += 1
            self.processing_time += dt
            n_v = len(result.visual_responsibilities)
            n_a = len(result.audio_responsibilities)
            out.append(FusionWindow(t, list(events), self.frame_id, dt, n_v, n_a))

    def run(self, audio_features=(), visual_frames=()) -> FusionRunResult:
        """Offline: cluster whole streams.

        audio_features : iterable of BinauralFeatures or ``cloud_to_features`` dicts.
        visual_frames : iterable of ``(stamp, xyz, weights, variances)`` (variances may be
            None).

        Both are merged by stamp (as the node does with its subscriptions) and flushed at
        the end.
        """
        res = FusionRunResult()
        t0 = time.perf_counter()
        items = [(float(np.min(f.stamp if isinstance(f, BinauralFeatures) else f["stamp"])),
                  0, k, f) for k, f in enumerate(audio_features) if len(
                      f.stamp if isinstance(f, BinauralFeatures) else f["stamp"])]
        items += [(float(v[0]), 1, k, v) for k, v in enumerate(visual_frames)]
        for _, kind, _, item in sorted(items, key=lambda x: x[:3]):
            if kind == 0:
                self.add_audio_features(item)
            else:
                self.add_visual(item[0], item[1], item[2], item[3])
            res.windows.extend(self.process())
        res.windows.extend(self.process(flush=True))
        res.wall_seconds = time.perf_counter() - t0
        return res


# ---------------------------------------------------------------------------
# Tracking stage of the live nodes (tracker_node, perception_node)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackingConfig(StageConfig):
    """How the live nodes feed the tracker and what they publish (section ``tracking``)."""

    SECTION: ClassVar[str] = "tracking"

    audio_wait: float = param(
        0.0, "Longest time (s) an image's observations wait for the audio frames up to their "
        "stamp before the tracker steps without them (late audio is then applied at the "
        "tracker's current time, or dropped beyond tracker.max_lateness).  0 (default): no "
        "wait, the lowest latency; ~0.05 makes the tracker see audio and images strictly in "
        "time order.  Not applied while no audio arrives.", low=0.0, high=2.0)
    max_audio_buffer: float = param(
        5.0, "Audio frames buffered while no image arrives are kept for this many seconds "
        "(older ones are dropped and counted).", low=0.1, high=120.0)
    time_jump_reset: float = param(
        2.0, "Restart the tracker when an image stamp is this many seconds older than the "
        "previous one (a bag restarted, the clock jumped back).", low=0.1, high=3600.0)
    use_av_events: bool = param(
        False, "Also start tracks from the audio-visual events of the weighted-data EM "
        "fusion (av_events: tracker_node subscribes to it, perception_node and `process` "
        "run the fusion in-process) that no track explains (tracker.event_birth_*).")
    frame_id: str = param(
        "", "frame_id of the outputs; empty = the frame_id of the visual observations "
        "(the left camera optical frame).")
    publish_markers: bool = param(
        True, "Publish speakers/markers (visualization_msgs/MarkerArray) for RViz.")
    publish_image: bool = param(
        True, "Publish speakers/image, the left image annotated with the tracks.")
    publish_voices: bool = param(
        False, "Publish ROS4HRI-style std_msgs/Bool <voices_namespace>/<voice_id_prefix><id>/"
        "is_speaking per track (publishers created and destroyed with the tracks).")
    voices_namespace: str = param(
        "/humans/voices", "Namespace of the per-track is_speaking topics.")
    voice_id_prefix: str = param(
        "voice", "Prefix of the voice ids (ROS topic name tokens cannot start with a digit).")
    speaking_threshold: float = param(
        0.5, "Speaking probability from which a track is labelled 'speaking' (marker text, "
        "is_speaking).", low=0.0, high=1.0)
    marker_lifetime: float = param(
        2.0, "Lifetime (s) of the markers, so that they vanish if the node stops "
        "(0 = forever).", low=0.0, high=3600.0)
    diagnostics_period: float = param(
        1.0, "Seconds between /diagnostics messages of the tracking stage.", low=0.1, high=60.0)

    def validate(self):
        ns = self.voices_namespace
        if not ns.startswith("/") or ns.endswith("/") or "//" in ns:
            raise ConfigError(
                f"parameter 'tracking.voices_namespace' = {ns!r} is not allowed: must be an "
                "absolute topic namespace such as '/humans/voices'")
        p = self.voice_id_prefix
        if not p or not (p[0].isalpha()) or not all(c.isalnum() or c == "_" for c in p):
            raise ConfigError(
                f"parameter 'tracking.voice_id_prefix' = {p!r} is not allowed: must start with "
                "a letter and contain only letters, digits and '_'")


def calibrate_step(calibrator: HeadCalibrator, tracker, output, frames,
                   calibration_file: str = "") -> CalibrationFit | None:
    """Feed one tracker step (its output and the audio frames up to its stamp) to the
    head self-calibration; an accepted fit replaces the tracker's binaural model and is
    written to ``calibration_file`` (when set)."""
    if frames is not None:
        frames = frames.select(frames.stamp <= output.stamp)
    fit = calibrator.update(tracker, output, frames)
    if fit is not None and calibration_file:
        save_calibration(calibration_file, fit)
    return fit


class TrackingPipeline:
    """The tracker fed from asynchronous live streams, in time order.

    Audio frames are buffered as they arrive (:meth:`add_audio`); at each image's
    visual observations (:meth:`step`) the tracker is advanced with the buffered audio
    up to the image stamp, then the observations -- as
    :func:`~av_perception.offline.process_bag` does for a bag.  Audio later than the
    image stays buffered in the tracker for the next step.  Thread safe.

    Statistics: ``steps``, ``late_visual`` (an image older than the previous one,
    dropped), ``audio_overflow`` (audio frames dropped from a full buffer), ``resets``,
    ``processing_time`` (s, total) and ``last_processing_time``; the tracker's own
    ``tracker.stats['late_audio']`` / ``['late_visual']`` count input beyond
    ``tracker.max_lateness``.
    """

    def __init__(self, tracker_config=None, mics: MicArrayConfig | None = None,
                 camera: StereoCameraConfig | None = None,
                 tracking: TrackingConfig | None = None,
                 calibration: HeadCalibrationConfig | None = None,
                 audio: AudioFrontEndConfig | None = None):
        import threading

        self.tracking = tracking or TrackingConfig()
        self.calibration_config = calibration or HeadCalibrationConfig()
        self.audio_config = audio  # the front-end's bands, for a measured head table
        self._args = (tracker_config, mics or MicArrayConfig(), camera)
        self.lock = threading.Lock()
        self.steps = 0
        self.late_visual = 0
        self.audio_overflow = 0
        self.resets = 0
        self.processing_time = 0.0
        self.last_processing_time = 0.0
        self._new_tracker()

    def _new_tracker(self):
        from .core.tracking import Tracker

        config, mics, camera = self._args
        self.tracker = Tracker(config, load_head_model(mics, self.audio_config), camera)
        self.calibrator = (HeadCalibrator(self.calibration_config, self.tracker.geometry)
                           if self.calibration_config.enabled else None)
        self._audio: list = []  # (stamps, itds, weights) arrays in arrival order
        self._audio_frames = 0
        self._events = None  # EventObservations of the newest window not yet applied
        self.events_received = 0
        self.audio_until = -math.inf  # newest audio stamp received
        self.last_stamp: float | None = None  # stamp of the last step

    def reset(self):
        """Forget the tracks and the buffered audio."""
        with self.lock:
            self._new_tracker()

    def add_audio(self, stamps, itds, weights) -> int:
        """Buffer audio frames (stamp s, ITD s, weight = activity x reliability);
        returns the number buffered."""
        s = np.atleast_1d(np.asarray(stamps, dtype=float))
        if len(s) == 0:
            return 0
        g = np.atleast_1d(np.asarray(itds, dtype=float))
        w = np.nan_to_num(np.atleast_1d(np.asarray(weights, dtype=float)), nan=0.0)
        with self.lock:
            self._audio.append((s, g, np.clip(w, 0.0, None)))
            self._audio_frames += len(s)
            self.audio_until = max(self.audio_until, float(np.max(s)))
            horizon = self.audio_until - self.tracking.max_audio_buffer
            while self._audio and float(np.max(self._audio[0][0])) < horizon:
                old = self._audio.pop(0)
                self._audio_frames -= len(old[0])
                self.audio_overflow += len(old[0])
        return len(s)

    def add_audio_features(self, features) -> int:
        """Buffer :class:`~av_perception.core.audio.BinauralFeatures` or a
        ``cloud_to_features`` dict."""
        return self.add_audio(*audio_frames_of(features))

    def add_events(self, stamp: float, events) -> None:
        """Keep the newest fusion window's events (stamp = window end, s;
        EventObservations or a list of AVEvent) for the next :meth:`step`; a newer
        window replaces an unapplied older one (it covers the same data and more)."""
        from .core.tracking import EventObservations

        if not isinstance(events, EventObservations):
            events = EventObservations.from_events(events)
        events.stamp = float(stamp)
        with self.lock:
            self.events_received += 1
            if self._events is None or events.stamp >= self._events.stamp:
                self._events = events

    @property
    def buffered_audio(self) -> int:
        return self._audio_frames

    def audio_ready(self, stamp: float) -> bool:
        """True when audio up to ``stamp`` has arrived."""
        return self.audio_until >= stamp

    def step(self, stamp: float, xyz, covariance, weight=None):
        """Advance the tracker to an image: the buffered audio up to ``stamp``, then its
        visual observations (xyz (M, 3), covariance (M, 3, 3), weight (M,)).

        Returns the TrackerOutput, or None when the image is older than the previous one
        (dropped, counted in ``late_visual``).
        """
        from types import SimpleNamespace

        from .core.tracking import AudioFrames

        stamp = float(stamp)
        t0 = time.perf_counter()
        with self.lock:
            if self.last_stamp is not None and stamp <= self.last_stamp:
                if stamp < self.last_stamp - self.tracking.time_jump_reset:
                    self._new_tracker()
                    self.resets += 1
                else:
                    self.late_visual += 1
                    return None
            if self._audio:
                frames = AudioFrames(np.concatenate([a[0] for a in self._audio]),
                                     np.concatenate([a[1] for a in self._audio]),
                                     np.concatenate([a[2] for a in self._audio]))
                self._audio = []
                self._audio_frames = 0
            else:
                frames = None
            xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
            cov = np.asarray(covariance, dtype=float).reshape(-1, 3, 3)
            w = np.ones(len(xyz)) if weight is None else np.asarray(weight, dtype=float)
            visual = SimpleNamespace(xyz=xyz, covariance=cov, weight=w)
            events = None
            if self._events is not None and self._events.stamp <= stamp:
                events, self._events = self._events, None
            out = self.tracker.step(stamp, visual=visual, audio=frames, events=events)
            if self.calibrator is not None:
                calibrate_step(self.calibrator, self.tracker, out, frames,
                               self._args[1].calibration_file)
            self.last_stamp = stamp
            self.steps += 1
            dt = time.perf_counter() - t0
            self.processing_time += dt
            self.last_processing_time = dt
        return out


@dataclass(frozen=True)
class TrackerInputConfig(StageConfig):
    """The left image that tracker_node annotates for ``speakers/image`` (section
    ``tracker_input``; the observations and audio features come on ``visual/observations``
    and ``audio/features``, remap those)."""

    SECTION: ClassVar[str] = "tracker_input"

    image_topic: str = param(
        "stereo/left/image_raw", "Left image topic annotated into speakers/image (base name, "
        "without /compressed).")
    info_topic: str = param(
        "stereo/left/camera_info", "Left CameraInfo topic (projection of the tracks into the "
        "image; the camera.* parameters until it arrives).")
    compressed: bool = param(
        False, "Subscribe to sensor_msgs/CompressedImage on '<image_topic>/compressed'.")
    image_queue: int = param(
        30, "Left images kept while waiting for the observations of the same stamp.",
        low=1, high=1000)
    reliability: str = param(
        "best_effort", "QoS reliability of the image and camera_info subscriptions.",
        choices=("best_effort", "reliable"))

    def validate(self):
        for name in ("image_topic", "info_topic"):
            if not getattr(self, name).strip():
                raise ConfigError(f"parameter 'tracker_input.{name}' is empty: give a topic name")
