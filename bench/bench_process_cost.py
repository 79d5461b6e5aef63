"""CPU cost of the whole pipeline (``av-perception process``) on one core, per setting
(BENCHMARKS.md, "Lip cue in the tracker", whole-pipeline cost; issues 17/18: >= 2x real
time, i.e. <= 0.5 CPU s per s of scene).

    PYTHONPATH=. python bench/bench_process_cost.py --presets default double_talk \
        --seeds 301 302 303 304 305 --reps 2 --out /tmp/process_cost

Per preset and seed: ``simulate`` (the preset's duration, 15 s) when the scene is not
there, then ``process`` once per setting (:data:`SETTINGS`, the settings interleaved so
that they share the machine's load), each run a child process pinned to one CPU
(``--cpu``); its user + system CPU time (``os.wait4``) / the scene's length is the cost,
start-up included.  A ``--duration 1`` run of each setting gives the fixed start-up
(imports, numba's cache, model loading): the steady cost per s is (full - short) /
(length - 1).  ``--evaluate``: also ``evaluate --json`` of each setting's track file
(MOTA, IDF1, speaking F1), to check that a faster setting tracks the same.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

#: (label, params {section.field: value}); the first is the baseline of the ratios
SETTINGS = (("opencv (DNN runtime before 2026-12-07)",
             {"detection.model_runtime": "opencv", "lips.model_runtime": "opencv"}),
            ("default (litert when installed)", {}),
            ("lips off, default runtime", {"lips.enabled": False}))


def cli(*args, cpu: int | None = None) -> float:
    """Run ``av-perception ARGS`` (stdout discarded); its CPU s (user + system)."""
    def pin():
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    proc = subprocess.Popen([sys.executable, "-m", "av_perception.cli", *args],
                            stdout=subprocess.DEVNULL, preexec_fn=pin)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"av-perception {' '.join(args)} failed ({proc.returncode})")
    return usage.ru_utime + usage.ru_stime


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["default", "double_talk"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303, 304, 305])
    ap.add_argument("--reps", type=int, default=1, help="runs of each setting per scene")
    ap.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)),
                    help="the CPU every run is pinned to")
    ap.add_argument("--out", default="/tmp/process_cost")
    ap.add_argument("--evaluate", action="store_true", help="also MOTA, IDF1, speaking F1")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    configs = [params_file(out / f"setting{i}.yaml", v) for i, (_, v) in enumerate(SETTINGS)]
    costs: dict = {i: [] for i in range(len(SETTINGS))}
    startup: dict = {i: [] for i in range(len(SETTINGS))}
    quality: dict = {i: [] for i in range(len(SETTINGS))}
    for preset in a.presets:
        for seed in a.seeds:
            d = out / f"{preset}_{seed}"
            if not (d / "bag").exists():
                cli("simulate", str(d), "--preset", preset, "--seed", str(seed), "--quiet",
                    "--overwrite")
            length = json.loads((d / "scene.json").read_text())["duration"]
            for rep in range(a.reps):
                for i, cfg in enumerate(configs):
                    tracks = d / f"tracks{i}.csv"
                    cpu = cli("process", str(d / "bag"), "-o", str(tracks), "--config",
                              str(cfg), "--quiet", cpu=a.cpu)
                    short = cli("process", str(d / "bag"), "-o", str(out / "short.csv"),
                                "--config", str(cfg), "--duration", "1", "--quiet", cpu=a.cpu)
                    costs[i].append(cpu / length)
                    startup[i].append((short, (cpu - short) / (length - 1.0)))
                    print(f"{preset} {seed} rep {rep} {SETTINGS[i][0]}: {cpu:.2f} CPU s "
                          f"({cpu / length:.3f} per s of scene); 1 s run {short:.2f} CPU s, "
                          f"steady {(cpu - short) / (length - 1.0):.3f} per s", flush=True)
                    if a.evaluate and rep == 0:
                        ev = out / f"eval{i}.json"
                        subprocess.run([sys.executable, "-m", "av_perception.cli", "evaluate",
                                        str(d), str(tracks), "--json", str(ev)],
                                       check=True, stdout=subprocess.DEVNULL)
                        e = json.loads(ev.read_text())
                        quality[i].append((e["tracking"]["mota"], e["tracking"]["idf1"],
                                           e["speaking"]["f1"]))
    base = sum(costs[0]) / len(costs[0])
    print("\nsetting | CPU s per s of scene: mean (min-max) | ratio to the first | "
          "start-up CPU s | steady CPU s per s | MOTA / IDF1 / speaking F1 mean (worst)")
    for i, (label, _) in enumerate(SETTINGS):
        c = costs[i]
        m = sum(c) / len(c)
        su = sum(s for s, _ in startup[i]) / len(startup[i])
        st = sum(s for _, s in startup[i]) / len(startup[i])
        q = ""
        if quality[i]:
            cols = list(zip(*quality[i]))
            q = " / ".join(f"{sum(v) / len(v):.3f} ({min(v):.3f})" for v in cols)
        print(f"{label} | {m:.3f} ({min(c):.3f}-{max(c):.3f}) | {m / base:.2f} | {su:.2f} | "
              f"{st:.3f} | {q}")


if __name__ == "__main__":
    main()
