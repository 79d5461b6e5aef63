"""audio_features_node: binaural capture -> ``audio/features``, ``audio/direction``.

Captures from a sound card through sounddevice (or plays ``capture.input_file`` in real
time), runs the audio stage of the shared pipeline (:class:`~.audio_stage.AudioStage`)
and reports on /diagnostics; a missing or lost device is retried every
``capture.reconnect_interval`` s.  Topics, message layouts and diagnostics:
docs/architecture.md.
"""
from __future__ import annotations

import sys

from rclpy.node import Node

from .audio_stage import AudioStage, WavPlayback
from .common import configs_from_node, declare_stage_parameters, run_node, validate_parameter_change

__all__ = ["AudioFeaturesNode", "STAGES", "WavPlayback"]

STAGES = AudioStage.CONFIGS


class AudioFeaturesNode(Node):
    """A node made of the audio stage (:class:`~.audio_stage.AudioStage`)."""

    def __init__(self, node_name: str = "audio_features_node", **kwargs):
        super().__init__(node_name, **kwargs)
        declare_stage_parameters(self, STAGES)
        configs = configs_from_node(self, STAGES)  # ConfigError stops the node at start
        self.stage = AudioStage(self, configs, f"av_perception: {node_name}")
        self.add_on_set_parameters_callback(self._on_parameters)

    def _on_parameters(self, params):
        result, configs = validate_parameter_change(self, STAGES, params)
        if result.successful:
            self.stage.configure(configs)
        return result

    # the stage's state, as the node's (tests, tools)
    @property
    def audio(self):
        return self.stage.audio

    @property
    def pipeline(self):
        return self.stage.pipeline

    @property
    def diag(self):
        return self.stage.diag

    @property
    def source(self):
        return self.stage.source

    @property
    def chunks_rejected(self) -> int:
        return self.stage.chunks_rejected

    @property
    def frames_published(self) -> int:
        return self.stage.frames_published

    def process_chunk(self, chunk):
        return self.stage.process_chunk(chunk)

    def destroy_node(self):
        self.stage.close()
        return super().destroy_node()


def main(args=None):
    return run_node(AudioFeaturesNode, "audio_features_node", (), args)


if __name__ == "__main__":
    sys.exit(main())
