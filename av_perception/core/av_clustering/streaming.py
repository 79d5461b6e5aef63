"""Sliding-window clustering of a stream of stamped observations: keeps the last
``window_length`` seconds and clusters them every ``hop_length``, warm-started."""
from __future__ import annotations

import math

import numpy as np

from .. import wdem
from ..config import MicArrayConfig
from ..geometry import MicGeometry
from ..head import make_head_model
from .clustering import cluster_window
from .config import AVClusteringConfig
from .events import AVEvent, AVWindowResult
from .shrink import ItdShrinkEstimate
from .window import _validate_inputs

#: more hops than this behind the data time are skipped in one step (a stamp far ahead
#: must not cost one loop iteration per hop)
_MAX_CATCH_UP = 1000


class AVClusterer:
    """Sliding-window audio-visual clustering (the fusion stage).

    Parameters
    ----------
    config : AVClusteringConfig
    geometry : MicGeometry or MicArrayConfig
    wdem_config : WdemConfig (E-step variant and the K search of visual births)
    use_numba : numba kernel (default) or numpy reference for the window EM
    """

    def __init__(self, config: AVClusteringConfig | None = None, geometry=None,
                 wdem_config: wdem.WdemConfig | None = None, use_numba: bool = True):
        self.use_numba = bool(use_numba)
        self.config = config or AVClusteringConfig()
        if geometry is None:
            geometry = MicArrayConfig()
        self.geometry = (geometry if isinstance(geometry, MicGeometry)
                         else make_head_model(geometry))
        self.wdem_config = wdem_config or wdem.WdemConfig()
        self.reset()

    def reset(self):
        """Forget every observation and cluster."""
        self._vt = np.zeros(0)
        self._vx = np.zeros((0, 3))
        self._vw = np.zeros(0)
        self._vc = np.zeros((0, 3, 3))
        self._has_cov = None
        self._at = np.zeros(0)
        self._ax = np.zeros(0)
        self._aw = np.zeros(0)
        self._now = -math.inf
        self._next = None
        self._state = None
        self._shrink = ItdShrinkEstimate(self.config)
        self.last_result: AVWindowResult | None = None

    @property
    def itd_shrink(self) -> float:
        """Current reverberation shrink b (1/m) of the ITD model (estimated or fixed)."""
        return self._shrink.value

    def update(self, t, visual_points=None, visual_weights=None, itds=None, itd_weights=None,
               visual_covariances=None, itd_stamps=None) -> list[AVEvent]:
        """Add observations stamped ``t`` (s) and cluster the window when a hop is due.

        Parameters
        ----------
        t : float, s; stamp of the visual observations (and of the ITDs unless
            ``itd_stamps`` is given).  Observations may arrive slightly out of order; the
            window ends at the latest stamp seen.
        visual_points, visual_weights, visual_covariances, itds, itd_weights :
            as in :func:`cluster_window` (any may be None or empty).
        itd_stamps : optional (N_a,) s, one stamp per ITD (audio frame centres).

        Returns
        -------
        list of AVEvent: the clusters of the window ending now when a hop was due, else [].
        """
        if not np.isfinite(t):
            raise ValueError(f"t={t!r} must be a finite time in seconds")
        X, wv, C, tau, wa = _validate_inputs(visual_points, visual_weights, itds, itd_weights,
                                             visual_covariances)
        if len(X):
            if self._has_cov is None:
                self._has_cov = C is not None
            elif self._has_cov != (C is not None):
                raise ValueError("give visual_covariances with every visual batch or never")
            self._vt = np.concatenate([self._vt, np.full(len(X), float(t))])
            self._vx = np.concatenate([self._vx, X])
            self._vw = np.concatenate([self._vw, wv])
            if C is not None:
                self._vc = np.concatenate([self._vc, C])
        if len(tau):
            ts = np.full(len(tau), float(t)) if itd_stamps is None else np.asarray(
                itd_stamps, dtype=np.float64)
            if ts.shape != tau.shape or not np.all(np.isfinite(ts)):
                raise ValueError(f"itd_stamps must be finite with shape {tau.shape}")
            self._at = np.concatenate([self._at, ts])
            self._ax = np.concatenate([self._ax, tau])
            self._aw = np.concatenate([self._aw, wa])
            self._now = max(self._now, float(ts.max()))
        self._now = max(self._now, float(t))
        if self._next is None:
            self._next = self._now + self.config.hop_length
            return []
        if self._now < self._next:
            return []
        hop = self.config.hop_length
        behind = self._now - self._next
        if behind > _MAX_CATCH_UP * hop:  # a jump ahead in data time: skip the hops at once
            self._next += math.floor(behind / hop) * hop
        while self._next <= self._now:
            if self._next + hop == self._next:
                raise ValueError(f"t={self._now!r} s is too large for hops of {hop} s")
            self._next += hop
        return self._cluster()

    def window_data(self) -> dict:
        """The observations of the last clustered window, as :func:`cluster_window` takes
        them: ``visual_points`` (N_v, 3) m, ``visual_weights`` (N_v,),
        ``visual_covariances`` (N_v, 3, 3) m² or None, ``itds`` (N_a,) s and
        ``itd_weights`` (N_a,)."""
        return {"visual_points": self._vx.copy(), "visual_weights": self._vw.copy(),
                "visual_covariances": self._vc.copy() if self._has_cov else None,
                "itds": self._ax.copy(), "itd_weights": self._aw.copy()}

    def _cluster(self) -> list[AVEvent]:
        start = self._now - self.config.window_length
        kv = self._vt > start
        ka = self._at > start
        self._vt, self._vx, self._vw = self._vt[kv], self._vx[kv], self._vw[kv]
        if self._has_cov:
            self._vc = self._vc[kv]
        self._at, self._ax, self._aw = self._at[ka], self._ax[ka], self._aw[ka]
        result = cluster_window(self._vx, self._vw, self._ax, self._aw, self.geometry,
                                self.config, self.wdem_config,
                                self._vc if self._has_cov else None, self._state, self._now,
                                self.use_numba, self._shrink.value)
        self._state = result.state
        if result.events and len(self._ax):
            eta = result.audio_responsibilities[:, :-1] * self._aw[:, None]
            s = eta.sum(axis=0)
            tau = np.where(self._aw > 0, self._ax, 0.0)
            tbar = np.where(s > 0, (eta * tau[:, None]).sum(axis=0) / np.maximum(s, 1e-300),
                            np.nan)
            ev = result.events
            self._shrink.update(self.geometry, np.array([e.position for e in ev]), tbar,
                                np.array([e.audio_mass for e in ev]),
                                np.array([0.0 if e.out_of_view else e.visual_mass for e in ev]))
        self.last_result = result
        return result.events
