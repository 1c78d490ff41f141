"""A held-out realistic proxy domain: a rendered stand-in for a real Baxter seen by a real webcam.

Used ONLY to test sim-to-real transfer (zero-shot and after adaptation), never to train or tune
on its test frames: the tuning domain is :mod:`reach_core.hifi_renderer`.  It is rendered with
other software than every training renderer (:mod:`reach_core.renderer`,
:mod:`reach_core.randomized_renderer`) and than the tuning domain (MuJoCo): pybullet's
TinyRenderer, a CPU software rasteriser, plus OpenCV for the lens and the sensor.

The robot is Baxter from Rethink Robotics' own URDF and meshes (``baxter_description``, BSD
licence, as shipped by the PyPI package ``example-robot-data``; nothing is copied into this
repository; decimated once into a cache in the temp folder, so that TinyRenderer is fast):
torso, pedestal, head and screen (with Baxter's eyes), both arms (the right one hanging), the
electric gripper, in the meshes' own colours (black and dark grey body and joints, red shells).
With the simulator's convention (x to the right in the image, positive s1 pitching down) the
camera sees the arm from the robot's front-right, so the torso stands in front of the arm's plane
left of the shoulder and hides the arm where it swings behind it.  The left arm's s1, e1 and w1
joints are set to q with every other joint at zero; its elbow and wrist then lie exactly at
:meth:`reach_core.kinematics.PlanarArm.link_points` (the planar model is derived from the same
URDF).  The URDF's gripper reaches 0.387 m past w1, the task's end-effector point 0.28 m: the
gripper's fingers are left out and its paddle tips are moved onto the base so that the tips end
at the end-effector point, which keeps the labels exact.

Geometry (as :mod:`reach_core.hifi_renderer`): world x = plane x (forward), world z = plane y
(up), world y = depth, away from the nominal camera; the s1 axis is the world y axis.  The camera
is a :class:`~reach_core.camera_model.CameraModel` (intrinsics, plumb_bob distortion, the plane's
pose): :data:`PROXY_CAMERA` is a webcam "placed by hand", a few degrees and pixels off the
simulator's virtual camera, with a barrel-distorting lens, and every frame adds a small jitter
(:func:`frame_camera`).  A frame is rendered undistorted through the pinhole (K, pose) on a
canvas with a margin, and the lens distortion is then applied to the image (cv2.remap through
the inverse distortion), so a plane point appears at ``frame_camera(...).project(point)``.

The room: a wall with photographs (scikit-image's sample images, which no training code uses)
hung as posters, furniture boxes, a floor, one random light (direction, colour, ambient, diffuse
and specular), and sensor effects (white balance, exposure, gamma, slight blur, noise, JPEG
compression).  The wall and floor are drawn where nothing was rasterised, through their
homographies; the marker plate is rendered white and the marker warped onto its face's pixels
times the shading there.

Targets: ``target_mode="painted"`` draws no disc (datasets mark it ``"target": "virtual"`` and
the loader paints the virtual target, as for the paper's datasets); ``"physical"`` renders a 3-D
blue disc of radius :data:`~reach_core.scene.TARGET_RADIUS_M`, 3 cm thick, in a random blue,
shaded flat, on a thin stand from the floor, a few cm in front of or behind the arm's plane on the
camera's ray through the labelled target (so it appears exactly where the label says, and the
arm passes in front of it or is hidden by it); ``"none"`` draws nothing.  ``marker=True`` adds
the calibration marker of :mod:`reach_core.calibration_marker` on a white plate on the hand, at
exactly :func:`~reach_core.calibration_marker.marker_corners`.

Seeds: frame i of a batch has the look of seed ``seed + i``.  Seeds at or above
:data:`PROXY_TEST_SEED` are for held-out test sets (benchmarks only); a user's "collected"
adaptation frames use seeds below it (:data:`PROXY_COLLECT_SEED` onwards).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from .calibration_marker import DEFAULT_MARKER, hand_axes, marker_corners, marker_image
from .camera_model import NOMINAL_DISTANCE_M, CameraModel
from .kinematics import TOOL_PRESETS, TOOL_TOLERANCE, tool_arm
from .scene import TARGET_RADIUS_M

PROXY_COLLECT_SEED = 100              # scene seeds PROXY_COLLECT_SEED.. of a user's collected frames
PROXY_TEST_SEED = 2100                # scene seeds >= this: held-out test sets, benchmarks only
LOOK_SEED_STRIDE = 1_000_003          # datasets: frame i of scene seed S has look S * stride + i


def seed_split(seed: int) -> str:
    """"test" for held-out test seeds (>= PROXY_TEST_SEED: benchmarks only, never train or tune
    on them), "collect" for the seeds of a user's collected adaptation frames."""
    return "test" if seed >= PROXY_TEST_SEED else "collect"
TARGET_MODES = ("painted", "physical", "none")
MARGIN_PX = 6                         # canvas margin beyond what the lens distortion needs
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "page", "text", "moon",
          "clock", "hubble_deep_field", "immunohistochemistry", "colorwheel", "cat", "logo")
N_POSTERS = 6
N_FURNITURE = 4
DISC_THICKNESS_M = 0.03
MIN_FACES, MAX_FACES, KEEP_FACES = 300, 8000, 0.3   # mesh decimation: faces kept per part
PLATE_MARGIN_M = 0.035                # white margin of the marker plate around the marker (>= 1 cell)


class ProxyRenderError(RuntimeError):
    """pybullet, the Baxter meshes or the photographs are not available (the message says how)."""


# ----------------------------------------------------------------------------- the camera
def placed_camera(*, scale: float = 0.93, f_ratio: float = 0.965, principal_px=(14.0, -11.0),
                  aim_m=(0.06, -0.05), yaw_deg: float = 6.0, pitch_deg: float = 4.0,
                  roll_deg: float = 3.0, dist=(-0.15, 0.05, 0.0008, -0.0006, 0.0),
                  name: str = "proxy_webcam") -> CameraModel:
    """A webcam placed by hand in front of the arm: it looks at the plane point ``aim_m`` from a
    direction ``yaw_deg`` (towards +x) and ``pitch_deg`` (from above) off the plane's normal,
    rolled by ``roll_deg``; its focal length is ``f_ratio`` times the nominal one and its distance
    chosen so that the plane is seen at ``scale`` times the nominal pixels per metre; its
    principal point is ``principal_px`` off the nominal one; lens distortion ``dist``."""
    nominal = CameraModel.nominal()
    f = nominal.matrix[0, 0] * f_ratio
    distance = NOMINAL_DISTANCE_M * f_ratio / scale
    yaw, pitch, roll = np.radians([yaw_deg, pitch_deg, roll_deg])
    aim = np.array([aim_m[0], aim_m[1], 0.0])
    centre = aim + distance * np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch),
                                        math.cos(yaw) * math.cos(pitch)])
    z_c = (aim - centre) / np.linalg.norm(aim - centre)
    x_c = np.cross(z_c, [0.0, 1.0, 0.0])
    x_c /= np.linalg.norm(x_c)
    y_c = np.cross(z_c, x_c)
    c, s = math.cos(roll), math.sin(roll)
    x_c, y_c = c * x_c + s * y_c, -s * x_c + c * y_c
    rot = np.stack([x_c, y_c, z_c])
    cx = nominal.matrix[0, 2] + principal_px[0]
    cy = nominal.matrix[1, 2] + principal_px[1]
    return CameraModel(nominal.width, nominal.height, (f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0),
                       tuple(float(v) for v in dist), _rvec(rot), tuple(float(v) for v in -rot @ centre),
                       name=name)


def _rvec(rot: np.ndarray) -> tuple:
    import cv2
    return tuple(float(v) for v in cv2.Rodrigues(np.asarray(rot, np.float64))[0].ravel())


PROXY_CAMERA = placed_camera()


def frame_camera(camera: CameraModel, rng: np.random.Generator, jitter: float = 1.0) -> CameraModel:
    """This frame's camera: ``camera`` shaken a little (a webcam on a tripod in a room with
    people): about 0.1 degrees of roll, 0.03 degrees of pan and tilt and 0.3 px of shift."""
    if jitter <= 0:
        return camera
    import cv2
    angles = jitter * rng.normal(0.0, 1.0, 3) * np.radians([0.03, 0.03, 0.1])   # x, y, z (roll)
    delta = cv2.Rodrigues(angles.reshape(3, 1))[0]
    rot = delta @ camera.rotation
    f = camera.matrix[0, 0]
    tvec = delta @ np.asarray(camera.tvec, np.float64)
    tvec[:2] += jitter * rng.normal(0.0, 0.3, 2) * tvec[2] / f
    return replace(camera, rvec=_rvec(rot), tvec=tuple(float(v) for v in tvec))


def plane_to_world(points) -> np.ndarray:
    """Plane-frame points (..., 3) (x, y, z towards the camera) -> world (x, depth, up)."""
    p = np.asarray(points, np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def _world_to_camera(camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation from world points to OpenCV camera coordinates."""
    m = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])   # plane -> world
    return camera.rotation @ m.T, np.asarray(camera.tvec, np.float64)


def _gl_matrices(camera: CameraModel, width: int, height: int, margin: int,
                 near: float = 0.05, far: float = 30.0) -> tuple[list, list]:
    """pybullet's view and projection matrices (column-major) of the pinhole (K, pose) on a
    canvas ``margin`` pixels larger than the frame on every side."""
    rot, t = _world_to_camera(camera)
    view = np.eye(4)
    view[:3, :3], view[:3, 3] = rot, t
    view = np.diag([1.0, -1.0, -1.0, 1.0]) @ view           # OpenCV -> OpenGL camera axes
    k = camera.matrix
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2] + margin, k[1, 2] + margin
    # TinyRenderer's pixel (i, j) is centred on NDC x = 2 j / width - 1 (not j + 0.5) and
    # y = 1 - 2 (i + 1) / height (measured): centre OpenCV's integer pixel centres on them
    proj = np.array([
        [2 * fx / width, 0.0, -(2 * cx / width - 1), 0.0],
        [0.0, 2 * fy / height, (2 * (cy + 1.0) / height - 1), 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0]])
    return view.T.ravel().tolist(), proj.T.ravel().tolist()


def canvas_points(camera: CameraModel, world) -> np.ndarray:
    """Undistorted pinhole pixels (OpenCV convention: centres at integers) of world points on
    the canvas of :func:`_gl_matrices`."""
    rot, t = _world_to_camera(camera)
    pc = np.asarray(world, np.float64) @ rot.T + t
    k, margin = camera.matrix, canvas_margin(camera)
    u = k[0, 0] * pc[..., 0] / pc[..., 2] + k[0, 2] + margin
    v = k[1, 1] * pc[..., 1] / pc[..., 2] + k[1, 2] + margin
    return np.stack([u, v], axis=-1)


_MAPS: dict = {}
_MAPS_LOCK = threading.Lock()


def distortion_maps(camera: CameraModel) -> tuple[np.ndarray, np.ndarray, int]:
    """cv2.remap maps from the distorted frame's pixels to the undistorted canvas (for each
    frame pixel, where its ray meets the pinhole canvas: the inverse of the lens distortion),
    and the canvas's margin: enough pixels on every side for the maps to stay inside it."""
    import cv2
    key = (camera.width, camera.height, tuple(camera.K), tuple(camera.dist))
    with _MAPS_LOCK:
        if key not in _MAPS:
            jj, ii = np.meshgrid(np.arange(camera.width, dtype=np.float64),
                                 np.arange(camera.height, dtype=np.float64))
            pts = np.stack([jj, ii], axis=-1).reshape(-1, 1, 2)
            crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)
            norm = cv2.undistortPointsIter(pts, camera.matrix, np.asarray(camera.dist, np.float64),
                                           None, None, crit).reshape(camera.height, camera.width, 2)
            k = camera.matrix
            u = k[0, 0] * norm[..., 0] + k[0, 2]
            v = k[1, 1] * norm[..., 1] + k[1, 2]
            over = max(-u.min(), u.max() - (camera.width - 1), -v.min(), v.max() - (camera.height - 1))
            margin = int(math.ceil(max(over, 0.0))) + MARGIN_PX
            _MAPS[key] = ((u + margin).astype(np.float32), (v + margin).astype(np.float32), margin)
        return _MAPS[key]


def canvas_margin(camera: CameraModel) -> int:
    """The undistorted canvas's margin around the frame (pixels on every side)."""
    return distortion_maps(camera)[2]


# ----------------------------------------------------------------------------- assets
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


# ----------------------------------------------------------------------------- the room
WALL_Y = 2.4            # the back wall's face (m behind the arm's plane)
WALL_HALF_W, WALL_H = 6.0, 6.0
FLOOR_NEAR_Y = -1.6     # the floor's near edge (in front of the camera's foot)
WALL_PX_PER_M = 80.0    # resolution of the wall's and floor's textures (the wall is seen at ~100 px/m)
FURNITURE_TONES = ((0.55, 0.38, 0.22), (0.85, 0.85, 0.82), (0.3, 0.32, 0.35), (0.6, 0.62, 0.66),
                   (0.36, 0.4, 0.46), (0.5, 0.2, 0.15))
POSTER_SIZES = ((1.0, 0.7), (0.7, 1.0), (0.9, 0.6), (0.6, 0.8), (1.2, 0.8), (0.5, 0.5))
FURNITURE_SIZES = ((0.9, 0.5, 1.1), (1.4, 0.7, 0.75), (0.5, 0.4, 1.9), (0.6, 0.6, 0.6))
LEFT_ARM_JOINTS = ("left_s1", "left_e1", "left_w1")
DARK_LINKS = ("left_hand_joint", "left_gripper_base_joint", "l_gripper_l_finger_tip_joint",
              "l_gripper_r_finger_tip_joint")
# the head's display: the URDF's ``display`` link holds a 0.218 x 0.16 m box turned by 0.2618 rad
DISPLAY_HALF_M, DISPLAY_TILT_RAD = (0.109, 0.08), 0.2617993877991494
RIGHT_ARM_REST = {"right_s0": 0.6, "right_s1": 1.0, "right_e0": 0.0, "right_e1": 2.5,
                  "right_w0": 0.0, "right_w1": 1.0, "right_w2": 0.0}   # hanging down, out of the way
HIDDEN = (60.0, 60.0, -60.0)


def _quat_about(axis: int, angle: float) -> tuple:
    q = [0.0, 0.0, 0.0, math.cos(angle / 2)]
    q[axis] = math.sin(angle / 2)
    return tuple(q)


class _World:
    """One pybullet client holding Baxter, the room, the disc and the marker plate."""

    def __init__(self, tool_length: float = TOOL_PRESETS["paper"]):
        pb = _pybullet()
        self.pb = pb
        with _quiet():
            self.cid = pb.connect(pb.DIRECT)
            self.robot = pb.loadURDF(str(_urdf_path(tool_length)), useFixedBase=True,
                                     physicsClientId=self.cid)
        n = pb.getNumJoints(self.robot, physicsClientId=self.cid)
        self.joints = {pb.getJointInfo(self.robot, j, physicsClientId=self.cid)[1].decode(): j
                       for j in range(n)}
        s1 = np.array(pb.getLinkState(self.robot, self.joints["left_s1"],
                                      physicsClientId=self.cid)[4])
        rot = np.array([[math.cos(-math.pi / 4), -math.sin(-math.pi / 4), 0],
                        [math.sin(-math.pi / 4), math.cos(-math.pi / 4), 0], [0, 0, 1]])
        self.base_pos = -rot @ s1
        pb.resetBasePositionAndOrientation(self.robot, self.base_pos.tolist(),
                                           _quat_about(2, -math.pi / 4), physicsClientId=self.cid)
        lo = pb.getAABB(self.robot, self.joints["pedestal_fixed"], physicsClientId=self.cid)[0]
        self.floor_z = float(lo[2])
        self.screen_id = self.robot + ((self.joints["display_joint"] + 1) << 24)   # its pixels
        self.screen = self._screen_corners()
        self._build_room()
        self._build_props()
        for name in DARK_LINKS:       # the electric gripper: black and dark grey, as on the robot
            self.pb.changeVisualShape(self.robot, self.joints[name], rgbaColor=[0.13, 0.13, 0.14, 1],
                                      physicsClientId=self.cid)

    def _screen_corners(self) -> np.ndarray:
        """World corners of the head's display (the URDF's ``display`` box in its link's frame):
        where the face is drawn."""
        import cv2
        link = self.pb.getLinkState(self.robot, self.joints["display_joint"], physicsClientId=self.cid)
        rot = np.array(self.pb.getMatrixFromQuaternion(link[5])).reshape(3, 3)
        tilt = cv2.Rodrigues(np.array([DISPLAY_TILT_RAD, 0.0, 0.0]))[0]
        hx, hy = DISPLAY_HALF_M
        quad = np.array([[-hx, -hy, 0.0], [hx, -hy, 0.0], [hx, hy, 0.0], [-hx, hy, 0.0]])
        return quad @ (rot @ tilt).T + np.asarray(link[4])

    def _body(self, shape: int, **kw) -> int:
        vs = self.pb.createVisualShape(shape, rgbaColor=[1, 1, 1, 1], physicsClientId=self.cid, **kw)
        return self.pb.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, basePosition=HIDDEN,
                                       physicsClientId=self.cid)

    def _box(self, half) -> int:
        return self._body(self.pb.GEOM_BOX, halfExtents=list(half))

    def _build_room(self) -> None:
        self.furniture = [self._box((w / 2, d / 2, h / 2)) for w, d, h in FURNITURE_SIZES]

    def _build_props(self) -> None:
        pb = self.pb
        self.disc = self._body(pb.GEOM_CYLINDER, radius=TARGET_RADIUS_M, length=DISC_THICKNESS_M)
        self.stand = self._body(pb.GEOM_CYLINDER, radius=0.011, length=4.0)
        self.plate_half = DEFAULT_MARKER.size_m / 2 + PLATE_MARGIN_M
        self.plate = self._box((self.plate_half, 0.003, self.plate_half))
        self.bracket = self._box((0.02, DEFAULT_MARKER.depth_m / 2, 0.02))
        self.spot = self._body(pb.GEOM_SPHERE, radius=0.015)

    def move(self, body: int, pos, quat=(0.0, 0.0, 0.0, 1.0)) -> None:
        self.pb.resetBasePositionAndOrientation(body, [float(v) for v in pos], list(quat),
                                                physicsClientId=self.cid)

    def colour(self, body: int, rgb) -> None:
        self.pb.changeVisualShape(body, -1, rgbaColor=[*(float(c) for c in rgb), 1.0],
                                  physicsClientId=self.cid)

    def set_arm(self, q, rng: np.random.Generator) -> None:
        """The left arm at q; the right arm hanging near its rest pose."""
        for name, value in RIGHT_ARM_REST.items():
            self.pb.resetJointState(self.robot, self.joints[name], value + rng.uniform(-0.1, 0.1),
                                    physicsClientId=self.cid)
        for name, value in zip(LEFT_ARM_JOINTS, q):
            self.pb.resetJointState(self.robot, self.joints[name], float(value),
                                    physicsClientId=self.cid)

    def arm_points(self) -> np.ndarray:
        """World positions of the s1, e1 and w1 joints (for the tests)."""
        return np.array([self.pb.getLinkState(self.robot, self.joints[n], computeForwardKinematics=True,
                                              physicsClientId=self.cid)[4] for n in LEFT_ARM_JOINTS])

    # ------------------------------------------------------------------ per-frame look
    def vary_room(self, rng: np.random.Generator) -> list:
        """Draw this frame's furniture, wall (with posters) and floor; return the background
        planes [(world corners (4, 3) TL TR BR BL as the camera sees them, RGB image, normal,
        tint)]
        that :func:`paint_background` draws where nothing was rasterised."""
        for body, (w, d, h) in zip(self.furniture, FURNITURE_SIZES):
            if rng.random() < 0.25:
                self.move(body, HIDDEN)
                continue
            yaw = rng.uniform(-0.35, 0.35)
            pos = (rng.uniform(-3.2, 3.2), rng.uniform(1.0, WALL_Y - d / 2 - 0.05), self.floor_z + h / 2)
            self.move(body, pos, _quat_about(2, yaw))
            tone = FURNITURE_TONES[int(rng.integers(len(FURNITURE_TONES)))]
            self.colour(body, np.clip(np.array(tone) * rng.uniform(0.8, 1.15, 3), 0, 1))
        z0 = self.floor_z
        wall = np.array([[-WALL_HALF_W, WALL_Y, z0 + WALL_H], [WALL_HALF_W, WALL_Y, z0 + WALL_H],
                         [WALL_HALF_W, WALL_Y, z0], [-WALL_HALF_W, WALL_Y, z0]])
        floor = np.array([[-WALL_HALF_W, WALL_Y, z0], [WALL_HALF_W, WALL_Y, z0],
                          [WALL_HALF_W, FLOOR_NEAR_Y, z0], [-WALL_HALF_W, FLOOR_NEAR_Y, z0]])
        wall_image = _wall_image(rng)
        floor_image, floor_tint = _floor_image(rng)
        return [(wall, wall_image, (0.0, -1.0, 0.0), (1.0, 1.0, 1.0)),
                (floor, floor_image, (0.0, 0.0, 1.0), floor_tint)]

    def place_disc(self, target, rng: np.random.Generator, camera: CameraModel) -> tuple:
        """The physical target: a blue disc on a stand, a few cm in front of or behind the arm's
        plane on the camera's ray through the labelled target ``target`` (plane metres); returns
        its front face's world corners (of the square around it) and its colour."""
        rot, t = _world_to_camera(camera)
        centre = -rot.T @ t                                     # camera centre, world
        point = np.array([target[0], 0.0, target[1]])
        depth = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.12)   # plane z (towards camera)
        s = (-depth - centre[1]) / (point[1] - centre[1])
        disc = centre + s * (point - centre)
        self.move(self.disc, disc, _quat_about(0, math.pi / 2))
        self.colour(self.disc, (1.0, 1.0, 1.0))
        self.move(self.stand, (disc[0], disc[1] + 0.02, disc[2] - TARGET_RADIUS_M - 2.0))
        self.colour(self.stand, rng.choice([(0.15, 0.15, 0.16), (0.6, 0.6, 0.62), (0.3, 0.3, 0.3)]))
        r, front = TARGET_RADIUS_M, disc[1] - DISC_THICKNESS_M / 2
        face = np.array([[disc[0] - r, front, disc[2] + r], [disc[0] + r, front, disc[2] + r],
                         [disc[0] + r, front, disc[2] - r], [disc[0] - r, front, disc[2] - r]])
        hsv = (rng.uniform(0.57, 0.68), rng.uniform(0.55, 1.0), rng.uniform(0.5, 1.0))
        return face, _hsv_to_rgb(*hsv)

    def place_marker(self, q) -> tuple[int, np.ndarray]:
        """The calibration plate at the hand, its face exactly at marker_corners(q); returns the
        plate's body and its face's world corners (marker order: TL, TR, BR, BL)."""
        corners = marker_corners(q)                                   # (4, 3) plane
        centre = corners.mean(axis=0)
        scale = self.plate_half / (DEFAULT_MARKER.size_m / 2)
        plate = centre + (corners - centre) * np.array([scale, scale, 1.0])
        _, along, _ = hand_axes(q)
        quat = _quat_about(1, math.atan2(-along[1], along[0]))
        face = plane_to_world(plate)
        self.move(self.plate, plane_to_world(centre - [0, 0, 0.003]), quat)
        self.move(self.bracket, plane_to_world(centre * [1, 1, 0.5]), quat)
        self.colour(self.plate, (0.97, 0.97, 0.96))
        self.colour(self.bracket, (0.12, 0.12, 0.13))
        return self.plate, face

    def hide(self, *bodies) -> None:
        for body in bodies:
            self.move(body, HIDDEN)

    def rasterise(self, camera: CameraModel, rng: np.random.Generator) -> tuple:
        """The undistorted pinhole canvas (uint8 RGB), its segmentation (body ids, -1 where
        nothing was drawn) and this frame's light."""
        margin = canvas_margin(camera)
        w, h = camera.width + 2 * margin, camera.height + 2 * margin
        view, proj = _gl_matrices(camera, w, h, margin)
        warm = rng.uniform(-0.1, 0.1)
        light = dict(lightDirection=[rng.uniform(-3, 3), rng.uniform(-4, -1), rng.uniform(1.0, 4.0)],
                     lightColor=[1 + warm, 1.0, 1 - warm], lightDistance=5.0,
                     lightAmbientCoeff=rng.uniform(0.35, 0.6), lightDiffuseCoeff=rng.uniform(0.35, 0.7),
                     lightSpecularCoeff=rng.uniform(0.05, 0.4))
        _, _, rgb, _, seg = self.pb.getCameraImage(
            w, h, view, proj, renderer=self.pb.ER_TINY_RENDERER, shadow=0,
            flags=self.pb.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, physicsClientId=self.cid,
            **light)
        rgb = np.asarray(rgb, np.uint8).reshape(h, w, 4)[..., :3]
        return np.ascontiguousarray(rgb), np.asarray(seg, np.int32).reshape(h, w), light


def _crop_to(img: np.ndarray, aspect: float, rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``img`` with width / height = ``aspect`` (at least 70 % of the image)."""
    h, w = img.shape[:2]
    ch = min(h, w / aspect) * rng.uniform(0.7, 1.0)
    cw = ch * aspect
    y0, x0 = rng.uniform(0, h - ch), rng.uniform(0, w - cw)
    return img[int(y0):int(y0 + ch), int(x0):int(x0 + cw)]


def _wall_image(rng: np.random.Generator) -> np.ndarray:
    """The back wall's texture: paint of a random light colour with posters (photographs)."""
    import cv2
    photos = photographs()
    k = WALL_PX_PER_M
    h, w = int(WALL_H * k), int(2 * WALL_HALF_W * k)
    paint = np.clip(rng.uniform(0.7, 0.95) * (1 + rng.uniform(-0.07, 0.07, 3)), 0, 1) * 255
    wall = np.empty((h, w, 3), np.uint8)
    wall[:] = paint.astype(np.uint8)
    for pw, ph in POSTER_SIZES:
        if rng.random() < 0.2:
            continue
        img = _crop_to(photos[int(rng.integers(len(photos)))], pw / ph, rng)
        pw_px, ph_px = int(pw * k), int(ph * k)
        x0 = int((rng.uniform(-3.2, 3.2) + WALL_HALF_W) * k - pw_px / 2)
        y0 = int((WALL_H - rng.uniform(1.0, 2.9)) * k - ph_px / 2)
        wall[y0:y0 + ph_px, x0:x0 + pw_px] = cv2.resize(img, (pw_px, ph_px), interpolation=cv2.INTER_AREA)
    return wall


_FLOORS: dict = {}


def _floor_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The floor's texture and tint: a grey photo tiled and washed out (linoleum, carpet or
    concrete), tiles of 0.8 to 2 m."""
    import cv2
    photos = photographs()
    key = (int(rng.integers(len(photos))), int(rng.integers(4)))
    if key not in _FLOORS:
        grey = photos[key[0]].mean(axis=-1).astype(np.float32)
        side = int((0.8 + 0.4 * key[1]) * WALL_PX_PER_M)
        tile = 200 + 55 * cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA) / 255.0
        h = int((WALL_Y - FLOOR_NEAR_Y) * WALL_PX_PER_M)
        w = int(2 * WALL_HALF_W * WALL_PX_PER_M)
        tex = np.tile(tile, (h // side + 1, w // side + 1))[:h, :w]
        _FLOORS[key] = cv2.cvtColor(tex.astype(np.uint8), cv2.COLOR_GRAY2RGB)
    return _FLOORS[key], rng.uniform(0.3, 0.7) * rng.uniform(0.85, 1.1, 3)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, qq, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (qq, v, p), (p, v, t), (p, qq, v), (t, p, v), (v, p, qq)][i])


# ----------------------------------------------------------------------------- image steps
def paint_face(canvas: np.ndarray, seg: np.ndarray, body: int, corners_px: np.ndarray,
               image: np.ndarray, shaded: bool = True) -> None:
    """Texture a rasterised face: warp ``image`` onto the quadrilateral ``corners_px`` (TL, TR,
    BR, BL, canvas pixels) where the segmentation shows ``body``, times the shading there (the
    face was rendered white) if ``shaded`` (else as it is: a lit screen)."""
    import cv2
    side = float(np.max(np.linalg.norm(corners_px - np.roll(corners_px, 1, axis=0), axis=-1)))
    if side * 2 < max(image.shape[:2]):             # prefilter: no aliasing when shrinking
        scale = side * 2 / max(image.shape[:2])
        image = cv2.resize(image, (max(2, round(image.shape[1] * scale)),
                                   max(2, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    x0, y0 = np.floor(corners_px.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners_px.max(axis=0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    src = np.float32([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    dst = np.float32(corners_px - [x0, y0])
    hom = cv2.getPerspectiveTransform(src, dst)
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    warped = cv2.warpPerspective(rgba, hom, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    region = canvas[y0:y1, x0:x1]
    sel = (seg[y0:y1, x0:x1] == body) & (warped[..., 3] > 127)
    if not shaded:
        region[sel] = warped[..., :3][sel]
        return
    shade = region[sel].astype(np.float32) / 255.0
    region[sel] = np.clip(warped[..., :3][sel].astype(np.float32) * shade, 0, 255).astype(np.uint8)


def paint_background(canvas: np.ndarray, seg: np.ndarray, planes: list, camera: CameraModel,
                     light: dict) -> None:
    """Draw the room's planes (wall, floor) where nothing was rasterised (``seg < 0``), each
    textured through its homography and lit by the frame's light (ambient + diffuse)."""
    import cv2
    h, w = seg.shape
    to_light = np.asarray(light["lightDirection"], np.float64)
    to_light /= np.linalg.norm(to_light)
    colour = np.asarray(light["lightColor"], np.float64)
    back = np.empty((h, w, 3), np.uint8)
    back[:] = (60, 60, 62)                             # a dark ceiling where no plane is seen
    for corners, image, normal, tint in planes:
        ih, iw = image.shape[:2]
        src = np.float32([[-0.5, -0.5], [iw - 0.5, -0.5], [iw - 0.5, ih - 0.5], [-0.5, ih - 0.5]])
        hom = cv2.getPerspectiveTransform(src, np.float32(canvas_points(camera, corners)))
        shade = light["lightAmbientCoeff"] + light["lightDiffuseCoeff"] * max(
            0.0, float(np.dot(normal, to_light)))
        lit = cv2.multiply(image, tuple(float(c) for c in shade * colour * np.asarray(tint)) + (0.0,))
        cv2.warpPerspective(lit, hom, (w, h), dst=back, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_TRANSPARENT)
    np.copyto(canvas, back, where=(seg < 0)[..., None])


def _upright(corners_px: np.ndarray) -> np.ndarray:
    """Four image points ordered top left, top right, bottom right, bottom left."""
    top = np.argsort(corners_px[:, 1])
    upper, lower = corners_px[top[:2]], corners_px[top[2:]]
    upper, lower = upper[np.argsort(upper[:, 0])], lower[np.argsort(lower[:, 0])]
    return np.array([upper[0], upper[1], lower[1], lower[0]])


def face_image(rng: np.random.Generator, size=(160, 120)) -> np.ndarray:
    """Baxter's face on its screen: two dark eyes with eyebrows on a light background, looking
    somewhere (uint8 RGB)."""
    import cv2
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.clip(rng.uniform(200, 245) * rng.uniform(0.95, 1.03, 3), 0, 255).astype(np.uint8)
    gaze = rng.uniform(-1, 1, 2) * (10, 6)
    lid = rng.uniform(0.75, 1.0)
    for side in (-1, 1):
        cx, cy = int(w / 2 + side * w * 0.22), int(h * 0.52)
        cv2.ellipse(img, (cx, cy), (int(w * 0.12), int(h * 0.22 * lid)), 0, 0, 360, (25, 25, 30), -1,
                    cv2.LINE_AA)
        cv2.circle(img, (int(cx + gaze[0]), int(cy + gaze[1])), int(w * 0.04), (235, 235, 240), -1,
                   cv2.LINE_AA)
        cv2.ellipse(img, (cx, int(h * 0.22)), (int(w * 0.13), int(h * 0.06)), 0, 200, 340,
                    (25, 25, 30), 3, cv2.LINE_AA)
    return img


def paint_disc(canvas: np.ndarray, seg: np.ndarray, body: int, corners_px: np.ndarray, rgb,
               light: dict, rng: np.random.Generator) -> None:
    """Shade the disc flat (TinyRenderer smooths a cylinder's normals into a ball): its face, the
    ellipse inside ``corners_px``, in ``rgb`` lit by the light with a faint gradient; its rim
    (the disc's other visible pixels) darker."""
    import cv2
    x0, y0 = np.maximum(np.floor(corners_px.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.ceil(corners_px.max(axis=0)).astype(int) + 3
    x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    n = 64
    yy, xx = np.mgrid[:n, :n]
    circle = ((((xx + 0.5) / n - 0.5) ** 2 + ((yy + 0.5) / n - 0.5) ** 2) <= 0.25).astype(np.float32)
    gradient = 1 + rng.uniform(-0.12, 0.12) * (xx / n - 0.5) + rng.uniform(-0.12, 0.12) * (yy / n - 0.5)
    src = np.float32([[-0.5, -0.5], [n - 0.5, -0.5], [n - 0.5, n - 0.5], [-0.5, n - 0.5]])
    hom = cv2.getPerspectiveTransform(src, np.float32(corners_px - [x0, y0]))
    size = (x1 - x0, y1 - y0)
    face = cv2.warpPerspective(circle, hom, size, flags=cv2.INTER_LINEAR) > 0.5
    shade = cv2.warpPerspective(gradient.astype(np.float32), hom, size, flags=cv2.INTER_LINEAR)
    to_light = np.asarray(light["lightDirection"], np.float64)
    facing = max(0.0, -to_light[1] / np.linalg.norm(to_light))
    lit = light["lightAmbientCoeff"] + light["lightDiffuseCoeff"] * facing
    colour = np.asarray(rgb) * np.asarray(light["lightColor"]) * lit * 255
    mine = seg[y0:y1, x0:x1] == body
    region = canvas[y0:y1, x0:x1]
    sel = mine & face
    region[sel] = np.clip(colour[None] * shade[sel][:, None], 0, 255).astype(np.uint8)
    region[mine & ~face] = np.clip(colour * 0.55, 0, 255).astype(np.uint8)


def plate_image(pixels_per_m: float = 2000.0) -> np.ndarray:
    """The marker plate's face as uint8 RGB: the ArUco marker with a white margin."""
    cells = int(round(DEFAULT_MARKER.size_m * pixels_per_m))
    margin = int(round(PLATE_MARGIN_M * pixels_per_m))
    grey = np.pad(marker_image(DEFAULT_MARKER, cells), margin, constant_values=255)
    return np.repeat(grey[..., None], 3, axis=-1)


def distort(canvas: np.ndarray, camera: CameraModel) -> np.ndarray:
    """The pinhole canvas seen through the camera's lens: the distorted frame."""
    import cv2
    mx, my, _ = distortion_maps(camera)
    return cv2.remap(canvas, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


_FIELDS: dict = {}


def _fields(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached per frame size: the squared distance from the centre (1 at the corners) as a
    3-channel float32 map, and a bank of unit Gaussian noise 64 px larger than the frame (each
    frame takes a random window of it: fresh noise without drawing 0.9 M numbers a frame)."""
    if (h, w) not in _FIELDS:
        yy, xx = np.ogrid[:h, :w]
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (w * w / 4 + h * h / 4)
        bank = np.random.default_rng(0x5E45).standard_normal((h + 64, w + 64, 3), dtype=np.float32)
        _FIELDS[(h, w)] = (np.repeat(r2[..., None], 3, axis=-1).astype(np.float32), bank)
    return _FIELDS[(h, w)]


def sensor(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A webcam's sensor and encoder: white balance, exposure, contrast and gamma (a tone curve
    per channel), vignetting, a slight blur, noise and JPEG compression."""
    import cv2
    h, w = frame.shape[:2]
    gain = rng.uniform(0.9, 1.1, 3) * rng.uniform(0.85, 1.15)
    contrast, gamma = rng.uniform(0.85, 1.1), rng.uniform(0.85, 1.2)
    x = np.arange(256)[:, None] / 255.0
    lut = np.clip((x * gain - 0.5) * contrast + 0.5, 0, 1) ** gamma
    out = cv2.LUT(frame, np.rint(lut * 255).astype(np.uint8).reshape(1, 256, 3))
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.35, 0.9))
    r2, bank = _fields(h, w)
    f = out.astype(np.float32)
    f = cv2.scaleAdd(cv2.multiply(f, r2), -rng.uniform(0.05, 0.3), f)         # vignetting
    i, j = rng.integers(0, 64, 2)
    f = cv2.scaleAdd(np.ascontiguousarray(bank[i:i + h, j:j + w]), rng.uniform(1.0, 4.0), f)
    out = np.clip(f, 0, 255).astype(np.uint8)
    quality = int(rng.integers(60, 92))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else out


# ----------------------------------------------------------------------------- rendering
_local = threading.local()


def _world(tool_length: float = TOOL_PRESETS["paper"]) -> _World:
    worlds = getattr(_local, "worlds", None)
    if worlds is None:
        worlds = _local.worlds = {}
    key = round(float(tool_length), 6)
    if key not in worlds:
        worlds[key] = _World(tool_length)
    return worlds[key]


def _check_inputs(target, q, target_mode: str) -> tuple[np.ndarray | None, np.ndarray, bool]:
    """Validated (targets (B, 2) or None, q (B, 3), single) or a clear ValueError."""
    if target_mode not in TARGET_MODES:
        raise ValueError(f"target_mode must be one of {TARGET_MODES}, got {target_mode!r}")
    qa = np.asarray(q, dtype=np.float64)
    if qa.ndim not in (1, 2) or qa.shape[-1] != 3:
        raise ValueError(f"q must be joint angles of shape (3,) or (B, 3), got {qa.shape}")
    if not np.all(np.isfinite(qa)):
        raise ValueError("q contains NaN or infinity")
    single = qa.ndim == 1
    qa = np.atleast_2d(qa)
    if target is None:
        if target_mode == "physical":
            raise ValueError("target_mode='physical' needs the targets")
        return None, qa, single
    ta = np.asarray(target, dtype=np.float64)
    if ta.shape[-1:] != (2,) or ta.shape[:-1] != np.asarray(q).shape[:-1]:
        raise ValueError(f"target must have shape (2,) or (B, 2) matching q {np.asarray(q).shape}, "
                         f"got {ta.shape}")
    if not np.all(np.isfinite(ta)):
        raise ValueError("target contains NaN or infinity")
    return np.atleast_2d(ta), qa, single


def _seeds(seed, n: int) -> np.ndarray:
    seeds = np.asarray(seed, dtype=np.int64)
    seeds = seeds + np.arange(n) if seeds.ndim == 0 else seeds.reshape(-1)
    if len(seeds) != n:
        raise ValueError(f"need one seed per frame: {n} frames, {len(seeds)} seeds")
    return seeds


def render_frame(world: _World, target, q, rng: np.random.Generator, camera: CameraModel, *,
                 target_mode: str, marker: bool, jitter: float = 1.0, spot=None) -> np.ndarray:
    """One proxy frame (uint8 RGB, camera.height x camera.width) of one scene; ``spot``: a
    plane point (x, y) m where a small bright green ball is drawn (for the geometry tests)."""
    cam = frame_camera(camera, rng, jitter)
    planes = world.vary_room(rng)
    faces = []
    world.set_arm(q, rng)
    if spot is None:
        world.hide(world.spot)
    else:
        world.move(world.spot, (float(spot[0]), 0.0, float(spot[1])))
        world.colour(world.spot, (0.1, 1.0, 0.1))
    disc = world.place_disc(target, rng, cam) if target_mode == "physical" else None
    if disc is None:
        world.hide(world.disc, world.stand)
    if marker:
        body, corners = world.place_marker(q)
        faces.append((body, corners, plate_image()))
    else:
        world.hide(world.plate, world.bracket)
    canvas, seg, light = world.rasterise(cam, rng)
    paint_background(canvas, seg, planes, cam, light)
    for body, corners, image in faces:
        paint_face(canvas, seg, body, canvas_points(cam, corners), image)
    paint_face(canvas, seg, world.screen_id, _upright(canvas_points(cam, world.screen)),
               face_image(rng), shaded=False)
    if disc is not None:
        paint_disc(canvas, seg, world.disc, canvas_points(cam, disc[0]), disc[1], light, rng)
    return sensor(distort(canvas, cam), rng)


def render_proxy(target, q, seed=0, camera: CameraModel = PROXY_CAMERA, *,
                 target_mode: str = "painted", marker: bool = False,
                 jitter: float = 1.0, tool=None) -> np.ndarray:
    """Proxy webcam frames of scenes: uint8 RGB (B, height, width, 3) (module docstring).

    ``q`` (B, 3) joint angles in radians (plane frame of :mod:`reach_core.kinematics`), drawn as
    given, even outside the joint limits; ``target`` (B, 2) metres, used by
    ``target_mode="physical"`` (the disc appears at the target) and otherwise only checked (None
    is allowed).  A single scene, (3,) and (2,), gives one (height, width, 3) frame.  Frame i's
    look (room, light, camera jitter, sensor) is drawn from the seed ``seed + i`` (or ``seed[i]``
    for a sequence of seeds); ``jitter`` scales the per-frame camera shake (0: exactly
    ``camera``).  The gripper's fingertips end at the tool point of ``tool`` (None: the paper's).
    Raises ValueError for bad input and :class:`ProxyRenderError` when pybullet, the Baxter
    meshes or the photographs are missing.
    """
    target_b, q_b, single = _check_inputs(target, q, target_mode)
    seeds = _seeds(seed, len(q_b))
    world = _world(tool_arm(tool).tool_length)
    frames = np.empty((len(q_b), camera.height, camera.width, 3), np.uint8)
    for i in range(len(q_b)):
        rng = np.random.default_rng([int(seeds[i]), 0x9A0C5])
        frames[i] = render_frame(world, None if target_b is None else target_b[i], q_b[i], rng,
                                 camera, target_mode=target_mode, marker=marker, jitter=jitter)
    return frames[0] if single else frames


def frame_cameras(seed, n: int, camera: CameraModel = PROXY_CAMERA, jitter: float = 1.0) -> list:
    """The exact cameras of frames ``seed`` .. ``seed + n - 1`` (their per-frame jitter), as
    :func:`render_proxy` draws them: ground truth for tests and benchmarks."""
    return [frame_camera(camera, np.random.default_rng([int(s), 0x9A0C5]), jitter)
            for s in _seeds(seed, n)]


# ----------------------------------------------------------------------------- contact sheet
SHEET_MODES = (("painted", False), ("physical", False), ("none", True))


def contact_sheet(path, seed: int = PROXY_COLLECT_SEED, per_mode: int = 4, tile: int = 240) -> Path:
    """A PNG of ``per_mode`` frames of each kind (painted target: no disc; physical disc;
    calibration marker), one kind a row, ``tile`` px wide each, quantised to stay small."""
    import cv2
    from PIL import Image

    from .renderer import sample_scenes
    rows = []
    for k, (mode, marker) in enumerate(SHEET_MODES):
        target, q = sample_scenes(per_mode, seed + k)
        frames = render_proxy(target, q, seed=seed * LOOK_SEED_STRIDE + 100 * k,
                              target_mode=mode, marker=marker)
        label = "marker" if marker else mode
        tiles = []
        for frame in frames:
            small = cv2.resize(frame, (tile, tile * frame.shape[0] // frame.shape[1]),
                               interpolation=cv2.INTER_AREA)
            cv2.putText(small, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                        cv2.LINE_AA)
            tiles.append(small)
        rows.append(np.concatenate(tiles, axis=1))
    sheet = Image.fromarray(np.concatenate(rows, axis=0)).quantize(colors=160, method=Image.MEDIANCUT)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path


def main(argv=None) -> int:
    """``python -m reach_core.proxy_renderer --sheet PATH``: write the contact sheet."""
    import argparse
    parser = argparse.ArgumentParser(description="The held-out realistic proxy domain: write a "
                                                 "contact sheet of its frames.")
    parser.add_argument("--sheet", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=PROXY_COLLECT_SEED)
    args = parser.parse_args(argv)
    try:
        out = contact_sheet(args.sheet, args.seed)
    except (ProxyRenderError, OSError) as err:
        print(f"error: {err}")
        return 2
    print(f"wrote {out} ({out.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
