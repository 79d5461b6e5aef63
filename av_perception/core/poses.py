"""Rigid transforms for a moving head: quaternions, poses, a small transform tree.

A :class:`Pose` maps points of a child frame into its parent frame,
``p_parent = R p_child + t``.  :class:`TransformTree` keeps the time-stamped links of a
tf tree (a link: parent frame, child frame, a history of (stamp, translation,
quaternion), or one static value) and answers "the pose of frame B in frame A at time
t": each link interpolated at t (translation linearly, rotation by slerp), composed
along the path between the frames.  Past the newest sample of a link the motion is
extrapolated with the last velocity for at most ``max_extrapolation`` seconds, then
held (the lookup says so).  A sample far from the previous one of its link (an odometry
reset) starts the link's history anew.  Quaternions are (x, y, z, w), as in
geometry_msgs.  Pure numpy (docs/algorithms.md, "Head motion").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Pose",
    "PoseLookup",
    "PosedGeometry",
    "TransformError",
    "TransformTree",
    "quat_from_matrix",
    "quat_multiply",
    "quat_slerp",
    "quat_to_matrix",
    "quats_slerp",
    "quats_to_matrices",
    "rotation_angle",
]


class TransformError(ValueError):
    """A transform cannot be looked up (unknown frame, no path, bad values)."""


# ---------------------------------------------------------------------------
# quaternions (x, y, z, w)
# ---------------------------------------------------------------------------
def _check_quat(q) -> np.ndarray:
    q = np.asarray(q, dtype=float).reshape(4)
    n = float(np.linalg.norm(q))
    if not np.all(np.isfinite(q)) or n < 1e-9:
        raise TransformError(f"quaternion {q.tolist()} is not a rotation (zero or not finite)")
    return q / n


def quat_multiply(a, b) -> np.ndarray:
    """Hamilton product a * b of quaternions (4,) (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def quat_to_matrix(q) -> np.ndarray:
    """Rotation matrix (3, 3) of a quaternion (4,) (x, y, z, w); normalised first."""
    x, y, z, w = _check_quat(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def quat_from_matrix(R) -> np.ndarray:
    """Quaternion (4,) (x, y, z, w, w >= 0) of a rotation matrix (3, 3)."""
    R = np.asarray(R, dtype=float)
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, s / 4]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [s / 4, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, s / 4, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, s / 4, (R[1, 0] - R[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def quat_slerp(a, b, u: float) -> np.ndarray:
    """Spherical interpolation from quaternion a (u = 0) to b (u = 1), the short way;
    u outside [0, 1] extrapolates along the same great circle."""
    return _unit_slerp(_check_quat(a), _check_quat(b), u)


def _unit_slerp(a: np.ndarray, b: np.ndarray, u: float) -> np.ndarray:
    """:func:`quat_slerp` of unit quaternions (not checked: the pose buffer's, normalised
    when they were stored)."""
    d = float(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3])
    if d < 0:
        b, d = -b, -d
    d = min(d, 1.0)
    theta = math.acos(d)
    if theta < 1e-9:
        q = a + u * (b - a)
    else:
        q = (math.sin((1 - u) * theta) * a + math.sin(u * theta) * b) / math.sin(theta)
    return q / math.sqrt(float(q @ q))


def _unit_quat_matrix(q: np.ndarray) -> np.ndarray:
    """:func:`quat_to_matrix` of a unit quaternion (not checked, not normalised again)."""
    x, y, z, w = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def quats_slerp(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`quat_slerp` of N pairs of unit quaternions (N, 4) at u (N,), vectorised."""
    d = np.einsum("ni,ni->n", a, b)
    b = np.where((d < 0)[:, None], -b, b)
    d = np.minimum(np.abs(d), 1.0)
    theta = np.arccos(d)
    small = theta < 1e-9
    sin = np.where(small, 1.0, np.sin(theta))
    wa = np.where(small, 1.0 - u, np.sin((1.0 - u) * theta) / sin)
    wb = np.where(small, u, np.sin(u * theta) / sin)
    q = wa[:, None] * a + wb[:, None] * b
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def quats_to_matrices(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) of unit quaternions (N, 4) (x, y, z, w)."""
    x, y, z, w = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)],
        axis=1)


def rotation_angle(R) -> float:
    """Angle (rad, in [0, pi]) of a rotation matrix (3, 3)."""
    c = 0.5 * (float(np.trace(R)) - 1.0)
    return math.acos(min(max(c, -1.0), 1.0))


# ---------------------------------------------------------------------------
# poses
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Pose:
    """A rigid transform child -> parent: ``p_parent = R p_child + t``.

    R : (3, 3) rotation; t : (3,) m, the child origin in the parent frame.
    """

    R: np.ndarray
    t: np.ndarray

    @classmethod
    def identity(cls) -> Pose:
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_quat(cls, translation, quat) -> Pose:
        t = np.asarray(translation, dtype=float).reshape(3)
        if not np.all(np.isfinite(t)):
            raise TransformError(f"translation {t.tolist()} is not finite")
        return cls(quat_to_matrix(quat), t)

    @property
    def quat(self) -> np.ndarray:
        return quat_from_matrix(self.R)

    def __matmul__(self, other: Pose) -> Pose:
        """Composition: (self @ other) maps other's child into self's parent."""
        return Pose(self.R @ other.R, self.R @ other.t + self.t)

    def inverse(self) -> Pose:
        return Pose(self.R.T, -self.R.T @ self.t)

    def apply(self, points) -> np.ndarray:
        """Points (N, 3) of the child frame in the parent frame."""
        return np.asarray(points, dtype=float).reshape(-1, 3) @ self.R.T + self.t

    def apply_inverse(self, points) -> np.ndarray:
        """Points (N, 3) of the parent frame in the child frame."""
        return (np.asarray(points, dtype=float).reshape(-1, 3) - self.t) @ self.R

    def rotate_covariance(self, cov) -> np.ndarray:
        """Covariances (N, 3, 3) of the child frame in the parent frame (R C R^T)."""
        return self.R @ np.asarray(cov, dtype=float) @ self.R.T

    def angle_to(self, other: Pose) -> float:
        """Rotation angle (rad) between the two poses' orientations."""
        return rotation_angle(self.R.T @ other.R)

    def distance_to(self, other: Pose) -> float:
        """Distance (m) between the two poses' origins."""
        return float(np.linalg.norm(self.t - other.t))


class PosedGeometry:
    """A binaural geometry given in a moving (camera) frame, seen in the fixed frame
    through ``pose`` (camera -> fixed): centre, axis, forward, the ITD of fixed-frame
    points and its gradient (s/m, fixed frame)."""

    def __init__(self, geometry, pose: Pose):
        self.base = geometry
        self.pose = pose
        self.centre = pose.apply(geometry.centre)[0]
        self.axis = pose.R @ geometry.axis
        self.forward = pose.R @ geometry.forward
        self.left = pose.apply(geometry.left)[0]
        self.right = pose.apply(geometry.right)[0]
        self.speed_of_sound = geometry.speed_of_sound
        self.spacing = geometry.spacing

    def itd(self, points) -> np.ndarray:
        return self.base.itd(self.pose.apply_inverse(points))

    def itd_jacobian(self, points) -> np.ndarray:
        return self.base.itd_jacobian(self.pose.apply_inverse(points)) @ self.pose.R.T


# ---------------------------------------------------------------------------
# the transform tree
# ---------------------------------------------------------------------------
@dataclass
class PoseLookup:
    """Result of :meth:`TransformTree.lookup`.

    pose : Pose (source -> target).  status : 'ok' (interpolated), 'extrapolated'
    (within max_extrapolation past a link's newest sample), 'held' (later still: the
    extrapolation's end is held), 'before' (before a link's oldest sample: the oldest is
    used).  lag : s, how far the stamp is past the newest sample of the most out-of-date
    link (0 when interpolated).  link : that link, 'parent -> child'.
    """

    pose: Pose
    status: str = "ok"
    lag: float = 0.0
    link: str = ""


class _Link:
    """The history of one parent -> child link (stamps ascending).

    Samples live in arrays with spare room at the end: a sample newer than the newest
    (the usual case) is written in place, the window's start moves past the samples older
    than ``max_age`` (amortised O(1) per sample); quaternions are stored unit-norm."""

    def __init__(self, parent: str, static: bool):
        self.parent = parent
        self.static = static
        self._stamps = np.zeros(16)
        self._trans = np.zeros((16, 3))
        self._quats = np.zeros((16, 4))
        self._lo = 0  # the samples are rows _lo .. _hi - 1
        self._hi = 0

    @property
    def stamps(self) -> np.ndarray:
        return self._stamps[self._lo:self._hi]

    @property
    def trans(self) -> np.ndarray:
        return self._trans[self._lo:self._hi]

    @property
    def quats(self) -> np.ndarray:
        return self._quats[self._lo:self._hi]

    def __len__(self) -> int:
        return self._hi - self._lo

    def _reset(self) -> None:
        self._lo = self._hi = 0

    def _append(self, stamp: float, t: np.ndarray, q: np.ndarray) -> None:
        if self._hi == len(self._stamps):  # full: compact, grow when half full
            n = self._hi - self._lo
            size = len(self._stamps) * (2 if 2 * n >= len(self._stamps) else 1)
            for name, cols in (("_stamps", None), ("_trans", 3), ("_quats", 4)):
                old = getattr(self, name)
                new = np.zeros(size if cols is None else (size, cols))
                new[:n] = old[self._lo:self._hi]
                setattr(self, name, new)
            self._lo, self._hi = 0, n
        self._stamps[self._hi] = stamp
        self._trans[self._hi] = t
        self._quats[self._hi] = q
        self._hi += 1

    def add(self, stamp: float, t: np.ndarray, q: np.ndarray, max_age: float,
            jump_distance: float, jump_angle: float) -> str | None:
        """Insert a sample; a message (and a new history) when it jumps from the newest."""
        if self.static:
            self._reset()
            self._append(stamp, t, q)
            return None
        jump = None
        n = len(self)
        newest = self._stamps[self._hi - 1] if n else -math.inf
        if n and stamp >= newest:
            d = float(np.linalg.norm(t - self._trans[self._hi - 1]))
            a = 2.0 * math.acos(min(abs(float(q @ self._quats[self._hi - 1])), 1.0))
            if d > jump_distance or a > jump_angle:
                jump = (f"moved {d:.2f} m and turned {math.degrees(a):.0f} deg between two "
                        f"samples {stamp - newest:.3f} s apart")
        if n and stamp < newest - max_age:
            jump = f"went back in time by {newest - stamp:.1f} s"
        if jump is not None:
            self._reset()
            n = 0
        if not n or stamp > newest:  # in order: appended
            self._append(stamp, t, q)
        else:
            s = self.stamps
            k = int(np.searchsorted(s, stamp, side="right"))
            if k and s[k - 1] == stamp:  # same stamp: replace
                self._trans[self._lo + k - 1], self._quats[self._lo + k - 1] = t, q
                return jump
            stamps = np.insert(s, k, stamp)
            trans = np.insert(self.trans, k, t, axis=0)
            quats = np.insert(self.quats, k, q, axis=0)
            self._reset()
            for row in zip(stamps, trans, quats):
                self._append(*row)
        # one sample before the window [newest - max_age, newest] is kept
        s = self.stamps
        first = int(np.searchsorted(s, s[-1] - max_age, side="left")) - 1
        if first > 0:
            self._lo += first
        return jump

    def interpolated(self, stamps: np.ndarray):
        """(R (N, 3, 3), t (N, 3), ok (N,)) at ``stamps`` (N,), vectorised: the rows
        ``ok`` are within the link's samples (or the link is static) and equal :meth:`at`;
        the others are not meaningful (look them up with :meth:`at`)."""
        n = len(stamps)
        if self.static:
            return (np.broadcast_to(_unit_quat_matrix(self._quats[self._lo]), (n, 3, 3)),
                    np.broadcast_to(self._trans[self._lo], (n, 3)), np.ones(n, dtype=bool))
        s = self.stamps
        if len(s) < 2:
            return np.tile(np.eye(3), (n, 1, 1)), np.zeros((n, 3)), np.zeros(n, dtype=bool)
        ok = (stamps >= s[0]) & (stamps <= s[-1])
        stamps = np.clip(stamps, s[0], s[-1])
        b = np.minimum(np.searchsorted(s, stamps, side="right"), len(s) - 1)
        a = b - 1
        u = (stamps - s[a]) / (s[b] - s[a])
        tr, qs = self.trans, self.quats
        t = tr[a] + u[:, None] * (tr[b] - tr[a])
        return quats_to_matrices(quats_slerp(qs[a], qs[b], u)), t, ok

    def at(self, stamp: float, max_extrapolation: float) -> tuple[Pose, str, float]:
        """(pose, status, lag) at ``stamp`` (see :class:`PoseLookup`)."""
        s = self.stamps
        tr, qs = self.trans, self.quats
        if self.static or len(s) == 1:
            lag = 0.0 if self.static else max(stamp - s[0], 0.0)
            status = "ok" if self.static or lag == 0.0 else (
                "extrapolated" if lag <= max_extrapolation else "held")
            return Pose(_unit_quat_matrix(qs[0]), tr[0].copy()), status, lag
        if stamp < s[0]:
            return Pose(_unit_quat_matrix(qs[0]), tr[0].copy()), "before", 0.0
        if stamp <= s[-1]:
            k = min(int(np.searchsorted(s, stamp, side="right")), len(s) - 1)
            a, b = k - 1, k
            status, lag = "ok", 0.0
            u = (stamp - s[a]) / (s[b] - s[a])
        else:
            a, b = len(s) - 2, len(s) - 1
            lag = stamp - s[-1]
            status = "extrapolated" if lag <= max_extrapolation else "held"
            u = 1.0 + min(lag, max_extrapolation) / (s[b] - s[a])
        t = tr[a] + u * (tr[b] - tr[a])
        return Pose(_unit_quat_matrix(_unit_slerp(qs[a], qs[b], u)), t), status, lag


class TransformTree:
    """Time-stamped links of a tf tree (module docstring).

    Parameters
    ----------
    max_age : float
        s of history kept per link.
    max_extrapolation : float
        s past a link's newest sample over which its motion is extrapolated.
    jump_distance, jump_angle : float
        m and rad: a sample this far from the previous one of its link is a jump (the
        link's history restarts; counted in ``jumps``, described in ``last_jump``).
    """

    _ORDER = {"ok": 0, "before": 1, "extrapolated": 2, "held": 3}

    def __init__(self, max_age: float = 10.0, max_extrapolation: float = 0.1,
                 jump_distance: float = 0.5, jump_angle: float = math.radians(45.0)):
        self.max_age = float(max_age)
        self.max_extrapolation = float(max_extrapolation)
        self.jump_distance = float(jump_distance)
        self.jump_angle = float(jump_angle)
        self.links: dict[str, _Link] = {}
        self.jumps = 0
        self.last_jump = ""
        self.newest = -math.inf  # newest stamp of a dynamic sample

    def clear(self) -> None:
        self.links.clear()
        self.newest = -math.inf

    def add(self, parent: str, child: str, stamp: float, translation, quat,
            static: bool = False) -> str | None:
        """Add one transform (child in parent at ``stamp``, s); returns a message when it
        is a jump (see class docstring).  Raises TransformError for non-finite values or
        an empty frame name."""
        parent, child = parent.strip("/"), child.strip("/")
        if not parent or not child or parent == child:
            raise TransformError(f"transform {parent!r} -> {child!r} needs two different "
                                 "non-empty frame names")
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise TransformError(f"transform {parent} -> {child} has a non-finite stamp")
        t = np.asarray(translation, dtype=float).reshape(3)
        if not np.all(np.isfinite(t)):
            raise TransformError(f"transform {parent} -> {child} has a non-finite translation")
        q = _check_quat(quat)
        link = self.links.get(child)
        if link is None or link.parent != parent or link.static != static:
            link = self.links[child] = _Link(parent, static)
        msg = link.add(stamp, t, q, self.max_age, self.jump_distance, self.jump_angle)
        if not static:
            self.newest = max(self.newest, stamp)
        if msg is not None:
            self.jumps += 1
            self.last_jump = f"{parent} -> {child} {msg} (at {stamp:.3f} s)"
        return msg

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self.links:
            path.append(self.links[path[-1]].parent)
            if len(path) > 100:
                raise TransformError(f"the tf tree has a loop through {frame}")
        return path

    def can_transform(self, target: str, source: str) -> bool:
        try:
            self._chain(target.strip("/"), source.strip("/"))
        except TransformError:
            return False
        return True

    def _chain(self, target: str, source: str) -> tuple[list[str], list[str]]:
        if not self.links:
            raise TransformError("no transform received (nothing on /tf or /tf_static)")
        up_s = self._path_to_root(source)
        up_t = self._path_to_root(target)
        common = next((f for f in up_s if f in set(up_t)), None)
        if common is None:
            known = sorted(set(self.links) | {lk.parent for lk in self.links.values()})
            raise TransformError(f"no transform chain from {target!r} to {source!r} (frames "
                                 f"received: {', '.join(known)})")
        return up_s[:up_s.index(common)], up_t[:up_t.index(common)]

    def lookup(self, target: str, source: str, stamp: float) -> PoseLookup:
        """The pose of ``source`` in ``target`` (source -> target) at ``stamp`` (s).

        Raises TransformError when a frame is unknown or the two are not connected."""
        target, source = target.strip("/"), source.strip("/")
        if target == source:
            return PoseLookup(Pose.identity())
        from_source, from_target = self._chain(target, source)
        worst = ("ok", 0.0, "")

        def link_pose(frame):
            nonlocal worst
            link = self.links[frame]
            pose, status, lag = link.at(stamp, self.max_extrapolation)
            if (self._ORDER[status], lag) > (self._ORDER[worst[0]], worst[1]):
                worst = (status, lag, f"{link.parent} -> {frame}")
            return pose

        # source -> common, target -> common
        s_pose = Pose.identity()
        for f in from_source:
            s_pose = link_pose(f) @ s_pose
        t_pose = Pose.identity()
        for f in from_target:
            t_pose = link_pose(f) @ t_pose
        return PoseLookup(t_pose.inverse() @ s_pose, *worst)

    def lookup_many(self, target: str, source: str, stamps) -> tuple:
        """The poses of ``source`` in ``target`` at ``stamps`` (N,) s, vectorised:
        (R (N, 3, 3), t (N, 3), ok (N,)); the rows ``ok`` are within every link's samples
        (each link interpolated: :meth:`lookup` with status 'ok'), the others are to be
        looked up one by one (:meth:`lookup`: extrapolated, held, before).  Raises
        TransformError as :meth:`lookup`."""
        target, source = target.strip("/"), source.strip("/")
        stamps = np.asarray(stamps, dtype=float).reshape(-1)
        n = len(stamps)
        ok = np.ones(n, dtype=bool)
        if target == source or n == 0:
            return np.tile(np.eye(3), (n, 1, 1)), np.zeros((n, 3)), ok
        from_source, from_target = self._chain(target, source)
        composed = []
        for chain in (from_source, from_target):
            R, t = np.tile(np.eye(3), (n, 1, 1)), np.zeros((n, 3))
            for f in chain:  # link @ pose
                Rl, tl, inside = self.links[f].interpolated(stamps)
                R, t = Rl @ R, np.einsum("nij,nj->ni", Rl, t) + tl
                ok &= inside
            composed.append((R, t))
        (Rs, ts), (Rt, tt) = composed
        # target pose inverted, then the source's: R_t^T R_s, R_t^T (t_s - t_t)
        return (np.swapaxes(Rt, 1, 2) @ Rs,
                np.einsum("nji,nj->ni", Rt, ts - tt), ok)
