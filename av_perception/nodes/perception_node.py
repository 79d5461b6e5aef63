"""perception_node: every stage in one process (lowest latency).

Composes the audio, vision, fusion and tracking stages (the same stage objects as the
single-stage nodes) without messages between them: the same parameters (the union of
their sections), the same output topics, one /diagnostics status per stage.  The
tracker sees the same input in the same order as ``av-perception process`` does over a
recording.  Topics and behaviour: docs/architecture.md.
"""
from __future__ import annotations

import dataclasses
import sys
import time

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from ..core.attention import AttentionConfig
from ..core.av_clustering import AVClusteringConfig
from ..core.body_cue import BodyCueConfig
from ..core.config import AudioFrontEndConfig, ConfigError, MicArrayConfig, StereoCameraConfig
from ..core.detection import DetectionConfig, DetectorError
from ..core.head_calibration import HeadCalibrationConfig
from ..core.lip_activity import LipConfig
from ..core.tf_masks import VoiceConfig
from ..core.tracking import TrackerConfig
from ..core.vision import VisionConfig
from ..core.wdem import WdemConfig
from ..io.audio_sources import AudioCaptureConfig
from ..io.stereo_sources import VisionInputConfig
from ..io.track_output import TrackOutputConfig
from ..pipeline import (
    FusionInputConfig,
    FusionPipeline,
    TrackingConfig,
    TrackingPipeline,
)
from .audio_stage import AudioStage
from .common import (
    configs_from_node,
    declare_stage_parameters,
    run_node,
    validate_parameter_change,
)
from .conversions import time_to_sec
from .fusion_stage import FusionStage
from .settings import AudioOutputConfig, FusionNodeConfig, TrackingNodeConfig, VoiceOutputConfig
from .tracker_node import AUDIO_IDLE
from .tracking_stage import TrackingStage
from .vision_stage import VisionStage
from .voice_stage import VoiceAudioStage, live_voice_config

STAGES = (AudioFrontEndConfig, MicArrayConfig, AudioCaptureConfig, AudioOutputConfig,
          VisionInputConfig, VisionConfig, DetectionConfig, LipConfig, BodyCueConfig,
          StereoCameraConfig,
          TrackerConfig, TrackingConfig, TrackOutputConfig, TrackingNodeConfig,
          AVClusteringConfig, WdemConfig, HeadCalibrationConfig, AttentionConfig,
          VoiceConfig, VoiceOutputConfig)


class PerceptionNode(Node):
    """The audio stage, the vision stage and, in-process, fusion and tracking."""

    def __init__(self, **kwargs):
        self.vision_stage = None
        super().__init__("perception_node", **kwargs)
        declare_stage_parameters(self, STAGES)
        configs = configs_from_node(self, STAGES)  # ConfigError stops the node at start
        live_voice_config(configs)  # ... as a voice_output.hop longer than voices.window
        self.voice_stage = VoiceAudioStage(self, "av_perception: perception_node voices")
        self.tracking_stage = TrackingStage(self, configs,
                                            "av_perception: perception_node tracking",
                                            extra_values=self._tracking_values,
                                            camera_topic=self._camera_topic)
        self.audio_waits = 0  # steps that waited for audio ...
        self.audio_wait_timeouts = 0  # ... and those that gave up
        self._last_audio_arrival = -1e9
        self.fusion_stage = FusionStage(self, self._fusion_configs(configs),
                                        "av_perception: perception_node fusion",
                                        subscribe=False, on_windows=self._on_windows)
        self.audio_stage = AudioStage(self, configs, "av_perception: perception_node audio",
                                      on_features=self._on_audio_features,
                                      keep_spectra=configs[VoiceOutputConfig].publish_audio,
                                      on_chunk=self.voice_stage.input_chunk)
        self._configure_voices(configs)
        self.vision_stage = VisionStage(  # DetectorError stops the node
            self, configs, "av_perception: perception_node vision",
            on_observations=self._track, thread_name="perception_vision")
        # the head's turning for the detector: the tracking stage's /tf (tracking.fixed_frame)
        self.vision_stage.poses_source = lambda: self.tracking_stage.pipeline.poses
        # ... and for the audio front-end's precedence memory (BinauralFrontEnd.turn)
        self.audio_stage.poses_source = lambda: self.tracking_stage.pipeline.poses
        self.add_on_set_parameters_callback(self._on_parameters)
        self.get_logger().info(
            f"perception ready: audio from "
            f"{self.audio_stage.capture.input_file or 'the sound card'}, vision on "
            f"{self.vision_stage.sub_image[0].topic_name} + "
            f"{self.vision_stage.sub_image[1].topic_name}")

    @property
    def fusion_pipeline(self) -> FusionPipeline:
        return self.fusion_stage.pipeline

    @property
    def tracking(self) -> TrackingConfig:
        return self.tracking_stage.tracking

    @property
    def tracking_pipeline(self) -> TrackingPipeline:
        return self.tracking_stage.pipeline

    @property
    def outputs(self):
        return self.tracking_stage.outputs

    @property
    def last_error(self) -> str:
        """The newest problem of the vision or fusion stage (tests, tools)."""
        return self.vision_stage.last_error or self.fusion_stage.last_error

    # ---------------------------------------------------------------- config
    @staticmethod
    def _fusion_configs(configs) -> dict:
        """The fusion stage's configs: no fusion_input.* parameters here, the frame of the
        camera."""
        out = {cls: configs[cls] for cls in FusionStage.CONFIGS if cls in configs}
        out[FusionInputConfig] = FusionInputConfig(frame_id=configs[StereoCameraConfig].frame_id)
        out[FusionNodeConfig] = FusionNodeConfig()
        return out

    def _on_parameters(self, params):
        result, configs = validate_parameter_change(self, STAGES, params)
        if not result.successful:
            return result
        try:
            live_voice_config(configs)
            vision = VisionStage.make_pipeline(configs)
            vision.warm_up()
        except (DetectorError, ConfigError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.audio_stage.configure(configs, keep_spectra=configs[VoiceOutputConfig].publish_audio)
        self._configure_voices(configs)
        self.vision_stage.configure(configs, vision)
        self.tracking_stage.configure(configs)
        self.fusion_stage.configure(self._fusion_configs(configs))
        return result

    def _configure_voices(self, configs) -> None:
        """The live voices on the audio stage's (new) front-end."""
        pipe = self.audio_stage.pipeline
        self.voice_stage.configure(configs, pipe.front_end, pipe.geometry)

    def _camera_topic(self) -> str:
        vs = self.vision_stage
        return vs.sub_image[0].topic_name if vs is not None else "the camera"

    # ------------------------------------------------------------ audio stage
    def _on_audio_features(self, feats):
        """The audio stage's features, to the tracking and fusion stages, then to the voices
        (with their STFT): the voices' clustering does not delay the tracker's audio."""
        if not len(feats):
            return
        spectra = feats if feats.spec is not None else None
        if spectra is not None:
            feats = dataclasses.replace(feats, spec=None)  # the other stages keep no STFT
        self.tracking_stage.add_audio_features(feats, "audio frames")
        self._last_audio_arrival = time.monotonic()
        self.fusion_stage.add_audio_features(feats)
        if spectra is not None:
            self.voice_stage.push(spectra)

    def process_chunk(self, chunk):
        return self.audio_stage.process_chunk(chunk)

    # ----------------------------------------------------------- vision stage
    def process_pair(self, left_msg, right_msg):
        """One synchronised image pair through vision, tracking and fusion (the
        observations, None when the pair was dropped)."""
        return self.vision_stage.process_pair(left_msg, right_msg)

    # --------------------------------------------------------- tracking stage
    def _wait_for_audio(self, stamp: float, pipeline: TrackingPipeline):
        """Wait until the audio up to ``stamp`` is in (at most tracking.audio_wait s)."""
        if pipeline.audio_ready(stamp) or (
                time.monotonic() - self._last_audio_arrival > AUDIO_IDLE):
            return
        self.audio_waits += 1
        deadline = time.monotonic() + self.tracking.audio_wait
        while not pipeline.audio_ready(stamp):
            if time.monotonic() >= deadline or self.vision_stage._worker.stopped:
                self.audio_wait_timeouts += 1
                return
            time.sleep(0.001)

    def _track(self, obs, header, left_image, calibration):
        """The vision stage's observations (on its worker thread): step the tracker,
        publish, then run the fusion; returns the TrackerOutput (None when dropped)."""
        stamp = time_to_sec(header.stamp)
        stage = self.tracking_stage
        self._wait_for_audio(stamp, stage.pipeline)
        out = stage.step(stamp, obs.xyz, obs.covariance, obs.weight, header, obs.lip_llr)
        if out is None:
            return None
        # the next pairs' detector looks around the heads (in the camera frame)
        in_camera = stage.pipeline.to_camera(out)
        self.vision_stage.update_tracks(in_camera)
        self.voice_stage.add_output(in_camera)
        if stage.publishing.publish_image:
            stage.outputs.publish_image(left_image, header, out, calibration)
        self._fuse(stamp, obs, header.frame_id)  # after publishing: no latency
        return out

    def _fuse(self, stamp: float, obs, frame_id: str):
        """The fusion stage: cluster (and publish) the windows completed by this image."""
        if self.fusion_stage.add_visual(stamp, obs.xyz, obs.weight, obs.variances, frame_id):
            self.fusion_stage.process()

    def _on_windows(self, windows):
        """With tracking.use_av_events the newest window's events go to the tracker."""
        if self.tracking.use_av_events:
            self.tracking_stage.add_events(windows[-1].stamp, windows[-1].events,
                                           "fusion window")

    # ----------------------------------------------------------- diagnostics
    # ----------------------------------------------------------- diagnostics
    def _tracking_values(self) -> dict:
        """This node's values for the tracking status (audio waits, the fusion)."""
        fp = self.fusion_stage.pipeline
        return {
            "audio_waits": self.audio_waits,
            "audio_wait_timeouts": self.audio_wait_timeouts,
            "fusion_windows": fp.windows,
            "fusion_ms_per_window": 1000.0 * fp.processing_time / max(fp.windows, 1),
        }

    def destroy_node(self):
        self.audio_stage.close()
        self.voice_stage.close()
        if self.vision_stage is not None:
            self.vision_stage.close()
        self.tracking_stage.close()
        return super().destroy_node()


def main(args=None):
    return run_node(PerceptionNode, "perception_node", (DetectorError,), args)


if __name__ == "__main__":
    sys.exit(main())
