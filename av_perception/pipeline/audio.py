"""Audio stage: chunks of binaural audio -> per-frame features."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from ..compile_lock import serialized_compilation
from ..core.audio import AudioInputError, BinauralFeatures, BinauralFrontEnd
from ..core.config import AudioFrontEndConfig, MicArrayConfig
from ..io.heads import load_head_model

__all__ = ["AudioPipeline", "AudioRunResult", "audio_activity_of", "audio_frames_of",
           "audio_profile_of", "head_turn"]


#: a larger turn (rad) of the camera between two audio chunks is taken for a jump of /tf
#: (an odometry reset), not the head's motion: the precedence memory is not turned by it
MAX_TURN_PER_CHUNK = math.radians(45.0)


def head_turn(rotation_before, rotation_after) -> float:
    """The head's turn (rad, positive to the left) about the camera's vertical axis between
    two camera rotations (3x3, camera optical frame -> a fixed frame, as /tf gives them):
    the azimuth of the camera's new forward axis in the old camera frame."""
    rel = np.asarray(rotation_before, dtype=float).T @ np.asarray(rotation_after, dtype=float)
    return math.atan2(-rel[0, 2], rel[2, 2])


@dataclass
class AudioRunResult:
    features: BinauralFeatures
    errors: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


class AudioPipeline:
    """Audio stage: chunks of binaural audio -> per-frame features.

    Bad chunks (wrong channel count, NaN, a sample-rate change) are refused
    with :class:`AudioInputError`; a rate change restarts the stream so that
    processing continues at the new rate.
    """

    def __init__(self, audio: AudioFrontEndConfig | None = None,
                 mics: MicArrayConfig | None = None, use_numba: bool = True,
                 keep_spectra: bool = False):
        self.audio_config = audio or AudioFrontEndConfig()
        self.mics_config = mics or MicArrayConfig()
        self.geometry = load_head_model(self.mics_config, self.audio_config)
        self.front_end = BinauralFrontEnd(self.audio_config, self.geometry, use_numba=use_numba,
                                          keep_spectra=keep_spectra)
        self.processing_time = 0.0
        self.rejected_chunks = 0
        self.last_error = ""
        self._rotation = None  # the camera's rotation at the previous chunk (from /tf)

    def warm_up(self):
        """Compile the numba kernels now, so the first real chunk is not slow."""
        with serialized_compilation("audio"):
            self.front_end.warm_up()

    def set_camera_rotation(self, rotation) -> None:
        """The camera's rotation (3x3, camera -> fixed frame, from /tf) at the next chunk,
        or None when unknown.  The head's turn since the previous known rotation turns the
        front-end's precedence memory (:meth:`BinauralFrontEnd.turn`), so that a turning
        head does not read its talkers where they were at their last onset."""
        if rotation is None:
            self._rotation = None
            return
        rotation = np.asarray(rotation, dtype=float)
        if rotation.shape != (3, 3) or not np.all(np.isfinite(rotation)):
            raise ValueError(f"camera rotation must be a finite 3x3 matrix, got {rotation!r}")
        if self._rotation is not None:
            turn = head_turn(self._rotation, rotation)
            if abs(turn) <= MAX_TURN_PER_CHUNK:  # larger: a jump of /tf, not the head
                self.front_end.turn(turn)
        self._rotation = rotation

    def process_audio(self, samples, sample_rate: int, stamp: float | None) -> BinauralFeatures:
        """Process one chunk (n, 2); raises AudioInputError for unusable input."""
        fe = self.front_end
        if fe.input_rate is not None and int(sample_rate) != fe.input_rate:
            self.last_error = (f"sample rate changed from {fe.input_rate} Hz to "
                               f"{int(sample_rate)} Hz: stream restarted")
            fe.reset()
        t0 = time.perf_counter()
        try:
            return fe.process(samples, sample_rate, stamp)
        except AudioInputError as exc:
            self.rejected_chunks += 1
            self.last_error = str(exc)
            raise
        finally:
            self.processing_time += time.perf_counter() - t0

    def run(self, chunks: Iterable, rotation_at: Callable | None = None) -> AudioRunResult:
        """Process a whole source (iterable of AudioChunk), keeping going past bad chunks.

        ``rotation_at(stamp)``: the camera's rotation (3x3 or None) at a chunk's stamp, for
        :meth:`set_camera_rotation` (the head's turns from /tf), or None."""
        parts, errors = [], []
        audio_s = 0.0
        t0 = time.perf_counter()
        for chunk in chunks:
            audio_s += len(chunk.samples) / chunk.sample_rate
            if rotation_at is not None and chunk.stamp is not None:
                self.set_camera_rotation(rotation_at(float(chunk.stamp)))
            try:
                parts.append(self.process_audio(chunk.samples, chunk.sample_rate, chunk.stamp))
            except AudioInputError as exc:
                errors.append(f"chunk at {chunk.stamp:.3f} s: {exc}")
        feats = (BinauralFeatures.concatenate(parts) if parts else BinauralFeatures.empty(
            self.front_end.n_bands, self.audio_config.ild_band_edges))
        return AudioRunResult(feats, errors, audio_s, time.perf_counter() - t0)

    def active_directions(self, features: BinauralFeatures, min_activity: float,
                          min_reliability: float):
        """(mask (F,), unit vectors (M, 3)) of frames with an active, reliable ITD."""
        mask = (np.isfinite(features.itd) & (features.activity >= min_activity)
                & (features.reliability >= min_reliability))
        return mask, self.geometry.direction_from_itd(features.itd[mask])



def audio_frames_of(features):
    """(stamp, itd, weight) of audio frames from :class:`BinauralFeatures` or a
    ``cloud_to_features`` dict; weight = activity x reliability."""
    if isinstance(features, BinauralFeatures):
        return features.stamp, features.itd, features.weight
    rel = features.get("reliability")
    return (features["stamp"], features["itd"],
            features["activity"] * (rel if rel is not None else 1.0))



def audio_activity_of(features):
    """The frames' activity (F,) from :class:`BinauralFeatures` or a ``cloud_to_features``
    dict, or None when it has none."""
    if isinstance(features, BinauralFeatures):
        return features.activity
    return features.get("activity")


def audio_profile_of(features):
    """The frames' ITD profiles (F, N) from :class:`BinauralFeatures` or a
    ``cloud_to_features`` dict, or None when they have none."""
    if isinstance(features, BinauralFeatures):
        return features.itd_profile
    return features.get("itd_profile")
