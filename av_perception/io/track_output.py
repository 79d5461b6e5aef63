"""How the tracks are labelled on the ``speakers`` outputs, alike on the nodes and in the
output bag of ``process --output-bag`` (section ``tracking``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..core.config import StageConfig, param

__all__ = ["TrackOutputConfig"]


@dataclass(frozen=True)
class TrackOutputConfig(StageConfig):
    """Frame, speaking label and marker lifetime of the ``speakers`` outputs."""

    SECTION: ClassVar[str] = "tracking"

    frame_id: str = param(
        "", "frame_id of the outputs; empty = the frame_id of the visual observations "
        "(the left camera optical frame).")
    speaking_threshold: float = param(
        0.5, "Speaking probability from which a track is labelled 'speaking' (marker text, "
        "is_speaking).", low=0.0, high=1.0)
    marker_lifetime: float = param(
        2.0, "Lifetime (s) of the markers, so that they vanish if the node stops "
        "(0 = forever).", low=0.0, high=3600.0)
