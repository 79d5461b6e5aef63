"""What every stereo source yields (:class:`StereoFrame`) or raises (:class:`StereoSourceError`)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...core.stereo import StereoCalibration


class StereoSourceError(OSError):
    """A stereo source cannot be opened or stopped delivering frames."""


class StereoFrame(NamedTuple):
    """One synchronised, decoded stereo pair."""

    stamp: float  # s, left image header stamp
    left: np.ndarray  # (H, W, 3) uint8 BGR
    right: np.ndarray  # (H, W, 3) uint8 BGR
    calibration: StereoCalibration
