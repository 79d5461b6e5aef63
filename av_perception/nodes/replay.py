"""``av-perception replay BAG``: play a recording into ROS and run the pipeline live.

A ``replay`` node publishes the bag's stereo pair, camera_info, ``/clock`` and the
binaural front-end's ``audio/features`` (audio_common types cannot be published from
pip-installed ROS) at the bag's pace; unless ``--no-pipeline``, a VisualFeaturesNode and a
TrackerNode run in the same executor with ``use_sim_time``.  ``--loop`` adds the bag's
length to every stamp of each pass.  Topics and options: docs/commands.md ("replay").
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from ..core.config import AudioFrontEndConfig, MicArrayConfig
from ..io.bag import BagReader
from ..io.stamps import ns_to_stamp, stamp_to_ns
from ..io.stereo_sources import detect_stereo_topics

__all__ = ["ReplayOptions", "replay"]

SIDES = ("left", "right")
#: audio frames per ``audio/features`` message (about 64 ms at the default hop)
FRAMES_PER_MESSAGE = 4
CLOCK_PERIOD = 0.01  # s of wall time between /clock messages


@dataclass
class ReplayOptions:
    bag: str
    rate: float = 1.0
    loop: bool = False
    namespace: str = ""
    config: str | None = None
    pipeline: bool = True
    delay: float = 1.0  # s before the first message (discovery)
    linger: float = 2.0  # s after the last message before exiting (pipeline catches up)
    frame_id: str = ""  # audio/features frame id (default: the left camera's)
    fixed_frame: str = ""  # tracking.fixed_frame of the TrackerNode (default: its params)
    gaze: bool = False  # run gaze_controller_node: a simulated head turning to `attention`
    audio_topic: str | None = None
    left_topic: str | None = None
    right_topic: str | None = None
    left_info: str | None = None
    right_info: str | None = None


# --------------------------------------------------------------- conversions
def _time(ns: int):
    from builtin_interfaces.msg import Time

    sec, nanosec = ns_to_stamp(ns)
    return Time(sec=sec, nanosec=nanosec)


def _header(src, offset_ns: int):
    from std_msgs.msg import Header

    return Header(stamp=_time(stamp_to_ns(src) + offset_ns), frame_id=str(src.frame_id))


def to_ros_image(msg, offset_ns: int = 0):
    """rosbags sensor_msgs/Image or CompressedImage -> rclpy message (stamp + offset)."""
    from sensor_msgs.msg import CompressedImage, Image

    data = np.asarray(msg.data, dtype=np.uint8).tobytes()
    if hasattr(msg, "encoding"):
        out = Image(height=int(msg.height), width=int(msg.width), encoding=str(msg.encoding),
                    is_bigendian=int(msg.is_bigendian), step=int(msg.step))
    else:
        out = CompressedImage(format=str(msg.format))
    out.header = _header(msg.header, offset_ns)
    out.data = data
    return out


def to_ros_camera_info(msg, offset_ns: int = 0):
    """rosbags sensor_msgs/CameraInfo -> rclpy message (stamp + offset)."""
    from sensor_msgs.msg import CameraInfo, RegionOfInterest

    roi = msg.roi
    return CameraInfo(
        header=_header(msg.header, offset_ns), height=int(msg.height), width=int(msg.width),
        distortion_model=str(msg.distortion_model),
        d=[float(v) for v in msg.d], k=[float(v) for v in msg.k],
        r=[float(v) for v in msg.r], p=[float(v) for v in msg.p],
        binning_x=int(msg.binning_x), binning_y=int(msg.binning_y),
        roi=RegionOfInterest(x_offset=int(roi.x_offset), y_offset=int(roi.y_offset),
                             height=int(roi.height), width=int(roi.width),
                             do_rectify=bool(roi.do_rectify)))


# ------------------------------------------------------------------- replay
class _Pacer:
    """Bag time <-> wall time at ``rate``; the bag time of 'now' for /clock."""

    def __init__(self, rate: float):
        self.rate = rate
        self.bag0 = None
        self.wall0 = None
        self.lock = threading.Lock()

    def start(self, bag_ns: int):
        with self.lock:
            self.bag0, self.wall0 = bag_ns, time.monotonic()

    def wait_until(self, bag_ns: int, stop: threading.Event) -> bool:
        target = self.wall0 + (bag_ns - self.bag0) * 1e-9 / self.rate
        while True:
            left = target - time.monotonic()
            if left <= 0:
                return True
            if stop.wait(min(left, 0.05)):
                return False

    def now_ns(self) -> int | None:
        with self.lock:
            if self.bag0 is None:
                return None
            return self.bag0 + int((time.monotonic() - self.wall0) * self.rate * 1e9)


def _feature_batches(feats, half_frame_s: float):
    """(publish time ns, first, stop) per group of FRAMES_PER_MESSAGE frames: published when
    the last sample of the group's last frame has been recorded."""
    out = []
    for a in range(0, len(feats), FRAMES_PER_MESSAGE):
        b = min(a + FRAMES_PER_MESSAGE, len(feats))
        out.append((int(round((feats.stamp[b - 1] + half_frame_s) * 1e9)), a, b))
    return out


def replay(opts: ReplayOptions, log=print) -> int:
    """Run the replay (see the module docstring); returns the process exit code."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

    from ..io.params import load_offline_configs
    from ..offline import bag_audio_features
    from .conversions import features_to_cloud

    if not opts.rate > 0:
        raise ValueError(f"--rate must be > 0, got {opts.rate}")
    configs = load_offline_configs(opts.config, (AudioFrontEndConfig, MicArrayConfig))
    with BagReader(opts.bag) as reader:
        topics = detect_stereo_topics(reader.topics, opts.left_topic, opts.right_topic,
                                      opts.left_info, opts.right_info)
        types = reader.topics
        bag_start, bag_end = reader.start_time, reader.end_time
    compressed = types[topics.left_image].endswith("CompressedImage")
    errors: list = []
    log(f"replay: audio front-end over {opts.bag} ...")
    feats = bag_audio_features(opts.bag, configs, opts.audio_topic, None, None, errors)
    for e in errors:
        log(f"warning: {e}")
    audio_cfg = configs[AudioFrontEndConfig]
    batches = _feature_batches(feats, 0.5 * audio_cfg.frame_length / audio_cfg.processing_rate)

    # Ctrl-C raises KeyboardInterrupt here (not rclpy's handler, which would invalidate
    # the context while the nodes' worker threads still publish); the finally block
    # stops the threads, then the nodes, then rclpy
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    nodes = []
    executor = None
    threads: list = []
    stop = threading.Event()
    try:
        ns = opts.namespace.strip("/")
        node = Node("replay", namespace="/" + ns if ns else "")
        nodes.append(node)
        suffix = "/compressed" if compressed else ""
        img_type = CompressedImage if compressed else Image
        pub_img = {topics.left_image: node.create_publisher(
                       img_type, "stereo/left/image_raw" + suffix, 10),
                   topics.right_image: node.create_publisher(
                       img_type, "stereo/right/image_raw" + suffix, 10)}
        pub_info = {topics.left_info: node.create_publisher(CameraInfo,
                                                            "stereo/left/camera_info", 10),
                    topics.right_info: node.create_publisher(CameraInfo,
                                                             "stereo/right/camera_info", 10)}
        pub_feats = node.create_publisher(PointCloud2, "audio/features", 50)
        pub_tf = _tf_publishers(node, types, log)  # the head's motion, when recorded
        pub_clock = node.create_publisher(Clock, "/clock", 10)
        if opts.pipeline:
            from .tracker_node import TrackerNode
            from .visual_features_node import VisualFeaturesNode

            cli = ["--ros-args", "--params-file", str(opts.config)] if opts.config else None
            common = [Parameter("use_sim_time", value=True)]
            kwargs = {"namespace": "/" + ns if ns else "", "cli_args": cli}
            fixed, vfixed = [], []
            if opts.fixed_frame:  # the tracker in it, the detector follows the head
                fixed = [Parameter("tracking.fixed_frame", value=opts.fixed_frame),
                         Parameter("tracking.publish_camera_frame", value=True)]
                vfixed = [Parameter("vision_input.fixed_frame", value=opts.fixed_frame),
                          Parameter("vision_input.tracks_topic", value="speakers_camera")]
            nodes.append(VisualFeaturesNode(parameter_overrides=common + vfixed + [
                Parameter("vision_input.compressed", value=compressed)], **kwargs))
            nodes.append(TrackerNode(parameter_overrides=common + fixed + [
                Parameter("tracker_input.compressed", value=compressed)], **kwargs))
            if opts.gaze:
                nodes.extend(_gaze_node(common, kwargs, opts, log))
        executor = SingleThreadedExecutor()
        for n in nodes:
            executor.add_node(n)
        spinner = threading.Thread(target=executor.spin, name="replay_executor", daemon=True)
        spinner.start()
        threads.append(spinner)

        pacer = _Pacer(opts.rate)

        def clock_loop():
            while not stop.wait(CLOCK_PERIOD):
                t = pacer.now_ns()
                if t is None:
                    continue
                try:
                    pub_clock.publish(Clock(clock=_time(t)))
                except Exception:  # noqa: BLE001 - context shut down (Ctrl-C): stop
                    return

        clock_thread = threading.Thread(target=clock_loop, name="replay_clock", daemon=True)
        clock_thread.start()
        threads.append(clock_thread)
        log(f"replay: {'CompressedImage' if compressed else 'Image'} pair "
            f"{topics.left_image} + {topics.right_image}, {len(feats)} audio frames, rate "
            f"{opts.rate}x{', loop' if opts.loop else ''}"
            f"{'' if opts.pipeline else ', no pipeline (start the nodes separately)'}")
        if stop.wait(opts.delay):
            return 0
        frame_id = opts.frame_id
        period = (bag_end - bag_start) + 1
        wanted = [topics.left_image, topics.right_image, topics.left_info, topics.right_info,
                  *pub_tf]
        offset = 0
        frame_ns = None
        passes = 0
        pacer.start(bag_start)

        def publish_features(a: int, b: int):
            part = feats.slice(a, b)
            part.stamp = part.stamp + offset * 1e-9
            pub_feats.publish(features_to_cloud(frame_id, part))

        while True:
            last_image_ns = None
            k = 0  # next audio batch
            with BagReader(opts.bag) as reader:
                for m in reader.messages(wanted):
                    t = m.log_time
                    while k < len(batches) and batches[k][0] <= t:
                        if not pacer.wait_until(batches[k][0] + offset, stop):
                            return 0
                        publish_features(*batches[k][1:])
                        k += 1
                    if not pacer.wait_until(t + offset, stop):
                        return 0
                    if m.topic in pub_img:
                        if not frame_id:
                            frame_id = str(m.msg.header.frame_id)
                        pub_img[m.topic].publish(to_ros_image(m.msg, offset))
                        s = stamp_to_ns(m.msg.header)
                        if m.topic == topics.left_image:
                            if last_image_ns is not None and frame_ns is None:
                                frame_ns = s - last_image_ns
                            last_image_ns = s
                    elif m.topic in pub_tf:
                        pub_tf[m.topic].publish(_tf_to_ros(m.msg, offset))
                    else:
                        pub_info[m.topic].publish(to_ros_camera_info(m.msg, offset))
                errors = reader.errors
            for a_batch in batches[k:]:
                if not pacer.wait_until(a_batch[0] + offset, stop):
                    return 0
                publish_features(*a_batch[1:])
            for e in errors:
                log(f"warning: {e}")
            passes += 1
            if not opts.loop:
                break
            offset += period + (frame_ns or 0)
            log(f"replay: pass {passes} done, looping")
        log(f"replay: {passes} pass(es) done; finishing ({opts.linger} s)")
        stop.wait(opts.linger)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        stop.set()
        if threads:
            threads[-1].join(timeout=1.0)  # the /clock thread: no publishing after this
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
        for t in threads[:1]:
            t.join(timeout=2.0)
        for n in nodes:
            try:
                n.destroy_node()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        rclpy.try_shutdown()


def _gaze_node(common: list, kwargs: dict, opts: ReplayOptions, log) -> list:
    """[gaze_controller_node] turning towards ``attention`` (the attention's axes: ROS
    body axes in --fixed-frame, else the camera's optical axes); [] without tf2_msgs."""
    from rclpy.parameter import Parameter

    try:
        from .gaze_controller_node import GazeNode

        axes = "ros" if opts.fixed_frame else "optical"
        return [GazeNode(parameter_overrides=common + [
            Parameter("gaze.target_axes", value=axes)], **kwargs)]
    except ImportError as exc:
        log(f"warning: --gaze needs tf2_msgs (ros-<distro>-tf2-msgs, or 'make msgs'): {exc}; "
            "no simulated head")
        return []


def _tf_publishers(node, types: dict, log) -> dict:
    """{bag topic: publisher} of /tf and /tf_static for the bag's TFMessage topics (the
    static one transient local, as tf2 does); empty without them or without tf2_msgs."""
    tf_topics = [t for t, ty in types.items() if ty == "tf2_msgs/msg/TFMessage"]
    if not tf_topics:
        return {}
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError:
        log(f"warning: the bag has {', '.join(tf_topics)} but tf2_msgs is not installed "
            "(ros-<distro>-tf2-msgs, or 'make msgs'): the head's motion is not replayed")
        return {}
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    static_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
    out = {}
    for t in tf_topics:
        static = t.rstrip("/").endswith("tf_static")
        out[t] = node.create_publisher(TFMessage, "/tf_static" if static else "/tf",
                                       static_qos if static else 100)
    return out


def _tf_to_ros(msg, offset_ns: int):
    """A rosbags TFMessage as an rclpy one, stamps moved by ``offset_ns``."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    out = []
    for tf in msg.transforms:
        r = TransformStamped(child_frame_id=str(tf.child_frame_id))
        r.header.frame_id = str(tf.header.frame_id)
        r.header.stamp = _time(stamp_to_ns(tf.header) + offset_ns)
        tr, q = tf.transform.translation, tf.transform.rotation
        r.transform.translation.x, r.transform.translation.y = float(tr.x), float(tr.y)
        r.transform.translation.z = float(tr.z)
        r.transform.rotation.x, r.transform.rotation.y = float(q.x), float(q.y)
        r.transform.rotation.z, r.transform.rotation.w = float(q.z), float(q.w)
        out.append(r)
    return TFMessage(transforms=out)
