"""Duplicate tracks of one person: which pairs to merge, and the merge."""
from __future__ import annotations

import numpy as np

__all__ = ["due_merges", "merge_duplicates"]


def due_merges(tracks, alpha, close_since: dict, time: float, config):
    """Pairs to merge: closer than ``merge_distance`` and sharing their observations (or
    having none), or closer than half of it (two head centres cannot be), for
    ``merge_time``.  Two people passing close by each claim their own observation, which
    restarts the pair's clock.

    Parameters
    ----------
    tracks : TrackState
    alpha : array (M, K' + 1)
        Visual responsibilities of the frame (K' <= K: tracks born in this frame have
        none).
    close_since : dict
        {(id, id): s} when each pair became close, from the previous frame.
    time : float
        s, the tracker clock.
    config : TrackerConfig

    Returns
    -------
    due : list of (i, j)
        Row pairs to merge.
    close_since : dict
        The pairs that are close now, for the next frame.
    """
    c = config
    k = len(tracks)
    if k < 2 or c.merge_distance <= 0:
        return [], {}
    p = tracks.mean[:, :3]
    d = np.linalg.norm(p[:, None] - p[None], axis=2)
    close = np.argwhere(np.triu(d < c.merge_distance, 1))
    a = np.zeros((len(alpha), k))
    a[:, :alpha.shape[1] - 1] = alpha[:, 1:]
    since = {}
    due = []
    for i, j in close:
        key = (int(tracks.ids[i]), int(tracks.ids[j]))
        own_i, own_j = np.sum(a[:, i]), np.sum(a[:, j])
        shared = float(np.sum(np.minimum(a[:, i], a[:, j])))
        distinct = (d[i, j] >= 0.5 * c.merge_distance and min(own_i, own_j) >= 0.5
                    and shared < 0.25 * min(own_i, own_j))
        if distinct:
            continue
        since[key] = close_since.get(key, time)
        if time - since[key] >= c.merge_time:
            due.append((i, j))
    return due, since


def merge_duplicates(tracks, due) -> tuple[np.ndarray, list[int]]:
    """Merge each due pair into the older (confirmed first) identity with the more precise
    state, in place (the merged-away rows stay until removed).

    Parameters
    ----------
    tracks : TrackState
    due : list of (i, j)
        Row pairs from :func:`due_merges`.

    Returns
    -------
    merged : array (K,) bool
        Rows merged away.
    ended : list of int
        Identities of the confirmed tracks merged away.
    """
    merged = np.zeros(len(tracks), dtype=bool)
    ended = []
    for i, j in due:
        if merged[i] or merged[j]:
            continue
        # older identity (smaller id, rows are in birth order) survives ...
        old, new = (i, j) if tracks.ids[i] < tracks.ids[j] else (j, i)
        if tracks.confirmed[new] and not tracks.confirmed[old]:
            old, new = new, old
        # ... with the more precise state
        if np.trace(tracks.cov[new, :3, :3]) < np.trace(tracks.cov[old, :3, :3]):
            tracks.mean[old] = tracks.mean[new]
            tracks.cov[old] = tracks.cov[new]
        tracks.logodds[old] = max(tracks.logodds[old], tracks.logodds[new])
        tracks.speaking[old] = max(tracks.speaking[old], tracks.speaking[new])
        tracks.last_visual[old] = max(tracks.last_visual[old], tracks.last_visual[new])
        tracks.confirmed[old] |= tracks.confirmed[new]
        merged[new] = True
        if tracks.confirmed[new]:
            ended.append(int(tracks.ids[new]))
    return merged, ended
