"""The vision stage on a node (visual_features_node, perception_node): the stereo
images and CameraInfo paired by stamp, the vision pipeline on a worker thread,
``visual/observations`` and one diagnostics status.

The detector also looks around the tracks' predicted heads
(:meth:`~av_perception.pipeline.VisionPipeline.update_tracks`): perception_node hands
each tracker output over in-process; visual_features_node, which has no tracker,
subscribes to the tracker's ``speakers`` cloud (``vision_input.tracks_topic``; positions
only, velocities from the track's two newest positions), so its regions lag by the
tracker's latency."""
from __future__ import annotations

import threading

from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from ..core.body_cue import BodyCueConfig
from ..core.config import StereoCameraConfig
from ..core.detection import DetectionConfig
from ..core.lip_activity import LipConfig
from ..core.stereo import CalibrationError, StereoCalibration
from ..core.vision import VisionConfig, VisionInputError
from ..io.image_msgs import ImageConversionError, stereo_pair_to_numpy
from ..io.stereo_sources import ApproximateTimeSync, CalibrationCache, VisionInputConfig
from ..io.stereo_sources.sync import JUMP_BACK
from ..pipeline import VisionPipeline
from .common import Diagnostics, NewestPairsWorker, RateMeter, subscribe_stereo
from .conversions import cloud_to_tracks, observations_to_cloud, time_to_sec
from .tf_input import TF_MISSING, subscribe_tf

__all__ = ["SIDES", "STAGES", "VisionStage"]

STAGES = (VisionInputConfig, VisionConfig, DetectionConfig, LipConfig, BodyCueConfig,
          StereoCameraConfig)
SIDES = ("left", "right")
# fields of vision_input whose change needs new subscriptions / a new synchroniser
_SUBSCRIPTION_FIELDS = ("compressed", "left_image_topic", "right_image_topic", "left_info_topic",
                        "right_info_topic", "queue_size", "reliability")


class VisionStage:
    """Stereo images + CameraInfo -> :class:`~av_perception.pipeline.VisionPipeline` (on
    a worker thread) -> ``visual/observations`` on ``node``, with one /diagnostics status
    named ``diag_name``.

    ``on_observations(obs, header, left_image, calibration)`` (optional) runs on the
    worker thread after each pair's observations are published (perception_node steps
    its tracker there, and hands its output back with :meth:`update_tracks`).

    ``subscribe_tracks`` (visual_features_node): take the tracks from
    ``vision_input.tracks_topic`` instead.
    """

    CONFIGS = STAGES

    def __init__(self, node, configs: dict, diag_name: str, on_observations=None,
                 thread_name: str = "visual_features", subscribe_tracks: bool = False):
        self.node = node
        self.on_observations = on_observations
        self.subscribe_tracks = subscribe_tracks
        self.sub_tracks = None
        self.tracks_received = 0
        self.tracks_ignored = 0  # speakers clouds in another frame than the observations
        self.output_frame_id = ""  # frame_id of the last observations published
        self._lock = threading.Lock()  # configs, pipeline swap, counters, diagnostics
        self._process_lock = threading.Lock()  # one pair at a time through the pipeline
        self._apply(configs, self.make_pipeline(configs))  # DetectorError stops the node too
        self.pub = node.create_publisher(PointCloud2, "visual/observations", 10)
        self.diag = Diagnostics(node, diag_name)
        self.rates = {k: RateMeter() for k in ("left", "right", "pairs", "frames")}
        self.infos: list = [None, None]
        self.infos_received = [0, 0]
        self.frames_published = 0
        self.frames_rejected = 0
        self.pairs_dropped_busy = 0
        self.last_error = ""
        self._period = {"observations": 0, "frames": 0, "processing": 0.0, "dropped": 0,
                        "unpaired": (0, 0), "regions": 0}
        self._input_subs = []
        self.poses = None  # HeadPoses from /tf (vision_input.fixed_frame)
        self.poses_source = None  # () -> HeadPoses of the same process (perception_node)
        self._tf_subs: list = []
        self._tf_problem = ""
        self._subscribe()
        self._subscribe_tf()
        self._subscribe_tracks()
        self.pipeline.warm_up()
        self._worker = NewestPairsWorker(
            lambda pair: self.process_pair(*pair), self._internal_error,
            lambda: self.input.max_pending_pairs, thread_name, self._lock)
        self.diag_timer = node.create_timer(self.input.diagnostics_period, self.publish_diagnostics)
        if self.pipeline.lip_warning:  # the node runs on without the lip cue
            node.get_logger().warn(self.pipeline.lip_warning)
        c = self.input
        kind = "CompressedImage" if c.compressed else "Image"
        node.get_logger().info(
            f"visual front-end ready: {kind} on {self.sub_image[0].topic_name} + "
            f"{self.sub_image[1].topic_name}, slop {c.slop} s, detector "
            f"{self.detection.detector}, depth {self.vision.min_depth}-{self.vision.max_depth} m")

    # ---------------------------------------------------------------- config
    @staticmethod
    def make_pipeline(configs) -> VisionPipeline:
        """The vision pipeline of ``configs`` (DetectorError when its detector cannot be
        loaded)."""
        return VisionPipeline(configs[VisionConfig], configs[DetectionConfig],
                              configs[StereoCameraConfig], live=True,
                              lips=configs.get(LipConfig), body=configs.get(BodyCueConfig))

    def _apply(self, configs, pipeline):
        with self._lock:
            old = getattr(self, "input", None)
            self.input = new = configs[VisionInputConfig]
            self.vision = configs[VisionConfig]
            self.detection = configs[DetectionConfig]
            self.camera = configs[StereoCameraConfig]
            if getattr(self, "pipeline", None) is not None:
                self.pipeline.close()  # its detection worker; a pair in flight still finishes
            self.pipeline = pipeline
            self.camera_calibration = StereoCalibration.from_config(self.camera)
            if old is None or old.images_rectified != new.images_rectified:
                self.calibration_cache = CalibrationCache(new.rectified_flag)
            if old is None or (old.slop, old.queue_size) != (new.slop, new.queue_size):
                self.sync = ApproximateTimeSync(new.slop, new.queue_size)
                if old is not None:
                    self._period["unpaired"] = (0, 0)
                    self._period["jumps_back"] = 0

    def configure(self, configs: dict, pipeline: VisionPipeline) -> None:
        """New stage configs (validated) with their pipeline (from :meth:`make_pipeline`)."""
        old = self.input
        self._apply(configs, pipeline)
        new = self.input
        if any(getattr(old, f) != getattr(new, f) for f in _SUBSCRIPTION_FIELDS):
            self._subscribe()
        if old.tracks_topic != new.tracks_topic:
            self._subscribe_tracks()
        if old.fixed_frame != new.fixed_frame:
            self._subscribe_tf()
        if old.diagnostics_period != new.diagnostics_period:
            self.node.destroy_timer(self.diag_timer)
            self.diag_timer = self.node.create_timer(new.diagnostics_period,
                                                     self.publish_diagnostics)

    def _subscribe(self):
        for sub in self._input_subs:
            self.node.destroy_subscription(sub)
        self.sub_image, self.sub_info = subscribe_stereo(self.node, self.input, self._on_image,
                                                         self._on_info)
        self._input_subs = self.sub_image + self.sub_info
        self.infos = [None, None]

    def _subscribe_tf(self):
        """/tf and /tf_static while vision_input.fixed_frame is set."""
        frame = self.input.fixed_frame
        if not frame:
            return
        from ..pipeline import HeadPoses, TrackingConfig

        if self.poses is None or self.poses.fixed_frame != frame.strip("/"):
            self.poses = HeadPoses(TrackingConfig(fixed_frame=frame))
        if self._tf_subs:
            return
        try:
            self._tf_subs = subscribe_tf(self.node, self.poses.add)
        except ImportError:
            self._tf_problem = (f"vision_input.fixed_frame is set but {TF_MISSING}: boxes are "
                                "followed between keyframes without the head's turning")

    def _subscribe_tracks(self):
        if self.sub_tracks is not None:
            self.node.destroy_subscription(self.sub_tracks)
            self.sub_tracks = None
        if self.subscribe_tracks and self.input.tracks_topic:
            self.sub_tracks = self.node.create_subscription(
                PointCloud2, self.input.tracks_topic, self._on_tracks, 5)

    def update_tracks(self, output) -> None:
        """A TrackerOutput of the same process (perception_node): the next pairs' detector
        looks around its tracks' predicted heads."""
        self.pipeline.update_tracks(output)

    # ------------------------------------------------------------- callbacks
    def _on_tracks(self, msg):
        """The tracker's ``speakers`` cloud: its heads are the next pairs' regions."""
        try:
            tracks = cloud_to_tracks(msg)
        except ValueError as exc:
            self._problem(1, f"{self.input.tracks_topic} message not usable for the "
                             f"detector's regions: {exc}")
            return
        with self._lock:
            self.tracks_received += 1
            frame = self.output_frame_id
            if tracks["frame_id"] and frame and tracks["frame_id"] != frame:
                self.tracks_ignored += 1
                return
            pipeline = self.pipeline
        pipeline.heads.update(tracks["stamp"], tracks["position"], None, tracks["existence"],
                              tracks["ids"])

    def _on_info(self, side: int, msg):
        self.infos[side] = msg
        self.infos_received[side] += 1

    def _on_image(self, side: int, msg):
        self.rates[SIDES[side]].add()
        stamp = time_to_sec(msg.header.stamp)
        pairs = self.sync.add(side, stamp, msg)
        if not pairs:
            return
        self.rates["pairs"].add(len(pairs))
        dropped = self._worker.put([(left, right) for _, left, right in pairs])
        if dropped:
            with self._lock:
                self.pairs_dropped_busy += dropped
                self._period["dropped"] += dropped

    def _internal_error(self, exc):
        self.node.get_logger().error(f"internal error while processing a pair: {exc!r}")
        self._problem(2, f"internal error while processing an image pair: {exc!r} "
                         "(please report it with the input that caused it)")

    # ------------------------------------------------------------ processing
    def _problem(self, level: int, message: str):
        with self._lock:
            if level >= 2:
                self.diag.error(message)
            else:
                self.diag.warn(message)
            self.last_error = message

    def _calibration(self, image_size):
        """The calibration for this pair (camera_info or camera.*); raises CalibrationError."""
        if not self.input.use_camera_info:
            return self.camera_calibration
        left, right = self.infos
        for k, info in enumerate((left, right)):
            if info is None:
                topic = self.sub_info[k].topic_name
                raise CalibrationError(
                    f"no camera_info received on {topic} (the {SIDES[k]} camera): publish the "
                    "stereo pair's CameraInfo there (set vision_input."
                    f"{SIDES[k]}_info_topic or remap it if your driver uses another name), or "
                    "set vision_input.use_camera_info to false to use the camera.* parameters")
        return self.calibration_cache.get(left, right, image_size)

    def process_pair(self, left_msg, right_msg):
        """Process one synchronised pair of Image/CompressedImage messages and publish its
        observations; returns the VisualObservations, or None when the pair was dropped."""
        stamp = time_to_sec(left_msg.header.stamp)
        with self._process_lock:
            pipeline = self.pipeline
            damaged: list = []
            try:
                left, right = stereo_pair_to_numpy(left_msg, right_msg, damaged)
                if damaged:  # processed all the same: what it shows may still be usable
                    with self._lock:
                        self.diag.count("corrupt_images", len(damaged))
                    self._problem(1, f"image pair at {stamp:.3f} s: {damaged[0]}; processed "
                                  "anyway, its detections may be missing or wrong")
                cal = self._calibration((left.shape[1], left.shape[0]))
                poses = self.poses_source() if self.poses_source else self.poses
                if poses is not None and poses.enabled:  # the head's turning, from /tf
                    poses.camera_frame = (left_msg.header.frame_id
                                          or self.camera.frame_id).strip("/")
                    pose = poses.camera_pose(stamp)
                    pipeline.set_camera_rotation(None if pose is None else pose.R)
                obs = pipeline.process_pair(left, right, stamp, cal)
            except (ImageConversionError, CalibrationError, VisionInputError) as exc:
                with self._lock:
                    self.frames_rejected += 1
                self._problem(2, f"image pair at {stamp:.3f} s dropped: {exc}")
                return None
        header = Header(stamp=left_msg.header.stamp,
                        frame_id=left_msg.header.frame_id or self.camera.frame_id)
        self.pub.publish(observations_to_cloud(header, obs))
        with self._lock:
            self.output_frame_id = header.frame_id
            self._period["regions"] += len(pipeline.last_regions)
            self.frames_published += 1
            self.rates["frames"].add()
            p = self._period
            p["frames"] += 1
            p["observations"] += len(obs)
            p["processing"] += pipeline.last_processing_time
        if self.on_observations is not None:
            self.on_observations(obs, header, left, pipeline.calibration)
        return obs

    # ----------------------------------------------------------- diagnostics
    def _input_problems(self, counts, pair_rate):
        """WARN for missing images, unsynchronised stamps, overload and a too large slop."""
        c = self.input
        topics = [s.topic_name for s in self.sub_image]
        hint = ("check the camera driver, the topic names (vision_input.*_image_topic or "
                "remapping) and vision_input.compressed")
        if counts[0] == 0 and counts[1] == 0:
            self.diag.warn(f"no images received on {topics[0]} and {topics[1]}: {hint}")
        elif counts[0] == 0 or counts[1] == 0:
            k = 0 if counts[0] == 0 else 1
            self.diag.warn(f"no images received on {topics[k]} while {topics[1 - k]} delivers "
                           f"{counts[1 - k]}: the {SIDES[k]} camera is silent ({hint})")
        unpaired = (self.sync.unpaired[0] - self._period["unpaired"][0],
                    self.sync.unpaired[1] - self._period["unpaired"][1])
        if (unpaired[0] or unpaired[1]) and counts[0] and counts[1]:
            off = self.sync.last_unpaired_offset
            seen = f" (nearest stamps {off:.3f} s apart)" if off == off else ""
            self.diag.warn(
                f"{unpaired[0]} left and {unpaired[1]} right images had no partner within "
                f"vision_input.slop = {c.slop} s{seen}: synchronise the cameras (common trigger "
                "or driver time stamps) or raise vision_input.slop below half the frame period")
        jumps = self.sync.jumps_back - self._period.get("jumps_back", 0)
        if jumps:
            self.diag.warn(
                f"image stamps jumped back by more than {JUMP_BACK} s {jumps} time(s) (a bag "
                "restarted, a clock reset, or images stamped far ahead): the waiting images "
                "were dropped and pairing restarted; check the camera drivers' clocks")
        if self._period["dropped"]:
            per = self._period["processing"] / max(self._period["frames"], 1)
            self.diag.warn(
                f"{self._period['dropped']} image pairs dropped: processing ({1000 * per:.0f} ms "
                f"per pair) is slower than the input ({pair_rate:.1f} pairs/s); lower the camera "
                "rate, raise detection.every_k or lower detection.scale")
        if pair_rate > 0 and c.slop > 0 and c.slop >= 0.5 / pair_rate:
            self.diag.warn(
                f"vision_input.slop = {c.slop} s is not below half the frame period "
                f"({0.5 / pair_rate:.3f} s at {pair_rate:.1f} Hz): a left image may be paired "
                "with the wrong right image; lower vision_input.slop")

    def _calibration_text(self) -> str:
        if not self.input.use_camera_info:
            cal = self.camera_calibration
            src = "camera.* parameters"
        else:
            cal = self.calibration_cache.calibration
            missing = [SIDES[k] for k in (0, 1) if self.infos[k] is None]
            if missing:
                return f"missing ({' and '.join(missing)} camera_info not received)"
            if cal is None:
                return "camera_info received, not usable (see last_error)"
            src = "camera_info"
        mode = "raw, rectified by the node" if cal.needs_rectification else "rectified"
        return (f"{cal.width}x{cal.height}, fx {cal.fx:.1f} px, baseline {cal.baseline:.4f} m, "
                f"{mode} ({src})")

    def publish_diagnostics(self):
        with self._lock:
            counts = (self.rates["left"].count, self.rates["right"].count)
            rate_l, rate_r = self.rates["left"].rate(), self.rates["right"].rate()
            pair_rate = self.rates["pairs"].rate()
            p = self._period
            frames = p["frames"]
            self._input_problems(counts, pair_rate)
            fallback = getattr(self.pipeline.front_end.detector, "fallback_reason", None)
            if fallback:  # e.g. BlazeFace's model missing: Haar runs instead
                self.diag.condition("detector", 1, fallback)
            else:
                self.diag.resolve("detector")
            lip_warning = self.pipeline.lip_warning
            if lip_warning:  # the face mesh cannot be loaded: speaking from audio only
                self.diag.condition("lips", 1, lip_warning)
            else:
                self.diag.resolve("lips")
            if self.sub_tracks is not None and self.tracks_ignored:
                self.diag.condition(
                    "tracks_frame", 1,
                    f"{self.tracks_ignored} {self.sub_tracks.topic_name} clouds ignored: their "
                    f"frame_id is not the observations' ({self.output_frame_id!r}); the "
                    "detector does not look around the tracks' heads (leave "
                    "tracking.frame_id empty, or set vision_input.tracks_topic to '')")
            else:
                self.diag.resolve("tracks_frame")
            values = {
                "input_rate_left_hz": rate_l,
                "input_rate_right_hz": rate_r,
                "pair_rate_hz": pair_rate,
                "processed_rate_hz": self.rates["frames"].rate(),
                "sync_failures": self.sync.failures,
                "unpaired_left": self.sync.unpaired[0],
                "unpaired_right": self.sync.unpaired[1],
                "sync_jumps_back": self.sync.jumps_back,
                "pair_stamp_offset_s": self.sync.last_pair_offset,
                "pairs_dropped_busy": self.pairs_dropped_busy,
                "frames_published": self.frames_published,
                "frames_rejected": self.frames_rejected,
                "processing_ms_per_frame": 1000.0 * p["processing"] / frames if frames else 0.0,
                "observations_per_frame": p["observations"] / frames if frames else 0.0,
                "head_regions_per_frame": p["regions"] / frames if frames else 0.0,
                "tracks_received": self.tracks_received,
                "camera_info_received": f"{self.infos_received[0]}/{self.infos_received[1]}",
                "calibration": self._calibration_text(),
                "last_error": self.last_error or "none",
                "detector_fallback": fallback or "none",
                "lip_cue": ("off: " + lip_warning) if lip_warning else (
                    "on" if self.pipeline.front_end.lips is not None else "off"),
            }
            self._period = {"observations": 0, "frames": 0, "processing": 0.0, "dropped": 0,
                            "unpaired": tuple(self.sync.unpaired), "regions": 0,
                            "jumps_back": self.sync.jumps_back}
            self.diag.hardware_id = self.sub_image[0].topic_name
            self.diag.publish(values)

    def close(self):
        self._worker.stop()
        self.pipeline.close()
