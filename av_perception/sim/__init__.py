"""Audio-visual scene simulator: people talking and moving in a room, seen and heard
by the robot head, written as a rosbag2 with ground truth (docs/simulation.md).

Typical use::

    from av_perception.sim import make_scene, simulate
    scene = make_scene("default", seed=1)
    simulate(scene, "out/default")          # bag/, audio.wav, ground_truth.jsonl, scene.json
"""
import importlib

#: public name -> submodule defining it (imported on first use, so that importing the
#: package -- e.g. to build the CLI -- does not load pyroomacoustics, OpenCV or scipy)
_EXPORTS = {
    "PRESETS": "presets",
    "describe_presets": "presets",
    "make_scene": "presets",
    "preset_names": "presets",
    "AudioSpec": "scene",
    "DistractorSpec": "scene",
    "NoiseSpec": "scene",
    "PersonSpec": "scene",
    "RobotSpec": "scene",
    "RoomSpec": "scene",
    "Scene": "scene",
    "SpeechSpec": "scene",
    "Utterance": "scene",
    "VideoSpec": "scene",
    "load_scene": "scene",
    "VoiceSpec": "voice",
    "OUTPUT_NAMES": "simulator",
    "SimulationResult": "simulator",
    "simulate": "simulator",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
