"""av_fusion_node: ``audio/features`` + ``visual/observations`` -> ``av_events``.

Subscribes to the audio front-end's feature clouds (one point per audio frame)
and the visual front-end's observation clouds (one per image pair), buffers
both and runs the audio-visual clustering of the shared pipeline
(:class:`~av_perception.pipeline.FusionPipeline`, a weighted-data EM over
sliding windows) every ``fusion.hop_length`` seconds of *data time*: windows
are driven by the header stamps, never by the wall clock, so a bag replayed at
any rate gives the same windows.  Publishes

* ``av_events`` (sensor_msgs/PointCloud2, one point per cluster of the window:
  float32 x, y, z, audio_mass, visual_mass, var_x, var_y, var_z, out_of_view
  (0/1), uint32 label, float32 spread_x, spread_y, spread_z (diagonal of the
  cluster's visual spread over the window, m^2); header stamp = window end, frame_id = the visual
  observations' frame_id (``fusion_input.frame_id`` until one is known); an empty
  cloud for a window without clusters),
* ``/diagnostics`` (input rates, window processing time, events per window,
  late / out-of-order / overflowing input dropped, malformed input).

Input merging: a window runs on the data both streams have delivered, or on
the faster stream alone once the other lags by ``fusion_input.max_input_delay``
of data time (a silent camera or microphone does not stop the output).  Input
stamped before the data already clustered is dropped as late and counted; a
jump back by more than ``fusion_input.time_jump_reset`` (bag restarted) restarts
the fusion.  Malformed clouds (missing fields, wrong sizes, non-finite stamps)
are rejected and non-finite points are dropped, with an ERROR/WARN on
/diagnostics; the node keeps running.
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
