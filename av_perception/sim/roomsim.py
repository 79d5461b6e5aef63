"""Binaural rendering of point sources in a shoebox room (pyroomacoustics).

A small helper for the accuracy tests and the benchmarks: the robot head stands
in the room facing +y (room frame), its camera frame is x right, y down, z forward,
and the microphones sit where ``MicArrayConfig`` puts them.  The scene simulator
builds on the same idea for whole conversations.
"""
from __future__ import annotations

import numpy as np

from ..core.config import MicArrayConfig

__all__ = ["RoomSetup", "camera_to_room", "render_sources", "source_at"]


class RoomSetup:
    """Room geometry and the robot's pose in it.

    Parameters
    ----------
    room_dim : (3,) m, shoebox size (x, y, z-up) in the room frame
    rt60 : s, reverberation time (0 for an anechoic room)
    head_position : (3,) m, camera origin in the room frame
    """

    def __init__(self, room_dim=(6.0, 5.0, 3.0), rt60: float = 0.4,
                 head_position=(3.0, 1.0, 1.5), fs: int = 16000):
        self.room_dim = np.asarray(room_dim, dtype=float)
        self.rt60 = float(rt60)
        self.head_position = np.asarray(head_position, dtype=float)
        self.fs = int(fs)


def camera_to_room(points_cam, head_position) -> np.ndarray:
    """Camera optical frame (x right, y down, z forward) -> room frame (x, y forward, z up)."""
    p = np.atleast_2d(np.asarray(points_cam, dtype=float))
    return np.asarray(head_position) + np.stack([p[:, 0], p[:, 2], -p[:, 1]], axis=1)


def source_at(azimuth: float, distance: float, height: float = 0.0) -> np.ndarray:
    """Camera-frame point at ``azimuth`` (rad, + left) and ``distance`` (m), ``height`` m up."""
    return np.array([-distance * np.sin(azimuth), -height, distance * np.cos(azimuth)])


def render_sources(sources, setup: RoomSetup, mics: MicArrayConfig | None = None,
                   snr_db: float | None = None, seed: int = 0, duration: float | None = None):
    """Render mono sources at camera-frame positions to the two microphones.

    Parameters
    ----------
    sources : list of (signal (n,), position (3,) camera frame m, delay s)
    setup : RoomSetup
    snr_db : float, optional
        Add white sensor noise, independent per channel, at this SNR (dB) relative to
        the mean power of the reverberant mixture.

    Returns
    -------
    samples : (n, 2) float64, [left, right]
    """
    import pyroomacoustics as pra

    mics = mics or MicArrayConfig()
    fs = setup.fs
    if setup.rt60 > 0:
        e_abs, max_order = pra.inverse_sabine(setup.rt60, setup.room_dim)
        room = pra.ShoeBox(setup.room_dim, fs=fs, materials=pra.Material(e_abs),
                           max_order=max_order)
    else:
        room = pra.AnechoicRoom(3, fs=fs)
    for signal, position, delay in sources:
        pos = camera_to_room(position, setup.head_position)[0]
        room.add_source(pos, signal=np.asarray(signal, dtype=float), delay=float(delay))
    mic_pos = camera_to_room(np.array([mics.left, mics.right]), setup.head_position).T
    room.add_microphone_array(mic_pos)
    room.simulate()
    y = room.mic_array.signals.T.astype(np.float64)
    if duration is not None:
        n = int(duration * fs)
        y = np.pad(y, ((0, max(0, n - len(y))), (0, 0)))[:n]
    if snr_db is not None:
        rng = np.random.default_rng(seed)
        power = np.mean(y ** 2)
        y = y + rng.standard_normal(y.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    peak = np.max(np.abs(y))
    if peak > 0.9:
        y *= 0.9 / peak
    return y
