"""Approximate-time pairing of left and right items by stamp within a slop, with bounded
queues, counting the items left without a partner ("sync failures")."""
from __future__ import annotations

import bisect
import itertools
import math
from typing import Any

_SIDES = {"left": 0, "right": 1, 0: 0, 1: 1}
#: an item stamped this many seconds before the newest queued item of its own side means
#: that side's time jumped back (a bag restarted, a clock reset, or items stamped far
#: ahead wait in the queues): what waits can never pair again and is dropped
JUMP_BACK = 2.0


class ApproximateTimeSync:
    """Pairs left and right items whose stamps differ by at most ``slop`` seconds.

    Items wait in one bounded queue per side, sorted by stamp.  Whenever both
    queues hold something, the oldest left and right items are compared:

    * stamps within ``slop``: they form a pair -- unless the next queued item
      of the older side is even closer to the other one, in which case the
      older item is dropped;
    * otherwise the older item can no longer find a partner (each topic
      arrives in stamp order) and is dropped.

    A pair is emitted as soon as it is found (no added latency).  This is the
    nearest-stamp pairing when ``slop`` is below half the frame period, which
    the node checks against the observed input rate.  Dropped items (also the
    oldest of a queue longer than ``queue_size``, e.g. when one camera is
    silent) are counted in :attr:`unpaired` -- the sync failures.  An item
    stamped more than ``JUMP_BACK`` s before the newest queued item of its side
    empties both queues first (counted in :attr:`jumps_back`): otherwise items
    stamped far ahead would wait for ever and make every later item look too old.

    Parameters
    ----------
    slop : float
        Seconds, >= 0.
    queue_size : int
        Items kept per side while waiting for a partner, >= 1.
    """

    def __init__(self, slop: float = 0.02, queue_size: int = 10):
        slop = float(slop)
        if not (math.isfinite(slop) and slop >= 0):
            raise ValueError(f"slop must be a finite number of seconds >= 0, got {slop}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.slop = slop
        self.queue_size = int(queue_size)
        self._queues: tuple[list, list] = ([], [])
        self._seq = itertools.count()
        self.pairs = 0
        self.unpaired = [0, 0]  # left, right
        self.overflows = 0
        self.jumps_back = 0
        #: |stamp difference| (s) of the last pair, and of the nearest other-side item when an
        #: item was dropped (nan when the other queue was empty)
        self.last_pair_offset = float("nan")
        self.last_unpaired_offset = float("nan")

    @property
    def failures(self) -> int:
        """Items dropped without a partner (both sides)."""
        return self.unpaired[0] + self.unpaired[1]

    def queued(self, side) -> int:
        return len(self._queues[self._side(side)])

    @staticmethod
    def _side(side) -> int:
        try:
            return _SIDES[side]
        except (KeyError, TypeError):
            raise ValueError(f"side must be 'left' (0) or 'right' (1), got {side!r}") from None

    def add(self, side, stamp: float, item: Any) -> list[tuple[float, Any, Any]]:
        """Queue ``item`` of ``side`` ('left'/'right' or 0/1) taken at ``stamp`` (s).

        Returns
        -------
        list of (stamp, left_item, right_item)
            The pairs completed by this item (stamp = the left item's), oldest first.
        """
        s = self._side(side)
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp {stamp} is not a finite time in seconds")
        queue = self._queues[s]
        if queue and stamp < queue[-1][0] - JUMP_BACK:
            self.jumps_back += 1
            self.flush()
        bisect.insort(self._queues[s], (stamp, next(self._seq), item),
                      key=lambda e: (e[0], e[1]))
        out = self._match()
        for k in (0, 1):
            while len(self._queues[k]) > self.queue_size:
                self.overflows += 1
                self._drop(k)
        return out

    def _drop(self, k: int) -> None:
        stamp = self._queues[k].pop(0)[0]
        other = self._queues[1 - k]
        self.last_unpaired_offset = (min(abs(e[0] - stamp) for e in other) if other
                                     else float("nan"))
        self.unpaired[k] += 1

    def _match(self) -> list:
        left, right = self._queues
        out = []
        while left and right:
            tl, tr = left[0][0], right[0][0]
            dt = tr - tl
            if abs(dt) <= self.slop:
                if dt > 0 and len(left) > 1 and abs(tr - left[1][0]) < dt:
                    self._drop(0)
                    continue
                if dt < 0 and len(right) > 1 and abs(tl - right[1][0]) < -dt:
                    self._drop(1)
                    continue
                ln, rn = left.pop(0), right.pop(0)
                self.pairs += 1
                self.last_pair_offset = abs(dt)
                out.append((tl, ln[2], rn[2]))
            elif dt > 0:
                self._drop(0)
            else:
                self._drop(1)
        return out

    def flush(self) -> int:
        """Drop every queued item (end of input), counting them as unpaired; returns how many."""
        n = 0
        for k in (0, 1):
            while self._queues[k]:
                self._drop(k)
                n += 1
        return n

    def reset(self) -> None:
        """Forget the queued items without counting them (e.g. after a topic change)."""
        self._queues[0].clear()
        self._queues[1].clear()
