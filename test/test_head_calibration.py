"""Head self-calibration: fits recover the true head from labelled (position, ITD) pairs
despite wrong associations, and are written to / read from the calibration file."""
import math

import numpy as np
import pytest

from av_perception.core.config import MicArrayConfig
from av_perception.core.geometry import MicGeometry
from av_perception.core.head import MeasuredHead, SphericalHead, woodworth_itd
from av_perception.core.head_calibration import HeadCalibrationConfig, HeadCalibrator
from av_perception.io.heads import apply_calibration, load_head_model, save_calibration

EARS = ((-0.09, 0.05, -0.03), (0.09, 0.05, -0.03))
TRUE = SphericalHead(*EARS, radius=0.095, ear_azimuth=math.radians(97))


def _samples(rng, n, outliers=0.2, noise=25e-6):
    """Talkers spread over +-70 deg at 1-3 m; a fraction of the ITDs are wrong
    associations (another source's ITD) or reverberant garbage."""
    az = np.radians(rng.uniform(-70, 70, n))
    dist = rng.uniform(1.0, 3.0, n)
    pos = TRUE.centre + dist[:, None] * TRUE.direction_from_azimuth(az)
    pos[:, 1] += rng.uniform(-0.4, 0.2, n)
    itd = TRUE.itd(pos) + rng.normal(0, noise, n)
    bad = rng.random(n) < outliers
    itd[bad] = rng.uniform(-7e-4, 7e-4, int(bad.sum()))
    return pos, itd, rng.uniform(0.3, 1.0, n)


@pytest.mark.parametrize("start", ["radius_minus_30", "free_field"])
def test_sphere_fit_recovers_the_head_from_a_wrong_start(rng, start):
    if start == "free_field":
        model = MicGeometry(*EARS)
    else:
        model = SphericalHead(*EARS, radius=0.7 * 0.095)
    cal = HeadCalibrator(HeadCalibrationConfig(enabled=True), model)
    pos, itd, w = _samples(rng, 400)
    cal.add_samples(pos[:100], itd[:100], w[:100])
    assert cal.fit() is None  # not enough evidence yet (150 samples needed)
    cal.add_samples(pos[100:], itd[100:], w[100:])
    fit = cal.fit(stamp=12.0)
    assert fit is not None and fit.model is cal.model
    assert fit.params["head_model"] == "spherical_head"
    # measured: radius 9.58 / 9.65 cm, ear azimuth 93.2 / 91.5 deg (true 97), ITD curve
    # within 8.1 / 9.6 us
    assert fit.params["head_radius"] == pytest.approx(0.095, abs=0.0025)
    # front samples pin the ITD curve; the ear azimuth only within a few degrees
    assert 89.0 < fit.params["ear_azimuth"] < 101.0
    az = np.radians(np.linspace(-80, 80, 33))
    err = np.abs(fit.model.itd_from_azimuth(az) - TRUE.itd_from_azimuth(az))
    assert err.max() < 12e-6
    assert fit.cost < fit.previous_cost


def test_frontal_samples_are_not_enough_evidence(rng):
    cal = HeadCalibrator(HeadCalibrationConfig(enabled=True),
                         SphericalHead(*EARS, radius=0.06))
    pos, itd, w = _samples(rng, 500, outliers=0.0)
    front = np.abs(TRUE.azimuth_of_points(pos)) < np.radians(10)
    for _ in range(3):
        cal.add_samples(pos[front], itd[front], w[front])
    assert cal.n_samples >= 150 and not cal.enough_evidence()
    assert cal.fit() is None


def test_measured_table_scale_and_no_change_when_already_right(rng):
    table = TRUE.table  # a "measured" table: the true head's
    wrong = MeasuredHead(*EARS, table, itd_scale=0.7)
    cal = HeadCalibrator(HeadCalibrationConfig(enabled=True), wrong)
    pos, itd, w = _samples(rng, 300)
    cal.add_samples(pos, itd, w)
    fit = cal.fit()
    assert fit.params == {"head_model": "measured",
                          "itd_scale": pytest.approx(1.0, abs=0.01)}  # measured 1.006
    # the right free-field model on free-field data is not replaced by a sphere
    ff = MicGeometry((-0.075, 0, 0), (0.075, 0, 0))
    cal = HeadCalibrator(HeadCalibrationConfig(enabled=True), ff)
    az = np.radians(rng.uniform(-70, 70, 300))
    p = 2.0 * ff.direction_from_azimuth(az)
    cal.add_samples(p, ff.itd(p) + rng.normal(0, 25e-6, 300), np.ones(300))
    assert cal.fit() is None and cal.model is ff


def test_calibration_file_round_trip(tmp_path, rng):
    cal = HeadCalibrator(HeadCalibrationConfig(enabled=True), SphericalHead(*EARS, radius=0.07))
    pos, itd, w = _samples(rng, 300)
    cal.add_samples(pos, itd, w)
    fit = cal.fit(stamp=3.0)
    path = tmp_path / "head.json"
    save_calibration(path, fit)
    mics = MicArrayConfig(left=EARS[0], right=EARS[1], head_model="spherical_head",
                          head_radius=0.07, calibration_file=str(path))
    applied = apply_calibration(mics)
    assert applied.head_radius == pytest.approx(fit.params["head_radius"])
    model = load_head_model(mics)
    assert isinstance(model, SphericalHead)
    assert model.radius == pytest.approx(fit.params["head_radius"])
    # no file yet: the configured model
    missing = mics.replace(calibration_file=str(tmp_path / "none.json"))
    assert load_head_model(missing).radius == 0.07


def test_woodworth_sample_generator_is_the_model():
    # the fit's residual uses woodworth_itd directly: it must equal the tabulated model
    d = TRUE.direction_from_azimuth(np.radians([30.0, -50.0]))
    head = np.stack([d @ TRUE.forward, d @ TRUE.axis, d @ TRUE.up], axis=1)
    exact = woodworth_itd(head, 0.095, math.radians(97))
    assert np.allclose(TRUE.itd(TRUE.centre + 2 * d), exact, atol=1.5e-6)
