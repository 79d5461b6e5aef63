"""The rows of a damaged SQLite file read from its pages, without the b-tree above them.

When an interior page of a table's b-tree is damaged, SQLite cannot reach the leaves
below it, although they are intact.  :func:`scan_leaf_rows` walks every page of the file,
keeps the table leaf pages whose cells decode as records of the wanted shape, and returns
where each row is; :func:`read_row` decodes one row, following its overflow chain.  The
format is SQLite's documented file format (https://www.sqlite.org/fileformat2.html).
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LeafRow", "SqlitePages"]

_HEADER = b"SQLite format 3\x00"
_LEAF_TABLE = 0x0D
_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def _varint(buf, pos: int) -> tuple[int, int]:
    """An SQLite varint at ``pos``: (value, position after it)."""
    value = 0
    for i in range(8):
        b = buf[pos + i]
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, pos + i + 1
    return (value << 8) | buf[pos + 8], pos + 9


@dataclass(frozen=True)
class LeafRow:
    """Where a row is: its rowid, the integer columns asked for, and its cell."""

    rowid: int
    ints: tuple
    page: int
    offset: int  # of the cell in the file


class SqlitePages:
    """The pages of an SQLite file, read-only (memory-mapped)."""

    def __init__(self, path):
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        buf = self._map
        if len(buf) < 100 or buf[:16] != _HEADER:
            raise ValueError(f"{self.path} has no SQLite header")
        size = struct.unpack_from(">H", buf, 16)[0]
        self.page_size = 65536 if size == 1 else size
        self.usable = self.page_size - buf[20]
        self.pages = len(buf) // self.page_size

    def close(self):
        self._map.close()

    def _local_size(self, payload: int) -> int:
        u = self.usable
        x = u - 35
        if payload <= x:
            return payload
        m = ((u - 12) * 32 // 255) - 23
        k = m + (payload - m) % (u - 4)
        return k if k <= x else m

    def _cell(self, start: int, end: int):
        """(rowid, payload size, local payload start, local size) of a table leaf cell."""
        buf = self._map
        size, p = _varint(buf, start)
        rowid, p = _varint(buf, p)
        local = self._local_size(size)
        if p + local + (4 if local < size else 0) > end:
            raise ValueError("cell past its page")
        return rowid, size, p, local

    @staticmethod
    def _serial_types(buf, p: int, limit: int):
        header, q = _varint(buf, p)
        end = p + header
        if header < 2 or end > limit:
            raise ValueError("bad record header")
        types = []
        while q < end:
            t, q = _varint(buf, q)
            types.append(t)
        return types, end

    def scan_leaf_rows(self, shape) -> list[LeafRow]:
        """Rows of every table leaf page whose record matches ``shape``: a sequence of
        'null', 'int' or 'blob' per column; the 'int' columns are returned."""
        buf, out = self._map, []
        for page in range(1, self.pages + 1):
            base = (page - 1) * self.page_size
            head = base + (100 if page == 1 else 0)
            if buf[head] != _LEAF_TABLE:
                continue
            ncells = struct.unpack_from(">H", buf, head + 3)[0]
            end = base + self.page_size
            rows = []
            try:
                for i in range(ncells):
                    off = base + struct.unpack_from(">H", buf, head + 8 + 2 * i)[0]
                    if not head + 8 <= off < end:
                        raise ValueError("cell pointer out of the page")
                    rowid, _, p, local = self._cell(off, end)
                    types, q = self._serial_types(buf, p, p + local)
                    ints = self._match(buf, types, q, shape, p + local)
                    if ints is None:
                        raise ValueError("another table")
                    rows.append(LeafRow(rowid, ints, page, off))
            except (ValueError, IndexError, struct.error):
                continue  # not a page of this table, or damaged: skip it whole
            out.extend(rows)
        return out

    @staticmethod
    def _match(buf, types, q, shape, limit):
        if len(types) != len(shape):
            return None
        ints = []
        for t, want in zip(types, shape):
            if want == "null":
                if t != 0:
                    return None
            elif want == "int":
                if t in _INT_SIZES:
                    n = _INT_SIZES[t]
                    if q + n > limit:
                        return None
                    ints.append(int.from_bytes(buf[q:q + n], "big", signed=True))
                    q += n
                elif t in (8, 9):
                    ints.append(t - 8)
                else:
                    return None
            elif want == "blob":
                if t < 12 or t % 2:
                    return None
            else:
                raise ValueError(f"unknown column kind {want!r}")
        return tuple(ints)

    def read_blob(self, row: LeafRow) -> bytes | None:
        """The last column (a blob) of ``row``, with its overflow pages; None when the
        chain is damaged."""
        buf = self._map
        end = (row.page - 1) * self.page_size + self.page_size
        try:
            _, size, p, local = self._cell(row.offset, end)
            types, q = self._serial_types(buf, p, p + local)
        except (ValueError, IndexError):
            return None
        header = q - p
        skip = sum(_INT_SIZES.get(t, 0) for t in types[:-1])
        n_blob = (types[-1] - 12) // 2
        if header + skip + n_blob != size:
            return None
        payload = bytearray(buf[p:p + local])
        page = struct.unpack_from(">I", buf, p + local)[0] if local < size else 0
        seen = set()
        while len(payload) < size:
            if not 1 <= page <= self.pages or page in seen:
                return None
            seen.add(page)
            base = (page - 1) * self.page_size
            page = struct.unpack_from(">I", buf, base)[0]
            payload += buf[base + 4:base + 4 + min(self.usable - 4, size - len(payload))]
        start = header + skip
        return bytes(payload[start:start + n_blob])
