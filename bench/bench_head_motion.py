"""Head motion: tracking in the fixed frame with a panning head vs the same scenes with a
still head (BENCHMARKS.md, "Head motion").

    PYTHONPATH=. python bench/bench_head_motion.py --seeds 201 202 203 204 205 --out /tmp/hm
    PYTHONPATH=. python bench/bench_head_motion.py --preset two_static --pan 15 --out /tmp/hm2

Per seed: ``simulate --preset default --duration 10`` still, and the same scene with
``--head-motion scripted --pan 40 --head-speed 60`` (pan +-40 deg, up to 60 deg/s);
``process --attention`` (the pan with ``--fixed-frame base_link``), ``evaluate --json``
with the attention file; prints MOTA, IDF1, ID switches, speaking F1 and the attention
(fraction of the speaking time on a speaker after a 0.5 s reaction, switches per turn)
of both and their differences; with ``--causal`` also the speaking F1 of the causal filter
(what the live nodes publish) from the same tracker run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def run(*args):
    subprocess.run([sys.executable, "-m", "av_perception.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[201, 202, 203, 204, 205])
    ap.add_argument("--out", default="/tmp/head_motion_bench")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--config", help="params file for process")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--pan", type=float, default=40.0, help="pan amplitude, degrees")
    ap.add_argument("--causal", action="store_true",
                    help="also the causal filter's speaking F1 (what the nodes publish) from "
                         "the same run: tracks_causal.csv, eval_causal.json")
    a = ap.parse_args()
    out = Path(a.out)
    rows = []
    for seed in a.seeds:
        res = {}
        for kind in ("still", "pan"):
            d = out / f"{kind}_{seed}"
            extra = ["--head-motion", "scripted", "--pan", str(a.pan), "--head-speed", "60"] \
                if kind == "pan" else []
            if not (d / "bag").exists():
                run("simulate", str(d), "--preset", a.preset, "--seed", str(seed),
                    "--duration", str(a.duration), "--quiet", "--overwrite", *extra)
            tracks = d / "tracks.csv"
            cfg = ["--config", a.config] if a.config else []
            ff = ["--fixed-frame", "base_link"] if kind == "pan" else []
            att = d / "attention.csv"
            if a.causal:
                _process_both(d, a.config, kind == "pan")
                run("evaluate", str(d), str(d / "tracks_causal.csv"), str(att), "--json",
                    str(d / "eval_causal.json"))
                res[kind + "_causal"] = json.loads((d / "eval_causal.json").read_text())
            else:
                run("process", str(d / "bag"), "-o", str(tracks), "--attention", str(att),
                    "--quiet", *ff, *cfg)
            run("evaluate", str(d), str(tracks), str(att), "--json", str(d / "eval.json"))
            res[kind] = json.loads((d / "eval.json").read_text())
        for kind in ("still", "pan"):
            res[kind]["visible"] = _visible_fraction(out / f"{kind}_{seed}")
        rows.append((seed, res))
        print(seed, json.dumps({k: _summary(v) for k, v in res.items()}), flush=True)
    print("\n| seed | MOTA still | MOTA pan | IDF1 still | IDF1 pan | ID sw. still | ID sw. pan "
          "| speaking F1 still | speaking F1 pan | attention on speaker still | pan "
          "| switches per turn still | pan | in view still | in view pan |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for seed, r in rows:
        s, p = _summary(r["still"]), _summary(r["pan"])
        print(f"| {seed} | {s['mota']:.3f} | {p['mota']:.3f} | {s['idf1']:.3f} | "
              f"{p['idf1']:.3f} | {s['num_switches']} | {p['num_switches']} | {s['f1']:.3f} | "
              f"{p['f1']:.3f} | {s['on_speaker']:.3f} | {p['on_speaker']:.3f} | "
              f"{s['switches_per_turn']:.2f} | {p['switches_per_turn']:.2f} | "
              f"{s['visible']:.2f} | {p['visible']:.2f} |")
    for name, key in (("MOTA", "mota"), ("IDF1", "idf1"), ("speaking F1", "f1"),
                      ("attention on the speaker", "on_speaker")):
        d = [_summary(r["pan"])[key] - _summary(r["still"])[key] for _, r in rows]
        print(f"{name} pan - still: mean {sum(d) / len(d):+.3f}, worst {min(d):+.3f}")
    for kind in ("still", "pan"):
        on = [_summary(r[kind])["on_speaker"] for _, r in rows]
        spt = [_summary(r[kind])["switches_per_turn"] for _, r in rows]
        most = [_summary(r[kind])["max_switches_in_turn"] for _, r in rows]
        print(f"attention {kind}: on the speaker mean {np.mean(on):.3f} worst {min(on):.3f}; "
              f"switches per turn mean {np.mean(spt):.2f} worst {max(spt):.2f}; most in one "
              f"turn {max(most)}")
    if a.causal:
        for kind in ("still", "pan"):
            f1 = [_summary(r[kind + "_causal"])["f1"] for _, r in rows]
            print(f"speaking F1 causal {kind}: " + " ".join(f"{x:.3f}" for x in f1))
        d = [_summary(r["pan_causal"])["f1"] - _summary(r["still_causal"])["f1"]
             for _, r in rows]
        print(f"speaking F1 causal pan - still: mean {sum(d) / len(d):+.3f}, worst "
              f"{min(d):+.3f}")
    sw = [_summary(r["pan"])["num_switches"] for _, r in rows]
    print(f"ID switches with the pan: total {sum(sw)}, worst {max(sw)}")


def _process_both(d: Path, config: str | None, pan: bool) -> None:
    """``process`` (as the command, ``--fixed-frame base_link`` with the pan) into
    d/tracks.csv (smoothed speaking) and d/attention.csv, and the same rows with the
    causal filter's speaking column into d/tracks_causal.csv (one tracker run)."""
    import dataclasses
    import shutil

    from av_perception.io.params import load_offline_configs
    from av_perception.offline import PROCESS_STAGES, process_bag, smooth_track_file
    from av_perception.pipeline import TrackingConfig

    configs = load_offline_configs(config, PROCESS_STAGES)
    tc = configs[TrackingConfig]
    if tc.speaking_smoothing_lag <= 0.0:
        raise SystemExit("--causal needs tracking.speaking_smoothing_lag > 0 in --config")
    if pan:
        configs[TrackingConfig] = dataclasses.replace(tc, fixed_frame="base_link")
    res = process_bag(d / "bag", d / "tracks.csv", configs,
                      attention_output=d / "attention.csv")
    shutil.copy(d / "tracks.csv", d / "tracks_causal.csv")
    smooth_track_file(d / "tracks_causal.csv", res.speaking_rows,
                      res.speaking_record.smooth(0.0, None, None))


def _visible_fraction(scene_dir: Path) -> float:
    lines = [json.loads(x) for x in (scene_dir / "ground_truth.jsonl").read_text().split("\n")
             if x]
    seen = [p["visible"] for rec in lines for p in rec["people"]]
    return sum(seen) / max(len(seen), 1)


def _summary(ev):
    t = ev.get("tracking", ev)
    s = ev.get("speaking", {})
    a = ev.get("attention", {})
    return ({k: t.get(k) for k in ("mota", "idf1", "num_switches")}
            | {"f1": s.get("f1"), "visible": ev.get("visible", float("nan"))}
            | {k: a.get(k, float("nan")) for k in ("on_speaker", "switches_per_turn",
                                                    "max_switches_in_turn")})


if __name__ == "__main__":
    main()
