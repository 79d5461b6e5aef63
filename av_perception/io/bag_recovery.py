"""Reading what can be read of a damaged rosbag2 (sqlite3 or mcap).

:func:`open_damaged` reads a bag cut short or damaged inside (a crash, a power loss, a bad
sector) record by record around the damage and returns a :class:`RecoveredBag` with the
part of rosbags' AnyReader interface that :class:`~av_perception.io.bag.BagReader` uses
(``connections``, ``start_time``, ``end_time``, ``messages()``, ``deserialize()``,
``close()``).  BagReader turns to it only when the rosbags library cannot open or read
the bag.  How each storage is read: docs/commands.md, "Damaged bags".
"""
from __future__ import annotations

import heapq
import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .sqlite_pages import SqlitePages

__all__ = ["DamagedBagError", "RecoveredBag", "open_damaged", "storage_files"]

_MCAP_MAGIC = b"\x89MCAP0\r\n"
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_MSG_HEAD = struct.Struct("<HIQQ")  # channel, sequence, log_time, publish_time


class DamagedBagError(RuntimeError):
    """Nothing could be recovered."""


@dataclass
class RecoveredConnection:
    id: int
    topic: str
    msgtype: str
    msgdef: str = ""
    msgdef_format: str = ""  # "ros2msg", "ros2idl" or "" (none stored)
    file: int = 0  # index of the storage file


@dataclass
class _FileIndex:
    """What one storage file holds, as far as it can be read."""

    path: Path
    kind: str  # "mcap" or "sqlite3"
    connections: dict = field(default_factory=dict)  # storage id -> RecoveredConnection
    count: int = 0
    start: int = 2 ** 63 - 1
    end: int = 0
    complete: bool = True
    lost: str = ""  # what could not be read
    # mcap: (offset, record end, partial) of each chunk, or (offset, None, False) of a message
    # sqlite3: sorted (timestamp, rowid, topic_id)
    items: list = field(default_factory=list)
    unreadable: int = 0  # sqlite3 rows located but not readable


def storage_files(path) -> list[Path]:
    """The storage files of a bag directory (or the file itself)."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))


# ------------------------------------------------------------------------------ mcap
def _string(buf, pos):
    n = _U32.unpack_from(buf, pos)[0]
    end = pos + 4 + n
    if end > len(buf):
        raise struct.error("string past the end")
    return bytes(buf[pos + 4:end]).decode(errors="replace"), end


def _decompress_partial(data: bytes, compression: str) -> bytes:
    """As much of a (possibly cut) compressed chunk as decompresses."""
    if compression == "":
        return data
    try:
        if compression == "zstd":
            import sys

            if sys.version_info >= (3, 14):
                from compression import zstd
            else:
                from backports import zstd
            return zstd.ZstdDecompressor().decompress(data)
        if compression == "lz4":
            import lz4.frame

            return lz4.frame.LZ4FrameDecompressor().decompress(data)
    except Exception:  # noqa: BLE001 - the cut chunk may not decompress at all
        return b""
    return b""


class _McapScan:
    """Sequential decoding of the records of an mcap file up to its first damage."""

    def __init__(self, index: _FileIndex, data: memoryview):
        self.index = index
        self.data = data
        self.schemas: dict = {}
        self.damaged_chunks: list = []  # offsets of chunks whose records are damaged

    def _schema(self, rec):
        sid = _U16.unpack_from(rec, 0)[0]
        name, p = _string(rec, 2)
        enc, p = _string(rec, p)
        n = _U32.unpack_from(rec, p)[0]
        text = bytes(rec[p + 4:p + 4 + n]).decode(errors="replace")
        self.schemas[sid] = (name, enc, text)

    def _channel(self, rec):
        cid, sid = struct.unpack_from("<HH", rec, 0)
        topic, p = _string(rec, 4)
        name, enc, text = self.schemas.get(sid, ("", "", ""))
        if cid not in self.index.connections and name:
            self.index.connections[cid] = RecoveredConnection(cid, topic, name, text, enc)

    def records(self, buf, pos: int, end: int, messages: list | None, bounds=None):
        """Decode the records of buf[pos:end]; returns (position reached, complete).

        With ``bounds`` (a chunk's first and last message time, ns), decoding goes on
        after a damaged record at the next place where a plausible message record
        starts (:meth:`_resync`), and ``complete`` is False when it had to."""
        whole = True
        while pos < end:
            ok = pos + 9 <= end
            if ok:
                op = buf[pos]
                size = _U64.unpack_from(buf, pos + 1)[0]
                body = pos + 9
                ok = body + size <= end
            if ok:
                rec = buf[body:body + size]
                try:
                    if op == 0x03:
                        self._schema(rec)
                    elif op == 0x04:
                        self._channel(rec)
                    elif op == 0x05:
                        cid, _, t, _ = _MSG_HEAD.unpack_from(rec, 0)
                        if bounds is not None and not bounds[0] <= t <= bounds[1]:
                            raise struct.error("message time outside its chunk")
                        if messages is None:
                            self._count(t)
                        elif cid in self.index.connections:
                            messages.append((t, len(messages), cid, bytes(rec[22:])))
                except struct.error:
                    ok = False
            if not ok:
                if bounds is None:
                    return pos, False
                whole = False
                pos = self._resync(buf, pos + 1, end, bounds)
                continue
            pos = body + size
        return pos, whole

    def _resync(self, buf, pos: int, end: int, bounds) -> int:
        """The next position in buf[pos:end] where a message record of a known channel,
        timed inside ``bounds``, starts and is followed by another record or the end
        (``end`` when there is none)."""
        raw = bytes(buf[pos:end])
        k = raw.find(b"\x05")
        while k >= 0:
            p = pos + k
            if p + 9 + 22 <= end:
                size = _U64.unpack_from(buf, p + 1)[0]
                nxt = p + 9 + size
                if 22 <= size and nxt <= end:
                    cid, _, t, _ = _MSG_HEAD.unpack_from(buf, p + 9)
                    if (cid in self.index.connections and bounds[0] <= t <= bounds[1]
                            and (nxt == end or (nxt + 9 <= end and buf[nxt] in (3, 4, 5)
                                                and nxt + 9 + _U64.unpack_from(buf, nxt + 1)[0]
                                                <= end))):
                        return p
            k = raw.find(b"\x05", k + 1)
        return end

    def _count(self, t):
        ix = self.index
        ix.count += 1
        ix.start = min(ix.start, t)
        ix.end = max(ix.end, t)

    @staticmethod
    def chunk_bounds(rec) -> tuple[int, int]:
        """The first and last message time (ns) a chunk record declares."""
        return struct.unpack_from("<QQ", rec, 0)

    def chunk_records(self, rec, partial: bool) -> bytes:
        """The uncompressed records of a chunk record (of a cut one: what is there)."""
        _, _, usize, _ = struct.unpack_from("<QQQI", rec, 0)
        compression, p = _string(rec, 28)
        csize = _U64.unpack_from(rec, p)[0]
        payload = rec[p + 8:p + 8 + csize]
        if compression == "":
            return payload  # a view: no copy
        out = _decompress_partial(bytes(payload), compression)
        if not partial and len(out) != usize:
            raise struct.error("chunk does not decompress to its size")
        return memoryview(out)

    def scan(self):
        """Index the file: connections, counts, times and where the chunks are."""
        buf, ix = self.data, self.index
        end = len(buf)
        pos = len(_MCAP_MAGIC)
        stop = ""  # why decoding stopped before the data end
        while pos < end:
            if pos + 9 > end:
                stop = "cut"
                break
            op = buf[pos]
            size = _U64.unpack_from(buf, pos + 1)[0]
            body = pos + 9
            if op in (0x02, 0x0F):  # footer, data end: the summary follows
                break
            if op == 0x06:
                partial = body + size > end
                rec = buf[body:min(body + size, end)]
                try:
                    records = self.chunk_records(rec, partial)
                except struct.error:
                    stop = "cut" if partial else "damaged"
                    break
                _, whole = self.records(records, 0, len(records), None,
                                        self.chunk_bounds(rec))
                ix.items.append((pos, min(body + size, end), partial))
                if partial:
                    stop = "cut"
                    break
                if not whole:  # damaged inside, but its length is known: go on after it
                    self.damaged_chunks.append(pos)
            elif body + size > end:
                stop = "cut"
                break
            else:
                before = ix.count
                self.records(buf, pos, body + size, None)
                if op == 0x05 and ix.count > before:
                    ix.items.append((pos, body + size, False))
            pos = body + size
        notes = []
        if self.damaged_chunks:
            notes.append(f"{len(self.damaged_chunks)} chunk(s) of {ix.path.name} are damaged "
                         f"(at byte {', '.join(map(str, self.damaged_chunks))}): their records "
                         "were read around the damage (the damaged ones are lost), and the "
                         "later chunks too")
        if stop == "cut":
            notes.append(f"{ix.path.name} is cut short at byte {end} (its summary and footer "
                         "are missing): the records were decoded up to the cut, what followed "
                         "is lost")
        elif stop == "damaged":
            notes.append(f"{ix.path.name} is damaged at byte {pos} (a chunk header that does "
                         "not decode): the records were decoded up to there, the rest is lost")
        ix.complete = not notes
        ix.lost = "; ".join(notes)

    def messages(self):
        """(t, seq, channel id, raw) of the whole file, sorted within each chunk."""
        buf = self.data
        for pos, rec_end, partial in self.index.items:
            op = buf[pos]
            msgs: list = []
            if op == 0x06:
                rec = buf[pos + 9:rec_end]
                try:
                    records = self.chunk_records(rec, partial)
                except struct.error:
                    continue
                self.records(records, 0, len(records), msgs, self.chunk_bounds(rec))
            else:
                self.records(buf, pos, rec_end, msgs)
            msgs.sort(key=lambda m: (m[0], m[1]))
            yield from msgs


def _index_mcap(path: Path, file_no: int) -> tuple[_FileIndex, _McapScan]:
    import mmap

    ix = _FileIndex(path, "mcap")
    with open(path, "rb") as fh:
        if fh.seek(0, 2) == 0:
            raise DamagedBagError(f"{path} is empty")
        data = memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
    if bytes(data[:len(_MCAP_MAGIC)]) != _MCAP_MAGIC:
        raise DamagedBagError(f"{path} does not start with the mcap magic: not an mcap file "
                              "(or damaged at its start)")
    scan = _McapScan(ix, data)
    scan.scan()
    for c in ix.connections.values():
        c.file = file_no
    return ix, scan


# --------------------------------------------------------------------------- sqlite3
def _connect(path: Path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    # a file shorter than its header says is "malformed" unless the schema is writable
    con.execute("PRAGMA writable_schema=ON")
    return con


def _index_sqlite(path: Path, file_no: int) -> tuple[_FileIndex, _SqliteSource]:
    ix = _FileIndex(path, "sqlite3")
    try:
        con = _connect(path)
        topics = con.execute("SELECT id, name, type FROM topics").fetchall()
    except sqlite3.Error as exc:
        raise DamagedBagError(f"{path}: even its topic table cannot be read ({exc})") from exc
    defs = {}
    try:
        for typ, enc, text in con.execute(
                "SELECT topic_type, encoding, encoded_message_definition "
                "FROM message_definitions"):
            defs[typ] = (enc, text)
    except sqlite3.Error:
        pass
    for tid, name, typ in topics:
        enc, text = defs.get(typ, ("", ""))
        ix.connections[tid] = RecoveredConnection(tid, name, typ, text, enc, file_no)
    try:
        top = con.execute("SELECT max(id) FROM messages").fetchone()[0]
    except sqlite3.Error:
        top = None
    rows, damaged, step, lo, empty_run = [], 0, 1024, 1, 0
    while True:
        try:
            got = con.execute("SELECT id, topic_id, timestamp FROM messages "
                              "WHERE id >= ? AND id < ?", (lo, lo + step)).fetchall()
        except sqlite3.Error:
            got = []
            damaged += 1
            for rid in range(lo, lo + step):  # row by row through the damaged range
                try:
                    r = con.execute("SELECT id, topic_id, timestamp FROM messages "
                                    "WHERE id = ?", (rid,)).fetchone()
                except sqlite3.Error:
                    continue
                if r is not None:
                    got.append(r)
        rows.extend(got)
        lo += step
        empty_run = 0 if got else empty_run + 1
        if top is not None and lo > top:
            break
        if top is None and empty_run >= 8:
            break
    # rows below a damaged interior page are unreachable through the table: read the
    # leaf pages themselves (their data is read from the page when SQLite cannot)
    found = {rid for rid, _, _ in rows}
    pages = extra = None
    try:
        pages = SqlitePages(path)
        leaves = pages.scan_leaf_rows(("null", "int", "int", "blob"))
    except (OSError, ValueError):
        leaves = []
    for leaf in leaves:
        tid, t = leaf.ints
        if leaf.rowid not in found and tid in ix.connections:
            found.add(leaf.rowid)
            rows.append((leaf.rowid, tid, t))
            extra = extra or {}
            extra[leaf.rowid] = leaf
    ix.items = sorted((t, rid, tid) for rid, tid, t in rows)
    for t, _, _ in ix.items:
        ix.count += 1
        ix.start = min(ix.start, t)
        ix.end = max(ix.end, t)
    missing = (max(found) - len(found)) if found else 0  # rosbag2 numbers rows 1, 2, ...
    if damaged or top is None or extra or missing > 0:
        ix.complete = False
        ix.lost = (f"{path.name} is damaged (pages missing or unreachable): the rows that "
                   f"could be located were read"
                   + (f", {missing} of the first {max(found)} are lost" if missing > 0 else "")
                   + "; rows in a lost part at the end of the file are lost too")
    return ix, _SqliteSource(con, pages, extra or {})


class _SqliteSource:
    """Reads a row's data through SQLite, or from its leaf page when SQLite cannot reach
    it."""

    def __init__(self, con, pages, leaves: dict):
        self.con = con
        self.pages = pages
        self.leaves = leaves  # rowid -> LeafRow of the rows found only in the pages

    def data(self, rid: int) -> bytes | None:
        leaf = self.leaves.get(rid)
        if leaf is not None:
            return self.pages.read_blob(leaf)
        row = self.con.execute("SELECT data FROM messages WHERE id = ?", (rid,)).fetchone()
        return None if row is None else bytes(row[0])

    def close(self):
        self.con.close()
        if self.pages is not None:
            self.pages.close()


# ------------------------------------------------------------------------------ bag
class RecoveredBag:
    """A damaged bag read as far as it goes (see the module docstring)."""

    def __init__(self, path, files: list[Path], default_typestore):
        from rosbags.typesys import (
            Stores,
            get_types_from_idl,
            get_types_from_msg,
            get_typestore,
        )

        self.path = Path(path)
        self._files = []  # (_FileIndex, reader)
        problems = []
        for k, f in enumerate(files):
            try:
                if f.suffix == ".mcap":
                    self._files.append(_index_mcap(f, k))
                else:
                    self._files.append(_index_sqlite(f, k))
            except (DamagedBagError, OSError) as exc:
                problems.append(str(exc))
        if not self._files or not any(ix.count for ix, _ in self._files):
            raise DamagedBagError("; ".join(problems) or "no message could be read")
        self.connections: list[RecoveredConnection] = []
        self._conn_of = {}  # (file, storage id) -> shared connection per (topic, type)
        by_topic = {}
        for ix, _ in self._files:
            for sid, c in ix.connections.items():
                shared = by_topic.setdefault((c.topic, c.msgtype), c)
                if shared is c:
                    self.connections.append(c)
                self._conn_of[(c.file, sid)] = shared
        typs = dict(default_typestore.fielddefs)
        for c in self.connections:
            try:
                if c.msgdef_format == "ros2msg" and c.msgdef:
                    typs.update(get_types_from_msg(c.msgdef, c.msgtype))
                elif c.msgdef_format == "ros2idl" and c.msgdef:
                    typs.update(get_types_from_idl(c.msgdef))
            except Exception:  # noqa: BLE001 - an unparsable definition: the default's
                pass
        self.typestore = get_typestore(Stores.EMPTY)
        self.typestore.register(typs)
        counted = [ix for ix, _ in self._files if ix.count]
        self.start_time = min(ix.start for ix in counted)
        self.end_time = max(ix.end for ix in counted)
        self.message_count = sum(ix.count for ix, _ in self._files)
        self.notes = [ix.lost for ix, _ in self._files if ix.lost] + problems
        self.unreadable = 0

    def _file_messages(self, k: int, wanted: set, start: int, stop: int):
        ix, reader = self._files[k]
        if ix.kind == "mcap":
            for t, _, cid, raw in reader.messages():
                conn = self._conn_of.get((k, cid))
                if conn is not None and id(conn) in wanted and start <= t < stop:
                    yield t, conn, raw
            return
        for t, rid, tid in ix.items:
            conn = self._conn_of.get((k, tid))
            if conn is None or id(conn) not in wanted or not start <= t < stop:
                continue
            try:
                data = reader.data(rid)
            except sqlite3.Error:
                data = None
            if data is None:
                self.unreadable += 1
                continue
            yield t, conn, data

    def messages(self, connections=None, start: int | None = None, stop: int | None = None):
        """(connection, log time ns, raw CDR) in time order."""
        conns = self.connections if connections is None else connections
        wanted = {id(c) for c in conns}
        lo = -(2 ** 63) if start is None else start
        hi = 2 ** 63 if stop is None else stop
        streams = [self._file_messages(k, wanted, lo, hi) for k in range(len(self._files))]
        for t, conn, raw in heapq.merge(*streams, key=lambda m: m[0]):
            yield conn, t, raw

    def deserialize(self, raw, msgtype: str):
        return self.typestore.deserialize_cdr(raw, msgtype)

    def close(self):
        for ix, reader in self._files:
            if ix.kind == "sqlite3":
                try:
                    reader.close()
                except (sqlite3.Error, OSError, ValueError):
                    pass
        self._files = []


def open_damaged(path, default_typestore) -> RecoveredBag:
    """Read what can be read of a bag the storage library refuses (DamagedBagError when
    nothing can be)."""
    path = Path(path)
    files = storage_files(path)
    if not files:
        raise DamagedBagError(f"no .mcap or .db3 storage file in {path}")
    return RecoveredBag(path, files, default_typestore)
