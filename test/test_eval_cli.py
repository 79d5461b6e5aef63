"""``av-perception evaluate`` end to end on simulator output (tracks and audio features)."""
import json

import numpy as np
import pandas as pd
import pytest

from av_perception.cli import main
from av_perception.eval import read_ground_truth, read_tracks, sniff_csv_kind
from av_perception.sim import make_scene, simulate


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "scene"
    simulate(make_scene("single_static_anechoic", seed=1, duration=4.0), out, write_bag=False)
    return out


def _write_tracks(gt, path, shift=0.0):
    tracks = pd.DataFrame({"stamp": gt["stamp"].map(lambda s: f"{s:.6f}"),
                           "track_id": gt["id"] + 100, "x": gt["x"] + shift, "y": gt["y"],
                           "z": gt["z"], "speaking": gt["speaking"].astype(int)})
    tracks.to_csv(path, index=False)


def test_evaluate_perfect_tracks_with_json_and_plot(scene_dir, tmp_path, capsys):
    gt = read_ground_truth(scene_dir)
    assert len(gt) == 60 and gt["visible"].all()
    tracks = tmp_path / "tracks.csv"
    _write_tracks(gt, tracks)
    assert sniff_csv_kind(tracks) == "tracks"
    assert len(read_tracks(tracks)) == 60
    js, png = tmp_path / "m.json", tmp_path / "p.png"
    assert main(["evaluate", str(scene_dir), str(tracks), "--json", str(js),
                 "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "MOTA 1.000" in text and "IDF1 1.000" in text and "F1 1.000" in text
    res = json.loads(js.read_text())
    assert res["tracking"]["mota"] == 1.0 and res["speaking"]["f1"] == 1.0
    assert res["config"]["gate"] == 0.5 and res["config"]["gt_mode"] == "visible"
    assert png.stat().st_size > 20_000


def test_evaluate_gate_option_and_bad_files(scene_dir, tmp_path, capsys):
    gt = read_ground_truth(scene_dir)
    tracks = tmp_path / "off.csv"
    _write_tracks(gt, tracks, shift=0.4)
    js = tmp_path / "m.json"
    assert main(["evaluate", str(scene_dir), str(tracks), "--gate", "0.3", "--json",
                 str(js)]) == 0
    assert json.loads(js.read_text())["tracking"]["mota"] == pytest.approx(-1.0)
    assert main(["evaluate", str(scene_dir), str(tracks), "--include-invisible", "--json",
                 str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["tracking"]["motp"] == pytest.approx(0.4) and res["config"]["gt_mode"] == "all"
    bad = tmp_path / "bad.csv"
    bad.write_text("time,id,x\n1,2,3\n")
    assert main(["evaluate", str(scene_dir), str(bad)]) == 2
    assert "neither a track file" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), str(tracks)]) == 2
    assert "no ground truth" in capsys.readouterr().err


def test_simulate_audio_evaluate_chain(scene_dir, tmp_path, capsys):
    """The real audio front-end on the simulated WAV: the ITD error is tiny (anechoic)."""
    feats = tmp_path / "features.csv"
    assert main(["audio", str(scene_dir / "audio.wav"), "--output", str(feats)]) == 0
    assert sniff_csv_kind(feats) == "audio"
    js = tmp_path / "a.json"
    capsys.readouterr()
    assert main(["evaluate", str(scene_dir), str(feats), "--json", str(js)]) == 0
    assert "ITD error" in capsys.readouterr().out
    audio = json.loads(js.read_text())["audio"]
    # measured: 108 frames scored, median ITD error 3.0 us, median DOA error 0.42 deg
    assert audio["scored_frames"] > 100
    assert audio["itd_error_us"]["median_abs"] < 4.0
    assert audio["doa_error_deg"]["median_abs"] < 0.6
    assert np.isfinite(audio["itd_error_us"]["rmse"])
