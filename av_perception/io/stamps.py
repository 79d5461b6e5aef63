"""Time stamps as ROS messages carry them (``sec``, ``nanosec``): the one conversion used
by the rclpy nodes, the bag readers and the rosbags writers."""
from __future__ import annotations

import math

__all__ = ["NS_PER_S", "seconds_to_stamp", "stamp_to_seconds", "ns_to_stamp", "stamp_to_ns"]

NS_PER_S = 1_000_000_000


def seconds_to_stamp(seconds: float) -> tuple[int, int]:
    """Float seconds -> (sec, nanosec) with 0 <= nanosec < 1e9 (ValueError when not
    finite)."""
    if not math.isfinite(seconds):
        raise ValueError(f"time {seconds} is not finite")
    sec = math.floor(seconds)
    ns = int(round((seconds - sec) * 1e9))  # split first: float64 cannot hold epoch ns
    if ns >= NS_PER_S:
        sec, ns = sec + 1, ns - NS_PER_S
    return int(sec), ns


def stamp_to_seconds(stamp) -> float:
    """``builtin_interfaces/Time`` (``sec``, ``nanosec``) or a header -> float seconds."""
    if hasattr(stamp, "stamp"):
        stamp = stamp.stamp
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec)."""
    ns = int(ns)
    return ns // NS_PER_S, ns % NS_PER_S


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` or a header -> integer nanoseconds."""
    if hasattr(stamp, "stamp"):
        stamp = stamp.stamp
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)
