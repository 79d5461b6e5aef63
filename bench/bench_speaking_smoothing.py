"""Offline speaking smoother (issue 18): speaking F1 of the causal filter (what the live
nodes publish) and of the track file smoothed at several lags, from one tracker run per
scene (BENCHMARKS.md, "Speaking status", "The offline smoother").

    PYTHONPATH=. python bench/bench_speaking_smoothing.py --out /tmp/smooth --seeds 311 312
    PYTHONPATH=. python bench/bench_speaking_smoothing.py --lags 0 1000   # report seeds

Per preset and seed: ``simulate --preset P --seed N`` (kept in OUT/P_N and reused), one
``process_bag`` with the speaking record (``tracking.speaking_smoothing_lag`` > 0), the
track file written once per lag from the record (lag 0: the causal filter, which the
record reproduces -- test_speaking_smoother.py), ``evaluate --json`` of each.  Prints
one row per scene and the mean and worst per preset and lag; MOTA and IDF1 are the same
for every lag (the rows and positions are).  Seeds 301-305 (the default) are never used
for tuning; tune on 311-320.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

PRESETS = ("one_bearing", "double_talk", "default", "hard")


def cli(*args):
    subprocess.run([sys.executable, "-m", "av_perception.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)


def measure(preset: str, seed: int, out: Path, tag: str, lags, config,
            filter_transitions: bool = False) -> dict:
    """{column: (speaking F1, precision, recall, MOTA, IDF1)} of one scene; a column is
    a lag (s) > 0 smoothed with ``tracking.speaking_smoothing_entry`` / ``_exit`` (lag 0:
    the causal filter, the tracker's transitions), and with
    ``filter_transitions`` also each lag > 0 smoothed with the tracker's transitions
    (column ``"<lag>f"``: the smoother before those parameters, from the same run)."""
    from av_perception.core.tf_masks import VoiceConfig
    from av_perception.io.params import load_offline_configs
    from av_perception.nodes.settings import TrackingNodeConfig
    from av_perception.offline import PROCESS_STAGES, process_bag, smooth_track_file
    from av_perception.pipeline import TrackingConfig

    d = out / f"{preset}_{seed}"
    if not (d / "bag").exists():
        cli("simulate", str(d), "--preset", preset, "--seed", str(seed), "--quiet",
            "--overwrite")
    configs = load_offline_configs(config, (*PROCESS_STAGES, TrackingNodeConfig,
                                            VoiceConfig))
    import dataclasses

    configs[TrackingConfig] = dataclasses.replace(configs[TrackingConfig],
                                                  speaking_smoothing_lag=1e6)
    written = d / f"tracks_{tag}_run.csv"
    result = process_bag(d / "bag", written, configs)
    res = {}
    smoother = configs[TrackingConfig].smoothing_transitions()
    # lag 0 is the causal filter as published (the tracker's transitions)
    columns = [(f"{lag:g}", lag, smoother if lag > 0.0 else (None, None)) for lag in lags]
    if filter_transitions:
        columns += [(f"{lag:g}f", lag, (None, None)) for lag in lags if lag > 0.0]
    for name, lag, transitions in columns:
        f = d / f"tracks_{tag}_lag{name}.csv"
        shutil.copy(written, f)
        smooth_track_file(f, result.speaking_rows,
                          result.speaking_record.smooth(lag, *transitions))
        ev = d / f"eval_{tag}_lag{name}.json"
        cli("evaluate", str(d), str(f), "--json", str(ev))
        e = json.loads(ev.read_text())
        s, t = e.get("speaking", {}), e.get("tracking", {})
        res[name] = tuple(x for x in (s.get("f1"), s.get("precision"), s.get("recall"),
                                     t.get("mota"), t.get("idf1")))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303, 304, 305])
    ap.add_argument("--lags", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1000.0],
                    help="lags (s) to write the track file at; 0 = the causal filter")
    ap.add_argument("--out", default="/tmp/speaking_smoothing")
    ap.add_argument("--tag", default="run", help="name of this version's files")
    ap.add_argument("--config", help="params file for process")
    ap.add_argument("--filter-transitions", action="store_true",
                    help="also smooth each lag > 0 with the tracker's transitions (column "
                         "'<lag>f')")
    a = ap.parse_args()
    out = Path(a.out)
    rows = {}
    for preset in a.presets:
        for seed in a.seeds:
            r = measure(preset, seed, out, a.tag, a.lags, a.config, a.filter_transitions)
            rows.setdefault(preset, []).append(r)
            first = next(iter(r.values()))
            print(preset, seed, " ".join(f"lag {name}: F1 {v[0]:.3f}" for name, v in r.items()),
                  f"MOTA {first[3]:.3f} IDF1 {first[4]:.3f}", flush=True)
    names = list(next(iter(rows.values()))[0]) if rows else []
    print(f"\n| preset | seeds | {' | '.join(f'F1 lag {name} s' for name in names)} "
          "| MOTA | IDF1 |")
    print("|---|---|" + "---:|" * (len(names) + 2))
    for preset, rs in rows.items():
        cells = []
        for name in names:
            v = [r[name][0] for r in rs]
            cells.append(f"{np.mean(v):.3f} ({min(v):.3f})")
        for k in (3, 4):
            v = [r[names[0]][k] for r in rs]
            cells.append(f"{np.mean(v):.3f} ({min(v):.3f})")
        print(f"| `{preset}` | {', '.join(map(str, a.seeds))} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
