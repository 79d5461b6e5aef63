"""Audio feature files: CSV with header ``t,itd,azimuth,ild,activity``.

Units: t in seconds (frame centre), itd in seconds (positive when the sound
reaches the left mic first), azimuth in radians (positive towards the left
mic, 0 straight ahead), ild in dB (left over right), activity in [0, 1].
Frames without a usable ITD have ``nan`` itd and azimuth.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["FEATURE_COLUMNS", "write_features_csv", "read_features_csv"]

FEATURE_COLUMNS = ("t", "itd", "azimuth", "ild", "activity")


def write_features_csv(path, features, extra_columns: bool = False) -> int:
    """Write BinauralFeatures to CSV; returns the number of rows.

    ``extra_columns`` appends reliability, direct_path and snr_db after the
    five contract columns.
    """
    cols = list(FEATURE_COLUMNS)
    data = [features.stamp, features.itd, features.azimuth, features.ild, features.activity]
    if extra_columns:
        cols += ["reliability", "direct_path", "snr_db"]
        data += [features.reliability, features.direct_path, features.snr_db]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        fmts = ["{:.6f}", "{:.9e}", "{:.6f}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.3f}"]
        for row in zip(*data):
            w.writerow([fmts[i].format(float(v)) if np.isfinite(v) else "nan"
                        for i, v in enumerate(row)])
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
