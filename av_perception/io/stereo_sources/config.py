"""How the visual node and the ``vision`` command take their image input (section
``vision_input``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...core.config import ConfigError, StageConfig, param


@dataclass(frozen=True)
class VisionInputConfig(StageConfig):
    """Image input of the visual front-end (section ``vision_input``)."""

    SECTION: ClassVar[str] = "vision_input"

    compressed: bool = param(
        False, "Subscribe to sensor_msgs/CompressedImage (JPEG/PNG) on '<image topic>/compressed' "
        "(image_transport naming) instead of sensor_msgs/Image on the image topics.")
    left_image_topic: str = param(
        "stereo/left/image_raw", "Left image topic (relative names are namespaced and can be "
        "remapped).")
    right_image_topic: str = param("stereo/right/image_raw", "Right image topic.")
    left_info_topic: str = param("stereo/left/camera_info", "Left CameraInfo topic.")
    right_info_topic: str = param(
        "stereo/right/camera_info", "Right CameraInfo topic (rectified pair: baseline "
        "B = -P[0,3] / P[0,0]).")
    use_camera_info: bool = param(
        True, "Take the calibration from the CameraInfo topics; false: from the camera.* "
        "parameters (images assumed rectified).")
    images_rectified: str = param(
        "auto", "Whether the images are rectified: 'auto' (raw when CameraInfo has a non-zero D "
        "or a non-identity R), 'rectified' (e.g. image_rect topics) or 'raw' (rectify with the "
        "CameraInfo).", choices=("auto", "rectified", "raw"))
    slop: float = param(
        0.02, "Largest stamp difference (s) between the left and right image of one pair; keep "
        "it below half the frame period (0 = identical stamps only).", low=0.0, high=1.0)
    queue_size: int = param(
        10, "Images kept per side while waiting for the partner (also the subscription depth).",
        low=1, high=1000)
    max_pending_pairs: int = param(
        1, "Synchronised pairs waiting for processing; when processing is slower than the "
        "input the oldest are dropped (1 = always process the newest pair).", low=1, high=1000)
    reliability: str = param(
        "best_effort", "QoS reliability of the image and camera_info subscriptions "
        "('best_effort' also receives from reliable publishers).",
        choices=("best_effort", "reliable"))
    tracks_topic: str = param(
        "speakers", "visual_features_node: the tracker's tracks (tracker_node's 'speakers' "
        "cloud); the detector also looks around their heads predicted to each image "
        "(BlazeFace, detection.max_regions).  Tracks in another frame than the "
        "observations, or older than 1 s, are not used.  '' = do not subscribe.  "
        "perception_node and 'process' take the tracks in-process and ignore this.  With "
        "the tracker in a fixed frame (tracking.fixed_frame) use 'speakers_camera' "
        "(tracking.publish_camera_frame).")
    fixed_frame: str = param(
        "", "visual_features_node: read /tf and /tf_static and follow the boxes between "
        "detector keyframes through the camera's turning in this frame (a turning head; "
        "set it to the tracker's tracking.fixed_frame).  '' = /tf is not read.  "
        "perception_node uses tracking.fixed_frame.")
    diagnostics_period: float = param(
        1.0, "Seconds between /diagnostics messages.", low=0.1, high=60.0)

    def validate(self):
        names = ("left_image_topic", "right_image_topic", "left_info_topic", "right_info_topic")
        for name in names:
            if not getattr(self, name).strip():
                raise ConfigError(
                    f"parameter 'vision_input.{name}' is empty: give a topic name")
        values = [getattr(self, n) for n in names]
        if len(set(values)) != len(values):
            raise ConfigError(
                "parameters 'vision_input.*_topic' must name four different topics, got "
                + ", ".join(f"{n}={v!r}" for n, v in zip(names, values)))

    @property
    def rectified_flag(self) -> bool | None:
        """``images_rectified`` for :meth:`StereoCalibration.from_camera_info`."""
        return {"auto": None, "rectified": True, "raw": False}[self.images_rectified]
