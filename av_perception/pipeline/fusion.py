"""Fusion stage: audio features + visual observations -> audio-visual events per
sliding window (the weighted-data EM clustering)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..compile_lock import serialized_compilation
from ..core.audio import BinauralFeatures
from ..core.av_clustering import AVClusterer, AVClusteringConfig
from ..core.av_clustering import warm_up as av_warm_up
from ..core.config import ConfigError, MicArrayConfig, StageConfig, param
from ..core.wdem import WdemConfig
from ..io.heads import load_head_model
from .audio import audio_frames_of
from .buffer import (
    MAX_ITD,
    MAX_POSITION,
    InputError,
    TimeOrderedBuffer,
    check_audio,
    check_point_count,
    check_stamp,
)

__all__ = ["FusionInputConfig", "FusionInputError", "FusionPipeline", "FusionRunResult",
           "FusionWindow"]


@dataclass(frozen=True)
class FusionInputConfig(StageConfig):
    """How the fusion stage merges its two input streams (section ``fusion_input``)."""

    SECTION: ClassVar[str] = "fusion_input"

    frame_id: str = param(
        "stereo_left_optical_frame", "frame_id of av_events when the visual observations carry "
        "none (before the first one arrives, or an empty header frame_id); otherwise the "
        "observations' frame_id is used.")
    max_input_delay: float = param(
        0.3, "Data time (s) the fusion waits for the slower input stream: windows run on the "
        "data both streams have delivered, or on the faster one alone once it is this far "
        "ahead (a silent or lagging stream does not stop the output; its data older than the "
        "processed time is then dropped as late).", low=0.0, high=10.0)
    max_buffer: int = param(
        500, "Largest number of input messages (audio feature clouds + observation clouds) "
        "waiting to be clustered; beyond it the oldest are dropped (and counted).",
        low=1, high=100000)
    time_jump_reset: float = param(
        3.0, "An input stamped this many seconds before the processed data time is a jump back "
        "(bag restarted, clock reset): the fusion restarts from empty instead of dropping it as "
        "late.  Must exceed max_input_delay.", low=0.1, high=1e6)
    min_itd_weight: float = param(
        0.02, "Audio frames whose weight (activity x GCC-PHAT reliability) is below this are "
        "not clustered (silence; they only cost time).", low=0.0, high=1.0)

    def validate(self):
        if not self.frame_id.strip():
            raise ConfigError("parameter 'fusion_input.frame_id' is empty: give the frame of "
                              "the left camera optical frame")
        if self.time_jump_reset <= self.max_input_delay:
            raise ConfigError(
                f"parameter 'fusion_input.time_jump_reset' = {self.time_jump_reset} is not "
                f"allowed: must be > fusion_input.max_input_delay ({self.max_input_delay})")


#: an input batch of the fusion stage is unusable (non-finite stamp, shape mismatch)
FusionInputError = InputError


@dataclass
class FusionWindow:
    """One clustered window: ``events`` (list of AVEvent) of the window ending at ``stamp``."""

    stamp: float
    events: list
    frame_id: str
    processing_time: float
    n_visual: int
    n_audio: int


@dataclass
class FusionRunResult:
    windows: list = field(default_factory=list)
    wall_seconds: float = 0.0


@dataclass
class _VisualFrame:
    stamp: float
    xyz: np.ndarray
    weight: np.ndarray
    cov: np.ndarray
    frame_id: str


class FusionPipeline:
    """Fusion stage: audio features + visual observations -> AV events per window.

    Wraps :class:`~av_perception.core.av_clustering.AVClusterer`.  The two inputs
    arrive separately, each in stamp order but with different latencies, so they
    are buffered and released to the clusterer merged in stamp order up to the
    *release time*: the older of the two streams' newest stamps, or the newer
    one minus ``fusion_input.max_input_delay`` when the other stream lags that much
    (or has never delivered).  Windows are therefore driven by data time only
    (header stamps): a bag replayed at any rate gives the same windows.

    Input that arrives stamped before the data already released is *late*:
    dropped and counted (``late_audio_frames``, ``late_visual_frames``), unless it is
    more than ``time_jump_reset`` s before it, which restarts the stage
    (``resets``; a bag played again, a clock reset).

    ITD weights are activity x reliability (:attr:`BinauralFeatures.weight`);
    frames with a non-finite ITD or a weight below ``min_itd_weight`` are left out.
    Visual points with a non-finite position/weight or a negative weight are left
    out (``invalid_points``); a non-finite variance becomes the
    ``fusion.visual_std_max`` variance (observation kept, trusted little).

    Statistics (totals): ``windows``, ``processing_time`` (s), ``audio_frames``,
    ``visual_frames``, ``late_audio_frames``, ``late_visual_frames``,
    ``overflow_dropped`` (messages), ``invalid_points``, ``resets``.
    """

    def __init__(self, fusion: AVClusteringConfig | None = None,
                 wdem_config: WdemConfig | None = None, mics: MicArrayConfig | None = None,
                 inputs: FusionInputConfig | None = None, use_numba: bool = True):
        self.fusion_config = fusion or AVClusteringConfig()
        self.wdem_config = wdem_config or WdemConfig()
        self.mics_config = mics or MicArrayConfig()
        self.input_config = inputs or FusionInputConfig()
        self.use_numba = use_numba
        self.geometry = load_head_model(self.mics_config)
        self.clusterer = AVClusterer(self.fusion_config, self.geometry, self.wdem_config,
                                     use_numba=use_numba)
        self.windows = 0
        self.processing_time = 0.0
        self.audio_frames = 0
        self.visual_frames = 0
        self.late_audio_frames = 0
        self.late_visual_frames = 0
        self.invalid_points = 0
        self.resets = 0
        self.last_jump = float("nan")  # s, the latest jump back
        self._clear()

    def _clear(self):
        buffer = getattr(self, "buffer", None)  # keeps its drop counters over resets
        if buffer is None:
            buffer = self.buffer = TimeOrderedBuffer()
        buffer.max_messages = self.input_config.max_buffer
        buffer.clear()
        self.released = -math.inf  # data time handed to the clusterer
        self._fed = -math.inf  # newest stamp handed to the clusterer
        self.frame_id = self.input_config.frame_id

    def warm_up(self):
        """Compile (or load from cache) the clustering kernels now."""
        with serialized_compilation("fusion"):
            av_warm_up()

    def reset(self):
        """Forget buffered input and clusters (the statistics are kept)."""
        self.clusterer.reset()
        self._clear()

    def configure(self, fusion: AVClusteringConfig, wdem_config: WdemConfig,
                  mics: MicArrayConfig, inputs: FusionInputConfig):
        """New configuration; a new clustering model restarts the clusters (buffers kept)."""
        model_changed = (fusion, wdem_config, mics) != (
            self.fusion_config, self.wdem_config, self.mics_config)
        self.fusion_config, self.wdem_config = fusion, wdem_config
        self.mics_config, self.input_config = mics, inputs
        self.buffer.max_messages = inputs.max_buffer
        if model_changed:
            self.geometry = load_head_model(mics)
            self.clusterer = AVClusterer(fusion, self.geometry, wdem_config,
                                         use_numba=self.use_numba)
            self._fed = -math.inf

    @property
    def buffered_messages(self) -> int:
        return self.buffer.messages

    @property
    def overflow_dropped(self) -> int:
        """Input messages dropped from a full buffer (total)."""
        return sum(self.buffer.dropped.values())

    @property
    def audio_head(self) -> float | None:
        return self.buffer.head["audio"]

    @property
    def visual_head(self) -> float | None:
        return self.buffer.head["visual"]

    # ----------------------------------------------------------------- input
    def _check_time(self, stamp: float) -> bool:
        """False when ``stamp`` is late; resets the stage on a large jump back."""
        if stamp > self.released:
            return True
        if self.released - stamp > self.input_config.time_jump_reset:
            self.resets += 1
            self.last_jump = self.released - stamp
            self.reset()
            return True
        return False

    def add_audio(self, stamps, itds, weights) -> int:
        """Buffer audio frames (stamps s, ITDs s, weights >= 0); returns how many were kept.

        Raises FusionInputError for mismatched shapes or non-finite stamps.
        """
        t, tau, w = check_audio(stamps, itds, weights)
        if len(t) == 0:
            return 0
        if not self._check_time(float(t[0])):
            late = t <= self.released
            self.late_audio_frames += int(late.sum())
            t, tau, w = t[~late], tau[~late], w[~late]
            if len(t) == 0:
                return 0
        self.audio_frames += len(t)
        with np.errstate(invalid="ignore"):
            ok = (np.isfinite(tau) & (np.abs(tau) <= MAX_ITD) & np.isfinite(w)
                  & (w >= self.input_config.min_itd_weight) & (w > 0))
        self.buffer.add_audio(t, tau, np.minimum(w, 1.0), keep=ok)
        return len(t)

    def add_audio_features(self, features) -> int:
        """Buffer a :class:`BinauralFeatures` or a ``cloud_to_features`` dict."""
        return self.add_audio(*audio_frames_of(features))

    def add_visual(self, stamp: float, xyz, weights, variances=None, frame_id: str = "") -> bool:
        """Buffer one frame of visual observations ((M, 3) m, (M,) weights, optional (M, 3)
        variances m^2); returns False when the frame was late.  Raises FusionInputError for
        a non-finite stamp or mismatched shapes."""
        stamp = check_stamp(stamp, "visual observations")
        X = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        var = (np.zeros((len(X), 3)) if variances is None
               else np.asarray(variances, dtype=np.float64).reshape(-1, 3))
        if not len(X) == len(w) == len(var):
            raise FusionInputError(f"visual observations: {len(X)} points, {len(w)} weights "
                                   f"and {len(var)} variances (must be equal)")
        check_point_count(len(X), "visual observations")
        if not self._check_time(stamp):
            self.late_visual_frames += 1
            return False
        with np.errstate(invalid="ignore"):
            ok = (np.all(np.isfinite(X) & (np.abs(X) <= MAX_POSITION), axis=1) & np.isfinite(w)
                  & (w >= 0))
        self.invalid_points += int((~ok).sum())
        X, w, var = X[ok], np.minimum(w[ok], 1.0), var[ok]
        with np.errstate(invalid="ignore"):
            usable = np.isfinite(var) & (var >= 0) & (var <= MAX_POSITION ** 2)
        var = np.where(usable, var, self.fusion_config.visual_std_max ** 2)
        cov = np.zeros((len(X), 3, 3))
        cov[:, [0, 1, 2], [0, 1, 2]] = var
        self.buffer.add_visual(stamp, _VisualFrame(stamp, X, w, cov, frame_id))
        self.visual_frames += 1
        return True

    # ------------------------------------------------------------ processing
    def release_time(self, flush: bool = False) -> float:
        """Data time up to which the buffered input can be clustered now."""
        heads = [h for h in (self.audio_head, self.visual_head) if h is not None]
        if not heads:
            return -math.inf
        newest = max(heads)
        if flush:
            return newest
        delay = self.input_config.max_input_delay
        if len(heads) == 1:
            return newest - delay
        return max(min(heads), newest - delay)

    def process(self, flush: bool = False) -> list[FusionWindow]:
        """Cluster the buffered input up to the release time (all of it with ``flush``);
        returns the windows completed (one per ``fusion.hop_length`` of data time)."""
        until = self.release_time(flush)
        if until <= self.released:
            return []
        self.released = until
        got = self.buffer.release(until)  # merged over messages, in stamp order
        at, ax, aw = got.audio
        frames = [f for _, f in got.visual]
        out: list[FusionWindow] = []
        i = 0
        for f in frames:
            j = int(np.searchsorted(at, f.stamp, side="right"))
            if j > i:
                self._feed_audio(at[i:j], ax[i:j], aw[i:j], out)
                i = j
            self._feed_visual(f, out)
        if i < len(at):
            self._feed_audio(at[i:], ax[i:], aw[i:], out)
        # time passes even where the inputs carry no frame (e.g. frames below
        # min_itd_weight), once the clusterer has seen data
        if until > self._fed and math.isfinite(self._fed):
            self._feed(until, {}, out)
        return out

    def _feed_audio(self, t, tau, w, out):
        self._feed(float(t[-1]), dict(itds=tau, itd_weights=w, itd_stamps=t), out)

    def _feed_visual(self, f: _VisualFrame, out):
        if f.frame_id:
            self.frame_id = f.frame_id
        kw = dict(visual_points=f.xyz, visual_weights=f.weight)
        if len(f.xyz):
            kw["visual_covariances"] = f.cov
        self._feed(f.stamp, kw, out)

    def _feed(self, t: float, kwargs, out):
        t = max(t, self._fed)  # the clusterer's window ends at the newest stamp it saw
        before = self.clusterer.last_result
        t0 = time.perf_counter()
        events = self.clusterer.update(t, **kwargs)
        dt = time.perf_counter() - t0
        self._fed = t
        result = self.clusterer.last_result
        if result is not before:
            self.windows += 1
            self.processing_time += dt
            n_v = len(result.visual_responsibilities)
            n_a = len(result.audio_responsibilities)
            out.append(FusionWindow(t, list(events), self.frame_id, dt, n_v, n_a))

    def run(self, audio_features=(), visual_frames=()) -> FusionRunResult:
        """Offline: cluster whole streams.

        audio_features : iterable of BinauralFeatures or ``cloud_to_features`` dicts.
        visual_frames : iterable of ``(stamp, xyz, weights, variances)`` (variances may be
            None).

        Both are merged by stamp (as the node does with its subscriptions) and flushed at
        the end.
        """
        res = FusionRunResult()
        t0 = time.perf_counter()
        items = [(float(np.min(f.stamp if isinstance(f, BinauralFeatures) else f["stamp"])),
                  0, k, f) for k, f in enumerate(audio_features) if len(
                      f.stamp if isinstance(f, BinauralFeatures) else f["stamp"])]
        items += [(float(v[0]), 1, k, v) for k, v in enumerate(visual_frames)]
        for _, kind, _, item in sorted(items, key=lambda x: x[:3]):
            if kind == 0:
                self.add_audio_features(item)
            else:
                self.add_visual(item[0], item[1], item[2], item[3])
            res.windows.extend(self.process())
        res.windows.extend(self.process(flush=True))
        res.wall_seconds = time.perf_counter() - t0
        return res

