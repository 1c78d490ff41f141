"""sim_camera: a simulated webcam that renders the scene with reach_core's renderers.

Stands in for the webcam node in sim.launch.py: the same outputs (``image_raw`` as rgb8 and
``camera_info``, sensor-data QoS, ``frame_id``) at ``fps``, drawn from the arm's joint states
(``joint_states``, i.e. /robot/joint_states) by :func:`reach_core.renderer.render`. Like the real
camera it shows no target unless ``render_target`` is set (a physical target in the scene, from
the ``target`` topic or the target_x/target_y parameters); the paper's virtual target is drawn
by the perception node, in sim and on the robot alike. Frames are stamped when they are
published (the moment a real camera's frame would be grabbed); rendering takes about 1 ms.

``renderer: hifi`` renders with :func:`reach_core.hifi_renderer.render_hifi` instead: the
higher-fidelity MuJoCo domain that the adapted perception network was trained for (a 3-D arm,
textured room, clutter, lights, a camera pose off the nominal one, sensor effects), the stand-in
for a real webcam. ``hifi_seed`` fixes the scene's look for the whole stream, as a camera on a
tripod in one room; sensor noise is part of that look. It takes about 45-70 ms a frame on a CPU
(MuJoCo's software EGL): run it at ``fps`` <= 10.

``renderer: proxy`` renders the held-out realistic proxy domain
(:func:`reach_core.proxy_renderer.render_proxy`: Baxter's real meshes in a room, seen by the
hand-placed, distorting ``PROXY_CAMERA``), raw frames as a real webcam gives them (calibrate them
before perception uses them); ``render_target`` puts the physical blue disc on its stand.
``proxy_seed`` fixes the look for the stream. About 0.1 s of CPU a frame: run it at ``fps`` <= 5.

``tool``: every renderer draws the gripper's fingers to this tool point; a physical target must
be within its reach.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState

from .common import (report, ACTIVE_JOINTS, CAMERA_PARAMS, LATCHED_QOS, SENSOR_QOS, FatalNodeError,
                     Param, age_s, camera_from, check_target, declare_params, fill_image,
                     finite, in_range, joint_positions, non_negative, one_of, positive, spin,
                     tool_param)

PARAMS = [
    Param('fps', 30.0, 'frame rate (Hz)', in_range(0.1, 1000.0), read_only=True),
    tool_param(),
    Param('frame_id', 'camera', 'frame_id of the images and camera info'),
    Param('camera_name', 'sim_camera', 'camera name (camera_info)'),
    Param('focal_px', 600.0, 'nominal focal length written to camera_info (px)', positive),
    Param('render_target', False, 'draw a physical target into the frames (the paper used a '
          'virtual one, drawn by perception)'),
    Param('target_x', 0.5, 'target x (m, arm plane) when render_target is set', finite),
    Param('target_y', 0.2, 'target y (m, arm plane) when render_target is set', finite),
    Param('joint_state_timeout_s', 0.5, 'skip frames while joint states are older than this (s)',
          positive),
    Param('renderer', 'simple', 'simple: the paper\'s simple simulator (reach_core.renderer); hifi: '
          'the higher-fidelity MuJoCo domain (reach_core.hifi_renderer), about 50 ms a frame; '
          'proxy: the held-out realistic domain (reach_core.proxy_renderer), about 0.1 s a frame',
          one_of('simple', 'hifi', 'proxy'), read_only=True),
    Param('proxy_seed', 0, 'renderer proxy: the look of the scene (room, light, camera jitter, '
          'sensor), fixed for the stream', non_negative, read_only=True),
    Param('hifi_seed', 0, 'renderer hifi: the look of the scene (camera pose, lights, clutter, '
          'sensor), fixed for the stream', non_negative, read_only=True),
] + CAMERA_PARAMS

TOPICS = {
    'joint_states': ('sub', 'sensor_msgs/msg/JointState'),
    'target': ('sub', 'geometry_msgs/msg/PointStamped'),
    'image_raw': ('pub', 'sensor_msgs/msg/Image'),
    'camera_info': ('pub', 'sensor_msgs/msg/CameraInfo'),
}

OFF_FRAME = np.array([-100.0, -100.0])  # a target far outside the view: renders nothing


class SimCamera(Node):
    def __init__(self):
        super().__init__('sim_camera')
        self.p = declare_params(self, PARAMS)
        try:
            self.camera = camera_from(self.p)
        except ValueError as err:
            raise FatalNodeError(f'bad camera parameters: {err}') from None
        if self.p['renderer'] == 'hifi':
            from reach_core.hifi_renderer import HifiRenderError, render_hifi
            seed, tool = int(self.p['hifi_seed']), self.p['tool']
            self.render = lambda target, q, camera: render_hifi(
                None if target is OFF_FRAME else target, q, seed, camera, tool=tool)
            try:
                self.render(OFF_FRAME, np.zeros(3), self.camera)   # MuJoCo and its GL, now
            except HifiRenderError as err:
                raise FatalNodeError(f'renderer hifi is not available: {err}') from None
        elif self.p['renderer'] == 'proxy':
            self.render = self._proxy_renderer()
        else:
            from reach_core import renderer
            tool = self.p['tool']
            self.render = lambda target, q, camera: renderer.render(target, q, camera, tool)
        self.target = np.array([self.p['target_x'], self.p['target_y']])
        self.q = None
        self.q_msg = None
        self.frames = 0
        self.img_pub = self.create_publisher(Image, 'image_raw', SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, 'camera_info', SENSOR_QOS)
        self.create_subscription(JointState, 'joint_states', self.on_joints, SENSOR_QOS)
        self.create_subscription(PointStamped, 'target', self.on_target, LATCHED_QOS)
        self.info = self._camera_info()
        self.create_timer(1.0 / self.p['fps'], self.tick)
        self.get_logger().info(
            f"simulated camera {self.camera.width}x{self.camera.height} at {self.p['fps']:g} fps, "
            f"{self.p['renderer']} renderer "
            f"({'with' if self.p['render_target'] else 'without'} a rendered target)")

    def _proxy_renderer(self):
        """render(target, q, camera) of the proxy domain; FatalNodeError if it cannot run."""
        from reach_core.proxy_renderer import PROXY_CAMERA, ProxyRenderError, render_proxy
        if (self.camera.width, self.camera.height) != (PROXY_CAMERA.width, PROXY_CAMERA.height):
            raise FatalNodeError(f'renderer proxy draws {PROXY_CAMERA.width}x{PROXY_CAMERA.height} '
                                 f'frames; camera.width/height are {self.camera.width}x'
                                 f'{self.camera.height}')
        seed, tool = int(self.p['proxy_seed']), self.p['tool']

        def render(target, q, camera):
            physical = target is not OFF_FRAME
            return render_proxy(target if physical else None, q, seed,
                                target_mode='physical' if physical else 'none', tool=tool)
        try:
            render(OFF_FRAME, np.zeros(3), self.camera)   # pybullet and the meshes, now
        except ProxyRenderError as err:
            raise FatalNodeError(f'renderer proxy is not available: {err}') from None
        return render

    def _camera_info(self) -> CameraInfo:
        info = CameraInfo()
        info.header.frame_id = self.p['frame_id']
        info.width, info.height = self.camera.width, self.camera.height
        f = self.p['focal_px']
        cx, cy = self.camera.width / 2.0, self.camera.height / 2.0
        info.distortion_model = 'plumb_bob'
        info.d = [0.0] * 5
        info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    def on_joints(self, msg: JointState):
        q = joint_positions(msg, ACTIVE_JOINTS)
        if q is None or not np.all(np.isfinite(q)):
            report(self, 'sim_camera1', 'joint state without finite left_s1/e1/w1 positions: ignored', 'error', 2.0)
            return
        self.q, self.q_msg = q, msg

    def on_target(self, msg: PointStamped):
        err = check_target(msg.point.x, msg.point.y, self.p['tool'])
        if err:
            report(self, 'sim_camera2', f'target refused: {err}')
            return
        self.target = np.array([msg.point.x, msg.point.y])

    def tick(self):
        if self.q is None:
            report(self, 'sim_camera0', 'no joint states yet: no frames', 'warn', 5.0)
            return
        if age_s(self, self.q_msg.header.stamp) > self.p['joint_state_timeout_s']:
            report(self, 'sim_camera3', 'joint states are stale: no frames', 'warn', 5.0)
            return
        target = self.target if self.p['render_target'] else OFF_FRAME
        frame = self.render(target, self.q, self.camera)
        msg = fill_image(Image(), frame, 'rgb8')
        msg.header.frame_id = self.p['frame_id']
        msg.header.stamp = self.get_clock().now().to_msg()
        self.info.header.stamp = msg.header.stamp
        self.img_pub.publish(msg)
        self.info_pub.publish(self.info)
        self.frames += 1


def main(args=None):
    return spin(SimCamera, args)


if __name__ == '__main__':
    raise SystemExit(main())
