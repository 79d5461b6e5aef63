"""Audio sources behind one interface: live sound card, WAV file, rosbag2.

Every source yields :class:`AudioChunk` objects: float64 samples (n, 2) in
[-1, 1] holding the [left, right] ear channels, the sample rate, and the time
(s) of the first sample.  ``sounddevice`` is imported only when a live source
is opened, so everything else works without PortAudio.
"""
from __future__ import annotations

import queue
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..core.audio import pcm_to_float
from ..core.config import ConfigError, StageConfig, param

__all__ = [
    "AudioCaptureConfig",
    "AudioChunk",
    "AudioSourceError",
    "WavAudioSource",
    "SoundDeviceAudioSource",
    "import_sounddevice",
    "read_wav",
    "write_wav",
    "select_channels",
    "check_channels",
    "ClippingMonitor",
]


@dataclass(frozen=True)
class AudioCaptureConfig(StageConfig):
    """Live capture from a sound card through sounddevice/PortAudio."""

    SECTION: ClassVar[str] = "capture"

    device: str = param(
        "", "Input device: a name (substring match, e.g. 'pulse') or an index; "
        "empty for the system default."
    )
    sample_rate: int = param(
        16000, "Capture sample rate in Hz (resampled to audio.processing_rate).",
        low=8000, high=192000,
    )
    channels: int = param(
        2, "Number of channels to open on the device.", low=1, high=64
    )
    channel_left: int = param(
        0, "Index of the left-ear channel among the opened ones.", low=0, high=63)
    channel_right: int = param(
        1, "Index of the right-ear channel among the opened ones.", low=0, high=63)
    block_size: int = param(
        256, "Samples per capture block (latency vs. overhead).", low=16, high=65536
    )
    reconnect_interval: float = param(
        2.0, "Seconds between attempts to reopen a device that failed or disappeared.",
        low=0.1, high=60.0,
    )
    stall_timeout: float = param(
        2.0, "Seconds without any audio block from an open device after which it is treated "
        "as disconnected and reopened.", low=0.2, high=600.0,
    )
    input_file: str = param(
        "", "Play this 2-channel WAV file in real time instead of capturing from the device "
        "(empty: capture from the device).")
    loop_input: bool = param(False, "Loop input_file forever.")

    def validate(self):
        for name in ("channel_left", "channel_right"):
            if getattr(self, name) >= self.channels:
                raise ConfigError(
                    f"parameter 'capture.{name}' = {getattr(self, name)} is not allowed: must be "
                    f"< capture.channels ({self.channels})"
                )
        if self.channel_left == self.channel_right:
            raise ConfigError(
                "parameters 'capture.channel_left' and 'capture.channel_right' are both "
                f"{self.channel_left}: select two different channels"
            )


class AudioSourceError(RuntimeError):
    """A source cannot deliver audio (missing library, device, file, bad format)."""


@dataclass
class AudioChunk:
    samples: np.ndarray  # (n, 2) float64, [left, right]
    sample_rate: int
    stamp: float  # s, time of the first sample

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def check_channels(left: int, right: int) -> None:
    """Refuse ear channel choices that cannot be binaural (the same channel twice, negative)."""
    if int(left) < 0 or int(right) < 0:
        raise AudioSourceError(
            f"channel indices must be >= 0 (left {left}, right {right}): pick the ear "
            "channels with --left/--right or capture.channel_left / capture.channel_right")
    if int(left) == int(right):
        raise AudioSourceError(
            f"the left and right ear channels are both {left}: one channel twice has no "
            "time or level difference (every ITD would be 0); pick two different channels "
            "with --left/--right or capture.channel_left / capture.channel_right")


#: |sample| at or above this counts as clipped (full scale of 16-bit PCM is 32767/32768)
CLIP_LEVEL = 0.999
#: warn when more than this fraction of the samples are clipped
CLIP_WARN_FRACTION = 0.001


class ClippingMonitor:
    """Passes the chunks of an audio source through, counting clipped samples (at full
    scale): a gain set too high destroys the ITD and the activity silently."""

    def __init__(self, source):
        self.source = source
        self.samples = 0
        self.clipped = 0

    def __iter__(self):
        for chunk in self.source:
            x = np.asarray(chunk.samples)
            self.samples += x.size
            self.clipped += int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL))
            yield chunk

    @property
    def fraction(self) -> float:
        return self.clipped / self.samples if self.samples else 0.0

    def warning(self) -> str | None:
        """A warning with the clipped fraction, or None when the audio is not clipped."""
        if self.fraction <= CLIP_WARN_FRACTION:
            return None
        return (f"the audio is clipped: {100 * self.fraction:.1f} % of the samples are at "
                "full scale; ITD, ILD and activity are unreliable in clipped frames -- lower "
                "the microphone or recording gain")

    def __getattr__(self, name):  # errors, truncated, sample_rate... of the source
        return getattr(self.source, name)


def select_channels(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Pick the ear channels (n, C) -> (n, 2), with a clear error when they do not exist."""
    check_channels(left, right)
    if x.ndim != 2:
        raise AudioSourceError(f"expected (samples, channels) audio, got shape {x.shape}")
    n_ch = x.shape[1]
    if max(left, right) >= n_ch:
        raise AudioSourceError(
            f"the input has {n_ch} channel(s) but channels {left} (left) and {right} (right) "
            "were selected: the binaural front-end needs two ear channels; pick them with "
            "capture.channel_left / capture.channel_right (or --left/--right)")
    return x[:, [left, right]]


# ---------------------------------------------------------------------------- WAV
def read_wav(path, warnings_out: list | None = None) -> tuple[np.ndarray, int]:
    """Read a WAV file (PCM 8/16/24/32-bit or float) -> (samples (n, C) float64, rate).

    A file cut short (a recording that was killed, a copy that did not finish) is read up
    to its last whole sample frame, with a warning in ``warnings_out`` saying how much of
    what its header announces is missing."""
    import warnings

    import scipy.io.wavfile

    path = Path(path)
    if not path.exists():
        raise AudioSourceError(f"WAV file {path} does not exist")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rate, data = scipy.io.wavfile.read(path, mmap=False)
        except (ValueError, EOFError) as exc:
            try:
                rate, data, note = _read_truncated_wav(path)
            except (ValueError, EOFError, struct.error, OSError):
                raise AudioSourceError(f"cannot read {path} as a WAV file: {exc}") from exc
            caught = []
            if warnings_out is not None:
                warnings_out.append(note)
    for w in caught:
        if warnings_out is not None:
            warnings_out.append(f"{path}: {w.message} (the file is truncated: "
                                "the samples present were read)")
    if data.ndim == 1:
        data = data[:, None]
    return pcm_to_float(data), int(rate)


def _read_truncated_wav(path: Path):
    """(rate, data (n, C), note) of a RIFF/WAVE file whose data chunk is cut short,
    up to its last whole sample frame (PCM 8/16/24/32-bit, float 32/64-bit)."""
    raw = path.read_bytes()
    if raw[:4] not in (b"RIFF", b"RIFX") or raw[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    endian = "<" if raw[:4] == b"RIFF" else ">"
    pos, fmt = 12, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack(endian + "I", raw[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            tag, channels, rate, _, block, bits = struct.unpack(endian + "HHIIHH",
                                                                raw[body:body + 16])
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the subformat
                tag = struct.unpack(endian + "H", raw[body + 24:body + 26])[0]
            fmt = (tag, channels, rate, block, bits)
        elif cid == b"data":
            if fmt is None:
                raise ValueError("data chunk before the fmt chunk")
            tag, channels, rate, block, bits = fmt
            present = raw[body:body + size]
            n = len(present) // block
            width = block // channels
            buf = present[:n * block]
            if tag == 3:
                data = np.frombuffer(buf, dtype=f"{endian}f{width}")
            elif tag == 1 and width == 1:
                data = np.frombuffer(buf, dtype=np.uint8)
            elif tag == 1 and width in (2, 4):
                data = np.frombuffer(buf, dtype=f"{endian}i{width}")
            elif tag == 1 and width == 3:
                b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3)
                if endian == ">":
                    b = b[:, ::-1]
                data = (b[:, 0].astype(np.int32) << 8 | b[:, 1].astype(np.int32) << 16
                        | b[:, 2].astype(np.int32) << 24)
            else:
                raise ValueError(f"unsupported WAV format {tag} with {bits} bits")
            data = data.reshape(n, channels)
            note = (f"WAV file {path} is truncated: its header announces {size // block} "
                    f"sample frames, {n} are present ({len(present) - n * block} bytes of a "
                    "cut frame dropped); the samples present were read")
            return rate, data, note
        pos = body + size + (size & 1)
    raise ValueError("no data chunk")


def write_wav(path, samples: np.ndarray, rate: int, dtype: str = "int16") -> None:
    """Write (n, C) float samples in [-1, 1] as a PCM16 (default) or float32 WAV."""
    import scipy.io.wavfile

    x = np.asarray(samples, dtype=np.float64)
    if dtype == "int16":
        data = (np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    elif dtype == "float32":
        data = x.astype(np.float32)
    else:
        raise ValueError("dtype must be 'int16' or 'float32'")
    scipy.io.wavfile.write(Path(path), int(rate), data)


class WavAudioSource:
    """Chunks of a WAV file, optionally paced in real time.

    Parameters
    ----------
    path : str or Path
    chunk_size : int
        Samples per chunk.
    channel_left, channel_right : int
        Ear channels among the file's channels.
    start_time : float
        Stamp (s) of the first sample.
    realtime : bool
        Sleep so that chunks come out at the file's own rate (for live-like tests).
    loop : bool
        Start again at the end (stamps keep increasing).
    """

    def __init__(self, path, chunk_size: int = 1024, channel_left: int = 0, channel_right: int = 1,
                 start_time: float = 0.0, realtime: bool = False, loop: bool = False):
        check_channels(channel_left, channel_right)
        self.errors: list[str] = []  # warnings about the file (truncated)
        data, self.sample_rate = read_wav(path, self.errors)
        self.path = Path(path)
        self.samples = select_channels(data, channel_left, channel_right)
        self.chunk_size = int(chunk_size)
        self.start_time = float(start_time)
        self.realtime = realtime
        self.loop = loop

    def __iter__(self) -> Iterator[AudioChunk]:
        return self.chunks()

    def chunks(self) -> Iterator[AudioChunk]:
        n = len(self.samples)
        offset = 0
        wall0 = time.monotonic()
        while True:
            for i in range(0, n, self.chunk_size):
                block = self.samples[i:i + self.chunk_size]
                stamp = self.start_time + (offset + i) / self.sample_rate
                if self.realtime:
                    due = wall0 + (offset + i + len(block)) / self.sample_rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield AudioChunk(block, self.sample_rate, stamp)
            if not self.loop or n == 0:
                return
            offset += n

    def close(self):
        pass


# -------------------------------------------------------------------- sounddevice
def import_sounddevice():
    """Import sounddevice, turning a missing PortAudio into a clear error."""
    try:
        import sounddevice
    except OSError as exc:  # the module exists but libportaudio2 is missing
        raise AudioSourceError(
            "PortAudio library not found: install the system package libportaudio2 "
            "(e.g. 'sudo apt-get install libportaudio2') to capture live audio") from exc
    except ImportError as exc:
        raise AudioSourceError(
            "the Python package sounddevice is not installed: 'pip install sounddevice' "
            "(or install the package with the 'audio' extra)") from exc
    return sounddevice


def _rescan_devices(sd):
    """Make PortAudio enumerate the devices again (it lists them once, at initialisation),
    so that a device that came back after a failure can be found.  Only safe while no
    stream is open, which is the case when a source (re)opens."""
    try:
        sd._terminate()
        sd._initialize()
    except Exception:  # noqa: BLE001 - private API; without it we keep the old list
        pass


class SoundDeviceAudioSource:
    """Live capture through PortAudio (sounddevice InputStream, callback mode).

    The callback copies each block into a queue; :meth:`read` takes them out.
    Overflows reported by PortAudio and blocks dropped because the consumer is
    too slow are counted in :attr:`overflows` and :attr:`dropped_blocks`.

    Parameters
    ----------
    config : AudioCaptureConfig
    clock : callable, optional
        Returns the current time in seconds (e.g. the ROS clock); stamps are
        ``clock()`` at the callback minus the block duration and the input latency.
    """

    FIRST_BLOCK_GRACE = 5.0  # s allowed for the first block after opening

    def __init__(self, config, clock=time.time, max_queue: int = 256):
        self.config = config
        self.clock = clock
        self.sample_rate = int(config.sample_rate)
        self.overflows = 0
        self.dropped_blocks = 0
        self.status_messages: list[str] = []
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._stream = None
        self._lock = threading.Lock()
        self.device_name = ""
        self._last_block = 0.0
        self._got_block = False

    # ---------------------------------------------------------------- device
    def _resolve_device(self, sd):
        dev = self.config.device.strip()
        if dev == "":
            return None
        if dev.lstrip("-").isdigit():
            return int(dev)
        matches = [i for i, d in enumerate(sd.query_devices())
                   if dev.lower() in d["name"].lower() and d["max_input_channels"] > 0]
        if not matches:
            names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
            raise AudioSourceError(
                f"no input device matches {dev!r}; input devices: {names or 'none'} "
                "(set capture.device to one of them or to an index)")
        return matches[0]

    def open(self):
        """Open and start the input stream (raises AudioSourceError with the fix)."""
        sd = import_sounddevice()
        _rescan_devices(sd)
        device = self._resolve_device(sd)
        try:
            info = sd.query_devices(device, "input")
        except Exception as exc:  # PortAudioError or ValueError
            raise AudioSourceError(f"cannot query input device {self.config.device!r}: {exc}") \
                from exc
        if info["max_input_channels"] < self.config.channels:
            raise AudioSourceError(
                f"device {info['name']!r} has {info['max_input_channels']} input channel(s) but "
                f"capture.channels = {self.config.channels}; choose a device with two ear "
                "channels or lower capture.channels")
        self.device_name = info["name"]
        try:
            self._stream = sd.InputStream(
                device=device, samplerate=self.sample_rate, channels=self.config.channels,
                blocksize=self.config.block_size, dtype="float32", callback=self._callback)
            self._stream.start()
            self._last_block = time.monotonic()
            self._got_block = False
        except Exception as exc:
            self._stream = None
            raise AudioSourceError(
                f"cannot open input device {info['name']!r} at {self.sample_rate} Hz with "
                f"{self.config.channels} channels: {exc}") from exc

    def _callback(self, indata, frames, time_info, status):
        now = self.clock()
        if status:
            if status.input_overflow:
                self.overflows += 1
            self.status_messages.append(str(status))
            del self.status_messages[:-20]
        latency = 0.0
        try:
            latency = max(0.0, time_info.currentTime - time_info.inputBufferAdcTime)
        except AttributeError:
            pass
        stamp = now - frames / self.sample_rate - latency
        block = indata[:, [self.config.channel_left, self.config.channel_right]].astype(np.float64)
        try:
            self._queue.put_nowait(AudioChunk(block, self.sample_rate, stamp))
        except queue.Full:
            self.dropped_blocks += 1

    @property
    def active(self) -> bool:
        s = self._stream
        return s is not None and bool(s.active)

    def read(self, timeout: float = 0.1) -> list[AudioChunk]:
        """All blocks captured so far (waits up to ``timeout`` s for the first one).

        Raises AudioSourceError when the stream stopped (device disappeared).
        """
        chunks = []
        try:
            chunks.append(self._queue.get(timeout=timeout))
            while True:
                chunks.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        now = time.monotonic()
        if chunks:
            self._last_block = now
            self._got_block = True
        elif self._stream is not None:
            if not self._stream.active:
                raise AudioSourceError(
                    f"input stream on {self.device_name!r} stopped (device disconnected or "
                    "driver error); it will be reopened")
            stall = getattr(self.config, "stall_timeout", 2.0)
            if not self._got_block:
                stall += self.FIRST_BLOCK_GRACE  # sound servers buffer before the first block
            if now - self._last_block > stall:
                raise AudioSourceError(
                    f"no audio from {self.device_name!r} for {now - self._last_block:.1f} s "
                    "(device disconnected or sound server gone); it will be reopened")
        return chunks

    def chunks(self) -> Iterator[AudioChunk]:
        """Blocks as they arrive, until :meth:`close`."""
        while self._stream is not None:
            yield from self.read()

    def close(self):
        with self._lock:
            if self._stream is not None:
                try:
                    self._stream.stop()
                    self._stream.close()
                except Exception:  # noqa: BLE001 - closing a dead device may fail
                    pass
                self._stream = None


