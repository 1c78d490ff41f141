"""The SIM stage's training step replayed as one CUDA graph (``--cuda-graph``, issue 19).

At batch 1024 the step of the shipped SIM network is a few milliseconds on an H100, short enough
that the host's kernel launches can set the pace.  Measured side by side
(``bench/bench_perception_speed.py --variants fp32,fp32+graph,bf16+channels_last+graph``, one
H100): in float32 the graph changes little (302,675 against 304,964 images/s; about 5 % more
steps a second in a whole run, whose loop adds its own host work); in bfloat16, whose eager step
is host-bound, it gives 1.38x (422,332) -- but bf16 training leaves the SIM network far less
accurate (docs/perception.md).  PyTorch's whole-network capture recipe
(https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture) records the gather of the
mini-batch from the scene pool, the forward pass, Eq. 2, the backward pass and Adam's step once,
and replays them with one launch.  What stays outside, each step, in the eager step's order: the
pool's renewal (a render every ``online_chunk / online_refresh`` steps) and the draw of the
mini-batch's indices from the run's generator into the graph's index buffer -- so a graphed run
draws the same scenes and batches as an eager one, and its weights differ only by the rounding of
the capturable Adam's arithmetic.

The first :data:`WARMUP` steps are ordinary eager steps on a side stream (they set up cuDNN's
algorithms and Adam's state); the capture follows.  If the capture fails, the run says so once and
goes on with eager steps.
"""
from __future__ import annotations

import sys

import torch

from ..optim import set_lr

WARMUP = 3


def check(cfg, batches, world_size: int) -> None:
    """A ValueError naming what ``--cuda-graph`` needs that this run does not have."""
    need = []
    if torch.device(cfg.device).type != "cuda":
        need.append("--device cuda")
    if batches.pool is None or batches.n_real or batches.n_unlabelled or cfg.augment_sim:
        need.append("online simulator scenes alone (no --real, --unlabelled or --augment-sim)")
    if cfg.compile or cfg.l2sp or world_size > 1:
        need.append("no --compile, no --l2sp and one process")
    if need:
        raise ValueError("--cuda-graph (the SIM stage's step as a CUDA graph) needs " + "; ".join(need))


def adam(params, cfg, device: torch.device) -> torch.optim.Adam:
    """Adam whose state and learning rate (a tensor, set with ``fill_``) live where a graph can
    replay its step."""
    return torch.optim.Adam(params, lr=torch.tensor(cfg.lr, device=device), capturable=True,
                            foreach=True, weight_decay=cfg.weight_decay)


class GraphedStep:
    """Callable ``step(lr) -> loss`` (detached) doing what ``train.train_step`` does on the
    scene pool's mini-batches, replayed as a CUDA graph after :data:`WARMUP` eager steps."""

    def __init__(self, net, opt: torch.optim.Adam, batches, cfg, loss_fn, precision):
        self.net, self.opt, self.batches, self.cfg = net, opt, batches, cfg
        self.loss_fn, self.precision = loss_fn, precision      # Eq. 2; conv_precision
        self.idx = torch.zeros(batches.n_sim, dtype=torch.long, device=batches.device)
        for group in opt.param_groups:   # the learning rate where the graph reads it (a resumed
            if group.get("capturable"):   # run's state dict may have brought it back elsewhere)
                group["lr"] = torch.tensor(float(group["lr"]), device=batches.device)
        self.graph, self.loss, self.eager_steps = None, None, 0
        self.enabled = batches.device.type == "cuda"     # off a GPU: the eager path alone (tests)

    def _draw(self) -> None:
        """The pool's renewal and the mini-batch's indices, as ``ScenePool.sample`` draws them."""
        pool = self.batches.pool
        pool.refresh(self.cfg.online_refresh)
        self.idx.copy_(torch.randint(pool.size, (self.batches.n_sim,), device=self.idx.device,
                                     generator=self.batches.gen))

    def _forward_backward(self) -> torch.Tensor:
        pool = self.batches.pool
        with self.precision(self.net):
            loss = self.loss_fn(self.net, pool.images[self.idx].float(), pool.omega[self.idx])
        loss.backward()
        self.opt.step()
        return loss.detach()

    def __call__(self, lr: float) -> torch.Tensor:
        self._draw()
        set_lr(self.opt, lr)     # (a float for an eager Adam: the eager path alone, as the tests use)
        if self.graph is None and self.enabled and self.eager_steps >= WARMUP:
            self._capture()
        if self.graph is None:
            return self._eager()
        self.graph.replay()
        return self.loss.clone()

    def _eager(self) -> torch.Tensor:
        """One ordinary step (before a capture, on a side stream, as the recipe asks)."""
        self.eager_steps += 1
        if not self.enabled:      # off a GPU, or after a failed capture: no capture to prepare
            self.opt.zero_grad(set_to_none=True)
            return self._forward_backward()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.opt.zero_grad(set_to_none=True)
            loss = self._forward_backward()
        torch.cuda.current_stream().wait_stream(side)
        return loss

    def _capture(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.loss = self._forward_backward()
        except RuntimeError as err:   # not expected; said once, then eager steps
            print(f"warning: CUDA graph capture failed ({str(err).splitlines()[0]}); eager steps",
                  file=sys.stderr, flush=True)
            torch.cuda.synchronize()
            self.enabled, self.loss = False, None
            self.opt.zero_grad(set_to_none=True)
            return
        self.graph = graph
