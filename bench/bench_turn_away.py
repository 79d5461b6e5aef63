"""People who turn their head away: do they keep their track? Body cue on vs off
(BENCHMARKS.md, "Turning away").

    PYTHONPATH=. python bench/bench_turn_away.py --seeds 401 402 403 404 405 --out /tmp/turn_away

Per seed: ``simulate --preset default --turn-away`` (15 s; every person turns away once
or twice for 1-3 s), then the whole offline pipeline (``process``, in this process) with
the defaults (body cue on) and with ``body.enabled: false``, and ``evaluate --json``.
Per run it prints:

* kept: turn-away episodes (<= 3 s) in which the person has the same track id before
  (the last 0.5 s before turning away) and after (0.5-1.5 s after turning back) -- the
  id matched to the person most often in each window (nearest track within 0.5 m);
  an episode whose person is matched to no track before it is not judged;
* covered: fraction of the turned-away frames in which a track is within 0.5 m of the
  person;
* MOTA, IDF1, ID switches, false positive track rows (``evaluate``: against the visible
  people) and stray rows (farther than 0.5 m from every person, visible or not: a person
  whose face is occluded is still there);
* false observations: visual observations farther than 0.5 m from every person, visible
  or not (all kinds, and of kind ``body``);
* CPU s per scene s of ``process`` (audio, vision, tracking; this process's CPU time).

``--cost``: the visual front-end alone (``detection.every_k`` 1: detection on every
frame, OpenCV on one thread) over each scene's bag, with the tracks of the ``process``
run fed back as in ``process``; CPU ms per frame with the cue off and on and the cue's
own time.  ``--set section.field value`` (repeatable) changes the cue-on run (tuning:
seeds 11-15 only).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GATE = 0.5  # m


def run_cli(*args):
    subprocess.run([sys.executable, "-m", "av_perception.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)


def load_truth(scene_dir: Path, visible_only: bool = True):
    """Frame stamps and {person: (frames, 3)} face centres (NaN where not visible, unless
    ``visible_only`` is False: where the person physically is)."""
    rows = [json.loads(x) for x in (scene_dir / "ground_truth.jsonl").read_text().split("\n")
            if x]
    stamps = np.array([r["stamp"] for r in rows])
    people = {}
    for k, r in enumerate(rows):
        for p in r["people"]:
            people.setdefault(p["id"], np.full((len(rows), 3), np.nan))[k] = \
                (p["x"], p["y"], p["z"]) if p["visible"] or not visible_only else (np.nan,) * 3
    return stamps, people


def load_tracks(path: Path):
    data = np.genfromtxt(path, delimiter=",", names=True)
    data = np.atleast_1d(data)
    return data["stamp"], data["track_id"].astype(int), np.column_stack(
        [data["x"], data["y"], data["z"]])


def matched_ids(t_stamps, t_ids, t_xyz, stamp, xyz):
    """Id of the nearest track within GATE of ``xyz`` at ``stamp`` (None: none)."""
    sel = np.abs(t_stamps - stamp) < 1e-3
    if not sel.any() or not np.all(np.isfinite(xyz)):
        return None
    d = np.linalg.norm(t_xyz[sel] - xyz, axis=1)
    k = int(np.argmin(d))
    return int(t_ids[sel][k]) if d[k] <= GATE else None


def episodes(scene_dir: Path, tracks: Path, max_length: float = 3.0):
    """[(person, start, end, id before, id after, covered fraction)] of each episode."""
    scene = json.loads((scene_dir / "scene.json").read_text())
    stamps, people = load_truth(scene_dir)
    t0 = scene["epoch"]
    ts, ids, xyz = load_tracks(tracks)
    out = []
    rel = stamps - t0
    for p in scene["people"]:
        for a, b in p.get("turn_away", []):
            if b - a > max_length + 1e-9:
                continue

            def window(lo, hi, pid=p["id"]):
                got = [matched_ids(ts, ids, xyz, stamps[k], people[pid][k])
                       for k in np.flatnonzero((rel >= lo) & (rel < hi))]
                got = [g for g in got if g is not None]
                return max(set(got), key=got.count) if got else None

            during = [matched_ids(ts, ids, xyz, stamps[k], people[p["id"]][k])
                      for k in np.flatnonzero((rel >= a) & (rel < b))]
            covered = sum(g is not None for g in during) / max(len(during), 1)
            out.append((p["id"], a, b, window(a - 0.5, a), window(b + 0.5, b + 1.5), covered))
    return out


def false_observations(scene_dir: Path, observations):
    """Observations farther than GATE from every person (visible or not: a person whose
    face is occluded is still there), all kinds and of kind body."""
    stamps, people = load_truth(scene_dir, visible_only=False)
    pos = np.stack(list(people.values()), axis=1)  # (frames, people, 3)
    n_all = n_body = 0
    for obs in observations:
        k = int(np.argmin(np.abs(stamps - obs.stamp)))
        for x, kind in zip(obs.xyz, obs.kind):
            d = np.linalg.norm(pos[k] - x, axis=1)
            if not np.any(d[np.isfinite(d)] <= GATE):
                n_all += 1
                n_body += kind == "body"
    return n_all, n_body


def stray_rows(scene_dir: Path, tracks: Path) -> int:
    """Track rows farther than GATE from every person, visible or not (``evaluate``'s
    false positives also count the rows on a person whose face is hidden)."""
    stamps, people = load_truth(scene_dir, visible_only=False)
    pos = np.stack(list(people.values()), axis=1)
    ts, _, xyz = load_tracks(tracks)
    n = 0
    for t, x in zip(ts, xyz):
        k = int(np.argmin(np.abs(stamps - t)))
        if not np.any(np.linalg.norm(pos[k] - x, axis=1) <= GATE):
            n += 1
    return n


def process(bag: Path, out_csv: Path, body_on: bool, sets: dict):
    from av_perception.core.body_cue import BodyCueConfig
    from av_perception.offline import process_bag

    fields = dict(sets) if body_on else {}
    configs = {BodyCueConfig: BodyCueConfig(enabled=body_on, **fields)}
    kept = []
    c0 = time.process_time()
    process_bag(bag, out_csv, configs, on_observations=kept.append)
    return time.process_time() - c0, kept


def cost(bag: Path, tracks_csv: Path, body_on: bool):
    """CPU ms per frame of the front-end (detection every frame) and of the cue."""
    import cv2

    from av_perception.core.body_cue import BodyCue, BodyCueConfig
    from av_perception.core.detection import DetectionConfig
    from av_perception.io.stereo_sources import BagStereoSource
    from av_perception.pipeline import VisionPipeline

    cv2.setNumThreads(1)
    ts, ids, xyz = load_tracks(tracks_csv)
    vision = VisionPipeline(detection=DetectionConfig(every_k=1),
                            body=BodyCueConfig(enabled=body_on))
    vision.warm_up()
    cue = [0.0]
    observe = BodyCue.observe  # timed on the class: the first pair rebuilds the front-end

    def timed(*a, **k):
        c = time.process_time()
        r = observe(*a, **k)
        cue[0] += time.process_time() - c
        return r
    BodyCue.observe = timed
    n = 0
    total = 0.0
    prev = None
    with BagStereoSource(bag) as source:
        for stamp, left, right, calibration in source:
            if prev is not None:  # the tracker's output of the previous frame
                sel = np.abs(ts - prev) < 1e-3
                vision.heads.update(prev, xyz[sel], None, None, ids[sel])
            c = time.process_time()
            vision.process_pair(left, right, stamp, calibration)
            total += time.process_time() - c
            n += 1
            prev = stamp
    BodyCue.observe = observe
    return 1000 * total / n, 1000 * cue[0] / n, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[401, 402, 403, 404, 405])
    ap.add_argument("--out", default="/tmp/turn_away_bench")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--set", nargs=2, action="append", default=[], metavar=("FIELD", "VALUE"),
                    help="body.FIELD VALUE for the cue-on run")
    ap.add_argument("--cost", action="store_true")
    a = ap.parse_args()
    sets = {}
    for k, v in a.set:
        k = k.removeprefix("body.")
        sets[k] = json.loads(v) if v[:1] in "0123456789-tf[" else v
    out = Path(a.out)
    summary = {"on": [], "off": []}
    for seed in a.seeds:
        d = out / f"{a.preset}_{seed}"
        if not (d / "bag").exists():
            run_cli("simulate", str(d), "--preset", a.preset, "--seed", str(seed),
                    "--duration", str(a.duration), "--turn-away", "--quiet", "--overwrite")
        for mode in ("off", "on"):
            tracks = d / f"tracks_{mode}.csv"
            if a.cost:
                if not tracks.exists():
                    process(d / "bag", tracks, mode == "on", sets)
                ms, cue_ms, n = cost(d / "bag", tracks, mode == "on")
                print(f"{seed} {mode}: front-end {ms:.1f} ms CPU/frame ({1000 / ms:.1f} fps), "
                      f"body cue {cue_ms:.2f} ms/frame, {n} frames", flush=True)
                continue
            cpu, observations = process(d / "bag", tracks, mode == "on", sets)
            run_cli("evaluate", str(d), str(tracks), "--json", str(d / f"eval_{mode}.json"))
            ev = json.loads((d / f"eval_{mode}.json").read_text())["tracking"]
            eps = episodes(d, tracks)
            judged = [e for e in eps if e[3] is not None]
            kept = sum(e[3] == e[4] for e in judged)
            fo, fo_body = false_observations(d, observations)
            row = dict(seed=seed, episodes=len(eps), judged=len(judged), kept=kept,
                       covered=float(np.mean([e[5] for e in eps])) if eps else float("nan"),
                       mota=ev["mota"], idf1=ev["idf1"], switches=ev["num_switches"],
                       fp=ev["num_false_positives"], stray=stray_rows(d, tracks),
                       false_obs=fo, false_body=fo_body,
                       cpu_per_s=cpu / a.duration)
            summary[mode].append(row)
            print(mode, json.dumps(row), "episodes:", eps, flush=True)
    if a.cost:
        return
    print("\n| seed | cue | kept / judged | covered | MOTA | IDF1 | ID sw. | FP rows (stray) | "
          "false obs. (body) | CPU s/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in ("off", "on"):
        for r in summary[mode]:
            print(f"| {r['seed']} | {mode} | {r['kept']} / {r['judged']} | {r['covered']:.2f} | "
                  f"{r['mota']:.3f} | {r['idf1']:.3f} | {r['switches']} | {r['fp']} "
                  f"({r['stray']}) | "
                  f"{r['false_obs']} ({r['false_body']}) | {r['cpu_per_s']:.2f} |")
    for mode in ("off", "on"):
        rs = summary[mode]
        kept = sum(r["kept"] for r in rs)
        judged = sum(r["judged"] for r in rs)
        frac = [r["kept"] / r["judged"] for r in rs if r["judged"]]
        print(f"{mode}: kept {kept}/{judged} = {kept / max(judged, 1):.3f} (worst seed "
              f"{min(frac):.3f}); covered mean {np.mean([r['covered'] for r in rs]):.2f}; "
              f"MOTA mean {np.mean([r['mota'] for r in rs]):.3f} worst "
              f"{min(r['mota'] for r in rs):.3f}; IDF1 mean "
              f"{np.mean([r['idf1'] for r in rs]):.3f} worst {min(r['idf1'] for r in rs):.3f}; "
              f"false obs. {sum(r['false_obs'] for r in rs)} (body "
              f"{sum(r['false_body'] for r in rs)}); FP rows {sum(r['fp'] for r in rs)} (stray "
              f"{sum(r['stray'] for r in rs)}); "
              f"CPU {np.mean([r['cpu_per_s'] for r in rs]):.2f} s/s")


if __name__ == "__main__":
    main()
