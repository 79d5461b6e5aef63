"""The closed loop (issue 21): ``simulate --head-motion attention``, the simulated head
turned by the package's own attention target, on ``default`` scenes.

Per seed: ``simulate OUT --preset default --seed N --duration D --head-motion attention``
(pan limit +-40 deg, 60 deg/s, reaction delay 0.4 s), then ``process OUT/bag
--fixed-frame base_link --attention`` and ``evaluate`` of the bag the loop wrote (the
offline run of the same pipeline on the same data).  Prints: the head on the speaker
(the share of speaking time, without the first 1.5 s of each turn -- the 0.5 s reaction
of the attention target, the 0.4 s reaction delay of the head and up to 0.6 s of
turning --, in which the head's pan is within 5 deg of a talker's direction), the
attention metrics, MOTA and IDF1 in base_link, speaking F1, ID switches.

Run: ``OPENBLAS_NUM_THREADS=1 PYTHONPATH=. nice .venv/bin/python bench/bench_closed_loop.py
[--seeds 201 ...] [--duration 20] [--workdir DIR]``.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SETTLE = 1.5  # s after a turn starts that are not scored for the head


def head_on_speaker(scene_dir: Path, tolerance_deg: float = 5.0) -> tuple[float, float]:
    """(share of scored speaking frames with the pan within ``tolerance_deg`` of a
    talker, median pan error in degrees) from the ground truth (module docstring)."""
    from av_perception.sim import load_scene

    scene = load_scene(scene_dir)
    lines = [json.loads(x) for x in (scene_dir / "ground_truth.jsonl").read_text().split("\n")
             if x]
    starts = sorted(u.start for u in scene.utterances)
    errs = []
    for rec in lines:
        t = rec["stamp"] - scene.epoch
        talkers = [p for p in rec["people"] if p["speaking"]]
        last = max((s for s in starts if s <= t), default=None)
        if not talkers or last is None or t - last < SETTLE:
            continue
        pan = rec["head_pan"]
        errs.append(min(abs(pan - math.degrees(math.atan2(p["y"], p["x"]))) for p in talkers))
    errs = np.asarray(errs)
    if not len(errs):
        return float("nan"), float("nan")
    return float(np.mean(errs <= tolerance_deg)), float(np.median(errs))


def run_one(workdir: Path, seed: int, duration: float) -> dict:
    from av_perception.cli import main
    from av_perception.eval import evaluate_files

    out = workdir / f"default_{seed}"
    t0 = time.perf_counter()
    if not (out / "ground_truth.jsonl").exists():
        assert main(["simulate", str(out), "--preset", "default", "--seed", str(seed),
                     "--duration", str(duration), "--head-motion", "attention", "--quiet",
                     "--overwrite"]) == 0
    sim_wall = time.perf_counter() - t0
    tracks, att = out / "tracks.csv", out / "attention.csv"
    assert main(["process", str(out / "bag"), "-o", str(tracks), "--attention", str(att),
                 "--fixed-frame", "base_link", "-q"]) == 0
    m = evaluate_files(out, [tracks, att])
    on, err = head_on_speaker(out)
    a = m["attention"]
    return {"head_on_speaker": on, "head_error_median": err,
            "attention_on_speaker": a["on_speaker"], "switches_per_turn": a["switches_per_turn"],
            "max_switches_in_turn": a["max_switches_in_turn"], "mota": m["tracking"]["mota"],
            "idf1": m["tracking"]["idf1"], "id_switches": m["tracking"]["num_switches"],
            "speaking_f1": m["speaking"]["f1"], "simulate_rtf": duration / sim_wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[201, 202, 203, 204, 205])
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--workdir", default="/tmp/av_bench_closed_loop")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for seed in args.seeds:
        r = rows[seed] = run_one(workdir, seed, args.duration)
        print(seed, json.dumps({k: round(v, 4) for k, v in r.items()}), flush=True)
    print("\n| seed | head on the speaker | median pan error (deg) | attention on the speaker "
          "| switches per turn | most in one turn | MOTA | IDF1 | ID sw. | speaking F1 | "
          "closed loop x real time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for seed, r in rows.items():
        print(f"| {seed} | {r['head_on_speaker']:.3f} | {r['head_error_median']:.1f} | "
              f"{r['attention_on_speaker']:.3f} | {r['switches_per_turn']:.2f} | "
              f"{r['max_switches_in_turn']} | {r['mota']:.3f} | {r['idf1']:.3f} | "
              f"{r['id_switches']} | {r['speaking_f1']:.3f} | {r['simulate_rtf']:.2f} |")
    for key in ("head_on_speaker", "attention_on_speaker", "mota", "speaking_f1"):
        v = np.array([r[key] for r in rows.values()])
        print(f"{key}: mean {v.mean():.3f}, worst {v.min():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
