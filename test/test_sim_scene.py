"""Scene description: frames, trajectories, turn-taking, presets, validation, JSON."""
import json

import numpy as np
import pytest

from av_perception.core.config import MicArrayConfig
from av_perception.sim import (
    PRESETS,
    PersonSpec,
    RobotSpec,
    RoomSpec,
    Scene,
    Utterance,
    make_scene,
)
from av_perception.sim.faces import face_names, load_face
from av_perception.sim.schedule import overlap_time, turn_taking
from av_perception.sim.trajectory import Trajectory, still, walk


def test_camera_frame_to_room_and_back():
    robot = RobotSpec(position=(1.0, 2.0, 1.2), yaw=np.pi / 2)  # looking along room +y
    # forward (z) -> room +y, right (x) -> room +x, down (y) -> room -z
    np.testing.assert_allclose(robot.to_room([[0, 0, 2.0]]), [[1.0, 4.0, 1.2]], atol=1e-12)
    np.testing.assert_allclose(robot.to_room([[1.0, 0, 0]]), [[2.0, 2.0, 1.2]], atol=1e-12)
    np.testing.assert_allclose(robot.to_room([[0, 0.5, 0]]), [[1.0, 2.0, 0.7]], atol=1e-12)
    p = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(robot.to_camera(robot.to_room(p)), p, atol=1e-12)
    assert np.linalg.det(robot.rotation) == pytest.approx(1.0)  # right-handed


def test_microphones_come_from_the_config():
    mics = MicArrayConfig(left=(-0.09, 0.02, 0.0), right=(0.09, 0.02, 0.0))
    scene = Scene(robot=RobotSpec(mics=mics), people=[PersonSpec(1, still((0, 0, 2.0)))])
    assert scene.robot.mics is mics
    again = Scene.from_dict(json.loads(json.dumps(scene.to_dict())))
    assert again.robot.mics == mics and again.robot.camera == scene.robot.camera


def test_trajectories():
    w = walk([(0, 0, 2), (1, 0, 2), (1, 0, 3)], speed=0.5, start=1.0, pauses=[2.0])
    assert [row[0] for row in w] == [1.0, 3.0, 5.0, 7.0]
    tr = Trajectory(w)
    np.testing.assert_allclose(tr.position([0.0, 2.0, 4.0, 6.0, 9.0]),
                               [[0, 0, 2], [0.5, 0, 2], [1, 0, 2], [1, 0, 2.5], [1, 0, 3]])
    assert tr.max_speed() == pytest.approx(0.5) and not tr.is_static()
    assert Trajectory(still((0, 0, 1))).is_static()
    sway = Trajectory(still((0, 0, 2)), sway=0.02).position(np.linspace(0, 20, 2001))
    # sway 0.02 m: sinusoids of summed amplitude 1.0 x sway across and 0.8 x sway in depth,
    # so peak to peak at most 0.04 m and 0.032 m (measured over 20 s: 0.040, 0.031)
    assert 0.035 < np.ptp(sway[:, 0]) <= 0.04 + 1e-9
    assert 0.025 < np.ptp(sway[:, 2]) <= 0.032 + 1e-9
    with pytest.raises(ValueError, match="increasing"):
        Trajectory([[1, 0, 0, 2], [1, 0, 0, 3]])


def test_turn_taking_schedule():
    rng = np.random.default_rng(3)
    utt = turn_taking({1: 1.0, 2: 1.0, 3: 0.0}, 60.0, rng, overlap_prob=0.3)
    assert {u.person for u in utt} == {1, 2}  # person 3 is silent
    assert all(0 <= u.start < u.end <= 60.0 - 0.3 + 1e-9 for u in utt)
    assert overlap_time(utt) > 0
    for pid in (1, 2):  # nobody overlaps themselves
        own = [u for u in utt if u.person == pid]
        assert all(a.end <= b.start for a, b in zip(own, own[1:]))
    starts = np.array([u.start for u in utt])
    ends = np.array([u.end for u in utt])
    gaps = starts[1:] - np.maximum.accumulate(ends)[:-1]
    assert np.any(gaps > 0.2)  # pauses
    assert turn_taking({1: 1.0, 2: 1.0}, 60.0, np.random.default_rng(3), overlap_prob=0.0) \
        and overlap_time(turn_taking({1: 1.0, 2: 1.0}, 60.0, np.random.default_rng(3))) == 0


def test_speaking_status_follows_utterances():
    scene = Scene(duration=5.0, people=[PersonSpec(1, still((0, 0, 2.0))),
                                        PersonSpec(2, still((0.5, 0, 2.0)))],
                  utterances=[Utterance(1, 1.0, 2.0), Utterance(2, 1.5, 3.0)])
    s = scene.speaking([0.5, 1.0, 1.7, 2.0, 2.9, 3.0])
    assert s[1].tolist() == [False, True, True, False, False, False]
    assert s[2].tolist() == [False, False, True, True, True, False]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_and_deterministic(name):
    a, b = make_scene(name, seed=7), make_scene(name, seed=7)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != make_scene(name, seed=8).to_dict()
    assert a.duration <= 20.0 and a.utterances
    for p in a.people:
        load_face(p.face)
    fps = a.robot.camera.fps
    assert a.n_frames == int(a.duration * fps)


def test_preset_difficulty():
    hard = make_scene("hard", seed=0)
    assert len(hard.people) == 4 and hard.room.rt60 == 0.6 and hard.noise.snr_db == 5.0
    assert overlap_time(hard.utterances) > 0
    t = hard.frame_times()
    pos = hard.positions(t)
    cam = hard.robot.camera
    u = {pid: cam.cx + cam.fx * p[:, 0] / p[:, 2] for pid, p in pos.items()}
    out_of_view = [pid for pid, col in u.items() if np.all((col < -50) | (col > cam.width + 50))]
    assert out_of_view and any(u.person in out_of_view for u in hard.utterances)
    assert all(p.trajectory().max_speed() > 0 for p in hard.people)
    easy = make_scene("single_static_anechoic", seed=0)
    assert easy.room.anechoic and easy.people[0].trajectory().is_static()
    default = make_scene("default")
    assert (len(default.people), default.room.rt60, default.noise.snr_db) == (3, 0.4, 15.0)


def test_invalid_scenes_are_refused_with_clear_messages():
    with pytest.raises(ValueError, match="leaves the room"):
        Scene(people=[PersonSpec(1, still((0, 0, 6.0)))])
    with pytest.raises(ValueError, match="unknown person"):
        Scene(people=[PersonSpec(1, still((0, 0, 2.0)))], utterances=[Utterance(2, 0, 1)])
    with pytest.raises(ValueError, match="overlap"):
        Scene(people=[PersonSpec(1, still((0, 0, 2.0)))],
              utterances=[Utterance(1, 0, 2), Utterance(1, 1, 3)])
    with pytest.raises(ValueError, match="after the scene"):
        Scene(duration=2.0, people=[PersonSpec(1, still((0, 0, 2.0)))],
              utterances=[Utterance(1, 1, 3)])
    with pytest.raises(ValueError, match="rt60"):
        RoomSpec(rt60=-0.1)
    with pytest.raises(ValueError, match="unknown face"):
        load_face("lfw:100")
    with pytest.raises(ValueError, match="unknown scene field"):
        Scene.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="unknown preset"):
        make_scene("nope")
    assert "astronaut" in face_names() and "lfw:99" in face_names()
