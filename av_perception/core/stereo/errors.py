"""Errors of the stereo code: an unusable calibration, unusable images or regions."""
from __future__ import annotations


class CalibrationError(ValueError):
    """The stereo calibration is missing, inconsistent or not usable."""


class StereoInputError(ValueError):
    """Images or regions given to the stereo code are unusable (shape, type, size)."""
