"""Stereo geometry of the camera pair: calibration (``calibration``), rectification
(``rectification``), triangulation (``triangulation``) and the disparity of image
regions (``matching``, with the numba epipolar scan and its reference in ``scan``)."""
from __future__ import annotations

from .calibration import StereoCalibration
from .errors import CalibrationError, StereoInputError
from .matching import REJECT_REASONS, RegionMatcher, RegionMatches
from .scan import epipolar_scan_kernel, epipolar_scan_reference

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
