"""Stereo image sources without ROS: rosbag2 pairs (``bag_source``, topics detected by
``topics``), OpenCV capture (``capture``), the approximate-time pairing of left and
right images (``sync``), the CameraInfo calibration cache and the ``vision_input``
configuration.  Stamps are float seconds (header stamps); images are BGR ``uint8``."""
from __future__ import annotations

from .bag_source import BagStereoSource
from .calibration_cache import CalibrationCache
from .capture import VideoCaptureStereoSource
from .config import VisionInputConfig
from .frame import StereoFrame, StereoSourceError
from .sync import ApproximateTimeSync
from .topics import CAMERA_INFO_TYPE, IMAGE_TYPES, StereoTopics, detect_stereo_topics

__all__ = [
    "IMAGE_TYPES",
    "CAMERA_INFO_TYPE",
    "StereoSourceError",
    "StereoFrame",
    "StereoTopics",
    "VisionInputConfig",
    "ApproximateTimeSync",
    "CalibrationCache",
    "detect_stereo_topics",
    "BagStereoSource",
    "VideoCaptureStereoSource",
]
