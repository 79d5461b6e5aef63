"""The body cue: keep a track supported while its face is not seen (a head turned away).

For every track whose face was observed within ``body.max_gap`` s but is not observed in
this frame: the torso's appearance, learned below the face while it was seen, is searched
around its predicted place (normalised cross-correlation, ``body.search``) and moves the
head there (not found: no observation; a track without a learned look stays at its
predicted pixel); the head box (the back of the head) and the torso box below it are matched in
the right image, and when their stereo depth agrees with the predicted depth within
``depth_tolerance`` the head is observed at that pixel and depth with a covariance wider
than a face's (``lateral_sigma``).  The cue never observes a track that has not shown its
face recently, so it cannot create tracks and it stops ``max_gap`` s after the face was
last seen; where the person has left, the boxes show the background (another depth) and
give nothing.  Details: docs/algorithms.md, "Body cue".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from .config import ConfigError, StageConfig, param

__all__ = ["BodyCueConfig", "BodyCue", "body_regions", "MAX_BODY_OBSERVATIONS"]

#: most tracks the cue observes in one frame (the most probable first, as the tracks come):
#: with the largest detection.max_detections and vision.max_interest_points a frame still
#: fits the 256 points the fusion and tracker take (pipeline.buffer.MAX_VISUAL_POINTS)
MAX_BODY_OBSERVATIONS = 6


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
    torso_width: float = param(
        1.5, "Width of the torso box, in face widths (vision.face_width at the predicted "
        "depth).", low=0.2, high=4.0)
    torso_top: float = param(
        1.3, "Top of the torso box below the head centre, in face widths.",
        low=0.0, high=6.0)
    torso_bottom: float = param(
        2.8, "Bottom of the torso box below the head centre, in face widths.",
        low=0.1, high=8.0)
    head_size: float = param(
        0.8, "Side of the head box (back of the head), in face widths, centred on the "
        "head.", low=0.2, high=2.0)
    search: float = param(
        0.6, "The torso's appearance (learned while the face is seen) is searched this many "
        "face widths left and right of its predicted place (half as far up and down); not "
        "found (below min_score, or its search window leaves the image): no observation.  "
        "0 disables the search (the head stays at its predicted pixel).",
        low=0.0, high=3.0)
    min_score: float = param(
        0.5, "Smallest normalised correlation of the torso's appearance that moves the "
        "head to where it was found.", low=-1.0, high=1.0)
    depth_tolerance: float = param(
        0.15, "The stereo depth of the head or torso box must be within this fraction of "
        "the predicted depth (else nothing is observed).", low=0.01, high=1.0)
    lateral_sigma: float = param(
        0.1, "Standard deviation (m) of the observed head across the viewing ray.",
        low=0.01, high=2.0)
    weight: float = param(
        0.5, "Weight of a body observation (times the match quality); a face's is its "
        "detector confidence times its match quality.", low=0.0, high=1.0)
    min_visible: float = param(
        0.5, "Smallest fraction of the column inside the image for it to be matched.",
        low=0.05, high=1.0)
    hold_height: bool = param(
        True, "Place the observed head at the height (rectified camera frame, metres) of "
        "the track's face when it was last seen, at the predicted depth, instead of the "
        "rows where the torso's look was found (with those, the observed head could drift "
        "down the body).")
    face_above: float = param(
        3.0, "A face observation in the track's column (within one face width across) "
        "from this many face widths above its predicted head down to one below, whose "
        "depth is within depth_tolerance of the predicted depth, is the track's face "
        "(seen: no body observation).  0: only a face within one face width of the "
        "predicted head counts.", low=0.0, high=10.0)

    def validate(self):
        if self.torso_top >= self.torso_bottom:
            raise ConfigError(
                f"parameters 'body.torso_top' = {self.torso_top} and 'body.torso_bottom' = "
                f"{self.torso_bottom} are not allowed: need torso_top < torso_bottom")


def body_regions(u, v, side, config: BodyCueConfig) -> tuple[np.ndarray, np.ndarray]:
    """Head boxes and torso boxes (K, 4) x, y, w, h (pixels) of heads at pixels (u, v)
    whose face box is ``side`` px wide (pixel centres at integers, as
    :func:`.vision.head_regions`)."""
    u, v, side = (np.asarray(a, dtype=np.float64).ravel() for a in (u, v, side))
    h = config.head_size * side
    w = config.torso_width * side
    head = np.column_stack([u + 0.5 - 0.5 * h, v + 0.5 - 0.5 * h, h, h])
    torso = np.column_stack([u + 0.5 - 0.5 * w, v + 0.5 + config.torso_top * side, w,
                             (config.torso_bottom - config.torso_top) * side])
    return head, torso


def _inside(boxes, width, height):
    """Boxes clipped to the image and the fraction of each inside it."""
    x0, y0 = np.maximum(boxes[:, 0], 0), np.maximum(boxes[:, 1], 0)
    x1 = np.minimum(boxes[:, 0] + boxes[:, 2], width)
    y1 = np.minimum(boxes[:, 1] + boxes[:, 3], height)
    w, h = np.clip(x1 - x0, 0, None), np.clip(y1 - y0, 0, None)
    return (np.column_stack([x0, y0, w, h]),
            w * h / np.maximum(boxes[:, 2] * boxes[:, 3], 1e-9))


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
    State per track id: the stamp of its last face observation near its predicted
    head and the torso's appearance below that face (grey patch and the face width it
    was cut at); :meth:`reset` forgets them.  ``stats`` counts the tracks looked at,
    the observations, the torso searches that moved the head, and the rejections (torso
    look not found, depth mismatch, no stereo match).
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
        self._torso: dict[int, tuple] = {}  # id -> (grey patch, face width px)
        self._height: dict[int, float] = {}  # id -> face's rectified y (m) when last seen
        self.stats = {"tracks": 0, "observations": 0, "moved": 0, "not_found": 0,
                      "depth_mismatch": 0, "no_match": 0}

    def reset(self) -> None:
        self._last_face = {}
        self._torso = {}
        self._height = {}

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
        height, width = gl.shape[:2]
        # a face observed at a predicted head: its track shows its face this frame
        faces = faces.select(np.isin(faces.kind, ("face", "profile", "upper_body")))
        seen = np.zeros(len(p), dtype=bool)
        if len(faces):
            fb = faces.box
            fu, fv = fb[:, 0] + 0.5 * fb[:, 2] - 0.5, fb[:, 1] + 0.5 * fb[:, 3] - 0.5
            dist = np.maximum(np.abs(fu[None, :] - u[:, None]), np.abs(fv[None, :] - v[:, None]))
            near = dist <= side[:, None]
            # the face's width in pixels from its stereo depth (as the predicted heads')
            with np.errstate(divide="ignore", invalid="ignore"):
                f_depth = cal.depth_from_disparity(faces.disparity)
                f_side = cal.fx * self.face_width / f_depth
            if c.face_above > 0:  # a face above a head that drifted down the body
                dv = fv[None, :] - v[:, None]
                column = ((np.abs(fu[None, :] - u[:, None]) <= side[:, None])
                          & (dv >= -c.face_above * side[:, None]) & (dv <= side[:, None])
                          & (np.abs(f_depth[None, :] - zs[:, None])
                             <= c.depth_tolerance * zs[:, None]))
                near |= column
            seen = ok & near.any(axis=1)
            f_rect = faces.xyz if frame == "rectified" else faces.xyz @ cal.rotation.T
            for k in np.flatnonzero(seen):  # the torso below the face, for the search
                j = int(np.argmin(np.where(near[k], dist[k], np.inf)))
                if not (np.isfinite(f_side[j]) and f_side[j] > 0):
                    continue
                if np.isfinite(f_rect[j, 1]):
                    self._height[ids[k]] = float(f_rect[j, 1])
                _, torso = body_regions(fu[j], fv[j], f_side[j], c)
                box, frac = _inside(torso, width, height)
                if frac[0] >= 0.999 and box[0, 2] >= 4 and box[0, 3] >= 4:
                    x0, y0, w, h = (int(round(x)) for x in box[0])
                    self._torso[ids[k]] = (gl[y0:y0 + h, x0:x0 + w].copy(), float(f_side[j]))
        for k in np.flatnonzero(seen):
            self._last_face[ids[k]] = stamp
        live = set(ids)
        self._last_face = {i: t for i, t in self._last_face.items() if i in live}
        self._torso = {i: t for i, t in self._torso.items() if i in live}
        self._height = {i: t for i, t in self._height.items() if i in live}
        want = np.array([bool(ok[k] and not seen[k] and ids[k] in self._last_face
                              and 0.0 <= stamp - self._last_face[ids[k]] <= c.max_gap)
                         for k in range(len(p))], dtype=bool)
        if not want.any():
            return VisualObservations.empty(stamp)
        idx = np.flatnonzero(want)[:MAX_BODY_OBSERVATIONS]
        self.stats["tracks"] += len(idx)
        u, v = u.copy(), v.copy()
        held = np.array([c.hold_height and ids[k] in self._height for k in idx], dtype=bool)
        for k in idx[held]:  # the head at the height its face was last seen at
            v[k] = cal.fy * self._height[ids[k]] / zs[k] + cal.cy
        lost = np.zeros(len(p), dtype=bool)
        for n_k, k in enumerate(idx):  # move the head to where its torso is
            moved = self._search(gl, ids[k], u[k], v[k], side[k])
            if moved is not None:
                u[k] = moved[0]
                if not held[n_k]:
                    v[k] = moved[1]
                self.stats["moved"] += 1
            elif c.search > 0 and ids[k] in self._torso:
                lost[k] = True  # its look is known but not found: not observed
        self.stats["not_found"] += int(np.count_nonzero(lost))
        idx = idx[~lost[idx]]
        if not len(idx):
            return VisualObservations.empty(stamp)
        head, torso = body_regions(u[idx], v[idx], side[idx], c)
        hbox, hin = _inside(head, width, height)
        tbox, tin = _inside(torso, width, height)
        hin, tin = hin >= c.min_visible, tin >= c.min_visible
        boxes = np.concatenate([hbox[hin], tbox[tin]])
        if not len(boxes):
            return VisualObservations.empty(stamp)
        # only the rows the boxes (and the vertical search) cover are matched
        top = max(int(np.floor(boxes[:, 1].min())) - self.matcher.vertical_search - 2, 0)
        bottom = min(int(np.ceil((boxes[:, 1] + boxes[:, 3]).max()))
                     + self.matcher.vertical_search + 2, height)
        boxes[:, 1] -= top
        res = self.matcher.match(gl[top:bottom], gr[top:bottom], boxes)
        n_h = int(hin.sum())
        disp = np.full((len(idx), 2), np.nan)
        qual = np.zeros((len(idx), 2))
        valid = np.zeros((len(idx), 2), dtype=bool)
        for col, mask, part in ((0, hin, slice(0, n_h)), (1, tin, slice(n_h, None))):
            disp[mask, col] = res.disparity[part]
            qual[mask, col] = res.quality[part]
            valid[mask, col] = res.valid[part]
        z_pred = zs[idx][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            depth = cal.depth_from_disparity(disp)
            agree = valid & (np.abs(depth - z_pred) <= c.depth_tolerance * z_pred)
        self.stats["no_match"] += int(np.count_nonzero(~valid.any(axis=1)))
        got = agree.any(axis=1)
        self.stats["depth_mismatch"] += int(np.count_nonzero(valid.any(axis=1) & ~got))
        if not got.any():
            return VisualObservations.empty(stamp)
        wq = np.where(agree, qual, 0.0)[got]
        disparity = (np.nansum(np.where(agree[got], disp[got], 0.0) * wq, axis=1)
                     / np.maximum(wq.sum(axis=1), 1e-12))
        quality = wq.max(axis=1)
        sel = idx[got]
        n = len(sel)
        sigma_uv = c.lateral_sigma * cal.fx / zs[sel]
        xyz, cov = cal.triangulate(u[sel], v[sel], disparity, sigma_uv, self.disparity_noise,
                                   frame=frame)
        if self.depth_offset:
            xyz = xyz + self.depth_offset * xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
        self.stats["observations"] += n
        head_boxes = np.column_stack([u[sel] + 0.5 - 0.5 * side[sel],
                                      v[sel] + 0.5 - 0.5 * side[sel], side[sel], side[sel]])
        return VisualObservations(
            stamp, xyz, cov, c.weight * quality, head_boxes,
            np.full(n, "body", dtype="<U10"), np.full(n, c.weight), quality, disparity,
            np.zeros(n, dtype=bool))

    def _search(self, gl, tid: int, u: float, v: float, side: float):
        """The head pixel (u, v) moved to where the track's torso appearance matches best
        around its predicted place, or None (no appearance, too weak a match)."""
        c = self.config
        if c.search <= 0 or tid not in self._torso:
            return None
        patch, side0 = self._torso[tid]
        scale = side / side0
        if abs(scale - 1.0) > 0.03:
            size = (max(int(round(patch.shape[1] * scale)), 4),
                    max(int(round(patch.shape[0] * scale)), 4))
            patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        th, tw = patch.shape
        _, torso = body_regions(u, v, side, c)
        x0, y0 = torso[0, 0], torso[0, 1]
        mx, my = c.search * side, 0.5 * c.search * side
        height, width = gl.shape[:2]
        wx0, wy0 = int(max(np.floor(x0 - mx), 0)), int(max(np.floor(y0 - my), 0))
        wx1 = int(min(np.ceil(x0 + tw + mx), width))
        wy1 = int(min(np.ceil(y0 + th + my), height))
        if wx1 - wx0 < tw + 2 or wy1 - wy0 < th + 2:
            return None
        res = cv2.matchTemplate(gl[wy0:wy1, wx0:wx1], patch, cv2.TM_CCOEFF_NORMED)
        _, score, _, loc = cv2.minMaxLoc(res)
        if not score >= c.min_score:
            return None
        return u + (wx0 + loc[0] - x0), v + (wy0 + loc[1] - y0)
