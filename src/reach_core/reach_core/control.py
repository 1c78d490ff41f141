"""The control module (paper sections 3.1 and 4, "Network architecture"): Omega -> 9 Q-values.

The paper's network is fully connected 5 -> 400 -> 300 -> 9 with ReLUs; other hidden sizes are
allowed through ``hidden``.  A checkpoint is a plain dictionary saved with ``torch.save`` that holds
the weights and everything needed to rebuild and check the network (architecture, task), so a
trained model loads by path alone: ``ControlPolicy.load(path)`` (the save/load contract of
:mod:`reach_core.checkpoints`, whose ``CheckpointError``, ``load_checkpoint`` and ``save_atomic``
this module re-exports for the code that imported them from here).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .checkpoints import (CONTROL_FORMAT, END2END_FORMAT, Checkpointable, CheckpointError, check_format,
                          cpu_state, load_checkpoint, load_weights, part_of, save_atomic)
from .kinematics import JOINT_LIMITS, LINK_ANGLE_OFFSETS, LINK_LENGTHS, TOOL_PRESETS
from .scene import OMEGA_HIGH, OMEGA_LOW, denormalise
from .simulator import NUM_ACTIONS, TaskConfig, action_deltas, action_mask

PAPER_TOOL = TOOL_PRESETS["paper"]  # m from w1: the end-effector of the paper (and shipped models)
ACTION_STEP = TaskConfig.step  # rad per action, for the kinematic look-ahead features

CHECKPOINT_FORMAT = CONTROL_FORMAT
PAPER_HIDDEN = (400, 300)
__all__ = ["CHECKPOINT_FORMAT", "END2END_FORMAT", "PAPER_HIDDEN", "CheckpointError", "ControlPolicy",
           "NoRevisit", "QNetwork", "available_actions", "forward_kinematics", "load_checkpoint",
           "load_control", "masked_argmax", "save_atomic", "target_distance"]


_CONSTANTS: dict = {}


def _constant(key, values, like: torch.Tensor) -> torch.Tensor:
    """``values`` as a tensor of ``like``'s dtype and device, made once per key, dtype and device:
    a fresh ``torch.as_tensor`` at every call would copy from the host each time, which on CUDA
    waits for the stream and cannot be captured in a CUDA graph."""
    k = (key, like.dtype, like.device)
    t = _CONSTANTS.get(k)
    if t is None:
        t = torch.as_tensor(np.asarray(values, np.float64), dtype=like.dtype, device=like.device)
        _CONSTANTS[k] = t
    return t


def forward_kinematics(q: torch.Tensor, tool_length: float = PAPER_TOOL
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Baxter's planar forward kinematics in torch (differentiable): tool point (..., 2) in
    metres, ``tool_length`` from w1, and cos/sin of the three link directions; same model as
    :mod:`reach_core.kinematics` (:meth:`~reach_core.kinematics.PlanarArm.with_tool`)."""
    lengths = _constant(("lengths", float(tool_length)), [*LINK_LENGTHS[:2], tool_length], q)
    beta = torch.cumsum(q, dim=-1) + _constant("offsets", LINK_ANGLE_OFFSETS, q)
    # (the paper's last link has no angle offset: a = 0, so a tool along the hand keeps it)
    cos, sin = torch.cos(beta), torch.sin(beta)
    ee = torch.stack([(lengths * cos).sum(-1), -(lengths * sin).sum(-1)], -1)
    return ee, cos, sin


def target_distance(omega: torch.Tensor, tool_length: float = PAPER_TOOL) -> torch.Tensor:
    """Tool point to target distance (metres) of normalised scene configurations."""
    low = _constant("omega_low", OMEGA_LOW, omega)
    span = _constant("omega_span", OMEGA_HIGH - OMEGA_LOW, omega)
    phys = low + omega * span
    return (phys[..., :2] - forward_kinematics(phys[..., 2:], tool_length)[0]).norm(dim=-1)


class QNetwork(nn.Module):
    """Fully connected Q-network: Omega (5) -> hidden ReLU layers -> one Q-value per action (9).

    ``encoding=K`` is a variant that feeds the MLP Omega together with sin/cos features at K
    octaves (positional encoding, Tancik et al. 2020), which lets a small MLP resolve the
    centimetre-scale detail of the Q-function near the target much sooner.
    ``dueling=True`` is a variant (Wang et al. 2016): the last hidden layer feeds a state value V
    and action advantages A, and Q = V + A - mean(A).  It suits this task, where the Q-values of
    the actions differ by a fraction of a percent of their size.
    ``kinematic=True`` is a variant that appends fixed features computed from Omega by Baxter's
    planar forward kinematics (:mod:`reach_core.kinematics`, written here in torch so gradients
    still reach Omega for end-to-end fine-tuning): the end-effector position, the end-effector to
    target offset at a coarse and a fine scale, its length, sin/cos of the link directions, and
    for each of the 9 actions how much it would change the end-effector to target distance
    (a one-step look-ahead through K, with the joint limits).  The input is still the 5-D Omega;
    the network no longer has to learn K(q) to centimetres, and still has to learn the task's
    returns (when to stop, which joint to move near the limits, the N-step success rule).
    ``tool_length`` is the tool point of those features (metres from w1; the task's tool).
    """

    NUM_KINEMATIC = 13 + NUM_ACTIONS

    def __init__(self, hidden: tuple[int, ...] = PAPER_HIDDEN, dueling: bool = False,
                 encoding: int = 0, kinematic: bool = False, in_dim: int = 5,
                 num_actions: int = NUM_ACTIONS, tool_length: float = PAPER_TOOL):
        super().__init__()
        self.tool_length = float(tool_length)
        self.hidden = tuple(int(h) for h in hidden)
        self.dueling = bool(dueling)
        self.encoding = int(encoding)
        self.kinematic = bool(kinematic)
        self.register_buffer("freqs", torch.pi * 2.0 ** torch.arange(self.encoding, dtype=torch.float32),
                             persistent=False)
        for name, value in (("omega_low", OMEGA_LOW), ("omega_span", OMEGA_HIGH - OMEGA_LOW),
                            ("deltas", action_deltas(ACTION_STEP))):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32), persistent=False)
        layers: list[nn.Module] = []
        width = in_dim * (1 + 2 * self.encoding) + (self.NUM_KINEMATIC if self.kinematic else 0)
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_actions + (1 if self.dueling else 0))

    def encode(self, omega: torch.Tensor) -> torch.Tensor:
        """Omega, then sin and cos of pi * 2^k * Omega for k < encoding, then kinematic features."""
        parts = [omega]
        if self.encoding:
            angles = (omega[..., :, None] * self.freqs).flatten(-2)
            parts += [torch.sin(angles), torch.cos(angles)]
        if self.kinematic:
            parts.append(self.kinematic_features(omega))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def kinematic_features(self, omega: torch.Tensor) -> torch.Tensor:
        """Forward-kinematics features of Omega (22 values, each of order one)."""
        phys = self.omega_low + omega * self.omega_span
        target, q = phys[..., :2], phys[..., 2:]
        ee, cos, sin = forward_kinematics(q, self.tool_length)
        offset = target - ee                                   # metres
        dist = offset.norm(dim=-1, keepdim=True)
        fine = offset / (0.1 + dist)                           # direction, resolved near the target
        lo, hi = self.omega_low[2:], self.omega_low[2:] + self.omega_span[2:]
        q_next = torch.minimum(torch.maximum(q[..., None, :] + self.deltas, lo), hi)
        d_next = (target[..., None, :] - forward_kinematics(q_next, self.tool_length)[0]).norm(dim=-1)
        gain = (d_next - dist) / ACTION_STEP                   # metres per radian of step, ~[-1, 1]
        return torch.cat([ee, offset, fine, torch.tanh(dist / 0.1), cos, sin, gain], dim=-1)

    def forward(self, omega: torch.Tensor) -> torch.Tensor:
        return self.forward_encoded(self.encode(omega))

    def forward_encoded(self, x: torch.Tensor) -> torch.Tensor:
        """Q-values from the network's input :meth:`encode` (Omega) -- a fixed function of Omega
        without weights, which a replay memory can compute once per transition instead of at every
        forward pass (:class:`reach_core.control_replay.ReplayMemory`)."""
        out = self.head(self.trunk(x))
        if not self.dueling:
            return out
        value, adv = out[..., :1], out[..., 1:]
        return value + adv - adv.mean(dim=-1, keepdim=True)


def masked_argmax(q_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Greedy action among the available ones (``mask``: bool, shape (9,) or (B, 9))."""
    return q_values.masked_fill(~mask, float("-inf")).argmax(dim=-1)


LIMIT_TOL = 1e-5  # normalised joint angle within which a joint counts as at its limit


def available_actions(omega: torch.Tensor, dof_mask: torch.Tensor, hold_radius: float = 0.0,
                      tool_length: float = PAPER_TOOL) -> torch.Tensor:
    """Actions available in scene ``omega``: shape (B, 9) bool.

    The actions of the inactive joints (``dof_mask``) and the moves of a joint that is already at
    a joint limit towards that limit are unavailable: such a move would leave the arm where it is
    (the simulator and the bridge clamp to the limits) and a greedy policy could stall on it.
    With ``hold_radius > 0`` (:attr:`TaskConfig.hold_only_at_target`) "unchanged" is available
    only within that distance of the target (of the tool point ``tool_length`` m from w1).  Same
    rules as
    :meth:`reach_core.simulator.ReachEnv.available_actions`, from Omega.
    """
    qn = omega[..., 2:5]
    avail = dof_mask.expand(*omega.shape[:-1], NUM_ACTIONS).clone()
    avail[..., 0::3] &= qn < 1 - LIMIT_TOL
    avail[..., 1::3] &= qn > LIMIT_TOL
    if hold_radius > 0:
        avail[..., 2::3] &= (target_distance(omega, tool_length) <= hold_radius)[..., None]
    return avail


@dataclass
class ControlPolicy(Checkpointable):
    """A Q-network with the task it was trained for; the unit that is saved, loaded and run
    (``save(path)``, ``ControlPolicy.load(path, dof=None)``:
    :class:`reach_core.checkpoints.Checkpointable`)."""

    FORMAT = CHECKPOINT_FORMAT

    net: QNetwork
    task: TaskConfig
    meta: dict

    @property
    def mask(self) -> torch.Tensor:
        return torch.as_tensor(action_mask(self.task.dof))

    @torch.no_grad()
    def act(self, omega: np.ndarray, forbid: np.ndarray | None = None) -> np.ndarray:
        """Greedy actions for normalised scene configurations (shape (5,) or (B, 5)).

        ``forbid`` (bool, shape (9,) or (B, 9)) makes actions unavailable on top of the usual
        availability (:func:`available_actions`), e.g. the loop breaker :class:`NoRevisit`.  A
        scene where it would leave no action at all ignores it: that scene gets the plain greedy
        choice.
        """
        device = next(self.net.parameters()).device
        x = torch.as_tensor(np.asarray(omega, dtype=np.float32), device=device)
        single = x.ndim == 1
        xb = x[None] if single else x
        avail = available_actions(xb, self.mask.to(device), self.task.hold_radius,
                                  self.task.arm.tool_length)
        if forbid is not None:
            fb = torch.as_tensor(np.broadcast_to(np.asarray(forbid, dtype=bool), avail.shape).copy(),
                                 device=device)
            narrowed = avail & ~fb
            keep = narrowed.any(dim=-1, keepdim=True)
            avail = torch.where(keep, narrowed, avail)
        a = masked_argmax(self.net(xb), avail).cpu().numpy()
        return a[0] if single else a

    # ---------------------------------------------------------------------------------------
    def _payload(self) -> dict:
        return {"arch": {"hidden": list(self.net.hidden), "dueling": self.net.dueling,
                         "encoding": self.net.encoding, "kinematic": self.net.kinematic, "in_dim": 5,
                         "num_actions": NUM_ACTIONS},
                "task": self.task.as_dict(), "model": cpu_state(self.net)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, source: str = "checkpoint",
                        dof: int | None = None) -> "ControlPolicy":
        """Rebuild a policy from a loaded ``reach.control/1`` dictionary, checking it fits."""
        check_format(ckpt, CHECKPOINT_FORMAT, source, "control")
        try:
            arch = ckpt["arch"]
            task = TaskConfig(**ckpt["task"])
            hidden = tuple(arch["hidden"])
            dueling = bool(arch.get("dueling", False))
            encoding = int(arch.get("encoding", 0))
            kinematic = bool(arch.get("kinematic", False))
            if arch.get("in_dim", 5) != 5 or arch.get("num_actions", NUM_ACTIONS) != NUM_ACTIONS:
                raise CheckpointError(f"{source} has input/output sizes {arch}, expected 5 -> 9")
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{source} has a malformed header: {err}") from None
        if dof is not None and task.dof != dof:
            raise CheckpointError(f"{source} is a {task.dof}-DoF controller, a {dof}-DoF one was asked for")
        net = QNetwork(hidden, dueling, encoding, kinematic, tool_length=task.arm.tool_length)
        load_weights(net, ckpt, source,
                     f"a Q-network with hidden layers {hidden}{' (dueling)' if dueling else ''}")
        net.eval()
        return cls(net, task, dict(ckpt.get("meta", {})))


class NoRevisit:
    """A controller that never moves to a joint configuration its trial has already visited.

    Why: the task is deterministic and a greedy policy is a function of Omega, so a trial that
    comes back to a configuration repeats the same cycle until the step limit.  The greedy policy
    of an exact Q-function is optimal and reaches the target, so it never loops; a trained
    network approximates Q, and where its Q-values are slightly wrong the greedy policy settles
    into a loop: a 2-cycle (a move and its reverse) or a 4-cycle (a square over two joints), and
    the arm dithers until the step limit.  Those loops are approximation error.  Revisiting a
    configuration is never needed to reach the target (cutting the cycle out of a path that
    revisits leaves a shorter path to the same place), so forbidding it loses nothing and breaks
    every loop: the policy takes its best move that leads somewhere new.  "Unchanged" (holding at
    the target) is never forbidden, and a scene where every move would revisit falls back to the
    plain greedy choice (:meth:`ControlPolicy.act` with ``forbid``).

    Each trial's visited joint configurations (the ``q`` of every Omega it was called with) are
    kept in :attr:`visited`, an array (B, T, 3) in radians that grows by one row per call.  An
    action is forbidden when its next configuration (q + the action's delta, clipped to the joint
    limits) is within ``tolerance`` (max-norm, radians) of a visited one.  The default tolerance is
    half an action step (``task.step / 2``): on a real arm the measured angles carry noise, and a
    configuration seen again is not measured exactly the same; half a step tells "the same
    configuration, measured again" from "one step away".

    With ``odometry=True`` the visited configurations are not the estimated ones but the first
    estimate of the trial plus the moves the controller has commanded (:meth:`moved`): with joint
    angles estimated from images (end-to-end), the estimates of one configuration differ by more
    than half a step from frame to frame, so a loop is not recognised in them; the commands are
    exact.

    It is a rule of the controller, not of training.  Use:

    * for a batch of trials, like a policy: ``NoRevisit(policy)(omega_batch) -> actions``
      (:func:`reach_core.evaluation.run_trials`); the batch size is fixed until :meth:`reset`;
    * from a single-trial controller (the ROS controller node): call it with one Omega of shape
      (5,) at a time, it returns one ``int``;

    and :meth:`reset` (or a new instance) before new trials.
    """

    def __init__(self, policy: ControlPolicy, tolerance: float | None = None, odometry: bool = False):
        self.policy = policy
        self.odometry = bool(odometry)
        self._odo: np.ndarray | None = None                           # (B, 3) rad, with odometry
        self.tolerance = policy.task.step / 2 if tolerance is None else float(tolerance)
        if not 0 <= self.tolerance < policy.task.step:
            # every move ends one step from the current (visited) configuration
            raise ValueError(f"tolerance must be in [0, step = {policy.task.step:g}) rad, got "
                             f"{tolerance!r}: a tolerance of a step or more forbids every move")
        self.deltas = action_deltas(policy.task.step)                 # (9, 3) rad
        self.moves = np.flatnonzero(np.abs(self.deltas).sum(-1) > 0)  # all but "unchanged"
        self._buffer: np.ndarray | None = None                        # (B, capacity, 3)
        self._count = 0

    @property
    def visited(self) -> np.ndarray | None:
        """The joint configurations visited by each trial so far: (B, T, 3) radians (None
        before the first call)."""
        return None if self._buffer is None else self._buffer[:, :self._count]

    def reset(self) -> None:
        """Forget the visited configurations: the next call starts new trials."""
        self._buffer, self._count = None, 0
        self._odo = None

    def moved(self, actions) -> None:
        """With ``odometry``: advance each trial's configuration by the action it was commanded
        (clipped to the joint limits); call it after every :meth:`visit`.  Without: nothing."""
        if self.odometry and self._odo is not None:
            a = np.atleast_1d(np.asarray(actions, dtype=np.int64))
            self._odo = np.clip(self._odo + self.deltas[a], JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])

    def visit(self, omega: np.ndarray) -> np.ndarray:
        """Record the joint configurations of ``omega`` (B, 5) as visited and return the actions
        that would lead back to a visited configuration: bool (B, 9)."""
        omega = np.asarray(omega, dtype=np.float64)
        if omega.ndim != 2 or omega.shape[-1] != 5:
            raise ValueError(f"Omega batch of shape (B, 5) expected, got {omega.shape}")
        _, q = denormalise(omega)
        b = len(q)
        if self.odometry:
            # the configuration by dead reckoning: the first one seen plus the commanded moves
            # (moved()); estimated angles jitter by more than the tolerance, commands do not
            if self._odo is None or len(self._odo) != b:
                self._odo = q.copy()
            q = self._odo
        if self._buffer is None:
            self._buffer, self._count = np.empty((b, 16, 3)), 0
        elif self._buffer.shape[0] != b:
            raise ValueError(f"NoRevisit holds {self._buffer.shape[0]} trials, got a batch of {b}; "
                             "reset() to start new trials")
        if self._count == self._buffer.shape[1]:  # grow (doubling: amortised O(1) per call)
            self._buffer = np.concatenate([self._buffer, np.empty_like(self._buffer)], axis=1)
        self._buffer[:, self._count] = q
        self._count += 1
        visited = self.visited
        nxt = np.clip(q[:, None, :] + self.deltas[None], JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])
        forbid = np.zeros((b, len(self.deltas)), dtype=bool)
        for k in self.moves:  # one action at a time keeps the temporary at (B, T, 3)
            near = np.abs(visited - nxt[:, None, k]).max(axis=-1) <= self.tolerance
            forbid[:, k] = near.any(axis=-1)
        return forbid

    def __call__(self, omega: np.ndarray) -> np.ndarray | int:
        """Actions for Omega (B, 5) of the B trials, or one ``int`` for one Omega (5,)."""
        omega = np.asarray(omega, dtype=np.float32)
        single = omega.ndim == 1
        ob = omega[None] if single else omega
        actions = self.policy.act(ob, forbid=self.visit(ob))
        self.moved(actions)
        return int(actions[0]) if single else actions


def load_control(path: str | os.PathLike, dof: int | None = None) -> ControlPolicy:
    """The controller at ``path``: a control checkpoint, or the control half of a combined
    end-to-end checkpoint ("reach.end2end/1", e.g. ``end2end_ee2ft.pt``).  Light on purpose (no
    perception code is imported): the ROS controller node and the trial runner use it."""
    ckpt, source = part_of(load_checkpoint(path), "control", str(path))
    return ControlPolicy.from_checkpoint(ckpt, source, dof=dof)
