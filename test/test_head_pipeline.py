"""Head models through the pipeline: WD-EM audio mapping (numba = numpy reference),
and the self-calibration from vision on a simulated KEMAR conversation."""
import math

import numpy as np
import pytest
from conftest import require

from av_perception.core.av_clustering import cluster_window
from av_perception.core.head import MeasuredHead, SphericalHead
from av_perception.core.wdem import WdemConfig

EARS = ((-0.09, 0.05, -0.03), (0.09, 0.05, -0.03))
SPHERE = SphericalHead(*EARS, radius=0.095, ear_azimuth=math.radians(97))
TABLE = MeasuredHead(*EARS, SPHERE.table, itd_scale=1.1)
PEOPLE = np.array([[-0.7, 0.0, 1.6], [0.6, -0.1, 2.4], [0.1, 0.1, 3.0]])


def _window(rng, model, speaker, n_frames=15, n_audio=100):
    pts, ws, covs = [], [], []
    for _ in range(n_frames):
        for p in PEOPLE:
            s = np.array([0.01, 0.01, 0.02]) * p[2]
            pts.append(p + rng.normal(0.0, s))
            ws.append(rng.uniform(0.6, 1.0))
            covs.append(np.diag(s ** 2))
    itd = model.itd(PEOPLE[speaker])[0] + rng.normal(0, 20e-6, n_audio)
    junk = rng.random(n_audio) < 0.2
    itd[junk] = rng.uniform(-7e-4, 7e-4, int(junk.sum()))
    wa = np.where(junk, 0.2, rng.uniform(0.4, 1.0, n_audio))
    return np.array(pts), np.array(ws), np.array(covs), itd, wa


@pytest.mark.parametrize("model", [SPHERE, TABLE], ids=["spherical", "measured"])
def test_wdem_audio_mapping_numba_equals_reference_with_head_models(model):
    rng = np.random.default_rng(3)
    X, w, C, itd, wa = _window(rng, model, speaker=0)
    for variant in ("wd", "fwd"):
        a, b = [cluster_window(X, w, itd, wa, model, wdem_config=WdemConfig(variant=variant),
                               visual_covariances=C, use_numba=u) for u in (True, False)]
        assert a.n_iter == b.n_iter and len(a.events) == len(b.events) == 3
        np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-9)
        for ea, eb in zip(a.events, b.events):
            np.testing.assert_allclose(ea.position, eb.position, rtol=1e-9, atol=1e-12)
            assert ea.itd == pytest.approx(eb.itd, rel=1e-9, abs=1e-15)
            assert ea.audio_mass == pytest.approx(eb.audio_mass, rel=1e-8, abs=1e-10)
        # the speaker's cluster (the head model's ITD of person 0) takes the audio
        pos = np.array([e.position for e in a.events])
        k = int(np.argmin(np.linalg.norm(pos - PEOPLE[0], axis=1)))
        masses = np.array([e.audio_mass for e in a.events])
        assert masses[k] > 10 * np.delete(masses, k).max()
        assert a.events[k].itd == pytest.approx(model.itd(PEOPLE[0])[0], abs=15e-6)


@pytest.fixture(scope="module")
def kemar_conversation(tmp_path_factory):
    """two_static with the KEMAR head, anechoic, 12 s: the ground truth, the audio and the
    tracker benchmark's visual stream."""
    try:
        import slab  # noqa: F401
    except ImportError:
        require(False, "slab (pip install slab)")
    import scipy.io.wavfile

    from av_perception.eval.readers import read_ground_truth
    from av_perception.eval.tracker_benchmark import synthetic_streams
    from av_perception.sim import make_scene, simulate

    out = tmp_path_factory.mktemp("kemar_conv")
    scene = make_scene("two_static", seed=1, duration=12.0, head="kemar", rt60=0.0)
    simulate(scene, out, write_bag=False, overwrite=True)
    rate, samples = scipy.io.wavfile.read(out / "audio.wav")
    gt = read_ground_truth(out)
    return scene, gt, samples, rate, synthetic_streams(scene, gt, 0)


def _run(conv, mics, calibrate):
    import pandas as pd

    from av_perception.core.audio import extract_features
    from av_perception.core.config import AudioFrontEndConfig
    from av_perception.core.head_calibration import HeadCalibrationConfig
    from av_perception.core.tracking import TrackerConfig
    from av_perception.eval.metrics import evaluate_audio, evaluate_tracks
    from av_perception.eval.tracker_benchmark import run_tracker
    from av_perception.io.heads import load_head_model

    scene, gt, samples, rate, streams = conv
    cfg = AudioFrontEndConfig(itd_margin=0.3, min_frequency=200.0)
    model = load_head_model(mics, cfg)
    f = extract_features(samples, rate, cfg, model, start_time=scene.epoch)
    df, trk = run_tracker(streams, scene, TrackerConfig(itd_sigma=6e-5), f, model=model,
                          calibration=HeadCalibrationConfig(enabled=calibrate))

    def doa(model, start=-np.inf):
        keep = f.stamp >= start
        feats = pd.DataFrame({"t": f.stamp[keep], "itd": f.itd[keep],
                              "azimuth": model.azimuth_from_itd(f.itd[keep]),
                              "ild": f.ild[keep], "activity": f.activity[keep]})
        return evaluate_audio(scene, feats)["doa_error_deg"]["median_abs"]

    t = evaluate_tracks(gt, df)
    metrics = (t["tracking"]["mota"], t["tracking"]["idf1"], t["speaking"]["f1"])
    return doa, model, metrics, df.attrs.get("calibrator")


def test_self_calibration_from_a_head_30_percent_too_small(kemar_conversation):
    from av_perception.core.config import MicArrayConfig

    conv = kemar_conversation
    scene = conv[0]
    doa_ok, right, metrics_ok, _ = _run(conv, MicArrayConfig(
        left=EARS[0], right=EARS[1], head_model="measured"), False)
    doa_bad, wrong, metrics_bad, cal = _run(conv, MicArrayConfig(
        left=EARS[0], right=EARS[1], head_model="spherical_head",
        head_radius=0.7 * 0.095), True)
    # measured: correct model 0.56 deg, 30 % small sphere 4.3 deg median DOA error
    assert doa_ok(right) < 0.7
    assert doa_bad(wrong) > 3.8
    assert cal.fits, "no calibration fit"
    first = cal.fits[0].stamp - scene.epoch
    # measured: 4 s of conversation (two talkers taking turns); fits every 1 s
    assert first <= 5.0
    # after the first fit the calibrated sphere hears as well as the measured table
    # (measured: 0.51 against 0.50 deg)
    doa_cal = doa_bad(cal.fits[0].model, cal.fits[0].stamp)
    assert doa_cal < doa_ok(right, cal.fits[0].stamp) + 0.1
    r = cal.fits[-1].params["head_radius"]
    assert 0.083 < r < 0.090  # KEMAR's ITD over +-30 deg: a 8.6 cm sphere (8.64-8.65)
    # the tracker (vision-dominated here) is as good with and without it (measured: equal)
    assert np.allclose(metrics_bad, metrics_ok, atol=0.01)


def test_tracking_pipeline_calibrates_and_the_file_is_used_at_the_next_start(
        kemar_conversation, tmp_path):
    """The live path: TrackingPipeline (tracker_node / perception_node) fed frame by frame
    writes the calibration file; the next start (any stage) loads the fitted head."""
    from av_perception.core.audio import extract_features
    from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig
    from av_perception.core.head_calibration import HeadCalibrationConfig
    from av_perception.core.tracking import TrackerConfig
    from av_perception.io.heads import load_calibration, load_head_model
    from av_perception.pipeline import AudioPipeline, TrackingPipeline

    scene, gt, samples, rate, streams = kemar_conversation
    path = tmp_path / "head.json"
    mics = MicArrayConfig(left=EARS[0], right=EARS[1], head_model="spherical_head",
                          head_radius=0.7 * 0.095, calibration_file=str(path))
    cfg = AudioFrontEndConfig(itd_margin=0.3, min_frequency=200.0)
    feats = extract_features(samples, rate, cfg, load_head_model(mics, cfg),
                             start_time=scene.epoch)
    pipe = TrackingPipeline(TrackerConfig(itd_sigma=6e-5), mics, scene.robot.camera,
                            calibration=HeadCalibrationConfig(enabled=True))
    a = 0
    for vis in streams.visual:
        b = int(np.searchsorted(feats.stamp, vis.stamp, side="right"))
        pipe.add_audio_features(feats.slice(a, b))
        a = b
        pipe.step(vis.stamp, vis.xyz, vis.covariance, vis.weight)
    assert pipe.calibrator.fits and path.is_file()
    fitted = load_calibration(path)
    assert fitted["head_model"] == "spherical_head"
    assert 0.083 < fitted["head_radius"] < 0.090  # measured 8.65 cm
    assert pipe.tracker.geometry is pipe.calibrator.model
    # the next start: the audio stage and a new tracker hear with the fitted head
    audio = AudioPipeline(cfg, mics)
    assert audio.geometry.radius == pytest.approx(fitted["head_radius"])
    assert audio.geometry.has_ild  # the front-end's own model keeps its ILD
    again = TrackingPipeline(TrackerConfig(), mics, scene.robot.camera)
    assert again.tracker.geometry.radius == pytest.approx(fitted["head_radius"])
    assert again.calibrator is None  # calibration off by default
