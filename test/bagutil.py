"""Writing small audio bags for the tests (both audio_common flavours)."""
from __future__ import annotations

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from av_perception.io.msgdefs import make_typestore

PA_CODES = {"float32": 1, "int32": 2, "int16": 8}


def _stamp(store, t: float):
    Time = store.types["builtin_interfaces/msg/Time"]
    ns = int(round(t * 1e9))
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def _header(store, t: float, frame_id: str = "mics"):
    Header = store.types["std_msgs/msg/Header"]
    return Header(stamp=_stamp(store, t), frame_id=frame_id)


def write_audio_common4_bag(path, samples: np.ndarray, rate: int, dtype: str = "float32",
                            chunk: int = 1024, t0: float = 1700000000.0, topic: str = "/audio",
                            storage: str = "sqlite3", extra_topic: str | None = None):
    """AudioStamped messages (interleaved) holding ``samples`` (n, C) in [-1, 1]."""
    store = make_typestore("audio_common_4")
    T = store.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conn = w.add_connection(topic, "audio_common_msgs/msg/AudioStamped", typestore=store)
        if extra_topic:
            conn2 = w.add_connection(extra_topic, "audio_common_msgs/msg/AudioStamped",
                                     typestore=store)
        for i in range(0, len(samples), chunk):
            block = samples[i:i + chunk]
            inter = block.reshape(-1)
            arrays = {k: np.zeros(0, dtype=d) for k, d in (
                ("float32_data", np.float32), ("int32_data", np.int32),
                ("int16_data", np.int16), ("int8_data", np.int8), ("uint8_data", np.uint8))}
            if dtype == "float32":
                arrays["float32_data"] = inter.astype(np.float32)
            elif dtype == "int32":
                arrays["int32_data"] = np.round(np.clip(inter, -1, 1 - 2**-31) * 2**31).astype(
                    np.int32)
            elif dtype == "int16":
                arrays["int16_data"] = np.round(np.clip(inter, -1, 1 - 2**-15) * 2**15).astype(
                    np.int16)
            data = T["audio_common_msgs/msg/AudioData"](**arrays)
            info = T["audio_common_msgs/msg/AudioInfo"](
                format=PA_CODES[dtype], channels=samples.shape[1], rate=rate, chunk=len(block))
            audio = T["audio_common_msgs/msg/Audio"](audio_data=data, info=info)
            t = t0 + i / rate
            msg = T["audio_common_msgs/msg/AudioStamped"](header=_header(store, t), audio=audio)
            raw = store.serialize_cdr(msg, "audio_common_msgs/msg/AudioStamped")
            w.write(conn, int(t * 1e9), raw)
            if extra_topic:
                w.write(conn2, int(t * 1e9), raw)


def write_drivers_bag(path, samples: np.ndarray, rate: int, sample_format: str = "S16LE",
                      chunk: int = 800, t0: float = 1700000000.0, stamped: bool = True,
                      with_info: bool = True):
    """ros-drivers audio_common: AudioDataStamped (or AudioData) bytes + AudioInfo topic."""
    store = make_typestore("audio_common_drivers")
    T = store.types
    with Writer(path, version=9) as w:
        mtype = ("audio_common_msgs/msg/AudioDataStamped" if stamped
                 else "audio_common_msgs/msg/AudioData")
        conn = w.add_connection("/audio/audio", mtype, typestore=store)
        if with_info:
            cinfo = w.add_connection("/audio/audio_info", "audio_common_msgs/msg/AudioInfo",
                                     typestore=store)
            info = T["audio_common_msgs/msg/AudioInfo"](
                channels=samples.shape[1], sample_rate=rate, sample_format=sample_format,
                bitrate=0, coding_format="wave")
            w.write(cinfo, int(t0 * 1e9) - 1000,
                    store.serialize_cdr(info, "audio_common_msgs/msg/AudioInfo"))
        for i in range(0, len(samples), chunk):
            inter = samples[i:i + chunk].reshape(-1)
            if sample_format == "S16LE":
                payload = np.round(np.clip(inter, -1, 1 - 2**-15) * 2**15).astype("<i2")
            else:
                payload = inter.astype("<f4")
            data = T["audio_common_msgs/msg/AudioData"](
                data=np.frombuffer(payload.tobytes(), dtype=np.uint8))
            t = t0 + i / rate
            if stamped:
                msg = T["audio_common_msgs/msg/AudioDataStamped"](
                    header=_header(store, t), audio=data)
            else:
                msg = data
            w.write(conn, int(t * 1e9), store.serialize_cdr(msg, mtype))
