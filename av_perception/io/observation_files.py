"""Visual observation files: CSV with header ``stamp,x,y,z,weight,u,v,w,h``.

One row per observation: stamp in seconds (the left image header stamp),
x, y, z in metres (left camera optical frame), weight in [0, 1], and the head
box u, v, w, h in pixels of the rectified left image.  With extra columns:
kind (face/profile/upper_body/body/point), var_x, var_y, var_z (m^2), quality,
disparity (px), lip_llr and lip_reliability (the lip cue, 0 = unknown; files written
before it have no such columns, and the reader accepts them as they are).  Rows are
written frame by frame and flushed, so that a run that stops early leaves everything
computed before it in the file.
"""
from __future__ import annotations

import csv

import numpy as np

from .csv_output import CsvOutput

__all__ = ["OBSERVATION_COLUMNS", "EXTRA_OBSERVATION_COLUMNS", "ObservationCsvWriter",
           "read_observations_csv"]

OBSERVATION_COLUMNS = ("stamp", "x", "y", "z", "weight", "u", "v", "w", "h")
EXTRA_OBSERVATION_COLUMNS = ("kind", "var_x", "var_y", "var_z", "quality", "disparity",
                             "lip_llr", "lip_reliability")


def _num(v: float, fmt: str) -> str:
    return fmt.format(float(v)) if np.isfinite(v) else "nan"


class ObservationCsvWriter(CsvOutput):
    """Streams :class:`~av_perception.core.vision.VisualObservations` to a CSV file.

    Use as a context manager; :meth:`write` appends one frame's rows and flushes (to
    ``<name>.partial``, renamed over the target when closed, also after an error or a
    signal: :class:`~av_perception.io.csv_output.CsvOutput`).
    """

    def __init__(self, path, extra_columns: bool = False):
        self.extra_columns = extra_columns
        cols = list(OBSERVATION_COLUMNS)
        if extra_columns:
            cols += EXTRA_OBSERVATION_COLUMNS
        super().__init__(path, cols)

    def write(self, obs) -> int:
        """Append the rows of one frame; returns how many were written."""
        stamp = f"{float(obs.stamp):.6f}"
        var = obs.variances if len(obs) else np.zeros((0, 3))
        lip = getattr(obs, "lip_llr", None)
        lip = np.zeros(len(obs)) if lip is None else np.asarray(lip)
        rel = getattr(obs, "lip_reliability", None)
        rel = np.zeros(len(obs)) if rel is None else np.asarray(rel)
        rows = []
        for i in range(len(obs)):
            x, y, z = obs.xyz[i]
            u, v, w, h = obs.box[i]
            row = [stamp, _num(x, "{:.4f}"), _num(y, "{:.4f}"), _num(z, "{:.4f}"),
                   _num(obs.weight[i], "{:.4f}"), _num(u, "{:.2f}"), _num(v, "{:.2f}"),
                   _num(w, "{:.2f}"), _num(h, "{:.2f}")]
            if self.extra_columns:
                row += [str(obs.kind[i]), *(_num(var[i, k], "{:.4e}") for k in range(3)),
                        _num(obs.quality[i], "{:.4f}"), _num(obs.disparity[i], "{:.3f}"),
                        _num(lip[i], "{:.4f}"), _num(rel[i], "{:.4f}")]
            rows.append(row)
        return self.write_frame(rows)


def read_observations_csv(path) -> dict[str, np.ndarray]:
    """Read an observation CSV -> {column: array} (float, ``kind`` as str); checks the header."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header[:len(OBSERVATION_COLUMNS)]) != OBSERVATION_COLUMNS:
            raise ValueError(
                f"{path} is not a visual observation file: header must start with "
                f"{','.join(OBSERVATION_COLUMNS)}")
        rows = [r for r in reader if r]
    out = {}
    for i, name in enumerate(header):
        col = [r[i] for r in rows]
        out[name] = np.array(col, dtype=str) if name == "kind" else np.array(col, dtype=float)
    return out
