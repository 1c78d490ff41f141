"""Weighted end-to-end fine-tuning (paper Eq. 4, ``reach train end2end``).

The control network is updated with the task loss Lq only (the DQN loss of Eq. 3 with Omega
replaced by the image); the perception network with beta * Lp + (1 - beta) * Lq_BN, where Lq_BN
is Lq's gradient arriving at the bottleneck.  One backward pass of ``Lq + beta * Lp`` does it: a
gradient scaler between perception and control (:class:`GradScale`, identity forward, gradient
times 1 - beta backward) leaves the control network's gradient as dLq and gives the perception
network (1 - beta) dLq_BN + beta dLp.  The task mini-batch (64) comes from a replay memory of
K-GPS guided transitions (epsilon 0.1) whose images are rendered by the simulator renderer; the
perception mini-batch (256) mixes ``real_fraction`` (default 75 %) real-domain images (here the
higher-fidelity domain) with simulator images.  ``naive=True`` is the baseline the paper reports
to fail: Lq only, into both networks (beta = 0, no perception batch).

Read :func:`finetune` top to bottom: build (modules, data, replay), fill the replay memory,
evaluate, then per update: act and store (:class:`Collector`), draw the two mini-batches
(:class:`PerceptionBatches`), one step of Eq. 4 (:func:`update`), and every ``eval_every``
updates an evaluation (:class:`Snapshots`: progress row, ``best.pt``).
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..configs import option
from ..control import ControlPolicy, available_actions, masked_argmax
from ..perception import AugmentConfig, PerceptionModel
from ..runs import Run
from ..scene import denormalise, normalise
from ..simulator import ReachEnv, success_bonus
from .evaluate import Observer
from .model import CombinedNet, EndToEndModel, GradScale

FINETUNE_EVAL_SEED = 5_2017     # periodic evaluation during fine-tuning (never the benchmark's)


@dataclass
class FinetuneConfig:
    """One end-to-end fine-tuning run (``reach train end2end``): the two module checkpoints, the
    real dataset, Eq. 4's beta, the DQN settings of Lq and the perception batch of Lp."""

    perception: str = option("src/reach_core/reach_core/models/perception_adapted.pt",
                             "perception checkpoint (or a combined end-to-end one: its perception half)")
    control: str = option("src/reach_core/reach_core/models/control_dof3.pt",
                          "control checkpoint (or a combined end-to-end one: its control half)")
    real: str | None = option(".devdata/hifi_train", "real-domain dataset folder for Lp")
    out: str = option("runs/end2end", "run folder")
    dof: int | None = option(None, "fail unless the controller has this DoF", choices=(1, 2, 3))
    beta: float = option(0.8, "Eq. 4 weight of Lp, in [0, 1]")
    naive: bool = option(False, "naive fine-tuning: Lq only (the baseline)")
    steps: int = option(2000, "weight updates")
    task_batch: int = option(64, "task (Lq) mini-batch")
    perception_batch: int = option(256, "perception (Lp) mini-batch")
    real_fraction: float = option(0.75, "real share of the perception batch")
    virtual_targets: int = option(8, "uses of each real frame with a random virtual target")
    near_target: float = option(0.0, "share of the perception batch's scenes with the target at the hand, "
                                     "as when a reach ends (simulator scenes and virtual targets; "
                                     "reach_core.renderer.near_targets)")
    lr_perception: float = option(1e-4, "Adam LR of perception")
    lr_control: float = option(1e-5, "Adam LR of control")
    epsilon: float = option(0.1, "K-GPS exploration probability")
    gamma: float | None = option(None, "discount (none: the control run's)")
    n_step: int | None = option(None, "n-step returns (none: the control run's)")
    double_dqn: bool = option(True, "double DQN targets")
    loss: str | None = option(None, "TD loss (none: the control run's)", choices=("huber", "mse"))
    success_bonus: float | None = option(None, "success reward 1 + this * (1 - d/delta) in Lq (none: the "
                                               "control run's, whose Q-values are of that reward)")
    target_tau: float = option(0.005, "Polyak rate of the target networks")
    num_envs: int = option(16, "trials acting side by side")
    env_steps_per_update: int = option(1, "acting iterations (num_envs transitions each) per update")
    buffer_size: int = option(50_000, "replay size")
    learning_starts: int = option(2000, "transitions before the first update")
    supersample: int = option(5, "simulator renderer supersampling (5: the camera pipeline's pixels)")
    sim_pool: int = option(20_000, "simulator images for Lp, rendered once")
    noise: float = option(0.0, "augmentation of real images: noise std")
    brightness: float = option(0.0, "augmentation of real images: brightness/contrast")
    eval_every: int = option(500, "updates between evaluations")
    eval_trials: int = option(50, "simulator trials per evaluation")
    eval_before: bool = option(True, "evaluate the starting networks before the first update (they are then "
                                     "best.pt unless an update beats them); false saves the time")
    checkpoint_every: int = option(1000, "updates between checkpoints")
    seed: int = option(0, "seed")
    device: str = option("cpu", "cpu or cuda")
    threads: int = option(1, "torch CPU threads")
    command: str = ""

    def __post_init__(self):
        if not (isinstance(self.beta, (int, float)) and 0.0 <= self.beta <= 1.0):
            raise ValueError(f"beta must be in [0, 1] (Eq. 4), got {self.beta!r}")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {self.real_fraction!r}")
        if not 0.0 <= self.near_target <= 1.0:
            raise ValueError(f"near_target must be in [0, 1], got {self.near_target!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon!r}")
        if self.steps < 1 or self.task_batch < 1 or self.perception_batch < 1 or self.num_envs < 1:
            raise ValueError("steps, task_batch, perception_batch and num_envs must be at least 1")
        if self.loss not in (None, "huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.loss!r}")
        if self.naive:
            self.beta = 0.0

    @property
    def n_real(self) -> int:
        """Real images in each perception mini-batch (none for the naive baseline)."""
        return 0 if self.naive else int(round(self.perception_batch * self.real_fraction))


def weighted_losses(net: CombinedNet, target: CombinedNet, task_batch, perception_batch, beta: float,
                    double_dqn: bool = True, loss: str = "huber", naive: bool = False):
    """Eq. 4 on one pair of mini-batches; returns (total, Lq, Lp, omega_hat of the task batch).

    ``task_batch``: (images, action, return, next_images, discount, next_omega_true); masks of
    available next actions come from the true next Omega (the environment knows them).
    ``perception_batch``: (images, omega) or None.  ``total.backward()`` gives the control network
    dLq and the perception network (1 - beta) dLq_BN + beta dLp (naive: dLq_BN, no Lp)."""
    img, action, ret, next_img, discount, next_omega = task_batch
    omega_hat = net.bottleneck(img)
    bn = omega_hat if naive else GradScale.apply(omega_hat, 1.0 - beta)
    q = net.control(bn).gather(1, action[:, None]).squeeze(1)
    with torch.no_grad():
        next_hat = target.bottleneck(next_img)
        mask = available_actions(next_omega, net.dof_mask, net.hold_radius)
        next_t = target.control(next_hat).masked_fill(~mask, float("-inf"))
        if double_dqn:
            best = masked_argmax(net.control(next_hat), mask)
            next_v = next_t.gather(1, best[:, None]).squeeze(1)
        else:
            next_v = next_t.max(dim=1).values
        y = ret + discount * torch.where(torch.isfinite(next_v), next_v, torch.zeros_like(next_v))
    lq = F.smooth_l1_loss(q, y) if loss == "huber" else 0.5 * F.mse_loss(q, y)
    total = lq
    lp = torch.zeros((), device=lq.device)
    if not naive and beta > 0 and perception_batch is not None:
        px, py = perception_batch
        lp = 0.5 * ((net.perception(px) - py) ** 2).sum(dim=1).mean()     # Eq. 2
        total = lq + beta * lp
    return total, lq, lp, omega_hat


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet(msg: str) -> None:
    """The log of ranks other than 0: nothing."""


# ----------------------------------------------------------------------------- settings and data
def control_settings(cfg: FinetuneConfig, model: EndToEndModel) -> dict:
    """Lq's gamma, n-step, loss and success bonus: the config's, else the control run's."""
    ccfg = model.control.meta.get("config", {}) or {}
    return {"gamma": cfg.gamma if cfg.gamma is not None else float(ccfg.get("gamma", 0.99)),
            "n_step": cfg.n_step if cfg.n_step is not None else int(ccfg.get("n_step", 1)),
            "loss": cfg.loss or ccfg.get("loss", "huber"),
            "success_bonus": (cfg.success_bonus if cfg.success_bonus is not None
                              else float(ccfg.get("success_bonus", 0.0)))}


def load_real(cfg: FinetuneConfig):
    """The real dataset of the perception batch (None when the batch has no real images)."""
    from ..datasets import DatasetError, load_dataset

    if cfg.n_real <= 0:
        return None
    if not cfg.real:
        raise ValueError(f"real_fraction {cfg.real_fraction} needs a real dataset (--real)")
    real = load_dataset(cfg.real, virtual_targets=cfg.virtual_targets, seed=cfg.seed,
                        near_target=cfg.near_target)
    if len(real) == 0:
        raise DatasetError(f"{cfg.real}: the real dataset is empty")
    return real


def render_omega(omega: np.ndarray, supersample: int, device) -> torch.Tensor:
    """Simulator images (B, 84, 84) of normalised scene configurations."""
    from ..renderer import render_net_images

    t, q = denormalise(omega)
    return torch.from_numpy(render_net_images(t, q, supersample=supersample)).to(device)


class PerceptionBatches:
    """Lp's mini-batches: ``n_real`` augmented real images and ``n_sim`` simulator images from a
    pool rendered once (a share ``near_target`` of its targets at the hand)."""

    def __init__(self, cfg: FinetuneConfig, real, device, gen: torch.Generator):
        from ..renderer import near_targets, render_net_images, sample_scenes

        self.cfg, self.device, self.gen = cfg, device, gen
        self.n_sim = 0 if cfg.naive else cfg.perception_batch - cfg.n_real
        self.aug = AugmentConfig(rotation=0.0, translation=0.0, noise=cfg.noise, brightness=cfg.brightness)
        t0 = time.perf_counter()
        if self.n_sim:
            pool = max(self.n_sim, min(cfg.sim_pool, self.n_sim * cfg.steps))
            st, sq = sample_scenes(pool, cfg.seed + 17)
            n_near = int(round(pool * cfg.near_target))
            st[:n_near] = near_targets(sq[:n_near], np.random.default_rng(cfg.seed + 18))
            images = np.concatenate([
                render_net_images(st[i:i + 512], sq[i:i + 512], supersample=cfg.supersample)
                for i in range(0, pool, 512)])
            self.sim_x = torch.from_numpy(images.astype(np.float16)).to(device)
            self.sim_y = torch.from_numpy(normalise(st, sq)).to(device)
        if real is not None:
            self.real_x = torch.from_numpy(real.images.astype(np.float16)).to(device)
            self.real_y = torch.from_numpy(real.omega.astype(np.float32)).to(device)
        self.seconds = time.perf_counter() - t0

    def sample(self):
        """(images, Omega) for Lp, or None when Lp is off (naive, or beta 0)."""
        from ..perception import augment

        cfg, dev, gen = self.cfg, self.device, self.gen
        if cfg.naive or cfg.beta <= 0:
            return None
        parts_x, parts_y = [], []
        if cfg.n_real:
            ridx = torch.randint(len(self.real_x), (cfg.n_real,), device=dev, generator=gen)
            parts_x.append(augment(self.real_x[ridx].float(), self.aug, gen))
            parts_y.append(self.real_y[ridx])
        if self.n_sim:
            sidx = torch.randint(len(self.sim_x), (self.n_sim,), device=dev, generator=gen)
            parts_x.append(self.sim_x[sidx].float())
            parts_y.append(self.sim_y[sidx])
        return torch.cat(parts_x), torch.cat(parts_y)


class Collector:
    """Acting for Lq's replay memory: ``num_envs`` simulated trials, the combined network's greedy
    action on the rendered image or, with probability epsilon, K-GPS's; n-step transitions are
    stored with the task reward (Eq. 5, plus the control run's success bonus)."""

    def __init__(self, cfg: FinetuneConfig, net: CombinedNet, task, settings: dict, rng, device):
        from ..control_replay import NStep, ReplayMemory

        self.cfg, self.net, self.task, self.rng, self.device = cfg, net, task, rng, device
        self.bonus = settings["success_bonus"]
        self.env = ReachEnv(cfg.num_envs, task, seed=cfg.seed + 1)
        self.memory = ReplayMemory(cfg.buffer_size)
        self.nstep = NStep(settings["n_step"], cfg.num_envs, settings["gamma"])
        self.obs = self.env.observe()

    def step(self) -> None:
        """One action of every trial, its transitions stored."""
        cfg = self.cfg
        with torch.no_grad():
            a = self.net(render_omega(self.obs, cfg.supersample, self.device))[2].cpu().numpy()
        explore = self.rng.random(cfg.num_envs) < cfg.epsilon
        if explore.any():
            a = np.where(explore, self.env.kgps_actions(), a)
        res = self.env.step(a)
        r = res.reward   # Eq. 5, with the control run's success bonus if it had one
        if self.bonus > 0:
            r = r + success_bonus(res.terminated, res.distance, self.bonus, self.task)
        tr = self.nstep.push(self.obs, a, r, res.final_obs, res.terminated, res.truncated,
                             explore.astype(np.float32))
        if tr:
            self.memory.add(*tr)
        self.obs = res.obs

    def fill(self) -> float:
        """Act until the memory holds ``learning_starts`` transitions; returns the seconds."""
        t0 = time.perf_counter()
        while len(self.memory) < min(self.cfg.learning_starts, self.cfg.buffer_size):
            self.step()
        return time.perf_counter() - t0

    def task_batch(self) -> tuple:
        """Lq's mini-batch: (images, action, return, next images, discount, next Omega)."""
        dev, ss = self.device, self.cfg.supersample
        # several processes: every rank draws the same global batch and renders its own rows
        o, a, r, o2, disc, _ = distributed.my_rows(*self.memory.sample(self.rng, self.cfg.task_batch))
        return (render_omega(o.numpy(), ss, dev), a.to(dev), r.to(dev), render_omega(o2.numpy(), ss, dev),
                disc.to(dev), o2.to(dev))


# ----------------------------------------------------------------------------- one update
def update(net: CombinedNet, target: CombinedNet, opts: tuple, tb, pb, cfg: FinetuneConfig,
           loss_kind: str, trainee=None) -> tuple[float, float]:
    """One step of Eq. 4 on both networks, then the target networks' Polyak step; (Lq, Lp).

    ``trainee``: :func:`eq4_trainee` (several processes: DDP, ``tb`` this rank's rows of the task
    batch, ``pb`` the global perception batch, of which it keeps its rows)."""
    if trainee is None:
        total, lq, lp, _ = weighted_losses(net, target, tb, pb, cfg.beta, cfg.double_dqn, loss_kind,
                                           cfg.naive)
    else:
        total, lq, lp, _ = trainee(tb, None if pb is None else distributed.my_rows(*pb))
        lq, lp = distributed.average(lq), distributed.average(lp)     # the global batch's
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    total.backward()
    for opt in opts:
        opt.step()
    with torch.no_grad():
        for p, tp in zip(net.parameters(), target.parameters()):
            tp.lerp_(p, cfg.target_tau)
    return lq.item(), lp.item()


def eq4_trainee(net: CombinedNet, target: CombinedNet, cfg: FinetuneConfig, loss_kind: str):
    """Eq. 4 of ``net`` as a module in DistributedDataParallel, with several processes; None
    alone (then :func:`update` calls :func:`weighted_losses` itself)."""
    if distributed.world().size == 1:
        return None
    return distributed.wrap(distributed.Loss(net, lambda n, tb, pb: weighted_losses(
        n, target, tb, pb, cfg.beta, cfg.double_dqn, loss_kind, cfg.naive)))


# ----------------------------------------------------------------------------- evaluation, files
class Snapshots:
    """The periodic evaluation (the same simulator trials every time, so that the curve and
    ``best.pt`` compare like with like) and the combined checkpoints of the run."""

    def __init__(self, run: Run, cfg: FinetuneConfig, model: EndToEndModel, device, t_start: float):
        self.run, self.cfg, self.model, self.device, self.t_start = run, cfg, model, device, t_start
        self.history: list[dict] = []
        self.best = (-1.0, -math.inf)

    def evaluate(self, step: int) -> dict:
        """Evaluate the networks being trained; a new best is saved as best.pt."""
        from ..evaluation import run_trials

        net, task, cfg = self.model.net, self.model.task, self.cfg
        # a new CombinedNet: its action-mask buffers start on the CPU, so move it with the nets
        m = EndToEndModel(PerceptionModel(net.perception), ControlPolicy(net.control, task, {}))
        m.to(self.device)
        res = run_trials(m.act_omega, task, cfg.eval_trials, seed=FINETUNE_EVAL_SEED,
                         observe=Observer(m.perceive, "sim", supersample=cfg.supersample))
        h = {"step": step, "success_rate": res.success_rate, "d_med_px": res.d_med_px,
             "d_med_cm": res.d_med_cm, "mean_return": res.mean_return,
             "elapsed_s": round(time.perf_counter() - self.t_start, 1)}
        self.history.append(h)
        key = (res.success_rate, res.mean_return)
        if key >= self.best:
            self.best = key
            self.save("best.pt", step)
        return h

    def save(self, name: str, step: int) -> None:
        """The networks as they are now, a combined checkpoint ``name`` in the run folder."""
        net, model = self.model.net, self.model
        m = EndToEndModel(PerceptionModel(copy.deepcopy(net.perception).cpu(), model.perception.meta),
                          ControlPolicy(copy.deepcopy(net.control).cpu(), model.task, model.control.meta),
                          {**model.meta, "finetune": {"config": asdict(self.cfg), "step": step}})
        m.save(self.run.path(name))


@dataclass
class LossMeter:
    """Mean Lq and Lp since the last progress row."""

    lq: float = 0.0
    lp: float = 0.0
    n: int = 0

    def add(self, lq: float, lp: float) -> None:
        """Count one update's losses."""
        self.lq, self.lp, self.n = self.lq + lq, self.lp + lp, self.n + 1

    def row(self, step: int, seconds: float) -> dict:
        """The progress row's loss columns."""
        return {"step": step, "lq": self.lq / self.n, "lp": self.lp / self.n, "train_s": round(seconds, 1)}


# ----------------------------------------------------------------------------- the run
def finetune(cfg: FinetuneConfig, progress: bool = True, log=_log) -> dict:
    """Weighted (or naive) end-to-end fine-tuning; writes ``cfg.out``; returns the metrics."""
    t_start = time.perf_counter()
    world = _setup_device(cfg)
    dev = world.device
    log = log if world.main else _quiet                 # rank 0 logs, evaluates and writes
    # --- everything that can be wrong is checked before any training --------------------------
    model = EndToEndModel.from_modules(cfg.perception, cfg.control, dof=cfg.dof)
    settings = control_settings(cfg, model)
    real = load_real(cfg)
    run = Run(cfg.out)
    if world.main:
        run.write_config(cfg)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=dev)
    gen.manual_seed(cfg.seed)
    # --- the networks, their targets and optimisers; the data ---------------------------------
    net, target, opts = _networks(cfg, model, dev)
    batches = PerceptionBatches(cfg, real, dev, gen)
    collector = Collector(cfg, net, model.task, settings, rng, dev)
    fill_s = collector.fill()
    log(describe(cfg, settings, batches, real, len(collector.memory), fill_s, dev))
    snaps = Snapshots(run, cfg, model, dev, t_start)
    if world.main and cfg.eval_before:
        h0 = snaps.evaluate(0)
        log(f"before fine-tuning: success {h0['success_rate']:.3f}, d_med {h0['d_med_px']:.2f} px, "
            f"R-bar {h0['mean_return']:.3f}")
    # --- the updates ----------------------------------------------------------------------------
    train_s = train_loop(cfg, net, target, opts, collector, batches, snaps, settings["loss"],
                         progress and world.main, log)
    if not world.main:
        return {}
    snaps.save("model.pt", cfg.steps)
    EndToEndModel.load(run.path("model.pt")).export(run.path("model.ts"))
    metrics = run_metrics(cfg, settings, batches, real, snaps, dev, train_s, fill_s, t_start)
    run.finish(metrics, plot_finetune if run.rows else None, "loss_curves.png", history=snaps.history,
               title=f"{run.name}: {metrics['mode']} (beta {cfg.beta})")
    log(f"wrote {run.out}/model.pt and model.ts; final {snaps.history[-1]}")
    return metrics


def _setup_device(cfg: FinetuneConfig):
    """Threads, the device (refused: CUDA without a GPU) and the process group (rank 0 of 1
    unless torchrun started this); the :func:`distributed.setup` world."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is available to this torch")
    distributed.check_batch(cfg.perception_batch, distributed.env_size(), "--perception-batch")
    return distributed.setup(dev, cfg.task_batch)


def _networks(cfg: FinetuneConfig, model: EndToEndModel, dev) -> tuple[CombinedNet, CombinedNet, tuple]:
    """The combined network on ``dev`` (eval mode), its frozen target copy and the two optimisers
    (perception, control)."""
    model.to(dev)
    net = model.net
    net.eval()              # batch-norm statistics (if any) stay as trained; no dropout anywhere
    target = copy.deepcopy(net)
    for p in target.parameters():
        p.requires_grad_(False)
    opts = (torch.optim.Adam(net.perception.parameters(), lr=cfg.lr_perception),
            torch.optim.Adam(net.control.parameters(), lr=cfg.lr_control))
    return net, target, opts


def run_metrics(cfg: FinetuneConfig, settings: dict, batches: PerceptionBatches, real, snaps: Snapshots,
                dev, train_s: float, fill_s: float, t_start: float) -> dict:
    """The run's metrics.json: settings, timings, the evaluation history and progress rows."""
    run = snaps.run
    return {"mode": "naive" if cfg.naive else "weighted", "beta": cfg.beta, "steps": cfg.steps,
            "device": str(dev), "threads": cfg.threads, "train_seconds": round(train_s, 1),
            "data_seconds": round(batches.seconds, 1), "replay_fill_seconds": round(fill_s, 1),
            "total_seconds": round(time.perf_counter() - t_start, 1),
            "n_step": settings["n_step"], "gamma": settings["gamma"], "loss": settings["loss"],
            "success_bonus": settings["success_bonus"],
            "perception_batch": {"real": cfg.n_real, "sim": batches.n_sim},
            "real_images": len(real) if real is not None else 0,
            "eval_history": snaps.history, "progress": run.rows, "command": cfg.command,
            "config": asdict(cfg)}


def describe(cfg: FinetuneConfig, settings: dict, batches: PerceptionBatches, real, transitions: int,
             fill_s: float, dev) -> str:
    """The line a run logs once its replay memory is filled."""
    return (f"end2end {'naive' if cfg.naive else f'weighted beta={cfg.beta}'}: {transitions} transitions "
            f"collected in {fill_s:.0f} s; perception batch {cfg.n_real} real + {batches.n_sim} sim "
            f"({len(real) if real is not None else 0} real images); task batch {cfg.task_batch}; "
            f"n-step {settings['n_step']}, gamma {settings['gamma']}, {settings['loss']}, success bonus "
            f"{settings['success_bonus']:g}; {cfg.steps} updates on {dev}")


def train_loop(cfg: FinetuneConfig, net, target, opts, collector: Collector, batches: PerceptionBatches,
               snaps: Snapshots, loss_kind: str, progress: bool, log) -> float:
    """``cfg.steps`` updates of Eq. 4 with acting, evaluation and checkpoints; returns seconds."""
    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, desc="fine-tune end2end", unit="step", disable=not progress,
               file=sys.stderr, mininterval=2.0)
    meter = LossMeter()
    trainee = eq4_trainee(net, target, cfg, loss_kind)    # None alone, DDP with several processes
    main = distributed.is_main()
    t_train = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        for _ in range(cfg.env_steps_per_update):
            collector.step()
        tb = collector.task_batch()
        meter.add(*update(net, target, opts, tb, batches.sample(), cfg, loss_kind, trainee))
        bar.update(1)
        if main and (step % cfg.eval_every == 0 or step == cfg.steps):
            row = meter.row(step, time.perf_counter() - t_train)
            h = snaps.evaluate(step)
            row.update({k: h[k] for k in ("success_rate", "d_med_px", "mean_return")})
            snaps.run.record(row)
            meter = LossMeter()
            bar.set_postfix(lq=f"{row['lq']:.2e}", lp=f"{row['lp']:.2e}",
                            success=f"{h['success_rate']:.2f}", d_px=f"{h['d_med_px']:.2f}")
            if not progress:
                log(f"step {step}: Lq {row['lq']:.3e} Lp {row['lp']:.3e} success {h['success_rate']:.3f} "
                    f"d_med {h['d_med_px']:.2f} px R-bar {h['mean_return']:.3f}")
        if main and step % cfg.checkpoint_every == 0:
            snaps.save("checkpoint.pt", step)
    bar.close()
    return time.perf_counter() - t_train


def plot_finetune(rows, path, history, title="") -> Path:
    """Lq and Lp, and the periodic simulator evaluation (d_med, success, R-bar), against updates."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 3.8), dpi=100)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    s = [r["step"] for r in rows]
    ax1.plot(s, [r["lq"] for r in rows], label="Lq (task)")
    ax1.plot(s, [r["lp"] for r in rows], label="Lp (perception)")
    ax1.set_yscale("log")
    ax1.set_xlabel("update")
    ax1.legend()
    ax1.grid(alpha=0.3)
    hs = [h["step"] for h in history]
    ax2.plot(hs, [h["d_med_px"] for h in history], "o-")
    ax2.set_xlabel("update")
    ax2.set_ylabel("d_med [84x84 px] (sim eval)")
    ax2.grid(alpha=0.3)
    ax3.plot(hs, [100 * h["success_rate"] for h in history], "o-", label="success %")
    ax3.plot(hs, [100 * h["mean_return"] for h in history], "s-", label="100 R-bar")
    ax3.set_xlabel("update")
    ax3.legend()
    ax3.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
