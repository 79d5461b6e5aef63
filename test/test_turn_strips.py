"""Issue 21, the cost of a turning head: a turn between keyframes searches only the strip
that came into view (detection.turn_edge_search) instead of running a full keyframe, in
the frame (process) and on the live nodes' detection worker; the face coming into view
is found all the same and the face already held is kept."""
import numpy as np
import pytest
from test_blazeface import BlazeFaceConfig, matches, needs_models, paste_faces
from test_face_search import K_CAM, _pan, astronaut, coffee  # noqa: F401 - fixtures

from av_perception.core.detection import DetectionPipeline
from av_perception.core.face_search import entering_strip

pytestmark = pytest.mark.timeout(300)

TURN = 7.0  # degrees: more than detection.turn_keyframe (6)


def _scene(astronaut, coffee):  # noqa: F811 - the fixtures' values
    """A keyframe with one face; after a turn by TURN deg, that face moved with the turn
    and a second face whole in the strip that came into view (the truth boxes)."""
    first, truth0 = paste_faces(astronaut, coffee, [(300, 200, 40)])
    R1 = _pan(TURN)
    strip = entering_strip(640, 480, K_CAM, np.eye(3), R1, 48.0)
    assert strip is not None and strip[0] == 0.0 and strip[2] > 90  # on the left
    moved = K_CAM @ R1.T @ np.linalg.inv(K_CAM) @ np.array([320.0, 220.0, 1.0])
    x1 = moved[0] / moved[2] - 20  # the first face's box where the turn moved it
    second, truth1 = paste_faces(astronaut, coffee, [(int(round(x1)), 200, 40), (30, 220, 40)])
    assert truth1[1][0] + truth1[1][2] < strip[2]  # the new face lies whole in the strip
    return first, truth0, second, truth1, R1


@needs_models
@pytest.mark.parametrize("edge", [True, False])
def test_a_turn_in_the_frame_searches_the_strip_not_a_keyframe(astronaut, coffee, edge):  # noqa: F811
    """process (detection in the frame): with the edge search the turned frame is a
    tracked frame whose strip finds the new face (no turn keyframe); without it, a turn
    keyframe finds both."""
    first, truth0, second, truth1, R1 = _scene(astronaut, coffee)
    pipe = DetectionPipeline(BlazeFaceConfig(every_k=3, turn_keyframe=6.0,
                                             turn_edge_search=edge), min_size=9)
    pipe.tracker.K = K_CAM
    pipe.tracker.rotation = np.eye(3)
    dets0 = pipe.detect(first)
    assert len(dets0) == 1 and matches(dets0[0], truth0[0], 0.4)
    pipe.tracker.rotation = R1
    dets1 = pipe.detect(second)
    for box in truth1:
        assert any(matches(d, box, 0.4) for d in dets1), [(d.x, d.y, d.w) for d in dets1]
    assert len(dets1) == 2
    if edge:
        assert pipe.stats["keyframes"] == 1 and pipe.stats["turn_keyframes"] == 0
        assert pipe.stats["entering"] == 1
        assert sum(d.tracked for d in dets1) == 1  # the held face, tracked through the turn
    else:
        assert pipe.stats["keyframes"] == 2 and pipe.stats["turn_keyframes"] == 1


@needs_models
@pytest.mark.parametrize("edge", [True, False])
def test_a_turn_on_the_live_worker_searches_the_strip_not_a_keyframe(astronaut, coffee,  # noqa: F811
                                                                     edge):
    """perception_node (asynchronous detection): the turned frame sends the worker the
    strip (with the boxes held then) instead of a full detection; the face found joins
    the held face on the next frame.  Without the edge search: a full turn keyframe."""
    from av_perception.pipeline import AsyncDetection

    first, truth0, second, truth1, R1 = _scene(astronaut, coffee)
    det = AsyncDetection(DetectionPipeline(BlazeFaceConfig(every_k=3, turn_keyframe=6.0,
                                                           turn_edge_search=edge), min_size=9))
    try:
        tracker = det.pipeline.tracker
        tracker.K = K_CAM
        tracker.rotation = np.eye(3)
        assert det.detect(first) == []  # nothing held: a full detection starts
        assert det.wait_idle()
        held = det.detect(first)  # ... and is applied
        assert len(held) == 1 and matches(held[0], truth0[0], 0.4)
        tracker.rotation = R1
        out = det.detect(second)  # the turn: the held face tracked, a search started
        assert len(out) == 1 and matches(out[0], truth1[0], 0.4)
        assert det.wait_idle()
        out = det.detect(second)  # the search's faces applied
        for box in truth1:
            assert any(matches(d, box, 0.4) for d in out), [(d.x, d.y, d.w) for d in out]
        assert len(out) == 2 and det.detections_run == 2
        stats = det.pipeline.stats
        if edge:
            assert stats["turn_strips"] == 1 and stats["turn_keyframes"] == 0
            assert stats["entering"] == 1 and stats["keyframes"] == 1
        else:
            assert stats["turn_strips"] == 0 and stats["turn_keyframes"] == 1
            assert stats["keyframes"] == 2
    finally:
        det.close()


def _tilt(deg):
    """Camera -> fixed rotation of a head tilted by ``deg`` about the camera's x axis."""
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


@needs_models
def test_a_tilt_brings_no_strip_and_still_makes_a_keyframe(astronaut, coffee):  # noqa: F811
    """A turn that brings no new columns into view (a tilt by TURN deg): no strip covers
    what came into view (rows at the top), so the frame is a turn keyframe as before."""
    first, truth0 = paste_faces(astronaut, coffee, [(300, 200, 40)])
    pipe = DetectionPipeline(BlazeFaceConfig(every_k=3, turn_keyframe=6.0,
                                             turn_edge_search=True), min_size=9)
    pipe.tracker.K = K_CAM
    pipe.tracker.rotation = np.eye(3)
    assert len(pipe.detect(first)) == 1
    pipe.tracker.rotation = _tilt(TURN)
    assert pipe.turned() and pipe.entering_crop(640, 480) is None
    second, truth1 = paste_faces(astronaut, coffee, [(300, 180, 40), (450, 20, 40)])
    dets = pipe.detect(second)
    assert pipe.stats["turn_keyframes"] == 1 and pipe.stats["keyframes"] == 2
    for box in truth1:  # the face that came in at the top too
        assert any(matches(d, box, 0.4) for d in dets), [(d.x, d.y, d.w) for d in dets]
