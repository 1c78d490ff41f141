"""Image augmentations and the regularisers of an adaptation with few real frames.

The paper's augmentations (:func:`augment`: rotation, translation, noise, brightness), domain
randomisation of simple-simulator images (:func:`randomize_background`), and, for real frames
whose robot pixels the labels give (:func:`robot_mask`), clutter pasted around the robot
(:func:`paste_clutter`) and backgrounds swapped between frames (:func:`swap_backgrounds`).
All take a ``torch.Generator`` and draw from it alone, so a training run is reproducible.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from ..scene import DEFAULT_CAMERA, OMEGA_HIGH, OMEGA_LOW
from .config import NET_SIZE, AugmentConfig


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """The paper's augmentations on (B, 84, 84) images: rotation, translation, brightness, noise.
    Labels are unchanged: they model a camera that moved, not a scene that changed.  ``cfg`` is an
    :class:`AugmentConfig`, or any settings with its four fields (a :class:`TrainConfig`)."""
    b = x.shape[0]
    dev = x.device

    def u(*shape):
        return torch.rand(*shape, device=dev, generator=gen) * 2 - 1

    if cfg.rotation or cfg.translation:
        ang = u(b) * math.radians(cfg.rotation)
        shift = u(b, 2) * (2.0 * cfg.translation / NET_SIZE)
        cos, sin = torch.cos(ang), torch.sin(ang)
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, (b, 1, NET_SIZE, NET_SIZE), align_corners=False)
        x = F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="border",
                          align_corners=False)[:, 0]
    if cfg.brightness:
        x = (x - 0.5) * (1 + cfg.brightness * u(b, 1, 1)) + 0.5 + cfg.brightness * u(b, 1, 1)
    if cfg.noise:
        x = x + cfg.noise * torch.randn(x.shape, device=dev, generator=gen)
    return x.clamp(0.0, 1.0)


def _luma(rgb) -> float:
    """The grey level in [0, 1] the camera pipeline gives an RGB colour."""
    from ..renderer import LUMA
    return float(np.dot(rgb, LUMA) / 255.0)


def randomize_background(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Domain randomisation of simple-simulator images (B, 84, 84): for a fraction ``prob`` of
    them, the plain background and the torso/pedestal greys are replaced by random ones (a smooth
    random field, up to 8 clutter rectangles in greys the target never has, a floor band), then
    contrast, gamma and Gaussian noise vary.  The arm and the target are left as drawn.  Pixels
    are recognised by their exact simulator grey, so anti-aliased edges keep their old mix."""
    from ..renderer import BACKGROUND_RGB, PEDESTAL_RGB, TORSO_RGB

    b, h, w = x.shape
    dev = x.device

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, device=dev, generator=gen)

    pick = u(b) < prob
    if not bool(pick.any()):
        return x
    bg = (x - _luma(BACKGROUND_RGB)).abs() < 0.004
    body = ((x - _luma(TORSO_RGB)).abs() < 0.004) | ((x - _luma(PEDESTAL_RGB)).abs() < 0.004)
    # background: base grey + smooth field + floor band + rectangles
    field = F.interpolate(u(b, 1, 4, 4, lo=-1, hi=1), size=(h, w), mode="bicubic",
                          align_corners=False)[:, 0]
    tex = u(b, 1, 1, lo=0.35, hi=0.95) + u(b, 1, 1, hi=0.2) * field
    rows = torch.arange(h, device=dev).view(1, h, 1).float()
    cols = torch.arange(w, device=dev).view(1, 1, w).float()
    floor = rows > u(b, 1, 1, lo=0.75 * h, hi=1.1 * h)
    tex = torch.where(floor, u(b, 1, 1, lo=0.2, hi=0.6).expand(b, h, w), tex)
    n_rect = (u(b) * 9).long()
    for k in range(8):
        x0, y0 = u(b, 1, 1, lo=-5, hi=w), u(b, 1, 1, lo=-5, hi=h)
        rw, rh = u(b, 1, 1, lo=2, hi=18), u(b, 1, 1, lo=2, hi=18)
        inside = (cols >= x0) & (cols < x0 + rw) & (rows >= y0) & (rows < y0 + rh)
        inside &= (k < n_rect).view(b, 1, 1)
        grey = u(b, 1, 1, lo=0.25, hi=1.0) + u(b, 1, 1, lo=-0.03, hi=0.03) * (rows - y0) / 10
        tex = torch.where(inside, grey, tex)
    out = torch.where(bg, tex, x)
    out = torch.where(body, (x + u(b, 1, 1, lo=-0.25, hi=0.25)), out)
    # camera: contrast, brightness, gamma, noise
    out = ((out - 0.5) * u(b, 1, 1, lo=0.8, hi=1.2) + 0.5 + u(b, 1, 1, lo=-0.08, hi=0.08)).clamp(0, 1)
    out = out ** u(b, 1, 1, lo=0.8, hi=1.25)
    out = out + u(b, 1, 1, hi=0.03) * torch.randn(out.shape, device=dev, generator=gen)
    return torch.where(pick.view(b, 1, 1), out.clamp(0, 1), x)


def robot_mask(omega: torch.Tensor, margin: int = 2, camera=DEFAULT_CAMERA, tool=None) -> torch.Tensor:
    """Pixels (B, 84, 84) bool of the robot (arm, torso, pedestal; the gripper to the tool point
    of ``tool``) and the target of scenes ``omega`` (B, 5, normalised) as the simulator draws
    them, grown by ``margin`` pixels: the part of a real frame that its labels speak for (the rest
    is background)."""
    from ..randomized_renderer import render
    from ..renderer import BACKGROUND_RGB

    low = torch.as_tensor(OMEGA_LOW, dtype=torch.float32, device=omega.device)
    span = torch.as_tensor(OMEGA_HIGH - OMEGA_LOW, dtype=torch.float32, device=omega.device)
    phys = low + omega.float() * span
    drawn = render(phys[:, :2], phys[:, 2:], camera=camera, supersample=1, tool=tool)
    mask = ((drawn - _luma(BACKGROUND_RGB)).abs() > 0.004).float()
    if margin > 0:
        mask = F.max_pool2d(mask[:, None], 2 * margin + 1, stride=1, padding=margin)[:, 0]
    return mask > 0


def paste_clutter(x: torch.Tensor, keep: torch.Tensor, prob: float, gen: torch.Generator,
                  max_boxes: int = 8, bars: float = 0.0) -> torch.Tensor:
    """For a fraction ``prob`` of the images ``x`` (B, 84, 84), paste up to ``max_boxes`` random
    boxes (2-18 px, a grey with a vertical shade) outside the pixels ``keep`` (the robot and
    target: :func:`robot_mask`), as clutter behind the robot.  A network adapted on a few hundred
    real frames otherwise memorises each frame by its background; labels stay valid since the
    robot and the target are never covered.  A share ``bars`` of the pasted images also gets
    bars at any angle (:func:`reach_core.randomized_renderer.draw_bars`), stopped at ``keep``."""
    b, h, w = x.shape
    dev = x.device

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, device=dev, generator=gen)

    pick = (u(b) < prob).view(b, 1, 1)
    rows = torch.arange(h, device=dev).view(1, h, 1).float()
    cols = torch.arange(w, device=dev).view(1, 1, w).float()
    n_box = (u(b) * (max_boxes + 1)).long()
    out = x
    for k in range(max_boxes):
        x0, y0 = u(b, 1, 1, lo=-5, hi=w), u(b, 1, 1, lo=-5, hi=h)
        bw, bh = u(b, 1, 1, lo=2, hi=18), u(b, 1, 1, lo=2, hi=18)
        inside = (cols >= x0) & (cols < x0 + bw) & (rows >= y0) & (rows < y0 + bh)
        inside &= (k < n_box).view(b, 1, 1) & pick & ~keep
        grey = u(b, 1, 1, lo=0.1, hi=1.0) + u(b, 1, 1, lo=-0.03, hi=0.03) * (rows - y0) / 10
        out = torch.where(inside, grey.clamp(0.0, 1.0), out)
    if bars > 0:
        from ..randomized_renderer import _Canvas, draw_bars
        on = pick.view(b) & (u(b) < bars)
        out = torch.where(keep, out, draw_bars(_Canvas(DEFAULT_CAMERA, 1, dev), out, u, on))
    return out


def swap_backgrounds(x: torch.Tensor, keep: torch.Tensor, prob: float, gen: torch.Generator,
                     fill_px: int = 15) -> torch.Tensor:
    """For a fraction ``prob`` of the images ``x`` (B, 84, 84), show their robot and target (the
    pixels ``keep``: :func:`robot_mask`) over the background of another image of the batch, whose
    own robot and target are filled in from the background around them (a box blur of
    ``fill_px`` normalised by the background pixels it covers).  Labels stay valid; the aim is
    that a few hundred real frames cannot be recognised by their background.  (On the hifi
    domain it did not lower the held-out error: the network memorises the frames by more than
    their background; README, "Perception module".)"""
    b = x.shape[0]
    dev = x.device
    pick = (torch.rand(b, device=dev, generator=gen) < prob).view(b, 1, 1)
    other = torch.randperm(b, device=dev, generator=gen)
    bg, bg_keep = x[other], keep[other]
    free = (~bg_keep).float()[:, None]
    pool = dict(kernel_size=fill_px, stride=1, padding=fill_px // 2, count_include_pad=False)
    num = F.avg_pool2d(bg[:, None] * free, **pool)
    den = F.avg_pool2d(free, **pool)
    mean = (bg[:, None] * free).sum((2, 3), keepdim=True) / free.sum((2, 3), keepdim=True).clamp_min(1.0)
    fill = torch.where(den > 1e-3, num / den.clamp_min(1e-3), mean)[:, 0]
    bg = torch.where(bg_keep, fill, bg)
    return torch.where(keep | ~pick, x, bg)
