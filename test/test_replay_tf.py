"""``av-perception replay --fixed-frame``: a simulated bag with a panning head (/tf,
/tf_static) is played; the speakers come in the fixed frame at the ground truth; with
``--gaze`` the simulated head turns towards the speaker (gaze/joint_states)."""
import math

import numpy as np
import pytest
from replayutil import run_replay

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(300)]


def test_replay_publishes_tracks_in_the_fixed_frame(ros_context, tmp_path):
    pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs (make msgs)")
    from sensor_msgs.msg import JointState, PointCloud2

    from av_perception.eval.readers import read_ground_truth
    from av_perception.nodes.conversions import cloud_to_tracks
    from av_perception.sim import make_scene, simulate
    from av_perception.sim.head_motion import HeadMotionSpec

    scene = make_scene("single_static_anechoic", seed=2, duration=3.0,
                       head_motion=HeadMotionSpec(mode="scripted", pan_amplitude=20,
                                                  max_speed=60))
    simulate(scene, tmp_path)
    node = ros_context.create_node("replay_tf_listener")
    got = []
    node.create_subscription(PointCloud2, "/rtf/speakers", got.append, 200)
    joints = []
    node.create_subscription(JointState, "/rtf/gaze/joint_states", joints.append, 500)

    returncode, log = run_replay(ros_context, node, tmp_path / "bag", "--namespace", "rtf",
                                 "--fixed-frame", "base_link", "--delay", "1.5",
                                 "--linger", "1.5", "--gaze")
    assert returncode == 0, log
    gt = read_ground_truth(tmp_path)
    frames = sorted(gt.stamp.unique())
    checked = 0
    for msg in got:
        tracks = cloud_to_tracks(msg)
        t = tracks["stamp"]
        if t < frames[0] + 1.0 or not len(tracks["ids"]):
            continue
        assert tracks["frame_id"] == "base_link"
        # the tracks the images locate: an audio-only track (before the asynchronous
        # detector's first face, over 1 s of wall time on a loaded machine) is published
        # at a guess of its height (tracker.audio_birth_height: 0.16 m off here) with ~1 m
        # standard deviations; located tracks have ~0.02 m
        located = np.all(np.sqrt(tracks["variances"]) < 0.1, axis=1)
        people = gt[(np.abs(gt.stamp - t) < 1e-3) & gt.visible]
        for _, p in people.iterrows() if located.any() else ():
            d = np.linalg.norm(tracks["position"][located] - [p.x, p.y, p.z], axis=1)
            # a camera-frame track would be ~0.3-0.7 m off (20 deg pan at 1-2 m); located
            # tracks are ~0.02 m off, 0.054 m once with the replay's messages late at load 7
            assert d.min() < 0.08, (t, p.id, d.min())
            checked += 1
    assert checked >= 10, log
    # --gaze: the simulated head (neck at base_link's origin) ends up looking at the talker
    person = gt[gt.id == gt.id.iloc[0]].iloc[-1]
    assert scene.utterances and joints, log
    pan = [j.position[0] for j in joints]
    assert abs(pan[-1] - math.atan2(person.y, person.x)) < math.radians(3.0), (pan[-1], log)
    assert np.max(np.abs(np.diff(pan))) <= math.radians(60.0) * 0.1  # speed-limited
