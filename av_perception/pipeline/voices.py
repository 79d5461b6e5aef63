"""Voice stage: the front-end's STFT + the tracks -> per-track speech presence and voice.

:class:`VoiceSeparator` takes the audio features of a stream (front-end built with
``keep_spectra=True``) window by window (``voices.window``), with the tracks alive at each
window's end (their predicted ITD, and ILD with a head model that has one), clusters the
window's bins (:func:`~av_perception.core.tf_masks.cluster_window`) and adds each track's
voice to its signal (overlap-add at the processing rate, from the stream's first sample).
The latency of a voice is one window plus one frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..core.separation import finish_overlap_add, overlap_add, separate_window
from ..core.tf_masks import TFObservations, VoiceConfig, cluster_window, hop_frames

__all__ = ["VoiceSeparator", "VoiceResult", "tracks_at"]


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
        self.tau_max = front_end.tau_max

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

    def run(self, features, outputs, start_time: float, n_samples: int) -> VoiceResult:
        """Separate every track of a whole stream.

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
        F = len(features)
        acc = {}
        n = self.frame_length
        window = self.front_end.window
        starts = np.round((res.stamps - (n - 1) / 2 / self.rate - start_time)
                          * self.rate).astype(np.int64)
        cfg = self.config
        W = self.window_frames
        for a in range(0, F, W):
            b = min(a + W, F)
            spec = features.spec[a:b]
            ipd, ild, weight = self.observations(spec[:, 0], spec[:, 1])
            ids, pos = tracks_at(outputs, [res.stamps[b - 1]])[0]
            if len(ids) == 0:
                continue
            itd = np.asarray(self.geometry.itd(pos), dtype=float)
            ok = np.isfinite(itd)
            ids, pos, itd = ids[ok], pos[ok], itd[ok]
            if len(ids) == 0:
                continue
            cl = cluster_window(ipd, ild, weight, self.front_end.omega, itd,
                                tau_max=self.tau_max, config=cfg,
                                track_ild=self._track_ild(pos),
                                activity=features.activity[a:b],
                                min_frequency=self.front_end.config.min_frequency,
                                use_numba=self.use_numba)
            res.windows += 1
            res.em_windows += int(cl.em_used)
            for k, tid in enumerate(ids.tolist()):
                if tid not in acc:
                    acc[tid] = (np.zeros(n_samples), np.zeros(n_samples))
                    res.presence[tid] = np.full(F, np.nan)
                y = separate_window(spec, cl.masks, cl.share, k, cfg.method, cfg.mask_floor,
                                    cfg.mask_exponent)
                overlap_add(y, starts[a:b], n_samples, window, *acc[tid])
                res.presence[tid][a:b] = cl.presence[k]
        # every track's signal is normalised by the frames of the whole stream: a track
        # is silent (zero) where it did not exist, not amplified
        norm_all = overlap_add(np.zeros((F, n // 2 + 1), complex), starts, n_samples,
                               window)[1]
        for tid, (out, _norm) in acc.items():
            res.voices[tid] = finish_overlap_add(out, norm_all)
        res.wall_seconds = time.perf_counter() - t_wall
        return res
