"""The held-out realistic proxy domain (reach_core.proxy_renderer): geometry, looks, bad input."""
import numpy as np
import pytest
from reach_core.calibration_marker import DEFAULT_MARKER, marker_corners
from reach_core.kinematics import BAXTER_LEFT
from reach_core.renderer import sample_scenes

from reach_core import proxy_renderer as pr


def _spot_centre(seed, q, spot, camera=pr.PROXY_CAMERA, rectify=False):
    """Pixel centre (package convention) of a small ball drawn at a plane point: the frame with
    the ball minus the same frame (same seed) without it (both resampled into the virtual
    camera's frame through the true camera with ``rectify``)."""
    world = pr._world()
    frames = [pr.render_frame(world, None, q, np.random.default_rng([seed, 0x9A0C5]), camera,
                              target_mode="none", marker=False, spot=s) for s in (None, spot)]
    if rectify:
        frames = [pr.frame_cameras(seed, 1)[0].to_virtual(f) for f in frames]
    d = np.abs(frames[1].astype(int) - frames[0].astype(int)).sum(-1).astype(float)
    d[d < 60] = 0
    ii, jj = np.nonzero(d)
    assert len(ii) > 10, "the ball is not visible"
    w = d[ii, jj]
    return np.array([(jj + 0.5) @ w, (ii + 0.5) @ w]) / w.sum()


def test_the_same_seed_gives_the_same_bytes_and_another_seed_another_look():
    target, q = sample_scenes(2, 4)
    a = pr.render_proxy(target, q, seed=11)
    b = pr.render_proxy(target, q, seed=11)
    c = pr.render_proxy(target, q, seed=12)
    assert a.shape == (2, 480, 640, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5


def test_a_plane_point_appears_where_the_proxy_camera_projects_it():
    q = np.array([0.9, 0.3, 0.2])          # the arm low, out of the way of the points
    for seed, spot in enumerate([(0.3, 0.6), (0.8, 0.3), (-0.6, 0.9), (0.9, -0.5)]):
        centre = _spot_centre(seed, q, np.array(spot))
        exact = pr.frame_cameras(seed, 1)[0].project(np.array(spot))
        assert np.linalg.norm(centre - exact) < 0.75
        assert np.linalg.norm(centre - pr.PROXY_CAMERA.project(np.array(spot))) < 1.5


def test_frames_resampled_through_the_true_camera_match_the_virtual_camera():
    from reach_core.scene import DEFAULT_CAMERA
    q = np.array([0.9, 0.3, 0.2])
    for seed, spot in enumerate([(0.5, 0.5), (-0.5, 0.8)]):
        centre = _spot_centre(seed, q, np.array(spot), rectify=True)
        assert np.linalg.norm(centre - DEFAULT_CAMERA.to_pixels(np.array(spot))) < 1.0


def test_the_proxy_camera_is_placed_by_hand_off_the_nominal_one():
    from reach_core.camera_model import CameraModel
    nominal, cam = CameraModel.nominal(), pr.PROXY_CAMERA
    err = cam.frame_error_px(nominal)
    assert 10 < err["mean_px"] < 60
    assert cam.dist[0] == pytest.approx(-0.15) and cam.sees_plane_from_front()
    jittered = pr.frame_cameras(5, 3)
    shifts = [c.frame_error_px(cam)["mean_px"] for c in jittered]
    assert all(0.01 < s < 1.5 for s in shifts)


def test_the_arm_joints_lie_on_the_planar_kinematics():
    world = pr._world()
    for q in ([0.0, 0.0, 0.0], [0.5, 0.3, 0.2], [-1.0, 1.5, 0.5]):
        world.set_arm(q, np.random.default_rng(0))
        pts = world.arm_points()                             # world s1, e1, w1
        planar = BAXTER_LEFT.link_points(np.array(q))[:3]
        assert np.allclose(pts[:, [0, 2]], planar, atol=2e-3)
        assert np.allclose(pts[:, 1], 0.0, atol=2e-3)


@pytest.mark.parametrize("tool", [None, "electric_gripper_fingertips", "0.35"])
def test_the_gripper_tips_end_at_the_tool_point(tool):
    """The default world's tips at the paper's end-effector point (0.28 m from w1); the URDF's own
    fingertips, and paddles moved for any other length, at theirs."""
    from reach_core.calibration_marker import hand_axes
    from reach_core.kinematics import parse_tool
    length = parse_tool(tool).length
    world = pr._world() if tool is None else pr._world(length)
    q = np.array([0.4, 0.8, -0.3])
    world.set_arm(q, np.random.default_rng(0))
    wrist, along, _ = hand_axes(q)
    for name in ("l_gripper_l_finger_tip_joint", "l_gripper_r_finger_tip_joint"):
        tip = np.array(world.pb.getLinkState(world.robot, world.joints[name],
                                             physicsClientId=world.cid)[4])
        reach = (tip[[0, 2]] - wrist) @ along + 0.0035     # the paddle's end past its frame
        assert reach == pytest.approx(length, abs=2e-3)
    assert tool is not None or length == pytest.approx(0.28)


def test_the_marker_is_detected_at_its_projected_corners():
    """The 9 cm marker is about 17 px wide (3 px a cell) at 3 m: detect on the frame upscaled
    twice, with contour refinement; it is decoded in about 40 % of the frames, and where it is,
    its corners are where the camera projects them."""
    import cv2
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DEFAULT_MARKER.dictionary))
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_CONTOUR
    detector = cv2.aruco.ArucoDetector(dictionary, params)
    q = BAXTER_LEFT.sample_joints(np.random.default_rng(3), 16)
    frames = pr.render_proxy(None, q, seed=40, target_mode="none", marker=True)
    errors = []
    for i, frame in enumerate(frames):
        grey = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), None, fx=2, fy=2,
                          interpolation=cv2.INTER_CUBIC)
        corners, ids, _ = detector.detectMarkers(grey)
        if ids is None or DEFAULT_MARKER.marker_id not in ids.ravel():
            continue
        found = (corners[list(ids.ravel()).index(DEFAULT_MARKER.marker_id)].reshape(4, 2) + 0.5) / 2
        truth = pr.frame_cameras(40 + i, 1)[0].project(marker_corners(q[i]))
        errors.append(np.max(np.linalg.norm(found - truth, axis=-1)))
    assert len(errors) >= 4
    assert np.mean(np.array(errors) < 1.5) >= 0.8


def test_a_physical_disc_is_blue_where_the_target_is_and_a_painted_one_is_not_drawn():
    q = np.array([0.9, 0.6, 0.3])                         # the arm low
    target = np.array([0.45, 0.45])
    phys = pr.render_proxy(target, q, seed=3, target_mode="physical")
    painted = pr.render_proxy(target, q, seed=3, target_mode="painted")
    u, v = pr.frame_cameras(3, 1)[0].project(target).astype(int)
    def patch(f):
        return f[v - 4:v + 5, u - 4:u + 5].reshape(-1, 3).astype(int)
    blue = patch(phys)
    assert np.median(blue[:, 2] - blue[:, 0]) > 40
    assert np.abs(patch(painted) - blue).mean() > 20


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        pr.render_proxy(None, [np.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        pr.render_proxy(None, [0.0, 0.0])
    with pytest.raises(ValueError, match="target"):
        pr.render_proxy(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="target_mode"):
        pr.render_proxy(None, np.zeros(3), target_mode="glowing")
    with pytest.raises(ValueError, match="physical"):
        pr.render_proxy(None, np.zeros(3), target_mode="physical")
    with pytest.raises(ValueError, match="seed"):
        pr.render_proxy(None, np.zeros((2, 3)), seed=[1, 2, 3])


def test_reach_data_render_writes_a_proxy_dataset_with_its_true_camera(tmp_path):
    import json
    import subprocess
    import sys

    from reach_core.camera_model import CameraModel
    from reach_core.datasets import load_dataset

    out = tmp_path / "proxy_test"
    run = subprocess.run([sys.executable, "-m", "reach_core.cli", "data", "render", "--source",
                          "proxy", "--target", "painted", "--n", "2", "--seed",
                          str(pr.PROXY_TEST_SEED), "--out", str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["domain"] == "proxy" and meta["target"] == "virtual" and meta["split"] == "test"
    assert meta["look_seed"] == pr.PROXY_TEST_SEED * pr.LOOK_SEED_STRIDE
    assert CameraModel.load(out / "true_camera.yaml") == pr.PROXY_CAMERA
    ds = load_dataset(out, verbose=False)
    assert len(ds) == 2 and ds.images.shape[1:] == (84, 84)


def test_a_physical_proxy_dataset_has_its_targets_in_the_images(tmp_path):
    import json

    from reach_core.datasets import render_proxy_dataset
    out = render_proxy_dataset(tmp_path / "phys", 1, seed=pr.PROXY_COLLECT_SEED, target="physical",
                               marker=True, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["target"] == "in_image" and meta["marker"] and meta["split"] == "collect"


def test_the_robot_is_drawn_from_decimated_copies_of_rethinks_meshes():
    urdf = pr._urdf_path().read_text()
    meshes = [line for line in urdf.split('filename="')[1:]]
    assert meshes and all(m.split('"')[0].endswith(".obj") for m in meshes)
    assert (pr.baxter_description() / "meshes" / "torso" / "base_link.DAE").is_file()
