"""Stereo image sources without ROS: rosbag2 pairs, OpenCV capture, and the
approximate-time pairing of left/right images used by them and by the node.

* :class:`ApproximateTimeSync` pairs left and right items (messages) by stamp
  within a slop, with bounded queues, counting the items left without a
  partner ("sync failures").
* :class:`BagStereoSource` reads ``sensor_msgs/Image`` or ``CompressedImage``
  pairs plus the two ``CameraInfo`` topics from a rosbag2 (topics detected
  automatically), and yields :class:`StereoFrame` ``(stamp, left, right,
  calibration)``.  A frame that cannot be used (corrupt JPEG, size mismatch,
  missing or inconsistent CameraInfo) is skipped and its reason recorded in
  :attr:`BagStereoSource.errors`; reading goes on.
* :class:`VideoCaptureStereoSource` grabs from OpenCV ``VideoCapture``: two
  devices, or one side-by-side device split in half (a video file path works
  as a device).
* :class:`VisionInputConfig` (section ``vision_input``): how the visual node
  (and the ``vision`` command) take their input.

Stamps are float seconds (header stamps); images are BGR ``uint8`` arrays.
"""
from __future__ import annotations

import bisect
import itertools
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import cv2
import numpy as np

from ..core.config import ConfigError, StageConfig, StereoCameraConfig, param
from ..core.stereo import CalibrationError, StereoCalibration, StereoInputError
from .bag import BagError, BagReader
from .image_msgs import (
    ImageConversionError,
    camera_info_to_dict,
    read_stereo_calibration_yaml,
    stamp_to_seconds,
    stereo_pair_to_numpy,
)

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

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"

#: topics tried first, in order, when the bag has several image topics per side
DEFAULT_IMAGE_TOPICS = {
    "left": ("/stereo/left/image_raw", "/stereo/left/image_raw/compressed"),
    "right": ("/stereo/right/image_raw", "/stereo/right/image_raw/compressed"),
}


class StereoSourceError(OSError):
    """A stereo source cannot be opened or stopped delivering frames."""


class StereoFrame(NamedTuple):
    """One synchronised, decoded stereo pair."""

    stamp: float  # s, left image header stamp
    left: np.ndarray  # (H, W, 3) uint8 BGR
    right: np.ndarray  # (H, W, 3) uint8 BGR
    calibration: StereoCalibration


# ---------------------------------------------------------------------------
# Configuration of the input (node and offline command)
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Pairing by stamp
# ---------------------------------------------------------------------------
_SIDES = {"left": 0, "right": 1, 0: 0, 1: 1}


class ApproximateTimeSync:
    """Pairs left and right items whose stamps differ by at most ``slop`` seconds.

    Items wait in one bounded queue per side, sorted by stamp.  Whenever both
    queues hold something, the oldest left and right items are compared:

    * stamps within ``slop``: they form a pair -- unless the next queued item
      of the older side is even closer to the other one, in which case the
      older item is dropped;
    * otherwise the older item can no longer find a partner (each topic
      arrives in stamp order) and is dropped.

    A pair is emitted as soon as it is found (no added latency).  This is the
    nearest-stamp pairing when ``slop`` is below half the frame period, which
    the node checks against the observed input rate.  Dropped items (also the
    oldest of a queue longer than ``queue_size``, e.g. when one camera is
    silent) are counted in :attr:`unpaired` -- the sync failures.

    Parameters
    ----------
    slop : float
        Seconds, >= 0.
    queue_size : int
        Items kept per side while waiting for a partner, >= 1.
    """

    def __init__(self, slop: float = 0.02, queue_size: int = 10):
        slop = float(slop)
        if not (math.isfinite(slop) and slop >= 0):
            raise ValueError(f"slop must be a finite number of seconds >= 0, got {slop}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.slop = slop
        self.queue_size = int(queue_size)
        self._queues: tuple[list, list] = ([], [])
        self._seq = itertools.count()
        self.pairs = 0
        self.unpaired = [0, 0]  # left, right
        self.overflows = 0
        #: |stamp difference| (s) of the last pair, and of the nearest other-side item when an
        #: item was dropped (nan when the other queue was empty)
        self.last_pair_offset = float("nan")
        self.last_unpaired_offset = float("nan")

    @property
    def failures(self) -> int:
        """Items dropped without a partner (both sides)."""
        return self.unpaired[0] + self.unpaired[1]

    def queued(self, side) -> int:
        return len(self._queues[self._side(side)])

    @staticmethod
    def _side(side) -> int:
        try:
            return _SIDES[side]
        except (KeyError, TypeError):
            raise ValueError(f"side must be 'left' (0) or 'right' (1), got {side!r}") from None

    def add(self, side, stamp: float, item: Any) -> list[tuple[float, Any, Any]]:
        """Queue ``item`` of ``side`` ('left'/'right' or 0/1) taken at ``stamp`` (s).

        Returns
        -------
        list of (stamp, left_item, right_item)
            The pairs completed by this item (stamp = the left item's), oldest first.
        """
        s = self._side(side)
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp {stamp} is not a finite time in seconds")
        bisect.insort(self._queues[s], (stamp, next(self._seq), item),
                      key=lambda e: (e[0], e[1]))
        out = self._match()
        for k in (0, 1):
            while len(self._queues[k]) > self.queue_size:
                self.overflows += 1
                self._drop(k)
        return out

    def _drop(self, k: int) -> None:
        stamp = self._queues[k].pop(0)[0]
        other = self._queues[1 - k]
        self.last_unpaired_offset = (min(abs(e[0] - stamp) for e in other) if other
                                     else float("nan"))
        self.unpaired[k] += 1

    def _match(self) -> list:
        left, right = self._queues
        out = []
        while left and right:
            tl, tr = left[0][0], right[0][0]
            dt = tr - tl
            if abs(dt) <= self.slop:
                if dt > 0 and len(left) > 1 and abs(tr - left[1][0]) < dt:
                    self._drop(0)
                    continue
                if dt < 0 and len(right) > 1 and abs(tl - right[1][0]) < -dt:
                    self._drop(1)
                    continue
                ln, rn = left.pop(0), right.pop(0)
                self.pairs += 1
                self.last_pair_offset = abs(dt)
                out.append((tl, ln[2], rn[2]))
            elif dt > 0:
                self._drop(0)
            else:
                self._drop(1)
        return out

    def flush(self) -> int:
        """Drop every queued item (end of input), counting them as unpaired; returns how many."""
        n = 0
        for k in (0, 1):
            while self._queues[k]:
                self._drop(k)
                n += 1
        return n

    def reset(self) -> None:
        """Forget the queued items without counting them (e.g. after a topic change)."""
        self._queues[0].clear()
        self._queues[1].clear()


# ---------------------------------------------------------------------------
# CameraInfo -> calibration, cached
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# rosbag2
# ---------------------------------------------------------------------------
@dataclass
class StereoTopics:
    left_image: str
    right_image: str
    left_info: str | None
    right_info: str | None

    def __str__(self) -> str:
        infos = (f"{self.left_info}, {self.right_info}" if self.left_info
                 else "no camera_info (calibration given)")
        return f"images {self.left_image}, {self.right_image}; {infos}"


def _has_side(topic: str, side: str) -> bool:
    parts = topic.replace("-", "_").split("/")
    return any(p == side or p.startswith(side + "_") or p.endswith("_" + side) for p in parts)


def _pick_image(topics: dict, side: str, listing: str) -> str:
    images = {t for t, m in topics.items() if m in IMAGE_TYPES}
    for name in DEFAULT_IMAGE_TOPICS[side]:  # raw before compressed: lossless
        if name in images:
            return name
    cands = sorted(t for t in images if _has_side(t, side))
    raw = [t for t in cands if topics[t] == IMAGE_TYPES[0]]
    comp = [t for t in cands if topics[t] == IMAGE_TYPES[1]]
    if len(raw) == 1:
        return raw[0]
    if not raw and len(comp) == 1:
        return comp[0]
    option = f"--{side}-topic"
    if not cands:
        raise BagError(
            f"no {side} image topic in the bag (looked for {', '.join(DEFAULT_IMAGE_TOPICS[side])} "
            f"or an Image/CompressedImage topic with '{side}' in its name); the bag has: "
            f"{listing}; name it with {option}")
    raise BagError(
        f"several {side} image topics in the bag ({', '.join(cands)}): choose one with "
        f"{option}; the bag has: {listing}")


def _check_topic(topics: dict, topic: str, types: tuple, what: str, listing: str) -> str:
    if topic not in topics:
        raise BagError(f"{what} topic {topic} is not in the bag; the bag has: {listing}")
    if topics[topic] not in types:
        raise BagError(f"{what} topic {topic} has type {topics[topic]}, expected "
                       f"{' or '.join(types)}; the bag has: {listing}")
    return topic


def _pick_info(topics: dict, image_topic: str, side: str) -> str | None:
    infos = {t for t, m in topics.items() if m == CAMERA_INFO_TYPE}
    base = image_topic[:-len("/compressed")] if image_topic.endswith("/compressed") \
        else image_topic
    sibling = base.rsplit("/", 1)[0] + "/camera_info"
    if sibling in infos:
        return sibling
    cands = sorted(t for t in infos if _has_side(t, side))
    return cands[0] if len(cands) == 1 else None


def detect_stereo_topics(topics: dict, left_image: str | None = None,
                         right_image: str | None = None, left_info: str | None = None,
                         right_info: str | None = None, require_info: bool = True
                         ) -> StereoTopics:
    """Choose the image and CameraInfo topics of a stereo pair among a bag's ``topics``
    ({name: type}).

    Given names are checked (existence, type).  Otherwise: the DESIGN defaults
    (``/stereo/{left,right}/image_raw`` then ``.../compressed``), else the only
    Image/CompressedImage topic with 'left' ('right') in its name; the right
    topic is first derived from the left one ('left' -> 'right'); each
    camera_info is the ``camera_info`` sibling of its image topic, else the
    only CameraInfo topic of that side.

    Raises
    ------
    BagError
        Missing or ambiguous topics, listing the bag's topics and the option
        that resolves it.
    """
    listing = ", ".join(f"{t} [{m}]" for t, m in sorted(topics.items())) or "no topics"
    if left_image:
        _check_topic(topics, left_image, IMAGE_TYPES, "left image", listing)
    else:
        left_image = _pick_image(topics, "left", listing)
    if right_image:
        _check_topic(topics, right_image, IMAGE_TYPES, "right image", listing)
    else:
        i = left_image.rfind("left")
        derived = left_image[:i] + "right" + left_image[i + 4:] if i >= 0 else ""
        if derived in topics and topics[derived] in IMAGE_TYPES:
            right_image = derived
        else:
            right_image = _pick_image(topics, "right", listing)
    if right_image == left_image:
        raise BagError(f"the left and right image topics are both {left_image}: give "
                       "--left-topic and --right-topic")
    out = {}
    for side, given, image in (("left", left_info, left_image), ("right", right_info,
                                                                 right_image)):
        if given:
            out[side] = _check_topic(topics, given, (CAMERA_INFO_TYPE,), f"{side} camera_info",
                                     listing)
        else:
            out[side] = _pick_info(topics, image, side)
    if require_info:
        for side in ("left", "right"):
            if out[side] is None:
                image = left_image if side == "left" else right_image
                base = image[:-len("/compressed")] if image.endswith("/compressed") else image
                raise BagError(
                    f"no CameraInfo topic for the {side} camera in the bag (looked for "
                    f"{base.rsplit('/', 1)[0]}/camera_info); the bag has: {listing}; name it with "
                    f"--{side}-info, or give the calibration in the config (camera.* with "
                    "vision_input.use_camera_info: false)")
    elif out["left"] is None or out["right"] is None:
        out = {"left": None, "right": None}
    return StereoTopics(left_image, right_image, out["left"], out["right"])


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


# ---------------------------------------------------------------------------
# OpenCV capture
# ---------------------------------------------------------------------------
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
