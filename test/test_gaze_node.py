"""gaze_controller_node (``replay --gaze``): the simulated head turns towards
``attention`` at a limited speed, after the reaction delay; /tf, /tf_static and
gaze/joint_states say where it looks; a bad target is refused on /diagnostics."""
import math

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


def _node(**overrides):
    from rclpy.parameter import Parameter

    from av_perception.nodes.gaze_controller_node import GazeNode

    return GazeNode(parameter_overrides=[Parameter(f"gaze.{k}", value=v)
                                         for k, v in overrides.items()])


def _stamp_s(header) -> float:
    return header.stamp.sec + 1e-9 * header.stamp.nanosec


def test_gaze_node_turns_the_head_to_the_attention_target(node_harness):
    pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs (make msgs)")
    from geometry_msgs.msg import PointStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from tf2_msgs.msg import TFMessage

    from av_perception.core.gaze import head_rotation
    from av_perception.core.poses import quat_from_matrix
    from av_perception.nodes.gaze_controller_node import GazeNode  # noqa: F401 - the node's module

    node = _node(max_speed=90.0, reaction_delay=0.2, rate=100.0)
    h = node_harness(node, "gaze_peer")
    joints = h.listen(JointState, "gaze/joint_states", depth=1000)
    tf = h.listen(TFMessage, "/tf", depth=1000)
    static: list = []
    h.peer.create_subscription(TFMessage, "/tf_static", static.append, QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    pub = h.publisher(PointStamped, "attention")
    assert h.wait_for_subscribers(pub)
    assert h.spin_until(lambda: len(joints) > 3)
    assert all(j.position[0] == 0.0 for j in joints)  # no target: the head looks ahead
    msg = PointStamped()
    msg.header.frame_id = "base_link"
    msg.header.stamp = node.get_clock().now().to_msg()
    t_target = _stamp_s(msg.header)
    msg.point.x, msg.point.y, msg.point.z = 2.0, 1.0, 0.0  # 26.6 deg to the left
    pub.publish(msg)
    want = math.atan2(1.0, 2.0)
    assert h.spin_until(lambda: abs(joints[-1].position[0] - want) < 1e-6, timeout=30.0)
    t = np.array([_stamp_s(j.header) for j in joints])
    pan = np.array([j.position[0] for j in joints])
    assert list(joints[-1].name) == ["head_pan_joint", "head_tilt_joint"]
    assert np.all(pan[t < t_target + 0.2 - 1e-3] == 0.0)  # the reaction delay
    # speed (1e-5 rad: the float stamps of ~1.8e9 s resolve 0.2 us)
    assert np.all(np.abs(np.diff(pan)) <= math.radians(90.0) * np.diff(t) + 1e-5)
    assert np.all(np.abs(pan) <= want + 1e-9)
    # /tf: gaze_neck -> gaze_head turned by the pan; /tf_static: base_link -> gaze_neck
    assert h.spin_until(lambda: static and tf)
    s = static[-1].transforms[0]
    assert (s.header.frame_id, s.child_frame_id) == ("base_link", "gaze_neck")
    last = tf[-1].transforms[0]
    assert (last.header.frame_id, last.child_frame_id) == ("gaze_neck", "gaze_head")
    q = last.transform.rotation
    assert np.allclose(np.abs(np.dot([q.x, q.y, q.z, q.w],
                                     quat_from_matrix(head_rotation(want, 0.0)))), 1.0,
                       atol=1e-3)
    # a target without a frame is refused, said on /diagnostics; the head holds its aim
    bad = PointStamped()
    bad.header.stamp = node.get_clock().now().to_msg()
    bad.point.x = 1.0
    pub.publish(bad)
    assert h.spin_until(lambda: any("dropped" in s.message for s in h.statuses()),
                        timeout=30.0)
    assert node.bad_targets == 1 and abs(joints[-1].position[0] - want) < 1e-6


def test_gaze_config_refuses_bad_values():
    from av_perception.core.config import ConfigError
    from av_perception.core.gaze import GazeConfig

    with pytest.raises(ConfigError, match="gaze.max_speed"):
        GazeConfig(max_speed=0.0)
    with pytest.raises(ConfigError, match="gaze.target_axes"):
        GazeConfig(target_axes="enu")
