"""Audio feature files: CSV with header ``t,itd,azimuth,ild,activity``.

Units: t in seconds (frame centre), itd in seconds (positive when the sound
reaches the left mic first), azimuth in radians (positive towards the left
mic, 0 straight ahead), ild in dB (left over right), activity in [0, 1].
Frames without a usable ITD have ``nan`` itd and azimuth.
"""
from __future__ import annotations

import csv

import numpy as np

from .csv_output import CsvOutput

__all__ = ["FEATURE_COLUMNS", "FeatureCsvWriter", "write_features_csv", "read_features_csv"]

FEATURE_COLUMNS = ("t", "itd", "azimuth", "ild", "activity")


_FORMATS = ("{:.6f}", "{:.9e}", "{:.6f}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.3f}")


class FeatureCsvWriter(CsvOutput):
    """Streams BinauralFeatures to a feature CSV, chunk by chunk (each chunk flushed to
    ``<name>.partial``, renamed over the target when closed, also after an error or a
    signal: :class:`~av_perception.io.csv_output.CsvOutput`)."""

    def __init__(self, path, extra_columns: bool = False):
        self.extra_columns = extra_columns
        cols = list(FEATURE_COLUMNS)
        if extra_columns:
            cols += ["reliability", "direct_path", "snr_db"]
        super().__init__(path, cols)

    def write(self, features) -> int:
        """Append the frames of one chunk of features; returns how many."""
        data = [features.stamp, features.itd, features.azimuth, features.ild,
                features.activity]
        if self.extra_columns:
            data += [features.reliability, features.direct_path, features.snr_db]
        rows = [[_FORMATS[i].format(float(v)) if np.isfinite(v) else "nan"
                 for i, v in enumerate(row)] for row in zip(*data)]
        if not rows:
            return 0
        return self.write_frame(rows)


def write_features_csv(path, features, extra_columns: bool = False) -> int:
    """Write BinauralFeatures to CSV; returns the number of rows.

    ``extra_columns`` appends reliability, direct_path and snr_db after the
    five contract columns.
    """
    with FeatureCsvWriter(path, extra_columns) as out:
        out.write(features)
    return len(features.stamp)


def read_features_csv(path) -> dict[str, np.ndarray]:
    """Read a feature CSV -> {column: float array}; checks the header."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header[:5]) != FEATURE_COLUMNS:
            raise ValueError(
                f"{path} is not an audio feature file: header must start with "
                f"{','.join(FEATURE_COLUMNS)}")
        rows = [[float(v) for v in r] for r in reader if r]
    arr = np.array(rows, dtype=float).reshape(-1, len(header))
    return {name: arr[:, i] for i, name in enumerate(header)}
