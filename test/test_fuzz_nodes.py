"""Issue 16, target 1: no input sequence stops a node from publishing once valid input
resumes.

Each node that subscribes to something (visual_features_node, av_fusion_node,
tracker_node, perception_node; audio_features_node subscribes to nothing) gets
FUZZ_MESSAGES random messages spread over every topic it subscribes to (seeded,
test/fuzzmsgs.py: NaN/inf/huge values, stamps going back or to the ends of their
range, duplicates, inconsistent PointCloud2 and Image layouts, garbage JPEGs, broken
CameraInfo), most through the subscriptions' own callbacks and PUBLISHED_MESSAGES of
them through rclpy publishers (serialisation included).  No exception may escape a
callback or the vision worker, the malformed input must have been reported as ERROR
on /diagnostics, the internal queues must stay bounded, and a valid input sequence
afterwards must give valid outputs again (finite positions at the true places).
"""
import time

import numpy as np
import pytest
from fuzzmsgs import FUZZ_CAMERA, MessageFuzzer

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FUZZ_MESSAGES = 10_000
PUBLISHED_MESSAGES = 300


class Fuzz:
    """Feeds a node fuzzed messages, via its subscriptions' callbacks or publishers."""

    def __init__(self, h, seed: int, vision: bool = False):
        self.h = h
        self.fz = MessageFuzzer(seed)
        self.vision = vision
        self.crashes: list = []
        self.taken = 0
        self.subs = {}
        for sub in h.node.subscriptions:
            sub.callback = self._guard(sub.topic_name, sub.callback)
            self.subs[sub.topic_name] = sub
        self.pubs = {}

    def _guard(self, topic, callback):
        def guarded(msg):
            self.taken += 1
            try:
                return callback(msg)
            except Exception as exc:  # noqa: BLE001 - recorded and failed on below
                self.crashes.append(f"{topic}: {exc!r}")
                raise
        return guarded

    def kind(self, topic: str) -> str:
        if "camera_info" in topic:
            return "info"
        if "image" in topic:
            return "compressed" if topic.endswith("compressed") else "image"
        return {"/audio/features": "features", "/visual/observations": "observations",
                "/av_events": "events", "/speakers": "speakers"}[topic]

    def messages(self, topics):
        """(topic, message) pairs of one random step: one message of a random topic, or for
        the vision stage both images of a pair (same stamp, each maybe mutated)."""
        fz = self.fz
        topic = topics[int(fz.rng.integers(len(topics)))]
        kind = self.kind(topic)
        if kind == "info":
            pair = fz.message("info")
            side = 1 if "right" in topic else 0
            if self.vision and fz.rng.random() < 0.8:  # both sides
                return [(t, pair[1 if "right" in t else 0]) for t in topics
                        if "camera_info" in t]
            return [(topic, pair[side])]
        if kind in ("image", "compressed") and self.vision and fz.rng.random() < 0.7:
            stamp = fz._stamp()
            make = fz.image if kind == "image" else fz.compressed
            return [(t, make(stamp=stamp, frame_id="cam_" + ("right" if "right" in t else "left")))
                    for t in topics if self.kind(t) == kind]
        return [(topic, fz.message(kind))]

    def call(self, n: int, on_step=None):
        """Feed ``n`` messages straight to the callbacks."""
        topics = sorted(self.subs)
        sent = 0
        while sent < n:
            for topic, msg in self.messages(topics):
                try:
                    self.subs[topic].callback(msg)
                except Exception:  # noqa: BLE001 - in self.crashes
                    if len(self.crashes) > 20:
                        pytest.fail("callbacks raised:\n" + "\n".join(self.crashes[:20]))
                sent += 1
            if on_step is not None:
                on_step(sent)
        return sent

    def publish(self, n: int):
        """Publish ``n`` messages through rclpy; returns how many the node took."""
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        h = self.h
        topics = sorted(self.subs)
        for topic, sub in self.subs.items():
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                             reliability=ReliabilityPolicy.RELIABLE)
            self.pubs[topic] = h.peer.create_publisher(sub.msg_type, topic, qos)
        assert h.wait_for_subscribers(*self.pubs.values())
        taken0, sent = self.taken, 0
        while sent < n:
            for topic, msg in self.messages(topics):
                self.pubs[topic].publish(msg)
                sent += 1
                want = self.taken + 1
                h.spin_until(lambda want=want: self.taken >= want or self.crashes, 5.0)
        h.spin_until(lambda: self.taken - taken0 >= sent, 5.0)
        return self.taken - taken0


def _spin(h, seconds: float):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        h.executor.spin_once(timeout_sec=0.005)


def _record_problems(diag) -> list:
    """Every problem logged by a Diagnostics helper (the first of each repeat too)."""
    seen: list = []
    orig_event, orig_condition = diag._event_at, diag.condition

    def event_at(level, message):
        seen.append((level, message))
        return orig_event(level, message)

    def condition(key, level, message):
        seen.append((level, message))
        return orig_condition(key, level, message)

    diag._event_at, diag.condition = event_at, condition
    return seen


def _no_internal_errors(problems):
    bad = [m for _, m in problems if "internal error" in m or "Traceback" in m]
    assert not bad, bad[:5]


def _overrides(**kw):
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in kw.items()]


# --------------------------------------------------------------------- the nodes
def test_fuzz_av_fusion_node(node_harness):
    from sensor_msgs.msg import PointCloud2
    from test_av_fusion_node import SILENT, SPEAKER, Stream

    from av_perception.nodes.av_fusion_node import AVFusionNode
    from av_perception.nodes.conversions import cloud_to_events

    node = AVFusionNode(parameter_overrides=_overrides(**{"fusion_input.diagnostics_period": 0.2}))
    h = node_harness(node, "fuzz_fusion_peer")
    events = h.listen(PointCloud2, "av_events", 1000)
    problems = _record_problems(node.stage.diag)
    fuzz = Fuzz(h, seed=1601)
    assert set(fuzz.subs) == {"/audio/features", "/visual/observations"}

    def step(sent):
        if sent % 50 == 0:
            h.executor.spin_once(timeout_sec=0)
            assert node.pipeline.buffered_messages <= node.input.max_buffer

    fuzz.call(FUZZ_MESSAGES, step)
    assert fuzz.publish(PUBLISHED_MESSAGES) >= 0.9 * PUBLISHED_MESSAGES
    assert not fuzz.crashes, fuzz.crashes[:10]
    _no_internal_errors(problems)
    assert node.malformed_audio > 100 and node.malformed_visual > 100
    for msg in events:  # what was published is usable (finite, positive variances)
        cloud_to_events(msg)
    assert h.spin_until(lambda: any(s.level == b"\x02" and "malformed" in s.message
                                    for s in h.statuses()))
    # valid input again (a bag restarted: data time jumps)
    _spin(h, 0.2)
    before = len(events)
    t0 = 50_000.0

    def valid():
        return [(t, ev) for t, ev in map(cloud_to_events, events[before:])
                if t0 < t <= t0 + 4.0]

    stream = Stream(t0=t0, seed=7)
    for topic, msg in stream.until(t0 + 4.0):
        fuzz.subs["/" + topic].callback(msg)
        h.executor.spin_once(timeout_sec=0)
    assert h.spin_until(lambda: len(valid()) >= 8), (
        node.windows_published, node.pipeline.released, node.last_error)
    assert not fuzz.crashes, fuzz.crashes[:10]
    stamp, ev = valid()[-1]
    assert np.all(np.isfinite(ev.position)) and len(ev) == 2
    order = np.argsort(ev.position[:, 0])
    assert np.abs(ev.position[order] - np.array([SILENT, SPEAKER])).max() < 0.1
    assert ev.audio_mass[order][1] > 5 * ev.audio_mass[order][0]  # the speaker is heard


def test_fuzz_tracker_node(node_harness):
    from sensor_msgs.msg import PointCloud2
    from test_tracker_node import FPS, HOP, PEOPLE, audio_cloud, obs_cloud, speaker_itd

    from av_perception.nodes.conversions import cloud_to_tracks
    from av_perception.nodes.tracker_node import TrackerNode

    node = TrackerNode(parameter_overrides=_overrides(**{
        "tracking.use_av_events": True, "tracking.diagnostics_period": 0.2}))
    h = node_harness(node, "fuzz_tracker_peer")
    speakers = h.listen(PointCloud2, "speakers", 1000)
    problems = _record_problems(node.diag)
    fuzz = Fuzz(h, seed=1602)
    assert set(fuzz.subs) == {"/audio/features", "/visual/observations", "/av_events",
                              "/stereo/left/image_raw", "/stereo/left/camera_info"}

    def step(sent):
        if sent % 50 == 0:
            h.executor.spin_once(timeout_sec=0)
            assert len(node._images) <= node.input.image_queue
            assert len(node._unannotated) <= 10

    fuzz.call(FUZZ_MESSAGES, step)
    assert fuzz.publish(PUBLISHED_MESSAGES) >= 0.9 * PUBLISHED_MESSAGES
    assert not fuzz.crashes, fuzz.crashes[:10]
    _no_internal_errors(problems)
    assert node.inputs_rejected > 100
    for msg in speakers:  # whatever was published is finite
        t = cloud_to_tracks(msg)
        assert np.all(np.isfinite(t["position"])) and np.all(np.isfinite(t["variances"]))
    assert h.spin_until(lambda: any(s.level == b"\x02" and "rejected" in s.message
                                    for s in h.statuses()))
    assert h.spin_until(lambda: not node._pending)
    # valid input again: one talker and one silent person, audio before each image
    itd = speaker_itd()
    rng = np.random.default_rng(3)
    t0 = 50_000.0
    _spin(h, 0.2)
    before = len(speakers)
    n = int(3 * FPS)
    last = t0 + (n - 1) / FPS

    def valid():
        return [t for t in map(cloud_to_tracks, speakers[before:]) if t0 <= t["stamp"] <= last]

    for k in range(n):
        stamp = t0 + k / FPS
        fuzz.subs["/audio/features"].callback(
            audio_cloud(stamp - 4 * HOP + HOP * np.arange(1, 5), itd))
        fuzz.subs["/visual/observations"].callback(
            obs_cloud(stamp, PEOPLE + rng.normal(0, 0.004, PEOPLE.shape)))
        h.executor.spin_once(timeout_sec=0)
    assert h.spin_until(lambda: valid() and valid()[-1]["stamp"] == pytest.approx(last)), (
        len(valid()), node.pipeline.last_stamp)
    assert not fuzz.crashes, fuzz.crashes[:10]
    tracks = valid()[-1]
    assert len(tracks["ids"]) == 2 and np.all(np.isfinite(tracks["position"]))
    order = np.argsort(tracks["position"][:, 0])
    assert np.abs(tracks["position"][order] - PEOPLE).max() < 0.05
    assert np.all(np.isfinite(tracks["variances"])) and np.all(tracks["variances"] > 0)
    assert tracks["speaking"][order][0] > 0.5 > tracks["speaking"][order][1], (
        tracks["speaking"], node.pipeline.buffer.head, node.pipeline.tracker.stats)
    assert node.pipeline.buffered_audio < 10_000


@pytest.fixture(scope="module")
def rendered():
    from stereobag import render

    return render(seed=5)


def _valid_pairs(fuzz, rendered, t0, n):
    """n rendered stereo pairs (the two heads of stereobag.HEADS) with their CameraInfo,
    straight to the callbacks."""
    from test_visual_node import image_msg, info_msgs

    left, right = rendered
    for k in range(n):
        stamp = t0 + k / 15
        for topic, info in zip(("/stereo/left/camera_info", "/stereo/right/camera_info"),
                               info_msgs(stamp)):
            fuzz.subs[topic].callback(info)
        fuzz.subs["/stereo/left/image_raw"].callback(image_msg(left, stamp, "cam_left"))
        fuzz.subs["/stereo/right/image_raw"].callback(image_msg(right, stamp, "cam_right"))
        yield stamp


def _vision_step(h, stage):
    def step(sent):
        if sent % 20 == 0:  # let the worker take the queued pairs (bounded queue)
            assert len(stage._worker._items) <= stage.input.max_pending_pairs
            assert max(stage.sync.queued(0), stage.sync.queued(1)) <= stage.input.queue_size
            h.spin_until(lambda: not stage._worker._items, 30.0)
            h.executor.spin_once(timeout_sec=0)
    return step


VISION = {"vision_input.diagnostics_period": 0.2, "detection.asynchronous": False,
          "vision_input.max_pending_pairs": 8,
          "camera.width": FUZZ_CAMERA.width, "camera.height": FUZZ_CAMERA.height,
          "camera.fx": FUZZ_CAMERA.fx, "camera.fy": FUZZ_CAMERA.fy,
          "camera.cx": FUZZ_CAMERA.cx, "camera.cy": FUZZ_CAMERA.cy}


def test_fuzz_visual_features_node(node_harness, rendered):
    from sensor_msgs.msg import PointCloud2
    from stereobag import HEADS

    from av_perception.nodes.conversions import cloud_to_observations, time_to_sec
    from av_perception.nodes.visual_features_node import VisualFeaturesNode

    node = VisualFeaturesNode(parameter_overrides=_overrides(**VISION))
    h = node_harness(node, "fuzz_visual_peer")
    clouds = h.listen(PointCloud2, "visual/observations", 1000)
    problems = _record_problems(node.stage.diag)
    fuzz = Fuzz(h, seed=1603, vision=True)
    assert set(fuzz.subs) == {f"/stereo/{s}/{t}" for s in ("left", "right")
                              for t in ("image_raw", "camera_info")} | {"/speakers"}
    fuzz.call(FUZZ_MESSAGES, _vision_step(h, node.stage))
    assert fuzz.publish(PUBLISHED_MESSAGES) >= 0.9 * PUBLISHED_MESSAGES
    assert h.spin_until(lambda: not node.stage._worker._items, 30.0)
    assert not fuzz.crashes, fuzz.crashes[:10]
    _no_internal_errors(problems)
    assert node.frames_rejected > 100 and node.frames_published > 10
    for c in clouds:  # whatever was published is finite
        obs = cloud_to_observations(c)
        assert np.all(np.isfinite(obs["xyz"])) and np.all(np.isfinite(obs["variances"]))
    assert h.spin_until(lambda: any(s.level == b"\x02" and "dropped" in s.message
                                    for s in h.statuses()))
    # valid input again (the first pair may go to a jump back of the stamps)
    _spin(h, 0.2)
    before = len(clouds)
    got = {}

    def take():
        for c in clouds[before:]:
            got[round(time_to_sec(c.header.stamp), 6)] = c
        return got

    stamps = []
    for stamp in _valid_pairs(fuzz, rendered, 1_700_000_000.0, 5):
        stamps.append(round(stamp, 6))
        h.spin_until(lambda s=stamps[-1]: s in take(), 10.0)
    assert set(stamps[1:]) <= set(take()), (sorted(take()), stamps, node.last_error)
    assert not fuzz.crashes, fuzz.crashes[:10]
    obs = cloud_to_observations(got[stamps[-1]])
    xyz = obs["xyz"][np.argsort(obs["xyz"][:, 0])]
    assert len(xyz) == 2 and np.abs(xyz - HEADS).max() < 0.05, xyz


def test_fuzz_perception_node(node_harness, rendered, tmp_path):
    from sensor_msgs.msg import PointCloud2
    from stereobag import HEADS

    from av_perception.nodes.conversions import cloud_to_tracks, time_to_sec
    from av_perception.nodes.perception_node import PerceptionNode

    node = PerceptionNode(parameter_overrides=_overrides(**VISION, **{
        "tracking.diagnostics_period": 0.2, "tracking.publish_image": True}))
    h = node_harness(node, "fuzz_perception_peer")
    speakers = h.listen(PointCloud2, "speakers", 1000)
    problems = _record_problems(node.vision_stage.diag)
    problems_tracking = _record_problems(node.tracking_stage.diag)
    problems_fusion = _record_problems(node.fusion_stage.diag)
    fuzz = Fuzz(h, seed=1604, vision=True)
    assert set(fuzz.subs) == {f"/stereo/{s}/{t}" for s in ("left", "right")
                              for t in ("image_raw", "camera_info")}
    fuzz.call(FUZZ_MESSAGES, _vision_step(h, node.vision_stage))
    assert fuzz.publish(PUBLISHED_MESSAGES) >= 0.9 * PUBLISHED_MESSAGES
    assert h.spin_until(lambda: not node.vision_stage._worker._items, 30.0)
    assert not fuzz.crashes, fuzz.crashes[:10]
    for p in (problems, problems_tracking, problems_fusion):
        _no_internal_errors(p)
    assert node.vision_stage.frames_rejected > 100
    assert node.tracking_stage.outputs.published > 10
    assert h.spin_until(lambda: any(s.level == b"\x02" and "dropped" in s.message
                                    for s in h.statuses("vision")))
    # valid input again: the rendered heads, stamped now (the first pair may go to a jump
    # back of the stamps)
    _spin(h, 0.2)
    before = len(speakers)
    got = {}

    def take():
        for c in speakers[before:]:
            got[round(time_to_sec(c.header.stamp), 6)] = c
        return got

    t0 = node.get_clock().now().nanoseconds * 1e-9
    stamps = []
    for stamp in _valid_pairs(fuzz, rendered, t0, 30):
        stamps.append(round(stamp, 6))
        h.spin_until(lambda s=stamps[-1]: s in take(), 10.0)
    assert set(stamps[1:]) <= set(take()), (len(take()), node.last_error)
    assert not fuzz.crashes, fuzz.crashes[:10]
    tracks = cloud_to_tracks(got[stamps[-1]])
    assert len(tracks["ids"]) == 2 and np.all(np.isfinite(tracks["position"]))
    order = np.argsort(tracks["position"][:, 0])
    assert np.abs(tracks["position"][order] - HEADS).max() < 0.05
