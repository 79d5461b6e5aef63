"""Head trajectories: piecewise-linear waypoints in the left camera optical frame.

A trajectory is a list of waypoints ``(t, x, y, z)`` (seconds, metres; x right,
y down, z forward).  Between waypoints the head moves on a straight line at
constant speed; before the first and after the last waypoint it stands still.
An optional *sway* adds a small, smooth head motion (two incommensurate
sinusoids per axis) so that standing people are not perfectly still.

The builders (:func:`still`, :func:`walk`) produce waypoint lists for the presets.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Trajectory", "still", "walk"]


class Trajectory:
    """Position of a head over time.

    Parameters
    ----------
    waypoints : array-like (K, 4)
        Rows ``(t, x, y, z)`` with strictly increasing ``t`` (K >= 1).
    sway : float
        Amplitude in metres of the small idle head motion (0 = none).
    phase : float
        Phase offset of the sway (radians), so that people sway differently.
    """

    def __init__(self, waypoints, sway: float = 0.0, phase: float = 0.0):
        w = np.asarray(waypoints, dtype=float)
        if w.ndim != 2 or w.shape[1] != 4 or len(w) < 1:
            raise ValueError(f"waypoints must be a list of (t, x, y, z) rows, got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("waypoints contain NaN or infinite values")
        if len(w) > 1 and np.any(np.diff(w[:, 0]) <= 0):
            raise ValueError(f"waypoint times must be strictly increasing, got {w[:, 0].tolist()}")
        if sway < 0:
            raise ValueError(f"sway must be >= 0, got {sway}")
        self.waypoints = w
        self.sway = float(sway)
        self.phase = float(phase)

    def position(self, t) -> np.ndarray:
        """Head positions (N, 3) at times ``t`` (N,) in seconds."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        w = self.waypoints
        if len(w) == 1:
            p = np.repeat(w[:, 1:], len(t), axis=0)
        else:
            p = np.stack([np.interp(t, w[:, 0], w[:, k]) for k in (1, 2, 3)], axis=1)
        if self.sway > 0:
            ph = self.phase
            w = 2 * np.pi * t
            p = p + self.sway * np.stack([
                0.6 * np.sin(0.23 * w + ph) + 0.4 * np.sin(0.61 * w + 2 * ph),
                0.3 * np.sin(0.37 * w + 3 * ph),
                0.5 * np.sin(0.17 * w + 5 * ph) + 0.3 * np.sin(0.43 * w + ph),
            ], axis=1)
        return p

    def max_speed(self) -> float:
        """Largest waypoint-to-waypoint speed in m/s (sway excluded)."""
        w = self.waypoints
        if len(w) < 2:
            return 0.0
        d = np.linalg.norm(np.diff(w[:, 1:], axis=0), axis=1)
        return float(np.max(d / np.diff(w[:, 0])))

    def is_static(self) -> bool:
        """True when the head never moves (one waypoint or all equal, and no sway)."""
        w = self.waypoints
        return self.sway == 0 and bool(np.all(np.ptp(w[:, 1:], axis=0) == 0))


def still(position) -> list[list[float]]:
    """Waypoints of a person standing at ``position`` (x, y, z) for the whole scene."""
    x, y, z = (float(v) for v in position)
    return [[0.0, x, y, z]]


def walk(points, speed: float, start: float = 0.0, pauses=None) -> list[list[float]]:
    """Waypoints of a walk through ``points`` at ``speed`` m/s.

    Parameters
    ----------
    points : sequence of (x, y, z)
        Positions visited in order; the person stands at the first one until ``start``.
    speed : float
        Walking speed in m/s (> 0).
    start : float
        Time (s) at which the walk leaves the first point.
    pauses : sequence of float, optional
        ``pauses[k]`` is how long (s) the person stands at intermediate point ``k + 1``
        before walking on (length ``len(points) - 2``).
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 1:
        raise ValueError("points must be a list of (x, y, z)")
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    pauses = list(pauses) if pauses is not None else [0.0] * max(len(pts) - 2, 0)
    if len(pauses) != max(len(pts) - 2, 0):
        raise ValueError(f"pauses must have {max(len(pts) - 2, 0)} entries, got {len(pauses)}")
    t = float(start)
    out = [[t, *pts[0]]]
    for k in range(1, len(pts)):
        t += float(np.linalg.norm(pts[k] - pts[k - 1])) / speed
        out.append([t, *pts[k]])
        if k < len(pts) - 1 and pauses[k - 1] > 0:
            t += float(pauses[k - 1])
            out.append([t, *pts[k]])
    return [[float(v) for v in row] for row in out]
