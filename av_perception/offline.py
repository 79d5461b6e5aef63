"""The full pipeline over a rosbag2, as fast as possible (``av-perception process``).

Audio features, visual observations and the tracker run in time order: the
audio of the bag is turned into per-frame features first (the front-end is
streaming and ~500x real time, so this costs little), then every stereo pair
is processed and the tracker is advanced to its stamp with exactly the audio
frames recorded up to that stamp (through the nodes' own
:class:`~av_perception.pipeline.TrackingPipeline`, with the fusion's events and the head
calibration when they are enabled).  The result is the same as feeding the
nodes in real time, without waiting for the clock.  One track-file row is
written per confirmed track per image frame, as the frames are processed, so
an error part-way keeps everything computed before it.
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.attention import AttentionConfig
from .core.audio import BinauralFeatures
from .core.av_clustering import AVClusteringConfig
from .core.body_cue import BodyCueConfig
from .core.config import AudioFrontEndConfig, MicArrayConfig, StereoCameraConfig
from .core.detection import DetectionConfig
from .core.head_calibration import HeadCalibrationConfig
from .core.lip_activity import LipConfig
from .core.tracking import EventObservations, TrackerConfig
from .core.vision import VisionConfig
from .core.wdem import WdemConfig
from .interrupt import deferred
from .io.track_files import AttentionFileWriter, TrackFileWriter
from .io.track_output import TrackOutputConfig
from .long_lived import long_lived_frozen
from .pipeline import (
    AUDIO_ONLY_PERIOD,
    AudioPipeline,
    FusionInputConfig,
    FusionPipeline,
    TrackingConfig,
    TrackingPipeline,
    VisionPipeline,
)

__all__ = ["ProcessResult", "PROCESS_STAGES", "process_bag", "fusion_events", "BagVoices",
           "bag_voices"]

#: stage configs the offline pipeline reads from a params file
PROCESS_STAGES = (AudioFrontEndConfig, MicArrayConfig, VisionConfig, DetectionConfig, LipConfig,
                  BodyCueConfig, TrackerConfig, StereoCameraConfig, TrackingConfig,
                  AVClusteringConfig, WdemConfig, FusionInputConfig, HeadCalibrationConfig,
                  TrackOutputConfig, AttentionConfig)


@dataclass
class ProcessResult:
    frames: int = 0
    rows: int = 0
    track_ids: set = field(default_factory=set)
    audio_frames: int = 0
    bag_seconds: float = 0.0
    wall_seconds: float = 0.0
    errors: list = field(default_factory=list)
    outputs: list = field(default_factory=list)  # TrackerOutput per frame when kept
    features: BinauralFeatures | None = None  # the audio features of the processed span
    fusion_windows: int = 0  # with tracking.use_av_events
    audio_only_steps: int = 0  # tracker steps from the audio alone (camera frozen)
    resets: int = 0  # tracker restarts after a clock jump
    frame_id: str = ""  # frame of the track file ('' = the left camera's)
    calibrator: object = None  # the HeadCalibrator when head_calibration.enabled
    attention_rows: int = 0  # rows of the attention file
    attention_switches: int = 0  # attention target changes between two tracks
    audio_start: float | None = None  # stamp (s) of the first audio sample read
    audio_end: float | None = None  # stamp (s) just after the last audio sample read
    audio_rates: list = field(default_factory=list)  # the sample rates met, in order
    clipped_spans: list = field(default_factory=list)  # (start, end) s of clipped chunks
    smoothed_rows: int = 0  # track-file rows whose speaking value was smoothed
    # with tracking.speaking_smoothing_lag > 0: the SpeakingRecord of the run and the
    # record row of each track-file row (-1: none), to smooth at another lag
    speaking_record: object = None
    speaking_rows: np.ndarray | None = None

    @property
    def realtime_factor(self) -> float:
        return self.bag_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


def bag_audio_features(bag, configs, topic, start_abs, stop_abs, errors, span=None,
                       keep_spectra: bool = False,
                       rotation_at: Callable | None = None) -> BinauralFeatures:
    """Binaural features of the audio of a bag between two absolute stamps (s or None);
    problems are appended to ``errors`` (no audio topic is not an error unless ``topic``).
    ``span``: a ProcessResult whose audio_start / audio_end / audio_rates are filled;
    ``keep_spectra``: the features carry the front-end's STFT (``features.spec``);
    ``rotation_at``: the camera's rotation at a stamp (the head's turns, from /tf), see
    :meth:`AudioPipeline.run`."""
    from .core.audio import pcm_to_float
    from .io.audio_msgs import BagAudioSource
    from .io.audio_sources import CLIP_LEVEL, ClippingMonitor
    from .io.bag import BagError

    pipe = AudioPipeline(configs[AudioFrontEndConfig], configs[MicArrayConfig],
                         keep_spectra=keep_spectra)
    try:
        src = BagAudioSource(bag, topic, start=start_abs, stop=stop_abs)
    except BagError as exc:
        if topic:  # the user asked for this topic: that is an error
            raise
        errors.append(f"no audio used: {exc}")
        return BinauralFeatures.empty(pipe.front_end.n_bands)
    monitor = ClippingMonitor(src)

    def spanned(chunks):  # the audio's first stamp, end and rates, as read
        for chunk in chunks:
            if span is not None:
                if span.audio_start is None:
                    span.audio_start = float(chunk.stamp)
                rate = int(chunk.sample_rate)
                if not span.audio_rates or span.audio_rates[-1] != rate:
                    span.audio_rates.append(rate)
                span.audio_end = float(chunk.stamp) + len(chunk.samples) / rate
                if np.any(np.abs(pcm_to_float(chunk.samples)) >= CLIP_LEVEL):
                    span.clipped_spans.append((float(chunk.stamp), span.audio_end))
            yield chunk

    result = pipe.run(spanned(monitor), rotation_at)
    if monitor.samples and not len(result.features):
        errors.append(f"no audio features: all {len(result.errors)} audio chunk(s) of {src.topic} "
                      "were rejected (see below); tracking uses the images alone")
    if monitor.warning():
        errors.append(monitor.warning())
    errors.extend(result.errors + src.errors)
    return result.features


def fusion_events(fusion: FusionPipeline, stamp: float, obs, audio) -> EventObservations | None:
    """Feed one image's observations (and the audio frames up to its stamp) to the
    fusion; the events of the newest window it completed (stamped with its end), or None."""
    if audio is not None and len(audio):
        fusion.add_audio_features(audio)
    fusion.add_visual(stamp, obs.xyz, obs.weight, obs.variances)
    windows = fusion.process()
    if not windows:
        return None
    events = EventObservations.from_events(windows[-1].events)
    events.stamp = windows[-1].stamp
    return events


TF_TYPE = "tf2_msgs/msg/TFMessage"


def bag_transforms(bag, errors) -> tuple[list, list]:
    """The transforms of a bag's TFMessage topics: (dynamic, static), each a list of
    (stamp s, parent, child, translation (3,), quaternion (4,)) sorted by stamp
    (static: /tf_static and any topic named *tf_static)."""
    from .io.bag import BagReader

    dynamic, static = [], []
    with BagReader(bag) as reader:
        topics = [t for t, ty in reader.topics.items() if ty == TF_TYPE]
        if not topics:
            return dynamic, static
        for m in reader.messages(topics):
            into = static if m.topic.rstrip("/").endswith("tf_static") else dynamic
            for tf in m.msg.transforms:
                tr, q = tf.transform.translation, tf.transform.rotation
                into.append((tf.header.stamp.sec + 1e-9 * tf.header.stamp.nanosec,
                             tf.header.frame_id, tf.child_frame_id, (tr.x, tr.y, tr.z),
                             (q.x, q.y, q.z, q.w)))
        errors.extend(reader.errors)
    dynamic.sort(key=lambda r: r[0])
    return dynamic, static


def audio_head_rotation(configs, tf_dynamic, tf_static, errors) -> Callable | None:
    """stamp -> the camera's rotation (3x3, camera -> ``tracking.fixed_frame``) from all
    of a bag's transforms, for the audio front-end's precedence memory (the head's turns);
    the camera frame is ``camera.frame_id``.  None (and a note in ``errors``) when the
    bag has no pose of that frame."""
    from .pipeline import HeadPoses

    poses = HeadPoses(configs[TrackingConfig])
    for r in tf_static:
        poses.add(r[1], r[2], r[0], r[3], r[4], static=True)
    for r in tf_dynamic:
        poses.add(r[1], r[2], r[0], r[3], r[4])
    poses.camera_frame = configs[StereoCameraConfig].frame_id.strip("/")
    stamps = [r[0] for r in tf_dynamic] or [0.0]
    if poses.rotation_at(stamps[0]) is None and poses.rotation_at(stamps[-1]) is None:
        errors.append(f"the audio front-end does not follow the head's turns: no pose of "
                      f"{poses.camera_frame!r} (camera.frame_id) in "
                      f"{poses.fixed_frame!r} in the bag's /tf")
        return None

    return poses.rotation_at


def process_bag(bag, output, configs: dict | None = None, *, start: float | None = None,
                duration: float | None = None, audio_topic: str | None = None,
                left_topic: str | None = None, right_topic: str | None = None,
                left_info: str | None = None, right_info: str | None = None,
                slop: float = 0.02, keep_outputs: bool = False, attention_output=None,
                on_frame: Callable | None = None,
                on_observations: Callable | None = None,
                progress: Callable[[float, float, int], None] | None = None,
                keep_spectra: bool = False) -> ProcessResult:
    """Run audio features, visual observations and the tracker over a bag.

    Parameters
    ----------
    bag : path of the rosbag2 directory
    output : path of the track file (CSV ``stamp,track_id,x,y,z,speaking``)
    configs : {config class: instance}; defaults for the missing ones
    start, duration : s from the bag's start, to process part of it
    keep_outputs : also return every TrackerOutput
    attention_output : path of the attention file (CSV ``stamp,track_id,x,y,z``, one row
        per tracker step; needs ``attention.enabled``), or None
    on_frame : called as on_frame(frame, output, header) after each tracker step, with the
        StereoFrame, the TrackerOutput and the left image's header (exact stamp, frame_id)
        -- how ``--output-bag`` writes its messages while the bag is processed
    on_observations : called as on_observations(observations) with each pair's
        VisualObservations (benchmarks, tools)
    progress : called as progress(done_s, total_s, rows) after each frame
    keep_spectra : the features in the result carry the front-end's STFT (``separate``)

    After each tracker step the tracks go back to the vision stage
    (:meth:`~av_perception.pipeline.VisionPipeline.update_tracks`): the detector of the
    next pairs also looks around their predicted heads (BlazeFace), as in the nodes.
    """
    from .io.bag import BagReader, check_time_window
    from .io.stereo_sources import BagStereoSource

    configs = dict(configs or {})
    for cls in PROCESS_STAGES:
        configs.setdefault(cls, cls())
    result = ProcessResult()
    t_wall = time.perf_counter()
    with BagReader(bag) as reader:
        check_time_window(reader, start, duration)
        bag_start = reader.start_time * 1e-9
        bag_end = reader.end_time * 1e-9
    start_abs = bag_start + (start or 0.0)
    stop_abs = bag_end if duration is None else min(bag_end, start_abs + duration)
    total = max(stop_abs - start_abs, 1e-9)
    tf_dynamic, tf_static = ([], [])
    rotation_at = None
    if configs[TrackingConfig].fixed_frame:  # the head's motion from /tf
        tf_dynamic, tf_static = bag_transforms(bag, result.errors)
        rotation_at = audio_head_rotation(configs, tf_dynamic, tf_static, result.errors)
    # margin for the front-end's frames that straddle the window edges
    feats = bag_audio_features(bag, configs, audio_topic, start_abs - 0.1, stop_abs + 0.1,
                               result.errors, span=result, keep_spectra=keep_spectra,
                               rotation_at=rotation_at)
    result.audio_frames = len(feats)
    result.features = feats
    vision = VisionPipeline(configs[VisionConfig], configs[DetectionConfig],
                            lips=configs[LipConfig], body=configs[BodyCueConfig])
    if vision.lip_warning:  # processing goes on without the lip cue
        result.errors.append(vision.lip_warning)
    # the live nodes' tracking stage: audio up to each image, events, head calibration
    tracking = TrackingPipeline(configs[TrackerConfig], configs[MicArrayConfig],
                                configs[StereoCameraConfig], configs[TrackingConfig],
                                configs[HeadCalibrationConfig], configs[AudioFrontEndConfig],
                                configs[AttentionConfig])
    result.calibrator = tracking.calibrator
    if configs[TrackingConfig].fixed_frame:  # the head's motion from /tf
        for r in tf_static:
            tracking.add_transform(r[1], r[2], r[0], r[3], r[4], static=True)
        if not tf_dynamic and not tf_static:
            result.errors.append(
                f"tracking.fixed_frame is {configs[TrackingConfig].fixed_frame!r} but the bag "
                "has no /tf: tracking in the camera frame")
    tf_done = 0
    tf_ahead = configs[TrackingConfig].tf_max_extrapolation  # as /tf arrives live
    fusion = None
    if configs[TrackingConfig].use_av_events:  # births from the fusion's events too
        fusion = FusionPipeline(configs[AVClusteringConfig], configs[WdemConfig],
                                configs[MicArrayConfig], configs[FusionInputConfig])
    audio_done = 0
    # the audio's timelines: a jump back of its stamps (a looped recording) starts the
    # next; the images' jump back moves the audio on to it (one timeline: the whole bag)
    jump = configs[TrackingConfig].time_jump_reset
    seg_ends = [*(np.flatnonzero(np.diff(feats.stamp) < -jump) + 1).tolist(), len(feats)]
    seg = 0
    prev_stamp = None

    def audio_upto(t: float) -> int:
        lo = audio_done if seg == 0 else max(audio_done, seg_ends[seg - 1])
        hi = seg_ends[seg]
        return lo + int(np.searchsorted(feats.stamp[lo:hi], t, side="right"))

    if attention_output is not None and not configs[AttentionConfig].enabled:
        raise ValueError("an attention file was asked for but attention.enabled is false: "
                         "set it true in the params file, or leave the attention file out")
    attention = None if attention_output is None else AttentionFileWriter(attention_output)

    # the speaking column smoothed when the bag is done (tracking.speaking_smoothing_lag):
    # the record row of every written row, to rewrite its speaking value
    lag = configs[TrackingConfig].speaking_smoothing_lag
    record = tracking.record_speaking() if lag > 0.0 else None
    record_rows: list = []

    def write(out) -> None:
        if record is not None:
            record_rows.append(record.last_rows(out.ids))
        result.rows += writer.write(out)
        result.track_ids.update(int(i) for i in out.ids)
        if attention is not None and out.attention is not None:
            result.attention_rows += attention.write(out.attention)

    with TrackFileWriter(output) as writer, attention or contextlib.nullcontext(), \
            long_lived_frozen(), BagStereoSource(
            bag, left_topic, right_topic, left_info, right_info, slop=slop, start=start,
            duration=duration) as frames:
        try:
            for frame in frames:
                stamp, left, right, calibration = frame
                while tf_done < len(tf_dynamic) and tf_dynamic[tf_done][0] <= stamp + tf_ahead:
                    r = tf_dynamic[tf_done]
                    tracking.add_transform(r[1], r[2], r[0], r[3], r[4])
                    tf_done += 1
                if tracking.poses.enabled:  # the detector follows the head's turning
                    tracking.set_camera_frame(frames.header.frame_id if frames.header else "")
                    pose = tracking.poses.camera_pose(stamp)
                    vision.set_camera_rotation(None if pose is None else pose.R)
                obs = vision.process_pair(left, right, stamp, calibration)
                if on_observations is not None:
                    on_observations(obs)
                if prev_stamp is not None and stamp < prev_stamp - jump \
                        and seg + 1 < len(seg_ends):
                    seg += 1  # the bag's time jumped back: the audio's next timeline
                    audio_done = seg_ends[seg - 1]
                timeout = configs[TrackingConfig].camera_timeout
                if prev_stamp is not None and prev_stamp < stamp - timeout:
                    # no image for a while (a frozen camera): audio-only steps in between
                    t = prev_stamp + timeout
                    while t < stamp:
                        upto = audio_upto(t)
                        if upto > audio_done:
                            tracking.add_audio_features(feats.slice(audio_done, upto))
                            audio_done = upto
                        out = tracking.step_audio_only()
                        if out is not None:
                            with deferred():
                                write(out)
                                result.audio_only_steps += 1
                        t += AUDIO_ONLY_PERIOD
                prev_stamp = stamp
                upto = audio_upto(stamp)
                audio = feats.slice(audio_done, upto) if upto > audio_done else None
                audio_done = upto
                if audio is not None:
                    tracking.add_audio_features(audio)
                if fusion is not None:
                    events = fusion_events(fusion, stamp, obs, audio)
                    if events is not None:
                        tracking.add_events(events.stamp, events)
                    result.fusion_windows = fusion.windows
                out = tracking.step(stamp, obs.xyz, obs.covariance, obs.weight,
                                    frames.header.frame_id if frames.header else "",
                                    obs.lip_llr)
                # the next pairs' detector looks around the heads (camera frame)
                vision.update_tracks(tracking.to_camera(out))
                for notice in tracking.pop_notices():
                    result.errors.append(f"frame at {stamp:.3f} s: {notice}")
                if out is None:  # not after the previous frame: dropped
                    result.errors.append(f"frame at {stamp:.3f} s is not after the previous "
                                         "one: dropped")
                    continue
                with deferred():  # a signal stops the run between frames, not inside one
                    write(out)
                    result.frames += 1
                    if keep_outputs:
                        result.outputs.append(out)
                    if on_frame is not None:
                        header = frames.header
                        if tracking.output_frame:  # the outputs are in the fixed frame
                            from types import SimpleNamespace
                            header = SimpleNamespace(stamp=header.stamp,
                                                     frame_id=tracking.output_frame)
                        on_frame(frame, out, header)
                if progress is not None:
                    progress(stamp - start_abs, total, result.rows)
        finally:
            result.resets = tracking.resets
            result.frame_id = tracking.output_frame
            result.attention_switches = tracking.attention.switches
            result.errors.extend(frames.errors)
            if getattr(frames, "truncated", False):
                result.errors.append("the bag is truncated or corrupt: every frame that could "
                                     "be read around the damage is in the track file")
    if record is not None:
        result.speaking_record = record
        result.speaking_rows = (np.concatenate(record_rows) if record_rows
                                else np.zeros(0, dtype=np.int64))
    if record is not None and result.rows:
        if writer.partial is None:  # a pipe or device: the rows are gone
            result.errors.append(f"{output} is not a regular file: its speaking column is "
                                 "the causal filter's (not smoothed)")
        else:
            with deferred():
                try:
                    smoothed = record.smooth(
                        lag, *configs[TrackingConfig].smoothing_transitions())
                    result.smoothed_rows = smooth_track_file(output, result.speaking_rows,
                                                             smoothed)
                except (ValueError, RuntimeError) as exc:  # the causal column stays
                    result.errors.append(f"speaking column not smoothed: {exc}")
    result.bag_seconds = total
    result.wall_seconds = time.perf_counter() - t_wall
    return result


def smooth_track_file(path, rows, smoothed) -> int:
    """Rewrite the speaking column of a track file written by :func:`process_bag` with
    the smoothed status: its data row n gets ``smoothed[rows[n]]`` (``rows[n]`` < 0: kept,
    a track no audio frame has updated yet).  Written beside it and renamed over it;
    returns the rows changed."""
    import csv
    import os

    path = Path(path)
    tmp = path.with_name(path.name + ".smoothing")
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    if len(table) - 1 != len(rows):
        raise RuntimeError(f"{path} has {len(table) - 1} rows, the run wrote {len(rows)}: "
                           "not smoothed")
    col = table[0].index("speaking")
    changed = 0
    for line, row in zip(table[1:], rows):
        if row >= 0:
            line[col] = f"{smoothed[row]:.3f}"
            changed += 1
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(table)
    os.replace(tmp, path)
    return changed


def progress_printer(stream=None):
    """A progress callback printing done/total seconds, rows and the real-time factor
    (to ``stream``, default the sys.stderr of the time of the call)."""
    stream = stream if stream is not None else sys.stderr
    t0 = time.perf_counter()
    last = [0.0]

    def show(done: float, total: float, rows: int):
        now = time.perf_counter()
        if now - last[0] < 0.5 and done < total:
            return
        last[0] = now
        wall = max(now - t0, 1e-9)
        width = 30
        filled = int(width * min(done / total, 1.0))
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:6.1f}/{total:.1f} s  "
                     f"{rows} rows  {done / wall:5.2f}x real time")
        stream.flush()

    return show


def summarize(result: ProcessResult, output: Path) -> str:
    frame = f" (frame {result.frame_id})" if result.frame_id else ""
    return (f"{result.frames} frames, {len(result.track_ids)} tracks, {result.rows} rows -> "
            f"{output}{frame}; {result.audio_frames} audio frames; "
            f"{result.bag_seconds:.1f} s of bag in {result.wall_seconds:.1f} s "
            f"({result.realtime_factor:.2f}x real time)"
            + ("; speaking column smoothed (tracking.speaking_smoothing_lag)"
               if result.smoothed_rows else ""))


@dataclass
class BagVoices:
    """Each track's voice over a processed bag (:func:`bag_voices`).

    voices : {track id: (n,) float} at ``rate``, sample 0 = ``start`` (the bag's first
        audio sample read), n = the audio's length.
    presence : {track id: (F,) speech presence per audio frame} and ``stamps`` (F,) s.
    """

    rate: int
    start: float
    voices: dict
    presence: dict
    stamps: np.ndarray
    windows: int = 0
    wall_seconds: float = 0.0


def bag_voices(result: ProcessResult, configs: dict) -> BagVoices:
    """The voices of the tracks of a :func:`process_bag` run made with ``keep_outputs``
    and ``keep_spectra`` (tracks in the camera frame).  Raises ValueError when the audio
    cannot give voices (no audio, a sample-rate change)."""
    from .core.tf_masks import VoiceConfig
    from .io.heads import load_head_model
    from .io.voice_files import voice_at_rate
    from .pipeline.voices import VoiceSeparator

    if len(set(result.audio_rates)) > 1:
        raise ValueError(
            f"the audio's sample rate changes in the bag "
            f"({' -> '.join(str(r) for r in result.audio_rates)} Hz): a voice has one rate; "
            "split the bag where the rate changes (ros2 bag convert) and separate each part")
    feats = result.features
    if result.audio_start is None or feats is None or not len(feats):
        raise ValueError("no usable audio in the bag (a 2-channel audio topic with finite "
                         "samples is needed): no voice")
    if feats.spec is None:
        raise ValueError("the bag was processed without keep_spectra=True")
    rate_in = result.audio_rates[0]
    n_in = int(round((result.audio_end - result.audio_start) * rate_in))
    audio_cfg = configs.get(AudioFrontEndConfig, AudioFrontEndConfig())
    mics = configs.get(MicArrayConfig, MicArrayConfig())
    fe = AudioPipeline(audio_cfg, mics).front_end
    rate = fe.config.processing_rate
    n_proc = int(np.ceil(n_in * rate / rate_in)) + fe.config.frame_length
    sep = VoiceSeparator(fe, load_head_model(mics, audio_cfg),
                         configs.get(VoiceConfig, VoiceConfig()))
    with long_lived_frozen():
        res = sep.run(feats, result.outputs, result.audio_start, n_proc)
    voices = {tid: voice_at_rate(v, rate, rate_in, n_in) for tid, v in res.voices.items()}
    # clipped chunks: their stretch is silent in every voice (a clipped mixture's masks and
    # samples are wrong), reported in result.errors
    for t0, t1 in result.clipped_spans:
        a = max(0, int(round((t0 - result.audio_start) * rate_in)))
        b = min(n_in, int(round((t1 - result.audio_start) * rate_in)))
        for v in voices.values():
            v[a:b] = 0.0
    if result.clipped_spans:
        total = sum(t1 - t0 for t0, t1 in result.clipped_spans)
        result.errors.append(
            f"{len(result.clipped_spans)} clipped audio chunk(s) ({total:.2f} s, the first at "
            f"{result.clipped_spans[0][0]:.3f} s) are silent in the voices: lower the "
            "recording gain")
    return BagVoices(rate_in, result.audio_start, voices, res.presence, res.stamps,
                     res.windows, res.wall_seconds)
