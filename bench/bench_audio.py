"""Audio front-end benchmark: speed and direction-of-arrival accuracy.

    .venv/bin/python bench/bench_audio.py [--quick] [--out bench/results/audio.md]

Speed: frames/s of feature extraction on one core (numba kernel, plain-numpy
reference) against pyroomacoustics' SRP-PHAT and MUSIC on the same STFT frames
(one DOA per block of 4 frames for them, which favours them), and the real-time
factor.  Accuracy: azimuth error on simulated rooms (pyroomacoustics image
source, one talker) for our front-end with and without direct-path weighting and
for pyroomacoustics' two-microphone DOA methods given the same frames.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from doa_scenes import FS, estimate_azimuth, grid, scene  # noqa: E402

from av_perception.core.audio import BinauralFrontEnd  # noqa: E402
from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig  # noqa: E402

PRA_METHODS = ("SRP", "MUSIC", "NormMUSIC", "TOPS")
BLOCK = 4  # frames per pyroomacoustics estimate


def pra_doa(method: str, mics: MicArrayConfig):
    import pyroomacoustics as pra

    positions = np.array([[mics.left[0], mics.right[0]], [mics.left[2], mics.right[2]]])
    grid_deg = np.arange(0.0, 180.5, 0.5)  # front half plane: pra angle = azimuth + 90
    return pra.doa.algorithms[method](positions, FS, 512, c=mics.speed_of_sound, num_src=1,
                                      azimuth=np.radians(grid_deg))


def stft_frames(y: np.ndarray, fe: BinauralFrontEnd) -> np.ndarray:
    """(2, B, F) spectra with the front-end's own framing and window."""
    from av_perception.core.audio import frame_signal

    frames = frame_signal(y, 512, 256)
    spec_l, spec_r = fe.spectra(frames)
    return np.stack([spec_l.T, spec_r.T])


def pra_estimate(doa, X, active) -> float:
    """Azimuth (deg) from the active frames of X (2, B, F)."""
    doa.locate_sources(X[:, :, active], freq_range=[150.0, 7500.0])
    return float(np.degrees(doa.azimuth_recon[0]) - 90.0)


def bench_speed(seconds: float = 20.0) -> list[tuple[str, float]]:
    y = scene(30.0, 2.0, 0.3, 20.0, seed=1, duration=seconds)
    rows = []
    for name, numba in (("av_perception (numba)", True), ("av_perception (numpy reference)",
                                                          False)):
        fe = BinauralFrontEnd(use_numba=numba)
        fe.warm_up()
        best = np.inf
        for _ in range(3):
            fe.reset()
            t0 = time.perf_counter()
            f = fe.process(y, FS, 0.0)
            best = min(best, time.perf_counter() - t0)
        rows.append((name, len(f) / best))
    fe = BinauralFrontEnd()
    X = stft_frames(y, fe)
    n = X.shape[2]
    for method in ("SRP", "MUSIC"):
        doa = pra_doa(method, MicArrayConfig())
        t0 = time.perf_counter()
        for i in range(0, n - BLOCK, BLOCK):
            doa.locate_sources(X[:, :, i:i + BLOCK], freq_range=[150.0, 7500.0])
        dt = time.perf_counter() - t0
        rows.append((f"pyroomacoustics {method} (1 DOA / {BLOCK} frames, STFT excluded)",
                     (n - BLOCK) / dt))
    return rows


def bench_accuracy(quick: bool):
    if quick:
        scenes = grid(rt60s=(0.0, 0.3, 0.6), snrs=(10.0, 20.0), distances=(1.0, 3.0),
                      azimuths=(-40.0, 14.0, 60.0))
    else:
        scenes = grid()
    mics = MicArrayConfig()
    ours = {"av_perception, default (CDR+onset, precedence memory)": AudioFrontEndConfig(),
            "av_perception, coherence weighting (default before issue 19)": AudioFrontEndConfig(
                direct_path_weighting="coherence", precedence_time=0.0),
            "av_perception, plain GCC-PHAT": AudioFrontEndConfig(direct_path_weighting="none",
                                                                 precedence_time=0.0),
            "av_perception, coherence+onset": AudioFrontEndConfig(
                direct_path_weighting="coherence+onset", precedence_time=0.0)}
    errors = {k: [] for k in list(ours) + [f"pyroomacoustics {m}" for m in PRA_METHODS]}
    frame_errors = {k: [] for k in ours}
    block_errors = {k: [] for k in errors}
    conditions = []
    doas = {m: pra_doa(m, mics) for m in PRA_METHODS}
    for i, (rt60, snr, dist, az) in enumerate(scenes):
        y = scene(az, dist, rt60, snr, seed=i)
        conditions.append((rt60, snr, dist, az))
        feats = None
        for name, cfg in ours.items():
            fe = BinauralFrontEnd(cfg, mics, keep_cross=True)
            f = fe.process(y, FS, 0.0)
            _, frames = estimate_azimuth(f)
            frame_errors[name].append(np.median(np.abs(frames - az)) if len(frames) else 90.0)
            w = np.where(np.isfinite(f.itd) & (f.activity >= 0.5), f.weight, 0.0)
            itd, _ = fe.pooled_itd(f.cross, w)
            errors[name].append(abs(np.degrees(fe.geometry.azimuth_from_itd(itd)) - az))
            idx = np.flatnonzero(w > 0)
            blocks = []
            for b in range(0, len(idx) - BLOCK, BLOCK):
                sel = idx[b:b + BLOCK]
                itd_b, _ = fe.pooled_itd(f.cross[sel], w[sel])
                blocks.append(abs(np.degrees(fe.geometry.azimuth_from_itd(itd_b)) - az))
            block_errors[name].append(np.median(blocks) if blocks else 90.0)
            if feats is None:
                feats = f
        X = stft_frames(y, BinauralFrontEnd(ours[next(iter(ours))], mics))
        active = feats.activity >= 0.5
        for m, doa in doas.items():
            key = f"pyroomacoustics {m}"
            try:
                errors[key].append(abs(pra_estimate(doa, X, active) - az))
            except Exception:  # noqa: BLE001 - a method failing on a scene counts as 90 deg
                errors[key].append(90.0)
            blocks = []
            idx = np.flatnonzero(active)
            for b in range(0, len(idx) - BLOCK, BLOCK):
                try:
                    doa.locate_sources(X[:, :, idx[b:b + BLOCK]], freq_range=[150.0, 7500.0])
                    blocks.append(abs(np.degrees(doa.azimuth_recon[0]) - 90.0 - az))
                except Exception:  # noqa: BLE001
                    blocks.append(90.0)
            block_errors[key].append(np.median(blocks) if blocks else 90.0)
    return conditions, errors, frame_errors, block_errors


def bench_weighting_sweep() -> list[str]:
    """Direct-path weighting settings on 72 rooms: pooled and frame-level MAE (deg)."""
    frame = {"precedence_time": 0.0}  # each frame alone, as when this sweep was made
    settings = {
        "none (plain GCC-PHAT)": AudioFrontEndConfig(direct_path_weighting="none", **frame),
        "coherence, exponent 4, smoothing 0.6": AudioFrontEndConfig(
            direct_path_weighting="coherence", **frame),
        "coherence, exponent 2": AudioFrontEndConfig(
            direct_path_weighting="coherence", coherence_exponent=2.0, **frame),
        "coherence, exponent 1": AudioFrontEndConfig(
            direct_path_weighting="coherence", coherence_exponent=1.0, **frame),
        "coherence+onset": AudioFrontEndConfig(direct_path_weighting="coherence+onset", **frame),
        "coherence, exponent 2, smoothing 0.8": AudioFrontEndConfig(
            direct_path_weighting="coherence", coherence_exponent=2.0, coherence_smoothing=0.8,
            **frame),
        "default (CDR+onset, precedence memory)": AudioFrontEndConfig(),
    }
    scenes = grid(rt60s=(0.3, 0.45, 0.6), snrs=(5.0, 20.0), distances=(1.0, 2.0, 3.0),
                  azimuths=(-50.0, -20.0, 14.0, 40.0))
    signals = [scene(az, dist, rt, snr, seed=i) for i, (rt, snr, dist, az) in enumerate(scenes)]
    rows = ["", f"## Direct-path weighting sweep ({len(scenes)} reverberant rooms)", "",
            "| weighting | pooled MAE | pooled median | frame MAE | frame median |",
            "|---|---:|---:|---:|---:|"]
    for name, cfg in settings.items():
        pooled, frames = [], []
        for (*_, az), y in zip(scenes, signals):
            fe = BinauralFrontEnd(cfg, keep_cross=True)
            f = fe.process(y, FS, 0.0)
            _, frame_az = estimate_azimuth(f)
            frames.append(np.median(np.abs(frame_az - az)) if len(frame_az) else 90.0)
            w = np.where(np.isfinite(f.itd) & (f.activity >= 0.5), f.weight, 0.0)
            itd, _ = fe.pooled_itd(f.cross, w)
            pooled.append(abs(np.degrees(fe.geometry.azimuth_from_itd(itd)) - az))
        rows.append(f"| {name} | {np.mean(pooled):.2f} | {np.median(pooled):.2f} | "
                    f"{np.mean(frames):.2f} | {np.median(frames):.2f} |")
        print(rows[-1], flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small grid (a minute)")
    ap.add_argument("--sweep", action="store_true",
                    help="only the direct-path weighting sweep (72 rooms)")
    ap.add_argument("--out", default="bench/results/audio.md")
    args = ap.parse_args()
    if args.sweep:
        rows = bench_weighting_sweep()
        out = Path(args.out).with_name("audio_weighting.md")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("command: `.venv/bin/python bench/bench_audio.py --sweep`\n"
                       + "\n".join(rows) + "\n")
        return
    lines = ["# Audio front-end benchmark", "",
             f"command: `.venv/bin/python bench/bench_audio.py{' --quick' if args.quick else ''}`",
             "", "## Speed (one core, 16 kHz, 512/256 frames)", "",
             "| method | frames/s | x real time | ratio to numba |", "|---|---:|---:|---:|"]
    rows = bench_speed()
    base = rows[0][1]
    for name, fps in rows:
        lines.append(f"| {name} | {fps:,.0f} | {fps * 256 / FS:,.0f} | {fps / base:.3f} |")
    print("\n".join(lines), flush=True)
    conditions, errors, frame_errors, block_errors = bench_accuracy(args.quick)
    cond = np.array(conditions)
    acc = ["", f"## Azimuth error ({len(conditions)} simulated rooms: RT60 x SNR x distance x "
           "azimuth)", "",
           "Recording: one estimate from all active frames (2 s; ours: pooled GCC-PHAT of the "
           "active frames, `BinauralFrontEnd.pooled_itd`).  Block: one estimate per "
           f"{BLOCK} active frames (64 ms), median error over blocks.  Errors in degrees.", "",
           "| method | recording MAE | recording median | block median | anechoic | "
           "RT60 0.3 | RT60 0.45-0.6 | 1 m | 3 m |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, e in errors.items():
        e = np.array(e)

        def m(mask, e=e):
            return f"{e[mask].mean():.1f}" if mask.any() else "-"

        acc.append(
            f"| {name} | {e.mean():.1f} | {np.median(e):.1f} | "
            f"{np.mean(block_errors[name]):.1f} | {m(cond[:, 0] == 0)} | "
            f"{m(cond[:, 0] == 0.3)} | {m(cond[:, 0] >= 0.45)} | {m(cond[:, 2] == 1.0)} | "
            f"{m(cond[:, 2] == 3.0)} |")
    acc += ["", "Frame-level median absolute error (our front-end only): " + ", ".join(
        f"{k}: {np.mean(v):.1f} deg" for k, v in frame_errors.items())]
    print("\n".join(acc))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines + acc) + "\n")


if __name__ == "__main__":
    main()
