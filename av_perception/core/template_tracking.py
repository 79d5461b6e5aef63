"""Following detection boxes between detector keyframes by template matching (the cheap
frames of :class:`~av_perception.core.detection.DetectionPipeline` with ``every_k > 1``).

Boxes are the detections' x, y, w, h in pixels; images are uint8 grey (H, W), converted
once by the caller (:func:`~av_perception.core.detection.gray_image`).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["BoxTracker"]


class BoxTracker:
    """Follows detection boxes between detector keyframes by template matching.

    The template of each box is cut from the keyframe; on later frames it is
    searched (``cv2.matchTemplate``, normalised correlation coefficient) in a
    window of ``search`` x box size around the previous position.  Confidence
    of a tracked box = keyframe confidence x correlation.  A box cut by the image border
    is dropped, or with ``border_boxes`` followed by its part inside the image when that
    is at least half of it (the whole box moves with that part).
    """

    def __init__(self, search: float = 0.5, min_score: float = 0.6,
                 border_boxes: bool = False):
        self.search = float(search)
        self.min_score = float(min_score)
        self.border_boxes = bool(border_boxes)
        #: (detection, template, keyframe confidence, rotation, template's offset (x, y, px)
        #: from the box's rounded corner: 0 unless the border cut the box)
        self._tracks: list[tuple] = []
        #: the camera's rotation (3, 3, camera -> a fixed frame) at the frame given next
        #: to :meth:`start` / :meth:`update`, and the camera matrix K (3, 3): with both, a
        #: box is searched where the camera's turning since its frame moved it
        #: (H = K R_now^T R_box K^-1; a turning head); None: no motion
        self.rotation: np.ndarray | None = None
        self.K: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._tracks)

    def start(self, gray: np.ndarray, detections) -> None:
        """Start tracking ``detections`` from this (keyframe) uint8 grey image (H, W)."""
        self._tracks = []
        self.add(gray, detections)

    def add(self, gray: np.ndarray, detections) -> None:
        """Also track ``detections`` of this uint8 grey image (H, W) from now on (the boxes
        held so far are kept)."""
        height, width = gray.shape
        for d in detections:
            x0, y0 = int(round(d.x)), int(round(d.y))
            x1, y1 = int(round(d.x + d.w)), int(round(d.y + d.h))
            corner = (x0, y0)  # the box moves as its template (at whole pixels)
            if self.border_boxes:  # the part inside the image, if at least half the box
                area = max(1, (x1 - x0) * (y1 - y0))
                x0, y0 = max(x0, 0), max(y0, 0)
                x1, y1 = min(x1, width), min(y1, height)
                if (x1 - x0) * (y1 - y0) < 0.5 * area:
                    continue
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height or x1 - x0 < 4 or y1 - y0 < 4:
                continue
            self._tracks.append((d, gray[y0:y1, x0:x1].copy(), d.confidence, self.rotation,
                                 (x0 - corner[0], y0 - corner[1])))

    def update(self, gray: np.ndarray) -> list:
        """Track every box into this uint8 grey image (H, W); returns the boxes still
        held (the detections moved, with ``moved``)."""
        height, width = gray.shape
        kept = []
        out = []
        R_now, K = self.rotation, self.K
        for det, tmpl, conf0, R_box, (ox, oy) in self._tracks:
            th, tw = tmpl.shape
            margin = max(4, int(math.ceil(self.search * max(tw, th))))
            bx, by = det.x, det.y
            if R_now is not None and R_box is not None and K is not None:
                # the camera turned: search where the box centre went
                H = K @ R_now.T @ R_box @ np.linalg.inv(K)
                c = H @ np.array([det.x + 0.5 * det.w, det.y + 0.5 * det.h, 1.0])
                if c[2] > 1e-9 and np.all(np.isfinite(c)):
                    bx, by = c[0] / c[2] - 0.5 * det.w, c[1] / c[2] - 0.5 * det.h
            bx, by = bx + ox, by + oy  # the template's corner
            x0 = max(0, int(round(bx)) - margin)
            y0 = max(0, int(round(by)) - margin)
            x1 = min(width, int(round(bx)) + tw + margin)
            y1 = min(height, int(round(by)) + th + margin)
            if x1 - x0 < tw or y1 - y0 < th:
                continue
            res = cv2.matchTemplate(gray[y0:y1, x0:x1], tmpl, cv2.TM_CCOEFF_NORMED)
            _, score, _, loc = cv2.minMaxLoc(res)
            if not score >= self.min_score:
                continue
            dx, dy = _subpixel_peak(res, loc)
            moved = det.moved(x0 + loc[0] + dx - ox, y0 + loc[1] + dy - oy, conf0 * score)
            kept.append((moved, tmpl, conf0, R_now, (ox, oy)))
            out.append(moved)
        self._tracks = kept
        return out

    def reset(self) -> None:
        self._tracks = []


def _subpixel_peak(res: np.ndarray, loc) -> tuple[float, float]:
    """Parabolic sub-pixel offset of the correlation peak at ``loc`` (x, y)."""
    x, y = loc
    out = [0.0, 0.0]
    for axis, (i, n) in enumerate(((x, res.shape[1]), (y, res.shape[0]))):
        if 0 < i < n - 1:
            if axis == 0:
                a, b, c = res[y, x - 1], res[y, x], res[y, x + 1]
            else:
                a, b, c = res[y - 1, x], res[y, x], res[y + 1, x]
            den = a - 2 * b + c
            if den < 0:
                out[axis] = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return out[0], out[1]
