"""Rectification of raw image pairs: the fixed-point ``cv2.remap`` maps of one camera
for plumb_bob, rational or equidistant distortion, and the remap of a pair."""
from __future__ import annotations

import cv2
import numpy as np

from .errors import CalibrationError


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


def rectify_pair(calib, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rectify a raw pair with the stored maps (returns the inputs when not needed)."""
    calib.check_images(left, right)
    if calib.maps is None:
        return left, right
    lm1, lm2, rm1, rm2 = calib.maps
    return (cv2.remap(left, lm1, lm2, cv2.INTER_LINEAR),
            cv2.remap(right, rm1, rm2, cv2.INTER_LINEAR))
