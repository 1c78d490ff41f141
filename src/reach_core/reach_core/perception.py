"""The perception module (paper sections 3.1, 4 "Network architecture" and 5.1): image -> Omega.

The network maps an 84 x 84 grey image in [0, 1] (:func:`reach_core.renderer.preprocess`) to the
5-D scene configuration Omega = [target x, target y, s1, e1, w1] normalised to [0, 1], the
bottleneck shared with the control module.

Architectures (``arch``):

* ``"paper"``: 3 convolutional layers and 1 fully connected layer whose output is the bottleneck
  (the paper's Figure 1C).  The paper gives no layer sizes; we use those of the DQN it builds on
  (32 8x8/4, 64 4x4/2, 64 3x3/1, ReLU) and a linear FC 3136 -> 5.  Options: ``width`` (channel
  multiplier), ``batchnorm``, and ``fc_hidden`` (a hidden FC layer before the bottleneck).
* ``"spatial"``: a variant with spatial-softmax keypoints (Levine et al. 2016): three 3x3/5x5
  convolutions that keep a 42 x 42 map, a soft-argmax per channel giving K (x, y) keypoints, and
  an MLP from the keypoints to Omega.

The paper initialised the first convolution from ImageNet (GoogLeNet) weights; no such weights
can be downloaded here, so every layer starts from PyTorch's default random initialisation.

Training minimises the paper's quadratic loss (Eq. 2) with Adam and a cosine learning rate.  SIM
networks train from scratch on simulator images; adapted networks (P25-P100) start from a SIM
checkpoint and draw ``real_fraction`` of every mini-batch from a "real" dataset (here the
higher-fidelity MuJoCo domain, or robot images) and the rest from simulator images, with the
paper's augmentations (rotation, translation, noise, brightness) as options.  Regularisers for
adaptations with few real frames (a few hundred frames are otherwise memorised): clutter pasted
around the robot in real frames (``real_clutter``, :func:`paste_clutter`), each frame's robot
shown over another frame's background (``background_swap``, :func:`swap_backgrounds`), L2-SP, a
pull towards the starting weights (``l2sp``), and training only part of the network
(``adapt_part``, :func:`trainable_parameters`).  ``near_target`` puts a share of the scenes'
targets at the hand (:func:`reach_core.renderer.near_targets`), the frames that end every reach.

A checkpoint is a dictionary saved with ``torch.save`` (format ``reach.perception/1``) holding the
architecture, the weights and metadata; ``PerceptionModel.load(path)`` rebuilds it.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .control import CheckpointError, load_checkpoint, save_atomic
from .randomized_renderer import ScenePool
from .scene import DEFAULT_CAMERA, OMEGA_HIGH, OMEGA_LOW, OMEGA_NAMES

CHECKPOINT_FORMAT = "reach.perception/1"
NET_SIZE = DEFAULT_CAMERA.net_size
SIM_TEST_SEED = 400_2017     # the benchmark's simulator test images (never used in training)
SIM_VAL_SEED = 300_2017      # validation images seen during training
PAPER_TABLE1 = {  # net: (Sim mean, Sim std, Real mean, Real std)
    "SIM": (0.013, 0.009, 13.92, 0.877), "RW": (0.537, 0.191, 0.023, 0.046),
    "P25": (0.012, 0.008, 0.025, 0.044), "P50": (0.013, 0.008, 0.024, 0.045),
    "P75": (0.015, 0.010, 0.021, 0.046), "P100": (0.498, 0.162, 0.019, 0.049),
}


class PerceptionCheckpointError(CheckpointError):
    """A perception checkpoint is missing, unreadable, or not a perception network."""


# ----------------------------------------------------------------------------- networks
@dataclass
class ArchConfig:
    arch: str = "paper"          # "paper" or "spatial"
    width: float = 1.0           # channel multiplier
    batchnorm: bool = False
    fc_hidden: int = 0           # paper: hidden FC units before the bottleneck (0: none)
    keypoints: int = 32          # spatial: number of keypoints

    def __post_init__(self):
        if self.arch not in ("paper", "spatial"):
            raise ValueError(f"arch must be 'paper' or 'spatial', got {self.arch!r}")
        if self.width <= 0 or self.fc_hidden < 0 or self.keypoints < 1:
            raise ValueError(f"bad architecture sizes: {self}")


def _conv(cin, cout, k, s, p, bn):
    layers = [nn.Conv2d(cin, cout, k, s, p, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


class SpatialSoftmax(nn.Module):
    """Soft-argmax of each channel: (B, C, H, W) -> (B, 2C) expected (x, y) in [-1, 1]."""

    def __init__(self, height: int, width: int):
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width),
                                indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], 1),
                             persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        b, c, h, w = x.shape
        attn = torch.softmax(x.reshape(b, c, h * w) / self.log_temperature.exp(), dim=-1)
        return (attn @ self.grid).reshape(b, 2 * c)


class PerceptionNet(nn.Module):
    """84 x 84 grey image (B, 1, 84, 84) or (B, 84, 84) -> Omega (B, 5)."""

    def __init__(self, cfg: ArchConfig = ArchConfig()):
        super().__init__()
        self.cfg = cfg
        bn = cfg.batchnorm
        c = lambda n: max(1, int(round(n * cfg.width)))  # noqa: E731
        if cfg.arch == "paper":
            self.features = nn.Sequential(*_conv(1, c(32), 8, 4, 0, bn), *_conv(c(32), c(64), 4, 2, 0, bn),
                                          *_conv(c(64), c(64), 3, 1, 0, bn), nn.Flatten())
            flat = c(64) * 7 * 7
            if cfg.fc_hidden:
                self.head = nn.Sequential(nn.Linear(flat, cfg.fc_hidden), nn.ReLU(inplace=True),
                                          nn.Linear(cfg.fc_hidden, 5))
            else:
                self.head = nn.Linear(flat, 5)
        else:
            k = cfg.keypoints
            self.features = nn.Sequential(*_conv(1, c(32), 5, 2, 2, bn), *_conv(c(32), c(32), 3, 1, 1, bn),
                                          *_conv(c(32), c(32), 3, 1, 1, bn), nn.Conv2d(c(32), k, 3, 1, 1),
                                          SpatialSoftmax(42, 42))
            hidden = cfg.fc_hidden or 256
            self.head = nn.Sequential(nn.Linear(2 * k, hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                      nn.Linear(hidden, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x[:, None]
        return self.head(self.features((x - 0.5) * 4.0))


# ----------------------------------------------------------------------------- the model
class PerceptionModel:
    """A trained perception network: the unit that is saved, loaded and run.

    ``PerceptionModel.load(path)`` then ``predict(images)``: float32 (B, 84, 84) grey images in
    [0, 1] from :func:`reach_core.renderer.preprocess` -> (B, 5) float32 normalised Omega, clipped
    to [0, 1] (:func:`reach_core.scene.denormalise` gives metres and radians). ``tta`` > 0 turns
    on test-time augmentation (:func:`predict_shifted`: the median over the image shifted by up to
    ``tta`` pixels).
    """

    def __init__(self, net: PerceptionNet, meta: dict | None = None, tta: int = 0):
        self.net = net.eval()
        self.meta = dict(meta or {})
        self.tta = check_tta(tta)

    @property
    def arch(self) -> ArchConfig:
        return self.net.cfg

    @torch.inference_mode()
    def predict(self, images) -> np.ndarray:
        x = np.asarray(images)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (NET_SIZE, NET_SIZE):
            raise ValueError(f"perception input must be (B, {NET_SIZE}, {NET_SIZE}) grey images "
                             f"(reach_core.renderer.preprocess), got shape {x.shape}")
        if x.dtype != np.float32:
            if not np.issubdtype(x.dtype, np.floating):
                raise ValueError(f"perception input must be float32 in [0, 1], got {x.dtype} "
                                 f"(use reach_core.renderer.preprocess on uint8 frames)")
            x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError("perception input contains NaN or infinity")
        device = next(self.net.parameters()).device
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        out = predict_shifted(self.net, t, self.tta).clamp_(0.0, 1.0)
        return out.cpu().numpy()

    def to(self, device) -> "PerceptionModel":
        self.net.to(device)
        return self

    def checkpoint(self, **extra) -> dict:
        return {"format": CHECKPOINT_FORMAT, "arch": asdict(self.net.cfg),
                "model": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "meta": self.meta, **extra}

    def save(self, path, **extra) -> None:
        save_atomic(self.checkpoint(**extra), path)

    @classmethod
    def from_checkpoint(cls, ckpt, source: str = "checkpoint") -> "PerceptionModel":
        if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
            found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise PerceptionCheckpointError(
                f"{source} is not a reach perception checkpoint (format {found!r}, expected "
                f"{CHECKPOINT_FORMAT!r})")
        try:
            arch = ArchConfig(**ckpt["arch"])
        except (KeyError, TypeError, ValueError) as err:
            raise PerceptionCheckpointError(f"{source} has a malformed architecture: {err}") from None
        net = PerceptionNet(arch)
        try:
            net.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError, TypeError, AttributeError) as err:
            lines = str(err).strip().splitlines()
            raise PerceptionCheckpointError(
                f"{source}: weights do not fit a {arch.arch} perception network "
                f"({lines[1].strip() if len(lines) > 1 else lines[0]})") from None
        return cls(net, ckpt.get("meta", {}))

    @classmethod
    def load(cls, path, tta: int = 0) -> "PerceptionModel":
        try:
            ckpt = load_checkpoint(path)
        except PerceptionCheckpointError:
            raise
        except CheckpointError as err:
            raise PerceptionCheckpointError(str(err)) from None
        model = cls.from_checkpoint(ckpt, str(path))
        model.tta = check_tta(tta)
        return model


def check_tta(radius) -> int:
    """A test-time augmentation radius: an int in 0..3 (0: off)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or not 0 <= radius <= 3:
        raise ValueError(f"tta must be an integer shift radius in 0..3 pixels (0: off), got {radius!r}")
    return int(radius)


def trained_with_shifts(model: "PerceptionModel") -> bool:
    """Whether the network's last training stage saw shifted cameras (``--online --randomize``
    moves the camera +-3 px; ``--translation`` shifts the images): only such networks gain from
    test-time augmentation. One trained on plain simulator images alone reads a 1 px shift as a
    different scene (the shipped SIM network: e 0.005 -> 0.12 with ``tta`` 1)."""
    cfg = model.meta.get("config", {}) or {}
    return bool((cfg.get("online") and cfg.get("randomize", 0) > 0) or cfg.get("translation", 0) > 0)


def tta_for(model: "PerceptionModel", radius) -> int:
    """The test-time augmentation radius a model gets when ``radius`` is asked for: ``radius``
    for a network trained with camera shifts, 0 for one trained without (shifted images would
    mislead it: :func:`trained_with_shifts`)."""
    radius = check_tta(radius)
    return radius if radius and trained_with_shifts(model) else 0


def predict_shifted(forward, x: torch.Tensor, radius: int, camera=DEFAULT_CAMERA) -> torch.Tensor:
    """Omega_hat of images ``x`` (B, 84, 84) with test-time augmentation: ``forward`` runs once on
    (2r + 1)^2 copies of the batch, each shifted by (dx, dy) in -r..r pixels (``torch.roll``);
    each copy's target estimate is moved back by its shift, and the median over the copies is
    returned (B, 5). The median of shifted views damps the errors that depend on exactly where
    edges fall on the pixel grid: on the held-out hifi images r = 1 takes the adapted network
    from e 0.031 to 0.028 (bench/bench_perception.py). ``radius`` 0: ``forward(x)``."""
    if radius <= 0:
        return forward(x).float()
    shifts = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    out = forward(torch.cat([torch.roll(x, s, dims=(1, 2)) for s in shifts])).float()
    out = out.view(len(shifts), len(x), -1)
    # image u grows with target x and v shrinks with target y (Camera.to_pixels)
    step = camera.m_per_net_px / (OMEGA_HIGH[:2] - OMEGA_LOW[:2])
    back = torch.tensor([[dx * step[0], -dy * step[1]] for dy, dx in shifts], dtype=out.dtype,
                        device=out.device)
    out[:, :, :2] -= back[:, None, :]
    return out.median(dim=0).values


# ----------------------------------------------------------------------------- evaluation
def perception_errors(pred: np.ndarray, omega: np.ndarray, camera=DEFAULT_CAMERA) -> dict:
    """Table 1's e = ||Omega_hat - Omega|| (mean, std) and per-component errors in physical units."""
    pred = np.asarray(pred, np.float64)
    omega = np.asarray(omega, np.float64)
    e = np.linalg.norm(pred - omega, axis=1)
    phys = (pred - omega) * (OMEGA_HIGH - OMEGA_LOW)
    target_m = np.linalg.norm(phys[:, :2], axis=1)
    out = {
        "n": int(len(e)), "e_mean": float(e.mean()), "e_std": float(e.std()),
        "e_median": float(np.median(e)), "e_p95": float(np.percentile(e, 95)),
        "target_cm_mean": float(target_m.mean() * 100),
        "target_px_mean": float((target_m / camera.m_per_net_px).mean()),
        "target_px_median": float(np.median(target_m / camera.m_per_net_px)),
    }
    for j, name in enumerate(OMEGA_NAMES):
        if j < 2:
            out[f"{name}_cm_mae"] = float(np.abs(phys[:, j]).mean() * 100)
        else:
            out[f"{name}_deg_mae"] = float(np.degrees(np.abs(phys[:, j])).mean())
    return out, e


def predict_batched(model: PerceptionModel, images: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([model.predict(images[i:i + batch]) for i in range(0, len(images), batch)])


def evaluate_model(model: PerceptionModel, datasets: dict) -> tuple[dict, dict]:
    """{name: Dataset} -> ({name: metrics}, {name: per-image e})."""
    metrics, errors = {}, {}
    for name, ds in datasets.items():
        pred = predict_batched(model, ds.images)
        metrics[name], errors[name] = perception_errors(pred, ds.omega)
    return metrics, errors


def plot_errors(errors: dict, path, title: str = "") -> Path:
    """Figure 4 style: box plot of e per (network, dataset) and histograms."""
    from matplotlib.figure import Figure

    names = list(errors)
    fig = Figure(figsize=(11, 4.2), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.boxplot([errors[n] for n in names], sym="o", whis=1.5)
    ax1.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
    ax1.set_ylabel("perception error e = ||Ω̂ − Ω||")
    ax1.set_yscale("log")
    ax1.grid(alpha=0.3)
    allv = np.concatenate([np.asarray(errors[n]) for n in names])
    bins = np.logspace(np.log10(max(allv.min(), 1e-5)), np.log10(max(allv.max(), 1e-4)), 40)
    for n in names:
        ax2.hist(errors[n], bins=bins, histtype="step", lw=1.5, label=n)
    ax2.set_xscale("log")
    ax2.set_xlabel("e")
    ax2.set_ylabel("images")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(title or "perception error per dataset", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# ----------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    out: str = "runs/perception"
    arch: str = "paper"
    width: float = 1.0
    batchnorm: bool = False
    fc_hidden: int = 0
    keypoints: int = 32
    steps: int = 20000
    time_budget: float = 0.0      # seconds of training; if set, the LR schedule follows time and
                                  # training stops at the budget (or at ``steps``)
    batch: int = 256
    lr: float = 1e-3
    lr_final_fraction: float = 0.01
    warmup: int = 200
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    # simulator data: rendered in memory (sim_images, supersample) or a dataset folder (sim)
    sim_images: int = 100_000
    sim: str | None = None
    sim_limit: int | None = None  # use only the first sim_limit images of the ``sim`` folder
    supersample: int = 5
    workers: int = 1
    # adaptation
    adapt_from: str | None = None
    real: str | None = None
    real_fraction: float = 0.75
    virtual_targets: int = 1
    # augmentation (applied to real images; to simulator images too with augment_sim)
    rotation: float = 0.0         # degrees, uniform in +-rotation
    translation: float = 0.0      # pixels of the 84 x 84 image, uniform in +-translation
    noise: float = 0.0            # std of additive Gaussian noise (image in [0, 1])
    brightness: float = 0.0       # additive brightness and relative contrast, uniform in +-
    augment_sim: bool = False
    # regularisation of an adaptation with few real frames
    real_clutter: float = 0.0     # fraction of real images given random boxes pasted around the
                                  # robot (its pixels known from the labels: robot_mask)
    l2sp: float = 0.0             # weight of ||theta - theta_start||^2 (L2-SP, Li et al. 2018)
    adapt_part: str = "all"       # the layers trained: all; features (the head, features -> Omega,
                                  # frozen); early (the convolutions before the last feature layer)
    near_target: float = 0.0      # share of --online scenes and of virtual targets with the target
                                  # at the hand, as every reach ends (renderer.near_targets)
    clutter_margin: int = 2       # px around the robot (as drawn from the labels) that pasted
                                  # clutter keeps clear of and a background swap carries over
                                  # (the hifi camera moves by a few px)
    background_swap: float = 0.0  # share of real images whose robot and target are shown over the
                                  # background of another real frame (swap_backgrounds)
    distractors: float = 0.0      # share of randomised --online scenes and of clutter-pasted real
                                  # images also given bars at any angle behind the robot
                                  # (randomized_renderer.draw_bars)
    # domain randomisation of simulator images: this fraction of them gets a random background
    # (grey level, smooth shading, clutter rectangles, floor band), random body greys, contrast,
    # gamma and noise, so that SIM features do not rely on the simulator's plain look
    randomize: float = 0.0
    # online: no fixed simulator set; simulator images are scenes rendered on the training device
    # (reach_core.randomized_renderer, ``supersample`` samples per pixel) into a pool that fresh
    # scenes keep renewing, and ``randomize`` is the share of them given a random look
    online: bool = False
    online_pool: int = 65536      # images kept on the device (randomized_renderer.ScenePool)
    online_refresh: float = 32.0  # fresh images per step replacing the pool's oldest
    # monitoring
    val_sim: int = 1000
    val_real: str | None = None
    eval_every: int = 1000
    checkpoint_every: int = 2000
    target_e: float = 0.005
    command: str = ""

    def arch_config(self) -> ArchConfig:
        return ArchConfig(self.arch, self.width, self.batchnorm, self.fc_hidden, self.keypoints)


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The paper's augmentations on (B, 84, 84) images: rotation, translation, brightness, noise.
    Labels are unchanged: they model a camera that moved, not a scene that changed."""
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
    from .renderer import LUMA
    return float(np.dot(rgb, LUMA) / 255.0)


def randomize_background(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Domain randomisation of simple-simulator images (B, 84, 84): for a fraction ``prob`` of
    them, the plain background and the torso/pedestal greys are replaced by random ones (a smooth
    random field, up to 8 clutter rectangles in greys the target never has, a floor band), then
    contrast, gamma and Gaussian noise vary.  The arm and the target are left as drawn.  Pixels
    are recognised by their exact simulator grey, so anti-aliased edges keep their old mix."""
    from .renderer import BACKGROUND_RGB, PEDESTAL_RGB, TORSO_RGB

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


def robot_mask(omega: torch.Tensor, margin: int = 2, camera=DEFAULT_CAMERA) -> torch.Tensor:
    """Pixels (B, 84, 84) bool of the robot (arm, torso, pedestal) and the target of scenes
    ``omega`` (B, 5, normalised) as the simulator draws them, grown by ``margin`` pixels: the
    part of a real frame that its labels speak for (the rest is background)."""
    from .randomized_renderer import render
    from .renderer import BACKGROUND_RGB

    low = torch.as_tensor(OMEGA_LOW, dtype=torch.float32, device=omega.device)
    span = torch.as_tensor(OMEGA_HIGH - OMEGA_LOW, dtype=torch.float32, device=omega.device)
    phys = low + omega.float() * span
    drawn = render(phys[:, :2], phys[:, 2:], camera=camera, supersample=1)
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
        from .randomized_renderer import _Canvas, draw_bars
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


ADAPT_PARTS = ("all", "features", "early")


def trainable_parameters(net: PerceptionNet, part: str = "all") -> list:
    """The parameters an adaptation trains, the others frozen (``requires_grad`` off): ``all``;
    ``features``, all but the head (the map from features to Omega, which is the same in every
    domain, so that a few hundred real frames cannot be memorised there); ``early``, only the
    convolutions before the last feature layer (spatial: convolutions 1-3, not the keypoint maps;
    paper: convolutions 1-2)."""
    mods = list(net.features)
    if part == "all":
        keep = list(net.parameters())
    elif part == "features":
        keep = list(net.features.parameters())
    else:   # early: what comes before the last convolution (with its BatchNorm, if any)
        last = max(i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d))
        keep = [p for m in mods[:last] for p in m.parameters()]
    ids = {id(p) for p in keep}
    for p in net.parameters():
        p.requires_grad_(id(p) in ids)
    return keep


def lr_at(step: int, cfg: TrainConfig, elapsed: float | None = None) -> float:
    """Linear warm-up, then cosine decay to lr * lr_final_fraction over the steps (or over the
    time budget, given the training seconds elapsed)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.time_budget and elapsed is not None:
        t = min(1.0, elapsed / cfg.time_budget)
    else:
        t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    lo = cfg.lr * cfg.lr_final_fraction
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * t))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sim_data(cfg: TrainConfig):
    from .datasets import load_dataset, render_sim_net_images
    from .scene import normalise

    if cfg.sim:
        ds = load_dataset(cfg.sim, seed=cfg.seed, workers=max(4, cfg.workers), limit=cfg.sim_limit)
        return ds.images.astype(np.float16, copy=False), ds.omega
    t0 = time.perf_counter()
    images, target, q = render_sim_net_images(cfg.sim_images, seed=cfg.seed, supersample=cfg.supersample,
                                              workers=cfg.workers)
    _log(f"rendered {cfg.sim_images} simulator images in {time.perf_counter() - t0:.1f} s "
         f"({cfg.workers} workers, supersample {cfg.supersample})")
    return images, normalise(target, q)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          stop_at: int | None = None) -> dict | None:
    """Train (or adapt) a perception network; writes the run folder ``cfg.out``; returns metrics.

    ``stop_at`` stops after that many steps with a checkpoint but no final model, as an
    interrupted run would (``resume=True`` then continues it)."""
    from tqdm import tqdm

    from .datasets import load_dataset, sim_test_set

    for name in ("real_clutter", "background_swap", "distractors", "near_target"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} is a fraction in [0, 1], got {getattr(cfg, name)}")
    if not 0 <= cfg.clutter_margin <= 10:
        raise ValueError(f"--clutter-margin is 0..10 pixels, got {cfg.clutter_margin}")
    if not cfg.l2sp >= 0.0:
        raise ValueError(f"--l2sp must be >= 0, got {cfg.l2sp}")
    if cfg.adapt_part not in ADAPT_PARTS:
        raise ValueError(f"--adapt-part is one of {', '.join(ADAPT_PARTS)}, got {cfg.adapt_part!r}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is available to this torch")
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    t_data = time.perf_counter()
    sim_x, sim_y = _sim_data(cfg) if not cfg.online else (None, None)
    real = None
    if cfg.adapt_from and cfg.real:
        real = load_dataset(cfg.real, virtual_targets=cfg.virtual_targets, seed=cfg.seed,
                            workers=max(4, cfg.workers), near_target=cfg.near_target)
    elif cfg.real:
        raise ValueError("--real needs --adapt-from (a trained SIM network to adapt)")
    val = {"sim": sim_test_set(cfg.val_sim, SIM_VAL_SEED)} if cfg.val_sim else {}
    if cfg.val_real:
        val["real_val"] = load_dataset(cfg.val_real, seed=cfg.seed + 1)
    data_seconds = time.perf_counter() - t_data

    if cfg.adapt_from:
        base = PerceptionModel.load(cfg.adapt_from)
        net = base.net
        arch_note = f"{'adapted' if real is not None else 'continued'} from {cfg.adapt_from}"
        for f_ in ("arch", "width", "batchnorm", "fc_hidden", "keypoints"):
            setattr(cfg, f_, getattr(base.arch, f_))
    else:
        net = PerceptionNet(cfg.arch_config())
        arch_note = "from scratch (random initialisation)"
    net.to(device)
    trained = trainable_parameters(net, cfg.adapt_part)
    opt = torch.optim.Adam(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    step, progress_rows, elapsed, reached = 0, [], 0.0, None
    ckpt_path = out / "checkpoint.pt"
    if resume:
        ck = load_checkpoint(ckpt_path)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        step, progress_rows = ck["step"], ck["progress"]
        elapsed, reached = ck["elapsed"], ck.get("reached")
        _log(f"resuming {out} at step {step}")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")

    if not cfg.online:
        sim_xt = torch.from_numpy(np.ascontiguousarray(sim_x)).to(device)
        sim_yt = torch.from_numpy(np.ascontiguousarray(sim_y, dtype=np.float32)).to(device)
    else:
        pool = ScenePool(cfg.online_pool, gen, device, randomize=cfg.randomize,
                         supersample=cfg.supersample, near=cfg.near_target, distractors=cfg.distractors)
    n_real = 0
    if real is not None:
        real_xt = torch.from_numpy(real.images.astype(np.float16)).to(device)
        real_yt = torch.from_numpy(real.omega.astype(np.float32)).to(device)
        n_real = int(round(cfg.batch * cfg.real_fraction))
        if cfg.real_clutter or cfg.background_swap:
            real_keep = torch.cat([robot_mask(real_yt[i:i + 1024], margin=cfg.clutter_margin,
                                              camera=real.camera)
                                   for i in range(0, len(real_yt), 1024)])
    start = [p.detach().clone() for p in net.parameters()] if cfg.l2sp else None
    n_sim = cfg.batch - n_real
    params = sum(p.numel() for p in net.parameters())
    _log(f"perception {cfg.arch_config()} ({params} parameters), {arch_note}; "
         + (f"{len(sim_x)} simulator images" if not cfg.online else
            f"simulator scenes rendered on {device} ({cfg.randomize:.0%} randomised; a pool of "
            f"{cfg.online_pool} renewed by {cfg.online_refresh:g} a step)")
         + (f", {len(real)} real images ({cfg.real_fraction:.0%} of each batch)" if real else "")
         + f"; {cfg.steps} steps of {cfg.batch} on {device}")

    def evaluate_now():
        net.eval()
        model = PerceptionModel(net)
        res = {}
        for name, ds in val.items():
            pred = predict_batched(model, ds.images)
            res[name] = perception_errors(pred, ds.omega)[0]["e_mean"]
        net.train()
        return res

    def save_ckpt():
        save_atomic({"model": net.state_dict(), "optimizer": opt.state_dict(),
                     "generator": gen.get_state(), "step": step, "progress": progress_rows,
                     "elapsed": elapsed, "reached": reached, "config": asdict(cfg)}, ckpt_path)

    net.train()
    bar = tqdm(total=cfg.steps, initial=step, desc="train perception", unit="step",
               disable=not progress, file=sys.stderr, mininterval=2.0)
    loss_acc, loss_n = torch.zeros((), device=device), 0
    t_seg = time.perf_counter()
    now = elapsed
    while step < cfg.steps and not (cfg.time_budget and now >= cfg.time_budget):
        lr = lr_at(step, cfg, now)
        for g in opt.param_groups:
            g["lr"] = lr
        if cfg.online:
            pool.refresh(cfg.online_refresh)
            x, y = pool.sample(n_sim)
        else:
            idx = torch.randint(len(sim_xt), (n_sim,), device=device, generator=gen)
            x, y = sim_xt[idx].float(), sim_yt[idx]
            if cfg.randomize:
                x = randomize_background(x, cfg.randomize, gen)
        if cfg.augment_sim:
            x = augment(x, cfg, gen)
        if n_real:
            ridx = torch.randint(len(real_xt), (n_real,), device=device, generator=gen)
            xr = real_xt[ridx].float()
            if cfg.background_swap:
                xr = swap_backgrounds(xr, real_keep[ridx], cfg.background_swap, gen)
            if cfg.real_clutter:
                xr = paste_clutter(xr, real_keep[ridx], cfg.real_clutter, gen, bars=cfg.distractors)
            xr = augment(xr, cfg, gen)
            x, y = torch.cat([x, xr]), torch.cat([y, real_yt[ridx]])
        loss = 0.5 * ((net(x) - y) ** 2).sum(dim=1).mean()   # Eq. 2
        if start is not None:
            loss = loss + cfg.l2sp * sum(((p - p0) ** 2).sum()
                                         for p, p0 in zip(net.parameters(), start))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_acc += loss.detach()
        loss_n += 1
        step += 1
        bar.update(1)
        now = elapsed + time.perf_counter() - t_seg
        last = step == cfg.steps or bool(cfg.time_budget and now >= cfg.time_budget)
        if step % cfg.eval_every == 0 or last:
            mean_loss = float(loss_acc) / loss_n
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - t_seg
            ev = evaluate_now()
            t_seg = time.perf_counter()
            now = elapsed
            row = {"step": step, "loss": mean_loss, "lr": lr,
                   "train_seconds": round(elapsed, 3),
                   "images_per_s": round(step * cfg.batch / max(elapsed, 1e-9), 1),
                   **{f"e_{k}": v for k, v in ev.items()}}
            if reached is None and ev.get("sim", 1.0) <= cfg.target_e and real is None:
                reached = {"step": step, "train_seconds": round(elapsed, 2)}
            progress_rows.append(row)
            loss_acc, loss_n = torch.zeros((), device=device), 0
            bar.set_postfix(loss=f"{mean_loss:.2e}", **{f"e_{k}": f"{v:.4f}" for k, v in ev.items()})
            if step % cfg.checkpoint_every < cfg.eval_every or last:
                save_ckpt()
        if stop_at is not None and step >= stop_at:
            save_ckpt()
            bar.close()
            return None
    bar.close()

    model = PerceptionModel(net.eval(), {
        "kind": "adapted" if real is not None else "sim", "config": asdict(cfg),
        "steps": step, "train_seconds": round(elapsed, 2)})
    model.to("cpu")
    _write_progress(out, progress_rows)
    metrics = {
        "steps": step, "batch": cfg.batch, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": str(torch.__version__), "train_seconds": round(elapsed, 2),
        "data_seconds": round(data_seconds, 2),
        "images_per_s": round(step * cfg.batch / max(elapsed, 1e-9), 1),
        "parameters": params, "final": progress_rows[-1] if progress_rows else {},
        "reached_target": reached, "target_e": cfg.target_e,
        "sim_images": len(sim_x) if not cfg.online else pool.rendered,
        "real_images": len(real) if real is not None else 0,
        "real_frames": len(set(real.files)) if real is not None else 0,
        "real_frames_skipped": len(real.skipped) if real is not None else 0,
        "command": cfg.command,
    }
    model.meta["metrics"] = metrics
    model.save(out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    try:
        plot_progress(progress_rows, out / "loss_curve.png", title=f"{out.name}: {arch_note}")
    except Exception as err:  # a plot is never worth losing a run for
        _log(f"warning: could not plot the loss curve: {err}")
    _log(f"wrote {out}/model.pt; final {progress_rows[-1] if progress_rows else {}}")
    return metrics


def _write_progress(out: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "progress.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        w.writerows(rows)


def plot_progress(rows: list[dict], path, title: str = "") -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    steps = [r["step"] for r in rows]
    ax1.plot(steps, [r["loss"] for r in rows], label="training loss (Eq. 2)")
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for key in [k for k in rows[0] if k.startswith("e_")]:
        ax2.plot(steps, [r.get(key, np.nan) for r in rows], label=f"validation {key[2:]}")
    ax2.axhline(0.005, color="k", ls=":", lw=1, label="e = 0.005")
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("mean e")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


# ----------------------------------------------------------------------------- CLI
def _cmd_train(args: argparse.Namespace) -> int:
    from .datasets import DatasetError

    if args.resume:
        cfg_path = Path(args.out) / "config.json"
        if not cfg_path.is_file():
            print(f"error: --resume: no {cfg_path}", file=sys.stderr)
            return 2
        cfg = TrainConfig(**json.loads(cfg_path.read_text()))
        if args.steps is not None:
            cfg.steps = args.steps
        if args.time_budget is not None:
            cfg.time_budget = args.time_budget
        if args.device is not None:
            cfg.device = args.device
    else:
        names = {f.name for f in fields(TrainConfig)}
        vals = {k: v for k, v in vars(args).items() if k in names and v is not None}
        cfg = TrainConfig(**vals)
    argv = getattr(args, "argv", None)
    cfg.command = "reach " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if cfg.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but this torch sees no CUDA GPU", file=sys.stderr)
        return 2
    try:
        cfg.arch_config()
        train(cfg, resume=args.resume, progress=not args.no_progress)
    except (CheckpointError, DatasetError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .datasets import DatasetError, load_dataset, sim_test_set

    try:
        models = {}
        for spec in args.model:
            name, _, path = spec.partition("=") if "=" in spec else (Path(spec).stem, "", spec)
            models[name] = PerceptionModel.load(path, tta=args.tta)
        data = {}
        if args.sim_test:
            data["sim"] = sim_test_set(args.sim_test, args.sim_seed)
        for spec in args.dataset or []:
            name, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
            data[name] = load_dataset(path, seed=args.sim_seed)
    except (CheckpointError, DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not data:
        print("error: nothing to evaluate on (give --sim-test N and/or --dataset DIR)", file=sys.stderr)
        return 2
    results, all_errors = {}, {}
    for mname, model in models.items():
        metrics, errors = evaluate_model(model, data)
        results[mname] = metrics
        for dname, e in errors.items():
            all_errors[f"{mname} / {dname}"] = e
    print_table(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        plot_errors(all_errors, args.plot, "perception error e (Figure 4 style)")
        print(f"wrote {args.plot}")
    return 0


def print_table(results: dict) -> None:
    """Table 1 style: rows networks, columns datasets (mean and std of e), then details."""
    dnames = list(dict.fromkeys(d for m in results.values() for d in m))
    head = f"{'network':<22}" + "".join(f"{d[:18]:>22}" for d in dnames)
    print(head + "\n" + " " * 22 + "".join(f"{'e_mean':>11}{'e_std':>11}" for _ in dnames))
    for mname, m in results.items():
        print(f"{mname[:21]:<22}" + "".join(
            f"{m[d]['e_mean']:>11.4f}{m[d]['e_std']:>11.4f}" if d in m else " " * 22 for d in dnames))
    print("\nper component (mean absolute error): target in cm and 84x84 px, joints in degrees")
    for mname, m in results.items():
        for d, r in m.items():
            print(f"  {mname} / {d} (n={r['n']}): target {r['target_cm_mean']:.2f} cm = "
                  f"{r['target_px_mean']:.3f} px (x {r['target_x_cm_mae']:.2f}, y "
                  f"{r['target_y_cm_mae']:.2f} cm); s1 {r['left_s1_deg_mae']:.2f}, e1 "
                  f"{r['left_e1_deg_mae']:.2f}, w1 {r['left_w1_deg_mae']:.2f} deg")


def add_train_cli(sub) -> None:
    p = sub.add_parser(
        "perception", help="train a perception network (SIM from scratch, or adapt with real images)",
        description="Train the perception network (84x84 grey image -> normalised Omega) on "
                    "simulator images rendered in memory (SIM), or adapt a trained network with "
                    "a fraction of real images in every mini-batch (P25-P100: --adapt-from "
                    "--real --real-fraction).  Writes config.json, checkpoint.pt (resume), "
                    "model.pt, progress.csv, metrics.json and loss_curve.png into --out.")
    d = TrainConfig()
    a = p.add_argument
    a("--out", default=None, help="run folder (default: runs/perception)")
    a("--resume", action="store_true", help="continue the run in --out (optionally to new --steps)")
    a("--arch", choices=("paper", "spatial"), default=None,
      help="paper: 3 conv + 1 FC (default); spatial: spatial-softmax keypoints variant")
    a("--width", type=float, default=None, help="channel multiplier (default 1)")
    a("--batchnorm", action="store_true", default=None, help="batch normalisation after each conv")
    a("--fc-hidden", type=int, default=None, help="hidden FC units before the bottleneck (default 0)")
    a("--keypoints", type=int, default=None, help=f"spatial: keypoints (default {d.keypoints})")
    a("--steps", type=int, default=None, help=f"update steps (default {d.steps})")
    a("--time-budget", type=float, default=None,
      help="training seconds: the cosine LR follows time and training stops there (or at --steps)")
    a("--batch", type=int, default=None, help=f"mini-batch size (default {d.batch})")
    a("--lr", type=float, default=None, help=f"Adam learning rate, cosine-decayed (default {d.lr})")
    a("--lr-final-fraction", type=float, default=None, help="final LR / initial LR (default 0.01)")
    a("--warmup", type=int, default=None, help=f"linear warm-up steps (default {d.warmup})")
    a("--weight-decay", type=float, default=None)
    a("--seed", type=int, default=None, help="seed of scenes, initialisation and batches (default 0)")
    a("--device", default=None, help="cpu (default), cuda, cuda:1, ...")
    a("--sim-images", type=int, default=None,
      help=f"simulator images rendered in memory (default {d.sim_images})")
    a("--sim", default=None, help="use this simulator dataset folder instead of rendering")
    a("--sim-limit", type=int, default=None, help="use only the first N images of --sim")
    a("--supersample", type=int, default=None,
      help="renderer supersampling of in-memory and --online images (default 5: the camera "
           "pipeline's pixels; 2 is close enough with --online and 2.8x cheaper)")
    a("--workers", type=int, default=None, help="rendering processes (default 1)")
    a("--adapt-from", default=None, help="perception checkpoint to start from: adapted with --real "
      "(P25-P100), or trained on simulator images alone (a SIM run continued)")
    a("--real", default=None, help="dataset folder of real (or higher-fidelity) images")
    a("--real-fraction", type=float, default=None, help="fraction of real images per batch (0.75)")
    a("--virtual-targets", type=int, default=None,
      help="uses of each real frame with a random virtual target (datasets with target: virtual)")
    a("--rotation", type=float, default=None, help="augmentation: rotation, +- degrees")
    a("--translation", type=float, default=None, help="augmentation: translation, +- 84x84 pixels")
    a("--noise", type=float, default=None, help="augmentation: Gaussian noise std (image in [0, 1])")
    a("--brightness", type=float, default=None, help="augmentation: brightness/contrast, +-")
    a("--augment-sim", action="store_true", default=None, help="augment simulator images too")
    a("--real-clutter", type=float, default=None,
      help="adaptation: fraction of real images given random boxes pasted around the robot "
           "(whose pixels the labels give), so that few frames are not memorised by background")
    a("--near-target", type=float, default=None,
      help="share of --online simulator scenes and of virtual targets with the target disc at the "
           "hand, as every reach ends (default 0)")
    a("--clutter-margin", type=int, default=None,
      help="adaptation: pixels around the robot (drawn from the labels) that --real-clutter keeps "
           "clear of and --background-swap carries over (default 2; the hifi domain's clutter that "
           "touches the arm costs it most)")
    a("--background-swap", type=float, default=None,
      help="adaptation: fraction of real images whose robot and target (pixels the labels give) "
           "are shown over another real frame's background, its own robot filled in (default 0)")
    a("--distractors", type=float, default=None,
      help="share of randomised --online simulator scenes (and of --real-clutter images) also given "
           "bars at any angle behind the robot, like the hifi domain's background boxes (default 0)")
    a("--adapt-part", choices=ADAPT_PARTS, default=None,
      help="layers trained: all (default); features (the head from features to Omega frozen); "
           "early (only the convolutions before the last feature layer)")
    a("--l2sp", type=float, default=None,
      help="adaptation: weight of the squared distance to the starting weights (L2-SP)")
    a("--randomize", type=float, default=None,
      help="domain randomisation: fraction of simulator images given a random background, "
           "body greys, contrast, gamma and noise (default 0)")
    a("--online", action="store_true", default=None,
      help="simulator scenes rendered on --device as training goes (no fixed set; "
           "reach_core.randomized_renderer: a pool renewed every step); --randomize is then the "
           "share given a random look (camera pose, background, clutter, robot greys and widths, "
           "shading, blur, noise)")
    a("--online-pool", type=int, default=None,
      help=f"--online: images kept on the device (default {d.online_pool})")
    a("--online-refresh", type=float, default=None,
      help=f"--online: fresh images per step replacing the oldest (default {d.online_refresh:g})")
    a("--val-sim", type=int, default=None, help=f"simulator validation images (default {d.val_sim})")
    a("--val-real", default=None, help="dataset folder monitored during training (not used to select)")
    a("--eval-every", type=int, default=None, help=f"steps between validations ({d.eval_every})")
    a("--checkpoint-every", type=int, default=None, help=f"steps between checkpoints ({d.checkpoint_every})")
    a("--target-e", type=float, default=None, help="record when the simulator validation e first "
      "reaches this (default 0.005)")
    a("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def add_eval_cli(sub) -> None:
    p = sub.add_parser(
        "perception", help="perception error e per dataset (Table 1) and a Figure 4 style plot",
        description="Evaluate perception networks: e = ||Omega_hat - Omega|| (mean, std) per "
                    "dataset as in Table 1, per-component errors (cm, 84x84 px, degrees), and a "
                    "box plot / histogram PNG.")
    p.add_argument("--model", action="append", required=True,
                   help="checkpoint, or NAME=checkpoint; repeat for several networks")
    p.add_argument("--sim-test", type=int, default=400,
                   help="simulator test images, rendered through the camera pipeline (default 400, "
                        "as in the paper; 0 for none)")
    p.add_argument("--sim-seed", type=int, default=SIM_TEST_SEED,
                   help=f"seed of the simulator test scenes (default {SIM_TEST_SEED})")
    p.add_argument("--dataset", action="append", help="dataset folder, or NAME=folder; repeatable")
    p.add_argument("--tta", type=int, default=0,
                   help="test-time augmentation: the median over the image shifted by up to this "
                        "many pixels (0..3; default 0: off)")
    p.add_argument("--json", default=None, help="write the metrics to this JSON file")
    p.add_argument("--plot", default=None, help="write the box plot / histogram PNG here")
    p.set_defaults(func=_cmd_eval)
