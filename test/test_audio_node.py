"""audio_features_node: in-process with rclpy, and as a separate process over DDS."""
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from av_perception.io.audio_sources import AudioChunk, write_wav
from av_perception.sim.signals import binauralize, noise_bursts

pytestmark = pytest.mark.ros
FS = 16000


def _wav(tmp_path, itd, name="in.wav", seconds=3.0):
    p = tmp_path / name
    write_wav(p, binauralize(noise_bursts(FS, seconds, seed=3), itd, FS), FS)
    return p


@pytest.fixture
def harness(node_harness):
    """``make(overrides)``: the node with those parameters, and listeners of its topics."""

    def make(overrides):
        from geometry_msgs.msg import Vector3Stamped
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import PointCloud2

        from av_perception.nodes.audio_features_node import AudioFeaturesNode

        node = AudioFeaturesNode(
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        h = node_harness(node, "test_listener")
        h.directions = h.listen(Vector3Stamped, "audio/direction", 50)
        h.clouds = h.listen(PointCloud2, "audio/features", 50)
        return h

    return make


def test_node_publishes_direction_and_features_from_a_file(harness, tmp_path):
    from av_perception.nodes.conversions import cloud_to_features

    itd = -2.2e-4  # sound from the right
    h = harness({"capture.input_file": str(_wav(tmp_path, itd))})
    assert h.spin_until(lambda: len(h.directions) > 50
                        and any(s.level == b"\x00" for s in h.statuses()))
    x = np.median([m.vector.x for m in h.directions])
    expected = itd * 343.0 / 0.15  # x = -sin(az) = -c*itd/d ... right is +x
    assert x == pytest.approx(-expected, abs=0.001)  # measured: 1e-5
    assert all(m.header.frame_id == "stereo_left_optical_frame" for m in h.directions)
    feats = [cloud_to_features(c) for c in h.clouds]
    stamps = np.concatenate([f["stamp"] for f in feats])
    assert np.all(np.diff(stamps) > 0)
    assert np.allclose(np.diff(stamps), 256 / FS, atol=1e-5)  # measured: 2e-7
    itds = np.concatenate([f["itd"] for f in feats])
    act = np.concatenate([f["activity"] for f in feats])
    assert np.nanmedian(itds[act > 0.5]) == pytest.approx(itd, abs=5e-7)  # measured: 5 ns
    ok = [s for s in h.statuses() if s.level == b"\x00"]
    assert ok, "no OK diagnostics"
    keys = {kv.key for kv in ok[-1].values}
    assert {"input_rate_hz", "frame_rate_hz", "overflows", "processing_ms_per_frame"} <= keys


def test_bad_input_is_reported_and_the_node_keeps_running(harness, tmp_path):
    mono = tmp_path / "mono.wav"
    write_wav(mono, np.zeros((FS, 1)), FS)
    h = harness({"capture.input_file": str(mono), "capture.reconnect_interval": 0.2})
    assert h.spin_until(lambda: any(s.level == b"\x02" and "1 channel" in s.message
                                    for s in h.statuses()))
    # a NaN chunk is refused with a diagnostic; processing goes on afterwards
    node = h.node
    bad = np.zeros((512, 2))
    bad[3, 0] = np.nan
    node.process_chunk(AudioChunk(bad, FS, 1.0))
    assert node.chunks_rejected == 1
    good = binauralize(noise_bursts(FS, 1.0, seed=9), 1e-4, FS)
    before = node.frames_published
    node.process_chunk(AudioChunk(good, FS, 2.0))
    assert node.frames_published > before
    # switching to a good file through a parameter recovers the stream
    from rclpy.parameter import Parameter

    res = node.set_parameters([Parameter("capture.input_file", value=str(_wav(tmp_path, 1e-4)))])
    assert res[0].successful
    n0 = len(h.directions)
    assert h.spin_until(lambda: len(h.directions) > n0 + 20)


@pytest.mark.parametrize("case", ["no_device", "missing_file", "mono_file", "not_wav"])
def test_input_that_cannot_open_stays_an_error_until_it_opens(harness, tmp_path, case):
    """Issue 16: the device is retried every capture.reconnect_interval; every status in
    between must stay ERROR with device_open=False (it alternated with OK)."""
    overrides = {"output.diagnostics_period": 0.2, "capture.reconnect_interval": 2.0}
    if case == "no_device":
        overrides["capture.device"] = "no such sound card 0815"
    elif case == "missing_file":
        overrides["capture.input_file"] = str(tmp_path / "missing.wav")
    elif case == "mono_file":
        write_wav(tmp_path / "mono.wav", np.zeros((FS, 1)), FS)
        overrides["capture.input_file"] = str(tmp_path / "mono.wav")
    else:
        (tmp_path / "text.wav").write_text("not a RIFF file")
        overrides["capture.input_file"] = str(tmp_path / "text.wav")
    h = harness(overrides)
    assert h.spin_until(lambda: len(h.statuses()) >= 12)  # spans several reconnect attempts
    st = h.statuses()
    assert [s.level for s in st] == [b"\x02"] * len(st), [(s.level, s.message) for s in st]
    assert all({kv.key: kv.value for kv in s.values}["device_open"] == "False" for s in st)
    assert all("audio input unavailable" in s.message for s in st)
    if case == "mono_file":
        # resolved when a good file is opened: the next statuses are OK again
        from rclpy.parameter import Parameter

        good = _wav(tmp_path, 1e-4)
        assert h.node.set_parameters([Parameter("capture.input_file", value=str(good))])[0] \
            .successful
        n = len(h.statuses())
        assert h.spin_until(lambda: any(s.level == b"\x00" for s in h.statuses()[n:]))


def test_parameters_are_declared_with_ranges_and_validated(harness, tmp_path):
    from rclpy.parameter import Parameter

    h = harness({"capture.input_file": str(_wav(tmp_path, 0.0, seconds=0.5))})
    node = h.node
    desc = node.describe_parameter("audio.frame_length")
    assert "Frame length" in desc.description
    assert desc.integer_range[0].from_value == 64 and desc.integer_range[0].to_value == 8192
    assert node.describe_parameter("audio.itd_margin").floating_point_range
    res = node.set_parameters([Parameter("audio.frame_length", value=10)])
    assert not res[0].successful
    res = node.set_parameters([Parameter("audio.hop_length", value=1024)])
    assert not res[0].successful and "audio.hop_length" in res[0].reason
    res = node.set_parameters([Parameter("audio.direct_path_weighting", value="magic")])
    assert not res[0].successful and "'coherence'" in res[0].reason
    res = node.set_parameters([Parameter("audio.frame_length", value=1024)])
    assert res[0].successful and node.audio.frame_length == 1024


def test_invalid_start_parameter_exits_with_a_message(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "av_perception.nodes.audio_features_node", "--ros-args",
         "-p", "audio.hop_length:=4096"], capture_output=True, text=True, timeout=60,
        env=os.environ.copy())
    assert out.returncode == 2
    assert "audio.hop_length" in out.stderr


@pytest.mark.slow
def test_node_in_a_separate_process_over_dds(ros_context, tmp_path):
    from geometry_msgs.msg import Vector3Stamped

    itd = 2.6e-4
    wav = _wav(tmp_path, itd, seconds=3.0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "av_perception.nodes.audio_features_node", "--ros-args",
         "-p", f"capture.input_file:={wav}", "-p", "capture.loop_input:=true",
         "-r", "__ns:=/dds_test"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    node = ros_context.create_node("dds_listener")
    got = []
    node.create_subscription(Vector3Stamped, "/dds_test/audio/direction", got.append, 50)
    try:
        end = time.monotonic() + 40
        while time.monotonic() < end and len(got) < 60:
            ros_context.spin_once(node, timeout_sec=0.05)
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[0]
        node.destroy_node()
    assert len(got) >= 60, log
    x = np.median([m.vector.x for m in got])
    assert x == pytest.approx(-itd * 343.0 / 0.15, abs=0.01)


def _tf_yaw(stamp, parent, child, yaw):
    """/tf message: ``child`` turned by ``yaw`` rad about its own vertical (optical -y)."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    from av_perception.nodes.conversions import sec_to_time

    t = TransformStamped(child_frame_id=child)
    t.header.frame_id = parent
    t.header.stamp = sec_to_time(stamp)
    t.transform.rotation.y = -math.sin(yaw / 2)
    t.transform.rotation.w = math.cos(yaw / 2)
    return TFMessage(transforms=[t])


def test_node_turns_its_precedence_memory_with_the_head_from_tf(harness):
    """output.fixed_frame: the node reads /tf and turns the front-end's precedence memory
    with the head (the rotation of output.frame_id at each chunk), giving the features
    that `process` computes (AudioPipeline with the same rotations); without the turns
    they differ.  Every frame is read from the memory (precedence_gate above 1), so that
    the turns show in every frame."""
    from tf2_msgs.msg import TFMessage

    from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig
    from av_perception.pipeline import AudioPipeline
    from av_perception.pipeline.audio import head_turn

    frame = "stereo_left_optical_frame"
    h = harness({"output.fixed_frame": "base_link", "audio.precedence_gate": 1.5})
    node = h.node
    pub = h.publisher(TFMessage, "/tf", 100)
    assert h.wait_for_subscribers(pub)

    def yaw(t):  # a pan of +-30 deg at up to 60 deg/s
        return math.radians(30) * math.sin(2.0 * t)

    stamps = np.arange(0.0, 2.05, 0.01)
    msg = TFMessage(transforms=[_tf_yaw(float(t), "base_link", frame, yaw(t)).transforms[0]
                                for t in stamps])  # one message: none dropped
    pub.publish(msg)
    assert h.spin_until(lambda: node.stage.poses.transforms >= len(stamps))
    poses = node.stage.poses
    assert head_turn(poses.rotation_at(0.0), poses.rotation_at(0.5)) == pytest.approx(
        yaw(0.5), abs=1e-6)
    samples = binauralize(noise_bursts(FS, 2.0, seed=3), 2.0e-4, FS)
    block = 512
    chunks = [AudioChunk(samples[i:i + block], FS, i / FS)
              for i in range(0, len(samples) - block, block)]
    got = np.concatenate([node.process_chunk(c).itd for c in chunks])
    ref_pipe = AudioPipeline(node.audio, node.stage.mics)
    plain_pipe = AudioPipeline(node.audio, node.stage.mics)
    ref, plain = [], []
    for c in chunks:
        ref_pipe.set_camera_rotation(poses.rotation_at(c.stamp))
        ref.append(ref_pipe.process_audio(c.samples, c.sample_rate, c.stamp).itd)
        plain.append(plain_pipe.process_audio(c.samples, c.sample_rate, c.stamp).itd)
    ref, plain = np.concatenate(ref), np.concatenate(plain)
    ok = np.isfinite(ref)
    assert ok.mean() > 0.5 and np.array_equal(np.isfinite(got), ok)
    assert np.allclose(got[ok], ref[ok], atol=1e-9)
    assert np.nanmax(np.abs(plain - ref)) > 2e-5  # the turns change the directions read
    assert node.stage.turned_chunks == len(chunks) and node.stage.unposed_chunks == 0
    assert isinstance(node.audio, AudioFrontEndConfig)
    assert isinstance(node.stage.mics, MicArrayConfig)
