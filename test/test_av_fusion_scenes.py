"""FusionPipeline on simulated scenes: real binaural features, noisy visual observations.

The audio is the simulator's reverberant room audio (pyroomacoustics image-source
method, babble of turn-taking voices, diffuse noise) run through the real
:class:`~av_perception.core.audio.BinauralFrontEnd` in 1024-sample chunks, stamped
like the simulator's bag.  The visual observations are built from the ground truth
of the people visible in each video frame (15 fps) with the noise of the stereo
front-end: depth sigma_z = z^2 * 0.25 px / (fx B) (fx = 500 px, B = 0.12 m),
1 cm laterally, 5 % missed detections, about one clutter point every 7 frames.
(Rendering and running the image front-end would add ~1 min per scene; the node
and image front-end have their own tests.)

Per preset, measured over every window whose end is at least one window length
after the scene start (one window per ``fusion.hop_length`` = 0.25 s):

* ``count``: fraction of windows whose number of seen (not out-of-view) clusters
  equals the number of people visible in at least half of the window's frames;
* ``err``: median / 90th percentile 3D distance (m) between the seen clusters and
  the people matched to them (Hungarian assignment, 0.6 m gate), against the
  person's average position over the window (what a window cluster estimates);
  ``err@end``: the same against the position at the window end (includes the
  lag of a 1 s window behind a walker, ~0.2 m at 0.45 m/s);
* ``speaker``: over the windows where exactly one person speaks (in >= 60 % of
  the window's frames, nobody else at all), the fraction where the event with
  the largest audio mass is the one matched to that speaker.

Seed 1, default parameters (2026-12-07: the clustering's ITD shrink model, the front-end's
precedence gate 0.7):

==========  ====  =======  =====  ===============  ===============  ===============
preset      dur   windows  count  err med / p90    err@end med/p90  speaker (n)
==========  ====  =======  =====  ===============  ===============  ===============
two_static  6 s   20       1.00   0.007 / 0.013    0.007 / 0.013    1.00 (14)
default     6 s   20       1.00   0.006 / 0.013    0.009 / 0.133    1.00 (15)
moving      8 s   28       0.89   0.007 / 0.023    0.013 / 0.218    0.88 (16)
==========  ====  =======  =====  ===============  ===============  ===============

Before the shrink model (gate 0.5): p90 0.014 / 0.018 / 0.030, speaker in ``moving``
0.69; with the memory not gated and no shrink model p90 0.115 / 0.233 / 0.045 (a talker's
tight, shrunk ITDs pulled its cluster along its weakest visual direction).

In ``moving`` the misses are windows where a walker passes behind the seated
talker (their azimuths differ by < 5 deg, ~35 us of ITD: the audio mass goes to
whichever cluster the reverberant ITDs favour) and the window in which a walker
enters the view.  The limits in LIMITS sit just beyond these numbers.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io.wavfile
from scipy.optimize import linear_sum_assignment

from av_perception.core.audio import BinauralFrontEnd
from av_perception.core.av_clustering import AVClusteringConfig
from av_perception.pipeline import FusionPipeline

FX, BASELINE, DISP_STD = 500.0, 0.12, 0.25
GATE = 0.6


def simulate_scene(preset, duration, outdir, seed=1):
    from av_perception.sim import make_scene, simulate

    scene = make_scene(preset, seed=seed, duration=duration)
    simulate(scene, outdir, write_bag=False)
    return scene


def audio_features(outdir, epoch, chunk=1024):
    """BinauralFeatures per chunk of the simulated WAV, stamped like the bag's audio."""
    fs, x = scipy.io.wavfile.read(outdir / "audio.wav")
    fe = BinauralFrontEnd()
    out = []
    for a in range(0, len(x), chunk):
        f = fe.process(x[a:a + chunk], fs, epoch + a / fs)
        if len(f):
            out.append(f)
    return out


def ground_truth(outdir):
    with open(outdir / "ground_truth.jsonl") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def visual_frames(gt, rng, miss=0.05, clutter=0.15):
    """(stamp, xyz, weights, variances) per video frame from the visible people."""
    frames = []
    for rec in gt:
        pts, ws, var = [], [], []
        for p in rec["people"]:
            if not p["visible"] or rng.random() < miss:
                continue
            z = p["z"]
            s = np.array([0.01, 0.01, z * z * DISP_STD / (FX * BASELINE)])
            pts.append(np.array([p["x"], p["y"], z]) + rng.normal(0.0, s))
            ws.append(rng.uniform(0.6, 1.0))
            var.append(s ** 2)
        if rng.random() < clutter:
            pts.append(rng.uniform([-2.0, -1.0, 0.8], [2.0, 1.0, 5.0]))
            ws.append(rng.uniform(0.2, 0.6))
            var.append(np.array([1e-4, 1e-4, 0.01]))
        frames.append((rec["stamp"], np.array(pts).reshape(-1, 3), np.array(ws),
                       np.array(var).reshape(-1, 3)))
    return frames


def evaluate(windows, gt, window_length):
    """Metrics of the module docstring from FusionWindows and ground-truth records."""
    stamps = np.array([r["stamp"] for r in gt])
    t_first = stamps[0] + window_length
    count_ok, n_windows, errors, errors_end, spk_ok, spk_n = 0, 0, [], [], 0, 0
    for w in windows:
        if w.stamp < t_first - 1e-6:
            continue
        recs = [gt[i] for i in np.flatnonzero((stamps > w.stamp - window_length)
                                              & (stamps <= w.stamp + 1e-6))]
        ids = [p["id"] for p in recs[-1]["people"]]
        vis = {i: np.mean([q["visible"] for r in recs for q in r["people"] if q["id"] == i])
               for i in ids}
        talk = {i: np.mean([q["speaking"] for r in recs for q in r["people"] if q["id"] == i])
                for i in ids}
        people = [i for i in ids if vis[i] >= 0.5]
        # window-average position of each person over the frames where it is visible
        mean_pos = {i: np.mean([[q["x"], q["y"], q["z"]] for r in recs for q in r["people"]
                                if q["id"] == i and q["visible"]], axis=0) for i in people}
        end_pos = {q["id"]: np.array([q["x"], q["y"], q["z"]]) for q in recs[-1]["people"]}
        seen = [e for e in w.events if not e.out_of_view]
        n_windows += 1
        count_ok += len(seen) == len(people)
        match = {}
        if people and seen:
            truth = np.array([mean_pos[i] for i in people])
            pos = np.array([e.position for e in seen])
            d = np.linalg.norm(truth[:, None] - pos[None], axis=2)
            for r, c in zip(*linear_sum_assignment(d)):
                if d[r, c] < GATE:
                    errors.append(d[r, c])
                    errors_end.append(np.linalg.norm(end_pos[people[r]] - pos[c]))
                    match[people[r]] = seen[c]
        talkers = [i for i in ids if talk[i] > 0]
        if len(talkers) == 1 and talk[talkers[0]] >= 0.6 and w.events:
            spk_n += 1
            loud = max(w.events, key=lambda e: e.audio_mass)
            spk_ok += match.get(talkers[0]) is loud
    errors, errors_end = np.array(errors), np.array(errors_end)
    return {
        "windows": n_windows,
        "count": count_ok / max(n_windows, 1),
        "err_median": float(np.median(errors)) if len(errors) else np.nan,
        "err_p90": float(np.percentile(errors, 90)) if len(errors) else np.nan,
        "err_end_median": float(np.median(errors_end)) if len(errors_end) else np.nan,
        "err_end_p90": float(np.percentile(errors_end, 90)) if len(errors_end) else np.nan,
        "speaker": spk_ok / max(spk_n, 1),
        "speaker_windows": spk_n,
    }


def run_preset(preset, duration, outdir, seed=1, config=None):
    scene = simulate_scene(preset, duration, outdir, seed)
    gt = ground_truth(outdir)
    feats = audio_features(outdir, scene.epoch)
    frames = visual_frames(gt, np.random.default_rng(seed))
    cfg = config or AVClusteringConfig()
    pipe = FusionPipeline(cfg)
    res = pipe.run(feats, frames)
    return evaluate(res.windows, gt, cfg.window_length), res, pipe


#: preset -> (duration s, minimum count fraction, max median error m, max p90 error m,
#: minimum speaker fraction), on seed 1: near the measured values of the table above,
#: with one window of margin on the fractions and a few millimetres on the errors
LIMITS = {
    "two_static": (6.0, 0.95, 0.01, 0.02, 0.92),  # 20/20, 0.007, 0.013, 14/14
    "default": (6.0, 0.95, 0.01, 0.02, 0.93),  # 20/20, 0.006, 0.013, 15/15
    "moving": (8.0, 0.85, 0.01, 0.03, 0.8),  # 25/28, 0.007, 0.023, 14/16
}


@pytest.mark.parametrize("preset", list(LIMITS))
def test_fusion_on_simulated_scene(preset, tmp_path):
    duration, min_count, max_med, max_p90, min_spk = LIMITS[preset]
    m, res, pipe = run_preset(preset, duration, tmp_path)
    print(preset, m)
    assert m["windows"] >= 4 * (duration - 1) - 1
    assert m["count"] >= min_count, m
    assert m["err_median"] <= max_med, m
    assert m["err_p90"] <= max_p90, m
    assert m["speaker_windows"] >= 5, m
    assert m["speaker"] >= min_spk, m
    assert pipe.late_audio_frames == 0 and pipe.late_visual_frames == 0
