"""Camera calibration from the frames a user collects: ``reach calibrate`` (issue: sim-to-real).

The joint angles of every collected frame are known, so the calibration marker on Baxter's hand
(:mod:`reach_core.calibration_marker`) is at a known 3-D point of the arm's plane frame in each
frame.  Detecting its four corners with OpenCV's ArUco detector gives 2-D / 3-D correspondences
all over the arm's reach; one camera is fitted to all of them at once (a single fixed camera, the
moving marker as the calibration target): focal length, principal point (held near the image
centre by a weak prior), radial distortion (k1, k2) and the plane's pose, by robust non-linear
least squares (scipy) from several starting focal lengths, each started by ``cv2.solvePnP``.

The fit is checked on frames it did not use (every fifth frame is held out): the camera file
records the held-out reprojection error, and the command says plainly when the fit is poor (too
few frames, markers bunched in one part of the image, a large error) or did not converge.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .calibration_marker import DEFAULT_MARKER, MarkerSpec, marker_corners, marker_image
from .camera_model import CameraModel

MIN_FRAMES = 12          # frames with a detected marker needed for a fit
POOR_RMS_PX = 1.5        # held-out reprojection error above which the fit is called poor
MIN_COVERAGE = 0.15      # share of the image the detected markers' convex hull must cover
PP_PRIOR_PX = 40.0       # weak prior: principal point within about this of the image centre
F_PRIOR_LOG = 0.5        # weak prior: focal length within a factor of about e^0.5 of its start


class CalibrationError(ValueError):
    """The frames cannot give a camera (the message says why)."""


@dataclass
class Correspondences:
    """Marker corners seen in frames: plane-frame points (N, 3) m, pixels (N, 2), frame index (N,)."""

    obj: np.ndarray
    img: np.ndarray
    frame: np.ndarray
    n_frames: int
    width: int
    height: int


def _detector(spec: MarkerSpec):
    import cv2
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.ArucoDetector(dictionary, params)


def detect_marker(frame: np.ndarray, spec: MarkerSpec = DEFAULT_MARKER, detector=None):
    """The marker's four corners (4, 2) in this package's pixel convention, or None if unseen."""
    import cv2
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    corners, ids, _ = (detector or _detector(spec)).detectMarkers(grey)
    if ids is None:
        return None
    hits = [c for c, i in zip(corners, ids.ravel()) if int(i) == spec.marker_id]
    return None if len(hits) != 1 else hits[0].reshape(4, 2).astype(np.float64) + 0.5


def correspondences(frames, q, spec: MarkerSpec = DEFAULT_MARKER) -> Correspondences:
    """Detect the marker in uint8 RGB ``frames`` (B, H, W, 3) taken at joint angles ``q`` (B, 3)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise CalibrationError(f"need uint8 RGB frames (B, H, W, 3), got {frames.dtype} "
                               f"{frames.shape}")
    q = np.asarray(q, np.float64).reshape(len(frames), 3)
    detector = _detector(spec)
    obj, img, idx = [], [], []
    for i, frame in enumerate(frames):
        c = detect_marker(frame, spec, detector)
        if c is not None:
            obj.append(marker_corners(q[i], spec))
            img.append(c)
            idx += [i] * 4
    if not obj:
        raise CalibrationError(f"the marker (ArUco {spec.dictionary} id {spec.marker_id}) was "
                               f"not found in any of {len(frames)} frames")
    return Correspondences(np.concatenate(obj), np.concatenate(img), np.array(idx), len(obj),
                           frames.shape[2], frames.shape[1])


def _params_to_camera(p: np.ndarray, width: int, height: int) -> CameraModel:
    f, cx, cy, k1, k2 = p[:5]
    return CameraModel(width, height, (f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0),
                       (k1, k2, 0.0, 0.0, 0.0), tuple(p[5:8]), tuple(p[8:11]))


def _residuals(p, obj, img, width, height, f0) -> np.ndarray:
    import cv2
    f, cx, cy, k1, k2 = p[:5]
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    uv, _ = cv2.projectPoints(obj.reshape(-1, 1, 3), p[5:8], p[8:11], k,
                              np.array([k1, k2, 0, 0, 0.0]))
    # weak priors: the principal point near the centre, the focal length near its start (a plane
    # seen nearly straight on leaves focal length and distance almost interchangeable)
    prior = np.array([(cx - (width - 1) / 2) / PP_PRIOR_PX, (cy - (height - 1) / 2) / PP_PRIOR_PX,
                      math.log(f / f0) / F_PRIOR_LOG])
    return np.concatenate([(uv.reshape(-1, 2) + 0.5 - img).ravel(), prior])


def _fit_from(f0: float, c: Correspondences, obj, img):
    """One robust least-squares fit started at focal length f0 (pose from cv2.solvePnP)."""
    import cv2
    from scipy.optimize import least_squares
    cx, cy = (c.width - 1) / 2, (c.height - 1) / 2
    k0 = np.array([[f0, 0, cx], [0, f0, cy], [0, 0, 1.0]])
    ok, rvec, tvec = cv2.solvePnP(obj.reshape(-1, 1, 3), (img - 0.5).reshape(-1, 1, 2), k0, None)
    if not ok:
        return None
    p0 = np.concatenate([[f0, cx, cy, 0.0, 0.0], rvec.ravel(), tvec.ravel()])
    lo = np.full(11, -np.inf)
    hi = np.full(11, np.inf)
    lo[0], hi[0], lo[10] = 0.2 * c.width, 8.0 * c.width, 0.1     # focal length; plane in front
    p0[0], p0[10] = np.clip(p0[0], lo[0] * 1.01, hi[0] * 0.99), max(p0[10], 0.2)
    res = least_squares(_residuals, p0, bounds=(lo, hi), loss="soft_l1", f_scale=1.0,
                        max_nfev=600, args=(obj, img, c.width, c.height, f0))
    return res if res.status > 0 and np.all(np.isfinite(res.x)) else None


def _pixel_cost(res) -> float:
    return float(np.sum(res.fun[:-3] ** 2))


def _rms(camera: CameraModel, obj, img) -> float:
    return float(np.sqrt(np.mean(np.sum((camera.project(obj) - img) ** 2, axis=-1)))) \
        if len(obj) else float("nan")


def _coverage(img: np.ndarray, width: int, height: int) -> float:
    import cv2
    hull = cv2.convexHull(img.astype(np.float32))
    return float(cv2.contourArea(hull)) / (width * height)


def _fit_pose(c: Correspondences, obj, img, intrinsics: CameraModel) -> CameraModel:
    """The plane's pose for known intrinsics (cv2.solvePnP, then its Levenberg-Marquardt
    refinement): six well-determined numbers, so few frames suffice."""
    import cv2
    k, dist = intrinsics.matrix, np.asarray(intrinsics.dist, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj.reshape(-1, 1, 3), (img - 0.5).reshape(-1, 1, 2), k, dist)
    if not ok:
        raise CalibrationError("the plane's pose could not be solved from the marker corners")
    rvec, tvec = cv2.solvePnPRefineLM(obj.reshape(-1, 1, 3), (img - 0.5).reshape(-1, 1, 2), k,
                                      dist, rvec, tvec)
    return CameraModel(c.width, c.height, intrinsics.K, intrinsics.dist, tuple(rvec.ravel()),
                       tuple(tvec.ravel()), name=intrinsics.name)


def fit_camera(c: Correspondences, holdout_every: int = 5,
               intrinsics: CameraModel | None = None) -> CameraModel:
    """Fit one camera to the correspondences; its ``fit`` says how well (module docstring).

    With ``intrinsics`` (a camera_info file from a checkerboard calibration: the ROS camera
    calibrator, or :func:`intrinsics_from_checkerboard`) only the plane's pose is fitted; without,
    the focal length and distortion are fitted too, which needs many frames over the whole reach
    (the marker sits a few cm off the plane, so focal length and distance trade off)."""
    if c.n_frames < MIN_FRAMES:
        raise CalibrationError(f"the marker was found in {c.n_frames} frames; at least "
                               f"{MIN_FRAMES} spread over the arm's reach are needed")
    held = (c.frame % holdout_every) == holdout_every - 1 if holdout_every else \
        np.zeros(len(c.frame), bool)
    obj, img = c.obj[~held], c.img[~held]
    if intrinsics is not None:
        if (intrinsics.width, intrinsics.height) != (c.width, c.height):
            raise CalibrationError(f"the intrinsics are for {intrinsics.width}x{intrinsics.height}"
                                   f" frames, these are {c.width}x{c.height}")
        camera = _fit_pose(c, obj, img, intrinsics)
        return _with_quality(camera, c, held, fitted="pose")
    best = None
    for hfov in (40.0, 55.0, 70.0, 85.0):
        f0 = (c.width / 2) / math.tan(math.radians(hfov) / 2)
        res = _fit_from(f0, c, obj, img)
        if res is not None and (best is None or _pixel_cost(res) < _pixel_cost(best)):
            best = res
    if best is None:
        raise CalibrationError("the camera fit did not converge from any starting focal length: "
                               "check that the marker spec (size, position) matches the robot")
    camera = _params_to_camera(best.x, c.width, c.height)
    fx = camera.matrix[0, 0]
    if not (0.1 * c.width < fx < 20 * c.width) or camera.tvec[2] <= 0:
        raise CalibrationError(f"the fit converged to an implausible camera (focal length "
                               f"{fx:.0f} px, plane {camera.tvec[2]:.2f} m in front): check the "
                               f"marker spec and the joint labels")
    return _with_quality(camera, c, held, fitted="intrinsics+pose")


def _with_quality(camera: CameraModel, c: Correspondences, held, fitted: str) -> CameraModel:
    return camera.with_fit(rms_px=_rms(camera, c.obj[~held], c.img[~held]),
                           heldout_rms_px=_rms(camera, c.obj[held], c.img[held]),
                           frames=int(c.n_frames), coverage=_coverage(c.img, c.width, c.height),
                           fitted=fitted)


# ----------------------------------------------------------------------------- intrinsics
def board_points(cols: int, rows: int, square_m: float) -> np.ndarray:
    """A checkerboard's inner corners (rows * cols, 3) in its own frame, OpenCV's order."""
    grid = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square_m
    return np.concatenate([grid, np.zeros((len(grid), 1))], axis=1)


def intrinsics_from_checkerboard(frames, cols: int = 9, rows: int = 6, square_m: float = 0.025
                                 ) -> CameraModel:
    """Intrinsics and distortion from views of a checkerboard (``cols`` x ``rows`` inner corners)
    held at several angles, as the ROS camera calibrator does (cv2.calibrateCamera); the plane's
    pose is left nominal (calibrate it with the marker frames)."""
    import cv2
    frames = np.asarray(frames)
    obj, img = [], []
    for frame in frames:
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        ok, corners = cv2.findChessboardCorners(grey, (cols, rows))
        if ok:
            corners = cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1),
                                       (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 1e-3))
            obj.append(board_points(cols, rows, square_m).astype(np.float32))
            img.append(corners)
    if len(obj) < 5:
        raise CalibrationError(f"a {cols}x{rows} checkerboard was found in {len(obj)} of "
                               f"{len(frames)} frames; at least 5 views at different angles are "
                               f"needed")
    h, w = frames.shape[1:3]
    flags = cv2.CALIB_FIX_ASPECT_RATIO | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K3
    k0 = np.array([[w, 0, (w - 1) / 2], [0, w, (h - 1) / 2], [0, 0, 1.0]])
    rms, k, dist, _, _ = cv2.calibrateCamera(obj, img, (w, h), k0, None, flags=flags)
    return CameraModel(w, h, tuple(k.ravel()), tuple(dist.ravel()[:5])).with_fit(
        intrinsics_rms_px=float(rms), intrinsics_views=len(obj))


def fit_problems(camera: CameraModel) -> list[str]:
    """What is wrong with a fit (empty when it is good), from its ``fit`` record."""
    fit, problems = camera.fit, []
    err = fit.get("heldout_rms_px", fit.get("rms_px", float("nan")))
    if not np.isfinite(err) or err > POOR_RMS_PX:
        problems.append(f"reprojection error {err:.2f} px on held-out frames (want <= "
                        f"{POOR_RMS_PX} px): wrong marker spec or joint labels, or the camera moved")
    if fit.get("coverage", 1.0) < MIN_COVERAGE:
        problems.append(f"the markers cover {fit['coverage']:.0%} of the image (want >= "
                        f"{MIN_COVERAGE:.0%}): collect frames over the whole reach")
    return problems


def calibrate_dataset(root, spec: MarkerSpec = DEFAULT_MARKER, limit: int | None = None,
                      intrinsics: CameraModel | None = None) -> CameraModel:
    """Fit a camera to a dataset folder of frames with the marker and their joint labels."""
    from .datasets import read_raw_frames
    frames, q = read_raw_frames(root, limit=limit)
    camera = fit_camera(correspondences(frames, q, spec), intrinsics=intrinsics)
    return camera.with_fit(dataset=str(root), marker=spec.as_dict())


def check_camera(camera: CameraModel, root, spec: MarkerSpec = DEFAULT_MARKER) -> dict:
    """How well a camera file explains a dataset's marker frames (a moved camera shows here)."""
    from .datasets import read_raw_frames
    frames, q = read_raw_frames(root)
    camera.check_frames(frames)
    c = correspondences(frames, q, spec)
    return {"frames": c.n_frames, "rms_px": _rms(camera, c.obj, c.img)}


def render_board_views(camera: CameraModel, n: int, seed: int = 0, cols: int = 9, rows: int = 6,
                       square_m: float = 0.06) -> np.ndarray:
    """Frames of a checkerboard (``cols`` x ``rows`` inner corners) held at ``n`` random angles and
    places 1.3-2.2 m in front of ``camera``, drawn through its lens: a rehearsal of waving a board
    for the ROS camera calibrator, for tests and benchmarks of a simulated camera."""
    import cv2
    from dataclasses import replace
    rng = np.random.default_rng(seed)
    pts = board_points(cols + 2, rows + 2, square_m) - np.array([square_m, square_m, 0])
    frames = []
    for _ in range(n):
        rvec = rng.uniform(-0.4, 0.4, 3)
        tvec = np.array([rng.uniform(-0.4, 0.1), rng.uniform(-0.3, 0.1), rng.uniform(1.3, 2.2)])
        view = replace(camera, rvec=tuple(rvec), tvec=tuple(tvec))
        frame = np.full((camera.height, camera.width, 3), 255, np.uint8)
        uv = view.project(pts).reshape(rows + 2, cols + 2, 2) - 0.5
        for i in range(rows + 1):
            for j in range(cols + 1):
                if (i + j) % 2 == 0:
                    quad = np.array([uv[i, j], uv[i, j + 1], uv[i + 1, j + 1], uv[i + 1, j]])
                    cv2.fillConvexPoly(frame, np.round(quad * 16).astype(np.int32), (0, 0, 0),
                                       lineType=cv2.LINE_AA, shift=4)
        frames.append(frame)
    return np.stack(frames)


# ----------------------------------------------------------------------------- CLI
def _intrinsics(args) -> CameraModel | None:
    """--intrinsics FILE (a camera_info YAML) or --checkerboard DIR (images of a board)."""
    if args.intrinsics:
        from .camera_model import read_camera_info
        return read_camera_info(args.intrinsics)
    if args.checkerboard:
        from PIL import Image
        paths = sorted(p for p in Path(args.checkerboard).iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]) if paths \
            else np.zeros((0, 1, 1, 3), np.uint8)
        cols, rows = (int(v) for v in args.board.lower().split("x"))
        return intrinsics_from_checkerboard(frames, cols, rows, args.square)
    return None


def _cmd_calibrate(args) -> int:
    spec = MarkerSpec(size_m=args.marker_size, along_m=args.marker_along, depth_m=args.marker_depth,
                      marker_id=args.marker_id)
    if args.print_marker:
        from PIL import Image
        img = np.pad(marker_image(spec, 600), 100, constant_values=255)
        Image.fromarray(img).save(args.print_marker)
        print(f"marker written to {args.print_marker}: print its black square {spec.size_m * 100:.1f}"
              f" cm wide")
        return 0
    try:
        if args.check:
            report = check_camera(CameraModel.load(args.check), args.dataset, spec)
            bad = report["rms_px"] > POOR_RMS_PX
            print(f"{args.check} on {args.dataset}: {report['frames']} marker frames, reprojection "
                  f"error {report['rms_px']:.2f} px" + (": the camera moved or changed since it was"
                                                       " calibrated; calibrate again" if bad else ""))
            return 1 if bad else 0
        intrinsics = _intrinsics(args)
        camera = calibrate_dataset(args.dataset, spec, args.limit, intrinsics)
    except (CalibrationError, ValueError) as err:
        print(f"reach calibrate: {err}", file=sys.stderr)
        return 2
    camera.save(args.out)
    fit = camera.fit
    print(f"camera written to {args.out}: focal length {camera.matrix[0, 0]:.1f} px, distortion "
          f"k1 {camera.dist[0]:+.3f} k2 {camera.dist[1]:+.3f}, {fit['frames']} frames, "
          f"reprojection {fit['rms_px']:.2f} px (held-out {fit['heldout_rms_px']:.2f} px), "
          f"coverage {fit['coverage']:.0%}")
    problems = fit_problems(camera)
    for p in problems:
        print(f"reach calibrate: POOR FIT: {p}", file=sys.stderr)
    return 1 if problems else 0


def add_cli(sub) -> None:
    p = sub.add_parser("calibrate", help="fit the camera from frames with the calibration marker",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", nargs="?", help="dataset folder: frames with the marker on the hand "
                                              "and their joint labels")
    p.add_argument("--out", default="camera.yaml", help="camera file to write (default camera.yaml)")
    p.add_argument("--check", metavar="CAMERA", help="instead of fitting, check this camera file "
                                                     "against the dataset's marker frames")
    p.add_argument("--limit", type=int, help="use at most this many frames")
    p.add_argument("--intrinsics", metavar="CAMERA_INFO",
                   help="known intrinsics: a ROS camera_info YAML (the camera calibrator's file); "
                        "then only the plane's pose is fitted")
    p.add_argument("--checkerboard", metavar="DIR",
                   help="images of a checkerboard at several angles: fit the intrinsics from them")
    p.add_argument("--board", default="9x6", help="checkerboard inner corners, COLSxROWS")
    p.add_argument("--square", type=float, default=0.025, help="checkerboard square side, m")
    p.add_argument("--print-marker", metavar="PNG", help="write the marker to print and exit")
    p.add_argument("--marker-id", type=int, default=DEFAULT_MARKER.marker_id)
    p.add_argument("--marker-size", type=float, default=DEFAULT_MARKER.size_m,
                   help="side of the printed marker's black square, m")
    p.add_argument("--marker-along", type=float, default=DEFAULT_MARKER.along_m,
                   help="marker centre's distance from the w1 axis along the hand, m")
    p.add_argument("--marker-depth", type=float, default=DEFAULT_MARKER.depth_m,
                   help="marker face's distance in front of the arm's plane, m")
    p.set_defaults(func=_cmd_calibrate)
