"""The benchmark's frontal tuning rooms (bench/bench_doa_rooms.py ``--rooms frontal``) are
drawn within their stated ranges, apart from the report rooms, the talker inside the room."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_doa_rooms as bench  # noqa: E402


def _assert_head_and_talker_inside(r):
    """The head and the talker (azimuth counter-clockwise from the room's +y) at least
    0.4 m from the walls."""
    head = np.array(r["head"])
    talker = head + r["distance"] * np.array(
        [-np.sin(np.radians(r["azimuth"])), np.cos(np.radians(r["azimuth"])), 0.0])
    room = np.array(r["room"])
    assert np.all(head[:2] >= 0.4 - 1e-9) and np.all(head[:2] <= room[:2] - 0.4 + 1e-9), r
    assert np.all(talker[:2] >= 0.4 - 1e-9) and np.all(talker[:2] <= room[:2] - 0.4 + 1e-9), r


@pytest.mark.timeout(60)
def test_frontal_tuning_rooms_within_their_ranges():
    frontal = bench.rooms("frontal")
    assert len(frontal) == 24
    assert not {r["seed"] for r in frontal} & set(bench.BENCH_SEEDS)
    for r in frontal:
        assert 3.0 <= abs(r["azimuth"]) <= 18.0
        assert 1.5 <= r["distance"] <= 3.0
        assert 0.3 <= r["rt60"] <= 0.5
        assert 7.0 <= r["snr_db"] <= 14.0
        _assert_head_and_talker_inside(r)
    # both voices, and the draw repeatable
    assert {r["recorded"] for r in frontal} == {True, False}
    assert bench.rooms("frontal") == frontal


@pytest.mark.timeout(60)
def test_noisy_tuning_rooms_within_their_ranges():
    """``--rooms noisy``: far lateral recorded talkers in strong noise, apart from every
    report room and from the other tuning rooms."""
    noisy = bench.rooms("noisy")
    assert len(noisy) == 16
    seeds = {r["seed"] for r in noisy}
    assert not seeds & (set(bench.BENCH_SEEDS) | set(bench.HOLDOUT_SEEDS)
                        | set(bench.TUNE_SEEDS) | set(bench.FRONTAL_SEEDS)
                        | set(bench.LATERAL_SEEDS))
    for r in noisy:
        assert r["recorded"]
        assert 50.0 <= abs(r["azimuth"]) <= 70.0
        assert 2.0 <= r["distance"] <= 3.0
        assert 0.2 <= r["rt60"] <= 0.7
        assert 5.0 <= r["snr_db"] <= 9.0
        _assert_head_and_talker_inside(r)
    assert {r["azimuth"] > 0 for r in noisy} == {True, False}
    assert bench.rooms("noisy") == noisy
