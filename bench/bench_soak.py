"""Soak: a long simulated session through ``process`` and through the nodes (``replay``).

Target (issue 16): one hour with flat memory and no growth of latency.

The session: ``--loop-scene BAG`` plays a rendered scene (``av-perception simulate OUT
--preset default --seed 1 --duration 60 --compressed --format mcap``) again and again into
one bag of ``--seconds``, each pass shifted by the scene's length plus one frame period
(what ``replay --loop`` does): stamps only go forward, never repeat, and both paths read the
same hour.  Without it the scene is rendered at its full length instead (``simulate
--duration SECONDS``; an hour renders at about a fifth of real time and its audio needs
~6 GB while rendering), or ``--bag`` reuses a session.

Two paths, each in its own process (``--mode both`` runs them one after the other, or at
the same time with ``--parallel``):

* ``process``: :func:`~av_perception.offline.process_bag` (what ``av-perception process``
  runs) over the bag as fast as it goes; per-frame time = wall time from one frame's
  output to the next (stereo front-end + tracker + CSV row), sampled against bag time;
* ``nodes``: :func:`~av_perception.nodes.replay.replay` (what ``av-perception replay``
  runs): the bag published in real time (``--rate``), visual_features_node and
  tracker_node in the same process with ``use_sim_time``; latency = the tracker node's
  own stamp -> ``speakers`` publication latency (what it reports on /diagnostics; sim
  time, /clock every 10 ms), plus the tracker step's wall time.

RSS (VmRSS from /proc/self/status) is sampled every ``--sample`` s of wall time.
Reported per path: peak RSS, RSS at the end of the first window and at the end, the
RSS slope (least squares) over the last ``--slope-minutes`` minutes, and the per-frame
time / latency percentiles per ``--window`` s of bag time with the growth ratio of the
last window over the first.  Writes a JSON of every sample next to the markdown.

Run: ``nice .venv/bin/python bench/bench_soak.py --mode both --parallel --seconds 3600
--loop-scene OUT/bag``; SIGINT to a path's process ends it early with the summary of
what ran.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class Sampler:
    """RSS every ``period`` s of wall time, with the bag time reached (``progress``)."""

    def __init__(self, period: float):
        self.period = period
        self.samples: list = []  # (wall s, bag s, rss MB)
        self.bag_time = 0.0
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss_sampler")

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while True:
            self.samples.append((time.monotonic() - self.t0, self.bag_time, rss_mb()))
            if self._stop.wait(self.period):
                return

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic() - self.t0, self.bag_time, rss_mb()))


def run_process(args, sampler: Sampler) -> dict:
    from av_perception.offline import process_bag

    frames = []  # (bag s, wall s per frame)
    last = [time.perf_counter()]
    t_first = [None]

    def on_frame(frame, out, header):
        now = time.perf_counter()
        stamp = float(frame.stamp)
        if t_first[0] is None:
            t_first[0] = stamp
        frames.append((stamp - t_first[0], now - last[0]))
        last[0] = now
        sampler.bag_time = stamp - t_first[0]

    out = Path(args.workdir) / "soak_tracks.csv"
    t0 = time.perf_counter()
    try:
        result = process_bag(args.bag, out, duration=args.seconds, on_frame=on_frame)
    except KeyboardInterrupt:  # SIGINT: report what ran
        return {"frames": frames, "wall": time.perf_counter() - t0, "interrupted": True}
    return {"frames": frames, "wall": time.perf_counter() - t0, "rows": result.rows,
            "errors": result.errors[:10], "tracks": len(result.track_ids),
            "processed_frames": result.frames, "resets": result.resets,
            "audio_only_steps": result.audio_only_steps}


def run_nodes(args, sampler: Sampler) -> dict:
    import _thread

    from av_perception.nodes import tracking_stage
    from av_perception.nodes.replay import ReplayOptions, replay

    records = []  # (bag s, stamp->publication latency s, tracker step wall s)
    first = [None]
    orig_step = tracking_stage.TrackingStage.step

    def step(self, stamp, *a, **kw):
        t = time.perf_counter()
        out = orig_step(self, stamp, *a, **kw)
        dt = time.perf_counter() - t
        if out is not None:
            if first[0] is None:
                first[0] = float(stamp)
            lat = self.outputs.latencies[-1] if self.outputs.latencies else float("nan")
            records.append((float(stamp) - first[0], lat, dt))
            sampler.bag_time = float(stamp) - first[0]
            if sampler.bag_time >= args.seconds:
                _thread.interrupt_main()  # replay ends on KeyboardInterrupt
        return out

    tracking_stage.TrackingStage.step = step
    logs = []
    t0 = time.perf_counter()
    try:
        code = replay(ReplayOptions(bag=args.bag, rate=args.rate, loop=args.loop),
                      log=logs.append)
    except KeyboardInterrupt:
        code = 0
    return {"records": records, "wall": time.perf_counter() - t0, "exit": code,
            "log": logs[-10:]}


def _percentiles(x):
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return [float("nan")] * 4
    return [float(np.percentile(x, q)) for q in (50, 90, 99)] + [float(x.max())]


def summarize(name: str, samples, series, window: float, slope_minutes: float) -> dict:
    """Memory and per-window percentiles of (bag s, value s) ``series``."""
    s = np.asarray(samples, dtype=float)
    wall, bag, rss = s[:, 0], s[:, 1], s[:, 2]
    t_end = bag.max()
    last = bag >= t_end - 60.0 * slope_minutes
    slope = float(np.polyfit(wall[last], rss[last], 1)[0]) * 60.0 if last.sum() > 2 else \
        float("nan")  # MB per minute of wall time
    slope_bag = float(np.polyfit(bag[last], rss[last], 1)[0]) * 60.0 if last.sum() > 2 else \
        float("nan")  # MB per minute of bag time
    after_first = rss[bag >= min(window, t_end)]
    ser = np.asarray(series, dtype=float).reshape(-1, 2)
    windows = []
    n_win = max(int(np.ceil(ser[:, 0].max() / window - 1e-9)), 1) if len(ser) else 0
    for k in range(n_win):
        sel = (ser[:, 0] >= k * window) & (ser[:, 0] < (k + 1) * window)
        if k == n_win - 1:
            sel |= ser[:, 0] >= (k + 1) * window
        p50, p90, p99, mx = _percentiles(ser[sel, 1])
        windows.append({"from_s": k * window, "to_s": min((k + 1) * window, t_end),
                        "n": int(sel.sum()), "p50_ms": 1e3 * p50, "p90_ms": 1e3 * p90,
                        "p99_ms": 1e3 * p99, "max_ms": 1e3 * mx})
    full = [w for w in windows if w["n"]]
    growth = ({q: full[-1][q] / full[0][q] for q in ("p50_ms", "p99_ms")}
              if len(full) > 1 else {})
    return {"name": name, "peak_rss_mb": float(rss.max()),
            "rss_after_first_window_mb": float(after_first[0]) if len(after_first) else
            float("nan"),
            "rss_end_mb": float(rss[-1]), "slope_mb_per_min": slope,
            "slope_mb_per_bag_min": slope_bag, "slope_minutes": slope_minutes,
            "bag_seconds": float(t_end), "wall_seconds": float(wall.max()),
            "windows": windows, "growth_last_over_first": growth}


def markdown(summary: dict) -> str:
    s = summary
    lines = [f"**{s['name']}**: {s['bag_seconds']:.0f} s of bag in {s['wall_seconds']:.0f} s; "
             f"peak RSS {s['peak_rss_mb']:.0f} MB; RSS {s['rss_after_first_window_mb']:.0f} MB "
             f"after the first window, {s['rss_end_mb']:.0f} MB at the end; slope over the "
             f"last {s['slope_minutes']:g} min {s['slope_mb_per_min']:+.3f} MB/min of wall "
             f"time ({s['slope_mb_per_bag_min']:+.3f} MB per bag minute); last/first window "
             + ", ".join(f"{k[:-3]} {v:.2f}" for k, v in s["growth_last_over_first"].items()),
             "",
             "| bag window (s) | n | p50 (ms) | p90 | p99 | max |",
             "|---|---:|---:|---:|---:|---:|"]
    for w in s["windows"]:
        lines.append(f"| {w['from_s']:.0f}–{w['to_s']:.0f} | {w['n']} | {w['p50_ms']:.1f} | "
                     f"{w['p90_ms']:.1f} | {w['p99_ms']:.1f} | {w['max_ms']:.1f} |")
    return "\n".join(lines)


def loop_bag(src, dst, seconds: float) -> Path:
    """A session of ``seconds`` from a rendered scene played again and again, as ``replay
    --loop`` does: every pass adds the scene's length plus one frame period to all header
    stamps and recording times, so time only goes forward (no repeated stamps).  The
    stamps are patched in the CDR bytes (every message here starts with its Header)."""
    import struct

    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    dst = Path(dst)
    with Reader(src) as r:
        conns = list(r.connections)
        msgs = [(c.id, t, bytes(raw)) for c, t, raw in r.messages()]
        start, length = r.start_time, r.duration
    left = [t for cid, t, _ in msgs if "left/image" in next(
        c.topic for c in conns if c.id == cid)]
    period = length + (left[1] - left[0] if len(left) > 1 else 0)
    passes = int(np.ceil(seconds * 1e9 / period))
    plugin = StoragePlugin.MCAP if any(Path(src).glob("*.mcap")) else StoragePlugin.SQLITE3
    with Writer(dst, version=9, storage_plugin=plugin) as w:
        out = {c.id: w.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data,
                                      rihs01=c.digest) for c in conns}
        for k in range(passes):
            off = k * period
            for cid, t, raw in msgs:
                if t + off - start > seconds * 1e9:
                    continue
                assert raw[1] == 1, "little-endian CDR expected"
                sec, nsec = struct.unpack_from("<iI", raw, 4)
                ns = sec * 10**9 + nsec + off
                buf = bytearray(raw)
                struct.pack_into("<iI", buf, 4, ns // 10**9, ns % 10**9)
                w.write(out[cid], t + off, bytes(buf))
    return dst


def ensure_bag(args) -> None:
    if args.loop_scene:
        out = Path(args.workdir) / f"looped_{int(args.seconds)}"
        if not out.exists():
            print(f"writing {out} from {args.loop_scene}", file=sys.stderr, flush=True)
            loop_bag(args.loop_scene, out, args.seconds)
        args.bag = str(out)
    if args.bag:
        return
    out = Path(args.workdir) / f"session_{int(args.seconds)}"
    if not (out / "bag").exists():
        cmd = [sys.executable, "-m", "av_perception.cli", "simulate", str(out), "--preset",
               "default", "--seed", "1", "--duration", str(args.seconds), "--compressed",
               "--format", "mcap", "--overwrite"]
        print("rendering the session:", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    args.bag = str(out / "bag")


def one_mode(args) -> dict:
    sampler = Sampler(args.sample).start()
    if args.mode == "process":
        res = run_process(args, sampler)
        series = [(b, dt) for b, dt in res["frames"]]
        name = "process (per-frame time)"
    else:
        res = run_nodes(args, sampler)
        series = [(b, lat) for b, lat, _ in res["records"]]
        name = "nodes via replay (stamp -> speakers latency)"
    sampler.stop()
    summary = summarize(name, sampler.samples, series, args.window, args.slope_minutes)
    extra = {}
    if args.mode == "nodes":
        extra = summarize("nodes via replay (tracker step wall time)", sampler.samples,
                          [(b, dt) for b, _, dt in res["records"]], args.window,
                          args.slope_minutes)
    data = {"mode": args.mode, "bag": args.bag, "summary": summary, "step": extra,
            "samples": sampler.samples, "series": series,
            "info": {k: v for k, v in res.items() if k not in ("frames", "records")}}
    path = Path(args.workdir) / f"soak_{args.mode}.json"
    path.write_text(json.dumps(data))
    print(markdown(summary))
    if extra:
        print()
        print(markdown(extra))
    print(f"\n(samples: {path})", flush=True)
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3600.0, help="session length (s of bag)")
    ap.add_argument("--bag", help="a rendered session's bag (default: render one)")
    ap.add_argument("--loop-scene", metavar="BAG",
                    help="make the session from this rendered scene played again and again "
                         "with stamps increasing by its length each pass (as replay --loop)")
    ap.add_argument("--workdir", default="/tmp/av_soak", help="scratch directory")
    ap.add_argument("--mode", choices=("process", "nodes", "both"), default="both")
    ap.add_argument("--parallel", action="store_true",
                    help="with --mode both: run the two paths at the same time")
    ap.add_argument("--rate", type=float, default=1.0, help="replay rate of the nodes path")
    ap.add_argument("--loop", action="store_true",
                    help="replay --loop (stamps keep increasing) for a bag shorter than "
                         "--seconds")
    ap.add_argument("--sample", type=float, default=5.0, help="RSS sampling period (s)")
    ap.add_argument("--window", type=float, default=600.0, help="percentile window (s of bag)")
    ap.add_argument("--slope-minutes", type=float, default=30.0,
                    help="RSS slope over the last this many minutes of bag")
    args = ap.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    ensure_bag(args)
    if args.mode != "both":
        one_mode(args)
        return 0
    base = [sys.executable, __file__, "--seconds", str(args.seconds), "--bag", args.bag,
            "--workdir", args.workdir, "--rate", str(args.rate), "--sample", str(args.sample),
            "--window", str(args.window), "--slope-minutes", str(args.slope_minutes)]
    if args.loop:
        base.append("--loop")
    procs = []
    for mode in ("process", "nodes"):
        p = subprocess.Popen(base + ["--mode", mode], cwd=ROOT)
        if not args.parallel:
            p.wait()
        procs.append(p)
    return max(p.wait() for p in procs)


if __name__ == "__main__":
    sys.exit(main())
