"""Who is speaking (issue 18): speaking F1, precision and recall, MOTA and IDF1 of the
full pipeline on the presets where it is hard (BENCHMARKS.md, "Speaking status").

    PYTHONPATH=. python bench/bench_speaking.py --out /tmp/speak
    PYTHONPATH=. python bench/bench_speaking.py --presets one_bearing --seeds 0 1 2 3 4

Per preset and seed: ``simulate --preset P --seed N`` (default duration; kept in
OUT/P_N and reused when it is there), ``process`` (``--config`` to try parameters;
``--tag`` names the track file, so that two versions can be compared on the same scenes),
``evaluate --json``; prints one row per run and the mean and worst per preset.  Seeds
301-305 (the default) are never used for tuning; tune on 0-4.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PRESETS = ("one_bearing", "double_talk", "default", "hard")
KEYS = ("f1", "precision", "recall", "mota", "idf1")


def run(*args):
    subprocess.run([sys.executable, "-m", "av_perception.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)


def measure(preset: str, seed: int, out: Path, tag: str, config: str | None) -> dict:
    """simulate (once) + process + evaluate; the evaluation's summary."""
    d = out / f"{preset}_{seed}"
    if not (d / "bag").exists():
        run("simulate", str(d), "--preset", preset, "--seed", str(seed), "--quiet",
            "--overwrite")
    tracks = d / f"tracks_{tag}.csv"
    ev = d / f"eval_{tag}.json"
    if not ev.exists():
        cfg = ["--config", config] if config else []
        run("process", str(d / "bag"), "-o", str(tracks), "--quiet", *cfg)
        run("evaluate", str(d), str(tracks), "--json", str(ev))
    return summary(json.loads(ev.read_text()))


def summary(ev: dict) -> dict:
    t = ev.get("tracking", {})
    s = ev.get("speaking", {})
    return {"f1": s.get("f1"), "precision": s.get("precision"), "recall": s.get("recall"),
            "mota": t.get("mota"), "idf1": t.get("idf1")}


def _f(x):
    return "nan" if x is None else f"{x:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303, 304, 305])
    ap.add_argument("--out", default="/tmp/speaking_bench")
    ap.add_argument("--tag", default="run", help="name of this version's track files")
    ap.add_argument("--config", help="params file for process")
    a = ap.parse_args()
    out = Path(a.out)
    rows = {}
    for preset in a.presets:
        for seed in a.seeds:
            r = measure(preset, seed, out, a.tag, a.config)
            rows.setdefault(preset, []).append((seed, r))
            print(preset, seed, " ".join(f"{k} {_f(r[k])}" for k in KEYS), flush=True)
    print(f"\n| preset | seeds | {' | '.join(f'{k} mean (worst)' for k in KEYS)} |")
    print("|---|---|" + "---:|" * len(KEYS))
    for preset, rs in rows.items():
        cells = []
        for k in KEYS:
            v = [r[k] for _, r in rs if r[k] is not None]
            cells.append(f"{sum(v) / len(v):.3f} ({min(v):.3f})" if v else "nan")
        print(f"| `{preset}` | {', '.join(str(s) for s, _ in rs)} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
