"""Speaking status with the lip cue on vs off, through the whole pipeline
(BENCHMARKS.md, "Visual speech activity", "Lip cue in the tracker").

    PYTHONPATH=. python bench/bench_speaking_lips.py --seeds 301 302 303 304 305 \
        --presets default two_static hard --out /tmp/speaking_lips

Per preset and seed: ``simulate --duration 10`` (talking faces, the default; preset
``one_bearing``: the ``two_static`` scene of the seed with both people on one bearing,
:func:`one_bearing_scene`, through ``simulate --scene``), then
``process`` twice -- the defaults (lip cue on) and with ``lips.enabled: false`` --
and ``evaluate --json``; prints speaking F1, MOTA, IDF1 of both, mean and worst per
preset, and the CPU seconds of each ``process`` run per second of scene.
``--set section.field value`` (repeatable) adds parameters to both runs (tuning: seeds
0-4 only).

    PYTHONPATH=. python bench/bench_speaking_lips.py --cost --presets default --seeds 301

``--cost``: the visual front-end alone over each scene's bag (in this process, detection
in the frame as ``process``), CPU time per frame of each step, the lip cue's per mesh,
with the lip cue off and on (:data:`COST_SETTINGS`: a mesh on every face of every frame,
``lips.max_faces_per_frame`` 2, ``lips.every_k`` 2 and 3).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path


def run(*args):
    subprocess.run([sys.executable, "-m", "av_perception.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)


def one_bearing_scene(out: Path, seed: int, duration: float) -> Path:
    """``two_static`` of ``seed`` with its second person moved onto the first one's bearing:
    seated at 2.2 m (head 0.2 m below the camera) and standing behind at 3.3 m (0.6 m
    above the near head); same voices, faces and turns.  Returns the scene JSON."""
    base = out / f"two_static_{seed}"
    if not (base / "scene.json").exists():
        run("simulate", str(base), "--preset", "two_static", "--seed", str(seed),
            "--duration", str(duration), "--quiet", "--overwrite")
    scene = json.loads((base / "scene.json").read_text())
    near, far = scene["people"][0], scene["people"][1]
    t0, x0, _, z0 = near["waypoints"][0]
    near["waypoints"] = [[t0, x0, -0.2, z0]]
    far["waypoints"] = [[t0, x0 * 3.3 / z0, -0.6, 3.3]]
    scene["name"] = "one_bearing"
    scene["description"] = "two_static with both people on one bearing, 2.2 m and 3.3 m"
    path = out / f"one_bearing_{seed}.json"
    path.write_text(json.dumps(scene))
    return path


def simulate(out: Path, preset: str, seed: int, duration: float) -> Path:
    d = out / f"{preset}_{seed}"
    if not (d / "bag").exists():
        if preset == "one_bearing":
            run("simulate", str(d), "--scene", str(one_bearing_scene(out, seed, duration)),
                "--quiet", "--overwrite")
        else:
            run("simulate", str(d), "--preset", preset, "--seed", str(seed), "--duration",
                str(duration), "--quiet", "--overwrite")
    return d


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def params_file(path: Path, values: dict) -> Path:
    """A ROS-params YAML for every node with ``{"section.field": value}``."""
    sections: dict = {}
    for key, v in values.items():
        sec, name = key.split(".", 1)
        sections.setdefault(sec, {})[name] = v
    lines = ["/**:", "  ros__parameters:"]
    for sec, kv in sections.items():
        lines.append(f"    {sec}:")
        lines += [f"      {k}: {json.dumps(v)}" for k, v in kv.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def summary(ev: dict) -> dict:
    t, s = ev.get("tracking", {}), ev.get("speaking", {})
    return {"f1": s.get("f1"), "precision": s.get("precision"), "recall": s.get("recall"),
            "mota": t.get("mota"), "idf1": t.get("idf1")}


#: --cost: lip cue settings (label, LipConfig fields)
COST_SETTINGS = (("every frame", {"max_faces_per_frame": 0}),
                 ("max_faces_per_frame 2 (default)", {"max_faces_per_frame": 2}),
                 ("every_k 2", {"every_k": 2, "max_faces_per_frame": 0}),
                 ("every_k 3", {"every_k": 3, "max_faces_per_frame": 0}),
                 ("off", {"enabled": False}))


def cost(scene_dirs) -> None:
    """CPU ms per frame of the front-end with the lip cue off and on (a mesh on every face
    of every frame, at most two per frame, every second or third frame per face), its
    steps (wall), and the face mesh per mesh."""
    import time

    from av_perception.core.lip_activity import LipConfig
    from av_perception.io.stereo_sources import BagStereoSource
    from av_perception.pipeline import VisionPipeline

    for d, (setting, fields) in [(d, e) for d in scene_dirs for e in COST_SETTINGS]:
        pipe = VisionPipeline(lips=LipConfig(**fields))
        pipe.warm_up()
        steps: dict = {}
        frames = 0
        with BagStereoSource(str(d / "bag")) as src:
            c0 = time.process_time()
            for stamp, left, right, cal in src:
                pipe.process_pair(left, right, stamp, cal)
                frames += 1
                for step, v in pipe.front_end.last_timing.items():
                    steps[step] = steps.get(step, 0.0) + v
            cpu = time.process_time() - c0
        lips = pipe.front_end.lips
        per = {step: 1000.0 * v / frames for step, v in steps.items()}
        print(f"{d.name} lips {setting}: {frames} frames, "
              f"CPU {1000.0 * cpu / frames:.1f} ms/frame; "
              + ", ".join(f"{k} {v:.1f}" for k, v in per.items()) + " ms/frame (wall)"
              + (f"; meshes {lips.stats['meshed']} ({lips.stats['meshed'] / frames:.2f}/frame), "
                 f"{1000.0 * lips.stats['time'] / max(lips.stats['meshed'], 1):.2f} ms per mesh"
                 if lips is not None else ""), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303, 304, 305])
    ap.add_argument("--presets", nargs="+", default=["default", "two_static", "hard"])
    ap.add_argument("--out", default="/tmp/speaking_lips")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--set", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--tag", default="", help="suffix of the result files (tuning runs)")
    ap.add_argument("--only", choices=("on", "off"), help="run one setting only")
    ap.add_argument("--cost", action="store_true", help="front-end cost only (see above)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.cost:
        cost([simulate(out, p, s, a.duration) for p in a.presets for s in a.seeds])
        return
    extra = {k: _value(v) for k, v in a.set}
    cfg = {"on": params_file(out / f"on{a.tag}.yaml", extra),
           "off": params_file(out / f"off{a.tag}.yaml", {**extra, "lips.enabled": False})}
    kinds = [a.only] if a.only else ["on", "off"]
    results: dict = {}
    for preset in a.presets:
        for seed in a.seeds:
            d = simulate(out, preset, seed, a.duration)
            for kind in kinds:
                tracks = d / f"tracks_{kind}{a.tag}.csv"
                c0 = cpu_children()
                run("process", str(d / "bag"), "-o", str(tracks), "--quiet", "--config",
                    str(cfg[kind]))
                cpu = cpu_children() - c0
                js = d / f"eval_{kind}{a.tag}.json"
                run("evaluate", str(d), str(tracks), "--json", str(js))
                r = summary(json.loads(js.read_text())) | {"cpu_per_s": cpu / a.duration}
                results[(preset, seed, kind)] = r
                print(preset, seed, kind, json.dumps(r), flush=True)
    print("\n| preset | seed | " + " | ".join(f"F1 {k}" for k in kinds)
          + " | " + " | ".join(f"MOTA {k}" for k in kinds) + " | "
          + " | ".join(f"IDF1 {k}" for k in kinds) + " | "
          + " | ".join(f"CPU s/s {k}" for k in kinds) + " |")
    print("|---|---|" + "---:|" * (4 * len(kinds)))
    for preset in a.presets:
        for seed in a.seeds:
            r = [results[(preset, seed, k)] for k in kinds]
            print(f"| {preset} | {seed} | " + " | ".join(f"{x['f1']:.3f}" for x in r) + " | "
                  + " | ".join(f"{x['mota']:.3f}" for x in r) + " | "
                  + " | ".join(f"{x['idf1']:.3f}" for x in r) + " | "
                  + " | ".join(f"{x['cpu_per_s']:.2f}" for x in r) + " |")
    print("\n| preset | setting | speaking F1 mean | worst | MOTA mean | worst | IDF1 mean "
          "| worst |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for preset in a.presets:
        for k in kinds:
            rs = [results[(preset, s, k)] for s in a.seeds]
            cells = []
            for key in ("f1", "mota", "idf1"):
                v = [x[key] for x in rs]
                cells += [f"{sum(v) / len(v):.3f}", f"{min(v):.3f}"]
            print(f"| {preset} | lips {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
