"""tracker_node: marker/cloud conversions, the node in-process on a synthetic two-person
scene (one speaking), and as a separate process over DDS."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import require

from av_perception.core.tracking import TrackerOutput

#: two people (m, left optical frame): the first speaks, the second is silent
PEOPLE = np.array([[-0.45, -0.1, 1.8], [0.4, 0.05, 2.4]])
VAR = np.array([1e-4, 1e-4, 4e-4])
FPS = 15.0
HOP = 0.016


def _output(ids, speaking, ended=(), cov=None):
    k = len(ids)
    return TrackerOutput(
        stamp=1.0, ids=np.asarray(ids, dtype=np.int64), position=PEOPLE[:k].copy(),
        covariance=np.array([np.diag(VAR)] * k) if cov is None else cov,
        velocity=np.zeros((k, 3)), existence=np.full(k, 0.9),
        speaking=np.asarray(speaking, dtype=float), audio_only=np.zeros(k, bool),
        ended=np.asarray(ended, dtype=np.int64))


# ----------------------------------------------------------------- conversions
def test_covariance_ellipsoid_axes_and_orientation():
    from scipy.spatial.transform import Rotation

    from av_perception.nodes.conversions import covariance_ellipsoid

    a = np.radians(30.0)
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    sd = np.array([0.1, 0.2, 0.3])  # along R's columns
    cov = R @ np.diag(sd ** 2) @ R.T
    scale, quat = covariance_ellipsoid(cov)
    assert scale == pytest.approx(2 * sd)
    M = Rotation.from_quat(quat).as_matrix()
    assert np.linalg.det(M) == pytest.approx(1.0)
    for k in range(3):  # each marker axis is the eigenvector of its eigenvalue (up to sign)
        assert abs(M[:, k] @ R[:, k]) == pytest.approx(1.0, abs=1e-9)
    # the marker's frame maps the unit sphere scaled by sigma onto the covariance
    S = M @ np.diag((scale / 2) ** 2) @ M.T
    assert S == pytest.approx(cov, abs=1e-12)
    # an axis-aligned covariance keeps the identity orientation (up to the axis order)
    scale, quat = covariance_ellipsoid(np.diag([0.04, 0.01, 0.09]))
    assert scale == pytest.approx([0.2, 0.4, 0.6])
    M = Rotation.from_quat(quat).as_matrix()
    assert abs(M[1, 0]) == pytest.approx(1.0) and abs(M[0, 1]) == pytest.approx(1.0)


def test_markers_add_labels_colours_and_delete_ended_tracks():
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker

    from av_perception.nodes.conversions import MARKER_NAMESPACES, tracks_to_markers

    header = Header(frame_id="cam_left")
    arr, shown = tracks_to_markers(header, _output([3, 5], [0.9, 0.1]))
    assert shown == {3, 5}
    assert all(m.action == Marker.ADD for m in arr.markers)
    by = {(m.ns, m.id): m for m in arr.markers}
    assert set(by) == {(ns, i) for ns in MARKER_NAMESPACES for i in (3, 5)}
    ell3, lab3 = by[(MARKER_NAMESPACES[0], 3)], by[(MARKER_NAMESPACES[1], 3)]
    assert ell3.type == Marker.SPHERE and lab3.type == Marker.TEXT_VIEW_FACING
    assert lab3.text == "3 speaking" and by[(MARKER_NAMESPACES[1], 5)].text == "5"
    assert ell3.scale.x == pytest.approx(2 * np.sqrt(VAR[0]), rel=1e-6)
    assert ell3.scale.z == pytest.approx(2 * np.sqrt(VAR[2]), rel=1e-6)
    assert (ell3.pose.position.x, ell3.pose.position.z) == pytest.approx((-0.45, 1.8))
    assert lab3.pose.position.y < ell3.pose.position.y  # above the head (y down)
    grey = by[(MARKER_NAMESPACES[0], 5)].color
    assert ell3.color.r > 0.9 and ell3.color.g < 0.1  # speaking: red
    assert grey.r == pytest.approx(grey.g, abs=0.1) and grey.r < 0.7  # silent: grey
    assert ell3.header.frame_id == "cam_left"
    # track 5 ended: DELETE in both namespaces, 3 stays
    arr, shown = tracks_to_markers(header, _output([3], [0.2], ended=[5]), shown)
    assert shown == {3}
    deletes = {(m.ns, m.id) for m in arr.markers if m.action == Marker.DELETE}
    assert deletes == {(ns, 5) for ns in MARKER_NAMESPACES}
    assert by[(MARKER_NAMESPACES[1], 3)].text == "3 speaking"
    assert [m.text for m in arr.markers if m.action == Marker.ADD and m.text] == ["3"]
    # a track that stops being reported (not ended) is deleted too, and only once
    arr, shown = tracks_to_markers(header, _output([], []), shown)
    assert {(m.ns, m.id) for m in arr.markers} == {(ns, 3) for ns in MARKER_NAMESPACES}
    arr, shown = tracks_to_markers(header, _output([], []), shown)
    assert not arr.markers and shown == set()


def test_speakers_cloud_round_trip():
    from sensor_msgs.msg import PointField
    from std_msgs.msg import Header

    from av_perception.nodes.conversions import (
        SPEAKER_FIELDS,
        cloud_to_tracks,
        sec_to_time,
        tracks_to_cloud,
    )

    cloud = tracks_to_cloud(Header(stamp=sec_to_time(12.5), frame_id="f"),
                            _output([7, 9], [0.8, 0.1]))
    assert [f.name for f in cloud.fields] == list(SPEAKER_FIELDS)
    types = {f.name: f.datatype for f in cloud.fields}
    assert types["id"] == PointField.UINT32 and types["speaking"] == PointField.FLOAT32
    t = cloud_to_tracks(cloud)
    assert t["stamp"] == 12.5 and t["frame_id"] == "f"
    assert list(t["ids"]) == [7, 9]
    assert t["position"] == pytest.approx(PEOPLE, abs=1e-6)
    assert t["variances"] == pytest.approx(np.array([VAR, VAR]), rel=1e-6)
    assert t["speaking"] == pytest.approx([0.8, 0.1], abs=1e-6)
    empty = cloud_to_tracks(tracks_to_cloud(Header(), _output([], [])))
    assert len(empty["ids"]) == 0 and empty["position"].shape == (0, 3)


# ------------------------------------------------------------------ scene input
def obs_cloud(stamp, xyz, frame_id="cam_left"):
    from std_msgs.msg import Header

    from av_perception.nodes.conversions import make_pointcloud2, sec_to_time

    f32 = np.float32
    xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
    n = len(xyz)
    cols = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "weight": np.full(n, 0.9),
            "u": np.zeros(n), "v": np.zeros(n), "w": np.full(n, 40.0), "h": np.full(n, 40.0),
            "var_x": np.full(n, VAR[0]), "var_y": np.full(n, VAR[1]),
            "var_z": np.full(n, VAR[2])}
    return make_pointcloud2(Header(stamp=sec_to_time(stamp), frame_id=frame_id),
                            {k: np.asarray(v).astype(f32) for k, v in cols.items()})


def audio_cloud(stamps, itd):
    from std_msgs.msg import Header

    from av_perception.nodes.conversions import make_pointcloud2, sec_to_time

    f32 = np.float32
    stamps = np.asarray(stamps, dtype=float)
    n = len(stamps)
    one = np.ones(n)
    return make_pointcloud2(Header(stamp=sec_to_time(stamps[0]), frame_id="mics"), {
        "t_offset": (stamps - stamps[0]).astype(f32), "itd": np.full(n, itd).astype(f32),
        "ild": np.zeros(n, f32), "activity": one.astype(f32), "reliability": one.astype(f32),
        "azimuth": np.zeros(n, f32), "direct_path": one.astype(f32)})


def speaker_itd():
    from av_perception.core.config import MicArrayConfig
    from av_perception.core.geometry import MicGeometry

    return float(MicGeometry.from_config(MicArrayConfig()).itd(PEOPLE[:1])[0])


class Scene:
    """Publishes the scene in real time: person 1 talks throughout, person 2 is seen until
    ``leave`` s; audio in messages of 4 frames, observations at 15 fps."""

    def __init__(self, pubs, t0, leave=4.0, rng=None):
        self.pub_obs, self.pub_audio, self.pub_img = pubs
        self.t0, self.leave = t0, leave
        self.itd = speaker_itd()
        self.rng = rng or np.random.default_rng(0)
        self.frame = 0
        self.t_audio = t0
        self.image = np.zeros((480, 640, 3), np.uint8)

    def due(self, now):
        """Publish everything whose stamp is <= now; returns the stamps of the frames sent."""
        sent = []
        while self.t_audio + 4 * HOP <= now:
            st = self.t_audio + HOP * np.arange(4)
            self.pub_audio.publish(audio_cloud(st, self.itd))
            self.t_audio += 4 * HOP
        while self.t0 + self.frame / FPS <= now - 0.02:  # images come after their audio
            stamp = self.t0 + self.frame / FPS
            people = PEOPLE if stamp - self.t0 < self.leave else PEOPLE[:1]
            xyz = people + self.rng.normal(0, 0.004, people.shape)
            if self.pub_img is not None:
                from sensor_msgs.msg import Image

                from av_perception.io.image_msgs import fill_image_msg

                self.pub_img.publish(fill_image_msg(Image(), self.image, "bgr8", stamp=stamp,
                                                    frame_id="cam_left"))
            self.pub_obs.publish(obs_cloud(stamp, xyz))
            sent.append(stamp)
            self.frame += 1
        return sent


pytestmark = pytest.mark.ros


def _now(node):
    return node.get_clock().now().nanoseconds * 1e-9


def test_node_tracks_two_people_and_publishes_every_output(ros_context):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image, PointCloud2
    from std_msgs.msg import Bool
    from visualization_msgs.msg import Marker, MarkerArray

    from av_perception.nodes.conversions import MARKER_NAMESPACES, cloud_to_tracks, time_to_sec
    from av_perception.nodes.tracker_node import TrackerNode

    try:
        from hri_msgs.msg import IdsList
    except ImportError:
        IdsList = None
    require(IdsList is not None, "hri_msgs (make msgs)")
    overrides = {"tracking.publish_voices": True, "tracking.diagnostics_period": 0.5}
    node = TrackerNode(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    io = ros_context.create_node("tracker_test_io")
    got = {"speakers": [], "markers": [], "image": [], "diag": [], "v1": [], "v2": [],
           "tracked": []}
    io.create_subscription(IdsList, "/humans/voices/tracked", got["tracked"].append, 200)
    io.create_subscription(PointCloud2, "speakers", got["speakers"].append, 100)
    io.create_subscription(MarkerArray, "speakers/markers", got["markers"].append, 100)
    io.create_subscription(Image, "speakers/image", got["image"].append, 100)
    io.create_subscription(DiagnosticArray, "/diagnostics", got["diag"].append, 100)
    for k in (1, 2):
        io.create_subscription(Bool, f"/humans/voices/voice{k}/is_speaking",
                               got[f"v{k}"].append, 100)
    pubs = (io.create_publisher(PointCloud2, "visual/observations", 50),
            io.create_publisher(PointCloud2, "audio/features", 200),
            io.create_publisher(Image, "stereo/left/image_raw", 10))
    ex = ros_context.executors.SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(io)
    try:
        end = time.monotonic() + 5
        while time.monotonic() < end and not (pubs[0].get_subscription_count()
                                              and pubs[2].get_subscription_count()):
            ex.spin_once(timeout_sec=0.01)
        scene = Scene(pubs, _now(io) + 0.1, leave=4.0)
        sent = []
        end_stamp = scene.t0 + 7.0
        while _now(io) < end_stamp:
            sent += scene.due(_now(io))
            ex.spin_once(timeout_sec=0.005)
        end = time.monotonic() + 60  # a deadline: a loaded machine just takes longer
        while time.monotonic() < end and (len(got["speakers"]) < len(sent)
                                          or len(got["image"]) < len(sent) - 2):
            ex.spin_once(timeout_sec=0.01)
        with_two = None
        for m in got["speakers"]:
            t = cloud_to_tracks(m)
            if t["stamp"] - scene.t0 < 3.9 and len(t["ids"]) == 2:
                with_two = t
        assert len(got["speakers"]) == len(sent) >= 90
        stamps = [time_to_sec(m.header.stamp) for m in got["speakers"]]
        assert stamps == pytest.approx(sent, abs=1e-6)  # one output per observation cloud
        assert all(m.header.frame_id == "cam_left" for m in got["speakers"])
        # positions within a few cm, the talker speaks and the other does not
        assert with_two is not None
        order = np.argsort(with_two["position"][:, 0])
        # measured: 6 mm; speaking 0.999 and 0.002
        assert np.abs(with_two["position"][order] - PEOPLE).max() < 0.015
        assert with_two["speaking"][order][0] > 0.9 and with_two["speaking"][order][1] < 0.1
        assert np.all(with_two["variances"] > 0)
        talker, silent = (int(i) for i in with_two["ids"][order])
        last = cloud_to_tracks(got["speakers"][-1])
        assert list(last["ids"]) == [talker]  # the second person left
        # markers: ADD for both, then DELETE for the one that left
        adds = {(mk.ns, mk.id) for a in got["markers"] for mk in a.markers
                if mk.action == Marker.ADD}
        assert {(ns, i) for ns in MARKER_NAMESPACES for i in (talker, silent)} <= adds
        deletes = [(mk.ns, mk.id) for a in got["markers"] for mk in a.markers
                   if mk.action == Marker.DELETE]
        assert sorted(deletes) == sorted((ns, silent) for ns in MARKER_NAMESPACES)
        texts = {mk.text for a in got["markers"] for mk in a.markers}
        assert f"{talker} speaking" in texts and f"{silent}" in texts
        # voices: the talker is speaking, the other not; the publisher of the other is gone
        assert got[f"v{talker}"] and got[f"v{talker}"][-1].data is True
        assert got[f"v{silent}"] and not any(m.data for m in got[f"v{silent}"][5:])
        assert set(node.outputs.voices) == {talker}
        assert io.count_publishers(f"/humans/voices/voice{silent}/is_speaking") == 0
        # ROS4HRI: the tracked voices, one list per output with its stamp
        lists = {time_to_sec(m.header.stamp): sorted(m.ids) for m in got["tracked"]}
        assert sorted(f"voice{i}" for i in with_two["ids"]) == lists[with_two["stamp"]]
        assert got["tracked"][-1].ids == [f"voice{talker}"]
        assert set(lists) <= set(stamps) and len(lists) >= 0.9 * len(stamps)
        assert node.outputs.tracked_problem == ""
        # the annotated image has the stamp of its frame and shows the tracks
        assert len(got["image"]) >= len(sent) - 2
        img = got["image"][-1]
        assert img.encoding == "bgr8" and img.header.frame_id == "cam_left"
        assert np.min(np.abs(np.array(sent) - time_to_sec(img.header.stamp))) < 1e-6
        assert np.frombuffer(bytes(img.data), np.uint8).max() > 100
        # diagnostics report latency and rates (their size is measured by
        # bench/bench_latency.py, not asserted: it depends on the machine's load)
        st = [s for m in got["diag"] for s in m.status if "tracker_node" in s.name]
        vals = [{kv.key: kv.value for kv in s.values} for s in st]
        busy = [v for v in vals if int(v["outputs_in_period"]) > 0]
        assert busy, vals
        v = busy[-1]
        p50, p99 = float(v["latency_p50_ms"]), float(v["latency_p99_ms"])
        assert p50 > 0 and np.isfinite(p99) and p50 <= p99  # reported, ordered quantiles
        assert float(v["visual_rate_hz"]) > 0 and float(v["audio_frame_rate_hz"]) > 0
        assert v["late_visual_dropped"] == "0" and int(v["tracks"]) >= 1
        assert any(s.level == b"\x00" for s in st)
    finally:
        ex.shutdown()
        node.destroy_node()
        io.destroy_node()


def test_births_from_av_events(node_harness):
    """With tracking.use_av_events the node subscribes to av_events: an event no track
    explains starts a track long before the visual birth chains would (here they need 30
    frames); a malformed events cloud is rejected and counted; switching the parameter
    off removes the subscription."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Header

    from av_perception.core.av_clustering import AVEvent
    from av_perception.nodes.conversions import (
        cloud_to_tracks,
        events_to_cloud,
        make_pointcloud2,
        sec_to_time,
    )
    from av_perception.nodes.tracker_node import TrackerNode

    overrides = {"tracking.use_av_events": True, "tracker.birth_window": 30,
                 "tracking.publish_image": False}
    node = TrackerNode(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    h = node_harness(node, "tracker_events_io")
    spin_until = h.spin_until
    got = h.listen(PointCloud2, "speakers")
    pub_obs = h.publisher(PointCloud2, "visual/observations")
    pub_ev = h.publisher(PointCloud2, "av_events", 10)
    assert h.wait_for_subscribers(pub_obs, pub_ev)
    t0 = 100.0
    person = PEOPLE[1]
    event = AVEvent(person + 0.01, np.diag(VAR), np.diag(VAR), 12.0, 0.0, 0.0, 1e-5,
                    False, 3, t0 + 1.0)
    for k in range(24):
        stamp = t0 + k / FPS
        pub_obs.publish(obs_cloud(stamp, person[None]))
        assert spin_until(lambda k=k: len(got) == k + 1)
        if k == 16:  # the fusion window ending at t0 + 1 s arrives after that frame
            pub_ev.publish(events_to_cloud(
                Header(stamp=sec_to_time(t0 + 1.0), frame_id="cam_left"), [event]))
            assert spin_until(lambda: node.pipeline.events_received == 1)
    counts = [len(cloud_to_tracks(m)["ids"]) for m in got]
    assert counts[:17] == [0] * 17 and counts[17:] == [1] * 7  # born at the next image
    pos = cloud_to_tracks(got[-1])["position"][0]
    assert np.linalg.norm(pos - person) < 0.03
    assert node.pipeline.tracker.stats["births_events"] == 1
    bad = make_pointcloud2(Header(stamp=sec_to_time(t0 + 2.0)),
                           {"x": np.zeros(1, np.float32)})
    pub_ev.publish(bad)
    assert spin_until(lambda: node.inputs_rejected == 1)
    node.set_parameters([Parameter("tracking.use_av_events", value=False)])
    assert node.sub_events is None
    assert spin_until(lambda: pub_ev.get_subscription_count() == 0)


def test_audio_with_a_non_finite_stamp_is_rejected_and_tracking_goes_on(node_harness):
    """Issue 16: one audio/features message with a NaN or inf t_offset silenced the node
    for good (every later step failed, blaming the observations); now that message is
    rejected naming the audio input, counted on /diagnostics, and every later
    observation cloud gives speakers."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2

    from av_perception.nodes.conversions import cloud_to_tracks, make_pointcloud2, read_pointcloud2
    from av_perception.nodes.tracker_node import TrackerNode

    overrides = {"tracking.publish_image": False, "tracking.diagnostics_period": 0.2}
    node = TrackerNode(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    h = node_harness(node, "tracker_nan_io")
    got = h.listen(PointCloud2, "speakers")
    pub_audio = h.publisher(PointCloud2, "audio/features")
    pub_obs = h.publisher(PointCloud2, "visual/observations")
    assert h.wait_for_subscribers(pub_audio, pub_obs)

    def audio_taken():  # audio frames accepted + messages rejected
        return node.rates["audio_frames"].total + node.inputs_rejected

    itd = speaker_itd()
    t0 = 200.0
    for bad in (np.nan, np.inf):
        for k in range(30):
            stamp = t0 + k / FPS
            audio = audio_cloud(stamp - 4 * HOP + HOP * np.arange(4), itd)
            if k == 10:  # one broken message among good ones
                fields = read_pointcloud2(audio)
                fields["t_offset"][2] = bad
                audio = make_pointcloud2(audio.header, fields)
            n = audio_taken()
            pub_audio.publish(audio)  # each message taken before the next one is sent
            assert h.spin_until(lambda n=n: audio_taken() > n)
            n = len(got)
            pub_obs.publish(obs_cloud(stamp, PEOPLE))
            assert h.spin_until(lambda n=n: len(got) == n + 1)
        t0 += 30 / FPS
    assert len(got) == 60
    assert node.inputs_rejected == 2
    assert node.pipeline.tracker.num_tracks == len(PEOPLE)  # both people tracked throughout
    assert all(len(cloud_to_tracks(m)["ids"]) == len(PEOPLE) for m in got[10:])
    def counted(n):  # a status that counts both rejections
        return any(kv.key == "rejected_audio_features_messages" and kv.value == n
                   for s in h.statuses() for kv in s.values)

    assert h.spin_until(lambda: counted("2"))
    st = h.statuses()
    err = [s for s in st if s.level == b"\x02"][-1]
    assert "audio/features message rejected" in err.message
    assert "non-finite stamps" in err.message
    values = {kv.key: kv.value for kv in st[-1].values}
    assert values["rejected_audio_features_messages"] == "2"
    assert values["inputs_rejected"] == "2"
    # the error was this period's: the next periods are not ERROR (a WARN that no
    # observations come any more)
    n = len(st)
    assert h.spin_until(lambda: len(h.statuses()) > n + 1)
    assert h.statuses()[-1].level != b"\x02"


def test_voices_without_hri_msgs_keep_is_speaking_and_say_why(node_harness, monkeypatch):
    """Without the hri_msgs types the per-voice is_speaking topics are still published;
    /humans/voices/tracked is not, and a lasting WARN names the package and the fix."""
    import sys

    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool

    from av_perception.nodes.tracker_node import TrackerNode

    monkeypatch.setitem(sys.modules, "hri_msgs", None)  # import hri_msgs fails
    monkeypatch.setitem(sys.modules, "hri_msgs.msg", None)
    overrides = {"tracking.publish_voices": True, "tracking.publish_image": False,
                 "tracking.diagnostics_period": 0.2}
    node = TrackerNode(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    h = node_harness(node, "tracker_nohri_io")
    voices = h.listen(Bool, "/humans/voices/voice1/is_speaking")
    for k in range(40):
        node._on_observations(obs_cloud(300.0 + k / FPS, PEOPLE[:1]))
    assert h.spin_until(lambda: len(voices) > 0)
    assert node.outputs.pub_tracked is None
    assert h.spin_until(lambda: any("hri_msgs is not installed" in s.message
                                    for s in h.statuses()))
    st = [s for s in h.statuses() if "hri_msgs" in s.message][-1]
    assert st.level == b"\x01" and "make msgs" in st.message
    n = len(h.statuses())  # lasting: in every later status too
    assert h.spin_until(lambda: len(h.statuses()) > n + 1)
    assert "hri_msgs is not installed" in h.statuses()[-1].message


def test_late_observations_are_dropped_and_counted(ros_context):
    from rclpy.parameter import Parameter

    from av_perception.nodes.conversions import cloud_to_observations
    from av_perception.nodes.tracker_node import TrackerNode

    node = TrackerNode(parameter_overrides=[Parameter("tracking.publish_image", value=False)])
    try:
        for t in (100.0, 100.1):
            msg = obs_cloud(t, PEOPLE)
            assert node.process_observations(cloud_to_observations(msg), msg.header) is not None
        msg = obs_cloud(100.05, PEOPLE)
        assert node.process_observations(cloud_to_observations(msg), msg.header) is None
        assert node.pipeline.late_visual == 1
        msg = obs_cloud(50.0, PEOPLE)  # the clock jumped back (a bag restarted)
        assert node.process_observations(cloud_to_observations(msg), msg.header) is not None
        assert node.pipeline.resets == 1
        res = node.set_parameters([Parameter("tracking.voice_id_prefix", value="3x")])
        assert not res[0].successful and "tracking.voice_id_prefix" in res[0].reason
        res = node.set_parameters([Parameter("tracker.itd_sigma", value=-1.0)])
        assert not res[0].successful
    finally:
        node.destroy_node()


@pytest.mark.slow
def test_node_in_a_separate_process_over_dds(ros_context):
    from sensor_msgs.msg import PointCloud2

    from av_perception.nodes.conversions import cloud_to_tracks

    proc = subprocess.Popen(
        [sys.executable, "-m", "av_perception.nodes.tracker_node", "--ros-args",
         "-r", "__ns:=/trk_dds"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    node = ros_context.create_node("trk_dds_io")
    got = []
    node.create_subscription(PointCloud2, "/trk_dds/speakers", got.append, 50)
    pubs = (node.create_publisher(PointCloud2, "/trk_dds/visual/observations", 50),
            node.create_publisher(PointCloud2, "/trk_dds/audio/features", 200), None)
    try:
        end = time.monotonic() + 40
        while time.monotonic() < end and pubs[0].get_subscription_count() == 0:
            ros_context.spin_once(node, timeout_sec=0.05)
        scene = Scene(pubs, _now(node), leave=100.0)
        while time.monotonic() < end:
            scene.due(_now(node))
            ros_context.spin_once(node, timeout_sec=0.005)
            if got and len(cloud_to_tracks(got[-1])["ids"]) == 2 and len(got) > 30:
                break
    finally:
        proc.terminate()
        log = proc.communicate(timeout=20)[0]
        node.destroy_node()
    assert got, log
    t = cloud_to_tracks(got[-1])
    assert len(t["ids"]) == 2, log
    order = np.argsort(t["position"][:, 0])
    assert np.abs(t["position"][order] - PEOPLE).max() < 0.03
    assert t["speaking"][order][0] > 0.5 > t["speaking"][order][1]
    assert "tracker ready" in log


def test_rviz_config_parses_and_shows_the_published_topics():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    doc = yaml.safe_load((root / "rviz" / "av_perception.rviz").read_text())
    vm = doc["Visualization Manager"]
    assert vm["Global Options"]["Fixed Frame"] == "stereo_left_optical_frame"
    shown = {(d["Class"], d["Topic"]["Value"]) for d in vm["Displays"] if "Topic" in d}
    assert {("rviz_default_plugins/Image", "speakers/image"),
            ("rviz_default_plugins/MarkerArray", "speakers/markers"),
            ("rviz_default_plugins/PointCloud2", "speakers"),
            ("rviz_default_plugins/PointCloud2", "visual/observations")} <= shown
    # every topic shown is one the nodes publish (node sources create these publishers)
    sources = "".join((root / "av_perception" / "nodes" / f).read_text() for f in (
        "tracker_node.py", "perception_node.py", "visual_features_node.py",
        "tracking_stage.py", "vision_stage.py"))
    for _, topic in shown:
        assert f'"{topic}"' in sources, topic
    from av_perception.nodes.conversions import MARKER_NAMESPACES

    markers = [d for d in vm["Displays"] if d["Class"].endswith("MarkerArray")][0]
    assert set(markers["Namespaces"]) == set(MARKER_NAMESPACES)


@pytest.mark.parametrize("node, path", [("tracker_node", "tracker.yaml"),
                                        ("perception_node", "perception.yaml")])
def test_config_file_lists_every_parameter_with_its_default(node, path):
    import importlib
    from pathlib import Path

    from av_perception.io.params import read_params_file

    mod = importlib.import_module(f"av_perception.nodes.{node}")
    params = read_params_file(Path(__file__).resolve().parents[1] / "config" / path, node)
    specs = {s.name: s.default for cls in mod.STAGES for s in cls.parameter_specs()}
    assert set(params) == set(specs)
    for name, default in specs.items():
        value = tuple(params[name]) if isinstance(params[name], list) else params[name]
        assert value == default and type(value) is type(default), name
