"""The fusion stage on a node (av_fusion_node, perception_node): audio features and
visual observations buffered in stamp order, the audio-visual clustering over windows
of data time, ``av_events`` and one diagnostics status."""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from ..core.av_clustering import AVClusteringConfig
from ..core.config import MicArrayConfig
from ..core.wdem import WdemConfig
from ..pipeline import FusionInputConfig, FusionInputError, FusionPipeline
from .common import Diagnostics, RateMeter
from .conversions import cloud_to_features, cloud_to_observations, events_to_cloud, sec_to_time
from .settings import FusionNodeConfig

__all__ = ["FusionStage", "STAGES"]

STAGES = (FusionInputConfig, FusionNodeConfig, AVClusteringConfig, WdemConfig, MicArrayConfig)


class FusionStage:
    """:class:`~av_perception.pipeline.FusionPipeline` -> ``av_events`` on ``node``, with
    one /diagnostics status named ``diag_name``.

    With ``subscribe`` (av_fusion_node) it takes ``audio/features`` and
    ``visual/observations``; otherwise the node feeds it (:meth:`add_audio_features`,
    :meth:`add_visual`, then :meth:`process`).  ``on_windows(windows)`` (optional) gets
    the windows published by each :meth:`process`.
    """

    CONFIGS = STAGES

    def __init__(self, node, configs: dict, diag_name: str, subscribe: bool = True,
                 on_windows=None):
        self.node = node
        self.subscribe = subscribe
        self.on_windows = on_windows
        self.lock = threading.Lock()  # the pipeline (audio and vision threads feed it)
        self._set_configs(configs)
        self.pipeline = FusionPipeline(self.fusion, self.wdem, self.mics, self.input)
        self.pub = node.create_publisher(PointCloud2, "av_events", 10)
        self.diag = Diagnostics(node, diag_name)
        self.rates = {k: RateMeter() for k in ("audio_msgs", "audio_frames", "visual", "windows")}
        self.windows_published = 0
        self.malformed_audio = 0
        self.malformed_visual = 0
        self.last_error = ""
        self.last_input_error = {"audio": "", "visual": ""}
        self._period = self._new_period()
        self._subs = []
        self.sub_audio = self.sub_visual = None
        self._subscribe()
        t0 = time.perf_counter()
        self.pipeline.warm_up()
        node.get_logger().info(
            f"fusion ready (kernels {time.perf_counter() - t0:.1f} s): window "
            f"{self.fusion.window_length} s every {self.fusion.hop_length} s")
        self.diag_timer = node.create_timer(self.settings.diagnostics_period,
                                            self.publish_diagnostics)

    # ---------------------------------------------------------------- config
    def _set_configs(self, configs):
        self.input = configs[FusionInputConfig]
        self.settings = configs[FusionNodeConfig]
        self.fusion = configs[AVClusteringConfig]
        self.wdem = configs[WdemConfig]
        self.mics = configs[MicArrayConfig]

    def configure(self, configs: dict) -> None:
        """New stage configs (validated); a new clustering model restarts the clusters."""
        old = self.settings
        self._set_configs(configs)
        with self.lock:
            self.pipeline.configure(self.fusion, self.wdem, self.mics, self.input)
        if old.queue_size != self.settings.queue_size:
            self._subscribe()
        if old.diagnostics_period != self.settings.diagnostics_period:
            self.node.destroy_timer(self.diag_timer)
            self.diag_timer = self.node.create_timer(self.settings.diagnostics_period,
                                                     self.publish_diagnostics)

    def _subscribe(self):
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        if not self.subscribe:
            return
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.settings.queue_size,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
        self.sub_audio = self.node.create_subscription(PointCloud2, "audio/features",
                                                       self.on_audio, qos)
        self.sub_visual = self.node.create_subscription(PointCloud2, "visual/observations",
                                                        self.on_visual, qos)
        self._subs = [self.sub_audio, self.sub_visual]

    # ------------------------------------------------------------- callbacks
    def _problem(self, level: int, message: str):
        if level >= 2:
            self.diag.error(message)
        else:
            self.diag.warn(message)
        self.last_error = message

    def _audio_rejected(self, what: str, exc) -> None:
        self.malformed_audio += 1
        self._period["malformed"] += 1
        self.diag.count("rejected_audio_messages")
        self.last_input_error["audio"] = f"{what} rejected: {exc}"
        self._problem(2, self.last_input_error["audio"])

    def add_audio_features(self, feats, what: str = "audio frames") -> int:
        """Buffer audio features in-process (0 when rejected)."""
        self.rates["audio_msgs"].add()
        try:
            with self.lock:
                kept = self.pipeline.add_audio_features(feats)
        except (ValueError, FusionInputError) as exc:
            self._audio_rejected(what, exc)
            return 0
        self.rates["audio_frames"].add(kept)
        return kept

    def add_visual(self, stamp, xyz, weights, variances, frame_id: str = "") -> bool:
        """Buffer one frame of observations in-process (False when rejected or late)."""
        self.rates["visual"].add()
        try:
            with self.lock:
                return self.pipeline.add_visual(stamp, xyz, weights, variances, frame_id)
        except (ValueError, FusionInputError) as exc:
            self.malformed_visual += 1
            self._period["malformed"] += 1
            self.last_input_error["visual"] = f"visual observations rejected: {exc}"
            self._problem(2, self.last_input_error["visual"])
            return False

    def on_audio(self, msg):
        """One ``audio/features`` cloud: buffer its frames, cluster what is complete."""
        self.rates["audio_msgs"].add()
        try:
            feats = cloud_to_features(msg)
            if "reliability" not in feats:
                raise ValueError("audio/features cloud lacks field reliability")
            n_bad = int(np.count_nonzero(~np.isfinite(feats["activity"])
                                         | ~np.isfinite(feats["reliability"])))
            with self.lock:
                kept = self.pipeline.add_audio_features(feats)
        except (ValueError, FusionInputError) as exc:
            self._audio_rejected("audio/features message", exc)
            return
        if n_bad:
            self._period["bad_audio_frames"] += n_bad
        self.rates["audio_frames"].add(kept)
        self.process()

    def on_visual(self, msg):
        """One ``visual/observations`` cloud: buffer it, cluster what is complete."""
        self.rates["visual"].add()
        try:
            obs = cloud_to_observations(msg)
            with self.lock:
                self.pipeline.add_visual(obs["stamp"], obs["xyz"], obs["weight"], obs["variances"],
                                     obs["frame_id"])
        except (ValueError, FusionInputError) as exc:
            self.malformed_visual += 1
            self._period["malformed"] += 1
            self.last_input_error["visual"] = f"visual/observations message rejected: {exc}"
            self._problem(2, self.last_input_error["visual"])
            return
        self.process()

    # ------------------------------------------------------------ processing
    def process(self) -> list:
        """Cluster what is complete and publish the windows (returned)."""
        try:
            with self.lock:
                windows = self.pipeline.process()
        except (ValueError, np.linalg.LinAlgError) as exc:
            # a numerical failure of one window must not stop the node: restart the clusters
            self._problem(2, f"clustering failed, fusion restarted: {exc!r}")
            with self.lock:
                self.pipeline.reset()
            return []
        for w in windows:
            self.publish_window(w)
        if windows and self.on_windows is not None:
            self.on_windows(windows)
        return windows

    def publish_window(self, window):
        header = Header(stamp=sec_to_time(window.stamp), frame_id=window.frame_id)
        self.pub.publish(events_to_cloud(header, window.events))
        self.windows_published += 1
        self.rates["windows"].add()
        p = self._period
        p["windows"] += 1
        p["events"] += len(window.events)
        p["out_of_view"] += sum(e.out_of_view for e in window.events)
        p["processing"] += window.processing_time
        p["processing_max"] = max(p["processing_max"], window.processing_time)

    # ----------------------------------------------------------- diagnostics
    @staticmethod
    def _new_period():
        return {"windows": 0, "events": 0, "out_of_view": 0, "processing": 0.0,
                "processing_max": 0.0, "malformed": 0, "bad_audio_frames": 0,
                "late": (0, 0), "overflow": 0, "invalid_points": 0, "resets": 0}

    def _input_problems(self, counts):
        pipe = self.pipeline
        p = self._period
        topics = ((self.sub_audio.topic_name, self.sub_visual.topic_name) if self.subscribe
                  else ("the audio stage", "the vision stage"))
        if counts[0] == 0 and counts[1] == 0:
            self.diag.warn(f"no input on {topics[0]} and {topics[1]}: start the audio and "
                           "visual front-ends or remap the topics")
        elif counts[0] == 0 or counts[1] == 0:
            k = 0 if counts[0] == 0 else 1
            self.diag.warn(f"no input on {topics[k]}: clustering {topics[1 - k]} alone")
        late = (pipe.late_audio_frames - p["late"][0], pipe.late_visual_frames - p["late"][1])
        if late[0] or late[1]:
            self.diag.warn(
                f"{late[0]} audio frames and {late[1]} observation frames arrived after their "
                f"time was clustered and were dropped: raise fusion_input.max_input_delay "
                f"({self.input.max_input_delay} s) above the latency difference of the inputs")
        if pipe.overflow_dropped > p["overflow"]:
            self.diag.warn(f"{pipe.overflow_dropped - p['overflow']} input messages dropped: "
                           f"more than fusion_input.max_buffer ({self.input.max_buffer}) waiting")
        if pipe.invalid_points > p["invalid_points"] or p["bad_audio_frames"]:
            self.diag.warn(
                f"{pipe.invalid_points - p['invalid_points']} observations with non-finite "
                f"position or weight and {p['bad_audio_frames']} audio frames with non-finite "
                "activity/reliability were ignored")
        if pipe.resets > p["resets"]:
            jump = getattr(pipe, "last_jump", float("nan"))
            self.diag.warn(f"stamps jumped back by {jump:.1f} s (more than fusion_input."
                           f"time_jump_reset = {self.input.time_jump_reset:g} s): bag looped or "
                           "clock reset; state reset (fusion restarted)")
        per = p["processing"] / p["windows"] if p["windows"] else 0.0
        if per > self.fusion.hop_length:
            self.diag.warn(f"clustering a window takes {1000 * per:.0f} ms, more than "
                           f"fusion.hop_length ({self.fusion.hop_length} s): output lags")
        if p["malformed"]:
            self.diag.error(f"{p['malformed']} malformed input messages rejected this period "
                            f"(last: {self.last_error})")

    def publish_diagnostics(self):
        pipe = self.pipeline
        p = self._period
        counts = (self.rates["audio_msgs"].count, self.rates["visual"].count)
        self._input_problems(counts)
        w = p["windows"]
        values = {
            "audio_messages_rate_hz": self.rates["audio_msgs"].rate(),
            "audio_frame_rate_hz": self.rates["audio_frames"].rate(),
            "visual_rate_hz": self.rates["visual"].rate(),
            "window_rate_hz": self.rates["windows"].rate(),
            "windows_published": self.windows_published,
            "processing_ms_per_window": 1000.0 * p["processing"] / w if w else 0.0,
            "processing_ms_max": 1000.0 * p["processing_max"],
            "events_per_window": p["events"] / w if w else 0.0,
            "out_of_view_per_window": p["out_of_view"] / w if w else 0.0,
            "late_audio_frames_dropped": pipe.late_audio_frames,
            "late_visual_frames_dropped": pipe.late_visual_frames,
            "buffer_overflow_dropped": pipe.overflow_dropped,
            "invalid_points_dropped": pipe.invalid_points,
            "malformed_audio_messages": self.malformed_audio,
            "malformed_visual_messages": self.malformed_visual,
            "buffered_messages": pipe.buffered_messages,
            "data_time_s": f"{pipe.released:.3f}" if np.isfinite(pipe.released) else "none",
            "resets": pipe.resets,
            "last_audio_input_error": self.last_input_error["audio"] or "none",
            "last_visual_input_error": self.last_input_error["visual"] or "none",
            "last_error": self.last_error or "none",
        }
        if self.sub_visual is not None:
            self.diag.hardware_id = self.sub_visual.topic_name
        self.diag.publish(values)
        self._period = self._new_period()
        self._period.update(late=(pipe.late_audio_frames, pipe.late_visual_frames),
                            overflow=pipe.overflow_dropped, invalid_points=pipe.invalid_points,
                            resets=pipe.resets)
