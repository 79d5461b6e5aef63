"""Voice stage: the front-end's STFT + the tracks -> per-track speech presence and voice.

:class:`VoiceSeparator` takes the audio features of a stream (front-end built with
``keep_spectra=True``) window by window (``voices.window``), with the tracks alive at each
window's end (their predicted ITD, and ILD with a head model that has one), clusters the
window's bins (:func:`~av_perception.core.tf_masks.cluster_window`) and adds each track's
voice to its signal (overlap-add at the processing rate, from the stream's first sample).
With ``voices.hop`` the window slides by a hop: every hop the window ending at the newest
frame is clustered and only the hop's new frames get voices.  The latency of a voice is
one hop (the window when ``voices.hop`` is 0) plus one frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..core.separation import (
    MWFState,
    finish_overlap_add,
    mwf_window,
    overlap_add,
    separate_window,
    voice_mask,
)
from ..core.tf_masks import TFObservations, VoiceConfig, cluster_window, hop_frames

__all__ = ["VoiceSeparator", "VoiceStream", "VoiceResult", "tracks_at", "speaking_in"]


@dataclass
class VoiceResult:
    """Per-track outputs of :meth:`VoiceSeparator.run`.

    rate : Hz of ``voices`` (the processing rate).
    voices : {track id: (n,) float} voice at the left microphone, sample 0 = the stream's
        first sample; zero where the track did not exist.
    presence : {track id: (F,) float} speech presence per frame of ``stamps`` (NaN where
        the track did not exist).
    stamps : (F,) s, the frames' centre stamps.
    windows, em_windows : windows clustered; windows where the EM's fit was used.
    wall_seconds : time spent in the stage.
    """

    rate: int
    voices: dict = field(default_factory=dict)
    presence: dict = field(default_factory=dict)
    stamps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    windows: int = 0
    em_windows: int = 0
    wall_seconds: float = 0.0


def tracks_at(outputs, stamps) -> list:
    """For each stamp, the (ids, positions) of the newest tracker output at or before it
    (the first output before any); ``outputs`` sorted by stamp, each with ``stamp``,
    ``ids`` (K,), ``position`` (K, 3)."""
    if not outputs:
        return [(np.zeros(0, dtype=np.int64), np.zeros((0, 3))) for _ in stamps]
    t = np.array([o.stamp for o in outputs])
    idx = np.clip(np.searchsorted(t, stamps, side="right") - 1, 0, len(outputs) - 1)
    return [(np.asarray(outputs[i].ids, dtype=np.int64), np.asarray(outputs[i].position))
            for i in idx]


def speaking_in(outputs, t0: float, t1: float, ids) -> np.ndarray:
    """Each track's highest speaking probability over the outputs stamped in (t0, t1] and
    the newest at or before t0 (1 where no output says: the outputs carry no
    ``speaking``, or the track is not in them)."""
    ids = np.asarray(ids, dtype=np.int64)
    best = np.full(len(ids), -1.0)
    if not outputs:
        return np.ones(len(ids))
    t = np.array([o.stamp for o in outputs])
    first = max(0, int(np.searchsorted(t, t0, side="right")) - 1)
    last = int(np.searchsorted(t, t1, side="right"))
    for o in outputs[first:max(last, first + 1)]:
        sp = getattr(o, "speaking", None)
        if sp is None:
            return np.ones(len(ids))
        by = dict(zip(np.asarray(o.ids, dtype=np.int64).tolist(),
                      np.asarray(sp, dtype=float).tolist()))
        for i, tid in enumerate(ids.tolist()):
            if tid in by and np.isfinite(by[tid]):
                best[i] = max(best[i], by[tid])
    return np.where(best < 0, 1.0, best)


class VoiceSeparator:
    """Per-track TF masks, speech presence and voices (see module docstring).

    Parameters
    ----------
    front_end : BinauralFrontEnd
        The front-end whose STFT the features carry (its window, hop, bins).
    geometry : MicGeometry
        Predicts each track's ITD (and ILD) from its position (camera frame).
    config : VoiceConfig
    """

    def __init__(self, front_end, geometry, config: VoiceConfig | None = None,
                 use_numba: bool = True):
        self.config = config or VoiceConfig()
        self.front_end = front_end
        self.geometry = geometry
        self.use_numba = use_numba
        self.observations = TFObservations(front_end, self.config, use_numba)
        c = front_end.config
        self.rate = c.processing_rate
        self.frame_length = c.frame_length
        self.window_frames = hop_frames(self.config.window, c.hop_duration)
        #: frames added between two clusterings (the window when voices.hop is 0)
        self.hop_frames = (min(hop_frames(self.config.hop, c.hop_duration), self.window_frames)
                           if self.config.hop > 0 else self.window_frames)
        self.tau_max = front_end.tau_max
        self.window_seconds = self.window_frames * c.hop_duration
        self.hop_seconds = self.hop_frames * c.hop_duration

    def _track_ild(self, positions):
        g = self.geometry
        if not getattr(g, "has_ild", False) or len(positions) == 0:
            return None
        band = self.front_end.band_of_bin
        ild_b = np.asarray(g.ild(positions))  # (K, J)
        if ild_b.ndim != 2 or ild_b.shape[1] != self.front_end.n_bands:
            return None
        j = np.where(band < 0, np.where(self.front_end.freqs < self.front_end.freqs.mean(),
                                        0, ild_b.shape[1] - 1), band)
        return ild_b[:, j]

    def observe(self, features):
        """(ipd, ild, weight, power), each (F, B), of the next frames of the stream
        (features with ``spec``; power: |X_l|^2 + |X_r|^2).  Advances the observations'
        stream state."""
        spec = features.spec
        ipd, ild, weight = self.observations(spec[:, 0], spec[:, 1])
        return ipd, ild, weight, (np.abs(spec[:, 0]) ** 2 + np.abs(spec[:, 1]) ** 2)

    def cluster(self, features, ids, positions, speaking=None):
        """Cluster one window of frames (features with ``spec``) among the tracks ``ids`` at
        ``positions`` (camera frame); returns (ids kept (finite ITD, speaking probability
        at least ``voices.speaking_gate`` when ``speaking`` is given), TFClusterResult) or
        None when no track is kept.  Advances the observations' stream state."""
        return self.cluster_observed(self.observe(features), features.activity, ids,
                                     positions, speaking)

    def cluster_observed(self, observed, activity, ids, positions, speaking=None):
        """:meth:`cluster` of a window's observations ``observed`` = (ipd, ild, weight[,
        power]) (:meth:`observe`) and frame ``activity`` (F,) or None."""
        ipd, ild, weight = observed[:3]
        power = observed[3] if len(observed) > 3 else None
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.asarray(positions, dtype=float).reshape(-1, 3)
        if len(ids) == 0:
            return None
        itd = np.asarray(self.geometry.itd(pos), dtype=float)
        ok = np.isfinite(itd)
        if speaking is not None and self.config.speaking_gate > 0:
            ok &= np.asarray(speaking, dtype=float) >= self.config.speaking_gate
        if not np.any(ok):
            return None
        cl = cluster_window(ipd, ild, weight, self.front_end.omega, itd[ok],
                            tau_max=self.tau_max, config=self.config,
                            track_ild=self._track_ild(pos[ok]), activity=activity,
                            min_frequency=self.front_end.config.min_frequency,
                            power=power, use_numba=self.use_numba)
        return ids[ok], cl

    def stream(self, start_time: float) -> VoiceStream:
        """A :class:`VoiceStream` whose sample 0 is at ``start_time`` (s)."""
        return VoiceStream(self, start_time)

    def run(self, features, outputs, start_time: float, n_samples: int) -> VoiceResult:
        """Separate every track of a whole stream (:meth:`stream`, fed at once).

        Parameters
        ----------
        features : BinauralFeatures with ``spec`` (front-end built with keep_spectra)
        outputs : tracker outputs (``stamp``, ``ids``, ``position`` in the camera frame)
        start_time : s, stamp of the stream's first sample (sample 0 of the voices)
        n_samples : length of the voices at the processing rate
        """
        t_wall = time.perf_counter()
        res = VoiceResult(rate=self.rate, stamps=np.asarray(features.stamp, dtype=float))
        if len(features) and features.spec is None:
            raise ValueError("the features carry no STFT: build the front-end with "
                             "keep_spectra=True")
        st = self.stream(start_time)
        parts = st.push(features, outputs)
        for tid, chunk in st.flush().items():
            parts.setdefault(tid, []).extend(chunk)
        for tid, chunks in parts.items():
            v = np.zeros(n_samples)
            for a, x in chunks:
                lo, hi = max(a, 0), min(a + len(x), n_samples)
                if hi > lo:
                    v[lo:hi] = x[lo - a:hi - a]
            res.voices[tid] = v
        res.presence = {tid: np.asarray(p, dtype=float) for tid, p in st.presence.items()}
        res.windows, res.em_windows = st.windows, st.em_windows
        res.wall_seconds = time.perf_counter() - t_wall
        return res


class VoiceStream:
    """Streaming voices: :meth:`push` features (with ``spec``) and the tracker outputs as
    they come; every ``voices.hop`` of new frames (``voices.window`` when the hop is 0), the
    last ``voices.window`` of frames is clustered among the tracks of the newest output at
    its last frame, the new frames' voices are formed, and each track's samples that no
    later frame can change are returned.  Latency: one hop plus one frame.

    Attributes
    ----------
    presence : {track id: (F,) presence of every frame pushed so far (NaN: no track)}
    """

    def __init__(self, separator: VoiceSeparator, start_time: float):
        self.sep = separator
        self.start_time = float(start_time)
        self._pending = None  # features not clustered yet
        self._outputs: list = []
        self._base = 0  # sample index of the buffers' first sample
        self._acc: dict = {}  # track id -> sum of w y from _base on
        self._norm = np.zeros(0)  # sum of w^2 over every frame, from _base on
        self._next = None  # sample index of the next frame's start
        self._live: set = set()  # the tracks of the newest window
        self.frames = 0
        self.presence: dict = {}
        self.windows = 0
        self.em_windows = 0
        self._mwf: dict = {}  # track id -> MWFState (method 'mwf')
        self._history = None  # (ipd, ild, weight, power, activity, stamps) of the window

    def _starts(self, stamps) -> np.ndarray:
        n, rate = self.sep.frame_length, self.sep.rate
        return np.round((np.asarray(stamps, dtype=float) - (n - 1) / 2 / rate
                         - self.start_time) * rate).astype(np.int64)

    def _grow(self, end: int) -> None:
        need = end - self._base - len(self._norm)
        if need > 0:
            self._norm = np.concatenate([self._norm, np.zeros(need)])
            for tid in self._acc:
                self._acc[tid] = np.concatenate([self._acc[tid], np.zeros(need)])

    def _observe(self, feats):
        """The observations of the clustering window ending with the new frames ``feats``:
        (ipd, ild, weight, power, activity, stamps), the last voices.window frames."""
        ipd, ild, weight, power = self.sep.observe(feats)
        act = (np.ones(len(feats)) if feats.activity is None
               else np.asarray(feats.activity, dtype=float))
        new = (ipd, ild, weight, power, act, np.asarray(feats.stamp, dtype=float))
        h = self._history
        if h is not None and self.sep.hop_frames < self.sep.window_frames:
            keep = self.sep.window_frames - len(feats)
            new = tuple(np.concatenate([a[max(len(a) - keep, 0):], b]) if keep > 0 else b
                        for a, b in zip(h, new))
        self._history = new
        return new

    def _window(self, feats) -> None:
        sep = self.sep
        n = sep.frame_length
        ipd, ild, weight, power, act, hstamps = self._observe(feats)
        new = len(feats)
        starts = self._starts(feats.stamp)
        self._grow(int(starts[-1]) + n)
        window = sep.front_end.window
        local = starts - self._base
        norm = overlap_add(np.zeros((len(feats), n // 2 + 1), complex), local,
                           len(self._norm), window)[1]
        self._norm += norm
        ids, pos = tracks_at(self._outputs, [feats.stamp[-1]])[0]
        span = sep.config.speaking_gate_span
        t_end = float(feats.stamp[-1])
        gate_from = min(float(hstamps[0]), t_end - span) if span > 0 else float(hstamps[0])
        speaking = speaking_in(self._outputs, gate_from, t_end, ids)
        if len(self._outputs) > 1:  # older outputs are not needed any more
            t = np.array([o.stamp for o in self._outputs])
            if sep.hop_frames == sep.window_frames:
                start = feats.stamp[-1]
            else:  # the next window's first frame
                start = hstamps[sep.hop_frames if len(hstamps) == sep.window_frames else 0]
            if span > 0:  # the next window's gate looks back this far
                start = min(start, t_end + sep.hop_seconds - span)
            keep = max(0, int(np.searchsorted(t, start, side="right")) - 1)
            del self._outputs[:keep]
        self._live = set(ids.tolist())
        got = sep.cluster_observed((ipd, ild, weight, power), act, ids, pos, speaking)
        f0 = self.frames
        self.frames += len(feats)
        for p in self.presence.values():
            p.extend([np.nan] * len(feats))
        self._next = int(starts[-1]) + sep.front_end.config.hop_length
        for tid in self._mwf.keys() - self._live:
            del self._mwf[tid]  # an ended track's covariances
        cfg = sep.config
        if cfg.speaking_gate > 0:  # the gated tracks exist: silent voice, presence 0
            for tid, sp in zip(ids.tolist(), speaking.tolist()):
                if sp < cfg.speaking_gate:
                    self._start_track(tid)
                    self.presence[tid][f0:self.frames] = [0.0] * len(feats)
        if got is None:
            return
        ids, cl = got
        self.windows += 1
        self.em_windows += int(cl.em_used)
        forget = float(np.exp(-new * sep.front_end.config.hop_duration / cfg.mwf_memory))
        masks, share = cl.masks[:, -new:], cl.share[:, -new:]  # the new frames'
        for k, tid in enumerate(ids.tolist()):
            self._start_track(tid)
            if cfg.method == "mwf":
                state = self._mwf.setdefault(tid, MWFState(feats.spec.shape[2]))
                y = mwf_window(feats.spec, voice_mask(masks, share, k), state, forget,
                               cfg.mwf_mask_weight)
            else:
                y = separate_window(feats.spec, masks, share, k, cfg.method,
                                    cfg.mask_floor, cfg.mask_exponent)
            overlap_add(y, local, len(self._norm), window, self._acc[tid])
            self.presence[tid][f0:self.frames] = cl.presence[k, -new:].tolist()

    def _start_track(self, tid) -> None:
        if tid not in self._acc:
            self._acc[tid] = np.zeros(len(self._norm))
            self.presence[tid] = [np.nan] * self.frames

    def _emit(self, upto: int) -> dict:
        """Return every track's samples [_base, upto) and drop them from the buffers."""
        m = max(0, min(upto - self._base, len(self._norm)))
        out = {}
        if m == 0:
            return out
        norm = self._norm[:m]
        for tid, acc in list(self._acc.items()):
            out[tid] = [(self._base, finish_overlap_add(acc[:m], norm))]
            self._acc[tid] = acc[m:]
            if tid not in self._live and not np.any(self._acc[tid]):
                del self._acc[tid]  # its track ended and every sample of it is out
        self._norm = self._norm[m:]
        self._base += m
        return out

    def push(self, features, outputs=()) -> dict:
        """Add frames and the tracker outputs up to them; returns {track id: [(first sample
        index, samples), ...]} of the samples now final."""
        if len(features) and features.spec is None:
            raise ValueError("the features carry no STFT: build the front-end with "
                             "keep_spectra=True")
        self._outputs.extend(outputs)
        if len(features):
            self._pending = (features if self._pending is None or not len(self._pending)
                             else type(features).concatenate([self._pending, features]))
        W = self.sep.hop_frames
        while self._pending is not None and len(self._pending) >= W:
            self._window(self._pending.slice(0, W))
            self._pending = self._pending.slice(W, len(self._pending))
        if self._next is None:
            return {}
        upto = self._next
        if self._pending is not None and len(self._pending):
            upto = min(upto, int(self._starts(self._pending.stamp[:1])[0]))
        return self._emit(upto)

    def flush(self) -> dict:
        """Cluster the frames left (a shorter window) and return every remaining sample."""
        if self._pending is not None and len(self._pending):
            self._window(self._pending)
            self._pending = None
        return self._emit(self._base + len(self._norm))

    @property
    def latency(self) -> float:
        """s from a frame's last sample to its voice samples being returned (at most): one
        hop (voices.hop, the window when 0) plus one frame."""
        c = self.sep.front_end.config
        return (self.sep.hop_frames * c.hop_length + c.frame_length) / c.processing_rate

    @property
    def track_ids(self) -> set:
        """The tracks whose voice has samples still to come (a track that ended is dropped
        once every sample of its voice has been returned)."""
        return set(self._acc) | self._live
