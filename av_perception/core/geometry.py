"""Binaural geometry: ITD <-> azimuth <-> 3D, for arbitrary microphone positions.

Frame: the left camera optical frame (x right, y down, z forward), metres.
ITD sign: positive when the sound reaches the LEFT microphone first.
Azimuth: radians in the horizontal plane through the microphone axis,
0 straight ahead, positive towards the left microphone.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "MicGeometry",
    "itd_of_points",
    "itd_from_azimuth",
    "azimuth_from_itd",
]


def _as_points(points) -> np.ndarray:
    p = np.asarray(points, dtype=float)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3) or (3,), got {np.shape(points)}")
    if not np.all(np.isfinite(p)):
        raise ValueError("points contain NaN or infinite values")
    return p


def itd_of_points(points, mic_left, mic_right, speed_of_sound=343.0) -> np.ndarray:
    """Exact (near-field) ITD of 3D points.

    Parameters
    ----------
    points : array (N, 3) or (3,)
        Source positions in metres, left camera optical frame.
    mic_left, mic_right : array (3,)
        Microphone positions in the same frame.
    speed_of_sound : float
        m/s.

    Returns
    -------
    itd : array (N,)
        Seconds, ``(|S - M_right| - |S - M_left|) / c`` (positive when nearer the left mic).
    """
    p = _as_points(points)
    ml = np.asarray(mic_left, dtype=float)
    mr = np.asarray(mic_right, dtype=float)
    return (np.linalg.norm(p - mr, axis=1) - np.linalg.norm(p - ml, axis=1)) / speed_of_sound


def itd_from_azimuth(azimuth, mic_spacing, speed_of_sound=343.0):
    """Far-field ITD (s) of a source at ``azimuth`` (rad, positive to the left)."""
    return mic_spacing / speed_of_sound * np.sin(azimuth)


def azimuth_from_itd(itd, mic_spacing, speed_of_sound=343.0):
    """Far-field azimuth (rad) of an ITD (s); ITDs beyond the physical limit are clipped."""
    s = np.clip(np.asarray(itd, dtype=float) * speed_of_sound / mic_spacing, -1.0, 1.0)
    return np.arcsin(s)


class MicGeometry:
    """The binaural pair in the camera frame, with the conversions the pipeline needs.

    The horizontal plane is the plane that contains the microphone axis and the
    camera's forward direction (z); azimuth is measured in it from the forward
    direction towards the left microphone.
    """

    def __init__(self, mic_left, mic_right, speed_of_sound=343.0):
        self.left = np.asarray(mic_left, dtype=float).reshape(3)
        self.right = np.asarray(mic_right, dtype=float).reshape(3)
        if not (np.all(np.isfinite(self.left)) and np.all(np.isfinite(self.right))):
            raise ValueError("microphone positions must be finite")
        self.speed_of_sound = float(speed_of_sound)
        axis = self.left - self.right  # points towards the left mic
        self.spacing = float(np.linalg.norm(axis))
        if self.spacing < 1e-3:
            raise ValueError("the two microphones are at the same position")
        self.axis = axis / self.spacing
        self.centre = 0.5 * (self.left + self.right)
        forward = np.array([0.0, 0.0, 1.0])
        forward = forward - forward.dot(self.axis) * self.axis
        if np.linalg.norm(forward) < 1e-6:  # mic axis along z: pick x as "forward"
            forward = np.array([1.0, 0.0, 0.0]) - self.axis[0] * self.axis
        self.forward = forward / np.linalg.norm(forward)

    @classmethod
    def from_config(cls, mics) -> MicGeometry:
        return cls(mics.left, mics.right, mics.speed_of_sound)

    #: binaural model name (see :mod:`av_perception.core.head` for the head models)
    kind = "free_field"
    #: free field: no level difference between the mics
    has_ild = False
    band_edges: tuple = ()

    @property
    def max_itd(self) -> float:
        """Largest free-field ITD in seconds (source on the microphone axis)."""
        return self.spacing / self.speed_of_sound

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame, table) for the numba ITD kernel: an empty table means free field."""
        return np.zeros(12), np.zeros((0, 0))

    def ild(self, points):
        """Per-band ILD of points: None (two mics in free field have no ILD)."""
        return None

    def ild_from_azimuth(self, azimuth):
        """Per-band ILD of horizontal directions: None in free field."""
        return None

    def itd(self, points) -> np.ndarray:
        """Exact near-field ITD (s) of points (N, 3) in the camera frame."""
        return itd_of_points(points, self.left, self.right, self.speed_of_sound)

    def itd_jacobian(self, points) -> np.ndarray:
        """Gradient of the ITD with respect to the point, shape (N, 3), s/m."""
        p = _as_points(points)
        dl = p - self.left
        dr = p - self.right
        nl = np.maximum(np.linalg.norm(dl, axis=1, keepdims=True), 1e-9)
        nr = np.maximum(np.linalg.norm(dr, axis=1, keepdims=True), 1e-9)
        return (dr / nr - dl / nl) / self.speed_of_sound

    def azimuth_from_itd(self, itd):
        """Far-field azimuth (rad) of ITDs (s), clipped to the physical range."""
        return azimuth_from_itd(itd, self.spacing, self.speed_of_sound)

    def itd_from_azimuth(self, azimuth):
        """Far-field ITD (s) of azimuths (rad)."""
        return itd_from_azimuth(azimuth, self.spacing, self.speed_of_sound)

    def direction_from_azimuth(self, azimuth) -> np.ndarray:
        """Unit vectors (N, 3) in the horizontal plane for azimuths (N,) in rad."""
        az = np.atleast_1d(np.asarray(azimuth, dtype=float))
        return np.cos(az)[:, None] * self.forward + np.sin(az)[:, None] * self.axis

    def direction_from_itd(self, itd) -> np.ndarray:
        """Unit vectors (N, 3): the far-field ITD cone cut with the horizontal plane (front)."""
        return self.direction_from_azimuth(self.azimuth_from_itd(itd))

    def azimuth_of_points(self, points) -> np.ndarray:
        """Azimuth (rad) of 3D points seen from the array centre, in the horizontal plane."""
        p = _as_points(points) - self.centre
        return np.arctan2(p @ self.axis, p @ self.forward)

    def point_from_itd(self, itd, distance) -> np.ndarray:
        """3D points (N, 3) at ``distance`` (m) from the array centre, in the front half
        of the horizontal plane, whose exact near-field ITD equals ``itd``.

        ITDs beyond what is reachable at that distance give the point on the axis side.
        Solved by a 64-way search on the azimuth (the near-field ITD is monotonic in it):
        10 rounds of 63 azimuths each narrow [-pi/2, pi/2] by 2^60, as 60 bisections
        would, with a sixth of the calls.
        """
        itd = np.atleast_1d(np.asarray(itd, dtype=float))
        dist = np.broadcast_to(np.asarray(distance, dtype=float), itd.shape)
        if np.any(dist <= 0) or not np.all(np.isfinite(dist)):
            raise ValueError("distance must be positive and finite")
        n = len(itd)
        lo = np.full(n, -np.pi / 2)
        hi = np.full(n, np.pi / 2)
        k = 63  # azimuths per round
        frac = np.arange(1, k + 1) / (k + 1.0)
        rows = np.arange(n)
        for _ in range(10):
            mid = lo[:, None] + (hi - lo)[:, None] * frac[None, :]  # (N, k)
            pts = self.centre + (dist[:, None, None]
                                 * self.direction_from_azimuth(mid.ravel()).reshape(n, k, 3))
            below = self.itd(pts.reshape(-1, 3)).reshape(n, k) < itd[:, None]
            # the first azimuth not below the ITD (k: all below)
            m = np.where(below.all(axis=1), k, np.argmin(below, axis=1))
            lo = np.where(m > 0, mid[rows, np.maximum(m - 1, 0)], lo)
            hi = np.where(m < k, mid[rows, np.minimum(m, k - 1)], hi)
        az = 0.5 * (lo + hi)
        return self.centre + dist[:, None] * self.direction_from_azimuth(az)
