"""The closed loop (issue 21): the gaze controller, the simulator's audio rendered a
segment at a time, and ``simulate --head-motion attention`` turning the simulated head
towards the package's own attention target."""
import json
import math

import numpy as np
import pytest

from av_perception.core.gaze import GazeController, GazeLimits, pan_tilt_towards

pytestmark = pytest.mark.timeout(300)


def test_pan_tilt_towards_known_directions():
    pan, tilt = pan_tilt_towards([[0, 0, 2], [-1, 0, 1], [1, 0, 1], [0, -1, 1]])
    assert np.allclose(np.degrees(pan), [0, 45, -45, 0])
    assert np.allclose(np.degrees(tilt), [0, 0, 0, 45])
    with pytest.raises(ValueError, match="finite"):
        pan_tilt_towards([[np.nan, 0, 1]])
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        pan_tilt_towards([[1.0, 2.0]])


def test_gaze_controller_reacts_late_turns_at_max_speed_and_stays_in_limits():
    ctl = GazeController(GazeLimits(max_speed=60.0, reaction_delay=0.4, pan_limit=30.0,
                                    tilt_limit=10.0))
    target = np.array([-2.0, -2.0, 2.0])  # 45 deg left, 35 deg up: beyond both limits
    pans, tilts = [], []
    for k in range(201):
        t = 0.01 * k
        ctl.see(t, target if 0.5 <= t < 1.5 else None)
        p, tl = ctl.update(t)
        pans.append(math.degrees(p))
        tilts.append(math.degrees(tl))
    pans = np.array(pans)
    assert np.all(pans[:90] == 0.0)  # seen from 0.5 s, reacted to after 0.4 s
    assert pans[91] > 0.0
    assert np.max(np.diff(pans)) <= 0.6 + 1e-9  # 60 deg/s on a 10 ms grid
    assert pans.max() == pytest.approx(30.0) and max(tilts) == pytest.approx(10.0)
    assert pans[-1] == pytest.approx(30.0)  # no target: the head holds its aim
    with pytest.raises(ValueError, match="max_speed"):
        GazeLimits(max_speed=0.0)
    with pytest.raises(ValueError, match="finite"):
        ctl.update(math.nan)


def test_stepped_audio_equals_the_whole_rendering():
    """Rendering segment by segment (as the closed loop does, chunk by chunk) gives
    render_audio's samples exactly -- moving head, moving people, fan and radio."""
    from av_perception.sim import make_scene
    from av_perception.sim.audio import render_audio
    from av_perception.sim.closed_loop import SteppedAudio
    from av_perception.sim.head_motion import HeadMotionSpec
    from av_perception.sim.scene import Scene

    d = make_scene("default", seed=4, duration=1.5,
                   head_motion=HeadMotionSpec(mode="scripted", pan_amplitude=30)).to_dict()
    d["distractors"] = [{"kind": "fan", "position": [0.5, 0.2, 2.0], "level_db": -12.0},
                        {"kind": "radio", "position": [-0.8, 0.0, 2.5], "level_db": -10.0,
                         "start": 0.4, "end": 1.2}]
    scene = Scene.from_dict(d)
    assert scene.head() is not None
    whole = render_audio(scene)
    stepped = SteppedAudio(scene, levels=whole.levels, lookahead=np.inf)
    out = np.zeros_like(whole.samples)
    done = 0
    t = 0.0
    while done < stepped.n:
        t += scene.audio.segment
        stepped.advance(t)
        ready = stepped.ready
        assert ready <= max(int(t * stepped.fs), 0) + 1  # never ahead of the known pose
        if ready > done:
            out[done:ready] = stepped.samples(done, ready)
            done = ready
    assert np.array_equal(out, whole.samples)


def _two_people_scene(duration=7.0):
    from av_perception.sim import make_scene
    from av_perception.sim.head_motion import HeadMotionSpec
    from av_perception.sim.scene import Scene

    motion = HeadMotionSpec(mode="attention", pan_amplitude=40, max_speed=60,
                            reaction_delay=0.4)
    d = make_scene("two_static", seed=7, duration=duration, head_motion=motion).to_dict()
    d["utterances"] = [{"person": 1, "start": 0.5, "end": 3.0},
                       {"person": 2, "start": 3.6, "end": 6.8}]
    return Scene.from_dict(d)


@pytest.mark.slow
def test_closed_loop_turns_the_head_to_each_speaker(tmp_path):
    """Two still people 15 deg left and right take turns: the head turns to each speaker
    (its pose from the pipeline's own attention, within the speed and pan limits); /tf
    in the bag is the pose the images were rendered with; the ground truth stays in the
    fixed frame."""
    from av_perception.core.poses import TransformTree
    from av_perception.offline import bag_transforms
    from av_perception.sim import simulate

    scene = _two_people_scene()
    res = simulate(scene, tmp_path / "cl")
    assert res.pipeline_steps == res.n_frames and res.attention_steps > 40
    gt = [json.loads(line) for line in open(tmp_path / "cl" / "ground_truth.jsonl")]
    t = np.array([r["stamp"] - scene.epoch for r in gt])
    pan = np.array([r["head_pan"] for r in gt])
    aim = {p.id: math.degrees(math.atan2(-p.waypoints[0][1], p.waypoints[0][3]))
           for p in scene.people}
    assert aim[1] > 10 and aim[2] < -10
    assert np.all(pan[t < 0.9] == 0.0)  # 0.5 s + the reaction delay: not yet
    assert np.all(np.abs(pan[(t > 2.3) & (t < 3.0)] - aim[1]) < 4.0), pan
    assert np.all(np.abs(pan[(t > 6.0) & (t < 6.8)] - aim[2]) < 4.0), pan
    assert np.max(np.abs(np.diff(pan))) <= 60.0 / 15 + 1e-6 and np.max(np.abs(pan)) <= 40
    # the ground truth: fixed frame, the still people do not move while the head turns
    for pid in (1, 2):
        xyz = np.array([[p["x"], p["y"], p["z"]] for r in gt for p in r["people"]
                        if p["id"] == pid])
        assert np.ptp(xyz, axis=0).max() < 0.05
    # /tf of the bag = the pose of the rendering: the faces' pixels from it
    dyn, static = bag_transforms(tmp_path / "cl" / "bag", [])
    tree = TransformTree()
    for r in static:
        tree.add(r[1], r[2], r[0], r[3], r[4], static=True)
    for r in dyn:
        tree.add(r[1], r[2], r[0], r[3], r[4])
    cam = scene.robot.camera
    checked = 0
    for rec in gt[::5]:
        pose = tree.lookup("base_link", cam.frame_id, rec["stamp"]).pose
        for p in rec["people"]:
            if p["u"] is None:
                continue
            c = pose.apply_inverse(np.array([[p["x"], p["y"], p["z"]]]))[0]
            assert cam.cx + cam.fx * c[0] / c[2] == pytest.approx(p["u"], abs=0.5)
            checked += 1
    assert checked > 20


def test_simulate_config_needs_the_closed_loop(tmp_path, capsys):
    from av_perception.cli import main

    cfg = tmp_path / "p.yaml"
    cfg.write_text("/**:\n  ros__parameters:\n    attention:\n      switch_delay: 0.3\n")
    assert main(["simulate", str(tmp_path / "out"), "--duration", "1", "--config",
                 str(cfg), "--quiet"]) == 2
    assert "--head-motion attention" in capsys.readouterr().err
