"""The proxy scene: one pybullet client (:class:`_World`) holding Baxter, the furniture, the disc,
the marker plate and the test ball, each frame's room and light, and the wall's and floor's textures."""
from __future__ import annotations

import math

import numpy as np

from ..calibration_marker import DEFAULT_MARKER, hand_axes, marker_corners
from ..camera_model import CameraModel
from ..kinematics import TOOL_PRESETS
from ..scene import TARGET_RADIUS_M
from .assets import _pybullet, _quiet, _urdf_path, photographs
from .camera import _gl_matrices, _world_to_camera, canvas_margin, plane_to_world
from .image_steps import PLATE_MARGIN_M

N_POSTERS = 6
N_FURNITURE = 4
DISC_THICKNESS_M = 0.03
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
        tint)] that :func:`~reach_core.proxy.image_steps.paint_background` draws where nothing
        was rasterised."""
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
