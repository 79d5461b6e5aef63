"""Real capture path: a PulseAudio null sink is the sound card.

A binaural WAV with a known ITD is played into the sink with ``paplay``; the
node (a separate process) records the sink's monitor through sounddevice's
``pulse`` device and publishes ``audio/direction``, which this test receives
over DDS and checks against the truth.  In CI the test fails (not skips) when
PulseAudio or PortAudio is missing.
"""
import os
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from conftest import require

from av_perception.core.signals import binauralize, noise_bursts
from av_perception.io.audio_sources import write_wav

pytestmark = [pytest.mark.ros, pytest.mark.device]
FS = 16000


@pytest.fixture
def null_sink(tmp_path):
    require(shutil.which("pulseaudio") is not None, "pulseaudio (apt-get install pulseaudio)")
    require(shutil.which("paplay") is not None, "paplay (apt-get install pulseaudio-utils)")
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    sink = "avp_test_" + uuid.uuid4().hex[:6]
    env = os.environ.copy()
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env["PULSE_SOURCE"] = sink + ".monitor"
    start = subprocess.run(
        ["pulseaudio", "-n", "--daemonize=yes", "--exit-idle-time=-1", "--use-pid-file=no",
         "--load=module-native-protocol-unix",
         f"--load=module-null-sink sink_name={sink} channels=2 rate={FS}"],
        env=env, capture_output=True, text=True, timeout=30)
    require(start.returncode == 0, f"a PulseAudio daemon ({start.stderr.strip()})")
    for _ in range(50):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    subprocess.run(["pactl", "set-default-source", sink + ".monitor"], env=env,
                   capture_output=True, timeout=10)
    yield sink, env
    subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True, timeout=10)


def test_live_capture_from_a_null_sink(ros_context, null_sink, tmp_path):
    from geometry_msgs.msg import Vector3Stamped

    from av_perception.io.audio_sources import AudioSourceError, import_sounddevice

    try:
        import_sounddevice()
    except AudioSourceError as exc:
        require(False, str(exc))
    sink, env = null_sink
    itd = 2.0e-4  # sound from the left: azimuth asin(c*itd/d) = 27.2 degrees
    wav = tmp_path / "itd.wav"
    write_wav(wav, binauralize(noise_bursts(FS, 4.0, seed=11), itd, FS), FS)
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "av_perception.nodes.audio_features_node", "--ros-args",
         "-p", "capture.device:=pulse", "-p", f"capture.sample_rate:={FS}",
         "-r", "__ns:=/device_test"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    listener = ros_context.create_node("device_listener")
    got = []
    listener.create_subscription(Vector3Stamped, "/device_test/audio/direction", got.append, 100)
    player = None
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            ros_context.spin_once(listener, timeout_sec=0.05)
            if player is None and time.monotonic() > end - 55:  # node had 5 s to start
                player = subprocess.Popen(["paplay", "-d", sink, str(wav)], env=env)
            if player is not None and player.poll() is not None and len(got) >= 60:
                break
    finally:
        if player is not None and player.poll() is None:
            player.kill()
        node_proc.terminate()
        log = node_proc.communicate(timeout=20)[0]
        listener.destroy_node()
    assert len(got) >= 60, f"only {len(got)} directions received; node log:\n{log}"
    x = np.array([m.vector.x for m in got])
    expected_x = -itd * 343.0 / 0.15
    assert np.median(x) == pytest.approx(expected_x, abs=0.02)
    assert np.mean(np.abs(x - expected_x) < 0.05) > 0.8
