"""Rectified pixels and disparity to 3D points in the left camera frame, with their
first-order covariance, and back (what :class:`~.calibration.StereoCalibration`'s
``triangulate`` and ``project`` run)."""
from __future__ import annotations

import numpy as np

from .errors import StereoInputError


def triangulate(calib, u, v, disparity, sigma_uv=1.0, sigma_disparity=0.25,
                frame: str = "camera"):
    """3D points and their covariance from rectified pixel coordinates and disparity.

    Parameters
    ----------
    calib : StereoCalibration
    u, v : array_like (N,)
        Pixel coordinates in the rectified left image.
    disparity : array_like (N,)
        u_left - u_right in pixels; must exceed :attr:`disparity_offset`.
    sigma_uv : float or array (N,)
        Standard deviation of u and v (px).
    sigma_disparity : float or array (N,)
        Standard deviation of the disparity (px).
    frame : {"camera", "rectified"}
        Express the result in the left camera optical frame (default) or in
        the rectified left frame.

    Returns
    -------
    xyz : array (N, 3)
        Metres (x right, y down, z forward).
    covariance : array (N, 3, 3)
        m^2, first-order propagation J diag(su^2, sv^2, sd^2) J^T; the depth
        standard deviation is z^2 / (fx B) * sigma_disparity.
    """
    if frame not in ("camera", "rectified"):
        raise ValueError(f"frame must be 'camera' or 'rectified', got {frame!r}")
    u, v, d = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.float64))
                                    for a in (u, v, disparity)))
    if u.ndim != 1:
        raise StereoInputError(f"u, v, disparity must be 1-D, got shape {u.shape}")
    dd = d - calib.disparity_offset
    bad = ~(dd > 0) | ~np.isfinite(u) | ~np.isfinite(v)
    if np.any(bad):
        raise StereoInputError(
            f"{int(bad.sum())} point(s) have a non-finite coordinate or a disparity <= the "
            f"disparity offset ({calib.disparity_offset:.3f} px), i.e. at or beyond infinity")
    su2 = np.broadcast_to(np.asarray(sigma_uv, dtype=np.float64) ** 2, u.shape)
    sd2 = np.broadcast_to(np.asarray(sigma_disparity, dtype=np.float64) ** 2, u.shape)
    z = calib.fx * calib.baseline / dd
    xu = (u - calib.cx) / calib.fx
    yv = (v - calib.cy) / calib.fy
    xyz = np.stack([xu * z, yv * z, z], axis=1)
    n = len(u)
    jac = np.zeros((n, 3, 3))
    dz_dd = -z / dd
    jac[:, 0, 0] = z / calib.fx
    jac[:, 0, 2] = xu * dz_dd
    jac[:, 1, 1] = z / calib.fy
    jac[:, 1, 2] = yv * dz_dd
    jac[:, 2, 2] = dz_dd
    s = np.zeros((n, 3, 3))
    s[:, 0, 0] = su2
    s[:, 1, 1] = su2
    s[:, 2, 2] = sd2
    cov = jac @ s @ np.transpose(jac, (0, 2, 1))
    if frame == "camera" and not np.allclose(calib.rotation, np.eye(3)):
        r = calib.rotation
        xyz = xyz @ r  # x_cam = R^T x_rect
        cov = r.T @ cov @ r
    return xyz, cov


def project(calib, xyz, frame: str = "camera"):
    """Rectified pixel coordinates and disparity of 3D points (inverse of triangulate).

    Parameters
    ----------
    calib : StereoCalibration
    xyz : array (N, 3) or (3,)
        Metres in the left camera optical frame (or the rectified frame).

    Returns
    -------
    u, v, disparity : arrays (N,)
    """
    p = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
    if p.ndim != 2 or p.shape[1] != 3:
        raise StereoInputError(f"xyz must have shape (N, 3), got {np.shape(xyz)}")
    if frame == "camera":
        p = p @ calib.rotation.T
    elif frame != "rectified":
        raise ValueError(f"frame must be 'camera' or 'rectified', got {frame!r}")
    z = p[:, 2]
    u = calib.fx * p[:, 0] / z + calib.cx
    v = calib.fy * p[:, 1] / z + calib.cy
    return u, v, calib.disparity_from_depth(z)
