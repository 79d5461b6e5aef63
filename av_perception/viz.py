"""Plots written as PNG files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_audio_features"]


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
