"""Optimiser helpers shared by the training loops (perception, control, vectorised control)."""
from __future__ import annotations

import torch


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr``: in place where it is a tensor (a
    capturable Adam whose step a CUDA graph replays reads it there), else as a float."""
    for group in opt.param_groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
