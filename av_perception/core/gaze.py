"""A gaze controller: pan and tilt joint angles that turn a head towards a target point.

:class:`GazeController` turns a pan/tilt head (pan about the neck's up axis, positive to
the left; tilt about the camera x axis, positive up) towards a target given in the
*neck frame* (the rest camera optical frame: x right, y down, z forward; pan = tilt = 0
looks along +z).  The target it aims at is the one it was given ``reaction_delay`` s
earlier (a robot reacts late); it turns at up to ``max_speed`` and stays within
+-``pan_limit`` / +-``tilt_limit``.  Without a target it keeps its aim.  Used by the
simulator's closed loop (``simulate --head-motion attention``) and by the simulated head
of ``replay --gaze`` (docs/simulation.md, "Closed loop").  Pure numpy, no ROS.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .config import StageConfig, param

__all__ = ["GazeConfig", "GazeLimits", "GazeController", "pan_tilt_towards",
           "head_rotation", "ROS_TO_OPTICAL"]

#: neck-frame (rest optical: x right, y down, z forward) components of ROS body axes
#: (x forward, y left, z up): p_optical = ROS_TO_OPTICAL @ p_ros
ROS_TO_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class GazeLimits:
    """How the head can move: max_speed (deg/s), reaction_delay (s), pan_limit and
    tilt_limit (deg either side)."""

    max_speed: float = 60.0
    reaction_delay: float = 0.4
    pan_limit: float = 40.0
    tilt_limit: float = 0.0

    def __post_init__(self):
        if not 1.0 <= self.max_speed <= 360.0:
            raise ValueError(f"gaze max_speed must be in [1, 360] deg/s, got {self.max_speed}")
        if not 0.0 <= self.reaction_delay <= 5.0:
            raise ValueError(f"gaze reaction_delay must be in [0, 5] s, got "
                             f"{self.reaction_delay}")
        if not 0.0 <= self.pan_limit <= 90.0 or not 0.0 <= self.tilt_limit <= 45.0:
            raise ValueError("gaze pan_limit must be in [0, 90] and tilt_limit in [0, 45] "
                             f"degrees, got {self.pan_limit}, {self.tilt_limit}")


@dataclass(frozen=True)
class GazeConfig(StageConfig):
    """The simulated head of gaze_controller_node (section ``gaze``; ``replay --gaze``)."""

    SECTION: ClassVar[str] = "gaze"

    max_speed: float = param(60.0, "Highest pan and tilt speed of the head (deg/s).",
                             low=1.0, high=360.0)
    reaction_delay: float = param(
        0.4, "The head aims at the attention target received this many seconds earlier.",
        low=0.0, high=5.0)
    pan_limit: float = param(40.0, "Largest pan either side (deg).", low=0.0, high=90.0)
    tilt_limit: float = param(20.0, "Largest tilt up or down (deg).", low=0.0, high=45.0)
    rate: float = param(50.0, "Rate of the head's /tf and gaze/joint_states (Hz).",
                        low=1.0, high=500.0)
    target_axes: str = param(
        "ros", "Axes of the attention's frame: 'ros' (x forward, y left, z up: base_link, "
        "odom) or 'optical' (x right, y down, z forward: a still camera's optical frame, "
        "the tracker's frame without tracking.fixed_frame).", choices=("ros", "optical"))
    neck_position: tuple = param(
        (0.0, 0.0, 0.0), "The neck pivot in the attention's frame (m).", length=3)
    neck_frame: str = param("gaze_neck", "frame_id of the neck (the pivot, rest axes "
                            "x forward, y left, z up), child of the attention's frame.")
    head_frame: str = param("gaze_head", "frame_id of the turned head, child of neck_frame.")

    @property
    def limits(self) -> GazeLimits:
        return GazeLimits(self.max_speed, self.reaction_delay, self.pan_limit,
                          self.tilt_limit)


def head_rotation(pan: float, tilt: float) -> np.ndarray:
    """Head -> neck rotation (3, 3) in ROS body axes (x forward, y left, z up): pan about
    z (positive to the left), then tilt about -y (positive up)."""
    cp, sp, ct, st = math.cos(pan), math.sin(pan), math.cos(tilt), math.sin(tilt)
    Rz = np.array([[cp, -sp, 0.0], [sp, cp, 0.0], [0.0, 0.0, 1.0]])
    Ry = np.array([[ct, 0.0, -st], [0.0, 1.0, 0.0], [st, 0.0, ct]])
    return Rz @ Ry


def pan_tilt_towards(points) -> tuple[np.ndarray, np.ndarray]:
    """(pan, tilt) (rad, (N,)) that point the optical axis at neck-frame points (N, 3)
    (m; x right, y down, z forward).  Raises ValueError for non-finite points."""
    p = np.atleast_2d(np.asarray(points, dtype=float))
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"gaze targets must be (N, 3) points, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("gaze targets must be finite")
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    return np.arctan2(-x, z), np.arctan2(-y, np.hypot(x, z))


class GazeController:
    """Pan/tilt that follow a target with a reaction delay and a speed limit (module
    docstring).  :meth:`update` with the newest target (or None), then read
    :attr:`pan`, :attr:`tilt` (rad)."""

    def __init__(self, limits: GazeLimits | None = None):
        self.limits = limits or GazeLimits()
        self.reset()

    def reset(self) -> None:
        self.pan = 0.0
        self.tilt = 0.0
        self.time: float | None = None
        self._seen: deque = deque()  # (stamp, (pan, tilt) of the target or None)
        self._aim: tuple | None = None  # the target aimed at (rad), after the delay

    def see(self, stamp: float, target) -> None:
        """The target at ``stamp`` (s): a neck-frame point (3,), or None (no target)."""
        if target is None:
            self._seen.append((float(stamp), None))
            return
        pan, tilt = pan_tilt_towards(target)
        lim = self.limits
        self._seen.append((float(stamp), (
            float(np.clip(pan[0], -math.radians(lim.pan_limit), math.radians(lim.pan_limit))),
            float(np.clip(tilt[0], -math.radians(lim.tilt_limit),
                          math.radians(lim.tilt_limit))))))

    def update(self, stamp: float) -> tuple[float, float]:
        """Move to ``stamp`` (s): aim at the newest target seen at least reaction_delay s
        before it, at up to max_speed; returns (pan, tilt) in rad."""
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"gaze stamp must be finite, got {stamp}")
        while self._seen and self._seen[0][0] <= stamp - self.limits.reaction_delay:
            _, aim = self._seen.popleft()
            if aim is not None:  # no target: keep the last aim
                self._aim = aim
        dt = 0.0 if self.time is None else max(stamp - self.time, 0.0)
        self.time = stamp if self.time is None else max(self.time, stamp)
        if self._aim is not None and dt > 0:
            step = math.radians(self.limits.max_speed) * dt
            self.pan += float(np.clip(self._aim[0] - self.pan, -step, step))
            self.tilt += float(np.clip(self._aim[1] - self.tilt, -step, step))
        return self.pan, self.tilt
