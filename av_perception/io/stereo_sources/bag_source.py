"""Stereo frames from a rosbag2 (sqlite3 or mcap), in stamp order: Image or
CompressedImage pairs and their CameraInfo; an unusable frame is skipped with its
reason recorded and reading goes on."""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator

from ...core.config import StereoCameraConfig
from ...core.stereo import CalibrationError, StereoCalibration, StereoInputError
from ..bag import BagError, BagReader
from ..image_msgs import (
    ImageConversionError,
    stamp_to_seconds,
    stereo_pair_to_numpy,
)
from .calibration_cache import CalibrationCache
from .frame import StereoFrame
from .sync import ApproximateTimeSync
from .topics import detect_stereo_topics


class BagStereoSource:
    """Stereo frames from a rosbag2 (sqlite3 or mcap), in stamp order.

    Parameters
    ----------
    path : path
        Bag directory (or its .db3/.mcap file).
    left_topic, right_topic, left_info, right_info : str, optional
        Topic names; detected when not given (:func:`detect_stereo_topics`).
    slop : float
        Largest left/right stamp difference (s) of a pair.
    start, duration : float, optional
        Read from ``start`` seconds after the bag's first message, for
        ``duration`` seconds (of recording time).
    calibration : StereoCalibration or StereoCameraConfig, optional
        Used instead of the bag's CameraInfo (required when it has none).
    images_rectified : bool, optional
        See :meth:`StereoCalibration.from_camera_info` (None: inferred).
    queue_size : int
        Images kept per side while waiting for the partner.

    Iterating yields :class:`StereoFrame` ``(stamp, left, right, calibration)``.
    Unusable frames are skipped, each with a message in :attr:`errors`:
    undecodable images (corrupt JPEG), unsupported encodings, left/right size
    mismatch, images of another size than the calibration, and pairs that
    arrive before (or without) both CameraInfo messages.  Counts:
    :attr:`frames_read`, :attr:`frames_skipped`, :attr:`unpaired` (left, right).
    A truncated or corrupt bag file ends the iteration and sets :attr:`truncated`.

    Raises
    ------
    BagError
        When the bag cannot be opened or the topics are missing/ambiguous.
    """

    def __init__(self, path, left_topic: str | None = None, right_topic: str | None = None,
                 left_info: str | None = None, right_info: str | None = None,
                 slop: float = 0.02, *, start: float | None = None,
                 duration: float | None = None,
                 calibration: StereoCalibration | StereoCameraConfig | None = None,
                 images_rectified: bool | None = None, queue_size: int = 10):
        if start is not None and not (math.isfinite(start) and start >= 0):
            raise ValueError(f"start must be >= 0 seconds, got {start}")
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be > 0 seconds, got {duration}")
        if isinstance(calibration, StereoCameraConfig):
            calibration = StereoCalibration.from_config(calibration)
        self.fixed_calibration = calibration
        self.bag = BagReader(path)
        try:
            self.topics = detect_stereo_topics(
                self.bag.topics, left_topic, right_topic, left_info, right_info,
                require_info=calibration is None)
        except BagError:
            self.bag.close()
            raise
        self.path = self.bag.path
        self.slop = float(slop)
        self.sync = ApproximateTimeSync(slop, queue_size)
        self._cache = CalibrationCache(images_rectified)
        self._start = None if start is None else self.bag.start_time + int(round(start * 1e9))
        self._stop = None
        if duration is not None:
            base = self._start if self._start is not None else self.bag.start_time
            self._stop = base + int(round(duration * 1e9))
        self._errors: list[str] = []
        self.frames_read = 0
        self.frames_skipped = 0
        self.frame_id = ""
        self.header = None  # the left image's header of the latest frame (exact stamp)
        self.first_stamp = float("nan")
        self.last_stamp = float("nan")

    # ------------------------------------------------------------ properties
    @property
    def errors(self) -> list[str]:
        """Why frames were skipped, then problems reading the bag itself."""
        return self._errors + self.bag.errors

    @property
    def truncated(self) -> bool:
        return self.bag.truncated

    @property
    def unpaired(self) -> tuple[int, int]:
        """Left and right images that found no partner within the slop."""
        return self.sync.unpaired[0], self.sync.unpaired[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.bag.close()

    # -------------------------------------------------------------- reading
    def __iter__(self) -> Iterator[StereoFrame]:
        t = self.topics
        side_of = {t.left_image: 0, t.right_image: 1}
        info_side = {t.left_info: 0, t.right_info: 1} if t.left_info else {}
        infos: list = [None, None]  # latest (msg, stamp) per side
        pending: deque = deque()
        wanted = [t.left_image, t.right_image] + ([t.left_info, t.right_info] if info_side
                                                  else [])
        for m in self.bag.messages(wanted, start=self._start, stop=self._stop):
            stamp = stamp_to_seconds(m.msg.header)
            if m.topic in info_side:
                infos[info_side[m.topic]] = (m.msg, stamp)
            else:
                pending.extend(self.sync.add(side_of[m.topic], stamp, m.msg))
            yield from self._release(pending, infos, final=False)
        self.sync.flush()
        yield from self._release(pending, infos, final=True)

    def _release(self, pending: deque, infos: list, final: bool):
        """Process waiting pairs whose CameraInfo has arrived (or can no longer arrive:
        a later pair is complete, or the bag ended)."""
        while pending:
            stamp = pending[0][0]
            fresh = all(i is not None and i[1] >= stamp - self.slop for i in infos)
            if not (fresh or final or len(pending) > 1 or self.fixed_calibration is not None):
                return
            stamp, lmsg, rmsg = pending.popleft()
            frame = self._frame(stamp, lmsg, rmsg, infos)
            if frame is not None:
                yield frame

    def _skip(self, stamp: float, reason: str) -> None:
        self.frames_skipped += 1
        self._errors.append(f"frame at {stamp:.3f} s skipped: {reason}")

    def _frame(self, stamp, lmsg, rmsg, infos) -> StereoFrame | None:
        cal = self.fixed_calibration
        if cal is None:
            t = self.topics
            for k, (side, topic) in enumerate((("left", t.left_info), ("right", t.right_info))):
                if infos[k] is None:
                    self._skip(stamp, f"no CameraInfo on {topic} before this pair (the {side} "
                               "camera's calibration is missing): record the camera_info topics "
                               "with the images, or give the calibration (camera.* with "
                               "vision_input.use_camera_info: false)")
                    return None
        try:
            left, right = stereo_pair_to_numpy(lmsg, rmsg)
        except ImageConversionError as exc:
            self._skip(stamp, str(exc))
            return None
        if cal is None:
            try:
                cal = self._cache.get(infos[0][0], infos[1][0],
                                      (left.shape[1], left.shape[0]))
            except CalibrationError as exc:
                self._skip(stamp, f"camera_info unusable: {exc}")
                return None
        try:
            cal.check_images(left, right)
        except StereoInputError as exc:
            self._skip(stamp, str(exc))
            return None
        self.frames_read += 1
        self.frame_id = str(lmsg.header.frame_id)
        self.header = lmsg.header
        if self.frames_read == 1:
            self.first_stamp = stamp
        self.last_stamp = stamp
        return StereoFrame(stamp, left, right, cal)
