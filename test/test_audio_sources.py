"""Audio sources: WAV files, both audio_common bag flavours, PCM formats, broken input."""
import builtins

import numpy as np
import pytest
from bagutil import write_audio_common4_bag, write_drivers_bag

from av_perception.io.audio_msgs import AudioFormat, BagAudioSource, decode_audio_bytes
from av_perception.io.audio_sources import (
    AudioSourceError,
    SoundDeviceAudioSource,
    WavAudioSource,
    import_sounddevice,
    read_wav,
    write_wav,
)
from av_perception.io.bag import BagError, BagReader
from av_perception.pipeline import AudioPipeline
from av_perception.sim.signals import binaural_noise

FS = 16000
ITD = 1.8e-4


def _signal():
    return binaural_noise(ITD, FS, 1.0, seed=7, level=0.2)


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_wav_round_trip_and_chunks(tmp_path, dtype):
    x = _signal()
    p = tmp_path / "a.wav"
    write_wav(p, x, FS, dtype=dtype)
    y, rate = read_wav(p)
    assert rate == FS and y.shape == x.shape
    assert np.max(np.abs(y - x)) < (1e-4 if dtype == "int16" else 1e-7)
    src = WavAudioSource(p, chunk_size=1000, start_time=5.0)
    chunks = list(src)
    assert [c.stamp for c in chunks[:2]] == [5.0, 5.0 + 1000 / FS]
    assert sum(len(c.samples) for c in chunks) == len(x)


def test_wav_channel_selection_and_errors(tmp_path):
    x = _signal()
    four = np.concatenate([x[:, :1] * 0, x[:, 1:], x[:, :1], x[:, :1] * 0], axis=1)
    p = tmp_path / "four.wav"
    write_wav(p, four, FS, dtype="float32")
    src = WavAudioSource(p, channel_left=2, channel_right=1)
    feats = AudioPipeline().run(src).features
    assert np.nanmedian(feats.itd) == pytest.approx(ITD, abs=5e-7)  # measured: 3 ns
    mono = tmp_path / "mono.wav"
    write_wav(mono, x[:, :1], FS)
    with pytest.raises(AudioSourceError, match="1 channel"):
        WavAudioSource(mono)
    (tmp_path / "junk.wav").write_bytes(b"RIFF1234WAVEjunk")
    with pytest.raises(AudioSourceError, match="cannot read"):
        read_wav(tmp_path / "junk.wav")
    with pytest.raises(AudioSourceError, match="does not exist"):
        read_wav(tmp_path / "nope.wav")


@pytest.mark.parametrize("dtype", ["float32", "int16", "int32"])
@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_audio_common4_bag(tmp_path, dtype, storage):
    x = _signal()
    bag = tmp_path / "bag"
    write_audio_common4_bag(bag, x, FS, dtype=dtype, storage=storage)
    src = BagAudioSource(bag)
    assert src.topic == "/audio"
    chunks = list(src)
    assert chunks[0].stamp == pytest.approx(1700000000.0)
    y = np.concatenate([c.samples for c in chunks])
    assert np.max(np.abs(y - x)) < 1e-4
    feats = AudioPipeline().run(BagAudioSource(bag)).features
    assert feats.stamp[0] == pytest.approx(1700000000.0 + 255.5 / FS)
    assert np.nanmedian(feats.itd) == pytest.approx(ITD, abs=5e-7)  # measured: 3 ns


@pytest.mark.parametrize("stamped", [True, False])
def test_drivers_bag_with_audio_info(tmp_path, stamped):
    x = _signal()
    bag = tmp_path / "bag"
    write_drivers_bag(bag, x, FS, stamped=stamped)
    src = BagAudioSource(bag)
    assert src.info_topic == "/audio/audio_info"
    feats = AudioPipeline().run(src).features
    assert np.nanmedian(feats.itd) == pytest.approx(ITD, abs=5e-7)  # measured: 3 ns
    assert feats.stamp[0] == pytest.approx(1700000000.0 + 255.5 / FS, abs=1e-6)


def test_drivers_bag_without_info_needs_format(tmp_path):
    x = _signal()
    bag = tmp_path / "bag"
    write_drivers_bag(bag, x, FS, sample_format="F32LE", with_info=False)
    with pytest.raises(BagError, match="no audio_common_msgs/msg/AudioInfo"):
        BagAudioSource(bag)
    src = BagAudioSource(bag, audio_format=AudioFormat(2, FS, "F32LE"))
    y = np.concatenate([c.samples for c in src])
    assert np.max(np.abs(y - x)) < 1e-7


def test_topic_detection_errors(tmp_path):
    x = _signal()
    bag = tmp_path / "bag"
    write_audio_common4_bag(bag, x, FS, topic="/left_ear_pair", extra_topic="/other_pair")
    with pytest.raises(BagError, match="several audio topics"):
        BagAudioSource(bag)
    with pytest.raises(BagError, match="not in the bag.*/left_ear_pair"):
        BagAudioSource(bag, topic="/audio")
    assert BagAudioSource(bag, topic="/other_pair").topic == "/other_pair"
    with pytest.raises(BagError, match="no metadata.yaml"):
        BagReader(tmp_path)
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "missing")


@pytest.mark.parametrize("storage, pattern", [("mcap", "*.mcap"), ("sqlite3", "*.db3")])
def test_truncated_bag_is_read_up_to_the_cut(tmp_path, storage, pattern):
    bag = tmp_path / "bag"
    write_audio_common4_bag(bag, binaural_noise(ITD, FS, 2.0, seed=1), FS, storage=storage)
    f = next(bag.glob(pattern))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    src = BagAudioSource(bag)  # issue 16: the part before the damage is read, with a warning
    chunks = list(src)
    assert chunks and src.truncated
    assert any("ros2 bag reindex" in e for e in src.errors)


def test_decode_rejects_misaligned_payload():
    with pytest.raises(AudioSourceError, match="not a multiple"):
        decode_audio_bytes(np.zeros(5, np.uint8), AudioFormat(2, FS, "S16LE"))
    with pytest.raises(AudioSourceError, match="unsupported sample format"):
        AudioFormat(2, FS, "MP3")


def test_missing_portaudio_gives_a_clear_message(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(AudioSourceError, match="libportaudio2"):
        import_sounddevice()


def test_unknown_device_lists_the_inputs():
    from conftest import require

    try:
        import_sounddevice()
    except AudioSourceError:
        require(False, "libportaudio2")
    from av_perception.io.audio_sources import AudioCaptureConfig

    src = SoundDeviceAudioSource(AudioCaptureConfig(device="no-such-device-xyz"))
    with pytest.raises(AudioSourceError, match="no input device matches 'no-such-device-xyz'"):
        src.open()
