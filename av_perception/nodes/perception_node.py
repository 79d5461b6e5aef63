"""perception_node: every stage in one process (lowest latency).

Audio capture (sounddevice, or ``capture.input_file`` played in real time) and the
binaural front-end exactly as :mod:`~av_perception.nodes.audio_features_node` (the same
:class:`~.audio_stage.AudioStage`), the stereo images + CameraInfo, paired by stamp
and processed by the visual front-end on a worker thread as in
:mod:`~av_perception.nodes.visual_features_node`, and the tracker fed in time order
as in :mod:`~av_perception.nodes.tracker_node`, without any message between the
stages.  Same parameters as the three nodes (the union of their sections) and the
same output topics:

* ``audio/features``, ``audio/direction`` (audio stage),
* ``visual/observations`` (visual stage),
* ``av_events`` (fusion stage: the weighted-data EM windows of av_fusion_node, run
  after each image's outputs are published; their unexplained clusters start tracks
  with ``tracking.use_av_events``),
* ``speakers``, ``speakers/markers``, ``speakers/image`` and, with
  ``tracking.publish_voices``, ``/humans/voices/<id>/is_speaking`` (tracking stage),
* ``/diagnostics``: one status per stage ("perception_node audio", "... vision",
  "... tracking"), each on its own period.

After an image pair is processed the worker waits (at most ``tracking.audio_wait`` s,
and only while audio flows) for the audio frames up to the image stamp, then steps
the tracker: the tracker sees the same input in the same order as
``av-perception process`` does over a recording.
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from ..core.av_clustering import AVClusteringConfig
from ..core.config import (
    AudioCaptureConfig,
    AudioFrontEndConfig,
    AudioOutputConfig,
    MicArrayConfig,
    StereoCameraConfig,
)
from ..core.detection import DetectionConfig, DetectorError
from ..core.head_calibration import HeadCalibrationConfig
from ..core.stereo import CalibrationError, StereoCalibration
from ..core.tracker import TrackerConfig, TrackerInputError
from ..core.vision import VisionConfig, VisionInputError
from ..core.wdem import WdemConfig
from ..io.image_msgs import ImageConversionError, stereo_pair_to_numpy
from ..io.stereo_sources import ApproximateTimeSync, CalibrationCache, VisionInputConfig
from ..pipeline import (
    FusionInputConfig,
    FusionInputError,
    FusionPipeline,
    InputError,
    TrackingConfig,
    TrackingPipeline,
    VisionPipeline,
)
from .audio_stage import AudioStage
from .common import (
    Diagnostics,
    NewestPairsWorker,
    RateMeter,
    configs_from_node,
    declare_stage_parameters,
    run_node,
    subscribe_stereo,
    validate_parameter_change,
)
from .conversions import events_to_cloud, observations_to_cloud, sec_to_time, time_to_sec
from .tracker_node import AUDIO_IDLE, TrackingOutputs

STAGES = (AudioFrontEndConfig, MicArrayConfig, AudioCaptureConfig, AudioOutputConfig,
          VisionInputConfig, VisionConfig, DetectionConfig, StereoCameraConfig,
          TrackerConfig, TrackingConfig, AVClusteringConfig, WdemConfig, HeadCalibrationConfig)
SIDES = ("left", "right")
_SUBSCRIPTION_FIELDS = ("compressed", "left_image_topic", "right_image_topic", "left_info_topic",
                        "right_info_topic", "queue_size", "reliability")


class PerceptionNode(Node):
    def __init__(self, **kwargs):
        self._lock = threading.Lock()  # vision/tracking configs, pipelines, counters
        self._fusion_lock = threading.Lock()  # audio thread and vision worker feed it
        self._process_lock = threading.Lock()  # one pair at a time through the stages
        self._next_vision = None
        self.outputs = None
        self._worker = None
        super().__init__("perception_node", **kwargs)
        declare_stage_parameters(self, STAGES)
        configs = configs_from_node(self, STAGES)  # ConfigError stops the node at start
        self._apply(configs)
        self.audio_stage = AudioStage(self, configs, "av_perception: perception_node audio",
                                      on_features=self._on_audio_features)
        self.add_on_set_parameters_callback(self._on_parameters)
        self.pub_observations = self.create_publisher(PointCloud2, "visual/observations", 10)
        self.pub_events = self.create_publisher(PointCloud2, "av_events", 10)
        self.outputs = TrackingOutputs(self, self.tracking)
        self.vision_diag = Diagnostics(self, "av_perception: perception_node vision")
        self.tracking_diag = Diagnostics(self, "av_perception: perception_node tracking")
        self.vrates = {k: RateMeter() for k in ("left", "right", "pairs", "frames")}
        self.infos: list = [None, None]
        self.pairs_dropped_busy = 0
        self.frames_rejected = 0
        self.frames_published = 0
        self.tracker_rejected = 0
        self.last_error = ""
        self.audio_waits = 0  # steps that waited for audio ...
        self.audio_wait_timeouts = 0  # ... and those that gave up
        self._last_audio_arrival = -1e9
        self._input_subs: list = []
        self._subscribe()
        self.vision_pipeline.warm_up()
        self.fusion_pipeline.warm_up()
        self._worker = NewestPairsWorker(
            lambda pair: self.process_pair(*pair), self._internal_error,
            lambda: self.input.max_pending_pairs, "perception_vision", self._lock)
        self.vision_timer = self.create_timer(self.input.diagnostics_period,
                                              self._publish_vision_diag)
        self.tracking_timer = self.create_timer(self.tracking.diagnostics_period,
                                                self._publish_tracking_diag)
        self.get_logger().info(
            f"perception ready: audio from "
            f"{self.audio_stage.capture.input_file or 'the sound card'}, "
            f"{'CompressedImage' if self.input.compressed else 'Image'} on "
            f"{self.sub_image[0].topic_name} + {self.sub_image[1].topic_name}, detector "
            f"{self.detection.detector}")

    # ---------------------------------------------------------------- config
    @staticmethod
    def _make_vision(configs) -> VisionPipeline:
        return VisionPipeline(configs[VisionConfig], configs[DetectionConfig],
                              configs[StereoCameraConfig], live=True)

    def _apply(self, configs):
        """The vision, fusion and tracking stages' configs (the audio stage has its own)."""
        vision = self._next_vision or self._make_vision(configs)  # DetectorError at start
        self._next_vision = None
        fusion_args = (configs[AVClusteringConfig], configs[WdemConfig], configs[MicArrayConfig],
                       FusionInputConfig(frame_id=configs[StereoCameraConfig].frame_id))
        with self._fusion_lock:
            if getattr(self, "fusion_pipeline", None) is None:
                self.fusion_pipeline = FusionPipeline(*fusion_args)
            else:
                self.fusion_pipeline.configure(*fusion_args)
        with self._lock:
            old_input = getattr(self, "input", None)
            old_tracker = (getattr(self, "tracker_args", None),
                           getattr(self, "head_calibration", None))
            self.input = new = configs[VisionInputConfig]
            self.vision = configs[VisionConfig]
            self.detection = configs[DetectionConfig]
            self.camera = configs[StereoCameraConfig]
            self.tracking = configs[TrackingConfig]
            self.tracker_args = (configs[TrackerConfig], configs[MicArrayConfig], self.camera)
            if getattr(self, "vision_pipeline", None) is not None:
                self.vision_pipeline.close()  # its detection worker
            self.head_calibration = configs[HeadCalibrationConfig]
            self.vision_pipeline = vision
            self.camera_calibration = StereoCalibration.from_config(self.camera)
            if old_input is None or old_input.images_rectified != new.images_rectified:
                self.calibration_cache = CalibrationCache(new.rectified_flag)
            if old_input is None or (old_input.slop, old_input.queue_size) != (
                    new.slop, new.queue_size):
                self.sync = ApproximateTimeSync(new.slop, new.queue_size)
            if old_tracker != (self.tracker_args, self.head_calibration):  # new tracker
                self.tracking_pipeline = TrackingPipeline(*self.tracker_args, self.tracking,
                                                          self.head_calibration,
                                                          configs[AudioFrontEndConfig])
            else:
                self.tracking_pipeline.tracking = self.tracking
            if self.outputs is not None:
                self.outputs.configure(self.tracking)

    def _on_parameters(self, params):
        result, configs = validate_parameter_change(self, STAGES, params)
        if not result.successful:
            return result
        try:
            vision = self._make_vision(configs)
            vision.warm_up()
        except DetectorError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        old_input, old_tracking = self.input, self.tracking
        self._next_vision = vision
        self.audio_stage.configure(configs)
        self._apply(configs)
        new = self.input
        if any(getattr(old_input, f) != getattr(new, f) for f in _SUBSCRIPTION_FIELDS):
            self._subscribe()
        if old_input.diagnostics_period != new.diagnostics_period:
            self.destroy_timer(self.vision_timer)
            self.vision_timer = self.create_timer(new.diagnostics_period,
                                                  self._publish_vision_diag)
        if old_tracking.diagnostics_period != self.tracking.diagnostics_period:
            self.destroy_timer(self.tracking_timer)
            self.tracking_timer = self.create_timer(self.tracking.diagnostics_period,
                                                    self._publish_tracking_diag)
        return result

    def _subscribe(self):
        for sub in self._input_subs:
            self.destroy_subscription(sub)
        self.sub_image, self.sub_info = subscribe_stereo(self, self.input, self._on_image,
                                                         self._on_info)
        self._input_subs = self.sub_image + self.sub_info
        self.infos = [None, None]

    # ------------------------------------------------------------ audio stage
    def _on_audio_features(self, feats):
        """The audio stage's features, to the tracking and fusion stages."""
        if not len(feats):
            return
        try:
            self.tracking_pipeline.add_audio_features(feats)
        except InputError as exc:
            self._problem(self.tracking_diag, 2, f"audio frames not tracked: {exc}")
        self._last_audio_arrival = time.monotonic()
        with self._fusion_lock:
            try:
                self.fusion_pipeline.add_audio_features(feats)
            except FusionInputError as exc:
                self._problem(self.audio_stage.diag, 1, f"audio frames not fused: {exc}")

    def process_chunk(self, chunk):
        return self.audio_stage.process_chunk(chunk)

    # ----------------------------------------------------------- vision stage
    def _on_info(self, side: int, msg):
        self.infos[side] = msg

    def _on_image(self, side: int, msg):
        self.vrates[SIDES[side]].add()
        pairs = self.sync.add(side, time_to_sec(msg.header.stamp), msg)
        if not pairs:
            return
        self.vrates["pairs"].add(len(pairs))
        dropped = self._worker.put([(left, right) for _, left, right in pairs])
        if dropped:
            with self._lock:
                self.pairs_dropped_busy += dropped

    def _internal_error(self, exc):
        self.get_logger().error(f"internal error while processing a pair: {exc!r}")
        self._problem(self.vision_diag, 2, "internal error while processing an image "
                      f"pair: {exc!r} (please report it with the input that caused it)")

    def _problem(self, diag, level: int, message: str):
        with self._lock:
            if level >= 2:
                diag.error(message)
            else:
                diag.warn(message)
            self.last_error = message

    def _calibration(self, image_size):
        if not self.input.use_camera_info:
            return self.camera_calibration
        for k, info in enumerate(self.infos):
            if info is None:
                raise CalibrationError(
                    f"no camera_info received on {self.sub_info[k].topic_name} (the "
                    f"{SIDES[k]} camera): publish the stereo pair's CameraInfo there, or set "
                    "vision_input.use_camera_info to false to use the camera.* parameters")
        return self.calibration_cache.get(self.infos[0], self.infos[1], image_size)

    def _wait_for_audio(self, stamp: float, pipeline: TrackingPipeline):
        """Wait until the audio up to ``stamp`` is in (at most tracking.audio_wait s)."""
        if pipeline.audio_ready(stamp) or (
                time.monotonic() - self._last_audio_arrival > AUDIO_IDLE):
            return
        self.audio_waits += 1
        deadline = time.monotonic() + self.tracking.audio_wait
        while not pipeline.audio_ready(stamp):
            if time.monotonic() >= deadline or (self._worker and self._worker.stopped):
                self.audio_wait_timeouts += 1
                return
            time.sleep(0.001)

    def process_pair(self, left_msg, right_msg):
        """Process one synchronised image pair through vision and the tracker and publish
        everything; returns the TrackerOutput (None when the pair was dropped)."""
        stamp = time_to_sec(left_msg.header.stamp)
        with self._process_lock:
            with self._lock:
                vision, tracking = self.vision_pipeline, self.tracking_pipeline
            try:
                left, right = stereo_pair_to_numpy(left_msg, right_msg)
                cal = self._calibration((left.shape[1], left.shape[0]))
                obs = vision.process_pair(left, right, stamp, cal)
            except (ImageConversionError, CalibrationError, VisionInputError) as exc:
                with self._lock:
                    self.frames_rejected += 1
                self._problem(self.vision_diag, 2, f"image pair at {stamp:.3f} s dropped: {exc}")
                return None
            header = Header(stamp=left_msg.header.stamp,
                            frame_id=left_msg.header.frame_id or self.camera.frame_id)
            self.pub_observations.publish(observations_to_cloud(header, obs))
            with self._lock:
                self.frames_published += 1
                self.vrates["frames"].add()
            self._wait_for_audio(stamp, tracking)
            try:
                out = tracking.step(stamp, obs.xyz, obs.covariance, obs.weight)
            except TrackerInputError as exc:
                with self._lock:
                    self.tracker_rejected += 1
                self._problem(self.tracking_diag, 2,
                              f"observations at {stamp:.3f} s not tracked: {exc}")
                return None
            if out is None:
                return None
            self.outputs.publish(out, header)
            if self.tracking.publish_image:
                self.outputs.publish_image(left, header, out, vision.calibration)
            self._fuse(stamp, obs, header.frame_id, tracking)  # after publishing: no latency
            return out

    def _fuse(self, stamp: float, obs, frame_id: str, tracking: TrackingPipeline):
        """The fusion stage: cluster the windows completed by this image, publish them on
        av_events and, with tracking.use_av_events, hand the newest to the tracker."""
        with self._fusion_lock:
            fusion = self.fusion_pipeline
            try:
                fusion.add_visual(stamp, obs.xyz, obs.weight, obs.variances, frame_id)
                windows = fusion.process()
            except (FusionInputError, ValueError, np.linalg.LinAlgError) as exc:
                self._problem(self.tracking_diag, 1, f"fusion window at {stamp:.3f} s "
                              f"failed: {exc}")
                return
        for w in windows:
            self.pub_events.publish(events_to_cloud(
                Header(stamp=sec_to_time(w.stamp), frame_id=w.frame_id), w.events))
        if windows and self.tracking.use_av_events:
            tracking.add_events(windows[-1].stamp, windows[-1].events)

    # ----------------------------------------------------------- diagnostics
    def _calibration_text(self) -> str:
        if not self.input.use_camera_info:
            cal, src = self.camera_calibration, "camera.* parameters"
        else:
            cal, src = self.calibration_cache.calibration, "camera_info"
            missing = [SIDES[k] for k in (0, 1) if self.infos[k] is None]
            if missing:
                return f"missing ({' and '.join(missing)} camera_info not received)"
            if cal is None:
                return "camera_info received, not usable (see last_error)"
        return f"{cal.width}x{cal.height}, fx {cal.fx:.1f} px, baseline {cal.baseline:.4f} m " \
               f"({src})"

    def _publish_vision_diag(self):
        with self._lock:
            counts = (self.vrates["left"].count, self.vrates["right"].count)
            vp = self.vision_pipeline
            values = {
                "input_rate_left_hz": self.vrates["left"].rate(),
                "input_rate_right_hz": self.vrates["right"].rate(),
                "pair_rate_hz": self.vrates["pairs"].rate(),
                "processed_rate_hz": self.vrates["frames"].rate(),
                "sync_failures": self.sync.failures,
                "pairs_dropped_busy": self.pairs_dropped_busy,
                "frames_published": self.frames_published,
                "frames_rejected": self.frames_rejected,
                "processing_ms_per_frame": 1000.0 * vp.last_processing_time,
                "calibration": self._calibration_text(),
                "last_error": self.last_error or "none",
            }
            if counts[0] == 0 or counts[1] == 0:
                silent = " and ".join(s.topic_name for s, n in zip(self.sub_image, counts)
                                      if n == 0)
                self.vision_diag.warn(
                    f"no images received on {silent}: check the camera driver, the topic "
                    "names (vision_input.*_image_topic or remapping) and vision_input.compressed")
            self.vision_diag.hardware_id = self.sub_image[0].topic_name
            self.vision_diag.publish(values)

    def _publish_tracking_diag(self):
        with self._lock:
            tp = self.tracking_pipeline
            s = tp.tracker.stats
            values = self.outputs.period_values()
            values.update({
                "late_visual_dropped": tp.late_visual + s["late_visual"],
                "late_audio_dropped": s["late_audio"],
                "audio_overflow": tp.audio_overflow,
                "audio_buffered": tp.buffered_audio,
                "audio_waits": self.audio_waits,
                "audio_wait_timeouts": self.audio_wait_timeouts,
                "tracker_rejected": self.tracker_rejected,
                "tracker_resets": tp.resets,
                "tracker_ms_per_step": 1000.0 * tp.last_processing_time,
                "live_tracks": tp.tracker.num_tracks,
                "fusion_windows": self.fusion_pipeline.windows,
                "fusion_ms_per_window": 1000.0 * self.fusion_pipeline.processing_time
                / max(self.fusion_pipeline.windows, 1),
                "births_from_events": s["births_events"] + s["births_events_audio"],
            })
            self.tracking_diag.publish(values)

    def destroy_node(self):
        self.audio_stage.close()
        if self._worker is not None:
            self._worker.stop()
        self.vision_pipeline.close()
        if self.outputs is not None:
            self.outputs.close()
        return super().destroy_node()


def main(args=None):
    return run_node(PerceptionNode, "perception_node", (DetectorError,), args)


if __name__ == "__main__":
    sys.exit(main())
