"""Audio-visual clustering in 3D: a conjugate weighted-data mixture over sliding windows.

Cluster k is a 3D position S_k (left camera optical frame, m) seen as visual points
x_j ~ N(S_k, (Sigma_k + C_j) / w_j) and as ITDs tau_i ~ N((1 - b d_k) G(S_k), sigma_k^2 /
w_i), G the binaural model's ITD, b the room's reverberation shrink (``shrink``: estimated
across windows), d_k the distance, each modality with its own proportions and uniform
outlier class;
FWD- or WD-EM E-steps (:mod:`~av_perception.core.wdem`), Gauss-Newton M-steps on S_k.
A cluster heard but not seen is kept as an ITD, reported on its cone at
``default_depth``.  Modules: ``config``, ``clusters`` (window state), ``window``
(observations and numpy EM), ``kernels`` (numba EM), ``births`` (births, deaths,
merges), ``events`` (results), ``clustering`` (one window), ``streaming``
(:class:`AVClusterer`)."""
from __future__ import annotations

from .births import dense_cores
from .clustering import cluster_window, warm_up
from .config import AVClusteringConfig
from .events import AVEvent, AVWindowResult
from .streaming import AVClusterer

__all__ = [
    "AVClusteringConfig",
    "AVEvent",
    "AVWindowResult",
    "AVClusterer",
    "cluster_window",
    "dense_cores",
    "warm_up",
]
