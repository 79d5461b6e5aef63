"""The live tracks of the multi-speaker tracker as one object: one row per track."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["TrackState"]


@dataclass
class TrackState:
    """Per-track arrays of K live tracks, in birth order (row k of every array is track k).

    Attributes
    ----------
    mean : (K, 6)
        Posterior mean of (position m, velocity m/s), left camera optical frame.
    cov : (K, 6, 6)
        Its covariance.
    ids : (K,) int64
        Identities (never reused).
    logodds : (K,)
        Existence log-odds.
    speaking : (K,)
        P(speaking) of the speaking HMM.
    confirmed : (K,) bool
        Existence has reached ``confirm_existence`` once.
    last_visual : (K,)
        s, stamp of the last visual support (-inf: never).
    noise_scale : (K,)
        Process-noise scale of the M-step (1 without it).
    visual_mean, visual_cov : (K, 6), (K, 6, 6)
        Posterior at the last image frame with visual support (process-noise M-step).
    visual_time : (K,)
        s, stamp of that frame (NaN: never).
    ref_range : (K,)
        m, anchor range of audio-only tracks from the microphone centre.
    ref_direction : (K, 3)
        Anchor direction around the microphone axis (unit).
    lip_llr : (K,)
        Visual speaking log-likelihood ratio of the track's lips: sum over the last
        image's observations with known lip evidence of responsibility x ``lip_llr``;
        0 = unknown.
    lip_time : (K,)
        s, stamp of that image (-inf: never).
    """

    mean: np.ndarray
    cov: np.ndarray
    ids: np.ndarray
    logodds: np.ndarray
    speaking: np.ndarray
    confirmed: np.ndarray
    last_visual: np.ndarray
    noise_scale: np.ndarray
    visual_mean: np.ndarray
    visual_cov: np.ndarray
    visual_time: np.ndarray
    ref_range: np.ndarray
    ref_direction: np.ndarray
    lip_llr: np.ndarray
    lip_time: np.ndarray

    @classmethod
    def empty(cls) -> TrackState:
        """No tracks."""
        return cls(mean=np.zeros((0, 6)), cov=np.zeros((0, 6, 6)),
                   ids=np.zeros(0, dtype=np.int64), logodds=np.zeros(0),
                   speaking=np.zeros(0), confirmed=np.zeros(0, dtype=bool),
                   last_visual=np.zeros(0), noise_scale=np.zeros(0),
                   visual_mean=np.zeros((0, 6)), visual_cov=np.zeros((0, 6, 6)),
                   visual_time=np.zeros(0), ref_range=np.zeros(0),
                   ref_direction=np.zeros((0, 3)), lip_llr=np.zeros(0),
                   lip_time=np.zeros(0))

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, mean, cov, track_id: int, logodds: float, speaking: float, confirmed: bool,
            last_visual: float, visual_time: float) -> int:
        """Append a track (process-noise scale 1, anchor unset, lips unknown); returns its
        row."""
        row = {"mean": mean, "cov": cov, "ids": track_id, "logodds": logodds,
               "speaking": speaking, "confirmed": confirmed, "last_visual": last_visual,
               "noise_scale": 1.0, "visual_mean": mean, "visual_cov": cov,
               "visual_time": visual_time, "ref_range": 0.0, "ref_direction": np.zeros(3),
               "lip_llr": 0.0, "lip_time": -np.inf}
        for f in fields(self):
            current = getattr(self, f.name)
            new = np.asarray(row[f.name], dtype=current.dtype)
            setattr(self, f.name, np.concatenate([current, new[None]]))
        return len(self) - 1

    def select(self, mask) -> TrackState:
        """The tracks of ``mask`` (boolean (K,) or indices), as a new TrackState (copies)."""
        return TrackState(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    def remove(self, mask) -> None:
        """Drop the tracks where ``mask`` (boolean (K,)) is true."""
        kept = self.select(~np.asarray(mask, dtype=bool))
        for f in fields(self):
            setattr(self, f.name, getattr(kept, f.name))
