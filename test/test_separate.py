"""``av-perception separate``: the track file of ``process`` and one voice per track
(length, rate, sample alignment), the simulator's per-person images, bad input."""
import numpy as np
import pytest
import scipy.io.wavfile
from bagutil import write_audio_common4_bag

import av_perception.sim.simulator as simulator
from av_perception.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FS = 16000
DURATION = 3.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    out = tmp_path_factory.mktemp("sep") / "scene"
    assert main(["simulate", str(out), "--preset", "two_static", "--seed", "31", "--duration",
                 str(DURATION), "--quiet"]) == 0
    return out


def test_simulator_writes_each_persons_image(scene):
    rate, mix = scipy.io.wavfile.read(scene / "audio.wav")
    images = sorted((scene / "images").glob("person_*.wav"))
    assert [p.name for p in images] == ["person_1.wav", "person_2.wav"]
    total = np.zeros(mix.shape)
    for p in images:
        r, x = scipy.io.wavfile.read(p)
        assert r == rate and x.shape == mix.shape and x.dtype == np.float32
        total += x
    # the mixture is the images plus noise: SNR 20 dB in this preset
    resid = mix - total
    assert 10 * np.log10(np.sum(total ** 2) / np.sum(resid ** 2)) == pytest.approx(20, abs=2)


def test_separate_writes_process_track_file_and_aligned_voices(scene, tmp_path, capsys):
    bag = scene / "bag"
    out = tmp_path / "voices"
    # masks with floor 1 and every track modelled: every voice is the left microphone
    # itself where its track exists, which shows the alignment sample by sample
    cfg = tmp_path / "c.yaml"
    cfg.write_text("/**:\n  ros__parameters:\n    voices:\n      mask_floor: 1.0\n"
                   "      method: mask\n      speaking_gate: 0.0\n")
    assert main(["separate", str(bag), "--output", str(out), "--config", str(cfg), "-q"]) == 0
    assert main(["process", str(bag), "--output", str(tmp_path / "p.csv"), "--config",
                 str(cfg), "-q"]) == 0
    tracks = (out / "tracks.csv").read_text()
    assert tracks == (tmp_path / "p.csv").read_text()
    ids = sorted({int(line.split(",")[1]) for line in tracks.splitlines()[1:]})
    assert len(ids) == 2
    assert sorted(p.name for p in out.glob("voice_*.wav")) == [f"voice_{i}.wav" for i in ids]
    _, mix = scipy.io.wavfile.read(scene / "audio.wav")
    for i in ids:
        rate, v = scipy.io.wavfile.read(out / f"voice_{i}.wav")
        assert rate == FS and v.ndim == 1 and v.dtype == np.float32
        assert len(v) == len(mix) == int(DURATION * FS)
        late = slice(int(1.5 * FS), int(2.8 * FS))  # both tracks exist by then
        np.testing.assert_allclose(v[late], mix[late, 0], atol=1e-5)
    assert "voices: 2 track(s)" in capsys.readouterr().out


def test_separate_with_defaults_keeps_voices_finite_and_a_silent_track_silent(scene,
                                                                             tmp_path):
    out = tmp_path / "v"
    assert main(["separate", str(scene / "bag"), "--output", str(out), "-q"]) == 0
    _, mix = scipy.io.wavfile.read(scene / "audio.wav")
    # in these 3 s one person talks (from 0.5 s), the other is silent (its image is zero)
    energy = [np.sum(scipy.io.wavfile.read(scene / "images" / f"person_{i}.wav")[1] ** 2)
              for i in (1, 2)]
    assert min(energy) == 0 and max(energy) > 0
    rows = (out / "tracks.csv").read_text().splitlines()[1:]
    top: dict = {}
    for line in rows:
        f = line.split(",")
        top[int(f[1])] = max(top.get(int(f[1]), 0.0), float(f[-1]))
    assert sorted(top.values())[0] < 0.3 < sorted(top.values())[1]  # the tracker agrees
    for tid, sp in top.items():
        _, v = scipy.io.wavfile.read(out / f"voice_{tid}.wav")
        assert np.all(np.isfinite(v)) and len(v) == len(mix)
        e = np.sum(v.astype(float) ** 2)
        if sp < 0.3:  # voices.speaking_gate: the silent track's voice is silent
            assert e == 0
        else:
            assert 0 < e < np.sum(mix[:, 0].astype(float) ** 2)


def test_nan_audio_is_zeroed_and_reported(tmp_path, monkeypatch, capsys):
    render = simulator.render_audio

    def with_nan(*args, **kwargs):
        audio = render(*args, **kwargs)
        audio.samples[int(1.0 * FS):int(1.1 * FS)] = np.nan
        return audio

    monkeypatch.setattr(simulator, "render_audio", with_nan)
    scene = tmp_path / "scene"
    assert main(["simulate", str(scene), "--preset", "two_static", "--seed", "32",
                 "--duration", "2.5", "--quiet"]) == 0
    monkeypatch.undo()
    out = tmp_path / "v"
    assert main(["separate", str(scene / "bag"), "--output", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert "NaN" in err
    voices = list(out.glob("voice_*.wav"))
    assert voices
    for p in voices:
        _, v = scipy.io.wavfile.read(p)
        assert np.all(np.isfinite(v)) and len(v) == int(2.5 * FS)
        assert np.all(v[int(1.0 * FS):int(1.1 * FS)] == 0)


def test_mono_bag_is_refused_clearly(tmp_path, capsys):
    bag = tmp_path / "bag"
    write_audio_common4_bag(bag, np.zeros((FS, 1)), FS)
    assert main(["separate", str(bag), "--output", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "1 channel" in err and "two ear channels" in err
    assert not list((tmp_path / "v").glob("voice_*.wav"))


def test_process_output_bag_carries_the_same_voices(scene, tmp_path):
    from av_perception.io.audio_msgs import decode_audio_common4
    from av_perception.io.bag import BagReader

    bag = scene / "bag"
    assert main(["separate", str(bag), "--output", str(tmp_path / "v"), "-q"]) == 0
    out_bag = tmp_path / "out"
    assert main(["process", str(bag), "--output", str(tmp_path / "t.csv"), "--output-bag",
                 str(out_bag), "--no-images", "--voices", "-q"]) == 0
    with BagReader(bag) as reader:
        first = min(m.msg.header.stamp.sec + 1e-9 * m.msg.header.stamp.nanosec
                    for m in reader.messages(["/audio"]))
    with BagReader(out_bag) as reader:
        topics = sorted(t for t in reader.topics if t.endswith("/audio"))
        wavs = sorted((tmp_path / "v").glob("voice_*.wav"))
        assert topics == sorted(f"/humans/voices/voice{p.stem.split('_')[1]}/audio"
                                for p in wavs)
        for topic in topics:
            parts = [decode_audio_common4(m.msg) for m in reader.messages([topic])]
            assert parts[0][2] == pytest.approx(first, abs=1e-6)  # sample 0 = the bag's
            assert all(p[1] == FS and p[0].shape[1] == 1 for p in parts)
            x = np.concatenate([p[0][:, 0] for p in parts])
            _, v = scipy.io.wavfile.read(tmp_path / "v" / f"voice_{topic.split('/')[3][5:]}.wav")
            np.testing.assert_array_equal(x, v)


def test_process_voices_need_an_output_bag(scene, tmp_path, capsys):
    assert main(["process", str(scene / "bag"), "--output", str(tmp_path / "t.csv"),
                 "--voices"]) == 2
    assert "--output-bag" in capsys.readouterr().err


def test_clipped_audio_is_silent_in_the_voices_and_reported(tmp_path, monkeypatch, capsys):
    render = simulator.render_audio

    def clipped(*args, **kwargs):
        audio = render(*args, **kwargs)
        audio.samples[int(1.2 * FS):int(1.3 * FS)] = 1.0
        return audio

    monkeypatch.setattr(simulator, "render_audio", clipped)
    scene = tmp_path / "scene"
    assert main(["simulate", str(scene), "--preset", "two_static", "--seed", "33",
                 "--duration", "2.5", "--quiet"]) == 0
    monkeypatch.undo()
    out = tmp_path / "v"
    cfg = tmp_path / "c.yaml"  # every track modelled: each voice has sound outside the clip
    cfg.write_text("/**:\n  ros__parameters:\n    voices:\n      speaking_gate: 0.0\n")
    assert main(["separate", str(scene / "bag"), "--output", str(out), "--config", str(cfg),
                 "-q"]) == 0
    err = capsys.readouterr().err
    assert "clipped audio chunk(s)" in err and "silent in the voices" in err
    voices = list(out.glob("voice_*.wav"))
    assert voices
    for p in voices:
        _, v = scipy.io.wavfile.read(p)
        assert np.all(v[int(1.2 * FS):int(1.3 * FS)] == 0)
        assert np.any(v[int(1.5 * FS):] != 0)


def test_bag_voices_refuse_a_rate_change_and_need_audio():
    from av_perception.offline import ProcessResult, bag_voices

    r = ProcessResult(audio_start=0.0, audio_end=1.0, audio_rates=[16000, 48000])
    with pytest.raises(ValueError, match="sample rate changes .*16000 -> 48000 Hz"):
        bag_voices(r, {})
    with pytest.raises(ValueError, match="no usable audio"):
        bag_voices(ProcessResult(), {})
