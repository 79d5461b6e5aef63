"""Variational Bayesian audio-visual multi-speaker tracker in 3D (left camera optical
frame): stereo head observations and binaural ITDs in, tracks with identities and
speaking status out.

``config`` (TrackerConfig), ``inputs`` / ``outputs`` (what goes in and out), ``state``
(the live tracks), ``models`` (dynamics, observation models, speaking HMM), ``inference``
(variational E/M steps), ``births`` and ``merging`` (track life), ``tracker`` (the
Tracker that orders the steps).
"""
from .config import TrackerConfig, frustum_volume
from .inputs import AudioFrames, EventObservations, TrackerInputError
from .models import constant_velocity_model, speaking_emission, speaking_hmm_step
from .outputs import TrackerOutput
from .state import TrackState
from .tracker import Tracker

__all__ = [
    "AudioFrames",
    "EventObservations",
    "TrackState",
    "Tracker",
    "TrackerConfig",
    "TrackerInputError",
    "TrackerOutput",
    "constant_velocity_model",
    "frustum_volume",
    "speaking_emission",
    "speaking_hmm_step",
]
