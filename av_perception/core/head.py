"""Head-related binaural models: free field, rigid spherical head, measured table.

Every model has the interface of :class:`~av_perception.core.geometry.MicGeometry` (the
free-field model), so everything that predicts or inverts a sound's direction takes any
of them.  Entry points: :func:`make_head_model`, :class:`SphericalHead`,
:class:`MeasuredHead` (tables from :func:`measured_table`) and the numba ITD kernel
:func:`model_itd_jac`.  Head frame, tables and equations: docs/algorithms.md, "Head
models and self-calibration".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .geometry import MicGeometry, _as_points

__all__ = [
    "HEAD_MODELS",
    "N_LAT",
    "N_POL",
    "HeadTable",
    "HeadModel",
    "SphericalHead",
    "MeasuredHead",
    "woodworth_itd",
    "spherical_ild",
    "grid_directions",
    "table_from_directions",
    "measured_table",
    "hrir_itd_ild",
    "make_head_model",
    "model_itd_jac",
    "model_itd_reference",
]

HEAD_MODELS = ("free_field", "spherical_head", "measured")
N_LAT = 181  # 1 deg steps over [-90, 90]
N_POL = 181  # 2 deg steps over [-180, 180] (both ends: periodic)
_ALPHA_MIN = 0.1
_THETA_MIN = math.radians(150.0)


def _lat_grid(n=N_LAT):
    return np.linspace(-np.pi / 2, np.pi / 2, n)


def _pol_grid(n=N_POL):
    return np.linspace(-np.pi, np.pi, n)


def grid_directions(n_lat: int = N_LAT, n_pol: int = N_POL) -> np.ndarray:
    """Unit vectors (n_lat, n_pol, 3) of the grid nodes, head components (f, a, up)."""
    lat, pol = np.meshgrid(_lat_grid(n_lat), _pol_grid(n_pol), indexing="ij")
    return np.stack([np.cos(lat) * np.cos(pol), np.sin(lat), np.cos(lat) * np.sin(pol)], -1)


def _unit_head(u) -> np.ndarray:
    u = np.asarray(u, dtype=float)
    if u.ndim != 2 or u.shape[1] != 3 or not np.all(np.isfinite(u)):
        raise ValueError(f"directions must be a finite (N, 3) array, got shape {u.shape}")
    n = np.linalg.norm(u, axis=1, keepdims=True)
    if np.any(n < 1e-12):
        raise ValueError("directions must be non-zero vectors")
    return u / n


def _ears(ear_azimuth: float, ear_elevation: float) -> tuple[np.ndarray, np.ndarray]:
    """Left and right ear unit vectors, head components (f, a, up); angles in rad."""
    ce = math.cos(ear_elevation)
    left = np.array([ce * math.cos(ear_azimuth), ce * math.sin(ear_azimuth),
                     math.sin(ear_elevation)])
    right = left * np.array([1.0, -1.0, 1.0])
    return left, right


def woodworth_itd(directions, radius: float, ear_azimuth: float = math.pi / 2,
                  ear_elevation: float = 0.0, speed_of_sound: float = 343.0) -> np.ndarray:
    """Far-field ITD (s) of a rigid sphere (Woodworth's ray model, any ear position).

    Parameters
    ----------
    directions : array (N, 3)
        Source directions in head components (forward, left, up); normalised here.
    radius : float
        Head radius in m.
    ear_azimuth, ear_elevation : float
        rad; the left ear at (+ear_azimuth, ear_elevation), the right ear mirrored.
    speed_of_sound : float
        m/s.

    Returns
    -------
    itd : array (N,)
        s, delay of the right ear minus delay of the left ear.
    """
    u = _unit_head(directions)
    el, er = _ears(ear_azimuth, ear_elevation)

    def delay(e):
        cg = np.clip(u @ e, -1.0, 1.0)
        return np.where(cg >= 0, -cg, np.arccos(cg) - np.pi / 2) * radius / speed_of_sound

    return delay(er) - delay(el)


def _shadow_power(cos_gamma, freqs, radius, speed_of_sound):
    """Brown-Duda head-shadow power |H|^2, shape (N, F)."""
    gamma = np.arccos(np.clip(cos_gamma, -1.0, 1.0))
    alpha = (1 + _ALPHA_MIN / 2) + (1 - _ALPHA_MIN / 2) * np.cos(gamma / _THETA_MIN * np.pi)
    x = (2 * np.pi * np.asarray(freqs)[None, :] * radius / (2 * speed_of_sound)) ** 2
    return (1 + alpha[:, None] ** 2 * x) / (1 + x)


def spherical_ild(directions, band_edges, radius: float, ear_azimuth: float = math.pi / 2,
                  ear_elevation: float = 0.0, speed_of_sound: float = 343.0) -> np.ndarray:
    """Per-band ILD (dB, left over right) of a rigid sphere, Brown & Duda's shadow model.

    Parameters
    ----------
    directions : array (N, 3)
        Head components (forward, left, up).
    band_edges : sequence (B + 1,)
        Hz, increasing.
    radius, ear_azimuth, ear_elevation, speed_of_sound : as :func:`woodworth_itd`.

    Returns
    -------
    ild : array (N, B)
    """
    u = _unit_head(directions)
    edges = np.asarray(band_edges, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("band_edges must be at least two increasing frequencies")
    el, er = _ears(ear_azimuth, ear_elevation)
    out = np.empty((len(u), len(edges) - 1))
    for b in range(len(edges) - 1):
        f = np.linspace(edges[b], edges[b + 1], 32)
        pl = _shadow_power(u @ el, f, radius, speed_of_sound).mean(axis=1)
        pr = _shadow_power(u @ er, f, radius, speed_of_sound).mean(axis=1)
        out[:, b] = 10 * np.log10(pl / pr)
    return out


@dataclass(frozen=True)
class HeadTable:
    """ITD and per-band ILD on the (lat, pol) grid of :func:`grid_directions`.

    itd : (n_lat, n_pol) s.  ild : (n_bands, n_lat, n_pol) dB or None.
    band_edges : Hz of the ILD bands (empty without ILD).
    """

    itd: np.ndarray
    ild: np.ndarray | None = None
    band_edges: tuple = ()

    def __post_init__(self):
        itd = np.asarray(self.itd, dtype=float)
        if itd.ndim != 2 or itd.shape[0] < 2 or itd.shape[1] < 2 or not np.all(np.isfinite(itd)):
            raise ValueError(f"itd table must be a finite (n_lat >= 2, n_pol >= 2) array, got "
                             f"shape {itd.shape}")
        object.__setattr__(self, "itd", np.ascontiguousarray(itd))
        if self.ild is not None:
            ild = np.asarray(self.ild, dtype=float)
            if ild.ndim != 3 or ild.shape[1:] != itd.shape or not np.all(np.isfinite(ild)):
                raise ValueError(f"ild table must be finite with shape (n_bands, {itd.shape[0]}, "
                                 f"{itd.shape[1]}), got {ild.shape}")
            if len(self.band_edges) != ild.shape[0] + 1:
                raise ValueError(f"{ild.shape[0]} ILD bands need {ild.shape[0] + 1} band edges, "
                                 f"got {len(self.band_edges)}")
            object.__setattr__(self, "ild", ild)
            object.__setattr__(self, "band_edges", tuple(float(e) for e in self.band_edges))


def table_from_directions(directions, itd, ild=None, band_edges=(), n_lat: int = N_LAT,
                          n_pol: int = N_POL) -> HeadTable:
    """Interpolate values measured at scattered directions onto the regular grid.

    Linear interpolation (Delaunay) in (lat, pol), with the polar angle made periodic;
    grid nodes outside the measured directions (e.g. below KEMAR's -40 deg elevation)
    take the nearest measured value.

    Parameters
    ----------
    directions : array (N, 3)
        Head components (forward, left, up).
    itd : array (N,)
        s.
    ild : array (N, B), optional
        dB per band.
    band_edges : sequence (B + 1,)
    """
    u = _unit_head(directions)
    itd = np.asarray(itd, dtype=float)
    if itd.shape != (len(u),) or not np.all(np.isfinite(itd)):
        raise ValueError(f"itd must be finite with shape ({len(u)},), got {itd.shape}")
    lat = np.arcsin(np.clip(u[:, 1], -1, 1))
    pol = np.arctan2(u[:, 2], u[:, 0])
    cols = [itd[:, None]]
    if ild is not None:
        ild = np.asarray(ild, dtype=float)
        if ild.ndim != 2 or ild.shape[0] != len(u) or not np.all(np.isfinite(ild)):
            raise ValueError(f"ild must be finite with shape ({len(u)}, B), got {ild.shape}")
        cols.append(ild)
    vals = np.concatenate(cols, axis=1)
    # periodic copies in the polar angle; the lateral poles are single points
    pts = np.concatenate([np.stack([lat, pol + s], 1) for s in (-2 * np.pi, 0, 2 * np.pi)])
    vals3 = np.concatenate([vals] * 3)
    d = grid_directions(n_lat, n_pol).reshape(-1, 3)
    grid_pts = np.stack([np.repeat(_lat_grid(n_lat), n_pol), np.tile(_pol_grid(n_pol), n_lat)],
                        1)
    import scipy.interpolate  # here: ~0.3 s to import, only tables need it

    lin = scipy.interpolate.LinearNDInterpolator(pts, vals3)(grid_pts)
    near = scipy.interpolate.NearestNDInterpolator(np.c_[np.cos(lat) * np.cos(pol), u[:, 1],
                                                         np.cos(lat) * np.sin(pol)], vals)(d)
    out = np.where(np.isfinite(lin), lin, near).reshape(n_lat, n_pol, -1)
    # at the lateral poles every polar angle is the same direction
    for row in (0, n_lat - 1):
        out[row] = out[row].mean(axis=0)
    ild_t = np.moveaxis(out[:, :, 1:], 2, 0) if ild is not None else None
    return HeadTable(out[:, :, 0], ild_t, tuple(band_edges) if ild is not None else ())


def hrir_itd_ild(hrir, rate: float, band_edges, min_frequency: float = 150.0,
                 max_frequency: float = 7500.0, max_lag: float = 1.2e-3) -> tuple:
    """ITD and per-band ILD of head-related impulse responses.

    The ITD is what GCC-PHAT measures on a broadband sound filtered by the pair
    (the front-end's method): the peak of ``sum_f Re(C_f exp(-i w tau))``,
    ``C = L R* / |L R*|`` over ``[min_frequency, max_frequency]``, on a 0.25 us grid.
    The ILD is ``10 log10(sum |L|^2 / sum |R|^2)`` over each band (flat spectrum).

    Parameters
    ----------
    hrir : array (N, 2, L)
        Impulse responses, channel 0 = left ear.
    rate : float
        Hz.
    band_edges : sequence (B + 1,)
        Hz.

    Returns
    -------
    itd : array (N,) s (positive when the left ear leads); ild : array (N, B) dB.
    """
    h = np.asarray(hrir, dtype=float)
    if h.ndim != 3 or h.shape[1] != 2 or not np.all(np.isfinite(h)):
        raise ValueError(f"hrir must be a finite (N, 2, L) array, got shape {h.shape}")
    edges = np.asarray(band_edges, dtype=float)
    nfft = max(2048, 1 << int(math.ceil(math.log2(4 * h.shape[2]))))
    spec = np.fft.rfft(h, nfft, axis=2)
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)
    sel = (freqs >= min_frequency) & (freqs <= max_frequency)
    c = spec[:, 0, sel] * np.conj(spec[:, 1, sel])
    c = c / np.maximum(np.abs(c), 1e-30)
    w = 2 * np.pi * freqs[sel]

    # coarse peak: PHAT cross-correlation by an 8x zero-padded inverse FFT
    full = np.zeros((len(h), len(freqs)), dtype=complex)
    full[:, sel] = c
    up = 8 * nfft
    xc = np.fft.irfft(full, up, axis=1)
    n_lag = int(math.ceil(max_lag * rate * 8))
    lags = np.arange(-n_lag, n_lag + 1)
    t0 = -lags[np.argmax(xc[:, lags], axis=1)] / (8.0 * rate)  # x(t) peaks at -itd
    # fine: the continuous correlation on a 0.25 us grid around it
    fine = t0[:, None] + np.arange(-4e-6, 4e-6 + 1e-12, 0.25e-6)[None, :]
    r = np.real(np.einsum("nf,ntf->nt", c, np.exp(-1j * w[None, None, :] * fine[:, :, None])))
    itd = fine[np.arange(len(h)), np.argmax(r, axis=1)]
    pl = np.abs(spec[:, 0]) ** 2
    pr = np.abs(spec[:, 1]) ** 2
    ild = np.empty((len(h), len(edges) - 1))
    for b in range(len(edges) - 1):
        m = (freqs >= edges[b]) & (freqs <= edges[b + 1])
        ild[:, b] = 10 * np.log10(pl[:, m].sum(axis=1) / np.maximum(pr[:, m].sum(axis=1), 1e-30))
    return itd, ild


def measured_table(hrir, rate: float, directions, band_edges, min_frequency: float = 150.0,
                   max_frequency: float = 7500.0) -> HeadTable:
    """Grid table from measured HRIRs (N, 2, L) at ``directions`` (N, 3), head components
    (forward, left, up); see :func:`hrir_itd_ild` and :func:`table_from_directions`."""
    itd, ild = hrir_itd_ild(hrir, rate, band_edges, min_frequency, max_frequency)
    return table_from_directions(directions, itd, ild, band_edges)


# ---------------------------------------------------------------------------
# Table interpolation: numba kernel and numpy reference (same arithmetic)
# ---------------------------------------------------------------------------
# frame layout (12,): centre (3), axis a (3), forward f (3), up (3)
@njit(cache=True)
def model_itd_jac(S, ml, mr, speed, frame, table, J):
    """ITD (s) of S (3,) and its gradient into J (3,) under a binaural model.

    ``table`` of shape (0, 0): free field, exact near-field ITD of the mics ``ml``,
    ``mr``; otherwise the bilinear (lat, pol) table of a head model with ``frame``.
    """
    if table.shape[0] == 0:
        nl = 0.0
        nr = 0.0
        for a in range(3):
            nl += (S[a] - ml[a]) ** 2
            nr += (S[a] - mr[a]) ** 2
        nl = math.sqrt(nl)
        nr = math.sqrt(nr)
        g = (nr - nl) / speed
        nl = max(nl, 1e-9)
        nr = max(nr, 1e-9)
        for a in range(3):
            J[a] = ((S[a] - mr[a]) / nr - (S[a] - ml[a]) / nl) / speed
        return g
    r2 = 0.0
    for a in range(3):
        r2 += (S[a] - frame[a]) ** 2
    r = max(math.sqrt(r2), 1e-9)
    sa = 0.0
    p = 0.0
    q = 0.0
    for a in range(3):
        u = (S[a] - frame[a]) / r
        sa += u * frame[3 + a]
        q += u * frame[6 + a]
        p += u * frame[9 + a]
    sa = min(1.0, max(-1.0, sa))
    lat = math.asin(sa)
    pol = math.atan2(p, q)
    n_lat = table.shape[0]
    n_pol = table.shape[1]
    dlat = math.pi / (n_lat - 1)
    dpol = 2.0 * math.pi / (n_pol - 1)
    fl = (lat + 0.5 * math.pi) / dlat
    fp = (pol + math.pi) / dpol
    i0 = min(max(int(math.floor(fl)), 0), n_lat - 2)
    j0 = min(max(int(math.floor(fp)), 0), n_pol - 2)
    t = fl - i0
    s = fp - j0
    t00 = table[i0, j0]
    t10 = table[i0 + 1, j0]
    t01 = table[i0, j0 + 1]
    t11 = table[i0 + 1, j0 + 1]
    g = (1 - t) * (1 - s) * t00 + t * (1 - s) * t10 + (1 - t) * s * t01 + t * s * t11
    g_lat = ((1 - s) * (t10 - t00) + s * (t11 - t01)) / dlat
    g_pol = ((1 - t) * (t01 - t00) + t * (t11 - t10)) / dpol
    c2 = p * p + q * q
    c1 = max(math.sqrt(c2), 1e-6)
    c2 = max(c2, 1e-12)
    for a in range(3):
        u = (S[a] - frame[a]) / r
        d_lat = (frame[3 + a] - sa * u) / (r * c1)
        d_pol = (q * frame[9 + a] - p * frame[6 + a]) / (r * c2)
        J[a] = g_lat * d_lat + g_pol * d_pol
    return g


def _bilinear(lat, pol, n_lat, n_pol):
    """Indices and weights of the bilinear interpolation at (lat, pol) arrays."""
    dlat = np.pi / (n_lat - 1)
    dpol = 2 * np.pi / (n_pol - 1)
    fl = (lat + np.pi / 2) / dlat
    fp = (pol + np.pi) / dpol
    i0 = np.clip(np.floor(fl).astype(np.int64), 0, n_lat - 2)
    j0 = np.clip(np.floor(fp).astype(np.int64), 0, n_pol - 2)
    return i0, j0, fl - i0, fp - j0, dlat, dpol


def model_itd_reference(points, frame, table) -> tuple[np.ndarray, np.ndarray]:
    """Numpy reference of :func:`model_itd_jac` for a head table: ITD (N,) and gradient (N, 3)."""
    S = np.atleast_2d(np.asarray(points, dtype=float))
    c, a, f, up = frame[0:3], frame[3:6], frame[6:9], frame[9:12]
    rel = S - c
    r = np.maximum(np.linalg.norm(rel, axis=1), 1e-9)
    u = rel / r[:, None]
    sa = np.clip(u @ a, -1.0, 1.0)
    q = u @ f
    p = u @ up
    lat = np.arcsin(sa)
    pol = np.arctan2(p, q)
    i0, j0, t, s, dlat, dpol = _bilinear(lat, pol, *table.shape)
    t00, t10 = table[i0, j0], table[i0 + 1, j0]
    t01, t11 = table[i0, j0 + 1], table[i0 + 1, j0 + 1]
    g = (1 - t) * (1 - s) * t00 + t * (1 - s) * t10 + (1 - t) * s * t01 + t * s * t11
    g_lat = ((1 - s) * (t10 - t00) + s * (t11 - t01)) / dlat
    g_pol = ((1 - t) * (t01 - t00) + t * (t11 - t10)) / dpol
    c2 = p * p + q * q
    c1 = np.maximum(np.sqrt(c2), 1e-6)
    c2 = np.maximum(c2, 1e-12)
    d_lat = (a[None, :] - sa[:, None] * u) / (r * c1)[:, None]
    d_pol = (q[:, None] * up[None, :] - p[:, None] * f[None, :]) / (r * c2)[:, None]
    return g, g_lat[:, None] * d_lat + g_pol[:, None] * d_pol


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
class HeadModel(MicGeometry):
    """A binaural model with a head, given by a (lat, pol) table (see module docstring).

    Parameters
    ----------
    mic_left, mic_right : array (3,)
        Ear (microphone) positions in the camera frame; they fix the interaural axis.
    table : HeadTable
    speed_of_sound : float
    centre : array (3,), optional
        Head centre in the camera frame (default: midway between the ears).
    """

    kind = "head"

    def __init__(self, mic_left, mic_right, table: HeadTable, speed_of_sound=343.0,
                 centre=None):
        super().__init__(mic_left, mic_right, speed_of_sound)
        if centre is not None:
            self.centre = np.asarray(centre, dtype=float).reshape(3)
            if not np.all(np.isfinite(self.centre)):
                raise ValueError("head centre must be finite")
        self.up = np.cross(self.forward, self.axis)
        self._set_table(table)

    def _set_table(self, table: HeadTable):
        self.table = table
        self.frame = np.concatenate([self.centre, self.axis, self.forward, self.up])
        front = table.itd[:, (table.itd.shape[1] - 1) // 2]  # pol = 0 column
        self._az = _lat_grid(table.itd.shape[0])
        self._itd_h = np.maximum.accumulate(front)  # monotone for the inversion
        self._max_itd = float(np.max(np.abs(table.itd)))

    # -- interface of MicGeometry
    @property
    def max_itd(self) -> float:
        """Largest |ITD| (s) of the model over all directions."""
        return self._max_itd

    @property
    def has_ild(self) -> bool:
        return self.table.ild is not None

    @property
    def band_edges(self) -> tuple:
        return self.table.band_edges

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame (12,), table (n_lat, n_pol)) for :func:`model_itd_jac`."""
        return self.frame, self.table.itd

    def itd(self, points) -> np.ndarray:
        """ITD (s) of points (N, 3) (far field: direction from the head centre)."""
        return model_itd_reference(_as_points(points), self.frame, self.table.itd)[0]

    def itd_jacobian(self, points) -> np.ndarray:
        """Gradient of :meth:`itd` with respect to the point (N, 3), s/m."""
        return model_itd_reference(_as_points(points), self.frame, self.table.itd)[1]

    def lat_pol(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Lateral and polar angles (rad) of points (N, 3) seen from the head centre."""
        u = _as_points(points) - self.centre
        u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
        return np.arcsin(np.clip(u @ self.axis, -1, 1)), np.arctan2(u @ self.up, u @ self.forward)

    def ild(self, points) -> np.ndarray | None:
        """Per-band ILD (N, B) in dB of points (N, 3), or None without an ILD table."""
        if self.table.ild is None:
            return None
        lat, pol = self.lat_pol(points)
        ild = self.table.ild
        i0, j0, t, s, _, _ = _bilinear(lat, pol, ild.shape[1], ild.shape[2])
        return ((1 - t) * (1 - s) * ild[:, i0, j0] + t * (1 - s) * ild[:, i0 + 1, j0]
                + (1 - t) * s * ild[:, i0, j0 + 1] + t * s * ild[:, i0 + 1, j0 + 1]).T

    def itd_from_azimuth(self, azimuth):
        """ITD (s) of far directions in the horizontal plane at ``azimuth`` (rad)."""
        az = np.atleast_1d(np.asarray(azimuth, dtype=float))
        return self.itd(self.centre + 1e3 * self.direction_from_azimuth(az))

    def ild_from_azimuth(self, azimuth) -> np.ndarray | None:
        """Per-band ILD (N, B) dB of far horizontal directions (None without ILD)."""
        az = np.atleast_1d(np.asarray(azimuth, dtype=float))
        return self.ild(self.centre + 1e3 * self.direction_from_azimuth(az))

    def azimuth_from_itd(self, itd):
        """Front azimuth (rad) whose horizontal-plane ITD is ``itd`` (clipped to the range)."""
        x = np.asarray(itd, dtype=float)
        return np.interp(x, self._itd_h, self._az)


class SphericalHead(HeadModel):
    """Rigid spherical head (Woodworth ITD, Brown-Duda ILD); see the module docstring.

    Parameters
    ----------
    mic_left, mic_right : array (3,)
        Ear positions in the camera frame (fix the interaural axis).
    radius : float
        m.
    ear_azimuth, ear_elevation : float
        rad, ear position on the sphere (pi/2, 0: on the interaural axis).
    band_edges : sequence, optional
        Hz of the ILD bands (no ILD without).
    """

    kind = "spherical_head"

    def __init__(self, mic_left, mic_right, radius=0.0875, ear_azimuth=math.pi / 2,
                 ear_elevation=0.0, speed_of_sound=343.0, band_edges=None):
        if not (0.02 <= radius <= 0.5):
            raise ValueError(f"head radius {radius} m is outside [0.02, 0.5] m")
        self.radius = float(radius)
        self.ear_azimuth = float(ear_azimuth)
        self.ear_elevation = float(ear_elevation)
        MicGeometry.__init__(self, mic_left, mic_right, speed_of_sound)
        # the ears are on the sphere: centre = ear midpoint minus the ears' common offset
        self.up = np.cross(self.forward, self.axis)
        el, _ = _ears(self.ear_azimuth, self.ear_elevation)
        self.centre = self.centre - self.radius * (el[0] * self.forward + el[2] * self.up)
        self.band_edges_requested = None if band_edges is None else tuple(band_edges)
        d = grid_directions().reshape(-1, 3)
        itd = woodworth_itd(d, self.radius, self.ear_azimuth, self.ear_elevation,
                            self.speed_of_sound).reshape(N_LAT, N_POL)
        ild = None
        if band_edges is not None:
            ild = spherical_ild(d, band_edges, self.radius, self.ear_azimuth, self.ear_elevation,
                                self.speed_of_sound)
            ild = np.moveaxis(ild.reshape(N_LAT, N_POL, -1), 2, 0)
        self._set_table(HeadTable(itd, ild, tuple(band_edges) if ild is not None else ()))

    def with_parameters(self, radius=None, ear_azimuth=None, ear_elevation=None) -> SphericalHead:
        """A copy with other sphere parameters (same ears' axis)."""
        return SphericalHead(self.left, self.right,
                             self.radius if radius is None else radius,
                             self.ear_azimuth if ear_azimuth is None else ear_azimuth,
                             self.ear_elevation if ear_elevation is None else ear_elevation,
                             self.speed_of_sound, self.band_edges_requested)


class MeasuredHead(HeadModel):
    """Measured table (e.g. KEMAR) times an ITD scale (the calibration's correction)."""

    kind = "measured"

    def __init__(self, mic_left, mic_right, table: HeadTable, speed_of_sound=343.0,
                 itd_scale: float = 1.0):
        if not (0.3 <= itd_scale <= 3.0):
            raise ValueError(f"itd_scale {itd_scale} is outside [0.3, 3]")
        self.base_table = table
        self.itd_scale = float(itd_scale)
        scaled = HeadTable(table.itd * itd_scale, table.ild, table.band_edges)
        super().__init__(mic_left, mic_right, scaled, speed_of_sound)

    def with_parameters(self, itd_scale=None) -> MeasuredHead:
        return MeasuredHead(self.left, self.right, self.base_table, self.speed_of_sound,
                            self.itd_scale if itd_scale is None else itd_scale)


def make_head_model(mics, band_edges=None, table: HeadTable | None = None) -> MicGeometry:
    """The binaural model configured by a :class:`MicArrayConfig`.

    Parameters
    ----------
    mics : MicArrayConfig
    band_edges : sequence, optional
        ILD bands (Hz) of the front-end; the spherical model's ILD is computed for them.
    table : HeadTable, optional
        The measured table (required for ``head_model = 'measured'``; io builds it).
    """
    kind = getattr(mics, "head_model", "free_field")
    if kind == "free_field":
        return MicGeometry(mics.left, mics.right, mics.speed_of_sound)
    if kind == "spherical_head":
        return SphericalHead(mics.left, mics.right, mics.head_radius,
                             math.radians(mics.ear_azimuth), math.radians(mics.ear_elevation),
                             mics.speed_of_sound, band_edges)
    if kind == "measured":
        if table is None:
            raise ValueError("head_model 'measured' needs a measured table (see "
                             "av_perception.io.heads.load_head_model)")
        return MeasuredHead(mics.left, mics.right, table, mics.speed_of_sound,
                            mics.itd_scale)
    raise ValueError(f"unknown head model {kind!r}: use one of {', '.join(HEAD_MODELS)}")
