"""The variational Bayesian audio-visual multi-speaker tracker: one object that takes
audio frames, visual observations and audio-visual events in time order and reports the
tracks (position, velocity, existence, speaking status) in the left camera optical frame.

The models are in :mod:`.models`, the variational updates in :mod:`.inference`, births in
:mod:`.births`, duplicate merging in :mod:`.merging`; this module keeps the clock, the
track state and the order of the steps.
"""
from __future__ import annotations

import numpy as np

from ..config import MicArrayConfig, StereoCameraConfig
from ..geometry import MicGeometry
from ..head import make_head_model
from ..poses import Pose, PosedGeometry
from ..tf_presence import itd_grid
from .births import (
    AudioBirths,
    Birth,
    VisualBirths,
    event_birth,
    near_a_track,
    reentry_candidates,
    reentry_match,
)
from .config import TrackerConfig
from .inference import (
    ItdShrinkEstimator,
    SpeechActivityLevel,
    process_noise_m_step,
    speaking_filter,
    tf_presence_terms,
    variational_update,
)
from .inputs import (
    AudioFrames,
    EventObservations,
    TrackerInputError,
    check_lip,
    check_stamp,
    check_visual,
)
from .merging import due_merges, merge_duplicates
from .models import (
    anchor_reference,
    anchored_position,
    cap_covariance,
    constant_velocity_model,
    in_view,
    itd_model,
    logit,
    symmetrise,
)
from .outputs import TrackerOutput
from .state import TrackState

__all__ = ["Tracker"]


class Tracker:
    """Variational Bayesian audio-visual multi-person tracker.

    Per update: predict, then at most ``vb_iterations`` of E-Z visual, E-Z audio and E-S
    until no position moves more than ``vb_tolerance``; then the M-steps, existence,
    births, merges and deaths.  One clock, :attr:`time`: ``update_audio`` /
    ``update_visual`` predict to their stamp and must come in time order; input older
    than ``max_lateness`` is dropped (``stats['late_audio']``, ``stats['late_visual']``),
    less late input is applied at the current time.

    Parameters
    ----------
    config : TrackerConfig
    mics : MicArrayConfig or MicGeometry
        The binaural pair (default: :class:`MicArrayConfig` defaults).
    camera : StereoCameraConfig
        Intrinsics of the left camera, for the in-view test (default: defaults).

    Typical use, once per image pair (``features``: the BinauralFeatures received
    since the previous image, ``obs``: that pair's VisualObservations)::

        tracker = Tracker(TrackerConfig(), mics_config, camera_config)
        out = tracker.step(obs.stamp, visual=obs, audio=features)
        out.ids, out.position, out.speaking, out.audio_only, out.ended
    """

    def __init__(self, config: TrackerConfig | None = None,
                 mics: MicArrayConfig | MicGeometry | None = None,
                 camera: StereoCameraConfig | None = None):
        self.config = config or TrackerConfig()
        mics = mics if mics is not None else MicArrayConfig()
        self.geometry = mics if isinstance(mics, MicGeometry) else make_head_model(mics)
        self.camera = camera or StereoCameraConfig()
        c = self.config
        self._q_axes = np.array([c.process_noise, c.vertical_process_noise, c.process_noise])
        self._logit_max = logit(c.max_existence)
        self._logit_death = logit(c.death_existence)
        self._logit_confirm = logit(c.confirm_existence)
        #: camera pose in the fixed frame at a stamp (callable stamp -> Pose), or None: the
        #: tracker then works in the camera frame (set_pose_source)
        self.pose_source = None
        self._poses_many = None
        self._pose: Pose | None = None
        self._posed: PosedGeometry | None = None
        #: a :class:`.smoothing.SpeakingRecord` the speaking filter of every audio frame
        #: is written to (offline smoothing), or None
        self.speaking_record = None
        self.reset()

    def set_pose_source(self, source, many=None) -> None:
        """Track in a fixed frame: ``source(stamp)`` gives the camera's :class:`Pose`
        (camera -> fixed) at a stamp (s).  Visual observations and events are moved into
        the fixed frame with the pose at their stamp, the ITD model and the in-view test
        use the pose at the audio frame's / the tracker's time; outputs are in the fixed
        frame.  None: the camera frame (no transform at all).  ``many(stamps)``, optional:
        the same for an array of stamps as arrays (R (N, 3, 3), t (N, 3)), or None (then
        ``source`` per stamp) -- the audio frames' poses in one call."""
        self.pose_source = source
        self._poses_many = many if source is not None else None
        self._pose = None if source is None or self.time is None else source(self.time)

    def transform_tracks(self, pose: Pose) -> None:
        """Move every track by a rigid transform (new frame <- old frame): positions,
        velocities, covariances and anchors; e.g. into the fixed frame when the first pose
        arrives, or with an odometry reset."""
        tr = self._tracks
        if not len(tr):
            return
        T = np.zeros((6, 6))
        T[:3, :3] = T[3:, 3:] = pose.R
        for name in ("mean", "visual_mean"):
            m = getattr(tr, name)
            m[:] = m @ T.T
            m[:, :3] += pose.t
        tr.cov[:] = symmetrise(T @ tr.cov @ T.T)
        tr.visual_cov[:] = T @ tr.visual_cov @ T.T
        tr.ref_direction[:] = tr.ref_direction @ pose.R.T
        self._visual_births = VisualBirths(self.config, self._q_axes)

    def _pose_at(self, stamp: float) -> Pose | None:
        return None if self.pose_source is None else self.pose_source(stamp)

    def _set_pose(self, stamp: float) -> None:
        if self.pose_source is not None:
            self._pose = self.pose_source(stamp)
            self._shrink.geometry = self._geo

    @property
    def _geo(self):
        """The binaural geometry in the tracker's frame (posed when tracking in a fixed
        frame; made once per pose)."""
        if self._pose is None:
            return self.geometry
        if self._posed is None or self._posed.pose is not self._pose:
            self._posed = PosedGeometry(self.geometry, self._pose)
        return self._posed

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every track, chain and buffered input; identities restart at 1."""
        if self.speaking_record is not None:
            self.speaking_record.new_epoch()
        self.time: float | None = None
        self._next_id = 1
        self._tracks = TrackState.empty()
        self._close_since: dict = {}
        self._shrink = ItdShrinkEstimator(self.config, self.geometry)
        self._activity = SpeechActivityLevel(self.config)
        self._last_image: float | None = None
        self._visual_births = VisualBirths(self.config, self._q_axes)
        self._audio_births = AudioBirths(self.config, self.geometry)
        self._pending = AudioFrames.empty()
        self._ended: list[int] = []
        self.stats = {"audio_frames": 0, "visual_frames": 0, "late_audio": 0,
                      "late_visual": 0, "births_visual": 0, "births_audio": 0, "deaths": 0,
                      "merges": 0, "vb_iterations": 0, "event_windows": 0, "late_events": 0,
                      "births_events": 0, "births_events_audio": 0,
                      "reentries": 0, "heard_duplicates": 0}

    @property
    def num_tracks(self) -> int:
        """Live tracks, confirmed or not."""
        return len(self._tracks)

    @property
    def pending_audio(self) -> int:
        """Audio frames received with a stamp after the tracker's time, waiting for the
        step that reaches them."""
        return len(self._pending)

    @property
    def itd_shrink(self) -> float:
        """Current ITD shrink per metre b (estimated or fixed)."""
        return self._shrink.value

    def itd_model(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Expected ITD (s) of points (N, 3) under the audio model, and its gradient (N, 3).

        (1 - b d) G(p) with the current shrink b, d = |p - mic centre| (m).
        """
        if self._pose is None:
            return itd_model(self.geometry, self._shrink.value, points)
        G, J = itd_model(self.geometry, self._shrink.value, self._pose.apply_inverse(points))
        return G, J @ self._pose.R.T

    def _frame_itd_model(self, R, t, rows=None):
        """The ITD model with the microphones of each of T frames (camera poses R
        (T, 3, 3), t (T, 3) in the fixed frame): a callable points (K, 3) -> expected
        ITD (N, K) s and gradient (N, K, 3) s/m, one row per entry of ``rows`` (frame
        indices, N of them; default: each frame once).  Row n equals :meth:`itd_model`
        with the tracker's pose set to frame ``rows[n]``'s."""
        shrink = self._shrink.value

        def model(points):
            p = np.asarray(points, dtype=float)
            n_frames, k = len(R), len(p)
            # into each frame's camera: R^T (p - t)
            pc = np.einsum("fji,fkj->fki", R, p[None, :, :] - t[:, None, :])
            G, J = itd_model(self.geometry, shrink, pc.reshape(-1, 3))
            G = G.reshape(n_frames, k)
            J = np.einsum("fkj,fij->fki", J.reshape(n_frames, k, 3), R)  # J_c R^T
            if rows is None:
                return G, J
            return G[rows], J[rows]
        return model

    def _camera_itd_model(self, points):
        return itd_model(self.geometry, self._shrink.value, points)

    @property
    def process_noise_scale(self) -> dict:
        """{track id: M-step process-noise scale} (1 without the M-step)."""
        return {int(i): float(s) for i, s in zip(self._tracks.ids, self._tracks.noise_scale)}

    # ------------------------------------------------------------------ public
    def step(self, stamp: float, visual=None, audio=None, events=None) -> TrackerOutput:
        """Advance to ``stamp``: buffered and new audio frames up to ``stamp`` (time order),
        then the audio-visual events (births only), then the image pair, then report.

        Parameters
        ----------
        stamp : float
            s, the image header stamp (or any time to report at when ``visual`` is None).
        visual : VisualObservations, optional
            Observations of the image pair at ``stamp`` (its ``xyz``, ``covariance``,
            ``weight`` and, when present, ``lip_llr`` are used).
        audio : BinauralFeatures or AudioFrames, optional
            Audio frames received since the previous call; frames later than ``stamp``
            are kept for the next call.
        events : EventObservations or list of AVEvent, optional
            Audio-visual events received since the previous call (:meth:`update_events`).

        Returns
        -------
        TrackerOutput at ``stamp``.
        """
        stamp = check_stamp(stamp)
        if audio is not None:
            if not isinstance(audio, AudioFrames):
                if not all(hasattr(audio, a) for a in ("stamp", "itd", "weight")):
                    raise TrackerInputError(
                        "audio must be AudioFrames or BinauralFeatures, got "
                        f"{type(audio).__name__}")
                audio = AudioFrames.from_features(audio)
            self._pending = AudioFrames.concatenate(self._pending, audio)
        if len(self._pending):
            order = np.argsort(self._pending.stamp, kind="stable")
            pend = self._pending.select(order)
            due = pend.stamp <= stamp
            now = pend.select(due)
            self._pending = pend.select(~due)
            if len(now):
                starts = np.flatnonzero(np.r_[True, np.diff(now.stamp) > 0])
                ends = np.r_[starts[1:], len(now)]
                span = self.config.audio_batch_span
                rows = None
                if self.pose_source is not None:  # each frame's geometry at its own stamp
                    # the ITDs lag a turning head by itd_pose_delay (the front-end's
                    # precedence memory): modelled with the microphones of that moment
                    rows = self._frame_poses(now.stamp - self.config.itd_pose_delay,
                                             starts, ends)
                a = 0
                while a < len(starts):  # frames within audio_batch_span of a: one update
                    b = max(a + 1, int(np.searchsorted(
                        now.stamp[starts], now.stamp[starts[a]] + span, side="right")))
                    part = slice(starts[a], ends[b - 1])
                    self._update_audio_batch(
                        now.select(part),
                        None if rows is None else (rows[0][part], rows[1][part]))
                    a = b
        if events is not None:
            window_end = getattr(events, "stamp", None)
            self.update_events(stamp if window_end is None else window_end, events)
        if visual is not None:
            if not all(hasattr(visual, a) for a in ("xyz", "covariance", "weight")):
                raise TrackerInputError(
                    "visual must have xyz, covariance and weight (e.g. VisualObservations), "
                    f"got {type(visual).__name__}")
            return self.update_visual(stamp, visual.xyz, visual.covariance, visual.weight,
                                      getattr(visual, "lip_llr", None))
        return self.report(stamp)

    def update_visual(self, stamp: float, xyz, covariance, weight=None,
                      lip_llr=None) -> TrackerOutput:
        """Update with the visual observations of one image pair and report.

        Parameters
        ----------
        stamp : float
            s, image header stamp.
        xyz : array (M, 3)
            m, left camera optical frame.
        covariance : array (M, 3, 3)
            m^2, symmetric positive definite.
        weight : array (M,), optional
            In [0, 1] (default 1).
        lip_llr : array (M,), optional
            Visual speaking log-likelihood ratio of each observation's lips
            (``VisualObservations.lip_llr``; 0 or NaN = unknown; default unknown).  Each
            track's ``lip_llr`` becomes the sum of its responsibilities x these.

        Returns
        -------
        TrackerOutput at ``stamp``.
        """
        stamp = check_stamp(stamp)
        xyz, cov, w = check_visual(xyz, covariance, weight)
        lip = check_lip(lip_llr, len(xyz))
        t = self._advance(stamp, "late_visual")
        if t is None:
            return self.report(stamp)
        if self.pose_source is not None and len(xyz):  # into the fixed frame at its stamp
            pose = self.pose_source(stamp)
            xyz, cov = pose.apply(xyz), symmetrise(pose.rotate_covariance(cov))
        self.stats["visual_frames"] += 1
        keep = w >= max(self.config.min_visual_weight, 1e-6)
        xyz, cov, w, lip = xyz[keep], cov[keep], w[keep], lip[keep]
        dt_img = 1.0 / self.camera.fps if self._last_image is None else min(
            max(t - self._last_image, 0.0), 0.5)
        self._last_image = t
        # anchored after the bookkeeping: a track without visual support that this image
        # sees (an audio-born track coming into view) keeps its visual update
        heard_only = ~np.isfinite(self._tracks.last_visual)  # never seen so far
        alpha, _ = self._variational(xyz, cov / w[:, None, None], None, None, w, anchor=False)
        self._visual_bookkeeping(t, dt_img, alpha, w, lip)
        self._anchor()
        self._births(t, xyz, cov, w, alpha)
        self._end_heard_duplicates(t, heard_only)
        self._merge(alpha)
        self._deaths()
        return self.report(stamp)

    def update_events(self, stamp: float, events) -> int:
        """Births from the audio-visual events no track explains; returns the births.

        An in-view event with ``event_birth_visual_mass`` of visual support starts a
        track at its position; an out-of-view event with ``event_birth_audio_mass`` of
        audio starts an audio-only track (outside the camera view only, like the
        tracker's own audio births).  A track explains an event when their positions
        are within ``event_gate`` (Mahalanobis; the track's covariance plus the event's
        covariance and spread, as a moving person's window-average lags behind) or
        ``merge_distance``.
        The events only start tracks: their observations already reach the tracker as
        visual observations and audio frames, and counting them twice would make the
        tracks overconfident.

        Parameters
        ----------
        stamp : float
            s, end of the events' window; the births happen at the tracker's current time
            (events lag the images; they never advance the tracker's clock).
        events : EventObservations or list of AVEvent
        """
        stamp = check_stamp(stamp)
        if not isinstance(events, EventObservations):
            try:
                events = EventObservations.from_events(events)
            except (AttributeError, TypeError) as exc:
                raise TrackerInputError(
                    "events must be EventObservations or a list of AVEvent, got "
                    f"{type(events).__name__}") from exc
        c = self.config
        self.stats["event_windows"] += 1
        if self.time is not None and stamp < self.time - c.event_max_age:
            self.stats["late_events"] += 1
            return 0
        if self.time is None:
            self._advance(stamp, "late_events")
        if self.pose_source is not None and len(events):  # into the fixed frame
            pose = self.pose_source(stamp)
            events = EventObservations(
                pose.apply(events.position), symmetrise(pose.rotate_covariance(
                    events.covariance)), events.visual_mass, events.audio_mass,
                events.out_of_view, events.stamp, pose.rotate_covariance(events.spread))
        t = self.time  # never advanced by events: the images they lag must stay on time
        births = 0
        for e in range(len(events)):
            birth = event_birth(events.position[e], events.covariance[e], events.spread[e],
                                events.visual_mass[e], events.audio_mass[e],
                                events.out_of_view[e], self._tracks.mean, self._tracks.cov,
                                self._in_view, c)
            if birth is None:
                continue
            self._start(birth, t)
            births += 1
        self._cap_covariance()
        return births

    def update_audio(self, stamp: float, itds, weights) -> None:
        """Update with one audio frame: one or more ITDs observed at ``stamp``.

        Parameters
        ----------
        stamp : float
            s, time of the frame's centre sample.
        itds : array (F,) or float
            s, positive when the sound reaches the left mic first; NaN = no ITD.
        weights : array (F,) or float
            Activity x reliability in [0, 1]; NaN ITDs count as weight 0.
        """
        stamp = check_stamp(stamp)
        g = np.atleast_1d(np.asarray(itds, dtype=float))
        w = np.atleast_1d(np.asarray(weights, dtype=float))
        if g.ndim != 1 or w.shape != g.shape:
            raise TrackerInputError(
                f"itds and weights must have one shape (F,), got {g.shape} and {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise TrackerInputError("audio weights must be finite and >= 0")
        if np.any(np.isinf(g)):
            raise TrackerInputError("ITDs must be finite (NaN marks a frame without ITD)")
        if not self.config.audio_enabled:
            return
        t = self._advance(stamp, "late_audio")
        if t is None:
            return
        self.stats["audio_frames"] += 1
        self._audio_update(np.full(len(g), t), g, w)

    def _audio_update(self, stamps, g, w, profile=None, activity=None,
                      poses=None) -> None:
        """One variational update with the ITDs of one or more audio frames (``stamps``
        (F,), non-decreasing, the tracker already predicted to the last): the speaking
        HMMs are filtered frame by frame inside it; existence, shrink M-step and audio
        births step frame by frame after it.  ``activity`` (F,): the front-end's activity
        (the inactive frames of the speaking model; None: from the weights ``w``).
        ``poses`` (R (F, 3, 3), t (F, 3)): the camera pose of each row's frame (a turning
        head: the ITD model, the shrink M-step and the audio births of each frame use the
        microphones where they were; None: the tracker's pose for all)."""
        c = self.config
        ok = np.isfinite(g)
        wn = np.where(ok, np.minimum(w / c.audio_full_weight, 1.0), 0.0)
        g = np.where(ok, g, 0.0)
        use = wn > 1e-6
        tr = self._tracks
        k0 = len(tr)
        starts = np.flatnonzero(np.r_[True, np.diff(stamps) > 0])
        ends = np.r_[starts[1:], len(stamps)]
        frame = np.repeat(np.arange(len(starts)), ends - starts)
        frame_pose = None  # the pose of each frame (T of them)
        if poses is not None and self._pose is not None:
            frame_pose = (poses[0][starts], poses[1][starts])
        # each frame's speaking evidence outside its ITDs: inactivity and the lips; a frame
        # is inactive by its activity alone (an active frame whose ITD is unreliable --
        # two talkers at once, reverberation, noise -- is not evidence against speaking)
        act = (wn if activity is None
               else np.minimum(activity / self._activity.full(activity), 1.0))
        inactive = np.add.reduceat(1.0 - act, starts) / (ends - starts)
        frame_llr = (-c.speaking_idle * inactive[:, None]
                     + self._lip_evidence(1.0 - inactive))
        if profile is not None and k0 and c.tf_presence_gain > 0.0:
            frame_llr = frame_llr + self._tf_presence(profile[starts], frame_pose)
        beta_full = np.zeros((len(g), k0 + 1))
        beta_full[:, 0] = 1.0
        direct_full = np.zeros((len(g), k0))
        q = None
        if np.any(use):
            model = None
            if frame_pose is not None:
                model = self._frame_itd_model(frame_pose[0], frame_pose[1], frame[use])
            _, beta, q, direct = self._variational(None, None, g[use], wn[use],
                                                   frame=frame[use], frame_llr=frame_llr,
                                                   itd_model=model)
            beta_full[use] = beta
            if direct is not None:
                direct_full[use] = direct
        if q is None and k0:  # no ITD: the frames' other evidence only
            q, _ = speaking_filter(np.zeros((0, k0)), np.zeros(0), np.zeros(0, dtype=int),
                                   tr.speaking, frame_llr, np.zeros_like(frame_llr), c)
        for n, (a, b) in enumerate(zip(starts, ends)):
            gf, wf, bf = g[a:b], wn[a:b], beta_full[a:b]
            pose_n = self._pose if frame_pose is None else Pose(frame_pose[0][n],
                                                                frame_pose[1][n])
            tr = self._tracks
            if len(tr):
                tb, td = bf[:, 1:], direct_full[a:b]
                if len(tr) > k0:  # born from an earlier frame of this batch
                    pad = np.zeros((len(tb), len(tr) - k0))
                    tb, td = np.hstack([tb, pad]), np.hstack([td, pad])
                if k0:  # tracks born in this batch keep their birth probability
                    if self.speaking_record is not None:
                        self.speaking_record.record(float(stamps[a]), tr.ids[:k0],
                                                    tr.speaking[:k0], q[n])
                    tr.speaking[:k0] = q[n]
                tr.logodds = np.minimum(
                    tr.logodds + c.audio_existence_gain * tr.speaking
                    * np.sum(wf[:, None] * tb, axis=0), self._logit_max)
                tr.confirmed |= tr.logodds >= self._logit_confirm
                if c.estimate_itd_shrink:  # the direct path only
                    talking = (((self.time - tr.last_visual) <= c.visual_timeout)
                               & (tr.speaking >= 0.5))
                    if frame_pose is not None:  # the microphones of this frame
                        self._shrink.geometry = PosedGeometry(self.geometry, pose_n)
                    self._shrink.update(gf, wf, td, tr.mean[:, :3], talking)
            if c.audio_births:
                if self._pose is None:
                    birth = self._audio_births.update(float(stamps[a]), gf, wf, bf[:, 0],
                                                      self._shrink.value, self._in_view,
                                                      self.itd_model)
                else:  # in the camera frame, then into the fixed frame
                    birth = self._audio_births.update(
                        float(stamps[a]), gf, wf, bf[:, 0], self._shrink.value,
                        self._in_camera_view, self._camera_itd_model)
                    if birth is not None:
                        birth = birth.moved(pose_n)
                if birth is not None:
                    self._start(birth, float(stamps[a]))
        if frame_pose is not None:
            self._shrink.geometry = self._geo
        self._deaths()

    def _lip_evidence(self, activity) -> np.ndarray:
        """(T, K) lip log-likelihood ratio of the tracks for T audio frames of mean
        activity weights ``activity`` (T,): ``lip_gain`` x the track's ``lip_llr``
        (dropped to 0 once no image has brought known lip evidence for ``lip_timeout``:
        out of view, turned away, lost), its part for speaking scaled by the frame's
        activity (moving lips while nobody is heard are not speech)."""
        c = self.config
        tr = self._tracks
        stale = (self.time - tr.lip_time) > c.lip_timeout
        tr.lip_llr = np.where(stale, 0.0, tr.lip_llr)
        lip = tr.lip_llr[None, :]
        if c.lip_speed_scale > 0.0:  # a walking face's lips are read less reliably
            speed = np.hypot(tr.mean[:, 3], tr.mean[:, 5])
            lip = lip / (1.0 + (speed / c.lip_speed_scale) ** 2)[None, :]
        if c.lip_gain <= 0.0:
            return np.zeros((len(activity), len(tr)))
        return c.lip_gain * np.where(lip > 0.0, np.asarray(activity)[:, None] * lip, lip)

    def _tf_presence(self, profile, frame_pose=None) -> np.ndarray:
        """(T, K) speaking evidence of the tracks from T frames' ITD profiles, at their
        predicted ITDs and the current speaking probabilities
        (:func:`.inference.tf_presence_terms`); ``frame_pose``: each frame's camera pose
        (R (T, 3, 3), t (T, 3)) or None (the tracker's)."""
        tr = self._tracks
        grid = itd_grid(self.geometry.max_itd, profile.shape[1])
        if frame_pose is None:
            G, J = self.itd_model(tr.mean[:, :3])
            var = np.einsum("ki,kij,kj->k", J, tr.cov[:, :3, :3], J)
        else:
            G, J = self._frame_itd_model(*frame_pose)(tr.mean[:, :3])
            var = np.einsum("fki,kij,fkj->fk", J, tr.cov[:, :3, :3], J)
        eps = self.config.speaking_silent_rate
        rate = np.repeat((eps + (1.0 - eps) * tr.speaking)[None, :], len(profile), axis=0)
        return tf_presence_terms(profile, grid, G, var, rate, self.config)

    def _frame_poses(self, stamps, starts, ends) -> tuple[np.ndarray, np.ndarray]:
        """The camera pose at each audio row's stamp (one lookup per frame: ``starts`` /
        ``ends`` delimit the rows of equal stamps): rotations (N, 3, 3), translations
        (N, 3)."""
        many = None if self._poses_many is None else self._poses_many(stamps[starts])
        if many is not None:
            return np.repeat(many[0], ends - starts, axis=0), np.repeat(many[1], ends - starts,
                                                                       axis=0)
        R = np.empty((len(stamps), 3, 3))
        t = np.empty((len(stamps), 3))
        for a, b in zip(starts, ends):
            pose = self.pose_source(float(stamps[a]))
            R[a:b], t[a:b] = pose.R, pose.t
        return R, t

    def _update_audio_batch(self, frames: AudioFrames, poses=None) -> None:
        """Audio frames in time order (one or more stamps) in one variational update at
        the last one's stamp (``audio_batch_span``); frames too late are dropped and
        counted, slightly late ones happen at the tracker's time, as in update_audio.
        ``poses``: the camera pose at each row's own stamp, (R (N, 3, 3), t (N, 3)), when
        tracking in a fixed frame (each frame's ITDs are modelled with the head's
        geometry at its time)."""
        if np.any(np.isinf(frames.itd)):
            raise TrackerInputError("ITDs must be finite (NaN marks a frame without ITD)")
        if not self.config.audio_enabled or not len(frames):
            return
        before = -np.inf if self.time is None else self.time
        late = frames.stamp < before - self.config.max_lateness
        if np.any(late):
            self.stats["late_audio"] += len(np.unique(frames.stamp[late]))
            frames = frames.select(~late)
            if poses is not None:
                poses = (poses[0][~late], poses[1][~late])
            if not len(frames):
                return
        self._advance(float(frames.stamp[-1]), "late_audio")
        self.stats["audio_frames"] += len(np.unique(frames.stamp))
        self._audio_update(np.maximum(frames.stamp, before), frames.itd, frames.weight,
                           frames.profile, frames.activity, poses)

    def report(self, stamp: float | None = None) -> TrackerOutput:
        """The confirmed tracks, predicted to ``stamp`` (default: the tracker clock) without
        changing the state; also returns (and forgets) the identities that ended.

        Unless ``report_unseen_silent``, a track out of view, without visual support for
        ``visual_timeout`` and silent is left out (its position is a guess); it coasts
        unreported, to keep the identity if the person comes back."""
        t = self.time if stamp is None else float(stamp)
        tr = self._tracks
        sel = tr.confirmed.copy()
        if not self.config.report_unseen_silent and t is not None and len(sel):
            hidden = ((t - tr.last_visual > self.config.visual_timeout)
                      & (tr.speaking < 0.5) & ~self._in_view(tr.mean[:, :3]))
            sel &= ~hidden
        shown = tr.select(sel)
        mu, cov = shown.mean, shown.cov
        if t is not None and self.time is not None and t > self.time and np.any(sel):
            D, Q = self._model(t - self.time, shown)
            mu = np.einsum("kij,kj->ki", D, mu)
            cov = D @ cov @ np.swapaxes(D, 1, 2) + Q
        ended = np.asarray(self._ended, dtype=np.int64)
        self._ended = []
        audio_only = (t - shown.last_visual > self.config.visual_timeout
                      if t is not None else np.zeros(int(sel.sum()), dtype=bool))
        return TrackerOutput(
            stamp=float("nan") if t is None else float(t), ids=shown.ids,
            position=mu[:, :3].copy(), covariance=cov[:, :3, :3].copy(),
            velocity=mu[:, 3:].copy(), existence=1.0 / (1.0 + np.exp(-shown.logodds)),
            speaking=shown.speaking, audio_only=np.asarray(audio_only, dtype=bool),
            ended=ended)

    # --------------------------------------------------------------- steps
    def _advance(self, stamp: float, late_key: str) -> float | None:
        """Predict to ``stamp``; None (and count) when the input is too late."""
        if self.time is None:
            self.time = stamp
            self._set_pose(stamp)
            return stamp
        if stamp < self.time - self.config.max_lateness:
            self.stats[late_key] += 1
            return None
        if stamp > self.time:
            self._set_pose(stamp)
            self._predict(stamp)
        return self.time

    def _model(self, dt: float, tracks: TrackState):
        """Transition and process noise of ``tracks`` over ``dt`` s (damped when the track
        has had no visual support for ``visual_timeout``)."""
        c = self.config
        supported = (self.time - tracks.last_visual) <= c.visual_timeout
        damping = np.where(supported, c.velocity_damping, c.unsupported_velocity_damping)
        return constant_velocity_model(
            dt, damping, tracks.noise_scale[:, None] * self._q_axes[None, :])

    def _predict(self, t: float) -> None:
        dt = t - self.time
        tr = self._tracks
        if len(tr):
            D, Q = self._model(dt, tr)
            tr.mean = np.einsum("kij,kj->ki", D, tr.mean)
            tr.cov = symmetrise(D @ tr.cov @ np.swapaxes(D, 1, 2) + Q)
            self._cap_covariance()
            unseen = ~self._in_view(tr.mean[:, :3])
            decay = (self.config.unseen_existence_decay if self._pose is None
                     else self.config.fixed_unseen_existence_decay)
            tr.logodds = tr.logodds - decay * dt * unseen
        self.time = t
        self._anchor()

    def _cap_covariance(self) -> None:
        cap_covariance(self._tracks.cov, self.config.max_position_std,
                       self.config.max_speed_std)

    def _in_view(self, p: np.ndarray) -> np.ndarray:
        """Boolean (N,): points (N, 3) inside the camera view and depth range."""
        if self._pose is not None:
            p = self._pose.apply_inverse(p)
        return in_view(p, self.camera, self.config.min_depth, self.config.max_depth)

    def _in_camera_view(self, p: np.ndarray) -> np.ndarray:
        return in_view(p, self.camera, self.config.min_depth, self.config.max_depth)

    def _unsupported(self) -> np.ndarray:
        """Boolean (K,): tracks without visual support for ``visual_timeout``."""
        return (self.time - self._tracks.last_visual) > self.config.visual_timeout

    def _unseen_out_of_view(self) -> np.ndarray:
        """Boolean (K,): tracks seen before, without visual support for ``visual_timeout``,
        predicted out of view and still within ``reentry_sigma`` of where they were last
        seen (not moved by the ITDs: a heard track's place is a guess).  Such a person is
        taken to be where they were last seen: their visual association uses the
        covariance of their last visual support (not the one grown while coasting) and
        re-entry does not give them a new track (a detection in view near such a track is
        a new person; issue 21)."""
        tr = self._tracks
        still = np.linalg.norm(tr.mean[:, :3] - tr.visual_mean[:, :3], axis=1) \
            <= max(self.config.reentry_sigma, 0.0)
        return (self._unsupported() & np.isfinite(tr.last_visual) & still
                & ~self._in_view(tr.mean[:, :3]))

    def _variational(self, xyz, R, g, wn, visual_weight=None, anchor: bool = True,
                     frame=None, frame_llr=None, itd_model=None):
        """VB iterations at the current time (:func:`.inference.variational_update`);
        updates the track posteriors (then anchors the tracks without visual support
        unless ``anchor`` is False) and returns the responsibilities alpha, beta (with
        ITDs also the speaking posteriors per audio frame and the direct-path part of
        beta).  ``itd_model``: per-ITD geometry (:meth:`_frame_itd_model`; default
        :meth:`itd_model`)."""
        tr = self._tracks
        mu, cov, alpha, beta, iterations, q, direct = variational_update(
            tr.mean, tr.cov, xyz, R, g, wn, speaking=tr.speaking, logodds=tr.logodds,
            visual_weight=visual_weight, unsupported=self._unsupported(),
            in_view=self._in_view, itd_model=itd_model or self.itd_model,
            config=self.config,
            frame=frame, frame_llr=frame_llr,
            frozen=self._unseen_out_of_view() if xyz is not None and len(tr) else None,
            seen_cov=tr.visual_cov[:, :3, :3])
        if not len(tr):
            return (alpha, beta) if g is None else (alpha, beta, None, None)
        self.stats["vb_iterations"] += iterations
        tr.mean, tr.cov = mu, cov
        self._cap_covariance()
        if anchor:
            self._anchor()
        return (alpha, beta) if g is None else (alpha, beta, q, direct)

    def _visual_bookkeeping(self, t, dt_img, alpha, w, lip=None) -> None:
        """Existence, confirmation, visual support, lip evidence (and the process-noise
        M-step) after the E-S step of an image frame."""
        c = self.config
        tr = self._tracks
        k = len(tr)
        if k == 0:
            return
        wn = np.minimum(w / c.visual_full_weight, 1.0)
        support = np.minimum(np.sum(alpha[:, 1:] * wn[:, None], axis=0), 1.0) if len(w) \
            else np.zeros(k)
        in_view_now = self._in_view(tr.mean[:, :3])
        delta = np.where(in_view_now, support * c.existence_hit
                         - (1.0 - support) * c.existence_decay * dt_img,
                         support * c.existence_hit)
        tr.logodds = np.minimum(tr.logodds + delta, self._logit_max)
        tr.confirmed |= tr.logodds >= self._logit_confirm
        seen = support >= 0.5
        if c.estimate_process_noise:
            process_noise_m_step(tr, t, seen, self._q_axes, c)
        if lip is not None and len(w):  # tracks this image explains: their lip evidence
            known = (lip != 0.0).astype(float)  # 0: unknown (no mesh, NaN, lip cue off)
            share = alpha[:, 1:].T @ known
            fresh = share >= 0.25
            tr.lip_llr = np.where(fresh, alpha[:, 1:].T @ lip, tr.lip_llr)
            tr.lip_time = np.where(fresh, t, tr.lip_time)
        tr.last_visual = np.where(seen, t, tr.last_visual)
        tr.visual_mean = np.where(seen[:, None], tr.mean, tr.visual_mean)
        tr.visual_cov = np.where(seen[:, None, None], tr.cov, tr.visual_cov)
        tr.visual_time = np.where(seen, t, tr.visual_time)
        self._set_reference(np.flatnonzero(seen))

    # ----------------------------------------------------------- track life
    def _new_track(self, mu, cov, t, existence, visual: bool, speaking: float) -> None:
        lo = min(logit(existence), self._logit_max)
        k = self._tracks.add(mu, cov, self._next_id, lo, speaking, lo >= self._logit_confirm,
                             t if visual else -np.inf, t if visual else np.nan)
        self._next_id += 1
        self._set_reference(np.array([k]))

    def _start(self, birth: Birth, t: float) -> None:
        self._new_track(birth.mean, birth.cov, t, birth.existence, birth.visual,
                        birth.speaking)
        self.stats[birth.kind] += 1

    def _set_reference(self, idx) -> None:
        """Remember range and around-axis direction of tracks ``idx`` (for anchoring)."""
        tr = self._tracks
        geo = self._geo
        for k in idx:
            tr.ref_range[k], tr.ref_direction[k] = anchor_reference(tr.mean[k, :3], geo)
            if self._pose is not None:
                # the full direction from the microphone centre: the axis turns with the
                # head, the around-axis direction is taken about the axis of each moment
                d = tr.mean[k, :3] - geo.centre
                n = np.linalg.norm(d)
                if n > 1e-9:
                    tr.ref_direction[k] = d / n

    def _anchor(self) -> None:
        """Put tracks without visual support back on their reference range and direction
        around the microphone axis, keeping their angle to the axis (the ITD cone): an ITD
        observes only that angle, range and elevation would random-walk."""
        tr = self._tracks
        if not len(tr):
            return
        geo = self._geo
        for k in np.flatnonzero(self._unsupported()):
            ref = tr.ref_direction[k]
            if self._pose is not None:  # the axis turned with the head: around it again
                # (ref: the full direction; its part across the axis of this moment)
                ref = ref - (ref @ geo.axis) * geo.axis
                n = np.linalg.norm(ref)
                ref = ref / n if n > 1e-9 else geo.forward
            tr.mean[k, :3] = anchored_position(tr.mean[k, :3], tr.ref_range[k], ref, geo)

    def _deaths(self) -> None:
        tr = self._tracks
        dead = tr.logodds < self._logit_death
        if np.any(dead):
            self._ended.extend(int(i) for i in tr.ids[dead & tr.confirmed])
            self.stats["deaths"] += int(dead.sum())
            tr.remove(dead)

    def _merge(self, alpha) -> None:
        due, self._close_since = due_merges(self._tracks, alpha, self._close_since,
                                            self.time, self.config)
        if not due:
            return
        merged, ended = merge_duplicates(self._tracks, due)
        self._ended.extend(ended)
        self.stats["merges"] += int(merged.sum())
        self._tracks.remove(merged)

    def _births(self, t, xyz, cov, w, alpha) -> None:
        c = self.config
        # in a fixed frame, chains the head turned away from are held (birth_unseen_hold)
        complete, single = self._visual_births.update(
            t, xyz, cov, w, alpha, self._tracks.mean[:, :3],
            in_view=self._in_view if self._pose is not None else None)
        # before this frame's births (all visual); not the tracks out of view (issue 21)
        unseen = self._unsupported() & ~self._unseen_out_of_view()
        for chain in complete:
            if near_a_track(chain.mu[:3], self._tracks.mean[:, :3], c.merge_distance):
                continue  # same head as a track (possibly born this frame)
            if not self._reenter(chain.mu, chain.cov, t, unseen):
                self._new_track(chain.mu.copy(), chain.cov.copy(), t, c.birth_existence,
                                True, c.speaking_entry)
                self.stats["births_visual"] += 1
        for mu, P in single:
            if not self._reenter(mu, P, t, unseen):
                self._new_track(mu, P, t, c.birth_existence, True, c.speaking_entry)
                self.stats["births_visual"] += 1

    def _end_heard_duplicates(self, t: float, heard_only) -> None:
        """A track heard only (never seen) that this frame saw for the first time -- by
        association or by re-entry -- takes the voice: the other heard-only tracks predicted
        in view within its re-entry gate (:func:`.births.reentry_candidates`) are the same
        voice heard twice and end with the frame's deaths.  (E.g. a talker heard out of
        view while the head turns: the ITDs of a lateral talker read towards the front, so
        the first audio-only track drifts, a second is born when the ITDs leave it, and
        the face that appears continues one of them; the other would linger in view beside
        it.)  ``heard_only``: boolean (K,) of the tracks before the frame's births."""
        tr = self._tracks
        n = len(heard_only)
        if n < 2:
            return
        seen_now = heard_only & (tr.last_visual[:n] >= t)
        if not np.any(seen_now):
            return
        rest = np.zeros(len(tr), dtype=bool)
        rest[:n] = heard_only & ~seen_now & np.isfinite(tr.logodds[:n])
        rest &= self._in_view(tr.mean[:, :3])
        c = self.config
        for k in np.flatnonzero(seen_now):
            rows = reentry_candidates(tr.mean[k, :3], tr.cov[k, :3, :3], tr.mean[:, :3],
                                      tr.cov[:, :3, :3], rest, c.reentry_sigma,
                                      c.visual_gate)
            for j in rows:
                tr.speaking[k] = max(tr.speaking[k], tr.speaking[j])
                tr.logodds[j] = -np.inf
                rest[j] = False
                self.stats["heard_duplicates"] += 1

    def _reenter(self, mu, P, t, unseen) -> bool:
        """A visual birth (mean (6,), covariance (6, 6)) near a track without visual
        support (``unseen`` (K,), rows of the tracks before the frame's births) continues
        that track (:func:`.births.reentry_match`): it takes the birth's state and visual
        support, keeps its identity, existence and speaking status.  True if it did."""
        c = self.config
        tr = self._tracks
        eligible = np.zeros(len(tr), dtype=bool)
        eligible[:len(unseen)] = unseen
        k = reentry_match(mu[:3], P[:3, :3], tr.mean[:, :3], tr.cov[:, :3, :3], eligible,
                          c.reentry_sigma, c.visual_gate)
        if k < 0:
            return False
        unseen[k] = False  # one birth per track
        tr.mean[k], tr.cov[k] = mu, P
        tr.logodds[k] = max(tr.logodds[k], min(logit(c.birth_existence), self._logit_max))
        tr.confirmed[k] |= tr.logodds[k] >= self._logit_confirm
        tr.last_visual[k] = tr.visual_time[k] = t
        tr.visual_mean[k], tr.visual_cov[k] = mu, P
        self._set_reference(np.array([k]))
        self.stats["reentries"] += 1
        return True
