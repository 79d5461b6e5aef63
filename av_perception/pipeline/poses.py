"""The camera's pose in the fixed frame from /tf and /tf_static, for the tracking stage.

:class:`HeadPoses` keeps a :class:`~av_perception.core.poses.TransformTree` fed with the
transforms of /tf and /tf_static (live or from a bag) and gives the left camera's pose in
``tracking.fixed_frame`` at any stamp, with what went wrong (no chain yet, a late /tf
extrapolated then held, a broken chain, a jump) for /diagnostics.  Design:
docs/algorithms.md, "Head motion".
"""
from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np

from ..core.poses import Pose, TransformError, TransformTree

__all__ = ["HeadPoses"]


class HeadPoses:
    """The camera pose in the fixed frame (see module docstring).

    Parameters
    ----------
    tracking : TrackingConfig
        fixed_frame ('' = off: :meth:`camera_pose` is always None), tf_max_extrapolation,
        tf_jump_distance, tf_jump_angle, tf_buffer.
    """

    def __init__(self, tracking):
        self.config = tracking
        self.fixed_frame = tracking.fixed_frame.strip("/")
        self.camera_frame = ""
        self.tree = TransformTree(tracking.tf_buffer, tracking.tf_max_extrapolation,
                                  tracking.tf_jump_distance,
                                  math.radians(tracking.tf_jump_angle))
        self.lock = threading.Lock()
        self.notices: deque = deque(maxlen=20)
        self.last_good: Pose | None = None
        self.status = "no transform yet"  # the newest lookup's problem, '' when fine
        self.level = 0  # 0 ok, 1 warn
        self.lookups = 0
        self.held = 0  # lookups answered by holding a pose (late /tf or a broken chain)
        self.extrapolated = 0
        self.bad_transforms = 0
        self.transforms = 0
        #: (stamp, camera frame) -> (pose, status, level): a lookup stays valid until a
        #: transform changes it (a newer sample of a link: only the lookups past its
        #: previous newest sample)
        self._cache: dict = {}
        self._cache_span = (math.inf, -math.inf)  # the oldest and newest stamp in it

    def _remember(self, stamp: float, entry) -> None:
        """Cache one lookup (the caller holds the lock)."""
        if len(self._cache) > 256:
            self._cache.clear()
            self._cache_span = (math.inf, -math.inf)
        self._cache[(stamp, self.camera_frame)] = entry
        lo, hi = self._cache_span
        self._cache_span = (min(lo, stamp), max(hi, stamp))

    @property
    def enabled(self) -> bool:
        return bool(self.fixed_frame)

    def add(self, parent: str, child: str, stamp: float, translation, quat,
            static: bool = False) -> None:
        """One transform of /tf (or /tf_static when ``static``); bad ones are counted and
        said once in :attr:`notices`."""
        with self.lock:
            link = self.tree.links.get(child.strip("/"))
            newest = None  # the link's newest sample before this one
            if link is not None and not static and not link.static and len(link) \
                    and link.parent == parent.strip("/"):
                newest = float(link.stamps[-1])
            try:
                msg = self.tree.add(parent, child, stamp, translation, quat, static)
            except TransformError as exc:
                self.bad_transforms += 1
                if self.bad_transforms == 1:
                    self.notices.append(f"a transform was dropped: {exc}")
                return
            self.transforms += 1
            if newest is None or msg is not None or not float(stamp) > newest:
                self._cache.clear()
                self._cache_span = (math.inf, -math.inf)
            elif self._cache and (self._cache_span[1] >= newest or self._cache_span[0]
                                  < float(stamp) - self.tree.max_age):
                # a newer sample changes only the lookups after the newest (extrapolated,
                # held) and, the history's start moving on, the oldest
                start = float(stamp) - self.tree.max_age
                self._cache = {k: v for k, v in self._cache.items()
                               if start <= k[0] < newest}
                stamps = [k[0] for k in self._cache]
                self._cache_span = (min(stamps, default=math.inf),
                                    max(stamps, default=-math.inf))
            if msg is not None:
                self.notices.append(f"/tf jumped: {self.tree.last_jump} (odometry reset?); "
                                    "the link's history restarts there")

    def clear(self) -> None:
        """Forget every transform (the clock jumped back)."""
        with self.lock:
            self.tree.clear()
            self._cache.clear()
            self.last_good = None

    def camera_pose(self, stamp: float) -> Pose | None:
        """The camera's pose (camera -> fixed) at ``stamp``: interpolated; extrapolated
        for tf_max_extrapolation s past the newest /tf, then held; the last good pose when
        the chain is broken; None while no chain was ever complete (or fixed_frame is
        '')."""
        if not self.enabled or not self.camera_frame:
            return None
        with self.lock:
            self.lookups += 1
            key = (float(stamp), self.camera_frame)
            hit = self._cache.get(key)
            if hit is not None:  # the same stamp again, no transform since
                pose, self.status, self.level = hit
                return pose
            pose = self._lookup(stamp)
            self._remember(key[0], (pose, self.status, self.level))
            return pose

    def camera_poses(self, stamps) -> tuple[np.ndarray, np.ndarray] | None:
        """The camera's poses at ``stamps`` (N,) as arrays (R (N, 3, 3), t (N, 3)), as N
        calls of :meth:`camera_pose` (counted, cached, reported the same): the stamps
        within the /tf samples vectorised, the others (extrapolated, held, no chain) one
        by one.  None where :meth:`camera_pose` would give None for a stamp."""
        if not self.enabled or not self.camera_frame:
            return None
        stamps = np.asarray(stamps, dtype=float).reshape(-1)
        n = len(stamps)
        with self.lock:
            try:
                R, t, ok = self.tree.lookup_many(self.fixed_frame, self.camera_frame, stamps)
            except TransformError:
                R, t, ok = np.zeros((n, 3, 3)), np.zeros((n, 3)), np.zeros(n, dtype=bool)
            R, t = np.array(R), np.array(t)
            if np.any(ok):
                self.lookups += int(ok.sum())
                for k in np.flatnonzero(ok):
                    self._remember(float(stamps[k]), (Pose(R[k], t[k]), "", 0))
        for k in np.flatnonzero(~ok):  # one by one, with their status
            pose = self.camera_pose(float(stamps[k]))
            if pose is None:
                return None
            R[k], t[k] = pose.R, pose.t
        if n and ok[-1]:  # the last lookup was an interpolation
            with self.lock:
                self.status, self.level = "", 0
                self.last_good = self._cache.get((float(stamps[-1]), self.camera_frame),
                                                 (Pose(R[-1], t[-1]),))[0]
        return R, t

    def rotation_at(self, stamp: float) -> np.ndarray | None:
        """The camera's rotation (3x3, camera -> fixed) at ``stamp`` for another stage (the
        audio front-end's precedence memory), or None when unknown; unlike
        :meth:`camera_pose` it neither counts nor reports anything."""
        if not self.enabled or not self.camera_frame or stamp is None:
            return None
        with self.lock:
            try:
                look = self.tree.lookup(self.fixed_frame, self.camera_frame, float(stamp))
            except TransformError:
                return None
        return look.pose.R

    def _lookup(self, stamp: float) -> Pose | None:
        """One lookup (the caller holds the lock); sets status and level."""
        try:
            look = self.tree.lookup(self.fixed_frame, self.camera_frame, stamp)
        except TransformError as exc:
            if self.last_good is None:
                self.status, self.level = f"{exc}: tracking in the camera frame", 1
                return None
            self.held += 1
            self.status, self.level = (f"{exc}: the last camera pose is held (tracks "
                                       "stay in the fixed frame)"), 1
            return self.last_good
        if look.status == "held":
            self.held += 1
            self.status, self.level = (
                f"/tf is late: link {look.link} is {look.lag:.2f} s behind the data "
                f"(extrapolated {self.config.tf_max_extrapolation:g} s, then held)"), 1
        elif look.status == "extrapolated":
            self.extrapolated += 1
            self.status, self.level = "", 0
        else:
            self.status, self.level = "", 0
        self.last_good = look.pose
        return look.pose

    @property
    def jumps(self) -> int:
        return self.tree.jumps

    def pop_notices(self) -> list:
        with self.lock:
            out = list(self.notices)
            self.notices.clear()
        return out

    def diagnostics(self) -> tuple[int, str, dict]:
        """(level 0 OK / 1 WARN, message, key values) for /diagnostics."""
        values = {"fixed_frame": self.fixed_frame or "(off)",
                  "camera_frame": self.camera_frame, "transforms": self.transforms,
                  "bad_transforms": self.bad_transforms, "pose_lookups": self.lookups,
                  "poses_extrapolated": self.extrapolated, "poses_held": self.held,
                  "tf_jumps": self.jumps}
        if not self.enabled:
            return 0, "tracking in the camera frame (tracking.fixed_frame empty)", values
        if self.lookups == 0:
            return 0, f"waiting for images to look up {self.fixed_frame}", values
        if self.level:
            return 1, self.status, values
        return 0, f"tracking in {self.fixed_frame}", values
