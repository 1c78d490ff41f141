"""perception: camera image -> /scene_config (reach_interfaces/SceneConfig), one per image.

Per image on ``image`` (rgb8 or bgr8, the camera's size; sensor-data QoS):

1. checks it (encoding, size, data length, age against ``max_image_age_s``);
2. draws the virtual target into it when ``draw_virtual_target`` is set (the paper's repeatable
   trials, Figure 3B), with :func:`reach_core.renderer.add_target`; the target comes from the
   ``target_x``/``target_y`` parameters or the latched ``target`` topic
   (geometry_msgs/PointStamped, metres in the arm plane);
3. estimates the scene configuration:

   * ``model_path`` set: the perception network (``reach_core.perception.PerceptionModel``, or
     the perception half of a combined end-to-end checkpoint such as ``end2end_ee2ft.pt``, run
     by ncnn (``runtime`` auto: :mod:`reach_core.perception.ncnn_runtime`, the same outputs to
     about 1e-5, 2-2.5x faster than ONNX Runtime) or torch; or of its ONNX export
     ``end2end_ee2ft.onnx``, run by ONNX Runtime) on the image cropped, greyed and scaled as in
     training (:func:`reach_core.renderer.preprocess_frame`, equal to ``preprocess`` up to float32
     rounding);
   * ``model_path`` empty: ground truth, for the simulation and for tests until a trained
     perception network exists: the joint angles from ``joint_states`` (/robot/joint_states) and
     the target set above. This is logged at start-up and in every message's ``source`` field:
     no vision is involved;
4. publishes it on ``scene_config`` stamped with the source image's stamp, and, when someone
   listens, an annotated image on ``~/debug_image`` (estimated arm in green, target in magenta)
   for rqt_image_view.

Bad input (wrong encoding or size, stale or future-stamped image or joint states, a non-finite or out-of-range
estimate) is skipped with a logged error; a missing or broken model file, or a missing perception
module, is one clear error at start-up and the node then publishes nothing (it never falls back to
ground truth silently).
"""
from __future__ import annotations

import os

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from reach_interfaces.msg import SceneConfig
from sensor_msgs.msg import Image, JointState

from .common import (report, ACTIVE_JOINTS, CAMERA_PARAMS, COMMAND_QOS, LATCHED_QOS, PLANE_FRAME,
                     SENSOR_QOS, FatalNodeError, ImageError, Param, age_s, camera_from,
                     check_target, declare_params, fill_image, finite, image_to_rgb, in_range,
                     joint_positions, on_set_parameters, one_of, positive, spin, tool_param)

PARAMS = [
    Param('model_path', '', 'perception network checkpoint (.pt); empty: ground truth from '
          'joint_states and the set target (simulation and tests only: no vision)',
          read_only=True),
    tool_param(),
    Param('draw_virtual_target', True, 'draw the target disc into each image before perception '
          '(the paper\'s virtual target)'),
    Param('target_x', 0.5, 'target x (m, arm plane, forward); also set by the target topic',
          finite),
    Param('target_y', 0.2, 'target y (m, arm plane, up); also set by the target topic', finite),
    Param('max_image_age_s', 0.5, 'skip images older than this (s)', positive),
    Param('max_clock_skew_s', 0.1, 'skip images and joint states stamped more than this far (s) '
          'in the future', in_range(0.0, 1.0)),
    Param('joint_state_timeout_s', 0.5, 'ground truth only: skip images while joint states are '
          'older than this (s)', positive),
    Param('omega_tolerance', 0.02, 'estimates this far outside [0, 1] (normalised) are clipped; '
          'farther ones are refused', positive),
    Param('threads', 2, 'CPU threads for the network: ncnn splits the test-time augmentation '
          'copies over them (2, both cores of the reference CPU: 2 copies a thread with the ring; '
          '1 where other processes keep every core busy); torch and ONNX Runtime use them inside '
          'each operation', in_range(1, 256), read_only=True),
    Param('runtime', 'auto', 'CPU runtime of a .pt network: auto (ncnn when it is installed and '
          'translates the network, else torch), ncnn, or torch; a .onnx file always runs on ONNX '
          'Runtime', one_of('auto', 'ncnn', 'torch'), read_only=True),
    Param('camera_file', '', 'camera file of the real camera (reach calibrate): its frames are '
          'resampled into the virtual camera the network was trained for; empty: the camera is '
          'the virtual one (the simulated webcam)', read_only=True),
    Param('require_target', True, 'network, physical target (draw_virtual_target false): publish '
          'nothing while no blue target disc is in view (reach_core.target_visibility) instead '
          'of the made-up target a network always outputs'),
    Param('tta', 1, 'test-time augmentation: the network\'s estimate is the median over the image '
          'shifted by up to this many pixels (0..3; 0: off; 1 cut the adapted network\'s hifi '
          'error by a tenth; applied only to networks trained with shifted cameras, off for the '
          'others)',
          lambda v: None if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 3
          else f'must be an integer in 0..3, got {v!r}'),
    Param('tta_pattern', 'ring', 'the shifts of test-time augmentation: ring (the image shifted '
          'by 1..tta px along each axis, 4 tta copies: 4 for tta 1, the median the mean of the '
          'two middle estimates), cross (the ring and the image itself: 5) or square (every shift '
          'up to tta on both axes, (2 tta + 1)^2 copies: 9); the ring keeps the square\'s error '
          'and closed loop in under half the time (docs/inference.md); a .onnx file has its own, '
          'fixed',
          one_of('cross', 'ring', 'square')),
] + CAMERA_PARAMS

TOPICS = {
    'image': ('sub', 'sensor_msgs/msg/Image'),
    'joint_states': ('sub', 'sensor_msgs/msg/JointState'),
    'target': ('sub', 'geometry_msgs/msg/PointStamped'),
    'scene_config': ('pub', 'reach_interfaces/msg/SceneConfig'),
    '~/debug_image': ('pub', 'sensor_msgs/msg/Image'),
}


class ModelUnavailable(RuntimeError):
    pass


def load_model(path: str, threads: int = 1, runtime: str = 'auto'):
    """The perception network at ``path`` on its CPU runtime, or ModelUnavailable saying why not."""
    try:
        from reach_core.end_to_end import load_module
    except ImportError as err:
        raise ModelUnavailable(f'the perception network module reach_core.perception is not '
                               f'available ({err}); leave model_path empty for ground truth '
                               f'(simulation only)') from None
    if not os.path.isfile(path):
        raise ModelUnavailable(f'perception model file not found: {path}')
    try:
        if path.endswith('.onnx'):   # an exported combined network, run by ONNX Runtime
            from reach_core.end_to_end import OnnxPerception
            return OnnxPerception(path, threads)
        model = load_module(path, 'perception')   # a perception or combined end-to-end checkpoint
    except Exception as err:  # noqa: BLE001 - the loader's own error says what is wrong
        raise ModelUnavailable(f'cannot load perception model {path}: {err}') from None
    if runtime == 'torch':
        return model
    from reach_core.perception.ncnn_runtime import NcnnPerception, NcnnUnavailable
    try:
        return NcnnPerception(model, threads)
    except NcnnUnavailable as err:
        if runtime == 'ncnn':
            raise ModelUnavailable(f'runtime ncnn: {err}') from None
        return model   # auto: torch runs what ncnn cannot


def runtime_name(model) -> str:
    """ncnn, onnxruntime or torch: what runs ``model``."""
    name = type(model).__name__
    return {'NcnnPerception': 'ncnn', 'OnnxPerception': 'onnxruntime'}.get(name, 'torch')


class Perception(Node):
    def __init__(self):
        super().__init__('perception')
        self.p = declare_params(self, PARAMS)
        try:
            self.camera = camera_from(self.p)
        except ValueError as err:
            raise FatalNodeError(f'bad camera parameters: {err}') from None
        from reach_core import renderer, scene
        from reach_core.kinematics import tool_arm
        self.renderer, self.scene, self.arm = renderer, scene, tool_arm(self.p['tool'])
        err = check_target(self.p['target_x'], self.p['target_y'], self.p['tool'])
        if err:
            report(self, 'perception1', f'target parameters refused: {err}; using (0.5, 0.2)')
            self.p['target_x'], self.p['target_y'] = 0.5, 0.2
        self.target = np.array([self.p['target_x'], self.p['target_y']])
        on_set_parameters(self, PARAMS, self._apply)
        self.model = None
        self.model_error = None
        self.calibration = self._load_camera_file()
        path = self.p['model_path'].strip()
        if path:
            try:
                import torch
                torch.set_num_threads(int(self.p['threads']))
                self.model = load_model(os.path.expanduser(path), int(self.p['threads']),
                                        self.p['runtime'])
                self._check_tool(path)
                self._set_tta(int(self.p['tta']), self.p['tta_pattern'])
                self.source = f'network:{os.path.basename(path)}'
                self.get_logger().info(f'perception network: {path} on {runtime_name(self.model)}' + (
                    f" (test-time augmentation: the {self.model.tta_pattern} of shifts up to "
                    f"{self.model.tta} px)"
                    if self.model.tta else ''))
            except ModelUnavailable as err:
                self.model_error = str(err)
                self.source = 'none'
                self.get_logger().error(f'{err}: no scene configurations will be published')
        else:
            self.source = 'ground_truth'
            self.get_logger().warn(
                'model_path is empty: publishing GROUND TRUTH scene configurations (joint angles '
                'from joint_states, the set target); no vision is involved')
        self.q = None
        self.q_msg = None
        self.published = 0
        self.pub = self.create_publisher(SceneConfig, 'scene_config', COMMAND_QOS)
        self.debug_pub = self.create_publisher(Image, '~/debug_image', SENSOR_QOS)
        self.create_subscription(Image, 'image', self.on_image, SENSOR_QOS)
        self.create_subscription(PointStamped, 'target', self.on_target, LATCHED_QOS)
        if self.model is None and self.model_error is None:
            self.create_subscription(JointState, 'joint_states', self.on_joints, SENSOR_QOS)

    def _load_camera_file(self):
        """The camera file, or None; a bad one is one clear error and no output (model_error)."""
        path = self.p['camera_file'].strip()
        if not path:
            return None
        from reach_core.camera_model import CameraFileError, CameraModel
        try:
            calibration = CameraModel.load(os.path.expanduser(path))
        except CameraFileError as err:
            self.model_error = f'camera_file refused: {err}'
            self.get_logger().error(f'{self.model_error}: no scene configurations will be published')
            return None
        self.get_logger().info(f'camera file {path}: {calibration.width}x{calibration.height} frames '
                               f'resampled into the virtual camera')
        return calibration

    def _camera_frame(self, msg: Image):
        """The image as the virtual camera sees it (through the camera file, if any)."""
        if self.calibration is None:
            return image_to_rgb(msg, self.camera.width, self.camera.height)
        frame = image_to_rgb(msg, self.calibration.width, self.calibration.height)
        return self.calibration.to_virtual(frame, self.camera)

    def _target_in_view(self, frame) -> bool:
        """False (logged, throttled) when a physical target is required and none is seen."""
        if self.model is None or self.p['draw_virtual_target'] or not self.p['require_target']:
            return True
        from reach_core.target_visibility import find_target
        seen = find_target(frame, self.camera)
        if not seen.visible:
            report(self, 'perception_no_target', f'no target in view ({seen.reason}): nothing '
                   f'published until one is', 'warn', 5.0)
        return seen.visible

    def _check_tool(self, path: str):
        """Refuse (FatalNodeError) a network trained for another tool point than ``tool``: it
        reads the gripper and places targets for that one.  An exported ONNX network records
        none: the paper's."""
        from reach_core.kinematics import ToolError, check_tool
        try:
            check_tool(self.p['tool'], getattr(self.model, 'tool', 'paper'), f'perception model {path}')
        except ToolError as err:
            raise FatalNodeError(str(err)) from None

    # ------------------------------------------------------------------------------- inputs
    def _apply(self, changes: dict):
        x = changes.get('target_x', self.target[0])
        y = changes.get('target_y', self.target[1])
        err = check_target(x, y, self.p['tool'])
        if err:
            raise ValueError(err)
        self.target = np.array([x, y], dtype=np.float64)
        if ('tta' in changes or 'tta_pattern' in changes) and self.model is not None:
            self._set_tta(int(changes.get('tta', self.p['tta'])),
                          changes.get('tta_pattern', self.p['tta_pattern']))
        self.p.update(changes)

    def _set_tta(self, radius: int, pattern: str):
        from reach_core.end_to_end import OnnxPerception
        if isinstance(self.model, OnnxPerception):   # the augmentation is part of the ONNX graph
            if (radius, pattern) != (self.model.tta, self.model.tta_pattern):
                report(self, 'perception_tta_onnx', f'{self.p["model_path"]} was exported with '
                       f'tta {self.model.tta} over the {self.model.tta_pattern}; the tta and '
                       f'tta_pattern parameters ({radius}, {pattern}) cannot change it (reach '
                       f'export end2end --tta N --tta-pattern P)', 'info')
            return
        from reach_core.perception import tta_for
        self.model.tta_pattern = pattern
        self.model.tta = tta_for(self.model, radius)
        if radius and not self.model.tta:
            report(self, 'perception_tta', f'{self.p["model_path"]} was trained without camera '
                   f'shifts: test-time augmentation (tta {radius}) is off for it (shifted images '
                   f'would mislead it)', 'info')

    def on_target(self, msg: PointStamped):
        x, y = msg.point.x, msg.point.y
        err = check_target(x, y, self.p['tool'])
        if err:
            self.get_logger().error(f'target refused: {err}')
            return
        self.target = np.array([x, y], dtype=np.float64)
        self.get_logger().info(f'target ({x:.3f}, {y:.3f}) m')

    def on_joints(self, msg: JointState):
        q = joint_positions(msg, ACTIVE_JOINTS)
        if q is None or not np.all(np.isfinite(q)):
            report(self, 'perception0', 'joint state without finite left_s1/e1/w1 positions: ignored')
            return
        if age_s(self, msg.header.stamp) < -self.p['max_clock_skew_s']:
            report(self, 'perception_future_js', 'joint state stamped in the future: ignored')
            return
        self.q, self.q_msg = q, msg

    # ------------------------------------------------------------------------------- per image
    def on_image(self, msg: Image):
        if self.model_error is not None:
            report(self, 'perception2', f'no perception model ({self.model_error}): image dropped', 'error', 10.0)
            return
        try:
            frame = self._camera_frame(msg)
        except ImageError as err:
            report(self, f'image:{str(err)[:24]}', f'image refused: {err}', 'error', 2.0)
            return
        age = age_s(self, msg.header.stamp)
        if age > self.p['max_image_age_s']:
            report(self, 'perception4', f'image refused: stale ({age:.3f} s old > max_image_age_s '
                      f"{self.p['max_image_age_s']:g})", 'error', 2.0)
            return
        if age < -self.p['max_clock_skew_s']:
            report(self, 'perception_future', f'image refused: stamped {-age:.3f} s in the future '
                   f"(max_clock_skew_s {self.p['max_clock_skew_s']:g})", 'error', 2.0)
            return
        if not self._target_in_view(frame):
            return
        target = self.target.copy()
        if self.p['draw_virtual_target'] and (self.model is not None
                                              or self.debug_pub.get_subscription_count()):
            frame = self.renderer.add_target(frame, target, self.camera)
        estimate = self._network(frame) if self.model is not None else self._ground_truth(target)
        if estimate is None:
            return
        est_target, q, omega = estimate
        out = SceneConfig()
        out.header.stamp = msg.header.stamp
        out.header.frame_id = PLANE_FRAME
        out.target_x, out.target_y = float(est_target[0]), float(est_target[1])
        out.left_s1, out.left_e1, out.left_w1 = (float(v) for v in q)
        out.omega = omega.astype(np.float32).tolist()
        out.source = self.source
        self.pub.publish(out)
        self.published += 1
        if self.debug_pub.get_subscription_count():
            self.publish_debug(frame, est_target, q, msg)

    def _network(self, frame):
        """(target, q, omega) estimated by the network, or None (logged) for a bad estimate."""
        x = self.renderer.preprocess_frame(frame, self.camera)[None]
        try:
            omega = np.asarray(self.model.predict(x), dtype=np.float64).reshape(-1)
        except Exception as err:  # noqa: BLE001 - a broken model must not kill the node
            report(self, 'perception5', f'perception network failed: {err}', 'error', 2.0)
            return None
        if omega.shape != (5,) or not np.all(np.isfinite(omega)):
            report(self, 'perception6', f'perception network returned {omega!r}: not 5 finite values', 'error', 2.0)
            return None
        tol = self.p['omega_tolerance']
        if np.any((omega < -tol) | (omega > 1 + tol)):
            report(self, 'perception7', f'perception estimate out of range (normalised {np.round(omega, 3)})', 'error', 2.0)
            return None
        omega = np.clip(omega, 0.0, 1.0)
        est_target, q = self.scene.denormalise(omega)
        return est_target, q, omega

    def _ground_truth(self, target):
        """(target, q, omega) from the joint states and the set target, or None (logged)."""
        if self.q is None:
            report(self, 'perception8', 'ground truth: no joint states yet', 'warn', 5.0)
            return None
        q_age = age_s(self, self.q_msg.header.stamp)
        if q_age > self.p['joint_state_timeout_s']:
            report(self, 'perception9', f'ground truth: joint states are stale ({q_age:.3f} s)', 'error', 2.0)
            return None
        if q_age < -self.p['max_clock_skew_s']:
            report(self, 'perception_future_q', f'ground truth: joint states stamped '
                   f'{-q_age:.3f} s in the future', 'error', 2.0)
            return None
        q, est_target = self.q.copy(), target
        omega = np.clip(self.scene.normalise(est_target, q).astype(np.float64), 0.0, 1.0)
        return est_target, q, omega

    def publish_debug(self, frame: np.ndarray, target, q, src: Image):
        import cv2
        img = np.ascontiguousarray(frame.copy())
        pts = self.camera.to_pixels(self.arm.link_points(q)).round().astype(np.int32)
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, (0, 220, 0), 3, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, (int(p[0]), int(p[1])), 5, (0, 120, 0), -1, cv2.LINE_AA)
        c = self.camera.to_pixels(target).round().astype(int)
        r = int(round(self.scene.TARGET_RADIUS_M * self.camera.px_per_m))
        cv2.circle(img, (int(c[0]), int(c[1])), r, (255, 0, 255), 2, cv2.LINE_AA)
        x0, y0, w, h = self.camera.roi
        cv2.rectangle(img, (x0, y0), (x0 + w - 1, y0 + h - 1), (90, 90, 90), 1)
        cv2.putText(img, self.source, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        out = fill_image(Image(), img, 'rgb8')
        out.header = src.header
        self.debug_pub.publish(out)


def main(args=None):
    return spin(Perception, args)


if __name__ == '__main__':
    raise SystemExit(main())
