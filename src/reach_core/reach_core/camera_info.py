"""Camera calibration files and ``camera_info_url``s, as ROS camera drivers use them (ROS-free).

The file format is camera_calibration_parsers' YAML, which the ROS camera calibrator
(``cameracalibrator``) writes through a driver's ``set_camera_info`` service::

    image_width: 640
    image_height: 480
    camera_name: webcam
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}
    projection_matrix: {rows: 3, cols: 4, data: [...]}

URLs (camera_info_manager's forms): ``file:///abs/path.yaml``; ``package://PKG/rel/path.yaml``
(in PKG's share directory, looked up by a function the caller passes, e.g. ament_index_python's
``get_package_share_directory``); empty: the default ``${ROS_HOME}/camera_info/${NAME}.yaml``
(``ROS_HOME`` defaults to ``~/.ros``); a plain path is read as a file.  ``${NAME}`` and
``${ROS_HOME}`` are substituted.  Other schemes raise :class:`CalibrationError`.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable

IDENTITY3 = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
MATRICES = (("camera_matrix", "k", 3, 3), ("rectification_matrix", "r", 3, 3),
            ("projection_matrix", "p", 3, 4))


class CalibrationError(ValueError):
    """A calibration file or URL cannot be used; the message names it and the field."""


@dataclass
class CameraCalibration:
    """The fields of sensor_msgs/CameraInfo that a calibration file holds."""

    width: int
    height: int
    camera_name: str = ""
    k: list = field(default_factory=lambda: [0.0] * 9)
    distortion_model: str = "plumb_bob"
    d: list = field(default_factory=list)
    r: list = field(default_factory=lambda: list(IDENTITY3))
    p: list = field(default_factory=lambda: [0.0] * 12)

    @property
    def calibrated(self) -> bool:
        """A camera matrix with a focal length (an uncalibrated camera_info has K = 0)."""
        return self.k[0] != 0.0

    def check_size(self, width: int, height: int, source: str) -> None:
        """CalibrationError unless this calibration is for ``width`` x ``height`` images."""
        if (self.width, self.height) != (int(width), int(height)):
            raise CalibrationError(
                f"{source}: the calibration is for {self.width}x{self.height} images, the camera "
                f"publishes {int(width)}x{int(height)} (image_width, image_height after rotate): "
                f"calibrate at this resolution, or set the camera to the calibrated one")


def ros_home() -> str:
    return os.path.expanduser(os.environ.get("ROS_HOME") or os.path.join("~", ".ros"))


def resolve_url(url: str, camera_name: str,
                package_dir: Callable[[str], str] | None = None) -> str:
    """The file a ``camera_info_url`` names (see the module docstring)."""
    url = (url or "").strip()
    if not url:
        return os.path.join(ros_home(), "camera_info", f"{camera_name}.yaml")
    url = url.replace("${NAME}", camera_name).replace("${ROS_HOME}", ros_home())
    if url.startswith("file://"):
        path = url[len("file://"):]
        if not path.startswith("/"):
            raise CalibrationError(f"camera_info_url {url!r}: file:// needs an absolute path "
                                   f"(file:///home/...)")
        return path
    if url.startswith("package://"):
        pkg, _, rel = url[len("package://"):].partition("/")
        if not pkg or not rel:
            raise CalibrationError(f"camera_info_url {url!r}: expected package://PACKAGE/PATH")
        if package_dir is None:
            raise CalibrationError(f"camera_info_url {url!r}: no package lookup available")
        try:
            return os.path.join(package_dir(pkg), rel)
        except (LookupError, ValueError, OSError) as err:
            raise CalibrationError(f"camera_info_url {url!r}: package {pkg!r} not found "
                                   f"({type(err).__name__}: {err})") from None
    if "://" in url:
        raise CalibrationError(f"camera_info_url {url!r}: unsupported scheme (use file://, "
                               f"package:// or a path)")
    return os.path.expanduser(url)


def _numbers(data: dict, key: str, n: int, path: str) -> list[float]:
    block = data.get(key)
    values = block.get("data") if isinstance(block, dict) else None
    if not isinstance(values, list) or len(values) != n:
        got = "missing" if values is None else f"{len(values) if isinstance(values, list) else 0}"
        raise CalibrationError(f"{path}: {key}.data must hold {n} numbers ({got})")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise CalibrationError(f"{path}: {key}.data holds a value that is not a number") from None
    if not all(math.isfinite(v) for v in out):
        raise CalibrationError(f"{path}: {key}.data holds NaN or infinity")
    return out


def read_calibration(path: str) -> CameraCalibration:
    """A calibration YAML file; CalibrationError naming the file and the field at fault."""
    import yaml
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such calibration file") from None
    except (OSError, yaml.YAMLError) as err:
        raise CalibrationError(f"{path}: unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: not a camera calibration (expected a YAML mapping)")
    try:
        width, height = int(data["image_width"]), int(data["image_height"])
    except KeyError as err:
        raise CalibrationError(f"{path}: no {err.args[0]}") from None
    except (TypeError, ValueError):
        raise CalibrationError(f"{path}: image_width and image_height must be integers") from None
    d_block = data.get("distortion_coefficients")
    if not isinstance(d_block, dict) or not isinstance(d_block.get("data"), list):
        raise CalibrationError(f"{path}: no distortion_coefficients.data list")
    cal = CameraCalibration(width, height, str(data.get("camera_name", "")),
                            distortion_model=str(data.get("distortion_model", "plumb_bob")),
                            d=_numbers(data, "distortion_coefficients", len(d_block["data"]), path))
    for key, attr, rows, cols in MATRICES:
        if key == "rectification_matrix" and key not in data:
            continue
        setattr(cal, attr, _numbers(data, key, rows * cols, path))
    return cal


def write_calibration(path: str, cal: CameraCalibration) -> None:
    """Write ``cal`` as camera_calibration_parsers YAML (folders created; atomic rename)."""
    import yaml

    def block(rows, cols, values):
        return {"rows": rows, "cols": cols, "data": [float(v) for v in values]}
    data = {"image_width": int(cal.width), "image_height": int(cal.height),
            "camera_name": cal.camera_name,
            "camera_matrix": block(3, 3, cal.k), "distortion_model": cal.distortion_model,
            "distortion_coefficients": block(1, len(cal.d), cal.d),
            "rectification_matrix": block(3, 3, cal.r), "projection_matrix": block(3, 4, cal.p)}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, sort_keys=False, default_flow_style=None)
    os.replace(tmp, path)
