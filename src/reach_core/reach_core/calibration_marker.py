"""The calibration marker: a printed ArUco marker on a plate fixed to Baxter's hand.

``reach calibrate`` (:mod:`reach_core.calibration`) fits the camera from frames in which this
marker is seen while the arm moves through known joint angles: each detected corner is a known
3-D point of the plane frame (metres; z out of the plane towards the camera side).  Print the
marker (``reach calibrate --print-marker marker.png``) at ``size_m`` and stick it flat on the
side of the hand that faces the camera, its centre ``along_m`` from the w1 axis along the hand
(towards the fingertips) and ``across_m`` across it, its face ``depth_m`` in front of the arm's
plane, with the marker's own x axis (its top edge, left to right) pointing along the hand.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .kinematics import BAXTER_LEFT, PlanarArm


@dataclass(frozen=True)
class MarkerSpec:
    """Where the calibration marker sits on the hand (module docstring)."""

    dictionary: str = "DICT_4X4_50"
    marker_id: int = 7
    size_m: float = 0.09
    along_m: float = 0.12
    across_m: float = 0.0
    depth_m: float = 0.07

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_MARKER = MarkerSpec()


def hand_axes(q, arm: PlanarArm = BAXTER_LEFT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wrist point, unit vector along the hand (wrist -> end-effector) and across it (along
    turned by +90 degrees), each (..., 2), for joint angles q (..., 3)."""
    pts = arm.link_points(np.asarray(q, np.float64))
    wrist, ee = pts[..., 2, :], pts[..., 3, :]
    along = (ee - wrist) / np.linalg.norm(ee - wrist, axis=-1, keepdims=True)
    across = np.stack([-along[..., 1], along[..., 0]], axis=-1)
    return wrist, along, across


def marker_corners(q, spec: MarkerSpec = DEFAULT_MARKER, arm: PlanarArm = BAXTER_LEFT) -> np.ndarray:
    """The marker's four corners in the plane frame, (..., 4, 3) metres, in ArUco's order (top
    left, top right, bottom right, bottom left of the printed marker).  The marker's x axis runs
    along the hand and its y axis (down the printed marker) against ``across``, so a camera on the
    nominal side sees it unmirrored."""
    wrist, along, across = hand_axes(q, arm)
    centre = wrist + spec.along_m * along + spec.across_m * across
    h = spec.size_m / 2
    corners = [(-h, -h), (h, -h), (h, h), (-h, h)]   # (x_m, y_m) of the printed marker
    xy = np.stack([centre + xm * along - ym * across for xm, ym in corners], axis=-2)
    z = np.full(xy.shape[:-1] + (1,), spec.depth_m)
    return np.concatenate([xy, z], axis=-1)


def marker_image(spec: MarkerSpec = DEFAULT_MARKER, pixels: int = 200) -> np.ndarray:
    """The marker as a uint8 grey image (pixels x pixels): its black square spans ``size_m``;
    print it with a white margin of at least one cell around it (the detector needs the margin)."""
    import cv2
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    return cv2.aruco.generateImageMarker(dictionary, spec.marker_id, pixels)
