"""Top-level simulation: a :class:`Scene` -> bag, WAV, ground truth, scene file.

:func:`simulate` writes ``OUTDIR/bag/`` (rosbag2), ``audio.wav`` (the same 2-channel
audio), ``images/person_<id>.wav`` (each person's reverberant speech alone at the two
microphones, same scale: the reference of separation), ``ground_truth.jsonl`` (one
line per video frame, positions in the left camera optical frame) and ``scene.json``;
:func:`ground_truth_records` builds the lines.
Layout and the ground-truth format: docs/simulation.md, "Outputs".
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io.wavfile

from .audio import _child, render_audio
from .bag import SimBagWriter
from .video import VideoRenderer

__all__ = ["simulate", "SimulationResult", "OUTPUT_NAMES", "ground_truth_records"]

OUTPUT_NAMES = ("bag", "audio.wav", "ground_truth.jsonl", "scene.json", "images")


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote, with timings (s) and a few measurements."""

    outdir: Path
    bag: Path | None
    n_frames: int
    n_audio_chunks: int
    timings: dict = field(default_factory=dict)
    rt60_measured: float | None = None
    n_rirs: int = 0
    visible_fraction: float = 0.0
    #: the closed loop (head_motion.mode 'attention'): tracker steps, steps with an
    #: attention target, target switches, the pipeline's problems
    pipeline_steps: int = 0
    attention_steps: int = 0
    attention_switches: int = 0
    errors: list = field(default_factory=list)

    def summary(self) -> str:
        rt = f"{self.rt60_measured:.2f} s" if self.rt60_measured is not None else "anechoic"
        t = ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())
        loop = (f"; closed loop: {self.pipeline_steps} tracker steps, a target in "
                f"{self.attention_steps}, {self.attention_switches} target switches"
                if self.pipeline_steps else "")
        return (f"wrote {self.outdir}: {self.n_frames} stereo frames, {self.n_audio_chunks} audio "
                f"chunks; measured RT60 {rt}; {self.n_rirs} room responses; people visible in "
                f"{100 * self.visible_fraction:.0f} % of person-frames{loop}; time: {t}")


def _prepare_outdir(outdir: Path, overwrite: bool) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"{outdir} exists and is not a directory")
    outdir.mkdir(parents=True, exist_ok=True)
    present = [n for n in OUTPUT_NAMES if (outdir / n).exists()]
    if present and not overwrite:
        raise ValueError(f"{outdir} already holds simulator output ({', '.join(present)}): "
                         "choose another directory or pass --overwrite")
    for name in present:
        p = outdir / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def ground_truth_records(scene, k: int, t: float, views: dict) -> dict:
    """The ground-truth line of frame ``k`` at scene time ``t`` (see module docstring)."""
    stamp_ns = _frame_ns(scene, k)
    pos = scene.fixed_positions([t])
    spk = scene.speaking([t])
    thr = scene.video.visible_threshold
    people = []
    for p in scene.people:
        x, y, z = (float(v) for v in pos[p.id][0])
        v = views[p.id]
        frac = float(min(v.visible_left, v.visible_right))
        people.append({
            "id": p.id, "x": round(x, 6), "y": round(y, 6), "z": round(z, 6),
            "speaking": bool(spk[p.id][0]), "visible": bool(frac >= thr),
            "visible_fraction": round(frac, 4),
            "u": None if np.isnan(v.u) else round(v.u, 3),
            "v": None if np.isnan(v.v) else round(v.v, 3),
            "disparity": None if np.isnan(v.disparity) else round(v.disparity, 4),
        })
    rec = {"frame": k, "stamp": stamp_ns / 1e9, "people": people}
    head = scene.head()
    if head is not None:  # positions in the fixed frame; the head's angles
        pan, tilt = head.angles(t)
        rec.update(frame_id=scene.head_motion.fixed_frame,
                   head_pan=round(float(np.degrees(pan[0])), 4),
                   head_tilt=round(float(np.degrees(tilt[0])), 4))
    return rec


def _frame_ns(scene, k: int) -> int:
    return int(round(scene.epoch * 1e9)) + int(round(k * 1e9 / scene.robot.camera.fps))


def simulate(scene, outdir, *, storage: str = "sqlite3", compressed: bool = False,
             overwrite: bool = False, write_bag: bool = True, speech_source=None,
             progress=None, configs: dict | None = None) -> SimulationResult:
    """Render ``scene`` into ``outdir`` (see module docstring for the layout).

    Parameters
    ----------
    scene : Scene
    outdir : path
        Created if needed; must not already hold simulator output unless ``overwrite``.
    storage : 'sqlite3' or 'mcap'
    compressed : bool
        JPEG ``CompressedImage`` topics instead of raw ``Image``.
    overwrite : bool
        Replace previous simulator output in ``outdir``.
    write_bag : bool
        False writes only the WAV, the ground truth and the scene (faster).
    speech_source : SpeechSource, optional
        Overrides ``scene.speech``.
    progress : callable(str), optional
        Receives short progress messages.
    configs : dict, optional
        {config class: instance} of the package's pipeline that drives the head of
        ``head_motion.mode = 'attention'`` (the closed loop, :mod:`.closed_loop`).
    """
    if scene.head_motion.mode == "attention":  # the head follows the pipeline's attention
        from .closed_loop import simulate_closed_loop

        return simulate_closed_loop(scene, outdir, storage=storage, compressed=compressed,
                                    overwrite=overwrite, write_bag=write_bag,
                                    speech_source=speech_source, configs=configs,
                                    progress=progress)
    outdir = Path(outdir)
    if storage not in ("sqlite3", "mcap"):
        raise ValueError(f"bag format must be 'sqlite3' or 'mcap', got {storage!r}")
    _prepare_outdir(outdir, overwrite)
    say = progress or (lambda msg: None)
    timings = {}
    scene.save(outdir / "scene.json")

    t0 = time.perf_counter()
    say("rendering audio")
    audio = render_audio(scene, speech_source, keep_dry=scene.video.talking_faces,
                         keep_images=True)
    scipy.io.wavfile.write(outdir / "audio.wav", audio.rate, audio.samples)
    if audio.images:  # each person's reverberant image: the reference of separation
        (outdir / "images").mkdir()
        for pid, image in audio.images.items():
            scipy.io.wavfile.write(outdir / "images" / f"person_{pid}.wav", audio.rate, image)
    timings["audio"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    say("rendering video")
    renderer = VideoRenderer(scene, dry=audio.dry)
    rng = _child(scene.seed, 5)
    fs = audio.rate
    chunk = scene.audio.chunk
    n = len(audio.samples)
    epoch_ns = int(round(scene.epoch * 1e9))
    chunk_starts = list(range(0, n, chunk))
    chunk_ns = [epoch_ns + int(round(a * 1e9 / fs)) for a in chunk_starts]
    chunk_end_ns = [epoch_ns + int(round(min(a + chunk, n) * 1e9 / fs)) for a in chunk_starts]
    bag_path = outdir / "bag" if write_bag else None
    writer = (SimBagWriter(bag_path, scene.robot.camera, storage, compressed,
                           scene.video.jpeg_quality, tf=scene.head_motion.moving)
              if write_bag else None)
    next_chunk = 0
    visible = []
    times = scene.frame_times()
    t_bag = 0.0

    def flush_audio(until_ns):
        nonlocal next_chunk
        while next_chunk < len(chunk_starts) and chunk_end_ns[next_chunk] <= until_ns:
            a = chunk_starts[next_chunk]
            writer.write_audio(chunk_ns[next_chunk], audio.samples[a:a + chunk], fs)
            next_chunk += 1

    head = scene.head()
    tf_k = 0

    def flush_tf(until_ns):
        """/tf of the moving head up to a stamp (/tf_static with the first)."""
        nonlocal tf_k
        if head is None:
            return
        if tf_k == 0:
            writer.write_tf(epoch_ns, head.static_transforms(scene.robot.camera.frame_id),
                            static=True)
        period_ns = 1e9 / scene.head_motion.tf_rate
        while True:
            ns = epoch_ns + int(round(tf_k * period_ns))
            if ns > until_ns or tf_k * period_ns > scene.duration * 1e9:
                return
            tr, q = head.head_transform((ns - epoch_ns) / 1e9)
            writer.write_tf(ns, [("neck", "head", tr, q)])
            tf_k += 1

    with (writer if writer is not None else _Null()), \
            open(outdir / "ground_truth.jsonl", "w") as gt:
        for k, t in enumerate(times):
            frame = renderer.render(float(t), rng)
            rec = ground_truth_records(scene, k, float(t), frame.views)
            visible.extend(p["visible"] for p in rec["people"])
            gt.write(json.dumps(rec) + "\n")
            if writer is not None:
                tb = time.perf_counter()
                flush_tf(_frame_ns(scene, k))
                flush_audio(_frame_ns(scene, k))
                writer.write_frame(_frame_ns(scene, k), frame.left, frame.right)
                t_bag += time.perf_counter() - tb
        if writer is not None:
            tb = time.perf_counter()
            flush_tf(np.iinfo(np.int64).max)
            flush_audio(np.iinfo(np.int64).max)
            t_bag += time.perf_counter() - tb
    total_video = time.perf_counter() - t0
    timings["video"] = total_video - t_bag
    if write_bag:
        timings["bag"] = t_bag
    return SimulationResult(
        outdir=outdir, bag=bag_path, n_frames=len(times),
        n_audio_chunks=next_chunk if write_bag else len(chunk_starts), timings=timings,
        rt60_measured=audio.rt60_measured, n_rirs=audio.n_rirs,
        visible_fraction=float(np.mean(visible)) if visible else 0.0)


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
