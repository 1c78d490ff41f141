"""The perception module (reach_core.perception): network, checkpoint contract, training, evaluation."""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reach_core import perception as P
from reach_core.cli import main
from reach_core.control import CheckpointError, ControlPolicy, QNetwork
from reach_core.datasets import render_hifi_dataset, sim_test_set
from reach_core.renderer import BACKGROUND_RGB, preprocess, render, sample_scenes
from reach_core.scene import OMEGA_HIGH, OMEGA_LOW, normalise
from reach_core.simulator import TaskConfig


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)   # deterministic and polite on the shared CPU
    yield
    torch.set_num_threads(old)


def test_paper_architecture_is_3_conv_and_1_fc():
    net = P.PerceptionNet(P.ArchConfig("paper"))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 32, (8, 8), (4, 4)), (32, 64, (4, 4), (2, 2)), (64, 64, (3, 3), (1, 1))]
    assert len(fcs) == 1 and (fcs[0].in_features, fcs[0].out_features) == (3136, 5)
    x = torch.rand(3, 84, 84)
    assert net(x).shape == (3, 5)
    for cfg in (P.ArchConfig("paper", batchnorm=True, fc_hidden=64, width=0.5),
                P.ArchConfig("spatial", keypoints=8)):
        assert P.PerceptionNet(cfg).eval()(x).shape == (3, 5)
    with pytest.raises(ValueError):
        P.ArchConfig("resnet")


def test_spatial_softmax_finds_a_bright_spot():
    ss = P.SpatialSoftmax(42, 42)
    x = torch.full((1, 1, 42, 42), -20.0)
    x[0, 0, 10, 30] = 20.0
    xy = ss(x)[0]
    lin = torch.linspace(-1, 1, 42)
    assert torch.allclose(xy, torch.stack([lin[30], lin[10]]), atol=1e-4)


def _save_untrained(path, cfg=P.ArchConfig("paper")):
    torch.manual_seed(0)
    model = P.PerceptionModel(P.PerceptionNet(cfg), {"kind": "test"})
    model.save(path)
    return model


def test_model_contract_and_round_trip(tmp_path):
    model = _save_untrained(tmp_path / "m.pt")
    loaded = P.PerceptionModel.load(tmp_path / "m.pt")
    target, q = sample_scenes(4, seed=1)
    x = preprocess(render(target, q))
    out = loaded.predict(x)
    assert out.shape == (4, 5) and out.dtype == np.float32
    assert np.all((out >= 0) & (out <= 1))
    np.testing.assert_array_equal(out, model.predict(x))
    assert loaded.predict(x[0]).shape == (1, 5)
    assert loaded.meta["kind"] == "test"
    with pytest.raises(ValueError, match="84"):
        loaded.predict(np.zeros((2, 80, 80), np.float32))
    with pytest.raises(ValueError, match="float32"):
        loaded.predict(np.zeros((2, 84, 84), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        loaded.predict(np.full((1, 84, 84), np.nan, np.float32))


def _bright_spot_reader(images: torch.Tensor) -> torch.Tensor:
    """A stand-in network: Omega's target from where the brightest pixel is (u right = x up,
    v down = y down, as Camera.to_pixels), the joints from the image's mean (shift-invariant)."""
    b, h, w = images.shape
    idx = images.reshape(b, -1).argmax(dim=1)
    v, u = (idx // w).float(), (idx % w).float()
    step = torch.tensor(P.DEFAULT_CAMERA.m_per_net_px / (OMEGA_HIGH[:2] - OMEGA_LOW[:2]),
                        dtype=torch.float32)
    mean = images.mean(dim=(1, 2))
    return torch.stack([0.1 + u * step[0], 0.9 - v * step[1], mean, mean, mean], dim=1)


def test_test_time_augmentation_undoes_each_shift_and_takes_the_median():
    x = torch.zeros(3, 84, 84)
    x[0, 40, 30] = x[1, 20, 60] = x[2, 70, 10] = 1.0     # a bright spot away from the edges
    plain = _bright_spot_reader(x)
    for r in (1, 2):
        out = P.predict_shifted(_bright_spot_reader, x, r)
        assert out.shape == (3, 5)
        # every shifted copy moved the spot by (dx, dy) px; moved back, each gives the plain answer
        torch.testing.assert_close(out, plain)
    assert torch.equal(P.predict_shifted(_bright_spot_reader, x, 0), plain)
    # the median, not the mean: one copy far off (the spot wrapped round the edge) is outvoted
    y = torch.zeros(1, 84, 84)
    y[0, 40, 83] = 1.0
    med = P.predict_shifted(_bright_spot_reader, y, 1)
    torch.testing.assert_close(med, _bright_spot_reader(y))
    for bad in (-1, 4, 1.5, True, "1"):
        with pytest.raises(ValueError, match="0..3"):
            P.check_tta(bad)


def test_test_time_augmentation_takes_any_list_of_shifts_and_undoes_each():
    x = torch.zeros(2, 84, 84)
    x[0, 40, 30] = x[1, 20, 60] = 1.0
    plain = _bright_spot_reader(x)
    assert P.square_shifts(1) == [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    cross = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    torch.testing.assert_close(P.predict_shifted(_bright_spot_reader, x, 1, shifts=cross), plain)
    torch.testing.assert_close(P.predict_shifted(_bright_spot_reader, x, 1, shifts=P.square_shifts(1)),
                               P.predict_shifted(_bright_spot_reader, x, 1))
    # one copy shifted by 2 px: the estimate is moved back (a spot inside the image), and the copy
    # was really shifted (a spot at the right edge wraps round, 2 px right of the left edge)
    torch.testing.assert_close(P.predict_shifted(_bright_spot_reader, x, 0, shifts=[(0, 2)]), plain)
    edge = torch.zeros(1, 84, 84)
    edge[0, 40, 83] = 1.0
    wrapped = P.predict_shifted(_bright_spot_reader, edge, 0, shifts=[(0, 2)])
    assert wrapped[0, 0] < _bright_spot_reader(edge)[0, 0] - 0.5


def test_the_cross_pattern_shifts_along_each_axis_and_the_model_runs_it(tmp_path):
    from reach_core.perception.model import check_tta_pattern, tta_shifts
    assert tta_shifts(1) == P.square_shifts(1)
    assert tta_shifts(1, "cross") == [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    assert len(tta_shifts(2, "cross")) == 9 and (0, -2) in tta_shifts(2, "cross")
    assert tta_shifts(0, "cross") == [(0, 0)] == tta_shifts(0, "ring")
    assert tta_shifts(1, "ring") == tta_shifts(1, "cross")[1:]         # the cross without its centre
    with pytest.raises(ValueError, match="square, cross, ring"):
        check_tta_pattern("diamond")
    _save_untrained(tmp_path / "m.pt")
    model = P.PerceptionModel.load(tmp_path / "m.pt", tta=1)
    model.tta_pattern = "cross"
    target, q = sample_scenes(4, seed=3)
    x = preprocess(render(target, q))
    with torch.no_grad():
        expect = P.predict_shifted(model.net, torch.from_numpy(x), 1,
                                   shifts=tta_shifts(1, "cross")).clamp(0, 1).numpy()
        square = P.predict_shifted(model.net, torch.from_numpy(x), 1).clamp(0, 1).numpy()
    out = model.predict(x)
    np.testing.assert_allclose(out, expect, atol=1e-6)
    assert not np.allclose(out, square)                # 5 copies, not the square's 9
    model.tta_pattern = "diamond"
    with pytest.raises(ValueError, match="tta_pattern"):
        model.predict(x)


def test_the_median_of_an_even_number_of_copies_is_the_mean_of_the_two_middle_ones():
    from reach_core.perception.model import median_of_copies
    rng = np.random.default_rng(0)
    for n in (1, 4, 5, 9):
        out = rng.normal(size=(n, 3, 5)).astype(np.float32)
        np.testing.assert_array_equal(median_of_copies(torch.from_numpy(out)).numpy(),
                                      np.median(out, axis=0))
    four = torch.tensor([[4.0], [1.0], [3.0], [2.0]])
    assert float(median_of_copies(four)[0]) == 2.5 != float(four.median(dim=0).values[0])


def test_test_time_augmentation_in_the_model(tmp_path):
    _save_untrained(tmp_path / "m.pt")
    plain = P.PerceptionModel.load(tmp_path / "m.pt")
    tta = P.PerceptionModel.load(tmp_path / "m.pt", tta=1)
    assert plain.tta == 0 and tta.tta == 1
    target, q = sample_scenes(4, seed=3)
    x = preprocess(render(target, q))
    out = tta.predict(x)
    assert out.shape == (4, 5) and np.all((out >= 0) & (out <= 1))
    with torch.no_grad():
        expect = P.predict_shifted(plain.net, torch.from_numpy(x), 1).clamp(0, 1).numpy()
    np.testing.assert_allclose(out, expect, atol=1e-6)
    assert not np.allclose(out, plain.predict(x))      # it does change the estimate
    with pytest.raises(ValueError, match="0..3"):
        P.PerceptionModel.load(tmp_path / "m.pt", tta=9)
    # only networks trained with shifted cameras are meant for it
    net = plain.net
    assert P.trained_with_shifts(P.PerceptionModel(net, {"config": {"online": True, "randomize": 0.5}}))
    assert P.trained_with_shifts(P.PerceptionModel(net, {"config": {"translation": 2.0}}))
    assert not P.trained_with_shifts(P.PerceptionModel(net, {"config": {"online": True, "randomize": 0.0}}))
    assert not P.trained_with_shifts(plain)
    # what a model gets when tta is asked for (the perception node's and the evaluations' default
    # is 1): the radius for a network trained with shifts, none for the others
    shifted = P.PerceptionModel(net, {"config": {"online": True, "randomize": 0.5}})
    assert (P.tta_for(shifted, 1), P.tta_for(shifted, 2), P.tta_for(shifted, 0)) == (1, 2, 0)
    assert P.tta_for(plain, 1) == 0
    with pytest.raises(ValueError, match="0..3"):
        P.tta_for(shifted, 7)


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(CheckpointError, match="missing.pt"):
        P.PerceptionModel.load(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(P.PerceptionCheckpointError, match="corrupt.pt"):
        P.PerceptionModel.load(corrupt)
    control = tmp_path / "control.pt"
    ControlPolicy(QNetwork((8,)), TaskConfig(), {}).save(control)
    with pytest.raises(P.PerceptionCheckpointError, match="control.pt.*not a reach perception"):
        P.PerceptionModel.load(control)
    wrong = tmp_path / "wrong.pt"
    ck = P.PerceptionModel(P.PerceptionNet(P.ArchConfig("paper"))).checkpoint()
    ck["arch"] = {"arch": "spatial"}
    torch.save(ck, wrong)
    with pytest.raises(P.PerceptionCheckpointError, match="wrong.pt.*do not fit a spatial"):
        P.PerceptionModel.load(wrong)
    ck["arch"] = {"arch": "paper", "colour": True}
    torch.save(ck, wrong)
    with pytest.raises(P.PerceptionCheckpointError, match="malformed"):
        P.PerceptionModel.load(wrong)


def test_errors_in_physical_units():
    target, q = sample_scenes(3, seed=2)
    omega = normalise(target, q)
    pred = omega.copy()
    pred[:, 0] += 0.01   # 1% of the 2.1 m workspace: 2.1 cm, 0.84 px of the 84x84 image
    pred[:, 3] -= 0.02   # 2% of e1's range
    m, e = P.perception_errors(pred, omega)
    np.testing.assert_allclose(e, np.hypot(0.01, 0.02), rtol=1e-5)
    assert m["target_x_cm_mae"] == pytest.approx(2.1, rel=1e-4)
    assert m["target_y_cm_mae"] == pytest.approx(0.0, abs=1e-6)
    assert m["target_px_mean"] == pytest.approx(0.021 / (420 / 200 / 84), rel=1e-4)
    assert m["left_e1_deg_mae"] == pytest.approx(np.degrees(0.02 * (OMEGA_HIGH[3] - OMEGA_LOW[3])), rel=1e-4)
    assert m["e_std"] == pytest.approx(0.0, abs=1e-7)


def test_augmentations():
    cfg = P.TrainConfig()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 84, 84)
    assert torch.equal(P.augment(x, cfg, gen), x.clamp(0, 1))
    cfg.noise = 0.05
    d = P.augment(torch.full((4, 84, 84), 0.5), cfg, gen) - 0.5
    assert float(d.std()) == pytest.approx(0.05, rel=0.05)
    # a translation of 10 px moves a bright square by up to 10 px and never more
    cfg = P.TrainConfig(translation=10.0)
    img = torch.zeros(64, 84, 84)
    img[:, 40:44, 40:44] = 1.0
    out = P.augment(img, cfg, gen)
    ys, xs = torch.meshgrid(torch.arange(84.0), torch.arange(84.0), indexing="ij")
    cx = (out * xs).sum((1, 2)) / out.sum((1, 2))
    assert float((cx - 41.5).abs().max()) <= 10.5 and float((cx - 41.5).abs().max()) > 3.0
    cfg = P.TrainConfig(rotation=5.0, brightness=0.2)
    out = P.augment(torch.rand(8, 84, 84), cfg, gen)
    assert out.min() >= 0 and out.max() <= 1


def test_clutter_is_pasted_around_the_robot_and_never_over_it():
    target, q = sample_scenes(4, np.random.default_rng(3))
    omega = torch.from_numpy(normalise(target, q)).float()
    images = torch.from_numpy(np.stack([preprocess(f) for f in render(target, q)])).float()
    keep = P.robot_mask(omega)
    tight = P.robot_mask(omega, margin=0)
    # the mask covers the drawn robot and target: every pixel off the plain background, grown
    assert bool((keep | ~tight).all()) and keep.sum() > tight.sum()
    off_background = (images - P._luma(BACKGROUND_RGB)).abs() > 0.05
    assert float((off_background & ~keep).float().mean()) < 0.002
    gen = torch.Generator().manual_seed(0)
    out = P.paste_clutter(images, keep, 1.0, gen, max_boxes=8)
    assert torch.equal(out[keep], images[keep])           # robot and target untouched
    changed = (out != images).float().mean((1, 2))
    assert float(changed.max()) > 0.01                     # boxes landed on the background
    assert torch.equal(P.paste_clutter(images, keep, 0.0, gen), images)
    # bars at any angle: drawn after the same boxes (same seed), still never over the robot
    boxes = P.paste_clutter(images, keep, 1.0, torch.Generator().manual_seed(5))
    barred = P.paste_clutter(images, keep, 1.0, torch.Generator().manual_seed(5), bars=1.0)
    assert torch.equal(barred[keep], images[keep])
    assert int((barred != images).sum()) > int((boxes != images).sum())
    with pytest.raises(ValueError, match="clutter-margin"):
        P.train(P.TrainConfig(clutter_margin=-1, steps=1), progress=False)
    with pytest.raises(ValueError, match="distractors"):
        P.train(P.TrainConfig(distractors=-0.1, steps=1), progress=False)
    with pytest.raises(ValueError, match="real-clutter"):
        P.train(P.TrainConfig(real_clutter=1.5, steps=1), progress=False)
    with pytest.raises(ValueError, match="l2sp"):
        P.train(P.TrainConfig(l2sp=-1.0, steps=1), progress=False)


def test_background_swap_keeps_each_robot_and_hides_the_other():
    target, q = sample_scenes(6, np.random.default_rng(4))
    omega = torch.from_numpy(normalise(target, q)).float()
    images = torch.from_numpy(np.stack([preprocess(f) for f in render(target, q)])).float()
    # each frame gets its own background: a horizontal ramp of a different slope
    ramp = torch.linspace(0.2, 0.9, 84).view(1, 1, 84) * torch.linspace(0.5, 1.0, 6).view(6, 1, 1)
    keep = P.robot_mask(omega, margin=1)
    images = torch.where(keep, images, ramp.expand(6, 84, 84))
    out = P.swap_backgrounds(images, keep, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out[keep], images[keep])                      # labels' pixels untouched
    assert bool(torch.isfinite(out).all())
    swapped = [i for i in range(6) if not torch.equal(out[i], images[i])]
    assert len(swapped) >= 4                                         # (a frame may draw itself)
    ramps = ramp.expand(6, 84, 84)
    for i in swapped:
        bg = ~keep[i]
        # the background is another frame's ramp, that frame's robot filled in from its ramp
        gaps = [float((out[i][bg] - ramps[j][bg]).abs().mean()) for j in range(6)]
        j = int(np.argmin(gaps))
        assert j != i and gaps[j] < 0.005, gaps
    assert torch.equal(P.swap_backgrounds(images, keep, 0.0, torch.Generator()), images)
    with pytest.raises(ValueError, match="background-swap"):
        P.train(P.TrainConfig(background_swap=2.0, steps=1), progress=False)


def test_adapt_part_freezes_the_head_or_all_but_the_early_convolutions(tmp_path):
    for arch, early in (("spatial", 3), ("paper", 2)):
        net = P.PerceptionNet(P.ArchConfig(arch=arch, width=0.25))
        convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
        assert len(P.trainable_parameters(net, "all")) == len(list(net.parameters()))
        feats = P.trainable_parameters(net, "features")
        assert all(p.requires_grad for p in feats) and not any(p.requires_grad for p in net.head.parameters())
        P.trainable_parameters(net, "early")
        assert [c.weight.requires_grad for c in convs] == [True] * early + [False] * (len(convs) - early)
        assert not any(p.requires_grad for p in net.head.parameters())
    # an adaptation with the head frozen leaves the head's weights as they were
    sim_cfg = _tiny(tmp_path, "sim", steps=4, sim_images=64, val_sim=8, eval_every=2)
    P.train(sim_cfg, progress=False)
    P.train(_tiny(tmp_path, "f", steps=4, sim_images=64, val_sim=8, eval_every=2, adapt_part="features",
                  adapt_from=str(tmp_path / "sim" / "model.pt")), progress=False)
    a = torch.load(tmp_path / "sim" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "f" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("head."))
    assert not torch.equal(a["features.0.weight"], b["features.0.weight"])
    with pytest.raises(ValueError, match="adapt-part"):
        P.train(P.TrainConfig(adapt_part="head", steps=1), progress=False)


def test_shipped_perception_models_load_with_their_provenance():
    models = Path(P.__file__).parents[1] / "models"
    for role in ("sim", "adapted", "sim_dr"):
        P.PerceptionModel.load(models / f"perception_{role}.pt")
        info = json.loads((models / f"perception_{role}.json").read_text())
        assert info["file"] == f"perception_{role}.pt", role
        assert info["command"].startswith("reach train perception") and "seed" in info, role
        assert info["evaluation"]["sim"]["n"] >= 1000 and "hifi_test" in info["evaluation"], role
    # the randomised SIM stage the walkthrough adapts from: the adapted network's architecture,
    # trained with camera shifts, and a trained network on simulator images
    dr = P.PerceptionModel.load(models / "perception_sim_dr.pt")
    assert vars(dr.arch) == vars(P.PerceptionModel.load(models / "perception_adapted.pt").arch)
    assert P.trained_with_shifts(dr)
    test = sim_test_set(60, seed=5)
    assert P.perception_errors(dr.predict(test.images), test.omega)[0]["e_mean"] < 0.03


def test_lr_schedule():
    cfg = P.TrainConfig(steps=1000, lr=1e-3, warmup=100, lr_final_fraction=0.1)
    assert P.lr_at(0, cfg) == pytest.approx(1e-5)
    assert P.lr_at(100, cfg) == pytest.approx(1e-3)
    assert P.lr_at(1000, cfg) == pytest.approx(1e-4)
    assert P.lr_at(550, cfg) == pytest.approx(0.55e-3)


def test_the_norm_loss_is_eq2_for_small_errors_and_grows_linearly_with_large_ones():
    y = torch.zeros(2, 5)
    small = torch.full((2, 5), 1e-4)
    large = torch.zeros(2, 5)
    large[:, 0] = 1.0
    delta = 0.01
    eq2 = P.perception_loss(nn.Identity(), small, y)
    assert P.perception_loss(nn.Identity(), small, y, delta=delta) == pytest.approx(float(eq2), rel=1e-3)
    # far beyond delta the loss is delta * ||r|| - delta^2, not 0.5 ||r||^2
    assert float(P.perception_loss(nn.Identity(), large, y, delta=delta)) == pytest.approx(
        delta * 1.0 - delta ** 2, rel=1e-3)
    assert float(P.perception_loss(nn.Identity(), large, y)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="--loss-delta"):
        P.TrainConfig(loss_delta=-0.1)


def _tiny(tmp_path, name, **kw):
    base = dict(out=str(tmp_path / name), sim_images=1500, supersample=1, steps=150, batch=32,
                lr=2e-3, warmup=10, eval_every=50, checkpoint_every=50, val_sim=100, width=0.5)
    base.update(kw)
    return P.TrainConfig(**base)


def test_sim_training_learns(tmp_path):
    metrics = P.train(_tiny(tmp_path, "full"), progress=False)
    run = tmp_path / "full"
    for f in ("config.json", "checkpoint.pt", "model.pt", "progress.csv", "metrics.json",
              "loss_curve.png"):
        assert (run / f).is_file(), f
    test = sim_test_set(100, seed=99)
    constant = np.linalg.norm(test.omega - test.omega.mean(0), axis=1).mean()
    model = P.PerceptionModel.load(run / "model.pt")
    e = P.perception_errors(model.predict(test.images), test.omega)[0]["e_mean"]
    assert e < 0.8 * constant, f"training did not learn: e {e:.3f}, constant predictor {constant:.3f}"
    assert metrics["steps"] == 150 and metrics["images_per_s"] > 0
    assert json.loads((run / "metrics.json").read_text())["final"]["e_sim"] == pytest.approx(
        metrics["final"]["e_sim"])
    rows = (run / "progress.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["50", "100", "150"]
    assert model.meta["metrics"]["steps"] == 150


def test_the_training_loop_trains_on_the_configured_loss(tmp_path):
    short = dict(steps=20, eval_every=20, checkpoint_every=20, sim_images=300, val_sim=50)
    runs = {d: P.train(_tiny(tmp_path, f"d{d}", loss_delta=d, **short), progress=False)
            for d in (0.0, 0.01)}
    w = {d: P.PerceptionModel.load(tmp_path / f"d{d}" / "model.pt").net.state_dict() for d in runs}
    assert json.loads((tmp_path / "d0.01" / "config.json").read_text())["loss_delta"] == 0.01
    assert any(not torch.equal(w[0.0][k], w[0.01][k]) for k in w[0.0]), "loss_delta changed nothing"


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    kw = dict(steps=60, eval_every=20, checkpoint_every=20, val_sim=20, sim_images=400)
    P.train(_tiny(tmp_path, "a", **kw), progress=False)
    P.train(_tiny(tmp_path, "b", **kw), progress=False, stop_at=40)   # as if killed at step 40
    assert not (tmp_path / "b" / "model.pt").exists()
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 40
    assert main(["train", "perception", "--out", str(tmp_path / "b"), "--resume", "--no-progress"]) == 0
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    rows = (tmp_path / "b" / "progress.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["20", "40", "60"]


def test_a_weight_averaged_run_saves_and_resumes_the_average_not_the_last_weights(tmp_path):
    kw = dict(steps=60, eval_every=20, checkpoint_every=20, val_sim=20, sim_images=400, batchnorm=True,
              ema=0.9)
    metrics = P.train(_tiny(tmp_path, "a", **kw), progress=False)
    P.train(_tiny(tmp_path, "b", **kw), progress=False, stop_at=40)
    assert main(["train", "perception", "--out", str(tmp_path / "b"), "--resume", "--no-progress"]) == 0
    ck = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    saved = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["model"]
    last = ck["model"]
    average = {k[len("module."):]: v for k, v in ck["ema"].items() if k.startswith("module.")}
    assert average.keys() == saved.keys() == last.keys()
    assert int(ck["ema"]["n_averaged"]) == 60
    differs = 0
    for k in saved:
        torch.testing.assert_close(saved[k], average[k], msg=k)     # the average is what is saved
        torch.testing.assert_close(resumed[k], saved[k], rtol=1e-5, atol=1e-6, msg=k)
        differs += not torch.allclose(saved[k].float(), last[k].float())
    assert differs >= len(saved) // 2, "the saved weights are the last ones, not their average"
    assert {"e_sim", "e_live_sim"} <= metrics["final"].keys()
    with pytest.raises(ValueError, match="--ema"):
        P.TrainConfig(ema=1.0)


def test_the_online_pool_renews_itself_in_chunks_of_the_configured_size(tmp_path):
    from reach_core.perception.train import BatchSampler, load_data
    from reach_core.randomized_renderer import ScenePool
    cfg = _tiny(tmp_path, "c", online=True, online_pool=64, online_refresh=8, online_chunk=16)
    gen = torch.Generator().manual_seed(0)
    batches = BatchSampler(cfg, load_data(cfg), torch.device("cpu"), gen)
    assert isinstance(batches.pool, ScenePool) and batches.pool.chunk == 16
    before = batches.pool.rendered
    batches.sample()
    assert batches.pool.rendered == before            # 8 due: less than a chunk
    batches.sample()
    assert batches.pool.rendered == before + 16       # 16 due: one chunk of 16
    with pytest.raises(ValueError, match="--online-chunk"):
        P.TrainConfig(online_chunk=0)


def test_the_graphed_step_draws_the_batches_of_the_loop_and_cuda_graphs_are_refused_off_a_gpu(tmp_path):
    from reach_core.perception import cuda_graph
    from reach_core.perception.train import BatchSampler, load_data, optimizer, train_step
    cfg = _tiny(tmp_path, "g", online=True, online_pool=64, online_refresh=8, online_chunk=16, batchnorm=True)
    nets = []
    for graphed in (False, True):
        torch.manual_seed(0)
        net = P.PerceptionNet(cfg.arch_config()).train()
        opt = optimizer(net, cfg)
        gen = torch.Generator().manual_seed(1)
        batches = BatchSampler(cfg, load_data(cfg), torch.device("cpu"), gen)
        step = cuda_graph.GraphedStep(net, opt, batches, cfg, P.perception_loss, lambda n: nullcontext())
        for i in range(5):   # the graphed step's eager path (what it captures) against the loop's step
            step(1e-3) if graphed else train_step(opt, net, net, None, batches, cfg, None, 1e-3)
        nets.append(net.state_dict())
    assert step.graph is None and step.eager_steps == 5
    for k in nets[0]:
        torch.testing.assert_close(nets[1][k], nets[0][k], rtol=0, atol=0, msg=k)
    with pytest.raises(ValueError, match="--cuda-graph .* needs --device cuda"):
        P.train(_tiny(tmp_path, "g2", online=True, online_pool=64, cuda_graph=True), progress=False)
    with pytest.raises(ValueError, match="online simulator scenes alone"):
        cuda_graph.check(_tiny(tmp_path, "g3", augment_sim=True, device="cuda"), batches, 1)


def test_adaptation_mixes_real_images_and_improves_on_them(tmp_path):
    hifi = render_hifi_dataset(tmp_path / "hifi", 6, seed=11, progress=False)
    sim_cfg = _tiny(tmp_path, "sim", steps=150)
    P.train(sim_cfg, progress=False)
    ad = _tiny(tmp_path, "ad", steps=120, adapt_from=str(tmp_path / "sim" / "model.pt"),
               real=str(hifi), real_fraction=0.75, virtual_targets=2, lr=1e-3, val_real=str(hifi),
               rotation=1.0, translation=1.0, noise=0.01, brightness=0.05, real_clutter=0.5)
    metrics = P.train(ad, progress=False)
    assert metrics["real_images"] == 12
    rows = (tmp_path / "ad" / "progress.csv").read_text().splitlines()
    assert "e_real_val" in rows[0]
    from reach_core.datasets import load_dataset
    ds = load_dataset(hifi, verbose=False)
    before = P.evaluate_model(P.PerceptionModel.load(tmp_path / "sim" / "model.pt"), {"h": ds})[0]["h"]
    after = P.evaluate_model(P.PerceptionModel.load(tmp_path / "ad" / "model.pt"), {"h": ds})[0]["h"]
    assert after["e_mean"] < 0.8 * before["e_mean"], (before["e_mean"], after["e_mean"])
    # L2-SP: a strong pull keeps the adapted weights near the SIM network's
    P.train(_tiny(tmp_path, "sp", steps=40, adapt_from=str(tmp_path / "sim" / "model.pt"),
                  real=str(hifi), virtual_targets=2, lr=1e-3, l2sp=10.0, real_clutter=0.5,
                  clutter_margin=0, distractors=0.5, background_swap=0.5), progress=False)
    sp_cfg = json.loads((tmp_path / "sp" / "config.json").read_text())
    assert (sp_cfg["clutter_margin"], sp_cfg["distractors"], sp_cfg["background_swap"]) == (0, 0.5, 0.5)
    start = torch.load(tmp_path / "sim" / "model.pt", weights_only=True)["model"]

    def drift(run):
        w = torch.load(tmp_path / run / "model.pt", weights_only=True)["model"]
        return sum(float(((w[k] - start[k]) ** 2).sum()) for k in w)
    assert drift("sp") < 0.2 * drift("ad"), (drift("sp"), drift("ad"))
    # the adapted network keeps the SIM network's architecture
    assert json.loads((tmp_path / "ad" / "config.json").read_text())["width"] == 0.5
    with pytest.raises(ValueError, match="adapt-from"):
        P.train(_tiny(tmp_path, "x", real=str(hifi)), progress=False)


def test_cli_train_eval_and_errors(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "perception", "--out", str(run), "--sim-images", "300", "--supersample",
                 "1", "--steps", "20", "--batch", "16", "--eval-every", "10", "--val-sim", "20",
                 "--width", "0.25", "--no-progress"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["width"] == 0.25 and cfg["command"].startswith("reach train perception")
    plot, js = tmp_path / "fig.png", tmp_path / "m.json"
    assert main(["eval", "perception", "--model", f"SIM={run / 'model.pt'}", "--sim-test", "30",
                 "--json", str(js), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "SIM" in out and "e_mean" in out and "px" in out
    res = json.loads(js.read_text())
    assert res["SIM"]["sim"]["n"] == 30 and plot.stat().st_size > 1000
    assert main(["eval", "perception", "--model", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "perception", "--out", str(tmp_path / "g"), "--device", "cuda"]) == 2
        assert "CUDA" in capsys.readouterr().err


def test_an_adaptation_reads_a_calibrated_camera_and_unlabelled_frames(tmp_path):
    import math
    from dataclasses import replace as dc_replace

    from reach_core.camera_model import CameraModel
    from reach_core.datasets import load_unlabelled, write_dataset
    from reach_core.kinematics import BAXTER_LEFT
    from reach_core.renderer import render
    nominal = CameraModel.nominal()
    moved = dc_replace(nominal, rvec=(math.pi - 0.05, 0.04, 0.03), tvec=(0.05, 0.02, 2.8))
    rng = np.random.default_rng(0)
    q = BAXTER_LEFT.sample_joints(rng, 6)
    target = BAXTER_LEFT.forward(q)
    frames = np.stack([render(np.full(2, 5.0), q[i]) for i in range(6)])   # no disc: virtual
    write_dataset(tmp_path / "real", lambda t, qc, s: frames[s:s + len(qc)], target, q,
                  target_mode="virtual", progress=False)
    moved.save(tmp_path / "camera.yaml")
    x, t = load_unlabelled(tmp_path / "real", calibration=moved, copies=2)
    assert x.shape == (12, 84, 84) and t.shape == (12, 2) and np.all((t >= 0) & (t <= 1))
    P.train(_tiny(tmp_path, "sim", steps=30), progress=False)
    ad = _tiny(tmp_path, "ad", steps=30, adapt_from=str(tmp_path / "sim" / "model.pt"),
               real=str(tmp_path / "real"), virtual_targets=2, camera=str(tmp_path / "camera.yaml"),
               unlabelled=str(tmp_path / "real"), unlabelled_fraction=0.5, unlabelled_weight=1.0)
    metrics = P.train(ad, progress=False)
    assert metrics["real_images"] == 12 and metrics["unlabelled_images"] == 12
    with pytest.raises(ValueError, match="unlabelled"):
        P.train(_tiny(tmp_path, "x", unlabelled=str(tmp_path / "real")), progress=False)


def _camera_frames_dataset(folder, n: int, seed: int) -> None:
    """A dataset of ``n`` simulator camera frames (virtual target) written to ``folder``."""
    from reach_core.datasets import write_dataset
    from reach_core.kinematics import BAXTER_LEFT
    from reach_core.renderer import render
    q = BAXTER_LEFT.sample_joints(np.random.default_rng(seed), n)
    frames = np.stack([render(np.full(2, 5.0), q[i]) for i in range(n)])
    write_dataset(folder, lambda t, qc, s: frames[s:s + len(qc)], BAXTER_LEFT.forward(q), q,
                  target_mode="virtual", progress=False)


def test_unlabelled_frames_rectified_to_the_crop_load_as_the_full_frames_do(tmp_path):
    from reach_core.camera_model import CameraModel
    from reach_core.datasets import load_unlabelled, rectify_dataset
    _camera_frames_dataset(tmp_path / "full", 4, seed=1)
    rectify_dataset(tmp_path / "full", CameraModel.nominal(), tmp_path / "crop", progress=False)
    full, t_full = load_unlabelled(tmp_path / "full", copies=2)
    crop, t_crop = load_unlabelled(tmp_path / "crop", copies=2)
    assert crop.shape == full.shape == (8, 84, 84)
    np.testing.assert_array_equal(t_crop, t_full)
    assert np.abs(crop - full).mean() < 0.02


def test_rectifying_the_first_n_frames_keeps_those_frames_and_their_labels(tmp_path):
    from reach_core.camera_model import CameraModel
    from reach_core.datasets import load_dataset, rectify_dataset
    _camera_frames_dataset(tmp_path / "full", 5, seed=2)
    rectify_dataset(tmp_path / "full", CameraModel.nominal(), tmp_path / "all", progress=False)
    rectify_dataset(tmp_path / "full", CameraModel.nominal(), tmp_path / "two", first=2, progress=False)
    every, two = load_dataset(tmp_path / "all", verbose=False), load_dataset(tmp_path / "two", verbose=False)
    assert len(every.images) == 5 and len(two.images) == 2
    np.testing.assert_array_equal(two.images, every.images[:2])
    np.testing.assert_array_equal(two.omega, every.omega[:2])
    with pytest.raises(ValueError, match="first"):
        rectify_dataset(tmp_path / "full", CameraModel.nominal(), tmp_path / "none", first=0, progress=False)


def test_an_online_run_with_the_real_look_trains(tmp_path):
    metrics = P.train(_tiny(tmp_path, "rl", steps=20, online=True, randomize=1.0, realism=0.5,
                            online_pool=256, supersample=1), progress=False)
    assert metrics["steps"] == 20 and np.isfinite(metrics["final"]["loss"])
    with pytest.raises(ValueError, match="realism"):
        _tiny(tmp_path, "bad", realism=1.5)


def test_bf16_training_runs_the_convolutions_in_bf16_and_the_readout_in_float32():
    from reach_core.perception.train import conv_precision
    net = P.PerceptionNet(P.ArchConfig(arch="spatial", width=0.25, keypoints=4))
    x = torch.rand(3, 84, 84)
    seen = []
    net.features[-1].register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    ref = net(x)
    with conv_precision(net, torch.bfloat16):
        mixed = net(x)
    assert net.conv_dtype is None and seen == [torch.float32, torch.float32]
    assert mixed.dtype == torch.float32
    assert 0 < (mixed - ref).abs().max() < 0.02      # rounded convolutions, not another network


def test_the_speed_options_learn_what_float32_learns_and_save_a_float32_network(tmp_path):
    runs = {name: P.train(_tiny(tmp_path, name, steps=40, eval_every=40, **kw), progress=False)
            for name, kw in [("fp32", {}), ("cl", dict(channels_last=True)),
                             ("bf16", dict(precision="bf16")), ("compiled", dict(compile=True))]}
    loss = {k: m["final"]["loss"] for k, m in runs.items()}
    assert abs(loss["cl"] - loss["fp32"]) < 1e-4 * loss["fp32"]
    assert abs(loss["compiled"] - loss["fp32"]) < 1e-3 * loss["fp32"]
    assert abs(loss["bf16"] - loss["fp32"]) < 0.05 * loss["fp32"]
    model = P.PerceptionModel.load(tmp_path / "bf16" / "model.pt")
    assert model.net.conv_dtype is None and model.meta["config"]["precision"] == "bf16"
    with pytest.raises(ValueError, match="--precision"):
        P.TrainConfig(precision="fp16")
