"""The :class:`StereoCalibration` of the latest CameraInfo pair, rebuilt only when the
infos change."""
from __future__ import annotations

from ...core.stereo import CalibrationError, StereoCalibration
from ..image_msgs import camera_info_to_dict


def _info_key(info) -> tuple:
    d = camera_info_to_dict(info)
    return (d["width"], d["height"], d["distortion_model"], d["k"].tobytes(), d["d"].tobytes(),
            d["r"].tobytes(), d["p"].tobytes())


class CalibrationCache:
    """Builds a :class:`StereoCalibration` from the latest CameraInfo pair, and keeps the
    same object while the infos do not change (so the front-end is not rebuilt per frame).

    Parameters
    ----------
    images_rectified : bool or None
        See :meth:`StereoCalibration.from_camera_info`.
    """

    def __init__(self, images_rectified: bool | None = None):
        self.images_rectified = images_rectified
        self.calibration: StereoCalibration | None = None
        self._key = None
        self.rebuilds = 0

    def get(self, left_info, right_info, image_size=None) -> StereoCalibration:
        """The calibration of these infos; raises CalibrationError naming the problem.

        ``image_size`` (width, height) is checked against the infos.
        """
        key = (_info_key(left_info), _info_key(right_info), self.images_rectified)
        if key != self._key and image_size is not None:
            # before building: rectification maps of a broken (huge) size would take
            # gigabytes; the images say what the calibration must be for
            for info in (left_info, right_info):
                if info is not None and (int(info.width), int(info.height)) != tuple(
                        int(v) for v in image_size):
                    raise CalibrationError(
                        f"camera_info is for {info.width}x{info.height} images but the images "
                        f"are {image_size[0]}x{image_size[1]}: the calibration does not belong "
                        "to this resolution (recalibrate, or set the cameras to the calibrated "
                        "resolution)")
        if key != self._key:
            self.calibration = None
            self._key = None
            cal = StereoCalibration.from_camera_info(
                camera_info_to_dict(left_info), camera_info_to_dict(right_info),
                self.images_rectified)
            self.calibration, self._key = cal, key
            self.rebuilds += 1
        cal = self.calibration
        if image_size is not None and tuple(int(v) for v in image_size) != cal.image_size:
            raise CalibrationError(
                f"camera_info is for {cal.width}x{cal.height} images but the images are "
                f"{image_size[0]}x{image_size[1]}: the calibration does not belong to this "
                "resolution (recalibrate, or set the cameras to the calibrated resolution)")
        return cal
