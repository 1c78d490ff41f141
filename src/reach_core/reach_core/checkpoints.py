"""Checkpoints: the one save/load contract of every reach model (control, perception, end-to-end).

A checkpoint is a plain dictionary saved with ``torch.save`` and read back with
``weights_only=True`` (tensors, numbers, strings, lists and dicts only).  Its ``"format"`` entry
names the kind and version of model it holds, and ``"meta"`` carries free provenance (config,
metrics); the rest is the model's own payload (architecture, weights, task, sub-checkpoints):

================== ========================================== ====================================
format             model class                                payload
================== ========================================== ====================================
reach.control/1    :class:`reach_core.control.ControlPolicy`  arch, task, model
reach.perception/1 :class:`reach_core.perception.PerceptionModel` arch, model
reach.end2end/1    ``reach_core.end_to_end.EndToEndModel``    perception, control (two checkpoints)
================== ========================================== ====================================

A model class takes part by inheriting :class:`Checkpointable`, naming its ``FORMAT``, ``KIND``
and ``ERROR`` and writing ``_payload()`` and ``from_checkpoint(ckpt, source, **kw)``; it then
gets ``checkpoint(**extra)``, ``save(path, **extra)`` and ``load(path, **kw)`` from here.  Saves
are atomic (a temporary file renamed), so an interrupted save never leaves a corrupt file, and
every failure to read is a :class:`CheckpointError` (or the class's subclass of it) that names
the file and what is wrong, never a bare torch error.

Run folders (``checkpoint.pt`` of a training run, holding optimiser and generator state as well)
use :func:`save_atomic` and :func:`load_checkpoint` directly (:mod:`reach_core.runs`).
"""
from __future__ import annotations

import os

import torch

CONTROL_FORMAT = "reach.control/1"
PERCEPTION_FORMAT = "reach.perception/1"
END2END_FORMAT = "reach.end2end/1"
KIND_OF_FORMAT = {CONTROL_FORMAT: "a control checkpoint", PERCEPTION_FORMAT: "a perception checkpoint",
                  END2END_FORMAT: "a combined end-to-end checkpoint"}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit what it is loaded for."""


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file with a clear error for a missing, empty or corrupt file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint file is empty: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200]}") from None


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file then rename, so an interrupted save never corrupts."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def format_of(ckpt) -> str | None:
    """The ``"format"`` of a loaded checkpoint, or None for anything that is not one."""
    return ckpt.get("format") if isinstance(ckpt, dict) else None


def part_of(ckpt, part: str, source: str, error=CheckpointError) -> tuple[dict, str]:
    """The ``part`` ("perception" or "control") of a combined end-to-end checkpoint, with its
    source label (``"PATH [part]"``); any other checkpoint is returned as it is."""
    if format_of(ckpt) != END2END_FORMAT:
        return ckpt, source
    if not isinstance(ckpt.get(part), dict):
        raise error(f"{source} is an end-to-end checkpoint without its {part} module")
    return ckpt[part], f"{source} [{part}]"


def check_format(ckpt, expected: str, source: str, kind: str, error=CheckpointError,
                 hint: str = "") -> None:
    """Raise ``error`` unless ``ckpt`` is a checkpoint dictionary of format ``expected``."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != expected:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise error(f"{source} is not a reach {kind} checkpoint (format {found!r}, "
                    f"expected {expected!r}){hint(found) if callable(hint) else hint}")


def load_weights(net: torch.nn.Module, ckpt: dict, source: str, what: str, error=CheckpointError) -> None:
    """``net.load_state_dict(ckpt["model"])``, a missing entry or a mismatch reported as
    ``error``: "SOURCE: weights do not fit WHAT (the first line torch gives)"."""
    try:
        net.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        lines = str(err).strip().splitlines()
        raise error(f"{source}: weights do not fit {what} "
                    f"({lines[1].strip() if len(lines) > 1 else lines[0]})") from None


def cpu_state(net: torch.nn.Module) -> dict:
    """The weights of ``net`` detached and on the CPU, as every checkpoint stores them."""
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


class Checkpointable:
    """The save/load contract shared by the model classes.

    A subclass sets ``FORMAT`` (e.g. ``"reach.perception/1"``), ``ERROR`` (its
    :class:`CheckpointError` subclass) and ``meta`` (a dict), and implements ``_payload()`` (the
    entries besides format and meta) and the classmethod ``from_checkpoint(ckpt, source, **kw)``.
    """

    FORMAT = ""
    ERROR = CheckpointError

    def _payload(self) -> dict:
        raise NotImplementedError

    def checkpoint(self, **extra) -> dict:
        """The checkpoint dictionary: format, the payload, meta, then ``extra`` entries."""
        return {"format": self.FORMAT, **self._payload(), "meta": self.meta, **extra}

    def save(self, path: str | os.PathLike, **extra) -> None:
        """Write :meth:`checkpoint` to ``path`` atomically."""
        save_atomic(self.checkpoint(**extra), path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> dict:
        """:func:`load_checkpoint`, its errors raised as the class's ``ERROR``."""
        try:
            return load_checkpoint(path)
        except cls.ERROR:
            raise
        except CheckpointError as err:
            raise cls.ERROR(str(err)) from None

    @classmethod
    def load(cls, path: str | os.PathLike, *args, **kw):
        """The model saved at ``path`` (``args`` and ``kw`` go to ``from_checkpoint``)."""
        return cls.from_checkpoint(cls.read(path), str(path), *args, **kw)
