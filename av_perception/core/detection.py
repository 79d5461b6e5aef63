"""Person detectors on the (rectified) left image and their common output type.

:class:`DetectionPipeline` runs the configured detectors -- MediaPipe BlazeFace
(:mod:`.blazeface`, the default; Haar's frontal cascade when its model is missing, with
:attr:`DetectionPipeline.fallback_reason`), OpenCV Haar cascades, YuNet -- merges their
head boxes by non-maximum suppression and, with ``every_k > 1``, follows the boxes between
keyframes by template matching.  Boxes are x, y, w, h in pixels of the full-resolution
image (x right, y down; top-left corner).  The models and choices: docs/algorithms.md.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import blazeface as bf
from .boxes import box_iou, non_max_suppression
from .detection_config import DETECTOR_SETS, DetectionConfig
from .face_search import EdgeSearch, FaceSearch, entering_strip, tile_boxes
from .poses import rotation_angle
from .template_tracking import BoxTracker

__all__ = [
    "DetectorError",
    "Detection",
    "BlazeFacePass",
    "FaceLandmarks",
    "tile_boxes",
    "DetectionConfig",
    "DETECTOR_SETS",
    "HaarDetector",
    "YuNetDetector",
    "BoxTracker",
    "DetectionPipeline",
    "box_iou",
    "non_max_suppression",
    "HAAR_CASCADES",
]

#: Haar cascade file per detector name (files of ``cv2.data.haarcascades``).
HAAR_CASCADES = {
    "frontal": "haarcascade_frontalface_default.xml",
    "frontal_alt2": "haarcascade_frontalface_alt2.xml",
    "profile": "haarcascade_profileface.xml",
    "upper_body": "haarcascade_upperbody.xml",
}


FaceLandmarks = bf.FaceLandmarks

#: BlazeFace boxes span brows to chin: they are moved up by this fraction of their height so
#: that their centre is the face centre as the Haar boxes (and the simulator's truth) place
#: it.  Measured (BlazeFace centre - Haar-box centre) / height on the astronaut and Grace
#: Hopper portraits pasted at 30-120 px: 0.113 and 0.119 (sd 0.02).
BLAZEFACE_CENTRE_SHIFT = 0.115
#: px of the strip searched for entering faces inside the part seen at the keyframe (a
#: face cut by its border: faces up to ~96 px, 0.16 m at 0.8 m with fx 500)
EDGE_MARGIN = 48.0
#: ``detection.refine_small_faces``: side (px) of the crop centred on a small face that the
#: search model (short range: its 128 px input at scale 1) looks at, the least score of its
#: box (MediaPipe's short-range threshold), and the range of its side / the first box's
#: side for it to be taken as the same face's.
REFINE_CROP = 128.0
REFINE_MIN_SCORE = 0.5
REFINE_SIDE_RATIO = (0.5, 2.0)


class DetectorError(RuntimeError):
    """A detector cannot be built or run (missing model file, bad image)."""


# ---------------------------------------------------------------------------
# Detection type and box utilities
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Detection:
    """One detected person part.

    Attributes
    ----------
    x, y, w, h : float
        Box in image pixels (top-left corner, width, height).
    confidence : float
        [0, 1], detector-specific score mapped to a probability-like value.
    kind : str
        ``"face"`` (frontal or YuNet), ``"profile"`` or ``"upper_body"``.
    source : str
        Detector that produced it (``haar_frontal``, ``haar_profile``,
        ``haar_upper_body``, ``yunet``, ``blazeface``).
    tracked : bool
        True when the box was carried from the last keyframe by tracking.
    keypoints : array (6, 2) or None
        BlazeFace only: right eye, left eye, nose tip, mouth centre, right and
        left ear tragion (the person's right/left), full-image pixels.
    landmarks : FaceLandmarks or None
        Face mesh and its measures (``detection.landmarks``), full-image pixels.
    candidate : bool
        BlazeFace: scored under its pass's threshold but at least
        ``detection.candidate_score_threshold``; the front-end keeps it only when confirmed
        (``vision.candidate_confirmation``).
    """

    x: float
    y: float
    w: float
    h: float
    confidence: float
    kind: str
    source: str = ""
    tracked: bool = False
    keypoints: np.ndarray | None = field(default=None, compare=False, repr=False)
    landmarks: FaceLandmarks | None = field(default=None, compare=False, repr=False)
    candidate: bool = False

    @property
    def box(self) -> np.ndarray:
        """(4,) x, y, w, h."""
        return np.array([self.x, self.y, self.w, self.h])

    @property
    def centre(self) -> tuple[float, float]:
        """Box centre (u, v) in pixels."""
        return self.x + 0.5 * self.w, self.y + 0.5 * self.h

    def head_box(self) -> np.ndarray:
        """(4,) x, y, w, h of the head: the box itself for faces, the top-centre part
        of an upper-body box (head ~40 % of its width, ~50 % of its height)."""
        if self.kind == "upper_body":
            return np.array([self.x + 0.3 * self.w, self.y + 0.05 * self.h, 0.4 * self.w,
                             0.5 * self.h])
        return self.box

    def moved(self, x: float, y: float, confidence: float) -> Detection:
        """A tracked copy at a new position (keypoints shifted, landmarks dropped)."""
        kp = None
        if self.keypoints is not None:
            kp = self.keypoints + np.array([float(x) - self.x, float(y) - self.y])
        return Detection(float(x), float(y), self.w, self.h, float(confidence), self.kind,
                         self.source, True, kp, candidate=self.candidate)

    def shifted(self, scale: float, dx: float, dy: float) -> Detection:
        """A copy with box and keypoints/landmarks mapped by p -> p / scale + (dx, dy)."""
        kp = None if self.keypoints is None else self.keypoints / scale + np.array([dx, dy])
        lm = self.landmarks
        if lm is not None and (scale != 1.0 or dx or dy):
            pts = lm.points / scale
            pts[:, 0] += dx
            pts[:, 1] += dy
            lm = dataclasses.replace(lm, points=pts)
        return Detection(self.x / scale + dx, self.y / scale + dy, self.w / scale,
                         self.h / scale, self.confidence, self.kind, self.source, self.tracked,
                         kp, lm, self.candidate)


# ---------------------------------------------------------------------------
# Detectors
# ---------------------------------------------------------------------------
def _load_cascade(name: str) -> cv2.CascadeClassifier:
    if name in HAAR_CASCADES:
        path = os.path.join(cv2.data.haarcascades, HAAR_CASCADES[name])
    else:
        path = name
    if not os.path.exists(path):
        raise DetectorError(
            f"Haar cascade {path} does not exist: OpenCV's data files are missing "
            "(reinstall opencv-python-headless) or the name is wrong; known names: "
            f"{', '.join(HAAR_CASCADES)}")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise DetectorError(f"Haar cascade {path} could not be loaded (corrupt file?)")
    return cascade


def gray_image(image) -> np.ndarray:
    """uint8 grey image of a grey, BGR or BGRA (uint8 or uint16) image; DetectorError
    otherwise."""
    img = np.asarray(image)
    if img.ndim == 2:
        g = img
    elif img.ndim == 3 and img.shape[2] == 3:
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif img.ndim == 3 and img.shape[2] == 4:
        g = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    elif img.ndim == 3 and img.shape[2] == 1:
        g = img[:, :, 0]
    else:
        raise DetectorError(
            f"image has shape {img.shape}: expected grey (H, W) or BGR (H, W, 3) / BGRA")
    if g.dtype != np.uint8:
        if g.dtype == np.uint16:
            g = (g >> 8).astype(np.uint8)
        else:
            raise DetectorError(f"image dtype {g.dtype} is not supported: give uint8 images")
    return np.ascontiguousarray(g)


class HaarDetector:
    """One OpenCV Haar cascade.

    Parameters
    ----------
    cascade : str
        A key of :data:`HAAR_CASCADES` or a path to a cascade XML file.
    kind : str
        Kind of the produced :class:`Detection`.
    source : str
        Name recorded in each detection.
    mirrored : bool
        Also run on the horizontally mirrored image (profile faces: the cascade
        knows one facing direction only).
    scale_factor, min_neighbors : cascade parameters.
    half_neighbors : float
        Confidence = n / (n + half_neighbors) for n merged raw hits.
    """

    def __init__(self, cascade: str, kind: str, source: str = "", mirrored: bool = False,
                 scale_factor: float = 1.2, min_neighbors: int = 3, half_neighbors: float = 3.0):
        self.cascade = _load_cascade(cascade)
        self.kind = kind
        self.source = source or f"haar_{cascade}"
        self.mirrored = mirrored
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.half_neighbors = float(half_neighbors)

    def detect(self, gray: np.ndarray, min_size: int = 0, max_size: int = 0) -> list[Detection]:
        """Detections in a uint8 grey image (boxes in its pixels)."""
        gray = gray_image(gray)
        out = []
        passes = [(gray, False)]
        if self.mirrored:
            passes.append((cv2.flip(gray, 1), True))
        width = gray.shape[1]
        for img, flipped in passes:
            boxes, hits = self.cascade.detectMultiScale2(
                img, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                minSize=(min_size, min_size), maxSize=(max_size, max_size))
            for (x, y, w, h), n in zip(np.reshape(boxes, (-1, 4)), np.ravel(hits)):
                if flipped:
                    x = width - x - w
                conf = float(n) / (float(n) + self.half_neighbors)
                out.append(Detection(float(x), float(y), float(w), float(h), conf, self.kind,
                                     self.source))
        return out


class YuNetDetector:
    """YuNet CNN face detector (``cv2.FaceDetectorYN``).

    Parameters
    ----------
    model_path : str
        ONNX model file (e.g. ``face_detection_yunet_2023mar.onnx`` from the
        OpenCV model zoo).
    score_threshold, nms_threshold : float
    top_k : int

    Raises
    ------
    DetectorError
        When the file is missing or OpenCV cannot load it.
    """

    def __init__(self, model_path: str, score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, top_k: int = 50):
        if not model_path:
            raise DetectorError(
                "the YuNet detector needs a model file: set detection.yunet_model to the path "
                "of face_detection_yunet_2023mar.onnx (OpenCV model zoo), or choose a Haar "
                "detector with detection.detector")
        if not os.path.isfile(model_path):
            raise DetectorError(
                f"YuNet model file {model_path!r} does not exist: download "
                "face_detection_yunet_2023mar.onnx from the OpenCV model zoo and set "
                "detection.yunet_model to its path, or choose a Haar detector "
                "(detection.detector)")
        try:
            self.net = cv2.FaceDetectorYN.create(model_path, "", (320, 320),
                                                 float(score_threshold), float(nms_threshold),
                                                 int(top_k))
        except cv2.error as exc:
            raise DetectorError(
                f"OpenCV cannot load the YuNet model {model_path!r} ({exc.msg.strip()}): is it "
                "an ONNX YuNet model from the OpenCV model zoo?") from None
        self._size = (320, 320)

    def detect(self, image: np.ndarray, min_size: int = 0, max_size: int = 0) -> list[Detection]:
        """Face detections in a BGR (or grey) uint8 image; confidence = YuNet score."""
        img = np.asarray(image)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise DetectorError(f"YuNet needs a uint8 BGR image, got {img.dtype} {img.shape}")
        size = (img.shape[1], img.shape[0])
        if size != self._size:
            self.net.setInputSize(size)
            self._size = size
        _, faces = self.net.detect(img)
        out = []
        if faces is None:
            return out
        for f in faces:
            x, y, w, h = (float(v) for v in f[:4])
            side = max(w, h)
            if side < min_size or (max_size and side > max_size):
                continue
            out.append(Detection(x, y, w, h, float(f[-1]), "face", "yunet"))
        return out


class BlazeFacePass:
    """BlazeFace on the whole image, on tiles and around regions, as Detections.

    Parameters
    ----------
    config : DetectionConfig
        ``blazeface_*``, ``tile_*``, ``region_*``, ``max_regions``, ``nms_iou``,
        ``landmarks``.

    Raises
    ------
    DetectorError
        The model (or, with ``landmarks``, the face-mesh model) cannot be loaded;
        the message names the file and the install command.
    """

    def __init__(self, config: DetectionConfig):
        self.config = c = config
        try:
            self.detector = bf.BlazeFaceDetector(
                c.blazeface_model, c.blazeface_score_threshold or None, c.nms_iou,
                variant=c.blazeface_variant, runtime=c.model_runtime)
        except bf.ModelError as exc:
            raise DetectorError(str(exc)) from None
        #: the search for small faces no other pass found (detection.search_crops)
        self.search: FaceSearch | None = None
        if c.search_crops > 0:
            search_model = self.detector
            same = (c.search_variant == self.detector.variant and not c.blazeface_model
                    and (c.search_score_threshold or None) == (c.blazeface_score_threshold
                                                               or None))
            if not same:
                try:
                    search_model = bf.BlazeFaceDetector(
                        "", c.search_score_threshold or None, c.nms_iou,
                        variant=c.search_variant, runtime=c.model_runtime)
                except bf.ModelError as exc:
                    raise DetectorError(str(exc)) from None
            self.search = FaceSearch(search_model, c.search_band, c.search_columns,
                                     c.search_crops, c.search_scale, c.search_max_size)
        #: the model that re-boxes small faces (detection.refine_small_faces)
        self.refiner: bf.BlazeFaceDetector | None = None
        if c.refine_small_faces:
            if self.search is not None:
                self.refiner = self.search.detector
            else:
                try:
                    self.refiner = bf.BlazeFaceDetector(
                        "", c.search_score_threshold or None, c.nms_iou,
                        variant=c.search_variant, runtime=c.model_runtime)
                except bf.ModelError as exc:
                    raise DetectorError(str(exc)) from None
        #: network runs and faces re-boxed by detection.refine_small_faces
        self.refine_runs = 0
        self.refined = 0
        #: faces entering the view of a turning head (detection.turn_edge_search)
        self.edge = EdgeSearch(self.search.detector if self.search else self.detector,
                               c.search_scale, EDGE_MARGIN) if c.turn_edge_search else None
        self.landmarker = None
        #: why the face mesh is off although detection.landmarks asks for it (None: it is not)
        self.warning: str | None = None
        if c.landmarks:
            try:
                self.landmarker = bf.FaceLandmarker(runtime=c.model_runtime)
            except bf.ModelError as exc:
                self.warning = f"face mesh (detection.landmarks) unavailable: {exc}"
        self.source = "blazeface"

    def regions_for(self, width: int, height: int, regions=None) -> list:
        """Network crops (x0, y0, x1, y1) for an image: whole image, tiles, regions.

        ``regions``: boxes (x, y, w, h) to look around, in the image's pixels."""
        c = self.config
        out = []
        if c.blazeface_full_frame:
            out.append(((0.0, 0.0, float(width), float(height)), c.blazeface_input_scale))
        out.extend(tile_boxes(width, height, c.tile_columns, c.tile_rows, c.tile_overlap))
        for box in list(regions or [])[:c.max_regions]:
            crop = self.region_crop(width, height, box)
            if crop is not None:
                out.append(crop)
        return out

    def region_crop(self, width: int, height: int, box):
        """(crop (x0, y0, x1, y1), scale) around a region box (x, y, w, h), or None when
        the box is unusable or its crop misses the image."""
        c = self.config
        x, y, w, h = (float(v) for v in box)
        if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
            return None
        side = max(c.region_scale * max(w, h), float(c.region_min_side))
        cx, cy = x + 0.5 * w, y + 0.5 * h
        if cx + 0.5 * side < 0 or cy + 0.5 * side < 0 or cx - 0.5 * side > width \
                or cy - 0.5 * side > height:
            return None
        crop = (cx - 0.5 * side, cy - 0.5 * side, cx + 0.5 * side, cy + 0.5 * side)
        return crop, c.region_input_size / side

    def detect_raw(self, rgb: np.ndarray, regions=None) -> bf.RawFaces:
        """BlazeFace's raw faces: the whole-frame (and tile) pass first, then crops around
        the given regions (most important first) that pass did not find a face in, at
        most ``max_regions`` of them, merged by weighted NMS; then the search's small
        faces that neither found (:class:`~.face_search.FaceSearch`)."""
        c = self.config
        height, width = rgb.shape[:2]
        frame_crops = self.regions_for(width, height)
        low = c.candidate_score_threshold or None
        raw = (self.detector.detect_regions(rgb, frame_crops,
                                            low if c.border_faces else None)
               if frame_crops else bf.RawFaces.empty())
        todo = []
        for box in regions or ():
            if len(todo) >= c.max_regions:
                break
            crop = self.region_crop(width, height, box)
            if crop is not None and not _face_at(box, raw.boxes[~raw.is_candidate]):
                todo.append(crop)
        if todo:
            extra = self.detector.detect_regions(rgb, todo, low)
            if not len(raw) or not len(extra):
                raw = extra if len(extra) else raw
            else:
                raw = bf.nms_with_candidates(bf.RawFaces.concatenate([raw, extra]),
                                             self.detector.nms_iou)
        raw = self.refine_small(rgb, raw)
        if self.search is None:
            return raw
        # faces not found yet (a candidate does not hide a face from the search)
        found = self.search.detect(rgb, raw.boxes[~raw.is_candidate], low)
        if not len(found):
            return raw
        return bf.without_duplicate_candidates(bf.RawFaces.concatenate([raw, found]),
                                               self.detector.nms_iou)

    def refine_small(self, rgb: np.ndarray, raw: bf.RawFaces) -> bf.RawFaces:
        """``raw`` with each confident face of at most ``detection.search_max_size`` px
        re-boxed (box and keypoints; score kept) by the search model on a
        :data:`REFINE_CROP` px crop centred on it (moved inside the image), when that
        model finds the same face there (:func:`~.blazeface.same_faces`, score at least
        :data:`REFINE_MIN_SCORE`, side within :data:`REFINE_SIDE_RATIO` of the first box's;
        the best overlapping).  No-op unless ``detection.refine_small_faces``."""
        if self.refiner is None or not len(raw):
            return raw
        b = raw.boxes
        side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        todo = np.flatnonzero(~raw.is_candidate & (side <= self.config.search_max_size))
        if not todo.size:
            return raw
        height, width = rgb.shape[:2]
        boxes, keypoints = b.copy(), raw.keypoints.copy()
        lo, hi = REFINE_SIDE_RATIO
        for i in todo:
            x0 = 0.5 * (b[i, 0] + b[i, 2] - REFINE_CROP)
            y0 = 0.5 * (b[i, 1] + b[i, 3] - REFINE_CROP)
            x0 = min(max(x0, 0.0), max(width - REFINE_CROP, 0.0))
            y0 = min(max(y0, 0.0), max(height - REFINE_CROP, 0.0))
            crop = (x0, y0, x0 + REFINE_CROP, y0 + REFINE_CROP)
            found = self.refiner.detect_regions(rgb, [(crop, 1.0)], REFINE_MIN_SCORE)
            self.refine_runs += 1
            if not len(found):
                continue
            fb = found.boxes
            fside = np.maximum(fb[:, 2] - fb[:, 0], fb[:, 3] - fb[:, 1])
            ok = (bf.same_faces(fb, b[i:i + 1], self.detector.nms_iou)
                  & (fside >= lo * side[i]) & (fside <= hi * side[i]))
            if not ok.any():
                continue
            iou = bf._iou_xyxy(b[i], fb)
            k = int(np.flatnonzero(ok)[np.argmax(iou[ok])])
            boxes[i], keypoints[i] = fb[k], found.keypoints[k]
            self.refined += 1
        return bf.RawFaces(boxes, keypoints, raw.scores, raw.is_candidate)

    def detect(self, image: np.ndarray, min_size: int = 0, max_size: int = 0,
               regions=None) -> list[Detection]:
        """Faces in a grey/BGR/BGRA uint8 image (boxes, keypoints in its pixels; boxes moved
        up by :data:`BLAZEFACE_CENTRE_SHIFT`)."""
        try:
            rgb = bf.to_rgb(image)
        except ValueError as exc:
            raise DetectorError(str(exc)) from None
        return self._detections(rgb, self.detect_raw(rgb, regions), min_size, max_size)

    def detect_entering(self, image: np.ndarray, crop, known, min_size: int = 0,
                        max_size: int = 0) -> list[Detection]:
        """Faces of the strip ``crop`` that came into view (:class:`EdgeSearch`) not
        covered by the ``known`` boxes (N, 4, x0 y0 x1 y1)."""
        rgb = bf.to_rgb(image)
        return self._detections(rgb, self.edge.detect(rgb, crop, known), min_size, max_size)

    def _detections(self, rgb, raw, min_size, max_size) -> list[Detection]:
        height, width = rgb.shape[:2]
        out = []
        for box, kp, score, cand in zip(raw.boxes, raw.keypoints, raw.scores,
                                        raw.is_candidate):
            x0, y0, x1, y1 = (float(v) for v in box)
            side = max(x1 - x0, y1 - y0)
            if side < min_size or (max_size and side > max_size):
                continue
            # the face is at least partly inside the image
            if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
                continue
            lm = self.landmarker.run(rgb, box, kp) if self.landmarker is not None else None
            shift = BLAZEFACE_CENTRE_SHIFT * (y1 - y0)
            out.append(Detection(x0, y0 - shift, x1 - x0, y1 - y0, float(score), "face",
                                 self.source, False, np.asarray(kp, dtype=np.float64), lm,
                                 bool(cand)))
        return out


def _face_at(box, raw_boxes: np.ndarray) -> bool:
    """True when a raw BlazeFace box (x0, y0, x1, y1) is the face expected in region
    ``box`` (x, y, w, h): centre (moved up by BLAZEFACE_CENTRE_SHIFT, as the detections)
    within half the region's side of the region's centre, size within a factor 2."""
    if not len(raw_boxes):
        return False
    x, y, w, h = (float(v) for v in box)
    side = max(w, h)
    bw = raw_boxes[:, 2] - raw_boxes[:, 0]
    bh = raw_boxes[:, 3] - raw_boxes[:, 1]
    cx = 0.5 * (raw_boxes[:, 0] + raw_boxes[:, 2])
    cy = 0.5 * (raw_boxes[:, 1] + raw_boxes[:, 3]) - BLAZEFACE_CENTRE_SHIFT * bh
    near = np.hypot(cx - (x + 0.5 * w), cy - (y + 0.5 * h)) <= 0.5 * side
    ratio = np.maximum(bw, bh) / side
    return bool(np.any(near & (ratio >= 0.5) & (ratio <= 2.0)))


# ---------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------
class DetectionPipeline:
    """The configured detectors + ROI + scale + every-k tracking + NMS.

    Parameters
    ----------
    config : DetectionConfig
    min_size, max_size : int, optional
        Extra limits of the box side in full-resolution pixels (the visual
        front-end derives them from the depth range); combined with the
        config's ``min_size``/``max_size``.
    """

    def __init__(self, config: DetectionConfig | None = None, min_size: int | None = None,
                 max_size: int | None = None):
        self.config = c = config or DetectionConfig()
        self.min_size = max(c.min_size, int(min_size or 0))
        limits = [v for v in (c.max_size, max_size) if v]
        self.max_size = int(min(limits)) if limits else 0
        if self.max_size and self.max_size < self.min_size:
            self.max_size = self.min_size
        self.detectors = []
        #: why the configured detector was replaced by the Haar cascade, or the face mesh
        #: is off (None: neither); nodes put it on /diagnostics (WARN)
        self.fallback_reason: str | None = None
        for name in c.detectors:
            if name == "yunet":
                self.detectors.append(YuNetDetector(c.yunet_model, c.yunet_score_threshold))
            elif name == "blazeface":
                try:
                    self.detectors.append(BlazeFacePass(c))
                    self.fallback_reason = self.detectors[-1].warning
                except DetectorError as exc:
                    self.fallback_reason = (
                        f"BlazeFace unavailable, using the Haar frontal-face cascade: {exc}")
                    if any(isinstance(d, HaarDetector) and d.kind == "face"
                           for d in self.detectors) or "frontal" in c.detectors:
                        continue
                    self.detectors.append(HaarDetector(
                        "frontal", "face", "haar_frontal", scale_factor=c.haar_scale_factor,
                        min_neighbors=c.haar_min_neighbors,
                        half_neighbors=c.confidence_half_neighbors))
            else:
                kind = {"frontal": "face", "profile": "profile", "upper_body": "upper_body"}[name]
                self.detectors.append(HaarDetector(
                    name, kind, f"haar_{name}", mirrored=(name == "profile"),
                    scale_factor=c.haar_scale_factor, min_neighbors=c.haar_min_neighbors,
                    half_neighbors=c.confidence_half_neighbors))
        self.tracker = BoxTracker(c.track_search, c.track_min_score,
                                  border_boxes=c.border_faces)
        #: pass on BlazeFace's low-scoring candidates (``Detection.candidate``,
        #: detection.candidate_score_threshold); False (default): only what a detector
        #: accepts -- the visual front-end, which confirms them, sets it
        self.keep_candidates = False
        self.frame_index = 0
        self.key_rotation = None  # the camera's rotation at the last keyframe (or None)
        self.stats = {"frames": 0, "keyframes": 0, "detections": 0, "tracked": 0,
                      "turn_keyframes": 0, "turn_strips": 0, "entering": 0}

    def reset(self) -> None:
        """Forget the tracked boxes; the next frame is a keyframe."""
        self.tracker.reset()
        self.frame_index = 0
        self.key_rotation = None

    def _edge_pass(self, key_rotation=None):
        """The BlazeFace pass that searches the strip a turning camera brought into view
        since ``key_rotation`` (default: the last keyframe's; detection.turn_edge_search,
        the camera's turning known), or None."""
        t = self.tracker
        key = self.key_rotation if key_rotation is None else key_rotation
        bp = next((d for d in self.detectors if isinstance(d, BlazeFacePass)), None)
        if (bp is None or bp.edge is None or t.K is None or t.rotation is None
                or key is None or self.config.scale != 1.0
                or tuple(float(v) for v in self.config.roi) != (0.0, 0.0, 1.0, 1.0)):
            return None
        return bp

    def entering_crop(self, width: int, height: int, key_rotation=None):
        """The strip (x0, y0, x1, y1, pixels) that the camera's turning brought into view
        since ``key_rotation`` (default: the last keyframe's rotation), now
        (``tracker.rotation``), plus :data:`EDGE_MARGIN`; None when there is none or no
        edge search (detection.turn_edge_search, BlazeFace, the default roi and scale)."""
        if self._edge_pass(key_rotation) is None:
            return None
        t = self.tracker
        key = self.key_rotation if key_rotation is None else key_rotation
        return entering_strip(width, height, t.K, key, t.rotation, EDGE_MARGIN)

    def detect_strip(self, image: np.ndarray, crop, held=()) -> list[Detection]:
        """Faces wholly inside the strip ``crop`` (:meth:`entering_crop`) that none of the
        ``held`` boxes covers; no tracking state is touched (safe to call from another
        thread than :meth:`track`)."""
        bp = next(d for d in self.detectors if isinstance(d, BlazeFacePass))
        known = [(d.x, d.y, d.x + d.w, d.y + d.h) for d in held]
        return bp.detect_entering(image, crop, known, self.min_size, self.max_size)

    def add_entering(self, gray: np.ndarray, detections, rotation=None) -> None:
        """Track ``detections`` of an entering strip found in the frame ``gray`` (the
        camera's rotation then ``rotation``; default: ``tracker.rotation``) from now on,
        besides the boxes held."""
        now = self.tracker.rotation
        if rotation is not None:
            self.tracker.rotation = rotation
        self.tracker.add(gray, detections)
        self.tracker.rotation = now
        self.stats["entering"] += len(detections)

    def _entering(self, image, gray, held) -> list[Detection]:
        """Faces in the strip that a turning camera brought into view since the last
        keyframe (detection.turn_edge_search), not among the ``held`` boxes; tracked
        from now on."""
        height, width = gray.shape
        crop = self.entering_crop(width, height)
        if crop is None:
            return []
        new = self.detect_strip(image, crop, held)
        if new:
            self.add_entering(gray, new)
        return new

    def turned(self, key_rotation=None) -> bool:
        """True when the camera (``tracker.rotation``, set per frame from /tf) turned by
        more than ``turn_keyframe`` degrees since ``key_rotation`` (default: the last
        keyframe's): new parts of the scene came into view."""
        key = self.key_rotation if key_rotation is None else key_rotation
        now = self.tracker.rotation
        if self.config.turn_keyframe <= 0 or key is None or now is None:
            return False
        return math.degrees(rotation_angle(np.asarray(key).T @ now)) > self.config.turn_keyframe

    def roi_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """ROI as integer pixel bounds (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = self.config.roi
        return (int(math.floor(x0 * width)), int(math.floor(y0 * height)),
                int(math.ceil(x1 * width)), int(math.ceil(y1 * height)))

    def detect(self, image: np.ndarray, regions=None) -> list[Detection]:
        """Detections of this frame (keyframe: detectors; otherwise: tracking).

        Parameters
        ----------
        image : array (H, W) grey or (H, W, 3) BGR, uint8
            The rectified left image.
        regions : sequence of (x, y, w, h), optional
            Boxes (full-image pixels) to look around on keyframes, e.g. the
            tracks' predicted heads (BlazeFace only; at most
            ``detection.max_regions``).

        Returns
        -------
        list of Detection
            Boxes in full-resolution pixels, after non-maximum suppression,
            most confident first.
        """
        c = self.config
        gray = gray_image(image)
        keyframe = self.frame_index % c.every_k == 0
        # faces may have come into view: a keyframe, unless the strip that came into view
        # is searched on this tracked frame (detection.turn_edge_search; a turn that brought
        # no new columns into view, a tilt, makes a keyframe)
        if not keyframe and self.turned() and self.entering_crop(gray.shape[1],
                                                                 gray.shape[0]) is None:
            keyframe = True
            self.frame_index = 0  # every_k counts from here
            self.stats["turn_keyframes"] += 1
        self.frame_index += 1
        self.stats["frames"] += 1
        if not keyframe:
            dets = self.tracker.update(gray)
            self.stats["tracked"] += len(dets)
            return sorted(dets + self._entering(image, gray, dets), key=lambda d: -d.confidence)
        self.stats["keyframes"] += 1
        self.key_rotation = self.tracker.rotation
        dets = self.run_detectors(image, gray, regions)
        dets = non_max_suppression(dets, c.nms_iou, c.max_detections)
        self.stats["detections"] += len(dets)
        if c.every_k > 1:
            self.tracker.start(gray, dets)
        return dets

    # The three steps of :meth:`detect`, for a caller that runs the detectors elsewhere
    # (pipeline.AsyncDetection: on a worker thread, while the frames are tracked).
    def detect_keyframe(self, image: np.ndarray, gray: np.ndarray | None = None,
                        regions=None) -> list[Detection]:
        """The detectors + NMS on one frame; no tracking state is touched (safe to call
        from another thread than :meth:`track`)."""
        c = self.config
        dets = self.run_detectors(image, gray, regions)
        return non_max_suppression(dets, c.nms_iou, c.max_detections)

    def track(self, image: np.ndarray) -> list[Detection]:
        """Follow the held boxes into this frame (template tracking only)."""
        self.frame_index += 1
        self.stats["frames"] += 1
        dets = self.tracker.update(gray_image(image))
        self.stats["tracked"] += len(dets)
        return sorted(dets, key=lambda d: -d.confidence)

    def restart(self, key_gray: np.ndarray, detections, image: np.ndarray | None = None,
                key_rotation=None) -> list[Detection]:
        """Hold ``detections`` of an earlier frame (its grey image ``key_gray``, the
        camera's rotation then ``key_rotation``, see BoxTracker.rotation) and, when
        ``image`` (a later frame) is given, carry them into it by tracking."""
        self.stats["keyframes"] += 1
        self.stats["detections"] += len(detections)
        now = self.tracker.rotation
        if key_rotation is not None:
            self.tracker.rotation = key_rotation
        self.tracker.start(key_gray, detections)
        self.tracker.rotation = now
        if image is None:
            return list(detections)
        return self.track(image)

    def run_detectors(self, image: np.ndarray, gray: np.ndarray | None = None,
                      regions=None) -> list[Detection]:
        """All configured detectors on the ROI at the configured scale (no NMS, no tracking).

        ``regions``: boxes (x, y, w, h, full-image pixels) BlazeFace looks around."""
        c = self.config
        gray = gray_image(image) if gray is None else gray
        height, width = gray.shape
        x0, y0, x1, y1 = self.roi_pixels(width, height)
        s = c.scale
        crop_g = gray[y0:y1, x0:x1]
        need_colour = any(isinstance(d, (YuNetDetector, BlazeFacePass)) for d in self.detectors)
        crop_c = None
        if need_colour:
            img = np.asarray(image)
            if img.shape[:2] != gray.shape:
                raise DetectorError(f"image {img.shape} and grey image {gray.shape} differ")
            crop_c = img[y0:y1, x0:x1]
        if s != 1.0:
            interp = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
            size = (max(1, int(round(crop_g.shape[1] * s))),
                    max(1, int(round(crop_g.shape[0] * s))))
            crop_g = cv2.resize(crop_g, size, interpolation=interp)
            if crop_c is not None:
                crop_c = cv2.resize(crop_c, size, interpolation=interp)
        if c.equalize:
            crop_g = cv2.equalizeHist(crop_g)
        min_s = max(1, int(math.floor(self.min_size * s)))
        max_s = int(math.ceil(self.max_size * s)) if self.max_size else 0
        local = None
        if regions is not None:  # full-image boxes -> scaled ROI pixels
            local = [((bx - x0) * s, (by - y0) * s, bw * s, bh * s)
                     for bx, by, bw, bh in (tuple(map(float, b)) for b in regions)]
        out = []
        for det in self.detectors:
            colour = isinstance(det, (YuNetDetector, BlazeFacePass))
            src = crop_c if colour else crop_g
            if src.shape[0] < 8 or src.shape[1] < 8:
                continue
            if isinstance(det, BlazeFacePass):
                found = det.detect(src, min_s, max_s, local)
                if not self.keep_candidates:
                    found = [d for d in found if not d.candidate]
            else:
                found = det.detect(src, min_s, max_s)
            out.extend(d.shifted(s, x0, y0) for d in found)
        return out
