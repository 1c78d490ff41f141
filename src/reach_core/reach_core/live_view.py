"""What the live view shows (reach_ros.live_view streams it to the Foxglove app): ROS-free.

The channels, their Foxglove schemas, and the geometry of the arm in the plane frame: the points
shoulder -> elbow -> wrist -> end-effector of a configuration of the three plane joints (the same
chain as :func:`reach_core.kinematics.forward`), and the estimate's summary (target, estimated
joints, the hand they put, its distance to the target).
"""
from __future__ import annotations

import numpy as np

from .kinematics import BAXTER_LEFT, JOINT_NAMES

#: Foxglove channel -> schema name (``json``: a JSON channel, plotted field by field)
CHANNELS = {
    '/camera/image': 'foxglove.CompressedImage',             # the webcam (or simulated) frame
    '/perception/debug_image': 'foxglove.CompressedImage',   # estimated arm and target drawn in
    '/reach/scene': 'foxglove.SceneUpdate',                  # estimated and measured arm, target
    '/reach/estimate': 'json',                               # the scene configuration, as numbers
    '/reach/joints/measured': 'foxglove.JointStates',        # the robot's joint states
    '/reach/joints/commanded': 'foxglove.JointStates',       # the safety bridge's commands
    '/reach/status': 'json',                                 # the trial status
}

#: the frame the scene is drawn in: the arm's vertical plane (x forward, y up), shown as x, z
PLANE_FRAME = 'left_arm_plane'


def arm_points(q) -> np.ndarray:
    """(4, 2) plane points (m) of shoulder, elbow, wrist and end-effector for plane joints q."""
    q = np.asarray(q, dtype=np.float64).reshape(len(JOINT_NAMES))
    beta = np.cumsum(q) + BAXTER_LEFT.angle_offsets
    steps = np.stack([BAXTER_LEFT.link_lengths * np.cos(beta),
                      -BAXTER_LEFT.link_lengths * np.sin(beta)], axis=-1)
    return np.vstack([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def estimate_record(target, q, source: str) -> dict:
    """The scene configuration as a JSON record: target, joints, the hand and its distance
    (ValueError for NaN or infinite values, which JSON cannot carry)."""
    target = np.asarray(target, dtype=np.float64)
    if not (np.all(np.isfinite(target)) and np.all(np.isfinite(np.asarray(q, dtype=float)))):
        raise ValueError('NaN or infinite target or joints')
    hand = arm_points(q)[-1]
    out = {'target_x': float(target[0]), 'target_y': float(target[1]),
           'hand_x': float(hand[0]), 'hand_y': float(hand[1]),
           'distance_m': float(np.linalg.norm(hand - target)), 'source': source}
    out.update({n: float(v) for n, v in zip(JOINT_NAMES, np.asarray(q, dtype=np.float64))})
    return out
