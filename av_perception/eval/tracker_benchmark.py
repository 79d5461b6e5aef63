"""Tracker benchmark on simulator scenes: observation streams with realistic noise made
from the ground truth, the VB tracker, two baselines, and the metrics table.

:func:`synthetic_streams` makes the visual and audio streams (noise model
:class:`StreamNoise`); :func:`benchmark_scene` / :func:`benchmark` run the methods of
:data:`METHODS` (the tracker, the tracker without audio-only rows, a visual-only tracker
and frame-by-frame assignment) and score them; :func:`format_table` prints the rows.
The stream model and the methods: docs/simulation.md, "Tracker benchmark".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ..core.tracking import AudioFrames, Tracker, TrackerConfig
from ..core.vision import VisualObservations
from .metrics import evaluate_tracks, true_binaural_model
from .readers import TRACK_COLUMNS

__all__ = [
    "METHODS",
    "StreamNoise",
    "ObservationStreams",
    "synthetic_streams",
    "run_tracker",
    "frame_by_frame_baseline",
    "tracks_frame",
    "benchmark_scene",
    "benchmark",
    "format_table",
]

METHODS = ("tracker", "tracker_no_audio_only", "visual_only", "frame_by_frame")


@dataclass
class StreamNoise:
    """Noise model of the synthetic observation streams (see the module docstring)."""

    fx: float = 500.0
    baseline: float = 0.12
    disparity_sigma: float = 0.25
    lateral_sigma: float = 0.01
    miss_prob: float = 0.07
    clutter_rate: float = 1.5
    itd_sigma: float = 40e-6
    itd_bias_per_m: float = 0.12
    activity_low: float = 0.6
    gap_prob: float = 0.1
    audio_hop: float = 0.016
    reverb_tail: float = 0.1

    @classmethod
    def for_scene(cls, scene) -> StreamNoise:
        """Noise for a simulator scene: anechoic -> 10 us ITD noise and no bias; reverberant
        -> 40 us and 12 %/m bias; RT60 >= 0.5 s or SNR <= 10 dB (``hard``) -> 60 us, lower
        activity, more gaps, misses and clutter."""
        if scene.room.anechoic:
            return cls(itd_sigma=10e-6, itd_bias_per_m=0.0, reverb_tail=0.0)
        snr = scene.noise.snr_db if scene.noise.snr_db is not None else 100.0
        if scene.room.rt60 >= 0.5 or snr <= 10.0:
            return cls(itd_sigma=60e-6, activity_low=0.3, gap_prob=0.25, miss_prob=0.1,
                       clutter_rate=3.0)
        return cls()


@dataclass
class ObservationStreams:
    """What the tracker sees: visual observations per image frame, and audio frames."""

    visual: list  # of VisualObservations, one per ground-truth frame
    audio: AudioFrames
    noise: StreamNoise = field(default_factory=StreamNoise)


def _ray_noise(p: np.ndarray, noise: StreamNoise, rng) -> tuple[np.ndarray, np.ndarray]:
    """Noisy observation and its covariance for a true point p (3,)."""
    z = p[2]
    r = np.linalg.norm(p)
    ray = p / r
    sigma_r = z * z * noise.disparity_sigma / (noise.fx * noise.baseline) * r / z
    cov = noise.lateral_sigma ** 2 * (np.eye(3) - np.outer(ray, ray)) + \
        sigma_r ** 2 * np.outer(ray, ray)
    return rng.multivariate_normal(p, cov), cov


def _visual_stream(scene, gt: pd.DataFrame, noise: StreamNoise, rng) -> list:
    cam = scene.robot.camera
    out = []
    for _, g in gt.groupby("frame", sort=True):
        stamp = float(g["stamp"].iloc[0])
        xyz, cov, w = [], [], []
        for row in g.itertuples():
            if not row.visible or rng.random() < noise.miss_prob:
                continue
            p, c = _ray_noise(np.array([row.x, row.y, row.z]), noise, rng)
            xyz.append(p)
            cov.append(c)
            w.append(rng.uniform(0.6, 1.0))
        for _ in range(rng.poisson(noise.clutter_rate)):
            z = rng.uniform(0.8, 5.0)
            u, v = rng.uniform(0, cam.width), rng.uniform(0, cam.height)
            p = np.array([(u - cam.cx) * z / cam.fx, (v - cam.cy) * z / cam.fy, z])
            q, c = _ray_noise(p, noise, rng)
            xyz.append(q)
            cov.append(c)
            w.append(rng.uniform(0.2, 0.7))
        m = len(xyz)
        xyz = np.array(xyz).reshape(m, 3)
        cov = np.array(cov).reshape(m, 3, 3)
        w = np.array(w)
        disp = noise.fx * noise.baseline / np.maximum(xyz[:, 2], 1e-3)
        out.append(VisualObservations(
            stamp=stamp, xyz=xyz, covariance=cov, weight=w, box=np.zeros((m, 4)),
            kind=np.full(m, "face"), confidence=w.copy(), quality=np.ones(m), disparity=disp,
            tracked=np.zeros(m, dtype=bool)))
    return out


def _audio_stream(scene, noise: StreamNoise, rng) -> AudioFrames:
    geom = true_binaural_model(scene)
    max_itd = 1.1 * geom.max_itd
    t = np.arange(noise.audio_hop / 2, scene.duration, noise.audio_hop)
    n = len(t)
    speaking = scene.speaking(t)
    mouths = scene.mouth_positions(t)
    true_itd = {pid: geom.itd(m) for pid, m in mouths.items()}
    dist = {pid: np.linalg.norm(m - geom.centre, axis=1) for pid, m in mouths.items()}
    radios = [d for d in scene.distractors if d.kind == "radio"]
    radio_itd = [float(geom.itd(np.asarray(d.position))[0]) for d in radios]
    itd = np.empty(n)
    act = np.empty(n)
    rel = np.empty(n)

    def biased(pid, k, sigma):
        b = min(noise.itd_bias_per_m * dist[pid][k], 0.45)
        return (1.0 - b) * true_itd[pid][k] + rng.normal(0.0, sigma)

    ends = sorted((u.end, u.person) for u in scene.utterances)
    for k in range(n):
        active = [pid for pid in scene.person_ids if speaking[pid][k]]
        if active:
            pid = active[k % len(active)]
            rel[k] = rng.uniform(0.6, 0.9)
            if rng.random() < noise.gap_prob:
                act[k] = rng.uniform(0.05, 0.35)
                itd[k] = biased(pid, k, 2 * noise.itd_sigma) if rng.random() < 0.5 else \
                    rng.uniform(-max_itd, max_itd)
            else:
                act[k] = rng.uniform(noise.activity_low, 1.0)
                itd[k] = biased(pid, k, noise.itd_sigma)
            continue
        rel[k] = rng.uniform(0.5, 0.95)
        last = [(e, p) for e, p in ends if e <= t[k]]
        if last and t[k] - last[-1][0] < noise.reverb_tail:
            e, pid = last[-1]
            act[k] = 0.7 * math.exp(-(t[k] - e) / 0.035)
            itd[k] = biased(pid, k, 2 * noise.itd_sigma)
            continue
        playing = [i for i, d in enumerate(radios)
                   if d.start <= t[k] and (d.end is None or t[k] < d.end)]
        if playing and rng.random() < 0.4:
            i = playing[k % len(playing)]
            act[k] = rng.uniform(0.2, 0.5)
            itd[k] = 0.7 * radio_itd[i] + rng.normal(0.0, noise.itd_sigma)
        else:
            act[k] = rng.uniform(0.01, 0.06)
            itd[k] = rng.uniform(-max_itd, max_itd)
    itd = np.clip(itd, -max_itd, max_itd)
    return AudioFrames(scene.epoch + t, itd, act * rel)


def synthetic_streams(scene, gt: pd.DataFrame, seed: int = 0,
                      noise: StreamNoise | None = None) -> ObservationStreams:
    """Visual and audio observation streams of a simulated scene (module docstring).

    Parameters
    ----------
    scene : Scene
    gt : DataFrame from :func:`~av_perception.eval.readers.read_ground_truth` of that scene.
    seed : int
    noise : StreamNoise, optional (default :meth:`StreamNoise.for_scene`).
    """
    noise = noise or StreamNoise.for_scene(scene)
    rng = np.random.default_rng(seed)
    visual = _visual_stream(scene, gt, noise, rng)
    audio = _audio_stream(scene, noise, rng)
    return ObservationStreams(visual, audio, noise)


def tracks_frame(rows) -> pd.DataFrame:
    """A track-file DataFrame (``stamp,track_id,x,y,z,speaking``) from row tuples."""
    df = pd.DataFrame(list(rows), columns=list(TRACK_COLUMNS))
    df["track_id"] = df["track_id"].astype(np.int64)
    return df


def run_tracker(streams: ObservationStreams, scene, config: TrackerConfig | None = None,
                audio=None, include_audio_only: bool = True,
                model=None, calibration=None) -> tuple[pd.DataFrame, Tracker]:
    """Run the tracker over the streams (``step`` per image frame with the audio frames
    received since the previous one); returns the track rows and the tracker.

    ``audio`` replaces ``streams.audio`` (e.g. the real front-end's features);
    ``include_audio_only`` false leaves out the rows of audio-only tracks.  The rows have
    an extra boolean column ``audio_only``.  ``model`` is the tracker's binaural model
    (default: the scene's true one, :func:`~av_perception.eval.metrics.true_binaural_model`).
    ``calibration`` (a HeadCalibrationConfig) runs the head self-calibration as the
    pipeline does; its HeadCalibrator is then ``df.attrs['calibrator']``.
    """
    from ..core.head_calibration import HeadCalibrator
    from ..pipeline import calibrate_step

    trk = Tracker(config, model if model is not None else true_binaural_model(scene),
                  scene.robot.camera)
    cal = (HeadCalibrator(calibration, trk.geometry)
           if calibration is not None and calibration.enabled else None)
    frames = streams.audio if audio is None else audio
    if not isinstance(frames, AudioFrames):
        frames = AudioFrames.from_features(frames)
    order = np.argsort(frames.stamp, kind="stable")
    frames = frames.select(order)
    rows = []
    flags = []
    a = 0
    for vis in streams.visual:
        b = int(np.searchsorted(frames.stamp, vis.stamp, side="right"))
        step_frames = frames.select(slice(a, b))
        out = trk.step(vis.stamp, visual=vis, audio=step_frames)
        if cal is not None:
            calibrate_step(cal, trk, out, step_frames)
        a = b
        keep = np.ones(len(out), dtype=bool) if include_audio_only else ~out.audio_only
        rows.extend(out.rows(include_audio_only))
        flags.extend(out.audio_only[keep].tolist())
    df = tracks_frame(rows)
    df["audio_only"] = np.asarray(flags, dtype=bool)
    if cal is not None:
        df.attrs["calibrator"] = cal
    return df, trk


def frame_by_frame_baseline(streams: ObservationStreams, scene, min_weight: float = 0.5,
                            gate: float = 0.5, audio_min_weight: float = 0.3,
                            azimuth_tolerance_deg: float = 15.0) -> pd.DataFrame:
    """Frame-by-frame assignment without a temporal model (module docstring)."""
    geom = true_binaural_model(scene)
    audio = streams.audio
    prev_pos = np.zeros((0, 3))
    prev_ids = np.zeros(0, dtype=np.int64)
    next_id = 1
    last_stamp = -np.inf
    rows = []
    for vis in streams.visual:
        sel = vis.weight >= min_weight
        pos = vis.xyz[sel]
        ids = np.zeros(len(pos), dtype=np.int64)
        if len(pos) and len(prev_pos):
            d = np.linalg.norm(pos[:, None] - prev_pos[None], axis=2)
            r, c = linear_sum_assignment(np.where(d <= gate, d, 1e6))
            for i, j in zip(r, c):
                if d[i, j] <= gate:
                    ids[i] = prev_ids[j]
        for i in np.flatnonzero(ids == 0):
            ids[i] = next_id
            next_id += 1
        speak = np.zeros(len(pos))
        win = (audio.stamp > last_stamp) & (audio.stamp <= vis.stamp) & np.isfinite(audio.itd)
        if np.any(win) and len(pos):
            k = np.flatnonzero(win)[np.argmax(audio.weight[win])]
            if audio.weight[k] >= audio_min_weight:
                az = float(geom.azimuth_from_itd(audio.itd[k]))
                daz = np.abs(geom.azimuth_of_points(pos) - az)
                j = int(np.argmin(daz))
                if daz[j] <= math.radians(azimuth_tolerance_deg):
                    speak[j] = 1.0
        rows.extend((vis.stamp, int(i), *map(float, p), float(s))
                    for i, p, s in zip(ids, pos, speak))
        prev_pos, prev_ids, last_stamp = pos, ids, vis.stamp
    return tracks_frame(rows)


def _summary(result: dict) -> dict:
    t, loc, spk = result["tracking"], result["localisation"], result["speaking"]
    return {"mota": t["mota"], "idf1": t["idf1"], "switches": t["num_switches"],
            "fp": t["num_false_positives"], "misses": t["num_misses"],
            "loc_error": loc.get("mean", float("nan")), "speaking_f1": spk["f1"],
            "speaking_precision": spk["precision"], "speaking_recall": spk["recall"]}


def benchmark_scene(scene, gt: pd.DataFrame, seed: int = 0, config: TrackerConfig | None = None,
                    methods=METHODS, audio=None, model=None) -> dict:
    """Metrics per method on one scene: {method: {mota, idf1, switches, fp, misses,
    loc_error (mean matched 3D distance, m), speaking_f1, speaking_precision,
    speaking_recall}}.  ``audio`` replaces the synthetic audio stream of every method;
    ``model`` is the trackers' binaural model (default: the scene's true one)."""
    streams = synthetic_streams(scene, gt, seed)
    config = config or TrackerConfig()
    out = {}
    full = None
    for method in methods:
        if method in ("tracker", "tracker_no_audio_only"):
            if full is None:
                full, _ = run_tracker(streams, scene, config, audio, model=model)
            df = full if method == "tracker" else full[~full["audio_only"]]
        elif method == "visual_only":
            df, _ = run_tracker(streams, scene, config.replace(audio_enabled=False), audio,
                                model=model)
        elif method == "frame_by_frame":
            if audio is not None:
                frames = audio if isinstance(audio, AudioFrames) else \
                    AudioFrames.from_features(audio)
                streams = ObservationStreams(streams.visual, frames, streams.noise)
            df = frame_by_frame_baseline(streams, scene)
        else:
            raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
        if len(df) == 0:
            df = tracks_frame([])
        out[method] = _summary(evaluate_tracks(gt, df))
    return out


def benchmark(presets, workdir, seed: int = 1, stream_seed: int = 0,
              config: TrackerConfig | None = None, methods=METHODS) -> list[dict]:
    """Simulate each preset (ground truth only, no bag) into ``workdir`` and benchmark it.

    Returns rows {preset, method, metrics...} (see :func:`format_table`).
    """
    from ..sim import make_scene, simulate
    from .readers import read_ground_truth

    rows = []
    for preset in presets:
        scene = make_scene(preset, seed=seed)
        outdir = Path(workdir) / preset
        simulate(scene, outdir, write_bag=False, overwrite=True)
        gt = read_ground_truth(outdir)
        res = benchmark_scene(scene, gt, stream_seed, config, methods)
        for method, metrics in res.items():
            rows.append({"preset": preset, "method": method, **metrics})
    return rows


def format_table(rows) -> str:
    """Markdown table of :func:`benchmark` rows."""
    head = ("| preset | method | MOTA | IDF1 | ID sw. | loc. error (m) | speaking F1 |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        f1 = "-" if not np.isfinite(r["speaking_f1"]) else f"{r['speaking_f1']:.3f}"
        lines.append(f"| {r['preset']} | {r['method']} | {r['mota']:.3f} | {r['idf1']:.3f} | "
                     f"{r['switches']} | {r['loc_error']:.3f} | {f1} |")
    return "\n".join(lines)
