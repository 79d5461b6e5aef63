"""Simulated binaural scenes with a known direction (shared by benchmarks and tests)."""
from __future__ import annotations

import itertools

import numpy as np

from av_perception.core.config import MicArrayConfig
from av_perception.sim.roomsim import RoomSetup, render_sources, source_at
from av_perception.sim.signals import synthetic_voice

FS = 16000


def scene(azimuth_deg: float, distance: float, rt60: float, snr_db: float, seed: int = 0,
          duration: float = 2.0, mics: MicArrayConfig | None = None) -> np.ndarray:
    """One talker (synthetic voice with pauses) at a known azimuth/distance -> (n, 2)."""
    voice = synthetic_voice(FS, duration, f0=100.0 + 20 * (seed % 6), seed=seed,
                            pause_every=1.0)
    pos = source_at(np.radians(azimuth_deg), distance)
    return render_sources([(voice, pos, 0.0)], RoomSetup(rt60=rt60, fs=FS), mics,
                          snr_db=snr_db, seed=seed + 100, duration=duration)


def grid(rt60s=(0.0, 0.3, 0.45, 0.6), snrs=(0.0, 10.0, 20.0), distances=(1.0, 2.0, 3.0),
         azimuths=(-60.0, -30.0, -10.0, 14.0, 40.0, 70.0)):
    """(rt60, snr, distance, azimuth) tuples of the accuracy grid."""
    return list(itertools.product(rt60s, snrs, distances, azimuths))


def weighted_median(values, weights) -> float:
    order = np.argsort(values)
    c = np.cumsum(weights[order])
    if len(c) == 0 or c[-1] <= 0:
        return float("nan")
    return float(values[order][np.searchsorted(c, 0.5 * c[-1])])


def estimate_azimuth(features, min_activity: float = 0.5) -> tuple[float, np.ndarray]:
    """Recording-level azimuth (deg): weighted median of active frames; and the frame
    azimuths (deg) used."""
    sel = np.isfinite(features.itd) & (features.activity >= min_activity)
    az = np.degrees(features.azimuth[sel])
    return weighted_median(az, features.weight[sel]), az
