"""rosbag2 reading (sqlite3 or mcap) through the rosbags library, with clear errors.

Message types come from the definitions stored in the bag; types a bag does not
define fall back to ROS 2 Jazzy plus the audio_common definitions of
:mod:`av_perception.io.msgdefs`.  Corrupt or truncated bags raise
:class:`BagError` naming the problem; iteration stops cleanly at a truncated
end so that everything read before it is kept.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .msgdefs import make_typestore

__all__ = ["BagError", "BagMessage", "BagReader", "choose_topic", "check_time_window"]


class BagError(RuntimeError):
    """A bag cannot be opened or read, or lacks the topics asked for."""


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    log_time: int  # ns, when the message was recorded
    msg: object


class BagReader:
    """Read a rosbag2 directory (or a single .db3/.mcap file) in time order.

    Use as a context manager::

        with BagReader(path) as bag:
            for m in bag.messages(["/audio"]):
                ...
    """

    def __init__(self, path, audio_flavour: str = "audio_common_4"):
        from rosbags.highlevel import AnyReader

        self.path = Path(path)
        self._flavour = audio_flavour
        self.truncated = False
        self.recovered = False  # read by the tolerant reader (damaged bag)
        self.errors: list[str] = []
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        bag_dir = self.path if self.path.is_dir() else self.path.parent
        if not (bag_dir / "metadata.yaml").exists():
            from .bag_recovery import storage_files

            target = self.path if self.path.is_file() else bag_dir
            if self.path.suffix not in (".mcap", ".db3") and not storage_files(target):
                raise BagError(
                    f"{self.path} is not a rosbag2 (no metadata.yaml in {bag_dir}); give the "
                    "bag directory written by 'ros2 bag record'")
            # a recording stopped by a crash has no metadata.yaml: read the storage directly
            self._recover(target, audio_flavour, f"no metadata.yaml in {bag_dir}")
            return
        try:
            self._reader = AnyReader([bag_dir], default_typestore=make_typestore(audio_flavour))
            self._reader.open()
        except Exception as exc:  # rosbags raises several types for broken bags
            self._recover(bag_dir, audio_flavour, str(exc))

    def _recover(self, target: Path, audio_flavour: str, reason: str,
                 failed: str = "could not be opened normally") -> None:
        """Open a bag the storage library refuses with the tolerant sequential reader."""
        from .bag_recovery import DamagedBagError, open_damaged

        try:
            self._reader = open_damaged(target, make_typestore(audio_flavour))
        except (DamagedBagError, OSError) as exc:
            raise BagError(f"cannot open bag {target}: {reason}; reading it record by record "
                           f"found nothing either ({exc})") from exc
        r = self._reader
        self.recovered = True
        self.truncated = bool(r.notes)
        span = (f"{r.message_count} messages from {r.start_time * 1e-9:.3f} to "
                f"{r.end_time * 1e-9:.3f} s")
        if r.notes:
            what = f"read what could be read: {span} ({'; '.join(r.notes)})"
        else:
            what = f"its records were located and read directly: {span}"
        self.errors.append(
            f"bag {target} {failed} ({reason}); {what}.  To repair the "
            f"bag for other tools: 'ros2 bag reindex {target}' (rebuilds metadata.yaml; a "
            "cut .mcap can also be rewritten by 'mcap recover')")

    def _recover_rest(self, exc) -> bool:
        """The storage library failed part-way: reopen with the tolerant reader (True when
        it could)."""
        target = self.path if self.path.is_dir() else self.path.parent
        try:
            self._reader.close()
        except Exception:  # noqa: BLE001 - closing a broken bag may fail too
            pass
        try:
            self._recover(target, self._flavour, f"{type(exc).__name__}: {exc}",
                          failed="could not be read to its end normally")
        except BagError:
            return False
        self.truncated = True
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self._reader.close()
        except Exception:  # noqa: BLE001 - closing a broken bag may fail too
            pass

    @property
    def topics(self) -> dict[str, str]:
        """{topic: message type} of every connection in the bag."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def start_time(self) -> int:
        return self._reader.start_time

    @property
    def end_time(self) -> int:
        return self._reader.end_time

    def describe_topics(self) -> str:
        return ", ".join(f"{t} [{m}]" for t, m in sorted(self.topics.items())) or "no topics"

    def messages(self, topics: Iterable[str] | None = None, start: int | None = None,
                 stop: int | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all when None) in recording order.

        Unknown topics raise BagError listing the bag's topics.  A message that
        cannot be deserialised is skipped and recorded in :attr:`errors`; when the
        storage library fails part-way (a damaged page or chunk), the rest is read by the
        tolerant reader (:mod:`~av_perception.io.bag_recovery`) after the last message
        given, and :attr:`truncated` is set.
        """
        conns = list(self._reader.connections)
        if topics is not None:
            topics = list(topics)
            missing = [t for t in topics if t not in self.topics]
            if missing:
                raise BagError(
                    f"topic(s) {', '.join(missing)} not in bag {self.path}; the bag has: "
                    f"{self.describe_topics()}")
            conns = [c for c in conns if c.topic in topics]
        it = self._reader.messages(connections=conns, start=start, stop=stop)
        cdr = getattr(self._reader, "is2", True)  # ROS 2 (CDR); rosbags reads ROS 1 too
        last_t, at_last, skip = None, {}, {}
        while True:
            try:
                conn, t_ns, raw = next(it)
            except StopIteration:
                unreadable = getattr(self._reader, "unreadable", 0)
                if unreadable:
                    self.truncated = True
                    self.errors.append(f"{unreadable} message(s) of bag {self.path} are in "
                                       "damaged pages and could not be read; skipped")
                return
            except Exception as exc:  # corrupt page / truncated file
                self.truncated = True
                if self.recovered or not self._recover_rest(exc):
                    self.errors.append(f"bag storage error, reading stopped: {exc}")
                    return
                # go on with the tolerant reader after what was read
                wanted = {c.topic for c in conns}
                conns = [c for c in self._reader.connections if c.topic in wanted]
                lo = start if last_t is None else max(last_t, start or last_t)
                it = self._reader.messages(connections=conns, start=lo, stop=stop)
                skip = dict(at_last)  # topic -> messages already given at last_t
                continue
            if last_t is not None and t_ns <= last_t and skip:
                if t_ns < last_t or skip.get(conn.topic, 0) > 0:
                    if t_ns == last_t:
                        skip[conn.topic] -= 1
                    continue
            if t_ns != last_t:
                last_t, at_last = t_ns, {}
            at_last[conn.topic] = at_last.get(conn.topic, 0) + 1
            if cdr and isinstance(raw, bytes):
                # a view: rosbags' CDR reader would copy the payload (raw[4:]) otherwise,
                # ~1 MB per image; the message's arrays then view the storage's bytes
                raw = memoryview(raw)
            try:
                msg = self._reader.deserialize(raw, conn.msgtype)
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the run
                self.errors.append(f"cannot decode a {conn.msgtype} message on {conn.topic}: {exc}")
                continue
            yield BagMessage(conn.topic, conn.msgtype, t_ns, msg)


def choose_topic(topics: dict[str, str], msgtypes: Iterable[str], wanted: str | None = None,
                 preferred: Iterable[str] = (), what: str = "input") -> str:
    """Pick the topic to read: ``wanted`` if given, else the only topic of an accepted
    type (or the preferred name among several).  Errors list the bag's topics."""
    msgtypes = tuple(msgtypes)
    listing = ", ".join(f"{t} [{m}]" for t, m in sorted(topics.items())) or "no topics"
    if wanted:
        if wanted not in topics:
            raise BagError(f"{what} topic {wanted} is not in the bag; the bag has: {listing}")
        if topics[wanted] not in msgtypes:
            raise BagError(
                f"{what} topic {wanted} has type {topics[wanted]}, expected one of "
                f"{', '.join(msgtypes)}")
        return wanted
    candidates = [t for t, m in topics.items() if m in msgtypes]
    if len(candidates) == 1:
        return candidates[0]
    for name in preferred:
        if name in candidates:
            return name
    if not candidates:
        raise BagError(
            f"no {what} topic in the bag (accepted types: {', '.join(msgtypes)}); the bag has: "
            f"{listing}")
    raise BagError(
        f"several {what} topics in the bag ({', '.join(sorted(candidates))}): choose one "
        "with the topic option")


def check_time_window(reader: BagReader, start: float | None, duration: float | None) -> None:
    """Refuse a ``--start`` / ``--duration`` that selects nothing of the bag, saying the
    bag's time range (a run would otherwise just report 0 frames)."""
    t0, t1 = reader.start_time * 1e-9, reader.end_time * 1e-9
    length = t1 - t0
    where = f"the bag {reader.path} holds {length:.3f} s (stamps {t0:.3f} to {t1:.3f})"
    if start is not None and start < 0:
        raise BagError(f"--start {start:g} s is negative: it counts seconds from the bag's "
                       f"start; {where}")
    if start is not None and start > length:
        raise BagError(f"--start {start:g} s is past the end: {where}; give a --start "
                       f"between 0 and {length:.3f}")
    if duration is not None and duration <= 0:
        raise BagError(f"--duration {duration:g} s selects nothing: give a positive duration; "
                       f"{where}")
