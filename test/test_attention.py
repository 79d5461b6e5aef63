"""Attention target: the selector on scripted speaking sequences (exact switch steps), its
config, the attention metrics on hand-made truth, the full pipeline on a simulated scene
(``process --attention --output-bag`` + ``evaluate``), and tracker_node publishing it."""
import numpy as np
import pandas as pd
import pytest

from av_perception.core.attention import NO_TARGET, AttentionConfig, AttentionSelector
from av_perception.core.config import ConfigError, StageConfig

FPS = 15.0
D = AttentionConfig().switch_delay  # 0.25 s: the 5th step of a run at 15 fps
POS = {1: (-0.5, 0.0, 2.0), 2: (0.6, 0.0, 2.5), 3: (0.0, 0.1, 3.0)}

pytestmark = pytest.mark.timeout(120)


def run(schedule, duration, config=None, present=None, prob=0.95):
    """Step a selector at 15 fps; ``schedule`` {id: [(start, end), ...]} of speaking
    (probability ``prob``, else 0.02); ``present(t)`` -> ids reported (default all).
    Returns (stamps, target ids, selector)."""
    sel = AttentionSelector(config or AttentionConfig())
    stamps = np.arange(int(round(duration * FPS))) / FPS
    targets = []
    for t in stamps:
        ids = sorted(POS) if present is None else present(t)
        p = [prob if any(a <= t < b for a, b in schedule.get(i, ())) else 0.02 for i in ids]
        out = sel.update(t, ids, np.array([POS[i] for i in ids]).reshape(-1, 3), p)
        targets.append(out.track_id)
        if out.valid:
            assert out.position == pytest.approx(POS[out.track_id])
    return stamps, np.array(targets), sel


def first_step_at(stamps, t):
    return int(np.searchsorted(stamps, t - 1e-9))


def test_first_speaker_is_taken_after_switch_delay():
    stamps, targets, _ = run({1: [(1.0, 4.0)]}, 5.0)
    k = first_step_at(stamps, 1.0 + D)  # the run reaches switch_delay at this step
    assert (targets[:k] == NO_TARGET).all() and (targets[k:] == 1).all()


def test_a_one_step_dip_does_not_restart_a_run():
    # silent at the step 1.133 s only (max_gap 0.07 s: one step at 15 fps)
    stamps, targets, _ = run({1: [(1.0, 1.1), (1.14, 4.0)]}, 5.0)
    k = first_step_at(stamps, 1.0 + D)
    assert (targets[:k] == NO_TARGET).all() and (targets[k:] == 1).all()
    stamps, targets, _ = run({1: [(1.0, 1.1), (1.14, 4.0)]}, 5.0, AttentionConfig(max_gap=0))
    assert (targets[:first_step_at(stamps, 1.2 + D)] == NO_TARGET).all()


def test_half_a_second_of_overlap_does_not_switch():
    stamps, targets, sel = run({1: [(0.0, 5.0)], 2: [(2.0, 2.5)]}, 5.0)
    k = first_step_at(stamps, D)
    assert (targets[k:] == 1).all() and sel.switches == 0


def test_a_turn_switches_after_switch_delay():
    stamps, targets, sel = run({1: [(0.0, 3.0)], 2: [(3.0, 6.0)]}, 6.0)
    k = first_step_at(stamps, 3.0 + D)
    assert (targets[first_step_at(stamps, D):k] == 1).all() and (targets[k:] == 2).all()
    assert sel.switches == 1


def test_a_turn_taken_in_an_overlap_switches_when_the_previous_speaker_stops():
    stamps, targets, sel = run({1: [(0.0, 3.0)], 2: [(2.5, 6.0)]}, 6.0)
    k = first_step_at(stamps, 3.0)  # 2 has spoken 0.5 s > switch_delay by then
    assert (targets[first_step_at(stamps, D):k] == 1).all() and (targets[k:] == 2).all()
    assert sel.switches == 1


def test_a_much_stronger_speaker_takes_over_a_weak_one():
    sel = AttentionSelector()
    for t in np.arange(0, 1, 1 / FPS):
        out = sel.update(t, [1, 2], [POS[1], POS[2]], [0.6, 0.02])
    assert out.track_id == 1
    hist = [sel.update(1 + t, [1, 2], [POS[1], POS[2]], [0.6, 0.95]).track_id
            for t in np.arange(0, 1, 1 / FPS)]
    k = first_step_at(np.arange(0, 1, 1 / FPS), D)  # 0.95 >= 0.6 + switch_margin
    assert hist[:k] == [1] * k and set(hist[k:]) == {2}


def test_pauses_are_held_and_the_last_speaker_kept():
    stamps, targets, _ = run({1: [(0.0, 2.0), (3.5, 4.0)]}, 12.0)
    assert (targets[first_step_at(stamps, D):] == 1).all()  # idle_target last_speaker


def test_idle_target_none_releases_after_hold_time():
    cfg = AttentionConfig(hold_time=1.0, idle_target="none")
    stamps, targets, _ = run({1: [(0.0, 2.0), (2.8, 4.0)]}, 7.0, cfg)
    on = targets == 1
    assert on[first_step_at(stamps, D):first_step_at(stamps, 4.9)].all()  # pause 0.8 s held
    # last speaking step 4 - 1/15 s; released when 1 s has passed since it
    assert (targets[first_step_at(stamps, 5.0) + 1:] == NO_TARGET).all()


def test_a_dead_track_releases_the_target_at_once():
    stamps, targets, sel = run({1: [(0.0, 3.0)], 2: [(2.0, 6.0)]}, 6.0,
                               present=lambda t: [1, 2] if t < 2.6 else [2])
    k = first_step_at(stamps, 2.6)  # 1 gone; 2 has spoken 0.6 s: taken at the same step
    assert (targets[first_step_at(stamps, D):k] == 1).all() and (targets[k:] == 2).all()
    assert sel.switches == 1
    _, targets, _ = run({1: [(0.0, 3.0)]}, 4.0, present=lambda t: [1, 2] if t < 2.0 else [2])
    assert (targets[first_step_at(stamps, 2.0):] == NO_TARGET).all()


def test_a_fixation_is_not_broken_within_min_dwell():
    """1 hands the turn to 2 at 3 s; then 2 pauses 0.3 s while 1 adds a short remark:
    without ``min_dwell`` the attention goes back to 1 and again to 2 (three switches in
    one turn), with ``min_dwell`` 1 s (the default) it stays on 2."""
    schedule = {1: [(0.0, 3.0), (3.1, 3.6)], 2: [(2.5, 3.2), (3.5, 6.0)]}
    stamps, targets, sel = run(schedule, 6.0, AttentionConfig(min_dwell=0.0))
    k = first_step_at(stamps, 3.0)
    assert targets[k] == 2 and 1 in targets[k:] and sel.switches == 3
    stamps, targets, sel = run(schedule, 6.0)
    assert AttentionConfig().min_dwell == 1.0
    assert (targets[k:] == 2).all() and sel.switches == 1


def test_a_target_the_tracker_stops_reporting_is_held_until_its_track_ends():
    """The tracker does not report a silent track out of view (it keeps its identity): the
    attention holds it at its last position instead of jumping to someone else, and
    releases it when the track ends (``ended``, as :meth:`update_output` passes it)."""
    sel = AttentionSelector()
    for t in np.arange(0, 2, 1 / FPS):
        out = sel.update(t, [1, 2], [POS[1], POS[2]], [0.95, 0.02], ended=[])
    assert out.track_id == 1
    for t in np.arange(2, 3, 1 / FPS):  # 1 unreported, 2 silent
        out = sel.update(t, [2], [POS[2]], [0.02], ended=[])
        assert out.track_id == 1 and out.position == pytest.approx(POS[1])
    out = sel.update(3.0, [1, 2], [POS[1], POS[2]], [0.02, 0.02], ended=[])
    assert out.track_id == 1 and sel.switches == 0
    out = sel.update(3.1, [2], [POS[2]], [0.02], ended=[1])
    assert out.track_id == NO_TARGET
    # held while silent: another speaker still takes it after switch_delay
    sel = AttentionSelector()
    for t in np.arange(0, 2, 1 / FPS):
        sel.update(t, [1, 2], [POS[1], POS[2]], [0.95, 0.02], ended=[])
    hist = [sel.update(2 + t, [2], [POS[2]], [0.95], ended=[]).track_id
            for t in np.arange(0, 1, 1 / FPS)]
    k = first_step_at(np.arange(0, 1, 1 / FPS), D)
    assert hist[:k] == [1] * k and set(hist[k:]) == {2}


def test_empty_nan_and_broken_inputs():
    sel = AttentionSelector()
    out = sel.update(0.0, [], np.zeros((0, 3)), [])
    assert out.track_id == NO_TARGET and np.isnan(out.position).all()
    for k in range(10):  # NaN speaking = silent
        out = sel.update(0.1 * (k + 1), [4], [POS[1]], [np.nan])
    assert out.track_id == NO_TARGET
    for k in range(10):
        out = sel.update(1 + 0.1 * k, [4], [POS[1]], [0.9])
    assert out.track_id == 4
    out = sel.update(2.5, [4], [[np.nan, 0, 1]], [0.9])  # a broken position: the last one
    assert out.track_id == 4 and out.position == pytest.approx(POS[1])
    with pytest.raises(ValueError, match="not finite"):
        sel.update(np.nan, [4], [POS[1]], [0.9])
    with pytest.raises(ValueError, match="same tracks"):
        sel.update(3.0, [4, 5], [POS[1]], [0.9, 0.1])
    out = sel.update(0.5, [4], [POS[1]], [0.9])  # time went back: a new timeline
    assert out.track_id == NO_TARGET and sel.switches == 0


def test_config_section_is_registered_and_validated():
    assert AttentionConfig in StageConfig.REGISTRY["attention"]
    with pytest.raises(ConfigError, match="attention.idle_target"):
        AttentionConfig(idle_target="nearest")
    with pytest.raises(ConfigError, match="attention.switch_delay"):
        AttentionConfig(switch_delay=-0.1)


# ---------------------------------------------------------------- metrics
def _gt(n=60):
    """Person 1 speaks frames 0-29, person 2 frames 30-59 (15 fps, absolute stamps)."""
    rows = []
    for k in range(n):
        t = 1e9 + k / FPS
        for pid in (1, 2):
            rows.append((k, t, pid, *POS[pid], (pid == 1) == (k < 30), True, 1.0))
    return pd.DataFrame(rows, columns=["frame", "stamp", "id", "x", "y", "z", "speaking",
                                       "visible", "visible_fraction"])


def test_attention_metrics_on_hand_made_truth():
    from av_perception.eval.attention import evaluate_attention

    gt = _gt()
    stamps = gt.groupby("frame")["stamp"].first().to_numpy()
    # on 1 until frame 36 (0.4 s into 2's turn), then on 2 with one excursion to 1
    tid = np.array([11] * 37 + [12] * 23)
    tid[50] = 11
    pos = np.array([POS[1] if i == 11 else POS[2] for i in tid])
    att = pd.DataFrame({"stamp": stamps, "track_id": tid, "x": pos[:, 0], "y": pos[:, 1],
                        "z": pos[:, 2]})
    r = evaluate_attention(gt, att)  # persons found by position
    # scored: frames 8-29 and 38-59 (0.5 s = 7.5 frames after each onset): 44; wrong: 50
    assert r["scored_frames"] == 44 and r["on_speaker"] == pytest.approx(43 / 44)
    assert r["turns"] == 2 and r["switches"] == 3 and r["max_switches_in_turn"] == 3
    assert r["turns_with_extra_switches"] == 1 and r["target_changes"] == 3
    # through the tracks' matches: track 12 at frame 50 is person 1 there
    r = evaluate_attention(gt, att, matches={(50, 11): 2})
    assert r["on_speaker"] == 1.0 and r["switches"] == 1
    att.loc[40:, "track_id"] = -1  # no target
    r = evaluate_attention(gt, att)
    assert r["no_target"] == pytest.approx(20 / 44)


# --------------------------------------------------------------- pipeline
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_process_writes_attention_on_the_speaker(tmp_path, capsys):
    """default preset, 15 s, seed 31 (attention tuned on 50-52): measured on the speaker
    1.000 of 138 scored frames, 5 switches in 6 turns, at most 1 in a turn."""
    from rosbags.highlevel import AnyReader

    from av_perception.cli import main
    from av_perception.eval import evaluate_files

    scene = tmp_path / "scene"
    assert main(["simulate", str(scene), "--preset", "default", "--seed", "31",
                 "--duration", "15"]) == 0
    tracks, att = tmp_path / "tracks.csv", tmp_path / "attention.csv"
    assert main(["process", str(scene / "bag"), "--output", str(tracks), "--attention",
                 str(att), "--output-bag", str(tmp_path / "out"), "--no-images", "-q"]) == 0
    m = evaluate_files(scene, [tracks, att])
    a = m["attention"]
    assert a["rows"] == m["tracking"]["num_frames"] == 225
    assert a["on_speaker"] >= 0.95, a
    assert a["max_switches_in_turn"] <= 1 and a["switches_per_turn"] <= 1.0, a
    with AnyReader([tmp_path / "out"]) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert conns["attention"].msgtype == "geometry_msgs/msg/PointStamped"
        assert conns["attention/voice_id"].msgtype == "std_msgs/msg/String"
        ids = [reader.deserialize(raw, c.msgtype).data
               for c, _, raw in reader.messages([conns["attention/voice_id"]])]
        points = [reader.deserialize(raw, c.msgtype)
                  for c, _, raw in reader.messages([conns["attention"]])]
    rows = pd.read_csv(att)
    assert len(ids) == len(rows)
    assert ids == [f"voice{i}" if i >= 0 else "" for i in rows["track_id"]]
    assert len(points) == int((rows["track_id"] >= 0).sum())
    assert {p.header.frame_id for p in points} == {"stereo_left_optical_frame"}
    xyz = rows[rows["track_id"] >= 0][["x", "y", "z"]].to_numpy()
    assert np.array([[p.point.x, p.point.y, p.point.z] for p in points]) == \
        pytest.approx(xyz, abs=1e-4)


# ------------------------------------------------------------------- node
@pytest.mark.ros
def test_tracker_node_publishes_attention_in_the_speakers_frame(node_harness):
    from geometry_msgs.msg import PointStamped
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import String
    from test_tracker_node import FPS as OBS_FPS
    from test_tracker_node import HOP, PEOPLE, audio_cloud, obs_cloud, speaker_itd

    from av_perception.nodes.conversions import cloud_to_tracks, time_to_sec
    from av_perception.nodes.tracker_node import TrackerNode

    node = TrackerNode(parameter_overrides=[Parameter("tracking.publish_image", value=False)])
    h = node_harness(node, "attention_test_io")
    points = h.listen(PointStamped, "attention")
    voice = h.listen(String, "attention/voice_id")
    speakers = h.listen(PointCloud2, "speakers")
    itd = speaker_itd()
    t0, n = 500.0, 45
    for k in range(n):  # person 0 talks throughout, person 1 is silent
        stamp = t0 + k / OBS_FPS
        a = t0 + (k - 1) / OBS_FPS
        node._on_features(audio_cloud(a + HOP * np.arange(int(1 / OBS_FPS / HOP) + 1), itd))
        node._on_observations(obs_cloud(stamp, PEOPLE))
    assert h.spin_until(lambda: len(speakers) == n and len(voice) == n)
    assert h.spin_until(lambda: len(points) >= 20)
    assert {p.header.frame_id for p in points} == {"cam_left"}
    talker = [cloud_to_tracks(m) for m in speakers][-1]
    order = np.argsort(talker["position"][:, 0])
    tid = int(talker["ids"][order][0])
    assert voice[-1].data == f"voice{tid}" and voice[0].data == ""
    last = points[-1]
    assert time_to_sec(last.header.stamp) == pytest.approx(t0 + (n - 1) / OBS_FPS, abs=1e-6)
    assert [last.point.x, last.point.y, last.point.z] == pytest.approx(PEOPLE[0], abs=0.02)
    # the points carry the stamps of speakers outputs
    assert {time_to_sec(p.header.stamp) for p in points} <= \
        {time_to_sec(m.header.stamp) for m in speakers}
    # switched off at run time: nothing more
    from rclpy.parameter import Parameter as P

    assert node.set_parameters([P("attention.enabled", value=False)])[0].successful
    before = len(voice)
    for k in range(n, n + 5):
        stamp = t0 + k / OBS_FPS
        node._on_observations(obs_cloud(stamp, PEOPLE))
    assert h.spin_until(lambda: len(speakers) == n + 5)
    assert not h.spin_until(lambda: len(voice) > before, timeout=1.0)
