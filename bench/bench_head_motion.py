"""Head motion: tracking in the fixed frame with a panning head vs the same scenes with a
still head (BENCHMARKS.md, "Head motion").

    PYTHONPATH=. python bench/bench_head_motion.py --seeds 201 202 203 204 205 --out /tmp/hm

Per seed: ``simulate --preset default --duration 10`` still, and the same scene with
``--head-motion scripted --pan 40 --head-speed 60`` (pan +-40 deg, up to 60 deg/s);
``process`` (the pan with ``--fixed-frame base_link``), ``evaluate --json``; prints
MOTA, IDF1, ID switches and speaking F1 of both and their differences.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(*args):
    subprocess.run([sys.executable, "-m", "av_perception.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[201, 202, 203, 204, 205])
    ap.add_argument("--out", default="/tmp/head_motion_bench")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--config", help="params file for process")
    a = ap.parse_args()
    out = Path(a.out)
    rows = []
    for seed in a.seeds:
        res = {}
        for kind in ("still", "pan"):
            d = out / f"{kind}_{seed}"
            extra = ["--head-motion", "scripted", "--pan", "40", "--head-speed", "60"] \
                if kind == "pan" else []
            if not (d / "bag").exists():
                run("simulate", str(d), "--preset", "default", "--seed", str(seed),
                    "--duration", str(a.duration), "--quiet", "--overwrite", *extra)
            tracks = d / "tracks.csv"
            cfg = ["--config", a.config] if a.config else []
            ff = ["--fixed-frame", "base_link"] if kind == "pan" else []
            run("process", str(d / "bag"), "-o", str(tracks), "--quiet", *ff, *cfg)
            run("evaluate", str(d), str(tracks), "--json", str(d / "eval.json"))
            res[kind] = json.loads((d / "eval.json").read_text())
        rows.append((seed, res))
        print(seed, json.dumps({k: _summary(v) for k, v in res.items()}), flush=True)
    print(json.dumps([(s, {k: _summary(v) for k, v in r.items()}) for s, r in rows]))


def _summary(ev):
    t = ev.get("tracking", ev)
    s = ev.get("speaking", {})
    return {k: t.get(k) for k in ("mota", "idf1", "num_switches")} | {"f1": s.get("f1")}


if __name__ == "__main__":
    main()
