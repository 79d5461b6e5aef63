"""Head models on simulated scenes: azimuth error and tracker metrics per binaural model,
free-field scenes against KEMAR dummy-head scenes, and the head self-calibration.

    .venv/bin/python bench/bench_head_models.py [--presets two_static default]
        [--duration 30] [--seed 1] [--out bench/results/head_models.md]

For each preset (and ``lateral``: talkers at +-45 deg, seen by a wide-angle camera): the
scene is rendered twice (``--head free_field``: 15 cm mic bar;
``--head kemar``: MIT KEMAR HRIRs, ears at the dummy-head profile's positions).  The
binaural front-end runs with each model (free field, spherical head of the profile's
radius, measured KEMAR table); the audio metrics are those of ``av-perception
evaluate`` (single-talker frames, activity >= 0.5); the tracker runs on those audio
features with visual observations drawn from the ground truth (the tracker
benchmark's visual stream, 3D noise of a stereo camera), and is scored with
py-motmetrics.  Calibration rows start the tracker from a wrong model with
``head_calibration.enabled`` and give the time of the first accepted fit, the fitted
parameters, and the metrics over the part of the scene after that fit.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.io.wavfile  # noqa: E402

from av_perception.core.audio import BinauralFeatures, BinauralFrontEnd  # noqa: E402
from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig  # noqa: E402
from av_perception.core.head_calibration import HeadCalibrationConfig  # noqa: E402
from av_perception.core.tracking import TrackerConfig  # noqa: E402
from av_perception.eval.metrics import evaluate_audio, evaluate_tracks  # noqa: E402
from av_perception.eval.readers import read_ground_truth  # noqa: E402
from av_perception.eval.tracker_benchmark import run_tracker, synthetic_streams  # noqa: E402
from av_perception.io.heads import load_head_model  # noqa: E402
from av_perception.sim import PersonSpec, make_scene, simulate  # noqa: E402
from av_perception.sim.scene import DUMMY_HEAD_EARS  # noqa: E402
from av_perception.sim.trajectory import still  # noqa: E402

EARS = dict(left=DUMMY_HEAD_EARS[0], right=DUMMY_HEAD_EARS[1])
#: the front-end of each profile (config/profile_*.yaml)
AUDIO = {"free_field": AudioFrontEndConfig(itd_margin=0.1),
         "kemar": AudioFrontEndConfig(itd_margin=0.3, min_frequency=200.0)}
TRACKER = {"free_field": TrackerConfig(itd_sigma=6e-5, audio_clutter_density=1040.0),
           "kemar": TrackerConfig(itd_sigma=6e-5, audio_clutter_density=476.0)}
MODELS = {
    "free_field": {"free_field": MicArrayConfig()},
    "kemar": {"free_field": MicArrayConfig(**EARS),
              "spherical_head": MicArrayConfig(**EARS, head_model="spherical_head",
                                               head_radius=0.095),
              "measured": MicArrayConfig(**EARS, head_model="measured"),
              "sphere_r-30%": MicArrayConfig(**EARS, head_model="spherical_head",
                                             head_radius=0.7 * 0.095)},
}
#: wrong starting models of the calibration runs (KEMAR scenes)
CAL_STARTS = {"free_field": MicArrayConfig(**EARS),
              "sphere_r-30%": MicArrayConfig(**EARS, head_model="spherical_head",
                                             head_radius=0.7 * 0.095)}


def lateral_scene(seed, duration, head):
    """``two_static`` with the talkers at +46 and -42 deg (1.9-2.3 m) and a wide-angle
    camera (fx 250 px: +-52 deg), so that they are seen where the head matters."""
    scene = make_scene("two_static", seed=seed, duration=duration, head=head)
    scene.robot.camera = scene.robot.camera.replace(fx=250.0, fy=250.0)
    p1, p2 = scene.people
    scene.people = [PersonSpec(1, still((-1.45, -0.38, 1.45)), p1.face, p1.voice, p1.shirt),
                    PersonSpec(2, still((1.55, -0.3, 1.75)), p2.face, p2.voice, p2.shirt)]
    scene.validate()
    return scene


def render(preset, head, seed, duration, workdir):
    scene = (lateral_scene(seed, duration, head) if preset == "lateral" else
             make_scene(preset, seed=seed, duration=duration, head=head))
    outdir = Path(workdir) / f"{preset}_{head}"
    simulate(scene, outdir, write_bag=False, overwrite=True)
    rate, samples = scipy.io.wavfile.read(outdir / "audio.wav")
    return scene, read_ground_truth(outdir), samples, rate


def features(samples, rate, scene, cfg, model) -> BinauralFeatures:
    front = BinauralFrontEnd(cfg, model)
    chunk = scene.audio.chunk
    return BinauralFeatures.concatenate(
        [front.process(samples[a:a + chunk], rate, scene.epoch if a == 0 else None)
         for a in range(0, len(samples), chunk)])


def audio_metrics(scene, feats, model=None):
    az = feats.azimuth if model is None else model.azimuth_from_itd(feats.itd)
    df = pd.DataFrame({"t": feats.stamp, "itd": feats.itd, "azimuth": az, "ild": feats.ild,
                       "activity": feats.activity})
    return evaluate_audio(scene, df)


def track_metrics(gt, df):
    t = evaluate_tracks(gt, df)
    return t["tracking"]["mota"], t["tracking"]["idf1"], t["speaking"]["f1"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+",
                    default=["two_static", "default", "moving", "hard", "lateral"],
                    help="presets, and 'lateral' (see lateral_scene)")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    lines = ["| preset | scene | model | DOA median (deg) | DOA mean (deg) | within 10 deg | "
             "ITD median err (us) | MOTA | IDF1 | speaking F1 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    cal_lines = ["| preset | start | first fit (s) | fitted | DOA median after (deg) | "
                 "MOTA | IDF1 | speaking F1 |", "|---|---|---:|---|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as work:
        for preset in args.presets:
            for head in ("free_field", "kemar"):
                t0 = time.perf_counter()
                scene, gt, samples, rate = render(preset, head, args.seed, args.duration, work)
                print(f"{preset} {head}: rendered in {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
                streams = synthetic_streams(scene, gt, 0)
                runs = list(MODELS[head].items())
                if head == "kemar":  # joint ITD+ILD azimuth (audio.direction_ild_sigma)
                    runs.append(("measured+ILD", MODELS[head]["measured"]))
                for name, mics in runs:
                    cfg = AUDIO[head]
                    if name.endswith("+ILD"):
                        cfg = cfg.replace(direction_ild_sigma=3.0)
                    model = load_head_model(mics, cfg)
                    feats = features(samples, rate, scene, cfg, model)
                    a = audio_metrics(scene, feats)
                    df, _ = run_tracker(streams, scene, TRACKER[head], feats, model=model)
                    mota, idf1, f1 = track_metrics(gt, df)
                    d, e = a["doa_error_deg"], a["itd_error_us"]
                    lines.append(f"| {preset} | {head} | {name} | {d['median_abs']:.2f} | "
                                 f"{d['mean_abs']:.2f} | {d['within_10deg']:.3f} | "
                                 f"{e['median_abs']:.1f} | {mota:.3f} | {idf1:.3f} | "
                                 f"{f1:.3f} |")
                    print(lines[-1], file=sys.stderr, flush=True)
                if head != "kemar":
                    continue
                for start, mics in CAL_STARTS.items():
                    model = load_head_model(mics, AUDIO[head])
                    feats = features(samples, rate, scene, AUDIO[head], model)
                    df, _ = run_tracker(streams, scene, TRACKER[head], feats, model=model,
                                          calibration=HeadCalibrationConfig(enabled=True))
                    cal = df.attrs["calibrator"]
                    if not cal.fits:
                        cal_lines.append(f"| {preset} | {start} | - | no fit | | | | |")
                        continue
                    first = cal.fits[0].stamp - scene.epoch
                    p = cal.fits[-1].params
                    fitted = (f"r = {100 * p['head_radius']:.1f} cm, ears "
                              f"{p['ear_azimuth']:.0f} deg" if "head_radius" in p
                              else f"itd_scale {p['itd_scale']:.3f}")
                    later = feats.stamp >= cal.fits[0].stamp
                    a = audio_metrics(scene, feats.slice(int(np.argmax(later)), len(feats)),
                                      cal.model)
                    mota, idf1, f1 = track_metrics(gt, df)
                    cal_lines.append(
                        f"| {preset} | {start} | {first:.1f} | {fitted} ({len(cal.fits)} fits) "
                        f"| {a['doa_error_deg']['median_abs']:.2f} | {mota:.3f} | {idf1:.3f} "
                        f"| {f1:.3f} |")
                    print(cal_lines[-1], file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n\n" + "\n".join(cal_lines) + "\n"
    print(text)
    if args.out is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
