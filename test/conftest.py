"""Shared fixtures.  In CI (CI=true) a test that needs a real component fails
instead of skipping when the component is missing."""
import os
import random
import time

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
    from av_perception.pipeline import warm_up_kernels

    warm_up_kernels()


class NodeHarness:
    """A node under test and a peer node (publishers, listeners) on one executor.

    Tests wait on conditions with generous deadlines (:meth:`spin_until`), never for
    fixed durations.  Every /diagnostics message is collected in ``diags``.
    """

    def __init__(self, rclpy, node, peer_name: str):
        from diagnostic_msgs.msg import DiagnosticArray

        self.rclpy = rclpy
        self.node = node
        self.peer = rclpy.create_node(peer_name)
        self.executor = rclpy.executors.SingleThreadedExecutor()
        self.executor.add_node(node)
        self.executor.add_node(self.peer)
        self.diags = self.listen(DiagnosticArray, "/diagnostics")

    def listen(self, msg_type, topic: str, depth: int = 100) -> list:
        """A list that receives every message on ``topic``."""
        got: list = []
        self.peer.create_subscription(msg_type, topic, got.append, depth)
        return got

    def publisher(self, msg_type, topic: str, depth: int = 50):
        return self.peer.create_publisher(msg_type, topic, depth)

    def spin_until(self, condition, timeout: float = 30.0) -> bool:
        """Spin until ``condition()`` holds or ``timeout`` s pass; returns condition()."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not condition():
            self.executor.spin_once(timeout_sec=0.01)
        return bool(condition())

    def wait_for_subscribers(self, *publishers, timeout: float = 30.0) -> bool:
        return self.spin_until(lambda: all(p.get_subscription_count() for p in publishers),
                               timeout)

    def statuses(self, name_part: str = "") -> list:
        """DiagnosticStatus messages received whose name contains ``name_part``."""
        name_part = name_part or self.node.get_name()
        return [s for m in self.diags for s in m.status if name_part in s.name]

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.peer.destroy_node()


@pytest.fixture
def node_harness(ros_context):
    """``make(node, peer_name)`` -> NodeHarness; every harness is closed after the test."""
    made = []

    def make(node, peer_name: str = "test_peer"):
        h = NodeHarness(ros_context, node, peer_name)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
