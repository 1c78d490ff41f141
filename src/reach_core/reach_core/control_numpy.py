"""The control policy in numpy, for one scene at a time: the controller node's per-message path.

:meth:`ControlPolicy.act` on one Omega runs some 60 small torch operations (the kinematic
features, the action mask, the network), about 0.4 ms on this CPU, most of it per-operation
overhead; the same float32 arithmetic in numpy takes a fraction of that.  :class:`NumpyPolicy`
copies a :class:`ControlPolicy`'s weights and task once and implements ``act`` with the same
rules (:func:`reach_core.control.available_actions`, ``forbid`` as in ``ControlPolicy.act``) and
the same network (:class:`reach_core.control.QNetwork`: positional encoding, kinematic features,
dueling head).  Its Q-values match torch's to float32 rounding (tests/test_control_numpy.py checks
them and the actions on many scenes for the shipped controllers).
"""
from __future__ import annotations

import numpy as np

from .control import LIMIT_TOL, ControlPolicy
from .kinematics import LINK_ANGLE_OFFSETS, LINK_LENGTHS
from .scene import OMEGA_HIGH, OMEGA_LOW
from .simulator import TaskConfig, action_deltas

F32 = np.float32
LENGTHS, OFFSETS = LINK_LENGTHS.astype(F32), LINK_ANGLE_OFFSETS.astype(F32)
LOW, SPAN = OMEGA_LOW.astype(F32), (OMEGA_HIGH - OMEGA_LOW).astype(F32)


def tool_lengths(tool_length: float | None = None) -> np.ndarray:
    """The link lengths (float32), the last one ``tool_length`` m (None: the paper's tool)."""
    lengths = LENGTHS.copy()
    if tool_length is not None:
        lengths[2] = tool_length
    return lengths


def forward_kinematics(q: np.ndarray, lengths: np.ndarray = LENGTHS):
    """:func:`reach_core.control.forward_kinematics` in numpy float32: (ee, cos, sin) of the
    tool point that ``lengths`` (:func:`tool_lengths`) ends at."""
    beta = np.cumsum(q, axis=-1) + OFFSETS
    cos, sin = np.cos(beta), np.sin(beta)
    ee = np.stack([(lengths * cos).sum(-1), -(lengths * sin).sum(-1)], -1)
    return ee, cos, sin


def target_distance(omega: np.ndarray, lengths: np.ndarray = LENGTHS) -> np.ndarray:
    """Tool point to target distance (m) of normalised scenes (B, 5)."""
    phys = LOW + omega * SPAN
    return np.linalg.norm(phys[..., :2] - forward_kinematics(phys[..., 2:], lengths)[0], axis=-1)


class NumpyPolicy:
    """``act(omega, forbid=None)`` of a :class:`ControlPolicy`, in numpy (weights copied)."""

    def __init__(self, policy: ControlPolicy):
        net = policy.net
        self.task = policy.task
        self.encoding, self.kinematic, self.dueling = net.encoding, net.kinematic, net.dueling
        self.freqs = net.freqs.detach().cpu().numpy().astype(F32)
        self.deltas = action_deltas(TaskConfig.step).astype(F32)
        self.layers = [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
                       for m in list(net.trunk) + [net.head] if hasattr(m, "weight")]
        self.mask = policy.mask.cpu().numpy().astype(bool)
        self.hold_radius = float(policy.task.hold_radius)
        self.lengths = tool_lengths(net.tool_length)   # the tool point of the task it was trained for

    def kinematic_features(self, omega: np.ndarray) -> np.ndarray:
        """:meth:`QNetwork.kinematic_features` in numpy (B, 22)."""
        phys = LOW + omega * SPAN
        target, q = phys[:, :2], phys[:, 2:]
        ee, cos, sin = forward_kinematics(q, self.lengths)
        offset = target - ee
        dist = np.linalg.norm(offset, axis=-1, keepdims=True)
        fine = offset / (F32(0.1) + dist)
        q_next = np.minimum(np.maximum(q[:, None, :] + self.deltas, LOW[2:]), LOW[2:] + SPAN[2:])
        d_next = np.linalg.norm(target[:, None, :] - forward_kinematics(q_next, self.lengths)[0], axis=-1)
        gain = (d_next - dist) / F32(TaskConfig.step)
        return np.concatenate([ee, offset, fine, np.tanh(dist / F32(0.1)), cos, sin, gain], axis=-1)

    def inputs(self, omega: np.ndarray) -> np.ndarray:
        """:meth:`QNetwork.encode` in numpy: the network's input (B, width) of normalised scenes
        (B, 5) float32, Omega itself in its first five columns."""
        parts = [omega]
        if self.encoding:
            angles = (omega[:, :, None] * self.freqs).reshape(len(omega), -1)
            parts += [np.sin(angles), np.cos(angles)]
        if self.kinematic:
            parts.append(self.kinematic_features(omega))
        return np.concatenate(parts, axis=-1) if len(parts) > 1 else omega

    def q_values(self, omega: np.ndarray) -> np.ndarray:
        """Q-values (B, 9) of normalised scenes (B, 5) float32."""
        h = self.inputs(omega)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
        if not self.dueling:
            return h
        value, adv = h[:, :1], h[:, 1:]
        return value + adv - adv.mean(axis=-1, keepdims=True)

    def available(self, omega: np.ndarray) -> np.ndarray:
        """:func:`reach_core.control.available_actions` in numpy (B, 9)."""
        qn = omega[:, 2:5]
        avail = np.broadcast_to(self.mask, (len(omega), len(self.mask))).copy()
        avail[:, 0::3] &= qn < 1 - LIMIT_TOL
        avail[:, 1::3] &= qn > LIMIT_TOL
        if self.hold_radius > 0:
            avail[:, 2::3] &= (target_distance(omega, self.lengths) <= self.hold_radius)[:, None]
        return avail

    def act(self, omega, forbid=None):
        """Greedy actions as :meth:`ControlPolicy.act` (shape (5,) -> int, (B, 5) -> (B,))."""
        x = np.asarray(omega, dtype=F32)
        single = x.ndim == 1
        xb = x[None] if single else x
        avail = self.available(xb)
        if forbid is not None:
            narrowed = avail & ~np.broadcast_to(np.asarray(forbid, dtype=bool), avail.shape)
            avail = np.where(narrowed.any(axis=-1, keepdims=True), narrowed, avail)
        q = np.where(avail, self.q_values(xb), -np.inf)
        a = q.argmax(axis=-1)
        return a[0] if single else a
