"""CPU cost of the /tf path per image: ``process --fixed-frame base_link`` on a bag with a
turning head (BENCHMARKS.md, "Publication latency" and "Head motion", "The /tf path's
cost"), in this tree and optionally a baseline tree, alternating, in the same run.

    PYTHONPATH=. python bench/bench_tf_cost.py --bags /tmp/hm/pan_206/bag \
        /tmp/hm/still_206/bag --baseline /tmp/base --reps 3

Each run is a child process with the tree on its ``PYTHONPATH`` that runs
:func:`av_perception.offline.process_bag` (``tracking.fixed_frame base_link`` on every
bag: a still head's bag gives the /tf path's cost without the turning) with the CPU time
of its own thread (``time.thread_time``, robust to other load on the machine) measured
around the tracking stage's step per image (tracker, pose lookups, attention), the /tf
insertions, the pose lookups of the image loop, the vision stage per image and the audio
front-end.  Also the tracker's counts: audio batches (variational updates with ITDs),
variational iterations, pose lookups.  Medians over ``--reps`` runs per tree.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from av_perception import offline
from av_perception.pipeline import tracking as tracking_mod
from av_perception.pipeline import poses as poses_mod
from av_perception.pipeline.vision import VisionPipeline
from av_perception.core.tracking import tracker as tracker_mod
from av_perception.pipeline import TrackingConfig

acc = {}
def timed(cls, name, key):
    fn = getattr(cls, name)
    def wrapper(*a, **k):
        t0 = time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            n, s = acc.get(key, (0, 0.0))
            acc[key] = (n + 1, s + time.thread_time() - t0)
    setattr(cls, name, wrapper)

timed(tracking_mod.TrackingPipeline, "step", "step")
timed(tracking_mod.TrackingPipeline, "add_transform", "add_transform")
timed(poses_mod.HeadPoses, "camera_pose", "camera_pose")
timed(VisionPipeline, "process_pair", "vision")
timed(offline, "bag_audio_features", "audio_front_end")
timed(tracker_mod.Tracker, "_update_audio_batch", "audio_batch")
stats = {}
orig_init = tracking_mod.TrackingPipeline.__init__
def init(self, *a, **k):
    orig_init(self, *a, **k)
    stats["pipe"] = self
tracking_mod.TrackingPipeline.__init__ = init
bag, out = sys.argv[1], sys.argv[2]
t0 = time.process_time()
res = offline.process_bag(bag, out, {TrackingConfig: TrackingConfig(fixed_frame="base_link")})
cpu = time.process_time() - t0
pipe = stats["pipe"]
import av_perception
assert av_perception.__file__.startswith(sys.argv[3]), av_perception.__file__
print(json.dumps({"acc": acc, "frames": res.frames, "cpu": cpu,
                  "vb_iterations": pipe.tracker.stats["vb_iterations"],
                  "lookups": pipe.poses.lookups}))
"""


def run_child(tree: Path, bag: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-c", CHILD, str(Path(bag).resolve()),
                            str(Path(tmp) / "t.csv"), str(tree)],
                           env=env, cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def summary(res: dict) -> dict:
    acc, n = res["acc"], res["frames"]
    ms = {k: 1e3 * v[1] for k, v in acc.items()}
    return {"step ms/image": ms["step"] / n,
            "tf insert ms/image": ms.get("add_transform", 0.0) / n,
            "pose lookups ms/image": ms.get("camera_pose", 0.0) / n,
            "vision ms/image": ms["vision"] / n,
            "audio batches": acc.get("audio_batch", (0, 0))[0],
            "vb iterations": res["vb_iterations"], "pose lookups": res["lookups"],
            "audio front-end s": ms["audio_front_end"] / 1e3, "process CPU s": res["cpu"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bags", nargs="+", required=True)
    ap.add_argument("--baseline", help="source tree to compare with (e.g. a main worktree)")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    trees = [("this tree", Path(__file__).resolve().parents[1])]
    if a.baseline:
        trees.insert(0, ("baseline", Path(a.baseline).resolve()))
    load = os.getloadavg()[0]
    for bag in a.bags:
        runs = {name: [] for name, _ in trees}
        for _ in range(a.reps):
            for name, tree in trees:  # alternating: the trees share the machine's load
                runs[name].append(summary(run_child(tree, bag)))
        print(f"\n{bag} ({a.reps} runs per tree, medians; load average at start {load:.1f})")
        keys = list(runs[trees[0][0]][0])
        print("| tree | " + " | ".join(keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for name, _ in trees:
            med = [statistics.median(r[k] for r in runs[name]) for k in keys]
            print(f"| {name} | " + " | ".join(f"{v:.3g}" for v in med) + " |", flush=True)


if __name__ == "__main__":
    main()
