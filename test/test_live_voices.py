"""LiveVoices (perception_node's live voices without ROS): chunks stamped on the audio's
clock equal the batch voices, an ended track's voice is all out, clipped and refused audio
is silent in the voices, a sample-rate change restarts the stream."""
from dataclasses import replace

import numpy as np
import pytest
from test_tf_masks import FS, ITD_A, ITD_B, make_two_sources

from av_perception.core.audio import AudioInputError
from av_perception.core.tf_masks import VoiceConfig
from av_perception.pipeline import AudioPipeline
from av_perception.pipeline.live_voices import LiveVoices
from av_perception.pipeline.voices import VoiceSeparator

pytestmark = pytest.mark.timeout(120)
T0 = 100.0  # stamp of the first sample (s)
CHUNK = 512


class _Geometry:
    has_ild = False

    @staticmethod
    def itd(p):
        return np.where(np.asarray(p)[:, 0] > 0, ITD_A, ITD_B)


def _out(t, ids):
    pos = np.array([[1.0 if i == 4 else -1.0, 0, 2] for i in ids]).reshape(-1, 3)
    return type("Out", (), {"stamp": t, "ids": np.array(ids), "position": pos})()


@pytest.fixture(scope="module")
def sources():
    return make_two_sources()


#: track 4 (source A) until 1.5 s, track 9 (source B) from 0.5 s
OUTPUTS = [_out(T0, [4]), _out(T0 + 0.5, [4, 9]), _out(T0 + 1.5, [9])]


def _run(mix, cfg, chunk_samples=None, rates=None):
    """Chunks through an AudioPipeline (keep_spectra) into LiveVoices, the outputs given as
    their stamp passes; returns (live, {track id: [VoiceChunk]}, ended per push, refused)."""
    pipe = AudioPipeline(keep_spectra=True)
    live = LiveVoices(pipe.front_end, _Geometry(), cfg)
    got, ended, refused = {}, [], 0
    sent, t_next = 0, T0
    for a in range(0, len(mix), CHUNK):
        x = mix[a:a + CHUNK] if chunk_samples is None else chunk_samples(a, mix[a:a + CHUNK])
        rate = FS if rates is None else rates(a)
        t, t_next = t_next, t_next + len(x) / rate
        live.input_chunk(t, t + len(x) / rate, arrival=t + len(x) / rate,
                         clipped=bool(np.max(np.abs(x)) >= 0.999))
        while sent < len(OUTPUTS) and OUTPUTS[sent].stamp <= t:
            live.add_outputs([OUTPUTS[sent]])
            sent += 1
        try:
            feats = pipe.process_audio(x, rate, t)
        except AudioInputError:
            refused += 1
            continue
        for c in live.push(feats, now=t + len(x) / rate + 0.001):
            got.setdefault(c.track_id, []).append(c)
        ended.append(list(live.ended))
    for c in live.flush():
        got.setdefault(c.track_id, []).append(c)
    ended.append(list(live.ended))
    return live, got, ended, refused


def _place(chunks, n, t0=T0):
    """The chunks of a voice placed by their stamps on a timeline from t0."""
    v = np.zeros(n)
    for c in chunks:
        a = int(round((c.stamp - t0) * c.rate))
        assert abs((c.stamp - t0) * c.rate - a) < 1e-6  # a stamp is a sample's time
        b = min(n, a + len(c.samples))
        v[a:b] = c.samples[:b - a]
    return v


@pytest.mark.parametrize("hop", [0.0, 0.064])
def test_live_chunks_are_the_batch_voices_stamped_on_the_audio_clock(sources, hop):
    img_a, img_b, mix = sources
    mix = 0.5 * mix / np.max(np.abs(mix))  # not clipped
    cfg = replace(VoiceConfig(), hop=hop)
    live, got, ended, _ = _run(mix, cfg)
    assert live.clipped_chunks == 0
    fe = AudioPipeline(keep_spectra=True).front_end
    feats = fe.process(mix, FS, T0)
    batch = VoiceSeparator(fe, _Geometry(), cfg).run(feats, OUTPUTS, T0, len(mix))
    assert sorted(got) == sorted(batch.voices) == [4, 9]
    for tid, chunks in got.items():
        stamps = [c.stamp for c in chunks]
        assert stamps == sorted(stamps) and all(c.rate == FS for c in chunks)
        np.testing.assert_allclose(_place(chunks, len(mix)), batch.voices[tid], atol=1e-6)
    # track 4 ends at 1.5 s: said once, after its voice is all out; 9 at the end
    flat = [(k, tid) for k, e in enumerate(ended) for tid in e]
    assert [tid for _, tid in flat] == [4, 9]
    k4 = flat[0][0]
    last4 = max(c.stamp + len(c.samples) / FS for c in got[4])
    assert not any(c.track_id == 4 for c in _run_tail(got, last4))
    assert k4 < len(ended) - 1  # before the end of the stream
    # the latency of a chunk (added to the arrival of its first sample) and its bound
    sound, lat = live.pop_latencies()
    assert 0 < len(lat) <= live.chunks  # the flush's chunks have no publication time
    assert np.max(lat) <= live.latency_bound + CHUNK / FS + 0.0011
    # from the sound: the chunk's first sample is at most one input chunk older
    assert np.all(sound >= lat) and np.all(sound <= lat + CHUNK / FS + 1e-9)
    assert live.latency_bound == pytest.approx(((25 if hop == 0 else 4) * 256 + 512) / FS)


def _run_tail(got, t):
    return [c for cs in got.values() for c in cs if c.stamp >= t]


def test_clipped_and_refused_audio_is_silent_in_every_voice(sources):
    img_a, img_b, mix = sources
    scale = 0.5 / np.max(np.abs(mix))
    mix = scale * mix
    clip = (int(0.8 * FS) // CHUNK) * CHUNK  # a clipped chunk while both talk
    nan = (int(1.1 * FS) // CHUNK) * CHUNK  # two chunks with a NaN (refused: 64 ms)

    def bad(a, x):
        x = x.copy()
        if a == clip:
            x[10] = 1.0
        if a in (nan, nan + CHUNK):
            x[3, 0] = np.nan
        return x

    cfg = replace(VoiceConfig(), hop=0.064)
    live, got, _, refused = _run(mix, cfg, chunk_samples=bad)
    assert refused == 2 and live.clipped_chunks == 1 and live.zeroed_samples > 0
    for tid in (4, 9):
        v = _place(got[tid], len(mix))
        assert np.all(v[clip:clip + CHUNK] == 0), tid
        assert np.all(v[nan:nan + 2 * CHUNK] == 0), tid  # no frame covers it
    # the rest of track 4's voice (while both talk) is there
    v4 = _place(got[4], len(mix))
    both = slice(int(0.6 * FS), clip - 600)
    assert np.std(v4[both]) > 0.3 * scale * np.std(img_a[both, 0])


def test_a_sample_rate_change_restarts_the_voices(sources):
    img_a, img_b, mix = sources
    mix = 0.5 * mix / np.max(np.abs(mix))
    change = (int(1.0 * FS) // CHUNK) * CHUNK
    live, got, ended, _ = _run(mix, replace(VoiceConfig(), hop=0.064),
                               rates=lambda a: FS if a < change else 2 * FS)
    assert live.restarts == 1
    assert "sample rate changed from 16000 Hz to 32000 Hz" in live.restart_reason
    # every track of the first stream ended at the change; the voices went on after it
    assert sorted(sum(ended, [])).count(4) >= 1
    after = [c for c in got[9] if c.stamp > T0 + change / FS + 0.1]
    assert after and all(c.rate == FS for c in after)  # the processing rate


def test_features_without_stft_are_refused():
    pipe = AudioPipeline()
    live = LiveVoices(pipe.front_end, _Geometry(), VoiceConfig())
    feats = pipe.process_audio(np.zeros((4096, 2)), FS, 0.0)
    with pytest.raises(ValueError, match="keep_spectra"):
        live.push(feats, 0.0)


def test_no_track_no_voice(sources):
    img_a, img_b, mix = sources
    pipe = AudioPipeline(keep_spectra=True)
    live = LiveVoices(pipe.front_end, _Geometry(), replace(VoiceConfig(), hop=0.064))
    got = []
    for a in range(0, len(mix), CHUNK):
        feats = pipe.process_audio(0.5 * mix[a:a + CHUNK] / np.max(np.abs(mix)), FS,
                                   T0 + a / FS)
        got += live.push(feats, T0 + a / FS)
    got += live.flush()
    assert got == [] and live.ended == [] and live.chunks == 0
