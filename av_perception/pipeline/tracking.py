"""Tracking stage: the tracker fed in time order from asynchronous live streams."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..core.config import (
    AudioFrontEndConfig,
    MicArrayConfig,
    StageConfig,
    StereoCameraConfig,
    param,
)
from ..core.head_calibration import CalibrationFit, HeadCalibrationConfig, HeadCalibrator
from ..io.heads import load_head_model, save_calibration
from .audio import audio_frames_of
from .buffer import AUDIO, EVENTS, InputError, TimeOrderedBuffer, check_point_count

__all__ = ["TrackingConfig", "TrackingPipeline", "calibrate_step"]


@dataclass(frozen=True)
class TrackingConfig(StageConfig):
    """How the tracker is fed from asynchronous streams (section ``tracking``, shared with
    :class:`~av_perception.io.track_output.TrackOutputConfig` and the nodes' publishing
    settings)."""

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
        self.resets = 0
        self.audio_resets = 0  # audio time jumps back (the audio buffer restarted)
        # audio frames and fusion windows waiting for the next step
        self.buffer = TimeOrderedBuffer(max_age=self.tracking.max_audio_buffer)
        self.processing_time = 0.0
        self.last_processing_time = 0.0
        self._new_tracker()

    def _new_tracker(self):
        from ..core.tracking import Tracker

        config, mics, camera = self._args
        self.tracker = Tracker(config, load_head_model(mics, self.audio_config), camera)
        self.calibrator = (HeadCalibrator(self.calibration_config, self.tracker.geometry)
                           if self.calibration_config.enabled else None)
        self.buffer.clear()
        self.events_received = 0
        self.last_stamp: float | None = None  # stamp of the last step

    def reset(self):
        """Forget the tracks and the buffered audio."""
        with self.lock:
            self._new_tracker()

    @property
    def audio_overflow(self) -> int:
        """Audio frames dropped from a full buffer (total)."""
        return self.buffer.dropped_audio_frames

    @property
    def audio_until(self) -> float:
        """Newest audio stamp received (-inf before the first)."""
        h = self.buffer.head[AUDIO]
        return -math.inf if h is None else h

    def add_audio(self, stamps, itds, weights) -> int:
        """Buffer audio frames (stamp s, ITD s, weight = activity x reliability);
        returns the number buffered.  Raises InputError (nothing buffered) for
        non-finite stamps or mismatched sizes."""
        w = np.nan_to_num(np.atleast_1d(np.asarray(weights, dtype=float)), nan=0.0)
        inf = np.isinf(np.asarray(itds, dtype=float))
        if inf.any():  # NaN marks a frame without ITD; an infinite one is broken input
            raise InputError(
                f"audio frames with infinite ITDs ({int(inf.sum())} of {inf.size}): the audio "
                "input is broken; the message was dropped, later valid messages are used")
        with self.lock:
            self.buffer.max_age = self.tracking.max_audio_buffer
            head = self.buffer.head[AUDIO]
            t = np.asarray(stamps, dtype=float).reshape(-1)
            if (head is not None and len(t) and np.all(np.isfinite(t))
                    and t.max() < head - self.tracking.time_jump_reset):
                # the audio's time jumped back (or an earlier message was stamped far
                # ahead): against the old head every frame would look too old and be
                # dropped, the tracker would run deaf
                self.buffer.forget(AUDIO)
                self.audio_resets += 1
            return self.buffer.add_audio(stamps, itds, np.clip(w, 0.0, None))

    def add_audio_features(self, features) -> int:
        """Buffer :class:`~av_perception.core.audio.BinauralFeatures` or a
        ``cloud_to_features`` dict."""
        return self.add_audio(*audio_frames_of(features))

    def add_events(self, stamp: float, events) -> None:
        """Keep the newest fusion window's events (stamp = window end, s;
        EventObservations or a list of AVEvent) for the next :meth:`step`; a newer
        window replaces an unapplied older one (it covers the same data and more).
        Raises InputError for a non-finite stamp."""
        from ..core.tracking import EventObservations

        check_point_count(len(events), "audio-visual events")
        if not isinstance(events, EventObservations):
            events = EventObservations.from_events(events)
        with self.lock:
            events.stamp = self.buffer.add_events(stamp, events)
            self.events_received += 1

    @property
    def buffered_audio(self) -> int:
        return self.buffer.audio_frames

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

        from ..core.tracking import AudioFrames, TrackerInputError

        try:
            check_point_count(np.size(xyz) // 3, "visual observations")
        except InputError as exc:
            raise TrackerInputError(str(exc)) from None
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
            # all the audio (the tracker keeps frames later than the image for the next
            # step), the events up to the image
            audio = self.buffer.release(kinds=(AUDIO,)).audio
            frames = AudioFrames(*audio) if len(audio[0]) else None
            xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
            cov = np.asarray(covariance, dtype=float).reshape(-1, 3, 3)
            w = np.ones(len(xyz)) if weight is None else np.asarray(weight, dtype=float)
            visual = SimpleNamespace(xyz=xyz, covariance=cov, weight=w)
            ready = self.buffer.release(stamp, kinds=(EVENTS,)).events
            events = ready[-1][1] if ready else None  # the newest window covers the others
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
