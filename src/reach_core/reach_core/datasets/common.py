"""The dataset format's shared parts: its column names and format tag, :class:`Dataset` and
:class:`DatasetError`, and a folder's dataset.json (``_read_meta``, its ``"camera"`` and
``"tool"``), which writing and loading both read."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..kinematics import ToolError, check_tool, parse_tool
from ..scene import DEFAULT_CAMERA, OMEGA_NAMES, CameraConfig

DATASET_FORMAT = "reach.dataset/1"
PHYS_COLUMNS = ("target_x", "target_y", "left_s1", "left_e1", "left_w1")
OMEGA_COLUMNS = tuple(f"omega_{n}" for n in OMEGA_NAMES)
LABEL_COLUMNS = ("image",) + PHYS_COLUMNS + OMEGA_COLUMNS
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class DatasetError(ValueError):
    """A dataset cannot be used; the message names the folder, and the file and row if one."""


@dataclass
class Dataset:
    """Network images (N, 84, 84) in [0, 1] with their normalised Omega (N, 5); images are float32,
    or float16 for network-image datasets (``net_images.npy``)."""

    images: np.ndarray
    omega: np.ndarray
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (row, file, reason)
    source: str = ""
    camera: CameraConfig = DEFAULT_CAMERA   # the camera the frames came from (dataset.json)
    tool: str = "paper"                     # the tool point of its targets (dataset.json)

    def __len__(self) -> int:
        return len(self.images)

    def summary(self) -> str:
        s = f"{self.source}: {len(self)} images"
        if self.skipped:
            s += f", {len(self.skipped)} bad rows skipped"
            for row, file, reason in self.skipped[:5]:
                s += f"\n  row {row} ({file}): {reason}"
            if len(self.skipped) > 5:
                s += f"\n  ... and {len(self.skipped) - 5} more"
        return s



def _camera_from(meta: dict | None) -> CameraConfig:
    cam = (meta or {}).get("camera") or {}
    if not isinstance(cam, dict):
        raise DatasetError(f"dataset.json 'camera' must be an object, got {type(cam).__name__}")
    fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cam.items()}
    try:
        return replace(DEFAULT_CAMERA, **fields)
    except TypeError as err:
        raise DatasetError(f"dataset.json 'camera' has an unknown field: {err}") from None


def check_dataset_tool(root, meta: dict, tool) -> str:
    """The tool of a dataset (dataset.json ``"tool"``; absent: the paper's); unless ``tool`` is
    None, a :class:`DatasetError` naming both tools where it is not that tool."""
    try:
        own = parse_tool(meta.get("tool"))
        return own.name if tool is None else check_tool(tool, own, f"dataset {root}").name
    except ToolError as err:
        raise DatasetError(str(err)) from None


def _read_meta(root: Path) -> dict:
    path = root / "dataset.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: must hold a JSON object")
    mode = meta.get("target", "in_image")
    if mode not in ("in_image", "virtual"):
        raise DatasetError(f"{path}: 'target' must be 'in_image' or 'virtual', got {mode!r}")
    return meta
