"""TensorBoard logging beside the CSV and PNG of a training run, or nothing.

:class:`TBLogger` wraps ``torch.utils.tensorboard.SummaryWriter`` (which needs the ``tensorboard``
package, pinned in requirements.txt).  It is a no-op -- every method returns at once, nothing is
written -- when it is given no folder, or when TensorBoard cannot be imported (then ``reason``
says why, for one log line).  A training loop can therefore always call it::

    with TBLogger(out_dir / "tb", comment="control") as tb:
        for step in ...:
            tb.scalars({"loss": loss, "epsilon": eps}, step, prefix="train")
    # tensorboard --logdir out_dir/tb

Values that are not finite numbers are skipped (counted in ``skipped``), not written: a NaN loss
is the CSV's business, and TensorBoard's plots stay readable.
"""
from __future__ import annotations

import math
import os

import numpy as np


class TBLogger:
    """A SummaryWriter into ``log_dir``, or a no-op (``log_dir`` None/empty, or no TensorBoard)."""

    def __init__(self, log_dir: str | os.PathLike | None, *, flush_secs: int = 30,
                 comment: str = ""):
        self._writer = None
        self.skipped = 0
        self.reason = ""
        self.log_dir = str(log_dir) if log_dir else None
        if not self.log_dir:
            self.reason = "no TensorBoard folder given"
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:     # tensorboard not installed
            self.reason = f"TensorBoard is not available ({err}); logging only to CSV"
            return
        self._writer = SummaryWriter(log_dir=self.log_dir, flush_secs=flush_secs, comment=comment)

    @property
    def active(self) -> bool:
        """Whether anything is written."""
        return self._writer is not None

    def __enter__(self) -> "TBLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def scalar(self, tag: str, value, step: int) -> None:
        """One scalar (a Python or numpy number, or a one-element tensor) at ``step``."""
        if self._writer is None:
            return
        try:
            v = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError):
            v = math.nan
        if not math.isfinite(v):
            self.skipped += 1
            return
        self._writer.add_scalar(tag, v, int(step))

    def scalars(self, values: dict, step: int, prefix: str = "") -> None:
        """Each ``name: value`` as the scalar ``prefix/name``."""
        for name, value in values.items():
            self.scalar(f"{prefix}/{name}" if prefix else name, value, step)

    def histogram(self, tag: str, values, step: int) -> None:
        """A histogram of the finite entries of ``values`` (e.g. Q values, weights)."""
        if self._writer is None:
            return
        arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values,
                         dtype=np.float64).ravel()
        arr = arr[np.isfinite(arr)]
        if arr.size:
            self._writer.add_histogram(tag, arr, int(step))

    def image(self, tag: str, image, step: int) -> None:
        """An image: (H, W) grey or (H, W, 3) RGB, uint8 or float in [0, 1]."""
        if self._writer is None:
            return
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
        self._writer.add_image(tag, arr, int(step), dataformats="HW" if arr.ndim == 2 else "HWC")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        """A text note (the command line, the configuration)."""
        if self._writer is not None:
            self._writer.add_text(tag, str(text), int(step))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
