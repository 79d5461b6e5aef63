"""Simulator output: rosbag2 read back with rosbags, WAV, ground truth, scene file, CLI."""
import json

import cv2
import numpy as np
import pytest
import scipy.io.wavfile
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader

from av_perception.cli import main
from av_perception.io.msgdefs import make_typestore
from av_perception.sim import load_scene, make_scene, simulate
from av_perception.sim.voice import espeak_available, synthesize_utterance

EPOCH = 1_700_000_000.0


@pytest.fixture(scope="module")
def sqlite_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "two"
    scene = make_scene("two_static", seed=2, duration=2.0)
    result = simulate(scene, out)
    return scene, result, out


def _messages(bag, typestore=None):
    with AnyReader([bag], default_typestore=typestore) as reader:
        return [(c.topic, c.msgtype, t, reader.deserialize(raw, c.msgtype))
                for c, t, raw in reader.messages()]


def test_bag_reads_back_with_anyreader(sqlite_run):
    scene, result, out = sqlite_run
    msgs = _messages(out / "bag")  # types from the definitions stored in the bag
    topics = {}
    for topic, msgtype, _, _ in msgs:
        topics.setdefault(topic, [msgtype, 0])[1] += 1
    n_frames = scene.n_frames
    n_chunks = -(-scene.n_samples // scene.audio.chunk)
    assert n_frames == 30 and result.n_frames == n_frames
    assert topics == {
        "/stereo/left/image_raw": ["sensor_msgs/msg/Image", n_frames],
        "/stereo/right/image_raw": ["sensor_msgs/msg/Image", n_frames],
        "/stereo/left/camera_info": ["sensor_msgs/msg/CameraInfo", n_frames],
        "/stereo/right/camera_info": ["sensor_msgs/msg/CameraInfo", n_frames],
        "/audio": ["audio_common_msgs/msg/AudioStamped", n_chunks],
    }
    log_times = [t for _, _, t, _ in msgs]
    assert log_times == sorted(log_times)
    cam = scene.robot.camera
    audio, stamps = [], []
    for topic, _, log_ns, m in msgs:
        stamp = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        if topic == "/audio":
            info = m.audio.info
            assert (info.format, info.channels, info.rate) == (1, 2, 16000)
            x = np.asarray(m.audio.audio_data.float32_data, dtype=np.float32)
            assert x.dtype == np.float32 and len(x) == 2 * info.chunk
            assert len(m.audio.audio_data.int16_data) == 0
            audio.append(x.reshape(-1, 2))
            stamps.append(stamp)
            assert log_ns == pytest.approx(stamp * 1e9 + info.chunk / 16000 * 1e9, abs=1e3)
        elif topic.endswith("image_raw"):
            assert (m.height, m.width, m.encoding, m.step) == (480, 640, "bgr8", 640 * 3)
            assert m.header.frame_id == (cam.frame_id if "left" in topic
                                         else "stereo_right_optical_frame")
        elif topic.endswith("camera_info"):
            p = np.asarray(m.p).reshape(3, 4)
            assert p[0, 0] == cam.fx and p[1, 2] == cam.cy
            assert p[0, 3] == (-cam.fx * cam.baseline if "right" in topic else 0.0)
            assert -p[0, 3] / p[0, 0] == pytest.approx(cam.baseline if "right" in topic else 0)
    samples = np.concatenate(audio)
    rate, wav = scipy.io.wavfile.read(out / "audio.wav")
    assert rate == 16000 and wav.dtype == np.float32
    np.testing.assert_array_equal(samples, wav)
    assert stamps[0] == EPOCH
    assert np.allclose(np.diff(stamps), 1024 / 16000, atol=1e-6)


def test_bag_reads_back_with_reader_and_the_typestore(sqlite_run):
    scene, _, out = sqlite_run
    store = make_typestore()
    with Reader(out / "bag") as reader:
        conns = [c for c in reader.connections if c.topic == "/audio"]
        assert conns[0].msgtype == "audio_common_msgs/msg/AudioStamped"
        first = next(reader.messages(connections=conns))
        msg = store.deserialize_cdr(first[2], conns[0].msgtype)
        assert msg.audio.info.chunk == 1024
        img_conn = [c for c in reader.connections if c.topic == "/stereo/left/image_raw"]
        _, _, raw = next(reader.messages(connections=img_conn))
        img = store.deserialize_cdr(raw, "sensor_msgs/msg/Image")
        assert img.data.reshape(480, 640, 3).mean() > 20


def test_ground_truth_is_consistent_with_the_schedule_and_trajectories(sqlite_run):
    scene, _, out = sqlite_run
    lines = [json.loads(s) for s in (out / "ground_truth.jsonl").read_text().splitlines()]
    assert len(lines) == scene.n_frames
    times = scene.frame_times()
    speaking = scene.speaking(times)
    pos = scene.positions(times)
    for k, rec in enumerate(lines):
        assert rec["frame"] == k
        assert rec["stamp"] == pytest.approx(EPOCH + k / 15.0, abs=1e-6)
        assert [p["id"] for p in rec["people"]] == [1, 2]
        for p in rec["people"]:
            assert p["speaking"] == bool(speaking[p["id"]][k])
            assert [p["x"], p["y"], p["z"]] == pytest.approx(list(pos[p["id"]][k]), abs=1e-6)
            assert p["visible"] and p["visible_fraction"] > 0.9
            assert p["disparity"] == pytest.approx(500.0 * 0.12 / p["z"], abs=1e-3)
    # the schedule is a real conversation: someone speaks, someone is silent, in turns
    flags = np.array([[p["speaking"] for p in rec["people"]] for rec in lines])
    assert flags.any() and not flags.all()
    # image stamps are the ground-truth stamps
    msgs = _messages(out / "bag")
    img = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
           for topic, _, _, m in msgs if topic == "/stereo/left/image_raw"]
    assert img == pytest.approx([rec["stamp"] for rec in lines], abs=1e-6)


def test_scene_file_reloads_and_reproduces_the_output(sqlite_run, tmp_path):
    scene, _, out = sqlite_run
    loaded = load_scene(out)
    assert loaded.to_dict() == scene.to_dict()
    simulate(loaded, tmp_path / "again", write_bag=False)
    a = scipy.io.wavfile.read(out / "audio.wav")[1]
    b = scipy.io.wavfile.read(tmp_path / "again" / "audio.wav")[1]
    np.testing.assert_array_equal(a, b)
    assert (out / "ground_truth.jsonl").read_text() == \
        (tmp_path / "again" / "ground_truth.jsonl").read_text()
    with pytest.raises(ValueError, match="already holds simulator output"):
        simulate(loaded, tmp_path / "again", write_bag=False)


def test_mcap_with_compressed_images(tmp_path):
    scene = make_scene("single_static_anechoic", seed=0, duration=1.0)
    simulate(scene, tmp_path / "m", storage="mcap", compressed=True)
    assert list((tmp_path / "m" / "bag").glob("*.mcap"))
    msgs = _messages(tmp_path / "m" / "bag", make_typestore())
    topics = {t for t, *_ in msgs}
    assert "/stereo/left/image_raw/compressed" in topics
    assert "/stereo/right/image_raw/compressed" in topics
    jpeg = [m for t, _, _, m in msgs if t == "/stereo/left/image_raw/compressed"][0]
    assert "jpeg" in jpeg.format
    img = cv2.imdecode(np.asarray(jpeg.data), cv2.IMREAD_COLOR)
    assert img.shape == (480, 640, 3)
    # the same scene with raw images: frame 0 is what the JPEG encodes
    simulate(scene, tmp_path / "raw", storage="mcap", compressed=False)
    raw_msgs = _messages(tmp_path / "raw" / "bag", make_typestore())
    raw_img = [m for t, _, _, m in raw_msgs if t == "/stereo/left/image_raw"][0]
    assert raw_img.header.stamp == jpeg.header.stamp
    raw = np.asarray(raw_img.data, dtype=np.uint8).reshape(480, 640, 3)
    assert cv2.PSNR(img, raw) > 38.0  # measured 39.4 dB (JPEG quality of the bag writer)


def test_cli_simulate(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["simulate", str(out), "--preset", "moving", "--duration", "1.5", "--seed", "4",
                 "--no-bag", "--quiet"]) == 0
    scene = load_scene(out)
    assert (scene.name, scene.seed, scene.duration) == ("moving", 4, 1.5)
    assert not (out / "bag").exists()
    assert main(["simulate", str(out), "--no-bag", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["simulate", str(out), "--scene", str(out / "scene.json"), "--no-bag",
                 "--overwrite", "--quiet"]) == 0
    assert load_scene(out).to_dict() == scene.to_dict()
    assert main(["simulate", "--list-presets"]) == 0
    listing = capsys.readouterr().out
    for name in ("single_static_anechoic", "two_static", "default", "moving", "hard",
                 "one_bearing", "one_bearing_three", "double_talk"):
        assert name in listing
    assert main(["simulate", str(tmp_path / "x"), "--rt60", "-1", "--no-bag"]) == 2
    assert "rt60" in capsys.readouterr().err
    # talking faces are on by default; --still-faces keeps the mouths closed
    assert scene.video.talking_faces
    still = tmp_path / "still"
    assert main(["simulate", str(still), "--preset", "two_static", "--duration", "1",
                 "--still-faces", "--no-bag", "--quiet"]) == 0
    assert not load_scene(still).video.talking_faces
    assert main(["simulate", str(tmp_path / "y"), "--scene", str(still / "scene.json"),
                 "--still-faces", "--no-bag"]) == 2
    assert "--still-faces" in capsys.readouterr().err


def test_speech_from_a_directory_of_wav_files(tmp_path):
    speech = tmp_path / "speech"
    speech.mkdir()
    rng = np.random.default_rng(0)
    from av_perception.sim import VoiceSpec

    for k, f0 in enumerate((100.0, 220.0)):
        x = synthesize_utterance(VoiceSpec(f0=f0), 22050, 22050, rng)
        pcm = np.concatenate([np.zeros(2000), x, np.zeros(2000)])  # silence gets trimmed
        scipy.io.wavfile.write(speech / f"s{k}.wav", 22050,
                               (pcm / np.abs(pcm).max() * 20000).astype(np.int16))
    out = tmp_path / "wav"
    assert main(["simulate", str(out), "--preset", "two_static", "--duration", "3",
                 "--speech-dir", str(speech), "--no-bag", "--quiet"]) == 0
    scene = load_scene(out)
    assert scene.speech.source == "wav"
    rate, x = scipy.io.wavfile.read(out / "audio.wav")
    spk = scene.speaking(np.arange(len(x)) / rate)
    anyone = spk[1] | spk[2]
    assert np.mean(x[anyone].astype(float) ** 2) > 20 * np.mean(x[~anyone].astype(float) ** 2)


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is optional and not installed")
def test_speech_from_espeak(tmp_path):
    out = tmp_path / "espeak"
    assert main(["simulate", str(out), "--preset", "single_static_anechoic", "--duration", "3",
                 "--speech", "espeak", "--no-bag", "--quiet"]) == 0
    rate, x = scipy.io.wavfile.read(out / "audio.wav")
    assert np.std(x) > 0.01


def test_cli_preset_help_matches_the_presets(tmp_path, capsys):
    from av_perception.sim import PRESETS

    with pytest.raises(SystemExit) as done:
        main(["simulate", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--preset PRESET scene preset:" in text
    for name in PRESETS:
        assert name in text
    assert main(["simulate", str(tmp_path / "x"), "--preset", "noisy_party", "--no-bag"]) == 2
    assert "unknown preset 'noisy_party'" in capsys.readouterr().err


def test_bag_reads_back_with_the_packages_own_readers(sqlite_run):
    """BagAudioSource and BagStereoSource read the simulator's bag: the audio equals
    audio.wav, stamps follow the scene, and every video frame pairs."""
    from av_perception.io.audio_msgs import BagAudioSource
    from av_perception.io.audio_sources import read_wav
    from av_perception.io.stereo_sources import BagStereoSource

    scene, result, out = sqlite_run
    chunks = list(BagAudioSource(out / "bag"))
    audio = np.concatenate([c.samples for c in chunks])
    wav, rate = read_wav(out / "audio.wav")
    assert rate == chunks[0].sample_rate == 16000
    n = min(len(audio), len(wav))
    assert n >= scene.n_samples - scene.audio.chunk
    assert np.max(np.abs(audio[:n] - wav[:n])) < 1e-4  # float32 bag vs WAV quantisation
    assert chunks[0].stamp == pytest.approx(EPOCH, abs=1e-6)
    steps = np.diff([c.stamp for c in chunks])
    assert np.allclose(steps, scene.audio.chunk / rate, atol=1e-6)
    with BagStereoSource(out / "bag") as src:
        frames = list(src)
    assert len(frames) == scene.n_frames
    stamp, left, right, calibration = frames[0]
    assert left.shape == right.shape == (480, 640, 3)
    assert calibration.baseline == pytest.approx(scene.robot.camera.baseline)
