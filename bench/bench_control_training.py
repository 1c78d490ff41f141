"""Wall-clock to train the 3-DoF controller to the paper's success rate on this machine's CPU.

    python bench/bench_control_training.py [--dof 3] [--threshold 0.985] [--threads 2] [TRAIN OPTIONS]

Trains with the shipped recipe of --dof (reach_core/recipes/control_dof1.yaml, control_dof2.yaml,
control_dof3_stage1.yaml: same options, same step budget and schedules), evaluates every
--eval-every steps on 200 trials (Figure 5's protocol) and stops at the first evaluation at or
above --threshold (other options go to ``reach train control`` after the recipe's, e.g.
``--batch-size 512``).  Prints the wall-clock to that point (evaluations
included), environment steps/s and updates/s, then the stopped model's 400-trial Table 2 row.
Issue 19's target: <= 5 minutes for 3-DoF at >= 98.5 % on a 2-core CPU (paper: ~24 h on one
core); the CPU overlay recipe: ``--config control_dof3_cpu_fast``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reach_core.control import ControlPolicy
from reach_core.control_training import SHIPPED_RECIPES
from reach_core.evaluation import EVAL_SEED, format_table, run_trials


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU-seconds used by all processes so far (Linux /proc/stat), by this one's children), or
    None where /proc/stat is not there: their differences over the run say how much of the cores
    other processes took meanwhile, which a load average only hints at."""
    try:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq = map(int, f.readline().split()[1:8])
    except (OSError, ValueError):
        return None
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK"), kids.ru_utime + kids.ru_stime


#: what each trainer's update does, for the printout (metrics.json names the trainer that ran)
PATH = {"control_training": "inputs cached in the replay memory, fused Adam",
        "control_vec": "vectorised"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dof", type=int, default=3, choices=(1, 2, 3))
    p.add_argument("--threshold", type=float, default=0.985)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    a, extra = p.parse_known_args()   # the rest goes to `reach train control` (e.g. --batch-size 512)
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or os.path.join(tmp, "run")
        cmd = [sys.executable, "-m", "reach_core.cli", "train", "control",
               "--config", SHIPPED_RECIPES[a.dof], "--threads", str(a.threads), "--seed", str(a.seed),
               "--eval-every", str(a.eval_every),
               "--stop-success", str(a.threshold), "--no-progress", "--out", out, "--force", *extra]
        print("$", " ".join(cmd[2:]), flush=True)
        load0, cpu0 = os.getloadavg(), _cpu_seconds()
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        load1, cpu1 = os.getloadavg(), _cpu_seconds()
        m = json.loads(Path(out, "metrics.json").read_text())
        reached = [h for h in m["history"] if h["success_rate"] >= a.threshold]
        policy = ControlPolicy.load(Path(out, "model.pt"))
        res = run_trials(policy.act, policy.task, 400, seed=EVAL_SEED)
    print(f"\n{a.dof}-DoF K-GPS on {os.cpu_count()} CPU cores, {a.threads} torch threads, trainer "
          f"{m.get('trainer', '?')} ({PATH.get(m.get('trainer'), '?')}), seed {a.seed}:")
    print(f"  load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
          f"after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (1, 5, 15 min)")
    if cpu0 and cpu1:
        others = max(0.0, (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1]))
        print(f"  other processes used {others:.0f} CPU-s meanwhile ({100 * others / wall:.0f} % of one core "
              f"on average); the training command {cpu1[1] - cpu0[1]:.0f} CPU-s")
    if reached:
        h = reached[0]
        print(f"  reached {100 * h['success_rate']:.1f} % (>= {100 * a.threshold:.1f} %) after "
              f"{h['step']:,} env steps, {h['updates']:,} updates, {h['elapsed_s']:.0f} s "
              f"({h['elapsed_s'] / 60:.1f} min) of training")
    else:
        print(f"  did NOT reach {100 * a.threshold:.1f} % within {m['steps']:,} steps "
              f"(best {100 * m['best_success_rate']:.1f} %)")
    print(f"  whole command {wall:.0f} s; {m['env_steps_per_s']:,.0f} env steps/s, "
          f"{m['updates_per_s']:,.0f} updates/s")
    print(format_table({"stopped model": res}, f"400 trials, seed {EVAL_SEED}"))


if __name__ == "__main__":
    main()
