"""A held-out realistic proxy domain: a rendered stand-in for a real Baxter seen by a real webcam.

Used ONLY to test sim-to-real transfer (zero-shot and after adaptation), never to train or tune
on its test frames: the tuning domain is :mod:`reach_core.hifi_renderer`.  It is rendered with
other software than every training renderer (:mod:`reach_core.renderer`,
:mod:`reach_core.randomized_renderer`) and than the tuning domain (MuJoCo): pybullet's
TinyRenderer, a CPU software rasteriser, plus OpenCV for the lens and the sensor.

The robot is Baxter from Rethink Robotics' own URDF and meshes (``baxter_description``, BSD
licence, as shipped by the PyPI package ``example-robot-data``; nothing is copied into this
repository; decimated once into a cache in the temp folder, so that TinyRenderer is fast):
torso, pedestal, head and screen (with Baxter's eyes), both arms (the right one hanging), the
electric gripper, in the meshes' own colours (black and dark grey body and joints, red shells).
With the simulator's convention (x to the right in the image, positive s1 pitching down) the
camera sees the arm from the robot's front-right, so the torso stands in front of the arm's plane
left of the shoulder and hides the arm where it swings behind it.  The left arm's s1, e1 and w1
joints are set to q with every other joint at zero; its elbow and wrist then lie exactly at
:meth:`reach_core.kinematics.PlanarArm.link_points` (the planar model is derived from the same
URDF).  The URDF's gripper reaches 0.387 m past w1, the task's end-effector point 0.28 m: the
gripper's fingers are left out and its paddle tips are moved onto the base so that the tips end
at the end-effector point, which keeps the labels exact.

Geometry (as :mod:`reach_core.hifi_renderer`): world x = plane x (forward), world z = plane y
(up), world y = depth, away from the nominal camera; the s1 axis is the world y axis.  The camera
is a :class:`~reach_core.camera_model.CameraModel` (intrinsics, plumb_bob distortion, the plane's
pose): :data:`PROXY_CAMERA` is a webcam "placed by hand", a few degrees and pixels off the
simulator's virtual camera, with a barrel-distorting lens, and every frame adds a small jitter
(:func:`frame_camera`).  A frame is rendered undistorted through the pinhole (K, pose) on a
canvas with a margin, and the lens distortion is then applied to the image (cv2.remap through
the inverse distortion), so a plane point appears at ``frame_camera(...).project(point)``.

The room: a wall with photographs (scikit-image's sample images, which no training code uses)
hung as posters, furniture boxes, a floor, one random light (direction, colour, ambient, diffuse
and specular), and sensor effects (white balance, exposure, gamma, slight blur, noise, JPEG
compression).  The wall and floor are drawn where nothing was rasterised, through their
homographies; the marker plate is rendered white and the marker warped onto its face's pixels
times the shading there.

Targets: ``target_mode="painted"`` draws no disc (datasets mark it ``"target": "virtual"`` and
the loader paints the virtual target, as for the paper's datasets); ``"physical"`` renders a 3-D
blue disc of radius :data:`~reach_core.scene.TARGET_RADIUS_M`, 3 cm thick, in a random blue,
shaded flat, on a thin stand from the floor, a few cm in front of or behind the arm's plane on the
camera's ray through the labelled target (so it appears exactly where the label says, and the
arm passes in front of it or is hidden by it); ``"none"`` draws nothing.  ``marker=True`` adds
the calibration marker of :mod:`reach_core.calibration_marker` on a white plate on the hand, at
exactly :func:`~reach_core.calibration_marker.marker_corners`.

Seeds: frame i of a batch has the look of seed ``seed + i``.  Seeds at or above
:data:`PROXY_TEST_SEED` are for held-out test sets (benchmarks only); a user's "collected"
adaptation frames use seeds below it (:data:`PROXY_COLLECT_SEED` onwards).

The code lives in :mod:`reach_core.proxy`, one role a module (seeds, camera, assets, room, image
steps, render, contact sheet); this module re-exports its API and is the contact sheet's command
line: ``python -m reach_core.proxy_renderer --sheet PATH``.
"""
from __future__ import annotations

from .proxy.assets import (KEEP_FACES, MAX_FACES, MIN_FACES, PHOTOS, ProxyRenderError, baxter_description,
                           photographs)
from .proxy.assets import _urdf_path as _urdf_path                    # (tests)
from .proxy.camera import (MARGIN_PX, PROXY_CAMERA, canvas_margin, canvas_points, distortion_maps,
                           frame_camera, placed_camera, plane_to_world)
from .proxy.contact_sheet import SHEET_MODES, contact_sheet, main
from .proxy.image_steps import (PLATE_MARGIN_M, distort, face_image, paint_background, paint_disc, paint_face,
                                plate_image, sensor)
from .proxy.render import TARGET_MODES, frame_cameras, render_frame, render_proxy
from .proxy.render import _world as _world                            # (tests and bench)
from .proxy.room import (DARK_LINKS, DISC_THICKNESS_M, DISPLAY_HALF_M, DISPLAY_TILT_RAD, FLOOR_NEAR_Y,
                         FURNITURE_SIZES, FURNITURE_TONES, HIDDEN, LEFT_ARM_JOINTS, N_FURNITURE, N_POSTERS,
                         POSTER_SIZES, RIGHT_ARM_REST, WALL_H, WALL_HALF_W, WALL_PX_PER_M, WALL_Y)
from .proxy.seeds import LOOK_SEED_STRIDE, PROXY_COLLECT_SEED, PROXY_TEST_SEED, seed_split

__all__ = [
    # seeds
    "LOOK_SEED_STRIDE", "PROXY_COLLECT_SEED", "PROXY_TEST_SEED", "seed_split",
    # camera
    "MARGIN_PX", "PROXY_CAMERA", "canvas_margin", "canvas_points", "distortion_maps", "frame_camera",
    "placed_camera", "plane_to_world",
    # assets
    "KEEP_FACES", "MAX_FACES", "MIN_FACES", "PHOTOS", "ProxyRenderError", "baxter_description", "photographs",
    # room
    "DARK_LINKS", "DISC_THICKNESS_M", "DISPLAY_HALF_M", "DISPLAY_TILT_RAD", "FLOOR_NEAR_Y", "FURNITURE_SIZES",
    "FURNITURE_TONES", "HIDDEN", "LEFT_ARM_JOINTS", "N_FURNITURE", "N_POSTERS", "POSTER_SIZES",
    "RIGHT_ARM_REST", "WALL_H", "WALL_HALF_W", "WALL_PX_PER_M", "WALL_Y",
    # image steps
    "PLATE_MARGIN_M", "distort", "face_image", "paint_background", "paint_disc", "paint_face", "plate_image",
    "sensor",
    # rendering
    "TARGET_MODES", "frame_cameras", "render_frame", "render_proxy",
    # contact sheet
    "SHEET_MODES", "contact_sheet", "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
