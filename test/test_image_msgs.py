"""Image / CompressedImage / CameraInfo conversions on rclpy and rosbags messages."""
import cv2
import numpy as np
import pytest
from conftest import require

from av_perception.core.config import StereoCameraConfig
from av_perception.core.stereo import CalibrationError, StereoCalibration
from av_perception.io.image_msgs import (
    ImageConversionError,
    camera_info_fields,
    camera_info_to_dict,
    compressed_image_to_numpy,
    fill_camera_info_msg,
    fill_image_msg,
    image_to_bgr,
    image_to_gray,
    image_to_numpy,
    message_to_bgr,
    numpy_to_compressed_fields,
    numpy_to_image_fields,
    read_camera_info_yaml,
    read_stereo_calibration_yaml,
    seconds_to_stamp,
    stamp_to_seconds,
    stereo_calibration_from_camera_info,
    stereo_pair_to_numpy,
)


@pytest.fixture(scope="module")
def ros():
    try:
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    except ImportError:
        Image = None
    require(Image is not None, "sensor_msgs (pip install -e .[ros])")
    return Image, CompressedImage, CameraInfo


@pytest.fixture(scope="module")
def store():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def bag_msg(store, name, fields):
    """A rosbags message built from our field dict, serialised to CDR and read back."""
    t = store.types
    h = fields["header"]
    header = t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](**h["stamp"]), frame_id=h["frame_id"])
    kw = {k: v for k, v in fields.items() if k != "header"}
    if name == "sensor_msgs/msg/CameraInfo":
        kw.update(binning_x=0, binning_y=0, roi=t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    msg = t[name](header=header, **kw)
    return store.deserialize_cdr(store.serialize_cdr(msg, name), name)


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[::2, ::2, ::-1])  # 256x256 BGR


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8", "mono8", "mono16",
                                      "bgr16", "8UC3"])
def test_round_trip_rosbags(store, photo, encoding):
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    arr = {
        "bgr8": photo, "8UC3": photo, "rgb8": photo[..., ::-1],
        "bgra8": cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA),
        "rgba8": cv2.cvtColor(photo, cv2.COLOR_BGR2RGBA),
        "mono8": grey, "mono16": grey.astype(np.uint16) * 257,
        "bgr16": photo.astype(np.uint16) * 257,
    }[encoding]
    fields = numpy_to_image_fields(arr, encoding, stamp=1700000000.25, frame_id="cam")
    msg = bag_msg(store, "sensor_msgs/msg/Image", fields)
    assert stamp_to_seconds(msg.header.stamp) == 1700000000.25
    assert stamp_to_seconds(msg.header) == 1700000000.25
    np.testing.assert_array_equal(image_to_numpy(msg), arr)
    bgr = image_to_bgr(msg)
    assert bgr.dtype == np.uint8 and bgr.shape == photo.shape
    if encoding.startswith(("mono",)):
        np.testing.assert_array_equal(bgr[..., 1], grey)
    else:
        np.testing.assert_array_equal(bgr, photo)
    np.testing.assert_array_equal(image_to_gray(msg), grey if encoding.startswith("mono")
                                  else cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))


def test_round_trip_rclpy(ros, photo):
    Image, _, _ = ros
    msg = fill_image_msg(Image(), photo, stamp=12.000000001, frame_id="stereo_left")
    assert msg.encoding == "bgr8" and msg.step == 256 * 3
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 1)
    np.testing.assert_array_equal(image_to_bgr(msg), photo)
    np.testing.assert_array_equal(message_to_bgr(msg), photo)
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    fill_image_msg(msg, grey)  # keeps the header
    assert msg.encoding == "mono8" and msg.header.frame_id == "stereo_left"
    np.testing.assert_array_equal(image_to_gray(msg), grey)


def test_padded_rows_and_big_endian(store):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 65535, (5, 7), dtype=np.uint16)
    be = arr.astype(">u2").tobytes()
    padded = np.zeros((5, 7 * 2 + 6), np.uint8)
    padded[:, :14] = np.frombuffer(be, np.uint8).reshape(5, 14)
    fields = {"header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": ""}, "height": 5,
              "width": 7, "encoding": "mono16", "is_bigendian": 1, "step": 20,
              "data": padded.reshape(-1)}
    msg = bag_msg(store, "sensor_msgs/msg/Image", fields)
    np.testing.assert_array_equal(image_to_numpy(msg), arr)
    np.testing.assert_array_equal(image_to_gray(msg), (arr >> 8).astype(np.uint8))


def test_bayer_and_yuv(store):
    b, g, r = 10, 100, 200
    mosaic = np.zeros((8, 8), np.uint8)
    mosaic[0::2, 0::2] = r  # RGGB
    mosaic[0::2, 1::2] = g
    mosaic[1::2, 0::2] = g
    mosaic[1::2, 1::2] = b
    f = numpy_to_image_fields(mosaic, "bayer_rggb8")
    out = image_to_bgr(bag_msg(store, "sensor_msgs/msg/Image", f))
    np.testing.assert_allclose(out[2:6, 2:6].reshape(-1, 3).mean(0), [b, g, r], atol=1)
    uyvy = np.full((4, 6, 2), 128, np.uint8)
    uyvy[..., 1] = 90  # Y
    f = numpy_to_image_fields(uyvy, "yuv422")
    out = image_to_bgr(bag_msg(store, "sensor_msgs/msg/Image", f))
    np.testing.assert_allclose(out, (90 - 16) * 255 / 219, atol=1)  # BT.601 video range


def test_image_errors(store, photo):
    f = numpy_to_image_fields(photo)
    f["encoding"] = "32FC1"
    with pytest.raises(ImageConversionError, match="'32FC1' is not supported.*bgr8"):
        image_to_bgr(bag_msg(store, "sensor_msgs/msg/Image", f))
    f = numpy_to_image_fields(photo)
    f["data"] = f["data"][:1000]
    with pytest.raises(ImageConversionError, match="truncated"):
        image_to_bgr(bag_msg(store, "sensor_msgs/msg/Image", f))
    f = numpy_to_image_fields(photo)
    f["step"] = 100
    with pytest.raises(ImageConversionError, match="step"):
        image_to_bgr(bag_msg(store, "sensor_msgs/msg/Image", f))
    with pytest.raises(ImageConversionError, match="needs a uint8 array with 3"):
        numpy_to_image_fields(photo[..., 0], "bgr8")
    with pytest.raises(ImageConversionError, match="cannot choose"):
        numpy_to_image_fields(photo.astype(np.float32))


def test_yuv422_of_odd_width_is_an_image_conversion_error(store):
    """Issue 16 fuzz: a YUV 4:2:2 image of odd width made OpenCV raise (cv2.error, an
    internal error of the visual node) instead of a named conversion error."""
    for enc in ("yuv422", "uyvy", "yuyv", "yuv422_yuy2"):
        f = numpy_to_image_fields(np.full((3, 4, 2), 128, np.uint8), enc)
        f.update(width=3, step=6, data=f["data"][:18])
        with pytest.raises(ImageConversionError, match="width must be even"):
            image_to_bgr(bag_msg(store, "sensor_msgs/msg/Image", f))


def test_compressed(store, ros, photo):
    _, CompressedImage, _ = ros
    f = numpy_to_compressed_fields(photo, "jpeg", 95, stamp=3.5, frame_id="cam")
    assert f["format"] == "bgr8; jpeg compressed bgr8"
    msg = bag_msg(store, "sensor_msgs/msg/CompressedImage", f)
    out = compressed_image_to_numpy(msg)
    assert out.shape == photo.shape and np.mean(np.abs(out.astype(float) - photo)) < 3.0
    assert message_to_bgr(msg).shape == photo.shape
    assert compressed_image_to_numpy(msg, "gray").shape == photo.shape[:2]
    png = numpy_to_compressed_fields(photo, "png")
    rc = CompressedImage()
    rc.format = png["format"]
    rc.data = png["data"].tobytes()
    np.testing.assert_array_equal(compressed_image_to_numpy(rc), photo)
    # errors
    broken = dict(f, data=f["data"][: len(f["data"]) // 2])
    with pytest.raises(ImageConversionError, match="JPEG.*corrupt or truncated"):
        compressed_image_to_numpy(bag_msg(store, "sensor_msgs/msg/CompressedImage", broken))
    with pytest.raises(ImageConversionError, match="empty"):
        compressed_image_to_numpy(bag_msg(store, "sensor_msgs/msg/CompressedImage",
                                          dict(f, data=np.zeros(0, np.uint8))))
    with pytest.raises(ImageConversionError, match="compressedDepth"):
        compressed_image_to_numpy(bag_msg(store, "sensor_msgs/msg/CompressedImage",
                                          dict(f, format="16UC1; compressedDepth")))
    with pytest.raises(ImageConversionError, match="JPEG or PNG"):
        compressed_image_to_numpy(bag_msg(store, "sensor_msgs/msg/CompressedImage",
                                          dict(f, format="tiff")))


def test_stereo_pair_size_mismatch(store, photo):
    left = bag_msg(store, "sensor_msgs/msg/Image", numpy_to_image_fields(photo))
    right = bag_msg(store, "sensor_msgs/msg/Image", numpy_to_image_fields(photo[:128]))
    with pytest.raises(ImageConversionError, match="left image is 256x256 but right is 256x128"):
        stereo_pair_to_numpy(left, right)
    jpg = bag_msg(store, "sensor_msgs/msg/CompressedImage", numpy_to_compressed_fields(photo))
    a, b = stereo_pair_to_numpy(left, jpg)
    assert a.shape == b.shape
    bad = numpy_to_image_fields(photo)
    bad["encoding"] = "weird"
    with pytest.raises(ImageConversionError, match="^right image: "):
        stereo_pair_to_numpy(left, bag_msg(store, "sensor_msgs/msg/Image", bad))


def test_camera_info_round_trip(store, ros):
    _, _, CameraInfo = ros
    cal = StereoCalibration(510.0, 512.0, 322.0, 241.0, 0.09, 640, 480, cx_right=318.0)
    lf, rf = camera_info_fields(cal, stamp=5.0, frame_id="stereo_left_optical_frame")
    # rclpy
    li = fill_camera_info_msg(CameraInfo(), lf)
    ri = fill_camera_info_msg(CameraInfo(), rf)
    back = stereo_calibration_from_camera_info(li, ri, image_size=(640, 480))
    for name in ("fx", "fy", "cx", "cy", "cx_right", "baseline", "width", "height"):
        assert getattr(back, name) == pytest.approx(getattr(cal, name)), name
    assert not back.needs_rectification
    # rosbags
    lb = bag_msg(store, "sensor_msgs/msg/CameraInfo", lf)
    rb = bag_msg(store, "sensor_msgs/msg/CameraInfo", rf)
    back = stereo_calibration_from_camera_info(lb, rb)
    assert back.baseline == pytest.approx(0.09)
    assert camera_info_to_dict(lb)["p"].shape == (12,)


def test_camera_info_errors(store, ros):
    _, _, CameraInfo = ros
    cal = StereoCalibration.from_config(StereoCameraConfig())
    lf, rf = camera_info_fields(cal)
    li = fill_camera_info_msg(CameraInfo(), lf)
    ri = fill_camera_info_msg(CameraInfo(), rf)
    with pytest.raises(CalibrationError, match="no camera_info for the right camera"):
        stereo_calibration_from_camera_info(li, None)
    with pytest.raises(CalibrationError, match="images are 320x240"):
        stereo_calibration_from_camera_info(li, ri, image_size=(320, 240))
    small = fill_camera_info_msg(CameraInfo(), dict(rf, width=320, height=240))
    with pytest.raises(CalibrationError, match="same resolution"):
        stereo_calibration_from_camera_info(li, small)
    p = np.array(rf["p"], dtype=float)
    p[5] = 530.0  # right fy differs: not a rectified pair
    with pytest.raises(CalibrationError, match="rectified"):
        stereo_calibration_from_camera_info(li, fill_camera_info_msg(CameraInfo(), dict(rf, p=p)))
    with pytest.raises(CalibrationError, match="swapped"):
        stereo_calibration_from_camera_info(ri, li)
    empty = CameraInfo()  # uncalibrated driver: zeros everywhere
    with pytest.raises(CalibrationError, match="not calibrated"):
        stereo_calibration_from_camera_info(empty, empty)


RIG = {
    "K1": np.array([[520.0, 0, 318.0], [0, 522.0, 243.0], [0, 0, 1]]),
    "D1": np.array([[-0.12, 0.05, 0.001, -0.0005, 0.0]]),
    "K2": np.array([[515.0, 0, 325.0], [0, 517.0, 238.0], [0, 0, 1]]),
    "D2": np.array([[-0.10, 0.04, -0.001, 0.0008, 0.0]]),
    "R": cv2.Rodrigues(np.array([0.01, -0.02, 0.005]))[0],
    "T": np.array([[-120.0], [2.0], [1.0]]),  # millimetres
}


def write_fs(path, values, size=True, size_as_seq=False):
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    for k, v in values.items():
        fs.write(k, v)
    if size and size_as_seq:
        fs.write("image_size", np.array([[640, 480]], dtype=np.int32))
    elif size:
        fs.write("image_width", 640)
        fs.write("image_height", 480)
    fs.release()


def test_read_stereo_calibration_yaml(tmp_path):
    path = tmp_path / "stereo.yaml"
    write_fs(path, RIG)
    cal = read_stereo_calibration_yaml(path, translation_scale=0.001)
    ref = StereoCalibration.from_opencv_stereo(RIG["K1"], RIG["D1"], RIG["K2"], RIG["D2"],
                                               RIG["R"], RIG["T"] / 1000, (640, 480))
    assert cal.needs_rectification and cal.image_size == (640, 480)
    for name in ("fx", "cx", "cy", "baseline"):
        assert getattr(cal, name) == pytest.approx(getattr(ref, name)), name
    np.testing.assert_allclose(cal.rotation, ref.rotation)
    with pytest.raises(CalibrationError, match="translation_scale"):
        read_stereo_calibration_yaml(path)
    # alternative names and size as a sequence
    alt = tmp_path / "alt.yaml"
    write_fs(alt, {("M1" if k == "K1" else k): v for k, v in RIG.items()}, size_as_seq=True)
    assert read_stereo_calibration_yaml(alt, 0.001).baseline == pytest.approx(cal.baseline)


def test_read_stereo_calibration_yaml_errors(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        read_stereo_calibration_yaml(tmp_path / "none.yaml")
    path = tmp_path / "nok2.yaml"
    write_fs(path, {k: v for k, v in RIG.items() if k != "K2"})
    with pytest.raises(CalibrationError, match="lacks K2.*cameraMatrix2"):
        read_stereo_calibration_yaml(path)
    path = tmp_path / "nosize.yaml"
    write_fs(path, RIG, size=False)
    with pytest.raises(CalibrationError, match="image size"):
        read_stereo_calibration_yaml(path)
    path = tmp_path / "garbage.yaml"
    path.write_text("%YAML:1.0\n---\nK1: [1, 2\n")
    with pytest.raises(CalibrationError, match="garbage.yaml"):
        read_stereo_calibration_yaml(path)


def test_read_camera_info_yaml(tmp_path):
    import yaml

    cal = StereoCalibration(505.0, 505.0, 320.5, 240.5, 0.11, 640, 480)
    paths = []
    for side, f in zip(("left", "right"), cal.camera_info()):
        doc = {"image_width": 640, "image_height": 480, "camera_name": side,
               "distortion_model": "plumb_bob",
               "camera_matrix": {"rows": 3, "cols": 3, "data": f["k"]},
               "distortion_coefficients": {"rows": 1, "cols": 5, "data": f["d"]},
               "rectification_matrix": {"rows": 3, "cols": 3, "data": f["r"]},
               "projection_matrix": {"rows": 3, "cols": 4, "data": f["p"]}}
        paths.append(tmp_path / f"{side}.yaml")
        paths[-1].write_text(yaml.safe_dump(doc))
    back = StereoCalibration.from_camera_info(*(read_camera_info_yaml(p) for p in paths))
    assert back.baseline == pytest.approx(0.11) and back.fx == 505.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_width: 640\n")
    with pytest.raises(CalibrationError, match="image_height"):
        read_camera_info_yaml(bad)


def test_stamps():
    assert seconds_to_stamp(1.5) == (1, 500000000)
    assert seconds_to_stamp(1699999999.999999999) == (1700000000, 0)
    with pytest.raises(ValueError):
        seconds_to_stamp(float("inf"))
