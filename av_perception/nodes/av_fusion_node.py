"""av_fusion_node: ``audio/features`` + ``visual/observations`` -> ``av_events``.

Buffers both streams in stamp order and runs the weighted-data EM audio-visual
clustering of the shared pipeline over sliding windows of *data time* (header stamps,
never the wall clock: a bag replayed at any rate gives the same windows), through
:class:`~.fusion_stage.FusionStage`.  Topics, message layouts, input merging and
diagnostics: docs/architecture.md.
"""
from __future__ import annotations

import sys

from rclpy.node import Node

from .common import configs_from_node, declare_stage_parameters, run_node, validate_parameter_change
from .fusion_stage import STAGES, FusionStage

__all__ = ["AVFusionNode", "STAGES"]


class AVFusionNode(Node):
    """A node made of the fusion stage (:class:`~.fusion_stage.FusionStage`)."""

    def __init__(self, **kwargs):
        super().__init__("av_fusion_node", **kwargs)
        declare_stage_parameters(self, STAGES)
        configs = configs_from_node(self, STAGES)  # ConfigError stops the node at start
        self.stage = FusionStage(self, configs, "av_perception: av_fusion_node")
        self.add_on_set_parameters_callback(self._on_parameters)
        self.get_logger().info(f"fusion on {self.stage.sub_audio.topic_name} + "
                               f"{self.stage.sub_visual.topic_name}")

    def _on_parameters(self, params):
        result, configs = validate_parameter_change(self, STAGES, params)
        if result.successful:
            self.stage.configure(configs)
        return result

    def __getattr__(self, name):  # the stage's state as the node's (pipeline, rates, ...)
        stage = self.__dict__.get("stage")
        if stage is None:
            raise AttributeError(name)
        return getattr(stage, name)

    def on_audio(self, msg):
        return self.stage.on_audio(msg)

    def on_visual(self, msg):
        return self.stage.on_visual(msg)


def main(args=None):
    return run_node(AVFusionNode, "av_fusion_node", (), args)


if __name__ == "__main__":
    sys.exit(main())
