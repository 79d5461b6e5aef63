"""Head models from files: the MIT KEMAR HRIRs (``slab`` package) and saved tables.

``slab.HRTF.kemar()`` gives 710 directions (elevation -40..90 deg) of 512-tap HRIRs at
44.1 kHz; azimuth is positive to the left, channel 0 is the left ear.  They are read
here and handed to the pure core functions (:func:`av_perception.core.head.measured_table`)
as arrays.  ``slab`` is in the ``sim`` extra (it needs ``soundfile``'s libsndfile,
which its wheel bundles).
"""
from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np

from ..core.config import AudioFrontEndConfig, MicArrayConfig
from ..core.head import HeadTable, make_head_model, measured_table

__all__ = ["kemar_hrirs", "kemar_table", "save_table", "load_table", "load_head_model",
           "save_calibration", "load_calibration", "apply_calibration"]

#: MicArrayConfig fields a calibration file may set
CALIBRATED_FIELDS = ("head_model", "head_radius", "ear_azimuth", "ear_elevation", "itd_scale")


@functools.lru_cache(maxsize=1)
def kemar_hrirs() -> tuple[np.ndarray, float, np.ndarray]:
    """MIT KEMAR HRIRs: (hrir (710, 2, 512), rate (Hz), directions (710, 3)).

    Directions are unit vectors in head components (forward, left, up).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import slab
    except ImportError as exc:
        raise ImportError("the KEMAR head needs the 'slab' package: pip install slab "
                          "(or pip install -e '.[sim]')") from exc
    h = slab.HRTF.kemar()
    hrir = np.stack([np.asarray(f.data, dtype=float).T for f in h.data])
    vp = np.asarray(h.sources.vertical_polar, dtype=float)
    az, el = np.radians(vp[:, 0]), np.radians(vp[:, 1])
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    return hrir, float(h.samplerate), d


@functools.lru_cache(maxsize=8)
def kemar_table(band_edges: tuple, min_frequency: float = 150.0,
                max_frequency: float = 7500.0) -> HeadTable:
    """Measured table of KEMAR for the front-end's ILD bands and ITD frequency range."""
    hrir, rate, d = kemar_hrirs()
    return measured_table(hrir, rate, d, tuple(band_edges), min_frequency, max_frequency)


def save_table(path, table: HeadTable) -> None:
    """Write a head table as .npz (itd, ild, band_edges)."""
    np.savez(Path(path), itd=table.itd,
             ild=table.ild if table.ild is not None else np.zeros((0,)),
             band_edges=np.asarray(table.band_edges, dtype=float))


def load_table(path) -> HeadTable:
    """Read a head table written by :func:`save_table`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"head table {path} not found (mics.measured_table)")
    with np.load(path) as z:
        ild = z["ild"] if z["ild"].size else None
        return HeadTable(z["itd"], ild, tuple(z["band_edges"]) if ild is not None else ())


def save_calibration(path, fit) -> None:
    """Write a :class:`~av_perception.core.head_calibration.CalibrationFit` as JSON."""
    data = {"mics": {k: v for k, v in fit.params.items() if k in CALIBRATED_FIELDS},
            "samples": int(fit.samples), "robust_cost": float(fit.cost),
            "previous_robust_cost": float(fit.previous_cost), "stamp": float(fit.stamp)}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def load_calibration(path) -> dict:
    """The MicArrayConfig fields of a calibration file (see :func:`save_calibration`)."""
    data = json.loads(Path(path).read_text())
    fields = data.get("mics", {})
    unknown = sorted(set(fields) - set(CALIBRATED_FIELDS))
    if unknown:
        raise ValueError(f"calibration file {path}: unknown field(s) {', '.join(unknown)}")
    return fields


def apply_calibration(mics: MicArrayConfig) -> MicArrayConfig:
    """``mics`` with the fields of its calibration file (unchanged without one)."""
    if not mics.calibration_file or not Path(mics.calibration_file).is_file():
        return mics
    return mics.replace(**load_calibration(mics.calibration_file))


def load_head_model(mics: MicArrayConfig, audio: AudioFrontEndConfig | None = None):
    """The binaural model of ``mics`` (its calibration file applied, the measured table
    loaded when needed).

    The ILD bands and ITD frequency range are the front-end's (``audio``).
    """
    mics = apply_calibration(mics)
    audio = audio or AudioFrontEndConfig()
    table = None
    if mics.head_model == "measured":
        if mics.measured_table == "kemar":
            table = kemar_table(tuple(audio.ild_band_edges), audio.min_frequency,
                                audio.max_frequency)
        else:
            table = load_table(mics.measured_table)
    return make_head_model(mics, audio.ild_band_edges, table)
