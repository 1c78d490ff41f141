"""webcam: a V4L2 camera through OpenCV -> ``image_raw`` + ``camera_info`` (sensor-data QoS).

Parameters follow usb_cam's names: ``video_device`` (/dev/video0; a number is an index; a video
file path also works, which the tests use), ``image_width``, ``image_height``, ``framerate``,
``pixel_format`` (mjpeg or yuyv: the FOURCC asked of the driver), ``frame_id``, ``camera_name``,
``camera_info_url`` (a camera_calibration YAML file, ``file://`` or a plain path; empty: an
uncalibrated camera_info with the image size). Frames are published as ``output_encoding``
(bgr8, as OpenCV delivers them, or rgb8), stamped when grabbed. Frames of another size than asked
are resized (logged once), since the perception node's crop is calibrated to that size.

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

from .common import (report, SENSOR_QOS, Param, declare_params, fill_image, one_of, positive, spin)

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
    Param('camera_info_url', '', 'camera calibration YAML (file:// or a path); empty: '
          'uncalibrated', read_only=True),
    Param('reconnect_period_s', 2.0, 'wait between attempts to (re)open the camera (s)', positive),
]

TOPICS = {
    'image_raw': ('pub', 'sensor_msgs/msg/Image'),
    'camera_info': ('pub', 'sensor_msgs/msg/CameraInfo'),
}


def load_camera_info(url: str, width: int, height: int, name: str) -> CameraInfo:
    """camera_info from a camera_calibration YAML file, or an uncalibrated one when url is empty."""
    info = CameraInfo()
    info.width, info.height = width, height
    info.distortion_model = 'plumb_bob'
    if not url:
        return info
    import yaml
    path = url[len('file://'):] if url.startswith('file://') else url
    path = os.path.expanduser(path.replace('${NAME}', name))
    with open(path, encoding='utf-8') as f:
        data = yaml.safe_load(f)
    info.width = int(data.get('image_width', width))
    info.height = int(data.get('image_height', height))
    info.distortion_model = data.get('distortion_model', 'plumb_bob')
    info.k = [float(x) for x in data['camera_matrix']['data']]
    info.d = [float(x) for x in data['distortion_coefficients']['data']]
    info.r = [float(x) for x in data.get('rectification_matrix', {}).get(
        'data', [1, 0, 0, 0, 1, 0, 0, 0, 1])]
    info.p = [float(x) for x in data['projection_matrix']['data']]
    return info


class Webcam(Node):
    def __init__(self):
        super().__init__('webcam')
        self.p = declare_params(self, PARAMS)
        import cv2
        self.cv2 = cv2
        w, h = int(self.p['image_width']), int(self.p['image_height'])
        try:
            self.info = load_camera_info(self.p['camera_info_url'], w, h, self.p['camera_name'])
        except (OSError, KeyError, TypeError, ValueError) as err:
            report(self, 'webcam1', f"camera_info_url {self.p['camera_info_url']!r} unusable "
                                    f'({type(err).__name__}: {err}); publishing an uncalibrated '
                                    f'camera_info')
            self.info = load_camera_info('', w, h, self.p['camera_name'])
        self.info.header.frame_id = self.p['frame_id']
        self.img_pub = self.create_publisher(Image, 'image_raw', SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, 'camera_info', SENSOR_QOS)
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='webcam-capture', daemon=True)
        self._thread.start()

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
                enc = self.p['output_encoding']
                if enc == 'rgb8':
                    frame = frame[..., ::-1]
                msg = fill_image(Image(), np.ascontiguousarray(frame), enc)
                msg.header.stamp = stamp
                msg.header.frame_id = self.p['frame_id']
                self.info.header.stamp = stamp
                self.img_pub.publish(msg)
                self.info_pub.publish(self.info)
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
