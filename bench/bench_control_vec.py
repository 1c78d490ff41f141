r"""The CPU control trainer vs the vectorised one (issue 19), side by side in one run, one device.

    python bench/bench_control_vec.py [--dof 3] [--budget 120] [--device cpu|cuda] [--envs 1024]
        [--batch-size 1024] [--updates-per-step 0.03125] [--threads 1] [--eval-every 50000]

Trains twice for at most --budget seconds each, stopping at the first periodic evaluation
(400 trials, the paper's protocol) at or above --threshold:

* the existing trainer (reach_core.control_training) with the shipped recipe of --dof
  (reach_core/recipes/control_dof1.yaml, control_dof2.yaml, control_dof3_stage1.yaml: kinematic,
  dueling, 5-step returns, 32 trials, batch 256, 0.125 updates per step, its step budget);
* the vectorised trainer (reach_core.control_vec) with the recipe control_vec_dof3 (one-step
  targets), its trials, batch and update rate overridden by --envs, --batch-size and
  --updates-per-step (default: sizes for a CPU; on a GPU pass the recipe's 4096 4096 0.0078125).

Both on --device.  Prints, per trainer, environment steps/s and updates/s (whole training loop,
evaluations included), the time to --threshold (or that the budget ran out) and the final 400-trial
success rate of best.pt at the benchmark seed, then the ratios.  On a GPU:

    python bench/bench_control_vec.py --device cuda --baseline-device cpu --budget 60 --envs 4096 \
        --batch-size 4096 --updates-per-step 0.0078125 --eval-every 500000
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from reach_core import control_training, control_vec
from reach_core.configs import load_recipe
from reach_core.control import ControlPolicy
from reach_core.control_training import SHIPPED_RECIPES, TrainConfig
from reach_core.evaluation import EVAL_SEED, run_trials


def configs(a) -> dict[str, TrainConfig]:
    """The two runs' settings: the same task, budget, stopping rule and evaluation protocol."""
    common = dict(dof=a.dof, device=a.device, threads=a.threads, seed=a.seed, eval_every=a.eval_every,
                  eval_trials=400, stop_success=a.threshold, time_budget=a.budget, checkpoint_every=10 ** 9)
    shipped = load_recipe(SHIPPED_RECIPES[a.dof], TrainConfig)
    vec = load_recipe("control_vec_dof3", TrainConfig) | common
    vec.update(num_envs=a.envs, batch_size=a.batch_size, updates_per_step=a.updates_per_step,
               total_steps=a.vec_steps or vec["total_steps"], compile=a.compile)
    if a.device == "cpu":  # the CPU recipe's schedule and memory (the GPU recipe's suit 4096 trials)
        vec.update(buffer_size=300_000, learning_starts=10_000, eps_decay_fraction=0.5,
                   total_steps=a.vec_steps or shipped["total_steps"])
    base = common | {"device": a.baseline_device or a.device}
    return {"CPU trainer (control_training)": TrainConfig(**(shipped | base)),
            "vectorised (control_vec)": TrainConfig(**vec)}


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
    p.add_argument("--envs", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--updates-per-step", type=float, default=1 / 32)
    p.add_argument("--vec-steps", type=int, default=0, help="vectorised total_steps (0: the recipe's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true",
                   help="the vectorised trainer's update compiled (CUDA graphs on a GPU)")
    p.add_argument("--eval-every", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--component-seconds", type=float, default=5.0,
                   help="seconds of the acting-alone and updating-alone timings (0: skip them)")
    a = p.parse_args()
    trainers = {"CPU trainer (control_training)": control_training.train,
                "vectorised (control_vec)": control_vec.train}
    rows, parts = {}, {}
    if a.component_seconds:
        for name, cfg in configs(a).items():
            parts[name] = throughput(name, cfg, a.component_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, cfg) in enumerate(configs(a).items()):
            print(f"== {name}: {cfg.num_envs} trials, batch {cfg.batch_size}, {cfg.updates_per_step:g} "
                  f"updates/step, n_step {cfg.n_step}, budget {a.budget:.0f} s", flush=True)
            rows[name] = run_one(trainers[name], cfg, os.path.join(tmp, str(i)), a.threshold)
    dev = torch.cuda.get_device_name() if a.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    base = f", the CPU trainer on {a.baseline_device}" if a.baseline_device not in ("", a.device) else ""
    print(f"\n{a.dof}-DoF K-GPS on {dev}{base}, {a.threads} torch thread(s), budget {a.budget:.0f} s each, "
          f"threshold {100 * a.threshold:.1f} % (400 trials)")
    print(f"{'trainer':<32}{'env steps/s':>12}{'updates/s':>11}{'steps':>11}{'to threshold':>14}"
          f"{'best.pt %':>11}")
    for name, r in rows.items():
        reach = f"{r['reached']:.0f} s" if r["reached"] is not None else "not reached"
        print(f"{name:<32}{r['steps/s']:>12,.0f}{r['updates/s']:>11,.0f}{r['steps']:>11,}{reach:>14}"
              f"{100 * r['final']:>11.2f}")
    if parts:
        print(f"\ncomponents alone ({a.component_seconds:g} s each): acting = environment step + "
              "action choice + replay insert; updating = mini-batch sample + gradient step")
        print(f"{'trainer':<32}{'act steps/s':>12}{'updates/s':>11}{'samples/s':>11}")
        for name, r in parts.items():
            print(f"{name:<32}{r['act steps/s']:>12,.0f}{r['updates/s']:>11,.1f}{r['samples/s']:>11,.0f}")
        old, new = parts.values()
        print(f"ratio vectorised / CPU trainer: acting {new['act steps/s'] / old['act steps/s']:.1f}x, "
              f"samples/s {new['samples/s'] / old['samples/s']:.2f}x")
    old, new = rows.values()
    print(f"ratio vectorised / CPU trainer: env steps/s {new['steps/s'] / old['steps/s']:.1f}x, "
          f"updates/s {new['updates/s'] / old['updates/s']:.2f}x")


if __name__ == "__main__":
    main()
