"""Offline smoothing of the speaking status: forward-backward over the two-state speaking
HMM of each track (docs/algorithms.md, "Speaking status", *The smoother*).

The tracker filters each track's HMM causally (:func:`.inference.speaking_filter`): the
status of an audio frame is P(speaking | frames up to it), so it lags a turn's edges.  With
later frames at hand (a bag read to its end, or a live output delayed by a lag), the
estimate P(speaking at t | frames up to t + lag) is the fixed-lag smoother of the same HMM:
the same transitions (``speaking_entry`` / ``speaking_exit``) and the same per-frame
emission log-likelihood ratios the filter used, recorded while tracking
(:class:`SpeakingRecord`).  A lag of 0 is the filter; a lag past the end is the full
forward-backward smoother.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "SpeakingRecord",
    "lag_until",
    "smooth_speaking",
    "smooth_speaking_reference",
]

#: log-odds a probability is clipped to when it is read back (1 - 1e-15: float64 cannot
#: tell closer to 1 apart)
MAX_LOGODDS = 34.5


# ---------------------------------------------------------------------------
# Kernels (log-odds domain)
# ---------------------------------------------------------------------------
@njit(cache=True)
def _logaddexp(a, b):
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


@njit(cache=True)
def _predict(a, log_stay, log_exit, log_entry, log_idle):
    """Log-odds of P(speaking at t) from the log-odds a of P(speaking at t - 1):
    log((1 - exit) e^a + entry) - log(exit e^a + 1 - entry)."""
    return _logaddexp(log_stay + a, log_entry) - _logaddexp(log_exit + a, log_idle)


@njit(cache=True)
def _forward_backward_kernel(prior_lo, llr, until, log_stay, log_exit, log_entry,
                             log_idle):
    """Filtered and smoothed log-odds of one chain; ``until[t]``: the last frame whose
    evidence the estimate at t uses (non-decreasing, >= t)."""
    n = llr.shape[0]
    filt = np.empty(n)
    smooth = np.empty(n)
    a = prior_lo
    for t in range(n):
        a = _predict(a, log_stay, log_exit, log_entry, log_idle) + llr[t]
        filt[t] = a
    full = True
    for t in range(n):
        if until[t] != n - 1:
            full = False
            break
    if full:  # one backward pass: beta_t = log b_t(speaking) - log b_t(silent)
        beta = 0.0
        for t in range(n - 1, -1, -1):
            smooth[t] = filt[t] + beta
            z = llr[t] + beta
            # b_(t-1)(1) = (1-exit) e1 b1 + exit e0 b0; b_(t-1)(0) = entry e1 b1 + (1-entry) e0 b0
            beta = _logaddexp(log_stay + z, log_exit) - _logaddexp(log_entry + z, log_idle)
        return filt, smooth
    for t in range(n):  # fixed lag: each frame's backward message from its own end
        beta = 0.0
        for s in range(until[t], t, -1):
            z = llr[s] + beta
            beta = _logaddexp(log_stay + z, log_exit) - _logaddexp(log_entry + z, log_idle)
        smooth[t] = filt[t] + beta
    return filt, smooth


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-300, 1.0)
    return np.clip(np.log(p) - np.log1p(-np.minimum(p, 1.0 - 1e-16)), -MAX_LOGODDS,
                   MAX_LOGODDS)


def _check_chain(prior, llr, entry, exit, until):
    llr = np.ascontiguousarray(llr, dtype=float)
    if llr.ndim != 1:
        raise ValueError(f"llr must be a 1-D array (one value per audio frame), got shape "
                         f"{llr.shape}")
    if not np.all(np.isfinite(llr)):
        raise ValueError("llr must be finite (a frame without evidence has llr 0)")
    if not 0.0 <= float(prior) <= 1.0:
        raise ValueError(f"prior must be a probability in [0, 1], got {prior}")
    for name, v in (("entry", entry), ("exit", exit)):
        if not 0.0 < float(v) < 1.0:
            raise ValueError(f"{name} must be a transition probability in (0, 1), got {v}")
    n = len(llr)
    if until is None:
        until = np.full(n, n - 1, dtype=np.int64)
    until = np.ascontiguousarray(until, dtype=np.int64)
    if until.shape != (n,):
        raise ValueError(f"until must have one entry per frame ({n}), got shape "
                         f"{until.shape}")
    if n and (np.any(until < np.arange(n)) or np.any(until > n - 1)):
        raise ValueError("until[t] must be a frame index in [t, len(llr) - 1] (the last "
                         "frame whose evidence the estimate at t uses); see lag_until")
    return float(prior), llr, float(entry), float(exit), until


def smooth_speaking(prior, llr, entry: float, exit: float, until=None,
                    return_filtered: bool = False):
    """Fixed-lag (or full) forward-backward smoother of the two-state speaking HMM.

    Parameters
    ----------
    prior : float
        P(speaking) before the first frame.
    llr : array (T,)
        Log-likelihood ratio speaking / silent of each frame's evidence.
    entry, exit : float
        Transition probabilities silent -> speaking and speaking -> silent per frame.
    until : array (T,) of int, optional
        Last frame whose evidence the estimate at frame t uses (``t``: the filter; ``T -
        1``, the default: the full smoother; :func:`lag_until` for a lag in seconds).
    return_filtered : bool
        Also return the filtered posteriors P(speaking at t | frames up to t).

    Returns
    -------
    smoothed : array (T,)
        P(speaking at t | frames up to until[t]).
    filtered : array (T,), with ``return_filtered``.
    """
    prior, llr, entry, exit, until = _check_chain(prior, llr, entry, exit, until)
    lo = float(_logit(prior))
    filt, smooth = _forward_backward_kernel(lo, llr, until, math.log1p(-exit),
                                            math.log(exit), math.log(entry),
                                            math.log1p(-entry))
    if return_filtered:
        return _sigmoid(smooth), _sigmoid(filt)
    return _sigmoid(smooth)


def smooth_speaking_reference(prior, llr, entry: float, exit: float, until=None):
    """Plain-numpy reference of :func:`smooth_speaking` (scaled forward-backward in
    probabilities, one pass per distinct end frame; for tests)."""
    prior, llr, entry, exit, until = _check_chain(prior, llr, entry, exit, until)
    A = np.array([[1.0 - entry, entry], [exit, 1.0 - exit]])  # rows: from silent, speaking
    shift = np.maximum(llr, 0.0)
    e = np.stack([np.exp(-shift), np.exp(llr - shift)], axis=1)  # (T, 2): silent, speaking
    n = len(llr)
    out = np.empty(n)
    alpha = np.empty((n, 2))
    a = np.array([1.0 - prior, prior])
    for t in range(n):
        a = (a @ A) * e[t]
        a = a / a.sum()
        alpha[t] = a
    for end in np.unique(until):
        b = np.ones(2)
        for t in range(end, -1, -1):
            if until[t] == end:
                post = alpha[t] * b
                out[t] = post[1] / post.sum()
            b = A @ (e[t] * b)
            b = b / b.sum()
    return out


def lag_until(stamps, lag: float) -> np.ndarray:
    """For frames at ``stamps`` (s, non-decreasing): the last frame within ``lag`` s after
    each one (:func:`smooth_speaking`'s ``until``)."""
    stamps = np.asarray(stamps, dtype=float)
    if not lag >= 0.0:
        raise ValueError(f"lag must be >= 0 s, got {lag}")
    if len(stamps) and np.any(np.diff(stamps) < 0):
        raise ValueError("stamps must be non-decreasing")
    return np.searchsorted(stamps, stamps + lag, side="right").astype(np.int64) - 1


# ---------------------------------------------------------------------------
# The record kept while tracking
# ---------------------------------------------------------------------------
class SpeakingRecord:
    """What each track's speaking filter did at every audio frame, for smoothing later.

    The tracker (:attr:`.Tracker.speaking_record`) calls :meth:`record` at each audio
    frame with the tracks' P(speaking) before and after the frame's HMM step.  The step's
    emission log-likelihood ratio is recovered exactly from the two (the HMM step in
    log-odds: logit(after) = logit(predicted(before)) + llr), so the record holds whatever
    evidence the tracker's speaking E-step used.  A change of a track's P(speaking)
    between two frames outside the HMM (a merge keeps the larger) is taken as evidence
    of the earlier frame, so that the filter over the record reproduces the tracker.
    Memory: 32 bytes per track and audio frame (about 29 MB for an hour of four tracks
    at 62.5 frames/s; twice that while the arrays grow).

    Parameters
    ----------
    entry, exit : float
        The tracker's ``speaking_entry`` and ``speaking_exit``.
    """

    def __init__(self, entry: float, exit: float):
        if not (0.0 < entry < 1.0 and 0.0 < exit < 1.0):
            raise ValueError(f"entry and exit must be in (0, 1), got {entry}, {exit}")
        self.entry, self.exit = float(entry), float(exit)
        # one row per track and audio frame, in arrays grown by doubling
        self._cols = {"stamp": np.empty(0), "key": np.empty(0, dtype=np.int64),
                      "before": np.empty(0), "after": np.empty(0)}
        self._epoch = 0
        self._last: dict = {}  # key -> row of its last record
        self.rows = 0
        self.frames = 0  # audio frames recorded

    def __len__(self) -> int:
        return self.rows

    def new_epoch(self) -> None:
        """The tracker restarted: its identities start again (older tracks are kept apart)."""
        self._epoch += 1
        self._last = {}

    def _key(self, ids) -> np.ndarray:
        return (np.int64(self._epoch) << np.int64(32)) | np.asarray(ids, dtype=np.int64)

    def record(self, stamp: float, ids, before, after) -> None:
        """One audio frame: track ``ids`` (K,) had P(speaking) ``before`` (K,) going into
        the frame's HMM step and ``after`` (K,) out of it."""
        ids = np.asarray(ids)
        if not len(ids):
            return
        keys = self._key(ids)
        n, k = self.rows, len(ids)
        if n + k > len(self._cols["key"]):
            cap = max(2 * (n + k), 1024)
            for name, col in self._cols.items():
                grown = np.empty(cap, dtype=col.dtype)
                grown[:n] = col[:n]
                self._cols[name] = grown
        c = self._cols
        c["stamp"][n:n + k] = stamp
        c["key"][n:n + k] = keys
        c["before"][n:n + k] = _logit(before)
        c["after"][n:n + k] = _logit(after)
        for j, key in enumerate(keys.tolist()):
            self._last[key] = n + j
        self.rows += k
        self.frames += 1

    def last_rows(self, ids) -> np.ndarray:
        """The row of the last record of each of ``ids`` (-1: none yet) in the current
        epoch: what a report made now shows of them."""
        return np.array([self._last.get(k, -1) for k in self._key(ids).tolist()],
                        dtype=np.int64)

    def smooth(self, lag: float, entry: float | None = None,
               exit: float | None = None) -> np.ndarray:
        """P(speaking) of every recorded row (track, frame) given the frames up to ``lag``
        s later (0: the filter, as the tracker reported it; longer than the record: the
        full smoother).  ``entry``, ``exit``: the smoother's transition probabilities
        (default: the filter's; the evidence is recovered with the filter's)."""
        if not lag >= 0.0:
            raise ValueError(f"lag must be >= 0 s, got {lag}")
        s_entry = self.entry if entry is None else float(entry)
        s_exit = self.exit if exit is None else float(exit)
        if not (0.0 < s_entry < 1.0 and 0.0 < s_exit < 1.0):
            raise ValueError(f"entry and exit must be in (0, 1), got {s_entry}, {s_exit}")
        out = np.empty(self.rows)
        if not self.rows:
            return out
        c = self._cols
        stamps, keys = c["stamp"][:self.rows], c["key"][:self.rows]
        before, after = c["before"][:self.rows], c["after"][:self.rows]
        order = np.argsort(keys, kind="stable")  # each track's rows in time order
        bounds = np.flatnonzero(np.r_[True, np.diff(keys[order]) != 0, True])
        log_stay, log_exit = math.log1p(-self.exit), math.log(self.exit)
        log_entry, log_idle = math.log(self.entry), math.log1p(-self.entry)
        for a, b in zip(bounds[:-1], bounds[1:]):
            rows = order[a:b]
            pre = before[rows]
            post = after[rows]
            pred = (np.logaddexp(log_stay + pre, log_entry)
                    - np.logaddexp(log_exit + pre, log_idle))  # as _predict
            llr = post - pred
            llr[:-1] += pre[1:] - post[:-1]  # changes outside the HMM between frames
            until = (lag_until(stamps[rows], lag) if lag > 0.0
                     else np.arange(len(rows), dtype=np.int64))
            _, sm = _forward_backward_kernel(float(pre[0]), llr, until, math.log1p(-s_exit),
                                             math.log(s_exit), math.log(s_entry),
                                             math.log1p(-s_entry))
            out[rows] = _sigmoid(sm)
        return out
