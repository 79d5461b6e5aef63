"""Scene description: room, robot head, people, turn-taking, noise, rendering options.

A :class:`Scene` is fully resolved (every random choice of a preset is made), so a scene
saved as ``scene.json`` and loaded again (:func:`load_scene`) renders the very same bag.
Everything about people is in the left camera optical frame (x right, y down, z forward,
metres); the room is a shoebox with a corner at the origin, z up, and the robot's pose
(:class:`RobotSpec`) maps between the two.  Frames: docs/simulation.md, "The simulator".
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.config import MicArrayConfig, StereoCameraConfig
from .head_motion import HeadMotion, HeadMotionSpec
from .trajectory import Trajectory
from .voice import VoiceSpec

__all__ = [
    "SCENE_VERSION",
    "RoomSpec",
    "RobotSpec",
    "PersonSpec",
    "Utterance",
    "NoiseSpec",
    "DistractorSpec",
    "AudioSpec",
    "VideoSpec",
    "SpeechSpec",
    "Scene",
    "load_scene",
]

SCENE_VERSION = 1
SPEECH_SOURCES = ("synthetic", "espeak", "wav", "recorded")


def _vec(value, n: int, name: str) -> tuple:
    v = tuple(float(x) for x in value)
    if len(v) != n or not all(np.isfinite(v)):
        raise ValueError(f"{name} must be {n} finite numbers, got {value!r}")
    return v


@dataclass
class RoomSpec:
    """A shoebox room.

    size : (Lx, Ly, Lz) metres.
    rt60 : reverberation time in s (Sabine, via ``pyroomacoustics.inverse_sabine``);
        0 means anechoic (direct path only).
    absorption : energy absorption coefficient of every wall in (0, 1]; when set it
        replaces ``rt60`` for the wall material.
    max_order : cap on the image-source order (None: the order Sabine's formula asks for).
    early_order : image-source order recomputed for every segment of a *moving*
        source; the higher orders (the late reverberation) are taken from the
        source's first position.
    """

    size: tuple = (6.0, 5.0, 3.0)
    rt60: float = 0.4
    absorption: float | None = None
    max_order: int | None = None
    early_order: int = 10

    def __post_init__(self):
        self.size = _vec(self.size, 3, "room.size")
        if min(self.size) < 1.0:
            raise ValueError(f"room.size must be at least 1 m along each axis, got {self.size}")
        if not 0.0 <= self.rt60 <= 3.0:
            raise ValueError(f"room.rt60 must be in [0, 3] s, got {self.rt60}")
        if self.absorption is not None and not 0.0 < self.absorption <= 1.0:
            raise ValueError(f"room.absorption must be in (0, 1], got {self.absorption}")
        if self.max_order is not None and not 0 <= self.max_order <= 200:
            raise ValueError(f"room.max_order must be in [0, 200], got {self.max_order}")
        if not 0 <= self.early_order <= 50:
            raise ValueError(f"room.early_order must be in [0, 50], got {self.early_order}")

    @property
    def anechoic(self) -> bool:
        return self.max_order == 0 or (self.absorption is None and self.rt60 == 0.0)


HEADS = ("free_field", "kemar")
#: ears of the dummy head in the camera frame (config/profile_dummy_head.yaml)
DUMMY_HEAD_EARS = ((-0.09, 0.05, -0.03), (0.09, 0.05, -0.03))


@dataclass
class RobotSpec:
    """The robot head: camera pose in the room, stereo camera and microphones.

    head : 'free_field' (two mics in the air) or 'kemar' (the mics are the ears of the
        MIT KEMAR dummy head, whose interaural axis is the mics' axis; see sim.audio).
    """

    position: tuple = (0.8, 2.5, 1.25)
    yaw: float = 0.0
    camera: StereoCameraConfig = field(default_factory=StereoCameraConfig)
    mics: MicArrayConfig = field(default_factory=MicArrayConfig)
    head: str = "free_field"

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"robot.head must be one of {', '.join(HEADS)}, got {self.head!r}")
        self.position = _vec(self.position, 3, "robot.position")
        if isinstance(self.camera, dict):
            self.camera = StereoCameraConfig.from_dict(self.camera)
        if isinstance(self.mics, dict):
            self.mics = MicArrayConfig.from_dict(self.mics)

    @property
    def rotation(self) -> np.ndarray:
        """3x3 matrix whose columns are the camera axes (x, y, z) in room coordinates."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        forward = np.array([c, s, 0.0])
        right = np.array([s, -c, 0.0])
        down = np.array([0.0, 0.0, -1.0])
        return np.stack([right, down, forward], axis=1)

    def to_room(self, points) -> np.ndarray:
        """Camera-frame points (N, 3) -> room coordinates (N, 3)."""
        p = np.atleast_2d(np.asarray(points, dtype=float))
        return np.asarray(self.position) + p @ self.rotation.T

    def to_camera(self, points) -> np.ndarray:
        """Room coordinates (N, 3) -> camera-frame points (N, 3)."""
        p = np.atleast_2d(np.asarray(points, dtype=float))
        return (p - np.asarray(self.position)) @ self.rotation

    @property
    def floor_y(self) -> float:
        """Camera-frame y of the floor (the camera height above it)."""
        return float(self.position[2])


@dataclass
class PersonSpec:
    """One person: head trajectory, appearance and voice.

    waypoints : rows (t, x, y, z) of the face centre, camera frame (see :class:`Trajectory`).
    face : name of a face photo (see :func:`av_perception.sim.faces.face_names`).
    shirt : BGR colour of the clothes, 0..255.
    sway : amplitude (m) of the idle head motion.
    turn_away : intervals [[start, end], ...] (s) in which the head is turned away from
        the camera: the back of the head (hair, no face) is drawn; the person stays where
        the trajectory says (ground truth unchanged: still there and visible).
    """

    id: int
    waypoints: list
    face: str = "astronaut"
    voice: VoiceSpec = field(default_factory=VoiceSpec)
    shirt: tuple = (150, 90, 40)
    sway: float = 0.0
    name: str = ""
    turn_away: list = field(default_factory=list)

    def __post_init__(self):
        if isinstance(self.voice, dict):
            self.voice = VoiceSpec(**self.voice)
        self.shirt = tuple(int(v) for v in self.shirt)
        self.waypoints = [[float(v) for v in row] for row in self.waypoints]
        self.turn_away = sorted([float(a), float(b)] for a, b in self.turn_away)
        for a, b in self.turn_away:
            if not (np.isfinite(a) and np.isfinite(b) and b > a >= 0.0):
                raise ValueError(f"person {self.id}: turn_away interval [{a}, {b}] needs "
                                 "0 <= start < end (s)")
        for (_, b0), (a1, _) in zip(self.turn_away, self.turn_away[1:]):
            if a1 < b0:
                raise ValueError(f"person {self.id}: turn_away intervals overlap ({a1} < {b0})")
        self.trajectory()  # validates

    def turned_away(self, t: float) -> bool:
        """True while the head is turned away at ``t`` (start inclusive, end exclusive)."""
        return any(a <= t < b for a, b in self.turn_away)

    def trajectory(self) -> Trajectory:
        return Trajectory(self.waypoints, self.sway, phase=0.7 * self.id + 0.3)


@dataclass
class Utterance:
    """Person ``person`` speaks from ``start`` to ``end`` (s from the scene start)."""

    person: int
    start: float
    end: float

    def __post_init__(self):
        if not self.end > self.start >= 0.0:
            raise ValueError(f"utterance of person {self.person} needs 0 <= start < end, "
                             f"got [{self.start}, {self.end}]")


@dataclass
class NoiseSpec:
    """Background noise at the microphones.

    snr_db : speech-to-noise power ratio at the mics (speech power measured over the
        samples where someone speaks); None for no background noise.
    kind : 'diffuse' (spherically isotropic field: inter-mic coherence sinc(2 pi f d / c))
        or 'incoherent' (independent channels).
    color : 'pink' (1/f power) or 'white'.
    """

    snr_db: float | None = 20.0
    kind: str = "diffuse"
    color: str = "pink"

    def __post_init__(self):
        if self.kind not in ("diffuse", "incoherent"):
            raise ValueError(f"noise.kind must be 'diffuse' or 'incoherent', got {self.kind!r}")
        if self.color not in ("pink", "white"):
            raise ValueError(f"noise.color must be 'pink' or 'white', got {self.color!r}")
        if self.snr_db is not None and not -30.0 <= self.snr_db <= 100.0:
            raise ValueError(f"noise.snr_db must be in [-30, 100] dB, got {self.snr_db}")


@dataclass
class DistractorSpec:
    """A non-speech point source (camera-frame position), e.g. a radio or a fan.

    level_db : its power at the mics relative to the speech power (dB).
    start, end : when it plays (s); end None = until the scene ends.
    """

    kind: str = "fan"
    position: tuple = (2.0, 0.5, 3.0)
    level_db: float = -10.0
    start: float = 0.0
    end: float | None = None

    def __post_init__(self):
        if self.kind not in ("fan", "radio"):
            raise ValueError(f"distractor.kind must be 'fan' or 'radio', got {self.kind!r}")
        self.position = _vec(self.position, 3, "distractor.position")


@dataclass
class AudioSpec:
    """Audio rendering.

    rate : sample rate (Hz).  chunk : samples per channel in one AudioStamped message.
    segment : hop (s) at which a moving source's room response is recomputed
        (Hann crossfade over two hops).
    self_noise_db : incoherent microphone self-noise relative to the speech power.
    peak : the final mix is scaled so that its absolute peak equals this.
    """

    rate: int = 16000
    chunk: int = 1024
    segment: float = 0.25
    self_noise_db: float = -60.0
    peak: float = 0.5

    def __post_init__(self):
        if not 8000 <= self.rate <= 96000:
            raise ValueError(f"audio.rate must be in [8000, 96000] Hz, got {self.rate}")
        if not 16 <= self.chunk <= 65536:
            raise ValueError(f"audio.chunk must be in [16, 65536], got {self.chunk}")
        if not 0.02 <= self.segment <= 2.0:
            raise ValueError(f"audio.segment must be in [0.02, 2] s, got {self.segment}")
        if not 0.0 < self.peak <= 1.0:
            raise ValueError(f"audio.peak must be in (0, 1], got {self.peak}")


@dataclass
class VideoSpec:
    """Video rendering.

    noise_std : Gaussian sensor noise (grey levels, 0..255).
    blur_sigma : Gaussian defocus blur (pixels, 0 = sharp).
    lighting : keyframes [[t, gain], ...] of a global illumination gain (empty = 1).
    jpeg_quality : quality of --compressed images.
    visible_threshold : a person is visible when at least this fraction of the face
        is unoccluded and inside both images.
    talking_faces : mouths open with each person's own speech envelope (sim/talking.py).
    """

    noise_std: float = 2.0
    blur_sigma: float = 0.0
    lighting: list = field(default_factory=list)
    jpeg_quality: int = 90
    visible_threshold: float = 0.5
    talking_faces: bool = True

    def __post_init__(self):
        if not 0.0 <= self.noise_std <= 50.0:
            raise ValueError(f"video.noise_std must be in [0, 50], got {self.noise_std}")
        if not 0.0 <= self.blur_sigma <= 10.0:
            raise ValueError(f"video.blur_sigma must be in [0, 10], got {self.blur_sigma}")
        self.lighting = [[float(t), float(g)] for t, g in self.lighting]
        if any(g < 0 for _, g in self.lighting):
            raise ValueError("video.lighting gains must be >= 0")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"video.jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if not 0.0 < self.visible_threshold <= 1.0:
            raise ValueError("video.visible_threshold must be in (0, 1]")

    def gain(self, t) -> np.ndarray:
        """Illumination gain at times ``t``."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        if not self.lighting:
            return np.ones_like(t)
        k = np.asarray(self.lighting)
        return np.interp(t, k[:, 0], k[:, 1])


@dataclass
class SpeechSpec:
    """Where the dry speech comes from: 'synthetic' (built-in voice model),
    'espeak' (espeak-ng, if installed), 'wav' (WAV files under ``directory``) or
    'recorded' (the CMU ARCTIC recordings, cached in ``directory`` or the default cache)."""

    source: str = "synthetic"
    directory: str | None = None

    def __post_init__(self):
        if self.source not in SPEECH_SOURCES:
            raise ValueError(f"speech.source must be one of {SPEECH_SOURCES}, got {self.source!r}")
        if self.source == "wav" and not self.directory:
            raise ValueError("speech.source 'wav' needs speech.directory (a folder of WAV files)")


@dataclass
class Scene:
    """A complete, re-loadable scene description (see module docstring for frames)."""

    name: str = "custom"
    duration: float = 10.0
    seed: int = 0
    epoch: float = 1_700_000_000.0
    room: RoomSpec = field(default_factory=RoomSpec)
    robot: RobotSpec = field(default_factory=RobotSpec)
    people: list = field(default_factory=list)
    utterances: list = field(default_factory=list)
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    distractors: list = field(default_factory=list)
    audio: AudioSpec = field(default_factory=AudioSpec)
    video: VideoSpec = field(default_factory=VideoSpec)
    speech: SpeechSpec = field(default_factory=SpeechSpec)
    mouth_offset: tuple = (0.0, 0.07, 0.0)
    description: str = ""
    head_motion: HeadMotionSpec = field(default_factory=HeadMotionSpec)

    def __post_init__(self):
        conv = {"room": RoomSpec, "robot": RobotSpec, "noise": NoiseSpec, "audio": AudioSpec,
                "video": VideoSpec, "speech": SpeechSpec, "head_motion": HeadMotionSpec}
        for name, cls in conv.items():
            if isinstance(getattr(self, name), dict):
                setattr(self, name, cls(**getattr(self, name)))
        self.people = [p if isinstance(p, PersonSpec) else PersonSpec(**p) for p in self.people]
        self.utterances = sorted(
            (u if isinstance(u, Utterance) else Utterance(**u) for u in self.utterances),
            key=lambda u: (u.start, u.person))
        self.distractors = [d if isinstance(d, DistractorSpec) else DistractorSpec(**d)
                            for d in self.distractors]
        self.mouth_offset = _vec(self.mouth_offset, 3, "mouth_offset")
        self.validate()

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ValueError when the scene cannot be rendered as described."""
        if not 0.5 <= self.duration <= 3600.0:
            raise ValueError(f"duration must be in [0.5, 3600] s, got {self.duration}")
        ids = [p.id for p in self.people]
        if len(set(ids)) != len(ids):
            raise ValueError(f"person ids must be unique, got {ids}")
        for u in self.utterances:
            if u.person not in ids:
                raise ValueError(f"utterance [{u.start}, {u.end}] belongs to unknown person "
                                 f"{u.person} (people: {ids})")
            if u.end > self.duration + 1e-9:
                raise ValueError(f"utterance of person {u.person} ends at {u.end} s, after the "
                                 f"scene ({self.duration} s)")
        for pid in ids:
            own = [u for u in self.utterances if u.person == pid]
            for a, b in zip(own, own[1:]):
                if b.start < a.end:
                    raise ValueError(f"utterances of person {pid} overlap: [{a.start}, {a.end}] "
                                     f"and [{b.start}, {b.end}]")
        t = np.linspace(0.0, self.duration, max(2, int(self.duration * 20) + 1))
        lo = np.full(3, 0.15)
        hi = np.asarray(self.room.size) - 0.15
        mic_room = self.robot.to_room([self.robot.mics.left, self.robot.mics.right])
        if np.any(mic_room < lo) or np.any(mic_room > hi):
            raise ValueError(f"the microphones (room coordinates {mic_room.round(3).tolist()}) "
                             f"are not inside the room {self.room.size}")
        for p in self.people:
            head = p.trajectory().position(t)
            pos = self.robot.to_room(head)
            mouth = self.robot.to_room(head + np.asarray(self.mouth_offset))
            bad = np.any((pos < lo) | (pos > hi) | (mouth < lo) | (mouth > hi), axis=1)
            if np.any(bad):
                k = int(np.argmax(bad))
                raise ValueError(
                    f"person {p.id} leaves the room at t = {t[k]:.2f} s: camera-frame position "
                    f"{head[k].round(3).tolist()} is room position {pos[k].round(3).tolist()}, "
                    f"room size {self.room.size} (keep 0.15 m from the walls)")
            if np.any(np.linalg.norm(mouth[:, None, :] - mic_room[None], axis=2) < 0.2):
                raise ValueError(f"person {p.id} comes closer than 0.2 m to a microphone")
        for d in self.distractors:
            r = self.robot.to_room(d.position)[0]
            if np.any(r < lo) or np.any(r > hi):
                raise ValueError(f"distractor {d.kind} at camera-frame {d.position} is outside "
                                 "the room")

    # ------------------------------------------------------------- queries
    @property
    def person_ids(self) -> list[int]:
        return [p.id for p in self.people]

    def person(self, pid: int) -> PersonSpec:
        for p in self.people:
            if p.id == pid:
                return p
        raise KeyError(f"no person with id {pid}")

    def rest_positions(self, t) -> dict[int, np.ndarray]:
        """Face-centre positions {id: (N, 3)} at times ``t`` in the rest camera frame (the
        waypoints' frame; the camera frame when the head does not move)."""
        return {p.id: p.trajectory().position(t) for p in self.people}

    def head(self):
        """The :class:`~av_perception.sim.head_motion.HeadMotion` of the scene, or None
        when the head is still."""
        if not self.head_motion.moving:
            return None
        key = repr(self.head_motion)
        if getattr(self, "_head_key", None) != key:
            self._head = HeadMotion(self.head_motion, self)
            self._head_key = key
        return self._head

    def positions(self, t) -> dict[int, np.ndarray]:
        """Face-centre positions {id: (N, 3)} at times ``t`` (s from the start), in the
        camera frame of that time (the head's motion included)."""
        pos = self.rest_positions(t)
        head = self.head()
        if head is None:
            return pos
        return {pid: head.to_camera(p, np.atleast_1d(t)) for pid, p in pos.items()}

    def fixed_positions(self, t) -> dict[int, np.ndarray]:
        """Face-centre positions {id: (N, 3)} in the fixed frame (head_motion.fixed_frame)
        when the head moves, else in the camera frame."""
        pos = self.rest_positions(t)
        head = self.head()
        if head is None:
            return pos
        return {pid: head.rest_to_fixed(p) for pid, p in pos.items()}

    def mouth_positions(self, t) -> dict[int, np.ndarray]:
        """Mouth positions {id: (N, 3)} (face centre + ``mouth_offset``, rest frame), in
        the camera frame of that time."""
        off = np.asarray(self.mouth_offset)
        pos = {pid: p + off for pid, p in self.rest_positions(t).items()}
        head = self.head()
        if head is None:
            return pos
        return {pid: head.to_camera(p, np.atleast_1d(t)) for pid, p in pos.items()}

    def speaking(self, t) -> dict[int, np.ndarray]:
        """Boolean speaking status {id: (N,)} at times ``t`` (start inclusive, end exclusive)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        out = {pid: np.zeros(t.shape, dtype=bool) for pid in self.person_ids}
        for u in self.utterances:
            out[u.person] |= (t >= u.start) & (t < u.end)
        return out

    @property
    def n_frames(self) -> int:
        """Number of video frames (frame k is at k / fps)."""
        return int(np.floor(self.duration * self.robot.camera.fps + 1e-9))

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * self.audio.rate))

    def frame_times(self) -> np.ndarray:
        """Times (s from the start) of the video frames."""
        return np.arange(self.n_frames) / self.robot.camera.fps

    # ---------------------------------------------------------- conversion
    def to_dict(self) -> dict:
        """A JSON-ready dictionary (the content of ``scene.json``)."""
        d = {"version": SCENE_VERSION}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "robot":
                d["robot"] = {"position": list(v.position), "yaw": v.yaw, "head": v.head,
                              "camera": v.camera.to_dict(),
                              "mics": {k: list(x) if isinstance(x, tuple) else x
                                       for k, x in v.mics.to_dict().items()}}
            elif dataclasses.is_dataclass(v):
                d[f.name] = _plain(dataclasses.asdict(v))
            elif isinstance(v, list):
                d[f.name] = [_plain(dataclasses.asdict(x)) for x in v]
            else:
                d[f.name] = _plain(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        d = dict(d)
        version = d.pop("version", SCENE_VERSION)
        if version != SCENE_VERSION:
            raise ValueError(f"scene version {version} is not supported (expected "
                             f"{SCENE_VERSION})")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown scene field(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def _plain(v):
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def load_scene(path) -> Scene:
    """Load a scene from ``scene.json`` or from a simulator output directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "scene.json"
    return Scene.from_dict(json.loads(p.read_text()))
