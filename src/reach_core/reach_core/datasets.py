"""Labelled image datasets for the perception module: writing, loading, checking.

A dataset is a folder::

    DIR/
      labels.csv      one row per image (header required), see LABEL_COLUMNS
      images/         camera frames: PNG or JPEG, 8-bit RGB, the camera's width x height
      dataset.json    optional: {"target": "in_image" | "virtual", "camera": {...}, "tool": {...}, ...}

``labels.csv`` columns: ``image`` (path relative to DIR), the scene configuration in physical
units -- ``target_x``, ``target_y`` (metres, the arm's plane frame of
:mod:`reach_core.kinematics`), ``left_s1``, ``left_e1``, ``left_w1`` (radians) -- and the same
normalised to [0, 1] (``omega_target_x`` ... ``omega_left_w1``, :func:`reach_core.scene.normalise`).
The physical columns are the truth; the normalised ones are optional on input and, if present,
must agree with them (to 1e-4).

``dataset.json`` ``"target"`` says whether the target disc is already in the frames
(``"in_image"``, the default, as written for simulator datasets) or must be painted into them as
the paper's *virtual target* (``"virtual"``: frames of the robot without a target, e.g. from a real
webcam, with :func:`reach_core.renderer.add_target` applied at load time).  ``"camera"`` overrides
fields of :data:`reach_core.scene.DEFAULT_CAMERA` (width, height, px_per_m, origin_px, roi) for
frames of another size or camera placement; every frame must have that width x height.
``"tool"`` (``{"name", "length"}``, :mod:`reach_core.kinematics`; absent: the paper's) is the tool
point the labels' targets were drawn for and the arm was drawn to: a run with another tool refuses
the dataset (:func:`check_dataset_tool`).

Loading goes through the same pipeline as live frames (:func:`reach_core.renderer.preprocess`).
A row whose file is missing, empty, unreadable, not 8-bit RGB, of the wrong size, or whose labels
are NaN or out of range is skipped; each skip is recorded with its row number, file and reason, and
:func:`load_dataset` fails (:class:`DatasetError`) when more than ``max_bad_fraction`` of the rows
are bad, or with ``strict=True`` at the first bad row.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .kinematics import JOINT_DESIGNS, ToolError, check_tool, parse_tool, tool_arm
from .renderer import add_target, near_targets, preprocess, render, render_net_images, sample_scenes
from .scene import DEFAULT_CAMERA, OMEGA_HIGH, OMEGA_LOW, OMEGA_NAMES, CameraConfig, normalise

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


# ----------------------------------------------------------------------------- writing
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


def _label_row(name: str, target, q) -> list:
    omega = normalise(target, q)
    return [name] + [f"{v:.6f}" for v in (*target, *q)] + [f"{v:.6f}" for v in omega]


def write_dataset(out: str | os.PathLike, frames_fn, target: np.ndarray, q: np.ndarray, *,
                  target_mode: str = "in_image", meta: dict | None = None, image_format: str = "png",
                  chunk: int = 64, jpeg_quality: int = 92, progress: bool = True, tool=None) -> Path:
    """Write a dataset: ``frames_fn(target_chunk, q_chunk, start)`` gives uint8 RGB frames for a
    chunk of scenes; labels are ``target`` (N, 2) m and ``q`` (N, 3) rad; ``tool`` (None: the
    paper's) is recorded in dataset.json."""
    from PIL import Image
    from tqdm import tqdm

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    ext = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg"}.get(image_format.lower())
    if ext is None:
        raise DatasetError(f"image format must be png or jpg, got {image_format!r}")
    n = len(q)
    rows = []
    with tqdm(total=n, desc=f"render {out.name}", unit="img", disable=not progress,
              file=sys.stderr) as bar:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            frames = frames_fn(target[start:stop], q[start:stop], start)
            for k, frame in enumerate(frames):
                name = f"images/{start + k:06d}{ext}"
                img = Image.fromarray(frame)
                if ext == ".jpg":
                    img.save(out / name, quality=jpeg_quality)
                else:
                    img.save(out / name, compress_level=6)
                rows.append(_label_row(name, target[start + k], q[start + k]))
            bar.update(stop - start)
    tmp = out / "labels.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LABEL_COLUMNS)
        w.writerows(rows)
    os.replace(tmp, out / "labels.csv")
    info = {"format": DATASET_FORMAT, "target": target_mode, "n": n,
            "tool": parse_tool(tool).as_dict(), **(meta or {})}
    (out / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def _design_meta(design: str) -> dict:
    return {} if design == "uniform" else {"joint_design": design}


def render_sim_dataset(out, n: int, seed: int = 0, *, design: str = "uniform", tool=None, **kw) -> Path:
    """N simple-simulator frames (targets drawn in), scenes uniform as in Algorithm 1 (or joint
    configurations laid out by ``design``: :meth:`~reach_core.kinematics.PlanarArm.design_joints`);
    the gripper drawn to, and the targets drawn for, the tool point of ``tool``."""
    target, q = sample_scenes(n, seed, design=design, tool=tool)
    return write_dataset(out, lambda t, qq, start: render(t, qq, tool=tool), target, q,
                         target_mode="in_image", tool=tool,
                         meta={"source": "sim", "seed": seed, **_design_meta(design)}, **kw)


def render_hifi_dataset(out, n: int, seed: int = 0, *, virtual: bool = True,
                        design: str = "uniform", tool=None, **kw) -> Path:
    """N higher-fidelity frames (:mod:`reach_core.hifi_renderer`); with ``virtual`` the frames
    hold no target and the labels' targets are painted at load time, as for real webcam frames.
    ``design`` lays out the joint configurations (uniform, halton, grid)."""
    from .hifi_renderer import render_hifi

    target, q = sample_scenes(n, seed, design=design, tool=tool)
    look_seed = seed * 1_000_003

    def frames(t, qq, start):
        return render_hifi(None if virtual else t, qq, seed=look_seed + start, tool=tool)

    kw.setdefault("image_format", "jpg")
    return write_dataset(out, frames, target, q, target_mode="virtual" if virtual else "in_image",
                         tool=tool, meta={"source": "hifi", "seed": seed, **_design_meta(design)}, **kw)


def render_proxy_dataset(out, n: int, seed: int = 0, *, target: str = "painted",
                         marker: bool = False, design: str = "uniform", tool=None, **kw) -> Path:
    """N frames of the held-out realistic proxy domain (:mod:`reach_core.proxy_renderer`): raw
    camera frames (not rectified) of the proxy camera, ``target`` "painted" (no disc in the
    frames: ``"target": "virtual"``) or "physical" (a blue disc on a stand: ``"in_image"``),
    with the calibration marker on the hand if ``marker``.  The true camera is saved as
    ``true_camera.yaml`` (ground truth for benchmarks only; training never reads it); frame i's
    exact (jittered) camera is ``proxy_renderer.frame_cameras(look_seed + i, 1)[0]``.  ``tool``:
    the tool point of the targets, labels and drawn fingertips (None: the paper's)."""
    from .proxy_renderer import LOOK_SEED_STRIDE, PROXY_CAMERA, render_proxy, seed_split

    if target not in ("painted", "physical"):
        raise DatasetError(f"--target must be painted or physical, got {target!r}")
    targets, q = sample_scenes(n, seed, design=design, tool=tool)
    look_seed = seed * LOOK_SEED_STRIDE

    def frames(t, qq, start):
        return render_proxy(t, qq, seed=look_seed + start, target_mode=target, marker=marker, tool=tool)

    kw.setdefault("image_format", "jpg")
    meta = {"source": "proxy", "domain": "proxy", "seed": seed, "split": seed_split(seed),
            "look_seed": look_seed, "proxy_target": target,
            "marker": bool(marker), "true_camera": "true_camera.yaml", **_design_meta(design)}
    out = write_dataset(out, frames, targets, q, tool=tool,
                        target_mode="virtual" if target == "painted" else "in_image", meta=meta, **kw)
    PROXY_CAMERA.save(Path(out) / "true_camera.yaml")
    return out


def save_net_dataset(out, images: np.ndarray, target: np.ndarray, q: np.ndarray,
                     meta: dict | None = None, tool=None) -> Path:
    """Large simulator datasets as network images: ``net_images.npy`` (N, 84, 84) float16 and
    ``labels.csv`` (its ``image`` column holds the index into the array)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "net_images.npy", images.astype(np.float16))
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LABEL_COLUMNS)
        w.writerows(_label_row(str(i), target[i], q[i]) for i in range(len(q)))
    info = {"format": DATASET_FORMAT, "target": "in_image", "n": len(q), "net_images": True,
            "tool": parse_tool(tool).as_dict(), **(meta or {})}
    (out / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    return out


def _render_net_chunk(args):
    target, q, supersample, tool = args
    return render_net_images(target, q, supersample=supersample, tool=tool).astype(np.float16)


def render_sim_net_images(n: int, seed: int = 0, supersample: int | None = 5, workers: int = 1,
                          chunk: int = 2048, progress: bool = True, tool=None):
    """N simulator network images rendered in ``workers`` processes: (float16 images, target, q),
    for the tool point of ``tool`` (None: the paper's)."""
    from tqdm import tqdm

    target, q = sample_scenes(n, seed, tool=tool)
    jobs = [(target[i:i + chunk], q[i:i + chunk], supersample, tool) for i in range(0, n, chunk)]
    images = np.empty((n, DEFAULT_CAMERA.net_size, DEFAULT_CAMERA.net_size), np.float16)
    bar = tqdm(total=n, desc="render sim", unit="img", disable=not progress, file=sys.stderr)
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("spawn" if sys.platform == "darwin" else "fork").Pool(workers) as pool:
            for k, out in enumerate(pool.imap(_render_net_chunk, jobs)):
                images[k * chunk:k * chunk + len(out)] = out
                bar.update(len(out))
    else:
        for k, job in enumerate(jobs):
            out = _render_net_chunk(job)
            images[k * chunk:k * chunk + len(out)] = out
            bar.update(len(out))
    bar.close()
    return images, target, q


# ----------------------------------------------------------------------------- loading
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


def _read_labels(root: Path, limit: int | None = None
                 ) -> tuple[list[int], list[str], np.ndarray, list[tuple[int, str, str]]]:
    """Rows of labels.csv: (row numbers, image names, physical labels (N, 5), bad rows)."""
    path, header, body = _read_csv(root, limit)
    header, col, cols, has_omega = _label_columns(path, header)
    rows, names, values, bad = _parse_rows(body, header, col["image"], cols)
    return _check_labels(rows, names, values, has_omega, bad)


def _read_csv(root: Path, limit: int | None) -> tuple[Path, list[str], list[tuple[int, list[str]]]]:
    """labels.csv's path, header and first ``limit`` rows (with their line numbers, from 2)."""
    path = root / "labels.csv"
    if not path.is_file():
        raise DatasetError(f"{root}: no labels.csv (see the dataset format in README.md)")
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            body = list(itertools.islice(enumerate(reader, start=2), limit))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: cannot read ({err})") from None
    if not header:
        raise DatasetError(f"{path}: empty file, expected a header {','.join(LABEL_COLUMNS)}")
    return path, header, body


def _label_columns(path: Path, header: list[str]) -> tuple[list[str], dict, list[int], bool]:
    """(stripped header, column index by name, indices of the physical then, if all present, the
    normalised label columns, whether they are); a header without the required columns is refused."""
    header = [h.strip() for h in header]
    missing = [c for c in ("image",) + PHYS_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{path}: header lacks column(s) {', '.join(missing)} "
                           f"(has {', '.join(header)})")
    col = {c: header.index(c) for c in header}
    has_omega = all(c in col for c in OMEGA_COLUMNS)
    cols = [col[c] for c in PHYS_COLUMNS] + ([col[c] for c in OMEGA_COLUMNS] if has_omega else [])
    return header, col, cols, has_omega


def _parse_rows(body, header: list[str], image_col: int, cols: list[int]
                ) -> tuple[list[int], list[str], np.ndarray, list[tuple[int, str, str]]]:
    """The rows' numbers, image names and label values (N, len(cols)); blank rows are left out,
    rows of the wrong length or with a label that is not a number are bad."""
    rows, names, values_ok, bad = [], [], [], []
    for line, values in body:
        if not values or all(not v.strip() for v in values):
            continue
        name = values[image_col].strip() if len(values) > image_col else ""
        if len(values) != len(header):
            bad.append((line, name, f"{len(values)} fields, the header has {len(header)}"))
            continue
        try:
            values_ok.append([float(values[c]) for c in cols])
        except ValueError as err:
            bad.append((line, name, f"label is not a number ({err})"))
            continue
        rows.append(line)
        names.append(name)
    return rows, names, np.array(values_ok, dtype=np.float64).reshape(len(rows), len(cols)), bad


def _check_labels(rows: list[int], names: list[str], arr: np.ndarray, has_omega: bool,
                  bad: list[tuple[int, str, str]]
                  ) -> tuple[list[int], list[str], np.ndarray, list[tuple[int, str, str]]]:
    """Keep the rows whose labels are finite, in range and agree with their normalised columns
    (if given); the others join ``bad`` with the reason, and ``bad`` is sorted."""
    phys = arr[:, :5]
    with np.errstate(invalid="ignore"):
        omega = (phys - OMEGA_LOW) / (OMEGA_HIGH - OMEGA_LOW)
    finite = np.all(np.isfinite(phys), axis=1)
    in_range = np.all((omega >= -1e-3) & (omega <= 1 + 1e-3), axis=1)
    agree = np.all(np.abs(arr[:, 5:] - omega) <= 1e-4, axis=1) if has_omega else \
        np.ones(len(rows), bool)
    good = finite & in_range & agree
    for k in np.flatnonzero(~good):
        bad.append((rows[k], names[k], _label_problem(phys[k], omega[k], finite[k], in_range[k])))
    rows = [r for r, g in zip(rows, good) if g]
    names = [n for n, g in zip(names, good) if g]
    labels = phys[good]
    bad.sort()
    return rows, names, labels, bad


def _label_problem(phys: np.ndarray, omega: np.ndarray, finite: bool, in_range: bool) -> str:
    """Why one row's labels (physical, normalised) are bad."""
    if not finite:
        which = [c for c, v in zip(PHYS_COLUMNS, phys) if not math.isfinite(v)]
        return f"label {', '.join(which)} is NaN or infinite"
    if not in_range:
        j = int(np.flatnonzero((omega < -1e-3) | (omega > 1 + 1e-3))[0])
        return (f"label out of range: {PHYS_COLUMNS[j]} = {phys[j]:.4f} is outside "
                f"[{OMEGA_LOW[j]:.4f}, {OMEGA_HIGH[j]:.4f}]")
    return "normalised columns disagree with the physical ones"


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


# ----------------------------------------------------------------------------- CLI
def _cmd_render(args) -> int:
    import time

    t0 = time.perf_counter()
    try:
        if args.n < 1:
            raise DatasetError(f"--n must be at least 1, got {args.n}")
        if args.source != "proxy" and (args.marker or args.target != "painted"):
            raise DatasetError("--target and --marker are for --source proxy")
        if args.net:
            if args.source != "sim":
                raise DatasetError("--net (network images) is for the simple simulator only")
            if args.design != "uniform":
                raise DatasetError("--net images are uniform scenes (no --design)")
            images, target, q = render_sim_net_images(args.n, args.seed, args.supersample,
                                                      workers=args.workers, tool=args.tool)
            out = save_net_dataset(args.out, images, target, q, tool=args.tool,
                                   meta={"source": "sim", "seed": args.seed,
                                         "supersample": args.supersample})
        elif args.source == "sim":
            out = render_sim_dataset(args.out, args.n, args.seed, design=args.design,
                                     image_format=args.format or "png", tool=args.tool)
        elif args.source == "proxy":
            from .proxy_renderer import ProxyRenderError
            try:
                out = render_proxy_dataset(args.out, args.n, args.seed, target=args.target,
                                           marker=args.marker, design=args.design, tool=args.tool,
                                           image_format=args.format or "jpg")
            except ProxyRenderError as err:
                raise DatasetError(str(err)) from None
        else:
            from .hifi_renderer import HifiRenderError
            try:
                out = render_hifi_dataset(args.out, args.n, args.seed, virtual=not args.target_in_image,
                                          design=args.design, image_format=args.format or "jpg",
                                          tool=args.tool)
            except HifiRenderError as err:
                raise DatasetError(str(err)) from None
    except (DatasetError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n = json.loads((Path(out) / "dataset.json").read_text())["n"]   # a grid may hold fewer
    print(f"wrote {n} labelled {args.source} images to {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def rectify_dataset(src, calibration, out, *, crop: bool = True, first: int | None = None,
                    progress: bool = True) -> Path:
    """Write ``src``'s frames as the virtual camera sees them (through ``calibration``, the camera
    that took them): a dataset of the nominal camera that needs no camera file any more, to look
    at or to train on elsewhere.  ``crop`` keeps only the networks' crop (its camera recorded in
    dataset.json), a quarter of the bytes of a full frame; ``first`` keeps only the first N
    frames (the 50 of a 200-frame collection, for an error-vs-frame-count curve)."""
    if first is not None and first < 1:
        raise ValueError(f"first must be a positive number of frames, not {first}")
    src = Path(src)
    meta = _read_meta(src)
    camera = _camera_from(meta)
    raw = raw_camera(camera, calibration)
    _, names, phys, bad = _read_labels(src)
    keep = [k for k, name in enumerate(names) if (src / name).is_file()][:first]
    x0, y0, w, h = camera.roi
    virtual = replace(camera, width=w, height=h, roi=(0, 0, w, h),
                      origin_px=(camera.origin_px[0] - x0, camera.origin_px[1] - y0)) \
        if crop else camera

    def frames(_target, _q, start):
        rows = keep[start:start + len(_q)]
        out_frames = [calibration.to_virtual(read_frame(src / names[k], raw), camera) for k in rows]
        return [f[y0:y0 + h, x0:x0 + w] for f in out_frames] if crop else out_frames

    info = {k: v for k, v in meta.items() if k not in ("format", "n", "camera")}
    info.update(camera=virtual.as_dict(), rectified_from=str(src),
                camera_file=calibration.as_dict())
    return write_dataset(out, frames, phys[keep, :2], phys[keep, 2:],
                         target_mode=meta.get("target", "in_image"), meta=info,
                         image_format="jpg", jpeg_quality=95, progress=progress)


def _cmd_rectify(args) -> int:
    from .camera_model import CameraFileError, CameraModel
    try:
        out = rectify_dataset(args.dir, CameraModel.load(args.camera), args.out,
                              crop=not args.full_frame, first=args.first)
    except (DatasetError, CameraFileError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.dir} as the virtual camera sees it to {out}")
    return 0


def _cmd_check(args) -> int:
    try:
        ds = load_dataset(args.dir, max_bad_fraction=args.max_bad_fraction, strict=args.strict,
                          verbose=False, tool=None)   # any tool: the dataset's own
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(ds.summary())
    return 0


def add_cli(sub) -> None:
    """``reach data render``, ``reach data check``, and the format converters of
    :mod:`reach_core.format_cli` (``from-bag``, ``export-lerobot``, ``import-lerobot``)."""
    from .format_cli import add_format_cli

    p = sub.add_parser(
        "render", help="render a labelled dataset (simple simulator or higher-fidelity MuJoCo)",
        description="Render N labelled images, scenes uniform as in Algorithm 1, to a dataset "
                    "folder (images/ + labels.csv + dataset.json; format in README.md).  "
                    "--source hifi frames hold no target: it is painted at load time (virtual "
                    "target), as for real webcam frames.")
    p.add_argument("--source", choices=("sim", "hifi", "proxy"), default="sim",
                   help="sim, hifi (MuJoCo, the tuning domain) or proxy (the held-out realistic "
                        "domain: test it, never train or tune on its test seeds)")
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="scene (and look) seed (default 0)")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--format", choices=("png", "jpg"), default=None,
                   help="image files (default: png for sim, jpg for hifi and proxy)")
    p.add_argument("--design", choices=JOINT_DESIGNS, default="uniform",
                   help="joint configurations: uniform draws (default, Algorithm 1), a shifted "
                        "Halton sequence, or a grid of at most N points (fills the joint box "
                        "evenly, for few labelled frames)")
    p.add_argument("--target-in-image", action="store_true",
                   help="hifi: draw the target into the frames instead of marking it virtual")
    p.add_argument("--target", choices=("painted", "physical"), default="painted",
                   help="proxy: painted (no disc in the frames, the virtual target is painted at "
                        "load time) or physical (a blue disc on a stand in the frames)")
    p.add_argument("--marker", action="store_true",
                   help="proxy: the calibration marker on the hand (calibration frames)")
    p.add_argument("--net", action="store_true",
                   help="sim: store 84x84 network images (net_images.npy) instead of camera frames")
    p.add_argument("--supersample", type=int, default=5, help="--net: renderer supersampling (5)")
    p.add_argument("--workers", type=int, default=1, help="--net: rendering processes (default 1)")
    p.add_argument("--tool", default="paper", help="tool point of the targets (and of the drawn gripper): "
                   "paper, electric_gripper_fingertips or metres from w1; recorded in dataset.json "
                   "(default: paper)")
    p.set_defaults(func=_cmd_render)

    r = sub.add_parser("rectify", help="a dataset's frames as the virtual camera sees them",
                       description="Resample a dataset's frames through the camera file of the "
                                   "camera that took them (reach calibrate) into the virtual "
                                   "camera the networks see, and write them as a new dataset "
                                   "(the networks' crop only, unless --full-frame).")
    r.add_argument("dir")
    r.add_argument("--camera", required=True, help="camera file (reach calibrate)")
    r.add_argument("--out", required=True, help="dataset folder to write")
    r.add_argument("--full-frame", action="store_true", help="keep the whole virtual frame")
    r.add_argument("--first", type=int, default=None, metavar="N",
                   help="only the first N frames (e.g. 50 of 200, for a frame-count curve)")
    r.set_defaults(func=_cmd_rectify)

    c = sub.add_parser("check", help="load a dataset and report its bad rows",
                       description="Load a dataset folder through the camera pipeline and list "
                                   "rows that would be skipped (file, row, reason).")
    c.add_argument("dir")
    c.add_argument("--strict", action="store_true", help="fail at the first bad row")
    c.add_argument("--max-bad-fraction", type=float, default=0.1)
    c.set_defaults(func=_cmd_check)
    add_format_cli(sub)
