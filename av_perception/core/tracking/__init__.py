"""Variational Bayesian audio-visual multi-speaker tracker."""
from .tracker import (
    AudioFrames,
    EventObservations,
    Tracker,
    TrackerConfig,
    TrackerInputError,
    TrackerOutput,
    constant_velocity_model,
    frustum_volume,
    speaking_evidence,
    speaking_hmm_step,
)

__all__ = [
    "AudioFrames",
    "EventObservations",
    "Tracker",
    "TrackerConfig",
    "TrackerInputError",
    "TrackerOutput",
    "constant_velocity_model",
    "frustum_volume",
    "speaking_evidence",
    "speaking_hmm_step",
]
