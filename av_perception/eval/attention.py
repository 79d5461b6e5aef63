"""Attention metrics: is the attention target on the person who speaks, and how often does
it jump (docs/simulation.md, "Metrics")."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import align_stamps

__all__ = ["evaluate_attention", "speaking_turns"]


def speaking_turns(gt: pd.DataFrame) -> pd.DataFrame:
    """The turns of the ground truth: each run of consecutive frames in which a person
    speaks, as rows ``person, start, end`` (s, stamps of its first and last frame),
    sorted by start."""
    rows = []
    frame_ids = np.array(sorted(gt["frame"].unique()))
    for pid, g in gt.groupby("id"):
        g = g.set_index("frame").reindex(frame_ids)
        s = g["speaking"].fillna(False).to_numpy(bool)
        t = g["stamp"].to_numpy(float)
        edges = np.diff(np.r_[0, s.astype(int), 0])
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            rows.append((int(pid), float(t[a]), float(t[b - 1])))
    out = pd.DataFrame(rows, columns=["person", "start", "end"])
    return out.sort_values(["start", "person"]).reset_index(drop=True)


def evaluate_attention(gt: pd.DataFrame, attention: pd.DataFrame, matches=None,
                       gate: float = 0.5, reaction: float = 0.5,
                       stamp_tolerance: float | None = None) -> dict:
    """Score an attention file against the ground truth's speaking schedule.

    Parameters
    ----------
    gt : DataFrame from :func:`~av_perception.eval.readers.read_ground_truth`.
    attention : DataFrame from :func:`~av_perception.eval.readers.read_attention`
        (``stamp, track_id, x, y, z``; track_id -1 = no target).
    matches : dict {(frame, track_id): person id}, optional
        The track-to-person assignment of the tracking metrics
        (:func:`~av_perception.eval.metrics.evaluate_tracks` ``matches=``); a target
        that it does not match at a frame is the nearest person within ``gate`` of the
        target's position (e.g. a talker out of view).
    gate : float
        m, largest distance from the target's position to its person.
    reaction : float
        s, the start of each turn that is not scored (the head may still turn).
    stamp_tolerance : float, optional
        See :func:`~av_perception.eval.metrics.align_stamps`.

    Returns
    -------
    dict: ``on_speaker`` (fraction of the scored speaking frames -- some person has
    spoken for >= ``reaction`` s -- in which the target is a person who speaks),
    ``scored_frames``, ``no_target`` (fraction of the scored frames without a target),
    ``switches`` (the target moved from one person to another), ``turns`` (within the
    attention's span), ``switches_per_turn``, ``max_switches_in_turn`` and
    ``turns_with_extra_switches`` (a switch belongs to the latest turn started before
    it), ``target_changes`` (changes of the target's track id, none included).
    """
    matches = matches or {}
    frame_ids = np.array(sorted(gt["frame"].unique()))
    stamps = gt.groupby("frame")["stamp"].first().loc[frame_ids].to_numpy()
    att = attention.sort_values("stamp", kind="stable").reset_index(drop=True)
    idx = align_stamps(att["stamp"].to_numpy(float), stamps, stamp_tolerance)
    by_frame = {int(f): g for f, g in gt.groupby("frame")}
    tids = att["track_id"].to_numpy(np.int64)
    pos = att[["x", "y", "z"]].to_numpy(float)
    # the person of each attention row (-1: no target, or no person under it)
    person = np.full(len(att), -1)
    for r in range(len(att)):
        if tids[r] < 0 or idx[r] < 0:
            continue
        f = int(frame_ids[idx[r]])
        p = matches.get((f, int(tids[r])))
        if p is None and np.isfinite(pos[r]).all():
            g = by_frame[f]
            d = np.linalg.norm(g[["x", "y", "z"]].to_numpy(float) - pos[r], axis=1)
            if len(d) and d.min() <= gate:
                p = int(g["id"].to_numpy()[int(np.argmin(d))])
        person[r] = -1 if p is None else int(p)
    turns = speaking_turns(gt)
    # scored frames: someone has spoken for >= reaction s (turn onset to frame stamp)
    row_of_frame = {int(idx[r]): r for r in range(len(att)) if idx[r] >= 0}
    scored = correct = no_target = 0
    for k in range(len(frame_ids)):
        t = stamps[k]
        live = turns[(turns["start"] <= t + 1e-9) & (turns["end"] >= t - 1e-9)]
        if not len(live) or not (t - live["start"] >= reaction - 1e-6).any():
            continue
        r = row_of_frame.get(k)
        if r is None:  # no attention row at this frame: counts as not on the speaker
            scored += 1
            no_target += 1
            continue
        scored += 1
        no_target += int(tids[r] < 0)
        correct += int(person[r] in set(live["person"].tolist()))
    # switches between persons (rows without a person in between do not break a gaze)
    span = att["stamp"].to_numpy(float)
    if len(span) and np.nanmax(np.abs(span)) < 1e8 <= (stamps[0] if len(stamps) else 0):
        span = span + stamps[0]
    switch_times = []
    last = -1
    for r in range(len(att)):
        if person[r] >= 0:
            if last >= 0 and person[r] != last:
                switch_times.append(span[r])
            last = person[r]
    changes = int(np.count_nonzero(np.diff(tids) != 0)) if len(tids) else 0
    if len(span):
        turns = turns[(turns["start"] >= span[0] - 1e-9) & (turns["start"] <= span[-1])]
    per_turn = np.zeros(len(turns), dtype=int)
    starts = turns["start"].to_numpy(float)
    for t in switch_times:
        k = int(np.searchsorted(starts, t, side="right")) - 1
        if k >= 0:
            per_turn[k] += 1
    n_turns = len(turns)
    return {
        "on_speaker": correct / scored if scored else float("nan"),
        "scored_frames": scored,
        "no_target": no_target / scored if scored else float("nan"),
        "switches": len(switch_times),
        "turns": n_turns,
        "switches_per_turn": len(switch_times) / n_turns if n_turns else float("nan"),
        "max_switches_in_turn": int(per_turn.max()) if n_turns else 0,
        "turns_with_extra_switches": int(np.count_nonzero(per_turn > 1)),
        "target_changes": changes,
        "rows": int(len(att)),
        "reaction": reaction,
    }
