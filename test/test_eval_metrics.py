"""Evaluation metrics: known corruptions of a perfect track file change them by hand-computed
amounts."""
import numpy as np
import pandas as pd
import pytest

from av_perception.core.geometry import MicGeometry
from av_perception.eval import evaluate_audio, evaluate_tracks, prf
from av_perception.sim import make_scene

EPOCH = 1_700_000_000.0
T = 20  # frames
FPS = 15.0


def _gt(invisible_from=None):
    """Two people 1.5 m apart for T frames; person 1 speaks in frames 5..14, person 2 in
    15..19; person 2 is out of view from frame ``invisible_from`` on."""
    rows = []
    for k in range(T):
        t = EPOCH + k / FPS
        rows.append((k, t, 1, -0.5 + 0.01 * k, -0.3, 2.0, 5 <= k <= 14, True, 1.0))
        vis = invisible_from is None or k < invisible_from
        rows.append((k, t, 2, 1.0, -0.3, 2.5 - 0.02 * k, k >= 15, vis, float(vis)))
    return pd.DataFrame(rows, columns=["frame", "stamp", "id", "x", "y", "z", "speaking",
                                       "visible", "visible_fraction"])


def _perfect(gt, id_map=None):
    id_map = id_map or {1: 11, 2: 12}
    return pd.DataFrame({
        "stamp": gt["stamp"], "track_id": gt["id"].map(id_map), "x": gt["x"], "y": gt["y"],
        "z": gt["z"], "speaking": gt["speaking"].astype(float)}).reset_index(drop=True)


def test_perfect_tracks_score_one():
    gt = _gt()
    r = evaluate_tracks(gt, _perfect(gt))
    t = r["tracking"]
    assert t["mota"] == 1.0 and t["idf1"] == 1.0 and t["motp"] == 0.0
    assert (t["num_switches"], t["num_false_positives"], t["num_misses"]) == (0, 0, 0)
    assert t["num_objects"] == 2 * T and t["num_matches"] == 2 * T
    assert r["speaking"]["f1"] == 1.0 and r["speaking"]["accuracy"] == 1.0
    assert r["speaking"]["tp"] == 15 and r["speaking"]["tn"] == 25
    assert r["localisation"]["mean"] == 0.0


def test_swapped_ids_midway():
    gt = _gt()
    tr = _perfect(gt)
    m = 8  # frames m..T-1 have the two track ids exchanged
    late = tr["stamp"] >= EPOCH + (m - 0.5) / FPS
    tr.loc[late, "track_id"] = tr.loc[late, "track_id"].map({11: 12, 12: 11})
    t = evaluate_tracks(gt, tr)["tracking"]
    assert t["num_switches"] == 2
    assert t["mota"] == pytest.approx(1 - 2 / (2 * T))  # 0.95
    # best global assignment keeps the longer half: IDTP = 2 * (T - m) of 2T + 2T
    assert t["idf1"] == pytest.approx(2 * 2 * (T - m) / (4 * T))  # 0.6
    assert t["motp"] == 0.0


def test_missing_track():
    gt = _gt()
    tr = _perfect(gt)
    tr = tr[tr["track_id"] != 12]
    t = evaluate_tracks(gt, tr)["tracking"]
    assert t["num_misses"] == T and t["num_false_positives"] == 0
    assert t["mota"] == pytest.approx(0.5)
    assert t["idf1"] == pytest.approx(2 * T / (2 * T + T))  # 2 IDTP / (#gt + #hyp)
    assert t["recall"] == pytest.approx(0.5) and t["precision"] == 1.0
    assert t["mostly_tracked"] == 1 and t["mostly_lost"] == 1


def test_wrong_speaking_flags():
    gt = _gt()
    tr = _perfect(gt)
    k = np.round((tr["stamp"] - EPOCH) * FPS).astype(int)
    tr.loc[(tr["track_id"] == 11) & k.between(5, 7), "speaking"] = 0.2  # 3 missed
    tr.loc[(tr["track_id"] == 12) & k.between(0, 1), "speaking"] = 0.9  # 2 false alarms
    r = evaluate_tracks(gt, tr)
    s = r["speaking"]
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (12, 2, 3, 23)
    assert s["precision"] == pytest.approx(12 / 14)
    assert s["recall"] == pytest.approx(12 / 15)
    assert s["f1"] == pytest.approx(24 / 29)
    assert s["accuracy"] == pytest.approx(35 / 40)
    assert r["tracking"]["mota"] == 1.0  # positions untouched
    # with a threshold above 0.9 the two false alarms disappear (true flags are 1.0)
    assert evaluate_tracks(gt, tr, speaking_threshold=0.95)["speaking"]["fp"] == 0


def test_distance_gate_and_motp():
    gt = _gt()
    tr = _perfect(gt)
    tr.loc[tr["track_id"] == 11, "x"] += 0.6
    t = evaluate_tracks(gt, tr, gate=0.5)["tracking"]
    assert (t["num_false_positives"], t["num_misses"]) == (T, T)
    assert t["mota"] == pytest.approx(0.0)
    t = evaluate_tracks(gt, tr, gate=0.7)["tracking"]
    assert t["mota"] == 1.0
    assert t["motp"] == pytest.approx(0.3)  # half the matches are 0.6 m off
    tr = _perfect(gt)
    tr["x"] += 0.03
    tr["z"] -= 0.04
    r = evaluate_tracks(gt, tr)
    assert r["tracking"]["motp"] == pytest.approx(0.05)
    lo = r["localisation"]
    assert lo["mean"] == pytest.approx(0.05) and lo["median"] == pytest.approx(0.05)
    assert lo["mean_abs_x"] == pytest.approx(0.03) and lo["bias_z"] == pytest.approx(-0.04)


def test_people_out_of_view():
    gt = _gt(invisible_from=10)
    tr = _perfect(gt)
    vis = evaluate_tracks(gt, tr)["tracking"]
    # tracking person 2 out of view is neither rewarded nor punished
    assert vis["num_objects"] == 2 * T - 10 and vis["ignored_rows"] == 10
    assert vis["mota"] == 1.0 and vis["num_false_positives"] == 0
    everyone = evaluate_tracks(gt, tr, gt_mode="all")["tracking"]
    assert everyone["num_objects"] == 2 * T and everyone["mota"] == 1.0
    # a tracker that drops person 2 when out of view
    k = np.round((tr["stamp"] - EPOCH) * FPS).astype(int)
    dropped = tr[~((tr["track_id"] == 12) & (k >= 10))]
    assert evaluate_tracks(gt, dropped)["tracking"]["mota"] == 1.0
    assert evaluate_tracks(gt, dropped, gt_mode="all")["tracking"]["mota"] == \
        pytest.approx(1 - 10 / (2 * T))


def test_stamps_relative_jittered_and_outside_frames():
    gt = _gt()
    tr = _perfect(gt)
    rel = tr.assign(stamp=tr["stamp"] - EPOCH + 0.003)  # relative and 3 ms late
    assert evaluate_tracks(gt, rel)["tracking"]["mota"] == 1.0
    off = tr.copy()
    off.loc[off.index[:4], "stamp"] += 0.5 / FPS  # half a frame: no frame
    t = evaluate_tracks(gt, off)["tracking"]
    assert t["rows_outside_frames"] == 4 and t["num_misses"] == 4
    dup = pd.concat([tr, tr.iloc[:1]])
    with pytest.raises(ValueError, match="repeat a track id"):
        evaluate_tracks(gt, dup)
    with pytest.raises(ValueError, match="gt_mode"):
        evaluate_tracks(gt, tr, gt_mode="some")


def test_prf_edge_cases():
    assert prf(0, 0, 0)["f1"] != prf(0, 0, 0)["f1"]  # NaN when nothing to score
    assert prf(3, 1, 0, 6)["accuracy"] == 0.9


def _features(scene, itd_offset=10e-6, relative=False):
    """Ideal audio features of a scene: exact ITD of whoever speaks (+ offset), activity 1
    while someone speaks, 0 otherwise."""
    geom = MicGeometry.from_config(scene.robot.mics)
    t = np.arange(0.016, scene.duration, 0.016)
    spk = scene.speaking(t)
    mouths = scene.mouth_positions(t)
    itd = np.full(len(t), np.nan)
    az = np.full(len(t), np.nan)
    act = np.zeros(len(t))
    for pid in scene.person_ids:
        on = spk[pid]
        itd[on] = geom.itd(mouths[pid][on]) + itd_offset
        az[on] = geom.azimuth_of_points(mouths[pid][on])
        act[on] = 1.0
    return pd.DataFrame({"t": t + (0 if relative else scene.epoch), "itd": itd, "azimuth": az,
                         "ild": 0.0, "activity": act}), spk


def test_audio_itd_and_doa_errors():
    scene = make_scene("default", seed=0, duration=15.0)  # has an overlap of 0.58 s
    feats, spk = _features(scene)
    r = evaluate_audio(scene, feats)
    n_single = int(np.sum(sum(v.astype(int) for v in spk.values()) == 1))
    assert 0 < r["single_speaker_frames"] < n_single  # the margin drops the turn edges
    assert r["scored_frames"] == r["single_speaker_frames"]
    assert r["itd_error_us"]["median_abs"] == pytest.approx(10.0, abs=1e-6)
    assert r["itd_error_us"]["bias"] == pytest.approx(10.0, abs=1e-6)
    assert r["doa_error_deg"]["median_abs"] == pytest.approx(0.0, abs=1e-6)
    assert set(r["per_speaker"]) == {"1", "2", "3"}
    # overlapping speech is not scored: corrupt it and nothing changes
    both = (spk[1].astype(int) + spk[2] + spk[3]) >= 2
    assert both.any()
    bad = feats.copy()
    bad.loc[both, "itd"] = 1e-3
    assert evaluate_audio(scene, bad)["itd_error_us"]["rmse"] == pytest.approx(10.0)
    # relative times, and the activity threshold
    rel, _ = _features(scene, relative=True)
    assert evaluate_audio(scene, rel)["scored_frames"] == r["scored_frames"]
    quiet = feats.assign(activity=0.4)
    assert evaluate_audio(scene, quiet)["scored_frames"] == 0


def test_empty_track_file(tmp_path):
    from av_perception.eval import plot_tracks, read_tracks

    path = tmp_path / "empty.csv"
    path.write_text("stamp,track_id,x,y,z,speaking\n")
    tracks = read_tracks(path)
    gt = _gt()
    r = evaluate_tracks(gt, tracks)
    assert r["tracking"]["num_misses"] == 2 * T and r["tracking"]["mota"] == 0.0
    assert r["localisation"]["n"] == 0 and r["speaking"]["detection_rate"] == 0.0
    plot_tracks(gt, tracks, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    (tmp_path / "nan.csv").write_text("stamp,track_id,x,y,z,speaking\n1,2,nan,0,1,0\n")
    with pytest.raises(ValueError, match="line 2"):
        read_tracks(tmp_path / "nan.csv")
