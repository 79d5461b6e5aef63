"""Crops of the frame for extra BlazeFace passes: a grid of tiles (:func:`tile_boxes`),
and the search for small (far) faces that no other pass finds (:class:`FaceSearch`).

The whole-frame pass shrinks the frame (``detection.blazeface_input_scale``), so a face
at 3-4.5 m (18-27 px at fx = 500 px) falls near or under what the network resolves,
and the regions around the tracks' predicted heads only keep faces that some pass
found once.  :class:`FaceSearch` runs a BlazeFace model (``detection.search_variant``,
the short-range model by default: it resolves faces of ~20 px in its 128 px input)
over a horizontal band of the frame where the heads of people 3 m away or more
appear (``detection.search_band``), cut into ``search_columns`` overlapping crops that
are run in rotation, ``search_crops`` per keyframe, and keeps the small faces (side
at most ``search_max_size`` px) that the other passes did not find.  The front-end's
stereo checks then treat them as any other detection.  :class:`EdgeSearch` looks, on
the frames between keyframes of a turning head, at the strip of the image that came into
view since the last keyframe (:func:`entering_strip`).  docs/algorithms.md.
"""
from __future__ import annotations

import math

import numpy as np

from . import blazeface as bf

__all__ = ["EdgeSearch", "FaceSearch", "entering_strip", "search_crops", "tile_boxes"]


def tile_boxes(width: int, height: int, columns: int, rows: int, overlap: float
               ) -> list[tuple[float, float, float, float]]:
    """Square, overlapping tiles covering a width x height image.

    Side = (1 + overlap) x the grid cell's long side (at most the image's long
    side); the tiles' top-left corners are spaced evenly so the first and last
    touch the image borders (a tile taller or wider than the image is centred:
    the part outside is zero-filled by the letterbox).

    Returns
    -------
    list of (x0, y0, x1, y1)
        Pixels, row by row; empty when columns or rows is 0.
    """
    if columns <= 0 or rows <= 0:
        return []
    side = min(max(width, height),
               (1.0 + overlap) * max(width / columns, height / rows))

    def starts(extent, n):
        if n == 1 or side >= extent:
            return [0.5 * (extent - side)] * (1 if side >= extent else n)
        return list(np.linspace(0.0, extent - side, n))

    xs = starts(width, columns)
    ys = starts(height, rows)
    return [(x, y, x + side, y + side) for y in ys for x in xs]


def search_crops(width: int, height: int, band, columns: int, margin: float
                 ) -> list[tuple[float, float, float, float]]:
    """The crops (x0, y0, x1, y1, pixels) that cover a band of rows of an image.

    Parameters
    ----------
    width, height : int
        Image size (pixels).
    band : (top, bottom)
        Rows where face centres are searched, as fractions of the height.
    columns : int
        Number of crops side by side (>= 1).
    margin : float
        Pixels added on every side of the band and of each column, so that a face up
        to ``margin`` px wide centred anywhere in the band lies wholly inside a crop.

    Returns
    -------
    list of (x0, y0, x1, y1)
        Left to right, clipped to the image.
    """
    top, bottom = (float(v) for v in band)
    if not (0.0 <= top < bottom <= 1.0):
        raise ValueError(f"band {band} must be 0 <= top < bottom <= 1 (fractions of the "
                         "image height)")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    y0 = max(0.0, top * height - margin)
    y1 = min(float(height), bottom * height + margin)
    cell = width / columns
    out = []
    for k in range(columns):
        x0 = max(0.0, k * cell - margin)
        x1 = min(float(width), (k + 1) * cell + margin)
        out.append((x0, y0, x1, y1))
    return out


def _inside(boxes: np.ndarray, crop, width: int, height: int, tol: float = 1.0) -> np.ndarray:
    """Boxes (N, 4, x0 y0 x1 y1) wholly inside ``crop`` -- except where the crop's edge
    is the image's edge: a face cut by a crop edge gives a wrong box."""
    x0, y0, x1, y1 = crop
    left = boxes[:, 0] >= x0 - tol if x0 > 0 else np.ones(len(boxes), bool)
    up = boxes[:, 1] >= y0 - tol if y0 > 0 else np.ones(len(boxes), bool)
    right = boxes[:, 2] <= x1 + tol if x1 < width else np.ones(len(boxes), bool)
    down = boxes[:, 3] <= y1 + tol if y1 < height else np.ones(len(boxes), bool)
    return left & up & right & down


def _overlaps(boxes: np.ndarray, known: np.ndarray) -> np.ndarray:
    """True for each box (N, 4, x0 y0 x1 y1) whose centre lies in a known box (M, 4, same
    layout) or which contains a known box's centre: the same face."""
    if not len(boxes) or not len(known):
        return np.zeros(len(boxes), dtype=bool)
    cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
    cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
    kx = 0.5 * (known[:, 0] + known[:, 2])
    ky = 0.5 * (known[:, 1] + known[:, 3])
    in_known = ((cx[:, None] >= known[None, :, 0]) & (cx[:, None] <= known[None, :, 2])
                & (cy[:, None] >= known[None, :, 1]) & (cy[:, None] <= known[None, :, 3]))
    has_known = ((kx[None] >= boxes[:, None, 0]) & (kx[None] <= boxes[:, None, 2])
                 & (ky[None] >= boxes[:, None, 1]) & (ky[None] <= boxes[:, None, 3]))
    return (in_known | has_known).any(axis=1)


class FaceSearch:
    """The rotating search over the band (see the module docstring).

    Parameters
    ----------
    detector : blazeface.BlazeFaceDetector
        The model run on the crops.
    band : (top, bottom)
        ``detection.search_band``.
    columns : int
        ``detection.search_columns``.
    per_keyframe : int
        ``detection.search_crops`` (crops run per call of :meth:`detect`).
    scale : float
        ``detection.search_scale``: each crop is resized by it (fully convolutional
        models; the full-range model letterboxes each crop into 192 x 192).
    max_size : float
        ``detection.search_max_size``: largest face side kept (pixels), also the crops'
        margin.

    Attributes
    ----------
    runs, faces : int
        Network runs so far and faces kept.
    """

    def __init__(self, detector: bf.BlazeFaceDetector, band, columns: int,
                 per_keyframe: int, scale: float, max_size: float):
        self.detector = detector
        self.band = (float(band[0]), float(band[1]))
        self.columns = int(columns)
        self.per_keyframe = int(per_keyframe)
        self.scale = float(scale)
        self.max_size = float(max_size)
        self._next = 0
        self._size: tuple | None = None
        self._crops: list = []
        self.runs = 0
        self.faces = 0

    def reset(self) -> None:
        """Start the rotation again at the first crop."""
        self._next = 0

    def crops(self, width: int, height: int) -> list:
        """All crops of the band for an image size (cached)."""
        if self._size != (width, height):
            self._size = (width, height)
            self._crops = search_crops(width, height, self.band, self.columns,
                                       math.ceil(self.max_size))
        return self._crops

    def next_crops(self, width: int, height: int) -> list:
        """The crops of the next call (``per_keyframe`` of them, in rotation)."""
        crops = self.crops(width, height)
        n = min(self.per_keyframe, len(crops))
        out = [crops[(self._next + k) % len(crops)] for k in range(n)]
        self._next = (self._next + n) % len(crops)
        return out

    def detect(self, rgb: np.ndarray, known=None, low_score: float | None = None
               ) -> bf.RawFaces:
        """Faces of the next crops that no ``known`` box (N, 4, x0 y0 x1 y1: what the
        other passes found, the regions looked at) covers; at most ``max_size`` px,
        wholly inside the crop that found them; with ``low_score``, also the candidates
        scoring from it up to the threshold (``RawFaces.candidate``)."""
        height, width = rgb.shape[:2]
        known = np.zeros((0, 4)) if known is None else np.asarray(known, float).reshape(-1, 4)
        parts = []
        for crop in self.next_crops(width, height):
            raw = self.detector.detect_regions(rgb, [(crop, self.scale)], low_score)
            self.runs += 1
            if not len(raw):
                continue
            side = np.maximum(raw.boxes[:, 2] - raw.boxes[:, 0], raw.boxes[:, 3] - raw.boxes[:, 1])
            keep = ((side <= self.max_size) & _inside(raw.boxes, crop, width, height)
                    & ~_overlaps(raw.boxes, known))
            if keep.any():
                parts.append(raw.select(keep))
        if not parts:
            return bf.RawFaces.empty()
        found = bf.RawFaces.concatenate(parts)
        if len(parts) > 1:  # neighbouring crops overlap
            found = bf.nms_with_candidates(found, self.detector.nms_iou)
        self.faces += len(found)
        return found


def entering_strip(width: int, height: int, K, key_rotation, rotation, margin: float):
    """The strip (x0, y0, x1, y1, pixels) of the image that came into view since a
    keyframe as the camera turned, widened by ``margin`` px into the part seen then (a
    face cut by the keyframe's border), or None when no column came into view.

    Parameters
    ----------
    width, height : int
        Image size (pixels).
    K : array (3, 3)
        Camera matrix.
    key_rotation, rotation : array (3, 3)
        The camera's rotation (camera -> a fixed frame) at the keyframe and now.
    margin : float
        Pixels.
    """
    K = np.asarray(K, dtype=float)
    H = K @ np.asarray(rotation, float).T @ np.asarray(key_rotation, float) @ np.linalg.inv(K)
    cy = K[1, 2]
    edges = []
    for u in (0.0, float(width)):  # the keyframe's side borders, now (pure rotation)
        p = H @ np.array([u, cy, 1.0])
        edges.append(p[0] / p[2] if p[2] > 1e-9 else np.nan)
    left, right = edges
    if not np.all(np.isfinite(edges)):
        return None
    if left >= 1.0:  # the view moved to the left: new columns on the left
        return (0.0, 0.0, min(float(width), left + margin), float(height))
    if right <= width - 1.0:
        return (max(0.0, right - margin), 0.0, float(width), float(height))
    return None


class EdgeSearch:
    """Faces in the strip that came into view (:func:`entering_strip`) that no known box
    covers.

    Parameters
    ----------
    detector : blazeface.BlazeFaceDetector
    scale : float
        Each strip is resized by it (fully convolutional models).
    margin : float
        Pixels of the strip inside the part of the image seen at the keyframe.

    Attributes
    ----------
    runs, faces : int
        Network runs so far and faces kept.
    """

    def __init__(self, detector: bf.BlazeFaceDetector, scale: float, margin: float):
        self.detector = detector
        self.scale = float(scale)
        self.margin = float(margin)
        self.runs = 0
        self.faces = 0

    def detect(self, rgb: np.ndarray, crop, known=None) -> bf.RawFaces:
        """Faces of ``crop`` (x0, y0, x1, y1) wholly inside it (but at the image's edge)
        that no ``known`` box (N, 4, x0 y0 x1 y1: the tracked faces) covers."""
        height, width = rgb.shape[:2]
        known = np.zeros((0, 4)) if known is None else np.asarray(known, float).reshape(-1, 4)
        raw = self.detector.detect_regions(rgb, [(tuple(crop), self.scale)])
        self.runs += 1
        if not len(raw):
            return raw
        keep = _inside(raw.boxes, crop, width, height) & ~_overlaps(raw.boxes, known)
        self.faces += int(keep.sum())
        return raw.select(keep)
