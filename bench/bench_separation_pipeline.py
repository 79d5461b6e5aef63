"""Separation through the whole pipeline: ``simulate`` a preset, ``separate`` its bag (the
tracker's own tracks and speaking status), score each person's voice.

Per person with sound: the track whose voice has the best SI-SDR against the person's
image (left microphone) is theirs; the SI-SDR gain (voice minus mixture) is measured over
the samples where the person talks alone (no other image active) and where another talks
too.  Configs: ``defaults`` (the voices defaults), ``nogate`` (``voices.speaking_gate``
0: every track modelled) and ``main`` (main's former voices: ``mask``, one prior per
window, no gate).  Run:

    PYTHONPATH=. .venv/bin/python bench/bench_separation_pipeline.py
        [--preset two_static double_talk] [--seeds 403 404 405] [--duration 8]
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.io.wavfile  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_separation as BS  # noqa: E402

from av_perception.cli import main as cli  # noqa: E402

CONFIGS = {
    "defaults": {},
    "nogate": {"speaking_gate": 0.0},
    "main": {k: v for k, v in BS.BASELINE.items()},
}


def _yaml(params: dict, path: Path) -> Path:
    lines = ["/**:", "  ros__parameters:", "    voices:"]
    lines += [f"      {k}: {v}" for k, v in params.items()] or ["      window: 0.4"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _wavs(folder: Path, prefix: str) -> dict:
    return {int(p.stem.split("_")[-1]): scipy.io.wavfile.read(p)[1].astype(np.float64)
            for p in folder.glob(f"{prefix}_*.wav")}


def run(preset, seed, duration, work: Path) -> list:
    scene = work / f"{preset}_{seed}"
    assert cli(["simulate", str(scene), "--preset", preset, "--seed", str(seed),
                "--duration", str(duration), "--quiet", "--overwrite"]) == 0
    fs, mix = scipy.io.wavfile.read(scene / "audio.wav")
    mix = mix.astype(np.float64)
    images = {p: x[:, 0] for p, x in _wavs(scene / "images", "person").items()}
    active = {p: BS.active_samples(x, fs) if np.any(x) else np.zeros(len(x), bool)
              for p, x in images.items()}
    rows = []
    for name, params in CONFIGS.items():
        out = work / f"{preset}_{seed}_{name}"
        assert cli(["separate", str(scene / "bag"), "--output", str(out), "--config",
                    str(_yaml(params, work / f"{name}.yaml")), "-q"]) == 0
        voices = _wavs(out, "voice")
        for p, ref in images.items():
            if not active[p].any() or not voices:
                continue
            others = np.any([active[q] for q in images if q != p], axis=0)
            tid = max(voices, key=lambda t: BS.si_sdr(voices[t], ref, active[p])  # noqa: B023
                      if np.any(voices[t][active[p]]) else -np.inf)  # noqa: B023
            for case, sel in (("alone", active[p] & ~others), ("both", active[p] & others)):
                if sel.sum() < fs // 2:
                    continue
                gain = BS.si_sdr(voices[tid], ref, sel) - BS.si_sdr(mix[:, 0], ref, sel)
                rows.append(dict(config=name, preset=preset, seed=seed, person=p, case=case,
                                 seconds=sel.sum() / fs, gain=gain))
                print(f"{name:8s} {preset} seed {seed} person {p} {case:5s} "
                      f"({sel.sum() / fs:.1f} s): {gain:+.2f} dB", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", nargs="+", default=["two_static", "double_talk"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[403, 404, 405])
    ap.add_argument("--duration", type=float, default=8.0)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.preset:
            for seed in args.seeds:
                rows += run(preset, seed, args.duration, Path(tmp))
    lines = ["| preset | voices | case | spans | SI-SDR gain mean (dB) | worst |",
             "|---|---|---|---|---|---|"]
    for preset in args.preset:
        for name in CONFIGS:
            for case in ("both", "alone"):
                g = [r["gain"] for r in rows if r["preset"] == preset
                     and r["config"] == name and r["case"] == case]
                if g:
                    lines.append(f"| {preset} | {name} | {case} | {len(g)} | "
                                 f"{np.mean(g):+.2f} | {np.min(g):+.2f} |")
    table = "\n".join(lines)
    print(table)
    BS.RESULTS.mkdir(exist_ok=True)
    (BS.RESULTS / "bench_separation_pipeline.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
