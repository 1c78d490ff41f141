"""The reaching task as a vectorised environment (paper section 4: actions, reward Eq. 5, success).

A batch of ``num_envs`` independent trials is stepped at once with NumPy.  Each trial starts from a
random arm configuration ``q`` and a target ``x* = K(q*)`` placed at the end-effector of another
random configuration ``q*`` (Algorithm 1, lines 6-7), so that every target is reachable and the
desired configuration for K-GPS is known by construction.

Actions (9, as in the paper): action ``3*j + k`` moves joint ``j`` (0: s1, 1: e1, 2: w1) by
``+step`` (k = 0), ``-step`` (k = 1) or leaves it unchanged (k = 2).  In 1- and 2-DoF modes the
actions of the inactive joints are masked out (:attr:`ReachEnv.action_mask`); the paper's 1-DoF
mode moves only q2 (e1), 2-DoF moves q2 and q3.  Inactive joints keep a random value per trial.

Reward (Eq. 5) with d the end-effector to target distance after the action:
``gamma_r * (delta / d - 1)`` if ``d > delta``; ``0`` while ``d <= delta`` for fewer than ``N``
consecutive actions; ``1`` once it has been for ``N``: the trial then succeeds and ends.
A trial that has not succeeded after ``max_steps`` actions is truncated (a failure).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .kinematics import TARGET_BOX, PlanarArm, parse_tool, tool_arm
from .scene import normalise

NUM_ACTIONS = 9
ACTIVE_JOINTS = {1: (1,), 2: (1, 2), 3: (0, 1, 2)}


def action_deltas(step: float) -> np.ndarray:
    """Joint change of each of the 9 actions: shape (9, 3)."""
    deltas = np.zeros((NUM_ACTIONS, 3))
    for j in range(3):
        deltas[3 * j + 0, j] = step
        deltas[3 * j + 1, j] = -step
    return deltas


def action_mask(dof: int) -> np.ndarray:
    """Boolean mask of the actions available with ``dof`` active joints (paper 5.2)."""
    if dof not in ACTIVE_JOINTS:
        raise ValueError(f"dof must be 1, 2 or 3, got {dof!r}")
    mask = np.zeros(NUM_ACTIONS, dtype=bool)
    for j in ACTIVE_JOINTS[dof]:
        mask[3 * j: 3 * j + 3] = True
    return mask


@dataclass
class TaskConfig:
    """Parameters of the reaching task; the defaults are the paper's."""

    dof: int = 3
    step: float = 0.04            # rad per action
    delta: float = 0.05           # m, reaching threshold of Eq. 5 (also the success threshold)
    reward_scale: float = 1e-3    # gamma_r of Eq. 5
    success_steps: int = 4        # N of Eq. 5: consecutive actions within delta
    max_steps: int = 300          # actions per trial before it is truncated
    joint_margin: float = 0.0     # rad kept clear of the joint limits when sampling configurations
    hold_only_at_target: bool = False  # "unchanged" only within delta of the target (variant; the
                                       # paper allows it everywhere, where a greedy policy can stall)
    tool: str = "paper"           # the tool point that reaches the target (kinematics.TOOL_PRESETS
                                  # or a length in metres from w1)

    def __post_init__(self):
        self.tool = parse_tool(self.tool).name
        if self.dof not in ACTIVE_JOINTS:
            raise ValueError(f"dof must be 1, 2 or 3, got {self.dof!r}")
        for name in ("step", "delta", "reward_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.success_steps < 1 or self.max_steps < 1:
            raise ValueError("success_steps and max_steps must be at least 1")

    @property
    def hold_radius(self) -> float:
        """Distance within which "unchanged" is available (0: everywhere)."""
        return self.delta if self.hold_only_at_target else 0.0

    @property
    def arm(self) -> PlanarArm:
        """Baxter's left arm with this task's tool point (:func:`reach_core.kinematics.tool_arm`)."""
        return tool_arm(self.tool)

    def as_dict(self) -> dict:
        return asdict(self)


def reward(d: np.ndarray, n_within: np.ndarray, cfg: TaskConfig) -> np.ndarray:
    """Eq. 5 for distances ``d`` (m) and counts ``n_within`` of consecutive actions within delta."""
    d = np.asarray(d, dtype=np.float64)
    far = cfg.reward_scale * (cfg.delta / np.maximum(d, 1e-12) - 1.0)
    near = np.where(np.asarray(n_within) >= cfg.success_steps, 1.0, 0.0)
    return np.where(d > cfg.delta, far, near)


def success_bonus(terminated: np.ndarray, d: np.ndarray, bonus: float, cfg: TaskConfig) -> np.ndarray:
    """The training variant's extra success reward, ``bonus * (1 - d/delta)`` where a trial
    succeeded (0 elsewhere): added to Eq. 5 it makes a success closer to the target worth more."""
    return bonus * np.asarray(terminated) * (1.0 - np.asarray(d) / cfg.delta)


@dataclass
class StepResult:
    obs: np.ndarray          # (n, 5) float32 Omega after the step (of the new trial where one ended)
    reward: np.ndarray       # (n,) float64
    terminated: np.ndarray   # (n,) bool: success (the trial ended in the goal)
    truncated: np.ndarray    # (n,) bool: step limit reached without success
    final_obs: np.ndarray    # (n, 5) float32 Omega after the step, before any automatic reset
    distance: np.ndarray     # (n,) m, end-effector to target after the step
    info: dict = field(default_factory=dict)


class ReachEnv:
    """``num_envs`` reaching trials stepped together; trials that end start again automatically."""

    def __init__(self, num_envs: int = 1, cfg: TaskConfig | None = None, seed: int | None = None,
                 arm: PlanarArm | None = None, auto_reset: bool = True):
        if num_envs < 1:
            raise ValueError("num_envs must be at least 1")
        self.n = int(num_envs)
        self.cfg = cfg or TaskConfig()
        self.arm = arm = self.cfg.arm if arm is None else arm
        self.auto_reset = auto_reset
        self.rng = np.random.default_rng(seed)
        self.deltas = action_deltas(self.cfg.step)
        self.action_mask = action_mask(self.cfg.dof)
        self.active = np.zeros(3, dtype=bool)
        self.active[list(ACTIVE_JOINTS[self.cfg.dof])] = True
        lim = arm.joint_limits
        self.q_low = lim[:, 0] + self.cfg.joint_margin
        self.q_high = lim[:, 1] - self.cfg.joint_margin
        self.q = np.zeros((self.n, 3))
        self.q_star = np.zeros((self.n, 3))
        self.target = np.zeros((self.n, 2))
        self.n_within = np.zeros(self.n, dtype=np.int64)
        self.t = np.zeros(self.n, dtype=np.int64)
        self.reset()

    # ----------------------------------------------------------------------------------------
    def sample_scenes(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Random (q, q*) pairs: active joints differ, inactive joints are shared (Algorithm 1)."""
        q = self.rng.uniform(self.q_low, self.q_high, size=(k, 3))
        q_star = self.rng.uniform(self.q_low, self.q_high, size=(k, 3))
        q_star[:, ~self.active] = q[:, ~self.active]
        if self.arm.reach > TARGET_BOX:   # a long tool: its targets stay in the Omega square
            q_star = self.arm.keep_in_box(q_star, lambda rows: self._redraw(q[rows]))
        return q, q_star

    def _redraw(self, q: np.ndarray) -> np.ndarray:
        """New q* for the scenes of configurations ``q``: active joints drawn, inactive kept."""
        q_star = self.rng.uniform(self.q_low, self.q_high, size=q.shape)
        q_star[:, ~self.active] = q[:, ~self.active]
        return q_star

    def reset(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Start new trials (all, or those in ``idx``) and return the whole batch's Omega."""
        idx = np.arange(self.n) if idx is None else np.asarray(idx)
        if idx.size:
            q, q_star = self.sample_scenes(idx.size)
            self.set_scenes(q, self.arm.forward(q_star), q_star, idx)
        return self.observe()

    def set_scenes(self, q: np.ndarray, target: np.ndarray, q_star: np.ndarray | None = None,
                   idx: np.ndarray | None = None) -> None:
        """Place given configurations and targets (metres, radians) into trials ``idx``."""
        idx = np.arange(self.n) if idx is None else np.asarray(idx)
        q = self.arm.check_joints(np.broadcast_to(q, (idx.size, 3)))
        target = np.broadcast_to(np.asarray(target, dtype=np.float64), (idx.size, 2))
        if not np.all(np.isfinite(target)):
            raise ValueError("target contains NaN or infinity")
        if np.any(np.linalg.norm(target, axis=-1) > self.arm.reach + 1e-9):
            raise ValueError(f"target is out of the arm's reach ({self.arm.reach:.3f} m from s1)")
        self.q[idx] = q
        self.target[idx] = target
        self.q_star[idx] = np.nan if q_star is None else q_star
        self.n_within[idx] = 0
        self.t[idx] = 0

    def observe(self) -> np.ndarray:
        return normalise(self.target, self.q)

    def distance(self) -> np.ndarray:
        return np.linalg.norm(self.arm.forward(self.q) - self.target, axis=-1)

    # ----------------------------------------------------------------------------------------
    def available_actions(self) -> np.ndarray:
        """(n, 9) bool: the DoF's actions less the moves of a joint at a limit towards it.

        Such a move is clamped to a no-op.  "Unchanged" is available everywhere, or with
        ``hold_only_at_target`` only within ``delta`` of the target.
        """
        avail = np.broadcast_to(self.action_mask, (self.n, NUM_ACTIONS)).copy()
        tol = 1e-5 * (self.q_high - self.q_low)
        avail[:, 0::3] &= self.q < self.q_high - tol
        avail[:, 1::3] &= self.q > self.q_low + tol
        if self.cfg.hold_radius > 0:
            avail[:, 2::3] &= (self.distance() <= self.cfg.hold_radius)[:, None]
        return avail

    def kgps_actions(self) -> np.ndarray:
        """K-GPS (Eq. 6): the available action whose result is closest to q* in joint space."""
        if np.any(np.isnan(self.q_star)):
            raise RuntimeError("K-GPS needs q*; these trials were set without one")
        nxt = np.clip(self.q[:, None, :] + self.deltas[None], self.q_low, self.q_high)
        cost = np.linalg.norm(nxt - self.q_star[:, None, :], axis=-1)
        cost[~self.available_actions()] = np.inf
        return np.argmin(cost, axis=1)

    def random_actions(self) -> np.ndarray:
        """A uniformly random available action per trial (the epsilon-greedy guide)."""
        avail = self.available_actions()
        pick = self.rng.random((self.n, NUM_ACTIONS)) * avail
        return np.argmax(pick, axis=1)

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions)
        if actions.shape != (self.n,):
            raise ValueError(f"expected {self.n} actions, got shape {actions.shape}")
        if np.any((actions < 0) | (actions >= NUM_ACTIONS)) or not np.all(self.action_mask[actions]):
            raise ValueError(f"invalid action for a {self.cfg.dof}-DoF task: {actions}")
        cfg = self.cfg
        self.q = np.clip(self.q + self.deltas[actions], self.q_low, self.q_high)
        self.t += 1
        d = self.distance()
        within = d <= cfg.delta
        self.n_within = np.where(within, self.n_within + 1, 0)
        r = reward(d, self.n_within, cfg)
        terminated = self.n_within >= cfg.success_steps
        truncated = ~terminated & (self.t >= cfg.max_steps)
        final_obs = self.observe()
        done = terminated | truncated
        info = {"steps": self.t.copy()}
        if self.auto_reset and np.any(done):
            self.reset(np.flatnonzero(done))
        obs = self.observe() if self.auto_reset else final_obs
        return StepResult(obs, r, terminated, truncated, final_obs, d, info)
