"""Metrics against the simulator's ground truth.

:func:`evaluate_tracks`: CLEAR MOT and identity metrics (py-motmetrics; 3D distance in the
left camera optical frame, gated), localisation error and speaking status (:func:`prf`);
:func:`evaluate_audio`: ITD and azimuth errors of single-talker audio frames against the
scene's true binaural model (:func:`true_binaural_model`).  Definitions:
docs/simulation.md, "Metrics".
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ..core.geometry import MicGeometry

__all__ = ["align_stamps", "evaluate_tracks", "evaluate_audio", "prf", "true_binaural_model"]


def true_binaural_model(scene) -> MicGeometry:
    """The binaural model that really hears in ``scene`` (its ``robot.mics`` head model:
    free field, or the measured KEMAR table for ``--head kemar`` scenes)."""
    if scene.robot.mics.head_model == "free_field":
        return MicGeometry.from_config(scene.robot.mics)
    from ..io.heads import load_head_model
    return load_head_model(scene.robot.mics)

MOT_METRICS = [
    "num_frames", "mota", "motp", "idf1", "idp", "idr", "num_switches", "num_false_positives",
    "num_misses", "num_objects", "num_predictions", "num_matches", "precision", "recall",
    "mostly_tracked", "partially_tracked", "mostly_lost", "num_fragmentations",
    "num_unique_objects",
]


def prf(tp: int, fp: int, fn: int, tn: int | None = None) -> dict:
    """Precision, recall, F1 (and accuracy when ``tn`` is given); NaN when undefined."""
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    out = {"precision": p, "recall": r, "f1": f, "tp": int(tp), "fp": int(fp), "fn": int(fn)}
    if tn is not None:
        total = tp + fp + fn + tn
        out["tn"] = int(tn)
        out["accuracy"] = (tp + tn) / total if total else float("nan")
    return out


def align_stamps(stamps, frame_stamps, tolerance: float | None = None):
    """Index of the ground-truth frame of each stamp (-1 when none is within ``tolerance``).

    Stamps that look relative (all below 1e8 s while the frames are absolute ROS
    times) are shifted by the first frame's stamp.  The default tolerance is a
    quarter of the median frame period.
    """
    stamps = np.asarray(stamps, dtype=float)
    fs = np.asarray(frame_stamps, dtype=float)
    if len(fs) == 0:
        return np.full(len(stamps), -1)
    if len(stamps) and np.nanmax(np.abs(stamps)) < 1e8 <= fs[0]:
        stamps = stamps + fs[0]
    if tolerance is None:
        tolerance = 0.25 * float(np.median(np.diff(fs))) if len(fs) > 1 else 0.01
    k = np.clip(np.searchsorted(fs, stamps), 1, max(len(fs) - 1, 1))
    if len(fs) == 1:
        k = np.zeros(len(stamps), dtype=int)
    else:
        k = np.where(np.abs(stamps - fs[k - 1]) <= np.abs(stamps - fs[k]), k - 1, k)
    return np.where(np.abs(stamps - fs[k]) <= tolerance, k, -1)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)


def evaluate_tracks(gt: pd.DataFrame, tracks: pd.DataFrame, gate: float = 0.5,
                    gt_mode: str = "visible", speaking_threshold: float = 0.5,
                    stamp_tolerance: float | None = None, matches: dict | None = None) -> dict:
    """Tracking, localisation and speaking-status metrics of a track file.

    Parameters
    ----------
    gt : DataFrame from :func:`~av_perception.eval.readers.read_ground_truth`.
    tracks : DataFrame from :func:`~av_perception.eval.readers.read_tracks`.
    gate : float
        Largest 3D distance (m) at which a track can match a person.
    gt_mode : 'visible' or 'all'
        Which people are ground truth (see module docstring).
    speaking_threshold : float
        A track speaks when its ``speaking`` value is >= this.
    stamp_tolerance : float, optional
        Largest |track stamp - frame stamp| (s); default a quarter frame period.
    matches : dict, optional
        Filled with {(frame, track_id): person id} of every match (the attention metrics
        use it).

    Returns
    -------
    dict with keys 'tracking', 'localisation', 'speaking', 'config'.
    """
    import motmetrics as mm

    if gt_mode not in ("visible", "all"):
        raise ValueError(f"gt_mode must be 'visible' or 'all', got {gt_mode!r}")
    if gate <= 0:
        raise ValueError(f"gate must be > 0 m, got {gate}")
    frames = gt.groupby("frame", sort=True)
    frame_ids = np.array(sorted(gt["frame"].unique()))
    frame_stamps = gt.groupby("frame")["stamp"].first().loc[frame_ids].to_numpy()
    idx = align_stamps(tracks["stamp"].to_numpy(), frame_stamps, stamp_tolerance)
    tr = tracks.assign(frame=np.where(idx >= 0, frame_ids[np.maximum(idx, 0)], -1))
    n_outside = int(np.count_nonzero(idx < 0))
    dup = tr[tr["frame"] >= 0].duplicated(["frame", "track_id"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} track rows repeat a track id within one frame")
    tr_by_frame = {f: g for f, g in tr[tr["frame"] >= 0].groupby("frame")}
    acc = mm.MOTAccumulator(auto_id=False)
    ignored = 0
    pairs = []  # (frame, person, track) of every match, for speaking and localisation
    gt_lookup = {}
    hyp_lookup = {}
    for f, g in frames:
        h = tr_by_frame.get(f)
        h = h if h is not None else tracks.iloc[0:0].assign(frame=[])
        gpos = g[["x", "y", "z"]].to_numpy(float)
        hpos = h[["x", "y", "z"]].to_numpy(float)
        keep_h = np.ones(len(h), dtype=bool)
        if gt_mode == "visible":
            vis = g["visible"].to_numpy(bool)
            if np.any(~vis) and len(h):
                d = _distances(gpos, hpos)
                cost = np.where(d <= gate, d, 1e6)
                rows, cols = linear_sum_assignment(cost)
                for r, c in zip(rows, cols):
                    if cost[r, c] < 1e6 and not vis[r]:
                        keep_h[c] = False
            ignored += int(np.count_nonzero(~keep_h))
            g = g[vis]
            gpos = gpos[vis]
        h = h[keep_h]
        hpos = hpos[keep_h]
        d = _distances(gpos, hpos) if len(g) and len(h) else np.zeros((len(g), len(h)))
        d = np.where(d <= gate, d, np.nan)
        oids = g["id"].to_numpy()
        hids = h["track_id"].to_numpy()
        acc.update(oids, hids, d, frameid=int(f))
        for oid, row in zip(oids, g.itertuples()):
            gt_lookup[(int(f), int(oid))] = row
        for hid, row in zip(hids, h.itertuples()):
            hyp_lookup[(int(f), int(hid))] = row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        summary = mm.metrics.create().compute(acc, metrics=MOT_METRICS, name="tracks")
    tracking = {k: _num(summary[k].iloc[0]) for k in MOT_METRICS}
    tracking["ignored_rows"] = ignored
    tracking["rows_outside_frames"] = n_outside
    ev = acc.mot_events
    matched = ev[ev["Type"].isin(["MATCH", "SWITCH"])]
    for (f, _), row in matched.iterrows():
        pairs.append((int(f), int(row["OId"]), int(row["HId"]), float(row["D"])))
    if matches is not None:
        matches.update({(f, h): o for f, o, h, _ in pairs})
    loc = {"n": len(pairs)}
    if pairs:
        dist = np.array([p[3] for p in pairs])
        diff = np.array([[getattr(hyp_lookup[(f, h)], a) - getattr(gt_lookup[(f, o)], a)
                          for a in ("x", "y", "z")] for f, o, h, _ in pairs])
        loc.update(mean=float(dist.mean()), median=float(np.median(dist)),
                   p90=float(np.percentile(dist, 90)), rmse=float(np.sqrt(np.mean(dist ** 2))),
                   mean_abs_x=float(np.mean(np.abs(diff[:, 0]))),
                   mean_abs_y=float(np.mean(np.abs(diff[:, 1]))),
                   mean_abs_z=float(np.mean(np.abs(diff[:, 2]))),
                   bias_z=float(np.mean(diff[:, 2])))
    tp = fp = fn = tn = 0
    for f, o, h, _ in pairs:
        truth = bool(gt_lookup[(f, o)].speaking)
        said = float(hyp_lookup[(f, h)].speaking) >= speaking_threshold
        tp += truth and said
        fp += said and not truth
        fn += truth and not said
        tn += not truth and not said
    speaking = prf(tp, fp, fn, tn)
    gt_sel = gt if gt_mode == "all" else gt[gt["visible"]]
    n_speaking = int(gt_sel["speaking"].sum())
    speaking["gt_speaking_instances"] = n_speaking
    speaking["detection_rate"] = tp / n_speaking if n_speaking else float("nan")
    return {"tracking": tracking, "localisation": loc, "speaking": speaking,
            "config": {"gate": gate, "gt_mode": gt_mode,
                       "speaking_threshold": speaking_threshold,
                       "frames": int(len(frame_ids)), "track_rows": int(len(tracks))}}


def _num(v):
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v


def evaluate_audio(scene, features: pd.DataFrame, activity_threshold: float = 0.5,
                   margin: float = 0.05) -> dict:
    """ITD and direction-of-arrival errors of an audio feature file.

    Parameters
    ----------
    scene : Scene (from the simulator output's ``scene.json``).
    features : DataFrame with columns t, itd, azimuth, ild, activity; ``t`` either
        ROS time (seconds) or seconds from the scene start.
    activity_threshold : float
        Frames with lower activity are not scored.
    margin : float
        The same single talker must speak at t - margin, t and t + margin.
    """
    t = features["t"].to_numpy(float)
    if len(t) and np.nanmax(t) > scene.epoch / 2:
        t = t - scene.epoch
    geom = true_binaural_model(scene)
    counts = np.zeros(len(t), dtype=int)
    speaker = np.full(len(t), -1)
    stable = np.ones(len(t), dtype=bool)
    base = scene.speaking(t)
    before = scene.speaking(t - margin)
    after = scene.speaking(t + margin)
    for pid in scene.person_ids:
        counts += base[pid]
        speaker = np.where(base[pid], pid, speaker)
        stable &= (base[pid] == before[pid]) & (base[pid] == after[pid])
    single = (counts == 1) & stable
    itd = features["itd"].to_numpy(float)
    act = features["activity"].to_numpy(float)
    used = single & (act >= activity_threshold) & np.isfinite(itd)
    out = {"frames": int(len(t)), "single_speaker_frames": int(single.sum()),
           "scored_frames": int(used.sum()), "activity_threshold": activity_threshold}
    if not np.any(used):
        return out
    mouths = scene.mouth_positions(t[used])
    spk = speaker[used]
    true_pos = np.zeros((int(used.sum()), 3))
    for pid in scene.person_ids:
        sel = spk == pid
        true_pos[sel] = mouths[pid][sel]
    true_itd = geom.itd(true_pos)
    err = itd[used] - true_itd
    az_true = geom.azimuth_of_points(true_pos)
    az = features["azimuth"].to_numpy(float)[used]
    if not np.all(np.isfinite(az)):
        az = np.where(np.isfinite(az), az, geom.azimuth_from_itd(itd[used]))
    daz = np.degrees(np.abs(np.angle(np.exp(1j * (az - az_true)))))
    out["itd_error_us"] = {
        "median_abs": float(np.median(np.abs(err)) * 1e6),
        "mean_abs": float(np.mean(np.abs(err)) * 1e6),
        "rmse": float(np.sqrt(np.mean(err ** 2)) * 1e6),
        "bias": float(np.mean(err) * 1e6),
        "p90_abs": float(np.percentile(np.abs(err), 90) * 1e6),
    }
    out["doa_error_deg"] = {
        "median_abs": float(np.median(daz)), "mean_abs": float(np.mean(daz)),
        "within_5deg": float(np.mean(daz <= 5.0)), "within_10deg": float(np.mean(daz <= 10.0)),
    }
    out["per_speaker"] = {
        str(pid): {"frames": int(np.sum(spk == pid)),
                   "itd_median_abs_us": float(np.median(np.abs(err[spk == pid])) * 1e6),
                   "doa_median_abs_deg": float(np.median(daz[spk == pid]))}
        for pid in scene.person_ids if np.any(spk == pid)}
    return out
