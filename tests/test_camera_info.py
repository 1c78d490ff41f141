"""The camera's orientation and calibration: reach_core.frame_orientation, reach_core.camera_info,
and the webcam node (flip/rotate/roll, camera_info_url forms, the set_camera_info service) over
real rclpy and DDS, started as real.launch.py starts it, on a video file.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import yaml

from reach_core.camera_info import (CalibrationError, CameraCalibration, read_calibration,
                                    resolve_url, write_calibration)
from reach_core.frame_orientation import orient_frame, oriented_size

# what the ROS camera calibrator (camera_calibration_parsers) writes for a 640 x 480 webcam
CALIBRATOR_YAML = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [628.4, 0, 319.5, 0, 627.9, 241.2, 0, 0, 1]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.101, -0.252, 0.001, -0.002, 0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [640.1, 0, 318.2, 0, 0, 641.3, 240.9, 0, 0, 0, 1, 0]
"""


def calibration(width=640, height=480, f=500.0) -> CameraCalibration:
    return CameraCalibration(width, height, 'webcam', [f, 0, width / 2, 0, f, height / 2, 0, 0, 1],
                             'plumb_bob', [0.1, -0.2, 0.0, 0.0, 0.05],
                             [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                             [f, 0, width / 2, 0, 0, f, height / 2, 0, 0, 0, 1, 0])


# ------------------------------------------------------------------------------ core
def test_a_calibrator_file_is_read_and_written_back_in_the_same_format(tmp_path):
    (tmp_path / 'in.yaml').write_text(CALIBRATOR_YAML)
    cal = read_calibration(str(tmp_path / 'in.yaml'))
    assert (cal.width, cal.height, cal.camera_name) == (640, 480, 'narrow_stereo')
    assert cal.k[0] == 628.4 and cal.k[5] == 241.2 and cal.d == [0.101, -0.252, 0.001, -0.002, 0]
    assert cal.p[1:3] == [0, 318.2] and cal.calibrated
    write_calibration(str(tmp_path / 'sub' / 'out.yaml'), cal)
    assert yaml.safe_load((tmp_path / 'sub' / 'out.yaml').read_text()) == \
        yaml.safe_load(CALIBRATOR_YAML)
    assert read_calibration(str(tmp_path / 'sub' / 'out.yaml')) == cal


def test_camera_info_urls_resolve_as_camera_info_manager_does(tmp_path, monkeypatch):
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'roshome'))
    assert resolve_url('', 'webcam') == str(tmp_path / 'roshome' / 'camera_info' / 'webcam.yaml')
    assert resolve_url('file:///etc/cams/${NAME}.yaml', 'left') == '/etc/cams/left.yaml'
    assert resolve_url('file://${ROS_HOME}/c.yaml', 'x') == str(tmp_path / 'roshome' / 'c.yaml')
    monkeypatch.delenv('ROS_HOME')
    assert resolve_url('', 'cam') == os.path.expanduser('~/.ros/camera_info/cam.yaml')
    assert resolve_url('package://pkg/calib/cam.yaml', 'cam', lambda p: f'/share/{p}') == \
        '/share/pkg/calib/cam.yaml'
    with pytest.raises(CalibrationError, match="unsupported scheme"):
        resolve_url('http://example.org/cam.yaml', 'cam')
    with pytest.raises(CalibrationError, match='file:// needs an absolute path'):
        resolve_url('file://cams/cam.yaml', 'cam')
    with pytest.raises(CalibrationError, match="package 'nope' not found"):
        resolve_url('package://nope/cam.yaml', 'cam', lambda p: (_ for _ in ()).throw(
            LookupError(p)))


def test_a_package_url_is_found_in_the_installed_share_directory():
    pytest.importorskip('rclpy')
    from reach_ros.webcam import package_share
    path = resolve_url('package://reach_bringup/config/webcam.yaml', 'webcam', package_share)
    assert path.endswith(os.path.join('reach_bringup', 'config', 'webcam.yaml'))
    assert os.path.isfile(path)


def test_bad_calibration_files_are_refused_naming_the_field(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text(CALIBRATOR_YAML.replace('data: [628.4, 0, 319.5, 0, 627.9, 241.2, 0, 0, 1]',
                                            'data: [628.4, 0, 319.5, 0, 627.9, 241.2, 0, 0]'))
    with pytest.raises(CalibrationError, match=r'c.yaml: camera_matrix.data must hold 9 numbers'):
        read_calibration(str(path))
    path.write_text(CALIBRATOR_YAML.replace('image_width: 640\n', ''))
    with pytest.raises(CalibrationError, match='c.yaml: no image_width'):
        read_calibration(str(path))
    with pytest.raises(CalibrationError, match='no such calibration file'):
        read_calibration(str(tmp_path / 'none.yaml'))
    with pytest.raises(CalibrationError, match='the calibration is for 1280x720 images, the '
                                               'camera publishes 640x480'):
        calibration(1280, 720).check_size(640, 480, 'camera_info_url x')


def test_frames_are_rotated_then_flipped_then_rolled():
    frame = np.arange(2 * 3 * 1, dtype=np.uint8).reshape(2, 3, 1)    # [[0 1 2] [3 4 5]]
    assert orient_frame(frame)[..., 0].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert orient_frame(frame, 'horizontal')[..., 0].tolist() == [[2, 1, 0], [5, 4, 3]]
    assert orient_frame(frame, 'vertical')[..., 0].tolist() == [[3, 4, 5], [0, 1, 2]]
    assert orient_frame(frame, 'both')[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert orient_frame(frame, rotate=90)[..., 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert orient_frame(frame, rotate=270)[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert orient_frame(frame, 'horizontal', 90)[..., 0].tolist() == [[0, 3], [1, 4], [2, 5]]
    assert oriented_size(640, 480, 90) == (480, 640) and oriented_size(640, 480, 180) == (640, 480)
    big = np.random.default_rng(0).integers(0, 255, (41, 61, 3), dtype=np.uint8)
    assert np.array_equal(orient_frame(big, rotate=180), orient_frame(big, 'both'))
    rolled = orient_frame(big, roll_deg=180.0)                # a half turn about the centre
    assert rolled.shape == big.shape
    assert np.abs(rolled[1:-1, 1:-1].astype(int) - big[::-1, ::-1][1:-1, 1:-1]).max() <= 1
    with pytest.raises(ValueError, match='flip must be one of none, horizontal'):
        orient_frame(frame, 'mirror')
    with pytest.raises(ValueError, match='rotate must be one of 0, 90, 180, 270'):
        orient_frame(frame, rotate=45)


# ------------------------------------------------------------------------------ the node
rclpy = pytest.importorskip('rclpy')


@pytest.fixture(scope='module')
def probe():
    from reach_bringup.probe import Probe, pick_domain_id
    p = Probe(pick_domain_id(31), 'test_camera_info')
    yield p
    p.close()


def quadrants(h=480, w=640) -> np.ndarray:
    """A BGR frame of four flat colours (so that MJPEG keeps them)."""
    f = np.zeros((h, w, 3), np.uint8)
    f[:h // 2, :w // 2] = (200, 30, 30)
    f[:h // 2, w // 2:] = (30, 200, 30)
    f[h // 2:, :w // 2] = (30, 30, 200)
    f[h // 2:, w // 2:] = (200, 200, 30)
    return f


def video(tmp_path, frame, n=60) -> str:
    import cv2
    path = str(tmp_path / 'clip.avi')
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 30.0, (640, 480))
    for _ in range(n):
        w.write(frame)
    w.release()
    return path


def start_webcam(probe, tmp_path, *params, fid=''):
    """The webcam of real.launch.py on a video, its frames and camera_info stamped with the
    frame_id of this test (messages of a node of an earlier test may still be in flight)."""
    from reach_bringup.graph import Graph
    fid = fid or tmp_path.name[:40]
    extra = [a for p in params + (f'frame_id:={fid}',) for a in ('-p', p)]
    return Graph('real.launch.py', {'video_device': video(tmp_path, quadrants())},
                 domain_id=int(probe.context.get_domain_id()), only=['webcam'],
                 extra_args={'webcam': extra}).start()


def listen(probe, tmp_path, fid=''):
    """Lists of the images and camera_infos of this test's webcam (see start_webcam)."""
    from reach_ros.common import SENSOR_QOS
    from sensor_msgs.msg import CameraInfo, Image
    fid = fid or tmp_path.name[:40]
    images, infos = [], []
    probe.record(Image, '/camera/image_raw', SENSOR_QOS,
                 lambda m: m.header.frame_id == fid and images.append((0, m)))
    probe.record(CameraInfo, '/camera/camera_info', SENSOR_QOS,
                 lambda m: m.header.frame_id == fid and infos.append((0, m)))
    return images, infos


def test_the_webcam_publishes_turned_frames_with_their_calibration(probe, tmp_path):
    from reach_ros.common import image_to_rgb
    write_calibration(str(tmp_path / 'cal.yaml'), calibration(480, 640, f=321.0))
    images, infos = listen(probe, tmp_path)
    g = start_webcam(probe, tmp_path, 'rotate:=90', 'flip:=horizontal',
                     f"camera_info_url:=file://{tmp_path / 'cal.yaml'}")
    try:
        assert probe.spin_until(lambda: len(images) >= 3 and len(infos) >= 3, 20.0), g.log('webcam')
        m = images[-1][1]
        assert (m.width, m.height) == (480, 640)
        got = image_to_rgb(m).astype(int)
        want = orient_frame(quadrants()[..., ::-1], 'horizontal', 90).astype(int)
        assert np.abs(got - want).mean() < 4.0
        assert np.abs(got - orient_frame(quadrants()[..., ::-1], rotate=90)).mean() > 40.0
        info = infos[-1][1]
        assert (info.width, info.height) == (480, 640) and info.k[0] == 321.0
        assert list(info.d) == [0.1, -0.2, 0.0, 0.0, 0.05]
        assert info.header.frame_id == m.header.frame_id == tmp_path.name[:40]
        assert f"camera calibration {tmp_path / 'cal.yaml'} (480x640)" in g.log('webcam')
    finally:
        g.stop()


def test_set_camera_info_saves_to_the_default_file_and_publishes_it(probe, tmp_path,
                                                                     monkeypatch):
    from sensor_msgs.srv import SetCameraInfo
    from reach_ros.webcam import to_msg
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'roshome'))
    saved = tmp_path / 'roshome' / 'camera_info' / 'webcam.yaml'
    images, infos = listen(probe, tmp_path)
    g = start_webcam(probe, tmp_path)
    try:
        assert probe.spin_until(lambda: len(infos) >= 2, 20.0), g.log('webcam')
        assert infos[-1][1].k[0] == 0.0 and (infos[-1][1].width, infos[-1][1].height) == (640, 480)
        assert f'no camera calibration at {saved}' in g.log('webcam')
        # the calibrator's COMMIT at another resolution: refused, nothing written
        bad = probe.call(SetCameraInfo, '/camera/set_camera_info',
                         SetCameraInfo.Request(camera_info=to_msg(calibration(1280, 720), 'x')))
        assert not bad.success
        assert 'the calibration is for 1280x720 images, the camera publishes 640x480' in \
            bad.status_message
        assert not saved.exists()
        ok = probe.call(SetCameraInfo, '/camera/set_camera_info',
                        SetCameraInfo.Request(camera_info=to_msg(calibration(f=555.0), 'x')))
        assert ok.success, ok.status_message
        assert read_calibration(str(saved)) == calibration(f=555.0)
        n = len(infos)
        assert probe.spin_until(lambda: len(infos) > n + 2 and infos[-1][1].k[0] == 555.0, 10.0)
        assert g.alive()['webcam']
    finally:
        g.stop()
    # the next start reads the saved calibration from the default place
    images, infos = listen(probe, tmp_path, 'second_start')
    g = start_webcam(probe, tmp_path, fid='second_start')
    try:
        assert probe.spin_until(lambda: len(infos) >= 2, 20.0), g.log('webcam')
        assert infos[-1][1].k[0] == 555.0
    finally:
        g.stop()


def test_a_calibration_for_another_resolution_is_an_error_not_a_crash(probe, tmp_path):
    write_calibration(str(tmp_path / 'hd.yaml'), calibration(1280, 720))
    images, infos = listen(probe, tmp_path)
    g = start_webcam(probe, tmp_path, f"camera_info_url:=file://{tmp_path / 'hd.yaml'}")
    try:
        assert probe.spin_until(lambda: len(images) >= 3 and len(infos) >= 3, 20.0), \
            g.log('webcam')
        info = infos[-1][1]
        assert (info.width, info.height, info.k[0]) == (640, 480, 0.0)     # uncalibrated
        log = g.log('webcam')
        assert f"camera_info_url 'file://{tmp_path / 'hd.yaml'}': the calibration is for " \
               f"1280x720 images, the camera publishes 640x480" in log, log
        time.sleep(0.5)
        assert g.alive()['webcam']
    finally:
        g.stop()
    assert 'Traceback' not in g.log('webcam')
