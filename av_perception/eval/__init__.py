"""Evaluation against the simulator's ground truth (docs/simulation.md).

* :mod:`.readers` -- ground truth (``ground_truth.jsonl``), track files
  (``stamp,track_id,x,y,z,speaking``), audio feature files (``t,itd,azimuth,ild,activity``);
* :mod:`.metrics` -- MOTA/MOTP/IDF1 with 3D gating (py-motmetrics), localisation error,
  speaking precision/recall/F1, ITD/DOA error;
* :mod:`.report` -- text table and JSON; :mod:`.plot` -- tracks vs truth over time;
* :mod:`.runner` -- :func:`evaluate_files`, everything from file paths.
"""
from .metrics import align_stamps, evaluate_audio, evaluate_tracks, prf
from .plot import plot_tracks
from .readers import read_audio_features, read_ground_truth, read_tracks, sniff_csv_kind
from .report import format_report, to_jsonable, write_json
from .runner import evaluate_files

__all__ = [
    "align_stamps",
    "evaluate_audio",
    "evaluate_files",
    "evaluate_tracks",
    "prf",
    "plot_tracks",
    "read_audio_features",
    "read_ground_truth",
    "read_tracks",
    "sniff_csv_kind",
    "format_report",
    "to_jsonable",
    "write_json",
]
