"""The time-ordered input buffer of the fusion and tracking stages.

Audio frames, visual frames and events arrive on separate streams with different
latencies.  :class:`TimeOrderedBuffer` validates each message as it arrives (an
unusable one is refused with :class:`InputError` naming its input and never enters
the buffer), keeps them in stamp order, releases them up to a time and bounds what
it holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["AUDIO", "VISUAL", "EVENTS", "InputError", "Released", "TimeOrderedBuffer",
           "check_audio", "MAX_VISUAL_POINTS", "check_point_count",
           "MAX_POSITION", "MAX_ITD"]

AUDIO, VISUAL, EVENTS = "audio", "visual", "events"
KINDS = (AUDIO, VISUAL, EVENTS)
#: most points one visual frame (or one fusion window's events) may hold: a camera sees a
#: few heads, and the clustering and the tracker's births cost the square of the points
MAX_VISUAL_POINTS = 256
#: positions (m) and ITDs (s) beyond these are broken input (no camera sees 10 km away, no
#: head has a 10 ms ITD); weights (activity x reliability, visual confidence) are <= 1
MAX_POSITION = 1e4
MAX_ITD = 0.01
#: stamps beyond this many seconds (from 0, either way) are outside ROS time (int32
#: seconds): broken input, such as a huge float32 t_offset
MAX_STAMP = 2.0 ** 32


class InputError(ValueError):
    """An input message is unusable (non-finite stamp, mismatched sizes)."""


def check_audio(stamps, itds, weights):
    """(stamps, itds, weights) as float arrays sorted by stamp; raises InputError for
    mismatched sizes or non-finite stamps."""
    t = np.asarray(stamps, dtype=np.float64).reshape(-1)
    tau = np.asarray(itds, dtype=np.float64).reshape(-1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if not len(t) == len(tau) == len(w):
        raise InputError(f"audio frames: {len(t)} stamps, {len(tau)} ITDs and {len(w)} "
                         "weights (must be equal)")
    bad = ~np.isfinite(t)
    if bad.any():
        raise InputError(
            f"audio frames with non-finite stamps ({int(bad.sum())} of {len(t)}, e.g. "
            f"{t[bad][0]}): the audio input's header stamp or t_offset is broken; "
            "the message was dropped, later valid messages are used")
    far = np.abs(t) > MAX_STAMP
    if far.any():
        raise InputError(
            f"audio frames with stamps outside ROS time ({int(far.sum())} of {len(t)}, e.g. "
            f"{t[far][0]:.6g} s): the audio input's header stamp or t_offset is broken; "
            "the message was dropped, later valid messages are used")
    order = np.argsort(t, kind="stable")
    return t[order], tau[order], w[order]


def check_stamp(stamp, what: str) -> float:
    """``stamp`` as a float; raises InputError naming ``what`` when it is not finite."""
    try:
        s = float(stamp)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} with an unusable stamp {stamp!r}") from exc
    if not math.isfinite(s):
        raise InputError(f"{what} with a non-finite stamp {s}: the message was dropped, "
                         "later valid messages are used")
    if abs(s) > MAX_STAMP:
        raise InputError(f"{what} with a stamp outside ROS time ({s:.6g} s): the message was "
                         "dropped, later valid messages are used")
    return s


def check_point_count(n: int, what: str) -> None:
    """InputError naming ``what`` when one frame holds more than MAX_VISUAL_POINTS."""
    if n > MAX_VISUAL_POINTS:
        raise InputError(
            f"{what} with {n} points, more than the {MAX_VISUAL_POINTS} one frame may hold "
            "(a camera sees a few heads): the input is broken; the message was dropped, later "
            "valid messages are used")


def _rows(arrays, sel):
    """Rows ``sel`` of a buffered message's (stamps, ITDs, weights, profile or None,
    activity or None)."""
    return tuple(None if a is None else a[sel] for a in arrays)


@dataclass
class Released:
    """What :meth:`TimeOrderedBuffer.release` hands on, each in stamp order."""

    audio: tuple = field(default_factory=lambda: (np.zeros(0), np.zeros(0), np.zeros(0)))
    #: (n, N) ITD profiles of the released audio frames, or None (not every message had one
    #: of one size)
    audio_profile: np.ndarray | None = None
    #: (n,) activity of the released audio frames, or None (not every message had it)
    audio_activity: np.ndarray | None = None
    visual: list = field(default_factory=list)  # (stamp, item)
    events: list = field(default_factory=list)  # (stamp, item)


class TimeOrderedBuffer:
    """Stamped audio frames, visual frames and events kept in stamp order.

    Audio comes in messages of frames ``(stamps, itds, weights)``; visual frames and
    events are one stamped item each.  ``head[kind]`` is the newest stamp received of
    each kind (None before the first).  Limits: at most ``max_messages`` messages
    (the oldest dropped first, whatever their kind) and, per kind, nothing whose newest
    stamp is more than ``max_age`` s older than that kind's head.  Drops are counted in
    ``dropped[kind]`` (messages) and ``dropped_audio_frames``.
    """

    def __init__(self, max_messages: int | None = None, max_age: float | None = None):
        self.max_messages = max_messages
        self.max_age = max_age
        self.dropped = dict.fromkeys(KINDS, 0)
        self.dropped_audio_frames = 0
        self.clear()

    def clear(self) -> None:
        """Forget everything buffered and the heads (the drop counters are kept)."""
        self._items: dict = {k: [] for k in KINDS}  # (first stamp, last stamp, payload)
        self.head: dict = dict.fromkeys(KINDS)
        self.audio_frames = 0

    def forget(self, kind: str) -> None:
        """Forget the buffered items and the head of one kind (a jump back of its time)."""
        if kind == AUDIO:
            self.audio_frames = 0
        self._items[kind] = []
        self.head[kind] = None

    @property
    def messages(self) -> int:
        return sum(len(v) for v in self._items.values())

    def __len__(self) -> int:
        return self.messages

    def _head(self, kind: str, stamp: float) -> None:
        h = self.head[kind]
        self.head[kind] = stamp if h is None else max(h, stamp)

    def add_audio(self, stamps, itds, weights, keep=None, profile=None,
                  activity=None) -> int:
        """Buffer one message of audio frames; ``keep`` (bool mask in the order given)
        leaves frames out of the buffer while their stamps still advance the head;
        ``profile`` (n, N): the frames' ITD profiles, ``activity`` (n,): their activity
        (both optional).
        Returns the number buffered; raises InputError (nothing buffered) for an
        unusable message."""
        t = np.asarray(stamps, dtype=np.float64).reshape(-1)
        if keep is not None:
            keep = np.asarray(keep, dtype=bool).reshape(-1)
            if len(keep) != len(t):
                raise InputError(f"audio frames: {len(t)} stamps but a mask of {len(keep)}")
        order = np.argsort(t, kind="stable") if len(t) else np.zeros(0, int)
        if profile is not None:
            profile = np.asarray(profile, dtype=np.float64)
            if profile.ndim != 2 or len(profile) != len(t):
                raise InputError(f"audio frames: {len(t)} stamps but an ITD profile of shape "
                                 f"{profile.shape} (must be ({len(t)}, N))")
            profile = profile[order]
        if activity is not None:
            activity = np.asarray(activity, dtype=np.float64).reshape(-1)
            if len(activity) != len(t):
                raise InputError(f"audio frames: {len(t)} stamps but {len(activity)} "
                                 "activity values")
            activity = np.clip(np.nan_to_num(activity[order], nan=0.0), 0.0, None)
        t, tau, w = check_audio(t, itds, weights)
        if len(t) == 0:
            return 0
        self._head(AUDIO, float(t[-1]))
        if keep is not None:
            k = keep[order]
            t, tau, w = t[k], tau[k], w[k]
            profile = None if profile is None else profile[k]
            activity = None if activity is None else activity[k]
        if len(t):
            self._items[AUDIO].append((float(t[0]), float(t[-1]),
                                       (t, tau, w, profile, activity)))
            self.audio_frames += len(t)
        self._limit()
        return len(t)

    def add_visual(self, stamp, item) -> float:
        """Buffer one visual frame; returns its stamp (InputError when not finite)."""
        return self._add(VISUAL, check_stamp(stamp, "visual observations"), item)

    def add_events(self, stamp, item) -> float:
        """Buffer the events of one window; returns its stamp (InputError when not
        finite)."""
        return self._add(EVENTS, check_stamp(stamp, "audio-visual events"), item)

    def _add(self, kind: str, stamp: float, item) -> float:
        self._head(kind, stamp)
        self._items[kind].append((stamp, stamp, item))
        self._limit()
        return stamp

    def _drop(self, kind: str, index: int) -> None:
        entry = self._items[kind].pop(index)
        self.dropped[kind] += 1
        if kind == AUDIO:
            self.audio_frames -= len(entry[2][0])
            self.dropped_audio_frames += len(entry[2][0])

    def _limit(self) -> None:
        if self.max_age is not None:
            for kind in KINDS:
                items = self._items[kind]
                if not items:
                    continue
                horizon = self.head[kind] - self.max_age
                k = 0
                while k < len(items):
                    if items[k][1] < horizon:
                        self._drop(kind, k)
                    else:
                        k += 1
        if self.max_messages is not None:
            while self.messages > self.max_messages:
                kind = min((k for k in KINDS if self._items[k]),
                           key=lambda k: self._items[k][0][0])
                self._drop(kind, 0)

    def drop_audio_after(self, limit: float) -> int:
        """Drop the buffered audio frames stamped after ``limit`` (the old timeline after a
        clock jump back; counted in ``dropped_audio_frames``) and lower the audio head to
        the newest frame kept; returns the number dropped."""
        keep, n = [], 0
        for first, last, arrays in self._items[AUDIO]:
            t = arrays[0]
            k = t <= limit
            n += int((~k).sum())
            if k.all():
                keep.append((first, last, arrays))
            elif k.any():
                keep.append((float(t[k][0]), float(t[k][-1]), _rows(arrays, k)))
        self._items[AUDIO] = keep
        self.audio_frames -= n
        self.dropped_audio_frames += n
        self.head[AUDIO] = max((e[1] for e in keep), default=None)
        return n

    def release(self, until: float = math.inf, kinds=KINDS) -> Released:
        """Remove and return everything of ``kinds`` stamped up to ``until``, each kind in
        stamp order (arrival order among equal stamps)."""
        out = Released()
        if AUDIO in kinds:
            take, keep = [], []
            for _first, last, arrays in self._items[AUDIO]:
                t = arrays[0]
                n = int(np.searchsorted(t, until, side="right"))
                if n:
                    take.append(_rows(arrays, slice(0, n)))
                if n < len(t):
                    keep.append((float(t[n]), last, _rows(arrays, slice(n, None))))
            self._items[AUDIO] = keep
            if take:
                at, ax, aw = (np.concatenate([x[i] for x in take]) for i in range(3))
                order = np.argsort(at, kind="stable")
                out.audio = (at[order], ax[order], aw[order])
                profiles = [x[3] for x in take]
                if all(p is not None and p.shape[1] == profiles[0].shape[1]
                       for p in profiles):
                    out.audio_profile = np.concatenate(profiles)[order]
                activities = [x[4] for x in take]
                if all(a is not None for a in activities):
                    out.audio_activity = np.concatenate(activities)[order]
                self.audio_frames -= len(at)
        for kind in (VISUAL, EVENTS):
            if kind not in kinds:
                continue
            items = self._items[kind]
            ready = sorted((e for e in items if e[0] <= until), key=lambda e: e[0])
            self._items[kind] = [e for e in items if e[0] > until]
            setattr(out, kind, [(e[0], e[2]) for e in ready])
        return out
