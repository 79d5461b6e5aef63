"""Attention target on simulated conversations: ``simulate`` + ``process --attention`` +
``evaluate`` per preset and seed, through the console commands.

Presets ``default`` (three people, overlapping turns with probability 0.25) and ``hard``
(four moving people, overlaps with probability 0.4, one talker out of view, fan, radio,
SNR 5 dB), 30 s each, seeds 201-205 (no default was tuned on them; the attention
defaults were set on ``default`` and ``hard`` seeds 50-52).  Metrics (``eval.attention``): fraction
of the speaking time, without the first 0.5 s of each turn, in which the attention is on
a person who speaks (target >= 0.90), switches between people per turn (target <= 1),
the most switches within one turn; real-time factor of ``process`` (wall clock, the
machine is shared) and the selector's own cost per tracker step.

Run: ``OPENBLAS_NUM_THREADS=1 PYTHONPATH=. nice .venv/bin/python bench/bench_attention.py
[--presets default hard] [--seeds 201 ...] [--duration 30] [--workdir DIR] [--json OUT]``.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SEEDS = (201, 202, 203, 204, 205)
PRESETS = ("default", "hard")
KEYS = ("on_speaker", "no_target", "switches_per_turn", "max_switches_in_turn", "rtf")


def selector_cost(tracks_csv) -> float:
    """Seconds per step of the AttentionSelector replayed over a track file."""
    from av_perception.core.attention import AttentionSelector
    from av_perception.eval.readers import read_tracks

    df = read_tracks(tracks_csv)
    steps = [(t, g["track_id"].to_numpy(), g[["x", "y", "z"]].to_numpy(),
              g["speaking"].to_numpy()) for t, g in df.groupby("stamp", sort=True)]
    sel = AttentionSelector()
    t0 = time.perf_counter()
    for step in steps:
        sel.update(*step)
    return (time.perf_counter() - t0) / max(len(steps), 1)


def run_one(workdir: Path, preset: str, seed: int, duration: float) -> dict:
    from av_perception.cli import main
    from av_perception.eval import evaluate_files

    scene = workdir / f"{preset}_{seed}"
    if not (scene / "ground_truth.jsonl").exists():
        assert main(["simulate", str(scene), "--preset", preset, "--seed", str(seed),
                     "--duration", str(duration)]) == 0
    tracks, att = scene / "tracks.csv", scene / "attention.csv"
    t0 = time.perf_counter()
    assert main(["process", str(scene / "bag"), "--output", str(tracks), "--attention",
                 str(att), "-q"]) == 0
    wall = time.perf_counter() - t0
    m = evaluate_files(scene, [tracks, att])
    a = m["attention"]
    return {**{k: a[k] for k in ("on_speaker", "no_target", "switches", "turns",
                                 "switches_per_turn", "max_switches_in_turn",
                                 "turns_with_extra_switches", "target_changes")},
            "mota": m["tracking"]["mota"], "speaking_f1": m["speaking"]["f1"],
            "rtf": duration / wall, "selector_us": 1e6 * selector_cost(tracks)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--workdir", default="/tmp/av_bench_attention")
    ap.add_argument("--json", help="write every run's metrics here")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for preset in args.presets:
        for seed in args.seeds:
            r = run_one(workdir, preset, seed, args.duration)
            results.setdefault(preset, {})[seed] = r
            print(f"{preset:8s} seed {seed}: on speaker {r['on_speaker']:.3f}  no target "
                  f"{r['no_target']:.3f}  switches {r['switches']}/{r['turns']} turns "
                  f"({r['switches_per_turn']:.2f}, max {r['max_switches_in_turn']} in one)  "
                  f"MOTA {r['mota']:.3f}  speaking F1 {r['speaking_f1']:.3f}  "
                  f"{r['rtf']:.2f}x real time  selector {r['selector_us']:.0f} us/step",
                  flush=True)
    print("\n| preset | on speaker mean (worst) | no target mean | switches/turn mean "
          "(worst) | most in one turn | speaking F1 mean | real-time factor mean |")
    print("|---|---|---|---|---|---|---|")
    for preset, runs in results.items():
        v = {k: np.array([r[k] for r in runs.values()], dtype=float)
             for k in ("on_speaker", "no_target", "switches_per_turn",
                       "max_switches_in_turn", "speaking_f1", "rtf")}
        print(f"| {preset} | {v['on_speaker'].mean():.3f} ({v['on_speaker'].min():.3f}) | "
              f"{v['no_target'].mean():.3f} | {v['switches_per_turn'].mean():.2f} "
              f"({v['switches_per_turn'].max():.2f}) | {int(v['max_switches_in_turn'].max())} | "
              f"{v['speaking_f1'].mean():.3f} | {v['rtf'].mean():.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
