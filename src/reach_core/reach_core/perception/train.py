"""Training and adaptation of the perception network (paper section 5.1, Eq. 2).

Read :func:`train` top to bottom: load the data, build the network (from scratch, adapted from a
SIM checkpoint, or resumed), then the loop, each step of which is

1. set the learning rate (:func:`lr_at`: linear warm-up, cosine decay over steps or time),
2. draw a mini-batch (:class:`BatchSampler`: simulator images, rendered in memory, read from a
   dataset or rendered online, plus ``real_fraction`` real images with the augmentations and
   regularisers of :mod:`reach_core.perception.augment`),
3. minimise Eq. 2, 0.5 ||Omega_hat - Omega||^2 (+ L2-SP towards the starting weights),
   (with ``--cuda-graph``, steps 2-3 replayed as one CUDA graph: :mod:`.cuda_graph`; with
   ``--ema``, a moving average of the weights updated after each),
4. every ``eval_every`` steps validate (the average, if any) and record a progress row, and
   checkpoint,

and finally save ``model.pt`` and the run folder's files (:class:`reach_core.runs.Run`).
Every random draw comes from one ``torch.Generator`` seeded with ``cfg.seed`` (and
``torch.manual_seed`` for the initialisation), so that a run resumed from its checkpoint equals an
uninterrupted one.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..kinematics import check_tool
from ..optim import set_lr
from ..randomized_renderer import ScenePool
from ..runs import Run, plot_progress
from . import cuda_graph
from .augment import augment, paste_clutter, randomize_background, robot_mask, swap_backgrounds
from .config import ARCH_FIELDS, SIM_VAL_SEED, TrainConfig
from .evaluate import perception_errors
from .model import PerceptionModel, PerceptionNet, predict_batched


# ----------------------------------------------------------------------------- pieces of a step
def trainable_parameters(net: PerceptionNet, part: str = "all") -> list:
    """The parameters an adaptation trains, the others frozen (``requires_grad`` off): ``all``;
    ``features``, all but the head (the map from features to Omega, which is the same in every
    domain, so that a few hundred real frames cannot be memorised there); ``early``, only the
    convolutions before the last feature layer (spatial: convolutions 1-3, not the keypoint maps;
    paper: convolutions 1-2)."""
    mods = list(net.features)
    if part == "all":
        keep = list(net.parameters())
    elif part == "features":
        keep = list(net.features.parameters())
    else:   # early: what comes before the last convolution (with its BatchNorm, if any)
        last = max(i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d))
        keep = [p for m in mods[:last] for p in m.parameters()]
    ids = {id(p) for p in keep}
    for p in net.parameters():
        p.requires_grad_(id(p) in ids)
    return keep


def lr_at(step: int, cfg: TrainConfig, elapsed: float | None = None) -> float:
    """Linear warm-up, then cosine decay to lr * lr_final_fraction over the steps (or over the
    time budget, given the training seconds elapsed)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.time_budget and elapsed is not None:
        t = min(1.0, elapsed / cfg.time_budget)
    else:
        t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    lo = cfg.lr * cfg.lr_final_fraction
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * t))


def perception_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, l2sp: float = 0.0,
                    start: list | None = None, delta: float = 0.0) -> torch.Tensor:
    """Eq. 2, 0.5 ||Omega_hat - Omega||^2 averaged over the batch, plus ``l2sp`` times the squared
    distance of the weights to ``start`` (L2-SP) when ``start`` is given.

    ``delta`` > 0 replaces Eq. 2 by the pseudo-Huber loss of the error's norm,
    delta^2 (sqrt(1 + ||r||^2 / delta^2) - 1): Eq. 2 where ||r|| << delta, delta ||r|| beyond, so
    the large errors weigh as they do in the reported e = mean ||r|| (Table 1) instead of squared."""
    sq = ((net(x) - y) ** 2).sum(dim=1)
    if delta > 0.0:
        loss = (delta * delta * (torch.sqrt(1.0 + sq / (delta * delta)) - 1.0)).mean()
    else:
        loss = 0.5 * sq.mean()
    if start is not None:
        loss = loss + l2sp * sum(((p - p0) ** 2).sum() for p, p0 in zip(net.parameters(), start))
    return loss


def consistency_loss(net: nn.Module, teacher: nn.Module, plain: torch.Tensor,
                     augmented: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unlabelled frames (mean teacher, Tarvainen & Valpola 2017): the student's Omega on the
    augmented frame against the teacher's on the plain frame for the arm's half, and against the
    painted virtual target's known place for the target's half."""
    with torch.no_grad():
        soft = teacher(plain)
    pred = net(augmented)
    return 0.5 * (((pred[:, 2:] - soft[:, 2:]) ** 2).sum(1) + ((pred[:, :2] - target) ** 2).sum(1)
                  ).mean()


@torch.no_grad()
def update_teacher(teacher: nn.Module, net: nn.Module, decay: float) -> None:
    """The teacher's weights: an exponential moving average of the student's."""
    for t, s in zip(teacher.parameters(), net.parameters()):
        t.lerp_(s, 1.0 - decay)
    for t, s in zip(teacher.buffers(), net.buffers()):
        t.copy_(s)


def step_loss(net, teacher, batches, cfg, start) -> torch.Tensor:
    """One step's loss: Eq. 2 on a mini-batch, plus the unlabelled frames' consistency."""
    x, y = batches.sample()
    loss = perception_loss(net, x, y, cfg.l2sp, start, cfg.loss_delta)
    if teacher is not None:
        loss = loss + cfg.unlabelled_weight * consistency_loss(net, teacher, *batches.unlabelled())
    return loss


def precision_dtype(cfg: TrainConfig) -> torch.dtype | None:
    """The convolutions' dtype of --precision (None: float32)."""
    return torch.bfloat16 if cfg.precision == "bf16" else None


@contextmanager
def conv_precision(net: PerceptionNet, dtype: torch.dtype | None):
    """The network's convolutions in ``dtype`` (None: float32) inside the block."""
    old, net.conv_dtype = net.conv_dtype, dtype
    try:
        yield net
    finally:
        net.conv_dtype = old


def speed_up(net: PerceptionNet, cfg: TrainConfig) -> nn.Module:
    """The module the training steps call: the network (DistributedDataParallel when several
    processes), compiled with --compile.  --channels-last is the network's memory layout (set
    when it is moved to the device); --precision bf16 is :func:`conv_precision` around the loop."""
    trainee = distributed.wrap(net)
    return torch.compile(trainee) if cfg.compile else trainee


def train_step(opt, net: PerceptionNet, trainee: nn.Module, teacher, batches, cfg: TrainConfig,
               start, lr: float) -> torch.Tensor:
    """One update of ``net`` through ``trainee`` (:func:`speed_up`) at the run's precision; the
    loss, detached (not synchronised)."""
    with conv_precision(net, precision_dtype(cfg)):
        return optimise(opt, step_loss(trainee, teacher, batches, cfg, start), lr)


def graphed_step(net: PerceptionNet, opt, batches, cfg: TrainConfig) -> cuda_graph.GraphedStep:
    """--cuda-graph's step: Eq. 2 (or --loss-delta's loss) on the scene pool's mini-batches at the
    run's precision."""
    loss = partial(perception_loss, delta=cfg.loss_delta)
    return cuda_graph.GraphedStep(net, opt, batches, cfg, loss,
                                  lambda n: conv_precision(n, precision_dtype(cfg)))


def optimizer(net: PerceptionNet, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over the layers --adapt-part trains, at --lr with --weight-decay (capturable, with
    --cuda-graph)."""
    if cfg.cuda_graph:
        return cuda_graph.adam(trainable_parameters(net, cfg.adapt_part), cfg, torch.device(cfg.device))
    return torch.optim.Adam(trainable_parameters(net, cfg.adapt_part), lr=cfg.lr,
                            weight_decay=cfg.weight_decay)


def place(net: PerceptionNet, cfg: TrainConfig, device: torch.device) -> PerceptionNet:
    """The network on ``device``, in channels-last layout with --channels-last."""
    net.to(device)
    return net.to(memory_format=torch.channels_last) if cfg.channels_last else net


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> torch.Tensor:
    """One Adam step on ``loss`` at learning rate ``lr``; returns the loss, detached."""
    set_lr(opt, lr)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def weight_average(net: PerceptionNet, cfg: TrainConfig):
    """With --ema: torch's exponential moving average of ``net``'s weights and batch-norm
    statistics (``AveragedModel``), updated after every step, validated and saved in place of the
    last weights; None without."""
    if not cfg.ema:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)


def kept(net: PerceptionNet, ema) -> PerceptionNet:
    """The network a run validates and saves: the weight average with --ema, else ``net``."""
    return net if ema is None else ema.module


def validate(net: PerceptionNet, val: dict) -> dict:
    """Mean e per validation set ({name: Dataset} -> {name: e_mean}); the net is left training."""
    net.eval()
    model = PerceptionModel(net)
    res = {}
    for name, ds in val.items():
        res[name] = perception_errors(predict_batched(model, ds.images), ds.omega)[0]["e_mean"]
    net.train()
    return res


# ----------------------------------------------------------------------------- data
@dataclass
class TrainData:
    """What a run trains and validates on."""

    sim_x: np.ndarray | None      # simulator images (N, 84, 84) float16; None when online
    sim_y: np.ndarray | None      # their normalised Omega (N, 5)
    real: object | None           # a reach_core.datasets.Dataset of real images (adaptation)
    val: dict                     # {name: Dataset} monitored during training
    seconds: float                # time spent loading or rendering it
    unlabelled: tuple | None = None   # (images (N, 84, 84), painted targets' Omega (N, 2))
    setup_seconds: dict | None = None  # seconds before the first step: data, sampler, total


def _sim_data(cfg: TrainConfig):
    from ..datasets import load_dataset, render_sim_net_images
    from ..scene import normalise

    if cfg.sim:
        ds = load_dataset(cfg.sim, seed=cfg.seed, workers=max(4, cfg.workers), limit=cfg.sim_limit,
                          tool=cfg.tool)
        return ds.images.astype(np.float16, copy=False), ds.omega
    t0 = time.perf_counter()
    images, target, q = render_sim_net_images(cfg.sim_images, seed=cfg.seed, supersample=cfg.supersample,
                                              workers=cfg.workers, tool=cfg.tool)
    Run.log(f"rendered {cfg.sim_images} simulator images in {time.perf_counter() - t0:.1f} s "
            f"({cfg.workers} workers, supersample {cfg.supersample})")
    return images, normalise(target, q)


def load_data(cfg: TrainConfig) -> TrainData:
    """The simulator set (unless online), the real set (an adaptation) and the validation sets."""
    from ..camera_model import load_camera
    from ..datasets import load_dataset, load_unlabelled, sim_test_set

    t0 = time.perf_counter()
    calibration = load_camera(cfg.camera)
    sim_x, sim_y = _sim_data(cfg) if not cfg.online else (None, None)
    real = unlabelled = None
    if cfg.adapt_from and cfg.real:
        real = load_dataset(cfg.real, virtual_targets=cfg.virtual_targets, seed=cfg.seed,
                            workers=max(4, cfg.workers), near_target=cfg.near_target,
                            calibration=calibration, tool=cfg.tool)
    if cfg.adapt_from and cfg.unlabelled:
        unlabelled = load_unlabelled(cfg.unlabelled, calibration=calibration,
                                     copies=max(1, cfg.virtual_targets), seed=cfg.seed, tool=cfg.tool)
    val = {"sim": sim_test_set(cfg.val_sim, SIM_VAL_SEED, tool=cfg.tool)} if cfg.val_sim else {}
    if cfg.val_real:
        val["real_val"] = load_dataset(cfg.val_real, seed=cfg.seed + 1, calibration=calibration,
                                       tool=cfg.tool)
    return TrainData(sim_x, sim_y, real, val, time.perf_counter() - t0, unlabelled)


class BatchSampler:
    """Eq. 2's mini-batches: ``batch - n_real`` simulator images then ``n_real`` real ones.

    Simulator images come from the in-memory set (a share ``randomize`` given a random look,
    :func:`randomize_background`) or, online, from a :class:`ScenePool` renewed every step; with
    ``augment_sim`` they are augmented too.  Real images get, in this order, background swaps,
    pasted clutter (both kept off the robot: :func:`robot_mask`) and the augmentations."""

    def __init__(self, cfg: TrainConfig, data: TrainData, device: torch.device, gen: torch.Generator):
        self.cfg, self.gen, self.device = cfg, gen, device
        self.pool = None
        if cfg.online:
            self.pool = ScenePool(cfg.online_pool, gen, device, randomize=cfg.randomize,
                                  chunk=cfg.online_chunk,
                                  supersample=cfg.supersample, near=cfg.near_target,
                                  distractors=cfg.distractors, realism=cfg.realism, tool=cfg.tool)
        else:
            self.sim_x = torch.from_numpy(np.ascontiguousarray(data.sim_x)).to(device)
            self.sim_y = torch.from_numpy(np.ascontiguousarray(data.sim_y, dtype=np.float32)).to(device)
        self.n_real = 0
        if data.real is not None:
            self.real_x = torch.from_numpy(data.real.images.astype(np.float16)).to(device)
            self.real_y = torch.from_numpy(data.real.omega.astype(np.float32)).to(device)
            self.n_real = int(round(cfg.batch * cfg.real_fraction))
            if cfg.real_clutter or cfg.background_swap:
                self.real_keep = torch.cat([
                    robot_mask(self.real_y[i:i + 1024], margin=cfg.clutter_margin, camera=data.real.camera,
                               tool=cfg.tool)
                    for i in range(0, len(self.real_y), 1024)])
        self.n_sim = cfg.batch - self.n_real
        self.n_unlabelled = 0
        if data.unlabelled is not None:
            self.unl_x = torch.from_numpy(data.unlabelled[0].astype(np.float16)).to(device)
            self.unl_t = torch.from_numpy(data.unlabelled[1].astype(np.float32)).to(device)
            self.n_unlabelled = max(1, int(round(cfg.batch * cfg.unlabelled_fraction)))

    def unlabelled(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unlabelled frames: (plain images, augmented images, the painted targets' Omega)."""
        idx = torch.randint(len(self.unl_x), (self.n_unlabelled,), device=self.device,
                            generator=self.gen)
        x = self.unl_x[idx].float()
        return x, augment(x, self.cfg, self.gen), self.unl_t[idx]

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One mini-batch (images (B, 84, 84) float32, normalised Omega (B, 5))."""
        x, y = self._sim()
        if self.cfg.augment_sim:
            x = augment(x, self.cfg, self.gen)
        if self.n_real:
            xr, yr = self._real()
            x, y = torch.cat([x, xr]), torch.cat([y, yr])
        return x, y

    def _sim(self):
        cfg = self.cfg
        if self.pool is not None:
            self.pool.refresh(cfg.online_refresh)
            return self.pool.sample(self.n_sim)
        idx = torch.randint(len(self.sim_x), (self.n_sim,), device=self.device, generator=self.gen)
        x, y = self.sim_x[idx].float(), self.sim_y[idx]
        if cfg.randomize:
            x = randomize_background(x, cfg.randomize, self.gen)
        return x, y

    def _real(self):
        cfg, gen = self.cfg, self.gen
        idx = torch.randint(len(self.real_x), (self.n_real,), device=self.device, generator=gen)
        x = self.real_x[idx].float()
        if cfg.background_swap:
            x = swap_backgrounds(x, self.real_keep[idx], cfg.background_swap, gen)
        if cfg.real_clutter:
            x = paste_clutter(x, self.real_keep[idx], cfg.real_clutter, gen, bars=cfg.distractors)
        return augment(x, cfg, gen), self.real_y[idx]

    def sim_images(self, data: TrainData) -> int:
        """Simulator images seen: the set's size, or the scenes rendered online."""
        return self.pool.rendered if self.pool is not None else len(data.sim_x)


# ----------------------------------------------------------------------------- run state
@dataclass
class TrainState:
    """Where a run is: steps done, training seconds (validation excluded), when the simulator
    validation error first reached ``target_e``; with the clock of the current segment."""

    step: int = 0
    elapsed: float = 0.0
    reached: dict | None = None
    t_seg: float = 0.0

    def start_clock(self) -> None:
        """Start timing a training segment."""
        self.t_seg = time.perf_counter()

    def now(self) -> float:
        """Training seconds so far, the running segment included."""
        return self.elapsed + time.perf_counter() - self.t_seg

    def stop_clock(self, device: torch.device) -> None:
        """Add the running segment (after the GPU's queued work) to ``elapsed``."""
        if device.type == "cuda":
            torch.cuda.synchronize()
        self.elapsed += time.perf_counter() - self.t_seg

    def out_of_time(self, cfg: TrainConfig, now: float) -> bool:
        """Whether the time budget (if any) is spent."""
        return bool(cfg.time_budget and now >= cfg.time_budget)


def training_device(cfg: TrainConfig) -> torch.device:
    """The device of ``cfg.device``, a clear error for CUDA without a GPU."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA GPU is available to this torch")
    return device


def build_net(cfg: TrainConfig, adapting: bool) -> tuple[PerceptionNet, str]:
    """The network to train and a note on where it starts: ``adapt_from`` (whose architecture
    then overrides the config's), or a fresh one of the config's architecture."""
    if not cfg.adapt_from:
        return PerceptionNet(cfg.arch_config()), "from scratch (random initialisation)"
    base = PerceptionModel.load(cfg.adapt_from)
    check_tool(cfg.tool, base.tool, f"perception model {cfg.adapt_from}")
    for name in ARCH_FIELDS:
        setattr(cfg, name, getattr(base.arch, name))
    return base.net, f"{'adapted' if adapting else 'continued'} from {cfg.adapt_from}"


def save_state(run: Run, cfg: TrainConfig, net, opt, gen, state: TrainState, ema=None) -> None:
    """The run's checkpoint.pt: everything :func:`restore_state` needs to continue."""
    run.save_checkpoint({"model": net.state_dict(), "optimizer": opt.state_dict(),
                         "generator": gen.get_state(), "step": state.step, "elapsed": state.elapsed,
                         "reached": state.reached, "config": asdict(cfg),
                         "ema": ema.state_dict() if ema is not None else None})


def restore_state(run: Run, net, opt, gen, ema=None) -> TrainState:
    """Load the run's checkpoint.pt into ``net``, ``opt``, ``gen`` and the weight average; its
    progress rows into ``run``."""
    ck = run.load_checkpoint()
    net.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    gen.set_state(ck["generator"])
    if ema is not None:
        if ck.get("ema") is None:
            raise ValueError(f"{run.out}: its checkpoint has no weight average; resume without --ema")
        ema.load_state_dict(ck["ema"])
    run.log(f"resuming {run.out} at step {ck['step']}")
    return TrainState(ck["step"], ck["elapsed"], ck.get("reached"))


def describe(cfg: TrainConfig, net, note: str, data: TrainData, device) -> str:
    """The line a run logs before its first step."""
    params = sum(p.numel() for p in net.parameters())
    real = data.real
    return (f"perception {cfg.arch_config()} ({params} parameters), {note}; "
            + (f"{len(data.sim_x)} simulator images" if not cfg.online else
               f"simulator scenes rendered on {device} ({cfg.randomize:.0%} randomised; a pool of "
               f"{cfg.online_pool} renewed by {cfg.online_refresh:g} a step)")
            + (f", {len(real)} real images ({cfg.real_fraction:.0%} of each batch)" if real else "")
            + (f", {len(data.unlabelled[0])} unlabelled real images (mean teacher)"
               if data.unlabelled is not None else "")
            + f"; {cfg.steps} steps of {cfg.batch} on {device}")


# ----------------------------------------------------------------------------- the run
def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          stop_at: int | None = None) -> dict | None:
    """Train (or adapt) a perception network; writes the run folder ``cfg.out``; returns metrics.

    ``stop_at`` stops after that many steps with a checkpoint but no final model, as an
    interrupted run would (``resume=True`` then continues it)."""
    cfg.validate()
    t_setup = time.perf_counter()
    world = distributed.setup(training_device(cfg), cfg.batch)   # rank 0 of 1 unless torchrun
    run = Run(cfg.out)
    device = world.device
    torch.manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = load_data(cfg)
    net, note = build_net(cfg, adapting=data.real is not None)
    place(net, cfg, device)
    opt = optimizer(net, cfg)
    ema = weight_average(net, cfg)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    state = restore_state(run, net, opt, gen, ema) if resume else TrainState()
    if world.main:
        run.write_config(cfg)
    t_pool = time.perf_counter()
    batches = distributed.sharded_sampler(BatchSampler, cfg, data, device, gen, world)
    if cfg.cuda_graph:
        cuda_graph.check(cfg, batches, world.size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    data.setup_seconds = {"data": round(data.seconds, 2), "sampler": round(time.perf_counter() - t_pool, 2),
                          "total": round(time.perf_counter() - t_setup, 2)}
    start = [p.detach().clone() for p in net.parameters()] if cfg.l2sp else None
    if world.main:
        several = f" ({world.size} processes)" if world.size > 1 else ""
        run.log(describe(cfg, net, note, data, device) + several)
        run.log("set up in {total} s (data {data} s, the sampler's pool {sampler} s)".format(
            **data.setup_seconds))
    if not fit(run, cfg, net, opt, gen, batches, data, state, start, progress and world.main, stop_at, ema):
        return None
    if not world.main:   # rank 0 writes the run folder
        return None
    return finish(run, cfg, kept(net, ema), data, batches, state, note, device)


def fit(run: Run, cfg: TrainConfig, net, opt, gen, batches: BatchSampler, data: TrainData,
        state: TrainState, start, progress: bool, stop_at: int | None, ema=None) -> bool:
    """The training loop; False when stopped at ``stop_at`` (checkpointed, not finished)."""
    from tqdm import tqdm

    device = batches.device
    net.train()
    trainee = speed_up(net, cfg)
    main = distributed.is_main()
    teacher = copy.deepcopy(net).eval() if batches.n_unlabelled else None
    graphed = graphed_step(net, opt, batches, cfg) if cfg.cuda_graph else None
    bar = tqdm(total=cfg.steps, initial=state.step, desc="train perception", unit="step",
               disable=not progress, file=sys.stderr, mininterval=2.0)
    loss_sum, loss_n = torch.zeros((), device=device), 0
    state.start_clock()
    now = distributed.agree(state.elapsed, device)
    while state.step < cfg.steps and not state.out_of_time(cfg, now):
        lr = lr_at(state.step, cfg, now)
        loss_sum += (graphed(lr) if graphed is not None else
                     train_step(opt, net, trainee, teacher, batches, cfg, start, lr))
        if teacher is not None:
            update_teacher(teacher, net, cfg.teacher_decay)
        if ema is not None:
            ema.update_parameters(net)
        loss_n += 1
        state.step += 1
        bar.update(1)
        now = distributed.agree(state.now(), device)   # rank 0's clock: same lr and stop
        last = state.step == cfg.steps or state.out_of_time(cfg, now)
        if state.step % cfg.eval_every == 0 or last:
            mean_loss = float(distributed.average(loss_sum)) / loss_n   # the global batch's
            state.stop_clock(device)
            row = record_validation(run, cfg, net, data, state, lr, mean_loss, ema) if main else {}
            state.start_clock()
            now = distributed.agree(state.elapsed, device)
            loss_sum, loss_n = torch.zeros((), device=device), 0
            bar.set_postfix(loss=f"{mean_loss:.2e}",
                            **{k: f"{v:.4f}" for k, v in row.items() if k.startswith("e_")})
            if main and (state.step % cfg.checkpoint_every < cfg.eval_every or last):
                save_state(run, cfg, net, opt, gen, state, ema)
        if stop_at is not None and state.step >= stop_at:
            if main:
                save_state(run, cfg, net, opt, gen, state, ema)
            bar.close()
            return False
    bar.close()
    return True


def record_validation(run: Run, cfg: TrainConfig, net, data: TrainData, state: TrainState,
                      lr: float, mean_loss: float, ema=None) -> dict:
    """Validate the network the run keeps (:func:`kept`; with --ema the last weights too, as
    ``e_live_*``), note when the simulator error first reaches ``target_e`` (a SIM run), and
    record the progress row."""
    ev = validate(kept(net, ema), data.val)
    live = {f"e_live_{k}": v for k, v in validate(net, data.val).items()} if ema is not None else {}
    elapsed = state.elapsed
    row = {"step": state.step, "loss": mean_loss, "lr": lr, "train_seconds": round(elapsed, 3),
           "images_per_s": round(state.step * cfg.batch / max(elapsed, 1e-9), 1),
           **{f"e_{k}": v for k, v in ev.items()}, **live}
    if state.reached is None and ev.get("sim", 1.0) <= cfg.target_e and data.real is None:
        state.reached = {"step": state.step, "train_seconds": round(elapsed, 2)}
    return run.record(row)


def finish(run: Run, cfg: TrainConfig, net, data: TrainData, batches: BatchSampler,
           state: TrainState, note: str, device) -> dict:
    """Save model.pt (with the metrics in its metadata) and the run folder's files."""
    real = data.real
    model = PerceptionModel(net.eval(), {
        "kind": "adapted" if real is not None else "sim", "config": asdict(cfg),
        "steps": state.step, "train_seconds": round(state.elapsed, 2)})
    model.to("cpu")
    metrics = {
        "steps": state.step, "batch": cfg.batch, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": str(torch.__version__), "train_seconds": round(state.elapsed, 2),
        "data_seconds": round(data.seconds, 2), "setup_seconds": data.setup_seconds,
        "images_per_s": round(state.step * cfg.batch / max(state.elapsed, 1e-9), 1),
        "parameters": sum(p.numel() for p in net.parameters()),
        "final": run.rows[-1] if run.rows else {},
        "reached_target": state.reached, "target_e": cfg.target_e,
        "sim_images": batches.sim_images(data),
        "real_images": len(real) if real is not None else 0,
        "real_frames": len(set(real.files)) if real is not None else 0,
        "real_frames_skipped": len(real.skipped) if real is not None else 0,
        "unlabelled_images": len(data.unlabelled[0]) if data.unlabelled is not None else 0,
        "command": cfg.command,
    }
    model.meta["metrics"] = metrics
    model.save(run.path("model.pt"))
    run.finish(metrics, plot_progress, "loss_curve.png", title=f"{run.name}: {note}",
               loss_label="training loss (Eq. 2)")
    run.log(f"wrote {run.out}/model.pt; final {run.rows[-1] if run.rows else {}}")
    return metrics
