"""visual_features_node: a stereo image pair -> ``visual/observations``.

Pairs the left and right images (raw or compressed) by stamp within
``vision_input.slop`` and runs the visual stage of the shared pipeline
(:class:`~.vision_stage.VisionStage`) on a worker thread that keeps only the newest
pairs when processing is slower than the cameras.  The tracker's ``speakers``
(``vision_input.tracks_topic``) tell the detector where heads are expected.  Topics,
message layouts, bad input and diagnostics: docs/architecture.md.
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
        self.stage = VisionStage(self, configs, "av_perception: visual_features_node",
                                 subscribe_tracks=True)
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
