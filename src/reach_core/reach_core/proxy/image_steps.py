"""The proxy frame's image steps after rasterising: textures painted onto faces (plate, screen,
wall, floor), the disc shaded flat, Baxter's face, the lens's distortion and the webcam's sensor."""
from __future__ import annotations

import numpy as np

from ..calibration_marker import DEFAULT_MARKER, marker_image
from ..camera_model import CameraModel
from .camera import canvas_points, distortion_maps

PLATE_MARGIN_M = 0.035                # white margin of the marker plate around the marker (>= 1 cell)


def paint_face(canvas: np.ndarray, seg: np.ndarray, body: int, corners_px: np.ndarray,
               image: np.ndarray, shaded: bool = True) -> None:
    """Texture a rasterised face: warp ``image`` onto the quadrilateral ``corners_px`` (TL, TR,
    BR, BL, canvas pixels) where the segmentation shows ``body``, times the shading there (the
    face was rendered white) if ``shaded`` (else as it is: a lit screen)."""
    import cv2
    side = float(np.max(np.linalg.norm(corners_px - np.roll(corners_px, 1, axis=0), axis=-1)))
    if side * 2 < max(image.shape[:2]):             # prefilter: no aliasing when shrinking
        scale = side * 2 / max(image.shape[:2])
        image = cv2.resize(image, (max(2, round(image.shape[1] * scale)),
                                   max(2, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    x0, y0 = np.floor(corners_px.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners_px.max(axis=0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    src = np.float32([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    dst = np.float32(corners_px - [x0, y0])
    hom = cv2.getPerspectiveTransform(src, dst)
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    warped = cv2.warpPerspective(rgba, hom, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    region = canvas[y0:y1, x0:x1]
    sel = (seg[y0:y1, x0:x1] == body) & (warped[..., 3] > 127)
    if not shaded:
        region[sel] = warped[..., :3][sel]
        return
    shade = region[sel].astype(np.float32) / 255.0
    region[sel] = np.clip(warped[..., :3][sel].astype(np.float32) * shade, 0, 255).astype(np.uint8)


def paint_background(canvas: np.ndarray, seg: np.ndarray, planes: list, camera: CameraModel,
                     light: dict) -> None:
    """Draw the room's planes (wall, floor) where nothing was rasterised (``seg < 0``), each
    textured through its homography and lit by the frame's light (ambient + diffuse)."""
    import cv2
    h, w = seg.shape
    to_light = np.asarray(light["lightDirection"], np.float64)
    to_light /= np.linalg.norm(to_light)
    colour = np.asarray(light["lightColor"], np.float64)
    back = np.empty((h, w, 3), np.uint8)
    back[:] = (60, 60, 62)                             # a dark ceiling where no plane is seen
    for corners, image, normal, tint in planes:
        ih, iw = image.shape[:2]
        src = np.float32([[-0.5, -0.5], [iw - 0.5, -0.5], [iw - 0.5, ih - 0.5], [-0.5, ih - 0.5]])
        hom = cv2.getPerspectiveTransform(src, np.float32(canvas_points(camera, corners)))
        shade = light["lightAmbientCoeff"] + light["lightDiffuseCoeff"] * max(
            0.0, float(np.dot(normal, to_light)))
        lit = cv2.multiply(image, tuple(float(c) for c in shade * colour * np.asarray(tint)) + (0.0,))
        cv2.warpPerspective(lit, hom, (w, h), dst=back, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_TRANSPARENT)
    np.copyto(canvas, back, where=(seg < 0)[..., None])


def _upright(corners_px: np.ndarray) -> np.ndarray:
    """Four image points ordered top left, top right, bottom right, bottom left."""
    top = np.argsort(corners_px[:, 1])
    upper, lower = corners_px[top[:2]], corners_px[top[2:]]
    upper, lower = upper[np.argsort(upper[:, 0])], lower[np.argsort(lower[:, 0])]
    return np.array([upper[0], upper[1], lower[1], lower[0]])


def face_image(rng: np.random.Generator, size=(160, 120)) -> np.ndarray:
    """Baxter's face on its screen: two dark eyes with eyebrows on a light background, looking
    somewhere (uint8 RGB)."""
    import cv2
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.clip(rng.uniform(200, 245) * rng.uniform(0.95, 1.03, 3), 0, 255).astype(np.uint8)
    gaze = rng.uniform(-1, 1, 2) * (10, 6)
    lid = rng.uniform(0.75, 1.0)
    for side in (-1, 1):
        cx, cy = int(w / 2 + side * w * 0.22), int(h * 0.52)
        cv2.ellipse(img, (cx, cy), (int(w * 0.12), int(h * 0.22 * lid)), 0, 0, 360, (25, 25, 30), -1,
                    cv2.LINE_AA)
        cv2.circle(img, (int(cx + gaze[0]), int(cy + gaze[1])), int(w * 0.04), (235, 235, 240), -1,
                   cv2.LINE_AA)
        cv2.ellipse(img, (cx, int(h * 0.22)), (int(w * 0.13), int(h * 0.06)), 0, 200, 340,
                    (25, 25, 30), 3, cv2.LINE_AA)
    return img


def paint_disc(canvas: np.ndarray, seg: np.ndarray, body: int, corners_px: np.ndarray, rgb,
               light: dict, rng: np.random.Generator) -> None:
    """Shade the disc flat (TinyRenderer smooths a cylinder's normals into a ball): its face, the
    ellipse inside ``corners_px``, in ``rgb`` lit by the light with a faint gradient; its rim
    (the disc's other visible pixels) darker."""
    import cv2
    x0, y0 = np.maximum(np.floor(corners_px.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.ceil(corners_px.max(axis=0)).astype(int) + 3
    x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    n = 64
    yy, xx = np.mgrid[:n, :n]
    circle = ((((xx + 0.5) / n - 0.5) ** 2 + ((yy + 0.5) / n - 0.5) ** 2) <= 0.25).astype(np.float32)
    gradient = 1 + rng.uniform(-0.12, 0.12) * (xx / n - 0.5) + rng.uniform(-0.12, 0.12) * (yy / n - 0.5)
    src = np.float32([[-0.5, -0.5], [n - 0.5, -0.5], [n - 0.5, n - 0.5], [-0.5, n - 0.5]])
    hom = cv2.getPerspectiveTransform(src, np.float32(corners_px - [x0, y0]))
    size = (x1 - x0, y1 - y0)
    face = cv2.warpPerspective(circle, hom, size, flags=cv2.INTER_LINEAR) > 0.5
    shade = cv2.warpPerspective(gradient.astype(np.float32), hom, size, flags=cv2.INTER_LINEAR)
    to_light = np.asarray(light["lightDirection"], np.float64)
    facing = max(0.0, -to_light[1] / np.linalg.norm(to_light))
    lit = light["lightAmbientCoeff"] + light["lightDiffuseCoeff"] * facing
    colour = np.asarray(rgb) * np.asarray(light["lightColor"]) * lit * 255
    mine = seg[y0:y1, x0:x1] == body
    region = canvas[y0:y1, x0:x1]
    sel = mine & face
    region[sel] = np.clip(colour[None] * shade[sel][:, None], 0, 255).astype(np.uint8)
    region[mine & ~face] = np.clip(colour * 0.55, 0, 255).astype(np.uint8)


def plate_image(pixels_per_m: float = 2000.0) -> np.ndarray:
    """The marker plate's face as uint8 RGB: the ArUco marker with a white margin."""
    cells = int(round(DEFAULT_MARKER.size_m * pixels_per_m))
    margin = int(round(PLATE_MARGIN_M * pixels_per_m))
    grey = np.pad(marker_image(DEFAULT_MARKER, cells), margin, constant_values=255)
    return np.repeat(grey[..., None], 3, axis=-1)


def distort(canvas: np.ndarray, camera: CameraModel) -> np.ndarray:
    """The pinhole canvas seen through the camera's lens: the distorted frame."""
    import cv2
    mx, my, _ = distortion_maps(camera)
    return cv2.remap(canvas, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


_FIELDS: dict = {}


def _fields(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached per frame size: the squared distance from the centre (1 at the corners) as a
    3-channel float32 map, and a bank of unit Gaussian noise 64 px larger than the frame (each
    frame takes a random window of it: fresh noise without drawing 0.9 M numbers a frame)."""
    if (h, w) not in _FIELDS:
        yy, xx = np.ogrid[:h, :w]
        r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (w * w / 4 + h * h / 4)
        bank = np.random.default_rng(0x5E45).standard_normal((h + 64, w + 64, 3), dtype=np.float32)
        _FIELDS[(h, w)] = (np.repeat(r2[..., None], 3, axis=-1).astype(np.float32), bank)
    return _FIELDS[(h, w)]


def sensor(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A webcam's sensor and encoder: white balance, exposure, contrast and gamma (a tone curve
    per channel), vignetting, a slight blur, noise and JPEG compression."""
    import cv2
    h, w = frame.shape[:2]
    gain = rng.uniform(0.9, 1.1, 3) * rng.uniform(0.85, 1.15)
    contrast, gamma = rng.uniform(0.85, 1.1), rng.uniform(0.85, 1.2)
    x = np.arange(256)[:, None] / 255.0
    lut = np.clip((x * gain - 0.5) * contrast + 0.5, 0, 1) ** gamma
    out = cv2.LUT(frame, np.rint(lut * 255).astype(np.uint8).reshape(1, 256, 3))
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.35, 0.9))
    r2, bank = _fields(h, w)
    f = out.astype(np.float32)
    f = cv2.scaleAdd(cv2.multiply(f, r2), -rng.uniform(0.05, 0.3), f)         # vignetting
    i, j = rng.integers(0, 64, 2)
    f = cv2.scaleAdd(np.ascontiguousarray(bank[i:i + h, j:j + w]), rng.uniform(1.0, 4.0), f)
    out = np.clip(f, 0, 255).astype(np.uint8)
    quality = int(rng.integers(60, 92))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else out
