"""av_fusion_node: in-process with rclpy, and as a separate process over DDS.

A synthetic scene: a speaker at SPEAKER and a silent person at SILENT, seen by
the stereo front-end at 15 fps (noisy 3D points) and heard at 62.5 audio frames
per second (ITDs of the speaker, some reverberant clutter, silence), published as
the clouds the two front-end nodes publish.
"""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from av_perception.core.geometry import MicGeometry

pytestmark = pytest.mark.ros

SPEAKER = np.array([0.5, -0.2, 2.0])
SILENT = np.array([-0.6, -0.3, 2.6])
T0 = 1000.0
FPS = 15.0
HOP = 256 / 16000  # audio frame period
FRAME = "cam_left_optical"
GEO = MicGeometry([-0.075, 0.0, 0.0], [0.075, 0.0, 0.0])


def _header(stamp, frame_id=FRAME):
    from std_msgs.msg import Header

    from av_perception.nodes.conversions import sec_to_time

    return Header(stamp=sec_to_time(stamp), frame_id=frame_id)


def observation_cloud(stamp, rng, people=(SPEAKER, SILENT), frame_id=FRAME):
    from av_perception.nodes.conversions import make_pointcloud2

    pts = np.array([p + rng.normal(0, [0.01, 0.01, 0.02]) for p in people]).reshape(-1, 3)
    n = len(pts)
    f32 = np.float32
    return make_pointcloud2(_header(stamp, frame_id), {
        "x": pts[:, 0].astype(f32), "y": pts[:, 1].astype(f32), "z": pts[:, 2].astype(f32),
        "weight": np.full(n, 0.9, f32), "u": np.zeros(n, f32), "v": np.zeros(n, f32),
        "w": np.full(n, 40, f32), "h": np.full(n, 40, f32), "var_x": np.full(n, 1e-4, f32),
        "var_y": np.full(n, 1e-4, f32), "var_z": np.full(n, 4e-4, f32)})


def feature_cloud(stamp0, n, rng, speaking=True):
    """``audio/features`` cloud of n frames from stamp0 (as audio_features_node sends)."""
    from av_perception.nodes.conversions import make_pointcloud2

    itd0 = float(GEO.itd(SPEAKER[None])[0])
    u = rng.random(n)
    itd = np.where(u < 0.75, itd0 + rng.normal(0, 1.5e-5, n), rng.uniform(-4.5e-4, 4.5e-4, n))
    act = np.where(u < 0.75, 0.9, 0.15) if speaking else np.full(n, 0.01)
    f32 = np.float32
    return make_pointcloud2(_header(stamp0, "mics"), {
        "t_offset": (np.arange(n) * HOP).astype(f32), "itd": itd.astype(f32),
        "ild": np.zeros(n, f32), "activity": act.astype(f32),
        "reliability": np.full(n, 0.8, f32), "azimuth": np.zeros(n, f32),
        "direct_path": np.full(n, 0.7, f32)})


class Stream:
    """Yields the scene's messages in publication order: (topic, msg)."""

    def __init__(self, t0=T0, seed=0):
        self.rng = np.random.default_rng(seed)
        self.t_audio = t0
        self.t_video = t0

    def until(self, t_end):
        out = []
        while self.t_video < t_end:
            out.append(("visual/observations", observation_cloud(self.t_video, self.rng)))
            self.t_video += 1.0 / FPS
            while self.t_audio + 4 * HOP <= self.t_video:
                out.append(("audio/features", feature_cloud(self.t_audio, 4, self.rng)))
                self.t_audio += 4 * HOP
        return out


@pytest.fixture
def harness(node_harness):
    """``make(overrides)``: the node, publishers of its inputs and a listener of av_events;
    ``h.publish(messages)`` returns once the node has taken them and every window it
    published has arrived."""

    def make(overrides=None):
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import PointCloud2

        from av_perception.nodes.av_fusion_node import AVFusionNode

        node = AVFusionNode(parameter_overrides=[Parameter(k, value=v)
                                                 for k, v in (overrides or {}).items()])
        h = node_harness(node, "fusion_test_peer")
        h.pubs = {t: h.publisher(PointCloud2, t) for t in ("audio/features",
                                                              "visual/observations")}
        h.events = h.listen(PointCloud2, "av_events")

        def taken():
            return node.rates["audio_msgs"].total + node.rates["visual"].total

        def publish(messages, timeout=30.0):
            for topic, msg in messages:  # one at a time: none lost from the queue
                n = taken() + 1
                h.pubs[topic].publish(msg)
                assert h.spin_until(lambda n=n: taken() >= n, timeout)
            assert h.spin_until(lambda: len(h.events) == node.windows_published, timeout)

        h.publish = publish
        return h

    return make


def _values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


def _events(msg):
    from av_perception.nodes.conversions import read_pointcloud2, time_to_sec

    return time_to_sec(msg.header.stamp), read_pointcloud2(msg)


def test_events_locate_people_and_the_speaker(harness):
    h = harness({"fusion_input.diagnostics_period": 0.5})
    stream = Stream()
    for k in range(1, 13):  # 4 s of data in 1/3 s batches
        h.publish(stream.until(T0 + k / 3))
    # a status published after the last window
    assert h.spin_until(lambda: h.statuses() and int(_values(h.statuses()[-1])[
        "windows_published"]) == len(h.events) and any(s.level == b"\x00"
                                                       for s in h.statuses()))
    assert len(h.events) >= 12
    stamps = np.array([_events(m)[0] for m in h.events])
    assert np.all(np.diff(stamps) > 0)
    assert np.allclose(np.diff(stamps), 0.25, atol=0.07)  # one window per hop of data time
    assert stamps[-1] <= stream.t_video
    assert all(m.header.frame_id == FRAME for m in h.events), [m.header.frame_id for m in h.events]
    fields = {f.name: f.datatype for f in h.events[-1].fields}
    from sensor_msgs.msg import PointField

    assert list(fields) == ["x", "y", "z", "audio_mass", "visual_mass", "var_x", "var_y",
                            "var_z", "out_of_view", "label", "spread_x", "spread_y", "spread_z"]
    assert fields["label"] == PointField.UINT32 and fields["x"] == PointField.FLOAT32
    # measured over these windows: 5-7 mm from the speaker, 3-9 mm from the silent person,
    # visual spread (x) 4.2e-4 m^2 at most, speaker's audio mass >= 30x the other's (or 1),
    # visual mass 13.5 (15 frames x weight 0.9), var_z <= 3.1e-5 m^2
    for msg in h.events[-6:]:
        _, ev = _events(msg)
        assert len(ev["x"]) == 2
        pos = np.column_stack([ev["x"], ev["y"], ev["z"]])
        d_spk = np.linalg.norm(pos - SPEAKER, axis=1)
        d_sil = np.linalg.norm(pos - SILENT, axis=1)
        i, j = int(np.argmin(d_spk)), int(np.argmin(d_sil))
        assert i != j and d_spk[i] < 0.012 and d_sil[j] < 0.015
        # static people: the visual spread is the observation noise (sigma 1 cm in x)
        assert np.all(ev["spread_x"] > 0) and np.all(ev["spread_x"] < 0.03 ** 2)
        assert ev["audio_mass"][i] > 20 * max(ev["audio_mass"][j], 1.0)
        assert ev["visual_mass"][i] > 12 and ev["visual_mass"][j] > 12
        assert np.all(ev["out_of_view"] == 0)
        assert np.all(ev["var_z"] > 0) and np.all(ev["var_z"] < 1e-4)
    labels = [tuple(sorted(_events(m)[1]["label"])) for m in h.events[-6:]]
    assert len(set(labels)) == 1  # identities kept across windows (warm start)
    ok = [s for s in h.statuses() if s.level == b"\x00"]
    assert ok, [s.message for s in h.statuses()]
    values = {kv.key: kv.value for kv in h.statuses()[-1].values}
    for key in ("audio_frame_rate_hz", "visual_rate_hz", "processing_ms_per_window",
                "events_per_window", "late_audio_frames_dropped", "late_visual_frames_dropped",
                "malformed_visual_messages", "buffer_overflow_dropped"):
        assert key in values
    assert int(values["windows_published"]) == len(h.events)
    assert h.node.pipeline.late_audio_frames == 0 and h.node.pipeline.late_visual_frames == 0


def test_audio_only_speaker_out_of_view(harness):
    """No camera: after max_input_delay the audio alone is clustered; the speaker is an
    out-of-view event on its ITD cone, in the default frame_id."""
    h = harness({"fusion_input.frame_id": "head"})
    rng = np.random.default_rng(1)
    msgs = [("audio/features", feature_cloud(T0 + k * 4 * HOP, 4, rng)) for k in range(50)]
    h.publish(msgs)
    assert len(h.events) >= 8
    assert h.events[-1].header.frame_id == "head"
    _, ev = _events(h.events[-1])
    # measured: audio mass 35.5, azimuth 0.008 rad off
    assert len(ev["x"]) == 1 and ev["out_of_view"][0] == 1.0 and ev["audio_mass"][0] > 30
    az = np.arctan2(ev["x"][0], ev["z"][0])
    assert az == pytest.approx(np.arctan2(SPEAKER[0], SPEAKER[2]), abs=0.02)


def test_bad_input_is_reported_and_the_node_keeps_running(harness):
    from av_perception.nodes.conversions import make_pointcloud2

    h = harness({"fusion_input.diagnostics_period": 0.3})
    stream = Stream()
    h.publish(stream.until(T0 + 1.5))
    n0 = len(h.events)
    assert n0 >= 2
    # a cloud without the visual fields, and an audio cloud with a NaN stamp offset
    h.publish([("visual/observations",
                make_pointcloud2(_header(T0 + 1.6), {"x": np.zeros(2, np.float32)}))])
    bad_audio = feature_cloud(T0 + 1.6, 4, np.random.default_rng(2))
    from av_perception.nodes.conversions import read_pointcloud2

    fields = read_pointcloud2(bad_audio)
    fields["t_offset"][1] = np.nan
    h.publish([("audio/features", make_pointcloud2(bad_audio.header, fields))])
    # NaN positions inside an otherwise good observation cloud: those points are ignored
    nan_cloud = observation_cloud(stream.t_video, stream.rng)
    obs = read_pointcloud2(nan_cloud)
    obs["z"][0] = np.nan
    stream.t_video += 1 / FPS
    h.publish([("visual/observations", make_pointcloud2(nan_cloud.header, obs))])
    # a frame from the past (already clustered) is dropped as late
    h.publish([("visual/observations", observation_cloud(T0 + 0.2, stream.rng))])
    node = h.node
    assert node.malformed_visual == 1 and node.malformed_audio == 1
    assert node.pipeline.invalid_points == 1
    assert node.pipeline.late_visual_frames == 1
    assert h.spin_until(lambda: any(s.level == b"\x02" for s in h.statuses())
                        and _values(h.statuses()[-1])["late_visual_frames_dropped"] == "1")
    errors = [s for s in h.statuses() if s.level == b"\x02"]
    assert errors and "malformed" in errors[-1].message
    values = {kv.key: kv.value for kv in h.statuses()[-1].values}
    assert "lacks field(s) y, z" in values["last_visual_input_error"]
    assert "non-finite stamps" in values["last_audio_input_error"]
    assert values["rejected_audio_messages"] == values["malformed_audio_messages"] == "1"
    assert values["invalid_points_dropped"] == "1"
    assert values["late_visual_frames_dropped"] == "1"
    # processing goes on
    h.publish(stream.until(T0 + 3.0))
    assert len(h.events) >= n0 + 4
    _, ev = _events(h.events[-1])
    assert len(ev["x"]) == 2
    # a jump back in time (bag restarted) restarts the fusion instead of dropping input
    stream2 = Stream(t0=T0 - 20.0, seed=5)
    before = len(h.events)
    h.publish(stream2.until(T0 - 18.0))
    assert node.pipeline.resets == 1
    assert len(h.events) >= before + 4
    assert _events(h.events[-1])[0] < T0 - 18.0


def test_parameters_are_declared_and_validated(harness):
    from rclpy.parameter import Parameter

    h = harness()
    node = h.node
    desc = node.describe_parameter("fusion.hop_length")
    assert "Time (s)" in desc.description and desc.floating_point_range
    assert node.describe_parameter("fusion_input.max_buffer").integer_range
    res = node.set_parameters([Parameter("fusion.hop_length", value=2.0)])
    assert not res[0].successful and "fusion.hop_length" in res[0].reason
    res = node.set_parameters([Parameter("fusion_input.time_jump_reset", value=0.2)])
    assert not res[0].successful and "time_jump_reset" in res[0].reason
    res = node.set_parameters([Parameter("wdem.variant", value="magic")])
    assert not res[0].successful
    res = node.set_parameters([Parameter("fusion.hop_length", value=0.5)])
    assert res[0].successful and node.pipeline.fusion_config.hop_length == 0.5
    stream = Stream()
    h.publish(stream.until(T0 + 3.0))
    stamps = np.array([_events(m)[0] for m in h.events])
    assert np.allclose(np.diff(stamps), 0.5, atol=0.07)


def test_invalid_start_parameter_exits_with_a_message():
    out = subprocess.run(
        [sys.executable, "-m", "av_perception.nodes.av_fusion_node", "--ros-args",
         "-p", "fusion.hop_length:=5.0"], capture_output=True, text=True, timeout=60,
        env=os.environ.copy())
    assert out.returncode == 2
    assert "fusion.hop_length" in out.stderr


@pytest.mark.slow
def test_node_in_a_separate_process_over_dds(ros_context):
    from sensor_msgs.msg import PointCloud2

    proc = subprocess.Popen(
        [sys.executable, "-m", "av_perception.nodes.av_fusion_node", "--ros-args",
         "-r", "__ns:=/fusion_dds"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    node = ros_context.create_node("fusion_dds_peer")
    pubs = {t: node.create_publisher(PointCloud2, f"/fusion_dds/{t}", 50)
            for t in ("audio/features", "visual/observations")}
    got = []
    node.create_subscription(PointCloud2, "/fusion_dds/av_events", got.append, 50)
    stream = Stream()
    try:
        # a deadline, not a duration: the node compiles the WD-EM kernels at start (~45 s
        # on a quiet 2-core machine, longer under load)
        end = time.monotonic() + 300
        t_data = T0
        while time.monotonic() < end and len(got) < 8:
            # keep the data stream going until the node is up and has clustered enough
            t_data += 0.2
            for topic, msg in stream.until(t_data):
                pubs[topic].publish(msg)
            stop = time.monotonic() + 0.1
            while time.monotonic() < stop:
                ros_context.spin_once(node, timeout_sec=0.01)
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[0]
        node.destroy_node()
    assert len(got) >= 8, log
    _, ev = _events(got[-1])
    pos = np.column_stack([ev["x"], ev["y"], ev["z"]])
    i = int(np.argmax(ev["audio_mass"]))
    assert np.linalg.norm(pos[i] - SPEAKER) < 0.05
