"""Voice files of ``av-perception separate``: ``voice_<track_id>.wav``, mono float32."""
from __future__ import annotations

import os
from math import gcd
from pathlib import Path

import numpy as np
import scipy.io.wavfile

__all__ = ["voice_at_rate", "write_voice"]


def voice_at_rate(voice, rate_in: int, rate_out: int, n_out: int) -> np.ndarray:
    """A voice at ``rate_in`` (sample 0 = the stream's first sample) resampled to
    ``rate_out`` (zero-phase polyphase: sample alignment kept), cut or zero-padded to
    ``n_out`` samples."""
    y = np.asarray(voice, dtype=np.float64)
    if rate_in != rate_out:
        import scipy.signal  # here: ~0.2 s to import, only a rate change needs it

        g = gcd(int(rate_in), int(rate_out))
        y = scipy.signal.resample_poly(y, rate_out // g, rate_in // g)
    out = np.zeros(n_out)
    m = min(n_out, len(y))
    out[:m] = y[:m]
    return out


def write_voice(path, samples, rate: int) -> Path:
    """Write a mono float32 WAV atomically (``path.partial`` then renamed): an interrupted
    run leaves no half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    scipy.io.wavfile.write(tmp, int(rate), np.asarray(samples, dtype=np.float32))
    os.replace(tmp, path)
    return path
