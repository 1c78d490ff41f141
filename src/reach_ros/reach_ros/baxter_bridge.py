"""baxter_bridge: joint deltas -> Baxter's own joint command interface for the left arm.

Subscribes to ``joint_delta`` (/reach/joint_delta, sensor_msgs/JointState: names among
left_s1/e1/w1, ``position`` = change in rad) and ``joint_states`` (/robot/joint_states), and
publishes ``baxter_core_msgs/JointCommand`` in POSITION_MODE for all seven left-arm joints on
``joint_command`` (/robot/limb/left/joint_command). It is the safety layer between the graph and
the arm (docs/safety.md):

* the pitch joints s1, e1, w1: the previous command (or the measured position, when the arm is
  more than one step away from it) plus the delta; s0, e0, w0, w2: ``hold_positions``;
* every command lies in the intersection of Baxter's joint limits (shrunk by ``limit_margin``)
  and ``max_step`` around the measured position, whatever the bridge hears: the one-step bound
  never overrides the limits; when the intersection is empty (the arm measured outside its
  limits) nothing is sent. While the arm follows, a command is also within ``max_step`` of the
  previous one. Held joints far from their hold value get there one step per command.
* joint states are checked before they count as the measured position (:class:`StateCheck`):
  all seven joints, once each, finite, inside the limits (give or take ``state_tolerance``), no
  jump faster than ``max_joint_speed`` between two stamps, not out of order, and by header stamp
  neither older than ``joint_state_timeout_s`` nor more than ``max_clock_skew_s`` in the future.
  An implausible state is refused and the bridge holds (sends nothing) for ``fault_hold_s``.
* two commanders are a fault: while more than one node publishes on ``joint_delta`` or
  ``joint_states`` the bridge sends nothing and logs an error naming them.

A command goes out at once for each accepted delta, and the last one is re-sent when no delta
came for 1 / ``command_rate_hz`` (Baxter drops a position command stream that pauses longer than
its 0.2 s command timeout). Watchdog: while the last delta is older than ``delta_timeout_s`` or
the last joint state (by its stamp) older than ``joint_state_timeout_s``, nothing is sent (the
robot holds) and this is logged once. Deltas that are malformed, non-finite, larger than
``max_step``, for unknown joints, stamped more than ``max_delta_age_s`` ago or more than
``max_clock_skew_s`` ahead are refused with a logged error.

Every parameter is read-only at run time: a safety layer that anyone on the ROS domain could
retune is none.

Arms driven by ros2_control: with ``output`` ``ros2_control`` (or ``both``) the very same checked
command also goes out as ``std_msgs/Float64MultiArray`` on ``commands`` (remap it to a
forward_command_controller's ``/<controller>/commands``, e.g. a position_controllers/
JointGroupPositionController), its entries the positions of ``ros2_control_joints`` in the
controller's joint order.
"""
from __future__ import annotations

import numpy as np
from baxter_core_msgs.msg import JointCommand
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from .common import (report, ACTIVE_JOINTS, COMMAND_QOS, HELD_JOINTS, JOINT_LIMITS, LEFT_ARM_JOINTS,
                     SENSOR_QOS, Param, declare_params, in_range, length, now_ns, one_of, spin,
                     stamp_ns)

def _joint_list(v) -> str | None:
    """A check: distinct left-arm joint names."""
    if not v or len(set(v)) != len(v) or any(n not in LEFT_ARM_JOINTS for n in v):
        return f'must be distinct joints among {", ".join(LEFT_ARM_JOINTS)}, got {v!r}'
    return None


PARAMS = [
    Param('hold_positions', [0.0, 0.0, 0.0, 0.0],
          'positions (rad) held for left_s0, left_e0, left_w0, left_w2 (zero: the arm moves in a '
          'vertical plane)', length(4, in_range(-3.1, 3.1)), read_only=True),
    Param('max_step', 0.04, 'largest change (rad) of a delta, and largest distance of any command '
          'from the measured position', in_range(0.0, 0.2, low_open=True), read_only=True),
    Param('limit_margin', 0.0, 'commands stay this far (rad) inside Baxter\'s joint limits',
          in_range(0.0, 0.3), read_only=True),
    Param('command_rate_hz', 20.0, 're-send the last command at this rate while no new delta '
          'comes (Baxter needs at least 5 Hz)', in_range(5.0, 200.0), read_only=True),
    Param('delta_timeout_s', 0.5, 'stop commanding when the last delta is older than this (s)',
          in_range(0.0, 2.0, low_open=True), read_only=True),
    Param('joint_state_timeout_s', 0.5, 'stop commanding when the last joint state is older (by '
          'its stamp) than this (s)', in_range(0.0, 2.0, low_open=True), read_only=True),
    Param('max_delta_age_s', 0.5, 'refuse deltas stamped longer ago than this (s)',
          in_range(0.0, 2.0, low_open=True), read_only=True),
    Param('max_clock_skew_s', 0.1, 'refuse deltas and joint states stamped more than this far '
          '(s) in the future', in_range(0.0, 1.0), read_only=True),
    Param('max_joint_speed', 4.0, 'a joint state moving a joint faster than this (rad/s) since '
          'the previous one is implausible (Baxter: 2 rad/s shoulder and elbow, 4 rad/s wrist)',
          in_range(0.0, 10.0, low_open=True), read_only=True),
    Param('state_tolerance', 0.02, 'measured positions may be this far (rad) past the limits '
          'and jump this much beyond max_joint_speed (sensor noise)', in_range(0.0, 0.1),
          read_only=True),
    Param('output', 'baxter', 'where commands go: baxter (baxter_core_msgs/JointCommand on '
          'joint_command), ros2_control (std_msgs/Float64MultiArray on commands, for a '
          'forward_command_controller of an arm driven by ros2_control) or both',
          one_of('baxter', 'ros2_control', 'both'), read_only=True),
    Param('ros2_control_joints', list(LEFT_ARM_JOINTS), 'output ros2_control: the left-arm joint '
          'of each entry of the controller\'s joints list, in its order (its commands carry '
          'these positions)', _joint_list, read_only=True),
    Param('fault_hold_s', 1.0, 'after an implausible joint state, send nothing for this long (s); '
          'longer than a joint state period, so that a spoofed state that follows on from '
          'another one is never commanded from', in_range(0.1, 10.0), read_only=True),
]

TOPICS = {
    'joint_delta': ('sub', 'sensor_msgs/msg/JointState'),
    'joint_states': ('sub', 'sensor_msgs/msg/JointState'),
    'joint_command': ('pub', 'baxter_core_msgs/msg/JointCommand'),
    'commands': ('pub', 'std_msgs/msg/Float64MultiArray'),
}

#: how often (s) the bridge looks for a second publisher on its input topics
COMMANDER_CHECK_PERIOD_S = 0.5


def limits(names, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper joint limits of ``names`` shrunk by ``margin``."""
    lo = np.array([JOINT_LIMITS[n][0] for n in names]) + margin
    hi = np.array([JOINT_LIMITS[n][1] for n in names]) - margin
    return lo, hi


class StateCheck:
    """Whether a joint state is one a real arm can be in (ROS-free; see the module docstring)."""

    def __init__(self, max_speed: float, tolerance: float):
        self.names = list(LEFT_ARM_JOINTS)
        self.lo, self.hi = limits(self.names, -tolerance)
        self.max_speed, self.tolerance = max_speed, tolerance
        self.prev: tuple[int, np.ndarray] | None = None       # the last state received
        self.accepted: tuple[int, np.ndarray] | None = None   # the last state accepted

    def check(self, names, positions, stamp: int) -> tuple[np.ndarray | None, str | None]:
        """(the seven positions, None) for a plausible state, else (None, why not)."""
        names, positions = list(names), list(positions)
        if len(names) != len(positions):
            return None, f'{len(names)} names but {len(positions)} positions'
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            return None, f'duplicated joint names {dup}'
        missing = [n for n in self.names if n not in names]
        if missing:
            return None, f'missing joints {missing}'
        q = np.array([positions[names.index(n)] for n in self.names], dtype=np.float64)
        if not np.all(np.isfinite(q)):
            return None, 'NaN or infinite positions'
        out = (q < self.lo) | (q > self.hi)
        if np.any(out):
            bad = [f'{n} = {v:.3f}' for n, v, o in zip(self.names, q, out) if o]
            return None, f'positions outside the joint limits ({", ".join(bad)} rad)'
        return self._continuity(q, stamp)

    def _continuity(self, q: np.ndarray, stamp: int) -> tuple[np.ndarray | None, str | None]:
        """A state must follow on from the previous one received and from the last one accepted:
        a spoofed state between genuine ones is refused, and so is a second one like it."""
        prev = self.prev
        if prev is not None and stamp < prev[0]:
            return None, f'stamped {(prev[0] - stamp) * 1e-9:.3f} s before the previous state ' \
                         f'(out of order)'
        self.prev = (stamp, q)
        for ref in (prev, self.accepted):
            if ref is None:
                continue
            dt = (stamp - ref[0]) * 1e-9
            jump = float(np.max(np.abs(q - ref[1])))
            if dt < 0 or jump > self.max_speed * dt + self.tolerance:
                return None, (f'a jump of {jump:.3f} rad in {dt:.3f} s (faster than '
                              f'max_joint_speed {self.max_speed:g} rad/s)')
        self.accepted = (stamp, q)
        return q, None


class CommandShaper:
    """Absolute, limited, rate-limited position commands from deltas (ROS-free)."""

    def __init__(self, hold: np.ndarray, max_step: float, margin: float):
        self.names = list(LEFT_ARM_JOINTS)
        self.active = np.array([n in ACTIVE_JOINTS for n in self.names])
        self.lo, self.hi = limits(self.names, margin)
        self.goal = np.zeros(len(self.names))       # where each joint should go
        self.goal[[self.names.index(n) for n in HELD_JOINTS]] = hold
        self.max_step = max_step
        self.last: np.ndarray | None = None        # the last command sent

    def apply(self, delta: dict[str, float], measured: np.ndarray) -> np.ndarray | None:
        """Command for a delta {joint: rad} given the measured positions (7, in self.names);
        None when no command is safe (see :meth:`command`)."""
        base = measured.copy()
        if self.last is not None and np.all(
                np.abs(self.last - measured)[self.active] <= self.max_step + 1e-9):
            base[self.active] = self.last[self.active]
        for name, d in delta.items():
            base[self.names.index(name)] += d
        self.goal[self.active] = base[self.active]
        return self.command(measured)

    def stop(self):
        """Commanding stopped (watchdog): the next command is bounded by the arm alone."""
        self.last = None

    def command(self, measured: np.ndarray) -> np.ndarray | None:
        """The current goal, clamped to one step from the last command, then into the
        intersection of the limits and one step around ``measured``; None when that
        intersection is empty (the arm is measured outside its limits)."""
        lo = np.maximum(self.lo, measured - self.max_step)
        hi = np.minimum(self.hi, measured + self.max_step)
        if np.any(lo > hi):
            self.last = None
            return None
        cmd = self.goal.copy()
        if self.last is not None:       # only where the two bounds overlap (the arm follows)
            near = np.abs(self.last - measured) <= 2 * self.max_step + 1e-9
            cmd = np.where(near, np.clip(cmd, self.last - self.max_step,
                                         self.last + self.max_step), cmd)
        cmd = np.clip(cmd, lo, hi)
        self.last = cmd
        return cmd


class BaxterBridge(Node):
    def __init__(self):
        super().__init__('baxter_bridge')
        self.p = declare_params(self, PARAMS)
        hold = np.asarray(self.p['hold_positions'], dtype=np.float64)
        self.shaper = CommandShaper(hold, self.p['max_step'], self.p['limit_margin'])
        self.states = StateCheck(self.p['max_joint_speed'], self.p['state_tolerance'])
        self.measured = None
        self.measured_stamp = 0
        self.delta_ns = 0
        self.sent_ns = 0
        self.fault_until_ns = 0
        self.commanders: list[str] = []     # the nodes publishing on an input topic, when > 1
        self.commanding = False
        self.sent = 0
        out = self.p['output']
        self.pub = self.create_publisher(JointCommand, 'joint_command', COMMAND_QOS) \
            if out in ('baxter', 'both') else None
        self.ros2_control = [LEFT_ARM_JOINTS.index(n) for n in self.p['ros2_control_joints']]
        self.ros2_pub = self.create_publisher(Float64MultiArray, 'commands', COMMAND_QOS) \
            if out in ('ros2_control', 'both') else None
        self.create_subscription(JointState, 'joint_states', self.on_joints, SENSOR_QOS)
        self.create_subscription(JointState, 'joint_delta', self.on_delta, COMMAND_QOS)
        self.inputs = [self.resolve_topic_name(t) for t in ('joint_delta', 'joint_states')]
        self.create_timer(1.0 / self.p['command_rate_hz'], self.tick)
        self.create_timer(COMMANDER_CHECK_PERIOD_S, self.check_commanders)
        self.get_logger().info(
            f"Baxter bridge: left arm POSITION_MODE, steps of at most {self.p['max_step']:g} rad, "
            f"{self.p['limit_margin']:g} rad inside the joint limits, holding s0/e0/w0/w2 at "
            f"{hold.round(3).tolist()}")

    def _now(self) -> int:
        return now_ns(self)

    def _age(self, stamp: int) -> float:
        return (self._now() - stamp) * 1e-9

    # ------------------------------------------------------------------------------- faults
    def fault(self, key: str, text: str):
        """An implausible input: hold (send nothing) for fault_hold_s, log once."""
        self.fault_until_ns = self._now() + int(self.p['fault_hold_s'] * 1e9)
        self.halt()
        report(self, key, f'{text}; holding (no command) for {self.p["fault_hold_s"]:g} s',
               'error', 2.0)

    def halt(self):
        """Stop commanding: the arm holds where it is; the next command is bounded by the arm."""
        self.shaper.stop()
        self.commanding = False

    def check_commanders(self):
        """Two publishers on an input topic are two commanders: a fault until one is gone."""
        found = []
        for topic in self.inputs:
            # every publisher counts: two nodes of the same name are two commanders too
            nodes = sorted(f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                           for i in self.get_publishers_info_by_topic(topic))
            if len(nodes) > 1:
                found.append(f'{topic} has {len(nodes)} publishers ({", ".join(nodes)})')
        if found and found != self.commanders:
            self.get_logger().error(f'refusing to command: {"; ".join(found)}; exactly one '
                                    f'node may publish each (two commanders are a fault)')
        elif self.commanders and not found:
            self.get_logger().info('one publisher per input topic again: commanding allowed')
        self.commanders = found
        if found:
            self.halt()

    def blocked(self) -> str | None:
        """Why no command may go out now (None: it may)."""
        if self.commanders:
            return 'a second publisher on an input topic'
        if self._now() < self.fault_until_ns:
            return 'holding after an implausible joint state'
        return None

    # ------------------------------------------------------------------------------- inputs
    def on_joints(self, msg: JointState):
        stamp = stamp_ns(msg.header.stamp)
        age = self._age(stamp)
        if age < -self.p['max_clock_skew_s']:
            self.fault('bridge_future_state', f'joint state refused: stamped {-age:.3f} s in the '
                       f"future (max_clock_skew_s {self.p['max_clock_skew_s']:g})")
            return
        q, why = self.states.check(msg.name, msg.position, stamp)
        if why is not None:
            self.fault('bridge_state:' + why[:12], f'joint state refused: {why}')
            return
        if age > self.p['joint_state_timeout_s']:
            report(self, 'bridge_stale_state', f'joint state refused: stale ({age:.3f} s old > '
                   f"joint_state_timeout_s {self.p['joint_state_timeout_s']:g})", 'error', 2.0)
            return
        self.measured, self.measured_stamp = q, stamp

    def _fresh_state(self) -> bool:
        return self.measured is not None and \
            self._age(self.measured_stamp) <= self.p['joint_state_timeout_s']

    def _delta_error(self, names, values, stamp: int) -> str | None:
        if len(names) != len(values) or not names:
            return f'{len(names)} names but {len(values)} positions'
        if any(n not in ACTIVE_JOINTS for n in names) or len(set(names)) != len(names):
            return f'joints {names} (only distinct left_s1, left_e1, left_w1 are moved)'
        if not np.all(np.isfinite(values)):
            return 'NaN or infinite values'
        if np.any(np.abs(values) > self.p['max_step'] + 1e-9):
            return (f"{np.round(values, 4).tolist()} rad exceeds max_step "
                    f"{self.p['max_step']:g} rad")
        age = self._age(stamp)
        if age > self.p['max_delta_age_s']:
            return f"stale ({age:.3f} s old > max_delta_age_s {self.p['max_delta_age_s']:g})"
        if age < -self.p['max_clock_skew_s']:
            return (f"stamped {-age:.3f} s in the future (max_clock_skew_s "
                    f"{self.p['max_clock_skew_s']:g})")
        if not self._fresh_state():
            return 'no fresh joint states from the robot'
        return self.blocked()

    def on_delta(self, msg: JointState):
        names, values = list(msg.name), np.asarray(msg.position, dtype=np.float64)
        why = self._delta_error(names, values, stamp_ns(msg.header.stamp))
        if why is not None:
            report(self, 'bridge_delta:' + why[:10], f'delta refused: {why}', 'error', 2.0)
            return
        self.delta_ns = self._now()
        self.send(self.shaper.apply(dict(zip(names, values)), self.measured))

    # ------------------------------------------------------------------------------- output
    def send(self, cmd: np.ndarray | None):
        if cmd is None:
            self.halt()
            report(self, 'bridge_no_safe_command', 'no command inside the joint limits is within '
                   'one step of the measured position: holding', 'error', 2.0)
            return
        if self.pub is not None:
            out = JointCommand()
            out.mode = JointCommand.POSITION_MODE
            out.names = list(self.shaper.names)
            out.command = cmd.tolist()
            self.pub.publish(out)
        if self.ros2_pub is not None:     # the same checked command, in the controller's order
            self.ros2_pub.publish(Float64MultiArray(data=cmd[self.ros2_control].tolist()))
        self.sent_ns = self._now()
        self.sent += 1
        if not self.commanding:
            self.commanding = True
            self.get_logger().info('commanding the left arm')

    def tick(self):
        now = self._now()
        fresh_delta = self.delta_ns and (now - self.delta_ns) * 1e-9 <= self.p['delta_timeout_s']
        fresh_state = self._fresh_state()
        if not (fresh_delta and fresh_state) or self.blocked():
            if self.commanding:
                self.halt()
                why = 'joint states' if not fresh_state else 'deltas'
                if not self.blocked():
                    self.get_logger().warn(f'watchdog: no fresh {why}; stopped commanding (the '
                                           f'arm holds)')
            return
        if (now - self.sent_ns) * 1e-9 >= 0.9 / self.p['command_rate_hz']:
            self.send(self.shaper.command(self.measured))


def main(args=None):
    return spin(BaxterBridge, args)


if __name__ == '__main__':
    raise SystemExit(main())
