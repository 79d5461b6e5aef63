"""Run `av-perception replay` in a separate process while a test node listens."""
from __future__ import annotations

import subprocess
import sys
import time


def run_replay(ros_context, node, bag, *args, timeout: float = 80.0) -> tuple[int, str]:
    """Replay ``bag`` (extra CLI ``args``), spinning ``node`` until the process ends (or
    ``timeout`` s: then it is killed) and a little after; returns (exit code, its log).
    ``node`` is destroyed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "av_perception.cli", "replay", str(bag), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            ros_context.spin_once(node, timeout_sec=0.05)
        for _ in range(20):
            ros_context.spin_once(node, timeout_sec=0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
        log = proc.communicate()[0]
        node.destroy_node()
    return proc.returncode, log
