"""Output rosbag2 of ``av-perception process --output-bag`` (topics of docs/architecture.md).

:class:`OutputBagWriter` writes per processed image frame ``speakers`` (PointCloud2),
``speakers/markers`` (MarkerArray, the markers ``tracker_node`` publishes) and optionally
``speakers/image`` (the annotated left image), and the attention target (``attention``
PointStamped when there is one, ``attention/voice_id`` String at every frame, empty when
none), built as rosbags messages so that no ROS installation is needed; with
``process --voices``, each track's voice as ``<voices_namespace>/<voice id>/audio``
(:meth:`OutputBagWriter.write_voice`).  Every message is
stamped with the left image's header.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..viz import annotate_frame, covariance_ellipsoid, speaking_rgba
from .cloud_layout import MARKER_NAMESPACES, SPEAKER_CLOUD_FIELDS, pack_points, speaker_columns
from .msgdefs import make_typestore
from .stamps import NS_PER_S, seconds_to_stamp

__all__ = ["OUTPUT_TOPICS", "OutputBagWriter", "new_message", "SPEAKER_CLOUD_FIELDS"]

#: topic -> message type of the output bag
OUTPUT_TOPICS = {
    "speakers": "sensor_msgs/msg/PointCloud2",
    "speakers/markers": "visualization_msgs/msg/MarkerArray",
    "speakers/image": "sensor_msgs/msg/Image",
    "attention": "geometry_msgs/msg/PointStamped",
    "attention/voice_id": "std_msgs/msg/String",
}
#: message type of the voices (``process --output-bag --voices``)
VOICE_AUDIO_TYPE = "audio_common_msgs/msg/AudioStamped"
_SPHERE, _TEXT_VIEW_FACING, _ADD, _DELETE = 2, 9, 0, 2


def _default(store, node):
    """Default value of a rosbags field type node."""
    kind, spec = node
    kind = int(kind)
    if kind == 1:  # BASE
        name = spec[0]
        if name == "string":
            return ""
        if name == "bool":
            return False
        if name.startswith("float"):
            return 0.0
        return 0
    if kind == 2:  # NAME
        return new_message(store, spec)
    sub, length = spec
    if int(sub[0]) == 1:  # array or sequence of a primitive: numpy array
        name = sub[1][0]
        if name in ("string",):
            return [""] * (length if kind == 3 else 0)
        dtype = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8}.get(name, name)
        return np.zeros(length if kind == 3 else 0, dtype=dtype)
    return [_default(store, sub) for _ in range(length if kind == 3 else 0)]


def new_message(store, msgtype: str, **fields):
    """A rosbags message object of ``msgtype`` with every field at its ROS default and
    ``fields`` set (the typestore's classes have no defaults of their own)."""
    _, defs = store.fielddefs[msgtype]
    values = {name: fields[name] if name in fields else _default(store, node)
              for name, node in defs}
    unknown = set(fields) - set(values)
    if unknown:
        raise TypeError(f"{msgtype} has no field(s) {', '.join(sorted(unknown))}")
    return store.types[msgtype](**values)


class OutputBagWriter:
    """Writes ``speakers``, ``speakers/markers``, (unless ``images=False``)
    ``speakers/image`` and (unless ``attention=False``) ``attention`` and
    ``attention/voice_id`` to a new rosbag2 directory ``path`` (sqlite3 or mcap).

    Call :meth:`write` once per tracker output with the left image's header; use as a
    context manager (or call :meth:`close`) so the bag's metadata is written.
    """

    def __init__(self, path, storage: str = "sqlite3", images: bool = True,
                 speaking_threshold: float = 0.5, marker_lifetime: float = 2.0,
                 text_height: float = 0.12, attention: bool = True,
                 voice_id_prefix: str = "voice"):
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
        if storage not in plugins:
            raise ValueError(f"unknown bag storage {storage!r}: use sqlite3 or mcap")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists: the output bag must be a new directory")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.store = make_typestore()
        self.images = bool(images)
        self.speaking_threshold = float(speaking_threshold)
        self.marker_lifetime = float(marker_lifetime)
        self.text_height = float(text_height)
        self.voice_id_prefix = str(voice_id_prefix)
        self.counts = {t: 0 for t in OUTPUT_TOPICS if (images or t != "speakers/image")
                       and (attention or not t.startswith("attention"))}
        self.shown_ids: set = set()
        self._writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        self._writer.open()
        self._conns = {t: self._writer.add_connection(t, OUTPUT_TOPICS[t], typestore=self.store)
                       for t in self.counts}
        self._types: dict = {}  # topics added later (voices) -> message type

    # ------------------------------------------------------------ messages
    def _msg(self, msgtype: str, **fields):
        return new_message(self.store, msgtype, **fields)

    def header(self, sec: int, nanosec: int, frame_id: str):
        stamp = self._msg("builtin_interfaces/msg/Time", sec=int(sec), nanosec=int(nanosec))
        return self._msg("std_msgs/msg/Header", stamp=stamp, frame_id=str(frame_id))

    def speakers_cloud(self, header, output):
        """TrackerOutput -> ``speakers`` PointCloud2 (rosbags message)."""
        layout, step, n, data = pack_points(speaker_columns(output))
        fields = [self._msg("sensor_msgs/msg/PointField", name=name, offset=off, datatype=dt,
                            count=1) for name, off, dt in layout]
        return self._msg(
            "sensor_msgs/msg/PointCloud2", header=header, height=1, width=n, fields=fields,
            is_bigendian=False, point_step=step, row_step=step * n,
            data=np.frombuffer(data, dtype=np.uint8), is_dense=True)

    def _colour(self, rgba):
        return self._msg("std_msgs/msg/ColorRGBA", r=float(rgba[0]), g=float(rgba[1]),
                         b=float(rgba[2]), a=float(rgba[3]))

    def _pose(self, xyz, quat=(0.0, 0.0, 0.0, 1.0)):
        position = self._msg("geometry_msgs/msg/Point", x=float(xyz[0]), y=float(xyz[1]),
                             z=float(xyz[2]))
        orientation = self._msg("geometry_msgs/msg/Quaternion", x=float(quat[0]),
                                y=float(quat[1]), z=float(quat[2]), w=float(quat[3]))
        return self._msg("geometry_msgs/msg/Pose", position=position, orientation=orientation)

    def markers(self, header, output):
        """TrackerOutput -> ``speakers/markers`` MarkerArray (rosbags message); updates the
        set of ids shown, so that tracks that disappear get DELETE markers."""
        sec, nanosec = seconds_to_stamp(self.marker_lifetime)
        life = self._msg("builtin_interfaces/msg/Duration", sec=sec, nanosec=nanosec)
        markers = []
        ids = [int(i) for i in np.asarray(output.ids)]
        pos = np.asarray(output.position, dtype=np.float64).reshape(-1, 3)
        cov = np.asarray(output.covariance, dtype=np.float64).reshape(-1, 3, 3)
        for k, tid in enumerate(ids):
            p = float(output.speaking[k])
            scale, quat = covariance_ellipsoid(cov[k])
            markers.append(self._msg(
                "visualization_msgs/msg/Marker", header=header, ns=MARKER_NAMESPACES[0],
                id=tid, type=_SPHERE, action=_ADD, pose=self._pose(pos[k], quat),
                scale=self._msg("geometry_msgs/msg/Vector3", x=float(scale[0]),
                                y=float(scale[1]), z=float(scale[2])),
                color=self._colour(speaking_rgba(p, 0.55)), lifetime=life))
            # y points down in the optical frame: the label floats above the ellipsoid
            label_xyz = (pos[k, 0], pos[k, 1] - 0.5 * scale.max() - 0.6 * self.text_height,
                         pos[k, 2])
            markers.append(self._msg(
                "visualization_msgs/msg/Marker", header=header, ns=MARKER_NAMESPACES[1],
                id=tid, type=_TEXT_VIEW_FACING, action=_ADD, pose=self._pose(label_xyz),
                scale=self._msg("geometry_msgs/msg/Vector3", z=float(self.text_height)),
                color=self._colour(speaking_rgba(p, 1.0)), lifetime=life,
                text=f"{tid} speaking" if p >= self.speaking_threshold else f"{tid}"))
        shown = set(ids)
        gone = (self.shown_ids | {int(i) for i in np.asarray(getattr(output, "ended", ()))}) \
            - shown
        for tid in sorted(gone):
            for ns in MARKER_NAMESPACES:
                markers.append(self._msg("visualization_msgs/msg/Marker", header=header, ns=ns,
                                         id=tid, action=_DELETE))
        self.shown_ids = shown
        return self._msg("visualization_msgs/msg/MarkerArray", markers=markers)

    def image(self, header, bgr: np.ndarray):
        bgr = np.ascontiguousarray(bgr, dtype=np.uint8)
        h, w = bgr.shape[:2]
        return self._msg("sensor_msgs/msg/Image", header=header, height=h, width=w,
                         encoding="bgr8", is_bigendian=0, step=3 * w,
                         data=bgr.reshape(-1).view(np.uint8))

    # --------------------------------------------------------------- writing
    def _put(self, topic: str, msg, t_ns: int):
        import sqlite3

        data = self.store.serialize_cdr(msg, self._types.get(topic) or OUTPUT_TOPICS[topic])
        try:
            self._writer.write(self._conns[topic], t_ns, data)
        except (OSError, sqlite3.Error) as exc:  # a full disk names the bag, not just errno
            raise OSError(getattr(exc, "errno", None),
                          f"cannot write the output bag {self.path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from exc
        self.counts[topic] += 1

    def write(self, output, sec: int, nanosec: int, frame_id: str = "",
              left_image: np.ndarray | None = None, calibration=None) -> None:
        """Write the messages of one TrackerOutput, stamped (sec, nanosec) = the left
        image's header stamp; ``left_image`` (BGR) + ``calibration`` for the annotated
        image (skipped when images are off)."""
        header = self.header(sec, nanosec, frame_id)
        t_ns = int(sec) * NS_PER_S + int(nanosec)
        self._put("speakers", self.speakers_cloud(header, output), t_ns)
        markers = self.markers(header, output)
        if len(markers.markers):
            self._put("speakers/markers", markers, t_ns)
        target = getattr(output, "attention", None)
        if target is not None and "attention" in self.counts:
            voice = f"{self.voice_id_prefix}{target.track_id}" if target.valid else ""
            self._put("attention/voice_id", self._msg("std_msgs/msg/String", data=voice), t_ns)
            if target.valid and np.isfinite(target.position).all():
                x, y, z = (float(v) for v in target.position)
                point = self._msg("geometry_msgs/msg/Point", x=x, y=y, z=z)
                self._put("attention", self._msg("geometry_msgs/msg/PointStamped",
                                                 header=header, point=point), t_ns)
        if self.images and left_image is not None and calibration is not None:
            self._put("speakers/image", self.image(header, annotate_frame(
                left_image, output, calibration)), t_ns)

    def write_voice(self, topic: str, samples, rate: int, start: float, frame_id: str = "",
                    chunk: int = 1024) -> int:
        """Write a mono voice as ``audio_common_msgs/AudioStamped`` chunks (float32, the
        audio type the package reads) on ``topic``, each stamped with its first sample's
        time (``start`` = sample 0, s) and logged when its last sample is complete, as a
        live capture.  Returns the number of messages."""
        if topic not in self._conns:
            self._types[topic] = VOICE_AUDIO_TYPE
            self._conns[topic] = self._writer.add_connection(topic, VOICE_AUDIO_TYPE,
                                                             typestore=self.store)
            self.counts[topic] = 0
        x = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        start_ns = int(round(float(start) * NS_PER_S))
        n = 0
        for a in range(0, len(x), int(chunk)):
            block = x[a:a + int(chunk)]
            t_ns = start_ns + int(round(a * NS_PER_S / rate))
            data = self._msg("audio_common_msgs/msg/AudioData", float32_data=block)
            info = self._msg("audio_common_msgs/msg/AudioInfo", format=1, channels=1,
                             rate=int(rate), chunk=len(block))
            msg = self._msg(VOICE_AUDIO_TYPE,
                            header=self.header(t_ns // NS_PER_S, t_ns % NS_PER_S, frame_id),
                            audio=self._msg("audio_common_msgs/msg/Audio", audio_data=data,
                                            info=info))
            self._put(topic, msg, t_ns + int(round(len(block) * NS_PER_S / rate)))
            n += 1
        return n

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
