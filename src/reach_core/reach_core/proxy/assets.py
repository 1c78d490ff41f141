"""The proxy renderer's assets: pybullet (imported lazily, quietly), Baxter's URDF edited and its
meshes decimated into a cache in the temp folder, and scikit-image's photographs for the room."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..kinematics import TOOL_PRESETS, TOOL_TOLERANCE

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "page", "text", "moon",
          "clock", "hubble_deep_field", "immunohistochemistry", "colorwheel", "cat", "logo")
MIN_FACES, MAX_FACES, KEEP_FACES = 300, 8000, 0.3   # mesh decimation: faces kept per part


class ProxyRenderError(RuntimeError):
    """pybullet, the Baxter meshes or the photographs are not available (the message says how)."""


@contextlib.contextmanager
def _quiet():
    """Silence pybullet's C-level prints (build time, URDF warnings) on stdout and stderr."""
    import sys
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _pybullet():
    try:
        with _quiet():
            import pybullet
    except ImportError as err:
        raise ProxyRenderError(f"the proxy renderer needs pybullet (pip install pybullet; it is "
                               f"in requirements.txt): {err}") from None
    return pybullet


def baxter_description() -> Path:
    """The folder of Rethink's ``baxter_description`` (URDF and meshes) that the PyPI package
    ``example-robot-data`` installs (under its ``cmeel.prefix``)."""
    import importlib.util
    import sys
    candidates = [Path(p) / "cmeel.prefix" / "share" / "example-robot-data" / "robots" /
                  "baxter_description" for p in sys.path if p]
    spec = importlib.util.find_spec("cmeel")
    if spec is not None and spec.origin:
        candidates.insert(0, Path(spec.origin).parents[1] / "cmeel.prefix" / "share" /
                          "example-robot-data" / "robots" / "baxter_description")
    for path in candidates:
        if (path / "urdf" / "baxter.urdf").is_file():
            return path
    raise ProxyRenderError("Baxter's URDF and meshes were not found: pip install "
                           "example-robot-data (it is in requirements.txt)")


def _edit_urdf(text: str, share: Path, tool_length: float = TOOL_PRESETS["paper"]) -> str:
    """Baxter's URDF with absolute mesh paths, no collision shapes, the left gripper's fingers
    left out and its paddle tips moved so that they end at the tool point ``tool_length`` m past
    w1 (the task's end-effector, 0.28 m, by default); for the electric gripper's fingertips
    (kinematics.TOOL_PRESETS, 0.3907 m: the URDF's own gripper) the gripper is left as it is."""
    text = text.replace("package://", f"{share}/")
    text = re.sub(r"<collision>.*?</collision>", "", text, flags=re.DOTALL)   # drawn, never simulated
    if abs(tool_length - TOOL_PRESETS["electric_gripper_fingertips"]) <= TOOL_TOLERANCE:
        return text
    for finger in ("l_gripper_l_finger", "l_gripper_r_finger"):
        text = re.sub(rf'(<link name="{finger}">\s*)<visual>.*?</visual>', r"\1", text, flags=re.DOTALL)
    # hand flange 0.2295 m past w1; gripper base on it; fingers' joints 0.02 m past the base;
    # the paddle tip spans 0.0335 m below its frame to 0.0035 m above it: frame at 0.2765 m
    text = re.sub(r'(<joint name="left_gripper_base_joint" type="fixed">\s*<origin rpy="0 0 0" '
                  r'xyz=)"0 0 0.025"', r'\1"0 0 0.0"', text)
    tip = round(0.027 + tool_length - TOOL_PRESETS["paper"], 6)   # 0.027 for the paper's point
    text = re.sub(r'(<joint name="l_gripper_(l|r)_finger_tip_joint" type="fixed">\s*<origin '
                  r'rpy="0 0 0" xyz="0.0 (-?)0.01725) 0.1127"', rf'\1 {tip:g}"', text)
    return text


def _cache_dir() -> Path:
    cache = Path(tempfile.gettempdir()) / f"reach_proxy_{os.getuid()}"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _write_once(path: Path, text: str) -> Path:
    if not path.is_file():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _simplified_visuals(mesh: Path, out: Path) -> list[tuple[str, tuple]]:
    """One Collada mesh as decimated OBJ parts, one per material: [(OBJ path, RGBA)].  The
    meshes have up to 75,000 triangles, which TinyRenderer draws slowly; at a webcam's
    resolution a few thousand a part look the same."""
    import fast_simplification
    import trimesh
    scene = trimesh.load(str(mesh), force="scene")
    parts = []
    for k, geom in enumerate(scene.dump(concatenate=False)):
        merged = trimesh.Trimesh(geom.vertices, geom.faces, process=True)   # weld the vertices
        faces = len(merged.faces)
        ratio = min(faces, max(MIN_FACES, min(MAX_FACES, int(faces * KEEP_FACES)))) / faces
        pieces = []
        for piece in merged.split(only_watertight=False):     # small pieces (a pole) stay whole
            v, f = np.asarray(piece.vertices), np.asarray(piece.faces)
            if len(f) > MIN_FACES and ratio < 1:
                v, f = fast_simplification.simplify(v, f, target_reduction=1 - max(
                    ratio, MIN_FACES / len(f)))
            pieces.append(trimesh.Trimesh(v, f, process=False))
        both = trimesh.util.concatenate(pieces)
        verts, tris = both.vertices, both.faces
        try:
            rgba = tuple(float(c) / 255 for c in geom.visual.material.main_color)
        except AttributeError:
            rgba = tuple(float(c) / 255 for c in geom.visual.main_color)
        rgba = rgba[:3] + (1.0,)
        path = out / f"{mesh.stem}_{k}.obj"
        tmp = out / f"{mesh.stem}_{k}.{os.getpid()}.tmp"
        trimesh.Trimesh(verts, tris, process=False).export(str(tmp), file_type="obj")
        os.replace(tmp, path)                  # another process may be reading the cache
        parts.append((str(path), rgba))
    return parts


def _simplify_urdf(text: str) -> str:
    """The URDF with every Collada visual replaced by its decimated, coloured OBJ parts."""
    out = _cache_dir() / f"meshes_{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    out.mkdir(exist_ok=True)
    done: dict = {}

    def replace_visual(match) -> str:
        block = match.group(0)
        mesh = re.search(r'<mesh filename="([^"]+\.DAE)"', block)
        if mesh is None:
            return block
        if mesh.group(1) not in done:
            done[mesh.group(1)] = _simplified_visuals(Path(mesh.group(1)), out)
        origin = re.search(r"<origin[^>]*/>", block)
        origin = origin.group(0) if origin else ""
        parts = done[mesh.group(1)]
        colour = re.search(r'<color rgba="([^"]+)"', block)
        if len(parts) == 1 and colour:          # one material: the URDF's colour (dark body)
            rgba = tuple(float(c) for c in colour.group(1).split()[:3]) + (1.0,)
            parts = [(parts[0][0], rgba)]
        return "".join(
            f'<visual>{origin}<geometry><mesh filename="{path}"/></geometry>'
            f'<material name="proxy_{abs(hash(rgba)) % 10**8}"><color rgba="'
            f'{" ".join(f"{c:.3f}" for c in rgba)}"/></material></visual>'
            for path, rgba in parts)
    return re.sub(r"<visual>.*?</visual>", replace_visual, text, flags=re.DOTALL)


def _versions() -> str:
    """Versions of the mesh tools (part of the cache's key)."""
    from importlib import metadata
    out = []
    for name in ("trimesh", "pycollada", "fast-simplification", "example-robot-data"):
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=none")
    return ",".join(out)


def _urdf_path(tool_length: float = TOOL_PRESETS["paper"]) -> Path:
    """The edited URDF (fingertips at ``tool_length`` m past w1), written once into a cache folder
    (no download: the meshes are read where the package installed them), with decimated meshes
    when trimesh, pycollada and fast-simplification are installed (else Rethink's full meshes,
    slower)."""
    root = baxter_description()
    text = _edit_urdf((root / "urdf" / "baxter.urdf").read_text(), root.parents[2], tool_length)
    key = f"{text}{MIN_FACES}{MAX_FACES}{KEEP_FACES}{_versions()}"
    key = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = _cache_dir() / f"baxter_{key}.urdf"
    if path.is_file():
        return path
    try:
        simple = _simplify_urdf(text)
    except ImportError:
        return _write_once(_cache_dir() / f"baxter_full_{key}.urdf", text)
    return _write_once(path, simple)


_PHOTO_CACHE: list = []
_PHOTO_LOCK = threading.Lock()


def photographs() -> list[np.ndarray]:
    """scikit-image's bundled sample photographs as uint8 RGB (those that load offline)."""
    with _PHOTO_LOCK:
        if not _PHOTO_CACHE:
            try:
                from skimage import data
            except ImportError as err:
                raise ProxyRenderError(f"the proxy renderer's room needs scikit-image (pip "
                                       f"install scikit-image; in requirements.txt): {err}") from None
            for name in PHOTOS:
                try:
                    img = np.asarray(getattr(data, name)())
                except Exception:   # noqa: BLE001 - a sample that needs a download is skipped
                    continue
                if img.ndim == 2:
                    img = np.repeat(img[..., None], 3, axis=-1)
                _PHOTO_CACHE.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
            if len(_PHOTO_CACHE) < 4:
                raise ProxyRenderError("fewer than 4 of scikit-image's sample images load")
        return _PHOTO_CACHE
