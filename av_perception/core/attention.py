"""Attention target: the tracked person the robot should look at (the current speaker).

:class:`AttentionSelector` is fed every tracker output (track ids, positions, speaking
probabilities, stamp) and returns one :class:`AttentionTarget` per step: a track id and
its position, or none.  Hysteresis keeps the head from jumping between two people who
talk over each other for a moment; the last speaker is held through pauses.  The rules
(docs/algorithms.md, "Attention target"):

* a track *speaks* at a step when its speaking probability is >= ``speaking_threshold``;
  its *run* is the time since it last started speaking (silences of up to ``max_gap`` s
  do not interrupt it; a target silent for no longer than that still speaks);
* with no target, the first track whose run reaches ``switch_delay`` becomes the target
  (the highest probability, then the longest run, among several);
* a speaking target is replaced only by a track whose run reaches ``switch_delay`` and
  whose probability exceeds the target's by ``switch_margin`` (overlapping speech does
  not switch); a silent target by any track whose run reaches ``switch_delay`` (a turn
  taken during an overlap switches as soon as the previous speaker stops); neither
  within ``min_dwell`` s of the target being taken (a gaze fixates);
* a silent target is held while nobody else qualifies; after ``hold_time`` s of silence
  it stays the target (``idle_target = 'last_speaker'``, a gaze that rests on the last
  speaker) or is released (``'none'``);
* one voice on two tracks (``itd_resolution``): when the target and a candidate are both
  without visual support and their ITDs at the head's pose differ by less than
  ``itd_resolution`` -- two people out of view on the same side, which the ITDs cannot
  tell apart -- the candidate's speech may be the target's: it does not take the
  attention on a run that began before the target's last speaking step (it needs an
  onset after the target fell silent, or to come into view; :meth:`AttentionSelector.
  update` with ``unseen`` and ``itd_model``);
* a target whose track ended is released at once; one that the tracker merely stops
  reporting (silent and out of view, its identity kept) is held at its last position
  as a silent target (:meth:`AttentionSelector.update_output`; :meth:`~AttentionSelector.
  update` without ``ended`` releases it too).

Pure numpy, no ROS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .config import StageConfig, param

__all__ = ["AttentionConfig", "AttentionSelector", "AttentionTarget", "NO_TARGET"]

#: track id of "no target"
NO_TARGET = -1


@dataclass(frozen=True)
class AttentionConfig(StageConfig):
    """Which tracked person the robot looks at (section ``attention``)."""

    SECTION: ClassVar[str] = "attention"

    enabled: bool = param(
        True, "Select the attention target and publish it (attention, attention/voice_id; "
        "the attention file of `process`).")
    speaking_threshold: float = param(
        0.5, "Speaking probability from which a track counts as speaking for the "
        "attention.", low=0.01, high=0.99)
    switch_delay: float = param(
        0.25, "A new speaker must speak this long (s; silences up to max_gap do not "
        "interrupt it) before it takes the attention.", low=0.0, high=5.0)
    max_gap: float = param(
        0.07, "A speaking run goes on through silent steps of up to this many seconds (the "
        "speaking probability dips between words).", low=0.0, high=2.0)
    switch_margin: float = param(
        0.3, "While the current target still speaks, a new speaker takes the attention "
        "only if its speaking probability exceeds the target's by this much (overlapping "
        "speech does not switch).", low=0.0, high=1.0)
    min_dwell: float = param(
        1.0, "After the attention moved to a track, no other speaker takes it for this "
        "many seconds, whether the new target speaks or not (a gaze fixates; during an "
        "overlap the speaking probabilities of two talkers cross back and forth).  An "
        "ended track still releases it at once.", low=0.0, high=10.0)
    hold_time: float = param(
        2.0, "The last speaker keeps the attention through pauses of this many seconds "
        "whatever idle_target says (another speaker can still take it after "
        "switch_delay).", low=0.0, high=600.0)
    itd_resolution: float = param(
        60e-6, "Two tracks without visual support (out of view) whose ITDs at the head's "
        "pose differ by less than this (s) are not told apart by the speaking evidence: "
        "while the target is one of them, the other does not take the attention on a "
        "speaking run begun before the target fell silent (0: off).  The tracker's "
        "itd_sigma.", low=0.0, high=1e-3)
    idle_target: str = param(
        "last_speaker", "After hold_time s without speech of the target: 'last_speaker' "
        "(keep looking at it while its track lives) or 'none' (no target until someone "
        "speaks).", choices=("last_speaker", "none"))


@dataclass
class AttentionTarget:
    """The attention at one tracker step.

    Attributes
    ----------
    stamp : float
        s, the tracker output's stamp.
    track_id : int
        Target track id, :data:`NO_TARGET` (-1) when none.
    position : (3,) float
        m, the target's position in the frame of the tracker output; NaN when none.
    speaking : float
        The target's speaking probability at this step (NaN when none).
    switched : bool
        The target changed at this step (to another track or to/from none).
    """

    stamp: float
    track_id: int = NO_TARGET
    position: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    speaking: float = math.nan
    switched: bool = False

    @property
    def valid(self) -> bool:
        return self.track_id != NO_TARGET

    def row(self) -> tuple:
        """Attention-file row ``(stamp, track_id, x, y, z)`` (NaN position when none)."""
        p = self.position
        return (self.stamp, int(self.track_id), float(p[0]), float(p[1]), float(p[2]))


class AttentionSelector:
    """The attention target with hysteresis, updated at each tracker output.

    Parameters
    ----------
    config : AttentionConfig
    """

    def __init__(self, config: AttentionConfig | None = None):
        self.config = config or AttentionConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the target and the speaking runs (a new tracker)."""
        self.target = NO_TARGET
        #: track id -> (stamp at which its current speaking run started, its last
        #: speaking stamp)
        self.onsets: dict = {}
        self.last_spoke = -math.inf  # stamp of the target's last speaking step
        self.taken_at = -math.inf  # stamp at which the target was taken
        self.last_position = np.full(3, np.nan)  # the target's last finite position
        self.last_stamp = -math.inf
        self.switches = 0  # target changes from one track to another (total)
        #: track id -> its last finite position (also of the tracks the tracker stops
        #: reporting while silent and out of view)
        self.known: dict = {}
        self.deferred = 0  # steps a candidate did not switch: one voice on two tracks

    def update_output(self, output, itd_model=None) -> AttentionTarget:
        """:meth:`update` from a :class:`~av_perception.core.tracking.TrackerOutput`
        (its ``audio_only`` flags as ``unseen``)."""
        return self.update(output.stamp, output.ids, output.position, output.speaking,
                           ended=output.ended, unseen=output.audio_only,
                           itd_model=itd_model)

    def update(self, stamp: float, ids, positions, speaking, ended=None, unseen=None,
               itd_model=None) -> AttentionTarget:
        """One tracker step.

        Parameters
        ----------
        stamp : float
            s; a stamp not after the previous one restarts the selector (a new timeline).
        ids : (K,) int
            Track ids reported at this step (a target missing from them is released).
        positions : (K, 3) float
            m, any fixed frame (the tracker output's).  A non-finite row keeps the
            track but its last finite position is reported.
        speaking : (K,) float
            Speaking probabilities; NaN counts as not speaking.
        ended : (E,) int, optional
            Ids of the tracks that ended since the previous step.  When given, a target
            missing from ``ids`` but not ended (a silent track the tracker does not report
            while it is out of view) is held at its last position as a silent target;
            when None, a missing target is released.
        unseen : (K,) bool, optional
            Tracks without visual support (out of view: the tracker's ``audio_only``).
        itd_model : callable, optional
            ``itd_model(points)``: the ITDs (s) of points (N, 3) of the positions' frame
            at this step's head pose.  With ``unseen`` and ``attention.itd_resolution`` >
            0: one voice on two tracks (module docstring).

        Returns
        -------
        AttentionTarget
        """
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"attention: stamp {stamp} is not finite: give the tracker "
                             "output's stamp in seconds")
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        k = len(ids)
        positions = np.asarray(positions, dtype=float)
        speaking = np.asarray(speaking, dtype=float).reshape(-1)
        if positions.size != 3 * k or len(speaking) != k:
            raise ValueError(
                f"attention: {k} track ids but positions of shape {positions.shape} and "
                f"{len(speaking)} speaking probabilities: give (K,) ids, (K, 3) positions and "
                "(K,) probabilities of the same tracks")
        positions = positions.reshape(k, 3)
        if unseen is None:
            unseen = np.zeros(k, dtype=bool)
        unseen = np.asarray(unseen, dtype=bool).reshape(-1)
        if len(unseen) != k:
            raise ValueError(f"attention: {k} track ids but {len(unseen)} unseen flags: give "
                             "one flag per track (the tracker output's audio_only)")
        if stamp <= self.last_stamp:
            self.reset()
        prev, self.last_stamp = self.last_stamp, stamp
        c = self.config
        prob = np.nan_to_num(speaking, nan=0.0)
        talking = prob >= c.speaking_threshold
        present = {int(i): j for j, i in enumerate(ids)}
        runs = {}
        for i, j in present.items():
            start, last = self.onsets.get(i, (stamp, -math.inf))
            if talking[j]:
                # silent since its last speaking step up to the previous step
                runs[i] = (start if prev - last <= c.max_gap + 1e-9 else stamp, stamp)
            elif stamp - last <= c.max_gap + 1e-9:
                runs[i] = (start, last)
        self.onsets = runs
        gone = ({int(i) for i in np.ravel(ended)} if ended is not None
                else set(self.known) - set(present))  # without ended: missing = gone
        for i in gone:
            self.known.pop(i, None)
        for i, j in present.items():
            if np.isfinite(positions[j]).all():
                self.known[i] = positions[j].copy()
        before = self.target
        if self.target not in present and (
                ended is None or self.target in {int(i) for i in np.ravel(ended)}):
            self.target = NO_TARGET  # the track ended (or none yet)
        shown = self.target in present  # False: held while unreported
        target_prob = prob[present[self.target]] if shown else 0.0
        if shown and talking[present[self.target]]:
            self.last_spoke = stamp
        # the candidates: speaking long enough, not the target
        best, best_key = NO_TARGET, None
        for i, (t0, _) in self.onsets.items():
            if i == self.target or not talking[present[i]] or \
                    stamp - t0 < c.switch_delay - 1e-9:
                continue
            key = (prob[present[i]], stamp - t0)
            if best_key is None or key > best_key:
                best, best_key = i, key
        if best != NO_TARGET:
            # a target silent for no more than max_gap still speaks (a dip between words)
            silent = self.target == NO_TARGET or stamp - self.last_spoke > c.max_gap + 1e-9
            dwelt = stamp - self.taken_at >= c.min_dwell - 1e-9
            if silent and self.target != NO_TARGET and not dwelt:
                pass  # a gaze fixates: not replaced within min_dwell of being taken
            elif silent or (dwelt and best_key[0] >= target_prob + c.switch_margin):
                if self.onsets[best][0] <= self.last_spoke + 1e-9 and \
                        self._same_voice(best, present, unseen, itd_model):
                    # both unseen on one ITD, the candidate's run begun while the target
                    # spoke: the target's voice heard on the candidate's track
                    self.deferred += 1
                else:
                    self._take(best, stamp)
        if (self.target != NO_TARGET and c.idle_target == "none"
                and stamp - self.last_spoke > c.hold_time):
            self.target = NO_TARGET
        if before != NO_TARGET and self.target not in (NO_TARGET, before):
            self.switches += 1
        if self.target == NO_TARGET:
            self.last_position = np.full(3, np.nan)
            return AttentionTarget(stamp, switched=before != NO_TARGET)
        if self.target not in present:  # held while unreported: its last position
            return AttentionTarget(stamp, self.target, self.last_position.copy(), 0.0,
                                   switched=before != self.target)
        j = present[self.target]
        if np.isfinite(positions[j]).all():
            self.last_position = positions[j].copy()
        return AttentionTarget(stamp, self.target, self.last_position.copy(),
                               float(speaking[j]), switched=before != self.target)

    def _same_voice(self, best: int, present: dict, unseen: np.ndarray, itd_model) -> bool:
        """True when the candidate ``best`` and the target are both without visual
        support and their ITDs at the head's pose differ by less than
        ``itd_resolution``: the speaking evidence cannot tell their voices apart."""
        c = self.config
        if itd_model is None or c.itd_resolution <= 0.0 or not unseen[present[best]] \
                or best not in self.known or self.target not in self.known:
            return False
        if self.target in present and not unseen[present[self.target]]:
            return False
        itd = np.asarray(itd_model(np.array([self.known[best], self.known[self.target]])),
                         dtype=float).reshape(-1)
        return bool(abs(itd[0] - itd[1]) < c.itd_resolution)

    def _take(self, track_id: int, stamp: float) -> None:
        self.target = track_id
        self.last_spoke = self.taken_at = stamp
        self.last_position = np.full(3, np.nan)
