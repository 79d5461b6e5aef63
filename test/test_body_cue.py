"""The body cue (issue 17): a track whose person turns their head away stays observed from
the stereo depth of the head-and-torso column; nothing where the person has gone, nothing
for a track that never showed its face.  And the simulator's turning heads."""
import cv2
import numpy as np
import pytest

from av_perception.core.body_cue import BodyCue, BodyCueConfig, body_regions
from av_perception.core.config import ConfigError
from av_perception.core.detection import BlazeFacePass, DetectionConfig
from av_perception.core.vision import VisualFrontEnd, VisualObservations
from av_perception.sim import PersonSpec, RoomSpec, Scene, VideoSpec, make_scene
from av_perception.sim.schedule import turn_away_intervals
from av_perception.sim.trajectory import still, walk
from av_perception.sim.video import VideoRenderer

pytestmark = pytest.mark.timeout(120)

TRACK = 7


def _scene(people):
    return Scene(duration=4.0, room=RoomSpec(rt60=0.0), people=people,
                 video=VideoSpec(noise_std=2.0, talking_faces=False))


def _truth(scene, t):
    return scene.positions([t])[1][0]


def _front_end(scene, body=None):
    fe = VisualFrontEnd(calibration=scene.robot.camera,
                        detection=DetectionConfig(every_k=1), body=body)
    fe.lips = None  # the face mesh is not what is tested here
    return fe


@pytest.mark.parametrize("face,position", [("astronaut", (-0.5, -0.4, 1.8)),
                                           ("lfw:3", (0.4, -0.42, 3.0)),
                                           ("hopper", (0.9, 0.0, 4.2))])
def test_turned_head_is_observed_at_its_3d_position(face, position):
    """Face seen at t = 0.5, turned away at t = 1.5: the body observation lies within
    10 cm of the true face centre (depth within 3 %), weight below a face's."""
    scene = _scene([PersonSpec(1, still(position), face, turn_away=[[1.0, 3.0]])])
    r = VideoRenderer(scene)
    fe = _front_end(scene)
    rng = np.random.default_rng(0)
    f = r.render(0.5, rng)
    truth = _truth(scene, 0.5)
    seen = fe.process(f.left, f.right, 0.5, tracks=(truth[None], [TRACK]))
    assert list(seen.kind) == ["face"]
    f = r.render(1.5, rng)
    truth = _truth(scene, 1.5)
    obs = fe.process(f.left, f.right, 1.5, tracks=(truth[None] + [0.02, 0.01, 0.0], [TRACK]))
    assert list(obs.kind) == ["body"], obs.kind
    err = np.linalg.norm(obs.xyz[0] - truth)
    assert err < 0.10, err
    assert abs(obs.xyz[0, 2] - truth[2]) < 0.03 * truth[2]
    # the lateral uncertainty is the configured one, wider than a face's
    sd = np.sqrt(np.diag(obs.covariance[0]))
    assert sd[0] > 0.09 and sd[0] > np.sqrt(seen.covariance[0, 0, 0])
    assert 0 < obs.weight[0] <= BodyCueConfig().weight


def test_the_torso_look_follows_a_person_who_walks_while_turned_away():
    """Turned away from 0.8 s, walking sideways from 1.0 s: at 1.15 s the person is 7.5 cm
    (17 px) from where the track predicts them (its last sighting); the torso's look,
    learned while the face was seen, moves the observation to them."""
    scene = _scene([PersonSpec(1, walk([(0.0, -0.4, 2.2), (0.6, -0.4, 2.2)], speed=0.5,
                                       start=1.0), "lfw:3", turn_away=[[0.8, 3.0]])])
    r = VideoRenderer(scene)
    fe = _front_end(scene)
    rng = np.random.default_rng(4)
    f = r.render(0.5, rng)
    last = _truth(scene, 0.5)
    assert list(fe.process(f.left, f.right, 0.5, tracks=(last[None], [TRACK])).kind) == ["face"]
    f = r.render(1.15, rng)
    truth = _truth(scene, 1.15)
    assert np.linalg.norm(truth - last) > 0.07
    obs = fe.process(f.left, f.right, 1.15, tracks=(last[None], [TRACK]))
    assert list(obs.kind) == ["body"] and fe.body.stats["moved"] == 1
    assert np.linalg.norm(obs.xyz[0] - truth) < 0.025, (obs.xyz[0], truth)


def test_no_face_while_turned_away_but_the_person_stays_visible():
    scene = _scene([PersonSpec(1, still((0.2, -0.4, 2.2)), "astronaut", turn_away=[[1.0, 2.0]])])
    r = VideoRenderer(scene)
    fe = _front_end(scene)
    assert any(isinstance(d, BlazeFacePass) for d in fe.detector.detectors)
    rng = np.random.default_rng(3)
    f_turned = r.render(1.5, rng)
    assert f_turned.views[1].visible_left >= scene.video.visible_threshold
    assert len(fe.process(f_turned.left, f_turned.right, 1.5)) == 0
    f_back = r.render(2.5, rng)
    assert list(fe.process(f_back.left, f_back.right, 2.5).kind) == ["face"]


def test_nothing_where_the_person_has_gone():
    """The person walks out of the view; the track's head predicted where they stood
    shows the wall (another depth): no observation."""
    scene = _scene([PersonSpec(1, walk([(0.0, -0.4, 2.0), (2.1, -0.4, 2.0)], speed=3.0,
                                       start=1.0), "lfw:3")])
    r = VideoRenderer(scene)
    fe = _front_end(scene)
    rng = np.random.default_rng(1)
    f = r.render(0.5, rng)
    where = _truth(scene, 0.5)
    assert list(fe.process(f.left, f.right, 0.5, tracks=(where[None], [TRACK])).kind) == ["face"]
    for t in (2.5, 3.0):
        f = r.render(t, rng)
        assert not f.views[1].visible_left
        assert len(fe.process(f.left, f.right, t, tracks=(where[None], [TRACK]))) == 0
    st = fe.body.stats
    assert st["not_found"] + st["depth_mismatch"] + st["no_match"] >= 2


def test_no_observation_for_a_track_that_never_showed_its_face_or_after_max_gap():
    scene = _scene([PersonSpec(1, still((0.3, -0.4, 2.4)), "hopper", turn_away=[[1.0, 4.0]])])
    r = VideoRenderer(scene)
    rng = np.random.default_rng(2)
    fe = _front_end(scene, BodyCueConfig(max_gap=1.0))
    truth = _truth(scene, 1.5)
    f = r.render(1.5, rng)
    # a track born turned away (no face ever seen): the cue does not observe it
    assert len(fe.process(f.left, f.right, 1.5, tracks=(truth[None], [TRACK]))) == 0
    f0 = r.render(0.5, rng)
    fe.process(f0.left, f0.right, 0.5, tracks=(truth[None], [TRACK]))
    assert len(fe.process(f.left, f.right, 1.4, tracks=(truth[None], [TRACK]))) == 1
    # another track id at the same place has not shown its face
    assert len(fe.process(f.left, f.right, 1.45, tracks=(truth[None], [TRACK + 1]))) == 0
    f2 = r.render(1.6, rng)  # more than max_gap after the face was last seen at 0.5
    assert len(fe.process(f2.left, f2.right, 1.6, tracks=(truth[None], [TRACK]))) == 0
    # the cue off: nothing either
    off = _front_end(scene, BodyCueConfig(enabled=False))
    off.process(f0.left, f0.right, 0.5, tracks=(truth[None], [TRACK]))
    assert off.body is None
    assert len(off.process(f.left, f.right, 1.4, tracks=(truth[None], [TRACK]))) == 0


_OLD_PLACEMENT = dict(hold_height=False, face_above=0.0)


def _see_the_face(fe, renderer, scene, t, rng):
    """The front-end observes the face at ``t`` with the track at its true head."""
    f = renderer.render(t, rng)
    truth = _truth(scene, t)
    assert list(fe.process(f.left, f.right, t, tracks=(truth[None], [TRACK])).kind) \
        == ["face"]


@pytest.mark.parametrize("face,position", [("lfw:3", (0.4, -0.42, 3.0)),
                                           ("hopper", (-0.6, -0.4, 4.2))])
def test_a_turned_head_is_observed_at_its_face_height_not_down_the_body(face, position):
    """Face seen at 0.5 s, turned away at 1.5 s while the track's head is predicted
    0.12 m low (a track that drifted down the body): the observation keeps the height
    the face was seen at (within 3 cm); without ``hold_height`` the torso's look is
    searched around the drifted head: not found, or found >= 6 cm low."""
    scene = _scene([PersonSpec(1, still(position), face, turn_away=[[1.0, 3.0]])])
    r = VideoRenderer(scene)
    err = {}
    for name, body in (("held", BodyCueConfig()), ("old", BodyCueConfig(**_OLD_PLACEMENT))):
        fe = _front_end(scene, body)
        rng = np.random.default_rng(0)
        _see_the_face(fe, r, scene, 0.5, rng)
        f = r.render(1.5, rng)
        truth = _truth(scene, 1.5)
        obs = fe.process(f.left, f.right, 1.5,
                         tracks=(truth[None] + [0.0, 0.12, 0.0], [TRACK]))
        if name == "old" and not len(obs):  # its torso's look was searched too low
            err[name] = None
            continue
        assert list(obs.kind) == ["body"], (name, obs.kind)
        err[name] = obs.xyz[0] - truth
        assert abs(err[name][2]) < 0.04 * truth[2]
    assert abs(err["held"][1]) < 0.03 and np.linalg.norm(err["held"]) < 0.06, err
    assert err["old"] is None or err["old"][1] > 0.06, err


def test_no_body_observation_below_a_face_of_the_same_person():
    """A track whose predicted head lies 1.3 face widths below the person's detected face
    (in the same column, at the face's depth): the face is the track's, so no body
    observation is added under it; without ``face_above`` a second one was.  A track at
    another depth in that column is not explained by the face."""
    position = (0.3, -0.4, 2.6)
    scene = _scene([PersonSpec(1, still(position), "astronaut")])
    r = VideoRenderer(scene)
    side_m = 0.16 * 1.3
    kinds = {}
    # search 0: the body cue measures at the predicted head itself (as it does for a
    # track whose torso's look it has not learned, or a look found lower on a plain shirt)
    for name, body in (("new", BodyCueConfig(search=0.0)),
                       ("old", BodyCueConfig(search=0.0, **_OLD_PLACEMENT))):
        fe = _front_end(scene, body)
        rng = np.random.default_rng(6)
        _see_the_face(fe, r, scene, 0.5, rng)
        f = r.render(0.6, rng)
        low = _truth(scene, 0.6) + [0.0, side_m, 0.0]
        obs = fe.process(f.left, f.right, 0.6, tracks=(low[None], [TRACK]))
        kinds[name] = sorted(obs.kind)
        if name == "new":  # the face does not explain a track 40 % nearer in its column
            near = _truth(scene, 0.6) * 0.6 + [0.0, side_m, 0.0]
            grey = [cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in (f.left, f.right)]
            fe.body.observe(grey[0], grey[1], 0.7, np.stack([low, near]), [TRACK, TRACK + 1],
                            obs)
            assert fe.body._last_face == {TRACK: 0.7}, fe.body._last_face
    assert kinds["new"] == ["face"], kinds
    assert kinds["old"] == ["body", "face"], kinds


def test_body_regions_and_config_errors():
    c = BodyCueConfig(head_size=0.5, torso_width=1.0, torso_top=1.0, torso_bottom=2.0)
    head, torso = body_regions([99.5], [49.5], [20.0], c)
    np.testing.assert_allclose(head, [[95.0, 45.0, 10.0, 10.0]])
    np.testing.assert_allclose(torso, [[90.0, 70.0, 20.0, 20.0]])
    with pytest.raises(ConfigError, match="torso_top"):
        BodyCueConfig(torso_top=1.0, torso_bottom=0.5)
    scene = _scene([])
    fe = _front_end(scene)
    with pytest.raises(ValueError, match="one id per predicted head"):
        fe.body.observe(np.zeros((480, 640), np.uint8), np.zeros((480, 640), np.uint8), 0.0,
                        np.zeros((2, 3)) + [0, 0, 2], [1], VisualObservations.empty(0.0))
    assert isinstance(fe.body, BodyCue)


def test_turn_away_spec_schedule_and_preset():
    p = PersonSpec(1, still((0, -0.4, 2)), turn_away=[[3.0, 4.0], [1.0, 2.0]])
    assert p.turn_away == [[1.0, 2.0], [3.0, 4.0]]
    assert p.turned_away(1.0) and p.turned_away(3.9)
    assert not p.turned_away(2.0) and not p.turned_away(0.5)
    with pytest.raises(ValueError, match="turn_away interval"):
        PersonSpec(1, still((0, -0.4, 2)), turn_away=[[2.0, 1.0]])
    with pytest.raises(ValueError, match="overlap"):
        PersonSpec(1, still((0, -0.4, 2)), turn_away=[[1.0, 3.0], [2.0, 4.0]])
    for seed in range(20):
        iv = turn_away_intervals(15.0, np.random.default_rng(seed))
        assert 1 <= len(iv) <= 2
        assert iv[0][0] >= 2.0 and iv[-1][1] <= 13.0
        assert all(1.0 <= b - a <= 3.0 for a, b in iv)
        assert all(start - end >= 2.0 - 1e-9 for (_, end), (start, _) in zip(iv, iv[1:]))
    a = make_scene("default", seed=5, turn_away=True)
    b = make_scene("default", seed=5, turn_away=True)
    assert [p.turn_away for p in a.people] == [p.turn_away for p in b.people]
    assert all(p.turn_away for p in a.people)
    assert not any(p.turn_away for p in make_scene("default", seed=5).people)
    # the utterances do not change; the scene file keeps the intervals
    assert a.utterances == make_scene("default", seed=5).utterances
    again = Scene.from_dict(a.to_dict())
    assert [p.turn_away for p in again.people] == [p.turn_away for p in a.people]


def _ids_near(tracks_csv, scene, pid, t0, t1):
    """Track ids within 0.5 m of person ``pid`` in the frames of [t0, t1) (s)."""
    rows = np.atleast_1d(np.genfromtxt(tracks_csv, delimiter=",", names=True))
    rel = rows["stamp"] - scene.epoch
    out = []
    for t in np.unique(rel[(rel >= t0) & (rel < t1)]):
        truth = scene.positions([t])[pid][0]
        sel = np.abs(rel - t) < 1e-3
        xyz = np.column_stack([rows["x"][sel], rows["y"][sel], rows["z"][sel]])
        d = np.linalg.norm(xyz - truth, axis=1)
        out.append(int(rows["track_id"][sel][np.argmin(d)]) if d.min() <= 0.5 else None)
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_person_who_turns_away_for_2_5_s_keeps_their_track(tmp_path):
    """two_static (seed 7, 9 s): person 1 turns away from 3.0 to 5.5 s and is silent from
    2.5 to 6 s (their voice would keep the track alive).  With the body cue the same track
    follows them before, during and after; without it the track dies while they are
    turned away and they come back under a new id."""
    from av_perception.core.body_cue import BodyCueConfig
    from av_perception.offline import process_bag
    from av_perception.sim import simulate

    scene = make_scene("two_static", seed=7, duration=9.0)
    scene.people[0].turn_away = [[3.0, 5.5]]
    scene.utterances = [u for u in scene.utterances
                        if u.person != 1 or u.end <= 2.5 or u.start >= 6.0]
    simulate(scene, tmp_path / "scene")
    ids = {}
    for on in (True, False):
        out = tmp_path / f"tracks_{on}.csv"
        process_bag(tmp_path / "scene" / "bag", out, {BodyCueConfig: BodyCueConfig(enabled=on)})
        ids[on] = [_ids_near(out, scene, 1, a, b)
                   for a, b in ((2.5, 3.0), (3.0, 5.5), (6.0, 7.0))]
    before, during, after = ids[True]
    assert before and all(i == before[0] and i is not None for i in before)
    assert sum(i == before[0] for i in during) >= 0.9 * len(during), during
    assert after and all(i == before[0] for i in after), after
    before_off, _, after_off = ids[False]
    assert before_off[-1] is not None and after_off[-1] is not None
    assert after_off[-1] != before_off[-1]  # the cue is what keeps the id
