"""Writing datasets: a folder of camera frames with their labels (:func:`write_dataset`), rendered
from the simple simulator, the higher-fidelity MuJoCo domain or the held-out proxy domain
(``render_*_dataset``), network-image datasets (:func:`save_net_dataset`,
:func:`render_sim_net_images`), and a dataset's frames rectified into the virtual camera
(:func:`rectify_dataset`)."""
from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..kinematics import parse_tool
from ..renderer import render, render_net_images, sample_scenes
from ..scene import DEFAULT_CAMERA, normalise
from .common import DATASET_FORMAT, LABEL_COLUMNS, DatasetError, _camera_from, _read_meta
from .labels import _read_labels
from .load import raw_camera, read_frame


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
    from ..hifi_renderer import render_hifi

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
    from ..proxy_renderer import LOOK_SEED_STRIDE, PROXY_CAMERA, render_proxy, seed_split

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
