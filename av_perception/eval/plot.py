"""Plot of tracks against the ground truth over time."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import align_stamps

__all__ = ["plot_tracks"]


def _intervals(t: np.ndarray, on: np.ndarray, dt: float) -> list[tuple[float, float]]:
    """(start, width) bars of the runs where ``on`` is true, each sample lasting ``dt``."""
    bars = []
    start = None
    for k, (tk, v) in enumerate(zip(t, on)):
        if v and start is None:
            start = tk
        if start is not None and (not v or k == len(t) - 1 or t[k + 1] - tk > 1.5 * dt):
            end = tk + dt if v else tk
            bars.append((start, end - start))
            start = None
    return bars


def plot_tracks(gt, tracks, path, speaking_threshold: float = 0.5, title: str | None = None):
    """Write a PNG: x and z of people (lines) and tracks (dots) vs time, and speaking bars.

    Parameters
    ----------
    gt : DataFrame from :func:`read_ground_truth`.
    tracks : DataFrame from :func:`read_tracks` (may be empty).
    path : output PNG path.
    speaking_threshold : a track row counts as speaking at or above it.
    title : optional figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t0 = float(gt["stamp"].min())
    frame_stamps = np.sort(gt["stamp"].unique())
    dt = float(np.median(np.diff(frame_stamps))) if len(frame_stamps) > 1 else 0.1
    people = sorted(gt["id"].unique())
    track_ids = sorted(tracks["track_id"].unique()) if len(tracks) else []
    fig = Figure(figsize=(11, 8.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_x, ax_z, ax_s = fig.subplots(3, 1, sharex=True,
                                    gridspec_kw={"height_ratios": [3, 3, 2]})
    cmap = fig.colormaps["tab10"] if hasattr(fig, "colormaps") else None
    if cmap is None:
        import matplotlib

        cmap = matplotlib.colormaps["tab10"]
    tr_t = np.zeros(0)
    if len(tracks):
        idx = align_stamps(tracks["stamp"].to_numpy(float), frame_stamps)
        st = tracks["stamp"].to_numpy(float)
        st = np.where(idx >= 0, frame_stamps[np.maximum(idx, 0)], st)
        if np.nanmax(np.abs(st)) < 1e8 <= t0:
            st = st + t0
        tr_t = st - t0
    for k, pid in enumerate(people):
        g = gt[gt["id"] == pid].sort_values("stamp")
        t = g["stamp"].to_numpy() - t0
        vis = g["visible"].to_numpy(bool)
        for ax, col in ((ax_x, "x"), (ax_z, "z")):
            v = g[col].to_numpy(float)
            ax.plot(t, np.where(vis, v, np.nan), "-", color="0.25", lw=2.5, alpha=0.6,
                    label="truth (numbers: person ids)" if col == "x" and k == 0 else None)
            ax.plot(t, np.where(vis, np.nan, v), ":", color="0.25", lw=1.5, alpha=0.6)
            ax.annotate(str(pid), (t[0], v[0]), fontsize=8, color="0.2")
        for start, width in _intervals(t, g["speaking"].to_numpy(bool), dt):
            ax_s.broken_barh([(start, width)], (k - 0.4, 0.35), color="0.35")
    for k, tid in enumerate(track_ids):
        sel = (tracks["track_id"] == tid).to_numpy()
        colour = cmap(k % 10)
        for ax, col in ((ax_x, "x"), (ax_z, "z")):
            ax.plot(tr_t[sel], tracks[col].to_numpy(float)[sel], ".", ms=3, color=colour,
                    label=f"track {tid}" if col == "x" else None)
        spk = tracks["speaking"].to_numpy(float)[sel] >= speaking_threshold
        order = np.argsort(tr_t[sel])
        row = len(people) + k
        for start, width in _intervals(tr_t[sel][order], spk[order], dt):
            ax_s.broken_barh([(start, width)], (row - 0.4, 0.8), color=colour)
    ax_x.set_ylabel("x (m, right)")
    ax_z.set_ylabel("z (m, forward)")
    ax_s.set_ylabel("speaking")
    ax_s.set_yticks(range(len(people) + len(track_ids)),
                    [f"person {p}" for p in people] + [f"track {t}" for t in track_ids])
    ax_s.set_ylim(-0.8, max(len(people) + len(track_ids), 1) - 0.2)
    ax_s.invert_yaxis()
    ax_s.set_xlabel("time (s from the first frame)")
    for ax in (ax_x, ax_z, ax_s):
        ax.grid(alpha=0.3)
    if len(people) + len(track_ids) <= 12:
        ax_x.legend(loc="upper right", fontsize=7, ncol=2)
    ax_x.set_title(title or "tracks (dots) vs ground truth (grey; dotted = out of view)")
    fig.savefig(Path(path), dpi=100)
    return path
