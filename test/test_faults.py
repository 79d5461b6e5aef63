"""Faults and bad input (issue 16): nothing a robot's day throws at the commands may
silence them or lose data -- signals, damaged bags, type mistakes in configs, broken
files and devices."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from av_perception.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    from av_perception.sim import make_scene, simulate

    out = tmp_path_factory.mktemp("faults_scene")
    simulate(make_scene("two_static", seed=3, duration=4.0), out, storage="mcap",
             compressed=True)
    return out


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("NUMBA_NUM_THREADS", "1")
    return env


def _wait_for(cond, deadline_s: float, what: str, proc=None):
    end = time.monotonic() + deadline_s
    while not cond():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (rc {proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _data_lines(path) -> int:
    return max(sum(1 for _ in open(path)) - 1, 0) if Path(path).exists() else 0


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _bag_stamps(path, topic="speakers"):
    from rosbags.highlevel import AnyReader

    from av_perception.io.msgdefs import make_typestore

    with AnyReader([Path(path)], default_typestore=make_typestore()) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [t for _, t, _ in reader.messages(connections=conns)]


# --------------------------------------------------------------------------- A: signals
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["INT", "TERM", "HUP"])
def test_a_signal_keeps_the_track_file_and_the_output_bag(scene_dir, tmp_path, sig):
    tracks = tmp_path / "tracks.csv"
    out_bag = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "av_perception.cli", "process", str(scene_dir / "bag"),
         "--output", str(tracks), "--output-bag", str(out_bag), "--no-images", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    try:
        partial = tracks.with_name(tracks.name + ".partial")
        _wait_for(lambda: _data_lines(partial) >= 1, 600, "the first track rows", proc)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    name = signal.Signals(sig).name
    assert proc.returncode == 128 + sig, err
    assert f"interrupted by {name}" in err and "kept" in err and str(tracks) in err, err
    rows = _csv_rows(tracks)
    assert rows, "the rows computed before the signal are in the track file"
    assert not partial.exists()
    # the output bag is complete (metadata written) and holds every frame of the track file
    assert (out_bag / "metadata.yaml").exists()
    stamps = _bag_stamps(out_bag)
    assert stamps
    row_stamps = {round(float(r["stamp"]), 6) for r in rows}
    assert row_stamps <= {round(t * 1e-9, 6) for t in stamps}
    assert f"output bag {out_bag}" in err


def _send_after(n_calls: int, sig=signal.SIGTERM):
    """A wrapper that sends ``sig`` to this process after the n-th call of a function."""
    calls = [0]

    def wrap(fn):
        def wrapped(*a, **k):
            r = fn(*a, **k)
            calls[0] += 1
            if calls[0] == n_calls:
                os.kill(os.getpid(), sig)
            return r
        return wrapped
    return wrap


def test_a_sigterm_keeps_the_audio_features_written(tmp_path, monkeypatch, capsys):
    from av_perception.io.audio_sources import write_wav
    from av_perception.io.feature_files import FeatureCsvWriter, read_features_csv
    from av_perception.sim.signals import binauralize, noise_bursts

    rate = 16000
    x = binauralize(noise_bursts(rate, 10.0), 3e-4, rate)
    wav = tmp_path / "in.wav"
    write_wav(wav, x, rate)
    monkeypatch.setattr(FeatureCsvWriter, "write", _send_after(5)(FeatureCsvWriter.write))
    out = tmp_path / "f.csv"
    rc = main(["audio", str(wav), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in err and str(out) in err
    f = read_features_csv(out)
    assert len(f["t"]) > 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_a_signal_before_any_frame_leaves_an_existing_output_alone(tmp_path, monkeypatch,
                                                                      capsys):
    from av_perception.pipeline import AudioPipeline

    out = tmp_path / "f.csv"
    out.write_text("old\n")
    os.utime(out, (time.time() - 3600, time.time() - 3600))
    wav = tmp_path / "a.wav"
    from av_perception.io.audio_sources import write_wav
    from av_perception.sim.signals import binauralize, noise_bursts

    write_wav(wav, binauralize(noise_bursts(16000, 2.0), 3e-4, 16000), 16000)
    monkeypatch.setattr(AudioPipeline, "process_audio",
                        _send_after(1)(AudioPipeline.process_audio))
    rc = main(["audio", str(wav), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 128 + signal.SIGTERM
    assert out.read_text() == "old\n"
    assert "left as it was" in err, err


def test_a_sigterm_keeps_the_visual_observations_written(scene_dir, tmp_path, monkeypatch,
                                                          capsys):
    from av_perception.io.observation_files import ObservationCsvWriter, read_observations_csv

    monkeypatch.setattr(ObservationCsvWriter, "write",
                        _send_after(4)(ObservationCsvWriter.write))
    out = tmp_path / "obs.csv"
    rc = main(["vision", str(scene_dir / "bag"), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in err and str(out) in err
    obs = read_observations_csv(out)
    assert 1 <= len(set(obs["stamp"])) <= 4  # the frames written before the signal


# ------------------------------------------------------------------- C: type mistakes
def _params_file(path, body: str):
    path.write_text("/**:\n  ros__parameters:\n" + "".join(
        "    " + line + "\n" for line in body.strip("\n").splitlines()))
    return path


def test_c_offline_config_accepts_an_int_for_a_float_and_names_type_mistakes(tmp_path):
    from av_perception.core.config import ConfigError, MicArrayConfig
    from av_perception.core.tracking import TrackerConfig
    from av_perception.io.params import load_offline_configs

    ok = _params_file(tmp_path / "ok.yaml", "tracker:\n  process_noise: 1\n"
                      "mics:\n  left: [0, 0, 0]\n  right: [1, 0, 0]")
    cfg = load_offline_configs(ok, [TrackerConfig, MicArrayConfig])
    assert cfg[TrackerConfig].process_noise == 1.0
    assert isinstance(cfg[TrackerConfig].process_noise, float)
    assert cfg[MicArrayConfig].right == (1.0, 0.0, 0.0)
    for body, name, expected in [
        ("mics:\n  left: 0.075", "mics.left", "a list of 3 numbers"),
        ("mics:\n  left: abc", "mics.left", "a list of 3 numbers"),
        ("tracker:\n  process_noise: [1, 2]", "tracker.process_noise", "a number"),
        ("tracker:\n  process_noise: 'high'", "tracker.process_noise", "a number"),
    ]:
        bad = _params_file(tmp_path / "bad.yaml", body)
        with pytest.raises(ConfigError) as err:
            load_offline_configs(bad, [TrackerConfig, MicArrayConfig])
        assert name in str(err.value) and expected in str(err.value), str(err.value)


def test_c_a_scalar_for_a_list_is_a_clear_command_error(tmp_path, capsys):
    from av_perception.io.audio_sources import write_wav

    wav = tmp_path / "in.wav"
    write_wav(wav, np.zeros((1600, 2)), 16000)
    cfg = _params_file(tmp_path / "c.yaml", "mics:\n  left: 0.075")
    rc = main(["audio", str(wav), "--output", str(tmp_path / "f.csv"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "mics.left" in err and "a list of 3 numbers" in err and "Traceback" not in err


def test_c_node_accepts_an_int_for_a_float_parameter(ros_context):
    from rclpy.parameter import Parameter

    from av_perception.core.config import ConfigError
    from av_perception.nodes.tracker_node import TrackerNode

    node = TrackerNode(parameter_overrides=[
        Parameter("tracker.process_noise", value=1),
        Parameter("mics.left", value=[0, 0, 0])])
    try:
        assert node.get_parameter("tracker.process_noise").value == 1.0
        assert node.get_parameter("mics.left").value == [0.0, 0.0, 0.0]
        # and later, as ros2 param set would
        res = node.set_parameters([Parameter("tracker.process_noise", value=2)])
        assert res[0].successful, res[0].reason
        assert node.get_parameter("tracker.process_noise").value == 2.0
        res = node.set_parameters([Parameter("tracker.process_noise", value="x")])
        assert not res[0].successful
    finally:
        node.destroy_node()
    with pytest.raises(ConfigError, match=r"tracker\.process_noise.*wrong type.*a number"):
        TrackerNode(parameter_overrides=[Parameter("tracker.process_noise", value="high")])


def test_c_node_keeps_running_with_an_int_in_its_params_file(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("tracker_node:\n  ros__parameters:\n    tracker:\n"
                      "      process_noise: 1\n")
    log = tmp_path / "node.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "av_perception.nodes.tracker_node", "--ros-args",
             "--params-file", str(params)], stdout=fh, stderr=subprocess.STDOUT, env=_env(),
            cwd=tmp_path)
    try:
        # it comes up (its first diagnostics line or its start message) and stays up
        _wait_for(lambda: "tracker_node" in log.read_text() or proc.poll() is not None, 120,
                  "the node to start")
        assert proc.poll() is None, log.read_text()
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2.0)  # still running (not a timing assertion: any exit fails)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "InvalidParameterTypeException" not in text and "Traceback" not in text, text


def test_c_node_names_a_wrong_type_in_its_params_file(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("tracker_node:\n  ros__parameters:\n    mics:\n      left: 0.075\n")
    proc = subprocess.run(
        [sys.executable, "-m", "av_perception.nodes.tracker_node", "--ros-args",
         "--params-file", str(params)], capture_output=True, text=True, env=_env(),
        timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "mics.left" in proc.stderr and "a list of 3 numbers" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------- D: smaller faults
def _noise_wav(path, seconds=3.0, gain=1.0, rate=16000, dtype="int16"):
    from av_perception.io.audio_sources import write_wav
    from av_perception.sim.signals import binauralize, noise_bursts

    x = binauralize(noise_bursts(rate, seconds), 3e-4, rate) * gain
    write_wav(path, x, rate, dtype=dtype)
    return path


def test_d_a_failed_run_leaves_an_existing_output_alone(scene_dir, tmp_path, capsys):
    tracks = tmp_path / "tracks.csv"
    tracks.write_text("precious,old,result\n")
    rc = main(["process", str(scene_dir / "bag"), "--output", str(tracks), "--left-topic",
               "/no/such/image", "-q"])
    assert rc == 2
    assert tracks.read_text() == "precious,old,result\n"
    assert not tracks.with_name("tracks.csv.partial").exists()
    feats = tmp_path / "f.csv"
    feats.write_text("old\n")
    assert main(["audio", str(_noise_wav(tmp_path / "a.wav")), "-o", str(feats), "--left", "0",
                 "--right", "0"]) == 2
    assert feats.read_text() == "old\n"
    capsys.readouterr()


def test_d_rows_computed_before_an_error_end_up_in_the_output(tmp_path, monkeypatch, capsys):
    from av_perception.io.feature_files import FeatureCsvWriter, read_features_csv

    feats = tmp_path / "f.csv"
    feats.write_text("old\n")
    calls = [0]
    original = FeatureCsvWriter.write

    def failing(self, f):
        calls[0] += 1
        if calls[0] == 4:
            raise OSError(5, "input/output error")
        return original(self, f)

    monkeypatch.setattr(FeatureCsvWriter, "write", failing)
    assert main(["audio", str(_noise_wav(tmp_path / "a.wav")), "-o", str(feats)]) == 2
    f = read_features_csv(feats)
    assert len(f["t"]) > 0  # the three chunks before the error
    assert not feats.with_name("f.csv.partial").exists()
    capsys.readouterr()


def test_d_clipped_audio_is_reported_with_its_fraction(tmp_path, capsys):
    out = tmp_path / "f.csv"
    assert main(["audio", str(_noise_wav(tmp_path / "ok.wav")), "-o", str(out)]) == 0
    assert "clipped" not in capsys.readouterr().err
    assert main(["audio", str(_noise_wav(tmp_path / "loud.wav", gain=50.0)), "-o",
                 str(out)]) == 0
    err = capsys.readouterr().err
    assert "clipped" in err and "% of the samples" in err and "gain" in err, err


def test_d_the_same_channel_twice_is_refused(tmp_path, capsys):
    rc = main(["audio", str(_noise_wav(tmp_path / "a.wav")), "-o", str(tmp_path / "f.csv"),
               "--left", "0", "--right", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "both 0" in err and "--left/--right" in err
    assert not (tmp_path / "f.csv").exists()


def test_d_a_wav_cut_mid_sample_is_read_up_to_the_cut(tmp_path, capsys):
    from av_perception.io.feature_files import read_features_csv

    whole = _noise_wav(tmp_path / "whole.wav", seconds=4.0)
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:44 + (len(data) - 44) // 2 + 3])  # mid-sample, mid-frame
    assert main(["audio", str(whole), "-o", str(tmp_path / "w.csv")]) == 0
    capsys.readouterr()
    assert main(["audio", str(cut), "-o", str(tmp_path / "c.csv")]) == 0
    err = capsys.readouterr().err
    assert "truncated" in err and "present" in err, err
    n_whole = len(read_features_csv(tmp_path / "w.csv")["t"])
    n_cut = len(read_features_csv(tmp_path / "c.csv")["t"])
    assert abs(n_cut - n_whole / 2) <= 3


def test_d_empty_or_all_nan_audio_is_an_error(tmp_path, capsys):
    from av_perception.io.audio_sources import write_wav

    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros((0, 2)), 16000)
    assert main(["audio", str(empty), "-o", str(tmp_path / "e.csv")]) == 1
    assert "no feature frame" in capsys.readouterr().err
    nan = tmp_path / "nan.wav"
    write_wav(nan, np.full((16000, 2), np.nan), 16000, dtype="float32")
    assert main(["audio", str(nan), "-o", str(tmp_path / "n.csv")]) == 1
    err = capsys.readouterr().err
    assert "no feature frame" in err and "rejected" in err


def test_d_all_nan_audio_in_a_bag_is_reported_by_process(tmp_path):
    from bagutil import write_audio_common4_bag

    from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig
    from av_perception.offline import bag_audio_features

    bag = tmp_path / "nan_bag"
    write_audio_common4_bag(bag, np.full((16000, 2), np.nan), 16000)
    errors = []
    feats = bag_audio_features(bag, {AudioFrontEndConfig: AudioFrontEndConfig(),
                                      MicArrayConfig: MicArrayConfig()}, None, None, None,
                               errors)
    assert len(feats) == 0
    assert errors and "no audio features" in errors[0] and "rejected" in errors[0]


def test_d_start_past_the_end_says_the_bags_time_range(scene_dir, tmp_path, capsys):
    for cmd in ("process", "vision"):
        rc = main([cmd, str(scene_dir / "bag"), "-o", str(tmp_path / "t.csv"), "--start",
                   "100"])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert "past the end" in err and "holds 4.0" in err, err


def test_d_a_full_device_is_named(tmp_path, capsys):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    rc = main(["audio", str(_noise_wav(tmp_path / "a.wav")), "-o", "/dev/full"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "/dev/full" in err and "No space left on device" in err, err


# ------------------------------------------------------------------ B: damaged bags
@pytest.fixture(scope="module")
def sqlite_scene_dir(tmp_path_factory):
    from av_perception.sim import make_scene, simulate

    out = tmp_path_factory.mktemp("faults_scene_sqlite")
    simulate(make_scene("two_static", seed=3, duration=4.0), out, storage="sqlite3",
             compressed=True)
    return out


def _cut_bag(src: Path, dst: Path, fraction: float, keep_metadata: bool) -> Path:
    """A copy of a bag whose storage file is cut at ``fraction`` of its size, as a power
    loss leaves it (with or without metadata.yaml)."""
    dst.mkdir()
    if keep_metadata:
        (dst / "metadata.yaml").write_bytes((src / "metadata.yaml").read_bytes())
    f = next(p for p in src.iterdir() if p.suffix in (".mcap", ".db3"))
    data = f.read_bytes()
    (dst / f.name).write_bytes(data[:int(len(data) * fraction)])
    return dst


def _messages(bag):
    from av_perception.io.bag import BagReader

    with BagReader(bag) as r:
        got = [(m.topic, m.log_time) for m in r.messages()]
        return got, r.start_time, r.end_time, list(r.errors), r.truncated


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_b_a_bag_cut_short_is_read_up_to_the_cut(scene_dir, sqlite_scene_dir, tmp_path,
                                                  storage):
    src = (scene_dir if storage == "mcap" else sqlite_scene_dir) / "bag"
    intact, t0, t1, errors, truncated = _messages(src)
    assert not errors and not truncated
    for fraction in (0.3, 0.6, 0.9):
        for keep_metadata in (True, False):
            cut = _cut_bag(src, tmp_path / f"cut_{fraction}_{keep_metadata}", fraction,
                           keep_metadata)
            got, _, _, errors, truncated = _messages(cut)
            assert truncated and errors
            assert "ros2 bag reindex" in errors[0] and "lost" in errors[0], errors[0]
            last = max(t for _, t in got)
            # the recovered span reaches nearly the cut (the file holds data in time order);
            # measured: within 1.7 % of the span, and at least 97.8 % of the messages
            # logged before the last one recovered
            assert last - t0 >= (fraction - 0.03) * (t1 - t0), (fraction, keep_metadata)
            before = [m for m in intact if m[1] <= last]
            assert len(got) >= 0.97 * len(before), (fraction, keep_metadata, len(got),
                                                    len(before))
            assert set(got) <= set(intact)
            assert [t for _, t in got] == sorted(t for _, t in got)


def _damage_middle(src: Path, dst: Path, where: float, storage: str) -> Path:
    """A copy of a bag damaged inside: an .db3 with 8 KB of random bytes at ``where`` of
    its size; an .mcap whose chunk nearest ``where`` has a garbled record header."""
    import shutil

    shutil.copytree(src, dst)
    f = next(p for p in dst.iterdir() if p.suffix in (".mcap", ".db3"))
    data = bytearray(f.read_bytes())
    if storage == "sqlite3":
        pos = int(len(data) * where)
        data[pos:pos + 8192] = np.random.default_rng(7).integers(0, 256, 8192,
                                                                  np.uint8).tobytes()
    else:
        i, chunks = 8, []
        while data[i] != 0x0F:  # the records up to the data end
            if data[i] == 0x06:
                chunks.append(i)
            i += 9 + int.from_bytes(data[i + 1:i + 9], "little")
        c = min(chunks, key=lambda c: abs(c - where * len(data)))
        first = c + 9 + 28 + 4 + int.from_bytes(data[c + 37:c + 41], "little") + 8
        data[first:first + 9] = b"\xff" * 9
    f.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_b_a_bag_damaged_inside_is_read_around_the_damage(scene_dir, sqlite_scene_dir,
                                                          tmp_path, storage):
    """Damage in the middle of a storage file (a bad disk sector, a flipped block): the
    messages before and after it are read, and what was lost is said."""
    src = (scene_dir if storage == "mcap" else sqlite_scene_dir) / "bag"
    intact, _, _, _, _ = _messages(src)
    for where in (0.3, 0.5, 0.8):
        bag = _damage_middle(src, tmp_path / f"d{where}", where, storage)
        got, _, _, errors, truncated = _messages(bag)
        assert truncated and errors, where
        text = " ".join(errors)
        assert "ros2 bag reindex" in text and "damaged" in text, text
        assert set(got) <= set(intact) and len(set(got)) == len(got)
        assert [t for _, t in got] == sorted(t for _, t in got)
        # messages after the damage are there too
        assert max(t for _, t in got) == max(t for _, t in intact), where
        assert len(got) >= 0.97 * len(intact), (where, len(got), len(intact))


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_b_process_and_audio_compute_a_result_from_a_damaged_bag(
        scene_dir, sqlite_scene_dir, tmp_path, capsys, storage):
    from av_perception.io.feature_files import read_features_csv

    src = (scene_dir if storage == "mcap" else sqlite_scene_dir) / "bag"
    cut = _cut_bag(src, tmp_path / "cut", 0.6, keep_metadata=storage == "sqlite3")
    tracks = tmp_path / "tracks.csv"
    assert main(["process", str(cut), "-o", str(tracks), "-q"]) == 0
    err = capsys.readouterr().err
    assert "could not be opened normally" in err and "ros2 bag reindex" in err
    assert "truncated or corrupt" in err
    assert err.count("could not be opened normally") == 1  # said once
    assert len(_csv_rows(tracks)) > 0
    feats = tmp_path / "f.csv"
    assert main(["audio", str(cut), "-o", str(feats)]) == 0
    err = capsys.readouterr().err
    assert "ros2 bag reindex" in err
    assert len(read_features_csv(feats)["t"]) > 0


def test_b_nothing_readable_is_still_a_clear_error(tmp_path):
    from av_perception.io.bag import BagError, BagReader

    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "bag.mcap").write_bytes(b"\x89MCAP0\r\n\x01\x00")
    with pytest.raises(BagError, match="cannot open bag.*record by record"):
        BagReader(bag)
    (bag / "bag.mcap").write_bytes(b"garbage")
    with pytest.raises(BagError, match="mcap magic"):
        BagReader(bag)


def _bit_flipped_copy(src: Path, dst: Path, rate: float, every: int = 1, seed: int = 0):
    """A copy of a bag whose compressed images (every ``every``-th) have random bits
    flipped in their JPEG data at ``rate`` per byte (headers left intact)."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    from av_perception.io.msgdefs import make_typestore

    rng = np.random.default_rng(seed)
    store = make_typestore()
    with AnyReader([src], default_typestore=store) as reader, \
            Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=reader.typestore)
                 for c in reader.connections}
        n = 0
        for conn, t, raw in reader.messages():
            if conn.msgtype == "sensor_msgs/msg/CompressedImage":
                n += 1
                if n % every == 0:
                    msg = reader.deserialize(raw, conn.msgtype)
                    data = np.array(msg.data, dtype=np.uint8)
                    k = max(1, rng.binomial(len(data) - 700, rate))
                    idx = rng.integers(700, len(data) - 2, k)
                    data[idx] ^= (1 << rng.integers(0, 8, k)).astype(np.uint8)
                    msg.data = data
                    raw = reader.typestore.serialize_cdr(msg, conn.msgtype)
            writer.write(conns[conn.id], t, raw)
    return dst


def test_d_bit_flipped_jpegs_are_counted_in_a_warning(scene_dir, tmp_path, capsys):
    good = tmp_path / "good.csv"
    assert main(["vision", str(scene_dir / "bag"), "-o", str(good)]) == 0
    assert "damaged" not in capsys.readouterr().err  # no false alarm on intact images
    flipped = _bit_flipped_copy(scene_dir / "bag", tmp_path / "flipped", 1e-3, every=2)
    out = tmp_path / "obs.csv"
    main(["vision", str(flipped), "-o", str(out)])
    err = capsys.readouterr().err
    assert "compressed image(s) were damaged" in err, err
    n = int(err.split(" compressed image(s) were damaged")[0].rsplit("warning: ", 1)[1])
    # half of the 120 images were flipped: 53 of them are found damaged, none of the others
    assert 50 <= n <= 60, n
    assert main(["process", str(flipped), "-o", str(tmp_path / "t.csv"), "-q"]) in (0, 1)
    assert "compressed image(s) were damaged" in capsys.readouterr().err


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_b_an_intact_bag_without_metadata_is_read_whole(scene_dir, sqlite_scene_dir,
                                                        tmp_path, storage):
    src = (scene_dir if storage == "mcap" else sqlite_scene_dir) / "bag"
    intact, *_ = _messages(src)
    bag = _cut_bag(src, tmp_path / "no_meta", 1.0, keep_metadata=False)
    got, _, _, errors, truncated = _messages(bag)
    assert got == intact and not truncated
    assert "intact" in errors[0] and "ros2 bag reindex" in errors[0]


# ------------------------------------------------- E: what the node fuzz found (issue 16)
def _cloud(fields: dict, height: int = 1, pad: int = 0):
    """A PointCloud2 of ``height`` rows (of len/height points each, ``pad`` bytes of
    padding after each row)."""
    from std_msgs.msg import Header

    from av_perception.nodes.conversions import make_pointcloud2, sec_to_time

    msg = make_pointcloud2(Header(stamp=sec_to_time(100.0)), fields)
    width = msg.width // height
    row = width * msg.point_step
    data = bytes(msg.data)
    msg.data = b"".join(data[r * row:(r + 1) * row] + b"\xff" * pad for r in range(height))
    msg.height, msg.width, msg.row_step = height, width, row + pad
    return msg


def test_e_an_organised_cloud_with_padded_rows_is_read_row_by_row():
    """The fuzz: row_step was ignored, so the padding of each row of an organised cloud
    (height > 1) was read as points (silently wrong values); now each row starts
    row_step bytes after the previous one, and a row_step shorter than a row is refused."""
    from av_perception.nodes.conversions import read_pointcloud2

    x = np.arange(6, dtype=np.float32)
    flat = read_pointcloud2(_cloud({"x": x, "y": -x}))
    padded = read_pointcloud2(_cloud({"x": x, "y": -x}, height=2, pad=5))
    np.testing.assert_array_equal(padded["x"], x)
    np.testing.assert_array_equal(padded["y"], -x)
    np.testing.assert_array_equal(flat["x"], x)
    short = _cloud({"x": x}, height=2)
    short.row_step = 4
    with pytest.raises(ValueError, match="row_step 4 is smaller than width x point_step"):
        read_pointcloud2(short)
    empty = _cloud({"x": x})
    empty.width, empty.height = 0, 2 ** 32 - 1  # no points, whatever the rows say
    assert len(read_pointcloud2(empty)["x"]) == 0


def test_e_stamps_outside_ros_time_are_refused_naming_the_input():
    """The fuzz: a float32 t_offset of 3e38 made an audio stamp no clock can reach; the
    fusion then cycled through its hops for ever.  Such stamps are refused like NaN ones."""
    from av_perception.pipeline import FusionPipeline, InputError, TimeOrderedBuffer

    buf = TimeOrderedBuffer()
    with pytest.raises(InputError, match="audio frames with stamps outside ROS time"):
        buf.add_audio([100.0, 3e38], [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(InputError, match="visual observations with a stamp outside ROS time"):
        buf.add_visual(-1e19, None)
    fusion = FusionPipeline()
    with pytest.raises(InputError, match="outside ROS time"):
        fusion.add_visual(1e30, np.zeros((1, 3)), np.ones(1))
    assert buf.messages == 0


def test_e_a_stamp_far_ahead_does_not_stall_the_fusion_and_valid_input_resumes():
    """The fuzz: one visual cloud stamped at the end of ROS time (2^31 s) made the fusion
    step through every 0.25 s hop up to it (billions): the node never returned.  Now the
    hops are skipped at once; a valid stream afterwards (a jump back) restarts it."""
    from av_perception.pipeline import FusionPipeline

    rng = np.random.default_rng(0)
    person = np.array([0.3, 0.0, 2.0])
    fusion = FusionPipeline()
    fusion.warm_up()

    def frames(t0, n):
        windows = []
        for k in range(n):
            assert fusion.add_visual(t0 + k / 15, person + rng.normal(0, 0.01, (1, 3)),
                                     np.ones(1))
            windows += fusion.process()
        return windows

    frames(100.0, 10)
    assert fusion.add_visual(2.0 ** 31 - 1, person[None], np.ones(1))
    far = fusion.process(flush=True)  # returns: the hops up to 2^31 s are skipped
    assert len(far) <= 2
    windows = frames(200.0, 45)
    assert fusion.resets == 1
    assert len(windows) >= 8 and all(200.0 <= w.stamp < 203.0 for w in windows)
    ev = windows[-1].events
    assert len(ev) == 1 and np.abs(ev[0].position - person).max() < 0.05


def test_e_audio_with_an_infinite_itd_is_refused_at_the_input_not_blamed_on_the_image():
    """The fuzz: an audio/features frame with an infinite ITD was buffered, then made the
    next tracker step fail, reported as 'visual observations rejected' (the image was
    lost for the audio's fault).  Now the audio message is refused as it arrives, naming
    the audio input, and the image is tracked."""
    from av_perception.pipeline import InputError, TrackingPipeline

    p = TrackingPipeline()
    with pytest.raises(InputError, match="audio frames with infinite ITDs"):
        p.add_audio([10.0, 10.016], [1e-4, np.inf], [1.0, 1.0])
    assert p.buffered_audio == 0
    assert p.add_audio([10.0, 10.016], [1e-4, np.nan], [1.0, 1.0]) == 2  # NaN: no ITD
    cov = np.eye(3)[None] * 1e-4
    assert p.step(10.02, np.array([[0.3, 0.0, 2.0]]), cov, np.ones(1)) is not None


def test_e_camera_info_of_a_huge_size_is_refused_before_building_its_maps():
    """The fuzz: a CameraInfo with distortion and a broken size (100000 x 50000) made the
    visual node build rectification maps of that size (tens of gigabytes) before checking
    it against the images.  The size is now checked first."""
    from sensor_msgs.msg import CameraInfo

    from av_perception.core.config import StereoCameraConfig
    from av_perception.core.stereo import CalibrationError, StereoCalibration
    from av_perception.io.image_msgs import camera_info_fields, fill_camera_info_msg
    from av_perception.io.stereo_sources import CalibrationCache

    cal = StereoCalibration.from_config(StereoCameraConfig(width=96, height=72, fx=75.0,
                                                           fy=75.0, cx=47.5, cy=35.5))
    infos = [fill_camera_info_msg(CameraInfo(), f) for f in camera_info_fields(cal)]
    for info in infos:
        info.d = [0.1, -0.05, 0.0, 0.0, 0.0]  # raw images: maps to build
        info.width, info.height = 100_000, 50_000
    cache = CalibrationCache()
    with pytest.raises(CalibrationError,
                       match="camera_info is for 100000x50000 images but the images are 96x72"):
        cache.get(*infos, image_size=(96, 72))
    assert cache.rebuilds == 0
    for info in infos:
        info.width, info.height = 96, 72
    assert cache.get(*infos, image_size=(96, 72)).maps is not None  # the right size builds


def test_e_a_frame_of_thousands_of_points_is_refused_not_clustered():
    """The fuzz: one visual/observations cloud of 20 000 points made the fusion's births
    build a 20 000 x 20 000 distance matrix (10 GB) and the tracker step for tens of
    seconds.  A frame of more than MAX_VISUAL_POINTS points is refused as broken input by
    both pipelines (the nodes report it and go on)."""
    from av_perception.core.tracking import TrackerInputError
    from av_perception.pipeline import FusionPipeline, InputError, TrackingPipeline
    from av_perception.pipeline.buffer import MAX_VISUAL_POINTS

    n = MAX_VISUAL_POINTS + 1
    xyz = np.tile([0.3, 0.0, 2.0], (n, 1))
    fusion = FusionPipeline()
    with pytest.raises(InputError, match=f"visual observations with {n} points"):
        fusion.add_visual(100.0, xyz, np.ones(n))
    assert fusion.buffered_messages == 0
    tracking = TrackingPipeline()
    with pytest.raises(TrackerInputError, match=f"visual observations with {n} points"):
        tracking.step(100.0, xyz, np.tile(np.eye(3) * 1e-4, (n, 1, 1)), np.ones(n))
    assert tracking.step(100.1, xyz[:MAX_VISUAL_POINTS],
                         np.tile(np.eye(3) * 1e-4, (MAX_VISUAL_POINTS, 1, 1)),
                         np.ones(MAX_VISUAL_POINTS)) is not None


def test_e_out_of_range_weights_positions_and_itds_do_not_reach_the_av_events():
    """The fuzz: finite but absurd input (activity x reliability of 1e38, an observation
    at 1e30 m, a variance of 3e38 m^2) went into the clustering, and av_events carried
    infinite masses (float32 overflow) that every subscriber refuses.  Weights are
    capped at 1, positions beyond 10 km and ITDs beyond 10 ms are ignored (counted with
    the invalid points), absurd variances are replaced like non-finite ones."""
    from std_msgs.msg import Header

    from av_perception.nodes.conversions import cloud_to_events, events_to_cloud
    from av_perception.pipeline import FusionPipeline

    rng = np.random.default_rng(1)
    person = np.array([0.3, 0.0, 2.0])
    fusion = FusionPipeline()
    fusion.warm_up()
    windows = []
    for k in range(45):
        t = 100.0 + k / 15
        xyz = np.vstack([person + rng.normal(0, 0.01, 3), [1e30, 0.0, 1.0]])
        var = np.array([[1e-4, 1e-4, 3e38], [1e-4, 1e-4, 1e-4]])
        fusion.add_visual(t, xyz, np.array([1e38, 0.9]), var)
        stamps = t - 1 / 15 + np.arange(4) / 60
        fusion.add_audio(stamps, np.array([1e-4, 1e-4, 5.0, 1e-4]), np.full(4, 1e38))
        windows += fusion.process()
    assert fusion.invalid_points == 45
    assert len(windows) >= 8
    for w in windows:
        stamp, ev = cloud_to_events(events_to_cloud(Header(), w.events))  # finite
        assert np.all(np.isfinite(ev.visual_mass)) and np.all(np.isfinite(ev.audio_mass))
    assert any(np.abs(e.position - person).max() < 0.05 for e in windows[-1].events)


def test_e_audio_stamped_far_ahead_once_does_not_leave_the_tracker_deaf():
    """The fuzz (seed 1613): one audio/features message stamped 10^7 s ahead set the
    audio buffer's head there; every later audio frame was older than head -
    tracking.max_audio_buffer and dropped, and the tracker ran without audio for good
    (nobody ever spoke).  Audio stamped more than tracking.time_jump_reset before the
    newest audio now restarts the audio buffer (counted in audio_resets)."""
    from av_perception.pipeline import TrackingPipeline

    p = TrackingPipeline()
    cov = np.eye(3)[None] * 1e-4
    assert p.add_audio([100.0], [1e-4], [1.0]) == 1
    assert p.step(100.05, np.array([[0.3, 0.0, 2.0]]), cov, np.ones(1)) is not None
    p.add_audio([1e7 + 100.0], [1e-4], [1.0])  # stamped far ahead
    assert p.add_audio([100.1, 100.116], [1e-4, 1e-4], [1.0, 1.0]) == 2
    assert p.audio_resets == 1 and p.buffered_audio == 2
    heard = p.tracker.stats["audio_frames"]
    assert p.step(100.12, np.array([[0.3, 0.0, 2.0]]), cov, np.ones(1)) is not None
    assert p.tracker.stats["audio_frames"] > heard  # the tracker hears again
