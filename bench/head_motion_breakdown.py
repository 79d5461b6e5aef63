"""Where the head's pan loses speaking F1: the matched (person, track) pairs of
``bench_head_motion.py`` runs split by context.

Each pair that the speaking F1 scores (a visible person matched to a track) is counted as
tp/fp/fn/tn under its context: the person entered the view less than 1 s ago or not, and
within 0.5 s of their speech's onset / offset or steady.  Usage::

    python bench/head_motion_breakdown.py OUT [--seeds 201 202 ...]

with OUT the ``--out`` directory of ``bench_head_motion.py`` (``still_<seed>``,
``pan_<seed>``).
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from av_perception.eval.metrics import align_stamps, evaluate_tracks
from av_perception.eval.readers import read_ground_truth, read_tracks


def person_context(gt):
    """(frame, person) -> (s since entering the view, since speech onset, since offset,
    speaking)."""
    info = {}
    for pid, gp in gt.sort_values("stamp").groupby("id"):
        vis = gp.visible.to_numpy(bool)
        sp = gp.speaking.to_numpy(bool)
        t = gp.stamp.to_numpy(float)
        entered = np.maximum.accumulate(np.where(vis & ~np.r_[False, vis[:-1]], t, -1e9))
        onset = np.maximum.accumulate(np.where(sp & ~np.r_[False, sp[:-1]], t, -1e9))
        offset = np.maximum.accumulate(np.where(~sp & np.r_[False, sp[:-1]], t, -1e9))
        for f, a, b, c, s in zip(gp.frame, t - entered, t - onset, t - offset, sp):
            info[(int(f), int(pid))] = (a, b, c, bool(s))
    return info


def breakdown(scene_dir: Path, late_fp: list | None = None) -> collections.Counter:
    gt = read_ground_truth(scene_dir)
    tracks = read_tracks(scene_dir / "tracks.csv")
    matches: dict = {}
    evaluate_tracks(gt, tracks, matches=matches)
    frames = np.array(sorted(gt.frame.unique()))
    stamps = gt.groupby("frame")["stamp"].first().loc[frames].to_numpy()
    idx = align_stamps(tracks.stamp.to_numpy(), stamps, None)
    frame = np.where(idx >= 0, frames[np.maximum(idx, 0)], -1)
    said = {(int(f), int(h)): s >= 0.5 for f, h, s in zip(frame, tracks.track_id,
                                                          tracks.speaking)}
    info = person_context(gt)
    counts: collections.Counter = collections.Counter()
    for (f, h), o in matches.items():
        entered, onset, offset, truth = info[(f, o)]
        s = said[(f, h)]
        outcome = "tp" if truth and s else "fp" if s else "fn" if truth else "tn"
        edge = ("onset<0.5s" if truth and onset < 0.5
                else "offset<0.5s" if not truth and offset < 0.5 else "steady")
        view = "entered<1s" if entered < 1.0 else "in view"
        counts[(view, edge, outcome)] += 1
        if late_fp is not None and view == "entered<1s" and edge == "steady" and outcome == "fp":
            late_fp.append(offset)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[201, 202, 203, 204, 205])
    args = parser.parse_args()
    for kind in ("still", "pan"):
        total: collections.Counter = collections.Counter()
        late: list = []
        for seed in args.seeds:
            total += breakdown(args.out / f"{kind}_{seed}", late)
        print(f"{kind}:")
        print("| view | speech edge | tp | fp | fn | tn |\n|---|---|---:|---:|---:|---:|")
        for view, edge in sorted({k[:2] for k in total}):
            row = [total[(view, edge, o)] for o in ("tp", "fp", "fn", "tn")]
            print(f"| {view} | {edge} | " + " | ".join(map(str, row)) + " |")
        if late:
            hist = np.histogram(late, [0.5, 1, 2, 4, 8, np.inf])[0]
            print("false positives of silent people who entered the view < 1 s ago, by the "
                  f"time since their own speech ended (0.5-1, 1-2, 2-4, 4-8, > 8 s): {hist}")


if __name__ == "__main__":
    main()
