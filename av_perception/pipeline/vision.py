"""Visual stage: stereo pairs -> visual observations (detection on a worker thread in
the live nodes)."""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..compile_lock import serialized_compilation
from ..core.body_cue import BodyCueConfig
from ..core.config import StereoCameraConfig
from ..core.detection import DetectionConfig, gray_image
from ..core.lip_activity import LipConfig
from ..core.vision import VisionConfig, VisionInputError, VisualFrontEnd, head_regions

__all__ = ["AsyncDetection", "DETECTION_NICENESS", "PredictedHeads", "TRACK_MAX_AGE",
           "VisionPipeline", "VisionRunResult"]


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


#: tracks older than this (s, image stamp - tracks stamp) give no regions: the tracker
#: stopped publishing, or the input jumped
TRACK_MAX_AGE = 1.0
#: speeds above this (m/s) are not extrapolated (finite differences over a merged or
#: swapped identity)
_MAX_SPEED = 3.0


class PredictedHeads:
    """The tracker's newest tracks, predicted to an image's stamp and projected into its
    left image: the regions the detector looks around (:func:`head_regions`).

    Fed with each tracker output (:meth:`update`: in-process, the TrackerOutput with
    its velocities; from the ``speakers`` topic, positions only -- the velocity is then
    the finite difference of a track's two newest positions).  A track at stamp ``t``
    with velocity ``v`` is predicted to ``p + v (stamp - t)``; tracks older than
    :data:`TRACK_MAX_AGE` s, or newer than the image by more than 0.1 s (the input
    jumped back), give no region.  Most probable tracks first (``existence``).  Thread
    safe: one thread may update while another asks for regions.
    """

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._position = np.zeros((0, 3))
        self._velocity = np.zeros((0, 3))
        self._ids = np.zeros(0, dtype=np.int64)  # -1: unknown
        self._previous: dict = {}  # id -> (stamp, position) for finite differences
        self.updates = 0

    def clear(self) -> None:
        with self._lock:
            self._stamp = None
            self._position = np.zeros((0, 3))
            self._velocity = np.zeros((0, 3))
            self._ids = np.zeros(0, dtype=np.int64)
            self._previous = {}

    def __len__(self) -> int:
        return len(self._position)

    @property
    def stamp(self) -> float | None:
        """Stamp (s) of the newest tracks (None before the first)."""
        return self._stamp

    def update(self, stamp: float, position, velocity=None, existence=None, ids=None) -> None:
        """The tracks at ``stamp`` (s): positions (K, 3) m in the frame of the visual
        observations, velocities (K, 3) m/s (None: from the previous update of the same
        ``ids``, else 0), existence (K,) (order of the regions)."""
        stamp = float(stamp)
        pos = np.asarray(position, dtype=np.float64).reshape(-1, 3)
        k = len(pos)
        ids = None if ids is None else [int(i) for i in np.ravel(ids)]
        with self._lock:
            if velocity is not None:
                vel = np.asarray(velocity, dtype=np.float64).reshape(-1, 3)
            else:
                vel = np.zeros((k, 3))
                for j, tid in enumerate(ids or []):
                    prev = self._previous.get(tid)
                    if prev is not None and 0.0 < stamp - prev[0] <= TRACK_MAX_AGE:
                        v = (pos[j] - prev[1]) / (stamp - prev[0])
                        if np.all(np.isfinite(v)) and np.linalg.norm(v) <= _MAX_SPEED:
                            vel[j] = v
            if ids is not None:
                self._previous = {tid: (stamp, pos[j].copy()) for j, tid in enumerate(ids)}
            id_arr = (np.asarray(ids, dtype=np.int64) if ids is not None and len(ids) == k
                      else np.full(k, -1, dtype=np.int64))
            if existence is not None and k:
                order = np.argsort(-np.asarray(existence, dtype=np.float64).ravel(),
                                   kind="stable")
                pos, vel, id_arr = pos[order], vel[order], id_arr[order]
            self._ids = id_arr
            self._stamp = stamp
            self._position = pos.copy()
            self._velocity = vel.copy()
            self.updates += 1

    def update_output(self, output) -> None:
        """A :class:`~av_perception.core.tracking.TrackerOutput` (positions, velocities,
        existence)."""
        self.update(output.stamp, output.position, output.velocity, output.existence,
                    output.ids)

    def predict(self, stamp: float) -> np.ndarray:
        """Positions (K, 3) predicted to ``stamp``; empty when the tracks are too old or
        newer than ``stamp`` by more than 0.1 s."""
        with self._lock:
            if self._stamp is None or not len(self._position):
                return np.zeros((0, 3))
            dt = float(stamp) - self._stamp
            if not (-0.1 <= dt <= TRACK_MAX_AGE):
                return np.zeros((0, 3))
            return self._position + max(dt, 0.0) * self._velocity

    def tracks(self, stamp: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions (K, 3) predicted to ``stamp`` and the ids (K,) of the tracks that
        have one (the body cue's input; empty as :meth:`predict`)."""
        with self._lock:
            ids = self._ids.copy()
        p = self.predict(stamp)
        if len(p) != len(ids):
            return np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
        known = ids >= 0
        return p[known], ids[known]

    def regions(self, stamp: float, calibration, vision: VisionConfig) -> list:
        """Boxes (x, y, w, h) of the predicted heads in the rectified left image at
        ``stamp`` (most probable track first; heads out of the image dropped)."""
        p = self.predict(stamp)
        if not len(p):
            return []
        boxes = head_regions(p, calibration, vision.face_width, vision.output_frame,
                             vision.depth_offset, vision.min_depth)
        return [tuple(float(v) for v in b) for b in boxes]


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
    A turning head (the camera's rotation, from /tf): when the camera turned by more than
    ``detection.turn_keyframe`` since the last search and no keyframe is due, the worker
    searches only the strip that came into view since then (``detection.turn_edge_search``,
    :meth:`~av_perception.core.detection.DetectionPipeline.detect_strip`, a few ms) and
    the faces found join the held boxes; without the edge search, a full detection.
    Same interface as DetectionPipeline (``detect``, ``reset``, ``roi_pixels``,
    ``stats``); an error of the detectors is raised by the next ``detect``.
    """

    def __init__(self, pipeline):
        import threading

        self.pipeline = pipeline
        self._cv = threading.Condition()
        self._job = None  # (generation, image, grey, regions) waiting for the worker
        self._done = None  # (generation, grey, detections, error) not yet applied
        self._busy = False
        self._stop = False
        self._generation = 0
        self._since = 0
        self._key_rotation = None  # the camera's rotation of the last detection started
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
                (gen, image, grey, regions, rot, strip), self._job = self._job, None
            t0 = time.perf_counter()
            error = None
            try:  # the regions belong to this frame: they were queued with it
                if strip is not None:  # a turn: the strip that came into view (crop, held)
                    dets = self.pipeline.detect_strip(image, *strip)
                else:
                    dets = (self.pipeline.detect_keyframe(image, grey) if regions is None
                            else self.pipeline.detect_keyframe(image, grey, regions))
            except Exception as exc:  # handed to the frame thread, which reports it
                dets, error = [], exc
            with self._cv:
                self.detect_time += time.perf_counter() - t0
                self.detections_run += 1
                self._busy = False
                if gen == self._generation:
                    self._done = (gen, grey, dets, error, rot, strip is not None)
                self._cv.notify_all()

    def detect(self, image: np.ndarray, regions=None) -> list:
        """Boxes of this frame (see the class docstring); ``regions`` (boxes where faces
        are expected in this frame) go to the worker with this frame when it starts a
        detection on it."""
        grey = gray_image(image)
        with self._cv:
            done, self._done = self._done, None
        if done is not None:
            _, key_grey, dets, error, key_rot, entering = done
            if error is not None:
                raise error
            if entering:  # faces of a turn's strip join the held boxes
                self.pipeline.add_entering(key_grey, dets, key_rot)
                out = self.pipeline.track(grey)
            else:
                out = self.pipeline.restart(key_grey, dets, grey, key_rotation=key_rot)
        else:
            out = self.pipeline.track(grey)
        self._since += 1
        with self._cv:
            idle = not self._busy and self._job is None
            turned = self.pipeline.turned(self._key_rotation)
            due = (self._since >= self.pipeline.config.every_k
                   or len(self.pipeline.tracker) == 0)
            if idle and (due or turned):
                strip = None
                if not due:  # a turn between keyframes: its strip, else a turn keyframe
                    crop = self.pipeline.entering_crop(grey.shape[1], grey.shape[0],
                                                       self._key_rotation)
                    strip = None if crop is None else (crop, list(out))
                    self.pipeline.stats["turn_strips" if strip else "turn_keyframes"] += 1
                self._job = (self._generation, image, grey,
                             None if regions is None else list(regions),
                             self.pipeline.tracker.rotation, strip)
                self._busy = True
                if strip is None:
                    self._since = 0
                self._key_rotation = self.pipeline.tracker.rotation
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

    Regions around predicted heads: the caller hands each tracker output to
    :meth:`update_tracks` (``process`` and perception_node after each tracker step,
    visual_features_node from the ``speakers`` topic); every later pair's detector then
    also looks around those tracks' heads predicted to its stamp (BlazeFace only,
    ``detection.max_regions``; ``regions_used`` counts them).

    The lip cue (``lips``, default on with BlazeFace): every face box of every frame gets
    the face mesh and a speaking log-likelihood ratio (``lip_llr``, ``lip_reliability``
    of the observations); ``lip_warning`` says why it is off when the mesh model cannot
    be loaded (the pipeline runs on without it).
    """

    def __init__(self, vision: VisionConfig | None = None,
                 detection: DetectionConfig | None = None, calibration=None,
                 live: bool = False, lips: LipConfig | None = None,
                 body: BodyCueConfig | None = None):
        self.vision_config = vision or VisionConfig()
        self.body_config = body or BodyCueConfig()
        self.detection_config = detection or DetectionConfig()
        self.lip_config = lips or LipConfig()
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
        self.heads = PredictedHeads()
        self.regions_used = 0  # regions handed to the detector, total
        self.last_regions: list = []
        self._rotation = None  # camera rotation of the next pair (set_camera_rotation)

    def _build(self, calibration) -> VisualFrontEnd:
        front_end = VisualFrontEnd(self.vision_config, calibration, self.detection_config,
                                   self.lip_config, body=self.body_config)
        if self.asynchronous_detection:
            front_end.detector = AsyncDetection(front_end.detector)
        return front_end

    def close(self) -> None:
        """Stop the detection worker thread (asynchronous detection)."""
        if isinstance(self.front_end.detector, AsyncDetection):
            self.front_end.detector.close()

    @property
    def lip_warning(self) -> str | None:
        """Why the lip cue is off although ``lips.enabled`` asks for it (None: it is not)."""
        return self.front_end.lip_warning

    @property
    def calibration(self):
        """The :class:`~av_perception.core.stereo.StereoCalibration` in use."""
        return self.front_end.calibration

    def warm_up(self):
        """Compile the numba matching kernel now, so the first real pair is not slow."""
        with serialized_compilation("vision"):
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

    def update_tracks(self, output) -> None:
        """The tracker's output (TrackerOutput, or None: ignored): the next pairs' detector
        also looks around its tracks' predicted heads."""
        if output is not None:
            self.heads.update_output(output)

    def set_camera_rotation(self, rotation) -> None:
        """The camera's rotation (3, 3, camera -> a fixed frame; None: unknown) at the next
        pair (a turning head, from /tf): the boxes followed between detector keyframes are
        searched where the camera's turning since their frame moved them
        (H = K R_next^T R_box K^-1 of the rectified left camera)."""
        self._rotation = None if rotation is None else np.asarray(rotation, dtype=float)

    def _box_tracker(self):
        det = self.front_end.detector
        det = getattr(det, "pipeline", det)  # AsyncDetection
        return getattr(det, "tracker", None)

    def regions(self, stamp: float) -> list:
        """Boxes (x, y, w, h, rectified left image) of the tracks' heads predicted to
        ``stamp`` (empty without tracks or when the detector ignores regions)."""
        if not self._uses_regions:
            return []
        return self.heads.regions(stamp, self.front_end.calibration, self.vision_config)

    @property
    def _uses_regions(self) -> bool:
        from ..core.detection import BlazeFacePass

        det = self.front_end.detector
        det = getattr(det, "pipeline", det)  # AsyncDetection
        return (self.detection_config.max_regions > 0
                and any(isinstance(d, BlazeFacePass) for d in getattr(det, "detectors", ())))

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
        cal = self.front_end.calibration
        tracker = self._box_tracker()
        if tracker is not None and cal is not None:  # the head's turning (rotation)
            tracker.K = np.array([[cal.fx, 0.0, cal.cx], [0.0, cal.fy, cal.cy],
                                  [0.0, 0.0, 1.0]])
            tracker.rotation, self._rotation = self._rotation, None
        t0 = time.perf_counter()
        try:
            try:
                regions = self.regions(float(stamp)) if len(self.heads) else []
            except (TypeError, ValueError):  # the front-end reports the stamp
                regions = []
            self.last_regions = regions
            self.regions_used += len(regions)
            tracks = None
            if len(self.heads):  # the body cue, the candidates' confirmation
                try:
                    tracks = self.heads.tracks(float(stamp))
                except (TypeError, ValueError):  # the front-end reports the stamp
                    tracks = None
            obs = self.front_end.process(left, right, stamp, regions or None, tracks)
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

