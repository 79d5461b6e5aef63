"""Live voices: each track's voice as chunks stamped on the audio's clock, for the nodes.

:class:`LiveVoices` wraps a :class:`~av_perception.pipeline.voices.VoiceStream` for a live
audio stream: the audio stage's features (with ``spec``) are pushed as they come, the
tracker's outputs (in the camera frame) as they are made, and every push returns the
:class:`VoiceChunk` s now final, each stamped with the time of its first sample (the audio
chunks' stamps: sample 0 of a stream is its first frame's first sample).  What a live
stream meets is handled here, without ROS:

- a track that ends: its voice goes on until every sample of it is out (the remaining
  samples come in the next chunks), then it is listed in :attr:`LiveVoices.ended`;
- clipped audio chunks (:meth:`LiveVoices.input_chunk` with ``clipped``): zero in every
  voice (a clipped mixture's masks and samples are wrong), counted;
- refused chunks (NaN, infinite: the audio stage makes no frames of them): a gap of more
  than 50 ms is zero in every voice (no frame covers it; the front-end's clock closes up
  a shorter one: the later samples are stamped that much early, for every stage);
- a sample-rate change, the stream's time going back or a gap longer than
  :data:`MAX_GAP`: the voices so far are flushed and a new stream starts, with the reason
  in :attr:`LiveVoices.restart_reason`.

Two latencies of every chunk are kept for the statistics: from the sound (its publication
time minus its first sample's time: the audio clock must be the caller's, as a live
capture's stamps are) and added (minus the arrival of the audio chunk holding that sample:
what the voices add to the audio stage, without the capture and the queueing before it).
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from .voices import VoiceSeparator

__all__ = ["LiveVoices", "VoiceChunk", "MAX_GAP"]

#: s, a longer gap between two pushes' frames starts a new stream (a device reopened)
MAX_GAP = 1.0


@dataclass
class VoiceChunk:
    """Samples of one track's voice at ``rate`` Hz; ``stamp`` = time of the first sample
    (s, the audio's clock); ``arrival`` = when the audio holding that sample arrived
    (the caller's clock; NaN if unknown)."""

    track_id: int
    stamp: float
    rate: int
    samples: np.ndarray
    arrival: float = float("nan")


class LiveVoices:
    """Streaming per-track voices for a node (see module docstring).

    Parameters
    ----------
    front_end : BinauralFrontEnd
        The audio stage's front-end (built with ``keep_spectra=True``): its STFT, rate,
        input rate.
    geometry : MicGeometry or head model
        The tracks' predicted ITD (and ILD).
    config : VoiceConfig
    """

    def __init__(self, front_end, geometry, config):
        self.separator = VoiceSeparator(front_end, geometry, config)
        self.front_end = front_end
        self.rate = self.separator.rate
        self._lock = threading.Lock()
        self._new_outputs: list = []
        self._newest_output = None  # handed to a new stream (a restart)
        self._inputs: deque = deque()  # (end stamp, arrival) of the audio chunks
        self._clipped: list = []  # (start, end) s of clipped chunks not yet out
        self.stream = None
        self._input_rate = None
        self._last_stamp = None
        self.ended: list = []  # tracks whose voice ended in the newest push
        self._ids: set = set()
        self.restart_reason = ""
        self.restarts = 0
        self.chunks = 0
        self.samples = 0
        self.clipped_chunks = 0
        self.zeroed_samples = 0
        self.latencies: list = []  # s, (from the sound, added) of each chunk since the last pop

    @property
    def latency_bound(self) -> float:
        """s, the stream's algorithmic latency (one hop plus one frame)."""
        c = self.front_end.config
        return (self.separator.hop_frames * c.hop_length + c.frame_length) / c.processing_rate

    def add_outputs(self, outputs) -> None:
        """Tracker outputs (``stamp``, ``ids``, ``position`` in the camera frame,
        ``speaking``) in time order; thread-safe."""
        with self._lock:
            self._new_outputs.extend(outputs)

    def input_chunk(self, start: float, end: float, arrival: float,
                    clipped: bool = False) -> None:
        """An audio chunk of the stream ([start, end) s on the audio clock) arrived at
        ``arrival``; ``clipped``: its samples reached full scale (zero in the voices)."""
        self._inputs.append((float(end), float(arrival)))
        if clipped:
            self._clipped.append((float(start), float(end)))
            self.clipped_chunks += 1

    def _restart(self, reason: str) -> list:
        out = self._finish()
        self.restart_reason = reason
        self.restarts += 1
        return out

    def _finish(self) -> list:
        chunks = []
        if self.stream is not None:
            chunks = self._chunks(self.stream.flush(), float("nan"))
            self.ended.extend(sorted(self._ids))
            self._ids = set()
            self.stream = None
        return chunks

    def push(self, features, now: float) -> list:
        """The audio stage's next features (with ``spec``), pushed at ``now`` (the caller's
        clock); returns the :class:`VoiceChunk` s now final (in time order per track).
        :attr:`ended` lists the tracks whose voice is complete."""
        self.ended = []
        out = []
        if not len(features):
            return out
        if features.spec is None:
            raise ValueError("the features carry no STFT: build the audio front-end with "
                             "keep_spectra=True for the voices")
        rate_in = self.front_end.input_rate
        first = float(features.stamp[0])
        if self.stream is not None:
            if rate_in != self._input_rate:
                out += self._restart(f"the audio's sample rate changed from "
                                     f"{self._input_rate} Hz to {rate_in} Hz: the voices "
                                     "restarted (a voice chunk's rate is in its message)")
            elif first <= self._last_stamp:
                out += self._restart(f"the audio's time went back ({self._last_stamp:.3f} "
                                     f"-> {first:.3f} s): the voices restarted")
            elif first - self._last_stamp > MAX_GAP:
                out += self._restart(f"a {first - self._last_stamp:.2f} s gap in the audio: "
                                     "the voices restarted")
        with self._lock:
            outputs, self._new_outputs = self._new_outputs, []
        if self.stream is None:
            n = self.separator.frame_length
            self.stream = self.separator.stream(first - (n - 1) / 2 / self.rate)
            self._input_rate = rate_in
            if self._newest_output is not None:  # the tracks go on
                outputs = [self._newest_output] + outputs
        if outputs:
            self._newest_output = outputs[-1]
        self._last_stamp = float(features.stamp[-1])
        out += self._chunks(self.stream.push(features, outputs), now)
        ids = self.stream.track_ids
        # a track of a restarted stream that goes on in the new one has not ended
        self.ended = sorted((set(self.ended) | (self._ids - ids)) - ids)
        self._ids = set(ids)
        return out

    def flush(self) -> list:
        """Every remaining sample (the stream ends); :attr:`ended` lists every track."""
        self.ended = []
        return self._finish()

    def _chunks(self, parts: dict, now: float) -> list:
        stream = self.stream
        out = []
        for tid, pieces in sorted(parts.items()):
            for a, x in pieces:
                if not len(x):
                    continue
                t0 = stream.start_time + a / self.rate
                x = np.asarray(x, dtype=np.float32)
                x = self._zero_clipped(x, t0)
                arrival = self._arrival(t0)
                out.append(VoiceChunk(int(tid), t0, self.rate, x, arrival))
                self.chunks += 1
                self.samples += len(x)
                if np.isfinite(now):
                    self.latencies.append((now - t0, now - arrival))
        if out:  # inputs and clipped spans before the oldest sample out are done
            done = min(c.stamp for c in out)
            while len(self._inputs) > 1 and self._inputs[0][0] <= done:
                self._inputs.popleft()
            self._clipped = [s for s in self._clipped if s[1] > done]
        return out

    def _zero_clipped(self, x, t0: float):
        t1 = t0 + len(x) / self.rate
        for c0, c1 in self._clipped:
            if c1 <= t0 or c0 >= t1:
                continue
            a = max(0, int(np.floor((c0 - t0) * self.rate)))
            b = min(len(x), int(np.ceil((c1 - t0) * self.rate)))
            if b > a:
                x = x.copy() if not x.flags.writeable else x
                self.zeroed_samples += int(np.count_nonzero(x[a:b]))
                x[a:b] = 0.0
        return x

    def _arrival(self, t: float) -> float:
        """When the audio chunk holding the sample at ``t`` (s) arrived (NaN: unknown)."""
        for end, arrival in self._inputs:
            if end > t:
                return arrival
        return float("nan")

    def pop_latencies(self) -> tuple:
        """(from the sound, added) latencies (s, arrays; added NaN where the arrival is
        unknown) of the chunks since the last call."""
        out, self.latencies = np.asarray(self.latencies).reshape(-1, 2), []
        return out[:, 0], out[:, 1]
