"""Binaural audio front-end: stream -> frames -> ITD / ILD / IPD / activity.

:meth:`BinauralFrontEnd.process` takes chunks of a 2-channel stream at any sample rate
(resampled to the processing rate) and returns the :class:`BinauralFeatures` of every
frame completed by that chunk, each stamped with the time of its centre sample;
:func:`extract_features` does a whole signal at once.  ITD by continuous GCC-PHAT,
direct-path bin weighting, noise floor and activity: docs/algorithms.md, "Audio
front-end".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from math import gcd

import numpy as np
import scipy.fft

from . import _binaural_kernels as K
from .config import AudioFrontEndConfig, MicArrayConfig
from .geometry import MicGeometry
from .head import make_head_model
from .tf_presence import itd_grid, itd_profile

__all__ = [
    "AudioInputError",
    "BinauralFeatures",
    "BinauralFrontEnd",
    "StreamResampler",
    "pcm_to_float",
    "frame_signal",
    "interaural_phase_difference",
    "extract_features",
]

_WEIGHTING_MODES = {"none": 0, "coherence": 1, "onset": 2, "coherence+onset": 3, "cdr": 4,
                    "cdr+onset": 5}


def periodic_hann(n: int) -> np.ndarray:
    """The periodic Hann window of n samples, computed as
    ``scipy.signal.get_window("hann", n, fftbins=True)`` does (bit for bit), without
    importing scipy.signal (~0.4 s of start-up with the scipy.stats it imports)."""
    if n <= 1:
        return np.ones(max(int(n), 0))
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = np.zeros(n + 1)
    w += 0.5 * np.cos(0 * fac)
    w += 0.5 * np.cos(1 * fac)
    return w[:-1]


class AudioInputError(ValueError):
    """An audio chunk cannot be processed (wrong shape, NaN, rate mismatch...)."""


def pcm_to_float(samples) -> np.ndarray:
    """Convert PCM samples (int8/uint8/int16/int32 or float) to float64 in [-1, 1]."""
    x = np.asarray(samples)
    if x.dtype == np.uint8:
        return (x.astype(np.float64) - 128.0) / 128.0
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float64) / float(-np.iinfo(x.dtype).min)
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float64, copy=False)
    raise AudioInputError(f"unsupported sample type {x.dtype}: use integer PCM or float samples")


class StreamResampler:
    """Streaming polyphase resampler (Kaiser-windowed FIR, like scipy's resample_poly).

    Output sample ``j`` (counted from the first input sample) represents the
    time ``j / rate_out - delay`` relative to the first input sample, where
    ``delay`` is the filter's group delay in seconds (:attr:`delay`).  Both
    channels see the same linear-phase filter, so interaural differences are
    preserved.
    """

    def __init__(self, rate_in: int, rate_out: int, channels: int = 2):
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError("sample rates must be positive")
        g = gcd(int(rate_in), int(rate_out))
        self.up = int(rate_out) // g
        self.down = int(rate_in) // g
        self.rate_in = int(rate_in)
        self.rate_out = int(rate_out)
        self.channels = channels
        if self.up == self.down == 1:
            self.taps = np.ones(1)
            self.half_len = 0
        else:
            max_rate = max(self.up, self.down)
            self.half_len = 10 * max_rate
            import scipy.signal  # here: its import (~0.4 s, with scipy.stats) only when resampling

            self.taps = scipy.signal.firwin(
                2 * self.half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        self.delay = self.half_len / (self.up * self.rate_in)
        self.reset()

    def reset(self):
        self._buf = np.zeros((0, self.channels))
        self._b0 = 0  # global input index of _buf[0], a multiple of down
        self._j_done = 0  # next global output index to produce

    def process(self, x: np.ndarray) -> np.ndarray:
        """Push input samples (n, channels); return the output samples now complete."""
        if self.up == self.down == 1:
            return np.asarray(x, dtype=np.float64)
        self._buf = np.concatenate([self._buf, x], axis=0) if len(self._buf) else np.asarray(
            x, dtype=np.float64)
        n = len(self._buf)
        if n == 0:
            return np.zeros((0, self.channels))
        import scipy.signal

        y = scipy.signal.upfirdn(self.taps, self._buf, self.up, self.down, axis=0)
        k0 = self._j_done - (self._b0 * self.up) // self.down
        k_end = -(-(n * self.up) // self.down)  # outputs with k*down < n*up
        out = y[k0:k_end]
        self._j_done += len(out)
        # drop input no longer needed by future outputs
        m = self._j_done * self.down - self._b0 * self.up
        first_needed = (m - (len(self.taps) - 1)) // self.up
        drop = max(0, (first_needed // self.down) * self.down)
        if drop:
            self._buf = self._buf[drop:]
            self._b0 += drop
        return out


def frame_signal(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Overlapping frames of a (n, c) signal, shape (F, c, frame_length), no padding."""
    n = x.shape[0]
    if n < frame_length:
        return np.zeros((0, x.shape[1], frame_length))
    n_frames = 1 + (n - frame_length) // hop_length
    idx = np.arange(frame_length)[None, :] + hop_length * np.arange(n_frames)[:, None]
    return np.transpose(x[idx], (0, 2, 1))


def interaural_phase_difference(spec_l: np.ndarray, spec_r: np.ndarray) -> np.ndarray:
    """IPD per bin as (cos, sin) of arg L - arg R.

    Parameters
    ----------
    spec_l, spec_r : complex arrays (..., B)

    Returns
    -------
    ipd : float array (..., B, 2); (1, 0) where either spectrum is zero.
    """
    c = spec_l * np.conj(spec_r)
    mag = np.abs(c)
    ok = mag > 0
    safe = np.where(ok, mag, 1.0)
    return np.stack([np.where(ok, c.real / safe, 1.0), np.where(ok, c.imag / safe, 0.0)], axis=-1)


@dataclass
class BinauralFeatures:
    """Features of F consecutive audio frames (arrays of length F).

    stamp : s, time of each frame's centre sample.
    itd : s, positive when the sound reaches the left mic first (NaN if no usable bin).
    azimuth : rad, front azimuth (positive to the left) under the binaural model: the
        ITD inverted (free field: far-field arcsin; head models: their horizontal ITD
        curve), or jointly from ITD and ILD (``audio.direction_ild_sigma``).  The
        horizontal plane only: no model here resolves elevation or front/back.
    reliability : GCC-PHAT peak height in [0, 1].
    ild : dB, broadband level difference left/right over unmasked bins.
    ild_bands : (F, J) dB per configured band.
    activity : [0, 1] speech/sound presence from the frame SNR over the noise floor.
    direct_path : [0, 1] mean direct-path weight of the unmasked bins.
    snr_db : dB of frame power over the adaptive noise floor.
    n_bins : number of bins that passed the noise mask.
    ipd : optional (F, B, 2) (cos, sin) of the interaural phase difference.
    cross : optional (F, 2, B) weighted PHAT cross-spectrum per frame (for pooling).
    spec : optional (F, 2, B) complex, the frame's Hann-windowed STFT (left, right) at the
        processing rate (for the time-frequency stage: :mod:`.tf_masks`).
    itd_profile : optional (F, N), the share of each frame's weighted bins pointing at
        each ITD of :func:`.tf_presence.itd_grid` (``audio.itd_profile``), times activity.
    """

    stamp: np.ndarray
    itd: np.ndarray
    azimuth: np.ndarray
    reliability: np.ndarray
    ild: np.ndarray
    ild_bands: np.ndarray
    activity: np.ndarray
    direct_path: np.ndarray
    snr_db: np.ndarray
    n_bins: np.ndarray
    ipd: np.ndarray | None = None
    cross: np.ndarray | None = None
    band_edges: tuple = field(default=())
    spec: np.ndarray | None = None
    itd_profile: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.stamp)

    @property
    def weight(self) -> np.ndarray:
        """Observation weight for clustering/tracking: activity x reliability."""
        return self.activity * self.reliability

    @classmethod
    def empty(cls, n_bands: int, band_edges=()) -> BinauralFeatures:
        z = np.zeros(0)
        return cls(z, z, z, z, z, np.zeros((0, n_bands)), z, z, z, z, None, None,
                   tuple(band_edges))

    def slice(self, start: int, stop: int) -> BinauralFeatures:
        """Frames ``start:stop`` (optional per-frame arrays included when present)."""
        names = ["stamp", "itd", "azimuth", "reliability", "ild", "ild_bands", "activity",
                 "direct_path", "snr_db", "n_bins", "ipd", "cross", "spec", "itd_profile"]
        kw = {n: (None if getattr(self, n) is None else getattr(self, n)[start:stop])
              for n in names}
        return BinauralFeatures(**kw, band_edges=self.band_edges)

    @classmethod
    def concatenate(cls, parts) -> BinauralFeatures:
        parts = [p for p in parts]
        if not parts:
            raise ValueError("nothing to concatenate")
        names = ["stamp", "itd", "azimuth", "reliability", "ild", "ild_bands", "activity",
                 "direct_path", "snr_db", "n_bins"]
        kw = {n: np.concatenate([getattr(p, n) for p in parts]) for n in names}
        for name in ("ipd", "cross", "spec", "itd_profile"):
            arrays = [getattr(p, name) for p in parts if len(p)]
            kw[name] = (np.concatenate(arrays) if arrays and all(a is not None for a in arrays)
                        else None)
        return cls(**kw, band_edges=parts[0].band_edges)


class BinauralFrontEnd:
    """Streaming binaural feature extractor (the audio stage of the pipeline).

    Parameters
    ----------
    config : AudioFrontEndConfig
    mics : MicArrayConfig or MicGeometry
    use_numba : bool
        Use the numba kernel (default) or the plain-numpy reference.
    keep_ipd : bool
        Also return the per-bin IPD of every frame.
    keep_cross : bool
        Also return each frame's weighted PHAT cross-spectrum (``features.cross``), for
        :meth:`pooled_itd` over several frames.
    keep_spectra : bool
        Also return each frame's STFT (``features.spec``), for the time-frequency stage.
    """

    def __init__(self, config: AudioFrontEndConfig | None = None,
                 mics: MicArrayConfig | MicGeometry | None = None,
                 use_numba: bool = True, keep_ipd: bool = False, keep_cross: bool = False,
                 keep_spectra: bool = False):
        self.config = config or AudioFrontEndConfig()
        mics = mics if mics is not None else MicArrayConfig()
        self.geometry = (mics if isinstance(mics, MicGeometry)
                         else make_head_model(mics, self.config.ild_band_edges))
        self.keep_ipd = keep_ipd
        self.keep_cross = keep_cross
        self.keep_spectra = keep_spectra
        self._kernel = K.binaural_kernel if use_numba else K.binaural_reference
        self._use_numba = use_numba
        self._pooled = K.pooled_kernel if use_numba else K.pooled_reference
        c = self.config
        fs = c.processing_rate
        n = c.frame_length
        self.window = periodic_hann(n)
        freqs = np.fft.rfftfreq(n, 1.0 / fs)
        self.freqs = freqs
        self.omega = 2 * np.pi * freqs
        # coherence of a diffuse (spherically isotropic) field between the ears: free field
        # sinc(omega d / c), d / c the largest ITD (an approximation for a head)
        self.diffuse_coherence = np.sinc(self.omega * self.geometry.max_itd / np.pi)
        self.in_band = (freqs >= c.min_frequency) & (freqs <= c.max_frequency)
        edges = np.asarray(c.ild_band_edges)
        band = np.searchsorted(edges, freqs, side="right") - 1
        band[(freqs < edges[0]) | (freqs > edges[-1])] = -1
        band[band >= len(edges) - 1] = len(edges) - 2  # top edge belongs to the last band
        band[freqs > edges[-1]] = -1
        self.band_of_bin = band.astype(np.int64)
        self.n_bands = len(edges) - 1
        self.tau_max = self.geometry.max_itd * (1.0 + c.itd_margin)
        #: ITDs (s) of the frames' ITD profile (``audio.itd_profile``)
        self.profile_grid = itd_grid(self.geometry.max_itd, c.itd_profile_cells)
        self._grid = False  # joint ITD+ILD azimuth grid, built on first use
        step = c.itd_scan_step / fs
        n_half = int(np.ceil(self.tau_max / step))
        self.scan_tau = np.clip(np.arange(-n_half, n_half + 1) * step, -self.tau_max, self.tau_max)
        phase = np.outer(self.scan_tau, self.omega)
        self.scan_cos = np.cos(phase)
        self.scan_sin = np.sin(phase)
        self.params = np.zeros(K.N_PARAMS)
        self.params[K.P_PSD_ALPHA] = c.psd_smoothing
        self.params[K.P_RISE] = 10 ** (c.noise_rise_db_per_s * c.hop_duration / 10)
        self.params[K.P_BIN_THR] = 10 ** (c.bin_snr_threshold_db / 10)
        self.params[K.P_ACT_MID] = c.activity_snr_db
        self.params[K.P_ACT_SLOPE] = c.activity_slope_db
        self.params[K.P_COH_ALPHA] = c.coherence_smoothing
        self.params[K.P_COH_EXP] = c.coherence_exponent
        self.params[K.P_ONSET_DB] = c.onset_db
        self.params[K.P_MODE] = _WEIGHTING_MODES[c.direct_path_weighting]
        self.params[K.P_NEWTON] = c.newton_iterations
        self.params[K.P_CDR_EXP] = c.cdr_exponent
        self.params[K.P_MEMORY] = (np.exp(-c.hop_duration / c.precedence_time)
                                   if c.precedence_time > 0 else 0.0)
        self.params[K.P_GATE] = c.precedence_gate
        self.params[K.P_GATE_DIRECT] = c.precedence_gate_direct
        self.params[K.P_ALONE_POWER] = c.precedence_alone_power
        self.params[K.P_HOLD] = (np.exp(-c.hop_duration / c.precedence_hold_time)
                                 if c.precedence_hold_time > 0 else 0.0)
        self.params[K.P_NEW_SEPARATION] = c.precedence_second_separation * 1e-6
        self.params[K.P_NEW_AGREE] = c.precedence_second_agreement * 1e-6
        self.params[K.P_NEW_WINDOW] = c.precedence_second_window / c.hop_duration
        self.params[K.P_NEW_SNR] = c.precedence_second_snr_db
        self.params[K.P_GATE_SEPARATION] = c.precedence_gate_separation * 1e-6
        self.params[K.P_SNR_WEIGHT] = c.bin_snr_weight_exponent
        self.params[K.P_SNR_WEIGHT_ITD] = c.itd_snr_weight_exponent
        self.params[K.P_ONSET_BINS] = round(c.onset_band_hz * n / fs)
        self.input_rate: int | None = None
        self.stats = {"chunks": 0, "samples": 0, "clipped_samples": 0, "discontinuities": 0,
                      "frames": 0}
        self.reset()

    # ----------------------------------------------------------------- state
    def reset(self):
        """Forget the stream (time base, buffers, noise floor)."""
        self._state = np.zeros((K.N_STATE, len(self.freqs)))
        self._state[9, 1] = np.inf  # no frame away from the memory yet (second talker)
        self._initialised = np.zeros(1, dtype=np.int64)
        self._resampler: StreamResampler | None = None
        self._pending = np.zeros((0, 2))
        self._t0: float | None = None  # time of input sample 0 of the current segment
        self._n_in = 0  # input samples since t0
        self._n_out = 0  # resampled samples produced since t0
        self._next_frame = 0  # resampled index of the next frame start
        self._in_band = self.in_band
        self.input_rate = None

    def turn(self, yaw: float) -> None:
        """The head turned by ``yaw`` (rad, positive to the left, about the vertical) since
        the last chunk: the precedence memory's direction turns with it.

        The memory holds each bin's phasor of the last direct-path evidence; a turning head
        would otherwise read a talker where it was at the last onset (a talker at 65 deg
        ~10 deg towards the front while the head pans at 60 deg/s).  The memory's peak ITD
        tau is mapped to its azimuth, moved by -yaw, and every bin's phasor is delayed by
        the new ITD minus tau (one talker dominating the memory: exact for it; the
        others' bins move by the same delay).  A turn releases the precedence hold
        (``precedence_hold_time``).  No effect without a memory (``precedence_time`` 0) or
        before the first frame.
        """
        yaw = float(yaw)
        if not math.isfinite(yaw):
            raise ValueError(f"head turn {yaw!r} rad must be finite")
        if yaw == 0.0 or self.params[K.P_MEMORY] <= 0.0:
            return
        mem = self._state[6:8]
        if not np.any(mem):
            return
        tau, _ = self._pooled(mem[None], np.ones(1), self.omega, self.scan_tau, self.scan_cos,
                              self.scan_sin, self.tau_max, int(self.params[K.P_NEWTON]))
        if not math.isfinite(tau):
            return
        az = self.geometry.azimuth_from_itd(np.array([tau]))[0]
        new = self.geometry.itd_from_azimuth(np.array([az - yaw]))[0]
        rot = np.exp(1j * self.omega * (new - tau))
        m = (mem[0] + 1j * mem[1]) * rot
        self._state[6] = m.real
        self._state[7] = m.imag
        # the precedence hold assumes a still head: a turn releases it (the memory's turn is
        # exact only for the talker that dominates it; held, its errors would stay)
        self._state[8] = 0.0
        # the last ITD heard away from the memory (a second talker) turns the same way
        az2 = self.geometry.azimuth_from_itd(np.array([self._state[9, 0]]))[0]
        self._state[9, 0] = self.geometry.itd_from_azimuth(np.array([az2 - yaw]))[0]

    def warm_up(self):
        """Compile/run the kernel once on a silent frame (call at node start)."""
        fe = BinauralFrontEnd(self.config, self.geometry,
                              use_numba=self._kernel is K.binaural_kernel)
        fe.process(np.zeros((self.config.frame_length * 2, 2)), self.config.processing_rate, 0.0)

    # ----------------------------------------------------------------- input
    def _validate(self, samples, sample_rate) -> np.ndarray:
        x = np.asarray(samples)
        if x.ndim != 2:
            raise AudioInputError(
                f"audio chunk has shape {x.shape}: expected (samples, 2) interleaved as "
                "[left, right] columns")
        if x.shape[1] != 2:
            raise AudioInputError(
                f"audio chunk has {x.shape[1]} channel(s): the binaural front-end needs exactly 2 "
                "(select the ear channels with capture.channel_left/channel_right, or give a "
                "2-channel recording)")
        x = pcm_to_float(x)
        if not np.all(np.isfinite(x)):
            raise AudioInputError(
                "audio chunk contains NaN or infinite samples: the chunk was dropped; check the "
                "driver or the recording")
        if not isinstance(sample_rate, (int, np.integer)) and not float(sample_rate).is_integer():
            raise AudioInputError(f"sample rate {sample_rate} is not an integer number of Hz")
        sample_rate = int(sample_rate)
        if sample_rate <= 0:
            raise AudioInputError(f"sample rate {sample_rate} must be positive")
        if self.input_rate is not None and sample_rate != self.input_rate:
            raise AudioInputError(
                f"sample rate changed mid-stream from {self.input_rate} Hz to {sample_rate} Hz: "
                "call reset() (or restart the stream) before feeding the new rate")
        return x

    def process(self, samples, sample_rate: int, stamp: float | None = None) -> BinauralFeatures:
        """Feed a chunk and return the features of the frames it completes.

        Parameters
        ----------
        samples : array (n, 2)
            Left and right channels (float in [-1, 1] or integer PCM).
        sample_rate : int
            Hz, the rate of this stream (resampled to ``config.processing_rate``).
        stamp : float, optional
            Time (s) of the chunk's first sample.  ``None`` continues the stream's
            own clock.  A stamp that disagrees with the stream clock by more than a
            frame restarts the time base (a gap or a jump; counted in
            ``stats['discontinuities']``).
        """
        x = self._validate(samples, sample_rate)
        rate = int(sample_rate)
        c = self.config
        if self.input_rate is None:
            self.input_rate = rate
        if stamp is not None and self._t0 is not None:
            expected = self._t0 + self._n_in / rate
            if abs(float(stamp) - expected) > max(c.frame_duration, 0.05):
                self.stats["discontinuities"] += 1
                self._restart_segment(float(stamp))
        if self._t0 is None:
            self._restart_segment(0.0 if stamp is None else float(stamp))
        self.stats["chunks"] += 1
        self.stats["samples"] += len(x)
        self.stats["clipped_samples"] += int(np.count_nonzero(np.abs(x) >= 0.999))
        self._n_in += len(x)
        y = self._resampler.process(x) if self._resampler is not None else x
        self._pending = np.concatenate([self._pending, y]) if len(self._pending) else y
        frames = frame_signal(self._pending, c.frame_length, c.hop_length)
        n_frames = len(frames)
        if n_frames == 0:
            return BinauralFeatures.empty(self.n_bands, c.ild_band_edges)
        starts = self._next_frame + c.hop_length * np.arange(n_frames)
        delay = self._resampler.delay if self._resampler is not None else 0.0
        centre = self._t0 - delay + (starts + (c.frame_length - 1) / 2) / c.processing_rate
        consumed = n_frames * c.hop_length
        self._pending = self._pending[consumed:]
        self._next_frame += consumed
        feats = self.features_of_frames(frames, centre)
        self.stats["frames"] += n_frames
        return feats

    def _restart_segment(self, t0: float):
        self._t0 = t0
        self._n_in = 0
        self._next_frame = 0
        self._pending = np.zeros((0, 2))
        rate = self.input_rate
        if rate is not None and rate != self.config.processing_rate:
            self._resampler = StreamResampler(rate, self.config.processing_rate, 2)
        else:
            self._resampler = None
        # input below the processing rate has no content above its own band edge:
        # keep those bins (resampler images and stopband leakage) out of ITD and ILD
        self._in_band = self.in_band
        if rate is not None and rate < self.config.processing_rate:
            self._in_band = self.in_band & (self.freqs <= 0.45 * rate)

    # -------------------------------------------------------------- features
    def spectra(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hann-windowed rfft of frames (F, 2, N) -> (spec_l, spec_r), each (F, B)."""
        spec = scipy.fft.rfft(frames * self.window, axis=-1)
        return np.ascontiguousarray(spec[:, 0]), np.ascontiguousarray(spec[:, 1])

    def features_of_frames(self, frames: np.ndarray, stamps: np.ndarray) -> BinauralFeatures:
        """Features of already framed audio (F, 2, frame_length) at the processing rate."""
        spec_l, spec_r = self.spectra(frames)
        out = np.zeros((len(frames), K.OUT_BANDS + self.n_bands))
        profile = self.config.itd_profile
        cross = np.zeros((len(frames) if self.keep_cross or profile else 0, 2,
                          len(self.freqs)))
        self._kernel(spec_l, spec_r, self.omega, self.diffuse_coherence, self._in_band,
                     self.band_of_bin, self.scan_tau, self.scan_cos, self.scan_sin, self.tau_max,
                     self._state, self._initialised, self.params, out, cross)
        itd = out[:, K.OUT_ITD]
        c = self.config
        return BinauralFeatures(
            stamp=np.asarray(stamps, dtype=np.float64),
            itd=itd,
            azimuth=self.azimuth(itd, out[:, K.OUT_BANDS:]),
            reliability=out[:, K.OUT_RELIABILITY],
            ild=out[:, K.OUT_ILD],
            ild_bands=out[:, K.OUT_BANDS:],
            activity=out[:, K.OUT_ACTIVITY],
            direct_path=out[:, K.OUT_DIRECT],
            snr_db=out[:, K.OUT_SNR],
            n_bins=out[:, K.OUT_NBINS],
            ipd=interaural_phase_difference(spec_l, spec_r) if self.keep_ipd else None,
            cross=cross if self.keep_cross else None,
            band_edges=self.config.ild_band_edges,
            spec=np.stack([spec_l, spec_r], axis=1) if self.keep_spectra else None,
            itd_profile=(itd_profile(cross, self.omega, self._in_band
                                     & (self.freqs <= c.itd_profile_max_frequency),
                                     self.profile_grid, c.itd_profile_phase_std,
                                     c.itd_profile_outlier_prior, out[:, K.OUT_ACTIVITY],
                                     self._use_numba)
                         if profile else None),
        )

    def _direction_grid(self):
        """Azimuth grid, predicted ITD and ILD, and the ILD bands of the joint azimuth
        (None when the azimuth comes from the ITD alone)."""
        c = self.config
        g = self.geometry
        if (c.direction_ild_sigma <= 0 or not g.has_ild
                or tuple(g.band_edges) != tuple(float(e) for e in c.ild_band_edges)):
            return None
        bands = np.flatnonzero(np.asarray(c.ild_band_edges[1:]) <= c.direction_ild_max_frequency)
        if len(bands) == 0:
            return None
        az = np.radians(np.arange(-90.0, 90.0 + 1e-9, 0.25))
        return az, g.itd_from_azimuth(az), g.ild_from_azimuth(az)[:, bands], bands

    def azimuth(self, itd: np.ndarray, ild_bands: np.ndarray) -> np.ndarray:
        """Front azimuth (rad) of frames from their ITD (s) and per-band ILD (dB).

        ITD alone: the model's inversion (:meth:`MicGeometry.azimuth_from_itd`).  With a
        head model that predicts ILD and ``direction_ild_sigma > 0``: the grid azimuth
        (0.25 deg) minimising ``(itd - G(az))^2 / s_t^2 + sum_b log(1 + ((ild_b -
        H_b(az)) / s_l)^2)`` over the bands up to ``direction_ild_max_frequency``
        (Cauchy: one corrupted band cannot pull the azimuth far).  NaN where the ITD is NaN.
        """
        if self._grid is False:
            self._grid = self._direction_grid()
        if self._grid is None or len(itd) == 0:
            return self.geometry.azimuth_from_itd(itd)
        az, g_itd, g_ild, bands = self._grid
        c = self.config
        cost = ((itd[:, None] - g_itd[None, :]) / c.direction_itd_sigma) ** 2
        ild = ild_bands[:, bands]
        r = (ild[:, None, :] - g_ild[None, :, :]) / c.direction_ild_sigma
        cost = cost + np.where(np.isfinite(r), np.log1p(r * r), 0.0).sum(axis=2)
        out = az[np.argmin(np.where(np.isfinite(cost), cost, np.inf), axis=1)]
        return np.where(np.isfinite(itd), out, np.nan)

    def pooled_itd(self, cross: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
        """ITD of several frames pooled (SRP-PHAT-like, with the direct-path weights).

        Parameters
        ----------
        cross : array (F, 2, B)
            ``features.cross`` of the frames (front-end built with ``keep_cross=True``).
        weights : array (F,)
            Frame weights, e.g. ``features.weight``; frames with weight <= 0 are ignored.

        Returns
        -------
        itd : float
            Seconds (NaN when no frame has weight).
        reliability : float
            Peak height of the pooled GCC-PHAT in [0, 1].
        """
        cross = np.asarray(cross, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        if cross.ndim != 3 or cross.shape[1:] != (2, len(self.freqs)):
            raise ValueError(f"cross must have shape (F, 2, {len(self.freqs)}), got {cross.shape}")
        if weights.shape != (cross.shape[0],):
            raise ValueError(f"weights must have shape ({cross.shape[0]},), got {weights.shape}")
        if not (np.all(np.isfinite(cross)) and np.all(np.isfinite(weights))):
            raise ValueError("cross and weights must be finite")
        tau, rel = self._pooled(cross, weights, self.omega, self.scan_tau, self.scan_cos,
                                self.scan_sin, self.tau_max, int(self.params[K.P_NEWTON]))
        return float(tau), float(rel)


def extract_features(samples, sample_rate: int, config: AudioFrontEndConfig | None = None,
                     mics: MicArrayConfig | MicGeometry | None = None, start_time: float = 0.0,
                     use_numba: bool = True, keep_ipd: bool = False,
                     keep_cross: bool = False) -> BinauralFeatures:
    """Features of a whole 2-channel recording (n, 2) (batch form of the front-end)."""
    fe = BinauralFrontEnd(config, mics, use_numba=use_numba, keep_ipd=keep_ipd,
                          keep_cross=keep_cross)
    return fe.process(samples, sample_rate, start_time)
