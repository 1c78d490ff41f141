"""Rendering proxy frames: one :class:`~reach_core.proxy.room._World` per thread and tool, the
inputs checked, one frame's steps in order (:func:`render_frame`), batches by seed (:func:`render_proxy`)."""
from __future__ import annotations

import threading

import numpy as np

from ..camera_model import CameraModel
from ..kinematics import TOOL_PRESETS, tool_arm
from .camera import PROXY_CAMERA, canvas_points, frame_camera
from .image_steps import (_upright, distort, face_image, paint_background, paint_disc, paint_face,
                          plate_image, sensor)
from .room import _World

TARGET_MODES = ("painted", "physical", "none")


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
    """Proxy webcam frames of scenes: uint8 RGB (B, height, width, 3) (:mod:`reach_core.proxy_renderer`).

    ``q`` (B, 3) joint angles in radians (plane frame of :mod:`reach_core.kinematics`), drawn as
    given, even outside the joint limits; ``target`` (B, 2) metres, used by
    ``target_mode="physical"`` (the disc appears at the target) and otherwise only checked (None
    is allowed).  A single scene, (3,) and (2,), gives one (height, width, 3) frame.  Frame i's
    look (room, light, camera jitter, sensor) is drawn from the seed ``seed + i`` (or ``seed[i]``
    for a sequence of seeds); ``jitter`` scales the per-frame camera shake (0: exactly
    ``camera``).  The gripper's fingertips end at the tool point of ``tool`` (None: the paper's).
    Raises ValueError for bad input and :class:`~reach_core.proxy_renderer.ProxyRenderError` when
    pybullet, the Baxter meshes or the photographs are missing.
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
