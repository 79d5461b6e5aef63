"""The live nodes' visual stage with a turning head, made deterministic (BENCHMARKS.md,
"Head motion", "The /tf path's cost").

The stream of ``bench_latency.py --tf`` -- two rendered faces fixed in ``base_link``, the
head panning +-40 deg at up to 60 deg/s (40 deg sin(1.5 t)), 15 fps, each pair showing the
faces where the pan at its stamp puts them -- goes through
:class:`~av_perception.pipeline.VisionPipeline` as in perception_node (``live``: the
asynchronous detection worker, the camera's rotation per pair), but the worker finishes
before the next pair is given (what a machine with time to spare does), so the counts do
not depend on the load.  Modes: ``still`` (no pan, no rotation), ``turn`` (the images
turn with the head), ``glued`` (the rotation turns but the images do not: faces that turn
with the head, the former ``bench_latency.py --tf``).  Per mode: full detections, turn
keyframes, turn strips (searches of the strip that came into view), faces that joined
from strips, the in-view faces (whole in the left image) observed within 0.3 m of the
truth, the frames from a face's coming into view to its first observation, observations
of nobody, and the CPU time (both threads, ``time.process_time``) per second of stream.

    PYTHONPATH=. python bench/bench_turn_detection.py [--seconds 20] [--modes still turn]

Run with another tree on ``PYTHONPATH`` (this file's directory is found by itself) to
compare.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

#: an observation within this distance (m) of a face is of that face
MATCH = 0.3
#: half the face's width (m), for "whole in the image"
FACE_HALF_WIDTH = 0.08


def run(mode: str, seconds: float, fps: float, pairs: dict, still) -> dict:
    from bench_latency import PAN_AMPLITUDE, PAN_RATE, pan_rotation
    from stereobag import CAL, HEADS

    from av_perception.core.detection import DetectionConfig
    from av_perception.pipeline.vision import VisionPipeline

    keys = np.array(sorted(pairs))
    vp = VisionPipeline(detection=DetectionConfig(), calibration=CAL, live=True)
    vp.warm_up()
    det = vp.front_end.detector
    in_view = seen = nobody = 0
    was_in = [False] * len(HEADS)
    entered: list = [None] * len(HEADS)
    to_first = []
    cpu0 = time.process_time()
    frames = int(round(seconds * fps))
    try:
        for k in range(frames):
            t = k / fps
            deg = 0
            if mode != "still":
                pan = np.degrees(PAN_AMPLITUDE * np.sin(PAN_RATE * t))
                deg = int(keys[np.argmin(np.abs(keys - pan))])
                vp.set_camera_rotation(pan_rotation(np.radians(deg)))
            left, right = still if mode != "turn" else pairs[deg]
            heads = HEADS @ pan_rotation(np.radians(deg)) if mode == "turn" else HEADS
            obs = vp.process_pair(left, right, 1000.0 + t)
            if not det.wait_idle(30.0):
                raise RuntimeError("the detection worker did not finish in 30 s")
            for i, h in enumerate(heads):
                u = CAL.cx + CAL.fx * h[0] / h[2]
                half = CAL.fx * FACE_HALF_WIDTH / h[2]
                inside = bool(u - half > 0 and u + half < CAL.width)
                if inside and not was_in[i]:
                    entered[i] = k
                was_in[i] = inside
                if not inside:
                    continue
                in_view += 1
                hit = bool(len(obs.xyz)) and np.min(np.linalg.norm(obs.xyz - h, axis=1)) < MATCH
                seen += hit
                if hit and entered[i] is not None:
                    to_first.append(k - entered[i])
                    entered[i] = None
            for x in obs.xyz:
                nobody += bool(np.min(np.linalg.norm(heads - x, axis=1)) > MATCH)
        cpu = time.process_time() - cpu0
    finally:
        vp.close()
    stats = det.pipeline.stats
    return {"frames": frames, "detections": det.detections_run - stats.get("turn_strips", 0),
            "turn_keyframes": stats["turn_keyframes"], "strips": stats.get("turn_strips", 0),
            "entering": stats["entering"], "observed": seen / max(in_view, 1),
            "in_view": in_view, "to_first": to_first, "nobody": nobody,
            "cpu_s_per_s": cpu / seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--modes", nargs="+", default=["still", "turn", "glued"],
                    choices=["still", "turn", "glued"])
    args = ap.parse_args(argv)
    from bench_latency import turned_pairs
    from stereobag import HEADS, render

    import av_perception

    pairs = turned_pairs(HEADS)
    still = render(HEADS, seed=2)
    print(f"tree {Path(av_perception.__file__).parents[1]}; {args.seconds:g} s at "
          f"{args.fps:g} fps; the worker finishes before each next pair")
    print()
    print("| mode | full detections | turn keyframes | turn strips | faces from strips | "
          "in-view face-frames observed | frames to the first observation after entering "
          "(mean, max) | observations of nobody | CPU s per s of stream |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for mode in args.modes:
        r = run(mode, args.seconds, args.fps, pairs, still)
        first = (f"{np.mean(r['to_first']):.2f}, {max(r['to_first'])} "
                 f"({len(r['to_first'])} entries)" if r["to_first"] else "-")
        print(f"| {mode} | {r['detections']} | {r['turn_keyframes']} | {r['strips']} | "
              f"{r['entering']} | {r['observed']:.3f} of {r['in_view']} | {first} | "
              f"{r['nobody']} | {r['cpu_s_per_s']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
