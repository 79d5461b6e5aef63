"""tracker_node with tracking.fixed_frame: /tf and /tf_static in, the speakers in the
fixed frame (and the camera frame on speakers_camera), problems on /diagnostics."""
import math

import numpy as np
import pytest
from test_tracker_node import FPS, PEOPLE, obs_cloud

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


def _tf_msg(stamp, parent, child, yaw):
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    from av_perception.nodes.conversions import sec_to_time

    t = TransformStamped(child_frame_id=child)
    t.header.frame_id = parent
    t.header.stamp = sec_to_time(stamp)
    t.transform.rotation.z = math.sin(yaw / 2)
    t.transform.rotation.w = math.cos(yaw / 2)
    return TFMessage(transforms=[t])


def _node(overrides):
    from rclpy.parameter import Parameter

    from av_perception.nodes.tracker_node import TrackerNode

    return TrackerNode(parameter_overrides=[Parameter(k, value=v)
                                            for k, v in overrides.items()])


def test_without_tf2_msgs_the_node_says_so_and_tracks_in_the_camera_frame(node_harness,
                                                                         monkeypatch):
    import builtins

    from sensor_msgs.msg import PointCloud2

    from av_perception.nodes.conversions import cloud_to_tracks

    real_import = builtins.__import__

    def no_tf2(name, *a, **k):
        if name.startswith("tf2_msgs"):
            raise ImportError("no tf2_msgs")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tf2)
    node = _node({"tracking.fixed_frame": "base_link", "tracking.publish_image": False})
    h = node_harness(node, "tracker_tf_missing")
    got = h.listen(PointCloud2, "speakers")
    pub_obs = h.publisher(PointCloud2, "visual/observations")
    assert h.wait_for_subscribers(pub_obs)
    for k in range(20):
        pub_obs.publish(obs_cloud(100.0 + k / FPS, PEOPLE[:1]))
        assert h.spin_until(lambda k=k: len(got) == k + 1)
    assert cloud_to_tracks(got[-1])["frame_id"] == "cam_left"
    node.stage.publish_diagnostics()
    assert h.spin_until(lambda: any("tf2_msgs is not installed" in s.message
                                    for d in h.diags for s in d.status))


def test_node_tracks_in_the_fixed_frame_from_tf(node_harness):
    pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs (make msgs)")
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2
    from tf2_msgs.msg import TFMessage

    from av_perception.nodes.conversions import cloud_to_tracks

    node = _node({"tracking.fixed_frame": "base_link", "tracking.publish_image": False,
                  "tracking.publish_camera_frame": True})
    h = node_harness(node, "tracker_tf_io")
    got = h.listen(PointCloud2, "speakers")
    cam = h.listen(PointCloud2, "speakers_camera")
    pub_obs = h.publisher(PointCloud2, "visual/observations")
    pub_tf = h.publisher(TFMessage, "/tf", 100)
    static_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub_static = h.peer.create_publisher(TFMessage, "/tf_static", static_qos)
    assert h.wait_for_subscribers(pub_obs, pub_tf)
    pub_static.publish(_tf_msg(0.0, "head", "cam_left", 0.0))
    t0 = 100.0
    for k in range(40):
        stamp = t0 + k / FPS
        yaw = 0.5 * math.sin(stamp - t0)  # the head turns about the camera's z here
        for j in range(3):
            s = stamp - 0.04 + 0.02 * j
            pub_tf.publish(_tf_msg(s, "base_link", "head", 0.5 * math.sin(s - t0)))
        c, s_ = math.cos(yaw), math.sin(yaw)
        R = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1.0]])
        seen = PEOPLE[:1] @ R  # R^T p: the still person in the turned camera
        h.spin_until(lambda: False, timeout=0.02)
        pub_obs.publish(obs_cloud(stamp, seen))
        assert h.spin_until(lambda k=k: len(got) == k + 1)
    last = cloud_to_tracks(got[-1])
    assert last["frame_id"] == "base_link"
    assert np.linalg.norm(last["position"][0] - PEOPLE[0]) < 0.05
    assert h.spin_until(lambda: len(cam) >= 1)
    c_last = cloud_to_tracks(cam[-1])
    assert c_last["frame_id"] == "cam_left"
    assert np.linalg.norm(c_last["position"][0] - seen[0]) < 0.05
