"""``av-perception vision``: the visual front-end over a simulated bag and damaged bags."""
import json
import shutil

import numpy as np
import pytest
from stereobag import HEADS, render, write_stereo_bag

from av_perception.cli import main
from av_perception.io.observation_files import (
    EXTRA_OBSERVATION_COLUMNS,
    OBSERVATION_COLUMNS,
    read_observations_csv,
)
from av_perception.sim import make_scene, simulate


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "default"
    simulate(make_scene("default", seed=1, duration=2.5), out, compressed=True, storage="mcap")
    truth = {round(r["stamp"], 6): r for r in
             map(json.loads, (out / "ground_truth.jsonl").read_text().splitlines())}
    return out, truth


def test_vision_command_matches_the_ground_truth(sim, tmp_path, capsys):
    out, truth = sim
    csv = tmp_path / "obs.csv"
    assert main(["vision", str(out / "bag"), "--output", str(csv)]) == 0
    text = capsys.readouterr().out
    assert "/stereo/left/image_raw/compressed" in text
    n_frames = len(truth)
    assert f"{n_frames} frames" in text and "frames/s" in text
    assert csv.read_text().splitlines()[0] == ",".join(OBSERVATION_COLUMNS)
    obs = read_observations_csv(csv)
    stamps = np.unique(obs["stamp"])
    assert len(stamps) >= 0.97 * n_frames  # measured: every frame (37)
    errors, found, visible = [], 0, 0
    for stamp in stamps:
        people = [p for p in truth[round(stamp, 6)]["people"] if p["visible"]]
        gt = np.array([[p["x"], p["y"], p["z"]] for p in people])
        rows = obs["stamp"] == stamp
        xyz = np.column_stack([obs["x"][rows], obs["y"][rows], obs["z"][rows]])
        d = np.linalg.norm(xyz[:, None] - gt[None], axis=2)
        errors.extend(d.min(axis=1))  # every observation is a visible person ...
        found += int((d.min(axis=0) < 0.1).sum())  # ... and most visible people are observed
        visible += len(gt)
    errors = np.array(errors)
    # measured: largest error 21 mm, median 7 mm, 108 of 111 visible people observed
    assert np.all(errors < 0.035), errors.max()
    assert np.median(errors) < 0.012
    assert found >= 0.95 * visible, (found, visible)
    assert np.all((obs["weight"] > 0) & (obs["weight"] <= 1))
    assert np.all(obs["w"] > 20)


def test_config_start_duration_and_extra_columns(sim, tmp_path):
    out, truth = sim
    cfg = tmp_path / "c.yaml"
    cfg.write_text("visual_features_node:\n  ros__parameters:\n"
                   "    detection:\n      every_k: 1\n    vision_input:\n      slop: 0.005\n"
                   "    vision:\n      max_depth: 2.2\n")
    csv = tmp_path / "obs.csv"
    assert main(["vision", str(out / "bag"), "-o", str(csv), "--config", str(cfg),
                 "--start", "0.5", "--duration", "1.0", "--extra-columns"]) == 0
    header = csv.read_text().splitlines()[0].split(",")
    assert header == list(OBSERVATION_COLUMNS + EXTRA_OBSERVATION_COLUMNS)
    obs = read_observations_csv(csv)
    t0 = min(truth)
    assert obs["stamp"].min() == pytest.approx(t0 + 0.5, abs=0.07)
    assert obs["stamp"].max() - obs["stamp"].min() == pytest.approx(1.0, abs=0.07)
    assert np.all(obs["z"] <= 2.2 + 0.05)  # max_depth from the config file (only the near one)
    assert set(obs["kind"]) == {"face"}
    assert np.all(obs["var_z"] > obs["var_x"])


def test_damaged_input_keeps_what_was_computed(tmp_path, capsys):
    frames = [render(HEADS, seed=k, noise=1.0) for k in range(8)]
    bag = tmp_path / "bag"
    write_stereo_bag(bag, frames, compressed=True, storage="mcap", corrupt={2})
    csv = tmp_path / "obs.csv"
    assert main(["vision", str(bag), "-o", str(csv)]) == 0
    err = capsys.readouterr().err
    assert "frame at 1700000000.133 s skipped: left image: compressed JPEG" in err
    obs = read_observations_csv(csv)
    assert len(np.unique(obs["stamp"])) == 7 and len(obs["stamp"]) == 14
    # a bag whose second storage chunk is damaged: rows of the readable part are written
    broken = tmp_path / "broken"
    shutil.copytree(bag, broken)
    path = next(broken.glob("*.mcap"))
    data = bytearray(path.read_bytes())
    i, chunks = 8, []
    while data[i] != 0x0F:  # walk the MCAP records up to the data end
        if data[i] == 0x06:
            chunks.append(i)
        i += 9 + int.from_bytes(data[i + 1:i + 9], "little")
    assert len(chunks) >= 2
    c = chunks[-1]  # chunk: start, end, size, crc, compression string, records length
    first_record = c + 9 + 28 + 4 + int.from_bytes(data[c + 37:c + 41], "little") + 8
    data[first_record:first_record + 9] = b"\xff" * 9
    path.write_bytes(bytes(data))
    csv2 = tmp_path / "obs2.csv"
    assert main(["vision", str(broken), "-o", str(csv2)]) == 0
    err = capsys.readouterr().err
    assert "could not be read to its end normally" in err and "damaged" in err, err
    assert "truncated or corrupt" in err
    # the chunk is read around its damaged record: the frames of the other records and
    # of the later chunks are there, identical
    obs2 = read_observations_csv(csv2)
    kept = np.isin(obs["stamp"], obs2["stamp"])
    assert 6 <= len(np.unique(obs2["stamp"])) <= 7
    np.testing.assert_allclose(obs2["x"], obs["x"][kept])


def test_vision_command_errors_are_clear(tmp_path, capsys):
    assert main(["vision", str(tmp_path / "missing"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bag = tmp_path / "bag"
    write_stereo_bag(bag, [render(HEADS)], info_sides=("left",))
    assert main(["vision", str(bag), "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "no CameraInfo topic for the right camera" in err and "--right-info" in err
    assert not (tmp_path / "o.csv").exists()
    assert main(["vision", str(bag), "-o", str(tmp_path / "o.csv"), "--left-topic",
                 "/nope"]) == 2
    err = capsys.readouterr().err
    assert "/nope" in err and "/stereo/left/image_raw [sensor_msgs/msg/Image]" in err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("n:\n  ros__parameters:\n    vision:\n      min_depth: -1.0\n")
    assert main(["vision", str(bag), "-o", str(tmp_path / "o.csv"), "--config",
                 str(cfg)]) == 2
    assert "vision.min_depth" in capsys.readouterr().err
    # without CameraInfo, the camera.* parameters give the calibration
    cfg.write_text("n:\n  ros__parameters:\n    vision_input:\n      use_camera_info: false\n")
    assert main(["vision", str(bag), "-o", str(tmp_path / "o.csv"), "--config",
                 str(cfg)]) == 0
    assert len(read_observations_csv(tmp_path / "o.csv")["x"]) == 2
    # a bag with images that never pair: no usable frame is an error
    bag2 = tmp_path / "bag2"
    write_stereo_bag(bag2, [render(HEADS)] * 2, right_offset=0.033)
    assert main(["vision", str(bag2), "-o", str(tmp_path / "o2.csv")]) == 1
    err = capsys.readouterr().err
    assert "2 left and 2 right images had no partner" in err and "no usable stereo frame" in err
