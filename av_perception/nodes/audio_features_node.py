"""audio_features_node: binaural capture -> ``audio/features``, ``audio/direction``.

Captures from a sound card through sounddevice (or plays a WAV file in real
time when ``capture.input_file`` is set), runs the audio stage of the shared
pipeline and publishes:

* ``audio/features`` (sensor_msgs/PointCloud2, one point per audio frame:
  t_offset, itd, ild, activity, reliability, azimuth, direct_path; header stamp
  = centre of the first frame),
* ``audio/direction`` (geometry_msgs/Vector3Stamped, unit vector of the sound
  direction in the horizontal plane, per active and reliable frame),
* ``/diagnostics`` (input rate, frame rate, overflows, clipping, processing
  time, device state).

Bad input (wrong channel count, NaN, clipping, a device that disappears) is
reported on /diagnostics and logged; the node keeps running and reopens the
device every ``capture.reconnect_interval`` seconds.
"""
from __future__ import annotations

import queue
import sys
import threading
import time

import numpy as np
from geometry_msgs.msg import Vector3Stamped
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from ..core.audio import AudioInputError
from ..core.config import (
    AudioCaptureConfig,
    AudioFrontEndConfig,
    AudioOutputConfig,
    MicArrayConfig,
)
from ..io.audio_sources import AudioSourceError, SoundDeviceAudioSource, WavAudioSource
from ..pipeline import AudioPipeline
from .common import (
    Diagnostics,
    RateMeter,
    configs_from_node,
    declare_stage_parameters,
    run_node,
    validate_parameter_change,
)
from .conversions import features_to_cloud, sec_to_time

STAGES = (AudioFrontEndConfig, MicArrayConfig, AudioCaptureConfig, AudioOutputConfig)


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


class AudioFeaturesNode(Node):
    def __init__(self, node_name: str = "audio_features_node", stages=STAGES, **kwargs):
        """``node_name`` and ``stages`` (a superset of STAGES) are for nodes that extend
        this one with more stages (perception_node)."""
        super().__init__(node_name, **kwargs)
        self._stages = stages
        declare_stage_parameters(self, stages)
        configs = configs_from_node(self, stages)  # ConfigError stops the node at start
        self._apply(configs)
        self.pub_features = self.create_publisher(PointCloud2, "audio/features", 10)
        self.pub_direction = self.create_publisher(Vector3Stamped, "audio/direction", 10)
        self.diag = Diagnostics(self, f"av_perception: {node_name}")
        self.source = None
        self._next_open = 0.0
        self.samples_in = RateMeter()
        self.frames_out = RateMeter()
        self.chunks_rejected = 0
        self.frames_published = 0
        self.directions_published = 0
        self.add_on_set_parameters_callback(self._on_parameters)
        self.pipeline.warm_up()
        self.poll_timer = self.create_timer(0.005, self._poll)
        self.diag_timer = self.create_timer(self.output.diagnostics_period, self._publish_diag)
        a = self.audio
        self.get_logger().info(
            f"audio front-end ready: {a.processing_rate} Hz processing, "
            f"{a.frame_length}/{a.hop_length} frame/hop, mics {list(self.mics.left)} / "
            f"{list(self.mics.right)}")

    # ---------------------------------------------------------------- config
    def _apply(self, configs):
        self.audio = configs[AudioFrontEndConfig]
        self.mics = configs[MicArrayConfig]
        self.capture = configs[AudioCaptureConfig]
        self.output = configs[AudioOutputConfig]
        self.pipeline = AudioPipeline(self.audio, self.mics)

    def _on_parameters(self, params):
        result, configs = validate_parameter_change(self, self._stages, params)
        if result.successful:
            old_capture = self.capture
            self._apply(configs)
            self.pipeline.warm_up()
            if configs[AudioCaptureConfig] != old_capture:
                self._close_source()
        return result

    # ---------------------------------------------------------------- source
    def _now_sec(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

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
        self.get_logger().info(f"capturing from {src.device_name} at {src.sample_rate} Hz")

    def _close_source(self):
        if self.source is not None:
            self.source.close()
            self.source = None
        self._next_open = 0.0  # reopen at once (a failed device waits reconnect_interval)
        self.pipeline.front_end.reset()

    # ------------------------------------------------------------ processing
    def _poll(self):
        if self.source is None:
            self._open_source()
            if self.source is None:
                return
        try:
            chunks = self.source.read(0.0)
        except AudioSourceError as exc:
            self.diag.condition("input", 2, str(exc))
            self._close_source()
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
        return feats

    # ----------------------------------------------------------- diagnostics
    def _publish_diag(self):
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
        self.diag.publish(values)  # events per period; "input" until the device opens

    def destroy_node(self):
        self._close_source()
        return super().destroy_node()


def main(args=None):
    return run_node(AudioFeaturesNode, "audio_features_node", (), args)


if __name__ == "__main__":
    sys.exit(main())
