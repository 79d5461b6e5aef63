"""Settings only the ROS nodes use (topics, QoS, queues): stage configs without rclpy,
so that the params files, the offline commands and the documentation know them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..core.config import ConfigError, StageConfig, param

__all__ = ["TrackerInputConfig"]


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
