"""Output of the multi-speaker tracker: the reported tracks at one stamp."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TrackerOutput"]


@dataclass
class TrackerOutput:
    """The reported tracks at one stamp (K of them), left camera optical frame.

    Attributes
    ----------
    stamp : float
        Seconds.
    ids : (K,) int64
        Track identities (never reused).
    position : (K, 3)
        m.
    covariance : (K, 3, 3)
        m^2, position covariance.
    velocity : (K, 3)
        m/s.
    existence : (K,)
        Existence probability.
    speaking : (K,)
        Probability that the person speaks (HMM posterior); 0 with audio disabled.
    audio_only : (K,) bool
        No visual support for ``visual_timeout`` s (e.g. a talker out of view).
    ended : (E,) int64
        Identities of the tracks that ended since the previous output.
    attention : AttentionTarget or None
        The person to look at (:class:`~av_perception.core.attention.AttentionSelector`),
        set by the :class:`~av_perception.pipeline.TrackingPipeline` when
        ``attention.enabled``; None otherwise.
    """

    stamp: float
    ids: np.ndarray
    position: np.ndarray
    covariance: np.ndarray
    velocity: np.ndarray
    existence: np.ndarray
    speaking: np.ndarray
    audio_only: np.ndarray
    ended: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    attention: object = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def variances(self) -> np.ndarray:
        """(K, 3) var_x, var_y, var_z in m^2."""
        return np.diagonal(self.covariance, axis1=1, axis2=2).copy()

    def rows(self, include_audio_only: bool = True) -> list[tuple]:
        """Track-file rows ``(stamp, track_id, x, y, z, speaking)``, optionally without the
        audio-only tracks."""
        return [(self.stamp, int(i), float(p[0]), float(p[1]), float(p[2]), float(s))
                for i, p, s, a in zip(self.ids, self.position, self.speaking, self.audio_only)
                if include_audio_only or not a]
