"""Per-frame direction of lateral and recorded talkers in reverberant rooms (issue 19).

Hard cases like those of bench/bench_doa_rooms.py, built by hand (6 x 5 x 3 m room, the
robot at (3, 1) m, diffuse noise at 10 dB SNR, fixed seeds): the median per-frame azimuth
error over the active frames is asserted near what was measured (BENCHMARKS.md,
"Direction in reverberant rooms"), and against the front-end before issue 19 (coherence
weighting, each frame alone).
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_doa_rooms as rooms  # noqa: E402

from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig  # noqa: E402
from av_perception.sim.recorded import RecordedSpeechError, recorded_speech_files  # noqa: E402

pytestmark = pytest.mark.slow

BEFORE = AudioFrontEndConfig(direct_path_weighting="coherence", precedence_time=0.0)


def _room(azimuth, distance, rt60, recorded, head_height, seed=11):
    if recorded:
        try:
            recorded_speech_files()
        except RecordedSpeechError as exc:
            require(False, f"recorded speech from PyPI ({exc})")
    return {"seed": seed, "azimuth": azimuth, "distance": distance, "rt60": rt60,
            "snr_db": 10.0, "room": [6.0, 5.0, 3.0], "head": [3.0, 1.0, head_height],
            "recorded": recorded, "tape_speed": 1.0, "voice_seed": seed, "noise_seed": seed + 1,
            "person": 0}


def _median_errors(room):
    mics = MicArrayConfig()
    y = rooms.render_room(room, mics, cache=False)
    out = []
    for cfg in (AudioFrontEndConfig(), BEFORE):
        f = rooms.run_front_end(y, cfg, mics)
        act = rooms.active_frames(f)
        assert act.sum() > 80
        out.append(float(np.median(np.abs(np.degrees(f.azimuth[act]) - room["azimuth"]))))
    return out


@pytest.mark.parametrize("azimuth, distance, rt60, recorded, head_height, bound, before_min", [
    # measured: 2.0 deg (1.7 with the precedence hold, audio.precedence_hold_time 0.1; before
    # 12.0)
    (60.0, 2.5, 0.5, False, 1.2, 3.0, 8.0),
    # recorded speech at 45 deg, RT60 0.5 s, SNR 10 dB; measured 3.7 deg (4.2 with the
    # precedence hold, 5.7 with the gate at 0.5; before 23.7)
    (45.0, 2.0, 0.5, True, 1.2, 6.5, 15.0),
    # the known failure: the head at mid-height, where the floor and the ceiling images
    # coincide 4 ms after the direct sound at 34 deg, together stronger than the direct
    # path; measured 26.2 deg (25.4 with the precedence hold; before 27.9)
    (60.0, 2.5, 0.5, False, 1.5, 28.0, 25.0),
])
def test_lateral_and_recorded_talkers_in_reverberation(azimuth, distance, rt60, recorded,
                                                       head_height, bound, before_min):
    err, before = _median_errors(_room(azimuth, distance, rt60, recorded, head_height))
    assert err <= bound
    assert before >= before_min


@pytest.mark.timeout(600)
def test_precedence_hold_keeps_the_first_frames_of_the_onsets_near_two_walls():
    """The robot 1 m from two walls, a talker at 20 deg 1.6 m away (RT60 0.42 s): the
    later reflections keep the talker's lateral offset at a larger distance and arrive
    from 5-10 deg; the frames after each onset's first ones read them and, without the
    precedence hold, replace the memory (docs/algorithms.md, "Precedence hold").
    Measured per room (hold / no hold / before issue 19): 2.7 / 3.7 / 9.2, 4.2 / 5.2 /
    9.0, 3.8 / 5.4 / 9.5, 3.9 / 5.8 / 9.7 deg."""
    hold, no_hold = [], []
    mics = MicArrayConfig()
    for seed in (11, 12):
        for azimuth, head_x in ((20.0, 5.5), (-20.0, 1.0)):
            room = _room(azimuth, 1.6, 0.42, False, 1.4, seed=seed)
            room.update(room=[6.5, 4.7, 2.7], head=[head_x, 1.0, 1.4])
            y = rooms.render_room(room, mics, cache=False)
            for cfg, out in ((AudioFrontEndConfig(precedence_hold_time=0.1), hold),
                             (AudioFrontEndConfig(precedence_hold_time=0.0), no_hold)):
                f = rooms.run_front_end(y, cfg, mics)
                act = rooms.active_frames(f)
                assert act.sum() > 80
                out.append(float(np.median(np.abs(np.degrees(f.azimuth[act]) - azimuth))))
    assert all(h < n - 0.5 for h, n in zip(hold, no_hold)), (hold, no_hold)
    assert np.mean(hold) <= 4.3 and np.mean(no_hold) >= 4.5, (hold, no_hold)
