"""/tf and /tf_static subscriptions feeding a :class:`~av_perception.pipeline.HeadPoses`
(the tracking and vision stages of the nodes)."""
from __future__ import annotations

from .conversions import time_to_sec

__all__ = ["TF_MISSING", "subscribe_tf"]

TF_MISSING = ("tf2_msgs is not installed (ros-<distro>-tf2-msgs, or 'make msgs' in the "
              "pip-only environment)")


def subscribe_tf(node, add) -> list:
    """Subscribe ``node`` to /tf and /tf_static (transient local, as tf2 publishes it);
    every transform goes to ``add(parent, child, stamp, translation, quaternion,
    static)``.  Returns the subscriptions; raises ImportError without tf2_msgs."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    def on_tf(msg, static):
        for tf in msg.transforms:
            tr, q = tf.transform.translation, tf.transform.rotation
            add(tf.header.frame_id, tf.child_frame_id, time_to_sec(tf.header.stamp),
                (tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w), static)

    static_qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                            reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return [node.create_subscription(TFMessage, "/tf", lambda m: on_tf(m, False), 100),
            node.create_subscription(TFMessage, "/tf_static", lambda m: on_tf(m, True),
                                     static_qos)]
