"""Inputs of the multi-speaker tracker: audio frames, audio-visual events, their checks."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .models import symmetrise

__all__ = ["AudioFrames", "EventObservations", "TrackerInputError", "check_lip", "check_stamp",
           "check_visual"]


class TrackerInputError(ValueError):
    """Observations given to the tracker have a wrong shape, NaN values or a bad stamp."""


@dataclass
class AudioFrames:
    """Audio observations of F frames (the part of the front-end output the tracker uses).

    stamp : (F,) s, frame centre times.  itd : (F,) s (NaN = no ITD).  weight : (F,) in
    [0, 1], activity x reliability.  Entries with the same stamp form one frame (e.g.
    sub-band ITDs).  profile : optional (F, N), each frame's ITD profile
    (``BinauralFeatures.itd_profile``; the first entry of a frame counts).  activity :
    optional (F,) in [0, 1], the front-end's activity alone (how much of the frame is
    sound, whatever its ITD's reliability): the speaking model's inactive frames; None
    = taken from ``weight``.
    """

    stamp: np.ndarray
    itd: np.ndarray
    weight: np.ndarray
    profile: np.ndarray | None = None
    activity: np.ndarray | None = None

    def __post_init__(self):
        self.stamp = np.atleast_1d(np.asarray(self.stamp, dtype=float))
        self.itd = np.atleast_1d(np.asarray(self.itd, dtype=float))
        self.weight = np.atleast_1d(np.asarray(self.weight, dtype=float))
        n = len(self.stamp)
        if self.stamp.ndim != 1 or self.itd.shape != (n,) or self.weight.shape != (n,):
            raise TrackerInputError(
                f"audio frames need stamp, itd and weight of one shape (F,), got "
                f"{self.stamp.shape}, {self.itd.shape}, {self.weight.shape}")
        if not np.all(np.isfinite(self.stamp)):
            raise TrackerInputError("audio frame stamps must be finite")
        if not np.all(np.isfinite(self.weight)) or np.any(self.weight < 0):
            raise TrackerInputError("audio frame weights must be finite and >= 0")
        if self.profile is not None:
            self.profile = np.asarray(self.profile, dtype=float)
            if self.profile.ndim != 2 or len(self.profile) != n:
                raise TrackerInputError(
                    f"audio frames' ITD profile must be (F, N) with F = {n}, got "
                    f"{self.profile.shape}")
            if not np.all(np.isfinite(self.profile)):
                raise TrackerInputError("audio frames' ITD profile must be finite")
        if self.activity is not None:
            self.activity = np.atleast_1d(np.asarray(self.activity, dtype=float))
            if self.activity.shape != (n,):
                raise TrackerInputError(
                    f"audio frames' activity must have the stamps' shape ({n},), got "
                    f"{self.activity.shape}")
            if not np.all(np.isfinite(self.activity)) or np.any(self.activity < 0):
                raise TrackerInputError("audio frames' activity must be finite and >= 0")

    def __len__(self) -> int:
        return len(self.stamp)

    @classmethod
    def from_features(cls, features) -> AudioFrames:
        """From :class:`~av_perception.core.audio.BinauralFeatures` (weight = activity x
        reliability)."""
        return cls(features.stamp, features.itd, features.weight,
                   getattr(features, "itd_profile", None), features.activity)

    @classmethod
    def empty(cls) -> AudioFrames:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0))

    def select(self, mask) -> AudioFrames:
        return AudioFrames(self.stamp[mask], self.itd[mask], self.weight[mask],
                           None if self.profile is None else self.profile[mask],
                           None if self.activity is None else self.activity[mask])

    @classmethod
    def concatenate(cls, a: AudioFrames, b: AudioFrames) -> AudioFrames:
        """Frames of ``a`` then ``b``; the profile is kept when both have one of one size,
        the activity when both have one (or one side has no frames)."""
        if not len(a):
            return b
        if not len(b):
            return a
        pa, pb = a.profile, b.profile
        profile = (np.concatenate([pa, pb]) if pa is not None and pb is not None
                   and pa.shape[1] == pb.shape[1] else None)
        activity = (np.concatenate([a.activity, b.activity])
                    if a.activity is not None and b.activity is not None else None)
        return cls(np.concatenate([a.stamp, b.stamp]), np.concatenate([a.itd, b.itd]),
                   np.concatenate([a.weight, b.weight]), profile, activity)


@dataclass
class EventObservations:
    """Audio-visual events of one fusion window (weighted-data EM clusters), the input of
    event births.

    position : (E, 3) m, left camera optical frame.  covariance : (E, 3, 3) m^2, position
    uncertainty.  visual_mass, audio_mass : (E,) >= 0.  out_of_view : (E,) bool, audio
    without visual support (position on the ITD cone at the fusion's default depth).
    stamp : s, end of the window (None: unknown, the time they are given at is used).
    spread : (E, 3, 3) m^2, covariance of each cluster's visual observations over the
    window (motion inflates it; default zero).
    """

    position: np.ndarray
    covariance: np.ndarray
    visual_mass: np.ndarray
    audio_mass: np.ndarray
    out_of_view: np.ndarray
    stamp: float | None = None
    spread: np.ndarray | None = None

    def __post_init__(self):
        self.position = np.asarray(self.position, dtype=float).reshape(-1, 3)
        n = len(self.position)
        self.covariance = np.asarray(self.covariance, dtype=float).reshape(n, 3, 3)
        self.spread = (np.zeros((n, 3, 3)) if self.spread is None
                       else np.asarray(self.spread, dtype=float).reshape(n, 3, 3))
        self.visual_mass = np.asarray(self.visual_mass, dtype=float).reshape(n)
        self.audio_mass = np.asarray(self.audio_mass, dtype=float).reshape(n)
        self.out_of_view = np.asarray(self.out_of_view, dtype=bool).reshape(n)
        finite = (np.all(np.isfinite(self.position)) and np.all(np.isfinite(self.covariance))
                  and np.all(np.isfinite(self.spread))
                  and np.all(np.isfinite(self.visual_mass))
                  and np.all(np.isfinite(self.audio_mass)))
        if not finite:
            raise TrackerInputError("events must have finite positions, covariances and masses")
        if np.any(self.visual_mass < 0) or np.any(self.audio_mass < 0):
            raise TrackerInputError("event masses must be >= 0")
        if n and np.any(np.linalg.eigvalsh(symmetrise(self.covariance)) <= 0):
            raise TrackerInputError("event covariances must be positive definite")

    def __len__(self) -> int:
        return len(self.position)

    @classmethod
    def from_events(cls, events) -> EventObservations:
        """From a list of :class:`~av_perception.core.av_clustering.AVEvent`."""
        return cls([e.position for e in events], [e.covariance for e in events],
                   [e.visual_mass for e in events], [e.audio_mass for e in events],
                   [e.out_of_view for e in events],
                   max((e.stamp for e in events), default=None),
                   [e.spread for e in events])


def check_stamp(stamp) -> float:
    """A stamp as float seconds; TrackerInputError unless it is a finite number."""
    try:
        s = float(stamp)
    except (TypeError, ValueError) as exc:
        raise TrackerInputError(f"stamp must be a number of seconds, got {stamp!r}") from exc
    if not math.isfinite(s):
        raise TrackerInputError(f"stamp must be finite, got {stamp!r}")
    return s


def check_lip(lip_llr, m: int) -> np.ndarray:
    """Lip evidence of M visual observations as (M,) floats (None: zeros); a non-finite
    value is unknown (0).  TrackerInputError on a wrong shape."""
    if lip_llr is None:
        return np.zeros(m)
    v = np.asarray(lip_llr, dtype=float).reshape(-1)
    if v.shape != (m,):
        raise TrackerInputError(f"lip_llr must have shape ({m},) like the observations, "
                                f"got {v.shape}")
    return np.where(np.isfinite(v), v, 0.0)


def check_visual(xyz, covariance, weight):
    """Visual observations as arrays ((M, 3) m, (M, 3, 3) m^2, (M,) weights, default 1);
    TrackerInputError unless shapes, values and covariances are valid."""
    xyz = np.asarray(xyz, dtype=float)
    if xyz.ndim == 1 and xyz.size == 0:
        xyz = xyz.reshape(0, 3)
    cov = np.asarray(covariance, dtype=float)
    if cov.size == 0:
        cov = cov.reshape(0, 3, 3)
    m = len(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise TrackerInputError(f"xyz must have shape (M, 3), got {xyz.shape}")
    if cov.shape != (m, 3, 3):
        raise TrackerInputError(f"covariance must have shape ({m}, 3, 3), got {cov.shape}")
    w = np.ones(m) if weight is None else np.asarray(weight, dtype=float).reshape(-1)
    if w.shape != (m,):
        raise TrackerInputError(f"weight must have shape ({m},), got {w.shape}")
    if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(cov)) and np.all(np.isfinite(w))):
        raise TrackerInputError("visual observations contain NaN or infinite values")
    if np.any(w < 0):
        raise TrackerInputError("visual weights must be >= 0")
    if m:
        if not np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=1e-6, atol=1e-12):
            raise TrackerInputError("visual covariances must be symmetric")
        if np.any(np.linalg.eigvalsh(cov)[:, 0] <= 0):
            raise TrackerInputError("visual covariances must be positive definite")
    return xyz, cov, w
