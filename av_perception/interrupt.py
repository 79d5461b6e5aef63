"""Stopping an offline command cleanly on SIGINT, SIGTERM or SIGHUP.

Python ends a process on SIGTERM and SIGHUP without running ``finally`` blocks, so a
command stopped by ``timeout``, systemd or ``docker stop`` would leave its output bag
without metadata and its CSV files unfinished.  :func:`handle_signals` turns the three
signals into :class:`Interrupted` (a KeyboardInterrupt, so everything that cleans up
after Ctrl-C cleans up after them too); :func:`deferred` marks a critical section -- the
writing of one frame's results -- that a signal does not cut in two: the exception is
raised when the section ends, so the outputs hold whole frames, the same ones in each.
"""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager

__all__ = ["Interrupted", "handle_signals", "deferred", "HANDLED_SIGNALS"]

HANDLED_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                        if hasattr(signal, n))


class Interrupted(KeyboardInterrupt):
    """A command was stopped by a signal; ``kept`` lists what was kept (for the message)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)
        self.kept: list[str] = []

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    critical = 0
    signum: int | None = None  # the first signal received
    raised = False


_state = _State()


def _handler(signum, frame):
    if _state.signum is not None:  # already stopping: let the files be finished
        print(f"\n{signal.Signals(signum).name} again: already stopping, finishing the "
              "output files (SIGKILL aborts at once)", file=sys.stderr)
        return
    _state.signum = signum
    if _state.critical == 0:
        _state.raised = True
        raise Interrupted(signum)


@contextmanager
def deferred():
    """A section that a signal does not interrupt: Interrupted is raised at its end."""
    _state.critical += 1
    try:
        yield
    finally:
        _state.critical -= 1
    if _state.critical == 0 and _state.signum is not None and not _state.raised:
        _state.raised = True
        raise Interrupted(_state.signum)


@contextmanager
def handle_signals():
    """Install the handlers for the duration of the block (main thread only; elsewhere
    a no-op) and restore the previous ones after it."""
    previous = {}
    try:
        for s in HANDLED_SIGNALS:
            previous[s] = signal.signal(s, _handler)
    except ValueError:  # not the main thread
        for s, h in previous.items():
            signal.signal(s, h)
        previous = {}
    _state.critical, _state.signum, _state.raised = 0, None, False
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _state.critical, _state.signum, _state.raised = 0, None, False
