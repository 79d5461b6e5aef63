"""Offline loading of the ROS-params YAML files in ``config/``.

:func:`load_offline_configs` reads a ROS 2 parameter file (``node:`` or ``/**:`` then
``ros__parameters:``) into stage configs; nested keys become dotted parameter names
(``audio.frame_length``), exactly as ``--ros-args --params-file`` declares them, so one
file serves the nodes and the offline commands.  Format: docs/commands.md, ``--config``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from ..core.config import ConfigError, StageConfig

__all__ = [
    "read_params_file", "flatten", "configs_from_params", "load_configs", "load_offline_configs",
]


def flatten(tree: Mapping, prefix: str = "") -> dict:
    """Nested mapping -> {dotted.name: value}."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def read_params_file(path, node_name: str | None = None) -> dict:
    """Flat parameters for ``node_name`` from a ROS-params YAML file.

    Sections for ``/**`` apply to every node; a node's own section overrides
    them.  With ``node_name=None`` every node section of the file is merged (in
    file order), which is what the offline commands want.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read parameter file {path}: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"parameter file {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"parameter file {path} must map node names to ros__parameters")
    merged: dict = {}
    sections = []
    for key, body in doc.items():
        if not isinstance(body, Mapping) or "ros__parameters" not in body:
            raise ConfigError(
                f"parameter file {path}: section '{key}' has no 'ros__parameters' "
                "(expected the ROS 2 params format 'node_name: ros__parameters: ...')")
        sections.append((str(key).lstrip("/"), body["ros__parameters"] or {}))
    for key, params in sections:
        if key == "**":
            merged.update(flatten(params))
    for key, params in sections:
        if key != "**" and (node_name is None or key.split("/")[-1] == node_name):
            merged.update(flatten(params))
    return merged


def configs_from_params(params: Mapping, classes: Iterable[type[StageConfig]],
                        allow_unknown: bool = False) -> dict:
    """Build one config per class from flat parameters; returns {cls: instance}.

    Parameters outside every class's section are refused unless ``allow_unknown``.
    """
    classes = list(classes)
    out = {}
    used = set()
    for cls in classes:
        prefix = cls.SECTION + "."
        siblings = [c for c in classes if c.SECTION == cls.SECTION]
        values = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        if len(siblings) > 1:  # a shared section: each class takes its own fields
            known = set().union(*(c.field_names() for c in siblings))
            stray = sorted(set(values) - known)
            if stray and not allow_unknown:
                raise ConfigError(
                    f"unknown parameter(s) {', '.join(prefix + u for u in stray)}; known in "
                    f"section '{cls.SECTION}': {', '.join(sorted(known))}")
            values = {k: v for k, v in values.items() if k in cls.field_names()}
        elif allow_unknown:  # only some of a section's classes are wanted here
            values = {k: v for k, v in values.items()
                      if k in cls.field_names() or k not in _section_fields(cls.SECTION)}
        used.update(prefix + k for k in values)
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        out[cls] = cls.from_dict(values)
    unknown = sorted(k for k in params if k not in used and k != "use_sim_time")
    if unknown and not allow_unknown:
        raise ConfigError(
            f"unknown parameter(s): {', '.join(unknown)}; known sections: "
            f"{', '.join(c.SECTION for c in classes)}")
    return out


def load_configs(path, classes, node_name: str | None = None, allow_unknown: bool = False):
    """Read a params file and build the configs of ``classes`` ({cls: instance})."""
    return configs_from_params(read_params_file(path, node_name), classes, allow_unknown)


#: modules that define stage configs (imported so that every section is known)
STAGE_MODULES = (
    "av_perception.core.config", "av_perception.core.vision", "av_perception.core.detection",
    "av_perception.core.lip_activity",
    "av_perception.core.wdem", "av_perception.core.av_clustering", "av_perception.core.tracking",
    "av_perception.io.stereo_sources", "av_perception.io.audio_sources",
    "av_perception.io.track_output", "av_perception.pipeline", "av_perception.nodes.settings",
    "av_perception.core.gaze",
)


def known_sections() -> dict:
    """{section: (config classes, ...)} of every stage of the package."""
    import importlib

    for name in STAGE_MODULES:
        importlib.import_module(name)
    return dict(StageConfig.REGISTRY)


def _section_fields(section: str) -> set:
    """The field names every known class of ``section`` declares together."""
    return set().union(*(c.field_names() for c in known_sections().get(section, ())))


def load_offline_configs(path, classes, node_name: str | None = None) -> dict:
    """Configs of ``classes`` for an offline command from a params file (or defaults).

    Every node section is merged; parameters of other known stages are ignored,
    but a parameter of no known stage is refused (a typo must not pass silently).
    """
    classes = list(classes)
    if path is None:
        return {cls: cls() for cls in classes}
    params = read_params_file(path, node_name)
    known = set(known_sections())
    stray = sorted(k for k in params if k.split(".")[0] not in known and k != "use_sim_time")
    if stray:
        raise ConfigError(
            f"unknown parameter(s) in {path}: {', '.join(stray)}; known sections: "
            f"{', '.join(sorted(known))}")
    return configs_from_params(params, classes, allow_unknown=True)
