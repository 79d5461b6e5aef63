"""Publication latency of perception_node at real-time rates (input stamp -> ``speakers``).

Runs :class:`~av_perception.nodes.perception_node.PerceptionNode` in this process with
a WAV file played in real time (``capture.input_file``: a talker at the left head's
ITD) and a stereo image stream published like a camera driver: 640x480 bgr8
``sensor_msgs/Image`` pairs of two rendered faces (test/stereobag.py) plus CameraInfo,
stamped with the current time, at 15 fps for ``--seconds`` s.  A subscriber in the
same process records, for every ``speakers`` message, now - header stamp (the stamp
is the image's, so this is image capture -> speakers received: image transport,
pairing, the visual front-end, the wait for the audio up to the stamp, the tracker,
the publication and the delivery); the node's own stamp -> publication latency (what
tracker_node reports on /diagnostics) is tabled too.  Runs twice: with the live default
``detection.asynchronous`` (detectors on a worker thread) and detecting in the frame (the
baseline).  With ``--tf`` the two runs are instead: asynchronous detection without /tf, and
with a turning head: ``tracking.fixed_frame base_link`` and /tf (``base_link -> head``,
100 Hz, pan 40 deg sin(1.5 t): +-40 deg at up to 60 deg/s; /tf_static ``head ->
cam_left``) published by the same camera process, and the images turn with the head: each
pair shows the two faces where the pan at its stamp puts them (pre-rendered every degree
of pan), so they slide across the image and leave and re-enter the view as with a real
head (``--glued-images``: the same image whatever the pan, as this benchmark did before
2026-12-07, sixth session -- faces that turn with the head, which the detector's
box tracking, turned by the pose, loses).  With
``--voices`` the two runs are: live voices off, and on (``voice_output.publish_audio``,
``voice_output.hop`` and ``voice_output.window``, the node's defaults unless
``--voice-hop`` / ``--voice-window``): the voice topics' latency is tabled -- received:
now minus the stamp of a chunk's first sample (the sound of its oldest sample to its
delivery); added: the node's publication minus the arrival of the audio chunk that held
that sample (what the voices add to the audio input) --, and the process's CPU time per
second of both runs.  Prints markdown tables.

CPU: the process's CPU time per second of the measured run (``time.process_time``: every
thread of the node and of the benchmark's publishers), and the node's share: that minus
the CPU time of the benchmark's own publishing calls (building and publishing the images,
camera infos and /tf on the main thread, ``time.thread_time`` around them).

Run: ``.venv/bin/python bench/bench_latency.py [--seconds 10] [--fps 15] [--tf | --voices]``
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))


def _tf_message(stamp: float, parent: str, child: str, pan: float):
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    from av_perception.core.poses import quat_from_matrix
    from av_perception.nodes.conversions import sec_to_time

    q = quat_from_matrix(pan_rotation(pan))
    t = TransformStamped(child_frame_id=child)
    t.header.frame_id = parent
    t.header.stamp = sec_to_time(stamp)
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return TFMessage(transforms=[t])


#: pan of the --tf head: amplitude (rad) and angular frequency (rad/s): +-40 deg, <= 60 deg/s
PAN_AMPLITUDE = np.radians(40.0)
PAN_RATE = 1.5


def pan_rotation(pan: float) -> np.ndarray:
    """Rotation (3, 3) base_link -> head of a pan by ``pan`` rad (about the optical y axis,
    the camera frame = the head frame at pan 0)."""
    c, s = np.cos(pan), np.sin(pan)
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def turned_pairs(heads: np.ndarray, seed: int = 2, step_deg: int = 1) -> dict:
    """Stereo pairs of ``heads`` (fixed in base_link, m) seen by the head panned by every
    ``step_deg`` degrees over the --tf pan: {degrees: (left, right)}."""
    from stereobag import render

    top = int(np.ceil(np.degrees(PAN_AMPLITUDE)))
    return {deg: render(heads @ pan_rotation(np.radians(deg)), seed=seed)
            for deg in range(-top, top + 1, step_deg)}


def measure(seconds: float, fps: float, asynchronous: bool, wav: Path, left, right,
            audio_wait: float = 0.0, tf: bool = False, voices: bool = False,
            voice_hop: float | None = None, turned: dict | None = None,
            voice_window: float | None = None):
    """One run of perception_node; returns (latencies ms, stats, pairs sent, tracks).

    ``turned`` ({degrees of pan: (left, right)}, with ``tf``): the pair published at a
    stamp is the one of the pan at that stamp (rounded to the nearest key); None: always
    ``left``, ``right``."""
    import rclpy
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from test_visual_node import publish_stereo_pair

    from av_perception.nodes.conversions import cloud_to_tracks, time_to_sec
    from av_perception.nodes.perception_node import PerceptionNode

    node = PerceptionNode(parameter_overrides=[
        Parameter("capture.input_file", value=str(wav)),
        Parameter("detection.asynchronous", value=asynchronous),
        Parameter("tracking.audio_wait", value=audio_wait),
        *([Parameter("tracking.fixed_frame", value="base_link")] if tf else []),
        *([Parameter("voice_output.publish_audio", value=True)] if voices else []),
        *([Parameter("voice_output.hop", value=voice_hop)]
          if voices and voice_hop is not None else []),
        *([Parameter("voice_output.window", value=voice_window)]
          if voices and voice_window is not None else [])])
    io = rclpy.create_node("bench_latency_io")
    lat, tracks, pub_lat = [], [], []
    publish = node.outputs.publish

    def publish_timed(output, header):  # the node's own stamp -> publication latency
        latency = publish(output, header)
        pub_lat.append(latency)
        return latency

    node.outputs.publish = publish_timed

    def on_speakers(msg):
        now = io.get_clock().now().nanoseconds * 1e-9
        lat.append(now - time_to_sec(msg.header.stamp))
        tracks.append(len(cloud_to_tracks(msg)["ids"]))

    io.create_subscription(PointCloud2, "speakers", on_speakers, 100)
    voice_lat, added, sound, voice_topics = [], [], [], set()
    if voices:
        from audio_common_msgs.msg import AudioStamped

        live = node.voice_stage.live
        pop = live.pop_latencies

        def pop_kept():  # the status pops the latencies every period: keep them
            s, a = pop()
            sound.extend(s)
            added.extend(a)
            return s, a

        live.pop_latencies = pop_kept

        def on_voice(msg):
            now = io.get_clock().now().nanoseconds * 1e-9
            voice_lat.append(now - time_to_sec(msg.header.stamp))

        def subscribe_voices():
            for name, _ in io.get_topic_names_and_types():
                if name.startswith("/humans/voices/") and name.endswith("/audio") \
                        and name not in voice_topics:
                    voice_topics.add(name)
                    io.create_subscription(AudioStamped, name, on_voice, 1000)
    pub_img = [io.create_publisher(Image, f"stereo/{s}/image_raw", 10) for s in ("left", "right")]
    pub_info = [io.create_publisher(CameraInfo, f"stereo/{s}/camera_info", 10)
                for s in ("left", "right")]
    pub_tf = None
    if tf:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from tf2_msgs.msg import TFMessage

        pub_tf = io.create_publisher(TFMessage, "/tf", 100)
        io.create_publisher(TFMessage, "/tf_static", QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL)).publish(
            _tf_message(0.0, "head", "cam_left", 0.0))
    ex = rclpy.executors.SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(io)
    sent = 0
    t_start = node.get_clock().now().nanoseconds * 1e-9
    cpu0 = wall0 = None
    bench_cpu = [0.0]  # the benchmark's own publishing (main thread)
    keys = np.array(sorted(turned)) if turned else None
    next_tf = time.monotonic()
    try:
        end = time.monotonic() + 5
        while time.monotonic() < end and pub_img[1].get_subscription_count() == 0:
            ex.spin_once(timeout_sec=0.01)
        warm = time.monotonic() + 1.0  # first second: tracks being born, not measured
        end = warm + seconds
        next_pub = time.monotonic()
        while time.monotonic() < end:
            if pub_tf is not None and time.monotonic() >= next_tf:
                c0 = time.thread_time()
                stamp = node.get_clock().now().nanoseconds * 1e-9
                pub_tf.publish(_tf_message(stamp, "base_link", "head", PAN_AMPLITUDE
                                           * np.sin(PAN_RATE * (stamp - t_start))))
                next_tf += 0.01
                bench_cpu[0] += time.thread_time() - c0
            if time.monotonic() >= next_pub:
                c0 = time.thread_time()
                stamp = node.get_clock().now().nanoseconds * 1e-9
                pair = (left, right)
                if keys is not None:  # the faces where the head's pan at the stamp puts them
                    deg = np.degrees(PAN_AMPLITUDE * np.sin(PAN_RATE * (stamp - t_start)))
                    pair = turned[int(keys[np.argmin(np.abs(keys - deg))])]
                publish_stereo_pair(pub_info, pub_img, *pair, stamp)
                bench_cpu[0] += time.thread_time() - c0
                sent += 1
                next_pub += 1.0 / fps
                if voices and sent % 8 == 0:
                    subscribe_voices()
                if time.monotonic() < warm:
                    lat.clear()
                    tracks.clear()
                    pub_lat.clear()
                    voice_lat.clear()
                    added.clear()
                    sound.clear()
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    bench_cpu[0] = 0.0
            ex.spin_once(timeout_sec=0.002)
        wall = time.monotonic() - wall0
        cpu = (time.process_time() - cpu0) / wall
        node_cpu = cpu - bench_cpu[0] / wall
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.01)
        if voices:
            live.pop_latencies()
        vision = node.vision_stage.pipeline
        tp = node.tracking_pipeline
        stats = {
            "vision_ms": 1000 * vision.mean_processing_time,
            "tracker_ms": 1000 * tp.processing_time / max(tp.steps, 1),
            "fusion_ms": 1000 * node.fusion_pipeline.processing_time
            / max(node.fusion_pipeline.windows, 1),
            "dropped": node.vision_stage.pairs_dropped_busy,
            "waits": node.audio_waits,
            "timeouts": node.audio_wait_timeouts,
            "publication_ms": 1000 * np.asarray(pub_lat),
            "frame": tp.output_frame or "camera",
            "turn_keyframes": getattr(vision.front_end.detector, "stats", {}).get(
                "turn_keyframes", 0),
            "turn_strips": getattr(vision.front_end.detector, "stats", {}).get(
                "turn_strips", 0),
            "cpu_s_per_s": cpu,
            "node_cpu_s_per_s": node_cpu,
            "detections": getattr(vision.front_end.detector, "detections_run",
                                  vision.front_end.detector.stats.get("keyframes", 0)),
            "voice_received_ms": 1000 * np.asarray(voice_lat),
            "voice_added_ms": 1000 * np.asarray(added),
            "voice_published_ms": 1000 * np.asarray(sound),
            "voice_topics": len(voice_topics),
            "voice_bound_ms": 1000 * live.latency_bound if voices else float("nan"),
        }
    finally:
        ex.shutdown()
        node.destroy_node()
        io.destroy_node()
    return 1000 * np.asarray(lat), stats, sent, tracks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--audio-wait", type=float, default=0.0,
                    help="tracking.audio_wait (s) of both runs (default: the default, 0)")
    ap.add_argument("--tf", action="store_true",
                    help="compare a still camera with a turning head (/tf, fixed frame)")
    ap.add_argument("--glued-images", action="store_true",
                    help="with --tf: publish the same images whatever the pan (faces that "
                         "turn with the head; the benchmark before 2026-12-07, sixth session)")
    ap.add_argument("--voices", action="store_true",
                    help="compare live voices off and on (voice_output.publish_audio)")
    ap.add_argument("--voice-hop", type=float, default=None,
                    help="voice_output.hop (s) of the --voices run (default: the node's)")
    ap.add_argument("--voice-window", type=float, default=None,
                    help="voice_output.window (s) of the --voices run (default: the node's; "
                         "0: voices.window)")
    args = ap.parse_args(argv)

    import rclpy
    from stereobag import HEADS, render

    from av_perception.core.config import MicArrayConfig
    from av_perception.core.geometry import MicGeometry
    from av_perception.io.audio_sources import write_wav
    from av_perception.sim.signals import binauralize, noise_bursts

    fs = 16000
    itd = float(MicGeometry.from_config(MicArrayConfig()).itd(HEADS[:1])[0])
    tmp = Path(tempfile.mkdtemp(prefix="bench_latency_"))
    wav = tmp / "talker.wav"
    write_wav(wav, binauralize(noise_bursts(fs, args.seconds + 5, on=1.0, off=0.2, seed=4),
                               itd, fs), fs)
    left, right = render(HEADS, seed=2)
    turned = turned_pairs(HEADS) if args.tf and not args.glued_images else None
    rclpy.init()
    runs = {}
    try:
        modes = ((("no /tf (camera frame)", True, False, False),
                  ("/tf: pan +-40 deg, 60 deg/s (base_link"
                   + (", glued images)" if args.glued_images else ", images turn)"),
                   True, True, False)) if args.tf
                 else (("voices off", True, False, False),
                       ("voices on (" + ", ".join(
                           f"{k} {v:g} s" for k, v in (("hop", args.voice_hop),
                                                       ("window", args.voice_window))
                           if v is not None) + ")" if args.voice_hop is not None
                        or args.voice_window is not None else "voices on (node defaults)",
                        True, False, True))
                 if args.voices else
                 (("asynchronous detection (default)", True, False, False),
                  ("detection in the frame (baseline)", False, False, False)))
        for mode, asynchronous, tf, voices in modes:
            runs[mode] = measure(args.seconds, args.fps, asynchronous, wav, left, right,
                                 args.audio_wait, tf, voices, args.voice_hop,
                                 turned if tf else None, args.voice_window)
    finally:
        rclpy.try_shutdown()

    print(f"perception_node, {args.seconds:g} s at {args.fps:g} fps per mode (640x480 bgr8 "
          f"Image pairs, WAV played in real time), tracking.audio_wait {args.audio_wait:g} s")
    print()
    print("| detection | speakers msgs / pairs | p50 (ms) | p90 | p99 | max | mean |")
    print("|---|---|---:|---:|---:|---:|---:|")
    p99 = {}
    for mode, (lat_ms, _, sent, _) in runs.items():
        if not len(lat_ms):
            print(f"| {mode} | no speakers message received | | | | | |")
            continue
        p = np.percentile(lat_ms, [50, 90, 99])
        p99[mode] = p[2]
        print(f"| {mode} | {len(lat_ms)} / {sent} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | "
              f"{lat_ms.max():.1f} | {lat_ms.mean():.1f} |")
    if len(p99) == 2:
        a, b = p99.values()
        ratio = ("/tf / no /tf" if args.tf else "on / off" if args.voices
                 else "baseline / asynchronous")
        print(f"\np99 {ratio}: {b / a:.2f}x")
    print()
    print("Publication latency (image stamp -> the node's publish call of `speakers`, "
          "measured in the node; the table above adds the delivery to a subscriber on the "
          "same executor as the camera publisher):")
    print()
    print("| detection | messages | p50 (ms) | p90 | p99 | max | mean |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mode, (_, stats, _, _) in runs.items():
        pub = stats["publication_ms"]
        if not len(pub):
            continue
        p = np.percentile(pub, [50, 90, 99])
        print(f"| {mode} | {len(pub)} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | "
              f"{pub.max():.1f} | {pub.mean():.1f} |")
    print()
    print("| detection | visual front-end ms/pair | tracker ms/step | fusion ms/window | "
          "pairs dropped (busy) | steps that waited for audio | waits timed out | "
          "tracks (median) | tracking frame | detections | turn keyframes | turn strips |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for mode, (_, stats, _, tracks) in runs.items():
        print(f"| {mode} | {stats['vision_ms']:.1f} | {stats['tracker_ms']:.2f} | "
              f"{stats['fusion_ms']:.2f} | {stats['dropped']} | {stats['waits']} | "
              f"{stats['timeouts']} | {int(np.median(tracks)) if tracks else 0} | "
              f"{stats['frame']} | {stats['detections']} | {stats['turn_keyframes']} | "
              f"{stats['turn_strips']} |")
    print()
    print("| run | process CPU s per s | node CPU s per s (without the benchmark's "
          "publishing) |")
    print("|---|---:|---:|")
    for mode, (_, stats, _, _) in runs.items():
        print(f"| {mode} | {stats['cpu_s_per_s']:.3f} | {stats['node_cpu_s_per_s']:.3f} |")
    if args.voices:
        print()
        print("Voice chunks (`/humans/voices/<id>/audio`): received = delivery time - stamp "
              "of the chunk's first sample; published = publication - that stamp; added = "
              "publication - arrival of the audio chunk holding that sample at the audio "
              "stage (ms); bound = one hop + one frame:")
        print()
        print("| run | topics | chunks | latency | p50 (ms) | p90 | p99 | max | bound |")
        print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
        for mode, (_, stats, _, _) in runs.items():
            for what in ("received", "published", "added"):
                x = stats[f"voice_{what}_ms"]
                if not len(x):
                    continue
                p = np.percentile(x, [50, 90, 99])
                print(f"| {mode} | {stats['voice_topics']} | {len(x)} | {what} | {p[0]:.1f} | "
                      f"{p[1]:.1f} | {p[2]:.1f} | {x.max():.1f} | "
                      f"{stats['voice_bound_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
