"""The precedence memory's release at a new talker (audio.precedence_release_*): soon after
a silence, a confirmed direction away from the memory's, with the memory's own direction
not heard since, clears the memory of the talker who stopped.

Known truth: the simulator's `default` preset (three still people taking turns, RT60 0.4 s),
who speaks when and where, on held-out seeds (the defaults were chosen on head-motion
scenes 206-207 and 214-217 and the tuning rooms).
"""
import numpy as np
import pytest

from av_perception.core.audio import BinauralFrontEnd
from av_perception.core.config import AudioFrontEndConfig
from av_perception.core.geometry import MicGeometry

FS = 16000
SEEDS = tuple(range(240, 252))  # held out


def _change_frames(scene, f):
    """Weighted share of the active frames of the first 0.5 s of a turn that follows another
    person's (ended within 1.5 s), with one talker, whose ITD is nearest that talker's."""
    geo = MicGeometry.from_config(scene.robot.mics)
    spk = scene.speaking(f.stamp)
    ids = sorted(spk)
    talking = np.array([spk[p] for p in ids])
    mouths = scene.mouth_positions(f.stamp)
    itd = np.array([geo.itd(mouths[p]) for p in ids])  # (P, F)
    nearest = np.argmin(np.abs(f.itd[None] - itd), axis=0)
    sel = np.zeros(len(f), dtype=bool)
    for u in scene.utterances:
        if any(v.person != u.person and u.start - 1.5 < v.end <= u.start
               for v in scene.utterances):
            sel |= (f.stamp >= u.start) & (f.stamp < min(u.start + 0.5, u.end))
    sel &= (talking.sum(0) == 1) & (f.activity > 0.5) & np.isfinite(f.itd)
    w = f.weight[sel]
    return float(((nearest[sel] == np.argmax(talking, axis=0)[sel]) * w).sum() / w.sum())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_new_talker_onsets_read_the_new_talker():
    """At a change of talker the frames read the new talker more often with the release
    than with the memory of the previous talker held (measured on seeds 240-251: 0.794
    without, 0.839 with; per seed at worst -0.007)."""
    from av_perception.sim.audio import render_audio
    from av_perception.sim.presets import make_scene

    off, on = [], []
    for seed in SEEDS:
        scene = make_scene("default", seed, duration=10.0)
        render = render_audio(scene)
        for window, out in ((0.0, off), (0.5, on)):
            cfg = AudioFrontEndConfig(precedence_release_window=window)
            f = BinauralFrontEnd(cfg, mics=scene.robot.mics).process(render.samples,
                                                                      render.rate, 0.0)
            out.append(_change_frames(scene, f))
    off, on = np.array(off), np.array(on)
    assert on.mean() >= off.mean() + 0.03, (off, on)
    assert np.all(on >= off - 0.03), (off, on)


@pytest.mark.timeout(300)
def test_release_kernel_matches_numpy_reference():
    """The numba kernel and its numpy reference agree with the release on, on turns
    where it changes the frames (`default` seed 248: 0.73 -> 0.98 above)."""
    from av_perception.sim.audio import render_audio
    from av_perception.sim.presets import make_scene

    scene = make_scene("default", 248, duration=10.0)
    render = render_audio(scene)
    x, rate, mics = render.samples, render.rate, scene.robot.mics
    feats = {}
    for window in (0.0, 0.5):
        cfg = AudioFrontEndConfig(precedence_release_window=window)
        a = BinauralFrontEnd(cfg, mics=mics, use_numba=True, keep_cross=True).process(
            x, rate, 0.0)
        b = BinauralFrontEnd(cfg, mics=mics, use_numba=False, keep_cross=True).process(
            x, rate, 0.0)
        for name in ("itd", "reliability", "cross"):
            va, vb = getattr(a, name), getattr(b, name)
            assert np.array_equal(np.isnan(va), np.isnan(vb)), (window, name)
            ok = ~np.isnan(va)
            assert np.allclose(va[ok], vb[ok], rtol=1e-9, atol=1e-12), (window, name)
        feats[window] = a
    changed = np.abs(np.nan_to_num(feats[0.0].itd) - np.nan_to_num(feats[0.5].itd)) > 5e-6
    assert changed.sum() >= 10  # the release fired
    # at the onsets of turns that follow another person's (the window: 0.5 s)
    stamps = feats[0.0].stamp[changed]
    changes = [u for u in scene.utterances if any(
        v.person != u.person and u.start - 1.5 < v.end <= u.start for v in scene.utterances)]
    assert any(np.any((stamps >= u.start) & (stamps <= u.start + 0.55)) for u in changes)


def test_release_off_and_parameters():
    from av_perception.core import _binaural_kernels as K

    fe = BinauralFrontEnd(AudioFrontEndConfig(precedence_release_window=0.0))
    assert fe.params[K.P_RELEASE_WINDOW] == 0.0
    fe = BinauralFrontEnd(AudioFrontEndConfig(precedence_release_window=0.5,
                                              precedence_release_silence=0.1))
    hop = fe.config.hop_duration
    assert fe.params[K.P_RELEASE_WINDOW] == pytest.approx(0.5 / hop)
    assert fe.params[K.P_RELEASE_SILENCE] == pytest.approx(0.1 / hop)
