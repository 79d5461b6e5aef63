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
with serialized_compilation(path=sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


FAMILY = {AudioPipeline: "audio", FusionPipeline: "fusion"}


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(compile_lock, "LOCK_DIR", str(tmp_path))
    return tmp_path


def _wait(condition, deadline=60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end and not condition():
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize("make", [AudioPipeline, FusionPipeline])
def test_warm_up_waits_while_another_process_compiles(lock_dir, make):
    pipeline = make()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER,
                               compile_lock.lock_path(FAMILY[make])],
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


def test_another_family_does_not_wait(lock_dir):
    """A process compiling the fusion kernels does not hold up the audio warm-up."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, compile_lock.lock_path("fusion")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        AudioPipeline().warm_up()  # returns while the fusion lock is held
    finally:
        holder.kill()
        holder.wait()


def test_nested_use_in_one_process_does_not_deadlock(lock_dir):
    lock_path = compile_lock.lock_path("audio")
    entered = []
    with compile_lock.serialized_compilation("audio"):
        with compile_lock.serialized_compilation("audio"):
            entered.append(1)
        AudioPipeline().warm_up()  # takes the lock again inside
        entered.append(2)
    assert entered == [1, 2]
    # and the lock is free again: another process can take it
    out = subprocess.run([sys.executable, "-c", HOLDER, lock_path], input="\n",
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "held", out.stderr
