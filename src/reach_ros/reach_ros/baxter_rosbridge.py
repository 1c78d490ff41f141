"""baxter_rosbridge: the reach graph <-> a real Baxter (ROS 1) through rosbridge, without ROS 1.

Baxter's ROS 1 master runs rosbridge_server (``roslaunch rosbridge_server
rosbridge_websocket.launch``, in the lab's existing ROS 1 environment); this node connects to it
with roslibpy (docs/baxter.md) and

* publishes Baxter's left-arm joint states on ``joint_states`` (/robot/joint_states,
  sensor_msgs/JointState, the seven left-arm joints; messages about other joints only, such as
  the grippers', are skipped);
* forwards every ``joint_command`` (/robot/limb/left/joint_command, baxter_core_msgs/
  JointCommand) that the safety bridge publishes to Baxter's ``/robot/limb/left/joint_command``.

It adds no motion of its own: it only forwards what the bridge sends, one message for one
message, and forwards nothing (logged once per cause, then once when forwarding resumes) while

* the websocket to rosbridge is down (it reconnects by itself, every ``reconnect_max_delay_s``
  at most),
* no joint state came from Baxter for ``state_timeout_s`` (a stale connection),
* ``require_enabled`` and the last ``/robot/state`` does not say enabled and not stopped (or
  none came),
* a command waited longer than ``max_command_age_s`` to go out (it is dropped, never queued
  for a later connection).

The mapping itself is ROS-free: :mod:`reach_core.baxter_rosbridge`.
"""
from __future__ import annotations

import threading
import time

import roslibpy
from baxter_core_msgs.msg import JointCommand
from rclpy.node import Node
from sensor_msgs.msg import JointState

from reach_core import baxter_rosbridge as bx

from .common import (COMMAND_QOS, STATE_QOS, Param, declare_params, in_range, one_of, report,
                     spin)

PARAMS = [
    Param('rosbridge_host', 'localhost', 'host of rosbridge_server on the robot\'s ROS 1 side '
          '(the Baxter workstation or the robot itself)', read_only=True),
    Param('rosbridge_port', 9090, 'port of rosbridge_server', in_range(1, 65535), read_only=True),
    Param('stamp', 'robot', 'joint state stamps: robot (Baxter\'s own; its clock must be synced '
          'with this machine\'s, e.g. by chrony) or receipt (when the message arrives here)',
          one_of('robot', 'receipt'), read_only=True),
    Param('state_timeout_s', 0.5, 'forward no command when the last joint state from Baxter '
          'arrived longer ago than this (s)', in_range(0.0, 2.0, low_open=True), read_only=True),
    Param('require_enabled', True, 'forward commands only while /robot/state says enabled and '
          'not stopped', read_only=True),
    Param('enable_robot', False, 'publish True on /robot/set_super_enable once connected (else '
          'enable the robot yourself: rosrun baxter_tools enable_robot.py -e)', read_only=True),
    Param('max_command_age_s', 0.1, 'drop a command that could not go out within this time (s)',
          in_range(0.0, 1.0, low_open=True), read_only=True),
    Param('reconnect_max_delay_s', 2.0, 'longest wait (s) between two attempts to reconnect',
          in_range(0.1, 60.0), read_only=True),
    Param('max_clock_offset_s', 0.05, 'warn once when Baxter\'s stamps are further than this (s) '
          'from this machine\'s clock (stamp: robot)', in_range(0.0, 10.0), read_only=True),
]

TOPICS = {
    'joint_command': ('sub', 'baxter_core_msgs/msg/JointCommand'),
    'joint_states': ('pub', 'sensor_msgs/msg/JointState'),
}


class BaxterRosbridge(Node):
    def __init__(self):
        super().__init__('baxter_rosbridge')
        self.p = declare_params(self, PARAMS)
        self.lock = threading.Lock()
        self.state_at = None            # monotonic time of the last left-arm state
        self.measured: dict[str, float] = {}
        self.robot_ok, self.robot_why = False, 'no /robot/state from Baxter yet'
        self.blocked_by: str | None = None
        self.forwarded = 0
        self.clock_warned = False
        self.pub = self.create_publisher(JointState, 'joint_states', STATE_QOS)
        self.create_subscription(JointCommand, 'joint_command', self.on_command, COMMAND_QOS)
        self.create_timer(0.1, self.check)
        self._connect()

    # ------------------------------------------------------------------------------ rosbridge
    def _connect(self):
        factory = roslibpy.comm.select_factory(None)
        factory.set_initial_delay(0.2)
        factory.set_max_delay(self.p['reconnect_max_delay_s'])
        host, port = self.p['rosbridge_host'], self.p['rosbridge_port']
        self.where = f'rosbridge at ws://{host}:{port}'
        self.ros = roslibpy.Ros(host=host, port=port)
        self.ros.on('close', lambda *_: self._lost())
        self.ros.on('ready', self._ready)       # every (re)connection
        self.command_topic = roslibpy.Topic(self.ros, *bx.JOINT_COMMAND, queue_size=1)
        self.command_topic.advertise()
        roslibpy.Topic(self.ros, *bx.JOINT_STATES, queue_size=1).subscribe(self.on_states)
        roslibpy.Topic(self.ros, *bx.ROBOT_STATE, queue_size=1).subscribe(self.on_robot_state)
        self.ros.factory.manager.run()      # roslibpy's event loop, in its own thread
        self.get_logger().info(f'Baxter over {self.where}: Baxter\'s left-arm joint states -> '
                               f'joint_states; the safety bridge\'s joint_command -> '
                               f'{bx.JOINT_COMMAND[0]}')

    def _ready(self, *_):
        self.get_logger().info(f'connected to {self.where}')
        if self.p['enable_robot']:
            roslibpy.Topic(self.ros, *bx.ENABLE).publish(roslibpy.Message(bx.enable_message()))
            self.get_logger().info(f'enable_robot: sent True on {bx.ENABLE[0]}')

    def _lost(self):
        with self.lock:
            self.state_at = None
            self.robot_ok, self.robot_why = False, f'the connection to {self.where} closed'

    # ------------------------------------------------------------------------------ from Baxter
    def on_states(self, msg: dict):
        try:
            arm = bx.arm_state_from_rosbridge(msg)
        except bx.BaxterMessageError as err:
            report(self, 'rb_state', f'joint state from Baxter skipped: {err}', 'error', 2.0)
            return
        if arm is None:
            return                      # the grippers' joints
        out = JointState()
        stamp = arm.stamp_ns if self.p['stamp'] == 'robot' else time.time_ns()
        self._check_clock(stamp)
        out.header.stamp.sec, out.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        out.name, out.position = list(arm.names), arm.position
        out.velocity, out.effort = arm.velocity, arm.effort
        with self.lock:
            self.state_at = time.monotonic()
            self.measured = dict(zip(arm.names, arm.position))
        self.pub.publish(out)

    def _check_clock(self, stamp: int):
        offset = (time.time_ns() - stamp) * 1e-9
        if self.p['stamp'] == 'robot' and not self.clock_warned and \
                abs(offset) > self.p['max_clock_offset_s']:
            self.clock_warned = True
            self.get_logger().warn(
                f'Baxter\'s joint states are stamped {offset:+.3f} s from this machine\'s clock: '
                f'sync the clocks (chrony) or set stamp: receipt; the safety bridge refuses '
                f'states that look stale or in the future')

    def on_robot_state(self, msg: dict):
        ok, why = bx.robot_state_ok(msg)
        with self.lock:
            self.robot_ok, self.robot_why = ok, why

    # ------------------------------------------------------------------------------ to Baxter
    def blocked(self) -> str | None:
        """Why no command may be forwarded now (None: it may)."""
        with self.lock:
            state_at, robot_ok, robot_why = self.state_at, self.robot_ok, self.robot_why
        if not self.ros.is_connected:
            return f'no connection to {self.where} (reconnecting)'
        if state_at is None or time.monotonic() - state_at > self.p['state_timeout_s']:
            return f"no joint state from Baxter for {self.p['state_timeout_s']:g} s"
        if self.p['require_enabled'] and not robot_ok:
            return robot_why
        return None

    def check(self):
        """Log once when forwarding stops (and why) and once when it may resume."""
        why = self.blocked()
        if why != self.blocked_by:
            if why is not None:
                self.get_logger().warn(f'not forwarding commands to Baxter: {why}')
            elif self.blocked_by is not None:
                self.get_logger().info('forwarding the safety bridge\'s commands to Baxter')
            self.blocked_by = why

    def on_command(self, msg: JointCommand):
        why = self.blocked()
        if why is not None:
            self.check()
            return
        with self.lock:
            measured = dict(self.measured)
        try:
            out = bx.joint_command_to_rosbridge(msg.mode, msg.names, msg.command, measured)
        except bx.BaxterMessageError as err:
            report(self, 'rb_command', f'command not forwarded: {err}', 'error', 2.0)
            return
        self._send_fresh(out, time.monotonic())

    def _send_fresh(self, msg: dict, made: float):
        """Publish on Baxter's command topic unless it is older than max_command_age_s by the
        time the connection can take it (roslibpy would otherwise queue it for a reconnect)."""
        data = roslibpy.Message({'op': 'publish', 'topic': bx.JOINT_COMMAND[0], 'msg': msg,
                                 'id': f'publish:{bx.JOINT_COMMAND[0]}:{self.forwarded}'})

        def send(proto):
            if time.monotonic() - made <= self.p['max_command_age_s']:
                proto.send_ros_message(data)
            return proto
        self.ros.factory.on_ready(send)
        self.forwarded += 1

    def destroy_node(self):
        try:
            self.ros.terminate()
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
        return super().destroy_node()


def main(args=None):
    return spin(BaxterRosbridge, args)


if __name__ == '__main__':
    raise SystemExit(main())
