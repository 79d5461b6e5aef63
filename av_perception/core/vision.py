"""Visual front-end: a stereo pair -> weighted 3D observations of people's heads.

:meth:`VisualFrontEnd.process` checks (and if needed rectifies) a pair, detects heads on
the left image, finds each head's disparity along the epipolar line, triangulates it
with its covariance and weights it; it returns :class:`VisualObservations`.  The steps:
docs/algorithms.md, "Stereo visual front-end".  All 3D outputs are metres in the left
camera optical frame (x right, y down, z forward).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import cv2
import numpy as np

from .body_cue import BodyCue, BodyCueConfig
from .config import ConfigError, StageConfig, StereoCameraConfig, param
from .detection import BlazeFacePass, Detection, DetectionConfig, DetectionPipeline
from .lip_activity import LipConfig
from .lip_frontend import LipFrontEnd
from .stereo import RegionMatcher, StereoCalibration, StereoInputError

__all__ = [
    "VisionConfig",
    "VisionInputError",
    "VisualObservations",
    "RejectedObservation",
    "VisualFrontEnd",
    "head_regions",
]


#: A half face's match (``vision.half_face_stereo``) is accepted only when it is this sure:
#: ZNCC, margin over the runner-up (> 2 px away), and stereo depth / the depth implied by
#: the box size (whole matches of simulated faces: 0.67-1.05, median 0.89).  Chosen on
#: the half matches of 20 simulated scenes (bench_detection_scenes seeds 121-140): 124 of
#: 130 right depths kept, 1 of 5 wrong ones (-13 %) left; with the plain checks (ZNCC 0.5,
#: margin 0.1, ratio within x2) 130 and 5 (up to +41 %).
HALF_FACE_MIN_SCORE = 0.8
HALF_FACE_MIN_MARGIN = 0.15
HALF_FACE_SIZE_RATIO = (0.65, 1.25)
#: A low-scoring BlazeFace candidate (``detection.candidate_score_threshold``) is a head only
#: when its stereo depth and the depth its box size implies agree this well (the bounds of
#: the half-face matches), and (``vision.candidate_confirmation``) its match is as sure as
#: a half face's (ZNCC, margin) or a track's head is predicted there: box centre within
#: half the predicted face's side, depth within this fraction of the predicted depth.
CANDIDATE_SIZE_RATIO = HALF_FACE_SIZE_RATIO
CANDIDATE_MIN_SCORE = HALF_FACE_MIN_SCORE
CANDIDATE_MIN_MARGIN = HALF_FACE_MIN_MARGIN
CANDIDATE_TRACK_DEPTH = 0.15
#: ``vision.track_depth_fallback``: a face at a track's predicted head (box centre within
#: half the predicted face's side, box size within :data:`HALF_FACE_SIZE_RATIO` of the
#: predicted depth's) whose match fails as a partly hidden face's does takes the depth of
#: a half that passes the plain checks within :data:`CANDIDATE_TRACK_DEPTH` of the
#: track's, else the track's predicted depth with this standard deviation (fraction of the
#: depth) and :data:`TRACK_DEPTH_QUALITY` as its match quality.
TRACK_DEPTH_SIGMA = 0.1
TRACK_DEPTH_QUALITY = 0.5


class VisionInputError(StereoInputError):
    """An image pair cannot be processed (shape, size, dtype, stamp)."""


@dataclass(frozen=True)
class VisionConfig(StageConfig):
    """Stereo part of the visual front-end (section ``vision``)."""

    SECTION: ClassVar[str] = "vision"

    min_depth: float = param(
        0.4, "Nearest plausible head depth (m); also bounds the disparity search.",
        low=0.05, high=100.0)
    max_depth: float = param(
        6.0, "Farthest plausible head depth (m); also bounds the disparity search.",
        low=0.1, high=200.0)
    disparity_method: str = param(
        "ncc", "Region disparity: 'ncc' (epipolar zero-mean normalised cross-correlation, "
        "default), 'sad' (zero-mean sum of absolute differences) or 'sgbm' (cv2.StereoSGBM "
        "on a strip around the region).", choices=("ncc", "sad", "sgbm"))
    match_fraction: float = param(
        0.6, "Central fraction of the head box (width and height) matched in the right image "
        "(keeps the background out of the template).", low=0.1, high=1.0)
    vertical_search: int = param(
        1, "Rows searched above/below the epipolar line (residual rectification error).",
        low=0, high=5)
    min_texture: float = param(
        2.0, "Minimum grey-level standard deviation of a region to be matched.",
        low=0.0, high=128.0)
    min_match_score: float = param(
        0.5, "Minimum normalised cross-correlation of an accepted match.", low=-1.0, high=1.0)
    ambiguity_margin: float = param(
        0.1, "Margin of the best match over the runner-up (>2 px away) that gives full "
        "quality; smaller margins lower the weight (0 disables).", low=0.0, high=2.0)
    left_right_tolerance: float = param(
        1.0, "Left-right consistency: the right region matched back into the left image must "
        "give the same disparity within this many px (0 disables).", low=0.0, high=20.0)
    max_template_samples: int = param(
        1024, "Template pixels used at most per region (bigger regions are subsampled).",
        low=16, high=1000000)
    pixel_noise: float = param(
        1.0, "Standard deviation (px) of the head centre in the image, besides box_jitter.",
        low=0.0, high=100.0)
    box_jitter: float = param(
        0.05, "Standard deviation of the head centre as a fraction of the box width.",
        low=0.0, high=1.0)
    disparity_noise: float = param(
        0.25, "Standard deviation (px) of a region disparity.", low=0.01, high=20.0)
    face_width: float = param(
        0.16, "Physical width (m) that a face box covers; used for the size/depth check "
        "and the detector size limits.", low=0.05, high=1.0)
    size_check_ratio: float = param(
        2.0, "Reject a face when its stereo depth and the depth implied by its box size "
        "differ by more than this factor (0 disables).", low=0.0, high=100.0)
    depth_offset: float = param(
        0.0, "Metres added along the viewing ray (face surface -> head centre, e.g. 0.08).",
        low=-1.0, high=1.0)
    interest_points: bool = param(
        False, "Also output sparse 3D interest points (corners matched across the pair).")
    max_interest_points: int = param(
        100, "Most interest points per frame (with detection.max_detections at most the 256 "
        "points a frame may hold downstream).", low=1, high=200)
    interest_patch: int = param(
        11, "Side (px) of the patch matched per interest point.", low=5, high=101)
    interest_min_distance: float = param(
        10.0, "Minimum distance (px) between interest points.", low=1.0, high=500.0)
    interest_quality: float = param(
        0.01, "Shi-Tomasi corner quality level relative to the best corner.",
        low=1e-4, high=1.0)
    interest_weight: float = param(
        0.2, "Weight of an interest point relative to a head (times its match quality).",
        low=0.0, high=1.0)
    output_frame: str = param(
        "camera", "Frame of the 3D outputs: 'camera' (left optical frame) or 'rectified' "
        "(left rectified frame; equal when the images come rectified).",
        choices=("camera", "rectified"))
    half_face_stereo: bool = param(
        True, "When a face's stereo match fails the left-right check or the score (a nearer "
        "object hides part of it in one image), match the left and right halves of its "
        "region apart and keep the better half that passes every check with a wide margin "
        "(ZNCC >= 0.8, margin >= 0.15, depth within 0.65-1.25 x the one its box size "
        "implies); with vision.disparity_method 'ncc' only.")
    partial_face_widths: tuple = param(
        (0.5,), "vision.half_face_stereo: widths of the one-sided parts of a face's region "
        "matched apart, fractions of the region's width, each part anchored at its left or "
        "right edge (0.5, the default: the halves; a narrower part still fits a face of "
        "which just half shows in the right image, a wider one has more texture); every "
        "part must pass the same strict checks, the best by quality gives the depth.  "
        "0.375 added on bench_detection_scenes' tuning seeds also observes faces more "
        "than half hidden in the right image (false observations in that benchmark's "
        "accounting) and far faces 9 cm off in 3D; 0.625-0.75 added nothing.",
        low=0.25, high=0.875)
    half_face_at_border: bool = param(
        True, "vision.half_face_stereo: also match the parts of a face whose match ended at "
        "the right image's border or at the far depth limit (a face near the left image "
        "border is partly outside the right image, so its whole region cannot match; "
        "chosen on bench_detection_scenes' tuning seeds 121-135 and 161-170).")
    track_depth_fallback: bool = param(
        False, "A face at a track's predicted head (centre within half a face, size fitting "
        "the predicted depth) whose stereo match fails as a partly hidden face's does, and "
        "that vision.half_face_stereo's strict bounds do not rescue: its depth from a half "
        "that passes the plain checks within 15 % of the track's predicted depth, else the "
        "track's predicted depth with a 10 % standard deviation (an observation of its "
        "image position); with vision.half_face_stereo and disparity_method 'ncc'.  Off "
        "by default: on held-out scenes its observations were 3-18 cm off in depth (the "
        "halves' depth biased near, the prediction drifting while the face stays hidden).")
    candidate_confirmation: str = param(
        "either", "What confirms a low-scoring BlazeFace candidate "
        "(detection.candidate_score_threshold) besides a stereo depth that fits its size "
        "(within 0.65-1.25 x the depth its box implies): 'track' (a track's head "
        "predicted there, box centre within half a face, depth within 15 %), 'stereo' (a "
        "match as sure as a half face's: ZNCC >= 0.8, margin >= 0.15), 'either' (default: "
        "one or the other; chosen on bench_detection_scenes seeds 111-130), 'both'.",
        choices=("track", "stereo", "either", "both"))
    use_numba: bool = param(True, "Use the numba matching kernel (else the numpy reference).")

    def validate(self):
        if self.min_depth >= self.max_depth:
            raise ConfigError(
                f"parameters 'vision.min_depth' = {self.min_depth} and 'vision.max_depth' = "
                f"{self.max_depth} are not allowed: need min_depth < max_depth")
        if not self.partial_face_widths:
            raise ConfigError("parameter 'vision.partial_face_widths' is empty: give at least "
                              "one width, e.g. [0.5] (the halves)")
        if self.interest_patch % 2 == 0:
            raise ConfigError(
                f"parameter 'vision.interest_patch' = {self.interest_patch} is not allowed: "
                "must be odd")


@dataclass
class RejectedObservation:
    """A detection that produced no 3D observation, and why."""

    box: np.ndarray  # (4,) u, v, w, h of the head box, pixels
    kind: str
    reason: str  # a stereo.REJECT_REASONS entry or "size_mismatch"
    confidence: float
    depth: float = float("nan")  # stereo depth when one was measured, m


@dataclass
class VisualObservations:
    """The 3D observations of one image pair (M of them).

    Attributes
    ----------
    stamp : float
        Seconds, the left image's header stamp.
    xyz : array (M, 3)
        Metres, left camera optical frame (x right, y down, z forward).
    covariance : array (M, 3, 3)
        m^2.
    weight : array (M,)
        Detector confidence x match quality, in [0, 1].
    box : array (M, 4)
        u, v, w, h of the head box (interest points: the matched patch), pixels
        of the rectified left image.
    kind : array (M,) of str
        ``face``, ``profile``, ``upper_body``, ``body`` (the body cue: a track whose
        face is not seen) or ``point``.
    confidence, quality, disparity : arrays (M,)
        Detector confidence, stereo match quality, disparity in px.
    tracked : array (M,) of bool
        Box came from tracking between detector keyframes.
    rejected : list of RejectedObservation
    lip_llr : array (M,)
        Reliability-weighted speaking log-likelihood ratio of the face's lip motion
        (section ``lips``); 0 = unknown (no face mesh, lip cue off, not a face).
    lip_reliability : array (M,)
        [0, 1] trust in that evidence; 0 = unknown.
    """

    stamp: float
    xyz: np.ndarray
    covariance: np.ndarray
    weight: np.ndarray
    box: np.ndarray
    kind: np.ndarray
    confidence: np.ndarray
    quality: np.ndarray
    disparity: np.ndarray
    tracked: np.ndarray
    rejected: list = field(default_factory=list)
    lip_llr: np.ndarray | None = None
    lip_reliability: np.ndarray | None = None

    def __post_init__(self):
        m = len(self.weight)
        for name in ("lip_llr", "lip_reliability"):
            v = getattr(self, name)
            setattr(self, name, np.zeros(m) if v is None
                    else np.asarray(v, dtype=np.float64).reshape(m))

    def __len__(self) -> int:
        return len(self.weight)

    @classmethod
    def empty(cls, stamp: float) -> VisualObservations:
        z = np.zeros(0)
        return cls(float(stamp), np.zeros((0, 3)), np.zeros((0, 3, 3)), z, np.zeros((0, 4)),
                   np.zeros(0, dtype="<U10"), z, z, z, np.zeros(0, dtype=bool))

    @property
    def variances(self) -> np.ndarray:
        """(M, 3) diagonal of the covariances (var_x, var_y, var_z), m^2."""
        return np.diagonal(self.covariance, axis1=1, axis2=2).copy()

    def select(self, mask) -> VisualObservations:
        """The observations where ``mask`` (bool (M,) or indices) holds."""
        return VisualObservations(
            self.stamp, self.xyz[mask], self.covariance[mask], self.weight[mask],
            self.box[mask], self.kind[mask], self.confidence[mask], self.quality[mask],
            self.disparity[mask], self.tracked[mask], list(self.rejected),
            self.lip_llr[mask], self.lip_reliability[mask])

    @classmethod
    def concatenate(cls, stamp: float, parts) -> VisualObservations:
        """Join observation sets of the same frame."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(stamp)
        names = ["xyz", "covariance", "weight", "box", "kind", "confidence", "quality",
                 "disparity", "tracked", "lip_llr", "lip_reliability"]
        kw = {n: np.concatenate([getattr(p, n) for p in parts]) for n in names}
        return cls(float(stamp), **kw, rejected=[r for p in parts for r in p.rejected])


def head_regions(position, calibration: StereoCalibration, face_width: float = 0.16,
                 frame: str = "camera", depth_offset: float = 0.0,
                 min_depth: float = 0.05) -> np.ndarray:
    """The face boxes expected in the rectified left image for head positions.

    The inverse of :meth:`VisualFrontEnd.process` for a face: a head at depth z has a box
    ``fx * face_width / z`` pixels wide and high, centred on the head's projection (pixel
    centres at integers, as the front-end's triangulation); ``depth_offset`` (the
    front-end's face surface -> head centre offset) is taken off along the ray first.
    These are the regions the detector looks around (``detection.region_scale`` x the
    box side: a margin proportional to the face size expected at that depth).

    Parameters
    ----------
    position : array (N, 3)
        Metres, in ``frame`` ('camera': left camera optical frame; 'rectified': the
        rectified left frame) -- the frame of the front-end's outputs
        (``vision.output_frame``).
    calibration : StereoCalibration
    face_width : float
        m (``vision.face_width``).
    min_depth : float
        Heads nearer than this (or behind the camera) give no box.

    Returns
    -------
    array (K, 4)
        x, y, w, h (top-left corner, pixels) of the heads in front of the camera whose
        box overlaps the image, in the order given.
    """
    p = np.asarray(position, dtype=np.float64).reshape(-1, 3)
    if depth_offset and len(p):
        norm = np.linalg.norm(p, axis=1, keepdims=True)
        p = p - depth_offset * p / np.where(norm > 0, norm, 1.0)
    finite = np.isfinite(p).all(axis=1)
    p = p[finite]
    if not len(p):
        return np.zeros((0, 4))
    rect = p if frame == "rectified" else p @ calibration.rotation.T
    ok = rect[:, 2] >= max(float(min_depth), 1e-6)
    if not ok.any():
        return np.zeros((0, 4))
    u, v, _ = calibration.project(p[ok], frame=frame)
    side = calibration.fx * float(face_width) / rect[ok, 2]
    boxes = np.column_stack([u + 0.5 - 0.5 * side, v + 0.5 - 0.5 * side, side, side])
    inside = ((boxes[:, 0] + boxes[:, 2] > 0) & (boxes[:, 1] + boxes[:, 3] > 0)
              & (boxes[:, 0] < calibration.width) & (boxes[:, 1] < calibration.height))
    return boxes[inside]


def _as_image(img, name) -> np.ndarray:
    a = img if isinstance(img, np.ndarray) else np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise VisionInputError(
            f"{name} image has shape {a.shape}: expected grey (H, W), BGR (H, W, 3) or BGRA "
            "(H, W, 4); convert messages with av_perception.io.image_msgs.image_to_bgr")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise VisionInputError(
            f"{name} image has dtype {a.dtype}: expected uint8 (or uint16) pixels")
    if a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)
    return a


class VisualFrontEnd:
    """Stereo pair + stamp -> :class:`VisualObservations` (the visual stage).

    Parameters
    ----------
    config : VisionConfig, optional
    calibration : StereoCalibration or StereoCameraConfig, optional
        Default: ``StereoCameraConfig()`` (640x480, fx 500, baseline 0.12 m).
    detection : DetectionConfig, optional
        Detector settings (section ``detection``).
    lips : LipConfig, optional
        The lip cue (section ``lips``; default on): with a BlazeFace detector, every
        face box gets ``lip_llr`` / ``lip_reliability`` (:class:`.lip_frontend.LipFrontEnd`);
        ``lip_warning`` says why it is off when it cannot run.
    landmarker : optional
        Face-mesh object for the lip cue (tests; default: loaded from ``lips.model``).
    body : BodyCueConfig, optional
        The body cue (section ``body``; default on): tracks passed to :meth:`process`
        whose face is not seen are observed from the stereo depth of their head-and-torso
        column (:class:`.body_cue.BodyCue`, kind ``body``).

    Notes
    -----
    The object keeps state only for the every-k tracking (:meth:`reset`
    forgets it).  ``stats`` counts frames, observations and rejections by
    reason; ``last_timing`` holds the seconds spent per step on the last frame.
    """

    def __init__(self, config: VisionConfig | None = None,
                 calibration: StereoCalibration | StereoCameraConfig | None = None,
                 detection: DetectionConfig | None = None, lips: LipConfig | None = None,
                 landmarker=None, body: BodyCueConfig | None = None):
        self.config = c = config or VisionConfig()
        if calibration is None:
            calibration = StereoCameraConfig()
        if isinstance(calibration, StereoCameraConfig):
            calibration = StereoCalibration.from_config(calibration)
        self.calibration = calibration
        self.detection_config = detection or DetectionConfig()
        fx = calibration.fx
        # largest box: an upper body (~0.6 m wide) or a face, at the nearest allowed depth
        largest = 0.6 if "upper_body" in self.detection_config.detectors else 1.5 * c.face_width
        self.detector = DetectionPipeline(
            self.detection_config,
            min_size=int(math.floor(0.7 * fx * c.face_width / c.max_depth)),
            max_size=int(math.ceil(fx * largest / c.min_depth)))
        self.detector.keep_candidates = True  # confirmed or rejected in _heads
        self.matcher = RegionMatcher(
            calibration, c.min_depth, c.max_depth, c.disparity_method, c.vertical_search,
            c.min_texture, c.min_match_score, c.ambiguity_margin, c.max_template_samples,
            lr_tolerance=c.left_right_tolerance, use_numba=c.use_numba)
        self.lip_config = lips or LipConfig()
        self.lips: LipFrontEnd | None = None
        if self.lip_config.enabled and any(isinstance(d, BlazeFacePass)
                                           for d in self.detector.detectors):
            self.lips = LipFrontEnd(self.lip_config, landmarker)
        self.body_config = body or BodyCueConfig()
        self.body = (BodyCue(self.body_config, calibration, self.matcher, c.face_width,
                             c.disparity_noise, c.output_frame, c.depth_offset)
                     if self.body_config.enabled else None)
        self.stats: dict = {"frames": 0, "observations": 0, "interest_points": 0,
                            "body": 0, "half_face": 0, "track_depth": 0, "candidates": 0,
                            "rejected": {}}
        self.last_timing: dict = {}

    # ----------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget tracked boxes, lip histories and the body cue's face times (e.g. after a
        jump in the input)."""
        self.detector.reset()
        if self.body is not None:
            self.body.reset()
        if self.lips is not None:
            self.lips.reset()

    @property
    def lip_warning(self) -> str | None:
        """Why the lip cue is off although ``lips.enabled`` asks for it (None: it is not)."""
        return None if self.lips is None else self.lips.warning

    def warm_up(self) -> None:
        """Compile the numba kernel (call once at node start)."""
        self.matcher.warm_up()

    # ------------------------------------------------------------- process
    def process(self, left, right, stamp: float, regions=None,
                tracks=None) -> VisualObservations:
        """3D head observations of one stereo pair.

        Parameters
        ----------
        left, right : arrays (H, W, 3) BGR or (H, W) grey, uint8 (uint16 accepted)
            The image pair as delivered (raw pairs are rectified when the
            calibration carries rectification maps).
        stamp : float
            Seconds (left image header stamp).
        regions : sequence of (x, y, w, h), optional
            Boxes of the rectified left image where faces are expected (the tracks'
            predicted heads, :func:`head_regions`): BlazeFace also looks around them
            on keyframes (``detection.max_regions``); the Haar and YuNet detectors
            ignore them.
        tracks : (positions (K, 3), ids (K,)), optional
            The tracks' heads predicted to ``stamp`` (``output_frame``) and their ids:
            the body cue observes those whose face this pair does not show; they confirm
            low-scoring face candidates (``vision.candidate_confirmation``).

        Returns
        -------
        VisualObservations

        Raises
        ------
        VisionInputError
            Shape/dtype problems, left/right size mismatch, size different from
            the calibration, non-finite stamp.
        """
        t0 = time.perf_counter()
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise VisionInputError(f"stamp {stamp} is not a finite time in seconds")
        left = _as_image(left, "left")
        right = _as_image(right, "right")
        try:
            self.calibration.check_images(left, right)
        except StereoInputError as exc:
            raise VisionInputError(str(exc)) from None
        left, right = self.calibration.rectify(left, right)
        gl = left if left.ndim == 2 else cv2.cvtColor(left, cv2.COLOR_BGR2GRAY)
        gr = right if right.ndim == 2 else cv2.cvtColor(right, cv2.COLOR_BGR2GRAY)
        t1 = time.perf_counter()
        image = left if left.ndim == 3 else gl
        dets = (self.detector.detect(image) if regions is None
                else self.detector.detect(image, regions))
        t2 = time.perf_counter()
        lips = None
        if self.lips is not None:  # the candidates get no face mesh
            sure = [i for i, d in enumerate(dets) if not d.candidate]
            # the box tracker's camera rotation and matrix (a turning head, from /tf)
            det = getattr(self.detector, "pipeline", self.detector)
            boxes = getattr(det, "tracker", None)
            llr, rel = self.lips.observe(image, [dets[i] for i in sure], stamp,
                                         getattr(boxes, "rotation", None),
                                         getattr(boxes, "K", None))
            lips = (np.zeros(len(dets)), np.zeros(len(dets)))
            lips[0][sure], lips[1][sure] = llr, rel
        t2b = time.perf_counter()
        heads = self._heads(gl, gr, dets, stamp, lips, tracks)
        t3a = time.perf_counter()
        parts = [heads]
        n_body = 0
        if self.body is not None and tracks is not None:
            body = self.body.observe(gl, gr, stamp, tracks[0], tracks[1], heads)
            n_body = len(body)
            self.stats["body"] += n_body
            parts.append(body)
        t3 = time.perf_counter()
        if self.config.interest_points:
            parts.append(self._interest_points(gl, gr, dets, stamp))
        obs = VisualObservations.concatenate(stamp, parts)
        obs.rejected = heads.rejected
        t4 = time.perf_counter()
        self.stats["frames"] += 1
        self.stats["observations"] += len(heads) + n_body
        self.stats["interest_points"] += len(obs) - len(heads) - n_body
        for r in heads.rejected:
            self.stats["rejected"][r.reason] = self.stats["rejected"].get(r.reason, 0) + 1
        self.last_timing = {"rectify": t1 - t0, "detect": t2 - t1, "lips": t2b - t2,
                            "stereo": t3a - t2b, "body": t3 - t3a,
                            "interest_points": t4 - t3, "total": t4 - t0}
        return obs

    # ------------------------------------------------------------ internals
    def _heads(self, gl, gr, dets: list[Detection], stamp: float,
               lips=None, tracks=None) -> VisualObservations:
        c = self.config
        if not dets:
            return VisualObservations.empty(stamp)
        heads = np.array([d.head_box() for d in dets], dtype=np.float64)
        f = c.match_fraction
        regions = heads.copy()
        regions[:, 0] += 0.5 * (1 - f) * heads[:, 2]
        regions[:, 1] += 0.5 * (1 - f) * heads[:, 3]
        regions[:, 2:] *= f
        res = self.matcher.match(gl, gr, regions)
        conf = np.array([d.confidence for d in dets])
        kinds = np.array([d.kind for d in dets], dtype="<U10")
        sigma_d = np.full(len(dets), c.disparity_noise)
        z_track = self._track_depths(heads, tracks)
        if c.half_face_stereo and c.disparity_method == "ncc":  # bounds chosen for ZNCC
            self._match_halves(gl, gr, regions, heads, kinds, res, z_track, sigma_d)
        reason = res.reason.astype(object)
        if c.size_check_ratio > 0:
            is_face = (kinds == "face") | (kinds == "profile")
            with np.errstate(invalid="ignore", divide="ignore"):
                z_size = self.calibration.fx * c.face_width / heads[:, 2]
                ratio = res.depth / z_size
            bad = (is_face & (reason == "ok")
                   & ((ratio > c.size_check_ratio) | (ratio < 1.0 / c.size_check_ratio)))
            reason[bad] = "size_mismatch"
        cand = np.array([d.candidate for d in dets], dtype=bool)
        if cand.any():
            self._confirm_candidates(cand, reason, res, heads, z_track)
        ok = reason == "ok"
        rejected = [RejectedObservation(heads[i], str(kinds[i]), str(reason[i]), float(conf[i]),
                                        float(res.depth[i]) if np.isfinite(res.depth[i])
                                        else float("nan"))
                    for i in np.flatnonzero(~ok)]
        if not ok.any():
            out = VisualObservations.empty(stamp)
            out.rejected = rejected
            return out
        h = heads[ok]
        u = h[:, 0] + 0.5 * h[:, 2] - 0.5  # pixel centres at integers
        v = h[:, 1] + 0.5 * h[:, 3] - 0.5
        sigma_uv = np.sqrt(c.pixel_noise ** 2 + (c.box_jitter * h[:, 2]) ** 2)
        xyz, cov = self.calibration.triangulate(u, v, res.disparity[ok], sigma_uv,
                                                sigma_d[ok], frame=c.output_frame)
        if c.depth_offset:
            xyz = xyz + c.depth_offset * xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
        return VisualObservations(
            stamp, xyz, cov, conf[ok] * res.quality[ok], h, kinds[ok], conf[ok],
            res.quality[ok], res.disparity[ok], np.array([d.tracked for d in dets])[ok],
            rejected, None if lips is None else lips[0][ok],
            None if lips is None else lips[1][ok])

    def _match_halves(self, gl, gr, regions, heads, kinds, res, z_track, sigma_d) -> None:
        """Faces whose match failed as a partly hidden face's does (``left_right_mismatch``,
        ``low_match_score``; with ``vision.half_face_at_border`` also ``at_image_border``,
        ``too_far``: partly outside the right image): match one-sided parts of their
        regions (the halves; ``vision.partial_face_widths``) and take the best part that
        passes every check and the stricter :data:`HALF_FACE_MIN_SCORE`,
        :data:`HALF_FACE_MIN_MARGIN` and :data:`HALF_FACE_SIZE_RATIO`
        (``vision.half_face_stereo``); with ``vision.track_depth_fallback``, a face at a
        track's predicted head (``z_track`` finite, :meth:`_track_depths`) takes the better
        half within :data:`CANDIDATE_TRACK_DEPTH` of the track's depth, else that depth
        (``sigma_d``: :data:`TRACK_DEPTH_SIGMA`).  ``res`` and ``sigma_d`` are updated in
        place."""
        c = self.config
        lo, hi = HALF_FACE_SIZE_RATIO
        reasons = ["left_right_mismatch", "low_match_score"]
        if c.half_face_at_border:
            reasons += ["at_image_border", "too_far"]
        retry = np.flatnonzero(((kinds == "face") | (kinds == "profile"))
                               & np.isin(res.reason, reasons))
        if not retry.size:
            return
        parts = []  # one-sided parts of the regions: left- and right-anchored, per width
        widths = (0.5, *(w for w in c.partial_face_widths if w != 0.5))  # halves first
        for f in widths:
            left = regions[retry].copy()
            left[:, 2] *= f
            right = left.copy()
            right[:, 0] += regions[retry, 2] - left[:, 2]
            parts += [left, right]
        half = self.matcher.match(gl, gr, np.concatenate(parts))
        n = retry.size
        tries = [2 * i * n + side * n for i, w in enumerate(widths)  # the configured ones
                 if w in c.partial_face_widths for side in (0, 1)]
        z_size = self.calibration.fx * c.face_width / heads[retry, 2]
        names = ("disparity", "depth", "score", "uniqueness", "quality", "dy")
        for k, i in enumerate(retry):
            best = None
            for j in (k + t for t in tries):
                if (half.reason[j] != "ok" or half.score[j] < HALF_FACE_MIN_SCORE
                        or half.uniqueness[j] < HALF_FACE_MIN_MARGIN
                        or not lo <= half.depth[j] / z_size[k] <= hi):
                    continue
                if best is None or half.quality[j] > half.quality[best]:
                    best = j
            zt = z_track[i]
            if best is None and c.track_depth_fallback and np.isfinite(zt):
                for j in (k, k + n):  # the halves: the plain checks and the track's depth
                    if (half.reason[j] == "ok"
                            and abs(half.depth[j] - zt) <= CANDIDATE_TRACK_DEPTH * zt
                            and (best is None or half.quality[j] > half.quality[best])):
                        best = j
                if best is None:  # the track's depth, with a wide deviation
                    d = self.calibration.disparity_from_depth(zt)
                    res.disparity[i], res.depth[i] = d, zt
                    res.quality[i] = TRACK_DEPTH_QUALITY
                    sigma_d[i] = max(float(sigma_d[i]), TRACK_DEPTH_SIGMA * d)
                    res.reason[i] = "ok"
                    self.stats["track_depth"] += 1
                    continue
            if best is None:
                continue
            for name in names:
                getattr(res, name)[i] = getattr(half, name)[best]
            res.reason[i] = "ok"
            self.stats["half_face"] += 1

    def _track_depths(self, heads, tracks) -> np.ndarray:
        """(M,) the predicted depth of the track whose head is predicted at each box
        (centre within half the predicted face's side, box side within
        :data:`HALF_FACE_SIZE_RATIO` of the predicted face's; the nearest in the image),
        NaN where none is."""
        c = self.config
        cal = self.calibration
        out = np.full(len(heads), np.nan)
        p = (np.zeros((0, 3)) if tracks is None
             else np.asarray(tracks[0], dtype=np.float64).reshape(-1, 3))
        p = p[np.isfinite(p).all(axis=1)]
        if not len(p) or not len(heads):
            return out
        if c.depth_offset:  # head centre -> face surface, as the faces are measured
            norm = np.linalg.norm(p, axis=1, keepdims=True)
            p = p - c.depth_offset * p / np.where(norm > 0, norm, 1.0)
        rect = p if c.output_frame == "rectified" else p @ cal.rotation.T
        front = rect[:, 2] > 1e-6
        if not front.any():
            return out
        p, zt = p[front], rect[front, 2]
        ut, vt, _ = cal.project(p, frame=c.output_frame)
        side = cal.fx * c.face_width / zt
        u = heads[:, 0] + 0.5 * heads[:, 2] - 0.5
        v = heads[:, 1] + 0.5 * heads[:, 3] - 0.5
        du, dv = np.abs(u[:, None] - ut[None]), np.abs(v[:, None] - vt[None])
        lo, hi = HALF_FACE_SIZE_RATIO
        z_size = cal.fx * c.face_width / heads[:, 2]
        fits = ((du <= 0.5 * side[None]) & (dv <= 0.5 * side[None])
                & (z_size[:, None] >= lo * zt[None]) & (z_size[:, None] <= hi * zt[None]))
        dist = np.where(fits, np.hypot(du, dv), np.inf)
        j = np.argmin(dist, axis=1)
        has = np.isfinite(dist[np.arange(len(heads)), j])
        out[has] = zt[j[has]]
        return out

    def _confirm_candidates(self, cand, reason, res, heads, z_track) -> None:
        """Low-scoring candidates (``Detection.candidate``) that matched: reason
        ``unconfirmed`` unless their depth fits their size (:data:`CANDIDATE_SIZE_RATIO`)
        and ``vision.candidate_confirmation`` holds (a sure match; a track's head predicted
        there, ``z_track`` (:meth:`_track_depths`), within :data:`CANDIDATE_TRACK_DEPTH`)."""
        c = self.config
        idx = np.flatnonzero(cand & (reason == "ok"))
        if not idx.size:
            return
        depth = res.depth[idx]
        z_size = self.calibration.fx * c.face_width / heads[idx, 2]
        lo, hi = CANDIDATE_SIZE_RATIO
        plausible = (depth >= lo * z_size) & (depth <= hi * z_size)
        sure = ((res.score[idx] >= CANDIDATE_MIN_SCORE)
                & (res.uniqueness[idx] >= CANDIDATE_MIN_MARGIN))
        zt = z_track[idx]
        with np.errstate(invalid="ignore"):
            at_track = np.isfinite(zt) & (np.abs(depth - zt) <= CANDIDATE_TRACK_DEPTH * zt)
        rule = {"track": at_track, "stereo": sure, "either": at_track | sure,
                "both": at_track & sure}[c.candidate_confirmation]
        reason[idx[~(plausible & rule)]] = "unconfirmed"
        self.stats["candidates"] += int(np.count_nonzero(plausible & rule))

    def _interest_points(self, gl, gr, dets, stamp) -> VisualObservations:
        c = self.config
        height, width = gl.shape
        mask = np.zeros_like(gl)
        x0, y0, x1, y1 = self.detector.roi_pixels(width, height)
        mask[y0:y1, x0:x1] = 255
        for d in dets:  # heads are observed already
            hx, hy, hw, hh = d.head_box()
            mask[max(0, int(hy)):max(0, int(hy + hh)), max(0, int(hx)):max(0, int(hx + hw))] = 0
        corners = cv2.goodFeaturesToTrack(gl, c.max_interest_points, c.interest_quality,
                                          c.interest_min_distance, mask=mask)
        if corners is None:
            return VisualObservations.empty(stamp)
        pts = corners.reshape(-1, 2)
        p = c.interest_patch
        boxes = np.column_stack([np.round(pts[:, 0]) - p // 2, np.round(pts[:, 1]) - p // 2,
                                 np.full(len(pts), p), np.full(len(pts), p)]).astype(np.float64)
        res = self.matcher.match(gl, gr, boxes)
        ok = res.valid
        if not ok.any():
            return VisualObservations.empty(stamp)
        b = boxes[ok]
        u = b[:, 0] + p // 2
        v = b[:, 1] + p // 2
        xyz, cov = self.calibration.triangulate(u, v, res.disparity[ok], c.pixel_noise,
                                                c.disparity_noise, frame=c.output_frame)
        n = int(ok.sum())
        return VisualObservations(
            stamp, xyz, cov, c.interest_weight * res.quality[ok], b,
            np.full(n, "point", dtype="<U10"), np.ones(n), res.quality[ok], res.disparity[ok],
            np.zeros(n, dtype=bool))
