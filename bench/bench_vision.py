"""Frames per second of the visual front-end at 640x480 on one core.

Renders a moving scene with three real faces (scikit-image's astronaut photo,
0.16 m wide) at 1, 2 and 3 m in front of a textured background (the coffee
photo at 6 m), then runs :class:`VisualFrontEnd` over it per detector setting
and prints a markdown table: mean / p95 / max time per frame, frames per
second, and the recall (fraction of head-frames with an observation within
0.15 m of the truth) with the median depth error.

Run: ``.venv/bin/python bench/bench_vision.py [--frames N]``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from av_perception.core.config import StereoCameraConfig  # noqa: E402
from av_perception.core.detection import DetectionConfig  # noqa: E402
from av_perception.core.stereo import StereoCalibration  # noqa: E402
from av_perception.core.vision import VisionConfig, VisualFrontEnd  # noqa: E402
from av_perception.sim.stereo_heads import render_stereo_heads  # noqa: E402

FPS = 15.0


def face_crop() -> np.ndarray:
    """The astronaut's face (BGR), 1.1 x its Haar box, taken to span 0.16 m."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[..., ::-1])
    x, y, w, h = 177, 66, 95, 95  # Haar frontal box of the photo
    s = 1.1 * w
    cx, cy = x + w / 2, y + h / 2
    return np.ascontiguousarray(
        img[int(cy - s / 2):int(cy + s / 2), int(cx - s / 2):int(cx + s / 2)])


def scene(n_frames: int, calibration: StereoCalibration):
    """Stereo frames with three heads moving sideways (0.15 m/s) at 1, 2, 3 m."""
    from skimage import data

    face = face_crop()
    background = np.ascontiguousarray(data.coffee()[..., ::-1])
    rng = np.random.default_rng(7)
    frames = []
    for i in range(n_frames):
        t = i / FPS
        heads = np.array([
            [-0.30 + 0.15 * np.sin(0.5 * t), -0.05, 1.0],
            [0.15 + 0.15 * np.sin(0.4 * t + 1.0), 0.05, 2.0],
            [0.90 + 0.15 * np.sin(0.3 * t + 2.0), -0.10, 3.0],
        ])
        left, right = render_stereo_heads(calibration, heads, face, background, 6.0,
                                          noise_sigma=2.0, rng=rng)
        frames.append((t, left, right, heads))
    return frames


def run(frames, calibration, vision: VisionConfig, detection: DetectionConfig):
    fe = VisualFrontEnd(vision, calibration, detection)
    fe.warm_up()
    fe.process(frames[0][1], frames[0][2], 0.0)  # first call: caches, allocations
    fe.reset()
    times = []
    cpu = []
    found = 0
    total = 0
    depth_err = []
    for t, left, right, heads in frames:
        t0 = time.perf_counter()
        c0 = time.process_time()
        obs = fe.process(left, right, t)
        cpu.append(time.process_time() - c0)
        times.append(time.perf_counter() - t0)
        heads_obs = obs.xyz[obs.kind != "point"]
        for h in heads:
            total += 1
            if len(heads_obs):
                dist = np.linalg.norm(heads_obs - h, axis=1)
                j = int(np.argmin(dist))
                if dist[j] < 0.15:
                    found += 1
                    depth_err.append(abs(heads_obs[j, 2] - h[2]))
    times = np.array(times) * 1000.0
    cpu = np.array(cpu) * 1000.0
    return {
        "mean": times.mean(), "p95": np.percentile(times, 95), "max": times.max(),
        "fps": 1000.0 / times.mean(), "cpu": cpu.mean(), "cpu_fps": 1000.0 / cpu.mean(),
        "recall": found / total,
        "depth_err": float(np.median(depth_err)) if depth_err else float("nan"),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60, help="frames per setting (default 60)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    calibration = StereoCalibration.from_config(StereoCameraConfig())
    frames = scene(args.frames, calibration)
    default_det = DetectionConfig(detector="haar_frontal")  # the default until 2026-12-06
    settings = [
        ("haar_frontal", VisionConfig(), default_det),
        ("haar_frontal", VisionConfig(), default_det.replace(every_k=1)),
        ("haar_frontal, scale 0.75", VisionConfig(), default_det.replace(scale=0.75)),
        ("haar_frontal, sgbm disparity", VisionConfig(disparity_method="sgbm"), default_det),
        ("haar_frontal + interest points", VisionConfig(interest_points=True), default_det),
        ("haar_frontal_profile", VisionConfig(),
         default_det.replace(detector="haar_frontal_profile")),
        ("haar_frontal_profile", VisionConfig(),
         default_det.replace(detector="haar_frontal_profile", every_k=1)),
        ("haar_upper_body", VisionConfig(), default_det.replace(detector="haar_upper_body")),
        ("haar_upper_body", VisionConfig(),
         default_det.replace(detector="haar_upper_body", every_k=1)),
        ("haar_all", VisionConfig(), default_det.replace(detector="haar_all")),
    ]
    print(f"visual front-end, {calibration.width}x{calibration.height}, one core "
          f"(cv2.setNumThreads(1)), {args.frames} frames per setting, 3 heads at 1/2/3 m\n")
    print("| detector | every_k | scale | wall ms mean | p95 | max | fps (wall) | CPU ms "
          "| fps (CPU) | recall | median depth err (m) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, vision, det in settings:
        r = run(frames, calibration, vision, det)
        print(f"| {name} | {det.every_k} | {det.scale} "
              f"| {r['mean']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {r['fps']:.1f} "
              f"| {r['cpu']:.1f} | {r['cpu_fps']:.1f} "
              f"| {r['recall']:.2f} | {r['depth_err']:.3f} |", flush=True)
    print("\nwall = elapsed time (includes waiting for a shared CPU); CPU = this process's CPU "
          "time.  recall: head-frames with an observation within 0.15 m of the truth "
          "(the scene has faces only, no bodies: upper-body rows measure speed, not recall).")


if __name__ == "__main__":
    main()
