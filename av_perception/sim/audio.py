"""Binaural audio rendering: image-source room acoustics, moving talkers, noise.

:func:`render_audio` renders a :class:`~av_perception.sim.scene.Scene`'s two microphone
(or KEMAR dummy-head) channels: pyroomacoustics shoebox room (:func:`room_parameters`,
:class:`RirModel`), talkers at their mouths, diffuse or incoherent noise
(:func:`diffuse_noise`), distractors.  Sound emitted at t arrives at t + distance / c
exactly.  The models: docs/simulation.md, "The simulator".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd

import numpy as np
import pyroomacoustics as pra
import scipy.fft
import scipy.signal
import scipy.spatial

from .voice import make_speech_source

__all__ = ["AudioRender", "AudioLevels", "AudioParts", "render_audio", "room_parameters",
           "RirModel", "distractor_signal", "diffuse_noise"]


@dataclass
class AudioRender:
    """Result of :func:`render_audio`.

    samples : float32 (n, 2), channel 0 = left microphone.
    rate : Hz.
    speech_power : mean power of the reverberant speech at the mics before the final
        scaling (the SNR reference).
    scale : the final gain applied to every component.
    rt60_measured : RT60 (s) measured by pyroomacoustics on the first RIR (None if anechoic).
    dry : {person id: dry speech (n,)} before the room.
    images : {person id: float32 (n, 2)} each person's reverberant speech at the two
        microphones alone, with the same final scaling as ``samples`` (the reference of
        separation: ``samples`` = sum of the images + distractors + noise).
    """

    samples: np.ndarray
    rate: int
    speech_power: float
    scale: float
    rt60_measured: float | None = None
    dry: dict = field(default_factory=dict)
    n_rirs: int = 0
    levels: AudioLevels | None = None  # every gain of the mix
    images: dict = field(default_factory=dict)


def room_parameters(room, speed_of_sound: float = 343.0) -> tuple[float, int]:
    """(energy absorption of the walls, image-source order) of a :class:`RoomSpec`."""
    if room.anechoic:
        return 1.0, 0
    if room.absorption is not None:
        a = float(room.absorption)
        size = np.asarray(room.size)
        volume = np.prod(size)
        surface = 2 * (size[0] * size[1] + size[0] * size[2] + size[1] * size[2])
        rt60 = 24 * np.log(10) * volume / (speed_of_sound * surface * a)
        _, order = pra.inverse_sabine(min(rt60, 5.0), list(size), c=speed_of_sound) \
            if a < 1.0 else (1.0, 0)
    else:
        try:
            a, order = pra.inverse_sabine(room.rt60, list(room.size), c=speed_of_sound)
        except ValueError as exc:
            raise ValueError(f"room.rt60 = {room.rt60} s is too short for a room of "
                             f"{room.size} m (walls would absorb more than everything): "
                             "use a smaller room or a longer RT60") from exc
    if room.max_order is not None:
        order = min(order, room.max_order)
    return float(a), int(order)


class RirModel:
    """Room impulse responses of the scene's room for the two microphones.

    Parameters
    ----------
    scene : Scene
    """

    def __init__(self, scene):
        self.scene = scene
        self.fs = scene.audio.rate
        self.c = scene.robot.mics.speed_of_sound
        self.absorption, self.max_order = room_parameters(scene.room, self.c)
        self.early_order = min(scene.room.early_order, self.max_order)
        self.mics_room = scene.robot.to_room([scene.robot.mics.left, scene.robot.mics.right])
        self.offset = (pra.constants.get("frac_delay_length") - 1) // 2
        self.count = 0
        self._cache: dict = {}
        self.head = _DummyHead(scene, self.fs) if scene.robot.head == "kemar" else None

    def rir(self, source_camera, order: int | None = None) -> np.ndarray:
        """RIR (2, L) from a camera-frame point to the mics, image sources up to ``order``.

        Sample ``k + self.offset`` of the result is the response at delay ``k / fs``.
        """
        order = self.max_order if order is None else int(order)
        src = self.scene.robot.to_room(source_camera)[0]
        key = (tuple(np.round(src, 5)), order)
        if key in self._cache:
            return self._cache[key]
        room = pra.ShoeBox(list(self.scene.room.size), fs=self.fs, max_order=order,
                           materials=pra.Material(self.absorption), air_absorption=False)
        room.set_sound_speed(self.c)
        room.add_source(src)
        room.add_microphone_array(self.mics_room.T.copy())
        if self.head is not None:
            room.image_source_model()
            s = room.sources[0]
            h = self.head.rir(s.images.T, np.prod(s.damping, axis=0) if s.damping.ndim > 1
                              else s.damping, self.c, self.offset)
        else:
            room.compute_rir()
            length = max(len(room.rir[0][0]), len(room.rir[1][0]))
            h = np.zeros((2, length))
            for m in range(2):
                h[m, :len(room.rir[m][0])] = room.rir[m][0]
        self.count += 1
        if len(self._cache) < 256:
            self._cache[key] = h
        return h

    def moving_rir(self, source_camera, reference_camera) -> np.ndarray:
        """RIR of a moving source: exact early part here, late part from ``reference``."""
        if self.early_order >= self.max_order:
            return self.rir(source_camera)
        key = ("late", tuple(np.round(np.ravel(reference_camera), 5)))
        if key not in self._cache:
            full = self.rir(reference_camera)
            early = self.rir(reference_camera, self.early_order)
            late = full.copy()
            late[:, :early.shape[1]] -= early
            self._cache[key] = late
        late = self._cache[key]
        early = self.rir(source_camera, self.early_order)
        h = late.copy()
        n = min(early.shape[1], h.shape[1])
        h[:, :n] += early[:, :n]
        if early.shape[1] > n:
            h = np.concatenate([h, early[:, n:]], axis=1)
        return h

    def measured_rt60(self, source_camera) -> float | None:
        """RT60 (s) of the full RIR from ``source_camera``, measured by Schroeder integration."""
        if self.max_order == 0:
            return None
        h = self.rir(source_camera)[0]
        try:
            return float(pra.experimental.measure_rt60(h, fs=self.fs, decay_db=30))
        except (ValueError, IndexError):
            return None


class _DummyHead:
    """KEMAR HRIRs at the scene rate, placed at the mics' head frame (module docstring)."""

    def __init__(self, scene, fs: int):
        from ..io.heads import kemar_hrirs

        hrir, rate, dirs = kemar_hrirs()
        g = gcd(int(fs), int(round(rate)))
        h = scipy.signal.resample_poly(hrir, int(fs) // g, int(round(rate)) // g, axis=2)
        front = int(np.argmax(dirs[:, 0]))
        self.onset = int(np.argmax(np.abs(h[front]).sum(axis=0)))
        self.hrir = h
        self.dirs = dirs
        self.tree = scipy.spatial.cKDTree(dirs)
        self.fs = fs
        mics = scene.robot.mics
        left, right = np.asarray(mics.left, float), np.asarray(mics.right, float)
        axis = (left - right) / np.linalg.norm(left - right)
        fwd = np.array([0.0, 0.0, 1.0]) - axis[2] * axis
        fwd /= np.linalg.norm(fwd)
        up = np.cross(fwd, axis)
        self.centre_camera = 0.5 * (left + right)
        self.basis_camera = np.stack([fwd, axis, up])  # rows: head axes in the camera frame
        self.robot = scene.robot

    def neighbours(self, directions_head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 3 nearest measured directions (N, 3) of unit vectors (N, 3) (head
        components) and their interpolation weights (N, 3) (inverse angular distance)."""
        chord, idx = self.tree.query(directions_head, k=3)
        ang = 2 * np.arcsin(np.clip(chord / 2, 0.0, 1.0))
        w = 1.0 / np.maximum(ang, 1e-6)
        return idx, w / w.sum(axis=1, keepdims=True)

    def rir(self, images_room: np.ndarray, damping: np.ndarray, c: float,
            offset: int) -> np.ndarray:
        """Binaural RIR (2, L) of image sources (N, 3) (room frame) with gains ``damping``."""
        rel = self.robot.to_camera(images_room) - self.centre_camera
        dist = np.maximum(np.linalg.norm(rel, axis=1), 1e-3)
        u = (rel / dist[:, None]) @ self.basis_camera.T
        idx, wdir = self.neighbours(u)
        gain = np.asarray(damping, float).ravel() / (4 * np.pi * dist)
        t = np.maximum(dist / c * self.fs + offset - self.onset, 0.0)
        k = np.floor(t).astype(np.int64)
        frac = t - k
        length = int(k.max()) + 2
        used, inv = np.unique(idx.ravel(), return_inverse=True)
        inv = inv.reshape(idx.shape)
        g = (wdir * gain[:, None]).ravel()
        flat = (inv * length + k[:, None]).ravel()
        size = len(used) * length
        imp = (np.bincount(flat, g * np.repeat(1 - frac, 3), size)
               + np.bincount(flat + 1, g * np.repeat(frac, 3), size)).reshape(len(used), length)
        n = length + self.hrir.shape[2]
        nfft = scipy.fft.next_fast_len(n)
        spec = scipy.fft.rfft(imp, nfft, axis=1)
        out = np.empty((2, n))
        for ear in range(2):
            hs = scipy.fft.rfft(self.hrir[used, ear], nfft, axis=1)
            out[ear] = scipy.fft.irfft((spec * hs).sum(axis=0), nfft)[:n]
        return out


def _add(out: np.ndarray, y: np.ndarray, start: int) -> None:
    """out[start:start+len(y)] += y, clipped to the bounds of ``out`` (rows = samples)."""
    a, b = max(start, 0), min(start + len(y), len(out))
    if b > a:
        out[a:b] += y[a - start:b - start]


def _render_source(model: RirModel, dry: np.ndarray, positions, static: bool,
                   segment: int) -> np.ndarray:
    """Reverberant 2-channel image (n, 2) of a dry signal.

    ``positions(t)`` gives the camera-frame emission points (N, 3) at times t (s);
    a ``static`` source uses the point at t = 0 throughout.
    """
    n = len(dry)
    out = np.zeros((n, 2))
    if not np.any(dry):
        return out
    if static:
        h = model.rir(positions(np.zeros(1))[0])
        for m in range(2):
            _add(out[:, m], scipy.signal.oaconvolve(dry, h[m]), -model.offset)
        return out
    ref = _late_reference(model, dry, positions)
    win = scipy.signal.get_window("hann", 2 * segment, fftbins=True)
    for k in range(0, n // segment + 2):
        _add_segment(model, dry, positions, k, segment, ref, win, out)
    return out


def _late_reference(model: RirModel, dry: np.ndarray, positions, horizon: float = np.inf):
    """Where a moving source's late reverberation comes from: its point when it first
    sounds (or at ``horizon`` s, when that is earlier: a pose not known yet)."""
    active = np.nonzero(dry)[0]
    return positions(np.array([min(active[0] / model.fs, horizon)]))[0]


def _add_segment(model: RirModel, dry, positions, k: int, segment: int, ref, win,
                 out: np.ndarray) -> None:
    """Add segment ``k`` of a moving source (Hann window over samples
    [(k - 1) segment, (k + 1) segment), the room response at t = k segment / fs) to
    ``out`` (n, 2).  Once segment k is added, samples before k segment are complete."""
    n = len(dry)
    a = k * segment - segment
    lo, hi = max(a, 0), min(a + 2 * segment, n)
    if hi <= lo or not np.any(dry[lo:hi]):
        return
    x = dry[lo:hi] * win[lo - a:hi - a]
    h = model.moving_rir(positions(np.array([k * segment / model.fs]))[0], ref)
    for m in range(2):
        _add(out[:, m], scipy.signal.fftconvolve(x, h[m]), lo - model.offset)


def _colour(spec_len: int, fs: int, color: str) -> np.ndarray:
    f = np.fft.rfftfreq(2 * (spec_len - 1), 1.0 / fs)
    if color == "white":
        g = np.ones_like(f)
    else:
        g = 1.0 / np.sqrt(np.maximum(f, 50.0))
    g[f < 20.0] = 0.0
    return g


def diffuse_noise(n: int, fs: int, spacing: float, rng, kind: str = "diffuse",
                  color: str = "pink", speed_of_sound: float = 343.0) -> np.ndarray:
    """Two-channel background noise (n, 2) with unit mean power per channel.

    ``kind='diffuse'`` gives the coherence of a spherically isotropic field between
    two omnidirectional mics ``spacing`` m apart, Gamma(f) = sinc(2 f d / c)
    (numpy's normalised sinc); ``'incoherent'`` gives independent channels.
    """
    m = n + (n % 2)
    a = np.fft.rfft(rng.standard_normal(m))
    b = np.fft.rfft(rng.standard_normal(m))
    g = _colour(len(a), fs, color)
    if kind == "diffuse":
        f = np.fft.rfftfreq(m, 1.0 / fs)
        gamma = np.sinc(2.0 * f * spacing / speed_of_sound)
        left, right = a, gamma * a + np.sqrt(np.maximum(1.0 - gamma ** 2, 0.0)) * b
    else:
        left, right = a, b
    x = np.stack([np.fft.irfft(left * g, m)[:n], np.fft.irfft(right * g, m)[:n]], axis=1)
    return x / np.sqrt(np.mean(x ** 2, axis=0, keepdims=True) + 1e-30)


def distractor_signal(kind: str, n: int, fs: int, rng) -> np.ndarray:
    """Dry signal of a distractor: 'fan' (hum + blade tone + low-passed noise) or
    'radio' (music-like notes with vibrato over band-limited noise); unit RMS."""
    t = np.arange(n) / fs
    if kind == "fan":
        hum = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                  for f, a in ((50.0, 1.0), (100.0, 0.6), (150.0, 0.3)))
        blade = 0.5 * np.sin(2 * np.pi * 237.0 * t) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
        sos = scipy.signal.butter(2, min(1500.0, 0.4 * fs) / (fs / 2), output="sos")
        x = hum + blade + 3.0 * scipy.signal.sosfilt(sos, rng.standard_normal(n))
    elif kind == "radio":
        x = np.zeros(n)
        note = int(0.25 * fs)
        scale = [0, 2, 4, 5, 7, 9, 11, 12]
        for a in range(0, n, note):
            b = min(a + note, n)
            f0 = 220.0 * 2 ** (scale[rng.integers(len(scale))] / 12)
            tt = t[a:b] - t[a]
            env = np.exp(-tt * 6.0)
            tone = sum(np.sin(2 * np.pi * k * f0 * tt * (1 + 0.003 * np.sin(2 * np.pi * 5 * tt)))
                       / k for k in range(1, 8) if k * f0 < 0.45 * fs)
            x[a:b] += env * tone
        sos = scipy.signal.butter(2, [300.0 / (fs / 2), min(3400.0, 0.45 * fs) / (fs / 2)],
                                  btype="band", output="sos")
        x = scipy.signal.sosfilt(sos, x + 0.3 * rng.standard_normal(n))
    else:
        raise ValueError(f"unknown distractor kind {kind!r}")
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-30)


def _child(seed: int, *path: int):
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *path]))


def person_dry_speech(scene, source, person) -> np.ndarray:
    """(n_samples,) the dry speech of ``person`` at their mouth: their utterances rendered
    by ``source`` with the person's own random stream (what the talking faces follow)."""
    fs = scene.audio.rate
    n = scene.n_samples
    rng = _child(scene.seed, 1, person.id)
    dry = np.zeros(n)
    for u in scene.utterances:
        if u.person != person.id:
            continue
        a, b = int(round(u.start * fs)), min(int(round(u.end * fs)), n)
        if b > a:
            dry[a:b] = source.render(person, b - a, fs, rng)
    return dry


def render_audio(scene, speech_source=None, keep_dry: bool = False,
                 keep_images: bool = False) -> AudioRender:
    """Render the two microphone signals of ``scene`` (see module docstring).

    Parameters
    ----------
    scene : Scene
    speech_source : SpeechSource, optional
        Defaults to the one described by ``scene.speech``.
    keep_dry : bool
        Keep each person's dry speech in the result.
    keep_images : bool
        Keep each person's reverberant image at the microphones (``images``).
    """
    fs = scene.audio.rate
    n = scene.n_samples
    parts = AudioParts(scene, speech_source)
    model = parts.model
    segment = parts.segment
    speech = np.zeros((n, 2))
    images = {}
    for p, dry in zip(scene.people, parts.dry):
        mouth = parts.mouth(p)
        image = _render_source(model, dry, mouth,
                               p.trajectory().is_static() and scene.head() is None, segment)
        speech += image
        if keep_images:
            images[p.id] = image
    noises = [_render_source(model, x, parts.where(d), scene.head() is None, segment)
              for d, x in zip(scene.distractors, parts.distractors)]
    levels = parts.levels(speech, noises)
    samples = parts.mix(levels, speech, noises, 0, n)
    rt60 = None
    if scene.people and model.max_order > 0:
        p0 = scene.people[0]
        rt60 = model.measured_rt60(p0.trajectory().position([0.0])[0] +
                                   np.asarray(scene.mouth_offset))
    dry_all = {p.id: d for p, d in zip(scene.people, parts.dry)} if keep_dry else {}
    images = {pid: (im * levels.scale).astype(np.float32) for pid, im in images.items()}
    return AudioRender(samples, fs, levels.speech_power, levels.scale, rt60, dry_all,
                       model.count, levels, images)


@dataclass
class AudioLevels:
    """The gains of the final mix: speech power (the SNR reference), each distractor's
    rendered power over its playing time, the final scale."""

    speech_power: float
    distractor_power: list
    scale: float


class AudioParts:
    """The pieces of :func:`render_audio` -- dry signals, noises, the room -- so that the
    mix can be rendered a segment at a time (``sim.closed_loop``): :meth:`levels` of
    rendered source images, :meth:`mix` of any sample range."""

    def __init__(self, scene, speech_source=None):
        self.scene = scene
        fs = self.fs = scene.audio.rate
        n = self.n = scene.n_samples
        source = speech_source or make_speech_source(scene.speech, scene.people)
        self.model = RirModel(scene)
        self.segment = max(1, int(round(scene.audio.segment * fs)))
        self.dry = [person_dry_speech(scene, source, p) for p in scene.people]
        self.mask = np.zeros(n, dtype=bool)
        for u in scene.utterances:
            self.mask[int(round(u.start * fs)):int(round(u.end * fs))] = True
        self.distractors, self.on = [], []
        for k, d in enumerate(scene.distractors):
            rng = _child(scene.seed, 2, k)
            x = np.zeros(n)
            a = int(round(d.start * fs))
            b = n if d.end is None else min(int(round(d.end * fs)), n)
            if b > a:
                x[a:b] = distractor_signal(d.kind, b - a, fs, rng)
            self.distractors.append(x)
            self.on.append((a, b))
        self.noise = None
        if scene.noise.snr_db is not None:
            self.noise = diffuse_noise(n, fs, scene.robot.mics.spacing, _child(scene.seed, 3),
                                       scene.noise.kind, scene.noise.color,
                                       scene.robot.mics.speed_of_sound)
        self.self_noise = _child(scene.seed, 4).standard_normal((n, 2))

    def mouth(self, person):
        """positions(t) of a person's mouth in the camera frame (the head's motion in)."""
        traj, off, head = person.trajectory(), np.asarray(self.scene.mouth_offset), \
            self.scene.head()

        def at(t):
            p = traj.position(t) + off
            return p if head is None else head.to_camera(p, t)

        return at

    def where(self, distractor):
        """positions(t) of a distractor in the camera frame."""
        p, head = distractor.position, self.scene.head()

        def at(t):
            pts = np.tile(p, (len(t), 1))
            return pts if head is None else head.to_camera(pts, t)

        return at

    def levels(self, speech, images) -> AudioLevels:
        """The mix's gains from the whole rendered speech (n, 2) and distractor images."""
        p_speech = float(np.mean(speech[self.mask] ** 2)) if np.any(self.mask) else 0.0
        if p_speech <= 0:
            p_speech = 1e-6  # no speech at all: noise levels relative to a nominal level
        p_d = [float(np.mean(y[a:b] ** 2)) if b > a else 0.0
               for y, (a, b) in zip(images, self.on)]
        levels = AudioLevels(p_speech, p_d, 1.0)
        total = self.mix(levels, speech, images, 0, self.n, scaled=False)
        peak = float(np.max(np.abs(total))) if self.n else 0.0
        levels.scale = self.scene.audio.peak / peak if peak > 0 else 1.0
        return levels

    def mix(self, levels: AudioLevels, speech, images, a: int, b: int,
            scaled: bool = True, offset: int = 0) -> np.ndarray:
        """Samples [a, b) of the final mix (float32 (b - a, 2); float64 unscaled);
        ``speech`` and ``images`` start at sample ``offset`` of the scene."""
        scene, p_speech = self.scene, levels.speech_power
        na, nb = a + offset, b + offset  # the noises' samples
        total = speech[a:b].copy()
        for d, y, p_d in zip(scene.distractors, images, levels.distractor_power):
            if p_d > 0:
                total += y[a:b] * np.sqrt(p_speech * 10 ** (d.level_db / 10) / p_d)
        if self.noise is not None:
            total += self.noise[na:nb] * np.sqrt(p_speech / 10 ** (scene.noise.snr_db / 10))
        total += self.self_noise[na:nb] * np.sqrt(p_speech * 10 ** (scene.audio.self_noise_db
                                                                  / 10))
        return (total * levels.scale).astype(np.float32) if scaled else total
