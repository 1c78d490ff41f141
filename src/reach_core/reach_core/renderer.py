"""The simple simulator's images (paper section 4, Figures 1A and 3) and the image pipeline.

:func:`render` draws a scene configuration -- target position x* (m) and joint angles q (rad) --
as a camera frame: a light plain background, a simplistic Baxter seen from the side (pedestal,
torso and head behind the arm; red upper arm and forearm, grey hand, dark joints, a closed
gripper whose fingertips are the end-effector) and the target, a blue disc of
:data:`~reach_core.scene.TARGET_RADIUS_M` drawn on top of everything.  :func:`preprocess` is the
one pipeline from camera frames to network inputs, for simulated and webcam frames alike: crop the
ROI -> grey (ITU-R BT.601 luma) -> area-resize to ``net_size`` x ``net_size``.
:func:`render_net_images` chains the two, or renders straight at the network resolution
(``supersample``), which matches the chain to a fraction of a grey level.  :func:`add_target`
paints the virtual target into real webcam frames (Figure 3B).

Every shape is a signed-distance field evaluated at the pixel centres and anti-aliased with
``coverage = clip(0.5 - sdf / pixel, 0, 1)``; moving shapes are evaluated only in a window around
each of them, so cost grows with the arm's area rather than the frame's.  Rendering is
deterministic: the same inputs give the same bytes.

Pixel convention: pixel (row i, column j) covers [j, j + 1) x [i, i + 1) in the continuous
coordinates of :meth:`CameraConfig.to_pixels` (and of ``to_net_pixels`` in the network image), so
its centre is (j + 0.5, i + 0.5).
"""
from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .kinematics import BAXTER_LEFT, PlanarArm, tool_arm
from .scene import DEFAULT_CAMERA, TARGET_RADIUS_M, CameraConfig, normalise
from .simulator import ACTIVE_JOINTS

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 weights of R, G, B

# Colours (RGB).  In the grey network images (luma) the target (29) is the darkest thing in the
# scene, and the arm (70-105) stands out from the torso and pedestal (150-190) and the background
# (235).
BACKGROUND_RGB = (236, 236, 230)
PEDESTAL_RGB = (186, 186, 190)
TORSO_RGB = (150, 152, 158)
SCREEN_RGB = (58, 60, 66)
UPPER_ARM_RGB = (200, 36, 42)
FOREARM_RGB = (178, 30, 36)
HAND_RGB = (104, 104, 110)
JOINT_RGB = (70, 70, 76)
GRIPPER_RGB = (88, 88, 94)
TARGET_RGB = (0, 0, 255)

# Arm drawing, metres in the arm's plane: half-widths of the links and radii of the joint discs.
LINK_HALF_WIDTHS = (0.050, 0.045, 0.040)   # upper arm, forearm, hand
JOINT_RADII = (0.065, 0.058, 0.050)        # s1, e1, w1
HAND_FLANGE_M = 0.2295    # w1 -> hand flange (URDF); the gripper spans flange -> end-effector
PLATE_HALF_LENGTH = 0.050  # gripper base plate, across the hand
PLATE_RADIUS = 0.016
FINGER_OFFSET = 0.010     # closed fingers: each 1 cm off the hand's axis, overlapping on it
FINGER_RADIUS = 0.014

# The fixed body behind the arm (plane frame, metres): rounded boxes (centre, half-size, corner
# radius) and capsules (end points, radius), back to front.
_BODY = (
    ("box", (-0.15, -0.95), (0.09, 0.40), 0.02, PEDESTAL_RGB),       # pedestal column
    ("box", (-0.21, -0.22), (0.19, 0.36), 0.06, TORSO_RGB),          # torso
    ("capsule", (-0.20, 0.12), (-0.20, 0.26), 0.035, TORSO_RGB),     # neck
    ("capsule", (-0.19, 0.27), (-0.13, 0.50), 0.030, SCREEN_RGB),    # head (Baxter's screen)
    ("box", (-0.05, 0.0), (0.08, 0.065), 0.03, SCREEN_RGB),          # shoulder mount
)


@dataclass(frozen=True)
class _Grid:
    """A regular grid of samples over the camera image.

    Sample (i, j) sits at camera pixel coordinates (u0 + (j + 0.5) pu, v0 + (i + 0.5) pv).  The
    camera frame is the grid (0, 0, 1, 1); the network image supersampled ``s`` times is the ROI
    divided into (net_size s)^2 cells.  Distances are measured in camera pixels and anti-aliased
    over one grid cell (``pitch`` camera pixels).
    """

    height: int
    width: int
    u0: float = 0.0
    v0: float = 0.0
    pu: float = 1.0
    pv: float = 1.0

    @classmethod
    def camera(cls, camera: CameraConfig) -> _Grid:
        return cls(camera.height, camera.width)

    @classmethod
    def net(cls, camera: CameraConfig, supersample: int) -> _Grid:
        x0, y0, w, h = camera.roi
        n = camera.net_size * supersample
        return cls(n, n, float(x0), float(y0), w / n, h / n)

    @property
    def pitch(self) -> float:
        return float(np.sqrt(self.pu * self.pv))

    def centres(self, index: np.ndarray, axis: int) -> np.ndarray:
        """Camera coordinates of sample rows (axis 0) or columns (axis 1)."""
        start, step = (self.v0, self.pv) if axis == 0 else (self.u0, self.pu)
        return (start + (index + 0.5) * step).astype(np.float32)

    def window(self, lo: np.ndarray, hi: np.ndarray, axis: int) -> tuple[np.ndarray, int]:
        """First sample indices (B,) and common length n of windows covering [lo, hi] (camera px).

        n is the largest length any scene needs, at most the grid size; windows are shifted to
        lie inside the grid, so they still hold the visible part of a shape sticking out of it.
        """
        start, step, size = (self.v0, self.pv, self.height) if axis == 0 else \
            (self.u0, self.pu, self.width)
        first = np.floor((lo - start) / step - 0.5).astype(np.int64)
        last = np.ceil((hi - start) / step - 0.5).astype(np.int64)
        n = min(int(np.max(last - first)) + 1, size)
        return np.clip(first, 0, size - n), n


def _capsule_coverage(u, v, a, b, radius: float, pitch: float) -> np.ndarray:
    """Anti-aliased coverage of the capsule (segment a-b widened by ``radius``) at samples (u, v).

    Everything is in camera pixels; ``a``, ``b`` broadcast against ``u`` and ``v`` with a
    trailing axis of 2.  A disc is a capsule with a == b.
    """
    ax, ay = a[..., 0], a[..., 1]
    bax, bay = b[..., 0] - ax, b[..., 1] - ay
    pax, pay = u - ax, v - ay
    t = np.clip((pax * bax + pay * bay) / np.maximum(bax * bax + bay * bay, 1e-12), 0.0, 1.0)
    sdf = np.hypot(pax - t * bax, pay - t * bay) - radius
    return np.clip(0.5 - sdf / pitch, 0.0, 1.0)


def _box_coverage(u, v, centre, half, corner: float, pitch: float) -> np.ndarray:
    """Anti-aliased coverage of an axis-aligned box with rounded corners (camera pixels)."""
    qx = np.abs(u - centre[0]) - (half[0] - corner)
    qy = np.abs(v - centre[1]) - (half[1] - corner)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    sdf = outside + np.minimum(np.maximum(qx, qy), 0) - corner
    return np.clip(0.5 - sdf / pitch, 0.0, 1.0)


def _over(under: np.ndarray, coverage: np.ndarray, colour: np.ndarray, dtype) -> np.ndarray:
    """``colour`` with alpha ``coverage`` composited over ``under``; uint8 ``dtype`` rounds."""
    under = under.astype(np.float32)
    painted = under + coverage[..., None] * (colour - under)
    return np.rint(painted).astype(np.uint8) if dtype == np.uint8 else painted


def _paint_capsules(canvas: np.ndarray, grid: _Grid, a: np.ndarray, b: np.ndarray,
                    radius: float, colour: np.ndarray) -> None:
    """Paint one capsule per scene (a, b: (B, 2) camera px) over ``canvas`` (B, H, W, C).

    Only a window around each capsule is evaluated and composited (gathered and scattered with
    one slice per scene, which is much faster than fancy indexing).
    """
    reach = radius + grid.pitch
    lo, hi = np.minimum(a, b) - reach, np.maximum(a, b) + reach
    row0, nv = grid.window(lo[:, 1], hi[:, 1], 0)
    col0, nu = grid.window(lo[:, 0], hi[:, 0], 1)
    v = grid.centres(row0[:, None] + np.arange(nv), 0)[:, :, None]
    u = grid.centres(col0[:, None] + np.arange(nu), 1)[:, None, :]
    a32, b32 = a.astype(np.float32)[:, None, None], b.astype(np.float32)[:, None, None]
    coverage = _capsule_coverage(u, v, a32, b32, radius, grid.pitch)
    patches = [canvas[k, i:i + nv, j:j + nu] for k, (i, j) in enumerate(zip(row0, col0))]
    painted = _over(np.stack(patches), coverage, colour, canvas.dtype)
    for patch, new in zip(patches, painted):
        patch[...] = new


def _colour(rgb, grey: bool) -> np.ndarray:
    """A colour as stored on a canvas: RGB, or its luma for grey canvases."""
    rgb = np.asarray(rgb, dtype=np.float32)
    return np.array([rgb @ LUMA], dtype=np.float32) if grey else rgb


@functools.lru_cache(maxsize=8)
def _backdrop(grid: _Grid, camera: CameraConfig, grey: bool) -> np.ndarray:
    """The scene without arm and target on ``grid``: uint8 RGB, or float32 luma (0-255) if grey."""
    channels = 1 if grey else 3
    canvas = np.empty((grid.height, grid.width, channels), np.float32)
    canvas[...] = _colour(BACKGROUND_RGB, grey)
    v = grid.centres(np.arange(grid.height), 0)[:, None]
    u = grid.centres(np.arange(grid.width), 1)[None, :]
    px = camera.px_per_m
    for kind, p, s, r, rgb in _BODY:
        if kind == "box":
            centre = camera.to_pixels(p)
            coverage = _box_coverage(u, v, centre, np.multiply(s, px), r * px, grid.pitch)
        else:
            coverage = _capsule_coverage(u, v, camera.to_pixels(p), camera.to_pixels(s), r * px,
                                         grid.pitch)
        canvas = _over(canvas, coverage, _colour(rgb, grey), np.float32)
    canvas = canvas.astype(np.float32) if grey else np.rint(canvas).astype(np.uint8)
    canvas.flags.writeable = False
    return canvas


def _scene_batch(target, q) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate (target, q) and return them batched: (B, 2), (B, 3), and whether unbatched."""
    target = np.asarray(target, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if target.shape[-1:] != (2,) or q.shape[-1:] != (3,):
        raise ValueError(f"need targets of shape (B, 2) and joint angles of shape (B, 3), "
                         f"got {target.shape} and {q.shape}")
    if target.ndim != q.ndim or target.ndim not in (1, 2) or target.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"target {target.shape} and q {q.shape} must both be single scenes "
                         f"or batches of the same size")
    if not (np.all(np.isfinite(target)) and np.all(np.isfinite(q))):
        raise ValueError("target or joint angles contain NaN or infinity")
    single = target.ndim == 1
    return np.atleast_2d(target), np.atleast_2d(q), single


def _paint_scene(canvas: np.ndarray, grid: _Grid, camera: CameraConfig, target: np.ndarray,
                 q: np.ndarray, grey: bool, arm: PlanarArm = BAXTER_LEFT) -> None:
    """Paint the arm in configurations ``q`` and then the targets over ``canvas``; the gripper's
    fingers end at ``arm``'s tool point."""
    px = camera.px_per_m
    pts = arm.link_points(q)                               # (B, 4, 2) m
    wrist, ee = pts[:, 2], pts[:, 3]
    along = (ee - wrist) / np.linalg.norm(ee - wrist, axis=-1, keepdims=True)
    across = np.stack([-along[:, 1], along[:, 0]], axis=-1)
    flange = wrist + HAND_FLANGE_M * along
    cam = camera.to_pixels

    links = ((pts[:, 0], pts[:, 1], UPPER_ARM_RGB), (pts[:, 1], pts[:, 2], FOREARM_RGB),
             (wrist, flange, HAND_RGB))
    for (a, b, rgb), half_width in zip(links, LINK_HALF_WIDTHS):
        _paint_capsules(canvas, grid, cam(a), cam(b), half_width * px, _colour(rgb, grey))
    for j, radius in enumerate(JOINT_RADII):
        _paint_capsules(canvas, grid, cam(pts[:, j]), cam(pts[:, j]), radius * px,
                        _colour(JOINT_RGB, grey))
    gripper = _colour(GRIPPER_RGB, grey)
    _paint_capsules(canvas, grid, cam(flange - PLATE_HALF_LENGTH * across),
                    cam(flange + PLATE_HALF_LENGTH * across), PLATE_RADIUS * px, gripper)
    for side in (-1.0, 1.0):
        offset = side * FINGER_OFFSET * across
        _paint_capsules(canvas, grid, cam(flange + offset), cam(ee + offset),
                        FINGER_RADIUS * px, gripper)
    centre = cam(target)
    _paint_capsules(canvas, grid, centre, centre, TARGET_RADIUS_M * px, _colour(TARGET_RGB, grey))


def render(target, q, camera: CameraConfig = DEFAULT_CAMERA, tool=None) -> np.ndarray:
    """Camera frames of scenes: uint8 RGB of shape (B, height, width, 3).

    ``target`` (B, 2) in metres and ``q`` (B, 3) in radians (plane frame of
    :mod:`reach_core.kinematics`); a single scene, (2,) and (3,), gives one (height, width, 3)
    frame.  Joint angles are drawn as given, even outside the joint limits.  The gripper's
    fingers reach the tool point of ``tool`` (:func:`reach_core.kinematics.parse_tool`; None:
    the paper's).
    """
    target, q, single = _scene_batch(target, q)
    grid = _Grid.camera(camera)
    frames = np.repeat(_backdrop(grid, camera, False)[None], len(q), axis=0)
    _paint_scene(frames, grid, camera, target, q, grey=False, arm=tool_arm(tool))
    return frames[0] if single else frames


def add_target(frames: np.ndarray, target, camera: CameraConfig = DEFAULT_CAMERA) -> np.ndarray:
    """Copies of uint8 RGB camera frames with the blue target disc painted at ``target`` (m).

    This is how the paper puts a virtual target into real webcam images (Figure 3B).  ``frames``
    is (B, height, width, 3) with ``target`` (B, 2), or one frame with one (2,) target.
    """
    single = np.ndim(frames) == 3
    frames = _check_frames(frames)
    target = np.asarray(target, dtype=np.float64)
    if target.shape != ((2,) if single else (len(frames), 2)):
        raise ValueError(f"need one target (x, y) per frame: {len(frames)} frames, "
                         f"targets of shape {target.shape}")
    if not np.all(np.isfinite(target)):
        raise ValueError("target contains NaN or infinity")
    if frames.shape[1:3] != (camera.height, camera.width):
        raise ValueError(f"frames are {frames.shape[2]}x{frames.shape[1]}, the camera is "
                         f"{camera.width}x{camera.height}")
    out = frames.copy()
    centre = camera.to_pixels(target.reshape(-1, 2))
    _paint_capsules(out, _Grid.camera(camera), centre, centre, TARGET_RADIUS_M * camera.px_per_m,
                    _colour(TARGET_RGB, False))
    return out[0] if single else out


def _check_frames(frames) -> np.ndarray:
    """Return uint8 colour frames as (B, H, W, 3), or raise ValueError naming the problem."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (0-255), got dtype {frames.dtype}")
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must be (H, W, 3) or (B, H, W, 3), got {frames.ndim} dimensions "
                         f"(shape {frames.shape})")
    if frames.shape[-1] != 3:
        raise ValueError(f"frames must have 3 colour channels, got {frames.shape[-1]} "
                         f"(shape {frames.shape})")
    return frames[None] if frames.ndim == 3 else frames


@functools.lru_cache(maxsize=16)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix averaging each output pixel's footprint of input pixels by area."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, pixel + 1) - np.maximum(lo, pixel), 0.0, None)
    weights = (overlap / (n_in / n_out)).astype(np.float32)
    weights.flags.writeable = False
    return weights


def preprocess(frames, camera: CameraConfig = DEFAULT_CAMERA, *, bgr: bool = False) -> np.ndarray:
    """Camera frames -> network images: crop ``camera.roi`` -> grey -> area-resize to net_size.

    ``frames``: uint8 (B, H, W, 3) or (H, W, 3), RGB (or BGR with ``bgr=True``, as OpenCV
    delivers webcam frames), at least as large as the ROI.  Grey is ITU-R BT.601 luma; the resize
    averages each output pixel's footprint by area (a box filter; exact for any ratio).  Returns
    float32 (B, net_size, net_size) in [0, 1], or (net_size, net_size) for a single frame.
    """
    single = np.ndim(frames) == 3
    frames = _check_frames(frames)
    x0, y0, w, h = camera.roi
    if frames.shape[1] < y0 + h or frames.shape[2] < x0 + w:
        raise ValueError(f"frames are {frames.shape[2]}x{frames.shape[1]} pixels, smaller than the "
                         f"ROI (x={x0}, y={y0}, w={w}, h={h})")
    luma = (LUMA[::-1] if bgr else LUMA).astype(np.float32) / 255.0
    crop = frames[:, y0:y0 + h, x0:x0 + w].astype(np.float32)
    grey = crop @ luma                                               # (B, h, w)
    out = np.clip(_area_resize(grey, camera.net_size), 0.0, 1.0)
    return out[0] if single else out


def preprocess_frame(frame, camera: CameraConfig = DEFAULT_CAMERA, *, bgr: bool = False) -> np.ndarray:
    """:func:`preprocess` of one frame (H, W, 3) with OpenCV, for the per-frame loop of the
    perception node: float32 (net_size, net_size) in [0, 1], equal to ``preprocess(frame)`` up
    to float32 rounding (the grey and the area average are both linear; OpenCV sums them in
    another order).  About 1.5x faster than :func:`preprocess` on the default camera."""
    import cv2
    frame = _check_frames(frame)
    if len(frame) != 1:
        raise ValueError(f"preprocess_frame takes one frame, got {len(frame)}")
    x0, y0, w, h = camera.roi
    if frame.shape[1] < y0 + h or frame.shape[2] < x0 + w:
        raise ValueError(f"frames are {frame.shape[2]}x{frame.shape[1]} pixels, smaller than the "
                         f"ROI (x={x0}, y={y0}, w={w}, h={h})")
    luma = (LUMA[::-1] if bgr else LUMA).astype(np.float32) / 255.0
    crop = frame[0, y0:y0 + h, x0:x0 + w].astype(np.float32)
    grey = cv2.transform(crop, luma[None, :])                       # (h, w) float32
    n = camera.net_size
    out = cv2.resize(grey, (n, n), interpolation=cv2.INTER_AREA)
    return np.clip(out, 0.0, 1.0, out=out)


def _area_resize(images: np.ndarray, n: int) -> np.ndarray:
    """Area-average images (B, h, w) down to (B, n, n)."""
    b, h, w = images.shape
    if h % n == 0 and w % n == 0:
        # whole blocks (the default camera: 5 x 5): a plain mean, independent of the batch size
        # (summing the rows of each block first is several times faster than one mean)
        blocks = images.reshape(b, n, h // n, n, w // n)
        return blocks.sum(axis=2).sum(axis=-1) / np.float32((h // n) * (w // n))
    # columns, then rows, each as one large matrix product: a batch of small products makes
    # OpenBLAS threads stall badly when other processes keep the cores busy
    out = np.tensordot(images, _area_weights(w, n), axes=(2, 1))                  # (B, h, n)
    out = np.tensordot(_area_weights(h, n), out, axes=(1, 1)).transpose(1, 0, 2)  # (B, n, n)
    return np.ascontiguousarray(out)


def render_net_images(target, q, camera: CameraConfig = DEFAULT_CAMERA, *,
                      supersample: int | None = None, tool=None) -> np.ndarray:
    """Network images of scenes: float32 (B, net_size, net_size) in [0, 1].

    By default exactly ``preprocess(render(target, q, camera, tool), camera)``.  With ``supersample=s``
    the scene is drawn in grey straight onto s x s samples per network pixel of the ROI and
    box-averaged, skipping the full camera frame.  When s = roi width / net_size (5 for the
    default camera) the samples are the camera's pixel centres and the result differs from the
    default only by the camera frame's rounding to uint8; smaller s is faster and still matches
    to well under 1% (tests/test_renderer.py checks both).
    """
    if supersample is None:
        return preprocess(render(target, q, camera, tool), camera)
    if int(supersample) != supersample or supersample < 1:
        raise ValueError(f"supersample must be a positive integer, got {supersample!r}")
    s = int(supersample)
    target, q, single = _scene_batch(target, q)
    grid = _Grid.net(camera, s)
    canvas = np.repeat(_backdrop(grid, camera, True)[None], len(q), axis=0)
    _paint_scene(canvas, grid, camera, target, q, grey=True, arm=tool_arm(tool))
    out = _area_resize(canvas[..., 0], camera.net_size) / np.float32(255.0)
    return out[0] if single else out


def sample_scenes(n: int, seed: int = 0, dof: int = 3, design: str = "uniform", tool=None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random reachable scenes as in Algorithm 1: (target (n, 2) m, q (n, 3) rad).

    q and q* are uniform in the joint limits; with fewer than 3 DoF the inactive joints of q* are
    those of q (the paper's 1- and 2-DoF tasks move e1, and e1 and w1).  The target is K(q*), the
    tool point of ``tool`` (None: the paper's), kept in the Omega square (PlanarArm.keep_in_box).
    ``design`` lays out q instead (:meth:`PlanarArm.design_joints`: halton, grid); a grid may
    have fewer than ``n`` points, and so as many scenes.
    """
    if dof not in ACTIVE_JOINTS:
        raise ValueError(f"dof must be 1, 2 or 3, got {dof!r}")
    arm = tool_arm(tool)
    rng = np.random.default_rng(seed)
    q = arm.design_joints(rng, n, design)
    n = len(q)
    inactive = np.setdiff1d(np.arange(3), ACTIVE_JOINTS[dof])

    def draw(rows):
        q_star = arm.sample_joints(rng, len(rows))
        q_star[:, inactive] = q[rows][:, inactive]
        return q_star
    q_star = arm.keep_in_box(draw(np.arange(n)), draw)
    return arm.forward(q_star), q


NEAR_SPREAD = 0.06   # rad per joint: near-reach targets lie within about 5 cm of the hand


def near_targets(q: np.ndarray, rng: np.random.Generator, spread: float = NEAR_SPREAD,
                 tool=None) -> np.ndarray:
    """Targets (n, 2) m at the hand of a configuration close to each ``q`` (n, 3): K(q*) with
    q* = q + U(-spread, spread) per joint, clipped to the limits, so reachable by construction.

    Every reach ends with the target disc over or beside the hand, hiding the gripper, yet
    uniform scenes (:func:`sample_scenes`) almost never show that: a perception network trained
    on them alone misreads the wrist in exactly the frames that decide success.  Training scenes
    with these targets show it those frames.  ``tool``: whose tool point (None: the paper's); a
    long tool's targets are kept in the Omega square."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, 3)
    arm = tool_arm(tool)
    lim = arm.joint_limits

    def draw(rows):
        return np.clip(q[rows] + rng.uniform(-spread, spread, size=(len(rows), 3)), lim[:, 0], lim[:, 1])
    return arm.forward(arm.keep_in_box(draw(np.arange(len(q))), draw))


def contact_sheet(path, n: int = 16, seed: int = 0, dof: int = 3,
                  camera: CameraConfig = DEFAULT_CAMERA, tool=None) -> Path:
    """Save a PNG grid of ``n`` sample scenes (:func:`sample_scenes`): for each, the camera frame
    (halved, ROI dashed), the network image (nearest-neighbour upscaled) and Omega."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if n < 1:
        raise ValueError(f"a contact sheet needs at least 1 scene, got n={n}")
    target, q = sample_scenes(n, seed, dof, tool=tool)
    frames = render(target, q, camera, tool)
    nets = preprocess(frames, camera)
    omega = normalise(target, q)

    cols = 3
    rows = -(-n // cols)
    aspect = camera.width / camera.height
    panel, row_height = 2.4, 2.9             # inches: image height; a row with its caption
    height = rows * row_height + 0.5          # and room for the title
    fig = Figure(figsize=(cols * (panel * aspect + panel + 0.25), height), dpi=90)
    grid = fig.add_gridspec(rows, 2 * cols, width_ratios=[aspect, 1] * cols, left=0.01,
                            right=0.99, top=1 - 0.75 / height, bottom=0.01, wspace=0.04,
                            hspace=0.3)
    fig.suptitle(f"reach renderer: {n} scenes (seed {seed}, {dof} DoF); camera frame "
                 f"{camera.width}x{camera.height} with ROI, network image "
                 f"{camera.net_size}x{camera.net_size}", fontsize=13)
    x0, y0, w, h = camera.roi
    for k in range(n):
        r, c = divmod(k, cols)
        ax_cam = fig.add_subplot(grid[r, 2 * c])
        half = frames[k, : camera.height // 2 * 2, : camera.width // 2 * 2].astype(np.float32)
        half = half.reshape(camera.height // 2, 2, camera.width // 2, 2, 3).mean(axis=(1, 3))
        ax_cam.imshow(half.round().astype(np.uint8), interpolation="nearest",
                      extent=(0, camera.width, camera.height, 0))
        ax_cam.add_patch(Rectangle((x0, y0), w, h, fill=False, ls="--", lw=0.6, ec="0.3"))
        ax_net = fig.add_subplot(grid[r, 2 * c + 1])
        ax_net.imshow(nets[k], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        for ax in (ax_cam, ax_net):
            ax.set_xticks([])
            ax.set_yticks([])
        ax_cam.set_title(
            f"#{k}  x* = ({target[k, 0]:+.2f}, {target[k, 1]:+.2f}) m   "
            f"q = ({q[k, 0]:+.2f}, {q[k, 1]:+.2f}, {q[k, 2]:+.2f}) rad\n"
            f"Ω = [{omega[k, 0]:.2f}, {omega[k, 1]:.2f} | "
            f"{omega[k, 2]:.2f}, {omega[k, 3]:.2f}, {omega[k, 4]:.2f}]",
            fontsize=9, loc="left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _cmd_sheet(args: argparse.Namespace) -> int:
    try:
        path = contact_sheet(args.out, n=args.n, seed=args.seed, dof=args.dof, tool=args.tool)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def add_cli(sub) -> None:
    """Add ``reach render sheet`` to the ``render`` command's subparsers."""
    p = sub.add_parser(
        "sheet", help="save a contact sheet of simulator images",
        description="Render random reachable scenes (Algorithm 1) and save a PNG showing, for "
                    "each, the 640x480 camera frame, the 84x84 network image and Omega.")
    p.add_argument("--out", default="docs/renderer_contact_sheet.png", help="PNG to write "
                   "(default: docs/renderer_contact_sheet.png)")
    p.add_argument("--n", type=int, default=16, help="number of scenes (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    p.add_argument("--dof", type=int, choices=(1, 2, 3), default=3,
                   help="active joints when sampling targets (default: 3)")
    p.add_argument("--tool", default="paper", help="tool point the gripper is drawn to: paper, "
                   "electric_gripper_fingertips or metres from w1 (default: paper)")
    p.set_defaults(func=_cmd_sheet)
