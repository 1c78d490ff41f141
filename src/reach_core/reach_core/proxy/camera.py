"""The proxy webcam: :data:`PROXY_CAMERA` placed by hand, its per-frame jitter, the pinhole canvas
that TinyRenderer draws (pybullet's matrices, world -> canvas pixels) and the lens's distortion maps."""
from __future__ import annotations

import math
import threading
from dataclasses import replace

import numpy as np

from ..camera_model import NOMINAL_DISTANCE_M, CameraModel

MARGIN_PX = 6                         # canvas margin beyond what the lens distortion needs


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
