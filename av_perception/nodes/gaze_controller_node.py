"""gaze_controller_node: a simulated pan/tilt head that turns towards ``attention``.

Subscribes ``attention`` (``geometry_msgs/PointStamped``, the tracker's attention target)
and runs a :class:`~av_perception.core.gaze.GazeController` (``gaze.max_speed``,
``gaze.reaction_delay``, ``gaze.pan_limit`` / ``gaze.tilt_limit``) at ``gaze.rate``;
publishes the head's joint angles on ``gaze/joint_states`` (``sensor_msgs/JointState``,
``head_pan_joint`` and ``head_tilt_joint`` in rad) and its pose on /tf
(``gaze.neck_frame`` -> ``gaze.head_frame``) with /tf_static (the attention's frame ->
``gaze.neck_frame`` at ``gaze.neck_position``).  ``replay --gaze`` runs it in-process:
RViz shows where a robot head driven by the attention would look.  The head frames are
its own (they are not the camera's chain: a recorded bag's images do not turn with it).
docs/launch.md, "gaze_controller_node".
"""
from __future__ import annotations

import math

import numpy as np
from geometry_msgs.msg import PointStamped, TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from ..core.gaze import ROS_TO_OPTICAL, GazeConfig, GazeController, head_rotation
from ..core.poses import quat_from_matrix
from .common import Diagnostics, configs_from_node, declare_stage_parameters, run_node
from .conversions import time_to_sec

__all__ = ["GazeNode", "STAGES", "JOINTS"]

STAGES = (GazeConfig,)
JOINTS = ("head_pan_joint", "head_tilt_joint")


class GazeNode(Node):
    """The simulated head (module docstring)."""

    def __init__(self, **kwargs):
        super().__init__("gaze_controller_node", **kwargs)
        declare_stage_parameters(self, STAGES)
        self.config = configs_from_node(self, STAGES)[GazeConfig]
        self.controller = GazeController(self.config.limits)
        from tf2_msgs.msg import TFMessage  # ImportError: run_node says what is missing

        self._tf_type = TFMessage
        self.pub_tf = self.create_publisher(TFMessage, "/tf", 100)
        self.pub_static = self.create_publisher(
            TFMessage, "/tf_static", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                                durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.pub_joints = self.create_publisher(JointState, "gaze/joint_states", 10)
        self.sub = self.create_subscription(PointStamped, "attention", self._on_attention, 10)
        self.targets = 0
        self.bad_targets = 0
        self.base_frame = ""  # the attention's frame (the neck's parent)
        self.diagnostics = Diagnostics(self, "av_perception: gaze_controller_node")
        self.timer = self.create_timer(1.0 / self.config.rate, self._tick)
        self.diag_timer = self.create_timer(1.0, self._publish_diagnostics)

    def _neck_point(self, p) -> np.ndarray:
        """A point of the attention's frame in the controller's neck frame (rest optical
        axes)."""
        c = self.config
        if c.target_axes == "optical":  # the optical axes are the controller's own
            return np.asarray(p, float) - np.asarray(c.neck_position)
        return ROS_TO_OPTICAL @ (np.asarray(p, float) - np.asarray(c.neck_position))

    def _on_attention(self, msg: PointStamped) -> None:
        p = (msg.point.x, msg.point.y, msg.point.z)
        if not all(math.isfinite(v) for v in p) or not msg.header.frame_id:
            self.bad_targets += 1
            self.diagnostics.warn(
                f"attention target {p} in frame '{msg.header.frame_id}' dropped: it needs a "
                "finite point and a frame_id; the head holds its aim")
            return
        if msg.header.frame_id != self.base_frame:
            self.base_frame = msg.header.frame_id
            self._publish_static(msg.header.stamp)
        self.controller.see(time_to_sec(msg.header.stamp), self._neck_point(p))
        self.targets += 1

    def _publish_static(self, stamp) -> None:
        c = self.config
        R = np.eye(3) if c.target_axes == "ros" else ROS_TO_OPTICAL.T  # neck -> parent
        self.pub_static.publish(self._tf_type(transforms=[
            self._transform(stamp, self.base_frame, c.neck_frame, c.neck_position, R)]))

    @staticmethod
    def _transform(stamp, parent, child, translation, R) -> TransformStamped:
        t = TransformStamped(child_frame_id=child)
        t.header.frame_id = parent
        t.header.stamp = stamp
        t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
            float(v) for v in translation)
        q = quat_from_matrix(R)
        r = t.transform.rotation
        r.x, r.y, r.z, r.w = (float(v) for v in q)
        return t

    def _tick(self) -> None:
        now = self.get_clock().now()
        t = now.nanoseconds * 1e-9
        if t <= 0:  # use_sim_time before the first /clock
            return
        pan, tilt = self.controller.update(t)
        stamp = now.to_msg()
        js = JointState(name=list(JOINTS), position=[pan, tilt])
        js.header.stamp = stamp
        self.pub_joints.publish(js)
        if self.base_frame:
            c = self.config
            self.pub_tf.publish(self._tf_type(transforms=[self._transform(
                stamp, c.neck_frame, c.head_frame, (0.0, 0.0, 0.0), head_rotation(pan, tilt))]))

    def _publish_diagnostics(self) -> None:
        c = self.controller
        self.diagnostics.publish({
            "pan_deg": math.degrees(c.pan), "tilt_deg": math.degrees(c.tilt),
            "targets": self.targets, "bad_targets": self.bad_targets,
            "frame": self.base_frame or "(no target yet)"})


def main(args=None) -> int:
    return run_node(GazeNode, "gaze_controller_node", startup_errors=(ImportError,),
                    args=args)


if __name__ == "__main__":
    raise SystemExit(main())
