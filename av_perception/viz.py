"""Plots written as PNG files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_audio_features", "annotate_frame", "contact_sheet", "covariance_ellipsoid",
           "speaking_colour", "speaking_rgba"]


def plot_audio_features(path, features, title: str = "", truth=None,
                        min_activity: float = 0.5) -> Path:
    """Azimuth (from the ITD) and activity over time.

    ``truth`` is an optional list of (t_start, t_end, azimuth_rad, label) drawn as
    horizontal segments.  Frames are coloured by activity x reliability.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = features.stamp - (features.stamp[0] if len(features.stamp) else 0.0)
    t0 = features.stamp[0] if len(features.stamp) else 0.0
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    w = np.nan_to_num(features.activity * features.reliability)
    active = features.activity >= min_activity
    ax1.scatter(t[~active], np.degrees(features.azimuth[~active]), s=3, c="0.8",
                label="inactive frames")
    sc = ax1.scatter(t[active], np.degrees(features.azimuth[active]), s=6, c=w[active],
                     cmap="viridis", vmin=0, vmax=1, label="active frames")
    if truth:
        for i, (a, b, az, label) in enumerate(truth):
            ax1.plot([a - t0, b - t0], [np.degrees(az)] * 2, "r-", lw=2,
                     label="truth" if i == 0 else None)
            ax1.text(a - t0, np.degrees(az) + 3, label, color="r", fontsize=8)
    ax1.set_ylabel("azimuth (deg, + = left)")
    ax1.set_ylim(-95, 95)
    ax1.legend(loc="upper right", fontsize=8)
    fig.colorbar(sc, ax=ax1, label="activity x reliability")
    ax2.plot(t, features.activity, "k-", lw=1, label="activity")
    ax2.plot(t, features.reliability, "b-", lw=0.6, alpha=0.6, label="reliability")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_xlabel("time (s)")
    ax2.legend(loc="upper right", fontsize=8)
    if title:
        ax1.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def speaking_colour(p: float) -> tuple[int, int, int]:
    """BGR colour from grey (silent) to red (speaking) for a probability in [0, 1]."""
    p = float(np.clip(p, 0.0, 1.0))
    return (int(160 * (1 - p)), int(160 * (1 - p)), int(160 + 95 * p))


def annotate_frame(image, output, calibration, head_size: float = 0.22):
    """Draw the tracks of a TrackerOutput on the left image (BGR, a copy).

    Each confirmed track in front of the camera gets a box of ``head_size`` metres at its
    3D position, its id and its speaking probability; the colour goes from grey (silent)
    to red (speaking), and a filled dot marks a talker.
    """
    import cv2

    img = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if len(output) == 0:
        return img
    pos = np.asarray(output.position, dtype=float)
    front = pos[:, 2] > 0.1
    if not front.any():
        return img
    u, v, _ = calibration.project(pos[front])
    for (tid, p, z), uu, vv in zip(
            zip(np.asarray(output.ids)[front], np.asarray(output.speaking)[front], pos[front, 2]),
            u, v):
        half = max(4, int(0.5 * head_size * calibration.fx / z))
        colour = speaking_colour(p)
        x0, y0 = int(uu - half), int(vv - half)
        cv2.rectangle(img, (x0, y0), (int(uu + half), int(vv + half)), colour, 2)
        label = f"{tid} {'speaking' if p >= 0.5 else ''} {p:.2f}".replace("  ", " ")
        cv2.putText(img, label, (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2)
        if p >= 0.5:
            cv2.circle(img, (int(uu), int(vv + half + 10)), 6, colour, -1)
    return img


def contact_sheet(frames, path, columns: int = 4, width: int = 320):
    """Tile images (BGR) into one PNG, each scaled to ``width`` pixels."""
    import cv2

    frames = [f for f in frames if f is not None]
    if not frames:
        raise ValueError("no frames for the contact sheet")
    h0, w0 = frames[0].shape[:2]
    height = int(round(h0 * width / w0))
    tiles = [cv2.resize(f, (width, height)) for f in frames]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))
    return path


def covariance_ellipsoid(covariance, floor: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """The 1-sigma ellipsoid of a 3x3 covariance as an RViz SPHERE marker's
    (scale (3,) = 2 sqrt(eigenvalues), orientation quaternion (x, y, z, w)).

    The marker's local x, y, z axes are the eigenvectors (ascending eigenvalues), made a
    right-handed rotation.
    """
    from scipy.spatial.transform import Rotation

    c = np.asarray(covariance, dtype=np.float64).reshape(3, 3)
    c = 0.5 * (c + c.T)
    if not np.all(np.isfinite(c)):
        raise ValueError("covariance contains NaN or infinite values")
    vals, vecs = np.linalg.eigh(c)
    if np.linalg.det(vecs) < 0:
        vecs[:, 2] = -vecs[:, 2]
    scale = 2.0 * np.sqrt(np.maximum(vals, floor))
    quat = Rotation.from_matrix(vecs).as_quat()
    return scale, quat


def speaking_rgba(p: float, alpha: float = 1.0) -> tuple[float, float, float, float]:
    """RGBA from grey (silent, p = 0) to red (speaking, p = 1); the RGB twin of
    :func:`av_perception.viz.speaking_colour`."""
    p = float(np.clip(p, 0.0, 1.0)) if np.isfinite(p) else 0.0
    grey = 0.63 * (1.0 - p)
    return (grey + p, grey, grey, float(alpha))
