"""One numba compilation at a time across the processes of one machine.

Numba's on-disk cache (``cache=True``) is not safe when two processes compile signatures
of the same kernel at once: each picks the next free cache data file from an index it
read before the other wrote, and a process can later load another signature's machine
code (wrong results or a crash; numba issue 10128).  The nodes of a launch file warm
their kernels up at the same moment on a fresh install, so every warm-up runs under an
exclusive file lock: the first process compiles and writes the cache, the next ones load
it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading

try:
    import fcntl
except ImportError:  # not POSIX: compile without the lock
    fcntl = None

__all__ = ["LOCK_PATH", "serialized_compilation"]

LOCK_PATH = os.path.join(tempfile.gettempdir(),
                         f"av_perception-numba-{os.getuid() if hasattr(os, 'getuid') else 0}"
                         ".lock")

_thread_lock = threading.RLock()
_depth = 0


@contextlib.contextmanager
def serialized_compilation(path: str | None = None):
    """Hold the machine-wide compile lock (re-entrant within a process).

    Where the lock file cannot be created (a read-only temporary directory) the body runs
    without it: compiling is still correct in a process that is alone.
    """
    global _depth
    with _thread_lock:
        if _depth or fcntl is None:
            _depth += 1
            try:
                yield
            finally:
                _depth -= 1
            return
        try:
            fd = os.open(path or LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            _depth += 1
            yield
        finally:
            _depth -= 1
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def warm_up_all_kernels() -> None:
    """Compile (or load from the cache) every numba kernel the pipeline uses, under the
    lock: the audio front-end, the stereo matcher and the weighted-data EM."""
    from .pipeline import AudioPipeline, FusionPipeline, VisionPipeline

    with serialized_compilation():
        AudioPipeline().warm_up()
        vision = VisionPipeline()
        try:
            vision.warm_up()
        finally:
            vision.close()
        FusionPipeline().warm_up()
