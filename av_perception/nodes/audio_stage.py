"""The audio stage on a node (audio_features_node, perception_node): capture from a
sound card or a WAV file played in real time, the audio pipeline, ``audio/features``,
``audio/direction`` and one diagnostics status."""
from __future__ import annotations

import queue
import threading
import time

import numpy as np
from geometry_msgs.msg import Vector3Stamped
from sensor_msgs.msg import PointCloud2

from ..core.audio import AudioInputError
from ..core.config import AudioFrontEndConfig, MicArrayConfig
from ..io.audio_sources import (
    AudioCaptureConfig,
    AudioSourceError,
    SoundDeviceAudioSource,
    WavAudioSource,
)
from ..pipeline import AudioPipeline
from .common import Diagnostics, RateMeter
from .conversions import features_to_cloud, sec_to_time
from .settings import AudioOutputConfig
from .tf_input import TF_MISSING, subscribe_tf

__all__ = ["AudioStage", "WavPlayback"]


class WavPlayback:
    """A WAV file played in real time on a thread, with the live source's read() API."""

    def __init__(self, config: AudioCaptureConfig, clock):
        self.source = WavAudioSource(
            config.input_file, chunk_size=config.block_size, channel_left=config.channel_left,
            channel_right=config.channel_right, realtime=True, loop=config.loop_input)
        self.sample_rate = self.source.sample_rate
        self.device_name = f"file:{config.input_file}"
        self.overflows = 0
        self.dropped_blocks = 0
        self._clock = clock
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.finished = False
        self.error = ""

    def open(self):
        self._thread.start()

    def _run(self):
        start = None
        try:
            for chunk in self.source.chunks():
                if self._stop.is_set():
                    return
                if start is None:
                    start = self._clock() - chunk.duration
                chunk.stamp = start + chunk.stamp
                self._queue.put(chunk)
        except Exception as exc:  # noqa: BLE001 - reported through read()
            self.error = f"playback of {self.device_name} failed: {exc}"
        self.finished = True

    def read(self, timeout: float = 0.0):
        if self.error:
            raise AudioSourceError(self.error)
        out = []
        try:
            out.append(self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait())
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return out

    def close(self):
        self._stop.set()


class AudioStage:
    """Capture -> :class:`~av_perception.pipeline.AudioPipeline` -> ``audio/features`` and
    ``audio/direction`` on ``node``, with one /diagnostics status named ``diag_name``.

    ``on_features(features)`` (optional) gets every chunk's features after they are
    published (perception_node hands them to its fusion and tracking stages);
    ``on_chunk(start, end, clipped)`` (optional) every chunk's span (s) before it is
    processed, refused or not.  With ``keep_spectra`` the features carry their STFT.  The
    device is reopened every ``capture.reconnect_interval`` s; while it is not open the
    status stays ERROR.  The head's turns (the precedence memory turned with them) come
    from ``poses_source`` (perception_node: its tracking stage's /tf) or, with
    ``output.fixed_frame`` (audio_features_node), from the stage's own /tf subscription.
    """

    CONFIGS = (AudioFrontEndConfig, MicArrayConfig, AudioCaptureConfig, AudioOutputConfig)

    def __init__(self, node, configs: dict, diag_name: str, on_features=None,
                 keep_spectra: bool = False, on_chunk=None):
        self.node = node
        self.on_features = on_features
        self.on_chunk = on_chunk
        self.keep_spectra = keep_spectra
        #: () -> HeadPoses of the same process (perception_node: the tracking stage's /tf);
        #: the head's turns then turn the front-end's precedence memory
        self.poses_source = None
        #: HeadPoses from the stage's own /tf (output.fixed_frame; audio_features_node)
        self.poses = None
        self._tf_subs: list = []
        self._tf_problem = ""
        self.turned_chunks = 0  # chunks given the head's rotation from /tf
        self.unposed_chunks = 0  # chunks without it although /tf is read
        self.capture = None
        self.source = None
        self._next_open = 0.0
        self.diag_timer = None
        self.configure(configs)
        self.pub_features = node.create_publisher(PointCloud2, "audio/features", 10)
        self.pub_direction = node.create_publisher(Vector3Stamped, "audio/direction", 10)
        self.diag = Diagnostics(node, diag_name)
        self.samples_in = RateMeter()
        self.frames_out = RateMeter()
        self.chunks_rejected = 0
        self.frames_published = 0
        self.directions_published = 0
        self.poll_timer = node.create_timer(0.005, self.poll)
        self._subscribe_tf()
        self._diag_timer()
        a = self.audio
        node.get_logger().info(
            f"audio front-end ready: {a.processing_rate} Hz processing, "
            f"{a.frame_length}/{a.hop_length} frame/hop, mics {list(self.mics.left)} / "
            f"{list(self.mics.right)}")

    # ---------------------------------------------------------------- config
    def configure(self, configs: dict, keep_spectra: bool | None = None) -> None:
        """New stage configs (validated): a new pipeline (its features with their STFT when
        ``keep_spectra``; None: as before), the source reopened when the capture settings
        changed."""
        if keep_spectra is not None:
            self.keep_spectra = keep_spectra
        old_capture, old_output = self.capture, getattr(self, "output", None)
        self.audio = configs[AudioFrontEndConfig]
        self.mics = configs[MicArrayConfig]
        self.capture = configs[AudioCaptureConfig]
        self.output = configs[AudioOutputConfig]
        self.pipeline = AudioPipeline(self.audio, self.mics, keep_spectra=self.keep_spectra)
        self.pipeline.warm_up()
        if old_capture is not None and self.capture != old_capture:
            self.close_source()
        if old_output is not None and (old_output.diagnostics_period
                                       != self.output.diagnostics_period):
            self._diag_timer()
        if old_output is not None and (old_output.fixed_frame, old_output.frame_id) != (
                self.output.fixed_frame, self.output.frame_id):
            self._subscribe_tf()

    def _subscribe_tf(self) -> None:
        """/tf and /tf_static while output.fixed_frame is set (the poses of output.frame_id
        in it turn the precedence memory)."""
        frame = self.output.fixed_frame.strip("/")
        if not frame:
            self.poses = None
            return
        from ..pipeline import HeadPoses, TrackingConfig

        if self.poses is None or self.poses.fixed_frame != frame:
            self.poses = HeadPoses(TrackingConfig(fixed_frame=frame))
        self.poses.camera_frame = self.output.frame_id.strip("/")
        if self._tf_subs:
            return
        try:
            self._tf_subs = subscribe_tf(self.node, self._on_transform)
        except ImportError:
            self._tf_problem = (f"output.fixed_frame is set but {TF_MISSING}: the precedence "
                                "memory does not turn with the head")

    def _on_transform(self, *args) -> None:
        poses = self.poses
        if poses is not None:
            poses.add(*args)

    def _diag_timer(self):
        if self.diag_timer is not None:
            self.node.destroy_timer(self.diag_timer)
        self.diag_timer = self.node.create_timer(self.output.diagnostics_period,
                                                 self.publish_diagnostics)

    # ---------------------------------------------------------------- source
    def _now_sec(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _open_source(self):
        now = time.monotonic()
        if now < self._next_open:
            return
        self._next_open = now + self.capture.reconnect_interval
        try:
            if self.capture.input_file:
                src = WavPlayback(self.capture, self._now_sec)
            else:
                src = SoundDeviceAudioSource(self.capture, clock=self._now_sec)
            src.open()
        except (AudioSourceError, OSError) as exc:
            self.diag.condition("input", 2, f"audio input unavailable: {exc}")
            return
        self.source = src
        self.diag.resolve("input")
        self.diag.hardware_id = src.device_name
        self.node.get_logger().info(f"capturing from {src.device_name} at {src.sample_rate} Hz")

    def close_source(self):
        if self.source is not None:
            self.source.close()
            self.source = None
        self._next_open = 0.0  # reopen at once (a failed device waits reconnect_interval)
        self.pipeline.front_end.reset()

    # ------------------------------------------------------------ processing
    def poll(self):
        if self.source is None:
            self._open_source()
            if self.source is None:
                return
        try:
            chunks = self.source.read(0.0)
        except AudioSourceError as exc:
            self.diag.condition("input", 2, str(exc))
            self.close_source()
            return
        for chunk in chunks:
            self.process_chunk(chunk)

    def process_chunk(self, chunk):
        """Run one AudioChunk through the pipeline and publish its frames; returns the
        BinauralFeatures (None when the chunk was rejected)."""
        self.samples_in.add(len(chunk.samples))
        peak = float(np.max(np.abs(chunk.samples))) if len(chunk.samples) else 0.0
        if peak >= 0.999:
            self.diag.warn("input is clipping: lower the capture gain")
        if self.on_chunk is not None and chunk.stamp is not None and chunk.sample_rate:
            self.on_chunk(float(chunk.stamp),
                          float(chunk.stamp) + len(chunk.samples) / chunk.sample_rate,
                          peak >= 0.999)
        poses = self.poses_source() if self.poses_source else self.poses
        if poses is not None and poses.enabled:  # camera_frame: the images' frame_id
            rotation = poses.rotation_at(chunk.stamp)
            self.pipeline.set_camera_rotation(rotation)
            if rotation is None:
                self.unposed_chunks += 1
            else:
                self.turned_chunks += 1
        try:
            feats = self.pipeline.process_audio(chunk.samples, chunk.sample_rate, chunk.stamp)
        except AudioInputError as exc:
            self.chunks_rejected += 1
            self.diag.error(f"audio chunk rejected: {exc}")
            return None
        if self.pipeline.last_error.startswith("sample rate changed"):
            self.diag.warn(self.pipeline.last_error)
            self.pipeline.last_error = ""
        if len(feats) == 0:
            return feats
        self.frames_out.add(len(feats))
        self.pub_features.publish(features_to_cloud(self.output.frame_id, feats))
        self.frames_published += len(feats)
        mask, dirs = self.pipeline.active_directions(
            feats, self.output.direction_min_activity, self.output.direction_min_reliability)
        for stamp, d in zip(feats.stamp[mask], dirs):
            msg = Vector3Stamped()
            msg.header.stamp = sec_to_time(float(stamp))
            msg.header.frame_id = self.output.frame_id
            msg.vector.x, msg.vector.y, msg.vector.z = (float(v) for v in d)
            self.pub_direction.publish(msg)
            self.directions_published += 1
        if self.on_features is not None:
            self.on_features(feats)
        return feats

    # ----------------------------------------------------------- diagnostics
    def publish_diagnostics(self):
        src = self.source
        pipe = self.pipeline
        stats = pipe.front_end.stats
        frames = max(stats["frames"], 1)
        values = {
            "device": getattr(src, "device_name", "none"),
            "device_open": src is not None,
            "input_rate_hz": self.samples_in.rate(),
            "frame_rate_hz": self.frames_out.rate(),
            "frames_published": self.frames_published,
            "directions_published": self.directions_published,
            "overflows": getattr(src, "overflows", 0),
            "dropped_blocks": getattr(src, "dropped_blocks", 0),
            "chunks_rejected": self.chunks_rejected,
            "clipped_samples": stats["clipped_samples"],
            "timestamp_discontinuities": stats["discontinuities"],
            "processing_ms_per_frame": 1000.0 * pipe.processing_time / frames,
        }
        if isinstance(src, WavPlayback) and src.finished:
            self.diag.warn(f"input file {self.capture.input_file} finished")
        if self.poses is not None and not self.poses_source:  # its own /tf
            values.update({"fixed_frame": self.poses.fixed_frame,
                           "camera_frame": self.poses.camera_frame,
                           "transforms": self.poses.transforms,
                           "chunks_turned": self.turned_chunks,
                           "chunks_without_pose": self.unposed_chunks})
            if self._tf_problem:
                self.diag.condition("tf", 1, self._tf_problem)
            elif self.unposed_chunks and not self.turned_chunks:
                self.diag.condition("tf", 1, (
                    f"no pose of {self.poses.camera_frame!r} (output.frame_id) in "
                    f"{self.poses.fixed_frame!r} from /tf yet: the precedence memory does not "
                    "turn with the head"))
            else:
                self.diag.resolve("tf")
        self.diag.publish(values)  # events per period; "input" until the device opens

    def close(self):
        self.close_source()
