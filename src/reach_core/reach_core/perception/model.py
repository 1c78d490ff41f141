"""The perception network (paper section 4, "Network architecture") and the saved model around it.

:class:`PerceptionNet` maps an 84 x 84 grey image to the normalised 5-D Omega (architectures
``paper`` and ``spatial``: see the package docstring); :class:`PerceptionModel` is a trained
network with its metadata, the unit that is saved (``reach.perception/1``, through
:mod:`reach_core.checkpoints`), loaded and run, with optional test-time augmentation
(:func:`predict_shifted`).
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from ..checkpoints import (PERCEPTION_FORMAT, Checkpointable, CheckpointError, check_format, cpu_state,
                           load_weights, part_of)
from ..scene import DEFAULT_CAMERA, OMEGA_HIGH, OMEGA_LOW
from .config import NET_SIZE, ArchConfig

CHECKPOINT_FORMAT = PERCEPTION_FORMAT


class PerceptionCheckpointError(CheckpointError):
    """A perception checkpoint is missing, unreadable, or not a perception network."""


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
        """Expected keypoint coordinates of each channel's softmax."""
        b, c, h, w = x.shape
        attn = torch.softmax(x.reshape(b, c, h * w) / self.log_temperature.exp(), dim=-1)
        return (attn @ self.grid).reshape(b, 2 * c)


class PerceptionNet(nn.Module):
    """84 x 84 grey image (B, 1, 84, 84) or (B, 84, 84) -> Omega (B, 5)."""

    def __init__(self, cfg: ArchConfig = ArchConfig()):
        super().__init__()
        self.cfg = cfg
        bn = cfg.batchnorm

        def c(n):
            return max(1, int(round(n * cfg.width)))

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

    conv_dtype: torch.dtype | None = None   # training with --precision bf16: the convolutions' dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Omega_hat (B, 5) of images in [0, 1].  With ``conv_dtype`` set (mixed-precision
        training) the convolutions run under autocast in that dtype and the keypoints and head in
        float32, whose resolution the normalised Omega needs (bf16 has 8 bits of mantissa)."""
        if x.ndim == 3:
            x = x[:, None]
        x = (x - 0.5) * 4.0
        if self.conv_dtype is None:
            return self.head(self.features(x))
        with torch.autocast(x.device.type, dtype=self.conv_dtype, cache_enabled=False):   # graph-safe
            maps = self.features[:-1](x)
        return self.head(self.features[-1](maps.float()))


class PerceptionModel(Checkpointable):
    """A trained perception network: the unit that is saved, loaded and run.

    ``PerceptionModel.load(path)`` then ``predict(images)``: float32 (B, 84, 84) grey images in
    [0, 1] from :func:`reach_core.renderer.preprocess` -> (B, 5) float32 normalised Omega, clipped
    to [0, 1] (:func:`reach_core.scene.denormalise` gives metres and radians). ``tta`` > 0 turns
    on test-time augmentation (:func:`predict_shifted`: the median over the image shifted by up to
    ``tta`` pixels), over the shifts of ``tta_pattern`` (:func:`tta_shifts`: ``square``, the
    default here, ``cross`` or ``ring``, the perception node's :data:`DEPLOY_TTA_PATTERN`).
    """

    FORMAT = CHECKPOINT_FORMAT
    ERROR = PerceptionCheckpointError

    def __init__(self, net: PerceptionNet, meta: dict | None = None, tta: int = 0,
                 tta_pattern: str = "square"):
        self.net = net.eval()
        self.meta = dict(meta or {})
        self.tta = check_tta(tta)
        self.tta_pattern = check_tta_pattern(tta_pattern)

    @property
    def tool(self) -> str:
        """The tool point the network was trained for (its config's ``tool``; the paper's for
        models saved before tools were recorded)."""
        from ..kinematics import parse_tool
        return parse_tool((self.meta.get("config") or {}).get("tool")).name

    @property
    def arch(self) -> ArchConfig:
        """The network's architecture."""
        return self.net.cfg

    @torch.inference_mode()
    def predict(self, images) -> np.ndarray:
        """Normalised Omega (B, 5) in [0, 1] of float32 (B, 84, 84) images; a clear ValueError
        for anything else."""
        x = network_images(images)
        device = next(self.net.parameters()).device
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        out = predict_shifted(self.net, t, self.tta, pattern=self.tta_pattern).clamp_(0.0, 1.0)
        return out.cpu().numpy()

    def to(self, device) -> "PerceptionModel":
        """Move the network to ``device``."""
        self.net.to(device)
        return self

    def _payload(self) -> dict:
        return {"arch": asdict(self.net.cfg), "model": cpu_state(self.net)}

    @classmethod
    def from_checkpoint(cls, ckpt, source: str = "checkpoint", tta: int = 0) -> "PerceptionModel":
        """Rebuild a model from a loaded ``reach.perception/1`` dictionary, checking it fits; a
        combined end-to-end checkpoint (``reach.end2end/1``) gives its perception half."""
        ckpt, source = part_of(ckpt, "perception", source, PerceptionCheckpointError)
        check_format(ckpt, CHECKPOINT_FORMAT, source, "perception", PerceptionCheckpointError)
        try:
            arch = ArchConfig(**ckpt["arch"])
        except (KeyError, TypeError, ValueError) as err:
            raise PerceptionCheckpointError(f"{source} has a malformed architecture: {err}") from None
        net = PerceptionNet(arch)
        load_weights(net, ckpt, source, f"a {arch.arch} perception network", PerceptionCheckpointError)
        return cls(net, ckpt.get("meta", {}), tta=tta)


def network_images(images, what: str = "perception", finite: bool = True) -> np.ndarray:
    """The networks' input checked: float (B, 84, 84) grey images (one (84, 84) image is a batch
    of one) -> float32; a clear ValueError naming ``what`` for another shape, an integer type
    (uint8 frames not yet preprocessed) or, with ``finite``, NaN or infinity."""
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1:] != (NET_SIZE, NET_SIZE):
        raise ValueError(f"{what} input must be (B, {NET_SIZE}, {NET_SIZE}) grey images "
                         f"(reach_core.renderer.preprocess), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{what} input must be float32 in [0, 1], got {x.dtype} "
                         f"(use reach_core.renderer.preprocess on uint8 frames)")
    x = x.astype(np.float32, copy=False)
    if finite and not np.all(np.isfinite(x)):
        raise ValueError(f"{what} input contains NaN or infinity")
    return x


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


TTA_PATTERNS = ("square", "cross", "ring")
DEPLOY_TTA_PATTERN = "ring"   # the perception node's and the ONNX export's (docs/inference.md)


def check_tta_pattern(pattern) -> str:
    """A test-time augmentation pattern: one of :data:`TTA_PATTERNS`."""
    if pattern not in TTA_PATTERNS:
        raise ValueError(f"tta_pattern must be one of {', '.join(TTA_PATTERNS)}, got {pattern!r}")
    return pattern


def square_shifts(radius: int) -> list[tuple[int, int]]:
    """The (dy, dx) pixel shifts of test-time augmentation with ``radius``: every shift in
    -r..r on both axes, (2r + 1)^2 of them."""
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]


def tta_shifts(radius: int, pattern: str = "square") -> list[tuple[int, int]]:
    """The (dy, dx) shifts of test-time augmentation: ``square`` (:func:`square_shifts`),
    ``cross``, the unshifted image and the shifts by 1..r along each axis (4r + 1 copies; with
    r = 1 it keeps the EE2-FT's hifi error of the square's 9 copies with 5), or ``ring``, the
    cross without the unshifted image (4r copies; with r = 1 the same error with 4:
    bench/bench_tta_patterns.py). Radius 0: the image alone."""
    check_tta_pattern(pattern)
    if pattern == "square" or radius == 0:
        return square_shifts(radius)
    axes = [s for k in range(1, radius + 1) for s in ((-k, 0), (k, 0), (0, -k), (0, k))]
    return axes if pattern == "ring" else [(0, 0)] + axes


def median_of_copies(out: torch.Tensor) -> torch.Tensor:
    """The median over dim 0 (the copies): the middle value, or with an even number of copies
    the mean of the two middle ones (as ``np.median``; ``torch.median`` takes the lower). A sort,
    which ONNX has."""
    n = out.shape[0]
    ordered = out.sort(dim=0).values
    if n % 2:
        return ordered[n // 2]
    return 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def shift_offsets(shifts, camera=DEFAULT_CAMERA) -> np.ndarray:
    """(len(shifts), 5) float32: what a copy shifted by (dy, dx) pixels adds to the normalised
    Omega estimate (its target only: image u grows with target x and v shrinks with target y,
    Camera.to_pixels), to subtract before the median of the copies."""
    step = camera.m_per_net_px / (OMEGA_HIGH[:2] - OMEGA_LOW[:2])
    return np.array([[dx * step[0], -dy * step[1], 0.0, 0.0, 0.0] for dy, dx in shifts],
                    dtype=np.float32)


def predict_shifted(forward, x: torch.Tensor, radius: int, camera=DEFAULT_CAMERA,
                    shifts: list[tuple[int, int]] | None = None, pattern: str = "square") -> torch.Tensor:
    """Omega_hat of images ``x`` (B, 84, 84) with test-time augmentation: ``forward`` runs once on
    the copies of the batch shifted by ``tta_shifts(radius, pattern)`` (the square: (2r + 1)^2
    copies, each shifted by (dx, dy) in -r..r pixels; ``torch.roll``);
    each copy's target estimate is moved back by its shift, and the median over the copies is
    returned (B, 5). The median of shifted views damps the errors that depend on exactly where
    edges fall on the pixel grid: on the held-out hifi images r = 1 takes the adapted network
    from e 0.031 to 0.028 (bench/bench_perception.py). ``radius`` 0: ``forward(x)``. ``shifts``
    (a list of (dy, dx)) replaces the pattern's (bench/bench_tta_patterns.py)."""
    if shifts is None:
        shifts = tta_shifts(max(radius, 0), pattern)
    if list(shifts) == [(0, 0)]:
        return forward(x).float()
    out = forward(torch.cat([torch.roll(x, s, dims=(1, 2)) for s in shifts])).float()
    out = out.view(len(shifts), len(x), -1)
    out -= torch.from_numpy(shift_offsets(shifts, camera)).to(out.device)[:, None, :]
    return median_of_copies(out)


def predict_batched(model: PerceptionModel, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """:meth:`PerceptionModel.predict` over ``images`` in chunks of ``batch``."""
    return np.concatenate([model.predict(images[i:i + batch]) for i in range(0, len(images), batch)])
