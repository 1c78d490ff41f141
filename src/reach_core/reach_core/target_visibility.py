"""Is a target in view?  A colour check on the camera frame before the network runs.

The perception network always answers with some Omega: with no target in the frame it still
returns a target position (the paper saw constant wrong outputs).  The target of this task is a
blue disc -- painted into the frame (the virtual target) or a physical one -- so a frame without
enough blue, disc-shaped pixels where the arm's plane is seen has no target, and the perception
node says so instead of publishing a made-up one.

:func:`find_target` works on frames of the virtual camera (after
:meth:`~reach_core.camera_model.CameraModel.to_virtual`), in OpenCV's HSV space: pixels of a blue
hue (any blue: light, dark, greenish or purplish), saturated enough not to be grey, bright enough
not to be black; a connected blob inside the crop whose area is at least a share of the disc's
expected area (a disc partly hidden by the arm still counts), not many times more (a blue poster
is not a target), and round (a disc seen obliquely or partly hidden is still roundish; the blue
parts of photographs seldom are).  The blob closest to a full disc's area is the one reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import DEFAULT_CAMERA, TARGET_RADIUS_M, CameraConfig

HUE_RANGE = (95, 135)      # OpenCV hue (0-180): cyan-blue to violet-blue
MIN_SATURATION = 80        # of 255
MIN_VALUE = 35             # of 255
MIN_AREA_SHARE = 0.2       # of the disc's expected area: a mostly hidden disc still counts
MAX_AREA_SHARE = 2.5       # larger blue blobs are not the target
MIN_CIRCULARITY = 0.7      # 4 pi area / perimeter^2: a disc (even oblique or partly hidden) is
                           # round; the blue parts of posters and photographs seldom are.  Chosen
                           # on a user's collected proxy frames (seeds 100 and 103: 84 % of
                           # physical discs seen, 11 % of target-free frames seen as one), never
                           # on the proxy's test seeds


@dataclass(frozen=True)
class TargetSighting:
    """Where the blue blob is (virtual camera pixels) and how large it is against a full disc."""

    visible: bool
    centre_px: tuple[float, float] | None
    area_share: float
    reason: str


def find_target(frame: np.ndarray, camera: CameraConfig = DEFAULT_CAMERA, *,
                bgr: bool = False) -> TargetSighting:
    """Look for the target disc in one uint8 frame (H, W, 3) of the virtual camera."""
    import cv2
    frame = np.ascontiguousarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"need one uint8 colour frame (H, W, 3), got {frame.dtype} {frame.shape}")
    x0, y0, w, h = camera.roi
    crop = frame[y0:y0 + h, x0:x0 + w]
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV if bgr else cv2.COLOR_RGB2HSV)
    mask = ((hsv[..., 0] >= HUE_RANGE[0]) & (hsv[..., 0] <= HUE_RANGE[1])
            & (hsv[..., 1] >= MIN_SATURATION) & (hsv[..., 2] >= MIN_VALUE)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    disc = np.pi * (TARGET_RADIUS_M * camera.px_per_m) ** 2
    if n <= 1:
        return TargetSighting(False, None, 0.0, "no blue pixels in view")
    best, reasons = None, []
    for k in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:8]:
        share = float(stats[k, cv2.CC_STAT_AREA]) / disc
        centre = (float(centroids[k, 0] + x0 + 0.5), float(centroids[k, 1] + y0 + 0.5))
        why = _not_a_disc(labels == k, share)
        if why:
            reasons.append(why)
        elif best is None or abs(np.log(share)) < abs(np.log(best[1])):
            best = (centre, share)
    if best is None:
        return TargetSighting(False, None, 0.0, "; ".join(dict.fromkeys(reasons)))
    return TargetSighting(True, best[0], best[1], "")


def _not_a_disc(blob: np.ndarray, share: float) -> str:
    """Why a blue blob is not the target disc ('' when it may be)."""
    import cv2
    if share < MIN_AREA_SHARE:
        return f"blue blobs smaller than {MIN_AREA_SHARE:.0%} of a target disc"
    if share > MAX_AREA_SHARE:
        return f"blue blobs larger than {MAX_AREA_SHARE:g} target discs: not a target"
    contours, _ = cv2.findContours(blob.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    perimeter = cv2.arcLength(c, True)
    circularity = 4 * np.pi * cv2.contourArea(c) / max(perimeter, 1e-6) ** 2
    if circularity < MIN_CIRCULARITY:
        return "blue blobs that are not round: not a target"
    return ""
