"""The PointCloud2 layout of every cloud this package writes: height 1, one point per
row, little-endian, fields packed in order without padding.  Shared by the rclpy
messages of the nodes and the rosbags messages of the output bag."""
from __future__ import annotations

import numpy as np

__all__ = ["POINTFIELD_TYPES", "SPEAKER_CLOUD_FIELDS", "SPEAKER_FIELDS", "MARKER_NAMESPACES",
           "pack_points", "unpack_points", "speaker_columns"]

#: numpy dtype -> sensor_msgs/PointField datatype
POINTFIELD_TYPES = {
    np.dtype("i1"): 1, np.dtype("u1"): 2, np.dtype("<i2"): 3, np.dtype("<u2"): 4,
    np.dtype("<i4"): 5, np.dtype("<u4"): 6, np.dtype("<f4"): 7, np.dtype("<f8"): 8,
}
_NUMPY_TYPES = {v: k for k, v in POINTFIELD_TYPES.items()}

#: fields of the ``speakers`` cloud, one point per confirmed track
SPEAKER_CLOUD_FIELDS = (("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4"),
                        ("speaking", "<f4"), ("existence", "<f4"), ("var_x", "<f4"),
                        ("var_y", "<f4"), ("var_z", "<f4"))
SPEAKER_FIELDS = tuple(name for name, _ in SPEAKER_CLOUD_FIELDS)
#: marker namespaces of ``speakers/markers`` (marker id = track id in each)
MARKER_NAMESPACES = ("speakers/ellipsoid", "speakers/label")


def pack_points(fields: dict) -> tuple[list, int, int, bytes]:
    """{name: 1-D array} -> (layout [(name, offset, datatype)], point_step, width, data);
    each array's dtype becomes the field's type."""
    names = list(fields)
    arrays = [np.asarray(fields[n]) for n in names]
    n = len(arrays[0]) if arrays else 0
    if any(a.ndim != 1 or len(a) != n for a in arrays):
        raise ValueError("every PointCloud2 field must be a 1-D array of the same length")
    dtypes = []
    for name, a in zip(names, arrays):
        dt = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        if dt not in POINTFIELD_TYPES:
            raise ValueError(f"field {name}: unsupported dtype {a.dtype}")
        dtypes.append((name, dt))
    rec = np.zeros(n, dtype=np.dtype(dtypes))
    for name, a in zip(names, arrays):
        rec[name] = a
    layout, offset = [], 0
    for name, dt in dtypes:
        layout.append((name, offset, POINTFIELD_TYPES[dt]))
        offset += dt.itemsize
    return layout, offset, n, rec.tobytes()


def unpack_points(msg) -> dict:
    """PointCloud2 (rclpy or rosbags) -> {field name: 1-D array} (any field order and
    offsets, little-endian)."""
    if msg.is_bigendian:
        raise ValueError("big-endian PointCloud2 is not supported")
    formats, offsets, names = [], [], []
    for f in msg.fields:
        if f.datatype not in _NUMPY_TYPES:
            raise ValueError(f"field {f.name}: unsupported PointField datatype {f.datatype}")
        if f.count != 1:
            raise ValueError(f"field {f.name}: count {f.count} is not supported (must be 1)")
        names.append(f.name)
        formats.append(_NUMPY_TYPES[f.datatype])
        offsets.append(f.offset)
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                   "itemsize": msg.point_step})
    n = msg.width * msg.height
    if n == 0:
        return {name: np.zeros(0, dtype=fmt) for name, fmt in zip(names, formats)}
    data = msg.data
    buf = data.tobytes() if isinstance(data, np.ndarray) else (
        data if isinstance(data, (bytes, bytearray)) else bytes(data))
    row = msg.width * msg.point_step
    if msg.height > 1 and msg.row_step != row:
        # rows of an organised cloud may be padded: each starts row_step bytes after the
        # previous one (reading the points as one run would mix padding into them)
        if msg.row_step < row:
            raise ValueError(
                f"PointCloud2 row_step {msg.row_step} is smaller than width x point_step = "
                f"{msg.width} x {msg.point_step} = {row}: the message is inconsistent")
        need = (msg.height - 1) * msg.row_step + row
        if len(buf) < need:
            raise ValueError(f"PointCloud2 data has {len(buf)} bytes, expected {need} "
                             f"({msg.height} rows of row_step {msg.row_step})")
        rows = np.frombuffer(buf + bytes(msg.row_step - row), np.uint8,
                             count=msg.height * msg.row_step).reshape(msg.height, msg.row_step)
        buf = rows[:, :row].tobytes()
    if len(buf) < n * msg.point_step:
        raise ValueError(
            f"PointCloud2 data has {len(buf)} bytes, expected {n * msg.point_step}")
    rec = np.frombuffer(buf, dtype=dt, count=n)
    return {name: np.array(rec[name]) for name in names}


def speaker_columns(output) -> dict:
    """TrackerOutput -> the ``speakers`` cloud's columns (SPEAKER_CLOUD_FIELDS)."""
    pos = np.asarray(output.position, dtype=np.float64).reshape(-1, 3)
    var = np.diagonal(np.asarray(output.covariance, dtype=np.float64).reshape(-1, 3, 3),
                      axis1=1, axis2=2)
    cols = {"x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2], "id": np.asarray(output.ids),
            "speaking": np.asarray(output.speaking), "existence": np.asarray(output.existence),
            "var_x": var[:, 0], "var_y": var[:, 1], "var_z": var[:, 2]}
    return {name: np.asarray(cols[name]).astype(dt) for name, dt in SPEAKER_CLOUD_FIELDS}
