"""Loading datasets: camera frames through the live pipeline into network images
(:func:`load_dataset`, with virtual targets painted in), network-image datasets, unlabelled frames
for an adaptation (:func:`load_unlabelled`), raw frames for calibration (:func:`read_raw_frames`),
and the simulator's test set (:func:`sim_test_set`)."""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..kinematics import parse_tool, tool_arm
from ..renderer import add_target, near_targets, preprocess, render_net_images, sample_scenes
from ..scene import DEFAULT_CAMERA, CameraConfig, normalise
from .common import IMAGE_EXTENSIONS, Dataset, DatasetError, _camera_from, _read_meta, check_dataset_tool
from .labels import _read_labels


def read_frame(path: Path, camera: CameraConfig) -> np.ndarray:
    """One camera frame as uint8 RGB (H, W, 3); ValueError naming what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ValueError("file not found")
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            if mode not in ("RGB", "P"):
                kind = {"L": "1 channel (grey)", "LA": "2 channels", "RGBA": "4 channels (RGBA)",
                        "I;16": "16-bit grey", "I": "32-bit integer", "F": "32-bit float",
                        "1": "1-bit", "CMYK": "4 channels (CMYK)"}.get(mode, f"mode {mode}")
                raise ValueError(f"{kind}; need 8-bit RGB")
            arr = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"unreadable image ({type(err).__name__}: {err})") from None
    if size != (camera.width, camera.height):
        raise ValueError(f"{size[0]}x{size[1]} pixels, the camera is {camera.width}x{camera.height} "
                         f"(set 'camera' in dataset.json for frames of another size)")
    return arr


def raw_camera(camera: CameraConfig, calibration=None) -> CameraConfig:
    """The camera whose frame size a dataset's files must have: ``camera`` itself, or, for frames
    taken by a calibrated camera (resampled into ``camera`` after reading), that camera's size."""
    if calibration is None:
        return camera
    return replace(camera, width=calibration.width, height=calibration.height)


def read_raw_frames(root: str | os.PathLike, limit: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A dataset's camera frames as they were taken, uint8 RGB (B, H, W, 3), and their joint
    angles (B, 3) rad: what ``reach calibrate`` fits the camera to.  Unreadable rows are skipped;
    a dataset of network images only (no camera frames) is refused."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    meta = _read_meta(root)
    if meta.get("net_images"):
        raise DatasetError(f"{root}: holds network images only; calibration needs camera frames")
    camera = _camera_from(meta)
    _, names, phys, _ = _read_labels(root, limit)
    frames, q = [], []
    for name, row in zip(names, phys):
        try:
            frames.append(read_frame(root / name, camera))
            q.append(row[2:])
        except ValueError:
            continue
    if not frames:
        raise DatasetError(f"{root}: no readable camera frames")
    return np.stack(frames), np.array(q)


def load_unlabelled(root: str | os.PathLike, *, calibration=None, copies: int = 1, seed: int = 0,
                    limit: int | None = None, tool=None) -> tuple[np.ndarray, np.ndarray]:
    """Real frames without labels for an adaptation: every image under ``root`` (a dataset folder's
    images/, or any folder of PNG/JPEG frames; labels are not read), resampled into the virtual
    camera's frame through ``calibration``, each used ``copies`` times with a virtual target painted
    at a random reachable position (whose place is then known: the target half of Omega is a
    label, the arm's half is not).  Returns network images (N, 84, 84) float32 and the targets'
    normalised coordinates (N, 2).  A dataset folder's frames have the size its dataset.json
    names (frames rectified by ``reach data rectify`` are already in the virtual camera's).
    Targets are tool points of ``tool`` (None: the paper's; a dataset folder of another tool is
    refused)."""
    root = Path(root)
    folder = root / "images" if (root / "images").is_dir() else root
    if not folder.is_dir():
        raise DatasetError(f"unlabelled frames: folder not found: {root}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
    if not paths:
        raise DatasetError(f"unlabelled frames: no PNG or JPEG images in {folder}")
    meta = _read_meta(root)
    camera, arm = _camera_from(meta), tool_arm(check_dataset_tool(root, meta, parse_tool(tool).name))
    frames_camera = raw_camera(camera, calibration)
    rng = np.random.default_rng([seed, 17])
    images, targets = [], []
    for path in paths:
        try:
            frame = read_frame(path, frames_camera)
        except ValueError as err:
            raise DatasetError(f"unlabelled frame {path}: {err}") from None
        if calibration is not None:
            frame = calibration.to_virtual(frame, camera)
        drawn = arm.sample_targets(rng, copies)
        images.append(preprocess(add_target(np.repeat(frame[None], copies, 0), drawn, camera), camera))
        targets.append(drawn)
    target = np.concatenate(targets)
    omega = normalise(target, np.zeros((len(target), 3)))[:, :2]
    return np.concatenate(images).astype(np.float32), omega


def _load_net_images(root: Path, rows, names, phys, bad) -> tuple[np.ndarray, list[int]]:
    path = root / "net_images.npy"
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read ({err})") from None
    if arr.ndim != 3 or arr.shape[1:] != (DEFAULT_CAMERA.net_size,) * 2:
        raise DatasetError(f"{path}: shape {arr.shape}, expected (N, 84, 84)")
    keep, idx = [], []
    for k, (line, name) in enumerate(zip(rows, names)):
        try:
            i = int(name)
        except ValueError:
            bad.append((line, name, "not an index into net_images.npy"))
            continue
        if not 0 <= i < len(arr):
            bad.append((line, name, f"index outside net_images.npy ({len(arr)} images)"))
            continue
        keep.append(k)
        idx.append(i)
    idx = np.array(idx, dtype=np.int64)
    if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        images = np.array(arr[idx[0]:idx[0] + len(idx)])   # one contiguous read
    else:
        images = np.array(arr[idx]) if len(idx) else np.zeros((0, 84, 84), np.float16)
    return images, keep


def load_dataset(root: str | os.PathLike, *, virtual_targets: int = 1, seed: int = 0,
                 max_bad_fraction: float = 0.1, strict: bool = False, limit: int | None = None,
                 workers: int = 4, verbose: bool = True, near_target: float = 0.0,
                 calibration=None, tool="paper") -> Dataset:
    """Load a dataset folder as network images and normalised Omega.

    For ``"target": "virtual"`` datasets every frame is used ``virtual_targets`` times: first with
    its labelled target, then with targets drawn uniformly as in Algorithm 1 (the paper's virtual
    targets at random positions, which multiply a small set of robot frames).  ``near_target``:
    this share of the drawn targets is put at the frame's hand instead
    (:func:`reach_core.renderer.near_targets`: the disc over the gripper, as when a reach ends).
    ``calibration``: the camera that took the frames (a :class:`~reach_core.camera_model.
    CameraModel`, from ``reach calibrate``); its frames are resampled into the virtual camera's
    before anything else, so targets are painted and crops taken as for a camera at the nominal
    pose.  Frames of another size than the calibration's are refused, row by row.
    ``tool``: the run's tool point; a dataset of another (dataset.json ``"tool"``) is refused
    (:class:`DatasetError` naming both); None takes the dataset's own.
    """
    if not 0.0 <= near_target <= 1.0:
        raise ValueError(f"near_target is a fraction in [0, 1], got {near_target!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    meta = _read_meta(root)
    camera, tool = _camera_from(meta), check_dataset_tool(root, meta, tool)
    rows, names, phys, bad = _read_labels(root, limit)
    n_rows = len(rows) + len(bad)
    if n_rows == 0:
        raise DatasetError(f"{root / 'labels.csv'}: no rows")
    if strict and bad:
        line, name, reason = bad[0]
        raise DatasetError(f"{root / 'labels.csv'} row {line} ({name}): {reason}")
    if meta.get("net_images"):
        images, keep = _load_net_images(root, rows, names, phys, bad)
        phys = phys[keep]
        names = [names[k] for k in keep]
    else:
        images, phys, names = _load_frames(
            root, rows, names, phys, bad, camera=camera, calibration=calibration,
            virtual=meta.get("target", "in_image") == "virtual", virtual_targets=virtual_targets,
            seed=seed, near_target=near_target, strict=strict, workers=workers, tool=tool)
    bad.sort()
    if len(bad) > max_bad_fraction * n_rows or len(images) == 0:
        lines = "; ".join(f"row {r} ({f}): {why}" for r, f, why in bad[:5])
        raise DatasetError(f"{root}: {len(bad)} of {n_rows} rows are bad (more than "
                           f"{max_bad_fraction:.0%}): {lines}")
    if images.dtype != np.float16:   # large simulator sets stay float16 (half the memory)
        images = images.astype(np.float32, copy=False)
    ds = Dataset(images, normalise(phys[:, :2], phys[:, 2:]), names, bad, source=str(root),
                 camera=camera, tool=tool)
    if verbose:
        print(ds.summary(), file=sys.stderr)
    return ds


def _read_row_frame(path: Path, frames_camera: CameraConfig, camera: CameraConfig, calibration
                    ) -> tuple[np.ndarray | None, str | None]:
    """(frame in the virtual camera, None), or (None, what is wrong with the file)."""
    try:
        frame = read_frame(path, frames_camera)
    except ValueError as err:
        return None, str(err)
    return frame if calibration is None else calibration.to_virtual(frame, camera), None


def _load_frames(root: Path, rows, names, phys, bad, *, camera: CameraConfig, calibration,
                 virtual: bool, virtual_targets: int, seed: int, near_target: float, strict: bool,
                 workers: int, tool=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The camera frames of the rows as network images, read in ``workers`` threads, with the
    virtual targets painted in (``virtual``): (images, physical labels (M, 5), file names).
    Unreadable files join ``bad`` (or, ``strict``, are refused)."""
    frames_camera = raw_camera(camera, calibration)
    images_list, keep = [], []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        read = pool.map(lambda name: _read_row_frame(root / name, frames_camera, camera, calibration),
                        names)
        for k, (frame, err) in enumerate(read):
            if err is not None:
                bad.append((rows[k], names[k], err))
                if strict:
                    raise DatasetError(f"{root / names[k]} (labels.csv row {rows[k]}): {err}")
                continue
            if virtual:
                targets = _virtual_targets(phys[k], k, seed, virtual_targets, near_target, tool)
                painted = add_target(np.repeat(frame[None], len(targets), 0),
                                     np.array(targets), camera)
                images_list.append(preprocess(painted, camera))
                keep.extend([(k, t) for t in targets])
            else:
                images_list.append(preprocess(frame, camera)[None])
                keep.append((k, phys[k, :2]))
    images = np.concatenate(images_list) if images_list else np.zeros((0, 84, 84), np.float32)
    phys = np.array([np.concatenate([t, phys[k, 2:]]) for k, t in keep]).reshape(-1, 5)
    return images, phys, [names[k] for k, _ in keep]


def _virtual_targets(labels: np.ndarray, k: int, seed: int, virtual_targets: int,
                     near_target: float, tool=None) -> list:
    """Row ``k``'s targets: its labelled one, then ``virtual_targets - 1`` drawn (seeded by
    (seed, k)) as in Algorithm 1 (tool points of ``tool``), a share ``near_target`` of them at
    the frame's hand."""
    targets = [labels[:2]]
    if virtual_targets > 1:
        rng = np.random.default_rng([seed, k])
        drawn = tool_arm(tool).sample_targets(rng, virtual_targets - 1)
        n_near = int(round((virtual_targets - 1) * near_target))
        if n_near:
            drawn[:n_near] = near_targets(np.repeat(labels[None, 2:], n_near, 0), rng, tool=tool)
        targets += list(drawn)
    return targets


def sim_test_set(n: int, seed: int, tool=None) -> Dataset:
    """Simulator test images through the exact camera pipeline (render -> preprocess), for the
    tool point of ``tool`` (None: the paper's)."""
    target, q = sample_scenes(n, seed, tool=tool)
    images = np.concatenate([render_net_images(target[i:i + 64], q[i:i + 64], tool=tool)
                             for i in range(0, n, 64)])
    return Dataset(images, normalise(target, q), source=f"sim (seed {seed})", tool=parse_tool(tool).name)
