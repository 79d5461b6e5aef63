"""perception_node's live voices in-process: a talker at the left head (a WAV file played
in real time), the right head silent; ``voice_output.publish_audio`` gives
``/humans/voices/voice<id>/audio`` per track, whose chunks, placed by their stamps on the
audio's clock, are the talker's image at the left microphone (and silence for the silent
head); the status reports the added latency."""
import time

import numpy as np
import pytest
from conftest import require
from stereobag import HEADS, render

from av_perception.core.config import MicArrayConfig
from av_perception.core.geometry import MicGeometry
from av_perception.io.audio_sources import write_wav
from av_perception.sim.signals import binauralize, noise_bursts

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
FS = 16000
LOOP = 8.0  # s, the WAV (played in a loop)


def _si_sdr(est, ref):
    a = np.dot(est, ref) / np.dot(ref, ref)
    e = est - a * ref
    return 10 * np.log10(np.dot(a * ref, a * ref) / np.dot(e, e))


def test_live_voice_topics_carry_the_talkers_image(node_harness, tmp_path):
    try:
        from audio_common_msgs.msg import AudioStamped
    except ImportError:
        AudioStamped = None
    require(AudioStamped is not None, "audio_common_msgs (make msgs)")
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from test_visual_node import publish_stereo_pair

    from av_perception.nodes.conversions import cloud_to_features, cloud_to_tracks, time_to_sec
    from av_perception.nodes.perception_node import PerceptionNode

    left, right = render(HEADS, seed=2)
    itd = float(MicGeometry.from_config(MicArrayConfig()).itd(HEADS[:1])[0])
    talker = binauralize(noise_bursts(FS, LOOP, on=1.0, off=0.2, seed=4), itd, FS)
    wav = tmp_path / "talker.wav"
    write_wav(wav, talker, FS)
    overrides = {"capture.input_file": str(wav), "capture.loop_input": True,
                 "voice_output.publish_audio": True, "output.diagnostics_period": 0.5}
    node = PerceptionNode(parameter_overrides=[Parameter(k, value=v)
                                               for k, v in overrides.items()])
    h = node_harness(node, "perception_voices_test")
    features = h.listen(PointCloud2, "audio/features", 1000)
    speakers = h.listen(PointCloud2, "speakers")
    voices: dict = {}  # topic -> [AudioStamped]
    pub_img = [h.publisher(Image, f"stereo/{s}/image_raw", 10) for s in ("left", "right")]
    pub_info = [h.publisher(CameraInfo, f"stereo/{s}/camera_info", 10)
                for s in ("left", "right")]
    assert h.wait_for_subscribers(pub_img[1])

    def subscribe_new_voices():
        for name, types in h.peer.get_topic_names_and_types():
            if (name.startswith("/humans/voices/") and name.endswith("/audio")
                    and name not in voices):
                assert types == ["audio_common_msgs/msg/AudioStamped"]
                voices[name] = h.listen(AudioStamped, name, 1000)

    def enough():  # 4 s of the talker's voice received
        return any(sum(len(m.audio.audio_data.float32_data) for m in got) > 4 * FS
                   for got in voices.values())

    end = time.monotonic() + 180.0
    next_pub = 0.0
    while time.monotonic() < end and not enough():
        if time.monotonic() >= next_pub:
            stamp = node.get_clock().now().nanoseconds * 1e-9
            publish_stereo_pair(pub_info, pub_img, left, right, stamp)
            next_pub = time.monotonic() + 1 / 15
            subscribe_new_voices()
        h.executor.spin_once(timeout_sec=0.005)
    h.executor.spin_once(timeout_sec=0.2)
    assert enough(), {k: len(v) for k, v in voices.items()}
    # the voice ids are the tracks'
    tracks = cloud_to_tracks(speakers[-1])
    ids = {int(t) for t in tracks["ids"]}
    assert len(ids) == 2
    assert {int(k.split("/")[3].removeprefix("voice")) for k in voices} <= ids | {
        int(t) for m in speakers for t in cloud_to_tracks(m)["ids"]}
    left_id = int(tracks["ids"][np.argmin(tracks["position"][:, 0])])
    right_id = int(tracks["ids"][np.argmax(tracks["position"][:, 0])])
    # the audio clock: the first frame's first sample is the WAV's sample 0
    frame_stamps = np.concatenate([cloud_to_features(c)["stamp"] for c in features])
    start = frame_stamps.min() - (512 - 1) / 2 / FS
    t_voice = f"/humans/voices/voice{left_id}/audio"
    msgs = voices[t_voice]
    info = msgs[0].audio.info
    assert (info.format, info.channels, info.rate) == (1, 1, FS)
    assert all(m.header.frame_id == "stereo_left_optical_frame" for m in msgs)
    est, ref = [], []
    stamps = [time_to_sec(m.header.stamp) for m in msgs]
    assert stamps == sorted(stamps)
    for m, t in zip(msgs, stamps):
        x = np.asarray(m.audio.audio_data.float32_data, dtype=float)
        assert len(x) == m.audio.info.chunk and np.all(np.isfinite(x))
        a = int(round((t - start) * FS))  # the sample of the WAV (looped)
        assert abs((t - start) * FS - a) < 0.01  # a stamp is a sample's time
        idx = (a + np.arange(len(x))) % len(talker)
        est.append(x)
        ref.append(talker[idx, 0])
    est, ref = np.concatenate(est), np.concatenate(ref)
    # from 1 s on (the tracks confirmed, the silent one gated out), the talker's voice is
    # its image at the left microphone (one talker: the mixture; measured 80-84 dB per
    # 0.5 s), sample for sample (measured: one sample off -39 dB)
    later = slice(FS, None)
    assert len(est[later]) > 2 * FS
    assert _si_sdr(est[later], ref[later]) > 20.0
    assert _si_sdr(est[later][1:], ref[later][:-1]) < 0.0
    # the silent head's voice is silent (voices.speaking_gate)
    quiet = voices.get(f"/humans/voices/voice{right_id}/audio", [])
    q = np.concatenate([np.asarray(m.audio.audio_data.float32_data) for m in quiet]
                       or [np.zeros(1)])
    assert np.sqrt(np.mean(q ** 2)) < 0.05 * np.sqrt(np.mean(est[later] ** 2))
    # one status: the topics, the chunks, the added latency and its bound (80 ms: the
    # live voices' 48 ms hop plus a 32 ms frame)
    h.spin_until(lambda: any(float(kv.value) > 0 for s in h.statuses("voices")
                             for kv in s.values if kv.key == "chunks_published"), 10.0)
    vals = [{kv.key: kv.value for kv in s.values} for s in h.statuses("voices")]
    busy = [v for v in vals if v["added_latency_p50_ms"] != "nan"]
    assert busy, vals
    assert float(busy[-1]["latency_bound_ms"]) == pytest.approx(80.0)
    assert int(busy[-1]["voice_topics"]) >= 1 and int(busy[-1]["restarts"]) == 0
    # an ordering, not a time bound: a chunk's audio arrives after its first sample sounds,
    # so what the stage adds is positive and never more than the latency from the sound
    assert 0 < float(busy[-1]["added_latency_p50_ms"]) <= float(busy[-1]["latency_p50_ms"])


def test_without_audio_stamped_the_voices_say_why_and_a_long_hop_is_refused(
        node_harness, tmp_path, monkeypatch):
    import sys

    from rclpy.parameter import Parameter

    from av_perception.nodes.perception_node import PerceptionNode

    monkeypatch.setitem(sys.modules, "audio_common_msgs.msg", None)  # not installed
    wav = tmp_path / "quiet.wav"
    write_wav(wav, np.zeros((FS, 2)), FS)
    node = PerceptionNode(parameter_overrides=[
        Parameter("capture.input_file", value=str(wav)),
        Parameter("voice_output.publish_audio", value=True)])
    node_harness(node, "perception_voices_missing")
    stage = node.voice_stage
    assert "audio_common_msgs" in stage.problem and "make msgs" in stage.problem
    assert stage.diag.conditions["audio_common_msgs"][0] == 1  # a lasting WARN
    assert stage._publish([], []) == 0
    # a hop longer than the clustering window is refused, naming both parameters
    result = node.set_parameters([Parameter("voice_output.hop", value=0.5)])[0]
    assert not result.successful
    assert "voice_output.hop" in result.reason and "voice_output.window" in result.reason
    # a live window shorter than a clustering window can be, named
    result = node.set_parameters([Parameter("voice_output.window", value=0.05)])[0]
    assert not result.successful and "voice_output.window" in result.reason
    # with voice_output.window 0 the live window is voices.window: the hop is checked
    # against it
    window0, hop = node.set_parameters([Parameter("voice_output.window", value=0.0),
                                        Parameter("voice_output.hop", value=0.5)])
    assert window0.successful
    assert not hop.successful and "'voices.window' = 0.4" in hop.reason
