"""Turn-taking schedules: who speaks when, with pauses, overlaps and silent people."""
from __future__ import annotations

import numpy as np

from .scene import Utterance

__all__ = ["turn_taking", "speaking_intervals", "overlap_time"]


def turn_taking(talkativeness: dict, duration: float, rng, *, turn=(1.2, 3.0),
                pause=(0.25, 0.9), overlap_prob: float = 0.0, overlap=(0.3, 0.8),
                start=(0.3, 0.7), end_margin: float = 0.3) -> list[Utterance]:
    """Random conversation: turns follow each other with pauses and occasional overlaps.

    Parameters
    ----------
    talkativeness : dict {person id: weight}
        Relative chance of taking the next turn; weight 0 = a silent person.
    duration : float
        Scene length (s); every utterance ends ``end_margin`` s before it.
    rng : numpy.random.Generator
    turn, pause, overlap, start : (low, high)
        Uniform ranges (s) of a turn's length, the silence between turns, how much
        a turn overlaps its predecessor, and the silence before the first turn.
    overlap_prob : float
        Probability that the next turn starts before the current one ends
        (another person interrupts).

    Returns
    -------
    list of Utterance, sorted by start.  The same person never takes two
    consecutive turns while someone else could speak.
    """
    ids = [pid for pid, w in talkativeness.items() if w > 0]
    if not ids:
        return []
    weights = np.array([talkativeness[i] for i in ids], dtype=float)
    last_end = {pid: -np.inf for pid in ids}
    out: list[Utterance] = []
    t = rng.uniform(*start)
    prev = None
    stop = duration - end_margin
    while t < stop - 0.4:
        cand = [k for k, pid in enumerate(ids) if pid != prev and last_end[pid] <= t] or \
               [k for k, pid in enumerate(ids) if last_end[pid] <= t]
        if not cand:
            t = min(last_end.values())
            continue
        w = weights[cand] / weights[cand].sum()
        pid = ids[cand[rng.choice(len(cand), p=w)]]
        end = min(t + rng.uniform(*turn), stop)
        if end - t < 0.4:
            break
        out.append(Utterance(pid, round(float(t), 3), round(float(end), 3)))
        last_end[pid] = out[-1].end
        prev = pid
        if len(ids) > 1 and rng.random() < overlap_prob:
            t = end - min(rng.uniform(*overlap), 0.5 * (end - t))
        else:
            t = end + rng.uniform(*pause)
    return sorted(out, key=lambda u: (u.start, u.person))


def speaking_intervals(utterances, pid: int) -> list[tuple[float, float]]:
    """The (start, end) intervals of person ``pid``."""
    return [(u.start, u.end) for u in utterances if u.person == pid]


def overlap_time(utterances) -> float:
    """Total time (s) during which two or more people speak at once."""
    edges = sorted({e for u in utterances for e in (u.start, u.end)})
    total = 0.0
    for a, b in zip(edges, edges[1:]):
        mid = 0.5 * (a + b)
        if sum(1 for u in utterances if u.start <= mid < u.end) >= 2:
            total += b - a
    return total
