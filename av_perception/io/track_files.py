"""Track files: CSV ``stamp,track_id,x,y,z,speaking`` (docs/architecture.md, "Files"),
and attention files: CSV ``stamp,track_id,x,y,z``.

Track file: one row per confirmed track per image frame; stamp = the image header stamp
(s), x, y, z in metres in the frame of the ``speakers`` output (the left camera optical
frame), speaking = probability in [0, 1].  Attention file: one row per tracker step, the
attention target's track id and position, track_id -1 and empty x, y, z when there is
none.  The evaluation reads them with :func:`av_perception.eval.readers.read_tracks` and
:func:`~av_perception.eval.readers.read_attention`.
"""
from __future__ import annotations

from .csv_output import CsvOutput

__all__ = ["ATTENTION_COLUMNS", "TRACK_COLUMNS", "AttentionFileWriter", "TrackFileWriter"]

TRACK_COLUMNS = ("stamp", "track_id", "x", "y", "z", "speaking")
ATTENTION_COLUMNS = ("stamp", "track_id", "x", "y", "z")


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


class AttentionFileWriter(CsvOutput):
    """Writes one attention row per tracker step (like :class:`TrackFileWriter`: flushed
    per step to ``<name>.partial``, renamed when closed)."""

    def __init__(self, path):
        super().__init__(path, ATTENTION_COLUMNS)

    def write(self, target) -> int:
        """Write an :class:`~av_perception.core.attention.AttentionTarget`; returns 1."""
        stamp, tid, x, y, z = target.row()
        xyz = [f"{v:.4f}" if v == v else "" for v in (x, y, z)]
        return self.write_frame([[f"{stamp:.6f}", tid, *xyz]])
