"""Decoding of ROS 2 audio messages (both audio_common flavours) and the bag source.

Duck-typed: works on rosbags-deserialised messages and on rclpy messages alike.

* audio_common 4.x: ``audio_common_msgs/msg/AudioStamped`` (header + audio
  {audio_data {float32_data, int32_data, int16_data, int8_data, uint8_data},
  info {format (PortAudio constant), channels, rate, chunk}}), interleaved.
* ros-drivers audio_common: ``AudioDataStamped`` / ``AudioData`` (raw bytes)
  with the format on a separate ``AudioInfo`` topic (channels, sample_rate,
  sample_format such as S16LE / S32LE / F32LE, coding_format).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..core.audio import pcm_to_float
from .audio_sources import AudioChunk, AudioSourceError, check_channels, select_channels
from .bag import BagError, BagReader, choose_topic
from .msgdefs import PORTAUDIO_FORMATS
from .stamps import stamp_to_seconds

__all__ = [
    "AUDIO_TYPES",
    "AudioFormat",
    "decode_audio_common4",
    "decode_audio_bytes",
    "format_from_audio_info",
    "BagAudioSource",
    "stamp_to_sec",
]

AUDIO_STAMPED = "audio_common_msgs/msg/AudioStamped"
AUDIO_DATA_STAMPED = "audio_common_msgs/msg/AudioDataStamped"
AUDIO_DATA = "audio_common_msgs/msg/AudioData"
AUDIO_INFO = "audio_common_msgs/msg/AudioInfo"
AUDIO_TYPES = (AUDIO_STAMPED, AUDIO_DATA_STAMPED, AUDIO_DATA)

_PA_FIELDS = {1: "float32_data", 2: "int32_data", 8: "int16_data", 16: "int8_data",
              32: "uint8_data"}
_GST_FORMATS = {
    "S16LE": "<i2", "S16BE": ">i2", "S32LE": "<i4", "S32BE": ">i4", "F32LE": "<f4",
    "F32BE": ">f4", "S8": "i1", "U8": "u1", "S24LE": "s24le", "F64LE": "<f8",
}


#: builtin_interfaces/Time -> float seconds
stamp_to_sec = stamp_to_seconds


class AudioFormat:
    """Raw-audio layout for byte payloads (ros-drivers AudioData)."""

    def __init__(self, channels: int, rate: int, sample_format: str = "S16LE"):
        fmt = sample_format.upper()
        if fmt not in _GST_FORMATS:
            raise AudioSourceError(
                f"unsupported sample format {sample_format!r}; supported: "
                f"{', '.join(sorted(_GST_FORMATS))}")
        if channels < 1 or rate <= 0:
            raise AudioSourceError(f"invalid audio format: {channels} channels at {rate} Hz")
        self.channels = int(channels)
        self.rate = int(rate)
        self.sample_format = fmt


def format_from_audio_info(info) -> AudioFormat:
    """AudioFormat from a ros-drivers ``AudioInfo`` message."""
    coding = (getattr(info, "coding_format", "") or "wave").lower()
    if coding not in ("wave", "wav", "raw", "pcm", ""):
        raise AudioSourceError(
            f"audio coding {info.coding_format!r} is compressed; only raw PCM ('wave') audio can "
            "be processed: record with coding_format 'wave'")
    return AudioFormat(int(info.channels), int(info.sample_rate), info.sample_format or "S16LE")


def decode_audio_bytes(data, fmt: AudioFormat) -> np.ndarray:
    """Interleaved PCM bytes -> (n, channels) float64 in [-1, 1]."""
    raw = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray) else data.tobytes(),
                        dtype=np.uint8)
    if fmt.sample_format == "S24LE":
        if len(raw) % 3:
            raise AudioSourceError("S24LE payload is not a multiple of 3 bytes")
        b = raw.reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float64) / float(1 << 23)
    else:
        dtype = np.dtype(_GST_FORMATS[fmt.sample_format])
        if len(raw) % dtype.itemsize:
            raise AudioSourceError(
                f"audio payload of {len(raw)} bytes is not a multiple of the sample size "
                f"({dtype.itemsize} bytes for {fmt.sample_format})")
        x = pcm_to_float(raw.view(dtype).astype(dtype.newbyteorder("=")))
    if len(x) % fmt.channels:
        raise AudioSourceError(
            f"{len(x)} samples do not divide into {fmt.channels} interleaved channels")
    return x.reshape(-1, fmt.channels)


def decode_audio_common4(msg) -> tuple[np.ndarray, int, float]:
    """audio_common 4.x ``AudioStamped`` -> (samples (n, channels), rate, stamp of first sample)."""
    audio = msg.audio
    info = audio.info
    data = getattr(audio, "audio_data", None) or getattr(audio, "audio", None)
    if data is None:
        raise AudioSourceError("AudioStamped message without audio data field")
    fmt = int(info.format)
    if fmt not in _PA_FIELDS:
        name = PORTAUDIO_FORMATS.get(fmt, "unknown")
        raise AudioSourceError(
            f"unsupported PortAudio sample format {fmt} ({name}); supported: float32 (1), "
            "int32 (2), int16 (8), int8 (16), uint8 (32)")
    arr = np.asarray(getattr(data, _PA_FIELDS[fmt]))
    if fmt == 2:
        arr = arr.astype(np.int32)
    elif fmt == 8:
        arr = arr.astype(np.int16)
    elif fmt == 16:
        arr = arr.astype(np.int8)
    elif fmt == 32:
        arr = arr.astype(np.uint8)
    channels = int(info.channels)
    if channels < 1:
        raise AudioSourceError(f"AudioStamped declares {channels} channels")
    if arr.size % channels:
        raise AudioSourceError(
            f"AudioStamped holds {arr.size} samples, not a multiple of its {channels} channels")
    x = pcm_to_float(arr).reshape(-1, channels)
    return x, int(info.rate), stamp_to_sec(msg.header.stamp)


class BagAudioSource:
    """Audio chunks from a rosbag2, either audio_common flavour.

    Parameters
    ----------
    path : bag directory
    topic : str, optional
        Audio topic; detected automatically when the bag has exactly one (or ``/audio``).
    channel_left, channel_right : int
        Ear channels among the message's channels.
    audio_format : AudioFormat, optional
        For ros-drivers bags without an AudioInfo topic: the raw layout.
    """

    def __init__(self, path, topic: str | None = None, channel_left: int = 0,
                 channel_right: int = 1, audio_format: AudioFormat | None = None,
                 start: float | None = None, stop: float | None = None):
        check_channels(channel_left, channel_right)
        self.path = path
        self.channel_left = channel_left
        self.channel_right = channel_right
        self.audio_format = audio_format
        self.start = start
        self.stop = stop
        with BagReader(path) as bag:
            topics = bag.topics
        self.topic = choose_topic(topics, AUDIO_TYPES, topic, preferred=("/audio", "audio"),
                                  what="audio")
        self.msgtype = topics[self.topic]
        self.info_topic = None
        if self.msgtype != AUDIO_STAMPED:
            infos = [t for t, m in topics.items() if m == AUDIO_INFO]
            if len(infos) >= 1:
                self.info_topic = infos[0]
            elif audio_format is None:
                raise BagError(
                    f"{self.topic} carries raw {self.msgtype} bytes but the bag has no "
                    "audio_common_msgs/msg/AudioInfo topic: give the format explicitly "
                    "(--rate, --channels, --sample-format)")
        self.errors: list[str] = []
        self.truncated = False
        self.sample_rate: int | None = None

    def __iter__(self) -> Iterator[AudioChunk]:
        return self.chunks()

    def chunks(self) -> Iterator[AudioChunk]:
        fmt = self.audio_format
        topics = [self.topic] + ([self.info_topic] if self.info_topic else [])
        start = int(self.start * 1e9) if self.start is not None else None
        stop = int(self.stop * 1e9) if self.stop is not None else None
        pending = []  # raw payloads that arrived before the first AudioInfo
        with BagReader(self.path) as bag:
            for m in bag.messages(topics, start=start, stop=stop):
                try:
                    if m.msgtype == AUDIO_INFO:
                        fmt = self.audio_format or format_from_audio_info(m.msg)
                        for p in pending:
                            yield self._chunk(decode_audio_bytes(p[0], fmt), fmt.rate, p[1])
                        pending.clear()
                        continue
                    if m.msgtype == AUDIO_STAMPED:
                        x, rate, stamp = decode_audio_common4(m.msg)
                        yield self._chunk(x, rate, stamp)
                        continue
                    if m.msgtype == AUDIO_DATA_STAMPED:
                        payload, stamp = m.msg.audio.data, stamp_to_sec(m.msg.header.stamp)
                    else:
                        payload, stamp = m.msg.data, m.log_time * 1e-9
                    if fmt is None:
                        pending.append((payload, stamp))
                        continue
                    yield self._chunk(decode_audio_bytes(payload, fmt), fmt.rate, stamp)
                except AudioSourceError as exc:
                    self.errors.append(f"{m.topic} at {m.log_time * 1e-9:.3f} s: {exc}")
            self.errors.extend(bag.errors)
            self.truncated = bag.truncated
        if pending:
            self.errors.append(
                f"{len(pending)} audio message(s) skipped: no AudioInfo message was recorded")

    def _chunk(self, x, rate, stamp) -> AudioChunk:
        self.sample_rate = rate
        return AudioChunk(select_channels(x, self.channel_left, self.channel_right), rate, stamp)
