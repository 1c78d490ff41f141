"""Where the webcam goes: the figure docs/camera_placement.png (docs/camera.md, README).

    python scripts/plot_camera_placement.py [--out docs/camera_placement.png]

Top view of Baxter with its left arm's vertical plane (left_s0 = 0 puts it 45 degrees to the left
of the robot's front: the left arm mount's yaw in Rethink's URDF), and two webcam places, each
1.75 m from the shoulder with its optical axis square to the plane:

* A, in front of Baxter's right side: it sees the arm reach to the RIGHT of the image, as the
  networks want it (x forward -> right, y up -> up): ``flip: none``;
* B, beside the left arm on its outer side: it sees the arm reach to the LEFT: ``flip: horizontal``.

Beside it, the frames each camera gives (the arm drawn with reach_core's kinematics at the
pixel scale of config/camera.yaml, the networks' crop ``roi`` dashed).
"""
from __future__ import annotations

import argparse
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from reach_core.live_view import arm_points  # noqa: E402

#: Baxter's left shoulder (left_arm_mount + the s0 axis) in the torso frame, top view (m), and the
#: yaw of its arm plane at left_s0 = 0 (rad); x forward, y to Baxter's left
SHOULDER = np.array([0.064, 0.259])
PLANE_YAW = np.pi / 4
CAMERA_DISTANCE = 1.75
#: config/camera.yaml
WIDTH, HEIGHT, PX_PER_M, ORIGIN, ROI = 640, 480, 200.0, (320.0, 240.0), (110, 30, 420, 420)
Q_EXAMPLE = np.array([-0.35, 1.2, 0.6])
TARGET = np.array([0.72, -0.42])


def plane_forward() -> np.ndarray:
    """Unit vector (top view) of the arm plane's x ("forward") axis."""
    return np.array([np.cos(PLANE_YAW), np.sin(PLANE_YAW)])


def camera_places() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (camera position, viewing direction), top view, square to the arm's plane."""
    d = plane_forward()
    right_of_d = np.array([d[1], -d[0]])          # the plane's normal on Baxter's side
    middle = SHOULDER + 0.45 * d                  # look at the middle of the reach
    return {'A': (middle + CAMERA_DISTANCE * right_of_d, -right_of_d),
            'B': (middle - CAMERA_DISTANCE * right_of_d, right_of_d)}


def image_right(view: np.ndarray) -> np.ndarray:
    """The horizontal direction (top view) that appears to the right of an upright camera's
    image looking along ``view`` (view x up)."""
    v = np.array([view[0], view[1], 0.0])
    return np.cross(v, [0.0, 0.0, 1.0])[:2]


def flip_for(view: np.ndarray) -> str:
    """The webcam's ``flip`` that puts the plane's forward to the right of the image."""
    return 'none' if image_right(view) @ plane_forward() > 0 else 'horizontal'


def _top_view(ax):
    d = plane_forward()
    ax.add_patch(plt.Circle((0, 0), 0.22, color='#c0392b', alpha=0.85))
    ax.annotate('', (0.45, 0), (0.1, 0), arrowprops=dict(arrowstyle='->', lw=1.5))
    ax.text(0.47, -0.02, 'Baxter\nfaces', fontsize=7, va='top')
    ax.text(0, 0, 'Baxter', ha='center', va='center', color='white', fontsize=8)
    ax.plot(*np.c_[SHOULDER - 0.3 * d, SHOULDER + 1.3 * d], '--', color='grey', lw=1)
    reach = SHOULDER + np.outer([0, 0.37, 0.74, 0.98], d)
    ax.plot(reach[:, 0], reach[:, 1], '-o', color='#27ae60', lw=3, ms=4)
    ax.text(*(SHOULDER + 1.32 * d), "left arm's plane\n(forward = x)", fontsize=7, color='grey')
    for name, (pos, view) in camera_places().items():
        ax.plot(*pos, 's', color='#2c3e50', ms=9)
        for s in (-0.35, 0.35):
            c, sn = np.cos(s), np.sin(s)
            ray = np.array([c * view[0] - sn * view[1], sn * view[0] + c * view[1]])
            ax.plot(*np.c_[pos, pos + 1.85 * ray], color='#2c3e50', lw=0.6, alpha=0.6)
        right = image_right(view)
        ax.annotate('', pos + 0.45 * right, pos, arrowprops=dict(arrowstyle='->', color='#8e44ad'))
        ax.text(*(pos + np.array([0.08, -0.3])), f'camera {name}\nflip: {flip_for(view)}',
                fontsize=8, weight='bold')
    ax.text(-1.6, -1.85, 'purple arrow: the right of the image;\neach camera 1.75 m from the '
            'plane,\noptical axis square to it', fontsize=7, color='#8e44ad')
    ax.set_aspect('equal')
    ax.set_xlim(-1.7, 2.2)
    ax.set_ylim(-1.9, 2.3)
    ax.set_title('top view: where the webcam goes', fontsize=9)
    ax.set_xlabel("m (Baxter's forward)", fontsize=7)
    ax.tick_params(labelsize=6)


def _frame(ax, mirrored: bool, title: str):
    pts = arm_points(Q_EXAMPLE)
    sign = -1.0 if mirrored else 1.0
    u = ORIGIN[0] + sign * PX_PER_M * pts[:, 0]
    v = ORIGIN[1] - PX_PER_M * pts[:, 1]
    ax.add_patch(plt.Rectangle((0, 0), WIDTH, HEIGHT, color='#ecf0f1'))
    ax.plot(u, v, '-o', color='#27ae60', lw=4, ms=5)
    tx, ty = ORIGIN[0] + sign * PX_PER_M * TARGET[0], ORIGIN[1] - PX_PER_M * TARGET[1]
    ax.plot(tx, ty, 'o', color='#c0399b', ms=10)
    x0, y0, w, h = ROI
    if mirrored:
        x0 = WIDTH - x0 - w
    ax.add_patch(plt.Rectangle((x0, y0), w, h, fill=False, ls='--', color='grey'))
    ax.annotate('', (u[0] + sign * 110, v[0] - 150), (u[0], v[0] - 150),
                arrowprops=dict(arrowstyle='->', lw=1.5))
    ax.text(u[0] + sign * 115, v[0] - 150, 'forward', fontsize=8, va='center',
            ha='left' if not mirrored else 'right')
    ax.text(u[0] + 4, v[0] + 18, 'shoulder (s1)', fontsize=7)
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(HEIGHT, 0)
    ax.set_aspect('equal')
    ax.set_xticks([0, WIDTH])
    ax.set_yticks([0, HEIGHT])
    ax.tick_params(labelsize=6)
    ax.set_title(title, fontsize=9)


def figure(out: str) -> str:
    fig = plt.figure(figsize=(11, 4.2), dpi=90)
    grid = fig.add_gridspec(1, 3, width_ratios=[1.15, 1, 1])
    _top_view(fig.add_subplot(grid[0]))
    _frame(fig.add_subplot(grid[1]), False,
           'camera A as captured = what the\nnetworks want (flip: none)')
    _frame(fig.add_subplot(grid[2]), True,
           'camera B as captured: forward on the left\n-> flip: horizontal gives the middle view')
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'docs',
                                                  'camera_placement.png'))
    out = figure(ap.parse_args(argv).out)
    print(f'{out}: {os.path.getsize(out) / 1024:.0f} kB')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
