"""Stereo frames from OpenCV ``VideoCapture``: two devices, or one side-by-side device
split in half (a video file path works as a device)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ...core.config import StereoCameraConfig
from ...core.stereo import StereoCalibration, StereoInputError
from ..image_msgs import read_stereo_calibration_yaml
from .frame import StereoFrame, StereoSourceError


def _device(spec):
    """VideoCapture argument: an int index for digit strings, else the string (path/URL)."""
    if isinstance(spec, (int, np.integer)):
        return int(spec)
    s = str(spec)
    return int(s) if s.isdigit() else s


class VideoCaptureStereoSource:
    """Stereo frames from OpenCV ``VideoCapture``: two devices, or one side-by-side device.

    Parameters
    ----------
    left : int or str
        Device index (``0`` = /dev/video0), device path, video file or URL.
        With ``right=None`` this is a side-by-side device: each frame holds the
        left image in its left half and the right image in its right half.
    right : int or str, optional
        The right camera when the pair comes from two devices.
    calibration : StereoCalibration, StereoCameraConfig or path, optional
        The pair's calibration: an object, or an OpenCV stereo calibration file
        (:func:`~av_perception.io.image_msgs.read_stereo_calibration_yaml`;
        raw frames are then rectified by the front-end).  Default:
        ``StereoCameraConfig()``.
    width, height : int, optional
        Size asked of the device(s) per camera (default: the calibration's).
    fps : float, optional
        Frame rate asked of the device(s); for video files, the rate used to
        stamp frames when the file does not state one.
    clock : callable, optional
        Returns the current time in seconds (default ``time.time``).  Live
        frames are stamped with the clock at grab time (the mean over both
        devices); video files get ``clock()`` at open + frame index / file fps.
    translation_scale : float
        For calibration files: multiplies T to get metres.

    Reading: :meth:`read` returns the next :class:`StereoFrame`, or ``None``
    at the end of a video file.  A frame of the wrong size is skipped with a
    message in :attr:`errors`; after ``max_consecutive_errors`` such frames
    :class:`StereoSourceError` is raised (the device does not deliver what the
    calibration expects).  A device that stops delivering frames raises
    :class:`StereoSourceError`.
    """

    def __init__(self, left=0, right=None, calibration=None, *, width: int | None = None,
                 height: int | None = None, fps: float | None = None, clock=None,
                 translation_scale: float = 1.0, max_consecutive_errors: int = 30,
                 frame_id: str | None = None):
        if calibration is None:
            calibration = StereoCameraConfig()
        if isinstance(calibration, StereoCameraConfig):
            frame_id = frame_id or calibration.frame_id
            fps = fps or calibration.fps
            calibration = StereoCalibration.from_config(calibration)
        elif isinstance(calibration, (str, Path)):
            calibration = read_stereo_calibration_yaml(calibration, translation_scale)
        if not isinstance(calibration, StereoCalibration):
            raise TypeError("calibration must be a StereoCalibration, a StereoCameraConfig or "
                            f"the path of a stereo calibration file, got {type(calibration)}")
        self.calibration = calibration
        self.frame_id = frame_id or "stereo_left_optical_frame"
        self.left_spec = _device(left)
        self.right_spec = None if right is None else _device(right)
        self.side_by_side = right is None
        self.width = int(width or calibration.width)
        self.height = int(height or calibration.height)
        self.fps = float(fps) if fps else None
        self.clock = clock or time.time
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.errors: list[str] = []
        self.frames_read = 0
        self.frames_skipped = 0
        self._caps: list = []
        self._is_file = all(isinstance(s, str) and Path(s).is_file()
                            for s in (self.left_spec, self.right_spec) if s is not None)
        self._t0 = 0.0
        self._file_fps = 0.0
        self._index = 0

    @property
    def device_name(self) -> str:
        if self.side_by_side:
            return f"{self.left_spec} (side by side)"
        return f"{self.left_spec} + {self.right_spec}"

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self) -> None:
        """Open the device(s); raises StereoSourceError naming the device and the fix."""
        self.close()
        specs = [self.left_spec] if self.side_by_side else [self.left_spec, self.right_spec]
        for spec in specs:
            cap = cv2.VideoCapture(spec)
            if not cap.isOpened():
                cap.release()
                self.close()
                hint = ("the file does not exist or OpenCV cannot decode it" if isinstance(
                    spec, str) else "check the index (ls /dev/video*), the permissions (video "
                    "group) and that no other program holds the camera")
                raise StereoSourceError(f"cannot open video device {spec!r}: {hint}")
            if not self._is_file:
                w = self.width * (2 if self.side_by_side else 1)
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
                if self.fps:
                    cap.set(cv2.CAP_PROP_FPS, self.fps)
            self._caps.append(cap)
        self._t0 = float(self.clock())
        self._file_fps = float(self._caps[0].get(cv2.CAP_PROP_FPS) or 0.0) or self.fps or 15.0
        self._index = 0

    def close(self) -> None:
        for cap in self._caps:
            cap.release()
        self._caps = []

    def _grab(self) -> tuple[list, float] | None:
        times = []
        for cap in self._caps:
            ok = cap.grab()
            times.append(float(self.clock()))
            if not ok:
                if self._is_file:
                    return None
                raise StereoSourceError(
                    f"video device {self.device_name} stopped delivering frames (unplugged, or "
                    "its driver failed): reconnect it and reopen the source")
        images = []
        for cap in self._caps:
            ok, img = cap.retrieve()
            if not ok or img is None:
                if self._is_file:
                    return None
                raise StereoSourceError(
                    f"video device {self.device_name} delivered an undecodable frame")
            images.append(img)
        if self._is_file:
            stamp = self._t0 + self._index / self._file_fps
        else:
            stamp = float(np.mean(times))
        self._index += 1
        return images, stamp

    def _split(self, images):
        if not self.side_by_side:
            return images[0], images[1]
        frame = images[0]
        w = frame.shape[1]
        if w % 2:
            raise StereoInputError(
                f"side-by-side frame is {w} pixels wide (odd): it cannot be split into a left and "
                "a right half; is the device really a side-by-side stereo camera?")
        return frame[:, : w // 2], frame[:, w // 2:]

    @staticmethod
    def _bgr(img):
        if img.ndim == 2:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if img.shape[2] == 4:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        return img

    def read(self) -> StereoFrame | None:
        """The next usable frame, or None at the end of a video file."""
        if not self._caps:
            self.open()
        failures = 0
        while True:
            got = self._grab()
            if got is None:
                return None
            images, stamp = got
            try:
                left, right = self._split(images)
                left, right = self._bgr(left), self._bgr(right)
                self.calibration.check_images(left, right)
            except StereoInputError as exc:
                self.frames_skipped += 1
                failures += 1
                self.errors.append(f"frame at {stamp:.3f} s skipped: {exc}")
                if failures >= self.max_consecutive_errors:
                    raise StereoSourceError(
                        f"{failures} consecutive unusable frames from {self.device_name}: "
                        f"{exc}") from None
                continue
            self.frames_read += 1
            return StereoFrame(stamp, np.ascontiguousarray(left), np.ascontiguousarray(right),
                               self.calibration)

    def __iter__(self) -> Iterator[StereoFrame]:
        if not self._caps:
            self.open()
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame
