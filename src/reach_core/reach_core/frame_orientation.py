"""Turning camera frames to the orientation the perception expects (ROS-free).

The plane frame of :mod:`reach_core.kinematics` puts "forward" (x) to the right of the image and
"up" (y) up.  A webcam beside the arm may see forward on the left (mount it mirrored: ``flip``
horizontal), be mounted upside down (``rotate`` 180), on its side (``rotate`` 90 or 270, which
swaps width and height) or slightly rolled (``roll_deg``, a small correction).  The steps, in
this order, on a (H, W, C) array:

1. ``rotate``: 0, 90, 180 or 270 degrees clockwise, exact (no resampling);
2. ``flip``: ``none``, ``horizontal`` (mirror left-right), ``vertical`` (upside down) or ``both``;
3. ``roll_deg``: rotate by this many degrees counter-clockwise about the image centre, same size,
   bilinear, the corners filled by repeating the border.
"""
from __future__ import annotations

import math

import numpy as np

FLIPS = ("none", "horizontal", "vertical", "both")
ROTATIONS = (0, 90, 180, 270)


def check_orientation(flip: str, rotate: int, roll_deg: float) -> None:
    """ValueError naming the setting that is not valid."""
    if flip not in FLIPS:
        raise ValueError(f"flip must be one of {', '.join(FLIPS)}, got {flip!r}")
    if rotate not in ROTATIONS:
        raise ValueError(f"rotate must be one of 0, 90, 180, 270 (degrees clockwise), "
                         f"got {rotate!r}")
    if not isinstance(roll_deg, (int, float)) or not math.isfinite(roll_deg):
        raise ValueError(f"roll_deg must be a finite number, got {roll_deg!r}")


def oriented_size(width: int, height: int, rotate: int) -> tuple[int, int]:
    """(width, height) of a width x height frame after ``rotate``."""
    return (height, width) if rotate in (90, 270) else (width, height)


def orient_frame(frame: np.ndarray, flip: str = "none", rotate: int = 0,
                 roll_deg: float = 0.0) -> np.ndarray:
    """The frame rotated, flipped and rolled (see the module docstring); a new contiguous array
    unless nothing is asked."""
    check_orientation(flip, rotate, roll_deg)
    out = frame
    if rotate:
        out = np.rot90(out, k=-(rotate // 90), axes=(0, 1))
    if flip in ("horizontal", "both"):
        out = out[:, ::-1]
    if flip in ("vertical", "both"):
        out = out[::-1]
    if roll_deg:
        import cv2
        h, w = out.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(roll_deg), 1.0)
        out = cv2.warpAffine(np.ascontiguousarray(out), m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    return out if out is frame else np.ascontiguousarray(out)
