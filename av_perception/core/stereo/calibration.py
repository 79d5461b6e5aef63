"""The calibration of a rectified pinhole stereo pair: built from the configuration,
ROS CameraInfo or OpenCV's stereoCalibrate output, exported as CameraInfo, and the
geometry (depth and disparity, triangulation, rectification) that uses it."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import StereoCameraConfig
from .errors import CalibrationError, StereoInputError
from .rectification import _rectify_maps, rectify_pair
from .triangulation import project, triangulate


def _mat(value, shape, name) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.size != int(np.prod(shape)):
        raise CalibrationError(
            f"{name} has {a.size} elements: expected a {shape[0]}x{shape[1]} matrix "
            f"({int(np.prod(shape))} numbers, row-major)")
    a = a.reshape(shape)
    if not np.all(np.isfinite(a)):
        raise CalibrationError(f"{name} contains NaN or infinite values")
    return a


def _is_rotation(r: np.ndarray, tol: float = 1e-4) -> bool:
    return bool(np.allclose(r @ r.T, np.eye(3), atol=tol) and abs(np.linalg.det(r) - 1) < tol)


@dataclass(frozen=True, eq=False)
class StereoCalibration:
    """A rectified pinhole stereo pair (and how to rectify raw images into it).

    3D points are metres in the left camera optical frame (x right, y down, z forward);
    a pair that needs rectification (or whose CameraInfo has a rectification rotation R)
    is triangulated in the rectified left frame and rotated back with R^T unless
    ``frame="rectified"``.  Pixels (u, v) are those of the rectified left image, pixel
    centres at integers.  Disparity d = u_left - u_right (px); depth
    z = fx B / (d - (cx - cx_right)), cx_right differing from cx only for pairs rectified
    without CALIB_ZERO_DISPARITY (Middlebury's "doffs").

    Parameters
    ----------
    fx, fy : float
        Focal lengths of the rectified images, pixels.
    cx, cy : float
        Principal point of the rectified left image, pixels.
    baseline : float
        Metres; the right camera sits at +baseline along the left camera's x axis.
    width, height : int
        Image size in pixels (of raw and rectified images).
    cx_right : float, optional
        Principal point x of the rectified right image (default ``cx``).
    rotation : array (3, 3), optional
        Rectification rotation R of the left camera: x_rectified = R x_camera
        (identity when the images come rectified without further information).
    maps : tuple of 4 arrays, optional
        ``(left_map1, left_map2, right_map1, right_map2)`` for ``cv2.remap`` that
        turn raw images into the rectified pair; ``None`` when images arrive
        rectified.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float
    width: int
    height: int
    cx_right: float | None = None
    rotation: np.ndarray | None = None
    maps: tuple | None = None

    def __post_init__(self):
        for name in ("fx", "fy", "cx", "cy", "baseline"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise CalibrationError(f"stereo calibration {name} = {v} is not finite")
            object.__setattr__(self, name, v)
        for name in ("fx", "fy"):
            if getattr(self, name) <= 0:
                raise CalibrationError(
                    f"stereo calibration {name} = {getattr(self, name)} must be positive "
                    "(focal length in pixels)")
        if self.baseline <= 0:
            raise CalibrationError(
                f"stereo baseline = {self.baseline} m must be positive: the right camera must be "
                "at +x of the left one (are the left and right cameras swapped?)")
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or int(v) <= 0:
                raise CalibrationError(
                    f"stereo calibration {name} = {v} must be a positive integer")
            object.__setattr__(self, name, int(v))
        cxr = self.cx if self.cx_right is None else float(self.cx_right)
        if not math.isfinite(cxr):
            raise CalibrationError(f"stereo calibration cx_right = {cxr} is not finite")
        object.__setattr__(self, "cx_right", cxr)
        rot = np.eye(3) if self.rotation is None else _mat(self.rotation, (3, 3), "rotation")
        if not _is_rotation(rot):
            raise CalibrationError(
                "rectification rotation is not a rotation matrix (R R^T != I or det != 1)")
        rot.setflags(write=False)
        object.__setattr__(self, "rotation", rot)
        if self.maps is not None:
            if len(self.maps) != 4:
                raise CalibrationError(
                    "maps must be (left_map1, left_map2, right_map1, right_map2)")
            for m in (self.maps[0], self.maps[2]):
                if m.shape[:2] != (self.height, self.width):
                    raise CalibrationError(
                        f"rectification map is {m.shape[1]}x{m.shape[0]} but the calibration is "
                        f"for {self.width}x{self.height} images")

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_config(cls, config: StereoCameraConfig) -> StereoCalibration:
        """A calibration from the ``camera`` parameters (images assumed rectified)."""
        return cls(config.fx, config.fy, config.cx, config.cy, config.baseline,
                   config.width, config.height)

    @classmethod
    def from_camera_info(cls, left: Mapping, right: Mapping,
                         images_rectified: bool | None = None) -> StereoCalibration:
        """A calibration from the CameraInfo fields of a stereo pair.

        Parameters
        ----------
        left, right : mapping
            Keys ``width``, ``height``, ``k`` (9), ``d`` (any length), ``r`` (9),
            ``p`` (12), optional ``distortion_model`` — the fields of
            ``sensor_msgs/CameraInfo`` (lower-case, as in ROS 2), as arrays.
        images_rectified : bool, optional
            Whether the images that come with these infos are already rectified
            (e.g. ``image_rect`` topics).  ``None`` infers it: raw images are
            assumed to need rectification when D is non-zero or R is not the
            identity in either info.

        Raises
        ------
        CalibrationError
            Naming the problem: size mismatch, uncalibrated (all-zero) matrices,
            P matrices that do not describe a rectified horizontal pair, a
            non-positive baseline.
        """
        infos = {}
        for side, info in (("left", left), ("right", right)):
            try:
                w, h = int(info["width"]), int(info["height"])
                k = _mat(info["k"], (3, 3), f"{side} camera_info K")
                p = _mat(info["p"], (3, 4), f"{side} camera_info P")
                r = _mat(info.get("r", np.eye(3)), (3, 3), f"{side} camera_info R")
                d = np.asarray(info.get("d", ()), dtype=np.float64).ravel()
            except KeyError as exc:
                raise CalibrationError(
                    f"{side} camera_info lacks the field {exc.args[0]!r} "
                    "(need width, height, k, d, r, p)") from None
            model = str(info.get("distortion_model", "plumb_bob") or "plumb_bob")
            if w <= 0 or h <= 0:
                raise CalibrationError(
                    f"{side} camera_info has image size {w}x{h}: the camera is not calibrated "
                    "(calibrate the pair, e.g. ROS camera_calibration in stereo mode)")
            if not np.any(p):
                raise CalibrationError(
                    f"{side} camera_info has an all-zero projection matrix P: the camera is not "
                    "calibrated; calibrate the stereo pair or set the camera.* parameters")
            infos[side] = (w, h, k, d, r, p, model)
        (wl, hl, kl, dl, rl, pl, ml), (wr, hr, kr, dr, rr, pr, mr) = infos["left"], infos["right"]
        if (wl, hl) != (wr, hr):
            raise CalibrationError(
                f"left camera_info is for {wl}x{hl} images but right is for {wr}x{hr}: both "
                "cameras of the pair must run at the same resolution (fix the drivers' settings "
                "or use the calibration of this resolution)")
        fx, fy, cx, cy = pl[0, 0], pl[1, 1], pl[0, 2], pl[1, 2]
        if fx <= 0 or fy <= 0:
            raise CalibrationError(
                f"left camera_info P has fx = {fx}, fy = {fy}: focal lengths must be positive")
        tol = 1e-3 * fx
        if abs(pl[0, 3]) > tol or abs(pl[1, 3]) > tol or abs(pl[2, 3]) > 1e-6:
            raise CalibrationError(
                f"left camera_info P has a translation column {pl[:, 3].tolist()}: the left "
                "camera must be the reference of the rectified pair (P[0,3] = 0); are the left "
                "and right camera_info topics swapped?")
        same = (abs(pr[0, 0] - fx) <= tol and abs(pr[1, 1] - fy) <= tol
                and abs(pr[1, 2] - cy) <= 1e-3 * fy + 1e-6 and abs(pr[0, 1]) <= tol
                and abs(pl[0, 1]) <= tol and np.allclose(pl[2, :3], [0, 0, 1], atol=1e-6)
                and np.allclose(pr[2, :3], [0, 0, 1], atol=1e-6) and abs(pl[1, 0]) <= tol
                and abs(pr[1, 0]) <= tol)
        if not same or abs(pr[1, 3]) > tol or abs(pr[2, 3]) > 1e-6:
            raise CalibrationError(
                "left and right camera_info P matrices do not describe a rectified horizontal "
                f"stereo pair (left P = {pl.round(4).tolist()}, right P = "
                f"{pr.round(4).tolist()}; need equal fx, fy, cy and a translation only in "
                "P[0,3]): rectify the pair (cv2.stereoRectify / ROS stereo calibration) and "
                "publish its P matrices")
        baseline = -pr[0, 3] / pr[0, 0]
        if baseline <= 0:
            raise CalibrationError(
                f"right camera_info P[0,3] = {pr[0, 3]} gives baseline B = -P[0,3]/P[0,0] = "
                f"{baseline:.4g} m <= 0: the right camera must be at +x of the left one "
                "(P[0,3] = -fx*B); are the left and right topics swapped?")
        if images_rectified is None:
            images_rectified = not (np.any(dl) or np.any(dr) or not np.allclose(rl, np.eye(3))
                                    or not np.allclose(rr, np.eye(3)))
        maps = None
        if not images_rectified:
            maps = []
            for side, k, d, r, p, model in (("left", kl, dl, rl, pl, ml),
                                             ("right", kr, dr, rr, pr, mr)):
                if not np.any(k) or k[0, 0] <= 0 or k[1, 1] <= 0:
                    raise CalibrationError(
                        f"{side} camera_info K = {k.tolist()} is not a camera matrix: raw images "
                        "cannot be rectified without K")
                maps.extend(_rectify_maps(k, d, r, p[:, :3], (wl, hl), model, side))
            maps = tuple(maps)
        rotation = rl if _is_rotation(rl) else np.eye(3)
        return cls(fx, fy, cx, cy, baseline, wl, hl, cx_right=pr[0, 2], rotation=rotation,
                   maps=maps)

    @classmethod
    def from_opencv_stereo(cls, k1, d1, k2, d2, r, t, image_size, alpha: float = 0.0,
                           translation_scale: float = 1.0) -> StereoCalibration:
        """A calibration, with rectification maps, from an OpenCV stereo calibration.

        Parameters
        ----------
        k1, d1, k2, d2 : arrays
            Camera matrices (3x3) and distortion coefficients of the left (1) and
            right (2) cameras, as returned by ``cv2.stereoCalibrate``.
        r, t : arrays (3, 3), (3,)
            Rotation and translation from the left to the right camera frame
            (x_right = R x_left + T).  For a right camera at +x, T[0] < 0.
        image_size : (width, height)
            Pixels.
        alpha : float
            ``cv2.stereoRectify`` free scaling: 0 keeps only valid pixels, 1 keeps all.
        translation_scale : float
            Multiplies T to get metres (0.001 when T is in millimetres).
        """
        w, h = (int(v) for v in image_size)
        if w <= 0 or h <= 0:
            raise CalibrationError(f"image_size {image_size} must be positive (width, height)")
        k1 = _mat(k1, (3, 3), "K1")
        k2 = _mat(k2, (3, 3), "K2")
        r = _mat(r, (3, 3), "R")
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        if t.size != 3 or not np.all(np.isfinite(t)):
            raise CalibrationError(f"T must be 3 finite numbers, got {np.asarray(t).tolist()}")
        if not _is_rotation(r, 1e-3):
            raise CalibrationError("R of the stereo calibration is not a rotation matrix")
        d1 = np.asarray(d1, dtype=np.float64).reshape(-1)
        d2 = np.asarray(d2, dtype=np.float64).reshape(-1)
        t = t * float(translation_scale)
        r1, r2, p1, p2, _q, _roi1, _roi2 = cv2.stereoRectify(
            k1, d1, k2, d2, (w, h), r, t, flags=cv2.CALIB_ZERO_DISPARITY, alpha=float(alpha))
        if abs(p2[1, 3]) > abs(p2[0, 3]):
            raise CalibrationError(
                "the stereo calibration describes a vertical pair (translation mostly along y): "
                "only horizontal pairs (right camera at +x) are supported")
        baseline = -p2[0, 3] / p2[0, 0]
        if baseline <= 0:
            raise CalibrationError(
                f"T = {t.tolist()} puts the second camera at -x of the first (baseline "
                f"{baseline:.4g} m): pass the calibration in (left, right) order")
        if baseline > 2.0:
            raise CalibrationError(
                f"baseline {baseline:.4g} is implausible for metres (> 2 m): T is probably in "
                "millimetres or chessboard squares; pass translation_scale (e.g. 0.001)")
        maps = (*_rectify_maps(k1, d1, r1, p1[:, :3], (w, h), "plumb_bob", "left"),
                *_rectify_maps(k2, d2, r2, p2[:, :3], (w, h), "plumb_bob", "right"))
        return cls(p1[0, 0], p1[1, 1], p1[0, 2], p1[1, 2], baseline, w, h, cx_right=p2[0, 2],
                   rotation=r1, maps=maps)

    # -------------------------------------------------------------- properties
    @property
    def disparity_offset(self) -> float:
        """cx_left - cx_right in pixels (0 for CALIB_ZERO_DISPARITY rectification)."""
        return self.cx - self.cx_right

    @property
    def needs_rectification(self) -> bool:
        """True when raw images must go through :meth:`rectify` first."""
        return self.maps is not None

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    def camera_info(self) -> tuple[dict, dict]:
        """CameraInfo fields (k, d, r, p, width, height) of the *rectified* images.

        Returns
        -------
        left, right : dict
            Plain lists, ``distortion_model='plumb_bob'``, zero distortion and R
            equal to the rectification rotation (identity for rectified input).
        """
        out = []
        for cxs, tx in ((self.cx, 0.0), (self.cx_right, -self.fx * self.baseline)):
            k = [self.fx, 0.0, cxs, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]
            p = [self.fx, 0.0, cxs, tx, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
            out.append({"width": self.width, "height": self.height,
                        "distortion_model": "plumb_bob", "d": [0.0] * 5,
                        "k": k, "r": np.asarray(self.rotation).ravel().tolist(), "p": p})
        return out[0], out[1]

    # --------------------------------------------------------------- geometry
    def depth_from_disparity(self, disparity):
        """Depth z (m) of disparities (px); inf/negative for d <= disparity_offset."""
        d = np.asarray(disparity, dtype=np.float64) - self.disparity_offset
        with np.errstate(divide="ignore"):
            return self.fx * self.baseline / d

    def disparity_from_depth(self, depth):
        """Disparity (px) of points at depth z (m)."""
        return self.fx * self.baseline / np.asarray(depth, dtype=np.float64) + self.disparity_offset
    def triangulate(self, u, v, disparity, sigma_uv=1.0, sigma_disparity=0.25,
                    frame: str = "camera"):
        """3D points (N, 3) and their covariance (N, 3, 3) from rectified pixel
        coordinates and disparity: :func:`~.triangulation.triangulate`."""
        return triangulate(self, u, v, disparity, sigma_uv, sigma_disparity, frame)

    def project(self, xyz, frame: str = "camera"):
        """Rectified pixel coordinates and disparity of 3D points (inverse of triangulate):
        :func:`~.triangulation.project`."""
        return project(self, xyz, frame)

    # ------------------------------------------------------------ images
    def check_images(self, left: np.ndarray, right: np.ndarray) -> None:
        """Raise :class:`StereoInputError` unless both images match each other and the
        calibration's size."""
        ls, rs = np.shape(left), np.shape(right)
        if ls != rs:
            raise StereoInputError(
                f"left image has shape {ls} but right has {rs}: the stereo pair must have equal "
                "sizes and encodings (check both cameras' resolution and pixel format)")
        if len(ls) < 2 or ls[:2] != (self.height, self.width):
            raise StereoInputError(
                f"images are {ls[1] if len(ls) > 1 else '?'}x{ls[0]} (width x height) but the "
                f"stereo calibration is for {self.width}x{self.height}: use the camera_info / "
                "calibration of this resolution (or set camera.width/height)")

    def rectify(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rectify a raw pair with the stored maps (returns the inputs when not needed)."""
        return rectify_pair(self, left, right)
