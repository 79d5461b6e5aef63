"""Stereo geometry of the camera pair: calibration, rectification, triangulation and
the disparity of an image region.

Frames and conventions (docs/architecture.md, "Frames and units"):

* 3D points are metres in the **left camera optical frame** (x right, y down,
  z forward).  When the pair needs rectification (or its CameraInfo carries a
  rectification rotation R), points are triangulated in the rectified left
  frame and rotated back with R^T, so they are in the physical left camera
  frame unless ``frame="rectified"`` is asked for.
* Pixel coordinates (u, v) are those of the **rectified** left image, pixel
  centres at integers, u to the right, v down.
* Disparity d = u_left - u_right (pixels) of rectified images; depth
  z = fx * B / (d - (cx_left - cx_right)).  cx_right differs from cx only for
  pairs rectified without CALIB_ZERO_DISPARITY (Middlebury's "doffs").

Region disparity (:class:`RegionMatcher`): a template cut from the left image
is compared with the right image along its epipolar line (same rows, with an
optional +-``vertical_search`` rows for residual rectification error) for every
integer disparity of the range allowed by the depth limits, by zero-mean
normalised cross-correlation (ZNCC, default) or zero-mean SAD.  The best
integer disparity is refined by a parabola through the three scores around it.
The match quality in [0, 1] is ``max(ZNCC, 0)`` times an ambiguity factor
``min(1, margin_over_runner_up / ambiguity_margin)``.  An alternative runs
``cv2.StereoSGBM`` on a strip around the region only and takes the median.
A left-right consistency check matches the found right-image region back
into the left image and rejects the region when the two disparities differ
by more than ``lr_tolerance`` pixels (occlusions, repetitive texture).
Matches are rejected with a reason (:data:`REJECT_REASONS`).

The numba kernel :func:`epipolar_scan_kernel` has a plain-numpy reference
:func:`epipolar_scan_reference` with the same signature; the public
:meth:`RegionMatcher.match` validates input before either runs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from .config import StereoCameraConfig

__all__ = [
    "CalibrationError",
    "StereoInputError",
    "StereoCalibration",
    "RegionMatcher",
    "RegionMatches",
    "REJECT_REASONS",
    "epipolar_scan_kernel",
    "epipolar_scan_reference",
]

#: Why a region got no depth: ``ok`` or one of the others.
REJECT_REASONS = (
    "ok",
    "outside_image",  # region (or every candidate position) outside the images
    "low_texture",  # template standard deviation below min_texture (grey levels)
    "at_image_border",  # best match at the edge of the right image: true match may be outside
    "too_near",  # depth below min_depth (or best match at the largest allowed disparity)
    "too_far",  # depth beyond max_depth (or best match at the smallest allowed disparity)
    "low_match_score",  # ZNCC at the best disparity below min_score
    "no_valid_disparity",  # SGBM found no valid disparity in the region
    "left_right_mismatch",  # matching the found right region back gives another disparity
)

METHOD_NCC = 0
METHOD_SAD = 1
_METHODS = {"ncc": METHOD_NCC, "sad": METHOD_SAD, "sgbm": -1}


class CalibrationError(ValueError):
    """The stereo calibration is missing, inconsistent or not usable."""


class StereoInputError(ValueError):
    """Images or regions given to the stereo code are unusable (shape, type, size)."""


# ---------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------
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
        """3D points and their covariance from rectified pixel coordinates and disparity.

        Parameters
        ----------
        u, v : array_like (N,)
            Pixel coordinates in the rectified left image.
        disparity : array_like (N,)
            u_left - u_right in pixels; must exceed :attr:`disparity_offset`.
        sigma_uv : float or array (N,)
            Standard deviation of u and v (px).
        sigma_disparity : float or array (N,)
            Standard deviation of the disparity (px).
        frame : {"camera", "rectified"}
            Express the result in the left camera optical frame (default) or in
            the rectified left frame.

        Returns
        -------
        xyz : array (N, 3)
            Metres (x right, y down, z forward).
        covariance : array (N, 3, 3)
            m^2, first-order propagation J diag(su^2, sv^2, sd^2) J^T; the depth
            standard deviation is z^2 / (fx B) * sigma_disparity.
        """
        if frame not in ("camera", "rectified"):
            raise ValueError(f"frame must be 'camera' or 'rectified', got {frame!r}")
        u, v, d = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.float64))
                                        for a in (u, v, disparity)))
        if u.ndim != 1:
            raise StereoInputError(f"u, v, disparity must be 1-D, got shape {u.shape}")
        dd = d - self.disparity_offset
        bad = ~(dd > 0) | ~np.isfinite(u) | ~np.isfinite(v)
        if np.any(bad):
            raise StereoInputError(
                f"{int(bad.sum())} point(s) have a non-finite coordinate or a disparity <= the "
                f"disparity offset ({self.disparity_offset:.3f} px), i.e. at or beyond infinity")
        su2 = np.broadcast_to(np.asarray(sigma_uv, dtype=np.float64) ** 2, u.shape)
        sd2 = np.broadcast_to(np.asarray(sigma_disparity, dtype=np.float64) ** 2, u.shape)
        z = self.fx * self.baseline / dd
        xu = (u - self.cx) / self.fx
        yv = (v - self.cy) / self.fy
        xyz = np.stack([xu * z, yv * z, z], axis=1)
        n = len(u)
        jac = np.zeros((n, 3, 3))
        dz_dd = -z / dd
        jac[:, 0, 0] = z / self.fx
        jac[:, 0, 2] = xu * dz_dd
        jac[:, 1, 1] = z / self.fy
        jac[:, 1, 2] = yv * dz_dd
        jac[:, 2, 2] = dz_dd
        s = np.zeros((n, 3, 3))
        s[:, 0, 0] = su2
        s[:, 1, 1] = su2
        s[:, 2, 2] = sd2
        cov = jac @ s @ np.transpose(jac, (0, 2, 1))
        if frame == "camera" and not np.allclose(self.rotation, np.eye(3)):
            r = self.rotation
            xyz = xyz @ r  # x_cam = R^T x_rect
            cov = r.T @ cov @ r
        return xyz, cov

    def project(self, xyz, frame: str = "camera"):
        """Rectified pixel coordinates and disparity of 3D points (inverse of triangulate).

        Parameters
        ----------
        xyz : array (N, 3) or (3,)
            Metres in the left camera optical frame (or the rectified frame).

        Returns
        -------
        u, v, disparity : arrays (N,)
        """
        p = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
        if p.ndim != 2 or p.shape[1] != 3:
            raise StereoInputError(f"xyz must have shape (N, 3), got {np.shape(xyz)}")
        if frame == "camera":
            p = p @ self.rotation.T
        elif frame != "rectified":
            raise ValueError(f"frame must be 'camera' or 'rectified', got {frame!r}")
        z = p[:, 2]
        u = self.fx * p[:, 0] / z + self.cx
        v = self.fy * p[:, 1] / z + self.cy
        return u, v, self.disparity_from_depth(z)

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
        self.check_images(left, right)
        if self.maps is None:
            return left, right
        lm1, lm2, rm1, rm2 = self.maps
        return (cv2.remap(left, lm1, lm2, cv2.INTER_LINEAR),
                cv2.remap(right, rm1, rm2, cv2.INTER_LINEAR))


def _rectify_maps(k, d, r, new_k, size, model, side):
    """Fixed-point cv2.remap maps of one camera (plumb_bob / rational / equidistant)."""
    try:
        if model in ("equidistant", "fisheye"):
            if d.size < 4:
                raise CalibrationError(f"{side} equidistant distortion needs 4 coefficients")
            m1, m2 = cv2.fisheye.initUndistortRectifyMap(
                k, d[:4], r, new_k, size, cv2.CV_16SC2)
        else:
            if d.size not in (0, 4, 5, 8, 12, 14):
                raise CalibrationError(
                    f"{side} distortion has {d.size} coefficients: OpenCV accepts 4, 5, 8, 12 "
                    "or 14 (plumb_bob has 5, rational_polynomial 8)")
            m1, m2 = cv2.initUndistortRectifyMap(
                k, d if d.size else None, r, new_k, size, cv2.CV_16SC2)
    except cv2.error as exc:
        raise CalibrationError(f"cannot build the {side} rectification map: {exc}") from None
    return m1, m2


# ---------------------------------------------------------------------------
# Epipolar matching kernel and its reference
# ---------------------------------------------------------------------------
@njit(cache=True)
def epipolar_scan_kernel(left, right, boxes, d_lo, dy_max, stride, method, scores, best_dy,
                         tstd):
    """Score every integer disparity of each region along its epipolar line.

    Parameters
    ----------
    left, right : float32 (H, W)
        Rectified grey images.
    boxes : int64 (M, 4)
        Template regions u0, v0, w, h (inside the left image).
    d_lo : int64 (M,)
        Disparity of column 0 of ``scores`` per region.
    dy_max : int
        Rows searched above and below the epipolar line.
    stride : int64 (M,)
        Template subsampling step per region (1 = every pixel).
    method : int
        0 ZNCC (higher is better, in [-1, 1]); 1 zero-mean SAD as minus the mean
        absolute difference (higher is better).
    scores : float64 (M, D)  out
        Best score over the rows for disparity d_lo + k; NaN where the candidate
        leaves the right image.
    best_dy : int64 (M, D)  out
        Row offset of that best score.
    tstd : float64 (M,)  out
        Standard deviation of the (subsampled) template, grey levels.
    """
    height, width = left.shape
    n_d = scores.shape[1]
    for m in range(boxes.shape[0]):
        u0 = boxes[m, 0]
        v0 = boxes[m, 1]
        w = boxes[m, 2]
        h = boxes[m, 3]
        st = stride[m]
        n = 0
        s = 0.0
        ss = 0.0
        for i in range(0, h, st):
            for j in range(0, w, st):
                t = np.float64(left[v0 + i, u0 + j])
                s += t
                ss += t * t
                n += 1
        mt = s / n
        var_t = ss / n - mt * mt
        if var_t < 0.0:
            var_t = 0.0
        tstd[m] = math.sqrt(var_t)
        for k in range(n_d):
            d = d_lo[m] + k
            uc = u0 - d
            scores[m, k] = np.nan
            best_dy[m, k] = 0
            if uc < 0 or uc + w > width:
                continue
            found = False
            best = 0.0
            for dy in range(-dy_max, dy_max + 1):
                vc = v0 + dy
                if vc < 0 or vc + h > height:
                    continue
                if method == 0:
                    sc = 0.0
                    scc = 0.0
                    stc = 0.0
                    for i in range(0, h, st):
                        for j in range(0, w, st):
                            c = np.float64(right[vc + i, uc + j])
                            sc += c
                            scc += c * c
                            stc += (np.float64(left[v0 + i, u0 + j]) - mt) * c
                    mc = sc / n
                    var_c = scc / n - mc * mc
                    den = math.sqrt(var_t * var_c) * n if var_c > 0.0 else 0.0
                    val = stc / den if den > 1e-12 else 0.0
                else:
                    sc = 0.0
                    for i in range(0, h, st):
                        for j in range(0, w, st):
                            sc += np.float64(right[vc + i, uc + j])
                    mc = sc / n
                    sad = 0.0
                    for i in range(0, h, st):
                        for j in range(0, w, st):
                            sad += abs((np.float64(left[v0 + i, u0 + j]) - mt)
                                       - (np.float64(right[vc + i, uc + j]) - mc))
                    val = -sad / n
                if not found or val > best:
                    best = val
                    best_dy[m, k] = dy
                    found = True
            if found:
                scores[m, k] = best


def epipolar_scan_reference(left, right, boxes, d_lo, dy_max, stride, method, scores, best_dy,
                            tstd):
    """Plain-numpy reference of :func:`epipolar_scan_kernel` (same arguments, same outputs)."""
    height, width = left.shape
    n_d = scores.shape[1]
    for m in range(boxes.shape[0]):
        u0, v0, w, h = (int(x) for x in boxes[m])
        st = int(stride[m])
        t = left[v0:v0 + h:st, u0:u0 + w:st].astype(np.float64)
        tz = t - t.mean()
        var_t = max(float(np.mean(t * t) - t.mean() ** 2), 0.0)
        tstd[m] = math.sqrt(var_t)
        scores[m] = np.nan
        best_dy[m] = 0
        for k in range(n_d):
            uc = u0 - int(d_lo[m]) - k
            if uc < 0 or uc + w > width:
                continue
            vals = []
            for dy in range(-dy_max, dy_max + 1):
                vc = v0 + dy
                if vc < 0 or vc + h > height:
                    continue
                c = right[vc:vc + h:st, uc:uc + w:st].astype(np.float64)
                if method == 0:
                    var_c = float(np.mean(c * c) - c.mean() ** 2)
                    den = math.sqrt(var_t * var_c) * c.size if var_c > 0 else 0.0
                    vals.append((float(np.sum(tz * c)) / den if den > 1e-12 else 0.0, dy))
                else:
                    vals.append((-float(np.mean(np.abs(tz - (c - c.mean())))), dy))
            if vals:
                j = int(np.argmax([x[0] for x in vals]))
                scores[m, k], best_dy[m, k] = vals[j]


# ---------------------------------------------------------------------------
# Region matcher
# ---------------------------------------------------------------------------
@dataclass
class RegionMatches:
    """Disparities of M regions (arrays of length M).

    disparity : px, sub-pixel; NaN when rejected.
    depth : m, from the disparity; NaN when rejected.
    score : ZNCC of the template at the best integer disparity (NaN if none).
    uniqueness : margin of the best score over the best one more than 2 px away
        (ZNCC units for ncc, relative MAD for sad; SGBM: fraction of valid pixels).
    quality : [0, 1] match quality (0 when rejected).
    dy : rows of the best match relative to the epipolar line.
    reason : str, "ok" or why the region was rejected (:data:`REJECT_REASONS`).
    """

    disparity: np.ndarray
    depth: np.ndarray
    score: np.ndarray
    uniqueness: np.ndarray
    quality: np.ndarray
    dy: np.ndarray
    reason: np.ndarray

    def __len__(self) -> int:
        return len(self.disparity)

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask (M,) of accepted regions."""
        return self.reason == "ok"

    @classmethod
    def empty(cls) -> RegionMatches:
        z = np.zeros(0)
        return cls(z, z, z, z, z, np.zeros(0, dtype=np.int64), np.zeros(0, dtype="<U24"))


def _gray32(img, name) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY if a.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if a.ndim != 2:
        raise StereoInputError(
            f"{name} image has shape {np.shape(img)}: expected a grey (H, W) or BGR (H, W, 3) "
            "array")
    if a.dtype == np.float32:
        return np.ascontiguousarray(a)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise StereoInputError(f"{name} image has unsupported dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


class RegionMatcher:
    """Disparity of image regions of a rectified pair (see the module docstring).

    Parameters
    ----------
    calibration : StereoCalibration
    min_depth, max_depth : float
        Metres; the disparity search covers exactly this depth range (plus one
        pixel each side to detect a peak at the limit).
    method : {"ncc", "sad", "sgbm"}
        Epipolar ZNCC scan (default), zero-mean SAD scan, or cv2.StereoSGBM on a
        strip around the region.
    vertical_search : int
        Rows searched above/below the epipolar line (residual rectification error).
    min_texture : float
        Minimum standard deviation of the template (grey levels, 0-255).
    min_score : float
        Minimum ZNCC at the best disparity.
    ambiguity_margin : float
        Margin of the best score over the runner-up giving full quality
        (0 disables the ambiguity factor).
    max_samples : int
        Template pixels used at most (larger regions are subsampled on a grid).
    sgbm_block_size : int
        Block size of the SGBM alternative (odd).
    lr_tolerance : float
        Left-right consistency tolerance in px (0 disables the check; SGBM
        always uses its own check with 1 px).
    use_numba : bool
        Numba kernel (default) or the numpy reference.
    """

    def __init__(self, calibration: StereoCalibration, min_depth: float = 0.4,
                 max_depth: float = 6.0, method: str = "ncc", vertical_search: int = 1,
                 min_texture: float = 2.0, min_score: float = 0.5,
                 ambiguity_margin: float = 0.1, max_samples: int = 1024,
                 sgbm_block_size: int = 5, lr_tolerance: float = 1.0,
                 use_numba: bool = True):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
        if (vertical_search < 0 or max_samples < 4 or sgbm_block_size < 1
                or sgbm_block_size % 2 == 0):
            raise ValueError("vertical_search must be >= 0, max_samples >= 4 and "
                             "sgbm_block_size odd and positive")
        self.calibration = calibration
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.method = method
        self.vertical_search = int(vertical_search)
        self.min_texture = float(min_texture)
        self.min_score = float(min_score)
        self.ambiguity_margin = float(ambiguity_margin)
        self.max_samples = int(max_samples)
        self.sgbm_block_size = int(sgbm_block_size)
        self.lr_tolerance = float(lr_tolerance)
        self._kernel = epipolar_scan_kernel if use_numba else epipolar_scan_reference
        d_min, d_max = self.disparity_range
        self._d_lo = int(math.floor(d_min)) - 1
        self._d_hi = int(math.ceil(d_max)) + 1

    @property
    def disparity_range(self) -> tuple[float, float]:
        """(smallest, largest) disparity in px of the allowed depth range."""
        c = self.calibration
        return (float(c.disparity_from_depth(self.max_depth)),
                float(c.disparity_from_depth(self.min_depth)))

    def warm_up(self) -> None:
        """Compile the numba kernel (call once at start-up)."""
        img = np.random.default_rng(0).uniform(0, 255, (32, 64)).astype(np.float32)
        scores = np.zeros((1, 3))
        self._kernel(img, img, np.array([[40, 8, 8, 8]], dtype=np.int64),
                     np.array([0], dtype=np.int64), 1, np.array([1], dtype=np.int64), 0,
                     scores, np.zeros((1, 3), dtype=np.int64), np.zeros(1))

    def _boxes(self, boxes, shape):
        b = np.asarray(boxes, dtype=np.float64)
        if b.size == 0:
            return np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=bool)
        b = np.atleast_2d(b)
        if b.ndim != 2 or b.shape[1] != 4 or not np.all(np.isfinite(b)):
            raise StereoInputError(
                f"boxes must be a finite (M, 4) array of u, v, w, h in pixels, got shape "
                f"{np.shape(boxes)}")
        height, width = shape
        u0 = np.round(b[:, 0])
        v0 = np.round(b[:, 1])
        u1 = np.round(b[:, 0] + b[:, 2])
        v1 = np.round(b[:, 1] + b[:, 3])
        u0c, v0c = np.clip(u0, 0, width), np.clip(v0, 0, height)
        u1c, v1c = np.clip(u1, 0, width), np.clip(v1, 0, height)
        out = np.stack([u0c, v0c, u1c - u0c, v1c - v0c], axis=1).astype(np.int64)
        ok = (out[:, 2] >= 3) & (out[:, 3] >= 3)
        out[~ok] = [0, 0, 3, 3]
        return out, ok

    def match(self, left, right, boxes) -> RegionMatches:
        """Disparity of each region of the rectified left image.

        Parameters
        ----------
        left, right : arrays (H, W) or (H, W, 3) BGR
            The rectified pair (uint8 grey levels expected for ``min_texture``).
        boxes : array (M, 4)
            Regions u, v, w, h in left-image pixels (clipped to the image).

        Returns
        -------
        RegionMatches
        """
        gl = _gray32(left, "left")
        gr = _gray32(right, "right")
        if gl.shape != gr.shape:
            raise StereoInputError(
                f"left image is {gl.shape[1]}x{gl.shape[0]} but right is "
                f"{gr.shape[1]}x{gr.shape[0]}: the stereo pair must have equal sizes")
        ib, inside = self._boxes(boxes, gl.shape)
        m = len(ib)
        if m == 0:
            return RegionMatches.empty()
        if self.method == "sgbm":
            return self._match_sgbm(gl, gr, ib, inside)
        n_d = self._d_hi - self._d_lo + 1
        d_lo = np.full(m, self._d_lo, dtype=np.int64)
        area = ib[:, 2] * ib[:, 3]
        stride = np.maximum(1, np.ceil(np.sqrt(area / self.max_samples))).astype(np.int64)
        scores = np.empty((m, n_d))
        best_dy = np.zeros((m, n_d), dtype=np.int64)
        tstd = np.zeros(m)
        self._kernel(gl, gr, ib, d_lo, self.vertical_search, stride, _METHODS[self.method],
                     scores, best_dy, tstd)
        res = self._finish(gl, gr, ib, inside, stride, scores, best_dy, tstd)
        if self.lr_tolerance > 0:
            self._left_right_check(gl, gr, ib, stride, res)
        return res

    def _left_right_check(self, gl, gr, ib, stride, res: RegionMatches) -> None:
        """Match the found right regions back into the left image (in place)."""
        idx = np.flatnonzero(res.valid)
        if idx.size == 0:
            return
        width = gl.shape[1]
        # right -> left matching is left -> right matching of the mirrored images
        glf = np.ascontiguousarray(gr[:, ::-1])
        grf = np.ascontiguousarray(gl[:, ::-1])
        boxes = ib[idx].copy()
        ur = boxes[:, 0] - np.round(res.disparity[idx]).astype(np.int64)
        boxes[:, 0] = width - ur - boxes[:, 2]
        boxes[:, 1] += res.dy[idx]
        inside = (boxes[:, 0] >= 0) & (boxes[:, 0] + boxes[:, 2] <= width)
        boxes[~inside, 0] = 0
        n_d = self._d_hi - self._d_lo + 1
        scores = np.empty((idx.size, n_d))
        best_dy = np.zeros((idx.size, n_d), dtype=np.int64)
        tstd = np.zeros(idx.size)
        self._kernel(glf, grf, boxes, np.full(idx.size, self._d_lo, dtype=np.int64),
                     self.vertical_search, stride[idx], _METHODS[self.method], scores, best_dy,
                     tstd)
        back = self._finish(glf, grf, boxes, inside, stride[idx], scores, best_dy,
                            np.full(idx.size, np.inf))
        bad = ~(np.abs(back.disparity - res.disparity[idx]) <= self.lr_tolerance)
        j = idx[bad]
        res.reason[j] = "left_right_mismatch"
        res.disparity[j] = np.nan
        res.depth[j] = np.nan
        res.quality[j] = 0.0

    # ------------------------------------------------------------ internals
    def _finish(self, gl, gr, ib, inside, stride, scores, best_dy, tstd) -> RegionMatches:
        m, n_d = scores.shape
        disparity = np.full(m, np.nan)
        ncc = np.full(m, np.nan)
        uniq = np.zeros(m)
        quality = np.zeros(m)
        dy = np.zeros(m, dtype=np.int64)
        reason = np.full(m, "ok", dtype="<U24")
        for i in range(m):
            s = scores[i]
            finite = np.isfinite(s)
            if not inside[i] or not finite.any():
                reason[i] = "outside_image"
                continue
            if tstd[i] < self.min_texture:
                reason[i] = "low_texture"
                continue
            k = int(np.nanargmax(s))
            dy[i] = best_dy[i, k]
            far = np.abs(np.arange(n_d) - k) > 2
            others = s[far & finite]
            best = s[k]
            if self.method == "ncc":
                uniq[i] = best - others.max() if others.size else 1.0
                ncc[i] = best
            else:
                second = -others.max() if others.size else np.inf
                uniq[i] = (second - (-best)) / second if second > 0 else 1.0
                ncc[i] = _zncc_at(gl, gr, ib[i], stride[i], self._d_lo + k, dy[i])
            if k == 0:
                reason[i] = "too_far"
                continue
            if k == n_d - 1:
                reason[i] = "too_near"
                continue
            if not (finite[k - 1] and finite[k + 1]):
                reason[i] = "at_image_border"
                continue
            if not ncc[i] >= self.min_score:
                reason[i] = "low_match_score"
                continue
            a, b, c = s[k - 1], s[k], s[k + 1]
            den = a - 2 * b + c
            delta = 0.5 * (a - c) / den if den < 0 else 0.0
            disparity[i] = self._d_lo + k + float(np.clip(delta, -0.5, 0.5))
            amb = min(1.0, uniq[i] / self.ambiguity_margin) if self.ambiguity_margin > 0 else 1.0
            quality[i] = max(ncc[i], 0.0) * max(amb, 0.0)
        return self._depth_check(disparity, ncc, uniq, quality, dy, reason)

    def _depth_check(self, disparity, ncc, uniq, quality, dy, reason) -> RegionMatches:
        ok = reason == "ok"
        depth = np.full(len(disparity), np.nan)
        dd = disparity - self.calibration.disparity_offset
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(dd > 0, self.calibration.fx * self.calibration.baseline / dd, np.inf)
        far = ok & (z > self.max_depth)
        near = ok & (z < self.min_depth)
        reason[far] = "too_far"
        reason[near] = "too_near"
        ok = reason == "ok"
        depth[ok] = z[ok]
        disparity = np.where(ok, disparity, np.nan)
        quality = np.where(ok, quality, 0.0)
        return RegionMatches(disparity, depth, ncc, uniq, quality, dy, reason)

    def _match_sgbm(self, gl, gr, ib, inside) -> RegionMatches:
        m = len(ib)
        height, width = gl.shape
        bs = self.sgbm_block_size
        min_disp = self._d_lo
        num = int(math.ceil((self._d_hi - self._d_lo + 1) / 16.0)) * 16
        sgbm = cv2.StereoSGBM_create(
            minDisparity=min_disp, numDisparities=num, blockSize=bs, P1=8 * bs * bs,
            P2=32 * bs * bs, disp12MaxDiff=1, uniquenessRatio=10, speckleWindowSize=0,
            mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
        l8 = np.clip(gl, 0, 255).astype(np.uint8)
        r8 = np.clip(gr, 0, 255).astype(np.uint8)
        disparity = np.full(m, np.nan)
        ncc = np.full(m, np.nan)
        uniq = np.zeros(m)
        quality = np.zeros(m)
        dy = np.zeros(m, dtype=np.int64)
        reason = np.full(m, "ok", dtype="<U24")
        pad = bs
        for i in range(m):
            if not inside[i]:
                reason[i] = "outside_image"
                continue
            u0, v0, w, h = (int(x) for x in ib[i])
            tmpl = gl[v0:v0 + h, u0:u0 + w]
            if float(tmpl.std()) < self.min_texture:
                reason[i] = "low_texture"
                continue
            r0, r1 = max(0, v0 - pad), min(height, v0 + h + pad)
            c0 = max(0, u0 - (min_disp + num) - pad)
            c1 = min(width, u0 + w + pad + max(0, -min_disp))
            # SGBM leaves columns < minDisparity + numDisparities of its input invalid:
            # pad the strips on the left so that the region lies beyond them
            shift = max(0, min_disp + num + pad - (u0 - c0))
            strip_l = np.zeros((r1 - r0, c1 - c0 + shift), np.uint8)
            strip_r = np.zeros_like(strip_l)
            strip_l[:, shift:] = l8[r0:r1, c0:c1]
            strip_r[:, shift:] = r8[r0:r1, c0:c1]
            disp = sgbm.compute(strip_l, strip_r).astype(np.float32) / 16.0
            region = disp[v0 - r0:v0 - r0 + h, u0 - c0 + shift:u0 - c0 + shift + w]
            valid = region >= min_disp
            # candidates falling outside the real right image are not measurements
            cols = np.arange(u0, u0 + w)[None, :] - region
            valid &= (cols >= 0) & (cols < width)
            if not valid.any():
                reason[i] = "no_valid_disparity"
                continue
            vals = region[valid]
            med = float(np.median(vals))
            inl = np.abs(vals - med) <= 1.0
            frac_valid = valid.mean()
            uniq[i] = frac_valid
            med = float(np.mean(vals[inl]))
            ncc[i] = _zncc_at(gl, gr, ib[i], 1, int(round(med)), 0)
            if med <= self._d_lo + 0.5:
                reason[i] = "too_far"
                continue
            if med >= self._d_hi - 0.5:
                reason[i] = "too_near"
                continue
            if not ncc[i] >= self.min_score:
                reason[i] = "low_match_score"
                continue
            disparity[i] = med
            quality[i] = float(inl.sum()) / valid.size * max(float(ncc[i]), 0.0)
        return self._depth_check(disparity, ncc, uniq, quality, dy, reason)


def _zncc_at(gl, gr, box, stride, d, dy) -> float:
    """ZNCC of one template at integer disparity d and row offset dy (NaN if outside)."""
    u0, v0, w, h = (int(x) for x in box)
    uc, vc = u0 - int(d), v0 + int(dy)
    height, width = gl.shape
    if uc < 0 or uc + w > width or vc < 0 or vc + h > height:
        return float("nan")
    st = int(stride)
    t = gl[v0:v0 + h:st, u0:u0 + w:st].astype(np.float64)
    c = gr[vc:vc + h:st, uc:uc + w:st].astype(np.float64)
    t = t - t.mean()
    c = c - c.mean()
    den = math.sqrt(float(np.sum(t * t) * np.sum(c * c)))
    return float(np.sum(t * c) / den) if den > 1e-12 else 0.0
