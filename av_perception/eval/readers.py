"""Readers for the evaluation: simulator ground truth, track files, audio feature files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "TRACK_COLUMNS",
    "AUDIO_COLUMNS",
    "GT_COLUMNS",
    "read_ground_truth",
    "read_tracks",
    "read_audio_features",
    "read_attention",
    "sniff_csv_kind",
    "ATTENTION_COLUMNS",
]

TRACK_COLUMNS = ("stamp", "track_id", "x", "y", "z", "speaking")
AUDIO_COLUMNS = ("t", "itd", "azimuth", "ild", "activity")
ATTENTION_COLUMNS = ("stamp", "track_id", "x", "y", "z")
GT_COLUMNS = ("frame", "stamp", "id", "x", "y", "z", "speaking", "visible", "visible_fraction")


def _header(path) -> list[str]:
    with open(path, newline="") as fh:
        row = next(csv.reader(fh), None)
    if row is None:
        raise ValueError(f"{path} is empty: expected a CSV header")
    return [c.strip() for c in row]


def sniff_csv_kind(path) -> str:
    """'tracks', 'audio' or 'attention', from a CSV's header (:data:`TRACK_COLUMNS`,
    :data:`AUDIO_COLUMNS`, :data:`ATTENTION_COLUMNS` without ``speaking``)."""
    cols = set(_header(path))
    if set(TRACK_COLUMNS) <= cols:
        return "tracks"
    if set(AUDIO_COLUMNS) <= cols:
        return "audio"
    if set(ATTENTION_COLUMNS) <= cols:
        return "attention"
    raise ValueError(f"{path}: header {sorted(cols)} is neither a track file "
                     f"({','.join(TRACK_COLUMNS)}), an audio feature file "
                     f"({','.join(AUDIO_COLUMNS)}) nor an attention file "
                     f"({','.join(ATTENTION_COLUMNS)})")


def _read_csv(path, columns, kind: str) -> pd.DataFrame:
    cols = _header(path)
    missing = [c for c in columns if c not in cols]
    if missing:
        raise ValueError(f"{path} is not a {kind} file: column(s) {', '.join(missing)} missing "
                         f"(header must contain {','.join(columns)})")
    df = pd.read_csv(path, skipinitialspace=True)
    df.columns = [c.strip() for c in df.columns]
    for c in columns:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def read_tracks(path) -> pd.DataFrame:
    """A track file (``stamp,track_id,x,y,z,speaking``) as a DataFrame.

    Rows with a missing stamp, id or position are refused with a ValueError naming
    the first bad line; ``speaking`` may be a probability or 0/1 (NaN reads as 0).
    """
    df = _read_csv(path, TRACK_COLUMNS, "track")
    bad = df[["stamp", "track_id", "x", "y", "z"]].isna().any(axis=1) | \
        ~np.isfinite(df[["stamp", "x", "y", "z"]].to_numpy(float)).all(axis=1)
    if bad.any():
        line = int(np.argmax(bad.to_numpy())) + 2
        raise ValueError(f"{path} line {line}: stamp, track_id, x, y and z must be finite numbers")
    df["track_id"] = df["track_id"].astype(np.int64)
    df["speaking"] = df["speaking"].fillna(0.0).astype(float)
    return df[list(TRACK_COLUMNS)].reset_index(drop=True)


def read_attention(path) -> pd.DataFrame:
    """An attention file (``stamp,track_id,x,y,z``, track_id -1 with empty x, y, z: no
    target) as a DataFrame.  A row with a missing stamp or id, or a target without a
    finite position, is refused with a ValueError naming the line."""
    df = _read_csv(path, ATTENTION_COLUMNS, "attention")
    xyz = df[["x", "y", "z"]].to_numpy(float)
    bad = df["stamp"].isna() | df["track_id"].isna() | \
        ((df["track_id"] >= 0) & ~np.isfinite(xyz).all(axis=1))
    if bad.any():
        line = int(np.argmax(bad.to_numpy())) + 2
        raise ValueError(f"{path} line {line}: stamp and track_id must be numbers and a "
                         "target (track_id >= 0) needs finite x, y and z")
    df["track_id"] = df["track_id"].astype(np.int64)
    return df[list(ATTENTION_COLUMNS)].reset_index(drop=True)


def read_audio_features(path) -> pd.DataFrame:
    """An audio feature file (``t,itd,azimuth,ild,activity``) as a DataFrame (NaN ITDs kept)."""
    df = _read_csv(path, AUDIO_COLUMNS, "audio feature")
    if df["t"].isna().any():
        line = int(np.argmax(df["t"].isna().to_numpy())) + 2
        raise ValueError(f"{path} line {line}: t must be a number")
    return df


def read_ground_truth(scene_dir) -> pd.DataFrame:
    """The simulator's ``ground_truth.jsonl`` as one row per (frame, person).

    ``scene_dir`` is the simulator output directory or the JSONL file itself.
    """
    p = Path(scene_dir)
    if p.is_dir():
        p = p / "ground_truth.jsonl"
    if not p.exists():
        raise ValueError(f"no ground truth at {p} (expected the output directory of "
                         "'av-perception simulate')")
    rows = []
    with open(p) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                for person in rec["people"]:
                    rows.append((int(rec["frame"]), float(rec["stamp"]), int(person["id"]),
                                 float(person["x"]), float(person["y"]), float(person["z"]),
                                 bool(person["speaking"]), bool(person["visible"]),
                                 float(person.get("visible_fraction", float(person["visible"])))))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{p} line {n}: not a ground-truth record ({exc})") from exc
    return pd.DataFrame(rows, columns=list(GT_COLUMNS))
