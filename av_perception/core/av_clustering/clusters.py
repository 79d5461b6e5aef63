"""The clusters of a window (positions, spreads, ITDs, mixing proportions, labels) and
the warm start carried from one window to the next."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_PI_FLOOR = 1e-8  # smallest mixing proportion after an M-step


@dataclass
class _Clusters:
    pos: np.ndarray  # (K, 3)
    vcov: np.ndarray  # (K, 3, 3)
    itd: np.ndarray  # (K,) G(S_k), or the free ITD of audio-only clusters
    avar: np.ndarray  # (K,) s^2
    audio_only: np.ndarray  # (K,) bool
    labels: np.ndarray  # (K,) int
    pi_v: np.ndarray  # (K + 1,), last = visual outlier
    pi_a: np.ndarray  # (K + 1,), last = audio outlier
    info: np.ndarray = field(default=None)  # (K, 3, 3) Gauss-Newton information

    @property
    def K(self):
        return len(self.labels)

    def subset(self, keep):
        keep = np.asarray(keep, dtype=bool)
        pv = np.concatenate([self.pi_v[:-1][keep], self.pi_v[-1:]])
        pa = np.concatenate([self.pi_a[:-1][keep], self.pi_a[-1:]])
        return _Clusters(self.pos[keep], self.vcov[keep], self.itd[keep], self.avar[keep],
                         self.audio_only[keep], self.labels[keep], pv / pv.sum(), pa / pa.sum(),
                         None if self.info is None else self.info[keep])

    @staticmethod
    def empty():
        return _Clusters(np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros(0), np.zeros(0),
                         np.zeros(0, bool), np.zeros(0, np.int64), np.ones(1), np.ones(1))

    def copy(self):
        return _Clusters(self.pos.copy(), self.vcov.copy(), self.itd.copy(), self.avar.copy(),
                         self.audio_only.copy(), self.labels.copy(), self.pi_v.copy(),
                         self.pi_a.copy(), None if self.info is None else self.info.copy())


@dataclass
class _State:
    clusters: _Clusters
    next_label: int
