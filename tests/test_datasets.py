"""Datasets (reach_core.datasets) and the higher-fidelity renderer (reach_core.hifi_renderer)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from reach_core import datasets as D
from reach_core.cli import main
from reach_core.hifi_renderer import camera_distance, render_hifi
from reach_core.kinematics import BAXTER_LEFT, grid_counts, halton
from reach_core.renderer import add_target, preprocess, render, sample_scenes
from reach_core.scene import DEFAULT_CAMERA, normalise


# ----------------------------------------------------------------------------- hifi renderer
def test_hifi_frames_shape_determinism_and_variation():
    target, q = sample_scenes(2, seed=5)
    a = render_hifi(target, q, seed=7)
    b = render_hifi(target, q, seed=7)
    assert a.shape == (2, DEFAULT_CAMERA.height, DEFAULT_CAMERA.width, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b), "the same scene and seed must give the same bytes"
    c = render_hifi(target, q, seed=8)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 2.0, "another seed must change the look"
    single = render_hifi(target[1], q[1], seed=8)  # frame i of a batch uses seed + i
    assert single.shape == (480, 640, 3)
    assert np.array_equal(single, render_hifi(target, q, seed=7)[1])
    # preprocess applies unchanged
    assert preprocess(a).shape == (2, 84, 84)


def test_hifi_geometry_matches_the_kinematics_at_the_nominal_camera():
    assert camera_distance() == pytest.approx(240 / (200 * np.tan(np.radians(22.5))))
    q = np.array([[0.3, 0.9, 0.2], [-1.2, 1.5, 1.0]])
    target = np.array([[0.5, -0.6], [-0.6, 0.7]])
    frames = render_hifi(target, q, seed=0, variation=0.0, noise=0.0).astype(int)
    cam = DEFAULT_CAMERA
    pts = BAXTER_LEFT.link_points(q)
    for k in range(2):
        # the middle of the upper arm and of the forearm are red (the links), seen where the
        # plane projection puts them
        for a, b in ((0, 1), (1, 2)):
            mid = 0.45 * pts[k, a] + 0.55 * pts[k, b]
            u, v = np.rint(cam.to_pixels(mid)).astype(int)
            r, g, bl = frames[k, v, u]
            assert r > g + 60 and r > bl + 60, f"scene {k}: link {a}-{b} not red at ({u}, {v})"
        u, v = np.rint(cam.to_pixels(target[k])).astype(int)
        r, g, bl = frames[k, v, u]
        assert bl > 200 and r < 40 and g < 40, "the virtual target must be painted at x*"
    no_target = render_hifi(None, q, seed=0, variation=0.0, noise=0.0)
    u, v = np.rint(cam.to_pixels(target[0])).astype(int)
    assert no_target[0, v, u, 2] < 200 or no_target[0, v, u, 0] > 60


def test_hifi_rejects_bad_scenes():
    with pytest.raises(ValueError):
        render_hifi(np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError):
        render_hifi(np.zeros((2, 2)), np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="seed"):
        render_hifi(np.zeros((2, 2)), np.zeros((2, 3)), seed=[1, 2, 3])


# ----------------------------------------------------------------------------- datasets
def test_sim_dataset_round_trip(tmp_path):
    out = D.render_sim_dataset(tmp_path / "sim", 5, seed=3, progress=False)
    with open(out / "labels.csv") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == D.LABEL_COLUMNS and len(rows) == 6
    ds = D.load_dataset(out, verbose=False)
    target, q = sample_scenes(5, seed=3)
    assert len(ds) == 5 and not ds.skipped
    np.testing.assert_allclose(ds.images, preprocess(render(target, q)), atol=1e-6)
    np.testing.assert_allclose(ds.omega, normalise(target, q), atol=2e-6)
    assert json.loads((out / "dataset.json").read_text())["target"] == "in_image"


def test_hifi_dataset_virtual_targets(tmp_path):
    out = D.render_hifi_dataset(tmp_path / "hifi", 2, seed=4, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["target"] == "virtual" and meta["source"] == "hifi"
    ds = D.load_dataset(out, virtual_targets=3, verbose=False)
    assert len(ds) == 6
    target, q = sample_scenes(2, seed=4)
    frame = np.asarray(Image.open(out / "images/000000.jpg").convert("RGB"))
    np.testing.assert_allclose(ds.images[0], preprocess(add_target(frame, target[0])), atol=1e-3)
    np.testing.assert_allclose(ds.omega[0], normalise(target[0], q[0]), atol=2e-6)
    # the extra copies keep the joint angles and move the target
    np.testing.assert_allclose(ds.omega[1:3, 2:], np.repeat(ds.omega[:1, 2:], 2, 0), atol=1e-6)
    assert np.all(np.abs(ds.omega[1:3, :2] - ds.omega[0, :2]).sum(1) > 1e-3)
    assert not np.allclose(ds.images[0], ds.images[1])
    # near-reach virtual targets: the drawn targets sit at the frame's hand
    near = D.load_dataset(out, virtual_targets=5, near_target=1.0, verbose=False)
    from reach_core.scene import denormalise
    t_near, q_near = denormalise(near.omega)
    gap = np.linalg.norm(t_near - BAXTER_LEFT.forward(q_near), axis=1).reshape(2, 5)
    assert np.all(gap[:, 1:] < 0.12) and np.median(gap[:, 1:]) < 0.05
    with pytest.raises(ValueError, match="near_target"):
        D.load_dataset(out, virtual_targets=3, near_target=1.5, verbose=False)


def test_near_targets_sit_at_the_hand():
    from reach_core.renderer import near_targets
    target, q = sample_scenes(2000, seed=5)
    hand = BAXTER_LEFT.forward(q)
    near = near_targets(q, np.random.default_rng(0))
    d_near = np.linalg.norm(near - hand, axis=1)
    d_uniform = np.linalg.norm(target - hand, axis=1)
    assert (d_near < 0.05).mean() > 0.8 and (d_uniform < 0.05).mean() < 0.02
    assert d_near.max() < 0.12 and np.all(d_near > 0)
    # reachable by construction: inside the workspace of the normalised Omega
    omega = normalise(near, q)
    assert omega.min() >= -1e-6 and omega.max() <= 1 + 1e-6
    np.testing.assert_array_equal(near, near_targets(q, np.random.default_rng(0)))


def _bad_dataset(tmp_path):
    out = D.render_sim_dataset(tmp_path / "bad", 10, seed=1, progress=False)
    img = out / "images"
    (img / "000001.png").unlink()                                         # missing
    (img / "000002.png").write_bytes(b"")                                 # empty
    Image.new("L", (640, 480)).save(img / "000003.png")                   # grey
    Image.new("RGB", (320, 240)).save(img / "000004.png")                 # wrong size
    (img / "000005.png").write_bytes(b"not a png at all")                 # unreadable
    Image.new("RGBA", (640, 480)).save(img / "000006.png")                # 4 channels
    with open(out / "labels.csv") as fh:
        rows = list(csv.reader(fh))
    rows[8][3] = "nan"                                                    # NaN label (image 7)
    with open(out / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return out


def test_bad_rows_are_skipped_counted_and_named(tmp_path):
    out = _bad_dataset(tmp_path)
    ds = D.load_dataset(out, max_bad_fraction=0.8, verbose=False)
    assert len(ds) == 3 and len(ds.skipped) == 7
    reasons = {f: why for _, f, why in ds.skipped}
    assert "not found" in reasons["images/000001.png"]
    assert "empty" in reasons["images/000002.png"]
    assert "1 channel" in reasons["images/000003.png"]
    assert "320x240" in reasons["images/000004.png"]
    assert "unreadable" in reasons["images/000005.png"]
    assert "4 channels" in reasons["images/000006.png"]
    assert "NaN" in reasons["images/000007.png"]
    assert [r for r, _, _ in ds.skipped] == [3, 4, 5, 6, 7, 8, 9]   # labels.csv rows (header = 1)
    assert "7 bad rows skipped" in ds.summary()
    with pytest.raises(D.DatasetError, match=r"7 of 10 rows are bad.*row 3 \(images/000001.png\)"):
        D.load_dataset(out, verbose=False)
    with pytest.raises(D.DatasetError, match=r"row 9 \(images/000007.png\).*NaN"):
        D.load_dataset(out, strict=True, verbose=False)


def test_label_file_problems(tmp_path):
    out = D.render_sim_dataset(tmp_path / "d", 3, seed=1, progress=False)
    with open(out / "labels.csv") as fh:
        rows = list(csv.reader(fh))
    with open(out / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([[c for c in r if c != "left_e1"] for r in rows[:1]] + rows[1:])
    with pytest.raises(D.DatasetError, match="lacks column.*left_e1"):
        D.load_dataset(out, verbose=False)
    rows[2][6] = "0.5"  # normalised target x disagrees with the metres
    rows[3] = rows[3][:4]  # short row
    with open(out / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    ds = D.load_dataset(out, max_bad_fraction=1.0, verbose=False)
    assert len(ds) == 1
    assert [r for r, _, _ in ds.skipped] == [3, 4]
    assert "disagree" in ds.skipped[0][2] and "fields" in ds.skipped[1][2]
    with pytest.raises(D.DatasetError, match="not found"):
        D.load_dataset(tmp_path / "nope")


def test_net_dataset_and_cli(tmp_path, capsys):
    out = tmp_path / "net"
    assert main(["data", "render", "--net", "--n", "20", "--supersample", "2", "--out", str(out)]) == 0
    ds = D.load_dataset(out, verbose=False)
    target, q = sample_scenes(20, seed=0)
    assert ds.images.shape == (20, 84, 84)
    np.testing.assert_allclose(ds.omega, normalise(target, q), atol=2e-6)
    assert main(["data", "check", str(_bad_dataset(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "images/000001.png" in err


# ------------------------------------------------------------------ joint designs (few frames)
def _fill(q):
    """Mean distance from random points of the joint box to the nearest design point (in units
    of each joint's range)."""
    lo, hi = BAXTER_LEFT.joint_limits.T
    u = (q - lo) / (hi - lo)
    p = np.random.default_rng(0).uniform(0, 1, (4000, 3))
    return np.sqrt(((p[:, None] - u[None]) ** 2).sum(-1)).min(1).mean()


def test_joint_designs_stay_in_the_limits_and_fill_the_box_better_than_uniform_draws():
    lo, hi = BAXTER_LEFT.joint_limits.T
    rng = np.random.default_rng(1)
    uniform = BAXTER_LEFT.design_joints(rng, 200, "uniform")
    for design in ("halton", "grid"):
        q = BAXTER_LEFT.design_joints(np.random.default_rng(1), 200, design)
        assert 150 <= len(q) <= 200 and np.all(q > lo) and np.all(q < hi), design
        assert len(np.unique(q.round(9), axis=0)) == len(q), f"{design}: repeated points"
        assert _fill(q) < 0.95 * _fill(uniform), design
    a = BAXTER_LEFT.design_joints(np.random.default_rng(1), 50, "halton")
    b = BAXTER_LEFT.design_joints(np.random.default_rng(2), 50, "halton")
    assert not np.allclose(a, b), "the seed shifts the Halton points"
    with pytest.raises(ValueError, match="joint design"):
        BAXTER_LEFT.design_joints(rng, 10, "sobol")


def test_halton_points_and_grid_counts():
    assert np.allclose(halton(4, 2), [[0.5, 1 / 3], [0.25, 2 / 3], [0.75, 1 / 9], [0.125, 4 / 9]])
    assert grid_counts(8, [1, 1, 1]) == (2, 2, 2)
    assert grid_counts(200, [3.2, 2.7, 3.7]) == (6, 5, 6)      # Baxter's s1, e1, w1 ranges
    assert grid_counts(1, [1, 2, 3]) == (1, 1, 1)
    assert grid_counts(7, [1, 10, 1]) == (1, 7, 1)
    with pytest.raises(ValueError):
        grid_counts(0, [1, 1, 1])


def test_render_with_a_joint_design_records_it(tmp_path):
    out = tmp_path / "grid"
    assert main(["data", "render", "--n", "20", "--design", "grid", "--out", str(out)]) == 0
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["n"] == 18 and meta["joint_design"] == "grid"      # a 3 x 2 x 3 grid
    ds = D.load_dataset(out)
    assert len(ds.images) == 18
    s1 = np.unique(ds.omega[:, 2].round(5))                        # normalised left_s1
    assert len(s1) == 3
    assert main(["data", "render", "--net", "--n", "4", "--design", "halton", "--out",
                 str(tmp_path / "net")]) == 2
