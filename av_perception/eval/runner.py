"""Evaluate result files of a simulated scene in one call (used by ``av-perception evaluate``)."""
from __future__ import annotations

from pathlib import Path

from .attention import evaluate_attention
from .metrics import evaluate_audio, evaluate_tracks
from .plot import plot_tracks
from .readers import (
    read_attention,
    read_audio_features,
    read_ground_truth,
    read_tracks,
    sniff_csv_kind,
)

__all__ = ["evaluate_files"]


def evaluate_files(scene_dir, results=(), *, gate: float = 0.5, gt_mode: str = "visible",
                   speaking_threshold: float = 0.5, activity_threshold: float = 0.5,
                   plot=None, reaction: float = 0.5) -> dict:
    """Score track and/or audio feature CSVs against a simulator output directory.

    Parameters
    ----------
    scene_dir : path
        Output directory of ``av-perception simulate`` (ground_truth.jsonl, scene.json).
    results : iterable of paths
        CSV files; each is recognised by its header as a track file, an audio feature
        file or an attention file (at most one of each).
    gate, gt_mode, speaking_threshold : see :func:`evaluate_tracks`.
    activity_threshold : see :func:`evaluate_audio`.
    reaction : see :func:`~av_perception.eval.attention.evaluate_attention`.
    plot : path, optional
        Write the tracks-vs-truth PNG there (needs a track file).

    Returns
    -------
    dict with 'tracking', 'localisation', 'speaking', 'config' (track file) and
    'audio' (audio feature file), 'attention' (attention file; its targets are mapped to
    people through the track file's matches when one is given), plus 'files'.
    """
    from ..sim.scene import load_scene

    scene_dir = Path(scene_dir)
    kinds: dict[str, Path] = {}
    for path in results:
        kind = sniff_csv_kind(path)
        if kind in kinds:
            raise ValueError(f"two {kind} files given ({kinds[kind]} and {path}): give one")
        kinds[kind] = Path(path)
    if not kinds:
        raise ValueError("nothing to evaluate: give a track file, an audio feature file "
                         "and/or an attention file")
    out: dict = {"files": {"scene": str(scene_dir), **{k: str(v) for k, v in kinds.items()}}}
    matches: dict = {}
    if "tracks" in kinds:
        gt = read_ground_truth(scene_dir)
        tracks = read_tracks(kinds["tracks"])
        out.update(evaluate_tracks(gt, tracks, gate=gate, gt_mode=gt_mode,
                                   speaking_threshold=speaking_threshold, matches=matches))
        if plot is not None:
            plot_tracks(gt, tracks, plot, speaking_threshold,
                        title=f"{kinds['tracks'].name} vs {scene_dir.name}")
    elif plot is not None:
        raise ValueError("--plot needs a track file")
    if "attention" in kinds:
        out["attention"] = evaluate_attention(read_ground_truth(scene_dir),
                                              read_attention(kinds["attention"]), matches,
                                              gate=gate, reaction=reaction)
    if "audio" in kinds:
        scene = load_scene(scene_dir)
        out["audio"] = evaluate_audio(scene, read_audio_features(kinds["audio"]),
                                      activity_threshold=activity_threshold)
    return out
