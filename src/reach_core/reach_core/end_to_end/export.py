"""Export of the combined network (``reach export end2end``): ONNX, and TorchScript while the
fine-tuning's run folder still writes ``model.ts``.

ONNX (:func:`export_onnx`, ``torch.onnx.export`` with the ``torch.export`` (dynamo) exporter; the
TorchScript-based one cannot express the action mask's in-place ``&=``): one ``.onnx`` file that
ONNX Runtime runs without torch or reach_core.  Input ``images``: float32 ``(B, 84, 84)`` in
[0, 1] (:func:`reach_core.renderer.preprocess` of the camera frames); outputs ``q_values (B, 9)``,
``omega_hat (B, 5)`` (clipped to [0, 1]) and ``action (B,)`` (int64, the greedy available action),
with the closed loop's test-time augmentation inside the graph (``tta``: the median over the image
shifted by up to that many pixels, as :func:`reach_core.perception.predict_shifted`; default 1,
as the perception node, and 0 for a network trained without camera shifts; ``pattern``: the
shifts' pattern, :func:`reach_core.perception.tta_shifts`).  The model's metadata
(``metadata_props`` key ``reach.meta``) holds DoF, task, input spec, tta, tta_pattern and the
module metadata.
:class:`OnnxEndToEnd` runs such a file on the CPU.

TorchScript (:func:`export_torchscript`, ``torch.jit.trace``; deprecated by PyTorch): the same
outputs without test-time augmentation, ``meta.json`` as an extra file.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..control import available_actions, masked_argmax
from ..perception import DEPLOY_TTA_PATTERN, NET_SIZE
from ..perception.model import median_of_copies
from ..scene import DEFAULT_CAMERA


def export_torchscript(model, path, example_batch: int = 4) -> Path:
    """Write ``model`` (an :class:`EndToEndModel`) as one TorchScript file (``torch.jit.trace``),
    checked on a second batch size; see the module docstring."""
    net = copy.deepcopy(model.net).cpu().eval()
    for p in net.parameters():     # an inference file: outputs need no autograd graph
        p.requires_grad_(False)
    example = torch.rand(example_batch, NET_SIZE, NET_SIZE)
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
            "dof": model.task.dof, "task": model.task.as_dict(),
            "camera": DEFAULT_CAMERA.as_dict(), "meta": model.meta}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(tmp), _extra_files={"meta.json": json.dumps(meta, default=str)})
    os.replace(tmp, path)
    return path


ONNX_FORMAT = "reach.end2end.onnx/1"
OUTPUTS = ("q_values", "omega_hat", "action")


class DeployNet(torch.nn.Module):
    """The combined network with test-time augmentation in the graph: images (B, 84, 84) ->
    (Q-values, Omega_hat, greedy action), Omega_hat the median over the copies shifted by
    ``tta_shifts(tta, pattern)`` (a sort, which ONNX has, instead of ``median``), as
    :func:`predict_shifted`."""

    def __init__(self, net, tta: int, pattern: str = "square"):
        super().__init__()
        from ..perception import check_tta
        from ..perception.model import shift_offsets, tta_shifts
        self.net, self.tta = net, check_tta(tta)
        self.shifts = tta_shifts(self.tta, pattern)
        back = torch.from_numpy(shift_offsets(self.shifts, DEFAULT_CAMERA))
        self.register_buffer("back", back[:, None, :], persistent=False)

    def forward(self, images: torch.Tensor):
        if self.tta == 0:
            return self.net(images)
        n = images.shape[0]
        views = torch.cat([torch.roll(images, s, dims=(1, 2)) for s in self.shifts])
        out = self.net.perception(views).float().reshape(len(self.shifts), n, -1) - self.back
        omega = median_of_copies(out).clamp(0.0, 1.0)
        q = self.net.control(omega)
        avail = available_actions(omega, self.net.dof_mask, self.net.hold_radius)
        return q, omega, masked_argmax(q, avail)


def _meta(model, tta: int, pattern: str, fmt: str) -> dict:
    return {"format": fmt,
            "input": f"float32 (B, {NET_SIZE}, {NET_SIZE}) grey in [0, 1] "
                     "(reach_core.renderer.preprocess: ROI crop, BT.601 grey, area resize)",
            "output": "(q_values (B, 9), omega_hat (B, 5) in [0, 1], action (B,) int64: greedy "
                      "among available actions)",
            "tta": tta, "tta_pattern": pattern, "dof": model.task.dof, "task": model.task.as_dict(),
            "camera": DEFAULT_CAMERA.as_dict(), "meta": model.meta}


def export_onnx(model, path, tta: int = 1, check_batch: int = 3, pattern: str = DEPLOY_TTA_PATTERN) -> Path:
    """Write ``model`` (an :class:`EndToEndModel`) as one ONNX file with a dynamic batch and
    test-time augmentation ``tta`` over ``pattern``'s shifts (default the perception node's, the
    ring; ``tta`` lowered to 0 for a network trained
    without camera shifts); checked against the eager network with ONNX Runtime on another batch
    size."""
    import onnx

    from ..perception import check_tta_pattern, tta_for
    tta, pattern = tta_for(model.perception, tta), check_tta_pattern(pattern)
    net = DeployNet(copy.deepcopy(model.net).cpu().eval(), tta, pattern).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    example = torch.rand(2, NET_SIZE, NET_SIZE)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(tmp), dynamo=True, input_names=["images"],
                          output_names=list(OUTPUTS), external_data=False, verbose=False,
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "reach.meta", json.dumps(_meta(model, tta, pattern, ONNX_FORMAT), default=str)
    onnx.save(proto, str(tmp))
    other = torch.rand(check_batch, NET_SIZE, NET_SIZE)
    got = OnnxEndToEnd(tmp).run(other.numpy())
    with torch.no_grad():
        want = net(other)
    if not np.allclose(got[1], want[1].numpy(), atol=1e-4) or not np.array_equal(got[2], want[2].numpy()):
        tmp.unlink()
        raise RuntimeError("the ONNX network differs from the eager one on another batch")
    os.replace(tmp, path)
    return path


class OnnxEndToEnd:
    """An exported ``.onnx`` combined network run by ONNX Runtime on the CPU (``threads``: intra-op
    threads, 0: its choice)."""

    def __init__(self, path, threads: int = 1):
        import onnx
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        self.meta = json.loads(props.get("reach.meta", "{}"))

    def run(self, images) -> tuple:
        """(Q-values, Omega_hat, action) of float32 images (B, 84, 84) (or one (84, 84) image)."""
        x = np.asarray(images, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (NET_SIZE, NET_SIZE):
            raise ValueError(f"ONNX end-to-end input must be (B, {NET_SIZE}, {NET_SIZE}), got {x.shape}")
        return tuple(self.session.run(list(OUTPUTS), {"images": np.ascontiguousarray(x)}))


class OnnxPerception:
    """The perception half of an exported ``.onnx`` combined network, run by ONNX Runtime: what
    the perception node calls (``predict``), with the test-time augmentation the file was exported
    with (``tta`` and ``tta_pattern``, fixed in the graph; files exported before patterns existed
    have the square)."""

    def __init__(self, path, threads: int = 1):
        self.net = OnnxEndToEnd(path, threads)
        self.tta = int(self.net.meta.get("tta", 0))
        self.tta_pattern = str(self.net.meta.get("tta_pattern", "square"))

    def predict(self, images) -> np.ndarray:
        """Omega_hat (B, 5) in [0, 1] of float32 images (B, 84, 84)."""
        return self.net.run(images)[1]


def export(model, path, tta: int = 1, pattern: str = DEPLOY_TTA_PATTERN) -> Path:
    """By the file's suffix: ``.onnx`` (:func:`export_onnx`), ``.ts``/``.pt`` TorchScript."""
    if Path(path).suffix == ".onnx":
        return export_onnx(model, path, tta=tta, pattern=pattern)
    return export_torchscript(model, path)
