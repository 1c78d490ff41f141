"""Planar kinematics of Baxter's left arm (paper section 4, "Task setup").

The three pitch joints of the left arm -- shoulder ``s1``, elbow ``e1`` and wrist ``w1`` -- move the
end-effector in a vertical plane when the roll joints (s0, e0, w0, w2) are held at zero.  The planar
link vectors below are derived from Baxter's published Denavit-Hartenberg parameters (the ones in
Rethink's URDF and in Peter Corke's Robotics Toolbox): a link with DH offset ``d`` along the arm and
``a`` across it is a planar vector of length ``sqrt(a^2 + d^2)`` turned by ``atan2(a, d)``.

Plane frame (metres): origin on the ``s1`` axis, ``x`` horizontal and pointing forward away from the
shoulder along the arm's zero pose, ``y`` vertically up.  Positive ``s1`` pitches the arm down, as on
the robot.  Everything here works on batches: ``q`` has shape ``(..., 3)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

JOINT_NAMES = ("left_s1", "left_e1", "left_w1")

# Baxter DH (standard convention) for the links that follow s1, e1 and w1: (a, d) in metres.
#   s1 -> e1 : d = 0.102 + 0.26242 = 0.36435 (upper arm), a = 0.069 (elbow offset)
#   e1 -> w1 : d = 0.10359 + 0.27069 = 0.37429 (forearm), a = 0.010 (wrist offset)
#   w1 -> end-effector: d = 0.28, a = 0 (the end-effector point of Corke's Baxter model; the
#   URDF's hand flange is 0.11597 + 0.11355 = 0.2295 m from w1, the gripper adds the rest)
BAXTER_DH_AD = ((0.069, 0.36435), (0.010, 0.37429), (0.0, 0.28))
LINK_LENGTHS = np.array([np.hypot(a, d) for a, d in BAXTER_DH_AD])
LINK_ANGLE_OFFSETS = np.array([np.arctan2(a, d) for a, d in BAXTER_DH_AD])

# Tool points: the distance (m) from the w1 axis, along the hand, of the point that must reach the
# target (the last link of the planar arm).  ``paper`` is the end-effector above (0.28 m, inside the
# electric gripper): every shipped model, figure and test uses it.  ``electric_gripper_fingertips``
# is the end of Rethink's electric gripper with its default left fingers, from baxter_common's URDF
# (baxter_description/urdf/left_end_effector.urdf.xacro, electric_gripper/): hand flange 0.2295 m
# from w1 (above), gripper base -> electric base 0.025, electric base -> finger joint 0.02,
# extended_narrow finger 0.1127 to the paddle tip's frame, whose pad ends 0.0035 beyond it:
# 0.3907 m (docs/tool_point.md).
TOOL_PRESETS = {"paper": 0.28, "electric_gripper_fingertips": 0.3907}
DEFAULT_TOOL = "paper"
TOOL_RANGE = (0.2295, 0.6)   # m: from the hand flange to a long tool
TOOL_TOLERANCE = 1e-4        # m: two tools this close are the same tool point

# Half-width (m) of the square of the plane over which targets are normalised (scene.WORKSPACE):
# the paper's arm reaches 1.025 m; a longer tool reaches past it, and its targets are kept inside.
TARGET_BOX = 1.05

# Joint limits of Baxter's left arm (rad), from Rethink's URDF / hardware specification.
JOINT_LIMITS = np.array([
    [-2.147, 1.047],   # s1
    [-0.05, 2.618],    # e1
    [-1.5707, 2.094],  # w1
])


class KinematicsError(ValueError):
    """Raised for joint angles or targets outside the model's domain."""


class ToolError(ValueError):
    """Raised for an unknown tool, or a tool other than the one a model or dataset was made for."""


@dataclass(frozen=True)
class Tool:
    """The tool point: ``length`` metres from the w1 axis along the hand; ``name`` is a preset of
    :data:`TOOL_PRESETS` or the length written in metres."""

    name: str
    length: float

    def describe(self) -> str:
        """``name (0.3907 m)``: what error messages say."""
        return f"{self.name} ({self.length:g} m)" if self.name in TOOL_PRESETS else f"{self.length:g} m"

    def same(self, other) -> bool:
        """Whether ``other`` (a Tool, preset name or length) is this tool point."""
        return abs(parse_tool(other).length - self.length) <= TOOL_TOLERANCE

    def as_dict(self) -> dict:
        return {"name": self.name, "length": self.length}


def parse_tool(value) -> Tool:
    """A :class:`Tool` from a preset name, a length in metres (number or text), a Tool, a
    ``{"name", "length"}`` dictionary (as recorded in files), or None (the default tool)."""
    if value is None or value == "":
        value = DEFAULT_TOOL
    if isinstance(value, Tool):
        return value
    if isinstance(value, dict):
        return parse_tool(value.get("name", value.get("length")))
    if isinstance(value, str) and value in TOOL_PRESETS:
        return Tool(value, TOOL_PRESETS[value])
    try:
        length = float(value)
    except (TypeError, ValueError):
        raise ToolError(f"unknown tool {value!r}: a preset ({', '.join(TOOL_PRESETS)}) or a length "
                        "in metres from the w1 axis") from None
    lo, hi = TOOL_RANGE
    if not lo <= length <= hi:
        raise ToolError(f"tool length {length:g} m is outside [{lo:g}, {hi:g}] m (from the w1 axis)")
    for name, preset in TOOL_PRESETS.items():   # a preset's length is that preset
        if abs(length - preset) <= TOOL_TOLERANCE:
            return Tool(name, preset)
    return Tool(f"{length:g}", length)


def check_tool(expected, got, what: str) -> Tool:
    """Raise :class:`ToolError` naming both tools unless ``got`` is the ``expected`` tool point;
    ``what`` says whose tool ``got`` is (e.g. "dataset /data/x")."""
    want, have = parse_tool(expected), parse_tool(got)
    if not want.same(have):
        raise ToolError(f"{what} is for the tool {have.describe()}, but this run uses the tool "
                        f"{want.describe()}: the tool point must be the same")
    return want


class PlanarArm:
    """Three-link planar arm; defaults are Baxter's left arm."""

    def __init__(self, link_lengths=LINK_LENGTHS, angle_offsets=LINK_ANGLE_OFFSETS,
                 joint_limits=JOINT_LIMITS):
        self.link_lengths = np.asarray(link_lengths, dtype=np.float64)
        self.angle_offsets = np.asarray(angle_offsets, dtype=np.float64)
        self.joint_limits = np.asarray(joint_limits, dtype=np.float64)

    @property
    def reach(self) -> float:
        return float(np.sum(self.link_lengths))

    @property
    def tool_length(self) -> float:
        """Distance (m) of the tool point from the w1 axis (the last link's length)."""
        return float(self.link_lengths[-1])

    def with_tool(self, length: float) -> "PlanarArm":
        """The same arm with the tool point ``length`` metres from w1, along the hand."""
        lengths, offsets = self.link_lengths.copy(), self.angle_offsets.copy()
        lengths[-1], offsets[-1] = float(length), 0.0
        return PlanarArm(lengths, offsets, self.joint_limits)

    def inside_box(self, q: np.ndarray, half_width: float = TARGET_BOX) -> np.ndarray:
        """Whether the tool point of each configuration lies in the target square: bool (...)."""
        return np.all(np.abs(self.forward(q)) <= half_width, axis=-1)

    def keep_in_box(self, q_star: np.ndarray, draw, half_width: float = TARGET_BOX,
                    tries: int = 1000) -> np.ndarray:
        """``q_star`` (n, 3) with every configuration whose tool point lies outside the target
        square replaced by ``draw(rows)`` ((k, 3) new configurations for those rows), until none
        does.  Nothing is drawn where all are inside (the paper's tool: always)."""
        q_star = np.array(q_star, dtype=np.float64)
        for _ in range(tries):
            bad = np.flatnonzero(~self.inside_box(q_star, half_width))
            if not bad.size:
                return q_star
            q_star[bad] = draw(bad)
        raise KinematicsError(f"no configuration with the tool point inside the {half_width:g} m "
                              f"target square after {tries} draws")

    def check_joints(self, q: np.ndarray, tol: float = 1e-9) -> np.ndarray:
        """Return ``q`` as a float array of shape (..., 3) or raise :class:`KinematicsError`."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape[-1:] != (3,):
            raise KinematicsError(f"joint angles must have 3 values (s1, e1, w1), got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise KinematicsError("joint angles contain NaN or infinity")
        lo, hi = self.joint_limits[:, 0], self.joint_limits[:, 1]
        bad = (q < lo - tol) | (q > hi + tol)
        if np.any(bad):
            j = int(np.argwhere(bad)[0][-1])
            value = float(q[..., j][bad[..., j]].ravel()[0])
            raise KinematicsError(
                f"joint {JOINT_NAMES[j]} = {value:.4f} rad is outside its limits "
                f"[{lo[j]:.4f}, {hi[j]:.4f}]")
        return q

    def link_points(self, q: np.ndarray) -> np.ndarray:
        """Positions of shoulder, elbow, wrist and end-effector: shape (..., 4, 2) in metres."""
        q = np.asarray(q, dtype=np.float64)
        beta = np.cumsum(q, axis=-1) + self.angle_offsets
        steps = self.link_lengths[:, None] * np.stack([np.cos(beta), -np.sin(beta)], axis=-1)
        pts = np.cumsum(steps, axis=-2)
        zero = np.zeros(pts.shape[:-2] + (1, 2))
        return np.concatenate([zero, pts], axis=-2)

    def forward(self, q: np.ndarray) -> np.ndarray:
        """End-effector position x = K(q), shape (..., 2) in metres."""
        q = np.asarray(q, dtype=np.float64)
        beta = np.cumsum(q, axis=-1) + self.angle_offsets
        x = np.sum(self.link_lengths * np.cos(beta), axis=-1)
        y = -np.sum(self.link_lengths * np.sin(beta), axis=-1)
        return np.stack([x, y], axis=-1)

    def inverse(self, target: np.ndarray, wrist_angle: np.ndarray) -> np.ndarray:
        """Joint angles reaching ``target`` with the last link at absolute angle ``wrist_angle``.

        ``wrist_angle`` is the sum s1 + e1 + w1 (the hand's pitch).  Of the two elbow solutions the
        one with ``e1 >= 0`` (Baxter's elbow only bends one way) is returned.  Raises
        :class:`KinematicsError` where the wrist point is out of reach.  K-GPS does not need this
        (q* is known by construction, Algorithm 1), but it is the K^-1 of Eq. 6 for users who
        only have a target position.
        """
        target = np.asarray(target, dtype=np.float64)
        phi = np.asarray(wrist_angle, dtype=np.float64)
        if target.shape[-1:] != (2,):
            raise KinematicsError(f"target must be a 2-D position (x, y), got shape {target.shape}")
        if not (np.all(np.isfinite(target)) and np.all(np.isfinite(phi))):
            raise KinematicsError("target or wrist angle contains NaN or infinity")
        l1, l2, l3 = self.link_lengths
        c1, c2, c3 = self.angle_offsets
        # wrist point: remove the last link
        wx = target[..., 0] - l3 * np.cos(phi + c3)
        wy = target[..., 1] + l3 * np.sin(phi + c3)
        r2 = wx ** 2 + wy ** 2
        cos_g = (r2 - l1 ** 2 - l2 ** 2) / (2 * l1 * l2)
        if np.any(np.abs(cos_g) > 1 + 1e-12):
            raise KinematicsError("target is out of reach for the requested wrist angle")
        g = np.arccos(np.clip(cos_g, -1.0, 1.0))  # angle between link 1 and link 2 directions
        # link directions in the plane: b1 = s1 + c1, b2 = s1 + e1 + c2 (angles measured clockwise)
        b1 = np.arctan2(-wy, wx) - np.arctan2(l2 * np.sin(g), l1 + l2 * np.cos(g))
        s1 = b1 - c1
        e1 = (b1 + g) - c2 - s1
        w1 = phi - s1 - e1
        q = np.stack([s1, e1, w1], axis=-1)
        return (q + np.pi) % (2 * np.pi) - np.pi

    def sample_joints(self, rng: np.random.Generator, n: int, margin: float = 0.0) -> np.ndarray:
        """Uniform joint configurations inside the limits (shrunk by ``margin`` rad)."""
        lo = self.joint_limits[:, 0] + margin
        hi = self.joint_limits[:, 1] - margin
        return rng.uniform(lo, hi, size=(n, 3))

    def sample_targets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` targets (n, 2) m: tool points of uniform configurations (Algorithm 1's x* = K(q*)),
        inside the target square (:meth:`keep_in_box`; the same draws as
        ``forward(sample_joints(rng, n))`` for a tool that never leaves it, as the paper's)."""
        q_star = self.keep_in_box(self.sample_joints(rng, n), lambda rows: self.sample_joints(rng, len(rows)))
        return self.forward(q_star)

    def design_joints(self, rng: np.random.Generator, n: int, design: str = "uniform") -> np.ndarray:
        """``n`` joint configurations inside the limits laid out by ``design``:

        * ``uniform``: independent uniform draws (:meth:`sample_joints`);
        * ``halton``: a randomly shifted Halton sequence (bases 2, 3, 5), which fills the joint box
          more evenly than independent draws, for few labelled frames;
        * ``grid``: the centres of a regular grid of at most ``n`` cells, more cells along the
          joints of wider range (as ``collect_images`` drives a real arm through a grid).
        """
        lo, hi = self.joint_limits[:, 0], self.joint_limits[:, 1]
        if design == "uniform":
            return self.sample_joints(rng, n)
        if design == "halton":
            u = (halton(n, 3) + rng.uniform(0, 1, 3)) % 1.0
        elif design == "grid":
            counts = grid_counts(n, hi - lo)
            axes = [(np.arange(c) + 0.5) / c for c in counts]
            u = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        else:
            raise ValueError(f"joint design must be one of {JOINT_DESIGNS}, got {design!r}")
        return lo + u * (hi - lo)


JOINT_DESIGNS = ("uniform", "halton", "grid")


def halton(n: int, dim: int) -> np.ndarray:
    """The first ``n`` points (after 0) of the Halton sequence in ``dim`` <= 6 dimensions."""
    bases = (2, 3, 5, 7, 11, 13)[:dim]
    out = np.zeros((n, dim))
    for j, b in enumerate(bases):
        i = np.arange(1, n + 1)
        f = 1.0
        while np.any(i > 0):
            f /= b
            out[:, j] += f * (i % b)
            i //= b
    return out


def grid_counts(n: int, ranges) -> tuple[int, ...]:
    """Points per axis of a grid of at most ``n`` points, cells as square as the ranges allow."""
    ranges = np.asarray(ranges, dtype=np.float64)
    if n < 1:
        raise ValueError(f"a grid needs at least 1 point, got {n}")
    counts = np.ones(len(ranges), dtype=int)
    while True:
        k = int(np.argmax(ranges / counts))           # the axis with the widest cells
        trial = counts.copy()
        trial[k] += 1
        if np.prod(trial) > n:
            return tuple(int(c) for c in counts)
        counts = trial


BAXTER_LEFT = PlanarArm()


def tool_arm(tool=None) -> PlanarArm:
    """Baxter's left arm with the tool point of ``tool`` (:func:`parse_tool`); the paper's tool
    gives :data:`BAXTER_LEFT` itself."""
    return _tool_arm(round(parse_tool(tool).length, 6))


@lru_cache(maxsize=16)
def _tool_arm(length: float) -> PlanarArm:
    if abs(length - TOOL_PRESETS[DEFAULT_TOOL]) <= TOOL_TOLERANCE:
        return BAXTER_LEFT
    return BAXTER_LEFT.with_tool(length)


def forward(q: np.ndarray) -> np.ndarray:
    """End-effector position of Baxter's left arm (convenience wrapper)."""
    return BAXTER_LEFT.forward(q)
