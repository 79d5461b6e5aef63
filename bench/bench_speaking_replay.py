"""Speaking status from the tracking stage alone, re-run on recorded front-end outputs
(BENCHMARKS.md, "Speaking status"): fast tuning and error analysis of the speaking model.

    PYTHONPATH=. python bench/bench_speaking_replay.py record --out /tmp/speak_tune \
        --presets default double_talk --seeds 0 1 2 3 4
    PYTHONPATH=. python bench/bench_speaking_replay.py replay --out /tmp/speak_tune \
        --presets default double_talk --seeds 0 1 2 3 4 --set tracker.lip_gain 0.5
    PYTHONPATH=. python bench/bench_speaking_replay.py errors --out /tmp/speak_tune ...

``record``: per preset and seed, ``simulate`` (once, into OUT/P_N, as
bench_speaking.py) and the whole pipeline (:func:`~av_perception.offline.process_bag`,
the defaults or ``--config``), keeping its audio features and every image's visual
observations (OUT/P_N/frontend.pkl).  ``replay``: only the tracking stage over those
recordings with ``--set section.field value`` (repeatable; ``tracker.*``,
``tracking.*``, ``track_output.*``), scored by ``evaluate``'s metrics; prints speaking
F1, precision, recall, MOTA, IDF1 per run and the mean and worst per preset.  The
detector's look around the predicted heads is not replayed (it sees the recording
run's tracks), so a replay of the defaults matches ``process`` closely, not bit for bit.
``errors``: the replay's speaking errors on matched pairs split into kinds (see
:func:`error_kinds`).  Tune on seeds 0-4 or 311-315, never on the report seeds 301-305.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

KEYS = ("f1", "precision", "recall", "mota", "idf1")


def simulate(out: Path, preset: str, seed: int) -> Path:
    d = out / f"{preset}_{seed}"
    if not (d / "bag").exists() and not (d / "frontend.pkl").exists():
        subprocess.run([sys.executable, "-m", "av_perception.cli", "simulate", str(d),
                        "--preset", preset, "--seed", str(seed), "--quiet", "--overwrite"],
                       check=True, stdout=subprocess.DEVNULL)
    return d


def load_configs(config: str | None, values: dict):
    from av_perception.io.params import load_offline_configs
    from av_perception.offline import PROCESS_STAGES

    configs = load_offline_configs(config, PROCESS_STAGES)
    by_section = {cls.SECTION: cls for cls in configs}
    for key, v in values.items():
        sec, name = key.split(".", 1)
        cls = by_section[sec]
        configs[cls] = dataclasses.replace(configs[cls], **{name: v})
    return configs


def record(d: Path, config: str | None) -> None:
    from av_perception.offline import process_bag

    obs = []
    keep = ("stamp", "xyz", "covariance", "weight", "lip_llr")
    res = process_bag(str(d / "bag"), d / "tracks_record.csv", load_configs(config, {}),
                      on_observations=lambda o: obs.append({k: getattr(o, k) for k in keep}))
    with open(d / "frontend.pkl", "wb") as f:
        pickle.dump({"features": res.features, "observations": obs}, f)


def replay(d: Path, configs: dict, tracks: Path, smoothed: Path | None = None) -> None:
    """The tracking stage over ``d``'s recording (as ``process`` runs it), written to the
    track file ``tracks`` (the causal speaking filter) and, with ``smoothed``, a copy whose
    speaking column is smoothed as ``process`` does (``tracking.speaking_smoothing_lag``)."""
    from av_perception.core.config import (
        AudioFrontEndConfig,
        MicArrayConfig,
        StereoCameraConfig,
    )
    from av_perception.core.head_calibration import HeadCalibrationConfig
    from av_perception.core.tracking import TrackerConfig
    from av_perception.io.track_files import TrackFileWriter
    from av_perception.pipeline import TrackingConfig, TrackingPipeline

    with open(d / "frontend.pkl", "rb") as f:
        rec = pickle.load(f)
    feats = rec["features"]
    tracking = TrackingPipeline(configs[TrackerConfig], configs[MicArrayConfig],
                                configs[StereoCameraConfig], configs[TrackingConfig],
                                configs[HeadCalibrationConfig], configs[AudioFrontEndConfig])
    lag = configs[TrackingConfig].speaking_smoothing_lag
    record = tracking.record_speaking() if smoothed is not None and lag > 0.0 else None
    record_rows: list = []
    done = 0
    with TrackFileWriter(tracks) as writer:
        for o in rec["observations"]:
            upto = int(np.searchsorted(feats.stamp, o["stamp"], side="right"))
            if upto > done:
                tracking.add_audio_features(feats.slice(done, upto))
                done = upto
            out = tracking.step(o["stamp"], o["xyz"], o["covariance"], o["weight"], "",
                                o["lip_llr"])
            if out is None:
                continue
            if record is not None:
                record_rows.append(record.last_rows(out.ids))
            writer.write(out)
    if smoothed is not None:
        import shutil

        from av_perception.offline import smooth_track_file

        shutil.copyfile(tracks, smoothed)
        if record is not None and record_rows:
            smooth_track_file(smoothed, np.concatenate(record_rows), record.smooth(
                lag, *configs[TrackingConfig].smoothing_transitions()))


def score(d: Path, tracks: Path) -> dict:
    from av_perception.eval import evaluate_files

    ev = evaluate_files(d, [tracks])
    t, s = ev.get("tracking", {}), ev.get("speaking", {})
    return {"f1": s.get("f1"), "precision": s.get("precision"), "recall": s.get("recall"),
            "mota": t.get("mota"), "idf1": t.get("idf1")}


def error_kinds(d: Path, tracks: Path, margin: float = 0.3, by_person: bool = False) -> dict:
    """Counts of matched (frame, person) pairs by kind: ``tp``, ``tn``; misses (truth
    speaking, said silent) at a turn's ``onset`` (within ``margin`` s of its start),
    ``inside`` a turn, while another person also speaks (``miss_overlap``);
    false positives in the ``tail`` (within ``margin`` s after the person's turn ended),
    while ``another`` person speaks (the wrong one of two), or in ``silence`` (nobody
    speaks).  Double talk apart: a miss while another person speaks is ``onset2`` /
    ``overlap2`` when this person started after the other (the second talker) and
    ``onset1`` / ``overlap1`` when before (the first talker, the other came in); a tail
    false positive is ``tail_over`` when another person speaks meanwhile (the first
    talker's end held while the second talks).  With a lip reading for the person near
    the frame (``lips``: image stamp -> known), ``/nolip`` marks the errors without one."""
    from av_perception.eval.metrics import evaluate_tracks
    from av_perception.eval.readers import read_ground_truth, read_tracks
    from av_perception.sim.scene import load_scene

    scene = load_scene(d)
    gt = read_ground_truth(d)
    tr = read_tracks(tracks)
    matches: dict = {}
    evaluate_tracks(gt, tr, matches=matches)
    frame_t = gt.groupby("frame")["stamp"].first()
    arrays = {int(h): (g["stamp"].to_numpy(), g["speaking"].to_numpy())
              for h, g in tr.groupby("track_id")}
    fps = scene.robot.camera.fps
    counts: dict = {}

    def current_start(p, t):
        starts = [u.start for u in scene.utterances if u.person == p and u.start <= t < u.end]
        return starts[0] if starts else None

    for (f, h), o in matches.items():
        st, sp = arrays[h]
        said = sp[np.argmin(np.abs(st - float(frame_t.loc[f])))] >= 0.5
        t = f / fps
        now = {p: bool(v[0]) for p, v in scene.speaking([t]).items()}
        truth = now[o]
        others = [p for p, v in now.items() if p != o and v]
        if truth and said:
            k = "tp"
        elif not truth and not said:
            k = "tn"
        elif truth:
            start = current_start(o, t)
            onset = start is not None and t - start < margin
            if others:
                second = all((current_start(p, t) or 0.0) <= start for p in others)
                k = ("miss_onset" if onset else "miss_overlap") + ("2" if second else "1")
            else:
                k = "miss_onset" if onset else "miss_inside"
        else:
            ends = [u.end for u in scene.utterances if u.person == o and u.end <= t]
            if ends and t - max(ends) < margin:
                k = "fp_tail_over" if others else "fp_tail"
            elif others:
                k = "fp_another"
            else:
                k = "fp_silence"
        if by_person:
            k = f"{k}/{o}"
        counts[k] = counts.get(k, 0) + 1
    return counts


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("record", "replay", "errors"))
    ap.add_argument("--presets", nargs="+", default=["default", "double_talk"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", default="/tmp/speaking_replay")
    ap.add_argument("--config", help="params file (record: the front-end's; replay: base)")
    ap.add_argument("--by-person", action="store_true", help="errors: per person too")
    ap.add_argument("--set", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict = {}
    configs = load_configs(a.config, {k: _value(v) for k, v in a.set})
    for preset in a.presets:
        for seed in a.seeds:
            d = simulate(out, preset, seed)
            if a.mode == "record":
                if not (d / "frontend.pkl").exists():
                    record(d, a.config)
                print(preset, seed, "recorded", flush=True)
                continue
            with tempfile.TemporaryDirectory() as tmp:
                tracks, smoothed = Path(tmp) / "tracks.csv", Path(tmp) / "smoothed.csv"
                replay(d, configs, tracks, smoothed)
                for name, path in (("causal", tracks), ("smoothed", smoothed)):
                    if a.mode == "errors":
                        r = error_kinds(d, path, by_person=a.by_person)
                        print(preset, seed, name, json.dumps(dict(sorted(r.items()))),
                              flush=True)
                    else:
                        r = score(d, path)
                        print(preset, seed, name, " ".join(f"{k} {r[k]:.3f}" for k in KEYS),
                              flush=True)
                    rows.setdefault((preset, name), []).append(r)
    if a.mode == "record":
        return
    for preset, rs in rows.items():
        if a.mode == "errors":
            tot: dict = {}
            for r in rs:
                for k, v in r.items():
                    tot[k] = tot.get(k, 0) + v
            print(*preset, "total", json.dumps(dict(sorted(tot.items()))))
            continue
        cells = [f"{k} {np.mean([r[k] for r in rs]):.3f} ({min(r[k] for r in rs):.3f})"
                 for k in KEYS]
        print(f"{preset[0]} {preset[1]} mean (worst): " + " ".join(cells))


if __name__ == "__main__":
    main()
