"""reach calibrate (reach_core.calibration): the camera recovered from marker frames, and its checks."""
import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from reach_core.calibration import (CalibrationError, correspondences, fit_camera, fit_problems)
from reach_core.calibration_marker import DEFAULT_MARKER, marker_corners, marker_image
from reach_core.camera_model import CameraModel
from reach_core.kinematics import BAXTER_LEFT


def _camera() -> CameraModel:
    """A webcam placed by hand: focal length 8 % off, principal point and plane shifted, rolled,
    yawed and pitched, with barrel distortion."""
    k = np.array(CameraModel.nominal().K, float)
    k[[0, 4]] *= 0.92
    k[2] += 14
    k[5] -= 11
    return CameraModel(640, 480, tuple(k), dist=(-0.15, 0.05, 0.0, 0.0, 0.0),
                       rvec=(math.pi - 0.07, 0.10, 0.05), tvec=(0.08, -0.05, 2.8))


def _marker_frames(camera: CameraModel, n: int, seed: int = 0):
    """Grey-background frames with the marker warped onto its projected corners."""
    rng = np.random.default_rng(seed)
    q = BAXTER_LEFT.sample_joints(rng, n)
    tag = np.pad(marker_image(DEFAULT_MARKER, 120), 20, constant_values=255)
    src = np.array([[20, 20], [140, 20], [140, 140], [20, 140]], np.float32)
    frames = []
    for qi in q:
        corners = camera.project(marker_corners(qi)) - 0.5
        h = cv2.getPerspectiveTransform(src, corners.astype(np.float32))
        frame = np.full((480, 640, 3), 120, np.uint8)
        warped = cv2.warpPerspective(np.repeat(tag[..., None], 3, -1), h, (640, 480),
                                     borderValue=(0, 0, 0), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.ones(tag.shape, np.uint8), h, (640, 480))
        frame[mask > 0] = warped[mask > 0]
        frames.append(frame)
    return np.stack(frames), q


def test_marker_frames_alone_recover_a_hand_placed_camera_within_two_pixels_over_the_reach():
    true = _camera()
    frames, q = _marker_frames(true, 150)
    fitted = fit_camera(correspondences(frames, q))
    err = fitted.frame_error_px(true, region="reach")
    assert err["max_px"] < 2.0, err
    assert fitted.fit["heldout_rms_px"] < 1.0 and not fit_problems(fitted)


def test_a_wrong_marker_spec_gives_a_poor_fit_that_says_so():
    true = _camera()
    frames, q = _marker_frames(true, 30, seed=1)
    wrong = type(DEFAULT_MARKER)(along_m=DEFAULT_MARKER.along_m + 0.15)
    try:
        fitted = fit_camera(correspondences(frames, q + np.array([0.0, 0.0, 0.3]), wrong))
    except CalibrationError as err:     # not converging is an acceptable, clear answer too
        assert "converge" in str(err) or "implausible" in str(err)
        return
    assert any("reprojection error" in p for p in fit_problems(fitted))


def test_too_few_marker_frames_are_refused():
    frames, q = _marker_frames(_camera(), 5)
    with pytest.raises(CalibrationError, match="at least"):
        fit_camera(correspondences(frames, q))


def test_frames_without_the_marker_are_refused_with_the_marker_named():
    frames = np.full((3, 480, 640, 3), 90, np.uint8)
    with pytest.raises(CalibrationError, match="DICT_4X4_50 id 7"):
        correspondences(frames, np.zeros((3, 3)))


def test_reach_calibrate_writes_a_camera_file_and_check_finds_a_moved_camera(tmp_path, capsys):
    from reach_core.cli import main
    from reach_core.datasets import write_dataset
    true = _camera()
    frames, q = _marker_frames(true, 30, seed=2)
    target = BAXTER_LEFT.forward(q)
    write_dataset(tmp_path / "cal", lambda t, qc, start: frames[start:start + len(qc)], target, q,
                  progress=False)
    from PIL import Image
    (tmp_path / "board").mkdir()
    for i, frame in enumerate(_board_frames(true, 10, seed=4)):
        Image.fromarray(frame).save(tmp_path / "board" / f"{i:02d}.png")
    assert main(["calibrate", str(tmp_path / "cal"), "--out", str(tmp_path / "cam.yaml"),
                 "--checkerboard", str(tmp_path / "board"), "--board", "9x6",
                 "--square", "0.06"]) == 0
    fitted = CameraModel.load(tmp_path / "cam.yaml")
    assert fitted.frame_error_px(true)["max_px"] < 2.0
    assert main(["calibrate", str(tmp_path / "cal"), "--check", str(tmp_path / "cam.yaml")]) == 0
    moved = replace(fitted, tvec=(fitted.tvec[0] + 0.05, *fitted.tvec[1:]))
    moved.save(tmp_path / "moved.yaml")
    assert main(["calibrate", str(tmp_path / "cal"), "--check", str(tmp_path / "moved.yaml")]) == 1
    assert "moved" in capsys.readouterr().out


def _board_frames(camera: CameraModel, n: int, seed: int = 0):
    from reach_core.calibration import render_board_views
    return render_board_views(camera, n, seed, 9, 6, 0.06)


def test_with_checkerboard_intrinsics_few_marker_frames_recover_the_camera_over_the_whole_frame():
    from reach_core.calibration import intrinsics_from_checkerboard
    true = _camera()
    intrinsics = intrinsics_from_checkerboard(_board_frames(true, 12), 9, 6, 0.06)
    frames, q = _marker_frames(true, 20, seed=3)
    fitted = fit_camera(correspondences(frames, q), intrinsics=intrinsics)
    assert fitted.fit["fitted"] == "pose"
    assert fitted.frame_error_px(true)["max_px"] < 2.0, fitted.frame_error_px(true)
