"""The calibrated camera (reach_core.camera_model): projection, the virtual view, the camera file."""
import math

import numpy as np
import pytest

from reach_core.camera_model import CameraFileError, CameraModel, load_camera, to_virtual
from reach_core.renderer import render
from reach_core.scene import DEFAULT_CAMERA


def _moved_camera() -> CameraModel:
    nominal = CameraModel.nominal()
    k = np.array(nominal.K, float)
    k[0] *= 1.1
    k[4] *= 1.1
    k[2] += 12
    k[5] -= 7
    return CameraModel(640, 480, tuple(k), dist=(-0.12, 0.03, 0.0, 0.0, 0.0),
                       rvec=(math.pi - 0.05, 0.08, 0.04), tvec=(0.06, -0.03, 2.7))


def test_the_nominal_camera_projects_the_plane_as_the_virtual_camera_does():
    xy = np.array([[0.0, 0.0], [0.7, -0.2], [-0.5, 0.9]])
    np.testing.assert_allclose(CameraModel.nominal().project(xy), DEFAULT_CAMERA.to_pixels(xy),
                               atol=1e-6)


def test_the_nominal_camera_leaves_frames_unchanged():
    frame = render(np.array([0.5, 0.3]), np.array([0.1, 0.2, 0.3]))
    assert np.array_equal(CameraModel.nominal().to_virtual(frame), frame)
    assert to_virtual(frame, None) is frame


def test_a_moved_camera_sees_a_plane_point_where_the_virtual_view_puts_it_back():
    cam = _moved_camera()
    point = np.array([0.4, 0.25])
    u, v = cam.project(point)
    frame = np.full((480, 640, 3), 200, np.uint8)
    frame[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = 0       # a dark dot at the point
    virtual = cam.to_virtual(frame)
    dark = np.argwhere(virtual[..., 0] < 100)
    centre = dark.mean(axis=0)[::-1] + 0.5
    np.testing.assert_allclose(centre, DEFAULT_CAMERA.to_pixels(point), atol=1.0)


def test_frames_of_another_size_are_refused_with_the_sizes_named():
    with pytest.raises(CameraFileError, match="320x240.*640x480"):
        _moved_camera().to_virtual(np.zeros((240, 320, 3), np.uint8))


def test_the_camera_file_round_trips_and_reads_as_ros_camera_info(tmp_path):
    import yaml
    cam = _moved_camera().with_fit(rms_px=0.4)
    path = cam.save(tmp_path / "cam.yaml")
    back = CameraModel.load(path)
    assert back == cam and back.fit["rms_px"] == 0.4
    raw = yaml.safe_load(path.read_text())
    assert raw["distortion_model"] == "plumb_bob" and len(raw["camera_matrix"]["data"]) == 9
    assert load_camera("") is None


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("plane_pose"), "no plane_pose"),
    (lambda d: d["camera_matrix"].update(data=[1, 2]), "9 values"),
    (lambda d: d["plane_pose"].update(tvec=[0, 0, float("nan")]), "NaN"),
    (lambda d: d.pop("image_width"), "image_width"),
])
def test_a_broken_camera_file_is_refused_with_the_problem_named(tmp_path, edit, message):
    import yaml
    d = _moved_camera().as_dict()
    edit(d)
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(CameraFileError, match=message):
        CameraModel.load(path)
    with pytest.raises(CameraFileError, match="not found"):
        CameraModel.load(tmp_path / "none.yaml")


def test_reach_data_rectify_writes_the_crop_the_networks_see(tmp_path):
    from reach_core.cli import main
    from reach_core.datasets import load_dataset, render_sim_dataset
    src = render_sim_dataset(tmp_path / "s", 4, 0, progress=False)
    CameraModel.nominal().save(tmp_path / "cam.yaml")
    assert main(["data", "rectify", str(src), "--camera", str(tmp_path / "cam.yaml"),
                 "--out", str(tmp_path / "r")]) == 0
    a, b = load_dataset(src, verbose=False), load_dataset(tmp_path / "r", verbose=False)
    assert b.camera.width == DEFAULT_CAMERA.roi[2]          # the crop only
    np.testing.assert_allclose(a.images, b.images, atol=0.02)   # JPEG's rounding
    np.testing.assert_array_equal(a.omega, b.omega)
    assert main(["data", "rectify", str(src), "--camera", str(tmp_path / "none.yaml"),
                 "--out", str(tmp_path / "x")]) == 2
