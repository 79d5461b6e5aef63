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
    # measured: 2.1 deg (before 12.0)
    (60.0, 2.5, 0.5, False, 1.2, 3.0, 8.0),
    # recorded speech at 45 deg, RT60 0.5 s, SNR 10 dB; measured 5.7 deg (before 23.7; 2.3
    # with the memory not gated, audio.precedence_gate > 1)
    (45.0, 2.0, 0.5, True, 1.2, 6.5, 15.0),
    # the known failure: the head at mid-height, where the floor and the ceiling images
    # coincide 4 ms after the direct sound at 34 deg, together stronger than the direct
    # path; measured 26.0 deg (before 27.9)
    (60.0, 2.5, 0.5, False, 1.5, 28.0, 25.0),
])
def test_lateral_and_recorded_talkers_in_reverberation(azimuth, distance, rt60, recorded,
                                                       head_height, bound, before_min):
    err, before = _median_errors(_room(azimuth, distance, rt60, recorded, head_height))
    assert err <= bound
    assert before >= before_min
