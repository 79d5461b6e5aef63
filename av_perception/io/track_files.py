"""Track files: CSV ``stamp,track_id,x,y,z,speaking`` (docs/architecture.md, "Files").

One row per confirmed track per image frame; stamp = the image header stamp (s), x, y, z in
metres in the left camera optical frame, speaking = probability in [0, 1].  The evaluation
reads them with :func:`av_perception.eval.readers.read_tracks`.
"""
from __future__ import annotations

from .csv_output import CsvOutput

__all__ = ["TRACK_COLUMNS", "TrackFileWriter"]

TRACK_COLUMNS = ("stamp", "track_id", "x", "y", "z", "speaking")


class TrackFileWriter(CsvOutput):
    """Writes rows as they come, flushed per frame to ``<name>.partial`` and renamed over
    the target when closed -- also on an error or a signal, so everything written before
    it is kept, and a run that computed nothing leaves an existing file alone
    (:class:`~av_perception.io.csv_output.CsvOutput`)."""

    def __init__(self, path):
        super().__init__(path, TRACK_COLUMNS)

    def write(self, output) -> int:
        """Write the rows of a TrackerOutput; returns how many."""
        return self.write_frame(
            [f"{stamp:.6f}", tid, f"{x:.4f}", f"{y:.4f}", f"{z:.4f}", f"{speaking:.3f}"]
            for stamp, tid, x, y, z, speaking in output.rows())
