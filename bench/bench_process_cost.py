"""CPU cost of the whole pipeline (``av-perception process``) on one core, per setting
(BENCHMARKS.md, "Lip cue in the tracker", whole-pipeline cost; issues 17/18: >= 2x real
time, i.e. <= 0.5 CPU s per s of scene).

    PYTHONPATH=. python bench/bench_process_cost.py --presets default double_talk \
        --seeds 301 302 303 304 305 --reps 2 --out /tmp/process_cost

Per preset and seed: ``simulate`` (the preset's duration, 15 s) when the scene is not
there, then ``process`` once per setting (:data:`SETTINGS`, the settings interleaved so
that they share the machine's load), each run a child process pinned to one CPU
(``--cpu``); its user + system CPU time (``os.wait4``) / the scene's length is the cost,
start-up included.  ``--baseline DIR``: first, the same with the defaults of another
source tree (e.g. ``git worktree add /tmp/base main``; warm its numba cache first), the
baseline of the ratios (with ``--separate``: its ``process`` and its ``separate``, each
before the current tree's).  ``--defaults-only``: no other setting than the defaults.
On the first scene a ``--duration 1`` run of each setting gives
the fixed start-up (imports, numba's cache, model loading): the steady cost per s is
(full - short) / (length - 1).  ``--evaluate``: also ``evaluate --json`` of each
setting's track file (MOTA, IDF1, speaking F1), to check that a faster setting tracks
the same.  ``--separate``: the settings are ``process`` and ``separate`` (each track's
voice, ``voices.*`` defaults) with the defaults, the same way (issue 20: ``separate`` >= 3x
real time on one core with three tracks; the voice files written are counted).
``--set SECTION.FIELD=VALUE ...``: one more setting, the last command (``separate`` with
``--separate``) with these parameters (e.g. ``detection.every_k=6``).

    PYTHONPATH=. python bench/bench_process_cost.py --separate --presets default \
        --seeds 301 302 303 304 305 --out /tmp/separate_cost
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench_speaking_lips import _value, params_file  # the same ROS-params writer

#: (label, params {section.field: value}); the first is the baseline of the ratios
SETTINGS = (("defaults (model runtime litert when installed)", {}),
            ("model runtime opencv (as before 2026-12-07)",
             {"detection.model_runtime": "opencv", "lips.model_runtime": "opencv"}))


def cli(*args, cpu: int | None = None, tree: str | None = None) -> float:
    """Run ``av-perception ARGS`` (stdout discarded; from source tree ``tree`` when
    given); its CPU s (user + system)."""
    def pin():
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    env = None
    if tree:
        env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    proc = subprocess.Popen([sys.executable, "-m", "av_perception.cli", *args],
                            stdout=subprocess.DEVNULL, preexec_fn=pin, env=env,
                            cwd=tree or None)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"av-perception {' '.join(args)} failed ({proc.returncode})")
    return usage.ru_utime + usage.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["default", "double_talk"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303, 304, 305])
    ap.add_argument("--reps", type=int, default=1, help="runs of each setting per scene")
    ap.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)),
                    help="the CPU every run is pinned to")
    ap.add_argument("--out", default="/tmp/process_cost")
    ap.add_argument("--evaluate", action="store_true", help="also MOTA, IDF1, speaking F1")
    ap.add_argument("--baseline", help="source tree whose defaults are the first setting")
    ap.add_argument("--separate", action="store_true",
                    help="compare process and separate (defaults) instead of SETTINGS")
    ap.add_argument("--defaults-only", action="store_true",
                    help="only the defaults (and the baseline), not the other SETTINGS")
    ap.add_argument("--set", nargs="+", default=[], metavar="SECTION.FIELD=VALUE",
                    help="also run the command (separate with --separate, else process) "
                         "with these parameters, after the defaults on each scene (e.g. "
                         "detection.every_k=6)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = (list(SETTINGS[:1] if a.defaults_only else SETTINGS) if not a.separate else
                [("process (defaults)", {}), ("separate (defaults)", {})])
    commands = ["process"] * len(settings)
    if a.separate:
        commands[1] = "separate"
    if a.set:
        values = {k: _value(v) for k, v in (kv.split("=", 1) for kv in a.set)}
        settings.append((f"{commands[-1]} with {', '.join(a.set)}", values))
        commands.append(commands[-1])
    trees = [None] * len(settings)
    if a.baseline:
        for cmd in (["separate", "process"] if a.separate else ["process"]):
            settings.insert(0, (f"baseline {a.baseline} {cmd} (its defaults)", {}))
            trees.insert(0, a.baseline)
            commands.insert(0, cmd)
    configs = [params_file(out / f"setting{i}.yaml", v) for i, (_, v) in enumerate(settings)]
    costs: dict = {i: [] for i in range(len(settings))}
    startup: dict = {i: [] for i in range(len(settings))}
    quality: dict = {i: [] for i in range(len(settings))}
    first = True
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
                    target = tracks
                    if commands[i] == "separate":
                        target = d / f"voices{i}"
                        tracks = target / "tracks.csv"
                    cpu = cli(commands[i], str((d / "bag").resolve()), "-o",
                              str(target.resolve()), "--config", str(cfg.resolve()), "--quiet",
                              cpu=a.cpu, tree=trees[i])
                    costs[i].append(cpu / length)
                    note = ""
                    if commands[i] == "separate":
                        note = f"; {len(list(target.glob('voice_*.wav')))} voice file(s)"
                    if first and commands[i] == "process":
                        short = cli("process", str((d / "bag").resolve()), "-o",
                                    str((out / "short.csv").resolve()), "--config",
                                    str(cfg.resolve()), "--duration", "1", "--quiet",
                                    cpu=a.cpu, tree=trees[i])
                        startup[i].append((short, (cpu - short) / (length - 1.0)))
                        note += (f"; 1 s run {short:.2f} CPU s, steady "
                                f"{(cpu - short) / (length - 1.0):.3f} per s")
                    print(f"{preset} {seed} rep {rep} {settings[i][0]}: {cpu:.2f} CPU s "
                          f"({cpu / length:.3f} per s of scene, {length / cpu:.2f}x real "
                          f"time){note}", flush=True)
                    if a.evaluate and rep == 0:
                        ev = out / f"eval{i}.json"
                        subprocess.run([sys.executable, "-m", "av_perception.cli", "evaluate",
                                        str(d), str(tracks), "--json", str(ev)],
                                       check=True, stdout=subprocess.DEVNULL)
                        e = json.loads(ev.read_text())
                        quality[i].append((e["tracking"]["mota"], e["tracking"]["idf1"],
                                           e["speaking"]["f1"]))
                        mota, idf1, f1 = quality[i][-1]
                        print(f"  MOTA {mota:.3f} IDF1 {idf1:.3f} speaking F1 {f1:.3f}",
                              flush=True)
                first = False
    print("\nsetting | CPU s per s of scene: mean (min-max) | x real time (worst) | "
          "ratio to the first of its command | "
          "start-up CPU s | steady CPU s per s | MOTA / IDF1 / speaking F1 mean (worst)")
    for i, (label, _) in enumerate(settings):
        c = costs[i]
        m = sum(c) / len(c)
        ref = costs[commands.index(commands[i])]
        base = sum(ref) / len(ref)
        su = sum(s for s, _ in startup[i]) / max(len(startup[i]), 1)
        st = sum(s for _, s in startup[i]) / max(len(startup[i]), 1)
        q = ""
        if quality[i]:
            cols = list(zip(*quality[i]))
            q = " / ".join(f"{sum(v) / len(v):.3f} ({min(v):.3f})" for v in cols)
        up = f"{su:.2f} | {st:.3f}" if startup[i] else "- | -"
        print(f"{label} | {m:.3f} ({min(c):.3f}-{max(c):.3f}) | {1 / m:.2f} ({1 / max(c):.2f}) "
              f"| {m / base:.2f} | {up} | {q}")


if __name__ == "__main__":
    main()
