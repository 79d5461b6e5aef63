"""A robot head that pans and tilts during a scene (docs/simulation.md, "Head motion").

The scene's people, distractors and room are given in the *rest* camera frame: the left
camera optical frame with the head at pan = tilt = 0.  The head turns about a neck pivot
(``pivot``, rest frame); camera and microphones turn with it.  Modes: ``still`` (no
motion, the scene as before), ``scripted`` (pan = A sin(w t), tilt = B sin(w t / 2), w
such that the pan reaches ``max_speed``), ``follow`` (turns to the active speaker's face
``reaction_delay`` s after they start, at up to ``max_speed``, within +-pan_amplitude /
+-tilt_amplitude), ``attention`` (a closed loop: the package's own attention target
drives a :class:`~av_perception.core.gaze.GazeController` with those limits while the
scene is rendered a segment at a time, ``sim.closed_loop``; the angles are filled in as
the loop goes, :meth:`HeadMotion.set_angles`).  The fixed frame (``fixed_frame``, ROS
conventions: x forward, z up, on the floor below the camera) carries the ground truth;
the bag's /tf_static and /tf give the chain fixed_frame -> neck -> head -> left camera.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.poses import Pose, quat_from_matrix

__all__ = ["HEAD_MODES", "HeadMotion", "HeadMotionSpec"]

HEAD_MODES = ("still", "scripted", "follow", "attention")

#: rest camera optical axes (x right, y down, z forward) in the fixed frame (x fwd, z up)
R_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass
class HeadMotionSpec:
    """How the head moves (module docstring); angles in degrees."""

    mode: str = "still"
    pan_amplitude: float = 40.0
    tilt_amplitude: float = 0.0
    max_speed: float = 60.0
    reaction_delay: float = 0.4
    pivot: tuple = (0.0, 0.08, -0.06)
    fixed_frame: str = "base_link"
    tf_rate: float = 100.0

    def __post_init__(self):
        if self.mode not in HEAD_MODES:
            raise ValueError(f"head_motion.mode must be one of {HEAD_MODES}, got {self.mode!r}")
        if not 0 <= self.pan_amplitude <= 90 or not 0 <= self.tilt_amplitude <= 45:
            raise ValueError("head_motion: pan_amplitude must be in [0, 90] and "
                             "tilt_amplitude in [0, 45] degrees")
        if not 1.0 <= self.max_speed <= 360.0:
            raise ValueError(f"head_motion.max_speed must be in [1, 360] deg/s, got "
                             f"{self.max_speed}")
        if not 1.0 <= self.tf_rate <= 1000.0:
            raise ValueError(f"head_motion.tf_rate must be in [1, 1000] Hz, got {self.tf_rate}")
        self.pivot = tuple(float(v) for v in self.pivot)
        if len(self.pivot) != 3:
            raise ValueError("head_motion.pivot needs 3 values (m, rest camera frame)")

    @property
    def moving(self) -> bool:
        return self.mode != "still"


def _rotation(pan, tilt) -> np.ndarray:
    """(N, 3, 3) camera -> rest rotations: pan about the up axis (-y, positive to the
    left), then tilt about the camera x axis (positive up)."""
    pan, tilt = np.atleast_1d(pan), np.atleast_1d(tilt)
    cp, sp, ct, st = np.cos(pan), np.sin(pan), np.cos(tilt), np.sin(tilt)
    n = len(pan)
    Rp = np.zeros((n, 3, 3))
    Rp[:, 0, 0], Rp[:, 0, 2], Rp[:, 1, 1], Rp[:, 2, 0], Rp[:, 2, 2] = cp, -sp, 1, sp, cp
    Rt = np.zeros((n, 3, 3))
    Rt[:, 0, 0], Rt[:, 1, 1], Rt[:, 1, 2], Rt[:, 2, 1], Rt[:, 2, 2] = 1, ct, st, -st, ct
    return Rp @ Rt


class HeadMotion:
    """The head's pan and tilt over a scene, on a 10 ms grid (module docstring)."""

    DT = 0.01

    def __init__(self, spec: HeadMotionSpec, scene):
        self.spec = spec
        self.pivot = np.asarray(spec.pivot, dtype=float)
        self.origin = np.array([0.0, 0.0, scene.robot.floor_y])  # rest camera in fixed
        self.t = np.arange(0.0, scene.duration + 2 * self.DT, self.DT)
        n = len(self.t)
        a, b = math.radians(spec.pan_amplitude), math.radians(spec.tilt_amplitude)
        vmax = math.radians(spec.max_speed)
        if spec.mode in ("still", "attention"):  # attention: filled in by the closed loop
            self.pan, self.tilt = np.zeros(n), np.zeros(n)
        elif spec.mode == "scripted":
            w = vmax / a if a > 0 else 1.0
            self.pan = a * np.sin(w * self.t)
            self.tilt = b * np.sin(0.5 * w * self.t)
        else:
            self.pan, self.tilt = self._follow(scene, a, b, vmax)

    def _follow(self, scene, a, b, vmax):
        n = len(self.t)
        pan, tilt = np.zeros(n), np.zeros(n)
        seen = np.maximum(self.t - self.spec.reaction_delay, 0.0)
        pos = scene.rest_positions(seen)
        spk = scene.speaking(seen)
        target_p, target_t = 0.0, 0.0
        step = vmax * self.DT
        for k in range(1, n):
            talking = [pid for pid in scene.person_ids if spk[pid][k]]
            if talking and self.t[k] >= self.spec.reaction_delay:
                x, y, z = pos[talking[0]][k]
                target_p = float(np.clip(math.atan2(-x, z), -a, a))
                target_t = float(np.clip(math.atan2(-y, math.hypot(x, z)), -b, b))
            pan[k] = pan[k - 1] + np.clip(target_p - pan[k - 1], -step, step)
            tilt[k] = tilt[k - 1] + np.clip(target_t - tilt[k - 1], -step, step)
        return pan, tilt

    def set_angles(self, k: int, pan, tilt) -> None:
        """Closed loop: the angles (rad) of grid points k, k + 1, ... (times ``k * DT``);
        later grid points hold the last value until they are set."""
        pan, tilt = np.atleast_1d(pan), np.atleast_1d(tilt)
        m = min(len(pan), len(self.t) - k)
        if m <= 0:
            return
        self.pan[k:k + m], self.tilt[k:k + m] = pan[:m], tilt[:m]
        self.pan[k + m:], self.tilt[k + m:] = pan[m - 1], tilt[m - 1]

    def fixed_to_rest(self, points) -> np.ndarray:
        """Fixed-frame points (N, 3) in the rest frame (the gaze controller's neck frame)."""
        return (np.atleast_2d(points) - self.origin) @ R_OPTICAL

    def angles(self, t) -> tuple[np.ndarray, np.ndarray]:
        """(pan, tilt) in rad at times t (s from the start)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        return np.interp(t, self.t, self.pan), np.interp(t, self.t, self.tilt)

    def to_camera(self, points, t) -> np.ndarray:
        """Rest-frame points (N, 3) at times t (N,) (or one time) -> camera frame."""
        p = np.atleast_2d(np.asarray(points, dtype=float))
        t = np.broadcast_to(np.atleast_1d(np.asarray(t, dtype=float)), (len(p),))
        R = _rotation(*self.angles(t))
        # p_rest = c + R (p_cam - c)  ->  p_cam = c + R^T (p_rest - c)
        return self.pivot + np.einsum("nji,nj->ni", R, p - self.pivot)

    def rest_to_fixed(self, points) -> np.ndarray:
        """Rest-frame points (N, 3) in the fixed frame."""
        return np.atleast_2d(points) @ R_OPTICAL.T + self.origin

    def camera_pose(self, t: float) -> Pose:
        """The camera's pose in the fixed frame at time t (s from the start)."""
        R = _rotation(*self.angles(t))[0]
        rest = Pose(R, self.pivot - R @ self.pivot)
        return Pose(R_OPTICAL, self.origin) @ rest

    def static_transforms(self, camera_frame: str) -> list:
        """[(parent, child, translation, quaternion)] of /tf_static."""
        fixed = self.spec.fixed_frame
        return [(fixed, "neck", tuple(R_OPTICAL @ self.pivot + self.origin),
                 tuple(quat_from_matrix(R_OPTICAL))),
                ("head", camera_frame, tuple(-self.pivot), (0.0, 0.0, 0.0, 1.0))]

    def head_transform(self, t: float) -> tuple:
        """(translation, quaternion) of neck -> head at time t (the /tf link)."""
        R = _rotation(*self.angles(t))[0]
        return (0.0, 0.0, 0.0), tuple(quat_from_matrix(R))
