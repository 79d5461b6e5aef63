"""Face detectors over the full pipeline on simulated scenes with people 1-4.5 m away:
Haar vs BlazeFace without regions vs BlazeFace looking around the tracks' predicted heads,
with the search band for far faces and the half-face stereo (issue 17).

Scenes (``far_scene``): the simulator's 6 x 5 x 3 m room (RT60 0.3 s, SNR 15 dB, video
noise sigma 2), 12 s at 15 fps, four people with faces drawn from the simulator's photos
(astronaut, Grace Hopper, the lfw crops): one standing still at z in [1.2, 2], one at
[2, 3], one at [3.2, 4.5], and one walking from ~4.4 m to ~1.5 m (or back) at 0.35 m/s;
x spread over the view so that they do not hide each other; turn-taking speech.
Seeds 101-105: no detector or tracker default was tuned on them (the search's were
chosen on 111-120).

Each setting runs ``offline.process_bag`` (what ``av-perception process`` runs: audio
features, vision, tracker, with the tracks fed back to the vision stage) with the default
configuration except these (:data:`SETTINGS`):

* ``haar``: ``detector: haar_frontal``, ``vision.half_face_stereo: false``;
* ``blazeface``: whole frame only (``max_regions: 0``, ``search_crops: 0``,
  ``vision.half_face_stereo: false``);
* ``blazeface+regions``: the regions around the tracks' heads (``search_crops: 0``,
  ``vision.half_face_stereo: false``; the default until 2026-12-07);
* ``+search``: and the search band (``vision.half_face_stereo: false``);
* ``+half-face stereo``: the regions and the half-face stereo, no search;
* ``+search+half-face stereo``: the default of 2026-12-07 (main before the third pass of
  issue 17): no candidates (``detection.candidate_score_threshold: 0``), no track depth
  (``vision.track_depth_fallback: false``);
* ``+track depth``: and a face hidden in the right image at a track's head takes its
  depth from a half near the track's depth or from the track;
* ``+candidates``: and the low-scoring candidates confirmed by stereo or a track;
* ``+candidates+track depth``: both;
* ``default``: the defaults (since 2026-12-07, third pass: the candidates, no track
  depth; fourth pass: the halves also for a face partly outside the right image,
  ``vision.half_face_at_border``, and faces cut by the left image's border,
  ``detection.border_faces``);
* ``before border faces``: the defaults before the fourth pass
  (``vision.half_face_at_border: false``, ``detection.border_faces: false``);
* ``+border halves``: ``before border faces`` with ``vision.half_face_at_border``;
* ``main``: the defaults before the fifth pass (the body cue's head at the predicted
  head's rows, and only a face within one face width of it counts as the track's:
  ``body.hold_height: false``, ``body.face_above: 0``);
* ``det6``: the fifth pass's defaults (a small face's box not re-boxed by the search
  model: ``detection.refine_small_faces: false``, the default again since the sixth pass
  made it opt-in);
* ``refine``: the defaults with ``detection.refine_small_faces: true`` (the sixth pass);
* ``+partial 0.375``: the defaults and parts of 0.375 of the region's width besides the
  halves (``vision.partial_face_widths: [0.375, 0.5]``).

The settings before ``+track depth`` turn off the candidates and the track depth.

Metrics per seed:

* recall by distance band: a visible person (ground truth ``visible``) is found in a frame
  when an accepted observation's box centre lies within 0.4 expected face widths
  (fx 0.16 m / z) of the person's true image position (u, v) -- detector keyframes and
  frames of template tracking alike, after the stereo checks;
* false observations per frame: accepted observations matched to no visible person;
* of nobody per frame: those of them farther than :data:`AT_PERSON` (0.3 m) in 3D from
  every person of the scene, visible or not (the others observe a real person: one the
  truth counts hidden -- less than half of the face in one image -- or one whose box
  centre is a little more than 0.4 face widths off);
* 3D median error (m) of the matched observations;
* a second accounting (``WIDE_RADIUS``, the table after the first): the same with the box
  centre within 0.5 face widths (inside the true face's box) -- recall, false
  observations, 3D median and max error;
* MOTA, IDF1 of the track file (``eval.metrics.evaluate_tracks``: 0.5 m gate, visible
  people);
* real-time factor: scene seconds / CPU seconds of ``process_bag`` (reading the bag,
  audio features, vision, tracker; one thread: ``cv2.setNumThreads(1)``, BLAS/numba one
  thread); the machine is shared with other work, so CPU time is the measure (the wall
  time ratio is in the JSON as ``rtf_wall``).

After the table: for each setting, the person-frames it finds that the first setting
does not (and the ones it loses), with their 3D errors.

Run: ``OPENBLAS_NUM_THREADS=1 PYTHONPATH=. nice .venv/bin/python
bench/bench_detection_scenes.py [--seeds 101 102 ...] [--workdir DIR] [--duration S]``.
Scenes are rendered once into ``--workdir`` (default /tmp/av_bench_detection_scenes).
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

SEEDS = (101, 102, 103, 104, 105)
BANDS = ((1.0, 2.0), (2.0, 3.0), (3.0, 4.5))
FACE_W = 0.16
#: detection parameters of each setting; "vision": parameters of the vision section.
#: ``+search+half-face stereo`` is the default of 2026-12-07 (main before issue 17's third
#: pass); ``default`` adds the confirmed candidates (the track-depth fallback is off).
_OLD = dict(candidate_score_threshold=0.0, border_faces=False)
_NO_TRACK = dict(track_depth_fallback=False, half_face_at_border=False)
_TRACK = dict(track_depth_fallback=True, half_face_at_border=False)
SETTINGS = {
    "haar": dict(detector="haar_frontal", vision=dict(half_face_stereo=False)),
    "blazeface": dict(detector="blazeface", max_regions=0, search_crops=0, **_OLD,
                      vision=dict(half_face_stereo=False)),
    "blazeface+regions": dict(detector="blazeface", search_crops=0, **_OLD,
                              vision=dict(half_face_stereo=False)),
    "+search": dict(detector="blazeface", **_OLD, vision=dict(half_face_stereo=False)),
    "+search, whole band every keyframe": dict(detector="blazeface", search_columns=1, **_OLD,
                                               vision=dict(half_face_stereo=False)),
    "+half-face stereo": dict(detector="blazeface", search_crops=0, **_OLD, vision=_NO_TRACK),
    "+search+half-face stereo": dict(detector="blazeface", **_OLD, vision=_NO_TRACK),
    "+track depth": dict(detector="blazeface", **_OLD, vision=_TRACK),
    "+candidates": dict(detector="blazeface", border_faces=False, vision=_NO_TRACK),
    "+candidates+track depth": dict(detector="blazeface", border_faces=False, vision=_TRACK),
    "default": dict(detector="blazeface"),
    "before border faces": dict(detector="blazeface", border_faces=False,
                                vision=dict(half_face_at_border=False)),
    "main": dict(detector="blazeface", body=dict(hold_height=False, face_above=0.0)),
    "det6": dict(detector="blazeface", refine_small_faces=False),
    "refine": dict(detector="blazeface", refine_small_faces=True),
    "+border halves": dict(detector="blazeface", border_faces=False),
    "+partial 0.375": dict(detector="blazeface", vision=dict(partial_face_widths=(0.375, 0.5))),
}
#: face widths: an observation is of a visible person when its box centre lies this near
#: the person's true image position (in expected face widths fx 0.16 m / z)
RADIUS = 0.4
#: the second accounting: the box centre within the true face's box (half a face width)
WIDE_RADIUS = 0.5
#: metres: an observation matched to no visible person but this near a person of the scene
#: (hidden in one view, or its box centre a little off) is an observation of that person
AT_PERSON = 0.3


def far_scene(seed: int, duration: float = 12.0):
    """The benchmark scene of ``seed`` (see the module docstring)."""
    from av_perception.sim.faces import face_names
    from av_perception.sim.presets import MAN_A, MAN_B, WOMAN_A, WOMAN_B
    from av_perception.sim.scene import NoiseSpec, PersonSpec, RoomSpec, Scene, VideoSpec
    from av_perception.sim.schedule import turn_taking
    from av_perception.sim.trajectory import still, walk

    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    names = face_names()
    faces = [names[i] for i in rng.permutation(len(names))[:4]]
    # four lateral slots across the view (fractions of the half-width at that depth)
    slots = rng.permutation([-0.75, -0.25, 0.25, 0.75])
    zs = [rng.uniform(1.2, 2.0), rng.uniform(2.0, 3.0), rng.uniform(3.2, 4.5)]
    people = []
    voices = (WOMAN_A, MAN_A, WOMAN_B, MAN_B)
    shirts = ((150, 90, 40), (40, 120, 60), (90, 50, 120), (30, 30, 160))
    for k, z in enumerate(zs):
        x = slots[k] * 0.5 * z  # half-width of the view is 0.64 z at fx 500
        y = -0.4 if rng.random() < 0.7 else 0.0
        people.append(PersonSpec(k + 1, still((x, y, z)), faces[k], voices[k], shirts[k],
                                 sway=0.01))
    z0, z1 = (4.4, 1.5) if rng.random() < 0.5 else (1.5, 4.4)
    x = slots[3] * 0.5 * 2.5
    people.append(PersonSpec(4, walk([(x, -0.42, z0), (x + 0.2, -0.42, z1)], speed=0.35,
                                     start=1.0), faces[3], voices[3], shirts[3], sway=0.01))
    utt = turn_taking({1: 1.0, 2: 1.0, 3: 1.0, 4: 0.5}, duration,
                      np.random.default_rng(seed + 1000), overlap_prob=0.1)
    return Scene(name=f"far_{seed}", duration=duration, seed=seed,
                 room=RoomSpec(rt60=0.3), people=people, utterances=utt,
                 noise=NoiseSpec(snr_db=15.0), video=VideoSpec(noise_std=2.0),
                 description="four people 1-4.5 m away, one walking")


def render(seed: int, workdir: Path, duration: float) -> Path:
    """Simulate the scene of ``seed`` once (kept in workdir)."""
    from av_perception.sim.simulator import simulate

    out = workdir / f"far_{seed}_{duration:g}s"
    if not (out / "bag" / "metadata.yaml").exists():
        simulate(far_scene(seed, duration), out, overwrite=True)
    return out


def run_setting(scene_dir: Path, setting: dict, workdir: Path, name: str) -> dict:
    """process_bag over the scene with one detection setting -> metrics."""
    import cv2

    from av_perception.core.body_cue import BodyCueConfig
    from av_perception.core.config import StereoCameraConfig
    from av_perception.core.detection import DetectionConfig
    from av_perception.core.vision import VisionConfig
    from av_perception.eval.metrics import evaluate_tracks
    from av_perception.eval.readers import read_ground_truth, read_tracks
    from av_perception.offline import process_bag

    cv2.setNumThreads(1)
    gt = read_ground_truth(scene_dir)
    frames_gt = {}
    with open(scene_dir / "ground_truth.jsonl") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                frames_gt[round(float(rec["stamp"]), 6)] = rec["people"]
    obs_list = []
    tracks = workdir / f"tracks_{scene_dir.name}_{name}.csv"
    setting = dict(setting)
    vision = setting.pop("vision", {})
    body = setting.pop("body", {})
    configs = {DetectionConfig: DetectionConfig(**setting), VisionConfig: VisionConfig(**vision),
               BodyCueConfig: BodyCueConfig(**body)}
    cpu0 = time.process_time()
    res = process_bag(scene_dir / "bag", tracks, configs, on_observations=obs_list.append)
    cpu = time.process_time() - cpu0
    fx = StereoCameraConfig().fx
    found, false_obs, nobody, errors, hits = _match(obs_list, frames_gt, fx, RADIUS)
    wide = _match(obs_list, frames_gt, fx, WIDE_RADIUS)
    ev = evaluate_tracks(gt, read_tracks(tracks))
    tr = ev["tracking"]
    return {
        "recall": {f"{a:g}-{b:g}": (f / n if n else float("nan")) for (a, b), (f, n)
                   in found.items()},
        "recall_all": sum(f for f, _ in found.values()) / max(1, sum(n for _, n in
                                                                     found.values())),
        "false_per_frame": false_obs / max(1, len(obs_list)),
        "nobody_per_frame": nobody / max(1, len(obs_list)),
        "hits": hits,
        "wide": {"recall": {f"{a:g}-{b:g}": (f / n if n else float("nan")) for (a, b), (f, n)
                            in wide[0].items()},
                 "recall_all": sum(f for f, _ in wide[0].values()) / max(
                     1, sum(n for _, n in wide[0].values())),
                 "false_per_frame": wide[1] / max(1, len(obs_list)),
                 "median_error_m": float(np.median(wide[3])) if wide[3] else float("nan"),
                 "max_error_m": float(np.max(wide[3])) if wide[3] else float("nan")},
        "median_error_m": float(np.median(errors)) if errors else float("nan"),
        "mota": float(tr["mota"]),
        "idf1": float(tr["idf1"]),
        "rtf": float(res.bag_seconds / cpu),
        "rtf_wall": float(res.bag_seconds / res.wall_seconds),
        "frames": len(obs_list),
    }


def _match(obs_list, frames_gt, fx, radius):
    """Greedy matching of each frame's observations to the visible people (box centre
    within ``radius`` expected face widths) -> (found per band [found, visible], false
    observations, of nobody, 3D errors, hits (frame, person id, 3D error))."""
    found = {b: [0, 0] for b in BANDS}
    false_obs = 0
    nobody = 0
    errors = []
    hits = []
    for frame, obs in enumerate(obs_list):
        everyone = frames_gt.get(round(float(obs.stamp), 6))
        if everyone is None:
            continue
        g = [p for p in everyone if p["visible"] and p["u"] is not None]
        if len(obs):
            cu = obs.box[:, 0] + 0.5 * obs.box[:, 2] - 0.5
            cv_ = obs.box[:, 1] + 0.5 * obs.box[:, 3] - 0.5
        used = np.zeros(len(obs), dtype=bool)
        for p in g:
            band = next((b for b in BANDS if b[0] <= p["z"] < b[1]
                         or (b == BANDS[-1] and p["z"] == b[1])), None)
            if band is None:
                continue
            found[band][1] += 1
            if not len(obs):
                continue
            w = fx * FACE_W / p["z"]
            d = np.hypot(cu - p["u"], cv_ - p["v"])
            d[used] = np.inf
            j = int(np.argmin(d))
            if d[j] <= radius * w:
                used[j] = True
                found[band][0] += 1
                errors.append(float(np.linalg.norm(obs.xyz[j] - [p["x"], p["y"], p["z"]])))
                hits.append((frame, int(p["id"]), errors[-1]))
        false_obs += int((~used).sum())
        people = np.array([[p["x"], p["y"], p["z"]] for p in everyone]).reshape(-1, 3)
        for j in np.flatnonzero(~used):  # observations of nobody in the scene
            if not len(people) or np.linalg.norm(people - obs.xyz[j], axis=1).min() > AT_PERSON:
                nobody += 1
    return found, false_obs, nobody, errors, hits


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--duration", type=float, default=12.0)
    ap.add_argument("--workdir", default="/tmp/av_bench_detection_scenes")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--json", help="write every seed's metrics there")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {s: {} for s in args.settings}
    from av_perception.pipeline import warm_up_kernels

    warm_up_kernels()
    for seed in args.seeds:
        t0 = time.perf_counter()
        scene_dir = render(seed, workdir, args.duration)
        print(f"seed {seed}: scene in {time.perf_counter() - t0:.0f} s", flush=True)
        for name in args.settings:
            m = run_setting(scene_dir, SETTINGS[name], workdir, name)
            results[name][seed] = m
            print(f"  {name:18s} {json.dumps({k: v for k, v in m.items() if k != 'hits'})}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print()
    print(table(results))
    print()
    print(f"the second accounting (box centre within {WIDE_RADIUS} face widths):")
    print(table_wide(results))
    print()
    print(gained(results))


def gained(results: dict) -> str:
    """Per setting: the person-frames it finds that the first setting does not, and
    their 3D errors (median, max)."""
    names = list(results)
    if len(names) < 2:
        return ""
    lines = [f"found beyond {names[0]!r}:"]
    for name in names[1:]:
        errs, lost = [], 0
        for seed, m in results[name].items():
            base = {(f, p) for f, p, _ in results[names[0]].get(seed, {}).get("hits", [])}
            mine = {(f, p) for f, p, _ in m["hits"]}
            errs += [e for f, p, e in m["hits"] if (f, p) not in base]
            lost += len(base - mine)
        e = np.array(errs)
        lines.append(f"  {name}: +{len(e)} person-frames (3D error median "
                     f"{np.median(e) if len(e) else float('nan'):.3f} m, max "
                     f"{e.max() if len(e) else float('nan'):.3f} m), -{lost} lost")
    return "\n".join(lines)


def table(results: dict) -> str:
    """Markdown table: mean (worst) over the seeds per setting."""
    cols = [("recall 1-2 m", lambda m: m["recall"]["1-2"], min),
            ("2-3 m", lambda m: m["recall"]["2-3"], min),
            ("3-4.5 m", lambda m: m["recall"]["3-4.5"], min),
            ("all", lambda m: m["recall_all"], min),
            ("false obs / frame", lambda m: m["false_per_frame"], max),
            ("of nobody / frame", lambda m: m["nobody_per_frame"], max),
            ("3D median error (m)", lambda m: m["median_error_m"], max),
            ("MOTA", lambda m: m["mota"], min),
            ("IDF1", lambda m: m["idf1"], min),
            ("x real time (CPU)", lambda m: m["rtf"], min)]
    lines = ["| setting | " + " | ".join(c for c, _, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, per_seed in results.items():
        ms = list(per_seed.values())
        cells = []
        for _, get, worst in cols:
            v = np.array([get(m) for m in ms], dtype=float)
            fmt = "{:.2f}" if np.nanmax(np.abs(v)) >= 0.095 or not len(v) else "{:.3f}"
            cells.append(f"{fmt.format(np.nanmean(v))} ({fmt.format(worst(v))})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)



def table_wide(results: dict) -> str:
    """Markdown table of the second accounting (:data:`WIDE_RADIUS`): mean (worst)."""
    cols = [("recall 1-2 m", lambda m: m["wide"]["recall"]["1-2"], min),
            ("2-3 m", lambda m: m["wide"]["recall"]["2-3"], min),
            ("3-4.5 m", lambda m: m["wide"]["recall"]["3-4.5"], min),
            ("all", lambda m: m["wide"]["recall_all"], min),
            ("false obs / frame", lambda m: m["wide"]["false_per_frame"], max),
            ("3D median error (m)", lambda m: m["wide"]["median_error_m"], max),
            ("3D max error (m)", lambda m: m["wide"]["max_error_m"], max)]
    lines = ["| setting | " + " | ".join(c for c, _, _ in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, per_seed in results.items():
        cells = []
        for _, get, worst in cols:
            v = np.array([get(m) for m in per_seed.values()], dtype=float)
            fmt = "{:.2f}" if np.nanmax(np.abs(v)) >= 0.095 or not len(v) else "{:.3f}"
            cells.append(f"{fmt.format(np.nanmean(v))} ({fmt.format(worst(v))})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
