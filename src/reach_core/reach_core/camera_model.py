"""The real camera: a calibrated pinhole camera looking at the arm's plane, and the camera file.

The networks always see the *virtual* camera of :class:`~reach_core.scene.CameraConfig` (the
simple simulator's camera: square pixels, the plane seen straight on, the s1 axis at
``origin_px``).  A real webcam on a tripod is never there: it sits a little off, yawed, pitched
and rolled, with its own focal length and lens distortion, and may see the arm from its other
side.  :class:`CameraModel` describes such a camera in OpenCV's convention -- intrinsics ``K``,
distortion ``dist`` (k1, k2, p1, p2, k3; the ROS ``plumb_bob`` model) and the pose of the arm's
plane in the camera frame (``rvec``, ``tvec``: a plane point (x, y) in metres is the 3-D point
(x, y, 0) of the plane frame, whose z axis points out of the plane towards the side the nominal
camera looks from).  :meth:`CameraModel.to_virtual` resamples its frames into the virtual
camera's frames (an exact map for everything in the arm's plane), so that the crop, the
virtual-target painter, training, evaluation and the ROS nodes all work unchanged on any camera
once it is calibrated (``reach calibrate``, :mod:`reach_core.calibration`).

The camera file is the ROS ``camera_info`` YAML (``camera_calibration_parsers``: image_width,
image_height, camera_name, camera_matrix, distortion_model, distortion_coefficients) with the
plane's pose and the fit's quality added, so ROS tools read its intrinsics as they are.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .scene import DEFAULT_CAMERA, CameraConfig

CAMERA_FORMAT = "reach.camera/1"
NOMINAL_DISTANCE_M = 2.897   # the higher-fidelity renderer's camera distance (45 deg vertical FOV)


class CameraFileError(ValueError):
    """A camera file that is missing, malformed, or does not fit the frames given to it."""


def _rotation(rvec) -> np.ndarray:
    import cv2
    return cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))[0]


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera with lens distortion looking at the arm's plane (module docstring)."""

    width: int = DEFAULT_CAMERA.width
    height: int = DEFAULT_CAMERA.height
    K: tuple = ()                      # 3 x 3, row-major, 9 values
    dist: tuple = (0.0, 0.0, 0.0, 0.0, 0.0)
    rvec: tuple = (math.pi, 0.0, 0.0)  # plane -> camera rotation (Rodrigues)
    tvec: tuple = (0.0, 0.0, NOMINAL_DISTANCE_M)
    name: str = "reach_camera"
    fit: dict = field(default_factory=dict, compare=False)   # what reach calibrate measured

    def __post_init__(self):
        k = np.asarray(self.K, np.float64).reshape(-1)
        if k.size != 9:
            raise CameraFileError(f"camera_matrix needs 9 values, got {k.size}")
        for name, vals, n in (("distortion_coefficients", self.dist, 5), ("rvec", self.rvec, 3),
                              ("tvec", self.tvec, 3)):
            if np.asarray(vals).size != n:
                raise CameraFileError(f"{name} needs {n} values, got {np.asarray(vals).size}")
        allv = np.concatenate([k, np.ravel(self.dist), np.ravel(self.rvec), np.ravel(self.tvec)])
        if not np.all(np.isfinite(allv)):
            raise CameraFileError("the camera has NaN or infinite values")
        if not (0 < self.width <= 16384 and 0 < self.height <= 16384):
            raise CameraFileError(f"image size {self.width}x{self.height} is not plausible")
        if k[0] <= 0 or k[4] <= 0:
            raise CameraFileError(f"focal lengths must be positive, got fx={k[0]}, fy={k[4]}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def nominal(cls, camera: CameraConfig = DEFAULT_CAMERA,
                distance: float = NOMINAL_DISTANCE_M) -> CameraModel:
        """The virtual camera itself as a pinhole camera (its :meth:`to_virtual` is the identity)."""
        f = camera.px_per_m * distance
        cx, cy = camera.origin_px[0] - 0.5, camera.origin_px[1] - 0.5   # OpenCV: centres at ints
        return cls(camera.width, camera.height, (f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0),
                   rvec=(math.pi, 0.0, 0.0), tvec=(0.0, 0.0, distance))

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.K, np.float64).reshape(3, 3)

    @property
    def rotation(self) -> np.ndarray:
        return _rotation(self.rvec)

    def with_fit(self, **fit) -> CameraModel:
        return replace(self, fit={**self.fit, **fit})

    # ------------------------------------------------------------------ geometry
    def project(self, points) -> np.ndarray:
        """Plane-frame points (..., 2) (in the plane) or (..., 3) (x, y, z off the plane), metres
        -> pixel coordinates (..., 2) in this package's convention (pixel (i, j) covers
        [j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5))."""
        import cv2
        pts = np.asarray(points, np.float64)
        shape = pts.shape[:-1]
        if pts.shape[-1] == 2:
            pts = np.concatenate([pts, np.zeros(shape + (1,))], axis=-1)
        uv, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.asarray(self.rvec, np.float64),
                                  np.asarray(self.tvec, np.float64), self.matrix,
                                  np.asarray(self.dist, np.float64))
        return uv.reshape(shape + (2,)) + 0.5

    def sees_plane_from_front(self) -> bool:
        """Whether the plane's +z side faces the camera (False: it sees the arm from behind)."""
        return float(self.rotation[2, 2]) < 0

    @functools.cached_property
    def _maps(self) -> dict:
        return {}

    def virtual_maps(self, camera: CameraConfig = DEFAULT_CAMERA) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps (float32, camera.height x camera.width) from the virtual camera's pixels
        to this camera's: where each virtual pixel's point of the plane lands in this frame."""
        key = (camera.width, camera.height, camera.px_per_m, tuple(camera.origin_px))
        if key not in self._maps:
            jj, ii = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
            x = (jj - camera.origin_px[0]) / camera.px_per_m
            y = (camera.origin_px[1] - ii) / camera.px_per_m
            uv = self.project(np.stack([x, y], axis=-1)) - 0.5   # OpenCV: pixel centres at ints
            self._maps[key] = (uv[..., 0].astype(np.float32), uv[..., 1].astype(np.float32))
        return self._maps[key]

    def check_frames(self, frames: np.ndarray) -> None:
        h, w = frames.shape[-3:-1]
        if (w, h) != (self.width, self.height):
            raise CameraFileError(f"frames are {w}x{h} pixels, the camera file is for "
                                  f"{self.width}x{self.height}: calibrate this camera at this "
                                  f"resolution (reach calibrate)")

    def to_virtual(self, frames, camera: CameraConfig = DEFAULT_CAMERA) -> np.ndarray:
        """uint8 frames (H, W, 3) or (B, H, W, 3) of this camera -> the virtual camera's frames
        (camera.height x camera.width): bilinear resampling of the plane; outside this frame the
        image is filled with the frame's mean colour (a neutral background, not black)."""
        import cv2
        frames = np.asarray(frames)
        single = frames.ndim == 3
        batch = frames[None] if single else frames
        self.check_frames(batch)
        mx, my = self.virtual_maps(camera)
        out = np.empty((len(batch), camera.height, camera.width, batch.shape[-1]), np.uint8)
        for i, frame in enumerate(batch):
            fill = tuple(float(c) for c in frame.reshape(-1, frame.shape[-1]).mean(axis=0))
            out[i] = cv2.remap(frame, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=fill)
        return out[0] if single else out

    def frame_error_px(self, other: CameraModel, camera: CameraConfig = DEFAULT_CAMERA,
                       step: int = 10, region: str = "crop") -> dict:
        """How far this camera's projection of the plane is from ``other``'s, in pixels of this
        frame, over the plane region the virtual camera's crop shows (``region="crop"``) or only
        the part of it the arm reaches (``"reach"``), every ``step`` virtual pixels."""
        from .kinematics import BAXTER_LEFT
        x0, y0, w, h = camera.roi
        jj, ii = np.meshgrid(np.arange(x0, x0 + w + 1, step), np.arange(y0, y0 + h + 1, step))
        xy = np.stack([(jj - camera.origin_px[0]) / camera.px_per_m,
                       (camera.origin_px[1] - ii) / camera.px_per_m], axis=-1).reshape(-1, 2)
        if region == "reach":
            xy = xy[np.linalg.norm(xy, axis=-1) <= BAXTER_LEFT.reach]
        elif region != "crop":
            raise ValueError(f"region is 'crop' or 'reach', got {region!r}")
        d = np.linalg.norm(self.project(xy) - other.project(xy), axis=-1)
        return {"mean_px": float(d.mean()), "p95_px": float(np.percentile(d, 95)),
                "max_px": float(d.max()), "points": int(d.size)}

    # ------------------------------------------------------------------ the camera file
    def as_dict(self) -> dict:
        return {
            "format": CAMERA_FORMAT,
            "image_width": int(self.width), "image_height": int(self.height),
            "camera_name": self.name,
            "camera_matrix": {"rows": 3, "cols": 3, "data": [float(v) for v in self.K]},
            "distortion_model": "plumb_bob",
            "distortion_coefficients": {"rows": 1, "cols": 5,
                                        "data": [float(v) for v in self.dist]},
            "plane_pose": {"rvec": [float(v) for v in self.rvec],
                           "tvec": [float(v) for v in self.tvec]},
            "fit": dict(self.fit),
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "camera file") -> CameraModel:
        if not isinstance(d, dict):
            raise CameraFileError(f"{source}: not a mapping")
        try:
            model = d.get("distortion_model", "plumb_bob")
            if model not in ("plumb_bob", "rational_polynomial"):
                raise CameraFileError(f"{source}: distortion_model {model!r} is not supported "
                                      f"(plumb_bob)")
            dist = list(d["distortion_coefficients"]["data"])[:5]
            dist += [0.0] * (5 - len(dist))
            pose = d.get("plane_pose")
            if pose is None:
                raise CameraFileError(f"{source}: no plane_pose: this is a plain camera_info "
                                      f"file; run `reach calibrate` to add the arm plane's pose")
            return cls(int(d["image_width"]), int(d["image_height"]),
                       tuple(float(v) for v in d["camera_matrix"]["data"]), tuple(dist),
                       tuple(float(v) for v in pose["rvec"]), tuple(float(v) for v in pose["tvec"]),
                       name=str(d.get("camera_name", "reach_camera")), fit=dict(d.get("fit") or {}))
        except (KeyError, TypeError) as err:
            raise CameraFileError(f"{source}: missing or malformed field {err}") from None

    def save(self, path: str | os.PathLike) -> Path:
        import yaml
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.as_dict(), sort_keys=False))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CameraModel:
        import yaml
        path = Path(os.path.expanduser(str(path)))
        if not path.is_file():
            raise CameraFileError(f"camera file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise CameraFileError(f"{path}: not YAML ({err})") from None
        return cls.from_dict(data, str(path))


def read_camera_info(path) -> CameraModel:
    """Intrinsics from a ROS camera_info YAML (the plane's pose, if any, is ignored)."""
    import yaml
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise CameraFileError(f"camera_info file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CameraFileError(f"{path}: not YAML ({err})") from None
    if not isinstance(data, dict):
        raise CameraFileError(f"{path}: not a mapping")
    data = {**data, "plane_pose": {"rvec": [math.pi, 0, 0], "tvec": [0, 0, NOMINAL_DISTANCE_M]}}
    return CameraModel.from_dict(data, str(path))


def load_camera(path) -> CameraModel | None:
    """The camera file at ``path``, or None for no path ('' or None: the virtual camera)."""
    return CameraModel.load(path) if path else None


def to_virtual(frames, calibration: CameraModel | None,
               camera: CameraConfig = DEFAULT_CAMERA) -> np.ndarray:
    """Frames as the virtual camera sees them: unchanged without a calibration."""
    return frames if calibration is None else calibration.to_virtual(frames, camera)
