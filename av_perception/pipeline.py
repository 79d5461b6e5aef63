"""The processing pipeline shared by the ROS nodes and the offline commands.

Today it holds the audio stage; the visual front-end, the weighted-data EM
and the tracker join it as their issues land, so that a node and an offline
command run exactly the same code on the same inputs.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .core.audio import AudioInputError, BinauralFeatures, BinauralFrontEnd
from .core.config import AudioFrontEndConfig, MicArrayConfig
from .core.geometry import MicGeometry

__all__ = ["AudioPipeline", "AudioRunResult"]


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
                 mics: MicArrayConfig | None = None, use_numba: bool = True):
        self.audio_config = audio or AudioFrontEndConfig()
        self.mics_config = mics or MicArrayConfig()
        self.geometry = MicGeometry.from_config(self.mics_config)
        self.front_end = BinauralFrontEnd(self.audio_config, self.geometry, use_numba=use_numba)
        self.processing_time = 0.0
        self.rejected_chunks = 0
        self.last_error = ""

    def warm_up(self):
        """Compile the numba kernels now, so the first real chunk is not slow."""
        self.front_end.warm_up()

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

    def run(self, chunks: Iterable) -> AudioRunResult:
        """Process a whole source (iterable of AudioChunk), keeping going past bad chunks."""
        parts, errors = [], []
        audio_s = 0.0
        t0 = time.perf_counter()
        for chunk in chunks:
            audio_s += len(chunk.samples) / chunk.sample_rate
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
