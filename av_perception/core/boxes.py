"""Head-box geometry shared by the detectors: intersection over union and non-maximum
suppression (boxes x, y, w, h in pixels; detections with ``head_box()`` and
``confidence``, :class:`~av_perception.core.detection.Detection`)."""
from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "non_max_suppression"]


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas of boxes a (N, 4) and b (M, 4) -> (N, M)."""
    iw = (np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
          - np.maximum(a[:, None, 0], b[None, :, 0]))
    ih = (np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
          - np.maximum(a[:, None, 1], b[None, :, 1]))
    return np.clip(iw, 0, None) * np.clip(ih, 0, None)


def box_iou(a, b) -> np.ndarray:
    """Intersection over union of boxes a (N, 4) and b (M, 4) (x, y, w, h) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = _intersection(a, b)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def non_max_suppression(detections, iou_threshold: float = 0.3,
                        max_detections: int | None = None) -> list:
    """Greedy non-maximum suppression on head boxes, across detector kinds.

    A detection is dropped when its head box overlaps a more confident kept
    one by more than ``iou_threshold`` (IoU), or lies mostly inside it
    (intersection > 0.8 of the smaller box), so a face and the upper body
    around it, or a frontal and a profile hit of the same head, give one
    observation.
    """
    dets = sorted(detections, key=lambda d: -d.confidence)
    if not dets:
        return []
    heads = np.array([d.head_box() for d in dets])
    iou = box_iou(heads, heads)
    area = heads[:, 2] * heads[:, 3]
    contained = _intersection(heads, heads) > 0.8 * np.minimum(area[:, None], area[None])
    keep: list[int] = []
    for i in range(len(dets)):
        if all(iou[i, j] <= iou_threshold and not contained[i, j] for j in keep):
            keep.append(i)
            if max_detections is not None and len(keep) >= max_detections:
                break
    return [dets[i] for i in keep]
