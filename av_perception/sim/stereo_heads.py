"""Rectified stereo pairs of face photos at known 3D positions in front of a textured
plane, at the exact disparity (tests and benchmarks of the visual front-end)."""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..core.stereo import StereoCalibration

__all__ = ["render_stereo_heads"]


def render_stereo_heads(calibration: StereoCalibration, heads, face: np.ndarray,
                        background: np.ndarray | None = None, background_depth: float = 6.0,
                        head_width: float = 0.16, noise_sigma: float = 0.0,
                        rng: np.random.Generator | None = None):
    """Render a rectified stereo pair of faces at known 3D positions.

    Each face photo is scaled to ``fx * head_width / z`` pixels wide, masked by
    an ellipse and pasted at its projection in the left image and at the exact
    disparity ``fx * B / z`` (sub-pixel, bilinear) in the right image, in front
    of a fronto-parallel textured plane at ``background_depth``.

    Parameters
    ----------
    calibration : StereoCalibration
        Its rectified geometry is used (rotation ignored: positions are in the
        rectified left frame).
    heads : array (N, 3)
        Face centres in metres (x right, y down, z forward).
    face : array (h, w, 3) uint8 BGR
        A face crop that spans ``head_width`` metres.
    background : array (H', W', 3) uint8 BGR, optional
        Texture of the background plane (default: smoothed noise).
    noise_sigma : float
        Standard deviation of independent Gaussian pixel noise added to each image.

    Returns
    -------
    left, right : arrays (height, width, 3) uint8 BGR
    """
    cal = calibration
    width, height = cal.width, cal.height
    rng = rng if rng is not None else np.random.default_rng(0)
    d_bg = float(cal.disparity_from_depth(background_depth))
    margin = int(math.ceil(abs(d_bg))) + 2
    if background is None:
        noise = rng.uniform(0, 255, (height // 4 + 1, (width + margin) // 4 + 1, 3))
        background = cv2.resize(noise.astype(np.uint8), (width + margin, height),
                                interpolation=cv2.INTER_CUBIC)
    else:
        background = cv2.resize(np.asarray(background, dtype=np.uint8), (width + margin, height),
                                interpolation=cv2.INTER_AREA)
    images = []
    for shift in (0.0, d_bg):  # right(u) = left(u + d)
        m = np.float32([[1, 0, shift], [0, 1, 0]])
        images.append(cv2.warpAffine(background, m, (width, height), flags=cv2.INTER_LINEAR
                                     | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
                      .astype(np.float32))
    heads = np.asarray(heads, dtype=np.float64).reshape(-1, 3)
    face = np.asarray(face, dtype=np.uint8)
    fh, fw = face.shape[:2]
    for x, y, z in heads[np.argsort(-heads[:, 2])]:
        if z <= 0:
            continue
        size = cal.fx * head_width / z
        pw = max(2, int(round(size)))
        ph = max(2, int(round(size * fh / fw)))
        patch = cv2.resize(face, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
        alpha = np.zeros((ph, pw), np.float32)
        cv2.ellipse(alpha, (((pw - 1) / 2, (ph - 1) / 2), (pw * 0.98, ph * 0.98), 0.0), 1.0, -1)
        u = cal.fx * x / z + cal.cx
        v = cal.fy * y / z + cal.cy
        d = float(cal.disparity_from_depth(z))
        a = size / pw
        b = size * fh / fw / ph
        for img, uc in ((images[0], u), (images[1], u - d)):
            m = np.float32([[a, 0, uc - a * (pw - 1) / 2], [0, b, v - b * (ph - 1) / 2]])
            warped = cv2.warpAffine(patch, m, (width, height), flags=cv2.INTER_LINEAR)
            wa = cv2.warpAffine(alpha, m, (width, height), flags=cv2.INTER_LINEAR)[..., None]
            img *= 1 - wa
            img += wa * warped
    out = []
    for img in images:
        if noise_sigma > 0:
            img = img + rng.normal(0, noise_sigma, img.shape)
        out.append(np.clip(np.round(img), 0, 255).astype(np.uint8))
    return out[0], out[1]
