"""Training the control module: DQN guided by K-GPS (paper Eq. 6, Algorithm 1) or epsilon-greedy.

Read top to bottom, this is Algorithm 1 with a batch of trials per iteration:

* ``num_envs`` trials run side by side (:class:`~reach_core.simulator.ReachEnv`);
* with probability epsilon a trial's action comes from the *guide* -- K-GPS, the action whose
  result is closest to q* in joint space, or a uniformly random action for the epsilon-greedy
  baseline -- otherwise from the Q-network (greedy); epsilon decays linearly from 1 to 0.1;
* every transition (Omega_t, a_t, r_t, Omega_t+1, success) goes to the replay memory;
* the Q-network is updated from random mini-batches against a target network.

The defaults are that algorithm; every departure is a :class:`TrainConfig` option recorded in the
run's files (the shipped networks use ``kinematic``, ``dueling``, ``n_step``, ``policy_ema`` and
``hold_only_at_target``: README, "Control module").

A run directory holds ``config.json``, ``checkpoint.pt`` + ``replay.npz`` (to resume),
``model.pt`` (the final policy), ``best.pt`` (best periodic evaluation), ``progress.csv``,
``metrics.json`` and ``learning_curve.png`` (success rate vs steps, like the paper's Figure 5).

The control training, by role:

===================== ==========================================================================
control_training.py   TrainConfig, the DQN update, Learner and Actor, the training loop (train)
control_replay.py     InputCache, ReplayMemory, NStep: the replay memory D and n-step returns
control_vec.py        the same algorithm with environment, memory and updates on the device
control_cli.py        ``reach train control``
===================== ==========================================================================

:class:`InputCache`, :class:`ReplayMemory` and :class:`NStep` are importable from here too.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .checkpoints import CheckpointError
from .configs import option
from .control import PAPER_HIDDEN, ControlPolicy, QNetwork, available_actions, masked_argmax
from .control_replay import InputCache, NStep, ReplayMemory
from .evaluation import EVAL_SEED, run_trials
from .kinematics import check_tool, parse_tool
from .optim import set_lr
from .runs import Run
from .simulator import ReachEnv, TaskConfig, reward, success_bonus


@dataclass
class TrainConfig:
    """Hyper-parameters of a control training run (defaults: 3-DoF K-GPS)."""

    dof: int = option(3, "active joints", choices=(1, 2, 3))
    tool: str = option("paper", "tool point that reaches the target: paper (0.28 m from w1, the shipped "
                                "models'), electric_gripper_fingertips (0.3907 m), or a length in "
                                "metres (docs/tool_point.md)", metavar="TOOL")
    exploration: str = option("kgps", "policy search guide: kgps (Eq. 6) or egreedy (baseline)",
                              choices=("kgps", "egreedy"))
    # The defaults follow the paper (one-step DQN, 5-400-300-9 MLP); the variants below it are
    # off by default and recorded in every checkpoint and metrics file that uses them.
    total_steps: int = option(600_000, "environment steps (transitions) in the run")
    num_envs: int = option(32, "trials run side by side")
    eps_start: float = option(1.0, "initial exploration rate")
    eps_end: float = option(0.1, "final exploration rate")
    eps_decay_fraction: float = option(0.5, "fraction of the run over which epsilon falls to eps_end")
    buffer_size: int = option(300_000, "replay memory size")
    learning_starts: int = option(10_000, "transitions before learning")
    batch_size: int = option(256, "mini-batch size")
    updates_per_step: float = option(0.125, "gradient updates per environment step")
    lr: float = option(5e-4, "Adam learning rate")
    gamma: float = option(0.99, "discount factor")
    target_tau: float = option(0.005, "Polyak averaging rate of the target network per update")
    policy_ema: float = option(0.0, "save and evaluate a moving average of the weights with this rate per "
                                    "update (variant; 0: the online network itself)")
    double_dqn: bool = option(True, "double DQN targets")
    n_step: int = option(1, "n-step returns (1: the one-step target of Eq. 3, the paper's)")
    lr_final_fraction: float = option(1.0, "learning rate decays linearly to lr * this (1: constant)")
    loss: str = option("huber", "TD loss (Eq. 3)", choices=("huber", "mse"))
    hidden: tuple = option(PAPER_HIDDEN, "hidden layer sizes (400 300: the paper's)")
    dueling: bool = option(False, "dueling Q head (variant; see control.QNetwork)")
    encoding: int = option(0, "positional-encoding octaves of Omega in front of the MLP (variant; 0: paper)")
    kinematic: bool = option(False, "append forward-kinematics features of Omega to the input (variant)")
    action_gap: float = option(0.0, "advantage-learning alpha (Bellemare et al. 2016; variant; 0: plain DQN)")
    guide_margin: float = option(0.0, "DQfD large-margin loss on K-GPS actions, margin in Q units (variant)")
    hold_only_at_target: bool = option(False, "'unchanged' is available only within delta of the target, "
                                              "where the policy is to hold (variant; the paper allows it "
                                              "everywhere)")
    noop_augment: float = option(0.0, "share of steps away from the target that also store the known "
                                      "outcome of 'unchanged' there (variant)")
    random_fraction: float = option(0.0, "share of exploratory actions that are uniformly random instead of "
                                         "K-GPS (variant; 0: the paper's K-GPS)")
    guide_margin_weight: float = option(1.0, "weight of the large-margin loss beside the TD loss")
    success_bonus: float = option(0.0, "success reward 1 + this * (1 - d/delta), d the final distance: a "
                                       "reason to end closer to the target (variant; 0: the paper's Eq. 5; "
                                       "evaluation keeps Eq. 5)")
    init_from: str = option("", "start from this control network's weights (fine-tuning; same "
                                "architecture; none: random initialisation)", metavar="MODEL")
    device: str = option("cpu", "torch device: cpu or cuda")
    compile: bool = option(False, "--vectorised only: the update compiled (torch.compile; on CUDA mode "
                                  "reduce-overhead, the update replayed as CUDA graphs, as LeanRL does)")
    cuda_graph: bool = option(False, "--vectorised on CUDA only: the update captured once as a CUDA graph "
                                     "and replayed (no compilation; eager updates' arithmetic)")
    eval_every: int = option(25_000, "environment steps between evaluations")
    eval_trials: int = option(200, "trials per evaluation (Figure 5: 200)")
    checkpoint_every: int = option(100_000, "environment steps between checkpoints")
    stop_success: float = option(0.0, "stop as soon as a periodic evaluation reaches this success rate "
                                      "(0: never)")
    time_budget: float = option(0.0, "stop after this many seconds of training; best.pt is the best "
                                     "evaluation (0: no limit)")
    max_steps: int = option(300, "step limit per trial")
    seed: int = option(0, "random seed")
    threads: int = option(0, "torch CPU threads (0: torch's choice)")

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        self.tool = parse_tool(self.tool).name
        if self.exploration not in ("kgps", "egreedy"):
            raise ValueError(f"exploration must be 'kgps' or 'egreedy', got {self.exploration!r}")
        if self.loss not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.loss!r}")
        if not 0 <= self.eps_end <= self.eps_start <= 1:
            raise ValueError("need 0 <= eps_end <= eps_start <= 1")
        if not 0 <= self.policy_ema < 1:
            raise ValueError(f"policy_ema must be in [0, 1), got {self.policy_ema!r}")
        if not 0 <= self.noop_augment <= 1:
            raise ValueError(f"noop_augment must be in [0, 1], got {self.noop_augment!r}")
        if not 0 <= self.random_fraction <= 1:
            raise ValueError(f"random_fraction must be in [0, 1], got {self.random_fraction!r}")
        if self.n_step < 1:
            raise ValueError("n_step must be at least 1")
        if self.success_bonus < 0:
            raise ValueError(f"success_bonus must be >= 0, got {self.success_bonus!r}")
        if self.total_steps < self.num_envs or self.batch_size < 1 or self.num_envs < 1:
            raise ValueError("total_steps must be >= num_envs >= 1 and batch_size >= 1")

    def task(self) -> TaskConfig:
        """The task these settings train for."""
        return TaskConfig(dof=self.dof, max_steps=self.max_steps,
                          hold_only_at_target=self.hold_only_at_target, tool=self.tool)

    def epsilon(self, step: int) -> float:
        """The exploration rate at ``step``: linear from eps_start to eps_end, then constant."""
        frac = min(1.0, step / max(1.0, self.eps_decay_fraction * self.total_steps))
        return self.eps_start + frac * (self.eps_end - self.eps_start)


#: the recipe (``reach_core/recipes/NAME.yaml``) of the shipped K-GPS controller of each DoF; for 3 DoF
#: its first stage, which the recipe ``control_dof3`` fine-tunes with a success bonus into control_dof3.pt
SHIPPED_RECIPES = {1: "control_dof1", 2: "control_dof2", 3: "control_dof3_stage1"}


def _dqn_update(net, target_net, optim, batch, cfg: TrainConfig, mask: torch.Tensor,
                hold: float = 0.0) -> float:
    """One gradient step; ``hold`` is the task's hold radius (:attr:`TaskConfig.hold_radius`)."""
    obs, action, ret, next_obs, discount, guided = batch[:6]
    if len(batch) > 6:   # the replay memory's cached inputs and availabilities (InputCache)
        x, next_x, obs_mask, next_mask = batch[6:]
    else:                # the same, computed here (the encoding has no weights: one for both nets)
        tool = net.tool_length
        with torch.no_grad():
            x, next_x = net.encode(obs), net.encode(next_obs)
        next_mask = available_actions(next_obs, mask, hold, tool)
        obs_mask = (available_actions(obs, mask, hold, tool)
                    if cfg.action_gap > 0 or cfg.guide_margin > 0 else None)
    with torch.no_grad():
        next_q_target = target_net.forward_encoded(next_x).masked_fill(~next_mask, float("-inf"))
        if cfg.double_dqn:
            best = masked_argmax(net.forward_encoded(next_x), next_mask)
            next_v = next_q_target.gather(1, best[:, None]).squeeze(1)
        else:
            next_v = next_q_target.max(dim=1).values
        y = ret + discount * next_v
        if cfg.action_gap > 0:
            # advantage learning: lower suboptimal actions by alpha times their advantage, which
            # widens the gap between the best action and the others (here only ~1 % of Q)
            q_t = target_net.forward_encoded(x)
            v_t = q_t.masked_fill(~obs_mask, float("-inf")).max(dim=1).values
            y = y - cfg.action_gap * (v_t - q_t.gather(1, action[:, None]).squeeze(1))
    q_all = net.forward_encoded(x)
    q = q_all.gather(1, action[:, None]).squeeze(1)
    loss = F.smooth_l1_loss(q, y) if cfg.loss == "huber" else 0.5 * F.mse_loss(q, y)
    if cfg.guide_margin > 0:
        # DQfD (Hester et al. 2018): the guide's action should beat every other by the margin
        margins = torch.full_like(q_all, cfg.guide_margin).scatter_(1, action[:, None], 0.0)
        best = (q_all + margins).masked_fill(~obs_mask, float("-inf")).max(dim=1).values
        loss = loss + cfg.guide_margin_weight * ((best - q) * guided).sum() / guided.sum().clamp(min=1)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    with torch.no_grad():
        torch._foreach_lerp_(list(target_net.parameters()), list(net.parameters()), cfg.target_tau)
    return loss.item()


def _init_weights(cfg: TrainConfig, nets) -> None:
    """Copy a trained control checkpoint's weights into ``nets`` (all of the same architecture)."""
    policy = ControlPolicy.load(cfg.init_from)
    net = policy.net
    theirs = (tuple(net.hidden), bool(net.dueling), int(net.encoding), bool(net.kinematic))
    ours = (tuple(cfg.hidden), cfg.dueling, cfg.encoding, cfg.kinematic)
    if theirs != ours:
        raise CheckpointError(f"{cfg.init_from} has another architecture (hidden, dueling, encoding, "
                              f"kinematic = {theirs}) than this run ({ours})")
    if policy.task.dof != cfg.dof:
        raise CheckpointError(f"{cfg.init_from} is a {policy.task.dof}-DoF network; "
                              f"this run is {cfg.dof}-DoF")
    check_tool(cfg.tool, policy.task.tool, f"control model {cfg.init_from}")
    state = policy.net.state_dict()
    for n in nets:
        n.load_state_dict(state)


class Learner:
    """The networks of a run and their optimiser: the Q-network, its target network (Polyak
    averaged each update) and the policy network that is evaluated and saved (the Q-network
    itself, or with ``policy_ema`` a moving average of its weights)."""

    def __init__(self, cfg: TrainConfig, dev: torch.device):
        self.cfg = cfg
        arch = (cfg.hidden, cfg.dueling, cfg.encoding, cfg.kinematic)
        tool = {"tool_length": cfg.task().arm.tool_length}
        self.net = QNetwork(*arch, **tool).to(dev)
        self.target = QNetwork(*arch, **tool).to(dev)
        self.target.load_state_dict(self.net.state_dict())
        self.policy = self.net
        if cfg.policy_ema > 0:
            self.policy = QNetwork(*arch, **tool).to(dev)
            self.policy.load_state_dict(self.net.state_dict())
        # fused: Adam's arithmetic in one kernel for all the weights (on this CPU a quarter of the
        # for-loop Adam's time; tests/test_control_training.py checks it against the for-loop one)
        self.optim = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, fused=True)

    def update(self, batch, mask: torch.Tensor, hold: float) -> float:
        """One gradient step of the DQN loss (and the policy average); returns the loss."""
        loss = _dqn_update(self.net, self.target, self.optim, batch, self.cfg, mask, hold)
        if self.cfg.policy_ema > 0:
            with torch.no_grad():
                torch._foreach_lerp_(list(self.policy.parameters()), list(self.net.parameters()),
                                     self.cfg.policy_ema)
        return loss

    def state(self) -> dict:
        """The weights and optimiser state, as the run's checkpoint stores them."""
        return {"model": self.net.state_dict(), "target_model": self.target.state_dict(),
                "policy_model": self.policy.state_dict(), "optimizer": self.optim.state_dict()}

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state`."""
        self.net.load_state_dict(state["model"])
        self.target.load_state_dict(state["target_model"])
        if self.cfg.policy_ema > 0:
            self.policy.load_state_dict(state["policy_model"])
        self.optim.load_state_dict(state["optimizer"])


class Actor:
    """Algorithm 1, lines 9-12, for ``num_envs`` trials side by side: each trial's action is the
    greedy one or, with probability epsilon, the guide's (K-GPS or random); the transitions go to
    the replay memory (n-step returns through :class:`NStep`)."""

    ENV_STATE = ("q", "q_star", "target", "n_within", "t")

    def __init__(self, cfg: TrainConfig, task: TaskConfig, rng: np.random.Generator, dev: torch.device):
        self.cfg, self.task, self.rng, self.dev = cfg, task, rng, dev
        self.env = ReachEnv(cfg.num_envs, task, seed=cfg.seed + 1)
        self.memory = ReplayMemory(cfg.buffer_size, InputCache.of(cfg, task))
        self.nstep = NStep(cfg.n_step, cfg.num_envs, cfg.gamma)
        self.mask = torch.as_tensor(self.env.action_mask, device=dev)
        self.obs = None

    def greedy(self, net: QNetwork) -> np.ndarray:
        """The greedy actions of ``net`` among the available ones: the inputs and availabilities
        from the replay memory's :class:`InputCache` (numpy), the network in torch."""
        x, avail = self.memory.cache(self.obs)
        with torch.no_grad():
            q = net.forward_encoded(torch.from_numpy(x).to(self.dev))
            return masked_argmax(q, torch.from_numpy(avail).to(self.dev)).cpu().numpy()

    def choose(self, net: QNetwork, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Line 9-10: the actions, and where they came from the K-GPS guide."""
        cfg, env, rng = self.cfg, self.env, self.rng
        actions = self.greedy(net)
        explore = rng.random(cfg.num_envs) < eps
        guided = explore.copy()  # actions taken from the guide (K-GPS or random)
        if explore.any():
            guide = env.kgps_actions() if cfg.exploration == "kgps" else env.random_actions()
            if cfg.random_fraction > 0:
                # K-GPS never takes an action it does not need (e.g. "unchanged" away from the
                # target), so without these the replay memory holds no evidence against them
                rand = explore & (rng.random(cfg.num_envs) < cfg.random_fraction)
                guide = np.where(rand, env.random_actions(), guide)
                guided &= ~rand
            actions = np.where(explore, guide, actions)
        return actions, guided

    def store_noops(self) -> None:
        """The known outcome of "unchanged" away from the target (``noop_augment``): the same
        Omega and the reward of Eq. 5 for the current distance.  K-GPS only takes it at the goal,
        so without these the network never sees it fail and a greedy policy can stall on it."""
        cfg, env, rng, task = self.cfg, self.env, self.rng, self.task
        d_now = env.distance()
        far = (d_now > task.delta) & (rng.random(cfg.num_envs) < cfg.noop_augment)
        if far.any():
            k = int(far.sum())
            noop = 3 * rng.choice(np.flatnonzero(env.action_mask[2::3]), size=k) + 2
            self.memory.add(self.obs[far], noop, reward(d_now[far], np.zeros(k, np.int64), task),
                            self.obs[far], np.full(k, cfg.gamma), np.zeros(k, np.float32))

    def step(self, net: QNetwork, eps: float) -> None:
        """Lines 9-12: choose, execute, observe and store one action of every trial."""
        cfg = self.cfg
        actions, guided = self.choose(net, eps)
        if cfg.noop_augment > 0:
            self.store_noops()
        res = self.env.step(actions)
        r = res.reward
        if cfg.success_bonus > 0:  # variant: a success closer to the target is worth more
            r = r + success_bonus(res.terminated, res.distance, cfg.success_bonus, self.task)
        transitions = self.nstep.push(self.obs, actions, r, res.final_obs, res.terminated, res.truncated,
                                      guided & (cfg.exploration == "kgps"))
        if transitions:
            self.memory.add(*transitions)
        self.obs = res.obs

    def state(self, run: Run) -> dict:
        """The random generators, trials and n-step queues; the replay memory goes to replay.npz."""
        np.savez(run.path("replay.tmp.npz"), **self.memory.state())
        os.replace(run.path("replay.tmp.npz"), run.path("replay.npz"))
        return {"rng": self.rng.bit_generator.state, "env_rng": self.env.rng.bit_generator.state,
                "env": {k: torch.from_numpy(getattr(self.env, k).copy()) for k in self.ENV_STATE},
                "nstep": {k: torch.from_numpy(getattr(self.nstep, k).copy()) for k in NStep.STATE}}

    def load_state(self, run: Run, state: dict) -> None:
        """Restore :meth:`state` (and replay.npz)."""
        with np.load(run.path("replay.npz")) as replay:
            self.memory.load_state(replay)
        self.rng.bit_generator.state = state["rng"]
        self.env.rng.bit_generator.state = state["env_rng"]
        for k in self.ENV_STATE:
            setattr(self.env, k, state["env"][k].numpy().copy())
        for k in NStep.STATE:
            setattr(self.nstep, k, state["nstep"][k].numpy().copy())


@dataclass
class Progress:
    """Counters of a run: environment steps, updates, updates owed, the best evaluation, and the
    training seconds (``elapsed0`` before this process, ``t0`` when this process started)."""

    step: int = 0
    updates: int = 0
    update_debt: float = 0.0
    best_success: float = -1.0
    elapsed0: float = 0.0
    t0: float = 0.0
    loss: float = float("nan")

    def elapsed(self) -> float:
        """Training seconds so far."""
        return self.elapsed0 + time.perf_counter() - self.t0


def _policy(cfg: TrainConfig, net: QNetwork, task: TaskConfig, step: int) -> ControlPolicy:
    return ControlPolicy(net, task, {"exploration": cfg.exploration, "seed": cfg.seed, "steps": step,
                                     "config": asdict(cfg)})


def _save_checkpoint(run: Run, cfg: TrainConfig, learner: Learner, actor: Actor, prog: Progress) -> None:
    run.save_checkpoint({
        "config": asdict(cfg), **learner.state(), "step": prog.step, "updates": prog.updates,
        "best_success": prog.best_success, "elapsed": prog.elapsed(), **actor.state(run),
        "update_debt": prog.update_debt, "torch_rng": torch.get_rng_state()})


def _resume(run: Run, cfg: TrainConfig, learner: Learner, actor: Actor, log) -> Progress:
    """Restore a run from its checkpoint: the same settings, except that ``total_steps`` may be
    raised (the schedules stretch)."""
    ckpt_path = run.path(Run.CHECKPOINT)
    state = run.load_checkpoint()
    saved = TrainConfig(**state["config"])
    diff = [f.name for f in fields(cfg)
            if f.name != "total_steps" and getattr(saved, f.name) != getattr(cfg, f.name)]
    if diff:
        raise CheckpointError(f"{ckpt_path} was trained with other settings ({', '.join(diff)}); "
                              "resume with the same options or start a new run directory")
    learner.load_state(state)
    actor.load_state(run, state)
    torch.set_rng_state(state["torch_rng"])
    prog = Progress(int(state["step"]), int(state["updates"]), float(state["update_debt"]),
                    float(state["best_success"]), float(state["elapsed"]))
    log(f"resumed {run.out} at step {prog.step:,}")
    return prog


def _evaluate(run: Run, cfg: TrainConfig, task: TaskConfig, learner: Learner, prog: Progress,
              trials=None) -> dict:
    """A periodic evaluation (a new set of trials each time); the best policy is saved as best.pt.
    ``trials(policy, task, n, seed)`` runs them (default: :func:`run_trials` on the greedy policy)."""
    learner.policy.eval()
    policy, seed = _policy(cfg, learner.policy, task, prog.step), EVAL_SEED + 1 + len(run.rows)
    if trials is None:
        res = run_trials(policy.act, task, cfg.eval_trials, seed=seed)
    else:
        res = trials(policy, task, cfg.eval_trials, seed)
    learner.policy.train()
    h = run.record({"step": prog.step, "updates": prog.updates, "epsilon": cfg.epsilon(prog.step),
                    "success_rate": res.success_rate, "d_med_cm": res.d_med_cm,
                    "mean_return": res.mean_return, "elapsed_s": prog.elapsed()})
    if res.success_rate >= prog.best_success:
        prog.best_success = res.success_rate
        _policy(cfg, learner.policy, task, prog.step).save(run.path("best.pt"))
    return h


def _learn(cfg: TrainConfig, learner: Learner, actor: Actor, prog: Progress) -> None:
    """Lines 13-14: the updates owed for the steps taken, on random mini-batches."""
    prog.update_debt += cfg.updates_per_step * cfg.num_envs
    set_lr(learner.optim, cfg.lr * (1 + (cfg.lr_final_fraction - 1) * prog.step / cfg.total_steps))
    while prog.update_debt >= 1:
        batch = actor.memory.sample(actor.rng, cfg.batch_size, actor.dev)
        prog.loss = learner.update(batch, actor.mask, actor.task.hold_radius)
        prog.updates += 1
        prog.update_debt -= 1


def train(cfg: TrainConfig, run_dir: str, resume: bool = False, progress: bool = True,
          log=print) -> dict:
    """Train a control network; returns the metrics written to ``run_dir/metrics.json``."""
    if cfg.compile or cfg.cuda_graph:
        raise CheckpointError(f"--{'compile' if cfg.compile else 'cuda-graph'} is an option of the "
                              "vectorised trainer (--vectorised)")
    run = Run(run_dir, rows_key="history")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    task = cfg.task()
    dev = torch.device(cfg.device)
    actor = Actor(cfg, task, rng, dev)
    learner = Learner(cfg, dev)
    if resume:
        prog = _resume(run, cfg, learner, actor, log)
    else:
        prog = Progress()
        if cfg.init_from:
            _init_weights(cfg, [learner.net, learner.target, learner.policy])
            log(f"initialised from {cfg.init_from}")
        run.write_config(cfg)
    _loop(run, cfg, task, learner, actor, prog, progress, log)
    return _finish(run, cfg, task, learner, actor, prog, log)


def _evaluate_and_report(run: Run, cfg: TrainConfig, task: TaskConfig, learner: Learner,
                         prog: Progress, eps: float, bar, progress: bool, log, trials=None) -> bool:
    """A periodic evaluation (:func:`_evaluate`), shown on the bar (or logged without one); True
    when the success rate reached ``stop_success`` (then logged)."""
    h = _evaluate(run, cfg, task, learner, prog, trials)
    bar.set_postfix(eps=f"{eps:.2f}", success=f"{h['success_rate']:.3f}", loss=f"{prog.loss:.2e}")
    if not progress:
        log(f"step {prog.step:>9,}  eps {eps:.2f}  success {h['success_rate']:.3f}  "
            f"d_med {h['d_med_cm']:.1f} cm  loss {prog.loss:.2e}  {h['elapsed_s']:.0f} s")
    if cfg.stop_success and h["success_rate"] >= cfg.stop_success:
        log(f"stopping at step {prog.step:,}: success {h['success_rate']:.3f} >= {cfg.stop_success}")
        return True
    return False


def _loop(run: Run, cfg: TrainConfig, task: TaskConfig, learner: Learner, actor: Actor, prog: Progress,
          progress: bool, log) -> None:
    """Algorithm 1's loop, with periodic evaluations, checkpoints and the stopping rules."""
    prog.t0 = time.perf_counter()
    actor.obs = actor.env.observe()
    bar = tqdm(total=cfg.total_steps, initial=prog.step, unit="step", disable=not progress,
               desc=f"{cfg.exploration} {cfg.dof}-DoF", dynamic_ncols=True, file=sys.stderr)
    next_eval = (prog.step // cfg.eval_every + 1) * cfg.eval_every
    next_ckpt = (prog.step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    while prog.step < cfg.total_steps:
        eps = cfg.epsilon(prog.step)
        actor.step(learner.net, eps)                          # lines 9-12
        prog.step += cfg.num_envs
        if len(actor.memory) >= cfg.learning_starts:
            _learn(cfg, learner, actor, prog)                 # lines 13-14
        bar.update(cfg.num_envs)
        if prog.step >= next_eval or prog.step >= cfg.total_steps:
            next_eval += cfg.eval_every
            if _evaluate_and_report(run, cfg, task, learner, prog, eps, bar, progress, log):
                break
        if cfg.time_budget and time.perf_counter() - prog.t0 >= cfg.time_budget:
            _evaluate(run, cfg, task, learner, prog)
            log(f"stopping at step {prog.step:,}: time budget of {cfg.time_budget:.0f} s spent; "
                f"success {run.rows[-1]['success_rate']:.3f}")
            break
        if prog.step >= next_ckpt:
            next_ckpt += cfg.checkpoint_every
            _save_checkpoint(run, cfg, learner, actor, prog)
    bar.close()


def _finish(run: Run, cfg: TrainConfig, task: TaskConfig, learner: Learner, actor: Actor,
            prog: Progress, log) -> dict:
    """model.pt, the last checkpoint, metrics.json, progress.csv and learning_curve.png."""
    elapsed = prog.elapsed()
    _policy(cfg, learner.policy, task, prog.step).save(run.path("model.pt"))
    _save_checkpoint(run, cfg, learner, actor, prog)
    history = run.rows
    trainer = type(actor).__module__.rsplit(".", 1)[-1]    # control_training, or control_vec
    metrics = {
        "trainer": trainer, "config": asdict(cfg), "steps": prog.step, "updates": prog.updates,
        "elapsed_s": elapsed,
        "env_steps_per_s": prog.step / elapsed, "updates_per_s": prog.updates / elapsed,
        "final_success_rate": history[-1]["success_rate"], "best_success_rate": prog.best_success,
        "history": history,
    }
    label = f"{cfg.exploration} {cfg.dof}-DoF"
    run.finish(metrics, _plot_run, "learning_curve.png", label=label)
    log(f"done ({trainer}): {prog.step:,} steps, {prog.updates:,} updates in {elapsed:.0f} s "
        f"({prog.step / elapsed:,.0f} env steps/s, {prog.updates / elapsed:,.0f} updates/s); "
        f"final success {history[-1]['success_rate']:.3f}, best {prog.best_success:.3f}")
    return metrics


def _plot_run(rows: list[dict], path, label: str) -> None:
    plot_learning_curves({label: rows}, str(path))


def plot_learning_curves(curves: dict[str, list[dict]], path: str) -> None:
    """Success rate vs environment steps, one line per run (the paper's Figure 5)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name, hist in curves.items():
        ax.plot([h["step"] for h in hist], [100 * h["success_rate"] for h in hist], label=name)
    ax.set_xlabel("training steps")
    ax.set_ylabel("success rate [%]")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Control learning curves")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
