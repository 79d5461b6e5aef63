"""The body cue: keep a track supported while its face is not seen (a head turned away).

For every track whose face was observed within ``body.max_gap`` s but is not observed in
this frame, the column below and around its predicted head (back of the head, neck and
upper chest: ``region_top`` .. ``region_bottom`` face widths from the head centre,
``region_width`` face widths wide) is matched in the right image; when its stereo depth
agrees with the predicted depth within ``depth_tolerance``, the head is observed at the
predicted pixel with that depth and a covariance wider than a face's (``lateral_sigma``).
The cue never observes a track that has not shown its face recently, so it cannot create
tracks and it stops ``max_gap`` s after the face was last seen; where the person has
left, the column shows the background (another depth) and gives nothing.
Details: docs/algorithms.md, "Body cue".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .config import ConfigError, StageConfig, param

__all__ = ["BodyCueConfig", "BodyCue", "body_regions"]


@dataclass(frozen=True)
class BodyCueConfig(StageConfig):
    """Observations of tracks whose face is not seen, from the stereo depth of the
    head-and-torso column below their predicted head (section ``body``)."""

    SECTION: ClassVar[str] = "body"

    enabled: bool = param(
        True, "Observe tracks whose face is not seen (a head turned away) from the stereo "
        "depth of the head-and-torso column at their predicted head (needs the tracks: "
        "process, perception_node, visual_features_node with the speakers topic).")
    max_gap: float = param(
        4.0, "Seconds after a track's face was last observed during which the cue may "
        "observe it (it never observes a track that has not shown its face).",
        low=0.0, high=60.0)
    region_width: float = param(
        1.0, "Width of the matched column, in face widths (vision.face_width at the "
        "predicted depth).", low=0.2, high=4.0)
    region_top: float = param(
        -0.4, "Top of the column relative to the predicted head centre, in face widths "
        "(negative: above).", low=-2.0, high=2.0)
    region_bottom: float = param(
        2.5, "Bottom of the column relative to the predicted head centre, in face widths "
        "(down to the upper chest).", low=-1.0, high=6.0)
    depth_tolerance: float = param(
        0.15, "The column's stereo depth must be within this fraction of the predicted "
        "depth (else nothing is observed).", low=0.01, high=1.0)
    lateral_sigma: float = param(
        0.1, "Standard deviation (m) of the observed head across the viewing ray (the "
        "head is placed at its predicted pixel).", low=0.01, high=2.0)
    weight: float = param(
        0.5, "Weight of a body observation (times the match quality); a face's is its "
        "detector confidence times its match quality.", low=0.0, high=1.0)
    min_visible: float = param(
        0.5, "Smallest fraction of the column inside the image for it to be matched.",
        low=0.05, high=1.0)

    def validate(self):
        if self.region_top >= self.region_bottom:
            raise ConfigError(
                f"parameters 'body.region_top' = {self.region_top} and 'body.region_bottom' = "
                f"{self.region_bottom} are not allowed: need region_top < region_bottom")


def body_regions(u, v, side, config: BodyCueConfig) -> np.ndarray:
    """Columns (K, 4) x, y, w, h (pixels) below heads at pixels (u, v) whose face box
    is ``side`` px wide (pixel centres at integers, as :func:`.vision.head_regions`)."""
    u, v, side = (np.asarray(a, dtype=np.float64).ravel() for a in (u, v, side))
    w = config.region_width * side
    return np.column_stack([u + 0.5 - 0.5 * w, v + 0.5 + config.region_top * side, w,
                            (config.region_bottom - config.region_top) * side])


class BodyCue:
    """Observations of the tracks whose face this frame does not show.

    Parameters
    ----------
    config : BodyCueConfig
    calibration : StereoCalibration
    matcher : RegionMatcher
        The front-end's (same depth range and matching method).
    face_width, disparity_noise, output_frame :
        The front-end's ``vision`` settings.

    Notes
    -----
    State: the stamp at which each track id last had a face observation near its
    predicted head (:meth:`reset` forgets it).  ``stats`` counts the columns matched,
    accepted and rejected (by depth or by the matcher).
    """

    def __init__(self, config: BodyCueConfig, calibration, matcher, face_width: float = 0.16,
                 disparity_noise: float = 0.25, output_frame: str = "camera",
                 depth_offset: float = 0.0):
        self.config = config
        self.calibration = calibration
        self.matcher = matcher
        self.face_width = float(face_width)
        self.disparity_noise = float(disparity_noise)
        self.output_frame = output_frame
        self.depth_offset = float(depth_offset)
        self._last_face: dict[int, float] = {}
        self.stats = {"columns": 0, "observations": 0, "depth_mismatch": 0, "no_match": 0}

    def reset(self) -> None:
        self._last_face = {}

    def observe(self, gl, gr, stamp: float, positions, ids, faces):
        """Body observations of one rectified grey pair.

        Parameters
        ----------
        gl, gr : arrays (H, W) uint8
            The rectified left and right images.
        stamp : float
            s.
        positions : array (K, 3)
            The tracks' heads predicted to ``stamp`` (m, ``output_frame``).
        ids : sequence of K ints
            Their track ids.
        faces : VisualObservations
            This frame's face observations (the tracks they explain are not observed
            again, and their face counts as seen).

        Returns
        -------
        VisualObservations
            kind ``body``.
        """
        from .vision import VisualObservations

        c = self.config
        p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        ids = [int(i) for i in np.ravel(ids)]
        if len(ids) != len(p):
            raise ValueError(f"body cue: {len(p)} positions but {len(ids)} track ids; pass "
                             "one id per predicted head")
        stamp = float(stamp)
        if not len(p):
            return VisualObservations.empty(stamp)
        cal = self.calibration
        frame = self.output_frame
        if self.depth_offset:  # head centre -> face surface, as the faces are measured
            norm = np.linalg.norm(p, axis=1, keepdims=True)
            p = p - self.depth_offset * p / np.where(norm > 0, norm, 1.0)
        rect = p if frame == "rectified" else p @ cal.rotation.T
        z = rect[:, 2]
        ok = np.isfinite(p).all(axis=1) & (z > self.matcher.min_depth)
        zs = np.where(ok, z, 1.0)
        u, v, _ = cal.project(np.where(ok[:, None], p, [[0.0, 0.0, 1.0]]), frame=frame)
        side = cal.fx * self.face_width / zs
        # a face observed at a predicted head: its track shows its face this frame
        seen = np.zeros(len(p), dtype=bool)
        faces = faces.select(np.isin(faces.kind, ("face", "profile", "upper_body")))
        if len(faces):
            fb = faces.box
            fu, fv = fb[:, 0] + 0.5 * fb[:, 2] - 0.5, fb[:, 1] + 0.5 * fb[:, 3] - 0.5
            near = ((np.abs(fu[None, :] - u[:, None]) <= side[:, None])
                    & (np.abs(fv[None, :] - v[:, None]) <= side[:, None]))
            seen = ok & near.any(axis=1)
        for k in np.flatnonzero(seen):
            self._last_face[ids[k]] = stamp
        live = set(ids)
        self._last_face = {i: s for i, s in self._last_face.items() if i in live}
        want = np.array([bool(ok[k] and not seen[k] and ids[k] in self._last_face
                              and 0.0 <= stamp - self._last_face[ids[k]] <= c.max_gap)
                         for k in range(len(p))], dtype=bool)
        if not want.any():
            return VisualObservations.empty(stamp)
        boxes = body_regions(u, v, side, c)
        height, width = gl.shape[:2]
        x0, y0 = np.maximum(boxes[:, 0], 0), np.maximum(boxes[:, 1], 0)
        x1 = np.minimum(boxes[:, 0] + boxes[:, 2], width)
        y1 = np.minimum(boxes[:, 1] + boxes[:, 3], height)
        inside = (np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
                  / np.maximum(boxes[:, 2] * boxes[:, 3], 1e-9))
        want &= inside >= c.min_visible
        idx = np.flatnonzero(want)
        if not len(idx):
            return VisualObservations.empty(stamp)
        clipped = np.column_stack([x0, y0, x1 - x0, y1 - y0])[idx]
        # only the rows the columns (and the vertical search) cover are matched
        top = max(int(np.floor(clipped[:, 1].min())) - self.matcher.vertical_search - 2, 0)
        bottom = min(int(np.ceil((clipped[:, 1] + clipped[:, 3]).max()))
                     + self.matcher.vertical_search + 2, height)
        clipped[:, 1] -= top
        res = self.matcher.match(gl[top:bottom], gr[top:bottom], clipped)
        self.stats["columns"] += len(idx)
        valid = res.valid
        with np.errstate(invalid="ignore"):
            agree = valid & (np.abs(res.depth - zs[idx]) <= c.depth_tolerance * zs[idx])
        self.stats["no_match"] += int(np.count_nonzero(~valid))
        self.stats["depth_mismatch"] += int(np.count_nonzero(valid & ~agree))
        if not agree.any():
            return VisualObservations.empty(stamp)
        sel = idx[agree]
        n = len(sel)
        sigma_uv = c.lateral_sigma * cal.fx / zs[sel]
        xyz, cov = cal.triangulate(u[sel], v[sel], res.disparity[agree], sigma_uv,
                                   self.disparity_noise, frame=frame)
        if self.depth_offset:
            xyz = xyz + self.depth_offset * xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
        self.stats["observations"] += n
        quality = res.quality[agree]
        head_boxes = np.column_stack([u[sel] + 0.5 - 0.5 * side[sel],
                                      v[sel] + 0.5 - 0.5 * side[sel], side[sel], side[sel]])
        return VisualObservations(
            stamp, xyz, cov, c.weight * quality, head_boxes,
            np.full(n, "body", dtype="<U10"), np.full(n, c.weight), quality,
            res.disparity[agree], np.zeros(n, dtype=bool))
