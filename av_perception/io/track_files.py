"""Track files: CSV ``stamp,track_id,x,y,z,speaking`` (docs/architecture.md, "Files").

One row per confirmed track per image frame; stamp = the image header stamp (s), x, y, z in
metres in the left camera optical frame, speaking = probability in [0, 1].  The evaluation
reads them with :func:`av_perception.eval.readers.read_tracks`.
"""
from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["TRACK_COLUMNS", "TrackFileWriter"]

TRACK_COLUMNS = ("stamp", "track_id", "x", "y", "z", "speaking")


class TrackFileWriter:
    """Writes rows as they come (flushed per frame, so a crash keeps what was written)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w", newline="")
        self._csv = csv.writer(self._fh)
        self._csv.writerow(TRACK_COLUMNS)

    def write(self, output) -> int:
        """Write the rows of a TrackerOutput; returns how many."""
        rows = output.rows()
        for stamp, tid, x, y, z, speaking in rows:
            self._csv.writerow([f"{stamp:.6f}", tid, f"{x:.4f}", f"{y:.4f}", f"{z:.4f}",
                                f"{speaking:.3f}"])
        self._fh.flush()
        return len(rows)

    def close(self):
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
