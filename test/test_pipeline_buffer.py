"""The time-ordered input buffer shared by the fusion and tracking stages."""
import math

import numpy as np
import pytest

from av_perception.pipeline import InputError, TimeOrderedBuffer, TrackingPipeline


def test_audio_visual_and_events_are_released_in_stamp_order_up_to_a_time():
    b = TimeOrderedBuffer()
    b.add_audio([1.2, 1.0, 1.1], [3e-4, 1e-4, 2e-4], [1, 1, 1])
    b.add_audio([0.9, 1.3], [0.0, 4e-4], [1, 1])
    b.add_visual(1.15, "v2")
    b.add_visual(1.05, "v1")
    b.add_events(1.3, "e2")
    b.add_events(1.0, "e1")
    assert b.head == {"audio": 1.3, "visual": 1.15, "events": 1.3}
    assert b.messages == 6 and b.audio_frames == 5
    got = b.release(1.15)
    assert list(got.audio[0]) == [0.9, 1.0, 1.1]
    assert list(got.audio[1]) == [0.0, 1e-4, 2e-4]
    assert got.visual == [(1.05, "v1"), (1.15, "v2")]
    assert got.events == [(1.0, "e1")]
    rest = b.release()
    assert list(rest.audio[0]) == [1.2, 1.3] and rest.events == [(1.3, "e2")]
    assert b.messages == 0 and b.audio_frames == 0


def test_audio_activity_travels_with_its_frames():
    """The frames' activity (the speaking model's inactive frames) is released in stamp
    order with them, split where a release cuts a message; a message without it makes
    the release carry none (the tracker then takes the weights)."""
    b = TimeOrderedBuffer()
    b.add_audio([1.2, 1.0, 1.1], [3e-4, 1e-4, 2e-4], [0.1, 0.2, 0.3],
                activity=[0.9, 0.7, 0.8])
    b.add_audio([0.9, 1.3], [0.0, 4e-4], [0.4, 0.5], activity=[0.6, 1.0])
    got = b.release(1.15)
    assert list(got.audio[0]) == [0.9, 1.0, 1.1]
    assert list(got.audio_activity) == [0.6, 0.7, 0.8]
    assert list(b.release().audio_activity) == [0.9, 1.0]
    b.add_audio([2.0], [0.0], [1.0], activity=[0.5])
    b.add_audio([2.1], [0.0], [1.0])
    assert b.release().audio_activity is None
    with pytest.raises(InputError, match="activity"):
        b.add_audio([3.0, 3.1], [0.0, 0.0], [1.0, 1.0], activity=[0.5])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_message_with_a_non_finite_stamp_is_refused_and_nothing_of_it_is_kept(bad):
    b = TimeOrderedBuffer()
    b.add_audio([1.0], [0.0], [1.0])
    with pytest.raises(InputError, match="audio frames with non-finite stamps"):
        b.add_audio([1.1, bad], [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(InputError, match="visual observations with a non-finite stamp"):
        b.add_visual(bad, "v")
    with pytest.raises(InputError, match="events with a non-finite stamp"):
        b.add_events(bad, "e")
    with pytest.raises(InputError, match="3 stamps, 2 ITDs"):
        b.add_audio([1, 2, 3], [0, 0], [1, 1, 1])
    assert b.messages == 1 and b.head["audio"] == 1.0
    b.add_audio([1.2], [0.0], [1.0])  # the next valid message is taken
    assert list(b.release().audio[0]) == [1.0, 1.2]


def test_limits_drop_the_oldest_and_count_them():
    b = TimeOrderedBuffer(max_messages=3)
    for k in range(3):
        b.add_audio([k + 0.5, k + 0.6], [0, 0], [1, 1])
    b.add_visual(0.7, "v")  # the oldest message (audio at 0.5) goes
    assert b.dropped == {"audio": 1, "visual": 0, "events": 0} and b.dropped_audio_frames == 2
    b = TimeOrderedBuffer(max_age=1.0)
    b.add_audio([0.0, 0.1], [0, 0], [1, 1])
    b.add_audio([1.05], [0], [1])  # 0.1 is still within 1 s
    assert b.audio_frames == 3
    b.add_audio([1.2], [0], [1])
    assert b.audio_frames == 2 and b.dropped_audio_frames == 2
    # frames left out by the mask still advance the head
    assert b.add_audio([2.0, 2.1], [0, 0], [1, 1], keep=[True, False]) == 1
    assert b.head["audio"] == 2.1


def test_tracking_pipeline_refuses_bad_audio_and_keeps_stepping():
    p = TrackingPipeline()
    p.add_audio([0.9, 0.95], [1e-4, 1e-4], [1.0, 1.0])
    with pytest.raises(InputError, match="non-finite"):
        p.add_audio([1.0, math.nan], [1e-4, 1e-4], [1.0, 1.0])
    assert p.buffered_audio == 2
    xyz = np.array([[0.0, 0.0, 2.0]])
    cov = np.eye(3)[None] * 1e-4
    assert p.step(1.0, xyz, cov) is not None
    p.add_audio([1.02], [1e-4], [1.0])
    assert p.step(1.1, xyz, cov) is not None and p.buffered_audio == 0
