"""Training on several processes through PyTorch's own engine (torchrun, DistributedDataParallel).

One process per GPU (NCCL), or several CPU processes (gloo, used by the tests).  Under
``torchrun --nproc-per-node N`` (or :func:`launch`, behind ``reach train perception --nproc N``)
every process runs the same training function; :func:`setup` joins the process group from the
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT`` variables.

How a step equals one process's step of the same global batch ``B``: every rank holds the same
seeded generator, draws the same global mini-batch (indices and augmentations alike) and keeps its
own rows ``r*B/N .. (r+1)*B/N`` (:class:`ShardedBatches`); the losses are means over the rows,
so DDP's averaged gradient is the gradient of the global batch's mean, and Adam then takes the
same step on every rank.  The data work (drawing and augmenting) is repeated on every rank; the
network's forward and backward passes, the costly part, are split.  Online scene pools are the
exception: each rank renders its own pool with a rank-offset seed and draws ``B/N`` scenes from
it, so an online run equals a one-process run in distribution, not bitwise.  Only rank 0
validates, checkpoints, logs and writes the run folder.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

ONLINE_SEED_STRIDE = 1_000_003      # rank r's online pool: seed + r * this


@dataclass
class World:
    """This process's place: ``rank`` of ``size`` processes, training on ``device``."""

    rank: int = 0
    size: int = 1
    device: torch.device | None = None

    @property
    def main(self) -> bool:
        """Whether this process is rank 0 (the one that validates and writes files)."""
        return self.rank == 0


def world() -> World:
    """The current process group's rank and size (rank 0 of 1 outside one)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def is_main() -> bool:
    """Whether this process writes the run's files (always, when alone)."""
    return world().main


def env_size() -> int:
    """The number of processes torchrun (or :func:`launch`) started; 1 when run plainly."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_batch(batch: int, size: int, name: str = "--batch") -> None:
    """A ValueError unless ``batch`` rows split evenly over ``size`` processes."""
    if size < 1:
        raise ValueError(f"the number of processes must be at least 1, got {size}")
    if batch % size:
        raise ValueError(f"{name} {batch} is not divisible by the {size} processes: every process "
                         f"takes batch / processes rows of the global batch (choose a multiple of {size})")


def setup(device: torch.device, batch: int) -> World:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): gloo on the CPU, NCCL on
    CUDA (one GPU per process: ``cuda:LOCAL_RANK``).  Checks that ``batch`` divides first.
    Alone, returns rank 0 of 1 on ``device`` and touches nothing."""
    size = env_size()
    if size <= 1:
        return World(0, 1, device)
    check_batch(batch, size)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != size:
        raise RuntimeError(f"process group of {dist.get_world_size()} processes, WORLD_SIZE {size}")
    return World(dist.get_rank(), size, device)


def wrap(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` in DistributedDataParallel when there are several processes; else ``net`` itself.
    Validation and saving keep using ``net`` (its state_dict has no ``module.`` prefix)."""
    w = world()
    if w.size == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel
    dev = next(net.parameters()).device
    return DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)


def agree(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (a clock reading, so that all ranks set the same learning
    rate and stop at the same step); ``value`` itself when alone."""
    if world().size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())


def average(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over the ranks (a loss of each rank's rows -> the global batch's);
    ``value`` itself when alone."""
    if world().size == 1:
        return value
    t = value.detach().clone()
    dist.all_reduce(t)
    return t / world().size


def barrier() -> None:
    """Wait for every rank (nothing when alone)."""
    if world().size > 1:
        dist.barrier()


def my_rows(*tensors: torch.Tensor) -> tuple:
    """This rank's rows ``r*B/N .. (r+1)*B/N`` of each of a global batch's tensors (all of
    them when alone)."""
    w = world()
    if w.size == 1:
        return tensors
    n = len(tensors[0]) // w.size
    return tuple(t[w.rank * n:(w.rank + 1) * n] for t in tensors)


class Loss(torch.nn.Module):
    """A loss of a network as a module, ``forward(*args) = fn(net, *args)``, so that DDP can wrap
    a loss that calls several of the network's parts (end-to-end fine-tuning's Eq. 4)."""

    def __init__(self, net: torch.nn.Module, fn):
        super().__init__()
        self.net, self.fn = net, fn

    def forward(self, *args):
        """The loss of ``net`` on ``args``."""
        return self.fn(self.net, *args)


class ShardedBatches:
    """A batch sampler's global mini-batches, of which this rank keeps its rows.

    ``sampler`` is a :class:`reach_core.perception.train.BatchSampler` built with the shared
    generator (so its ``sample()`` draws the global batch, identical on every rank); its other
    attributes are passed through."""

    def __init__(self, sampler, w: World):
        self.sampler, self.world = sampler, w
        if sampler.n_unlabelled:
            check_batch(sampler.n_unlabelled, w.size, "the unlabelled rows of a batch")

    def __getattr__(self, name):
        return getattr(self.sampler, name)

    def sample(self):
        """This rank's rows of the global mini-batch (images, Omega)."""
        return my_rows(*self.sampler.sample())

    def unlabelled(self):
        """This rank's rows of the global unlabelled batch."""
        return my_rows(*self.sampler.unlabelled())


def sharded_sampler(make, cfg, data, device, gen: torch.Generator, w: World):
    """The batch sampler of a run on ``w``: ``make(cfg, data, device, gen)`` itself when alone; a
    :class:`ShardedBatches` of the shared generator's global batches; online, a sampler of its
    own (``B/N`` rows, a generator seeded ``seed + rank * ONLINE_SEED_STRIDE``)."""
    if w.size == 1:
        return make(cfg, data, device, gen)
    if not cfg.online:
        return ShardedBatches(make(cfg, data, device, gen), w)
    local = torch.Generator(device=device)
    local.manual_seed(cfg.seed + w.rank * ONLINE_SEED_STRIDE)
    return make(dataclasses.replace(cfg, batch=cfg.batch // w.size), data, device, local)


# ----------------------------------------------------------------------------- local launcher
def free_port() -> int:
    """A free TCP port on this machine for the process group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, size: int, port: int, threads: int, fn, args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(size),
                       "LOCAL_WORLD_SIZE": str(size), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    if threads:
        torch.set_num_threads(threads)
    ok = False
    try:
        fn(*args)
        ok = True
    finally:
        if dist.is_initialized():
            if ok:   # leave together: a rank tearing gloo down while its peer still finishes
                dist.barrier()   # (rank 0 writes the run folder) can abort the peer (SIGABRT)
            dist.destroy_process_group()


def launch(nproc: int, fn, *args, threads: int = 1) -> None:
    """Run ``fn(*args)`` in ``nproc`` processes on this machine, as torchrun would (the same
    environment variables); ``threads`` torch CPU threads each (0: torch's default).  ``fn`` must be
    a module-level function (the processes are spawned).  A failing rank raises here."""
    import torch.multiprocessing as mp
    mp.spawn(_worker, args=(nproc, free_port(), threads, fn, args), nprocs=nproc, join=True)
