"""fake_baxter: a stand-in for Baxter's left arm in position mode, for sim.launch.py and tests.

Takes ``baxter_core_msgs/JointCommand`` on ``joint_command`` (remapped to
``/robot/limb/left/joint_command``) and publishes ``sensor_msgs/JointState`` of the seven left-arm
joints on ``joint_states`` (``/robot/joint_states``) at ``rate_hz``. Each joint moves towards its
last commanded position at up to ``max_joint_speed`` rad/s, clamped to Baxter's joint limits.
Published states can lag (``latency_s``: each message carries the state of ``latency_s`` ago, with
that stamp) and be noisy (``noise_std`` rad, Gaussian). Only POSITION_MODE is supported; other
modes, malformed, non-finite or unknown-joint commands are refused with a logged error.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from baxter_core_msgs.msg import JointCommand
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import JointState

from .common import (report, COMMAND_QOS, JOINT_LIMITS, LEFT_ARM_JOINTS, STATE_QOS, Param,
                     declare_params, in_range, length, non_negative, on_set_parameters, spin)

PARAMS = [
    Param('rate_hz', 100.0, 'joint state publishing rate (Hz); Baxter publishes at 100 Hz',
          in_range(1.0, 1000.0), read_only=True),
    Param('initial_positions', [0.0, -0.55, 0.0, 1.2, 0.0, 0.4, 0.0],
          'start positions (rad) of left_s0, s1, e0, e1, w0, w1, w2', length(7, in_range(-3.2, 3.2)), read_only=True),
    Param('max_joint_speed', 2.0, 'speed (rad/s) at which each joint moves to its command',
          in_range(0.0, 10.0, low_open=True)),
    Param('latency_s', 0.0, 'published joint states show the arm as it was this long ago (s)',
          in_range(0.0, 5.0)),
    Param('noise_std', 0.0, 'standard deviation (rad) of Gaussian noise on published positions',
          in_range(0.0, 0.5)),
    Param('seed', 0, 'seed of the noise generator', non_negative,
          read_only=True),
]

TOPICS = {
    'joint_command': ('sub', 'baxter_core_msgs/msg/JointCommand'),
    'joint_states': ('pub', 'sensor_msgs/msg/JointState'),
}


class FakeBaxter(Node):
    def __init__(self):
        super().__init__('fake_baxter')
        self.p = declare_params(self, PARAMS)
        on_set_parameters(self, PARAMS, self.p.update)
        self.names = list(LEFT_ARM_JOINTS)
        self.lo = np.array([JOINT_LIMITS[n][0] for n in self.names])
        self.hi = np.array([JOINT_LIMITS[n][1] for n in self.names])
        q0 = np.asarray(self.p['initial_positions'], dtype=np.float64)
        if np.any((q0 < self.lo) | (q0 > self.hi)):
            report(self, 'fake_baxter1', 'initial_positions outside the joint limits: clamped')
        self.q = np.clip(q0, self.lo, self.hi)
        self.target = self.q.copy()
        self.rng = np.random.default_rng(int(self.p['seed']))
        self.history: deque[tuple[int, np.ndarray]] = deque()
        self.commands = 0
        self.pub = self.create_publisher(JointState, 'joint_states', STATE_QOS)
        self.create_subscription(JointCommand, 'joint_command', self.on_command, COMMAND_QOS)
        self.last_tick = self.get_clock().now().nanoseconds
        self.create_timer(1.0 / self.p['rate_hz'], self.tick)
        self.get_logger().info(
            f"fake Baxter left arm: joint states at {self.p['rate_hz']:g} Hz, "
            f"{self.p['max_joint_speed']:g} rad/s, latency {self.p['latency_s']:g} s, "
            f"noise {self.p['noise_std']:g} rad; start q = {np.round(self.q, 3).tolist()}")

    def on_command(self, msg: JointCommand):
        if msg.mode != JointCommand.POSITION_MODE:
            report(self, 'fake_baxter0', f'joint command refused: mode {msg.mode} is not POSITION_MODE (1); the '
                      f'fake Baxter supports position mode only', 'error', 2.0)
            return
        if len(msg.names) != len(msg.command) or not msg.names:
            report(self, 'fake_baxter2', f'joint command refused: {len(msg.names)} names but {len(msg.command)} '
                      f'values', 'error', 2.0)
            return
        unknown = [n for n in msg.names if n not in self.names]
        if unknown:
            report(self, 'fake_baxter3', f'joint command refused: unknown joints {unknown}', 'error', 2.0)
            return
        values = np.asarray(msg.command, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            report(self, 'fake_baxter4', 'joint command refused: NaN or infinite values', 'error', 2.0)
            return
        idx = [self.names.index(n) for n in msg.names]
        lo, hi = self.lo[idx], self.hi[idx]
        if np.any((values < lo) | (values > hi)):
            report(self, 'fake_baxter5', 'joint command outside the joint limits: clamped (as the robot does)', 'warn', 2.0)
        self.target[idx] = np.clip(values, lo, hi)
        self.commands += 1

    def tick(self):
        now = self.get_clock().now().nanoseconds
        dt = max(0.0, (now - self.last_tick) * 1e-9)
        self.last_tick = now
        step = self.p['max_joint_speed'] * dt
        self.q = self.q + np.clip(self.target - self.q, -step, step)
        self.history.append((now, self.q.copy()))
        latency_ns = int(self.p['latency_s'] * 1e9)
        # the newest state at least latency_s old (the oldest one while the arm has just started)
        stamp, q = self.history[0]
        while len(self.history) > 1 and self.history[1][0] <= now - latency_ns:
            self.history.popleft()
            stamp, q = self.history[0]
        if latency_ns == 0:
            stamp, q = now, self.q
        noise = self.p['noise_std']
        if noise > 0:
            q = q + self.rng.normal(0.0, noise, size=q.shape)
        msg = JointState()
        msg.header.stamp = Time(nanoseconds=stamp).to_msg()
        msg.name = self.names
        msg.position = q.tolist()
        self.pub.publish(msg)


def main(args=None):
    return spin(FakeBaxter, args)


if __name__ == '__main__':
    raise SystemExit(main())
