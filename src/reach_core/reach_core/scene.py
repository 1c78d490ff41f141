"""The scene configuration Omega (paper sections 3.1 and 4) and the camera that sees the scene.

Omega = [target x, target y, q1, q2, q3] is the bottleneck between perception and control.  At every
interface of this package positions are metres in the arm's plane frame (see
:mod:`reach_core.kinematics`) and angles are radians; Omega is normalised to [0, 1] only here:
target coordinates over :data:`WORKSPACE` and joint angles over Baxter's joint limits.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .kinematics import JOINT_LIMITS, JOINT_NAMES, TARGET_BOX

# Square region of the arm's plane (metres, plane frame) over which target positions are normalised.
# Baxter's left arm reaches 1.025 m from the s1 axis; the targets of the task (end-effector
# positions of configurations within the joint limits) all lie inside this square.  A longer tool
# (kinematics.TOOL_PRESETS) reaches past it: its targets are drawn inside (PlanarArm.keep_in_box).
WORKSPACE = np.array([[-TARGET_BOX, TARGET_BOX],   # x (forward)
                      [-TARGET_BOX, TARGET_BOX]])  # y (up)

OMEGA_NAMES = ("target_x", "target_y") + JOINT_NAMES
OMEGA_LOW = np.concatenate([WORKSPACE[:, 0], JOINT_LIMITS[:, 0]])
OMEGA_HIGH = np.concatenate([WORKSPACE[:, 1], JOINT_LIMITS[:, 1]])


class SceneError(ValueError):
    """Raised for scene configurations that are malformed or out of range."""


def normalise(target: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Physical (target [m], q [rad]) -> Omega in [0, 1], shape (..., 5), float32."""
    phys = np.concatenate([np.asarray(target, np.float64), np.asarray(q, np.float64)], axis=-1)
    if phys.shape[-1] != 5:
        raise SceneError(f"a scene needs a 2-D target and 3 joint angles, got {phys.shape[-1]} values")
    return ((phys - OMEGA_LOW) / (OMEGA_HIGH - OMEGA_LOW)).astype(np.float32)


def denormalise(omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Omega in [0, 1] (shape (..., 5)) -> (target [m], q [rad])."""
    omega = np.asarray(omega, dtype=np.float64)
    if omega.shape[-1] != 5:
        raise SceneError(f"Omega has 5 components {OMEGA_NAMES}, got shape {omega.shape}")
    phys = OMEGA_LOW + omega * (OMEGA_HIGH - OMEGA_LOW)
    return phys[..., :2], phys[..., 2:]


def check_omega(omega: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Validate a normalised scene configuration: 5 finite values in [0, 1]."""
    omega = np.asarray(omega, dtype=np.float64)
    if omega.shape[-1:] != (5,):
        raise SceneError(f"Omega has 5 components {OMEGA_NAMES}, got shape {omega.shape}")
    if not np.all(np.isfinite(omega)):
        raise SceneError("Omega contains NaN or infinity")
    bad = (omega < -tol) | (omega > 1 + tol)
    if np.any(bad):
        j = int(np.argwhere(bad)[0][-1])
        raise SceneError(f"Omega component {OMEGA_NAMES[j]} is outside [0, 1]")
    return omega


@dataclass(frozen=True)
class CameraConfig:
    """A camera looking straight at the arm's plane, and the crop that feeds the networks.

    The simple simulator draws frames at the camera resolution (``width`` x ``height``) with
    ``px_per_m`` pixels per metre and the s1 axis at pixel ``origin_px``; every frame, simulated or
    from the webcam, then goes through the same pipeline: crop ``roi`` (x, y, w, h in pixels) ->
    grey -> ``net_size`` x ``net_size``.  The defaults make the crop a 2 m x 2 m square centred on
    the shoulder, so one pixel of the 84 x 84 network image is 2.38 cm and the target disc
    (9 cm radius) is 3.8 px, as in the paper.
    """

    width: int = 640
    height: int = 480
    px_per_m: float = 200.0
    origin_px: tuple[float, float] = (320.0, 240.0)
    roi: tuple[int, int, int, int] = (110, 30, 420, 420)
    net_size: int = 84

    @property
    def m_per_net_px(self) -> float:
        """Metres in the plane per pixel of the network image (square crop)."""
        return self.roi[2] / self.px_per_m / self.net_size

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Plane coordinates (m) -> camera pixel coordinates (u right, v down)."""
        xy = np.asarray(xy, dtype=np.float64)
        u = self.origin_px[0] + self.px_per_m * xy[..., 0]
        v = self.origin_px[1] - self.px_per_m * xy[..., 1]
        return np.stack([u, v], axis=-1)

    def to_net_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Plane coordinates (m) -> pixel coordinates in the net_size x net_size network image."""
        uv = self.to_pixels(xy)
        x0, y0, w, h = self.roi
        return np.stack([(uv[..., 0] - x0) * self.net_size / w,
                         (uv[..., 1] - y0) * self.net_size / h], axis=-1)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_CAMERA = CameraConfig()
TARGET_RADIUS_M = 0.095  # the blue disc: 3.8 px at 84 x 84 as in the paper (its 9 cm at 2.37 cm/px)
