"""What a window reports: one :class:`AVEvent` per cluster (position, uncertainty,
masses, ITD, out-of-view flag, label) and the :class:`AVWindowResult`."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import wdem
from .clusters import _Clusters
from .window import _Window


@dataclass
class AVEvent:
    """One audio-visual cluster of a window.

    position : (3,) m, left camera optical frame (on the ITD cone at ``default_depth`` when
        out of view).
    covariance : (3, 3) m^2, uncertainty of the position (inverse Gauss-Newton information;
        ``out_of_view_std`` along the directions an ITD does not constrain).
    spread : (3, 3) m^2, covariance of the cluster's visual observations: Sigma_k for FWD,
        Sigma_k / c(nu, 3) for WD (Sigma_k is then a Student-t scale; see
        ``wdem.t_scale_factor``).
    visual_mass, audio_mass : sums of weight x responsibility over the window.
    itd, itd_std : s, the cluster's ITD G(S_k) (or tau_k when out of view) and its spread.
    out_of_view : True when the cluster has audio but no visual support.
    label : int, kept across windows (warm start), new for every birth.
    stamp : s, end of the window.
    """

    position: np.ndarray
    covariance: np.ndarray
    spread: np.ndarray
    visual_mass: float
    audio_mass: float
    itd: float
    itd_std: float
    out_of_view: bool
    label: int
    stamp: float = 0.0


@dataclass
class AVWindowResult:
    """Clustering of one window.

    events : list of AVEvent (one per cluster).
    visual_responsibilities : (N_v, K + 1), last column = visual clutter.
    audio_responsibilities : (N_a, K + 1), last column = audio clutter.
    log_likelihood : history of the last EM run of the window.
    n_iter : EM iterations over the whole window (all runs).
    state : opaque warm start for the next window (pass as ``previous``).
    """

    events: list
    visual_responsibilities: np.ndarray
    audio_responsibilities: np.ndarray
    log_likelihood: np.ndarray
    n_iter: int
    state: object


def _events(win: _Window, cl: _Clusters, e, stamp) -> list[AVEvent]:
    cfg = win.cfg
    K = cl.K
    if K == 0:
        return []
    mv, ma = win.masses(e, K)
    pos = cl.pos.copy()
    ao = np.flatnonzero(cl.audio_only)
    if len(ao):
        pos[ao] = win.geometry.point_from_itd(cl.itd[ao], cfg.default_depth)
    J = win.geometry.itd_jacobian(pos)
    # the cluster's spread as a covariance (under WD-EM Sigma_k is a Student-t scale)
    to_cov = 1.0 if win.variant == "fwd" else 1.0 / wdem.t_scale_factor(
        wdem.WD_DEGREES_OF_FREEDOM, 3)
    events = []
    for k in range(K):
        if cl.audio_only[k]:
            g = J[k]
            gg = float(g @ g)
            proj = np.outer(g, g) / gg
            n_eff = max(float(ma[k]), 1.0)
            cov = proj * (cl.avar[k] / n_eff) / gg + (np.eye(3) - proj) * cfg.out_of_view_std ** 2
        else:
            info = cl.info[k] if cl.info is not None else np.eye(3)
            cov = np.linalg.inv(info)
        events.append(AVEvent(
            position=pos[k], covariance=0.5 * (cov + cov.T), spread=cl.vcov[k] * to_cov,
            visual_mass=float(mv[k]), audio_mass=float(ma[k]), itd=float(cl.itd[k]),
            itd_std=float(math.sqrt(cl.avar[k])), out_of_view=bool(cl.audio_only[k]),
            label=int(cl.labels[k]), stamp=float(stamp)))
    return events


def _expand(eta, keep, K):
    full = np.zeros((len(keep), K + 1))
    full[:, K] = 1.0
    if eta is not None:
        full[keep] = eta
    return full
