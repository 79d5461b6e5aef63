"""Reading an SQLite table from its leaf pages (io/sqlite_pages.py): against SQLite itself
on an intact file, then with the b-tree above the leaves destroyed."""
import sqlite3

import numpy as np
import pytest

from av_perception.io.sqlite_pages import SqlitePages, _varint


@pytest.mark.parametrize("encoded, value", [
    (b"\x00", 0), (b"\x7f", 127), (b"\x81\x00", 128), (b"\x82\x2c", 300),
    (b"\xff" * 9, 2 ** 64 - 1), (b"\x80" * 8 + b"\x01", 1),
    (b"\x81" + b"\x80" * 7 + b"\x00", 1 << 64 - 7),
])
def test_varints(encoded, value):
    """SQLite's varints: 7 bits per byte while the high bit is set; the 9th byte whole."""
    assert _varint(encoded + b"\xaa", 0) == (value, len(encoded))


def _bag_like(path, n=60, seed=0):
    """A rosbag2-like messages table with small and large (overflowing) blobs."""
    rng = np.random.default_rng(seed)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "type TEXT NOT NULL)")
    con.execute("CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, "
                "timestamp INTEGER NOT NULL, data BLOB NOT NULL)")
    con.execute("INSERT INTO topics VALUES (1, '/a', 'x/msg/A'), (2, '/b', 'x/msg/B')")
    rows = []
    for k in range(n):
        size = int(rng.choice([10, 900, 5000, 40000]))
        data = rng.integers(0, 256, size, np.uint8).tobytes()
        row = (k + 1, 1 + k % 2, 1_700_000_000_000_000_000 + k * 33_333_333, data)
        rows.append(row)
    con.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    return rows


def test_leaf_rows_and_blobs_are_sqlites(tmp_path):
    path = tmp_path / "t.db3"
    rows = _bag_like(path)
    pages = SqlitePages(path)
    try:
        leaves = pages.scan_leaf_rows(("null", "int", "int", "blob"))
        got = sorted((r.rowid, *r.ints, pages.read_blob(r)) for r in leaves)
    finally:
        pages.close()
    assert got == rows


def test_rows_below_a_destroyed_interior_page_are_found(tmp_path):
    path = tmp_path / "t.db3"
    rows = _bag_like(path, n=400)
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    # destroy every interior table page (flag 0x05): SQLite cannot reach the leaves
    interior = [p for p in range(1, len(data) // size)
                if data[(p - 1) * size] == 0x05]
    assert interior
    for p in interior:
        data[(p - 1) * size:p * size] = b"\x00" * size
    path.write_bytes(bytes(data))
    with pytest.raises(sqlite3.DatabaseError):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        con.execute("SELECT count(*), sum(length(data)) FROM messages").fetchall()
    pages = SqlitePages(path)
    try:
        leaves = pages.scan_leaf_rows(("null", "int", "int", "blob"))
        got = {r.rowid: (r.rowid, *r.ints, pages.read_blob(r)) for r in leaves}
    finally:
        pages.close()
    assert len(got) == len(rows)
    assert all(got[r[0]] == r for r in rows)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "x.db3"
    path.write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 200)
    with pytest.raises(ValueError, match="no SQLite header"):
        SqlitePages(path)
