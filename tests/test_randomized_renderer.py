"""The torch renderer of domain-randomised simulator images (reach_core.randomized_renderer)."""
import json

import numpy as np
import pytest
import torch

from reach_core import randomized_renderer as rr
from reach_core.perception import TrainConfig, train
from reach_core.renderer import render_net_images, sample_scenes
from reach_core.scene import DEFAULT_CAMERA, normalise


def _scenes(n=6, seed=3):
    target, q = sample_scenes(n, seed=seed)
    return target, q, torch.tensor(target, dtype=torch.float32), torch.tensor(q, dtype=torch.float32)


def test_plain_images_match_the_simulator():
    target, q, tt, qt = _scenes()
    ref = render_net_images(target, q, supersample=3)
    out = rr.render(tt, qt, supersample=3).numpy()
    assert out.shape == ref.shape == (6, 84, 84)
    diff = np.abs(out - ref)
    assert diff.mean() < 1e-3, diff.mean()
    assert np.percentile(diff, 99.9) < 0.02


def test_link_points_and_normalise_match_numpy():
    target, q, tt, qt = _scenes()
    from reach_core.kinematics import BAXTER_LEFT
    np.testing.assert_allclose(rr.link_points(torch.tensor(q)).numpy(), BAXTER_LEFT.link_points(q), atol=1e-9)
    np.testing.assert_allclose(rr.normalise(tt, qt).numpy(), normalise(target, q), atol=1e-6)


def test_randomised_images_are_deterministic_for_a_seed_and_vary_between_seeds():
    _, _, tt, qt = _scenes()
    a = rr.render(tt, qt, torch.Generator().manual_seed(5), randomize=1.0, supersample=2)
    b = rr.render(tt, qt, torch.Generator().manual_seed(5), randomize=1.0, supersample=2)
    c = rr.render(tt, qt, torch.Generator().manual_seed(6), randomize=1.0, supersample=2)
    plain = rr.render(tt, qt, supersample=2)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.02
    assert (a - plain).abs().mean() > 0.02
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_the_virtual_target_stays_at_its_nominal_place_under_randomisation():
    """Camera jitter moves the scene but not the target, which is painted last, as into webcam
    frames: the pixel at the target's centre is the target's grey in every image."""
    _, _, tt, qt = _scenes(16, seed=4)
    img = rr.render(tt, qt, torch.Generator().manual_seed(0), randomize=1.0, supersample=2)
    uv = DEFAULT_CAMERA.to_net_pixels(tt.numpy())
    cols, rows = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    inside = (cols >= 1) & (cols < 83) & (rows >= 1) & (rows < 83)
    centre = img.numpy()[np.arange(16), rows.clip(0, 83), cols.clip(0, 83)]
    target_grey = 255 * 0.114 / 255
    assert inside.sum() >= 8
    np.testing.assert_allclose(centre[inside], target_grey, atol=0.03)


def test_only_the_given_share_is_randomised():
    _, _, tt, qt = _scenes(64, seed=5)
    img = rr.render(tt, qt, torch.Generator().manual_seed(1), randomize=0.25, supersample=2)
    plain = rr.render(tt, qt, supersample=2)
    changed = ((img - plain).abs().flatten(1).max(dim=1).values > 1e-5).float().mean().item()
    assert 0.08 < changed < 0.45


def test_render_batch_labels_and_errors():
    images, omega = rr.render_batch(8, torch.Generator().manual_seed(0), randomize=0.5, supersample=2)
    assert images.shape == (8, 84, 84) and omega.shape == (8, 5)
    assert float(omega.min()) >= 0.0 and float(omega.max()) <= 1.0
    with pytest.raises(ValueError, match="Generator"):
        rr.render(torch.zeros(1, 2), torch.zeros(1, 3), randomize=0.5)


def test_distractor_bars_only_on_randomised_images_and_off_by_default():
    _, _, tt, qt = _scenes(32, seed=4)

    def img(**kw):
        return rr.render(tt, qt, torch.Generator().manual_seed(2), randomize=0.5, supersample=1, **kw)
    plain = rr.render(tt, qt, supersample=1)
    base = img()
    assert torch.equal(img(distractors=0.0), base)          # 0: the same stream, the same images
    bars = img(distractors=1.0)
    picked = (base - plain).abs().flatten(1).max(dim=1).values > 1e-5
    assert torch.equal(bars[~picked], plain[~picked])        # plain images stay plain
    assert bool(picked.any()) and not torch.equal(bars[picked], base[picked])
    # draw_bars itself: bars on the chosen images, none on the others, greys within [0, 1]
    cv = rr._Canvas(DEFAULT_CAMERA, 1, "cpu")
    gen = torch.Generator().manual_seed(0)

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)
    canvas = torch.full((64, 84, 84), 0.5)
    on = torch.arange(64) % 2 == 0
    out = rr.draw_bars(cv, canvas, u, on)
    assert torch.equal(out[~on], canvas[~on])
    assert float((out[on] != 0.5).float().mean()) > 0.02
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_near_share_puts_the_target_at_the_hand():
    def gap(near):
        t, q = rr.sample_scenes(4000, torch.Generator().manual_seed(3), near=near)
        return (t - rr.link_points(q)[:, 3]).norm(dim=1)
    assert float((gap(0.0) < 0.05).float().mean()) < 0.02
    assert float((gap(1.0) < 0.05).float().mean()) > 0.8 and float(gap(1.0).max()) < 0.12
    assert 0.35 < float((gap(0.5) < 0.05).float().mean()) < 0.55
    # near = 0 draws exactly what it drew before the option existed (same seeds, same scenes)
    a = rr.sample_scenes(16, torch.Generator().manual_seed(9))
    b = rr.sample_scenes(16, torch.Generator().manual_seed(9), near=0.0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    _, omega = rr.render_batch(64, torch.Generator().manual_seed(0), supersample=1, near=1.0)
    assert float(omega.min()) >= 0.0 and float(omega.max()) <= 1.0


def test_online_training_renders_fresh_batches(tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig(out=str(tmp_path / "run"), online=True, randomize=0.5, supersample=2,
                      online_pool=16, online_refresh=4, steps=4, batch=8, eval_every=2,
                      checkpoint_every=2, val_sim=8, warmup=1, near_target=0.25)
    metrics = train(cfg, progress=False)
    assert metrics["sim_images"] == 16 + 4 * 4   # the pool, then 4 fresh images a step
    assert (tmp_path / "run" / "model.pt").is_file()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["online"] is True and saved["randomize"] == 0.5


def test_scene_pool_renews_its_oldest_images_a_chunk_at_a_time():
    gen = torch.Generator().manual_seed(0)
    pool = rr.ScenePool(8, gen, randomize=0.5, supersample=1, chunk=4)
    assert pool.rendered == 8 and pool.images.dtype == torch.float16
    before = pool.omega.clone()
    pool.refresh(3)
    assert pool.rendered == 8 and torch.equal(pool.omega, before)   # not a chunk yet
    pool.refresh(1)
    assert pool.rendered == 12
    changed = (pool.omega != before).any(dim=1)
    assert changed[:4].all() and not changed[4:].any()              # the oldest four
    x, y = pool.sample(5)
    assert x.shape == (5, 84, 84) and x.dtype == torch.float32 and y.shape == (5, 5)
    with pytest.raises(ValueError):
        rr.ScenePool(0, gen)


def test_the_real_look_off_leaves_every_image_as_it_was():
    import torch
    from reach_core.randomized_renderer import render_batch
    a = render_batch(32, torch.Generator().manual_seed(5), randomize=0.7, distractors=0.3)
    b = render_batch(32, torch.Generator().manual_seed(5), randomize=0.7, distractors=0.3,
                     realism=0.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_real_look_images_are_valid_and_unlike_the_plain_randomised_ones():
    import torch
    from reach_core.randomized_renderer import render_batch
    plain, omega = render_batch(32, torch.Generator().manual_seed(6), randomize=1.0)
    real, omega_real = render_batch(32, torch.Generator().manual_seed(6), randomize=1.0,
                                    realism=1.0)
    assert torch.equal(omega, omega_real)          # the labels never change
    assert torch.isfinite(real).all() and real.min() >= 0 and real.max() <= 1
    assert (real - plain).abs().mean() > 0.05


def test_the_real_look_keeps_a_painted_target_at_its_nominal_place():
    import torch
    from reach_core.randomized_renderer import RealLook, _Canvas
    from reach_core.scene import DEFAULT_CAMERA
    cv = _Canvas(DEFAULT_CAMERA, 1, "cpu")
    gen = torch.Generator().manual_seed(0)

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)
    look = RealLook.draw(u, torch.ones(4, dtype=torch.bool), 1.0, 84)
    look.physical[:] = torch.tensor([False, False, True, True])
    target = torch.tensor([[0.5, 0.2]] * 4)
    shifted = lambda xy: cv.to_px(xy) + 6.0                                  # noqa: E731
    cov, _ = look._target(cv, target, shifted, torch.full((4,), cv.k))
    centres = torch.stack([(cov[i].nonzero().float().mean(0)).flip(0) + 0.5 for i in range(4)])
    nominal = cv.to_px(target[0])
    assert torch.allclose(centres[0], nominal, atol=0.6)
    assert (centres[2] - nominal).norm() > 4
