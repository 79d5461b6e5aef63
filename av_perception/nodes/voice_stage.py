"""perception_node's live voices: ``<voices_namespace>/<voice id>/audio`` per track.

:class:`VoiceAudioStage` feeds the audio stage's features (with their STFT) and the
tracker's outputs (camera frame) to a :class:`~av_perception.pipeline.live_voices.
LiveVoices` and publishes each chunk of a track's voice as ``audio_common_msgs/
AudioStamped`` (mono float32 at the processing rate, stamped with its first sample's time
on the audio's clock) on ``<tracking.voices_namespace>/<tracking.voice_id_prefix><id>/
audio`` -- beside the ``is_speaking`` topics of ``tracking.publish_voices``.  A topic's
publisher is created with the voice's first chunk and destroyed once the voice of a track
that ended is all out.  One /diagnostics status (``... voices``) while it is on.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.config import ConfigError
from ..core.tf_masks import VoiceConfig
from ..pipeline.live_voices import LiveVoices
from .common import Diagnostics
from .conversions import sec_to_time
from .settings import AudioOutputConfig, TrackingNodeConfig, VoiceOutputConfig
from .tracking_stage import percentile_ms

__all__ = ["VoiceAudioStage", "live_voice_config"]

#: PortAudio's paFloat32 (audio_common 4.x AudioInfo.format)
PA_FLOAT32 = 1


def live_voice_config(configs: dict) -> VoiceConfig:
    """The voices.* config of the live voices: ``voices.window`` = ``voice_output.window``
    and ``voices.hop`` = ``voice_output.hop`` (each when not 0).  Raises ConfigError when
    ``voice_output.window`` is shorter than ``voices.window`` may be or the hop longer than
    the window."""
    voices = configs.get(VoiceConfig, VoiceConfig())
    out = configs.get(VoiceOutputConfig, VoiceOutputConfig())
    window, hop = voices.window, out.hop
    if out.window > 0:  # VoiceConfig's own lower bound, named after this parameter
        low = VoiceConfig.__dataclass_fields__["window"].metadata.get("low", 0.1)
        if out.window < low:
            raise ConfigError(f"parameter 'voice_output.window' = {out.window} is shorter "
                              f"than a clustering window can be ({low} s, as voices.window): "
                              f"give at least {low}, or 0 for voices.window")
        window = out.window
    name = "'voice_output.window'" if out.window > 0 else "'voices.window'"
    if hop > window:
        raise ConfigError(f"parameter 'voice_output.hop' = {hop} is longer than {name} = "
                          f"{window} (the live voices' window: voice_output.window, or "
                          "voices.window when it is 0): give a hop <= the window")
    # the speaking gate looks back over voices.window whatever the live window (a shorter
    # one would gate a talker out at every restart after a pause)
    span = max(voices.speaking_gate_span, voices.window)
    if hop <= 0:
        return dataclasses.replace(voices, window=window, speaking_gate_span=span)
    return dataclasses.replace(voices, window=window, hop=hop, speaking_gate_span=span)


class VoiceAudioStage:
    """Live per-track voices on ``node`` (see module docstring).  ``front_end`` and
    ``geometry``: the audio stage's (its pipeline built with ``keep_spectra``)."""

    CONFIGS = (VoiceConfig, VoiceOutputConfig)

    def __init__(self, node, diag_name: str):
        self.node = node
        self.diag_name = diag_name
        self.diag = None
        self.diag_timer = None
        self.live = None
        self.publishers: dict = {}  # track id -> publisher
        self.msg_type = None
        self.problem = ""  # why nothing is published although publish_audio is on
        self.enabled = False
        self.chunks_published = 0
        self.topics_created = 0

    # ---------------------------------------------------------------- config
    def configure(self, configs: dict, front_end, geometry) -> None:
        """New configs (validated; :func:`live_voice_config` checked) and the audio stage's
        new front-end: the voices so far are published, a new stream starts."""
        self.finish()
        self.output = configs.get(VoiceOutputConfig, VoiceOutputConfig())
        self.names = configs.get(TrackingNodeConfig, TrackingNodeConfig())
        self.frame_id = configs.get(AudioOutputConfig, AudioOutputConfig()).frame_id
        period = configs.get(AudioOutputConfig, AudioOutputConfig()).diagnostics_period
        self.enabled = self.output.publish_audio
        self.live = (LiveVoices(front_end, geometry, live_voice_config(configs))
                     if self.enabled else None)
        if self.diag_timer is not None:
            self.node.destroy_timer(self.diag_timer)
            self.diag_timer = None
        if self.enabled:
            if self.diag is None:
                self.diag = Diagnostics(self.node, self.diag_name)
            self.diag_timer = self.node.create_timer(period, self.publish_diagnostics)
            self._message_type()

    def _message_type(self):
        if self.msg_type is None and not self.problem:
            try:
                from audio_common_msgs.msg import AudioStamped
            except ImportError:
                AudioStamped = None
            if AudioStamped is None or not hasattr(AudioStamped().audio, "audio_data"):
                self.problem = (
                    "audio_common_msgs (audio_common 4.x, AudioStamped) is not installed: the "
                    "voices are not published; install ros-<distro>-audio-common-msgs "
                    "(audio_common 4.x), or run 'make msgs' in a pip-only environment")
                self.diag.condition("audio_common_msgs", 1, self.problem)
            else:
                self.msg_type = AudioStamped
        return self.msg_type

    # ------------------------------------------------------------ processing
    def add_output(self, output) -> None:
        """A tracker output in the camera frame (any thread)."""
        if self.live is not None and output is not None:
            self.live.add_outputs([output])

    def input_chunk(self, start: float, end: float, clipped: bool) -> None:
        """An audio chunk [start, end) s arrived (before its features are pushed)."""
        if self.live is not None:
            self.live.input_chunk(start, end, self._now(), clipped)
            if clipped:
                self.diag.warn("input is clipping: the voices are silent there (lower the "
                               "capture gain)")

    def push(self, features) -> int:
        """The audio stage's features (with ``spec``): publish the voices' final chunks;
        returns the number of messages."""
        if self.live is None or not len(features):
            return 0
        chunks = self.live.push(features, self._now())
        if self.live.restart_reason:
            self.diag.warn(self.live.restart_reason)
            self.live.restart_reason = ""
        return self._publish(chunks, self.live.ended)

    def finish(self) -> int:
        """The stream ends (reconfiguration, shutdown): every remaining sample out, every
        voice topic closed."""
        if self.live is None:
            return 0
        n = self._publish(self.live.flush(), list(self.publishers))
        self.live = None
        return n

    def _publish(self, chunks, ended) -> int:
        msg_type = self._message_type()
        n = 0
        if msg_type is not None:
            depth = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                               reliability=ReliabilityPolicy.RELIABLE)
            for c in chunks:
                pub = self.publishers.get(c.track_id)
                if pub is None:
                    pub = self.publishers[c.track_id] = self.node.create_publisher(
                        msg_type, self.topic(c.track_id), depth)
                    self.topics_created += 1
                msg = msg_type()
                msg.header.stamp = sec_to_time(c.stamp)
                msg.header.frame_id = self.frame_id
                msg.audio.audio_data.float32_data = np.asarray(c.samples, np.float32).tolist()
                info = msg.audio.info
                info.format, info.channels, info.rate, info.chunk = (
                    PA_FLOAT32, 1, int(c.rate), len(c.samples))
                pub.publish(msg)
                n += 1
        self.chunks_published += n
        for tid in ended:  # the voice of an ended track is all out
            pub = self.publishers.pop(tid, None)
            if pub is not None:
                self.node.destroy_publisher(pub)
        return n

    def topic(self, track_id: int) -> str:
        n = self.names
        return f"{n.voices_namespace}/{n.voice_id_prefix}{int(track_id)}/audio"

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    # ----------------------------------------------------------- diagnostics
    def values(self) -> dict:
        live = self.live
        sound, added = live.pop_latencies() if live is not None else ([], [])
        added = [x for x in added if np.isfinite(x)]
        return {
            "voice_topics": len(self.publishers),
            "voice_ids": " ".join(f"{self.names.voice_id_prefix}{t}"
                                  for t in sorted(self.publishers)) or "none",
            "chunks_published": self.chunks_published,
            "latency_bound_ms": 1000.0 * live.latency_bound if live else float("nan"),
            "latency_p50_ms": percentile_ms(sound, 50),
            "latency_p99_ms": percentile_ms(sound, 99),
            "latency_max_ms": 1000.0 * max(sound) if len(sound) else float("nan"),
            "added_latency_p50_ms": percentile_ms(added, 50),
            "added_latency_p99_ms": percentile_ms(added, 99),
            "added_latency_max_ms": 1000.0 * max(added) if added else float("nan"),
            "clipped_chunks": live.clipped_chunks if live else 0,
            "clipped_samples_zeroed": live.zeroed_samples if live else 0,
            "restarts": live.restarts if live else 0,
        }

    def publish_diagnostics(self):
        if self.diag is None:
            return
        values = self.values()
        if self.enabled and not self.publishers and not self.problem:
            values["note"] = "no track: no voice topic"
        self.diag.publish(values)

    def close(self):
        self.finish()
        for pub in self.publishers.values():
            self.node.destroy_publisher(pub)
        self.publishers = {}
