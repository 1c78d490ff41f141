"""Domain-randomised simulator images, rendered in torch on the training device (sim-to-real).

The simple simulator of :mod:`reach_core.renderer` drawn again -- the same shapes, colours and
compositing order -- in torch, straight at the network resolution, so that a GPU renders fresh
scenes for every training batch (no fixed image set to overfit, no CPU rendering in the loop).
With ``randomize`` > 0 each image's *look* is drawn at random (domain randomisation, Tobin et al.
2017), so that a network trained on these images relies on the arm's geometry rather than on the
simulator's plain appearance:

* camera pose: a small shift, scale and roll of everything but the virtual target (a webcam on a
  tripod is never exactly where the simulator's camera is; the target is painted into frames at
  its nominal place, as :func:`reach_core.renderer.add_target` does for webcam frames);
* background: base grey, a smooth field, a checker wall with or without grout lines, a floor band
  and shaded clutter boxes behind the robot (with ``distractors``, also bars at any angle);
* the robot: body greys and sizes, link and joint widths and greys, cylindrical shading of links;
* camera effects: blur, contrast, brightness, gamma and noise (the target disc is painted after
  them, as a virtual target is painted into a finished frame).

The labels never change: the scene configuration is the one drawn.  With ``randomize=0`` the
images match :func:`reach_core.renderer.render_net_images` (tests/test_randomized_renderer.py).

Coordinates are pixels of the ``net_size`` x ``net_size`` network image (pixel (i, j) covers
[j, j+1) x [i, i+1)); shapes are signed-distance fields anti-aliased over ``supersample`` x
``supersample`` samples per pixel, exactly as in :mod:`reach_core.renderer`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .kinematics import JOINT_LIMITS, TARGET_BOX, tool_arm
from .renderer import (_BODY, BACKGROUND_RGB, FINGER_OFFSET, FINGER_RADIUS, FOREARM_RGB,
                       GRIPPER_RGB, HAND_FLANGE_M, HAND_RGB, JOINT_RADII, JOINT_RGB,
                       LINK_HALF_WIDTHS, LUMA, PLATE_HALF_LENGTH, PLATE_RADIUS, TARGET_RGB,
                       UPPER_ARM_RGB)
from .scene import DEFAULT_CAMERA, OMEGA_HIGH, OMEGA_LOW, TARGET_RADIUS_M, CameraConfig


def _grey(rgb) -> float:
    return float(sum(c * w for c, w in zip(rgb, LUMA))) / 255.0


def sample_scenes(n: int, gen: torch.Generator, device="cpu", near: float = 0.0, tool=None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random scenes as :func:`reach_core.renderer.sample_scenes` (3 DoF), drawn with a torch
    generator on ``device``: (target (n, 2) m, q (n, 3) rad), float32.  A share ``near`` of them
    has the target at the hand, as :func:`reach_core.renderer.near_targets` places it.  Targets
    are tool points of ``tool`` (None: the paper's), a long tool's redrawn into the Omega square."""
    from .renderer import NEAR_SPREAD

    lim = torch.as_tensor(JOINT_LIMITS, dtype=torch.float32, device=device)
    u = torch.rand(2, n, 3, device=device, generator=gen)
    q, q_star = lim[:, 0] + u * (lim[:, 1] - lim[:, 0])
    if near > 0:
        close = q + NEAR_SPREAD * (2 * torch.rand(n, 3, device=device, generator=gen) - 1)
        close = torch.minimum(torch.maximum(close, lim[:, 0]), lim[:, 1])
        pick = torch.rand(n, 1, device=device, generator=gen) < near
        q_star = torch.where(pick, close, q_star)
    target = link_points(q_star, tool)[:, 3]
    for _ in range(1000 if tool_arm(tool).reach > TARGET_BOX else 0):
        bad = (target.abs() > TARGET_BOX).any(-1)
        if not bool(bad.any()):
            break
        redraw = lim[:, 0] + torch.rand(n, 3, device=device, generator=gen) * (lim[:, 1] - lim[:, 0])
        target = torch.where(bad[:, None], link_points(redraw, tool)[:, 3], target)
    return target, q


def normalise(target: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(target m, q rad) -> Omega in [0, 1], as :func:`reach_core.scene.normalise`, in torch."""
    low = torch.as_tensor(OMEGA_LOW, dtype=torch.float32, device=q.device)
    span = torch.as_tensor(OMEGA_HIGH - OMEGA_LOW, dtype=torch.float32, device=q.device)
    return (torch.cat([target, q], dim=-1) - low) / span


def link_points(q: torch.Tensor, tool=None) -> torch.Tensor:
    """s1, e1, w1 and tool point (of ``tool``; None: the paper's) positions (..., 4, 2) in metres:
    ``PlanarArm.link_points``."""
    arm = tool_arm(tool)
    lengths = torch.as_tensor(arm.link_lengths, dtype=q.dtype, device=q.device)
    offsets = torch.as_tensor(arm.angle_offsets, dtype=q.dtype, device=q.device)
    beta = torch.cumsum(q, dim=-1) + offsets
    steps = lengths[:, None] * torch.stack([torch.cos(beta), -torch.sin(beta)], dim=-1)
    pts = torch.cumsum(steps, dim=-2)
    return torch.cat([torch.zeros_like(pts[..., :1, :]), pts], dim=-2)


class _Canvas:
    """Sample grid of a batch: pixel centres (H, W) in network pixels, and the compositing."""

    def __init__(self, camera: CameraConfig, supersample: int, device):
        self.camera, self.s = camera, int(supersample)
        n = camera.net_size * self.s
        c = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / self.s
        self.v, self.u = c.view(1, n, 1), c.view(1, 1, n)
        self.pitch = 1.0 / self.s
        x0, y0, w, _ = camera.roi
        self.k = camera.px_per_m * camera.net_size / w             # net px per metre
        self.origin = torch.tensor([(camera.origin_px[0] - x0) * camera.net_size / w,
                                    (camera.origin_px[1] - y0) * camera.net_size / w], device=device)
        self.n, self.device = n, device

    def to_px(self, xy: torch.Tensor) -> torch.Tensor:
        """Plane metres (..., 2) -> network pixels (u right, v down)."""
        return self.origin + self.k * torch.stack([xy[..., 0], -xy[..., 1]], dim=-1)

    def coverage(self, sdf: torch.Tensor) -> torch.Tensor:
        return (0.5 - sdf / self.pitch).clamp(0.0, 1.0)

    def capsule(self, a: torch.Tensor, b: torch.Tensor, radius) -> tuple[torch.Tensor, torch.Tensor]:
        """Coverage (B, H, W) of capsules a-b (B, 2 px) of radius (B,) or float px, and the
        distance of each sample from the capsule's axis over the radius (for shading)."""
        radius = torch.as_tensor(radius, dtype=torch.float32, device=self.device).reshape(-1, 1, 1)
        ax, ay = a[:, 0].view(-1, 1, 1), a[:, 1].view(-1, 1, 1)
        dx, dy = (b[:, 0] - a[:, 0]).view(-1, 1, 1), (b[:, 1] - a[:, 1]).view(-1, 1, 1)
        px, py = self.u - ax, self.v - ay
        t = ((px * dx + py * dy) / (dx * dx + dy * dy).clamp_min(1e-12)).clamp(0.0, 1.0)
        dist = torch.hypot(px - t * dx, py - t * dy)
        return self.coverage(dist - radius), dist / radius

    def box(self, centre: torch.Tensor, half: torch.Tensor, corner) -> torch.Tensor:
        """Coverage of rounded boxes (centre, half-size (B, 2) px, corner radius px)."""
        corner = torch.as_tensor(corner, dtype=torch.float32, device=self.device).reshape(-1, 1, 1)
        qx = (self.u - centre[:, 0].view(-1, 1, 1)).abs() - (half[:, 0].view(-1, 1, 1) - corner)
        qy = (self.v - centre[:, 1].view(-1, 1, 1)).abs() - (half[:, 1].view(-1, 1, 1) - corner)
        outside = torch.hypot(qx.clamp_min(0), qy.clamp_min(0))
        return self.coverage(outside + torch.maximum(qx, qy).clamp_max(0) - corner)

    @staticmethod
    def over(canvas: torch.Tensor, coverage: torch.Tensor, grey) -> torch.Tensor:
        grey = grey.view(-1, 1, 1) if torch.is_tensor(grey) and grey.ndim == 1 else grey
        return canvas + coverage * (grey - canvas)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x[:, None], self.s)[:, 0] if self.s > 1 else x


class _Look:
    """One batch's look: which images are randomised, the per-image draws (all from ``gen``, in a
    fixed order) and the camera pose that maps the plane into each image."""

    def __init__(self, cv: _Canvas, b: int, gen: torch.Generator | None, randomize: float,
                 realism: float):
        self.cv, self.b, self.dev, self.gen, self.randomize = cv, b, cv.device, gen, randomize
        dev = self.dev
        self.pick = (self.u(b) < randomize) if randomize > 0 else \
            torch.zeros(b, dtype=torch.bool, device=dev)
        self.on = self.pick.float()
        self.real = RealLook.draw(self.u, self.pick, realism, cv.camera.net_size) \
            if realism > 0 and randomize > 0 else None
        # camera pose: shift (px), scale and roll about the image centre, for all but the target
        self.centre = torch.full((2,), cv.camera.net_size / 2, device=dev)
        self.shift = self.on[:, None] * self.u(b, 2, lo=-3.0, hi=3.0) if randomize > 0 \
            else torch.zeros(b, 2, device=dev)
        self.scale = self.vary(1.0, 0.96, 1.04)
        roll = self.on * self.u(b, lo=-0.012, hi=0.012) if randomize > 0 \
            else torch.zeros(b, device=dev)
        self.cos, self.sin = torch.cos(roll), torch.sin(roll)
        self.r_px = cv.k * self.scale  # metres -> px of this image, (B,)

    def u(self, *shape, lo=0.0, hi=1.0) -> torch.Tensor:
        """Uniform numbers in [lo, hi) from the batch's generator."""
        return lo + (hi - lo) * torch.rand(*shape, device=self.dev, generator=self.gen)

    def vary(self, nominal, lo, hi, *shape) -> torch.Tensor:
        """Per-image value: nominal for plain images, nominal * U(lo, hi) for randomised ones."""
        if self.randomize <= 0:
            return torch.full((self.b, *shape), float(nominal), device=self.dev)
        f = self.u(self.b, *shape, lo=lo, hi=hi)
        return nominal * (1 + self.on.view(-1, *[1] * len(shape)) * (f - 1))

    def grey(self, nominal, lo, hi) -> torch.Tensor:
        """Per-image grey: the simulator's for plain images, U(lo, hi) for randomised ones."""
        if self.randomize <= 0:
            return torch.full((self.b,), nominal, device=self.dev)
        return torch.where(self.pick, self.u(self.b, lo=lo, hi=hi),
                           torch.full((self.b,), nominal, device=self.dev))

    def cam(self, xy_m: torch.Tensor) -> torch.Tensor:
        """Plane metres (B, 2) or (2,) -> this image's camera pixels (B, 2)."""
        cos, sin, centre = self.cos, self.sin, self.centre
        p = self.cv.to_px(xy_m.expand(self.b, 2)) - centre
        rot = torch.stack([cos * p[:, 0] - sin * p[:, 1], sin * p[:, 0] + cos * p[:, 1]], dim=-1)
        out = centre + self.scale[:, None] * rot + self.shift
        return out if self.real is None else self.real.warp(out, centre)


def render(target: torch.Tensor, q: torch.Tensor, gen: torch.Generator | None = None, *,
           randomize: float = 0.0, camera: CameraConfig = DEFAULT_CAMERA,
           supersample: int = 3, distractors: float = 0.0, realism: float = 0.0,
           tool=None) -> torch.Tensor:
    """Network images (B, net_size, net_size) float32 in [0, 1] of scenes ``target`` (B, 2) m and
    ``q`` (B, 3) rad, on their device; a fraction ``randomize`` of them (drawn per image with
    ``gen``) gets a random look (module docstring), the others the simulator's own.  A fraction
    ``distractors`` of the randomised images also gets up to :data:`N_BARS` rotated, shaded bars
    behind the robot (:func:`draw_bars`); 0 draws nothing and leaves the random stream as it was.
    A fraction ``realism`` of the randomised images looks like a real robot in a real room
    (:class:`RealLook`: a webcam placed by hand, with perspective and lens distortion, a dark
    robot, posters and lights, physical targets); 0 leaves the random stream as it was."""
    target = torch.as_tensor(target, dtype=torch.float32)
    q = torch.as_tensor(q, dtype=torch.float32, device=target.device)
    b, dev = q.shape[0], q.device
    cv = _Canvas(camera, supersample, dev)
    if randomize > 0 and gen is None:
        raise ValueError("randomize > 0 needs a torch.Generator")
    look = _Look(cv, b, gen, randomize, realism)
    canvas = torch.full((b, cv.n, cv.n), _grey(BACKGROUND_RGB), device=dev)
    if randomize > 0:
        bg = _random_background(look, distractors)
        canvas = torch.where(look.pick.view(-1, 1, 1), bg.clamp(0, 1), canvas)
    canvas = _draw_body(look, canvas)
    canvas = _draw_arm(look, canvas, q, tool)
    img = cv.pool(canvas)
    if randomize > 0:
        img = _camera_effects(look, img)
    # the (virtual) target, painted after the camera effects
    if look.real is not None:
        return look.real.finish(cv, img, target, look.cam, look.r_px)
    t_px = cv.to_px(target)
    alpha = cv.pool(cv.capsule(t_px, t_px, TARGET_RADIUS_M * cv.k)[0])
    return cv.over(img, alpha, _grey(TARGET_RGB)).clamp(0, 1)


def _random_background(look: _Look, distractors: float) -> torch.Tensor:
    """Randomised backgrounds (B, n, n), unclamped: base grey, a smooth field, a checker wall
    with or without grout lines, a floor band, clutter boxes, bars and (real look) posters."""
    cv, u, b = look.cv, look.u, look.b
    n, size_px = cv.n, cv.camera.net_size
    field = F.interpolate(u(b, 1, 4, 4, lo=-1, hi=1), size=(n, n), mode="bicubic",
                          align_corners=False)[:, 0]
    bg = u(b, 1, 1, lo=0.4, hi=0.95) + u(b, 1, 1, hi=0.12) * field
    period = u(b, 1, 1, lo=5.0, hi=22.0)
    phase_u, phase_v = u(b, 1, 1, hi=40.0), u(b, 1, 1, hi=40.0)
    cu, cvv = (cv.u + phase_u) / period, (cv.v + phase_v) / period
    checker = ((torch.floor(cu) + torch.floor(cvv)) % 2) * 2 - 1
    bg = bg + (u(b, 1, 1) < 0.6) * u(b, 1, 1, hi=0.08) * checker
    grout = torch.minimum((cu - torch.round(cu)).abs(), (cvv - torch.round(cvv)).abs()) * period
    bg = torch.where((u(b, 1, 1) < 0.4) & (grout < 0.25), bg - u(b, 1, 1, hi=0.12), bg)
    floor = cv.v > u(b, 1, 1, lo=0.72, hi=1.1) * size_px
    bg = torch.where(floor, u(b, 1, 1, lo=0.15, hi=0.6) + 0.05 * field, bg)
    bg = _clutter_boxes(look, bg)
    if distractors > 0:
        bg = draw_bars(cv, bg, u, u(b) < distractors)
    if look.real is not None:
        bg = look.real.posters(cv, bg, u)
    return bg


def _clutter_boxes(look: _Look, bg: torch.Tensor) -> torch.Tensor:
    """Up to ten clutter boxes behind the robot, two shaded faces each."""
    cv, u, b = look.cv, look.u, look.b
    size_px = cv.camera.net_size
    for _ in range(10):
        x0, y0 = u(b, 1, 1, lo=-6, hi=size_px), u(b, 1, 1, lo=-6, hi=size_px)
        w, h = u(b, 1, 1, lo=1.5, hi=14), u(b, 1, 1, lo=1.5, hi=14)
        inside = (cv.u >= x0) & (cv.u < x0 + w) & (cv.v >= y0) & (cv.v < y0 + h)
        inside &= u(b, 1, 1) < 0.55
        g = u(b, 1, 1, lo=0.15, hi=1.0)
        side = cv.u > x0 + w * u(b, 1, 1, lo=0.5, hi=1.0)
        g = torch.where(side, g * u(b, 1, 1, lo=0.6, hi=1.0), g)
        bg = torch.where(inside, g, bg)
    return bg


def _draw_body(look: _Look, canvas: torch.Tensor) -> torch.Tensor:
    """The robot's fixed body (boxes and capsules of :data:`reach_core.renderer._BODY`)."""
    cv, dev, r_px, cam = look.cv, look.dev, look.r_px, look.cam
    body_grey = {}
    for kind, p, s, r, rgb in _BODY:
        if rgb not in body_grey:
            body_grey[rgb] = look.grey(_grey(rgb), 0.1 if _grey(rgb) < 0.4 else 0.3,
                                       0.5 if _grey(rgb) < 0.4 else 0.85)
            if look.real is not None:   # Baxter's body is black and dark grey
                body_grey[rgb] = look.real.darken(body_grey[rgb], look.u)
        size = look.vary(1.0, 0.85, 1.15, 2)
        pos = torch.as_tensor(p, dtype=torch.float32, device=dev)
        if kind == "box":
            half = torch.as_tensor(s, dtype=torch.float32, device=dev) * size * r_px[:, None]
            cov = cv.box(cam(pos), half, r * r_px)
        else:
            end = torch.as_tensor(s, dtype=torch.float32, device=dev)
            cov = cv.capsule(cam(pos), cam(end), r * r_px * size[:, 0])[0]
        canvas = cv.over(canvas, cov, body_grey[rgb])
    return canvas


def _draw_arm(look: _Look, canvas: torch.Tensor, q: torch.Tensor, tool=None) -> torch.Tensor:
    """The arm at joint angles ``q``: links (shaded when randomised), joints and the gripper,
    whose fingers end at the tool point of ``tool`` (None: the paper's)."""
    cv, u, b, vary, r_px, cam = look.cv, look.u, look.b, look.vary, look.r_px, look.cam
    pts = link_points(q, tool)
    wrist, ee = pts[:, 2], pts[:, 3]
    along = (ee - wrist) / (ee - wrist).norm(dim=-1, keepdim=True)
    across = torch.stack([-along[:, 1], along[:, 0]], dim=-1)
    flange = wrist + HAND_FLANGE_M * along
    links = ((pts[:, 0], pts[:, 1], UPPER_ARM_RGB), (pts[:, 1], pts[:, 2], FOREARM_RGB),
             (wrist, flange, HAND_RGB))
    arm_grey = look.grey(_grey(UPPER_ARM_RGB), 0.1, 0.45)
    for (a, e, rgb), half_width in zip(links, LINK_HALF_WIDTHS):
        if rgb == HAND_RGB:
            g = look.grey(_grey(rgb), 0.15, 0.6)
        else:  # upper arm and forearm: one random grey, each a little lighter or darker
            g = torch.where(look.pick, arm_grey * vary(1.0, 0.85, 1.15),
                            torch.full_like(arm_grey, _grey(rgb)))
        cov, rel = cv.capsule(cam(a), cam(e), half_width * r_px * vary(1.0, 0.8, 1.3))
        if look.randomize > 0:  # cylindrical shading across the link: lighter or darker on its axis
            shade = look.on * u(b, lo=-0.3, hi=0.5)
            g = g.view(-1, 1, 1) * (1 + shade.view(-1, 1, 1)
                                    * (torch.sqrt((1 - rel.clamp(max=1) ** 2)) - 0.5))
        canvas = cv.over(canvas, cov, g)
    joint_grey = look.grey(_grey(JOINT_RGB), 0.05, 0.4)
    for j, radius in enumerate(JOINT_RADII):
        c = cam(pts[:, j])
        canvas = cv.over(canvas, cv.capsule(c, c, radius * r_px * vary(1.0, 0.8, 1.4))[0], joint_grey)
    return _draw_gripper(look, canvas, flange, ee, across)


def _draw_gripper(look: _Look, canvas: torch.Tensor, flange: torch.Tensor, ee: torch.Tensor,
                  across: torch.Tensor) -> torch.Tensor:
    """The gripper: a plate across the flange and two fingers from it to the end effector."""
    cv, vary, r_px, cam = look.cv, look.vary, look.r_px, look.cam
    gripper = look.grey(_grey(GRIPPER_RGB), 0.05, 0.45)
    plate = PLATE_HALF_LENGTH * vary(1.0, 0.6, 1.5)[:, None]
    canvas = cv.over(canvas, cv.capsule(cam(flange - plate * across),
                                        cam(flange + plate * across),
                                        PLATE_RADIUS * r_px * vary(1.0, 0.7, 1.5))[0], gripper)
    for side in (-1.0, 1.0):
        off = side * FINGER_OFFSET * across
        canvas = cv.over(canvas, cv.capsule(cam(flange + off), cam(ee + off),
                                            FINGER_RADIUS * r_px * vary(1.0, 0.7, 1.5))[0], gripper)
    return canvas


def _camera_effects(look: _Look, img: torch.Tensor) -> torch.Tensor:
    """Blur, contrast, brightness, gamma and noise on the randomised images (B, H, W)."""
    u, b = look.u, look.b
    plain = img
    blurred = F.avg_pool2d(F.pad(img[:, None], (1, 1, 1, 1), mode="replicate"), 3, 1)[:, 0]
    img = img + u(b, 1, 1, hi=0.5) * (blurred - img)
    img = (img - 0.5) * u(b, 1, 1, lo=0.75, hi=1.25) + 0.5 + u(b, 1, 1, lo=-0.08, hi=0.08)
    img = img.clamp(0, 1) ** u(b, 1, 1, lo=0.75, hi=1.3)
    img = img + u(b, 1, 1, hi=0.015) * torch.randn(img.shape, device=look.dev, generator=look.gen)
    return torch.where(look.pick.view(-1, 1, 1), img.clamp(0, 1), plain)


class RealLook:
    """The per-image draws that make a randomised image look like a real Baxter in a real room
    (issue: sim-to-real on a robot and camera never seen).  Everything here is chosen from what a
    real setup is known to be, never from the held-out proxy's frames:

    * a webcam placed by hand: on top of the shift, scale and roll, a keystone (the camera yawed
      or pitched up to about 10 degrees) and radial lens distortion;
    * a dark robot: the arm, joints, gripper and body drawn in dark greys (Baxter is black and
      dark grey with red shells, which are dark in luma);
    * a room: posters and furniture as textured rectangles, a light gradient over the frame;
    * targets: painted (the virtual target, at its nominal place, as before) or physical (a blue
      disc through the same camera as the robot, any blue, seen slightly obliquely, shaded, on a
      stand, and behind the arm in some frames).
    """

    def __init__(self, on, keystone, k1, physical, ellipse, tilt, shade, target_grey, stand,
                 behind, light):
        self.on, self.keystone, self.k1, self.physical = on, keystone, k1, physical
        self.ellipse, self.tilt, self.shade, self.target_grey = ellipse, tilt, shade, target_grey
        self.stand, self.behind, self.light = stand, behind, light

    @classmethod
    def draw(cls, u, pick: torch.Tensor, realism: float, size: int) -> "RealLook":
        b = pick.shape[0]
        on = (pick & (u(b) < realism)).float()
        return cls(on=on, keystone=on[:, None] * u(b, 2, lo=-1.6, hi=1.6) / size,
                   k1=on * u(b, lo=-0.07, hi=0.04), physical=(u(b) < 0.5) & (on > 0),
                   ellipse=u(b, 2, lo=0.8, hi=1.1), tilt=u(b, lo=0.0, hi=torch.pi),
                   shade=u(b, lo=-0.5, hi=0.5), target_grey=u(b, lo=0.05, hi=0.5),
                   stand=u(b) < 0.7, behind=u(b) < 0.35,
                   light=on[:, None] * u(b, 3, lo=-0.25, hi=0.25))

    def darken(self, grey: torch.Tensor, u) -> torch.Tensor:
        """Dark greys (0.03-0.3) instead of ``grey`` (B,) for most real-look images."""
        dark = (self.on > 0) & (u(grey.shape[0]) < 0.8)
        return torch.where(dark, u(grey.shape[0], lo=0.03, hi=0.3), grey)

    def warp(self, p: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """Keystone (a plane seen off-axis) and radial distortion of points p (B, 2) px."""
        d = p - centre
        d = d / (1 + (self.keystone * d).sum(-1, keepdim=True))
        r2 = (d ** 2).sum(-1, keepdim=True) / centre[0] ** 2
        return centre + d * (1 + self.k1[:, None] * r2)

    def posters(self, cv: "_Canvas", bg: torch.Tensor, u) -> torch.Tensor:
        """Up to five textured rectangles (posters, shelves, furniture) on the background."""
        b, size = bg.shape[0], cv.camera.net_size
        for _ in range(5):
            x0, y0 = u(b, 1, 1, lo=-10, hi=size), u(b, 1, 1, lo=-10, hi=size)
            w, h = u(b, 1, 1, lo=6, hi=40), u(b, 1, 1, lo=6, hi=40)
            inside = (cv.u >= x0) & (cv.u < x0 + w) & (cv.v >= y0) & (cv.v < y0 + h)
            inside &= (u(b, 1, 1) < 0.6) & (self.on.view(-1, 1, 1) > 0)
            cells = 3 + int(10 * u(1).item())     # the texture's scale: any
            smooth = F.interpolate(u(b, 1, cells, cells), size=(cv.n, cv.n), mode="bilinear",
                                   align_corners=False)[:, 0]
            blocky = F.interpolate(u(b, 1, cells, cells), size=(cv.n, cv.n), mode="nearest")[:, 0]
            tex = torch.where(u(b, 1, 1) < 0.5, smooth, blocky)
            g = u(b, 1, 1, lo=0.05, hi=0.9) + u(b, 1, 1, lo=0.0, hi=0.6) * (tex - 0.5)
            bg = torch.where(inside, g.clamp(0, 1), bg)
        return bg

    def _target(self, cv: "_Canvas", target, cam, r_px) -> tuple[torch.Tensor, torch.Tensor]:
        """Coverage and grey (B, H, W) of the target disc (and its stand), supersampled."""
        nominal = cv.to_px(target)
        c = torch.where(self.physical[:, None], cam(target), nominal)
        radius = TARGET_RADIUS_M * torch.where(self.physical, r_px, torch.full_like(r_px, cv.k))
        dx, dy = cv.u - c[:, 0].view(-1, 1, 1), cv.v - c[:, 1].view(-1, 1, 1)
        cs, sn = torch.cos(self.tilt).view(-1, 1, 1), torch.sin(self.tilt).view(-1, 1, 1)
        a = (dx * cs + dy * sn) / self.ellipse[:, 0].view(-1, 1, 1)
        e = (-dx * sn + dy * cs) / self.ellipse[:, 1].view(-1, 1, 1)
        phys = self.physical.view(-1, 1, 1)
        dist = torch.where(phys, torch.hypot(a, e), torch.hypot(dx, dy))
        cov = cv.coverage(dist - radius.view(-1, 1, 1))
        grey = torch.where(phys, self.target_grey.view(-1, 1, 1)
                           * (1 + self.shade.view(-1, 1, 1) * a / radius.view(-1, 1, 1)),
                           torch.full_like(cov, _grey(TARGET_RGB)))
        foot = torch.stack([c[:, 0], torch.full_like(c[:, 0], cv.camera.net_size + 4.0)], -1)
        stand = cv.capsule(c, foot, 0.6)[0] * (phys & self.stand.view(-1, 1, 1)).float()
        cov_all = torch.maximum(cov, stand)
        return cov_all, torch.where(cov >= stand, grey, torch.full_like(grey, 0.25)).clamp(0, 1)

    def finish(self, cv: "_Canvas", img, target, cam, r_px) -> torch.Tensor:
        """The light gradient, then the target: in front of everything, or (physical targets,
        some frames) composited under the arm by keeping the arm's darker pixels on top."""
        ramp = (self.light[:, 0].view(-1, 1, 1) * (cv.u[..., ::cv.s] / cv.camera.net_size - 0.5)
                + self.light[:, 1].view(-1, 1, 1) * (cv.v[:, ::cv.s] / cv.camera.net_size - 0.5))
        img = (img * (1 + 2 * ramp + self.light[:, 2].view(-1, 1, 1) * 0.5)).clamp(0, 1)
        cov, grey = self._target(cv, target, cam, r_px)
        alpha, grey = cv.pool(cov), cv.pool(grey * cov) / cv.pool(cov).clamp_min(1e-6)
        front = cv.over(img, alpha, grey)
        behind = torch.where(img < grey, img, front)   # the arm's darker pixels stay on top
        use_behind = (self.physical & self.behind).view(-1, 1, 1)
        return torch.where(use_behind, behind, front).clamp(0, 1)


N_BARS = 6


def draw_bars(cv: "_Canvas", canvas: torch.Tensor, u, on: torch.Tensor) -> torch.Tensor:
    """Up to :data:`N_BARS` distractors on the images ``on`` (B,) bool of ``canvas`` (B, H, W):
    bars at any angle, 3-30 px long and 1-7 px wide, shaded across like a lit box or cylinder, half
    of them in the arm's dark greys.  The higher-fidelity domain's background boxes stand at any
    angle behind the arm, and their edges read like links: with them removed, the adapted network's
    error there drops from e 0.029 to 0.021 (bench/diagnose_hifi.py).  ``u(*shape, lo, hi)`` draws
    uniform numbers from the caller's generator."""
    b, size = canvas.shape[0], cv.camera.net_size
    count = (u(b) * (N_BARS + 1)).long()
    for k in range(N_BARS):
        a = u(b, 2, lo=-4.0, hi=size + 4.0)
        angle, length = u(b, lo=0.0, hi=torch.pi), u(b, lo=3.0, hi=30.0)
        end = a + length[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
        cov, rel = cv.capsule(a, end, u(b, lo=0.5, hi=3.5))
        dark = u(b) < 0.5
        g = torch.where(dark, u(b, lo=0.05, hi=0.45), u(b, lo=0.2, hi=1.0))
        shade = u(b, lo=-0.4, hi=0.4).view(-1, 1, 1) * (torch.sqrt(1 - rel.clamp(max=1) ** 2) - 0.5)
        g = (g.view(-1, 1, 1) * (1 + shade)).clamp(0, 1)
        cov = cov * ((k < count) & on).float().view(-1, 1, 1)
        canvas = cv.over(canvas, cov, g)
    return canvas


def render_batch(n: int, gen: torch.Generator, device="cpu", *, randomize: float = 0.0,
                 supersample: int = 3, camera: CameraConfig = DEFAULT_CAMERA, near: float = 0.0,
                 distractors: float = 0.0, realism: float = 0.0, tool=None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` fresh random scenes rendered on ``device``: (images (n, 84, 84), Omega (n, 5));
    a share ``near`` with the target at the hand (:func:`sample_scenes`), of the tool ``tool``."""
    target, q = sample_scenes(n, gen, device, near, tool)
    images = render(target, q, gen, randomize=randomize, camera=camera, supersample=supersample,
                    distractors=distractors, realism=realism, tool=tool)
    return images, normalise(target, q)


class ScenePool:
    """Simulator training images kept on the device and renewed as training goes (a ring buffer).

    Rendering a batch per step costs hundreds of small kernel launches; a pool of ``size`` images
    (float16) is rendered once in chunks of ``chunk``, then ``refresh`` images per step on average
    are replaced by fresh scenes, one chunk at a time.  Each image is used about
    batch / refresh times before it is replaced, so the data never repeats for long.
    """

    def __init__(self, size: int, gen: torch.Generator, device="cpu", *, randomize: float = 0.0,
                 supersample: int = 3, chunk: int = 2048, camera: CameraConfig = DEFAULT_CAMERA,
                 near: float = 0.0, distractors: float = 0.0, realism: float = 0.0, tool=None):
        if size < 1:
            raise ValueError(f"pool size must be positive, got {size}")
        self.gen, self.device, self.camera, self.near = gen, device, camera, near
        self.randomize, self.supersample, self.distractors = randomize, supersample, distractors
        self.realism, self.tool = realism, tool
        self.size, self.chunk = int(size), int(min(chunk, size))
        n = camera.net_size
        self.images = torch.empty(self.size, n, n, dtype=torch.float16, device=device)
        self.omega = torch.empty(self.size, 5, dtype=torch.float32, device=device)
        self.next, self.rendered, self.due = 0, 0, 0.0
        while self.rendered < self.size:
            self._render(min(self.chunk, self.size - self.rendered))

    def _render(self, k: int) -> None:
        x, y = render_batch(k, self.gen, self.device, randomize=self.randomize,
                            supersample=self.supersample, camera=self.camera, near=self.near,
                            distractors=self.distractors, realism=self.realism, tool=self.tool)
        idx = (self.next + torch.arange(k, device=self.device)) % self.size
        self.images[idx], self.omega[idx] = x.to(torch.float16), y
        self.next = (self.next + k) % self.size
        self.rendered += k

    def refresh(self, k: float) -> None:
        """Count ``k`` more images due for replacement; render a chunk once one is due."""
        self.due += k
        while self.due >= self.chunk:
            self._render(self.chunk)
            self.due -= self.chunk

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(self.size, (n,), device=self.device, generator=self.gen)
        return self.images[idx].float(), self.omega[idx]
