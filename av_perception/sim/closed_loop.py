"""The closed loop: a simulated head that turns towards the package's attention target.

``simulate --head-motion attention`` (docs/simulation.md, "Closed loop"): the scene is
rendered ``audio.segment`` s at a time.  At each step the gaze controller
(:class:`~av_perception.core.gaze.GazeController`: ``head_motion.max_speed``,
``reaction_delay``, +-``pan_amplitude`` / +-``tilt_amplitude``) sets the head's angles
up to the end of the step; the audio segment of every source is rendered with the pose of
its time (:class:`~av_perception.sim.audio.AudioParts`), the finished audio chunks, the
/tf of the head and the video frames of the step are written and fed, in time order, to
the package's own pipeline (audio front-end, vision, :class:`~av_perception.pipeline.
TrackingPipeline` tracking in ``head_motion.fixed_frame`` from that /tf, attention); each
tracker output's attention target (moved into the neck frame) is what the controller
sees.  /tf in the bag is the pose that was used; the ground truth is in the fixed frame.

The mix's levels (SNR reference, distractor gains, final scale) cannot wait for the whole
scene: they are those of the same scene rendered with the head still.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import scipy.signal

from ..core.gaze import GazeController, GazeLimits
from .audio import AudioParts, _add_segment, _child, _late_reference, render_audio
from .bag import SimBagWriter
from .simulator import SimulationResult, _frame_ns, _Null, _prepare_outdir, ground_truth_records
from .video import VideoRenderer

__all__ = ["SteppedAudio", "simulate_closed_loop", "gaze_limits"]


def gaze_limits(spec) -> GazeLimits:
    """The gaze controller's limits of a HeadMotionSpec."""
    return GazeLimits(max_speed=spec.max_speed, reaction_delay=spec.reaction_delay,
                      pan_limit=spec.pan_amplitude, tilt_limit=spec.tilt_amplitude)


class SteppedAudio:
    """The scene's audio rendered a segment at a time (module docstring).

    :meth:`advance` renders every source's segments up to a time (the head's pose must be
    known up to it); :attr:`ready` samples are then final; :meth:`samples` mixes a range
    with ``levels`` (default: those of the still-head rendering).  Rendering every segment
    of a scripted head gives :func:`render_audio`'s samples exactly (test_closed_loop).
    """

    def __init__(self, scene, speech_source=None, levels=None, lookahead: float = 0.0):
        self.scene = scene
        #: s the head's pose is known past the time of :meth:`advance` (a scripted head:
        #: inf); a moving source's late reverberation is taken from its point when it
        #: first sounds, or at the newest known pose when that is earlier
        self.lookahead = float(lookahead)
        self.parts = AudioParts(scene, speech_source)
        self.fs, self.n, self.seg = self.parts.fs, self.parts.n, self.parts.segment
        self.win = scipy.signal.get_window("hann", 2 * self.seg, fftbins=True)
        self.sources = ([(d, self.parts.mouth(p)) for p, d in
                         zip(scene.people, self.parts.dry)]
                        + [(x, self.parts.where(d)) for d, x in
                           zip(scene.distractors, self.parts.distractors)])
        self.images = [np.zeros((self.n, 2)) for _ in self.sources]
        self.refs: list = [None] * len(self.sources)
        self.next_segment = 0
        self.last_segment = self.n // self.seg + 1
        if levels is None:
            still = dataclasses.replace(scene.head_motion, mode="still")
            levels = render_audio(type(scene).from_dict({**scene.to_dict(), "head_motion":
                                                         dataclasses.asdict(still)}),
                                  speech_source).levels
        self.levels = levels

    @property
    def ready(self) -> int:
        """Samples that no later segment changes."""
        if self.next_segment > self.last_segment:
            return self.n
        # the next segment reaches back by the fractional-delay filter's half length
        return min(max((self.next_segment - 1) * self.seg - self.parts.model.offset, 0),
                   self.n)

    def advance(self, t: float) -> None:
        """Render the segments whose pose time k * segment / fs is <= t (s)."""
        model = self.parts.model
        while (self.next_segment <= self.last_segment
               and self.next_segment * self.seg <= t * self.fs + 1e-6):
            k = self.next_segment
            for i, (dry, where) in enumerate(self.sources):
                if not np.any(dry):
                    continue
                if self.refs[i] is None:
                    lo = max(k * self.seg - self.seg, 0)
                    if not np.any(dry[:min(lo + 2 * self.seg, self.n)]):
                        continue  # silent so far: no segment, no reference yet
                    self.refs[i] = _late_reference(model, dry, where,
                                                   horizon=t + self.lookahead)
                _add_segment(model, dry, where, k, self.seg, self.refs[i], self.win,
                             self.images[i])
            self.next_segment += 1

    def samples(self, a: int, b: int) -> np.ndarray:
        """The final mix of samples [a, b) (float32 (b - a, 2)); b <= :attr:`ready`."""
        n_people = len(self.scene.people)
        speech = np.zeros((b - a, 2))
        for img in self.images[:n_people]:
            speech += img[a:b]
        distractors = [img[a:b] for img in self.images[n_people:]]
        return self.parts.mix(self.levels, speech, distractors, 0, b - a, offset=a)


class _Loop:
    """The package's pipeline fed in time order (as ``process`` does a bag)."""

    def __init__(self, scene, configs):
        from ..core.attention import AttentionConfig
        from ..core.config import AudioFrontEndConfig, MicArrayConfig
        from ..core.detection import DetectionConfig
        from ..core.head_calibration import HeadCalibrationConfig
        from ..core.stereo import StereoCalibration
        from ..core.tracking import TrackerConfig
        from ..core.vision import VisionConfig
        from ..pipeline import AudioPipeline, TrackingConfig, TrackingPipeline, VisionPipeline

        c = dict(configs or {})
        mics = c.get(MicArrayConfig, scene.robot.mics)
        tracking = c.get(TrackingConfig, TrackingConfig())
        tracking = dataclasses.replace(tracking, fixed_frame=scene.head_motion.fixed_frame)
        self.audio = AudioPipeline(c.get(AudioFrontEndConfig), mics)
        self.vision = VisionPipeline(c.get(VisionConfig), c.get(DetectionConfig))
        self.tracking = TrackingPipeline(c.get(TrackerConfig), mics, scene.robot.camera,
                                         tracking, c.get(HeadCalibrationConfig),
                                         c.get(AudioFrontEndConfig),
                                         c.get(AttentionConfig, AttentionConfig()))
        self.calibration = StereoCalibration.from_config(scene.robot.camera)
        self.frame_id = scene.robot.camera.frame_id
        self.pending: list = []  # (stamp, observations) waiting for their audio
        self.outputs = 0
        self.errors: list = []

    def add_audio(self, stamp: float, samples, rate: int) -> None:
        from ..core.audio import AudioInputError

        try:
            feats = self.audio.process_audio(samples, rate, stamp)
        except AudioInputError as exc:
            self.errors.append(f"audio at {stamp:.3f} s: {exc}")
            return
        if len(feats):
            self.tracking.add_audio_features(feats)

    def add_frame(self, stamp: float, left, right) -> None:
        pose = self.tracking.poses.camera_pose(stamp)
        self.vision.set_camera_rotation(None if pose is None else pose.R)
        self.pending.append((stamp, self.vision.process_pair(left, right, stamp,
                                                             self.calibration)))

    def step(self, final: bool = False) -> list:
        """Tracker steps of the frames whose audio has arrived; their outputs."""
        outs = []
        while self.pending and (final or self.tracking.audio_ready(self.pending[0][0])):
            stamp, obs = self.pending.pop(0)
            out = self.tracking.step(stamp, obs.xyz, obs.covariance, obs.weight,
                                     self.frame_id)
            if out is None:
                continue
            self.vision.update_tracks(self.tracking.to_camera(out))
            self.outputs += 1
            outs.append(out)
        return outs


def simulate_closed_loop(scene, outdir, *, storage: str = "sqlite3", compressed: bool = False,
                         overwrite: bool = False, write_bag: bool = True, speech_source=None,
                         configs: dict | None = None, progress=None) -> SimulationResult:
    """Render ``scene`` (head_motion.mode 'attention') in a closed loop with the pipeline
    (module docstring); the outputs of :func:`~av_perception.sim.simulator.simulate`.
    ``configs``: {config class: instance} of the pipeline (defaults for the rest)."""
    if scene.head_motion.mode != "attention":
        raise ValueError("the closed loop needs head_motion.mode 'attention', got "
                         f"{scene.head_motion.mode!r}")
    outdir = Path(outdir)
    if storage not in ("sqlite3", "mcap"):
        raise ValueError(f"bag format must be 'sqlite3' or 'mcap', got {storage!r}")
    _prepare_outdir(outdir, overwrite)
    say = progress or (lambda msg: None)
    scene.save(outdir / "scene.json")
    t_start = time.perf_counter()
    say("rendering the still-head audio levels")
    audio = SteppedAudio(scene, speech_source)
    head = scene.head()
    gaze = GazeController(gaze_limits(scene.head_motion))
    loop = _Loop(scene, configs)
    cam = scene.robot.camera
    epoch_ns = int(round(scene.epoch * 1e9))
    fs, chunk, n = audio.fs, scene.audio.chunk, audio.n
    renderer = VideoRenderer(scene, dry={p.id: d for p, d in zip(scene.people,
                                                                    audio.parts.dry)})
    rng = _child(scene.seed, 5)
    times = scene.frame_times()
    writer = (SimBagWriter(outdir / "bag", cam, storage, compressed, scene.video.jpeg_quality,
                           tf=True) if write_bag else None)
    static = head.static_transforms(cam.frame_id)
    for parent, child, tr, q in static:
        loop.tracking.add_transform(parent, child, scene.epoch, tr, q, static=True)
    wav = np.zeros((n, 2), np.float32)
    step = audio.seg / fs
    tf_period = 1.0 / scene.head_motion.tf_rate
    state = {"grid": 0, "tf": 0, "chunk": 0, "frame": 0, "visible": [], "targets": 0}
    say(f"closed loop: {len(times)} frames in steps of {step:g} s")
    with (writer if writer is not None else _Null()), \
            open(outdir / "ground_truth.jsonl", "w") as gt:
        if writer is not None:
            writer.write_tf(epoch_ns, static, static=True)
        j = 0
        while state["frame"] < len(times) or state["chunk"] * chunk < n:
            t_end = (j + 1) * step
            # the head up to the end of the step (10 ms grid)
            k1 = min(int(np.floor(t_end / head.DT + 1e-9)), len(head.t) - 1)
            if k1 >= state["grid"]:
                ks = np.arange(state["grid"], k1 + 1)
                pt = np.array([gaze.update(float(head.t[k])) for k in ks])
                head.set_angles(state["grid"], pt[:, 0], pt[:, 1])
                state["grid"] = k1 + 1
            # /tf up to the end of the step
            while state["tf"] * tf_period <= min(t_end, scene.duration) + 1e-9:
                s = state["tf"] * tf_period
                tr, q = head.head_transform(s)
                ns = epoch_ns + int(round(s * 1e9))
                if writer is not None:
                    writer.write_tf(ns, [("neck", "head", tr, q)])
                loop.tracking.add_transform("neck", "head", ns / 1e9, tr, q)
                state["tf"] += 1
            # the audio segments with their poses, the finished chunks
            audio.advance(t_end)
            while state["chunk"] * chunk < n and min((state["chunk"] + 1) * chunk,
                                                      n) <= audio.ready:
                a = state["chunk"] * chunk
                b = min(a + chunk, n)
                x = audio.samples(a, b)
                wav[a:b] = x
                ns = epoch_ns + int(round(a * 1e9 / fs))
                if writer is not None:
                    writer.write_audio(ns, x, fs)
                loop.add_audio(ns / 1e9, x, fs)
                state["chunk"] += 1
            # the video frames of the step
            while state["frame"] < len(times) and times[state["frame"]] < t_end - 1e-9:
                k = state["frame"]
                t = float(times[k])
                frame = renderer.render(t, rng)
                rec = ground_truth_records(scene, k, t, frame.views)
                state["visible"].extend(p["visible"] for p in rec["people"])
                gt.write(json.dumps(rec) + "\n")
                if writer is not None:
                    writer.write_frame(_frame_ns(scene, k), frame.left, frame.right)
                loop.add_frame(_frame_ns(scene, k) / 1e9, frame.left, frame.right)
                state["frame"] += 1
            final = state["frame"] >= len(times) and state["chunk"] * chunk >= n
            for out in loop.step(final=final):
                target = out.attention
                if target is not None and target.valid and loop.tracking.in_fixed_frame:
                    state["targets"] += 1
                    gaze.see(out.stamp - scene.epoch,
                             head.fixed_to_rest(np.asarray(target.position))[0])
                else:
                    gaze.see(out.stamp - scene.epoch, None)
            j += 1
    scipy.io.wavfile.write(outdir / "audio.wav", fs, wav)
    rt60 = None
    if scene.people and audio.parts.model.max_order > 0:
        rt60 = audio.parts.model.measured_rt60(
            scene.people[0].trajectory().position([0.0])[0] + np.asarray(scene.mouth_offset))
    visible = state["visible"]
    return SimulationResult(
        outdir=outdir, bag=outdir / "bag" if write_bag else None, n_frames=len(times),
        n_audio_chunks=state["chunk"], timings={"closed loop": time.perf_counter() - t_start},
        rt60_measured=rt60, n_rirs=audio.parts.model.count,
        visible_fraction=float(np.mean(visible)) if visible else 0.0,
        pipeline_steps=loop.outputs, attention_steps=state["targets"],
        attention_switches=loop.tracking.attention.switches, errors=loop.errors)
