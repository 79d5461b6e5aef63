"""Shared pieces of the rclpy nodes: parameters from stage configs, diagnostics."""
from __future__ import annotations

import re
import time

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node

from ..core.config import ConfigError, ParameterSpec

__all__ = [
    "declare_stage_parameters",
    "configs_from_node",
    "validate_parameter_change",
    "Diagnostics",
    "RateMeter",
]


def _descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    text = spec.description
    if spec.choices:
        text += " Allowed: " + ", ".join(spec.choices) + "."
    d = ParameterDescriptor(description=text)
    if isinstance(spec.default, bool) or isinstance(spec.default, (str, tuple)):
        if isinstance(spec.default, tuple) and spec.low is not None:
            d.additional_constraints = f"each element in [{spec.low}, {spec.high}]"
        if spec.name == "capture.device":
            d.dynamic_typing = True  # a name or an index
        return d
    if isinstance(spec.default, int):
        lo = int(spec.low) if spec.low is not None else -(2 ** 31)
        hi = int(spec.high) if spec.high is not None else 2 ** 31 - 1
        d.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=1)]
    elif isinstance(spec.default, float):
        lo = float(spec.low) if spec.low is not None else -1e300
        hi = float(spec.high) if spec.high is not None else 1e300
        d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
    return d


def _ros_default(value):
    return list(value) if isinstance(value, tuple) else value


def _expected_type(spec: ParameterSpec) -> str:
    d = spec.default
    if isinstance(d, bool):
        return "a boolean (true/false)"
    if isinstance(d, str):
        return "a string"
    if isinstance(d, int):
        return "an integer"
    if isinstance(d, float):
        return "a number (e.g. 1.0)"
    n = f"{spec.length} " if spec.length else ""
    return f"a list of {n}numbers (e.g. {list(d)})"


def coerce_parameter(spec: ParameterSpec, parameter):
    """An integer given for a float parameter (``process_noise: 1``, ``-p x:=1``, the most
    common ROS params mistake) as the float it means; an integer list for a float list
    likewise.  Other parameters are returned unchanged."""
    from rclpy.parameter import Parameter

    d, t = spec.default, parameter.type_
    if isinstance(d, float) and t == Parameter.Type.INTEGER:
        return Parameter(parameter.name, Parameter.Type.DOUBLE, float(parameter.value))
    if isinstance(d, tuple) and t == Parameter.Type.INTEGER_ARRAY:
        return Parameter(parameter.name, Parameter.Type.DOUBLE_ARRAY,
                         [float(v) for v in parameter.value])
    return parameter


def declare_stage_parameters(node: Node, classes) -> None:
    """Declare ``<section>.<field>`` parameters (with descriptions and ranges) for each
    stage config class, defaults from the dataclass.

    Integers are accepted for float parameters, from the command line and params files
    (the overrides) and from later ``ros2 param set`` alike (:func:`coerce_parameter`);
    any other wrong type raises ConfigError naming the parameter and the expected type.
    """
    from rclpy.exceptions import InvalidParameterTypeException

    specs = {}
    overrides = getattr(node, "_parameter_overrides", None)  # --ros-args -p / --params-file
    for cls in classes:
        for spec in cls.parameter_specs():
            specs[spec.name] = spec
            if isinstance(overrides, dict) and spec.name in overrides:
                overrides[spec.name] = coerce_parameter(spec, overrides[spec.name])
            try:
                node.declare_parameter(spec.name, _ros_default(spec.default), _descriptor(spec))
            except InvalidParameterTypeException as exc:
                given = overrides[spec.name].value if isinstance(overrides, dict) \
                    and spec.name in overrides else "?"
                raise ConfigError(
                    f"parameter '{spec.name}' = {given!r} has the wrong type: expected "
                    f"{_expected_type(spec)} ({spec.description})") from exc

    def coerce(params):
        return [coerce_parameter(specs[p.name], p) if p.name in specs else p for p in params]

    if hasattr(node, "add_pre_set_parameters_callback"):  # rclpy >= Jazzy
        node.add_pre_set_parameters_callback(coerce)


def _value(cls, name: str, value):
    if isinstance(value, list):
        return tuple(value)
    if name == "device" and cls.SECTION == "capture" and not isinstance(value, str):
        return str(value)
    return value


def configs_from_node(node: Node, classes, overrides: dict | None = None) -> dict:
    """Build the stage configs from the node's current parameter values.

    ``overrides`` maps dotted names to new values (for validating a change).
    Raises ConfigError naming the parameter and its allowed range.
    """
    overrides = overrides or {}
    out = {}
    for cls in classes:
        values = {}
        for spec in cls.parameter_specs():
            field = spec.name.split(".", 1)[1]
            v = overrides.get(spec.name, node.get_parameter(spec.name).value)
            values[field] = _value(cls, field, v)
        out[cls] = cls.from_dict(values)
    return out


def validate_parameter_change(node: Node, classes, params) -> tuple[SetParametersResult, dict]:
    """Check a parameter change against the dataclasses (for on_set_parameters callbacks)."""
    overrides = {p.name: p.value for p in params}
    try:
        configs = configs_from_node(node, classes, overrides)
    except ConfigError as exc:
        return SetParametersResult(successful=False, reason=str(exc)), {}
    return SetParametersResult(successful=True), configs


class RateMeter:
    """Counts events and reports their rate over the last reporting period."""

    def __init__(self):
        self.count = 0
        self.total = 0
        self._t0 = time.monotonic()

    def add(self, n: int = 1):
        self.count += n
        self.total += n

    def rate(self) -> float:
        now = time.monotonic()
        dt = max(now - self._t0, 1e-9)
        r = self.count / dt
        self.count = 0
        self._t0 = now
        return r


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class Diagnostics:
    """One DiagnosticStatus per stage on /diagnostics: the one helper of every node.

    Two kinds of problems set the level of a status:

    * events (:meth:`warn`, :meth:`error`): something happened; reported in the next
      :meth:`publish` only (each message covers its own period);
    * conditions (:meth:`condition`): a state such as "device not open", reported in
      every message until :meth:`resolve` is called for it.

    :meth:`count` keeps totals of named problems (e.g. rejected messages), published
    with the values.  Each distinct problem is logged once when it first appears (messages
    that differ only in their numbers, such as a stamp, are the same problem).
    """

    def __init__(self, node: Node, name: str, hardware_id: str = ""):
        from diagnostic_msgs.msg import DiagnosticArray

        self.node = node
        self.name = name
        self.hardware_id = hardware_id
        self.publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._event = (0, "OK")  # the most severe event of this period
        self.conditions: dict = {}  # key -> (level, message), until resolved
        self.counters: dict = {}  # name -> total
        self._last_logged: tuple = ()

    @property
    def level(self) -> int:
        return max([self._event[0]] + [c[0] for c in self.conditions.values()])

    @property
    def message(self) -> str:
        # the most severe problem; a condition before an event of the same level
        problems = [c for c in self.conditions.values() if c[0] > 0]
        problems.append(self._event)
        return max(problems, key=lambda p: p[0])[1] if self.level > 0 else "OK"

    def _log(self, level: int, message: str) -> None:
        # the same problem of every frame differs only in its numbers (stamps, counts):
        # logged once, not once per frame
        key = (level, _NUMBER.sub("#", message))
        if key == self._last_logged:
            return
        self._last_logged = key
        # rclpy refuses a second severity from one call site ("Logger severity cannot be
        # changed between calls"), so each severity is logged from its own line.
        if level >= 2:
            self.node.get_logger().error(message)
        else:
            self.node.get_logger().warn(message)

    def _event_at(self, level: int, message: str):
        if level >= self._event[0]:
            self._event = (level, message)
        self._log(level, message)

    def warn(self, message: str):
        """A problem of this period (WARN)."""
        self._event_at(1, message)

    def error(self, message: str):
        """A problem of this period (ERROR)."""
        self._event_at(2, message)

    def condition(self, key: str, level: int, message: str):
        """A lasting problem (level 1 WARN, 2 ERROR) reported until :meth:`resolve`."""
        self.conditions[key] = (int(level), message)
        self._log(level, message)

    def resolve(self, key: str) -> bool:
        """End a condition; True when it was set."""
        return self.conditions.pop(key, None) is not None

    def count(self, name: str, n: int = 1) -> int:
        """Add to the total ``name`` (published with the values); returns the total."""
        self.counters[name] = self.counters.get(name, 0) + n
        return self.counters[name]

    def clear(self):
        """Forget the events of this period (conditions stay until resolved)."""
        self._event = (0, "OK")

    def publish(self, values: dict, level: int | None = None, message: str | None = None):
        """Publish the status with ``values`` (and the counters), then start a new
        period."""
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        status = DiagnosticStatus()
        status.level = bytes([self.level if level is None else level])
        status.name = self.name
        status.message = self.message if message is None else message
        status.hardware_id = self.hardware_id
        values = {**self.counters, **values}
        status.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.node.get_clock().now().to_msg()
        arr.status = [status]
        self.publisher.publish(arr)
        self.clear()
        return status


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def run_node(factory, name: str, startup_errors=(), args=None) -> int:
    """Create a node and spin it until shutdown; the ``main`` of every executable.

    An invalid parameter at start-up (ConfigError, out-of-range ROS parameter, or one of
    ``startup_errors``) ends the process with exit code 2 and a message naming it.
    """
    import sys

    import rclpy
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    rclpy.init(args=args)
    try:
        node = factory()
    except (ConfigError, InvalidParameterValueException, InvalidParameterTypeException,
            *startup_errors) as exc:
        print(f"{name}: invalid parameter: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


class NewestPairsWorker:
    """A worker thread that processes queued items in order, keeping only the newest.

    When more than ``capacity()`` items wait (processing slower than the input), the oldest
    are dropped; :meth:`put` returns how many.  ``lock`` is shared with the caller's own
    state when given.  An exception in ``handle`` is passed to ``on_error`` and the thread
    goes on.
    """

    def __init__(self, handle, on_error, capacity, name: str, lock=None):
        import threading
        from collections import deque

        self._handle = handle
        self._on_error = on_error
        self._capacity = capacity
        self._cond = threading.Condition(lock or threading.Lock())
        self._items: deque = deque()
        self.stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, items) -> int:
        """Queue items; returns the number of old items dropped to make room."""
        dropped = 0
        with self._cond:
            for item in items:
                if len(self._items) >= max(1, int(self._capacity())):
                    self._items.popleft()
                    dropped += 1
                self._items.append(item)
            self._cond.notify()
        return dropped

    def _run(self):
        while True:
            with self._cond:
                while not self._items and not self.stopped:
                    self._cond.wait()
                if self.stopped:
                    return
                item = self._items.popleft()
            try:
                self._handle(item)
            except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker thread
                self._on_error(exc)

    def stop(self, timeout: float = 10.0):
        import threading

        with self._cond:
            self.stopped = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)


def subscribe_stereo(node, config, on_image, on_info):
    """Subscribe to the left/right images (Image, or CompressedImage on
    ``<topic>/compressed``) and camera infos named by a ``VisionInputConfig``.

    ``on_image(side, msg)`` and ``on_info(side, msg)`` get side 0 (left) or 1 (right).
    Returns (image subscriptions, info subscriptions).
    """
    from functools import partial

    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    rel = (ReliabilityPolicy.RELIABLE if config.reliability == "reliable"
           else ReliabilityPolicy.BEST_EFFORT)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=config.queue_size, reliability=rel,
                     durability=DurabilityPolicy.VOLATILE)
    img_type = CompressedImage if config.compressed else Image
    suffix = "/compressed" if config.compressed else ""
    images = [node.create_subscription(img_type, topic + suffix, partial(on_image, k), qos)
              for k, topic in enumerate((config.left_image_topic, config.right_image_topic))]
    infos = [node.create_subscription(CameraInfo, topic, partial(on_info, k), qos)
             for k, topic in enumerate((config.left_info_topic, config.right_info_topic))]
    return images, infos
