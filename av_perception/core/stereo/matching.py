"""Disparity of image regions of a rectified pair (:class:`RegionMatcher`): epipolar
scan, sub-pixel refinement, match quality, left-right check, or SGBM on a strip; every
region accepted or rejected with a reason (:data:`REJECT_REASONS`)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .calibration import StereoCalibration
from .errors import StereoInputError
from .scan import epipolar_scan_kernel, epipolar_scan_reference

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


def _gray(img, name, keep_uint8: bool = True) -> np.ndarray:
    """A grey (H, W) image for the scan: uint8 as it is (a view, no copy: the kernel reads
    each pixel as float64, exactly as from its float32 copy), anything else float32."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY if a.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if a.ndim != 2:
        raise StereoInputError(
            f"{name} image has shape {np.shape(img)}: expected a grey (H, W) or BGR (H, W, 3) "
            "array")
    if a.dtype == np.float32 or (keep_uint8 and a.dtype == np.uint8):
        return a if a.dtype == np.uint8 else np.ascontiguousarray(a)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise StereoInputError(f"{name} image has unsupported dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


class RegionMatcher:
    """Disparity of image regions of a rectified pair.

    A template cut from the left image is compared with the right image along its
    epipolar line (same rows, with an optional +-``vertical_search`` rows for residual
    rectification error) for every integer disparity of the range allowed by the depth
    limits, by zero-mean normalised cross-correlation (ZNCC, default) or zero-mean SAD
    (:func:`~.scan.epipolar_scan_kernel`).  The best integer disparity is refined by a
    parabola through the three scores around it.  The match quality in [0, 1] is
    ``max(ZNCC, 0)`` times ``min(1, margin_over_runner_up / ambiguity_margin)``.  The
    ``sgbm`` method runs ``cv2.StereoSGBM`` on a strip around the region only and takes
    the median.  A left-right check matches the found right-image region back into the
    left image and rejects the region when the two disparities differ by more than
    ``lr_tolerance`` px (occlusions, repetitive texture).  :meth:`match` validates its
    input before the kernel (or its reference) runs.

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
        # SGBM's path reads template statistics in float32: it keeps the float32 copies
        keep = self.method != "sgbm"
        gl = _gray(left, "left", keep)
        gr = _gray(right, "right", keep)
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
        # right -> left matching is left -> right matching of the mirrored images (views)
        glf = gr[:, ::-1]
        grf = gl[:, ::-1]
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
