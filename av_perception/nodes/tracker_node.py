"""tracker_node: ``visual/observations`` + ``audio/features`` -> ``speakers``.

Orders the inputs by stamp (and, with ``tracking.use_av_events``, the ``av_events`` of
av_fusion_node) and steps the tracker at each observation cloud with the audio up to its
stamp, as ``av-perception process`` does over a bag (:class:`~.tracking_stage.TrackingStage`);
publishes ``speakers``, ``speakers/markers``, ``speakers/image``, the ROS4HRI-style
voice topics and the attention target (``attention``, ``attention/voice_id``).  Topics,
message layouts and diagnostics: docs/architecture.md.
"""
from __future__ import annotations

import sys
import time
from collections import deque

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from ..core.config import ConfigError, StereoCameraConfig
from ..core.stereo import StereoCalibration
from ..io.image_msgs import ImageConversionError, message_to_bgr
from .common import (
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
)
from .settings import TrackerInputConfig
from .tracking_stage import TrackingOutputs, TrackingStage, percentile_ms

__all__ = ["AUDIO_IDLE", "STAGES", "TrackerInputConfig", "TrackerNode", "TrackingOutputs",
           "calibration_from_left_info", "percentile_ms"]

_T = TrackingStage.CONFIGS
STAGES = (*_T[:6], TrackerInputConfig, *_T[6:])  # the order of config/tracker.yaml
#: audio counts as flowing when a features message came within this many seconds
AUDIO_IDLE = 1.0


def calibration_from_left_info(info, baseline: float) -> StereoCalibration:
    """A rectified projection from the left CameraInfo's P (enough to draw the tracks)."""
    p = np.asarray(info.p, dtype=float).reshape(3, 4)
    if p[0, 0] <= 0 or p[1, 1] <= 0 or info.width <= 0 or info.height <= 0:
        raise ValueError("the left camera_info has no projection matrix P or no image size")
    return StereoCalibration.from_config(StereoCameraConfig(
        width=int(info.width), height=int(info.height), fx=float(p[0, 0]), fy=float(p[1, 1]),
        cx=float(p[0, 2]), cy=float(p[1, 2]), baseline=baseline))


class TrackerNode(Node):
    """The tracking stage (:class:`~.tracking_stage.TrackingStage`) fed from topics."""

    def __init__(self, **kwargs):
        super().__init__("tracker_node", **kwargs)
        declare_stage_parameters(self, STAGES)
        configs = configs_from_node(self, STAGES)  # ConfigError stops the node at start
        self.rates = {k: RateMeter() for k in ("visual", "audio_frames", "images", "events")}
        self.stage = TrackingStage(self, configs, "av_perception: tracker_node",
                                   extra_values=self._diag_values,
                                   camera_topic=self._camera_topic,
                                   camera_stamp=self._camera_stamp)
        self.input = configs[TrackerInputConfig]
        self._pending: deque = deque()  # (arrival monotonic, observations dict, header)
        self._images: deque = deque()  # (stamp, msg) of the left image
        self._unannotated: deque = deque(maxlen=10)  # (output, header) waiting for an image
        self._last_audio_arrival = -1e9
        self.left_info = None
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
        self.get_logger().info(
            f"tracker ready: {self.sub_obs.topic_name} + {self.sub_audio.topic_name} -> "
            f"speakers (audio wait {self.tracking.audio_wait} s, image "
            f"{'on' if self.publishing.publish_image else 'off'}, voices "
            f"{'on' if self.publishing.publish_voices else 'off'})")

    # the stage's state, as the node's (tests, tools)
    @property
    def pipeline(self):
        return self.stage.pipeline

    @property
    def tracking(self):
        return self.stage.tracking

    @property
    def publishing(self):
        return self.stage.publishing

    @property
    def outputs(self):
        return self.stage.outputs

    @property
    def diag(self):
        return self.stage.diag

    @property
    def inputs_rejected(self) -> int:
        return self.stage.inputs_rejected

    def _camera_topic(self) -> str:
        try:
            camera = self.resolve_topic_name(self.input.image_topic)
        except Exception:  # noqa: BLE001 - an unusual name: as given
            camera = self.input.image_topic
        return f"{self.sub_obs.topic_name} (the observations of {camera})"

    def _camera_stamp(self):
        """The newest left image stamp received (tracking.publish_image on), else None."""
        images = self._images
        return images[-1][0] if images else None

    # ---------------------------------------------------------------- config
    def _on_parameters(self, params):
        result, configs = validate_parameter_change(self, STAGES, params)
        if not result.successful:
            return result
        old_tracking, old_publishing, old_input = self.tracking, self.publishing, self.input
        self.stage.configure(configs)
        self.input = configs[TrackerInputConfig]
        if (old_input != self.input
                or old_publishing.publish_image != self.publishing.publish_image):
            self._subscribe_image()
        if old_tracking.use_av_events != self.tracking.use_av_events:
            self._subscribe_events()
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
        if not self.publishing.publish_image:
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
    def _on_features(self, msg):
        try:
            feats = cloud_to_features(msg)
        except ValueError as exc:
            self.stage.reject("audio/features", exc)
            return
        n = self.stage.add_audio_features(feats)
        if not n:
            return
        self.rates["audio_frames"].add(n)
        self._last_audio_arrival = time.monotonic()
        self._drain()

    def _on_events(self, msg):
        try:
            stamp, events = cloud_to_events(msg)
        except ValueError as exc:
            self.stage.reject("av_events", exc)
            return
        if self.stage.add_events(stamp, events):
            self.rates["events"].add()

    def _on_observations(self, msg):
        try:
            obs = cloud_to_observations(msg)
        except ValueError as exc:
            self.stage.reject("visual/observations", exc)
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
        out = self.stage.step(obs["stamp"], obs["xyz"], cov, obs["weight"], header,
                              obs.get("lip_llr"))
        if out is None:
            return None
        if self.publishing.publish_image:
            image = self._image_at(obs["stamp"])
            if image is not None:
                self._annotate(image, out)
            else:
                self._unannotated.append((out, header))
        return out

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
        cal = self.stage.camera_calibration
        if self.left_info is not None:
            try:
                cal = calibration_from_left_info(self.left_info, self.stage.camera.baseline)
            except (ValueError, ConfigError) as exc:
                self.diag.warn(f"left camera_info unusable ({exc}): drawing with camera.*")
        self.outputs.publish_image(img, image_msg.header, output, cal)

    # ----------------------------------------------------------- diagnostics
    def _diag_values(self) -> dict:
        """This node's inputs, for the stage's status."""
        values = {
            "visual_rate_hz": self.rates["visual"].rate(),
            "audio_frame_rate_hz": self.rates["audio_frames"].rate(),
            "image_rate_hz": self.rates["images"].rate(),
        }
        if values["visual_rate_hz"] == 0:
            self.diag.warn(f"no visual observations received on {self.sub_obs.topic_name}: "
                           "run visual_features_node (or remap visual/observations)")
        if self.tracking.use_av_events:
            if self.rates["events"].count == 0:
                self.diag.warn(f"tracking.use_av_events is on but no events arrive on "
                               f"{self.sub_events.topic_name}: run av_fusion_node")
            values["av_events_rate_hz"] = self.rates["events"].rate()
            values["late_events_dropped"] = self.pipeline.tracker.stats["late_events"]
        return values

    def destroy_node(self):
        self.stage.close()
        return super().destroy_node()


def main(args=None):
    return run_node(TrackerNode, "tracker_node", (), args)


if __name__ == "__main__":
    sys.exit(main())
