"""The combined network (paper section 3.2): image -> perception -> Omega_hat -> control -> Q-values.

The *combined network* is built from a perception checkpoint (``reach.perception/1``) and a
control checkpoint (``reach.control/1``).  ``EndToEndModel.from_modules(perception, control)``
checks that they fit (file type, perception output = control input = 5, image size 84 x 84, the
DoF asked for) before anything runs; ``EndToEndModel.load(path)`` reads the combined checkpoint
(``reach.end2end/1``: both module checkpoints in one file, plus metadata), through the save/load
contract of :mod:`reach_core.checkpoints`.

Greedy action rule (same as :meth:`reach_core.control.ControlPolicy.act`): the argmax of the
Q-values among the *available* actions, computed from Omega_hat (the DoF's actions, no move of a
joint at a limit towards it, and with ``hold_only_at_target`` "unchanged" only when the predicted
end-effector to target distance is within delta).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoints import (CONTROL_FORMAT, END2END_FORMAT, KIND_OF_FORMAT, PERCEPTION_FORMAT, Checkpointable,
                           CheckpointError, check_format, format_of, load_checkpoint, part_of)
from ..control import ControlPolicy, QNetwork, available_actions, load_control, masked_argmax
from ..perception import NET_SIZE, PerceptionModel, PerceptionNet, predict_shifted
from ..perception.model import network_images
from ..simulator import NUM_ACTIONS, action_mask

CHECKPOINT_FORMAT = END2END_FORMAT


class EndToEndError(CheckpointError):
    """Module checkpoints that do not combine, or a combined checkpoint that cannot be read."""


class GradScale(torch.autograd.Function):
    """Identity forward; the gradient is multiplied by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = float(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class CombinedNet(nn.Module):
    """images (B, 84, 84) in [0, 1] -> (Q-values (B, 9), Omega_hat (B, 5), greedy action (B,))."""

    def __init__(self, perception: PerceptionNet, control: QNetwork, dof: int, hold_radius: float):
        super().__init__()
        self.perception = perception
        self.control = control
        self.register_buffer("dof_mask", torch.as_tensor(action_mask(dof)), persistent=False)
        self.hold_radius = float(hold_radius)

    def bottleneck(self, images: torch.Tensor) -> torch.Tensor:
        """Omega_hat, clipped to [0, 1] like :meth:`PerceptionModel.predict`."""
        return self.perception(images).clamp(0.0, 1.0)

    def forward(self, images: torch.Tensor):
        omega = self.bottleneck(images)
        q = self.control(omega)
        avail = available_actions(omega, self.dof_mask, self.hold_radius)
        return q, omega, masked_argmax(q, avail)


def _check_images(images) -> np.ndarray:
    return network_images(images, "end-to-end", finite=False)


class EndToEndModel(Checkpointable):
    """A combined network with its task: the unit that is saved, loaded, run and exported
    (``save(path)``, ``EndToEndModel.load(path, dof=None)``:
    :class:`reach_core.checkpoints.Checkpointable`)."""

    FORMAT = CHECKPOINT_FORMAT
    ERROR = EndToEndError

    def __init__(self, perception: PerceptionModel, control: ControlPolicy, meta: dict | None = None):
        self.perception = perception
        self.control = control
        self.task = control.task
        self.meta = dict(meta or {})
        self.net = CombinedNet(perception.net, control.net, self.task.dof, self.task.hold_radius).eval()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_modules(cls, perception_path, control_path, dof: int | None = None,
                     meta: dict | None = None) -> "EndToEndModel":
        """Combine a perception and a control checkpoint, with clear errors when they do not fit
        (end-to-end fine-tuning is for the paper's tool point only: docs/tool_point.md)."""
        perception = _load_module(perception_path, "perception")
        control = _load_module(control_path, "control", dof=dof)
        for path, tool in ((perception_path, getattr(perception, "tool", "paper")),
                           (control_path, control.task.tool)):
            if tool != "paper":
                raise EndToEndError(f"{path} is for the tool {tool}: end-to-end fine-tuning is for "
                                    f"the paper's tool point only (docs/tool_point.md)")
        model = cls(perception, control, {"perception": str(perception_path),
                                          "control": str(control_path), **(meta or {})})
        model.check()
        return model

    def check(self) -> None:
        """Perception output and control input are the 5-D Omega; images are 84 x 84."""
        p_out = _out_features(self.perception.net.head)
        c_in = self.control.net.trunk[0].in_features if len(self.control.net.trunk) else None
        if p_out != 5:
            raise EndToEndError(f"the perception network outputs {p_out} values, the bottleneck Omega has 5")
        try:
            with torch.no_grad():
                dev = next(self.net.parameters()).device
                q, omega, _ = self.net(torch.full((1, NET_SIZE, NET_SIZE), 0.5, device=dev))
        except RuntimeError as err:
            raise EndToEndError(f"the perception and control networks do not combine "
                                f"(control input {c_in}): {str(err).splitlines()[0]}") from None
        if q.shape != (1, NUM_ACTIONS):
            raise EndToEndError(f"the control network gives {tuple(q.shape)} Q-values, expected (1, 9)")

    @classmethod
    def from_checkpoint(cls, ckpt, source: str = "checkpoint", dof: int | None = None) -> "EndToEndModel":
        """Rebuild a combined model from a loaded ``reach.end2end/1`` dictionary, checking it fits."""
        check_format(ckpt, CHECKPOINT_FORMAT, source, "end-to-end", EndToEndError, _module_hint)
        try:
            perception = PerceptionModel.from_checkpoint(ckpt["perception"], f"{source} [perception]")
            control = ControlPolicy.from_checkpoint(ckpt["control"], f"{source} [control]", dof=dof)
        except KeyError as err:
            raise EndToEndError(f"{source} lacks its {err} module") from None
        model = cls(perception, control, ckpt.get("meta", {}))
        model.check()
        return model

    def _payload(self) -> dict:
        return {"perception": self.perception.checkpoint(), "control": self.control.checkpoint()}

    def to(self, device) -> "EndToEndModel":
        self.net.to(device)
        return self

    # ---------------------------------------------------------------- running
    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def perceive(self, images) -> np.ndarray:
        """Omega_hat of images, (B, 5) float32 (same as ``PerceptionModel.predict``, with its
        test-time augmentation when ``self.perception.tta`` > 0, over its ``tta_pattern``)."""
        x = torch.from_numpy(np.ascontiguousarray(_check_images(images))).to(self.device)
        out = predict_shifted(self.net.perception, x, self.perception.tta,
                              pattern=self.perception.tta_pattern)
        return out.clamp_(0.0, 1.0).cpu().numpy()

    @torch.no_grad()
    def act_omega(self, omega) -> np.ndarray:
        """Greedy available actions from (estimated) Omega: the control half."""
        x = torch.as_tensor(np.asarray(omega, np.float32), device=self.device)
        q = self.net.control(x)
        return masked_argmax(q, available_actions(x, self.net.dof_mask, self.net.hold_radius)).cpu().numpy()

    @torch.no_grad()
    def act(self, images) -> np.ndarray:
        """Greedy available actions of images (B, 84, 84)."""
        x = torch.from_numpy(np.ascontiguousarray(_check_images(images))).to(self.device)
        return self.net(x)[2].cpu().numpy()

    # ---------------------------------------------------------------- export
    def export(self, path, example_batch: int = 4) -> Path:
        """Write one TorchScript file (:func:`reach_core.end_to_end.export.export_torchscript`)."""
        from .export import export_torchscript
        return export_torchscript(self, path, example_batch)


def _module_hint(found) -> str:
    """What to do with a module checkpoint given where a combined one is expected."""
    if found in (PERCEPTION_FORMAT, CONTROL_FORMAT):
        return " (a module checkpoint: combine it with --perception and --control)"
    return ""


def _out_features(head: nn.Module) -> int:
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    return last.out_features


def load_module(path, kind: str, dof: int | None = None):
    """The ``kind`` ("perception" or "control") module at ``path``: its own checkpoint, or that
    half of a combined end-to-end checkpoint (e.g. the fine-tuned ``end2end_ee2ft.pt``, whose
    halves the ROS perception and controller nodes run).  A file of the other module's kind, or
    anything else, raises :class:`CheckpointError` naming what it is."""
    if kind not in ("perception", "control"):
        raise ValueError(f"kind must be 'perception' or 'control', got {kind!r}")
    if kind == "control":
        return load_control(path, dof=dof)
    ckpt = load_checkpoint(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT:
        return EndToEndModel.from_checkpoint(ckpt, str(path), dof=dof).perception
    return PerceptionModel.from_checkpoint(ckpt, str(path))


def _load_module(path, kind: str, dof: int | None = None):
    """Load one module checkpoint (or that half of a combined one), naming the slot and what the
    file really is on a mismatch."""
    try:
        ckpt, source = part_of(load_checkpoint(path), kind, str(path))
    except CheckpointError as err:
        raise EndToEndError(f"--{kind}: {err}") from None
    fmt = format_of(ckpt)
    want = PERCEPTION_FORMAT if kind == "perception" else CONTROL_FORMAT
    if fmt != want:
        what = KIND_OF_FORMAT.get(fmt, f"format {fmt!r}")
        raise EndToEndError(f"--{kind}: {source} is {what}, expected a {kind} checkpoint ({want}) "
                            "or a combined end-to-end one")
    try:
        if kind == "perception":
            return PerceptionModel.from_checkpoint(ckpt, source)
        return ControlPolicy.from_checkpoint(ckpt, source, dof=dof)
    except CheckpointError as err:
        raise EndToEndError(f"--{kind}: {err}") from None
