"""The tracker on every simulator preset (av_perception.core.tracking at scene level).

Observation streams made from the simulator's ground truth with realistic noise
(eval.tracker_benchmark) -> track rows -> av_perception.eval metrics, for the tracker and
two baselines (visual-only tracking; frame-by-frame assignment without temporal model);
and the tracker fed by the real audio front-end.  Unit tests: test_tracker.py.
"""
import pytest

PRESETS = ("single_static_anechoic", "two_static", "default", "moving", "hard")
SCENE_SEEDS = (0, 3, 5)  # held out: the defaults were tuned on scene seeds 1, 2 and 4
#: per preset, lower bounds for the tracker on every held-out seed (MOTA, IDF1, speaking
#: F1), a little below the worst measured (in brackets: worst / mean over the seeds)
BOUNDS = {
    "single_static_anechoic": (0.97, 0.98, 0.93),  # 0.983 0.992 0.960 / 0.983 0.992 0.964
    "two_static": (0.97, 0.98, 0.91),  # 0.987 0.993 0.941 / 0.987 0.993 0.946
    "default": (0.97, 0.98, 0.91),  # 0.991 0.996 0.938 / 0.991 0.996 0.943
    "moving": (0.97, 0.98, 0.77),  # 0.989 0.994 0.806 / 0.989 0.994 0.837
    "hard": (0.69, 0.85, 0.62),  # 0.723 0.877 0.663 / 0.800 0.909 0.756
}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Every preset simulated on every held-out seed (ground truth and audio.wav, no bag)."""
    from av_perception.eval import read_ground_truth
    from av_perception.sim import make_scene, simulate

    root = tmp_path_factory.mktemp("tracker_scenes")
    out = {}
    for preset in PRESETS:
        for seed in SCENE_SEEDS:
            scene = make_scene(preset, seed=seed)
            simulate(scene, root / f"{preset}_{seed}", write_bag=False)
            out[preset, seed] = (scene, read_ground_truth(root / f"{preset}_{seed}"),
                                 root / f"{preset}_{seed}")
    return out


@pytest.fixture(scope="module")
def benchmark_rows(scenes):
    from av_perception.eval.tracker_benchmark import benchmark_scene, format_table

    rows = []
    for (preset, seed), (scene, gt, _) in scenes.items():
        for method, metrics in benchmark_scene(scene, gt, seed=0).items():
            rows.append({"preset": f"{preset} (seed {seed})", "method": method, **metrics})
    print("\n" + format_table(rows))
    return {(r["preset"], r["method"]): r for r in rows}


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_scene_benchmark(benchmark_rows, preset):
    mota, idf1, f1 = BOUNDS[preset]
    for seed in SCENE_SEEDS:
        key = f"{preset} (seed {seed})"
        trk = benchmark_rows[(key, "tracker")]
        vis = benchmark_rows[(key, "visual_only")]
        fbf = benchmark_rows[(key, "frame_by_frame")]
        no_ao = benchmark_rows[(key, "tracker_no_audio_only")]
        assert trk["mota"] >= mota and trk["idf1"] >= idf1 and trk["speaking_f1"] >= f1, \
            (seed, trk)
        assert trk["loc_error"] < 0.03
        # the temporal model: far fewer false positives and identity switches
        assert trk["mota"] >= fbf["mota"] + 0.2 and trk["idf1"] >= fbf["idf1"] + 0.3
        assert trk["switches"] < fbf["switches"]
        # audio adds the speaking status; the tracking itself is the visual one's, up to
        # the audio-only tracks of talkers out of view (their depth is unobservable: false
        # positives when more than 0.5 m off)
        assert vis["speaking_f1"] == 0.0
        assert no_ao["mota"] >= vis["mota"] - 0.1
        assert no_ao["mota"] >= trk["mota"]
        if preset != "single_static_anechoic":  # several people: who speaks needs the model
            assert trk["speaking_f1"] >= fbf["speaking_f1"]


@pytest.mark.slow
def test_end_to_end_with_the_real_audio_front_end(scenes):
    """The real binaural front-end on the simulator's audio.wav (RT60 0.4 s, 15 dB) with
    visual observations from the ground truth: tracking and speaking status hold."""
    import scipy.io.wavfile

    from av_perception.core.audio import BinauralFeatures, BinauralFrontEnd
    from av_perception.eval.tracker_benchmark import benchmark_scene

    scene, gt, outdir = scenes["default", SCENE_SEEDS[0]]
    rate, samples = scipy.io.wavfile.read(outdir / "audio.wav")
    front = BinauralFrontEnd(mics=scene.robot.mics)
    chunk = scene.audio.chunk  # streamed as the nodes get it; the first chunk sets the clock
    parts = [front.process(samples[a:a + chunk], rate, scene.epoch if a == 0 else None)
             for a in range(0, len(samples), chunk)]
    feats = BinauralFeatures.concatenate(parts)
    assert len(feats) > 50 * scene.duration
    res = benchmark_scene(scene, gt, seed=0, methods=("tracker", "frame_by_frame"),
                          audio=feats)
    trk, fbf = res["tracker"], res["frame_by_frame"]
    print(f"\nreal front-end, default preset: tracker {trk}\nframe-by-frame {fbf}")
    # measured (held-out seed 0): MOTA 0.991, IDF1 0.996, speaking F1 0.929 (0.829 frame
    # by frame; inactive frames from the activity alone, gate 0.7); with
    # audio.precedence_gate 0.5 (until 2026-12-07) 0.922 (0.790); with the memory not gated
    # 0.929 (0.888: the frames agree more, and the baseline reads them).  The margin over
    # the baseline was 0.1 when the baseline read 0.790; its frames are better since
    assert trk["mota"] >= 0.97 and trk["idf1"] >= 0.98
    assert trk["speaking_f1"] >= 0.9
    assert trk["speaking_f1"] >= fbf["speaking_f1"] + 0.08
