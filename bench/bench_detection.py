"""Face recall at 1-4.5 m, false detections and speed: BlazeFace (+ tiles) vs Haar.

Test images: real face photos pasted on natural backgrounds, all from
scikit-image / matplotlib, none used to choose the detector defaults' values
other than for speed:

* faces: Eileen Collins (``skimage.data.astronaut``), Grace Hopper
  (matplotlib's ``grace_hopper.jpg``), and 12 faces of ``skimage.data.lfw_subset``
  (25 x 25 grey Labeled-Faces-in-the-Wild crops, upsampled: blurry by nature);
  each is cut with an elliptical soft mask 1.6 x its face box wide (hair and
  some background come along), scaled so that the face box is
  ``fx * 0.16 m / z`` pixels wide (fx = 500 px, the default StereoCameraConfig),
  z uniform in [1, 4.5] m;
* backgrounds: the scikit-image photos without people (coffee, chelsea, rocket,
  motorcycle, brick, grass, gravel, coins, page, hubble deep field), resized to
  cover 640 x 480 and cut at random;
* 1-4 faces per frame at random, non-overlapping places, Gaussian noise
  sigma 2; five seeds x ``--frames`` frames.

A detection is a hit when its centre lies within 0.4 face widths of a true
face's centre and its size is within a factor 2 of it (the detectors draw
their boxes differently, so IoU would favour one of them); each true face
takes one hit, every other detection is false.

Also the repo's simulator (sim/video.py: sprites with hair and bodies), three people
standing at random x and z in 1-4.5 m, ``--frames / 2`` frames per seed.

Speed: time of ``DetectionPipeline.detect`` per 640 x 480 frame (every_k = 1:
detection on every frame), one core (``cv2.setNumThreads(1)``, BLAS/numba one
thread), wall and CPU time; then the whole stereo visual front-end
(bench_vision's scene) with every_k = 1.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_detection.py [--frames N]``
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from av_perception.core.detection import DetectionConfig, DetectionPipeline  # noqa: E402

FX = 500.0
FACE_W = 0.16
SIZE = (640, 480)
BINS = ((1.0, 2.0), (2.0, 3.0), (3.0, 4.5))
N_LFW = 12
SEEDS = (0, 1, 2, 3, 4)


def _ellipse(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((x - (w - 1) / 2) / (w / 2)) ** 2 + ((y - (h - 1) / 2) / (h / 2)) ** 2)
    return np.clip((1.0 - r) * 6.0 + 0.5, 0.0, 1.0)


def faces():
    """[(name, BGR patch, alpha, face box (x, y, w, h) in the patch)]."""
    import matplotlib.cbook
    from skimage import data

    out = []
    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg",
                                                             asfileobj=False)))
    portraits = [("astronaut", np.ascontiguousarray(data.astronaut()[..., ::-1]),
                  (177, 66, 95, 95)),
                 ("hopper", hopper, (155, 105, 222, 222))]
    for name, img, (x, y, w, h) in portraits:
        side = 1.6 * w
        cx, cy = x + w / 2, y + h / 2
        pad = cv2.copyMakeBorder(img, 200, 200, 200, 200, cv2.BORDER_REPLICATE)
        x0, y0 = int(cx - side / 2) + 200, int(cy - 0.55 * side * 1.2) + 200
        ph = int(side * 1.2)
        patch = pad[y0:y0 + ph, x0:x0 + int(side)]
        box = (x + 200 - x0, y + 200 - y0, w, h)
        out.append((name, patch, _ellipse(patch.shape[1], patch.shape[0]), box))
    lfw = data.lfw_subset()[:N_LFW]
    for k, g in enumerate(lfw):
        big = cv2.resize((g * 255).astype(np.float32), (100, 100),
                         interpolation=cv2.INTER_CUBIC)
        # the LFW crop is the face region; pad it with a replicated border for context
        pad = cv2.copyMakeBorder(np.clip(big, 0, 255).astype(np.uint8), 30, 30, 30, 30,
                                 cv2.BORDER_REPLICATE)
        patch = cv2.cvtColor(pad, cv2.COLOR_GRAY2BGR)
        out.append((f"lfw:{k}", patch, _ellipse(160, 160), (30, 30, 100, 100)))
    return out


def backgrounds():
    from skimage import data

    out = []
    for name in ("coffee", "chelsea", "rocket", "stereo_motorcycle", "brick", "grass",
                 "gravel", "coins", "page", "hubble_deep_field"):
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a photo that needs a download is skipped
            continue
        if isinstance(img, tuple):
            img = img[0]
        img = np.asarray(img)
        if img.ndim == 2:
            img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_GRAY2BGR)
        else:
            img = np.ascontiguousarray(img[..., :3][..., ::-1]).astype(np.uint8)
        s = max(SIZE[0] / img.shape[1], SIZE[1] / img.shape[0]) * 1.3
        out.append(cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR))
    return out


def make_frame(rng, face_set, bgs):
    """(BGR frame, truth [(x, y, w, h, z, face name)])."""
    bg = bgs[rng.integers(len(bgs))]
    x0 = rng.integers(0, bg.shape[1] - SIZE[0] + 1)
    y0 = rng.integers(0, bg.shape[0] - SIZE[1] + 1)
    frame = bg[y0:y0 + SIZE[1], x0:x0 + SIZE[0]].astype(np.float32).copy()
    truth = []
    for _ in range(int(rng.integers(1, 5))):
        # half the faces from the two portraits, half from the LFW crops
        k = int(rng.integers(2)) if rng.random() < 0.5 else int(rng.integers(2, len(face_set)))
        name, patch, alpha, (bx, by, bw, bh) = face_set[k]
        z = rng.uniform(1.0, 4.5)
        s = FX * FACE_W / z / bw
        pw, ph = max(2, int(round(patch.shape[1] * s))), max(2, int(round(patch.shape[0] * s)))
        p = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA).astype(np.float32)
        a = cv2.resize(alpha, (pw, ph), interpolation=cv2.INTER_LINEAR)[..., None]
        for _try in range(20):
            px = int(rng.integers(0, SIZE[0] - pw))
            py = int(rng.integers(0, SIZE[1] - ph))
            box = (px + bx * s, py + by * s, bw * s, bh * s)
            if all(abs(box[0] + box[2] / 2 - (t[0] + t[2] / 2)) > (box[2] + t[2])
                   or abs(box[1] + box[3] / 2 - (t[1] + t[3] / 2)) > (box[3] + t[3])
                   for t in truth):
                break
        else:
            continue
        region = frame[py:py + ph, px:px + pw]
        region[:] = a * p + (1 - a) * region
        truth.append((*box, z, name))
    frame += rng.normal(0.0, 2.0, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8), truth


def match(dets, truth):
    """(hit flags per truth face, number of false detections)."""
    hit = [False] * len(truth)
    false = 0
    for d in dets:
        cx, cy = d.x + d.w / 2, d.y + d.h / 2
        side = max(d.w, d.h)
        best = None
        for i, (x, y, w, h, _z, _n) in enumerate(truth):
            if hit[i]:
                continue
            if np.hypot(cx - (x + w / 2), cy - (y + h / 2)) <= 0.4 * w and 0.5 <= side / w <= 2:
                best = i
                break
        if best is None:
            false += 1
        else:
            hit[best] = True
    return hit, false


def evaluate(config: DetectionConfig, data, min_size: int, regions: bool = False):
    pipe = DetectionPipeline(config, min_size=min_size)
    pipe.detect(data[0][0])  # first call: allocations
    found = np.zeros((len(BINS), 2))
    by_set = {"photo": np.zeros(2), "lfw": np.zeros(2)}
    false = 0
    wall, cpu = [], []
    rng = np.random.default_rng(99)
    for frame, truth in data:
        reg = None
        if regions:  # a track's prediction: the true box, 20 % position noise, +-25 % size
            reg = []
            for x, y, w, h, _z, _n in truth:
                f = rng.uniform(0.75, 1.25)
                reg.append((x + rng.normal(0, 0.2 * w), y + rng.normal(0, 0.2 * h), w * f,
                            h * f))
        pipe.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        dets = pipe.detect(frame, regions=reg)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        hit, n_false = match(dets, truth)
        false += n_false
        for h_, (_x, _y, _w, _h, z, name) in zip(hit, truth):
            b = next(i for i, (lo, hi) in enumerate(BINS) if z < hi or i == len(BINS) - 1)
            found[b] += (h_, 1)
            by_set["lfw" if name.startswith("lfw") else "photo"] += (h_, 1)
    return {"recall": found[:, 0] / np.maximum(found[:, 1], 1),
            "all": found[:, 0].sum() / found[:, 1].sum(),
            "photo": by_set["photo"][0] / max(by_set["photo"][1], 1),
            "lfw": by_set["lfw"][0] / max(by_set["lfw"][1], 1),
            "n": found[:, 1], "false": false / len(data),
            "wall": 1000 * np.mean(wall), "cpu": 1000 * np.mean(cpu),
            "fallback": pipe.fallback_reason}


SETTINGS = [
    ("haar_frontal", dict(detector="haar_frontal"), False),
    ("haar_frontal, scale 2", dict(detector="haar_frontal", scale=2.0), False),
    ("blazeface full_range, whole frame", dict(blazeface_variant="full_range",
                                               search_crops=0), False),
    ("blazeface full_range, whole frame + 3x2 tiles",
     dict(blazeface_variant="full_range", tile_columns=3, tile_rows=2, search_crops=0), False),
    ("blazeface back, input scale 0.5", dict(blazeface_input_scale=0.5, search_crops=0), False),
    ("blazeface back, input scale 0.75, no search (the default until 2026-12-07)",
     dict(search_crops=0), False),
    ("blazeface back, input scale 1.0", dict(blazeface_input_scale=1.0, search_crops=0), False),
    ("blazeface back 0.75 + 2x2 tiles", dict(tile_columns=2, tile_rows=2, search_crops=0),
     False),
    ("**blazeface default** (back, input scale 0.75 + the search band)", {}, False),
    ("blazeface default + regions around predicted heads", {}, True),
]


def sim_frames(n_frames: int):
    """Frames of the repo's simulator: 3 people standing still at random x, z in 1-4.5 m
    (faces: the two portraits and LFW sprites with hair), five seeds; returns
    [(left image, [(u, v, face width px, z)])] for faces >= 90 % visible."""
    from av_perception.sim.presets import PRESETS
    from av_perception.sim.scene import PersonSpec, RobotSpec, Scene
    from av_perception.sim.video import VideoRenderer

    out = []
    names = ["astronaut", "hopper", "lfw:3", "lfw:10", "lfw:21", "lfw:40"]
    for seed in SEEDS:
        rng = np.random.default_rng(100 + seed)
        parts = PRESETS["default"][0](seed, 10.0)
        parts.pop("talkativeness", None)
        people = []
        for pid, old in zip((1, 2, 3), parts["people"]):
            z = rng.uniform(1.0, 4.5)
            x = rng.uniform(-0.5, 0.5) * z
            people.append(PersonSpec(pid, [[0.0, x, -0.4 + rng.uniform(-0.1, 0.1), z]],
                                     names[rng.integers(len(names))], old.voice, old.shirt))
        parts["people"] = people
        scene = Scene(name="bench", duration=10.0, seed=seed, robot=RobotSpec(), **parts)
        video = VideoRenderer(scene)
        for i in range(n_frames):
            f = video.render(i / 15.0, rng)
            truth = [(pv.u, pv.v, pv.face_width_px, p.waypoints[0][3])
                     for p, pv in ((p, f.views[p.id]) for p in people)
                     if pv.visible_left >= 0.9]
            out.append((f.left, truth))
    return out


def sim_recall(n_frames: int):
    data = sim_frames(max(2, n_frames // 2))
    print(f"\nthe repo's simulator: {len(data)} frames, "
          f"{sum(len(t) for _, t in data)} visible faces at 1-4.5 m\n")
    print("| detector | recall 1-2 m | 2-3 m | 3-4.5 m | false / frame | CPU ms |")
    print("|---|---:|---:|---:|---:|---:|")
    min_size = int(np.floor(0.7 * FX * FACE_W / 6.0))
    for name, kw in (("haar_frontal, min_size 24 (the old defaults)",
                      dict(detector="haar_frontal", min_size=24)),
                     ("haar_frontal", dict(detector="haar_frontal")),
                     ("blazeface, no search (the default until 2026-12-07)",
                      dict(search_crops=0)),
                     ("blazeface (default: + the search band)", {}),
                     ("blazeface back, input scale 1.0, no search",
                      dict(blazeface_input_scale=1.0, search_crops=0))):
        pipe = DetectionPipeline(DetectionConfig(every_k=1, **kw), min_size=min_size)
        found = np.zeros((len(BINS), 2))
        false = 0
        cpu = []
        for img, truth in data:
            c0 = time.process_time()
            dets = pipe.detect(img)
            cpu.append(time.process_time() - c0)
            hit = [False] * len(truth)
            for d in dets:
                cx, cy = d.x + d.w / 2, d.y + d.h / 2
                for i, (u, v, fw, _z) in enumerate(truth):
                    if not hit[i] and np.hypot(cx - u, cy - v) <= 0.4 * fw \
                            and 0.4 <= max(d.w, d.h) / fw <= 1.6:
                        hit[i] = True
                        break
                else:
                    false += 1
            for h_, (_u, _v, _fw, z) in zip(hit, truth):
                b = next(i for i, (lo, hi) in enumerate(BINS) if z < hi or i == len(BINS) - 1)
                found[b] += (h_, 1)
        rec = " | ".join(f"{a / max(n, 1):.2f}" for a, n in found)
        print(f"| {name} | {rec} | {false / len(data):.2f} | {1000 * np.mean(cpu):.1f} |",
              flush=True)
    print(f"\nfaces per distance bin: {[int(v) for v in found[:, 1]]}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20, help="frames per seed (default 20)")
    ap.add_argument("--no-frontend", action="store_true",
                    help="skip the stereo front-end timing")
    ap.add_argument("--frontend-only", action="store_true",
                    help="only the stereo front-end timing")
    ap.add_argument("--landmarks", action="store_true",
                    help="only: the default detector with and without the face mesh")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    if args.frontend_only:
        frontend()
        return
    face_set, bgs = faces(), backgrounds()
    data = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        data += [make_frame(rng, face_set, bgs) for _ in range(args.frames)]
    n_faces = sum(len(t) for _, t in data)
    # the visual front-end's lower size limit: 0.7 x a face at vision.max_depth (6 m)
    min_size = int(np.floor(0.7 * FX * FACE_W / 6.0))
    if args.landmarks:
        print(f"{len(data)} frames, {n_faces} faces; one core\n")
        print("| detector | faces found / frame | CPU ms / frame |\n|---|---:|---:|")
        for name, kw in (("blazeface default", {}),
                         ("blazeface default + landmarks", dict(landmarks=True))):
            pipe = DetectionPipeline(DetectionConfig(every_k=1, min_size=8, **kw), min_size)
            pipe.detect(data[0][0])
            cpu, n = [], 0
            for frame, _ in data:
                c0 = time.process_time()
                n += len(pipe.detect(frame))
                cpu.append(time.process_time() - c0)
            print(f"| {name} | {n / len(data):.2f} | {1000 * np.mean(cpu):.1f} |", flush=True)
        return
    print(f"{len(data)} frames 640x480 (seeds {SEEDS}), {n_faces} faces, {len(bgs)} "
          f"backgrounds, {len(face_set)} face photos; one core\n")
    print("| detector | recall 1-2 m | 2-3 m | 3-4.5 m | all | photos | lfw | false / frame "
          "| ms / frame (wall) | CPU ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, kw, regions in SETTINGS:
        cfg = DetectionConfig(every_k=1, min_size=8, **kw)
        r = evaluate(cfg, data, min_size, regions)
        rec = " | ".join(f"{v:.2f}" for v in r["recall"])
        print(f"| {name} | {rec} | {r['all']:.2f} | {r['photo']:.2f} | {r['lfw']:.2f} "
              f"| {r['false']:.2f} | {r['wall']:.1f} | {r['cpu']:.1f} |", flush=True)
        if r["fallback"]:
            print(f"  (fallback: {r['fallback']})")
    print(f"\nfaces per distance bin: {[int(v) for v in r['n']]}")
    sim_recall(args.frames)
    if not args.no_frontend:
        frontend()


def frontend():
    """The stereo visual front-end's speed (bench_vision's scene), per setting."""
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_vision import run, scene  # noqa: E402

    from av_perception.core.config import StereoCameraConfig
    from av_perception.core.stereo import StereoCalibration
    from av_perception.core.vision import VisionConfig

    calibration = StereoCalibration.from_config(StereoCameraConfig())
    frames = scene(40, calibration)
    print("\nstereo visual front-end (bench_vision's scene, 40 frames, 3 heads at 1/2/3 m)\n")
    print("| detector | every_k | wall ms | fps (wall) | CPU ms | fps (CPU) | recall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    main = dict(vision=VisionConfig(half_face_at_border=False), border_faces=False)
    for name, kw in (("haar_frontal", dict(detector="haar_frontal")),
                     ("blazeface, no search", dict(search_crops=0)),
                     ("blazeface, no candidates (before 2026-12-07, third pass)",
                      dict(candidate_score_threshold=0.0, border_faces=False)),
                     ("blazeface, no border faces or halves (before the fourth pass)", main),
                     ("blazeface, small faces re-boxed (opt-in, sixth pass)",
                      dict(refine_small_faces=True)),
                     ("blazeface (default: + the search band, candidates)", {})):
        kw = dict(kw)
        vision = kw.pop("vision", VisionConfig())
        for k in (1, 3):
            r = run(frames, calibration, vision, DetectionConfig(every_k=k, **kw))
            print(f"| {name} | {k} | {r['mean']:.1f} | {r['fps']:.1f} | {r['cpu']:.1f} "
                  f"| {r['cpu_fps']:.1f} | {r['recall']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
