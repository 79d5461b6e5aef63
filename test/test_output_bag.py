"""``av-perception process BAG --output tracks.csv --output-bag OUT``: the output rosbag2
reads back (rosbags AnyReader) with speakers / speakers/markers / speakers/image, one
message per image frame, stamped with the image stamps, positions = the track file."""
import csv

import numpy as np
import pytest

from av_perception.cli import main


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    from av_perception.sim import make_scene, simulate

    out = tmp_path_factory.mktemp("outbag_scene")
    simulate(make_scene("two_static", seed=3, duration=2.0), out, storage="mcap",
             compressed=True)
    return out


def _read_bag(path):
    from rosbags.highlevel import AnyReader

    from av_perception.io.msgdefs import make_typestore

    msgs = {}
    with AnyReader([path], default_typestore=make_typestore()) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        for conn, t, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return topics, msgs


def _input_image_stamps(bag):
    from av_perception.io.bag import BagReader

    with BagReader(bag) as r:
        topic = next(t for t in r.topics if t.startswith("/stereo/left/image_raw"))
        return [m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
                for m in r.messages([topic])]


def _cloud(msg):
    names = [f.name for f in msg.fields]
    fmt = {7: "<f4", 6: "<u4"}
    dt = np.dtype({"names": names, "formats": [fmt[f.datatype] for f in msg.fields],
                   "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    return np.frombuffer(bytes(msg.data), dtype=dt, count=msg.width * msg.height)


@pytest.mark.parametrize("fmt", ["mcap", "sqlite3"])
def test_process_writes_an_output_bag_matching_the_track_file(scene_dir, tmp_path, fmt):
    tracks = tmp_path / "tracks.csv"
    out = tmp_path / f"out_{fmt}"
    argv = ["process", str(scene_dir / "bag"), "--output", str(tracks), "--output-bag",
            str(out), "--output-format", fmt, "-q"]
    if fmt == "sqlite3":
        argv.append("--no-images")
    assert main(argv) == 0
    topics, msgs = _read_bag(out)
    expected = {"speakers": "sensor_msgs/msg/PointCloud2",
                "speakers/markers": "visualization_msgs/msg/MarkerArray",
                "attention": "geometry_msgs/msg/PointStamped",
                "attention/voice_id": "std_msgs/msg/String"}
    if fmt == "mcap":
        expected["speakers/image"] = "sensor_msgs/msg/Image"
    assert topics == expected

    image_stamps = _input_image_stamps(scene_dir / "bag")
    clouds = msgs["speakers"]
    # one cloud per image frame, stamped exactly with the image stamps (bag time too)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in clouds]
    assert stamps == image_stamps
    assert [t for t, _ in clouds] == stamps
    assert all(m.header.frame_id for _, m in clouds)

    # the cloud rows are the track file rows
    with open(tracks) as fh:
        rows = [(round(float(r["stamp"]), 6), int(r["track_id"]), float(r["x"]), float(r["y"]),
                 float(r["z"])) for r in csv.DictReader(fh)]
    assert len(rows) > 20
    got = []
    for _, m in clouds:
        assert [f.name for f in m.fields] == ["x", "y", "z", "id", "speaking", "existence",
                                              "var_x", "var_y", "var_z"]
        pts = _cloud(m)
        t = round(m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec, 6)
        got.extend((t, int(p["id"]), float(p["x"]), float(p["y"]), float(p["z"])) for p in pts)
        assert np.all(pts["existence"] > 0) and np.all(pts["var_z"] > 0)
        assert np.all((pts["speaking"] >= 0) & (pts["speaking"] <= 1))
    assert len(got) == len(rows)
    for a, b in zip(sorted(got), sorted(rows)):
        assert abs(a[0] - b[0]) < 2e-6 and a[1] == b[1]
        np.testing.assert_allclose(a[2:], b[2:], atol=1e-4)

    # attention: a voice id per cloud (bag time = the cloud's); a point, in the clouds'
    # frame, at the position of that track in the cloud, whenever the id is not empty
    voice_ids = msgs["attention/voice_id"]
    assert [t for t, _ in voice_ids] == stamps
    points = {t: m for t, m in msgs["attention"]}
    assert set(points) == {t for t, m in voice_ids if m.data}
    assert points, "nobody taken for a speaker"
    for (t, cloud), (_, vid) in zip(clouds, voice_ids):
        if not vid.data:
            continue
        p = points[t]
        assert p.header.frame_id == cloud.header.frame_id
        pts = _cloud(cloud)
        row = pts[pts["id"] == int(vid.data.removeprefix("voice"))]
        np.testing.assert_allclose([p.point.x, p.point.y, p.point.z],
                                   [row["x"][0], row["y"][0], row["z"][0]], atol=1e-6)

    # markers: an ellipsoid and a label per track, stamped like the clouds
    markers = msgs["speakers/markers"]
    assert len(markers) >= len([1 for _, m in clouds if m.width]) > 0
    by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for _, m in clouds}
    for _, arr in markers:
        adds = [mk for mk in arr.markers if mk.action == 0]
        cloud = by_stamp[(arr.markers[0].header.stamp.sec, arr.markers[0].header.stamp.nanosec)]
        ids = sorted(int(i) for i in _cloud(cloud)["id"])
        assert sorted(mk.id for mk in adds if mk.type == 2) == ids
        assert sorted(mk.id for mk in adds if mk.type == 9) == ids
        for mk in adds:
            assert mk.ns in ("speakers/ellipsoid", "speakers/label")
            if mk.type == 9:
                assert mk.text.split()[0] == str(mk.id)
            else:
                assert mk.scale.x > 0 and mk.scale.z > 0
                q = mk.pose.orientation
                assert abs(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2 - 1) < 1e-6

    if fmt == "mcap":
        images = msgs["speakers/image"]
        assert [t for t, _ in images] == image_stamps
        img = images[0][1]
        assert img.encoding == "bgr8" and img.step == 3 * img.width
        assert len(img.data) == img.height * img.step
    else:
        assert "speakers/image" not in msgs


def test_output_bag_labels_follow_the_tracking_parameters(scene_dir, tmp_path):
    """tracking.frame_id, speaking_threshold and marker_lifetime from --config label the
    output bag as they label the nodes' outputs."""
    config = tmp_path / "labels.yaml"
    config.write_text("/**:\n  ros__parameters:\n    tracking:\n      frame_id: head_frame\n"
                      "      speaking_threshold: 0.0\n      marker_lifetime: 0.25\n"
                      "      publish_voices: true\n")  # a node-only parameter: passed over
    out = tmp_path / "out"
    assert main(["process", str(scene_dir / "bag"), "--output", str(tmp_path / "t.csv"),
                 "--output-bag", str(out), "--no-images", "--config", str(config), "-q"]) == 0
    _, msgs = _read_bag(out)
    assert {m.header.frame_id for _, m in msgs["speakers"]} == {"head_frame"}
    labels = [mk for _, arr in msgs["speakers/markers"] for mk in arr.markers
              if mk.action == 0 and mk.type == 9]
    assert labels
    for mk in labels:  # every track counts as speaking from probability 0
        assert mk.text == f"{mk.id} speaking"
        assert (mk.lifetime.sec, mk.lifetime.nanosec) == (0, 250_000_000)
        assert mk.header.frame_id == "head_frame"


def test_output_bag_refuses_an_existing_directory(scene_dir, tmp_path, capsys):
    (tmp_path / "exists").mkdir()
    argv = ["process", str(scene_dir / "bag"), "--output", str(tmp_path / "t.csv"),
            "--output-bag", str(tmp_path / "exists"), "-q"]
    assert main(argv) == 2
    assert "exists" in capsys.readouterr().err


def test_marker_deletes_for_ended_tracks(tmp_path):
    from av_perception.core.tracking import TrackerOutput
    from av_perception.io.output_bag import OutputBagWriter

    def output(ids, ended=()):
        k = len(ids)
        return TrackerOutput(
            stamp=1.0, ids=np.asarray(ids, dtype=np.int64), position=np.tile([0, 0, 2.0], (k, 1)),
            covariance=np.tile(np.diag([0.01, 0.02, 0.04]), (k, 1, 1)),
            velocity=np.zeros((k, 3)), existence=np.ones(k), speaking=np.full(k, 0.9),
            audio_only=np.zeros(k, bool), ended=np.asarray(ended, dtype=np.int64))

    with OutputBagWriter(tmp_path / "b", images=False) as w:
        hdr = w.header(1, 0, "cam")
        first = w.markers(hdr, output([1, 2]))
        second = w.markers(hdr, output([2]))
    assert {(m.ns, m.id) for m in first.markers} == {
        ("speakers/ellipsoid", 1), ("speakers/label", 1), ("speakers/ellipsoid", 2),
        ("speakers/label", 2)}
    assert [m.text for m in first.markers if m.type == 9] == ["1 speaking", "2 speaking"]
    deletes = [(m.ns, m.id) for m in second.markers if m.action == 2]
    assert sorted(deletes) == [("speakers/ellipsoid", 1), ("speakers/label", 1)]
