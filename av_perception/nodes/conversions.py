"""Conversions between numpy arrays and ROS messages (no cv_bridge/sensor_msgs_py needed).

PointCloud2 layout used by every cloud this package publishes: height 1, one
point per row, little-endian, fields packed in the order given, no padding.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import PointCloud2, PointField

from ..core.tracking import EventObservations, TrackerInputError
from ..io.cloud_layout import (
    MARKER_NAMESPACES,
    SPEAKER_FIELDS,
    pack_points,
    speaker_columns,
    unpack_points,
)
from ..io.stamps import seconds_to_stamp, stamp_to_seconds
from ..viz import covariance_ellipsoid, speaking_rgba

__all__ = [
    "sec_to_time",
    "time_to_sec",
    "make_pointcloud2",
    "read_pointcloud2",
    "AUDIO_FEATURE_FIELDS",
    "AUDIO_PROFILE_PREFIX",
    "features_to_cloud",
    "cloud_to_features",
]



def sec_to_time(t: float) -> Time:
    """float seconds -> builtin_interfaces/Time (rounded to the nanosecond)."""
    sec, nanosec = seconds_to_stamp(t)
    return Time(sec=sec, nanosec=nanosec)


#: builtin_interfaces/Time or a header -> float seconds
time_to_sec = stamp_to_seconds
#: PointCloud2 -> {field name: 1-D array} (any field order/offsets, little-endian)
read_pointcloud2 = unpack_points


def make_pointcloud2(header, fields: dict) -> PointCloud2:
    """PointCloud2 from {name: 1-D array}; each array's dtype becomes the field type.

    All arrays must have the same length (the number of points).
    """
    layout, step, n, data = pack_points(fields)
    msg = PointCloud2()
    msg.header = header
    msg.height = 1
    msg.width = n
    msg.fields = [PointField(name=name, offset=off, datatype=dt, count=1)
                  for name, off, dt in layout]
    msg.is_bigendian = False
    msg.point_step = step
    msg.row_step = step * n
    msg.is_dense = True
    msg.data = data
    return msg


#: fields of the ``audio/features`` cloud, one point per audio frame
AUDIO_FEATURE_FIELDS = ("t_offset", "itd", "ild", "activity", "reliability", "azimuth",
                        "direct_path")
#: optional fields (float32) of the ``audio/features`` cloud: the frame's ITD profile
#: (``audio.itd_profile``), one field per ITD of the grid: itd_profile_000, _001, ...
AUDIO_PROFILE_PREFIX = "itd_profile_"


def features_to_cloud(header_frame_id: str, feats) -> PointCloud2:
    """BinauralFeatures -> ``audio/features`` PointCloud2.

    header.stamp is the centre time of the first frame; ``t_offset`` (s) gives each
    frame's centre relative to it, so full-precision stamps survive float32 fields.
    """
    from std_msgs.msg import Header

    t0 = float(feats.stamp[0])
    header = Header(stamp=sec_to_time(t0), frame_id=header_frame_id)
    f32 = np.float32
    profile = getattr(feats, "itd_profile", None)
    extra = ({} if profile is None else
             {f"{AUDIO_PROFILE_PREFIX}{j:03d}": profile[:, j].astype(f32)
              for j in range(profile.shape[1])})
    return make_pointcloud2(header, {
        "t_offset": (feats.stamp - t0).astype(f32),
        "itd": feats.itd.astype(f32),
        "ild": feats.ild.astype(f32),
        "activity": feats.activity.astype(f32),
        "reliability": feats.reliability.astype(f32),
        "azimuth": feats.azimuth.astype(f32),
        "direct_path": feats.direct_path.astype(f32),
        **extra,
    })


def cloud_to_features(msg) -> dict:
    """``audio/features`` PointCloud2 -> {stamp (float64 s), itd, ild, activity, ...,
    itd_profile (F, N) when the cloud has it}."""
    data = read_pointcloud2(msg)
    missing = [f for f in ("t_offset", "itd", "activity") if f not in data]
    if missing:
        raise ValueError(f"audio/features cloud lacks field(s) {', '.join(missing)}")
    cols = sorted(k for k in data if k.startswith(AUDIO_PROFILE_PREFIX))
    out = {k: v.astype(np.float64) for k, v in data.items()
           if k != "t_offset" and not k.startswith(AUDIO_PROFILE_PREFIX)}
    if cols:
        out["itd_profile"] = np.stack([data[k].astype(np.float64) for k in cols], axis=1)
    out["stamp"] = time_to_sec(msg.header.stamp) + data["t_offset"].astype(np.float64)
    return out


#: fields of the ``visual/observations`` cloud (all float32), one point per observation:
#: position (m, left camera optical frame), weight, head box (u, v, w, h in rectified
#: left-image pixels) and the diagonal of the position covariance (m^2)
VISUAL_OBSERVATION_FIELDS = ("x", "y", "z", "weight", "u", "v", "w", "h", "var_x", "var_y",
                             "var_z")
#: optional fields (float32): the lip cue of each observation (0 = unknown); clouds
#: without them (older writers) read as unknown
VISUAL_LIP_FIELDS = ("lip_llr", "lip_reliability")
__all__ += ["VISUAL_OBSERVATION_FIELDS", "VISUAL_LIP_FIELDS", "observations_to_cloud",
            "cloud_to_observations"]


def observations_to_cloud(header, obs) -> PointCloud2:
    """VisualObservations -> ``visual/observations`` PointCloud2 with ``header``
    (the left image's: stamp and frame_id).  A frame without observations gives
    an empty cloud (width 0), so that subscribers see every processed frame."""
    f32 = np.float32
    var = obs.variances if len(obs) else np.zeros((0, 3))
    box = np.asarray(obs.box, dtype=np.float64).reshape(-1, 4)
    xyz = np.asarray(obs.xyz, dtype=np.float64).reshape(-1, 3)
    return make_pointcloud2(header, {
        "x": xyz[:, 0].astype(f32), "y": xyz[:, 1].astype(f32), "z": xyz[:, 2].astype(f32),
        "weight": np.asarray(obs.weight).astype(f32),
        "u": box[:, 0].astype(f32), "v": box[:, 1].astype(f32),
        "w": box[:, 2].astype(f32), "h": box[:, 3].astype(f32),
        "var_x": var[:, 0].astype(f32), "var_y": var[:, 1].astype(f32),
        "var_z": var[:, 2].astype(f32),
        **{name: _lip_column(obs, name, len(xyz)).astype(f32) for name in VISUAL_LIP_FIELDS},
    })


def _lip_column(obs, name: str, m: int) -> np.ndarray:
    v = getattr(obs, name, None)
    return np.zeros(m) if v is None else np.asarray(v, dtype=np.float64).reshape(m)


def cloud_to_observations(msg) -> dict:
    """``visual/observations`` PointCloud2 -> {stamp (float s), frame_id, xyz (M, 3),
    weight (M,), box (M, 4), variances (M, 3), lip_llr (M,), lip_reliability (M,)} as
    float64 arrays (the lip fields 0 = unknown when the cloud lacks them)."""
    data = read_pointcloud2(msg)
    missing = [f for f in VISUAL_OBSERVATION_FIELDS if f not in data]
    if missing:
        raise ValueError(f"visual/observations cloud lacks field(s) {', '.join(missing)}")
    col = {k: v.astype(np.float64) for k, v in data.items()}
    return {
        "stamp": time_to_sec(msg.header.stamp),
        "frame_id": msg.header.frame_id,
        "xyz": np.column_stack([col["x"], col["y"], col["z"]]).reshape(-1, 3),
        "weight": col["weight"],
        "box": np.column_stack([col["u"], col["v"], col["w"], col["h"]]).reshape(-1, 4),
        "variances": np.column_stack([col["var_x"], col["var_y"], col["var_z"]]).reshape(-1, 3),
        **{name: col[name] if name in col else np.zeros(len(col["x"]))
           for name in VISUAL_LIP_FIELDS},
    }


#: fields of the ``av_events`` cloud, one point per cluster (label uint32, others float32)
AV_EVENT_FIELDS = ("x", "y", "z", "audio_mass", "visual_mass", "var_x", "var_y", "var_z",
                   "out_of_view", "label", "spread_x", "spread_y", "spread_z")


def events_to_cloud(header, events) -> PointCloud2:
    """AVEvents -> ``av_events`` PointCloud2 (see module docstring)."""
    f32 = np.float32
    pos = np.array([e.position for e in events], dtype=np.float64).reshape(-1, 3)
    var = np.array([np.diag(e.covariance) for e in events], dtype=np.float64).reshape(-1, 3)
    spread = np.array([np.diag(e.spread) for e in events], dtype=np.float64).reshape(-1, 3)
    return make_pointcloud2(header, {
        "x": pos[:, 0].astype(f32), "y": pos[:, 1].astype(f32), "z": pos[:, 2].astype(f32),
        "audio_mass": np.array([e.audio_mass for e in events], dtype=f32),
        "visual_mass": np.array([e.visual_mass for e in events], dtype=f32),
        "var_x": var[:, 0].astype(f32), "var_y": var[:, 1].astype(f32),
        "var_z": var[:, 2].astype(f32),
        "out_of_view": np.array([1.0 if e.out_of_view else 0.0 for e in events], dtype=f32),
        "label": np.array([e.label for e in events], dtype=np.uint32),
        "spread_x": spread[:, 0].astype(f32), "spread_y": spread[:, 1].astype(f32),
        "spread_z": spread[:, 2].astype(f32),
    })


__all__ += ["AV_EVENT_FIELDS", "events_to_cloud", "cloud_to_events"]


def cloud_to_events(msg) -> tuple[float, EventObservations]:
    """``av_events`` PointCloud2 -> (window end stamp s, EventObservations); the cloud
    carries the diagonal of each position covariance."""
    data = read_pointcloud2(msg)
    missing = [f for f in AV_EVENT_FIELDS if f not in data]
    if missing:
        raise ValueError(f"av_events cloud lacks field(s) {', '.join(missing)}")
    col = {k: v.astype(np.float64) for k, v in data.items()}
    var = np.column_stack([col["var_x"], col["var_y"], col["var_z"]]).reshape(-1, 3)
    if not np.all(np.isfinite(var)) or np.any(var <= 0):
        raise ValueError("av_events cloud has non-positive or non-finite variances")
    spread = np.column_stack([col["spread_x"], col["spread_y"], col["spread_z"]]).reshape(-1, 3)
    idx = np.arange(3)
    cov = np.zeros((len(var), 3, 3))
    cov[:, idx, idx] = var
    spread_cov = np.zeros((len(var), 3, 3))
    spread_cov[:, idx, idx] = np.maximum(spread, 0.0)
    try:
        events = EventObservations(
            np.column_stack([col["x"], col["y"], col["z"]]).reshape(-1, 3), cov,
            col["visual_mass"], col["audio_mass"], col["out_of_view"] > 0.5,
            spread=spread_cov)
    except TrackerInputError as exc:
        raise ValueError(f"av_events cloud rejected: {exc}") from exc
    return time_to_sec(msg.header.stamp), events


__all__ += ["SPEAKER_FIELDS", "MARKER_NAMESPACES", "tracks_to_cloud", "cloud_to_tracks",
            "covariance_ellipsoid", "speaking_rgba", "tracks_to_markers"]


def tracks_to_cloud(header, output) -> PointCloud2:
    """TrackerOutput -> ``speakers`` PointCloud2 (x, y, z, speaking, existence, var_*
    float32; id uint32) with ``header``; an empty cloud when there is no track."""
    return make_pointcloud2(header, speaker_columns(output))


def cloud_to_tracks(msg) -> dict:
    """``speakers`` PointCloud2 -> {stamp, frame_id, ids (K,) int, position (K, 3),
    speaking (K,), existence (K,), variances (K, 3)}."""
    data = read_pointcloud2(msg)
    missing = [f for f in SPEAKER_FIELDS if f not in data]
    if missing:
        raise ValueError(f"speakers cloud lacks field(s) {', '.join(missing)}")
    col = {k: v.astype(np.float64) for k, v in data.items() if k != "id"}
    return {
        "stamp": time_to_sec(msg.header.stamp),
        "frame_id": msg.header.frame_id,
        "ids": data["id"].astype(np.int64),
        "position": np.column_stack([col["x"], col["y"], col["z"]]).reshape(-1, 3),
        "speaking": col["speaking"],
        "existence": col["existence"],
        "variances": np.column_stack([col["var_x"], col["var_y"], col["var_z"]]).reshape(-1, 3),
    }


def _rgba(cls, c):
    return cls(r=float(c[0]), g=float(c[1]), b=float(c[2]), a=float(c[3]))


def tracks_to_markers(header, output, previous_ids=(), speaking_threshold: float = 0.5,
                      lifetime: float = 2.0, text_height: float = 0.12):
    """TrackerOutput -> (visualization_msgs/MarkerArray, ids shown).

    Per track: a SPHERE covariance ellipsoid (namespace ``speakers/ellipsoid``) and a
    TEXT_VIEW_FACING label "3 speaking" / "3" above the head (``speakers/label``), both
    with marker id = track id, coloured by speaking probability grey -> red.  Every id in
    ``previous_ids`` (the ids shown by the previous call) or ``output.ended`` that is not
    in this output gets DELETE markers in both namespaces.
    """
    from builtin_interfaces.msg import Duration
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    sec, nanosec = seconds_to_stamp(lifetime)
    life = Duration(sec=sec, nanosec=nanosec)
    arr = MarkerArray()
    ids = [int(i) for i in np.asarray(output.ids)]
    shown = set(ids)
    pos = np.asarray(output.position, dtype=np.float64).reshape(-1, 3)
    cov = np.asarray(output.covariance, dtype=np.float64).reshape(-1, 3, 3)
    for k, tid in enumerate(ids):
        p = float(output.speaking[k])
        speaking = p >= speaking_threshold
        scale, quat = covariance_ellipsoid(cov[k])
        ell = Marker(header=header, ns=MARKER_NAMESPACES[0], id=tid, type=Marker.SPHERE,
                     action=Marker.ADD, lifetime=life)
        ell.pose.position.x, ell.pose.position.y, ell.pose.position.z = (float(v) for v in pos[k])
        (ell.pose.orientation.x, ell.pose.orientation.y, ell.pose.orientation.z,
         ell.pose.orientation.w) = (float(v) for v in quat)
        ell.scale.x, ell.scale.y, ell.scale.z = (float(v) for v in scale)
        ell.color = _rgba(ColorRGBA, speaking_rgba(p, 0.55))
        label = Marker(header=header, ns=MARKER_NAMESPACES[1], id=tid,
                       type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, lifetime=life)
        label.pose.position.x = float(pos[k, 0])
        # y points down in the optical frame: the label floats above the ellipsoid
        label.pose.position.y = float(pos[k, 1] - 0.5 * scale.max() - 0.6 * text_height)
        label.pose.position.z = float(pos[k, 2])
        label.pose.orientation.w = 1.0
        label.scale.z = float(text_height)
        label.color = _rgba(ColorRGBA, speaking_rgba(p, 1.0))
        label.text = f"{tid} speaking" if speaking else f"{tid}"
        arr.markers.extend([ell, label])
    gone = (set(int(i) for i in previous_ids) | set(int(i) for i in np.asarray(
        getattr(output, "ended", ())))) - shown
    for tid in sorted(gone):
        for ns in MARKER_NAMESPACES:
            arr.markers.append(Marker(header=header, ns=ns, id=tid, action=Marker.DELETE))
    return arr, shown
