"""Attention: one voice on two tracks (``attention.itd_resolution``).  Two people out of
view on the same side have ITDs closer than the ITD noise; the tracker may hear the
target's speech on the other's track.  Scripted speaking sequences with the head model's
real ITDs (known azimuths), and the tracking pipeline's ITD model against a known pose."""
import math

import numpy as np
import pytest

from av_perception.core.attention import AttentionConfig, AttentionSelector
from av_perception.core.config import MicArrayConfig, StereoCameraConfig
from av_perception.core.poses import quat_from_matrix
from av_perception.core.tracking import TrackerConfig
from av_perception.io.heads import load_head_model
from av_perception.pipeline import TrackingConfig, TrackingPipeline

pytestmark = pytest.mark.timeout(120)

FPS = 15.0
GEOMETRY = load_head_model(MicArrayConfig())


def at(azimuth_deg: float, distance: float = 2.3) -> np.ndarray:
    """A point in the camera frame at an azimuth (degrees, left positive)."""
    a = math.radians(azimuth_deg)
    return np.array([-distance * math.sin(a), 0.0, distance * math.cos(a)])


def itd_model(points):
    return np.ravel(GEOMETRY.itd(np.atleast_2d(points)))


def run(azimuths: dict, prob, unseen: dict, duration: float, config=None, present=None):
    """Step a selector at 15 fps over tracks at fixed azimuths; ``prob(id, t)`` their
    speaking probabilities, ``unseen`` {id: bool}, ``present(t)`` the ids reported.
    Returns (stamps, target ids, selector)."""
    sel = AttentionSelector(config or AttentionConfig())
    stamps = np.arange(int(round(duration * FPS))) / FPS
    targets = []
    for t in stamps:
        ids = sorted(azimuths) if present is None else present(t)
        out = sel.update(t, ids, np.array([at(azimuths[i]) for i in ids]).reshape(-1, 3),
                         [prob(i, t) for i in ids], ended=[],
                         unseen=[unseen[i] for i in ids], itd_model=itd_model)
        targets.append(out.track_id)
    return stamps, np.array(targets), sel


def heard_on_both(i, t):
    """Track 1 speaks 0-4 s; from 1.5 s its voice is heard on track 2 as well (0.95) and
    track 1's own probability sinks to 0.6 (what the tracker does with two people out of
    view on one side, `bench/attention_timeline.py` on the head-motion tuning seeds)."""
    if i == 1:
        return 0.95 if t < 1.5 else 0.6 if t < 4.0 else 0.02
    return 0.95 if 1.5 <= t < 4.0 else 0.02


def test_the_itds_of_two_people_out_of_view_on_one_side_are_within_the_resolution():
    # the head-motion scenes: people at -56 and -68 deg from a head panned by 40 deg
    d = abs(itd_model(at(-56.0))[0] - itd_model(at(-68.0))[0])
    assert d < AttentionConfig().itd_resolution
    # and on opposite sides, or one of them ahead, far apart
    assert abs(itd_model(at(50.0))[0] - itd_model(at(-60.0))[0]) > 5 * d
    assert abs(itd_model(at(-10.0))[0] - itd_model(at(-68.0))[0]) > 5 * d


def test_the_target_keeps_its_voice_heard_on_an_unseen_neighbour():
    az, unseen = {1: -56.0, 2: -68.0}, {1: True, 2: True}
    stamps, targets, sel = run(az, heard_on_both, unseen, 5.0)
    k = int(np.searchsorted(stamps, AttentionConfig().switch_delay - 1e-9))
    assert (targets[k:] == 1).all() and sel.switches == 0 and sel.deferred > 0
    # without the rule the neighbour takes it (the margin 0.3 is met): the test can fail
    _, targets, sel = run(az, heard_on_both, unseen, 5.0, AttentionConfig(itd_resolution=0))
    assert sel.switches >= 1 and (targets == 2).any()


@pytest.mark.parametrize("case", ["separable", "target in view", "candidate in view"])
def test_the_evidence_decides_when_the_two_can_be_told_apart(case):
    az = {1: -56.0, 2: -68.0}
    unseen = {1: True, 2: True}
    if case == "separable":
        az = {1: 50.0, 2: -60.0}
    elif case == "target in view":
        unseen[1] = False
    else:
        unseen[2] = False
    _, targets, sel = run(az, heard_on_both, unseen, 5.0)
    assert sel.switches == 1 and targets[-1] == 2


def test_a_turn_between_two_unseen_neighbours_switches_once():
    """Track 1 speaks 0-2 s, track 2 from 2.4 s: an onset after the target fell silent."""
    def prob(i, t):
        if i == 1:
            return 0.95 if t < 2.0 else 0.02
        return 0.95 if 2.4 <= t < 5.0 else 0.02

    stamps, targets, sel = run({1: -56.0, 2: -68.0}, prob, {1: True, 2: True}, 5.0)
    k = int(np.searchsorted(stamps, 2.4 + AttentionConfig().switch_delay - 1e-9))
    assert (targets[k:] == 2).all() and (targets[5:k] == 1).all() and sel.switches == 1


def test_an_unreported_target_keeps_its_voice_and_yields_to_a_new_onset():
    """The tracker stops reporting track 1 (silent, out of view) at 2 s.  Track 2's run
    began at 1.5 s while 1 spoke: the same voice, the held target stays.  A run of track 2
    that begins at 3 s, after 1 fell silent, is a turn: it switches."""
    def present(t):
        return [1, 2] if t < 2.0 else [2]

    def prob_same(i, t):
        if i == 1:
            return 0.95 if t < 1.5 else 0.6
        return 0.95 if t >= 1.5 else 0.02

    az, unseen = {1: -56.0, 2: -68.0}, {1: True, 2: True}
    _, targets, sel = run(az, prob_same, unseen, 4.0, present=present)
    assert targets[-1] == 1 and sel.switches == 0

    def prob_turn(i, t):
        if i == 1:
            return 0.95 if t < 1.5 else 0.02
        return 0.95 if t >= 3.0 else 0.02

    stamps, targets, sel = run(az, prob_turn, unseen, 4.5, present=present)
    k = int(np.searchsorted(stamps, 3.0 + AttentionConfig().switch_delay - 1e-9))
    assert (targets[k:] == 2).all() and (targets[5:k] == 1).all() and sel.switches == 1


def test_unseen_flags_are_checked():
    sel = AttentionSelector()
    with pytest.raises(ValueError, match="unseen flags"):
        sel.update(0.0, [1, 2], np.zeros((2, 3)), [0.9, 0.1], unseen=[True])


def test_the_pipeline_gives_the_itds_at_the_heads_pose():
    """A head panned 40 deg to the left: a person straight ahead of the turned camera has
    ITD 0, one straight ahead of the body is heard 40 deg to the right."""
    cam = StereoCameraConfig()
    pipe = TrackingPipeline(TrackerConfig(), MicArrayConfig(), cam,
                            TrackingConfig(fixed_frame="base_link"))
    a = math.radians(40.0)
    c, s = math.cos(a), math.sin(a)
    rot = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])  # camera -> fixed, panned left
    pipe.add_transform("base_link", cam.frame_id, 0.0, (0, 0, 0), quat_from_matrix(rot),
                       static=True)
    pipe.step(0.0, np.zeros((0, 3)), np.zeros((0, 3, 3)), frame_id=cam.frame_id)
    assert pipe.in_fixed_frame
    model = pipe._itd_model(0.0)
    ahead_of_camera = rot @ at(0.0)
    ahead_of_body = at(0.0)
    assert abs(model(ahead_of_camera)[0]) < 2e-6
    assert model(ahead_of_body)[0] == pytest.approx(itd_model(at(-40.0))[0], abs=2e-6)
