"""A second, higher-fidelity rendered domain: MuJoCo images standing in for the real webcam.

The simple simulator (:mod:`reach_core.renderer`) draws flat 2-D shapes.  This module renders the
same scene configuration -- joint angles q (rad) of Baxter's left arm and a target x* (m) -- with
MuJoCo's OpenGL renderer, offscreen: a hand-modelled 3-D Baxter-like arm (shaded capsules and
cylinders, red links, dark joints, a two-finger gripper) in front of a torso, pedestal and head, a
textured back wall and floor, random background clutter, random lights, a camera whose pose and
lens vary a little from frame to frame around the nominal :data:`~reach_core.scene.DEFAULT_CAMERA`,
and sensor effects (white balance, brightness/contrast, gamma, Gaussian noise).  The target is
painted afterwards with :func:`reach_core.renderer.add_target`, the "virtual target" of the paper's
Figure 3B, exactly as it is painted into real webcam frames.

Frames are uint8 RGB at the camera resolution (640 x 480 by default), so that
:func:`reach_core.renderer.preprocess` applies unchanged.  Each frame's look is drawn from its own
seed (``seed + i`` for frame i of a batch): the same (target, q, seed) gives the same bytes on the
same machine and GL driver.

Geometry: world x = plane x (forward), world z = plane y (up), world y = depth (away from the
camera).  The nominal camera sits at y = -D on the s1 axis looking along +y with the vertical field
of view ``NOMINAL_FOVY``; D is chosen so that the arm's plane (y = 0) is seen at the camera's
``px_per_m`` pixels per metre, which makes the nominal projection of the plane identical to the
simple simulator's.

MuJoCo needs an OpenGL context: ``MUJOCO_GL=egl`` (the default set here; Debian's ``libegl1`` and
``libgl1-mesa-dri`` give a software EGL on machines without a GPU) or ``MUJOCO_GL=osmesa``
(``libosmesa6``).  ``scripts/setup_env.sh`` installs the EGL packages.
"""
from __future__ import annotations

import math
import os
import threading

import numpy as np

from .kinematics import LINK_ANGLE_OFFSETS, LINK_LENGTHS, tool_arm
from .renderer import HAND_FLANGE_M, _scene_batch, add_target
from .scene import DEFAULT_CAMERA, CameraConfig

NOMINAL_FOVY = 45.0   # degrees
N_CLUTTER = 8
N_LIGHTS = 2


class HifiRenderError(RuntimeError):
    """MuJoCo or its OpenGL backend is not available (the message says how to fix it)."""


def camera_distance(camera: CameraConfig = DEFAULT_CAMERA, fovy: float = NOMINAL_FOVY) -> float:
    """Distance (m) from the arm's plane at which a pinhole camera of vertical field of view
    ``fovy`` (degrees) sees it at ``camera.px_per_m`` pixels per metre."""
    return (camera.height / 2) / (camera.px_per_m * math.tan(math.radians(fovy) / 2))


def _rgba(rgb) -> str:
    return " ".join(f"{c:.3f}" for c in rgb) + " 1"


_ASSETS_XML = """  <asset>
    <texture name="wall" type="2d" builtin="checker" rgb1="0.82 0.80 0.76" rgb2="0.74 0.72 0.69"
             width="256" height="256" mark="edge" markrgb="0.6 0.6 0.6"/>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.45 0.42 0.38" rgb2="0.38 0.36 0.33"
             width="256" height="256"/>
    <material name="wall" texture="wall" texrepeat="6 6" specular="0.05" shininess="0.1"/>
    <material name="floor" texture="floor" texrepeat="8 8" specular="0.1" shininess="0.2"/>
    <material name="matte" specular="0.1" shininess="0.1"/>
    <material name="red" rgba="0.78 0.13 0.15 1" specular="0.4" shininess="0.5"/>
    <material name="dark" rgba="0.20 0.20 0.22 1" specular="0.3" shininess="0.4"/>
    <material name="grey" rgba="0.45 0.45 0.47 1" specular="0.5" shininess="0.6"/>
    <material name="body" rgba="0.60 0.61 0.64 1" specular="0.3" shininess="0.3"/>
  </asset>
"""

_BODY_XML = """    <!-- Baxter's fixed body behind the arm -->
    <geom name="pedestal" type="cylinder" fromto="-0.15 0.35 -1.35 -0.15 0.35 -0.55" size="0.09" material="body"/>
    <geom name="torso" type="box" pos="-0.21 0.32 -0.22" size="0.19 0.18 0.36" material="body"/>
    <geom name="neck" type="capsule" fromto="-0.20 0.30 0.12 -0.20 0.30 0.26" size="0.035" material="body"/>
    <geom name="head" type="box" pos="-0.16 0.30 0.385" euler="0 -0.25 0" size="0.03 0.14 0.12" material="dark"/>
    <geom name="mount" type="box" pos="-0.05 0.12 0" size="0.08 0.10 0.065" material="dark"/>
"""


def _model_xml(camera: CameraConfig, tool_length: float = LINK_LENGTHS[2]) -> str:
    """The MJCF scene; everything that varies per frame is changed on the compiled model.  The
    finger ends (site ``ee``) at the tool point, ``tool_length`` m from w1."""
    return f"""
<mujoco model="baxter_left_arm_planar">
  <compiler angle="radian"/>
{_visual_xml(camera)}{_ASSETS_XML}  <worldbody>
{_room_xml(camera)}{_BODY_XML}{_arm_xml(tool_length)}  </worldbody>
</mujoco>
"""


def _visual_xml(camera: CameraConfig) -> str:
    """The offscreen buffer (the camera's frame size), field of view, headlight and clipping."""
    return f"""  <visual>
    <global offwidth="{camera.width}" offheight="{camera.height}" fovy="{NOMINAL_FOVY}"/>
    <quality shadowsize="0" offsamples="4"/>
    <headlight ambient="0.25 0.25 0.25" diffuse="0.35 0.35 0.35" specular="0.1 0.1 0.1"/>
    <map znear="0.05" zfar="20"/>
  </visual>
"""


def _room_xml(camera: CameraConfig) -> str:
    """The lights, the webcam (at the distance that gives ``camera.px_per_m``), the wall, the
    floor and the clutter boxes (placed per frame)."""
    dist = camera_distance(camera)
    clutter = "\n".join(
        f'<geom name="clutter{k}" type="box" pos="0 2 0" size="0.1 0.1 0.1" rgba="0.5 0.5 0.5 1" '
        f'material="matte"/>' for k in range(N_CLUTTER))
    lights = "\n".join(
        f'<light name="light{k}" pos="0 -2 2" dir="0 1 -1" directional="false" castshadow="false" '
        f'diffuse="0.5 0.5 0.5" specular="0.2 0.2 0.2"/>' for k in range(N_LIGHTS))
    return f"""    {lights}
    <camera name="webcam" pos="0 {-dist:.5f} 0" xyaxes="1 0 0 0 0 1" fovy="{NOMINAL_FOVY}"/>
    <geom name="wall" type="plane" pos="0 2.2 0" zaxis="0 -1 0" size="6 6 0.1" material="wall"/>
    <geom name="floor" type="plane" pos="0 0 -1.35" size="6 6 0.1" material="floor"/>
    {clutter}
"""


def _arm_xml(tool_length: float = LINK_LENGTHS[2]) -> str:
    """The arm's kinematic chain: s1, e1, w1 hinges about +y, links, the hand and its flange, the
    finger to the tool point ``tool_length`` m from w1."""
    l1, l2, l3 = LINK_LENGTHS[0], LINK_LENGTHS[1], tool_length
    c1, c2, c3 = LINK_ANGLE_OFFSETS

    def tip(length, offset):  # link vector in the body's frame (clockwise angle about +y)
        return f"{length * math.cos(offset):.5f} 0 {-length * math.sin(offset):.5f}"

    hand = f"{HAND_FLANGE_M * math.cos(c3):.5f} 0 {-HAND_FLANGE_M * math.sin(c3):.5f}"
    ee = tip(l3, c3)
    return f"""    <body name="s1" pos="0 0 0">
      <joint name="left_s1" type="hinge" axis="0 1 0"/>
      <geom type="cylinder" fromto="0 -0.07 0 0 0.09 0" size="0.065" material="dark"/>
      <geom type="capsule" fromto="0 0 0 {tip(l1, c1)}" size="0.05" material="red"/>
      <body name="e1" pos="{tip(l1, c1)}">
        <joint name="left_e1" type="hinge" axis="0 1 0"/>
        <geom type="cylinder" fromto="0 -0.065 0 0 0.08 0" size="0.058" material="dark"/>
        <geom type="capsule" fromto="0 0 0 {tip(l2, c2)}" size="0.045" material="red"/>
        <body name="w1" pos="{tip(l2, c2)}">
          <joint name="left_w1" type="hinge" axis="0 1 0"/>
          <geom type="cylinder" fromto="0 -0.06 0 0 0.07 0" size="0.05" material="dark"/>
          <geom type="capsule" fromto="0 0 0 {hand}" size="0.04" material="grey"/>
          <body name="flange" pos="{hand}" euler="0 {c3:.5f} 0">
            <geom type="box" pos="0.008 0 0" size="0.012 0.035 0.055" material="dark"/>
          </body>
          <site name="ee" pos="{ee}" size="0.005"/>
          <geom name="finger_a" type="capsule" fromto="{hand} {ee}" size="0.013" material="dark"/>
        </body>
      </body>
    </body>
"""


class _Scene:
    """A compiled model, its data and an offscreen renderer (one per thread and camera)."""

    def __init__(self, camera: CameraConfig, tool_length: float = LINK_LENGTHS[2]):
        os.environ.setdefault("MUJOCO_GL", "egl")
        try:
            import mujoco
        except ImportError as err:
            raise HifiRenderError(
                f"the higher-fidelity renderer needs MuJoCo (pip install mujoco; it is in "
                f"requirements.txt): {err}") from None
        self.mj = mujoco
        self.camera = camera
        self.model = mujoco.MjModel.from_xml_string(_model_xml(camera, tool_length))
        self.data = mujoco.MjData(self.model)
        try:
            self.renderer = mujoco.Renderer(self.model, camera.height, camera.width)
        except Exception as err:  # mujoco raises several types when no GL context can be made
            raise HifiRenderError(
                f"MuJoCo could not create an offscreen OpenGL context with "
                f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {type(err).__name__}: {err}. "
                f"Install libegl1 and libgl1-mesa-dri (MUJOCO_GL=egl) or libosmesa6 "
                f"(MUJOCO_GL=osmesa); scripts/setup_env.sh does this.") from None
        m = self.model
        name = lambda kind, n: mujoco.mj_name2id(m, kind, n)  # noqa: E731
        self.cam_id = name(mujoco.mjtObj.mjOBJ_CAMERA, "webcam")
        self.clutter = [name(mujoco.mjtObj.mjOBJ_GEOM, f"clutter{k}") for k in range(N_CLUTTER)]
        self.lights = [name(mujoco.mjtObj.mjOBJ_LIGHT, f"light{k}") for k in range(N_LIGHTS)]
        self.wall_mat = name(mujoco.mjtObj.mjOBJ_MATERIAL, "wall")
        self.floor_mat = name(mujoco.mjtObj.mjOBJ_MATERIAL, "floor")
        self.red_mat = name(mujoco.mjtObj.mjOBJ_MATERIAL, "red")
        self.nominal = {
            "cam_pos": m.cam_pos[self.cam_id].copy(), "cam_quat": m.cam_quat[self.cam_id].copy(),
            "wall_rgba": m.mat_rgba[self.wall_mat].copy(),
            "floor_rgba": m.mat_rgba[self.floor_mat].copy(),
            "red_rgba": m.mat_rgba[self.red_mat].copy(),
        }

    def vary(self, rng: np.random.Generator, variation: float) -> None:
        """Draw this frame's camera pose, lens, lights, clutter and colours (scaled by variation)."""
        m, v = self.model, variation
        # camera: position jitter (m), small rotations (rad), field of view (deg)
        m.cam_pos[self.cam_id] = self.nominal["cam_pos"] + v * rng.uniform(-1, 1, 3) * [0.02, 0.05, 0.02]
        angles = v * rng.uniform(-1, 1, 3) * np.radians([0.8, 0.8, 0.4])  # tilt, pan, roll
        m.cam_quat[self.cam_id] = _quat_mul(self.nominal["cam_quat"], _quat_from_euler(angles))
        m.cam_fovy[self.cam_id] = NOMINAL_FOVY + v * rng.uniform(-1.0, 1.0)
        # lights
        for lid in self.lights:
            m.light_pos[lid] = [rng.uniform(-2.5, 2.5), rng.uniform(-3.0, -1.0), rng.uniform(0.0, 3.0)]
            m.light_dir[lid] = -m.light_pos[lid] / np.linalg.norm(m.light_pos[lid])
            warm = rng.uniform(-0.08, 0.08)
            m.light_diffuse[lid] = np.clip(rng.uniform(0.25, 0.6) * np.array([1 + warm, 1, 1 - warm]), 0, 1)
        # background clutter: boxes between the torso and the wall, hues away from the target's blue
        for gid in self.clutter:
            size = rng.uniform(0.04, 0.25, 3)
            m.geom_size[gid] = size
            m.geom_rbound[gid] = float(np.linalg.norm(size))
            m.geom_pos[gid] = [rng.uniform(-1.6, 1.6), rng.uniform(0.8, 2.0), rng.uniform(-1.3, 1.3)]
            m.geom_quat[gid] = _quat_from_euler(rng.uniform(-0.6, 0.6, 3))
            hue = rng.choice([rng.uniform(0.0, 0.45), rng.uniform(0.8, 1.0)])
            m.geom_rgba[gid, :3] = _hsv_to_rgb(hue, rng.uniform(0.1, 0.7), rng.uniform(0.35, 0.95))
        m.mat_rgba[self.wall_mat] = self.nominal["wall_rgba"] * [*rng.uniform(0.8, 1.1, 3), 1]
        m.mat_rgba[self.floor_mat] = self.nominal["floor_rgba"] * [*rng.uniform(0.8, 1.2, 3), 1]
        m.mat_rgba[self.red_mat] = np.clip(self.nominal["red_rgba"] * [*rng.uniform(0.85, 1.15, 3), 1], 0, 1)

    def render(self, q: np.ndarray) -> np.ndarray:
        self.data.qpos[:3] = q
        self.mj.mj_kinematics(self.model, self.data)
        self.mj.mj_camlight(self.model, self.data)
        self.renderer.update_scene(self.data, camera=self.cam_id)
        return self.renderer.render()


def _quat_from_euler(a) -> np.ndarray:
    """Quaternion (w, x, y, z) of rotations about x, then y, then z by a[0], a[1], a[2]."""
    out = np.array([1.0, 0.0, 0.0, 0.0])
    for axis, angle in enumerate(a):
        q = np.zeros(4)
        q[0] = math.cos(angle / 2)
        q[1 + axis] = math.sin(angle / 2)
        out = _quat_mul(q, out)
    return out


def _quat_mul(a, b) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, qq, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (qq, v, p), (p, v, t), (p, qq, v), (t, p, v), (v, p, qq)][i])


_local = threading.local()


def _scene(camera: CameraConfig, tool_length: float = LINK_LENGTHS[2]) -> _Scene:
    cache = getattr(_local, "scenes", None)
    if cache is None:
        cache = _local.scenes = {}
    key = (camera, float(tool_length))
    if key not in cache:
        cache[key] = _Scene(camera, tool_length)
    return cache[key]


def _sensor(frame: np.ndarray, rng: np.random.Generator, variation: float, noise: float) -> np.ndarray:
    """White balance, brightness/contrast, gamma and Gaussian noise of a webcam; uint8 out."""
    x = frame.astype(np.float32) / 255.0
    gain = 1 + variation * rng.uniform(-0.06, 0.06, 3).astype(np.float32)
    contrast = 1 + variation * rng.uniform(-0.12, 0.12)
    brightness = variation * rng.uniform(-0.06, 0.06)
    gamma = 1 + variation * rng.uniform(-0.15, 0.15)
    x = np.clip((x * gain - 0.5) * contrast + 0.5 + brightness, 0, 1) ** gamma
    sigma = noise * rng.uniform(0.5, 1.0) / 255.0
    if sigma > 0:
        x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)


def render_hifi(target, q, seed=0, camera: CameraConfig = DEFAULT_CAMERA, *,
                variation: float = 1.0, noise: float = 6.0, tool=None) -> np.ndarray:
    """Higher-fidelity camera frames of scenes: uint8 RGB (B, height, width, 3).

    ``q`` (B, 3) joint angles in radians; ``target`` (B, 2) in metres, painted as the virtual
    target with :func:`reach_core.renderer.add_target`, or None for frames without a target (what
    a webcam sees; the perception node paints the target itself).  A single scene, (3,) and (2,),
    gives one (height, width, 3) frame.  Frame i's look (camera pose and lens, lights, clutter,
    colours, sensor) is drawn from the seed ``seed + i`` (or ``seed[i]`` for a sequence of seeds);
    ``variation`` scales every random change (0: the nominal camera and a fixed look) and
    ``noise`` is the sensor noise's largest standard deviation in grey levels.  The gripper's
    finger reaches the tool point of ``tool`` (None: the paper's).
    """
    if target is None:
        qb = np.asarray(q, dtype=np.float64)
        _, q_batch, single = _scene_batch(np.zeros(qb.shape[:-1] + (2,)), qb)
    else:
        target_batch, q_batch, single = _scene_batch(target, q)
    n = len(q_batch)
    seeds = np.asarray(seed, dtype=np.int64)
    seeds = seeds + np.arange(n) if seeds.ndim == 0 else seeds.reshape(-1)
    if len(seeds) != n:
        raise ValueError(f"need one seed per frame: {n} frames, {len(seeds)} seeds")
    scene = _scene(camera, tool_arm(tool).tool_length)
    frames = np.empty((n, camera.height, camera.width, 3), np.uint8)
    for i in range(n):
        rng = np.random.default_rng([int(seeds[i]), 0x4F1F1])
        scene.vary(rng, float(variation))
        frames[i] = _sensor(scene.render(q_batch[i]), rng, float(variation), float(noise))
    if target is not None:
        frames = add_target(frames, target_batch, camera)
    return frames[0] if single else frames


def nominal_ee_pixels(q, camera: CameraConfig = DEFAULT_CAMERA, tool=None) -> np.ndarray:
    """Where the end-effector (the tool point of ``tool``) appears in a frame of the nominal camera
    (variation=0), in camera pixels: the plane projection of :meth:`CameraConfig.to_pixels`."""
    return camera.to_pixels(tool_arm(tool).forward(q))
