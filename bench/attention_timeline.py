"""Why the attention switches: the attention's time line against the ground truth, and the
selector replayed offline on the tracker's recorded outputs (BENCHMARKS.md, "Head motion").

    python bench/attention_timeline.py dump SCENE_DIR [--config F] [--fixed-frame base_link]
    python bench/attention_timeline.py show SCENE_DIR [--all] [--set KEY=VALUE ...]
    python bench/attention_timeline.py replay OUT --seeds 206 207 [--kind pan] [--set KEY=VALUE ...]

``dump`` runs ``process`` over ``SCENE_DIR/bag`` keeping every tracker output and writes
``SCENE_DIR/outputs.pkl`` (stamp, ids, positions, causal speaking probabilities, audio-only
flags, ended ids, the attention target, and the camera's pose at the step).  ``show``
prints, for each turn with more than one attention switch (``--all``: every switch), the
turn, who is in view, and each switch: from and to which track / person, their speaking
probabilities, audio-only flags, azimuths seen from the head (degrees, left positive)
and ITDs (the head model at the step's pose); with ``--set`` the attention of the
selector replayed with those settings.  ``replay`` runs the
:class:`~av_perception.core.attention.AttentionSelector` (with ``attention.*`` overrides)
over the dumps of ``OUT/<kind>_<seed>`` and scores it as ``evaluate`` does (the tracker's
outputs do not depend on the selector, except in the closed loop).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from av_perception.core.attention import AttentionConfig, AttentionSelector
from av_perception.eval.attention import evaluate_attention, speaking_turns
from av_perception.eval.metrics import evaluate_tracks
from av_perception.eval.readers import read_ground_truth, read_tracks


def dump(scene: Path, config: str | None, fixed_frame: str | None) -> Path:
    from av_perception.core.attention import AttentionConfig as _A  # noqa: F401
    from av_perception.io.params import load_offline_configs
    from av_perception.offline import PROCESS_STAGES, process_bag
    from av_perception.pipeline import TrackingConfig

    configs = load_offline_configs(config, PROCESS_STAGES)
    if fixed_frame:
        configs[TrackingConfig] = dataclasses.replace(configs[TrackingConfig],
                                                      fixed_frame=fixed_frame)
    res = process_bag(scene / "bag", scene / "tracks.csv", configs, keep_outputs=True,
                      attention_output=scene / "attention.csv")
    rows = []
    for o in res.outputs:
        a = o.attention
        rows.append(dict(stamp=o.stamp, ids=o.ids.copy(), position=o.position.copy(),
                         covariance=o.covariance.copy(), speaking=o.speaking.copy(),
                         audio_only=o.audio_only.copy(), ended=o.ended.copy(),
                         target=-1 if a is None else int(a.track_id)))
    add_poses(scene, rows, configs)
    path = scene / "outputs.pkl"
    with open(path, "wb") as f:
        pickle.dump(rows, f)
    return path


def add_poses(scene: Path, rows: list, configs: dict) -> None:
    """Each row's camera pose from the bag's /tf (as the pipeline reads it), the tracks in
    the camera frame and their ITDs (the head model's, at that pose)."""
    from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig
    from av_perception.io.heads import load_head_model
    from av_perception.offline import bag_transforms
    from av_perception.pipeline import TrackingConfig
    from av_perception.pipeline.poses import HeadPoses

    tracking = configs.get(TrackingConfig) or TrackingConfig(fixed_frame="base_link")
    if not tracking.fixed_frame:
        tracking = dataclasses.replace(tracking, fixed_frame="base_link")
    poses = HeadPoses(tracking)
    dynamic, static = bag_transforms(scene / "bag", [])
    for r in static:
        poses.add(r[1], r[2], r[0], r[3], r[4], static=True)
    poses.camera_frame = static[-1][2] if static else ""
    geometry = load_head_model(configs.get(MicArrayConfig) or MicArrayConfig(),
                               configs.get(AudioFrontEndConfig) or AudioFrontEndConfig())
    done = 0
    for r in rows:  # /tf fed as it arrives (the buffer keeps tf_buffer s)
        while done < len(dynamic) and dynamic[done][0] <= r["stamp"] + 0.05:
            d = dynamic[done]
            poses.add(d[1], d[2], d[0], d[3], d[4])
            done += 1
        pose = poses.camera_pose(r["stamp"]) if static else None
        cam = r["position"] if pose is None else pose.apply_inverse(r["position"])
        r["pose"], r["camera_position"] = pose, cam
        r["itd"] = np.ravel(geometry.itd(cam)) if len(cam) else np.zeros(0)


def _itd_model(geometry, pose):
    def model(points):
        points = np.atleast_2d(points)
        return np.ravel(geometry.itd(points if pose is None else pose.apply_inverse(points)))

    return model


def _geometry():
    from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig
    from av_perception.io.heads import load_head_model

    return load_head_model(MicArrayConfig(), AudioFrontEndConfig())


def _overrides(items) -> AttentionConfig:
    kw = {}
    for o in items:
        key, val = o.split("=", 1)
        kind = type(getattr(AttentionConfig(), key))
        kw[key] = (val.lower() in ("1", "true")) if kind is bool else kind(val)
    return AttentionConfig(**kw)


def _pan(pose) -> float:
    """The camera's heading (degrees, left positive) in the fixed frame (x fwd, y left)."""
    if pose is None:
        return 0.0
    axis = pose.R[:, 2]  # the optical axis
    return math.degrees(math.atan2(axis[1], axis[0]))


def replay(rows, config: AttentionConfig, geometry=None) -> pd.DataFrame:
    """The selector over a dump's rows (with the ITDs of the head model ``geometry`` at
    each row's pose when given)."""
    sel = AttentionSelector(config)
    out = []
    for r in rows:
        model = None if geometry is None else _itd_model(geometry, r.get("pose"))
        a = sel.update(r["stamp"], r["ids"], r["position"], r["speaking"], ended=r["ended"],
                       unseen=r["audio_only"], itd_model=model)
        out.append(a.row())
    return pd.DataFrame(out, columns=["stamp", "track_id", "x", "y", "z"])


def _person_of(gt_frame: pd.DataFrame, p: np.ndarray, gate=0.5):
    if not np.isfinite(p).all():
        return -1
    d = np.linalg.norm(gt_frame[["x", "y", "z"]].to_numpy(float) - p, axis=1)
    return int(gt_frame["id"].to_numpy()[np.argmin(d)]) if d.min() <= gate else -1


def show(scene: Path, every: bool, config: AttentionConfig | None = None) -> None:
    gt = read_ground_truth(scene)
    rows = pickle.loads((scene / "outputs.pkl").read_bytes())
    if config is not None:  # the selector replayed with this configuration
        for r, t in zip(rows, replay(rows, config, _geometry()).track_id):
            r["target"] = int(t)
    tracks = read_tracks(scene / "tracks.csv")
    matches: dict = {}
    evaluate_tracks(gt, tracks, matches=matches)
    frames = np.array(sorted(gt.frame.unique()))
    stamps = gt.groupby("frame")["stamp"].first().loc[frames].to_numpy()
    epoch = stamps[0]
    by_frame = {int(f): g for f, g in gt.groupby("frame")}
    turns = speaking_turns(gt)
    last_person, last_target = -1, -1
    switches = []
    for r in rows:
        f = int(frames[min(np.searchsorted(stamps, r["stamp"] - 1e-4), len(frames) - 1)])
        ids = list(r["ids"])
        t = r["target"]
        if t < 0:
            continue
        j = ids.index(t) if t in ids else None
        person = matches.get((f, t))
        if person is None and j is not None:
            person = _person_of(by_frame[f], r["position"][j])
        person = -1 if person is None else person
        if t != last_target:
            g = by_frame[f]
            live = turns[(turns.start <= r["stamp"] + 1e-9) & (turns.end >= r["stamp"] - 1e-9)]
            desc = []
            for i, tid in enumerate(ids):
                p = r["position"][i]
                c = r["camera_position"][i]
                az = -math.degrees(math.atan2(c[0], c[2]))
                pid = matches.get((f, int(tid)), _person_of(g, p))
                desc.append(f"{tid}(p{pid} az{az:+.0f} itd{r['itd'][i] * 1e6:+.0f}us "
                            f"s{r['speaking'][i]:.2f}"
                            f"{' AO' if r['audio_only'][i] else ''})")
            vis = {int(i): bool(v) for i, v in zip(g.id, g.visible)}
            switches.append(dict(stamp=r["stamp"], frm=last_target, to=t,
                                 frm_person=last_person, person=person,
                                 speakers=sorted(live.person.tolist()), visible=vis,
                                 pan=_pan(r["pose"]), tracks=" ".join(desc)))
        last_target = t
        if person >= 0:
            last_person = person
    starts = turns.start.to_numpy()
    by_turn: dict = {}
    for s in switches:
        k = int(np.searchsorted(starts, s["stamp"], side="right")) - 1
        by_turn.setdefault(k, []).append(s)
    for k, ss in sorted(by_turn.items()):
        real = [s for s in ss if s["frm_person"] >= 0 and s["person"] >= 0
                and s["person"] != s["frm_person"]]
        if not every and len(real) < 2:
            continue
        tr = turns.iloc[k] if k >= 0 else None
        print(f"turn {k}: " + (f"p{tr.person} {tr.start - epoch:.2f}-{tr.end - epoch:.2f} s"
                               if tr is not None else "before the first"))
        for s in ss:
            print(f"  {s['stamp'] - epoch:6.2f} s pan {s['pan']:+4.0f}: track {s['frm']} "
                  f"(p{s['frm_person']}) -> {s['to']} (p{s['person']}); speaking "
                  f"{s['speakers']}; visible {s['visible']}\n      {s['tracks']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("scene", type=Path)
    d.add_argument("--config")
    d.add_argument("--fixed-frame")
    po = sub.add_parser("poses", help="add the poses to an older dump")
    po.add_argument("scene", type=Path)
    s = sub.add_parser("show")
    s.add_argument("scene", type=Path)
    s.add_argument("--all", action="store_true")
    s.add_argument("--set", dest="overrides", nargs="*", default=None,
                   help="replay the selector with these KEY=VALUE of attention")
    r = sub.add_parser("replay")
    r.add_argument("out", type=Path)
    r.add_argument("--seeds", type=int, nargs="+", required=True)
    r.add_argument("--kind", default="pan")
    r.add_argument("--set", dest="overrides", nargs="*", default=[], help="KEY=VALUE of attention")
    a = ap.parse_args()
    if a.cmd == "dump":
        print(dump(a.scene, a.config, a.fixed_frame))
    elif a.cmd == "poses":
        rows = pickle.loads((a.scene / "outputs.pkl").read_bytes())
        add_poses(a.scene, rows, {})
        (a.scene / "outputs.pkl").write_bytes(pickle.dumps(rows))
    elif a.cmd == "show":
        show(a.scene, a.all, None if a.overrides is None else _overrides(a.overrides))
    else:
        cfg = _overrides(a.overrides)
        geometry = _geometry()
        res = []
        for seed in a.seeds:
            sd = a.out / f"{a.kind}_{seed}"
            gt = read_ground_truth(sd)
            m: dict = {}
            evaluate_tracks(gt, read_tracks(sd / "tracks.csv"), matches=m)
            rows = pickle.loads((sd / "outputs.pkl").read_bytes())
            e = evaluate_attention(gt, replay(rows, cfg, geometry), matches=m)
            res.append(e)
            print(f"{seed}: on speaker {e['on_speaker']:.3f}, switches per turn "
                  f"{e['switches_per_turn']:.2f}, most in one turn "
                  f"{e['max_switches_in_turn']}, turns with extra switches "
                  f"{e['turns_with_extra_switches']}")
        on = [e["on_speaker"] for e in res]
        print(f"mean {np.mean(on):.3f} worst {min(on):.3f}; most in one turn "
              f"{max(e['max_switches_in_turn'] for e in res)}; turns with extra switches "
              f"{sum(e['turns_with_extra_switches'] for e in res)}")


if __name__ == "__main__":
    main()
