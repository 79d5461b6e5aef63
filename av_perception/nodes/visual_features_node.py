"""visual_features_node: a stereo image pair -> ``visual/observations``.

Subscribes to the left and right images (``sensor_msgs/Image``, or
``sensor_msgs/CompressedImage`` on ``<topic>/compressed`` with
``vision_input.compressed``) and the two ``sensor_msgs/CameraInfo`` topics,
pairs the images by header stamp within ``vision_input.slop``
(:class:`~av_perception.io.stereo_sources.ApproximateTimeSync`), runs the
visual stage of the shared pipeline (:class:`~av_perception.pipeline.VisionPipeline`)
on a worker thread and publishes:

* ``visual/observations`` (sensor_msgs/PointCloud2, one point per observation,
  float32 fields x, y, z, weight, u, v, w, h, var_x, var_y, var_z; header =
  the left image's stamp and frame_id; an empty cloud for a frame without
  observations),
* ``/diagnostics`` (input rates, sync failures, dropped pairs, processing
  time, observations per frame, calibration, last error).

Processing runs on its own thread so that the subscriptions never back up:
when it is slower than the input, only the newest ``vision_input.max_pending_pairs``
pairs wait and older ones are dropped (and counted).

Bad input -- missing or inconsistent CameraInfo, images without a partner
within the slop, unsupported encodings, corrupt JPEG, left/right size
mismatch -- is reported on /diagnostics (WARN/ERROR naming the problem and the
fix) and logged; the pair is dropped and the node keeps running.
"""
from __future__ import annotations

import sys

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from ..core.detection import DetectorError
from .common import configs_from_node, declare_stage_parameters, run_node, validate_parameter_change
from .vision_stage import STAGES, VisionStage

__all__ = ["STAGES", "VisualFeaturesNode"]


class VisualFeaturesNode(Node):
    """A node made of the vision stage (:class:`~.vision_stage.VisionStage`)."""

    def __init__(self, **kwargs):
        super().__init__("visual_features_node", **kwargs)
        declare_stage_parameters(self, STAGES)
        configs = configs_from_node(self, STAGES)  # ConfigError stops the node at start
        # DetectorError stops the node too
        self.stage = VisionStage(self, configs, "av_perception: visual_features_node")
        self.add_on_set_parameters_callback(self._on_parameters)

    def _on_parameters(self, params):
        result, configs = validate_parameter_change(self, STAGES, params)
        if not result.successful:
            return result
        try:
            pipeline = VisionStage.make_pipeline(configs)
            pipeline.warm_up()
        except DetectorError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.stage.configure(configs, pipeline)
        return result

    def __getattr__(self, name):  # the stage's state as the node's (pipeline, sync, ...)
        stage = self.__dict__.get("stage")
        if stage is None:
            raise AttributeError(name)
        return getattr(stage, name)

    def process_pair(self, left_msg, right_msg):
        return self.stage.process_pair(left_msg, right_msg)

    def destroy_node(self):
        self.stage.close()
        return super().destroy_node()


def main(args=None):
    return run_node(VisualFeaturesNode, "visual_features_node", (DetectorError,), args)


if __name__ == "__main__":
    sys.exit(main())
