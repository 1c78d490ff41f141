"""What the reach nodes share: parameters, QoS profiles, image conversion, Baxter's joints.

The nodes are thin adapters around :mod:`reach_core`; this module holds the ROS plumbing they all
need so that each node file only says what it subscribes to, what it computes and what it
publishes.

Parameters: every node lists its parameters as :class:`Param` (name, default, description and
an optional check) and declares them with :func:`declare_params`, which

* declares each with a description (``ros2 param describe``) and its default;
* accepts an integer for a floating-point parameter (YAML ``1`` for ``1.0``);
* logs one clear error for a value of the wrong type or one that fails the check, and keeps the
  default;
* logs one clear error for each parameter given to the node that it does not have (rclpy would
  silently ignore a misspelt name in a parameter file);
* and, through :func:`on_set_parameters`, rejects bad values set at run time with the reason.
"""
from __future__ import annotations

import array
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

# ----------------------------------------------------------------------------------- Baxter
#: Baxter's left arm, in the order baxter_interface uses.
LEFT_ARM_JOINTS = ('left_s0', 'left_s1', 'left_e0', 'left_e1', 'left_w0', 'left_w1', 'left_w2')
#: The three pitch joints that move the hand in the vertical plane (reach_core.kinematics).
ACTIVE_JOINTS = ('left_s1', 'left_e1', 'left_w1')
#: The other four, held at configured values (roll joints; zero keeps the arm in its plane).
HELD_JOINTS = ('left_s0', 'left_e0', 'left_w0', 'left_w2')

# Joint limits of Baxter's left arm (rad), from Rethink's URDF; the three pitch joints use the
# very values of reach_core.kinematics.JOINT_LIMITS (checked in tests/test_ros_nodes.py).
JOINT_LIMITS = {
    'left_s0': (-1.70167993878, 1.70167993878),
    'left_s1': (-2.147, 1.047),
    'left_e0': (-3.05417993878, 3.05417993878),
    'left_e1': (-0.05, 2.618),
    'left_w0': (-3.059, 3.059),
    'left_w1': (-1.5707, 2.094),
    'left_w2': (-3.059, 3.059),
}

PLANE_FRAME = 'left_arm_plane'

# ----------------------------------------------------------------------------------- QoS
#: Camera images and camera info: best effort, keep last 5, volatile (rclpy's sensor-data
#: profile, as usb_cam and v4l2_camera publish). A best-effort subscriber also matches a
#: reliable publisher, so subscribers of images and joint states use it too.
SENSOR_QOS = qos_profile_sensor_data
#: Joint states published by the (fake) robot: reliable, keep last 10 (joint_state_publisher).
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)
#: Scene configurations, joint deltas and joint commands: reliable, keep last 10.
COMMAND_QOS = STATE_QOS
#: Targets and trial status: reliable and latched (transient local, depth 1), so that a node that
#: starts later still gets the current value.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


# ----------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Param:
    """One node parameter: its name, default (which fixes its type), description and check.

    ``check`` takes the value and returns ``None`` when it is fine or a sentence saying what is
    wrong with it.
    """

    name: str
    default: Any
    description: str
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)
    read_only: bool = False


#: The largest magnitude any numeric parameter may have: values beyond it (1e308, say) are finite
#: but overflow later (a timer period, nanoseconds of a latency, a sleep), so every check refuses
#: them. Parameters with a tighter sane range say so with :func:`in_range`.
MAX_MAGNITUDE = 1e6


def positive(v) -> str | None:
    return None if _finite(v) and 0 < v <= MAX_MAGNITUDE else \
        f'must be a positive number up to {MAX_MAGNITUDE:g}, got {v!r}'


def non_negative(v) -> str | None:
    return None if _finite(v) and 0 <= v <= MAX_MAGNITUDE else \
        f'must be zero or positive, up to {MAX_MAGNITUDE:g}, got {v!r}'


def finite(v) -> str | None:
    return None if _finite(v) and abs(v) <= MAX_MAGNITUDE else \
        f'must be a finite number of magnitude up to {MAX_MAGNITUDE:g}, got {v!r}'


def in_range(lo: float, hi: float, low_open: bool = False):
    """A check: a finite number in [lo, hi] (or (lo, hi] with ``low_open``)."""
    def check(v):
        ok = _finite(v) and (lo < v if low_open else lo <= v) and v <= hi
        return None if ok else \
            f"must be a number in {'(' if low_open else '['}{lo:g}, {hi:g}], got {v!r}"
    return check


def length(n: int, of: Callable[[Any], str | None] | None = finite):
    def check(v):
        if len(v) != n:
            return f'must have {n} values, got {len(v)}'
        for x in v:
            err = of(x) if of else None
            if err:
                return err
        return None
    return check


def one_of(*choices):
    def check(v):
        return None if v in choices else f'must be one of {", ".join(map(repr, choices))}, got {v!r}'
    return check


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _coerce(value, default):
    """Value as the default's type where that is lossless (int -> float, list of ints -> floats)."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (list, tuple)) and default and isinstance(default[0], float) \
            and isinstance(value, (list, tuple)):
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            return [float(x) for x in value]
    return value


def _type_name(value) -> str:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'integer'
    if isinstance(value, float):
        return 'double'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, (list, tuple)):
        return f'array of {_type_name(value[0])}' if len(value) else 'empty array'
    return type(value).__name__


def declare_params(node: Node, specs: list[Param]) -> dict[str, Any]:
    """Declare ``specs`` on ``node`` and return their values (see the module docstring)."""
    log = node.get_logger()
    overrides = dict(getattr(node, '_parameter_overrides', {}) or {})
    values = {}
    for p in specs:
        desc = ParameterDescriptor(description=p.description, read_only=p.read_only)
        given = overrides.get(p.name)
        given_value = given.value if given is not None else None
        try:
            node.declare_parameter(p.name, p.default, desc)
            value = node.get_parameter(p.name).value
        except (InvalidParameterTypeException, ParameterException, TypeError, ValueError):
            value = _coerce(given_value, p.default)
            node.declare_parameter(p.name, p.default, desc, ignore_override=True)
            if type(value) is type(p.default) or (
                    isinstance(p.default, (list, tuple)) and isinstance(value, (list, tuple))
                    and _type_name(value) == _type_name(list(p.default))):
                node.set_parameters([Parameter(p.name, value=value)])
            else:
                log.error(f"parameter '{p.name}': expected {_type_name(p.default)}, got "
                          f"{_type_name(given_value)} {given_value!r}; using the default "
                          f"{p.default!r}")
                value = p.default
        if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
            value = list(value)
        if p.check is not None:
            err = p.check(value)
            if err:
                log.error(f"parameter '{p.name}' {err}; using the default {p.default!r}")
                value = p.default
                node.set_parameters([Parameter(p.name, value=p.default)])
        values[p.name] = value
    known = set(node._parameters) if hasattr(node, '_parameters') else set()
    known |= {p.name for p in specs}
    for name in sorted(set(overrides) - known):
        log.error(f"unknown parameter '{name}' ignored: node '{node.get_name()}' has no such "
                  f"parameter (its parameters: {', '.join(p.name for p in specs)})")
    return values


def on_set_parameters(node: Node, specs: list[Param], apply: Callable[[dict], None] | None = None):
    """Check values set at run time against ``specs``; reject bad ones with the reason.

    ``apply`` gets ``{name: value}`` of accepted changes (after the check) and may raise
    ValueError to reject them.
    """
    by_name = {p.name: p for p in specs}

    def callback(params: list[Parameter]) -> SetParametersResult:
        changes = {}
        for prm in params:
            spec = by_name.get(prm.name)
            if spec is None:
                continue
            if spec.read_only:
                return SetParametersResult(successful=False,
                                           reason=f'{prm.name} is fixed at start-up')
            value = prm.value
            if isinstance(value, (list, tuple)) or hasattr(value, 'tolist'):
                value = list(value)
            if spec.check is not None:
                err = spec.check(value)
                if err:
                    node.get_logger().error(f"rejected parameter '{prm.name}': {err}")
                    return SetParametersResult(successful=False, reason=f'{prm.name} {err}')
            changes[prm.name] = value
        if apply is not None and changes:
            try:
                apply(changes)
            except ValueError as err:
                node.get_logger().error(f'rejected parameters {sorted(changes)}: {err}')
                return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)


# ----------------------------------------------------------------------------------- time
def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def now_ns(node: Node) -> int:
    return node.get_clock().now().nanoseconds


def age_s(node: Node, stamp) -> float:
    """Seconds from ``stamp`` to now on the node's clock (large for a zero stamp)."""
    return (now_ns(node) - stamp_ns(stamp)) * 1e-9


# ----------------------------------------------------------------------------------- images
class ImageError(ValueError):
    """An image message that the node cannot use (the message says why)."""


ENCODINGS = ('rgb8', 'bgr8')


def image_to_rgb(msg, width: int | None = None, height: int | None = None) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> uint8 RGB array (height, width, 3), or ImageError."""
    enc = msg.encoding.lower()
    if enc not in ENCODINGS:
        raise ImageError(f"unsupported image encoding '{msg.encoding}' (expected rgb8 or bgr8)")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageError(f'empty image ({w}x{h})')
    if (width is not None and w != width) or (height is not None and h != height):
        raise ImageError(f'image is {w}x{h}, expected {width}x{height} (camera parameters)')
    if step < 3 * w:
        raise ImageError(f'image step {step} is smaller than 3 x width = {3 * w}')
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * h:
        raise ImageError(f'image data has {data.size} bytes, expected step x height = {step * h}')
    frame = data.reshape(h, step)[:, :3 * w].reshape(h, w, 3)
    if enc == 'bgr8':
        frame = frame[..., ::-1]
    return np.ascontiguousarray(frame)


def fill_image(msg, frame: np.ndarray, encoding: str = 'rgb8'):
    """Fill sensor_msgs/Image ``msg`` from a uint8 (H, W, 3) array already in ``encoding``."""
    h, w = frame.shape[:2]
    msg.height, msg.width = h, w
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = 3 * w
    # an array.array('B') is taken as is; bytes or a list would be range-checked element by
    # element by the generated message class (tens of ms for a 640x480 frame)
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
    msg.data = data
    return msg


def joint_positions(msg, names) -> np.ndarray | None:
    """Positions of ``names`` from sensor_msgs/JointState, or None when one is missing."""
    if len(msg.position) != len(msg.name):
        return None
    index = {n: i for i, n in enumerate(msg.name)}
    try:
        return np.array([msg.position[index[n]] for n in names], dtype=np.float64)
    except KeyError:
        return None


# ----------------------------------------------------------------------------------- main
#: a second signal within this many seconds of the first is the same stop (ros2 launch sends
#: SIGINT to each node while the terminal's Ctrl-C reaches them too): it does not interrupt
SECOND_SIGNAL_AFTER_S = 1.0
#: clean-up after a signal that takes longer than this (a stuck DDS or driver thread) ends the
#: process anyway, with the exit code it would have had
CLEANUP_LIMIT_S = 5.0


def init(args=None) -> threading.Event:
    """rclpy.init with SIGINT/SIGTERM that only set the returned event.

    rclpy's own handlers let Python raise KeyboardInterrupt at any bytecode, also while the
    executor converts a taken message, where it surfaces as a bare RuntimeError from
    take_message. Here a signal only asks the spin loop to stop between callbacks; a second
    one (Ctrl-C again while a long callback runs, at least SECOND_SIGNAL_AFTER_S later) raises
    KeyboardInterrupt at once, except during clean-up (:func:`cleanup_started`), which is never
    interrupted (an interrupted clean-up died with -2, or hung).
    """
    rclpy.init(args=args if args is not None else sys.argv,
               signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    stop.first_signal = None
    stop.cleaning = False

    def on_signal(signum, frame):
        if stop.is_set():
            if stop.cleaning or stop.first_signal is None or \
                    time.monotonic() - stop.first_signal < SECOND_SIGNAL_AFTER_S:
                return
            raise KeyboardInterrupt
        stop.first_signal = time.monotonic()
        stop.set()

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    return stop


def cleanup_started(stop: threading.Event, code: int = 0) -> None:
    """From here on, signals no longer interrupt; a clean-up longer than CLEANUP_LIMIT_S ends the
    process with ``code``.

    SIGINT and SIGTERM are then ignored outright: Python puts back the default handlers while the
    interpreter shuts down (after ``main`` returned, while DDS tears down), and a second SIGINT
    arriving then killed the node (exit -2, an ERROR line of ros2 launch)."""
    stop.cleaning = True
    stop.set()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    timer = threading.Timer(CLEANUP_LIMIT_S, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def spin_until(node: Node, stop: threading.Event, done: Callable[[], bool] | None = None,
               period: float = 0.1) -> None:
    """Run ``node``'s callbacks until a signal, a shutdown or ``done()``; a signal waits at
    most ``period`` seconds to be seen."""
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok() and not stop.is_set() and not (done is not None and done()):
            executor.spin_once(timeout_sec=period)
    finally:
        executor.shutdown(timeout_sec=0)


def spin(node_factory: Callable[[], Node], args=None) -> int:
    """Init, build the node, spin until Ctrl-C, SIGTERM or shutdown, clean up; return an exit
    code."""
    stop = init(args)
    node = None
    code = 0
    try:
        node = node_factory()
        spin_until(node, stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except FatalNodeError as err:
        if node is not None:
            node.get_logger().fatal(str(err))
        else:
            print(f'error: {err}', file=sys.stderr)
        code = 1
    finally:
        cleanup_started(stop, code)
        if node is not None:
            try:
                node.destroy_node()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        rclpy.try_shutdown()
    return code


class FatalNodeError(RuntimeError):
    """A configuration error the node cannot run with (reported as one fatal line, exit 1)."""


# ----------------------------------------------------------------------------------- camera
def _roi_check(v) -> str | None:
    if len(v) != 4 or any(not _finite(x) or int(x) != x or abs(x) > MAX_MAGNITUDE for x in v) \
            or v[2] <= 0 or v[3] <= 0 or v[0] < 0 or v[1] < 0:
        return f'must be 4 non-negative integers x, y, w, h with w, h > 0, got {v!r}'
    return None


#: The camera geometry shared by sim_camera (to draw frames) and perception (ROI crop and the
#: virtual target): reach_core.scene.CameraConfig field by field. For the real webcam these are
#: its calibration to the arm's plane: pixels per metre in the plane and the pixel of the s1 axis.
CAMERA_PARAMS = [
    Param('camera.width', 640, 'image width (px)', positive, read_only=True),
    Param('camera.height', 480, 'image height (px)', positive, read_only=True),
    Param('camera.px_per_m', 200.0, 'pixels per metre in the arm plane', positive,
          read_only=True),
    Param('camera.origin_px', [320.0, 240.0], 'pixel (u, v) of the left_s1 axis', length(2),
          read_only=True),
    Param('camera.roi', [110, 30, 420, 420], 'crop fed to the networks: x, y, w, h (px)',
          _roi_check, read_only=True),
    Param('camera.net_size', 84, 'network image size (px, square)', positive, read_only=True),
]


def camera_from(values: dict):
    """reach_core.scene.CameraConfig from the values of CAMERA_PARAMS (or ValueError)."""
    from reach_core.scene import CameraConfig
    cam = CameraConfig(width=int(values['camera.width']), height=int(values['camera.height']),
                       px_per_m=float(values['camera.px_per_m']),
                       origin_px=tuple(float(x) for x in values['camera.origin_px']),
                       roi=tuple(int(x) for x in values['camera.roi']),
                       net_size=int(values['camera.net_size']))
    x0, y0, w, h = cam.roi
    if x0 + w > cam.width or y0 + h > cam.height:
        raise ValueError(f'camera.roi {cam.roi} does not fit in a {cam.width}x{cam.height} image')
    return cam


def tool_check(v) -> str | None:
    """A check: a tool point (reach_core.kinematics.parse_tool: a preset or metres from w1)."""
    from reach_core.kinematics import ToolError, parse_tool
    try:
        parse_tool(v)
    except ToolError as err:
        return str(err)
    return None


def tool_param() -> Param:
    """The ``tool`` parameter of the nodes that compute the end-effector (tool point) position."""
    return Param('tool', 'paper', 'tool point that must reach the target: paper (0.28 m from w1, '
                 'the shipped models\'), electric_gripper_fingertips (0.3907 m) or a length in '
                 'metres (docs/tool_point.md); the same in every node of a graph', tool_check,
                 read_only=True)


def check_target(x: float, y: float, tool=None) -> str | None:
    """None for a target in the plane (m) that the tool point of ``tool`` (None: the paper's)
    can reach, else why it is not."""
    from reach_core.kinematics import tool_arm
    arm = tool_arm(tool)
    if not (math.isfinite(x) and math.isfinite(y)):
        return f'target ({x}, {y}) is not finite'
    r = math.hypot(x, y)
    if r > arm.reach:
        return (f'target ({x:.3f}, {y:.3f}) m is {r:.3f} m from the shoulder, out of the arm\'s '
                f'reach ({arm.reach:.3f} m)')
    return None


def report(node: Node, key: str, text: str, level: str = 'error', period: float = 2.0) -> None:
    """Log ``text`` unless the same kind of problem (``key``) was logged less than ``period`` s ago.

    Unlike rclpy's throttle (one per call site), different problems reported from one place
    each get their line.
    """
    last = node.__dict__.setdefault('_reach_reported', {})
    now = node.get_clock().now().nanoseconds
    if key in last and (now - last[key]) * 1e-9 < period:
        return
    last[key] = now
    # one call site per severity: rclpy refuses a call site whose severity changes
    log = node.get_logger()
    if level == 'error':
        log.error(text)
    elif level == 'warn':
        log.warn(text)
    else:
        log.info(text)
