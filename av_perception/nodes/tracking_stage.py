"""The tracking stage on a node (tracker_node, perception_node): the tracker fed in time
order (:class:`~av_perception.pipeline.TrackingPipeline`), its outputs (``speakers``,
``speakers/markers``, ``speakers/image``, the per-track voices, the attention target) and
one diagnostics status."""
from __future__ import annotations

import threading

import numpy as np
from geometry_msgs.msg import Point, PointStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Bool, Header, String
from visualization_msgs.msg import MarkerArray

from ..core.attention import AttentionConfig
from ..core.config import AudioFrontEndConfig, MicArrayConfig, StereoCameraConfig
from ..core.head_calibration import HeadCalibrationConfig
from ..core.stereo import StereoCalibration
from ..core.tracking import TrackerConfig, TrackerInputError
from ..io.image_msgs import fill_image_msg
from ..io.track_output import TrackOutputConfig
from ..pipeline import TrackingConfig, TrackingPipeline
from .common import Diagnostics
from .conversions import sec_to_time, time_to_sec, tracks_to_cloud, tracks_to_markers
from .settings import TrackingNodeConfig
from .tf_input import TF_MISSING, subscribe_tf

__all__ = ["TrackingOutputs", "TrackingStage", "percentile_ms"]


def percentile_ms(values, q: float) -> float:
    return 1000.0 * float(np.percentile(values, q)) if len(values) else float("nan")


class TrackingOutputs:
    """The publishers of the tracking stage (shared by tracker_node and perception_node):
    ``speakers``, ``speakers/markers``, ``speakers/image``, the per-track voices, the
    attention target (``attention``, ``attention/voice_id``), and the latency statistics of
    the current diagnostics period.  Thread safe for one publishing
    thread at a time."""

    def __init__(self, node: Node, publishing: TrackingNodeConfig, labels: TrackOutputConfig):
        self.node = node
        self.config = publishing
        self.labels = labels
        self.pub_speakers = node.create_publisher(PointCloud2, "speakers", 10)
        self.pub_markers = node.create_publisher(MarkerArray, "speakers/markers", 10)
        self.pub_image = node.create_publisher(Image, "speakers/image", 5)
        self.pub_attention = node.create_publisher(PointStamped, "attention", 10)
        self.pub_attention_id = node.create_publisher(String, "attention/voice_id", 10)
        self.attention_switches = 0  # target changes published (to another track or none)
        self.last_attention = ""  # voice id of the newest target ('' = none)
        self.voices: dict = {}  # track id -> Bool publisher
        self.pub_tracked = None  # hri_msgs/IdsList <voices_namespace>/tracked
        #: why <voices_namespace>/tracked is not published although voices are ('' if it is)
        self.tracked_problem = ""
        self.shown_ids: set = set()
        self.latencies: list = []  # s, this period
        self.published = 0
        self.images_published = 0
        self.last_tracks = 0
        self.last_speaking = 0

    def configure(self, config: TrackingNodeConfig, labels: TrackOutputConfig):
        old = self.config
        self.config = config
        self.labels = labels
        if (not config.publish_voices or config.voices_namespace != old.voices_namespace
                or config.voice_id_prefix != old.voice_id_prefix):
            self._drop_voices(set(self.voices))
            if self.pub_tracked is not None:
                self.node.destroy_publisher(self.pub_tracked)
                self.pub_tracked = None
        if not config.publish_markers and old.publish_markers and self.shown_ids:
            from visualization_msgs.msg import Marker

            arr = MarkerArray(markers=[Marker(action=Marker.DELETEALL)])
            self.pub_markers.publish(arr)
            self.shown_ids = set()

    def _tracked_publisher(self):
        """The ROS4HRI list of tracked voices (REP-155), created on first use."""
        if self.pub_tracked is None and not self.tracked_problem:
            try:
                from hri_msgs.msg import IdsList
            except ImportError:
                self.tracked_problem = (
                    f"hri_msgs is not installed: {self.config.voices_namespace}/tracked is not "
                    "published (the per-voice is_speaking topics are); install "
                    "ros-<distro>-hri-msgs, or run 'make msgs' in a pip-only environment")
                return None
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.pub_tracked = self.node.create_publisher(
                IdsList, f"{self.config.voices_namespace}/tracked", qos)
        return self.pub_tracked

    def voice_id(self, track_id: int) -> str:
        return f"{self.config.voice_id_prefix}{int(track_id)}"

    def voice_topic(self, track_id: int) -> str:
        return f"{self.config.voices_namespace}/{self.voice_id(track_id)}/is_speaking"

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
        c, labels = self.config, self.labels
        hdr = Header(stamp=header.stamp, frame_id=labels.frame_id or header.frame_id)
        self.pub_speakers.publish(tracks_to_cloud(hdr, output))
        latency = self._now() - time_to_sec(header.stamp)
        self.latencies.append(latency)
        self.published += 1
        self.last_tracks = len(output)
        self.last_speaking = int(np.sum(np.asarray(output.speaking) >= labels.speaking_threshold))
        if c.publish_markers:
            markers, self.shown_ids = tracks_to_markers(
                hdr, output, self.shown_ids, labels.speaking_threshold, labels.marker_lifetime)
            if markers.markers:
                self.pub_markers.publish(markers)
        target = getattr(output, "attention", None)
        if target is not None:
            self.publish_attention(target, hdr)
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
                pub.publish(Bool(data=bool(p >= labels.speaking_threshold)))
            tracked = self._tracked_publisher()
            if tracked is not None:
                tracked.publish(tracked.msg_type(header=hdr,
                                                 ids=[self.voice_id(i) for i in ids]))
        return latency

    def publish_attention(self, target, hdr: Header) -> None:
        """``attention/voice_id`` (the target's voice id, '' for none), then, when there is a
        target, ``attention`` (its position, ``hdr``: the stamp and frame of ``speakers``)."""
        voice = self.voice_id(target.track_id) if target.valid else ""
        if target.switched:
            self.attention_switches += 1
        self.last_attention = voice
        self.pub_attention_id.publish(String(data=voice))
        if target.valid and np.isfinite(target.position).all():
            x, y, z = (float(v) for v in target.position)
            self.pub_attention.publish(PointStamped(header=hdr, point=Point(x=x, y=y, z=z)))

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
            "attention": self.last_attention or "none",
            "attention_switches": self.attention_switches,
        }

    def close(self):
        self._drop_voices(set(self.voices))


class TrackingStage:
    """The tracking pipeline, its outputs and one /diagnostics status named ``diag_name``
    on ``node``.

    The node feeds it (:meth:`add_audio_features`, :meth:`add_events`, :meth:`step`);
    unusable input is rejected, counted and reported, and the stage goes on with the
    next.  ``extra_values()`` (optional) returns the node's own diagnostic values (and
    may warn on ``stage.diag``) before each status is published.
    """

    CONFIGS = (TrackerConfig, MicArrayConfig, StereoCameraConfig, TrackingConfig,
               TrackOutputConfig, TrackingNodeConfig, HeadCalibrationConfig, AttentionConfig)

    def __init__(self, node, configs: dict, diag_name: str, extra_values=None,
                 camera_topic=None, camera_stamp=None):
        self.node = node
        self.extra_values = extra_values
        #: () -> str: the camera the observations come from (named by the frozen-camera WARN)
        self.camera_topic = camera_topic or (lambda: "the camera")
        #: () -> float | None: the newest stamp of the camera's own images, when the node
        #: receives them (tells a frozen camera from a visual front-end that lags)
        self.camera_stamp = camera_stamp or (lambda: None)
        self._publish_lock = threading.Lock()  # image steps and audio-only steps
        self._frame_id = ""  # of the last observations (for the audio-only outputs)
        self._period_offset = float("nan")  # the period's audio-image offset nearest 0
        self.lock = threading.Lock()  # the pipeline swap
        self.pipeline = None
        self.tracking = None  # the pipeline's settings
        self.publishing = None  # the node's publishers and diagnostics
        self.diag_timer = None
        self.diag = Diagnostics(node, diag_name)
        self.inputs_rejected = 0
        self.period_late = 0
        self._audio_resets_seen = 0
        self._resets_seen = 0
        self._tf_subs = []  # /tf and /tf_static (with tracking.fixed_frame)
        self._tf_problem = ""
        self.pub_camera = None  # speakers_camera (tracking.publish_camera_frame)
        self.configure(configs)
        self.outputs = TrackingOutputs(node, self.publishing, configs[TrackOutputConfig])

    def configure(self, configs: dict) -> None:
        """New stage configs (validated): a new tracker (tracks restart) when the model
        changed, otherwise the same tracks with the new tracking.* settings."""
        old_publishing = self.publishing
        self.tracking = configs[TrackingConfig]
        self.publishing = configs[TrackingNodeConfig]
        self.camera = configs[StereoCameraConfig]
        self.camera_calibration = StereoCalibration.from_config(self.camera)
        model = (configs[TrackerConfig], configs[MicArrayConfig], self.camera,
                 configs[HeadCalibrationConfig], configs.get(AudioFrontEndConfig))
        with self.lock:
            if self.pipeline is None or model != self._model:
                self._model = model
                self.pipeline = TrackingPipeline(*model[:3], self.tracking, *model[3:],
                                                 attention=configs.get(AttentionConfig))
            else:
                self.pipeline.tracking = self.tracking
                self.pipeline.attention_config = configs.get(AttentionConfig) or \
                    AttentionConfig()
        self._subscribe_tf()
        if old_publishing is not None:
            self.outputs.configure(self.publishing, configs[TrackOutputConfig])
        if old_publishing is None or (old_publishing.diagnostics_period
                                      != self.publishing.diagnostics_period):
            if self.diag_timer is not None:
                self.node.destroy_timer(self.diag_timer)
            self.diag_timer = self.node.create_timer(self.publishing.diagnostics_period,
                                                     self.publish_diagnostics)

    # ------------------------------------------------------------ head motion
    def _subscribe_tf(self) -> None:
        """/tf and /tf_static while tracking.fixed_frame is set (docs/launch.md)."""
        if not self.tracking.fixed_frame or self._tf_subs:
            return
        try:
            self._tf_subs = subscribe_tf(self.node, self.on_transform)
        except ImportError:
            self._tf_problem = (f"tracking.fixed_frame is set but {TF_MISSING}: tracking in "
                                "the camera frame")
            return
        if self.tracking.publish_camera_frame and self.pub_camera is None:
            self.pub_camera = self.node.create_publisher(PointCloud2, "speakers_camera", 10)

    def on_transform(self, parent, child, stamp, translation, quat, static) -> None:
        """One transform of /tf or /tf_static into the pipeline's pose buffer."""
        self.pipeline.add_transform(parent, child, stamp, translation, quat, static)

    # ------------------------------------------------------------------ input
    def reject(self, what: str, exc: Exception) -> None:
        """An unusable input message: counted, reported on /diagnostics, dropped."""
        self.inputs_rejected += 1
        self.diag.count(f"rejected_{what.replace('/', '_')}_messages")
        self.diag.error(f"{what} message rejected: {exc}")

    def add_audio_features(self, features, what: str = "audio/features") -> int:
        """Buffer audio features (0 when rejected: non-finite stamps...)."""
        try:
            n = self.pipeline.add_audio_features(features)
        except ValueError as exc:  # InputError
            self.reject(what, exc)
            return 0
        if self.pipeline.camera_frozen:
            self.step_audio_only()
        return n

    def step_audio_only(self):
        """A frozen camera: step the tracker from the audio alone and publish (stamped with
        the newest audio); returns the TrackerOutput or None (not due)."""
        pipeline = self.pipeline
        self._report_notices(pipeline)
        out = pipeline.step_audio_only()
        if out is not None:
            hdr = Header(stamp=sec_to_time(out.stamp),
                         frame_id=pipeline.output_frame or self._frame_id)
            with self._publish_lock:
                self.outputs.publish(out, hdr)
        return out

    def _report_notices(self, pipeline) -> None:
        for notice in pipeline.pop_notices():  # a clock jump: said once
            self.diag.warn(notice)

    def add_events(self, stamp, events, what: str = "av_events") -> bool:
        try:
            self.pipeline.add_events(stamp, events)
        except ValueError as exc:
            self.reject(what, exc)
            return False
        return True

    def _late_count(self, pipeline) -> int:
        s = pipeline.tracker.stats
        return pipeline.late_visual + s["late_visual"] + s["late_audio"]

    def step(self, stamp: float, xyz, covariance, weight, header: Header, lip_llr=None):
        """Step the tracker with one frame of observations (lip_llr: their visual speaking
        evidence, None = unknown) and publish its outputs (header: the observations');
        returns the TrackerOutput, None when dropped."""
        pipeline = self.pipeline
        late_before = self._late_count(pipeline)
        try:
            out = pipeline.step(stamp, xyz, covariance, weight, header.frame_id, lip_llr)
        except TrackerInputError as exc:
            self.inputs_rejected += 1
            self.diag.count("rejected_observations")
            self.diag.error(f"visual observations at {stamp:.3f} s rejected: {exc}")
            return None
        self.period_late += self._late_count(pipeline) - late_before
        self._report_notices(pipeline)
        self._frame_id = header.frame_id
        off = pipeline.av_offset
        if not abs(self._period_offset) <= abs(off):  # nan: the first of the period
            self._period_offset = off
        if out is not None:
            fixed = pipeline.output_frame
            hdr = header if not fixed else Header(stamp=header.stamp, frame_id=fixed)
            with self._publish_lock:
                self.outputs.publish(out, hdr)
                if fixed and self.pub_camera is not None:  # the camera frame as well
                    self.pub_camera.publish(tracks_to_cloud(header, pipeline.to_camera(out)))
        return out

    def _time_problems(self, p) -> None:
        """Lasting WARNs: a frozen camera, audio and images apart (clock drift)."""
        frozen = p.camera_frozen_for
        tc = self.tracking
        raw = self.camera_stamp()
        if frozen > tc.camera_timeout and raw is not None and \
                raw > p.visual_head + tc.camera_timeout:
            self.diag.condition(
                "camera_frozen", 1,
                f"no new observations from {self.camera_topic()} for {frozen:.1f} s of audio "
                f"while the camera delivers images (newest {raw - p.visual_head:.1f} s later): "
                "the visual front-end lags behind (see its diagnostics: processing time, "
                "dropped pairs); tracking goes on from the audio alone meanwhile")
        elif frozen > tc.camera_timeout:
            how = (f"its stamp stayed at {p.visual_head:.3f} ({p.repeated_visual} images "
                   "with a repeated stamp so far)" if p.repeated_visual else "no images")
            self.diag.condition(
                "camera_frozen", 1,
                f"camera frozen: no new image from {self.camera_topic()} for {frozen:.1f} s "
                f"of audio ({how}); tracking goes on from the audio alone until the image "
                "stamps advance again: check the camera driver and its connection")
        elif self.diag.resolve("camera_frozen"):
            self.node.get_logger().info(
                f"camera recovered: images from {self.camera_topic()} advance again")
        # the offset nearest 0 at the images of this period: a burst of late deliveries
        # (a loaded machine) does not count, clocks apart do
        off = self._period_offset
        self._period_offset = float("nan")
        if off != off:  # no image this period: the offset as it stands
            off = p.av_offset
        if not frozen > tc.camera_timeout and abs(off) > tc.max_av_offset:
            side = "ahead of" if off > 0 else "behind"
            self.diag.condition(
                "av_offset", 1,
                f"audio stamps are {abs(off):.1f} s {side} the image stamps at every image of "
                f"the period (more than tracking.max_av_offset = {tc.max_av_offset:g} s): the "
                "microphone and camera clocks disagree (or one stream is delivered that much "
                "later); synchronise the machines' clocks (chrony/PTP) or, replaying a bag, run "
                "every node with use_sim_time:=true")
        else:
            self.diag.resolve("av_offset")

    # ------------------------------------------------------------ diagnostics
    def publish_diagnostics(self):
        p = self.pipeline
        s = p.tracker.stats
        values = self.outputs.period_values()
        values.update({
            "late_visual_dropped": p.late_visual + s["late_visual"],
            "late_audio_dropped": s["late_audio"],
            "late_in_period": self.period_late,
            "audio_overflow": p.audio_overflow,
            "audio_buffered": p.buffered_audio,
            "inputs_rejected": self.inputs_rejected,
            "tracker_resets": p.resets,
            "audio_buffer_resets": p.audio_resets,
            "tracker_ms_per_step": 1000.0 * p.processing_time / max(p.steps, 1),
            "live_tracks": p.tracker.num_tracks,
            "births_from_events": s["births_events"] + s["births_events_audio"],
            "audio_only_steps": p.audio_only_steps,
            "camera_frozen_s": p.camera_frozen_for,
            "repeated_image_stamps": p.repeated_visual,
            "av_offset_s": p.av_offset,
        })
        # an audio jump back with a tracker restart in the same period is the same clock
        # jump, already said by the restart's notice
        if p.audio_resets > self._audio_resets_seen and p.resets == self._resets_seen:
            self.diag.warn(
                f"the audio's time went back more than tracking.time_jump_reset "
                f"({self.tracking.time_jump_reset} s) behind the newest audio (a bag loop or a "
                "clock reset, or audio stamped far ahead): the audio buffer restarted; if the "
                "images do not follow, check the audio input's stamps")
        self._audio_resets_seen, self._resets_seen = p.audio_resets, p.resets
        self._report_notices(p)
        self._time_problems(p)
        level, message, tf_values = p.poses.diagnostics()
        values.update(tf_values)
        if self._tf_problem:
            self.diag.condition("tf", 1, self._tf_problem)
        elif level:
            self.diag.condition("tf", level, message)
        else:
            self.diag.resolve("tf")
        if self.extra_values is not None:
            values.update(self.extra_values())
        if self.publishing.publish_voices and self.outputs.tracked_problem:
            self.diag.condition("voices_tracked", 1, self.outputs.tracked_problem)
        else:
            self.diag.resolve("voices_tracked")
        if self.period_late:
            self.diag.warn(
                f"{self.period_late} late inputs dropped or applied late: the audio or the "
                "observations arrive out of order; raise tracking.audio_wait or "
                "tracker.max_lateness")
        self.period_late = 0
        self.diag.publish(values)

    def close(self):
        self.outputs.close()
