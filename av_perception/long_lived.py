"""Cheaper garbage collection in the offline commands: the long-lived objects out of the
cyclic collector's full passes (:func:`long_lived_frozen`)."""
from __future__ import annotations

import contextlib
import gc

__all__ = ["long_lived_frozen"]


@contextlib.contextmanager
def long_lived_frozen(keep: bool = False):
    """Within: the objects alive on entry (imported modules, numba's dispatchers, models,
    the audio features) are out of the cyclic garbage collector's generations
    (``gc.freeze``), so that its full collections walk only what is made later (they
    walked every module's objects again and again).  Results do not change: only when
    cyclic garbage is collected.

    The outermost one gives them back on exit (``gc.unfreeze``: nothing stays out of
    collection after it), unless ``keep`` (the command line run as the program: the
    interpreter's collections at exit then skip them too); an inner one (a run freezing
    its pipelines inside the command's freeze) adds to the freeze and leaves the giving
    back to the outer.
    """
    outermost = not gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if outermost and not keep:
            gc.unfreeze()
