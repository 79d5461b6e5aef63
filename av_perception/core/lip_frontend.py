"""The lip cue of the visual front-end: face mesh on each face box, a lip history per box
track, and the speaking evidence of each box (docs/algorithms.md, "Visual speech
activity").

Every face box of a frame -- a detector keyframe's detections and the template-tracked
boxes between keyframes alike -- is given to the face mesh (BlazeFace keypoints place the
crop; a keyframe detection that already carries its mesh, ``detection.landmarks``, is not
run twice).  Boxes are chained from frame to frame by overlap (intersection-over-union
>= ``lips.match_iou`` with the previous frame's boxes, greedy, best first): one chain is
one box track with its own :class:`~.lip_activity.LipActivity` window; when the camera's
rotation is known for both frames (a turning head), the previous boxes are first moved
where the rotation took them (:func:`turned_boxes`), as the box tracker searches them:
at 60 deg/s a face moves ~35 px per frame, more than its own width at 2 m.  A chain that
breaks, or whose eye span jumps (``lips.max_jump``: another face under the box), starts a
new window, whose evidence stays unknown until ``lips.min_samples`` openings arrived.

Bounded cost: with ``lips.every_k`` > 1 a chain's face is meshed only when ``every_k``
frames have passed since its last mesh (a new chain's first mesh is delayed by its id
modulo ``every_k``, so that faces seen together are meshed on different frames and the
cost per frame stays flat); ``lips.max_faces_per_frame`` caps the meshes of one frame
(chains waiting longest first, then the largest boxes).  A chain not meshed on a frame
keeps the evidence of its window (:meth:`~.lip_activity.LipActivity.hold`).
"""
from __future__ import annotations

import math
import time

import numpy as np

from .lip_activity import LipActivity, LipConfig, LipEvidence

__all__ = ["LipFrontEnd", "chain_boxes", "image_motion", "turned_boxes"]


def turned_boxes(boxes, K, R_before, R_now) -> np.ndarray:
    """Boxes (N, 4: x, y, w, h, pixels) moved where a rotation of the camera took their
    centres (homography K R_now^T R_before K^-1, pure rotation; size kept).

    Parameters
    ----------
    boxes : array (N, 4)
    K : array (3, 3)
        Camera matrix of the (rectified left) image.
    R_before, R_now : array (3, 3)
        The camera's rotation (camera -> a fixed frame) when the boxes were seen and now.

    Returns
    -------
    array (N, 4); a box whose centre maps behind the camera or to a non-finite point is
    returned unchanged.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    if not len(b):
        return b
    H = np.asarray(K, float) @ np.asarray(R_now, float).T @ np.asarray(R_before, float) \
        @ np.linalg.inv(np.asarray(K, float))
    c = np.stack([b[:, 0] + 0.5 * b[:, 2], b[:, 1] + 0.5 * b[:, 3], np.ones(len(b))])
    m = H @ c
    ok = (m[2] > 1e-9) & np.all(np.isfinite(m), axis=0)
    z = np.where(ok, m[2], 1.0)
    b[:, 0] = np.where(ok, m[0] / z - 0.5 * b[:, 2], b[:, 0])
    b[:, 1] = np.where(ok, m[1] / z - 0.5 * b[:, 3], b[:, 1])
    return b


def image_motion(previous, boxes, pred) -> np.ndarray:
    """How far each box moved in the image since the previous frame, in box widths.

    Parameters
    ----------
    previous : array (P, 4)
        x, y, w, h of the previous frame's boxes (as seen, not turned).
    boxes : array (N, 4)
        This frame's boxes.
    pred : array (N,) int
        Row of ``previous`` each box continues (:func:`chain_boxes`), -1 for none.

    Returns
    -------
    array (N,): |centre - previous centre| / mean width; NaN without a predecessor.
    """
    prev = np.asarray(previous, dtype=np.float64).reshape(-1, 4)
    cur = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    if len(pred) != len(cur):
        raise ValueError(f"pred has {len(pred)} entries for {len(cur)} boxes")
    out = np.full(len(cur), np.nan)
    has = (pred >= 0) & (pred < len(prev))
    if not np.any(has):
        return out
    p = prev[pred[has]]
    c = cur[has]
    d = np.hypot(c[:, 0] + 0.5 * c[:, 2] - p[:, 0] - 0.5 * p[:, 2],
                 c[:, 1] + 0.5 * c[:, 3] - p[:, 1] - 0.5 * p[:, 3])
    width = 0.5 * (c[:, 2] + p[:, 2])
    out[has] = np.where(width > 0.0, d / np.maximum(width, 1e-9), np.nan)
    return out


def chain_boxes(previous, boxes, min_iou: float) -> np.ndarray:
    """Index of each box's predecessor (greedy by intersection-over-union).

    Parameters
    ----------
    previous : array (P, 4)
        x, y, w, h of the previous frame's boxes (pixels).
    boxes : array (N, 4)
        This frame's boxes.
    min_iou : float
        Pairs overlapping less are not chained.

    Returns
    -------
    array (N,) int: row of ``previous`` continued by each box, -1 for none (each
    previous box continues at most one box).
    """
    from .detection import box_iou

    prev = np.asarray(previous, dtype=np.float64).reshape(-1, 4)
    cur = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.full(len(cur), -1, dtype=np.int64)
    if not len(prev) or not len(cur):
        return out
    iou = box_iou(cur, prev)
    iou = np.where(np.isfinite(iou), iou, 0.0)
    while True:
        i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[i, j] < max(min_iou, 1e-9):
            return out
        out[i] = j
        iou[i, :] = -1.0
        iou[:, j] = -1.0


class LipFrontEnd:
    """Face boxes of one frame -> speaking evidence of each box.

    Parameters
    ----------
    config : LipConfig
    landmarker : object with ``run(rgb, box_xyxy, keypoints) -> FaceLandmarks | None``,
        optional.  Default: :class:`~.blazeface.FaceLandmarker` of ``config.model``;
        when it cannot be loaded, :attr:`warning` says why (naming the file and the fix)
        and every box's evidence is unknown.

    Attributes
    ----------
    warning : str or None
        Why the lip cue is off although ``lips.enabled`` asks for it.
    stats : dict
        ``frames``, ``boxes`` (face boxes seen), ``meshed`` (boxes given to the mesh or
        carrying one), ``meshes`` (valid meshes),
        ``mesh_errors``, ``chains`` (histories started), ``time`` (s, total).
    """

    def __init__(self, config: LipConfig | None = None, landmarker=None):
        from . import blazeface as bf
        from .detection import BLAZEFACE_CENTRE_SHIFT

        self.config = config or LipConfig()
        self._shift = BLAZEFACE_CENTRE_SHIFT
        self.warning: str | None = None
        self.landmarker = landmarker
        if landmarker is None:
            try:
                self.landmarker = bf.FaceLandmarker(self.config.model, self.config.model_runtime)
            except bf.ModelError as exc:
                self.warning = (f"lip cue off (lips.enabled): the face mesh cannot be loaded: "
                                f"{exc}; speaking status from audio only (set lips.model to "
                                "a face_landmark.tflite file, or lips.enabled false)")
        self.activity = LipActivity(self.config)
        self._boxes = np.zeros((0, 4))
        self._ids = np.zeros(0, dtype=np.int64)
        self._rotation = None  # the camera's rotation when self._boxes were seen
        self._next = 0
        self.last_time = 0.0
        self._last_mesh: dict = {}  # chain id -> frame index of its last mesh
        self._frame = 0
        self.stats = {"frames": 0, "boxes": 0, "meshed": 0, "meshes": 0, "mesh_errors": 0,
                      "chains": 0, "time": 0.0}

    @property
    def active(self) -> bool:
        """True when a face mesh is available."""
        return self.landmarker is not None

    def reset(self) -> None:
        """Forget every history (a jump in the input)."""
        self.activity = LipActivity(self.config)
        self._boxes = np.zeros((0, 4))
        self._ids = np.zeros(0, dtype=np.int64)
        self._rotation = None
        self._last_mesh = {}

    def mesh_schedule(self, detections, ids) -> np.ndarray:
        """Which detections of this frame get the face mesh (``lips.every_k``,
        ``lips.max_faces_per_frame``).

        Parameters
        ----------
        detections : list of Detection
        ids : array (N,) int
            Chain id of each detection.

        Returns
        -------
        array (N,) bool.  Non-face boxes: False; a face that already carries its mesh,
        or has no keypoints to place one (Haar, YuNet): True (it costs nothing and is
        not counted in ``max_faces_per_frame``).
        """
        k = self.config.every_k
        cap = self.config.max_faces_per_frame
        out = np.zeros(len(detections), dtype=bool)
        wait = {}
        for i, d in enumerate(detections):
            if d.kind != "face":
                continue
            if d.landmarks is not None or d.keypoints is None:
                out[i] = True
                continue
            cid = int(ids[i])
            last = self._last_mesh.get(cid)
            if last is None:  # new chain: staggered first mesh
                last = self._frame - k + cid % k
                self._last_mesh[cid] = last
            if self._frame - last >= k:
                wait[i] = (self._frame - last, float(d.w) * float(d.h))
        due = sorted(wait, key=lambda i: wait[i], reverse=True)
        if cap > 0:
            due = due[:cap]
        out[due] = True
        return out

    def _mesh(self, rgb, det):
        """The face mesh points (468, 3) and presence of a detection, or (None, 0)."""
        lm = det.landmarks
        if lm is None:
            if det.keypoints is None or rgb is None or self.landmarker is None:
                return None, 0.0
            shift = self._shift * det.h  # the detection box sits above BlazeFace's box
            box = (det.x, det.y + shift, det.x + det.w, det.y + det.h + shift)
            try:
                lm = self.landmarker.run(rgb, box, det.keypoints)
            except Exception:  # cv2.error, a broken model: this face says nothing
                self.stats["mesh_errors"] += 1
                return None, 0.0
            if lm is None:
                return None, 0.0
        pts = np.asarray(lm.points, dtype=np.float64)
        if pts.shape != (468, 3) or not np.all(np.isfinite(pts)):
            return None, 0.0
        return pts, float(lm.presence)

    def observe(self, image, detections, stamp: float, rotation=None,
                K=None) -> tuple[np.ndarray, np.ndarray]:
        """Speaking evidence of each detection of a frame.

        Parameters
        ----------
        image : array (H, W, 3) BGR or (H, W) grey, uint8
            The rectified left image the detections are in.
        detections : list of Detection
            The frame's boxes (keyframe detections or tracked boxes).
        stamp : float
            s.
        rotation, K : array (3, 3), optional
            The camera's rotation (camera -> a fixed frame) at this frame and the image's
            camera matrix: with the previous frame's rotation, its boxes are moved where
            the camera's turn took them before they are chained (None: not known).

        Returns
        -------
        lip_llr : array (N,)
            Reliability-weighted speaking log-likelihood ratio of each detection's box
            track (0 = unknown).
        reliability : array (N,)
            [0, 1] (0 = unknown).
        """
        t0 = time.perf_counter()
        n = len(detections)
        llr = np.zeros(n)
        rel = np.zeros(n)
        if not self.active or not math.isfinite(float(stamp)):
            return llr, rel
        boxes = np.array([[d.x, d.y, d.w, d.h] for d in detections],
                         dtype=np.float64).reshape(-1, 4)
        previous = self._boxes
        if rotation is not None and self._rotation is not None and K is not None:
            previous = turned_boxes(previous, K, self._rotation, rotation)
        pred = chain_boxes(previous, boxes, self.config.match_iou)
        ids = np.empty(n, dtype=np.int64)
        for i in range(n):
            if pred[i] >= 0:
                ids[i] = self._ids[pred[i]]
            else:
                ids[i] = self._next
                self._next += 1
                self.stats["chains"] += 1
        motion = image_motion(self._boxes, boxes, pred)
        todo = self.mesh_schedule(detections, ids)
        rgb = None
        if any(todo[i] and d.keypoints is not None and d.landmarks is None
               for i, d in enumerate(detections)):
            from .blazeface import to_rgb

            rgb = to_rgb(image)
        for i, d in enumerate(detections):
            self.stats["boxes"] += 1
            if d.kind == "face" and not todo[i]:  # not this frame's turn: keep the window
                ev: LipEvidence = self.activity.hold(int(ids[i]), float(stamp))
                llr[i], rel[i] = ev.log_lr, ev.reliability
                continue
            pts, presence = (None, 0.0)
            frames = 1
            if d.kind == "face":
                pts, presence = self._mesh(rgb, d)
                last = self._last_mesh.get(int(ids[i]), self._frame - 1)
                frames = max(1, self._frame - last)
                self._last_mesh[int(ids[i])] = self._frame
                self.stats["meshed"] += 1
            sample = None
            if pts is not None:
                self.stats["meshes"] += 1
                sample = self.activity.sample(pts, presence, motion[i])
            ev = self.activity.update(int(ids[i]), float(stamp), sample, frames)
            llr[i], rel[i] = ev.log_lr, ev.reliability
        self.activity.forget(ids.tolist())
        keep = set(ids.tolist())
        self._last_mesh = {c: f for c, f in self._last_mesh.items() if c in keep}
        self._frame += 1
        self._boxes, self._ids = boxes, ids
        self._rotation = None if rotation is None else np.asarray(rotation, dtype=float)
        self.stats["frames"] += 1
        self.last_time = time.perf_counter() - t0
        self.stats["time"] += self.last_time
        return llr, rel
