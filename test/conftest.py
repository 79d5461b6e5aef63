"""Shared fixtures.  In CI (CI=true) a test that needs a real component fails
instead of skipping when the component is missing."""
import os
import random

import numpy as np
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Keep this run's DDS traffic to itself: a random domain, localhost only.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(40, 99)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def require(condition: bool, what: str):
    """Skip locally, fail in CI, when a real component is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {what}")
    pytest.skip(f"component missing: {what}")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def ros_context():
    """rclpy initialised once for the in-process node tests."""
    try:
        import rclpy
    except ImportError:
        require(False, "rclpy (pip install -e '.[ros]')")
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


@pytest.fixture(scope="session", autouse=True)
def warm_kernel_cache():
    """Compile every pipeline kernel once, in this process and under the machine-wide
    compile lock, before any test starts node or command subprocesses: they then load
    the numba cache instead of writing it at the same time (concurrent writers can
    corrupt it; av_perception.compile_lock)."""
    from av_perception.compile_lock import warm_up_all_kernels

    warm_up_all_kernels()
