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

from av_perception.io.audio_sources import write_wav
from av_perception.sim.signals import binauralize, noise_bursts

pytestmark = [pytest.mark.ros, pytest.mark.device, pytest.mark.slow]
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
    start_sound_server(sink, env)
    yield sink, env
    stop_sound_server(env)


def start_sound_server(sink, env):
    """Start a private PulseAudio daemon with a 2-channel null sink as default source."""
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


def stop_sound_server(env):
    subprocess.run(["pactl", "exit"], env=env, capture_output=True, timeout=10)


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
         "-p", "capture.reconnect_interval:=0.5", "-r", "__ns:=/device_test"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    from diagnostic_msgs.msg import DiagnosticArray

    listener = ros_context.create_node("device_listener")
    got, capturing = [], []
    listener.create_subscription(Vector3Stamped, "/device_test/audio/direction", got.append, 100)

    def on_diag(msg):
        for st in msg.status:
            if "audio_features_node" in st.name and any(
                    kv.key == "input_rate_hz" and float(kv.value) > 1000 for kv in st.values):
                capturing.append(True)

    listener.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 100)
    player = None
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            ros_context.spin_once(listener, timeout_sec=0.05)
            if player is None and capturing:  # the device delivers audio: play the truth
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


def test_device_that_disappears_is_reported_and_reopened(ros_context, null_sink, tmp_path):
    """The sound server dies mid-stream: the node reports it on /diagnostics, keeps running,
    and captures again once the device is back."""
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Vector3Stamped

    from av_perception.io.audio_sources import AudioSourceError, import_sounddevice

    try:
        import_sounddevice()
    except AudioSourceError as exc:
        require(False, str(exc))
    sink, env = null_sink
    wav = tmp_path / "itd.wav"
    write_wav(wav, binauralize(noise_bursts(FS, 3.0, seed=12), -1.5e-4, FS), FS)
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "av_perception.nodes.audio_features_node", "--ros-args",
         "-p", "capture.device:=pulse", "-p", "capture.reconnect_interval:=0.5",
         "-p", "capture.stall_timeout:=1.0", "-p", "output.diagnostics_period:=0.3",
         "-r", "__ns:=/unplug_test"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    listener = ros_context.create_node("unplug_listener")
    got, diags = [], []
    listener.create_subscription(Vector3Stamped, "/unplug_test/audio/direction", got.append, 100)
    listener.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 100)

    def spin(seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until()):
            ros_context.spin_once(listener, timeout_sec=0.05)

    def statuses():
        return [st for m in diags for st in m.status if "audio_features_node" in st.name]

    try:
        spin(20, until=lambda: any(any(
            kv.key == "input_rate_hz" and float(kv.value) > 1000 for kv in st.values)
            for st in statuses()))
        stop_sound_server(env)  # the device disappears
        spin(8, until=lambda: any(st.level == b"\x02" for st in statuses()))
        errors = [st.message for st in statuses() if st.level == b"\x02"]
        assert errors, "no ERROR diagnostic after the device disappeared"
        assert node_proc.poll() is None, "the node died with its device"
        start_sound_server(sink, env)  # and comes back
        n_diag = len(diags)
        spin(25, until=lambda: any(any(
            kv.key == "input_rate_hz" and float(kv.value) > 1000 for kv in st.values)
            for m in diags[n_diag:] for st in m.status if "audio_features_node" in st.name))
        player = subprocess.Popen(["paplay", "-d", sink, str(wav)], env=env)
        spin(15, until=lambda: player.poll() is not None and len(got) >= 40)
        player.wait(timeout=10)
    finally:
        node_proc.terminate()
        log = node_proc.communicate(timeout=20)[0]
        listener.destroy_node()
    assert any("disconnected" in e or "stopped" in e or "no input device" in e
               for e in errors), errors
    assert len(got) >= 40, f"no capture after the device came back; node log:\n{log}"
    x = np.median([m.vector.x for m in got])
    assert x == pytest.approx(1.5e-4 * 343.0 / 0.15, abs=0.02)
