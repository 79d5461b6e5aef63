"""One numba compilation at a time across the processes of one machine.

Numba's on-disk cache (``cache=True``) is not safe when two processes compile signatures
of the same kernel at once: each picks the next free cache data file from an index it
read before the other wrote, and a process can later load another signature's machine
code (wrong results or a crash; numba issue 10128).  The nodes of a launch file warm
their kernels up at the same moment on a fresh install, so every warm-up runs under an
exclusive file lock per kernel family (audio, vision, fusion): the first process
compiles and writes the cache, the next ones load it, and a node that compiles one family
does not hold up a node that needs another.
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

__all__ = ["LOCK_DIR", "lock_path", "serialized_compilation"]

LOCK_DIR = tempfile.gettempdir()


def lock_path(family: str) -> str:
    """The lock file of a kernel family (one per user and machine)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(LOCK_DIR, f"av_perception-numba-{uid}-{family}.lock")

_thread_lock = threading.RLock()
_held: dict = {}  # lock file -> depth, in this process


@contextlib.contextmanager
def serialized_compilation(family: str = "kernels", path: str | None = None):
    """Hold the machine-wide compile lock of a kernel family (re-entrant within a
    process).

    Where the lock file cannot be created (a read-only temporary directory) the body runs
    without it: compiling is still correct in a process that is alone.
    """
    path = path or lock_path(family)
    with _thread_lock:
        if _held.get(path) or fcntl is None:
            _held[path] = _held.get(path, 0) + 1
            try:
                yield
            finally:
                _held[path] -= 1
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            _held[path] = 1
            yield
        finally:
            _held[path] = 0
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
