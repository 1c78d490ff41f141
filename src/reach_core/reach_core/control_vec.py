"""Vectorised control training: thousands of trials, the replay memory and the updates on one
torch device (``cuda`` or ``cpu``), the same command on both (issue 19, control part).

The algorithm is :mod:`reach_core.control_training`'s (paper section 4, Algorithm 1): epsilon
decays linearly; an exploratory action comes from the K-GPS guide (Eq. 6) or, for the baseline,
is uniformly random; the reward is Eq. 5; the transitions go to a replay memory and the
Q-network (default the paper's 5-400-300-9 MLP) is updated by double DQN against a Polyak-averaged
target network.  What changes is where it runs: the environment is :class:`TorchReachEnv`, a torch
re-implementation of :class:`reach_core.simulator.ReachEnv` (same kinematics, limits,
availability, K-GPS, Eq. 5, success and truncation rules; tests/test_control_vec.py checks it
transition by transition), the replay memory is :class:`DeviceReplay` (tensors on the device),
and nothing goes back to the host inside an iteration (trials that end are reset with
``torch.where``, not with an index list) except the counters the loop needs.  This is the
CleanRL/PureJaxRL shape: one loop, top to bottom.

Same run folder and files as ``reach train control`` (``config.json``, ``model.pt``,
``best.pt``, ``checkpoint.pt``, ``progress.csv``, ``metrics.json``, ``learning_curve.png``), and
the same periodic evaluation protocol (:func:`reach_core.control_training._evaluate`), run on the
device (:func:`run_trials_on_device`, :func:`reach_core.evaluation.run_trials`' protocol on
:class:`TorchReachEnv`); ``model.pt`` is a ``reach.control/1`` checkpoint
that ``reach eval control`` loads.  Usage::

    reach train control --vectorised --envs 4096 --device cuda --config control_vec_dof3 --out runs/v3

Supported :class:`~reach_core.control_training.TrainConfig` options: everything (n-step returns
included, :class:`VecNStep`) but ``noop_augment``, ``action_gap``, ``guide_margin`` and resuming,
which are refused with a clear error rather than silently ignored.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoints import CheckpointError
from .control import available_actions, masked_argmax
from .control_training import (Learner, Progress, TrainConfig, _evaluate_and_report, _finish, _init_weights,
                               _save_checkpoint)
from .evaluation import EvalResult
from .kinematics import TARGET_BOX, PlanarArm
from .optim import set_lr
from .runs import Run
from .scene import OMEGA_HIGH, OMEGA_LOW
from .simulator import ACTIVE_JOINTS, NUM_ACTIONS, TaskConfig, action_deltas, action_mask

UNSUPPORTED = {"noop_augment": 0.0, "action_gap": 0.0, "guide_margin": 0.0}


class TorchReachEnv:
    """``num_envs`` reaching trials on a torch device; trials that end restart automatically.

    The state (``q``, ``q_star``, ``target``, ``n_within``, ``t``) is a set of tensors with the
    meaning of :class:`~reach_core.simulator.ReachEnv`'s arrays.  Actions are not validated (that
    would need a host sync every step): give available ones (:meth:`available_actions`).
    """

    def __init__(self, num_envs: int, cfg: TaskConfig, device="cpu", dtype=torch.float32,
                 seed: int = 0, arm: PlanarArm | None = None, auto_reset: bool = True):
        self.n, self.cfg, self.auto_reset = int(num_envs), cfg, auto_reset
        arm = cfg.arm if arm is None else arm
        self.long_tool = arm.reach > TARGET_BOX   # targets must be kept in the Omega square
        self.dev, self.dtype = torch.device(device), dtype
        self.gen = torch.Generator(device=self.dev).manual_seed(int(seed))

        def t(x):
            return torch.as_tensor(np.asarray(x, np.float64), dtype=dtype, device=self.dev)
        self.deltas = t(action_deltas(cfg.step))
        self.action_mask = torch.as_tensor(action_mask(cfg.dof), device=self.dev)
        active = np.zeros(3, bool)
        active[list(ACTIVE_JOINTS[cfg.dof])] = True
        self.active = torch.as_tensor(active, device=self.dev)
        lim = arm.joint_limits
        self.q_low, self.q_high = t(lim[:, 0] + cfg.joint_margin), t(lim[:, 1] - cfg.joint_margin)
        self.tol = 1e-5 * (self.q_high - self.q_low)
        self.lengths, self.offsets = t(arm.link_lengths), t(arm.angle_offsets)
        self.omega_low, self.omega_span = t(OMEGA_LOW), t(OMEGA_HIGH - OMEGA_LOW)
        z = torch.zeros((self.n, 3), dtype=dtype, device=self.dev)
        self.q, self.q_star, self.target = z.clone(), z.clone(), z[:, :2].clone()
        self.n_within = torch.zeros(self.n, dtype=torch.int64, device=self.dev)
        self.t = torch.zeros_like(self.n_within)
        self.reset(torch.ones(self.n, dtype=torch.bool, device=self.dev))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """End-effector positions K(q), (..., 2) metres (:meth:`PlanarArm.forward`)."""
        beta = torch.cumsum(q, dim=-1) + self.offsets
        return torch.stack([(self.lengths * torch.cos(beta)).sum(-1),
                            -(self.lengths * torch.sin(beta)).sum(-1)], dim=-1)

    def reset(self, done: torch.Tensor) -> None:
        """New trials where ``done`` (bool, (n,)): random q and q*, target K(q*) (Algorithm 1,
        lines 6-7); inactive joints share one random value."""
        span = self.q_high - self.q_low
        shape = (self.n, 3)
        q = self.q_low + span * torch.rand(shape, generator=self.gen, device=self.dev, dtype=self.dtype)
        qs = self.q_low + span * torch.rand(shape, generator=self.gen, device=self.dev, dtype=self.dtype)
        qs = torch.where(self.active, qs, q)
        if self.long_tool:
            qs = self._keep_in_box(qs, q)
        d = done[:, None]
        self.q = torch.where(d, q, self.q)
        self.q_star = torch.where(d, qs, self.q_star)
        self.target = torch.where(d, self.forward(qs), self.target)
        self.n_within = torch.where(done, 0, self.n_within)
        self.t = torch.where(done, 0, self.t)

    def _keep_in_box(self, qs: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``qs`` with the configurations whose tool point is outside the Omega square redrawn
        (a long tool; :meth:`reach_core.kinematics.PlanarArm.keep_in_box`)."""
        box = float(self.omega_span[0]) / 2
        for _ in range(1000):
            bad = (self.forward(qs).abs() > box).any(-1)
            if not bool(bad.any()):
                return qs
            new = self.q_low + (self.q_high - self.q_low) * torch.rand(
                qs.shape, generator=self.gen, device=self.dev, dtype=self.dtype)
            qs = torch.where(bad[:, None], torch.where(self.active, new, q), qs)
        raise RuntimeError("no target configuration inside the Omega square after 1000 draws")

    def observe(self) -> torch.Tensor:
        """Omega in [0, 1], (n, 5) float32 (:func:`reach_core.scene.normalise`)."""
        phys = torch.cat([self.target, self.q], dim=-1)
        return ((phys - self.omega_low) / self.omega_span).float()

    def distance(self) -> torch.Tensor:
        return (self.forward(self.q) - self.target).norm(dim=-1)

    def available_actions(self) -> torch.Tensor:
        """(n, 9) bool, the rules of :meth:`ReachEnv.available_actions`."""
        avail = self.action_mask.expand(self.n, NUM_ACTIONS).clone()
        avail[:, 0::3] &= self.q < self.q_high - self.tol
        avail[:, 1::3] &= self.q > self.q_low + self.tol
        if self.cfg.hold_radius > 0:
            avail[:, 2::3] &= (self.distance() <= self.cfg.hold_radius)[:, None]
        return avail

    def kgps_actions(self) -> torch.Tensor:
        """K-GPS (Eq. 6): the available action whose result is closest to q* in joint space."""
        nxt = torch.minimum(torch.maximum(self.q[:, None, :] + self.deltas, self.q_low), self.q_high)
        cost = (nxt - self.q_star[:, None, :]).norm(dim=-1)
        return cost.masked_fill(~self.available_actions(), float("inf")).argmin(dim=1)

    def random_actions(self) -> torch.Tensor:
        """A uniformly random available action per trial (the epsilon-greedy guide)."""
        pick = torch.rand((self.n, NUM_ACTIONS), generator=self.gen, device=self.dev)
        return (pick * self.available_actions()).argmax(dim=1)

    def step(self, actions: torch.Tensor) -> dict:
        """Apply ``actions`` ((n,) int64): the next Omega (of the new trial where one ended),
        Eq. 5's reward, ``terminated`` (success), ``truncated``, ``final_obs`` (before the
        reset) and ``distance``, as :class:`~reach_core.simulator.StepResult`'s fields."""
        cfg = self.cfg
        self.q = torch.minimum(torch.maximum(self.q + self.deltas[actions], self.q_low), self.q_high)
        self.t = self.t + 1
        d = self.distance()
        within = d <= cfg.delta
        self.n_within = torch.where(within, self.n_within + 1, 0)
        far = cfg.reward_scale * (cfg.delta / d.clamp(min=1e-12) - 1.0)
        near = (self.n_within >= cfg.success_steps).to(d.dtype)
        reward = torch.where(within, near, far)
        terminated = self.n_within >= cfg.success_steps
        truncated = ~terminated & (self.t >= cfg.max_steps)
        final_obs = self.observe()
        if self.auto_reset:
            self.reset(terminated | truncated)
        return {"obs": self.observe(), "reward": reward, "terminated": terminated,
                "truncated": truncated, "final_obs": final_obs, "distance": d}


class DeviceReplay:
    """Circular replay memory D of (Omega, a, r, Omega', discount), all tensors on the device.
    ``discount`` is gamma^k after k steps (:class:`VecNStep`; one step: Eq. 3), 0 after a success."""

    FIELDS = ("obs", "action", "reward", "next_obs", "discount")

    def __init__(self, size: int, device):
        self.size, self.pos, self.count = int(size), 0, 0
        dev = torch.device(device)
        self.obs = torch.zeros((size, 5), device=dev)
        self.next_obs = torch.zeros((size, 5), device=dev)
        self.action = torch.zeros(size, dtype=torch.int64, device=dev)
        self.reward = torch.zeros(size, device=dev)
        self.discount = torch.zeros(size, device=dev)
        self.dev = dev

    def __len__(self) -> int:
        return self.count

    def add(self, obs, action, reward, next_obs, discount) -> None:
        """Append a batch of transitions (the oldest are overwritten once full)."""
        n = len(action)
        idx = (self.pos + torch.arange(n, device=self.dev)) % self.size
        for name, value in zip(self.FIELDS, (obs, action, reward, next_obs, discount)):
            getattr(self, name)[idx] = value.to(getattr(self, name).dtype)
        self.pos = (self.pos + n) % self.size
        self.count = min(self.size, self.count + n)

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(0, self.count, (batch,), generator=gen, device=self.dev)
        return tuple(getattr(self, name)[idx] for name in self.FIELDS)


class VecNStep:
    """n-step returns for all trials at once, on the device: the transitions of
    :class:`~reach_core.control_replay.NStep` (the CPU trainer's), emitted in another order.

    A window holds every trial's last ``n`` steps (Omega, a, r, the Omega after the step, and
    whether the trial ended there).  Once it is full, each :meth:`push` emits one transition per
    trial, the one that starts at the window's oldest step: G = sum_i gamma^i r_i over the steps
    up to the trial's end (the first step in the window where it ended, if any), the Omega after
    the last of those steps, and discount gamma^k for k steps, or 0 if the trial ended in success.
    Every push emits the same number of transitions, so nothing goes back to the host; the last
    n - 1 steps of a run are never emitted.  ``n`` 1: the one-step transitions of Eq. 3.
    """

    def __init__(self, n: int, num_envs: int, gamma: float, dev: torch.device):
        self.n, self.pushed = int(n), 0
        self.obs = torch.zeros((n, num_envs, 5), device=dev)
        self.next_obs = torch.zeros((n, num_envs, 5), device=dev)
        self.action = torch.zeros((n, num_envs), dtype=torch.int64, device=dev)
        self.reward = torch.zeros((n, num_envs), device=dev)
        self.done = torch.zeros((n, num_envs), dtype=torch.bool, device=dev)
        self.terminated = torch.zeros_like(self.done)
        self.powers = gamma ** torch.arange(n + 1, dtype=torch.float32, device=dev)
        # the window's steps oldest first, for each position of the newest slot
        self.order = [torch.arange(p + 1, p + 1 + n, device=dev) % n for p in range(n)]

    def push(self, obs, action, reward, next_obs, terminated, truncated) -> tuple[torch.Tensor, ...]:
        """Add one step of every trial; returns (Omega, a, G, Omega', discount), one per trial, or
        () while the window fills."""
        slot = self.pushed % self.n
        for name, value in (("obs", obs), ("action", action), ("reward", reward), ("next_obs", next_obs),
                            ("done", terminated | truncated), ("terminated", terminated)):
            getattr(self, name)[slot] = value
        self.pushed += 1
        if self.pushed < self.n:
            return ()
        order = self.order[slot]
        done, reward = self.done[order], self.reward[order]
        # step i counts if the trial did not end before it; `last` is where it ended, else n - 1
        counts = (torch.cumsum(done, 0) - done.long()) == 0
        last = torch.where(done.any(0), done.long().argmax(0), self.n - 1)
        g = (self.powers[:self.n, None] * counts * reward).sum(0)
        ends = order[last]
        cols = torch.arange(done.shape[1], device=done.device)
        success = self.terminated[ends, cols]
        discount = torch.where(success, 0.0, self.powers[last + 1])
        return self.obs[order[0]], self.action[order[0]], g, self.next_obs[ends, cols], discount


def run_trials_on_device(policy, task: TaskConfig, trials: int = 400, seed: int = 0) -> EvalResult:
    """:func:`reach_core.evaluation.run_trials`' protocol (the trials side by side, each until it
    succeeds or reaches the step limit, the greedy available action of ``policy``, a
    :class:`~reach_core.control.ControlPolicy`) on :class:`TorchReachEnv` in float64, on the
    policy's device: the periodic evaluations of the vectorised trainer, which would otherwise
    wait for the NumPy simulator.  The trials are drawn by torch's generator, so a seed gives
    other trials than run_trials' (the benchmark figures come from run_trials on best.pt)."""
    net = policy.net
    dev = next(net.parameters()).device
    env = TorchReachEnv(trials, task, dev, dtype=torch.float64, seed=seed, auto_reset=False)
    mask = policy.mask.to(dev)
    active = torch.ones(trials, dtype=torch.bool, device=dev)
    success, final_d = torch.zeros_like(active), env.distance()
    returns = torch.zeros(trials, dtype=torch.float64, device=dev)
    steps = torch.zeros(trials, dtype=torch.int64, device=dev)
    for t in range(task.max_steps):
        obs = env.observe()
        with torch.no_grad():
            a = masked_argmax(net(obs), available_actions(obs, mask, task.hold_radius, task.arm.tool_length))
        res = env.step(a)
        returns += res["reward"] * active
        steps += active
        final_d = torch.where(active, res["distance"], final_d)
        success = torch.where(active, res["terminated"], success)
        active &= ~(res["terminated"] | res["truncated"])
        if t % 16 == 15 and not bool(active.any()):
            break
    return EvalResult.of_trials(final_d.cpu().numpy(), success.cpu().numpy(), returns.cpu().numpy(),
                                steps.cpu().numpy())


def check_supported(cfg: TrainConfig) -> None:
    """Refuse the :class:`TrainConfig` options the vectorised trainer does not implement."""
    bad = [k for k, v in UNSUPPORTED.items() if getattr(cfg, k) != v]
    if bad:
        raise CheckpointError("the vectorised trainer does not implement " + ", ".join(bad) +
                              " (leave them at their defaults or train without --vectorised)")


class VecLearner(Learner):
    """:class:`~reach_core.control_training.Learner` (the Q, target and policy networks, Adam;
    the same checkpoint keys) whose update stays on the device: it returns the loss as a tensor
    (no ``.item()`` per update) and Polyak-averages with one fused ``_foreach_lerp_``."""

    def __init__(self, cfg: TrainConfig, dev: torch.device):
        super().__init__(cfg, dev)
        if cfg.cuda_graph and (cfg.compile or dev.type != "cuda"):
            raise CheckpointError("--cuda-graph needs --device cuda and no --compile")
        if cfg.compile or cfg.cuda_graph:   # lr a tensor: setting it needs no recompilation or capture
            self.optim = torch.optim.Adam(self.net.parameters(), lr=torch.tensor(cfg.lr, device=dev),
                                          capturable=True, foreach=True)
        else:
            self.optim = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, fused=dev.type == "cuda")
        self.params = list(self.net.parameters())
        self.target_params = list(self.target.parameters())
        self.policy_params = list(self.policy.parameters())
        self.graphs = cfg.compile and dev.type == "cuda"
        self._step = (torch.compile(self._update, mode="reduce-overhead" if self.graphs else None)
                      if cfg.compile else self._update)
        self._graph = None     # cuda_graph: the captured update, its input buffers and loss
        self._inputs, self._loss = [], None

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next updates."""
        set_lr(self.optim, lr)

    def update(self, batch, mask: torch.Tensor, hold: float) -> torch.Tensor:
        """One double-DQN step on the TD loss of Eq. 3 (n-step targets where the transitions are);
        returns the loss tensor (its own copy: a CUDA graph's outputs are overwritten by its next
        replay)."""
        if self.cfg.cuda_graph:
            return self._replay(batch, mask, hold)
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss = self._step(batch, mask, hold)
        return loss.clone() if self.cfg.compile else loss

    def _replay(self, batch, mask: torch.Tensor, hold: float) -> torch.Tensor:
        """The update as a CUDA graph: the batch copied into the graph's input buffers, one
        replay (one launch for the whole update), the loss copied out."""
        if self._graph is None:
            try:
                self._capture(batch, mask, hold)
            except RuntimeError as err:   # not expected; the run goes on with eager updates, said once
                print(f"warning: CUDA graph capture failed ({str(err).splitlines()[0]}); eager updates",
                      file=sys.stderr, flush=True)
                self.cfg.cuda_graph, self._graph = False, None
                torch.cuda.synchronize()
                return self._update(batch, mask, hold)
        for buf, value in zip(self._inputs, batch):
            buf.copy_(value)
        self._graph.replay()
        return self._loss.clone()

    def _capture(self, batch, mask: torch.Tensor, hold: float) -> None:
        """Capture one update (PyTorch's whole-network recipe): three warm-up updates on a side
        stream make Adam's state and the cached constants; then the networks and Adam's state are
        put back as they were (state made by the warm-up: zeros, Adam's start), so that the run's
        first update starts where an eager one would (the same arithmetic as the capturable Adam's
        eager step; the bench compares it with the default fused Adam's)."""
        weights = self.params + self.target_params + self.policy_params
        saved = [w.detach().clone() for w in weights]
        before = {p: {k: v.clone() for k, v in st.items() if torch.is_tensor(v)}
                  for p, st in self.optim.state.items()}
        self._inputs = [b.clone() for b in batch]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):
                with torch.enable_grad():
                    self._update(self._inputs, mask, hold)
            for w, v in zip(weights, saved):
                w.copy_(v)
            for p, st in self.optim.state.items():
                for k, v in st.items():
                    if torch.is_tensor(v):
                        v.copy_(before[p][k]) if p in before else v.zero_()
        torch.cuda.current_stream().wait_stream(side)
        self.optim.zero_grad(set_to_none=True)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._loss = self._update(self._inputs, mask, hold)

    def _update(self, batch, mask: torch.Tensor, hold: float) -> torch.Tensor:
        cfg = self.cfg
        obs, action, reward, next_obs, discount = batch
        next_mask = available_actions(next_obs, mask, hold, self.net.tool_length)
        with torch.no_grad():
            next_q = self.target(next_obs).masked_fill(~next_mask, float("-inf"))
            if cfg.double_dqn:
                best = masked_argmax(self.net(next_obs), next_mask)
                next_v = next_q.gather(1, best[:, None]).squeeze(1)
            else:
                next_v = next_q.max(dim=1).values
            y = reward + discount * next_v
        q = self.net(obs).gather(1, action[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, y) if cfg.loss == "huber" else 0.5 * F.mse_loss(q, y)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.target_params, self.params, cfg.target_tau)
            if cfg.policy_ema > 0:
                torch._foreach_lerp_(self.policy_params, self.params, cfg.policy_ema)
        return loss.detach()


class VecActor:
    """Algorithm 1, lines 9-12, for all trials at once on the device: greedy actions, or with
    probability epsilon the guide's (K-GPS, or random for the baseline); transitions go to the
    :class:`DeviceReplay`."""

    def __init__(self, cfg: TrainConfig, task: TaskConfig, dev: torch.device):
        self.cfg, self.task, self.dev = cfg, task, dev
        self.env = TorchReachEnv(cfg.num_envs, task, dev, seed=cfg.seed + 1)
        self.memory = DeviceReplay(cfg.buffer_size, dev)
        self.nstep = VecNStep(cfg.n_step, cfg.num_envs, cfg.gamma, dev)
        self.gen = torch.Generator(device=dev).manual_seed(cfg.seed + 2)
        self.mask = self.env.action_mask
        self.obs = self.env.observe()

    def choose(self, net, eps: float) -> torch.Tensor:
        """Lines 9-10: greedy among the available actions, the guide's with probability eps."""
        cfg, env = self.cfg, self.env
        with torch.no_grad():
            avail = available_actions(self.obs, self.mask, self.task.hold_radius,
                                      self.task.arm.tool_length)
            greedy = masked_argmax(net(self.obs), avail)
        guide = env.kgps_actions() if cfg.exploration == "kgps" else env.random_actions()
        if cfg.random_fraction > 0:
            rand = torch.rand(env.n, generator=self.gen, device=self.dev) < cfg.random_fraction
            guide = torch.where(rand, env.random_actions(), guide)
        explore = torch.rand(env.n, generator=self.gen, device=self.dev) < eps
        return torch.where(explore, guide, greedy)

    def step(self, net, eps: float) -> None:
        """Lines 9-12: choose, execute, observe and store one action of every trial."""
        cfg = self.cfg
        actions = self.choose(net, eps)
        res = self.env.step(actions)
        r = res["reward"]
        if cfg.success_bonus > 0:  # variant: a success closer to the target is worth more
            r = r + cfg.success_bonus * res["terminated"] * (1.0 - res["distance"] / self.task.delta)
        transitions = self.nstep.push(self.obs, actions, r, res["final_obs"], res["terminated"],
                                      res["truncated"])
        if transitions:
            self.memory.add(*transitions)
        self.obs = res["obs"]

    def state(self, run: Run) -> dict:
        """The trials' state for checkpoint.pt (the replay memory is not saved: no resume)."""
        env = self.env
        return {"env": {k: getattr(env, k).cpu() for k in ("q", "q_star", "target", "n_within", "t")}}


# ------------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, run_dir: str, resume: bool = False, progress: bool = True, log=print) -> dict:
    """Train a control network with the vectorised trainer; returns the metrics of
    ``run_dir/metrics.json`` (the same files as :func:`reach_core.control_training.train`)."""
    check_supported(cfg)
    if resume:
        raise CheckpointError("the vectorised trainer does not resume runs; start a new one")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError(f"--device {cfg.device}: no CUDA device here")
    run = Run(run_dir, rows_key="history")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    dev, task = torch.device(cfg.device), cfg.task()
    learner, actor = VecLearner(cfg, dev), VecActor(cfg, task, dev)
    if cfg.init_from:
        _init_weights(cfg, [learner.net, learner.target, learner.policy])
        log(f"initialised from {cfg.init_from}")
    run.write_config(cfg)
    mode = "a CUDA graph" if cfg.cuda_graph else "compiled" if cfg.compile else "eager"
    log(f"vectorised trainer: {cfg.num_envs} trials on {dev}, {cfg.n_step}-step returns, the update {mode}")
    prog = Progress()
    _loop(run, cfg, task, learner, actor, prog, progress, log)
    return _finish(run, cfg, task, learner, actor, prog, log)


def _learn(cfg: TrainConfig, learner: VecLearner, actor: VecActor, prog: Progress):
    """Lines 13-14: the updates owed for the steps taken (``updates_per_step`` per transition),
    on random mini-batches from the device's replay memory; returns the last loss (a tensor)."""
    prog.update_debt += cfg.updates_per_step * cfg.num_envs
    learner.set_lr(cfg.lr * (1 + (cfg.lr_final_fraction - 1) * prog.step / cfg.total_steps))
    loss = None
    while prog.update_debt >= 1:
        loss = learner.update(actor.memory.sample(cfg.batch_size, actor.gen), actor.mask,
                              actor.task.hold_radius)
        prog.updates += 1
        prog.update_debt -= 1
    return loss


def _loop(run: Run, cfg: TrainConfig, task: TaskConfig, learner: VecLearner, actor: VecActor,
          prog: Progress, progress: bool, log) -> None:
    """Algorithm 1's loop, with periodic evaluations, checkpoints and the stopping rules."""
    prog.t0 = time.perf_counter()
    bar = tqdm(total=cfg.total_steps, unit="step", disable=not progress, file=sys.stderr,
               desc=f"vectorised {cfg.exploration} {cfg.dof}-DoF", dynamic_ncols=True)
    next_eval, next_ckpt, loss = cfg.eval_every, cfg.checkpoint_every, None
    while prog.step < cfg.total_steps:
        eps = cfg.epsilon(prog.step)
        actor.step(learner.net, eps)                                     # lines 9-12
        prog.step += cfg.num_envs
        if len(actor.memory) >= cfg.learning_starts:
            loss = _learn(cfg, learner, actor, prog) or loss             # lines 13-14
        bar.update(cfg.num_envs)
        timed_out = cfg.time_budget and time.perf_counter() - prog.t0 >= cfg.time_budget
        if prog.step >= next_eval or prog.step >= cfg.total_steps or timed_out:
            next_eval += cfg.eval_every * max(1, (prog.step - next_eval) // cfg.eval_every + 1)
            prog.loss = float("nan") if loss is None else loss.item()
            if _evaluate_and_report(run, cfg, task, learner, prog, eps, bar, progress, log,
                                    trials=run_trials_on_device):
                break
            if timed_out:
                log(f"stopping at step {prog.step:,}: time budget of {cfg.time_budget:.0f} s spent")
                break
        if prog.step >= next_ckpt:
            next_ckpt += cfg.checkpoint_every
            _save_checkpoint(run, cfg, learner, actor, prog)
    bar.close()
