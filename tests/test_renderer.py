"""Tests of the simple simulator's images and the crop -> grey -> 84x84 pipeline (renderer.py).

Pixel convention (see renderer.py): pixel (i, j) covers [j, j + 1) x [i, i + 1) in the
coordinates of CameraConfig.to_pixels / to_net_pixels, so its centre is (j + 0.5, i + 0.5).
"""
from __future__ import annotations

import numpy as np
import pytest

from reach_core.cli import main
from reach_core.kinematics import BAXTER_LEFT
from reach_core.renderer import (BACKGROUND_RGB, GRIPPER_RGB, JOINT_RGB, TARGET_RGB, UPPER_ARM_RGB,
                                 add_target, preprocess, preprocess_frame, render, render_net_images,
                                 sample_scenes)
from reach_core.scene import DEFAULT_CAMERA, TARGET_RADIUS_M, CameraConfig

CAM = DEFAULT_CAMERA
BT601 = np.array([0.299, 0.587, 0.114])  # luma weights of R, G, B (ITU-R BT.601)
FAR = np.array([50.0, 50.0])       # a target position far outside the image
ARM_DOWN = np.array([1.0, 0.4, 0.3])  # the arm hangs forward and down, clear of the upper right
# Targets over plain background when the arm is ARM_DOWN (sub-pixel positions on purpose).
FREE_TARGETS = np.array([[0.613, 0.587], [0.418, 0.803], [0.867, 0.262], [0.701, 0.449]])


def _centroid(weight: np.ndarray) -> np.ndarray:
    """Weighted centroid (u, v) of an image with pixel centres at (j + 0.5, i + 0.5)."""
    i, j = np.indices(weight.shape)
    return np.array([np.sum(weight * (j + 0.5)), np.sum(weight * (i + 0.5))]) / np.sum(weight)


@pytest.fixture(scope="module")
def scenes():
    return sample_scenes(16, seed=3)


# --- render --------------------------------------------------------------------------------

def test_render_shape_and_dtype(scenes):
    target, q = scenes
    frames = render(target, q)
    assert frames.shape == (16, CAM.height, CAM.width, 3) and frames.dtype == np.uint8
    single = render(target[0], q[0])
    assert single.shape == (CAM.height, CAM.width, 3)
    # the corner is plain background
    assert tuple(frames[0, 0, 0]) == BACKGROUND_RGB


def test_render_is_deterministic(scenes):
    target, q = scenes
    assert np.array_equal(render(target, q), render(target, q))
    assert np.array_equal(render_net_images(target, q, supersample=2),
                          render_net_images(target, q, supersample=2))


def test_batched_equals_per_item(scenes):
    target, q = scenes
    # one target far outside the image: its window is clamped to the image, the others unchanged
    target = np.concatenate([target, FAR[None]])
    q = np.concatenate([q, q[:1]])
    frames = render(target, q)
    for k in range(len(q)):
        assert np.array_equal(frames[k], render(target[k], q[k])), k
    nets = render_net_images(target, q, supersample=3)
    for k in (0, 7, len(q) - 1):
        assert np.array_equal(nets[k], render_net_images(target[k], q[k], supersample=3))


def test_pose_changes_with_q():
    a = render(FAR, np.zeros(3)).astype(int)
    for q in ([0.3, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 1.0]):
        changed = np.any(render(FAR, np.array(q)).astype(int) != a, axis=-1)
        assert changed.sum() > 500, q


def test_render_rejects_bad_scenes():
    with pytest.raises(ValueError, match="shape"):
        render(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="same size"):
        render(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        render(np.array([np.nan, 0.0]), np.zeros(3))


def test_target_disc_centroid_and_area():
    frames = render(FREE_TARGETS, np.tile(ARM_DOWN, (len(FREE_TARGETS), 1)))
    bare = render(FAR, ARM_DOWN)
    radius_px = TARGET_RADIUS_M * CAM.px_per_m
    for frame, target in zip(frames, FREE_TARGETS):
        centre = CAM.to_pixels(target)
        u0, v0 = np.floor(centre - radius_px - 3).astype(int)
        size = int(2 * radius_px + 7)
        box = (slice(v0, v0 + size), slice(u0, u0 + size))
        assert np.all(bare[box] == BACKGROUND_RGB), "test target must lie over plain background"
        # coverage of the disc, from the red channel: background red -> 0 red of TARGET_RGB
        alpha = np.zeros(frame.shape[:2])
        alpha[box] = (BACKGROUND_RGB[0] - frame[box][..., 0].astype(float)) / \
                     (BACKGROUND_RGB[0] - TARGET_RGB[0])
        assert np.all(frame[box][alpha[box] > 0.999] == TARGET_RGB)
        assert np.abs(_centroid(alpha) - centre).max() < 0.1
        assert alpha.sum() == pytest.approx(np.pi * radius_px ** 2, rel=0.02)
        outside = np.ones(frame.shape[:2], bool)
        outside[box] = False
        assert np.array_equal(frame[outside], bare[outside])    # the disc lies inside the box


def test_other_camera_geometry():
    """Half resolution with a 210 px ROI: 2.5 camera pixels per network pixel (non-integer)."""
    camera = CameraConfig(width=320, height=240, px_per_m=105.0, origin_px=(160.0, 120.0),
                          roi=(55, 15, 210, 210))
    target = FREE_TARGETS[0]
    frame = render(target, ARM_DOWN, camera)
    assert frame.shape == (240, 320, 3)
    red = render(FAR, ARM_DOWN, camera)[..., 0].astype(float)
    alpha = (red - frame[..., 0]) / (red - TARGET_RGB[0])       # the disc's coverage
    assert np.abs(_centroid(alpha) - camera.to_pixels(target)).max() < 0.1
    for supersample in (None, 2):
        net = render_net_images(target, ARM_DOWN, camera, supersample=supersample)
        assert net.shape == (84, 84)
        weight = render_net_images(FAR, ARM_DOWN, camera, supersample=supersample) - net
        assert np.abs(_centroid(weight) - camera.to_net_pixels(target)).max() < 0.1


def test_target_drawn_on_top_of_arm():
    q = np.zeros(3)
    elbow = BAXTER_LEFT.link_points(q)[1]
    frame = render(elbow, q)
    u, v = np.floor(CAM.to_pixels(elbow)).astype(int)
    assert tuple(frame[v, u]) == TARGET_RGB


def test_end_effector_is_covered_by_the_gripper():
    q = BAXTER_LEFT.sample_joints(np.random.default_rng(7), 25)
    frames = render(np.tile(FAR, (len(q), 1)), q)
    ee = CAM.to_pixels(BAXTER_LEFT.forward(q))
    for frame, (u, v) in zip(frames, ee):
        pixel = frame[int(v), int(u)].astype(int)
        assert np.abs(pixel - GRIPPER_RGB).max() <= 25, (pixel, GRIPPER_RGB)


@pytest.mark.parametrize("q", [[0.0, 0.0, 0.0], [0.5, 1.2, -0.8], [-1.0, 0.9, 0.6]])
def test_links_and_joints_sit_on_the_kinematics(q):
    q = np.array(q)
    frame = render(FAR, q)
    pts = BAXTER_LEFT.link_points(q)
    for point in pts[1:3]:                      # elbow and wrist discs
        u, v = np.floor(CAM.to_pixels(point)).astype(int)
        assert tuple(frame[v, u]) == JOINT_RGB
    # the upper arm joins shoulder and elbow: its colour along the segment between the discs
    for t in (0.3, 0.5, 0.7):
        u, v = np.floor(CAM.to_pixels(pts[0] + t * (pts[1] - pts[0]))).astype(int)
        assert tuple(frame[v, u]) == UPPER_ARM_RGB, t


def test_add_target_matches_render(scenes):
    target, q = scenes
    bare = render(np.tile(FAR, (len(q), 1)), q)
    assert np.array_equal(add_target(bare, target), render(target, q))
    assert np.array_equal(add_target(bare[0], target[0]), render(target[0], q[0]))
    with pytest.raises(ValueError, match="one target"):
        add_target(bare, target[:3])


# --- preprocess ------------------------------------------------------------------------------

def test_preprocess_shape_dtype_range(scenes):
    target, q = scenes
    frames = render(target, q)
    nets = preprocess(frames)
    assert nets.shape == (16, CAM.net_size, CAM.net_size) and nets.dtype == np.float32
    assert nets.min() >= 0.0 and nets.max() <= 1.0
    assert preprocess(frames[0]).shape == (CAM.net_size, CAM.net_size)
    assert np.array_equal(preprocess(frames[0]), nets[0])
    white = np.full((CAM.height, CAM.width, 3), 255, np.uint8)
    assert np.allclose(preprocess(white), 1.0, atol=1e-6)


def test_preprocess_crops_the_roi_and_takes_luma():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (CAM.height, CAM.width, 3), dtype=np.uint8)
    x0, y0, w, h = CAM.roi
    rgb = np.array([200, 40, 90], np.uint8)
    frame[y0:y0 + h, x0:x0 + w] = rgb
    expected = float(rgb @ BT601) / 255.0
    assert np.allclose(preprocess(frame), expected, atol=1e-6)
    assert np.allclose(preprocess(frame[..., ::-1], bgr=True), expected, atol=1e-6)
    assert not np.allclose(preprocess(frame[..., ::-1]), expected, atol=0.05)


def test_preprocess_maps_roi_blocks_to_net_pixels():
    frame = np.zeros((CAM.height, CAM.width, 3), np.uint8)
    x0, y0, w, h = CAM.roi
    k = w // CAM.net_size                       # 5 camera pixels per network pixel
    frame[y0 + 10 * k: y0 + 11 * k, x0 + 30 * k: x0 + 31 * k] = 255
    frame[y0 - 1, :] = 255                      # just outside the ROI: must not leak in
    frame[:, x0 + w] = 255
    net = preprocess(frame)
    assert net[10, 30] == pytest.approx(1.0, abs=1e-6)
    net[10, 30] = 0.0
    assert np.abs(net).max() < 1e-6


def test_preprocess_area_resize_for_non_integer_ratio():
    camera = CameraConfig(roi=(3, 5, 50, 35), net_size=20)
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    grey = frame[5:40, 3:53].astype(float) @ BT601 / 255.0
    # reference: replicate pixels to a common multiple of the sizes, then average 2-D blocks
    fine = np.repeat(np.repeat(grey, 4, axis=0), 2, axis=1)          # (140, 100)
    reference = fine.reshape(20, 7, 20, 5).mean(axis=(1, 3))
    assert np.allclose(preprocess(frame, camera), reference, atol=1e-5)


@pytest.mark.parametrize("frames, message", [
    (np.zeros((480, 640, 3), np.float32), "uint8"),
    (np.zeros((480, 640), np.uint8), "dimensions"),
    (np.zeros((2, 2, 480, 640, 3), np.uint8), "dimensions"),
    (np.zeros((480, 640, 4), np.uint8), "3 colour channels"),
    (np.zeros((240, 320, 3), np.uint8), "smaller than the ROI"),
])
def test_preprocess_rejects_bad_frames(frames, message):
    with pytest.raises(ValueError, match=message):
        preprocess(frames)


# --- network images ------------------------------------------------------------------------

def test_net_image_target_centroid_and_radius():
    q = np.tile(ARM_DOWN, (len(FREE_TARGETS), 1))
    nets = render_net_images(FREE_TARGETS, q)
    bare = render_net_images(FAR, ARM_DOWN)
    contrast = (np.array(BACKGROUND_RGB) - TARGET_RGB) @ BT601 / 255.0
    radius_net = TARGET_RADIUS_M / CAM.m_per_net_px
    assert radius_net == pytest.approx(3.8, abs=0.05)               # the paper's 3.8 px
    for net, target in zip(nets, FREE_TARGETS):
        weight = (bare - net) / contrast
        assert np.abs(_centroid(weight) - CAM.to_net_pixels(target)).max() < 0.1
        assert weight.sum() == pytest.approx(np.pi * radius_net ** 2, rel=0.05)


@pytest.mark.parametrize("supersample, mae", [(5, 1e-4), (2, 2e-3), (1, 5e-3)])
def test_fast_path_matches_the_pipeline(supersample, mae):
    target, q = sample_scenes(48, seed=11)
    exact = render_net_images(target, q)
    assert np.array_equal(exact, preprocess(render(target, q)))
    fast = render_net_images(target, q, supersample=supersample)
    assert fast.shape == exact.shape and fast.dtype == np.float32
    assert np.abs(fast - exact).mean() < mae


def test_fast_path_rejects_bad_supersample():
    with pytest.raises(ValueError, match="supersample"):
        render_net_images(FAR, ARM_DOWN, supersample=0)


# --- scenes and the contact sheet ------------------------------------------------------------

def test_sample_scenes_are_seeded_and_reachable():
    t0, q0 = sample_scenes(12, seed=0)
    t1, q1 = sample_scenes(12, seed=0)
    assert np.array_equal(t0, t1) and np.array_equal(q0, q1)
    assert not np.array_equal(sample_scenes(12, seed=1)[0], t0)
    lo, hi = BAXTER_LEFT.joint_limits.T
    assert np.all((q0 >= lo) & (q0 <= hi))
    assert np.all(np.linalg.norm(t0, axis=-1) <= BAXTER_LEFT.reach)
    # 1 DoF: each target is reachable by moving e1 alone from q
    target, q = sample_scenes(8, seed=2, dof=1)
    e1 = np.linspace(lo[1], hi[1], 4001)
    for t, qk in zip(target, q):
        sweep = np.tile(qk, (len(e1), 1))
        sweep[:, 1] = e1
        assert np.min(np.linalg.norm(BAXTER_LEFT.forward(sweep) - t, axis=-1)) < 2e-3


def test_sheet_cli_writes_a_png(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["render", "sheet", "--out", str(out), "--n", "2", "--seed", "4"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["render", "sheet", "--out", str(out), "--n", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("camera", [DEFAULT_CAMERA, CameraConfig(roi=(3, 5, 50, 35), net_size=20)])
def test_preprocess_frame_is_preprocess_up_to_float_rounding(camera):
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    want = preprocess(frame, camera)
    got = preprocess_frame(frame, camera)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)
    bgr = np.ascontiguousarray(frame[..., ::-1])
    np.testing.assert_allclose(preprocess_frame(bgr, camera, bgr=True), want, atol=1e-6)


def test_preprocess_frame_refuses_a_batch_and_a_small_frame():
    with pytest.raises(ValueError, match="one frame"):
        preprocess_frame(np.zeros((2, 480, 640, 3), np.uint8))
    with pytest.raises(ValueError, match="smaller than the ROI"):
        preprocess_frame(np.zeros((240, 320, 3), np.uint8))
