"""Self-calibration of the binaural model from what the robot sees.

:class:`HeadCalibrator` collects (direction, measured ITD) pairs of people who are both
seen and heard, and fits the head model's parameters (sphere radius and ear azimuth, a
measured table's ITD scale, or a sphere replacing free field) with a robust loss; the
fit is a dict of :class:`~av_perception.core.config.MicArrayConfig` fields that io
writes to ``mics.calibration_file``.  Guards against wrong associations and the fitted
ranges: docs/algorithms.md, "Self-calibration from vision".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.optimize

from .config import StageConfig, param
from .geometry import MicGeometry
from .head import MeasuredHead, SphericalHead, model_itd_reference, woodworth_itd

__all__ = ["HeadCalibrationConfig", "HeadCalibrator", "CalibrationFit"]


@dataclass(frozen=True)
class HeadCalibrationConfig(StageConfig):
    """Online self-calibration of the binaural model from seen-and-heard tracks."""

    SECTION: ClassVar[str] = "head_calibration"

    enabled: bool = param(
        False, "Fit the binaural model (mics.head_model) online from audio frames of "
        "tracks that are both seen and speaking; the result is written to "
        "mics.calibration_file when that is set.")
    min_samples: int = param(
        150, "Audio frames needed before the first fit.", low=10, high=100000)
    min_lateral_samples: int = param(
        60, "Of those, frames more than min_lateral_angle off the median plane.",
        low=0, high=100000)
    min_lateral_angle: float = param(
        10.0, "Lateral angle (deg) beyond which a sample constrains the head size.",
        low=0.0, high=80.0)
    min_speaking: float = param(
        0.5, "Speaking probability of the only speaking seen track.", low=0.0, high=1.0)
    min_weight: float = param(
        0.3, "Smallest audio frame weight (activity x reliability) used.", low=0.0, high=1.0)
    loss_scale: float = param(
        5.0e-5, "Scale (s) of the Cauchy loss on the ITD residual.", low=1e-6, high=1e-3)
    refit_interval: float = param(
        1.0, "Seconds between fits.", low=0.05, high=3600.0)
    max_samples: int = param(
        4000, "Samples kept (the newest).", low=100, high=1000000)
    min_improvement: float = param(
        0.1, "Relative drop of the robust cost a new model family (sphere instead of free "
        "field) must bring to replace the current one.", low=0.0, high=0.9)


@dataclass
class CalibrationFit:
    """One fit: the MicArrayConfig fields, the model, and its evidence."""

    params: dict
    model: MicGeometry
    samples: int
    cost: float
    previous_cost: float
    stamp: float


def _cauchy(r, scale):
    return float(np.sum(np.log1p((r / scale) ** 2)))


class HeadCalibrator:
    """Collects (3D position, ITD) pairs of seen speakers and fits the binaural model.

    Parameters
    ----------
    config : HeadCalibrationConfig
    model : MicGeometry
        The starting model (any of :mod:`av_perception.core.head`).
    """

    def __init__(self, config: HeadCalibrationConfig, model: MicGeometry):
        self.config = config
        self.model = model
        self._pos = np.zeros((0, 3))
        self._itd = np.zeros(0)
        self._w = np.zeros(0)
        self._shrink = np.zeros(0)  # (1 - b d) of the tracker at sample time
        self._last_fit = -math.inf
        self.fits: list[CalibrationFit] = []
        self.rejected = {"no_single_speaker": 0, "not_nearest": 0, "weight": 0}

    @property
    def n_samples(self) -> int:
        return len(self._itd)

    # ------------------------------------------------------------------ samples
    def add_samples(self, positions, itds, weights, shrink=None) -> None:
        """Add labelled samples directly: positions (N, 3) m, ITDs (N,) s, weights (N,),
        shrink factors (N,) (default 1: no reverberation shrink)."""
        p = np.asarray(positions, dtype=float).reshape(-1, 3)
        g = np.asarray(itds, dtype=float).reshape(-1)
        w = np.asarray(weights, dtype=float).reshape(-1)
        f = np.ones(len(g)) if shrink is None else np.asarray(shrink, dtype=float).reshape(-1)
        if not (len(p) == len(g) == len(w) == len(f)):
            raise ValueError("positions, itds, weights and shrink must have the same length")
        ok = np.all(np.isfinite(p), axis=1) & np.isfinite(g) & np.isfinite(w) & (w > 0)
        n = self.config.max_samples
        self._pos = np.concatenate([self._pos, p[ok]])[-n:]
        self._itd = np.concatenate([self._itd, g[ok]])[-n:]
        self._w = np.concatenate([self._w, w[ok]])[-n:]
        self._shrink = np.concatenate([self._shrink, f[ok]])[-n:]

    def observe(self, stamp: float, output, frames, shrink_per_m: float = 0.0):
        """Take the samples of one tracker step.

        Parameters
        ----------
        stamp : float
            s, the step's time.
        output : TrackerOutput
            The tracker's output of this step (``position``, ``speaking``, ``audio_only``).
        frames : AudioFrames or None
            The audio frames of this step (``itd``, ``weight``).
        shrink_per_m : float
            The tracker's current ITD shrink b (1/m).

        Returns
        -------
        CalibrationFit or None
            A new fit when one was made and accepted (then :attr:`model` is its model).
        """
        c = self.config
        if frames is not None and len(frames.itd) and len(output.position):
            seen = ~np.asarray(output.audio_only, dtype=bool)
            pos = np.asarray(output.position, dtype=float)[seen]
            spk = np.asarray(output.speaking, dtype=float)[seen]
            g = np.asarray(frames.itd, dtype=float)
            w = np.asarray(frames.weight, dtype=float)
            use = np.isfinite(g) & (w >= c.min_weight)
            self.rejected["weight"] += int(np.sum(~use))
            talking = np.flatnonzero(spk >= c.min_speaking)
            if len(talking) != 1:
                self.rejected["no_single_speaker"] += int(np.sum(use))
            elif np.any(use):
                k = int(talking[0])
                pred = self.model.itd(pos)
                near = np.argmin(np.abs(g[use, None] - pred[None, :]), axis=1) == k
                self.rejected["not_nearest"] += int(np.sum(~near))
                n = int(np.sum(near))
                if n:
                    d = np.linalg.norm(pos[k] - self.model.centre)
                    self.add_samples(np.repeat(pos[k][None], n, axis=0), g[use][near],
                                     w[use][near], np.full(n, 1.0 - shrink_per_m * d))
        if stamp - self._last_fit < c.refit_interval:
            return None
        self._last_fit = stamp
        return self.fit(stamp)

    def update(self, tracker, output, frames) -> CalibrationFit | None:
        """:meth:`observe` one tracker step; a new fit replaces ``tracker.geometry``."""
        fit = self.observe(output.stamp, output, frames, tracker.itd_shrink)
        if fit is not None:
            tracker.geometry = fit.model
        return fit

    # ------------------------------------------------------------------ fit
    def enough_evidence(self) -> bool:
        c = self.config
        if self.n_samples < c.min_samples:
            return False
        rel = self._pos - self.model.centre
        lat = np.degrees(np.arcsin(np.clip(
            rel @ self.model.axis / np.maximum(np.linalg.norm(rel, axis=1), 1e-9), -1, 1)))
        return int(np.sum(np.abs(lat) >= c.min_lateral_angle)) >= c.min_lateral_samples

    def _residual_sphere(self, theta, m: MicGeometry):
        r, ear = theta
        fwd, axis = m.forward, m.axis
        up = np.cross(fwd, axis)
        centre = 0.5 * (m.left + m.right) - r * math.cos(ear) * fwd
        rel = self._pos - centre
        head = np.stack([rel @ fwd, rel @ axis, rel @ up], axis=1)
        pred = woodworth_itd(head, r, ear, 0.0, m.speed_of_sound)
        return np.sqrt(self._w) * (self._itd - self._shrink * pred)

    def _cost_of(self, model: MicGeometry) -> float:
        r = np.sqrt(self._w) * (self._itd - self._shrink * model.itd(self._pos))
        return _cauchy(r, self.config.loss_scale)

    def fit(self, stamp: float = 0.0) -> CalibrationFit | None:
        """Fit the model to the samples (if there is enough evidence); the fit is
        accepted (and becomes :attr:`model`) when it lowers the robust cost.  A fitted
        sphere carries no ILD table (the tracker uses the ITD only; the front-end builds
        its own model, with ILD, from the calibration file at the next start)."""
        if not self.enough_evidence():
            return None
        c = self.config
        m = self.model
        before = self._cost_of(m)
        if isinstance(m, MeasuredHead):
            frame, table = m.kernel_arrays()
            base = model_itd_reference(self._pos, frame, m.base_table.itd)[0] * self._shrink

            def res(theta):
                return np.sqrt(self._w) * (self._itd - theta[0] * base)

            sol = scipy.optimize.least_squares(res, [m.itd_scale], bounds=([0.3], [3.0]),
                                               loss="cauchy", f_scale=c.loss_scale)
            new = m.with_parameters(itd_scale=float(sol.x[0]))
            params = {"head_model": "measured", "itd_scale": float(sol.x[0])}
        else:
            if isinstance(m, SphericalHead):
                x0 = [m.radius, m.ear_azimuth]
            else:
                x0 = [0.5 * m.spacing, math.pi / 2]
            sol = scipy.optimize.least_squares(
                self._residual_sphere, x0, args=(m,),
                bounds=([0.03, math.radians(80.0)], [0.3, math.radians(110.0)]),
                loss="cauchy", f_scale=c.loss_scale, x_scale=[0.01, 0.1])
            r, ear = float(sol.x[0]), float(sol.x[1])
            new = SphericalHead(m.left, m.right, r, ear, 0.0, m.speed_of_sound)
            params = {"head_model": "spherical_head", "head_radius": r,
                      "ear_azimuth": math.degrees(ear), "ear_elevation": 0.0}
        after = self._cost_of(new)
        family_change = new.kind != m.kind
        need = before * (1.0 - c.min_improvement) if family_change else before
        if not after < need:
            return None
        self.model = new
        fit = CalibrationFit(params, new, self.n_samples, after, before, float(stamp))
        self.fits.append(fit)
        return fit
