"""webcam: a V4L2 camera through OpenCV -> ``image_raw`` + ``camera_info`` (sensor-data QoS).

Parameters follow usb_cam's names: ``video_device`` (/dev/video0; a number is an index; a video
file path also works, which the tests use), ``image_width``, ``image_height``, ``framerate``,
``pixel_format`` (mjpeg or yuyv: the FOURCC asked of the driver), ``frame_id``, ``camera_name``,
``camera_info_url``. Frames are published as ``output_encoding`` (bgr8, as OpenCV delivers them,
or rgb8), stamped when grabbed. Frames of another size than asked are resized (logged once),
since the perception node's crop is calibrated to that size.

Orientation (:mod:`reach_core.frame_orientation`): ``rotate`` (0, 90, 180, 270 degrees
clockwise; 90 and 270 swap the published width and height), then ``flip`` (none, horizontal,
vertical, both), then ``roll_deg`` (a small counter-clockwise correction), applied to every frame
before it is published. The published frames are what the perception sees and what a calibration
describes: set the orientation first, then calibrate.

Calibration (:mod:`reach_core.camera_info`): ``camera_info_url`` is ``file:///...``,
``package://PKG/...`` or empty for ``~/.ros/camera_info/<camera_name>.yaml`` (``$ROS_HOME``);
the camera_calibration_parsers YAML found there is published as ``camera_info`` beside every
image (an uncalibrated one, K = 0, when there is none). A calibration for another resolution than
the published frames is refused with an error naming both sizes (uncalibrated camera_info
instead). The ``set_camera_info`` service (sensor_msgs/srv/SetCameraInfo, in the node's
namespace: /camera/set_camera_info in real.launch.py), which the ROS camera calibrator calls on
COMMIT, checks the size, saves the calibration to that file and publishes it from then on.

The camera is read in its own thread. An unplugged or missing camera is logged and retried every
``reconnect_period_s``; the node keeps running.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.srv import SetCameraInfo

from reach_core.camera_info import (CalibrationError, CameraCalibration, read_calibration,
                                    resolve_url, write_calibration)
from reach_core.frame_orientation import FLIPS, ROTATIONS, orient_frame, oriented_size

from .common import (report, SENSOR_QOS, Param, declare_params, fill_image, finite, one_of,
                     positive, spin)

PARAMS = [
    Param('video_device', '/dev/video0', 'V4L2 device (/dev/videoN), camera index, or video file',
          read_only=True),
    Param('image_width', 640, 'frame width asked of the camera (px)', positive, read_only=True),
    Param('image_height', 480, 'frame height asked of the camera (px)', positive, read_only=True),
    Param('framerate', 30.0, 'frame rate asked of the camera (Hz)', positive, read_only=True),
    Param('pixel_format', 'mjpeg', 'pixel format asked of the driver: mjpeg or yuyv',
          one_of('mjpeg', 'yuyv'), read_only=True),
    Param('output_encoding', 'bgr8', 'encoding of the published images: bgr8 or rgb8',
          one_of('bgr8', 'rgb8')),
    Param('frame_id', 'camera', 'frame_id of the images and camera info'),
    Param('camera_name', 'webcam', 'camera name (camera_info)'),
    Param('camera_info_url', '', 'camera calibration YAML: file:///..., package://PKG/... or '
          'a path; empty: ~/.ros/camera_info/<camera_name>.yaml', read_only=True),
    Param('flip', 'none', 'mirror the frames: none, horizontal, vertical or both (after rotate)',
          one_of(*FLIPS), read_only=True),
    Param('rotate', 0, 'rotate the frames clockwise by 0, 90, 180 or 270 degrees (90, 270 swap '
          'width and height)', one_of(*ROTATIONS), read_only=True),
    Param('roll_deg', 0.0, 'then roll them by this many degrees counter-clockwise (a small '
          'correction of a tilted camera)', finite, read_only=True),
    Param('reconnect_period_s', 2.0, 'wait between attempts to (re)open the camera (s)', positive),
]

TOPICS = {
    'image_raw': ('pub', 'sensor_msgs/msg/Image'),
    'camera_info': ('pub', 'sensor_msgs/msg/CameraInfo'),
}


def package_share(package: str) -> str:
    from ament_index_python.packages import get_package_share_directory
    return get_package_share_directory(package)


def to_msg(cal: CameraCalibration, frame_id: str) -> CameraInfo:
    """A CameraCalibration as sensor_msgs/CameraInfo."""
    info = CameraInfo()
    info.header.frame_id = frame_id
    info.width, info.height = int(cal.width), int(cal.height)
    info.distortion_model = cal.distortion_model
    info.k, info.d, info.r, info.p = list(cal.k), list(cal.d), list(cal.r), list(cal.p)
    return info


def from_msg(info: CameraInfo, name: str) -> CameraCalibration:
    """sensor_msgs/CameraInfo as a CameraCalibration."""
    return CameraCalibration(int(info.width), int(info.height), name, list(info.k),
                             info.distortion_model or 'plumb_bob', list(info.d), list(info.r),
                             list(info.p))


def load_camera_info(url: str, width: int, height: int, name: str) -> tuple[CameraCalibration,
                                                                              str, bool]:
    """(calibration, its file, found) for ``url``; the file's calibration must be for width x
    height. An absent default file gives an uncalibrated camera (found False); an absent named
    file, a bad file or URL raise CalibrationError."""
    path = resolve_url(url, name, package_share)
    if not url and not os.path.exists(path):
        return CameraCalibration(width, height, name), path, False
    cal = read_calibration(path)
    cal.check_size(width, height, f'camera_info_url {url or path!r}')
    return cal, path, True


class Webcam(Node):
    def __init__(self):
        super().__init__('webcam')
        self.p = declare_params(self, PARAMS)
        import cv2
        self.cv2 = cv2
        self.out_w, self.out_h = oriented_size(int(self.p['image_width']),
                                               int(self.p['image_height']), self.p['rotate'])
        self.info_path = self._load_info()
        self.img_pub = self.create_publisher(Image, 'image_raw', SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, 'camera_info', SENSOR_QOS)
        self.create_service(SetCameraInfo, 'set_camera_info', self.on_set_camera_info)
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='webcam-capture', daemon=True)
        self._thread.start()

    def _load_info(self) -> str | None:
        """Set self.info from camera_info_url; return the file set_camera_info writes (None when
        the URL is unusable)."""
        url, name = self.p['camera_info_url'], self.p['camera_name']
        w, h = self.out_w, self.out_h
        self.info = to_msg(CameraCalibration(w, h, name), self.p['frame_id'])
        try:
            cal, path, found = load_camera_info(url, w, h, name)
        except CalibrationError as err:
            report(self, 'webcam1', f'{err}; publishing an uncalibrated camera_info')
            try:
                return resolve_url(url, name, package_share)
            except CalibrationError:
                return None
        if found:
            self.info = to_msg(cal, self.p['frame_id'])
            self.get_logger().info(f'camera calibration {path} ({w}x{h})')
        else:
            self.get_logger().info(f'no camera calibration at {path}: publishing an uncalibrated '
                                   f'camera_info (the camera calibrator saves one there through '
                                   f'set_camera_info)')
        return path

    def on_set_camera_info(self, request, response):
        """Save the calibration sent by the camera calibrator and publish it from now on."""
        info = request.camera_info
        name = self.p['camera_name']
        try:
            if self.info_path is None:
                raise CalibrationError(f"camera_info_url {self.p['camera_info_url']!r} names no "
                                       f'file to save to')
            cal = from_msg(info, name)
            cal.check_size(self.out_w, self.out_h, 'set_camera_info')
            if len(cal.k) != 9 or len(cal.p) != 12 or not all(
                    np.isfinite(v) for v in [*cal.k, *cal.d, *cal.r, *cal.p]):
                raise CalibrationError('set_camera_info: K, D, R, P must be finite (9, n, 9, 12 '
                                       'values)')
            write_calibration(self.info_path, cal)
        except (CalibrationError, OSError) as err:
            response.success, response.status_message = False, str(err)
            report(self, 'webcam4', f'set_camera_info refused: {err}')
            return response
        self.info = to_msg(cal, self.p['frame_id'])
        self.get_logger().info(f'camera calibration saved to {self.info_path}')
        response.success, response.status_message = True, f'saved to {self.info_path}'
        return response

    def _open(self):
        cv2, dev = self.cv2, self.p['video_device']
        source = int(dev) if str(dev).isdigit() else dev
        is_device = isinstance(source, int) or str(source).startswith('/dev/')
        if is_device:
            cap = cv2.VideoCapture(source, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            cap.release()
            return None
        if is_device:
            fourcc = 'MJPG' if self.p['pixel_format'] == 'mjpeg' else 'YUYV'
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(self.p['image_width']))
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(self.p['image_height']))
            cap.set(cv2.CAP_PROP_FPS, float(self.p['framerate']))
        return cap, is_device

    def _run(self):
        log = self.get_logger()
        period = 1.0 / float(self.p['framerate'])
        warned_size = False
        while not self._stop.is_set():
            opened = self._open()
            if opened is None:
                report(self, 'webcam0', f"cannot open camera {self.p['video_device']!r}; retrying in "
                          f"{self.p['reconnect_period_s']:g} s", 'error', 30.0)
                self._stop.wait(self.p['reconnect_period_s'])
                continue
            cap, is_device = opened
            log.info(f"camera {self.p['video_device']!r} open")
            next_t = time.monotonic()
            while not self._stop.is_set():
                ok, frame = cap.read()
                stamp = self.get_clock().now().to_msg()
                if not ok or frame is None:
                    report(self, 'webcam2', f"camera {self.p['video_device']!r} stopped delivering "
                                 f'frames (unplugged?); reopening', 'error', 0.0)
                    break
                want = (int(self.p['image_height']), int(self.p['image_width']))
                if frame.ndim != 3 or frame.shape[2] != 3:
                    report(self, 'webcam3', f'camera frame of shape {frame.shape} is not 3-channel colour: '
                              f'dropped', 'error', 5.0)
                    continue
                if frame.shape[:2] != want:
                    if not warned_size:
                        log.warn(f'camera delivers {frame.shape[1]}x{frame.shape[0]}, not the '
                                 f'{want[1]}x{want[0]} asked: resizing')
                        warned_size = True
                    frame = self.cv2.resize(frame, (want[1], want[0]),
                                            interpolation=self.cv2.INTER_AREA)
                frame = orient_frame(frame, self.p['flip'], self.p['rotate'], self.p['roll_deg'])
                enc = self.p['output_encoding']
                if enc == 'rgb8':
                    frame = frame[..., ::-1]
                msg = fill_image(Image(), np.ascontiguousarray(frame), enc)
                msg.header.stamp = stamp
                msg.header.frame_id = self.p['frame_id']
                info = self.info          # set_camera_info may swap it meanwhile
                info.header.stamp = stamp
                self.img_pub.publish(msg)
                self.info_pub.publish(info)
                self.frames += 1
                if not is_device:  # a video file: play it at the frame rate
                    next_t += period
                    self._stop.wait(max(0.0, next_t - time.monotonic()))
            cap.release()
            self._stop.wait(self.p['reconnect_period_s'])

    def destroy_node(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        return super().destroy_node()


def main(args=None):
    return spin(Webcam, args)


if __name__ == '__main__':
    raise SystemExit(main())
