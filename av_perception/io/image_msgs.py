"""Duck-typed conversions between image / camera-info messages and numpy.

Every function reads only the message *field names* of ROS 2
``sensor_msgs/msg/Image``, ``CompressedImage`` and ``CameraInfo``, so the
same code serves rclpy messages (``data`` is an ``array.array`` or bytes,
``k``/``p`` numpy arrays) and messages deserialised by the ``rosbags``
library (numpy arrays everywhere).  No ROS import happens here.

Pixel conventions: colour arrays are **BGR** (OpenCV order), ``uint8``
unless the function says otherwise; grey arrays are ``(H, W)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from ..core.stereo import CalibrationError, StereoCalibration
from .stamps import seconds_to_stamp, stamp_to_seconds

__all__ = [
    "ImageConversionError",
    "SUPPORTED_ENCODINGS",
    "stamp_to_seconds",
    "seconds_to_stamp",
    "image_to_numpy",
    "image_to_bgr",
    "image_to_gray",
    "compressed_image_to_numpy",
    "message_to_bgr",
    "stereo_pair_to_numpy",
    "numpy_to_image_fields",
    "numpy_to_compressed_fields",
    "fill_image_msg",
    "camera_info_to_dict",
    "camera_info_fields",
    "fill_camera_info_msg",
    "stereo_calibration_from_camera_info",
    "read_stereo_calibration_yaml",
    "read_camera_info_yaml",
    "CorruptImageWarning",
    "flat_block_fraction",
    "jpeg_damage",
    "counting_corrupt_images",
    "damaged_frames_warning",
]


class ImageConversionError(ValueError):
    """A message cannot be converted (encoding, size, corrupt data)."""


class CorruptImageWarning(UserWarning):
    """A compressed image decoded, but looks damaged (bit errors in its JPEG data)."""


#: a decoded JPEG with more than this fraction of perfectly flat mid-level 8x8 blocks
#: looks corrupt: libjpeg fills what follows a lost Huffman sync with constant blocks,
#: while a camera image has sensor noise in every block (saturated 0/255 blocks excepted)
CORRUPT_FLAT_FRACTION = 0.02


def _blocks(img: np.ndarray):
    g = img[..., 1] if img.ndim == 3 else img
    h, w = (g.shape[0] // 8) * 8, (g.shape[1] // 8) * 8
    b = g[:h, :w].reshape(h // 8, 8, w // 8, 8)
    return b.min(axis=(1, 3)), b.max(axis=(1, 3))


def flat_block_fraction(img: np.ndarray) -> float:
    """Fraction of the 8x8 blocks of an 8-bit image that are exactly constant (in the
    green or grey channel) at a level that is not saturated (3..252)."""
    if img.shape[0] < 8 or img.shape[1] < 8:
        return 0.0
    lo, hi = _blocks(img)
    return float(((lo == hi) & (lo > 2) & (lo < 253)).mean())


def jpeg_damage(img: np.ndarray) -> str | None:
    """Why a decoded JPEG looks corrupt, or None.

    Two signatures of lost Huffman sync: many constant blocks at a mid level, or the image
    ending in a run of identical constant blocks (libjpeg's fill after a premature end)
    that starts inside a block row -- a saturated band along the bottom (letterbox, lens
    edge) starts at a row boundary and is not counted."""
    if img.shape[0] < 16 or img.shape[1] < 16:
        return None
    flat = flat_block_fraction(img)
    if flat > CORRUPT_FLAT_FRACTION:
        return f"{100 * flat:.0f} % of its 8x8 blocks are constant"
    lo, hi = _blocks(img)
    per_row = lo.shape[1]
    lo, hi = lo.ravel(), hi.ravel()
    same = (lo == hi) & (lo == lo[-1])
    if not same[-1]:
        return None
    other = np.flatnonzero(~same)
    start = int(other[-1]) + 1 if len(other) else 0
    run = len(same) - start
    if run >= per_row and (2 < lo[-1] < 253 or start % per_row):
        return f"its last {100 * run / len(same):.0f} % is one constant colour"
    return None


def damaged_frames_warning(corrupt: int, errors, frames: int) -> str | None:
    """A summary warning for an offline run: how many images failed to decode (counted in
    ``errors``) or decoded but looked corrupt (``corrupt`` CorruptImageWarnings)."""
    failed = sum("cannot be decoded" in str(e) for e in errors)
    if not corrupt and not failed:
        return None
    return (f"{failed + corrupt} compressed image(s) were damaged: {failed} failed to decode "
            f"and {corrupt} decoded but looked corrupt (constant 8x8 blocks, as bit errors "
            f"leave them); {frames} frame(s) were processed -- detections in damaged images "
            "are missing or wrong: check the recording or the transport")


class counting_corrupt_images:  # noqa: N801 - used as a context manager
    """Counts the CorruptImageWarnings raised in its block (other warnings pass on)::

        with counting_corrupt_images() as corrupt:
            ...
        corrupt.count
    """

    def __enter__(self):
        import warnings

        self.count = 0
        self._cm = warnings.catch_warnings(record=True)
        self._caught = self._cm.__enter__()
        warnings.simplefilter("always", CorruptImageWarning)
        return self

    def __exit__(self, *exc):
        import warnings

        self._cm.__exit__(*exc)
        for w in self._caught:
            if issubclass(w.category, CorruptImageWarning):
                self.count += 1
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return False


# encoding -> (dtype, channels)
_LAYOUT = {
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "bgr8": (np.uint8, 3), "rgb8": (np.uint8, 3), "8UC3": (np.uint8, 3),
    "bgra8": (np.uint8, 4), "rgba8": (np.uint8, 4), "8UC4": (np.uint8, 4),
    "bgr16": (np.uint16, 3), "rgb16": (np.uint16, 3),
    "bgra16": (np.uint16, 4), "rgba16": (np.uint16, 4),
    "bayer_rggb8": (np.uint8, 1), "bayer_bggr8": (np.uint8, 1),
    "bayer_gbrg8": (np.uint8, 1), "bayer_grbg8": (np.uint8, 1),
    "yuv422": (np.uint8, 2), "uyvy": (np.uint8, 2), "yuv422_yuy2": (np.uint8, 2),
    "yuyv": (np.uint8, 2),
}
#: Image encodings this module reads.
SUPPORTED_ENCODINGS = tuple(_LAYOUT)

# cv_bridge's mapping of ROS Bayer names to OpenCV codes
_BAYER = {
    "bayer_rggb8": cv2.COLOR_BayerBG2BGR, "bayer_bggr8": cv2.COLOR_BayerRG2BGR,
    "bayer_gbrg8": cv2.COLOR_BayerGR2BGR, "bayer_grbg8": cv2.COLOR_BayerGB2BGR,
}
_YUV = {"yuv422": cv2.COLOR_YUV2BGR_UYVY, "uyvy": cv2.COLOR_YUV2BGR_UYVY,
        "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUYV, "yuyv": cv2.COLOR_YUV2BGR_YUYV}


# ---------------------------------------------------------------------------
# Image -> numpy
# ---------------------------------------------------------------------------
def _bytes(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8)


def image_to_numpy(msg) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` in its own encoding (no colour conversion).

    Returns
    -------
    array (H, W) or (H, W, C)
        ``uint8`` or ``uint16`` (native byte order), channel order as in the
        encoding.  A view of the message buffer where possible (read-only).

    Raises
    ------
    ImageConversionError
        Unsupported encoding, or a data size that does not match
        height x step.
    """
    enc = str(msg.encoding)
    if enc not in _LAYOUT:
        raise ImageConversionError(
            f"image encoding {enc!r} is not supported: supported are "
            f"{', '.join(SUPPORTED_ENCODINGS)}; publish one of these (e.g. set the camera "
            "driver's pixel format to bgr8 or mono8) or use the compressed topic")
    dtype, ch = _LAYOUT[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    if h <= 0 or w <= 0:
        raise ImageConversionError(f"image is {w}x{h}: width and height must be positive")
    if enc in _YUV and w % 2:
        raise ImageConversionError(
            f"{enc} image is {w} pixels wide: YUV 4:2:2 stores two pixels in each U/V pair, "
            "so the width must be even; the message is inconsistent")
    row = w * ch * itemsize
    if step < row:
        raise ImageConversionError(
            f"image step {step} is smaller than width x channels x bytes = {row} for "
            f"{enc} {w}x{h}: the message is inconsistent")
    buf = _bytes(msg.data)
    if buf.size < step * h:
        raise ImageConversionError(
            f"image data has {buf.size} bytes but height x step = {h} x {step} = {step * h}: "
            "the message is truncated or its size fields are wrong")
    rows = buf[:step * h].reshape(h, step)[:, :row]
    if itemsize == 2:
        dt = np.dtype(">u2" if msg.is_bigendian else "<u2")
        arr = np.ascontiguousarray(rows).view(dt).reshape(h, w, ch).astype(np.uint16, copy=False)
    else:
        arr = rows.reshape(h, w, ch)
    return arr[:, :, 0] if ch == 1 else arr


def image_to_bgr(msg) -> np.ndarray:
    """A ``sensor_msgs/Image`` as a ``uint8`` BGR array (H, W, 3).

    16-bit encodings are scaled to 8 bit by dividing by 256; grey and Bayer
    images are converted to colour.
    """
    enc = str(msg.encoding)
    arr = image_to_numpy(msg)
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    if enc in _BAYER:
        return cv2.cvtColor(np.ascontiguousarray(arr), _BAYER[enc])
    if enc in _YUV:
        return cv2.cvtColor(np.ascontiguousarray(arr), _YUV[enc])
    if arr.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_GRAY2BGR)
    if enc.startswith("rgba"):
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGBA2BGR)
    if enc.startswith("rgb"):
        return np.ascontiguousarray(arr[:, :, ::-1])
    if arr.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(arr)


def image_to_gray(msg) -> np.ndarray:
    """A ``sensor_msgs/Image`` as a ``uint8`` grey array (H, W)."""
    enc = str(msg.encoding)
    if enc in ("mono8", "8UC1"):
        return np.ascontiguousarray(image_to_numpy(msg))
    if enc in ("mono16", "16UC1"):
        return (image_to_numpy(msg) >> 8).astype(np.uint8)
    return cv2.cvtColor(image_to_bgr(msg), cv2.COLOR_BGR2GRAY)


def compressed_image_to_numpy(msg, mode: str = "bgr", damaged: list | None = None
                              ) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG).

    Parameters
    ----------
    msg : CompressedImage-like (``format``, ``data``)
    mode : {"bgr", "gray", "unchanged"}
        ``bgr``: uint8 (H, W, 3); ``gray``: uint8 (H, W); ``unchanged``: as stored
        (e.g. 16-bit PNG).
    damaged : list, optional
        A JPEG that decodes but looks corrupt is reported by appending the reason here
        (thread safe, for the nodes); without it, by a :class:`CorruptImageWarning`.

    Raises
    ------
    ImageConversionError
        Unsupported format (compressedDepth, unknown) or data that does not decode.
    """
    fmt = str(getattr(msg, "format", "") or "").lower()
    if "compresseddepth" in fmt:
        raise ImageConversionError(
            f"compressed image format {msg.format!r} (compressedDepth) is a depth image: "
            "subscribe to the camera's colour/mono compressed topic instead")
    known = ("jpeg", "jpg", "png")
    if fmt and not any(k in fmt for k in known):
        raise ImageConversionError(
            f"compressed image format {msg.format!r} is not supported: use JPEG or PNG "
            "(image_transport 'compressed' with jpeg or png)")
    buf = _bytes(msg.data)
    if buf.size == 0:
        raise ImageConversionError("compressed image has no data (empty message)")
    flags = {"bgr": cv2.IMREAD_COLOR, "gray": cv2.IMREAD_GRAYSCALE,
             "unchanged": cv2.IMREAD_UNCHANGED}
    if mode not in flags:
        raise ValueError(f"mode must be one of {', '.join(flags)}, got {mode!r}")
    img = cv2.imdecode(np.ascontiguousarray(buf), flags[mode])
    if img is None:
        kind = "JPEG" if ("jpeg" in fmt or "jpg" in fmt or buf[:2].tobytes() == b"\xff\xd8") \
            else "PNG" if "png" in fmt else "image"
        raise ImageConversionError(
            f"compressed {kind} data ({buf.size} bytes, format {msg.format!r}) cannot be "
            "decoded: the data is corrupt or truncated (check the recording or the network "
            "transport)")
    if mode == "bgr" and img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8)
    is_jpeg = "jpeg" in fmt or "jpg" in fmt or buf[:2].tobytes() == b"\xff\xd8"
    if is_jpeg and img.dtype == np.uint8:
        damage = jpeg_damage(img)
        if damage:
            text = (f"compressed JPEG ({buf.size} bytes) decoded, but {damage}: its data is "
                    "probably corrupt (bit errors in the recording or the transport)")
            if damaged is not None:
                damaged.append(text)
            else:
                import warnings

                warnings.warn(CorruptImageWarning(text), stacklevel=2)
    return img


def message_to_bgr(msg, damaged: list | None = None) -> np.ndarray:
    """An Image or CompressedImage message (told apart by the ``format`` field) -> BGR uint8
    (``damaged``: see :func:`compressed_image_to_numpy`)."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_image_to_numpy(msg, "bgr", damaged)
    return image_to_bgr(msg)


def stereo_pair_to_numpy(left_msg, right_msg, damaged: list | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Both images of a stereo pair as BGR uint8 arrays, checked to have equal sizes
    (``damaged``: see :func:`compressed_image_to_numpy`; entries name the side).

    Raises
    ------
    ImageConversionError
        When the two images differ in size, or either cannot be converted.
    """
    notes: list | None = None if damaged is None else []
    try:
        left = message_to_bgr(left_msg, notes)
    except ImageConversionError as exc:
        raise ImageConversionError(f"left image: {exc}") from None
    if notes:
        damaged.extend(f"left image: {n}" for n in notes)
        notes.clear()
    try:
        right = message_to_bgr(right_msg, notes)
    except ImageConversionError as exc:
        raise ImageConversionError(f"right image: {exc}") from None
    if notes:
        damaged.extend(f"right image: {n}" for n in notes)
    if left.shape != right.shape:
        raise ImageConversionError(
            f"left image is {left.shape[1]}x{left.shape[0]} but right is "
            f"{right.shape[1]}x{right.shape[0]}: both cameras of the pair must publish the "
            "same resolution (check the drivers' settings)")
    return left, right


# ---------------------------------------------------------------------------
# numpy -> Image fields
# ---------------------------------------------------------------------------
def _default_encoding(arr: np.ndarray) -> str:
    ch = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.dtype == np.uint8:
        return {1: "mono8", 3: "bgr8", 4: "bgra8"}.get(ch, "")
    if arr.dtype == np.uint16:
        return {1: "mono16", 3: "bgr16", 4: "bgra16"}.get(ch, "")
    return ""


def numpy_to_image_fields(array, encoding: str | None = None, stamp: float = 0.0,
                          frame_id: str = "") -> dict:
    """The fields of a ``sensor_msgs/Image`` holding ``array``.

    Parameters
    ----------
    array : array (H, W) or (H, W, C), uint8 or uint16
        Pixels in the channel order named by ``encoding``.
    encoding : str, optional
        Default: mono8 / bgr8 / bgra8 (uint8) or mono16 / bgr16 / bgra16 (uint16).
    stamp : float
        Seconds, written as header.stamp (sec, nanosec).

    Returns
    -------
    dict
        ``header`` {``stamp``: {``sec``, ``nanosec``}, ``frame_id``}, ``height``,
        ``width``, ``encoding``, ``is_bigendian`` (0), ``step``, ``data``
        (uint8 numpy array).
    """
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    enc = encoding or _default_encoding(arr)
    if enc not in _LAYOUT:
        raise ImageConversionError(
            f"cannot choose an image encoding for a {arr.dtype} array of shape {arr.shape}"
            if not enc else f"image encoding {enc!r} is not supported: use one of "
            f"{', '.join(SUPPORTED_ENCODINGS)}")
    dtype, ch = _LAYOUT[enc]
    got_ch = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.dtype != dtype or got_ch != ch or arr.ndim not in (2, 3):
        raise ImageConversionError(
            f"encoding {enc} needs a {np.dtype(dtype).name} array with {ch} channel(s), got "
            f"{arr.dtype} with shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<"))
    sec, nsec = seconds_to_stamp(stamp)
    return {
        "header": {"stamp": {"sec": sec, "nanosec": nsec}, "frame_id": str(frame_id)},
        "height": int(arr.shape[0]), "width": int(arr.shape[1]), "encoding": enc,
        "is_bigendian": 0, "step": int(arr.shape[1] * ch * arr.itemsize),
        "data": arr.reshape(-1).view(np.uint8),
    }


def numpy_to_compressed_fields(array, fmt: str = "jpeg", quality: int = 90,
                               stamp: float = 0.0, frame_id: str = "") -> dict:
    """The fields of a ``sensor_msgs/CompressedImage`` (JPEG or PNG of a BGR/grey array)."""
    arr = np.asarray(array)
    if fmt not in ("jpeg", "png"):
        raise ImageConversionError(f"compressed format {fmt!r} is not supported: jpeg or png")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", arr, params)
    if not ok:
        raise ImageConversionError(f"OpenCV cannot encode a {arr.dtype} {arr.shape} array as {fmt}")
    enc = "mono8" if arr.ndim == 2 else "bgr8"
    sec, nsec = seconds_to_stamp(stamp)
    return {"header": {"stamp": {"sec": sec, "nanosec": nsec}, "frame_id": str(frame_id)},
            "format": f"{enc}; {fmt} compressed {enc}", "data": buf.reshape(-1)}


def _set_header(msg, header: Mapping):
    msg.header.stamp.sec = int(header["stamp"]["sec"])
    msg.header.stamp.nanosec = int(header["stamp"]["nanosec"])
    msg.header.frame_id = header["frame_id"]


def _set_array(msg, name: str, values: np.ndarray):
    current = getattr(msg, name)
    if isinstance(current, np.ndarray):
        setattr(msg, name, np.asarray(values, dtype=current.dtype))
    elif name == "data":
        setattr(msg, name, np.asarray(values, dtype=np.uint8).tobytes())
    else:
        setattr(msg, name, [float(v) for v in np.ravel(values)])


def fill_image_msg(msg, array, encoding: str | None = None, stamp: float | None = None,
                   frame_id: str | None = None):
    """Write ``array`` into an existing Image message (rclpy or rosbags); returns ``msg``.

    ``stamp``/``frame_id`` left as ``None`` keep the message's header values.
    """
    f = numpy_to_image_fields(array, encoding, 0.0 if stamp is None else stamp,
                              "" if frame_id is None else frame_id)
    if stamp is not None or frame_id is not None:
        h = f["header"]
        if stamp is None:
            h["stamp"] = {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec}
        if frame_id is None:
            h["frame_id"] = msg.header.frame_id
        _set_header(msg, h)
    for key in ("height", "width", "encoding", "is_bigendian", "step"):
        setattr(msg, key, f[key])
    _set_array(msg, "data", f["data"])
    return msg


# ---------------------------------------------------------------------------
# CameraInfo
# ---------------------------------------------------------------------------
def camera_info_to_dict(msg) -> dict:
    """CameraInfo fields as plain values: width, height, distortion_model, k (9), d, r (9),
    p (12) — the mapping :meth:`StereoCalibration.from_camera_info` takes."""
    if msg is None:
        raise CalibrationError("camera_info is missing")
    return {
        "width": int(msg.width), "height": int(msg.height),
        "distortion_model": str(msg.distortion_model),
        "k": np.asarray(msg.k, dtype=np.float64).ravel(),
        "d": np.asarray(msg.d, dtype=np.float64).ravel(),
        "r": np.asarray(msg.r, dtype=np.float64).ravel(),
        "p": np.asarray(msg.p, dtype=np.float64).ravel(),
    }


def stereo_calibration_from_camera_info(left_info, right_info,
                                        images_rectified: bool | None = None,
                                        image_size: tuple[int, int] | None = None
                                        ) -> StereoCalibration:
    """A :class:`StereoCalibration` from the CameraInfo messages of a stereo pair.

    Parameters
    ----------
    left_info, right_info : CameraInfo-like (or None when not received)
    images_rectified : bool, optional
        See :meth:`StereoCalibration.from_camera_info` (None: inferred from D, R).
    image_size : (width, height), optional
        Size of the images that come with the infos; checked against them.

    Raises
    ------
    CalibrationError
        Missing info, inconsistent infos (sizes, non-rectified P, baseline),
        or infos for another image size.
    """
    for side, info in (("left", left_info), ("right", right_info)):
        if info is None:
            raise CalibrationError(
                f"no camera_info for the {side} camera: publish "
                f"/stereo/{side}/camera_info (a calibrated stereo pair), or run without "
                "camera_info using the camera.* parameters")
    cal = StereoCalibration.from_camera_info(
        camera_info_to_dict(left_info), camera_info_to_dict(right_info), images_rectified)
    if image_size is not None and tuple(int(v) for v in image_size) != cal.image_size:
        raise CalibrationError(
            f"camera_info is for {cal.width}x{cal.height} images but the images are "
            f"{image_size[0]}x{image_size[1]}: the calibration does not belong to this "
            "resolution (recalibrate or set the camera to the calibrated resolution)")
    return cal


def camera_info_fields(calibration: StereoCalibration, stamp: float = 0.0,
                       frame_id: str = "") -> tuple[dict, dict]:
    """CameraInfo fields (left, right) describing the rectified images of ``calibration``."""
    sec, nsec = seconds_to_stamp(stamp)
    out = []
    for info in calibration.camera_info():
        f = {k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else v)
             for k, v in info.items()}
        f["header"] = {"stamp": {"sec": sec, "nanosec": nsec}, "frame_id": str(frame_id)}
        out.append(f)
    return out[0], out[1]


def fill_camera_info_msg(msg, fields: Mapping):
    """Write CameraInfo ``fields`` (from :func:`camera_info_fields`) into ``msg``; returns it."""
    if "header" in fields:
        _set_header(msg, fields["header"])
    msg.width = int(fields["width"])
    msg.height = int(fields["height"])
    msg.distortion_model = str(fields.get("distortion_model", "plumb_bob"))
    for key in ("d", "k", "r", "p"):
        _set_array(msg, key, np.asarray(fields[key], dtype=np.float64))
    return msg


# ---------------------------------------------------------------------------
# Calibration files
# ---------------------------------------------------------------------------
_YAML_KEYS = {
    "k1": ("K1", "M1", "cameraMatrix1", "camera_matrix_left", "left_camera_matrix"),
    "d1": ("D1", "distCoeffs1", "dist_coeffs_left", "left_distortion"),
    "k2": ("K2", "M2", "cameraMatrix2", "camera_matrix_right", "right_camera_matrix"),
    "d2": ("D2", "distCoeffs2", "dist_coeffs_right", "right_distortion"),
    "r": ("R", "rotation"),
    "t": ("T", "translation"),
}


def _fs_node(fs, names):
    for n in names:
        node = fs.getNode(n)
        if not node.empty():
            return n, node
    return None, None


def _node_value(node):
    if node.isSeq():
        return np.array([node.at(i).real() for i in range(node.size())])
    m = node.mat() if node.isMap() else None
    if m is not None:
        return np.asarray(m, dtype=np.float64)
    return np.array([node.real()])


def read_stereo_calibration_yaml(path, translation_scale: float = 1.0, alpha: float = 0.0
                                 ) -> StereoCalibration:
    """Read an OpenCV stereo calibration file (``cv2.FileStorage`` YAML/XML/JSON).

    Expects the matrices of ``cv2.stereoCalibrate``: K1 (or M1 /
    cameraMatrix1), D1, K2, D2, R, T, and the image size as ``image_width`` +
    ``image_height`` or ``image_size`` / ``imageSize`` ([width, height]).

    Parameters
    ----------
    path : str or Path
    translation_scale : float
        Multiplies T to get metres (0.001 when T is in millimetres).
    alpha : float
        Rectification free scaling (0: only valid pixels).

    Raises
    ------
    CalibrationError
        Missing file, unreadable file, missing keys (listing the accepted names).
    """
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"stereo calibration file {path} does not exist")
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as exc:
        detail = getattr(exc, "msg", None) or str(exc.__cause__ or exc)
        raise CalibrationError(
            f"stereo calibration file {path} cannot be parsed by OpenCV FileStorage "
            f"({detail.strip()}); it must start with '%YAML:1.0' (or be OpenCV XML/JSON)"
        ) from None
    if not fs.isOpened():
        raise CalibrationError(f"stereo calibration file {path} cannot be opened")
    try:
        values = {}
        for key, names in _YAML_KEYS.items():
            name, node = _fs_node(fs, names)
            if node is None:
                raise CalibrationError(
                    f"stereo calibration file {path} lacks {key.upper()} (accepted names: "
                    f"{', '.join(names)})")
            values[key] = _node_value(node)
        size = None
        wn, hn = fs.getNode("image_width"), fs.getNode("image_height")
        if not wn.empty() and not hn.empty():
            size = (int(wn.real()), int(hn.real()))
        else:
            _, node = _fs_node(fs, ("image_size", "imageSize", "size"))
            if node is not None:
                v = _node_value(node).ravel()
                if v.size == 2:
                    size = (int(v[0]), int(v[1]))
        if size is None:
            raise CalibrationError(
                f"stereo calibration file {path} lacks the image size: add image_width and "
                "image_height (or image_size: [width, height])")
    finally:
        fs.release()
    return StereoCalibration.from_opencv_stereo(
        values["k1"], values["d1"], values["k2"], values["d2"], values["r"], values["t"],
        size, alpha=alpha, translation_scale=translation_scale)


def read_camera_info_yaml(path) -> dict:
    """Read a ROS ``camera_calibration`` YAML file (one camera) into CameraInfo fields.

    Returns
    -------
    dict
        width, height, distortion_model, k, d, r, p (numpy arrays), the mapping
        taken by :meth:`StereoCalibration.from_camera_info`.
    """
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CalibrationError(f"cannot read camera calibration file {path}: "
                               f"{exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CalibrationError(f"camera calibration file {path} is not valid YAML: {exc}") \
            from None
    if not isinstance(doc, Mapping):
        raise CalibrationError(f"camera calibration file {path} is not a YAML mapping")
    keys = {"k": "camera_matrix", "d": "distortion_coefficients", "r": "rectification_matrix",
            "p": "projection_matrix"}
    out = {}
    try:
        out["width"] = int(doc["image_width"])
        out["height"] = int(doc["image_height"])
        for k, name in keys.items():
            out[k] = np.asarray(doc[name]["data"], dtype=np.float64)
    except (KeyError, TypeError) as exc:
        raise CalibrationError(
            f"camera calibration file {path} lacks {exc}: need image_width, image_height, "
            "camera_matrix, distortion_coefficients, rectification_matrix, projection_matrix "
            "(the ROS camera_calibration format)") from None
    out["distortion_model"] = str(doc.get("distortion_model", "plumb_bob"))
    return out
