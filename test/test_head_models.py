"""Head-related binaural models: spherical head against closed forms, KEMAR table
against the published KEMAR figures, numba kernel against the numpy reference."""
import math

import numpy as np
import pytest
from conftest import require

from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig
from av_perception.core.geometry import MicGeometry
from av_perception.core.head import (
    MeasuredHead,
    SphericalHead,
    make_head_model,
    model_itd_jac,
    model_itd_reference,
    spherical_ild,
    woodworth_itd,
)

C = 343.0
EARS = ((-0.09, 0.05, -0.03), (0.09, 0.05, -0.03))  # the dummy-head profile
BANDS = AudioFrontEndConfig().ild_band_edges


@pytest.fixture(scope="module")
def kemar():
    try:
        import slab  # noqa: F401
    except ImportError:
        require(False, "slab (pip install slab)")
    from av_perception.io.heads import kemar_table
    return MeasuredHead(*EARS, kemar_table(BANDS), C)


def horizontal(az):
    return np.stack([np.cos(az), np.sin(az), np.zeros_like(az)], axis=1)


def test_woodworth_matches_the_closed_form_with_ears_on_the_axis():
    az = np.radians(np.linspace(-90, 90, 37))
    r = 0.0875
    itd = woodworth_itd(horizontal(az), r, math.pi / 2, 0.0, C)
    assert np.allclose(itd, r / C * (az + np.sin(az)), atol=1e-12)
    assert itd[-1] == pytest.approx(r / C * (math.pi / 2 + 1))  # 0.656 ms at 90 deg, left
    # behind: same lateral angle, same ITD (cone of confusion)
    back = horizontal(np.pi - az)
    assert np.allclose(woodworth_itd(back, r, math.pi / 2, 0.0, C), itd, atol=1e-12)


def test_woodworth_with_ears_set_back():
    r, e = 0.09, math.radians(100)
    # source in the direction of the left ear: left delay -r/c, right ear around the sphere
    d = np.array([[math.cos(e), math.sin(e), 0.0]])
    g = math.acos(math.cos(2 * e))  # angle between the source and the right ear
    assert woodworth_itd(d, r, e, 0.0, C)[0] == pytest.approx(r / C * (g - math.pi / 2 + 1))
    # symmetric ears: no ITD straight ahead
    assert woodworth_itd(horizontal(np.radians([0.0])), r, e, 0.0, C)[0] == pytest.approx(0.0)


def test_spherical_ild_grows_with_frequency_and_laterality():
    ild = spherical_ild(horizontal(np.radians([0.0, 30.0, 90.0, -90.0])), BANDS, 0.0875)
    assert np.allclose(ild[0], 0.0, atol=1e-9)
    assert np.all(np.diff(ild[2]) > 0)  # more shadow at higher frequencies
    assert ild[2, -1] > 10.0 and ild[2, 0] < 2.0
    assert np.allclose(ild[3], -ild[2])
    assert np.all(ild[1] < ild[2])


def test_spherical_table_interpolates_the_analytic_model(rng):
    m = SphericalHead(*EARS, radius=0.0875, ear_azimuth=math.radians(95), speed_of_sound=C,
                      band_edges=BANDS)
    pts = m.centre + rng.normal(size=(300, 3)) * 2.0
    d = pts - m.centre
    head = np.stack([d @ m.forward, d @ m.axis, d @ m.up], axis=1)
    exact = woodworth_itd(head, 0.0875, math.radians(95), 0.0, C)
    assert np.max(np.abs(m.itd(pts) - exact)) < 1.5e-6  # table: 1 x 2 deg bilinear
    ild = spherical_ild(head, BANDS, 0.0875, math.radians(95), 0.0, C)
    assert np.max(np.abs(m.ild(pts) - ild)) < 0.5
    # the largest ITD: the analytic model's maximum over a dense grid of directions
    # (lateral angle every 0.25 deg, polar angle every 0.5 deg)
    lat, pol = np.meshgrid(np.radians(np.linspace(-90, 90, 721)),
                           np.radians(np.linspace(-180, 180, 1441)))
    lat, pol = lat.ravel(), pol.ravel()
    dense = np.stack([np.cos(lat) * np.cos(pol), np.sin(lat), np.cos(lat) * np.sin(pol)], 1)
    analytic_max = np.max(np.abs(woodworth_itd(dense, 0.0875, math.radians(95), 0.0, C)))
    assert m.max_itd == pytest.approx(analytic_max, abs=1e-8)


def test_numba_kernel_matches_reference_and_finite_differences(rng):
    for m in (SphericalHead(*EARS, radius=0.09, ear_elevation=0.2),
              MicGeometry(*EARS)):
        frame, table = m.kernel_arrays()
        pts = rng.uniform([-2, -1, 0.5], [2, 1, 4], size=(40, 3))
        J = np.zeros(3)
        for p in pts:
            g = model_itd_jac(p, m.left, m.right, m.speed_of_sound, frame, table, J)
            assert g == pytest.approx(m.itd(p)[0], abs=1e-15)
            assert np.allclose(J, m.itd_jacobian(p)[0], atol=1e-15)
        if table.size:
            g, Jr = model_itd_reference(pts, frame, table)
            h = 1e-5
            for k in range(3):
                e = np.zeros(3)
                e[k] = h
                fd = (m.itd(pts + e) - m.itd(pts - e)) / (2 * h)
                # bilinear: the gradient is exact inside a cell
                assert np.allclose(Jr[:, k], fd, rtol=1e-3, atol=2e-8)


def test_inversion_round_trips():
    az = np.radians(np.linspace(-85, 85, 35))
    for m in (SphericalHead(*EARS, radius=0.0875), MicGeometry(*EARS)):
        assert np.allclose(m.azimuth_from_itd(m.itd_from_azimuth(az)), az, atol=1e-3)
        pts = m.point_from_itd(m.itd_from_azimuth(az), 2.0)
        assert np.allclose(m.itd(pts), m.itd_from_azimuth(az), atol=2e-8)
        assert np.allclose(m.azimuth_of_points(pts), az, atol=5e-3)


def test_kemar_table_matches_published_figures(kemar):
    # ITD at 90 deg: about 0.7 ms (free-field 15 cm mics: 0.44 ms)
    itd90 = kemar.itd_from_azimuth([math.pi / 2])[0]
    assert 0.65e-3 < itd90 < 0.75e-3
    assert kemar.itd_from_azimuth([0.0])[0] == pytest.approx(0.0, abs=15e-6)
    az = np.radians(np.linspace(5, 90, 18))
    # left-right symmetric within tens of microseconds; monotone in front
    assert np.allclose(kemar.itd_from_azimuth(-az), -kemar.itd_from_azimuth(az), atol=30e-6)
    assert np.all(np.diff(kemar.itd_from_azimuth(az)) > -10e-6)
    ild = kemar.ild_from_azimuth([math.pi / 2])[0]
    assert ild[-1] > 10.0  # 4-7.5 kHz: head shadow
    assert 0.0 < ild[0] < 6.0  # 150-500 Hz: little shadow
    assert kemar.max_itd > 0.7e-3


def test_spherical_head_with_fitted_radius_matches_kemar_itd(kemar):
    az = np.radians(np.linspace(-90, 90, 73))
    target = kemar.itd_from_azimuth(az)
    radii = np.linspace(0.07, 0.11, 81)
    err = [np.max(np.abs(SphericalHead(*EARS, radius=r).itd_from_azimuth(az) - target))
           for r in radii]
    best = radii[int(np.argmin(err))]
    assert 0.085 < best < 0.10  # KEMAR's head: about 9 cm
    assert min(err) < 40e-6  # tens of microseconds over the whole half-plane
    ff = MicGeometry(*EARS)
    assert np.max(np.abs(ff.itd_from_azimuth(az) - target)) > 150e-6  # free field is wrong


def test_factory_picks_the_model():
    mics = MicArrayConfig(left=EARS[0], right=EARS[1], head_model="spherical_head",
                          head_radius=0.08)
    m = make_head_model(mics, BANDS)
    assert isinstance(m, SphericalHead) and m.radius == 0.08 and m.has_ild
    assert make_head_model(MicArrayConfig()).kind == "free_field"
    with pytest.raises(ValueError, match="measured table"):
        make_head_model(mics.replace(head_model="measured"))


def test_profiles_pick_the_model():
    from pathlib import Path

    from av_perception.io.params import load_offline_configs
    root = Path(__file__).resolve().parents[1] / "config"
    bar = load_offline_configs(root / "profile_two_mic_bar.yaml", [MicArrayConfig])
    head = load_offline_configs(root / "profile_dummy_head.yaml", [MicArrayConfig])
    assert bar[MicArrayConfig].head_model == "free_field"
    assert head[MicArrayConfig].head_model == "measured"
    assert head[MicArrayConfig].measured_table == "kemar"
