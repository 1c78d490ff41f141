"""reach datasets <-> LeRobotDataset folders (the layout of LeRobot's ``codebase_version`` v3.0).

The ``lerobot`` package itself is not used: its wheels for Python 3.11 (0.4.x) require
``torch<2.11`` and would replace this project's pinned CPU torch, and 0.5+ needs Python 3.12.  The
folder layout is therefore written and read here with ``pyarrow``, following LeRobot's sources
(``lerobot/datasets/utils.py``: ``DEFAULT_DATA_PATH``, ``DEFAULT_EPISODES_PATH``,
``DEFAULT_TASKS_PATH``, ``DEFAULT_FEATURES``)::

    OUT/meta/info.json                          codebase_version "v3.0", fps, features, paths
    OUT/meta/stats.json                         min/max/mean/std/count of every feature
    OUT/meta/tasks.parquet                      task (pandas index) -> task_index
    OUT/meta/episodes/chunk-000/file-000.parquet  one row per episode (length, from/to index)
    OUT/data/chunk-000/file-000.parquet         one row per frame
    OUT/meta/reach.json                         this project's extras (target mode, camera)

Each frame of a reach dataset is one row of episode 0: ``observation.image`` (an ``image``
feature: the frame's PNG/JPEG bytes, as Hugging Face ``datasets`` stores an ``Image``),
``observation.state`` (float32 [left_s1, left_e1, left_w1], rad),
``observation.environment_state`` (float32 [target_x, target_y], m), and LeRobot's
``timestamp``/``frame_index``/``episode_index``/``index``/``task_index``.  There is no
``action``: the frames are labelled stills, not a trajectory.

Import reads v3.0 and v2.x folders (``data/**/*.parquet``): the image feature (``image``: bytes or
a path in the parquet; ``video``: the frame decoded with OpenCV from ``videos/``), the joint-state
feature and, if given, a target feature.  Joints are picked by name (``left_s1``, ``left_e1``,
``left_w1`` by default) or by index.  Without a target feature the frames get a placeholder target
and the dataset is ``"target": "virtual"``.  Problems raise :class:`LeRobotError` naming the file
and the feature.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from .datasets import (DatasetError, _camera_from, _read_labels, _read_meta, read_frame,
                       write_dataset)
from .kinematics import JOINT_NAMES
from .scene import DEFAULT_CAMERA, OMEGA_HIGH, OMEGA_LOW

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
IMAGE_KEY = "observation.image"
STATE_KEY = "observation.state"
TARGET_KEY = "observation.environment_state"
TARGET_NAMES = ("target_x", "target_y")
PLACEHOLDER_TARGET = (0.5, 0.2)
DEFAULT_TASK = "reach the target with the hand"


class LeRobotError(DatasetError):
    """A LeRobot folder cannot be written or read; the message names the file and feature."""


# ----------------------------------------------------------------------------- export
def _scalar(dtype: str) -> dict:
    return {"dtype": dtype, "shape": [1], "names": None}


def _features(h: int, w: int) -> dict:
    return {
        IMAGE_KEY: {"dtype": "image", "shape": [h, w, 3], "names": ["height", "width", "channels"]},
        STATE_KEY: {"dtype": "float32", "shape": [3], "names": list(JOINT_NAMES)},
        TARGET_KEY: {"dtype": "float32", "shape": [2], "names": list(TARGET_NAMES)},
        "timestamp": _scalar("float32"), "frame_index": _scalar("int64"),
        "episode_index": _scalar("int64"), "index": _scalar("int64"),
        "task_index": _scalar("int64"),
    }


def _hf_features() -> dict:
    """The Hugging Face ``datasets`` schema of a data file (stored in the parquet metadata)."""
    def seq(n):
        return {"feature": {"dtype": "float32", "_type": "Value"}, "length": n, "_type": "Sequence"}
    value = {"dtype": "int64", "_type": "Value"}
    return {IMAGE_KEY: {"_type": "Image"}, STATE_KEY: seq(3), TARGET_KEY: seq(2),
            "timestamp": {"dtype": "float32", "_type": "Value"}, "frame_index": value,
            "episode_index": value, "index": value, "task_index": value}


def _stats(values: np.ndarray) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"min": v.min(0).tolist(), "max": v.max(0).tolist(), "mean": v.mean(0).tolist(),
            "std": v.std(0).tolist(), "count": [len(v)]}


def _image_stats(frames_sum, frames_sq, frames_min, frames_max, n_px) -> dict:
    mean = frames_sum / n_px
    std = np.sqrt(np.maximum(frames_sq / n_px - mean ** 2, 0.0))
    per_c = [mean, std, frames_min, frames_max]
    mean, std, lo, hi = ([[[float(x)]] for x in a] for a in per_c)
    return {"min": lo, "max": hi, "mean": mean, "std": std, "count": [int(n_px)]}


def _write_table(path: Path, columns: dict, hf: dict | None = None,
                 pandas_index: str | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.table(columns)
    meta = {}
    if hf is not None:
        meta[b"huggingface"] = json.dumps({"info": {"features": hf}}).encode()
    if pandas_index is not None:   # as pandas writes a DataFrame indexed by this column
        cols = [{"name": n, "field_name": n, "pandas_type": "unicode" if n == pandas_index
                 else "int64", "numpy_type": "object" if n == pandas_index else "int64",
                 "metadata": None} for n in columns]
        meta[b"pandas"] = json.dumps({
            "index_columns": [pandas_index], "column_indexes": [], "columns": cols,
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.0"}).encode()
    if meta:
        table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _read_frames(root: Path, names, camera):
    """(kept positions, file bytes, per-channel sums for stats, size) of the readable frames."""
    keep, blobs, bad = [], [], []
    acc = [np.zeros(3), np.zeros(3), np.full(3, np.inf), np.full(3, -np.inf), 0]
    for k, name in enumerate(names):
        try:
            frame = read_frame(root / name, camera)
        except ValueError as err:
            bad.append((name, str(err)))
            continue
        f = frame.reshape(-1, 3).astype(np.float64) / 255.0
        acc[0] += f.sum(0)
        acc[1] += (f ** 2).sum(0)
        acc[2] = np.minimum(acc[2], f.min(0))
        acc[3] = np.maximum(acc[3], f.max(0))
        acc[4] += len(f)
        keep.append(k)
        blobs.append((root / name).read_bytes())
    return keep, blobs, acc, bad


def export_lerobot(dataset: str | os.PathLike, out: str | os.PathLike, *, fps: float = 10.0,
                   task: str = DEFAULT_TASK, robot_type: str = "baxter_left_arm_plane") -> Path:
    """Write a frame dataset (:mod:`reach_core.datasets`) as a LeRobotDataset v3.0 folder."""
    import pyarrow as pa
    root, out = Path(dataset), Path(out)
    meta = _read_meta(root)
    if meta.get("net_images"):
        raise LeRobotError(f"{root}: a network-image dataset (net_images.npy) holds 84x84 crops, "
                           f"not camera frames; render it with frames to export it")
    if (out / "meta" / "info.json").exists():
        raise LeRobotError(f"{out}: already holds a LeRobot dataset (meta/info.json)")
    camera = _camera_from(meta)
    _rows, names, phys, bad_rows = _read_labels(root)
    keep, blobs, acc, bad = _read_frames(root, names, camera)
    if not keep:
        raise LeRobotError(f"{root}: no readable frame to export"
                           + (f" (e.g. {bad[0][0]}: {bad[0][1]})" if bad else ""))
    phys = phys[keep]
    n = len(keep)
    state, target = phys[:, 2:].astype(np.float32), phys[:, :2].astype(np.float32)
    ts = (np.arange(n) / fps).astype(np.float32)
    idx = np.arange(n, dtype=np.int64)
    zeros = np.zeros(n, dtype=np.int64)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = pa.array([{"bytes": b, "path": Path(names[k]).name} for k, b in zip(keep, blobs)],
                      type=image_type)
    _write_table(out / DATA_PATH.format(chunk_index=0, file_index=0), {
        IMAGE_KEY: images,
        STATE_KEY: pa.array(list(state), type=pa.list_(pa.float32(), 3)),
        TARGET_KEY: pa.array(list(target), type=pa.list_(pa.float32(), 2)),
        "timestamp": pa.array(ts), "frame_index": pa.array(idx), "episode_index": pa.array(zeros),
        "index": pa.array(idx), "task_index": pa.array(zeros)}, hf=_hf_features())
    _write_table(out / EPISODES_PATH.format(chunk_index=0, file_index=0), {
        "episode_index": pa.array([0], pa.int64()), "tasks": pa.array([[task]]),
        "length": pa.array([n], pa.int64()),
        "data/chunk_index": pa.array([0], pa.int64()), "data/file_index": pa.array([0], pa.int64()),
        "dataset_from_index": pa.array([0], pa.int64()),
        "dataset_to_index": pa.array([n], pa.int64()),
        "meta/episodes/chunk_index": pa.array([0], pa.int64()),
        "meta/episodes/file_index": pa.array([0], pa.int64())})
    _write_table(out / TASKS_PATH, {"task": pa.array([task]),
                                    "task_index": pa.array([0], pa.int64())}, pandas_index="task")
    _write_meta_files(out, meta, camera, (n, fps, task, robot_type),
                      {STATE_KEY: _stats(state), TARGET_KEY: _stats(target),
                       IMAGE_KEY: _image_stats(*acc), "timestamp": _stats(ts[:, None]),
                       "frame_index": _stats(idx[:, None]), "index": _stats(idx[:, None]),
                       "episode_index": _stats(zeros[:, None]),
                       "task_index": _stats(zeros[:, None])},
                      bad + [(f, r) for _, f, r in bad_rows])
    return out


def _write_meta_files(out: Path, meta: dict, camera, run, stats: dict, bad) -> None:
    n, fps, task, robot_type = run
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": 1,
            "total_frames": n, "total_tasks": 1, "chunks_size": 1000,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 500, "fps": fps,
            "splits": {"train": "0:1"}, "data_path": DATA_PATH, "video_path": None,
            "features": _features(camera.height, camera.width)}
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4) + "\n")
    (out / "meta" / "stats.json").write_text(json.dumps(stats, indent=4) + "\n")
    extras = {k: v for k, v in meta.items() if k not in ("format", "n")}
    extras.update({"format": "reach.lerobot/1", "task": task, "image_key": IMAGE_KEY,
                   "state_key": STATE_KEY, "target_key": TARGET_KEY,
                   "skipped": [{"file": f, "reason": r} for f, r in bad]})
    (out / "meta" / "reach.json").write_text(json.dumps(extras, indent=2) + "\n")


# ----------------------------------------------------------------------------- import
def _load_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    if not root.is_dir():
        raise LeRobotError(f"LeRobot dataset folder not found: {root}")
    if not path.is_file():
        raise LeRobotError(f"{path}: missing; not a LeRobotDataset folder (v2 and v3 have "
                           f"meta/info.json)")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LeRobotError(f"{path}: not valid JSON ({err})") from None
    version = str(info.get("codebase_version", ""))
    if not version.startswith(("v2", "v3")):
        raise LeRobotError(f"{path}: codebase_version {version!r}; only v2.x and v3.x are read")
    if not isinstance(info.get("features"), dict):
        raise LeRobotError(f"{path}: no 'features' object")
    return info


def _names(feature: dict) -> list[str]:
    names = feature.get("names")
    if isinstance(names, dict):   # v2 style {"motors": [...]}
        names = next((v for v in names.values() if isinstance(v, list)), None)
    return [str(n) for n in names] if isinstance(names, list) else []


def _pick(info: dict, root: Path, key: str, wanted, what: str) -> list[int]:
    """Indices into vector feature ``key`` of the ``wanted`` names or indices."""
    path = root / "meta" / "info.json"
    feat = info["features"].get(key)
    if feat is None:
        kind = "joint-state" if what == "joint" else what
        raise LeRobotError(f"{path}: no {kind} feature {key!r} (features: "
                           f"{', '.join(sorted(info['features']))})")
    size = int(np.prod(feat.get("shape") or [1]))
    names = _names(feat)
    out = []
    for w in wanted:
        if isinstance(w, int) or str(w).isdigit():
            i = int(w)
        elif str(w) in names:
            i = names.index(str(w))
        else:
            raise LeRobotError(f"{path}: feature {key!r} has no {what} named {w!r} (its names: "
                               f"{', '.join(names) or 'none'}); give them by index")
        if not 0 <= i < size:
            raise LeRobotError(f"{path}: feature {key!r} has {size} values, no index {i}")
        out.append(i)
    return out


def _pick_image_key(info: dict, root: Path, requested: str | None) -> str:
    feats = info["features"]
    visual = [k for k, f in feats.items() if f.get("dtype") in ("image", "video")]
    if requested:
        if requested not in visual:
            raise LeRobotError(f"{root / 'meta' / 'info.json'}: no image or video feature "
                               f"{requested!r} (those it has: {', '.join(visual) or 'none'})")
        return requested
    if len(visual) != 1:
        raise LeRobotError(f"{root / 'meta' / 'info.json'}: "
                           + (f"{len(visual)} camera features ({', '.join(visual)}): pick one "
                              f"with --image-key" if visual else "no image or video feature"))
    return visual[0]


def _read_data(root: Path, columns: list[str]) -> dict[str, list]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    files = sorted((root / "data").glob("**/*.parquet"))
    if not files:
        raise LeRobotError(f"{root / 'data'}: no parquet files")
    parts = {c: [] for c in columns}
    for f in files:
        try:
            have = pq.read_schema(f).names
            missing = [c for c in columns if c not in have]
            if missing:
                raise LeRobotError(f"{f}: no column {', '.join(missing)} (has {', '.join(have)})")
            table = pq.read_table(f, columns=columns)
        except (OSError, pa.ArrowException) as err:
            raise LeRobotError(f"{f}: unreadable parquet ({err})") from None
        for c in columns:
            parts[c].extend(table.column(c).to_pylist())
    return parts


def _image_frames(root: Path, cells: list):
    """RGB frames of an ``image`` feature: each cell is {bytes, path} (or a path string)."""
    from PIL import Image, UnidentifiedImageError
    for k, cell in enumerate(cells):
        data = cell.get("bytes") if isinstance(cell, dict) else None
        path = cell.get("path") if isinstance(cell, dict) else cell
        try:
            src = io.BytesIO(data) if data else (root / str(path))
            with Image.open(src) as img:
                yield np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, TypeError) as err:
            raise LeRobotError(f"{root}: image of frame {k} ({path}) unreadable: {err}") from None


def _episode_videos(root: Path, info: dict, key: str) -> dict[int, tuple[Path, float]]:
    """episode -> (video file, start time in it) for a ``video`` feature (v3 episodes metadata,
    or v2's one file per episode)."""
    import pyarrow.parquet as pq
    template = info.get("video_path") or ""
    out = {}
    if str(info["codebase_version"]).startswith("v2"):
        size = int(info.get("chunks_size", 1000))
        for ep in range(int(info.get("total_episodes", 0))):
            out[ep] = (root / template.format(episode_chunk=ep // size, video_key=key,
                                              episode_index=ep), 0.0)
        return out
    cols = [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
    for f in sorted((root / "meta" / "episodes").glob("**/*.parquet")):
        t = pq.read_table(f).to_pydict()
        if not all(c in t for c in cols):
            raise LeRobotError(f"{f}: no {', '.join(cols)} for video feature {key!r}")
        for ep, c, i, t0 in zip(t["episode_index"], *(t[c] for c in cols)):
            out[int(ep)] = (root / template.format(video_key=key, chunk_index=c, file_index=i),
                            float(t0))
    return out


def _video_frames(root: Path, info: dict, key: str, episodes: list, stamps: list):
    """RGB frames of a ``video`` feature, decoded with OpenCV (each file once, kept in memory)."""
    import cv2
    where = _episode_videos(root, info, key)
    fps = float(info.get("fps", 30))
    cache: dict[Path, list] = {}
    for ep, ts in zip(episodes, stamps):
        if int(ep) not in where:
            raise LeRobotError(f"{root}: no video of feature {key!r} for episode {ep}")
        path, t0 = where[int(ep)]
        if path not in cache:
            cap = cv2.VideoCapture(str(path))
            frames = []
            while cap.isOpened():
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(frame[..., ::-1])
            cap.release()
            if not frames:
                raise LeRobotError(f"{path}: missing or not decodable by OpenCV (feature {key!r})")
            cache[path] = frames
        i = int(round((t0 + float(ts)) * fps))
        if i >= len(cache[path]):
            raise LeRobotError(f"{path}: frame {i} (t = {t0 + float(ts):.3f} s) is past its "
                               f"{len(cache[path])} frames")
        yield np.ascontiguousarray(cache[path][i])


def _reach_extras(root: Path) -> dict:
    path = root / "meta" / "reach.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as err:
        raise LeRobotError(f"{path}: not valid JSON ({err})") from None


def _labels(state: np.ndarray, target: np.ndarray, root: Path, state_key: str):
    """Rows with joints and target inside the box: (kept rows, skipped {row: reason})."""
    lo, hi = OMEGA_LOW, OMEGA_HIGH
    skipped = {}
    for k in range(len(state)):
        if not np.all(np.isfinite(state[k])) or np.any(state[k] < lo[2:] - 1e-3) or \
                np.any(state[k] > hi[2:] + 1e-3):
            skipped[k] = f"{state_key} {np.round(state[k], 3).tolist()} outside the joint limits"
        elif not np.all(np.isfinite(target[k])) or np.any(target[k] < lo[:2]) or \
                np.any(target[k] > hi[:2]):
            skipped[k] = f"target {np.round(target[k], 3).tolist()} outside the workspace box"
    if len(skipped) == len(state):
        raise LeRobotError(f"{root}: no frame has usable labels, e.g. frame 0: {skipped[0]}")
    return np.array([k for k in range(len(state)) if k not in skipped], np.int64), skipped


def import_lerobot(src: str | os.PathLike, out: str | os.PathLike, *, image_key: str | None = None,
                   state_key: str | None = None, joints=None, target_key: str | None = None,
                   target_mode: str | None = None, placeholder_target=PLACEHOLDER_TARGET,
                   image_format: str = "png") -> Path:
    """Write a LeRobotDataset folder (v2.x/v3.x) as a reach dataset folder.

    ``joints``: three names or indices into ``state_key`` (default ``observation.state``) for
    left_s1, left_e1, left_w1 (default: those names).  ``target_key``: a feature whose first two
    values (or ``target_x``/``target_y``) are the target; without one the frames get
    ``placeholder_target`` and ``"target": "virtual"``.  Folders this module wrote carry
    meta/reach.json and come back as they were exported.
    """
    root = Path(src)
    info = _load_info(root)
    extras = _reach_extras(root)
    state_key = state_key or extras.get("state_key", STATE_KEY)
    target_key = target_key or extras.get("target_key")
    if extras.get("target_key") and target_key not in info["features"]:
        target_key = None
    key = _pick_image_key(info, root, image_key or extras.get("image_key"))
    j_idx = _pick(info, root, state_key, list(joints or JOINT_NAMES), "joint")
    cols = [state_key, "episode_index", "timestamp"] + ([target_key] if target_key else [])
    video = info["features"][key].get("dtype") == "video"
    data = _read_data(root, cols + ([] if video else [key]))
    state = np.array([np.asarray(v, np.float64)[j_idx] for v in data[state_key]]).reshape(-1, 3)
    if target_key:
        names = _names(info["features"][target_key])
        t_idx = _pick(info, root, target_key, TARGET_NAMES if all(
            n in names for n in TARGET_NAMES) else [0, 1], "target")
        target = np.array([np.asarray(v, np.float64)[t_idx] for v in data[target_key]])
        mode = target_mode or extras.get("target", "in_image")
    else:
        target = np.tile(np.asarray(placeholder_target, np.float64), (len(state), 1))
        mode = "virtual"
    keep, skipped = _labels(state, target, root, state_key)
    frames = (_video_frames(root, info, key, data["episode_index"], data["timestamp"]) if video
              else _image_frames(root, data[key]))
    wanted = set(keep.tolist())
    kept = (f for k, f in enumerate(frames) if k in wanted)
    from .bags import frame_source
    w, h, chunk = frame_source(kept, f"{root}: feature {key!r}", LeRobotError)
    meta = {k: v for k, v in extras.items() if k in ("camera", "source", "seed", "joint_design",
                                                      "collection", "bag", "tool")}
    if "camera" not in meta and (int(w), int(h)) != (DEFAULT_CAMERA.width, DEFAULT_CAMERA.height):
        meta["camera"] = {"width": int(w), "height": int(h)}
    meta["lerobot"] = {"path": str(root.resolve()), "codebase_version": info["codebase_version"],
                       "image_key": key, "state_key": state_key, "joints": j_idx,
                       "target_key": target_key, "skipped": {str(k): v for k, v in skipped.items()}}
    if not target_key:
        meta["placeholder_target"] = [float(v) for v in placeholder_target]
    q = np.clip(state[keep], OMEGA_LOW[2:], OMEGA_HIGH[2:])
    return write_dataset(out, chunk, target[keep], q, target_mode=mode, meta=meta,
                         image_format=image_format, progress=False)
