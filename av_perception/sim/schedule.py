"""Turn-taking schedules: who speaks when, with pauses, overlaps and silent people."""
from __future__ import annotations

import numpy as np

from .scene import Utterance

__all__ = ["double_talk", "double_talk_fractions", "turn_taking", "speaking_intervals",
           "overlap_time", "turn_away_intervals"]


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


def double_talk(talkativeness: dict, duration: float, rng, *, turn=(1.5, 3.0),
                into=(0.3, 0.8), start=(0.3, 0.7), end_margin: float = 0.3) -> list[Utterance]:
    """Double talk: every next talker starts while the current one still speaks.

    The next turn starts a fraction f ~ U(``into``) into the current turn (30-80 % by
    default); it lasts long enough to outlive the current turn and to let the turn after
    it start inside the same range, after the current one has ended, so that never more
    than two people speak at once.

    Parameters
    ----------
    talkativeness : dict {person id: weight}
        Relative chance of taking the next turn; weight 0 = a silent person.
    duration : float
        Scene length (s); every utterance ends ``end_margin`` s before it.
    rng : numpy.random.Generator
    turn, into, start : (low, high)
        Uniform ranges of a turn's length (s, lengthened when needed), of the fraction
        of the current turn at which the next starts, and of the silence before the
        first turn (s).

    Returns
    -------
    list of Utterance, sorted by start; consecutive turns are by different people
    (a single talker: turns with pauses of ``into`` times the turn instead).
    """
    ids = [pid for pid, w in talkativeness.items() if w > 0]
    if not ids:
        return []
    lo, hi = float(into[0]), float(into[1])
    if not 0.0 < lo <= hi < 1.0:
        raise ValueError(f"into = {into} must satisfy 0 < low <= high < 1")
    weights = np.array([talkativeness[i] for i in ids], dtype=float)
    stop = duration - end_margin
    out: list[Utterance] = []
    s = rng.uniform(*start)
    e = min(s + rng.uniform(*turn), stop)
    if e - s < 0.4:
        return []
    prev = ids[rng.choice(len(ids), p=weights / weights.sum())]
    out.append(Utterance(prev, round(float(s), 3), round(float(e), 3)))
    prev_end = -np.inf  # end of the turn before the current one
    while True:
        cand = [k for k, pid in enumerate(ids) if pid != prev] or list(range(len(ids)))
        w = weights[cand] / weights[cand].sum()
        pid = ids[cand[rng.choice(len(cand), p=w)]]
        # the next start: a fraction of the current turn, after the turn before it ended
        f_lo = max(lo, (prev_end - s) / (e - s) + 1e-3)
        if f_lo > hi:
            break
        f = rng.uniform(f_lo, hi)
        t = s + f * (e - s)
        if len(ids) == 1:  # nobody to talk over: a pause instead
            t = e + f * (e - s)
        # long enough to outlive the current turn and leave room for the next start
        length = max(rng.uniform(*turn), (e - t) / hi + 0.1, (e - t) + 0.4)
        end = min(t + length, stop)
        if end - t < 0.4 or end <= e:
            break
        out.append(Utterance(pid, round(float(t), 3), round(float(end), 3)))
        prev_end, s, e, prev = e, t, end, pid
    return sorted(out, key=lambda u: (u.start, u.person))


def double_talk_fractions(utterances) -> list[float]:
    """For each turn that starts while another is under way: how far into that other
    turn (fraction of its length) it starts."""
    out = []
    for u in utterances:
        running = [v for v in utterances if v is not u and v.start < u.start < v.end]
        out.extend((u.start - v.start) / (v.end - v.start) for v in running)
    return out


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


def turn_away_intervals(duration: float, rng, *, episodes=(1, 2), length=(1.0, 3.0),
                        first: float = 2.0, gap: float = 2.0,
                        end_margin: float = 2.0) -> list[list[float]]:
    """Random intervals [[start, end], ...] in which one person's head is turned away.

    Parameters
    ----------
    duration : float
        Scene length (s).
    rng : numpy.random.Generator
    episodes : (low, high)
        Number of episodes, uniform over low..high (fewer when the scene is too short).
    length : (low, high)
        Uniform range (s) of an episode's length.
    first, gap, end_margin : float
        The face is seen for at least ``first`` s before the first episode, ``gap`` s
        between episodes and ``end_margin`` s after the last one (so that whether the
        person kept their track can be judged before and after every episode).

    Returns
    -------
    list of [start, end], sorted.
    """
    n = int(rng.integers(episodes[0], episodes[1] + 1))
    out = []
    t = first
    for k in range(n):
        dur = float(rng.uniform(*length))
        left = duration - end_margin - dur - t
        # room for the episodes still to come at their shortest
        left -= (n - k - 1) * (length[0] + gap)
        if left < 0:
            break
        start = t + float(rng.uniform(0.0, left / (n - k)))
        out.append([round(start, 3), round(start + dur, 3)])
        t = start + dur + gap
    return out
