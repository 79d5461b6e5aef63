"""Where the lip cue goes wrong while the head turns: every face box's lip sample and
evidence of a ``bench_head_motion.py`` scene against the ground truth, split by how fast
the face moves in the image (BENCHMARKS.md, "Head motion").

    python bench/lip_motion_breakdown.py dump SCENE_DIR [--config F] [--fixed-frame base_link]
    python bench/lip_motion_breakdown.py show OUT --seeds 206 207 208 [--kinds still pan]

``dump`` runs ``process`` over ``SCENE_DIR/bag`` and keeps, for every face box the lip
front-end sees, the frame's stamp, the box, its chain (lip window), the mouth opening,
eye span, yaw and reliability of its mesh (when meshed on that frame) and the evidence
(log LR, reliability) handed to the tracker; each box is matched to the ground-truth
person whose face centre (u, v) is nearest (within 0.6 box widths): ``SCENE_DIR/lips.pkl``.
``show`` prints, per image speed bin of the face (|du/dt| px per frame from the ground
truth) and truth (speaking / silent): the boxes, the share with known lips, the mean
evidence, the share of silent faces read as talking (log LR > 0), the mean of the
positive evidence, and the landmark noise (std of the frame-to-frame change of the
opening / sqrt 2, eye spans) of silent faces.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pickle
from pathlib import Path

import numpy as np


def dump(scene: Path, config: str | None, fixed_frame: str | None) -> Path:
    from av_perception.core import lip_activity, lip_frontend
    from av_perception.io.params import load_offline_configs
    from av_perception.offline import PROCESS_STAGES, process_bag
    from av_perception.pipeline import TrackingConfig

    samples = {}  # (chain id, t) -> (opening, eye_px, yaw, reliability, frames)
    rows = []
    orig_update = lip_activity.LipActivity.update
    orig_observe = lip_frontend.LipFrontEnd.observe

    def update(self, track_id, t, sample, frames=1.0):
        s = sample if sample is not None else lip_activity.LipSample.missing()
        samples[(int(track_id), round(float(t), 6))] = (s.opening, s.eye_px, s.yaw,
                                                         s.reliability, frames)
        return orig_update(self, track_id, t, sample, frames)

    def observe(self, image, detections, stamp, rotation=None, K=None):
        llr, rel = orig_observe(self, image, detections, stamp, rotation, K)
        for i, d in enumerate(detections):
            if d.kind != "face":
                continue
            key = (int(self._ids[i]), round(float(stamp), 6))
            rows.append(dict(stamp=float(stamp), box=(d.x, d.y, d.w, d.h),
                             chain=int(self._ids[i]), llr=float(llr[i]), rel=float(rel[i]),
                             sample=samples.pop(key, None)))
        return llr, rel

    configs = load_offline_configs(config, PROCESS_STAGES)
    if fixed_frame:
        configs[TrackingConfig] = dataclasses.replace(configs[TrackingConfig],
                                                      fixed_frame=fixed_frame)
    lip_activity.LipActivity.update = update
    lip_frontend.LipFrontEnd.observe = observe
    try:
        process_bag(scene / "bag", scene / "tracks_lips.csv", configs)
    finally:
        lip_activity.LipActivity.update = orig_update
        lip_frontend.LipFrontEnd.observe = orig_observe
    with open(scene / "lips_raw.pkl", "wb") as f:
        pickle.dump(rows, f)
    return match(scene, rows)


def match(scene: Path, rows: list) -> Path:
    """Match each box of ``rows`` to the nearest ground-truth face; write lips.pkl."""
    import pandas as pd

    recs = [json.loads(x) for x in (scene / "ground_truth.jsonl").read_text().split("\n")
            if x]
    gt = pd.DataFrame([dict(frame=r["frame"], stamp=r["stamp"], **p) for r in recs
                       for p in r["people"]])
    by_frame = {f: g for f, g in gt.groupby("frame")}
    stamps = np.array(sorted(gt.groupby("frame")["stamp"].first().items()))
    speed = _image_speed(gt)
    pan = np.array([r.get("head_pan", 0.0) for r in recs], dtype=float)
    pan_speed = np.abs(np.gradient(pan)) * 15.0 if len(pan) > 1 else np.zeros(len(pan))
    for r in rows:
        k = int(np.argmin(np.abs(stamps[:, 1] - r["stamp"])))
        frame = int(stamps[k, 0])
        g = by_frame[frame]
        r["pan_speed"] = float(pan_speed[min(frame, len(pan_speed) - 1)])
        x, y, w, h = r["box"]
        cu, cv = x + 0.5 * w, y + 0.5 * h
        dist = np.hypot(g.u.to_numpy() - cu, g.v.to_numpy() - cv)
        j = int(np.argmin(dist)) if len(dist) else -1
        if j >= 0 and dist[j] <= 0.6 * w:
            pid = int(g.id.iloc[j])
            r.update(frame=frame, person=pid, speaking=bool(g.speaking.iloc[j]),
                     speed=speed.get((frame, pid), math.nan), offset=float(dist[j] / w))
        else:
            r.update(frame=frame, person=-1, speaking=False, speed=math.nan, offset=math.nan)
    path = scene / "lips.pkl"
    with open(path, "wb") as f:
        pickle.dump(rows, f)
    return path


def _image_speed(gt) -> dict:
    """(frame, person) -> the face centre's image speed (px per frame, ground truth)."""
    out = {}
    for pid, g in gt.sort_values("frame").groupby("id"):
        u = g.u.to_numpy(float)
        v = g.v.to_numpy(float)
        s = np.hypot(np.gradient(u), np.gradient(v)) if len(u) > 1 else np.zeros(len(u))
        for f, x in zip(g.frame.to_numpy(int), s):
            out[(int(f), int(pid))] = float(x)
    return out


BINS = ((0.0, 2.0), (2.0, 10.0), (10.0, 25.0), (25.0, 1e9))


def show(out: Path, seeds, kinds) -> None:
    for kind in kinds:
        rows = []
        for seed in seeds:
            with open(out / f"{kind}_{seed}" / "lips.pkl", "rb") as f:
                rows += [dict(r, seed=seed) for r in pickle.load(f)]
        print(f"\n{kind} (seeds {' '.join(map(str, seeds))}): {len(rows)} face boxes, "
              f"{sum(r['person'] < 0 for r in rows)} unmatched")
        print("| speed px/frame | truth | boxes | known | mean llr | llr > 0 | mean llr > 0 "
              "| landmark noise (silent) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        noise = _landmark_noise(rows)
        for lo, hi in BINS:
            for truth in (False, True):
                sel = [r for r in rows if r["person"] >= 0 and r["speaking"] == truth
                       and lo <= r["speed"] < hi]
                if not sel:
                    continue
                known = [r for r in sel if r["rel"] > 0]
                llr = np.array([r["llr"] for r in known]) if known else np.zeros(0)
                pos = llr[llr > 0]
                nz = [x for (s, sp), x in noise if s == truth and lo <= sp < hi]
                print(f"| {lo:g}-{hi:g} | {'speaking' if truth else 'silent'} | {len(sel)} | "
                      f"{len(known) / len(sel):.2f} | {llr.mean() if len(llr) else math.nan:+.2f} "
                      f"| {np.mean(llr > 0) if len(llr) else math.nan:.2f} | "
                      f"{pos.mean() if len(pos) else math.nan:.2f} | "
                      f"{np.sqrt(np.mean(np.square(nz))) if nz else math.nan:.4f} |")


def _landmark_noise(rows):
    """((speaking, speed), (opening change) / sqrt 2) of consecutive meshed samples of
    one chain on one person."""
    out = []
    last = {}
    for r in sorted(rows, key=lambda r: (r["seed"], r["stamp"])):
        s = r["sample"]
        if s is None or not math.isfinite(s[0]) or r["person"] < 0:
            continue
        key = (r["seed"], r["chain"])
        prev = last.get(key)
        if prev is not None and prev[1] == r["person"] and r["stamp"] - prev[2] < 0.1:
            out.append(((r["speaking"], r["speed"]), (s[0] - prev[0]) / math.sqrt(2.0)))
        last[key] = (s[0], r["person"], r["stamp"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("dump", "match", "show"))
    ap.add_argument("path", type=Path, help="dump: the scene directory; show: OUT")
    ap.add_argument("--config")
    ap.add_argument("--fixed-frame")
    ap.add_argument("--seeds", type=int, nargs="+", default=[206, 207, 208])
    ap.add_argument("--kinds", nargs="+", default=["still", "pan"])
    a = ap.parse_args()
    if a.mode == "dump":
        print(dump(a.path, a.config, a.fixed_frame))
    elif a.mode == "match":
        with open(a.path / "lips_raw.pkl", "rb") as f:
            print(match(a.path, pickle.load(f)))
    else:
        show(a.path, a.seeds, a.kinds)


if __name__ == "__main__":
    main()
