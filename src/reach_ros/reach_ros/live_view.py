"""live_view: the reaching loop, live, in the Foxglove app (no rqt needed); off by default.

``live_view:=true`` on sim.launch.py or real.launch.py starts it. It runs Foxglove's WebSocket
server (the foxglove-sdk package, ``host``:``port``, ws://127.0.0.1:8765 by default); open the
Foxglove app (desktop or https://app.foxglove.dev), "Open connection", "Foxglove WebSocket", that
URL. Channels (reach_core.live_view.CHANNELS):

* ``/camera/image`` and ``/perception/debug_image``: the camera frame and the perception node's
  drawing of the estimated arm and target over it (JPEG, at most ``image_rate_hz``);
* ``/reach/scene``: the arm's plane (frame ``left_arm_plane``, x forward, z up) with the estimated
  arm (green), the measured arm (grey) and the target (magenta), for the 3D panel;
* ``/reach/estimate``: the scene configuration as numbers (target, joints, hand, distance);
* ``/reach/joints/measured``, ``/reach/joints/commanded``: the robot's joint states and the safety
  bridge's commands (plot ``.joints[:]{name=="left_s1"}.position``);
* ``/reach/status``: the trial status.

It only listens: it publishes nothing on the ROS graph. Bad messages are skipped (logged once).
"""
from __future__ import annotations

import time

import cv2
import foxglove
from baxter_core_msgs.msg import JointCommand
from foxglove.channels import CompressedImageChannel, JointStatesChannel, SceneUpdateChannel
from foxglove.messages import (Color, CompressedImage, JointState as FgJoint, JointStates,
                               LinePrimitive, LinePrimitiveLineType, Point3, Pose, Quaternion,
                               SceneEntity, SceneUpdate, SpherePrimitive, Timestamp, Vector3)
from rclpy.node import Node
from reach_interfaces.msg import SceneConfig, TrialStatus
from sensor_msgs.msg import Image, JointState

from reach_core import live_view as lv

from .common import (ACTIVE_JOINTS, COMMAND_QOS, LATCHED_QOS, SENSOR_QOS, FatalNodeError,
                     ImageError, Param, declare_params, image_to_rgb, in_range, joint_positions,
                     report, spin, stamp_ns)

PARAMS = [
    Param('host', '127.0.0.1', 'address the Foxglove WebSocket server listens on (0.0.0.0: '
          'every interface, for the app on another machine)', read_only=True),
    Param('port', 8765, 'port of the Foxglove WebSocket server', in_range(1, 65535),
          read_only=True),
    Param('image_rate_hz', 10.0, 'at most this many frames a second per image channel',
          in_range(0.1, 60.0), read_only=True),
    Param('jpeg_quality', 80, 'JPEG quality of the image channels', in_range(10, 100),
          read_only=True),
]

TOPICS = {
    'image': ('sub', 'sensor_msgs/msg/Image'),
    'debug_image': ('sub', 'sensor_msgs/msg/Image'),
    'scene_config': ('sub', 'reach_interfaces/msg/SceneConfig'),
    'joint_states': ('sub', 'sensor_msgs/msg/JointState'),
    'joint_command': ('sub', 'baxter_core_msgs/msg/JointCommand'),
    'status': ('sub', 'reach_interfaces/msg/TrialStatus'),
}

GREEN, GREY, MAGENTA = Color(r=0.1, g=0.8, b=0.2, a=1.0), Color(r=0.6, g=0.6, b=0.6, a=0.8), \
    Color(r=0.9, g=0.1, b=0.9, a=1.0)


def _time(ns: int) -> Timestamp:
    return Timestamp(sec=ns // 1_000_000_000, nsec=ns % 1_000_000_000)


def _pose(x: float = 0.0, y: float = 0.0) -> Pose:
    """A pose in the plane frame: plane x forward -> x, plane y up -> z."""
    return Pose(position=Vector3(x=x, y=0.0, z=y), orientation=Quaternion(x=0, y=0, z=0, w=1))


def _joints(ns: int, names, values) -> JointStates:
    return JointStates(timestamp=_time(ns), joints=[FgJoint(name=n, position=float(v))
                                                    for n, v in zip(names, values)])


class LiveView(Node):
    def __init__(self):
        super().__init__('live_view')
        self.p = declare_params(self, PARAMS)
        try:
            self.server = foxglove.start_server(name='reach', host=self.p['host'],
                                                port=self.p['port'])
        except RuntimeError as err:     # the port is taken, the host is not this machine's
            raise FatalNodeError(f"live view: no Foxglove server on {self.p['host']}:"
                                 f"{self.p['port']}: {err}") from None
        self.images = {t: CompressedImageChannel(t) for t in ('/camera/image',
                                                              '/perception/debug_image')}
        self.scene = SceneUpdateChannel('/reach/scene')
        self.estimate = foxglove.Channel('/reach/estimate', message_encoding='json',
                                         schema={'type': 'object'})
        self.measured = JointStatesChannel('/reach/joints/measured')
        self.commanded = JointStatesChannel('/reach/joints/commanded')
        self.status = foxglove.Channel('/reach/status', message_encoding='json',
                                       schema={'type': 'object'})
        self.last_image = {t: 0.0 for t in self.images}
        self.create_subscription(Image, 'image', lambda m: self.on_image(m, '/camera/image'),
                                 SENSOR_QOS)
        self.create_subscription(Image, 'debug_image',
                                 lambda m: self.on_image(m, '/perception/debug_image'), SENSOR_QOS)
        self.create_subscription(SceneConfig, 'scene_config', self.on_scene, COMMAND_QOS)
        self.create_subscription(JointState, 'joint_states', self.on_joints, SENSOR_QOS)
        self.create_subscription(JointCommand, 'joint_command', self.on_command, COMMAND_QOS)
        self.create_subscription(TrialStatus, 'status', self.on_status, LATCHED_QOS)
        self.get_logger().info(f"live view: Foxglove WebSocket server on ws://{self.p['host']}:"
                               f"{self.server.port} (Foxglove app: Open connection)")

    def on_image(self, msg: Image, channel: str):
        now = time.monotonic()
        if now - self.last_image[channel] < 1.0 / self.p['image_rate_hz']:
            return
        try:
            frame = image_to_rgb(msg)
        except ImageError as err:
            report(self, 'lv_image', f'image skipped: {err}', 'error', 5.0)
            return
        self.last_image[channel] = now
        ok, jpeg = cv2.imencode('.jpg', frame[..., ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, self.p['jpeg_quality']])
        if ok:
            self.images[channel].log(CompressedImage(
                timestamp=_time(stamp_ns(msg.header.stamp)), frame_id=msg.header.frame_id,
                data=jpeg.tobytes(), format='jpeg'))

    def _arm(self, ns: int, name: str, q, color: Color, target=None) -> SceneEntity:
        points = [Point3(x=float(x), y=0.0, z=float(y)) for x, y in lv.arm_points(q)]
        spheres = [] if target is None else [SpherePrimitive(
            pose=_pose(*target), size=Vector3(x=0.04, y=0.04, z=0.04), color=MAGENTA)]
        return SceneEntity(timestamp=_time(ns), frame_id=lv.PLANE_FRAME, id=name, lines=[
            LinePrimitive(type=LinePrimitiveLineType.LineStrip, pose=_pose(), thickness=0.02,
                          points=points, color=color)], spheres=spheres)

    def on_scene(self, msg: SceneConfig):
        q = [msg.left_s1, msg.left_e1, msg.left_w1]
        target = (msg.target_x, msg.target_y)
        ns = stamp_ns(msg.header.stamp)
        try:
            record = lv.estimate_record(target, q, msg.source)
        except ValueError as err:
            report(self, 'lv_scene', f'scene configuration skipped: {err}', 'error', 5.0)
            return
        self.estimate.log(record)
        self.scene.log(SceneUpdate(entities=[self._arm(ns, 'estimate', q, GREEN, target)]))

    def on_joints(self, msg: JointState):
        q = joint_positions(msg, ACTIVE_JOINTS)
        if q is None:
            report(self, 'lv_joints', 'joint state skipped: no left_s1/e1/w1 positions', 'error',
                   5.0)
            return
        ns = stamp_ns(msg.header.stamp)
        self.measured.log(_joints(ns, msg.name, msg.position))
        self.scene.log(SceneUpdate(entities=[self._arm(ns, 'measured', q, GREY)]))

    def on_command(self, msg: JointCommand):
        if len(msg.names) != len(msg.command):
            report(self, 'lv_command', 'command skipped: names and values differ in length',
                   'error', 5.0)
            return
        self.commanded.log(_joints(self.get_clock().now().nanoseconds, msg.names, msg.command))

    def on_status(self, msg: TrialStatus):
        self.status.log({'trial': msg.trial, 'state': msg.state_name, 'steps': msg.steps,
                         'distance_m': msg.distance_m, 'message': msg.message})

    def destroy_node(self):
        if hasattr(self, 'server'):
            self.server.stop()
        return super().destroy_node()


def main(args=None):
    return spin(LiveView, args)


if __name__ == '__main__':
    raise SystemExit(main())
