"""Binaural geometry against closed forms."""
import numpy as np
import pytest

from av_perception.core.geometry import MicGeometry, azimuth_from_itd, itd_from_azimuth

C = 343.0


def test_far_field_round_trip_and_sign():
    az = np.radians(np.linspace(-89, 89, 50))
    itd = itd_from_azimuth(az, 0.15, C)
    assert np.allclose(azimuth_from_itd(itd, 0.15, C), az)
    # positive azimuth = towards the left mic = positive ITD
    assert itd_from_azimuth(np.radians(30), 0.15) > 0
    assert azimuth_from_itd(1.0, 0.15) == pytest.approx(np.pi / 2)  # clipped


def test_near_field_itd_is_exact_and_tends_to_far_field():
    g = MicGeometry((-0.075, 0, 0), (0.075, 0, 0))
    # a point on the left mic's side: nearer the left mic -> positive ITD
    p = np.array([[-1.0, 0.0, 1.0]])
    expected = (np.linalg.norm(p[0] - g.right) - np.linalg.norm(p[0] - g.left)) / C
    assert g.itd(p)[0] == pytest.approx(expected)
    assert g.itd(p)[0] > 0
    for az in np.radians([-60, -10, 0, 25, 70]):
        far = g.itd(1000.0 * g.direction_from_azimuth(az))[0]
        assert far == pytest.approx(g.itd_from_azimuth(az), abs=1e-9)
        near = g.itd(0.5 * g.direction_from_azimuth(az))[0]
        assert abs(near) <= g.max_itd + 1e-12


def test_direction_is_in_horizontal_plane_with_camera_conventions():
    g = MicGeometry((-0.075, 0, 0), (0.075, 0, 0))
    d = g.direction_from_azimuth(np.radians([0.0, 90.0, -90.0]))
    assert np.allclose(d[0], [0, 0, 1])   # straight ahead = +z
    assert np.allclose(d[1], [-1, 0, 0])  # left = -x in the optical frame
    assert np.allclose(d[2], [1, 0, 0])


def test_jacobian_matches_finite_differences(rng):
    g = MicGeometry((-0.08, 0.01, 0.02), (0.07, -0.01, 0.0))
    pts = rng.uniform([-2, -1, 0.5], [2, 1, 4], size=(20, 3))
    J = g.itd_jacobian(pts)
    h = 1e-6
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        fd = (g.itd(pts + e) - g.itd(pts - e)) / (2 * h)
        assert np.allclose(J[:, k], fd, rtol=1e-5, atol=1e-12)


def test_point_from_itd_inverts_near_field_for_arbitrary_mics(rng):
    # a tilted, offset pair (e.g. mics mounted above and behind the camera)
    g = MicGeometry((-0.09, -0.05, -0.03), (0.08, -0.04, -0.02))
    itd = rng.uniform(-0.9, 0.9, 30) * g.max_itd
    dist = rng.uniform(0.5, 4.0, 30)
    pts = g.point_from_itd(itd, dist)
    assert np.allclose(g.itd(pts), itd, atol=1e-12)
    assert np.allclose(np.linalg.norm(pts - g.centre, axis=1), dist)
    assert np.all((pts - g.centre) @ g.forward > 0)  # front half


def test_bad_geometry_inputs():
    g = MicGeometry((-0.075, 0, 0), (0.075, 0, 0))
    with pytest.raises(ValueError, match="shape"):
        g.itd(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        g.itd([np.nan, 0, 1])
    with pytest.raises(ValueError, match="same position"):
        MicGeometry((0, 0, 0), (0, 0, 0))
