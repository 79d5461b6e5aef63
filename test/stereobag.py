"""Rendered stereo pairs of faces at known 3D positions, and small stereo bags with
injected faults (corrupt JPEG, missing CameraInfo, size mismatch, stamp offsets)."""
from __future__ import annotations

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from av_perception.core.config import StereoCameraConfig
from av_perception.core.stereo import StereoCalibration
from av_perception.io.msgdefs import make_typestore
from av_perception.sim.stereo_heads import render_stereo_heads

CAMERA = StereoCameraConfig()  # 640x480, fx 500, B 0.12 m
CAL = StereoCalibration.from_config(CAMERA)
T0 = 1_700_000_000.0
#: two heads in front of the camera (m, left optical frame)
HEADS = np.array([[-0.45, -0.1, 1.8], [0.4, 0.05, 2.4]])


def astronaut_face() -> np.ndarray:
    """scikit-image's astronaut face: 1.1 x its Haar box (spans 0.16 m), BGR."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[..., ::-1])
    x, y, w, h = 177, 66, 95, 95
    s = 1.1 * w
    cx, cy = x + w / 2, y + h / 2
    return np.ascontiguousarray(
        img[int(cy - s / 2):int(cy + s / 2), int(cx - s / 2):int(cx + s / 2)])


def background() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.coffee()[..., ::-1])


def render(heads=HEADS, cal=CAL, seed=0, noise=1.5):
    """(left, right) BGR images of faces at ``heads`` over a photo plane at 6 m."""
    return render_stereo_heads(cal, heads, astronaut_face(), background(), 6.0,
                               noise_sigma=noise, rng=np.random.default_rng(seed))


def _time(T, t: float):
    ns = int(round(t * 1e9))
    return T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def write_stereo_bag(path, frames, camera: StereoCameraConfig = CAMERA, compressed=False,
                     storage="sqlite3", corrupt=(), right_offset=0.0, info_sides=("left", "right"),
                     info_from=0, resize_right=(), extra_image_topics=(), prefix="/stereo"):
    """Write ``frames`` [(left, right), ...] at 15 fps from T0.

    corrupt: frame indices whose left JPEG is truncated (compressed only);
    right_offset: added to the right image stamps (s);
    info_sides: which CameraInfo topics exist; info_from: first frame with CameraInfo;
    resize_right: frame indices whose right image is halved in size;
    extra_image_topics: additional (empty-of-messages) image topic names.
    """
    store = make_typestore()
    T = store.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    img_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    suffix = "/compressed" if compressed else ""
    cal = StereoCalibration.from_config(camera)
    infos = cal.camera_info()
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {s: w.add_connection(f"{prefix}/{s}/image_raw{suffix}", img_type, typestore=store)
                 for s in ("left", "right")}
        info_conns = {s: w.add_connection(f"{prefix}/{s}/camera_info",
                                          "sensor_msgs/msg/CameraInfo", typestore=store)
                      for s in info_sides}
        for name in extra_image_topics:
            w.add_connection(name, img_type, typestore=store)
        for k, (left, right) in enumerate(frames):
            t = T0 + k / 15.0
            for side, img, stamp in (("left", left, t), ("right", right, t + right_offset)):
                if side == "right" and k in resize_right:
                    img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2))
                header = T["std_msgs/msg/Header"](stamp=_time(T, stamp), frame_id=f"cam_{side}")
                if compressed:
                    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
                    data = buf.reshape(-1)
                    if side == "left" and k in corrupt:
                        data = data[: len(data) // 3].copy()
                        data[2:40] = 0  # wreck the header as well as cutting the data
                    msg = T[img_type](header=header, format="bgr8; jpeg compressed bgr8",
                                      data=data.astype(np.uint8))
                else:
                    h, wd = img.shape[:2]
                    msg = T[img_type](header=header, height=h, width=wd, encoding="bgr8",
                                      is_bigendian=0, step=3 * wd,
                                      data=np.ascontiguousarray(img).reshape(-1))
                ns = int(round(stamp * 1e9))
                w.write(conns[side], ns, store.serialize_cdr(msg, img_type))
                if side in info_conns and k >= info_from:
                    f = infos[0 if side == "left" else 1]
                    roi = T["sensor_msgs/msg/RegionOfInterest"](
                        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
                    info = T["sensor_msgs/msg/CameraInfo"](
                        header=T["std_msgs/msg/Header"](stamp=_time(T, stamp),
                                                        frame_id=f"cam_{side}"),
                        height=f["height"], width=f["width"], distortion_model="plumb_bob",
                        d=np.zeros(5), k=np.array(f["k"], float), r=np.array(f["r"], float),
                        p=np.array(f["p"], float), binning_x=0, binning_y=0, roi=roi)
                    w.write(info_conns[side], ns, store.serialize_cdr(
                        info, "sensor_msgs/msg/CameraInfo"))
