"""TorchScript export of the combined network (``reach export end2end``).

One file that ``torch.jit.load`` opens without reach_core.  Its ``forward(images)`` takes float32
images ``(B, 84, 84)`` in [0, 1] (:func:`reach_core.renderer.preprocess` of the camera frames: ROI
crop, BT.601 grey, area resize) and returns a tuple ``(q_values (B, 9), omega_hat (B, 5), action
(B,))``: Omega_hat clipped to [0, 1] as :meth:`PerceptionModel.predict` does, the Q-values of the
control network on it, and the greedy available action (int64).  The file also holds
``meta.json`` (``torch.jit.load(path, _extra_files={"meta.json": ""})``): DoF, task, input spec,
the module sources and the fine-tuning metrics.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import torch

from ..perception import NET_SIZE
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
