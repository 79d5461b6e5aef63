"""The precedence gate's separation (audio.precedence_gate_separation): a frame that passes
the gate but whose own peak lies far from the precedence memory's is read alone only when
an earlier such frame confirms it (as a second talker's is), else from the memory.

Known truth: a recorded talker far to the side (2-3 m, 50-70 deg) in a shoebox room with
strong diffuse noise (SNR 5-9 dB), rendered by the room benchmark's own drawing
(``bench/bench_doa_rooms.py``, ``draw_noisy_room``) from seeds that no setting was chosen
on (the tuning rooms are 7601-7616); and white noise with an exact delay for the kernel's
agreement with its numpy reference.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from av_perception.core import _binaural_kernels as K
from av_perception.core.audio import BinauralFrontEnd
from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig

FS = 16000
SEEDS = (7651, 7652, 7653, 7654)  # held out: not among the tuning rooms


def _room(seed):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_doa_rooms as B

    room = B.draw_noisy_room(seed)
    return room, B.render_room(room, MicArrayConfig(), cache=False)


def _read(y, separation, use_numba=True):
    cfg = AudioFrontEndConfig(precedence_gate_separation=separation)
    fe = BinauralFrontEnd(cfg, MicArrayConfig(), use_numba=use_numba, keep_cross=True)
    return fe.process(y, FS, 0.0)


@pytest.mark.timeout(300)
def test_gated_frames_far_from_the_memory_no_longer_read_the_noise():
    """In a single talker's noisy rooms the frames that only the separation sends to the
    memory were read far from the talker and now read near it; more active frames read the
    talker and no room's median error grows."""
    near_on = near_off = n_changed = 0
    changed_err_off = []
    changed_err_on = []
    for seed in SEEDS:
        room, y = _room(seed)
        off, on = _read(y, 0.0), _read(y, 45.0)
        assert np.array_equal(off.stamp, on.stamp)
        act = np.isfinite(on.itd) & (on.activity >= 0.5)
        err_off = np.abs(np.degrees(off.azimuth) - room["azimuth"])[act]
        err_on = np.abs(np.degrees(on.azimuth) - room["azimuth"])[act]
        changed = np.abs(off.itd - on.itd)[act] > 1e-9
        n_changed += int(changed.sum())
        changed_err_off += list(err_off[changed])
        changed_err_on += list(err_on[changed])
        near_off += int(np.sum(err_off < 5.0))
        near_on += int(np.sum(err_on < 5.0))
        assert np.median(err_on) <= np.median(err_off) + 0.5, seed
    # measured: 11 frames changed, their median error 28.6 deg -> 3.8 deg, frames within 5 deg
    # 141 -> 146 of 282
    assert n_changed >= 6  # the separation acts in these rooms
    # the frames it changes: read far off before (the noise and the reflections), near after
    assert np.median(changed_err_on) < 0.5 * np.median(changed_err_off)
    assert near_on > near_off


@pytest.mark.timeout(300)
def test_gate_separation_matches_reference():
    """The kernel and its numpy reference agree with the separation acting (a noisy room)
    and on an exact delay in white noise, where every frame is at the memory's ITD and the
    separation changes nothing."""
    from test_audio_frontend import assert_numba_matches_reference

    _, y = _room(SEEDS[1])  # 4 frames changed by the separation
    names = ("itd", "reliability", "direct_path", "n_bins", "cross")
    cfg = AudioFrontEndConfig(precedence_gate_separation=45.0)
    a = assert_numba_matches_reference(cfg, y, names, ("room",))
    b = _read(y, 0.0)
    assert np.any(np.abs(a.itd - b.itd) > 1e-9)  # the path was exercised
    rng = np.random.default_rng(5)
    s = rng.standard_normal(FS * 2)
    x = np.stack([s, np.roll(s, 2)], axis=1) + 0.01 * rng.standard_normal((FS * 2, 2))
    f = assert_numba_matches_reference(cfg, x, names, ("delay",))
    ok = np.isfinite(f.itd)
    assert np.allclose(f.itd[ok], _read(x, 0.0).itd[ok])
    assert np.median(np.abs(f.itd[ok] * FS - 2.0)) < 0.05  # the right channel 2 samples late


def test_gate_separation_parameter():
    fe = BinauralFrontEnd(AudioFrontEndConfig(precedence_gate_separation=45.0))
    assert fe.params[K.P_GATE_SEPARATION] == pytest.approx(45e-6)
    with pytest.raises(ValueError, match="precedence_gate_separation"):
        AudioFrontEndConfig(precedence_gate_separation=-1.0)
