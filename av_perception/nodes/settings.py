"""Settings only the ROS nodes use (topics, QoS, queues, publishers, diagnostics): stage
configs without rclpy, so that the params files, the offline commands and the documentation
know them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..core.config import ConfigError, StageConfig, param

__all__ = ["AudioOutputConfig", "FusionNodeConfig", "TrackerInputConfig", "TrackingNodeConfig",
           "VoiceOutputConfig"]


@dataclass(frozen=True)
class TrackerInputConfig(StageConfig):
    """The left image that tracker_node annotates for ``speakers/image`` (section
    ``tracker_input``; the observations and audio features come on ``visual/observations``
    and ``audio/features``, remap those)."""

    SECTION: ClassVar[str] = "tracker_input"

    image_topic: str = param(
        "stereo/left/image_raw", "Left image topic annotated into speakers/image (base name, "
        "without /compressed).")
    info_topic: str = param(
        "stereo/left/camera_info", "Left CameraInfo topic (projection of the tracks into the "
        "image; the camera.* parameters until it arrives).")
    compressed: bool = param(
        False, "Subscribe to sensor_msgs/CompressedImage on '<image_topic>/compressed'.")
    image_queue: int = param(
        30, "Left images kept while waiting for the observations of the same stamp.",
        low=1, high=1000)
    reliability: str = param(
        "best_effort", "QoS reliability of the image and camera_info subscriptions.",
        choices=("best_effort", "reliable"))

    def validate(self):
        for name in ("image_topic", "info_topic"):
            if not getattr(self, name).strip():
                raise ConfigError(f"parameter 'tracker_input.{name}' is empty: give a topic name")


@dataclass(frozen=True)
class AudioOutputConfig(StageConfig):
    """What the audio node publishes, and when."""

    SECTION: ClassVar[str] = "output"

    frame_id: str = param(
        "stereo_left_optical_frame",
        "frame_id of audio/direction and audio/features (the frame of the mic positions).")
    direction_min_activity: float = param(
        0.5, "Publish audio/direction only for frames with at least this activity.",
        low=0.0, high=1.0)
    direction_min_reliability: float = param(
        0.3, "Publish audio/direction only for frames with at least this GCC-PHAT reliability.",
        low=0.0, high=1.0)
    diagnostics_period: float = param(
        1.0, "Seconds between /diagnostics messages.", low=0.1, high=60.0)
    fixed_frame: str = param(
        "", "audio_features_node: read /tf and /tf_static and turn the front-end's "
        "precedence memory with the head -- the rotation of output.frame_id (the "
        "microphones' frame, moving with the head) in this frame at each chunk (set it to "
        "the tracker's tracking.fixed_frame).  '' = /tf is not read.  perception_node uses "
        "tracking.fixed_frame.")


@dataclass(frozen=True)
class FusionNodeConfig(StageConfig):
    """The subscriptions and diagnostics of av_fusion_node (section ``fusion_input``, shared
    with the pipeline's :class:`~av_perception.pipeline.FusionInputConfig`)."""

    SECTION: ClassVar[str] = "fusion_input"

    queue_size: int = param(
        20, "Depth of the audio/features and visual/observations subscriptions (reliable).",
        low=1, high=1000)
    diagnostics_period: float = param(
        1.0, "Seconds between /diagnostics messages.", low=0.1, high=60.0)


@dataclass(frozen=True)
class TrackingNodeConfig(StageConfig):
    """What the tracking stage of a node publishes besides ``speakers`` (section
    ``tracking``, shared with the pipeline's :class:`~av_perception.pipeline.TrackingConfig`
    and :class:`~av_perception.io.track_output.TrackOutputConfig`)."""

    SECTION: ClassVar[str] = "tracking"

    publish_markers: bool = param(
        True, "Publish speakers/markers (visualization_msgs/MarkerArray) for RViz.")
    publish_image: bool = param(
        True, "Publish speakers/image, the left image annotated with the tracks.")
    publish_voices: bool = param(
        False, "Publish ROS4HRI-style std_msgs/Bool <voices_namespace>/<voice_id_prefix><id>/"
        "is_speaking per track (publishers created and destroyed with the tracks).")
    voices_namespace: str = param(
        "/humans/voices", "Namespace of the per-track voice topics (is_speaking; perception_node's "
        "audio with voice_output.publish_audio).")
    voice_id_prefix: str = param(
        "voice", "Prefix of the voice ids (ROS topic name tokens cannot start with a digit).")
    diagnostics_period: float = param(
        1.0, "Seconds between /diagnostics messages of the tracking stage.", low=0.1, high=60.0)

    def validate(self):
        ns = self.voices_namespace
        if not ns.startswith("/") or ns.endswith("/") or "//" in ns:
            raise ConfigError(
                f"parameter 'tracking.voices_namespace' = {ns!r} is not allowed: must be an "
                "absolute topic namespace such as '/humans/voices'")
        p = self.voice_id_prefix
        if not p or not (p[0].isalpha()) or not all(c.isalnum() or c == "_" for c in p):
            raise ConfigError(
                f"parameter 'tracking.voice_id_prefix' = {p!r} is not allowed: must start with "
                "a letter and contain only letters, digits and '_'")


@dataclass(frozen=True)
class VoiceOutputConfig(StageConfig):
    """perception_node's live voices (section ``voice_output``; the clustering and the
    voices: the ``voices`` section)."""

    SECTION: ClassVar[str] = "voice_output"

    publish_audio: bool = param(
        False, "Publish each track's separated voice as <tracking.voices_namespace>/"
        "<tracking.voice_id_prefix><id>/audio (audio_common_msgs/AudioStamped: mono float32 "
        "at audio.processing_rate, stamped with its first sample's time on the audio's "
        "clock; publishers created and destroyed with the voices).  Costs CPU: the voice "
        "stage clusters a voices.window every voice_output.hop.")
    hop: float = param(
        0.048, "voices.hop of the live voices (s): a voice lags its sound by one hop plus one "
        "audio frame (0.048: 80 ms at 16 kHz) at about window / hop times the CPU of "
        "non-overlapping windows (the window: voice_output.window); 0: voices.hop.",
        low=0.0, high=2.0)
    window: float = param(
        0.2, "voices.window of the live voices (s): every hop the last window of frames is "
        "clustered and the hop's new frames get their voices (0.2 with the 0.048 hop: less "
        "CPU and latency than the 0.4 s window with a 0.064 hop, and double talk separated "
        "better: BENCHMARKS.md); 0: voices.window.", low=0.0, high=2.0)
