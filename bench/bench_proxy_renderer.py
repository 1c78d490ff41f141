"""The held-out realistic proxy domain (reach_core.proxy_renderer): speed and geometry figures.

    python bench/bench_proxy_renderer.py [--frames 20] [--points 24] [--markers 40]

Prints, on one CPU core (OpenCV limited to one thread): CPU seconds per 640x480 frame (process
time: what one free core would take, whatever else the machine runs) for painted, physical and
marker frames, the share spent in TinyRenderer, and the wall time; how far PROXY_CAMERA is from
the simulator's virtual camera (pixels over the crop's plane region); where a small ball at a
plane point appears (the frame minus the same frame without it) against each frame's exact
camera and against PROXY_CAMERA (mean / max px); the ArUco marker's detection rate and its
corners' error (frames upscaled twice, contour refinement).  Not part of the tests.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from reach_core.calibration_marker import DEFAULT_MARKER, marker_corners
from reach_core.camera_model import CameraModel
from reach_core.kinematics import BAXTER_LEFT
from reach_core.renderer import sample_scenes

from reach_core import proxy_renderer as pr


def speed(frames: int) -> None:
    target, q = sample_scenes(frames, 1)
    pr.render_proxy(target[:1], q[:1], seed=0)                       # load the meshes
    world = pr._world()
    raster = world.rasterise
    spent = []

    def timed(camera, rng):
        t0 = time.process_time()
        out = raster(camera, rng)
        spent.append(time.process_time() - t0)
        return out

    world.rasterise = timed
    try:
        for mode, marker in pr.SHEET_MODES:
            spent.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            pr.render_proxy(target, q, seed=pr.PROXY_COLLECT_SEED, target_mode=mode, marker=marker)
            cpu = (time.process_time() - c0) / frames
            wall = (time.perf_counter() - t0) / frames
            label = "marker" if marker else mode
            print(f"  {label:<9} {cpu:.3f} s CPU/frame ({np.sum(spent) / frames:.3f} s of it "
                  f"TinyRenderer; {wall:.3f} s wall on this shared machine)")
    finally:
        world.rasterise = raster


def spot_error(points: int) -> None:
    rng = np.random.default_rng(5)
    q = np.array([0.9, 0.3, 0.2])                                   # the arm low
    world = pr._world()
    exact, placed = [], []
    for k in range(points):
        spot = np.array([rng.uniform(-0.3, 0.95), rng.uniform(0.25, 0.95)])
        frames = [pr.render_frame(world, None, q, np.random.default_rng([k, 0x9A0C5]),
                                  pr.PROXY_CAMERA, target_mode="none", marker=False, spot=s)
                  for s in (None, spot)]
        d = np.abs(frames[1].astype(int) - frames[0].astype(int)).sum(-1).astype(float)
        d[d < 60] = 0
        ii, jj = np.nonzero(d)
        if len(ii) < 10:
            continue                                                # hidden by the robot
        w = d[ii, jj]
        centre = np.array([(jj + 0.5) @ w, (ii + 0.5) @ w]) / w.sum()
        exact.append(np.linalg.norm(centre - pr.frame_cameras(k, 1)[0].project(spot)))
        placed.append(np.linalg.norm(centre - pr.PROXY_CAMERA.project(spot)))
    print(f"  plane points seen: {len(exact)} of {points}; vs the frame's camera "
          f"{np.mean(exact):.2f} / {np.max(exact):.2f} px (mean / max), vs PROXY_CAMERA "
          f"{np.mean(placed):.2f} / {np.max(placed):.2f} px")


def marker_error(n: int) -> None:
    import cv2
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DEFAULT_MARKER.dictionary))
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_CONTOUR
    detector = cv2.aruco.ArucoDetector(dictionary, params)
    q = BAXTER_LEFT.sample_joints(np.random.default_rng(11), n)
    frames = pr.render_proxy(None, q, seed=500, target_mode="none", marker=True)
    errors = []
    for i, frame in enumerate(frames):
        grey = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), None, fx=2, fy=2,
                          interpolation=cv2.INTER_CUBIC)
        corners, ids, _ = detector.detectMarkers(grey)
        if ids is None or DEFAULT_MARKER.marker_id not in ids.ravel():
            continue
        found = (corners[list(ids.ravel()).index(DEFAULT_MARKER.marker_id)].reshape(4, 2) + 0.5) / 2
        truth = pr.frame_cameras(500 + i, 1)[0].project(marker_corners(q[i]))
        errors.append(np.linalg.norm(found - truth, axis=-1))
    errors = np.array(errors)
    print(f"  marker decoded in {len(errors)} of {n} frames; corner error {errors.mean():.2f} px "
          f"mean, {np.percentile(errors, 95):.2f} px p95, {errors.max():.2f} px max")


def main() -> None:
    import cv2
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per timing (default 20)")
    parser.add_argument("--points", type=int, default=24, help="plane points (default 24)")
    parser.add_argument("--markers", type=int, default=40, help="marker frames (default 40)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    err = pr.PROXY_CAMERA.frame_error_px(CameraModel.nominal())
    print(f"PROXY_CAMERA vs the virtual camera: {err['mean_px']:.1f} px mean, "
          f"{err['max_px']:.1f} px max over the crop's plane region")
    print("speed (one core):")
    speed(args.frames)
    print("geometry:")
    spot_error(args.points)
    marker_error(args.markers)


if __name__ == "__main__":
    main()
