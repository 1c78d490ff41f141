r"""Perception training speed (issue 19): images/s of the shipped SIM recipe's training step with
each speed option, side by side in one run, on one device.

    python bench/bench_perception_speed.py [--device cuda] [--seconds 15] [--batch 256]
        [--variants fp32,channels_last,bf16,bf16+channels_last,bf16+channels_last+compile]
        (an option batchN in a variant: that mini-batch instead, e.g. fp32,fp32+batch1024;
         chunkN: the online pool renewed N scenes at a time, e.g. fp32+chunk8192; graph: the step
         as a CUDA graph, checked against the same steps eager)
        [--recipe perception_sim_dr] [--pool 65536]

Each variant builds the recipe's run (the shipped spatial-softmax network from scratch, scenes
rendered online into the pool, the same mini-batches) with the options its name lists
(``precision: bf16``, ``channels_last``, ``compile``), runs warm-up steps (the compilation, for
``compile``; timed and printed apart), then times ``perception.train.train_step`` -- the loop's own
step: sampling (the renderer's pool refresh, augmentation), forward, backward, Adam -- for
``--seconds``.  Two components are timed alone for the baseline and the fastest variant: the
sampler (rendering kept ahead of the network or not) and the network's update on a fixed batch.
Prints images/s per variant and its ratio to fp32.  The accuracy side (SIM e <= 0.005 within a
budget) is a training run: ``reach train perception --config perception_sim_dr --precision bf16
--channels-last --time-budget 300`` prints when it reaches ``target_e``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import time
from dataclasses import replace

import torch

from reach_core.configs import load_recipe
from reach_core.perception.config import TrainConfig

T = importlib.import_module("reach_core.perception.train")   # the module, not the package's train()

OPTIONS = {"fp32": {}, "channels_last": {"channels_last": True}, "bf16": {"precision": "bf16"},
           "compile": {"compile": True}, "graph": {"cuda_graph": True}}


def variant_config(base: TrainConfig, name: str) -> TrainConfig:
    """``base`` with the options of a variant's name (``bf16+channels_last``)."""
    opts = {}
    for part in name.split("+"):
        if part.startswith("batch") and part[5:].isdigit():   # batch1024: another mini-batch size
            opts["batch"] = int(part[5:])
            continue
        if part.startswith("chunk") and part[5:].isdigit():   # chunk8192: the pool's render chunk
            opts["online_chunk"] = int(part[5:])
            continue
        if part not in OPTIONS:
            raise SystemExit(f"unknown option {part!r} in variant {name!r}; options: {', '.join(OPTIONS)}")
        opts |= OPTIONS[part]
    return replace(base, **opts)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, seconds: float, device: torch.device) -> float:
    """Calls of ``fn`` per second over about ``seconds``."""
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
        if n % 20 == 0:
            _sync(device)
    _sync(device)
    return n / (time.perf_counter() - t0)


def build(cfg: TrainConfig, graph: bool | None = None):
    """The run's network, optimiser, sampler and step (``step()``: the loop's own, or the
    CUDA-graph step for ``cuda_graph``; ``graph=False``: that step's eager path alone)."""
    torch.manual_seed(cfg.seed)
    device = T.training_device(cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = T.load_data(cfg)
    net, _ = T.build_net(cfg, adapting=False)
    T.place(net, cfg, device)
    opt = T.optimizer(net, cfg)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    batches = T.BatchSampler(cfg, data, device, gen)
    net.train()
    trainee = T.speed_up(net, cfg)
    if cfg.cuda_graph:
        graphed = T.graphed_step(net, opt, batches, cfg)
        graphed.enabled = graphed.enabled and graph is not False   # (never off a GPU)

        def step():
            return graphed(cfg.lr)
    else:
        def step():
            return T.train_step(opt, net, trainee, None, batches, cfg, None, cfg.lr)
    return net, opt, batches, trainee, step


def graph_matches_eager(cfg: TrainConfig, steps: int = 20) -> float:
    """The largest weight difference after ``steps`` steps replayed as a CUDA graph and the same
    steps eager (the same capturable Adam, seed and batches)."""
    nets = []
    for graph in (True, False):
        net, _, _, _, step = build(replace(cfg, cuda_graph=True), graph=graph)
        for _ in range(steps):
            step()
        nets.append(net)
    _sync(torch.device(cfg.device))
    return max((a - b).abs().max().item() for a, b in zip(nets[0].parameters(), nets[1].parameters()))


def measure(cfg: TrainConfig, seconds: float, warmup: int, components: bool) -> dict:
    """One variant: warm-up time, steps/s of the whole step, and (``components``) of its parts."""
    net, opt, batches, trainee, step = build(cfg)
    device = batches.device
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    row = {"warmup_s": time.perf_counter() - t0, "steps_per_s": _rate(step, seconds, device)}
    if components:
        x, y = batches.sample()

        def update():
            with T.conv_precision(net, T.precision_dtype(cfg)):
                T.optimise(opt, T.perception_loss(trainee, x, y), cfg.lr)

        row["sampler_per_s"] = _rate(batches.sample, seconds / 2, device)
        row["update_per_s"] = _rate(update, seconds / 2, device)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--recipe", default="perception_sim_dr")
    p.add_argument("--variants", default="fp32,channels_last,bf16,bf16+channels_last,"
                                         "bf16+channels_last+compile")
    p.add_argument("--seconds", type=float, default=15.0, help="timed seconds per variant")
    p.add_argument("--warmup", type=int, default=30, help="untimed steps first (compilation)")
    p.add_argument("--batch", type=int, default=0, help="mini-batch (0: the recipe's)")
    p.add_argument("--pool", type=int, default=0, help="online pool (0: the recipe's)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    recipe = load_recipe(a.recipe, TrainConfig)
    with tempfile.TemporaryDirectory() as tmp:
        base = TrainConfig(**(recipe | {"device": a.device, "out": os.path.join(tmp, "run"), "val_sim": 10}))
        base = replace(base, batch=a.batch or base.batch, online_pool=a.pool or base.online_pool,
                       cuda_graph=base.cuda_graph and a.device.startswith("cuda"))   # a GPU's option
        names = [v for v in a.variants.split(",") if v]
        if not a.device.startswith("cuda") and any("graph" in n.split("+") for n in names):
            raise SystemExit("the variant option graph (a CUDA graph) needs --device cuda")
        rows = {}
        for i, name in enumerate(names):
            cfg = variant_config(base, name)
            rows[name] = measure(cfg, a.seconds, a.warmup, components=i in (0, len(names) - 1))
            rows[name] = {k: v * cfg.batch if k.endswith("per_s") else v for k, v in rows[name].items()}
            print(f"   {name}: {rows[name]['steps_per_s']:,.0f} images/s", flush=True)
        graphed = [n for n in names if "graph" in n.split("+")]
        if graphed and a.device.startswith("cuda"):
            diff = graph_matches_eager(variant_config(base, graphed[0]))
            print(f"   {graphed[0]}: 20 steps replayed as a CUDA graph against the same steps eager: "
                  f"largest weight difference {diff:.2e}", flush=True)
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    print(f"\nperception training step, recipe {a.recipe} ({base.arch}, online pool {base.online_pool}, "
          f"supersample {base.supersample}, randomize {base.randomize}), batch {base.batch}, on {dev}, "
          f"torch {torch.__version__}, {a.seconds:g} s each")
    print(f"{'variant':<34}{'images/s':>11}{'x first':>8}{'warm-up s':>11}{'sampler img/s':>15}"
          f"{'update img/s':>14}")
    ref = rows[names[0]]["steps_per_s"]
    for name, r in rows.items():   # images/s (a variant batchN has its own mini-batch)
        comp = (f"{r['sampler_per_s']:>15,.0f}{r['update_per_s']:>14,.0f}" if "sampler_per_s" in r else "")
        print(f"{name:<34}{r['steps_per_s']:>11,.0f}{r['steps_per_s'] / ref:>8.2f}"
              f"{r['warmup_s']:>11.1f}{comp}")


if __name__ == "__main__":
    main()
