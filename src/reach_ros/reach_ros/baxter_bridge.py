"""baxter_bridge: joint deltas -> Baxter's own joint command interface for the left arm.

Subscribes to ``joint_delta`` (/reach/joint_delta, sensor_msgs/JointState: names among
left_s1/e1/w1, ``position`` = change in rad) and ``joint_states`` (/robot/joint_states), and
publishes ``baxter_core_msgs/JointCommand`` in POSITION_MODE for all seven left-arm joints on
``joint_command`` (/robot/limb/left/joint_command):

* the pitch joints s1, e1, w1: the previous command (or the measured position, when the arm is
  more than one step away from it) plus the delta;
* s0, e0, w0, w2: ``hold_positions``;
* every joint clamped to Baxter's joint limits (shrunk by ``limit_margin``), then to within
  ``max_step`` of the previous command (while that is within two steps of the arm, and not after
  a watchdog stop), and last to within ``max_step`` of its measured position. So no command is
  more than one step from where the arm is measured, and while the arm follows, none is more
  than one step from the command before it (a joint state lagging behind the arm and a
  controller reversing its step would otherwise give consecutive commands three steps apart).
  Held joints far from their hold value get there one step per command.

A command goes out at once for each accepted delta, and the last one is re-sent when no delta
came for 1 / ``command_rate_hz`` (Baxter drops a position command stream that pauses longer than
its 0.2 s command timeout). Watchdog: while the last delta is older than ``delta_timeout_s`` or
the last joint state older than ``joint_state_timeout_s``, nothing is sent (the robot holds) and
this is logged once. Deltas that are malformed, non-finite, larger than ``max_step``, for unknown
joints, or stamped more than ``max_delta_age_s`` ago are refused with a logged error.
"""
from __future__ import annotations

import numpy as np
from baxter_core_msgs.msg import JointCommand
from rclpy.node import Node
from sensor_msgs.msg import JointState

from .common import (report, ACTIVE_JOINTS, COMMAND_QOS, HELD_JOINTS, JOINT_LIMITS, LEFT_ARM_JOINTS,
                     SENSOR_QOS, Param, age_s, declare_params, joint_positions, length,
                     non_negative, on_set_parameters, positive, spin)

PARAMS = [
    Param('hold_positions', [0.0, 0.0, 0.0, 0.0],
          'positions (rad) held for left_s0, left_e0, left_w0, left_w2 (zero: the arm moves in a '
          'vertical plane)', length(4)),
    Param('max_step', 0.04, 'largest change (rad) of a delta, and largest distance of any command '
          'from the measured position', positive),
    Param('limit_margin', 0.0, 'commands stay this far (rad) inside Baxter\'s joint limits',
          non_negative),
    Param('command_rate_hz', 20.0, 're-send the last command at this rate while no new delta '
          'comes (Baxter needs at least 5 Hz)', positive),
    Param('delta_timeout_s', 0.5, 'stop commanding when the last delta is older than this (s)',
          positive),
    Param('joint_state_timeout_s', 0.5, 'stop commanding when the last joint state is older than '
          'this (s)', positive),
    Param('max_delta_age_s', 0.5, 'refuse deltas stamped longer ago than this (s)', positive),
]

TOPICS = {
    'joint_delta': ('sub', 'sensor_msgs/msg/JointState'),
    'joint_states': ('sub', 'sensor_msgs/msg/JointState'),
    'joint_command': ('pub', 'baxter_core_msgs/msg/JointCommand'),
}


class CommandShaper:
    """Absolute, limited, rate-limited position commands from deltas (ROS-free)."""

    def __init__(self, hold: np.ndarray, max_step: float, margin: float):
        self.names = list(LEFT_ARM_JOINTS)
        self.active = np.array([n in ACTIVE_JOINTS for n in self.names])
        self.lo = np.array([JOINT_LIMITS[n][0] for n in self.names]) + margin
        self.hi = np.array([JOINT_LIMITS[n][1] for n in self.names]) - margin
        self.goal = np.zeros(len(self.names))       # where each joint should go
        self.goal[[self.names.index(n) for n in HELD_JOINTS]] = hold
        self.max_step = max_step
        self.last: np.ndarray | None = None        # the last command sent

    def apply(self, delta: dict[str, float], measured: np.ndarray) -> np.ndarray:
        """Command for a delta {joint: rad} given the measured positions (7, in self.names)."""
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

    def command(self, measured: np.ndarray) -> np.ndarray:
        """The current goal, clamped to the limits, to one step from the last command and to one
        step from ``measured`` (which wins when the two disagree)."""
        cmd = np.clip(self.goal, self.lo, self.hi)
        if self.last is not None:       # only where the two bounds overlap (the arm follows)
            near = np.abs(self.last - measured) <= 2 * self.max_step + 1e-9
            cmd = np.where(near, np.clip(cmd, self.last - self.max_step,
                                         self.last + self.max_step), cmd)
        cmd = np.clip(cmd, measured - self.max_step, measured + self.max_step)
        self.last = cmd
        return cmd


class BaxterBridge(Node):
    def __init__(self):
        super().__init__('baxter_bridge')
        self.p = declare_params(self, PARAMS)
        on_set_parameters(self, PARAMS, self._apply)
        hold = np.asarray(self.p['hold_positions'], dtype=np.float64)
        self.shaper = CommandShaper(hold, self.p['max_step'], self.p['limit_margin'])
        self.measured = None
        self.measured_ns = 0
        self.delta_ns = 0
        self.sent_ns = 0
        self.commanding = False
        self.sent = 0
        self.pub = self.create_publisher(JointCommand, 'joint_command', COMMAND_QOS)
        self.create_subscription(JointState, 'joint_states', self.on_joints, SENSOR_QOS)
        self.create_subscription(JointState, 'joint_delta', self.on_delta, COMMAND_QOS)
        self.create_timer(1.0 / self.p['command_rate_hz'], self.tick)
        self.get_logger().info(
            f"Baxter bridge: left arm POSITION_MODE, steps of at most {self.p['max_step']:g} rad, "
            f"holding s0/e0/w0/w2 at {hold.round(3).tolist()}")

    def _apply(self, changes: dict):
        self.p.update(changes)
        if 'hold_positions' in changes:
            self.shaper.goal[[self.shaper.names.index(n) for n in HELD_JOINTS]] = \
                changes['hold_positions']
        if 'max_step' in changes:
            self.shaper.max_step = changes['max_step']

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    def on_joints(self, msg: JointState):
        q = joint_positions(msg, LEFT_ARM_JOINTS)
        if q is None:
            report(self, 'baxter_bridge1', 'joint state without all seven left-arm joints: ignored', 'error', 2.0)
            return
        if not np.all(np.isfinite(q)):
            report(self, 'baxter_bridge2', 'joint state with NaN or infinite positions: ignored', 'error', 2.0)
            return
        self.measured = q
        self.measured_ns = self._now()

    def _fresh_state(self) -> bool:
        return self.measured is not None and \
            (self._now() - self.measured_ns) * 1e-9 <= self.p['joint_state_timeout_s']

    def on_delta(self, msg: JointState):
        names, values = list(msg.name), np.asarray(msg.position, dtype=np.float64)
        if len(names) != len(values) or not names:
            report(self, 'baxter_bridge3', f'delta refused: {len(names)} names but {len(values)} positions', 'error', 2.0)
            return
        unknown = [n for n in names if n not in ACTIVE_JOINTS]
        if unknown or len(set(names)) != len(names):
            report(self, 'baxter_bridge4', f'delta refused: joints {names} (only distinct left_s1, left_e1, left_w1 '
                      f'are moved)', 'error', 2.0)
            return
        if not np.all(np.isfinite(values)):
            report(self, 'baxter_bridge5', 'delta refused: NaN or infinite values', 'error', 2.0)
            return
        if np.any(np.abs(values) > self.p['max_step'] + 1e-9):
            report(self, 'baxter_bridge6', f'delta refused: {np.round(values, 4).tolist()} rad exceeds max_step '
                      f"{self.p['max_step']:g} rad", 'error', 2.0)
            return
        age = age_s(self, msg.header.stamp)
        if age > self.p['max_delta_age_s']:
            report(self, 'baxter_bridge7', f'delta refused: stale ({age:.3f} s old > max_delta_age_s '
                      f"{self.p['max_delta_age_s']:g})", 'error', 2.0)
            return
        if not self._fresh_state():
            report(self, 'baxter_bridge8', 'delta refused: no fresh joint states from the robot', 'error', 2.0)
            return
        self.delta_ns = self._now()
        cmd = self.shaper.apply(dict(zip(names, values)), self.measured)
        self.send(cmd)

    def send(self, cmd: np.ndarray):
        out = JointCommand()
        out.mode = JointCommand.POSITION_MODE
        out.names = list(self.shaper.names)
        out.command = cmd.tolist()
        self.pub.publish(out)
        self.sent_ns = self._now()
        self.sent += 1
        if not self.commanding:
            self.commanding = True
            self.get_logger().info('commanding the left arm')

    def tick(self):
        now = self._now()
        fresh_delta = self.delta_ns and (now - self.delta_ns) * 1e-9 <= self.p['delta_timeout_s']
        fresh_state = self._fresh_state()
        if not (fresh_delta and fresh_state):
            if self.commanding:
                self.commanding = False
                self.shaper.stop()
                why = 'joint states' if not fresh_state else 'deltas'
                self.get_logger().warn(f'watchdog: no fresh {why}; stopped commanding (the arm '
                                       f'holds)')
            return
        if (now - self.sent_ns) * 1e-9 >= 0.9 / self.p['command_rate_hz']:
            self.send(self.shaper.command(self.measured))


def main(args=None):
    return spin(BaxterBridge, args)


if __name__ == '__main__':
    raise SystemExit(main())
