"""Stereo sources: approximate-time pairing, rosbag2 pairs (simulated and with injected
faults), OpenCV capture of a side-by-side video file and of two files."""
import json

import cv2
import numpy as np
import pytest
from stereobag import CAL, CAMERA, HEADS, T0, render, write_stereo_bag

from av_perception.core.config import ConfigError, StereoCameraConfig
from av_perception.core.vision import VisualFrontEnd
from av_perception.io.bag import BagError
from av_perception.io.stereo_sources import (
    ApproximateTimeSync,
    BagStereoSource,
    StereoSourceError,
    VideoCaptureStereoSource,
    VisionInputConfig,
    detect_stereo_topics,
)
from av_perception.sim import make_scene, simulate


# ---------------------------------------------------------------------------
# ApproximateTimeSync
# ---------------------------------------------------------------------------
def test_sync_pairs_equal_and_jittered_stamps():
    s = ApproximateTimeSync(slop=0.01)
    assert s.add("left", 1.0, "L0") == []
    assert s.add("right", 1.0, "R0") == [(1.0, "L0", "R0")]
    assert s.add("right", 1.071, "R1") == []
    assert s.add(0, 1.066, "L1") == [(1.066, "L1", "R1")]
    assert s.pairs == 2 and s.failures == 0
    assert s.last_pair_offset == pytest.approx(0.005)


def test_sync_handles_one_camera_lagging_behind():
    s = ApproximateTimeSync(slop=0.005, queue_size=10)
    stamps = [k / 15 for k in range(6)]
    for k, t in enumerate(stamps):  # the left camera delivers six frames first
        assert s.add("left", t, f"L{k}") == []
    got = []
    for k in range(6):  # then the right ones (each topic arrives in stamp order)
        got += s.add("right", stamps[k] + 0.001, f"R{k}")
    assert [(a, b) for _, a, b in got] == [(f"L{k}", f"R{k}") for k in range(6)]
    assert s.failures == 0 and s.queued("left") == s.queued("right") == 0


def test_sync_drops_frames_without_partner_and_counts_them():
    s = ApproximateTimeSync(slop=0.01)
    pairs = []
    for k in range(10):
        t = k / 15
        pairs += s.add("left", t, k)
        if k not in (3, 7):  # the right camera loses two frames
            pairs += s.add("right", t + 0.002, k)
    assert [a for _, a, _ in pairs] == [k for k in range(10) if k not in (3, 7)]
    assert all(a == b for _, a, b in pairs)
    assert s.unpaired == [2, 0] and s.failures == 2
    assert s.last_unpaired_offset == pytest.approx(1 / 15 + 0.002, abs=1e-9)


def test_sync_unsynchronised_cameras_fail_and_the_closer_partner_wins():
    s = ApproximateTimeSync(slop=0.01)
    for k in range(5):
        assert s.add("left", k / 15, k) == []
        assert s.add("right", k / 15 + 0.03, k) == []
    assert s.pairs == 0 and s.unpaired[0] == 5
    s = ApproximateTimeSync(slop=0.05)  # slop too large: the nearest stamp must win
    s.add("left", 0.0, "L0")
    s.add("left", 0.04, "L1")
    assert s.add("right", 0.035, "R") == [(0.04, "L1", "R")]
    assert s.unpaired == [1, 0]


def test_sync_bounded_queue_when_one_camera_is_silent():
    s = ApproximateTimeSync(slop=0.01, queue_size=4)
    for k in range(10):
        s.add("left", k / 15, k)
    assert s.queued("left") == 4 and s.overflows == 6 and s.unpaired == [6, 0]
    assert s.add("right", 9 / 15, "R") == [(9 / 15, 9, "R")]
    assert s.flush() == 0 and s.unpaired == [9, 0]  # 6, 7, 8 dropped on the way
    s.add("right", 5.0, "x")
    assert s.flush() == 1 and s.unpaired == [9, 1]


def test_sync_rejects_bad_arguments():
    with pytest.raises(ValueError, match="slop"):
        ApproximateTimeSync(slop=-1)
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateTimeSync(queue_size=0)
    s = ApproximateTimeSync()
    with pytest.raises(ValueError, match="side"):
        s.add("middle", 0.0, None)
    with pytest.raises(ValueError, match="finite"):
        s.add("left", float("nan"), None)


def test_vision_input_config_validation():
    assert VisionInputConfig().rectified_flag is None
    assert VisionInputConfig(images_rectified="raw").rectified_flag is False
    with pytest.raises(ConfigError, match="vision_input.slop"):
        VisionInputConfig(slop=-0.1)
    with pytest.raises(ConfigError, match="four different topics"):
        VisionInputConfig(right_image_topic="stereo/left/image_raw")
    with pytest.raises(ConfigError, match="left_info_topic"):
        VisionInputConfig(left_info_topic=" ")


# ---------------------------------------------------------------------------
# Bags from the simulator
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["raw", "compressed"])
def sim_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / request.param
    compressed = request.param == "compressed"
    scene = make_scene("two_static", seed=3, duration=1.0 if not compressed else 2.0)
    simulate(scene, out, compressed=compressed, storage="mcap" if compressed else "sqlite3")
    truth = [json.loads(line) for line in (out / "ground_truth.jsonl").read_text().splitlines()]
    return request.param, scene, out, truth


def test_bag_source_pairs_every_simulated_frame(sim_run):
    kind, scene, out, truth = sim_run
    with BagStereoSource(out / "bag") as src:
        suffix = "/compressed" if kind == "compressed" else ""
        assert src.topics.left_image == "/stereo/left/image_raw" + suffix
        assert src.topics.right_image == "/stereo/right/image_raw" + suffix
        assert src.topics.left_info == "/stereo/left/camera_info"
        frames = list(src)
        assert src.errors == [] and src.unpaired == (0, 0) and src.frames_skipped == 0
        assert src.frame_id == scene.robot.camera.frame_id
    assert len(frames) == len(truth) == scene.n_frames
    cam = scene.robot.camera
    for frame, rec in zip(frames, truth):
        stamp, left, right, cal = frame
        assert stamp == pytest.approx(rec["stamp"], abs=1e-6)
        assert left.shape == right.shape == (cam.height, cam.width, 3)
        assert left.dtype == np.uint8
        assert cal.baseline == pytest.approx(cam.baseline) and cal.fx == cam.fx
        assert not cal.needs_rectification
    assert len({id(f.calibration) for f in frames}) == 1  # built once, reused
    # the visual front-end finds the simulated people where the ground truth has them
    fe = VisualFrontEnd(calibration=frames[0].calibration)
    for frame, rec in list(zip(frames, truth))[:4]:
        obs = fe.process(frame.left, frame.right, frame.stamp)
        people = np.array([[p["x"], p["y"], p["z"]] for p in rec["people"] if p["visible"]])
        assert len(obs) == len(people) == 2
        err = np.linalg.norm(obs.xyz[:, None] - people[None], axis=2).min(axis=1)
        assert np.all(err < 0.03), err  # measured: at most 16 mm


@pytest.mark.timeout(120)
def test_bag_messages_equal_the_deserialised_bytes(sim_run):
    """BagReader hands rosbags' CDR reader a view of each payload (no copy): every message
    of a simulated bag (images, compressed images, camera infos, audio, whichever the
    storage) equals the deserialisation of its bytes, field by field."""
    from av_perception.io.bag import BagReader

    def same(a, b):
        if hasattr(a, "__dataclass_fields__"):
            return type(a) is type(b) and all(same(getattr(a, f), getattr(b, f))
                                              for f in a.__dataclass_fields__)
        if isinstance(a, np.ndarray):
            return a.dtype == b.dtype and np.array_equal(a, b)
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return type(a) is type(b) and a == b

    kind, scene, out, truth = sim_run
    with BagReader(out / "bag") as bag:
        got = list(bag.messages())
        raw = list(bag._reader.messages(connections=list(bag._reader.connections)))
        assert len(got) == len(raw) > 10
        types = set()
        for m, (conn, t, data) in zip(got, raw):
            assert (m.topic, m.log_time) == (conn.topic, t)
            assert same(m.msg, bag._reader.deserialize(bytes(data), conn.msgtype))
            types.add(m.msgtype)
    assert {"sensor_msgs/msg/CameraInfo", "audio_common_msgs/msg/AudioStamped"} <= types


def test_bag_source_start_and_duration(sim_run):
    kind, scene, out, truth = sim_run
    with BagStereoSource(out / "bag", start=0.2, duration=0.4) as src:
        stamps = [f.stamp for f in src]
    assert stamps[0] == pytest.approx(T0 + 0.2, abs=1 / 15)
    assert stamps[-1] - stamps[0] == pytest.approx(0.4, abs=1.01 / 15)
    assert np.all(np.diff(stamps) > 0)
    with pytest.raises(ValueError, match="duration"):
        BagStereoSource(out / "bag", duration=0)


# ---------------------------------------------------------------------------
# Bags with injected faults
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pairs():
    return [render(HEADS + [0.01 * k, 0, 0], seed=k) for k in range(5)]


def test_corrupt_jpeg_frame_is_skipped_with_an_error(tmp_path, pairs):
    bag = tmp_path / "bag"
    write_stereo_bag(bag, pairs, compressed=True, storage="mcap", corrupt={2})
    with BagStereoSource(bag) as src:
        frames = list(src)
    assert [round((f.stamp - T0) * 15) for f in frames] == [0, 1, 3, 4]
    assert src.frames_skipped == 1 and len(src.errors) == 1
    err = src.errors[0]
    assert f"{T0 + 2 / 15:.3f}" in err and "left image" in err
    assert "corrupt or truncated" in err


def test_missing_camera_info_topic_is_a_clear_error(tmp_path, pairs):
    bag = tmp_path / "bag"
    write_stereo_bag(bag, pairs[:2], info_sides=("left",))
    with pytest.raises(BagError) as e:
        BagStereoSource(bag)
    msg = str(e.value)
    assert "no CameraInfo topic for the right camera" in msg and "--right-info" in msg
    assert "/stereo/left/camera_info [sensor_msgs/msg/CameraInfo]" in msg  # lists the topics
    # a calibration from the configuration replaces the missing CameraInfo
    with BagStereoSource(bag, calibration=CAMERA) as src:
        assert len(list(src)) == 2 and src.errors == []


def test_pairs_before_the_first_camera_info_are_skipped(tmp_path, pairs):
    bag = tmp_path / "bag"
    write_stereo_bag(bag, pairs, info_from=2)
    with BagStereoSource(bag) as src:
        frames = list(src)
    assert len(frames) == 3 and src.frames_skipped == 2
    assert "no CameraInfo on /stereo/left/camera_info" in src.errors[0]
    assert "no CameraInfo on /stereo/right/camera_info" in src.errors[1]
    assert "record the camera_info topics" in src.errors[0]


def test_size_mismatch_and_unsynchronised_stamps(tmp_path, pairs):
    bag = tmp_path / "bag"
    write_stereo_bag(bag, pairs, resize_right={1})
    with BagStereoSource(bag) as src:
        assert len(list(src)) == 4
    assert len(src.errors) == 1 and "same resolution" in src.errors[0]
    bag2 = tmp_path / "bag2"
    write_stereo_bag(bag2, pairs, right_offset=0.03)
    with BagStereoSource(bag2, slop=0.01) as src:
        assert list(src) == []
        assert src.unpaired == (5, 5)
    with BagStereoSource(bag2, slop=0.031) as src:
        assert len(list(src)) == 5


def test_inconsistent_camera_info_is_reported_per_frame(tmp_path, pairs):
    bag = tmp_path / "bag"
    write_stereo_bag(bag, pairs[:2], camera=StereoCameraConfig(width=320, height=240))
    with BagStereoSource(bag) as src:
        assert list(src) == []
    assert len(src.errors) == 2
    assert "camera_info is for 320x240 images but the images are 640x480" in src.errors[0]


def test_topic_detection_errors_list_the_bag(tmp_path, pairs):
    bag = tmp_path / "bag"
    write_stereo_bag(bag, pairs[:1], prefix="/cam", extra_image_topics=["/cam2/left/image"])
    with pytest.raises(BagError, match="several left image topics") as e:
        BagStereoSource(bag)
    assert "/cam/left/image_raw" in str(e.value) and "--left-topic" in str(e.value)
    with BagStereoSource(bag, left_topic="/cam/left/image_raw") as src:
        assert src.topics.right_image == "/cam/right/image_raw"
        assert src.topics.right_info == "/cam/right/camera_info"
        assert len(list(src)) == 1
    with pytest.raises(BagError, match="/nope is not in the bag.*the bag has: /cam"):
        BagStereoSource(bag, left_topic="/nope")
    with pytest.raises(BagError, match="has type sensor_msgs/msg/CameraInfo"):
        BagStereoSource(bag, left_topic="/cam/left/camera_info")
    with pytest.raises(BagError, match="no left image topic"):
        detect_stereo_topics({"/audio": "audio_common_msgs/msg/AudioStamped"})
    with pytest.raises(BagError, match="does not exist"):
        BagStereoSource(tmp_path / "missing")


# ---------------------------------------------------------------------------
# OpenCV VideoCapture
# ---------------------------------------------------------------------------
def _write_video(path, frames, fps=15.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def test_side_by_side_video_file_as_device(tmp_path, pairs):
    video = tmp_path / "sbs.avi"
    _write_video(video, [np.hstack(p) for p in pairs[:3]])
    with VideoCaptureStereoSource(str(video), calibration=CAMERA, clock=lambda: 100.0) as src:
        frames = list(src)
        assert src.side_by_side and "side by side" in src.device_name
    assert len(frames) == 3 and src.errors == []
    assert [f.stamp for f in frames] == pytest.approx([100.0, 100.0 + 1 / 15, 100.0 + 2 / 15])
    for f, (left, right) in zip(frames, pairs):
        assert f.left.shape == f.right.shape == (480, 640, 3)
        assert np.mean(np.abs(f.left.astype(float) - left)) < 4.0  # MJPG is lossy
        assert np.mean(np.abs(f.right.astype(float) - right)) < 4.0
    fe = VisualFrontEnd(calibration=frames[0].calibration)
    obs = fe.process(frames[0].left, frames[0].right, frames[0].stamp)
    assert len(obs) == 2
    err = np.linalg.norm(obs.xyz[:, None] - HEADS[None], axis=2).min(axis=1)
    assert np.all(err < 0.05), err


def test_two_video_files_as_two_devices(tmp_path, pairs):
    _write_video(tmp_path / "l.avi", [p[0] for p in pairs[:2]])
    _write_video(tmp_path / "r.avi", [p[1] for p in pairs[:2]])
    src = VideoCaptureStereoSource(str(tmp_path / "l.avi"), str(tmp_path / "r.avi"), CAL,
                                   frame_id="cam")
    frames = list(src)
    src.close()
    assert len(frames) == 2 and not src.side_by_side and src.frame_id == "cam"
    assert np.mean(np.abs(frames[1].right.astype(float) - pairs[1][1])) < 4.0
    assert frames[0].calibration is CAL


def test_video_capture_errors_are_clear(tmp_path, pairs):
    with pytest.raises(StereoSourceError, match="cannot open video device"):
        VideoCaptureStereoSource(str(tmp_path / "none.avi")).open()
    video = tmp_path / "sbs.avi"
    _write_video(video, [np.hstack(p) for p in pairs[:3]])
    small = StereoCameraConfig(width=320, height=240, cx=159.5, cy=119.5)
    src = VideoCaptureStereoSource(str(video), calibration=small, max_consecutive_errors=2)
    with pytest.raises(StereoSourceError, match="2 consecutive unusable frames.*320x240"):
        list(src)
    assert src.frames_skipped == 2 and "calibration is for 320x240" in src.errors[0]
    src.close()


def test_sync_recovers_when_images_stamped_far_ahead_fill_a_queue():
    """Issue 16 fuzz: right images stamped at the end of ROS time filled the right queue;
    every later left image then looked too old next to them (dropped) and every later
    right image was the oldest of a full queue (dropped): the node never paired again.
    An item stamped more than JUMP_BACK s before its side's newest queued one now empties
    the queues, and pairing resumes at the next frame."""
    s = ApproximateTimeSync(slop=0.01, queue_size=10)
    for k in range(10):
        assert s.add("right", 2.0 ** 31 + k, k) == []
    pairs = []
    for k in range(5):
        t = 100.0 + k / 15
        pairs += s.add("left", t, ("L", k))
        pairs += s.add("right", t, ("R", k))
    assert s.jumps_back == 1
    assert [(p[1][1], p[2][1]) for p in pairs] == [(k, k) for k in range(1, 5)]
    assert s.unpaired[1] >= 10  # the stale right images, counted as sync failures
