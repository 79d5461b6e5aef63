"""Broken time (issue 16): clock jumps (a bag looped, use_sim_time reset, a clock step), a
camera that freezes while the audio goes on, audio and video drifting apart -- on the
tracking pipeline (what ``process`` and the nodes run) and on tracker_node in-process.

Every test feeds stamps, never waits for the wall clock; the nodes' diagnostics are waited
for with deadlines."""
import csv

import numpy as np
import pytest

from av_perception.pipeline import TrackingPipeline
from av_perception.pipeline.buffer import AUDIO, TimeOrderedBuffer

#: two people (m, left optical frame): the first speaks
PEOPLE = np.array([[-0.45, -0.1, 1.8], [0.4, 0.05, 2.4]])
VAR = np.array([1e-4, 1e-4, 4e-4])
FPS = 15.0
T0 = 1000.0


def speaker_itd():
    from av_perception.core.config import MicArrayConfig
    from av_perception.core.geometry import MicGeometry

    return float(MicGeometry.from_config(MicArrayConfig()).itd(PEOPLE[:1])[0])


ITD = speaker_itd()


def audio_of(stamp):
    """The 4 audio frames of the image period ending at ``stamp`` (s)."""
    t = stamp - 1.0 / FPS + (np.arange(4) + 1) / (4 * FPS)
    return t, np.full(4, ITD), np.ones(4)


def observations(rng):
    xyz = PEOPLE + rng.normal(0, 0.004, PEOPLE.shape)
    cov = np.array([np.diag(VAR)] * len(xyz))
    return xyz, cov, np.full(len(xyz), 0.9)


def run(pipe, stamps, audio_shift=0.0, images=True, rng=None, image_stamp=None):
    """Per frame: the audio of its period (stamps + ``audio_shift``), then the image
    (stamped ``image_stamp`` when given: a camera repeating a stamp; none when not
    ``images``) and, while the camera is frozen, the audio-only step.  Returns the
    outputs (image steps and audio-only steps)."""
    rng = rng or np.random.default_rng(0)
    outs = []
    for stamp in stamps:
        pipe.add_audio(*audio_of(stamp + audio_shift))
        if pipe.camera_frozen:
            out = pipe.step_audio_only()
            if out is not None:
                outs.append(out)
        if images:
            out = pipe.step(stamp if image_stamp is None else image_stamp,
                            *observations(rng))
            if out is not None:
                outs.append(out)
    return outs


def frames(t0, seconds):
    return t0 + np.arange(int(round(seconds * FPS))) / FPS


def test_stamps_jumping_back_restart_the_tracker_once_and_tracking_goes_on():
    """A looped bag: after 6 s the stamps restart at T0 (audio first, as replay publishes
    it).  One restart, one message naming the cause, the audio of the new timeline is
    kept (not taken for stale), and every image of the new timeline gives an output with
    the people tracked again."""
    pipe = TrackingPipeline()
    first = run(pipe, frames(T0, 6.0))
    assert len(first) == 90 and len(first[-1].ids) == 2
    assert pipe.pop_notices() == []
    second = run(pipe, frames(T0, 6.0))
    assert pipe.resets == 1
    notices = pipe.pop_notices()
    assert len(notices) == 1
    assert "stamps jumped back by 5.9 s" in notices[0]
    assert "bag looped or clock reset; state reset" in notices[0]
    assert len(second) == 90  # nothing dropped as late
    assert len(second[-1].ids) == 2
    assert second[-1].stamp == pytest.approx(T0 + 89 / FPS)
    # the new timeline's audio reached the tracker (the speaker is heard again)
    assert pipe.tracker.stats["audio_frames"] > 300
    assert max(second[-1].speaking) > 0.5
    assert pipe.buffer.head[AUDIO] < T0 + 6.0


def test_images_jumping_back_before_the_audio_restart_once_and_keep_the_new_audio():
    """perception_node's order: the image of the new timeline can come before its audio;
    the old timeline's audio that arrives after the restart is dropped from the buffer
    when the new audio comes."""
    pipe = TrackingPipeline()
    rng = np.random.default_rng(1)
    run(pipe, frames(T0, 4.0), rng=rng)
    # the image first, then the audio of the old timeline still in flight, then the new
    pipe.step(T0, *observations(rng))
    pipe.add_audio(*audio_of(T0 + 4.0))
    outs = run(pipe, frames(T0 + 1 / FPS, 4.0), rng=rng)
    assert pipe.resets == 1 and len(pipe.pop_notices()) == 1
    assert len(outs) == 60 and len(outs[-1].ids) == 2
    assert pipe.buffer.head[AUDIO] < T0 + 4.2


def test_a_forward_jump_restarts_the_tracker_once():
    pipe = TrackingPipeline()
    run(pipe, frames(T0, 3.0))
    outs = run(pipe, frames(T0 + 500.0, 3.0))
    assert pipe.resets == 1
    (notice,) = pipe.pop_notices()
    assert "stamps jumped forward by 497.1 s" in notice and "state reset" in notice
    assert len(outs) == 45 and len(outs[-1].ids) == 2
    # small gaps are not jumps
    run(pipe, frames(T0 + 506.0, 1.0))
    assert pipe.resets == 1 and pipe.pop_notices() == []


@pytest.mark.parametrize("how", ["no images", "repeated stamp"])
def test_a_frozen_camera_gives_audio_only_steps_until_the_images_come_back(how):
    pipe = TrackingPipeline()
    run(pipe, frames(T0, 4.0))
    assert not pipe.camera_frozen
    t_freeze = T0 + 4.0
    last_image = T0 + 59 / FPS
    frozen = run(pipe, frames(t_freeze, 5.0), images=how == "repeated stamp",
                 image_stamp=last_image)
    assert pipe.camera_frozen
    assert pipe.camera_frozen_for == pytest.approx(5.0, abs=0.15)
    # audio-only steps at most every 0.1 s (here every other audio message, 0.133 s) once
    # the camera timeout (1 s) passed, none before
    assert 28 <= pipe.audio_only_steps <= 31
    assert len(frozen) == pipe.audio_only_steps
    assert all(o.stamp > t_freeze + 0.9 for o in frozen)
    assert np.diff([o.stamp for o in frozen]).min() >= 0.09
    assert len(frozen[-1].ids) >= 1  # the speaker is still tracked
    if how == "repeated stamp":
        assert pipe.repeated_visual == 75
    assert pipe.pop_notices() == [] and pipe.resets == 0
    # the camera comes back: image steps again, no more audio-only steps
    back = run(pipe, frames(T0 + 9.0, 2.0))
    assert not pipe.camera_frozen
    n = pipe.audio_only_steps
    assert len(back) >= 29 and back[-1].stamp == pytest.approx(T0 + 9.0 + 29 / FPS)
    assert len(back[-1].ids) == 2
    run(pipe, frames(T0 + 11.0, 1.0))
    assert pipe.audio_only_steps == n


@pytest.mark.parametrize("shift", [6.0, -6.0])
def test_audio_and_video_drifting_apart_neither_stall_nor_grow_the_buffers(shift):
    """Audio stamps 6 s ahead of / behind the images for 40 s: every image gives an
    output, the offset is measured, and the audio waiting (the pipeline's buffer, the
    tracker's frames ahead of its time) stays bounded."""
    pipe = TrackingPipeline()
    per_s = 4 * FPS  # audio frames per second here
    bound = (pipe.tracking.max_audio_buffer + 1.0) * per_s
    outs = []
    sizes = []
    for k in range(8):
        outs += run(pipe, frames(T0 + 5.0 * k, 5.0), audio_shift=shift)
        sizes.append((pipe.buffered_audio, len(pipe.tracker._pending)))
    assert len(outs) == 600  # no image dropped, no stall
    assert pipe.av_offset == pytest.approx(shift, abs=0.1)
    assert not pipe.camera_frozen and pipe.audio_only_steps == 0
    assert pipe.resets == 0
    assert max(b for b, _ in sizes) <= bound
    assert max(p for _, p in sizes) <= bound
    assert sizes[-1] == sizes[-2] or max(sizes[-1]) <= bound  # flat, not growing
    assert len(outs[-1].ids) == 2


def test_state_stays_bounded_over_many_frames():
    """Soak guard: after 3000 frames (200 s) of normal input the buffers, the notices and
    the tracker's pending audio are as small as after 300."""
    pipe = TrackingPipeline()
    run(pipe, frames(T0, 20.0))
    small = (pipe.buffer.messages, len(pipe.tracker._pending), pipe.tracker.num_tracks)
    run(pipe, frames(T0 + 20.0, 180.0))
    big = (pipe.buffer.messages, len(pipe.tracker._pending), pipe.tracker.num_tracks)
    assert big[0] <= max(small[0], 2) and big[1] <= max(small[1], 8)
    assert big[2] <= 4 and len(pipe.notices) == 0


def test_buffer_drops_the_old_timeline_after_a_jump_back():
    buf = TimeOrderedBuffer(max_age=5.0)
    buf.add_audio([100.0, 100.1, 100.2], [0, 0, 0], [1, 1, 1])
    buf.add_audio([100.3, 100.4], [0, 0], [1, 1])
    assert buf.drop_audio_after(100.15) == 3
    assert buf.head[AUDIO] == pytest.approx(100.1) and buf.audio_frames == 2
    assert buf.drop_audio_after(0.0) == 2
    assert buf.head[AUDIO] is None and buf.messages == 0
    buf.add_audio([1.0], [0], [1])  # the new timeline is not stale
    assert buf.audio_frames == 1


# ------------------------------------------------------------------- tracker_node
def _cloud_obs(stamp, rng):
    from std_msgs.msg import Header

    from av_perception.nodes.conversions import make_pointcloud2, sec_to_time

    xyz = PEOPLE + rng.normal(0, 0.004, PEOPLE.shape)
    n = len(xyz)
    cols = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "weight": np.full(n, 0.9),
            "u": np.zeros(n), "v": np.zeros(n), "w": np.full(n, 40.0), "h": np.full(n, 40.0),
            "var_x": np.full(n, VAR[0]), "var_y": np.full(n, VAR[1]),
            "var_z": np.full(n, VAR[2])}
    return make_pointcloud2(Header(stamp=sec_to_time(stamp), frame_id="cam_left"),
                            {k: v.astype(np.float32) for k, v in cols.items()})


def _cloud_audio(stamps):
    from std_msgs.msg import Header

    from av_perception.nodes.conversions import make_pointcloud2, sec_to_time

    f32 = np.float32
    n = len(stamps)
    one = np.ones(n, f32)
    return make_pointcloud2(Header(stamp=sec_to_time(stamps[0]), frame_id="mics"), {
        "t_offset": (stamps - stamps[0]).astype(f32), "itd": np.full(n, ITD, f32),
        "ild": np.zeros(n, f32), "activity": one, "reliability": one,
        "azimuth": np.zeros(n, f32), "direct_path": one})


def _feed(node, stamps, audio_shift=0.0, images=True, rng=None):
    rng = rng or np.random.default_rng(0)
    for stamp in stamps:
        node._on_features(_cloud_audio(audio_of(stamp + audio_shift)[0]))
        if images:
            node._on_observations(_cloud_obs(stamp, rng))


def _tracker_node(node_harness, name):
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2

    from av_perception.nodes.tracker_node import TrackerNode

    overrides = {"tracking.publish_image": False, "tracking.diagnostics_period": 0.2}
    node = TrackerNode(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    h = node_harness(node, name)
    return node, h, h.listen(PointCloud2, "speakers", depth=1000)


def _values(status):
    return {kv.key: kv.value for kv in status.values}


@pytest.mark.ros
def test_tracker_node_says_once_that_the_stamps_jumped_back_and_keeps_publishing(
        node_harness):
    node, h, got = _tracker_node(node_harness, "time_jump_io")
    _feed(node, frames(T0, 4.0))
    assert h.spin_until(lambda: len(got) == 60)
    n_status = len(h.statuses())
    _feed(node, frames(T0, 4.0))  # the bag looped
    assert h.spin_until(lambda: len(got) == 120)  # every image of the new timeline
    assert node.pipeline.resets == 1 and node.pipeline.tracker.num_tracks == 2
    assert h.spin_until(lambda: len(h.statuses()) > n_status + 2)
    jumped = [s for s in h.statuses() if "stamps jumped back by" in s.message]
    assert len(jumped) == 1, [s.message for s in h.statuses()]  # said once
    assert jumped[0].level == b"\x01"
    assert "bag looped or clock reset; state reset" in jumped[0].message
    assert _values(h.statuses()[-1])["tracker_resets"] == "1"


@pytest.mark.ros
def test_tracker_node_frozen_camera_warns_lastingly_tracks_from_audio_and_recovers(
        node_harness):
    node, h, got = _tracker_node(node_harness, "frozen_camera_io")
    _feed(node, frames(T0, 3.0))
    assert h.spin_until(lambda: len(got) == 45)
    _feed(node, frames(T0 + 3.0, 3.0), images=False)  # the camera stops, audio goes on
    assert h.spin_until(lambda: len(got) >= 45 + 14)  # audio-only steps are published
    assert node.pipeline.audio_only_steps >= 14

    def frozen():
        return [s for s in h.statuses() if "camera frozen" in s.message]

    assert h.spin_until(lambda: len(frozen()) >= 2)  # a lasting condition
    s = frozen()[-1]
    assert s.level == b"\x01"
    assert "/visual/observations" in s.message and "stereo/left/image_raw" in s.message
    assert "for 3.0 s of audio" in s.message and "no images" in s.message
    assert float(_values(s)["camera_frozen_s"]) == pytest.approx(3.0, abs=0.1)
    _feed(node, frames(T0 + 6.0, 1.0))  # the images come back
    n = len(h.statuses())
    assert h.spin_until(lambda: len(h.statuses()) > n)
    assert "camera frozen" not in h.statuses()[-1].message
    assert float(_values(h.statuses()[-1])["camera_frozen_s"]) < 0.2
    assert not node.pipeline.camera_frozen
    assert node.pipeline.tracker.num_tracks == 2


@pytest.mark.ros
@pytest.mark.parametrize("shift", [5.0, -5.0])
def test_tracker_node_reports_audio_video_drift_with_the_fix(node_harness, shift):
    node, h, got = _tracker_node(node_harness, f"drift_io_{int(shift > 0)}")
    _feed(node, frames(T0, 8.0), audio_shift=shift)
    assert h.spin_until(lambda: len(got) == 120)  # no stall, every image
    assert node.pipeline.buffered_audio <= (node.tracking.max_audio_buffer + 1) * 4 * FPS

    def drift():
        return [s for s in h.statuses() if "audio stamps are 5.0 s" in s.message]

    assert h.spin_until(lambda: len(drift()) >= 2)
    s = drift()[-1]
    assert ("ahead of" if shift > 0 else "behind") in s.message
    assert "use_sim_time" in s.message and "clocks" in s.message
    assert float(_values(s)["av_offset_s"]) == pytest.approx(shift, abs=0.1)
    assert "camera frozen" not in s.message


# ------------------------------------------------------------------------ process
def _replayed_bag(src, dst, gap):
    """The bag ``src`` twice in a row as recorded from a looping player (the header stamps
    of the second pass repeat the first's: a jump back), the second pass without images
    (left and right, camera_info kept) between ``gap`` = (from, to) s of its start."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    with Reader(src) as r:
        conns = list(r.connections)
        msgs = [(c, t, bytes(raw)) for c, t, raw in r.messages()]
        start, length = r.start_time, r.duration
    with Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        out = {c.id: w.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data,
                                      rihs01=c.digest) for c in conns}
        for k in range(2):
            for c, t, raw in msgs:
                rel = (t - start) * 1e-9
                if k == 1 and "image" in c.topic and gap[0] <= rel < gap[1]:
                    continue
                w.write(out[c.id], t + k * (length + 10**8), raw)


def test_process_restarts_at_a_jump_back_and_tracks_from_audio_across_a_camera_gap(tmp_path):
    from av_perception.offline import process_bag
    from av_perception.sim import make_scene, simulate

    scene = make_scene("default", seed=1, duration=4.0)
    simulate(scene, tmp_path / "sim", storage="mcap", compressed=True)
    bag = tmp_path / "looped"
    _replayed_bag(tmp_path / "sim" / "bag", bag, gap=(1.0, 3.0))
    result = process_bag(bag, tmp_path / "tracks.csv")
    assert result.resets == 1
    jumps = [e for e in result.errors if "stamps jumped back by" in e]
    assert len(jumps) == 1 and "bag looped or clock reset; state reset" in jumps[0]
    assert result.frames == 60 + 30  # every image of both passes but the gap
    # the gap of 2 s: audio-only steps every 0.1 s after the 1 s camera timeout
    assert 8 <= result.audio_only_steps <= 11
    with open(tmp_path / "tracks.csv") as f:
        stamps = np.unique([float(r["stamp"]) for r in csv.DictReader(f)]) - scene.epoch
    in_gap = stamps[(stamps > 2.0) & (stamps < 3.0)]
    assert len(in_gap) >= 15 + 8  # pass 1's images and pass 2's audio-only steps


@pytest.mark.ros
def test_tracker_node_tells_a_lagging_visual_front_end_from_a_frozen_camera(node_harness):
    """The camera's own images keep coming (tracking.publish_image subscribes to them) but
    no observations: not the camera, the visual front-end is behind."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image, PointCloud2

    from av_perception.io.image_msgs import fill_image_msg
    from av_perception.nodes.tracker_node import TrackerNode

    node = TrackerNode(parameter_overrides=[
        Parameter("tracking.diagnostics_period", value=0.2)])
    h = node_harness(node, "lagging_vision_io")
    got = h.listen(PointCloud2, "speakers", depth=1000)
    _feed(node, frames(T0, 2.0))
    image = np.zeros((48, 64, 3), np.uint8)
    for stamp in frames(T0 + 2.0, 3.0):  # images and audio, no observations
        node._on_features(_cloud_audio(audio_of(stamp)[0]))
        node._on_image(fill_image_msg(Image(), image, "bgr8", stamp=stamp,
                                      frame_id="cam_left"))
    assert h.spin_until(lambda: len(got) >= 30 + 14)  # audio-only steps meanwhile

    def lagging():
        return [s for s in h.statuses() if "the visual front-end lags behind" in s.message]

    assert h.spin_until(lambda: len(lagging()) >= 1)
    assert "camera frozen" not in lagging()[-1].message
    assert "/visual/observations" in lagging()[-1].message
