"""A talker's voice from its time-frequency mask: masking, a mask-driven MVDR or a
long-memory mask-weighted multichannel Wiener filter, and the weighted overlap-add back to
samples.  Model: docs/algorithms.md, "Time-frequency model
and separation"."""
from __future__ import annotations

import numpy as np

__all__ = ["voice_mask", "mask_gain", "mvdr_weights", "separate_window", "overlap_add",
           "finish_overlap_add", "MWFState", "mwf_window"]


def mask_gain(posterior, floor: float, exponent: float = 1.0) -> np.ndarray:
    """Gain of a voice's mask: ``max(posterior ** exponent, floor)``, same shape."""
    p = np.clip(np.asarray(posterior, dtype=np.float64), 0.0, 1.0)
    return np.maximum(p ** exponent, floor)


def mvdr_weights(spec, target, other, reg: float = 1e-3) -> np.ndarray:
    """Mask-driven MVDR (Souden et al. 2010) to the left microphone, per bin.

    Parameters
    ----------
    spec : (F, 2, B) complex, the two microphones' STFT.
    target, other : (F, B) masks of the talker and of everything else.
    reg : diagonal loading relative to the mean power of the interference covariance.

    Returns
    -------
    w : (B, 2) complex; the output is ``sum_c conj(w[b, c]) spec[t, c, b]``.
    """
    x = np.transpose(spec, (2, 0, 1))  # (B, F, 2)
    phi_s = np.einsum("bf,bfi,bfj->bij", target.T, x, np.conj(x))
    phi_n = np.einsum("bf,bfi,bfj->bij", other.T, x, np.conj(x))
    load = reg * np.real(np.trace(phi_n, axis1=1, axis2=2)) / 2 + 1e-12
    phi_n = phi_n + load[:, None, None] * np.eye(2)[None]
    num = np.linalg.solve(phi_n, phi_s)  # Phi_n^-1 Phi_s
    tr = np.real(np.trace(num, axis1=1, axis2=2))
    w = num[:, :, 0] / np.maximum(tr, 1e-12)[:, None]
    bad = ~np.all(np.isfinite(w), axis=1) | (tr <= 1e-12)
    w[bad] = np.array([1.0, 0.0])
    return w


class MWFState:
    """Long-memory spatial covariances of one talker's mask-weighted image and of the
    mixture, per bin ((B, 2, 2) complex each), for :func:`mwf_window`."""

    def __init__(self, n_bins: int):
        self.target = np.zeros((n_bins, 2, 2), dtype=np.complex128)
        self.mixture = np.zeros((n_bins, 2, 2), dtype=np.complex128)


def mwf_window(spec, mask, state: MWFState, forget: float, mask_weight: float,
               reg: float = 1e-3) -> np.ndarray:
    """One window of a talker's voice by a mask-weighted multichannel Wiener filter.

    The covariances decay by ``forget`` per window and add the window's frames:
    ``Phi_x += sum_t x x^H`` and ``Phi_s += sum_t m' x x^H`` with the mask drawn toward 1,
    ``m' = mask_weight * mask + 1 - mask_weight`` (1: the mask as is; 0: the mixture).  The
    filter ``w = (Phi_x + load I)^-1 (Phi_s + load_s I) e_left`` (two taps per bin, the
    same for the whole window; ``load_s`` in proportion to the traces, so that a mask of 1
    gives the left microphone exactly) gives ``y = w^H x``: the least-squares estimate of
    the talker's image at the left microphone when ``Phi_s`` is its covariance.

    Parameters
    ----------
    spec : (F, 2, B) complex, the two microphones' STFT of the window.
    mask : (F, B) the talker's mask in [0, 1] (:func:`voice_mask`).
    state : MWFState, updated in place.
    forget : factor in [0, 1] on the covariances per window (the memory).
    mask_weight : in [0, 1].
    reg : diagonal loading relative to the mixture covariance's mean power per channel.

    Returns
    -------
    (F, B) complex, the voice's STFT at the left microphone.
    """
    spec = np.asarray(spec)
    mask = np.asarray(mask, dtype=np.float64)
    if spec.ndim != 3 or spec.shape[1] != 2 or mask.shape != (spec.shape[0], spec.shape[2]):
        raise ValueError(f"spec must be (F, 2, B) and mask (F, B), got {spec.shape} and "
                         f"{mask.shape}")
    if state.target.shape[0] != spec.shape[2]:
        raise ValueError(f"the state has {state.target.shape[0]} bins, the window "
                         f"{spec.shape[2]}")
    if not (0.0 <= forget <= 1.0 and 0.0 <= mask_weight <= 1.0):
        raise ValueError("forget and mask_weight must be in [0, 1]")
    m = mask_weight * np.clip(mask, 0.0, 1.0) + (1.0 - mask_weight)
    outer = np.einsum("fib,fjb->fbij", spec, np.conj(spec))  # (F, B, 2, 2)
    state.mixture *= forget
    state.target *= forget
    state.mixture += outer.sum(axis=0)
    state.target += np.einsum("fb,fbij->bij", m, outer)
    phi_x, phi_s = state.mixture, state.target
    tr_x = np.real(np.trace(phi_x, axis1=1, axis2=2))
    load = reg * tr_x / 2 + 1e-12
    # the target's covariance is loaded in proportion (phi_s = c phi_x gives w = c e_left)
    load_s = load * np.real(np.trace(phi_s, axis1=1, axis2=2)) / np.maximum(tr_x, 1e-12)
    eye = np.eye(2)[None]
    w = np.linalg.solve(phi_x + load[:, None, None] * eye,
                        (phi_s + load_s[:, None, None] * eye)[:, :, 0:1])[:, :, 0]  # (B, 2)
    w[~np.all(np.isfinite(w), axis=1)] = np.array([1.0, 0.0])
    return np.einsum("bc,fcb->fb", np.conj(w), spec)


def voice_mask(post, share, k: int) -> np.ndarray:
    """Talker ``k``'s mask (F, B): its posterior plus its share of the outlier class (the
    reverberation of its own voice is part of its image at the microphone).

    post : (K + 1, F, B) posteriors, the last the outlier class; share : (K, F)."""
    return post[k] + post[-1] * share[k][:, None]


def separate_window(spec, post, share, k: int, method: str, floor: float,
                    exponent: float = 1.0) -> np.ndarray:
    """The STFT (F, B) of talker ``k``'s voice at the left microphone in one window.

    spec : (F, 2, B) complex; post : (K + 1, F, B) posteriors and share : (K, F) per-frame
    shares (:func:`.tf_masks.cluster_window`); method : 'mask' (the gain on the left
    microphone) or 'mvdr' (MVDR, then the gain).
    """
    mask = voice_mask(post, share, k)
    gain = mask_gain(mask, floor, exponent)
    if method == "mask":
        return gain * spec[:, 0, :]
    if method == "mvdr":
        w = mvdr_weights(spec, mask, 1.0 - mask)
        y = np.einsum("bc,fcb->fb", np.conj(w), spec)
        return gain * y
    raise ValueError(f"unknown separation method {method!r}: use 'mask' or 'mvdr' "
                     "('mwf' needs a state: mwf_window)")


def overlap_add(spec, starts, n_out: int, window, out=None, norm=None):
    """Weighted overlap-add of frames' spectra into a signal (least-squares inverse STFT).

    Parameters
    ----------
    spec : (F, B) complex, rfft of frames windowed by ``window`` (length N = 2 (B - 1)).
    starts : (F,) int, sample index of each frame's first sample in the output.
    n_out : length of the output.
    window : (N,) the analysis window (also the synthesis window).
    out, norm : (n_out,) accumulators to add into (streaming); new ones when None.

    Returns
    -------
    out, norm : the accumulated ``sum w y`` and ``sum w^2``; the signal is
        ``out / norm`` where ``norm`` is well above zero (:func:`finish_overlap_add`).
    """
    n = len(window)
    out = np.zeros(n_out) if out is None else out
    norm = np.zeros(n_out) if norm is None else norm
    if len(spec) == 0:
        return out, norm
    frames = np.fft.irfft(spec, n=n, axis=-1) * window[None, :]
    idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(n)[None, :]
    ok = (idx >= 0) & (idx < n_out)
    np.add.at(out, idx[ok], frames[ok])
    np.add.at(norm, idx[ok], np.broadcast_to(window ** 2, idx.shape)[ok])
    return out, norm


def finish_overlap_add(out, norm, min_norm: float = 0.1) -> np.ndarray:
    """``out / norm`` where ``norm >= min_norm`` (frame overlaps), 0 elsewhere (no frame)."""
    return np.where(norm >= min_norm, out / np.maximum(norm, min_norm), 0.0)
