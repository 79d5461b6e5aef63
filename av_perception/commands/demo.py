"""``av-perception demo``: the embedded default, run end to end.

Generates a short conversation with the scene simulator (the ``default`` preset: three
people, RT60 0.4 s, SNR 15 dB, turns and an overlap, one of them walking), writes it as a
rosbag2, runs the whole pipeline over the bag exactly as ``av-perception process`` does
(binaural features, stereo observations, tracker), scores the result against the
simulator's ground truth, and writes pictures of it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

DEMO_PRESET = "default"
DEMO_DURATION = 10.0


def register(sub):
    p = sub.add_parser(
        "demo", help="run the whole pipeline on the embedded default scene and write results",
        description="Simulate a three-person conversation (rosbag2 + ground truth), run the "
                    "full pipeline over it, and write the track file, the metrics, a plot of "
                    "tracks against the truth, annotated frames and the audio front-end's view.")
    p.add_argument("--output", "-o", default="demo_output", help="output directory")
    p.add_argument("--config", help="ROS-params YAML for the pipeline")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=DEMO_DURATION,
                   help=f"seconds of conversation (default {DEMO_DURATION:g})")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..eval.report import format_report, write_json
    from ..eval.runner import evaluate_files
    from ..io.feature_files import write_features_csv
    from ..io.params import load_offline_configs
    from ..offline import PROCESS_STAGES, process_bag, progress_printer, summarize
    from ..sim import make_scene, simulate
    from ..viz import plot_audio_features

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    configs = load_offline_configs(args.config, PROCESS_STAGES)
    scene_dir = out / "scene"
    print(f"1/4 simulating {args.duration:g} s of the '{DEMO_PRESET}' scene -> {scene_dir}")
    scene = make_scene(DEMO_PRESET, seed=args.seed, duration=args.duration)
    simulate(scene, scene_dir, storage="mcap", compressed=True, overwrite=True)

    print("2/4 running the pipeline over the bag (audio features, stereo, tracker)")
    tracks = out / "tracks.csv"
    result = process_bag(scene_dir / "bag", tracks, configs, keep_outputs=True,
                         progress=progress_printer())
    print("\n    " + summarize(result, tracks))

    print("3/4 scoring against the ground truth")
    t0 = time.perf_counter()
    feats = result.features  # computed by the pipeline from the bag's audio
    write_features_csv(out / "features.csv", feats)
    metrics = evaluate_files(scene_dir, [tracks, out / "features.csv"],
                             plot=out / "tracks_vs_truth.png")
    write_json(metrics, out / "metrics.json")
    report = format_report(metrics)
    plot_audio_features(out / "audio_features.png", feats,
                        title="audio front-end: direction of sound over time")

    print("4/4 drawing annotated frames")
    sheet = _contact_sheet(scene_dir / "bag", result.outputs, out / "contact_sheet.png")
    lines = [
        f"av_perception demo: '{DEMO_PRESET}' scene, {args.duration:g} s, seed {args.seed}",
        "", summarize(result, tracks), "", report, "",
        f"files in {out}: tracks.csv, metrics.json, tracks_vs_truth.png, {sheet.name}, "
        "features.csv, audio_features.png, scene/ (bag, audio.wav, ground_truth.jsonl, "
        "scene.json)",
    ]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps({
        "frames": result.frames, "tracks": len(result.track_ids), "rows": result.rows,
        "realtime_factor": result.realtime_factor,
        "scoring_seconds": time.perf_counter() - t0}, indent=2))
    print("\n".join(lines[2:]))
    return 0


def _contact_sheet(bag: Path, outputs, path: Path, n: int = 8) -> Path:
    """Annotate ``n`` frames spread over the run and tile them into one PNG."""
    from ..io.stereo_sources import BagStereoSource
    from ..viz import annotate_frame, contact_sheet

    if not outputs:
        raise ValueError("no frames were processed")
    stamps = np.array([o.stamp for o in outputs])
    wanted = set(np.linspace(0, len(stamps) - 1, min(n, len(stamps))).round().astype(int))
    by_stamp = {round(o.stamp, 6): o for i, o in enumerate(outputs) if i in wanted}
    frames = []
    with BagStereoSource(bag) as src:
        for stamp, left, _right, calibration in src:
            o = by_stamp.get(round(stamp, 6))
            if o is not None:
                frames.append(annotate_frame(left, o, calibration))
    return contact_sheet(frames, path)
