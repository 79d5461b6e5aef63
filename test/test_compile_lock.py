"""The machine-wide numba compile lock: another process holding it keeps every pipeline
warm-up waiting, and nested use within a process does not deadlock."""
import subprocess
import sys
import threading
import time

import pytest

from av_perception import compile_lock
from av_perception.pipeline import AudioPipeline, FusionPipeline

HOLDER = """
import sys
from av_perception.compile_lock import serialized_compilation
with serialized_compilation(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def lock_path(tmp_path, monkeypatch):
    path = str(tmp_path / "numba.lock")
    monkeypatch.setattr(compile_lock, "LOCK_PATH", path)
    return path


def _wait(condition, deadline=60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end and not condition():
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize("make", [AudioPipeline, FusionPipeline])
def test_warm_up_waits_while_another_process_compiles(lock_path, make):
    pipeline = make()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, lock_path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = threading.Event()
        worker = threading.Thread(target=lambda: (pipeline.warm_up(), done.set()), daemon=True)
        worker.start()
        # the holder keeps the lock until we answer: the warm-up cannot have finished
        assert not done.wait(0.5)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert _wait(done.is_set), "warm-up did not finish after the lock was released"
    finally:
        holder.kill()
        holder.wait()


def test_nested_use_in_one_process_does_not_deadlock(lock_path):
    entered = []
    with compile_lock.serialized_compilation():
        with compile_lock.serialized_compilation():
            entered.append(1)
        AudioPipeline().warm_up()  # takes the lock again inside
        entered.append(2)
    assert entered == [1, 2]
    # and the lock is free again: another process can take it
    out = subprocess.run([sys.executable, "-c", HOLDER, lock_path], input="\n",
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "held", out.stderr
