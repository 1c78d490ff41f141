r"""The CPU control trainer vs the vectorised one (issue 19), side by side in one run.

    python bench/bench_control_vec.py [--dof 3] [--budget 120] [--device cpu|cuda]
        [--baseline-device cpu] [--vec RECIPES ...] [--envs N] [--batch-size B]
        [--updates-per-step U] [--threads 1] [--eval-every 50000]

Trains each run for at most --budget seconds, stopping at the first periodic evaluation
(400 trials, the paper's protocol) at or above --threshold:

* the existing trainer (reach_core.control_training) with the shipped recipe of --dof
  (reach_core/recipes/control_dof1.yaml, control_dof2.yaml, control_dof3_stage1.yaml: kinematic,
  dueling, 5-step returns, 32 trials, batch 256, 0.125 updates per step, its step budget), on
  --baseline-device (default --device);
* the vectorised trainer (reach_core.control_vec), once per --vec: recipe overlays and settings,
  comma-separated (default the GPU recipe control_vec_dof3: 4096 trials, batch 4096, 5-step
  returns, the update as a CUDA graph); on a CPU sized for it (1024 trials, batch 1024).

Prints, per run, environment steps/s and updates/s (whole training loop, evaluations included),
the time to --threshold (or that the budget ran out) and the 400-trial success rate of best.pt
at the benchmark seed (the NumPy simulator, run_trials), then the ratios; with --component-seconds
the acting and updating rates alone; with a CUDA graph, whether its updates equal eager ones.
On one GPU:

    python bench/bench_control_vec.py --device cuda --baseline-device cpu --budget 60 \
        --eval-every 250000
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from reach_core import control_training, control_vec
from reach_core.configs import load_recipe
from reach_core.control import ControlPolicy
from reach_core.control_training import SHIPPED_RECIPES, TrainConfig
from reach_core.evaluation import EVAL_SEED, run_trials
from reach_core.sweep import parse_value


def _variant(spec: str) -> tuple[list[str], dict]:
    """``recipe[,recipe...][,key=value...]``: recipe overlays, then settings (parsed as the
    setting's type, as ``reach sweep --vary`` does)."""
    names, sets = [], {}
    for item in filter(None, spec.split(",")):
        key, sep, value = item.partition("=")
        if sep:
            key = key.strip().replace("-", "_")
            sets[key] = parse_value(TrainConfig, key, value.strip())
        else:
            names.append(item.strip())
    return names or ["control_vec_dof3"], sets


def configs(a) -> dict[str, TrainConfig]:
    """The runs' settings: the same task, budget, stopping rule and evaluation protocol; one
    vectorised run per --vec variant."""
    common = dict(dof=a.dof, device=a.device, threads=a.threads, seed=a.seed, eval_every=a.eval_every,
                  eval_trials=400, stop_success=a.threshold, time_budget=a.budget, checkpoint_every=10 ** 9)
    shipped = load_recipe(SHIPPED_RECIPES[a.dof], TrainConfig)
    base = common | {"device": a.baseline_device or a.device}
    out = {"CPU trainer (control_training)": TrainConfig(**(shipped | base))}
    for spec in a.vec or ["control_vec_dof3"]:
        names, sets = _variant(spec)
        vec = {}
        for name in names:
            vec |= load_recipe(name, TrainConfig)
        vec |= common
        sizes = {"num_envs": a.envs, "batch_size": a.batch_size, "updates_per_step": a.updates_per_step,
                 "total_steps": a.vec_steps or None, "compile": a.compile or None,
                 "cuda_graph": a.cuda_graph or None}
        if a.device == "cpu":  # CPU sizes, and the CPU recipe's schedule and memory
            sizes = {"num_envs": 1024, "batch_size": 1024, "updates_per_step": 1 / 32,
                     "buffer_size": 300_000, "learning_starts": 10_000, "eps_decay_fraction": 0.5,
                     "total_steps": shipped["total_steps"], "cuda_graph": False
                     } | {k: v for k, v in sizes.items() if v}
        vec |= {k: v for k, v in sizes.items() if v is not None} | sets
        out[f"vectorised ({spec})"] = TrainConfig(**vec)
    return out


def _rate(fn, seconds: float) -> tuple[float, int]:
    """Calls of ``fn`` per second over about ``seconds`` (after one warm-up call)."""
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0), n


def throughput(name: str, cfg: TrainConfig, seconds: float) -> dict:
    """Acting alone (environment step, greedy + K-GPS choice, replay insert) and updating alone
    (sample a mini-batch, one gradient step), each timed for ``seconds`` with a full memory."""
    import numpy as np
    torch.set_num_threads(cfg.threads)
    dev, task = torch.device(cfg.device), cfg.task()
    if name.startswith("vectorised"):
        actor, learner = control_vec.VecActor(cfg, task, dev), control_vec.VecLearner(cfg, dev)
        def sample():
            return actor.memory.sample(cfg.batch_size, actor.gen)
    else:
        rng = np.random.default_rng(cfg.seed)
        actor, learner = control_training.Actor(cfg, task, rng, dev), control_training.Learner(cfg, dev)
        actor.obs = actor.env.observe()
        def sample():
            return actor.memory.sample(rng, cfg.batch_size, dev)
    while len(actor.memory) < max(cfg.batch_size, 4 * cfg.num_envs):
        actor.step(learner.net, 0.5)
    act, _ = _rate(lambda: actor.step(learner.net, 0.5), seconds)
    upd, _ = _rate(lambda: learner.update(sample(), actor.mask, task.hold_radius), seconds)
    return {"act steps/s": act * cfg.num_envs, "updates/s": upd,
            "samples/s": upd * cfg.batch_size}


def graph_matches_eager(cfg: TrainConfig, updates: int = 20) -> float:
    """The largest weight difference after ``updates`` updates on the same batches: the update
    replayed as a CUDA graph against the eager update, from the same initial weights."""
    dev, task = torch.device(cfg.device), cfg.task()
    actor = control_vec.VecActor(cfg, task, dev)
    acting = control_vec.VecLearner(replace(cfg, cuda_graph=False), dev).net
    while len(actor.memory) < max(cfg.batch_size, 4 * cfg.num_envs):
        actor.step(acting, 1.0)
    batches = [actor.memory.sample(cfg.batch_size, actor.gen) for _ in range(updates)]
    nets = []
    for graph in (False, True):
        torch.manual_seed(cfg.seed)
        learner = control_vec.VecLearner(replace(cfg, cuda_graph=graph), dev)
        for b in batches:
            learner.update(b, actor.mask, task.hold_radius)
        nets.append(learner.net)
    return max((p - q).abs().max().item() for p, q in zip(nets[0].parameters(), nets[1].parameters()))


def run_one(train, cfg: TrainConfig, out: str, threshold: float) -> dict:
    """Train, then the 400-trial benchmark evaluation of the best network."""
    t0 = time.perf_counter()
    m = train(cfg, out, progress=False, log=lambda msg: print("   ", msg, flush=True))
    wall = time.perf_counter() - t0
    reached = [h for h in m["history"] if h["success_rate"] >= threshold]
    policy = ControlPolicy.load(Path(out, "best.pt"))
    final = run_trials(policy.act, policy.task, 400, seed=EVAL_SEED)
    return {"steps/s": m["env_steps_per_s"], "updates/s": m["updates_per_s"], "steps": m["steps"],
            "updates": m["updates"], "wall": wall, "final": final.success_rate,
            "reached": reached[0]["elapsed_s"] if reached else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dof", type=int, default=3, choices=(1, 2, 3))
    p.add_argument("--budget", type=float, default=120.0, help="seconds of training per trainer")
    p.add_argument("--threshold", type=float, default=0.985)
    p.add_argument("--device", default="cpu")
    p.add_argument("--baseline-device", default="",
                   help="device of the CPU trainer (default: --device); on a GPU machine pass cpu")
    p.add_argument("--vec", action="append", metavar="RECIPES",
                   help="a vectorised run: recipe overlays and settings, comma-separated, e.g. "
                        "control_vec_dof3,lr=5e-4 (repeat for several; default control_vec_dof3)")
    p.add_argument("--envs", type=int, default=None, help="vectorised trials (default: the recipe's; "
                   "1024 on a CPU)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--updates-per-step", type=float, default=None)
    p.add_argument("--vec-steps", type=int, default=0, help="vectorised total_steps (0: the recipe's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true",
                   help="the vectorised trainer's update compiled (CUDA graphs on a GPU)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="the vectorised trainer's update captured as a CUDA graph")
    p.add_argument("--eval-every", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--component-seconds", type=float, default=5.0,
                   help="seconds of the acting-alone and updating-alone timings (0: skip them)")
    a = p.parse_args()
    rows, parts = {}, {}
    if a.component_seconds:
        for name, cfg in configs(a).items():
            parts[name] = throughput(name, cfg, a.component_seconds)
            if cfg.cuda_graph:
                print(f"{name}: CUDA-graph updates vs eager updates, 20 updates on the same batches: "
                      f"largest weight difference {graph_matches_eager(cfg):.2e}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, cfg) in enumerate(configs(a).items()):
            print(f"== {name}: {cfg.num_envs} trials, batch {cfg.batch_size}, {cfg.updates_per_step:g} "
                  f"updates/step, n_step {cfg.n_step}, budget {a.budget:.0f} s", flush=True)
            train = control_vec.train if name.startswith("vectorised") else control_training.train
            rows[name] = run_one(train, cfg, os.path.join(tmp, str(i)), a.threshold)
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    base = f", the CPU trainer on {a.baseline_device}" if a.baseline_device not in ("", a.device) else ""
    print(f"\n{a.dof}-DoF K-GPS on {dev}{base}, {a.threads} torch thread(s), budget {a.budget:.0f} s each, "
          f"threshold {100 * a.threshold:.1f} % (400 trials)")
    w = max(32, *(len(name) + 2 for name in rows))
    print(f"{'trainer':<{w}}{'env steps/s':>12}{'updates/s':>11}{'steps':>11}{'to threshold':>14}"
          f"{'best.pt %':>11}")
    for name, r in rows.items():
        reach = f"{r['reached']:.0f} s" if r["reached"] is not None else "not reached"
        print(f"{name:<{w}}{r['steps/s']:>12,.0f}{r['updates/s']:>11,.0f}{r['steps']:>11,}{reach:>14}"
              f"{100 * r['final']:>11.2f}")
    if parts:
        print(f"\ncomponents alone ({a.component_seconds:g} s each): acting = environment step + "
              "action choice + replay insert; updating = mini-batch sample + gradient step")
        print(f"{'trainer':<{w}}{'act steps/s':>12}{'updates/s':>11}{'samples/s':>11}")
        for name, r in parts.items():
            print(f"{name:<{w}}{r['act steps/s']:>12,.0f}{r['updates/s']:>11,.1f}{r['samples/s']:>11,.0f}")
        old, *news = parts.items()
        for name, new in news:
            print(f"ratio {name} / CPU trainer: acting {new['act steps/s'] / old[1]['act steps/s']:.1f}x, "
                  f"samples/s {new['samples/s'] / old[1]['samples/s']:.2f}x")
    old, *news = rows.items()
    for name, new in news:
        print(f"ratio {name} / CPU trainer: env steps/s {new['steps/s'] / old[1]['steps/s']:.1f}x, "
              f"updates/s {new['updates/s'] / old[1]['updates/s']:.2f}x")


if __name__ == "__main__":
    main()
