"""Tracking stage: the tracker fed in time order from asynchronous live streams."""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..core.attention import AttentionConfig, AttentionSelector
from ..core.config import (
    AudioFrontEndConfig,
    MicArrayConfig,
    StageConfig,
    StereoCameraConfig,
    param,
)
from ..core.head_calibration import CalibrationFit, HeadCalibrationConfig, HeadCalibrator
from ..io.heads import load_head_model, save_calibration
from .audio import audio_activity_of, audio_frames_of, audio_profile_of
from .buffer import AUDIO, EVENTS, InputError, TimeOrderedBuffer, check_point_count
from .poses import HeadPoses

__all__ = ["AUDIO_ONLY_PERIOD", "TrackingConfig", "TrackingPipeline", "calibrate_step"]

#: s between the tracker's audio-only steps while the camera is frozen
AUDIO_ONLY_PERIOD = 0.1


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
        "previous one, or an audio stamp than the newest audio (a bag looped, use_sim_time "
        "reset, the clock jumped back); reported once on /diagnostics.", low=0.1, high=3600.0)
    time_jump_forward: float = param(
        10.0, "Restart the tracker when an image or audio stamp is this many seconds after "
        "the previous one of its stream (a clock step, a long gap in the input); reported "
        "once on /diagnostics.", low=0.5, high=1e6)
    camera_timeout: float = param(
        1.0, "After this many seconds of audio without a new image stamp (no images, or "
        "the same stamp repeated: a frozen camera) the tracker goes on from the audio alone "
        "(audio-only steps every 0.1 s, published like the others) and a lasting WARN names "
        "the camera; it ends when image stamps advance again.", low=0.2, high=3600.0)
    max_av_offset: float = param(
        2.0, "The newest audio stamp and the newest image stamp more than this many seconds "
        "apart at every image of a diagnostics period is a lasting WARN with the offset "
        "(the microphone and camera clocks disagree).", low=0.1, high=3600.0)
    use_av_events: bool = param(
        False, "Also start tracks from the audio-visual events of the weighted-data EM "
        "fusion (av_events: tracker_node subscribes to it, perception_node and `process` "
        "run the fusion in-process) that no track explains (tracker.event_birth_*).")
    fixed_frame: str = param(
        "", "Frame the tracker works in (e.g. base_link or odom): the left camera's pose in "
        "it is read from /tf and /tf_static at each image and audio stamp, so that a "
        "turning head does not move the tracks; outputs carry this frame.  Empty "
        "(default): the camera frame, /tf is not read.  Until the chain from this frame "
        "to the image's frame_id is complete the tracker stays in the camera frame "
        "(/diagnostics says so).")
    publish_camera_frame: bool = param(
        False, "With fixed_frame: also publish the tracks in the left camera frame "
        "(speakers_camera, speakers_camera/markers).")
    tf_max_extrapolation: float = param(
        0.1, "Past the newest /tf of a link its motion is extrapolated for this many "
        "seconds, then held (a WARN on /diagnostics says /tf is late).", low=0.0, high=5.0)
    tf_jump_distance: float = param(
        0.5, "A /tf sample this far (m) from the previous one of its link is a jump "
        "(odometry reset): the link's history restarts and the tracks are moved with the "
        "jump (they keep their place relative to the camera).", low=0.01, high=100.0)
    tf_jump_angle: float = param(
        45.0, "A /tf sample turned this many degrees from the previous one of its link is "
        "a jump (as tf_jump_distance).", low=1.0, high=180.0)
    tf_buffer: float = param(
        10.0, "Seconds of /tf history kept per link.", low=0.5, high=600.0)
    speaking_smoothing_lag: float = param(
        1000.0, "Offline commands only (process, separate): the track file's speaking "
        "column is P(speaking) given the audio up to this many seconds after each image "
        "(the speaking HMM smoothed forward-backward over the evidence the tracker's "
        "filter used; docs/algorithms.md, 'The smoother'); longer than the bag: the whole "
        "bag; 0: the causal filter, as published live.  The live nodes always publish the "
        "causal filter; the tracker's own steps use it in every case.", low=0.0, high=1e6)
    speaking_smoothing_entry: float = param(
        0.005, "Offline smoother only: its silent -> speaking transition probability per "
        "audio frame (turns are slower than the live filter's tracker.speaking_entry "
        "assumes; the evidence is the filter's, recovered with the filter's transitions); "
        "0: the tracker's speaking_entry.  docs/algorithms.md, 'The smoother'.",
        low=0.0, high=0.5)
    speaking_smoothing_exit: float = param(
        0.005, "Offline smoother only: its speaking -> silent transition probability per "
        "audio frame; 0: the tracker's speaking_exit.", low=0.0, high=0.5)

    def smoothing_transitions(self) -> tuple[float | None, float | None]:
        """The smoother's (entry, exit) for :meth:`SpeakingRecord.smooth` (None: the
        filter's)."""
        return (self.speaking_smoothing_entry or None, self.speaking_smoothing_exit or None)


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
    image stays buffered in the tracker for the next step.  Each output carries its
    attention target (``output.attention``, :class:`~av_perception.core.attention.
    AttentionSelector`, restarted with the tracker) unless ``attention.enabled`` is off.
    Thread safe.

    Statistics: ``steps``, ``late_visual`` (an image older than the previous one,
    dropped), ``audio_overflow`` (audio frames dropped from a full buffer), ``resets``,
    ``processing_time`` (s, total) and ``last_processing_time``; the tracker's own
    ``tracker.stats['late_audio']`` / ``['late_visual']`` count input beyond
    ``tracker.max_lateness``.

    Broken time (docs/architecture.md, "Clock jumps, a frozen camera, drift"):

    * image stamps jumping back by more than ``tracking.time_jump_reset`` (a bag looped,
      use_sim_time reset) or forward by more than ``tracking.time_jump_forward`` restart
      the tracker (``resets``; the audio of the new timeline already buffered is kept);
      audio stamps jumping back drop the old timeline's audio from the buffer (so the new
      audio is not taken for stale).  Each restart leaves one message in
      :meth:`pop_notices`;
    * a frozen camera (``camera_frozen_for``: seconds of audio since the image stamps
      last advanced, ``repeated_visual`` images with a stamp that did not advance): past
      ``tracking.camera_timeout`` :meth:`step_audio_only` steps the tracker from the audio
      alone (``audio_only_steps``);
    * ``av_offset``: newest audio stamp minus newest image stamp (clock drift).
    """

    def __init__(self, tracker_config=None, mics: MicArrayConfig | None = None,
                 camera: StereoCameraConfig | None = None,
                 tracking: TrackingConfig | None = None,
                 calibration: HeadCalibrationConfig | None = None,
                 audio: AudioFrontEndConfig | None = None,
                 attention: AttentionConfig | None = None):
        import threading

        self.tracking = tracking or TrackingConfig()
        self.calibration_config = calibration or HeadCalibrationConfig()
        self.audio_config = audio  # the front-end's bands, for a measured head table
        #: the attention target of each output (``output.attention``), restarted with the
        #: tracker; ``attention_config`` may be replaced between steps
        self.attention_config = attention or AttentionConfig()
        self.attention = AttentionSelector(self.attention_config)
        self._args = (tracker_config, mics or MicArrayConfig(), camera)
        self.lock = threading.Lock()
        self.steps = 0
        self.late_visual = 0
        self.resets = 0
        self.audio_resets = 0  # audio time jumps back (the audio buffer restarted)
        self.audio_only_steps = 0
        self.repeated_visual = 0  # images whose stamp did not advance (total)
        self.notices: deque = deque(maxlen=20)  # messages of resets, for pop_notices()
        # audio frames and fusion windows waiting for the next step
        self.buffer = TimeOrderedBuffer(max_age=self.tracking.max_audio_buffer)
        self.processing_time = 0.0
        self.last_processing_time = 0.0
        self.poses = HeadPoses(self.tracking)
        self.speaking_record = None  # record_speaking()
        self._new_tracker()

    def _new_tracker(self):
        from ..core.tracking import Tracker

        config, mics, camera = self._args
        self.tracker = Tracker(config, load_head_model(mics, self.audio_config), camera)
        if self.speaking_record is not None:  # identities restart: kept apart
            self.speaking_record.new_epoch()
            self.tracker.speaking_record = self.speaking_record
        self.calibrator = (HeadCalibrator(self.calibration_config, self.tracker.geometry)
                           if self.calibration_config.enabled else None)
        self.buffer.clear()
        self.attention.reset()
        self.events_received = 0
        self.last_stamp: float | None = None  # stamp of the last step
        self.visual_head: float | None = None  # newest image stamp received
        self._last_pose = None  # camera pose at the last step (fixed frame)
        self._jumps_seen = self.poses.jumps
        self._visual_ref: float | None = None  # audio head when the image stamps last advanced

    def _restart(self, notice: str, keep: tuple | None = None) -> None:
        """A new tracker after a clock jump; ``keep`` = (lo, hi): the buffered audio of the
        new timeline to keep."""
        got = self.buffer.release(kinds=(AUDIO,))
        audio, profile, activity = got.audio, got.audio_profile, got.audio_activity
        self._new_tracker()
        self.resets += 1
        self.notices.append(notice)
        if keep is not None and len(audio[0]):
            sel = (audio[0] >= keep[0]) & (audio[0] <= keep[1])
            if sel.any():
                self.buffer.add_audio(*(a[sel] for a in audio),
                                      profile=None if profile is None else profile[sel],
                                      activity=None if activity is None else activity[sel])

    def record_speaking(self):
        """From now on record every track's speaking filter per audio frame (also across
        restarts) for offline smoothing; returns the
        :class:`~av_perception.core.tracking.smoothing.SpeakingRecord`."""
        from ..core.tracking.smoothing import SpeakingRecord

        c = self.tracker.config
        self.speaking_record = SpeakingRecord(c.speaking_entry, c.speaking_exit)
        self.tracker.speaking_record = self.speaking_record
        return self.speaking_record

    def pop_notices(self) -> list:
        """The messages of the restarts and of /tf since the last call (oldest first)."""
        with self.lock:
            out = list(self.notices)
            self.notices.clear()
        return out + self.poses.pop_notices()

    # ------------------------------------------------------------ head motion
    def add_transform(self, parent: str, child: str, stamp: float, translation, quat,
                      static: bool = False) -> None:
        """One transform of /tf (/tf_static when ``static``): ``child`` in ``parent`` at
        ``stamp`` (s), quaternion (x, y, z, w)."""
        self.poses.add(parent, child, stamp, translation, quat, static)

    def set_camera_frame(self, frame_id: str) -> None:
        """The left image's frame_id (the camera frame the observations are in)."""
        if frame_id:
            self.poses.camera_frame = frame_id.strip("/")

    @property
    def in_fixed_frame(self) -> bool:
        """True once the tracker works in tracking.fixed_frame."""
        return self.tracker.pose_source is not None

    @property
    def output_frame(self) -> str:
        """frame_id of the outputs: the fixed frame, or '' (the camera's own)."""
        return self.poses.fixed_frame if self.in_fixed_frame else ""

    def to_camera(self, out):
        """A TrackerOutput in the left camera frame (unchanged in the camera frame)."""
        if out is None or not self.in_fixed_frame:
            return out
        import dataclasses

        pose = self.poses.camera_pose(out.stamp)
        if pose is None:
            return out
        inv = pose.inverse()
        position = inv.apply(out.position)
        # velocity relative to the camera: the tracks' own and the head's turning
        dt = 0.05
        later = self.poses.camera_pose(out.stamp + dt) or pose
        moved = later.inverse().apply(out.position + dt * out.velocity)
        return dataclasses.replace(
            out, position=position, velocity=(moved - position) / dt,
            covariance=inv.rotate_covariance(out.covariance))

    def _follow_head(self, stamp: float) -> None:
        """Before a step: start tracking in the fixed frame once the camera pose is
        known (the tracks are moved into it); after a /tf jump move the tracks with it."""
        if not self.poses.enabled:
            return
        pose = self.poses.camera_pose(stamp)
        if pose is None:
            return
        tracker = self.tracker
        if tracker.pose_source is None:
            tracker.transform_tracks(pose)
            tracker.set_pose_source(self.poses.camera_pose, self.poses.camera_poses)
            self.notices.append(f"camera pose in {self.poses.fixed_frame} available: "
                                f"tracking in {self.poses.fixed_frame} from {stamp:.3f} s")
        elif self.poses.jumps != self._jumps_seen and self._last_pose is not None:
            # the fixed frame jumped: keep the tracks where they are relative to the camera
            move = pose @ self._last_pose.inverse()
            tracker.transform_tracks(move)
            self.notices.append(
                f"/tf jumped ({self.poses.tree.last_jump}): the tracks were moved with it by "
                f"{float(np.linalg.norm(move.t)):.2f} m / "
                f"{math.degrees(move.angle_to(type(move).identity())):.0f} deg "
                "(they keep their place relative to the camera)")
        self._jumps_seen = self.poses.jumps
        self._last_pose = pose

    def _see_image(self, stamp: float) -> None:
        if self.visual_head is None or stamp > self.visual_head:
            self.visual_head = stamp
            self._visual_ref = self.buffer.head[AUDIO]
        else:
            self.repeated_visual += 1

    @property
    def camera_frozen_for(self) -> float:
        """Seconds of audio received since the image stamps last advanced (0 before the
        first image or without audio)."""
        head = self.buffer.head[AUDIO]
        if self.visual_head is None or head is None:
            return 0.0
        ref = self.visual_head if self._visual_ref is None else self._visual_ref
        return max(head - ref, 0.0)

    @property
    def camera_frozen(self) -> bool:
        return self.camera_frozen_for > self.tracking.camera_timeout

    @property
    def av_offset(self) -> float:
        """Newest audio stamp minus newest image stamp (s; nan until both arrived)."""
        head = self.buffer.head[AUDIO]
        if self.visual_head is None or head is None:
            return math.nan
        return head - self.visual_head

    def _attend(self, out) -> None:
        """The attention target of one output (``out.attention``; None when disabled)."""
        if self.attention_config.enabled:
            self.attention.config = self.attention_config
            out.attention = self.attention.update_output(out, self._itd_model(out.stamp))
        elif self.attention.last_stamp > -math.inf:  # switched off: start afresh when on
            self.attention.reset()

    def _itd_model(self, stamp: float):
        """points (N, 3) in the outputs' frame -> their ITDs (s) at the head's pose at
        ``stamp`` (the tracker's head model): how the attention tells apart unseen
        tracks."""
        geometry = self.tracker.geometry
        pose = self.poses.camera_pose(stamp) if self.in_fixed_frame else None
        if pose is None:
            return lambda points: np.ravel(geometry.itd(np.atleast_2d(points)))
        return lambda points: np.ravel(geometry.itd(pose.apply_inverse(np.atleast_2d(points))))

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

    def add_audio(self, stamps, itds, weights, profile=None, activity=None) -> int:
        """Buffer audio frames (stamp s, ITD s, weight = activity x reliability, and
        optionally their ITD profiles (n, N) and activity (n,)); returns the number
        buffered.  Raises
        InputError (nothing buffered) for non-finite stamps or mismatched sizes."""
        w = np.nan_to_num(np.atleast_1d(np.asarray(weights, dtype=float)), nan=0.0)
        inf = np.isinf(np.asarray(itds, dtype=float))
        if inf.any():  # NaN marks a frame without ITD; an infinite one is broken input
            raise InputError(
                f"audio frames with infinite ITDs ({int(inf.sum())} of {inf.size}): the audio "
                "input is broken; the message was dropped, later valid messages are used")
        with self.lock:
            self.buffer.max_age = self.tracking.max_audio_buffer
            head = self.buffer.head[AUDIO]
            t = np.asarray(stamps, dtype=np.float64).reshape(-1)
            jump = self.tracking.time_jump_reset
            if (head is not None and len(t) and np.isfinite(t).all()
                    and t.max() < head - jump):
                # the audio jumped back (bag looped, clock reset): the old timeline's audio
                # goes, the new one is not taken for stale (the images restart the tracker)
                self.buffer.drop_audio_after(t.max() + jump)
                self.audio_resets += 1
            elif (head is not None and len(t) and np.isfinite(t).all()
                    and t.min() > head + self.tracking.time_jump_forward
                    and self._visual_ref is not None):
                # the audio jumped forward (a clock step): not a frozen camera
                self._visual_ref = float(t.min())
            return self.buffer.add_audio(stamps, itds, np.clip(w, 0.0, None),
                                         profile=profile, activity=activity)

    def add_audio_features(self, features) -> int:
        """Buffer :class:`~av_perception.core.audio.BinauralFeatures` or a
        ``cloud_to_features`` dict."""
        return self.add_audio(*audio_frames_of(features), profile=audio_profile_of(features),
                              activity=audio_activity_of(features))

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

    def step(self, stamp: float, xyz, covariance, weight=None, frame_id: str = "",
             lip_llr=None):
        """Advance the tracker to an image: the buffered audio up to ``stamp``, then its
        visual observations (xyz (M, 3), covariance (M, 3, 3), weight (M,), lip_llr (M,)
        the visual speaking evidence of each, None = unknown).

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
            tc = self.tracking
            head = self.visual_head
            if head is not None and stamp < head - tc.time_jump_reset:
                self._restart(f"stamps jumped back by {head - stamp:.1f} s (image stamp "
                              f"{stamp:.3f} after {head:.3f}): bag looped or clock reset; "
                              "state reset (tracks restart)",
                              keep=(stamp - tc.max_audio_buffer, stamp + tc.time_jump_reset))
            elif head is not None and stamp > head + tc.time_jump_forward:
                self._restart(f"stamps jumped forward by {stamp - head:.1f} s (image stamp "
                              f"{stamp:.3f} after {head:.3f}; more than tracking."
                              f"time_jump_forward = {tc.time_jump_forward:g} s): a clock step "
                              "or a gap in the input; state reset (tracks restart)",
                              keep=(stamp - tc.max_audio_buffer, math.inf))
            self._see_image(stamp)
            if self.last_stamp is not None and stamp <= self.last_stamp:
                self.late_visual += 1
                return None
            self.set_camera_frame(frame_id)
            self._follow_head(stamp)
            # the audio (the tracker keeps frames later than the image for the next step;
            # audio more than max_audio_buffer ahead of the image waits in the buffer, so
            # that audio drifting ahead cannot pile up), the events up to the image
            got = self.buffer.release(stamp + tc.max_audio_buffer, kinds=(AUDIO,))
            audio = got.audio
            frames = (AudioFrames(*audio, got.audio_profile, got.audio_activity)
                      if len(audio[0]) else None)
            xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
            cov = np.asarray(covariance, dtype=float).reshape(-1, 3, 3)
            w = np.ones(len(xyz)) if weight is None else np.asarray(weight, dtype=float)
            visual = SimpleNamespace(xyz=xyz, covariance=cov, weight=w, lip_llr=lip_llr)
            ready = self.buffer.release(stamp, kinds=(EVENTS,)).events
            events = ready[-1][1] if ready else None  # the newest window covers the others
            out = self.tracker.step(stamp, visual=visual, audio=frames, events=events)
            if self.calibrator is not None:
                calibrate_step(self.calibrator, self.tracker, out, frames,
                               self._args[1].calibration_file)
            self._attend(out)
            self.last_stamp = stamp
            self.steps += 1
            dt = time.perf_counter() - t0
            self.processing_time += dt
            self.last_processing_time = dt
        return out

    def step_audio_only(self):
        """While the camera is frozen (:attr:`camera_frozen`): advance the tracker from the
        buffered audio alone to the newest audio stamp, at most every
        :data:`AUDIO_ONLY_PERIOD` s; returns the TrackerOutput, or None (camera not frozen,
        too soon)."""
        from ..core.tracking import AudioFrames

        t0 = time.perf_counter()
        with self.lock:
            if not self.camera_frozen:
                return None
            stamp = float(self.buffer.head[AUDIO])
            # (0.9: the newest audio stamp advances in whole hops, e.g. 0.096 s for 0.1 s)
            if self.last_stamp is not None and stamp < self.last_stamp + 0.9 * AUDIO_ONLY_PERIOD:
                return None
            # /tf as at an image: into the fixed frame once the pose is known, the tracks
            # moved with a jump of the fixed frame
            self._follow_head(stamp)
            got = self.buffer.release(stamp, kinds=(AUDIO,))
            audio = got.audio
            frames = (AudioFrames(*audio, got.audio_profile, got.audio_activity)
                      if len(audio[0]) else None)
            ready = self.buffer.release(stamp, kinds=(EVENTS,)).events
            events = ready[-1][1] if ready else None
            out = self.tracker.step(stamp, audio=frames, events=events)
            self._attend(out)
            self.last_stamp = stamp
            self.audio_only_steps += 1
            dt = time.perf_counter() - t0
            self.processing_time += dt
            self.last_processing_time = dt
        return out
