"""End-to-end: the combined network (paper sections 3.2 and 5.3, Eq. 4, Table 3).

The *combined network* is image -> perception -> Omega_hat (the 5-D bottleneck) -> control ->
9 Q-values, built from a perception checkpoint (``reach.perception/1``) and a control checkpoint
(``reach.control/1``).  ``EndToEndModel.from_modules(perception, control)`` checks that they fit
(file type, perception output = control input = 5, image size 84 x 84, the DoF asked for) before
anything runs; ``EndToEndModel.load(path)`` reads the combined checkpoint (``reach.end2end/1``:
both module checkpoints in one file, plus metadata).

Greedy action rule (same as :meth:`reach_core.control.ControlPolicy.act`): the argmax of the
Q-values among the *available* actions, computed from Omega_hat (the DoF's actions, no move of a
joint at a limit towards it, and with ``hold_only_at_target`` "unchanged" only when the predicted
end-effector to target distance is within delta).

**TorchScript export** (:meth:`EndToEndModel.export`, ``reach export end2end``): one file that
``torch.jit.load`` opens without reach_core.  Its ``forward(images)`` takes float32 images
``(B, 84, 84)`` in [0, 1] (:func:`reach_core.renderer.preprocess` of the camera frames: ROI crop,
BT.601 grey, area resize) and returns a tuple ``(q_values (B, 9), omega_hat (B, 5), action (B,))``:
Omega_hat clipped to [0, 1] as :meth:`PerceptionModel.predict` does, the Q-values of the control
network on it, and the greedy available action described above (int64).  The file also holds
``meta.json`` (``torch.jit.load(path, _extra_files={"meta.json": ""})``): DoF, task, input spec,
the module sources and the fine-tuning metrics.

**Weighted end-to-end fine-tuning** (Eq. 4, :func:`finetune`, ``reach train end2end``): the
control network is updated with the task loss Lq only (the DQN loss of Eq. 3 with Omega replaced
by the image); the perception network with beta * Lp + (1 - beta) * Lq_BN, where Lq_BN is Lq's
gradient arriving at the bottleneck.  One backward pass of ``Lq + beta * Lp`` does it: a gradient
scaler between perception and control (:class:`GradScale`, identity forward, gradient times
1 - beta backward) leaves the control network's gradient as dLq and gives the perception network
(1 - beta) dLq_BN + beta dLp.  The task mini-batch (64) comes from a replay memory of K-GPS guided
transitions (epsilon 0.1) whose images are rendered by the simulator renderer; the perception
mini-batch (256) mixes ``real_fraction`` (default 75 %) real-domain images (here the
higher-fidelity domain) with simulator images.  ``naive=True`` is the baseline the paper reports
to fail: Lq only, into both networks (beta = 0, no perception batch).
"""
from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import (CONTROL_FORMAT, END2END_FORMAT, KIND_OF_FORMAT, PERCEPTION_FORMAT, Checkpointable,
                          CheckpointError, check_format, load_checkpoint)
from .control import ControlPolicy, QNetwork, available_actions, load_control, masked_argmax
from .perception import (NET_SIZE, PerceptionModel, PerceptionNet, check_tta, predict_shifted,
                         tta_for)
from .scene import DEFAULT_CAMERA, denormalise, normalise
from .simulator import NUM_ACTIONS, ReachEnv, TaskConfig, action_mask, success_bonus

CHECKPOINT_FORMAT = END2END_FORMAT
FINETUNE_EVAL_SEED = 5_2017     # periodic evaluation during fine-tuning (never the benchmark's)
PAPER_TABLE3 = {  # (scenario, net): (d_med cm, d_med px, d_Q3 cm, d_Q3 px, R-bar)
    ("sim", "EE1"): (4.7, 2.0, 6.7, 2.8, 0.313), ("sim", "EE2"): (4.6, 1.9, 6.2, 2.6, 0.319),
    ("sim", "EE2-FT"): (3.6, 1.5, 4.8, 2.0, 0.626), ("sim", "CR"): (3.4, 1.4, 4.3, 1.8, 0.761),
    ("hifi", "EE1"): (41.8, 17.5, 80.2, 33.6, -0.050), ("hifi", "EE2"): (4.6, 1.9, 6.2, 2.6, 0.219),
    ("hifi", "EE2-FT"): (3.7, 1.6, 5.2, 2.2, 0.628), ("hifi", "CR"): (3.2, 1.3, 4.3, 1.8, 0.781),
}


class EndToEndError(CheckpointError):
    """Module checkpoints that do not combine, or a combined checkpoint that cannot be read."""


# ----------------------------------------------------------------------------- the network
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
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1:] != (NET_SIZE, NET_SIZE):
        raise ValueError(f"end-to-end input must be (B, {NET_SIZE}, {NET_SIZE}) grey images in [0, 1] "
                         f"(reach_core.renderer.preprocess), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"end-to-end input must be float32 in [0, 1], got {x.dtype} "
                         "(use reach_core.renderer.preprocess on uint8 frames)")
    return x.astype(np.float32, copy=False)


class EndToEndModel(Checkpointable):
    """A combined network with its task: the unit that is saved, loaded, run and exported
    (``save(path)``, ``EndToEndModel.load(path, dof=None)``: :class:`reach_core.checkpoints.Checkpointable`)."""

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
        """Combine a perception and a control checkpoint, with clear errors when they do not fit."""
        perception = _load_module(perception_path, "perception")
        control = _load_module(control_path, "control", dof=dof)
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
        def hint(found):
            if found in (PERCEPTION_FORMAT, CONTROL_FORMAT):
                return " (a module checkpoint: combine it with --perception and --control)"
            return ""

        check_format(ckpt, CHECKPOINT_FORMAT, source, "end-to-end", EndToEndError, hint)
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
        test-time augmentation when ``self.perception.tta`` > 0)."""
        x = torch.from_numpy(np.ascontiguousarray(_check_images(images))).to(self.device)
        return predict_shifted(self.net.perception, x, self.perception.tta).clamp_(0.0, 1.0).cpu().numpy()

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
        """Write one TorchScript file (``torch.jit.trace``); see the module docstring."""
        net = copy.deepcopy(self.net).cpu().eval()
        for p in net.parameters():     # an inference file: outputs need no autograd graph
            p.requires_grad_(False)
        example = torch.rand(example_batch, NET_SIZE, NET_SIZE)
        import warnings
        with torch.no_grad(), warnings.catch_warnings():
            # the constants it warns about (link lengths, Omega ranges) are constants indeed
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)   # torch >= 2.9 on torch.jit
            traced = torch.jit.trace(net, example, check_trace=False)
            # a trace is one path through the code: check that it generalises to another batch
            other = torch.rand(example_batch + 3, NET_SIZE, NET_SIZE)
            for a, b in zip(traced(other), net(other)):
                if not torch.allclose(a.float(), b.float(), atol=1e-5):
                    raise RuntimeError("the traced network differs from the eager one on another batch")
        meta = {"format": "reach.end2end.torchscript/1",
                "input": f"float32 (B, {NET_SIZE}, {NET_SIZE}) grey in [0, 1] "
                         "(reach_core.renderer.preprocess: ROI crop, BT.601 grey, area resize)",
                "output": "(q_values (B, 9), omega_hat (B, 5) in [0, 1], action (B,) int64: greedy "
                          "among available actions)",
                "dof": self.task.dof, "task": self.task.as_dict(),
                "camera": DEFAULT_CAMERA.as_dict(), "meta": self.meta}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(traced, str(tmp), _extra_files={"meta.json": json.dumps(meta, default=str)})
        os.replace(tmp, path)
        return path


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
    """Load one module checkpoint, naming the slot and what the file really is on a mismatch."""
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        raise EndToEndError(f"--{kind}: {err}") from None
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    want = PERCEPTION_FORMAT if kind == "perception" else CONTROL_FORMAT
    if fmt != want:
        what = KIND_OF_FORMAT.get(fmt, f"format {fmt!r}")
        raise EndToEndError(f"--{kind}: {path} is {what}, expected a {kind} checkpoint ({want})")
    try:
        if kind == "perception":
            return PerceptionModel.from_checkpoint(ckpt, str(path))
        return ControlPolicy.from_checkpoint(ckpt, str(path), dof=dof)
    except CheckpointError as err:
        raise EndToEndError(f"--{kind}: {err}") from None


# ----------------------------------------------------------------------------- observation
def occluder_boxes(n: int, target_px: np.ndarray, rng: np.random.Generator, count: int = 2):
    """``count`` random grey boxes per trial in 84 x 84 image coordinates, kept off the target disc:
    (n, count, 5) of x0, y0, w, h, grey."""
    boxes = np.zeros((n, count, 5))
    for i in range(n):
        for k in range(count):
            for _ in range(100):
                w, h = rng.uniform(8, 18, 2)
                x0, y0 = rng.uniform(0, NET_SIZE - w), rng.uniform(0, NET_SIZE - h)
                cx = np.clip(target_px[i, 0], x0, x0 + w)
                cy = np.clip(target_px[i, 1], y0, y0 + h)
                if math.hypot(cx - target_px[i, 0], cy - target_px[i, 1]) > 6.0:
                    break
            boxes[i, k] = (x0, y0, w, h, rng.uniform(0.1, 0.9))
    return boxes


def _paint_boxes(images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    out = images.copy()
    for i in range(len(out)):
        for x0, y0, w, h, g in boxes[i]:
            out[i, int(y0):int(y0 + h), int(x0):int(x0 + w)] = g
    return out


class Observer:
    """``observe(env)`` for :func:`reach_core.evaluation.run_trials`: render each trial's scene in
    the simulator (``"sim"``) or higher-fidelity (``"hifi"``) domain and estimate Omega with a
    perception function; ``perceive=None`` returns the ground-truth Omega (the CR baseline).

    Only trials still running are rendered and perceived (a finished trial keeps its last
    estimate: run_trials records nothing of it).  ``scene`` changes what the camera sees, for the
    robustness checks: ``"occluder"`` (two grey boxes per trial, off the target), ``"no-target"``
    (no target disc), ``"two-targets"`` (a second, decoy disc at another reachable position).
    In the hifi domain each trial keeps one look (camera, lights, clutter, sensor) for its
    whole run, drawn from ``seed + trial``.
    """

    SCENES = ("normal", "occluder", "no-target", "two-targets")

    def __init__(self, perceive=None, domain: str = "sim", scene: str = "normal", seed: int = 0,
                 supersample: int = 5):
        if domain not in ("sim", "hifi"):
            raise ValueError(f"domain must be 'sim' or 'hifi', got {domain!r}")
        if scene not in self.SCENES:
            raise ValueError(f"scene must be one of {self.SCENES}, got {scene!r}")
        self.perceive, self.domain, self.scene = perceive, domain, scene
        self.seed, self.supersample = int(seed), supersample
        self.cache = None
        self.done = None
        self.frames = 0
        self.render_s = 0.0
        self.decoy_distance = None

    def _setup(self, env: ReachEnv) -> None:
        from .renderer import sample_scenes
        n = env.n
        rng = np.random.default_rng([self.seed, 77])
        self.done = np.zeros(n, bool)
        self.cache = np.zeros((n, 5), np.float32)
        self.decoy = sample_scenes(n, self.seed + 991)[0]
        self.boxes = occluder_boxes(n, DEFAULT_CAMERA.to_net_pixels(env.target), rng) \
            if self.scene == "occluder" else None
        self.decoy_distance = np.full(n, np.nan)

    def images(self, target: np.ndarray, q: np.ndarray, idx: np.ndarray) -> np.ndarray:
        from .renderer import add_target, preprocess, render_net_images
        far = np.full_like(target, 50.0)   # a target painted 50 m away is outside every frame
        if self.domain == "sim":
            ss = self.supersample
            if self.scene == "no-target":
                img = render_net_images(far, q, supersample=ss)
            elif self.scene == "two-targets":
                a = render_net_images(target, q, supersample=ss)
                b = render_net_images(self.decoy[idx], q, supersample=ss)
                none = render_net_images(far, q, supersample=ss)
                img = np.where(np.abs(b - none) > 1e-4, b, a)
            else:
                img = render_net_images(target, q, supersample=ss)
        else:
            from .hifi_renderer import render_hifi
            frames = render_hifi(None, q, seed=self.seed * 1009 + idx)
            if self.scene != "no-target":
                frames = add_target(frames, target)
            if self.scene == "two-targets":
                frames = add_target(frames, self.decoy[idx])
            img = preprocess(frames)
        if self.scene == "occluder":
            img = _paint_boxes(img, self.boxes[idx])
        return img.astype(np.float32, copy=False)

    def __call__(self, env: ReachEnv) -> np.ndarray:
        if self.done is None:
            self._setup(env)
        if self.perceive is None:
            return env.observe()
        self.done |= (env.n_within >= env.cfg.success_steps) | (env.t >= env.cfg.max_steps)
        idx = np.flatnonzero(~self.done)
        if idx.size:
            d2 = np.linalg.norm(env.arm.forward(env.q[idx]) - self.decoy[idx], axis=-1)
            self.decoy_distance[idx] = d2
            t0 = time.perf_counter()
            img = self.images(env.target[idx], env.q[idx], idx)
            self.render_s += time.perf_counter() - t0
            self.frames += idx.size
            self.cache[idx] = self.perceive(img)
        return self.cache.copy()


# ----------------------------------------------------------------------------- evaluation
def set_tta(rows: dict, radius: int, log=None) -> None:
    """Test-time augmentation of ``radius`` px for the perception of every end-to-end row
    ({name: EndToEndModel}; other rows are left alone) whose network was trained with camera
    shifts; the others are named in ``log`` and keep none (shifted images would mislead them)."""
    radius = check_tta(radius)
    for name, row in rows.items():
        if not radius or not isinstance(row, EndToEndModel):
            continue
        row.perception.tta = tta_for(row.perception, radius)
        if row.perception.tta:
            if log:
                log(f"{name}: test-time augmentation, shifts up to {radius} px")
        elif log:
            log(f"{name}: no test-time augmentation (its perception network was trained without "
                f"camera shifts, and shifted images would mislead it)")


def evaluate_rows(rows: dict, task: TaskConfig, trials: int, seed: int, domain: str = "sim",
                  scene: str = "normal", log=None, no_revisit: bool = False,
                  odometry: bool = False) -> dict:
    """{name: EndToEndModel or None (CR: ground truth)} -> {name: (EvalResult, seconds, observer)}.
    For CR, ``rows[name]`` may also be a ControlPolicy.  ``no_revisit``: every row's controller
    runs with the no-revisit rule of the ROS controller (:class:`reach_core.control.NoRevisit`),
    fed with the configurations it perceives, or with ``odometry`` the first one plus the moves
    it commanded (``NoRevisit(odometry=True)``)."""
    from .control import NoRevisit
    from .evaluation import run_trials
    out = {}
    for name, model in rows.items():
        t0 = time.perf_counter()
        if model is None or isinstance(model, ControlPolicy):
            control = model or rows.get("_control")
            obs = Observer(None, domain, scene, seed)
        else:
            obs = Observer(model.perceive, domain, scene, seed)
            control = model.control     # shares its network with model.net's control half
        policy = NoRevisit(control, odometry=odometry) if no_revisit else (
            control.act if obs.perceive is None else model.act_omega)
        res = run_trials(policy, task, trials=trials, seed=seed, observe=obs)
        out[name] = (res, time.perf_counter() - t0, obs)
        if log:
            log(f"  {domain}/{scene} {name}: success {res.success_rate:.3f}, d_med {res.d_med_px:.2f} px, "
                f"R-bar {res.mean_return:.3f} ({time.perf_counter() - t0:.0f} s, {obs.frames} frames)")
    return out


def format_table3(results: dict, paper: bool = True) -> str:
    """results {(scenario, net): EvalResult} -> Table 3 style text."""
    head = (f"{'scenario':<9}{'net':<26}{'trials':>7}{'d_med cm':>9}{'px':>6}{'d_Q3 cm':>9}{'px':>6}"
            f"{'R-bar':>8}{'success %':>10}")
    lines = [head, "-" * len(head)]
    for (scen, net), r in results.items():
        lines.append(f"{scen:<9}{net:<26}{r.trials:>7}{r.d_med_cm:>9.2f}{r.d_med_px:>6.2f}"
                     f"{r.d_q3_cm:>9.2f}{r.d_q3_px:>6.2f}{r.mean_return:>8.3f}{100 * r.success_rate:>10.2f}")
        base = net.split(" ")[0]
        if paper and (scen, base) in PAPER_TABLE3:
            p = PAPER_TABLE3[(scen, base)]
            lines.append(f"{'':<9}{'  paper':<26}{'':>7}{p[0]:>9.1f}{p[1]:>6.1f}{p[2]:>9.1f}{p[3]:>6.1f}"
                         f"{p[4]:>8.3f}")
    return "\n".join(lines)


def plot_table3(results: dict, path, title: str = "") -> Path:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    names = [f"{s}\n{n}" for s, n in results]
    d = [r.final_distance_m / DEFAULT_CAMERA.m_per_net_px for r in results.values()]
    ax1.boxplot(d, sym=".", whis=1.5)
    ax1.set_xticks(range(1, len(names) + 1), names, fontsize=7)
    ax1.set_yscale("log")
    ax1.set_ylabel("final distance d [84x84 px]")
    ax1.axhline(0.05 / DEFAULT_CAMERA.m_per_net_px, color="k", ls=":", lw=1, label="delta (5 cm)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    x = np.arange(len(names))
    ax2.bar(x, [r.mean_return for r in results.values()], color="C1")
    ax2.set_xticks(x, names, fontsize=7)
    ax2.set_ylabel("average accumulated reward R-bar")
    ax2.grid(alpha=0.3)
    fig.suptitle(title or "End-to-end reaching (Table 3)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# ----------------------------------------------------------------------------- fine-tuning
@dataclass
class FinetuneConfig:
    perception: str = "src/reach_core/reach_core/models/perception_adapted.pt"
    control: str = "src/reach_core/reach_core/models/control_dof3.pt"
    real: str | None = ".devdata/hifi_train"
    out: str = "runs/end2end"
    dof: int | None = None           # require this DoF of the control checkpoint
    beta: float = 0.8                # Eq. 4
    naive: bool = False              # baseline: Lq only into both networks (no Lp)
    steps: int = 2000                # weight updates
    task_batch: int = 64
    perception_batch: int = 256
    real_fraction: float = 0.75
    virtual_targets: int = 8         # uses of each real frame with a random virtual target
    near_target: float = 0.0         # share of the perception batch's scenes (simulator scenes and
                                     # virtual targets) with the target at the hand, as when a
                                     # reach ends (reach_core.renderer.near_targets)
    lr_perception: float = 1e-4      # Adam
    lr_control: float = 1e-5
    epsilon: float = 0.1             # K-GPS exploration probability
    gamma: float | None = None       # default: the control run's
    n_step: int | None = None        # default: the control run's
    double_dqn: bool = True
    loss: str | None = None          # "huber" / "mse"; default: the control run's
    success_bonus: float | None = None  # task reward of Lq; default: the control run's (the
                                        # Q-values it learned are of that reward)
    target_tau: float = 0.005
    num_envs: int = 16
    env_steps_per_update: int = 1    # acting iterations (num_envs transitions each) per update
    buffer_size: int = 50_000
    learning_starts: int = 2000      # transitions before the first update
    supersample: int = 5             # simulator renderer (5: the camera pipeline's pixels)
    sim_pool: int = 20_000           # simulator images for the perception batch, rendered once
    noise: float = 0.0               # augmentation of real images (as in adaptation)
    brightness: float = 0.0
    eval_every: int = 500
    eval_trials: int = 50
    checkpoint_every: int = 1000
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    command: str = ""

    def __post_init__(self):
        if not (isinstance(self.beta, (int, float)) and 0.0 <= self.beta <= 1.0):
            raise ValueError(f"beta must be in [0, 1] (Eq. 4), got {self.beta!r}")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {self.real_fraction!r}")
        if not 0.0 <= self.near_target <= 1.0:
            raise ValueError(f"near_target must be in [0, 1], got {self.near_target!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon!r}")
        if self.steps < 1 or self.task_batch < 1 or self.perception_batch < 1 or self.num_envs < 1:
            raise ValueError("steps, task_batch, perception_batch and num_envs must be at least 1")
        if self.loss not in (None, "huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.loss!r}")
        if self.naive:
            self.beta = 0.0

    @property
    def n_real(self) -> int:
        return 0 if self.naive else int(round(self.perception_batch * self.real_fraction))


def weighted_losses(net: CombinedNet, target: CombinedNet, task_batch, perception_batch, beta: float,
                    double_dqn: bool = True, loss: str = "huber", naive: bool = False):
    """Eq. 4 on one pair of mini-batches; returns (total, Lq, Lp, omega_hat of the task batch).

    ``task_batch``: (images, action, return, next_images, discount, next_omega_true); masks of
    available next actions come from the true next Omega (the environment knows them).
    ``perception_batch``: (images, omega) or None.  ``total.backward()`` gives the control network
    dLq and the perception network (1 - beta) dLq_BN + beta dLp (naive: dLq_BN, no Lp)."""
    img, action, ret, next_img, discount, next_omega = task_batch
    omega_hat = net.bottleneck(img)
    bn = omega_hat if naive else GradScale.apply(omega_hat, 1.0 - beta)
    q = net.control(bn).gather(1, action[:, None]).squeeze(1)
    with torch.no_grad():
        next_hat = target.bottleneck(next_img)
        mask = available_actions(next_omega, net.dof_mask, net.hold_radius)
        next_t = target.control(next_hat).masked_fill(~mask, float("-inf"))
        if double_dqn:
            best = masked_argmax(net.control(next_hat), mask)
            next_v = next_t.gather(1, best[:, None]).squeeze(1)
        else:
            next_v = next_t.max(dim=1).values
        y = ret + discount * torch.where(torch.isfinite(next_v), next_v, torch.zeros_like(next_v))
    lq = F.smooth_l1_loss(q, y) if loss == "huber" else 0.5 * F.mse_loss(q, y)
    total = lq
    lp = torch.zeros((), device=lq.device)
    if not naive and beta > 0 and perception_batch is not None:
        px, py = perception_batch
        lp = 0.5 * ((net.perception(px) - py) ** 2).sum(dim=1).mean()     # Eq. 2
        total = lq + beta * lp
    return total, lq, lp, omega_hat


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def finetune(cfg: FinetuneConfig, progress: bool = True, log=_log) -> dict:
    """Weighted (or naive) end-to-end fine-tuning; writes ``cfg.out``; returns the metrics."""
    from tqdm import tqdm

    from .control_training import NStep, ReplayMemory
    from .datasets import DatasetError, load_dataset
    from .perception import augment
    from .renderer import near_targets, render_net_images, sample_scenes

    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is available to this torch")
    # --- everything that can be wrong is checked before any training --------------------------
    model = EndToEndModel.from_modules(cfg.perception, cfg.control, dof=cfg.dof)
    task = model.task
    ccfg = model.control.meta.get("config", {}) or {}
    gamma = cfg.gamma if cfg.gamma is not None else float(ccfg.get("gamma", 0.99))
    n_step = cfg.n_step if cfg.n_step is not None else int(ccfg.get("n_step", 1))
    loss_kind = cfg.loss or ccfg.get("loss", "huber")
    bonus = cfg.success_bonus if cfg.success_bonus is not None else float(ccfg.get("success_bonus", 0.0))
    real = None
    if cfg.n_real > 0:
        if not cfg.real:
            raise ValueError(f"real_fraction {cfg.real_fraction} needs a real dataset (--real)")
        real = load_dataset(cfg.real, virtual_targets=cfg.virtual_targets, seed=cfg.seed,
                            near_target=cfg.near_target)
        if len(real) == 0:
            raise DatasetError(f"{cfg.real}: the real dataset is empty")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=dev)
    gen.manual_seed(cfg.seed)

    model.to(dev)
    net = model.net
    net.eval()              # batch-norm statistics (if any) stay as trained; no dropout anywhere
    target = copy.deepcopy(net)
    for p in target.parameters():
        p.requires_grad_(False)
    opt_p = torch.optim.Adam(net.perception.parameters(), lr=cfg.lr_perception)
    opt_c = torch.optim.Adam(net.control.parameters(), lr=cfg.lr_control)

    n_sim = 0 if cfg.naive else cfg.perception_batch - cfg.n_real
    t0 = time.perf_counter()
    sim_x = sim_y = None
    if n_sim:
        pool = max(n_sim, min(cfg.sim_pool, n_sim * cfg.steps))
        st, sq = sample_scenes(pool, cfg.seed + 17)
        n_near = int(round(pool * cfg.near_target))
        st[:n_near] = near_targets(sq[:n_near], np.random.default_rng(cfg.seed + 18))
        sim_x = torch.from_numpy(np.concatenate([render_net_images(st[i:i + 512], sq[i:i + 512],
                                                                   supersample=cfg.supersample)
                                                 for i in range(0, pool, 512)]).astype(np.float16)).to(dev)
        sim_y = torch.from_numpy(normalise(st, sq)).to(dev)
    if real is not None:
        real_x = torch.from_numpy(real.images.astype(np.float16)).to(dev)
        real_y = torch.from_numpy(real.omega.astype(np.float32)).to(dev)
    data_s = time.perf_counter() - t0
    aug = SimpleNamespace(rotation=0.0, translation=0.0, noise=cfg.noise, brightness=cfg.brightness)

    env = ReachEnv(cfg.num_envs, task, seed=cfg.seed + 1)
    memory = ReplayMemory(cfg.buffer_size)
    nstep = NStep(n_step, cfg.num_envs, gamma)

    def render(omega: np.ndarray) -> torch.Tensor:
        t, q = denormalise(omega)
        return torch.from_numpy(render_net_images(t, q, supersample=cfg.supersample)).to(dev)

    def act_and_store() -> None:
        nonlocal obs
        with torch.no_grad():
            a = net(render(obs))[2].cpu().numpy()
        explore = rng.random(cfg.num_envs) < cfg.epsilon
        if explore.any():
            a = np.where(explore, env.kgps_actions(), a)
        res = env.step(a)
        r = res.reward   # Eq. 5, with the control run's success bonus if it had one
        if bonus > 0:
            r = r + success_bonus(res.terminated, res.distance, bonus, task)
        tr = nstep.push(obs, a, r, res.final_obs, res.terminated, res.truncated,
                        explore.astype(np.float32))
        if tr:
            memory.add(*tr)
        obs = res.obs

    history, rows = [], []
    best = (-1.0, -math.inf)

    def evaluate(step: int) -> dict:
        nonlocal best
        from .evaluation import run_trials
        # a new CombinedNet: its action-mask buffers start on the CPU, so move it with the nets
        model_eval = EndToEndModel(PerceptionModel(net.perception), ControlPolicy(net.control, task, {})).to(dev)
        # the same trials at every evaluation, so that the curve (and best.pt) compares like with like
        res = run_trials(model_eval.act_omega, task, cfg.eval_trials, seed=FINETUNE_EVAL_SEED,
                         observe=Observer(model_eval.perceive, "sim", supersample=cfg.supersample))
        h = {"step": step, "success_rate": res.success_rate, "d_med_px": res.d_med_px,
             "d_med_cm": res.d_med_cm, "mean_return": res.mean_return,
             "elapsed_s": round(time.perf_counter() - t_start, 1)}
        history.append(h)
        key = (res.success_rate, res.mean_return)
        if key >= best:
            best = key
            snapshot("best.pt", step)
        return h

    def snapshot(name: str, step: int) -> None:
        m = EndToEndModel(PerceptionModel(copy.deepcopy(net.perception).cpu(), model.perception.meta),
                          ControlPolicy(copy.deepcopy(net.control).cpu(), task, model.control.meta),
                          {**model.meta, "finetune": {"config": asdict(cfg), "step": step}})
        m.save(out / name)

    obs = env.observe()
    t_fill = time.perf_counter()
    while len(memory) < min(cfg.learning_starts, cfg.buffer_size):
        act_and_store()
    fill_s = time.perf_counter() - t_fill
    log(f"end2end {'naive' if cfg.naive else f'weighted beta={cfg.beta}'}: {len(memory)} transitions "
        f"collected in {fill_s:.0f} s; perception batch {cfg.n_real} real + {n_sim} sim "
        f"({len(real) if real is not None else 0} real images); task batch {cfg.task_batch}; "
        f"n-step {n_step}, gamma {gamma}, {loss_kind}, success bonus {bonus:g}; {cfg.steps} updates on {dev}")
    h0 = evaluate(0)
    log(f"before fine-tuning: success {h0['success_rate']:.3f}, d_med {h0['d_med_px']:.2f} px, "
        f"R-bar {h0['mean_return']:.3f}")
    bar = tqdm(total=cfg.steps, desc="fine-tune end2end", unit="step", disable=not progress,
               file=sys.stderr, mininterval=2.0)
    acc = {"lq": 0.0, "lp": 0.0, "n": 0}
    t_train = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        for _ in range(cfg.env_steps_per_update):
            act_and_store()
        o, a, r, o2, disc, _ = memory.sample(rng, cfg.task_batch)
        tb = (render(o.numpy()), a.to(dev), r.to(dev), render(o2.numpy()), disc.to(dev), o2.to(dev))
        pb = None
        if not cfg.naive and cfg.beta > 0:
            parts_x, parts_y = [], []
            if cfg.n_real:
                ridx = torch.randint(len(real_x), (cfg.n_real,), device=dev, generator=gen)
                parts_x.append(augment(real_x[ridx].float(), aug, gen))
                parts_y.append(real_y[ridx])
            if n_sim:
                sidx = torch.randint(len(sim_x), (n_sim,), device=dev, generator=gen)
                parts_x.append(sim_x[sidx].float())
                parts_y.append(sim_y[sidx])
            pb = (torch.cat(parts_x), torch.cat(parts_y))
        total, lq, lp, _ = weighted_losses(net, target, tb, pb, cfg.beta, cfg.double_dqn, loss_kind,
                                           cfg.naive)
        opt_p.zero_grad(set_to_none=True)
        opt_c.zero_grad(set_to_none=True)
        total.backward()
        opt_p.step()
        opt_c.step()
        with torch.no_grad():
            for p, tp in zip(net.parameters(), target.parameters()):
                tp.lerp_(p, cfg.target_tau)
        acc["lq"] += lq.item()
        acc["lp"] += lp.item()
        acc["n"] += 1
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            row = {"step": step, "lq": acc["lq"] / acc["n"], "lp": acc["lp"] / acc["n"],
                   "train_s": round(time.perf_counter() - t_train, 1)}
            h = evaluate(step)
            row.update({k: h[k] for k in ("success_rate", "d_med_px", "mean_return")})
            rows.append(row)
            acc = {"lq": 0.0, "lp": 0.0, "n": 0}
            bar.set_postfix(lq=f"{row['lq']:.2e}", lp=f"{row['lp']:.2e}",
                            success=f"{h['success_rate']:.2f}", d_px=f"{h['d_med_px']:.2f}")
            if not progress:
                log(f"step {step}: Lq {row['lq']:.3e} Lp {row['lp']:.3e} success {h['success_rate']:.3f} "
                    f"d_med {h['d_med_px']:.2f} px R-bar {h['mean_return']:.3f}")
        if step % cfg.checkpoint_every == 0:
            snapshot("checkpoint.pt", step)
    bar.close()
    train_s = time.perf_counter() - t_train
    snapshot("model.pt", cfg.steps)
    final = EndToEndModel.load(out / "model.pt")
    final.export(out / "model.ts")
    metrics = {"mode": "naive" if cfg.naive else "weighted", "beta": cfg.beta, "steps": cfg.steps,
               "device": str(dev), "threads": cfg.threads, "train_seconds": round(train_s, 1),
               "data_seconds": round(data_s, 1), "replay_fill_seconds": round(fill_s, 1),
               "total_seconds": round(time.perf_counter() - t_start, 1),
               "n_step": n_step, "gamma": gamma, "loss": loss_kind, "success_bonus": bonus,
               "perception_batch": {"real": cfg.n_real, "sim": n_sim},
               "real_images": len(real) if real is not None else 0,
               "eval_history": history, "progress": rows, "command": cfg.command,
               "config": asdict(cfg)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if rows:
        with open(out / "progress.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        try:
            plot_finetune(rows, history, out / "loss_curves.png",
                          f"{out.name}: {metrics['mode']} (beta {cfg.beta})")
        except Exception as err:  # a plot is never worth losing a run for
            log(f"warning: could not plot: {err}")
    log(f"wrote {out}/model.pt and model.ts; final {history[-1]}")
    return metrics


def plot_finetune(rows, history, path, title="") -> Path:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 3.8), dpi=100)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    s = [r["step"] for r in rows]
    ax1.plot(s, [r["lq"] for r in rows], label="Lq (task)")
    ax1.plot(s, [r["lp"] for r in rows], label="Lp (perception)")
    ax1.set_yscale("log")
    ax1.set_xlabel("update")
    ax1.legend()
    ax1.grid(alpha=0.3)
    hs = [h["step"] for h in history]
    ax2.plot(hs, [h["d_med_px"] for h in history], "o-")
    ax2.set_xlabel("update")
    ax2.set_ylabel("d_med [84x84 px] (sim eval)")
    ax2.grid(alpha=0.3)
    ax3.plot(hs, [100 * h["success_rate"] for h in history], "o-", label="success %")
    ax3.plot(hs, [100 * h["mean_return"] for h in history], "s-", label="100 R-bar")
    ax3.set_xlabel("update")
    ax3.legend()
    ax3.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


# ----------------------------------------------------------------------------- CLI
def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _cmd_train(args) -> int:
    from .datasets import DatasetError
    names = {f.name for f in fields(FinetuneConfig)}
    vals = {k: v for k, v in vars(args).items() if k in names and v is not None}
    argv = getattr(args, "argv", None)
    vals["command"] = "reach " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        cfg = FinetuneConfig(**vals)
        finetune(cfg, progress=not args.no_progress)
    except (CheckpointError, DatasetError, ValueError, RuntimeError) as err:
        return _err(str(err).splitlines()[0] if isinstance(err, RuntimeError) else str(err))
    print(f"model: {Path(cfg.out) / 'model.pt'}  torchscript: {Path(cfg.out) / 'model.ts'}  "
          f"metrics: {Path(cfg.out) / 'metrics.json'}")
    return 0


def _cmd_eval(args) -> int:
    from .evaluation import EVAL_SEED
    torch.set_num_threads(max(1, args.threads))
    rows = {}
    try:
        control = _load_module(args.control, "control", dof=args.dof)
        if args.sim_perception:
            rows["EE1 (SIM+CR)"] = EndToEndModel.from_modules(args.sim_perception, args.control, args.dof)
        if args.adapted_perception:
            rows["EE2 (P75+CR)"] = EndToEndModel.from_modules(args.adapted_perception, args.control, args.dof)
        for spec in args.finetuned or []:
            name, _, path = spec.partition("=") if "=" in spec else ("EE2-FT", "", spec)
            rows[name] = EndToEndModel.load(path, dof=args.dof)
    except CheckpointError as err:
        return _err(str(err))
    try:
        set_tta(rows, args.tta, log=_log)
    except ValueError as err:
        return _err(str(err))
    if not args.no_cr:
        rows["CR (ground truth)"] = control
    task = control.task
    results, timing = {}, {}
    scenes = args.scene or ["normal"]
    for domain, trials in (("sim", args.trials), ("hifi", args.hifi_trials)):
        if trials <= 0:
            continue
        for scene in scenes:
            scen = domain if scene == "normal" else f"{domain}/{scene}"
            use = {k: v for k, v in rows.items() if scene == "normal" or not k.startswith("CR")}
            res = evaluate_rows(use, task, trials, args.seed, domain, scene, log=_log,
                                no_revisit=args.no_revisit or args.no_revisit_odometry,
                                odometry=args.no_revisit_odometry)
            for name, (r, secs, obs) in res.items():
                results[(scen, name)] = r
                timing[f"{scen} {name}"] = {"seconds": round(secs, 1), "frames": obs.frames,
                                            "render_seconds": round(obs.render_s, 1)}
                if scene == "two-targets" and obs.decoy_distance is not None:
                    dd = obs.decoy_distance
                    timing[f"{scen} {name}"]["at_decoy_fraction"] = float(np.mean(dd <= task.delta))
    print(f"End-to-end reaching (Table 3): seed {args.seed}, {args.trials} sim trials, "
          f"{args.hifi_trials} hifi trials ('hifi' = the higher-fidelity domain, the paper's 'Real'), "
          f"{task.dof}-DoF, threshold {100 * task.delta:.0f} cm x {task.success_steps} steps; "
          f"distances in cm and 84x84 px" + (f"; perception with test-time augmentation (shifts "
                                             f"up to {args.tta} px)" if args.tta else "") + ("; controllers with the no-revisit rule (odometry)"
                                             if args.no_revisit_odometry else
                                             "; controllers with the no-revisit rule" if args.no_revisit else ""))
    print(format_table3(results, paper=not args.no_paper))
    for k, v in timing.items():
        if "at_decoy_fraction" in v:
            print(f"  {k}: final configuration within delta of the decoy target in "
                  f"{100 * v['at_decoy_fraction']:.1f} % of trials")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"seed": args.seed, "rows": {f"{s} | {n}": r.summary() for (s, n), r in results.items()},
             "timing": timing, "command": "reach " + " ".join(map(shlex.quote, getattr(args, "argv", [])))},
            indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        plot_table3(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _cmd_export(args) -> int:
    try:
        if args.model:
            model = EndToEndModel.load(args.model, dof=args.dof)
        elif args.perception and args.control:
            model = EndToEndModel.from_modules(args.perception, args.control, args.dof)
        else:
            return _err("give --model (a combined checkpoint) or --perception and --control")
    except CheckpointError as err:
        return _err(str(err))
    path = model.export(args.out)
    print(f"wrote {path}")
    return 0


def add_train_cli(sub) -> None:
    p = sub.add_parser(
        "end2end", help="weighted end-to-end fine-tuning of perception + control (Eq. 4)",
        description="Fine-tune the combined network (perception + control) end to end: control with "
                    "the task loss Lq, perception with beta*Lp + (1-beta)*Lq_BN (paper Eq. 4); or "
                    "--naive (Lq only). Writes config.json, model.pt (combined checkpoint), model.ts "
                    "(TorchScript), best.pt, progress.csv, metrics.json, loss_curves.png into --out.")
    d = FinetuneConfig()
    a = p.add_argument
    a("--perception", default=None, help=f"perception checkpoint (default {d.perception})")
    a("--control", default=None, help=f"control checkpoint (default {d.control})")
    a("--real", default=None, help=f"real-domain dataset folder for Lp (default {d.real})")
    a("--out", default=None, help=f"run folder (default {d.out})")
    a("--dof", type=int, choices=(1, 2, 3), default=None, help="fail unless the controller has this DoF")
    a("--beta", type=float, default=None, help="Eq. 4 weight of Lp, in [0, 1] (default 0.8)")
    a("--naive", action="store_true", default=None, help="naive fine-tuning: Lq only (the baseline)")
    a("--steps", type=int, default=None, help=f"weight updates (default {d.steps})")
    a("--task-batch", type=int, default=None, help="task (Lq) mini-batch (default 64)")
    a("--perception-batch", type=int, default=None, help="perception (Lp) mini-batch (default 256)")
    a("--real-fraction", type=float, default=None, help="real share of the perception batch (0.75)")
    a("--virtual-targets", type=int, default=None, help=f"virtual targets per real frame ({d.virtual_targets})")
    a("--near-target", type=float, default=None,
      help="share of the perception batch's scenes with the target at the hand, as when a reach "
           "ends (simulator scenes and virtual targets; default 0)")
    a("--lr-perception", type=float, default=None, help=f"Adam LR of perception ({d.lr_perception})")
    a("--lr-control", type=float, default=None, help=f"Adam LR of control ({d.lr_control})")
    a("--epsilon", type=float, default=None, help="K-GPS exploration probability (0.1)")
    a("--gamma", type=float, default=None, help="discount (default: the control run's)")
    a("--n-step", type=int, default=None, help="n-step returns (default: the control run's)")
    a("--success-bonus", type=float, default=None,
      help="success reward 1 + this * (1 - d/delta) in Lq (default: the control run's)")
    a("--loss", choices=("huber", "mse"), default=None, help="TD loss (default: the control run's)")
    a("--target-tau", type=float, default=None, help="Polyak rate of the target networks (0.005)")
    a("--num-envs", type=int, default=None, help=f"trials acting side by side ({d.num_envs})")
    a("--env-steps-per-update", type=int, default=None, help="acting iterations per update (1)")
    a("--buffer-size", type=int, default=None, help=f"replay size ({d.buffer_size})")
    a("--learning-starts", type=int, default=None, help=f"transitions before updates ({d.learning_starts})")
    a("--supersample", type=int, default=None, help="simulator renderer supersampling (5)")
    a("--sim-pool", type=int, default=None, help=f"simulator images for Lp rendered once ({d.sim_pool})")
    a("--noise", type=float, default=None, help="augmentation of real images: noise std")
    a("--brightness", type=float, default=None, help="augmentation of real images: brightness/contrast")
    a("--eval-every", type=int, default=None, help=f"updates between evaluations ({d.eval_every})")
    a("--eval-trials", type=int, default=None, help=f"simulator trials per evaluation ({d.eval_trials})")
    a("--checkpoint-every", type=int, default=None, help=f"updates between checkpoints ({d.checkpoint_every})")
    a("--seed", type=int, default=None, help="seed (default 0)")
    a("--device", default=None, help="cpu (default) or cuda")
    a("--threads", type=int, default=None, help="torch CPU threads (default 1)")
    a("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def add_eval_cli(sub) -> None:
    from .evaluation import EVAL_SEED
    m = "src/reach_core/reach_core/models"
    p = sub.add_parser(
        "end2end", help="Table 3: EE1, EE2, EE2-FT and CR in the simulator and the hifi domain",
        description="Evaluate combined networks end to end (renderer -> perception -> control) "
                    "and the CR baseline (ground-truth Omega): median and Q3 distance (cm, 84x84 px), "
                    "R-bar and success, in the simulator and in the higher-fidelity domain; prints "
                    "Table 3 and writes a PNG. --scene adds robustness checks (occluders, no target, "
                    "two targets).")
    p.add_argument("--control", default=f"{m}/control_dof3.pt", help="control checkpoint (CR)")
    p.add_argument("--sim-perception", default=f"{m}/perception_sim.pt", help="SIM perception (EE1); '' to skip")
    p.add_argument("--adapted-perception", default=f"{m}/perception_adapted.pt", help="P75 perception (EE2); '' to skip")
    p.add_argument("--finetuned", action="append", help="combined checkpoint(s), NAME=path (EE2-FT)")
    p.add_argument("--dof", type=int, choices=(1, 2, 3), default=None)
    p.add_argument("--trials", type=int, default=400, help="simulator trials (default 400)")
    p.add_argument("--hifi-trials", type=int, default=20, help="higher-fidelity trials (default 20, as the paper's real)")
    p.add_argument("--seed", type=int, default=EVAL_SEED, help=f"trial seed (default {EVAL_SEED})")
    p.add_argument("--scene", action="append", choices=Observer.SCENES,
                   help="what the camera sees (repeatable; default normal)")
    p.add_argument("--no-cr", action="store_true", help="skip the CR baseline row")
    p.add_argument("--no-revisit", action="store_true",
                   help="run every controller with the ROS controller's no-revisit rule (its default "
                        "there); without it, the plain greedy policy, as in the paper")
    p.add_argument("--no-revisit-odometry", action="store_true",
                   help="the no-revisit rule on the commanded configurations (the first estimate "
                        "plus the moves commanded), as the ROS controller runs it by default")
    p.add_argument("--tta", type=int, default=1,
                   help="perception with test-time augmentation: the median over the image shifted "
                        "by up to this many pixels (0..3; default 1, as the perception node; 0: "
                        "off), for networks trained with camera shifts (not the SIM network)")
    p.add_argument("--no-paper", action="store_true", help="do not print the paper's rows")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--plot", default=None, help="write the PNG here")
    p.set_defaults(func=_cmd_eval)


def add_export_cli(sub) -> None:
    p = sub.add_parser("end2end", help="export a combined network as one TorchScript file",
                       description="Write the combined network (image -> Q-values, Omega_hat, greedy "
                                   "action) as a TorchScript file that torch.jit.load opens without reach.")
    p.add_argument("--model", default=None, help="combined checkpoint (reach train end2end's model.pt)")
    p.add_argument("--perception", default=None, help="or: perception checkpoint ...")
    p.add_argument("--control", default=None, help="... and control checkpoint")
    p.add_argument("--dof", type=int, choices=(1, 2, 3), default=None)
    p.add_argument("--out", required=True, help="TorchScript file to write (.ts)")
    p.set_defaults(func=_cmd_export)
