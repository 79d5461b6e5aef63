"""The reverberation shrink of the ITD in the clustering's audio model.

In a room the front-end's ITDs of a talker are its direct-path ITD G(S) shrunk towards 0
by the early reflections (floor and ceiling images arrive inside the frame with the
same azimuth and a smaller lateral angle), more with distance.  The window EM models
an ITD as tau ~ N((1 - b d) G(S), sigma_k^2 / w), d = |S - mic centre| (the tracker's
model, :func:`~av_perception.core.tracking.models.itd_model`), with b (1/m) estimated
across windows from the seen clusters' ITDs (:class:`ItdShrinkEstimate`).  Without it a
talker's tight, shrunk ITDs pull its visually placed cluster off the person, mostly
along the direction in which vision is weakest (depth).
"""
from __future__ import annotations

import math

import numpy as np

#: the model's factor 1 - b d never falls below this (b d <= 0.8)
MIN_FACTOR = 0.2


class ShrunkItdModel:
    """A binaural model whose ITD is shrunk: (1 - b d) G(S), d the distance to the mics'
    centre.  Everything else (``kernel_arrays``, ``max_itd``, ...) is the wrapped model's.

    Parameters
    ----------
    geometry : MicGeometry or head model
    shrink : float
        b, 1/m (0 = the wrapped model).
    """

    def __init__(self, geometry, shrink: float):
        if not (math.isfinite(shrink) and shrink >= 0.0):
            raise ValueError(f"ITD shrink {shrink!r} must be finite and >= 0 (1/m)")
        self.base = geometry
        self.shrink = float(shrink)

    def __getattr__(self, name):
        return getattr(self.base, name)

    def _factor(self, p):
        rel = p - self.base.centre
        d = np.maximum(np.linalg.norm(rel, axis=1), 1e-9)
        f = 1.0 - self.shrink * d
        return f, rel, d

    def itd(self, points) -> np.ndarray:
        """Expected ITD (s) of points (N, 3)."""
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        G = self.base.itd(p)
        if self.shrink == 0.0:
            return G
        f, _, _ = self._factor(p)
        return np.maximum(f, MIN_FACTOR) * G

    def itd_jacobian(self, points) -> np.ndarray:
        """Gradient (N, 3) s/m of :meth:`itd`."""
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        J = self.base.itd_jacobian(p)
        if self.shrink == 0.0:
            return J
        G = self.base.itd(p)
        f, rel, d = self._factor(p)
        low = f < MIN_FACTOR
        dJ = np.where(low[:, None], 0.0, (self.shrink * G / d)[:, None] * rel)
        return np.maximum(f, MIN_FACTOR)[:, None] * J - dJ

    def point_from_itd(self, itd, distance) -> np.ndarray:
        """Points at ``distance`` (m) whose expected ITD is ``itd`` (s)."""
        f = max(1.0 - self.shrink * float(distance), MIN_FACTOR)
        return self.base.point_from_itd(np.asarray(itd, dtype=np.float64) / f, distance)


class ItdShrinkEstimate:
    """Running MAP estimate of the shrink b from the seen clusters of successive windows.

    Per window, each cluster seen (visual mass >= ``min_visual_mass``) and heard (audio
    mass >= ``min_audio_mass``) adds its weighted mean ITD tbar_k against its position:
    least squares of G - tbar = b d G with weights (audio mass x hop / window) /
    ``audio_std_init``^2, sums decaying with ``itd_shrink_memory`` s, Gaussian prior
    N(``itd_shrink_per_m``, ``itd_shrink_prior_sigma``^2); clipped to [0, 0.3].
    """

    def __init__(self, config):
        self.config = config
        self.value = float(config.itd_shrink_per_m)
        self._num = 0.0
        self._den = 0.0

    def update(self, geometry, positions, tbar, audio_mass, visual_mass) -> float:
        """Add one window's clusters (arrays (K, 3), (K,), (K,), (K,)); returns b (1/m).

        ``geometry`` is the unshrunk binaural model."""
        c = self.config
        if not c.estimate_itd_shrink:
            return self.value
        decay = math.exp(-c.hop_length / c.itd_shrink_memory)
        self._num *= decay
        self._den *= decay
        use = ((np.asarray(visual_mass) >= c.min_visual_mass)
               & (np.asarray(audio_mass) >= c.min_audio_mass) & np.isfinite(tbar))
        if np.any(use):
            p = np.asarray(positions, dtype=np.float64)[use]
            G = geometry.itd(p)
            dG = np.linalg.norm(p - geometry.centre, axis=1) * G
            wt = (np.asarray(audio_mass)[use] * c.hop_length / c.window_length
                  / c.audio_std_init ** 2)
            self._num += float(np.sum(wt * (G - np.asarray(tbar)[use]) * dG))
            self._den += float(np.sum(wt * dG * dG))
        prior = 1.0 / c.itd_shrink_prior_sigma ** 2
        b = (self._num + prior * c.itd_shrink_per_m) / (self._den + prior)
        self.value = float(np.clip(b, 0.0, 0.3))
        return self.value
