"""Simulator layouts for who-is-speaking (issue 18): people on one bearing at different
depths and heights, and double-talk turn schedules."""
import math

import numpy as np
import pytest

from av_perception.core.config import MicArrayConfig
from av_perception.core.geometry import MicGeometry
from av_perception.sim import make_scene
from av_perception.sim.schedule import double_talk, double_talk_fractions, overlap_time

MICS = MicArrayConfig()
GEOM = MicGeometry(MICS.left, MICS.right)


def _bearing(p):
    return math.degrees(math.atan2(p[0], p[2]))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("preset", ["one_bearing", "one_bearing_three"])
def test_one_bearing_layout(preset):
    """Two people on one bearing (within 1 deg, ITDs within 2 us), one seated near, one
    standing behind; both faces in view and apart in the image; they take turns."""
    scene = make_scene(preset, seed=3)
    pos = {pid: p[0] for pid, p in scene.positions(np.array([0.0])).items()}
    near, far = pos[1], pos[2]
    assert abs(_bearing(near) - _bearing(far)) < 1.0
    assert abs(GEOM.itd(near)[0] - GEOM.itd(far)[0]) < 2e-6
    assert 1.3 < np.linalg.norm(near) < 1.7 and 2.9 < np.linalg.norm(far) < 3.3
    assert near[1] - far[1] > 0.4  # seated (y down) vs standing
    cam = scene.robot.camera
    v = [cam.cy + cam.fy * p[1] / p[2] for p in (near, far)]
    assert abs(v[0] - v[1]) > 50  # pixels between the face centres
    for p in (near, far):
        assert 0 < cam.cx + cam.fx * p[0] / p[2] < cam.width
    talkers = {u.person for u in scene.utterances}
    assert {1, 2} <= talkers
    if preset == "one_bearing_three":
        assert len(scene.people) == 3 and abs(_bearing(pos[3]) - _bearing(near)) > 20


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", range(8))
def test_double_talk_schedule(seed):
    """Every next talker starts 30-80 % into the current turn; never three at once."""
    rng = np.random.default_rng(seed)
    utt = double_talk({1: 1.0, 2: 1.0, 3: 0.5}, 15.0, rng)
    assert len(utt) >= 5 and all(u.end <= 14.7 + 1e-9 for u in utt)
    fr = double_talk_fractions(utt)
    assert len(fr) == len(utt) - 1  # each turn but the first starts inside another
    assert all(0.3 - 2e-3 <= f <= 0.8 + 2e-3 for f in fr), fr
    for a, b in zip(utt, utt[1:]):
        assert a.person != b.person and b.end > a.end
    edges = sorted({e for u in utt for e in (u.start, u.end)})
    for a, b in zip(edges, edges[1:]):
        mid = 0.5 * (a + b)
        assert sum(u.start <= mid < u.end for u in utt) <= 2
    assert overlap_time(utt) > 0.3 * (utt[-1].end - utt[0].start)


@pytest.mark.timeout(60)
def test_double_talk_preset_and_option():
    scene = make_scene("double_talk", seed=1)
    fr = double_talk_fractions(scene.utterances)
    assert fr and all(0.3 - 2e-3 <= f <= 0.8 + 2e-3 for f in fr)
    # any preset: the same people and talkers, the double-talk turns
    plain = make_scene("two_static", seed=1)
    dt = make_scene("two_static", seed=1, double_talk=True)
    assert [p.id for p in dt.people] == [p.id for p in plain.people]
    assert {u.person for u in dt.utterances} == {u.person for u in plain.utterances}
    assert overlap_time(dt.utterances) > overlap_time(plain.utterances) + 1.0
    fr = double_talk_fractions(dt.utterances)
    assert fr and all(0.3 - 2e-3 <= f <= 0.8 + 2e-3 for f in fr)
    with pytest.raises(ValueError, match="into"):
        double_talk({1: 1.0, 2: 1.0}, 10.0, np.random.default_rng(0), into=(0.5, 1.2))
