"""tracker_node: ``visual/observations`` + ``audio/features`` -> ``speakers``.

Subscribes to the visual observations of the stereo front-end, the audio
features of the binaural front-end and, with ``tracking.use_av_events``, the
``av_events`` of av_fusion_node (their unexplained clusters start tracks),
orders them by stamp (audio arrives faster and is buffered; the tracker steps at
each observation cloud with the audio up to its stamp, as ``av-perception process``
does over a bag -- see :class:`~av_perception.pipeline.TrackingPipeline`) and publishes:

* ``speakers`` (sensor_msgs/PointCloud2, one point per confirmed track: x, y, z,
  speaking, existence, var_x, var_y, var_z float32 and id uint32; header = the
  observations' stamp, frame_id = ``tracking.frame_id`` or the observations'),
* ``speakers/markers`` (visualization_msgs/MarkerArray: a covariance ellipsoid and a
  label per track, coloured by speaking probability; DELETE when a track ends),
* ``speakers/image`` (sensor_msgs/Image bgr8, the left image of the same stamp
  annotated with the tracks; needs ``stereo/left/image_raw``),
* ``<tracking.voices_namespace>/<prefix><id>/is_speaking`` (std_msgs/Bool, ROS4HRI
  style, with ``tracking.publish_voices``),
* ``/diagnostics`` (latency from input stamp to publication p50/p99, tracks, input
  rates, late and dropped input).

The observation cloud carries the diagonal of each position covariance
(var_x, var_y, var_z), so this node tracks with diagonal covariances;
perception_node, which has the full covariances in-process, is slightly more exact.
"""
from __future__ import annotations

import sys
import time
from collections import deque

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Bool, Header
from visualization_msgs.msg import MarkerArray

from ..core.config import ConfigError, MicArrayConfig, StereoCameraConfig
from ..core.head_calibration import HeadCalibrationConfig
from ..core.stereo import StereoCalibration
from ..core.tracker import TrackerConfig, TrackerInputError
from ..io.image_msgs import ImageConversionError, fill_image_msg, message_to_bgr
from ..pipeline import TrackerInputConfig, TrackingConfig, TrackingPipeline
from .common import (
    Diagnostics,
    RateMeter,
    configs_from_node,
    declare_stage_parameters,
    run_node,
    validate_parameter_change,
)
from .conversions import (
    cloud_to_events,
    cloud_to_features,
    cloud_to_observations,
    time_to_sec,
    tracks_to_cloud,
    tracks_to_markers,
)

STAGES = (TrackerConfig, MicArrayConfig, StereoCameraConfig, TrackingConfig, TrackerInputConfig,
          HeadCalibrationConfig)
#: audio counts as flowing when a features message came within this many seconds
AUDIO_IDLE = 1.0


def percentile_ms(values, q: float) -> float:
    return 1000.0 * float(np.percentile(values, q)) if len(values) else float("nan")


class TrackingOutputs:
    """The publishers of the tracking stage (shared by tracker_node and perception_node):
    ``speakers``, ``speakers/markers``, ``speakers/image``, the per-track voices, and the
    latency statistics of the current diagnostics period.  Thread safe for one publishing
    thread at a time."""

    def __init__(self, node: Node, config: TrackingConfig):
        self.node = node
        self.config = config
        self.pub_speakers = node.create_publisher(PointCloud2, "speakers", 10)
        self.pub_markers = node.create_publisher(MarkerArray, "speakers/markers", 10)
        self.pub_image = node.create_publisher(Image, "speakers/image", 5)
        self.voices: dict = {}  # track id -> Bool publisher
        self.shown_ids: set = set()
        self.latencies: list = []  # s, this period
        self.published = 0
        self.images_published = 0
        self.last_tracks = 0
        self.last_speaking = 0

    def configure(self, config: TrackingConfig):
        old = self.config
        self.config = config
        if (not config.publish_voices or config.voices_namespace != old.voices_namespace
                or config.voice_id_prefix != old.voice_id_prefix):
            self._drop_voices(set(self.voices))
        if not config.publish_markers and old.publish_markers and self.shown_ids:
            from visualization_msgs.msg import Marker

            arr = MarkerArray(markers=[Marker(action=Marker.DELETEALL)])
            self.pub_markers.publish(arr)
            self.shown_ids = set()

    def voice_topic(self, track_id: int) -> str:
        c = self.config
        return f"{c.voices_namespace}/{c.voice_id_prefix}{int(track_id)}/is_speaking"

    def _drop_voices(self, ids):
        for tid in ids:
            pub = self.voices.pop(tid, None)
            if pub is not None:
                self.node.destroy_publisher(pub)

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def publish(self, output, header: Header) -> float:
        """Publish one TrackerOutput (header: the input's stamp and frame_id); returns the
        latency (s) from the input stamp to the publication of ``speakers``."""
        c = self.config
        hdr = Header(stamp=header.stamp, frame_id=c.frame_id or header.frame_id)
        self.pub_speakers.publish(tracks_to_cloud(hdr, output))
        latency = self._now() - time_to_sec(header.stamp)
        self.latencies.append(latency)
        self.published += 1
        self.last_tracks = len(output)
        self.last_speaking = int(np.sum(np.asarray(output.speaking) >= c.speaking_threshold))
        if c.publish_markers:
            markers, self.shown_ids = tracks_to_markers(
                hdr, output, self.shown_ids, c.speaking_threshold, c.marker_lifetime)
            if markers.markers:
                self.pub_markers.publish(markers)
        if c.publish_voices:
            ids = [int(i) for i in output.ids]
            self._drop_voices(set(self.voices) - set(ids))
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
            for tid, p in zip(ids, output.speaking):
                pub = self.voices.get(tid)
                if pub is None:
                    pub = self.voices[tid] = self.node.create_publisher(
                        Bool, self.voice_topic(tid), qos)
                pub.publish(Bool(data=bool(p >= c.speaking_threshold)))
        return latency

    def publish_image(self, image_bgr, header: Header, output, calibration) -> None:
        """Publish the image annotated with ``output`` (bgr8, ``header``)."""
        from ..viz import annotate_frame

        img = annotate_frame(image_bgr, output, calibration)
        msg = fill_image_msg(Image(), img, "bgr8")
        msg.header = header
        self.pub_image.publish(msg)
        self.images_published += 1

    def period_values(self) -> dict:
        """Latency and track statistics of the period (then starts a new period)."""
        lat = self.latencies
        self.latencies = []
        return {
            "latency_p50_ms": percentile_ms(lat, 50),
            "latency_p99_ms": percentile_ms(lat, 99),
            "latency_max_ms": 1000.0 * max(lat) if lat else float("nan"),
            "outputs_in_period": len(lat),
            "outputs_published": self.published,
            "images_published": self.images_published,
            "tracks": self.last_tracks,
            "speaking_tracks": self.last_speaking,
            "voices": len(self.voices),
        }

    def close(self):
        self._drop_voices(set(self.voices))


def calibration_from_left_info(info, baseline: float) -> StereoCalibration:
    """A rectified projection from the left CameraInfo's P (enough to draw the tracks)."""
    p = np.asarray(info.p, dtype=float).reshape(3, 4)
    if p[0, 0] <= 0 or p[1, 1] <= 0 or info.width <= 0 or info.height <= 0:
        raise ValueError("the left camera_info has no projection matrix P or no image size")
    return StereoCalibration.from_config(StereoCameraConfig(
        width=int(info.width), height=int(info.height), fx=float(p[0, 0]), fy=float(p[1, 1]),
        cx=float(p[0, 2]), cy=float(p[1, 2]), baseline=baseline))


class TrackerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("tracker_node", **kwargs)
        declare_stage_parameters(self, STAGES)
        configs = configs_from_node(self, STAGES)  # ConfigError stops the node at start
        self._apply(configs, first=True)
        self.outputs = TrackingOutputs(self, self.tracking)
        self.diag = Diagnostics(self, "av_perception: tracker_node")
        self.rates = {k: RateMeter() for k in ("visual", "audio_frames", "images", "events")}
        self._pending: deque = deque()  # (arrival monotonic, observations dict, header)
        self._images: deque = deque()  # (stamp, msg) of the left image
        self._unannotated: deque = deque(maxlen=10)  # (output, header) waiting for an image
        self._last_audio_arrival = -1e9
        self.inputs_rejected = 0
        self.left_info = None
        self._period_late = 0
        self._late_total = 0
        self._image_subs: list = []
        self.sub_obs = self.create_subscription(
            PointCloud2, "visual/observations", self._on_observations, 50)
        self.sub_audio = self.create_subscription(
            PointCloud2, "audio/features", self._on_features, 200)
        self.sub_events = None
        self._subscribe_events()
        self._subscribe_image()
        self.add_on_set_parameters_callback(self._on_parameters)
        self.wait_timer = self.create_timer(0.005, self._drain)
        self.diag_timer = self.create_timer(self.tracking.diagnostics_period, self._publish_diag)
        self.get_logger().info(
            f"tracker ready: {self.sub_obs.topic_name} + {self.sub_audio.topic_name} -> "
            f"speakers (audio wait {self.tracking.audio_wait} s, image "
            f"{'on' if self.tracking.publish_image else 'off'}, voices "
            f"{'on' if self.tracking.publish_voices else 'off'})")

    # ---------------------------------------------------------------- config
    def _apply(self, configs, first=False):
        self.tracker_config = configs[TrackerConfig]
        self.mics = configs[MicArrayConfig]
        self.camera = configs[StereoCameraConfig]
        self.tracking = configs[TrackingConfig]
        self.input = configs[TrackerInputConfig]
        self.head_calibration = configs[HeadCalibrationConfig]
        self.camera_calibration = StereoCalibration.from_config(self.camera)
        if first:
            self.pipeline = TrackingPipeline(self.tracker_config, self.mics, self.camera,
                                             self.tracking, self.head_calibration)

    def _on_parameters(self, params):
        result, configs = validate_parameter_change(self, STAGES, params)
        if not result.successful:
            return result
        old = (self.tracker_config, self.mics, self.camera, self.tracking, self.input,
               self.head_calibration)
        self._apply(configs)
        if old[:3] + old[5:] != (self.tracker_config, self.mics, self.camera,
                                 self.head_calibration):
            # a new tracker: the tracks restart (their identities too)
            self.pipeline = TrackingPipeline(self.tracker_config, self.mics, self.camera,
                                             self.tracking, self.head_calibration)
        else:
            self.pipeline.tracking = self.tracking
        self.outputs.configure(self.tracking)
        if old[4] != self.input or old[3].publish_image != self.tracking.publish_image:
            self._subscribe_image()
        if old[3].use_av_events != self.tracking.use_av_events:
            self._subscribe_events()
        if old[3].diagnostics_period != self.tracking.diagnostics_period:
            self.destroy_timer(self.diag_timer)
            self.diag_timer = self.create_timer(self.tracking.diagnostics_period,
                                                self._publish_diag)
        return result

    def _subscribe_events(self):
        if self.sub_events is not None:
            self.destroy_subscription(self.sub_events)
            self.sub_events = None
        if self.tracking.use_av_events:
            self.sub_events = self.create_subscription(
                PointCloud2, "av_events", self._on_events, 10)

    def _subscribe_image(self):
        for sub in self._image_subs:
            self.destroy_subscription(sub)
        self._image_subs = []
        self._images.clear()
        self.left_info = None
        if not self.tracking.publish_image:
            return
        c = self.input
        rel = (ReliabilityPolicy.RELIABLE if c.reliability == "reliable"
               else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=rel)
        img_type = CompressedImage if c.compressed else Image
        topic = c.image_topic + ("/compressed" if c.compressed else "")
        self._image_subs = [
            self.create_subscription(img_type, topic, self._on_image, qos),
            self.create_subscription(CameraInfo, c.info_topic, self._on_info, qos)]

    # ------------------------------------------------------------- callbacks
    def _reject(self, topic: str, exc: Exception) -> None:
        """An unusable input message: counted, reported on /diagnostics, dropped."""
        self.inputs_rejected += 1
        self.diag.count(f"rejected_{topic.replace('/', '_')}_messages")
        self.diag.error(f"{topic} message rejected: {exc}")

    def _on_features(self, msg):
        try:
            n = self.pipeline.add_audio_features(cloud_to_features(msg))
        except ValueError as exc:  # malformed cloud, or InputError (bad stamps)
            self._reject("audio/features", exc)
            return
        self.rates["audio_frames"].add(n)
        self._last_audio_arrival = time.monotonic()
        self._drain()

    def _on_events(self, msg):
        try:
            self.pipeline.add_events(*cloud_to_events(msg))
        except ValueError as exc:
            self._reject("av_events", exc)
            return
        self.rates["events"].add()

    def _on_observations(self, msg):
        try:
            obs = cloud_to_observations(msg)
        except ValueError as exc:
            self._reject("visual/observations", exc)
            return
        self.rates["visual"].add()
        self._pending.append((time.monotonic(), obs, msg.header))
        self._drain()

    def _on_info(self, msg):
        self.left_info = msg

    def _on_image(self, msg):
        self.rates["images"].add()
        stamp = time_to_sec(msg.header.stamp)
        self._images.append((stamp, msg))
        while len(self._images) > self.input.image_queue:
            self._images.popleft()
        for k, (out, header) in enumerate(self._unannotated):
            if abs(time_to_sec(header.stamp) - stamp) < 1e-6:
                del self._unannotated[k]
                self._annotate(msg, out)
                break

    # ------------------------------------------------------------ processing
    def _ready(self, arrival: float, stamp: float) -> bool:
        now = time.monotonic()
        if self.pipeline.audio_ready(stamp):
            return True
        if now - self._last_audio_arrival > AUDIO_IDLE:  # no audio stream: do not wait
            return True
        return now - arrival >= self.tracking.audio_wait

    def _drain(self):
        while self._pending:
            arrival, obs, header = self._pending[0]
            if not self._ready(arrival, obs["stamp"]):
                return
            self._pending.popleft()
            self.process_observations(obs, header)

    def process_observations(self, obs: dict, header: Header):
        """Step the tracker with one ``cloud_to_observations`` dict and publish; returns
        the TrackerOutput, or None when the input was dropped."""
        var = np.maximum(obs["variances"], 1e-8)
        cov = np.zeros((len(var), 3, 3))
        idx = np.arange(3)
        cov[:, idx, idx] = var
        late_before = self._late_count()
        try:
            out = self.pipeline.step(obs["stamp"], obs["xyz"], cov, obs["weight"])
        except TrackerInputError as exc:
            self.inputs_rejected += 1
            self.diag.error(f"visual observations at {obs['stamp']:.3f} s rejected: {exc}")
            return None
        late = self._late_count() - late_before
        if late:
            self._period_late += late
        if out is None:
            return None
        self.outputs.publish(out, header)
        if self.tracking.publish_image:
            image = self._image_at(obs["stamp"])
            if image is not None:
                self._annotate(image, out)
            else:
                self._unannotated.append((out, header))
        return out

    def _late_count(self) -> int:
        s = self.pipeline.tracker.stats
        return self.pipeline.late_visual + s["late_visual"] + s["late_audio"]

    def _image_at(self, stamp: float):
        for t, msg in reversed(self._images):
            if abs(t - stamp) < 1e-6:
                return msg
        return None

    def _annotate(self, image_msg, output):
        try:
            img = message_to_bgr(image_msg)
        except ImageConversionError as exc:
            self.diag.warn(f"left image not annotated: {exc}")
            return
        cal = self.camera_calibration
        if self.left_info is not None:
            try:
                cal = calibration_from_left_info(self.left_info, self.camera.baseline)
            except (ValueError, ConfigError) as exc:
                self.diag.warn(f"left camera_info unusable ({exc}): drawing with camera.*")
        self.outputs.publish_image(img, image_msg.header, output, cal)

    # ----------------------------------------------------------- diagnostics
    def _publish_diag(self):
        visual_count = self.rates["visual"].count
        values = self.outputs.period_values()
        s = self.pipeline.tracker.stats
        steps = max(self.pipeline.steps, 1)
        values.update({
            "visual_rate_hz": self.rates["visual"].rate(),
            "audio_frame_rate_hz": self.rates["audio_frames"].rate(),
            "image_rate_hz": self.rates["images"].rate(),
            "late_visual_dropped": self.pipeline.late_visual + s["late_visual"],
            "late_audio_dropped": s["late_audio"],
            "late_in_period": self._period_late,
            "audio_overflow": self.pipeline.audio_overflow,
            "audio_buffered": self.pipeline.buffered_audio,
            "inputs_rejected": self.inputs_rejected,
            "tracker_resets": self.pipeline.resets,
            "tracker_ms_per_step": 1000.0 * self.pipeline.processing_time / steps,
            "live_tracks": self.pipeline.tracker.num_tracks,
        })
        if self.tracking.use_av_events:
            if self.rates["events"].count == 0:
                self.diag.warn(f"tracking.use_av_events is on but no events arrive on "
                               f"{self.sub_events.topic_name}: run av_fusion_node")
            values.update({
                "av_events_rate_hz": self.rates["events"].rate(),
                "births_from_events": s["births_events"] + s["births_events_audio"],
                "late_events_dropped": s["late_events"],
            })
        if visual_count == 0:
            self.diag.warn(f"no visual observations received on {self.sub_obs.topic_name}: "
                           "run visual_features_node (or remap visual/observations)")
        if self._period_late:
            self.diag.warn(
                f"{self._period_late} late inputs dropped or applied late: the audio or the "
                "observations arrive out of order; raise tracking.audio_wait or "
                "tracker.max_lateness")
        self._period_late = 0
        self.diag.publish(values)

    def destroy_node(self):
        self.outputs.close()
        return super().destroy_node()


def main(args=None):
    return run_node(TrackerNode, "tracker_node", (), args)


if __name__ == "__main__":
    sys.exit(main())
