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
    from av_perception.core.signals import binauralize, noise_bursts
    from av_perception.io.audio_sources import write_wav
    from av_perception.io.feature_files import FeatureCsvWriter, read_features_csv

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

