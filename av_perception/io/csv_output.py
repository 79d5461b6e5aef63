"""CSV outputs written frame by frame, safely.

Rows go to ``<name>.partial`` beside the target and are flushed after every frame;
closing renames the partial file over the target.  So a run that fails or is
stopped part-way keeps every frame computed before it (the rename happens on the
way out of the error), while a run that computed nothing leaves an existing file as
it was instead of emptying it.  Outputs that are not regular files (``/dev/stdout``,
a FIFO) are written directly.  Write errors name the file (``cannot write
out.csv: No space left on device``).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

__all__ = ["CsvOutput", "named_os_error"]


def named_os_error(exc: OSError, path, action: str = "write") -> OSError:
    """The same OSError, with a message naming the path (and the fix when obvious)."""
    hint = ""
    if exc.errno == 28:  # ENOSPC
        hint = "; free some space or write the output elsewhere"
    elif exc.errno in (13, 30):  # EACCES, EROFS
        hint = "; choose a writable location"
    return OSError(exc.errno, f"cannot {action} {path}: {exc.strerror or exc}{hint}")


class CsvOutput:
    """A CSV file written frame by frame (see the module docstring).

    ``write_frame(rows)`` appends the rows of one frame and flushes; use as a context
    manager.  ``frames`` and ``rows`` count what was written; after closing,
    ``kept_existing`` tells that the target was left untouched (nothing computed).
    """

    def __init__(self, path, header):
        self.path = Path(path)
        self.frames = 0
        self.rows = 0
        self.kept_existing = False
        direct = self.path.exists() and not self.path.is_file()
        self.partial = None if direct else self.path.with_name(self.path.name + ".partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.partial or self.path, "w", newline="")
        except OSError as exc:
            raise named_os_error(exc, self.path) from exc
        self._csv = csv.writer(self._fh)
        self._write([list(header)])

    def _write(self, rows):
        try:
            for row in rows:
                self._csv.writerow(row)
            self._fh.flush()
        except OSError as exc:
            raise named_os_error(exc, self.path) from exc

    def write_frame(self, rows) -> int:
        """Append one frame's rows (lists of strings) and flush; returns how many."""
        rows = list(rows)
        self._write(rows)
        self.frames += 1
        self.rows += len(rows)
        return len(rows)

    def close(self, failed: bool = False) -> None:
        """Finish the file: the target is replaced when at least one frame was written,
        or when the run did not fail and there was no file; else it is left as it was."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        error = None
        try:
            fh.close()
        except OSError as exc:
            error = named_os_error(exc, self.path)
        if self.partial is not None:
            if self.frames > 0 or (not failed and error is None and not self.path.exists()):
                try:
                    os.replace(self.partial, self.path)
                except OSError as exc:
                    error = error or named_os_error(exc, self.path)
            else:
                self.kept_existing = self.path.exists()
                try:
                    os.unlink(self.partial)
                except OSError:
                    pass
        if error is not None and not failed:
            raise error

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
