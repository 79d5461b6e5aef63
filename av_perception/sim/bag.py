"""rosbag2 output of the simulator (written with the ``rosbags`` library).

:class:`SimBagWriter` writes the stereo images (raw ``bgr8`` or JPEG), the rectified
pair's camera_info and ``/audio`` (``audio_common_msgs/msg/AudioStamped``, float32),
logged as a live capture would deliver them.  Topics and log times: docs/simulation.md,
"Outputs".
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from ..io.msgdefs import make_typestore
from ..io.stamps import ns_to_stamp

__all__ = ["SimBagWriter", "TOPICS", "right_frame_id", "camera_info_matrices"]

TOPICS = {
    "left_image": "/stereo/left/image_raw",
    "right_image": "/stereo/right/image_raw",
    "left_info": "/stereo/left/camera_info",
    "right_info": "/stereo/right/camera_info",
    "audio": "/audio",
    "tf": "/tf",
    "tf_static": "/tf_static",
}
PA_FLOAT32 = 1


def right_frame_id(left: str) -> str:
    """frame_id of the right camera derived from the left one's."""
    return left.replace("left", "right") if "left" in left else left + "_right"


def camera_info_matrices(cam, right: bool) -> dict:
    """K, R, P, D of a rectified stereo camera (``right`` adds P[0, 3] = -fx * B)."""
    k = np.array([cam.fx, 0, cam.cx, 0, cam.fy, cam.cy, 0, 0, 1], dtype=np.float64)
    p = np.array([cam.fx, 0, cam.cx, 0, 0, cam.fy, cam.cy, 0, 0, 0, 1, 0], dtype=np.float64)
    if right:
        p[3] = -cam.fx * cam.baseline
    return {"k": k, "r": np.eye(3).ravel(), "p": p, "d": np.zeros(5)}


def _stamp(types, ns: int):
    sec, nanosec = ns_to_stamp(ns)
    return types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


class SimBagWriter:
    """Writes the simulator's topics to a new rosbag2 directory.

    Parameters
    ----------
    path : path of the bag directory (must not exist).
    camera : StereoCameraConfig.
    storage : 'sqlite3' or 'mcap'.
    compressed : write JPEG CompressedImage instead of raw Image.
    jpeg_quality : 1..100.
    """

    def __init__(self, path, camera, storage: str = "sqlite3", compressed: bool = False,
                 jpeg_quality: int = 90, tf: bool = False):
        plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
        if storage not in plugins:
            raise ValueError(f"bag format must be 'sqlite3' or 'mcap', got {storage!r}")
        self.path = Path(path)
        self.cam = camera
        self.compressed = compressed
        self.jpeg_quality = int(jpeg_quality)
        self.store = make_typestore()
        self.types = self.store.types
        self.writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        self.frame_ids = (camera.frame_id, right_frame_id(camera.frame_id))
        self.tf = tf
        self.counts = {k: 0 for k in TOPICS if tf or not k.startswith("tf")}

    def __enter__(self):
        self.writer.open()
        img_type = ("sensor_msgs/msg/CompressedImage" if self.compressed
                    else "sensor_msgs/msg/Image")
        suffix = "/compressed" if self.compressed else ""
        add = self.writer.add_connection
        self.conns = {
            "left_image": add(TOPICS["left_image"] + suffix, img_type, typestore=self.store),
            "right_image": add(TOPICS["right_image"] + suffix, img_type, typestore=self.store),
            "left_info": add(TOPICS["left_info"], "sensor_msgs/msg/CameraInfo",
                             typestore=self.store),
            "right_info": add(TOPICS["right_info"], "sensor_msgs/msg/CameraInfo",
                              typestore=self.store),
            "audio": add(TOPICS["audio"], "audio_common_msgs/msg/AudioStamped",
                         typestore=self.store),
        }
        if self.tf:  # a moving head (sim.head_motion)
            for key in ("tf", "tf_static"):
                self.conns[key] = add(TOPICS[key], "tf2_msgs/msg/TFMessage", typestore=self.store)
        self.img_type = img_type
        return self

    def __exit__(self, *exc):
        self.writer.close()

    def _header(self, ns: int, frame_id: str):
        return self.types["std_msgs/msg/Header"](stamp=_stamp(self.types, ns), frame_id=frame_id)

    def _write(self, key: str, ns_log: int, msg, msgtype: str):
        self.writer.write(self.conns[key], int(ns_log), self.store.serialize_cdr(msg, msgtype))
        self.counts[key] += 1

    def write_frame(self, stamp_ns: int, left: np.ndarray, right: np.ndarray) -> None:
        """Both images (uint8 BGR) and both CameraInfo messages of one frame."""
        T = self.types
        for side, img in (("left", left), ("right", right)):
            fid = self.frame_ids[side == "right"]
            header = self._header(stamp_ns, fid)
            if self.compressed:
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                if not ok:
                    raise ValueError("JPEG encoding failed")
                msg = T["sensor_msgs/msg/CompressedImage"](
                    header=header, format="bgr8; jpeg compressed bgr8",
                    data=np.frombuffer(buf.tobytes(), np.uint8))
            else:
                h, w = img.shape[:2]
                msg = T["sensor_msgs/msg/Image"](
                    header=header, height=h, width=w, encoding="bgr8", is_bigendian=0,
                    step=3 * w, data=np.ascontiguousarray(img).reshape(-1))
            self._write(f"{side}_image", stamp_ns, msg, self.img_type)
            m = camera_info_matrices(self.cam, side == "right")
            roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                       do_rectify=False)
            info = T["sensor_msgs/msg/CameraInfo"](
                header=self._header(stamp_ns, fid), height=self.cam.height, width=self.cam.width,
                distortion_model="plumb_bob", d=m["d"], k=m["k"], r=m["r"], p=m["p"],
                binning_x=0, binning_y=0, roi=roi)
            self._write(f"{side}_info", stamp_ns, info, "sensor_msgs/msg/CameraInfo")

    def write_tf(self, stamp_ns: int, transforms, static: bool = False) -> None:
        """One TFMessage: transforms [(parent, child, translation (3,), quaternion (4,)
        x y z w)] at ``stamp_ns`` (on /tf_static when ``static``)."""
        T = self.types
        out = []
        for parent, child, tr, q in transforms:
            out.append(T["geometry_msgs/msg/TransformStamped"](
                header=self._header(stamp_ns, parent), child_frame_id=child,
                transform=T["geometry_msgs/msg/Transform"](
                    translation=T["geometry_msgs/msg/Vector3"](x=float(tr[0]), y=float(tr[1]),
                                                              z=float(tr[2])),
                    rotation=T["geometry_msgs/msg/Quaternion"](
                        x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))))
        key = "tf_static" if static else "tf"
        self._write(key, stamp_ns, T["tf2_msgs/msg/TFMessage"](transforms=out),
                    "tf2_msgs/msg/TFMessage")

    def write_audio(self, stamp_ns: int, samples: np.ndarray, rate: int) -> None:
        """One AudioStamped chunk: ``samples`` (m, 2) float32, stamp of the first sample."""
        T = self.types
        x = np.ascontiguousarray(samples, dtype=np.float32)
        m, ch = x.shape
        data = T["audio_common_msgs/msg/AudioData"](
            float32_data=x.reshape(-1), int32_data=np.zeros(0, np.int32),
            int16_data=np.zeros(0, np.int16), int8_data=np.zeros(0, np.int8),
            uint8_data=np.zeros(0, np.uint8))
        info = T["audio_common_msgs/msg/AudioInfo"](format=PA_FLOAT32, channels=ch, rate=int(rate),
                                                    chunk=m)
        msg = T["audio_common_msgs/msg/AudioStamped"](
            header=self._header(stamp_ns, self.cam.frame_id),
            audio=T["audio_common_msgs/msg/Audio"](audio_data=data, info=info))
        log_ns = stamp_ns + int(round(m * 1e9 / rate))
        self._write("audio", log_ns, msg, "audio_common_msgs/msg/AudioStamped")
