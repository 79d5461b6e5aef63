"""The nodes' diagnostics helper: events last one period, conditions until resolved, and
a problem repeated every frame with another stamp is logged once."""
from types import SimpleNamespace

import pytest

pytest.importorskip("rclpy")


class FakeNode:
    """Just what Diagnostics uses of a node: a publisher and a logger."""

    def __init__(self):
        self.published = []
        self.logged = []
        log = self.logged
        self.logger = SimpleNamespace(warn=lambda m: log.append(("warn", m)),
                                      error=lambda m: log.append(("error", m)))

    def create_publisher(self, msg_type, topic, depth):
        return SimpleNamespace(publish=self.published.append)

    def get_logger(self):
        return self.logger

    def get_name(self):
        return "fake"

    def get_clock(self):
        from rclpy.clock import Clock

        return Clock()


def _diag():
    from av_perception.nodes.common import Diagnostics

    node = FakeNode()
    return node, Diagnostics(node, "fake stage")


def test_a_problem_repeated_with_other_stamps_is_logged_once():
    node, diag = _diag()
    for k in range(50):
        diag.error(f"visual observations at t = {1700000000.0 + k / 15:.3f} s rejected: "
                   f"{k + 1} non-finite points")
    assert len(node.logged) == 1 and node.logged[0][0] == "error"
    diag.error("audio frame stamps must be finite")  # another problem: logged
    diag.warn("audio frame stamps must be finite")  # same text, another severity: logged
    assert [lvl for lvl, _ in node.logged] == ["error", "error", "warn"]


def test_conditions_last_until_resolved_and_events_one_period():
    node, diag = _diag()
    diag.condition("device", 2, "no audio device 'pulse': check capture.device")
    diag.warn("3 chunks rejected")
    levels = []
    for _ in range(3):
        diag.publish({"x": 1})
        levels.append(node.published[-1].status[0].level)
    assert levels == [b"\x02", b"\x02", b"\x02"]  # the condition holds every period
    assert diag.resolve("device") and not diag.resolve("device")
    diag.publish({})
    assert node.published[-1].status[0].level == b"\x00"
    assert node.published[-1].status[0].message == "OK"
