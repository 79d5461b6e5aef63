"""The processing pipeline shared by the ROS nodes and the offline commands, one module
per stage: a node and an offline command run the same code on the same inputs.

* :mod:`.audio` -- binaural audio -> features (:class:`AudioPipeline`),
* :mod:`.vision` -- stereo pairs -> visual observations (:class:`VisionPipeline`),
* :mod:`.fusion` -- audio-visual clustering over windows (:class:`FusionPipeline`),
* :mod:`.tracking` -- the tracker fed in time order (:class:`TrackingPipeline`),
* :mod:`.buffer` -- the time-ordered input buffer of fusion and tracking,
* :mod:`.voices` -- per-track speech presence and voice from the front-end's STFT
  (:class:`VoiceSeparator`).
"""
from .audio import AudioPipeline, AudioRunResult, audio_frames_of
from .buffer import InputError, TimeOrderedBuffer
from .fusion import (
    FusionInputConfig,
    FusionInputError,
    FusionPipeline,
    FusionRunResult,
    FusionWindow,
)
from .poses import HeadPoses
from .tracking import AUDIO_ONLY_PERIOD, TrackingConfig, TrackingPipeline, calibrate_step
from .vision import (
    DETECTION_NICENESS,
    AsyncDetection,
    PredictedHeads,
    VisionPipeline,
    VisionRunResult,
)
from .voices import VoiceResult, VoiceSeparator

__all__ = ["AUDIO_ONLY_PERIOD", "AsyncDetection", "AudioPipeline", "AudioRunResult",
           "DETECTION_NICENESS",
           "FusionInputConfig", "FusionInputError", "FusionPipeline", "FusionRunResult",
           "FusionWindow", "HeadPoses", "InputError", "PredictedHeads", "TimeOrderedBuffer",
           "TrackerInputConfig",
           "TrackingConfig", "TrackingPipeline", "VisionPipeline", "VisionRunResult",
           "VoiceResult", "VoiceSeparator",
           "audio_frames_of", "calibrate_step", "warm_up_kernels"]



def warm_up_kernels() -> None:
    """Compile (or load from the cache) every numba kernel the pipeline uses, each family
    under its compile lock: the audio front-end, the stereo matcher and the weighted-data
    EM."""
    AudioPipeline().warm_up()
    vision = VisionPipeline()
    try:
        vision.warm_up()
    finally:
        vision.close()
    FusionPipeline().warm_up()


def __getattr__(name):  # moved to the nodes (ROS-only settings); still importable here
    if name == "TrackerInputConfig":
        from ..nodes.settings import TrackerInputConfig

        return TrackerInputConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
