"""Dry speech for the simulator: a built-in source-filter voice, WAV files, recorded
speech (CMU ARCTIC), espeak-ng.

:func:`make_speech_source` picks the source of a scene (:class:`SyntheticSpeech`,
:class:`WavSpeech`, :class:`RecordedSpeech`, :class:`EspeakSpeech`);
:func:`synthesize_utterance` is the built-in Klatt-style formant voice of a
:class:`VoiceSpec`.  The voice model and the recordings: docs/simulation.md, "The
simulator".
"""
from __future__ import annotations

import abc
import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import scipy.signal

__all__ = [
    "VoiceSpec",
    "synthesize_utterance",
    "SpeechSource",
    "SyntheticSpeech",
    "WavSpeech",
    "EspeakSpeech",
    "RecordedSpeech",
    "make_speech_source",
    "espeak_available",
    "load_wav_mono",
]

#: male-average formants F1..F4 (Hz) and bandwidths, Peterson & Barney 1952 / Klatt 1980
VOWELS = {
    "i": (270, 2290, 3010, 3500),
    "I": (390, 1990, 2550, 3500),
    "e": (530, 1840, 2480, 3500),
    "ae": (660, 1720, 2410, 3500),
    "a": (730, 1090, 2440, 3500),
    "o": (570, 840, 2410, 3500),
    "u": (300, 870, 2240, 3500),
    "U": (440, 1020, 2240, 3500),
    "A": (640, 1190, 2390, 3500),
    "er": (490, 1350, 1690, 3500),
}
NASAL = (250, 1100, 2300, 3500)
BANDWIDTHS = (70.0, 100.0, 140.0, 250.0)
#: fricative pass bands (Hz) before vocal-tract scaling
FRICATIVES = {"s": (4200.0, 7500.0), "sh": (2200.0, 4500.0), "f": (1200.0, 7000.0)}
CONSONANTS = ("s", "sh", "f", "p", "t", "k", "h", "m", "n")
_BLOCK_S = 0.0025


@dataclass
class VoiceSpec:
    """Parameters of one person's voice.

    f0 : mean pitch in Hz (about 100-130 for men, 180-230 for women).
    formant_scale : vocal-tract factor applied to the formants (1.0 male, ~1.15 female).
    syllable_rate : syllables per second.
    level_db : speech level relative to the others (dB).
    breathiness : aspiration noise relative to the voiced excitation.
    """

    f0: float = 120.0
    formant_scale: float = 1.0
    syllable_rate: float = 4.5
    level_db: float = 0.0
    breathiness: float = 0.05

    def __post_init__(self):
        if not 50.0 <= self.f0 <= 400.0:
            raise ValueError(f"voice.f0 must be in [50, 400] Hz, got {self.f0}")
        if not 0.7 <= self.formant_scale <= 1.5:
            raise ValueError(f"voice.formant_scale must be in [0.7, 1.5], got {self.formant_scale}")
        if not 1.0 <= self.syllable_rate <= 10.0:
            raise ValueError(f"voice.syllable_rate must be in [1, 10], got {self.syllable_rate}")
        if not 0.0 <= self.breathiness <= 1.0:
            raise ValueError(f"voice.breathiness must be in [0, 1], got {self.breathiness}")


# --------------------------------------------------------------------------- synthesis
def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    """Moving average of length ``n`` (edges padded with the end values)."""
    if n <= 1:
        return x
    pad = n // 2
    xp = np.pad(x, [(pad, n - 1 - pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    c = np.cumsum(xp, axis=0, dtype=float)
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), c], axis=0)
    return (c[n:] - c[:-n]) / n


def _slow_noise(rng, n: int, fs: int, cutoff: float) -> np.ndarray:
    """Zero-mean, unit-std random signal band-limited to ``cutoff`` Hz."""
    sos = scipy.signal.butter(2, cutoff / (fs / 2), output="sos")
    pad = int(fs / cutoff)
    x = scipy.signal.sosfilt(sos, rng.standard_normal(n + pad))[pad:]
    s = np.std(x)
    return x / s if s > 0 else x


def _rosenberg(phase: np.ndarray, open_q: float = 0.45, close_q: float = 0.17) -> np.ndarray:
    """Rosenberg glottal flow for a phase in [0, 1) (one pulse per period)."""
    g = np.zeros_like(phase)
    a = phase < open_q
    g[a] = 0.5 * (1.0 - np.cos(np.pi * phase[a] / open_q))
    b = (phase >= open_q) & (phase < open_q + close_q)
    g[b] = np.cos(0.5 * np.pi * (phase[b] - open_q) / close_q)
    return g


def _resonator_sos(freqs, bws, fs) -> np.ndarray:
    """Cascade of unity-DC-gain two-pole resonators as an (n, 6) SOS array."""
    sos = []
    for f, bw in zip(freqs, bws):
        r = np.exp(-np.pi * bw / fs)
        c1 = -2.0 * r * np.cos(2 * np.pi * f / fs)
        c2 = r * r
        sos.append([1.0 + c1 + c2, 0.0, 0.0, 1.0, c1, c2])
    return np.asarray(sos)


def synthesize_utterance(voice: VoiceSpec, n: int, fs: int, rng) -> np.ndarray:
    """Synthesise ``n`` samples of speech-like sound with the built-in voice model.

    Parameters
    ----------
    voice : VoiceSpec
    n : int
        Number of samples.
    fs : int
        Sample rate in Hz.
    rng : numpy.random.Generator

    Returns
    -------
    x : float64 array (n,), RMS 0.05 * 10**(level_db / 20) over the whole utterance.
    """
    if n <= 0:
        return np.zeros(0)
    nyq = fs / 2
    n_form = sum(1 for f in VOWELS["a"] if f * voice.formant_scale * 1.1 < 0.9 * nyq)
    n_form = max(n_form, 2)
    # ---- syllable plan: per-sample controls
    voicing = np.zeros(n)  # voiced amplitude
    asp_tract = np.zeros(n)  # aspiration through the tract (/h/, plosive release)
    formants = np.zeros((n, 4))
    stress = np.zeros(n)
    fric = np.zeros(n)  # frication added after the tract
    vowel_names = list(VOWELS)
    pos = 0
    last_targets = np.asarray(VOWELS["A"], dtype=float)
    while pos < n:
        syl = int(fs / voice.syllable_rate * rng.uniform(0.8, 1.2))
        vowel = np.asarray(VOWELS[vowel_names[rng.integers(len(vowel_names))]], dtype=float)
        amp = rng.uniform(0.55, 1.0)
        stressed = rng.random() < 0.3
        onset = CONSONANTS[rng.integers(len(CONSONANTS))] if rng.random() < 0.75 else None
        c_len = 0
        if onset is not None:
            c_len = int(fs * (rng.uniform(0.07, 0.11) if onset in FRICATIVES
                              else rng.uniform(0.05, 0.075)))
            c_len = min(c_len, syl // 2)
            a, b = pos, min(pos + c_len, n)
            m = b - a
            if m > 0:
                formants[a:b] = vowel  # coarticulation towards the coming vowel
                if onset in FRICATIVES:
                    lo, hi = FRICATIVES[onset]
                    hi = min(hi * voice.formant_scale, 0.95 * nyq)
                    lo = min(lo * voice.formant_scale, 0.6 * hi)
                    sos = scipy.signal.butter(2, [lo / nyq, hi / nyq], btype="band", output="sos")
                    env = np.sin(np.pi * np.arange(m) / m) ** 0.7
                    gain = 0.35 if onset == "f" else 1.0
                    fric[a:b] += gain * amp * env * scipy.signal.sosfilt(
                        sos, rng.standard_normal(m))
                elif onset in ("p", "t", "k"):
                    closure = int(0.4 * m)
                    burst = min(int(0.012 * fs), m - closure)
                    hi = {"p": 0.35, "t": 0.85, "k": 0.55}[onset] * nyq
                    sos = scipy.signal.butter(2, min(hi, 0.95 * nyq) / nyq, output="sos")
                    fric[a + closure:a + closure + burst] += 0.8 * amp * scipy.signal.sosfilt(
                        sos, rng.standard_normal(burst))
                    asp_tract[a + closure + burst:b] = 0.6 * amp
                elif onset == "h":
                    asp_tract[a:b] = 0.8 * amp * np.sin(np.pi * np.arange(m) / m)
                else:  # nasal
                    formants[a:b] = NASAL
                    voicing[a:b] = 0.35 * amp
        v_len = max(syl - c_len, int(0.06 * fs))
        a, b = min(pos + c_len, n), min(pos + c_len + v_len, n)
        formants[a:b] = vowel
        voicing[a:b] = amp
        stress[a:b] = 1.0 if stressed else 0.0
        last_targets = vowel
        pos = b
        if rng.random() < 0.25 and pos < n:  # word boundary: short silence
            g = int(fs * rng.uniform(0.04, 0.12))
            formants[pos:pos + g] = last_targets
            pos += g
    formants *= voice.formant_scale
    formants = _smooth(formants, int(0.025 * fs))
    voicing = _smooth(voicing, int(0.015 * fs))
    asp_tract = _smooth(asp_tract, int(0.01 * fs))
    stress = _smooth(stress, int(0.08 * fs))
    # ---- pitch contour and glottal source
    t = np.arange(n) / fs
    decl = 1.08 - 0.16 * t / max(t[-1], 1e-9)
    f0 = voice.f0 * decl * (1.0 + 0.05 * _slow_noise(rng, n, fs, 3.0) + 0.12 * stress)
    f0 *= 1.0 + 0.004 * rng.standard_normal(n)  # jitter
    phase = np.mod(np.cumsum(f0 / fs) + rng.random(), 1.0)
    flow = _rosenberg(phase)
    source = np.diff(flow, prepend=flow[0]) * voicing
    noise = rng.standard_normal(n)
    source += 0.02 * noise * (voice.breathiness * voicing + asp_tract)
    # ---- vocal tract: blockwise time-varying cascade
    block = max(1, int(_BLOCK_S * fs))
    out = np.zeros(n)
    zi = np.zeros((n_form, 2))
    bws = np.asarray(BANDWIDTHS[:n_form]) * voice.formant_scale
    for a in range(0, n, block):
        b = min(a + block, n)
        sos = _resonator_sos(formants[(a + b) // 2, :n_form], bws, fs)
        out[a:b], zi = scipy.signal.sosfilt(sos, source[a:b], zi=zi)
    x = out / (np.std(out[voicing > 0.5]) + 1e-12) if np.any(voicing > 0.5) else out
    x = x + 0.5 * fric / (np.std(fric[fric != 0]) + 1e-12) if np.any(fric != 0) else x
    hp = scipy.signal.butter(2, 70.0 / nyq, btype="high", output="sos")
    x = scipy.signal.sosfilt(hp, x)
    return _fade(x, fs) * (0.05 * 10 ** (voice.level_db / 20) / (np.std(x) + 1e-12))


def _fade(x: np.ndarray, fs: int, seconds: float = 0.015) -> np.ndarray:
    m = min(int(seconds * fs), len(x) // 2)
    if m > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
        x = x.copy()
        x[:m] *= ramp
        x[-m:] *= ramp[::-1]
    return x


# --------------------------------------------------------------------------- sources
def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    g = gcd(int(rate_in), int(rate_out))
    return scipy.signal.resample_poly(x, rate_out // g, rate_in // g)


def load_wav_mono(path, rate: int) -> np.ndarray:
    """A WAV file as mono float64 at ``rate`` Hz, leading/trailing silence trimmed."""
    fs, data = scipy.io.wavfile.read(str(path))
    return _prepare(data, fs, rate)


def _prepare(data: np.ndarray, fs: int, rate: int) -> np.ndarray:
    x = np.asarray(data)
    if x.dtype == np.uint8:
        x = (x.astype(float) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.integer):
        x = x.astype(float) / float(-np.iinfo(x.dtype).min)
    else:
        x = x.astype(float)
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = _resample(x, fs, rate)
    if len(x) == 0:
        return x
    env = np.sqrt(_smooth(x * x, max(1, int(0.02 * rate))))
    on = np.nonzero(env > env.max() * 10 ** (-40 / 20))[0]
    return x[on[0]:on[-1] + 1] if len(on) else x[:0]


def _fill(pieces, n: int, fs: int, level_db: float) -> np.ndarray:
    """Concatenate pieces with 0.1 s pauses until ``n`` samples (the last pause may be
    completed with silence), cut, fade the ends and set the level."""
    out = []
    total = 0
    gap = np.zeros(int(0.1 * fs))
    for piece in pieces:
        if len(piece) == 0:
            continue
        if out:
            out.append(gap)
            total += len(gap)
        out.append(piece)
        total += len(piece)
        if total >= n:
            break
    if not out:
        raise ValueError("the speech source produced no sound")
    x = np.concatenate(out)[:n]
    if len(x) < n:
        if n - len(x) > len(gap):
            raise ValueError("the speech source ran out of material")
        x = np.concatenate([x, np.zeros(n - len(x))])
    x = _fade(x, fs)
    rms = np.sqrt(np.mean(x * x))
    return x * (0.05 * 10 ** (level_db / 20) / rms) if rms > 0 else x


class SpeechSource(abc.ABC):
    """Produces the dry waveform of each utterance (called in schedule order)."""

    @abc.abstractmethod
    def render(self, person, n: int, fs: int, rng) -> np.ndarray:
        """Dry speech of ``person`` (a :class:`PersonSpec`), ``n`` samples at ``fs``."""


class SyntheticSpeech(SpeechSource):
    """The built-in source-filter voice model (see module docstring)."""

    def render(self, person, n, fs, rng):
        return synthesize_utterance(person.voice, n, fs, rng)


class WavSpeech(SpeechSource):
    """Speech from the WAV files under a directory (recursively, sorted by path).

    Person ``k`` (in scene order) reads the concatenated recordings starting at
    file ``k`` (cyclically) and continues where its previous utterance stopped, so
    people talk with different material; pieces are joined with 0.1 s pauses.
    """

    def __init__(self, directory, people):
        root = Path(directory)
        if not root.is_dir():
            raise ValueError(f"speech directory {root} does not exist")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav")
        if not files:
            raise ValueError(f"no .wav files under {root}")
        self._setup(files, people)

    def _setup(self, files, people):
        self.files = list(files)
        self.order = {p.id: k for k, p in enumerate(people)}
        self._cache: dict[tuple, np.ndarray] = {}
        self._cursor: dict[int, tuple[int, int]] = {}

    def _file(self, i: int, fs: int) -> np.ndarray:
        key = (i, fs)
        if key not in self._cache:
            self._cache[key] = load_wav_mono(self.files[i], fs)
        return self._cache[key]

    def _start(self, k: int, fs: int) -> tuple[int, int]:
        """Where person ``k`` (scene order) starts reading: (file, sample offset)."""
        return k % len(self.files), 0

    def _rate(self, person, fs: int) -> int:
        """The rate the recordings are loaded at for ``person`` (``fs``: as recorded)."""
        return fs

    def _pieces(self, pid: int, fs: int):
        k = self.order[pid]
        f, off = self._cursor.get(pid) or self._start(k, fs)
        empty = 0
        while empty <= len(self.files):
            x = self._file(f, fs)[off:]
            if len(x) == 0:
                empty += 1
            else:
                empty = 0
                yield x, f, off
            f, off = (f + 1) % len(self.files), 0

    def render(self, person, n, fs, rng):
        out, total, gap = [], 0, int(0.1 * fs)
        for x, f, off in self._pieces(person.id, self._rate(person, fs)):
            if out:
                total += gap
            take = x[:max(n - total, 0)]
            if len(take) == 0:
                break
            out.append(take)
            total += len(take)
            self._cursor[person.id] = (f, off + len(take))
            if total >= n:
                break
        return _fill(out, n, fs, person.voice.level_db)


class RecordedSpeech(WavSpeech):
    """Recorded speech: the CMU ARCTIC utterances of :mod:`av_perception.sim.recorded`.

    With only two recorded sentences of one speaker, each person reads them at their own
    tape speed, ``voice.f0`` / :data:`RECORDED_F0` clipped to [0.75, 1.3] (pitch, formants
    and tempo scale together, as a recording played faster or slower), starting at a
    different file and point, so that people differ in pitch and timbre and never say
    the same thing at the same moment.  The spectrum, onsets and pauses stay those of a
    real voice.
    """

    #: the recorded speaker's mean pitch (Hz; CMU ARCTIC slt)
    RECORDED_F0 = 180.0

    def __init__(self, people, folder=None):
        from .recorded import recorded_speech_files

        self._setup(recorded_speech_files(folder), people)

    def _start(self, k, fs):
        f = k % len(self.files)
        n = len(self._file(f, fs))
        return f, int(n * ((0.37 * (k // len(self.files))) % 1.0))

    def _rate(self, person, fs):
        speed = float(np.clip(person.voice.f0 / self.RECORDED_F0, 0.75, 1.3))
        return int(round(fs / speed))


_WORDS = (
    "the robot looks at people who talk in the room and it listens to every voice we "
    "could meet later today maybe after lunch I think the weather is nice but the "
    "train was late again so we walked along the river to the old market where they "
    "sell fresh bread coffee and books do you know what time it is now please tell me "
    "more about your project it sounds interesting really yes of course thank you"
).split()


def espeak_available() -> bool:
    """True when the ``espeak-ng`` program is on the PATH."""
    return shutil.which("espeak-ng") is not None


class EspeakSpeech(SpeechSource):
    """Speech synthesised by espeak-ng (random English sentences from a word list).

    Pitch (-p) follows the person's F0, the voice variant (m3/f3) the vocal-tract
    factor, and the speed (-s) the syllable rate.
    """

    def __init__(self):
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise ValueError("speech source 'espeak' needs the espeak-ng program (apt-get install "
                             "espeak-ng); use --speech synthetic or --speech-dir DIR instead")
        self.exe = exe

    def _say(self, text: str, voice: VoiceSpec, fs: int) -> np.ndarray:
        variant = "f3" if voice.formant_scale > 1.07 else "m3"
        pitch = int(np.clip((voice.f0 - 70.0) / 2.0, 0, 99))
        speed = int(np.clip(voice.syllable_rate * 36.0, 80, 400))
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "say.wav"
            subprocess.run([self.exe, "-v", f"en+{variant}", "-p", str(pitch), "-s", str(speed),
                            "-w", str(wav), text], check=True, capture_output=True, timeout=60)
            data = wav.read_bytes()
        rate, x = scipy.io.wavfile.read(io.BytesIO(data))
        return _prepare(x, rate, fs)

    def render(self, person, n, fs, rng):
        def sentences():
            while True:
                k = max(3, int(n / fs * 2.5) + 1)
                yield self._say(" ".join(rng.choice(_WORDS, size=k)), person.voice, fs)

        return _fill(sentences(), n, fs, person.voice.level_db)


def make_speech_source(spec, people) -> SpeechSource:
    """The :class:`SpeechSource` for a :class:`~av_perception.sim.scene.SpeechSpec`."""
    if spec.source == "synthetic":
        return SyntheticSpeech()
    if spec.source == "espeak":
        return EspeakSpeech()
    if spec.source == "recorded":
        return RecordedSpeech(people, spec.directory)
    return WavSpeech(spec.directory, people)
