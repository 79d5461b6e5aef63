"""Message definitions the pip-installed ROS cannot provide, for the rosbags typestore.

audio_common (4.x, the ROS 2 package on the design card) ships
``audio_common_msgs/msg/AudioStamped``; the other ROS 2 audio_common
(ros-drivers) ships ``AudioData`` (bytes) / ``AudioDataStamped`` and a separate
``AudioInfo``.  Bags normally carry their own definitions (rosbag2 stores them
since Iron), and those win; these texts are the fallback for older bags and
what the simulator writes.
"""
from __future__ import annotations

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

__all__ = ["AUDIO_COMMON_4", "AUDIO_COMMON_DRIVERS", "PORTAUDIO_FORMATS", "make_typestore"]

#: audio_common 4.x (AudioStamped with per-type sample arrays and a PortAudio format code)
AUDIO_COMMON_4 = {
    "audio_common_msgs/msg/AudioData": (
        "float32[] float32_data\nint32[] int32_data\nint16[] int16_data\n"
        "int8[] int8_data\nuint8[] uint8_data\n"
    ),
    "audio_common_msgs/msg/AudioInfo": "int32 format\nint32 channels\nint32 rate\nint32 chunk\n",
    "audio_common_msgs/msg/Audio": (
        "audio_common_msgs/AudioData audio_data\naudio_common_msgs/AudioInfo info\n"
    ),
    "audio_common_msgs/msg/AudioStamped": "std_msgs/Header header\naudio_common_msgs/Audio audio\n",
}

#: ros-drivers audio_common for ROS 2 (raw bytes; format on a separate AudioInfo topic)
AUDIO_COMMON_DRIVERS = {
    "audio_common_msgs/msg/AudioData": "uint8[] data\n",
    "audio_common_msgs/msg/AudioDataStamped": (
        "std_msgs/Header header\naudio_common_msgs/AudioData audio\n"
    ),
    "audio_common_msgs/msg/AudioInfo": (
        "uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\n"
        "string coding_format\n"
    ),
}

#: PortAudio sample-format constants used by audio_common 4.x AudioInfo.format
PORTAUDIO_FORMATS = {1: "float32", 2: "int32", 4: "int24", 8: "int16", 16: "int8", 32: "uint8"}


def make_typestore(flavour: str = "audio_common_4"):
    """A ROS 2 Jazzy typestore with the audio_common types of ``flavour`` registered.

    ``flavour`` is ``"audio_common_4"`` or ``"audio_common_drivers"`` (their
    AudioData definitions conflict, so one store holds one flavour).
    """
    defs = {"audio_common_4": AUDIO_COMMON_4, "audio_common_drivers": AUDIO_COMMON_DRIVERS}
    if flavour not in defs:
        raise ValueError(f"unknown audio_common flavour {flavour!r}: use one of {list(defs)}")
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name, text in defs[flavour].items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
