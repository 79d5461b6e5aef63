"""Seeded generators of the messages the nodes subscribe to, valid and mutated (issue 16:
the fuzz test of every subscribed topic, test/test_fuzz_nodes.py).

:class:`MessageFuzzer` makes, from one seed, an endless reproducible stream of
``sensor_msgs`` messages: ``audio/features``, ``visual/observations`` and ``av_events``
clouds (PointCloud2), raw and compressed images and CameraInfo.  Each message starts
from a valid one of its kind and, most of the time, gets one to three mutations: NaN,
inf, huge, tiny, negative and zero values in any field; stamps at the ends of their
range, going back, duplicated; empty messages; inconsistent sizes (PointCloud2
width/height/row_step/point_step/fields/data, Image step/data/encoding); wrong field
datatypes and counts; big-endian flags; garbage compressed bytes; CameraInfo with
zero/NaN/inf K/P/R/D and wrong sizes.  Every value fits its ROS field type, so each
message also goes through rclpy serialisation.
"""
from __future__ import annotations

import array

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from av_perception.core.config import StereoCameraConfig
from av_perception.core.stereo import StereoCalibration
from av_perception.io.cloud_layout import SPEAKER_CLOUD_FIELDS
from av_perception.io.image_msgs import camera_info_fields, fill_camera_info_msg
from av_perception.nodes.conversions import (
    AV_EVENT_FIELDS,
    VISUAL_OBSERVATION_FIELDS,
    make_pointcloud2,
    sec_to_time,
)

__all__ = ["MessageFuzzer", "FUZZ_CAMERA", "u8"]

#: the small camera of the fuzzed image streams (fast to process)
FUZZ_CAMERA = StereoCameraConfig(width=96, height=72, fx=75.0, fy=75.0, cx=47.5, cy=35.5)
FUZZ_CAL = StereoCalibration.from_config(FUZZ_CAMERA)

_SPECIAL = np.array([np.nan, np.inf, -np.inf, 3.0e38, -3.0e38, 1e-45, -1e-45, 0.0, -1.0,
                     1e30, -1e30, 1e-30], dtype=np.float64)
_U32 = 2 ** 32 - 1
_I32 = (-2 ** 31, 2 ** 31 - 1)


def u8(data) -> array.array:
    """bytes -> the array rclpy stores uint8[] fields in (fast assignment)."""
    return array.array("B", bytes(data))


class MessageFuzzer:
    """Valid and mutated messages of every subscribed type, reproducible from ``seed``.

    ``t0`` is the data time the valid stream starts at; it advances with each message
    (and mutations send stamps back, far ahead or to the ends of the int32 range).
    """

    KINDS = ("features", "observations", "events", "speakers", "image", "compressed", "info")

    def __init__(self, seed: int, t0: float = 1000.0, mutate_p: float = 0.8):
        self.rng = np.random.default_rng(seed)
        self.t = float(t0)
        self.mutate_p = mutate_p
        self.mutations: dict = {}  # name -> count (what the stream exercised)
        self._last: dict = {}

    # ----------------------------------------------------------------- helpers
    def _note(self, name: str):
        self.mutations[name] = self.mutations.get(name, 0) + 1

    def _stamp(self) -> float:
        self.t += float(self.rng.uniform(0.0, 0.05))
        return self.t

    def _header(self, frame_id: str) -> Header:
        return Header(stamp=sec_to_time(self._stamp()), frame_id=frame_id)

    def _mutate_header(self, header: Header) -> None:
        r = self.rng
        k = int(r.integers(9))
        st = header.stamp
        if k == 0:
            st.sec, st.nanosec = 0, 0
        elif k == 1:
            st.sec = _I32[1]
            st.nanosec = 999_999_999
        elif k == 2:
            st.sec = _I32[0]
        elif k == 3:
            st.nanosec = int(r.integers(1_000_000_000, _U32 + 1))  # out of its range
        elif k == 4:  # back in time
            st.sec = max(_I32[0], st.sec - int(r.choice([1, 5, 60, 3600, 10 ** 6])))
        elif k == 5:  # far ahead
            st.sec = min(_I32[1], st.sec + int(r.choice([1, 30, 3600, 10 ** 7])))
        elif k == 6:
            header.frame_id = ""
        elif k == 7:
            header.frame_id = "x" * int(r.integers(200, 3000)) + "/\u00e9\u4e2d"
        else:  # the previous message's stamp (a duplicate)
            st.sec, st.nanosec = int(self.t), 0
        self._note(f"header{k}")

    # ----------------------------------------------------------------- clouds
    def _columns(self, kind: str, n: int) -> dict:
        r = self.rng
        f32 = np.float32
        if kind == "features":
            hop = 256 / 16000
            return {"t_offset": (np.arange(n) * hop).astype(f32),
                    "itd": r.uniform(-4e-4, 4e-4, n).astype(f32),
                    "ild": r.normal(0, 3, n).astype(f32),
                    "activity": r.uniform(0, 1, n).astype(f32),
                    "reliability": r.uniform(0, 1, n).astype(f32),
                    "azimuth": r.uniform(-1.5, 1.5, n).astype(f32),
                    "direct_path": r.uniform(0, 1, n).astype(f32)}
        if kind == "observations":
            xyz = np.column_stack([r.uniform(-1, 1, n), r.uniform(-0.5, 0.5, n),
                                   r.uniform(1, 4, n)])
            cols = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                    "weight": r.uniform(0.2, 1, n), "u": r.uniform(0, 90, n),
                    "v": r.uniform(0, 70, n), "w": r.uniform(5, 30, n), "h": r.uniform(5, 30, n),
                    "var_x": np.full(n, 1e-4), "var_y": np.full(n, 1e-4),
                    "var_z": np.full(n, 4e-4)}
            return {k: cols[k].astype(f32) for k in VISUAL_OBSERVATION_FIELDS}
        if kind == "speakers":  # tracker_node's output, read by visual_features_node
            cols = {"x": r.uniform(-1, 1, n), "y": r.uniform(-0.5, 0.5, n),
                    "z": r.uniform(1, 4, n), "speaking": r.uniform(0, 1, n),
                    "existence": r.uniform(0.5, 1, n), "var_x": np.full(n, 1e-3),
                    "var_y": np.full(n, 1e-3), "var_z": np.full(n, 4e-3)}
            out = {k: np.asarray(cols[k], dt) for k, dt in SPEAKER_CLOUD_FIELDS if k != "id"}
            out["id"] = np.arange(1, n + 1, dtype=np.uint32)
            return {k: out[k] for k, _ in SPEAKER_CLOUD_FIELDS}
        # events
        cols = {"x": r.uniform(-1, 1, n), "y": r.uniform(-0.5, 0.5, n), "z": r.uniform(1, 4, n),
                "audio_mass": r.uniform(0, 20, n), "visual_mass": r.uniform(0, 20, n),
                "var_x": np.full(n, 1e-3), "var_y": np.full(n, 1e-3), "var_z": np.full(n, 4e-3),
                "out_of_view": (r.random(n) < 0.2).astype(float),
                "spread_x": np.full(n, 0.01), "spread_y": np.full(n, 0.01),
                "spread_z": np.full(n, 0.02)}
        out = {k: cols[k].astype(f32) for k in AV_EVENT_FIELDS if k != "label"}
        out["label"] = np.arange(n, dtype=np.uint32)
        return {k: out[k] for k in AV_EVENT_FIELDS}

    def cloud(self, kind: str, mutate: bool | None = None) -> PointCloud2:
        """A ``features``, ``observations`` or ``events`` cloud (mutated unless
        ``mutate`` is False; randomly when None)."""
        r = self.rng
        n = int(r.choice([0, 1, 2, 3, 4, 8])) if r.random() > 0.01 else int(r.integers(1000, 20000))
        frame = {"features": "mics", "observations": "cam_left"}.get(kind, "cam_left")
        cols = self._columns(kind, n)
        if mutate is None:
            mutate = r.random() < self.mutate_p
        if not mutate:
            return make_pointcloud2(self._header(frame), cols)
        self._note(f"{kind}")
        for _ in range(int(r.integers(1, 4))):
            k = int(r.integers(6))
            if k <= 2 and n:  # special values in a column
                name = str(r.choice(list(cols)))
                idx = r.random(n) < r.uniform(0.1, 1.0)
                col = cols[name].astype(np.float64)
                col[idx] = r.choice(_SPECIAL, int(idx.sum()))
                with np.errstate(all="ignore"):
                    cols[name] = col.astype(cols[name].dtype) if cols[name].dtype.kind == "f" \
                        else np.nan_to_num(col, nan=0, posinf=_U32, neginf=0).clip(0, _U32) \
                        .astype(cols[name].dtype)
                self._note("cloud_values")
            elif k == 3 and cols:  # another dtype for a column (a valid, unusual layout)
                name = str(r.choice(list(cols)))
                dt = r.choice(["<f8", "<i4", "<u2", "u1", "i1", "<u4"])
                with np.errstate(all="ignore"):
                    cols[name] = np.nan_to_num(cols[name].astype(np.float64)).clip(
                        np.iinfo(dt).min if np.dtype(dt).kind in "iu" else -1e300,
                        np.iinfo(dt).max if np.dtype(dt).kind in "iu" else 1e300).astype(dt)
                self._note("cloud_dtype")
            elif k == 4 and cols:  # a missing field
                cols.pop(str(r.choice(list(cols))))
                self._note("cloud_missing_field")
            else:  # shuffled field order (valid)
                names = list(cols)
                r.shuffle(names)
                cols = {c: cols[c] for c in names}
                self._note("cloud_order")
        msg = make_pointcloud2(self._header(frame), cols)
        if r.random() < 0.6:
            self._mutate_layout(msg)
        if r.random() < 0.4:
            self._mutate_header(msg.header)
        return msg

    def _mutate_layout(self, msg: PointCloud2) -> None:
        r = self.rng
        k = int(r.integers(14))
        if k == 0:
            msg.width = int(r.choice([0, msg.width + 1, max(msg.width - 1, 0), _U32,
                                      int(r.integers(0, 1000))]))
        elif k == 1:
            msg.height = int(r.choice([0, 2, 3, _U32, int(r.integers(0, 100))]))
        elif k == 2:
            msg.row_step = int(r.choice([0, 1, msg.row_step + 7, _U32, msg.point_step]))
        elif k == 3:
            msg.point_step = int(r.choice([0, 1, max(msg.point_step - 4, 0),
                                           msg.point_step + 4, _U32]))
        elif k == 4:
            msg.is_bigendian = True
        elif k == 5 and msg.fields:
            f = msg.fields[int(r.integers(len(msg.fields)))]
            f.datatype = int(r.integers(0, 256))
        elif k == 6 and msg.fields:
            f = msg.fields[int(r.integers(len(msg.fields)))]
            f.count = int(r.choice([0, 2, 3, _U32]))
        elif k == 7 and msg.fields:
            f = msg.fields[int(r.integers(len(msg.fields)))]
            f.offset = int(r.choice([msg.point_step, msg.point_step + 1, _U32, 1, 3]))
        elif k == 8 and msg.fields:  # a duplicated field name
            f = msg.fields[int(r.integers(len(msg.fields)))]
            msg.fields = list(msg.fields) + [PointField(name=f.name, offset=f.offset,
                                                        datatype=f.datatype, count=1)]
        elif k == 9 and msg.fields:
            f = msg.fields[int(r.integers(len(msg.fields)))]
            f.name = str(r.choice(["", " ", "x", "label", "\u00e9", "a" * 300]))
        elif k == 10:
            data = bytes(msg.data)
            msg.data = u8(data[:int(r.integers(0, len(data) + 1))])
        elif k == 11:
            msg.data = u8(bytes(msg.data) + r.bytes(int(r.integers(1, 64))))
        elif k == 12:
            msg.data = u8(r.bytes(len(msg.data)))  # garbage of the right size
        else:
            msg.fields = []
        self._note(f"layout{k}")

    # ----------------------------------------------------------------- images
    def _pixels(self, shape) -> np.ndarray:
        return self.rng.integers(0, 256, shape, dtype=np.uint8)

    def image(self, stamp: float | None = None, mutate: bool | None = None,
              frame_id: str = "cam_left") -> Image:
        """A bgr8 Image of FUZZ_CAMERA's size (mutated unless ``mutate`` is False)."""
        from av_perception.io.image_msgs import fill_image_msg

        r = self.rng
        stamp = self._stamp() if stamp is None else stamp
        if mutate is None:
            mutate = r.random() < self.mutate_p
        w, h = FUZZ_CAMERA.width, FUZZ_CAMERA.height
        msg = fill_image_msg(Image(), self._pixels((h, w, 3)), "bgr8", stamp=stamp,
                             frame_id=frame_id)
        msg.data = u8(msg.data)
        if not mutate:
            return msg
        k = int(r.integers(10))
        if k == 0:
            msg.encoding = str(r.choice(["", "32FC1", "16SC1", "bgr8 ", "BGR8", "jpeg",
                                         "mono8", "mono16", "rgba8", "bayer_rggb8", "yuv422",
                                         "yuyv", "uyvy", "bgra16", "8UC3", "rgb16"]))
        elif k == 1:
            msg.step = int(r.choice([0, 1, msg.step - 1, msg.step + 1, _U32, msg.width]))
        elif k == 2:
            msg.data = u8(bytes(msg.data)[:int(r.integers(0, len(msg.data)))])
        elif k == 3:
            msg.width, msg.height = (int(r.choice([0, 1, 2, 3, w + 1, _U32])),
                                     int(r.choice([0, 1, 2, h - 1, _U32])))
        elif k == 4:
            msg.is_bigendian = int(r.integers(1, 256))
        elif k == 5:  # another valid size/encoding (the calibration does not fit)
            ww, hh = int(r.integers(1, 40)), int(r.integers(1, 40))
            enc = str(r.choice(["mono8", "bgr8", "mono16", "yuv422", "bayer_grbg8",
                                "rgba8", "yuyv"]))
            from av_perception.io.image_msgs import _LAYOUT

            dt, ch = _LAYOUT[enc]
            ww += ww % 2 if ch == 2 else 0
            msg.width, msg.height, msg.encoding = ww, hh, enc
            msg.step = ww * ch * np.dtype(dt).itemsize
            msg.data = u8(r.bytes(msg.step * hh))
        elif k == 6:
            msg.data = u8(b"")
        elif k == 7:  # odd sizes in a 2-channel or Bayer encoding
            enc = str(r.choice(["yuv422", "uyvy", "yuyv", "yuv422_yuy2", "bayer_rggb8",
                                "bayer_bggr8"]))
            ch = 2 if "yu" in enc or "uy" in enc else 1
            ww, hh = int(r.choice([1, 3, 5])), int(r.choice([1, 2, 3]))
            msg.width, msg.height, msg.encoding, msg.step = ww, hh, enc, ww * ch
            msg.data = u8(r.bytes(ww * ch * hh))
        else:
            self._mutate_header(msg.header)
        self._note(f"image{k}")
        return msg

    def compressed(self, stamp: float | None = None, mutate: bool | None = None,
                   frame_id: str = "cam_left") -> CompressedImage:
        """A JPEG CompressedImage of FUZZ_CAMERA's size (mutated unless ``mutate`` is
        False)."""
        r = self.rng
        stamp = self._stamp() if stamp is None else stamp
        if mutate is None:
            mutate = r.random() < self.mutate_p
        w, h = FUZZ_CAMERA.width, FUZZ_CAMERA.height
        img = cv2.GaussianBlur(self._pixels((h, w, 3)), (5, 5), 2)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        msg = CompressedImage(header=Header(stamp=sec_to_time(stamp), frame_id=frame_id),
                              format="bgr8; jpeg compressed bgr8", data=u8(buf.tobytes()))
        if not mutate:
            return msg
        k = int(r.integers(9))
        data = bytes(msg.data)
        if k == 0:
            msg.data = u8(r.bytes(int(r.integers(0, 3000))))
        elif k == 1:
            msg.data = u8(data[:int(r.integers(0, len(data)))])
        elif k == 2:
            msg.data = u8(b"")
        elif k == 3:
            msg.format = str(r.choice(["", "png", "compressedDepth png", "tiff", "bgr8; jpeg",
                                       "rgb8; png compressed rgb8", "\u00e9"]))
        elif k == 4:  # bit errors
            b = bytearray(data)
            for i in r.integers(0, len(b), int(r.integers(1, 20))):
                b[i] = int(r.integers(256))
            msg.data = u8(b)
        elif k == 5:  # another size, grey or 16-bit PNG
            ww, hh = int(r.integers(1, 50)), int(r.integers(1, 50))
            arr = (r.integers(0, 65536, (hh, ww), dtype=np.uint16) if r.random() < 0.5
                   else self._pixels((hh, ww)))
            ok, b = cv2.imencode(".png", arr)
            msg.format, msg.data = "png", u8(b.tobytes())
        elif k == 6:  # a JPEG header announcing a huge image
            msg.data = u8(data[:2] + b"\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03" + data[12:200])
        elif k == 7:
            msg.data = u8(data + r.bytes(int(r.integers(1, 500))))
        else:
            self._mutate_header(msg.header)
        self._note(f"compressed{k}")
        return msg

    # ------------------------------------------------------------- camera info
    def infos(self, stamp: float | None = None, mutate: bool | None = None):
        """(left, right) CameraInfo of FUZZ_CAMERA (one of them mutated unless ``mutate``
        is False)."""
        r = self.rng
        stamp = self._stamp() if stamp is None else stamp
        fields = camera_info_fields(FUZZ_CAL, stamp, "cam_left")
        msgs = [fill_camera_info_msg(CameraInfo(), f) for f in fields]
        if mutate is None:
            mutate = r.random() < self.mutate_p
        if not mutate:
            return msgs
        m = msgs[int(r.integers(2))]
        for _ in range(int(r.integers(1, 3))):
            k = int(r.integers(10))
            if k <= 2:
                name = str(r.choice(["k", "p", "r"]))
                a = np.array(getattr(m, name), dtype=np.float64)
                sel = r.random(a.size) < r.uniform(0.1, 1.0)
                a[sel] = r.choice(_SPECIAL, int(sel.sum()))
                setattr(m, name, a)
                self._note(f"info_{name}")
            elif k == 3:
                m.k = np.zeros(9)
                m.p = np.zeros(12)
                self._note("info_zero")
            elif k == 4:
                m.width, m.height = (int(r.choice([0, 1, 95, 97, 4000, 100_000, _U32])),
                                     int(r.choice([0, 1, 71, 73, 3000, 100_000, _U32])))
                self._note("info_size")
            elif k == 5:
                n = int(r.choice([0, 1, 4, 5, 8, 12, 14, 100]))
                d = r.normal(0, 0.1, n)
                if n and r.random() < 0.5:
                    d[int(r.integers(n))] = r.choice(_SPECIAL)
                m.d = [float(v) for v in d]
                self._note("info_d")
            elif k == 6:
                m.distortion_model = str(r.choice(["", "equidistant", "rational_polynomial",
                                                   "fisheye", "nonsense"]))
                self._note("info_model")
            elif k == 7:
                msgs.reverse()
                self._note("info_swap")
            elif k == 8:  # distortion + a huge size (raw images to rectify)
                m.d = [0.1, -0.05, 0.0, 0.0, 0.0]
                m.width, m.height = int(r.choice([20000, 100_000])), int(r.choice([20000, 50_000]))
                self._note("info_huge_rectify")
            else:
                self._mutate_header(m.header)
                self._note("info_header")
        return msgs

    # ----------------------------------------------------------------- stream
    def message(self, kind: str):
        """One (possibly mutated) message of ``kind``: a single message, or for "info"
        a (left, right) pair."""
        if kind in ("features", "observations", "events", "speakers"):
            msg = self.cloud(kind)
        elif kind == "image":
            msg = self.image()
        elif kind == "compressed":
            msg = self.compressed()
        else:
            msg = self.infos()
        if self.rng.random() < 0.05 and kind in self._last:  # a duplicated message
            self._note("duplicate")
            return self._last[kind]
        self._last[kind] = msg
        return msg
