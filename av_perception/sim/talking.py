"""Talking faces: each rendered mouth opens with its person's own speech envelope.

:func:`dry_speech` re-creates each person's dry speech exactly as
:func:`~av_perception.sim.audio.render_audio` does; :class:`MouthEnvelope` turns it into a
mouth opening in [0, 1] at any time; :func:`open_mouth` draws that opening into a face
sprite (the lower lip and jaw pushed down over a dark gap).  docs/simulation.md,
"Talking faces".
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MouthEnvelope", "dry_speech", "open_mouth", "MAX_GAP", "RANGE_DB"]

#: inner-lip gap at opening 1, as a fraction of the mouth width (corner to corner)
MAX_GAP = 0.5
#: loudness range (dB below the person's loud syllables) over which the mouth opens
RANGE_DB = 15.0
_HOP = 0.01  # s, envelope sampling
_WINDOW = 0.04  # s, RMS window
_INTERIOR = np.array([38.0, 28.0, 52.0], np.float32)  # BGR, dark mouth cavity
_TEETH = np.array([200.0, 208.0, 215.0], np.float32)


def dry_speech(scene, speech_source=None) -> dict:
    """{person id: dry speech (n,)} of ``scene``: the signals render_audio puts at the
    mouths (same speech source, same random streams)."""
    from .audio import person_dry_speech
    from .voice import make_speech_source

    source = speech_source or make_speech_source(scene.speech, scene.people)
    out = {p.id: person_dry_speech(scene, source, p) for p in scene.people}
    return out


class MouthEnvelope:
    """Mouth opening in [0, 1] of one person from their dry speech.

    The RMS over 40 ms every 10 ms in dB relative to its 90th percentile over the
    person's sound (samples above 1 % of the peak), mapped linearly from closed at
    -``RANGE_DB`` to fully open at 0 dB (the jaw follows the syllables' loudness); 0 in
    silence.

    Parameters
    ----------
    dry : array (n,)
        Dry speech of the person.
    fs : int
        Sample rate (Hz).
    """

    def __init__(self, dry: np.ndarray, fs: int):
        x = np.asarray(dry, dtype=np.float64)
        hop, win = max(1, int(round(_HOP * fs))), max(1, int(round(_WINDOW * fs)))
        c = np.concatenate([[0.0], np.cumsum(x * x)])
        centres = np.arange(0, len(x) + 1, hop)
        lo = np.clip(centres - win // 2, 0, len(x))
        hi = np.clip(centres + win // 2, 0, len(x))
        rms = np.sqrt(np.maximum(c[hi] - c[lo], 0.0) / np.maximum(hi - lo, 1))
        self.times = centres / float(fs)
        sound = rms[rms > 0.01 * rms.max()] if rms.size and rms.max() > 0 else rms[:0]
        ref = float(np.percentile(sound, 90)) if sound.size else 1.0
        db = 20.0 * np.log10(np.maximum(rms, 1e-12) / ref) if ref > 0 else np.full_like(rms, -1e3)
        self.values = np.clip(1.0 + db / RANGE_DB, 0.0, 1.0)

    def __call__(self, t) -> np.ndarray:
        """Opening at times ``t`` (s; linear interpolation, 0 outside)."""
        return np.interp(t, self.times, self.values, left=0.0, right=0.0)


def open_mouth(image: np.ndarray, mouth, opening: float) -> np.ndarray:
    """A face image with the mouth opened by ``opening``.

    Parameters
    ----------
    image : array (H, W, 3) float32 BGR
        The sprite (closed or nearly closed mouth).
    mouth : (cx, cy, width)
        Centre of the lips and corner-to-corner width (sprite pixels).
    opening : float in [0, 1]
        The gap between the lips is ``opening * MAX_GAP * width`` at the centre,
        elliptic across the mouth.

    Returns
    -------
    array (H, W, 3) float32: the lower lip and jaw pushed down by 70 % of the gap
    (squeezed back to the original one mouth width below), the upper lip lifted by
    30 % (back to the original half a width above); in the gap the dark mouth cavity
    with a band of upper teeth.
    """
    cx, cy, w = (float(v) for v in mouth)
    g = float(np.clip(opening, 0.0, 1.0)) * MAX_GAP * w
    if g < 0.25:
        return image
    h_img, w_img = image.shape[:2]
    xs = np.arange(w_img, dtype=np.float32)
    ys = np.arange(h_img, dtype=np.float32)[:, None]
    gap = g * np.sqrt(np.clip(1.0 - ((xs - cx) / (0.5 * w)) ** 2, 0.0, 1.0))[None, :]
    low, up = 0.7 * gap, 0.3 * gap
    down_reach, up_reach = 1.0 * w, 0.5 * w
    d = ys - cy  # (H, 1)
    # below: output row cy + d, d in [low, reach] <- source cy + (d - low) reach / (reach - low)
    below = cy + (d - low) * down_reach / np.maximum(down_reach - low, 1e-3)
    above = cy + (d + up) * up_reach / np.maximum(up_reach - up, 1e-3)
    src = np.where(d >= down_reach, ys, np.where(d >= low, below, np.where(
        d > -up, cy, np.where(d > -up_reach, above, ys)))).astype(np.float32)
    map_x = np.broadcast_to(xs[None, :], (h_img, w_img)).astype(np.float32)
    out = cv2.remap(image, map_x, np.ascontiguousarray(src), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    # the cavity between -up and +low, anti-aliased over one pixel; teeth in its top fifth
    inside = np.clip(np.minimum(d + up + 0.5, low - d + 0.5), 0.0, 1.0) * (gap > 0.5)
    depth = np.clip((d + up) / np.maximum(gap, 1e-3), 0.0, 1.0)  # 0 top .. 1 bottom
    teeth = (depth < 0.2) & (gap > 2.0)
    colour = np.where(teeth[:, :, None], _TEETH, _INTERIOR)
    inside = inside[:, :, None].astype(np.float32)
    return out + inside * (colour - out)
